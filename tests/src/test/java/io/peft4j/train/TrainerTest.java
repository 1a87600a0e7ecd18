package io.peft4j.train;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.data.Dataset;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.lora.LoraConfig;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The training loop on a small synthetic classification task (4 Gaussian blobs in 12 dimensions). */
class TrainerTest {
    private static final Dataset DATA = blobs(240, 12, 4, 5);   // 8 batches of 32 per epoch (the last has 16)

    private static Mlp mlp(long seed) {
        return new Mlp(backend(), Mlp.Activation.RELU, seed, 12, 16, 4);
    }

    private static Trainer.Config.Builder config() {
        return Trainer.Config.builder().batchSize(32).lr(1e-2f).seed(1).evalEvery(0).progress(false);
    }

    private static AdamW adam() {
        return new AdamW(0.9f, 0.999f, 1e-8f, 0.01f);
    }

    private static Map<String, float[]> trainable(Module m) {
        Map<String, float[]> out = new LinkedHashMap<>();
        m.namedParameters().forEach((n, p) -> {
            if (p.requiresGrad()) out.put(n, p.value().toFloatArray());
        });
        return out;
    }

    @Test
    void lossDecreasesAndTheModelLearns() {
        Mlp model = mlp(2);
        Trainer.Result r;
        try (Trainer t = new Trainer(model, Loss.crossEntropy(), adam(), config().epochs(4).evalEvery(1).build(), backend())) {
            double before = t.evaluate(DATA).loss();
            r = t.fit(DATA, DATA);
            assertTrue(t.evaluate(DATA).loss() < 0.5 * before, "eval loss halves at least");
        }
        assertEquals(4, r.epochs().size());
        assertEquals(32, r.steps());
        double first = r.epochs().get(0).trainLoss(), last = r.last().trainLoss();
        assertTrue(last < 0.6 * first, "train loss " + first + " -> " + last);
        assertNotNull(r.last().eval());
        assertTrue(r.last().eval().accuracy() > 0.8, "accuracy " + r.last().eval().accuracy());
        assertEquals(240, r.last().eval().count());
        r.epochs().forEach(e -> assertEquals(8, e.steps()));
    }

    static Stream<Arguments> models() {
        LongFunction<Module> full = TrainerTest::mlp;
        LongFunction<Module> lora = seed -> PeftModel.wrap(mlp(seed),
                LoraConfig.builder().r(4).alpha(8).dropout(0.1f).targetModules(TargetModules.allLinear()).build(), backend(), 5);
        return Stream.of(Arguments.of("full fine-tuning", full), Arguments.of("LoRA with dropout", lora));
    }

    /** (name, model, k, checkpointEvery): mid-epoch, at an epoch's last step, and the default epoch-end checkpoint. */
    static Stream<Arguments> resumeCases() {
        return models().flatMap(m -> Stream.of(
                Arguments.of(m.get()[0] + ", step 11 (mid-epoch)", m.get()[1], 11L, 11L),
                Arguments.of(m.get()[0] + ", step 8 (last step of epoch 1)", m.get()[1], 8L, 8L),
                Arguments.of(m.get()[0] + ", epoch-end checkpoint", m.get()[1], 8L, 0L)));
    }

    /** Crashes the run in step {@code at + 1}, after the checkpoint of step {@code at} is on disk. */
    private static final class Crash extends RuntimeException {
        Crash() { super("simulated crash"); }
    }

