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
//   uniform:  u = float(x >> 8) · 2^-24, in [0, 1) exactly; v = lo + (hi − lo)·u (the difference,
//             the product and the sum each rounded); value = min(v, top) with top the largest float
//             below hi (hi itself when lo = hi), since the rounded sum can reach hi.
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

#include <immintrin.h>

#include <cmath>

namespace p4j {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
constexpr int kBatch = 16;                 // Philox blocks generated together (vectorised)
constexpr int64_t kBatchElems = 4 * kBatch;  // fill elements per batch

// Counter words of blocks blk0 .. blk0 + kBatch − 1 (the low and high 32 bits of each block index).
P4J_INLINE void counters(uint64_t blk0, uint32_t lo[kBatch], uint32_t hi[kBatch]) {
  for (int j = 0; j < kBatch; ++j) {
    const uint64_t b = blk0 + static_cast<uint64_t>(j);
    lo[j] = static_cast<uint32_t>(b);
    hi[j] = static_cast<uint32_t>(b >> 32);
  }
}

// Philox and the word-major -> element-order interleave, in three builds: portable code for the
// baseline, and AVX2 / AVX-512 intrinsics (the compiler does not vectorise the 32x32->64-bit
// products well). r[w][j] is word w of block blk0 + j; interleave writes out[4·j + w] = v[w][j].
// The intrinsic versions are called, not inlined (a call per 64 numbers costs nothing), since
// the shared fill body they are called from is compiled without their target options.
struct GenericOps {
  static P4J_INLINE void philox(uint32_t key0, uint32_t key1, uint64_t blk0, uint32_t r[4][kBatch]) {
    uint32_t c0[kBatch], c1[kBatch], c2[kBatch] = {}, c3[kBatch] = {};
    counters(blk0, c0, c1);
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
  static P4J_INLINE void interleave(const float v[4][kBatch], float* out) {
    for (int j = 0; j < kBatch; ++j)
      for (int w = 0; w < 4; ++w) out[4 * j + w] = v[w][j];
  }
};

struct Avx2Ops {
  // (hi, lo) of the 64-bit products m·c per 32-bit lane: even lanes from one vpmuludq, odd
  // lanes from another on the lanes shifted down.
  // No conditions here: gcov at -O0 counts a branch pair at each inlined intrinsic call on these
  // lines (and in Avx512Ops::mul_hilo), whose second side no input can take.
  P4J_TARGET_AVX2 static P4J_INLINE void mul_hilo(__m256i c, __m256i m, __m256i* hi, __m256i* lo) {
    const __m256i even = _mm256_mul_epu32(c, m);
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  }
  P4J_TARGET_AVX2 static __attribute__((noinline)) void philox(uint32_t key0, uint32_t key1, uint64_t blk0, uint32_t r[4][kBatch]) {
    alignas(32) uint32_t lo[kBatch], hi[kBatch];
    counters(blk0, lo, hi);
    const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kM0)), m1 = _mm256_set1_epi32(static_cast<int>(kM1));
    for (int half = 0; half < kBatch; half += 8) {
      __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo + half));
      __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi + half));
      __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
      uint32_t k0 = key0, k1 = key1;
      for (int round = 0; round < 10; ++round) {
        __m256i hi0, lo0, hi1, lo1;
        mul_hilo(c0, m0, &hi0, &lo0);
        mul_hilo(c2, m1, &hi1, &lo1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
        c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
        c1 = lo1;
        c3 = lo0;
        k0 += kW0;
        k1 += kW1;
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(r[0] + half), c0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(r[1] + half), c1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(r[2] + half), c2);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(r[3] + half), c3);
    }
  }
  // 4x4 transposes inside 128-bit lanes, then the lanes put in block order.
  P4J_TARGET_AVX2 static __attribute__((noinline)) void interleave(const float v[4][kBatch], float* out) {
    for (int half = 0; half < kBatch; half += 8) {
      const __m256 v0 = _mm256_loadu_ps(v[0] + half), v1 = _mm256_loadu_ps(v[1] + half);
      const __m256 v2 = _mm256_loadu_ps(v[2] + half), v3 = _mm256_loadu_ps(v[3] + half);
      const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
      const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
      const __m256 r0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
      const __m256 r1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
      const __m256 r2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
      const __m256 r3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
      float* o = out + 4 * half;  // rK holds block half+K in its low lane, half+4+K in its high lane
      _mm256_storeu_ps(o, _mm256_permute2f128_ps(r0, r1, 0x20));
      _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(r2, r3, 0x20));
      _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(r0, r1, 0x31));
      _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(r2, r3, 0x31));
    }
  }
};

