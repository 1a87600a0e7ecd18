/* peft4j.h: the whole C ABI of libpeft4j.so (CPU kernels).
 *
 * Rules (docs/design.md): row-major float32 unless a name says otherwise; linear weights are
 * [d_out, d_in], activations [t, features]; the caller allocates every output and workspace;
 * every function returns 0 or a negative P4J_E* code and sets a thread-local message read by
 * p4j_last_error(). Nothing aborts, throws or prints across this boundary.
 * Outputs marked "+=" are accumulated into; all others are overwritten.
 */
#ifndef PEFT4J_H
#define PEFT4J_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define P4J_OK 0
#define P4J_EINVAL (-1)    /* bad argument: null pointer, negative or inconsistent size */
#define P4J_ENOMEM (-2)    /* an allocation inside a vendor library failed */
#define P4J_ENOTSUP (-3)   /* not supported on this machine or build */
#define P4J_EINTERNAL (-4) /* a vendor library reported an error */

#define P4J_CPU_AVX2 1
#define P4J_CPU_FMA 2
#define P4J_CPU_AVX512F 4
#define P4J_CPU_AVX512BF16 8
#define P4J_CPU_AVX512VBMI 16
#define P4J_CPU_AVX512VNNI 32

typedef struct p4j_ctx p4j_ctx;

/* ---- library ---- */
const char* p4j_last_error(void);
/* major, minor, patch: [1] each */
int32_t p4j_version(int32_t* major, int32_t* minor, int32_t* patch);
/* Human-readable build facts: compiler, BLAS library and version, OpenMP runtime. */
const char* p4j_build_info(void);
/* features: [1], a P4J_CPU_* bitmask of what this CPU supports and the kernels use */
int32_t p4j_cpu_features(int32_t* features);
/* Threads 0 = all cores. out: [1] */
int32_t p4j_ctx_create(int32_t threads, p4j_ctx** out);
int32_t p4j_ctx_destroy(p4j_ctx* ctx);
/* threads: [1] */
int32_t p4j_ctx_threads(const p4j_ctx* ctx, int32_t* threads);
/* Advise [ptr, ptr+bytes) for transparent huge pages (first touch is ~30x cheaper here). */
int32_t p4j_mem_advise_huge(void* ptr, int64_t bytes);

/* ---- GEMM (lowrank.cpp) ----
 * c = alpha * op(a) * op(b) + beta * c; op(x) = x or xᵀ (trans_* = 0 or 1).
 * op(a): [m, k] with leading dimension lda; op(b): [k, n], ldb; c: [m, n], ldc. */
int32_t p4j_gemm(p4j_ctx* ctx, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float beta, float* c, int64_t ldc);

/* ---- low-rank adapter (lowrank.cpp) ----
 * Forward: h = x·aᵀ; y += s·h·bᵀ.
 * x: [t, d_in]; a: [r, d_in]; b: [d_out, r]; h: [t, r] (out, kept for backward); y: [t, d_out] (+=) */
int32_t p4j_lowrank_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float s,
                            const float* x, const float* a, const float* b, float* h, float* y);
/* Backward: gb = g·b; db = s·gᵀ·h; da = s·gbᵀ·x; dx += s·gb·a.
 * x: [t, d_in]; a: [r, d_in]; b: [d_out, r]; h: [t, r] (from forward); g: [t, d_out];
 * gb: [t, r] (workspace); da: [r, d_in]; db: [d_out, r]; dx: [t, d_in] (+=, may be null).
 * da and db are overwritten when accumulate == 0 and added to otherwise. */
int32_t p4j_lowrank_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float* x, const float* a, const float* b, const float* h,
                             const float* g, float* gb, float* da, float* db, float* dx,
                             int32_t accumulate);

