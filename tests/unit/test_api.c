/* test_api.c: the public API (include/spat.h, compiler/api.c), end to end
 * through the real front end and backends.  Results are checked against an
 * attention reference written here from the spec, with the mask as plain C. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spat.h"

/* ---- helpers ------------------------------------------------------------- */

typedef bool (*mask_fn)(void *env, int64_t h, int64_t i, int64_t j);

typedef struct problem {
  int64_t B, H, Hkv, Lq, Lk, D;
  float *q, *k, *v, *o, *lse;
  float scale; /* 0: 1/sqrt(D) */
} problem;

static float rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static problem problem_new(int64_t B, int64_t H, int64_t Hkv, int64_t Lq,
                           int64_t Lk, int64_t D, uint64_t seed) {
  problem p = {B, H, Hkv, Lq, Lk, D, NULL, NULL, NULL, NULL, NULL, 0};
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * Hkv * Lk * D);
  p.q = malloc((nq + 1) * sizeof(float));
  p.k = malloc((nk + 1) * sizeof(float));
  p.v = malloc((nk + 1) * sizeof(float));
  p.o = calloc(nq + 1, sizeof(float));
  p.lse = calloc((size_t)(B * H * Lq) + 1, sizeof(float));
  assert_non_null(p.q);
  assert_non_null(p.k);
  assert_non_null(p.v);
  assert_non_null(p.o);
  assert_non_null(p.lse);
  for (size_t x = 0; x < nq; x++) p.q[x] = rnd(&seed);
  for (size_t x = 0; x < nk; x++) p.k[x] = rnd(&seed);
  for (size_t x = 0; x < nk; x++) p.v[x] = rnd(&seed);
  return p;
}

static void problem_free(problem *p) {
  free(p->q);
  free(p->k);
  free(p->v);
  free(p->o);
  free(p->lse);
}

static spat_tensors tensors_of(const problem *p) {
  spat_tensors t = {p->B, p->H, p->Hkv, p->Lq,  p->Lk,   p->q,
                    p->k, p->v, p->o,   p->lse, p->scale, NULL};
  return t;
}

/* Offset of [b, h, l, 0] in a [B, H, L, D] (layout 0) or [B, L, H, D]
 * tensor. */
static size_t at(int layout, int64_t H, int64_t L, int64_t D, int64_t b,
                 int64_t h, int64_t l) {
  if (layout == 0) return (size_t)(((b * H + h) * L + l) * D);
  return (size_t)(((b * L + l) * H + h) * D);
}

/* Checks p->o and p->lse against exact attention with the given mask. */
static void check_attention(const problem *p, int layout, mask_fn m,
                            void *env) {
  int64_t D = p->D, grp = p->H / p->Hkv;
  double scale = p->scale != 0 ? p->scale : 1.0 / sqrt((double)D);
  double *s = malloc((size_t)(p->Lk + 1) * sizeof *s);
  assert_non_null(s);
  int checked_rows = 0;
  for (int64_t b = 0; b < p->B; b++)
    for (int64_t h = 0; h < p->H; h++)
      for (int64_t r = 0; r < p->Lq; r++) {
        int64_t i = p->Lq <= p->Lk ? r + (p->Lk - p->Lq) : r;
        const float *q = p->q + at(layout, p->H, p->Lq, D, b, h, r);
        double mx = -INFINITY;
        for (int64_t j = 0; j < p->Lk; j++) {
          s[j] = -INFINITY;
          if (!m(env, h, i, j)) continue;
          const float *k = p->k + at(layout, p->Hkv, p->Lk, D, b, h / grp, j);
          double dot = 0;
          for (int64_t d = 0; d < D; d++) dot += (double)q[d] * k[d];
          s[j] = dot * scale;
          if (s[j] > mx) mx = s[j];
        }
        double sum = 0;
        for (int64_t j = 0; j < p->Lk; j++)
          if (s[j] != -INFINITY) sum += exp(s[j] - mx);
        const float *o = p->o + at(layout, p->H, p->Lq, D, b, h, r);
        for (int64_t d = 0; d < D; d++) {
          double want = 0;
          for (int64_t j = 0; j < p->Lk; j++)
            if (s[j] != -INFINITY)
              want += exp(s[j] - mx) / sum *
                      p->v[at(layout, p->Hkv, p->Lk, D, b, h / grp, j) + d];
          if (fabs(o[d] - want) > 1e-4) {
            fprintf(stderr, "o[b=%lld h=%lld r=%lld d=%lld] = %g, want %g\n",
                    (long long)b, (long long)h, (long long)r, (long long)d,
                    (double)o[d], want);
            fail();
          }
        }
        float lse = p->lse[(b * p->H + h) * p->Lq + r];
        if (sum == 0) {
          assert_true(isinf(lse) && lse < 0);
        } else {
          double want = mx + log(sum);
          if (fabs(lse - want) > 1e-4) {
            fprintf(stderr, "lse[%lld %lld %lld] = %g, want %g\n", (long long)b,
                    (long long)h, (long long)r, (double)lse, want);
            fail();
          }
        }
        checked_rows++;
      }
  assert_int_equal(checked_rows, p->B * p->H * p->Lq);
  free(s);
}

static bool m_causal(void *env, int64_t h, int64_t i, int64_t j) {
  (void)env;
  (void)h;
  return j <= i;
}

typedef struct win_env {
  int64_t w;
} win_env;
static bool m_window(void *env, int64_t h, int64_t i, int64_t j) {
  (void)h;
  int64_t w = ((win_env *)env)->w;
  return i - w <= j && j <= i + w;
}

