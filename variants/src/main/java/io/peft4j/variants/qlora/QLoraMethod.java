package io.peft4j.variants.qlora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.ConfigValues;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.lora.LoraMethod;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Registers QLoRA: peft_type "QLORA", LoRA's fields plus the bitsandbytes 4-bit settings and paged_optimizer. */
public final class QLoraMethod implements AdapterMethod {
    static final String NAME = "qlora";
    private static final LoraMethod LORA = new LoraMethod();
    static final List<ConfigField> OWN_FIELDS = List.of(
            ConfigField.choice("bnb_4bit_quant_type", "nf4", List.of("nf4"), "4-bit format of the frozen base weights (nf4)"),
            ConfigField.bool("bnb_4bit_use_double_quant", true, "also quantize the block constants (≈ 4.127 instead of 4.5 bits per weight)"),
            ConfigField.integer("bnb_4bit_blocksize", 64, 32, 4096, "weights per NF4 block (a power of two)"),
            ConfigField.bool("paged_optimizer", false, "AdamW moments in file-backed memory the OS can page out (same math)"));
    static final List<ConfigField> FIELDS = loraFieldsThenQuant();

    private static List<ConfigField> loraFieldsThenQuant() {
        List<ConfigField> f = new ArrayList<>(LORA.fields());
        f.addAll(OWN_FIELDS);
        return List.copyOf(f);
    }

    @Override public String name() { return NAME; }
    @Override public String peftType() { return QLoraConfig.PEFT_TYPE; }
    @Override public String description() { return "LoRA on NF4-quantized frozen base weights (Dettmers et al. 2023)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(NAME, FIELDS, json);
        Map<String, Object> lora = new LinkedHashMap<>(json);
        for (ConfigField f : OWN_FIELDS) lora.remove(f.name());
        lora.put("peft_type", LoraConfig.PEFT_TYPE);
        return new QLoraConfig((LoraConfig) LORA.configFromJson(lora), String.valueOf(v.get("bnb_4bit_quant_type")),
                v.getBool("bnb_4bit_use_double_quant"), v.getInt("bnb_4bit_blocksize"), v.getBool("paged_optimizer"));
    }
}
