package io.peft4j.io.onnx;

import io.peft4j.io.onnx.Proto.Msg;
import io.peft4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static io.peft4j.io.onnx.Proto.*;
import static org.junit.jupiter.api.Assertions.*;

/** The ONNX reader on small models built field by field: typed fields, Constant nodes, attributes, and bad input. */
class OnnxReaderTest {

    private static OnnxModel parse(byte[] model) {
        return OnnxModel.parse(model, "test.onnx");
    }

    private static OnnxModel withInitializers(Msg... inits) {
        return parse(model(13, List.of(), List.of(inits)));
    }

    /** The message of the OnnxFormatException that parsing {@code model} must end in (no other exception type). */
    private static String failure(byte[] model) {
        return assertThrows(OnnxFormatException.class, () -> parse(model)).getMessage();
    }

    private static String failure(Msg... inits) {
        return failure(model(13, List.of(), List.of(inits)));
    }

    @Test
    void floatDataPackedUnpackedAndRawReadTheSame() {
        float[] v = {1.5f, -2.25f, 3e-7f, 4e6f, -0f, 6.125f};
        Msg packed = tensor("packed", 1, 2, 3).packedFloats(4, v);
        Msg unpacked = tensor("unpacked", 1, 2, 3);
        for (float x : v) unpacked.f32(4, x);
        Msg raw = floatTensor("raw", v, 2, 3);
        OnnxModel m = withInitializers(packed, unpacked, raw);
        assertEquals(List.of("packed", "unpacked", "raw"), List.copyOf(m.initializers().keySet()));
        for (String name : m.initializers().keySet()) {
            OnnxTensor t = m.initializer(name);
            assertEquals(OnnxDataType.FLOAT, t.dataType());
            assertArrayEquals(new long[] {2, 3}, t.dims());
            assertEquals(name.equals("raw"), t.isRaw());
            assertArrayEquals(v, t.toFloatArray(), name);
            assertEquals(v[4], t.floatAt(4));
            try (Tensor f = t.toF32Tensor()) {
                assertArrayEquals(new long[] {2, 3}, f.shape());
                assertArrayEquals(v, f.toFloatArray(), name);
            }
        }
    }

    @Test
    void integerAndOtherTypedFields() {
        OnnxModel m = withInitializers(
                tensor("i64", 7, 3).packedVarints(7, -5, 0, 1L << 40),
                tensor("i64raw", 7, 3).bytes(9, longsLe(-5, 0, 1L << 40)),
                tensor("i8", 3, 2).packedVarints(5, -128, 127),
                tensor("u8raw", 2, 2).bytes(9, new byte[] {(byte) 255, 7}),
                tensor("f16", 10, 2).packedVarints(5, Float.floatToFloat16(1.5f), Float.floatToFloat16(-3f)),
                tensor("bf16raw", 16, 1).bytes(9, new byte[] {(byte) 0xC0, 0x3F}),   // 0x3FC0 = 1.5
                tensor("f64", 11, 2).packedDoubles(10, 0.25, -8),
                tensor("u64", 13, 1).packedVarints(11, 42),
                tensor("scalar", 1).packedFloats(4, 7f),
                tensor("empty", 1, 0, 5));
        assertArrayEquals(new long[] {-5, 0, 1L << 40}, m.initializer("i64").toLongArray());
        assertArrayEquals(new long[] {-5, 0, 1L << 40}, m.initializer("i64raw").toLongArray());
        assertArrayEquals(new long[] {-128, 127}, m.initializer("i8").toLongArray());
        assertArrayEquals(new long[] {255, 7}, m.initializer("u8raw").toLongArray());
        assertArrayEquals(new float[] {1.5f, -3f}, m.initializer("f16").toFloatArray());
        assertArrayEquals(new float[] {1.5f}, m.initializer("bf16raw").toFloatArray());
        assertArrayEquals(new float[] {0.25f, -8f}, m.initializer("f64").toFloatArray());
        assertEquals(42, m.initializer("u64").longAt(0));
        assertEquals(0, m.initializer("scalar").rank());
        assertEquals(7f, m.initializer("scalar").floatAt(0));
        assertEquals(0, m.initializer("empty").numel());
        assertThrows(OnnxFormatException.class, () -> m.initializer("i64").floatAt(0));
        assertThrows(OnnxFormatException.class, () -> m.initializer("f64").longAt(0));
        assertThrows(OnnxFormatException.class, () -> m.initializer("f16").longAt(0));   // int32_data holds its bits, not integers
        assertThrows(IndexOutOfBoundsException.class, () -> m.initializer("i8").longAt(2));
        String missing = assertThrows(OnnxFormatException.class, () -> m.initializer("nope")).getMessage();
        assertTrue(missing.contains("no initializer 'nope'"), missing);
    }

