package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;

/**
 * Multi-head self-attention with separate q, k, v and output ({@code o}) projections, each a
 * {@link Linear} (so adapters target them by name: "blocks.0.attn.q"). The input holds whole
 * sequences of {@link #sequenceLength()} tokens: x [b·t, width]; the fused kernel computes
 * softmax(q·kᵀ/√headDim)·v per (sequence, head) without materialising the scores.
 */
public final class MultiHeadAttention extends Module {
    private final long width;
    private final int heads;
    private final boolean causal;
    private final float scale;
    private final Linear q;
    private final Linear k;
    private final Linear v;
    private final Linear o;
    private long sequenceLength;
    private Tensor qOut, kOut, vOut, attnOut, lse;

    /** @param seed the q, k, v, o layers are initialised from seed, seed + 1, seed + 2, seed + 3 */
    public MultiHeadAttention(Backend backend, long width, int heads, boolean causal, long seed) {
        if (heads <= 0 || width <= 0 || width % heads != 0) {
            throw new IllegalArgumentException("attention width " + width + " does not split into " + heads + " heads");
        }
        if (width / heads > 256) throw new IllegalArgumentException("attention head size " + width / heads + " > 256 is not supported");
        this.width = width;
        this.heads = heads;
        this.causal = causal;
        this.scale = (float) (1 / Math.sqrt((double) width / heads));
        this.q = addChild("q", new Linear(backend, width, width, true, seed));
        this.k = addChild("k", new Linear(backend, width, width, true, seed + 1));
        this.v = addChild("v", new Linear(backend, width, width, true, seed + 2));
        this.o = addChild("o", new Linear(backend, width, width, true, seed + 3));
    }

    public int heads() { return heads; }
    public long width() { return width; }
    public boolean causal() { return causal; }
    public long sequenceLength() { return sequenceLength; }

    /** Tokens per sequence of the next forward (the owner sets it: prompt tokens change it). */
    public void setSequenceLength(long t) {
        if (t <= 0) throw new IllegalArgumentException("sequence length must be > 0, got " + t);
        sequenceLength = t;
    }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        if (sequenceLength <= 0) throw new IllegalStateException("attention '" + path() + "': no sequence length set");
        if (x.rank() != 2 || x.dim(1) != width || x.dim(0) % sequenceLength != 0) {
            throw new IllegalArgumentException("attention '" + path() + "' expects input [b·" + sequenceLength + ", " + width + "], got " + x.describe());
        }
        long b = x.dim(0) / sequenceLength;
        qOut = q.forward(ctx, x);
        kOut = k.forward(ctx, x);
        vOut = v.forward(ctx, x);
        attnOut = ctx.allocate(x.shape());
        lse = ctx.allocate(b * heads, sequenceLength);
        ctx.backend().attentionForward(b, heads, scale, causal, null, qOut, kOut, vOut, attnOut, lse);
        return o.forward(ctx, attnOut);
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (lse == null || !lse.isAlive()) throw new IllegalStateException("attention '" + path() + "': backward without forward in this step");
        Tensor dAttn = o.backward(ctx, g, true);
        Tensor dq = ctx.allocate(qOut.shape());
        Tensor dk = ctx.allocate(kOut.shape());
        Tensor dv = ctx.allocate(vOut.shape());
        long b = qOut.dim(0) / lse.dim(1);
        ctx.backend().attentionBackward(b, heads, scale, causal, null, qOut, kOut, vOut, attnOut, lse, dAttn, dq, dk, dv);
        Tensor dx = q.backward(ctx, dq, needInputGrad);
        Tensor dxk = k.backward(ctx, dk, needInputGrad);
        Tensor dxv = v.backward(ctx, dv, needInputGrad);
        if (!needInputGrad) return null;
        Backend be = ctx.backend();
        be.axpy(1f, dxk, dx);
        be.axpy(1f, dxv, dx);
        return dx;
    }
}
