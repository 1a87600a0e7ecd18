package io.peft4j.variants.vera;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers VeRA: peft_type "VERA", PEFT's VeraConfig fields and defaults. */
public final class VeraMethod implements AdapterMethod {
    static final String NAME = "vera";

    /** PEFT's VeraConfig fields: the implemented ones, then those accepted only at PEFT's default. */
    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 256, 1, 65536, "rank of the shared random projections").shortcut("rank"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.integer("projection_prng_key", 0, Long.MIN_VALUE, Long.MAX_VALUE,
                    "Philox key of the shared projections vera_A, vera_B"),
            ConfigField.bool("save_projection", true, "store vera_A, vera_B in the file (false: rebuilt from projection_prng_key)"),
            ConfigField.real("vera_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.real("d_initial", 0.1, -Float.MAX_VALUE, true, Float.MAX_VALUE, true, "initial value of every vera_lambda_d"),
            ConfigField.fixed("fan_in_fan_out", false, "transposed (Conv1D) weights"),
            ConfigField.fixed("bias", "none", "bias training (only none)"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"),
            ConfigField.fixed("init_weights", true, "PEFT's initialisation (lambda_b = 0, lambda_d = d_initial)"),
            ConfigField.fixed("layers_to_transform", null, "layer index filter"),
            ConfigField.fixed("layers_pattern", null, "layer index pattern"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return VeraConfig.PEFT_TYPE; }
    @Override public String description() { return "shared frozen random A, B with trained per-layer scalings (Kopiczko et al. 2024)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    /** VeRA trains only scaling vectors: about ten times LoRA's rate (PEFT's VeRA: 0.78 rot90 accuracy at 1e-2 vs 0.10 at 1e-3). */
    @Override
    public float suggestedLearningRate() {
        return 1e-2f;
    }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return VeraConfig.fromJson(json);
    }
}
