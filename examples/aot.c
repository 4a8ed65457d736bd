/* aot.c: call a kernel compiled ahead of time by `spatc compile`.
 *
 *     spatc compile patterns/document.pat --pattern document --dim 64 \
 *         -o document.o          # writes document.o and document.h
 *     cc aot.c document.o $(pkg-config --cflags --libs spat) -lm
 *
 * document(t, doc) is a plain C function: causal attention within each
 * packed document.  The result is checked against the reference
 * interpreter through the API, on the same pattern file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "document.h" /* generated: includes spat.h */

int main(int argc, char **argv) {
  const char *pat_file = argc > 1 ? argv[1] : "patterns/document.pat";
  enum { B = 2, H = 4, L = 200, D = document_D };
  size_t n = (size_t)B * H * L * D;
  float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k),
        *v = malloc(n * sizeof *v), *o = malloc(n * sizeof *o),
        *o_ref = malloc(n * sizeof *o_ref);
  int32_t doc[L]; /* three packed documents */
  if (!q || !k || !v || !o || !o_ref) return 1;
  srand(11);
  for (size_t x = 0; x < n; x++) {
    q[x] = (float)rand() / RAND_MAX - 0.5f;
    k[x] = (float)rand() / RAND_MAX - 0.5f;
    v[x] = (float)rand() / RAND_MAX - 0.5f;
  }
  for (int x = 0; x < L; x++) doc[x] = x < 70 ? 0 : x < 150 ? 1 : 2;

  spat_tensors t = {
      .B = B, .H = H, .Lq = L, .Lk = L, .q = q, .k = k, .v = v, .o = o};
  char err[256];
  if (document_ex(err, sizeof err, &t, doc) != SPAT_OK) {
    fprintf(stderr, "document: %s\n", err);
    return 1;
  }

  /* The same through the interpreter. */
  spat_ctx *ctx = spat_ctx_new();
  spat_pattern *pat = NULL;
  spat_kernel *ref = NULL;
  spat_compile_options opts = {
      .D = D, .layout = document_LAYOUT, .backend = SPAT_BACKEND_INTERP};
  t.o = o_ref;
  if (ctx == NULL ||
      spat_pattern_parse_file(ctx, pat_file, "document", &pat) != SPAT_OK ||
      spat_compile(pat, &opts, &ref) != SPAT_OK ||
      spat_kernel_run(ref, &t, doc) != SPAT_OK) {
    fprintf(stderr, "interpreter: %s\n", spat_ctx_error(ctx));
    return 1;
  }
  double worst = 0;
  for (size_t x = 0; x < n; x++)
    worst = fmax(worst, fabs((double)o[x] - o_ref[x]));
  printf("document (AOT): B=%d H=%d L=%d D=%d, max |aot - interp| = %.2e\n", B,
         H, L, D, worst);
  int rc = worst < 1e-4 ? 0 : 1;
  puts(rc == 0 ? "ok" : "MISMATCH");
  spat_kernel_free(ref);
  spat_pattern_free(pat);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o), free(o_ref);
  return rc;
}
