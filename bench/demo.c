/* demo.c: what `make demo` runs.
 *
 * Through the public API only (spat.h), as a user program would: loads a
 * library pattern, JIT-compiles it (timed), runs it on L tokens
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

#include "spat.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The spec's splitmix64 mix. */
static uint64_t mix(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t rng_state = 42;
static float randn(void) {   /* splitmix64 -> Box-Muller, unit variance */
  uint64_t a = mix(rng_state++), b = mix(rng_state++);
  double u = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
  double v = (double)(b >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static int failed(spat_ctx *ctx, const char *what, spat_status st) {
  fprintf(stderr, "demo: %s failed: %s: %s\n%s", what, spat_status_name(st),
          spat_ctx_error(ctx), spat_ctx_last_diagnostics(ctx));
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "patterns/longformer.pat";
  int64_t L = argc > 2 ? atoll(argv[2]) : 4096;
  int64_t H = argc > 3 ? atoll(argv[3]) : 8;
  int64_t D = argc > 4 ? atoll(argv[4]) : 64;
  int threads = argc > 5 ? atoi(argv[5]) : 0;
  const int64_t slice = L < 256 ? L : 256;
  const int repeats = 5;

  spat_ctx *ctx = spat_ctx_new();
  spat_pattern *pat = NULL;
  spat_pattern_info info;
  if (!ctx) return 1;
  spat_status st = spat_pattern_parse_file(ctx, path, NULL, &pat);
  if (st == SPAT_OK) st = spat_pattern_describe(pat, &info);
  if (st != SPAT_OK) return failed(ctx, "loading the pattern", st);
  if (info.n_externs) {
    fprintf(stderr, "demo: %s needs input arrays or externs; pick another\n",
            path);
    return 1;
  }
  /* arguments: runtime scalars at their defaults (0 without), no input
   * arrays */
  spat_value *args = calloc(info.n_args + 1, sizeof *args);
  for (size_t x = 0; x < info.n_args; x++) {
    if (info.args[x].kind == SPAT_KIND_INPUT) {
      fprintf(stderr, "demo: %s needs input arrays or externs; pick another\n",
              path);
      return 1;
    }
    args[x] = spat_scalar(info.args[x].default_value);
  }
  printf("pattern   %s (%s)\n", info.name, path);
  printf("problem   B=1 H=%lld L=%lld D=%lld fp32, threads=%d (0 = all)\n",
         (long long)H, (long long)L, (long long)D, threads);

  int64_t n = H * L * D;
  float *q = malloc(sizeof(float) * (size_t)n), *k = malloc(sizeof(float) * (size_t)n);
  float *v = malloc(sizeof(float) * (size_t)n), *o = malloc(sizeof(float) * (size_t)n);
  float *lse = malloc(sizeof(float) * (size_t)(H * L));
  for (int64_t x = 0; x < n; x++) q[x] = randn(), k[x] = randn(), v[x] = randn();
  spat_tensors t = {.B = 1, .H = H, .Hkv = H, .Lq = L, .Lk = L,
                    .q = q, .k = k, .v = v, .o = o, .lse = lse};

  spat_compile_options co = {.D = D, .layout = SPAT_LAYOUT_BHLD,
                             .threads = threads, .backend = SPAT_BACKEND_JIT};
  spat_kernel *jit = NULL, *ref = NULL;
  double t0 = now();
  st = spat_compile(pat, &co, &jit);
  double t_compile = now() - t0;
  if (st != SPAT_OK) return failed(ctx, "JIT", st);
  printf("compile   %.1f ms (LLVM ORC JIT, O3, host CPU)\n", 1e3 * t_compile);

  double times[16];
  for (int r = 0; r < repeats; r++) {
    t0 = now();
    if ((st = spat_kernel_call(jit, &t, args, info.n_args)) != SPAT_OK)
      return failed(ctx, "run", st);
    times[r] = now() - t0;
  }
  qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
  double t_run = times[repeats / 2];

  /* nonzeros, from the interpreter's mask (for the data-dependent topk the
   * mask needs q and k, which t carries) */
  int64_t *counts = malloc(sizeof *counts * (size_t)L);
  int64_t nnz = 0;
  for (int64_t h = 0; h < H; h++) {
    st = spat_kernel_mask_count(jit, &t, args, info.n_args, 0, h, 0, L, counts);
    if (st != SPAT_OK) return failed(ctx, "mask", st);
    for (int64_t r = 0; r < L; r++) nnz += counts[r];
  }
  double gflops = 4.0 * (double)nnz * (double)D / t_run / 1e9;
  printf("density   %.2f%% (%lld allowed pairs)\n",
         100.0 * (double)nnz / ((double)H * (double)L * (double)L), (long long)nnz);
  printf("run       %.2f ms median of %d, %.1f GFLOP/s on nonzeros\n",
         1e3 * t_run, repeats, gflops);

  /* the interpreter on the last `slice` rows of every head (a bottom-right
   * slice has the same absolute positions): those rows of q, contiguous */
  int64_t off = L - slice;
  float *qs = malloc(sizeof(float) * (size_t)(H * slice * D));
  float *os = malloc(sizeof(float) * (size_t)(H * slice * D));
  float *ls = malloc(sizeof(float) * (size_t)(H * slice));
  for (int64_t h = 0; h < H; h++)
    memcpy(qs + h * slice * D, q + (h * L + off) * D,
           sizeof(float) * (size_t)(slice * D));
  spat_tensors s = t;
  s.Lq = slice;
  s.q = qs;
  s.o = os;
  s.lse = ls;
  co.backend = SPAT_BACKEND_INTERP;
  if ((st = spat_compile(pat, &co, &ref)) != SPAT_OK)
    return failed(ctx, "interpreter", st);
  t0 = now();
  if ((st = spat_kernel_call(ref, &s, args, info.n_args)) != SPAT_OK)
    return failed(ctx, "interpreter", st);
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

  spat_kernel_free(jit);
  spat_kernel_free(ref);
  spat_pattern_free(pat);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o), free(lse), free(qs), free(os), free(ls);
  free(counts), free(args);
  return ok ? 0 : 1;
}
