// attention.cpp: fused multi-head scaled dot-product attention, forward and backward, for a batch
// of short sequences. One (sequence, head) pair is one task. Its keys are taken a block of up to 4
// vectors of W keys at a time (W = 16, 8, 4 for AVX-512, AVX2, baseline; fewer vectors for heads
// wider than a 16 KiB tile allows) and packed on the stack:
// k (and, in backward, v) transposed, [head_dim, block], so that R = 4 query rows at once compute
// their scores against W keys per multiply-add, and v (in backward k) as rows padded to whole
// vectors, so that the weighted sums run along head_dim. Softmax is online (running maximum)
// across key blocks, so the [t, t] score matrix is never written to memory; the backward
// recomputes the probabilities from q, k and the saved row log-sum-exp. dk and dv of a pair are
// written by that pair's thread only, so the result does not depend on the thread count.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

constexpr int64_t kMaxHeadDim = 256;        // head_dim limit (the stack tiles below)
constexpr int64_t kTileFloats = 4096;       // one stack tile (16 KiB): key block x padded head_dim, query tile x padded head_dim
constexpr int kRows = 4;                    // query rows computed together
constexpr int64_t kGrainAttention = 16384;  // multiply-adds per thread below which fewer threads run

// head_dim rounded up to whole vectors.
template <int W>
P4J_INLINE int64_t padded(int64_t dh) {
  return (dh + W - 1) / W * W;
}

// Vectors of W keys per key block: up to 4, fewer when head_dim is so wide that a block of
// packed rows would not fit a tile.
template <int W>
P4J_INLINE int block_vectors(int64_t dhp) {
  const int64_t v = kTileFloats / (dhp * W);
  return v >= 4 ? 4 : static_cast<int>(v);  // >= 1: dhp <= 256, W <= 16
}

// nk keys, rows of x (stride ld, dh columns) -> xT [dh, kbw] (kbw: the block's vectors·W), zero in
// the columns nk..kbw.
template <int W>
P4J_INLINE void pack_transposed(const float* __restrict x, int64_t ld, int64_t dh, int64_t nk, int64_t kbw,
                                float* __restrict xT) {
  if (nk < kbw)  // the last vector of each row holds the padding: zero it whole, then fill
    for (int64_t c = 0; c < dh; ++c) vstore<W>(xT + c * kbw + kbw - W, vf<W>{});
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t c = 0; c < dh; ++c) xT[c * kbw + j] = x[j * ld + c];
}

// n rows of x (stride ld, dh columns) -> rows of dhp floats, zero past dh. Whole vectors move as
// such (a plain copy loop becomes a memmove call per row, costly for rows this short).
template <int W>
P4J_INLINE void pack_rows(const float* __restrict x, int64_t ld, int64_t dh, int64_t dhp, int64_t n,
                          float* __restrict out) {
  for (int64_t j = 0; j < n; ++j) {
    const float* xj = x + j * ld;
    float* oj = out + j * dhp;
    int64_t c = 0;
    for (; c + W <= dh; c += W) vstore<W>(oj + c, vload<W>(xj + c));
    if (c < dh) {
      alignas(64) float tail[W] = {};
      for (int64_t e = 0; e < dh - c; ++e) tail[e] = xj[c + e];
      vstore<W>(oj + c, vload<W>(tail));
    }
  }
}

// The first dh floats of n padded rows (stride dhp) -> rows of out (stride ld), the inverse of pack_rows.
template <int W>
P4J_INLINE void unpack_rows(const float* __restrict rows, int64_t dhp, int64_t dh, int64_t n, int64_t ld,
                            float* __restrict out) {
  for (int64_t j = 0; j < n; ++j) {
    const float* rj = rows + j * dhp;
    float* oj = out + j * ld;
    int64_t c = 0;
    for (; c + W <= dh; c += W) vstore<W>(oj + c, vload<W>(rj + c));
    for (; c < dh; ++c) oj[c] = rj[c];
  }
}

// a·b over n floats, W lanes.
template <int W>
P4J_INLINE float dot_v(const float* __restrict a, const float* __restrict b, int64_t n) {
  vf<W> acc = vf<W>{};
  int64_t c = 0;
  for (; c + W <= n; c += W) acc += vload<W>(a + c) * vload<W>(b + c);
  float s = hsum<W>(acc);
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

// s[r][v] = x_r · (keys v·W .. v·W + W − 1) for R rows x_r = x + r·ld: dh multiply-adds per vector,
// the R·NKV accumulators in registers.
template <int W, int NKV, int R>
P4J_INLINE void block_scores(const float* __restrict x, int64_t ld, int64_t dh, const float* __restrict xT,
                             vf<W> (&s)[R][NKV]) {
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) s[r][v] = vf<W>{};
  for (int64_t c = 0; c < dh; ++c) {
    vf<W> kv[NKV];
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) kv[v] = vload<W>(xT + c * (NKV * W) + v * W);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float xr = x[r * ld + c];
#pragma GCC unroll 4
      for (int v = 0; v < NKV; ++v) s[r][v] += xr * kv[v];
    }
  }
}

