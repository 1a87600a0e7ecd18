package io.peft4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Locale;

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
        try {
            MemorySegment seg = allocate(arena, dtype + Arrays.toString(shape), Math.max(bytes, 1));
            return new Tensor(dtype, shape, seg.asSlice(0, bytes), arena, null, 0, null);
        } catch (RuntimeException | OutOfMemoryError e) {
            arena.close();
            throw e;
        }
    }

    /** A new F32 tensor holding a copy of {@code data}. */
    public static Tensor of(float[] data, long... shape) {
        if (data.length != numel(shape)) throw lengthMismatch(data.length, DType.F32, shape);
        return zeros(DType.F32, shape).copyFrom(data);
    }

    /** A new I32 tensor holding a copy of {@code data}. */
    public static Tensor ofInts(int[] data, long... shape) {
        if (data.length != numel(shape)) throw lengthMismatch(data.length, DType.I32, shape);
        Tensor t = zeros(DType.I32, shape);
        MemorySegment.copy(data, 0, t.segment(), ValueLayout.JAVA_INT, 0, data.length);
        return t;
    }

    /**
     * {@code bytes} from {@code arena} for {@code what}, refused up front when the machine
     * cannot hold it (a request past physical memory would otherwise end in an OutOfMemoryError or in
     * the kernel killing the process once the pages are touched).
     */
    static MemorySegment allocate(Arena arena, String what, long bytes) {
        checkFits(what, bytes);
        boolean huge = bytes >= HUGE_ADVICE_BYTES;
        MemorySegment seg;
        try {
            seg = arena.allocate(bytes, huge ? 2L << 20 : ALIGNMENT);
        } catch (OutOfMemoryError e) {   // malloc said no: the memory is there but taken
            throw new IllegalArgumentException("cannot allocate " + what + ": it needs " + gib(bytes)
                    + " and the system refused (" + gib(freeMemory()) + " of " + gib(physicalMemory()) + " free)", e);
        }
        if (huge) HugePages.advise(seg);
        return seg;
    }

    /** Refuses {@code bytes} for {@code what} (e.g. "F32[1073741824, 784]") when it is more than physical memory. */
    static void checkFits(String what, long bytes) {
        checkFits(() -> what, bytes);
    }

    /** {@link #checkFits(String, long)} that names the tensor only when it must refuse it (step allocations are hot). */
    static void checkFits(java.util.function.Supplier<String> what, long bytes) {
        long physical = physicalMemory();
        if (bytes > physical) {
            throw new IllegalArgumentException("cannot allocate " + what.get() + ": it needs " + gib(bytes)
                    + ", more than this machine's " + gib(physical) + " of memory");
        }
    }

    private static long physicalMemory() {
        return PhysicalMemory.BYTES;
    }

    /** Read once: the MXBean reads /proc on every call, far too slow for per-step allocations. */
    private static final class PhysicalMemory {
        static final long BYTES = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
    }

    private static long freeMemory() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getFreeMemorySize();
    }

    private static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB (%d bytes)", bytes / (double) (1L << 30), bytes);
    }

    public DType dtype() { return dtype; }
    public Device device() { return device; }
    public int rank() { return shape.length; }
    public long[] shape() { return shape.clone(); }
    public long[] strides() { return strides.clone(); }
    /** The size of dimension {@code i}; negative {@code i} counts from the end (-1 is the last). */
    public long dim(int i) {
        if (i < -shape.length || i >= shape.length) {
            throw new IllegalArgumentException("dimension " + i + " out of range for " + describe() + " (rank " + shape.length
                    + ": valid are " + -shape.length + " to " + (shape.length - 1) + ")");
        }
        return shape[i < 0 ? shape.length + i : i];
    }
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
        if (rank() == 0 || start < 0 || count < 0 || start > shape[0] || count > shape[0] - start) {   // no start + count: it can overflow
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
        requireArraySize();
        return segment().toArray(ValueLayout.JAVA_FLOAT);
    }

    public int[] toIntArray() {
        requireDType(DType.I32);
        requireArraySize();
        return segment().toArray(ValueLayout.JAVA_INT);
    }

    private void requireArraySize() {
        if (numel() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor " + describe() + " has " + numel() + " elements, more than a Java array holds");
        }
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
        checkAlive();   // before allocating, so a dead source leaks nothing
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

    /**
     * Frees self-owned memory; views and arena tensors just become unusable. While a native
     * operation on another thread uses the tensor the close is refused (the memory stays valid and
     * owned by this tensor, to be freed by a later close), never deferred into a leak.
     */
    @Override
    public synchronized void close() {
        if (closed) return;
        if (ownArena != null) {
            try {
                ownArena.close();
            } catch (IllegalStateException e) {   // the arena is held by a running downcall
                throw new IllegalStateException("cannot close tensor " + describe() + " while an operation is using it;"
                        + " close it after the operation returns", e);
            }
        }
        closed = true;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than 2^63 elements", e);
            }
        }
        return n;
    }

    static long byteSize(DType dtype, long[] shape) {
        long n = numel(shape);
        if (n > Long.MAX_VALUE / dtype.byteSize()) {
            throw new IllegalArgumentException(dtype + Arrays.toString(shape) + " needs " + n + " x " + dtype.byteSize()
                    + " bytes, more than 2^63");
        }
        return n * dtype.byteSize();
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
        return lengthMismatch(length, t.dtype, t.shape);
    }

    private static IllegalArgumentException lengthMismatch(int length, DType dtype, long[] shape) {
        return new IllegalArgumentException("array of length " + length + " does not fit " + dtype + Arrays.toString(shape)
                + " (" + numel(shape) + " elements)");
    }
}
