package io.peft4j.io.onnx;

import java.nio.charset.StandardCharsets;

/**
 * One attribute of a node ({@code AttributeProto}). Only the kinds a weight loader needs are
 * kept with their value: FLOAT, INT, STRING, TENSOR, FLOATS and INTS; the others (graphs, sparse
 * tensors, type protos, lists of strings or tensors) keep their kind and no value.
 *
 * @param name   the attribute's name
 * @param kind   its kind (from the {@code type} field, or from the value field present in files that omit it)
 * @param f      the FLOAT value
 * @param i      the INT value
 * @param s      the STRING value (bytes, usually UTF-8)
 * @param t      the TENSOR value
 * @param floats the FLOATS value
 * @param ints   the INTS value
 */
public record OnnxAttribute(String name, Kind kind, float f, long i, byte[] s, OnnxTensor t, float[] floats, long[] ints) {

    /** {@code AttributeProto.AttributeType}, with the codes of the file. */
    public enum Kind {
        UNDEFINED(0), FLOAT(1), INT(2), STRING(3), TENSOR(4), GRAPH(5), FLOATS(6), INTS(7), STRINGS(8), TENSORS(9),
        GRAPHS(10), SPARSE_TENSOR(11), SPARSE_TENSORS(12), TYPE_PROTO(13), TYPE_PROTOS(14);

        private final int code;

        Kind(int code) { this.code = code; }

        public int code() { return code; }

        static Kind ofCode(long code) {
            for (Kind k : values()) {
                if (k.code == code) return k;
            }
            return null;
        }
    }

    /** The STRING value (a copy). */
    @Override
    public byte[] s() { return s == null ? null : s.clone(); }

    /** The FLOATS value (a copy). */
    @Override
    public float[] floats() { return floats.clone(); }

    /** The INTS value (a copy). */
    @Override
    public long[] ints() { return ints.clone(); }

    /** The STRING value decoded as UTF-8. */
    public String string() {
        return s == null ? null : new String(s, StandardCharsets.UTF_8);
    }
}