// -inf in the lanes of keys at or past `valid` (block-relative).
template <int W, int NKV>
P4J_INLINE void mask_from(int64_t valid, vf<W> (&s)[NKV]) {
  vi<W> lane;
#pragma GCC unroll 16
  for (int l = 0; l < W; ++l) lane[l] = l;
  const vf<W> ninf = vf<W>{} - __builtin_huge_valf();
#pragma GCC unroll 4
  for (int v = 0; v < NKV; ++v) s[v] = lane + v * W < static_cast<int32_t>(valid) ? s[v] : ninf;
}

// A pair's sizes and its queries (at its first row's head columns, row stride ld); len: its keys.
struct Pair {
  int64_t t, len, dh, ld;
  float scale;
  bool causal;
  const float* q;
};

// Keys row i attends to: j < keys(i).
P4J_INLINE int64_t keys_of(const Pair& p, int64_t i) { return p.causal && i + 1 < p.len ? i + 1 : p.len; }

// R query rows from row i against the key block [j0, j0 + nk) (kT: its transposed keys, vr: its
// value rows padded to dhp): online-softmax update of the rows' m, l and acc (stride dhp).
template <int W, int NKV, int R>
P4J_INLINE void fwd_rows(const Pair& p, int64_t i, int64_t j0, int64_t dhp, const float* __restrict kT,
                         const float* __restrict vr, float* __restrict m, float* __restrict l, float* __restrict acc) {
  vf<W> s[R][NKV];
  block_scores<W, NKV, R>(p.q + i * p.ld, p.ld, p.dh, kT, s);
  alignas(64) float pr[R][NKV * W];
  float corr[R];
  int64_t upto = 0;  // keys of the block any of the R rows attends to
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const int64_t valid = keys_of(p, i + r) - j0;
    upto = valid > upto ? valid : upto;
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) s[r][v] *= p.scale;
    mask_from<W, NKV>(valid, s[r]);
    vf<W> mx = s[r][0];
#pragma GCC unroll 4
    for (int v = 1; v < NKV; ++v) mx = mx > s[r][v] ? mx : s[r][v];
    const float bm = hmax<W>(mx);
    const float mn = bm > m[r] ? bm : m[r];
    corr[r] = exp_f(m[r] - mn);  // 0 on the first block (m = -inf); 1 for a row that sees no key here
    vf<W> ls = vf<W>{};
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) {
      const vf<W> e = exp_nonpos_v<W>(s[r][v] - mn);
      ls += e;
      vstore<W>(pr[r] + v * W, e);
    }
    l[r] = l[r] * corr[r] + hsum<W>(ls);
    m[r] = mn;
  }
  if (upto > NKV * W) upto = NKV * W;
  for (int64_t u = 0; u < dhp; u += W) {
    vf<W> a[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) a[r] = vload<W>(acc + r * dhp + u) * corr[r];
    for (int64_t j = 0; j < upto; ++j) {
      const vf<W> vj = vload<W>(vr + j * dhp + u);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) a[r] += pr[r][j] * vj;
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) vstore<W>(acc + r * dhp + u, a[r]);
  }
}

template <int W, int R>
P4J_INLINE void fwd_rows_n(int nkv, const Pair& p, int64_t i, int64_t j0, int64_t dhp, const float* kT, const float* vr,
                           float* m, float* l, float* acc) {
  switch (nkv) {
    case 1: fwd_rows<W, 1, R>(p, i, j0, dhp, kT, vr, m, l, acc); return;
    case 2: fwd_rows<W, 2, R>(p, i, j0, dhp, kT, vr, m, l, acc); return;
    case 3: fwd_rows<W, 3, R>(p, i, j0, dhp, kT, vr, m, l, acc); return;
    default: fwd_rows<W, 4, R>(p, i, j0, dhp, kT, vr, m, l, acc); return;
  }
}

