// lowrank.cpp: GEMM over oneDNN's sgemm, and the low-rank adapter forward/backward built on it.
#include "internal.h"

#include <dnnl.h>

#include <utility>

namespace p4j {
namespace {

// c[m, n] (leading dimension ldc) *= beta; beta == 0 writes zeros without reading c (BLAS rule).
// beta = 1, 0, other: GemmTest#alphaZeroOrEmptyKOnlyScalesC.
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

// dnnl_sgemm fails only on arguments sgemm's callers have already rejected, or when out of memory:
// no test reaches this function or the failure branch of sgemm below.
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
  // Empty c: NativeAbiTest#emptySizesWithNullPointersAreFine; k == 0 or alpha == 0 (and neither):
  // GemmTest#alphaZeroOrEmptyKOnlyScalesC (and GemmTest#matchesReference).
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

// ---- direct low-rank kernels ----
// For the small shapes of a LoRA layer (the t rows of a batch, r <= 64) the adapter's products
// are too thin for dnnl_sgemm (N = r or K = r, transposed operands, fixed cost per call): they
// run here as register-tiled loops, forward and backward each in one OpenMP region. Every output
// element is computed by the same sequence of operations whichever thread or tile computes it,
// and every reduction runs over all its terms in one fixed order, so results do not depend on
// the thread count. The bodies are templates on the vector width W (floats), compiled for
// AVX-512 (16), AVX2+FMA (8) and SSE2 (4) and chosen once per call by active_isa().

// Where the direct kernels run: r <= 8 at any size; r <= 16 up to kDirectMaxWork16 and r <= 64
// up to kDirectMaxWork multiply-adds (t·r·(d_in + d_out)). Beyond those dnnl_sgemm's packed
// GEMMs were as fast or faster on Zen 4 (e.g. r = 16 at t·d = 16384·1024, where the column
// sweeps of the backward pass stream x and g twice; r = 32 and 64 at t = 512, d = 4096).
// The backward pass also goes to dnnl for many rows of short ones (t > kBwdMaxRowsShort and
// d_in + d_out < kBwdShortRow): its column sweeps over all t rows (db, da) lose there, by ~15-35%
// at t = 1000..4096, d_in + d_out = 160.
constexpr int64_t kDirectMaxRank = 64;
constexpr int64_t kDirectMaxWork16 = int64_t{1} << 27;
constexpr int64_t kDirectMaxWork = int64_t{1} << 25;
constexpr int64_t kBwdMaxRowsShort = 512;
constexpr int64_t kBwdShortRow = 256;
// Multiply-adds per thread below which a call runs on fewer threads.
constexpr int64_t kDirectGrain = int64_t{1} << 16;
// Per-thread stack tile of bᵀ: r rows of ob + kBtPad floats (32 KiB; with the other stack
// buffers below, under 48 KiB per thread), so nothing is allocated per call. The pad holds zeros
// (the vector tail reads them) and keeps the row stride off multiples of 1 KiB, whose rows
// would share L1 sets and alias at 4 KiB in loops reading several rows at once.
constexpr int64_t kBtFloats = 8192;
constexpr int64_t kBtPad = 16;

// ---- narrow column strips (the last n % W < W columns of a matrix) ----
// Vector code reads and writes them in a zero-padded copy, kStripRows rows of W floats at a time
// (4 KiB of stack for W = 16): loading a vector right after storing its lanes one by one would
// stall on store forwarding at every row.
constexpr int64_t kStripRows = 64;
// dst[i, 0:W) = src[i, 0:cols) then zeros, i < rows.
template <int W>
P4J_INLINE void strip_in(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l) dst[i * W + l] = l < cols ? src[i * lds + l] : 0.0f;
  }
}
// dst[i, 0:cols) = src[i, 0:cols), i < rows.
template <int W>
P4J_INLINE void strip_out(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t i = 0; i < rows; ++i) {
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l)
      if (l < cols) dst[i * ldd + l] = src[i * W + l];
  }
}
// Keeps v in a register: GCC would otherwise fold a load reused by several FMAs into each of
// them, and the loads, not the FMAs, would then bound the loop (Zen 4 issues one 512-bit load
// per cycle).
template <int W>
P4J_INLINE void pin(vf<W>& v) {
  asm("" : "+v"(v));
}
// ---- lane sums of N vectors at once ----
// Each vector's lanes are summed as a halving tree (lower half + upper half, repeated), the
// same tree for every N. Step (G, L): the inputs hold G groups of L lanes each (one group per
// output being summed); combining vectors a and b gives 2G groups of L/2 lanes: a's groups, then
// b's, each the sum of its two halves. Pairs of vectors are combined until one is left, which
// is then combined with itself until every group is one lane: lane k holds sum k.
constexpr int half_lane(int p, int groups, int lanes, int w, bool upper) {
  const int half = lanes / 2, q = p / half, e = p % half;
  return (q < groups ? q * lanes : w + (q - groups) * lanes) + (upper ? half : 0) + e;
}
template <int W, int G, int... I>
P4J_INLINE vf<W> halve_pair(const vf<W>& a, const vf<W>& b, std::integer_sequence<int, I...>) {
  constexpr int L = W / G;
  return __builtin_shufflevector(a, b, half_lane(I, G, L, W, false)...) +
         __builtin_shufflevector(a, b, half_lane(I, G, L, W, true)...);
}
template <int W, int N, int G>
P4J_INLINE void halve_all(vf<W>* v) {
  if constexpr (N > 1) {
#pragma GCC unroll 8
    for (int j = 0; j < N / 2; ++j) v[j] = halve_pair<W, G>(v[2 * j], v[2 * j + 1], std::make_integer_sequence<int, W>{});
    halve_all<W, N / 2, 2 * G>(v);
  } else if constexpr (G < W) {
    v[0] = halve_pair<W, G>(v[0], v[0], std::make_integer_sequence<int, W>{});
    halve_all<W, 1, 2 * G>(v);
  }
}
// sums[k] = lane sum of acc[k] for k < N (N a power of two <= W).
template <int W, int N>
P4J_INLINE void lane_sums(const vf<W>* acc, float* sums) {
  vf<W> v[N];
#pragma GCC unroll 8
  for (int k = 0; k < N; ++k) v[k] = acc[k];
  halve_all<W, N, 1>(v);
  alignas(64) float lanes[W];
  vstore<W>(lanes, v[0]);
#pragma GCC unroll 8
  for (int k = 0; k < N; ++k) sums[k] = lanes[k];
}