    @Test
    void constantNodesAttributesAndGraphLinks() {
        byte[] bytes = model(11, List.of(
                constant("eps", tensor("", 1).bytes(9, floatsLe(1e-12f))),
                constant("shape", tensor("", 7, 4).packedVarints(7, 0, 0, 12, 32)),
                node("Add", "add", List.of("x", "eps"), List.of("y")),
                node("Reshape", "reshape", List.of("y", "shape"), List.of("z"),
                        attrFloat("alpha", 0.5f), attrInt("axis", -1), attrInts("perm", 0, 2, 1, 3),
                        attrFloats("scales", 1f, 2f), attrString("mode", "linear"))),
                List.of(floatTensor("w", new float[] {1, 2}, 2)));
        OnnxModel m = parse(bytes);
        assertEquals(11, m.opsetVersion());
        assertEquals(8, m.irVersion());
        assertEquals("peft4j-test", m.producerName());
        assertEquals(4, m.nodes().size());
        OnnxNode c = m.nodes().get(0);
        assertEquals("Constant", c.opType());
        assertEquals(OnnxAttribute.Kind.TENSOR, c.attributes().get("value").kind());
        assertEquals(1e-12f, m.constant("eps").floatAt(0));
        assertEquals(0, m.constant("eps").rank());
        assertArrayEquals(new long[] {0, 0, 12, 32}, m.constant("shape").toLongArray());
        assertEquals(2, m.constant("w").numel());   // initializers are constants too
        assertNull(m.constant("y"));                // computed
        OnnxNode r = m.nodes().get(3);
        assertEquals(List.of("y", "shape"), r.inputs());
        assertEquals(0.5f, r.attribute("alpha", OnnxAttribute.Kind.FLOAT).f());
        assertEquals(-1, r.attribute("axis", OnnxAttribute.Kind.INT).i());
        assertArrayEquals(new long[] {0, 2, 1, 3}, r.attribute("perm", OnnxAttribute.Kind.INTS).ints());
        assertArrayEquals(new float[] {1f, 2f}, r.attribute("scales", OnnxAttribute.Kind.FLOATS).floats());
        assertEquals("linear", r.attribute("mode", OnnxAttribute.Kind.STRING).string());
        String wrongKind = assertThrows(OnnxFormatException.class, () -> r.attribute("axis", OnnxAttribute.Kind.FLOAT)).getMessage();
        assertTrue(wrongKind.contains("'axis' is INT, expected FLOAT"), wrongKind);
        assertSame(m.nodes().get(2), m.producer("y"));
        assertEquals(List.of(r), m.consumers("y"));
        assertEquals(List.of(m.nodes().get(2)), m.consumers("x"));
    }

    @Test
    void attributesWithoutTypeFieldAreInferred() {
        Msg legacy = new Msg().string(1, "legacy").varint(3, 4);   // IR version 1 style: no type field
        OnnxModel m = parse(model(1, List.of(node("Foo", "n", List.of(), List.of("o"), legacy)), List.of()));
        assertEquals(4, m.nodes().get(0).attribute("legacy", OnnxAttribute.Kind.INT).i());
    }

