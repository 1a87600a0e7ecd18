package io.peft4j.variants.dylora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers DyLoRA: peft_type "DYLORA" (peft4j's; PEFT lacks the method), fields in {@link DyLoraConfig}. */
public final class DyLoraMethod implements AdapterMethod {
    static final String NAME = "dylora";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 8, 1, 65536, "maximum rank; training samples b in 1..r each step").shortcut("rank"),
            ConfigField.real("lora_alpha", 16, 0, false, Float.MAX_VALUE, true, "scale numerator: ΔW at rank b = (alpha/b)·B[:, :b]·A[:b]").shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.bool("frozen", true, "only row b-1 of A and column b-1 of B get gradient (the reference training)"),
            ConfigField.integer("rank_seed", 0, Long.MIN_VALUE, Long.MAX_VALUE, "seed of the per-step rank sampling"),
            ConfigField.integer("eval_rank", 0, 0, 65536, "rank used by evaluation and merge (0 = r)"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return DyLoraConfig.PEFT_TYPE; }
    @Override public String description() { return "LoRA trained at a sampled rank each step, usable at any rank (Valipour et al. 2023)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return DyLoraConfig.fromJson(json);
    }
}