// Register tiles (accumulator vectors) per width: 32 registers for AVX-512, 16 otherwise.
// The tile-remainder branches below (ranks, rows, columns left over by a full tile, strips of
// n % W columns) are run by LowRankTest's ranks 1, 3, 5, 7, 8, 12, 16, 33, 64 and sizes of
// every residue, in each ISA run (and LowRankTest TILE_SIZES); tests/coverage.sh lists any branch left unrun.
// gcov at -O0 counts the branches of every inlined call site of these templates (and of every
// instance) apart. The sides no input can take there: the exit of a loop over a template constant
// (l < W, i < MR, k < KR, c < NC) at its first test; `add`, a constant at each call of rowupdate
// (false only for the backward's gb, true for y and dx) and at rowdot's call for h (false); and in
// rowupdate's strip copies, which pass exactly one vector of columns (ncv = W), the tiles of 2 and
// more column vectors (upd_cols); for gb, whose r columns are a multiple of W, the strip itself.
template <int W>
struct Tile {  // W = 8 and 4
  static constexpr int dot_m = 2, dot_k = 4;  // rowdot: rows x ranks
  static constexpr int upd_m = 4, upd_c = 2;  // rowupdate: rows x column vectors
  static constexpr int red_k = 4, red_c = 2;  // colreduce: ranks x column vectors
};
template <>
struct Tile<16> {
  static constexpr int dot_m = 3, dot_k = 8;
  static constexpr int upd_m = 6, upd_c = 4;
  static constexpr int red_k = 8, red_c = 3;
};

// rowdot: out[i, k] (=, or += when add) Σ_{j<n} p[i, j]·q[k, j] for i < m, k < r. Each dot
// product is W lane sums over j (the last n % W terms as one zero-padded vector: p's from a
// strip copy, q's from qt, rank k's at qt + k·ldqt, zero beyond n % W), then added pairwise.
template <int W, int MR, int KR>
P4J_INLINE void dot_tile(int64_t n, const float* p, int64_t ldp, const float* pt, const float* q, int64_t ldq,
                         const float* qt, int64_t ldqt, float* out, int64_t ldo, bool add) {
  vf<W> acc[MR][KR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k) acc[i][k] = vf<W>{};
  const int64_t nv = n - n % W;
  for (int64_t j = 0; j < nv; j += W) {
    vf<W> pv[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) pv[i] = vload<W>(p + i * ldp + j);
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k) {
      vf<W> qv = vload<W>(q + k * ldq + j);
      pin<W>(qv);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][k] += pv[i] * qv;
    }
  }
  if (nv < n) {
    vf<W> pv[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) pv[i] = vload<W>(pt + i * W);
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k) {
      vf<W> qv = vload<W>(qt + k * ldqt);
      pin<W>(qv);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][k] += pv[i] * qv;
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float sums[KR];
    lane_sums<W, KR>(acc[i], sums);
    float* o = out + i * ldo;
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k) o[k] = add ? o[k] + sums[k] : sums[k];
  }
}

