package io.peft4j.peft;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import java.util.Map;

/** A method's settings (one record per method) and how it builds an adapter for one layer. */
public interface AdapterConfig {

    /** PEFT's peft_type ("LORA", "LOHA", ...), the key of the method in {@link AdapterMethods}. */
    String peftType();

    TargetModules targetModules();

    /** A new adapter for {@code layer}; {@code seed} makes its initialisation reproducible. */
    Adapter create(Linear layer, String adapterName, Backend backend, long seed);

    /** The fields of adapter_config.json (peft_type and target_modules included). */
    Map<String, Object> toJson();
}
