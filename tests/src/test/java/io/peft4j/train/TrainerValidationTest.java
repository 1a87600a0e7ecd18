package io.peft4j.train;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.Dataset;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Parameter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every bad Trainer or optimizer setting is refused when it is given, before any file is written. */
class TrainerValidationTest {
    private static final Dataset DATA = blobs(61, 6, 3, 21);

    private static Trainer.Config.Builder config() {
        return Trainer.Config.builder().batchSize(16).lr(1e-2f).seed(2).evalEvery(0).progress(false);
    }

    private static void assertMessage(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
    }

    private static List<String> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void badConfigValuesAreRefusedAtBuildWithTheirName(@TempDir Path dir) throws IOException {
        Map<String, UnaryOperator<Trainer.Config.Builder>> bad = new java.util.LinkedHashMap<>();
        bad.put("lr must be a finite number > 0, got lr=Infinity", b -> b.lr(Float.POSITIVE_INFINITY));
        bad.put("lr must be a finite number > 0, got lr=NaN", b -> b.lr(Float.NaN));
        bad.put("lr must be a finite number > 0, got lr=-0.1", b -> b.lr(-0.1f));
        bad.put("lr must be a finite number > 0, got lr=0.0", b -> b.lr(0f));
        bad.put("clipNorm must be a finite number >= 0 (0 = no clipping), got clipNorm=NaN", b -> b.clipNorm(Float.NaN));
        bad.put("clipNorm must be a finite number >= 0 (0 = no clipping), got clipNorm=Infinity", b -> b.clipNorm(Float.POSITIVE_INFINITY));
        bad.put("clipNorm must be a finite number >= 0 (0 = no clipping), got clipNorm=-1.0", b -> b.clipNorm(-1f));
        bad.put("batchSize must be > 0, got batchSize=0", b -> b.batchSize(0));
        bad.put("batchSize must be > 0, got batchSize=-5", b -> b.batchSize(-5));
        bad.put("epochs=0, maxSteps=0", b -> b.epochs(0));
        bad.put("epochs=-1", b -> b.epochs(-1));
        bad.put("maxSteps=-3", b -> b.maxSteps(-3));
        bad.put("warmupSteps must be >= 0, got warmupSteps=-2", b -> b.warmupSteps(-2));
        bad.put("evalEvery must be >= 0 (0 = never), got evalEvery=-1", b -> b.evalEvery(-1));
        bad.put("checkpointEvery must be >= 0 (0 = every epoch), got checkpointEvery=-7", b -> b.checkpointEvery(-7));
        bad.put("got null", b -> b.schedule(null));
        bad.put("cosyne", b -> b.schedule("cosyne"));
        bad.forEach((expected, change) -> {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> change.apply(config().outDir(dir.resolve("run"))).build(), expected);
            assertMessage(e, expected);
        });
        assertEquals(List.of(), listing(dir), "nothing is written for a refused config");
    }

    @Test
    void aModelWithNothingToTrainFailsBeforeTheMetricsFileExists(@TempDir Path dir) throws IOException {
        Trainer.Config cfg = config().outDir(dir).build();
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 8, 3);
             Trainer t = new Trainer(mlp, Loss.crossEntropy(), AdamW.defaults(), cfg, backend())) {
            mlp.namedParameters().values().forEach(p -> p.setRequiresGrad(false));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> t.fit(DATA, null));
            assertMessage(e, "no trainable parameters");
        }
        assertEquals(List.of(), listing(dir));
    }

    @Test
    void anEmptyOrMismatchedDataSetIsRefusedBeforeTheMetricsFileExists(@TempDir Path dir) throws IOException {
        Dataset empty = new Dataset(new float[0], new int[0], 0, 6, 3);
        Trainer.Config cfg = config().outDir(dir).build();
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 8, 3);
             Trainer t = new Trainer(mlp, Loss.crossEntropy(), AdamW.defaults(), cfg, backend())) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.fit(empty, null)), "training data set is empty");
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.fit(DATA, blobs(9, 5, 3, 1))),
                    "evaluation data has 5 features", "training data 6");
        }
        assertEquals(List.of(), listing(dir));
    }

    @Test
    void moreEpochsThanAnIntCanCountAreRefused() {
        Trainer.Config cfg = config().batchSize(Integer.MAX_VALUE).maxSteps(Long.MAX_VALUE).build();
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 8, 3);
             Trainer t = new Trainer(mlp, Loss.crossEntropy(), AdamW.defaults(), cfg, backend())) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.fit(DATA, null)),
                    "maxSteps " + Long.MAX_VALUE, "epochs of 1 steps");
        }
    }

    @Test
    void evaluationRefusesANonPositiveBatch() {
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 8, 3);
             io.peft4j.nn.StepContext ctx = new io.peft4j.nn.StepContext(backend())) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> Trainer.evaluate(mlp, DATA, ctx, 0)),
                    "evaluation batchSize must be > 0, got batchSize=0");
        }
    }

    @Test
    void optimizerSettingsMustBeFinite() {
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, Float.POSITIVE_INFINITY, 0f)),
                "AdamW eps must be a finite number > 0, got eps=Infinity");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, 0f, 0f)),
                "AdamW eps must be a finite number > 0, got eps=0.0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, 1e-8f, Float.POSITIVE_INFINITY)),
                "AdamW weightDecay must be a finite number >= 0, got weightDecay=Infinity");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, 1e-8f, Float.NaN)),
                "AdamW weightDecay must be a finite number >= 0, got weightDecay=NaN");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new AdamW(Float.NaN, 0.999f, 1e-8f, 0f)),
                "AdamW betas must be in [0, 1), got NaN");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Sgd(Float.POSITIVE_INFINITY, 0f, false)),
                "SGD momentum must be a finite number >= 0, got momentum=Infinity");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Sgd(Float.NaN, 0f, false)),
                "SGD momentum must be a finite number >= 0, got momentum=NaN");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Sgd(0.9f, Float.POSITIVE_INFINITY, false)),
                "SGD weightDecay must be a finite number >= 0, got weightDecay=Infinity");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Sgd(0.9f, -1f, false)),
                "SGD weightDecay must be a finite number >= 0, got weightDecay=-1.0");
    }

    @Test
    void anOptimizerStepRefusesANonFiniteLearningRateBeforeTouchingTheWeights() {
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 5, 6, 8, 3)) {
            Map<String, Parameter> params = mlp.namedParameters();
            float[] before = params.get("fc1.weight").value().toFloatArray();
            for (Optimizer opt : List.of(AdamW.defaults(), new Sgd(0.9f, 0f, false), new Sgd(0f, 0f, false))) {
                for (float lr : new float[] {Float.NaN, Float.POSITIVE_INFINITY, -1e-3f}) {
                    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.step(backend(), params, lr));
                    assertMessage(e, "learning rate must be a finite number >= 0, got " + lr);
                    assertEquals(0, opt.steps(), "a refused step is not counted");
                }
                opt.close();
            }
            io.peft4j.variants.TestSupport.assertBitEqual(before, params.get("fc1.weight").value().toFloatArray(), "fc1.weight");
        }
    }

    @Test
    void anOptimizerStepRefusesFrozenParametersAndMisfitState() {
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 5, 6, 8, 3)) {
            Map<String, Parameter> params = mlp.namedParameters();
            params.get("fc2.bias").setRequiresGrad(false);
            float[] before = params.get("fc1.weight").value().toFloatArray();
            for (Optimizer opt : List.of(AdamW.defaults(), new Sgd(0.9f, 0f, false))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.step(backend(), params, 1e-2f));
                assertMessage(e, "parameter 'fc2.bias' is frozen: it has no gradient to step with");
                opt.close();
            }
            io.peft4j.variants.TestSupport.assertBitEqual(before, params.get("fc1.weight").value().toFloatArray(), "fc1.weight");
            params.get("fc2.bias").setRequiresGrad(true);
            Map<String, Parameter> one = Map.of("fc1.weight", params.get("fc1.weight"));
            AdamW adam = AdamW.defaults();
            adam.loadState(Map.of("fc1.weight.exp_avg", new float[5], "fc1.weight.exp_avg_sq", new float[5]), 3);
            assertMessage(assertThrows(IllegalArgumentException.class, () -> adam.step(backend(), one, 1e-2f)),
                    "AdamW state 'fc1.weight.exp_avg' has 5 values, the parameter is F32[8, 6]");
            Sgd sgd = new Sgd(0.9f, 0f, false);
            sgd.loadState(Map.of("fc1.weight.momentum_buffer", new float[47]), 3);
            assertMessage(assertThrows(IllegalArgumentException.class, () -> sgd.step(backend(), one, 1e-2f)),
                    "SGD state 'fc1.weight.momentum_buffer' has 47 values, the parameter is F32[8, 6]");
        }
    }
}
