/* generic.c: run any pattern file, learning its kernel's arguments at run
 * time.
 *
 *     generic FILE.pat [--pattern NAME] [-D NAME=VALUE]... [--len L]
 *             [--heads H] [--dim D] [NAME=VALUE]...
 *
 * -D sets a compile-time parameter; NAME=VALUE sets a runtime scalar (the
 * default otherwise).  Each input array is filled with document ids: runs of
 * 37 equal values.  The kernel is called by position through spat_kernel_call
 * with a spat_value per argument, once JIT-compiled and once on the
 * reference interpreter, and the two outputs are compared.  Build:
 *     cc -std=c11 generic.c $(pkg-config --cflags --libs spat) -lm
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spat.h"

typedef struct setting {
  char name[64];
  int64_t value;
} setting;

static int parse_setting(const char *s, setting *out) {
  const char *eq = strchr(s, '=');
  if (eq == NULL || eq == s || (size_t)(eq - s) >= sizeof out->name) return -1;
  char *end;
  long long v = strtoll(eq + 1, &end, 10);
  if (*end != '\0' || end == eq + 1) return -1;
  memcpy(out->name, s, (size_t)(eq - s));
  out->name[eq - s] = '\0';
  out->value = v;
  return 0;
}

static int usage(void) {
  fputs(
      "usage: generic FILE.pat [--pattern NAME] [-D NAME=VALUE]... "
      "[--len L] [--heads H] [--dim D] [NAME=VALUE]...\n",
      stderr);
  return 2;
}

/* Compiles for one backend and calls the kernel by position. */
static spat_status run(spat_pattern *pat, spat_backend be, int64_t D,
                       const setting *scalars, int n_scalars,
                       const int32_t *docs, const spat_tensors *t, bool show) {
  spat_compile_options opts = {
      .D = D, .layout = SPAT_LAYOUT_BHLD, .threads = 0, .backend = be};
  spat_kernel *kernel = NULL;
  spat_status st = spat_compile(pat, &opts, &kernel);
  if (st != SPAT_OK) return st;
  const spat_signature *sig = spat_kernel_signature(kernel);
  spat_value *args = calloc(sig->n_args + 1, sizeof *args);
  if (args == NULL) {
    spat_kernel_free(kernel);
    return SPAT_ENOMEM;
  }
  if (show) printf("kernel %s: %s\n", sig->pattern, sig->entry_type);
  for (size_t a = 0; a < sig->n_args && st == SPAT_OK; a++) {
    const spat_arg_info *arg = &sig->args[a];
    if (arg->kind == SPAT_KIND_INPUT) {
      args[a] = spat_input(docs);
      if (show) printf("  input  %s: document ids\n", arg->name);
      continue;
    }
    bool given = false;
    for (int s = 0; s < n_scalars; s++)
      if (strcmp(scalars[s].name, arg->name) == 0) {
        args[a] = spat_scalar(scalars[s].value);
        given = true;
      }
    if (!given && !arg->has_default) {
      fprintf(stderr, "runtime scalar '%s' has no default: give %s=VALUE\n",
              arg->name, arg->name);
      st = SPAT_EINVAL;
    } else if (!given) {
      args[a] = spat_scalar(arg->default_value);
    }
    if (show && st == SPAT_OK)
      printf("  scalar %s = %" PRId64 "%s\n", arg->name, args[a].scalar,
             given ? "" : " (default)");
  }
  if (st == SPAT_OK) st = spat_kernel_call(kernel, t, args, sig->n_args);
  free(args);
  spat_kernel_free(kernel);
  return st;
}

