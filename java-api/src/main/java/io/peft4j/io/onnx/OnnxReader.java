package io.peft4j.io.onnx;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.WireFormat;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses ONNX's protobuf messages field by field with {@link CodedInputStream} (no generated
 * classes: the field numbers below are those of onnx.proto). Every length is checked against the
 * bytes left in the enclosing message before anything is read or allocated, so a truncated or
 * hostile file ends in an {@link OnnxFormatException} naming where it broke, never in an
 * allocation of a size the file claims. {@code raw_data} is not copied: the tensor keeps a slice
 * of the mapped file.
 */
final class OnnxReader {
    /** Typed fields are decoded onto the heap; together they may take at most this much of it. */
    private static final long TYPED_BUDGET = Runtime.getRuntime().maxMemory() / 4;

    private final String source;
    private final MemorySegment file;
    private final CodedInputStream in;
    private final Deque<String> path = new ArrayDeque<>();   // where the parser is, for messages
    private long typedBytes;

    private OnnxReader(String source, MemorySegment file) {
        this.source = source;
        this.file = file;
        this.in = CodedInputStream.newInstance(file.asByteBuffer());
        this.in.setSizeLimit(Integer.MAX_VALUE);
    }

    static OnnxModel parse(String source, MemorySegment file) {
        OnnxReader r = new OnnxReader(source, file);
        try {
            r.in.pushLimit((int) file.byteSize());
            return r.model();
        } catch (InvalidProtocolBufferException e) {
            throw r.error(describe(e), e);
        } catch (IOException e) {   // CodedInputStream over a buffer throws only the subclass above
            throw r.error(e.getMessage(), e);
        }
    }

    // ---- ModelProto ----

