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

    // ---- Kronecker and Hadamard adapters (kron.cpp) ----

    /**
     * Kronecker apply, never forming a⊗b: p = a·Xm per row (Xm = the row as [a2, b2]); y += s·p·bᵀ.
     * x: [t, a2·b2], a: [a1, a2], b: [b1, b2], p: [t, a1·b2] (kept for backward), y: [t, a1·b1].
     */
    void kronForward(float s, Tensor x, Tensor a, Tensor b, Tensor p, Tensor y);

    /**
     * q = Gm·b per row (workspace [t, a1·b2]); db = s·Σ Gmᵀ·p; da = s·Σ q·Xmᵀ; dx += s·aᵀ·q per row
     * (dx may be null). da, db overwritten unless accumulate.
     */
    void kronBackward(float s, Tensor x, Tensor a, Tensor b, Tensor p, Tensor g, Tensor q, Tensor da, Tensor db,
                      Tensor dx, boolean accumulate);

    /** out: [a1·b1, a2·b2] = s·kron(a, b) (torch.kron order), added to out when accumulate. */
    void kron(float s, Tensor a, Tensor b, Tensor out, boolean accumulate);

    /** dw = s·(w1a·w1b) ⊙ (w2a·w2b). w1a, w2a: [d_out, r]; w1b, w2b: [r, d_in]; dw: [d_out, d_in]. */
    void hadamardRebuild(float s, Tensor w1a, Tensor w1b, Tensor w2a, Tensor w2b, Tensor dw);

    /**
     * LoHa's factor gradients from gw = ∂L/∂ΔW (gw is overwritten with s·gw ⊙ (w2a·w2b)); ws: [rows, d_in]
     * workspace, any rows >= 1. dw1a = T1·w1bᵀ, dw1b = w1aᵀ·T1, dw2a = T2·w2bᵀ, dw2b = w2aᵀ·T2 with
     * T1 = s·gw⊙(w2a·w2b), T2 = s·gw⊙(w1a·w1b); overwritten unless accumulate.
     */
    void hadamardBackward(float s, Tensor w1a, Tensor w1b, Tensor w2a, Tensor w2b, Tensor gw, Tensor ws,
                          Tensor dw1a, Tensor dw1b, Tensor dw2a, Tensor dw2b, boolean accumulate);

    @Override
    void close();
}
