// nf4_matmul.cpp: products with a frozen NF4 weight W [d_out, d_in] (packed as nf4.cpp writes it),
// without materialising W in fp32: y = x·Wᵀ and dx = g·W.
//  - few rows (t <= kGemvRows): GEMV-style; each thread walks its share of the packed bytes once and
//    decodes 16 weights at a time (code[q]·absmax, the exact dequantised fp32 values; the codebook in
//    one vector register) into fp32 FMAs with all t rows (forward), or into a short run in L1 that
//    is added to the t rows of dx (input gradient);
//  - many rows: tiles of W rows are dequantised into the caller's workspace and multiplied by sgemm.
#include "internal.h"
#include "nf4.h"

namespace p4j {
namespace {

constexpr int64_t kGemvRows = 16;           // t at or below which the GEMV kernels run
constexpr int64_t kTileFloats = 1 << 22;    // 16 MiB of dequantised rows per sgemm tile
constexpr int64_t kRun = 256;               // weights decoded per run in the GEMV kernels

int64_t tile_rows(int64_t d_in, int64_t d_out) {
  int64_t rows = d_in > 0 ? kTileFloats / d_in : d_out;
  if (rows < 1) rows = 1;
  return rows < d_out ? rows : d_out;
}

// y[r, o] for rows o in [o0, o1), all r < t: the weights are decoded 16 at a time (codebook
// permute, times the block's absmax: the exact dequantized values) straight into fp32 FMAs with
// each of the t rows of x, never stored. TF > 0 fixes t at compile time (t = 1, the common decode
// step); TF = 0 reads it at run time.
template <int TF>
P4J_INLINE void gemv_rows(const float* __restrict code, int64_t t_run, int64_t d_in, int64_t d_out, int64_t bs,
                          int64_t o0, int64_t o1, const float* __restrict x, const uint8_t* __restrict packed,
                          const float* __restrict absmax, float* __restrict y) {
  const int64_t t = TF > 0 ? TF : t_run;
  const int sh = __builtin_ctzll(static_cast<unsigned long long>(bs));  // bs is a power of two: no divisions
  nf4_v16f tab;
  std::memcpy(&tab, code, sizeof tab);
  const nf4_v16i shift = {4, 0, 12, 8, 20, 16, 28, 24, 4, 0, 12, 8, 20, 16, 28, 24};
  for (int64_t o = o0; o < o1; ++o) {
    nf4_v16f acc[kGemvRows];
    float tail[kGemvRows];
    for (int64_t r = 0; r < t; ++r) {
      acc[r] = nf4_v16f{};
      tail[r] = 0.0f;
    }
    const int64_t f = o * d_in;
    int64_t i = 0;
    if (d_in > 0 && (f & 1)) {  // the row starts in a low nibble (odd d_in)
      const float w = code[packed[f >> 1] & 15] * absmax[f / bs];
      for (int64_t r = 0; r < t; ++r) tail[r] += w * x[r * d_in];
      i = 1;
    }
    while (i < d_in) {
      const int64_t g = f + i;  // even here
      const int64_t block_end = ((g >> sh) + 1) << sh;
      const int64_t seg = (block_end < f + d_in ? block_end : f + d_in) - g;
      const float s = absmax[g >> sh];
      const uint8_t* p = packed + (g >> 1);
      const int64_t nbytes = seg >> 1;
      int64_t k = 0;
      for (; k + 8 <= nbytes; k += 8) {
        uint32_t wd[2];
        std::memcpy(wd, p + k, 8);
        const int32_t lo = static_cast<int32_t>(wd[0]), hi = static_cast<int32_t>(wd[1]);
        const nf4_v16i words = {lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi};
        const nf4_v16i q = (nf4_v16i)(__builtin_convertvector(words, nf4_v16u) >> (nf4_v16u)shift) & 15;
        const nf4_v16f w = __builtin_shuffle(tab, q) * s;
        for (int64_t r = 0; r < t; ++r) {
          nf4_v16f xv;
          std::memcpy(&xv, x + r * d_in + i + 2 * k, sizeof xv);
          acc[r] += w * xv;
        }
      }
      for (; k < nbytes; ++k) {
        const float w0 = code[p[k] >> 4] * s, w1 = code[p[k] & 15] * s;
        for (int64_t r = 0; r < t; ++r) tail[r] += w0 * x[r * d_in + i + 2 * k] + w1 * x[r * d_in + i + 2 * k + 1];
      }
      if (seg & 1) {
        const float w = code[p[nbytes] >> 4] * s;
        for (int64_t r = 0; r < t; ++r) tail[r] += w * x[r * d_in + i + seg - 1];
      }
      i += seg;
    }
    for (int64_t r = 0; r < t; ++r) {
      float sum = tail[r];
      for (int l = 0; l < 16; ++l) sum += acc[r][l];
      y[r * d_out + o] = sum;
    }
  }
}

P4J_INLINE void gemv_fwd_body(const float* code, int64_t t, int64_t d_in, int64_t d_out, int64_t bs, int64_t o0,
                              int64_t o1, const float* x, const uint8_t* packed, const float* absmax, float* y) {
  if (t == 1) gemv_rows<1>(code, t, d_in, d_out, bs, o0, o1, x, packed, absmax, y);  // Nf4Test t=1 cases
  else gemv_rows<0>(code, t, d_in, d_out, bs, o0, o1, x, packed, absmax, y);        // t = 5, 16
}
P4J_MULTIVERSION(gemv_fwd, (const float* code, int64_t t, int64_t d_in, int64_t d_out, int64_t bs, int64_t o0,
                            int64_t o1, const float* x, const uint8_t* packed, const float* absmax, float* y),
                 (code, t, d_in, d_out, bs, o0, o1, x, packed, absmax, y))

// dx[t, i] for columns i in [i0, i1): every row o of W adds g[t, o]·W[o, i0:i1].
P4J_INLINE void gemv_dx_body(const float* code, int64_t t, int64_t d_in, int64_t d_out, int64_t bs, int64_t i0,
                             int64_t i1, const float* __restrict g, const uint8_t* __restrict packed,
                             const float* __restrict absmax, float* __restrict dx) {
  alignas(64) float buf[kRun];
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t i = i0; i < i1; ++i) dx[r * d_in + i] = 0.0f;
  }
  for (int64_t c0 = i0; c0 < i1; c0 += kRun) {
    const int64_t len = c0 + kRun <= i1 ? kRun : i1 - c0;
    for (int64_t o = 0; o < d_out; ++o) {
      nf4_decode_run(code, bs, o * d_in + c0, len, packed, absmax, buf);
      for (int64_t r = 0; r < t; ++r) {
        const float gv = g[r * d_out + o];
        float* dr = dx + r * d_in + c0;
        for (int64_t j = 0; j < len; ++j) dr[j] += gv * buf[j];
      }
    }
  }
}
P4J_MULTIVERSION(gemv_dx, (const float* code, int64_t t, int64_t d_in, int64_t d_out, int64_t bs, int64_t i0,
                           int64_t i1, const float* g, const uint8_t* packed, const float* absmax, float* dx),
                 (code, t, d_in, d_out, bs, i0, i1, g, packed, absmax, dx))

