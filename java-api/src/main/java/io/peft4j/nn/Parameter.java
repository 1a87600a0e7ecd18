package io.peft4j.nn;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/**
 * A named weight and, when it is trained, its gradient (same shape, accumulated into by backward
 * and zeroed by the trainer at the start of each step).
 */
public final class Parameter implements AutoCloseable {
    private final String name;
    private Tensor value;
    private Tensor grad;
    private boolean requiresGrad;
    private final boolean decay;

    /** @param decay whether weight decay applies (false for biases and scaling vectors) */
    public Parameter(String name, Tensor value, boolean requiresGrad, boolean decay) {
        value.requireDType(DType.F32);
        this.name = name;
        this.value = value;
        this.decay = decay;
        setRequiresGrad(requiresGrad);
    }

    /** The name inside its module ("weight", "lora_A.weight"). */
    public String name() { return name; }
    public Tensor value() { return value; }
    public boolean requiresGrad() { return requiresGrad; }
    public boolean decay() { return decay; }
    public long numel() { return value.numel(); }

    /** The gradient buffer; only trained parameters have one. */
    public Tensor grad() {
        if (grad == null) throw new IllegalStateException("parameter '" + name + "' is frozen and has no gradient");
        return grad;
    }

    /** Swaps in another F32 value of the same shape (Linear's fp32 copy of a {@link FrozenWeight}); the old one is not closed. */
    void replaceValue(Tensor next) {
        next.requireDType(DType.F32);
        if (!java.util.Arrays.equals(next.shape(), value.shape())) {
            throw new IllegalArgumentException("parameter '" + name + "': value " + next.describe() + " must have the shape of " + value.describe());
        }
        value = next;
    }

    /** Freezing frees the gradient; unfreezing allocates a zero one. */
    public void setRequiresGrad(boolean requiresGrad) {
        this.requiresGrad = requiresGrad;
        if (requiresGrad && grad == null) grad = Tensor.zeros(DType.F32, value.shape());
        if (!requiresGrad && grad != null) {
            grad.close();
            grad = null;
        }
    }

    @Override
    public void close() {
        value.close();
        if (grad != null) grad.close();
    }
}
