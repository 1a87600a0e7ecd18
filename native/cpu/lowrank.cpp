// lowrank.cpp: GEMM over oneDNN's sgemm, and the low-rank adapter forward/backward built on it.
#include "internal.h"

#include <dnnl.h>

namespace p4j {
namespace {

// c[m, n] (leading dimension ldc) *= beta; beta == 0 writes zeros without reading c (BLAS rule).
void scale_matrix(const p4j_ctx* ctx, int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  if (beta == 1.0f) return;
  int nt = threads_for(ctx, m * n, kGrain);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

const char* dnnl_status_name(dnnl_status_t st) {
  switch (st) {
    case dnnl_out_of_memory: return "out_of_memory";
    case dnnl_invalid_arguments: return "invalid_arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_runtime_error: return "runtime_error";
    default: return "unknown status";
  }
}

}  // namespace

// c = alpha·op(a)·op(b) + beta·c on validated arguments. Empty products (k == 0) and alpha == 0
// only scale c, as BLAS defines them; the GEMM itself runs on ctx->threads OpenMP threads,
// the same libgomp pool our own loops use.
int32_t sgemm(const char* fn, const p4j_ctx* ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc) {
  if (m == 0 || n == 0) return P4J_OK;
  if (k == 0 || alpha == 0.0f) {
    scale_matrix(ctx, m, n, beta, c, ldc);
    return P4J_OK;
  }
  omp_set_num_threads(ctx->threads);
  dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                                beta, c, ldc);
  if (st == dnnl_success) return P4J_OK;
  int32_t code = st == dnnl_out_of_memory ? P4J_ENOMEM
                 : st == dnnl_unimplemented ? P4J_ENOTSUP
                                            : P4J_EINTERNAL;
  return fail(code, "%s: dnnl_sgemm(%c, %c, m=%lld, n=%lld, k=%lld) failed: %s", fn, ta ? 'T' : 'N',
              tb ? 'T' : 'N', static_cast<long long>(m), static_cast<long long>(n),
              static_cast<long long>(k), dnnl_status_name(st));
}

namespace {

// A stored matrix of rows x ld floats (its last row needs only `cols`): ld must cover the
// row and the whole extent must be addressable.
int32_t check_ld(const char* fn, const char* ld_name, int64_t ld, const char* cols_name,
                 int64_t cols, const char* what, int64_t rows) {
  if (ld < cols)
    return fail(P4J_EINVAL, "%s: %s (%lld) < %s (%lld)", fn, ld_name, static_cast<long long>(ld),
                cols_name, static_cast<long long>(cols));
  return check_dims(fn, what, rows, ld);
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_gemm(p4j_ctx* ctx, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                 float* c, int64_t ldc) {
  const char* fn = "p4j_gemm";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    if (trans_a != 0 && trans_a != 1) return fail(P4J_EINVAL, "%s: trans_a (%d) is not 0 or 1", fn, trans_a);
    if (trans_b != 0 && trans_b != 1) return fail(P4J_EINVAL, "%s: trans_b (%d) is not 0 or 1", fn, trans_b);
    P4J_TRY(check_nonneg(fn, "m", m));
    P4J_TRY(check_nonneg(fn, "n", n));
    P4J_TRY(check_nonneg(fn, "k", k));
    // a is stored [m, k] (or [k, m] when transposed), b [k, n] (or [n, k]), c [m, n].
    if (trans_a) P4J_TRY(check_ld(fn, "lda", lda, "m", m, "a", k));
    else P4J_TRY(check_ld(fn, "lda", lda, "k", k, "a", m));
    if (trans_b) P4J_TRY(check_ld(fn, "ldb", ldb, "k", k, "b", n));
    else P4J_TRY(check_ld(fn, "ldb", ldb, "n", n, "b", k));
    P4J_TRY(check_ld(fn, "ldc", ldc, "n", n, "c", m));
    bool product = m > 0 && n > 0 && k > 0;
    P4J_TRY(check_ptr(fn, "a", a, product ? 1 : 0));
    P4J_TRY(check_ptr(fn, "b", b, product ? 1 : 0));
    P4J_TRY(check_ptr(fn, "c", c, m > 0 && n > 0 ? 1 : 0));
    return sgemm(fn, ctx, trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
}

int32_t p4j_lowrank_forward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float s,
                            const float* x, const float* a, const float* b, float* h, float* y) {
  const char* fn = "p4j_lowrank_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "d_in", d_in));
    P4J_TRY(check_nonneg(fn, "d_out", d_out));
    P4J_TRY(check_nonneg(fn, "r", r));
    P4J_TRY(check_finite(fn, "s", s));
    P4J_TRY(check_dims(fn, "x [t, d_in]", t, d_in));
    P4J_TRY(check_dims(fn, "a [r, d_in]", r, d_in));
    P4J_TRY(check_dims(fn, "b [d_out, r]", d_out, r));
    P4J_TRY(check_dims(fn, "h [t, r]", t, r));
    P4J_TRY(check_dims(fn, "y [t, d_out]", t, d_out));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "a", a, r * d_in));
    P4J_TRY(check_ptr(fn, "b", b, d_out * r));
    P4J_TRY(check_ptr(fn, "h", h, t * r));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    // h = x·aᵀ [t, r]
    P4J_TRY(sgemm(fn, ctx, false, true, t, r, d_in, 1.0f, x, d_in, a, d_in, 0.0f, h, r));
    // y += s·h·bᵀ [t, d_out]
    return sgemm(fn, ctx, false, true, t, d_out, r, s, h, r, b, r, 1.0f, y, d_out);
  });
}

