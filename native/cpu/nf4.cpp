// nf4.cpp: NF4 4-bit blockwise quantisation exactly as bitsandbytes' default PyTorch backend does it
// (docs/algorithms.md §7.1-§7.3), plus the 8-bit double quantisation of the block constants.
// Bit-exactness depends on every product and sum being rounded on its own: CMakeLists.txt compiles
// this file with -ffp-contract=off (no fused multiply-adds), like rng.cpp.
#include "internal.h"
#include "nf4.h"

#include <cmath>

namespace p4j {

// The 16 NF4 values as bitsandbytes stores them (`weight.quant_map`), bit patterns of the fp32 values.
static const uint32_t kNf4Bits[16] = {
    0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du, 0xbe3d353fu, 0xbdba7871u, 0x00000000u,
    0x3da2faffu, 0x3e24cae3u, 0x3e7c04ddu, 0x3ead033au, 0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u, 0x3f800000u};

namespace {

// bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True, max_exponent_bits=7,
// total_bits=8), `weight.nested_quant_map`), bit patterns. Stored, not rebuilt: torch builds it from
// float32 linspaces whose vectorised rounding depends on the CPU's vector width; DynamicMapTest checks
// these values against the §7.3 construction (within 1e-7) and against bitsandbytes' own file.
static const uint32_t kDynBits[256] = {
    0xbf7e3333u, 0xbf7a9999u, 0xbf770000u, 0xbf736666u, 0xbf6fccccu, 0xbf6c3333u, 0xbf68999au, 0xbf650000u,
    0xbf616666u, 0xbf5dccccu, 0xbf5a3333u, 0xbf569999u, 0xbf530000u, 0xbf4f6666u, 0xbf4bccccu, 0xbf483333u,
    0xbf44999au, 0xbf410000u, 0xbf3d6667u, 0xbf39cccdu, 0xbf363334u, 0xbf32999au, 0xbf2f0000u, 0xbf2b6667u,
    0xbf27cccdu, 0xbf243333u, 0xbf20999au, 0xbf1d0000u, 0xbf196666u, 0xbf15cccdu, 0xbf123334u, 0xbf0e999au,
    0xbf0b0000u, 0xbf076666u, 0xbf03cccdu, 0xbf003333u, 0xbef93334u, 0xbef20000u, 0xbeeaccccu, 0xbee3999au,
    0xbedc6666u, 0xbed53332u, 0xbece0000u, 0xbec6ccccu, 0xbebf999au, 0xbeb86666u, 0xbeb13332u, 0xbeaa0000u,
    0xbea2ccccu, 0xbe9b999au, 0xbe946666u, 0xbe8d3334u, 0xbe860000u, 0xbe7d999au, 0xbe6f3334u, 0xbe60cccdu,
    0xbe526666u, 0xbe440000u, 0xbe359999u, 0xbe273333u, 0xbe18cccdu, 0xbe0a6666u, 0xbdf80000u, 0xbddb3334u,
    0xbdc9eb85u, 0xbdc428f5u, 0xbdbe6667u, 0xbdb8a3d7u, 0xbdb2e148u, 0xbdad1eb8u, 0xbda75c28u, 0xbda1999au,
    0xbd9bd70au, 0xbd96147bu, 0xbd9051ebu, 0xbd8a8f5du, 0xbd84cccdu, 0xbd7e147au, 0xbd728f5du, 0xbd670a3du,
    0xbd5b851fu, 0xbd500000u, 0xbd447ae1u, 0xbd38f5c3u, 0xbd2d70a3u, 0xbd21eb85u, 0xbd166667u, 0xbd0ae147u,
    0xbcfeb852u, 0xbce7ae13u, 0xbcd0a3d7u, 0xbcb9999au, 0xbca28f5cu, 0xbc8b851fu, 0xbc68f5c3u, 0xbc3ae148u,
    0xbc1f3b64u, 0xbc160418u, 0xbc0ccccdu, 0xbc039581u, 0xbbf4bc6au, 0xbbe24dd3u, 0xbbcfdf3bu, 0xbbbd70a4u,
    0xbbab020du, 0xbb989374u, 0xbb8624ddu, 0xbb676c8au, 0xbb428f5cu, 0xbb1db22du, 0xbaf1a9fcu, 0xbaa7ef9du,
    0xba7765ffu, 0xba59e83eu, 0xba3c6a80u, 0xba1eecc1u, 0xba016f01u, 0xb9c7e283u, 0xb98ce705u, 0xb923d70bu,
    0xb8ba1f4bu, 0xb88aefb3u, 0xb8378034u, 0xb7b24206u, 0xb70205ffu, 0xb65a1a94u, 0xb513a3b7u, 0x00000000u,
    0x3513a3b7u, 0x365a1a94u, 0x370205ffu, 0x37b24206u, 0x38378034u, 0x388aefb3u, 0x38ba1f4bu, 0x3923d70bu,
    0x398ce705u, 0x39c7e283u, 0x3a016f01u, 0x3a1eecc1u, 0x3a3c6a80u, 0x3a59e83eu, 0x3a7765ffu, 0x3aa7ef9du,
    0x3af1a9fcu, 0x3b1db22du, 0x3b428f5cu, 0x3b676c8au, 0x3b8624ddu, 0x3b989374u, 0x3bab020du, 0x3bbd70a4u,
    0x3bcfdf3bu, 0x3be24dd3u, 0x3bf4bc6au, 0x3c039581u, 0x3c0ccccdu, 0x3c160418u, 0x3c1f3b64u, 0x3c3ae148u,
    0x3c68f5c3u, 0x3c8b851fu, 0x3ca28f5cu, 0x3cb9999au, 0x3cd0a3d7u, 0x3ce7ae13u, 0x3cfeb852u, 0x3d0ae147u,
    0x3d166667u, 0x3d21eb85u, 0x3d2d70a3u, 0x3d38f5c3u, 0x3d447ae1u, 0x3d500000u, 0x3d5b851fu, 0x3d670a3du,
    0x3d728f5du, 0x3d7e147au, 0x3d84cccdu, 0x3d8a8f5du, 0x3d9051ebu, 0x3d96147bu, 0x3d9bd70au, 0x3da1999au,
    0x3da75c28u, 0x3dad1eb8u, 0x3db2e148u, 0x3db8a3d7u, 0x3dbe6667u, 0x3dc428f5u, 0x3dc9eb85u, 0x3ddb3334u,
    0x3df80000u, 0x3e0a6666u, 0x3e18cccdu, 0x3e273333u, 0x3e359999u, 0x3e440000u, 0x3e526666u, 0x3e60cccdu,
    0x3e6f3334u, 0x3e7d999au, 0x3e860000u, 0x3e8d3334u, 0x3e946666u, 0x3e9b999au, 0x3ea2ccccu, 0x3eaa0000u,
    0x3eb13332u, 0x3eb86666u, 0x3ebf999au, 0x3ec6ccccu, 0x3ece0000u, 0x3ed53332u, 0x3edc6666u, 0x3ee3999au,
    0x3eeaccccu, 0x3ef20000u, 0x3ef93334u, 0x3f003333u, 0x3f03cccdu, 0x3f076666u, 0x3f0b0000u, 0x3f0e999au,
    0x3f123334u, 0x3f15cccdu, 0x3f196666u, 0x3f1d0000u, 0x3f20999au, 0x3f243333u, 0x3f27cccdu, 0x3f2b6667u,
    0x3f2f0000u, 0x3f32999au, 0x3f363334u, 0x3f39cccdu, 0x3f3d6667u, 0x3f410000u, 0x3f44999au, 0x3f483333u,
    0x3f4bccccu, 0x3f4f6666u, 0x3f530000u, 0x3f569999u, 0x3f5a3333u, 0x3f5dccccu, 0x3f616666u, 0x3f650000u,
    0x3f68999au, 0x3f6c3333u, 0x3f6fccccu, 0x3f736666u, 0x3f770000u, 0x3f7a9999u, 0x3f7e3333u, 0x3f800000u,
};

struct Tables {
  float code[16];
  float mid[15];  // fp32 decision boundaries (code[k] + code[k+1]) / 2
  float dyn[256];
  Tables() {
    for (int k = 0; k < 16; ++k) code[k] = __builtin_bit_cast(float, kNf4Bits[k]);
    for (int k = 0; k < 15; ++k) mid[k] = (code[k] + code[k + 1]) / 2.0f;
    for (int k = 0; k < 256; ++k) dyn[k] = __builtin_bit_cast(float, kDynBits[k]);
  }
};

constexpr float kFloor = 1e-38f;  // bitsandbytes' lower bound on the divisor

// Index of x: the number of boundaries strictly below it (torch.bucketize, right=False).
P4J_INLINE uint8_t nf4_index(const float* __restrict mid, float x) {
  int q = 0;
  for (int k = 0; k < 15; ++k) q += x > mid[k] ? 1 : 0;
  return static_cast<uint8_t>(q);
}

// Quantises elements [b0, b0 + len) of one block (b0 even, len even except for the very last block)
// against scale: full blocks multiply by inv, the last partial block divides by div.
P4J_INLINE void quantize_block_body(const float* __restrict mid, const float* __restrict x, int64_t len, bool divide,
                                    float div, float inv, uint8_t* __restrict packed) {
  uint8_t q[2];
  for (int64_t j = 0; j < len; j += 2) {
    for (int e = 0; e < 2; ++e) {
      float v = j + e < len ? x[j + e] : 0.0f;  // odd total length: one 0.0 appended (code 7)
      float s = divide ? v / div : v * inv;
      s = s < -1.0f ? -1.0f : (s > 1.0f ? 1.0f : s);
      q[e] = nf4_index(mid, s);
    }
    packed[j / 2] = static_cast<uint8_t>((q[0] << 4) | q[1]);
  }
}

P4J_INLINE void quantize_body(const Tables* t, int64_t n, int64_t bs, int64_t blk_begin, int64_t blk_end,
                              const float* x, uint8_t* packed, float* absmax) {
  const int64_t full = n / bs;
  for (int64_t b = blk_begin; b < blk_end; ++b) {
    const int64_t b0 = b * bs, len = b0 + bs <= n ? bs : n - b0;
    float m = 0.0f;
    for (int64_t j = 0; j < len; ++j) {
      const float a = std::fabs(x[b0 + j]);
      m = a > m ? a : m;
    }
    const float clamped = m > kFloor ? m : kFloor;
    const bool partial = b >= full;
    // Full blocks keep their real absmax; the partial last block stores the clamped one (§7.2).
    absmax[b] = partial ? clamped : m;
    quantize_block_body(t->mid, x + b0, len, partial, clamped, 1.0f / clamped, packed + b0 / 2);
  }
}
P4J_MULTIVERSION(quantize, (const Tables* t, int64_t n, int64_t bs, int64_t blk_begin, int64_t blk_end, const float* x,
                            uint8_t* packed, float* absmax),
                 (t, n, bs, blk_begin, blk_end, x, packed, absmax))

P4J_INLINE void dequantize_body(const float* __restrict code, int64_t bs, int64_t begin, int64_t end,
                                const uint8_t* __restrict packed, const float* __restrict absmax, float* __restrict out) {
  nf4_decode_run(code, bs, begin, end - begin, packed, absmax, out + begin);
}
P4J_MULTIVERSION(dequantize, (const float* code, int64_t bs, int64_t begin, int64_t end, const uint8_t* packed,
                              const float* absmax, float* out),
                 (code, bs, begin, end, packed, absmax, out))

// Round-to-nearest-even fp32 -> bf16 bits (inputs are finite: products of a code and an absmax).
P4J_INLINE uint16_t bf16_bits(float f) {
  const uint32_t u = __builtin_bit_cast(uint32_t, f);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
P4J_INLINE float bf16_value(uint16_t b) { return __builtin_bit_cast(float, static_cast<uint32_t>(b) << 16); }

// bitsandbytes casts the codebook to the output dtype first, multiplies in fp32, then casts again.
P4J_INLINE void dequantize_bf16_body(const float* __restrict code, int64_t bs, int64_t begin, int64_t end,
                                     const uint8_t* __restrict packed, const float* __restrict absmax,
                                     uint16_t* __restrict out) {
  float code_bf[16];
  for (int k = 0; k < 16; ++k) code_bf[k] = bf16_value(bf16_bits(code[k]));
  for (int64_t i = begin; i < end; ++i) {
    const uint8_t byte = packed[i >> 1];
    const int q = (i & 1) ? (byte & 15) : (byte >> 4);
    out[i] = bf16_bits(code_bf[q] * absmax[i / bs]);
  }
}
P4J_MULTIVERSION(dequantize_bf16, (const float* code, int64_t bs, int64_t begin, int64_t end, const uint8_t* packed,
                                   const float* absmax, uint16_t* out),
                 (code, bs, begin, end, packed, absmax, out))

int32_t check_blocksize(const char* fn, int64_t bs) {
  if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
    return fail(P4J_EINVAL, "%s: blocksize (%lld) is not a power of two in [32, 4096]", fn, static_cast<long long>(bs));
  return P4J_OK;
}

int32_t check_common(const char* fn, const p4j_ctx* ctx, int64_t n, int64_t bs) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "n", n));
  P4J_TRY(check_dims(fn, "n", n, 1));
  return check_blocksize(fn, bs);
}

}  // namespace

