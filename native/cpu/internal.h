// internal.h: what every CPU kernel file shares: the context, error reporting, argument checks,
// thread splitting, run-time ISA dispatch and a few vectorisable math helpers.
#ifndef PEFT4J_CPU_INTERNAL_H
#define PEFT4J_CPU_INTERNAL_H

// The library is built with -fvisibility=hidden; the public declarations get default
// visibility here so that exactly the functions of peft4j.h are exported.
#pragma GCC visibility push(default)
#include "peft4j.h"
#pragma GCC visibility pop

#include <omp.h>

#include <cstdint>
#include <cstring>
#include <new>

struct p4j_ctx {
  uint32_t magic;
  int32_t threads;
};

namespace p4j {

constexpr uint32_t kCtxMagic = 0x70346a63u;  // "p4jc"

// ---- errors ----
// Sets the calling thread's message (printf format) and returns code.
int32_t fail(int32_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

// Runs body (returning an int32_t status) with the thread-local message cleared first; any
// exception becomes a status, so nothing escapes through the C ABI.
template <class F>
inline int32_t guarded(const char* fn, F&& body) noexcept {
  try {
    clear_error();
    return body();
  } catch (const std::bad_alloc&) {
    // Guards only: no kernel allocates with new or calls code that throws, so neither catch is
    // reached by a test; they keep a future throw from unwinding into the JVM.
    return fail(P4J_ENOMEM, "%s: out of memory", fn);
  } catch (...) {
    return fail(P4J_EINTERNAL, "%s: internal error (exception)", fn);
  }
}

// ---- argument checks: each returns P4J_OK or sets the message and returns P4J_EINVAL ----
int32_t check_ctx(const char* fn, const p4j_ctx* ctx);
int32_t check_nonneg(const char* fn, const char* name, int64_t v);
// rows x cols elements addressable as floats (product and byte size fit in int64).
int32_t check_dims(const char* fn, const char* what, int64_t rows, int64_t cols);
// ptr must be non-null when count > 0.
int32_t check_ptr(const char* fn, const char* name, const void* ptr, int64_t count);
int32_t check_finite(const char* fn, const char* name, float v);

#define P4J_TRY(expr)                      \
  do {                                     \
    int32_t p4j_rc_ = (expr);              \
    if (p4j_rc_ != P4J_OK) return p4j_rc_; \
  } while (0)

// ---- threads ----
// Elements per thread below which a loop runs on fewer threads (memory-bound streams).
constexpr int64_t kGrain = 32768;

// Small work: one thread, else up to ctx->threads; both sides run in ThreadCountTest (cpu(1),
// cpu(2) on sizes above 2·kGrain) and in every test of a small and a large size.
inline int threads_for(const p4j_ctx* ctx, int64_t work, int64_t grain) {
  int64_t by_size = work / grain;
  if (by_size < 1) by_size = 1;
  return by_size < ctx->threads ? static_cast<int>(by_size) : ctx->threads;
}

// Calls f(begin, end) on contiguous pieces of [0, n), one per thread, piece borders at multiples
// of 16 elements (64 bytes); f must not throw.
template <class F>
inline void parallel_range(const p4j_ctx* ctx, int64_t n, int64_t grain, F&& f) {
  int nt = threads_for(ctx, n, grain);
  if (nt <= 1) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t cnt = omp_get_num_threads();
    int64_t id = omp_get_thread_num();
    int64_t blocks = (n + 15) / 16;
    int64_t b0 = blocks * id / cnt, b1 = blocks * (id + 1) / cnt;
    int64_t begin = b0 * 16, end = b1 * 16 < n ? b1 * 16 : n;
    if (begin < end) f(begin, end);
  }
}

// Splits rows over threads: each thread gets whole rows, at least `grain` elements of work.
template <class F>
inline void parallel_rows(const p4j_ctx* ctx, int64_t rows, int64_t cols, int64_t grain, F&& f) {
  int64_t work = rows * (cols > 0 ? cols : 1);
  int nt = threads_for(ctx, work, grain);
  if (nt > rows) nt = static_cast<int>(rows);  // LossTest#softmaxXentMatchesReference 1 x 70001 / any
  if (nt <= 1) {
    f(int64_t{0}, rows);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t cnt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t b = rows * id / cnt, e = rows * (id + 1) / cnt;
    if (b < e) f(b, e);
  }
}

// Like parallel_rows, but threads take pieces of `piece` rows as they finish the previous one:
// for compute-bound loops whose cores may run at different speeds (a busy SMT sibling on a shared
// host), where an even split waits for the slowest core.
template <class F>
inline void parallel_rows_dynamic(const p4j_ctx* ctx, int64_t rows, int64_t cols, int64_t grain, int64_t piece,
                                  F&& f) {
  int64_t work = rows * (cols > 0 ? cols : 1);
  int nt = threads_for(ctx, work, grain);
  const int64_t pieces = (rows + piece - 1) / piece;
  if (nt > pieces) nt = static_cast<int>(pieces);
  if (nt <= 1) {
    f(int64_t{0}, rows);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t p = 0; p < pieces; ++p) f(p * piece, (p + 1) * piece < rows ? (p + 1) * piece : rows);
}

// Sum of per-chunk doubles in a fixed order: [0, n) items are cut into chunks whose size
// depends on n only (never on the thread count), chunk sums are computed in parallel and added
// in index order, so the result is bit-identical for every thread count.
// f(begin, end) -> double; chunks hold >= min_chunk items, a multiple of align; item_cost is the
// number of elements one item touches (1 for vectors, c for rows of a [t, c] matrix).
constexpr int64_t kMaxChunks = 1024;
template <class F>
inline double deterministic_sum(const p4j_ctx* ctx, int64_t n, int64_t min_chunk, int64_t align,
                                int64_t item_cost, F&& f) {
  if (n <= 0) return 0.0;
  int64_t chunk = (n + kMaxChunks - 1) / kMaxChunks;
  // true: mse and sumsq below 2^23 elements (min_chunk 8192); false: softmax xent (min_chunk 1).
  if (chunk < min_chunk) chunk = min_chunk;
  chunk = (chunk + align - 1) / align * align;
  int64_t chunks = (n + chunk - 1) / chunk;
  double partial[kMaxChunks];
  int nt = threads_for(ctx, n * item_cost, kGrain);
  // true: LossTest#softmaxXentMatchesReference 1 x 70001 on >= 2 cores (one chunk, a 2-thread work
  // size); false: ThreadCountTest#colsumAndSumsqAreBitIdentical (sumsq n = 2000003 on cpu(2)).
  if (nt > chunks) nt = static_cast<int>(chunks);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
    partial[c] = f(b, e);
  }
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c];
  return s;
}

