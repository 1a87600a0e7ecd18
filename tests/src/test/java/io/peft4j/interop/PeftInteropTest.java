package io.peft4j.interop;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.readF32;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Adapters written by Hugging Face PEFT itself (test resources copied from the project's shared
 * interop fixtures: PEFT 0.20.1.dev0 on an MLP 48-36-24-10): peft4j loads them as PEFT saved them and
 * computes what PEFT computed. One test per method peft4j implements.
 */
class PeftInteropTest {
    private static final List<String> LAYERS = List.of("fc1", "fc2", "fc3");

    static Path fixture(String name) {
        try {
            return Path.of(PeftInteropTest.class.getResource("/interop/peft/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Mlp base(Path dir) throws IOException {
        Mlp mlp = new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 7, 48, 36, 24, 10);
        ModelCheckpoint.load(mlp, dir.resolve("base.safetensors"));
        return mlp;
    }

    @Test
    void loraR4LoadsAsPeftSavedItAndMatchesPeftsOutputsAndMerge() throws IOException {
        Path dir = fixture("lora_r4");
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        Module base = base(dir);
        assertRelClose(readF32(dir.resolve("y_base.safetensors"), "y"), forward(base, x, 5), 1e-6, "base output vs PyTorch's");

        PeftModel pm = PeftModel.load(base, dir.resolve("adapter"));
        assertRelClose(readF32(dir.resolve("y_adapted.safetensors"), "y"), forward(pm, x, 5), 2e-6, "adapted output vs PEFT's");

        // ΔW = (alpha/r)·B·A = 2·B·A, in float64 from the file, against the merged weights peft4j and PEFT produce.
        Path weights = dir.resolve("adapter/adapter_model.safetensors");
        Path merged = dir.resolve("merged.safetensors");
        int[][] shapes = {{36, 48}, {24, 36}, {10, 24}};
        float[][] w0 = new float[3][];
        for (int i = 0; i < 3; i++) w0[i] = readF32(dir.resolve("base.safetensors"), LAYERS.get(i) + ".weight");
        Module unloaded = pm.mergeAndUnload();
        for (int i = 0; i < 3; i++) {
            String l = LAYERS.get(i);
            int out = shapes[i][0], in = shapes[i][1];
            double[] a = toDouble(readF32(weights, "base_model.model." + l + ".lora_A.weight"));
            double[] b = toDouble(readF32(weights, "base_model.model." + l + ".lora_B.weight"));
            double[] ba = mul(b, a, out, 4, in);
            float[] ref = new float[out * in];
            for (int j = 0; j < ref.length; j++) ref[j] = (float) (w0[i][j] + 2.0 * ba[j]);
            float[] ours = unloaded.namedParameters().get(l + ".weight").value().toFloatArray();
            assertRelClose(ref, ours, 4e-7, l + ".weight merged vs W0 + 2·B·A in float64");
            assertRelClose(readF32(merged, l + ".weight"), ours, 4e-7, l + ".weight merged vs PEFT's merge_and_unload");
            assertRelClose(readF32(merged, l + ".bias"), unloaded.namedParameters().get(l + ".bias").value().toFloatArray(), 0,
                    l + ".bias is not touched by a LoRA merge");
        }
    }

    @Test
    void peftsLoraConfigLoadsAsItIsAndItsMathFieldsAreRead() {
        var json = Cli.readJson(fixture("lora_r4").resolve("adapter/adapter_config.json"));
        var config = (io.peft4j.variants.lora.LoraConfig) io.peft4j.peft.AdapterMethods.forType("LORA").configFromJson(json);
        assertEquals(4, config.r());
        assertEquals(8f, config.alpha());
        assertEquals(2f, config.scaling());
        assertEquals(List.of("fc2", "fc1", "fc3"), config.targetModules().toJson());
    }

    @Test
    void aDoraAdapterLoadsAsPeftSavedItAndMatchesPeftsOutputsAndMerge() throws IOException {
        Path dir = fixture("lora_r4_dora");
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        PeftModel pm = PeftModel.load(base(dir), dir.resolve("adapter"));
        assertTrue(((io.peft4j.variants.lora.LoraConfig) pm.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER)).useDora());
        assertRelClose(readF32(dir.resolve("y_adapted.safetensors"), "y"), forward(pm, x, 5), 2e-6, "DoRA output vs PEFT's");
        assertMergedLikePeft(dir, pm.mergeAndUnload(), 1e-6);
    }

    @Test
    void anIa3AdapterWithAFeedforwardLayerLoadsAsPeftSavedItAndMatchesPeftsOutputsAndMerge() throws IOException {
        Path dir = fixture("ia3");
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        PeftModel pm = PeftModel.load(base(dir), dir.resolve("adapter"));
        var config = (io.peft4j.variants.ia3.Ia3Config) pm.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER);
        assertTrue(config.isFeedforward("fc2") && !config.isFeedforward("fc1") && !config.isFeedforward("fc3"));
        assertRelClose(readF32(dir.resolve("y_adapted.safetensors"), "y"), forward(pm, x, 5), 2e-6, "(IA)³ output vs PEFT's");
        assertMergedLikePeft(dir, pm.mergeAndUnload(), 4e-7);
    }

