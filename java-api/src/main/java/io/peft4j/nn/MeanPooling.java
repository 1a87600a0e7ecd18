package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;

/**
 * Mean over the real tokens of each sequence, as sentence-transformers pools: x [b·t, d] holds b
 * sequences of t rows of which the first lengths[s] are real (the rest padding);
 * y[s] = Σ_{i < lengths[s]} x[s·t + i] / lengths[s]. Backward spreads g[s] / lengths[s] over the
 * real rows, 0 on padding. One column sum (forward) or broadcast add (backward) per sequence.
 */
public final class MeanPooling extends Module {
    private long t;
    private int[] lengths;
    private Tensor input;

    /** The sequences of the next forward: t rows each, lengths[s] of them real (1 <= lengths[s] <= t). */
    public void setLengths(long t, int[] lengths) {
        if (t <= 0 || lengths == null || lengths.length == 0) throw new IllegalArgumentException("mean pooling needs t > 0 and at least one sequence");
        for (int s = 0; s < lengths.length; s++) {
            if (lengths[s] < 1 || lengths[s] > t) {
                throw new IllegalArgumentException("mean pooling: sequence " + s + " has length " + lengths[s] + ", outside [1, " + t + "]");
            }
        }
        this.t = t;
        this.lengths = lengths.clone();
    }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        if (lengths == null) throw new IllegalStateException("mean pooling: setLengths before forward");
        int b = lengths.length;
        if (x.rank() != 2 || x.dim(0) != b * t) {
            throw new IllegalArgumentException("mean pooling expects [" + b + "·" + t + ", d], got " + x.describe());
        }
        Backend be = ctx.backend();
        long d = x.dim(1);
        Tensor y = ctx.allocate(b, d);
        for (int s = 0; s < b; s++) be.colsum(x.rows(s * t, lengths[s]), y.rows(s, 1).view(d), false);
        be.rowScale(inverseLengths(ctx), y);
        input = x;
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (input == null || !input.isAlive()) throw new IllegalStateException("mean pooling: backward without forward in this step");
        if (!needInputGrad) return null;
        Backend be = ctx.backend();
        long d = g.dim(1);
        Tensor scaled = ctx.allocate(g.shape());
        be.copy(g, scaled);
        be.rowScale(inverseLengths(ctx), scaled);
        Tensor dx = ctx.allocate(input.shape());
        be.fill(0f, dx);
        for (int s = 0; s < lengths.length; s++) be.biasAdd(scaled.rows(s, 1).view(d), dx.rows(s * t, lengths[s]));
        return dx;
    }

    /** [b]: 1 / lengths[s]. */
    private Tensor inverseLengths(StepContext ctx) {
        float[] inv = new float[lengths.length];
        for (int s = 0; s < inv.length; s++) inv[s] = 1f / lengths[s];
        return ctx.allocate(inv.length).copyFrom(inv);
    }
}
