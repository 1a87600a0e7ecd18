package io.peft4j.backend;

import io.peft4j.tensor.Device;
import io.peft4j.tensor.Tensor;

/**
 * One method per native op; variant code is written once against this interface. Every method
 * validates shapes, dtypes, devices and liveness before the native call and throws
 * IllegalArgumentException / IllegalStateException naming the tensors. All tensors are row-major
 * F32 unless stated. Outputs documented as "+=" are accumulated into.
 */
public interface Backend extends AutoCloseable {

    /** The CPU backend on all cores, shared by the process. */
    static Backend cpu() {
        return CpuBackend.shared();
    }

    /** A CPU backend with its own context and thread count (0 = all cores); close it when done. */
    static Backend cpu(int threads) {
        return new CpuBackend(threads);
    }

    /** The CUDA backend. Fails with a message saying what is missing when it cannot run here. */
    static Backend cuda() {
        Availability a = Availability.probe();
        throw new UnsupportedOperationException(a.cudaUsable()
                ? "CUDA library and device found (" + a.cuda() + "), but the CUDA backend is not part of this release"
                : "CUDA backend unavailable: " + a.cuda());
    }

    /** What this machine has: CPU features, BLAS, the CUDA library and device (or why not). */
    static Availability available() {
        return Availability.probe();
    }

    String name();

    Device device();

    int threads();

    // ---- GEMM and low-rank ----

    /** c = alpha·op(a)·op(b) + beta·c. op(a): [m, k], op(b): [k, n], c: [m, n]. */
    void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /** h = x·aᵀ; y += s·h·bᵀ. x: [t, d_in], a: [r, d_in], b: [d_out, r], h: [t, r], y: [t, d_out]. */
    void lowrankForward(float s, Tensor x, Tensor a, Tensor b, Tensor h, Tensor y);

    /**
     * gb = g·b; db = s·gᵀ·h; da = s·gbᵀ·x; dx += s·gb·a (dx may be null). da, db overwritten
     * unless accumulate. Shapes as forward plus g: [t, d_out], gb: [t, r] (workspace).
     */
    void lowrankBackward(float s, Tensor x, Tensor a, Tensor b, Tensor h, Tensor g, Tensor gb,
                         Tensor da, Tensor db, Tensor dx, boolean accumulate);

    // ---- elementwise ----

    /** y: [t, d] += bias: [d] on every row. */
    void biasAdd(Tensor bias, Tensor y);

    /** out: [d] = column sums of x: [t, d] (added to out when accumulate). */
    void colsum(Tensor x, Tensor out, boolean accumulate);

    void reluForward(Tensor x, Tensor y);

    /** dx = g where x > 0 (x is the forward input). */
    void reluBackward(Tensor x, Tensor g, Tensor dx);

    void geluForward(Tensor x, Tensor y);

    void geluBackward(Tensor x, Tensor g, Tensor dx);

    void scale(float alpha, Tensor x);

    /** y += alpha·x. */
    void axpy(float alpha, Tensor x, Tensor y);

    /** out = x ⊙ y. */
    void mul(Tensor x, Tensor y, Tensor out);

    void fill(float value, Tensor x);

    void copy(Tensor src, Tensor dst);

    /** out: I32[t] = index of each row's first maximum of x: [t, c]. */
    void argmaxRows(Tensor x, Tensor out);

    // ---- losses ----

    /** Mean softmax cross-entropy; writes the row softmax to probs. labels: I32[t]. */
    float softmaxXentForward(Tensor logits, Tensor labels, Tensor probs);

    /** dlogits = scale·(probs − onehot(labels))/t. */
    void softmaxXentBackward(Tensor probs, Tensor labels, float scale, Tensor dlogits);

    /** Mean squared error; writes its gradient to grad unless grad is null. */
    float mse(Tensor pred, Tensor target, Tensor grad);

    // ---- optimizers ----

