/* test_api_query.c: the public API's questions about patterns and its
 * tools (include/spat.h; compiler/api_query.c, compiler/api_aot.c), which
 * the spatc driver is built on: modules (listing, selecting with values),
 * spat_pattern_describe, spat_kernel_mask / _count, spat_kernel_tiles,
 * spat_pattern_explain,
 * spat_emit / _header / spat_is_entry_name, spat_cache_*, and the
 * signature's cache_problem.  Each with its error statuses and messages.
 * Masks are checked against the patterns' definitions written as plain C. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spat.h"

/* ---- helpers ------------------------------------------------------------- */

static bool contains(const char *hay, const char *needle) {
  return hay != NULL && strstr(hay, needle) != NULL;
}

static spat_module *module_ok(spat_ctx *c, const char *text) {
  spat_module *m = NULL;
  spat_status st = spat_module_parse_string(c, "test.pat", text, &m);
  if (st != SPAT_OK)
    fprintf(stderr, "parse: %s: %s\n%s", spat_status_name(st),
            spat_ctx_error(c), spat_ctx_last_diagnostics(c));
  assert_int_equal(st, SPAT_OK);
  assert_non_null(m);
  return m;
}

static spat_pattern *parse_ok(spat_ctx *c, const char *text) {
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(c, "test.pat", text, NULL, &p);
  if (st != SPAT_OK)
    fprintf(stderr, "parse: %s: %s\n%s", spat_status_name(st),
            spat_ctx_error(c), spat_ctx_last_diagnostics(c));
  assert_int_equal(st, SPAT_OK);
  return p;
}

static spat_kernel *compile_ok(spat_pattern *p, spat_ctx *c, int64_t D,
                               spat_backend be) {
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, 2, be, 0};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK)
    fprintf(stderr, "compile: %s: %s\n", spat_status_name(st),
            spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  return k;
}

static int64_t param_value(const spat_pattern *p, const char *name) {
  for (size_t k = 0; k < spat_pattern_n_params(p); k++) {
    const char *n;
    int64_t v;
    assert_int_equal(spat_pattern_param(p, k, &n, &v), SPAT_OK);
    if (strcmp(n, name) == 0) return v;
  }
  fail_msg("no parameter %s", name);
  return 0;
}

/* ---- modules ------------------------------------------------------------- */

static const char *const lib_pat =
    "pattern helper(w) = window(w);\n"
    "pattern user(g = 2) = helper(1) | cols(0 .. g);\n"
    "pattern docs(runtime n = 4, input doc: int[]) =\n"
    "    causal & where(doc[i] == doc[j] || j < n);\n";

static void test_module_list(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_module *m = module_ok(c, lib_pat);
  assert_int_equal(spat_module_n_patterns(m), 3);
  spat_pattern_decl d;
  assert_int_equal(spat_module_pattern(m, 0, &d), SPAT_OK);
  assert_string_equal(d.name, "helper");
  assert_string_equal(d.signature, "helper(w)");
  assert_true(d.needs_params);
  assert_int_equal(spat_module_pattern(m, 1, &d), SPAT_OK);
  assert_string_equal(d.name, "user");
  assert_string_equal(d.signature, "user(g = 2)");
  assert_false(d.needs_params);
  assert_int_equal(spat_module_pattern(m, 2, &d), SPAT_OK);
  assert_string_equal(d.name, "docs");
  assert_true(contains(d.signature, "runtime n"));
  assert_true(contains(d.signature, "input doc"));
  assert_false(d.needs_params); /* runtime scalars are not parameters */

  assert_int_equal(spat_module_pattern(m, 3, &d), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "index 3 out of range (3 patterns)"));
  assert_int_equal(spat_module_pattern(m, 0, NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "out is NULL"));
  assert_int_equal(spat_module_pattern(NULL, 0, &d), SPAT_EINVAL);
  assert_int_equal(spat_module_n_patterns(NULL), 0);
  spat_module_free(m);
  spat_module_free(NULL);

  /* a text without patterns is a module, not an error */
  m = module_ok(c, "# nothing here\n");
  assert_int_equal(spat_module_n_patterns(m), 0);
  spat_pattern *p = NULL;
  assert_int_equal(spat_module_select(m, NULL, NULL, 0, &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "defines no pattern"));
  assert_null(p);
  spat_module_free(m);
  spat_ctx_free(c);
}

