package io.peft4j.variants.ssf;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * SSF, Scale and Shift Features (Lian et al. 2022): y = γ ⊙ (x·W0ᵀ + b0) + β after each target
 * layer. PEFT lacks SSF; peft4j saves it in PEFT's layout with {@code peft_type: "SSF"}, fields
 * {@code target_modules} and {@code init_ssf_weights}, and per-layer keys {@code ssf_scale} and
 * {@code ssf_shift} ([d_out] each).
 *
 * @param init "identity" (γ = 1, β = 0: the adapted model starts as the base) or "normal" (γ ~ N(1, 0.02²),
 *             β ~ N(0, 0.02²), as the authors' code)
 */
public record SsfConfig(TargetModules targetModules, String init) implements AdapterConfig {
    public static final String PEFT_TYPE = "SSF";

    public SsfConfig {
        if (targetModules == null) throw new IllegalArgumentException("SSF needs target_modules");
        if (!init.equals("identity") && !init.equals("normal")) throw new IllegalArgumentException("SSF init_ssf_weights must be 'identity' or 'normal', got '" + init + "'");
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new SsfAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("target_modules", targetModules.toJson());
        m.put("init_ssf_weights", init);
        return m;
    }

    static SsfConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(SsfMethod.NAME, SsfMethod.FIELDS, json);
        return new SsfConfig(v.getTargets("target_modules"), (String) v.get("init_ssf_weights"));
    }
}
