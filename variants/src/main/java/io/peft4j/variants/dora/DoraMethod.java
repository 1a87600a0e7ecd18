package io.peft4j.variants.dora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.lora.LoraMethod;
import java.util.List;
import java.util.Map;

/**
 * Registers DoRA (Liu et al. 2024) under the name "dora". PEFT has no peft_type of its own for it:
 * DoRA is LoRA with {@code use_dora: true}, and that is what its adapter_config.json says (so a
 * saved DoRA adapter loads through LoRA's registration, as PEFT's do). "DORA" is only this
 * registration's key; the fields are LoRA's with use_dora fixed at true.
 */
public final class DoraMethod implements AdapterMethod {
    static final String NAME = "dora";
    static final List<ConfigField> FIELDS = LoraMethod.fields(ConfigField.fixed("use_dora", true, "DoRA (always on here)"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return "DORA"; }
    @Override public String description() { return "LoRA plus a per-row magnitude: m ⊙ (W0 + s·B·A)/‖W0 + s·B·A‖_row (Liu et al. 2024; PEFT's use_dora)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return LoraConfig.fromJson(NAME, FIELDS, json);
    }
}
