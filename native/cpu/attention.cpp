// attention.cpp: fused multi-head scaled dot-product attention, forward and backward, for a batch
// of short sequences. One (sequence, head) pair is one task: its scores are computed a key block
// at a time into a stack buffer and reduced with an online (running-max) softmax, so the
// [t, t] score matrix is never written to memory; the backward recomputes the probabilities
// from q, k and the saved row log-sum-exp. dk and dv of a pair are written by that pair's thread
// only, so the result does not depend on the thread count.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

constexpr int64_t kKeyBlock = 64;        // scores held on the stack at a time
constexpr int64_t kMaxHeadDim = 256;     // accumulators held on the stack
constexpr int64_t kGrainAttention = 16384;  // multiply-adds per thread below which fewer threads run
// A pair whose k (and v) fit in this many floats is first copied transposed, [head_dim, t], onto the
// stack: the dot products of one query with a block of keys then run along the keys, contiguous
// and vectorised, instead of one horizontal sum per key. Larger pairs read k and v in place.
constexpr int64_t kMaxCached = 16384;

P4J_INLINE float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// rows: [t, head_dim] with row stride ld -> out: [head_dim, t].
P4J_INLINE void transpose_head(int64_t t, int64_t dh, int64_t ld, const float* __restrict rows, float* __restrict out) {
  for (int64_t j = 0; j < t; ++j)
    for (int64_t c = 0; c < dh; ++c) out[c * t + j] = rows[j * ld + c];
}

// out[jj] = x·row(j0 + jj) for jj < nb: from the transposed copy xT [dh, t] when given, else from the
// rows themselves (stride ld).
P4J_INLINE void block_dots(const float* __restrict x, const float* __restrict xT, const float* __restrict rows, int64_t t,
                           int64_t dh, int64_t ld, int64_t j0, int64_t nb, float* __restrict out) {
  if (xT != nullptr) {
    for (int64_t jj = 0; jj < nb; ++jj) out[jj] = 0.0f;
    for (int64_t c = 0; c < dh; ++c) {
      const float xc = x[c];
      const float* col = xT + c * t + j0;
      for (int64_t jj = 0; jj < nb; ++jj) out[jj] += xc * col[jj];
    }
  } else {
    for (int64_t jj = 0; jj < nb; ++jj) out[jj] = dot(x, rows + (j0 + jj) * ld, dh);
  }
}

// One (sequence, head): q, k, v, out point at its first row's head columns; ld is the row stride
// (heads·head_dim); lse: [t].
P4J_INLINE void attn_fwd_body(int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal,
                              const float* q, const float* k, const float* v, float* out, float* lse) {
  float s[kKeyBlock];
  float acc[kMaxHeadDim];
  float kT[kMaxCached];
  const bool cached = t * dh <= kMaxCached;  // true: demo shapes, AttentionTest t <= 130; false: AttentionTest 300 x 64
  if (cached) transpose_head(t, dh, ld, k, kT);
  for (int64_t i = 0; i < t; ++i) {
    const float* qi = q + i * ld;
    const int64_t keys = causal != 0 && i + 1 < len ? i + 1 : len;
    float m = -__builtin_huge_valf(), l = 0.0f;
    for (int64_t c = 0; c < dh; ++c) acc[c] = 0.0f;
    for (int64_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
      const int64_t nb = keys - j0 < kKeyBlock ? keys - j0 : kKeyBlock;
      block_dots(qi, cached ? kT : nullptr, k, t, dh, ld, j0, nb, s);
      float bm = -__builtin_huge_valf();
      for (int64_t jj = 0; jj < nb; ++jj) {
        s[jj] *= scale;
        bm = s[jj] > bm ? s[jj] : bm;
      }
      const float mn = bm > m ? bm : m;
      // Rescale what earlier blocks accumulated (exp(-inf) = 0 on the first block).
      const float corr = exp_f(m - mn);
      l *= corr;
      for (int64_t c = 0; c < dh; ++c) acc[c] *= corr;
      float bl = 0.0f;
      for (int64_t jj = 0; jj < nb; ++jj) {
        s[jj] = exp_f(s[jj] - mn);
        bl += s[jj];
      }
      l += bl;
      for (int64_t jj = 0; jj < nb; ++jj) {
        const float p = s[jj];
        const float* vj = v + (j0 + jj) * ld;
        for (int64_t c = 0; c < dh; ++c) acc[c] += p * vj[c];
      }
      m = mn;
    }
    const float inv = 1.0f / l;
    float* oi = out + i * ld;
    for (int64_t c = 0; c < dh; ++c) oi[c] = acc[c] * inv;
    lse[i] = m + std::log(l);
  }
}
P4J_MULTIVERSION(attn_fwd,
                 (int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal, const float* q,
                  const float* k, const float* v, float* out, float* lse),
                 (t, len, dh, ld, scale, causal, q, k, v, out, lse))

