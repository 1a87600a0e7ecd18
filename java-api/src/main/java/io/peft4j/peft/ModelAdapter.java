package io.peft4j.peft;

import io.peft4j.nn.Parameter;
import java.util.Map;

/** One adapter of a {@link ModelAdapterConfig} method, attached to a whole model (see there). */
public interface ModelAdapter extends AutoCloseable {

    /** Its parameters by their key in adapter_model.safetensors (PEFT's, e.g. "prompt_embeddings"), without the base_model prefix. */
    Map<String, Parameter> parameters();

    /** Whether the model's forward applies this adapter (it is the active one and adapters are enabled). */
    void setApplied(boolean applied);

    /** Detaches it from the model and frees its parameters. */
    @Override
    void close();
}
