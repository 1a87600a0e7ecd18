package io.peft4j.variants.loha;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.Sequential;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lokr.PeftFixtures;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** LoHa's own settings: PEFT's file, inits, rank and module dropout, refused settings. */
class LohaTest {

    @Test
    void peftsLohaAdapterLoadsAndMatchesPeftsOutputsAndMerge() throws IOException {
        PeftFixtures.checkAgainstPeft("loha_r4", (i, weights) -> {
            String l = PeftFixtures.LAYERS[i];
            int out = PeftFixtures.SHAPES[i][0], in = PeftFixtures.SHAPES[i][1];
            Map<String, double[]> p = new HashMap<>();
            for (String n : List.of(LohaReference.W1A, LohaReference.W1B, LohaReference.W2A, LohaReference.W2B)) {
                p.put(n, PeftFixtures.tensor(weights, l, n));
            }
            return new LohaReference(4, 2.0).deltaWeight(p, in, out);
        });
        var json = Cli.readJson(PeftFixtures.fixture("loha_r4").resolve("adapter/adapter_config.json"));
        LohaConfig c = (LohaConfig) AdapterMethods.forType("LOHA").configFromJson(json);
        assertEquals(4, c.r());
        assertEquals(2f, c.scaling());
        assertEquals("peft", c.init());
    }

    @Test
    void initsArePeftsRandomAndLycoriss() {
        Linear layer = new Linear(backend(), 300, 200, true, 1);
        for (String init : List.of("peft", "random", "lycoris")) {
            LohaAdapter a = (LohaAdapter) LohaConfig.builder().r(8).init(init).targetModules("q").build().create(layer, "default", backend(), 3);
            Map<String, float[]> v = new HashMap<>();
            for (Parameter p : a.parameters()) v.put(p.name(), p.value().toFloatArray());
            assertEquals(init.equals("peft"), zero(v.get("hada_w2_b")), init + ": W2b = 0 iff PEFT");
            assertEquals(init.equals("lycoris"), zero(v.get("hada_w2_a")), init + ": W2a = 0 iff LyCORIS");
            if (init.equals("lycoris")) {
                assertEquals(0.1, std(v.get("hada_w1_a")), 0.01, "W1a ~ N(0, 0.1²)");
                assertEquals(1.0, std(v.get("hada_w1_b")), 0.05, "W1b ~ N(0, 1)");
                assertEquals(1.0, std(v.get("hada_w2_b")), 0.05, "W2b ~ N(0, 1)");
            } else {
                assertTrue(maxAbs(v.get("hada_w1_a")) <= 1 / Math.sqrt(8) && maxAbs(v.get("hada_w1_a")) > 0.9 / Math.sqrt(8), "W1a kaiming fan_in r");
                assertTrue(maxAbs(v.get("hada_w1_b")) <= 1 / Math.sqrt(300) && maxAbs(v.get("hada_w1_b")) > 0.9 / Math.sqrt(300), "W1b kaiming fan_in d_in");
            }
        }
    }

    /**
     * With W1a = W2a = 1 (column of ones, r = 1) and W1b = W2b = 1, ΔW is all ones·s: the training
     * output's adapter part shows which rows rank dropout kept, each scaled by d_out/kept.
     */
    @Test
    void rankDropoutDropsRowsAndRescalesByTheKeptFraction() {
        int d = 64, t = 3;
        Sequential root = new Sequential();
        Linear layer = root.add("q", new Linear(backend(), d, d, false, 1));
        layer.weight().value().copyFrom(new float[d * d]);
        float p = 0.25f;
        PeftModel pm = PeftModel.wrap(root, LohaConfig.builder().r(1).alpha(1).rankDropout(p).targetModules("q").build(), backend(), 2);
        for (Parameter prm : layer.adapter("default").parameters()) {
            float[] ones = new float[(int) prm.numel()];
            java.util.Arrays.fill(ones, 1f);
            prm.value().copyFrom(ones);
        }
        float[] x = new float[t * d];
        java.util.Arrays.fill(x, 1f / d);   // each output = the row's ΔW sum / d = mask value
        float[] eval = TestSupport.forward(pm, x, t);
        for (float v : eval) assertEquals(1f, v, 1e-6f, "eval: no rank dropout");
        float[] y = TestSupport.forward(pm, x, t, true, 7);
        int kept = 0;
        for (int o = 0; o < d; o++) if (y[o] != 0f) kept++;
        assertTrue(kept > d / 2 && kept < d, "about 3/4 of the rows kept: " + kept);
        for (int n = 0; n < t; n++) {
            for (int o = 0; o < d; o++) {
                float want = y[o] == 0f ? 0f : (float) d / kept;
                assertEquals(want, y[n * d + o], 1e-5f * d / kept, "row " + o + " of token " + n + ": 0 or d/kept, the same mask for every token");
            }
        }
        assertTrue(TestSupport.differs(y, TestSupport.forward(pm, x, t, true, 8)), "each step draws new rows");
    }

    @Test
    void moduleDropoutSkipsTheWholeAdapterForSomeSteps() {
        SplittableRandom r = rng("module dropout");
        PeftModel pm = PeftModel.wrap(TestSupport.single(1, 13, 11), LohaConfig.builder().r(2).moduleDropout(0.5f).targetModules("q").build(),
                backend(), 3);
        TestSupport.randomizeAdapter(pm, "default", r, 0.5);
        float[] x = normal(r, 2 * 13, 1);
        float[] eval = TestSupport.forward(pm, x, 2);
        pm.disableAdapters();
        float[] base = TestSupport.forward(pm, x, 2);
        pm.enableAdapters();
        int skipped = 0, applied = 0;
        for (long step = 0; step < 40; step++) {
            float[] y = TestSupport.forward(pm, x, 2, true, step);
            if (!TestSupport.differs(y, base)) skipped++;
            else if (!TestSupport.differs(y, eval)) applied++;
            else throw new AssertionError("step " + step + ": the output is neither the base's nor the adapted one");
        }
        assertTrue(skipped >= 8 && applied >= 8, "skipped " + skipped + ", applied " + applied + " of 40 at p = 0.5");
    }

    @Test
    void unsupportedSettingsAreRefusedByName() {
        Map<String, Object> base = LohaConfig.builder().targetModules("q").build().toJson();
        for (Map.Entry<String, Object> e : Map.<String, Object>of("use_effective_conv2d", true, "rank_pattern", Map.of("q", 2),
                "rank_dropout", 1.0, "init_weights", "gaussian", "r", 0).entrySet()) {
            Map<String, Object> j = new HashMap<>(base);
            j.put(e.getKey(), e.getValue());
            IllegalArgumentException x = assertThrows(IllegalArgumentException.class, () -> new LohaMethod().configFromJson(j), e.getKey());
            assertTrue(x.getMessage().contains(e.getKey()), x.getMessage());
        }
        LohaConfig c = LohaConfig.builder().r(3).alpha(2.5f).rankDropout(0.1f).moduleDropout(0.2f).init("lycoris").targetModules("q").build();
        assertEquals(c, new LohaMethod().configFromJson(new HashMap<>(c.toJson())));
        assertFalse(LohaConfig.builder().targetModules("q").build().toJson().containsKey("lycoris"));
    }

    static boolean zero(float[] a) {
        for (float v : a) if (v != 0f) return false;
        return true;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    static double std(float[] a) {
        double s = 0, q = 0;
        for (float v : a) {
            s += v;
            q += (double) v * v;
        }
        return Math.sqrt(q / a.length - (s / a.length) * (s / a.length));
    }
}
