// rank_adaptive.cpp: the ops shared by the rank-adaptive methods (AdaLoRA, SoRA, DyLoRA):
// the gated low-rank product y += c·((x·aᵀ) ⊙ g)·bᵀ and its backward, the one-pass importance
// EMA update, and gate thresholding. The products go through sgemm (lowrank.cpp); the gating and
// the per-rank reductions are thin t×r loops.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

// hg[i, j] = h[i, j]·g[j], i < t, j < r.
P4J_INLINE void gate_rows_body(int64_t t, int64_t r, const float* __restrict h, const float* __restrict g,
                               float* __restrict hg) {
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < r; ++j) hg[i * r + j] = h[i * r + j] * g[j];
}
P4J_MULTIVERSION(gate_rows, (int64_t t, int64_t r, const float* h, const float* g, float* hg), (t, r, h, g, hg))

// I = |w·∇w|; Ī ← β1·Ī + (1−β1)·I; Ū ← β2·Ū + (1−β2)·|I − Ī| (with the new Ī), as PEFT's update_ipt.
P4J_INLINE void importance_body(int64_t n, const float* __restrict w, const float* __restrict grad,
                                float* __restrict ibar, float* __restrict ubar, float b1, float b2) {
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  for (int64_t i = 0; i < n; ++i) {
    const float ipt = std::fabs(w[i] * grad[i]);
    const float ib = b1 * ibar[i] + c1 * ipt;
    ibar[i] = ib;
    ubar[i] = b2 * ubar[i] + c2 * std::fabs(ipt - ib);
  }
}
P4J_MULTIVERSION(importance,
                 (int64_t n, const float* w, const float* grad, float* ibar, float* ubar, float b1, float b2),
                 (n, w, grad, ibar, ubar, b1, b2))

// mode 0, SoRA's sparse_optimizer.py in its order: x > ξ: x −= ξ; x < −ξ: x += ξ; then |x| < ξ: 0.
// The zeroing sees the shrunk value, so |x| < 2ξ ends at 0 except |x| = ξ exactly, which stays.
// mode 1, the soft threshold: |x| <= ξ: 0, else x − sign(x)·ξ. NaN stays NaN in both.
P4J_INLINE void threshold_body(int64_t n, float xi, int32_t mode, float* __restrict x) {
  if (mode == 0) {
    for (int64_t i = 0; i < n; ++i) {
      float v = x[i];
      v = v > xi ? v - xi : v;
      v = v < -xi ? v + xi : v;
      x[i] = std::fabs(v) < xi ? 0.0f : v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      x[i] = v > xi ? v - xi : (v < -xi ? v + xi : (v == v ? 0.0f : v));
    }
  }
}
P4J_MULTIVERSION(threshold, (int64_t n, float xi, int32_t mode, float* x), (n, xi, mode, x))

// dg[j] (+)= c·Σ_i gb[i, j]·h[i, j], summed over i in order (independent of the thread count).
void gate_grad(int64_t t, int64_t r, float c, const float* gb, const float* h, float* dg, bool accumulate) {
  for (int64_t j = 0; j < r; ++j) {
    double s = 0.0;
    for (int64_t i = 0; i < t; ++i) s += static_cast<double>(gb[i * r + j]) * static_cast<double>(h[i * r + j]);
    const float v = static_cast<float>(static_cast<double>(c) * s);
    dg[j] = accumulate ? dg[j] + v : v;
  }
}

int32_t check_sizes(const char* fn, int64_t t, int64_t d_in, int64_t d_out, int64_t r) {
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d_in", d_in));
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  P4J_TRY(check_nonneg(fn, "r", r));
  P4J_TRY(check_dims(fn, "x [t, d_in]", t, d_in));
  P4J_TRY(check_dims(fn, "y [t, d_out]", t, d_out));
  P4J_TRY(check_dims(fn, "h [t, r]", t, r));
  P4J_TRY(check_dims(fn, "a [r, d_in]", r, d_in));
  P4J_TRY(check_dims(fn, "b [d_out, r]", d_out, r));
  return P4J_OK;
}

