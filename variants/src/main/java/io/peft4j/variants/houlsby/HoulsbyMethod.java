package io.peft4j.variants.houlsby;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers Houlsby adapters: peft_type "HOULSBY" (peft4j's own; see {@link HoulsbyConfig}). */
public final class HoulsbyMethod implements AdapterMethod {
    static final String NAME = "houlsby";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.targets("target_modules", "all-linear",
                    "layers followed by an adapter: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.integer("bottleneck_size", 64, 1, 65536, "units of the bottleneck (the authors' code: 64)").shortcut("rank"),
            ConfigField.real("init_scale", 1e-3, 0, false, 1, true, "std of the truncated-normal weight init (near identity)"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return HoulsbyConfig.PEFT_TYPE; }
    @Override public String description() { return "bottleneck adapter after a layer: z + GELU(z·Wdᵀ + bd)·Wuᵀ + bu (Houlsby et al. 2019)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return false; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return HoulsbyConfig.fromJson(json);
    }
}