static void test_module_errors(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_module *m = (spat_module *)&m; /* overwritten with NULL */
  assert_int_equal(spat_module_parse_string(c, "bad.pat",
                                            "pattern bad = window(w);\n", &m),
                   SPAT_EPARSE);
  assert_null(m);
  assert_true(contains(spat_ctx_error(c), "bad.pat:1:22: error: unknown name"));
  assert_true(contains(spat_ctx_last_diagnostics(c), "^"));
  assert_int_equal(spat_module_parse_string(c, "x", NULL, &m), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "text is NULL"));
  assert_int_equal(spat_module_parse_string(c, "x", "", NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "out is NULL"));
  assert_int_equal(spat_module_parse_string(NULL, "x", "", &m), SPAT_EINVAL);
  assert_int_equal(spat_module_parse_file(c, "/nonexistent/x.pat", &m),
                   SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "/nonexistent/x.pat: cannot open"));
  assert_int_equal(spat_module_parse_file(c, NULL, &m), SPAT_EINVAL);

  /* a file, with its imports relative to it */
  char dir[] = "/tmp/spat_test_module_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char lib[128], main_[128];
  snprintf(lib, sizeof lib, "%s/lib.pat", dir);
  snprintf(main_, sizeof main_, "%s/main.pat", dir);
  FILE *f = fopen(lib, "w");
  fputs("pattern w1 = window(1);\n", f);
  fclose(f);
  f = fopen(main_, "w");
  fputs("import \"lib.pat\";\npattern both = w1 | causal;\n", f);
  fclose(f);
  assert_int_equal(spat_module_parse_file(c, main_, &m), SPAT_OK);
  assert_int_equal(spat_module_n_patterns(m), 1); /* not the imported one */
  spat_pattern_decl d;
  assert_int_equal(spat_module_pattern(m, 0, &d), SPAT_OK);
  assert_string_equal(d.name, "both");
  spat_module_free(m);
  remove(lib);
  remove(main_);
  rmdir(dir);
  spat_ctx_free(c);
}

static void test_module_select(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_module *m = module_ok(c, lib_pat);
  spat_pattern *p = NULL;

  /* NULL: the last pattern */
  assert_int_equal(spat_module_select(m, NULL, NULL, 0, &p), SPAT_OK);
  assert_string_equal(spat_pattern_name(p), "docs");
  spat_pattern_free(p);

  /* values for the parameters, as -D */
  spat_param g5 = {"g", 5};
  assert_int_equal(spat_module_select(m, "user", &g5, 1, &p), SPAT_OK);
  assert_int_equal(param_value(p, "g"), 5);
  spat_pattern_free(p);
  assert_int_equal(spat_module_select(m, "user", NULL, 0, &p), SPAT_OK);
  assert_int_equal(param_value(p, "g"), 2);
  spat_pattern_free(p);

  /* a pattern whose parameter has no default needs a value */
  p = NULL;
  assert_int_equal(spat_module_select(m, "helper", NULL, 0, &p), SPAT_EPARSE);
  assert_null(p);
  assert_true(contains(spat_ctx_error(c), "no value for parameter 'w'"));
  spat_param w3 = {"w", 3};
  assert_int_equal(spat_module_select(m, "helper", &w3, 1, &p), SPAT_OK);
  assert_int_equal(param_value(p, "w"), 3);

  /* the pattern outlives its module */
  spat_module_free(m);
  spat_kernel *k = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  spat_tensors t = {.B = 1, .H = 1, .Lq = 8, .Lk = 8};
  uint8_t row[8];
  assert_int_equal(spat_kernel_mask(k, &t, NULL, 0, 0, 0, 0, 1, row), SPAT_OK);
  for (int j = 0; j < 8; j++) assert_int_equal(row[j], j <= 3);
  spat_kernel_free(k);
  spat_pattern_free(p);

  /* errors */
  m = module_ok(c, lib_pat);
  assert_int_equal(spat_module_select(m, "nosuch", NULL, 0, &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c),
                       "no pattern named 'nosuch' (there are: helper, user, "
                       "docs)"));
  spat_param bad = {"nosuch", 1};
  assert_int_equal(spat_module_select(m, "user", &bad, 1, &p), SPAT_EPARSE);
  assert_true(contains(spat_ctx_error(c), "has no parameter 'nosuch'"));
  assert_true(contains(spat_ctx_last_diagnostics(c), "-D nosuch=1"));
  spat_param neg = {"w", -1};
  assert_int_equal(spat_module_select(m, "helper", &neg, 1, &p), SPAT_EPARSE);
  assert_true(contains(spat_ctx_error(c), "must be non-negative, got -1"));
  assert_true(contains(spat_ctx_last_diagnostics(c),
                       "while instantiating 'helper' with -D w=-1"));
  spat_param unnamed = {NULL, 1};
  assert_int_equal(spat_module_select(m, "user", &unnamed, 1, &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "params[0].name is NULL"));
  assert_int_equal(spat_module_select(m, "user", NULL, 1, &p), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "params is NULL"));
  assert_int_equal(spat_module_select(m, "user", NULL, 0, NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "out is NULL"));
  assert_int_equal(spat_module_select(NULL, "user", NULL, 0, &p), SPAT_EINVAL);
  spat_module_free(m);
  spat_ctx_free(c);
}

/* ---- describing ---------------------------------------------------------- */

