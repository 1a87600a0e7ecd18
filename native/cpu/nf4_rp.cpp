// nf4_rp.cpp: the kernel layout of an NF4 weight (peft4j.h, p4j_nf4_rp_size) and the product
// y = x·dequant(W)ᵀ on it, for few rows (a decode step). Why a second layout: with bitsandbytes'
// bytes a 16-lane decode needs extra shuffles (and a per-call rearrangement of x) on the one port
// that also does the codebook permute; here one 64-byte read at byte offset b gives, in the low
// nibble of each of its 16 dwords, the code of one of 16 rows at one column, so 4 reads, 4 shifts
// and 8 codebook permutes (vpermps: only the low 4 bits index) decode 8 columns of 16 rows, each
// multiplied by one broadcast x value; the 16 lanes are 16 output rows, so no horizontal sums, and
// one absmax vector per segment scales Σ code·x of the 16 rows.
#include <immintrin.h>

#include "internal.h"
#include "nf4.h"

// GCC 12 builds _mm512_permutexvar_ps, _mm512_srli_epi32 and the _mm512_reduce_* halves on
// undefined vectors, which its -W(maybe-)uninitialized reports once they are inlined here: a false
// alarm (every lane is written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace p4j {
namespace {

constexpr int64_t kLanes = 16;  // rows per group
constexpr int64_t kChunk = 8;   // columns per 64-byte chunk
constexpr int64_t kPad = 64;    // bytes after the last chunk (the reads at byte offsets 1..3 run past it)

struct Rp {
  int64_t groups, chunks, seg, segs;  // row groups, chunks per row group, columns per segment, segments
};

Rp rp_shape(int64_t d_in, int64_t d_out, int64_t bs) {
  const int64_t low = d_in & -d_in;
  const int64_t seg = bs < low ? bs : low;
  return Rp{(d_out + kLanes - 1) / kLanes, d_in / kChunk, seg, d_in / seg};
}

int32_t check_d_in(const char* fn, int64_t d_in) {
  if (d_in <= 0 || d_in % kChunk != 0)
    return fail(P4J_EINVAL, "%s: d_in (%lld) must be a positive multiple of 8", fn, static_cast<long long>(d_in));
  return P4J_OK;
}

int32_t check_shape(const char* fn, int64_t d_in, int64_t d_out, int64_t bs) {
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  P4J_TRY(check_d_in(fn, d_in));
  P4J_TRY(check_dims(fn, "W", d_out, d_in));
  if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
    return fail(P4J_EINVAL, "%s: blocksize (%lld) is not a power of two in [32, 4096]", fn, static_cast<long long>(bs));
  return P4J_OK;
}

// Byte and nibble shift of W[16g + l, c] inside its group's codes.
P4J_INLINE int64_t rp_byte(int64_t l, int64_t c) { return (c / kChunk) * 64 + 4 * l + ((c % kChunk) >> 1); }
P4J_INLINE int rp_shift(int64_t c) { return (c & 1) ? 4 : 0; }

// ---- the product, AVX-512 ----
// Rows r0 .. r0 + R of x against one row group: R <= 4 rows of x share each decoded vector; NT
// independent FMA chains per row of x (4 when R = 1: the FMA latency, not the ports, would bound one).
template <int R>
P4J_TARGET_AVX512 __attribute__((noinline)) void pass_avx512(__m512 tab, const Rp& rp, const uint8_t* __restrict cg,
                                              const float* __restrict sg, const float* __restrict x, int64_t d_in,
                                              float* __restrict y, int64_t d_out, __mmask16 keep) {
  constexpr int NT = R == 1 ? 4 : 2;
  const int64_t per_seg = rp.seg / kChunk;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < rp.segs; ++s) {
    __m512 part[R][NT];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NT; ++j) part[r][j] = _mm512_setzero_ps();
    for (int64_t k = s * per_seg; k < (s + 1) * per_seg; ++k) {
      const uint8_t* c = cg + 64 * k;
      const float* xk = x + kChunk * k;
      for (int b = 0; b < 4; ++b) {
        const __m512i d = _mm512_loadu_si512(c + b);
        const __m512 w0 = _mm512_permutexvar_ps(d, tab);                         // columns 8k + 2b
        const __m512 w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab);  // and 8k + 2b + 1
        for (int r = 0; r < R; ++r) {
          __m512& p = part[r][b % NT];
          p = _mm512_fmadd_ps(w0, _mm512_set1_ps(xk[r * d_in + 2 * b]), p);
          p = _mm512_fmadd_ps(w1, _mm512_set1_ps(xk[r * d_in + 2 * b + 1]), p);
        }
      }
    }
    const __m512 sc = _mm512_loadu_ps(sg + kLanes * s);
    for (int r = 0; r < R; ++r) {
      __m512 sum = part[r][0];
      for (int j = 1; j < NT; ++j) sum = _mm512_add_ps(sum, part[r][j]);
      acc[r] = _mm512_fmadd_ps(sum, sc, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * d_out, keep, acc[r]);
}