    /** One AdamW update (PyTorch semantics); step counts from 1. */
    void adamwStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                   float eps, float weightDecay, long step);

    /** One SGD update with momentum (PyTorch semantics, dampening 0); buf may be null when momentum is 0. */
    void sgdStep(Tensor param, Tensor grad, Tensor buf, float lr, float momentum, float weightDecay,
                 boolean nesterov, boolean first);

    /** Σ x², accumulated in double. */
    float sumsq(Tensor x);

    // ---- random numbers (Philox-4x32-10; element i depends only on seed, offset + i) ----

    void rngUniform(long seed, long offset, float lo, float hi, Tensor out);

    void rngNormal(long seed, long offset, float mean, float std, Tensor out);

    /** U(±sqrt(6/((1+a²)·fanIn))), as torch.nn.init.kaiming_uniform_. */
    void rngKaimingUniform(long seed, long offset, long fanIn, float a, Tensor out);

    /** y = x·mask/(1−p), mask: U8 (1 = kept). */
    void dropoutForward(float p, long seed, long offset, Tensor x, Tensor mask, Tensor y);

    void dropoutBackward(float p, Tensor mask, Tensor g, Tensor dx);

    // ---- ceilings ----

    /** Runs an FMA-bound loop on every thread; returns the floating-point operations done. */
    long fmaPeak(long iters);

    // ---- transformer: attention, LayerNorm, token rows ----

    /**
     * Fused multi-head attention over {@code batch} sequences: out_i = Σ_j softmax_j(scale·q_i·k_j)·v_j
     * per head (j <= i when causal). q, k, v, out: [batch·t, heads·headDim], headDim <= 256;
     * lse: [batch·heads, t] (out: each score row's log-sum-exp, which backward needs).
     */
    void attentionForward(long batch, int heads, float scale, boolean causal, Tensor q, Tensor k, Tensor v,
                          Tensor out, Tensor lse);

    /** dq, dk, dv (overwritten) from dout; the other tensors as {@link #attentionForward}, out and lse its outputs. */
    void attentionBackward(long batch, int heads, float scale, boolean causal, Tensor q, Tensor k, Tensor v,
                           Tensor out, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv);

    /** y = (x − mean)·rstd·w + b per row. x, y: [t, d]; w, b: [d] (b may be null); mean, rstd: [t] (out). */
    void layerNormForward(float eps, Tensor x, Tensor w, Tensor b, Tensor y, Tensor mean, Tensor rstd);

    /** dx (overwritten), dw += Σ g·x̂, db += Σ g; each of dx, dw, db may be null. Shapes as forward, g: [t, d]. */
    void layerNormBackward(Tensor x, Tensor w, Tensor mean, Tensor rstd, Tensor g, Tensor dx, Tensor dw, Tensor db);

    /** x: [b, h·w] images; out: [b·(h/p)·(w/p), p·p] their p×p patches, row-major. */
    void patchify(int h, int w, int p, Tensor x, Tensor out);

    /** The rows [n, d] inserted into each of {@code batch} sequences of x: [batch·t, d] before row at; out: [batch·(t+n), d]. */
    void tokensInsert(long batch, long at, Tensor x, Tensor rows, Tensor out);

    /** Backward of {@link #tokensInsert}: g: [batch·(t+n), d]; dx: [batch·t, d] (overwritten); drows: [n, d] (+=); dx, drows may be null. */
    void tokensInsertBackward(long batch, long t, long n, long at, Tensor g, Tensor dx, Tensor drows);

    /** out: [batch, d] = row index of each sequence of x: [batch·t, d]. */
    void tokensGather(long batch, long index, Tensor x, Tensor out);

    /** dx: [batch·t, d] = g: [batch, d] in row index of each sequence, 0 elsewhere. */
    void tokensGatherBackward(long batch, long index, Tensor g, Tensor dx);

    @Override
    void close();
}