    @Test
    void tensorContentsThatDisagreeAreRefused() {
        assertMessage(failure(tensor("t", 1, 2, 3).packedFloats(4, 1, 2, 3, 4, 5)),
                "tensor 't'", "float_data holds 5 values but dims [2, 3] of FLOAT need 6 values");
        assertMessage(failure(tensor("t", 1, 4).bytes(9, new byte[15])),
                "raw_data holds 15 bytes but dims [4] of FLOAT need 16");
        assertMessage(failure(tensor("t", 1, 2).packedVarints(7, 1, 2)),
                "data_type FLOAT but its int64_data holds 2 values");
        assertMessage(failure(tensor("t", 1, 2).packedFloats(4, 1, 2).bytes(9, new byte[8])),
                "both raw_data and float_data");
        assertMessage(failure(tensor("t", 1, 2)), "no raw_data and no float_data, but dims [2] of FLOAT need 2 values");
        assertMessage(failure(tensor("t", 8, 1).bytes(9, new byte[1])), "data_type 8 (STRING), which is not supported");
        assertMessage(failure(tensor("t", 99, 1).bytes(9, new byte[1])), "data_type 99 (unknown)");
        assertMessage(failure(new Msg().packedVarints(1, 1).string(8, "t").bytes(9, new byte[4])), "data_type 0 (UNDEFINED)");
        assertMessage(failure(tensor("t", 1, 3, -2).bytes(9, new byte[0])), "tensor 't' has a negative dim: dims [3, -2]");
        assertMessage(failure(tensor("t", 1, 1L << 40, 1L << 40).bytes(9, new byte[4])), "dims [1099511627776, 1099511627776] whose product overflows");
        // Huge but representable: refused by comparing with the bytes present, nothing allocated.
        assertMessage(failure(tensor("t", 1, 1L << 40).bytes(9, new byte[4])), "raw_data holds 4 bytes but dims [1099511627776] of FLOAT need 4398046511104");
        assertMessage(failure(tensor("t", 1, 1L << 61).bytes(9, new byte[4])), "more bytes than a 64-bit count holds");
        assertMessage(failure(tensor("t", 1, 2).bytes(4, new byte[7])), "packed float_data is 7 bytes, not a whole number");
        assertMessage(failure(tensor("t", 1, 2).packedFloats(4, 1, 2), tensor("t", 1, 1).packedFloats(4, 1)), "two initializers are named 't'");
        assertMessage(failure(tensor("", 1, 1).packedFloats(4, 1)), "initializer #0 has no name");
    }

    @Test
    void externalDataIsRefused() {
        Msg ext = tensor("big", 1, 1000).message(13, new Msg().string(1, "location").string(2, "weights.bin"))
                .message(13, new Msg().string(1, "offset").string(2, "0")).varint(14, 1);
        assertMessage(failure(ext), "tensor 'big' keeps its data in an external file ('weights.bin'); external data is not supported");
        assertMessage(failure(tensor("big2", 1, 4).varint(14, 1)), "tensor 'big2' keeps its data in an external file");
    }

