package io.peft4j.variants.lora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import java.util.Map;

/** Registers LoRA for PeftModel.load by peft_type "LORA". */
public final class LoraMethod implements AdapterMethod {
    @Override
    public String peftType() {
        return LoraConfig.PEFT_TYPE;
    }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return LoraConfig.fromJson(json);
    }
}