// One (sequence, head): out rows (stride ld) and lse [t]. Query tiles of up to kTileFloats / dhp
// rows keep their accumulators on the stack; each tile runs over the key blocks.
template <int W>
P4J_INLINE void attn_fwd_body(int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal,
                              const float* q, const float* k, const float* v, float* out, float* lse) {
  const Pair p{t, len, dh, ld, scale, causal != 0, q};
  const int64_t dhp = padded<W>(dh);
  const int nkv = block_vectors<W>(dhp);
  const int64_t kb = nkv * W;
  const int64_t tile = kTileFloats / dhp;
  alignas(64) float kT[kTileFloats], vr[kTileFloats], acc[kTileFloats];
  float m[kTileFloats / W], l[kTileFloats / W];
  for (int64_t q0 = 0; q0 < t; q0 += tile) {
    const int64_t nq = t - q0 < tile ? t - q0 : tile;
    for (int64_t r = 0; r < nq; ++r) m[r] = -__builtin_huge_valf(), l[r] = 0.0f;
    for (int64_t x = 0; x < nq * dhp; ++x) acc[x] = 0.0f;
    const int64_t hi = keys_of(p, q0 + nq - 1);  // the last row sees the most keys
    for (int64_t j0 = 0; j0 < hi; j0 += kb) {
      const int64_t nk = hi - j0 < kb ? hi - j0 : kb;
      const int nv = static_cast<int>((nk + W - 1) / W);  // vectors of keys in this block
      pack_transposed<W>(k + j0 * ld, ld, dh, nk, nv * W, kT);
      pack_rows<W>(v + j0 * ld, ld, dh, dhp, nk, vr);
      // Causal: rows before j0 see no key of this block.
      const int64_t r0 = p.causal && j0 > q0 ? j0 - q0 : 0;
      int64_t r = r0;
      for (; r + kRows <= nq; r += kRows)
        fwd_rows_n<W, kRows>(nv, p, q0 + r, j0, dhp, kT, vr, m + r, l + r, acc + r * dhp);
      for (; r < nq; ++r) fwd_rows_n<W, 1>(nv, p, q0 + r, j0, dhp, kT, vr, m + r, l + r, acc + r * dhp);
    }
    for (int64_t r = 0; r < nq; ++r) {
      const float inv = 1.0f / l[r];
      float* o = out + (q0 + r) * ld;
      for (int64_t c = 0; c < dh; ++c) o[c] = acc[r * dhp + c] * inv;
      lse[q0 + r] = m[r] + std::log(l[r]);
    }
  }
}
P4J_MULTIVERSION_W(attn_fwd,
                   (int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal, const float* q,
                    const float* k, const float* v, float* out, float* lse),
                   (t, len, dh, ld, scale, causal, q, k, v, out, lse))

// What a pair's backward reads besides Pair.
struct PairGrad {
  const float* out;
  const float* lse;
  const float* dout;
  float* dq;
};

// Backward of R query rows from row i against the key block [j0, j0 + nk): with
// p_ij = exp(scale·q_i·k_j − lse_i), D_i = dout_i·out_i, ds_ij = scale·p_ij·(dout_i·v_j − D_i):
// dq_i += Σ_j ds_ij k_j (rows of kr), dk_j += Σ_i ds_ij q_i, dv_j += Σ_i p_ij dout_i (dka, dva:
// the block's rows, stride dhp). qp, gp: scratch for R padded rows each.
template <int W, int NKV, int R>
P4J_INLINE void bwd_rows(const Pair& p, const PairGrad& g, int64_t i, int64_t j0, int64_t dhp,
                         const float* __restrict kT, const float* __restrict vT, const float* __restrict kr,
                         float* __restrict dka, float* __restrict dva, float* __restrict qp, float* __restrict gp) {
  vf<W> s[R][NKV], dp[R][NKV];
  block_scores<W, NKV, R>(p.q + i * p.ld, p.ld, p.dh, kT, s);
  block_scores<W, NKV, R>(g.dout + i * p.ld, p.ld, p.dh, vT, dp);
  alignas(64) float pr[R][NKV * W], ds[R][NKV * W];
  int64_t upto = 0;
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const int64_t row = i + r;
    const int64_t valid = keys_of(p, row) - j0;
    upto = valid > upto ? valid : upto;
    const float* gi = g.dout + row * p.ld;
    const float* oi = g.out + row * p.ld;
    const float di = dot_v<W>(gi, oi, p.dh);
    const float li = g.lse[row];
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) s[r][v] = s[r][v] * p.scale - li;
    mask_from<W, NKV>(valid, s[r]);