int main(int argc, char **argv) {
  const char *path = NULL, *name = NULL;
  int64_t L = 256, H = 2, D = 32;
  setting defs[32], scalars[32];
  int n_defs = 0, n_scalars = 0;
  for (int a = 1; a < argc; a++) {
    const char *s = argv[a];
    if (strcmp(s, "--pattern") == 0 && a + 1 < argc)
      name = argv[++a];
    else if (strcmp(s, "-D") == 0 && a + 1 < argc && n_defs < 32) {
      if (parse_setting(argv[++a], &defs[n_defs++]) != 0) return usage();
    } else if (strcmp(s, "--len") == 0 && a + 1 < argc)
      L = atoll(argv[++a]);
    else if (strcmp(s, "--heads") == 0 && a + 1 < argc)
      H = atoll(argv[++a]);
    else if (strcmp(s, "--dim") == 0 && a + 1 < argc)
      D = atoll(argv[++a]);
    else if (s[0] != '-' && strchr(s, '=') != NULL && n_scalars < 32) {
      if (parse_setting(s, &scalars[n_scalars++]) != 0) return usage();
    } else if (s[0] != '-' && path == NULL)
      path = s;
    else
      return usage();
  }
  if (path == NULL || L < 1 || H < 1 || D < 1 || L > (1 << 16) || H > 64 ||
      D > 512)
    return usage();

  spat_ctx *ctx = spat_ctx_new();
  if (ctx == NULL) return 1;
  spat_pattern *pat = NULL;
  spat_status st = spat_pattern_parse_file(ctx, path, name, &pat);
  for (int d = 0; d < n_defs && st == SPAT_OK; d++)
    st = spat_pattern_set_param(pat, defs[d].name, defs[d].value);
  if (st != SPAT_OK) {
    fprintf(stderr, "%s\n%s", spat_ctx_error(ctx),
            spat_ctx_last_diagnostics(ctx));
    spat_pattern_free(pat);
    spat_ctx_free(ctx);
    return 1;
  }
  for (size_t p = 0; p < spat_pattern_n_params(pat); p++) {
    const char *pname;
    int64_t value;
    spat_pattern_param(pat, p, &pname, &value);
    printf("param %s = %" PRId64 "\n", pname, value);
  }

  size_t n = (size_t)(H * L * D);
  float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k),
        *v = malloc(n * sizeof *v), *o = calloc(n, sizeof *o),
        *o_ref = calloc(n, sizeof *o_ref);
  int32_t *docs = malloc((size_t)L * sizeof *docs);
  if (!q || !k || !v || !o || !o_ref || !docs) return 1;
  srand(3);
  for (size_t x = 0; x < n; x++) {
    q[x] = (float)rand() / RAND_MAX - 0.5f;
    k[x] = (float)rand() / RAND_MAX - 0.5f;
    v[x] = (float)rand() / RAND_MAX - 0.5f;
  }
  for (int64_t x = 0; x < L; x++) docs[x] = (int32_t)(x / 37);

  spat_tensors t = {.B = 1,
                    .H = H,
                    .Hkv = H,
                    .Lq = L,
                    .Lk = L,
                    .q = q,
                    .k = k,
                    .v = v,
                    .o = o};
  st = run(pat, SPAT_BACKEND_JIT, D, scalars, n_scalars, docs, &t, true);
  t.o = o_ref;
  if (st == SPAT_OK)
    st = run(pat, SPAT_BACKEND_INTERP, D, scalars, n_scalars, docs, &t, false);
  int rc = 1;
  if (st != SPAT_OK) {
    fprintf(stderr, "%s: %s\n", spat_status_name(st), spat_ctx_error(ctx));
  } else {
    double worst = 0;
    for (size_t x = 0; x < n; x++)
      worst = fmax(worst, fabs((double)o[x] - o_ref[x]));
    printf("L=%" PRId64 " H=%" PRId64 " D=%" PRId64
           ": max |jit - interp| = %.2e\n",
           L, H, D, worst);
    rc = worst < 1e-4 ? 0 : 1;
    puts(rc == 0 ? "ok" : "MISMATCH");
  }
  spat_pattern_free(pat);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o), free(o_ref), free(docs);
  return rc;
}
