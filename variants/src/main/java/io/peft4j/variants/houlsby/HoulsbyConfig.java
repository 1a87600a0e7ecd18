package io.peft4j.variants.houlsby;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Houlsby adapters (Houlsby et al. 2019): after each target layer, out = z + GELU(z·W_dᵀ + b_d)·W_uᵀ + b_u
 * with a bottleneck of {@code bottleneck_size} units, weights ~ truncated N(0, init_scale²) (2 std),
 * biases 0, so the module starts near the identity. Not mergeable (the bottleneck is non-linear).
 * PEFT lacks it; peft4j saves it in PEFT's layout with {@code peft_type: "HOULSBY"}, fields
 * {@code target_modules}, {@code bottleneck_size}, {@code init_scale}, and per-layer keys
 * {@code adapter_down.weight} [m, d_out], {@code adapter_down.bias} [m], {@code adapter_up.weight}
 * [d_out, m], {@code adapter_up.bias} [d_out]. GELU is the exact erf form (torch.nn.GELU's default;
 * the authors' TF code uses the tanh approximation, within ~1e-3 of it).
 */
public record HoulsbyConfig(TargetModules targetModules, int bottleneckSize, float initScale) implements AdapterConfig {
    public static final String PEFT_TYPE = "HOULSBY";

    public HoulsbyConfig {
        if (targetModules == null) throw new IllegalArgumentException("Houlsby needs target_modules");
        if (bottleneckSize <= 0) throw new IllegalArgumentException("Houlsby bottleneck_size must be > 0, got " + bottleneckSize);
        if (!(initScale > 0) || Float.isInfinite(initScale)) throw new IllegalArgumentException("Houlsby init_scale must be > 0, got " + initScale);
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new HoulsbyAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("target_modules", targetModules.toJson());
        m.put("bottleneck_size", bottleneckSize);
        m.put("init_scale", initScale);
        return m;
    }

    static HoulsbyConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(HoulsbyMethod.NAME, HoulsbyMethod.FIELDS, json);
        return new HoulsbyConfig(v.getTargets("target_modules"), v.getInt("bottleneck_size"), v.getFloat("init_scale"));
    }
}