static bool near2(int64_t a, int64_t b) {
  return a - b <= 2 && b - a <= 2;
}

static void test_describe(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(
      c,
      "extern fn near(int, int) -> bool;\n"
      "pattern ext(runtime a, runtime b = 7, input x: int[], input y: int[])"
      " = where(near(i, j) && x[i] == y[j] && i - j < a + b);\n");
  spat_pattern_info info;
  assert_int_equal(spat_pattern_describe(p, &info), SPAT_OK);
  assert_string_equal(info.name, "ext");
  assert_int_equal(info.n_args, 4);
  assert_string_equal(info.args[0].name, "a");
  assert_int_equal(info.args[0].kind, SPAT_KIND_SCALAR);
  assert_false(info.args[0].has_default);
  assert_string_equal(info.args[1].name, "b");
  assert_true(info.args[1].has_default);
  assert_int_equal(info.args[1].default_value, 7);
  assert_string_equal(info.args[2].name, "x");
  assert_int_equal(info.args[2].kind, SPAT_KIND_INPUT);
  assert_string_equal(info.args[3].name, "y");
  assert_int_equal(info.n_externs, 1);
  assert_string_equal(info.externs[0].name, "near");
  assert_int_equal(info.externs[0].nargs, 2);
  assert_false(info.data_dependent);

  /* what describe says is what compiling needs: register, then compile */
  spat_kernel *k = NULL;
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0};
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_int_equal(spat_ctx_register_fn(c, info.externs[0].name,
                                        SPAT_FN(near2), info.externs[0].nargs),
                   SPAT_OK);
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_int_equal(spat_kernel_signature(k)->n_args, info.n_args);
  spat_kernel_free(k);
  spat_pattern_free(p);

  p = parse_ok(c, "pattern tk(k = 2) = topk(k, causal);\n");
  assert_int_equal(spat_pattern_describe(p, &info), SPAT_OK);
  assert_true(info.data_dependent);
  assert_int_equal(info.n_args, 0);
  assert_int_equal(info.n_externs, 0);
  /* the current parameters are instantiated: a rejected value shows here */
  assert_int_equal(spat_pattern_set_param(p, "k", -1), SPAT_OK);
  assert_int_equal(spat_pattern_describe(p, &info), SPAT_EPARSE);
  assert_true(contains(spat_ctx_last_diagnostics(c), "error:"));
  assert_int_equal(spat_pattern_describe(p, NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "out is NULL"));
  assert_int_equal(spat_pattern_describe(NULL, &info), SPAT_EINVAL);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- masks --------------------------------------------------------------- */

