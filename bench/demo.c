/* demo.c: what `make demo` runs.
 *
 * Loads a library pattern, JIT-compiles it (timed), runs it on L tokens
 * (median of several runs), checks the JIT's output against the reference
 * interpreter on the last rows of every head (a bottom-right slice has the
 * same absolute positions), and prints time and GFLOP/s counted on the
 * pattern's nonzeros (4 * nnz * D).
 *
 *   demo [FILE [L [H [D [threads]]]]]   default patterns/longformer.pat 4096 8 64 0
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "frontend.h"
#include "interp.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 42;
static float randn(void) {   /* splitmix64 -> Box-Muller, unit variance */
  uint64_t a = ar_mix(rng_state++), b = ar_mix(rng_state++);
  double u = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
  double v = (double)(b >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "patterns/longformer.pat";
  int64_t L = argc > 2 ? atoll(argv[2]) : 4096;
  int64_t H = argc > 3 ? atoll(argv[3]) : 8;
  int64_t D = argc > 4 ? atoll(argv[4]) : 64;
  int threads = argc > 5 ? atoi(argv[5]) : 0;
  const int64_t slice = L < 256 ? L : 256;
  const int repeats = 5;
  char err[512] = "";

  diag *dg = diag_new();
  arena *ar = arena_new();
  fe_module *m = fe_load_file(dg, ar, path);
  ir_program *p = m ? fe_instantiate(dg, m, NULL, NULL, 0) : NULL;
  if (!p) {
    fputs(diag_text(dg), stderr);
    return 1;
  }
  if (p->n_inputs || p->n_externs) {
    fprintf(stderr, "demo: %s needs input arrays or externs; pick another\n", path);
    return 1;
  }
  printf("pattern   %s (%s)\n", p->name, path);
  printf("problem   B=1 H=%lld L=%lld D=%lld fp32, threads=%d (0 = all)\n",
         (long long)H, (long long)L, (long long)D, threads);

  int64_t n = H * L * D;
  float *q = malloc(sizeof(float) * (size_t)n), *k = malloc(sizeof(float) * (size_t)n);
  float *v = malloc(sizeof(float) * (size_t)n), *o = malloc(sizeof(float) * (size_t)n);
  float *lse = malloc(sizeof(float) * (size_t)(H * L));
  for (int64_t x = 0; x < n; x++) q[x] = randn(), k[x] = randn(), v[x] = randn();
  int64_t *rt = calloc((size_t)p->n_runtime + 1, sizeof(int64_t));
  for (int r = 0; r < p->n_runtime; r++) rt[r] = p->runtime[r].deflt;

  rt_args a = {.B = 1, .H = H, .Hkv = H, .Lq = L, .Lk = L, .D = D,
               .q = {q, 0, 0, 0}, .k = {k, 0, 0, 0}, .v = {v, 0, 0, 0},
               .o = {o, 0, 0, 0}, .lse = lse, .lse_sb = H * L, .lse_sh = L,
               .runtime = rt, .threads = threads};
  rt_tensor_strides(&a.q, 0, H, L, D);
  rt_tensor_strides(&a.k, 0, H, L, D);
  rt_tensor_strides(&a.v, 0, H, L, D);
  rt_tensor_strides(&a.o, 0, H, L, D);

  backend_opts bo = {.D = D, .threads = threads};
  double t0 = now();
  void *kern = backend_jit.compile(p, &bo, err, sizeof err);
  double t_compile = now() - t0;
  if (!kern) {
    fprintf(stderr, "demo: JIT failed: %s\n", err);
    return 1;
  }
  printf("compile   %.1f ms (LLVM ORC JIT, O3, host CPU)\n", 1e3 * t_compile);

  double times[16];
  for (int r = 0; r < repeats; r++) {
    t0 = now();
    if (backend_jit.run(kern, &a, err, sizeof err) != RT_OK) {
      fprintf(stderr, "demo: run failed: %s\n", err);
      return 1;
    }
    times[r] = now() - t0;
  }
  qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
  double t_run = times[repeats / 2];

  /* nonzeros, from the interpreter's mask (for the data-dependent topk the
   * mask needs q and k, which a carries) */
  uint8_t *row = malloc((size_t)L);
  int64_t nnz = 0;
  for (int64_t h = 0; h < H; h++)
    for (int64_t r = 0; r < L; r++) {
      if (interp_mask_row(p, &a, 0, h, r, row, err, sizeof err) != RT_OK) {
        fprintf(stderr, "demo: mask failed: %s\n", err);
        return 1;
      }
      for (int64_t j = 0; j < L; j++) nnz += row[j];
    }
  double gflops = 4.0 * (double)nnz * (double)D / t_run / 1e9;
  printf("density   %.2f%% (%lld allowed pairs)\n",
         100.0 * (double)nnz / ((double)H * (double)L * (double)L), (long long)nnz);
  printf("run       %.2f ms median of %d, %.1f GFLOP/s on nonzeros\n",
         1e3 * t_run, repeats, gflops);

  /* the interpreter on the last `slice` rows of every head */
  int64_t off = L - slice;
  rt_args s = a;
  s.Lq = slice;
  s.q.data = q + off * D;
  float *os = malloc(sizeof(float) * (size_t)(H * slice * D));
  float *ls = malloc(sizeof(float) * (size_t)(H * slice));
  s.o = (rt_tensor){os, H * slice * D, slice * D, D};
  s.lse = ls;
  s.lse_sb = H * slice;
  s.lse_sh = slice;
  t0 = now();
  if (interp_attention(p, &s, err, sizeof err) != RT_OK) {
    fprintf(stderr, "demo: interpreter failed: %s\n", err);
    return 1;
  }
  double t_interp = now() - t0;
  double max_err = 0;
  int64_t lse_mismatch = 0;
  for (int64_t h = 0; h < H; h++)
    for (int64_t r = 0; r < slice; r++) {
      const float *x = o + h * L * D + (off + r) * D, *y = os + h * slice * D + r * D;
      for (int64_t d = 0; d < D; d++) {
        double e = fabs((double)x[d] - (double)y[d]);
        if (e > max_err || e != e) max_err = e;
      }
      if (isfinite(lse[h * L + off + r]) != isfinite(ls[h * slice + r])) lse_mismatch++;
    }
  bool ok = max_err <= 2e-5 && lse_mismatch == 0;
  printf("check     last %lld rows of each head vs the interpreter: max |err| %.2e, "
         "empty-row mismatches %lld: %s\n",
         (long long)slice, max_err, (long long)lse_mismatch, ok ? "OK" : "FAILED");
  printf("interp    %.0f ms for those %lld rows x %lld heads (%.0fx the JIT per row)\n",
         1e3 * t_interp, (long long)slice, (long long)H,
         (t_interp / (double)slice) / (t_run / (double)L));

  backend_jit.free(kern);
  free(q), free(k), free(v), free(o), free(lse), free(os), free(ls), free(rt), free(row);
  arena_free(ar);
  diag_free(dg);
  return ok ? 0 : 1;
}