P4J_TARGET_AVX512 __attribute__((noinline)) void rows_avx512(const float* code, const Rp& rp, int64_t t, int64_t d_in,
                                                             int64_t d_out, int64_t g0, int64_t g1, const float* x,
                                                             const uint8_t* codes, const float* scales, float* y) {
  const __m512 tab = _mm512_loadu_ps(code);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* cg = codes + 64 * rp.chunks * g;
    const float* sg = scales + kLanes * rp.segs * g;
    const int64_t n = d_out - kLanes * g < kLanes ? d_out - kLanes * g : kLanes;
    const __mmask16 keep = static_cast<__mmask16>((1u << n) - 1);
    float* yg = y + kLanes * g;
    int64_t r = 0;
    for (; r + 4 <= t; r += 4) pass_avx512<4>(tab, rp, cg, sg, x + r * d_in, d_in, yg + r * d_out, d_out, keep);
    switch (t - r) {
      case 3: pass_avx512<3>(tab, rp, cg, sg, x + r * d_in, d_in, yg + r * d_out, d_out, keep); break;
      case 2: pass_avx512<2>(tab, rp, cg, sg, x + r * d_in, d_in, yg + r * d_out, d_out, keep); break;
      case 1: pass_avx512<1>(tab, rp, cg, sg, x + r * d_in, d_in, yg + r * d_out, d_out, keep); break;
      default: break;
    }
  }
}

// ---- the product, AVX2 and the baseline: the same order of operations in 16-lane GCC vectors ----
P4J_INLINE nf4_v16f splat(float v) { return nf4_v16f{v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v}; }

P4J_INLINE void rows_generic(const float* code, const Rp& rp, int64_t t, int64_t d_in, int64_t d_out, int64_t g0,
                             int64_t g1, const float* __restrict x, const uint8_t* __restrict codes,
                             const float* __restrict scales, float* __restrict y) {
  nf4_v16f tab;
  std::memcpy(&tab, code, sizeof tab);
  const int64_t per_seg = rp.seg / kChunk;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* cg = codes + 64 * rp.chunks * g;
    const float* sg = scales + kLanes * rp.segs * g;
    const int64_t n = d_out - kLanes * g < kLanes ? d_out - kLanes * g : kLanes;
    for (int64_t r = 0; r < t; ++r) {
      const float* xr = x + r * d_in;
      nf4_v16f acc{};
      for (int64_t s = 0; s < rp.segs; ++s) {
        nf4_v16f part[2] = {};
        for (int64_t k = s * per_seg; k < (s + 1) * per_seg; ++k) {
          for (int b = 0; b < 4; ++b) {
            nf4_v16i d;
            std::memcpy(&d, cg + 64 * k + b, sizeof d);
            const nf4_v16f w0 = __builtin_shuffle(tab, d & 15);
            const nf4_v16f w1 = __builtin_shuffle(tab, (nf4_v16i)((nf4_v16u)d >> 4) & 15);
            part[b % 2] += w0 * splat(xr[kChunk * k + 2 * b]);
            part[b % 2] += w1 * splat(xr[kChunk * k + 2 * b + 1]);
          }
        }
        nf4_v16f sc;
        std::memcpy(&sc, sg + kLanes * s, sizeof sc);
        acc += (part[0] + part[1]) * sc;
      }
      for (int64_t l = 0; l < n; ++l) y[r * d_out + kLanes * g + l] = acc[l];
    }
  }
}
P4J_TARGET_AVX2 __attribute__((noinline)) void rows_avx2(const float* code, const Rp& rp, int64_t t, int64_t d_in,
                                                         int64_t d_out, int64_t g0, int64_t g1, const float* x,
                                                         const uint8_t* codes, const float* scales, float* y) {
  rows_generic(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y);
}
__attribute__((noinline)) void rows_base(const float* code, const Rp& rp, int64_t t, int64_t d_in, int64_t d_out,
                                         int64_t g0, int64_t g1, const float* x, const uint8_t* codes,
                                         const float* scales, float* y) {
  rows_generic(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y);
}