const Tables& tables() {
  static const Tables t;
  return t;
}

const float* nf4_code() { return tables().code; }

int64_t nf4_blocks(int64_t n, int64_t bs) { return (n + bs - 1) / bs; }

int32_t nf4_dequantize_rows(const p4j_ctx* ctx, int64_t begin, int64_t end, int64_t bs, const uint8_t* packed,
                            const float* absmax, float* out) {
  // out holds elements [begin, end); dequantize_kernel indexes it by the absolute element index.
  const float* code = tables().code;
  parallel_range(ctx, end - begin, kGrain, [&](int64_t b, int64_t e) {
    dequantize_kernel(code, bs, begin + b, begin + e, packed, absmax, out - begin);
  });
  return P4J_OK;
}

}  // namespace p4j

using namespace p4j;

int32_t p4j_nf4_tables(float* code, float* dyn) {
  const char* fn = "p4j_nf4_tables";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ptr(fn, "code", code, 1));
    P4J_TRY(check_ptr(fn, "dyn", dyn, 1));
    const Tables& t = tables();
    std::memcpy(code, t.code, sizeof t.code);
    std::memcpy(dyn, t.dyn, sizeof t.dyn);
    return P4J_OK;
  });
}

int32_t p4j_nf4_quantize(p4j_ctx* ctx, int64_t n, int64_t blocksize, const float* x, uint8_t* packed, float* absmax) {
  const char* fn = "p4j_nf4_quantize";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_common(fn, ctx, n, blocksize));
    P4J_TRY(check_ptr(fn, "x", x, n));
    P4J_TRY(check_ptr(fn, "packed", packed, n));
    P4J_TRY(check_ptr(fn, "absmax", absmax, n));
    const Tables* t = &tables();
    const int64_t blocks = nf4_blocks(n, blocksize);
    parallel_rows(ctx, blocks, blocksize, kGrain, [&](int64_t b, int64_t e) {
      quantize_kernel(t, n, blocksize, b, e, x, packed, absmax);
    });
    return P4J_OK;
  });
}

