package io.peft4j.variants.prompttuning;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.PromptHost;
import io.peft4j.peft.ModelAdapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.Map;

/** The learned prompt [num_virtual_tokens, token width] of one adapter, attached to its host model. */
final class PromptTuningAdapter implements ModelAdapter {
    private final PromptHost host;
    private final String name;
    private final Parameter prompt;

    PromptTuningAdapter(PromptHost host, String name, int tokens, Backend backend, long seed) {
        Tensor v = Tensor.zeros(DType.F32, tokens, host.tokenWidth());
        backend.rngNormal(seed, 0, 0f, 1f, v);
        // No weight decay: PEFT's prompt embedding is trained as a plain parameter of the prompt encoder.
        this.prompt = new Parameter(PromptTuningConfig.KEY, v, true, false);
        this.host = host;
        this.name = name;
        host.addPrompt(name, prompt);
    }

    @Override
    public Map<String, Parameter> parameters() {
        return Map.of(PromptTuningConfig.KEY, prompt);
    }

    @Override
    public void setApplied(boolean applied) {
        if (applied) host.setActivePrompt(name);
        else if (name.equals(host.activePrompt())) host.setActivePrompt(null);
    }

    @Override
    public void close() {
        if (host.prompts().containsKey(name)) host.removePrompt(name);   // gone already when the host was closed first
        prompt.close();
    }
}
