// kron.cpp: Kronecker-product adapters (KronA, LoKr) applied without ever forming A⊗B, the
// Kronecker materialisation that merge uses, and the Hadamard-product (LoHa) weight rebuild and
// its backward pass.
//
// Kronecker apply. With ΔW = s·(A⊗B) (torch.kron order: ΔW[i·b1+k, j·b2+l] = A[i,j]·B[k,l]) and
// each input row read row-major as Xm [a2, b2], the row's output is Ym = s·A·Xm·Bᵀ [a1, b1]
// (row-major again). The B side of every product is one large GEMM over all rows at once (the
// rows of P = A·Xm, of G and of Q = G·B stack into [t·a1, ·] matrices) and goes to dnnl_sgemm;
// the A side is a batch of small products, one per row, run here as register-tiled loops on all
// threads: P = A·Xm and dXm += s·Aᵀ·Q per row, dA = s·Σ_rows Q·Xmᵀ over all rows.
#include "internal.h"

#include <cstring>

namespace p4j {
namespace {

// How an mm_rows result meets what C holds: C = α·acc, C += α·acc, or C = α·acc ⊙ C.
enum Mode : int { kSet = 0, kAdd = 1, kMul = 2 };

P4J_INLINE float combine(float r, float old, int mode) {
  return mode == kAdd ? r + old : mode == kMul ? r * old : r;
}

// mm_rows: C[i, c] = combine(α·Σ_p opA[i, p]·M[p, c], C[i, c]) for i < m, c < n, where
// opA[i, p] = a[i·ars + p·acs] (so a transposed A is just other strides) and M's rows are
// contiguous. Register tiles of MR rows x NC vectors of W columns; the last n % W columns run
// as scalars. Every element sums over p in order, whichever tile computes it.
template <int W, int MR, int NC>
P4J_INLINE void mm_tile(int64_t k, float alpha, const float* a, int64_t ars, int64_t acs, const float* m,
                        int64_t ldm, float* c, int64_t ldc, int mode) {
  vf<W> acc[MR][NC];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int q = 0; q < NC; ++q) acc[i][q] = vf<W>{};
  for (int64_t p = 0; p < k; ++p) {
    vf<W> mv[NC];
#pragma GCC unroll 8
    for (int q = 0; q < NC; ++q) mv[q] = vload<W>(m + p * ldm + q * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const float av = a[i * ars + p * acs];
#pragma GCC unroll 8
      for (int q = 0; q < NC; ++q) acc[i][q] += av * mv[q];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int q = 0; q < NC; ++q) {
      float* cp = c + i * ldc + q * W;
      vf<W> r = alpha * acc[i][q];
      if (mode == kAdd) r += vload<W>(cp);
      else if (mode == kMul) r *= vload<W>(cp);
      vstore<W>(cp, r);
    }
}

// Register tiles: MR rows x NC vectors (24 accumulators of 32 registers on AVX-512, 8 of 16 otherwise).
template <int W>
struct MmTile {
  static constexpr int mr = 4, nc = 2;
};
template <>
struct MmTile<16> {
  static constexpr int mr = 6, nc = 4;
};

template <int W, int MR>
P4J_INLINE void mm_row_block(int64_t n, int64_t k, float alpha, const float* a, int64_t ars, int64_t acs,
                             const float* m, int64_t ldm, float* c, int64_t ldc, int mode) {
  constexpr int NC = MmTile<W>::nc;
  int64_t col = 0;
  for (; col + NC * W <= n; col += NC * W) mm_tile<W, MR, NC>(k, alpha, a, ars, acs, m + col, ldm, c + col, ldc, mode);
  if constexpr (NC > 2) {
    if (col + 2 * W <= n) {
      mm_tile<W, MR, 2>(k, alpha, a, ars, acs, m + col, ldm, c + col, ldc, mode);
      col += 2 * W;
    }
  }
  for (; col + W <= n; col += W) mm_tile<W, MR, 1>(k, alpha, a, ars, acs, m + col, ldm, c + col, ldc, mode);
  for (; col < n; ++col) {  // the last n % W columns (all of them when n < W)
    for (int i = 0; i < MR; ++i) {
      float s = 0.0f;
      for (int64_t p = 0; p < k; ++p) s += a[i * ars + p * acs] * m[p * ldm + col];
      float* cp = c + i * ldc + col;
      *cp = combine(alpha * s, *cp, mode);
    }
  }
}

template <int W>
P4J_INLINE void mm_rows(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t ars, int64_t acs,
                        const float* mat, int64_t ldm, float* c, int64_t ldc, int mode) {
  constexpr int MR = MmTile<W>::mr;
  int64_t i = 0;
  for (; i + MR <= m; i += MR) mm_row_block<W, MR>(n, k, alpha, a + i * ars, ars, acs, mat, ldm, c + i * ldc, ldc, mode);
  // Leftover rows in tiles of 4 and 2 before single rows (64 rows = 10·6 + 4 on AVX-512).
  if constexpr (MR > 4) {
    if (i + 4 <= m) {
      mm_row_block<W, 4>(n, k, alpha, a + i * ars, ars, acs, mat, ldm, c + i * ldc, ldc, mode);
      i += 4;
    }
  }
  if (i + 2 <= m) {
    mm_row_block<W, 2>(n, k, alpha, a + i * ars, ars, acs, mat, ldm, c + i * ldc, ldc, mode);
    i += 2;
  }
  for (; i < m; ++i) mm_row_block<W, 1>(n, k, alpha, a + i * ars, ars, acs, mat, ldm, c + i * ldc, ldc, mode);
}

struct KronArgs {
  int64_t t, a1, a2, b1, b2;
  float s;
  const float *x, *a;
  const float* q;  // outer_sum: Q [t, a1·b2]; dx: Q
  float *p, *da, *dx;
  bool add;
};

// P_row = A·Xm_row for rows [r0, r1).
template <int W>
P4J_INLINE void left_a_body(const KronArgs& k, int64_t r0, int64_t r1) {
  const int64_t din = k.a2 * k.b2, pn = k.a1 * k.b2;
  for (int64_t r = r0; r < r1; ++r)
    mm_rows<W>(k.a1, k.b2, k.a2, 1.0f, k.a, k.a2, 1, k.x + r * din, k.b2, k.p + r * pn, k.b2, kSet);
}

// dXm_row += s·Aᵀ·Q_row for rows [r0, r1).
template <int W>
P4J_INLINE void left_at_body(const KronArgs& k, int64_t r0, int64_t r1) {
  const int64_t din = k.a2 * k.b2, qn = k.a1 * k.b2;
  for (int64_t r = r0; r < r1; ++r)
    mm_rows<W>(k.a2, k.b2, k.a1, k.s, k.a, 1, k.a2, k.q + r * qn, k.b2, k.dx + r * din, k.b2, kAdd);
}

// dA rows [i0, i1) = s·Σ_rows Q_row[i, :]·Xm_rowᵀ (or += when add): per row, chunks of Xm are
// transposed into a stack buffer (at most kOuterBuf floats: jb columns of dA by lb terms) so the
// product is an mm_rows update of the thread's rows of dA, which stay in cache over all rows.
constexpr int64_t kOuterBuf = 8192;
template <int W>
P4J_INLINE void outer_body(const KronArgs& k, int64_t i0, int64_t i1) {
  alignas(64) float buf[kOuterBuf];
  const int64_t qn = k.a1 * k.b2, xn = k.a2 * k.b2;
  const int64_t jb = k.a2 < kOuterBuf / 2 ? k.a2 : kOuterBuf / 2;
  const int64_t lb = kOuterBuf / jb;
  for (int64_t r = 0; r < k.t; ++r) {
    const float* xr = k.x + r * xn;
    const float* qr = k.q + r * qn + i0 * k.b2;
    for (int64_t j0 = 0; j0 < k.a2; j0 += jb) {
      const int64_t nj = k.a2 - j0 < jb ? k.a2 - j0 : jb;
      for (int64_t l0 = 0; l0 < k.b2; l0 += lb) {
        const int64_t nl = k.b2 - l0 < lb ? k.b2 - l0 : lb;
        for (int64_t j = 0; j < nj; ++j)
          for (int64_t l = 0; l < nl; ++l) buf[l * nj + j] = xr[(j0 + j) * k.b2 + l0 + l];
        const int mode = (k.add || r > 0 || l0 > 0) ? kAdd : kSet;
        mm_rows<W>(i1 - i0, nj, nl, k.s, qr + l0, k.b2, 1, buf, nj, k.da + i0 * k.a2 + j0, k.a2, mode);
      }
    }
  }
}

// kron: out[i·b1 + kk, j·b2 + l] = combine(s·A[i, j]·B[kk, l]) for output rows [r0, r1).
template <int W>
P4J_INLINE void kron_body(int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s, const float* a, const float* b,
                          float* out, bool add, int64_t r0, int64_t r1) {
  const int64_t din = a2 * b2;
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t i = row / b1, kk = row % b1;
    const float* br = b + kk * b2;
    float* o = out + row * din;
    for (int64_t j = 0; j < a2; ++j) {
      const float v = s * a[i * a2 + j];
      float* oj = o + j * b2;
      if (add) {
        for (int64_t l = 0; l < b2; ++l) oj[l] += v * br[l];
      } else {
        for (int64_t l = 0; l < b2; ++l) oj[l] = v * br[l];
      }
    }
  }
}

struct MmArgs {
  int64_t n, k;
  float alpha;
  const float* a;
  int64_t ars, acs;
  const float* m;
  int64_t ldm;
  float* c;
  int64_t ldc;
  int mode;
};

// Rows [r0, r1) of one mm_rows product (the Hadamard passes split a product's rows over threads).
template <int W>
P4J_INLINE void mm_part_body(const MmArgs& p, int64_t r0, int64_t r1) {
  mm_rows<W>(r1 - r0, p.n, p.k, p.alpha, p.a + r0 * p.ars, p.ars, p.acs, p.m, p.ldm, p.c + r0 * p.ldc, p.ldc, p.mode);
}

P4J_MULTIVERSION_W(left_a, (const KronArgs& k, int64_t r0, int64_t r1), (k, r0, r1))
P4J_MULTIVERSION_W(left_at, (const KronArgs& k, int64_t r0, int64_t r1), (k, r0, r1))
P4J_MULTIVERSION_W(outer, (const KronArgs& k, int64_t r0, int64_t r1), (k, r0, r1))
P4J_MULTIVERSION_W(mm_part, (const MmArgs& p, int64_t r0, int64_t r1), (p, r0, r1))
P4J_MULTIVERSION_W(kron, (int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s, const float* a, const float* b,
                          float* out, bool add, int64_t r0, int64_t r1),
                   (a1, a2, b1, b2, s, a, b, out, add, r0, r1))

// Multiply-adds per thread below which a call runs on fewer threads.
constexpr int64_t kKronGrain = int64_t{1} << 16;

// Runs f(begin, end) on contiguous pieces of [0, n) items of `per_item` multiply-adds each.
template <class F>
void split_items(const p4j_ctx* ctx, int64_t n, int64_t per_item, F&& f) {
  const int64_t per = per_item > 0 ? per_item : 1;
  // Guard: an overflowing n·per needs operands far beyond any machine's memory.
  const int64_t work = n > INT64_MAX / per ? INT64_MAX : n * per;
  int nt = threads_for(ctx, work, kKronGrain);
  if (nt > n) nt = static_cast<int>(n);
  if (nt <= 1) {
    if (n > 0) f(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t cnt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t b = n * id / cnt, e = n * (id + 1) / cnt;
    if (b < e) f(b, e);
  }
}

// One mm_rows product with its rows split over threads.
void mm_parallel(const p4j_ctx* ctx, int64_t m, const MmArgs& p) {
  split_items(ctx, m, p.n * p.k + p.n, [&](int64_t r0, int64_t r1) { mm_part_kernel(p, r0, r1); });
}

}  // namespace
}  // namespace p4j

