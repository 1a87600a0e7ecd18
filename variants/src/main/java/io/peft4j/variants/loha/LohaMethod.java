package io.peft4j.variants.loha;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers LoHa: peft_type "LOHA", PEFT's LoHaConfig fields and defaults. */
public final class LohaMethod implements AdapterMethod {
    static final String NAME = "loha";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 8, 1, 65536, "rank of each of the two factor products").shortcut("rank"),
            ConfigField.real("alpha", 8, -Float.MAX_VALUE, true, Float.MAX_VALUE, true, "scale numerator: s = alpha/r").shortcut("alpha"),
            ConfigField.real("rank_dropout", 0, 0, true, 1, false, "drop output rows of ΔW while training (kept rows / mean)").shortcut("dropout"),
            ConfigField.real("module_dropout", 0, 0, true, 1, false, "skip the whole adapter for a training step"),
            ConfigField.choice("init_weights", true, List.of(true, false, "lycoris"),
                    "true: PEFT (hada_w2_b = 0); false: all kaiming; lycoris: LyCORIS's normal init (hada_w2_a = 0)"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.fixed("use_effective_conv2d", false, "effective Conv2d decomposition"),
            ConfigField.fixed("rank_pattern", Map.of(), "per-layer ranks"),
            ConfigField.fixed("alpha_pattern", Map.of(), "per-layer alphas"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"),
            ConfigField.fixed("layers_to_transform", null, "layer index filter"),
            ConfigField.fixed("layers_pattern", null, "layer index pattern"),
            ConfigField.fixed("exclude_modules", null, "modules excluded from target_modules"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return LohaConfig.PEFT_TYPE; }
    @Override public String description() { return "Hadamard product update s·(W1a·W1b) ⊙ (W2a·W2b) (LyCORIS / FedPara)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return LohaConfig.fromJson(json);
    }
}