void rows_kernel(const float* code, const Rp& rp, int64_t t, int64_t d_in, int64_t d_out, int64_t g0, int64_t g1,
                 const float* x, const uint8_t* codes, const float* scales, float* y) {
  switch (active_isa()) {  // each case: tests/pom.xml ISA runs
    case Isa::avx512: rows_avx512(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y); return;
    case Isa::avx2: rows_avx2(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y); return;
    default: rows_base(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y); return;
  }
}

// ---- t = 1 on AVX-512 with VBMI and VNNI: x-scaled byte tables, exact integer sums ----
// Why: the kernel above spends one codebook permute and one FMA per 16 weights on the two 512-bit
// ports, which bounds a decode step on two cores well above a quarter of the fp32 GEMV on a CPU
// whose large L3 holds the fp32 weight. Here x is folded into the tables instead: for column c,
// x[c]·code[q] in 24-bit fixed point (step delta = 2^(e − 23), |x| < 2^e over a run of columns) as
// three byte planes; one byte permute (vpermb: 64 lanes, 4 columns × 16 codes per table) and one
// vpdpbusd (4 bytes summed into each of 16 int32 lanes, 64 weights) per plane do 64 weights, so
// 128 weights take 15 vector ops instead of 20, and the sums over a run are exact. Each
// run's sum is converted once, times delta and the row's absmax, into the fp32 row sum.
// Error: at most n_nz·delta/2 per run (n_nz = its nonzero x), which kSpread bounds by
// 2^-19·Σ|x| of the run; a run where x is not finite, outside [2^-100, 2^100] or has
// outliers (n_nz·max|x| > kSpread·Σ|x|) takes the fp32 path of the kernel above instead (delta 0).
constexpr int64_t kTabChunk = 384;  // table bytes per chunk: 3 planes × (even, odd columns) × 64
constexpr int64_t kSubMax = 64;     // columns per run (a run stays inside one segment; |Σ q| < 2^29)
constexpr int64_t kTile = 512;      // columns per sweep over a piece of row groups: 24 KiB of tables, in L1
constexpr float kSpread = 16.0f;

P4J_INLINE int64_t rp_sub(const Rp& rp) { return rp.seg < kSubMax ? rp.seg : kSubMax; }

// Tables and deltas for t = 1: workspace bytes (p4j_nf4_rp_workspace), 64-byte aligned inside.
int64_t tab_bytes(int64_t d_in) { return kTabChunk * (d_in / kChunk); }
int64_t tables_workspace(int64_t d_in) { return tab_bytes(d_in) + 4 * (d_in / kChunk) + 64; }

// A CPU fact: one side per machine (both true on this project's AVX-512 machines).
bool cpu_has_vbmi_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
  return yes;
}

#define P4J_TARGET_VBMI                                                                                     \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vbmi,avx512vnni,avx2,fma,bmi2," \
                        "prefer-vector-width=512")))

