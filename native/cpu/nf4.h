// nf4.h: what nf4.cpp shares with nf4_matmul.cpp.
#ifndef PEFT4J_CPU_NF4_H
#define PEFT4J_CPU_NF4_H

#include <cstdint>

struct p4j_ctx;

namespace p4j {

// The 16 NF4 code values (fp32).
const float* nf4_code();
// Blocks of bs elements (the last may be short) covering n elements.
int64_t nf4_blocks(int64_t n, int64_t bs);
// Dequantises elements [begin, end) of a packed NF4 tensor into out[0, end − begin), on ctx's threads.
int32_t nf4_dequantize_rows(const p4j_ctx* ctx, int64_t begin, int64_t end, int64_t bs, const uint8_t* packed,
                            const float* absmax, float* out);

}  // namespace p4j

#endif