int32_t p4j_nf4_dequantize(p4j_ctx* ctx, int64_t n, int64_t blocksize, const uint8_t* packed, const float* absmax,
                           float* out) {
  const char* fn = "p4j_nf4_dequantize";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_common(fn, ctx, n, blocksize));
    P4J_TRY(check_ptr(fn, "packed", packed, n));
    P4J_TRY(check_ptr(fn, "absmax", absmax, n));
    P4J_TRY(check_ptr(fn, "out", out, n));
    return nf4_dequantize_rows(ctx, 0, n, blocksize, packed, absmax, out);
  });
}

int32_t p4j_nf4_dequantize_bf16(p4j_ctx* ctx, int64_t n, int64_t blocksize, const uint8_t* packed,
                                const float* absmax, uint16_t* out) {
  const char* fn = "p4j_nf4_dequantize_bf16";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_common(fn, ctx, n, blocksize));
    P4J_TRY(check_ptr(fn, "packed", packed, n));
    P4J_TRY(check_ptr(fn, "absmax", absmax, n));
    P4J_TRY(check_ptr(fn, "out", out, n));
    const float* code = tables().code;
    parallel_range(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      dequantize_bf16_kernel(code, blocksize, b, e, packed, absmax, out);
    });
    return P4J_OK;
  });
}

