// layernorm.cpp: LayerNorm over the last dimension (torch.nn.LayerNorm, affine), forward and
// backward. Rows are independent and split over threads; the weight and bias gradients are column
// sums taken in row order by one thread per column block, so they do not depend on the thread count.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

constexpr int64_t kLnColBlock = 256;

// Σ_j f(j) over a row of d floats: vec(j) gives f at j..j+W−1 (whole vectors), one(j) f at the
// tail's j; W lane sums, then the lanes and the tail in order.
template <int W, class V, class S>
P4J_INLINE float row_sum(int64_t d, V&& vec, S&& one) {
  vf<W> acc = vf<W>{};
  int64_t j = 0;
  for (; j + W <= d; j += W) acc += vec(j);
  float s = hsum<W>(acc);
  for (; j < d; ++j) s += one(j);
  return s;
}

// Two passes in fp32 (mean, then the biased variance of the centred row): no cancellation. The
// row sums run on W-lane accumulators (a float sum does not vectorise by itself).
template <int W>
P4J_INLINE void ln_fwd_body(int64_t rows, int64_t d, float eps, const float* __restrict x, const float* __restrict w,
                            const float* __restrict b, float* __restrict y, float* __restrict mean,
                            float* __restrict rstd) {
  const float inv_d = 1.0f / static_cast<float>(d);
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * d;
    const float mu = row_sum<W>(d, [&](int64_t j) { return vload<W>(xi + j); }, [&](int64_t j) { return xi[j]; }) * inv_d;
    const float ss = row_sum<W>(
        d,
        [&](int64_t j) {
          const vf<W> c = vload<W>(xi + j) - mu;
          return c * c;
        },
        [&](int64_t j) { return (xi[j] - mu) * (xi[j] - mu); });
    const float r = 1.0f / std::sqrt(ss * inv_d + eps);
    float* yi = y + i * d;
    if (b != nullptr) {
      for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - mu) * r * w[j] + b[j];
    } else {
      for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - mu) * r * w[j];
    }
    mean[i] = mu;
    rstd[i] = r;
  }
}
P4J_MULTIVERSION_W(ln_fwd,
                   (int64_t rows, int64_t d, float eps, const float* x, const float* w, const float* b, float* y,
                    float* mean, float* rstd),
                   (rows, d, eps, x, w, b, y, mean, rstd))

// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w, x̂ = (x − mean)·rstd.
template <int W>
P4J_INLINE void ln_bwd_dx_body(int64_t rows, int64_t d, const float* __restrict x, const float* __restrict w,
                               const float* __restrict mean, const float* __restrict rstd, const float* __restrict g,
                               float* __restrict dx) {
  const float inv_d = 1.0f / static_cast<float>(d);
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * d;
    const float* gi = g + i * d;
    const float mu = mean[i], r = rstd[i];
    const float sg = row_sum<W>(
                         d, [&](int64_t j) { return vload<W>(gi + j) * vload<W>(w + j); },
                         [&](int64_t j) { return gi[j] * w[j]; }) *
                     inv_d;
    const float sgx = row_sum<W>(
                          d, [&](int64_t j) { return vload<W>(gi + j) * vload<W>(w + j) * ((vload<W>(xi + j) - mu) * r); },
                          [&](int64_t j) { return gi[j] * w[j] * ((xi[j] - mu) * r); }) *
                      inv_d;
    float* dxi = dx + i * d;
    for (int64_t j = 0; j < d; ++j) dxi[j] = r * (gi[j] * w[j] - sg - (xi[j] - mu) * r * sgx);
  }
}
P4J_MULTIVERSION_W(ln_bwd_dx,
                   (int64_t rows, int64_t d, const float* x, const float* w, const float* mean, const float* rstd,
                    const float* g, float* dx),
                   (rows, d, x, w, mean, rstd, g, dx))

