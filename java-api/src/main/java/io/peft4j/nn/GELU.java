package io.peft4j.nn;

import io.peft4j.tensor.Tensor;

/** x·Φ(x), the exact (erf) GELU as torch.nn.GELU(). */
public final class GELU extends Module {
    private Tensor input;

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        Tensor y = ctx.allocate(x.shape());
        ctx.backend().geluForward(x, y);
        input = x;
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (input == null || !input.isAlive()) {
            throw new IllegalStateException("GELU '" + path() + "': backward without forward in this step");
        }
        if (!needInputGrad) return null;
        Tensor dx = ctx.allocate(g.shape());
        ctx.backend().geluBackward(input, g, dx);
        return dx;
    }
}
