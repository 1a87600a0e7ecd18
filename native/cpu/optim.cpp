// optim.cpp: AdamW and SGD steps over flat buffers (one fused pass each, memory-bound), and the
// deterministic sum of squares used for the global gradient norm.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

// PyTorch AdamW, single-tensor form: p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
// p −= (lr / (1−β1^step)) · m / (√v / √(1−β2^step) + eps).
P4J_INLINE void adamw_body(int64_t n, float* __restrict p, const float* __restrict g, float* __restrict m,
                           float* __restrict v, float decay, float b1, float b2, float step_size, float bc2_sqrt,
                           float eps) {
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = p[i] * decay - step_size * (mi / denom);
  }
}
P4J_MULTIVERSION(adamw,
                 (int64_t n, float* p, const float* g, float* m, float* v, float decay, float b1, float b2,
                  float step_size, float bc2_sqrt, float eps),
                 (n, p, g, m, v, decay, b1, b2, step_size, bc2_sqrt, eps))

// PyTorch SGD (dampening 0): g' = g + wd·p; buf = first ? g' : momentum·buf + g';
// p −= lr·(nesterov ? g' + momentum·buf : buf), or p −= lr·g' without momentum.
P4J_INLINE void sgd_body(int64_t n, float* __restrict p, const float* __restrict g, float* __restrict buf, float lr,
                         float momentum, float wd, int32_t nesterov, int32_t first) {
  if (momentum == 0.0f) {
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float gp = g[i] + wd * p[i];
    const float b = first != 0 ? gp : momentum * buf[i] + gp;
    buf[i] = b;
    const float upd = nesterov != 0 ? gp + momentum * b : b;
    p[i] -= lr * upd;
  }
}
P4J_MULTIVERSION(sgd,
                 (int64_t n, float* p, const float* g, float* buf, float lr, float momentum, float wd,
                  int32_t nesterov, int32_t first),
                 (n, p, g, buf, lr, momentum, wd, nesterov, first))

// Σ x² in double: 16 lane sums combined in a fixed order. x² of a float is exact in double, so
// contracting into an FMA changes nothing and every ISA variant gives the same bits.
P4J_INLINE void sumsq_body(int64_t n, const float* x, double* out) {
  constexpr int kLanes = 16;
  double acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = 0.0;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double d = static_cast<double>(x[i + l]);
      acc[l] += d * d;
    }
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  for (; i < n; ++i) {
    const double d = static_cast<double>(x[i]);
    s += d * d;
  }
  *out = s;
}
P4J_MULTIVERSION(sumsq, (int64_t n, const float* x, double* out), (n, x, out))

// Every range checked here (beta1, beta2) is [0, 1). Each side: NativeAbiTest#badRawArgumentsReturnEinvalAndWriteNothing
// (beta1 = 1, NaN; beta2 < 0) / every valid step.
int32_t check_unit_interval(const char* fn, const char* name, float v) {
  if (!(std::isfinite(v) && v >= 0.0f && v < 1.0f)) return fail(P4J_EINVAL, "%s: %s (%g) not in [0, 1)", fn, name, v);
  return P4J_OK;
}

// Each side: NativeAbiTest (lr < 0, eps = inf, weight_decay NaN) / every valid step.
int32_t check_nonneg_finite(const char* fn, const char* name, float v) {
  if (!(std::isfinite(v) && v >= 0.0f)) return fail(P4J_EINVAL, "%s: %s (%g) is not finite and >= 0", fn, name, v);
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_adamw_step(p4j_ctx* ctx, int64_t n, float* param, const float* grad, float* m, float* v, float lr,
                       float beta1, float beta2, float eps, float weight_decay, int64_t step) {
  const char* fn = "p4j_adamw_step";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "param", param, n));
    P4J_TRY(check_ptr(fn, "grad", grad, n));
    P4J_TRY(check_ptr(fn, "m", m, n));
    P4J_TRY(check_ptr(fn, "v", v, n));
    P4J_TRY(check_nonneg_finite(fn, "lr", lr));
    P4J_TRY(check_unit_interval(fn, "beta1", beta1));
    P4J_TRY(check_unit_interval(fn, "beta2", beta2));
    P4J_TRY(check_nonneg_finite(fn, "eps", eps));
    P4J_TRY(check_nonneg_finite(fn, "weight_decay", weight_decay));
    if (step < 1) return fail(P4J_EINVAL, "%s: step (%lld) < 1", fn, static_cast<long long>(step));
    if (n == 0) return P4J_OK;
    const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
    const float step_size = static_cast<float>(static_cast<double>(lr) / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * static_cast<double>(weight_decay));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      adamw_kernel(e - b, param + b, grad + b, m + b, v + b, decay, beta1, beta2, step_size, bc2_sqrt, eps);
    });
    return P4J_OK;
  });
}

int32_t p4j_sgd_step(p4j_ctx* ctx, int64_t n, float* param, const float* grad, float* buf, float lr, float momentum,
                     float weight_decay, int32_t nesterov, int32_t first) {
  const char* fn = "p4j_sgd_step";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "param", param, n));
    P4J_TRY(check_ptr(fn, "grad", grad, n));
    P4J_TRY(check_nonneg_finite(fn, "lr", lr));
    P4J_TRY(check_nonneg_finite(fn, "momentum", momentum));
    P4J_TRY(check_nonneg_finite(fn, "weight_decay", weight_decay));
    if (momentum != 0.0f) P4J_TRY(check_ptr(fn, "buf (momentum != 0)", buf, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      sgd_kernel(e - b, param + b, grad + b, buf != nullptr ? buf + b : nullptr, lr, momentum, weight_decay,
                 nesterov, first);
    });
    return P4J_OK;
  });
}

int32_t p4j_sumsq(p4j_ctx* ctx, int64_t n, const float* x, float* out) {
  const char* fn = "p4j_sumsq";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "out", out, 1));
    double total = deterministic_sum(ctx, n, 8192, 64, 1, [&](int64_t b, int64_t e) {
      double s = 0.0;
      sumsq_kernel(e - b, x + b, &s);
      return s;
    });
    *out = static_cast<float>(total);
    return P4J_OK;
  });
}

}  // extern "C"
