// nf4.h: what nf4.cpp shares with nf4_matmul.cpp.
#ifndef PEFT4J_CPU_NF4_H
#define PEFT4J_CPU_NF4_H

#include <cstdint>
#include <cstring>

#include "internal.h"

namespace p4j {

// The 16 NF4 code values (fp32).
const float* nf4_code();
// Blocks of bs elements (the last may be short) covering n elements.
int64_t nf4_blocks(int64_t n, int64_t bs);
// Dequantises elements [begin, end) of a packed NF4 tensor into out[0, end − begin), on ctx's threads.
int32_t nf4_dequantize_rows(const p4j_ctx* ctx, int64_t begin, int64_t end, int64_t bs, const uint8_t* packed,
                            const float* absmax, float* out);

// GCC vector types for the decoder: 16 lanes whatever the ISA (AVX-512: one register; AVX2 and
// the baseline: GCC splits them), written once and compiled into each ISA variant.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float nf4_v16f __attribute__((vector_size(64)));
typedef int32_t nf4_v16i __attribute__((vector_size(64)));
typedef uint32_t nf4_v16u __attribute__((vector_size(64)));

// out[0, 2·nbytes) = code[q]·s for the nibbles of p[0, nbytes), high nibble first: the exact
// dequantized fp32 values (one rounding per product). 8 bytes -> 16 weights per step, the
// codebook held in one 16-lane vector and indexed by a lane permute.
P4J_INLINE void nf4_decode_bytes(const float* __restrict code, const uint8_t* __restrict p, int64_t nbytes, float s,
                                 float* __restrict out) {
  nf4_v16f tab;
  std::memcpy(&tab, code, sizeof tab);
  // Lane l holds byte l/2 of the 8 (little-endian: of the first or second 32-bit word), its high
  // nibble in even lanes.
  const nf4_v16i shift = {4, 0, 12, 8, 20, 16, 28, 24, 4, 0, 12, 8, 20, 16, 28, 24};
  int64_t k = 0;
  for (; k + 8 <= nbytes; k += 8) {
    uint32_t w[2];
    std::memcpy(w, p + k, 8);
    const int32_t a = static_cast<int32_t>(w[0]), c = static_cast<int32_t>(w[1]);
    const nf4_v16i words = {a, a, a, a, a, a, a, a, c, c, c, c, c, c, c, c};
    const nf4_v16i q = (nf4_v16i)((__builtin_convertvector(words, nf4_v16u) >> (nf4_v16u)shift)) & 15;
    const nf4_v16f v = __builtin_shuffle(tab, q) * s;
    std::memcpy(out + 2 * k, &v, sizeof v);
  }
  for (; k < nbytes; ++k) {
    out[2 * k] = code[p[k] >> 4] * s;
    out[2 * k + 1] = code[p[k] & 15] * s;
  }
}

// Weights [f, f + len) of a flattened NF4 tensor into buf (code[q]·absmax[block], exact).
// Whole bytes from an even start (blocks have an even size, so no byte straddles two blocks).
P4J_INLINE void nf4_decode_run(const float* __restrict code, int64_t bs, int64_t f, int64_t len,
                               const uint8_t* __restrict packed, const float* __restrict absmax, float* __restrict buf) {
  const int sh = __builtin_ctzll(static_cast<unsigned long long>(bs));  // bs is a power of two: no divisions
  int64_t j = 0;
  if (len > 0 && (f & 1)) {
    buf[0] = code[packed[f >> 1] & 15] * absmax[f / bs];
    j = 1;
  }
  while (j < len) {
    const int64_t g = f + j;  // even here
    const int64_t block_end = ((g >> sh) + 1) << sh;
    const int64_t seg = (block_end < f + len ? block_end : f + len) - g;
    const float s = absmax[g >> sh];
    const uint8_t* p = packed + (g >> 1);
    nf4_decode_bytes(code, p, seg >> 1, s, buf + j);
    if (seg & 1) buf[j + seg - 1] = code[p[seg >> 1] >> 4] * s;
    j += seg;
  }
}

}  // namespace p4j

#endif
