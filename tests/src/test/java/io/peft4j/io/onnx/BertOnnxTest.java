package io.peft4j.io.onnx;

import io.peft4j.nn.BertConfig;
import io.peft4j.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/**
 * all-MiniLM-L6-v2's real ONNX file: every initializer accounted for, Hugging Face names and
 * shapes, the inferred config, and every weight's values against an independent decoding of the
 * file's raw_data (with the anonymous MatMul weights transposed).
 */
class BertOnnxTest {
    @TempDir
    static Path dir;
    static Path file;
    static BertOnnx.Loaded loaded;
    /** Initializer name → its TensorProto bytes, split out of the file by the test's own protobuf code. */
    static Map<String, byte[]> protos;

    @BeforeAll
    static void load() throws Exception {
        file = MiniLmOnnx.copyTo(dir);
        loaded = BertOnnx.load(file);
        protos = new LinkedHashMap<>();
        byte[] graph = Proto.field(Files.readAllBytes(file), 7).bytes();
        for (Proto.Field f : Proto.fields(graph)) {
            if (f.number() == 5) protos.put(Proto.field(f.bytes(), 8).string(), f.bytes());
        }
    }

    @AfterAll
    static void close() {
        if (loaded != null) loaded.close();
    }

    @Test
    void theFileParses() throws Exception {
        OnnxModel m = OnnxModel.read(file);
        assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), m.inputs());
        assertEquals(List.of("last_hidden_state"), m.outputs());
        assertEquals(11, m.opsetVersion());
        assertEquals(protos.size(), m.initializers().size());
        assertEquals(List.copyOf(protos.keySet()), List.copyOf(m.initializers().keySet()));
        long matMuls = m.nodes().stream().filter(n -> n.opType().equals("MatMul")).count();
        assertEquals(48, matMuls);   // 36 Linear weights + 12 attention products (Q·Kᵀ, P·V)
    }

    @Test
    void everyInitializerIsAccountedFor() {
        assertEquals(102, protos.size(), "the issue counts 102 initializers");
        Set<String> accounted = new HashSet<>(loaded.initializerOf().values());
        assertEquals(loaded.weights().size(), accounted.size(), "no initializer serves two weights");
        accounted.addAll(loaded.nonWeights());
        assertEquals(protos.keySet(), accounted);
        assertEquals(List.of("embeddings.position_ids"), loaded.nonWeights());

        // The 36 anonymous MatMul operands each became exactly one Linear weight.
        Set<String> anonymous = protos.keySet().stream().filter(n -> n.startsWith("onnx::MatMul_")).collect(Collectors.toSet());
        assertEquals(36, anonymous.size());
        Map<String, String> linearOf = new HashMap<>();
        loaded.initializerOf().forEach((hf, init) -> { if (anonymous.contains(init)) linearOf.put(init, hf); });
        assertEquals(anonymous, linearOf.keySet());
        for (String hf : linearOf.values()) {
            assertTrue(hf.matches("encoder\\.layer\\.[0-5]\\.(attention\\.self\\.(query|key|value)|attention\\.output\\.dense"
                    + "|intermediate\\.dense|output\\.dense)\\.weight"), hf);
        }
        // Everything else kept its own name.
        loaded.initializerOf().forEach((hf, init) -> { if (!anonymous.contains(init)) assertEquals(hf, init); });
    }

    @Test
    void namesAndShapesMatchHuggingFaces() {
        BertConfig c = BertConfig.ALL_MINILM_L6_V2;
        Map<String, long[]> want = new LinkedHashMap<>();
        want.put("embeddings.word_embeddings.weight", new long[] {30522, 384});
        want.put("embeddings.position_embeddings.weight", new long[] {512, 384});
        want.put("embeddings.token_type_embeddings.weight", new long[] {2, 384});
        want.put("embeddings.LayerNorm.weight", new long[] {384});
        want.put("embeddings.LayerNorm.bias", new long[] {384});
        for (int l = 0; l < c.layers(); l++) {
            String p = "encoder.layer." + l + ".";
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")) {
                want.put(p + m + ".weight", new long[] {384, 384});
                want.put(p + m + ".bias", new long[] {384});
            }
            want.put(p + "attention.output.LayerNorm.weight", new long[] {384});
            want.put(p + "attention.output.LayerNorm.bias", new long[] {384});
            want.put(p + "intermediate.dense.weight", new long[] {1536, 384});   // [out, in]
            want.put(p + "intermediate.dense.bias", new long[] {1536});
            want.put(p + "output.dense.weight", new long[] {384, 1536});
            want.put(p + "output.dense.bias", new long[] {384});
            want.put(p + "output.LayerNorm.weight", new long[] {384});
            want.put(p + "output.LayerNorm.bias", new long[] {384});
        }
        assertEquals(want.keySet(), loaded.weights().keySet());
        long params = 0;
        for (Map.Entry<String, long[]> e : want.entrySet()) {
            Tensor t = loaded.weights().get(e.getKey());
            assertArrayEquals(e.getValue(), t.shape(), e.getKey());
            assertEquals(io.peft4j.tensor.DType.F32, t.dtype(), e.getKey());
            params += t.numel();
        }
        assertEquals(22_565_376, params);   // all-MiniLM-L6-v2 is 22,713,216 with its pooler (384·384 + 384), which the export leaves out
        for (Map.Entry<String, long[]> e : BertOnnx.expectedShapes(c).entrySet()) {
            assertArrayEquals(want.get(e.getKey()), e.getValue(), e.getKey());
        }
    }

    @Test
    void theConfigIsInferredFromTheFile() {
        assertEquals(BertConfig.ALL_MINILM_L6_V2, loaded.config());
        assertEquals(32, loaded.config().headDim());
    }

    @Test
    void weightsHoldTheFileValuesWithLinearWeightsTransposed() {
        for (Map.Entry<String, Tensor> e : loaded.weights().entrySet()) {
            String init = loaded.initializerOf().get(e.getKey());
            float[] raw = rawFloats(init);
            long[] dims = Proto.fields(protos.get(init)).stream().filter(f -> f.number() == 1)
                    .flatMapToLong(f -> Arrays.stream(varints(f))).toArray();
            float[] got = e.getValue().toFloatArray();
            if (init.startsWith("onnx::MatMul_")) {   // stored [in, out] for x·W; PyTorch keeps [out, in]
                int in = (int) dims[0], out = (int) dims[1];
                assertArrayEquals(new long[] {out, in}, e.getValue().shape(), e.getKey());
                for (int i = 0; i < in; i++) {
                    for (int o = 0; o < out; o++) {
                        if (got[o * in + i] != raw[i * out + o]) fail(e.getKey() + "[" + o + "][" + i + "] != " + init + "[" + i + "][" + o + "]");
                    }
                }
            } else {
                assertArrayEquals(dims, e.getValue().shape(), e.getKey());
                assertArrayEquals(raw, got, e.getKey());
            }
        }
    }

    @Test
    void transpositionIsVisibleOnOneWeight() {
        // query of layer 0 is square: [i][j] of the PyTorch weight is [j][i] of the MatMul operand, and not [i][j].
        String init = loaded.initializerOf().get("encoder.layer.0.attention.self.query.weight");
        assertEquals("onnx::MatMul_787", init);
        float[] raw = rawFloats(init);
        Tensor w = loaded.weights().get("encoder.layer.0.attention.self.query.weight");
        int i = 3, j = 250;
        assertEquals(raw[j * 384 + i], w.getFloat(i * 384L + j));
        assertEquals(raw[i * 384 + j], w.getFloat(j * 384L + i));
        assertNotEquals(raw[i * 384 + j], w.getFloat(i * 384L + j));
        // And a rectangular one: intermediate.dense is [1536, 384] here, [384, 1536] in the file.
        float[] rawI = rawFloats(loaded.initializerOf().get("encoder.layer.2.intermediate.dense.weight"));
        Tensor wi = loaded.weights().get("encoder.layer.2.intermediate.dense.weight");
        assertEquals(rawI[7 * 1536 + 1000], wi.getFloat(1000L * 384 + 7));
    }

    /** The float32 values in the raw_data of initializer {@code name}, decoded from the bytes directly. */
    private static float[] rawFloats(String name) {
        byte[] raw = Proto.field(protos.get(name), 9).bytes();
        float[] out = new float[raw.length / 4];
        ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    private static long[] varints(Proto.Field packed) {
        if (packed.bytes() == null) return new long[] {packed.value()};
        try {
            com.google.protobuf.CodedInputStream in = com.google.protobuf.CodedInputStream.newInstance(packed.bytes());
            java.util.ArrayList<Long> v = new java.util.ArrayList<>();
            while (!in.isAtEnd()) v.add(in.readInt64());
            return v.stream().mapToLong(Long::longValue).toArray();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
