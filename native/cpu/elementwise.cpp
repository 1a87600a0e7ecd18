// elementwise.cpp: bias, column sums, activations, BLAS-1 style vector ops, argmax.
// Each hot loop is a P4J_INLINE body compiled three times (AVX-512, AVX2+FMA, baseline) and
// chosen at run time; the drivers split the index range over ctx->threads OpenMP threads.
#include "internal.h"

#include <immintrin.h>

namespace p4j {
namespace {

constexpr int64_t kGrainCompute = 8192;  // per-thread minimum for loops that call exp/erf

// ---- kernel bodies ----

P4J_INLINE void bias_add_body(int64_t rows, int64_t d, const float* __restrict bias, float* __restrict y) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = y + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] += bias[j];
  }
}
P4J_MULTIVERSION(bias_add, (int64_t rows, int64_t d, const float* bias, float* y), (rows, d, bias, y))

// Columns [0, w) of a [t, d] matrix summed over rows in row order, in double.
constexpr int64_t kColBlock = 256;
P4J_INLINE void colsum_body(int64_t t, int64_t d, int64_t w, const float* __restrict x, float* __restrict out,
                            int32_t accumulate) {
  double acc[kColBlock];
  for (int64_t j = 0; j < w; ++j) acc[j] = 0.0;
  for (int64_t i = 0; i < t; ++i) {
    const float* row = x + i * d;
    for (int64_t j = 0; j < w; ++j) acc[j] += static_cast<double>(row[j]);
  }
  if (accumulate != 0) {
    for (int64_t j = 0; j < w; ++j) out[j] = static_cast<float>(static_cast<double>(out[j]) + acc[j]);
  } else {
    for (int64_t j = 0; j < w; ++j) out[j] = static_cast<float>(acc[j]);
  }
}
P4J_MULTIVERSION(colsum, (int64_t t, int64_t d, int64_t w, const float* x, float* out, int32_t accumulate),
                 (t, d, w, x, out, accumulate))

// NaN stays NaN (as torch.relu).
P4J_INLINE void relu_fwd_body(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
P4J_MULTIVERSION(relu_fwd, (int64_t n, const float* x, float* y), (n, x, y))

P4J_INLINE void relu_bwd_body(int64_t n, const float* x, const float* g, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? g[i] : 0.0f;
}
P4J_MULTIVERSION(relu_bwd, (int64_t n, const float* x, const float* g, float* dx), (n, x, g, dx))

P4J_INLINE void gelu_fwd_body(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = v * normal_cdf_f(v);
  }
}
P4J_MULTIVERSION(gelu_fwd, (int64_t n, const float* x, float* y), (n, x, y))

// d/dx [x·Φ(x)] = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π).
P4J_INLINE void gelu_bwd_body(int64_t n, const float* x, const float* g, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    dx[i] = g[i] * (normal_cdf_f(v) + v * normal_pdf_f(v));
  }
}
P4J_MULTIVERSION(gelu_bwd, (int64_t n, const float* x, const float* g, float* dx), (n, x, g, dx))

P4J_INLINE void scale_body(int64_t n, float alpha, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}
P4J_MULTIVERSION(scale, (int64_t n, float alpha, float* x), (n, alpha, x))

P4J_INLINE void axpy_body(int64_t n, float alpha, const float* __restrict x, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
P4J_MULTIVERSION(axpy, (int64_t n, float alpha, const float* x, float* y), (n, alpha, x, y))

P4J_INLINE void mul_body(int64_t n, const float* x, const float* y, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * y[i];
}
P4J_MULTIVERSION(mul, (int64_t n, const float* x, const float* y, float* out), (n, x, y, out))

P4J_INLINE void fill_body(int64_t n, float value, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}
P4J_MULTIVERSION(fill, (int64_t n, float value, float* x), (n, value, x))

// Copies larger than this bypass the caches (non-temporal stores): the destination would not
// stay cached anyway, and skipping the read-for-ownership of every destination line makes a
// large copy ~1.5x faster on this machine class.
constexpr int64_t kStreamBytes = 16 << 20;

// SSE2 streaming copy (every x86-64 CPU has it; stream bandwidth does not grow with vector
// width). dst must be 4-byte aligned; the head is copied until dst is 16-byte aligned.
void stream_copy(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  // Aligned and unaligned dst: ElementwiseTest#copyBelowAndFromTheStreamingSizeIsExact. The head is
  // at most 3 floats of n >= 4 Mi (kStreamBytes), so its i < n exit is never taken.
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) {
    const __m128 a = _mm_loadu_ps(src + i), b = _mm_loadu_ps(src + i + 4);
    const __m128 c = _mm_loadu_ps(src + i + 8), d = _mm_loadu_ps(src + i + 12);
    _mm_stream_ps(dst + i, a);
    _mm_stream_ps(dst + i + 4, b);
    _mm_stream_ps(dst + i + 8, c);
    _mm_stream_ps(dst + i + 12, d);
  }
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}

