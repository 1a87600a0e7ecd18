package io.peft4j.variants.lora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers LoRA: peft_type "LORA", PEFT's LoraConfig fields and defaults. */
public final class LoraMethod implements AdapterMethod {
    static final String NAME = "lora";

    /** PEFT's LoraConfig fields: the implemented ones, then those accepted only at PEFT's default. */
    static final List<ConfigField> FIELDS = fields(ConfigField.bool("use_dora", false,
            "DoRA: also train a per-output-row magnitude (as method dora)"));

    /** LoRA's fields with the given use_dora field (DoRA registers them with use_dora fixed at true). */
    public static List<ConfigField> fields(ConfigField useDora) {
        return List.of(
            ConfigField.integer("r", 8, 1, 65536, "rank of the update B·A").shortcut("rank"),
            ConfigField.real("lora_alpha", 8, 0, false, Float.MAX_VALUE, true, "scale numerator: ΔW = (alpha/r)·B·A").shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.bool("use_rslora", false, "scale by alpha/sqrt(r) instead of alpha/r (rsLoRA)"),
            ConfigField.choice("init_lora_weights", true, List.of(true, "gaussian"),
                    "true: A kaiming-uniform, B = 0; gaussian: A ~ N(0, 1/r²), B = 0"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"),
            ConfigField.fixed("bias", "none", "bias training (only none)"),
            ConfigField.fixed("fan_in_fan_out", false, "transposed (Conv1D) weights"),
            useDora,
            ConfigField.fixed("lora_bias", false, "a bias on lora_B"),
            ConfigField.fixed("use_qalora", false, "QA-LoRA"),
            ConfigField.ignored("qalora_group_size", "QA-LoRA group size (unused without use_qalora)"),
            ConfigField.ignored("megatron_core", "Megatron module name (unused without megatron_config)"),
            ConfigField.map("rank_pattern", ConfigField.integer("r", 8, 1, 65536, "rank"),
                    "per-layer ranks {key: r}: a layer whose path ends in .key (key a regex) gets r"),
            ConfigField.map("alpha_pattern", ConfigField.real("lora_alpha", 8, 0, false, Float.MAX_VALUE, true, "alpha"),
                    "per-layer alphas {key: alpha}, matched as rank_pattern"),
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
    }

    @Override public String name() { return NAME; }
    @Override public String peftType() { return LoraConfig.PEFT_TYPE; }
    @Override public String description() { return "low-rank update W0 + (alpha/r)·B·A (Hu et al. 2021)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return LoraConfig.fromJson(json);
    }
}