static void test_mask_rows(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p =
      parse_ok(c, "pattern perhead = h == 0 ? causal : window(1);\n");
  spat_kernel *ki = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  spat_kernel *kj = compile_ok(p, c, 16, SPAT_BACKEND_JIT);
  /* Lq < Lk: row r is position r + Lk - Lq */
  enum { Lq = 5, Lk = 9 };
  spat_tensors t = {.B = 2, .H = 2, .Lq = Lq, .Lk = Lk};
  uint8_t m[Lq * Lk], mj[Lq * Lk];
  int64_t counts[Lq];
  for (int64_t h = 0; h < 2; h++) {
    assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 1, h, 0, Lq, m),
                     SPAT_OK);
    assert_int_equal(spat_kernel_mask(kj, &t, NULL, 0, 1, h, 0, Lq, mj),
                     SPAT_OK); /* any backend's kernel: the same mask */
    assert_memory_equal(m, mj, sizeof m);
    assert_int_equal(
        spat_kernel_mask_count(ki, &t, NULL, 0, 0, h, 0, Lq, counts), SPAT_OK);
    for (int64_t r = 0; r < Lq; r++) {
      int64_t i = r + Lk - Lq, n = 0;
      for (int64_t j = 0; j < Lk; j++) {
        bool want = h == 0 ? j <= i : j >= i - 1 && j <= i + 1;
        assert_int_equal(m[r * Lk + j], want);
        n += want;
      }
      assert_int_equal(counts[r], n);
    }
  }
  /* a few rows from the middle */
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 0, 2, 2, m), SPAT_OK);
  for (int64_t j = 0; j < Lk; j++) assert_int_equal(m[j], j <= 6);
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 0, Lq, 0, NULL),
                   SPAT_OK); /* no rows */

  /* errors */
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 2, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "head 2 out of range [0, 2)"));
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 2, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "batch 2 out of range [0, 2)"));
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 0, 4, 2, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "rows [4, 4 + 2) out of range"));
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 0, -1, 1, m),
                   SPAT_EINVAL);
  assert_int_equal(spat_kernel_mask(ki, &t, NULL, 0, 0, 0, 0, 1, NULL),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "spat_kernel_mask: out is NULL"));
  assert_int_equal(spat_kernel_mask_count(ki, &t, NULL, 0, 0, 0, 0, 1, NULL),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c),
                       "spat_kernel_mask_count: out is NULL"));
  assert_int_equal(spat_kernel_mask(ki, NULL, NULL, 0, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "tensors are NULL"));
  spat_value extra = spat_scalar(1);
  assert_int_equal(spat_kernel_mask(ki, &t, &extra, 1, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "takes 0 arguments"));
  spat_tensors bad = t;
  bad.H = 3;
  bad.Hkv = 2;
  assert_int_equal(spat_kernel_mask(ki, &bad, NULL, 0, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "not a multiple of Hkv"));
  bad = t;
  bad.Lk = -1;
  assert_int_equal(spat_kernel_mask(ki, &bad, NULL, 0, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "negative size"));
  assert_int_equal(spat_kernel_mask(NULL, &t, NULL, 0, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  spat_kernel_free(ki);
  spat_kernel_free(kj);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_mask_arguments(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c,
                             "pattern docs(runtime n, input doc: int[]) =\n"
                             "    causal & where(doc[i] == doc[j] || j < n);\n");
  spat_kernel *k = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  enum { L = 6 };
  int32_t doc[L] = {0, 0, 1, 1, 1, 2};
  spat_value args[2] = {spat_scalar(1), spat_input(doc)};
  spat_tensors t = {.B = 1, .H = 1, .Lq = L, .Lk = L};
  uint8_t m[L * L];
  assert_int_equal(spat_kernel_mask(k, &t, args, 2, 0, 0, 0, L, m), SPAT_OK);
  for (int i = 0; i < L; i++)
    for (int j = 0; j < L; j++)
      assert_int_equal(m[i * L + j], j <= i && (doc[i] == doc[j] || j < 1));
  int64_t counts[L];
  assert_int_equal(spat_kernel_mask_count(k, &t, args, 2, 0, 0, 0, L, counts),
                   SPAT_OK);
  assert_int_equal(counts[5], 2); /* key 0 and itself */

  spat_value swapped[2] = {spat_input(doc), spat_scalar(1)};
  assert_int_equal(spat_kernel_mask(k, &t, swapped, 2, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c),
                       "argument 0 ('n') of kernel 'docs' is a runtime scalar, "
                       "got an input array"));
  spat_value missing[2] = {spat_scalar(1), spat_input(NULL)};
  assert_int_equal(spat_kernel_mask(k, &t, missing, 2, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "input array 'doc' is NULL"));
  assert_int_equal(spat_kernel_mask(k, &t, NULL, 2, 0, 0, 0, 1, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "args is NULL"));
  spat_kernel_free(k);
  spat_pattern_free(p);

  /* a run-time error of the pattern, located */
  p = parse_ok(c, "pattern oob(input doc: int[]) = where(doc[i + 1] == 0);\n");
  k = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  spat_value a1 = spat_input(doc);
  assert_int_equal(spat_kernel_mask(k, &t, &a1, 1, 0, 0, 0, L, m), SPAT_ERANGE);
  assert_true(contains(spat_ctx_error(c), "test.pat:1:"));
  assert_true(contains(spat_ctx_error(c), "out of range"));
  assert_int_equal(spat_kernel_mask_count(k, &t, &a1, 1, 0, 0, 0, L, counts),
                   SPAT_ERANGE);
  assert_int_equal(spat_kernel_mask(k, &t, &a1, 1, 0, 0, 0, L - 1, m),
                   SPAT_OK); /* the rows before the last are fine */
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

static void test_mask_topk(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern tk(k = 2) = topk(k, causal);\n");
  spat_kernel *k = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  enum { L = 7, D = 16 };
  float q[L * D], kk[L * D];
  uint64_t s = 5;
  for (int x = 0; x < L * D; x++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    q[x] = (float)(s >> 40) / (float)(1 << 24) - 0.5f;
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    kk[x] = (float)(s >> 40) / (float)(1 << 24) - 0.5f;
  }
  spat_tensors t = {.B = 1, .H = 1, .Lq = L, .Lk = L};
  uint8_t m[L * L];
  assert_int_equal(spat_kernel_mask(k, &t, NULL, 0, 0, 0, 0, L, m),
                   SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "uses topk: its mask needs q and k"));
  t.q = q;
  t.k = kk;
  assert_int_equal(spat_kernel_mask(k, &t, NULL, 0, 0, 0, 0, L, m), SPAT_OK);
  for (int i = 0; i < L; i++) {
    int n = 0, best = -1;
    double best_s = -1e30;
    for (int j = 0; j <= i; j++) {
      double d = 0;
      for (int x = 0; x < D; x++) d += (double)q[i * D + x] * kk[j * D + x];
      if (d > best_s) best_s = d, best = j;
    }
    for (int j = 0; j < L; j++) {
      n += m[i * L + j];
      if (j > i) assert_int_equal(m[i * L + j], 0);
    }
    assert_int_equal(n, i + 1 < 2 ? i + 1 : 2);
    assert_int_equal(m[i * L + best], 1); /* the best key is among them */
  }
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- explain ------------------------------------------------------------- */

static void test_explain(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern w2 = window(2);\n");
  spat_explain_options o = {1, 256, 256, 64, 64};
  char *text = NULL;
  assert_int_equal(spat_pattern_explain(p, &o, NULL, 0, &text), SPAT_OK);
  assert_true(contains(text, "pattern w2"));
  assert_true(contains(text, "window(2, 2)"));
  assert_true(contains(text, "sizes: H 1, Lq 256, Lk 256; tiles of 64 x 64"));
  assert_true(contains(text, "keys per row, exact: min 3, median 5, max 5"));
  free(text);

  /* errors */
  text = (char *)&text;
  spat_explain_options bad = {0, 8, 8, 64, 64};
  assert_int_equal(spat_pattern_explain(p, &bad, NULL, 0, &text), SPAT_EINVAL);
  assert_null(text);
  assert_true(contains(spat_ctx_error(c), "H = 0"));
  bad = (spat_explain_options){1, -1, 8, 64, 64};
  assert_int_equal(spat_pattern_explain(p, &bad, NULL, 0, &text), SPAT_EINVAL);
  bad = (spat_explain_options){1, 8, 8, 0, 64};
  assert_int_equal(spat_pattern_explain(p, &bad, NULL, 0, &text), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "tiles 0 x 64"));
  bad = (spat_explain_options){1, (int64_t)1 << 50, 8, 64, 64};
  assert_int_equal(spat_pattern_explain(p, &bad, NULL, 0, &text), SPAT_ERANGE);
  assert_true(contains(spat_ctx_error(c), "too large"));
  assert_int_equal(spat_pattern_explain(p, NULL, NULL, 0, &text), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "options are NULL"));
  assert_int_equal(spat_pattern_explain(p, &o, NULL, 0, NULL), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "text is NULL"));
  int64_t one = 1;
  assert_int_equal(spat_pattern_explain(p, &o, &one, 1, &text), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "has 0 runtime scalars, got 1"));
  assert_int_equal(spat_pattern_explain(NULL, &o, NULL, 0, &text),
                   SPAT_EINVAL);
  spat_pattern_free(p);

  /* runtime scalars */
  p = parse_ok(c, "pattern sinks(runtime n) = causal & (cols(0 .. n) | "
                  "window(1, 0));\n");
  o = (spat_explain_options){1, 64, 64, 16, 16};
  assert_int_equal(spat_pattern_explain(p, &o, NULL, 0, &text), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "has 1 runtime scalar, got 0"));
  int64_t n = 2;
  assert_int_equal(spat_pattern_explain(p, &o, NULL, 1, &text), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "runtime is NULL"));
  assert_int_equal(spat_pattern_explain(p, &o, &n, 1, &text), SPAT_OK);
  /* row 63 sees keys 0, 1 (the sinks), 62 and 63 */
  assert_true(contains(text, "keys per row, exact: min 1, median 4, max 4"));
  free(text);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- ahead-of-time objects ------------------------------------------------ */

