// embedding.cpp: token embedding lookup (rows of a [vocab, d] table gathered by int32 ids) and
// its backward (the gradient rows scatter-added into the table's gradient). Pure data movement
// forward; the backward sums each table row's contributions in id-position order, so its result
// does not depend on the thread count.
#include <algorithm>

#include "internal.h"

namespace p4j {
namespace {

int32_t check_embedding(const char* fn, const p4j_ctx* ctx, int64_t n, int64_t vocab, int64_t d, const int32_t* ids,
                        const float* table_like, const char* table_name, const float* rows_like,
                        const char* rows_name) {
  P4J_TRY(check_ctx(fn, ctx));
  P4J_TRY(check_nonneg(fn, "n", n));
  P4J_TRY(check_nonneg(fn, "vocab", vocab));
  P4J_TRY(check_nonneg(fn, "d", d));
  P4J_TRY(check_dims(fn, "table [vocab, d]", vocab, d));
  P4J_TRY(check_dims(fn, "rows [n, d]", n, d));
  P4J_TRY(check_ptr(fn, "ids", ids, n));
  P4J_TRY(check_ptr(fn, table_name, table_like, vocab * d));
  P4J_TRY(check_ptr(fn, rows_name, rows_like, n * d));
  // Callers validate ids before the call; this pass keeps a bad one from reading or writing
  // outside the table (nothing is written before it).
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      return fail(P4J_EINVAL, "%s: ids[%lld] = %d is outside [0, vocab (%lld))", fn, static_cast<long long>(i),
                  static_cast<int>(ids[i]), static_cast<long long>(vocab));
  }
  return P4J_OK;
}

}  // namespace
}  // namespace p4j

using namespace p4j;

extern "C" {

int32_t p4j_embedding_forward(p4j_ctx* ctx, int64_t n, int64_t vocab, int64_t d, const int32_t* ids,
                              const float* table, float* out) {
  const char* fn = "p4j_embedding_forward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_embedding(fn, ctx, n, vocab, d, ids, table, "table", out, "out"));
    if (n == 0 || d == 0) return P4J_OK;
    const size_t row = static_cast<size_t>(d) * sizeof(float);
    parallel_rows(ctx, n, d, kGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) std::memcpy(out + i * d, table + static_cast<int64_t>(ids[i]) * d, row);
    });
    return P4J_OK;
  });
}

int32_t p4j_embedding_backward(p4j_ctx* ctx, int64_t n, int64_t vocab, int64_t d, const int32_t* ids, const float* g,
                               float* d_table) {
  const char* fn = "p4j_embedding_backward";
  return guarded(fn, [&]() -> int32_t {
    P4J_TRY(check_embedding(fn, ctx, n, vocab, d, ids, d_table, "d_table", g, "g"));
    if (n == 0 || d == 0) return P4J_OK;
    // Threads own disjoint column ranges and each walks the ids in order: a repeated id's rows
    // are added in position order whatever the thread count, and no two threads write one float.
    parallel_range(ctx, d, std::max<int64_t>(1, kGrain / n), [&](int64_t j0, int64_t j1) {
      for (int64_t i = 0; i < n; ++i) {
        const float* gi = g + i * d;
        float* dt = d_table + static_cast<int64_t>(ids[i]) * d;
        for (int64_t j = j0; j < j1; ++j) dt[j] += gi[j];
      }
    });
    return P4J_OK;
  });
}

}  // extern "C"
