package io.peft4j.variants.ssf;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers SSF: peft_type "SSF" (peft4j's own; see {@link SsfConfig}). */
public final class SsfMethod implements AdapterMethod {
    static final String NAME = "ssf";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.choice("init_ssf_weights", "identity", List.of("identity", "normal"),
                    "identity: scale 1, shift 0; normal: scale ~ N(1, 0.02²), shift ~ N(0, 0.02²) as the authors' code"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return SsfConfig.PEFT_TYPE; }
    @Override public String description() { return "per-channel scale and shift after a layer: γ ⊙ y + β (Lian et al. 2022)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    /** Only scaling vectors train: about ten times LoRA's rate (methods.md). */
    @Override public float suggestedLearningRate() { return 1e-2f; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return SsfConfig.fromJson(json);
    }
}
