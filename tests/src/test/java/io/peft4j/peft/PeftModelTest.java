package io.peft4j.peft;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.baseParameters;
import static io.peft4j.variants.TestSupport.differs;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.linears;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.lora.LoraMethod;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** PeftModel's verbs beyond the per-method contract, and target_modules parsing; LoRA as the method. */
class PeftModelTest {
    private static final String DEFAULT = PeftModel.DEFAULT_ADAPTER;

    private static LoraConfig lora(TargetModules t) {
        return LoraConfig.builder().r(4).alpha(8).targetModules(t).build();
    }

    @Test
    void wrapFreezesTheBaseAndTrainsTheAdapter() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.names("fc2")));
        baseParameters(pm.baseModel()).forEach((n, p) -> assertFalse(p.requiresGrad(), n));
        assertEquals(Set.of("fc2.lora_A.default.weight", "fc2.lora_B.default.weight"),
                Set.copyOf(pm.namedParameters().entrySet().stream().filter(e -> e.getValue().requiresGrad()).map(Map.Entry::getKey).toList()),
                "live names carry the adapter name, as PEFT's");
        assertEquals(DEFAULT, pm.activeAdapter());
        assertEquals(Set.of("fc2"), pm.adaptedLayers(DEFAULT).keySet());
    }

    @Test
    void reportMatchesPeftsFormatExactly() {
        // Mlp 13-17-11-5: 238 + 198 + 60 = 496 base; LoRA r=8 on all three: 8·(30 + 28 + 16) = 592.
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), LoraConfig.builder().r(8).alpha(16).targetModules(TargetModules.allLinear()).build());
        assertEquals("trainable params: 592 || all params: 1,088 || trainable%: 54.4118", pm.trainableParametersReport());
    }

    /**
     * With adapters on different layer sets, activating one must switch every layer: a layer that
     * only carries the other adapter must stop applying it (PEFT: set_adapter makes layers without
     * that adapter inactive).
     */
    @Test
    void activatingAnAdapterDeactivatesLayersWithoutIt(@TempDir Path dir) {
        SplittableRandom r = rng("partial active");
        float[] x = normal(r, 5 * 13, 1.0);
        PeftModel pm = PeftModel.wrap(TestSupport.nested(3), lora(TargetModules.allLinear()), backend(), 1);
        randomizeAdapter(pm, DEFAULT, r, 0.4);
        pm.addAdapter("second", lora(TargetModules.names("q")), 2);
        randomizeAdapter(pm, "second", r, 0.4);
        pm.saveAdapter("second", dir.resolve("second"));
        float[] expected = forward(PeftModel.load(TestSupport.nested(3), dir.resolve("second")), x, 5);

        pm.setActiveAdapter("second");
        for (Parameter p : pm.trainableParameters()) assertTrue(isOf(pm, "second", p), "only 'second' trains");
        assertBitEqual(expected, forward(pm, x, 5), "'second' active: base + second's delta only (embed, o, head_q unadapted)");
    }

    /** Adding an adapter on other layers must not switch those layers to it while another adapter is active. */
    @Test
    void addingAnAdapterKeepsTheActiveOneEverywhere(@TempDir Path dir) {
        SplittableRandom r = rng("add keeps active");
        float[] x = normal(r, 5 * 13, 1.0);
        PeftModel pm = PeftModel.wrap(TestSupport.nested(3), lora(TargetModules.names("o")), backend(), 1);
        randomizeAdapter(pm, DEFAULT, r, 0.4);
        float[] yDefault = forward(pm, x, 5);
        pm.addAdapter("second", lora(TargetModules.names("q")), 2);
        randomizeAdapter(pm, "second", r, 0.4);
        assertEquals(DEFAULT, pm.activeAdapter());
        assertBitEqual(yDefault, forward(pm, x, 5), "'default' is still the only adapter applied");
    }

    private static boolean isOf(PeftModel pm, String adapter, Parameter p) {
        return pm.adaptedLayers(adapter).values().stream().anyMatch(l -> l.adapter(adapter).parameters().contains(p));
    }

    @Test
    void adapterNamesAreCheckedAndUnique() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.names("fc1")));
        assertThrowsNaming(IllegalArgumentException.class, () -> pm.addAdapter(DEFAULT, lora(TargetModules.names("fc1")), 0),
                "adapter '" + DEFAULT + "' already exists");
        for (String bad : List.of("", " ", "a.b", "a/b")) {
            assertThrowsNaming(IllegalArgumentException.class, () -> pm.addAdapter(bad, lora(TargetModules.names("fc1")), 0),
                    "bad adapter name '" + bad + "'");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pm.setActiveAdapter("missing"));
        assertTrue(e.getMessage().contains("missing") && e.getMessage().contains(DEFAULT), e.getMessage());
        assertEquals(Set.of(DEFAULT), pm.adapterConfigs().keySet());
    }

    @Test
    void trainingAMergedAdapterIsRefused() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.names("fc1")));
        pm.merge();
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(true, 0);
            Tensor x = ctx.allocate(2, 13);
            backend().fill(1f, x);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> pm.forward(ctx, x));
            assertTrue(e.getMessage().contains("merged") && e.getMessage().contains("fc1"), e.getMessage());
        }
        pm.merge(); // idempotent
        pm.unmerge();
        pm.unmerge(); // idempotent
        pm.adaptedLayers(DEFAULT).values().forEach(l -> assertFalse(l.isMerged(DEFAULT)));
    }

    @Test
    void deleteAdapterRemovesItEverywhereAndUnmergesFirst() {
        SplittableRandom r = rng("delete");
        float[] x = normal(r, 4 * 13, 1.0);
        float[] yBase = forward(TestSupport.mlp(1), x, 4);
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.allLinear()));
        randomizeAdapter(pm, DEFAULT, r, 0.4);
        pm.addAdapter("second", lora(TargetModules.names("fc1")), 5);
        randomizeAdapter(pm, "second", r, 0.4);
        pm.merge();
        pm.deleteAdapter(DEFAULT);
        assertEquals(Set.of("second"), pm.adapterConfigs().keySet());
        assertEquals("second", pm.activeAdapter(), "the remaining adapter becomes active");
        linears(pm.baseModel()).values().forEach(l -> assertFalse(l.adapters().containsKey(DEFAULT), l.path()));
        pm.disableAdapters();
        assertRelClose(yBase, forward(pm, x, 4), 2e-5, "deleting a merged adapter unmerged it");
        pm.deleteAdapter("second");
        assertNull(pm.activeAdapter());
        assertThrowsNaming(IllegalStateException.class, pm::merge, "no adapter left");
        assertThrowsNaming(IllegalArgumentException.class, () -> pm.deleteAdapter("second"), "no adapter 'second' (have [])");
    }

    @Test
    void loadRefusesAConfigWhoseTargetsMatchNothing(@TempDir Path dir) {
        PeftModel pm = PeftModel.wrap(TestSupport.nested(1), lora(TargetModules.names("q")));
        pm.save(dir);
        Module mlp = TestSupport.mlp(1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(mlp, dir));
        assertTrue(e.getMessage().contains("fc1") && e.getMessage().contains("q"), e.getMessage());
        linears(mlp).values().forEach(l -> assertTrue(l.adapters().isEmpty()));
    }

    @Test
    void loadNeedsBothFiles(@TempDir Path dir) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(TestSupport.mlp(1), dir));
        assertTrue(e.getMessage().contains(PeftModel.CONFIG_FILE), e.getMessage());
    }

    @Test
    void mergeAndUnloadKeepsTheMergedWeights() {
        SplittableRandom r = rng("unload");
        float[] x = normal(r, 3 * 13, 1.0);
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.names("fc1", "fc3")));
        randomizeAdapter(pm, DEFAULT, r, 0.4);
        float[] y = forward(pm, x, 3);
        Module plain = pm.mergeAndUnload();
        assertTrue(differs(forward(TestSupport.mlp(1), x, 3), forward(plain, x, 3)));
        assertRelClose(y, forward(plain, x, 3), 2e-5, "unloaded model output");
        assertEquals(baseParameters(plain).keySet(), plain.namedParameters().keySet());
    }

    @Test
    void targetModulesFromJsonAndBack() {
        assertInstanceOf(TargetModules.Names.class, TargetModules.fromJson(List.of("q", "v")));
        assertEquals(List.of("q", "v"), TargetModules.fromJson(List.of("q", "v")).toJson());
        assertInstanceOf(TargetModules.AllLinear.class, TargetModules.fromJson("all-linear"));
        assertEquals("all-linear", TargetModules.allLinear().toJson());
        TargetModules re = TargetModules.fromJson(".*\\.(q|v)");
        assertInstanceOf(TargetModules.Regex.class, re);
        assertEquals(".*\\.(q|v)", re.toJson());
        assertTrue(re.matches("layers.3.q"));
        assertFalse(re.matches("layers.3.qq"));
        assertThrowsNaming(IllegalArgumentException.class, () -> TargetModules.fromJson(5), "target_modules", "got 5");
        assertThrowsNaming(IllegalArgumentException.class, () -> TargetModules.fromJson(null), "target_modules", "got null");
        assertThrowsNaming(IllegalArgumentException.class, () -> TargetModules.fromJson(List.of("q", 3)),
                "target_modules entries must be strings, got 3");
        assertThrowsNaming(IllegalArgumentException.class, () -> TargetModules.names(), "target_modules must name at least one module");
        assertThrowsNaming(IllegalArgumentException.class, () -> TargetModules.names("q", " "), "target_modules contains a blank name");
        TargetModules q = TargetModules.names("q");
        assertTrue(q.matches("q"));
        assertTrue(q.matches("layers.0.q"));
        assertFalse(q.matches("head_q"));
        assertFalse(q.matches("q.proj"));
    }

    @Test
    void loraIsRegisteredByPeftType() {
        assertInstanceOf(LoraMethod.class, AdapterMethods.forType("LORA"));
        assertTrue(AdapterMethods.all().containsKey("LORA"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AdapterMethods.forType("NOPE"));
        assertTrue(e.getMessage().contains("NOPE") && e.getMessage().contains("LORA"), e.getMessage());
    }

    /** wrap freezes the base before injecting; when injection fails the base is trainable again. */
    @Test
    void aFailedWrapLeavesTheBaseAsItWas() {
        Module m = TestSupport.mlp(1);
        m.namedParameters().get("fc2.bias").setRequiresGrad(false);
        assertThrowsNaming(IllegalArgumentException.class, () -> PeftModel.wrap(m, lora(TargetModules.names("nope"))),
                "target_modules [nope] matches no Linear layer");
        baseParameters(m).forEach((n, p) -> assertEquals(!n.equals("fc2.bias"), p.requiresGrad(), n));
    }

    @Test
    void savingNeedsAnExistingAdapterAndTagsTheFileAsPeftDoes(@TempDir Path dir) throws java.io.IOException {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora(TargetModules.names("fc1")));
        assertThrowsNaming(IllegalArgumentException.class, () -> pm.saveAdapter("missing", dir), "no adapter 'missing'");
        pm.save(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(Map.of("format", "pt"), f.metadata(), "PEFT's loader expects format=pt");
        }
    }

    @Test
    void adaptedLayersAreLinears() {
        PeftModel pm = PeftModel.wrap(TestSupport.nested(1), lora(TargetModules.allLinear()));
        Map<String, Linear> layers = pm.adaptedLayers(DEFAULT);
        assertEquals(linears(pm.baseModel()).keySet(), layers.keySet());
        assertEquals(pm.baseModel().namedModules().keySet(), pm.namedModules().keySet());
    }
}