int32_t p4j_lowrank_backward(p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float* x, const float* a, const float* b, const float* h,
                             const float* g, float* gb, float* da, float* db, float* dx,
                             int32_t accumulate) {
  const char* fn = "p4j_lowrank_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "t", t));
    P4J_TRY(check_nonneg(fn, "d_in", d_in));
    P4J_TRY(check_nonneg(fn, "d_out", d_out));
    P4J_TRY(check_nonneg(fn, "r", r));
    P4J_TRY(check_finite(fn, "s", s));
    P4J_TRY(check_dims(fn, "x [t, d_in]", t, d_in));
    P4J_TRY(check_dims(fn, "a [r, d_in]", r, d_in));
    P4J_TRY(check_dims(fn, "b [d_out, r]", d_out, r));
    P4J_TRY(check_dims(fn, "h [t, r]", t, r));
    P4J_TRY(check_dims(fn, "g [t, d_out]", t, d_out));
    P4J_TRY(check_ptr(fn, "x", x, t * d_in));
    P4J_TRY(check_ptr(fn, "a", a, r * d_in));
    P4J_TRY(check_ptr(fn, "b", b, d_out * r));
    P4J_TRY(check_ptr(fn, "h", h, t * r));
    P4J_TRY(check_ptr(fn, "g", g, t * d_out));
    P4J_TRY(check_ptr(fn, "gb", gb, t * r));
    P4J_TRY(check_ptr(fn, "da", da, r * d_in));
    P4J_TRY(check_ptr(fn, "db", db, d_out * r));
    const float beta = accumulate != 0 ? 1.0f : 0.0f;
    // gb = g·b [t, r]
    P4J_TRY(sgemm(fn, ctx, false, false, t, r, d_out, 1.0f, g, d_out, b, r, 0.0f, gb, r));
    // db (+)= s·gᵀ·h [d_out, r]
    P4J_TRY(sgemm(fn, ctx, true, false, d_out, r, t, s, g, d_out, h, r, beta, db, r));
    // da (+)= s·gbᵀ·x [r, d_in]
    P4J_TRY(sgemm(fn, ctx, true, false, r, d_in, t, s, gb, r, x, d_in, beta, da, d_in));
    // dx += s·gb·a [t, d_in]
    if (dx != nullptr)
      P4J_TRY(sgemm(fn, ctx, false, false, t, d_in, r, s, gb, r, a, d_in, 1.0f, dx, d_in));
    return P4J_OK;
  });
}

}  // extern "C"