/* ---- elementwise (elementwise.cpp) ---- */
/* y: [t, d] += bias: [d] on every row */
int32_t p4j_bias_add(p4j_ctx* ctx, int64_t t, int64_t d, const float* bias, float* y);
/* x: [t, d]; out: [d] = column sums (overwritten when accumulate == 0, added to otherwise) */
int32_t p4j_colsum(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, float* out, int32_t accumulate);
/* x, y: [n]; y = max(x, 0) (y may equal x) */
int32_t p4j_relu_forward(p4j_ctx* ctx, int64_t n, const float* x, float* y);
/* x, g, dx: [n]; dx = g where x > 0, else 0 (x is the forward input) */
int32_t p4j_relu_backward(p4j_ctx* ctx, int64_t n, const float* x, const float* g, float* dx);
/* x, y: [n]; y = x·Φ(x) (exact erf form, as torch.nn.GELU()) */
int32_t p4j_gelu_forward(p4j_ctx* ctx, int64_t n, const float* x, float* y);
/* x, g, dx: [n]; dx = g·(Φ(x) + x·φ(x)) */
int32_t p4j_gelu_backward(p4j_ctx* ctx, int64_t n, const float* x, const float* g, float* dx);
/* x: [n] *= alpha */
int32_t p4j_scale(p4j_ctx* ctx, int64_t n, float alpha, float* x);
/* x, y: [n]; y += alpha·x */
int32_t p4j_axpy(p4j_ctx* ctx, int64_t n, float alpha, const float* x, float* y);
/* x, y, out: [n]; out = x ⊙ y (out may equal x or y) */
int32_t p4j_mul(p4j_ctx* ctx, int64_t n, const float* x, const float* y, float* out);
/* x: [n] = value */
int32_t p4j_fill(p4j_ctx* ctx, int64_t n, float value, float* x);
/* src, dst: [n] floats, not overlapping */
int32_t p4j_copy(p4j_ctx* ctx, int64_t n, const float* src, float* dst);
/* x: [t, c]; out: [t] = index of the first maximum of each row */
int32_t p4j_argmax_rows(p4j_ctx* ctx, int64_t t, int64_t c, const float* x, int32_t* out);

/* ---- loss (loss.cpp) ----
 * Softmax cross-entropy, mean over rows. logits, probs: [t, c]; labels: [t] in [0, c);
 * loss: [1]. Forward writes the row softmax to probs. Backward: dlogits = scale·(probs − onehot)/t
 * (scale = upstream gradient of the mean loss, usually 1). */
int32_t p4j_softmax_xent_forward(p4j_ctx* ctx, int64_t t, int64_t c, const float* logits,
                                 const int32_t* labels, float* probs, float* loss);
int32_t p4j_softmax_xent_backward(p4j_ctx* ctx, int64_t t, int64_t c, const float* probs,
                                  const int32_t* labels, float scale, float* dlogits);
/* pred, target, g: [n]; loss: [1] = mean((pred − target)²); g = 2·(pred − target)/n (g may be null) */
int32_t p4j_mse(p4j_ctx* ctx, int64_t n, const float* pred, const float* target, float* loss, float* g);

/* ---- optimizers (optim.cpp) ----
 * AdamW over a flat buffer. param, grad, m, v: [n]. step >= 1 is this update's number (bias
 * correction 1 − beta^step); decoupled weight decay: param −= lr·weight_decay·param first. */
