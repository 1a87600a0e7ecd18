package io.peft4j.variants.lokr;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.readF32;

import io.peft4j.io.ModelCheckpoint;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.function.BiFunction;

/**
 * The adapters PEFT itself wrote (test resources interop/peft/, copied from the shared fixtures:
 * PEFT 0.20.1.dev0 on an MLP 48→36→24→10, ReLU, every adapter tensor random): load one as PEFT saved
 * it, compare the outputs and merged weights with PEFT's and with a float64 ΔW from the file.
 */
public final class PeftFixtures {
    private PeftFixtures() {}

    public static final String[] LAYERS = {"fc1", "fc2", "fc3"};
    public static final int[][] SHAPES = {{36, 48}, {24, 36}, {10, 24}};

    public static Path fixture(String name) {
        try {
            return Path.of(PeftFixtures.class.getResource("/interop/peft/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Mlp base(Path dir) throws IOException {
        Mlp mlp = new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 7, 48, 36, 24, 10);
        ModelCheckpoint.load(mlp, dir.resolve("base.safetensors"));
        return mlp;
    }

    /**
     * Loads {@code name}'s adapter and checks: base output, adapted output (PEFT's, 2e-6 relative),
     * and merged weights against W0 + ΔW in float64 (deltaOf(layer index, adapter file)) and PEFT's
     * merge_and_unload (1e-6); biases untouched. Returns the loaded model before merging.
     */
    public static void checkAgainstPeft(String name, BiFunction<Integer, Path, double[]> deltaOf) throws IOException {
        Path dir = fixture(name);
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        Module base = base(dir);
        assertRelClose(readF32(dir.resolve("y_base.safetensors"), "y"), forward(base, x, 5), 1e-6, name + ": base output vs PyTorch's");
        PeftModel pm = PeftModel.load(base, dir.resolve("adapter"));
        assertRelClose(readF32(dir.resolve("y_adapted.safetensors"), "y"), forward(pm, x, 5), 2e-6, name + ": adapted output vs PEFT's");
        Path weights = dir.resolve("adapter/adapter_model.safetensors");
        Module merged = pm.mergeAndUnload();
        for (int i = 0; i < 3; i++) {
            String l = LAYERS[i];
            float[] w0 = readF32(dir.resolve("base.safetensors"), l + ".weight");
            double[] delta = deltaOf.apply(i, weights);
            float[] ref = new float[w0.length];
            for (int j = 0; j < ref.length; j++) ref[j] = (float) (w0[j] + delta[j]);
            float[] ours = merged.namedParameters().get(l + ".weight").value().toFloatArray();
            assertRelClose(ref, ours, 1e-6, name + ": " + l + ".weight merged vs W0 + ΔW in float64");
            assertRelClose(readF32(dir.resolve("merged.safetensors"), l + ".weight"), ours, 1e-6, name + ": " + l + ".weight vs PEFT's merge_and_unload");
            assertRelClose(readF32(dir.resolve("merged.safetensors"), l + ".bias"), merged.namedParameters().get(l + ".bias").value().toFloatArray(), 0,
                    name + ": " + l + ".bias untouched");
        }
    }

    /** A tensor of the fixture's adapter file in float64. */
    public static double[] tensor(Path weights, String layer, String name) {
        try {
            return TestSupport.toDouble(readF32(weights, "base_model.model." + layer + "." + name));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