static bool file_starts(const char *path, const char *magic, size_t n) {
  char buf[16] = "";
  FILE *f = fopen(path, "rb");
  if (f == NULL) return false;
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  return got == n && memcmp(buf, magic, n) == 0;
}

static bool file_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return false;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, needle) != NULL;
}

static void test_emit(void **state) {
  (void)state;
  char dir[] = "/tmp/spat_test_emit_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char obj[128], hdr[128], s[128], ll[128], so[128], hdr2[128];
  snprintf(obj, sizeof obj, "%s/k.o", dir);
  snprintf(hdr, sizeof hdr, "%s/k.h", dir);
  snprintf(s, sizeof s, "%s/k.s", dir);
  snprintf(ll, sizeof ll, "%s/k.ll", dir);
  snprintf(so, sizeof so, "%s/ks.o", dir);
  snprintf(hdr2, sizeof hdr2, "%s/only.h", dir);

  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse_ok(c, "pattern docs(runtime n = 4, input doc: "
                                "int[]) = causal & where(doc[i] == doc[j] || "
                                "j < n);\n");
  spat_aot_options o = {32, SPAT_LAYOUT_BLHD, 0, "mykernel", NULL, "docs.pat",
                        SPAT_EMIT_OBJECT};
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_OK);
  assert_true(file_starts(obj, "\177ELF", 4));
  assert_true(file_has(hdr, "int mykernel(const spat_tensors *t, int64_t n, "
                            "const int32_t *doc);"));
  assert_true(file_has(hdr, "#define mykernel_D 32"));
  assert_true(file_has(hdr, "SPAT_LAYOUT_BLHD"));
  assert_true(file_has(hdr, "docs.pat"));
  o.emit = SPAT_EMIT_ASM;
  assert_int_equal(spat_emit(p, &o, s, NULL), SPAT_OK);
  assert_true(file_has(s, "mykernel"));
  o.emit = SPAT_EMIT_LLVM;
  assert_int_equal(spat_emit(p, &o, ll, NULL), SPAT_OK);
  assert_true(file_has(ll, "define i32 @mykernel(ptr"));
  o.emit = SPAT_EMIT_SHARED;
  assert_int_equal(spat_emit(p, &o, so, NULL), SPAT_OK);
  assert_true(file_starts(so, "\177ELF", 4));
  o.name = NULL; /* the pattern's name */
  assert_int_equal(spat_emit_header(p, &o, "docs.o", hdr2), SPAT_OK);
  assert_true(file_has(hdr2, "int docs(const spat_tensors *t, int64_t n, "
                             "const int32_t *doc);"));

  /* names */
  assert_true(spat_is_entry_name("x1"));
  assert_true(spat_is_entry_name("_k"));
  assert_false(spat_is_entry_name("1x"));
  assert_false(spat_is_entry_name("int"));
  assert_false(spat_is_entry_name(""));
  assert_false(spat_is_entry_name("a-b"));
  assert_false(spat_is_entry_name(NULL));

  /* errors */
  o = (spat_aot_options){32, SPAT_LAYOUT_BHLD, 0, "while", NULL, NULL,
                         SPAT_EMIT_OBJECT};
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "entry name 'while' is not a C "
                                          "identifier"));
  o.name = NULL;
  o.D = 0;
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "D = 0: must be >= 1"));
  o.D = 8;
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EUNSUPPORTED);
  assert_true(contains(spat_ctx_error(c), "head dimension 8"));
  o.D = 32;
  o.cpu = "nosuchcpu";
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EUNSUPPORTED);
  assert_true(contains(spat_ctx_error(c), "nosuchcpu"));
  o.cpu = NULL;
  o.layout = (spat_layout)7;
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "unknown layout 7"));
  o.layout = SPAT_LAYOUT_BHLD;
  o.threads = -1;
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EINVAL);
  o.threads = 0;
  o.emit = (spat_emit_kind)9;
  assert_int_equal(spat_emit(p, &o, obj, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "unknown emit kind 9"));
  o.emit = SPAT_EMIT_OBJECT;
  assert_int_equal(spat_emit(p, &o, "/nonexistent-dir/k.o", NULL), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "/nonexistent-dir/k.o"));
  assert_int_equal(spat_emit_header(p, &o, "k.o", "/nonexistent-dir/k.h"),
                   SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "/nonexistent-dir/k.h"));
  assert_int_equal(spat_emit(p, &o, NULL, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "path is NULL"));
  assert_int_equal(spat_emit(p, NULL, obj, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "options are NULL"));
  assert_int_equal(spat_emit_header(p, &o, NULL, hdr), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "object_path is NULL"));
  assert_int_equal(spat_emit(NULL, &o, obj, hdr), SPAT_EINVAL);
  assert_int_equal(spat_emit_header(NULL, &o, obj, hdr), SPAT_EINVAL);
  /* a value the pattern rejects shows when compiling */
  spat_pattern *w = parse_ok(c, "pattern w(n = 1) = window(n);\n");
  assert_int_equal(spat_pattern_set_param(w, "n", -2), SPAT_OK);
  assert_int_equal(spat_emit(w, &o, obj, NULL), SPAT_EPARSE);
  assert_true(contains(spat_ctx_last_diagnostics(c), "-D n=-2"));
  spat_pattern_free(w);

  spat_pattern_free(p);
  spat_ctx_free(c);
  const char *files[] = {obj, hdr, s, ll, so, hdr2};
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) remove(files[k]);
  assert_int_equal(rmdir(dir), 0);
}