    /** Every weight and bias of the unloaded model against PEFT's merge_and_unload. */
    private static void assertMergedLikePeft(Path dir, Module unloaded, double rel) throws IOException {
        Path merged = dir.resolve("merged.safetensors");
        for (String l : LAYERS) {
            for (String p : List.of(".weight", ".bias")) {
                assertRelClose(readF32(merged, l + p), unloaded.namedParameters().get(l + p).value().toFloatArray(), rel,
                        l + p + " merged vs PEFT's merge_and_unload");
            }
        }
    }

    @Test
    void anAdapterForOtherLayerShapesIsRefusedNamingTheFirstMismatchingLayer(@TempDir Path tmp) throws IOException {
        Path other = tmp.resolve("other.safetensors");
        ModelCheckpoint.save(new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 3, 48, 30, 24, 10), other, java.util.Map.of());
        Cli.Run run = Cli.run("merge", "--base", other.toString(), "--adapter", fixture("lora_r4").resolve("adapter").toString(),
                "--out", tmp.resolve("never.safetensors").toString(), "--no-progress");
        assertEquals(2, run.code(), run.out() + run.err());
        assertTrue(run.err().contains("base_model.model.fc1.lora_B.weight") && run.err().contains("[36, 4]"), run.err());
        assertTrue(!java.nio.file.Files.exists(tmp.resolve("never.safetensors")));
    }

    @Test
    void theCliMergesPeftsAdapterOntoAUserBaseToPeftsMergedWeights(@TempDir Path tmp) throws IOException {
        Path dir = fixture("lora_r4");
        Path out = tmp.resolve("merged.safetensors");
        Cli.Run run = Cli.run("merge", "--base", dir.resolve("base.safetensors").toString(), "--adapter", dir.resolve("adapter").toString(),
                "--out", out.toString(), "--no-progress");
        assertEquals(0, run.code(), run.out() + run.err());
        assertTrue(run.out().contains("does not record its base"), "a PEFT adapter has no peft4j base record: " + run.out());
        try (SafetensorsFile ours = SafetensorsFile.open(out); SafetensorsFile peft = SafetensorsFile.open(dir.resolve("merged.safetensors"))) {
            assertEquals(new java.util.TreeSet<>(peft.names()), new java.util.TreeSet<>(ours.names()), "same keys as the base");
            for (String k : peft.names()) {
                assertEquals(java.util.Arrays.toString(peft.entry(k).shape()), java.util.Arrays.toString(ours.entry(k).shape()), k);
                assertRelClose(peft.readF32(k), ours.readF32(k), 4e-7, k + " vs PEFT's merge_and_unload");
            }
        }
    }
}