using namespace p4j;

// Sizes and the operands forward and backward share: x [t, a2·b2], a [a1, a2], b [b1, b2], p [t, a1·b2].
static int32_t check_kron(const char* fn, p4j_ctx* ctx, int64_t t, int64_t a1, int64_t a2, int64_t b1, int64_t b2,
                          float s, const float* x, const float* a, const float* b, const float* p) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "t", t));
  P4J_TRY(check_nonneg(fn, "a1", a1));
  P4J_TRY(check_nonneg(fn, "a2", a2));
  P4J_TRY(check_nonneg(fn, "b1", b1));
  P4J_TRY(check_nonneg(fn, "b2", b2));
  P4J_TRY(check_finite(fn, "s", s));
  P4J_TRY(check_dims(fn, "a [a1, a2]", a1, a2));
  P4J_TRY(check_dims(fn, "b [b1, b2]", b1, b2));
  P4J_TRY(check_dims(fn, "d_in = a2·b2", a2, b2));
  P4J_TRY(check_dims(fn, "d_out = a1·b1", a1, b1));
  P4J_TRY(check_dims(fn, "p row = a1·b2", a1, b2));
  P4J_TRY(check_dims(fn, "x [t, d_in]", t, a2 * b2));
  P4J_TRY(check_dims(fn, "y, g [t, d_out]", t, a1 * b1));
  P4J_TRY(check_dims(fn, "p [t, a1·b2]", t, a1 * b2));
  P4J_TRY(check_ptr(fn, "x", x, t * a2 * b2));
  P4J_TRY(check_ptr(fn, "a", a, a1 * a2));
  P4J_TRY(check_ptr(fn, "b", b, b1 * b2));
  P4J_TRY(check_ptr(fn, "p", p, t * a1 * b2));
  return P4J_OK;
}

