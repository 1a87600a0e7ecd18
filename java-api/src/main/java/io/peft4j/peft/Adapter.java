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

    default long trainableParameterCount() {
        return parameters().stream().filter(Parameter::requiresGrad).mapToLong(Parameter::numel).sum();
    }

    @Override
    default void close() {
        parameters().forEach(Parameter::close);
    }
}
