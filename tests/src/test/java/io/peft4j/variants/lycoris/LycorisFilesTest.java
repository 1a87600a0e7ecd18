package io.peft4j.variants.lycoris;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.mul;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lokr.KronMath;
import io.peft4j.variants.lokr.PeftFixtures;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LyCORIS/kohya single files: PEFT's own LoHa and LoKr adapters (the interop fixtures) converted to
 * LyCORIS and back keep every layer's ΔW within 1e-6 relative, each layout's ΔW computed in float64
 * by its own rules (LyCORIS: alpha/dim, scale 1 for a LoKr module with both factors full); files
 * without peft4j's metadata resolve names against the base; models save and load in the layout.
 */
class LycorisFilesTest {
    static final Set<String> LINEARS = Set.of("fc1", "fc2", "fc3");

    /** ΔW per module from a file: PEFT layout (scale = alpha/r from the config) or LyCORIS (per-module rules). */
    static Map<String, double[]> deltas(Path weights, String prefix, boolean lycoris, double peftScale) throws IOException {
        Map<String, Map<String, double[]>> t = new LinkedHashMap<>();
        Map<String, Map<String, long[]>> shapes = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            for (String k : f.names()) {
                String rest = k.substring(prefix.length()), module = rest.substring(0, rest.indexOf('.')), name = rest.substring(rest.indexOf('.') + 1);
                t.computeIfAbsent(module, x -> new LinkedHashMap<>()).put(name, TestSupport.toDouble(f.readF32(k)));
                shapes.computeIfAbsent(module, x -> new LinkedHashMap<>()).put(name, f.entry(k).shape());
            }
        }
        Map<String, double[]> out = new java.util.TreeMap<>();
        t.forEach((m, p) -> {
            Map<String, long[]> sh = shapes.get(m);
            if (p.containsKey("hada_w1_a")) {
                int dOut = (int) sh.get("hada_w1_a")[0], r = (int) sh.get("hada_w1_a")[1], dIn = (int) sh.get("hada_w1_b")[1];
                double s = lycoris ? p.get("alpha")[0] / r : peftScale;
                double[] m1 = mul(p.get("hada_w1_a"), p.get("hada_w1_b"), dOut, r, dIn), m2 = mul(p.get("hada_w2_a"), p.get("hada_w2_b"), dOut, r, dIn);
                double[] w = new double[m1.length];
                for (int i = 0; i < w.length; i++) w[i] = s * m1[i] * m2[i];
                out.put(m, w);
            } else {
                double[][] f = new double[2][];
                int[][] dims = new int[2][];
                Integer rank = null;
                for (int k = 1; k <= 2; k++) {
                    String full = "lokr_w" + k;
                    if (p.containsKey(full)) {
                        f[k - 1] = p.get(full);
                        dims[k - 1] = new int[] {(int) sh.get(full)[0], (int) sh.get(full)[1]};
                    } else {
                        int rows = (int) sh.get(full + "_a")[0], r = (int) sh.get(full + "_a")[1], cols = (int) sh.get(full + "_b")[1];
                        f[k - 1] = mul(p.get(full + "_a"), p.get(full + "_b"), rows, r, cols);
                        dims[k - 1] = new int[] {rows, cols};
                        rank = r;
                    }
                }
                double s = !lycoris ? peftScale : rank == null ? 1 : p.get("alpha")[0] / rank;
                double[] w = KronMath.kron(f[0], dims[0][0], dims[0][1], f[1], dims[1][0], dims[1][1]);
                for (int i = 0; i < w.length; i++) w[i] *= s;
                out.put(m, w);
            }
        });
        return out;
    }

    static void assertSameDeltas(Map<String, double[]> want, Map<String, double[]> got, String what) {
        assertEquals(want.keySet(), got.keySet(), what + ": modules");
        want.forEach((m, w) -> {
            float[] wf = new float[w.length];
            float[] gf = new float[w.length];
            for (int i = 0; i < w.length; i++) {
                wf[i] = (float) w[i];
                gf[i] = (float) got.get(m)[i];
            }
            assertRelClose(wf, gf, 1e-6, what + ": ΔW of " + m);
        });
    }

    @Test
    void peftsAdaptersConvertToLycorisAndBackKeepingEveryDeltaW(@TempDir Path tmp) throws IOException {
        for (String fixture : List.of("loha_r4", "lokr_r4_f4")) {
            Path adapter = PeftFixtures.fixture(fixture).resolve("adapter");
            Map<String, double[]> peft = deltas(adapter.resolve(PeftModel.WEIGHTS_FILE), PeftModel.KEY_PREFIX, false, 2.0);
            Path file = tmp.resolve(fixture + ".safetensors");
            LycorisFiles.peftToLycoris(adapter, file, LycorisFiles.DEFAULT_PREFIX);
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                assertTrue(f.contains("lycoris_fc1.alpha") && f.entry("lycoris_fc1.alpha").shape().length == 0, fixture + ": a 0-d alpha per module");
                assertTrue(f.contains(fixture.startsWith("loha") ? "lycoris_fc2.hada_w1_a" : "lycoris_fc2.lokr_w2_b"), fixture + ": " + f.names());
            }
            Map<String, double[]> lyc = deltas(file, LycorisFiles.DEFAULT_PREFIX, true, Double.NaN);
            assertSameDeltas(peft, lyc, fixture + " PEFT → LyCORIS");

            Path back = tmp.resolve(fixture + "-back");
            LycorisFiles.lycorisToPeft(file, back, LycorisFiles.DEFAULT_PREFIX, null);
            assertSameDeltas(peft, deltas(back.resolve(PeftModel.WEIGHTS_FILE), PeftModel.KEY_PREFIX, false, 2.0), fixture + " LyCORIS → PEFT");
            assertEquals(Cli.readJson(adapter.resolve(PeftModel.CONFIG_FILE)), Cli.readJson(back.resolve(PeftModel.CONFIG_FILE)),
                    fixture + ": the config comes back as it was");

            // The same file as another tool writes it (no peft4j metadata): names resolved against the base, config inferred.
            Path bare = tmp.resolve(fixture + "-bare.safetensors");
            SafetensorsWriter w = new SafetensorsWriter();
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                for (String k : f.names()) w.putF32(k, f.entry(k).shape(), f.readF32(k));
            }
            w.write(bare);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LycorisFiles.lycorisToPeft(bare, tmp.resolve("never"), LycorisFiles.DEFAULT_PREFIX, null));
            assertTrue(e.getMessage().contains("--base"), e.getMessage());
            Path inferred = tmp.resolve(fixture + "-inferred");
            LycorisFiles.lycorisToPeft(bare, inferred, LycorisFiles.DEFAULT_PREFIX, LINEARS);
            Map<String, Object> cfg = Cli.readJson(inferred.resolve(PeftModel.CONFIG_FILE));
            double s = ((Number) cfg.get("alpha")).doubleValue() / ((Number) cfg.get("r")).doubleValue();
            assertSameDeltas(peft, deltas(inferred.resolve(PeftModel.WEIGHTS_FILE), PeftModel.KEY_PREFIX, false, s), fixture + " bare LyCORIS → PEFT");

            // And a model loads it: PEFT's outputs.
            Module base = PeftFixtures.base(PeftFixtures.fixture(fixture));
            float[] x = TestSupport.readF32(PeftFixtures.fixture(fixture).resolve("x.safetensors"), "x");
            PeftModel pm = LycorisFiles.load(base, bare, LycorisFiles.DEFAULT_PREFIX);
            assertRelClose(TestSupport.readF32(PeftFixtures.fixture(fixture).resolve("y_adapted.safetensors"), "y"), TestSupport.forward(pm, x, 5), 2e-6,
                    fixture + ": a model loaded from the LyCORIS file gives PEFT's output");
        }
    }

    @Test
    void aModelSavesAndLoadsInTheLycorisLayout(@TempDir Path tmp) throws IOException {
        for (String fixture : List.of("loha_r4", "lokr_r4_f4")) {
            Path dir = PeftFixtures.fixture(fixture);
            PeftModel pm = PeftModel.load(PeftFixtures.base(dir), dir.resolve("adapter"));
            float[] x = TestSupport.readF32(dir.resolve("x.safetensors"), "x");
            float[] y = TestSupport.forward(pm, x, 5);
            Path file = tmp.resolve(fixture + ".safetensors");
            LycorisFiles.save(pm, "default", file, "lora_unet_");
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                assertTrue(new TreeSet<>(f.names()).first().startsWith("lora_unet_fc1."), f.names().toString());
            }
            PeftModel loaded = LycorisFiles.load(PeftFixtures.base(dir), file, "lora_unet_");
            assertRelClose(y, TestSupport.forward(loaded, x, 5), 1e-6, fixture + ": saved and loaded in the LyCORIS layout");
        }
    }

    @Test
    void theCliConvertsBothWays(@TempDir Path tmp) throws IOException {
        Path dir = PeftFixtures.fixture("lokr_r4_f4");
        Path file = tmp.resolve("lokr.safetensors"), back = tmp.resolve("back");
        Cli.Run to = Cli.run("convert", "--to", "lycoris", dir.resolve("adapter").toString(), file.toString());
        assertEquals(0, to.code(), to.out() + to.err());
        Cli.Run from = Cli.run("convert", "--to", "peft", file.toString(), back.toString());
        assertEquals(0, from.code(), from.out() + from.err());
        float[] x = TestSupport.readF32(dir.resolve("x.safetensors"), "x");
        assertRelClose(TestSupport.readF32(dir.resolve("y_adapted.safetensors"), "y"), TestSupport.forward(PeftModel.load(PeftFixtures.base(dir), back), x, 5),
                2e-6, "converted twice by the CLI");
        Cli.Run bad = Cli.run("convert", "--to", "lycoris", PeftFixtures.fixture("lora_r4").resolve("adapter").toString(), tmp.resolve("x").toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("peft_type LORA"), bad.err());
        Cli.Run wrongPrefix = Cli.run("convert", "--to", "peft", "--prefix", "lora_te_", file.toString(), tmp.resolve("y").toString());
        assertEquals(2, wrongPrefix.code());
        assertTrue(wrongPrefix.err().contains("lycoris_fc1") && wrongPrefix.err().contains("lora_te_"), wrongPrefix.err());
        Cli.Run badTo = Cli.run("convert", "--to", "kohya", file.toString(), tmp.resolve("z").toString());
        assertEquals(2, badTo.code());
        assertTrue(badTo.err().contains("--to must be lycoris or peft"), badTo.err());
    }
}
