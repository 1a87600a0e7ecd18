package io.peft4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A dense, row-major array in off-heap memory (64-byte aligned). Java holds the handle, never a
 * copy of the numbers, except when asked ({@link #toFloatArray()}). A tensor is owned either by
 * itself (close it), by a {@link StepArena} (valid until the arena's next reset), or is a view
 * of another tensor (valid while that one is).
 */
public final class Tensor implements AutoCloseable {
    public static final long ALIGNMENT = 64;
    /** Buffers at least this big are advised for transparent huge pages. */
    static final long HUGE_ADVICE_BYTES = 2L << 20;

    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final Device device;
    private final MemorySegment segment;
    private final Arena ownArena;        // non-null when this tensor owns its memory
    private final StepArena stepArena;   // non-null when the memory comes from a step arena
    private final long generation;       // the step arena's generation at allocation
    private final Tensor base;           // non-null for views
    private volatile boolean closed;

    Tensor(DType dtype, long[] shape, MemorySegment segment, Arena ownArena, StepArena stepArena,
           long generation, Tensor base) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.strides = contiguousStrides(this.shape);
        this.device = Device.CPU;
        this.segment = segment;
        this.ownArena = ownArena;
        this.stepArena = stepArena;
        this.generation = generation;
        this.base = base;
    }

    /** A new zero-filled tensor that owns its memory. */
    public static Tensor zeros(DType dtype, long... shape) {
        long bytes = byteSize(dtype, shape);
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(Math.max(bytes, 1), bytes >= HUGE_ADVICE_BYTES ? 2L << 20 : ALIGNMENT);
        if (bytes >= HUGE_ADVICE_BYTES) HugePages.advise(seg);
        return new Tensor(dtype, shape, seg.asSlice(0, bytes), arena, null, 0, null);
    }

    /** A new F32 tensor holding a copy of {@code data}. */
    public static Tensor of(float[] data, long... shape) {
        Tensor t = zeros(DType.F32, shape);
        t.copyFrom(data);
        return t;
    }

    /** A new I32 tensor holding a copy of {@code data}. */
    public static Tensor ofInts(int[] data, long... shape) {
        Tensor t = zeros(DType.I32, shape);
        if (data.length != t.numel()) throw lengthMismatch(data.length, t);
        MemorySegment.copy(data, 0, t.segment(), ValueLayout.JAVA_INT, 0, data.length);
        return t;
    }

    public DType dtype() { return dtype; }
    public Device device() { return device; }
    public int rank() { return shape.length; }
    public long[] shape() { return shape.clone(); }
    public long[] strides() { return strides.clone(); }
    public long dim(int i) { return shape[i < 0 ? shape.length + i : i]; }
    public long numel() { return numel(shape); }
    public long byteSize() { return segment.byteSize(); }

    /** The memory, after checking the tensor is still alive. */
    public MemorySegment segment() {
        checkAlive();
        return segment;
    }

    public boolean isAlive() {
        if (closed) return false;
        if (base != null) return base.isAlive();
        return stepArena == null || stepArena.generation() == generation;
    }

    public void checkAlive() {
        if (!isAlive()) {
            String why = closed || (base != null && base.closed) ? "closed"
                    : "from a step arena that has been reset since";
            throw new IllegalStateException("tensor " + describe() + " is " + why);
        }
    }

    /** A tensor of another shape over the same memory (same element count). */
    public Tensor view(long... newShape) {
        if (numel(newShape) != numel()) {
            throw new IllegalArgumentException("cannot view " + describe() + " as " + Arrays.toString(newShape)
                    + ": element counts differ");
        }
        return new Tensor(dtype, newShape, segment(), null, null, 0, root());
    }

    /** Rows [start, start + count) of the leading dimension, sharing memory. */
    public Tensor rows(long start, long count) {
        if (rank() == 0 || start < 0 || count < 0 || start + count > shape[0]) {
            throw new IllegalArgumentException("rows(" + start + ", " + count + ") out of range for " + describe());
        }
        long[] s = shape.clone();
        s[0] = count;
        long rowBytes = strides.length == 0 ? 0 : strides[0] * dtype.byteSize();
        return new Tensor(dtype, s, segment().asSlice(start * rowBytes, count * rowBytes), null, null, 0, root());
    }

    private Tensor root() {
        return base != null ? base : this;
    }

    public float[] toFloatArray() {
        requireDType(DType.F32);
        return segment().toArray(ValueLayout.JAVA_FLOAT);
    }

    public int[] toIntArray() {
        requireDType(DType.I32);
        return segment().toArray(ValueLayout.JAVA_INT);
    }

    public float getFloat(long index) {
        requireDType(DType.F32);
        return segment().getAtIndex(ValueLayout.JAVA_FLOAT, index);
    }

    public void setFloat(long index, float value) {
        requireDType(DType.F32);
        segment().setAtIndex(ValueLayout.JAVA_FLOAT, index, value);
    }

    /** Copies {@code data} (exactly numel floats) into this tensor. */
    public Tensor copyFrom(float[] data) {
        requireDType(DType.F32);
        if (data.length != numel()) throw lengthMismatch(data.length, this);
        MemorySegment.copy(data, 0, segment(), ValueLayout.JAVA_FLOAT, 0, data.length);
        return this;
    }

    /** Copies another tensor's bytes (same dtype and element count) into this one. */
    public Tensor copyFrom(Tensor src) {
        if (src.dtype != dtype || src.numel() != numel()) {
            throw new IllegalArgumentException("cannot copy " + src.describe() + " into " + describe());
        }
        MemorySegment.copy(src.segment(), 0, segment(), 0, byteSize());
        return this;
    }

    /** A new self-owned copy. */
    public Tensor copy() {
        return zeros(dtype, shape).copyFrom(this);
    }

    public void requireDType(DType expected) {
        if (dtype != expected) {
            throw new IllegalArgumentException("tensor " + describe() + " must be " + expected);
        }
    }

    /** e.g. "F32[128, 784]". */
    public String describe() {
        return dtype + Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return "Tensor(" + describe() + ", " + device + ")";
    }

    /** Frees self-owned memory; views and arena tensors just become unusable. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (ownArena != null) ownArena.close();
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    static long byteSize(DType dtype, long[] shape) {
        return Math.multiplyExact(numel(shape), (long) dtype.byteSize());
    }

    private static long[] contiguousStrides(long[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= Math.max(shape[i], 1);
        }
        return s;
    }

    private static IllegalArgumentException lengthMismatch(int length, Tensor t) {
        return new IllegalArgumentException("array of length " + length + " does not fit " + t.describe()
                + " (" + t.numel() + " elements)");
    }
}