// 2^k for a normal k (|k| <= 126)
P4J_INLINE float pow2(int k) {
  const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Run b of x (sub columns): delta[b], and the tables of its chunks when delta > 0 (0: the fp32 path).
P4J_TARGET_VBMI void build_tables(const float* code, const float* __restrict x, int64_t sub, int64_t b,
                                  uint8_t* __restrict tab, float* __restrict delta) {
  const float* xb = x + sub * b;
  __m512 mx = _mm512_setzero_ps(), sum = _mm512_setzero_ps();
  int nz = 0;
  bool finite = true;
  for (int64_t j = 0; j < sub; j += 16) {
    const __mmask16 in = sub - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (sub - j)) - 1);  // sub = 8: half
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(in, xb + j));
    finite = finite && _mm512_cmp_ps_mask(a, _mm512_set1_ps(3.4028235e38f), _CMP_LE_OQ) == 0xFFFF;  // inf, NaN: no
    mx = _mm512_max_ps(mx, a);
    sum = _mm512_add_ps(sum, a);
    nz += __builtin_popcount(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ));
  }
  const float m = _mm512_reduce_max_ps(mx);
  if (!(finite && m <= 0x1p100f && (m == 0.0f || m >= 0x1p-100f) &&
        static_cast<float>(nz) * m <= kSpread * _mm512_reduce_add_ps(sum))) {
    delta[b] = 0.0f;
    return;
  }
  // m < 2^e: e − 1 is m's binary exponent (m is normal here)
  uint32_t bits = 0;
  std::memcpy(&bits, &m, 4);
  const int e = m == 0.0f ? 0 : static_cast<int>(bits >> 23) - 126;
  delta[b] = pow2(e - 23);
  // code·2^(23−e) is exact, so x·that is x·code rounded once, below 2^23 in magnitude; the nearest
  // integer may reach 2^23 at a tie (-2^23 is fine: offset 0), hence the one clamp.
  const __m512 cbs = _mm512_mul_ps(_mm512_loadu_ps(code), _mm512_set1_ps(pow2(23 - e)));
  const __m512i qmax = _mm512_set1_epi32((1 << 23) - 1), half = _mm512_set1_epi32(1 << 23);
  // byte 16p + i of the permuted vector = byte p of lane i: planes 0, 1, 2 in its first 48 bytes
  const __m512i planes = _mm512_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                        //
                                         62, 58, 54, 50, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10, 6, 2,    //
                                         61, 57, 53, 49, 45, 41, 37, 33, 29, 25, 21, 17, 13, 9, 5, 1,     //
                                         60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
  for (int64_t k = sub * b / kChunk; k < sub * (b + 1) / kChunk; ++k) {
    const float* xk = x + kChunk * k;
    uint8_t* tk = tab + kTabChunk * k;
#pragma GCC unroll 8
    for (int i = 0; i < kChunk; ++i) {  // column 8k + i: table half i & 1, quarter i >> 1
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_set1_ps(xk[i]), cbs));
      const __m512i u = _mm512_permutexvar_epi8(planes, _mm512_add_epi32(_mm512_min_epi32(q, qmax), half));
      uint8_t* t = tk + 64 * (i & 1) + 16 * (i >> 1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t), _mm512_castsi512_si128(u));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 128), _mm512_extracti32x4_epi32(u, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 256), _mm512_extracti32x4_epi32(u, 2));
    }
  }
}