static spat_pattern *parse_ok(spat_ctx *c, const char *text, const char *name) {
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(c, "test.pat", text, name, &p);
  if (st != SPAT_OK)
    fprintf(stderr, "parse: %s: %s\n%s", spat_status_name(st),
            spat_ctx_error(c), spat_ctx_last_diagnostics(c));
  assert_int_equal(st, SPAT_OK);
  assert_non_null(p);
  return p;
}

static spat_kernel *compile_ok(spat_pattern *p, spat_ctx *c, int64_t D,
                               spat_layout layout, spat_backend be) {
  spat_compile_options o = {D, layout, 2, be, 0};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK)
    fprintf(stderr, "compile: %s: %s\n", spat_status_name(st),
            spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  assert_non_null(k);
  return k;
}

static bool contains(const char *hay, const char *needle) {
  return hay != NULL && strstr(hay, needle) != NULL;
}

/* ---- version, status ----------------------------------------------------- */

static void test_version(void **state) {
  (void)state;
  assert_int_equal(spat_version(), SPAT_VERSION);
  assert_int_equal(spat_version() / 10000, SPAT_VERSION_MAJOR);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", SPAT_VERSION_MAJOR,
           SPAT_VERSION_MINOR, SPAT_VERSION_PATCH);
  assert_string_equal(spat_version_string(), want);
}

static void test_status_names(void **state) {
  (void)state;
  assert_string_equal(spat_status_name(SPAT_OK), "SPAT_OK");
  assert_string_equal(spat_status_name(SPAT_EPARSE), "SPAT_EPARSE");
  assert_string_equal(spat_status_name(SPAT_EINTERNAL), "SPAT_EINTERNAL");
  assert_string_equal(spat_status_name((spat_status)999), "SPAT_E?");
}

/* ---- NULL and bad arguments ---------------------------------------------- */

