package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;

/**
 * A pre-norm transformer block: h = x + attn(norm1(x)); y = h + mlp(norm2(h)), the MLP being
 * fc1, GELU, fc2. Children: norm1, attn (q, k, v, o), norm2, mlp (fc1, act1, fc2).
 */
public final class TransformerBlock extends Module {
    private final LayerNorm norm1;
    private final MultiHeadAttention attn;
    private final LayerNorm norm2;
    private final Mlp mlp;

    public TransformerBlock(Backend backend, long width, int heads, long mlpWidth, boolean causal, long seed) {
        this.norm1 = addChild("norm1", new LayerNorm(width, 1e-6f));
        this.attn = addChild("attn", new MultiHeadAttention(backend, width, heads, causal, seed));
        this.norm2 = addChild("norm2", new LayerNorm(width, 1e-6f));
        this.mlp = addChild("mlp", new Mlp(backend, Mlp.Activation.GELU, seed + 4, width, mlpWidth, width));
    }

    public MultiHeadAttention attention() { return attn; }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        Backend b = ctx.backend();
        Tensor h = ctx.allocate(x.shape());
        b.copy(x, h);
        b.axpy(1f, attn.forward(ctx, norm1.forward(ctx, x)), h);
        Tensor y = ctx.allocate(x.shape());
        b.copy(h, y);
        b.axpy(1f, mlp.forward(ctx, norm2.forward(ctx, h)), y);
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        Backend b = ctx.backend();
        Tensor dh = norm2.backward(ctx, mlp.backward(ctx, g, true), true);
        b.axpy(1f, g, dh);   // the residual path
        Tensor dx = norm1.backward(ctx, attn.backward(ctx, dh, true), true);
        b.axpy(1f, dh, dx);
        return dx;
    }
}
