package io.peft4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.backend.Backend;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * bitsandbytes' 4-bit state-dict entries (docs/algorithms.md §18): what {@link Nf4Tensor} writes has
 * bitsandbytes' names, dtypes and shapes and reads back bit for bit; a file laid out as bitsandbytes
 * saves the interop vectors loads and dequantizes to bitsandbytes' own output; damaged entries are
 * refused naming the entry.
 */
class Nf4StateDictTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path dir;

    static float[] normal(long seed, int n, double std) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * std);
        return a;
    }

    @ParameterizedTest(name = "doubleQuant={0} blocksize={1}")
    @CsvSource({"false,64", "true,64", "true,128", "false,4096"})
    void roundTripHasBitsandbytesLayout(boolean dq, int bs) throws Exception {
        Backend b = Backend.cpu();
        int rows = 37, cols = 257, n = rows * cols, blocks = (n + bs - 1) / bs;
        Path file = dir.resolve("w.safetensors");
        try (Tensor w = Tensor.of(normal(7, n, 0.02), rows, cols);
             Nf4Tensor q = Nf4Tensor.quantize(b, "layer.weight", w, bs, dq, "float32");
             Tensor before = q.dequantize(b, DType.F32)) {
            SafetensorsWriter sw = new SafetensorsWriter();
            q.writeTo(sw, "layer.weight", b);
            sw.write(file);
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                expect(f, "layer.weight", DType.U8, (n + 1) / 2, 1);
                expect(f, "layer.weight.quant_map", DType.F32, 16);
                if (dq) {
                    expect(f, "layer.weight.absmax", DType.U8, blocks);
                    expect(f, "layer.weight.nested_absmax", DType.F32, (blocks + 255) / 256);
                    expect(f, "layer.weight.nested_quant_map", DType.F32, 256);
                } else {
                    expect(f, "layer.weight.absmax", DType.F32, blocks);
                    assertFalse(f.contains("layer.weight.nested_absmax"));
                }
                JsonNode st = JSON.readTree(new String(f.bytes("layer.weight.quant_state.bitsandbytes__nf4"), StandardCharsets.UTF_8));
                assertEquals("nf4", st.get("quant_type").asText());
                assertEquals(bs, st.get("blocksize").asInt());
                assertEquals("float32", st.get("dtype").asText());
                assertEquals(rows, st.get("shape").get(0).asInt());
                assertEquals(cols, st.get("shape").get(1).asInt());
                assertEquals(dq, st.has("nested_offset"));
                if (dq) {
                    assertEquals(256, st.get("nested_blocksize").asInt());
                    assertEquals("float32", st.get("nested_dtype").asText());
                    assertEquals(q.offset(), st.get("nested_offset").floatValue());
                }
                try (Nf4Tensor back = Nf4Tensor.readFrom(f, "layer.weight", b); Tensor after = back.dequantize(b, DType.F32)) {
                    assertArrayEquals(q.packed().segment().toArray(ValueLayout.JAVA_BYTE), back.packed().segment().toArray(ValueLayout.JAVA_BYTE));
                    assertArrayEquals(before.toFloatArray(), after.toFloatArray());
                    assertArrayEquals(new long[] {rows, cols}, after.shape());
                }
            }
        }
    }

    static void expect(SafetensorsFile f, String name, DType dtype, long... shape) {
        assertTrue(f.contains(name), name + " present");
        assertEquals(dtype, f.entry(name).dtype(), name + " dtype");
        assertArrayEquals(shape, f.entry(name).shape(), name + " shape");
    }

    @Test
    void bitsPerWeightIsAbout4Point127WithDoubleQuant() {
        Backend b = Backend.cpu();
        try (Tensor w = Tensor.of(normal(3, 4096 * 64, 0.02), 4096, 64);
             Nf4Tensor dq = Nf4Tensor.quantize(b, "w", w, 64, true, "float32");
             Nf4Tensor plain = Nf4Tensor.quantize(b, "w", w, 64, false, "float32")) {
            assertEquals(4 + 8.0 / 64 + 32.0 / (64 * 256), dq.bitsPerWeight(), 1e-3);
            assertEquals(4.5, plain.bitsPerWeight(), 1e-6);
        }
    }

    /** The interop vectors written as bitsandbytes saves Linear4bit's weight (double quantization). */
    Path bitsandbytesFile(Consumer<SafetensorsWriter> tweak, String json) throws Exception {
        String d = "c_normal_257x33_bs64_dq/";
        SafetensorsWriter w = new SafetensorsWriter();
        w.put("fc.weight", DType.U8, new long[] {4241, 1}, fixture(d + "codes.u8"));
        w.put("fc.weight.absmax", DType.U8, new long[] {133}, fixture(d + "qabsmax.u8"));
        w.put("fc.weight.quant_map", DType.F32, new long[] {16}, fixture("nf4_codebook.f32"));
        w.put("fc.weight.nested_absmax", DType.F32, new long[] {1}, fixture(d + "absmax2.f32"));
        w.put("fc.weight.nested_quant_map", DType.F32, new long[] {256}, fixture("dynamic_map.f32"));
        float off = ByteBuffer.wrap(fixture(d + "offset.f32")).order(ByteOrder.LITTLE_ENDIAN).getFloat();
        String state = json != null ? json : "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [257, 33], "
                + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " + off + "}";
        byte[] sb = state.getBytes(StandardCharsets.UTF_8);
        w.put("fc.weight.quant_state.bitsandbytes__nf4", DType.U8, new long[] {sb.length}, sb);
        w.putF32("fc.bias", new long[] {257}, new float[257]);
        tweak.accept(w);
        Path p = dir.resolve("bnb.safetensors");
        w.write(p);
        return p;
    }

    @Test
    void readsBitsandbytesEntriesAndDequantizesToItsOutput() throws Exception {
        Path p = bitsandbytesFile(w -> {}, null);
        try (SafetensorsFile f = SafetensorsFile.open(p); Nf4Tensor q = Nf4Tensor.readFrom(f, "fc.weight", Backend.cpu());
             Tensor out = q.dequantize(Backend.cpu(), DType.F32)) {
            assertTrue(q.doubleQuant());
            assertArrayEquals(new long[] {257, 33}, out.shape());
            float[] want = floats(fixture("c_normal_257x33_bs64_dq/dequant.f32"));
            float[] got = out.toFloatArray();
            for (int i = 0; i < want.length; i++) {
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "element " + i);
            }
            assertTrue(Nf4Tensor.isStoredAt(f, "fc.weight"));
            assertFalse(Nf4Tensor.isStoredAt(f, "fc.bias"));
        }
    }

    @Test
    void damagedEntriesAreRefusedByName() throws Exception {
        refused(bitsandbytesFile(w -> {}, "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [257, 33]}"),
                "fc.weight.quant_state.bitsandbytes__nf4", "fp4");
        refused(bitsandbytesFile(w -> {}, "{\"quant_type\": \"nf4\", \"blocksize\": 48, \"dtype\": \"float32\", \"shape\": [257, 33]}"),
                "fc.weight.quant_state.bitsandbytes__nf4", "blocksize");
        refused(bitsandbytesFile(w -> {}, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [257, 34]}"),
                "fc.weight'", "4241");
        refused(bitsandbytesFile(w -> {}, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [257, 33], "
                + "\"nested_blocksize\": 128, \"nested_offset\": 0.05}"), "fc.weight.quant_state.bitsandbytes__nf4", "nested_blocksize");
        refused(bitsandbytesFile(w -> {}, "{not json"), "fc.weight.quant_state.bitsandbytes__nf4", "not valid JSON");
        refused(bitsandbytesFile(w -> {}, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"int8\", \"shape\": [257, 33]}"),
                "fc.weight.quant_state.bitsandbytes__nf4", "dtype");
        refused(bitsandbytesFile(w -> w.putF32("fc2.weight.quant_map", new long[] {16}, new float[16]), null), "fc.weight", null);
    }

    @Test
    void wrongTablesAndMissingEntriesAreRefusedByName() throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        try (Tensor t = Tensor.of(normal(5, 100, 1), 10, 10); Nf4Tensor q = Nf4Tensor.quantize(Backend.cpu(), "x", t, 64, true, "float32")) {
            q.writeTo(w, "x", Backend.cpu());
            w.write(dir.resolve("ok.safetensors"));
        }
        // Rewrite the file with one entry replaced or dropped.
        for (String victim : new String[] {"x.quant_map", "x.nested_quant_map", "x.absmax", "x.nested_absmax", "x"}) {
            Path p = dir.resolve("bad.safetensors");
            try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("ok.safetensors"))) {
                SafetensorsWriter b = new SafetensorsWriter();
                for (String n : f.names()) {
                    if (!n.equals(victim)) b.put(n, f.entry(n).dtype(), f.entry(n).shape(), f.bytes(n));
                    else if (n.endsWith("quant_map")) b.putF32(n, f.entry(n).shape(), new float[(int) f.entry(n).numel()]);
                }
                b.write(p);
            }
            boolean removed = !victim.endsWith("quant_map");
            if (victim.equals("x.nested_absmax")) {
                // A nested quant map without the nested absmax it belongs to.
                refused(p, "x.nested_quant_map'", "without");
            } else {
                refused(p, victim + "'", removed ? "missing" : "is not");
            }
        }
    }

    static void refused(Path p, String entry, String fragment) throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            if (fragment == null) {   // an unrelated extra entry does not disturb reading fc.weight
                try (Nf4Tensor q = Nf4Tensor.readFrom(f, "fc.weight", Backend.cpu())) {
                    assertEquals(257 * 33, q.numel());
                }
                return;
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Nf4Tensor.readFrom(f, entry.startsWith("fc") ? "fc.weight" : "x", Backend.cpu()).close());
            assertTrue(e.getMessage().contains("'" + entry.replace("'", "")) && e.getMessage().contains(fragment),
                    "message '" + e.getMessage() + "' should name " + entry + " and say '" + fragment + "'");
        }
    }

    @Test
    void nonFiniteWeightsAreRefusedWithTheirName() {
        float[] v = normal(9, 200, 1);
        v[117] = Float.NaN;
        try (Tensor t = Tensor.of(v, 10, 20)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Nf4Tensor.quantize(Backend.cpu(), "blocks.3.weight", t, 64, false, "float32"));
            assertTrue(e.getMessage().contains("'blocks.3.weight'") && e.getMessage().contains("117"), e.getMessage());
        }
    }

    static byte[] fixture(String name) throws Exception {
        return Files.readAllBytes(Path.of(Nf4StateDictTest.class.getResource("/interop/bnb/" + name).toURI()));
    }

    static float[] floats(byte[] b) {
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }
}
