package io.peft4j.variants.lokr;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers LoKr: peft_type "LOKR", PEFT's LoKrConfig fields and defaults. */
public final class LokrMethod implements AdapterMethod {
    static final String NAME = "lokr";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 8, 1, 65536, "rank of a decomposed factor (W2 is full when r >= max(b, d)/2)").shortcut("rank"),
            ConfigField.real("alpha", 8, -Float.MAX_VALUE, true, Float.MAX_VALUE, true, "scale numerator: s = alpha/r").shortcut("alpha"),
            ConfigField.integer("decompose_factor", -1, -1, 1 << 20, "cap on the first factor of each dimension's split (-1: none)"),
            ConfigField.bool("decompose_both", false, "also write W1 as W1a·W1b when r < max(a, c)/2"),
            ConfigField.choice("init_weights", true, List.of(true, false, "lycoris"),
                    "true: PEFT (W1 = 0); false: all kaiming; lycoris: LyCORIS (W2 or W2b = 0)"),
            ConfigField.bool("lycoris_full_scale", false, "LyCORIS's rule: s = 1 on layers whose W1 and W2 are both full"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.fixed("rank_dropout", 0.0, "rank dropout (not implemented for LoKr)"),
            ConfigField.fixed("module_dropout", 0.0, "module dropout (not implemented for LoKr)"),
            ConfigField.fixed("rank_dropout_scale", false, "rank dropout rescaling"),
            ConfigField.fixed("use_effective_conv2d", false, "effective Conv2d decomposition"),
            ConfigField.fixed("rank_pattern", Map.of(), "per-layer ranks"),
            ConfigField.fixed("alpha_pattern", Map.of(), "per-layer alphas"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"),
            ConfigField.fixed("layers_to_transform", null, "layer index filter"),
            ConfigField.fixed("layers_pattern", null, "layer index pattern"),
            ConfigField.fixed("exclude_modules", null, "modules excluded from target_modules"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return LokrConfig.PEFT_TYPE; }
    @Override public String description() { return "Kronecker update s·kron(W1, W2), W2 optionally low-rank (LyCORIS LoKr)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return LokrConfig.fromJson(json);
    }
}
