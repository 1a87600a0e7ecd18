package io.peft4j.variants.sora;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SoRA beyond the contract row: the gates' own step (L1 subgradient, AdamW with eps 1e-6 and no
 * decay, then the threshold in either semantics) against a float64 reference, the run's optimizer
 * leaving the gates alone, the sparsity schedule, training that closes gates, and pruning to a plain
 * LoRA adapter that loads and gives the same outputs.
 */
class SoraTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "soft"})
    void theGateStepIsL1PlusAdamWThenTheThreshold(String mode) {
        float lambda = 2f, xi = 0.05f, lr = 0.03f;
        SoraConfig cfg = SoraConfig.builder().r(5).sparseLambda(lambda).sparseLambda2(xi).threshold(mode).targetModules(TargetModules.names("fc1", "fc3")).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(3), cfg, backend(), 4);
        SplittableRandom r = rng("sora gate step " + mode);
        List<SoraAdapter> ads = pm.adaptedLayers(DEFAULT).values().stream().map(l -> (SoraAdapter) l.adapter(DEFAULT)).toList();
        float[][] g0 = new float[2][], grad = new float[2][];
        for (int k = 0; k < 2; k++) {
            g0[k] = normal(r, 5, 0.1);
            g0[k][0] = 0f;   // sign(0) = 0: no L1 push
            grad[k] = normal(r, 5, 0.5);
            ads.get(k).gate().value().copyFrom(g0[k]);
            ads.get(k).gate().grad().copyFrom(grad[k]);
        }
        ((GateOptimizer) pm.trainerCallbacks().get(0)).step(backend(), lr, 0);
        for (int k = 0; k < 2; k++) {
            float[] got = ads.get(k).gate().value().toFloatArray();
            for (int i = 0; i < 5; i++) {
                double gi = grad[k][i] + lambda / 10.0 * Math.signum(g0[k][i]);
                double m = 0.1 * gi, v = 0.001 * gi * gi;
                double mhat = m / (1 - 0.9), vhat = v / (1 - 0.999);
                double g1 = g0[k][i] - lr * mhat / (Math.sqrt(vhat) + 1e-6);
                double th = mode.equals("soft") ? lr * xi : xi;
                double expected = mode.equals("soft")
                        ? (Math.abs(g1) <= th ? 0 : g1 - Math.signum(g1) * th)
                        : (Math.abs(g1) == th ? g1 : Math.abs(g1) < 2 * th ? 0 : g1 - Math.signum(g1) * th);
                assertEquals(expected, got[i], 1e-6 + 1e-5 * Math.abs(expected), mode + " gate " + k + "[" + i + "]");
            }
            for (float v : ads.get(k).gate().grad().toFloatArray()) assertEquals(0f, v, "the gate gradient is consumed");
        }
    }

    @Test
    void theSparsityScheduleStepsXiEveryLambdaEpochs() {
        SoraConfig lin = SoraConfig.builder().sparseLambda2(1e-4f).maxLambda(7e-4f).lambdaNum(4).lambdaEpochs(2).lambdaSchedule("linear")
                .targetModules(TargetModules.allLinear()).build();
        assertEquals(1e-4, lin.xiAtEpoch(0), 1e-9);
        assertEquals(1e-4, lin.xiAtEpoch(1), 1e-9);
        assertEquals(3e-4, lin.xiAtEpoch(2), 1e-9);
        assertEquals(7e-4, lin.xiAtEpoch(6), 1e-9);
        assertEquals(7e-4, lin.xiAtEpoch(60), 1e-9, "stays at the last value");
        SoraConfig exp = SoraConfig.builder().sparseLambda2(1e-4f).maxLambda(1e-2f).lambdaNum(3).lambdaEpochs(1).lambdaSchedule("exp_linear")
                .targetModules(TargetModules.allLinear()).build();
        assertEquals(1e-3, exp.xiAtEpoch(1), 1e-9, "geometric middle of 1e-4 and 1e-2");
        SoraConfig none = SoraConfig.builder().targetModules(TargetModules.allLinear()).build();
        assertEquals(3e-4, none.xiAtEpoch(40), 1e-9);
    }

    @Test
    void trainingClosesGatesAndThePrunedLoraGivesTheSameOutputs(@TempDir Path dir) {
        SoraConfig cfg = SoraConfig.builder().r(6).sparseLambda(10).sparseLambda2(2e-3f).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(9), cfg, backend(), 4);
        List<SoraAdapter> ads = pm.adaptedLayers(DEFAULT).values().stream().map(l -> (SoraAdapter) l.adapter(DEFAULT)).toList();
        float[][] gatesBefore = ads.stream().map(a -> a.gate().value().toFloatArray()).toArray(float[][]::new);
        Trainer.Config tc = Trainer.Config.builder().maxSteps(60).batchSize(16).lr(2e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0.01f), tc, backend())) {
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        Map<String, Integer> ranks = SoraPruning.survivingRanks(pm, DEFAULT);
        int closed = ranks.values().stream().mapToInt(n -> 6 - n).sum();
        assertTrue(closed > 0, "the L1 term and the threshold close some gates: " + ranks);
        for (int k = 0; k < ads.size(); k++) {
            assertTrue(TestSupport.differs(gatesBefore[k], ads.get(k).gate().value().toFloatArray()), "gates move under their own optimizer");
        }

        float[] x = normal(rng("sora prune"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        Map<String, Integer> saved = SoraPruning.saveAsLora(pm, DEFAULT, dir, Map.of());
        assertEquals(ranks, saved);
        Map<String, Object> json = Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE));
        assertEquals("LORA", json.get("peft_type"));
        int rPruned = ranks.values().stream().mapToInt(Integer::intValue).max().orElseThrow();
        assertEquals(rPruned, ((Number) json.get("r")).intValue());
        PeftModel lora = PeftModel.load(TestSupport.mlp(9), dir);
        assertRelClose(y, forward(lora, x, 7), 2e-6, "the pruned LoRA gives SoRA's output");
        lora.adaptedLayers(DEFAULT).forEach((p, l) -> assertEquals((long) ranks.get(p), l.adapter(DEFAULT).parameters().get(0).value().dim(0), p));
    }

    /**
     * Pruning keeps each layer's own surviving ranks (rank_pattern) and SoRA's scale (alpha_pattern);
     * a layer whose gates all closed is left out. Gates and B are set by hand so each case occurs.
     */
    @Test
    void prunedLoraHasPerLayerRanksAndDropsClosedLayers(@TempDir Path dir) {
        SoraConfig cfg = SoraConfig.builder().r(5).alpha(7).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(11), cfg, backend(), 6);
        SplittableRandom r = rng("sora per-layer prune");
        Map<String, float[]> gates = Map.of("fc1", new float[] {0.7f, 0f, -1.2f, 0f, 0.3f}, "fc2", new float[5],
                "fc3", new float[] {0.4f, -0.9f, 1.1f, 0.6f, -0.2f});
        pm.adaptedLayers(DEFAULT).forEach((p, l) -> {
            SoraAdapter s = (SoraAdapter) l.adapter(DEFAULT);
            s.gate().value().copyFrom(gates.get(p));
            s.loraB().value().copyFrom(normal(r, (int) (l.outFeatures() * 5), 1));
        });
        float[] x = normal(rng("sora prune x"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        Map<String, Integer> saved = SoraPruning.saveAsLora(pm, DEFAULT, dir, Map.of());
        assertEquals(Map.of("fc1", 3, "fc2", 0, "fc3", 5), saved);
        Map<String, Object> json = Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE));
        assertEquals(List.of("fc1", "fc3"), json.get("target_modules"));
        assertEquals(Map.of("fc1", 3, "fc3", 5), json.get("rank_pattern"));
        Map<?, ?> alphas = (Map<?, ?>) json.get("alpha_pattern");
        assertEquals(7.0 / 5 * 3, ((Number) alphas.get("fc1")).doubleValue(), 1e-6, "alpha/r' = SoRA's alpha/r_max");
        assertEquals(7.0, ((Number) alphas.get("fc3")).doubleValue(), 1e-6);
        PeftModel lora = PeftModel.load(TestSupport.mlp(11), dir);
        assertEquals(List.of("fc1", "fc3"), List.copyOf(lora.adaptedLayers(DEFAULT).keySet()));
        assertEquals(3, lora.adaptedLayers(DEFAULT).get("fc1").adapter(DEFAULT).parameters().get(0).value().dim(0));
        assertEquals(5, lora.adaptedLayers(DEFAULT).get("fc3").adapter(DEFAULT).parameters().get(1).value().dim(1));
        assertRelClose(y, forward(lora, x, 7), 2e-6, "the pruned LoRA gives SoRA's output");
    }
}
