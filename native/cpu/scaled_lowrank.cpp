// scaled_lowrank.cpp: the diagonally scaled low-rank op shared by VeRA and Tied-LoRA,
// y += s·v ⊙ ((u ⊙ (x·aᵀ))·bᵀ), and its backward.
//
// Four rank-r products with a t×d matrix are the least this op needs when only u and v train
// (VeRA): h = x·a_sᵀ and z = (h ⊙ u)·b_sᵀ forward, g·diag(v)·b_s and the dx product backward. The
// forward keeps z [t, d_out] so that dv = s·Σ_rows g ⊙ z is a column sum, not a fifth product
// (gᵀ·(h ⊙ u), needed only for db when B trains); the diagonal scalings are folded into the thin
// [t, r] and [d_out, r] operands. The elementwise loops are compiled for AVX-512, AVX2+FMA and the
// baseline and chosen at run time; each output element is computed by one fixed sequence of
// operations, so results do not depend on the thread count.
//
// a may be the leading [r, d_in] block of a wider shared matrix (row stride lda >= d_in), as VeRA
// and Tied-LoRA slice one shared A for layers of smaller d_in; b's first d_out rows are used.
#include "internal.h"

namespace p4j {
namespace {

// dst[i, k] = src[i, k]·scale[k] (dst may equal src).
P4J_INLINE void colscale_body(int64_t rows, int64_t cols, const float* src, const float* scale, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* sr = src + i * cols;
    float* dr = dst + i * cols;
    for (int64_t k = 0; k < cols; ++k) dr[k] = sr[k] * scale[k];
  }
}
P4J_MULTIVERSION(colscale, (int64_t rows, int64_t cols, const float* src, const float* scale, float* dst),
                 (rows, cols, src, scale, dst))

// dst[j, k] (= or +=) f·scale[j]·src[j, k]; scale null means ones.
P4J_INLINE void rowscale_body(int64_t rows, int64_t cols, float f, const float* scale, const float* __restrict src,
                              float* __restrict dst, int32_t add) {
  for (int64_t j = 0; j < rows; ++j) {
    const float c = scale == nullptr ? f : f * scale[j];
    const float* sr = src + j * cols;
    float* dr = dst + j * cols;
    if (add != 0) {
      for (int64_t k = 0; k < cols; ++k) dr[k] += c * sr[k];
    } else {
      for (int64_t k = 0; k < cols; ++k) dr[k] = c * sr[k];
    }
  }
}
P4J_MULTIVERSION(rowscale, (int64_t rows, int64_t cols, float f, const float* scale, const float* src, float* dst,
                            int32_t add),
                 (rows, cols, f, scale, src, dst, add))

// y[i, j] += f·scale[j]·z[i, j]; scale null means ones.
P4J_INLINE void scaled_add_body(int64_t rows, int64_t cols, float f, const float* scale, const float* __restrict z,
                                float* __restrict y) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* zr = z + i * cols;
    float* yr = y + i * cols;
    if (scale == nullptr) {
      for (int64_t j = 0; j < cols; ++j) yr[j] += f * zr[j];
    } else {
      for (int64_t j = 0; j < cols; ++j) yr[j] += (f * scale[j]) * zr[j];
    }
  }
}
P4J_MULTIVERSION(scaled_add, (int64_t rows, int64_t cols, float f, const float* scale, const float* z, float* y),
                 (rows, cols, f, scale, z, y))

// out[k] (= or +=) f·Σ_i p[i, k]·q[i, k] for k in [k0, k1) of [t, cols] matrices, rows summed in
// order in double; k1 − k0 <= kColBlock.
constexpr int64_t kColBlock = 256;
P4J_INLINE void coldot_body(int64_t t, int64_t cols, int64_t k0, int64_t k1, float f, const float* __restrict p,
                            const float* __restrict q, float* __restrict out, int32_t add) {
  double acc[kColBlock];
  const int64_t w = k1 - k0;
  for (int64_t k = 0; k < w; ++k) acc[k] = 0.0;
  for (int64_t i = 0; i < t; ++i) {
    const float* pr = p + i * cols + k0;
    const float* qr = q + i * cols + k0;
    for (int64_t k = 0; k < w; ++k) acc[k] += static_cast<double>(pr[k]) * qr[k];
  }
  for (int64_t k = 0; k < w; ++k) {
    const float v = static_cast<float>(f * acc[k]);
    out[k0 + k] = add != 0 ? out[k0 + k] + v : v;
  }
}
P4J_MULTIVERSION(coldot, (int64_t t, int64_t cols, int64_t k0, int64_t k1, float f, const float* p, const float* q,
                          float* out, int32_t add),
                 (t, cols, k0, k1, f, p, q, out, add))