    /**
     * N steps straight vs. a run that checkpoints at step k (mid-epoch), crashes, and is resumed by
     * a new trainer, model and optimizer: the losses after k and the final parameters are
     * bit-identical (same batches, same dropout masks, same optimizer state and schedule).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("resumeCases")
    void resumingFromACheckpointIsBitIdentical(String name, LongFunction<Module> factory, long k, long every, @TempDir Path dir) throws IOException {
        long n = 14;   // 8 steps per epoch: step 11 = epoch 2, 3 steps in
        Trainer.Config.Builder cfg = config().maxSteps(n).lr(5e-3f).schedule("linear").warmupSteps(3).clipNorm(1f).seed(11);

        Module straight = factory.apply(3);
        List<Float> lossesStraight = new ArrayList<>();
        try (Trainer t = new Trainer(straight, Loss.crossEntropy(), adam(), cfg.build(), backend())) {
            t.addCallback(new TrainerCallback() {
                @Override public void afterOptimizerStep(Trainer.State s) { lossesStraight.add(s.loss()); }
            });
            assertEquals(n, t.fit(DATA, null).steps());
        }
        assertEquals(n, lossesStraight.size());

        Path ck = dir.resolve("ck");
        Module crashed = factory.apply(3);
        List<Float> lossesCrashed = new ArrayList<>();
        try (Trainer t = new Trainer(crashed, Loss.crossEntropy(), adam(), cfg.outDir(ck).checkpointEvery(every).build(), backend())) {
            t.addCallback(new TrainerCallback() {
                @Override public void afterBackward(Trainer.State s) { if (s.step() == k) throw new Crash(); }
                @Override public void afterOptimizerStep(Trainer.State s) { lossesCrashed.add(s.loss()); }
            });
            assertThrows(Crash.class, () -> t.fit(DATA, null));
        }
        assertEquals(lossesStraight.subList(0, (int) k), lossesCrashed, name + ": same run up to the crash");
        try (SafetensorsFile f = SafetensorsFile.open(ck.resolve(Trainer.CHECKPOINT_FILE))) {
            assertEquals(Long.toString(k), f.metadata().get("step"));
            if (k == 11) {
                assertEquals("1", f.metadata().get("epoch"));
                assertEquals("3", f.metadata().get("step_in_epoch"));
            }
            for (String p : trainable(crashed).keySet()) {
                assertTrue(f.contains("param." + p), "checkpoint holds " + p);
                assertTrue(f.contains("optim." + p + ".exp_avg") && f.contains("optim." + p + ".exp_avg_sq"), "checkpoint holds Adam state of " + p);
            }
        }

        Module resumed = factory.apply(3);
        List<Float> lossesResumed = new ArrayList<>();
        try (Trainer t = new Trainer(resumed, Loss.crossEntropy(), adam(), cfg.outDir(null).checkpointEvery(0).build(), backend())) {
            t.resume(ck);
            assertEquals(k, t.state().step());
            t.addCallback(new TrainerCallback() {
                @Override public void afterOptimizerStep(Trainer.State s) { lossesResumed.add(s.loss()); }
            });
            assertEquals(n, t.fit(DATA, null).steps());
        }
        assertEquals(lossesStraight.subList((int) k, (int) n), lossesResumed, name + ": losses after the resume point");
        Map<String, float[]> a = trainable(straight), b = trainable(resumed);
        assertEquals(a.keySet(), b.keySet());
        a.forEach((p, v) -> assertBitEqual(v, b.get(p), name + ": final " + p));
    }

    @Test
    void resumeRefusesAnotherSeed(@TempDir Path dir) {
        Module m = mlp(1);
        try (Trainer t = new Trainer(m, Loss.crossEntropy(), adam(), config().maxSteps(2).seed(1).build(), backend())) {
            t.fit(DATA, null);
            t.saveCheckpoint(dir);
        }
        try (Trainer t = new Trainer(mlp(1), Loss.crossEntropy(), adam(), config().maxSteps(2).seed(2).build(), backend())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.resume(dir));
            assertTrue(e.getMessage().contains("seed"), e.getMessage());
        }
    }

    @Test
    void callbacksFireInOrderWithStepCounts() {
        List<String> events = new ArrayList<>();
        Module model = mlp(4);
        float lr = 2e-3f;
        try (Trainer t = new Trainer(model, Loss.crossEntropy(), adam(), config().batchSize(64).epochs(2).lr(lr).evalEvery(1).build(), backend())) {
            t.addCallback(new TrainerCallback() {
                @Override
                public void afterBackward(Trainer.State s) {
                    events.add("backward " + s.step());
                    double sq = 0;
                    for (Parameter p : s.trainable().values()) sq += s.backend().sumsq(p.grad());
                    assertTrue(sq > 0, "gradients are there after backward");
                    assertTrue(Float.isFinite(s.loss()));
                    assertEquals(lr, s.lr());
                }

                @Override
                public void afterOptimizerStep(Trainer.State s) {
                    events.add("step " + s.step());
                }

                @Override
                public void endOfEpoch(Trainer.State s, Trainer.EpochResult r) {
                    events.add("epoch " + r.epoch() + " (state " + s.epoch() + ", " + r.steps() + " steps, at " + s.step() + ")");
                    assertNotNull(r.eval(), "evaluated every epoch");
                    assertTrue(r.eval().accuracy() >= 0 && r.eval().accuracy() <= 1);
                    assertTrue(Double.isFinite(r.trainLoss()));
                }
            });
            t.fit(DATA, DATA);
        }
        List<String> expected = new ArrayList<>();
        for (int e = 0; e < 2; e++) {
            for (int i = 0; i < 4; i++) {   // 240 / 64: 64, 64, 64, 48
                int s = e * 4 + i;
                expected.add("backward " + s);
                expected.add("step " + (s + 1));
            }
            expected.add("epoch " + (e + 1) + " (state " + e + ", 4 steps, at " + (e + 1) * 4 + ")");
        }
        assertEquals(expected, events);
    }

    @Test
    void gradientClippingBoundsTheGlobalNorm() {
        float max = 0.05f;
        List<Double> before = new ArrayList<>(), after = new ArrayList<>();
        Map<String, float[]> raw = new LinkedHashMap<>();
        try (Trainer t = new Trainer(mlp(6), Loss.crossEntropy(), adam(), config().maxSteps(4).clipNorm(max).build(), backend())) {
            t.addCallback(new TrainerCallback() {
                @Override
                public void afterBackward(Trainer.State s) {
                    before.add(norm(s));
                    s.trainable().forEach((n, p) -> raw.put(n, p.grad().toFloatArray()));
                }

                @Override
                public void afterOptimizerStep(Trainer.State s) {
                    double nrm = norm(s);
                    after.add(nrm);
                    double f = nrm / before.get(before.size() - 1);
                    s.trainable().forEach((n, p) -> {
                        float[] g = p.grad().toFloatArray(), g0 = raw.get(n);
                        for (int i = 0; i < g.length; i++) assertEquals(g0[i] * f, g[i], 1e-6 * Math.abs(g0[i] * f) + 1e-12, n + ": clipping scales, keeps direction");
                    });
                }
            });
            t.fit(DATA, null);
        }
        assertEquals(4, after.size());
        for (int i = 0; i < 4; i++) {
            assertTrue(before.get(i) > max, "the test clips: norm " + before.get(i));
            assertTrue(after.get(i) <= max * (1 + 1e-6), "norm after clipping " + after.get(i));
            assertEquals(max, after.get(i), 1e-5 * max, "clipped to the bound");
        }
    }

    private static double norm(Trainer.State s) {
        double sq = 0;
        for (Parameter p : s.trainable().values()) {
            for (float v : p.grad().toFloatArray()) sq += (double) v * v;
        }
        return Math.sqrt(sq);
    }

    @Test
    void clipGradientsLeavesSmallGradientsAlone() {
        try (Trainer t = new Trainer(mlp(6), Loss.crossEntropy(), adam(), config().maxSteps(1).build(), backend())) {
            t.fit(DATA, null);
            Map<String, float[]> g0 = new LinkedHashMap<>();
            t.state().trainable().forEach((n, p) -> g0.put(n, p.grad().toFloatArray()));
            double sq = 0;
            for (float[] g : g0.values()) for (float v : g) sq += (double) v * v;
            double norm = t.clipGradients(1e6f);
            assertEquals(Math.sqrt(sq), norm, 1e-5 * norm);
            t.state().trainable().forEach((n, p) -> assertBitEqual(g0.get(n), p.grad().toFloatArray(), n + " unchanged"));
        }
    }

    @Test
    void metricsAndChartAreWrittenToTheOutputDirectory(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("run");
        try (Trainer t = new Trainer(mlp(7), Loss.crossEntropy(), adam(), config().epochs(2).evalEvery(1).outDir(out).build(), backend())) {
            t.fit(DATA, DATA);
        }
        Path metrics = out.resolve("metrics.jsonl");
        assertTrue(Files.isRegularFile(metrics));
        ObjectMapper json = new ObjectMapper();
        int stepLines = 0, epochLines = 0;
        for (String line : Files.readAllLines(metrics)) {
            @SuppressWarnings("unchecked")
            Map<String, Object> rec = json.readValue(line, Map.class);
            if (rec.containsKey("train_loss")) {
                epochLines++;
                assertEquals(epochLines, ((Number) rec.get("epoch")).intValue());
                assertTrue(rec.containsKey("eval_accuracy") && rec.containsKey("eval_loss") && rec.containsKey("ms_per_step"), line);
            } else {
                stepLines++;
                assertTrue(rec.containsKey("step") && rec.containsKey("loss") && rec.containsKey("lr"), line);
            }
        }
        assertEquals(2, epochLines);
        assertTrue(stepLines >= 2, "a step record at least at each epoch's end");
        BufferedImage png = ImageIO.read(out.resolve("training.png").toFile());
        assertNotNull(png, "training.png is a PNG");
        assertEquals(Charts.DEFAULT_WIDTH, png.getWidth());
        assertEquals(Charts.DEFAULT_HEIGHT, png.getHeight());
        assertTrue(Files.isRegularFile(out.resolve(Trainer.CHECKPOINT_FILE)), "a checkpoint at the epoch end");
    }

    /** A model with two parameters that the loss does not reach: only weight decay moves them. */
    private static final class WithUnusedParameters extends Module {
        final Mlp net;
        final Parameter decayed, notDecayed;