// With p_ij = exp(scale·q_i·k_j − lse_i), D_i = dout_i·out_i, ds_ij = p_ij·(dout_i·v_j − D_i):
// dq_i = scale·Σ_j ds_ij k_j, dk_j = scale·Σ_i ds_ij q_i, dv_j = Σ_i p_ij dout_i.
P4J_INLINE void attn_bwd_body(int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal,
                              const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                              float* dq, float* dk, float* dv) {
  float p[kKeyBlock], ds[kKeyBlock];
  float acc[kMaxHeadDim];
  float kT[kMaxCached], vT[kMaxCached];
  const bool cached = t * dh <= kMaxCached;  // both sides: as in attn_fwd_body
  if (cached) {
    transpose_head(t, dh, ld, k, kT);
    transpose_head(t, dh, ld, v, vT);
  }
  for (int64_t j = 0; j < t; ++j) {
    for (int64_t c = 0; c < dh; ++c) dk[j * ld + c] = 0.0f;
    for (int64_t c = 0; c < dh; ++c) dv[j * ld + c] = 0.0f;
  }
  for (int64_t i = 0; i < t; ++i) {
    const float* qi = q + i * ld;
    const float* gi = dout + i * ld;
    const float di = dot(gi, out + i * ld, dh);
    const float li = lse[i];
    const int64_t keys = causal != 0 && i + 1 < len ? i + 1 : len;
    for (int64_t c = 0; c < dh; ++c) acc[c] = 0.0f;
    for (int64_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
      const int64_t nb = keys - j0 < kKeyBlock ? keys - j0 : kKeyBlock;
      block_dots(qi, cached ? kT : nullptr, k, t, dh, ld, j0, nb, p);
      block_dots(gi, cached ? vT : nullptr, v, t, dh, ld, j0, nb, ds);
      for (int64_t jj = 0; jj < nb; ++jj) {
        p[jj] = exp_f(scale * p[jj] - li);
        ds[jj] = p[jj] * (ds[jj] - di);
      }
      for (int64_t jj = 0; jj < nb; ++jj) {
        const int64_t j = j0 + jj;
        const float* kj = k + j * ld;
        float* dkj = dk + j * ld;
        float* dvj = dv + j * ld;
        const float a = ds[jj], sa = scale * ds[jj], pj = p[jj];
        for (int64_t c = 0; c < dh; ++c) acc[c] += a * kj[c];
        for (int64_t c = 0; c < dh; ++c) dkj[c] += sa * qi[c];
        for (int64_t c = 0; c < dh; ++c) dvj[c] += pj * gi[c];
      }
    }
    float* dqi = dq + i * ld;
    for (int64_t c = 0; c < dh; ++c) dqi[c] = scale * acc[c];
  }
}
P4J_MULTIVERSION(attn_bwd,
                 (int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal, const float* q,
                  const float* k, const float* v, const float* out, const float* lse, const float* dout, float* dq,
                  float* dk, float* dv),
                 (t, len, dh, ld, scale, causal, q, k, v, out, lse, dout, dq, dk, dv))

int32_t check_attention(const char* fn, const p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim,
                        float scale) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "b", b));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "heads", heads));
  P4J_TRY(check_nonneg(fn, "head_dim", head_dim));
  if (head_dim > kMaxHeadDim)
    return fail(P4J_EINVAL, "%s: head_dim (%lld) > %lld is not supported", fn, static_cast<long long>(head_dim),
                static_cast<long long>(kMaxHeadDim));
  P4J_TRY(check_dims(fn, "[b, t]", b, t));
  P4J_TRY(check_dims(fn, "[heads, head_dim]", heads, head_dim));
  P4J_TRY(check_dims(fn, "q [b·t, heads·head_dim]", b * t, heads * head_dim));
  P4J_TRY(check_dims(fn, "lse [b·heads, t]", b * heads, t));
  return check_finite(fn, "scale", scale);
}

