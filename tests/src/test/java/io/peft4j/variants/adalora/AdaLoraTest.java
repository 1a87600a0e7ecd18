package io.peft4j.variants.adalora;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.readF32;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * AdaLoRA beyond the contract rows: PEFT's own adapter (fixture adalora_r6) loads and gives PEFT's
 * outputs and merge; the budget schedule against its closed form; masking keeps the top-budget
 * triplets with ties at the threshold masked; the triplet scores; the orthogonal regulariser's
 * gradient against central differences in both forms; a trained adapter ends at the target budget
 * with the optimizer state resized with it, and an uneven rank_pattern saves, reloads and gives the
 * same outputs.
 */
class AdaLoraTest {
    private static final List<String> LAYERS = List.of("fc1", "fc2", "fc3");

    static Path fixture(String name) {
        try {
            return Path.of(AdaLoraTest.class.getResource("/interop/peft/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---- PEFT's own adapter ----

    @Test
    void peftsAdapterLoadsAsSavedAndMatchesPeftsOutputsAndMerge() throws IOException {
        Path dir = fixture("adalora_r6");
        float[] x = readF32(dir.resolve("x.safetensors"), "x");
        Mlp base = new Mlp(backend(), Mlp.Activation.RELU, 7, 48, 36, 24, 10);
        ModelCheckpoint.load(base, dir.resolve("base.safetensors"));
        PeftModel pm = PeftModel.load(base, dir.resolve("adapter"));
        AdaLoraConfig cfg = (AdaLoraConfig) pm.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER);
        assertEquals(6, cfg.initR());
        assertEquals(2, cfg.targetR());
        assertEquals(100, cfg.totalStep());
        assertEquals(5, cfg.deltaT());
        assertRelClose(readF32(dir.resolve("y_adapted.safetensors"), "y"), forward(pm, x, 5), 2e-6, "adapted output vs PEFT's");

        Path weights = dir.resolve("adapter/adapter_model.safetensors");
        int[][] shapes = {{36, 48}, {24, 36}, {10, 24}};
        float[][] w0 = new float[3][];
        for (int i = 0; i < 3; i++) w0[i] = readF32(dir.resolve("base.safetensors"), LAYERS.get(i) + ".weight");
        Module unloaded = pm.mergeAndUnload();
        double c = 8 / (6 + 1e-5);
        for (int i = 0; i < 3; i++) {
            String l = LAYERS.get(i);
            int out = shapes[i][0], in = shapes[i][1];
            double[] a = toDouble(readF32(weights, "base_model.model." + l + ".lora_A"));
            double[] e = toDouble(readF32(weights, "base_model.model." + l + ".lora_E"));
            double[] b = toDouble(readF32(weights, "base_model.model." + l + ".lora_B"));
            for (int k = 0; k < 6; k++) for (int j = 0; j < in; j++) a[k * in + j] *= e[k];
            double[] bea = mul(b, a, out, 6, in);
            float[] ref = new float[out * in];
            for (int j = 0; j < ref.length; j++) ref[j] = (float) (w0[i][j] + c * bea[j]);
            float[] ours = unloaded.namedParameters().get(l + ".weight").value().toFloatArray();
            assertRelClose(ref, ours, 4e-7, l + ".weight merged vs W0 + c·B·diag(E)·A in float64");
            assertRelClose(readF32(dir.resolve("merged.safetensors"), l + ".weight"), ours, 1e-6, l + ".weight vs PEFT's merge_and_unload");
        }
    }

    @Test
    void peftsConfigWithoutTotalStepOrWithABadPatternIsHandledByName() {
        Map<String, Object> json = Cli.readJson(fixture("adalora_r6").resolve("adapter/adapter_config.json"));
        json.put("total_step", null);
        AdaLoraConfig c = (AdaLoraConfig) new AdaLoraMethod().configFromJson(json);
        assertEquals(0, c.totalStep(), "PEFT's null total_step: the run's own step count");
        json.put("rank_pattern", Map.of("fc1.lora_E", List.of(true, false)));
        var e = assertThrows(IllegalArgumentException.class, () -> new AdaLoraMethod().configFromJson(json));
        assertTrue(e.getMessage().contains("fc1.lora_E") && e.getMessage().contains("init_r is 6"), e.getMessage());
        json.put("rank_pattern", Map.of("fc1.lora_A", List.of(true, false, true, true, true, true)));
        e = assertThrows(IllegalArgumentException.class, () -> new AdaLoraMethod().configFromJson(json));
        assertTrue(e.getMessage().contains("'fc1.lora_A'"), e.getMessage());
        json.put("rank_pattern", null);
        json.put("total_step", 100);
        json.put("tinit", 90);
        e = assertThrows(IllegalArgumentException.class, () -> new AdaLoraMethod().configFromJson(json));
        assertTrue(e.getMessage().contains("tinit=90"), e.getMessage());
    }

    // ---- schedule, scores, masking ----

    private static PeftModel model(AdaLoraConfig cfg, long seed) {
        return PeftModel.wrap(TestSupport.mlp(seed), cfg, backend(), 5);
    }

    private static AdaLoraConfig config(int initR, int targetR, long tinit, long tfinal, long deltaT, long total) {
        return AdaLoraConfig.builder().initR(initR).targetR(targetR).tinit(tinit).tfinal(tfinal).deltaT(deltaT).totalStep(total)
                .targetModules(TargetModules.allLinear()).build();
    }

    @Test
    void budgetScheduleEqualsTheClosedFormAtChosenSteps() {
        AdaLoraConfig cfg = config(6, 2, 10, 20, 5, 100);
        RankAllocator ra = new RankAllocator(model(cfg, 1), PeftModel.DEFAULT_ADAPTER, cfg);
        assertEquals(18, ra.initBudget());
        assertEquals(6, ra.targetBudget());
        for (long t : new long[] {0, 5, 10}) assertEquals(new RankAllocator.Budget(18, false), ra.budget(t, 100), "t=" + t);
        for (long t : new long[] {11, 14, 15, 33, 45, 60, 79, 80}) {
            double f = 1 - (t - 10) / 70.0;
            int expected = (int) Math.floor(6 + 12 * f * f * f);
            assertEquals(new RankAllocator.Budget(expected, t % 5 == 0), ra.budget(t, 100), "t=" + t);
        }
        assertEquals(new RankAllocator.Budget(17, false), ra.budget(11, 100), "t=11: floor(6 + 12·(69/70)³) = 17");
        assertEquals(new RankAllocator.Budget(6, true), ra.budget(80, 100), "t = T − t_f: the target");
        for (long t : new long[] {81, 99}) assertEquals(new RankAllocator.Budget(6, true), ra.budget(t, 100), "t=" + t);
    }

    /** Sets every importance input so that triplet i of layer k scores exactly as eScores says (A and B contribute 0). */
    private static void importance(PeftModel pm, RankAllocator ra, double[][] eImportance) {
        int k = 0;
        for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) {
            AdaLoraAdapter a = (AdaLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER);
            float[] ones = new float[a.rank()], ipt = new float[a.rank()];
            Arrays.fill(ones, 1f);
            for (int i = 0; i < ipt.length; i++) ipt[i] = (float) eImportance[k][i];
            a.loraE().value().copyFrom(ones);
            a.loraE().grad().copyFrom(ipt);
            a.loraA().grad().copyFrom(new float[(int) a.loraA().numel()]);
            a.loraB().grad().copyFrom(new float[(int) a.loraB().numel()]);
            k++;
        }
        ra.updateImportance(backend());
    }

    @Test
    void maskingKeepsTheTopBudgetTripletsAndMasksEveryTieAtTheThreshold() {
        AdaLoraConfig cfg = config(6, 2, 0, 0, 1, 100);
        PeftModel pm = model(cfg, 2);
        RankAllocator ra = new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg);
        double[][] ipt = {{1, 2, 3, 4, 5, 6}, {3, 3, 7, 8, 9, 10}, {0.5, 11, 12, 13, 14, 15}};
        importance(pm, ra, ipt);
        // One update from zero: Ī = (1−β1)·I, Ū = (1−β2)·β1·I, so s ∝ I²: the order of I.
        Map<String, double[]> scores = ra.tripletScores();
        double f = 0.15 * 0.15 * 0.85;
        assertEquals(f * 9, scores.get("fc2")[0], 1e-6 * f * 9);
        // budget 13: k = 5, the 5th smallest score is I = 3, shared by three triplets: all three go (6 masked).
        ra.maskToBudget(13);
        boolean[][] kept = {{false, false, false, true, true, true}, {false, false, true, true, true, true}, {false, true, true, true, true, true}};
        int k = 0;
        for (var e : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).entrySet()) {
            AdaLoraAdapter a = (AdaLoraAdapter) e.getValue().adapter(PeftModel.DEFAULT_ADAPTER);
            float[] ev = a.loraE().value().toFloatArray();
            for (int i = 0; i < 6; i++) assertEquals(kept[k][i] ? 1f : 0f, ev[i], e.getKey() + " triplet " + i);
            assertArrayEquals(kept[k], ra.pattern().get(e.getKey()), e.getKey() + " pattern");
            k++;
        }
        // budget 12: k = 6 lands on the same tie: the same 6 masked, exactly init − budget.
        RankAllocator fresh = new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg);
        importance(pm, fresh, ipt);
        fresh.maskToBudget(12);
        assertEquals(12, fresh.pattern().values().stream().mapToInt(p -> { int n = 0; for (boolean b : p) if (b) n++; return n; }).sum());
        // budget = init: k = 0, nothing masked.
        RankAllocator none = new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg);
        importance(pm, none, ipt);
        none.maskToBudget(18);
        assertTrue(none.pattern().isEmpty());
    }

    @Test
    void tripletScoresAreMeansOfTheElementScoresAfterTwoUpdates() {
        AdaLoraConfig cfg = AdaLoraConfig.builder().initR(3).targetR(1).beta1(0.8f).beta2(0.7f).totalStep(10)
                .targetModules(TargetModules.names("fc2")).build();
        PeftModel pm = model(cfg, 3);
        RankAllocator ra = new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg);
        AdaLoraAdapter a = (AdaLoraAdapter) pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("fc2").adapter(PeftModel.DEFAULT_ADAPTER);
        SplittableRandom r = rng("adalora scores");
        List<Parameter> ps = a.parameters();
        double[][] ib = new double[3][], ub = new double[3][];
        for (int step = 0; step < 2; step++) {
            for (int p = 0; p < 3; p++) {
                Parameter par = ps.get(p);
                float[] w = normal(r, (int) par.numel(), 1), g = normal(r, (int) par.numel(), 1);
                par.value().copyFrom(w);
                par.grad().copyFrom(g);
                if (ib[p] == null) {
                    ib[p] = new double[w.length];
                    ub[p] = new double[w.length];
                }
                for (int i = 0; i < w.length; i++) {
                    double ipt = Math.abs((double) w[i] * g[i]);
                    ib[p][i] = 0.8 * ib[p][i] + 0.2 * ipt;
                    ub[p][i] = 0.7 * ub[p][i] + 0.3 * Math.abs(ipt - ib[p][i]);
                }
            }
            ra.updateImportance(backend());
        }
        int dIn = 17, dOut = 11;
        double[] got = ra.tripletScores().get("fc2");
        for (int i = 0; i < 3; i++) {
            double sa = 0, sb = 0;
            for (int j = 0; j < dIn; j++) sa += ib[0][i * dIn + j] * ub[0][i * dIn + j];
            for (int j = 0; j < dOut; j++) sb += ib[2][j * 3 + i] * ub[2][j * 3 + i];
            double expected = ib[1][i] * ub[1][i] + sa / dIn + sb / dOut;
            assertEquals(expected, got[i], 1e-5 * expected, "triplet " + i);
        }
    }

    // ---- orthogonal regulariser ----

    /** R = γ·(1/n)·Σ ‖M − I‖_F (peft) or γ·Σ ‖M − I‖_F² (squared), M = QQᵀ and PᵀP of every layer. */
    static double regulariser(List<double[][]> qp, List<int[]> dims, double gamma, boolean squared) {
        double sum = 0;
        for (int l = 0; l < qp.size(); l++) {
            int r = dims.get(l)[0], dIn = dims.get(l)[1], dOut = dims.get(l)[2];
            double[] q = qp.get(l)[0], p = qp.get(l)[1];
            for (int which = 0; which < 2; which++) {
                double sq = 0;
                for (int i = 0; i < r; i++) {
                    for (int j = 0; j < r; j++) {
                        double m = 0;
                        if (which == 0) for (int k = 0; k < dIn; k++) m += q[i * dIn + k] * q[j * dIn + k];
                        else for (int k = 0; k < dOut; k++) m += p[k * r + i] * p[k * r + j];
                        double d = m - (i == j ? 1 : 0);
                        sq += d * d;
                    }
                }
                sum += squared ? sq : Math.sqrt(sq);
            }
        }
        return squared ? gamma * sum : gamma * sum / (2 * qp.size());
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"peft", "squared"})
    void orthogonalRegulariserGradientMatchesCentralDifferences(String form) {
        AdaLoraConfig cfg = AdaLoraConfig.builder().initR(3).targetR(1).orthRegWeight(0.3f).orthRegForm(form).totalStep(10)
                .targetModules(TargetModules.allLinear()).build();
        PeftModel pm = model(cfg, 4);
        SplittableRandom r = rng("adalora orth " + form);
        TestSupport.randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, r, 0.4);
        List<AdaLoraAdapter> ads = pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values().stream()
                .map(l -> (AdaLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).toList();
        List<double[][]> qp = ads.stream().map(a -> new double[][] {toDouble(a.loraA().value().toFloatArray()), toDouble(a.loraB().value().toFloatArray())}).toList();
        List<int[]> dims = ads.stream().map(a -> new int[] {3, (int) a.loraA().value().dim(1), (int) a.loraB().value().dim(0)}).toList();
        for (AdaLoraAdapter a : ads) for (Parameter p : a.parameters()) p.grad().copyFrom(new float[(int) p.numel()]);
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), Trainer.Config.builder().progress(false).build(), backend())) {
            new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg).afterBackward(t.state());
        }
        boolean squared = form.equals("squared");
        double h = 1e-6;
        for (int l = 0; l < ads.size(); l++) {
            for (int which = 0; which < 2; which++) {
                float[] grad = (which == 0 ? ads.get(l).loraA() : ads.get(l).loraB()).grad().toFloatArray();
                double scale = Arrays.stream(toDouble(grad)).map(Math::abs).max().orElse(0);
                assertTrue(scale > 0, "the regulariser has a gradient");
                for (int i = 0; i < grad.length; i += 5) {
                    double[] v = qp.get(l)[which];
                    double keep = v[i];
                    v[i] = keep + h;
                    double fp = regulariser(qp, dims, 0.3, squared);
                    v[i] = keep - h;
                    double fm = regulariser(qp, dims, 0.3, squared);
                    v[i] = keep;
                    double fd = (fp - fm) / (2 * h);
                    assertEquals(fd, grad[i], 1e-4 * scale, form + " layer " + l + (which == 0 ? " lora_A[" : " lora_B[") + i + "]");
                }
            }
        }
        // The gradient is added only to P and Q; Λ's stays zero.
        for (AdaLoraAdapter a : ads) for (float v : a.loraE().grad().toFloatArray()) assertEquals(0f, v);
    }

    // ---- training, resizing, rank_pattern files ----

    @Test
    void trainingEndsAtTheTargetBudgetWithTheOptimizerStateResizedAndTheSavedPatternReloads(@TempDir Path dir) {
        AdaLoraConfig cfg = AdaLoraConfig.builder().initR(4).targetR(2).tinit(2).tfinal(3).deltaT(1)
                .targetModules(TargetModules.allLinear()).build();   // total_step: the run's 20 steps
        PeftModel pm = model(cfg, 6);
        AdamW opt = new AdamW(0.9f, 0.999f, 1e-8f, 0f);
        Trainer.Config tc = Trainer.Config.builder().maxSteps(20).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), opt, tc, backend())) {
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        int total = 0;
        for (var e : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).entrySet()) {
            AdaLoraAdapter a = (AdaLoraAdapter) e.getValue().adapter(PeftModel.DEFAULT_ADAPTER);
            total += a.rank();
            for (float v : a.loraE().value().toFloatArray()) assertTrue(v != 0f, "only kept triplets remain");
            for (String n : List.of("lora_A", "lora_E", "lora_B")) {
                Tensor p = (n.equals("lora_A") ? a.loraA() : n.equals("lora_E") ? a.loraE() : a.loraB()).value();
                String key = e.getKey() + "." + n + ".default";
                assertArrayEquals(p.shape(), opt.state().get(key + ".exp_avg").shape(), key + ".exp_avg follows the rank");
                assertArrayEquals(p.shape(), opt.state().get(key + ".exp_avg_sq").shape(), key + ".exp_avg_sq follows the rank");
            }
        }
        assertEquals(6, total, "the kept triplets are the final budget target_r·layers");
        assertEquals(3, cfg.rankPattern().ranks().size());

        float[] x = normal(rng("adalora reload"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        pm.save(dir);
        Map<String, Object> json = Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE));
        @SuppressWarnings("unchecked")
        Map<String, List<Boolean>> saved = (Map<String, List<Boolean>>) json.get("rank_pattern");
        assertEquals(3, saved.size());
        saved.forEach((k, v) -> assertEquals(4, v.size(), k + " has init_r flags"));
        PeftModel reloaded = PeftModel.load(TestSupport.mlp(6), dir);
        assertBitEqual(y, forward(reloaded, x, 7), "the reloaded, resized adapter gives the same output");
    }

    @Test
    void anUnevenRankPatternSavesReloadsAndGivesTheSameOutputs(@TempDir Path dir) {
        AdaLoraConfig cfg = config(6, 2, 0, 0, 1, 100);
        PeftModel pm = model(cfg, 7);
        TestSupport.randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, rng("adalora uneven"), 0.4);
        RankAllocator ra = new RankAllocator(pm, PeftModel.DEFAULT_ADAPTER, cfg);
        // fc1 keeps 5, fc2 keeps 2, fc3 keeps 1: I rises with the index within a layer, highest in fc1.
        double[][] ipt = {{6, 20, 21, 22, 23, 24}, {1, 2, 3, 4, 18, 19}, {5, 7, 8, 9, 10, 17}};
        float[][] e = new float[3][];
        int k = 0;
        for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) e[k++] = ((AdaLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).loraE().value().toFloatArray();
        importance(pm, ra, ipt);
        k = 0;
        for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) ((AdaLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).loraE().value().copyFrom(e[k++]);
        ra.maskToBudget(8);
        float[] x = normal(rng("adalora uneven x"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), Trainer.Config.builder().progress(false).build(), backend())) {
            ra.endOfTraining(t.state());
        }
        assertEquals(Map.of("fc1", 5, "fc2", 2, "fc3", 1), cfg.rankPattern().ranks());
        assertRelClose(y, forward(pm, x, 7), 2e-6, "dropping masked triplets leaves the output");
        pm.save(dir);
        PeftModel reloaded = PeftModel.load(TestSupport.mlp(7), dir);
        AdaLoraAdapter fc2 = (AdaLoraAdapter) reloaded.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("fc2").adapter(PeftModel.DEFAULT_ADAPTER);
        assertEquals(2, fc2.rank());
        assertArrayEquals(new long[] {2, 17}, fc2.loraA().value().shape());
        assertEquals(6, ((AdaLoraConfig) reloaded.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER)).initR(), "the scale still divides by init_r");
        assertBitEqual(forward(pm, x, 7), forward(reloaded, x, 7), "reloaded uneven pattern");
    }
}