// G row groups from g of y = x·dequant(W)ᵀ for one row of x over columns [c0, c1), added to the
// running sums in y (set when c0 = 0). Two groups share each table read.
template <int G>
P4J_TARGET_VBMI P4J_INLINE void groups_tables(const Rp& rp, int64_t d_out, int64_t g, int64_t c0, int64_t c1,
                                              __m512 cb, const float* __restrict x, const uint8_t* __restrict codes,
                                              const float* __restrict scales, const uint8_t* __restrict tab,
                                              const float* __restrict delta, float* __restrict y) {
  const int64_t sub = rp_sub(rp), subs_per_seg = rp.seg / sub, per_sub = sub / kChunk;
  const __m512i low = _mm512_set1_epi8(0x0F);
  const __m512i quad = _mm512_set1_epi32(0x30201000);  // byte 4l + m: m·16, column 2m (+1) of the chunk
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i neg_bias = _mm512_set1_epi32(-static_cast<int32_t>(sub << 23));
  const uint8_t* cg[G];
  const float* sg[G];
  __mmask16 keep[G];
  __m512 acc[G];
  for (int i = 0; i < G; ++i) {
    cg[i] = codes + 64 * rp.chunks * (g + i);
    sg[i] = scales + kLanes * rp.segs * (g + i);
    const int64_t n = d_out - kLanes * (g + i) < kLanes ? d_out - kLanes * (g + i) : kLanes;
    keep[i] = static_cast<__mmask16>((1u << n) - 1);
    acc[i] = c0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep[i], y + kLanes * (g + i));
  }
  for (int64_t b = c0 / sub; b < c1 / sub; ++b) {
    if (delta[b] > 0.0f) {
      // a[i][0] starts at −Σ of the 2^23 offsets, so the recombined sum is Σ q
      __m512i a[G][6];
      for (int i = 0; i < G; ++i) {
        a[i][0] = neg_bias;
        for (int j = 1; j < 6; ++j) a[i][j] = _mm512_setzero_si512();
      }
#pragma GCC unroll 8
      for (int64_t k = per_sub * b; k < per_sub * (b + 1); ++k) {
        const uint8_t* t = tab + kTabChunk * k;
        __m512i ix[G][2];
        for (int i = 0; i < G; ++i) {
          const __m512i d = _mm512_loadu_si512(cg[i] + 64 * k);
          _mm_prefetch(reinterpret_cast<const char*>(cg[i] + 64 * (G * rp.chunks + k)), _MM_HINT_T0);  // never faults
          ix[i][0] = _mm512_ternarylogic_epi32(d, low, quad, 0xEA);  // (d & low) | quad
          ix[i][1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(d, 4), low, quad, 0xEA);
        }
        for (int j = 0; j < 6; ++j) {  // plane j / 2, even (j even) or odd columns
          const __m512i tj = _mm512_load_si512(t + 64 * j);
          for (int i = 0; i < G; ++i) a[i][j] = _mm512_dpbusd_epi32(a[i][j], _mm512_permutexvar_epi8(ix[i][j & 1], tj), ones);
        }
      }
      for (int i = 0; i < G; ++i) {
        __m512i q = _mm512_add_epi32(a[i][0], a[i][1]);
        q = _mm512_add_epi32(q, _mm512_slli_epi32(_mm512_add_epi32(a[i][2], a[i][3]), 8));
        q = _mm512_add_epi32(q, _mm512_slli_epi32(_mm512_add_epi32(a[i][4], a[i][5]), 16));
        const __m512 part = _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(delta[b]));
        acc[i] = _mm512_fmadd_ps(part, _mm512_loadu_ps(sg[i] + kLanes * (b / subs_per_seg)), acc[i]);
      }
    } else {  // the fp32 path, as pass_avx512<1>
      for (int i = 0; i < G; ++i) {
        __m512 part[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t k = per_sub * b; k < per_sub * (b + 1); ++k) {
          for (int h = 0; h < 4; ++h) {
            const __m512i d = _mm512_loadu_si512(cg[i] + 64 * k + h);
            part[h & 1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(d, cb), _mm512_set1_ps(x[kChunk * k + 2 * h]), part[h & 1]);
            part[h & 1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), cb),
                                          _mm512_set1_ps(x[kChunk * k + 2 * h + 1]), part[h & 1]);
          }
        }
        acc[i] = _mm512_fmadd_ps(_mm512_add_ps(part[0], part[1]), _mm512_loadu_ps(sg[i] + kLanes * (b / subs_per_seg)), acc[i]);
      }
    }
  }
  for (int i = 0; i < G; ++i) _mm512_mask_storeu_ps(y + kLanes * (g + i), keep[i], acc[i]);
}

