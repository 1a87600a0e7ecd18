/* peft4j_cuda.h: the C ABI of libpeft4j_cuda.so (CUDA kernels and the device plumbing they need).
 *
 * Same rules as peft4j.h (docs/design.md): plain C, fixed-width types, every function returns 0
 * or a negative P4J_E* code and sets a thread-local message read by p4j_cuda_last_error().
 * Nothing aborts, throws or prints across this boundary; a missing driver or GPU is an error
 * status (P4J_ENOTSUP), not a crash.
 *
 * Pointers marked "device" must come from p4j_cuda_malloc (or other device/managed memory);
 * "host" ones are ordinary process memory. Kernels run on the calling thread's current device
 * (p4j_cuda_set_device) in the legacy default stream, so they are ordered with one another and
 * with the p4j_cuda_memcpy_* copies; they return as soon as the work is queued, and a fault in
 * a running kernel surfaces at the next synchronizing call (a copy or p4j_cuda_synchronize).
 */
#ifndef PEFT4J_CUDA_H
#define PEFT4J_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The status codes of peft4j.h (identical definitions, so both headers can be included). */
#define P4J_OK 0
#define P4J_EINVAL (-1)    /* bad argument: null pointer, negative or inconsistent size */
#define P4J_ENOMEM (-2)    /* an allocation inside a vendor library failed */
#define P4J_ENOTSUP (-3)   /* not supported on this machine or build */
#define P4J_EINTERNAL (-4) /* a vendor library reported an error */

/* ---- runtime and devices (abi.cu) ---- */
const char* p4j_cuda_last_error(void);
/* runtime, driver: [1] each, as CUDA encodes them (1000·major + 10·minor); driver is 0 when no
 * driver is installed. */
int32_t p4j_cuda_version(int32_t* runtime, int32_t* driver);
/* count: [1]. Fails with P4J_ENOTSUP ("no CUDA device: ...") when there is no usable driver or
 * GPU; *count is 0 then. */
int32_t p4j_cuda_device_count(int32_t* count);
/* buf: [cap] chars (host), receives the device's name, NUL-terminated, truncated to cap − 1. */
int32_t p4j_cuda_device_name(int32_t device, char* buf, int64_t cap);
/* cc_major, cc_minor, sm_count: [1] each; total_bytes: [1] = global memory size in bytes. */
int32_t p4j_cuda_device_info(int32_t device, int32_t* cc_major, int32_t* cc_minor, int32_t* sm_count,
                             int64_t* total_bytes);
/* Makes device current for the calling thread (every later call on this thread uses it). */
int32_t p4j_cuda_set_device(int32_t device);
/* free_bytes, total_bytes: [1] each, for the current device */
int32_t p4j_cuda_mem_info(int64_t* free_bytes, int64_t* total_bytes);

/* ---- memory (abi.cu) ---- */
/* out: [1] (host) receives a device pointer to bytes bytes, 256-byte aligned (NULL when bytes == 0) */
int32_t p4j_cuda_malloc(int64_t bytes, void** out);
/* p: device pointer from p4j_cuda_malloc, or NULL (no-op). Waits for work using it to finish. */
int32_t p4j_cuda_free(void* p);
/* dst: [bytes] device; src: [bytes] host. Returns when the copy is done. */
int32_t p4j_cuda_memcpy_h2d(void* dst, const void* src, int64_t bytes);
/* dst: [bytes] host; src: [bytes] device. Waits for queued kernels, then copies. */
int32_t p4j_cuda_memcpy_d2h(void* dst, const void* src, int64_t bytes);
/* dst, src: [bytes] device, not overlapping. Queued in order with the kernels. */
int32_t p4j_cuda_memcpy_d2d(void* dst, const void* src, int64_t bytes);
/* Waits for all queued work on the current device; reports faults of kernels that ran. */
int32_t p4j_cuda_synchronize(void);

/* ---- elementwise (elementwise.cu) ---- */
/* x: [n] device = value */
int32_t p4j_cuda_fill(int64_t n, float value, float* x);
/* x, y: [n] device, not overlapping; y += alpha·x */
int32_t p4j_cuda_axpy(int64_t n, float alpha, const float* x, float* y);

#ifdef __cplusplus
}
#endif
#endif