static int32_t check_hadamard(const char* fn, p4j_ctx* ctx, int64_t d_out, int64_t d_in, int64_t r, float s,
                              const float* w1a, const float* w1b, const float* w2a, const float* w2b) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "d_out", d_out));
  P4J_TRY(check_nonneg(fn, "d_in", d_in));
  P4J_TRY(check_nonneg(fn, "r", r));
  P4J_TRY(check_finite(fn, "s", s));
  P4J_TRY(check_dims(fn, "w1a, w2a [d_out, r]", d_out, r));
  P4J_TRY(check_dims(fn, "w1b, w2b [r, d_in]", r, d_in));
  P4J_TRY(check_dims(fn, "dw [d_out, d_in]", d_out, d_in));
  P4J_TRY(check_ptr(fn, "w1a", w1a, d_out * r));
  P4J_TRY(check_ptr(fn, "w1b", w1b, r * d_in));
  P4J_TRY(check_ptr(fn, "w2a", w2a, d_out * r));
  P4J_TRY(check_ptr(fn, "w2b", w2b, r * d_in));
  return P4J_OK;
}

extern "C" {

int32_t p4j_kron_forward(p4j_ctx* ctx, int64_t t, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s,
                         const float* x, const float* a, const float* b, float* p, float* y) {
  const char* fn = "p4j_kron_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_kron(fn, ctx, t, a1, a2, b1, b2, s, x, a, b, p));
    P4J_TRY(check_ptr(fn, "y", y, t * a1 * b1));
    KronArgs k{t, a1, a2, b1, b2, s, x, a, nullptr, p, nullptr, nullptr, false};
    // P_row = A·Xm_row [a1, b2] for every row.
    split_items(ctx, t, a1 * a2 * b2, [&](int64_t r0, int64_t r1) { left_a_kernel(k, r0, r1); });
    // y += s·P·Bᵀ with P as [t·a1, b2] and y as [t·a1, b1]. Fails only when dnnl_sgemm does.
    return sgemm(fn, ctx, false, true, t * a1, b1, b2, s, p, b2, b, b2, 1.0f, y, b1);
  });
}