int32_t p4j_adamw_step(p4j_ctx* ctx, int64_t n, float* param, const float* grad, float* m, float* v,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
/* SGD with momentum (PyTorch semantics, dampening 0): g' = grad + weight_decay·param;
 * buf = momentum·buf + g' (buf = g' when first != 0); param −= lr·(nesterov ? g' + momentum·buf : buf).
 * param, grad, buf: [n] (buf unused when momentum == 0, may be null then) */
int32_t p4j_sgd_step(p4j_ctx* ctx, int64_t n, float* param, const float* grad, float* buf, float lr,
                     float momentum, float weight_decay, int32_t nesterov, int32_t first);
/* x: [n]; out: [1] = Σ x² accumulated in double (for the global gradient norm) */
int32_t p4j_sumsq(p4j_ctx* ctx, int64_t n, const float* x, float* out);

/* ---- random numbers (rng.cpp) ----
 * Philox-4x32-10. Element i of a fill takes lane (offset + i) % 4 of the block for counter
 * (offset + i) / 4 under key seed, so results are bit-identical for any thread count and any
 * split of a fill into pieces at multiples of 4. out: [n] */
/* Values in [lo, hi) (lo when lo == hi). */
int32_t p4j_rng_uniform(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float lo, float hi, float* out);
/* Box-Muller on lane pairs (0,1) and (2,3). */
int32_t p4j_rng_normal(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float mean, float std, float* out);
/* U(−bound, bound) (values in [−bound, bound)), bound = sqrt(6 / ((1 + a²)·fan_in)), as torch.nn.init.kaiming_uniform_. */
int32_t p4j_rng_kaiming_uniform(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, int64_t fan_in,
                                float a, float* out);
/* Inverted dropout: mask[i] = 1 with probability 1 − p (uniform draw >= p), y = x·mask/(1 − p).
 * x, y: [n] (y may equal x); mask: [n] uint8 (out) */
int32_t p4j_dropout_forward(p4j_ctx* ctx, int64_t n, float p, int64_t seed, int64_t offset,
                            const float* x, uint8_t* mask, float* y);
/* g, dx: [n]; mask: [n]; dx = g·mask/(1 − p) */
int32_t p4j_dropout_backward(p4j_ctx* ctx, int64_t n, float p, const uint8_t* mask, const float* g, float* dx);

/* ---- diagonally scaled low-rank (scaled_lowrank.cpp), shared by VeRA and Tied-LoRA ----
 * Forward: h = x·a_sᵀ; z = (u ⊙ h)·b_sᵀ; y += s·v ⊙ z, a_s = a[:, :d_in] (rows of stride lda >= d_in,
 * as a slice of a shared wider A), b_s = the first d_out rows of b.
 * x: [t, d_in]; a: [r, lda]; b: [d_out, r]; u: [r] or null (ones); v: [d_out] or null (ones);
 * h: [t, r], z: [t, d_out] (out, kept for backward); work: [t·r] workspace; y: [t, d_out] (+=) */
int32_t p4j_scaled_lowrank_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, int64_t lda,
                                   float s, const float* x, const float* a, const float* b, const float* u,
                                   const float* v, float* h, float* z, float* work, float* y);
/* Backward, with g: [t, d_out], h and z from forward; work: [2·(t + d_out)·r] workspace.
 * du: [r] = s·Σ_rows (g·diag(v)·b_s) ⊙ h; dv: [d_out] = s·Σ_rows g ⊙ z;
 * da: [r, lda] (first d_in columns) = s·((g·diag(v)·b_s) ⊙ u)ᵀ·x; db: [d_out, r] = s·diag(v)·gᵀ·(u ⊙ h);
 * dx: [t, d_in] += s·((g·diag(v)·b_s) ⊙ u)·a_s. Any of du, dv, da, db, dx may be null (not computed);
 * du, dv, da, db are overwritten when accumulate == 0 and added to otherwise. */
int32_t p4j_scaled_lowrank_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, int64_t lda,
                                    float s, const float* x, const float* a, const float* b, const float* u,
                                    const float* v, const float* h, const float* z, const float* g, float* work,
                                    float* du, float* dv, float* da, float* db, float* dx, int32_t accumulate);
/* ---- rank-adaptive methods (rank_adaptive.cpp) ----
 * Gated low-rank forward (AdaLoRA's P·diag(Λ)·Q, SoRA's gate, DyLoRA's rank mask):
 * h = x·aᵀ; hg = h ⊙ g (per column); y += c·hg·bᵀ.
 * x: [t, d_in]; a: [r, d_in]; g: [r]; b: [d_out, r]; h: [t, r] (out, kept for backward);
 * hg: [t, r] (workspace); y: [t, d_out] (+=) */
int32_t p4j_rank_gated_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float c,
                               const float* x, const float* a, const float* g, const float* b, float* h,
                               float* hg, float* y);
/* Backward: gb = gy·b; dg = c·Σ_rows gb ⊙ h; db = c·gyᵀ·(h ⊙ g); da = c·(gb ⊙ g)ᵀ·x;
 * dx += c·(gb ⊙ g)·a. x, a, g, b, h as forward; gy: [t, d_out]; gb: [t, r] (out); ws: [t, r]
 * (workspace); da: [r, d_in], db: [d_out, r], dg: [r], dx: [t, d_in]: each may be null (not
 * computed); da, db, dg are overwritten when accumulate == 0 and added to otherwise, dx is added to. */
int32_t p4j_rank_gated_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float c,
                                const float* x, const float* a, const float* g, const float* b, const float* h,
                                const float* gy, float* gb, float* ws, float* da, float* db, float* dg,
                                float* dx, int32_t accumulate);