#pragma GCC unroll 4
    for (int v = 0; v < NKV; ++v) {
      const vf<W> e = exp_nonpos_v<W>(s[r][v]);  // scale·q·k − lse <= 0 up to rounding
      vstore<W>(pr[r] + v * W, e);
      vstore<W>(ds[r] + v * W, p.scale * e * (dp[r][v] - di));
    }
    pack_rows<W>(p.q + row * p.ld, p.ld, p.dh, dhp, 1, qp + r * dhp);
    pack_rows<W>(gi, p.ld, p.dh, dhp, 1, gp + r * dhp);
  }
  if (upto > NKV * W) upto = NKV * W;
  for (int64_t u = 0; u < dhp; u += W) {
    vf<W> a[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) a[r] = vf<W>{};
    vf<W> qv[R], gv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) qv[r] = vload<W>(qp + r * dhp + u), gv[r] = vload<W>(gp + r * dhp + u);
    for (int64_t j = 0; j < upto; ++j) {
      const vf<W> kj = vload<W>(kr + j * dhp + u);
      vf<W> dk = vload<W>(dka + j * dhp + u), dv = vload<W>(dva + j * dhp + u);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        a[r] += ds[r][j] * kj;
        dk += ds[r][j] * qv[r];
        dv += pr[r][j] * gv[r];
      }
      vstore<W>(dka + j * dhp + u, dk);
      vstore<W>(dva + j * dhp + u, dv);
    }
    // dq rows = a on the first key block (every row runs there), += a after; columns below dh only.
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float* dqi = g.dq + (i + r) * p.ld + u;
      if (u + W <= p.dh) {
        vstore<W>(dqi, j0 > 0 ? vload<W>(dqi) + a[r] : a[r]);
      } else {
        alignas(64) float tmp[W];
        vstore<W>(tmp, a[r]);
        for (int64_t c = 0; c < p.dh - u; ++c) dqi[c] = j0 > 0 ? dqi[c] + tmp[c] : tmp[c];
      }
    }
  }
}

template <int W, int R>
P4J_INLINE void bwd_rows_n(int nkv, const Pair& p, const PairGrad& g, int64_t i, int64_t j0, int64_t dhp, const float* kT,
                           const float* vT, const float* kr, float* dka, float* dva, float* qp, float* gp) {
  switch (nkv) {
    case 1: bwd_rows<W, 1, R>(p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp); return;
    case 2: bwd_rows<W, 2, R>(p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp); return;
    case 3: bwd_rows<W, 3, R>(p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp); return;
    default: bwd_rows<W, 4, R>(p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp); return;
  }
}

// One (sequence, head), key blocks outer: a block's dk and dv rows accumulate on the stack over
// all query rows, then are written once; dq rows are written by the first block (len >= 1: there
// is one) and accumulate in place over the others.
template <int W>
P4J_INLINE void attn_bwd_body(int64_t t, int64_t len, int64_t dh, int64_t ld, float scale, int32_t causal,
                              const float* q, const float* k, const float* v, const float* out, const float* lse,
                              const float* dout, float* dq, float* dk, float* dv) {
  const Pair p{t, len, dh, ld, scale, causal != 0, q};
  const PairGrad g{out, lse, dout, dq};
  const int64_t dhp = padded<W>(dh);
  const int nkv = block_vectors<W>(dhp);
  const int64_t kb = nkv * W;
  alignas(64) float kT[kTileFloats], vT[kTileFloats], kr[kTileFloats], dka[kTileFloats], dva[kTileFloats];
  alignas(64) float qp[kRows * kMaxHeadDim], gp[kRows * kMaxHeadDim];
  for (int64_t j0 = 0; j0 < len; j0 += kb) {
    const int64_t nk = len - j0 < kb ? len - j0 : kb;
    const int nv = static_cast<int>((nk + W - 1) / W);  // vectors of keys in this block
    pack_transposed<W>(k + j0 * ld, ld, dh, nk, nv * W, kT);
    pack_transposed<W>(v + j0 * ld, ld, dh, nk, nv * W, vT);
    pack_rows<W>(k + j0 * ld, ld, dh, dhp, nk, kr);
    for (int64_t x = 0; x < nk * dhp; ++x) dka[x] = dva[x] = 0.0f;
    int64_t i = p.causal ? j0 : 0;  // causal: rows before j0 see no key of this block
    for (; i + kRows <= t; i += kRows) bwd_rows_n<W, kRows>(nv, p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp);
    for (; i < t; ++i) bwd_rows_n<W, 1>(nv, p, g, i, j0, dhp, kT, vT, kr, dka, dva, qp, gp);
    unpack_rows<W>(dka, dhp, dh, nk, ld, dk + j0 * ld);
    unpack_rows<W>(dva, dhp, dh, nk, ld, dv + j0 * ld);
  }
  for (int64_t j = len; j < t; ++j) {  // keys no query sees
    for (int64_t c = 0; c < dh; ++c) dk[j * ld + c] = 0.0f;
    for (int64_t c = 0; c < dh; ++c) dv[j * ld + c] = 0.0f;
  }
}
P4J_MULTIVERSION_W(attn_bwd,
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
