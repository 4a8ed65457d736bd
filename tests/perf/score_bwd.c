/* tests/perf/score_bwd.c: the backward pass with `with score` against the
 * same window without (build/bench-score-bwd; issue 11): window(256, 256),
 * ALiBi (s - slope[h] |i - j|) and Gemma 2's softcap (30 tanh(s / 30)) of
 * bench/window.pat, L = 4096, D = 64, H = 1, 1 thread, JIT, float32.  The
 * three kernels' backward calls are interleaved, round by round, in this
 * one process (a loaded machine slows all three alike), and each one's
 * median is printed with its ratio to the plain window's; ALiBi also with
 * the slope's gradient (spat_grads.dinputs).  Usage: bench-score-bwd
 * [ROUNDS] (default 9).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "spat.h"

enum { L = 4096, D = 64, NK = 4 };

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 9;
  if (rounds < 1 || rounds > 1000) rounds = 9;
  static const char *const names[NK] = {"window_only", "window_alibi", "window_softcap",
                                        "window_alibi"};
  static const char *const what[NK] = {"window(256)", "+ ALiBi", "+ softcap",
                                       "+ ALiBi, with d slope"};
  spat_ctx *c = spat_ctx_new();
  size_t n = (size_t)L * D;
  float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *dout = malloc(n * 4);
  float *o = malloc(n * 4), *lse = malloc(L * 4), *g[3] = {malloc(n * 4), malloc(n * 4), malloc(n * 4)};
  unsigned s = 1;
  for (size_t x = 0; x < n; x++) {
    s = s * 1103515245u + 12345u, q[x] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    s = s * 1103515245u + 12345u, k[x] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    s = s * 1103515245u + 12345u, v[x] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    dout[x] = v[(x * 7) % n];
  }
  float slope = 0.0625f, dslope = 0;
  float *din[1] = {&dslope};
  spat_kernel *ker[NK];
  spat_value args[NK];
  size_t nargs[NK];
  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 0, SPAT_DTYPE_F32};
  for (int x = 0; x < NK; x++) {
    spat_pattern *p = NULL;
    if (spat_pattern_parse_file(c, "bench/window.pat", names[x], &p) != SPAT_OK ||
        spat_compile(p, &opt, &ker[x]) != SPAT_OK) {
      fprintf(stderr, "bench-score-bwd: %s\n", spat_ctx_error(c));
      return 1;
    }
    spat_pattern_free(p);
    nargs[x] = x == 1 || x == 3;
    args[x] = spat_input_f32(&slope);
  }
  spat_tensors t = {1, 1, 1, L, L, q, k, v, o, lse, 0, NULL};
  double *ms = malloc(sizeof *ms * (size_t)(NK * rounds));
  for (int r = -1; r < rounds; r++) /* round -1: warm-up (and first compiles) */
    for (int x = 0; x < NK; x++) {
      spat_grads gr = {dout, NULL, g[0], g[1], g[2], x == 3 ? din : NULL};
      if (spat_kernel_call(ker[x], &t, nargs[x] ? &args[x] : NULL, nargs[x]) != SPAT_OK) return 2;
      double t0 = now_ms();
      if (spat_kernel_backward(ker[x], &t, &gr, nargs[x] ? &args[x] : NULL, nargs[x]) != SPAT_OK) {
        fprintf(stderr, "bench-score-bwd: %s\n", spat_ctx_error(c));
        return 3;
      }
      if (r >= 0) ms[x * rounds + r] = now_ms() - t0;
    }
  printf("backward, L = %d, D = %d, H = 1, 1 thread, median of %d interleaved rounds:\n", L, D,
         rounds);
  double base = 0;
  for (int x = 0; x < NK; x++) {
    qsort(ms + x * rounds, (size_t)rounds, sizeof *ms, cmp);
    double med = ms[x * rounds + rounds / 2];
    if (x == 0) base = med;
    printf("  %-24s %9.1f ms  %.2fx\n", what[x], med, med / base);
  }
  printf("  (d slope = %g)\n", dslope);
  for (int x = 0; x < NK; x++) spat_kernel_free(ker[x]);
  spat_ctx_free(c);
  free(ms), free(q), free(k), free(v), free(dout), free(o), free(lse);
  free(g[0]), free(g[1]), free(g[2]);
  return 0;
}
