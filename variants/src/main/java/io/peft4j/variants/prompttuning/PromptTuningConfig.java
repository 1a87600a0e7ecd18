package io.peft4j.variants.prompttuning;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Module;
import io.peft4j.nn.PromptHost;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.ModelAdapter;
import io.peft4j.peft.ModelAdapterConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Prompt tuning (Lester et al. 2021; PEFT's PromptTuningConfig, peft_type PROMPT_TUNING):
 * {@code num_virtual_tokens} learned token embeddings inserted into every input sequence of a
 * {@link PromptHost} model (the ViT puts them right after its class token), the base frozen. The
 * weights file holds one tensor, PEFT's key {@code prompt_embeddings} [num_virtual_tokens, token_dim];
 * init as PEFT's RANDOM (torch.nn.Embedding's N(0, 1)).
 *
 * @param numVirtualTokens the prompt length
 * @param tokenDim         the model's token width; 0 = take it from the model
 */
public record PromptTuningConfig(int numVirtualTokens, int tokenDim) implements ModelAdapterConfig {
    public static final String PEFT_TYPE = "PROMPT_TUNING";
    /** PEFT's key of the prompt in adapter_model.safetensors. */
    public static final String KEY = "prompt_embeddings";

    public PromptTuningConfig {
        if (numVirtualTokens <= 0) throw new IllegalArgumentException("prompt tuning num_virtual_tokens must be > 0, got " + numVirtualTokens);
        if (tokenDim < 0) throw new IllegalArgumentException("prompt tuning token_dim must be >= 0 (0 = the model's), got " + tokenDim);
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public ModelAdapter attach(Module model, String adapterName, Backend backend, long seed) {
        if (!(model instanceof PromptHost host)) {
            throw new IllegalArgumentException("prompt tuning needs a model that takes prompt tokens (e.g. --model vit); "
                    + model.getClass().getSimpleName() + " does not");
        }
        if (tokenDim != 0 && tokenDim != host.tokenWidth()) {
            throw new IllegalArgumentException("prompt tuning token_dim " + tokenDim + " does not match the model's token width " + host.tokenWidth());
        }
        return new PromptTuningAdapter(host, adapterName, numVirtualTokens, backend, seed);
    }

    /** PEFT's adapter_config.json fields for prompt tuning (num_transformer_submodules 1: an encoder). */
    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("num_virtual_tokens", numVirtualTokens);
        m.put("token_dim", tokenDim);
        m.put("num_transformer_submodules", 1);
        m.put("prompt_tuning_init", "RANDOM");
        m.put("task_type", null);
        m.put("inference_mode", true);
        m.put("base_model_name_or_path", null);
        return m;
    }

    static PromptTuningConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(PromptTuningMethod.NAME, PromptTuningMethod.FIELDS, json);
        return new PromptTuningConfig(v.getInt("num_virtual_tokens"), v.getInt("token_dim"));
    }
}
