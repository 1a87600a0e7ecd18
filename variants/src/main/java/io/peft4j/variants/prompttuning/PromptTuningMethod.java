package io.peft4j.variants.prompttuning;

import io.peft4j.nn.Module;
import io.peft4j.nn.PromptHost;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers prompt tuning: peft_type "PROMPT_TUNING", PEFT's PromptTuningConfig fields. */
public final class PromptTuningMethod implements AdapterMethod {
    static final String NAME = "prompt-tuning";

    static final List<ConfigField> FIELDS = List.of(
            // PEFT requires it (no default); 8 here so that '--variant prompt-tuning' alone runs.
            ConfigField.integer("num_virtual_tokens", 8, 1, 4096, "number of learned prompt tokens inserted after the class token"),
            ConfigField.integer("token_dim", 0, 0, 65536, "width of a prompt token; 0 = the model's token width"),
            ConfigField.fixed("num_transformer_submodules", 1, "prompt copies (1: an encoder)"),
            ConfigField.fixed("prompt_tuning_init", "RANDOM", "initialisation (RANDOM: N(0, 1))"),
            ConfigField.ignored("prompt_tuning_init_text", "init text (unused with RANDOM)"),
            ConfigField.ignored("tokenizer_name_or_path", "tokenizer for TEXT init (unused with RANDOM)"),
            ConfigField.ignored("tokenizer_kwargs", "tokenizer arguments (unused with RANDOM)"),
            ConfigField.ignored("num_attention_heads", "the base model's head count (informational)"),
            ConfigField.ignored("num_layers", "the base model's layer count (informational)"),
            ConfigField.fixed("modules_to_save", null, "extra fully trained modules"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return PromptTuningConfig.PEFT_TYPE; }
    @Override public String description() { return "learned prompt tokens prepended to the input, base frozen (Lester et al. 2021)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return false; }

    /**
     * Only a few hundred numbers train (like the scaling-vector methods, which need about ten times
     * LoRA's rate); 1e-2 is that rule applied here, not yet tuned on the full data set.
     */
    @Override public float suggestedLearningRate() { return 1e-2f; }

    @Override
    public String unsupportedModel(Module model) {
        return model instanceof PromptHost ? null : "it needs a model that takes prompt tokens (--model vit)";
    }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return PromptTuningConfig.fromJson(json);
    }
}
