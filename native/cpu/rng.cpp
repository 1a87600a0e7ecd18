// rng.cpp: counter-based random fills (Philox-4x32-10), the same numbers on every thread count,
// every split of a fill, and (by following the formulas below) every other implementation.
//
// Generator. Key (k0, k1) = (low, high 32 bits of seed). Block b has counter
// (c0, c1, c2, c3) = (low, high 32 bits of b, 0, 0). One round, with M0 = 0xD2511F53,
// M1 = 0xCD9E8D57: (hi0, lo0) = M0·c0, (hi1, lo1) = M1·c2 (64-bit products);
// (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); then k0 += 0x9E3779B9,
// k1 += 0xBB67AE85. Ten rounds; the block's output is (c0, c1, c2, c3) (Random123's
// philox4x32-10: counter 0, key 0 gives 6627e8d5 e169c58d bc57ac4c 9b00dbd8).
// Element i of a fill with offset o uses word (o + i) % 4 of block (o + i) / 4.
//
// Floats. Every operation below is one IEEE-754 binary32 operation rounded to nearest (this file
// is compiled with -ffp-contract=off); fma(a, b, c) is a fused multiply-add rounded once.
// Constants written 1/6 etc. mean the float nearest to that number.
//   uniform:  u = float(x >> 8) · 2^-24, in [0, 1) exactly; value = lo + (hi − lo)·u
//             (the difference, the product and the sum each rounded).
//   normal:   words (x0, x1) = block words (0, 1) or (2, 3):
//             u1 = float((x0 >> 8) + 1) · 2^-24 in (0, 1]; u2 = float(x1 >> 8) · 2^-24 in [0, 1);
//             r = sqrt(−2·ln(u1)); z0 = r·cos(2π·u2) for the even word, z1 = r·sin(2π·u2) for the
//             odd one; value = mean + std·z.
//   ln(u):    u = m·2^e, m in [1, 2) from the bits; if m > 1.41421354 (0x3FB504F3) then m = m/2,
//             e = e + 1. f = m − 1; s = f / (f + 2); s2 = s·s;
//             P = fma(s2, fma(s2, fma(s2, fma(s2, 1/11, 1/9), 1/7), 1/5), 1/3);
//             t = 2·s; ln m = fma(t·s2, P, t); ln u = fma(e, 0.693145751953125,
//             fma(e, 1.42860682030941723e-6, ln m)).
//   sin/cos(2π·u2): q = int(4·u2 + 0.5) in 0..4; f = u2 − q·0.25 (exact); a = f·6.28318548 (2π
//             rounded); a2 = a·a;
//             S = fma(a2, fma(a2, fma(a2, 1/362880, −1/5040), 1/120), −1/6); sin a = fma(a·a2, S, a);
//             C = fma(a2, fma(a2, fma(a2, fma(a2, −1/3628800, 1/40320), −1/720), 1/24), −1/2);
//             cos a = fma(a2, C, 1); quadrant q % 4 = 0: (sin, cos) = (sin a, cos a);
//             1: (cos a, −sin a); 2: (−sin a, −cos a); 3: (−cos a, sin a).
//   kaiming_uniform: uniform with lo = −bound, hi = bound, bound = float(sqrt(6 / ((1 + a²)·fan_in)))
//             computed in double.
//   dropout:  keep (mask 1) when u >= p, u the uniform draw above; y = x·(1 / (1 − p)) with the
//             scale 1 / (1 − p) computed in float.
#include "internal.h"

#include <cmath>

