// abi.cu: the runtime, device and memory entry points of peft4j_cuda.h, and the error state
// that every entry point reports through. Each exported function validates its arguments,
// turns every CUDA error into a status and a message, and never aborts or prints.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.cuh"

namespace {

thread_local char g_message[1024];

// Status for a CUDA error: allocation failures and missing drivers/devices/images are told
// apart from bad arguments and from everything else the runtime can report.
int32_t status_of(cudaError_t err) {
    switch (err) {
    case cudaErrorMemoryAllocation:
        return P4J_ENOMEM;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorStubLibrary:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
        return P4J_ENOTSUP;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidConfiguration:
        return P4J_EINVAL;
    default:
        return P4J_EINTERNAL;
    }
}

// Number of devices, or a P4J_ENOTSUP status "no CUDA device: ..." when the runtime cannot
// reach a driver or a GPU.
int32_t device_count(int32_t* count) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();  // do not let the failed probe linger as the thread's error
        *count = 0;
        return p4j_cuda_fail(P4J_ENOTSUP, "no CUDA device: %s (%s)", cudaGetErrorString(err),
                             cudaGetErrorName(err));
    }
    *count = n;
    return P4J_OK;
}

int32_t check_device(int32_t device, const char* fn) {
    int32_t count = 0;
    const int32_t st = device_count(&count);
    if (st != P4J_OK) {
        return st;
    }
    if (device < 0 || device >= count) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: device %d out of range [0, %d)", fn, device, count);
    }
    return P4J_OK;
}

}  // namespace

int32_t p4j_cuda_fail(int32_t status, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    return status;
}

int32_t p4j_cuda_fail_cuda(cudaError_t err, const char* what) {
    return p4j_cuda_fail(status_of(err), "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

void p4j_cuda_clear_error() {
    g_message[0] = '\0';
}

int32_t p4j_cuda_check_device_ptr(const void* p, const char* fn, const char* name) {
    if (p == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: %s is null", fn, name);
    }
    cudaPointerAttributes attr;
    memset(&attr, 0, sizeof attr);
    const cudaError_t err = cudaPointerGetAttributes(&attr, p);
    if (err == cudaErrorInvalidValue) {
        (void)cudaGetLastError();
        attr.type = cudaMemoryTypeUnregistered;
    } else if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, fn);
    }
    if (attr.type == cudaMemoryTypeManaged) {
        return P4J_OK;
    }
    if (attr.type != cudaMemoryTypeDevice) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: %s (%p) is not device memory", fn, name, p);
    }
    int current = 0;
    const cudaError_t derr = cudaGetDevice(&current);
    if (derr != cudaSuccess) {
        return p4j_cuda_fail_cuda(derr, fn);
    }
    if (attr.device != current) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: %s (%p) is memory of device %d, but device %d is current",
                             fn, name, p, attr.device, current);
    }
    return P4J_OK;
}

P4J_CUDA_API const char* p4j_cuda_last_error(void) {
    return g_message;
}

P4J_CUDA_API int32_t p4j_cuda_version(int32_t* runtime, int32_t* driver) {
    p4j_cuda_clear_error();
    if (runtime == nullptr || driver == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_version: null output");
    }
    int rt = 0, drv = 0;
    cudaError_t err = cudaRuntimeGetVersion(&rt);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_version: cudaRuntimeGetVersion");
    }
    err = cudaDriverGetVersion(&drv);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_version: cudaDriverGetVersion");
    }
    *runtime = rt;
    *driver = drv;
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_device_count(int32_t* count) {
    p4j_cuda_clear_error();
    if (count == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_device_count: count is null");
    }
    return device_count(count);
}

