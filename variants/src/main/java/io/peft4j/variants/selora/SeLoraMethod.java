package io.peft4j.variants.selora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers SeLoRA: peft_type "SELORA" (peft4j's; PEFT lacks the method), fields in {@link SeLoraConfig}. */
public final class SeLoraMethod implements AdapterMethod {
    static final String NAME = "selora";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("init_r", 1, 1, 65536, "rank every layer starts at").shortcut("rank"),
            ConfigField.real("lora_alpha", 8, 0, false, Float.MAX_VALUE, true, "scale numerator: s = alpha/init_r").shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.integer("expand_step", 40, 1, Integer.MAX_VALUE, "test every layer for one more rank every this many steps"),
            ConfigField.real("expand_threshold", 1.3, 0, true, Float.MAX_VALUE, true, "grow when F_exp / F_orig >= this (lambda)"),
            ConfigField.integer("window", 1, 1, 100000, "steps F_orig is averaged over (1 = the step's own)"),
            ConfigField.choice("scale", "initial", List.of("initial", "current"), "initial: s = alpha/init_r fixed (the code); current: alpha/r"),
            ConfigField.choice("trial_row_init", "init", List.of("init", "zero"), "trial row: A's init, or zero until the first growth (the code)"),
            ConfigField.integer("r_max", 0, 0, 65536, "largest rank a layer may reach (0 = no limit)"),
            ConfigField.bool("keep_optimizer_state", false, "a grown layer keeps its rows' Adam state (false: restarts at zero, as the code)"),
            ConfigField.ignored("rank_pattern", "rank reached per layer ({\"<layer>\": r}), written by training"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return SeLoraConfig.PEFT_TYPE; }
    @Override public String description() { return "LoRA that grows each layer's rank from 1 by a Fisher-ratio test (Mao et al. 2024)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return SeLoraConfig.fromJson(json);
    }
}