// First maximum of each row; a NaN counts as larger than any number (as torch.argmax).
void argmax_rows_kernel(int64_t rows, int64_t c, const float* x, int32_t* out) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = x + i * c;
    int64_t best = 0;
    float bv = row[0];
    // NaN first / later / none: ElementwiseTest#argmaxRowsTakesTheFirstNaN, #argmaxRowsPicksTheFirstMaximum.
    if (bv == bv) {
      for (int64_t j = 1; j < c; ++j) {
        const float v = row[j];
        if (v != v) {
          best = j;
          break;
        }
        if (v > bv) {
          bv = v;
          best = j;
        }
      }
    }
    out[i] = static_cast<int32_t>(best);
  }
}

// Common checks of the [n]-vector ops.
int32_t check_n(const char* fn, const p4j_ctx* ctx, int64_t n) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "n", n));
  return check_dims(fn, "[n]", n, 1);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_bias_add(p4j_ctx* ctx, int64_t t, int64_t d, const float* bias, float* y) {
  const char* fn = "p4j_bias_add";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "d", d));
    P4J_TRY(check_dims(fn, "y [t, d]", t, d));
    P4J_TRY(check_ptr(fn, "bias", bias, t > 0 ? d : 0));
    P4J_TRY(check_ptr(fn, "y", y, t * d));
    if (t == 0 || d == 0) return P4J_OK;  // empty sizes: NativeAbiTest#emptySizesWithNullPointersAreFine
    parallel_rows(ctx, t, d, kGrain, [&](int64_t b, int64_t e) { bias_add_kernel(e - b, d, bias, y + b * d); });
    return P4J_OK;
  });
}

int32_t p4j_colsum(p4j_ctx* ctx, int64_t t, int64_t d, const float* x, float* out, int32_t accumulate) {
  const char* fn = "p4j_colsum";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "d", d));
    P4J_TRY(check_dims(fn, "x [t, d]", t, d));
    P4J_TRY(check_ptr(fn, "x", x, t * d));
    P4J_TRY(check_ptr(fn, "out", out, d));
    if (d == 0) return P4J_OK;
    // Each column is summed over rows in order by one thread: the result does not depend on
    // the thread count. Threads take blocks of columns.
    // One block / several (last one partial): ElementwiseTest#colsumOverwritesAndAccumulates 1000 x 129
    // / 1 x 257. nt > blocks: 1000 x 129 on >= 2 cores / ThreadCountTest#colsumAndSumsqAreBitIdentical.
    int64_t blocks = (d + kColBlock - 1) / kColBlock;
    int nt = threads_for(ctx, t * d, kGrain);
    if (nt > blocks) nt = static_cast<int>(blocks);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      int64_t j0 = blk * kColBlock;
      int64_t w = d - j0 < kColBlock ? d - j0 : kColBlock;
      colsum_kernel(t, d, w, x + j0, out + j0, accumulate);
    }
    return P4J_OK;
  });
}

int32_t p4j_relu_forward(p4j_ctx* ctx, int64_t n, const float* x, float* y) {
  const char* fn = "p4j_relu_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "y", y, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { relu_fwd_kernel(e - b, x + b, y + b); });
    return P4J_OK;
  });
}

int32_t p4j_relu_backward(p4j_ctx* ctx, int64_t n, const float* x, const float* g, float* dx) {
  const char* fn = "p4j_relu_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "g", g, n));
    P4J_TRY(check_ptr(fn, "dx", dx, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { relu_bwd_kernel(e - b, x + b, g + b, dx + b); });
    return P4J_OK;
  });
}

int32_t p4j_gelu_forward(p4j_ctx* ctx, int64_t n, const float* x, float* y) {
  const char* fn = "p4j_gelu_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "y", y, n));
    parallel_range(ctx, n, kGrainCompute, [&](int64_t b, int64_t e) { gelu_fwd_kernel(e - b, x + b, y + b); });
    return P4J_OK;
  });
}