namespace p4j {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
constexpr int kBatch = 16;                 // Philox blocks generated together (vectorised)
constexpr int64_t kBatchElems = 4 * kBatch;  // fill elements per batch

// Words of blocks blk0 .. blk0 + kBatch − 1: r[w][j] is word w of block blk0 + j.
P4J_INLINE void philox_batch(uint32_t key0, uint32_t key1, uint64_t blk0, uint32_t r[4][kBatch]) {
  uint32_t c0[kBatch], c1[kBatch], c2[kBatch], c3[kBatch];
  for (int j = 0; j < kBatch; ++j) {
    const uint64_t b = blk0 + static_cast<uint64_t>(j);
    c0[j] = static_cast<uint32_t>(b);
    c1[j] = static_cast<uint32_t>(b >> 32);
    c2[j] = 0;
    c3[j] = 0;
  }
  uint32_t k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    for (int j = 0; j < kBatch; ++j) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[j];
      const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[j];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<uint32_t>(p1);
      c3[j] = static_cast<uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
    k0 += kW0;
    k1 += kW1;
  }
  for (int j = 0; j < kBatch; ++j) {
    r[0][j] = c0[j];
    r[1][j] = c1[j];
    r[2][j] = c2[j];
    r[3][j] = c3[j];
  }
}

P4J_INLINE float unit_open_right(uint32_t x) { return static_cast<float>(x >> 8) * 5.9604644775390625e-8f; }
P4J_INLINE float unit_open_left(uint32_t x) { return static_cast<float>((x >> 8) + 1u) * 5.9604644775390625e-8f; }

