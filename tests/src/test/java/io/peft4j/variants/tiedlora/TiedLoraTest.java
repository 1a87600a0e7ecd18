package io.peft4j.variants.tiedlora;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.bounds;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.maxAbs;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static io.peft4j.variants.TestSupport.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.AdapterReference;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraAdapter;
import io.peft4j.variants.lora.LoraConfig;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Tied-LoRA beyond the contract rows: tied gradients over layers, exact parameter counts, presets and free combinations. */
class TiedLoraTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;

    private static ScaledLowRankAdapter adapter(PeftModel pm, String layer) {
        return (ScaledLowRankAdapter) pm.adaptedLayers(DEFAULT).get(layer).adapter(DEFAULT);
    }

    /** Two adapted layers of different shapes in a row (no activation), sharing A and B: l1 7→9, l2 9→6. */
    private static Module twoLayers() {
        Sequential root = new Sequential();
        root.add("l1", new Linear(backend(), 7, 9, true, 11));
        root.add("l2", new Linear(backend(), 9, 6, true, 12));
        return root;
    }

    /**
     * The gradient of a tied A and B is the sum of both layers' parts: the fp32 gradient after one
     * backward through both layers equals the central differences of the float64 model loss, and the
     * sum of the float64 per-layer gradients; each layer's part is far from zero.
     */
    @Test
    void aTiedGradientIsTheSumOverTheLayersThatUseIt() {
        SplittableRandom r = rng("tied gradient");
        int rank = 3, t = 4;
        TiedLoraConfig cfg = TiedLoraConfig.builder().preset("tied-ab-uv").r(rank).alpha(6).targetModules("l1", "l2").build();
        PeftModel pm = PeftModel.wrap(twoLayers(), cfg, backend(), 5);
        TestSupport.randomizeAdapter(pm, DEFAULT, r, 0.5);
        ScaledLowRankAdapter a1 = adapter(pm, "l1"), a2 = adapter(pm, "l2");
        assertSame(a1.a(), a2.a(), "one A for both layers");
        assertSame(a1.b(), a2.b(), "one B for both layers");
        assertEquals(List.of(3L, 9L), java.util.Arrays.stream(a1.a().value().shape()).boxed().toList(), "A [r, max d_in]");
        assertEquals(List.of(9L, 3L), java.util.Arrays.stream(a1.b().value().shape()).boxed().toList(), "B [max d_out, r]");

        float[] x = normal(r, t * 7, 1.0), g = normal(r, t * 6, 1.0);
        for (Parameter p : pm.trainableParameters()) backend().fill(0f, p.grad());
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            pm.forward(ctx, ctx.allocate(t, 7).copyFrom(x));
            pm.backward(ctx, ctx.allocate(t, 6).copyFrom(g), false);
        }
        float[] gradA = a1.a().grad().toFloatArray(), gradB = a1.b().grad().toFloatArray();

        ScaledLowRankReference ref = new ScaledLowRankReference(TiedLoraConfig.A, TiedLoraConfig.B, TiedLoraConfig.U, TiedLoraConfig.V,
                rank, 2.0, (i, o) -> 0);
        Linear l1 = pm.adaptedLayers(DEFAULT).get("l1"), l2 = pm.adaptedLayers(DEFAULT).get("l2");
        double[] xd = toDouble(x), gd = toDouble(g), w1 = values(l1.weight()), b1 = values(l1.bias()), w2 = values(l2.weight()), b2 = values(l2.bias());
        Map<String, double[]> p1 = TestSupport.adapterValues(a1), p2 = TestSupport.adapterValues(a2);
        double[] shA = p1.get(TiedLoraConfig.A), shB = p1.get(TiedLoraConfig.B);
        p2.put(TiedLoraConfig.A, shA);   // the very same arrays: a perturbation reaches both layers
        p2.put(TiedLoraConfig.B, shB);

        // Per-layer parts in float64: layer 2 at its input y1 with g, layer 1 at x with the gradient reaching y1.
        double[] y1 = layer(ref, p1, xd, w1, b1, t, 7, 9);
        Map<String, double[]> part2 = ref.backward(p2, y1, gd, t, 9, 6);
        double[] g1 = TestSupport.add(TestSupport.mul(gd, w2, t, 6, 9), part2.get(AdapterReference.INPUT));
        Map<String, double[]> part1 = ref.backward(p1, xd, g1, t, 7, 9);
        for (String n : List.of(TiedLoraConfig.A, TiedLoraConfig.B)) {
            assertTrue(maxAbs(part1.get(n)) > 0.1 && maxAbs(part2.get(n)) > 0.1, n + ": both layers contribute");
        }
        double[] sumA = TestSupport.add(part1.get(TiedLoraConfig.A), part2.get(TiedLoraConfig.A));
        double[] sumB = TestSupport.add(part1.get(TiedLoraConfig.B), part2.get(TiedLoraConfig.B));

        // Central differences of L = Σ g ⊙ y2 over every entry of the tied tensors (both layers see each change).
        double[] fdA = new double[shA.length], fdB = new double[shB.length];
        for (double[][] pair : new double[][][] {{shA, fdA}, {shB, fdB}}) {
            double[] theta = pair[0];
            for (int i = 0; i < theta.length; i++) {
                double keep = theta[i], h = 1e-4;
                theta[i] = keep + h;
                double lp = loss(ref, p1, p2, xd, gd, w1, b1, w2, b2, t);
                theta[i] = keep - h;
                double lm = loss(ref, p1, p2, xd, gd, w1, b1, w2, b2, t);
                theta[i] = keep;
                pair[1][i] = (lp - lm) / (2 * h);
            }
        }
        assertWithin(fdA, sumA, bounds(new double[fdA.length], 0, 1e-6 * Math.max(1, maxAbs(fdA))), "∂L/∂A: sum of layer parts vs differences");
        assertWithin(fdB, sumB, bounds(new double[fdB.length], 0, 1e-6 * Math.max(1, maxAbs(fdB))), "∂L/∂B: sum of layer parts vs differences");
        assertWithin(sumA, gradA, bounds(new double[sumA.length], 0, 2e-5 * Math.max(1, maxAbs(sumA))), "∂L/∂A accumulated over both layers");
        assertWithin(sumB, gradB, bounds(new double[sumB.length], 0, 2e-5 * Math.max(1, maxAbs(sumB))), "∂L/∂B accumulated over both layers");
        pm.close();
    }

    private static double[] layer(ScaledLowRankReference ref, Map<String, double[]> p, double[] x, double[] w, double[] b, int t, int in, int out) {
        return TestSupport.add(TestSupport.addRows(TestSupport.mulT(x, w, t, in, out), b, t, out), ref.forward(p, x, t, in, out));
    }

    private static double loss(ScaledLowRankReference ref, Map<String, double[]> p1, Map<String, double[]> p2, double[] x, double[] g,
                               double[] w1, double[] b1, double[] w2, double[] b2, int t) {
        double[] y2 = layer(ref, p2, layer(ref, p1, x, w1, b1, t, 7, 9), w2, b2, t, 9, 6);
        return TestSupport.dot(g, y2);
    }

    /** Exact trainable counts of every preset on the demo MLP 784-512-512-10 (fc1, fc2, fc3) at r = 8. */
    @Test
    void trainableParametersOfEveryPresetOnTheDemoMlp() {
        Map<String, Long> want = new LinkedHashMap<>();
        want.put("lora", 8L * (784 + 512) + 8L * (512 + 512) + 8L * (512 + 10));   // 22,736
        want.put("tied-ab", 8L * 784 + 512L * 8);                                // 10,368
        want.put("tied-ab-uv", 10_368L + (8 + 512) + (8 + 512) + (8 + 10));        // 11,426
        want.put("tied-ab-u", 10_368L + 3 * 8);
        want.put("tied-ab-v", 10_368L + 512 + 512 + 10);
        want.put("tied-frozen-a", 512L * 8 + 1058);
        want.put("tied-frozen-b", 784L * 8 + 1058);
        want.put("vera-like", 1058L);
        want.put("tied", 10_368L);
        want.put("tied-uv", 11_426L);
        assertEquals(TiedLoraConfig.PRESETS.stream().map(TiedLoraConfig.Preset::name).toList(), List.copyOf(want.keySet()), "every preset");
        Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 0, 784, 512, 512, 10);
        want.forEach((preset, n) -> {
            PeftModel pm = PeftModel.wrap(mlp, TiedLoraConfig.builder().preset(preset).targetModules("fc1", "fc2", "fc3").build(), backend(), 0);
            assertEquals(n, pm.trainableParameterCount(), preset);
            pm.deleteAdapter(DEFAULT);
        });
        mlp.close();
    }

    /**
     * The spec's check on a GPT-2B-sized QKV stack: 24 layers 2048→6144 at r = 8. The recommended preset
     * trains 213,184 parameters against LoRA's 1,572,864 (13.6%); every preset's count is exact.
     */
    @Test
    void trainableParametersOnA24LayerQkvStack() {
        Sequential stack = new Sequential();
        for (int i = 0; i < 24; i++) {
            Linear l = stack.add("qkv" + i, new Linear(backend(), 2048, 6144, false, i));
            l.weight().setRequiresGrad(false);   // no 50 MB gradient per layer
        }
        long l = 24, in = 2048, out = 6144, r = 8;
        Map<String, Long> want = new LinkedHashMap<>();
        want.put("lora", l * r * (in + out));
        want.put("tied-ab", r * (in + out));
        want.put("tied-ab-uv", r * (in + out) + l * (r + out));
        want.put("tied-ab-u", r * (in + out) + l * r);
        want.put("tied-ab-v", r * (in + out) + l * out);
        want.put("tied-frozen-a", out * r + l * (r + out));
        want.put("tied-frozen-b", r * in + l * (r + out));
        want.put("vera-like", l * (r + out));
        assertEquals(1_572_864L, want.get("lora"));
        assertEquals(213_184L, want.get("tied-ab-uv"));
        want.forEach((preset, n) -> {
            PeftModel pm = PeftModel.wrap(stack, TiedLoraConfig.builder().preset(preset).targetModules(TargetModules.allLinear()).build(),
                    backend(), 0);
            assertEquals(n, pm.trainableParameterCount(), preset);
            pm.deleteAdapter(DEFAULT);
        });
        // VeRA-like through VeRA itself: the same count (per layer d_out + r).
        PeftModel vera = PeftModel.wrap(stack, io.peft4j.variants.vera.VeraConfig.builder().r(8).targetModules(TargetModules.allLinear()).build(),
                backend(), 0);
        assertEquals(want.get("vera-like"), vera.trainableParameterCount());
        vera.close();
    }

    /** The lora preset is LoRA: same A and B give the same output and ΔW. */
    @Test
    void theLoraPresetIsLora() {
        SplittableRandom r = rng("tied lora = lora");
        PeftModel tp = PeftModel.wrap(TestSupport.mlp(2), TiedLoraConfig.builder().preset("lora").r(4).alpha(6).targetModules("fc1", "fc2", "fc3").build(),
                backend(), 0);
        TestSupport.randomizeAdapter(tp, DEFAULT, r, 0.5);
        PeftModel lp = PeftModel.wrap(TestSupport.mlp(2), LoraConfig.builder().r(4).alpha(6).targetModules("fc1", "fc2", "fc3").build(), backend(), 0);
        tp.adaptedLayers(DEFAULT).forEach((path, l) -> {
            ScaledLowRankAdapter t = (ScaledLowRankAdapter) l.adapter(DEFAULT);
            LoraAdapter lora = (LoraAdapter) lp.adaptedLayers(DEFAULT).get(path).adapter(DEFAULT);
            lora.loraA().value().copyFrom(t.a().value());
            lora.loraB().value().copyFrom(t.b().value());
            try (Tensor dt = t.deltaWeight(backend()); Tensor dl = lora.deltaWeight(backend())) {
                assertRelClose(dl.toFloatArray(), dt.toFloatArray(), 1e-6, path + ": ΔW");
            }
        });
        float[] x = normal(r, 5 * 13, 1.0);
        assertRelClose(forward(lp, x, 5), forward(tp, x, 5), 1e-5, "output");
        tp.close();
        lp.close();
    }

    /** Every preset starts at ΔW = 0, with frozen factors random (nonzero) and the zero carried by one trained factor. */
    @ParameterizedTest
    @ValueSource(strings = {"lora", "tied-ab", "tied-ab-uv", "tied-ab-u", "tied-ab-v", "tied-frozen-a", "tied-frozen-b", "vera-like"})
    void everyPresetStartsAtTheIdentity(String preset) {
        SplittableRandom r = rng("identity " + preset);
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(2), TiedLoraConfig.builder().preset(preset).r(3).targetModules(TargetModules.allLinear()).build(),
                backend(), 4);
        float[] x = normal(r, 5 * 13, 1.0);
        TestSupport.assertBitEqual(forward(TestSupport.mlp(2), x, 5), forward(pm, x, 5), preset + ": a fresh adapter leaves the output unchanged");
        TiedLoraConfig.Preset p = TiedLoraConfig.preset(preset);
        ScaledLowRankAdapter a = adapter(pm, "fc1");
        if (!p.trainA()) assertTrue(maxAbs(a.a().value().toFloatArray()) > 0, preset + ": frozen A is random");
        if (!p.trainB()) assertTrue(maxAbs(a.b().value().toFloatArray()) > 0, preset + ": frozen B is random");
        if (!p.trainA()) assertTrue(maxAbs(a.a().value().toFloatArray()) <= Math.sqrt(6.0 / 17) + 1e-7, preset + ": frozen A ~ U(±√(6/max d_in))");
        pm.close();
    }

    @Test
    void presetsAndFreeCombinationsFromTheConfigFile() {
        var m = AdapterMethods.forType("TIEDLORA");
        assertEquals("tiedlora", m.name());
        Map<String, Object> json = new HashMap<>(Map.of("peft_type", "TIEDLORA", "target_modules", List.of("fc1")));
        TiedLoraConfig dflt = (TiedLoraConfig) m.configFromJson(json);
        assertEquals("tied-ab-uv", dflt.preset());
        assertTrue(dflt.tieA() && dflt.tieB() && dflt.trainA() && dflt.trainB() && dflt.trainU() && dflt.trainV());
        assertEquals(8, dflt.r());
        assertEquals(1f, dflt.scaling());

        json.put("preset", "vera-like");
        TiedLoraConfig vl = (TiedLoraConfig) m.configFromJson(json);
        assertTrue(vl.tieA() && vl.tieB() && !vl.trainA() && !vl.trainB() && vl.trainU() && vl.trainV());
        json.put("train_b", true);       // a free combination: the preset with B trained
        json.put("tie_a", false);
        TiedLoraConfig free = (TiedLoraConfig) m.configFromJson(json);
        assertTrue(!free.tieA() && free.tieB() && !free.trainA() && free.trainB() && free.trainU() && free.trainV());
        assertEquals(free, m.configFromJson(free.toJson()), "toJson/fromJson round trip");
        json.put("train_b", "preset");
        assertTrue(!((TiedLoraConfig) m.configFromJson(json)).trainB(), "'preset' means the preset's value");

        json.put("preset", "tl9");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.configFromJson(json));
        assertTrue(e.getMessage().contains("preset") && e.getMessage().contains("tied-ab-uv"), e.getMessage());
        Map<String, Object> frozen = new HashMap<>(Map.of("peft_type", "TIEDLORA", "target_modules", List.of("fc1"), "preset", "vera-like",
                "train_u", false, "train_v", false));
        e = assertThrows(IllegalArgumentException.class, () -> m.configFromJson(frozen));
        assertTrue(e.getMessage().contains("nothing would train"), e.getMessage());
        Map<String, Object> bad = new HashMap<>(Map.of("peft_type", "TIEDLORA", "target_modules", List.of("fc1"), "tie_a", "yes"));
        e = assertThrows(IllegalArgumentException.class, () -> m.configFromJson(bad));
        assertTrue(e.getMessage().contains("tie_a"), e.getMessage());
    }
}
