/* compile_times.c: compile (and optionally run) one pattern through the
 * public API only (include/spat.h), for bench/compile.sh.
 *
 *   compile-times FILE [-p NAME] [-d D] [-n N] [--cache] [--run L] [--runs R]
 *
 * Compiles the pattern N times (default 1) in this process with the disk
 * cache on or off, then, with --run L, runs the last kernel R times
 * (default 9) on L tokens, 4 heads, 1 thread (arguments: runtime scalars
 * at their defaults or 1, inputs all zero).  Prints one line:
 *   compile_ms C1 C2 ... from_cache F1 F2 ... compile_cpu_ms P1 P2 ...
 *   run_min_ms M run_median_ms X run_cpu_min_ms Q
 * (P, Q: process CPU time: on a busy machine closer to what a quiet one
 * would show than wall time; the compile runs on the calling thread)
 * The first compile of a fresh process is the cold one; with --cache it
 * reads and fills $XDG_CACHE_HOME/spatc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spat.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static int usage(void) {
  fprintf(stderr, "usage: compile-times FILE [-p NAME] [-d D] [-n N] "
                  "[--cache] [--run L] [--runs R]\n");
  return 2;
}

/* The signature's arguments: scalars at their default (else 1), inputs 0. */
static spat_value *default_args(const spat_signature *s, int64_t L) {
  spat_value *v = calloc(s->n_args + 1, sizeof *v);
  int32_t *zeros = calloc((size_t)L, sizeof *zeros);
  if (!v || !zeros) exit(1);
  int used = 0;
  for (size_t a = 0; a < s->n_args; a++)
    v[a] = s->args[a].kind == SPAT_KIND_SCALAR
               ? spat_scalar(s->args[a].has_default ? s->args[a].default_value : 1)
               : (used = 1, spat_input(zeros));
  if (!used) free(zeros);
  return v;
}

static float *randoms(size_t n, unsigned seed) {
  float *x = malloc(n * sizeof *x);
  if (!x) exit(1);
  for (size_t t = 0; t < n; t++) {
    seed = seed * 1103515245u + 12345u;
    x[t] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
  return x;
}

int main(int argc, char **argv) {
  const char *file = NULL, *name = NULL;
  int64_t D = 64, L = 0;
  int n = 1, runs = 9, cache = 0;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "-p") && a + 1 < argc) name = argv[++a];
    else if (!strcmp(argv[a], "-d") && a + 1 < argc) D = atoll(argv[++a]);
    else if (!strcmp(argv[a], "-n") && a + 1 < argc) n = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--cache")) cache = 1;
    else if (!strcmp(argv[a], "--run") && a + 1 < argc) L = atoll(argv[++a]);
    else if (!strcmp(argv[a], "--runs") && a + 1 < argc) runs = atoi(argv[++a]);
    else if (argv[a][0] != '-' && !file) file = argv[a];
    else return usage();
  }
  if (!file || n < 1 || n > 1000 || runs < 1 || runs > 1000) return usage();
  spat_ctx *ctx = spat_ctx_new();
  spat_pattern *p = NULL;
  if (!ctx || spat_pattern_parse_file(ctx, file, name, &p) != SPAT_OK) {
    fprintf(stderr, "compile-times: %s\n", ctx ? spat_ctx_error(ctx) : "no memory");
    return 1;
  }
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, cache};
  spat_kernel *k = NULL;
  double *ms = calloc((size_t)n, sizeof *ms), *cpu = calloc((size_t)n, sizeof *cpu);
  int *hit = calloc((size_t)n, sizeof *hit);
  if (!ms || !cpu || !hit) return 1;
  for (int t = 0; t < n; t++) {
    spat_kernel_free(k);
    double t0 = now_ms(), c0 = cpu_ms();
    if (spat_compile(p, &o, &k) != SPAT_OK) {
      fprintf(stderr, "compile-times: %s\n", spat_ctx_error(ctx));
      return 1;
    }
    ms[t] = now_ms() - t0;
    cpu[t] = cpu_ms() - c0;
    hit[t] = spat_kernel_signature(k)->from_cache;
  }
  printf("compile_ms");
  for (int t = 0; t < n; t++) printf(" %.3f", ms[t]);
  printf(" from_cache");
  for (int t = 0; t < n; t++) printf(" %d", hit[t]);
  printf(" compile_cpu_ms");
  for (int t = 0; t < n; t++) printf(" %.3f", cpu[t]);
  if (L > 0) {
    int64_t H = 4;
    size_t nq = (size_t)(H * L * D);
    float *q = randoms(nq, 1), *kk = randoms(nq, 2), *v = randoms(nq, 3);
    float *out = malloc(nq * sizeof *out);
    double *tr = calloc((size_t)runs, sizeof *tr);
    double *tcpu = calloc((size_t)runs, sizeof *tcpu);
    if (!out || !tr || !tcpu) return 1;
    spat_tensors ts = {1, H, H, L, L, q, kk, v, out, NULL, 0, NULL};
    const spat_signature *s = spat_kernel_signature(k);
    spat_value *args = default_args(s, L);
    for (int t = -1; t < runs; t++) {
      double t0 = now_ms(), c0 = cpu_ms();
      if (spat_kernel_call(k, &ts, args, s->n_args) != SPAT_OK) {
        fprintf(stderr, "compile-times: %s\n", spat_ctx_error(ctx));
        return 1;
      }
      if (t >= 0) tr[t] = now_ms() - t0, tcpu[t] = cpu_ms() - c0;
    }
    qsort(tr, (size_t)runs, sizeof *tr, cmp);
    qsort(tcpu, (size_t)runs, sizeof *tcpu, cmp);
    printf(" run_min_ms %.3f run_median_ms %.3f run_cpu_min_ms %.3f", tr[0],
           tr[runs / 2], tcpu[0]);
    for (size_t a = 0; a < s->n_args; a++)
      if (args[a].kind == SPAT_KIND_INPUT) {
        free((void *)args[a].input); /* one zeros array for all */
        break;
      }
    free(args), free(tr), free(tcpu), free(out), free(q), free(kk), free(v);
  }
  printf("\n");
  free(ms), free(cpu), free(hit);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(ctx);
  return 0;
}
