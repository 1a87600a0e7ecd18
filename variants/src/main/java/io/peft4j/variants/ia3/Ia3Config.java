package io.peft4j.variants.ia3;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * (IA)³ (Liu et al. 2022) as PEFT's IA3Config: a learned vector l per target layer, init ones,
 * scaling the layer's output (y = l ⊙ (x·W0ᵀ + b0)) or, for layers named in feedforward_modules,
 * its input (y = (x ⊙ l)·W0ᵀ + b0).
 *
 * @param feedforwardModules the targets whose input is scaled, or null for none (PEFT's default)
 */
public record Ia3Config(TargetModules targetModules, TargetModules feedforwardModules) implements AdapterConfig {
    public static final String PEFT_TYPE = "IA3";

    public Ia3Config {
        if (targetModules == null) throw new IllegalArgumentException("IA3 needs target_modules");
    }

    /** Whether the layer at {@code path} scales its input. */
    public boolean isFeedforward(String path) {
        return feedforwardModules != null && feedforwardModules.matches(path);
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new Ia3Adapter(this, layer, adapterName, isFeedforward(layer.path()));
    }

    /** PEFT's adapter_config.json fields for IA3. */
    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("target_modules", targetModules.toJson());
        m.put("feedforward_modules", feedforwardModules == null ? null : feedforwardModules.toJson());
        m.put("fan_in_fan_out", false);
        m.put("init_ia3_weights", true);
        m.put("modules_to_save", null);
        m.put("exclude_modules", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        m.put("base_model_name_or_path", null);
        return m;
    }

    static Ia3Config fromJson(Map<String, Object> json) {
        Map<String, Object> j = new LinkedHashMap<>(json);
        if (j.containsKey("feedforward_modules") && j.get("feedforward_modules") == null) j.remove("feedforward_modules");   // PEFT writes null for none
        ConfigValues v = ConfigValues.read(Ia3Method.NAME, Ia3Method.FIELDS, j);
        Object ff = v.get("feedforward_modules");
        return new Ia3Config(v.getTargets("target_modules"), ff == null ? null : TargetModules.fromJson(ff));
    }
}
