package io.peft4j.peft;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PEFT's modules_to_save (a classification head trained whole beside the adapter): trainable
 * while its adapter is active, saved under PEFT's keys (base_model.model.&lt;module&gt;.&lt;param&gt;,
 * as PEFT's ModulesToSaveWrapper writes them) and listed in adapter_config.json, restored on load.
 * The model is the test MLP (fc1 13→17, fc2 17→11, fc3 11→5): LoRA on fc1, fc3 as the head.
 */
class ModulesToSaveTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static LoraConfig loraOnFc1() {
        return LoraConfig.builder().r(3).alpha(6).targetModules("fc1").build();
    }

    private static Set<String> trainableNames(Module m) {
        Set<String> out = new TreeSet<>();
        m.namedParameters().forEach((n, p) -> {
            if (p.requiresGrad()) out.add(n);
        });
        return out;
    }

    @Test
    void theHeadTrainsWithTheAdapterAndTheRestStaysFrozen() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), loraOnFc1(), backend(), 2, List.of("fc3"));
        assertEquals(Set.of("fc1.lora_A.default.weight", "fc1.lora_B.default.weight", "fc3.weight", "fc3.bias"), trainableNames(pm));
        assertEquals(List.of("fc3"), pm.modulesToSave(PeftModel.DEFAULT_ADAPTER));
        // LoRA 3·(13 + 17) = 90, fc3 11·5 + 5 = 60
        assertEquals(150, pm.trainableParameterCount());
        pm.mergeAndUnload();
        assertFalse(pm.baseModel().namedParameters().get("fc3.weight").requiresGrad(), "unloaded: the head is frozen again");
    }

    @Test
    void savedUnderPeftsKeysAndRestoredOnLoad(@TempDir Path dir) throws Exception {
        SplittableRandom r = rng("modules_to_save round trip");
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), loraOnFc1(), backend(), 2, List.of("fc3"));
        randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, r, 0.5);
        Parameter w3 = pm.namedParameters().get("fc3.weight"), b3 = pm.namedParameters().get("fc3.bias");
        w3.value().copyFrom(normal(r, (int) w3.numel(), 0.5));   // as if trained: no longer the base's values
        b3.value().copyFrom(normal(r, (int) b3.numel(), 0.5));
        pm.save(dir);

        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(Set.of("base_model.model.fc1.lora_A.weight", "base_model.model.fc1.lora_B.weight",
                    "base_model.model.fc3.weight", "base_model.model.fc3.bias"), Set.copyOf(f.names()));
            assertArrayEquals(w3.value().toFloatArray(), f.readF32("base_model.model.fc3.weight"));
            assertArrayEquals(new long[] {5, 11}, f.entry("base_model.model.fc3.weight").shape());
        }
        Map<?, ?> config = JSON.readValue(dir.resolve(PeftModel.CONFIG_FILE).toFile(), Map.class);
        assertEquals(List.of("fc3"), config.get("modules_to_save"));

        float[] x = normal(r, 4 * 13, 1.0);
        float[] expected = forward(pm, x, 4);
        Module fresh = TestSupport.mlp(1);   // same base, fc3 still at its initial values
        PeftModel loaded = PeftModel.load(fresh, dir);
        assertBitEqual(w3.value().toFloatArray(), fresh.namedParameters().get("fc3.weight").value().toFloatArray(), "fc3.weight restored");
        assertBitEqual(expected, forward(loaded, x, 4), "the loaded model computes what the saved one did");
        assertEquals(List.of("fc3"), loaded.modulesToSave(PeftModel.DEFAULT_ADAPTER));
        assertTrue(loaded.namedParameters().get("fc3.bias").requiresGrad());
    }

    @Test
    void aFileWithoutTheHeadsTensorsIsRefused(@TempDir Path dir) throws Exception {
        PeftModel.wrap(TestSupport.mlp(1), loraOnFc1(), backend(), 2).save(dir);
        Path configFile = dir.resolve(PeftModel.CONFIG_FILE);
        @SuppressWarnings("unchecked")
        Map<String, Object> config = JSON.readValue(configFile.toFile(), Map.class);
        config.put("modules_to_save", List.of("fc3"));
        Files.writeString(configFile, JSON.writeValueAsString(config));
        Module fresh = TestSupport.mlp(1);
        float[] before = fresh.namedParameters().get("fc3.weight").value().toFloatArray();
        assertThrowsNaming(IllegalArgumentException.class, () -> PeftModel.load(fresh, dir), "missing tensor 'base_model.model.fc3.weight'");
        assertBitEqual(before, fresh.namedParameters().get("fc3.weight").value().toFloatArray(), "a failed load leaves the head as it was");
        assertTrue(fresh.namedParameters().get("fc3.weight").requiresGrad(), "and trainable as a fresh model's parameters are");

        config.put("modules_to_save", "fc3");
        Files.writeString(configFile, JSON.writeValueAsString(config));
        assertThrowsNaming(IllegalArgumentException.class, () -> PeftModel.load(TestSupport.mlp(1), dir), "modules_to_save must be null or a list");
    }

    /** As PEFT's inject_adapter: a module in modules_to_save is skipped by target matching (all-linear leaves the head whole). */
    @Test
    void allLinearLeavesTheSavedHeadUnadapted() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), LoraConfig.builder().r(2).targetModules(TargetModules.allLinear()).build(),
                backend(), 2, List.of("fc3"));
        assertEquals(Set.of("fc1", "fc2"), pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).keySet());
        assertTrue(trainableNames(pm).containsAll(Set.of("fc3.weight", "fc3.bias")));
    }

    @Test
    void badNamesAreRefused() {
        assertThrowsNaming(IllegalArgumentException.class,
                () -> PeftModel.wrap(TestSupport.mlp(1), loraOnFc1(), backend(), 2, List.of("classifier")),
                "modules_to_save 'classifier' names no module", "fc3");
        assertThrowsNaming(IllegalArgumentException.class,
                () -> PeftModel.wrap(TestSupport.mlp(1), loraOnFc1(), backend(), 2, List.of("fc1")),
                "target_modules [fc1] matches no Linear layer");
        Module mlp = TestSupport.mlp(1);
        PeftModel pm = PeftModel.wrap(mlp, loraOnFc1(), backend(), 2, List.of("fc3"));
        assertThrowsNaming(IllegalArgumentException.class,
                () -> pm.addAdapter("second", LoraConfig.builder().r(2).targetModules("fc2").build(), 3, List.of("fc3")),
                "'fc3' is already trained by adapter 'default'");
        assertEquals(Set.of(PeftModel.DEFAULT_ADAPTER), pm.adapterConfigs().keySet(), "the refused adapter was not added");
        pm.addAdapter("second", LoraConfig.builder().r(2).targetModules("fc2").build(), 3);
        pm.setActiveAdapter("second");
        assertFalse(mlp.namedParameters().get("fc3.weight").requiresGrad(), "the head trains only while its adapter is active");
        pm.deleteAdapter(PeftModel.DEFAULT_ADAPTER);
        assertEquals(Set.of("fc2.lora_A.second.weight", "fc2.lora_B.second.weight"), trainableNames(pm));
    }
}
