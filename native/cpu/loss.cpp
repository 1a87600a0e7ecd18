// loss.cpp: softmax cross-entropy (mean over rows) and mean squared error.
// Loss sums are accumulated in double over chunks fixed by the size alone, so the value is the
// same for every thread count.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

constexpr int kLanes = 16;

// Rows [0, rows) of logits x [rows, c]: probs = softmax(row), returns Σ_rows −log p[label].
// Numerically stable: exponentials of (x − row max). probs may equal x (the label's logit is
// read first).
P4J_INLINE void xent_rows_body(int64_t rows, int64_t c, const float* x, const int32_t* labels, float* probs,
                               double* loss) {
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x + i * c;
    float* pr = probs + i * c;
    // Row maximum, lane-wise so that it vectorises; NaNs are skipped here and propagate
    // through the exponentials below.
    float mx_l[kLanes];
    for (int l = 0; l < kLanes; ++l) mx_l[l] = -__builtin_huge_valf();
    // Rows of >= 16 and < 16 logits: LossTest#softmaxXentMatchesReference 7 x 33 / 33 x 7.
    int64_t j = 0;
    for (; j + kLanes <= c; j += kLanes)
      for (int l = 0; l < kLanes; ++l) mx_l[l] = xr[j + l] > mx_l[l] ? xr[j + l] : mx_l[l];
    float mx = -__builtin_huge_valf();
    for (int l = 0; l < kLanes; ++l) mx = mx_l[l] > mx ? mx_l[l] : mx;
    for (; j < c; ++j) mx = xr[j] > mx ? xr[j] : mx;
    // A row of -inf (or all NaN) keeps mx = -inf: use 0 so the differences stay defined.
    if (mx == -__builtin_huge_valf()) mx = 0.0f;

    const float xl = xr[labels[i]];
    float sum_l[kLanes];
    for (int l = 0; l < kLanes; ++l) sum_l[l] = 0.0f;
    j = 0;
    for (; j + kLanes <= c; j += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const float e = exp_f(xr[j + l] - mx);
        pr[j + l] = e;
        sum_l[l] += e;
      }
    float sum = 0.0f;
    for (int l = 0; l < kLanes; ++l) sum += sum_l[l];
    for (; j < c; ++j) {
      const float e = exp_f(xr[j] - mx);
      pr[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (j = 0; j < c; ++j) pr[j] *= inv;
    total += std::log(static_cast<double>(sum)) - (static_cast<double>(xl) - static_cast<double>(mx));
  }
  *loss = total;
}
P4J_MULTIVERSION(xent_rows,
                 (int64_t rows, int64_t c, const float* x, const int32_t* labels, float* probs, double* loss),
                 (rows, c, x, labels, probs, loss))

// dlogits = f·(probs − onehot) with f = scale / t.
P4J_INLINE void xent_bwd_body(int64_t rows, int64_t c, const float* probs, const int32_t* labels, float f,
                              float* dl) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* pr = probs + i * c;
    float* d = dl + i * c;
    const int32_t lab = labels[i];
    const float pl = pr[lab];
    for (int64_t j = 0; j < c; ++j) d[j] = pr[j] * f;
    d[lab] = (pl - 1.0f) * f;
  }
}
P4J_MULTIVERSION(xent_bwd,
                 (int64_t rows, int64_t c, const float* probs, const int32_t* labels, float f, float* dl),
                 (rows, c, probs, labels, f, dl))

// Σ (pred − target)² in double over [0, n), 16 lane sums combined in a fixed order; writes
// g = gs·(pred − target) when g is not null.
P4J_INLINE void mse_body(int64_t n, const float* pred, const float* target, float* g, float gs, double* out) {
  double acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = 0.0;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double dd = static_cast<double>(pred[i + l]) - static_cast<double>(target[i + l]);
      acc[l] += dd * dd;
    }
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  for (; i < n; ++i) {
    const double dd = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    s += dd * dd;
  }
  if (g != nullptr)
    for (i = 0; i < n; ++i) g[i] = (pred[i] - target[i]) * gs;
  *out = s;
}
P4J_MULTIVERSION(mse, (int64_t n, const float* pred, const float* target, float* g, float gs, double* out),
                 (n, pred, target, g, gs, out))

int32_t check_labels(const char* fn, int64_t t, int64_t c, const int32_t* labels) {
  for (int64_t i = 0; i < t; ++i)
    if (labels[i] < 0 || labels[i] >= c)
      return fail(P4J_EINVAL, "%s: labels[%lld] (%d) not in [0, %lld)", fn, static_cast<long long>(i),
                  labels[i], static_cast<long long>(c));
  return P4J_OK;
}

int32_t check_xent(const char* fn, const p4j_ctx* ctx, int64_t t, int64_t c, const void* in, const char* in_name,
                   const int32_t* labels, const void* out, const char* out_name) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "c", c));
  P4J_TRY(check_dims(fn, "[t, c]", t, c));
  P4J_TRY(check_ptr(fn, in_name, in, t * c));
  P4J_TRY(check_ptr(fn, "labels", labels, t));
  P4J_TRY(check_ptr(fn, out_name, out, t * c));
  return check_labels(fn, t, c, labels);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_softmax_xent_forward(p4j_ctx* ctx, int64_t t, int64_t c, const float* logits, const int32_t* labels,
                                 float* probs, float* loss) {
  const char* fn = "p4j_softmax_xent_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_xent(fn, ctx, t, c, logits, "logits", labels, probs, "probs"));
    P4J_TRY(check_ptr(fn, "loss", loss, 1));
    double total = deterministic_sum(ctx, t, 1, 1, c, [&](int64_t b, int64_t e) {
      double s = 0.0;
      xent_rows_kernel(e - b, c, logits + b * c, labels + b, probs + b * c, &s);
      return s;
    });
    *loss = t > 0 ? static_cast<float>(total / static_cast<double>(t)) : 0.0f;
    return P4J_OK;
  });
}

int32_t p4j_softmax_xent_backward(p4j_ctx* ctx, int64_t t, int64_t c, const float* probs, const int32_t* labels,
                                  float scale, float* dlogits) {
  const char* fn = "p4j_softmax_xent_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_xent(fn, ctx, t, c, probs, "probs", labels, dlogits, "dlogits"));
    P4J_TRY(check_finite(fn, "scale", scale));
    if (t == 0) return P4J_OK;
    const float f = static_cast<float>(static_cast<double>(scale) / static_cast<double>(t));
    parallel_rows(ctx, t, c, kGrain, [&](int64_t b, int64_t e) {
      xent_bwd_kernel(e - b, c, probs + b * c, labels + b, f, dlogits + b * c);
    });
    return P4J_OK;
  });
}

int32_t p4j_mse(p4j_ctx* ctx, int64_t n, const float* pred, const float* target, float* loss, float* g) {
  const char* fn = "p4j_mse";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "pred", pred, n));
    P4J_TRY(check_ptr(fn, "target", target, n));
    P4J_TRY(check_ptr(fn, "loss", loss, 1));
    // n == 0: NativeAbiTest#emptySizesWithNullPointersAreFine.
    const float gs = n > 0 ? static_cast<float>(2.0 / static_cast<double>(n)) : 0.0f;
    double total = deterministic_sum(ctx, n, 8192, 64, 1, [&](int64_t b, int64_t e) {
      double s = 0.0;
      mse_kernel(e - b, pred + b, target + b, g != nullptr ? g + b : nullptr, gs, &s);
      return s;
    });
    *loss = n > 0 ? static_cast<float>(total / static_cast<double>(n)) : 0.0f;
    return P4J_OK;
  });
}

}  // extern "C"
