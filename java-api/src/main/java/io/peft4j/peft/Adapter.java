package io.peft4j.peft;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * One adapter of one method on one linear layer. The layer computes its base output and asks the
 * adapter to add its delta; backward hands the adapter the layer input and output gradient.
 *
 * <p>Beyond adding a delta, an adapter may (all by default methods, so additive adapters implement
 * none of them and keep the plain path): rewrite the input the base layer multiplies
 * ({@link #transformInput}), rewrite the base output in {@link #forward} and return the gradient
 * with respect to the base output ({@link #outputGradient}), and train some of the layer's own
 * parameters ({@link #trainedBaseParameters}). The layer runs, per step:
 * <pre>
 *   x' = transformInput(x);  y = x'·Wᵀ + b;  forward(x, y)
 *   gz = outputGradient(g);  dx' = gz·W;  ∂W += gzᵀ·x';  ∂b += Σ gz;  backward(x, g, dx')
 * </pre>
 */
public interface Adapter extends AutoCloseable {

    /** The adapter's name on its model ("default" unless the user names it). */
    String adapterName();

    AdapterConfig config();

    /**
     * Parameters named as the method's checkpoints name them, without the adapter name
     * ("lora_A.weight", "lora_B.weight"); PEFT's file keys are {@code base_model.model.<layer>.<name>}.
     */
    List<Parameter> parameters();

    /**
     * y: [t, d_out] += delta(x), x: [t, d_in]. An adapter that transforms the output instead rewrites
     * y (which holds the base output x'·Wᵀ + b on entry) in place, keeping what its backward needs.
     */
    void forward(StepContext ctx, Tensor x, Tensor y);

    /**
     * Accumulates this adapter's parameter gradients and, when dx is not null, dx += ∂delta/∂x·g.
     * When {@link #transformInput} returned another tensor x', dx is never null and holds ∂L/∂x' on
     * entry; the adapter turns it into ∂L/∂x in place.
     */
    void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx);

    /**
     * The input the base layer multiplies: x itself, or a tensor this adapter computed from it in
     * the step arena (e.g. (IA)³'s x ⊙ l). Called before the base GEMM, in every forward.
     */
    default Tensor transformInput(StepContext ctx, Tensor x) {
        return x;
    }

    /**
     * ∂L/∂(base output) from g = ∂L/∂y, called before the base layer's backward; the layer's weight,
     * bias and input gradients are computed from it. An additive adapter returns g itself; one that
     * rewrote y in forward returns a new tensor (step arena) and may accumulate gradients here of
     * parameters that act on the output.
     */
    default Tensor outputGradient(StepContext ctx, Tensor g) {
        return g;
    }

    /**
     * Names of the layer's own parameters ("bias") this adapter trains: they are unfrozen while it
     * is the active adapter and are saved and loaded with its parameters.
     */
    default List<String> trainedBaseParameters() {
        return List.of();
    }

    /** A new self-owned [d_out, d_in] tensor with the weight change this adapter applies. */
    Tensor deltaWeight(Backend backend);

    /**
     * Folds the adapter into the layer's weight and bias (bias is null when the layer has none).
     * The default folds deltaWeight into the weight; adapters that rescale or shift override it,
     * and those that cannot be merged throw UnsupportedOperationException before changing anything.
     */
    default void merge(Backend backend, Tensor weight, Tensor bias) {
        merge(backend, weight);
    }

    /** The exact inverse of {@link #merge(Backend, Tensor, Tensor)} up to rounding. */
    default void unmerge(Backend backend, Tensor weight, Tensor bias) {
        unmerge(backend, weight);
    }

    /** weight += deltaWeight. */
    default void merge(Backend backend, Tensor weight) {
        try (Tensor d = deltaWeight(backend)) {
            backend.axpy(1f, d, weight);
        }
    }

    /** weight −= deltaWeight: the exact inverse of merge up to rounding. */
    default void unmerge(Backend backend, Tensor weight) {
        try (Tensor d = deltaWeight(backend)) {
            backend.axpy(-1f, d, weight);
        }
    }

    // ---- tensors shared across layers (VeRA's projections, Tied-LoRA's tied A and B) ----

    /**
     * Tensors this adapter shares with the same adapter on the model's other layers: the same
     * Parameter objects on every layer, named as the file's model-level keys
     * ({@code base_model.<name>}, as PEFT's {@code base_model.vera_A}). {@link PeftModel} saves and
     * loads each once, lists the trainable ones once among its parameters (every layer's backward
     * accumulates into the one gradient, so it is the sum over layers) and closes them when the
     * adapter is removed; {@link #close()} of one layer's adapter leaves them alone.
     */
    default List<Parameter> sharedParameters() {
        return List.of();
    }

    /**
     * Whether {@code p} (of {@link #parameters()} or {@link #sharedParameters()}) trains while this
     * adapter is active. A frozen one (a random projection, a fixed factor) is saved but never
     * updated; a frozen shared one is, like PEFT's buffers, not listed among the model's parameters.
     */
    default boolean trainable(Parameter p) {
        return true;
    }

    /**
     * Whether {@code p} is written to the adapter file. One that is not is rebuilt by
     * {@link AdapterConfig#createAll} (VeRA's projections from projection_prng_key, with
     * save_projection false) and loaded only when a file holds it.
     */
    default boolean saved(Parameter p) {
        return true;
    }

    /** The per-layer trainable parameters (shared ones are counted once by the model). */
    default long trainableParameterCount() {
        return parameters().stream().filter(Parameter::requiresGrad).mapToLong(Parameter::numel).sum();
    }

    @Override
    default void close() {
        parameters().forEach(Parameter::close);
    }
}