static void test_nulls(void **state) {
  (void)state;
  spat_pattern *p = (spat_pattern *)&p;
  assert_int_equal(
      spat_pattern_parse_string(NULL, NULL, "pattern p = full;", NULL, &p),
      SPAT_EINVAL);
  assert_non_null(spat_ctx_error(NULL));
  assert_string_equal(spat_ctx_last_diagnostics(NULL), "");
  spat_ctx *c = spat_ctx_new();
  assert_non_null(c);
  assert_string_equal(spat_ctx_error(c), "");
  assert_int_equal(spat_pattern_parse_string(c, NULL, NULL, NULL, &p),
                   SPAT_EINVAL);
  assert_null(p);
  assert_true(contains(spat_ctx_error(c), "text is NULL"));
  assert_int_equal(
      spat_pattern_parse_string(c, NULL, "pattern p = full;", NULL, NULL),
      SPAT_EINVAL);
  assert_int_equal(spat_pattern_parse_file(c, NULL, NULL, &p), SPAT_EINVAL);
  assert_int_equal(spat_pattern_set_param(NULL, "w", 1), SPAT_EINVAL);
  spat_kernel *k = (spat_kernel *)&k;
  spat_compile_options o = {64, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0};
  assert_int_equal(spat_compile(NULL, &o, &k), SPAT_EINVAL);
  assert_int_equal(spat_kernel_run(NULL, NULL), SPAT_EINVAL);
  assert_int_equal(spat_kernel_call(NULL, NULL, NULL, 0), SPAT_EINVAL);
  assert_null(spat_kernel_signature(NULL));
  assert_null(spat_kernel_entry(NULL));
  assert_int_equal(spat_ctx_register_fn(c, NULL, SPAT_FN(test_nulls), 1),
                   SPAT_EINVAL);
  assert_int_equal(spat_ctx_register_fn(c, "f", NULL, 1), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "fn is NULL"));
  assert_int_equal(spat_ctx_register_fn(c, "f", SPAT_FN(test_nulls), 17),
                   SPAT_EINVAL);
  spat_pattern_free(NULL);
  spat_kernel_free(NULL);
  spat_ctx_free(NULL);

  p = parse_ok(c, "pattern p = causal;", NULL);
  assert_int_equal(spat_compile(p, NULL, &k), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "options are NULL"));
  assert_int_equal(spat_compile(p, &o, NULL), SPAT_EINVAL);
  k = compile_ok(p, c, 8, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  assert_int_equal(spat_kernel_run(k, NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "tensors are NULL"));
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- parsing and diagnostics --------------------------------------------- */

typedef struct diag_log {
  int calls;
  char text[4096];
} diag_log;

static void on_diag(void *user, const char *text) {
  diag_log *l = user;
  l->calls++;
  snprintf(l->text, sizeof l->text, "%s", text);
}

static void test_parse_error(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  diag_log log = {0};
  spat_ctx_set_diagnostic_fn(c, on_diag, &log);
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(
      c, "bad.pat", "pattern p = causal & window(nosuch);\n", NULL, &p);
  assert_int_equal(st, SPAT_EPARSE);
  assert_null(p);
  const char *d = spat_ctx_last_diagnostics(c);
  assert_true(contains(d, "bad.pat:1:"));
  assert_true(contains(d, "error:"));
  assert_true(contains(d, "nosuch"));
  assert_true(contains(d, "^")); /* the caret under the span */
  assert_true(contains(spat_ctx_error(c), "bad.pat:1:"));
  assert_int_equal(log.calls, 1);
  assert_string_equal(log.text, d);

  /* A later success clears the diagnostics. */
  p = parse_ok(c, "pattern p = causal;", NULL);
  assert_string_equal(spat_ctx_last_diagnostics(c), "");
  assert_int_equal(log.calls, 1);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_parse_file(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_file(c, "/nonexistent/x.pat", NULL, &p),
                   SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "/nonexistent/x.pat"));
  char path[] = "/tmp/spat_test_api_XXXXXX.pat";
  int fd = mkstemps(path, 4);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("pattern a = causal;\npattern b(w = 3) = window(w);\n", f);
  fclose(f);
  assert_int_equal(spat_pattern_parse_file(c, path, "a", &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "a");
  assert_int_equal(spat_pattern_n_params(p), 0);
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_file(c, path, NULL, &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "b"); /* the last one */
  assert_int_equal(spat_pattern_n_params(p), 1);
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_file(c, path, "zzz", &p), SPAT_EINVAL);
  assert_null(p);
  assert_true(contains(spat_ctx_error(c), "zzz"));
  assert_true(contains(spat_ctx_error(c), "a, b"));
  /* A pattern of an imported file is selected by name too. */
  char main_path[] = "/tmp/spat_test_api_main_XXXXXX.pat";
  fd = mkstemps(main_path, 4);
  assert_true(fd >= 0);
  f = fdopen(fd, "w");
  fprintf(f, "import \"%s\";\npattern c = a & window(2);\n", path);
  fclose(f);
  assert_int_equal(spat_pattern_parse_file(c, main_path, "a", &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "a");
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_file(c, main_path, "b", &p), SPAT_OK);
  assert_int_equal(spat_pattern_n_params(p), 1);
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_file(c, main_path, NULL, &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "c"); /* the main file's last */
  spat_pattern_free(p);
  /* A file with only the import: a name still selects. */
  f = fopen(main_path, "w");
  assert_non_null(f);
  fprintf(f, "import \"%s\";\n", path);
  fclose(f);
  assert_int_equal(spat_pattern_parse_file(c, main_path, "a", &p), SPAT_OK);
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_file(c, main_path, NULL, &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "defines no pattern"));
  assert_int_equal(spat_pattern_parse_file(c, main_path, "zzz", &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "no pattern named 'zzz'"));
  /* Only regular files are read: a FIFO (no writer) would block the open;
   * as an import the error is located. */
  char fifo[sizeof main_path + 8];
  snprintf(fifo, sizeof fifo, "%s.fifo", main_path);
  assert_int_equal(mkfifo(fifo, 0644), 0);
  assert_int_equal(spat_pattern_parse_file(c, fifo, NULL, &p), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "not a regular file (a FIFO)"));
  f = fopen(main_path, "w");
  assert_non_null(f);
  fprintf(f, "import \"%s\";\npattern d = causal;\n", fifo);
  fclose(f);
  assert_int_equal(spat_pattern_parse_file(c, main_path, NULL, &p), SPAT_EPARSE);
  assert_true(contains(spat_ctx_last_diagnostics(c), ":1:8: error: cannot read"));
  assert_true(contains(spat_ctx_last_diagnostics(c), "not a regular file (a FIFO)"));
  assert_int_equal(spat_pattern_parse_file(c, "/tmp", NULL, &p), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "Is a directory"));
  spat_module *mod = NULL;
  assert_int_equal(spat_module_parse_file(c, fifo, &mod), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "not a regular file (a FIFO)"));
  const char *why = NULL;
  assert_int_equal(spat_open_regular(fifo, &why), -1);
  assert_string_equal(why, "not a regular file (a FIFO)");
  assert_int_equal(spat_open_regular("/dev/null", &why), -1);
  assert_string_equal(why, "not a regular file (a character device)");
  int rfd = spat_open_regular(path, &why);
  assert_true(rfd >= 0);
  close(rfd);
  /* A module's patterns list their compile-time parameters; one of an
   * imported file is selected by name. */
  f = fopen(main_path, "w");
  assert_non_null(f);
  fprintf(f, "import \"%s\";\npattern e(k, runtime n = 1, m = k + 1) = "
             "window(k + m + n);\n", path);
  fclose(f);
  assert_int_equal(spat_module_parse_file(c, main_path, &mod), SPAT_OK);
  assert_int_equal(spat_module_n_patterns(mod), 1);
  spat_pattern_decl d;
  assert_int_equal(spat_module_pattern(mod, 0, &d), SPAT_OK);
  assert_string_equal(d.name, "e");
  assert_true(d.needs_params);
  assert_int_equal(d.n_params, 2); /* k and m; n is a runtime scalar */
  assert_string_equal(d.params[0].name, "k");
  assert_false(d.params[0].has_default);
  assert_string_equal(d.params[1].name, "m");
  assert_true(d.params[1].has_default);
  assert_int_equal(spat_module_select(mod, "b", NULL, 0, &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "b");
  spat_pattern_free(p);
  spat_module_free(mod);
  remove(fifo);
  remove(main_path);
  remove(path);
  spat_ctx_free(c);
}