int32_t p4j_kron_backward(p4j_ctx* ctx, int64_t t, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s,
                          const float* x, const float* a, const float* b, const float* p, const float* g, float* q,
                          float* da, float* db, float* dx, int32_t accumulate) {
  const char* fn = "p4j_kron_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_kron(fn, ctx, t, a1, a2, b1, b2, s, x, a, b, p));
    P4J_TRY(check_ptr(fn, "g", g, t * a1 * b1));
    P4J_TRY(check_ptr(fn, "q", q, t * a1 * b2));
    P4J_TRY(check_ptr(fn, "da", da, a1 * a2));
    P4J_TRY(check_ptr(fn, "db", db, b1 * b2));
    const bool add = accumulate != 0;
    // Q = G·B with G as [t·a1, b1]: Q_row = Gm_row·B [a1, b2]. (No sgemm below fails in a test.)
    P4J_TRY(sgemm(fn, ctx, false, false, t * a1, b2, b1, 1.0f, g, b1, b, b2, 0.0f, q, b2));
    // dB (+)= s·Gᵀ·P over all t·a1 rows = s·Σ_rows Gmᵀ·Pm.
    P4J_TRY(sgemm(fn, ctx, true, false, b1, b2, t * a1, s, g, b1, p, b2, add ? 1.0f : 0.0f, db, b2));
    KronArgs k{t, a1, a2, b1, b2, s, x, a, q, nullptr, da, dx, add};
    // dA (+)= s·Σ_rows Q·Xmᵀ, rows of dA split over threads (each sums over every row of the batch).
    if (t == 0 || b2 == 0) {  // an empty sum
      if (!add && a1 * a2 > 0) std::memset(da, 0, sizeof(float) * static_cast<size_t>(a1 * a2));
    } else if (a2 > 0) {
      split_items(ctx, a1, t * a2 * b2, [&](int64_t i0, int64_t i1) { outer_kernel(k, i0, i1); });
    }
    // dXm += s·Aᵀ·Q per row.
    if (dx != nullptr) split_items(ctx, t, a1 * a2 * b2, [&](int64_t r0, int64_t r1) { left_at_kernel(k, r0, r1); });
    return P4J_OK;
  });
}