// Row-parallel drivers: rows split over threads, whole rows each.
void colscale(const p4j_ctx* ctx, int64_t rows, int64_t cols, const float* src, const float* scale, float* dst) {
  parallel_rows(ctx, rows, cols, kGrain, [&](int64_t b, int64_t e) {
    colscale_kernel(e - b, cols, src + b * cols, scale, dst + b * cols);
  });
}
void rowscale(const p4j_ctx* ctx, int64_t rows, int64_t cols, float f, const float* scale, const float* src,
              float* dst, int32_t add) {
  parallel_rows(ctx, rows, cols, kGrain, [&](int64_t b, int64_t e) {
    rowscale_kernel(e - b, cols, f, scale == nullptr ? nullptr : scale + b, src + b * cols, dst + b * cols, add);
  });
}
void scaled_add(const p4j_ctx* ctx, int64_t rows, int64_t cols, float f, const float* scale, const float* z, float* y) {
  parallel_rows(ctx, rows, cols, kGrain, [&](int64_t b, int64_t e) {
    scaled_add_kernel(e - b, cols, f, scale, z + b * cols, y + b * cols);
  });
}
// Column blocks of kColBlock over threads (each column's sum is the same whoever computes it).
void coldot(const p4j_ctx* ctx, int64_t t, int64_t cols, float f, const float* p, const float* q, float* out,
            int32_t add) {
  const int64_t blocks = (cols + kColBlock - 1) / kColBlock;
  int nt = threads_for(ctx, t * cols, kGrain);
  if (nt > blocks) nt = static_cast<int>(blocks);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t k0 = bl * kColBlock, k1 = k0 + kColBlock < cols ? k0 + kColBlock : cols;
    coldot_kernel(t, cols, k0, k1, f, p, q, out, add);
  }
}

}  // namespace
}  // namespace p4j

using namespace p4j;

// Checks shared by forward and backward: sizes, s, lda, and the operands both read.
static int32_t check_scaled(const char* fn, p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r,
                            int64_t lda, float s, const float* x, const float* a, const float* b, const float* u,
                            const float* v, const float* h) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d_in", d_in));
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  P4J_TRY(check_nonneg(fn, "r", r));
  if (lda < d_in)
    return fail(P4J_EINVAL, "%s: lda (%lld) < d_in (%lld)", fn, static_cast<long long>(lda),
                static_cast<long long>(d_in));
  P4J_TRY(check_finite(fn, "s", s));
  P4J_TRY(check_dims(fn, "x [t, d_in]", t, d_in));
  P4J_TRY(check_dims(fn, "a [r, lda]", r, lda));
  P4J_TRY(check_dims(fn, "b [d_out, r]", d_out, r));
  P4J_TRY(check_dims(fn, "h [t, r]", t, r));
  P4J_TRY(check_dims(fn, "y, g [t, d_out]", t, d_out));
  P4J_TRY(check_dims(fn, "workspace", 2 * (t + d_out), r));
  P4J_TRY(check_dims(fn, "z [t, d_out]", t, d_out));
  P4J_TRY(check_ptr(fn, "x", x, t * d_in));
  P4J_TRY(check_ptr(fn, "a", a, r > 0 && d_in > 0 ? (r - 1) * lda + d_in : 0));
  P4J_TRY(check_ptr(fn, "b", b, d_out * r));
  P4J_TRY(check_ptr(fn, "h", h, t * r));
  (void)u;  // u and v may be null (ones)
  (void)v;
  return P4J_OK;
}

