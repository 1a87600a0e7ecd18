package io.peft4j.nn;

import io.peft4j.tensor.Tensor;

/** max(x, 0), elementwise. */
public final class ReLU extends Module {
    private Tensor input;

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        Tensor y = ctx.allocate(x.shape());
        ctx.backend().reluForward(x, y);
        input = x;
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (input == null || !input.isAlive()) {
            throw new IllegalStateException("ReLU '" + path() + "': backward without forward in this step");
        }
        if (!needInputGrad) return null;
        Tensor dx = ctx.allocate(g.shape());
        ctx.backend().reluBackward(input, g, dx);
        return dx;
    }
}
