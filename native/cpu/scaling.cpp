// scaling.cpp: per-channel scaling ops of the scaling adapters (SSF, (IA)³, DoRA): row norms,
// scale-and-shift of the columns of a [t, d] matrix forward and backward, and row scaling.
// Hot loops are P4J_INLINE bodies compiled for AVX-512, AVX2+FMA and baseline, chosen at run time.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

// ‖x_i‖ of rows [0, rows) of a [rows, d] matrix, accumulated in double. Eight independent
// accumulators (one vector of doubles) so the loop streams at memory speed instead of waiting on
// one add chain; the grouping is fixed, so the result does not depend on the thread count.
constexpr int64_t kNormLanes = 8;
P4J_INLINE void row_norms_body(int64_t rows, int64_t d, const float* __restrict x, float* __restrict out) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = x + i * d;
    double acc[kNormLanes] = {};
    int64_t j = 0;
    for (; j + kNormLanes <= d; j += kNormLanes) {
      for (int64_t k = 0; k < kNormLanes; ++k) {
        const double v = row[j + k];
        acc[k] += v * v;
      }
    }
    double tail = 0.0;
    for (; j < d; ++j) tail += static_cast<double>(row[j]) * static_cast<double>(row[j]);
    const double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
    out[i] = static_cast<float>(std::sqrt(sum));
  }
}
P4J_MULTIVERSION(row_norms, (int64_t rows, int64_t d, const float* x, float* out), (rows, d, x, out))

// y = x ⊙ gamma (+ beta) on every row; y may equal x.
P4J_INLINE void scale_shift_fwd_body(int64_t rows, int64_t d, const float* x, const float* __restrict gamma,
                                     const float* __restrict beta, float* y) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x + i * d;
    float* yr = y + i * d;
    if (beta != nullptr) {
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * gamma[j] + beta[j];
    } else {
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * gamma[j];
    }
  }
}
P4J_MULTIVERSION(scale_shift_fwd, (int64_t rows, int64_t d, const float* x, const float* gamma, const float* beta, float* y),
                 (rows, d, x, gamma, beta, y))

// Columns [0, w) of [t, d] matrices: dgamma = Σ_rows g ⊙ x, dbeta = Σ_rows g (in double, row
// order), dx = g ⊙ gamma; each output may be null. dx may equal g.
constexpr int64_t kColBlock = 256;
P4J_INLINE void scale_shift_bwd_body(int64_t t, int64_t d, int64_t w, const float* x, const float* __restrict gamma,
                                     const float* g, float* dgamma, float* dbeta, float* dx, int32_t accumulate) {
  double sg[kColBlock], sb[kColBlock];
  for (int64_t j = 0; j < w; ++j) sg[j] = sb[j] = 0.0;
  for (int64_t i = 0; i < t; ++i) {
    const float* gr = g + i * d;
    if (dgamma != nullptr) {
      const float* xr = x + i * d;
      for (int64_t j = 0; j < w; ++j) sg[j] += static_cast<double>(gr[j]) * static_cast<double>(xr[j]);
    }
    if (dbeta != nullptr) {
      for (int64_t j = 0; j < w; ++j) sb[j] += static_cast<double>(gr[j]);
    }
    if (dx != nullptr) {
      float* dr = dx + i * d;
      for (int64_t j = 0; j < w; ++j) dr[j] = gr[j] * gamma[j];
    }
  }
  if (dgamma != nullptr) {
    for (int64_t j = 0; j < w; ++j) dgamma[j] = static_cast<float>((accumulate != 0 ? static_cast<double>(dgamma[j]) : 0.0) + sg[j]);
  }
  if (dbeta != nullptr) {
    for (int64_t j = 0; j < w; ++j) dbeta[j] = static_cast<float>((accumulate != 0 ? static_cast<double>(dbeta[j]) : 0.0) + sb[j]);
  }
}
P4J_MULTIVERSION(scale_shift_bwd,
                 (int64_t t, int64_t d, int64_t w, const float* x, const float* gamma, const float* g, float* dgamma,
                  float* dbeta, float* dx, int32_t accumulate),
                 (t, d, w, x, gamma, g, dgamma, dbeta, dx, accumulate))