static void test_params(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern p(w = 2, g = 1) = window(w);", NULL);
  assert_int_equal(spat_pattern_n_params(p), 2);
  const char *name = NULL;
  int64_t v = -1;
  assert_int_equal(spat_pattern_param(p, 0, &name, &v), SPAT_OK);
  assert_string_equal(name, "w");
  assert_int_equal(v, 2);
  assert_int_equal(spat_pattern_param(p, 2, &name, &v), SPAT_EINVAL);
  assert_int_equal(spat_pattern_set_param(p, "w", 5), SPAT_OK);
  assert_int_equal(spat_pattern_param(p, 0, &name, &v), SPAT_OK);
  assert_int_equal(v, 5);
  assert_int_equal(spat_pattern_set_param(p, "x", 5), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "no parameter 'x'"));

  /* The override reaches the kernel: window(5), not window(2). */
  spat_kernel *k = compile_ok(p, c, 4, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  problem pr = problem_new(1, 2, 2, 20, 20, 4, 7);
  spat_tensors t = tensors_of(&pr);
  assert_int_equal(spat_kernel_run(k, &t), SPAT_OK);
  win_env env = {5};
  check_attention(&pr, 0, m_window, &env);
  spat_kernel_free(k);

  /* A value the pattern rejects is a compile error with diagnostics. */
  assert_int_equal(spat_pattern_set_param(p, "w", -3), SPAT_OK);
  spat_compile_options o = {4, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0};
  k = (spat_kernel *)&k;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EPARSE);
  assert_null(k);
  assert_true(contains(spat_ctx_last_diagnostics(c), "error:"));
  problem_free(&pr);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_compile_options(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern p = causal;", NULL);
  spat_kernel *k = NULL;
  spat_compile_options o = {0, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0};
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "D = 0"));
  o.D = (int64_t)1 << 40;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EUNSUPPORTED);
  o.D = 8;
  o.layout = (spat_layout)7;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  o.layout = SPAT_LAYOUT_BHLD;
  o.threads = -1;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  o.threads = 0;
  o.backend = (spat_backend)9;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_null(k);
  /* A head dimension the JIT does not generate code for. */
  o.backend = SPAT_BACKEND_JIT;
  o.D = 3;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EUNSUPPORTED);
  assert_true(contains(spat_ctx_error(c), "jit"));
  assert_null(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- running ------------------------------------------------------------- */

static void run_causal(spat_backend be, int layout, int64_t Lq, int64_t Lk,
                       int64_t H, int64_t Hkv) {
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern p = causal;", NULL);
  spat_kernel *k = compile_ok(p, c, 16, (spat_layout)layout, be);
  spat_pattern_free(p); /* the kernel does not need it */
  problem pr = problem_new(2, H, Hkv, Lq, Lk, 16, 11);
  spat_tensors t = tensors_of(&pr);
  spat_status st = spat_kernel_run(k, &t);
  if (st != SPAT_OK) fprintf(stderr, "%s\n", spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  check_attention(&pr, layout, m_causal, NULL);
  problem_free(&pr);
  spat_kernel_free(k);
  spat_ctx_free(c);
}

static void test_run_interp(void **state) {
  (void)state;
  run_causal(SPAT_BACKEND_INTERP, 0, 17, 17, 2, 2);
  run_causal(SPAT_BACKEND_INTERP, 1, 17, 17, 2, 2);
  run_causal(SPAT_BACKEND_INTERP, 0, 5, 19, 4, 2); /* bottom-right, GQA */
  run_causal(SPAT_BACKEND_INTERP, 1, 19, 5, 2, 1); /* Lq > Lk: empty rows */
}

static void test_run_jit(void **state) {
  (void)state;
  run_causal(SPAT_BACKEND_JIT, 0, 33, 33, 2, 2);
  run_causal(SPAT_BACKEND_JIT, 1, 33, 33, 2, 2);
  run_causal(SPAT_BACKEND_JIT, 0, 9, 40, 4, 2);
}

static void test_run_bad_shapes(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern p = causal;", NULL);
  spat_kernel *k = compile_ok(p, c, 8, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  problem pr = problem_new(1, 3, 3, 4, 4, 8, 1);
  spat_tensors t = tensors_of(&pr);
  t.Hkv = 2; /* 3 is not a multiple of 2 */
  assert_int_equal(spat_kernel_run(k, &t), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "multiple of Hkv"));
  t = tensors_of(&pr);
  t.Lq = -1;
  assert_int_equal(spat_kernel_run(k, &t), SPAT_EINVAL);
  t = tensors_of(&pr);
  t.v = NULL;
  assert_int_equal(spat_kernel_run(k, &t), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "v is NULL"));
  t = tensors_of(&pr);
  t.B = INT64_MAX / 2; /* B * H * L * D overflows */
  assert_int_equal(spat_kernel_run(k, &t), SPAT_ERANGE);
  assert_true(contains(spat_ctx_error(c), "overflow"));
  t = tensors_of(&pr);
  t.scale = NAN;
  assert_int_equal(spat_kernel_run(k, &t), SPAT_EINVAL);
  /* Empty problems are fine, with NULL data. */
  spat_tensors empty = {0, 3, 3, 4, 4, NULL, NULL, NULL, NULL, NULL, 0, NULL};
  assert_int_equal(spat_kernel_run(k, &empty), SPAT_OK);
  /* And the kernel still works after all those failures. */
  t = tensors_of(&pr);
  assert_int_equal(spat_kernel_run(k, &t), SPAT_OK);
  check_attention(&pr, 0, m_causal, NULL);
  problem_free(&pr);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- runtime scalars and inputs: run, call, typed entry ------------------ */

static const char *const docs_pat =
    "pattern docs(runtime n = 2, input doc: int[]) =\n"
    "    (causal & where(doc[i] == doc[j])) | cols(0 .. n);\n";

typedef struct docs_env {
  int64_t n;
  const int32_t *doc;
} docs_env;
static bool m_docs(void *env, int64_t h, int64_t i, int64_t j) {
  (void)h;
  const docs_env *e = env;
  return (j <= i && e->doc[i] == e->doc[j]) || j < e->n;
}

/* Empty shapes, the same for every backend and layout: B, H or Lq = 0 writes
 * nothing; Lk = 0 makes every row empty (o = 0, lse = -inf), with NULL k, v
 * and input arrays; a negative size is an error. */
static void test_empty_shapes(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  const spat_backend bes[] = {SPAT_BACKEND_INTERP, SPAT_BACKEND_JIT};
  enum { B = 2, H = 4, Hkv = 2, Lq = 5, D = 16, NQ = B * H * Lq * D };
  float q[NQ], o[NQ], lse[B * H * Lq];
  const int32_t doc[3] = {0, 0, 1}; /* Lk entries; NULL only when Lk = 0 */
  for (int x = 0; x < NQ; x++) q[x] = (float)(x % 7) - 3;
  for (int be = 0; be < 2; be++)
    for (int layout = 0; layout < 2; layout++) {
      spat_kernel *k = compile_ok(p, c, D, (spat_layout)layout, bes[be]);
      const spat_tensors none[] = {
          {0, H, Hkv, Lq, 3, NULL, NULL, NULL, NULL, NULL, 0, NULL}, /* B = 0 */
          {B, 0, 0, Lq, 3, NULL, NULL, NULL, NULL, NULL, 0, NULL},   /* H = 0 */
          {B, H, Hkv, 0, 3, NULL, q, q, NULL, NULL, 0, NULL},        /* Lq = 0 */
          {0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL},
      };
      for (size_t t = 0; t < sizeof none / sizeof none[0]; t++) {
        spat_status st = spat_kernel_run(k, &none[t], (int64_t)2, doc);
        if (st != SPAT_OK) fprintf(stderr, "case %zu: %s\n", t, spat_ctx_error(c));
        assert_int_equal(st, SPAT_OK);
      }
      for (int x = 0; x < NQ; x++) o[x] = 7;
      for (int x = 0; x < B * H * Lq; x++) lse[x] = 7;
      spat_tensors t = {B, H, Hkv, Lq, 0, q, NULL, NULL, o, lse, 0, NULL};
      spat_status st = spat_kernel_run(k, &t, (int64_t)2, NULL);
      if (st != SPAT_OK) fprintf(stderr, "Lk = 0: %s\n", spat_ctx_error(c));
      assert_int_equal(st, SPAT_OK);
      for (int x = 0; x < NQ; x++) assert_true(o[x] == 0.0f);
      for (int x = 0; x < B * H * Lq; x++)
        assert_true(isinf(lse[x]) && lse[x] < 0);
      /* The generic call and the typed entry agree. */
      for (int x = 0; x < NQ; x++) o[x] = 7;
      spat_value args[] = {spat_scalar(2), spat_input(NULL)};
      assert_int_equal(spat_kernel_call(k, &t, args, 2), SPAT_OK);
      for (int x = 0; x < NQ; x++) assert_true(o[x] == 0.0f);
      /* Rows to write need o; negative sizes are errors. */
      t.o = NULL;
      assert_int_equal(spat_kernel_run(k, &t, (int64_t)2, NULL), SPAT_EINVAL);
      t.o = o;
      t.Lk = -1;
      assert_int_equal(spat_kernel_run(k, &t, (int64_t)2, NULL), SPAT_EINVAL);
      assert_true(contains(spat_ctx_error(c), "negative size"));
      spat_kernel_free(k);
    }
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_signature(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  spat_kernel *k = compile_ok(p, c, 16, SPAT_LAYOUT_BLHD, SPAT_BACKEND_INTERP);
  const spat_signature *s = spat_kernel_signature(k);
  assert_non_null(s);
  assert_string_equal(s->pattern, "docs");
  assert_int_equal(s->D, 16);
  assert_int_equal(s->layout, SPAT_LAYOUT_BLHD);
  assert_int_equal(s->backend, SPAT_BACKEND_INTERP);
  assert_int_equal(s->n_args, 2);
  assert_string_equal(s->args[0].name, "n");
  assert_int_equal(s->args[0].kind, SPAT_KIND_SCALAR);
  assert_true(s->args[0].has_default);
  assert_int_equal(s->args[0].default_value, 2);
  assert_string_equal(s->args[1].name, "doc");
  assert_int_equal(s->args[1].kind, SPAT_KIND_INPUT);
  assert_string_equal(
      s->entry_type,
      "int (*)(const spat_tensors *t, int64_t n, const int32_t *doc)");
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_three_ways_to_call(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  spat_kernel *k = compile_ok(p, c, 8, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  enum { L = 24 };
  int32_t doc[L];
  for (int x = 0; x < L; x++) doc[x] = x < 5 ? 0 : x < 14 ? 1 : 2;
  docs_env env = {3, doc};

  problem pr = problem_new(1, 2, 1, L, L, 8, 3);
  spat_tensors t = tensors_of(&pr);
  assert_int_equal(spat_kernel_run(k, &t, (int64_t)3, doc), SPAT_OK);
  check_attention(&pr, 0, m_docs, &env);

  memset(pr.o, 0, (size_t)(L * 2 * 8) * sizeof(float));
  spat_value args[2] = {spat_scalar(3), spat_input(doc)};
  assert_int_equal(spat_kernel_call(k, &t, args, 2), SPAT_OK);
  check_attention(&pr, 0, m_docs, &env);

  memset(pr.o, 0, (size_t)(L * 2 * 8) * sizeof(float));
  int (*entry)(const spat_tensors *, int64_t, const int32_t *) = (int (*)(
      const spat_tensors *, int64_t, const int32_t *))spat_kernel_entry(k);
  assert_non_null(entry);
  assert_int_equal(entry(&t, 3, doc), SPAT_OK);
  check_attention(&pr, 0, m_docs, &env);

  /* A different scalar gives a different mask. */
  env.n = 0;
  assert_int_equal(entry(&t, 0, doc), SPAT_OK);
  check_attention(&pr, 0, m_docs, &env);

  /* Errors through each way. */
  assert_int_equal(spat_kernel_call(k, &t, args, 1), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "takes 2 arguments"));
  spat_value swapped[2] = {spat_input(doc), spat_scalar(3)};
  assert_int_equal(spat_kernel_call(k, &t, swapped, 2), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "'n'"));
  args[1] = spat_input(NULL);
  assert_int_equal(spat_kernel_call(k, &t, args, 2), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "'doc'"));
  assert_int_equal(spat_kernel_run(k, &t, (int64_t)3, (const int32_t *)NULL),
                   SPAT_EINVAL);
  assert_int_equal(entry(NULL, 3, doc), SPAT_EINVAL);
  problem_free(&pr);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_runtime_error(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  /* doc[i + 1] is out of range on the last row. */
  spat_pattern *p = parse_ok(
      c, "pattern p(input doc: int[]) = where(doc[i + 1] == doc[j]);", NULL);
  spat_kernel *k = compile_ok(p, c, 4, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  problem pr = problem_new(1, 1, 1, 6, 6, 4, 3);
  spat_tensors t = tensors_of(&pr);
  int32_t doc[6] = {0, 0, 1, 1, 2, 2};
  assert_int_equal(spat_kernel_run(k, &t, doc), SPAT_ERANGE);
  assert_true(contains(spat_ctx_error(c), "test.pat:1:"));
  spat_kernel_free(k);
  spat_pattern_free(p);
  problem_free(&pr);
  spat_ctx_free(c);
}

/* ---- extern predicates --------------------------------------------------- */

static bool near3(int64_t i, int64_t j) {
  return i - j <= 3 && j - i <= 3;
}
static bool three(int64_t a, int64_t b, int64_t c) {
  return a + b + c > 0;
}

static bool m_near3(void *env, int64_t h, int64_t i, int64_t j) {
  (void)env;
  (void)h;
  return near3(i, j);
}

static const char *const extern_pat =
    "extern fn near(int, int) -> bool;\n"
    "pattern p = where(near(i, j));\n";

static void test_externs(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, extern_pat, NULL);
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_null(k);
  assert_true(contains(spat_ctx_error(c), "'near'"));
  assert_true(contains(spat_ctx_error(c), "not registered"));

  assert_int_equal(spat_ctx_register_fn(c, "near", SPAT_FN(three), 3), SPAT_OK);
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "registered with 3"));

  assert_int_equal(spat_ctx_register_fn(c, "near", SPAT_FN(near3), 2), SPAT_OK);
  k = compile_ok(p, c, 16, SPAT_LAYOUT_BHLD, SPAT_BACKEND_INTERP);
  problem pr = problem_new(1, 2, 2, 21, 21, 16, 5);
  spat_tensors t = tensors_of(&pr);
  assert_int_equal(spat_kernel_run(k, &t), SPAT_OK);
  check_attention(&pr, 0, m_near3, NULL);
  spat_kernel_free(k);

  k = compile_ok(p, c, 16, SPAT_LAYOUT_BHLD, SPAT_BACKEND_JIT);
  memset(pr.o, 0, (size_t)(21 * 2 * 16) * sizeof(float));
  assert_int_equal(spat_kernel_run(k, &t), SPAT_OK);
  check_attention(&pr, 0, m_near3, NULL);
  spat_kernel_free(k);
  problem_free(&pr);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- JIT against the interpreter ----------------------------------------- */

static void test_jit_matches_interp(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  spat_kernel *kj = compile_ok(p, c, 16, SPAT_LAYOUT_BLHD, SPAT_BACKEND_JIT);
  spat_kernel *ki = compile_ok(p, c, 16, SPAT_LAYOUT_BLHD, SPAT_BACKEND_INTERP);
  enum { L = 70 };
  int32_t doc[L];
  for (int x = 0; x < L; x++) doc[x] = x / 23;
  problem a = problem_new(2, 4, 2, L, L, 16, 9);
  problem b = problem_new(2, 4, 2, L, L, 16, 9);
  spat_tensors ta = tensors_of(&a), tb = tensors_of(&b);
  spat_value args[2] = {spat_scalar(1), spat_input(doc)};
  assert_int_equal(spat_kernel_call(kj, &ta, args, 2), SPAT_OK);
  assert_int_equal(spat_kernel_call(ki, &tb, args, 2), SPAT_OK);
  size_t n = (size_t)(2 * 4 * L * 16);
  for (size_t x = 0; x < n; x++) assert_true(fabsf(a.o[x] - b.o[x]) < 1e-4f);
  docs_env env = {1, doc};
  check_attention(&a, 1, m_docs, &env);
  problem_free(&a);
  problem_free(&b);
  spat_kernel_free(kj);
  spat_kernel_free(ki);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- threads ------------------------------------------------------------- */

typedef struct job {
  const spat_kernel *k;
  problem pr;
  int32_t doc[48];
  spat_status st;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  spat_tensors t = tensors_of(&j->pr);
  j->st = SPAT_OK;
  for (int rep = 0; rep < 4 && j->st == SPAT_OK; rep++)
    j->st = spat_kernel_run(j->k, &t, (int64_t)2, j->doc);
  return NULL;
}

/* Runs k (the docs pattern, D = 16) from three threads at once, each on
 * its own tensors, and checks every result. */
static void run_concurrently(const spat_kernel *k) {
  enum { N = 3 };
  job jobs[N];
  pthread_t th[N];
  for (int n = 0; n < N; n++) {
    jobs[n].k = k;
    jobs[n].pr = problem_new(1, 2, 2, 48, 48, 16, (uint64_t)(100 + n));
    for (int x = 0; x < 48; x++) jobs[n].doc[x] = x / (8 + n);
    assert_int_equal(pthread_create(&th[n], NULL, run_job, &jobs[n]), 0);
  }
  for (int n = 0; n < N; n++) assert_int_equal(pthread_join(th[n], NULL), 0);
  for (int n = 0; n < N; n++) {
    assert_int_equal(jobs[n].st, SPAT_OK);
    docs_env env = {2, jobs[n].doc};
    check_attention(&jobs[n].pr, 0, m_docs, &env);
    problem_free(&jobs[n].pr);
  }
}

/* One kernel run from several threads at once, each on its own tensors. */
static void test_concurrent_runs(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  spat_kernel *k = compile_ok(p, c, 16, SPAT_LAYOUT_BHLD, SPAT_BACKEND_JIT);
  run_concurrently(k);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- the disk kernel cache ----------------------------------------------- */

static int count_files(const char *dir, const char *suffix) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '%s$'", dir, suffix);
  FILE *p = popen(cmd, "r");
  int n = -1;
  if (p == NULL || fscanf(p, "%d", &n) != 1) n = -1;
  if (p) pclose(p);
  return n;
}

static spat_kernel *cached_kernel(spat_pattern *p, spat_ctx *c) {
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 2, SPAT_BACKEND_JIT, 1};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK) fprintf(stderr, "cache: %s\n", spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  return k;
}

static void check_docs_run(spat_kernel *k, int64_t n) {
  enum { L = 50 };
  int32_t doc[L];
  for (int x = 0; x < L; x++) doc[x] = x / 17;
  problem pr = problem_new(1, 2, 2, L, L, 16, 21);
  spat_tensors t = tensors_of(&pr);
  spat_value args[2] = {spat_scalar(n), spat_input(doc)};
  assert_int_equal(spat_kernel_call(k, &t, args, 2), SPAT_OK);
  docs_env env = {n, doc};
  check_attention(&pr, 0, m_docs, &env);
  problem_free(&pr);
}

static void test_disk_cache(void **state) {
  (void)state;
  char dir[] = "/tmp/spat_test_cache_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *old = getenv("XDG_CACHE_HOME");
  char *saved = old ? strdup(old) : NULL;
  setenv("XDG_CACHE_HOME", dir, 1);
  char sub[64];
  snprintf(sub, sizeof sub, "%s/spatc", dir);

  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, docs_pat, NULL);
  spat_kernel *k = cached_kernel(p, c); /* a miss: compiled and stored */
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  assert_int_equal(count_files(sub, ".spk"), 1);
  check_docs_run(k, 2);
  spat_kernel_free(k);

  k = cached_kernel(p, c); /* a hit, whose first runs race each other */
  assert_int_equal(spat_kernel_signature(k)->from_cache, 1);
  assert_int_equal(count_files(sub, ".spk"), 1);
  run_concurrently(k);
  check_docs_run(k, 4);
  /* errors still come with messages */
  spat_value bad[2] = {spat_scalar(1), spat_input(NULL)};
  problem pr = problem_new(1, 2, 2, 8, 8, 16, 1);
  spat_tensors t = tensors_of(&pr);
  assert_int_equal(spat_kernel_call(k, &t, bad, 2), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "'doc'"));
  problem_free(&pr);
  spat_kernel_free(k);

  /* A damaged object is compiled again. */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "for f in '%s'/*.spk; do echo junk > \"$f\"; done",
           sub);
  assert_int_equal(system(cmd), 0);
  k = cached_kernel(p, c);
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  check_docs_run(k, 3);
  spat_kernel_free(k);

  /* Other options are another entry. */
  spat_compile_options o = {32, SPAT_LAYOUT_BHLD, 2, SPAT_BACKEND_JIT, 1};
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  assert_int_equal(count_files(sub, ".spk"), 2);
  spat_kernel_free(k);

  /* An unusable cache directory: compiled as without the cache. */
  char file[128];
  snprintf(file, sizeof file, "%s/afile", dir);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fclose(fp);
  setenv("XDG_CACHE_HOME", file, 1); /* a file, not a directory */
  k = cached_kernel(p, c);
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  check_docs_run(k, 2);
  spat_kernel_free(k);

  spat_pattern_free(p);
  spat_ctx_free(c);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  if (saved) {
    setenv("XDG_CACHE_HOME", saved, 1);
    free(saved);
  } else {
    unsetenv("XDG_CACHE_HOME");
  }
}

