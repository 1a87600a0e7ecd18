/* p4j_sgemm_bench M N K REPS: times oneDNN's row-major sgemm C[M,N] = A[M,K]·B[K,N] called
 * straight from C, the baseline the Java benchmarks compare their FFM path with.
 * Prints one line: "sgemm_c M N K gflops=<median over REPS timed calls>" (after two warm-up
 * calls). Threads: the OpenMP default (OMP_NUM_THREADS). */
#include <dnnl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static int parse_pos(const char* s, long long* out) {
  char* end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v <= 0) return -1;
  *out = v;
  return 0;
}

static float* alloc_floats(long long count) {
  size_t bytes = ((size_t)count * sizeof(float) + 4095) / 4096 * 4096;
  void* p = NULL;
  if (posix_memalign(&p, 2u << 20, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return (float*)p;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  long long m, n, k, reps;
  if (argc != 5 || parse_pos(argv[1], &m) || parse_pos(argv[2], &n) || parse_pos(argv[3], &k) ||
      parse_pos(argv[4], &reps)) {
    fprintf(stderr, "usage: p4j_sgemm_bench M N K REPS (all positive integers)\n");
    return 2;
  }
  if (m > (1LL << 40) / k || k > (1LL << 40) / n || m > (1LL << 40) / n) {
    fprintf(stderr, "p4j_sgemm_bench: matrices too large\n");
    return 2;
  }
  float* a = alloc_floats(m * k);
  float* b = alloc_floats(k * n);
  float* c = alloc_floats(m * n);
  double* times = (double*)malloc((size_t)reps * sizeof(double));
  if (a == NULL || b == NULL || c == NULL || times == NULL) {
    fprintf(stderr, "p4j_sgemm_bench: out of memory\n");
    return 1;
  }
  /* Small deterministic values; the numbers do not matter, only that they are normal floats. */
  uint32_t state = 12345u;
  for (long long i = 0; i < m * k; ++i) {
    state = state * 1664525u + 1013904223u;
    a[i] = (float)(state >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  for (long long i = 0; i < k * n; ++i) {
    state = state * 1664525u + 1013904223u;
    b[i] = (float)(state >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  memset(c, 0, (size_t)(m * n) * sizeof(float));

  for (int w = 0; w < 2; ++w) {
    dnnl_status_t st = dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    if (st != dnnl_success) {
      fprintf(stderr, "p4j_sgemm_bench: dnnl_sgemm failed with status %d\n", (int)st);
      return 1;
    }
  }
  for (long long r = 0; r < reps; ++r) {
    double t0 = now_s();
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    times[r] = now_s() - t0;
  }
  qsort(times, (size_t)reps, sizeof(double), cmp_double);
  double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
  double gflops = 2.0 * (double)m * (double)n * (double)k / median * 1e-9;
  printf("sgemm_c %lld %lld %lld gflops=%.1f\n", m, n, k, gflops);
  free(times);
  free(a);
  free(b);
  free(c);
  return 0;
}