/* ---- the disk kernel cache ----------------------------------------------- */

typedef struct seen {
  int n, valid;
  char file[64], pattern[128], cpu[64], problem[256];
  int64_t D;
  int layout, threads;
  bool key_ok;
} seen;

static void remember(void *user, const spat_cache_entry *e) {
  seen *s = user;
  s->n++;
  s->valid += e->valid;
  snprintf(s->file, sizeof s->file, "%s", e->file);
  snprintf(s->pattern, sizeof s->pattern, "%s", e->pattern);
  snprintf(s->cpu, sizeof s->cpu, "%s", e->cpu);
  snprintf(s->problem, sizeof s->problem, "%s", e->problem ? e->problem : "");
  s->D = e->D;
  s->layout = e->layout;
  s->threads = e->threads;
  s->key_ok = e->valid ? e->key != NULL && strstr(e->key, "pattern w2") != NULL
                       : e->key == NULL;
}

static void test_cache(void **state) {
  (void)state;
  char dir[] = "/tmp/spat_test_qcache_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *old = getenv("XDG_CACHE_HOME");
  char *saved = old ? strdup(old) : NULL;
  setenv("XDG_CACHE_HOME", dir, 1);
  char want[128], got[4096];
  snprintf(want, sizeof want, "%s/spatc", dir);

  spat_ctx *c = spat_ctx_new();
  assert_int_equal(spat_cache_dir(c, got, sizeof got), SPAT_OK);
  assert_string_equal(got, want);
  struct stat st;
  assert_int_equal(stat(want, &st), 0); /* created */
  size_t n = 99;
  seen s = {0};
  assert_int_equal(spat_cache_list(c, remember, &s, &n), SPAT_OK);
  assert_int_equal(n, 0);
  assert_int_equal(s.n, 0);

  spat_pattern *p = parse_ok(c, "pattern w2 = window(2);\n");
  spat_compile_options o = {16, SPAT_LAYOUT_BLHD, 3, SPAT_BACKEND_JIT, 1};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_null(spat_kernel_signature(k)->cache_problem);
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  spat_kernel_free(k);
  assert_int_equal(spat_cache_list(c, remember, &s, &n), SPAT_OK);
  assert_int_equal(n, 1);
  assert_int_equal(s.valid, 1);
  assert_true(contains(s.file, ".spk"));
  assert_string_equal(s.pattern, "w2()");
  assert_int_equal(s.D, 16);
  assert_int_equal(s.layout, SPAT_LAYOUT_BLHD);
  assert_int_equal(s.threads, 3);
  assert_true(strcmp(s.cpu, "?") != 0 && s.cpu[0] != '\0');
  assert_true(s.key_ok);

  /* a damaged entry is listed as such */
  char path[4300];
  snprintf(path, sizeof path, "%s/%s", want, s.file);
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, -10, SEEK_END);
  fputc('!', f);
  fclose(f);
  s = (seen){0};
  assert_int_equal(spat_cache_list(c, remember, &s, NULL), SPAT_OK);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.valid, 0);
  assert_true(contains(s.problem, "checksum"));
  assert_true(s.key_ok);
  assert_int_equal(s.D, -1);
  assert_string_equal(s.pattern, "?");

  size_t removed = 0;
  assert_int_equal(spat_cache_clear(c, &removed), SPAT_OK);
  assert_int_equal(removed, 1);
  assert_int_equal(spat_cache_list(c, remember, &s, &n), SPAT_OK);
  assert_int_equal(n, 0);
  assert_int_equal(spat_cache_clear(c, NULL), SPAT_OK);

  /* the interpreter has no cache: no problem either */
  o.backend = SPAT_BACKEND_INTERP;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_null(spat_kernel_signature(k)->cache_problem);
  spat_kernel_free(k);

  /* an unusable cache: the kernel is compiled anyway, and says why */
  char file[128];
  snprintf(file, sizeof file, "%s/afile", dir);
  f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  setenv("XDG_CACHE_HOME", file, 1); /* a file, not a directory */
  o.backend = SPAT_BACKEND_JIT;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_int_equal(spat_kernel_signature(k)->from_cache, 0);
  assert_true(contains(spat_kernel_signature(k)->cache_problem,
                       "cannot create"));
  spat_kernel_free(k);
  assert_int_equal(spat_cache_dir(c, got, sizeof got), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "cannot create"));
  assert_int_equal(spat_cache_list(c, remember, &s, &n), SPAT_EIO);
  assert_int_equal(spat_cache_clear(c, &removed), SPAT_EIO);

  /* errors */
  setenv("XDG_CACHE_HOME", dir, 1);
  assert_int_equal(spat_cache_dir(c, got, 4), SPAT_EIO);
  assert_true(contains(spat_ctx_error(c), "too long"));
  assert_int_equal(spat_cache_dir(c, NULL, 10), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "buf is NULL"));
  assert_int_equal(spat_cache_list(c, NULL, NULL, &n), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "fn is NULL"));
  assert_int_equal(spat_cache_dir(NULL, got, sizeof got), SPAT_EINVAL);
  assert_int_equal(spat_cache_list(NULL, remember, &s, &n), SPAT_EINVAL);
  assert_int_equal(spat_cache_clear(NULL, &removed), SPAT_EINVAL);

  spat_pattern_free(p);
  spat_ctx_free(c);
  remove(file);
  rmdir(want);
  assert_int_equal(rmdir(dir), 0);
  if (saved) {
    setenv("XDG_CACHE_HOME", saved, 1);
    free(saved);
  } else {
    unsetenv("XDG_CACHE_HOME");
  }
}