// ---- GEMM (lowrank.cpp) ----
// c = alpha·op(a)·op(b) + beta·c through dnnl_sgemm on ctx->threads threads, arguments already
// validated (leading dimensions >= the stored row lengths). k == 0 or alpha == 0 only scales c.
int32_t sgemm(const char* fn, const p4j_ctx* ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc);

// ---- run-time ISA dispatch ----
enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };
// The widest ISA the kernels use on this CPU: avx512 needs AVX-512 F/VL/BW/DQ plus FMA,
// avx2 needs AVX2 plus FMA. PEFT4J_CPU_ISA=avx2|baseline caps it (for testing other paths;
// avx512 is no cap). tests/pom.xml runs the kernel tests once per ISA; IsaTest checks the choice.
Isa active_isa();

#define P4J_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2,prefer-vector-width=512")))
#define P4J_TARGET_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define P4J_INLINE inline __attribute__((always_inline))

// Defines name##_kernel(params), which runs name##_body(args) compiled for AVX-512, AVX2+FMA or
// the baseline x86-64, whichever active_isa() says. name##_body must be a P4J_INLINE function
// returning void; its code is inlined into (and vectorised for) each variant.
#define P4J_MULTIVERSION(name, params, args)                              \
  P4J_TARGET_AVX512 __attribute__((noinline)) void name##_avx512 params { \
    name##_body args;                                                     \
  }                                                                       \
  P4J_TARGET_AVX2 __attribute__((noinline)) void name##_avx2 params {     \
    name##_body args;                                                     \
  }                                                                       \
  __attribute__((noinline)) void name##_base params { name##_body args; } \
  P4J_ISA_DISPATCH(name, params, args)