template <int W, int MR>
P4J_INLINE void dot_ranks(int64_t n, const float* p, int64_t ldp, const float* pt, const float* q, int64_t ldq,
                          const float* qt, int64_t ldqt, int64_t r, float* out, int64_t ldo, bool add) {
  constexpr int KR = Tile<W>::dot_k;
  int64_t k = 0;
  for (; k + KR <= r; k += KR)
    dot_tile<W, MR, KR>(n, p, ldp, pt, q + k * ldq, ldq, qt + k * ldqt, ldqt, out + k, ldo, add);
  if constexpr (KR > 4) {
    if (k + 4 <= r) {
      dot_tile<W, MR, 4>(n, p, ldp, pt, q + k * ldq, ldq, qt + k * ldqt, ldqt, out + k, ldo, add);
      k += 4;
    }
  }
  if (k + 2 <= r) {
    dot_tile<W, MR, 2>(n, p, ldp, pt, q + k * ldq, ldq, qt + k * ldqt, ldqt, out + k, ldo, add);
    k += 2;
  }
  if (k < r) dot_tile<W, MR, 1>(n, p, ldp, pt, q + k * ldq, ldq, qt + k * ldqt, ldqt, out + k, ldo, add);
}

template <int W>
P4J_INLINE void rowdot(int64_t m, int64_t n, const float* p, int64_t ldp, const float* q, int64_t ldq,
                       const float* qt, int64_t ldqt, int64_t r, float* out, int64_t ldo, bool add) {
  constexpr int MR = Tile<W>::dot_m;
  const int64_t nv = n - n % W;
  alignas(64) float pt[kStripRows * W];
  for (int64_t i0 = 0; i0 < m; i0 += kStripRows) {
    const int64_t i1 = m - i0 < kStripRows ? m : i0 + kStripRows;
    if (nv < n) strip_in<W>(p + i0 * ldp + nv, ldp, i1 - i0, n - nv, pt);
    int64_t i = i0;
    for (; i + MR <= i1; i += MR)
      dot_ranks<W, MR>(n, p + i * ldp, ldp, pt + (i - i0) * W, q, ldq, qt, ldqt, r, out + i * ldo, ldo, add);
    for (; i < i1; ++i)
      dot_ranks<W, 1>(n, p + i * ldp, ldp, pt + (i - i0) * W, q, ldq, qt, ldqt, r, out + i * ldo, ldo, add);
  }
}

// rowupdate: out[i, c] += s·Σ_{k<r} u[i, k]·v[k, c] (or = s·Σ... when !add) for i < m, c < nc;
// each sum runs over k in order, then s·sum is added to out. The last nc % W columns come from
// vt (row k at vt + k·ldvt, W floats readable) and go through a strip copy of out.
template <int W, int MR, int NC>
P4J_INLINE void upd_tile(int64_t r, float s, const float* u, int64_t ldu, const float* v, int64_t ldv,
                         float* out, int64_t ldo, bool add) {
  vf<W> acc[MR][NC];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) acc[i][c] = vf<W>{};
  for (int64_t k = 0; k < r; ++k) {
    vf<W> vv[NC];
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) vv[c] = vload<W>(v + k * ldv + c * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const float ub = u[i * ldu + k];
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) acc[i][c] += ub * vv[c];
    }
  }
  // All loads of out before the stores: rows 4 KiB apart would otherwise wait on each other.
  // s·acc is rounded before the add in every variant (pinned: no multiply-add contraction).
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      const float* o = out + i * ldo + c * W;
      acc[i][c] *= s;
      pin<W>(acc[i][c]);
      if (add) acc[i][c] += vload<W>(o);
    }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) vstore<W>(out + i * ldo + c * W, acc[i][c]);
}

// Columns [0, ncv) (a multiple of W) of MR rows, block after block.
template <int W, int MR>
P4J_INLINE void upd_cols(int64_t ncv, int64_t r, float s, const float* u, int64_t ldu, const float* v,
                         int64_t ldv, float* out, int64_t ldo, bool add) {
  constexpr int NC = Tile<W>::upd_c;
  int64_t c = 0;
  for (; c + NC * W <= ncv; c += NC * W) upd_tile<W, MR, NC>(r, s, u, ldu, v + c, ldv, out + c, ldo, add);
  if constexpr (NC >= 4) {
    if (c + 2 * W <= ncv) {
      upd_tile<W, MR, 2>(r, s, u, ldu, v + c, ldv, out + c, ldo, add);
      c += 2 * W;
    }
  }
  for (; c < ncv; c += W) upd_tile<W, MR, 1>(r, s, u, ldu, v + c, ldv, out + c, ldo, add);
}

