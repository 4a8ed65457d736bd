/* tests/perf/gqa.c: the GQA prefill benchmark (build/bench-gqa, run by
 * bench/run.sh; in tests/perf/ as it links the internal library to switch
 * the grouping off through kr_gqa_group): H = 32 query heads on Hkv = 8,
 * fp32, 1 thread, prefill (Lq = Lk = L), through the public API (JIT):
 * each key tile taken by the query heads of a subgroup in turn (grouped,
 * the default) against one query head a task (the order before), runs
 * alternating, medians.
 *
 * Prints a markdown section on stdout.  Usage: bench-gqa [REPEATS].
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernel_rt.h"
#include "spat.h"

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *rnd(size_t n) {
  float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
  uint64_t s = 7 + n;
  for (size_t x = 0; x < n; x++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[x] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
  }
  return p;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct gc {
  const char *name, *src;
  int64_t Lq, Lk, D;
} gc;

static int bench(spat_ctx *ctx, const gc *c, int reps) {
  spat_pattern *p = NULL;
  spat_kernel *k = NULL;
  spat_compile_options o = {c->D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 0,
                            SPAT_DTYPE_F32};
  if (spat_pattern_parse_string(ctx, "gqa.pat", c->src, NULL, &p) != SPAT_OK ||
      spat_compile(p, &o, &k) != SPAT_OK) {
    fprintf(stderr, "bench-gqa: %s\n", spat_ctx_error(ctx));
    spat_pattern_free(p);
    return 1;
  }
  spat_pattern_free(p);
  int64_t H = 32, Hkv = 8;
  size_t nq = (size_t)(H * c->Lq * c->D), nk = (size_t)(Hkv * c->Lk * c->D);
  float *q = rnd(nq), *kk = rnd(nk), *v = rnd(nk), *out = rnd(nq);
  spat_tensors t = {1, H, Hkv, c->Lq, c->Lk, q, kk, v, out, NULL, 0, NULL};
  double ms[2][32], cpu[2][32];
  if (reps > 32) reps = 32;
  spat_kernel_call(k, &t, NULL, 0); /* warm-up */
  for (int r = 0; r < reps; r++)
    for (int g = 0; g < 2; g++) {
      kr_gqa_group = !g;
      double t0 = clock_s(CLOCK_MONOTONIC);
      double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
      spat_kernel_call(k, &t, NULL, 0);
      cpu[g][r] = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3;
      ms[g][r] = (clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
    }
  kr_gqa_group = 1;
  for (int g = 0; g < 2; g++) {
    qsort(ms[g], (size_t)reps, sizeof **ms, cmpd);
    qsort(cpu[g], (size_t)reps, sizeof **cpu, cmpd);
  }
  double a = ms[0][reps / 2], b = ms[1][reps / 2];
  double ca = cpu[0][reps / 2], cb = cpu[1][reps / 2];
  printf("| %s | %lld | %lld | %lld | %.1f | %.1f | %.2fx | %.1f | %.1f | "
         "%.2fx |\n", c->name, (long long)c->Lq, (long long)c->Lk,
         (long long)c->D, a, b, b / a, ca, cb,
         cb / ca);
  free(q), free(kk), free(v), free(out);
  spat_kernel_free(k);
  return 0;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  if (reps < 1) reps = 1;
  static const gc cases[] = {
      {"window(256)", "pattern w = window(256);", 4096, 4096, 64},
      {"causal window(512, 0)", "pattern w = window(512, 0);", 4096, 4096,
       128},
      {"causal", "pattern c = causal;", 4096, 4096, 128},
      /* a chunk of prefill against a long cache: a KV head's keys (32 MB
       * of K and V) no longer stay in cache from one query head to the next */
      {"causal, chunked prefill", "pattern c = causal;", 128, 32768, 128},
  };
  spat_ctx *ctx = spat_ctx_new();
  printf("## GQA prefill (issue 12), measured in one run of bench-gqa\n\n"
         "H = 32 query heads on Hkv = 8, B = 1, fp32, 1 thread, prefill "
         "path; grouped: the query heads sharing a KV head take "
         "each key tile in turn (subgroups of up to %d heads, as many as "
         "keep their Q^T and accumulators within %d KB); one head a task: "
         "the order before (kr_gqa_group = 0).  Runs alternating, medians "
         "of %d, wall and process CPU time (the latter less moved by other "
         "processes on a loaded machine).\n\n| pattern | Lq | Lk | D | grouped "
         "ms | one head a task ms | speedup | grouped CPU ms | one head CPU "
         "ms | CPU speedup |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: "
         "| ---: | ---: | ---: |\n",
         KR_GQA_MAX, KR_GQA_BYTES / 1024, reps);
  int rc = 0;
  for (size_t x = 0; x < sizeof cases / sizeof *cases; x++)
    rc |= bench(ctx, &cases[x], reps);
  spat_ctx_free(ctx);
  return rc;
}