    private OnnxModel model() throws IOException {
        long irVersion = 0;
        String producer = "";
        Map<String, Long> opsets = new LinkedHashMap<>();
        Graph graph = null;
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> irVersion = int64(tag, "ir_version");
                case 2 -> producer = string(tag, "producer_name");
                case 7 -> {
                    if (graph != null) throw error("the model has two graph fields");
                    graph = message(tag, "graph", this::graph);
                }
                case 8 -> {
                    String[] domain = {""};
                    long[] version = {0};
                    message(tag, "opset_import", () -> {
                        int t;
                        while ((t = in.readTag()) != 0) {
                            switch (WireFormat.getTagFieldNumber(t)) {
                                case 1 -> domain[0] = string(t, "domain");
                                case 2 -> version[0] = int64(t, "version");
                                default -> skip(t);
                            }
                        }
                        return null;
                    });
                    if (opsets.put(domain[0], version[0]) != null) {
                        throw error("opset_import names domain '" + domain[0] + "' twice");
                    }
                }
                default -> skip(tag);
            }
        }
        if (graph == null) throw error("the model has no graph (is this an ONNX file?)");
        return new OnnxModel(source, irVersion, producer, opsets, graph.name, graph.initializers, graph.nodes,
                graph.inputs, graph.outputs);
    }

    // ---- GraphProto ----

    private record Graph(String name, Map<String, OnnxTensor> initializers, List<OnnxNode> nodes, List<String> inputs,
                         List<String> outputs) {}

    private Graph graph() throws IOException {
        String name = "";
        Map<String, OnnxTensor> inits = new LinkedHashMap<>();
        List<OnnxNode> nodes = new ArrayList<>();
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> nodes.add(message(tag, "node #" + nodes.size(), this::node));
                case 2 -> name = string(tag, "name");
                case 5 -> {
                    OnnxTensor t = message(tag, "initializer #" + inits.size(), this::tensor);
                    if (t.name().isEmpty()) throw error("initializer #" + inits.size() + " has no name");
                    if (inits.putIfAbsent(t.name(), t) != null) throw error("two initializers are named '" + t.name() + "'");
                }
                case 11 -> inputs.add(message(tag, "input #" + inputs.size(), this::valueInfoName));
                case 12 -> outputs.add(message(tag, "output #" + outputs.size(), this::valueInfoName));
                case 15 -> throw error("sparse_initializer is not supported");
                default -> skip(tag);
            }
        }
        return new Graph(name, inits, nodes, inputs, outputs);
    }

    /** ValueInfoProto: only its name (field 1); the type is not needed to load weights. */
    private String valueInfoName() throws IOException {
        String name = "";
        int tag;
        while ((tag = in.readTag()) != 0) {
            if (WireFormat.getTagFieldNumber(tag) == 1) name = string(tag, "name");
            else skip(tag);
        }
        return name;
    }

    // ---- NodeProto / AttributeProto ----

    private OnnxNode node() throws IOException {
        String name = "", opType = "", domain = "";
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        Map<String, OnnxAttribute> attrs = new LinkedHashMap<>();
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> inputs.add(string(tag, "input"));
                case 2 -> outputs.add(string(tag, "output"));
                case 3 -> { name = string(tag, "name"); relabel("node '" + name + "'"); }
                case 4 -> opType = string(tag, "op_type");
                case 5 -> {
                    OnnxAttribute a = message(tag, "attribute #" + attrs.size(), this::attribute);
                    if (attrs.putIfAbsent(a.name(), a) != null) throw error("two attributes are named '" + a.name() + "'");
                }
                case 7 -> domain = string(tag, "domain");
                default -> skip(tag);
            }
        }
        if (opType.isEmpty()) throw error("the node has no op_type");
        return new OnnxNode(name, opType, domain, inputs, outputs, attrs);
    }

    private OnnxAttribute attribute() throws IOException {
        String name = "";
        long type = 0;
        float f = 0;
        long i = 0;
        byte[] s = null;
        OnnxTensor t = null;
        FloatList floats = new FloatList();
        LongList ints = new LongList();
        boolean sawF = false, sawI = false;
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> { name = string(tag, "name"); relabel("attribute '" + name + "'"); }
                case 2 -> { expect(tag, WireFormat.WIRETYPE_FIXED32, "f"); f = in.readFloat(); sawF = true; }
                case 3 -> { i = int64(tag, "i"); sawI = true; }
                case 4 -> s = bytes(tag, "s");
                case 5 -> t = message(tag, "t", this::tensor);
                case 7 -> floats(tag, "floats", floats);
                case 8 -> varints(tag, "ints", ints);
                case 20 -> type = int64(tag, "type");
                default -> skip(tag);   // graphs, sparse tensors, strings, tensors, type protos, doc_string
            }
        }
        if (name.isEmpty()) throw error("the attribute has no name");
        OnnxAttribute.Kind kind;
        if (type != 0) {
            kind = OnnxAttribute.Kind.ofCode(type);
            if (kind == null) throw error("type " + type + " is not an ONNX attribute type");
        } else {   // IR version 1 files may omit the type: the value field present says it
            kind = t != null ? OnnxAttribute.Kind.TENSOR : floats.size > 0 ? OnnxAttribute.Kind.FLOATS
                    : ints.size > 0 ? OnnxAttribute.Kind.INTS : s != null ? OnnxAttribute.Kind.STRING
                    : sawF ? OnnxAttribute.Kind.FLOAT : sawI ? OnnxAttribute.Kind.INT : OnnxAttribute.Kind.UNDEFINED;
        }
        if (kind == OnnxAttribute.Kind.TENSOR && t == null) throw error("a TENSOR attribute without its tensor t");
        return new OnnxAttribute(name, kind, f, i, s, t, floats.toArray(), ints.toArray());
    }

    // ---- TensorProto ----

    private OnnxTensor tensor() throws IOException {
        LongList dims = new LongList();
        long dataType = 0;
        String name = "";
        long rawOffset = -1, rawLength = 0;
        FloatList floatData = new FloatList();
        LongList int32Data = new LongList(), int64Data = new LongList(), uint64Data = new LongList();
        DoubleList doubleData = new DoubleList();
        String externalLocation = null;
        boolean external = false;
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> varints(tag, "dims", dims);
                case 2 -> dataType = int64(tag, "data_type");
                case 3 -> throw error("segmented tensors (the segment field) are not supported");
                case 4 -> floats(tag, "float_data", floatData);
                case 5 -> varints(tag, "int32_data", int32Data);
                case 6 -> throw error("string_data is not supported (STRING tensors cannot be loaded)");
                case 7 -> varints(tag, "int64_data", int64Data);
                case 8 -> { name = string(tag, "name"); relabel("tensor '" + name + "'"); }
                case 9 -> {
                    expect(tag, WireFormat.WIRETYPE_LENGTH_DELIMITED, "raw_data");
                    if (rawOffset >= 0) throw error("raw_data appears twice");
                    rawLength = length("raw_data");
                    rawOffset = in.getTotalBytesRead();
                    in.skipRawBytes((int) rawLength);
                }
                case 10 -> doubles(tag, "double_data", doubleData);
                case 11 -> varints(tag, "uint64_data", uint64Data);
                case 13 -> {
                    external = true;
                    String loc = message(tag, "external_data", this::externalLocation);
                    if (loc != null) externalLocation = loc;
                }
                case 14 -> external |= int64(tag, "data_location") == 1;
                default -> skip(tag);
            }
        }
        String what = name.isEmpty() ? "the tensor" : "tensor '" + name + "'";
        if (external) {
            throw error(what + " keeps its data in an external file"
                    + (externalLocation != null ? " ('" + externalLocation + "')" : "") + "; external data is not supported");
        }
        OnnxDataType type = OnnxDataType.ofCode(dataType);
        if (type == null) {
            throw error(what + " has data_type " + OnnxDataType.describeCode(dataType) + ", which is not supported (supported: "
                    + Arrays.toString(OnnxDataType.values()) + ")");
        }
        long[] shape = dims.toArray();
        long numel = 1;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] < 0) throw error(what + " has a negative dim: dims " + Arrays.toString(shape));
            try {
                numel = Math.multiplyExact(numel, shape[d]);
            } catch (ArithmeticException e) {
                throw error(what + " has dims " + Arrays.toString(shape) + " whose product overflows a 64-bit count");
            }
        }
        String typedField = switch (type) {
            case FLOAT -> "float_data";
            case DOUBLE -> "double_data";
            case INT64 -> "int64_data";
            case UINT32, UINT64 -> "uint64_data";
            default -> "int32_data";
        };
        String[] fieldNames = {"float_data", "int32_data", "int64_data", "uint64_data", "double_data"};
        int[] counts = {floatData.size, int32Data.size, int64Data.size, uint64Data.size, doubleData.size};
        int typedCount = 0;
        for (int k = 0; k < fieldNames.length; k++) {
            if (fieldNames[k].equals(typedField)) typedCount = counts[k];
            else if (counts[k] > 0) {
                throw error(what + " has data_type " + type + " but its " + fieldNames[k] + " holds " + counts[k]
                        + " values (" + type + " data belongs in raw_data or " + typedField + ")");
            }
        }
        String need = "dims " + Arrays.toString(shape) + " of " + type + " need ";
        MemorySegment raw = null;
        if (rawOffset >= 0) {
            if (typedCount > 0) throw error(what + " has both raw_data and " + typedField);
            long bytes;
            try {
                bytes = Math.multiplyExact(numel, (long) type.byteSize());
            } catch (ArithmeticException e) {
                throw error(what + ": " + need + "more bytes than a 64-bit count holds");
            }
            if (rawLength != bytes) throw error(what + ": raw_data holds " + rawLength + " bytes but " + need + bytes);
            raw = file.asSlice(rawOffset, rawLength).asReadOnly();
        } else if (typedCount != numel) {
            throw error(what + ": " + (typedCount == 0 ? "no raw_data and no " + typedField + ", but " : typedField
                    + " holds " + typedCount + " values but ") + need + numel + " values");
        }
        if (raw != null) return new OnnxTensor(name, type, shape, numel, raw, null, null, null);
        return switch (typedField) {
            case "float_data" -> new OnnxTensor(name, type, shape, numel, null, floatData.toArray(), null, null);
            case "double_data" -> new OnnxTensor(name, type, shape, numel, null, null, doubleData.toArray(), null);
            case "int64_data" -> new OnnxTensor(name, type, shape, numel, null, null, null, int64Data.toArray());
            case "uint64_data" -> new OnnxTensor(name, type, shape, numel, null, null, null, uint64Data.toArray());
            default -> new OnnxTensor(name, type, shape, numel, null, null, null, int32Data.toArray());
        };
    }

    /** StringStringEntryProto of external_data: the value of key "location", else null. */
    private String externalLocation() throws IOException {
        String key = "", value = "";
        int tag;
        while ((tag = in.readTag()) != 0) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> key = string(tag, "key");
                case 2 -> value = string(tag, "value");
                default -> skip(tag);
            }
        }
        return key.equals("location") ? value : null;
    }

    // ---- fields ----

    private interface Body<T> {
        T parse() throws IOException;
    }

    /** A length-delimited sub-message parsed by {@code body} within its declared length. */
    private <T> T message(int tag, String label, Body<T> body) throws IOException {
        expect(tag, WireFormat.WIRETYPE_LENGTH_DELIMITED, label);
        int len = (int) length(label);
        int outer = in.pushLimit(len);
        path.push(label);
        T result = body.parse();
        path.pop();
        in.popLimit(outer);
        return result;
    }

    /** A length prefix, checked against the bytes left in the enclosing message. */
    private long length(String field) throws IOException {
        long len = in.readRawVarint64();
        int left = in.getBytesUntilLimit();
        if (len < 0 || len > left) {
            throw error(field + " declares " + Long.toUnsignedString(len) + " bytes but only " + left
                    + " remain in the enclosing message (truncated or corrupt file)");
        }
        return len;
    }

    private long int64(int tag, String field) throws IOException {
        expect(tag, WireFormat.WIRETYPE_VARINT, field);
        return in.readInt64();
    }

    private String string(int tag, String field) throws IOException {
        byte[] b = bytes(tag, field);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw error("field " + field + " is not valid UTF-8");
        }
    }

    private byte[] bytes(int tag, String field) throws IOException {
        expect(tag, WireFormat.WIRETYPE_LENGTH_DELIMITED, field);
        return in.readRawBytes((int) length(field));
    }

    /** A repeated varint field, packed (one length-delimited run) or not (one value per tag). */
    private void varints(int tag, String field, LongList out) throws IOException {
        if (WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int len = (int) length(field);
            reserveTyped(field, len, 8);   // at most one value per byte
            int outer = in.pushLimit(len);
            while (in.getBytesUntilLimit() > 0) out.add(in.readInt64());
            in.popLimit(outer);
        } else {
            out.add(int64(tag, field));
            reserveTyped(field, 1, 8);
        }
    }

    private void floats(int tag, String field, FloatList out) throws IOException {
        if (WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int len = (int) length(field);
            if (len % 4 != 0) throw error("packed " + field + " is " + len + " bytes, not a whole number of 4-byte floats");
            reserveTyped(field, len / 4, 4);
            for (int k = 0; k < len / 4; k++) out.add(in.readFloat());
        } else {
            expect(tag, WireFormat.WIRETYPE_FIXED32, field);
            reserveTyped(field, 1, 4);
            out.add(in.readFloat());
        }
    }

    private void doubles(int tag, String field, DoubleList out) throws IOException {
        if (WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int len = (int) length(field);
            if (len % 8 != 0) throw error("packed " + field + " is " + len + " bytes, not a whole number of 8-byte doubles");
            reserveTyped(field, len / 8, 8);
            for (int k = 0; k < len / 8; k++) out.add(in.readDouble());
        } else {
            expect(tag, WireFormat.WIRETYPE_FIXED64, field);
            reserveTyped(field, 1, 8);
            out.add(in.readDouble());
        }
    }

    /** Refuses typed data past {@link #TYPED_BUDGET} before it is decoded onto the heap. */
    private void reserveTyped(String field, long count, int bytesEach) {
        typedBytes += count * bytesEach;
        if (typedBytes > TYPED_BUDGET) {
            throw error(field + " brings the typed tensor data decoded so far to " + typedBytes
                    + " bytes, more than this reader accepts (" + TYPED_BUDGET + "; large tensors belong in raw_data)");
        }
    }

    private void expect(int tag, int wireType, String field) {
        int got = WireFormat.getTagWireType(tag);
        if (got != wireType) {
            throw error("field " + field + " (number " + WireFormat.getTagFieldNumber(tag) + ") has wire type " + got
                    + ", expected " + wireType);
        }
    }

    private void skip(int tag) throws IOException {
        int wt = WireFormat.getTagWireType(tag);
        if (wt == WireFormat.WIRETYPE_LENGTH_DELIMITED) {   // check the length ourselves for a clear message
            in.skipRawBytes((int) length("field number " + WireFormat.getTagFieldNumber(tag)));
        } else if (wt == WireFormat.WIRETYPE_START_GROUP || wt == WireFormat.WIRETYPE_END_GROUP) {
            // ONNX never uses groups; refusing them also keeps nesting out of a hostile file.
            throw error("field number " + WireFormat.getTagFieldNumber(tag) + " has the group wire type " + wt
                    + ", which ONNX does not use (corrupt file)");
        } else {
            in.skipField(tag);
        }
    }

    /** Renames the innermost place once its name is known ("initializer #3" becomes "tensor 'x'"). */
    private void relabel(String label) {
        String old = path.pop();
        path.push(old + " " + label.substring(label.indexOf(' ') + 1));
    }

    private OnnxFormatException error(String what) {
        return error(what, null);
    }

    private OnnxFormatException error(String what, Throwable cause) {
        List<String> where = new ArrayList<>(path);
        java.util.Collections.reverse(where);
        String at = where.isEmpty() ? "" : String.join(" > ", where) + ": ";
        // Broken before any message was entered: most likely not an ONNX file at all.
        String hint = where.isEmpty() && !what.contains("ONNX file") ? " (is this an ONNX file?)" : "";
        return new OnnxFormatException(source + ": " + at + what + hint, cause);
    }

    /** Protobuf's messages, on one line and in this reader's words where they are unclear. */
    private static String describe(InvalidProtocolBufferException e) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("ended unexpectedly")) return "the data ends in the middle of a field (truncated or corrupt file)";
        if (m.contains("malformed varint")) return "malformed varint (more than 10 bytes)";
        if (m.contains("invalid UTF-8")) return "a string is not valid UTF-8";
        if (m.contains("invalid tag") || m.contains("zero tag")) return "invalid field tag (field number 0)";
        if (m.contains("invalid wire type")) return "invalid wire type (corrupt file)";
        return m.lines().findFirst().orElse(m);
    }

    // ---- growable primitive lists (typed fields arrive one value or one packed run at a time) ----

    private static final class LongList {
        long[] a = new long[4];
        int size;

        void add(long v) {
            if (size == a.length) a = Arrays.copyOf(a, Math.max(8, size * 2));
            a[size++] = v;
        }

        long[] toArray() { return Arrays.copyOf(a, size); }
    }

    private static final class FloatList {
        float[] a = new float[4];
        int size;

        void add(float v) {
            if (size == a.length) a = Arrays.copyOf(a, Math.max(8, size * 2));
            a[size++] = v;
        }

        float[] toArray() { return Arrays.copyOf(a, size); }
    }

    private static final class DoubleList {
        double[] a = new double[4];
        int size;

        void add(double v) {
            if (size == a.length) a = Arrays.copyOf(a, Math.max(8, size * 2));
            a[size++] = v;
        }

        double[] toArray() { return Arrays.copyOf(a, size); }
    }
}
