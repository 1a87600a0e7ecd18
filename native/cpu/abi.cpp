// abi.cpp: library-level entry points (errors, version, build facts, CPU features, contexts,
// huge-page advice, the FMA ceiling) and the argument checks every kernel file uses.
#include "internal.h"

#include <dnnl.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace p4j {

namespace {
thread_local char g_error[512];
}

int32_t fail(int32_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_error, sizeof g_error, fmt, ap);
  va_end(ap);
  return code;
}

void clear_error() { g_error[0] = '\0'; }

int32_t check_ctx(const char* fn, const p4j_ctx* ctx) {
  if (ctx == nullptr) return fail(P4J_EINVAL, "%s: ctx is null", fn);
  if (ctx->magic != kCtxMagic)
    return fail(P4J_EINVAL, "%s: ctx (%p) is not a live p4j_ctx", fn, static_cast<const void*>(ctx));
  return P4J_OK;
}

int32_t check_nonneg(const char* fn, const char* name, int64_t v) {
  if (v < 0) return fail(P4J_EINVAL, "%s: %s (%lld) < 0", fn, name, static_cast<long long>(v));
  return P4J_OK;
}

int32_t check_dims(const char* fn, const char* what, int64_t rows, int64_t cols) {
  // Defensive: every caller has checked both sizes >= 0 already (check_nonneg, or check_ld's
  // ld >= cols >= 0), so no test reaches this line; it keeps the overflow test below sound.
  if (rows < 0 || cols < 0)
    return fail(P4J_EINVAL, "%s: %s has a negative size [%lld, %lld]", fn, what,
                static_cast<long long>(rows), static_cast<long long>(cols));
  // Element count times 8 (the widest element we index with) must fit in int64.
  // Both sides: NativeAbiTest#badRawArgumentsReturnEinvalAndWriteNothing ("n = 2^61") / every valid call.
  if (cols != 0 && rows > INT64_MAX / 8 / cols)
    return fail(P4J_EINVAL, "%s: %s size [%lld, %lld] overflows int64", fn, what,
                static_cast<long long>(rows), static_cast<long long>(cols));
  return P4J_OK;
}

int32_t check_ptr(const char* fn, const char* name, const void* ptr, int64_t count) {
  if (ptr == nullptr && count > 0) return fail(P4J_EINVAL, "%s: %s is null", fn, name);
  return P4J_OK;
}

int32_t check_finite(const char* fn, const char* name, float v) {
  if (!std::isfinite(v)) return fail(P4J_EINVAL, "%s: %s (%g) is not finite", fn, name, v);
  return P4J_OK;
}

