package io.peft4j.nn;

import java.util.Map;

/**
 * A model that takes learned prompt tokens (prompt tuning): [n, tokenWidth] rows inserted into
 * every input sequence at a place the model chooses. The model shows each attached prompt among
 * its parameters as {@code prompt_encoder.<name>.embedding.weight} (PEFT's name in a live model)
 * and inserts the active one, if any, in forward.
 */
public interface PromptHost {
    /** The width of one token, the number of columns a prompt must have. */
    long tokenWidth();

    /** Attaches {@code prompt} [n, tokenWidth] under {@code name}; it is not active until {@link #setActivePrompt}. */
    void addPrompt(String name, Parameter prompt);

    /** Detaches a prompt (the caller closes it). */
    void removePrompt(String name);

    /** The prompt forward inserts, or null for none. */
    void setActivePrompt(String name);

    /** The name of the prompt forward inserts, or null. */
    String activePrompt();

    Map<String, Parameter> prompts();
}