// Rows outermost: a tile's loads of out never follow, in program order, the previous tile's
// stores to rows a multiple of 4 KiB away (they would wait on them: 4K aliasing), as they would
// with the columns outermost and a power-of-two ldo.
template <int W>
P4J_INLINE void upd_block(int64_t m, int64_t ncv, int64_t r, float s, const float* u, int64_t ldu, const float* v,
                          int64_t ldv, float* out, int64_t ldo, bool add) {
  constexpr int MR = Tile<W>::upd_m;
  int64_t i = 0;
  for (; i + MR <= m; i += MR) upd_cols<W, MR>(ncv, r, s, u + i * ldu, ldu, v, ldv, out + i * ldo, ldo, add);
  if constexpr (MR >= 4) {
    if (i + MR / 2 <= m) {
      upd_cols<W, MR / 2>(ncv, r, s, u + i * ldu, ldu, v, ldv, out + i * ldo, ldo, add);
      i += MR / 2;
    }
  }
  for (; i < m; ++i) upd_cols<W, 1>(ncv, r, s, u + i * ldu, ldu, v, ldv, out + i * ldo, ldo, add);
}

template <int W>
P4J_INLINE void rowupdate(int64_t m, int64_t nc, int64_t r, float s, const float* u, int64_t ldu,
                          const float* v, int64_t ldv, const float* vt, int64_t ldvt, float* out, int64_t ldo,
                          bool add = true) {
  const int64_t ncv = nc - nc % W;
  upd_block<W>(m, ncv, r, s, u, ldu, v, ldv, out, ldo, add);
  if (ncv < nc) {
    alignas(64) float strip[kStripRows * W];
    for (int64_t i0 = 0; i0 < m; i0 += kStripRows) {
      const int64_t rows = m - i0 < kStripRows ? m - i0 : kStripRows;
      if (add) strip_in<W>(out + i0 * ldo + ncv, ldo, rows, nc - ncv, strip);
      upd_block<W>(rows, W, r, s, u + i0 * ldu, ldu, vt, ldvt, strip, W, add);
      strip_out<W>(strip, rows, nc - ncv, out + i0 * ldo + ncv, ldo);
    }
  }
}

// colreduce: for k < r, c < nc, sum = Σ_{i<m} u[i, k]·v[i, c] in row order, stored as
// o = s·sum (or o + s·sum when add), o being out[k, c] or, when T, out[c, k].
template <int W, int KR, int NC>
P4J_INLINE void red_rows(int64_t m, const float* u, int64_t ldu, const float* v, int64_t ldv, vf<W> (*acc)[NC]) {
  for (int64_t i = 0; i < m; ++i) {
    vf<W> vv[NC];
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) vv[c] = vload<W>(v + i * ldv + c * W);
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k) {
      const float ub = u[i * ldu + k];
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) acc[k][c] += ub * vv[c];
    }
  }
}

// With Part (NC = 1), only the first rem < W columns of v and out exist: v's rows go through
// strip copies and only rem columns of out are written.
template <int W, int KR, int NC, bool T, bool Part>
P4J_INLINE void red_tile(int64_t m, const float* u, int64_t ldu, const float* v, int64_t ldv, float s,
                         bool add, float* out, int64_t ldo, int64_t rem) {
  vf<W> acc[KR][NC];
#pragma GCC unroll 8
  for (int k = 0; k < KR; ++k)
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) acc[k][c] = vf<W>{};
  if constexpr (!Part) {
    red_rows<W, KR, NC>(m, u, ldu, v, ldv, acc);
  } else {
    alignas(64) float strip[kStripRows * W];
    for (int64_t i0 = 0; i0 < m; i0 += kStripRows) {
      const int64_t rows = m - i0 < kStripRows ? m - i0 : kStripRows;
      strip_in<W>(v + i0 * ldv, ldv, rows, rem, strip);
      red_rows<W, KR, NC>(rows, u + i0 * ldu, ldu, strip, W, acc);
    }
  }
  // s·sum is rounded before the add in every variant (pinned: no multiply-add contraction).
#pragma GCC unroll 8
  for (int k = 0; k < KR; ++k)
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      acc[k][c] *= s;
      pin<W>(acc[k][c]);
    }
  if constexpr (!T) {
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k)
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) {
        float* o = out + k * ldo + c * W;
        if constexpr (Part) {
          alignas(64) float sum[W];
          vstore<W>(sum, acc[k][c]);
          for (int64_t l = 0; l < rem; ++l) o[l] = add ? o[l] + sum[l] : sum[l];
        } else {
          vstore<W>(o, add ? vload<W>(o) + acc[k][c] : acc[k][c]);
        }
      }
  } else {
    float sums[KR][NC * W];
#pragma GCC unroll 8
    for (int k = 0; k < KR; ++k)
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) vstore<W>(&sums[k][c * W], acc[k][c]);
    const int64_t cols = Part ? rem : NC * W;
    for (int64_t c = 0; c < cols; ++c) {
      float* o = out + c * ldo;
#pragma GCC unroll 8
      for (int k = 0; k < KR; ++k) o[k] = add ? o[k] + sums[k][c] : sums[k][c];
    }
  }
}