// ln(u) for u in (0, 1] (normal floats only), the fixed formula in the file comment.
P4J_INLINE float log_fixed(float u) {
  const uint32_t bits = __builtin_bit_cast(uint32_t, u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  float m = __builtin_bit_cast(float, (bits & 0x007FFFFFu) | 0x3F800000u);
  const bool big = m > 1.41421354f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const float f = m - 1.0f;
  const float s = f / (f + 2.0f);
  const float s2 = s * s;
  float p = std::fma(s2, 1.0f / 11.0f, 1.0f / 9.0f);
  p = std::fma(s2, p, 1.0f / 7.0f);
  p = std::fma(s2, p, 1.0f / 5.0f);
  p = std::fma(s2, p, 1.0f / 3.0f);
  const float t = 2.0f * s;
  const float lnm = std::fma(t * s2, p, t);
  const float ef = static_cast<float>(e);
  return std::fma(ef, 0.693145751953125f, std::fma(ef, 1.42860682030941723e-6f, lnm));
}

// sin(2π·u) and cos(2π·u) for u in [0, 1) a multiple of 2^-24, the fixed formula above.
P4J_INLINE void sincos_2pi_fixed(float u, float* sn, float* cs) {
  const int32_t q = static_cast<int32_t>(u * 4.0f + 0.5f);
  const float f = u - static_cast<float>(q) * 0.25f;
  const float a = f * 6.28318548f;
  const float a2 = a * a;
  float ps = std::fma(a2, 1.0f / 362880.0f, -1.0f / 5040.0f);
  ps = std::fma(a2, ps, 1.0f / 120.0f);
  ps = std::fma(a2, ps, -1.0f / 6.0f);
  const float sa = std::fma(a * a2, ps, a);
  float pc = std::fma(a2, -1.0f / 3628800.0f, 1.0f / 40320.0f);
  pc = std::fma(a2, pc, -1.0f / 720.0f);
  pc = std::fma(a2, pc, 1.0f / 24.0f);
  pc = std::fma(a2, pc, -0.5f);
  const float ca = std::fma(a2, pc, 1.0f);
  const int32_t quadrant = q & 3;
  const float s_abs = (quadrant & 1) != 0 ? ca : sa;  // sin θ up to sign
  const float c_abs = (quadrant & 1) != 0 ? sa : ca;  // cos θ up to sign
  *sn = quadrant >= 2 ? -s_abs : s_abs;
  *cs = (quadrant == 1 || quadrant == 2) ? -c_abs : c_abs;
}

enum class Dist { uniform, normal, dropout };

struct Fill {
  Dist dist;
  uint32_t k0, k1;
  int64_t offset;
  float a, b;           // uniform: lo, hi − lo; normal: mean, std; dropout: p, 1 / (1 − p)
  const float* x;       // dropout input
  uint8_t* mask;        // dropout mask
  float* out;           // values (uniform, normal) or dropout output
};

// Elements [i0, i1) of the fill, one batch of 64 positions at a time.
P4J_INLINE void fill_body(const Fill* fp, int64_t i0, int64_t i1) {
  const Fill& f = *fp;
  const int64_t p0 = f.offset + i0, p1 = f.offset + i1;  // positions in the stream
  float vals[kBatchElems];
  uint32_t r[4][kBatch];
  for (int64_t bpos = p0 / kBatchElems * kBatchElems; bpos < p1; bpos += kBatchElems) {
    philox_batch(f.k0, f.k1, static_cast<uint64_t>(bpos / 4), r);
    if (f.dist == Dist::normal) {
      for (int pair = 0; pair < 2; ++pair)
        for (int j = 0; j < kBatch; ++j) {
          const float u1 = unit_open_left(r[2 * pair][j]);
          const float u2 = unit_open_right(r[2 * pair + 1][j]);
          const float rad = std::sqrt(-2.0f * log_fixed(u1));
          float sn, cs;
          sincos_2pi_fixed(u2, &sn, &cs);
          vals[4 * j + 2 * pair] = f.a + f.b * (rad * cs);
          vals[4 * j + 2 * pair + 1] = f.a + f.b * (rad * sn);
        }
    } else if (f.dist == Dist::uniform) {
      for (int w = 0; w < 4; ++w)
        for (int j = 0; j < kBatch; ++j) vals[4 * j + w] = f.a + f.b * unit_open_right(r[w][j]);
    } else {
      for (int w = 0; w < 4; ++w)
        for (int j = 0; j < kBatch; ++j) vals[4 * j + w] = unit_open_right(r[w][j]);
    }
    const int64_t lo = bpos > p0 ? bpos : p0;
    const int64_t hi = bpos + kBatchElems < p1 ? bpos + kBatchElems : p1;
    const int64_t base = lo - f.offset;  // element index of position lo
    const float* v = vals + (lo - bpos);
    const int64_t cnt = hi - lo;
    if (f.dist == Dist::dropout) {
      for (int64_t k = 0; k < cnt; ++k) {
        const bool keep = v[k] >= f.a;
        f.mask[base + k] = keep ? 1 : 0;
        f.out[base + k] = keep ? f.x[base + k] * f.b : 0.0f;
      }
    } else {
      for (int64_t k = 0; k < cnt; ++k) f.out[base + k] = v[k];
    }
  }
}
P4J_MULTIVERSION(fill, (const Fill* f, int64_t i0, int64_t i1), (f, i0, i1))

P4J_INLINE void dropout_bwd_body(int64_t n, const uint8_t* mask, const float* g, float scale, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] != 0 ? g[i] * scale : 0.0f;
}
P4J_MULTIVERSION(dropout_bwd, (int64_t n, const uint8_t* mask, const float* g, float scale, float* dx),
                 (n, mask, g, scale, dx))

constexpr int64_t kRngGrain = 8192;

int32_t check_stream(const char* fn, const p4j_ctx* ctx, int64_t n, int64_t offset) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "n", n));
  P4J_TRY(check_nonneg(fn, "offset", offset));
  P4J_TRY(check_dims(fn, "[n]", n, 1));
  if (offset > INT64_MAX - n)
    return fail(P4J_EINVAL, "%s: offset (%lld) + n (%lld) overflows int64", fn, static_cast<long long>(offset),
                static_cast<long long>(n));
  return P4J_OK;
}

int32_t check_p(const char* fn, float p) {
  if (!(p >= 0.0f && p < 1.0f)) return fail(P4J_EINVAL, "%s: p (%g) not in [0, 1)", fn, p);
  return P4J_OK;
}

void run_fill(const p4j_ctx* ctx, int64_t n, const Fill& f) {
  parallel_range(ctx, n, kRngGrain, [&](int64_t b, int64_t e) { fill_kernel(&f, b, e); });
}

