package io.peft4j.variants.dora;

import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.LayerChecks;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraAdapter;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** DoRA: forward and gradients (norm detached) against float64 and finite differences, init, merge, files. */
class DoraTest {
    static final String LAYER = "layers.0.q";
    static final int IN = 13, OUT = 11, R = 3, T = 5;

    static LoraConfig config() {
        return LoraConfig.builder().r(R).alpha(5).useDora(true).targetModules("q").build();
    }

    /** A DoRA model on one Linear 13→11 with A, B random and m = ‖W0‖_row·(1 + 0.25·N), as PEFT's fixture. */
    static PeftModel randomized(String test) {
        PeftModel pm = PeftModel.wrap(TestSupport.single(3, IN, OUT), config(), TestSupport.backend(), 11);
        SplittableRandom r = TestSupport.rng(test);
        DoraAdapter a = adapter(pm);
        a.parameters().get(0).value().copyFrom(normal(r, R * IN, 0.3));
        a.parameters().get(1).value().copyFrom(normal(r, OUT * R, 0.3));
        float[] m = a.magnitude().value().toFloatArray();
        for (int i = 0; i < m.length; i++) m[i] *= (float) (1 + 0.25 * r.nextGaussian());
        a.magnitude().value().copyFrom(m);
        return pm;
    }

    static Linear layer(PeftModel pm) {
        return pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get(LAYER);
    }

    static DoraAdapter adapter(PeftModel pm) {
        return (DoraAdapter) layer(pm).adapter(PeftModel.DEFAULT_ADAPTER);
    }

    @Test
    void forwardAndEveryGradientMatchFloat64WithTheNormDetached() {
        PeftModel pm = randomized("dora grads");
        LayerChecks.checkForwardAndGradients(pm, layer(pm), adapter(pm), new DoraReference(R, config().scaling()), T,
                TestSupport.rng("dora grads x"));
    }

    @Test
    void magnitudeStartsAtTheRowNormsOfW0SoTheModelStartsAsTheBase() {
        Module base = TestSupport.single(3, IN, OUT);
        float[] x = normal(TestSupport.rng("dora init"), T * IN, 1);
        float[] y0 = TestSupport.forward(base, x, T);
        float[] w0 = TestSupport.linears(base).get(LAYER).weight().value().toFloatArray();
        PeftModel pm = PeftModel.wrap(base, config(), TestSupport.backend(), 11);
        double[] norms = DoraReference.rowNorms(toDouble(w0), OUT, IN);
        LayerChecks.assertClose(norms, adapter(pm).magnitude().value().toFloatArray(), 1e-7, "m at init vs ‖W0‖_row");
        LayerChecks.assertClose(toDouble(y0), TestSupport.forward(pm, x, T), 1e-6, "output at init vs the base's");
    }

    @Test
    void mergedEqualsUnmergedAndUnmergeWithTheCachedNormRestoresW0() {
        PeftModel pm = randomized("dora merge");
        DoraAdapter a = adapter(pm);
        Linear l = layer(pm);
        double[] w0 = toDouble(l.weight().value().toFloatArray());
        LayerChecks.checkMerge(pm, l, T, TestSupport.rng("dora merge x"));
        // The merged weight is (m/n) ⊙ (W0 + s·B·A) in float64.
        pm.merge();
        LayerChecks.assertClose(new DoraReference(R, config().scaling()).merged(LayerChecks.params(l, a), w0, IN, OUT),
                l.weight().value().toFloatArray(), 1e-6, "merged W vs float64");
        pm.unmerge();
        LayerChecks.checkAdapterUnmergeRestores(l, a, 1e-6);
    }

    @Test
    void doraIsLoraWithUseDoraBothAsItsOwnMethodAndThroughLorasField(@TempDir Path dir) throws IOException {
        var viaDora = AdapterMethods.forName("dora").configFromJson(Map.of("peft_type", "DORA", "r", 3, "target_modules", java.util.List.of("q")));
        var viaLora = AdapterMethods.forType("LORA").configFromJson(Map.of("peft_type", "LORA", "r", 3, "use_dora", true,
                "target_modules", java.util.List.of("q")));
        assertEquals(viaLora, viaDora);
        assertEquals("LORA", viaDora.toJson().get("peft_type"), "saved as PEFT saves it");
        assertEquals(true, viaDora.toJson().get("use_dora"));
        assertInstanceOf(LoraAdapter.class, LoraConfig.builder().r(3).targetModules("q").build()
                .create(new Linear(TestSupport.backend(), 4, 5, true, 1), "x", TestSupport.backend(), 1));

        PeftModel pm = randomized("dora files");
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(new TreeSet<>(java.util.List.of("base_model.model.layers.0.q.lora_A.weight", "base_model.model.layers.0.q.lora_B.weight",
                    "base_model.model.layers.0.q.lora_magnitude_vector")), new TreeSet<>(f.names()));
        }
        float[] x = normal(TestSupport.rng("dora files x"), T * IN, 1);
        PeftModel back = PeftModel.load(TestSupport.single(3, IN, OUT), dir);
        assertInstanceOf(DoraAdapter.class, adapter(back));
        TestSupport.assertBitEqual(TestSupport.forward(pm, x, T), TestSupport.forward(back, x, T), "reloaded DoRA output");
        assertTrue(((LoraConfig) back.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER)).useDora());
    }

    @Test
    void trainableParametersAreLorasPlusOneMagnitudePerOutputRow() {
        PeftModel pm = randomized("dora count");
        assertEquals((long) R * (IN + OUT) + OUT, pm.trainableParameterCount());
    }
}
