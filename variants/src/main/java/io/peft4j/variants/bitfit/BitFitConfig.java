package io.peft4j.variants.bitfit;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * BitFit (Ben Zaken et al. 2022): only the biases of the target layers train, all of them
 * ({@code all-linear}) or a named subset. PEFT lacks BitFit; peft4j saves it in PEFT's layout with
 * {@code peft_type: "BITFIT"}, field {@code target_modules}, and one key per layer,
 * {@code base_model.model.<layer>.bias} (the trained bias itself).
 */
public record BitFitConfig(TargetModules targetModules) implements AdapterConfig {
    public static final String PEFT_TYPE = "BITFIT";

    public BitFitConfig {
        if (targetModules == null) throw new IllegalArgumentException("BitFit needs target_modules");
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        if (layer.bias() == null) {
            throw new IllegalArgumentException("BitFit: layer '" + layer.path() + "' has no bias to train; leave it out of target_modules");
        }
        return new BitFitAdapter(this, adapterName, layer.inFeatures(), layer.outFeatures());
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    static BitFitConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(BitFitMethod.NAME, BitFitMethod.FIELDS, json);
        return new BitFitConfig(v.getTargets("target_modules"));
    }
}
