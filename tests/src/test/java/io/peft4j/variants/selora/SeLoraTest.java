package io.peft4j.variants.selora;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SeLoRA: every layer starts at init_r; a new rank leaves the output unchanged when it appears (both
 * scale modes); the trial re-run changes neither parameters nor their gradients; growth follows the
 * Fisher-ratio rule (λ = 0 always grows, a huge λ never does, r_max caps it); the optimizer state
 * follows each growth (reset or kept rows); ranks are recorded in metrics.jsonl; a grown adapter
 * saves its rank_pattern and reloads with the same outputs.
 */
class SeLoraTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;

    private static List<SeLoraAdapter> adapters(PeftModel pm) {
        return pm.adaptedLayers(DEFAULT).values().stream().map(l -> (SeLoraAdapter) l.adapter(DEFAULT)).toList();
    }

    @ParameterizedTest(name = "scale={0}")
    @ValueSource(strings = {"initial", "current"})
    void aNewRankLeavesTheOutputUnchanged(String scale) {
        SeLoraConfig cfg = SeLoraConfig.builder().initR(2).scale(scale).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(3), cfg, backend(), 4);
        TestSupport.randomizeAdapter(pm, DEFAULT, rng("selora grow " + scale), 0.4);
        float[] x = normal(rng("selora x"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        for (SeLoraAdapter a : adapters(pm)) {
            assertEquals(2, a.rank());
            a.grow(backend());
            assertEquals(3, a.rank());
            float[] col = a.loraB().value().toFloatArray();
            if (scale.equals("initial")) for (int o = 0; o < col.length / 3; o++) assertEquals(0f, col[o * 3 + 2], "new column of B is zero");
        }
        assertRelClose(y, forward(pm, x, 7), 1e-6, "output right after growth");
        assertEquals(Map.of("fc1", 3, "fc2", 3, "fc3", 3), cfg.rankPattern());
    }

    private static Trainer.Config steps(int n) {
        return Trainer.Config.builder().maxSteps(n).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
    }

    @Test
    void growthFollowsTheFisherRatioAndTheOptimizerStateFollowsTheRank() {
        // λ = 0: every test grows every layer; expand_step 2 over 7 steps: tests at 2, 4, 6 → rank 1 + 3.
        SeLoraConfig cfg = SeLoraConfig.builder().expandStep(2).expandThreshold(0f).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 4);
        AdamW opt = new AdamW(0.9f, 0.999f, 1e-8f, 0f);
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), opt, steps(7), backend())) {
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        for (var e : pm.adaptedLayers(DEFAULT).entrySet()) {
            SeLoraAdapter a = (SeLoraAdapter) e.getValue().adapter(DEFAULT);
            assertEquals(4, a.rank(), e.getKey());
            for (String n : List.of("A", "B")) {
                Tensor p = (n.equals("A") ? a.loraA() : a.loraB()).value();
                String key = e.getKey() + ".lora_" + n + ".default.weight";
                assertArrayEquals(p.shape(), opt.state().get(key + ".exp_avg").shape(), key + " state follows the rank");
                assertArrayEquals(p.shape(), opt.state().get(key + ".exp_avg_sq").shape(), key);
            }
        }
        // A huge λ never grows; r_max caps growth.
        SeLoraConfig never = SeLoraConfig.builder().expandStep(2).expandThreshold(1e30f).targetModules(TargetModules.allLinear()).build();
        PeftModel pm2 = PeftModel.wrap(TestSupport.mlp(5), never, backend(), 4);
        SeLoraConfig capped = SeLoraConfig.builder().expandStep(1).expandThreshold(0f).rMax(2).targetModules(TargetModules.allLinear()).build();
        PeftModel pm3 = PeftModel.wrap(TestSupport.mlp(5), capped, backend(), 4);
        for (PeftModel m : List.of(pm2, pm3)) {
            try (Trainer t = new Trainer(m, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), steps(6), backend())) {
                m.trainerCallbacks().forEach(t::addCallback);
                t.fit(TestSupport.blobs(64, 13, 5, 17), null);
            }
        }
        adapters(pm2).forEach(a -> assertEquals(1, a.rank(), "λ = 1e30: no growth"));
        adapters(pm3).forEach(a -> assertEquals(2, a.rank(), "r_max = 2"));
    }

    @Test
    void keepOptimizerStateKeepsTheOldRowsAndZeroesTheNew() {
        SeLoraConfig cfg = SeLoraConfig.builder().initR(2).expandStep(3).expandThreshold(0f).keepOptimizerState(true)
                .targetModules(TargetModules.names("fc2")).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 4);
        AdamW opt = new AdamW(0.9f, 0.999f, 1e-8f, 0f);
        float[][] before = new float[1][];
        Trainer.Config tc = steps(3);
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), opt, tc, backend())) {
            t.addCallback(new io.peft4j.train.TrainerCallback() {
                @Override
                public void afterOptimizerStep(Trainer.State s) {
                    if (s.step() == 3) before[0] = opt.state().get("fc2.lora_A.default.weight.exp_avg").toFloatArray();
                }
            });
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        float[] after = opt.state().get("fc2.lora_A.default.weight.exp_avg").toFloatArray();
        assertEquals(3 * 17, after.length);
        for (int i = 0; i < 2 * 17; i++) assertEquals(before[0][i], after[i], "kept row state [" + i + "]");
        for (int i = 2 * 17; i < 3 * 17; i++) assertEquals(0f, after[i], "the new row's state starts at zero");
    }

    @Test
    void theTrialRerunChangesNeitherParametersNorGradients() {
        SeLoraConfig cfg = SeLoraConfig.builder().expandStep(1).expandThreshold(1e30f).targetModules(TargetModules.allLinear()).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 4);
        float[][] grads = new float[3][];
        float[][] params = new float[3][];
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), steps(1), backend())) {
            t.addCallback(new io.peft4j.train.TrainerCallback() {
                @Override
                public void afterOptimizerStep(Trainer.State s) {
                    for (int i = 0; i < 3; i++) {
                        grads[i] = adapters(pm).get(i).loraB().grad().toFloatArray();
                        params[i] = adapters(pm).get(i).loraB().value().toFloatArray();
                    }
                }
            });
            pm.trainerCallbacks().forEach(t::addCallback);   // runs after the snapshot: the trial re-run
            t.addCallback(new io.peft4j.train.TrainerCallback() {
                @Override
                public void afterOptimizerStep(Trainer.State s) {
                    for (int i = 0; i < 3; i++) {
                        SeLoraAdapter a = adapters(pm).get(i);
                        assertBitEqual(grads[i], a.loraB().grad().toFloatArray(), "gradient after the trial");
                        assertBitEqual(params[i], a.loraB().value().toFloatArray(), "parameter after the trial");
                        assertTrue(a.trialScore() > 0, "the trial ran and scored the extra rank");
                    }
                }
            });
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
    }

    @Test
    void ranksAreLoggedAndAGrownAdapterReloadsWithTheSameOutputs(@TempDir Path dir) throws IOException {
        SeLoraConfig cfg = SeLoraConfig.builder().expandStep(2).expandThreshold(0f).targetModules(TargetModules.names("fc1", "fc3")).build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), cfg, backend(), 4);
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f),
                Trainer.Config.builder().maxSteps(4).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).outDir(dir.resolve("run")).build(),
                backend())) {
            pm.trainerCallbacks().forEach(t::addCallback);
            t.fit(TestSupport.blobs(64, 13, 5, 17), null);
        }
        List<String> metrics = Files.readAllLines(dir.resolve("run/metrics.jsonl"));
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"series\":\"rank fc1\"") && l.contains("\"value\":3")), String.join("\n", metrics));
        assertTrue(Files.size(dir.resolve("run/training.png")) > 0);
        float[] x = normal(rng("selora reload"), 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        pm.save(dir.resolve("adapter"));
        assertEquals(Map.of("fc1", 3, "fc3", 3), Cli.readJson(dir.resolve("adapter/adapter_config.json")).get("rank_pattern"));
        PeftModel reloaded = PeftModel.load(TestSupport.mlp(5), dir.resolve("adapter"));
        assertBitEqual(y, forward(reloaded, x, 7), "reloaded grown adapter");
        assertEquals(3, ((SeLoraAdapter) reloaded.adaptedLayers(DEFAULT).get("fc1").adapter(DEFAULT)).rank());
    }
}
