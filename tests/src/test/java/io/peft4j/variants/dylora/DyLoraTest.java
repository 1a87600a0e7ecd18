package io.peft4j.variants.dylora;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraReference;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DyLoRA beyond the contract row: at rank b it is a LoRA truncated to b with scale α/b (forward,
 * ΔW, merge), in frozen mode only row b−1 of A and column b−1 of B get gradient (exactly zero
 * elsewhere) while the input gradient flows through all b ranks, in normal mode all of the first b;
 * the sampler draws one seeded b in 1..r per step, the same for every layer.
 */
class DyLoraTest {
    private static final int T = 9, IN = 13, OUT = 11, R = 6;
    private static final float ALPHA = 16;

    /** A [R, IN], B [OUT, R] truncated to the first b ranks, as LoRA's reference names them. */
    private static Map<String, double[]> truncated(DyLoraAdapter a, int b) {
        double[] av = toDouble(a.loraA().value().toFloatArray()), bv = toDouble(a.loraB().value().toFloatArray());
        double[] at = new double[b * IN], bt = new double[OUT * b];
        System.arraycopy(av, 0, at, 0, b * IN);
        for (int o = 0; o < OUT; o++) System.arraycopy(bv, o * R, bt, o * b, b);
        return Map.of(LoraReference.A, at, LoraReference.B, bt);
    }

    private static DyLoraAdapter adapter(boolean frozen, SplittableRandom r) {
        Linear layer = new Linear(backend(), IN, OUT, true, 3);
        DyLoraConfig cfg = DyLoraConfig.builder().r(R).alpha(ALPHA).frozen(frozen).targetModules(TargetModules.allLinear()).build();
        DyLoraAdapter a = (DyLoraAdapter) cfg.create(layer, "default", backend(), 11);
        a.loraA().value().copyFrom(normal(r, R * IN, 0.5));
        a.loraB().value().copyFrom(normal(r, OUT * R, 0.5));
        return a;
    }