P4J_CUDA_API int32_t p4j_cuda_device_name(int32_t device, char* buf, int64_t cap) {
    p4j_cuda_clear_error();
    if (buf == nullptr || cap < 1) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_device_name: buf is null or cap (%lld) < 1", (long long)cap);
    }
    const int32_t st = check_device(device, "p4j_cuda_device_name");
    if (st != P4J_OK) {
        return st;
    }
    cudaDeviceProp prop;
    const cudaError_t err = cudaGetDeviceProperties(&prop, device);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_device_name: cudaGetDeviceProperties");
    }
    const size_t len = strnlen(prop.name, sizeof prop.name);
    const size_t n = len < (uint64_t)(cap - 1) ? len : (size_t)(cap - 1);
    memcpy(buf, prop.name, n);
    buf[n] = '\0';
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_device_info(int32_t device, int32_t* cc_major, int32_t* cc_minor,
                                          int32_t* sm_count, int64_t* total_bytes) {
    p4j_cuda_clear_error();
    if (cc_major == nullptr || cc_minor == nullptr || sm_count == nullptr || total_bytes == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_device_info: null output");
    }
    const int32_t st = check_device(device, "p4j_cuda_device_info");
    if (st != P4J_OK) {
        return st;
    }
    cudaDeviceProp prop;
    const cudaError_t err = cudaGetDeviceProperties(&prop, device);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_device_info: cudaGetDeviceProperties");
    }
    *cc_major = prop.major;
    *cc_minor = prop.minor;
    *sm_count = prop.multiProcessorCount;
    *total_bytes = (int64_t)prop.totalGlobalMem;
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_set_device(int32_t device) {
    p4j_cuda_clear_error();
    const int32_t st = check_device(device, "p4j_cuda_set_device");
    if (st != P4J_OK) {
        return st;
    }
    const cudaError_t err = cudaSetDevice(device);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_set_device: cudaSetDevice");
    }
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_mem_info(int64_t* free_bytes, int64_t* total_bytes) {
    p4j_cuda_clear_error();
    if (free_bytes == nullptr || total_bytes == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_mem_info: null output");
    }
    size_t fr = 0, tot = 0;
    const cudaError_t err = cudaMemGetInfo(&fr, &tot);
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, "p4j_cuda_mem_info: cudaMemGetInfo");
    }
    *free_bytes = (int64_t)fr;
    *total_bytes = (int64_t)tot;
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_malloc(int64_t bytes, void** out) {
    p4j_cuda_clear_error();
    if (out == nullptr) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_malloc: out is null");
    }
    *out = nullptr;
    if (bytes < 0) {
        return p4j_cuda_fail(P4J_EINVAL, "p4j_cuda_malloc: negative size %lld", (long long)bytes);
    }
    if (bytes == 0) {
        return P4J_OK;
    }
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, (size_t)bytes);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "p4j_cuda_malloc: cudaMalloc(%lld bytes)", (long long)bytes);
        return p4j_cuda_fail_cuda(err, what);
    }
    *out = p;
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_free(void* p) {
    p4j_cuda_clear_error();
    if (p == nullptr) {
        return P4J_OK;
    }
    const cudaError_t err = cudaFree(p);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, "p4j_cuda_free: cudaFree");
    }
    return P4J_OK;
}

namespace {

int32_t check_copy(const char* fn, const void* dst, const void* src, int64_t bytes) {
    if (bytes < 0) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: negative size %lld", fn, (long long)bytes);
    }
    if (bytes > 0 && (dst == nullptr || src == nullptr)) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: %s is null", fn, dst == nullptr ? "dst" : "src");
    }
    return P4J_OK;
}

}  // namespace

P4J_CUDA_API int32_t p4j_cuda_memcpy_h2d(void* dst, const void* src, int64_t bytes) {
    p4j_cuda_clear_error();
    const char* fn = "p4j_cuda_memcpy_h2d";
    int32_t st = check_copy(fn, dst, src, bytes);
    if (st != P4J_OK || bytes == 0) {
        return st;
    }
    if ((st = p4j_cuda_check_device_ptr(dst, fn, "dst")) != P4J_OK) {
        return st;
    }
    const cudaError_t err = cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyHostToDevice);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, "p4j_cuda_memcpy_h2d: cudaMemcpy");
    }
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_memcpy_d2h(void* dst, const void* src, int64_t bytes) {
    p4j_cuda_clear_error();
    const char* fn = "p4j_cuda_memcpy_d2h";
    int32_t st = check_copy(fn, dst, src, bytes);
    if (st != P4J_OK || bytes == 0) {
        return st;
    }
    if ((st = p4j_cuda_check_device_ptr(src, fn, "src")) != P4J_OK) {
        return st;
    }
    const cudaError_t err = cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToHost);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, "p4j_cuda_memcpy_d2h: cudaMemcpy");
    }
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_memcpy_d2d(void* dst, const void* src, int64_t bytes) {
    p4j_cuda_clear_error();
    const char* fn = "p4j_cuda_memcpy_d2d";
    int32_t st = check_copy(fn, dst, src, bytes);
    if (st != P4J_OK || bytes == 0) {
        return st;
    }
    if ((st = p4j_cuda_check_device_ptr(dst, fn, "dst")) != P4J_OK ||
        (st = p4j_cuda_check_device_ptr(src, fn, "src")) != P4J_OK) {
        return st;
    }
    if (p4j_cuda_overlap(dst, src, bytes)) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: dst and src overlap", fn);
    }
    const cudaError_t err = cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, 0);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, "p4j_cuda_memcpy_d2d: cudaMemcpyAsync");
    }
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_synchronize(void) {
    p4j_cuda_clear_error();
    const cudaError_t err = cudaDeviceSynchronize();
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return p4j_cuda_fail_cuda(err, "p4j_cuda_synchronize: cudaDeviceSynchronize");
    }
    return P4J_OK;
}
