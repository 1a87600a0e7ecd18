package io.peft4j.variants.bitfit;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * BitFit on one Linear layer: no parameters of its own; the layer's bias trains while this adapter
 * is active ({@link #trainedBaseParameters}) and is what its file holds. The bias is trained in
 * place, so disabling or removing the adapter keeps the trained bias (as training it would).
 */
public final class BitFitAdapter implements Adapter {
    private final BitFitConfig config;
    private final String name;
    private final long in, out;

    BitFitAdapter(BitFitConfig config, String name, long in, long out) {
        this.config = config;
        this.name = name;
        this.in = in;
        this.out = out;
    }

    @Override public String adapterName() { return name; }
    @Override public BitFitConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(); }
    @Override public List<String> trainedBaseParameters() { return List.of("bias"); }

    /** The layer's forward (x·Wᵀ + b) is already BitFit's. */
    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
    }

    /** The layer's backward accumulates ∂b = Σ g, since the bias is unfrozen. */
    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
    }

    /** BitFit changes no weight: ΔW = 0. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        return Tensor.zeros(DType.F32, out, in);
    }

    /** Nothing to fold: the bias already is the trained one. */
    @Override
    public void merge(Backend backend, Tensor weight, Tensor bias) {
    }

    @Override
    public void unmerge(Backend backend, Tensor weight, Tensor bias) {
    }
}