template <int W, int NC, bool T, bool Part>
P4J_INLINE void red_ranks(int64_t m, int64_t r, const float* u, int64_t ldu, const float* v, int64_t ldv,
                          float s, bool add, float* out, int64_t ldo, int64_t rem) {
  constexpr int KR = Tile<W>::red_k;
  auto at = [&](int64_t k) { return T ? out + k : out + k * ldo; };
  int64_t k = 0;
  for (; k + KR <= r; k += KR) red_tile<W, KR, NC, T, Part>(m, u + k, ldu, v, ldv, s, add, at(k), ldo, rem);
  if constexpr (KR > 4) {
    if (k + 4 <= r) {
      red_tile<W, 4, NC, T, Part>(m, u + k, ldu, v, ldv, s, add, at(k), ldo, rem);
      k += 4;
    }
  }
  if (k + 2 <= r) {
    red_tile<W, 2, NC, T, Part>(m, u + k, ldu, v, ldv, s, add, at(k), ldo, rem);
    k += 2;
  }
  if (k < r) red_tile<W, 1, NC, T, Part>(m, u + k, ldu, v, ldv, s, add, at(k), ldo, rem);
}

template <int W, bool T>
P4J_INLINE void colreduce(int64_t m, int64_t nc, int64_t r, const float* u, int64_t ldu, const float* v,
                          int64_t ldv, float s, bool add, float* out, int64_t ldo) {
  constexpr int NC = Tile<W>::red_c;
  auto at = [&](int64_t c) { return T ? out + c * ldo : out + c; };
  int64_t c = 0;
  for (; c + NC * W <= nc; c += NC * W) red_ranks<W, NC, T, false>(m, r, u, ldu, v + c, ldv, s, add, at(c), ldo, 0);
  for (; c + W <= nc; c += W) red_ranks<W, 1, T, false>(m, r, u, ldu, v + c, ldv, s, add, at(c), ldo, 0);
  if (c < nc) red_ranks<W, 1, T, true>(m, r, u, ldu, v + c, ldv, s, add, at(c), ldo, nc - c);
}

// bt[k, o] (row stride ldt >= ob + W) = b[o0 + o, k] for o < ob, k < r (b is [d_out, r]);
// zeros in [ob, ldt) of every row. Blocks of 8 x 8 (AVX variants) and 4 x 4 go through
// registers, the rest element by element.
P4J_INLINE void transpose8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  vf<8> a[8], t[8], u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) a[i] = vload<8>(src + i * lds);
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(a[i], a[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(a[i], a[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    vstore<8>(dst + i * ldd, __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11));
    vstore<8>(dst + (i + 4) * ldd, __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15));
  }
}
P4J_INLINE void transpose4(const float* src, int64_t lds, float* dst, int64_t ldd) {
  const vf<4> a0 = vload<4>(src), a1 = vload<4>(src + lds), a2 = vload<4>(src + 2 * lds), a3 = vload<4>(src + 3 * lds);
  const vf<4> t0 = __builtin_shufflevector(a0, a1, 0, 4, 1, 5), t1 = __builtin_shufflevector(a0, a1, 2, 6, 3, 7);
  const vf<4> t2 = __builtin_shufflevector(a2, a3, 0, 4, 1, 5), t3 = __builtin_shufflevector(a2, a3, 2, 6, 3, 7);
  vstore<4>(dst, __builtin_shufflevector(t0, t2, 0, 1, 4, 5));
  vstore<4>(dst + ldd, __builtin_shufflevector(t0, t2, 2, 3, 6, 7));
  vstore<4>(dst + 2 * ldd, __builtin_shufflevector(t1, t3, 0, 1, 4, 5));
  vstore<4>(dst + 3 * ldd, __builtin_shufflevector(t1, t3, 2, 3, 6, 7));
}
template <int W>
P4J_INLINE void transpose_b(const float* b, int64_t o0, int64_t ob, int64_t r, float* bt, int64_t ldt) {
  const float* src = b + o0 * r;
  constexpr int B = W >= 8 ? 8 : 4;
  const int64_t rb = r - r % B, r4 = r - r % 4;
  int64_t o = 0;
  for (; o + B <= ob; o += B) {
    const float* row = src + o * r;
    int64_t k = 0;
    for (; k < rb; k += B) {
      if constexpr (B == 8) transpose8(row + k, r, bt + k * ldt + o, ldt);
      else transpose4(row + k, r, bt + k * ldt + o, ldt);
    }
    if constexpr (B == 8) {
      if (k < r4) {
        transpose4(row + k, r, bt + k * ldt + o, ldt);
        transpose4(row + 4 * r + k, r, bt + k * ldt + o + 4, ldt);
        k += 4;
      }
    }
    for (; k < r; ++k)
      for (int64_t l = 0; l < B; ++l) bt[k * ldt + o + l] = row[l * r + k];
  }
  for (; o < ob; ++o)
    for (int64_t k = 0; k < r; ++k) bt[k * ldt + o] = src[o * r + k];
  for (int64_t k = 0; k < r; ++k)
    for (int64_t j = ob; j < ldt; ++j) bt[k * ldt + j] = 0.0f;
}

