package io.peft4j.variants.ia3;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers (IA)³: peft_type "IA3", PEFT's IA3Config fields and defaults. */
public final class Ia3Method implements AdapterMethod {
    static final String NAME = "ia3";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.targets("feedforward_modules", null,
                    "targets whose input (not output) is scaled, e.g. the FFN down-projection; default none"),
            ConfigField.fixed("init_ia3_weights", true, "l initialised to ones"),
            ConfigField.fixed("fan_in_fan_out", false, "transposed (Conv1D) weights"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"),
            ConfigField.fixed("exclude_modules", null, "modules excluded from target_modules"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return Ia3Config.PEFT_TYPE; }
    @Override public String description() { return "learned scaling of a layer's output (or input, feedforward_modules): l ⊙ y (Liu et al. 2022)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    /** Only scaling vectors train: about ten times LoRA's rate (methods.md). */
    @Override public float suggestedLearningRate() { return 1e-2f; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return Ia3Config.fromJson(json);
    }
}