// x_i *= s_i for rows [0, rows).
P4J_INLINE void row_scale_body(int64_t rows, int64_t d, const float* __restrict s, float* __restrict x) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = x + i * d;
    const float si = s[i];
    for (int64_t j = 0; j < d; ++j) row[j] *= si;
  }
}
P4J_MULTIVERSION(row_scale, (int64_t rows, int64_t d, const float* s, float* x), (rows, d, s, x))

int32_t check_matrix(const char* fn, const p4j_ctx* ctx, int64_t t, int64_t d) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d", d));
  return check_dims(fn, "[t, d]", t, d);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_row_norms(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, float* out) {
  const char* fn = "p4j_row_norms";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matrix(fn, ctx, t, d));
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    P4J_TRY(check_ptr(fn, "out", out, t));
    if (t == 0) return P4J_OK;
    parallel_rows(ctx, t, d, kGrain, [&](int64_t b, int64_t e) { row_norms_kernel(e - b, d, x + b * d, out + b); });
    return P4J_OK;
  });
}

int32_t p4j_scale_shift_forward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* gamma,
                                const float* beta, float* y) {
  const char* fn = "p4j_scale_shift_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matrix(fn, ctx, t, d));
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    P4J_TRY(check_ptr(fn, "gamma", gamma, t > 0 ? d : 0));
    P4J_TRY(check_ptr(fn, "y", y, t * d));
    if (t == 0 || d == 0) return P4J_OK;
    parallel_rows(ctx, t, d, kGrain,
                  [&](int64_t b, int64_t e) { scale_shift_fwd_kernel(e - b, d, x + b * d, gamma, beta, y + b * d); });
    return P4J_OK;
  });
}

int32_t p4j_scale_shift_backward(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, const float* gamma,
                                 const float* g, float* dgamma, float* dbeta, float* dx, int32_t accumulate) {
  const char* fn = "p4j_scale_shift_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matrix(fn, ctx, t, d));
    P4J_TRY(check_ptr(fn, "g", g, t * d));
    if (dgamma != nullptr) P4J_TRY(check_ptr(fn, "x", x, t * d));
    if (dx != nullptr) P4J_TRY(check_ptr(fn, "gamma", gamma, t > 0 ? d : 0));
    if (d == 0) return P4J_OK;
    // Each column is reduced over rows in order by one thread: results do not depend on the
    // thread count. Threads take blocks of columns.
    int64_t blocks = (d + kColBlock - 1) / kColBlock;
    int nt = threads_for(ctx, t * d, kGrain);
    if (nt > blocks) nt = static_cast<int>(blocks);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      int64_t j0 = blk * kColBlock;
      int64_t w = d - j0 < kColBlock ? d - j0 : kColBlock;
      scale_shift_bwd_kernel(t, d, w, x == nullptr ? nullptr : x + j0, gamma == nullptr ? nullptr : gamma + j0, g + j0,
                             dgamma == nullptr ? nullptr : dgamma + j0, dbeta == nullptr ? nullptr : dbeta + j0,
                             dx == nullptr ? nullptr : dx + j0, accumulate);
    }
    return P4J_OK;
  });
}

int32_t p4j_row_scale(p4j_ctx* ctx, int64_t t, int64_t d, const float* s, float* x) {
  const char* fn = "p4j_row_scale";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matrix(fn, ctx, t, d));
    P4J_TRY(check_ptr(fn, "s", s, t));
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    if (t == 0 || d == 0) return P4J_OK;
    parallel_rows(ctx, t, d, kGrain, [&](int64_t b, int64_t e) { row_scale_kernel(e - b, d, s + b, x + b * d); });
    return P4J_OK;
  });
}

}  // extern "C"
