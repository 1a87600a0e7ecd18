package io.peft4j.variants.ia3;

import static io.peft4j.variants.TestSupport.normal;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.LayerChecks;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** (IA)³ in output and input (feedforward) mode: float64 gradients, init, merge and PEFT's unmerge, files. */
class Ia3Test {
    static final String LAYER = "layers.0.q";
    static final int IN = 13, OUT = 11, T = 5;

    static Ia3Config config(boolean feedforward) {
        return new Ia3Config(TargetModules.names("q"), feedforward ? TargetModules.names("q") : null);
    }

    static PeftModel randomized(boolean feedforward, String test) {
        PeftModel pm = PeftModel.wrap(TestSupport.single(3, IN, OUT), config(feedforward), TestSupport.backend(), 5);
        SplittableRandom r = TestSupport.rng(test);
        Ia3Adapter a = adapter(pm);
        float[] l = normal(r, (int) a.parameters().get(0).numel(), 0.3);
        for (int i = 0; i < l.length; i++) l[i] += 1;   // 1 + 0.3·N, as PEFT's fixture
        a.parameters().get(0).value().copyFrom(l);
        return pm;
    }

    static Linear layer(PeftModel pm) {
        return pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get(LAYER);
    }

    static Ia3Adapter adapter(PeftModel pm) {
        return (Ia3Adapter) layer(pm).adapter(PeftModel.DEFAULT_ADAPTER);
    }

    @ParameterizedTest(name = "feedforward={0}")
    @ValueSource(booleans = {false, true})
    void forwardAndGradientsMatchFloat64(boolean feedforward) {
        PeftModel pm = randomized(feedforward, "ia3 grads " + feedforward);
        assertEquals(feedforward, adapter(pm).feedforward());
        LayerChecks.checkForwardAndGradients(pm, layer(pm), adapter(pm), new Ia3Reference(feedforward), T, TestSupport.rng("ia3 x " + feedforward));
    }

    @ParameterizedTest(name = "feedforward={0}")
    @ValueSource(booleans = {false, true})
    void startsAtOnesSoTheModelStartsAsTheBaseExactly(boolean feedforward) {
        Module base = TestSupport.single(3, IN, OUT);
        float[] x = normal(TestSupport.rng("ia3 init"), T * IN, 1);
        float[] y0 = TestSupport.forward(base, x, T);
        PeftModel pm = PeftModel.wrap(base, config(feedforward), TestSupport.backend(), 5);
        for (float v : adapter(pm).parameters().get(0).value().toFloatArray()) assertEquals(1f, v);
        TestSupport.assertBitEqual(y0, TestSupport.forward(pm, x, T), "output at init (l = 1)");
        assertEquals(feedforward ? IN : OUT, pm.trainableParameterCount());
    }

    @ParameterizedTest(name = "feedforward={0}")
    @ValueSource(booleans = {false, true})
    void mergedEqualsUnmergedAndPeftsUnmergeRestoresW0WithinRounding(boolean feedforward) {
        PeftModel pm = randomized(feedforward, "ia3 merge " + feedforward);
        LayerChecks.checkMerge(pm, layer(pm), T, TestSupport.rng("ia3 merge x"));
        LayerChecks.checkAdapterUnmergeRestores(layer(pm), adapter(pm), 1e-6);
    }

    @Test
    void unmergeDividesByLPlusPeftsEpsilonSoAZeroScaleGivesNoInfinity() {
        PeftModel pm = randomized(false, "ia3 eps");
        Ia3Adapter a = adapter(pm);
        float[] l = a.parameters().get(0).value().toFloatArray();
        l[2] = 0f;
        a.parameters().get(0).value().copyFrom(l);
        Linear layer = layer(pm);
        try (Tensor w = layer.weight().value().copy(); Tensor b = layer.bias().value().copy()) {
            float[] w0 = w.toFloatArray();
            a.merge(TestSupport.backend(), w, b);
            a.unmerge(TestSupport.backend(), w, b);
            float[] got = w.toFloatArray();
            for (int j = 0; j < IN; j++) {
                assertEquals(0f, got[2 * IN + j], 0f, "row 2: 0 / (0 + 1e-8) = 0, not NaN");
                assertEquals(w0[3 * IN + j], got[3 * IN + j], 2e-7 * Math.abs(w0[3 * IN + j]), "row 3 restored");
                assertEquals((float) ((double) w0[3 * IN + j] * l[3] / ((double) l[3] + 1e-8)), got[3 * IN + j],
                        2e-7 * Math.abs(w0[3 * IN + j]), "row 3 is divided by l + 1e-8");
            }
        }
    }

    @Test
    void savedAsPeftDoesWithItsKeysShapesAndFields(@TempDir Path dir) throws IOException {
        for (boolean ff : new boolean[] {false, true}) {
            PeftModel pm = randomized(ff, "ia3 files " + ff);
            Path d = dir.resolve("ff" + ff);
            pm.save(d);
            try (SafetensorsFile f = SafetensorsFile.open(d.resolve(PeftModel.WEIGHTS_FILE))) {
                assertEquals(List.of("base_model.model.layers.0.q.ia3_l"), List.copyOf(f.names()));
                assertArrayEquals(ff ? new long[] {1, IN} : new long[] {OUT, 1}, f.entry("base_model.model.layers.0.q.ia3_l").shape());
            }
            var json = io.peft4j.cli.Cli.readJson(d.resolve(PeftModel.CONFIG_FILE));
            assertEquals("IA3", json.get("peft_type"));
            assertEquals(ff ? List.of("q") : null, json.get("feedforward_modules"));
            PeftModel back = PeftModel.load(TestSupport.single(3, IN, OUT), d);
            float[] x = normal(TestSupport.rng("ia3 files x"), T * IN, 1);
            TestSupport.assertBitEqual(TestSupport.forward(pm, x, T), TestSupport.forward(back, x, T), "reloaded (IA)³ output");
        }
        var c = AdapterMethods.forName("ia3").configFromJson(Map.of("peft_type", "IA3", "target_modules", List.of("q")));
        assertTrue(c instanceof Ia3Config i && i.feedforwardModules() == null);
        assertEquals(1e-2f, AdapterMethods.forName("ia3").suggestedLearningRate());
    }
}