namespace {

// A CPU fact: on one machine every feature test takes one side (all true on this project's
// AVX-512 machines), so the && chain's false exits are not reachable in a test run.
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Called only on a CPU without AVX-512 (a CPU fact: not reached on this project's AVX-512 machines).
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// Every side (no cap, avx2 cap, baseline cap): IsaTest in the kernels-avx512/-avx2/-baseline runs of
// tests/pom.xml; a request this CPU cannot honour skips that run (IsaRun).
Isa detect_isa() {
  __builtin_cpu_init();
  // The CPU's widest ISA: one side per machine (CPU facts, as above).
  Isa isa = cpu_has_avx512() ? Isa::avx512 : (cpu_has_avx2() ? Isa::avx2 : Isa::baseline);
  const char* cap = std::getenv("PEFT4J_CPU_ISA");
  if (cap != nullptr) {
    if (std::strcmp(cap, "baseline") == 0) isa = Isa::baseline;
    // isa != avx512 here only on a CPU without AVX-512 (a CPU fact).
    else if (std::strcmp(cap, "avx2") == 0 && isa == Isa::avx512) isa = Isa::avx2;
  }
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

// One case per build (the installed oneDNN's runtime: OpenMP for Debian's); the others are not
// reachable with the library this was linked against.
const char* dnnl_runtime_name(unsigned rt) {
  switch (rt) {
    case DNNL_RUNTIME_SEQ: return "sequential";
    case DNNL_RUNTIME_OMP: return "OpenMP";
    case DNNL_RUNTIME_TBB: return "TBB";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "other";
  }
}

std::string make_build_info() {
  const dnnl_version_t* v = dnnl_version();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "peft4j %s; gcc %s; oneDNN %d.%d.%d (%s runtime, built against %d.%d.%d); "
                "OpenMP libgomp %d; threads default %d; kernels %s",
                P4J_VERSION_STRING, __VERSION__, v->major, v->minor, v->patch,
                dnnl_runtime_name(v->cpu_runtime), DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR,
                DNNL_VERSION_PATCH, _OPENMP, omp_get_num_procs(), isa_name(active_isa()));
  return buf;
}

// ---- FMA ceiling: independent accumulator chains acc = acc·m + c, converging to 1 ----

constexpr int kAccZmm = 16;  // 32 zmm registers: 16 chains + 2 constants stay in registers
constexpr int kAccYmm = 12;  // 16 ymm registers
constexpr int kAccXmm = 12;

P4J_TARGET_AVX512 __attribute__((noinline)) float fma_chains_avx512(int64_t iters) {
  __m512 acc[kAccZmm];
  for (int j = 0; j < kAccZmm; ++j) acc[j] = _mm512_set1_ps(0.01f * static_cast<float>(j));
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
    // A constant trip count: gcov at -O0 counts an exit branch of this loop that cannot be taken.
#pragma GCC unroll 16
    for (int j = 0; j < kAccZmm; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, c);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAccZmm; ++j) s = _mm512_add_ps(s, acc[j]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  float total = 0.0f;
  for (float x : lanes) total += x;
  return total;
}

P4J_TARGET_AVX2 __attribute__((noinline)) float fma_chains_avx2(int64_t iters) {
  __m256 acc[kAccYmm];
  for (int j = 0; j < kAccYmm; ++j) acc[j] = _mm256_set1_ps(0.01f * static_cast<float>(j));
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
    // As in fma_chains_avx512: the constant-trip loop's extra exit branch cannot be taken.
#pragma GCC unroll 12
    for (int j = 0; j < kAccYmm; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kAccYmm; ++j) s = _mm256_add_ps(s, acc[j]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float total = 0.0f;
  for (float x : lanes) total += x;
  return total;
}

// SSE2 has no FMA: a multiply and an add per lane, the same 2 flops.
__attribute__((noinline)) float fma_chains_base(int64_t iters) {
  __m128 acc[kAccXmm];
  for (int j = 0; j < kAccXmm; ++j) acc[j] = _mm_set1_ps(0.01f * static_cast<float>(j));
  const __m128 m = _mm_set1_ps(0.999f), c = _mm_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAccXmm; ++j) acc[j] = _mm_add_ps(_mm_mul_ps(acc[j], m), c);
  }
  __m128 s = acc[0];
  for (int j = 1; j < kAccXmm; ++j) s = _mm_add_ps(s, acc[j]);
  float lanes[4];
  _mm_storeu_ps(lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

}  // namespace

// gcov counts the branches of the thread-safe initialisation guard of this static (and of
// p4j_build_info's): the side where another thread is initialising it at that moment is a race
// no test can force.
Isa active_isa() {
  static const Isa isa = detect_isa();
  return isa;
}

}  // namespace p4j

using namespace p4j;

extern "C" {

const char* p4j_last_error(void) { return g_error; }

int32_t p4j_version(int32_t* major, int32_t* minor, int32_t* patch) {
  return guarded("p4j_version", [&]() -> int32_t {
    P4J_TRY(check_ptr("p4j_version", "major", major, 1));
    P4J_TRY(check_ptr("p4j_version", "minor", minor, 1));
    P4J_TRY(check_ptr("p4j_version", "patch", patch, 1));
    int a = 0, b = 0, c = 0;
    // P4J_VERSION_STRING is CMake's project version: always three numbers; a guard, not reachable.
    if (std::sscanf(P4J_VERSION_STRING, "%d.%d.%d", &a, &b, &c) != 3)
      return fail(P4J_EINTERNAL, "p4j_version: malformed version string '%s'", P4J_VERSION_STRING);
    *major = a;
    *minor = b;
    *patch = c;
    return P4J_OK;
  });
}

const char* p4j_build_info(void) {
  try {
    static const std::string info = make_build_info();
    return info.c_str();
  } catch (...) {  // std::bad_alloc building a 300-byte string: not reachable in a test
    return "peft4j " P4J_VERSION_STRING;
  }
}

int32_t p4j_cpu_features(int32_t* features) {
  return guarded("p4j_cpu_features", [&]() -> int32_t {
    P4J_TRY(check_ptr("p4j_cpu_features", "features", features, 1));
    int32_t f = 0;
    Isa isa = active_isa();
    if (isa != Isa::baseline) f |= P4J_CPU_AVX2 | P4J_CPU_FMA;
    if (isa == Isa::avx512) {
      f |= P4J_CPU_AVX512F;
      // A CPU fact: each machine takes one side (IsaTest asserts it against /proc/cpuinfo).
      if (__builtin_cpu_supports("avx512bf16")) f |= P4J_CPU_AVX512BF16;
      if (__builtin_cpu_supports("avx512vbmi")) f |= P4J_CPU_AVX512VBMI;  // with VNNI: the NF4 GEMV tables path
      if (__builtin_cpu_supports("avx512vnni")) f |= P4J_CPU_AVX512VNNI;
    }
    *features = f;
    return P4J_OK;
  });
}

int32_t p4j_ctx_create(int32_t threads, p4j_ctx** out) {
  return guarded("p4j_ctx_create", [&]() -> int32_t {
    P4J_TRY(check_ptr("p4j_ctx_create", "out", out, 1));
    *out = nullptr;
    if (threads < 0) return fail(P4J_EINVAL, "p4j_ctx_create: threads (%d) < 0", threads);
    if (threads > 1024) return fail(P4J_EINVAL, "p4j_ctx_create: threads (%d) > 1024", threads);
    if (threads == 0) threads = omp_get_num_procs();  // NativeAbiTest#zeroThreadsMeansEveryCore
    if (threads < 1) threads = 1;  // guard: omp_get_num_procs() is >= 1, not reachable
    p4j_ctx* ctx = new (std::nothrow) p4j_ctx;
    // An 8-byte allocation failing: not reachable in a test.
    if (ctx == nullptr) return fail(P4J_ENOMEM, "p4j_ctx_create: out of memory");
    ctx->magic = kCtxMagic;
    ctx->threads = threads;
    *out = ctx;
    return P4J_OK;
  });
}

int32_t p4j_ctx_destroy(p4j_ctx* ctx) {
  return guarded("p4j_ctx_destroy", [&]() -> int32_t {
    if (ctx == nullptr) return P4J_OK;  // like free(NULL)
    P4J_TRY(check_ctx("p4j_ctx_destroy", ctx));
    ctx->magic = 0;
    delete ctx;  // ctx is not null here: gcov's branch for delete's null test is not reachable
    return P4J_OK;
  });
}

int32_t p4j_ctx_threads(const p4j_ctx* ctx, int32_t* threads) {
  return guarded("p4j_ctx_threads", [&]() -> int32_t {
    P4J_TRY(check_ctx("p4j_ctx_threads", ctx));
    P4J_TRY(check_ptr("p4j_ctx_threads", "threads", threads, 1));
    *threads = ctx->threads;
    return P4J_OK;
  });
}

int32_t p4j_mem_advise_huge(void* ptr, int64_t bytes) {
  return guarded("p4j_mem_advise_huge", [&]() -> int32_t {
    P4J_TRY(check_nonneg("p4j_mem_advise_huge", "bytes", bytes));
    P4J_TRY(check_ptr("p4j_mem_advise_huge", "ptr", ptr, bytes));
    if (bytes == 0) return P4J_OK;
    uintptr_t begin = reinterpret_cast<uintptr_t>(ptr);
    if (begin > UINTPTR_MAX - static_cast<uintptr_t>(bytes))  // NativeAbiTest "range wraps around"
      return fail(P4J_EINVAL, "p4j_mem_advise_huge: ptr (%p) + bytes (%lld) wraps around the address space", ptr,
                  static_cast<long long>(bytes));
    long page_l = sysconf(_SC_PAGESIZE);
    uintptr_t page = page_l > 0 ? static_cast<uintptr_t>(page_l) : 4096;  // sysconf cannot fail on Linux
    uintptr_t lo = (begin + page - 1) / page * page;
    uintptr_t hi = (begin + static_cast<uintptr_t>(bytes)) / page * page;
#ifdef MADV_HUGEPAGE
    // Advice only: kernels without transparent huge pages answer EINVAL, which is not an error here.
    // No whole page inside / some: NativeAbiTest#emptySizesWithNullPointersAreFine / Tensors >= 2 MiB.
    if (hi > lo) (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
    return P4J_OK;
  });
}

int32_t p4j_fma_peak(p4j_ctx* ctx, int64_t iters, int64_t* flops, float* sink) {
  return guarded("p4j_fma_peak", [&]() -> int32_t {
    const char* fn = "p4j_fma_peak";
    P4J_TRY(check_ctx(fn, ctx));
    P4J_TRY(check_nonneg(fn, "iters", iters));
    P4J_TRY(check_ptr(fn, "flops", flops, 1));
    P4J_TRY(check_ptr(fn, "sink", sink, 1));
    Isa isa = active_isa();
    // ISA switch: IsaTest#fmaPeakCountsTheFlopsOfTheActiveVariant, once per ISA run (tests/pom.xml).
    int64_t per_iter = isa == Isa::avx512 ? kAccZmm * 16 : (isa == Isa::avx2 ? kAccYmm * 8 : kAccXmm * 4);
    per_iter *= 2 * static_cast<int64_t>(ctx->threads);
    if (iters > INT64_MAX / per_iter)  // NativeAbiTest "iters overflows the flop count"
      return fail(P4J_EINVAL, "p4j_fma_peak: iters (%lld) makes the flop count overflow int64",
                  static_cast<long long>(iters));
    float sums[1024] = {};
    int team = 1;
    int nt = ctx->threads;
#pragma omp parallel num_threads(nt)
    {
      int id = omp_get_thread_num();
      if (id == 0) team = omp_get_num_threads();
      sums[id] = isa == Isa::avx512 ? fma_chains_avx512(iters)
                                    : (isa == Isa::avx2 ? fma_chains_avx2(iters) : fma_chains_base(iters));
    }
    float total = 0.0f;
    for (int i = 0; i < team; ++i) total += sums[i];
    // The runtime may grant fewer threads than asked (OMP_THREAD_LIMIT): count what ran.
    *flops = iters * (per_iter / ctx->threads * team);
    *sink = total;
    return P4J_OK;
  });
}

}  // extern "C"