/* Every tile spat_kernel_tiles calls FULL allows every pair of the exact
 * mask, every SKIPPED one none; returns how many tiles of each class. */
static void check_tiles(spat_kernel *k, const spat_tensors *t,
                        const spat_value *args, size_t n, int64_t h,
                        int64_t bq, int64_t bk, int64_t counts[3]) {
  assert_int_equal(spat_kernel_tiles(k, t, args, n, 0, h, bq, bk, NULL), SPAT_EINVAL);
  int64_t gq = bq ? bq : 64, gk = bk ? bk : 64; /* 0: the JIT's tiles */
  int64_t nqt = (t->Lq + gq - 1) / gq, nkt = (t->Lk + gk - 1) / gk;
  uint8_t *tiles = malloc((size_t)(nqt * nkt));
  uint8_t *mask = malloc((size_t)(t->Lq * t->Lk));
  assert_non_null(tiles);
  assert_non_null(mask);
  assert_int_equal(spat_kernel_tiles(k, t, args, n, 0, h, bq, bk, tiles), SPAT_OK);
  assert_int_equal(spat_kernel_mask(k, t, args, n, 0, h, 0, t->Lq, mask), SPAT_OK);
  counts[0] = counts[1] = counts[2] = 0;
  for (int64_t a = 0; a < nqt; a++)
    for (int64_t b = 0; b < nkt; b++) {
      int64_t on = 0, all = 0;
      for (int64_t r = a * gq; r < (a + 1) * gq && r < t->Lq; r++)
        for (int64_t j = b * gk; j < (b + 1) * gk && j < t->Lk; j++)
          on += mask[r * t->Lk + j], all++;
      uint8_t c = tiles[a * nkt + b];
      assert_true(c <= SPAT_TILE_FULL);
      if (c == SPAT_TILE_FULL) assert_int_equal(on, all);
      if (c == SPAT_TILE_SKIPPED) assert_int_equal(on, 0);
      counts[c]++;
    }
  free(tiles);
  free(mask);
}

