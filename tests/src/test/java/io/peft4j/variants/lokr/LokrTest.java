package io.peft4j.variants.lokr;

import static io.peft4j.variants.TestSupport.backend;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.nn.Linear;
import io.peft4j.peft.AdapterMethods;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** LoKr's own rules: factorization (the spec's examples and a brute force), factor shapes, inits, scales, PEFT's files. */
class LokrTest {

    @Test
    void factorizationGivesTheSpecsExamples() {
        int[][] noFactor = {{4096, 64, 64}, {3072, 48, 64}, {2048, 32, 64}, {1024, 32, 32}, {768, 24, 32}, {128, 8, 16}, {127, 1, 127},
            {360, 18, 20}};
        for (int[] e : noFactor) assertArrayEquals(new int[] {e[1], e[2]}, Factorization.of(e[0], -1), "factorization(" + e[0] + ", -1)");
        assertArrayEquals(new int[] {4, 1024}, Factorization.of(4096, 4), "4096, f=4");
        assertArrayEquals(new int[] {16, 8}, Factorization.of(128, 16), "128, f=16 (PEFT keeps (f, dim/f))");
        assertArrayEquals(new int[] {15, 24}, Factorization.of(360, 16), "360, f=16 (no divisor)");
        for (int f : new int[] {4, 8, 16}) assertArrayEquals(new int[] {1, 127}, Factorization.of(127, f), "127, f=" + f);
    }