// key_lengths (may be null): b entries, each in [1, t].
int32_t check_key_lengths(const char* fn, int64_t b, int64_t t, const int32_t* key_lengths) {
  if (key_lengths == nullptr) return P4J_OK;
  for (int64_t s = 0; s < b; ++s) {
    if (key_lengths[s] < 1 || key_lengths[s] > t)
      return fail(P4J_EINVAL, "%s: key_lengths[%lld] = %d is outside [1, t = %lld]", fn, static_cast<long long>(s),
                  key_lengths[s], static_cast<long long>(t));
  }
  return P4J_OK;
}

// Runs f(sequence, head) for every pair, spread over threads by whole pairs.
template <class F>
void for_each_pair(const p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim, F&& f) {
  const int64_t pairs = b * heads;
  int nt = threads_for(ctx, pairs * t * t * (head_dim > 0 ? head_dim : 1), kGrainAttention);
  if (nt > pairs) nt = static_cast<int>(pairs);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t pr = 0; pr < pairs; ++pr) f(pr / heads, pr % heads);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_attention_forward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim, float scale,
                              int32_t causal, const int32_t* key_lengths, const float* q, const float* k, const float* v,
                              float* out, float* lse) {
  const char* fn = "p4j_attention_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_attention(fn, ctx, b, t, heads, head_dim, scale));
    const int64_t n = b * t * heads * head_dim;
    P4J_TRY(check_ptr(fn, "q", q, n));
    P4J_TRY(check_ptr(fn, "k", k, n));
    P4J_TRY(check_ptr(fn, "v", v, n));
    P4J_TRY(check_ptr(fn, "out", out, n));
    P4J_TRY(check_ptr(fn, "lse", lse, b * heads * t));
    P4J_TRY(check_key_lengths(fn, b, t, key_lengths));
    if (n == 0) return P4J_OK;
    const int64_t ld = heads * head_dim;
    for_each_pair(ctx, b, t, heads, head_dim, [&](int64_t s, int64_t h) {
      const int64_t off = s * t * ld + h * head_dim;
      const int64_t len = key_lengths != nullptr ? key_lengths[s] : t;
      attn_fwd_kernel(t, len, head_dim, ld, scale, causal, q + off, k + off, v + off, out + off, lse + (s * heads + h) * t);
    });
    return P4J_OK;
  });
}

int32_t p4j_attention_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t heads, int64_t head_dim, float scale,
                               int32_t causal, const int32_t* key_lengths, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const char* fn = "p4j_attention_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_attention(fn, ctx, b, t, heads, head_dim, scale));
    const int64_t n = b * t * heads * head_dim;
    P4J_TRY(check_ptr(fn, "q", q, n));
    P4J_TRY(check_ptr(fn, "k", k, n));
    P4J_TRY(check_ptr(fn, "v", v, n));
    P4J_TRY(check_ptr(fn, "out", out, n));
    P4J_TRY(check_ptr(fn, "lse", lse, b * heads * t));
    P4J_TRY(check_ptr(fn, "dout", dout, n));
    P4J_TRY(check_ptr(fn, "dq", dq, n));
    P4J_TRY(check_ptr(fn, "dk", dk, n));
    P4J_TRY(check_ptr(fn, "dv", dv, n));
    P4J_TRY(check_key_lengths(fn, b, t, key_lengths));
    if (n == 0) return P4J_OK;
    const int64_t ld = heads * head_dim;
    for_each_pair(ctx, b, t, heads, head_dim, [&](int64_t s, int64_t h) {
      const int64_t off = s * t * ld + h * head_dim;
      const int64_t len = key_lengths != nullptr ? key_lengths[s] : t;
      attn_bwd_kernel(t, len, head_dim, ld, scale, causal, q + off, k + off, v + off, out + off,
                      lse + (s * heads + h) * t, dout + off, dq + off, dk + off, dv + off);
    });
    return P4J_OK;
  });
}

}  // extern "C"