/* Importance EMAs in one pass (AdaLoRA): i = |w·grad|; ibar = beta1·ibar + (1 − beta1)·i;
 * ubar = beta2·ubar + (1 − beta2)·|i − ibar| (with the new ibar). w, grad, ibar, ubar: [n] */
int32_t p4j_rank_importance_update(p4j_ctx* ctx, int64_t n, const float* w, const float* grad, float* ibar,
                                   float* ubar, float beta1, float beta2);
/* Thresholding in place, xi >= 0. mode 0 (SoRA's code): x > xi: x −= xi; x < −xi: x += xi; then
 * |x| < xi: x = 0 (so |x| < 2·xi becomes 0, except |x| = xi, which stays). mode 1 (soft threshold):
 * |x| <= xi: 0, else x − sign(x)·xi. x: [n] */
int32_t p4j_rank_threshold(p4j_ctx* ctx, int64_t n, float xi, int32_t mode, float* x);
/* ---- NF4 4-bit quantisation, bitsandbytes-exact (nf4.cpp, nf4_matmul.cpp) ----
 * A weight is flattened row-major into n values, cut into blocks of blocksize (a power of two in
 * [32, 4096]; the last block may be short). packed: [(n + 1) / 2] bytes, element 2j in the high nibble
 * of byte j and 2j+1 in the low one (odd n: the last low nibble is 7, the code of 0.0); absmax:
 * [ceil(n / blocksize)] fp32. The rules, to the bit, are docs/algorithms.md §7.2 and §7.3. */
/* code: [16] the NF4 codebook (weight.quant_map); dyn: [256] the signed dynamic 8-bit map
 * (weight.nested_quant_map) */
int32_t p4j_nf4_tables(float* code, float* dyn);
/* x: [n] finite values -> packed, absmax */
int32_t p4j_nf4_quantize(p4j_ctx* ctx, int64_t n, int64_t blocksize, const float* x, uint8_t* packed, float* absmax);
/* out: [n] = code[q]·absmax[block] */
int32_t p4j_nf4_dequantize(p4j_ctx* ctx, int64_t n, int64_t blocksize, const uint8_t* packed, const float* absmax,
                           float* out);
/* out: [n] bf16 bit patterns = bf16(bf16(code[q])·absmax[block]), as bitsandbytes' bfloat16 output */
int32_t p4j_nf4_dequantize_bf16(p4j_ctx* ctx, int64_t n, int64_t blocksize, const uint8_t* packed,
                                const float* absmax, uint16_t* out);
/* Double quantisation of nb >= 1 block constants: offset: [1] = mean(absmax); absmax − offset in
 * blocks of 256: absmax2: [ceil(nb / 256)] = their absmax; qabsmax: [nb] = index of the nearest
 * dyn entry (the lower one on a tie) of (absmax − offset)·(1 / absmax2) clamped to [−1, 1]. */
int32_t p4j_nf4_double_quantize(p4j_ctx* ctx, int64_t nb, const float* absmax, uint8_t* qabsmax, float* absmax2,
                                float* offset);
/* absmax: [nb] = dyn[qabsmax]·absmax2[i / 256] + offset (fp32 product, then fp32 sum) */
int32_t p4j_nf4_dequantize_absmax(p4j_ctx* ctx, int64_t nb, const uint8_t* qabsmax, const float* absmax2,
                                  float offset, float* absmax);
/* floats: [1] = the workspace p4j_nf4_matmul / p4j_nf4_matmul_dx need for t rows (0 for t <= 16) */
int32_t p4j_nf4_workspace(int64_t t, int64_t d_in, int64_t d_out, int64_t* floats);
/* y: [t, d_out] = x·dequant(W)ᵀ with W [d_out, d_in] in NF4 (packed, absmax as above); x: [t, d_in];
 * workspace: p4j_nf4_workspace floats (may be null when that is 0) */
int32_t p4j_nf4_matmul(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* x,
                       const uint8_t* packed, const float* absmax, float* workspace, float* y);
/* dx: [t, d_in] = g·dequant(W); g: [t, d_out]; the rest as p4j_nf4_matmul */
int32_t p4j_nf4_matmul_dx(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* g,
                          const uint8_t* packed, const float* absmax, float* workspace, float* dx);
