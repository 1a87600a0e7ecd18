package io.peft4j.variants.bitfit;

import static io.peft4j.variants.TestSupport.normal;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.LayerChecks;
import io.peft4j.variants.LayerReference;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.ia3.Ia3Reference;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** BitFit: only the chosen biases train, their gradient is Σ g, and the file holds just them. */
class BitFitTest {

    /** y = x·W0ᵀ + b with b trained: ∂b = Σ_rows g, ∂x = g·W0. */
    static final LayerReference REFERENCE = new LayerReference() {
        @Override
        public double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out) {
            return Ia3Reference.base(w0, p.get("bias"), x, t, in, out);
        }

        @Override
        public Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out) {
            double[] db = new double[out];
            for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) db[j] += g[i * out + j];
            Map<String, double[]> r = new LinkedHashMap<>();
            r.put("bias", db);
            r.put(INPUT, TestSupport.mul(g, w0, t, out, in));
            return r;
        }
    };

    @Test
    void theBiasGradientMatchesFloat64() {
        PeftModel pm = PeftModel.wrap(TestSupport.single(3, 13, 11), new BitFitConfig(TargetModules.names("q")), TestSupport.backend(), 5);
        Linear l = pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("layers.0.q");
        LayerChecks.checkForwardAndGradients(pm, l, l.adapter(PeftModel.DEFAULT_ADAPTER), REFERENCE, 5, TestSupport.rng("bitfit x"));
    }

    @Test
    void trainingTouchesNothingButTheChosenBiases() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(4), new BitFitConfig(TargetModules.names("fc1", "fc3")), TestSupport.backend(), 5);
        Map<String, Parameter> all = pm.namedParameters();
        LayerChecks.checkTrainingChangesOnly(pm, Set.of(all.get("fc1.bias"), all.get("fc3.bias")));
        assertEquals(17 + 5, pm.trainableParameterCount());
    }

    @Test
    void allBiasesByDefaultAndTheFileHoldsOnlyTheTrainedBiases(@TempDir Path dir) throws IOException {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(4), new BitFitConfig(TargetModules.allLinear()), TestSupport.backend(), 5);
        assertEquals(17 + 11 + 5, pm.trainableParameterCount());
        for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) l.bias().value().copyFrom(normal(TestSupport.rng(l.path()), (int) l.outFeatures(), 1));
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(new TreeSet<>(List.of("base_model.model.fc1.bias", "base_model.model.fc2.bias", "base_model.model.fc3.bias")), new TreeSet<>(f.names()));
        }
        assertEquals("BITFIT", io.peft4j.cli.Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE)).get("peft_type"));
        Module fresh = TestSupport.mlp(4);
        PeftModel back = PeftModel.load(fresh, dir);
        float[] x = normal(TestSupport.rng("bitfit x2"), 3 * 13, 1);
        TestSupport.assertBitEqual(TestSupport.forward(pm, x, 3), TestSupport.forward(back, x, 3), "reloaded BitFit output");
        assertTrue(back.namedParameters().get("fc2.bias").requiresGrad());
        assertFalse(back.namedParameters().get("fc2.weight").requiresGrad());
        back.deleteAdapter(PeftModel.DEFAULT_ADAPTER);
        assertFalse(fresh.namedParameters().get("fc2.bias").requiresGrad(), "the bias freezes again with its adapter gone");
    }

    @Test
    void aLayerWithoutBiasIsRefusedByName() {
        io.peft4j.nn.Sequential root = new io.peft4j.nn.Sequential();
        root.add("q", new Linear(TestSupport.backend(), 4, 3, false, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PeftModel.wrap(root, new BitFitConfig(TargetModules.names("q")), TestSupport.backend(), 5));
        assertTrue(e.getMessage().contains("'q'") && e.getMessage().contains("no bias"), e.getMessage());
        assertTrue(root.namedParameters().get("q.weight").requiresGrad(), "a failed wrap leaves the model as it was");
    }

    @Test
    void mergeChangesNothing() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(4), new BitFitConfig(TargetModules.allLinear()), TestSupport.backend(), 5);
        Linear l = pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("fc2");
        l.bias().value().copyFrom(normal(TestSupport.rng("bitfit merge"), 11, 1));
        float[] x = normal(TestSupport.rng("bitfit merge x"), 3 * 13, 1);
        float[] y = TestSupport.forward(pm, x, 3);
        Module merged = pm.mergeAndUnload();
        TestSupport.assertBitEqual(y, TestSupport.forward(merged, x, 3), "merged BitFit output");
        assertFalse(merged.namedParameters().get("fc2.bias").requiresGrad(), "unloaded model is frozen as before");
    }
}