int32_t p4j_nf4_double_quantize(p4j_ctx* ctx, int64_t nb, const float* absmax, uint8_t* qabsmax, float* absmax2,
                                float* offset) {
  const char* fn = "p4j_nf4_double_quantize";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "nb", nb));
    P4J_TRY(check_dims(fn, "nb", nb, 1));
    if (nb == 0) return fail(P4J_EINVAL, "%s: nb is 0 (no block constants to quantise)", fn);
    P4J_TRY(check_ptr(fn, "absmax", absmax, nb));
    P4J_TRY(check_ptr(fn, "qabsmax", qabsmax, nb));
    P4J_TRY(check_ptr(fn, "absmax2", absmax2, nb));
    P4J_TRY(check_ptr(fn, "offset", offset, 1));
    // The mean in double, rounded once: what torch's fp32 mean gives on these inputs (fixture offset bits).
    double sum = 0.0;
    for (int64_t i = 0; i < nb; ++i) sum += static_cast<double>(absmax[i]);
    const float off = static_cast<float>(sum / static_cast<double>(nb));
    const float* dyn = tables().dyn;
    // bitsandbytes' quantize_blockwise: 256-blocks, scaled by the fp32 reciprocal of the block's absmax
    // (floored at 1e-38 so an all-equal block gives codes of 0, not NaN), clamped, nearest map entry with
    // the lower index on a tie (torch.argmin of |x − dyn|).
    for (int64_t b0 = 0; b0 < nb; b0 += 256) {
      const int64_t len = b0 + 256 <= nb ? 256 : nb - b0;
      float m = 0.0f;
      for (int64_t j = 0; j < len; ++j) {
        const float a = std::fabs(absmax[b0 + j] - off);
        m = a > m ? a : m;
      }
      absmax2[b0 / 256] = m;
      const float inv = 1.0f / (m > kFloor ? m : kFloor);
      for (int64_t j = 0; j < len; ++j) {
        float s = (absmax[b0 + j] - off) * inv;
        s = s < -1.0f ? -1.0f : (s > 1.0f ? 1.0f : s);
        int best = 0;
        float bestd = std::fabs(s - dyn[0]);
        for (int k = 1; k < 256; ++k) {
          const float d = std::fabs(s - dyn[k]);
          if (d < bestd) {
            bestd = d;
            best = k;
          }
        }
        qabsmax[b0 + j] = static_cast<uint8_t>(best);
      }
    }
    *offset = off;
    return P4J_OK;
  });
}

int32_t p4j_nf4_dequantize_absmax(p4j_ctx* ctx, int64_t nb, const uint8_t* qabsmax, const float* absmax2,
                                  float offset, float* absmax) {
  const char* fn = "p4j_nf4_dequantize_absmax";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "nb", nb));
    P4J_TRY(check_dims(fn, "nb", nb, 1));
    P4J_TRY(check_finite(fn, "offset", offset));
    P4J_TRY(check_ptr(fn, "qabsmax", qabsmax, nb));
    P4J_TRY(check_ptr(fn, "absmax2", absmax2, nb));
    P4J_TRY(check_ptr(fn, "absmax", absmax, nb));
    const float* dyn = tables().dyn;
    // One fp32 product, then one fp32 sum (no fused multiply-add: this file is built without contraction).
    for (int64_t i = 0; i < nb; ++i) absmax[i] = dyn[qabsmax[i]] * absmax2[i / 256] + offset;
    return P4J_OK;
  });
}
