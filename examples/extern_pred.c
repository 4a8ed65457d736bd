/* extern_pred.c: a pattern that calls a C function.
 *
 * `extern fn name(int, int) -> bool;` declares a predicate the pattern may
 * call inside where(...); the program registers a C function
 * bool name(int64_t, int64_t) under that name before compiling.  Here keys
 * are allowed when they share a 16-token bucket with the query or sit on a
 * power-of-two distance before it.  Checked against the interpreter.  Build:
 *     cc -std=c11 extern_pred.c $(pkg-config --cflags --libs spat) -lm
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "spat.h"

static const char *const source =
    "extern fn same_bucket(int, int) -> bool;\n"
    "extern fn pow2_back(int, int) -> bool;\n"
    "pattern logsparse = causal & where(same_bucket(i, j) || pow2_back(i, "
    "j));\n";

/* Pure and thread-safe: kernels call them from their worker threads. */
static bool same_bucket(int64_t i, int64_t j) {
  return i / 16 == j / 16;
}
static bool pow2_back(int64_t i, int64_t j) {
  int64_t d = i - j;
  return d > 0 && (d & (d - 1)) == 0;
}

static int run(spat_ctx *ctx, spat_pattern *pat, spat_backend backend,
               const spat_tensors *t) {
  spat_compile_options opts = {
      .D = 32, .layout = SPAT_LAYOUT_BLHD, .threads = 2, .backend = backend};
  spat_kernel *kernel = NULL;
  spat_status st = spat_compile(pat, &opts, &kernel);
  if (st == SPAT_OK) st = spat_kernel_run(kernel, t);
  if (st != SPAT_OK)
    fprintf(stderr, "%s: %s\n", spat_status_name(st), spat_ctx_error(ctx));
  spat_kernel_free(kernel);
  return st == SPAT_OK ? 0 : -1;
}

int main(void) {
  enum { B = 2, H = 2, L = 200, D = 32 };
  size_t n = (size_t)B * L * H * D;
  float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k),
        *v = malloc(n * sizeof *v), *o = malloc(n * sizeof *o),
        *o_ref = malloc(n * sizeof *o_ref);
  if (!q || !k || !v || !o || !o_ref) return 1;
  srand(7);
  for (size_t x = 0; x < n; x++) {
    q[x] = (float)rand() / RAND_MAX - 0.5f;
    k[x] = (float)rand() / RAND_MAX - 0.5f;
    v[x] = (float)rand() / RAND_MAX - 0.5f;
  }

  spat_ctx *ctx = spat_ctx_new();
  spat_pattern *pat = NULL;
  if (ctx == NULL || spat_pattern_parse_string(ctx, "logsparse.pat", source,
                                               NULL, &pat) != SPAT_OK) {
    fputs(ctx ? spat_ctx_last_diagnostics(ctx) : "out of memory\n", stderr);
    return 1;
  }

  /* Compiling before registering is an error that names the function. */
  spat_compile_options opts = {.D = D, .backend = SPAT_BACKEND_JIT};
  spat_kernel *kernel = NULL;
  if (spat_compile(pat, &opts, &kernel) != SPAT_EINVAL) return 1;
  printf("unregistered: %s\n", spat_ctx_error(ctx));

  if (spat_ctx_register_fn(ctx, "same_bucket", SPAT_FN(same_bucket), 2) ||
      spat_ctx_register_fn(ctx, "pow2_back", SPAT_FN(pow2_back), 2)) {
    fprintf(stderr, "%s\n", spat_ctx_error(ctx));
    return 1;
  }

  spat_tensors t = {.B = B,
                    .H = H,
                    .Lq = L,
                    .Lk = L, /* Hkv 0: H */
                    .q = q,
                    .k = k,
                    .v = v,
                    .o = o};
  int rc = run(ctx, pat, SPAT_BACKEND_JIT, &t);
  t.o = o_ref;
  if (rc == 0) rc = run(ctx, pat, SPAT_BACKEND_INTERP, &t);
  if (rc == 0) {
    double worst = 0;
    for (size_t x = 0; x < n; x++)
      worst = fmax(worst, fabs((double)o[x] - o_ref[x]));
    printf("%s: max |jit - interp| = %.2e\n", spat_pattern_name(pat), worst);
    rc = worst < 1e-4 ? 0 : 1;
    puts(rc == 0 ? "ok" : "MISMATCH");
  }
  spat_pattern_free(pat);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o), free(o_ref);
  return rc;
}
