package io.peft4j.variants.adalora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers AdaLoRA: peft_type "ADALORA", PEFT's AdaLoraConfig fields and defaults. */
public final class AdaLoraMethod implements AdapterMethod {
    static final String NAME = "adalora";

    /** PEFT's AdaLoraConfig fields: the implemented ones, then those accepted only at PEFT's default. */
    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("init_r", 12, 1, 65536, "initial rank of every layer (the budget starts at init_r per layer)").shortcut("rank"),
            ConfigField.integer("target_r", 8, 0, 65536, "average rank per layer the budget ends at"),
            ConfigField.real("lora_alpha", 8, 0, false, Float.MAX_VALUE, true, "scale numerator: ΔW = alpha/(init_r + 1e-5)·P·diag(Λ)·Q").shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.integer("tinit", 0, 0, Long.MAX_VALUE, "steps before the budget starts to fall"),
            ConfigField.integer("tfinal", 0, 0, Long.MAX_VALUE, "last steps at the final budget with the rank pattern fixed"),
            ConfigField.integer("deltaT", 1, 1, Long.MAX_VALUE, "mask every deltaT steps while the budget falls"),
            ConfigField.real("beta1", 0.85, 0, true, 1, false, "EMA factor of the sensitivity (importance)"),
            ConfigField.real("beta2", 0.85, 0, true, 1, false, "EMA factor of the uncertainty"),
            ConfigField.real("orth_reg_weight", 0.5, 0, true, Float.MAX_VALUE, true, "weight γ of the orthogonal regulariser"),
            ConfigField.choice("orth_reg_form", "peft", List.of("peft", "squared"),
                    "peft: γ·mean ‖M − I‖_F (PEFT, official code); squared: γ·Σ ‖M − I‖_F² (paper); peft4j's field"),
            ConfigField.integer("total_step", 0, 0, Long.MAX_VALUE, "steps the budget schedule spans (0 = the training run's step count)"),
            ConfigField.ignored("rank_pattern", "kept triplets per layer ({\"<layer>.lora_E\": [true, false, ...]}), written by training"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.ignored("r", "PEFT's LoRA rank field, unused by AdaLoRA (init_r is the rank)"),
            ConfigField.fixed("init_lora_weights", true, "Λ = 0, P and Q ~ N(0, 0.02²)"),
            ConfigField.fixed("use_rslora", false, "rsLoRA scaling"),
            ConfigField.fixed("bias", "none", "bias training (only none)"),
            ConfigField.fixed("fan_in_fan_out", false, "transposed (Conv1D) weights"),
            ConfigField.fixed("use_dora", false, "DoRA (a method of its own)"),
            ConfigField.fixed("lora_bias", false, "a bias on lora_B"),
            ConfigField.fixed("use_qalora", false, "QA-LoRA"),
            ConfigField.ignored("qalora_group_size", "QA-LoRA group size (unused without use_qalora)"),
            ConfigField.ignored("megatron_core", "Megatron module name (unused without megatron_config)"),
            ConfigField.fixed("alpha_pattern", Map.of(), "per-layer alphas"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"),
            ConfigField.fixed("layers_to_transform", null, "layer index filter"),
            ConfigField.fixed("layers_pattern", null, "layer index pattern"),
            ConfigField.fixed("exclude_modules", null, "modules excluded from target_modules"),
            ConfigField.fixed("layer_replication", null, "layer replication"),
            ConfigField.fixed("loftq_config", Map.of(), "LoftQ initialisation"),
            ConfigField.fixed("eva_config", null, "EVA initialisation"),
            ConfigField.fixed("corda_config", null, "CorDA initialisation"),
            ConfigField.fixed("lora_ga_config", null, "LoRA-GA initialisation"),
            ConfigField.fixed("megatron_config", null, "Megatron parallel layers"),
            ConfigField.fixed("trainable_token_indices", null, "trainable embedding tokens"),
            ConfigField.fixed("alora_invocation_tokens", null, "activated LoRA"),
            ConfigField.fixed("arrow_config", null, "Arrow routing"),
            ConfigField.fixed("target_parameters", null, "adapting nn.Parameters"),
            ConfigField.fixed("use_bdlora", null, "BD-LoRA"),
            ConfigField.fixed("kasa_config", null, "KaSA"),
            ConfigField.fixed("monteclora_config", null, "MonteCLoRA"),
            ConfigField.fixed("velora_config", null, "VeLoRA"),
            ConfigField.fixed("ensure_weight_tying", false, "tied embedding weights"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return AdaLoraConfig.PEFT_TYPE; }
    @Override public String description() { return "SVD-form P·diag(Λ)·Q with importance-driven rank budget (Zhang et al. 2023)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return AdaLoraConfig.fromJson(json);
    }
}