int32_t check_beta(const char* fn, const char* name, float v) {
  if (!(std::isfinite(v) && v >= 0.0f && v < 1.0f)) return fail(P4J_EINVAL, "%s: %s (%g) not in [0, 1)", fn, name, v);
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_rank_gated_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float c,
                               const float* x, const float* a, const float* g, const float* b, float* h,
                               float* hg, float* y) {
  const char* fn = "p4j_rank_gated_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_sizes(fn, t, d_in, d_out, r));
    P4J_TRY(check_finite(fn, "c", c));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "a", a, r * d_in));
    P4J_TRY(check_ptr(fn, "g", g, r));
    P4J_TRY(check_ptr(fn, "b", b, d_out * r));
    P4J_TRY(check_ptr(fn, "h", h, t * r));
    P4J_TRY(check_ptr(fn, "hg", hg, t * r));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    if (t == 0 || r == 0) return P4J_OK;
    P4J_TRY(sgemm(fn, ctx, false, true, t, r, d_in, 1.0f, x, d_in, a, d_in, 0.0f, h, r));
    gate_rows_kernel(t, r, h, g, hg);
    return sgemm(fn, ctx, false, true, t, d_out, r, c, hg, r, b, r, 1.0f, y, d_out);
  });
}

int32_t p4j_rank_gated_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float c,
                                const float* x, const float* a, const float* g, const float* b, const float* h,
                                const float* gy, float* gb, float* ws, float* da, float* db, float* dg,
                                float* dx, int32_t accumulate) {
  const char* fn = "p4j_rank_gated_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_sizes(fn, t, d_in, d_out, r));
    P4J_TRY(check_finite(fn, "c", c));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "a", a, r * d_in));
    P4J_TRY(check_ptr(fn, "g", g, r));
    P4J_TRY(check_ptr(fn, "b", b, d_out * r));
    P4J_TRY(check_ptr(fn, "h", h, t * r));
    P4J_TRY(check_ptr(fn, "gy", gy, t * d_out));
    P4J_TRY(check_ptr(fn, "gb", gb, t * r));
    P4J_TRY(check_ptr(fn, "ws", ws, t * r));
    const float beta = accumulate != 0 ? 1.0f : 0.0f;
    // gb = gy·b; dg = c·Σ_rows gb ⊙ h (before gb is gated below).
    P4J_TRY(sgemm(fn, ctx, false, false, t, r, d_out, 1.0f, gy, d_out, b, r, 0.0f, gb, r));
    if (dg != nullptr) gate_grad(t, r, c, gb, h, dg, accumulate != 0);
    if (db != nullptr) {  // db = c·gyᵀ·(h ⊙ g)
      gate_rows_kernel(t, r, h, g, ws);
      P4J_TRY(sgemm(fn, ctx, true, false, d_out, r, t, c, gy, d_out, ws, r, beta, db, r));
    }
    gate_rows_kernel(t, r, gb, g, ws);  // ws = gb ⊙ g
    if (da != nullptr) P4J_TRY(sgemm(fn, ctx, true, false, r, d_in, t, c, ws, r, x, d_in, beta, da, d_in));
    if (dx != nullptr) P4J_TRY(sgemm(fn, ctx, false, false, t, d_in, r, c, ws, r, a, d_in, 1.0f, dx, d_in));
    return P4J_OK;
  });
}

int32_t p4j_rank_importance_update(p4j_ctx* ctx, int64_t n, const float* w, const float* grad, float* ibar,
                                   float* ubar, float beta1, float beta2) {
  const char* fn = "p4j_rank_importance_update";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "w", w, n));
    P4J_TRY(check_ptr(fn, "grad", grad, n));
    P4J_TRY(check_ptr(fn, "ibar", ibar, n));
    P4J_TRY(check_ptr(fn, "ubar", ubar, n));
    P4J_TRY(check_beta(fn, "beta1", beta1));
    P4J_TRY(check_beta(fn, "beta2", beta2));
    parallel_range(ctx, n, kGrain, [&](int64_t lo, int64_t hi) {
      importance_kernel(hi - lo, w + lo, grad + lo, ibar + lo, ubar + lo, beta1, beta2);
    });
    return P4J_OK;
  });
}

int32_t p4j_rank_threshold(p4j_ctx* ctx, int64_t n, float xi, int32_t mode, float* x) {
  const char* fn = "p4j_rank_threshold";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "x", x, n));
    if (!(std::isfinite(xi) && xi >= 0.0f)) return fail(P4J_EINVAL, "%s: xi (%g) is not finite and >= 0", fn, xi);
    if (mode != 0 && mode != 1) return fail(P4J_EINVAL, "%s: mode (%d) is not 0 (reference) or 1 (soft)", fn, mode);
    parallel_range(ctx, n, kGrain, [&](int64_t lo, int64_t hi) { threshold_kernel(hi - lo, xi, mode, x + lo); });
    return P4J_OK;
  });
}

}  // extern "C"