// at[k, 0:W) = a[k, j0:d_in), zero-padded, for the last d_in % W columns j0.. of a [r, d_in].
template <int W>
P4J_INLINE void a_tail(const float* a, int64_t r, int64_t d_in, float* at) {
  const int64_t j0 = d_in - d_in % W;
  for (int64_t k = 0; k < r; ++k)
    for (int64_t l = 0; l < W; ++l) at[k * W + l] = j0 + l < d_in ? a[k * d_in + j0 + l] : 0.0f;
}

// Columns of b per bᵀ tile: a multiple of 16, r rows of ob + kBtPad within kBtFloats.
inline int64_t bt_cols(int64_t r) {
  const int64_t ob = (kBtFloats / (r > 0 ? r : 1) - kBtPad) / 16 * 16;
  return ob < 16 ? 16 : ob;
}

// Piece id of cnt of [0, n), borders at multiples of 16.
inline void split16(int64_t n, int64_t id, int64_t cnt, int64_t* b, int64_t* e) {
  const int64_t blocks = (n + 15) / 16;
  const int64_t b0 = blocks * id / cnt, b1 = blocks * (id + 1) / cnt;
  *b = b0 * 16 < n ? b0 * 16 : n;
  *e = b1 * 16 < n ? b1 * 16 : n;
}

struct LowrankArgs {
  int64_t t, d_in, d_out, r;
  float s;
  const float *x, *a, *b, *h, *g;
  float *h_out, *y, *gb, *da, *db, *dx;
  bool add;
};

// Forward, thread id of cnt: rows [i0, i1) of h = x·aᵀ, then of y += s·h·bᵀ by bᵀ tiles.
template <int W>
P4J_INLINE void fwd_body(const LowrankArgs& p, int64_t id, int64_t cnt) {
  const int64_t i0 = p.t * id / cnt, i1 = p.t * (id + 1) / cnt, m = i1 - i0;
  if (m <= 0) return;  // a thread without rows: LowRankTest SWITCH_SIZES t = 1 (two threads, one row)
  alignas(64) float bt[kBtFloats];
  alignas(64) float at[kDirectMaxRank * W];
  if (p.d_in % W != 0) a_tail<W>(p.a, p.r, p.d_in, at);  // LowRankTest d_in = 33 / SWITCH_SIZES d_in = 128
  float* h = p.h_out + i0 * p.r;
  rowdot<W>(m, p.d_in, p.x + i0 * p.d_in, p.d_in, p.a, p.d_in, at, W, p.r, h, p.r, false);
  const int64_t obmax = bt_cols(p.r);
  for (int64_t o0 = 0; o0 < p.d_out; o0 += obmax) {
    const int64_t ob = p.d_out - o0 < obmax ? p.d_out - o0 : obmax, ldt = ob + kBtPad;
    transpose_b<W>(p.b, o0, ob, p.r, bt, ldt);
    rowupdate<W>(m, ob, p.r, p.s, h, p.r, bt, ldt, bt + (ob - ob % W), ldt, p.y + i0 * p.d_out + o0, p.d_out);
  }
}

