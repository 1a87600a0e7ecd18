package io.peft4j.io.onnx;

import io.peft4j.io.onnx.Proto.Msg;
import io.peft4j.nn.BertConfig;
import io.peft4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.peft4j.io.onnx.Proto.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A tiny BERT export built field by field, in the opset-17 style (LayerNormalization nodes, the
 * bias as the Add's second operand, a constant Reshape target) and with odd sizes, weights
 * spread over raw_data, packed and unpacked float_data: the loader must name, transpose and size
 * it as it does the real file, and random corruption must end in OnnxFormatException only.
 */
class TinyBertOnnxTest {
    static final BertConfig CONFIG = new BertConfig(11, 10, 2, 2, 14, 7, 3, 1e-6f);

    /** The model's bytes, with the weights it holds in PyTorch's layout by Hugging Face name. */
    record Built(byte[] bytes, Map<String, float[]> weights) {}

    static Built build(long seed, boolean epsilonAttribute) {
        Random rnd = new Random(seed);
        BertConfig c = CONFIG;
        Map<String, float[]> weights = new LinkedHashMap<>();
        List<Msg> inits = new ArrayList<>();
        List<Msg> nodes = new ArrayList<>();
        int[] anon = {900};
        inits.add(tensor("embeddings.position_ids", 7, 1, c.maxPositions()).bytes(9, longsLe(0, 1, 2, 3, 4, 5, 6)));
        named(rnd, inits, weights, "embeddings.word_embeddings.weight", 0, c.vocabSize(), c.hidden());
        named(rnd, inits, weights, "embeddings.position_embeddings.weight", 1, c.maxPositions(), c.hidden());
        named(rnd, inits, weights, "embeddings.token_type_embeddings.weight", 2, c.typeVocabSize(), c.hidden());
        String x = layerNorm(rnd, inits, nodes, weights, "embeddings.LayerNorm", "emb_sum", epsilonAttribute);
        for (int l = 0; l < c.layers(); l++) {
            String p = "encoder.layer." + l + ".";
            String q = linear(rnd, inits, nodes, weights, p + "attention.self.query", x, c.hidden(), c.hidden(), anon);
            linear(rnd, inits, nodes, weights, p + "attention.self.key", x, c.hidden(), c.hidden(), anon);
            linear(rnd, inits, nodes, weights, p + "attention.self.value", x, c.hidden(), c.hidden(), anon);
            nodes.add(constant(p + "shape", tensor("", 7, 4).packedVarints(7, 0, 0, c.heads(), c.headDim())));
            nodes.add(node("Reshape", p + "reshape", List.of(q, p + "shape"), List.of(p + "q_heads")));
            String attn = linear(rnd, inits, nodes, weights, p + "attention.output.dense", p + "context", c.hidden(), c.hidden(), anon);
            String ln1 = layerNorm(rnd, inits, nodes, weights, p + "attention.output.LayerNorm", attn, epsilonAttribute);
            String inter = linear(rnd, inits, nodes, weights, p + "intermediate.dense", ln1, c.hidden(), c.intermediate(), anon);
            String out = linear(rnd, inits, nodes, weights, p + "output.dense", inter, c.intermediate(), c.hidden(), anon);
            x = layerNorm(rnd, inits, nodes, weights, p + "output.LayerNorm", out, epsilonAttribute);
        }
        return new Built(model(17, nodes, inits), weights);
    }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rnd.nextGaussian();
        return v;
    }

    /** A named initializer; {@code style} 0 = raw_data, 1 = packed float_data, 2 = one float_data field per value. */
    private static void named(Random rnd, List<Msg> inits, Map<String, float[]> weights, String name, int style, long... dims) {
        int n = 1;
        for (long d : dims) n *= (int) d;
        float[] v = random(rnd, n);
        weights.put(name, v);
        Msg t = tensor(name, 1, dims);
        switch (style) {
            case 0 -> t.bytes(9, floatsLe(v));
            case 1 -> t.packedFloats(4, v);
            default -> { for (float f : v) t.f32(4, f); }
        }
        inits.add(t);
    }

    /** MatMul(x, anonymous [in, out]) then Add(·, bias); returns the Add's output. */
    private static String linear(Random rnd, List<Msg> inits, List<Msg> nodes, Map<String, float[]> weights, String module,
                                 String x, int in, int out, int[] anon) {
        float[] w = random(rnd, out * in);   // PyTorch's [out, in]
        float[] wt = new float[in * out];
        for (int o = 0; o < out; o++) for (int i = 0; i < in; i++) wt[i * out + o] = w[o * in + i];
        String init = "onnx::MatMul_" + anon[0]++;
        weights.put(module + ".weight", w);
        inits.add(anon[0] % 2 == 0 ? floatTensor(init, wt, in, out) : tensor(init, 1, in, out).packedFloats(4, wt));
        named(rnd, inits, weights, module + ".bias", 0, out);
        nodes.add(node("MatMul", module + "/MatMul", List.of(x, init), List.of(module + "/mm")));
        nodes.add(node("Add", module + "/Add", List.of(module + "/mm", module + ".bias"), List.of(module + "/out")));
        return module + "/out";
    }

    private static String layerNorm(Random rnd, List<Msg> inits, List<Msg> nodes, Map<String, float[]> weights, String prefix,
                                    String x, boolean epsilonAttribute) {
        named(rnd, inits, weights, prefix + ".weight", 1, CONFIG.hidden());
        named(rnd, inits, weights, prefix + ".bias", 0, CONFIG.hidden());
        Msg[] attrs = epsilonAttribute ? new Msg[] {attrFloat("epsilon", CONFIG.layerNormEps()), attrInt("axis", -1)} : new Msg[] {attrInt("axis", -1)};
        nodes.add(node("LayerNormalization", prefix, List.of(x, prefix + ".weight", prefix + ".bias"), List.of(prefix + "/out"), attrs));
        return prefix + "/out";
    }

    @Test
    void loadsNamesTransposesAndInfersTheConfig() {
        Built b = build(1, true);
        try (BertOnnx.Loaded l = BertOnnx.load(OnnxModel.parse(b.bytes(), "tiny.onnx"))) {
            assertEquals(CONFIG, l.config());
            assertEquals(List.of("embeddings.position_ids"), l.nonWeights());
            assertEquals(b.weights().keySet(), l.weights().keySet());
            Map<String, long[]> shapes = BertOnnx.expectedShapes(CONFIG);
            for (Map.Entry<String, float[]> e : b.weights().entrySet()) {
                Tensor t = l.weights().get(e.getKey());
                assertArrayEquals(shapes.get(e.getKey()), t.shape(), e.getKey());
                assertArrayEquals(e.getValue(), t.toFloatArray(), e.getKey());
            }
            assertEquals("onnx::MatMul_900", l.initializerOf().get("encoder.layer.0.attention.self.query.weight"));
            assertArrayEquals(new long[] {14, 10}, l.weights().get("encoder.layer.1.intermediate.dense.weight").shape());
        }
    }

    @Test
    void layerNormalizationWithoutEpsilonUsesOnnxsDefault() {
        try (BertOnnx.Loaded l = BertOnnx.load(OnnxModel.parse(build(2, false).bytes(), "tiny.onnx"))) {
            assertEquals(1e-5f, l.config().layerNormEps());
        }
    }

    @Test
    void randomlyCorruptedTinyBertsFailOnlyWithFormatErrors() {
        byte[] good = build(3, true).bytes();
        Random rnd = new Random(99);
        int failed = 0, loaded = 0;
        for (int trial = 0; trial < 1500; trial++) {
            byte[] bad = good.clone();
            for (int k = 1 + rnd.nextInt(2); k > 0; k--) bad[rnd.nextInt(bad.length)] = (byte) rnd.nextInt(256);
            try (BertOnnx.Loaded l = BertOnnx.load(OnnxModel.parse(bad, "fuzz.onnx"))) {
                loaded++;   // a flipped weight value is still a valid model
                assertEquals(BertOnnx.expectedShapes(l.config()).keySet(), l.weights().keySet());
            } catch (OnnxFormatException e) {
                failed++;
                assertTrue(e.getMessage().startsWith("fuzz.onnx: "), e.getMessage());
            }
        }
        assertTrue(failed > 100 && loaded > 100, "failed " + failed + ", loaded " + loaded);
    }
}