/* The kernel layout of one NF4 weight W [d_out, d_in] (d_in a positive multiple of 8), built once
 * per weight from the layout above for the products at few rows (p4j_nf4_matmul_rp). Rows in
 * groups of 16 (the last one padded), columns in chunks of 8: chunk k of group g is the 64 bytes at
 * codes[64·(g·d_in/8 + k)], byte 4l + b holding the code of W[16g + l, 8k + 2b] in its low nibble
 * and of W[16g + l, 8k + 2b + 1] in its high one (padding rows: 7, the code of 0.0); 64 more bytes
 * follow the last chunk (read, never used). scales: S = min(blocksize, largest power of two
 * dividing d_in) columns per segment, on which every row stays in one block;
 * scales[16·(g·d_in/S + s) + l] = absmax of the block of W[16g + l, s·S] (0 for padding rows).
 * code_bytes: [1], scale_floats: [1] = the sizes of codes and scales. */
int32_t p4j_nf4_rp_size(int64_t d_in, int64_t d_out, int64_t blocksize, int64_t* code_bytes, int64_t* scale_floats);
/* packed, absmax (the layout above, d_out·d_in weights) -> codes, scales (the kernel layout) */
int32_t p4j_nf4_repack(p4j_ctx* ctx, int64_t d_in, int64_t d_out, int64_t blocksize, const uint8_t* packed,
                       const float* absmax, uint8_t* codes, float* scales);
/* out: [d_out, d_in] = code[q]·scale from the kernel layout: the values p4j_nf4_dequantize gives */
int32_t p4j_nf4_rp_dequantize(p4j_ctx* ctx, int64_t d_in, int64_t d_out, int64_t blocksize, const uint8_t* codes,
                              const float* scales, float* out);
/* bytes: [1] = the workspace p4j_nf4_matmul_rp needs for t rows of x (0 unless t = 1) */
int32_t p4j_nf4_rp_workspace(int64_t t, int64_t d_in, int64_t* bytes);
/* y: [t, d_out] = x·dequant(W)ᵀ from the kernel layout; x: [t, d_in]; workspace: p4j_nf4_rp_workspace
 * bytes (may be null when that is 0). For each row and segment, Σ code[q]·x times the segment's
 * absmax, added in fp32 to the row's sum; Σ code[q]·x in fp32 in a fixed order, except at t = 1 on
 * AVX-512 with VBMI and VNNI: there, over each run of min(S, 64) columns whose x is finite, within
 * [2^-100, 2^100] and without outliers (n·max|x| <= 16·Σ|x| over its n nonzero x), x·code[q] is
 * rounded to a 24-bit fixed point of step 2^(e − 23) (max|x| < 2^e) and summed exactly: an error
 * of at most 2^-19·Σ|x| of the run, times absmax, per run. */
int32_t p4j_nf4_matmul_rp(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* x,
                          const uint8_t* codes, const float* scales, uint8_t* workspace, float* y);
/* ---- scaling (scaling.cpp) ----
 * Per-channel scaling of the scaling adapters (SSF, (IA)³, DoRA). */
/* x: [t, d]; out: [t] = L2 norm of each row (accumulated in double) */
int32_t p4j_row_norms(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, float* out);
/* x, y: [t, d] (y may equal x); gamma: [d]; beta: [d] or NULL; y = x ⊙ gamma (+ beta) on every row */
int32_t p4j_scale_shift_forward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* gamma,
                                const float* beta, float* y);
/* x, g: [t, d]; gamma, dgamma, dbeta: [d]; dx: [t, d] (may equal g). Each of dgamma (= Σ_rows g ⊙ x,
 * needs x), dbeta (= Σ_rows g) and dx (= g ⊙ gamma, needs gamma) may be NULL to skip it; dgamma and
 * dbeta are overwritten when accumulate == 0 and added to otherwise. */
int32_t p4j_scale_shift_backward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* gamma,
                                 const float* g, float* dgamma, float* dbeta, float* dx, int32_t accumulate);