        WithUnusedParameters(long seed) {
            net = addChild("net", mlp(seed));
            decayed = addParameter(new Parameter("scale", Tensor.of(new float[] {0.5f, -2f, 3f}, 3), true, true));
            notDecayed = addParameter(new Parameter("shift", Tensor.of(new float[] {0.5f, -2f, 3f}, 3), true, false));
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            return net.forward(ctx, x);
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            return net.backward(ctx, g, needInputGrad);
        }
    }

    @Test
    void weightDecaySkipsBiasesAndOtherNonDecayedParameters() {
        WithUnusedParameters m = new WithUnusedParameters(8);
        float lr = 0.01f, wd = 0.1f;
        int steps = 5;
        try (Trainer t = new Trainer(m, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, wd), config().maxSteps(steps).lr(lr).build(), backend())) {
            t.fit(DATA, null);
        }
        assertBitEqual(new float[] {0.5f, -2f, 3f}, m.notDecayed.value().toFloatArray(), "zero gradient, no decay: unchanged");
        float[] got = m.decayed.value().toFloatArray();
        float[] init = {0.5f, -2f, 3f};
        double factor = Math.pow(1 - (double) lr * wd, steps);
        for (int i = 0; i < 3; i++) assertEquals(init[i] * factor, got[i], 1e-6 * Math.abs(init[i]), "decayed entry " + i);
        m.net.namedParameters().forEach((n, p) -> assertEquals(n.endsWith(".weight"), p.decay(), n + ": decay only on weights"));
    }

    @Test
    void aModelWithoutTrainableParametersIsRefused() {
        Mlp m = mlp(1);
        m.namedParameters().values().forEach(p -> p.setRequiresGrad(false));
        try (Trainer t = new Trainer(m, Loss.crossEntropy(), adam(), config().maxSteps(1).build(), backend())) {
            assertThrowsNaming(IllegalStateException.class, () -> t.fit(DATA, null), "the model has no trainable parameters");
        }
    }

    @Test
    void configIsValidated() {
        assertThrowsNaming(IllegalArgumentException.class, () -> config().epochs(0).maxSteps(0).build(), "epochs=0, maxSteps=0");
        assertThrowsNaming(IllegalArgumentException.class, () -> config().batchSize(0).build(), "batchSize must be > 0, got batchSize=0");
        assertThrowsNaming(IllegalArgumentException.class, () -> config().lr(0).build(), "lr must be a finite number > 0, got lr=0.0");
        assertThrowsNaming(IllegalArgumentException.class, () -> config().clipNorm(-1).build(), "clipNorm=-1.0");
        assertThrowsNaming(IllegalArgumentException.class, () -> config().schedule("step").build(), "unknown schedule 'step'");
    }

    @Test
    void evaluateCountsCorrectPredictions() {
        // A 2-feature, 2-class model whose logits are the features: the label with the larger feature wins.
        Mlp m = new Mlp(backend(), Mlp.Activation.RELU, 1, 2, 2);
        m.namedParameters().get("fc1.weight").value().copyFrom(new float[] {1, 0, 0, 1});
        m.namedParameters().get("fc1.bias").value().copyFrom(new float[] {0, 0});
        float[] x = {1, 0, 0, 1, 2, 1, 1, 2, 3, 0};
        int[] y = {0, 1, 1, 1, 1};   // right, right, wrong, right, wrong
        try (StepContext ctx = new StepContext(backend())) {
            Trainer.EvalResult r = Trainer.evaluate(m, new Dataset(x, y, 5, 2, 2), ctx, 2);
            assertEquals(0.6, r.accuracy(), 1e-12);
            assertEquals(5, r.count());
            double loss = 0;
            for (int i = 0; i < 5; i++) {
                double a = x[2 * i], b = x[2 * i + 1], lse = Math.log(Math.exp(a) + Math.exp(b));
                loss += lse - (y[i] == 0 ? a : b);
            }
            assertEquals(loss / 5, r.loss(), 1e-6);
        }
        assertEquals(DType.F32, m.namedParameters().get("fc1.weight").value().dtype());
    }
}