// name##_kernel(params): calls the variant of name that active_isa() names.
#define P4J_ISA_DISPATCH(name, params, args)                              \
  void name##_kernel params {                                             \
    switch (::p4j::active_isa()) { /* each case: tests/pom.xml ISA runs */ \
      case ::p4j::Isa::avx512:                                            \
        name##_avx512 args;                                               \
        return;                                                           \
      case ::p4j::Isa::avx2:                                              \
        name##_avx2 args;                                                 \
        return;                                                           \
      default:                                                            \
        name##_base args;                                                 \
        return;                                                           \
    }                                                                     \
  }

// ---- vectorisable math (branch-free, so loops calling them vectorise) ----
// e^x for float, relative error ~2 ulp: x = k·ln2 + r, |r| <= ln2/2, degree-7 Taylor for e^r,
// 2^k built in the exponent bits. Returns 0 below ln(2^-126) (no denormals), +inf above
// ln(FLT_MAX), NaN for NaN.
// Every caller passes x < 1 or NaN (softmax: logit − row max <= 0; GELU: c − x²/2, |c| < 1.3), so the
// x > hi sides below (the upper clamp, k > 127, +inf) are never taken; they keep exp_f a correct
// e^x. x < lo and NaN: ElementwiseTest#geluTailsAndNaN, LossTest#softmaxXentWideNaNAndInfiniteRows.
P4J_INLINE float exp_f(float x) {
  const float lo = -87.33654f, hi = 88.72283f;  // ln(2^-126), ln(FLT_MAX)
  const float xc = x < lo ? lo : (x > hi ? hi : x);
  const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float kf = (xc * 1.44269504088896341f + shifter) - shifter;
  const float r = (xc - kf * 0.693145751953125f) - kf * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t k = static_cast<int32_t>(kf);  // in [-126, 128]
  const float top = k > 127 ? 2.0f : 1.0f;  // 2^128 is not a float: use 2·2^127
  k = k > 127 ? 127 : k;
  const float scale = __builtin_bit_cast(float, (k + 127) << 23);
  float y = p * top * scale;
  y = x < lo ? 0.0f : y;
  y = x > hi ? __builtin_huge_valf() : y;
  return x != x ? x : y;
}

// exp(c − x²/2) without the rounding of x² and of the sum amplified by exp (that error would
// be ~x²·2^-24 relative, 5e-6 at |x| = 13): x² = h + l exactly (FMA), c − h/2 = s + err exactly
// (TwoSum; h/2 is exact), and exp(s + corr) = exp(s)·(1 + corr) for the tiny corr.
// Every product here is exact, so FMA contraction cannot change the result.
P4J_INLINE float exp_c_minus_half_sq(float c, float x) {
  const float h = x * x;
  const float l = __builtin_fmaf(x, x, -h);
  const float b = -0.5f * h;
  const float s = c + b;
  const float bb = s - c;
  const float err = (c - (s - bb)) + (b - bb);
  const float corr = err - 0.5f * l;
  const float e = exp_f(s);
  return e + e * corr;
}

