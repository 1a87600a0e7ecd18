// tokens.cpp: moving rows of token sequences for transformer inputs and heads: images cut into
// patches, rows (a class token, prompt tokens) inserted into every sequence and their backward,
// and one token per sequence gathered (the class token) and its backward. Pure data movement;
// the position-embedding add is p4j_bias_add over [b, t·d] and its backward p4j_colsum.
#include "internal.h"

namespace p4j {
namespace {

int32_t check_seq(const char* fn, const p4j_ctx* ctx, int64_t b, int64_t t, int64_t d) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "b", b));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d", d));
  P4J_TRY(check_dims(fn, "[b, t]", b, t));
  return check_dims(fn, "x [b·t, d]", b * t, d);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_patchify(p4j_ctx* ctx, int64_t b, int64_t h, int64_t w, int64_t p, const float* x, float* out) {
  const char* fn = "p4j_patchify";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "b", b));
    P4J_TRY(check_nonneg(fn, "h", h));
    P4J_TRY(check_nonneg(fn, "w", w));
    if (p <= 0) return fail(P4J_EINVAL, "%s: p (%lld) must be > 0", fn, static_cast<long long>(p));
    if (h % p != 0 || w % p != 0)
      return fail(P4J_EINVAL, "%s: h (%lld) and w (%lld) must be multiples of p (%lld)", fn, static_cast<long long>(h),
                  static_cast<long long>(w), static_cast<long long>(p));
    P4J_TRY(check_dims(fn, "[h, w]", h, w));
    P4J_TRY(check_dims(fn, "x [b, h·w]", b, h * w));
    P4J_TRY(check_ptr(fn, "x", x, b * h * w));
    P4J_TRY(check_ptr(fn, "out", out, b * h * w));
    const int64_t ph = h / p, pw = w / p, pp = p * p;
    parallel_rows(ctx, b, h * w, kGrain, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        const float* img = x + s * h * w;
        float* o = out + s * h * w;
        for (int64_t py = 0; py < ph; ++py)
          for (int64_t px = 0; px < pw; ++px) {
            float* patch = o + (py * pw + px) * pp;
            for (int64_t r = 0; r < p; ++r)
              std::memcpy(patch + r * p, img + (py * p + r) * w + px * p, static_cast<size_t>(p) * sizeof(float));
          }
      }
    });
    return P4J_OK;
  });
}

int32_t p4j_tokens_insert(p4j_ctx* ctx, int64_t b, int64_t t, int64_t n, int64_t at, int64_t d, const float* x,
                          const float* rows, float* out) {
  const char* fn = "p4j_tokens_insert";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_seq(fn, ctx, b, t, d));
    P4J_TRY(check_nonneg(fn, "n", n));
    if (at < 0 || at > t)
      return fail(P4J_EINVAL, "%s: at (%lld) must be in [0, t (%lld)]", fn, static_cast<long long>(at),
                  static_cast<long long>(t));
    P4J_TRY(check_dims(fn, "out [b·(t + n), d]", b * (t + n), d));
    P4J_TRY(check_ptr(fn, "x", x, b * t * d));
    P4J_TRY(check_ptr(fn, "rows", rows, b > 0 ? n * d : 0));
    P4J_TRY(check_ptr(fn, "out", out, b * (t + n) * d));
    const size_t row = static_cast<size_t>(d) * sizeof(float);
    parallel_rows(ctx, b, (t + n) * d, kGrain, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        const float* xs = x + s * t * d;
        float* os = out + s * (t + n) * d;
        if (at > 0) std::memcpy(os, xs, row * at);
        if (n > 0) std::memcpy(os + at * d, rows, row * n);
        if (t > at) std::memcpy(os + (at + n) * d, xs + at * d, row * (t - at));
      }
    });
    return P4J_OK;
  });
}

int32_t p4j_tokens_insert_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t n, int64_t at, int64_t d,
                                   const float* g, float* dx, float* drows) {
  const char* fn = "p4j_tokens_insert_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_seq(fn, ctx, b, t, d));
    P4J_TRY(check_nonneg(fn, "n", n));
    if (at < 0 || at > t)
      return fail(P4J_EINVAL, "%s: at (%lld) must be in [0, t (%lld)]", fn, static_cast<long long>(at),
                  static_cast<long long>(t));
    P4J_TRY(check_dims(fn, "g [b·(t + n), d]", b * (t + n), d));
    P4J_TRY(check_ptr(fn, "g", g, b * (t + n) * d));
    const size_t row = static_cast<size_t>(d) * sizeof(float);
    if (dx != nullptr) {
      parallel_rows(ctx, b, t * d, kGrain, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          const float* gs = g + s * (t + n) * d;
          float* xs = dx + s * t * d;
          if (at > 0) std::memcpy(xs, gs, row * at);
          if (t > at) std::memcpy(xs + at * d, gs + (at + n) * d, row * (t - at));
        }
      });
    }
    if (drows != nullptr && n > 0 && d > 0) {
      // Each element sums its b values in sequence order, in double: independent of threads.
      parallel_range(ctx, n * d, kGrain, [&](int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; ++e) {
          double acc = 0.0;
          for (int64_t s = 0; s < b; ++s) acc += static_cast<double>(g[(s * (t + n) + at) * d + e]);
          drows[e] = static_cast<float>(static_cast<double>(drows[e]) + acc);
        }
      });
    }
    return P4J_OK;
  });
}

int32_t p4j_tokens_gather(p4j_ctx* ctx, int64_t b, int64_t t, int64_t index, int64_t d, const float* x, float* out) {
  const char* fn = "p4j_tokens_gather";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_seq(fn, ctx, b, t, d));
    if (b > 0 && (index < 0 || index >= t))
      return fail(P4J_EINVAL, "%s: index (%lld) must be in [0, t (%lld))", fn, static_cast<long long>(index),
                  static_cast<long long>(t));
    P4J_TRY(check_ptr(fn, "x", x, b * t * d));
    P4J_TRY(check_ptr(fn, "out", out, b * d));
    for (int64_t s = 0; s < b; ++s)
      std::memcpy(out + s * d, x + (s * t + index) * d, static_cast<size_t>(d) * sizeof(float));
    return P4J_OK;
  });
}

int32_t p4j_tokens_gather_backward(p4j_ctx* ctx, int64_t b, int64_t t, int64_t index, int64_t d, const float* g,
                                   float* dx) {
  const char* fn = "p4j_tokens_gather_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_seq(fn, ctx, b, t, d));
    if (b > 0 && (index < 0 || index >= t))
      return fail(P4J_EINVAL, "%s: index (%lld) must be in [0, t (%lld))", fn, static_cast<long long>(index),
                  static_cast<long long>(t));
    P4J_TRY(check_ptr(fn, "g", g, b * d));
    P4J_TRY(check_ptr(fn, "dx", dx, b * t * d));
    if (b == 0 || d == 0) return P4J_OK;
    parallel_rows(ctx, b, t * d, kGrain, [&](int64_t s0, int64_t s1) {
      std::memset(dx + s0 * t * d, 0, static_cast<size_t>((s1 - s0) * t * d) * sizeof(float));
      for (int64_t s = s0; s < s1; ++s)
        std::memcpy(dx + (s * t + index) * d, g + s * d, static_cast<size_t>(d) * sizeof(float));
    });
    return P4J_OK;
  });
}

}  // extern "C"
