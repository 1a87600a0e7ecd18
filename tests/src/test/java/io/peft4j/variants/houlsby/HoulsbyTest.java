package io.peft4j.variants.houlsby;

import static io.peft4j.variants.TestSupport.normal;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.LayerChecks;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Houlsby adapters: float64 gradients, near-identity init, merge refused clearly, files, training. */
class HoulsbyTest {
    static final String LAYER = "layers.0.q";
    static final int IN = 13, OUT = 11, M = 7, T = 5;

    static PeftModel wrapped(float initScale) {
        return PeftModel.wrap(TestSupport.single(3, IN, OUT), new HoulsbyConfig(TargetModules.names("q"), M, initScale), TestSupport.backend(), 5);
    }

    static Linear layer(PeftModel pm) {
        return pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get(LAYER);
    }

    @Test
    void forwardAndGradientsMatchFloat64() {
        PeftModel pm = wrapped(1e-3f);
        TestSupport.randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, TestSupport.rng("houlsby params"), 0.4);
        LayerChecks.checkForwardAndGradients(pm, layer(pm), layer(pm).adapter(PeftModel.DEFAULT_ADAPTER), new HoulsbyReference(M), T,
                TestSupport.rng("houlsby x"));
    }

    @Test
    void initIsNearIdentityWithTruncatedNormalWeightsAndZeroBiases() {
        Module base = TestSupport.single(3, IN, OUT);
        float[] x = normal(TestSupport.rng("houlsby init"), T * IN, 1);
        float[] y0 = TestSupport.forward(base, x, T);
        PeftModel pm = PeftModel.wrap(base, new HoulsbyConfig(TargetModules.names("q"), 64, 1e-3f), TestSupport.backend(), 5);
        float[] y = TestSupport.forward(pm, x, T);
        assertTrue(TestSupport.differs(y0, y), "the adapter is live");
        LayerChecks.assertClose(TestSupport.toDouble(y0), y, 1e-4, "output at init vs the base's");
        List<Parameter> p = layer(pm).adapter(PeftModel.DEFAULT_ADAPTER).parameters();
        for (int k : new int[] {0, 2}) {
            for (float v : p.get(k).value().toFloatArray()) assertTrue(v != 0 && Math.abs(v) <= 2e-3f, p.get(k).name() + " = " + v);
        }
        for (int k : new int[] {1, 3}) for (float v : p.get(k).value().toFloatArray()) assertEquals(0f, v, p.get(k).name());
        assertEquals(2L * 64 * OUT + 64 + OUT, pm.trainableParameterCount());
    }

    @Test
    void mergeIsRefusedClearlyAndChangesNothing(@TempDir Path dir) throws IOException {
        PeftModel pm = wrapped(1e-3f);
        float[] w0 = layer(pm).weight().value().toFloatArray();
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, pm::merge);
        assertTrue(e.getMessage().contains("cannot be merged") && e.getMessage().contains(LAYER), e.getMessage());
        TestSupport.assertBitEqual(w0, layer(pm).weight().value().toFloatArray(), "W after the refused merge");
        assertTrue(!layer(pm).isMerged(PeftModel.DEFAULT_ADAPTER));
        assertTrue(!AdapterMethods.forName("houlsby").mergeable());

        // The command line refuses before touching any file.
        Path base = dir.resolve("base.safetensors");
        ModelCheckpoint.save(TestSupport.single(3, IN, OUT), base, Map.of());
        pm.save(dir.resolve("adapter"));
        Cli.Run run = Cli.run("merge", "--base", base.toString(), "--adapter", dir.resolve("adapter").toString(),
                "--out", dir.resolve("merged.safetensors").toString(), "--no-progress");
        assertEquals(2, run.code(), run.out() + run.err());
        assertTrue(run.err().contains("cannot be merged"), run.err());
        assertTrue(!Files.exists(dir.resolve("merged.safetensors")));
    }

    @Test
    void savedWithItsOwnTypeAndKeysAndReloadedBitExactly(@TempDir Path dir) throws IOException {
        PeftModel pm = wrapped(1e-3f);
        TestSupport.randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, TestSupport.rng("houlsby files"), 0.4);
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            String k = "base_model.model.layers.0.q.";
            assertEquals(new TreeSet<>(List.of(k + "adapter_down.weight", k + "adapter_down.bias", k + "adapter_up.weight", k + "adapter_up.bias")),
                    new TreeSet<>(f.names()));
        }
        assertEquals("HOULSBY", Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE)).get("peft_type"));
        PeftModel back = PeftModel.load(TestSupport.single(3, IN, OUT), dir);
        float[] x = normal(TestSupport.rng("houlsby files x"), T * IN, 1);
        TestSupport.assertBitEqual(TestSupport.forward(pm, x, T), TestSupport.forward(back, x, T), "reloaded Houlsby output");
    }

    @Test
    void trainingChangesOnlyTheAdapters() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(4), new HoulsbyConfig(TargetModules.names("fc1", "fc2"), 8, 1e-3f), TestSupport.backend(), 5);
        Set<Parameter> trained = new HashSet<>();
        pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values().forEach(l -> trained.addAll(l.adapter(PeftModel.DEFAULT_ADAPTER).parameters()));
        LayerChecks.checkTrainingChangesOnly(pm, trained);
    }
}
