package io.peft4j.io.onnx;

/**
 * The element types of ONNX's {@code TensorProto.DataType} that this reader can hold, with their
 * code in the file and their size in {@code raw_data}. Other codes (STRING, COMPLEX*, the 8-bit
 * and 4-bit floats, the 4-bit integers) are refused when a tensor is read.
 */
public enum OnnxDataType {
    FLOAT(1, 4), UINT8(2, 1), INT8(3, 1), UINT16(4, 2), INT16(5, 2), INT32(6, 4), INT64(7, 8), BOOL(9, 1),
    FLOAT16(10, 2), DOUBLE(11, 8), UINT32(12, 4), UINT64(13, 8), BFLOAT16(16, 2);

    /** ONNX's names for every code up to FLOAT4E2M1, so a refusal can say what the file asked for. */
    private static final String[] ONNX_NAMES = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32",
            "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
            "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1"};

    private final int code;
    private final int byteSize;

    OnnxDataType(int code, int byteSize) {
        this.code = code;
        this.byteSize = byteSize;
    }

    /** The code in {@code TensorProto.data_type}. */
    public int code() { return code; }

    /** Bytes per element in {@code raw_data} (little-endian). */
    public int byteSize() { return byteSize; }

    /** True for FLOAT, DOUBLE, FLOAT16 and BFLOAT16. */
    public boolean isFloatingPoint() {
        return this == FLOAT || this == DOUBLE || this == FLOAT16 || this == BFLOAT16;
    }

    /** The type with this code, or null when the code is not one this reader holds. */
    static OnnxDataType ofCode(long code) {
        for (OnnxDataType t : values()) {
            if (t.code == code) return t;
        }
        return null;
    }

    /** "8 (STRING)", "99 (unknown)": how a refused code reads in a message. */
    static String describeCode(long code) {
        return code + " (" + (code >= 0 && code < ONNX_NAMES.length ? ONNX_NAMES[(int) code] : "unknown") + ")";
    }
}