int32_t check_matmul(const char* fn, const p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t bs,
                     const float* in, const char* in_name, int64_t in_cols, const uint8_t* packed,
                     const float* absmax, const float* ws, const float* out, int64_t out_cols) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "d_in", d_in));
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  P4J_TRY(check_dims(fn, "W", d_out, d_in));
  P4J_TRY(check_dims(fn, in_name, t, in_cols));
  P4J_TRY(check_dims(fn, "output", t, out_cols));
  if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
    return fail(P4J_EINVAL, "%s: blocksize (%lld) is not a power of two in [32, 4096]", fn, static_cast<long long>(bs));
  const int64_t n = d_out * d_in;
  P4J_TRY(check_ptr(fn, in_name, in, t * in_cols));
  P4J_TRY(check_ptr(fn, "packed", packed, n));
  P4J_TRY(check_ptr(fn, "absmax", absmax, n));
  P4J_TRY(check_ptr(fn, "output", out, t * out_cols));
  if (t > kGemvRows) P4J_TRY(check_ptr(fn, "workspace", ws, n));
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

int32_t p4j_nf4_workspace(int64_t t, int64_t d_in, int64_t d_out, int64_t* floats) {
  const char* fn = "p4j_nf4_workspace";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "d_in", d_in));
    P4J_TRY(check_nonneg(fn, "d_out", d_out));
    P4J_TRY(check_dims(fn, "W", d_out, d_in));
    P4J_TRY(check_ptr(fn, "floats", floats, 1));
    *floats = t > kGemvRows ? tile_rows(d_in, d_out) * d_in : 0;
    return P4J_OK;
  });
}

