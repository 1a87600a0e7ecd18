// elementwise.cu: fill and axpy on device buffers. Each op is a static kernel (int64 sizes,
// __restrict__ pointers, bounds check first), a static launcher that picks the float4 or the
// scalar form, and an exported entry point that validates its arguments and reports launch
// errors as statuses.
#include "common.cuh"
#include "elementwise.cuh"

// x[i] = value; thread t owns x[VEC*t, VEC*t + VEC).
template <bool vec4>
static __global__ void fill_f32(const int64_t n, const float value, float * __restrict__ x) {
    const int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * P4J_CUDA_EW_VEC;
    if (i >= n) {
        return;
    }
    if (vec4 && i + P4J_CUDA_EW_VEC <= n) {
        *reinterpret_cast<float4 *>(x + i) = make_float4(value, value, value, value);
        return;
    }
    const int64_t end = i + P4J_CUDA_EW_VEC < n ? i + P4J_CUDA_EW_VEC : n;
    for (int64_t k = i; k < end; ++k) {
        x[k] = value;
    }
}

// y[i] += alpha * x[i]; thread t owns elements [VEC*t, VEC*t + VEC).
template <bool vec4>
static __global__ void axpy_f32(const int64_t n, const float alpha, const float * __restrict__ x,
                                float * __restrict__ y) {
    const int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * P4J_CUDA_EW_VEC;
    if (i >= n) {
        return;
    }
    if (vec4 && i + P4J_CUDA_EW_VEC <= n) {
        const float4 xv = *reinterpret_cast<const float4 *>(x + i);
        float4 yv = *reinterpret_cast<float4 *>(y + i);
        yv.x = fmaf(alpha, xv.x, yv.x);
        yv.y = fmaf(alpha, xv.y, yv.y);
        yv.z = fmaf(alpha, xv.z, yv.z);
        yv.w = fmaf(alpha, xv.w, yv.w);
        *reinterpret_cast<float4 *>(y + i) = yv;
        return;
    }
    const int64_t end = i + P4J_CUDA_EW_VEC < n ? i + P4J_CUDA_EW_VEC : n;
    for (int64_t k = i; k < end; ++k) {
        y[k] = fmaf(alpha, x[k], y[k]);
    }
}

static void fill_f32_cuda(const int64_t n, const float value, float * x, cudaStream_t stream) {
    const dim3 grid((unsigned)p4j_cuda_ew_blocks(n));
    if (p4j_cuda_aligned16(x)) {
        fill_f32<true><<<grid, P4J_CUDA_EW_BLOCK, 0, stream>>>(n, value, x);
    } else {
        fill_f32<false><<<grid, P4J_CUDA_EW_BLOCK, 0, stream>>>(n, value, x);
    }
}

static void axpy_f32_cuda(const int64_t n, const float alpha, const float * x, float * y, cudaStream_t stream) {
    const dim3 grid((unsigned)p4j_cuda_ew_blocks(n));
    if (p4j_cuda_aligned16(x) && p4j_cuda_aligned16(y)) {
        axpy_f32<true><<<grid, P4J_CUDA_EW_BLOCK, 0, stream>>>(n, alpha, x, y);
    } else {
        axpy_f32<false><<<grid, P4J_CUDA_EW_BLOCK, 0, stream>>>(n, alpha, x, y);
    }
}

// Checks n against what one launch covers; 0 when fine.
static int32_t check_size(const char * fn, int64_t n) {
    if (n < 0) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: negative size %lld", fn, (long long)n);
    }
    if (p4j_cuda_ew_blocks(n) > P4J_CUDA_MAX_GRID_X) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: size %lld exceeds one launch", fn, (long long)n);
    }
    return P4J_OK;
}

// Reports a failed launch (bad configuration, missing kernel image, sticky device fault).
static int32_t launched(const char * fn) {
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        return p4j_cuda_fail_cuda(err, fn);
    }
    return P4J_OK;
}

P4J_CUDA_API int32_t p4j_cuda_fill(int64_t n, float value, float * x) {
    p4j_cuda_clear_error();
    const char * fn = "p4j_cuda_fill";
    int32_t st = check_size(fn, n);
    if (st != P4J_OK || n == 0) {
        return st;
    }
    if ((st = p4j_cuda_check_device_ptr(x, fn, "x")) != P4J_OK) {
        return st;
    }
    fill_f32_cuda(n, value, x, 0);
    return launched(fn);
}

P4J_CUDA_API int32_t p4j_cuda_axpy(int64_t n, float alpha, const float * x, float * y) {
    p4j_cuda_clear_error();
    const char * fn = "p4j_cuda_axpy";
    int32_t st = check_size(fn, n);
    if (st != P4J_OK || n == 0) {
        return st;
    }
    if ((st = p4j_cuda_check_device_ptr(x, fn, "x")) != P4J_OK ||
        (st = p4j_cuda_check_device_ptr(y, fn, "y")) != P4J_OK) {
        return st;
    }
    if (p4j_cuda_overlap(x, y, n * (int64_t)sizeof(float))) {
        return p4j_cuda_fail(P4J_EINVAL, "%s: x and y overlap", fn);
    }
    axpy_f32_cuda(n, alpha, x, y, 0);
    return launched(fn);
}