/* ---- many arguments, scale, bad text ------------------------------------- */

static const char *const many_pat =
    "pattern many(runtime a = 0, runtime b = 0, runtime c = 0,\n"
    "             runtime d = 0, runtime e = 0, runtime f = 0,\n"
    "             runtime g = 0, input x: int[], input y: int[]) =\n"
    "    where(i - j <= a + b + c + d + e + f + g && j - i <= x[i] - y[j]);\n";

typedef struct many_env {
  int64_t s[7];
  const int32_t *x, *y;
} many_env;
static bool m_many(void *env, int64_t h, int64_t i, int64_t j) {
  (void)h;
  const many_env *e = env;
  int64_t sum = 0;
  for (int k = 0; k < 7; k++) sum += e->s[k];
  return i - j <= sum && j - i <= e->x[i] - e->y[j];
}

/* Nine arguments after the tensors: some reach the callee on the stack,
 * through the closure, ffi_call and the compiled AOT-style entries alike. */
static void test_many_arguments(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, many_pat, NULL);
  enum { L = 40 };
  int32_t x[L], y[L];
  for (int k = 0; k < L; k++) x[k] = k % 7, y[k] = k % 3;
  many_env env = {{1, 0, 2, 0, 0, 1, 3}, x, y};
  for (int be = 0; be < 2; be++) {
    spat_kernel *k = compile_ok(p, c, 16, SPAT_LAYOUT_BHLD,
                                be ? SPAT_BACKEND_JIT : SPAT_BACKEND_INTERP);
    const spat_signature *sig = spat_kernel_signature(k);
    assert_int_equal(sig->n_args, 9);
    assert_string_equal(sig->args[6].name, "g");
    assert_string_equal(sig->args[8].name, "y");
    problem pr = problem_new(1, 2, 2, L, L, 16, 77);
    pr.scale = 0.3f;
    spat_tensors t = tensors_of(&pr);
    int (*entry)(const spat_tensors *, int64_t, int64_t, int64_t, int64_t,
                 int64_t, int64_t, int64_t, const int32_t *, const int32_t *) =
        (int (*)(const spat_tensors *, int64_t, int64_t, int64_t, int64_t,
                 int64_t, int64_t, int64_t, const int32_t *,
                 const int32_t *))spat_kernel_entry(k);
    assert_int_equal(entry(&t, 1, 0, 2, 0, 0, 1, 3, x, y), SPAT_OK);
    check_attention(&pr, 0, m_many, &env);
    spat_value args[9];
    for (int a = 0; a < 7; a++) args[a] = spat_scalar(env.s[a]);
    args[7] = spat_input(x);
    args[8] = spat_input(y);
    memset(pr.o, 0, (size_t)(2 * L * 16) * sizeof(float));
    assert_int_equal(spat_kernel_call(k, &t, args, 9), SPAT_OK);
    check_attention(&pr, 0, m_many, &env);
    memset(pr.o, 0, (size_t)(2 * L * 16) * sizeof(float));
    assert_int_equal(
        spat_kernel_run(k, &t, (int64_t)1, (int64_t)0, (int64_t)2, (int64_t)0,
                        (int64_t)0, (int64_t)1, (int64_t)3, x, y),
        SPAT_OK);
    check_attention(&pr, 0, m_many, &env);
    problem_free(&pr);
    spat_kernel_free(k);
  }
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* Malformed text: a status and diagnostics, never a crash. */
static void test_bad_text(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "pattern",
      "pattern p = ;",
      "pattern p = window(;",
      "pattern p = window(-1);",
      "pattern p(w = 1) = window(w) & 3;",
      "pattern p = causal\x01;",
      "import \"/nonexistent.pat\"; pattern p = causal;",
      "pattern p = where(i / 0 == 1);",
      "pattern p = blocks(0) { causal };",
      "\xff\xfe\x00",
      "pattern p = ((((((((((((((((causal))))))))))))))));",
  };
  spat_ctx *c = spat_ctx_new();
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    spat_pattern *p = NULL;
    spat_status st = spat_pattern_parse_string(c, "bad.pat", bad[k], NULL, &p);
    if (st == SPAT_OK) {
      /* accepted text must then compile or fail with a status */
      spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP,
                                0};
      spat_kernel *ker = NULL;
      st = spat_compile(p, &o, &ker);
      if (st == SPAT_OK)
        spat_kernel_free(ker);
      else
        assert_true(spat_ctx_error(c)[0] != '\0');
      spat_pattern_free(p);
      continue;
    }
    assert_null(p);
    assert_true(st == SPAT_EPARSE || st == SPAT_EINVAL);
    assert_true(spat_ctx_error(c)[0] != '\0');
  }
  /* the text with no pattern at all */
  spat_pattern *p = NULL;
  assert_int_equal(
      spat_pattern_parse_string(c, "e.pat", "let x = 1;", NULL, &p),
      SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "no pattern"));
  spat_ctx_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_status_names),
      cmocka_unit_test(test_nulls),
      cmocka_unit_test(test_parse_error),
      cmocka_unit_test(test_parse_file),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_compile_options),
      cmocka_unit_test(test_run_interp),
      cmocka_unit_test(test_run_jit),
      cmocka_unit_test(test_run_bad_shapes),
      cmocka_unit_test(test_empty_shapes),
      cmocka_unit_test(test_signature),
      cmocka_unit_test(test_three_ways_to_call),
      cmocka_unit_test(test_runtime_error),
      cmocka_unit_test(test_externs),
      cmocka_unit_test(test_jit_matches_interp),
      cmocka_unit_test(test_concurrent_runs),
      cmocka_unit_test(test_disk_cache),
      cmocka_unit_test(test_many_arguments),
      cmocka_unit_test(test_bad_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
