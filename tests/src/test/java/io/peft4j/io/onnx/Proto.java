package io.peft4j.io.onnx;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.WireFormat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Test-side protobuf: builds ONNX messages field by field with {@link CodedOutputStream}, and
 * splits/reassembles messages so the tests can rewrite a real ONNX file (drop an initializer,
 * change a dims or data_type field) without going through the reader under test.
 */
final class Proto {
    private Proto() {}

    /** One field of a message: a varint or fixed value, or the bytes of a length-delimited one. */
    record Field(int number, int wireType, long value, byte[] bytes) {
        String string() { return new String(bytes, StandardCharsets.UTF_8); }
    }

    /** The top-level fields of {@code msg}, in order. */
    static List<Field> fields(byte[] msg) {
        try {
            CodedInputStream in = CodedInputStream.newInstance(msg);
            List<Field> out = new ArrayList<>();
            int tag;
            while ((tag = in.readTag()) != 0) {
                int n = WireFormat.getTagFieldNumber(tag), wt = WireFormat.getTagWireType(tag);
                out.add(switch (wt) {
                    case WireFormat.WIRETYPE_VARINT -> new Field(n, wt, in.readInt64(), null);
                    case WireFormat.WIRETYPE_FIXED32 -> new Field(n, wt, in.readRawLittleEndian32(), null);
                    case WireFormat.WIRETYPE_FIXED64 -> new Field(n, wt, in.readRawLittleEndian64(), null);
                    case WireFormat.WIRETYPE_LENGTH_DELIMITED -> new Field(n, wt, 0, in.readByteArray());
                    default -> throw new IllegalStateException("wire type " + wt);
                });
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The first field {@code number} of {@code msg} (null when absent). */
    static Field field(byte[] msg, int number) {
        return fields(msg).stream().filter(f -> f.number() == number).findFirst().orElse(null);
    }

    /** Reassembles fields into a message. */
    static byte[] message(List<Field> fields) {
        Msg m = new Msg();
        for (Field f : fields) {
            switch (f.wireType()) {
                case WireFormat.WIRETYPE_VARINT -> m.varint(f.number(), f.value());
                case WireFormat.WIRETYPE_FIXED32 -> m.raw32(f.number(), (int) f.value());
                case WireFormat.WIRETYPE_FIXED64 -> m.raw64(f.number(), f.value());
                default -> m.bytes(f.number(), f.bytes());
            }
        }
        return m.build();
    }

    /** {@code model} with each graph field passed through {@code edit} (null drops it). */
    static byte[] editGraph(byte[] model, UnaryOperator<Field> edit) {
        List<Field> top = new ArrayList<>();
        for (Field f : fields(model)) {
            if (f.number() == 7) {
                List<Field> graph = new ArrayList<>();
                for (Field g : fields(f.bytes())) {
                    Field e = edit.apply(g);
                    if (e != null) graph.add(e);
                }
                f = new Field(7, f.wireType(), 0, message(graph));
            }
            top.add(f);
        }
        return message(top);
    }

    /** {@code model} with the initializer {@code name} passed through {@code edit} (null drops it). */
    static byte[] editInitializer(byte[] model, String name, UnaryOperator<byte[]> edit) {
        boolean[] found = {false};
        byte[] out = editGraph(model, g -> {
            if (g.number() != 5 || !field(g.bytes(), 8).string().equals(name)) return g;
            found[0] = true;
            byte[] e = edit.apply(g.bytes());
            return e == null ? null : new Field(5, g.wireType(), 0, e);
        });
        if (!found[0]) throw new IllegalStateException("no initializer " + name);
        return out;
    }

    /** {@code msg} with every field {@code number} replaced by {@code replacement} (null drops them). */
    static byte[] replace(byte[] msg, int number, Field replacement) {
        List<Field> out = new ArrayList<>();
        boolean done = false;
        for (Field f : fields(msg)) {
            if (f.number() != number) out.add(f);
            else if (!done && replacement != null) { out.add(replacement); done = true; }
        }
        if (!done && replacement != null) out.add(replacement);
        return message(out);
    }

    static byte[] floatsLe(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) b.putFloat(x);
        return b.array();
    }

    static byte[] longsLe(long... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long x : v) b.putLong(x);
        return b.array();
    }

    /** A message under construction. */
    static final class Msg {
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
        private final CodedOutputStream out = CodedOutputStream.newInstance(buf);

        Msg varint(int n, long v) {
            return write(() -> out.writeInt64(n, v));
        }

        Msg raw32(int n, int v) {
            return write(() -> out.writeFixed32(n, v));
        }

        Msg raw64(int n, long v) {
            return write(() -> out.writeFixed64(n, v));
        }

        Msg f32(int n, float v) {
            return write(() -> out.writeFloat(n, v));
        }

        Msg f64(int n, double v) {
            return write(() -> out.writeDouble(n, v));
        }

        Msg bytes(int n, byte[] v) {
            return write(() -> out.writeByteArray(n, v));
        }

        Msg string(int n, String v) {
            return write(() -> out.writeString(n, v));
        }

        Msg message(int n, Msg m) {
            return bytes(n, m.build());
        }

        /** Repeated varints packed into one length-delimited field. */
        Msg packedVarints(int n, long... v) {
            Msg inner = new Msg();
            for (long x : v) inner.write(() -> inner.out.writeInt64NoTag(x));
            return bytes(n, inner.build());
        }

        Msg packedFloats(int n, float... v) {
            return bytes(n, floatsLe(v));
        }

        Msg packedDoubles(int n, double... v) {
            ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
            for (double x : v) b.putDouble(x);
            return bytes(n, b.array());
        }

        byte[] build() {
            try {
                out.flush();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return buf.toByteArray();
        }

        private interface Io {
            void run() throws IOException;
        }

        private Msg write(Io w) {
            try {
                w.run();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return this;
        }
    }

    // ---- ONNX messages (field numbers of onnx.proto) ----

    /** TensorProto with dims, data_type and name; add the data with the returned builder. */
    static Msg tensor(String name, int dataType, long... dims) {
        Msg t = new Msg().packedVarints(1, dims).varint(2, dataType);
        if (!name.isEmpty()) t.string(8, name);
        return t;
    }

    /** A FLOAT tensor with its data in raw_data. */
    static Msg floatTensor(String name, float[] data, long... dims) {
        return tensor(name, 1, dims).bytes(9, floatsLe(data));
    }

    static Msg node(String opType, String name, List<String> inputs, List<String> outputs, Msg... attributes) {
        Msg n = new Msg();
        for (String i : inputs) n.string(1, i);
        for (String o : outputs) n.string(2, o);
        n.string(3, name).string(4, opType);
        for (Msg a : attributes) n.message(5, a);
        return n;
    }

    static Msg attrFloat(String name, float f) { return new Msg().string(1, name).f32(2, f).varint(20, 1); }

    static Msg attrInt(String name, long i) { return new Msg().string(1, name).varint(3, i).varint(20, 2); }

    static Msg attrString(String name, String s) { return new Msg().string(1, name).string(4, s).varint(20, 3); }

    static Msg attrTensor(String name, Msg t) { return new Msg().string(1, name).message(5, t).varint(20, 4); }

    static Msg attrFloats(String name, float... v) { return new Msg().string(1, name).packedFloats(7, v).varint(20, 6); }

    static Msg attrInts(String name, long... v) { return new Msg().string(1, name).packedVarints(8, v).varint(20, 7); }

    /** A Constant node whose output is {@code output}. */
    static Msg constant(String output, Msg value) {
        return node("Constant", output + "_node", List.of(), List.of(output), attrTensor("value", value));
    }

    /** ModelProto (IR 8, default opset {@code opset}) around a graph of these nodes and initializers. */
    static byte[] model(int opset, List<Msg> nodes, List<Msg> initializers) {
        Msg g = new Msg();
        for (Msg n : nodes) g.message(1, n);
        g.string(2, "test-graph");
        for (Msg t : initializers) g.message(5, t);
        return new Msg().varint(1, 8).string(2, "peft4j-test").message(7, g)
                .message(8, new Msg().string(1, "").varint(2, opset)).build();
    }
}
