package io.peft4j.variants.vera;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraAdapter;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.tiedlora.ScaledLowRankAdapter;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** VeRA beyond the contract rows: its shared pair, its Philox projections, its files, its LoRA equivalence, its defaults. */
class VeraTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;

    private static VeraConfig config(int r) {
        return VeraConfig.builder().r(r).targetModules("fc1", "fc2", "fc3").build();
    }

    private static ScaledLowRankAdapter vera(PeftModel pm, String layer) {
        return (ScaledLowRankAdapter) pm.adaptedLayers(DEFAULT).get(layer).adapter(DEFAULT);
    }

    @Test
    void theSharedPairExistsOncePerModelAtTheLargestShapes() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), config(5), backend(), 0);   // fc1 13→17, fc2 17→11, fc3 11→5
        Parameter a = vera(pm, "fc1").a(), b = vera(pm, "fc1").b();
        for (String l : new String[] {"fc2", "fc3"}) {
            assertSame(a, vera(pm, l).a(), l + " uses the model's one vera_A");
            assertSame(b, vera(pm, l).b(), l + " uses the model's one vera_B");
        }
        assertEquals(java.util.List.of(5L, 17L), java.util.Arrays.stream(a.value().shape()).boxed().toList(), "vera_A [r, max d_in]");
        assertEquals(java.util.List.of(17L, 5L), java.util.Arrays.stream(b.value().shape()).boxed().toList(), "vera_B [max d_out, r]");
        assertEquals(Map.of("base_model.vera_A", a, "base_model.vera_B", b), pm.sharedParameters(DEFAULT));
        assertFalse(a.requiresGrad() || b.requiresGrad(), "the projections are frozen");
        // Trained: per layer d_out + r, nothing shared.
        assertEquals((17 + 5) + (11 + 5) + (5 + 5), pm.trainableParameterCount());
        pm.close();
    }

    @Test
    void projectionsAreKaimingUniformDrawsFromPhiloxWithTheKey() {
        long key = 12345;
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), VeraConfig.builder().r(7).projectionPrngKey(key).targetModules("fc1", "fc2").build(),
                backend(), 99);
        Parameter a = vera(pm, "fc1").a(), b = vera(pm, "fc1").b();   // A [7, 17], B [17, 7]
        try (Tensor wantA = Tensor.zeros(DType.F32, 7, 17); Tensor wantB = Tensor.zeros(DType.F32, 17, 7)) {
            backend().rngKaimingUniform(key, 0, 17, 0f, wantA);
            backend().rngKaimingUniform(key, 7 * 17 + 1, 7, 0f, wantB);   // after A's 119 draws, rounded up to 4
            assertBitEqual(wantA.toFloatArray(), a.value().toFloatArray(), "vera_A = kaiming-uniform(a=0) under the key");
            assertBitEqual(wantB.toFloatArray(), b.value().toFloatArray(), "vera_B = kaiming-uniform(a=0) under the key, after A");
        }
        double boundA = Math.sqrt(6.0 / 17), boundB = Math.sqrt(6.0 / 7);
        for (float v : a.value().toFloatArray()) assertTrue(Math.abs(v) <= boundA && v != 0f, "A within ±√(6/max d_in): " + v);
        for (float v : b.value().toFloatArray()) assertTrue(Math.abs(v) <= boundB && v != 0f, "B within ±√(6/r): " + v);
        // The layer seed does not matter, the key does.
        PeftModel same = PeftModel.wrap(TestSupport.mlp(1), VeraConfig.builder().r(7).projectionPrngKey(key).targetModules("fc1", "fc2").build(),
                backend(), 5);
        assertBitEqual(a.value().toFloatArray(), vera(same, "fc2").a().value().toFloatArray(), "same key, same vera_A");
        PeftModel other = PeftModel.wrap(TestSupport.mlp(1), VeraConfig.builder().r(7).projectionPrngKey(key + 1).targetModules("fc1", "fc2").build(),
                backend(), 99);
        assertTrue(TestSupport.differs(a.value().toFloatArray(), vera(other, "fc1").a().value().toFloatArray()), "another key, another vera_A");
        // lambda_b = 0 (ΔW = 0 at the start), lambda_d = d_initial.
        for (float v : vera(pm, "fc2").v().value().toFloatArray()) assertEquals(0f, v);
        for (float v : vera(pm, "fc2").u().value().toFloatArray()) assertEquals(0.1f, v);
        for (PeftModel m : new PeftModel[] {pm, same, other}) m.close();
    }

    @Test
    void aFileSavedWithoutProjectionsReloadsBitIdenticallyFromTheKey(@TempDir Path dir) throws Exception {
        SplittableRandom r = rng("vera no projection");
        VeraConfig cfg = VeraConfig.builder().r(6).projectionPrngKey(77).saveProjection(false).targetModules("fc1", "fc2", "fc3").build();
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(3), cfg, backend(), 0);
        TestSupport.randomizeAdapter(pm, DEFAULT, r, 0.5);
        float[] x = normal(r, 7 * 13, 1.0);
        float[] y = forward(pm, x, 7);
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(new TreeSet<>(java.util.List.of("base_model.model.fc1.vera_lambda_b", "base_model.model.fc1.vera_lambda_d",
                    "base_model.model.fc2.vera_lambda_b", "base_model.model.fc2.vera_lambda_d", "base_model.model.fc3.vera_lambda_b",
                    "base_model.model.fc3.vera_lambda_d")), new TreeSet<>(f.names()), "no vera_A / vera_B in the file");
        }
        PeftModel loaded = PeftModel.load(TestSupport.mlp(3), dir);
        assertBitEqual(vera(pm, "fc1").a().value().toFloatArray(), vera(loaded, "fc1").a().value().toFloatArray(), "vera_A rebuilt");
        assertBitEqual(vera(pm, "fc1").b().value().toFloatArray(), vera(loaded, "fc1").b().value().toFloatArray(), "vera_B rebuilt");
        assertBitEqual(y, forward(loaded, x, 7), "the reloaded model's output");

        // With save_projection (PEFT's default) the pair is stored once, under PEFT's keys.
        Path withPair = dir.resolve("with");
        PeftModel saved = PeftModel.wrap(TestSupport.mlp(3), config(6), backend(), 0);
        saved.save(withPair);
        try (SafetensorsFile f = SafetensorsFile.open(withPair.resolve(PeftModel.WEIGHTS_FILE))) {
            assertTrue(f.contains("base_model.vera_A") && f.contains("base_model.vera_B"), f.names().toString());
            assertEquals(8, f.names().size(), "six lambdas and the pair once: " + f.names());
        }
        for (PeftModel m : new PeftModel[] {pm, loaded, saved}) m.close();
    }

    /** A file that holds vera_A / vera_B is read even when its config says save_projection false (the key's draws are not used). */
    @Test
    void projectionsInTheFileWinOverTheKey(@TempDir Path dir) throws Exception {
        SplittableRandom r = rng("vera projections from file");
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(3), config(4), backend(), 0);
        TestSupport.randomizeAdapter(pm, DEFAULT, r, 0.5);   // the pair no longer equals the key's draws
        float[] x = normal(r, 3 * 13, 1.0);
        float[] y = forward(pm, x, 3);
        pm.save(dir);
        Map<String, Object> json = new java.util.HashMap<>(io.peft4j.cli.Cli.readJson(dir.resolve(PeftModel.CONFIG_FILE)));
        json.put("save_projection", false);
        java.nio.file.Files.writeString(dir.resolve(PeftModel.CONFIG_FILE), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(json));
        try (PeftModel loaded = PeftModel.load(TestSupport.mlp(3), dir)) {
            assertBitEqual(vera(pm, "fc1").a().value().toFloatArray(), vera(loaded, "fc1").a().value().toFloatArray(), "vera_A from the file");
            assertBitEqual(y, forward(loaded, x, 3), "output with the file's projections");
        }
        pm.close();
    }

    @Test
    void veraEqualsLoraWithTheCorrespondingDiagonalScalings() {
        SplittableRandom r = rng("vera = lora");
        int rank = 5;
        PeftModel vp = PeftModel.wrap(TestSupport.mlp(4), config(rank), backend(), 0);
        TestSupport.randomizeAdapter(vp, DEFAULT, r, 0.5);
        PeftModel lp = PeftModel.wrap(TestSupport.mlp(4), LoraConfig.builder().r(rank).alpha(rank).targetModules("fc1", "fc2", "fc3").build(),
                backend(), 0);
        vp.adaptedLayers(DEFAULT).forEach((path, l) -> {
            ScaledLowRankAdapter v = (ScaledLowRankAdapter) l.adapter(DEFAULT);
            LoraAdapter lora = (LoraAdapter) lp.adaptedLayers(DEFAULT).get(path).adapter(DEFAULT);
            int in = (int) l.inFeatures(), out = (int) l.outFeatures(), lda = (int) v.a().value().dim(1);
            float[] a = v.a().value().toFloatArray(), b = v.b().value().toFloatArray();
            float[] d = v.u().value().toFloatArray(), lb = v.v().value().toFloatArray();
            float[] la = new float[rank * in], lbm = new float[out * rank];
            for (int k = 0; k < rank; k++) for (int i = 0; i < in; i++) la[k * in + i] = d[k] * a[k * lda + i];   // diag(λ_d)·A_s
            for (int j = 0; j < out; j++) for (int k = 0; k < rank; k++) lbm[j * rank + k] = lb[j] * b[j * rank + k];   // diag(λ_b)·B_s
            lora.loraA().value().copyFrom(la);
            lora.loraB().value().copyFrom(lbm);
            try (Tensor dv = v.deltaWeight(backend()); Tensor dl = lora.deltaWeight(backend())) {
                assertRelClose(dl.toFloatArray(), dv.toFloatArray(), 1e-6, path + ": ΔW of VeRA vs LoRA(diag(λ_b)·B_s, diag(λ_d)·A_s)");
            }
        });
        float[] x = normal(r, 9 * 13, 1.0);
        assertRelClose(forward(lp, x, 9), forward(vp, x, 9), 1e-5, "VeRA's output vs LoRA's with the diagonal scalings folded in");
        vp.close();
        lp.close();
    }

    @Test
    void aSecondAdapterBeyondTheSharedPairIsRefusedAsInPeft() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), VeraConfig.builder().r(4).targetModules("fc2", "fc3").build(), backend(), 0);
        IllegalArgumentException rank = assertThrows(IllegalArgumentException.class,
                () -> pm.addAdapter("big", VeraConfig.builder().r(5).targetModules("fc2", "fc3").build(), 0));
        assertTrue(rank.getMessage().contains("larger rank") && rank.getMessage().contains("r 5"), rank.getMessage());
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> pm.addAdapter("wide", VeraConfig.builder().r(4).targetModules("fc1", "fc2").build(), 0));
        assertTrue(shape.getMessage().contains("vera_B [11, 4]") && shape.getMessage().contains("layers up to 17 -> 17"), shape.getMessage());
        IllegalArgumentException key = assertThrows(IllegalArgumentException.class,
                () -> pm.addAdapter("key", VeraConfig.builder().r(4).projectionPrngKey(1).targetModules("fc2", "fc3").build(), 0));
        assertTrue(key.getMessage().contains("projection_prng_key"), key.getMessage());
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertEquals(java.util.Set.of(DEFAULT), l.adapters().keySet(), "nothing half-added");
        pm.addAdapter("small", VeraConfig.builder().r(3).targetModules("fc3").build(), 0);
        assertEquals(java.util.Set.of(DEFAULT, "small"), pm.adapterConfigs().keySet());
        pm.close();
    }

    @Test
    void defaultsAreVerasAndTheSuggestedLearningRateIsTenTimesLoras() {
        var m = AdapterMethods.forType("VERA");
        assertEquals("vera", m.name());
        assertEquals(1e-2f, m.suggestedLearningRate());
        Map<String, Object> defaults = new java.util.HashMap<>();
        for (ConfigField f : m.fields()) defaults.put(f.name(), f.defaultValue());
        assertEquals(256L, defaults.get("r"));
        assertEquals(0.1, defaults.get("d_initial"));
        assertEquals(true, defaults.get("save_projection"));
        assertEquals(0L, defaults.get("projection_prng_key"));
        VeraConfig c = (VeraConfig) m.configFromJson(Map.of("peft_type", "VERA", "target_modules", java.util.List.of("fc1")));
        assertEquals(256, c.r());
        assertEquals(0.1f, c.dInitial());
        assertTrue(c.saveProjection());
        assertEquals(256, VeraConfig.builder().targetModules("fc1").build().r());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> m.configFromJson(Map.of("peft_type", "VERA", "target_modules", java.util.List.of("fc1"), "fan_in_fan_out", true)));
        assertTrue(e.getMessage().contains("fan_in_fan_out"), e.getMessage());
    }

    /** On the demo MLP 784-512-512-10 at the default r = 256: Σ (d_out + r). */
    @Test
    void trainableParametersOnTheDemoMlp() {
        Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 0, 784, 512, 512, 10);
        try (PeftModel pm = PeftModel.wrap(mlp, VeraConfig.builder().targetModules(TargetModules.names("fc1", "fc2", "fc3")).build(), backend(), 0)) {
            assertEquals((512 + 256) + (512 + 256) + (10 + 256), pm.trainableParameterCount());
            assertTrue(pm.trainableParametersReport().startsWith("trainable params: 1,802 || "), pm.trainableParametersReport());
        }
    }
}
