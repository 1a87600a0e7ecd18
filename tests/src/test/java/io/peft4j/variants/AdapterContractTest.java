package io.peft4j.variants;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.abs;
import static io.peft4j.variants.TestSupport.adapterValues;
import static io.peft4j.variants.TestSupport.add;
import static io.peft4j.variants.TestSupport.addRows;
import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.baseParameters;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.bounds;
import static io.peft4j.variants.TestSupport.differs;
import static io.peft4j.variants.TestSupport.dot;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.linears;
import static io.peft4j.variants.TestSupport.maxAbs;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.snapshot;
import static io.peft4j.variants.TestSupport.toDouble;
import static io.peft4j.variants.TestSupport.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.data.Dataset;
import io.peft4j.io.SafetensorsEntry;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.adalora.AdaLoraConfig;
import io.peft4j.variants.adalora.AdaLoraReference;
import io.peft4j.variants.dylora.DyLoraConfig;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.lora.LoraReference;
import io.peft4j.variants.tiedlora.ScaledLowRankReference;
import io.peft4j.variants.tiedlora.TiedLoraConfig;
import io.peft4j.variants.vera.VeraConfig;
import io.peft4j.variants.vera.VeraReference;
import io.peft4j.variants.selora.SeLoraConfig;
import io.peft4j.variants.sora.SoraConfig;
import io.peft4j.variants.sora.SoraReference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.LongFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The contract every adapter method meets, run once per row of {@link #variants()}: merge and
 * unmerge, training touches only adapter parameters, PEFT-layout save/load, disabling, gradients
 * against a float64 reference and its finite differences, ΔW, parameter counts, target matching,
 * several named adapters, and load errors. A new method joins by adding rows.
 */
class AdapterContractTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;
    private static final int T = 7;              // rows of the model-level checks
    private static final int IN = 13;            // input features of every row's model
    private static final long SEED = 42;
    private static final ObjectMapper JSON = new ObjectMapper();

    // ---- the table ----

    static Stream<VariantCase> variants() {
        return Stream.of(Stream.of(
                lora("LoRA kaiming r=8 alpha=16, Mlp 13-17-11-5, all-linear", 8, 16, false, 0f, "kaiming",
                        TestSupport::mlp, TargetModules.allLinear()),
                lora("LoRA gaussian r=8 alpha=16, Mlp, [fc1, fc3]", 8, 16, false, 0f, "gaussian",
                        TestSupport::mlp, TargetModules.names("fc1", "fc3")),
                lora("LoRA rsLoRA r=8 alpha=16, nested, [q, o]", 8, 16, true, 0f, "kaiming",
                        TestSupport::nested, TargetModules.names("q", "o")),
                lora("LoRA dropout=0.1 r=8 alpha=16, Mlp, all-linear", 8, 16, false, 0.1f, "kaiming",
                        TestSupport::mlp, TargetModules.allLinear()),
                lora("LoRA r=3 alpha=5 (odd), nested, regex", 3, 5, false, 0f, "kaiming",
                        TestSupport::nested, TargetModules.regex("embed|layers\\.\\d+\\.(q|o)")),
                vera("VeRA r=5 d_initial=0.1, Mlp 13-17-11-5 (sliced A, B), all-linear", 5, true, 0f, TestSupport::mlp,
                        TargetModules.allLinear()),
                vera("VeRA r=3 save_projection=false, nested, [q, o]", 3, false, 0f, TestSupport::nested, TargetModules.names("q", "o")),
                vera("VeRA r=4 dropout=0.1, Mlp, [fc1, fc3]", 4, true, 0.1f, TestSupport::mlp, TargetModules.names("fc1", "fc3")),
                tied("Tied-LoRA tied-ab-uv r=3 alpha=6, Mlp (sliced A, B), all-linear", "tied-ab-uv", null, 3, 6, 0f,
                        TestSupport::mlp, TargetModules.allLinear()),
                tied("Tied-LoRA tied-ab r=4, nested, [q, o]", "tied-ab", null, 4, 4, 0f, TestSupport::nested, TargetModules.names("q", "o")),
                tied("Tied-LoRA vera-like r=5 alpha=10, Mlp, all-linear", "vera-like", null, 5, 10, 0f, TestSupport::mlp,
                        TargetModules.allLinear()),
                tied("Tied-LoRA lora preset r=3, Mlp, [fc1, fc2]", "lora", null, 3, 3, 0f, TestSupport::mlp, TargetModules.names("fc1", "fc2")),
                tied("Tied-LoRA tied-frozen-a r=3, nested, all-linear", "tied-frozen-a", null, 3, 3, 0f, TestSupport::nested,
                        TargetModules.allLinear()),
                tied("Tied-LoRA custom: A per layer frozen, B tied trained, v only, r=4", "tied-ab",
                        new boolean[] {false, true, false, true, false, true}, 4, 2, 0f, TestSupport::mlp, TargetModules.allLinear()),
                tied("Tied-LoRA tied-ab-u dropout=0.1 r=3, Mlp, all-linear", "tied-ab-u", null, 3, 3, 0.1f, TestSupport::mlp,
                        TargetModules.allLinear()),
                adalora("AdaLoRA init_r=6 alpha=8, Mlp, all-linear", 6, 8, 0f, TestSupport::mlp, TargetModules.allLinear()),
                adalora("AdaLoRA init_r=3 alpha=5 dropout=0.1, nested, [q, o]", 3, 5, 0.1f, TestSupport::nested, TargetModules.names("q", "o")),
                dylora("DyLoRA r=5 alpha=16 normal mode, Mlp, all-linear", 5, 16, TestSupport::mlp, TargetModules.allLinear()),
                sora("SoRA r=6 alpha=16, nested, [q, o]", 6, 16, TestSupport::nested, TargetModules.names("q", "o")),
                selora("SeLoRA init_r=3 alpha=8, Mlp, [fc1, fc2]", 3, 8, TestSupport::mlp, TargetModules.names("fc1", "fc2")),
                lora("LoRA r=8 alpha=16, ViT, [attn.q, attn.k]", 8, 16, false, 0f, "kaiming",
                        VitModels::contractModel, TargetModules.names("attn.q", "attn.k")),
                lora("LoRA r=3 alpha=5, ViT, regex on q, k, v, o and mlp.fc1", 3, 5, false, 0f, "gaussian",
                        VitModels::contractModel, TargetModules.regex("vit\\.blocks\\.\\d+\\.(attn\\.[qkvo]|mlp\\.fc1)"))),
                io.peft4j.variants.krona.KronaCases.rows(), io.peft4j.variants.loha.LohaCases.rows(),
                io.peft4j.variants.lokr.LokrCases.rows()).flatMap(s -> s);
    }


    static VariantCase vera(String name, int r, boolean saveProjection, float dropout, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "VERA");
        json.put("r", r);
        json.put("save_projection", saveProjection);
        json.put("vera_dropout", dropout);
        json.put("d_initial", 0.1);
        json.put("projection_prng_key", 0);
        return new VariantCase(name,
                t -> VeraConfig.builder().r(r).saveProjection(saveProjection).dropout(dropout).targetModules(t).build(),
                VeraReference.of(r), model, targets, List.of(VeraConfig.LAMBDA_B, VeraConfig.LAMBDA_D), json, dropout, true);
    }

    /** flags: tie_a, tie_b, train_a, train_b, train_u, train_v over the preset, or null for the preset's own. */
    static VariantCase tied(String name, String preset, boolean[] flags, int r, float alpha, float dropout, LongFunction<Module> model,
                            TargetModules targets) {
        TiedLoraConfig.Builder b = TiedLoraConfig.builder().preset(preset).r(r).alpha(alpha).dropout(dropout);
        if (flags != null) b.tieA(flags[0]).tieB(flags[1]).trainA(flags[2]).trainB(flags[3]).trainU(flags[4]).trainV(flags[5]);
        TiedLoraConfig probe = b.targetModules(targets).build();
        List<String> perLayer = new ArrayList<>();
        if (!probe.tieA()) perLayer.add(TiedLoraConfig.A);
        if (!probe.tieB()) perLayer.add(TiedLoraConfig.B);
        if (probe.trainU()) perLayer.add(TiedLoraConfig.U);
        if (probe.trainV()) perLayer.add(TiedLoraConfig.V);
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "TIEDLORA");
        json.put("r", r);
        json.put("lora_alpha", alpha);
        json.put("preset", preset);
        json.put("tie_a", probe.tieA());
        json.put("tie_b", probe.tieB());
        json.put("train_a", probe.trainA());
        json.put("train_b", probe.trainB());
        json.put("train_u", probe.trainU());
        json.put("train_v", probe.trainV());
        return new VariantCase(name, t -> b.targetModules(t).build(),
                new ScaledLowRankReference(TiedLoraConfig.A, TiedLoraConfig.B, TiedLoraConfig.U, TiedLoraConfig.V, r, alpha / r,
                        probe::perLayerTrainable),
                model, targets, perLayer, json, dropout, true);
    }


    static VariantCase selora(String name, int initR, float alpha, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "SELORA");
        json.put("init_r", initR);
        json.put("lora_alpha", alpha);
        return new VariantCase(name,
                t -> SeLoraConfig.builder().initR(initR).alpha(alpha).targetModules(t).build(),
                LoraReference.of(initR, alpha, false), model, targets,
                List.of(LoraReference.A, LoraReference.B), json, 0, true);
    }

    static VariantCase adalora(String name, int initR, float alpha, float dropout, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "ADALORA");
        json.put("init_r", initR);
        json.put("lora_alpha", alpha);
        json.put("lora_dropout", dropout);
        return new VariantCase(name,
                t -> AdaLoraConfig.builder().initR(initR).targetR(1).alpha(alpha).dropout(dropout).totalStep(100).targetModules(t).build(),
                AdaLoraReference.of(initR, initR, alpha), model, targets,
                List.of(AdaLoraReference.A, AdaLoraReference.E, AdaLoraReference.B), json, dropout, true);
    }

    static VariantCase dylora(String name, int r, float alpha, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "DYLORA");
        json.put("r", r);
        json.put("lora_alpha", alpha);
        json.put("frozen", false);
        return new VariantCase(name,
                t -> DyLoraConfig.builder().r(r).alpha(alpha).frozen(false).targetModules(t).build(),
                LoraReference.of(r, alpha, false), model, targets,
                List.of(LoraReference.A, LoraReference.B), json, 0, true);
    }

    static VariantCase sora(String name, int r, float alpha, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "SORA");
        json.put("r", r);
        json.put("lora_alpha", alpha);
        return new VariantCase(name,
                t -> SoraConfig.builder().r(r).alpha(alpha).targetModules(t).build(),
                SoraReference.of(r, alpha), model, targets,
                List.of(SoraReference.A, SoraReference.GATE, SoraReference.B), json, 0, true);
    }

    static Stream<VariantCase> deterministicVariants() {
        return variants().filter(c -> !c.stochastic());
    }

    static VariantCase lora(String name, int r, float alpha, boolean rs, float dropout, String init,
                            LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "LORA");
        json.put("r", r);
        json.put("lora_alpha", alpha);
        json.put("lora_dropout", dropout);
        json.put("use_rslora", rs);
        return new VariantCase(name,
                t -> LoraConfig.builder().r(r).alpha(alpha).dropout(dropout).useRsLora(rs).init(init).targetModules(t).build(),
                LoraReference.of(r, alpha, rs), model, targets,
                List.of(LoraReference.A, LoraReference.B), json, dropout, true);
    }

    // ---- helpers ----

    private static PeftModel wrapped(VariantCase c, long seed, SplittableRandom r) {
        PeftModel pm = PeftModel.wrap(c.model(seed), c.config(c.targets()), backend(), 7);
        randomizeAdapter(pm, DEFAULT, r, 0.4);
        return pm;
    }

    /** fp32 error factor for sums of products over these small sizes: generous for k ≤ 32, far below any real bug. */
    private static double gamma(int dIn, int dOut) {
        return 2.0 * (dIn + dOut + 32) * U;
    }

    private static Set<String> adaptedPaths(PeftModel pm, String adapter) {
        return new TreeSet<>(pm.adaptedLayers(adapter).keySet());
    }

    private static Set<String> expectedKeys(PeftModel pm, VariantCase c, String adapter) {
        Set<String> keys = new TreeSet<>();
        for (String path : pm.adaptedLayers(adapter).keySet()) {
            for (String n : c.tensorNames()) keys.add(PeftModel.KEY_PREFIX + path + "." + n);
        }
        Adapter any = pm.adaptedLayers(adapter).values().iterator().next().adapter(adapter);
        pm.sharedParameters(adapter).forEach((key, p) -> {
            if (any.saved(p)) keys.add(key);
        });
        return keys;
    }

    // ---- merge / unmerge ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void mergedForwardEqualsUnmergedAndUnmergeRestoresTheBase(VariantCase c) {
        SplittableRandom r = rng("merge " + c.name());
        float[] x = normal(r, T * IN, 1.0);
        float[] yBase = forward(c.model(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        Map<String, float[]> w0 = snapshot(baseParameters(pm.baseModel()));
        float[] yUnmerged = forward(pm, x, T);
        assertTrue(differs(yBase, yUnmerged), "the adapter must change the output (nonzero parameters)");

        pm.merge();
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertTrue(l.isMerged(DEFAULT), l.path() + " merged");
        // Each merged weight is W0 + ΔW within fp32 rounding of ΔW and of the sum.
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            Map<String, double[]> p = adapterValues(l.adapter(DEFAULT));
            double[] delta = c.reference().deltaWeight(p, dIn, dOut);
            double[] deltaMag = c.reference().deltaWeight(absAll(p), dIn, dOut);
            double[] w0d = toDouble(w0.get(path + ".weight"));
            double[] bound = add(bounds(deltaMag, gamma(dIn, dOut), 0), bounds(add(abs(w0d), deltaMag), 2 * U, 0));
            assertWithin(add(w0d, delta), l.weight().value().toFloatArray(), bound, c + ": merged weight of " + path);
        });
        float[] yMerged = forward(pm, x, T);
        assertRelClose(yUnmerged, yMerged, 2e-5, c + ": merged vs unmerged output");

        pm.unmerge();
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            assertFalse(l.isMerged(DEFAULT));
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            double[] deltaMag = c.reference().deltaWeight(absAll(adapterValues(l.adapter(DEFAULT))), dIn, dOut);
            double[] w0d = toDouble(w0.get(path + ".weight"));
            assertWithin(w0d, l.weight().value().toFloatArray(), bounds(add(abs(w0d), deltaMag), 4 * U, 0),
                    c + ": unmerge restores the weight of " + path);
        });
        // Everything else (biases, unadapted layers) was never touched.
        snapshot(baseParameters(pm.baseModel())).forEach((n, v) -> {
            boolean adaptedWeight = pm.adaptedLayers(DEFAULT).keySet().stream().anyMatch(p -> n.equals(p + ".weight"));
            if (!adaptedWeight) assertBitEqual(w0.get(n), v, c + ": " + n + " untouched by merge/unmerge");
        });
        assertRelClose(yUnmerged, forward(pm, x, T), 2e-5, c + ": output after unmerge");
        pm.disableAdapters();
        assertRelClose(yBase, forward(pm, x, T), 2e-5, c + ": base output after unmerge");
    }

    // ---- training touches only the adapter ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void trainingChangesOnlyAdapterParameters(VariantCase c) {
        SplittableRandom r = rng("train " + c.name());
        PeftModel pm = wrapped(c, SEED, r);
        Map<String, Parameter> base = baseParameters(pm.baseModel());
        // Shared tensors (one object on every layer) are counted once; frozen adapter tensors must stay put.
        Set<Parameter> trained = new java.util.LinkedHashSet<>(), frozen = new java.util.LinkedHashSet<>();
        pm.adaptedLayers(DEFAULT).values().forEach(l -> {
            Adapter a = l.adapter(DEFAULT);
            for (Parameter p : a.parameters()) (a.trainable(p) ? trained : frozen).add(p);
            for (Parameter p : a.sharedParameters()) (a.trainable(p) ? trained : frozen).add(p);
        });
        List<Parameter> adapterParams = List.copyOf(trained);
        base.forEach((n, p) -> assertFalse(p.requiresGrad(), c + ": base parameter " + n + " must be frozen"));
        adapterParams.forEach(p -> assertTrue(p.requiresGrad(), c + ": adapter parameter " + p.name() + " must train"));
        frozen.forEach(p -> assertFalse(p.requiresGrad(), c + ": frozen adapter tensor " + p.name() + " must not train"));
        assertEquals(Set.copyOf(adapterParams), Set.copyOf(pm.trainableParameters()), c + ": the trainable parameters are the adapter's");

        Map<String, float[]> baseBefore = snapshot(base);
        List<float[]> frozenBefore = frozen.stream().map(p -> p.value().toFloatArray()).toList();
        List<float[]> adapterBefore = adapterParams.stream().map(p -> p.value().toFloatArray()).toList();
        Dataset data = TestSupport.blobs(64, IN, 5, 17);
        Trainer.Config cfg = Trainer.Config.builder().maxSteps(3).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend())) {
            assertEquals(3, t.fit(data, null).steps());
        }
        baseBefore.forEach((n, v) -> assertBitEqual(v, base.get(n).value().toFloatArray(), c + ": base parameter " + n + " after training"));
        List<Parameter> frozenList = List.copyOf(frozen);
        for (int i = 0; i < frozenList.size(); i++) {
            assertBitEqual(frozenBefore.get(i), frozenList.get(i).value().toFloatArray(), c + ": frozen " + frozenList.get(i).name() + " after training");
        }
        for (int i = 0; i < adapterParams.size(); i++) {
            float[] before = adapterBefore.get(i), after = adapterParams.get(i).value().toFloatArray();
            int changed = 0;
            for (int k = 0; k < before.length; k++) if (Float.floatToRawIntBits(before[k]) != Float.floatToRawIntBits(after[k])) changed++;
            assertTrue(changed * 2 >= before.length, c + ": adapter parameter " + adapterParams.get(i).name() + " changed in only "
                    + changed + " of " + before.length + " entries");
        }
    }

    // ---- save / load ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void saveLoadRoundTripIsBitExact(VariantCase c, @TempDir Path dir) throws IOException {
        SplittableRandom r = rng("save " + c.name());
        PeftModel pm = wrapped(c, SEED, r);
        float[] x = normal(r, T * IN, 1.0);
        float[] y = forward(pm, x, T);
        pm.save(dir);

        Path cfgFile = dir.resolve(PeftModel.CONFIG_FILE), weights = dir.resolve(PeftModel.WEIGHTS_FILE);
        assertTrue(Files.isRegularFile(cfgFile) && Files.isRegularFile(weights), c + ": both files written");
        @SuppressWarnings("unchecked")
        Map<String, Object> json = JSON.readValue(cfgFile.toFile(), Map.class);
        c.configJson().forEach((k, v) -> {
            assertTrue(json.containsKey(k), c + ": adapter_config.json lacks '" + k + "': " + json);
            Object got = json.get(k);
            if (v instanceof Number n) {
                assertTrue(got instanceof Number, c + ": '" + k + "' must be a number, got " + got);
                assertEquals(n.doubleValue(), ((Number) got).doubleValue(), 1e-7 * Math.abs(n.doubleValue()), c + ": '" + k + "'");
            } else {
                assertEquals(v, got, c + ": '" + k + "'");
            }
        });
        assertEquals(c.targets().toJson(), json.get("target_modules"), c + ": target_modules");

        Set<String> expected = expectedKeys(pm, c, DEFAULT);
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            assertEquals(expected, new TreeSet<>(f.names()), c + ": safetensors keys");
            assertEquals("pt", f.metadata().get("format"), c + ": __metadata__ format");
            pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
                for (Parameter p : l.adapter(DEFAULT).parameters()) {
                    String key = PeftModel.KEY_PREFIX + path + "." + p.name();
                    SafetensorsEntry e = f.entry(key);
                    assertEquals(DType.F32, e.dtype(), key);
                    assertEquals(Arrays.toString(p.value().shape()), Arrays.toString(e.shape()), key + " shape");
                    assertBitEqual(p.value().toFloatArray(), f.readF32(key), c + ": stored " + key);
                }
            });
        }

        PeftModel loaded = PeftModel.load(c.model(SEED), dir);
        assertEquals(adaptedPaths(pm, DEFAULT), adaptedPaths(loaded, DEFAULT), c + ": adapted layers after load");
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            List<Parameter> a = l.adapter(DEFAULT).parameters();
            List<Parameter> b = loaded.adaptedLayers(DEFAULT).get(path).adapter(DEFAULT).parameters();
            assertEquals(a.size(), b.size());
            for (int i = 0; i < a.size(); i++) {
                assertEquals(a.get(i).name(), b.get(i).name());
                assertBitEqual(a.get(i).value().toFloatArray(), b.get(i).value().toFloatArray(), c + ": loaded " + path + "." + a.get(i).name());
            }
        });
        Map<String, Parameter> loadedShared = loaded.sharedParameters(DEFAULT);
        assertEquals(pm.sharedParameters(DEFAULT).keySet(), loadedShared.keySet(), c + ": shared tensors after load");
        pm.sharedParameters(DEFAULT).forEach((key, p) -> assertBitEqual(p.value().toFloatArray(), loadedShared.get(key).value().toFloatArray(),
                c + ": loaded " + key));
        assertEquals(pm.adapterConfigs().get(DEFAULT).toJson(), loaded.adapterConfigs().get(DEFAULT).toJson(), c + ": config after load");
        assertBitEqual(y, forward(loaded, x, T), c + ": output of the loaded model");
    }

    // ---- disabling ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void disabledAdaptersGiveTheBaseOutputExactly(VariantCase c) {
        SplittableRandom r = rng("disable " + c.name());
        float[] x = normal(r, T * IN, 1.0);
        float[] yBase = forward(c.model(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        float[] yAdapted = forward(pm, x, T);
        assertTrue(differs(yBase, yAdapted));
        pm.disableAdapters();
        assertBitEqual(yBase, forward(pm, x, T), c + ": disabled, eval mode");
        assertBitEqual(yBase, forward(pm, x, T, true, 99), c + ": disabled, training mode");
        pm.enableAdapters();
        assertBitEqual(yAdapted, forward(pm, x, T), c + ": re-enabled");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void disablingAMergedAdapterGivesTheBaseOutputExactly(VariantCase c) {
        SplittableRandom r = rng("disable merged " + c.name());
        float[] x = normal(r, T * IN, 1.0);
        float[] yBase = forward(c.model(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        float[] yAdapted = forward(pm, x, T);
        pm.merge();
        pm.disableAdapters();
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertFalse(l.isMerged(DEFAULT), "disabling unmerges " + l.path());
        assertBitEqual(yBase, forward(pm, x, T), c + ": merged, then disabled");
        pm.enableAdapters();
        assertRelClose(yAdapted, forward(pm, x, T), 2e-5, c + ": re-enabled after merged+disabled");
    }

    // ---- the adapted layer against float64 ----

    /** A single adapted Linear 13→11 at "layers.0.q" with nonzero random adapter parameters. */
    private record Layer(PeftModel pm, Linear linear, Adapter adapter, double[] w0, double[] b0) {
        static Layer of(VariantCase c, SplittableRandom r) {
            PeftModel pm = PeftModel.wrap(TestSupport.single(SEED, 13, 11), c.config(TargetModules.names("q")), backend(), 3);
            randomizeAdapter(pm, DEFAULT, r, 0.5);
            Linear l = pm.adaptedLayers(DEFAULT).get("layers.0.q");
            assertNotNull(l, "layers.0.q adapted");
            return new Layer(pm, l, l.adapter(DEFAULT), values(l.weight()), values(l.bias()));
        }

        /** The same layer with |W0| and |b0|: evaluated on absolute values it gives the magnitudes error bounds scale with. */
        Layer withAbs() {
            return new Layer(pm, linear, adapter, abs(w0), abs(b0));
        }

        int dIn() { return (int) linear.inFeatures(); }
        int dOut() { return (int) linear.outFeatures(); }

        /** Full layer output in float64: x W0ᵀ + b0 + delta(x). */
        double[] ref(AdapterReference ref, Map<String, double[]> p, double[] x, int t) {
            return add(addRows(mulT(x, w0, t, dIn(), dOut()), b0, t, dOut()), ref.forward(p, x, t, dIn(), dOut()));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deterministicVariants")
    void gradientsMatchTheFloat64ReferenceAndItsFiniteDifferences(VariantCase c) {
        SplittableRandom r = rng("grad " + c.name());
        Layer layer = Layer.of(c, r);
        int t = 5, dIn = layer.dIn(), dOut = layer.dOut();
        AdapterReference ref = c.reference();
        float[] x = normal(r, t * dIn, 1.0), g = normal(r, t * dOut, 1.0);
        List<Parameter> params = TestSupport.trainedParameters(layer.adapter());
        // Gradients accumulate: start them at known nonzero values and expect those plus the step's.
        List<float[]> grad0 = new ArrayList<>();
        for (Parameter p : params) {
            float[] g0 = normal(r, (int) p.numel(), 0.1);
            p.grad().copyFrom(g0);
            grad0.add(g0);
        }
        assertFalse(layer.linear().weight().requiresGrad(), "base weight frozen");

        float[] y, dx;
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 9);
            Tensor xt = ctx.allocate(t, dIn).copyFrom(x);
            y = layer.pm().forward(ctx, xt).toFloatArray();
            Tensor gt = ctx.allocate(t, dOut).copyFrom(g);
            dx = layer.pm().backward(ctx, gt, true).toFloatArray();
        }
        Map<String, double[]> p = adapterValues(layer.adapter());
        Map<String, double[]> pAbs = absAll(p);
        double[] xd = toDouble(x), gd = toDouble(g);
        double gam = gamma(dIn, dOut);

        double[] yMag = layer.withAbs().ref(ref, pAbs, abs(xd), t);
        assertWithin(layer.ref(ref, p, xd, t), y, bounds(yMag, gam, 0), c + ": forward");

        Map<String, double[]> grads = ref.backward(p, xd, gd, t, dIn, dOut);
        Map<String, double[]> gradMag = ref.backward(pAbs, abs(xd), abs(gd), t, dIn, dOut);
        for (int i = 0; i < params.size(); i++) {
            Parameter prm = params.get(i);
            double[] g0 = toDouble(grad0.get(i));
            double[] want = add(g0, grads.get(prm.name()));
            double[] bound = add(bounds(gradMag.get(prm.name()), gam, 0), bounds(abs(want), 2 * U, 0));
            assertWithin(want, prm.grad().toFloatArray(), bound, c + ": ∂L/∂" + prm.name());
        }
        double[] dxRef = add(mul(gd, layer.w0(), t, dOut, dIn), grads.get(AdapterReference.INPUT));
        double[] dxMag = add(mul(abs(gd), abs(layer.w0()), t, dOut, dIn), gradMag.get(AdapterReference.INPUT));
        assertWithin(dxRef, dx, bounds(dxMag, gam, 0), c + ": ∂L/∂x");

        // The reference's gradients are the derivatives of its forward: central differences in float64.
        double h = 1e-4;
        for (String name : p.keySet()) {
            double[] theta = p.get(name), fd = new double[theta.length];
            for (int i = 0; i < theta.length; i++) {
                double keep = theta[i];
                theta[i] = keep + h;
                double lp = dot(gd, layer.ref(ref, p, xd, t));
                theta[i] = keep - h;
                double lm = dot(gd, layer.ref(ref, p, xd, t));
                theta[i] = keep;
                fd[i] = (lp - lm) / (2 * h);
            }
            double[] an = grads.get(name);
            assertWithin(an, fd, bounds(new double[an.length], 0, 1e-6 * Math.max(1, maxAbs(an))), c + ": finite differences of ∂L/∂" + name);
        }
        double[] fdx = new double[xd.length];
        for (int i = 0; i < xd.length; i++) {
            double keep = xd[i];
            xd[i] = keep + h;
            double lp = dot(gd, layer.ref(ref, p, xd, t));
            xd[i] = keep - h;
            double lm = dot(gd, layer.ref(ref, p, xd, t));
            xd[i] = keep;
            fdx[i] = (lp - lm) / (2 * h);
        }
        assertWithin(dxRef, fdx, bounds(new double[dxRef.length], 0, 1e-6 * Math.max(1, maxAbs(dxRef))), c + ": finite differences of ∂L/∂x");
    }

    /**
     * For every row, dropout included: the training-mode backward is the derivative of the
     * training-mode forward of the same step (same dropout mask), checked by central differences of
     * the fp32 forward. LoRA-family outputs are linear in each single parameter entry and in x, so a
     * large step is exact up to fp32 rounding of the outputs.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void trainModeForwardAndBackwardAreConsistent(VariantCase c) {
        SplittableRandom r = rng("consistency " + c.name());
        Layer layer = Layer.of(c, r);
        int t = 5, dIn = layer.dIn(), dOut = layer.dOut();
        long stepSeed = 1234;
        float[] x = normal(r, t * dIn, 1.0), g = normal(r, t * dOut, 1.0);
        double[] gd = toDouble(g);
        List<Parameter> params = TestSupport.trainedParameters(layer.adapter());
        for (Parameter p : params) backend().fill(0f, p.grad());
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, stepSeed);
            Tensor xt = ctx.allocate(t, dIn).copyFrom(x);
            float[] y1 = layer.pm().forward(ctx, xt).toFloatArray();
            Tensor gt = ctx.allocate(t, dOut).copyFrom(g);
            float[] dx = layer.pm().backward(ctx, gt, true).toFloatArray();

            // Same step seed, same output; eval mode and another seed differ exactly when there is dropout.
            assertBitEqual(y1, trainOutput(ctx, layer, x, t, stepSeed), c + ": training forward is reproducible for a step seed");
            float[] yEval = forward(layer.pm(), x, t);
            float[] yOther = trainOutput(ctx, layer, x, t, stepSeed + 1);
            assertEquals(c.stochastic(), differs(y1, yEval), c + ": training output differs from eval output iff dropout");
            assertEquals(c.stochastic(), differs(y1, yOther), c + ": training output depends on the step seed iff dropout");

            double step = 0.5;
            for (Parameter p : params) {
                float[] an = p.grad().toFloatArray();
                float[] theta = p.value().toFloatArray();
                double[] fd = new double[theta.length];
                for (int i = 0; i < theta.length; i++) {
                    float keep = theta[i], plus = (float) (keep + step), minus = (float) (keep - step);
                    theta[i] = plus;
                    p.value().copyFrom(theta);
                    double lp = dot(gd, toDouble(trainOutput(ctx, layer, x, t, stepSeed)));
                    theta[i] = minus;
                    p.value().copyFrom(theta);
                    double lm = dot(gd, toDouble(trainOutput(ctx, layer, x, t, stepSeed)));
                    theta[i] = keep;
                    fd[i] = (lp - lm) / ((double) plus - minus);
                }
                p.value().copyFrom(theta);
                assertWithin(fd, an, bounds(new double[an.length], 0, 1e-3 * Math.max(1, maxAbs(an))), c + ": training ∂L/∂" + p.name() + " vs differences");
            }
            double[] fdx = new double[x.length];
            float[] xs = x.clone();
            for (int i = 0; i < xs.length; i++) {
                float keep = xs[i], plus = (float) (keep + step), minus = (float) (keep - step);
                xs[i] = plus;
                double lp = dot(gd, toDouble(trainOutput(ctx, layer, xs, t, stepSeed)));
                xs[i] = minus;
                double lm = dot(gd, toDouble(trainOutput(ctx, layer, xs, t, stepSeed)));
                xs[i] = keep;
                fdx[i] = (lp - lm) / ((double) plus - minus);
            }
            assertWithin(fdx, dx, bounds(new double[dx.length], 0, 1e-3 * Math.max(1, maxAbs(dx))), c + ": training ∂L/∂x vs differences");
        }
    }

    private static float[] trainOutput(StepContext ctx, Layer layer, float[] x, int t, long stepSeed) {
        ctx.begin(true, stepSeed);
        Tensor xt = ctx.allocate(t, layer.dIn()).copyFrom(x);
        return layer.pm().forward(ctx, xt).toFloatArray();
    }

    /** Eval mode applies no dropout: the output is the float64 reference's, for every row. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void evalModeForwardMatchesTheReference(VariantCase c) {
        SplittableRandom r = rng("eval " + c.name());
        Layer layer = Layer.of(c, r);
        int t = 6;
        float[] x = normal(r, t * layer.dIn(), 1.0);
        Map<String, double[]> p = adapterValues(layer.adapter());
        double[] xd = toDouble(x);
        double[] mag = layer.withAbs().ref(c.reference(), absAll(p), abs(xd), t);
        assertWithin(layer.ref(c.reference(), p, xd, t), forward(layer.pm(), x, t), bounds(mag, gamma(layer.dIn(), layer.dOut()), 0),
                c + ": eval-mode output");
    }

    // ---- ΔW ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void deltaWeightMatchesTheReference(VariantCase c) {
        SplittableRandom r = rng("delta " + c.name());
        PeftModel fresh = PeftModel.wrap(c.model(SEED), c.config(c.targets()), backend(), 5);
        if (c.identityAtInit()) {
            for (Linear l : fresh.adaptedLayers(DEFAULT).values()) {
                try (Tensor d = l.adapter(DEFAULT).deltaWeight(backend())) {
                    // Numerically zero: -0.0 (a negative entry times a zero factor) counts as zero.
                    for (float v : d.toFloatArray()) assertTrue(v == 0f, c + ": a fresh adapter's ΔW on " + l.path() + " is zero, got " + v);
                }
            }
            float[] x = normal(r, T * IN, 1.0);
            assertBitEqual(forward(c.model(SEED), x, T), forward(fresh, x, T), c + ": a fresh adapter leaves the output unchanged");
        }
        PeftModel pm = wrapped(c, SEED, r);
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            Map<String, double[]> p = adapterValues(l.adapter(DEFAULT));
            try (Tensor d = l.adapter(DEFAULT).deltaWeight(backend())) {
                assertEquals(List.of((long) dOut, (long) dIn), Arrays.stream(d.shape()).boxed().toList(), c + ": ΔW shape on " + path);
                assertWithin(c.reference().deltaWeight(p, dIn, dOut), d.toFloatArray(),
                        bounds(c.reference().deltaWeight(absAll(p), dIn, dOut), gamma(dIn, dOut), 0), c + ": ΔW on " + path);
            }
        });
    }

    // ---- counts ----

    private static final Pattern REPORT = Pattern.compile("trainable params: ([\\d,]+) \\|\\| all params: ([\\d,]+) \\|\\| trainable%: (\\d+\\.\\d{4})");

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void trainableParameterCountAndReport(VariantCase c) {
        Module model = c.model(SEED);
        long baseCount = model.parameterCount();
        PeftModel pm = PeftModel.wrap(model, c.config(c.targets()), backend(), 1);
        long expected = 0;
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) {
            long perLayer = c.reference().trainableParameters((int) l.inFeatures(), (int) l.outFeatures());
            assertEquals(perLayer, l.adapter(DEFAULT).trainableParameterCount(), c + ": trainable parameters on " + l.path());
            expected += perLayer;
        }
        // Shared trainable tensors count once; frozen per-layer tensors are parameters that do not train.
        long frozenPerLayer = 0;
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) {
            Adapter a = l.adapter(DEFAULT);
            for (Parameter p : a.parameters()) if (!a.trainable(p)) frozenPerLayer += p.numel();
        }
        Adapter any = pm.adaptedLayers(DEFAULT).values().iterator().next().adapter(DEFAULT);
        for (Parameter p : pm.sharedParameters(DEFAULT).values()) if (any.trainable(p)) expected += p.numel();
        assertTrue(expected > 0);
        assertEquals(expected, pm.trainableParameterCount(), c + ": trainable parameters of the model");
        assertEquals(baseCount + expected + frozenPerLayer, pm.parameterCount(), c + ": all parameters = base + adapter");

        String report = pm.trainableParametersReport();
        Matcher m = REPORT.matcher(report);
        assertTrue(m.matches(), c + ": report format: '" + report + "'");
        assertEquals(expected, Long.parseLong(m.group(1).replace(",", "")), report);
        long all = baseCount + expected + frozenPerLayer;
        assertEquals(all, Long.parseLong(m.group(2).replace(",", "")), report);
        assertEquals(String.format(Locale.ROOT, "%.4f", 100.0 * expected / all), m.group(3), report);
    }

    // ---- target modules ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void targetModulesMatchByNameSuffixRegexAndAllLinear(VariantCase c) {
        assertEquals(Set.of("layers.0.q", "layers.1.q"), targetsOf(c, TargetModules.names("q")), "suffix 'q' (not 'head_q')");
        assertEquals(Set.of("layers.1.q"), targetsOf(c, TargetModules.names("layers.1.q")), "exact path");
        assertEquals(Set.of("embed", "layers.0.o", "layers.1.o"), targetsOf(c, TargetModules.names("embed", "o")), "several names");
        assertEquals(Set.of("layers.0.q", "layers.0.o", "layers.1.q", "layers.1.o"),
                targetsOf(c, TargetModules.regex("layers\\.\\d+\\.(q|o)")), "regex");
        assertEquals(Set.of("layers.0.q", "layers.1.q", "head_q"), targetsOf(c, TargetModules.regex(".*q")), "regex matches the whole path");
        assertEquals(linears(TestSupport.nested(SEED)).keySet(), targetsOf(c, TargetModules.allLinear()), "all-linear");

        for (TargetModules none : List.of(TargetModules.names("nope"), TargetModules.names("0"), TargetModules.regex("q"))) {
            Module model = TestSupport.nested(SEED);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> PeftModel.wrap(model, c.config(none), backend(), 1), c + ": " + none + " matches nothing");
            assertTrue(e.getMessage().contains("target_modules " + none.toJson() + " matches no Linear layer"),
                    "the message names the target_modules value: " + e.getMessage());
            for (String path : linears(model).keySet()) {
                assertTrue(e.getMessage().contains(path), "the message lists Linear '" + path + "': " + e.getMessage());
            }
            assertFalse(e.getMessage().contains("act"), "the message lists only Linear layers: " + e.getMessage());
            linears(model).values().forEach(l -> assertTrue(l.adapters().isEmpty(), "nothing injected into " + l.path()));
        }
    }

    private static Set<String> targetsOf(VariantCase c, TargetModules t) {
        PeftModel pm = PeftModel.wrap(TestSupport.nested(SEED), c.config(t), backend(), 1);
        Set<String> out = new HashSet<>(pm.adaptedLayers(DEFAULT).keySet());
        linears(pm.baseModel()).forEach((p, l) -> assertEquals(out.contains(p), l.adapters().containsKey(DEFAULT), p));
        return out;
    }

    // ---- several named adapters ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void severalNamedAdapters(VariantCase c, @TempDir Path dir) {
        SplittableRandom r = rng("multi " + c.name());
        float[] x = normal(r, T * IN, 1.0);
        PeftModel pm = wrapped(c, SEED, r);
        pm.addAdapter("second", c.config(c.targets()), 99);
        randomizeAdapter(pm, "second", r, 0.4);
        assertEquals(DEFAULT, pm.activeAdapter(), "the first adapter stays active");
        assertEquals(Set.of(DEFAULT, "second"), pm.adapterConfigs().keySet());
        assertTrainable(pm, DEFAULT, c);
        float[] yDefault = forward(pm, x, T);

        pm.setActiveAdapter("second");
        assertEquals("second", pm.activeAdapter());
        assertTrainable(pm, "second", c);
        float[] ySecond = forward(pm, x, T);
        assertTrue(differs(yDefault, ySecond), c + ": switching the adapter switches the output");

        pm.save(dir);
        for (Path d : List.of(dir, dir.resolve("second"))) {
            assertTrue(Files.isRegularFile(d.resolve(PeftModel.WEIGHTS_FILE)) && Files.isRegularFile(d.resolve(PeftModel.CONFIG_FILE)), d + " written");
        }
        assertBitEqual(ySecond, forward(PeftModel.load(c.model(SEED), dir.resolve("second")), x, T), c + ": dir/second holds 'second'");
        assertBitEqual(yDefault, forward(PeftModel.load(c.model(SEED), dir), x, T), c + ": dir holds 'default'");
        PeftModel both = PeftModel.load(c.model(SEED), dir);
        both.loadAdapter(dir.resolve("second"), "second");
        both.setActiveAdapter("second");
        assertBitEqual(ySecond, forward(both, x, T), c + ": loaded 'second' next to 'default'");
        both.setActiveAdapter(DEFAULT);
        assertBitEqual(yDefault, forward(both, x, T), c + ": back to 'default'");

        pm.merge();
        float[] yMerged = forward(pm, x, T);
        assertRelClose(ySecond, yMerged, 2e-5, c + ": merged 'second'");
        Module plain = pm.mergeAndUnload();
        assertBitEqual(yMerged, forward(plain, x, T), c + ": mergeAndUnload's model gives the merged output");
        linears(plain).values().forEach(l -> assertTrue(l.adapters().isEmpty(), l.path() + " has no adapters left"));
        assertEquals(baseParameters(plain).keySet(), plain.namedParameters().keySet(), "only base parameters remain");
        assertTrue(pm.adapterConfigs().isEmpty());
    }

    private static void assertTrainable(PeftModel pm, String active, VariantCase c) {
        Set<Parameter> expected = new HashSet<>();
        linears(pm.baseModel()).values().forEach(l -> l.adapters().forEach((n, a) -> {
            for (Parameter p : TestSupport.trainedParameters(a)) {
                assertEquals(n.equals(active), p.requiresGrad(), c + ": " + l.path() + " adapter '" + n + "' " + p.name() + " trainable iff active");
                if (n.equals(active)) expected.add(p);
            }
        }));
        assertEquals(expected, Set.copyOf(pm.trainableParameters()), c + ": trainable parameters are those of '" + active + "'");
    }

    // ---- load errors ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void loadErrorsAreClearAndLeaveNoHalfLoadedAdapter(VariantCase c, @TempDir Path dir) throws IOException {
        SplittableRandom r = rng("load errors " + c.name());
        PeftModel pm = wrapped(c, SEED, r);
        Path good = dir.resolve("good");
        pm.save(good);
        List<String> keys;
        try (SafetensorsFile f = SafetensorsFile.open(good.resolve(PeftModel.WEIGHTS_FILE))) {
            keys = new ArrayList<>(new TreeSet<>(f.names()));
        }
        String first = keys.get(0);
        String extra = PeftModel.KEY_PREFIX + "layers.9.nope." + (c.tensorNames().isEmpty() ? "weight" : c.tensorNames().get(0));

        Map<String, String> fragments = new LinkedHashMap<>();
        fragments.put("missing", first);
        rewrite(good, dir.resolve("missing"), (name, shape, v, w) -> {
            if (!name.equals(first)) w.putF32(name, shape, v);
        });
        fragments.put("shape", first);
        rewrite(good, dir.resolve("shape"), (name, shape, v, w) -> {
            if (name.equals(first)) w.putF32(name, shape.length == 1 ? new long[] {1, v.length} : new long[] {v.length}, v);
            else w.putF32(name, shape, v);
        });
        fragments.put("extra", extra);
        rewrite(good, dir.resolve("extra"), (name, shape, v, w) -> {
            w.putF32(name, shape, v);
            if (name.equals(first)) w.putF32(extra, shape, v);
        });
        fragments.put("type", "NOPE");
        editConfig(good, dir.resolve("type"), json -> json.put("peft_type", "NOPE"));

        float[] x = normal(r, T * IN, 1.0);
        float[] y = forward(pm, x, T);
        List<Parameter> trainable = pm.trainableParameters();
        fragments.forEach((what, fragment) -> {
            Path bad = dir.resolve(what);
            Module fresh = c.model(SEED);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(fresh, bad), c + ": " + what);
            assertTrue(e.getMessage().contains(fragment), c + ": the '" + what + "' message names '" + fragment + "': " + e.getMessage());
            linears(fresh).values().forEach(l -> assertTrue(l.adapters().isEmpty(), c + ": " + what + ": no adapter left on " + l.path()));

            IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> pm.loadAdapter(bad, "other"), c + ": " + what);
            assertTrue(e2.getMessage().contains(fragment), e2.getMessage());
            assertEquals(Set.of(DEFAULT), pm.adapterConfigs().keySet(), c + ": " + what + ": the failed adapter is gone");
            assertEquals(DEFAULT, pm.activeAdapter());
            linears(pm.baseModel()).values().forEach(l -> assertFalse(l.adapters().containsKey("other"), l.path()));
            assertEquals(trainable, pm.trainableParameters(), c + ": " + what + ": trainable parameters unchanged");
            assertBitEqual(y, forward(pm, x, T), c + ": " + what + ": output unchanged");
        });
    }

    @FunctionalInterface
    interface TensorRewrite {
        void put(String name, long[] shape, float[] values, SafetensorsWriter w);
    }

    /** Copies an adapter directory, passing every tensor of its weights file through {@code edit}. */
    static void rewrite(Path from, Path to, TensorRewrite edit) throws IOException {
        Files.createDirectories(to);
        Files.copy(from.resolve(PeftModel.CONFIG_FILE), to.resolve(PeftModel.CONFIG_FILE));
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile f = SafetensorsFile.open(from.resolve(PeftModel.WEIGHTS_FILE))) {
            for (String name : f.names()) edit.put(name, f.entry(name).shape(), f.readF32(name), w);
            w.metadata(f.metadata());
        }
        w.write(to.resolve(PeftModel.WEIGHTS_FILE));
    }

    /** Copies an adapter directory with an edited adapter_config.json. */
    @SuppressWarnings("unchecked")
    static void editConfig(Path from, Path to, java.util.function.Consumer<Map<String, Object>> edit) throws IOException {
        Files.createDirectories(to);
        Files.copy(from.resolve(PeftModel.WEIGHTS_FILE), to.resolve(PeftModel.WEIGHTS_FILE));
        Map<String, Object> json = JSON.readValue(from.resolve(PeftModel.CONFIG_FILE).toFile(), Map.class);
        edit.accept(json);
        JSON.writeValue(to.resolve(PeftModel.CONFIG_FILE).toFile(), json);
    }

    static Map<String, double[]> absAll(Map<String, double[]> p) {
        return p.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey, e -> abs(e.getValue()), (a, b) -> a, LinkedHashMap::new));
    }
}
