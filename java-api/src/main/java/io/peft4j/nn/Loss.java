package io.peft4j.nn;

import io.peft4j.tensor.Tensor;

/** A scalar loss over a batch: forward returns its value, backward the gradient of the output. */
public interface Loss {
    float forward(StepContext ctx, Tensor output, Tensor target);

    /** ∂loss/∂output for the last forward (a step-arena tensor). */
    Tensor backward(StepContext ctx);

    /** What forward kept lives in the step arena: gone before any forward, and after the step that made it. */
    private static void requireForward(String loss, Tensor kept) {
        if (kept == null || !kept.isAlive()) {
            throw new IllegalStateException(loss + " loss: backward() called without a forward() in this step");
        }
    }

    /** Mean softmax cross-entropy over rows; target is I32 class labels. */
    static Loss crossEntropy() {
        return new Loss() {
            private Tensor probs;
            private Tensor labels;

            @Override
            public float forward(StepContext ctx, Tensor logits, Tensor target) {
                probs = ctx.allocate(logits.shape());
                labels = target;
                return ctx.backend().softmaxXentForward(logits, target, probs);
            }

            @Override
            public Tensor backward(StepContext ctx) {
                requireForward("crossEntropy", probs);
                Tensor d = ctx.allocate(probs.shape());
                ctx.backend().softmaxXentBackward(probs, labels, 1f, d);
                return d;
            }
        };
    }

    /** Mean squared error; target is F32 of the output's shape. */
    static Loss mse() {
        return new Loss() {
            private Tensor grad;

            @Override
            public float forward(StepContext ctx, Tensor output, Tensor target) {
                grad = ctx.allocate(output.shape());
                return ctx.backend().mse(output, target, grad);
            }

            @Override
            public Tensor backward(StepContext ctx) {
                requireForward("mse", grad);
                return grad;
            }
        };
    }
}