/* x: [t, d]; s: [t]; x_i *= s_i for every row i */
int32_t p4j_row_scale(p4j_ctx* ctx, int64_t t, int64_t d, const float* s, float* x);
/* ---- attention (attention.cpp) ----
 * Multi-head scaled dot-product attention over b sequences of t tokens, fused per (sequence, head):
 * out_i = Σ_j softmax_j(scale·q_i·k_j)·v_j over the keys j < key_lengths[s] of sequence s (all t keys
 * when key_lengths is NULL), and j <= i as well when causal != 0. Every query row, padded ones too,
 * attends to those keys (as BERT's additive padding mask does). key_lengths: [b], each in [1, t].
 * Head h is columns [h·head_dim, (h+1)·head_dim) of every row; head_dim <= 256.
 * q, k, v, out: [b·t, heads·head_dim]; lse: [b, heads, t] = log Σ_j exp(scale·q_i·k_j) of each row
 * (written by forward, read by backward, which recomputes the probabilities from it). */
int32_t p4j_attention_forward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim, float scale,
                              int32_t causal, const int32_t* key_lengths, const float* q, const float* k,
                              const float* v, float* out, float* lse);
/* dout, dq, dk, dv: [b·t, heads·head_dim]; dq, dk, dv are overwritten (dk, dv rows of masked keys are
 * 0); the other arguments as forward (out and lse are forward's outputs). */
int32_t p4j_attention_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim, float scale,
                               int32_t causal, const int32_t* key_lengths, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, const float* dout, float* dq,
                               float* dk, float* dv);

/* ---- layernorm (layernorm.cpp) ----
 * y = (x − mean)·rstd·w + b per row, rstd = 1/sqrt(biased variance + eps), as torch.nn.LayerNorm.
 * x, y: [t, d]; w: [d]; b: [d] (may be null: no shift); mean, rstd: [t] (out, kept for backward). */
int32_t p4j_layernorm_forward(p4j_ctx* ctx, int64_t t, int64_t d, float eps, const float* x, const float* w,
                              const float* b, float* y, float* mean, float* rstd);
/* x̂ = (x − mean)·rstd, ĝ = g·w: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) (overwritten);
 * dw += Σ_rows g·x̂; db += Σ_rows g. x, g, dx: [t, d]; w, dw, db: [d]; mean, rstd: [t] from forward.
 * dx, dw and db may each be null (not wanted). */
int32_t p4j_layernorm_backward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* w, const float* mean,
                               const float* rstd, const float* g, float* dx, float* dw, float* db);

/* ---- tokens (tokens.cpp) ---- */
/* Images cut into p×p patches, row-major over the patch grid, each patch's pixels row-major.
 * x: [b, h·w]; out: [b·(h/p)·(w/p), p·p]; h and w multiples of p. */
int32_t p4j_patchify(p4j_ctx* ctx, int64_t b, int64_t h, int64_t w, int64_t p, const float* x, float* out);
/* The same n rows inserted into each of b sequences before its row at (0 <= at <= t).
 * x: [b·t, d]; rows: [n, d]; out: [b·(t + n), d]. */
int32_t p4j_tokens_insert(p4j_ctx* ctx, int64_t b, int64_t t, int64_t n, int64_t at, int64_t d, const float* x,
                          const float* rows, float* out);
/* Backward of p4j_tokens_insert: g: [b·(t + n), d]; dx: [b·t, d] = g without the inserted rows;
 * drows: [n, d] += the inserted rows of g summed over sequences. dx and drows may be null. */
int32_t p4j_tokens_insert_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t n, int64_t at, int64_t d,
                                   const float* g, float* dx, float* drows);
/* out: [b, d] = row index (0 <= index < t) of each sequence of x: [b·t, d] (the class token). */
int32_t p4j_tokens_gather(p4j_ctx* ctx, int64_t b, int64_t t, int64_t index, int64_t d, const float* x, float* out);
/* dx: [b·t, d] = g: [b, d] in row index of each sequence, 0 elsewhere (overwritten). */
int32_t p4j_tokens_gather_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t index, int64_t d, const float* g,
                                   float* dx);