extern "C" {

int32_t p4j_scaled_lowrank_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, int64_t lda,
                                   float s, const float* x, const float* a, const float* b, const float* u,
                                   const float* v, float* h, float* z, float* work, float* y) {
  const char* fn = "p4j_scaled_lowrank_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_scaled(fn, ctx, t, d_in, d_out, r, lda, s, x, a, b, u, v, h));
    P4J_TRY(check_ptr(fn, "z", z, t * d_out));
    P4J_TRY(check_ptr(fn, "work", work, t * r));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    // h = x·a_sᵀ [t, r]. Each P4J_TRY(sgemm(...)) fails only when dnnl_sgemm does (see lowrank.cpp).
    P4J_TRY(sgemm(fn, ctx, false, true, t, r, d_in, 1.0f, x, d_in, a, lda, 0.0f, h, r));
    const float* hu = h;  // h ⊙ u [t, r] (h itself when u = 1)
    if (u != nullptr) {
      colscale(ctx, t, r, h, u, work);
      hu = work;
    }
    // z = (h ⊙ u)·b_sᵀ [t, d_out], kept for dv; y += s·v ⊙ z
    P4J_TRY(sgemm(fn, ctx, false, true, t, d_out, r, 1.0f, hu, r, b, r, 0.0f, z, d_out));
    scaled_add(ctx, t, d_out, s, v, z, y);
    return P4J_OK;
  });
}

int32_t p4j_scaled_lowrank_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, int64_t lda,
                                    float s, const float* x, const float* a, const float* b, const float* u,
                                    const float* v, const float* h, const float* z, const float* g, float* work,
                                    float* du, float* dv, float* da, float* db, float* dx, int32_t accumulate) {
  const char* fn = "p4j_scaled_lowrank_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_scaled(fn, ctx, t, d_in, d_out, r, lda, s, x, a, b, u, v, h));
    P4J_TRY(check_ptr(fn, "z", z, t * d_out));
    P4J_TRY(check_ptr(fn, "g", g, t * d_out));
    P4J_TRY(check_ptr(fn, "work", work, 2 * (t + d_out) * r));
    const int32_t add = accumulate != 0 ? 1 : 0;
    const float beta = add != 0 ? 1.0f : 0.0f;
    float* hu = work;                   // [t, r]      h ⊙ u (when u is given)
    float* gb = work + t * r;           // [t, r]      g·diag(v)·b, then ⊙ u
    float* m = work + 2 * t * r;        // [d_out, r]  gᵀ·(h ⊙ u)
    float* bv = m + d_out * r;          // [d_out, r]  diag(v)·b
    if (dv != nullptr) coldot(ctx, t, d_out, s, g, z, dv, add);            // dv_j = s·Σ_i g_ij·z_ij
    if (db != nullptr) {
      if (u != nullptr) colscale(ctx, t, r, h, u, hu);
      P4J_TRY(sgemm(fn, ctx, true, false, d_out, r, t, 1.0f, g, d_out, u != nullptr ? hu : h, r, 0.0f, m, r));
      rowscale(ctx, d_out, r, s, v, m, db, add);                            // db_jk = s·v_j·(gᵀ·(h ⊙ u))_jk
    }
    if (du == nullptr && da == nullptr && dx == nullptr) return P4J_OK;
    rowscale(ctx, d_out, r, 1.0f, v, b, bv, 0);
    P4J_TRY(sgemm(fn, ctx, false, false, t, r, d_out, 1.0f, g, d_out, bv, r, 0.0f, gb, r));
    if (du != nullptr) coldot(ctx, t, r, s, gb, h, du, add);               // du_k = s·Σ_i gb_ik·h_ik
    if (u != nullptr) colscale(ctx, t, r, gb, u, gb);
    // da (+)= s·gbᵀ·x [r, d_in] at row stride lda
    if (da != nullptr) P4J_TRY(sgemm(fn, ctx, true, false, r, d_in, t, s, gb, r, x, d_in, beta, da, lda));
    // dx += s·gb·a_s [t, d_in]
    if (dx != nullptr) P4J_TRY(sgemm(fn, ctx, false, false, t, d_in, r, s, gb, r, a, lda, 1.0f, dx, d_in));
    return P4J_OK;
  });
}

}  // extern "C"