// Backward, thread id of cnt: its rows of gb = g·b and of dx += s·gb·a; after a barrier, its
// columns of db = s·gᵀ·h (stored transposed) and da = s·gbᵀ·x, sums over all rows. Outputs are
// split so that no cache line is written by two threads but at piece borders (a column split of
// dx would share two lines per row). When r is a multiple of W, gb is a sum of rows of b
// (rowupdate over the d_out rows of b, no transposition); else dot products with bᵀ tiles.
template <int W>
P4J_INLINE void bwd_body(const LowrankArgs& p, int64_t id, int64_t cnt) {
  const int64_t i0 = p.t * id / cnt, i1 = p.t * (id + 1) / cnt, m = i1 - i0;
  const float* g = p.g + i0 * p.d_out;
  float* gb = p.gb + i0 * p.r;
  // r % W == 0: LowRankTest SWITCH_SIZES r = 16, 64 (and r = 8 at W = 4, 8); else: r = 1, 7, 33, 5.
  if (m > 0 && p.r % W == 0) {
    rowupdate<W>(m, p.r, p.d_out, 1.0f, g, p.d_out, p.b, p.r, p.b, p.r, gb, p.r, false);
  } else if (m > 0) {
    if (p.d_out == 0) {  // LowRankTest SWITCH_SIZES d_out = 0, r = 3
      for (int64_t i = 0; i < m * p.r; ++i) gb[i] = 0.0f;
    }
    alignas(64) float bt[kBtFloats];
    const int64_t obmax = bt_cols(p.r);
    for (int64_t o0 = 0; o0 < p.d_out; o0 += obmax) {
      const int64_t ob = p.d_out - o0 < obmax ? p.d_out - o0 : obmax, ldt = ob + kBtPad;
      transpose_b<W>(p.b, o0, ob, p.r, bt, ldt);
      rowdot<W>(m, ob, g + o0, p.d_out, bt, ldt, bt + (ob - ob % W), ldt, p.r, gb, p.r, o0 > 0);
    }
  }
  if (m > 0 && p.dx != nullptr) {  // dx present / null: LowRankTest#backward* (withDx)
    alignas(64) float at[kDirectMaxRank * W];
    if (p.d_in % W != 0) a_tail<W>(p.a, p.r, p.d_in, at);
    rowupdate<W>(m, p.d_in, p.r, p.s, gb, p.r, p.a, p.d_in, at, W, p.dx + i0 * p.d_in, p.d_in);
  }
  if (cnt > 1) {
#pragma omp barrier
  }
  int64_t c0, c1;
  split16(p.d_out, id, cnt, &c0, &c1);
  if (c0 < c1) colreduce<W, true>(p.t, c1 - c0, p.r, p.h, p.r, p.g + c0, p.d_out, p.s, p.add, p.db + c0 * p.r, p.r);
  split16(p.d_in, id, cnt, &c0, &c1);
  if (c0 < c1) colreduce<W, false>(p.t, c1 - c0, p.r, p.gb, p.r, p.x + c0, p.d_in, p.s, p.add, p.da + c0, p.d_in);
}

#define P4J_LOWRANK_VARIANTS(name)                                                                   \
  P4J_TARGET_AVX512 __attribute__((noinline)) void name##_avx512(const LowrankArgs& p, int64_t id, \
                                                                 int64_t cnt) {                    \
    name##_body<16>(p, id, cnt);                                                                   \
  }                                                                                                \
  P4J_TARGET_AVX2 __attribute__((noinline)) void name##_avx2(const LowrankArgs& p, int64_t id,     \
                                                             int64_t cnt) {                        \
    name##_body<8>(p, id, cnt);                                                                    \
  }                                                                                                \
  __attribute__((noinline)) void name##_base(const LowrankArgs& p, int64_t id, int64_t cnt) {     \
    name##_body<4>(p, id, cnt);                                                                    \
  }
P4J_LOWRANK_VARIANTS(fwd)
P4J_LOWRANK_VARIANTS(bwd)
#undef P4J_LOWRANK_VARIANTS

using LowrankPart = void (*)(const LowrankArgs&, int64_t, int64_t);

