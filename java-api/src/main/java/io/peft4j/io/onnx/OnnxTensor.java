package io.peft4j.io.onnx;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One ONNX {@code TensorProto} (an initializer, or the value of a Constant node), validated: its
 * dims are non-negative, their product fits, and exactly one data field holds exactly that many
 * elements of its data_type.
 *
 * <p>The data stays where the reader found it: {@code raw_data} as a read-only slice of the
 * memory-mapped file (little-endian, row-major, no copy), the typed fields ({@code float_data},
 * {@code int32_data}, {@code int64_data}, {@code uint64_data}, {@code double_data}) as the
 * arrays decoded from the protobuf. Element reads convert on the fly.
 */
public final class OnnxTensor {
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String name;
    private final OnnxDataType dataType;
    private final long[] dims;
    private final long numel;
    // Exactly one of these holds the data (none when numel is 0).
    private final MemorySegment raw;   // raw_data, little-endian
    private final float[] floats;      // float_data
    private final double[] doubles;    // double_data
    private final long[] longs;        // int32_data, int64_data or uint64_data (FLOAT16/BFLOAT16 bits live in int32_data)

    OnnxTensor(String name, OnnxDataType dataType, long[] dims, long numel, MemorySegment raw, float[] floats,
               double[] doubles, long[] longs) {
        this.name = name;
        this.dataType = dataType;
        this.dims = dims.clone();
        this.numel = numel;
        this.raw = raw;
        this.floats = floats;
        this.doubles = doubles;
        this.longs = longs;
    }

    /** The tensor's name ("" for an unnamed Constant value). */
    public String name() { return name; }

    public OnnxDataType dataType() { return dataType; }

    /** The dims, outermost first (empty for a scalar). */
    public long[] dims() { return dims.clone(); }

    public int rank() { return dims.length; }

    public long dim(int i) { return dims[i]; }

    /** The number of elements: the product of the dims (1 for a scalar). */
    public long numel() { return numel; }

    /** Whether the data came from {@code raw_data} (rather than a typed field). */
    public boolean isRaw() { return raw != null; }

    /** Element {@code index} (row-major) as a float; for FLOAT, DOUBLE, FLOAT16 and BFLOAT16 tensors. */
    public float floatAt(long index) {
        checkIndex(index);
        return switch (dataType) {
            case FLOAT -> raw != null ? raw.get(F32_LE, index * 4) : floats[(int) index];
            case DOUBLE -> (float) (raw != null ? raw.get(F64_LE, index * 8) : doubles[(int) index]);
            case FLOAT16 -> Float.float16ToFloat(raw != null ? raw.get(I16_LE, index * 2) : (short) longs[(int) index]);
            case BFLOAT16 -> Float.intBitsToFloat((raw != null ? raw.get(I16_LE, index * 2) : (int) longs[(int) index]) << 16);
            default -> throw new OnnxFormatException("tensor '" + name + "' is " + dataType + ", not a floating-point tensor");
        };
    }

    /** Element {@code index} (row-major) as a long; for the integer and BOOL tensors (UINT64 above 2^63 wraps). */
    public long longAt(long index) {
        checkIndex(index);
        if (dataType.isFloatingPoint()) {
            throw new OnnxFormatException("tensor '" + name + "' is " + dataType + ", not an integer tensor");
        }
        if (raw == null) return longs[(int) index];
        long at = index * dataType.byteSize();
        return switch (dataType) {
            case INT8 -> raw.get(ValueLayout.JAVA_BYTE, at);
            case UINT8, BOOL -> Byte.toUnsignedLong(raw.get(ValueLayout.JAVA_BYTE, at));
            case INT16 -> raw.get(I16_LE, at);
            case UINT16 -> Short.toUnsignedLong(raw.get(I16_LE, at));
            case INT32 -> raw.get(I32_LE, at);
            case UINT32 -> Integer.toUnsignedLong(raw.get(I32_LE, at));
            default -> raw.get(I64_LE, at);   // INT64, UINT64
        };
    }

    /** All elements as floats (floating-point tensors of fewer than 2^31 elements). */
    public float[] toFloatArray() {
        float[] out = new float[arrayLength()];
        if (dataType == OnnxDataType.FLOAT && raw != null) {
            MemorySegment.copy(raw, F32_LE, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) out[i] = floatAt(i);
        }
        return out;
    }

    /** All elements as longs (integer and BOOL tensors of fewer than 2^31 elements). */
    public long[] toLongArray() {
        long[] out = new long[arrayLength()];
        for (int i = 0; i < out.length; i++) out[i] = longAt(i);
        return out;
    }

    /**
     * A new F32 {@link Tensor} (the caller closes it) with this tensor's dims and values; FLOAT
     * raw data is copied straight from the mapped file.
     */
    public Tensor toF32Tensor() {
        if (!dataType.isFloatingPoint()) {
            throw new OnnxFormatException("tensor '" + name + "' is " + dataType + ", not a floating-point tensor");
        }
        Tensor t = Tensor.zeros(DType.F32, dims);
        try {
            if (dataType == OnnxDataType.FLOAT && raw != null) {
                MemorySegment.copy(raw, F32_LE, 0, t.segment(), ValueLayout.JAVA_FLOAT, 0, numel);
            } else {
                for (long i = 0; i < numel; i++) t.setFloat(i, floatAt(i));
            }
            return t;
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    private int arrayLength() {
        if (numel > Integer.MAX_VALUE - 8) {
            throw new OnnxFormatException("tensor '" + name + "' has " + numel + " elements, too many for a Java array");
        }
        return (int) numel;
    }

    private void checkIndex(long index) {
        if (index < 0 || index >= numel) {
            throw new IndexOutOfBoundsException("index " + index + " out of range for tensor '" + name + "' of " + numel + " elements");
        }
    }

    @Override
    public String toString() {
        return "OnnxTensor[" + name + " " + dataType + Arrays.toString(dims) + (raw != null ? " raw" : " typed") + "]";
    }
}
