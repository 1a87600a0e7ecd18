package io.peft4j.cli;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.List;
import java.util.Map;

/**
 * Methods registered only on the test class path (META-INF/services in test resources): they
 * show that the command line needs no code per method, and how it treats a method that fails.
 */
public final class TestMethods {
    private TestMethods() {}

    /** A method whose adapters cannot be built: compare must show its error and run the others. */
    public static final class Failing implements AdapterMethod {
        static final List<ConfigField> FIELDS = List.of(
                ConfigField.integer("r", 3, 1, 16, "rank").shortcut("rank"),
                ConfigField.targets("target_modules", "all-linear", "layers to adapt").shortcut("targets"));

        @Override public String name() { return "failing"; }
        @Override public String peftType() { return "TEST_FAILING"; }
        @Override public String description() { return "test method that throws when its adapter is built"; }
        @Override public List<ConfigField> fields() { return FIELDS; }
        @Override public boolean mergeable() { return false; }

        @Override
        public AdapterConfig configFromJson(Map<String, Object> json) {
            ConfigValues v = ConfigValues.read(name(), FIELDS, json);
            TargetModules t = v.getTargets("target_modules");
            return new AdapterConfig() {
                @Override public String peftType() { return "TEST_FAILING"; }
                @Override public TargetModules targetModules() { return t; }
                @Override public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
                    throw new IllegalStateException("failing method: deliberately broken adapter for layer " + layer.path());
                }
                @Override public Map<String, Object> toJson() { return Map.of("peft_type", "TEST_FAILING", "r", v.getLong("r")); }
            };
        }
    }

    /** LoRA at rank 2 under a name of its own: a second real row for compare. */
    public static final class LoraR2 implements AdapterMethod {
        @Override public String name() { return "lora-r2"; }
        @Override public String peftType() { return "TEST_LORA_R2"; }
        @Override public String description() { return "test method: LoRA with r=2 by default"; }
        @Override public boolean mergeable() { return true; }
        @Override public float suggestedLearningRate() { return 2e-3f; }

        @Override
        public List<ConfigField> fields() {
            return List.of(ConfigField.integer("r", 2, 1, 64, "rank").shortcut("rank"),
                    ConfigField.targets("target_modules", "all-linear", "layers to adapt").shortcut("targets"));
        }

        @Override
        public AdapterConfig configFromJson(Map<String, Object> json) {
            ConfigValues v = ConfigValues.read(name(), fields(), json);
            return AdapterMethods.forType("LORA").configFromJson(Map.of("peft_type", "LORA", "r", v.getLong("r"), "lora_alpha", 4,
                    "target_modules", v.get("target_modules")));
        }
    }
}
