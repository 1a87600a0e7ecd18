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

    // ---- diagonally scaled low-rank (VeRA, Tied-LoRA) ----

    /**
     * h = x·a_sᵀ; z = (u ⊙ h)·b_sᵀ; y += s·v ⊙ z, where a_s = a[:, :d_in] and b_s = b[:d_out, :]: a [r, D_in ≥ d_in]
     * and b [D_out ≥ d_out, r] may be one pair shared by layers of several shapes. x: [t, d_in]; u: [r] or null
     * (ones); v: [d_out] or null (ones); h: [t, r] and z: [t, d_out] (out, kept for backward); work: F32 with at
     * least t·r elements; y: [t, d_out] (+=).
     */
    void scaledLowrankForward(float s, Tensor x, Tensor a, Tensor b, Tensor u, Tensor v, Tensor h, Tensor z, Tensor work, Tensor y);

    /**
     * The backward of {@link #scaledLowrankForward}, with its h and z: g: [t, d_out]; work: at least 2·(t + d_out)·r elements;
     * du: [r], dv: [d_out], da: shaped as a (columns [0, d_in) written), db: shaped as b (rows [0, d_out)
     * written), dx: [t, d_in] (+=). Any of du, dv, da, db, dx may be null (not computed); du, dv, da, db are
     * overwritten unless accumulate (a tied tensor's gradient accumulates over the layers that use it).
     */
    void scaledLowrankBackward(float s, Tensor x, Tensor a, Tensor b, Tensor u, Tensor v, Tensor h, Tensor z, Tensor g, Tensor work,
                               Tensor du, Tensor dv, Tensor da, Tensor db, Tensor dx, boolean accumulate);

    // ---- rank-adaptive methods (AdaLoRA, SoRA, DyLoRA) ----

    /**
     * h = x·aᵀ; y += c·(h ⊙ g)·bᵀ (g scales the columns of h). x: [t, d_in], a: [r, d_in], g: any
     * shape of r elements (AdaLoRA's lora_E is [r, 1]), b: [d_out, r], h: [t, r] (kept for
     * backward), hg: [t, r] (workspace), y: [t, d_out].
     */
    void rankGatedForward(float c, Tensor x, Tensor a, Tensor g, Tensor b, Tensor h, Tensor hg, Tensor y);

    /**
     * gb = gy·b; dg = c·Σ_rows gb ⊙ h; db = c·gyᵀ·(h ⊙ g); da = c·(gb ⊙ g)ᵀ·x; dx += c·(gb ⊙ g)·a.
     * Each of da, db, dg, dx may be null (not computed); da, db, dg are overwritten unless
     * accumulate. gy: [t, d_out], gb and ws: [t, r] (ws a workspace); the rest as forward.
     */
    void rankGatedBackward(float c, Tensor x, Tensor a, Tensor g, Tensor b, Tensor h, Tensor gy, Tensor gb, Tensor ws,
                           Tensor da, Tensor db, Tensor dg, Tensor dx, boolean accumulate);

    /**
     * AdaLoRA's importance EMAs over equal-sized w, grad, ibar, ubar: i = |w·grad|,
     * ibar = β1·ibar + (1−β1)·i, ubar = β2·ubar + (1−β2)·|i − ibar|.
     */
    void rankImportanceUpdate(Tensor w, Tensor grad, Tensor ibar, Tensor ubar, float beta1, float beta2);

    /**
     * In-place thresholding by xi >= 0. soft = false: SoRA's code (shrink by xi, then zero what is
     * below xi: |x| < 2·xi becomes 0 except |x| = xi); soft = true: the soft threshold (|x| <= xi: 0,
     * else x − sign(x)·xi).
     */
    void rankThreshold(float xi, boolean soft, Tensor x);

    // ---- NF4 4-bit quantisation (bitsandbytes-exact; docs/algorithms.md §7) ----
    // A weight is flattened row-major and cut into blocks of blockSize (a power of two in [32, 4096]).
    // packed: U8[(n + 1) / 2], element 2j in the high nibble; absmax: F32[ceil(n / blockSize)].

    /** The NF4 codebook (F32[16], weight.quant_map) and the signed dynamic 8-bit map (F32[256], weight.nested_quant_map). */
    void nf4Tables(Tensor code, Tensor dynamicMap);

    /** Quantises the finite F32 values of x (any shape) into packed and absmax. */
    void nf4Quantize(int blockSize, Tensor x, Tensor packed, Tensor absmax);

    /** out (F32 or BF16, any shape of n elements) = code[q]·absmax, as bitsandbytes' dequantize_4bit. */
    void nf4Dequantize(int blockSize, Tensor packed, Tensor absmax, Tensor out);

    /** Double quantisation: qabsmax U8[nb], absmax2 F32[ceil(nb / 256)] of absmax − offset; returns offset = mean(absmax). */
    float nf4DoubleQuantize(Tensor absmax, Tensor qabsmax, Tensor absmax2);

    /** absmax = dynamicMap[qabsmax]·absmax2[i / 256] + offset. */
    void nf4DequantizeAbsmax(Tensor qabsmax, Tensor absmax2, float offset, Tensor absmax);

    /** F32 elements of workspace that {@link #nf4Matmul} / {@link #nf4MatmulDx} need for t rows (0 for t <= 16). */
    long nf4Workspace(long t, long dIn, long dOut);

    /** y: [t, d_out] = x·dequant(W)ᵀ, x: [t, d_in], W: NF4 [d_out, d_in]; workspace null when nf4Workspace is 0. */
    void nf4Matmul(int blockSize, Tensor x, Tensor packed, Tensor absmax, Tensor workspace, Tensor y);

    /** dx: [t, d_in] = g·dequant(W), g: [t, d_out]. */
    void nf4MatmulDx(int blockSize, Tensor g, Tensor packed, Tensor absmax, Tensor workspace, Tensor dx);

    // The NF4 kernel layout (peft4j.h, p4j_nf4_rp_size): a copy of W [d_out, d_in] (d_in a positive
    // multiple of 8) arranged for products at few rows, built once per weight from packed, absmax.

    /** {bytes of codes (U8), elements of scales (F32)} of the kernel layout of W [dOut, dIn]. */
    long[] nf4RpSize(int blockSize, long dIn, long dOut);

    /** codes, scales (sizes as nf4RpSize) = the kernel layout of W [dOut, dIn] given as packed, absmax. */
    void nf4Repack(int blockSize, long dIn, long dOut, Tensor packed, Tensor absmax, Tensor codes, Tensor scales);

    /** out: F32 [d_out, d_in] = dequant(W) from the kernel layout: the values nf4Dequantize gives. */
    void nf4RpDequantize(int blockSize, Tensor codes, Tensor scales, Tensor out);

    /** Bytes of the U8 workspace nf4MatmulRp needs for t rows of x (0 unless t = 1). */
    long nf4RpWorkspace(long t, long dIn);

    /**
     * y: [t, d_out] = x·dequant(W)ᵀ from the kernel layout, x: [t, d_in]; workspace: U8 of at least
     * nf4RpWorkspace bytes (may be null when that is 0). At t = 1 on AVX-512 with VBMI and VNNI,
     * x·code is summed in 24-bit fixed point over runs of 64 columns (peft4j.h says how and its error).
     */
    void nf4MatmulRp(int blockSize, Tensor x, Tensor codes, Tensor scales, Tensor workspace, Tensor y);

    // ---- scaling (SSF, (IA)³, DoRA) ----

    /** out: [t] = L2 norm of each row of x: [t, d] (accumulated in double). */
    void rowNorms(Tensor x, Tensor out);

    /** y = x ⊙ gamma (+ beta) on every row; x, y: [t, d] (y may be x), gamma: [d], beta: [d] or null. */
    void scaleShiftForward(Tensor x, Tensor gamma, Tensor beta, Tensor y);

    /**
     * The backward of {@link #scaleShiftForward}: dgamma = Σ_rows g ⊙ x, dbeta = Σ_rows g, dx = g ⊙ gamma
     * (dx may be g). Each of dgamma (needs x), dbeta and dx (needs gamma) may be null to skip it;
     * dgamma and dbeta are overwritten unless accumulate.
     */
    void scaleShiftBackward(Tensor x, Tensor gamma, Tensor g, Tensor dgamma, Tensor dbeta, Tensor dx, boolean accumulate);

    /** Row i of x: [t, d] times s[i], s: [t]. */
    void rowScale(Tensor s, Tensor x);

    // ---- transformer: attention, LayerNorm, token rows ----

    /**
     * Fused multi-head attention over {@code batch} sequences: out_i = Σ_j softmax_j(scale·q_i·k_j)·v_j
     * per head over the keys j < keyLengths[s] of sequence s (j <= i too when causal); every query
     * row, padded ones included, attends to those keys, as BERT's padding mask does.
     * q, k, v, out: [batch·t, heads·headDim], headDim <= 256; keyLengths: batch entries in [1, t],
     * or null for all t keys; lse: [batch·heads, t] (out: each score row's log-sum-exp, which backward needs).
     */
    void attentionForward(long batch, int heads, float scale, boolean causal, int[] keyLengths, Tensor q, Tensor k,
                          Tensor v, Tensor out, Tensor lse);

    /**
     * dq, dk, dv (overwritten; dk and dv rows of masked keys are 0) from dout; the other arguments as
     * {@link #attentionForward}, out and lse its outputs.
     */
    void attentionBackward(long batch, int heads, float scale, boolean causal, int[] keyLengths, Tensor q, Tensor k,
                           Tensor v, Tensor out, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv);

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

    // ---- token embeddings (embedding.cpp) ----

    /** out: [n, d] (overwritten) = the rows ids[i] of table: [vocab, d]; ids: I32 with n elements, each in [0, vocab). */
    void embeddingForward(Tensor ids, Tensor table, Tensor out);

    /** dtable: [vocab, d] += row i of g: [n, d] at row ids[i] for every i (a repeated id's rows add up, in order). */
    void embeddingBackward(Tensor ids, Tensor g, Tensor dtable);

    @Override
    void close();
}
