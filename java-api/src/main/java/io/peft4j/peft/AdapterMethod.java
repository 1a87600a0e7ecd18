package io.peft4j.peft;

import java.util.Map;

/** A PEFT method, registered through java.util.ServiceLoader so that load(dir) finds it by peft_type. */
public interface AdapterMethod {
    String peftType();

    /** The config saved in adapter_config.json, validated. */
    AdapterConfig configFromJson(Map<String, Object> json);
}