// Row groups [g0, g1) of y = x·dequant(W)ᵀ for one row of x, column tile by column tile (the
// groups' running sums kept in y between tiles), two groups at a time.
P4J_TARGET_VBMI __attribute__((noinline)) void rows_tables(const float* code, const Rp& rp, int64_t d_in,
                                                           int64_t d_out, int64_t g0, int64_t g1, const float* x,
                                                           const uint8_t* codes, const float* scales,
                                                           const uint8_t* tab, const float* delta, float* y) {
  const __m512 cb = _mm512_loadu_ps(code);
  for (int64_t c0 = 0; c0 < d_in; c0 += kTile) {
    const int64_t c1 = c0 + kTile < d_in ? c0 + kTile : d_in;
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) groups_tables<2>(rp, d_out, g, c0, c1, cb, x, codes, scales, tab, delta, y);
    if (g < g1) groups_tables<1>(rp, d_out, g, c0, c1, cb, x, codes, scales, tab, delta, y);
  }
}

// y = x·dequant(W)ᵀ for one row x on the tables path: tables built on all threads, then row groups
// taken in pieces as threads finish (cores of a shared host run at different speeds).
void gemv_tables(const p4j_ctx* ctx, const Rp& rp, int64_t d_in, int64_t d_out, const float* x, const uint8_t* codes,
                 const float* scales, uint8_t* workspace, float* y) {
  const float* code = nf4_code();
  uint8_t* tab = workspace + ((64 - reinterpret_cast<uintptr_t>(workspace) % 64) % 64);
  float* delta = reinterpret_cast<float*>(tab + tab_bytes(d_in));
  const int64_t sub = rp_sub(rp), subs = d_in / sub;
  int nt = threads_for(ctx, kLanes * d_in * rp.groups, kGrain);
  const int64_t piece_cap = rp.groups / (4 * static_cast<int64_t>(nt));
  const int64_t piece = piece_cap < 1 ? 1 : (piece_cap > 16 ? 16 : piece_cap);
  const int64_t pieces = (rp.groups + piece - 1) / piece;
  if (nt > pieces) nt = static_cast<int>(pieces);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < subs; ++b) build_tables(code, x, sub, b, tab, delta);
#pragma omp for schedule(dynamic, 1)
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t g1 = piece * (p + 1) < rp.groups ? piece * (p + 1) : rp.groups;
      rows_tables(code, rp, d_in, d_out, piece * p, g1, x, codes, scales, tab, delta, y);
    }
  }
}

int32_t check_rp(const char* fn, int64_t d_in, int64_t d_out, int64_t bs, const uint8_t* codes, const float* scales) {
  P4J_TRY(check_shape(fn, d_in, d_out, bs));
  const Rp rp = rp_shape(d_in, d_out, bs);
  P4J_TRY(check_ptr(fn, "codes", codes, 1));
  if (rp.groups > 0) P4J_TRY(check_ptr(fn, "scales", scales, 1));
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

int32_t p4j_nf4_rp_size(int64_t d_in, int64_t d_out, int64_t blocksize, int64_t* code_bytes, int64_t* scale_floats) {
  const char* fn = "p4j_nf4_rp_size";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_shape(fn, d_in, d_out, blocksize));
    P4J_TRY(check_ptr(fn, "code_bytes", code_bytes, 1));
    P4J_TRY(check_ptr(fn, "scale_floats", scale_floats, 1));
    const Rp rp = rp_shape(d_in, d_out, blocksize);
    *code_bytes = 64 * rp.chunks * rp.groups + kPad;
    *scale_floats = kLanes * rp.segs * rp.groups;
    return P4J_OK;
  });
}

