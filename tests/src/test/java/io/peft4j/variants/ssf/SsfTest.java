package io.peft4j.variants.ssf;

import static io.peft4j.variants.TestSupport.normal;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.Sequential;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.LayerChecks;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SSF: float64 gradients, identity and normal inits, merge by re-parametrisation, files, training. */
class SsfTest {
    static final String LAYER = "layers.0.q";
    static final int IN = 13, OUT = 11, T = 5;

    static PeftModel randomized(String test) {
        PeftModel pm = PeftModel.wrap(TestSupport.single(3, IN, OUT), new SsfConfig(TargetModules.names("q"), "identity"), TestSupport.backend(), 5);
        SplittableRandom r = TestSupport.rng(test);
        SsfAdapter a = adapter(pm);
        float[] g = normal(r, OUT, 0.3);
        for (int i = 0; i < OUT; i++) g[i] += 1;
        a.parameters().get(0).value().copyFrom(g);
        a.parameters().get(1).value().copyFrom(normal(r, OUT, 0.3));
        return pm;
    }

    static Linear layer(PeftModel pm) {
        return pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get(LAYER);
    }

    static SsfAdapter adapter(PeftModel pm) {
        return (SsfAdapter) layer(pm).adapter(PeftModel.DEFAULT_ADAPTER);
    }

    @Test
    void forwardAndGradientsMatchFloat64() {
        PeftModel pm = randomized("ssf grads");
        LayerChecks.checkForwardAndGradients(pm, layer(pm), adapter(pm), new SsfReference(), T, TestSupport.rng("ssf x"));
    }

    @Test
    void identityInitLeavesTheBaseExactlyAndNormalInitIsNearIt() {
        Module base = TestSupport.single(3, IN, OUT);
        float[] x = normal(TestSupport.rng("ssf init"), T * IN, 1);
        float[] y0 = TestSupport.forward(base, x, T);
        PeftModel pm = PeftModel.wrap(base, new SsfConfig(TargetModules.names("q"), "identity"), TestSupport.backend(), 5);
        TestSupport.assertBitEqual(y0, TestSupport.forward(pm, x, T), "output with scale 1, shift 0");
        assertEquals(2L * OUT, pm.trainableParameterCount());

        PeftModel normal = PeftModel.wrap(TestSupport.single(3, IN, 401), new SsfConfig(TargetModules.names("q"), "normal"), TestSupport.backend(), 5);
        List<Parameter> p = layer(normal).adapter(PeftModel.DEFAULT_ADAPTER).parameters();
        assertMoments(p.get(0).value().toFloatArray(), 1, 0.02);
        assertMoments(p.get(1).value().toFloatArray(), 0, 0.02);
    }

    /** Mean and standard deviation of 401 draws within 5 standard errors of N(mean, std²)'s. */
    private static void assertMoments(float[] v, double mean, double std) {
        double m = 0, s = 0;
        for (float f : v) m += f;
        m /= v.length;
        for (float f : v) s += (f - m) * (f - m);
        s = Math.sqrt(s / (v.length - 1));
        assertTrue(Math.abs(m - mean) < 5 * std / Math.sqrt(v.length), "mean " + m);
        assertTrue(Math.abs(s - std) < 5 * std / Math.sqrt(2.0 * v.length), "std " + s);
        assertEquals(v.length, new HashSet<>(java.util.Arrays.asList(box(v))).size(), "distinct draws");
    }

    private static Float[] box(float[] v) {
        Float[] b = new Float[v.length];
        for (int i = 0; i < v.length; i++) b[i] = v[i];
        return b;
    }

    @Test
    void mergeFoldsScaleAndShiftIntoWAndBAndUnmergeUndoesIt() {
        PeftModel pm = randomized("ssf merge");
        Linear l = layer(pm);
        float[] w0 = l.weight().value().toFloatArray(), b0 = l.bias().value().toFloatArray();
        float[] g = adapter(pm).parameters().get(0).value().toFloatArray(), s = adapter(pm).parameters().get(1).value().toFloatArray();
        LayerChecks.checkMerge(pm, l, T, TestSupport.rng("ssf merge x"));
        pm.merge();
        double[] w = new double[w0.length], b = new double[OUT];
        for (int i = 0; i < OUT; i++) {
            for (int j = 0; j < IN; j++) w[i * IN + j] = (double) g[i] * w0[i * IN + j];
            b[i] = (double) g[i] * b0[i] + s[i];
        }
        LayerChecks.assertClose(w, l.weight().value().toFloatArray(), 1e-7, "W' = diag(γ)·W0");
        LayerChecks.assertClose(b, l.bias().value().toFloatArray(), 2e-7, "b' = γ ⊙ b0 + β");
        pm.unmerge();
        LayerChecks.checkAdapterUnmergeRestores(l, adapter(pm), 1e-6);
    }

    @Test
    void aLayerWithoutBiasCannotTakeTheShiftAndMergeSaysSoLeavingWAlone() {
        Sequential root = new Sequential();
        Linear noBias = root.add("q", new Linear(TestSupport.backend(), IN, OUT, false, 3));
        PeftModel pm = PeftModel.wrap(root, new SsfConfig(TargetModules.names("q"), "normal"), TestSupport.backend(), 5);
        float[] w0 = noBias.weight().value().toFloatArray();
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, pm::merge);
        assertTrue(e.getMessage().contains("'q'") && e.getMessage().contains("no bias"), e.getMessage());
        TestSupport.assertBitEqual(w0, noBias.weight().value().toFloatArray(), "W after the refused merge");
        assertTrue(!noBias.isMerged(PeftModel.DEFAULT_ADAPTER));
    }

    @Test
    void savedWithItsOwnTypeAndKeysAndReloadedBitExactly(@TempDir Path dir) throws IOException {
        PeftModel pm = randomized("ssf files");
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(new TreeSet<>(List.of("base_model.model.layers.0.q.ssf_scale", "base_model.model.layers.0.q.ssf_shift")), new TreeSet<>(f.names()));
        }
        assertEquals("SSF", io.peft4j.cli.Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE)).get("peft_type"));
        PeftModel back = PeftModel.load(TestSupport.single(3, IN, OUT), dir);
        float[] x = normal(TestSupport.rng("ssf files x"), T * IN, 1);
        TestSupport.assertBitEqual(TestSupport.forward(pm, x, T), TestSupport.forward(back, x, T), "reloaded SSF output");
    }

    @Test
    void trainingChangesOnlyScalesAndShifts() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(4), new SsfConfig(TargetModules.allLinear(), "normal"), TestSupport.backend(), 5);
        Set<Parameter> trained = new HashSet<>();
        pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values().forEach(l -> trained.addAll(l.adapter(PeftModel.DEFAULT_ADAPTER).parameters()));
        LayerChecks.checkTrainingChangesOnly(pm, trained);
    }
}
