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

// GCC 12 builds _mm512_permutexvar_ps and _mm512_srli_epi32 on _mm512_undefined_ps(), which its
// -Wmaybe-uninitialized reports once they are inlined here: a false alarm (every lane is written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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

int32_t check_shape(const char* fn, int64_t d_in, int64_t d_out, int64_t bs) {
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  if (d_in <= 0 || d_in % kChunk != 0)
    return fail(P4J_EINVAL, "%s: d_in (%lld) must be a positive multiple of 8", fn, static_cast<long long>(d_in));
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

int32_t p4j_nf4_matmul_rp(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* x,
                          const uint8_t* codes, const float* scales, float* y) {
  const char* fn = "p4j_nf4_matmul_rp";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_rp(fn, d_in, d_out, blocksize, codes, scales));
    P4J_TRY(check_dims(fn, "x", t, d_in));
    P4J_TRY(check_dims(fn, "y", t, d_out));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    if (t == 0 || d_out == 0) return P4J_OK;
    const Rp rp = rp_shape(d_in, d_out, blocksize);
    const float* code = nf4_code();
    parallel_rows(ctx, rp.groups, kLanes * d_in * t, kGrain, [&](int64_t g0, int64_t g1) {
      rows_kernel(code, rp, t, d_in, d_out, g0, g1, x, codes, scales, y);
    });
    return P4J_OK;
  });
}