int32_t p4j_nf4_matmul(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* x,
                       const uint8_t* packed, const float* absmax, float* workspace, float* y) {
  const char* fn = "p4j_nf4_matmul";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matmul(fn, ctx, t, d_in, d_out, blocksize, x, "x", d_in, packed, absmax, workspace, y, d_out));
    if (t == 0 || d_out == 0) return P4J_OK;
    if (t <= kGemvRows) {
      const float* code = nf4_code();
      parallel_rows(ctx, d_out, d_in * t, kGrain, [&](int64_t o0, int64_t o1) {
        gemv_fwd_kernel(code, t, d_in, d_out, blocksize, o0, o1, x, packed, absmax, y);
      });
      return P4J_OK;
    }
    const int64_t rows = tile_rows(d_in, d_out);
    for (int64_t r0 = 0; r0 < d_out; r0 += rows) {
      const int64_t nr = r0 + rows <= d_out ? rows : d_out - r0;
      P4J_TRY(nf4_dequantize_rows(ctx, r0 * d_in, (r0 + nr) * d_in, blocksize, packed, absmax, workspace));
      P4J_TRY(sgemm(fn, ctx, false, true, t, nr, d_in, 1.0f, x, d_in, workspace, d_in, 0.0f, y + r0, d_out));
    }
    return P4J_OK;
  });
}

int32_t p4j_nf4_matmul_dx(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t blocksize, const float* g,
                          const uint8_t* packed, const float* absmax, float* workspace, float* dx) {
  const char* fn = "p4j_nf4_matmul_dx";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_matmul(fn, ctx, t, d_in, d_out, blocksize, g, "g", d_out, packed, absmax, workspace, dx, d_in));
    if (t == 0 || d_in == 0) return P4J_OK;
    if (t <= kGemvRows) {
      const float* code = nf4_code();
      // Columns split over threads at multiples of 16; each thread reads its columns of every row once.
      parallel_range(ctx, d_in, (kGrain + d_out * t - 1) / (d_out * t > 0 ? d_out * t : 1) + 1,
                     [&](int64_t i0, int64_t i1) {
                       gemv_dx_kernel(code, t, d_in, d_out, blocksize, i0, i1, g, packed, absmax, dx);
                     });
      return P4J_OK;
    }
    const int64_t rows = tile_rows(d_in, d_out);
    if (d_out == 0) {
      std::memset(dx, 0, sizeof(float) * static_cast<size_t>(t * d_in));
      return P4J_OK;
    }
    for (int64_t r0 = 0; r0 < d_out; r0 += rows) {
      const int64_t nr = r0 + rows <= d_out ? rows : d_out - r0;
      P4J_TRY(nf4_dequantize_rows(ctx, r0 * d_in, (r0 + nr) * d_in, blocksize, packed, absmax, workspace));
      P4J_TRY(sgemm(fn, ctx, false, false, t, d_in, nr, 1.0f, g + r0, d_out, workspace, d_in, r0 == 0 ? 0.0f : 1.0f,
                    dx, d_in));
    }
    return P4J_OK;
  });
}
