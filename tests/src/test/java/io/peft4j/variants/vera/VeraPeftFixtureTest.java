package io.peft4j.variants.vera;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.readF32;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.tiedlora.ScaledLowRankAdapter;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PEFT's own VeRA adapter (interop/peft/vera_r16: r 16 on an MLP 48-36-24-10, vera_A/vera_B from
 * PEFT's init with projection_prng_key 0, saved; lambdas random): peft4j loads the file as PEFT wrote
 * it, uses PEFT's saved projections (its own Philox draws differ from PyTorch's generator), and gives
 * PEFT's adapted output and merged weights.
 */
class VeraPeftFixtureTest {
    private static final List<String> LAYERS = List.of("fc1", "fc2", "fc3");
    private static final int[][] SHAPES = {{36, 48}, {24, 36}, {10, 24}};
    private static final int R = 16;

    private static Path fixture() {
        try {
            return Path.of(VeraPeftFixtureTest.class.getResource("/interop/peft/vera_r16").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Mlp base(Path dir) throws java.io.IOException {
        Mlp mlp = new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 7, 48, 36, 24, 10);
        ModelCheckpoint.load(mlp, dir.resolve("base.safetensors"));
        return mlp;
    }

    @Test
    void peftsVeraLoadsWithItsSavedProjectionsAndMatchesPeftsOutputAndMerge() throws Exception {
        Path dir = fixture();
        Path weights = dir.resolve("adapter/adapter_model.safetensors");
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        PeftModel pm = PeftModel.load(base(dir), dir.resolve("adapter"));
        VeraConfig cfg = (VeraConfig) pm.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER);
        assertEquals(R, cfg.r());
        assertTrue(cfg.saveProjection());

        // The model's one pair is PEFT's, bit for bit, whatever peft4j's generator would draw.
        ScaledLowRankAdapter fc1 = (ScaledLowRankAdapter) pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("fc1").adapter(PeftModel.DEFAULT_ADAPTER);
        float[] peftA = readF32(weights, "base_model.vera_A"), peftB = readF32(weights, "base_model.vera_B");
        assertBitEqual(peftA, fc1.a().value().toFloatArray(), "vera_A from the file");
        assertBitEqual(peftB, fc1.b().value().toFloatArray(), "vera_B from the file");

        float[] yPeft = readF32(dir.resolve("y_adapted.safetensors"), "y");
        float[] yOurs = forward(pm, x, 5);
        assertRelClose(yPeft, yOurs, 2e-6, "adapted output vs PEFT's");

        // ΔW = diag(λ_b)·B[:out]·diag(λ_d)·A[:, :in] in float64 from the file, against peft4j's and PEFT's merges.
        float[][] w0 = new float[3][];
        for (int i = 0; i < 3; i++) w0[i] = readF32(dir.resolve("base.safetensors"), LAYERS.get(i) + ".weight");
        Module unloaded = pm.mergeAndUnload();
        double[] a = toDouble(peftA), b = toDouble(peftB);
        for (int i = 0; i < 3; i++) {
            String l = LAYERS.get(i);
            int out = SHAPES[i][0], in = SHAPES[i][1];
            double[] lb = toDouble(readF32(weights, "base_model.model." + l + ".vera_lambda_b"));
            double[] ld = toDouble(readF32(weights, "base_model.model." + l + ".vera_lambda_d"));
            float[] ref = new float[out * in];
            for (int j = 0; j < out; j++) {
                for (int c = 0; c < in; c++) {
                    double acc = 0;
                    for (int k = 0; k < R; k++) acc += b[j * R + k] * ld[k] * a[k * 48 + c];
                    ref[j * in + c] = (float) (w0[i][j * in + c] + lb[j] * acc);
                }
            }
            float[] ours = unloaded.namedParameters().get(l + ".weight").value().toFloatArray();
            assertRelClose(ref, ours, 4e-7, l + ".weight merged vs W0 + ΔW in float64");
            assertRelClose(readF32(dir.resolve("merged.safetensors"), l + ".weight"), ours, 4e-7, l + ".weight merged vs PEFT's merge_and_unload");
            assertBitEqual(readF32(dir.resolve("base.safetensors"), l + ".bias"), unloaded.namedParameters().get(l + ".bias").value().toFloatArray(), l + ".bias is not touched by a VeRA merge");
        }
        unloaded.close();
    }

    @Test
    void peftsFileRoundTripsThroughPeft4jWithPeftsKeysAndConfigFields(@TempDir Path tmp) throws Exception {
        Path dir = fixture();
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        try (PeftModel pm = PeftModel.load(base(dir), dir.resolve("adapter"))) {
            pm.save(tmp);
            try (SafetensorsFile ours = SafetensorsFile.open(tmp.resolve(PeftModel.WEIGHTS_FILE));
                 SafetensorsFile peft = SafetensorsFile.open(dir.resolve("adapter/adapter_model.safetensors"))) {
                assertEquals(new TreeSet<>(peft.names()), new TreeSet<>(ours.names()), "PEFT's keys");
                for (String k : peft.names()) assertBitEqual(peft.readF32(k), ours.readF32(k), k);
            }
            Map<String, Object> json = io.peft4j.cli.Cli.readJson(tmp.resolve(PeftModel.CONFIG_FILE));
            assertEquals("VERA", json.get("peft_type"));
            assertEquals(16, ((Number) json.get("r")).intValue());
            assertEquals(true, json.get("save_projection"));
            try (PeftModel again = PeftModel.load(base(dir), tmp)) {
                assertBitEqual(forward(pm, x, 5), forward(again, x, 5), "reloaded from peft4j's copy");
            }
        }
    }
}