static void test_tiles(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_tensors t = {.B = 1, .H = 1, .Lq = 256, .Lk = 256};
  int64_t n[3];
  /* causal, 64 x 64: below the diagonal full, on it partial, above skipped */
  spat_pattern *p = parse_ok(c, "pattern p = causal;");
  spat_kernel *k = compile_ok(p, c, 16, SPAT_BACKEND_INTERP);
  check_tiles(k, &t, NULL, 0, 0, 0, 0, n);
  assert_int_equal(n[SPAT_TILE_FULL], 6);
  assert_int_equal(n[SPAT_TILE_PARTIAL], 4);
  assert_int_equal(n[SPAT_TILE_SKIPPED], 6);
  check_tiles(k, &t, NULL, 0, 0, 32, 100, n); /* other tiles, ragged */
  assert_true(n[SPAT_TILE_PARTIAL] > 0 && n[SPAT_TILE_SKIPPED] > 0);
  /* bottom-right alignment: Lq < Lk moves the diagonal */
  spat_tensors u = {.B = 1, .H = 1, .Lq = 64, .Lk = 256};
  check_tiles(k, &u, NULL, 0, 0, 0, 0, n);
  assert_int_equal(n[SPAT_TILE_FULL], 3);
  assert_int_equal(n[SPAT_TILE_PARTIAL], 1);
  uint8_t out[16];
  assert_int_equal(spat_kernel_tiles(k, &t, NULL, 0, 0, 1, 0, 0, out), SPAT_EINVAL);
  assert_true(contains(spat_ctx_error(c), "head 1 out of range"));
  assert_int_equal(spat_kernel_tiles(k, &t, NULL, 0, 0, 0, 0, 0, NULL), SPAT_EINVAL);
  assert_int_equal(spat_kernel_tiles(k, &t, NULL, 0, 0, 0, -1, 0, out), SPAT_EINVAL);
  assert_int_equal(spat_kernel_tiles(NULL, &t, NULL, 0, 0, 0, 0, 0, out), SPAT_EINVAL);
  spat_kernel_free(k);
  spat_pattern_free(p);
  /* an input array tightens the plan: one document per 64 keys */
  p = parse_ok(c, "pattern d(input doc: int[]) = where(doc[i] == doc[j]);");
  k = compile_ok(p, c, 16, SPAT_BACKEND_JIT);
  int32_t doc[256];
  for (int j = 0; j < 256; j++) doc[j] = j / 64;
  spat_value arg = spat_input(doc);
  check_tiles(k, &t, &arg, 1, 0, 0, 0, n);
  assert_int_equal(n[SPAT_TILE_SKIPPED], 12);
  assert_int_equal(spat_kernel_tiles(k, &t, NULL, 0, 0, 0, 0, 0, out), SPAT_EINVAL);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_module_list),
      cmocka_unit_test(test_module_errors),
      cmocka_unit_test(test_module_select),
      cmocka_unit_test(test_describe),
      cmocka_unit_test(test_mask_rows),
      cmocka_unit_test(test_mask_arguments),
      cmocka_unit_test(test_mask_topk),
      cmocka_unit_test(test_explain),
      cmocka_unit_test(test_emit),
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_tiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
