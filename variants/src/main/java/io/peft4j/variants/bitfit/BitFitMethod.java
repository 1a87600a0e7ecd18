package io.peft4j.variants.bitfit;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers BitFit: peft_type "BITFIT" (peft4j's own; see {@link BitFitConfig}). */
public final class BitFitMethod implements AdapterMethod {
    static final String NAME = "bitfit";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.targets("target_modules", "all-linear",
                    "layers whose bias trains: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return BitFitConfig.PEFT_TYPE; }
    @Override public String description() { return "trains only the biases of the target layers (Ben Zaken et al. 2022)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    /** Nothing to fold: the trained bias is the layer's bias. */
    @Override public boolean mergeable() { return true; }

    /** Only bias vectors train: about ten times LoRA's rate (methods.md). */
    @Override public float suggestedLearningRate() { return 1e-2f; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return BitFitConfig.fromJson(json);
    }
}