// GCC 12 warns about the deliberately undefined pass-through operand inside its own AVX-512
// intrinsic headers (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
struct Avx512Ops {
  P4J_TARGET_AVX512 static P4J_INLINE void mul_hilo(__m512i c, __m512i m, __m512i* hi, __m512i* lo) {
    const __m512i even = _mm512_mul_epu32(c, m);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  }
  P4J_TARGET_AVX512 static __attribute__((noinline)) void philox(uint32_t key0, uint32_t key1, uint64_t blk0, uint32_t r[4][kBatch]) {
    alignas(64) uint32_t lo[kBatch], hi[kBatch];
    counters(blk0, lo, hi);
    const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kM0)), m1 = _mm512_set1_epi32(static_cast<int>(kM1));
    __m512i c0 = _mm512_load_si512(lo), c1 = _mm512_load_si512(hi);
    __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
    uint32_t k0 = key0, k1 = key1;
    for (int round = 0; round < 10; ++round) {
      __m512i hi0, lo0, hi1, lo1;
      mul_hilo(c0, m0, &hi0, &lo0);
      mul_hilo(c2, m1, &hi1, &lo1);
      c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
      c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += kW0;
      k1 += kW1;
    }
    _mm512_storeu_si512(r[0], c0);
    _mm512_storeu_si512(r[1], c1);
    _mm512_storeu_si512(r[2], c2);
    _mm512_storeu_si512(r[3], c3);
  }
  // 4x4 transposes inside 128-bit lanes (rK: block 4L+K in lane L), then a 4x4 transpose of lanes.
  P4J_TARGET_AVX512 static __attribute__((noinline)) void interleave(const float v[4][kBatch], float* out) {
    const __m512 v0 = _mm512_loadu_ps(v[0]), v1 = _mm512_loadu_ps(v[1]);
    const __m512 v2 = _mm512_loadu_ps(v[2]), v3 = _mm512_loadu_ps(v[3]);
    const __m512 t0 = _mm512_unpacklo_ps(v0, v1), t1 = _mm512_unpackhi_ps(v0, v1);
    const __m512 t2 = _mm512_unpacklo_ps(v2, v3), t3 = _mm512_unpackhi_ps(v2, v3);
    const __m512 r0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    const __m512 r1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    const __m512 r2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    const __m512 r3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    const __m512 s0 = _mm512_shuffle_f32x4(r0, r1, _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 s1 = _mm512_shuffle_f32x4(r2, r3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 s2 = _mm512_shuffle_f32x4(r0, r1, _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 s3 = _mm512_shuffle_f32x4(r2, r3, _MM_SHUFFLE(3, 2, 3, 2));
    _mm512_storeu_ps(out, _mm512_shuffle_f32x4(s0, s1, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(s0, s1, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(s2, s3, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(s2, s3, _MM_SHUFFLE(3, 1, 3, 1)));
  }
};
#pragma GCC diagnostic pop

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
  float top;            // uniform: the largest value allowed (below hi)
  const float* x;       // dropout input
  uint8_t* mask;        // dropout mask
  float* out;           // values (uniform, normal) or dropout output
};

// Elements [i0, i1) of the fill, one batch of 64 positions at a time: words, then values per
// word (vectorised over blocks), then element order.
template <class Ops>
P4J_INLINE void fill_body(const Fill* fp, int64_t i0, int64_t i1) {
  const Fill& f = *fp;
  const int64_t p0 = f.offset + i0, p1 = f.offset + i1;  // positions in the stream
  alignas(64) float vals[kBatchElems];
  alignas(64) float v[4][kBatch];
  alignas(64) uint32_t r[4][kBatch];
  for (int64_t bpos = p0 / kBatchElems * kBatchElems; bpos < p1; bpos += kBatchElems) {
    Ops::philox(f.k0, f.k1, static_cast<uint64_t>(bpos / 4), r);
    if (f.dist == Dist::normal) {
      for (int pair = 0; pair < 2; ++pair)
        for (int j = 0; j < kBatch; ++j) {
          const float u1 = unit_open_left(r[2 * pair][j]);
          const float u2 = unit_open_right(r[2 * pair + 1][j]);
          const float rad = std::sqrt(-2.0f * log_fixed(u1));
          float sn, cs;
          sincos_2pi_fixed(u2, &sn, &cs);
          v[2 * pair][j] = f.a + f.b * (rad * cs);
          v[2 * pair + 1][j] = f.a + f.b * (rad * sn);
        }
    } else if (f.dist == Dist::uniform) {
      for (int w = 0; w < 4; ++w)
        for (int j = 0; j < kBatch; ++j) {
          const float val = f.a + f.b * unit_open_right(r[w][j]);
          v[w][j] = val > f.top ? f.top : val;
        }
    } else {
      for (int w = 0; w < 4; ++w)
        for (int j = 0; j < kBatch; ++j) v[w][j] = unit_open_right(r[w][j]);
    }
    Ops::interleave(v, vals);
    const int64_t lo = bpos > p0 ? bpos : p0;
    const int64_t hi = bpos + kBatchElems < p1 ? bpos + kBatchElems : p1;
    const int64_t base = lo - f.offset;  // element index of position lo
    const float* u = vals + (lo - bpos);
    const int64_t cnt = hi - lo;
    if (f.dist == Dist::dropout) {
      const float p = f.a, scale = f.b;
      const float* xs = f.x + base;  // may equal ys (in place)
      float* ys = f.out + base;
      uint8_t* __restrict ms = f.mask + base;
      for (int64_t k = 0; k < cnt; ++k) {
        const bool keep = u[k] >= p;
        ms[k] = keep ? 1 : 0;
        ys[k] = keep ? xs[k] * scale : 0.0f;
      }
    } else {
      float* __restrict ys = f.out + base;
      for (int64_t k = 0; k < cnt; ++k) ys[k] = u[k];
    }
  }
}
P4J_TARGET_AVX512 __attribute__((noinline)) void fill_avx512(const Fill* f, int64_t i0, int64_t i1) {
  fill_body<Avx512Ops>(f, i0, i1);
}
P4J_TARGET_AVX2 __attribute__((noinline)) void fill_avx2(const Fill* f, int64_t i0, int64_t i1) {
  fill_body<Avx2Ops>(f, i0, i1);
}
__attribute__((noinline)) void fill_base(const Fill* f, int64_t i0, int64_t i1) { fill_body<GenericOps>(f, i0, i1); }
void fill_kernel(const Fill* f, int64_t i0, int64_t i1) {
  switch (active_isa()) {
    case Isa::avx512: fill_avx512(f, i0, i1); return;
    case Isa::avx2: fill_avx2(f, i0, i1); return;
    default: fill_base(f, i0, i1); return;
  }
}

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
  return Fill{dist, static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), offset, a, b, 0.0f, nullptr, nullptr,
              nullptr};
}

int32_t uniform_fill(const char* fn, p4j_ctx* ctx, int64_t n, int64_t seed, int64_t offset, float lo, float hi,
                     float* out) {
  P4J_TRY(check_stream(fn, ctx, n, offset));
  P4J_TRY(check_finite(fn, "lo", lo));
  P4J_TRY(check_finite(fn, "hi", hi));
  if (lo > hi) return fail(P4J_EINVAL, "%s: lo (%g) > hi (%g)", fn, lo, hi);
  const float width = hi - lo;
  if (!std::isfinite(width)) return fail(P4J_EINVAL, "%s: hi - lo overflows float (lo %g, hi %g)", fn, lo, hi);
  P4J_TRY(check_ptr(fn, "out", out, n));
  Fill f = make_fill(Dist::uniform, seed, offset, lo, width);
  f.top = lo < hi ? std::nextafter(hi, lo) : hi;  // lo = hi: NativeAbiTest#uniformWithLoEqualToHiIsConstant
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
