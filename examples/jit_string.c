/* jit_string.c: JIT-compile a pattern given as a string and run it.
 *
 * Longformer-style attention (a sliding window plus global tokens) on random
 * q, k, v; the result is checked against the reference interpreter through
 * the same API.  Build:
 *     cc -std=c11 jit_string.c $(pkg-config --cflags --libs spat) -lm
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "spat.h"

static const char *const source =
    "# a sliding window of w keys each side, plus g global tokens\n"
    "pattern longformer(w = 512, g = 1) =\n"
    "    window(w / 2) | global(0 .. g);\n";

/* Compiles the pattern for the backend and runs it into o. */
static int attend(spat_ctx *ctx, spat_pattern *pat, spat_backend backend,
                  const spat_tensors *t) {
  spat_compile_options opts = {
      .D = 64, .layout = SPAT_LAYOUT_BHLD, .threads = 0, .backend = backend};
  spat_kernel *kernel = NULL;
  spat_status st = spat_compile(pat, &opts, &kernel);
  if (st != SPAT_OK) {
    fprintf(stderr, "compile: %s: %s\n", spat_status_name(st),
            spat_ctx_error(ctx));
    return -1;
  }
  st = spat_kernel_run(kernel, t); /* no runtime arguments */
  if (st != SPAT_OK)
    fprintf(stderr, "run: %s: %s\n", spat_status_name(st), spat_ctx_error(ctx));
  spat_kernel_free(kernel);
  return st == SPAT_OK ? 0 : -1;
}

int main(void) {
  if (spat_version() / 10000 != SPAT_VERSION_MAJOR) {
    fprintf(stderr, "libspat %s does not match spat.h\n",
            spat_version_string());
    return 1;
  }
  enum { B = 1, H = 4, L = 300, D = 64 };
  size_t n = (size_t)B * H * L * D;
  float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k),
        *v = malloc(n * sizeof *v), *o_jit = malloc(n * sizeof *o_jit),
        *o_ref = malloc(n * sizeof *o_ref);
  if (!q || !k || !v || !o_jit || !o_ref) return 1;
  srand(1);
  for (size_t x = 0; x < n; x++) {
    q[x] = (float)rand() / RAND_MAX - 0.5f;
    k[x] = (float)rand() / RAND_MAX - 0.5f;
    v[x] = (float)rand() / RAND_MAX - 0.5f;
  }

  spat_ctx *ctx = spat_ctx_new();
  if (ctx == NULL) return 1;
  spat_pattern *pat = NULL;
  if (spat_pattern_parse_string(ctx, "longformer.pat", source, NULL, &pat) !=
      SPAT_OK) {
    fputs(spat_ctx_last_diagnostics(ctx), stderr);
    return 1;
  }
  spat_pattern_set_param(pat, "w", 64); /* as `spatc -D w=64` */
  spat_pattern_set_param(pat, "g", 2);

  spat_tensors t = {.B = B,
                    .H = H,
                    .Hkv = H,
                    .Lq = L,
                    .Lk = L,
                    .q = q,
                    .k = k,
                    .v = v,
                    .o = o_jit};
  int rc = attend(ctx, pat, SPAT_BACKEND_JIT, &t);
  t.o = o_ref;
  if (rc == 0) rc = attend(ctx, pat, SPAT_BACKEND_INTERP, &t);
  if (rc == 0) {
    double worst = 0;
    for (size_t x = 0; x < n; x++)
      worst = fmax(worst, fabs((double)o_jit[x] - o_ref[x]));
    printf("%s: B=%d H=%d L=%d D=%d, max |jit - interp| = %.2e\n",
           spat_pattern_name(pat), B, H, L, D, worst);
    rc = worst < 1e-4 ? 0 : 1;
    puts(rc == 0 ? "ok" : "MISMATCH");
  }
  spat_pattern_free(pat);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o_jit), free(o_ref);
  return rc;
}
