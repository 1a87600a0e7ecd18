package io.peft4j.variants.lora;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.linears;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** LoRA's own settings: defaults, scaling, initialisation, dropout, and its adapter_config.json. */
class LoraTest {
    private static final LoraMethod METHOD = new LoraMethod();

    @Test
    void defaultsAreThoseOfPeft() {
        LoraConfig c = LoraConfig.builder().targetModules("q").build();
        assertEquals(8, c.r());
        assertEquals(8f, c.alpha());
        assertEquals(0f, c.dropout());
        assertFalse(c.useRsLora());
        assertEquals("kaiming", c.init());
        assertEquals(1f, c.scaling());
        assertEquals("LORA", c.peftType());
    }

    @Test
    void scalingIsAlphaOverROrOverSqrtR() {
        assertEquals(2f, LoraConfig.builder().r(8).alpha(16).targetModules("q").build().scaling());
        assertEquals((float) (16 / Math.sqrt(8)), LoraConfig.builder().r(8).alpha(16).useRsLora(true).targetModules("q").build().scaling());
        assertEquals(5f / 3f, LoraConfig.builder().r(3).alpha(5).targetModules("q").build().scaling(), 1e-7);
    }

    @Test
    void invalidSettingsAreRefused() {
        List<Runnable> bad = List.of(
                () -> LoraConfig.builder().r(0).targetModules("q").build(),
                () -> LoraConfig.builder().alpha(0).targetModules("q").build(),
                () -> LoraConfig.builder().alpha(Float.NaN).targetModules("q").build(),
                () -> LoraConfig.builder().alpha(Float.POSITIVE_INFINITY).targetModules("q").build(),
                () -> LoraConfig.builder().dropout(1f).targetModules("q").build(),
                () -> LoraConfig.builder().dropout(-0.1f).targetModules("q").build(),
                () -> LoraConfig.builder().init("xavier").targetModules("q").build(),
                () -> LoraConfig.builder().build());
        for (Runnable b : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::run);
            assertTrue(e.getMessage().startsWith("LoRA"), e.getMessage());
        }
    }

    private static Linear wide(long seed) {
        return new Linear(backend(), 512, 64, true, seed);
    }

    private static LoraAdapter adapterOn(Linear layer, LoraConfig cfg, String name, long seed) {
        return (LoraAdapter) cfg.create(layer, name, backend(), seed);
    }

    @Test
    void kaimingInitIsUniformWithinOneOverSqrtFanInAndBIsZero() {
        Linear layer = wide(1);
        LoraConfig cfg = LoraConfig.builder().r(8).alpha(16).targetModules("q").build();
        float[] a = adapterOn(layer, cfg, "default", 77).loraA().value().toFloatArray();
        double bound = 1 / Math.sqrt(512);
        double max = 0, sum = 0;
        for (float v : a) {
            max = Math.max(max, Math.abs(v));
            sum += v;
        }
        assertTrue(max <= bound, "max |A| " + max + " <= 1/sqrt(512) = " + bound);
        assertTrue(max >= 0.99 * bound, "kaiming-uniform fills its range: max |A| " + max);
        assertEquals(0, sum / a.length, 0.05 * bound, "mean of A");
        for (float v : adapterOn(layer, cfg, "default", 77).loraB().value().toFloatArray()) assertEquals(0f, v, "B starts at zero");
        TestSupport.assertBitEqual(a, adapterOn(layer, cfg, "default", 77).loraA().value().toFloatArray(), "same seed, same A");
        assertTrue(TestSupport.differs(a, adapterOn(layer, cfg, "default", 78).loraA().value().toFloatArray()), "another seed, another A");
    }

    @Test
    void gaussianInitHasStdOneOverR() {
        for (int r : new int[] {4, 8}) {
            LoraConfig cfg = LoraConfig.builder().r(r).alpha(16).init("gaussian").targetModules("q").build();
            LoraAdapter ad = adapterOn(wide(1), cfg, "default", 5);
            float[] a = ad.loraA().value().toFloatArray();
            double sum = 0, sq = 0;
            for (float v : a) {
                sum += v;
                sq += (double) v * v;
            }
            double mean = sum / a.length, std = Math.sqrt(sq / a.length - mean * mean);
            assertEquals(1.0 / r, std, 0.05 / r, "std of A for r=" + r);
            assertEquals(0, mean, 0.1 / r, "mean of A");
            for (float v : ad.loraB().value().toFloatArray()) assertEquals(0f, v);
        }
    }

    @Test
    void eachLayerGetsItsOwnInitialisation() {
        PeftModel pm = PeftModel.wrap(TestSupport.nested(1), LoraConfig.builder().r(4).targetModules("o").build(), backend(), 3);
        float[] a0 = ((LoraAdapter) pm.adaptedLayers("default").get("layers.0.o").adapter("default")).loraA().value().toFloatArray();
        float[] a1 = ((LoraAdapter) pm.adaptedLayers("default").get("layers.1.o").adapter("default")).loraA().value().toFloatArray();
        assertTrue(TestSupport.differs(java.util.Arrays.copyOf(a0, 6), java.util.Arrays.copyOf(a1, 6)), "layers draw different A");
    }

    /**
     * With W0 = 0, b = 0, A = B = I and s = 1, the training-mode output is D(x) itself: each entry
     * is dropped (0) or kept and scaled by 1/(1−p) (inverted dropout), about a fraction p dropped.
     */
    @Test
    void dropoutDropsAboutPAndScalesTheRestByOneOverOneMinusP() {
        int d = 8, t = 500;
        float p = 0.1f;
        Sequential root = new Sequential();
        Linear layer = root.add("q", new Linear(backend(), d, d, true, 1));
        layer.weight().value().copyFrom(new float[d * d]);
        layer.bias().value().copyFrom(new float[d]);
        PeftModel pm = PeftModel.wrap(root, LoraConfig.builder().r(d).alpha(d).dropout(p).targetModules("q").build(), backend(), 9);
        LoraAdapter ad = (LoraAdapter) layer.adapter("default");
        float[] eye = new float[d * d];
        for (int i = 0; i < d; i++) eye[i * d + i] = 1f;
        ad.loraA().value().copyFrom(eye);
        ad.loraB().value().copyFrom(eye);
        SplittableRandom r = rng("dropout");
        float[] x = normal(r, t * d, 1.0);
        TestSupport.assertBitEqual(x, TestSupport.forward(pm, x, t), "eval mode: no dropout, the output is x");
        float[] y = TestSupport.forward(pm, x, t, true, 4);
        int dropped = 0;
        for (int i = 0; i < x.length; i++) {
            if (y[i] == 0f) {
                dropped++;
            } else {
                assertEquals(x[i] / (1 - (double) p), y[i], 4e-7 * Math.abs(y[i]), "kept entry " + i + " is x/(1-p)");
            }
        }
        double frac = (double) dropped / x.length;
        assertTrue(frac > 0.07 && frac < 0.13, "dropped fraction " + frac + " for p = " + p);
        assertTrue(TestSupport.differs(y, TestSupport.forward(pm, x, t, true, 5)), "each step draws a new mask");
    }

    @Test
    void configJsonHasPeftsFields() {
        LoraConfig c = LoraConfig.builder().r(4).alpha(2.5f).dropout(0.05f).useRsLora(true).init("gaussian").targetModules("q", "v").build();
        Map<String, Object> j = c.toJson();
        assertEquals("LORA", j.get("peft_type"));
        assertEquals(4, j.get("r"));
        assertEquals(2.5, ((Number) j.get("lora_alpha")).doubleValue());
        assertEquals(0.05f, ((Number) j.get("lora_dropout")).floatValue());
        assertEquals(true, j.get("use_rslora"));
        assertEquals("gaussian", j.get("init_lora_weights"));
        assertEquals(List.of("q", "v"), j.get("target_modules"));
        assertEquals(false, j.get("use_dora"));
        assertEquals(16, ((Number) LoraConfig.builder().alpha(16).targetModules("q").build().toJson().get("lora_alpha")).intValue());
        assertEquals(true, LoraConfig.builder().targetModules("q").build().toJson().get("init_lora_weights"));
    }

    @Test
    void configRoundTripsThroughJson(@TempDir Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<LoraConfig> configs = List.of(
                LoraConfig.builder().targetModules("q").build(),
                LoraConfig.builder().r(3).alpha(5).dropout(0.1f).useRsLora(true).init("gaussian").targetModules(TargetModules.allLinear()).build(),
                LoraConfig.builder().r(16).alpha(2.5f).targetModules("fc1", "fc2").build());
        for (LoraConfig c : configs) {
            Path f = dir.resolve("c.json");
            json.writeValue(f.toFile(), c.toJson());
            @SuppressWarnings("unchecked")
            Map<String, Object> back = json.readValue(f.toFile(), Map.class);
            assertEquals(c, METHOD.configFromJson(back), "round trip of " + c);
        }
        Map<String, Object> minimal = new HashMap<>(Map.of("peft_type", "LORA", "target_modules", List.of("q")));
        LoraConfig d = (LoraConfig) METHOD.configFromJson(minimal);
        assertEquals(8, d.r());
        assertEquals(8f, d.alpha());
        assertEquals("kaiming", d.init());
    }

    @Test
    void unsupportedSettingsAreRefusedByName() {
        Map<String, Object> base = LoraConfig.builder().targetModules("q").build().toJson();
        Map<String, Object> cases = new LinkedHashMap<>();
        cases.put("bias", "all");
        cases.put("fan_in_fan_out", true);
        cases.put("rank_pattern", Map.of("q", 0));
        cases.put("alpha_pattern", Map.of("q", -1));
        cases.put("init_lora_weights", "pissa");
        cases.put("r", "eight");
        cases.put("target_modules", 7);
        cases.forEach((key, value) -> {
            Map<String, Object> j = new HashMap<>(base);
            j.put(key, value);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> METHOD.configFromJson(j), key);
            assertTrue(e.getMessage().contains(key) || e.getMessage().contains(String.valueOf(value)), key + ": " + e.getMessage());
        });
        Map<String, Object> noInit = new HashMap<>(base);
        noInit.put("init_lora_weights", false);
        assertThrows(IllegalArgumentException.class, () -> METHOD.configFromJson(noInit), "init_lora_weights=false (B random) is not implemented");
    }

    private static Map<String, Integer> ranks(Object... kv) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], (Integer) kv[i + 1]);
        return m;
    }

    /** PEFT's get_pattern_key: the first key whose "(.*\.)?(key)$" matches the whole path; a partial name never matches. */
    @Test
    void patternKeysMatchWholeNamesOrDottedSuffixesInOrder() {
        List<String> keys = List.of("q", "layers\\.1\\.o", "o", "ayers.0.q");
        assertEquals("q", LoraConfig.patternKey(keys, "layers.0.q"));
        assertEquals("q", LoraConfig.patternKey(keys, "q"));
        assertEquals(null, LoraConfig.patternKey(keys, "head_q"), "head_q ends in q but not in .q");
        assertEquals("layers\\.1\\.o", LoraConfig.patternKey(keys, "layers.1.o"), "first matching key in order");
        assertEquals("o", LoraConfig.patternKey(keys, "layers.0.o"));
        assertEquals(null, LoraConfig.patternKey(List.of("ayers.0.q", "yers"), "layers.0.q"), "a partial name is no match");
        assertEquals("layers\\.\\d\\.q", LoraConfig.patternKey(List.of("layers\\.\\d\\.q"), "layers.1.q"), "keys are regexes");
        assertEquals(null, LoraConfig.patternKey(List.of(), "layers.0.q"));
    }

    /** Each layer's adapter has the rank and scale its patterns give it; layers no key names keep r and lora_alpha. */
    @Test
    void rankAndAlphaPatternsGiveEachLayerItsOwnShapeAndScale() {
        Map<String, Float> alphas = new LinkedHashMap<>();
        alphas.put("layers.0.q", 12f);
        alphas.put("embed", 3f);
        LoraConfig cfg = LoraConfig.builder().r(4).alpha(8).targetModules(TargetModules.allLinear())
                .rankPattern(ranks("q", 3, "layers\\.1\\.o", 5, "o", 2)).alphaPattern(alphas).build();
        PeftModel pm = PeftModel.wrap(TestSupport.nested(5), cfg, backend(), 9);
        Map<String, Integer> wantR = Map.of("embed", 4, "layers.0.q", 3, "layers.1.q", 3, "layers.0.o", 2, "layers.1.o", 5, "head_q", 4);
        Map<String, Float> wantS = Map.of("embed", 3f / 4, "layers.0.q", 12f / 3, "layers.1.q", 8f / 3, "layers.0.o", 8f / 2,
                "layers.1.o", 8f / 5, "head_q", 8f / 4);
        Map<String, Linear> layers = pm.adaptedLayers("default");
        assertEquals(wantR.keySet(), layers.keySet());
        SplittableRandom r = rng("lora patterns");
        for (var e : layers.entrySet()) {
            String p = e.getKey();
            Linear l = e.getValue();
            LoraAdapter a = (LoraAdapter) l.adapter("default");
            int rank = wantR.get(p);
            assertEquals(List.of(rank, (int) l.inFeatures()), List.of((int) a.loraA().value().dim(0), (int) a.loraA().value().dim(1)), p);
            assertEquals(List.of((int) l.outFeatures(), rank), List.of((int) a.loraB().value().dim(0), (int) a.loraB().value().dim(1)), p);
            assertEquals(wantS.get(p), cfg.scalingOf(p), 1e-7, p);
            // ΔW = s·B·A with this layer's own s (B randomized: it is zero at init).
            a.loraB().value().copyFrom(normal(r, (int) (l.outFeatures() * rank), 1));
            float[] av = a.loraA().value().toFloatArray(), bv = a.loraB().value().toFloatArray(), d = a.deltaWeight(backend()).toFloatArray();
            int in = (int) l.inFeatures();
            for (int o = 0; o < l.outFeatures(); o++) {
                for (int i = 0; i < in; i++) {
                    double want = 0;
                    for (int k = 0; k < rank; k++) want += (double) bv[o * rank + k] * av[k * in + i];
                    assertEquals(wantS.get(p) * want, d[o * in + i], 1e-5 * (1 + Math.abs(wantS.get(p) * want)), p);
                }
            }
        }
    }

    @Test
    void patternsRoundTripThroughJsonAndTheCommandLine(@TempDir Path dir) throws IOException {
        Map<String, Float> alphas = new LinkedHashMap<>();
        alphas.put("fc2", 2.5f);
        alphas.put("fc\\d", 16f);
        LoraConfig c = LoraConfig.builder().r(4).targetModules(TargetModules.allLinear()).rankPattern(ranks("fc1", 7, "fc3", 1))
                .alphaPattern(alphas).build();
        Map<String, Object> j = c.toJson();
        assertEquals(Map.of("fc1", 7, "fc3", 1), j.get("rank_pattern"));
        assertEquals(List.of("fc2", "fc\\d"), List.copyOf(((Map<?, ?>) j.get("alpha_pattern")).keySet()), "order is kept: first match wins");
        ObjectMapper json = new ObjectMapper();
        Path f = dir.resolve("c.json");
        json.writeValue(f.toFile(), j);
        @SuppressWarnings("unchecked")
        Map<String, Object> back = json.readValue(f.toFile(), Map.class);
        LoraConfig read = (LoraConfig) METHOD.configFromJson(back);
        assertEquals(c, read);
        assertEquals(List.of("fc2", "fc\\d"), List.copyOf(read.alphaPattern().keySet()));
        // Saved and loaded with its weights, each layer keeps its own rank.
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(2), c, backend(), 3);
        pm.save(dir.resolve("a"));
        PeftModel loaded = PeftModel.load(TestSupport.mlp(2), dir.resolve("a"));
        assertEquals(Map.of("fc1", 7L, "fc2", 4L, "fc3", 1L), Map.of(
                "fc1", ((LoraAdapter) loaded.adaptedLayers("default").get("fc1").adapter("default")).loraA().value().dim(0),
                "fc2", ((LoraAdapter) loaded.adaptedLayers("default").get("fc2").adapter("default")).loraA().value().dim(0),
                "fc3", ((LoraAdapter) loaded.adaptedLayers("default").get("fc3").adapter("default")).loraA().value().dim(0)));
        // --set rank_pattern=fc1=7,fc3=1
        var field = METHOD.fields().stream().filter(x -> x.name().equals("rank_pattern")).findFirst().orElseThrow();
        assertEquals(Map.of("fc1", 7L, "fc3", 1L), field.parse("fc1=7, fc3=1"));
        assertEquals(Map.of(), field.parse(""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> field.parse("fc1=seven"));
        assertTrue(e.getMessage().contains("rank_pattern") && e.getMessage().contains("seven"), e.getMessage());
    }

    @Test
    void badPatternsAreRefusedByName() {
        Map<String, Object> base = LoraConfig.builder().targetModules("q").build().toJson();
        Map<String, Object> rank = new LinkedHashMap<>();
        rank.put("q", Map.of("q", 2.5));
        rank.put("'q'", Map.of("q", "four"));
        rank.put("65537", Map.of("q", 65537));
        rank.put("JSON object", List.of("q", 4));
        rank.forEach((expected, value) -> {
            Map<String, Object> j = new HashMap<>(base);
            j.put("rank_pattern", value);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> METHOD.configFromJson(j), String.valueOf(value));
            assertTrue(e.getMessage().contains("rank_pattern") && e.getMessage().contains(expected), e.getMessage());
        });
        for (Object value : List.of(Map.of("q", 0), Map.of("q", -2.5), Map.of("q", "big"), Map.of("q", Double.POSITIVE_INFINITY))) {
            Map<String, Object> j = new HashMap<>(base);
            j.put("alpha_pattern", value);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> METHOD.configFromJson(j), String.valueOf(value));
            assertTrue(e.getMessage().contains("alpha_pattern['q']"), e.getMessage());
        }
        Map<String, Object> badRegex = new HashMap<>(base);
        badRegex.put("rank_pattern", Map.of("q(", 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> METHOD.configFromJson(badRegex));
        assertTrue(e.getMessage().contains("rank_pattern key 'q('"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.builder().targetModules("q").rankPattern(Map.of("q", 0)).build());
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.builder().targetModules("q").alphaPattern(Map.of("q", Float.NaN)).build());
    }

    /** A LoRA file whose config says use_dora but that has no magnitudes is refused naming the missing tensor. */
    @Test
    void loadingAUseDoraAdapterWithoutMagnitudesFailsCleanly(@TempDir Path dir) throws IOException {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), LoraConfig.builder().r(4).targetModules("fc1").build());
        pm.save(dir);
        ObjectMapper json = new ObjectMapper();
        @SuppressWarnings("unchecked")
        Map<String, Object> j = json.readValue(dir.resolve(PeftModel.CONFIG_FILE).toFile(), Map.class);
        j.put("use_dora", true);
        json.writeValue(dir.resolve(PeftModel.CONFIG_FILE).toFile(), j);
        var fresh = TestSupport.mlp(1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(fresh, dir));
        assertTrue(e.getMessage().contains("missing tensor 'base_model.model.fc1.lora_magnitude_vector'"), e.getMessage());
        linears(fresh).values().forEach(l -> assertTrue(l.adapters().isEmpty()));
        assertTrue(Files.exists(dir.resolve(PeftModel.WEIGHTS_FILE)));
    }

    @Test
    void frozenAdapterStillPassesTheInputGradient() {
        // An inactive adapter's layer: backward must give the base dx, and must not touch the frozen adapter.
        PeftModel pm = PeftModel.wrap(TestSupport.single(1, 13, 11), LoraConfig.builder().r(4).targetModules("q").build());
        TestSupport.randomizeAdapter(pm, "default", rng("frozen"), 0.4);
        pm.disableAdapters();
        SplittableRandom r = rng("frozen grads");
        float[] x = normal(r, 3 * 13, 1), g = normal(r, 3 * 11, 1);
        float[] dxDisabled, dxPlain;
        try (StepContext ctx = new StepContext(backend())) {
            TestSupport.begin(ctx, true, 1);
            Tensor xt = ctx.allocate(3, 13).copyFrom(x);
            pm.forward(ctx, xt);
            dxDisabled = pm.backward(ctx, ctx.allocate(3, 11).copyFrom(g), true).toFloatArray();
        }
        var plain = TestSupport.single(1, 13, 11);
        plain.namedParameters().values().forEach(p -> p.setRequiresGrad(false));
        try (StepContext ctx = new StepContext(backend())) {
            TestSupport.begin(ctx, true, 1);
            Tensor xt = ctx.allocate(3, 13).copyFrom(x);
            plain.forward(ctx, xt);
            dxPlain = plain.backward(ctx, ctx.allocate(3, 11).copyFrom(g), true).toFloatArray();
        }
        TestSupport.assertBitEqual(dxPlain, dxDisabled, "disabled adapter: dx is the base layer's");
    }

    /** Adapter.backward accumulates into the gradients of the parameters that train, also when one factor is frozen. */
    @Test
    void gradientsAccumulateWhenOnlyOneFactorTrains() {
        for (boolean freezeA : new boolean[] {false, true}) {
            SplittableRandom r = rng("accumulate " + freezeA);
            int t = 3, in = 13, out = 11, rank = 4;
            PeftModel pm = PeftModel.wrap(TestSupport.single(1, in, out), LoraConfig.builder().r(rank).alpha(8).targetModules("q").build());
            TestSupport.randomizeAdapter(pm, "default", r, 0.5);
            LoraAdapter ad = (LoraAdapter) pm.adaptedLayers("default").get("layers.0.q").adapter("default");
            if (freezeA) ad.loraA().setRequiresGrad(false);
            float[] x = normal(r, t * in, 1), g = normal(r, t * out, 1), g0 = normal(r, out * rank, 0.1);
            ad.loraB().grad().copyFrom(g0);
            try (StepContext ctx = new StepContext(backend())) {
                TestSupport.begin(ctx, true, 1);
                pm.forward(ctx, ctx.allocate(t, in).copyFrom(x));
                pm.backward(ctx, ctx.allocate(t, out).copyFrom(g), true);
            }
            Map<String, double[]> p = TestSupport.adapterValues(ad);
            double[] dB = new LoraReference(rank, 2.0).backward(p, TestSupport.toDouble(x), TestSupport.toDouble(g), t, in, out).get(LoraReference.B);
            float[] want = new float[dB.length];
            for (int i = 0; i < dB.length; i++) want[i] = (float) (g0[i] + dB[i]);
            TestSupport.assertRelClose(want, ad.loraB().grad().toFloatArray(), 1e-5, (freezeA ? "A frozen" : "both train") + ": B's gradient is g0 + dB");
        }
    }

    @Test
    void configIsAnAdapterConfig() {
        AdapterConfig c = LoraConfig.builder().targetModules(TargetModules.regex("fc[12]")).build();
        assertEquals("fc[12]", c.toJson().get("target_modules"));
        assertTrue(c.targetModules().matches("fc2"));
    }
}
