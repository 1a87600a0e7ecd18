package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;

/**
 * Each row divided by its L2 norm, as torch.nn.functional.normalize: y = x / max(‖x‖, eps), x: [b, d].
 * Backward: dx = (g − y·(y·g)) / ‖x‖ where ‖x‖ > eps, and g / eps where the norm was clamped.
 */
public final class L2Normalize extends Module {
    /** torch.nn.functional.normalize's default eps. */
    public static final float DEFAULT_EPS = 1e-12f;

    private final float eps;
    private Tensor y;
    private float[] denominators;

    public L2Normalize(float eps) {
        if (!(eps > 0f && Float.isFinite(eps))) throw new IllegalArgumentException("L2Normalize eps must be finite and > 0, got " + eps);
        this.eps = eps;
    }

    public float eps() { return eps; }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        if (x.rank() != 2) throw new IllegalArgumentException("L2Normalize expects [b, d], got " + x.describe());
        Backend be = ctx.backend();
        Tensor norms = ctx.allocate(x.dim(0));
        be.rowNorms(x, norms);
        float[] n = norms.toFloatArray();
        float[] inv = new float[n.length];
        for (int i = 0; i < n.length; i++) {
            n[i] = Math.max(n[i], eps);
            inv[i] = 1f / n[i];
        }
        Tensor out = ctx.allocate(x.shape());
        be.copy(x, out);
        be.rowScale(norms.copyFrom(inv), out);
        y = out;
        denominators = n;
        return out;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (y == null || !y.isAlive()) throw new IllegalStateException("L2Normalize: backward without forward in this step");
        if (!needInputGrad) return null;
        int b = Math.toIntExact(y.dim(0)), d = Math.toIntExact(y.dim(1));
        float[] yv = y.toFloatArray(), gv = g.toFloatArray(), dx = new float[b * d];
        for (int i = 0; i < b; i++) {
            boolean clamped = denominators[i] == eps;
            double dot = 0;
            if (!clamped) for (int j = 0; j < d; j++) dot += (double) yv[i * d + j] * gv[i * d + j];
            for (int j = 0; j < d; j++) {
                int k = i * d + j;
                dx[k] = (float) ((gv[k] - yv[k] * dot) / denominators[i]);
            }
        }
        Tensor out = ctx.allocate(y.shape());
        out.copyFrom(dx);
        return out;
    }
}
