package io.peft4j.train;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.Tensor;
import java.util.Map;

/** Updates parameters from their gradients; keeps per-parameter state for exact resume. */
public interface Optimizer extends AutoCloseable {

    /** One update of every parameter in {@code params} (by name) at learning rate {@code lr}. */
    void step(Backend backend, Map<String, Parameter> params, float lr);

    /** Updates done so far. */
    long steps();

    /** The state as named tensors ("&lt;param&gt;.exp_avg", ...), for a checkpoint; views, not copies. */
    Map<String, Tensor> state();

    /**
     * A parameter changed shape (a rank-adaptive method added, dropped or reordered rows): each of
     * its state tensors becomes {@code map} of its old values, shaped {@code newShape}; the old
     * tensors are freed. A parameter without state yet is left alone.
     */
    void reshapeState(String param, java.util.function.UnaryOperator<float[]> map, long... newShape);

    /** Restores {@link #state()} and the update count saved with it. */
    void loadState(Map<String, float[]> state, long steps);

    @Override
    void close();

    /**
     * What every step checks before it changes anything: a finite rate >= 0 (a schedule may reach 0;
     * a NaN or infinite rate would only poison the weights) and a gradient for every parameter.
     */
    static void checkStep(Map<String, Parameter> params, float lr) {
        if (!(lr >= 0) || !Float.isFinite(lr)) throw new IllegalArgumentException("learning rate must be a finite number >= 0, got " + lr);
        params.forEach((name, p) -> {
            if (!p.requiresGrad()) {
                throw new IllegalArgumentException("parameter '" + name + "' is frozen: it has no gradient to step with");
            }
        });
    }
}