// Runs part(p, id, cnt) on each thread of a team sized by rows·per_row multiply-adds.
void run_lowrank(const p4j_ctx* ctx, int64_t rows, int64_t per_row, LowrankPart avx512, LowrankPart avx2,
                 LowrankPart base, const LowrankArgs& p) {
  const Isa isa = active_isa();
  const LowrankPart part = isa == Isa::avx512 ? avx512 : isa == Isa::avx2 ? avx2 : base;
  // Guard: an overflowing rows·per_row needs operands far beyond any machine's memory, not reachable.
  const int64_t work = per_row > 0 && rows > INT64_MAX / per_row ? INT64_MAX : rows * per_row;
  const int nt = threads_for(ctx, work, kDirectGrain);
  // One thread / a team: LowRankTest SIZES 7x33x257 / 1000x129x33 (Backend.cpu() on >= 2 cores);
  // ThreadCountTest#gemmLowrankAndLossesAgreeWithinRounding runs both on one input.
  if (nt <= 1) {
    part(p, 0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  part(p, omp_get_thread_num(), omp_get_num_threads());
}

// Every side of every test below is run by LowRankTest#forwardBothSidesOfEverySwitch and
// LowRankTest#backwardBothSidesOfEverySwitch (SWITCH_SIZES names the case for each side).
bool use_direct(int64_t t, int64_t d_in, int64_t d_out, int64_t r, bool backward) {
  // Short rows: t = 513, d_in + d_out = 255 (dnnl) / 256 (direct); t = 512, short (direct).
  if (backward && t > kBwdMaxRowsShort && d_in + d_out < kBwdShortRow) return false;
  if (r <= 8) return true;                 // r = 5 / r = 12, 16, 64
  if (r > kDirectMaxRank) return false;    // r = 65 / r = 64
  const int64_t per_row = r * (d_in + d_out);  // t·per_row compared without overflow
  // per_row == 0: d_in = d_out = 0, r = 12. Work bound, r <= 16: t = 4097 x 2048 x 16 (LARGE_R16, dnnl) /
  // 31 x 150 x 16 (direct); r in (16, 64]: t = 1359 (dnnl) / 1358 (direct) x 386 x 64.
  return per_row == 0 || t <= (r <= 16 ? kDirectMaxWork16 : kDirectMaxWork) / per_row;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

// The checks forward and backward share: sizes, s, and the operands both read (x, a, b, h).
static int32_t check_lowrank(const char* fn, p4j_ctx* ctx, int64_t t, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float* x, const float* a, const float* b, const float* h) {
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
  P4J_TRY(check_dims(fn, "y, g [t, d_out]", t, d_out));
  P4J_TRY(check_ptr(fn, "x", x, t * d_in));
  P4J_TRY(check_ptr(fn, "a", a, r * d_in));
  P4J_TRY(check_ptr(fn, "b", b, d_out * r));
  P4J_TRY(check_ptr(fn, "h", h, t * r));
  return P4J_OK;
}

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
    P4J_TRY(check_lowrank(fn, ctx, t, d_in, d_out, r, s, x, a, b, h));
    P4J_TRY(check_ptr(fn, "y", y, t * d_out));
    if (use_direct(t, d_in, d_out, r, false)) {
      if (t == 0 || r == 0) return P4J_OK;  // h is empty, y += 0 (NativeAbiTest#emptyLowrankCallsAreNoOps)
      LowrankArgs p{t, d_in, d_out, r, s, x, a, b, nullptr, nullptr, h, y, nullptr, nullptr, nullptr, nullptr, false};
      run_lowrank(ctx, t, r * (d_in + d_out), fwd_avx512, fwd_avx2, fwd_base, p);
      return P4J_OK;
    }
    // Each P4J_TRY(sgemm(...)) here fails only when dnnl_sgemm does: not reachable (see dnnl_status_name).
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
    P4J_TRY(check_lowrank(fn, ctx, t, d_in, d_out, r, s, x, a, b, h));
    P4J_TRY(check_ptr(fn, "g", g, t * d_out));
    P4J_TRY(check_ptr(fn, "gb", gb, t * r));
    P4J_TRY(check_ptr(fn, "da", da, r * d_in));
    P4J_TRY(check_ptr(fn, "db", db, d_out * r));
    if (use_direct(t, d_in, d_out, r, true)) {
      if (r == 0) return P4J_OK;  // gb, da and db are empty, dx += 0 (NativeAbiTest#emptyLowrankCallsAreNoOps)
      LowrankArgs p{t, d_in, d_out, r, s, x, a, b, h, g, nullptr, nullptr, gb, da, db, dx, accumulate != 0};
      run_lowrank(ctx, 2 * t, r * (d_in + d_out), bwd_avx512, bwd_avx2, bwd_base, p);  // ~4 products
      return P4J_OK;
    }
    const float beta = accumulate != 0 ? 1.0f : 0.0f;
    // As in the forward pass, no P4J_TRY(sgemm(...)) below can fail in a test.
    // gb = g·b [t, r]
    P4J_TRY(sgemm(fn, ctx, false, false, t, r, d_out, 1.0f, g, d_out, b, r, 0.0f, gb, r));
    // db (+)= s·gᵀ·h [d_out, r]
    P4J_TRY(sgemm(fn, ctx, true, false, d_out, r, t, s, g, d_out, h, r, beta, db, r));
    // da (+)= s·gbᵀ·x [r, d_in]
    P4J_TRY(sgemm(fn, ctx, true, false, r, d_in, t, s, gb, r, x, d_in, beta, da, d_in));
    // dx += s·gb·a [t, d_in]
    if (dx != nullptr)  // LowRankTest#backwardBothSidesOfEverySwitch runs dnnl cases with and without dx
      P4J_TRY(sgemm(fn, ctx, false, false, t, d_in, r, s, gb, r, a, d_in, 1.0f, dx, d_in));
    return P4J_OK;
  });
}

}  // extern "C"