// Standard normal CDF Φ(x) = erfc(-x/√2)/2, via the erfc approximation of Press et al.
// (Numerical Recipes §6.2: erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), fractional error
// < 1.2e-7 on [0, ∞)); evaluated on |x| and reflected, so both tails keep their relative
// accuracy. −z² = −x²/2 goes into the exponent exactly.
P4J_INLINE float normal_cdf_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = ax * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float half_erfc = 0.5f * t * exp_c_minus_half_sq(p, ax);
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

// Standard normal density φ(x) = exp(−x²/2)/√(2π).
P4J_INLINE float normal_pdf_f(float x) { return 0.39894228040143268f * exp_c_minus_half_sq(0.0f, x); }

// W-lane float vectors (GCC vector extensions) for kernels written once for every ISA width;
// unaligned loads and stores through memcpy. The helpers return vectors by value; they are always
// inlined into the per-ISA functions, so the ABI note GCC gives for that does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

template <int W>
struct Vec {
  typedef float type __attribute__((vector_size(W * 4)));
};
template <int W>
using vf = typename Vec<W>::type;

template <int W>
P4J_INLINE vf<W> vload(const float* p) {
  vf<W> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int W>
P4J_INLINE void vstore(float* p, const vf<W>& v) {
  std::memcpy(p, &v, sizeof v);
}

template <int W>
struct VecI {
  typedef int32_t type __attribute__((vector_size(W * 4)));
};
template <int W>
using vi = typename VecI<W>::type;

// exp_f on W lanes for x < 88 (softmax: score − row max <= 0), the same reduction and polynomial:
// 0 below ln(2^-126) and for −inf, NaN for NaN; no upper clamp, so x >= 88 is outside its contract.
template <int W>
P4J_INLINE vf<W> exp_nonpos_v(const vf<W>& x) {
  const vf<W> lo = vf<W>{} - 87.33654f;  // ln(2^-126)
  const vf<W> xc = x < lo ? lo : x;
  const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const vf<W> big = xc * 1.44269504088896341f + shifter;
  const vf<W> kf = big - shifter;
  const vf<W> r = (xc - kf * 0.693145751953125f) - kf * 1.42860682030941723212e-6f;
  vf<W> p = vf<W>{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // k = kf as an integer, in [-126, 127]: big's last mantissa bits (units of 1 at 1.5·2^23).
  const vi<W> k = __builtin_bit_cast(vi<W>, big) - __builtin_bit_cast(int32_t, shifter);
  const vf<W> scale = __builtin_bit_cast(vf<W>, (k + 127) << 23);
  const vf<W> y = p * scale;
  return x < lo ? vf<W>{} : y;
}

// Horizontal sum and maximum of W lanes: halves added (or maxed) down to 4 lanes, then those in order.
template <int W>
P4J_INLINE float hsum(const vf<W>& v) {
  if constexpr (W > 4) {
    vf<W / 2> lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return hsum<W / 2>(lo + hi);
  } else {
    return (v[0] + v[1]) + (v[2] + v[3]);
  }
}
template <int W>
P4J_INLINE float hmax(const vf<W>& v) {
  if constexpr (W > 4) {
    vf<W / 2> lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return hmax<W / 2>(lo > hi ? lo : hi);
  } else {
    const float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
    return a > b ? a : b;
  }
}

// P4J_MULTIVERSION for bodies written once on W-lane vectors: name##_body<W> runs with W = 16
// (AVX-512), 8 (AVX2+FMA) or 4 (baseline x86-64).
#define P4J_MULTIVERSION_W(name, params, args)                            \
  P4J_TARGET_AVX512 __attribute__((noinline)) void name##_avx512 params { \
    name##_body<16> args;                                                 \
  }                                                                       \
  P4J_TARGET_AVX2 __attribute__((noinline)) void name##_avx2 params {     \
    name##_body<8> args;                                                  \
  }                                                                       \
  __attribute__((noinline)) void name##_base params { name##_body<4> args; } \
  P4J_ISA_DISPATCH(name, params, args)

}  // namespace p4j

#endif