int32_t p4j_nf4_repack(p4j_ctx* ctx, int64_t d_in, int64_t d_out, int64_t blocksize, const uint8_t* packed,
                       const float* absmax, uint8_t* codes, float* scales) {
  const char* fn = "p4j_nf4_repack";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_rp(fn, d_in, d_out, blocksize, codes, scales));
    P4J_TRY(check_ptr(fn, "packed", packed, d_out));
    P4J_TRY(check_ptr(fn, "absmax", absmax, d_out));
    const Rp rp = rp_shape(d_in, d_out, blocksize);
    const int sh = __builtin_ctzll(static_cast<unsigned long long>(blocksize));
    std::memset(codes + 64 * rp.chunks * rp.groups, 0, kPad);
    parallel_rows(ctx, rp.groups, kLanes * d_in, kGrain, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        uint8_t* cg = codes + 64 * rp.chunks * g;
        float* sg = scales + kLanes * rp.segs * g;
        std::memset(cg, 0x77, static_cast<size_t>(64 * rp.chunks));  // padding rows: code 7 (0.0)
        for (int64_t l = 0; l < kLanes; ++l) {
          const int64_t o = kLanes * g + l;
          if (o >= d_out) {
            for (int64_t s = 0; s < rp.segs; ++s) sg[kLanes * s + l] = 0.0f;
            continue;
          }
          for (int64_t c = 0; c < d_in; ++c) {
            const int64_t f = o * d_in + c;
            const uint8_t q = (f & 1) ? packed[f >> 1] & 15 : packed[f >> 1] >> 4;
            uint8_t& dst = cg[rp_byte(l, c)];
            dst = static_cast<uint8_t>((dst & (0xF0 >> rp_shift(c))) | (q << rp_shift(c)));
          }
          for (int64_t s = 0; s < rp.segs; ++s) sg[kLanes * s + l] = absmax[(o * d_in + s * rp.seg) >> sh];
        }
      }
    });
    return P4J_OK;
  });
}

int32_t p4j_nf4_rp_dequantize(p4j_ctx* ctx, int64_t d_in, int64_t d_out, int64_t blocksize, const uint8_t* codes,
                              const float* scales, float* out) {
  const char* fn = "p4j_nf4_rp_dequantize";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_rp(fn, d_in, d_out, blocksize, codes, scales));
    P4J_TRY(check_ptr(fn, "out", out, d_out * d_in));
    const Rp rp = rp_shape(d_in, d_out, blocksize);
    const float* code = nf4_code();
    parallel_rows(ctx, d_out, d_in, kGrain, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const int64_t g = o / kLanes, l = o % kLanes;
        const uint8_t* cg = codes + 64 * rp.chunks * g;
        const float* sg = scales + kLanes * rp.segs * g;
        for (int64_t c = 0; c < d_in; ++c)
          out[o * d_in + c] = code[(cg[rp_byte(l, c)] >> rp_shift(c)) & 15] * sg[kLanes * (c / rp.seg) + l];
      }
    });
    return P4J_OK;
  });
}

int32_t p4j_nf4_rp_workspace(int64_t t, int64_t d_in, int64_t* bytes) {
  const char* fn = "p4j_nf4_rp_workspace";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_d_in(fn, d_in));
    P4J_TRY(check_ptr(fn, "bytes", bytes, 1));
    *bytes = t == 1 ? tables_workspace(d_in) : 0;
    return P4J_OK;
  });
}

int32_t p4j_nf4_matmul_rp(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* x,
                          const uint8_t* codes, const float* scales, uint8_t* workspace, float* y) {
  const char* fn = "p4j_nf4_matmul_rp";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_rp(fn, d_in, d_out, blocksize, codes, scales));
    P4J_TRY(check_dims(fn, "x", t, d_in));
    P4J_TRY(check_dims(fn, "y", t, d_out));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    if (t == 1) P4J_TRY(check_ptr(fn, "workspace", workspace, 1));
    if (t == 0 || d_out == 0) return P4J_OK;
    const Rp rp = rp_shape(d_in, d_out, blocksize);
    // The tables path: one side per machine for a given PEFT4J_CPU_ISA run (a CPU fact where the
    // avx512 run lacks VBMI or VNNI).
    if (t == 1 && active_isa() == Isa::avx512 && cpu_has_vbmi_vnni()) {
      gemv_tables(ctx, rp, d_in, d_out, x, codes, scales, workspace, y);
      return P4J_OK;
    }
    const float* code = nf4_code();
    parallel_rows_dynamic(ctx, rp.groups, kLanes * d_in * t, kGrain, 4, [&](int64_t g0, int64_t g1) {
      rows_kernel(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y);
    });
    return P4J_OK;
  });
}