/* ---- Kronecker and Hadamard adapters (kron.cpp) ----
 * Kronecker: ΔW = s·(a⊗b) in torch.kron order, ΔW[i·b1+k, j·b2+l] = a[i,j]·b[k,l], a: [a1, a2],
 * b: [b1, b2], d_out = a1·b1, d_in = a2·b2; never formed by forward or backward. Each row of x is
 * read row-major as Xm [a2, b2], each row of y, g as Ym, Gm [a1, b1]: Ym += s·a·Xm·bᵀ.
 * Forward: p = a·Xm per row (kept for backward); y += s·p·bᵀ.
 * x: [t, d_in]; p: [t, a1·b2] (out); y: [t, d_out] (+=) */
int32_t p4j_kron_forward(p4j_ctx* ctx, int64_t t, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s,
                         const float* x, const float* a, const float* b, float* p, float* y);
/* Backward: q = Gm·b per row; db = s·Σ_rows Gmᵀ·p; da = s·Σ_rows q·Xmᵀ; dXm += s·aᵀ·q.
 * x, p as forward; g: [t, d_out]; q: [t, a1·b2] (workspace); da: [a1, a2]; db: [b1, b2];
 * dx: [t, d_in] (+=, may be null). da and db are overwritten when accumulate == 0, added to otherwise. */
int32_t p4j_kron_backward(p4j_ctx* ctx, int64_t t, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s,
                          const float* x, const float* a, const float* b, const float* p, const float* g, float* q,
                          float* da, float* db, float* dx, int32_t accumulate);
/* out: [a1·b1, a2·b2] = s·kron(a, b), or += when accumulate != 0 (merge / unmerge, ΔW for saving) */
int32_t p4j_kron(p4j_ctx* ctx, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s, const float* a,
                 const float* b, float* out, int32_t accumulate);
/* Hadamard (LoHa): dw = s·(w1a·w1b) ⊙ (w2a·w2b). w1a, w2a: [d_out, r]; w1b, w2b: [r, d_in];
 * dw: [d_out, d_in] (out). No temporary of dw's size. */
int32_t p4j_hadamard_rebuild(p4j_ctx* ctx, int64_t d_out, int64_t d_in, int64_t r, float s, const float* w1a,
                             const float* w1b, const float* w2a, const float* w2b, float* dw);
/* Backward from gw = ∂L/∂ΔW: T1 = s·gw ⊙ (w2a·w2b), T2 = s·gw ⊙ (w1a·w1b); dw1a = T1·w1bᵀ,
 * dw1b = w1aᵀ·T1, dw2a = T2·w2bᵀ, dw2b = w2aᵀ·T2. gw: [d_out, d_in] (read, then overwritten with T1);
 * ws: [ws_rows, d_in] workspace, ws_rows >= 1 (T2 is built ws_rows rows at a time);
 * dw1a, dw2a: [d_out, r]; dw1b, dw2b: [r, d_in] (overwritten when accumulate == 0, added to otherwise). */
int32_t p4j_hadamard_backward(p4j_ctx* ctx, int64_t d_out, int64_t d_in, int64_t r, float s, const float* w1a,
                              const float* w1b, const float* w2a, const float* w2b, float* gw, int64_t ws_rows,
                              float* ws, float* dw1a, float* dw1b, float* dw2a, float* dw2b, int32_t accumulate);

/* ---- embedding (embedding.cpp) ----
 * Token embedding lookup. ids: [n] int32, each in [0, vocab) (else P4J_EINVAL, nothing written);
 * table, d_table: [vocab, d]; out, g: [n, d].
 * Forward: out[i] = table[ids[i]] (overwritten). */
int32_t p4j_embedding_forward(p4j_ctx* ctx, int64_t n, int64_t vocab, int64_t d, const int32_t* ids,
                              const float* table, float* out);
/* Backward: d_table[ids[i]] += g[i] for every i; a repeated id's rows are added in order of i
 * (deterministic for every thread count). */
int32_t p4j_embedding_backward(p4j_ctx* ctx, int64_t n, int64_t vocab, int64_t d, const int32_t* ids, const float* g,
                               float* d_table);

/* ---- ceilings for benchmarks (abi.cpp) ----
 * Runs iters rounds of independent FMA chains on every context thread at the widest vector width;
 * flops: [1] = floating-point operations done; sink: [1] (keeps the work observable). */
int32_t p4j_fma_peak(p4j_ctx* ctx, int64_t iters, int64_t* flops, float* sink);

#ifdef __cplusplus
}
#endif
#endif