    @ParameterizedTest(name = "frozen={0} b={1}")
    @CsvSource({"true,1", "true,4", "true,6", "false,1", "false,4", "false,6"})
    void gradientsAtRankBMatchATruncatedLoraAndFrozenModeTouchesOnlyRankBMinusOne(boolean frozen, int b) {
        SplittableRandom r = rng("dylora grad " + frozen + " " + b);
        DyLoraAdapter a = adapter(frozen, r);
        a.setTrainRank(b);
        float[] x = normal(r, T * IN, 1), g = normal(r, T * OUT, 1);
        LoraReference ref = LoraReference.of(b, ALPHA, false);   // s = α/b
        Map<String, double[]> p = truncated(a, b);
        Map<String, double[]> d = ref.backward(p, toDouble(x), toDouble(g), T, IN, OUT);
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            Tensor xt = ctx.allocate(T, IN).copyFrom(x), y = ctx.allocate(T, OUT), gt = ctx.allocate(T, OUT).copyFrom(g);
            backend().fill(0f, y);
            a.forward(ctx, xt, y);
            assertRelClose(toFloat(ref.forward(p, toDouble(x), T, IN, OUT)), y.toFloatArray(), 1e-5, "forward at rank " + b);
            backend().fill(0f, a.loraA().grad());
            backend().fill(0f, a.loraB().grad());
            Tensor dx = ctx.allocate(T, IN);
            backend().fill(0f, dx);
            a.backward(ctx, xt, gt, dx);
            assertRelClose(toFloat(d.get(LoraReference.INPUT)), dx.toFloatArray(), 1e-5, "dx flows through all " + b + " ranks");
            float[] da = a.loraA().grad().toFloatArray(), db = a.loraB().grad().toFloatArray();
            double[] daRef = d.get(LoraReference.A), dbRef = d.get(LoraReference.B);
            double scaleA = TestSupport.maxAbs(daRef), scaleB = TestSupport.maxAbs(dbRef);
            for (int i = 0; i < R; i++) {
                boolean trained = frozen ? i == b - 1 : i < b;
                for (int j = 0; j < IN; j++) {
                    float got = da[i * IN + j];
                    if (!trained) assertEquals(0f, got, "lora_A[" + i + "," + j + "] has no gradient at b=" + b);
                    else assertEquals(daRef[i * IN + j], got, 64 * U * scaleA + 1e-6 * scaleA, "lora_A[" + i + "," + j + "]");
                }
                for (int o = 0; o < OUT; o++) {
                    float got = db[o * R + i];
                    if (!trained) assertEquals(0f, got, "lora_B[" + o + "," + i + "] has no gradient at b=" + b);
                    else assertEquals(dbRef[o * b + i], got, 64 * U * scaleB + 1e-6 * scaleB, "lora_B[" + o + "," + i + "]");
                }
            }
        }
        a.close();
    }

    private static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    @Test
    void evaluationAtAnyRankEqualsLoraTruncatedToThatRankWithoutRetraining() {
        SplittableRandom r = rng("dylora eval");
        float[] x = normal(r, T * 13, 1);
        DyLoraConfig cfg = DyLoraConfig.builder().r(R).alpha(ALPHA).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 2);
        TestSupport.randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, r, 0.4);
        float[] yBase;
        pm.disableAdapters();
        yBase = TestSupport.forward(pm, x, T);
        pm.enableAdapters();
        for (int b = 1; b <= R; b++) {
            for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) ((DyLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).setEvalRank(b);
            float[] y = TestSupport.forward(pm, x, T);
            // ΔW at rank b against the float64 truncated LoRA, and the merged model's output against the unmerged one.
            for (var e : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).entrySet()) {
                DyLoraAdapter a = (DyLoraAdapter) e.getValue().adapter(PeftModel.DEFAULT_ADAPTER);
                int in = (int) e.getValue().inFeatures(), out = (int) e.getValue().outFeatures();
                double[] av = toDouble(a.loraA().value().toFloatArray()), bv = toDouble(a.loraB().value().toFloatArray());
                double[] ref = new double[out * in];
                for (int o = 0; o < out; o++) for (int j = 0; j < in; j++) {
                    double s = 0;
                    for (int k = 0; k < b; k++) s += bv[o * R + k] * av[k * in + j];
                    ref[o * in + j] = ALPHA / b * s;
                }
                try (Tensor d = a.deltaWeight(backend())) {
                    assertRelClose(toFloat(ref), d.toFloatArray(), 1e-5, e.getKey() + " ΔW at rank " + b);
                }
            }
            pm.merge();
            assertRelClose(y, TestSupport.forward(pm, x, T), 2e-5, "merged at rank " + b);
            pm.unmerge();
            assertTrue(TestSupport.differs(yBase, y), "rank " + b + " changes the output");
        }
    }

    @Test
    void theSamplerDrawsOneSeededRankPerStepSharedByEveryLayer() {
        DyLoraConfig cfg = DyLoraConfig.builder().r(R).alpha(ALPHA).rankSeed(9).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 2);
        List<DyLoraAdapter> ads = pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values().stream()
                .map(l -> (DyLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).toList();
        RankSampler s1 = (RankSampler) pm.trainerCallbacks().get(0);
        int[] seq = new int[600];
        Set<Integer> seen = new HashSet<>();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), Trainer.Config.builder().progress(false).build(), backend())) {
            for (int i = 0; i < seq.length; i++) {
                seq[i] = ads.get(0).trainRank();
                for (DyLoraAdapter a : ads) assertEquals(seq[i], a.trainRank(), "every layer trains at the same b");
                seen.add(seq[i]);
                s1.afterOptimizerStep(t.state());
            }
            assertEquals(Set.of(1, 2, 3, 4, 5, 6), seen, "b covers 1..r");
            for (int b = 1; b <= R; b++) {
                int count = 0;
                for (int v : seq) if (v == b) count++;
                assertTrue(count > 60 && count < 140, "b=" + b + " drawn " + count + " times of 600 (uniform: 100)");
            }
            RankSampler s2 = (RankSampler) pm.trainerCallbacks().get(0);
            for (int v : seq) {
                assertEquals(v, ads.get(0).trainRank(), "same rank_seed, same sequence");
                s2.afterOptimizerStep(t.state());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> ads.get(0).setEvalRank(R + 1));
    }

    @Test
    void frozenTrainingWithTheSamplerTrainsEveryRankAndEvaluatesAtEachRank() {
        DyLoraConfig cfg = DyLoraConfig.builder().r(4).alpha(8).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(8), cfg, backend(), 2);
        Trainer.Config tc = Trainer.Config.builder().maxSteps(40).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), tc, backend())) {
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        for (Linear l : pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).values()) {
            float[] b = ((DyLoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER)).loraB().value().toFloatArray();
            int cols = 4;
            for (int k = 0; k < cols; k++) {
                boolean moved = false;
                for (int o = 0; o < b.length / cols; o++) moved |= b[o * cols + k] != 0f;
                assertTrue(moved, l.path() + ": column " + k + " of B was trained (B starts at 0)");
            }
        }
    }
}
