package io.peft4j.peft;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * One adapter of one method on one linear layer. The layer computes its base output and asks the
 * adapter to add its delta; backward hands the adapter the layer input and output gradient.
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

    /** y: [t, d_out] += delta(x), x: [t, d_in]. */
    void forward(StepContext ctx, Tensor x, Tensor y);

    /** Accumulates this adapter's parameter gradients and, when dx is not null, dx += ∂delta/∂x·g. */
    void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx);

    /** A new self-owned [d_out, d_in] tensor with the weight change this adapter applies. */
    Tensor deltaWeight(Backend backend);

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