// Columns [0, width) of dw += Σ_i g·x̂ and db += Σ_i g, in double, rows in order.
P4J_INLINE void ln_bwd_dwdb_body(int64_t t, int64_t d, int64_t width, const float* __restrict x,
                                 const float* __restrict mean, const float* __restrict rstd,
                                 const float* __restrict g, float* __restrict dw, float* __restrict db) {
  double aw[kLnColBlock], ab[kLnColBlock];
  for (int64_t j = 0; j < width; ++j) aw[j] = ab[j] = 0.0;
  for (int64_t i = 0; i < t; ++i) {
    const float* xi = x + i * d;
    const float* gi = g + i * d;
    const float mu = mean[i], r = rstd[i];
    for (int64_t j = 0; j < width; ++j) {
      aw[j] += static_cast<double>(gi[j] * ((xi[j] - mu) * r));
      ab[j] += static_cast<double>(gi[j]);
    }
  }
  if (dw != nullptr)
    for (int64_t j = 0; j < width; ++j) dw[j] = static_cast<float>(static_cast<double>(dw[j]) + aw[j]);
  if (db != nullptr)
    for (int64_t j = 0; j < width; ++j) db[j] = static_cast<float>(static_cast<double>(db[j]) + ab[j]);
}
P4J_MULTIVERSION(ln_bwd_dwdb,
                 (int64_t t, int64_t d, int64_t width, const float* x, const float* mean, const float* rstd,
                  const float* g, float* dw, float* db),
                 (t, d, width, x, mean, rstd, g, dw, db))

int32_t check_ln(const char* fn, const p4j_ctx* ctx, int64_t t, int64_t d) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d", d));
  return check_dims(fn, "x [t, d]", t, d);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_layernorm_forward(p4j_ctx* ctx, int64_t t, int64_t d, float eps, const float* x, const float* w,
                              const float* b, float* y, float* mean, float* rstd) {
  const char* fn = "p4j_layernorm_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ln(fn, ctx, t, d));
    if (!(eps > 0.0f) || !std::isfinite(eps)) return fail(P4J_EINVAL, "%s: eps (%g) must be finite and > 0", fn, eps);
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    P4J_TRY(check_ptr(fn, "w", w, t > 0 ? d : 0));
    P4J_TRY(check_ptr(fn, "y", y, t * d));
    P4J_TRY(check_ptr(fn, "mean", mean, d > 0 ? t : 0));
    P4J_TRY(check_ptr(fn, "rstd", rstd, d > 0 ? t : 0));
    if (t == 0 || d == 0) return P4J_OK;
    parallel_rows(ctx, t, d, kGrain / 4, [&](int64_t r0, int64_t r1) {
      ln_fwd_kernel(r1 - r0, d, eps, x + r0 * d, w, b, y + r0 * d, mean + r0, rstd + r0);
    });
    return P4J_OK;
  });
}

int32_t p4j_layernorm_backward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* w, const float* mean,
                               const float* rstd, const float* g, float* dx, float* dw, float* db) {
  const char* fn = "p4j_layernorm_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ln(fn, ctx, t, d));
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    P4J_TRY(check_ptr(fn, "w", w, t > 0 ? d : 0));
    P4J_TRY(check_ptr(fn, "mean", mean, d > 0 ? t : 0));
    P4J_TRY(check_ptr(fn, "rstd", rstd, d > 0 ? t : 0));
    P4J_TRY(check_ptr(fn, "g", g, t * d));
    if (t == 0 || d == 0) return P4J_OK;
    if (dx != nullptr) {
      parallel_rows(ctx, t, d, kGrain / 4, [&](int64_t r0, int64_t r1) {
        ln_bwd_dx_kernel(r1 - r0, d, x + r0 * d, w, mean + r0, rstd + r0, g + r0 * d, dx + r0 * d);
      });
    }
    if (dw != nullptr || db != nullptr) {
      const int64_t blocks = (d + kLnColBlock - 1) / kLnColBlock;
      int nt = threads_for(ctx, t * d, kGrain);
      if (nt > blocks) nt = static_cast<int>(blocks);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t j0 = blk * kLnColBlock;
        const int64_t width = d - j0 < kLnColBlock ? d - j0 : kLnColBlock;
        ln_bwd_dwdb_kernel(t, d, width, x + j0, mean, rstd, g + j0, dw == nullptr ? nullptr : dw + j0,
                           db == nullptr ? nullptr : db + j0);
      }
    }
    return P4J_OK;
  });
}

}  // extern "C"
