// common.cuh: what every CUDA source of libpeft4j_cuda.so shares: the export marker, the
// thread-local error message behind p4j_cuda_last_error(), and argument checks.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "peft4j_cuda.h"

// The library is built with -fvisibility=hidden; only the entry points of peft4j_cuda.h are
// exported.
#define P4J_CUDA_API extern "C" __attribute__((visibility("default")))

// Sets the calling thread's message (printf-style) and returns status.
int32_t p4j_cuda_fail(int32_t status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Maps a CUDA error to a status and a message "<what>: <description> (<cudaError name>)".
int32_t p4j_cuda_fail_cuda(cudaError_t err, const char* what);

// Clears the calling thread's message; every entry point starts with it.
void p4j_cuda_clear_error();

// Checks that p (non-null) is memory a kernel may read or write: device or managed memory of
// the CUDA runtime. Host pointers fail with P4J_EINVAL naming `name` and `fn`.
int32_t p4j_cuda_check_device_ptr(const void* p, const char* fn, const char* name);

// True when [a, a+bytes) and [b, b+bytes) share an address.
inline bool p4j_cuda_overlap(const void* a, const void* b, int64_t bytes) {
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + (uintptr_t)bytes && pb < pa + (uintptr_t)bytes;
}
