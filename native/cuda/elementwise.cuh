// elementwise.cuh: launch geometry of the elementwise kernels (elementwise.cu).
#pragma once

#include <stdint.h>

// Threads per block, and floats per thread: each thread moves one 16-byte float4 when the
// pointers allow it, so a warp reads and writes 512 contiguous bytes per access.
#define P4J_CUDA_EW_BLOCK 256
#define P4J_CUDA_EW_VEC 4

// Blocks needed for n floats, VEC per thread.
inline int64_t p4j_cuda_ew_blocks(int64_t n) {
    const int64_t per_block = (int64_t)P4J_CUDA_EW_BLOCK * P4J_CUDA_EW_VEC;
    return (n + per_block - 1) / per_block;
}

// The largest gridDim.x CUDA allows.
#define P4J_CUDA_MAX_GRID_X 2147483647LL

// True when p is 16-byte aligned (float4 loads and stores are allowed).
inline bool p4j_cuda_aligned16(const void* p) {
    return ((uintptr_t)p & 15u) == 0;
}
