package io.peft4j.nn;

import io.peft4j.tensor.Tensor;

/**
 * Mean over the real tokens of each sequence, as sentence-transformers pools: x [b·t, d] holds b
 * sequences of t rows of which the first lengths[s] are real (the rest padding);
 * y[s] = Σ_{i < lengths[s]} x[s·t + i] / lengths[s]. Computed as one GEMM y = P·x with the pooling
 * matrix P [b, b·t] (1/lengths[s] on real rows, 0 on padding); backward dx = Pᵀ·g (0 on padding).
 */
public final class MeanPooling extends Module {
    private long t;
    private int[] lengths;
    private Tensor pool;

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
        long b = lengths.length;
        if (x.rank() != 2 || x.dim(0) != b * t) {
            throw new IllegalArgumentException("mean pooling expects [" + b + "·" + t + ", d], got " + x.describe());
        }
        float[] p = new float[Math.toIntExact(b * b * t)];
        for (int s = 0; s < b; s++) {
            float w = 1f / lengths[s];
            int row = Math.toIntExact(s * b * t + s * t);
            java.util.Arrays.fill(p, row, row + lengths[s], w);
        }
        pool = ctx.allocate(b, b * t);
        pool.copyFrom(p);
        Tensor y = ctx.allocate(b, x.dim(1));
        ctx.backend().gemm(false, false, 1f, pool, x, 0f, y);
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (pool == null || !pool.isAlive()) throw new IllegalStateException("mean pooling: backward without forward in this step");
        if (!needInputGrad) return null;
        Tensor dx = ctx.allocate(pool.dim(1), g.dim(1));
        ctx.backend().gemm(true, false, 1f, pool, g, 0f, dx);
        return dx;
    }
}