int32_t p4j_kron(p4j_ctx* ctx, int64_t a1, int64_t a2, int64_t b1, int64_t b2, float s, const float* a,
                 const float* b, float* out, int32_t accumulate) {
  const char* fn = "p4j_kron";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "a1", a1));
    P4J_TRY(check_nonneg(fn, "a2", a2));
    P4J_TRY(check_nonneg(fn, "b1", b1));
    P4J_TRY(check_nonneg(fn, "b2", b2));
    P4J_TRY(check_finite(fn, "s", s));
    P4J_TRY(check_dims(fn, "a [a1, a2]", a1, a2));
    P4J_TRY(check_dims(fn, "b [b1, b2]", b1, b2));
    P4J_TRY(check_dims(fn, "d_out = a1·b1", a1, b1));
    P4J_TRY(check_dims(fn, "d_in = a2·b2", a2, b2));
    P4J_TRY(check_dims(fn, "out [d_out, d_in]", a1 * b1, a2 * b2));
    P4J_TRY(check_ptr(fn, "a", a, a1 * a2));
    P4J_TRY(check_ptr(fn, "b", b, b1 * b2));
    P4J_TRY(check_ptr(fn, "out", out, a1 * b1 * a2 * b2));
    const bool add = accumulate != 0;
    split_items(ctx, a1 * b1, a2 * b2 / 4 + 1,
                [&](int64_t r0, int64_t r1) { kron_kernel(a1, a2, b1, b2, s, a, b, out, add, r0, r1); });
    return P4J_OK;
  });
}