    @Test
    void factorizationMatchesABruteForceOfTheSpecsRuleForEveryDimensionTo4096() {
        for (int f : new int[] {-1, 2, 4, 8, 16}) {
            for (int dim = 1; dim <= 4096; dim++) {
                int[] got = Factorization.of(dim, f), want = KronMath.factorization(dim, f);
                assertArrayEquals(want, got, "factorization(" + dim + ", " + f + ")");
                assertEquals(dim, got[0] * got[1]);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Factorization.of(0, -1));
    }

    @Test
    void factorShapesFollowPeftsRules() {
        // Fixture layout (PEFT): factor 4, r 4 on 48→36, 36→24, 24→10.
        LokrConfig c = LokrConfig.builder().r(4).decomposeFactor(4).targetModules("q").build();
        assertEquals(new LokrConfig.Shapes(4, 9, 4, 12, true, false), c.shapes(36, 48));
        assertEquals(new LokrConfig.Shapes(4, 6, 4, 9, true, false), c.shapes(24, 36));
        assertEquals(new LokrConfig.Shapes(2, 5, 4, 6, true, true), c.shapes(10, 24));
        // decompose_both: W1 decomposed only when r < max(a, c)/2.
        LokrConfig both = LokrConfig.builder().r(2).decomposeBoth(true).targetModules("q").build();
        assertFalse(both.shapes(4096, 4096).fullW1(), "W1 64x64 at r=2");
        assertTrue(LokrConfig.builder().r(32).decomposeBoth(true).targetModules("q").build().shapes(4096, 4096).fullW1(), "r = 32 = 64/2");
        assertTrue(LokrConfig.builder().r(32).targetModules("q").build().shapes(4096, 4096).fullW2(), "W2 full at r = 32 = 64/2");
        assertFalse(LokrConfig.builder().r(31).targetModules("q").build().shapes(4096, 4096).fullW2(), "W2 decomposed at r = 31");
    }

    @Test
    void scaleIsAlphaOverRUnlessLycorisRuleAndBothFull() {
        LokrConfig peft = LokrConfig.builder().r(4).alpha(8).targetModules("q").build();
        LokrConfig lyc = LokrConfig.builder().r(4).alpha(8).lycorisFullScale(true).targetModules("q").build();
        LokrConfig.Shapes full = new LokrConfig.Shapes(2, 5, 4, 6, true, true), half = new LokrConfig.Shapes(4, 9, 4, 12, true, false);
        assertEquals(2f, peft.scaling(full), "PEFT: alpha/r even when both are full");
        assertEquals(1f, lyc.scaling(full), "LyCORIS: 1 when both are full");
        assertEquals(2f, lyc.scaling(half), "LyCORIS: alpha/r when one is decomposed");
    }

    @Test
    void initsArePeftsAndLycorissAndEachLayerIsIdentityAtStart() {
        Linear layer = new Linear(backend(), 48, 36, true, 1);
        for (String init : List.of("peft", "lycoris", "random")) {
            LokrConfig c = LokrConfig.builder().r(2).decomposeBoth(true).init(init).targetModules("q").build();
            LokrAdapter a = (LokrAdapter) c.create(layer, "default", backend(), 5);
            Map<String, float[]> v = new HashMap<>();
            a.parameters().forEach(p -> v.put(p.name(), p.value().toFloatArray()));
            assertEquals(List.of("lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b"), a.parameters().stream().map(p -> p.name()).toList());
            boolean w1aZero = allZero(v.get("lokr_w1_a")), w2bZero = allZero(v.get("lokr_w2_b"));
            assertEquals(init.equals("peft"), w1aZero, init + ": W1a zero iff PEFT init");
            assertEquals(init.equals("lycoris"), w2bZero, init + ": W2b zero iff LyCORIS init");
            assertFalse(allZero(v.get("lokr_w1_b")) || allZero(v.get("lokr_w2_a")), init + ": the other factors are random");
            // kaiming-uniform a=√5 on [rows, cols]: |v| <= 1/sqrt(cols).
            assertTrue(maxAbs(v.get("lokr_w2_a")) <= 1 / Math.sqrt(2), "W2a fan_in = r");
            assertTrue(maxAbs(v.get("lokr_w1_b")) <= 1 / Math.sqrt(a.shapes().c()), "W1b fan_in = c");
        }
    }

    @Test
    void peftsLokrAdapterLoadsAndMatchesPeftsOutputsAndMerge() throws IOException {
        PeftFixtures.checkAgainstPeft("lokr_r4_f4", (i, weights) -> {
            String l = PeftFixtures.LAYERS[i];
            int out = PeftFixtures.SHAPES[i][0], in = PeftFixtures.SHAPES[i][1];
            LokrReference ref = new LokrReference(4, 8, 4, false, false);
            Map<String, double[]> p = new HashMap<>();
            for (String n : ref.names(in, out)) p.put(n, PeftFixtures.tensor(weights, l, n));
            return ref.deltaWeight(p, in, out);
        });
        var json = Cli.readJson(PeftFixtures.fixture("lokr_r4_f4").resolve("adapter/adapter_config.json"));
        LokrConfig c = (LokrConfig) AdapterMethods.forType("LOKR").configFromJson(json);
        assertEquals(4, c.r());
        assertEquals(8f, c.alpha());
        assertEquals(4, c.decomposeFactor());
        assertFalse(c.decomposeBoth());
        assertEquals("peft", c.init());
    }

    @Test
    void unsupportedSettingsAreRefusedByName() {
        Map<String, Object> base = LokrConfig.builder().targetModules("q").build().toJson();
        for (Map.Entry<String, Object> e : Map.<String, Object>of("rank_dropout", 0.1, "module_dropout", 0.5, "use_effective_conv2d", true,
                "rank_pattern", Map.of("q", 2), "decompose_factor", 0, "init_weights", "gaussian").entrySet()) {
            Map<String, Object> j = new HashMap<>(base);
            j.put(e.getKey(), e.getValue());
            IllegalArgumentException x = assertThrows(IllegalArgumentException.class, () -> new LokrMethod().configFromJson(j), e.getKey());
            assertTrue(x.getMessage().contains(e.getKey()), x.getMessage());
        }
        LokrConfig c = LokrConfig.builder().r(3).alpha(2.5f).decomposeBoth(true).decomposeFactor(8).init("lycoris").lycorisFullScale(true)
                .targetModules("q", "v").build();
        assertEquals(c, new LokrMethod().configFromJson(new HashMap<>(c.toJson())), "config round trip");
        assertFalse(LokrConfig.builder().targetModules("q").build().toJson().containsKey("lycoris_full_scale"), "written only when true");
    }

    static boolean allZero(float[] a) {
        for (float v : a) if (v != 0f) return false;
        return true;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }
}
