package io.peft4j.peft;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;

/**
 * The config of a method that adapts the model as a whole rather than its Linear layers (prompt
 * tuning: tokens added to the model's input). {@link PeftModel} attaches one {@link ModelAdapter}
 * per adapter name to the wrapped model instead of one {@link Adapter} per matching Linear layer.
 */
public interface ModelAdapterConfig extends AdapterConfig {

    /** Attaches a new adapter to {@code model}; fails with a clear message when the model cannot take it. */
    ModelAdapter attach(Module model, String adapterName, Backend backend, long seed);

    /** No Linear layer is targeted. */
    @Override
    default TargetModules targetModules() {
        return null;
    }

    @Override
    default Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        throw new UnsupportedOperationException(peftType() + " adapts the whole model, not Linear layer '" + layer.path() + "'");
    }
}
