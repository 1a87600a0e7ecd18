package io.peft4j.nn;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/** torch.nn.LayerNorm over the last dimension with an affine weight (init 1) and bias (init 0); x: [t, d]. */
public final class LayerNorm extends Module {
    private final long dim;
    private final float eps;
    private final Parameter weight;
    private final Parameter bias;
    private Tensor input;
    private Tensor mean;
    private Tensor rstd;

    public LayerNorm(long dim, float eps) {
        if (dim <= 0) throw new IllegalArgumentException("LayerNorm needs a positive size, got " + dim);
        if (!(eps > 0f && Float.isFinite(eps))) throw new IllegalArgumentException("LayerNorm eps must be finite and > 0, got " + eps);
        this.dim = dim;
        this.eps = eps;
        Tensor w = Tensor.zeros(DType.F32, dim);
        float[] ones = new float[Math.toIntExact(dim)];
        java.util.Arrays.fill(ones, 1f);
        w.copyFrom(ones);
        this.weight = addParameter(new Parameter("weight", w, true, false));
        this.bias = addParameter(new Parameter("bias", Tensor.zeros(DType.F32, dim), true, false));
    }

    public long dim() { return dim; }
    public float eps() { return eps; }
    public Parameter weight() { return weight; }
    public Parameter bias() { return bias; }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        if (x.rank() != 2 || x.dim(1) != dim) {
            throw new IllegalArgumentException("LayerNorm '" + path() + "' expects input [t, " + dim + "], got " + x.describe());
        }
        Tensor y = ctx.allocate(x.shape());
        mean = ctx.allocate(x.dim(0));
        rstd = ctx.allocate(x.dim(0));
        ctx.backend().layerNormForward(eps, x, weight.value(), bias.value(), y, mean, rstd);
        input = x;
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (input == null || !input.isAlive()) throw new IllegalStateException("LayerNorm '" + path() + "': backward without forward in this step");
        Tensor dx = needInputGrad ? ctx.allocate(input.shape()) : null;
        Tensor dw = weight.requiresGrad() ? weight.grad() : null;
        Tensor db = bias.requiresGrad() ? bias.grad() : null;
        if (dx != null || dw != null || db != null) {
            ctx.backend().layerNormBackward(input, weight.value(), mean, rstd, g, dx, dw, db);
        }
        return dx;
    }
}
