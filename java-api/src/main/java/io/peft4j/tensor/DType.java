package io.peft4j.tensor;

/** Element types a {@link Tensor} can hold. The names are the safetensors dtype strings. */
public enum DType {
    F32(4), BF16(2), F16(2), U8(1), I32(4), I64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The dtype named by a safetensors header ("F32", "BF16", ...). */
    public static DType fromSafetensors(String name) {
        for (DType d : values()) {
            if (d.name().equals(name)) return d;
        }
        throw new IllegalArgumentException("unsupported dtype '" + name + "' (supported: F32, BF16, F16, U8, I32, I64)");
    }
}