int32_t p4j_hadamard_rebuild(p4j_ctx* ctx, int64_t d_out, int64_t d_in, int64_t r, float s, const float* w1a,
                             const float* w1b, const float* w2a, const float* w2b, float* dw) {
  const char* fn = "p4j_hadamard_rebuild";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_hadamard(fn, ctx, d_out, d_in, r, s, w1a, w1b, w2a, w2b));
    P4J_TRY(check_ptr(fn, "dw", dw, d_out * d_in));
    // dw = W1a·W1b, then dw = s·(W2a·W2b) ⊙ dw row block by row block: W2a·W2b never exists whole.
    P4J_TRY(sgemm(fn, ctx, false, false, d_out, d_in, r, 1.0f, w1a, r, w1b, d_in, 0.0f, dw, d_in));
    mm_parallel(ctx, d_out, MmArgs{d_in, r, s, w2a, r, 1, w2b, d_in, dw, d_in, kMul});
    return P4J_OK;
  });
}

int32_t p4j_hadamard_backward(p4j_ctx* ctx, int64_t d_out, int64_t d_in, int64_t r, float s, const float* w1a,
                              const float* w1b, const float* w2a, const float* w2b, float* gw, int64_t ws_rows,
                              float* ws, float* dw1a, float* dw1b, float* dw2a, float* dw2b, int32_t accumulate) {
  const char* fn = "p4j_hadamard_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_hadamard(fn, ctx, d_out, d_in, r, s, w1a, w1b, w2a, w2b));
    P4J_TRY(check_ptr(fn, "gw", gw, d_out * d_in));
    if (ws_rows < 1) return fail(P4J_EINVAL, "%s: ws_rows (%lld) < 1", fn, static_cast<long long>(ws_rows));
    P4J_TRY(check_dims(fn, "ws [ws_rows, d_in]", ws_rows, d_in));
    P4J_TRY(check_ptr(fn, "ws", ws, ws_rows * d_in));
    P4J_TRY(check_ptr(fn, "dw1a", dw1a, d_out * r));
    P4J_TRY(check_ptr(fn, "dw1b", dw1b, r * d_in));
    P4J_TRY(check_ptr(fn, "dw2a", dw2a, d_out * r));
    P4J_TRY(check_ptr(fn, "dw2b", dw2b, r * d_in));
    const float beta = accumulate != 0 ? 1.0f : 0.0f;
    if (accumulate == 0 && r * d_in > 0) std::memset(dw2b, 0, sizeof(float) * static_cast<size_t>(r * d_in));
    // Row blocks of ws_rows: T2 = s·GW ⊙ (W1a·W1b) in ws, its two products, then GW becomes
    // T1 = s·GW ⊙ (W2a·W2b) in place. Only GW is as large as W. (No sgemm here fails in a test.)
    for (int64_t o0 = 0; o0 < d_out; o0 += ws_rows) {
      const int64_t rows = d_out - o0 < ws_rows ? d_out - o0 : ws_rows;
      float* gblk = gw + o0 * d_in;
      if (d_in > 0) std::memcpy(ws, gblk, sizeof(float) * static_cast<size_t>(rows * d_in));
      mm_parallel(ctx, rows, MmArgs{d_in, r, s, w1a + o0 * r, r, 1, w1b, d_in, ws, d_in, kMul});
      P4J_TRY(sgemm(fn, ctx, false, true, rows, r, d_in, 1.0f, ws, d_in, w2b, d_in, beta, dw2a + o0 * r, r));
      P4J_TRY(sgemm(fn, ctx, true, false, r, d_in, rows, 1.0f, w2a + o0 * r, r, ws, d_in, 1.0f, dw2b, d_in));
      mm_parallel(ctx, rows, MmArgs{d_in, r, s, w2a + o0 * r, r, 1, w2b, d_in, gblk, d_in, kMul});
    }
    // dW1a = T1·W1bᵀ, dW1b = W1aᵀ·T1.
    P4J_TRY(sgemm(fn, ctx, false, true, d_out, r, d_in, 1.0f, gw, d_in, w1b, d_in, beta, dw1a, r));
    return sgemm(fn, ctx, true, false, r, d_in, d_out, 1.0f, w1a, r, gw, d_in, beta, dw1b, d_in);
  });
}

}  // extern "C"
