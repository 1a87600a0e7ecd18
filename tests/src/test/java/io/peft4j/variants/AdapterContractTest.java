package io.peft4j.variants;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.abs;
import static io.peft4j.variants.TestSupport.adapterValues;
import static io.peft4j.variants.TestSupport.add;
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
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
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
 *
 * <p>Checks work on the whole adapted layer (W0, b0 and the base parameters a method trains), so
 * methods that rewrite a layer's input or output have rows too. Where a check cannot apply, the
 * row says which and why ({@link VariantCase#notApplicable}) and the check asserts the documented
 * alternative outcome instead (merge refuses with a message, disabling keeps a bias trained in
 * place, ...): nothing is skipped silently.
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
                        VitModels::contractModel, TargetModules.regex("vit\\.blocks\\.\\d+\\.(attn\\.[qkvo]|mlp\\.fc1)")),
                lora("LoRA r=8 alpha=16, BERT, [query, value]", 8, 16, false, 0f, "kaiming",
                        BertModels::contractModel, TargetModules.names("query", "value")),
                lora("LoRA r=3 alpha=5, BERT, regex on attention.self.(query|value) and intermediate.dense", 3, 5, false, 0f, "gaussian",
                        BertModels::contractModel, TargetModules.regex("bert\\.encoder\\.layer\\.\\d+\\.(attention\\.self\\.(query|value)|intermediate\\.dense)"))),
                io.peft4j.variants.krona.KronaCases.rows(), io.peft4j.variants.loha.LohaCases.rows(),
                io.peft4j.variants.lokr.LokrCases.rows(),
                // Methods that rewrite the layer's input or output, and QLoRA's quantized base.
                io.peft4j.variants.dora.DoraCases.rows(), io.peft4j.variants.ia3.Ia3Cases.rows(), io.peft4j.variants.ssf.SsfCases.rows(),
                io.peft4j.variants.bitfit.BitFitCases.rows(), io.peft4j.variants.houlsby.HoulsbyCases.rows(),
                io.peft4j.variants.qlora.QLoraCases.rows()).flatMap(s -> s);
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
        randomizeTrainedBase(pm, r, 0.4);
        return pm;
    }

    /** The base parameters the default adapter trains (BitFit's bias) get random values too, so they are tested nonzero and changed. */
    private static void randomizeTrainedBase(PeftModel pm, SplittableRandom r, double std) {
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) {
            for (Parameter p : trainedBase(l, l.adapter(DEFAULT))) p.value().copyFrom(normal(r, (int) p.numel(), std));
        }
    }

    /** The layer's own parameters that {@code a} trains, by {@link Adapter#trainedBaseParameters}. */
    private static List<Parameter> trainedBase(Linear l, Adapter a) {
        return a.trainedBaseParameters().stream().map(n -> l.localParameters().get(n)).toList();
    }

    /** The adapter's values (shared tensors included) plus the layer parameters it trains, as float64 by checkpoint name. */
    private static Map<String, double[]> layerValues(Linear l, Adapter a) {
        Map<String, double[]> p = adapterValues(a);
        for (String n : a.trainedBaseParameters()) p.put(n, values(l.localParameters().get(n)));
        return p;
    }

    /** W0 as the layer's forward uses it: the dequantized frozen weight where its fp32 copy was freed (QLoRA). */
    private static double[] w0(Linear l) {
        if (l.weight().value().isAlive()) return values(l.weight());
        try (Tensor w = l.frozenWeight().dequantize(backend())) {
            return toDouble(w.toFloatArray());
        }
    }

    /** Copies of every base parameter's values by full name; a freed weight is read from its frozen (NF4) form. */
    private static Map<String, float[]> baseSnapshot(Module model) {
        Map<String, Linear> layers = linears(model);
        Map<String, float[]> out = new LinkedHashMap<>();
        baseParameters(model).forEach((n, p) -> {
            if (p.value().isAlive()) {
                out.put(n, p.value().toFloatArray());
            } else {
                try (Tensor w = layers.get(n.substring(0, n.lastIndexOf('.'))).frozenWeight().dequantize(backend())) {
                    out.put(n, w.toFloatArray());
                }
            }
        });
        return out;
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
        float[] yBase = forward(c.base(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        Map<String, float[]> w0 = baseSnapshot(pm.baseModel());
        float[] yUnmerged = forward(pm, x, T);
        assertTrue(differs(yBase, yUnmerged), "the adapter must change the output (nonzero parameters)");
        if (!c.applies(VariantCase.MERGE)) {
            assertMergeRefused(c, pm, x, yUnmerged);
            return;
        }

        pm.merge();
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertTrue(l.isMerged(DEFAULT), l.path() + " merged");
        boolean componentwise = c.reference().componentwiseBounds();
        // Each merged weight is W0 + ΔW within fp32 rounding of ΔW and of the sum (or the method's own merged form, normwise).
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            Map<String, double[]> p = layerValues(l, l.adapter(DEFAULT));
            double[] w0d = toDouble(w0.get(path + ".weight"));
            double[] b0d = l.bias() == null ? null : toDouble(w0.get(path + ".bias"));
            double[][] want = c.reference().merged(p, w0d, b0d, dIn, dOut);
            if (componentwise) {
                double[] deltaMag = c.reference().deltaWeight(absAll(p), dIn, dOut);
                double[] bound = add(bounds(deltaMag, gamma(dIn, dOut), 0), bounds(add(abs(w0d), deltaMag), 2 * U, 0));
                assertWithin(want[0], l.weight().value().toFloatArray(), bound, c + ": merged weight of " + path);
            } else {
                LayerChecks.assertClose(want[0], l.weight().value().toFloatArray(), LayerChecks.REL, c + ": merged weight of " + path);
                if (want[1] != null) LayerChecks.assertClose(want[1], l.bias().value().toFloatArray(), LayerChecks.REL, c + ": merged bias of " + path);
            }
        });
        float[] yMerged = forward(pm, x, T);
        assertRelClose(yUnmerged, yMerged, 2e-5, c + ": merged vs unmerged output");

        pm.unmerge();
        Map<String, float[]> after = baseSnapshot(pm.baseModel());
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            assertFalse(l.isMerged(DEFAULT));
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            double[] w0d = toDouble(w0.get(path + ".weight"));
            if (componentwise) {
                double[] deltaMag = c.reference().deltaWeight(absAll(adapterValues(l.adapter(DEFAULT))), dIn, dOut);
                assertWithin(w0d, after.get(path + ".weight"), bounds(add(abs(w0d), deltaMag), 4 * U, 0), c + ": unmerge restores the weight of " + path);
            } else {
                LayerChecks.assertClose(w0d, after.get(path + ".weight"), LayerChecks.REL, c + ": unmerge restores the weight of " + path);
                if (l.bias() != null) {
                    LayerChecks.assertClose(toDouble(w0.get(path + ".bias")), after.get(path + ".bias"), LayerChecks.REL, c + ": unmerge restores the bias of " + path);
                }
            }
        });
        // Everything else (biases of additive methods, unadapted layers) was never touched.
        after.forEach((n, v) -> {
            boolean adapted = pm.adaptedLayers(DEFAULT).keySet().stream()
                    .anyMatch(p -> n.equals(p + ".weight") || (!componentwise && n.equals(p + ".bias")));
            if (!adapted) assertBitEqual(w0.get(n), v, c + ": " + n + " untouched by merge/unmerge");
        });
        assertRelClose(yUnmerged, forward(pm, x, T), 2e-5, c + ": output after unmerge");
        pm.disableAdapters();
        if (c.applies(VariantCase.DISABLE)) assertRelClose(yBase, forward(pm, x, T), 2e-5, c + ": base output after unmerge");
    }

    /** A method that cannot merge: merge refuses, naming why, and leaves the model unmerged with its output unchanged. */
    private static void assertMergeRefused(VariantCase c, PeftModel pm, float[] x, float[] y) {
        RuntimeException e = assertThrows(UnsupportedOperationException.class, pm::merge, c + ": merge must refuse");
        assertTrue(e.getMessage() != null && e.getMessage().contains("cannot be merged"), c + ": the refusal says why: " + e.getMessage());
        assertTrue(c.notApplicable().get(VariantCase.MERGE).length() > 0);
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertFalse(l.isMerged(DEFAULT), c + ": " + l.path() + " left unmerged");
        assertBitEqual(y, forward(pm, x, T), c + ": output unchanged after the refused merge");
        assertThrows(UnsupportedOperationException.class, pm::mergeAndUnload, c + ": mergeAndUnload must refuse too");
        assertBitEqual(y, forward(pm, x, T), c + ": output unchanged after the refused mergeAndUnload");
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
            trained.addAll(trainedBase(l, a));   // BitFit's bias: a base parameter the adapter trains
        });
        List<Parameter> adapterParams = List.copyOf(trained);
        base.forEach((n, p) -> assertEquals(trained.contains(p), p.requiresGrad(), c + ": base parameter " + n + " must be frozen unless the adapter trains it"));
        adapterParams.forEach(p -> assertTrue(p.requiresGrad(), c + ": adapter parameter " + p.name() + " must train"));
        frozen.forEach(p -> assertFalse(p.requiresGrad(), c + ": frozen adapter tensor " + p.name() + " must not train"));
        assertEquals(Set.copyOf(adapterParams), Set.copyOf(pm.trainableParameters()), c + ": the trainable parameters are the adapter's");

        Map<String, float[]> baseBefore = baseSnapshot(pm.baseModel());
        base.forEach((n, p) -> {
            if (trained.contains(p)) baseBefore.remove(n);
        });
        List<float[]> frozenBefore = frozen.stream().map(p -> p.value().toFloatArray()).toList();
        List<float[]> adapterBefore = adapterParams.stream().map(p -> p.value().toFloatArray()).toList();
        Dataset data = TestSupport.blobs(64, IN, 5, 17);
        Trainer.Config cfg = Trainer.Config.builder().maxSteps(3).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend())) {
            assertEquals(3, t.fit(data, null).steps());
        }
        Map<String, float[]> baseAfter = baseSnapshot(pm.baseModel());
        baseBefore.forEach((n, v) -> assertBitEqual(v, baseAfter.get(n), c + ": base parameter " + n + " after training"));
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
                for (String n : l.adapter(DEFAULT).trainedBaseParameters()) {
                    String key = PeftModel.KEY_PREFIX + path + "." + n;
                    assertBitEqual(l.localParameters().get(n).value().toFloatArray(), f.readF32(key), c + ": stored trained base parameter " + key);
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
            Linear back = loaded.adaptedLayers(DEFAULT).get(path);
            for (String n : l.adapter(DEFAULT).trainedBaseParameters()) {
                assertBitEqual(l.localParameters().get(n).value().toFloatArray(), back.localParameters().get(n).value().toFloatArray(),
                        c + ": loaded trained base parameter " + path + "." + n);
                assertTrue(back.localParameters().get(n).requiresGrad(), c + ": " + path + "." + n + " trains after load");
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
        float[] yBase = forward(c.base(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        float[] yAdapted = forward(pm, x, T);
        assertTrue(differs(yBase, yAdapted));
        pm.disableAdapters();
        float[] yOff = c.applies(VariantCase.DISABLE) ? yBase : yAdapted;   // trained in place: disabling keeps it
        String what = c.applies(VariantCase.DISABLE) ? "the base output" : "the adapted output (" + c.notApplicable().get(VariantCase.DISABLE) + ")";
        assertBitEqual(yOff, forward(pm, x, T), c + ": disabled, eval mode, gives " + what);
        assertBitEqual(yOff, forward(pm, x, T, true, 99), c + ": disabled, training mode, gives " + what);
        pm.enableAdapters();
        assertBitEqual(yAdapted, forward(pm, x, T), c + ": re-enabled");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void disablingAMergedAdapterGivesTheBaseOutputExactly(VariantCase c) {
        SplittableRandom r = rng("disable merged " + c.name());
        float[] x = normal(r, T * IN, 1.0);
        float[] yBase = forward(c.base(SEED), x, T);
        PeftModel pm = wrapped(c, SEED, r);
        float[] yAdapted = forward(pm, x, T);
        if (!c.applies(VariantCase.MERGE)) {
            assertMergeRefused(c, pm, x, yAdapted);
            return;
        }
        pm.merge();
        pm.disableAdapters();
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) assertFalse(l.isMerged(DEFAULT), "disabling unmerges " + l.path());
        if (c.applies(VariantCase.DISABLE)) assertBitEqual(yBase, forward(pm, x, T), c + ": merged, then disabled");
        else assertRelClose(yAdapted, forward(pm, x, T), 2e-5, c + ": merged, then disabled, keeps the adapted output ("
                + c.notApplicable().get(VariantCase.DISABLE) + ")");
        pm.enableAdapters();
        assertRelClose(yAdapted, forward(pm, x, T), 2e-5, c + ": re-enabled after merged+disabled");
    }

    // ---- the adapted layer against float64 ----

    /** A single adapted Linear 13→11 at "layers.0.q" with nonzero random adapter parameters. */
    private record Layer(PeftModel pm, Linear linear, Adapter adapter, double[] w0, double[] b0) {
        static Layer of(VariantCase c, SplittableRandom r) {
            PeftModel pm = PeftModel.wrap(TestSupport.single(SEED, 13, 11), c.config(TargetModules.names("q")), backend(), 3);
            randomizeAdapter(pm, DEFAULT, r, 0.5);
            randomizeTrainedBase(pm, r, 0.5);
            Linear l = pm.adaptedLayers(DEFAULT).get("layers.0.q");
            assertNotNull(l, "layers.0.q adapted");
            return new Layer(pm, l, l.adapter(DEFAULT), AdapterContractTest.w0(l), TestSupport.values(l.bias()));
        }

        /** The same layer with |W0| and |b0|: evaluated on absolute values it gives the magnitudes error bounds scale with. */
        Layer withAbs() {
            return new Layer(pm, linear, adapter, abs(w0), abs(b0));
        }

        int dIn() { return (int) linear.inFeatures(); }
        int dOut() { return (int) linear.outFeatures(); }

        /** The adapter's values and the layer parameters it trains. */
        Map<String, double[]> trainedValues() {
            return layerValues(linear, adapter);
        }

        /** The parameters that train, by checkpoint name: the adapter's and the layer's own it trains. */
        Map<String, Parameter> trained() {
            Map<String, Parameter> out = new LinkedHashMap<>();
            for (Parameter p : TestSupport.trainedParameters(adapter)) out.put(p.name(), p);
            for (String n : adapter.trainedBaseParameters()) out.put(n, linear.localParameters().get(n));
            return out;
        }

        /** Full layer output in float64: x W0ᵀ + b0 + delta(x) for an additive method. */
        double[] ref(AdapterReference ref, Map<String, double[]> p, double[] x, int t) {
            return ref.layerForward(p, w0, b0, x, t, dIn(), dOut());
        }
    }

    /** ref ≈ got: componentwise from the magnitudes {@code mag} for sums of products, else normwise. */
    private static void assertMatches(AdapterReference ref, double[] want, float[] got, java.util.function.Supplier<double[]> mag, double gam, String what) {
        if (ref.componentwiseBounds()) assertWithin(want, got, bounds(mag.get(), gam, 0), what);
        else LayerChecks.assertClose(want, got, LayerChecks.REL, what);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deterministicVariants")
    void gradientsMatchTheFloat64ReferenceAndItsFiniteDifferences(VariantCase c) {
        SplittableRandom r = rng("grad " + c.name());
        Layer layer = Layer.of(c, r);
        int t = 5, dIn = layer.dIn(), dOut = layer.dOut();
        AdapterReference ref = c.reference();
        float[] x = normal(r, t * dIn, 1.0), g = normal(r, t * dOut, 1.0);
        Map<String, Parameter> params = layer.trained();
        // Gradients accumulate: start them at known nonzero values and expect those plus the step's.
        Map<String, float[]> grad0 = new LinkedHashMap<>();
        params.forEach((n, p) -> {
            float[] g0 = normal(r, (int) p.numel(), 0.1);
            p.grad().copyFrom(g0);
            grad0.put(n, g0);
        });
        assertFalse(layer.linear().weight().requiresGrad(), "base weight frozen");

        float[] y, dx;
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 9);
            Tensor xt = ctx.allocate(t, dIn).copyFrom(x);
            y = layer.pm().forward(ctx, xt).toFloatArray();
            Tensor gt = ctx.allocate(t, dOut).copyFrom(g);
            dx = layer.pm().backward(ctx, gt, true).toFloatArray();
        }
        Map<String, double[]> p = layer.trainedValues();
        Map<String, double[]> pAbs = absAll(p);
        double[] xd = toDouble(x), gd = toDouble(g);
        double gam = gamma(dIn, dOut);
        Layer absLayer = layer.withAbs();

        assertMatches(ref, layer.ref(ref, p, xd, t), y, () -> absLayer.ref(ref, pAbs, abs(xd), t), gam, c + ": forward");

        Map<String, double[]> grads = ref.layerBackward(p, layer.w0(), layer.b0(), xd, gd, t, dIn, dOut);
        Map<String, double[]> gradMag = ref.componentwiseBounds()
                ? ref.layerBackward(pAbs, absLayer.w0(), absLayer.b0(), abs(xd), abs(gd), t, dIn, dOut) : null;
        assertTrue(grads.keySet().containsAll(params.keySet()), c + ": the reference has a gradient for every trained tensor " + params.keySet());
        params.forEach((name, prm) -> {
            double[] want = add(toDouble(grad0.get(name)), grads.get(name));
            if (ref.componentwiseBounds()) {
                double[] bound = add(bounds(gradMag.get(name), gam, 0), bounds(abs(want), 2 * U, 0));
                assertWithin(want, prm.grad().toFloatArray(), bound, c + ": ∂L/∂" + name);
            } else {
                LayerChecks.assertClose(want, prm.grad().toFloatArray(), LayerChecks.REL, c + ": ∂L/∂" + name);
            }
        });
        double[] dxRef = grads.get(AdapterReference.INPUT);
        assertMatches(ref, dxRef, dx, () -> gradMag.get(AdapterReference.INPUT), gam, c + ": ∂L/∂x");

        // The reference's gradients are the derivatives of its forward (with the method's constants held): central differences in float64.
        Map<String, double[]> at = new LinkedHashMap<>();
        p.forEach((n, v) -> at.put(n, v.clone()));
        double h = 1e-4;
        for (String name : p.keySet()) {
            double[] theta = p.get(name), fd = new double[theta.length];
            for (int i = 0; i < theta.length; i++) {
                double keep = theta[i];
                theta[i] = keep + h;
                double lp = dot(gd, layerRef(ref, layer, at, p, xd, t));
                theta[i] = keep - h;
                double lm = dot(gd, layerRef(ref, layer, at, p, xd, t));
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
            double lp = dot(gd, layerRef(ref, layer, at, p, xd, t));
            xd[i] = keep - h;
            double lm = dot(gd, layerRef(ref, layer, at, p, xd, t));
            xd[i] = keep;
            fdx[i] = (lp - lm) / (2 * h);
        }
        assertWithin(dxRef, fdx, bounds(new double[dxRef.length], 0, 1e-6 * Math.max(1, maxAbs(dxRef))), c + ": finite differences of ∂L/∂x");
    }

    private static double[] layerRef(AdapterReference ref, Layer layer, Map<String, double[]> at, Map<String, double[]> p, double[] x, int t) {
        return ref.layerForwardWithConstantsAt(at, p, layer.w0(), layer.b0(), x, t, layer.dIn(), layer.dOut());
    }

    /**
     * For every row, dropout included: the training-mode backward is the derivative of the
     * training-mode forward of the same step (same dropout mask), checked by central differences of
     * the fp32 forward. LoRA-family outputs are linear in each single parameter entry and in x, so a
     * large step is exact up to fp32 rounding of the outputs. Rows that are not (a non-linear
     * bottleneck, a norm held constant in backward) mark the differences not applicable and must be
     * deterministic, so that {@link #gradientsMatchTheFloat64ReferenceAndItsFiniteDifferences} covers
     * their training-mode gradients.
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
        List<Parameter> params = List.copyOf(layer.trained().values());
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
            if (!c.applies(VariantCase.TRAIN_MODE_DIFFERENCES)) {
                assertFalse(c.stochastic(), c + ": large-step differences do not apply (" + c.notApplicable().get(VariantCase.TRAIN_MODE_DIFFERENCES)
                        + "), so the row must be deterministic for the float64 gradient check to cover training mode");
                assertTrue(deterministicVariants().anyMatch(d -> d.name().equals(c.name())), c + ": the float64 gradient check runs on this row");
                return;
            }

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
        Map<String, double[]> p = layer.trainedValues();
        double[] xd = toDouble(x);
        assertMatches(c.reference(), layer.ref(c.reference(), p, xd, t), forward(layer.pm(), x, t),
                () -> layer.withAbs().ref(c.reference(), absAll(p), abs(xd), t), gamma(layer.dIn(), layer.dOut()), c + ": eval-mode output");
    }

    // ---- ΔW ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void deltaWeightMatchesTheReference(VariantCase c) {
        SplittableRandom r = rng("delta " + c.name());
        PeftModel fresh = PeftModel.wrap(c.model(SEED), c.config(c.targets()), backend(), 5);
        if (!c.applies(VariantCase.DELTA_WEIGHT)) {
            // No ΔW exists (a non-linear module): asking for one is refused with the reason, on every layer.
            for (Linear l : fresh.adaptedLayers(DEFAULT).values()) {
                RuntimeException e = assertThrows(UnsupportedOperationException.class, () -> l.adapter(DEFAULT).deltaWeight(backend()),
                        c + ": ΔW on " + l.path() + " must be refused (" + c.notApplicable().get(VariantCase.DELTA_WEIGHT) + ")");
                assertTrue(e.getMessage() != null && e.getMessage().contains(l.path()), c + ": the refusal names the layer: " + e.getMessage());
            }
            return;
        }
        if (c.identityAtInit()) {
            for (Linear l : fresh.adaptedLayers(DEFAULT).values()) {
                try (Tensor d = l.adapter(DEFAULT).deltaWeight(backend())) {
                    // Numerically zero: -0.0 (a negative entry times a zero factor) counts as zero.
                    for (float v : d.toFloatArray()) assertTrue(v == 0f, c + ": a fresh adapter's ΔW on " + l.path() + " is zero, got " + v);
                }
            }
            float[] x = normal(r, T * IN, 1.0);
            assertBitEqual(forward(c.base(SEED), x, T), forward(fresh, x, T), c + ": a fresh adapter leaves the output unchanged");
        }
        PeftModel pm = wrapped(c, SEED, r);
        pm.adaptedLayers(DEFAULT).forEach((path, l) -> {
            int dIn = (int) l.inFeatures(), dOut = (int) l.outFeatures();
            Map<String, double[]> p = layerValues(l, l.adapter(DEFAULT));
            try (Tensor d = l.adapter(DEFAULT).deltaWeight(backend())) {
                assertEquals(List.of((long) dOut, (long) dIn), Arrays.stream(d.shape()).boxed().toList(), c + ": ΔW shape on " + path);
                if (c.reference().componentwiseBounds()) {
                    assertWithin(c.reference().deltaWeight(p, dIn, dOut), d.toFloatArray(),
                            bounds(c.reference().deltaWeight(absAll(p), dIn, dOut), gamma(dIn, dOut), 0), c + ": ΔW on " + path);
                } else {
                    // ΔW = merged W − W0: normwise against the larger of the two (it is a difference of rounded weights).
                    double[] w0 = w0(l), want = c.reference().merged(p, w0, l.bias() == null ? null : values(l.bias()), dIn, dOut)[0];
                    for (int i = 0; i < want.length; i++) want[i] -= w0[i];
                    float[] got = d.toFloatArray();
                    double scale = Math.max(maxAbs(want), maxAbs(w0));
                    assertWithin(want, got, bounds(new double[want.length], 0, LayerChecks.REL * scale), c + ": ΔW on " + path);
                    if (maxAbs(want) == 0) for (float v : got) assertTrue(v == 0f, c + ": ΔW on " + path + " is zero, got " + v);
                }
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
        long expected = 0, trainedBaseCount = 0;   // base parameters the adapter trains (BitFit's bias) are counted in the base already
        for (Linear l : pm.adaptedLayers(DEFAULT).values()) {
            long perLayer = c.reference().trainableParameters((int) l.inFeatures(), (int) l.outFeatures());
            long ownBase = trainedBase(l, l.adapter(DEFAULT)).stream().mapToLong(Parameter::numel).sum();
            assertEquals(perLayer, l.adapter(DEFAULT).trainableParameterCount() + ownBase, c + ": trainable parameters on " + l.path());
            expected += perLayer;
            trainedBaseCount += ownBase;
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
        long all = baseCount + expected - trainedBaseCount + frozenPerLayer;
        assertEquals(all, pm.parameterCount(), c + ": all parameters = base + adapter");

        String report = pm.trainableParametersReport();
        Matcher m = REPORT.matcher(report);
        assertTrue(m.matches(), c + ": report format: '" + report + "'");
        assertEquals(expected, Long.parseLong(m.group(1).replace(",", "")), report);
        assertEquals(all, Long.parseLong(m.group(2).replace(",", "")), report);
        assertEquals(String.format(Locale.ROOT, "%.4f", 100.0 * expected / all), m.group(3), report);
    }

    // ---- target modules ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void targetModulesMatchByNameSuffixRegexAndAllLinear(VariantCase c) {
        assertTargets(c, Set.of("layers.0.q", "layers.1.q"), TargetModules.names("q"), "suffix 'q' (not 'head_q')");
        assertTargets(c, Set.of("layers.1.q"), TargetModules.names("layers.1.q"), "exact path");
        assertTargets(c, Set.of("embed", "layers.0.o", "layers.1.o"), TargetModules.names("embed", "o"), "several names");
        assertTargets(c, Set.of("layers.0.q", "layers.0.o", "layers.1.q", "layers.1.o"), TargetModules.regex("layers\\.\\d+\\.(q|o)"), "regex");
        assertTargets(c, Set.of("layers.0.q", "layers.1.q", "head_q"), TargetModules.regex(".*q"), "regex matches the whole path");
        assertTargets(c, linears(TestSupport.nested(SEED)).keySet(), TargetModules.allLinear(), "all-linear");

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

    /**
     * {@code t} adapts exactly {@code expected} on the nested model; for a method that needs a bias
     * (a bias-less target not applicable), a set with a bias-less Linear is refused naming it instead.
     */
    private static void assertTargets(VariantCase c, Set<String> expected, TargetModules t, String what) {
        Map<String, Linear> layers = linears(TestSupport.nested(SEED));
        List<String> biasless = expected.stream().filter(p -> layers.get(p).bias() == null).sorted().toList();
        if (c.applies(VariantCase.BIASLESS_TARGETS) || biasless.isEmpty()) {
            assertEquals(expected, targetsOf(c, t), what);
            return;
        }
        Module model = TestSupport.nested(SEED);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.wrap(model, c.config(t), backend(), 1),
                c + ": " + what + " includes bias-less " + biasless + " (" + c.notApplicable().get(VariantCase.BIASLESS_TARGETS) + ")");
        assertTrue(e.getMessage().contains("'" + biasless.get(0) + "'") && e.getMessage().contains("no bias"), c + ": the refusal names the layer: " + e.getMessage());
        linears(model).values().forEach(l -> assertTrue(l.adapters().isEmpty(), c + ": nothing injected into " + l.path() + " by the refused wrap"));
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
        if (c.applies(VariantCase.DISTINCT_ADAPTERS)) assertTrue(differs(yDefault, ySecond), c + ": switching the adapter switches the output");
        else assertBitEqual(yDefault, ySecond, c + ": switching the adapter keeps the output (" + c.notApplicable().get(VariantCase.DISTINCT_ADAPTERS) + ")");

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

        if (!c.applies(VariantCase.MERGE)) {
            assertMergeRefused(c, pm, x, ySecond);
            return;
        }
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
            if (n.equals(active)) expected.addAll(trainedBase(l, a));
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