    @Test
    void malformedProtobufIsRefusedWithWhereItBroke() {
        assertMessage(failure(new byte[] {0x08, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
                (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 1}), "malformed varint");
        assertMessage(failure(new byte[] {0x3A, (byte) 0x80, (byte) 0x80, 0x40, 0, 0}), "graph declares 1048576 bytes but only 2 remain", "truncated");
        assertMessage(failure(new byte[] {0x08}), "truncated");
        assertMessage(failure(new byte[] {0x00, 0x01}), "invalid field tag");
        assertMessage(failure(new byte[] {0x0F, 0x01}), "wire type");
        assertMessage(failure(new Msg().varint(1, 8).build()), "the model has no graph");
        byte[] groups = new byte[100_000];
        java.util.Arrays.fill(groups, (byte) 0x7B);   // field 15, start-group, nested 100000 deep
        assertMessage(failure(groups), "field number 15 has the group wire type 3, which ONNX does not use");
        assertThrows(OnnxFormatException.class, () -> parse(new byte[0]));
        // A graph field of the wrong wire type, an initializer whose name is not UTF-8, a node without op_type.
        assertMessage(failure(new Msg().varint(7, 3).build()), "field graph (number 7) has wire type 0, expected 2");
        assertMessage(failure(new Msg().message(7, new Msg().message(5, new Msg().bytes(8, new byte[] {(byte) 0xC3, 0x28}))).build()),
                "graph > initializer #0", "name is not valid UTF-8");
        assertMessage(failure(model(13, List.of(new Msg().string(3, "n0")), List.of())), "graph > node #0 'n0': the node has no op_type");
        assertMessage(failure(model(13, List.of(node("Relu", "a", List.of("x"), List.of("y")), node("Relu", "b", List.of("x"), List.of("y"))),
                List.of())), "value 'y' is produced twice");
    }

    @Test
    void truncatedAtEveryOffsetIsAFormatError() {
        byte[] full = model(11, List.of(
                constant("c", tensor("", 1, 2).packedFloats(4, 1, 2)),
                node("Mul", "m", List.of("w", "c"), List.of("y"), attrInts("perm", 1, 0), attrFloat("alpha", 2))),
                List.of(floatTensor("w", new float[] {1, 2, 3, 4, 5, 6}, 2, 3), tensor("i", 7, 2).packedVarints(7, 300, -1)));
        parse(full);
        for (int n = 1; n < full.length; n++) {
            byte[] cut = java.util.Arrays.copyOf(full, n);
            // A cut between top-level fields leaves a shorter valid message; any other cut must say where it broke.
            try {
                parse(cut);
            } catch (OnnxFormatException e) {
                assertTrue(e.getMessage().startsWith("test.onnx: "), e.getMessage());
            }
        }
    }

    @Test
    void randomlyCorruptedModelsFailOnlyWithFormatErrors() {
        byte[] full = model(11, List.of(
                constant("c", tensor("", 7, 4).packedVarints(7, 0, 0, 12, 32)),
                node("Reshape", "r", List.of("w", "c"), List.of("y"), attrInts("perm", 1, 0), attrFloat("alpha", 2))),
                List.of(floatTensor("w", new float[] {1, 2, 3, 4, 5, 6}, 2, 3), tensor("f", 1, 3).packedFloats(4, 1, 2, 3),
                        tensor("h", 10, 2).packedVarints(5, 1, 2)));
        Random rnd = new Random(14);
        int failures = 0;
        for (int trial = 0; trial < 3000; trial++) {
            byte[] bad = full.clone();
            for (int k = 1 + rnd.nextInt(3); k > 0; k--) bad[rnd.nextInt(bad.length)] = (byte) rnd.nextInt(256);
            try {
                OnnxModel m = parse(bad);
                for (OnnxTensor t : m.initializers().values()) {   // whatever parsed must be readable
                    if (t.dataType().isFloatingPoint() && t.numel() < 1000) t.toFloatArray();
                }
            } catch (OnnxFormatException e) {
                failures++;
            }
        }
        assertTrue(failures > 100, "corruptions should mostly be caught, got " + failures);
    }

    @Test
    void readsFromAFileAndRefusesEmptyOrMissingFiles(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.onnx");
        Files.write(f, model(13, List.of(), List.of(floatTensor("w", new float[] {3, 4}, 2))));
        OnnxModel m = OnnxModel.read(f);
        assertEquals(f.toString(), m.source());
        assertArrayEquals(new float[] {3, 4}, m.initializer("w").toFloatArray());
        Path empty = Files.write(dir.resolve("empty.onnx"), new byte[0]);
        assertMessage(assertThrows(OnnxFormatException.class, () -> OnnxModel.read(empty)).getMessage(), "empty.onnx: the file is empty");
        String missing = assertThrows(java.nio.file.NoSuchFileException.class, () -> OnnxModel.read(dir.resolve("none.onnx"))).getMessage();
        assertMessage(missing, "cannot read", "none.onnx", "no such file");
    }

    static void assertMessage(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "expected '" + p + "' in: " + message);
    }
}