Fill make_fill(Dist dist, int64_t seed, int64_t offset, float a, float b) {
  const uint64_t s = static_cast<uint64_t>(seed);
  return Fill{dist, static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), offset, a, b, nullptr, nullptr,
              nullptr};
}

int32_t uniform_fill(const char* fn, p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float lo, float hi,
                     float* out) {
  P4J_TRY(check_stream(fn, ctx, n, offset));
  P4J_TRY(check_finite(fn, "lo", lo));
  P4J_TRY(check_finite(fn, "hi", hi));
  if (lo > hi) return fail(P4J_EINVAL, "%s: lo (%g) > hi (%g)", fn, lo, hi);
  const float width = hi - lo;
  if (!std::isfinite(width)) return fail(P4J_EINVAL, "%s: hi − lo overflows float (lo %g, hi %g)", fn, lo, hi);
  P4J_TRY(check_ptr(fn, "out", out, n));
  Fill f = make_fill(Dist::uniform, seed, offset, lo, width);
  f.out = out;
  run_fill(ctx, n, f);
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_rng_uniform(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float lo, float hi, float* out) {
  const char* fn = "p4j_rng_uniform";
  return guarded(fn, [&]() -> int32_t { return uniform_fill(fn, ctx, n, seed, offset, lo, hi, out); });
}

int32_t p4j_rng_normal(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float mean, float std, float* out) {
  const char* fn = "p4j_rng_normal";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_stream(fn, ctx, n, offset));
    P4J_TRY(check_finite(fn, "mean", mean));
    P4J_TRY(check_finite(fn, "std", std));
    if (std < 0.0f) return fail(P4J_EINVAL, "%s: std (%g) < 0", fn, std);
    P4J_TRY(check_ptr(fn, "out", out, n));
    Fill f = make_fill(Dist::normal, seed, offset, mean, std);
    f.out = out;
    run_fill(ctx, n, f);
    return P4J_OK;
  });
}

int32_t p4j_rng_kaiming_uniform(p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, int64_t fan_in, float a,
                                float* out) {
  const char* fn = "p4j_rng_kaiming_uniform";
  return guarded(fn, [&]() -> int32_t {
    if (fan_in <= 0) return fail(P4J_EINVAL, "%s: fan_in (%lld) <= 0", fn, static_cast<long long>(fan_in));
    P4J_TRY(check_finite(fn, "a", a));
    const double ad = static_cast<double>(a);
    const float bound = static_cast<float>(std::sqrt(6.0 / ((1.0 + ad * ad) * static_cast<double>(fan_in))));
    return uniform_fill(fn, ctx, n, seed, offset, -bound, bound, out);
  });
}

int32_t p4j_dropout_forward(p4j_ctx* ctx, int64_t n, float p, int64_t seed, int64_t offset, const float* x,
                            uint8_t* mask, float* y) {
  const char* fn = "p4j_dropout_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_stream(fn, ctx, n, offset));
    P4J_TRY(check_p(fn, p));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "mask", mask, n));
    P4J_TRY(check_ptr(fn, "y", y, n));
    Fill f = make_fill(Dist::dropout, seed, offset, p, 1.0f / (1.0f - p));
    f.x = x;
    f.mask = mask;
    f.out = y;
    run_fill(ctx, n, f);
    return P4J_OK;
  });
}

int32_t p4j_dropout_backward(p4j_ctx* ctx, int64_t n, float p, const uint8_t* mask, const float* g, float* dx) {
  const char* fn = "p4j_dropout_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_dims(fn, "[n]", n, 1));
    P4J_TRY(check_p(fn, p));
    P4J_TRY(check_ptr(fn, "mask", mask, n));
    P4J_TRY(check_ptr(fn, "g", g, n));
    P4J_TRY(check_ptr(fn, "dx", dx, n));
    const float scale = 1.0f / (1.0f - p);
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) { dropout_bwd_kernel(e - b, mask + b, g + b, scale, dx + b); });
    return P4J_OK;
  });
}

}  // extern "C"
