package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;

/**
 * A frozen base weight W [out, in] kept in a form other than an fp32 tensor (NF4 for QLoRA). A
 * {@link Linear} given one through {@link Linear#setFrozenWeight} frees its fp32 W and computes
 * its output and input gradient with this instead; W gets no gradient.
 */
public interface FrozenWeight extends AutoCloseable {
    /** [out, in]. */
    long[] shape();

    /** y: [t, out] = x·Wᵀ (overwritten), x: [t, in]. */
    void forward(StepContext ctx, Tensor x, Tensor y);

    /** dx: [t, in] = g·W (overwritten), g: [t, out]. */
    void inputGrad(StepContext ctx, Tensor g, Tensor dx);

    /** A new self-owned fp32 copy of W (for merging an adapter into it). */
    Tensor dequantize(Backend backend);

    /** Bytes this weight holds in memory. */
    long residentBytes();

    @Override
    void close();
}