int32_t p4j_gelu_backward(p4j_ctx* ctx, int64_t n, const float* x, const float* g, float* dx) {
  const char* fn = "p4j_gelu_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "g", g, n));
    P4J_TRY(check_ptr(fn, "dx", dx, n));
    parallel_range(ctx, n, kGrainCompute,
                   [&](int64_t b, int64_t e) { gelu_bwd_kernel(e - b, x + b, g + b, dx + b); });
    return P4J_OK;
  });
}

int32_t p4j_scale(p4j_ctx* ctx, int64_t n, float alpha, float* x) {
  const char* fn = "p4j_scale";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { scale_kernel(e - b, alpha, x + b); });
    return P4J_OK;
  });
}

int32_t p4j_axpy(p4j_ctx* ctx, int64_t n, float alpha, const float* x, float* y) {
  const char* fn = "p4j_axpy";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "y", y, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { axpy_kernel(e - b, alpha, x + b, y + b); });
    return P4J_OK;
  });
}

int32_t p4j_mul(p4j_ctx* ctx, int64_t n, const float* x, const float* y, float* out) {
  const char* fn = "p4j_mul";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "y", y, n));
    P4J_TRY(check_ptr(fn, "out", out, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { mul_kernel(e - b, x + b, y + b, out + b); });
    return P4J_OK;
  });
}

int32_t p4j_fill(p4j_ctx* ctx, int64_t n, float value, float* x) {
  const char* fn = "p4j_fill";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "x", x, n));
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { fill_kernel(e - b, value, x + b); });
    return P4J_OK;
  });
}

int32_t p4j_copy(p4j_ctx* ctx, int64_t n, const float* src, float* dst) {
  const char* fn = "p4j_copy";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_n(fn, ctx, n));
    P4J_TRY(check_ptr(fn, "src", src, n));
    P4J_TRY(check_ptr(fn, "dst", dst, n));
    if (n == 0 || src == dst) return P4J_OK;  // NativeAbiTest#emptySizesWithNullPointersAreFine
    uintptr_t s = reinterpret_cast<uintptr_t>(src), d = reinterpret_cast<uintptr_t>(dst);
    uintptr_t bytes = static_cast<uintptr_t>(n) * sizeof(float);
    if (s < d + bytes && d < s + bytes)
      return fail(P4J_EINVAL, "%s: src (%p) and dst (%p) overlap for n (%lld) floats", fn, static_cast<const void*>(src),
                  static_cast<void*>(dst), static_cast<long long>(n));
    // Size switch: ElementwiseTest#copyBelowAndFromTheStreamingSizeIsExact (n = 2^22 - 1: memcpy; 2^22
    // and 2^22 + 13 at dst + 4 bytes: stream_copy with head and tail); the (d & 3) != 0 side:
    // NativeAbiTest#largeCopyToAByteMisalignedDestinationIsExact.
    const bool stream = static_cast<uintptr_t>(n) * sizeof(float) >= kStreamBytes && (d & 3) == 0;
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      if (stream) stream_copy(src + b, dst + b, e - b);
      else std::memcpy(dst + b, src + b, static_cast<size_t>(e - b) * sizeof(float));
    });
    return P4J_OK;
  });
}

int32_t p4j_argmax_rows(p4j_ctx* ctx, int64_t t, int64_t c, const float* x, int32_t* out) {
  const char* fn = "p4j_argmax_rows";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "c", c));
    P4J_TRY(check_dims(fn, "x [t, c]", t, c));
    if (t == 0) return P4J_OK;
    if (c == 0) return fail(P4J_EINVAL, "%s: c (0) must be > 0 when t (%lld) > 0", fn, static_cast<long long>(t));
    if (c > INT32_MAX)
      return fail(P4J_EINVAL, "%s: c (%lld) > INT32_MAX does not fit the int32 output", fn, static_cast<long long>(c));
    P4J_TRY(check_ptr(fn, "x", x, t * c));
    P4J_TRY(check_ptr(fn, "out", out, t));
    parallel_rows(ctx, t, c, kGrain, [&](int64_t b, int64_t e) { argmax_rows_kernel(e - b, c, x + b * c, out + b); });
    return P4J_OK;
  });
}

}  // extern "C"
