/* test_errors.c: run-time errors and non-finite numbers, the same on every
 * backend.
 *
 * Each case runs one .pat pattern through the public API on the interpreter,
 * the JIT, and the JIT's disk cache (an AOT object loaded back: the AOT
 * run-time path), and requires the same status and the same message text,
 * which must be the one the contract gives (docs/language.md, "Run-time
 * errors"): an error of any operand anywhere in the domain, located
 * `file:line:col: error: ...`, the first in row, key and tree order.  Then
 * the NaN/Inf policy (IEEE propagation) and the scale checks.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze.h"
#include "arena.h"
#include "diag.h"
#include "frontend.h"
#include "plan.h"
#include "spat.h"

#define D 16

typedef struct problem {
  int64_t H, Lq, Lk;
  float *q, *k, *v, *o, *lse;
} problem;

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float *rnd(int64_t n, uint64_t *s) {
  float *x = malloc(sizeof *x * (size_t)n);
  for (int64_t t = 0; t < n; t++)
    x[t] = (float)((double)(rng_next(s) >> 11) / 9007199254740992.0 * 2 - 1);
  return x;
}

static problem problem_new(int64_t H, int64_t Lq, int64_t Lk) {
  uint64_t s = 7;
  problem p = {H, Lq, Lk, rnd(H * Lq * D, &s), rnd(H * Lk * D, &s),
               rnd(H * Lk * D, &s), calloc((size_t)(H * Lq * D), sizeof(float)),
               calloc((size_t)(H * Lq), sizeof(float))};
  return p;
}

static void problem_free(problem *p) {
  free(p->q), free(p->k), free(p->v), free(p->o), free(p->lse);
}

static spat_tensors tensors(const problem *p, float scale) {
  spat_tensors t = {1, p->H, p->H, p->Lq, p->Lk, p->q, p->k, p->v, p->o,
                    p->lse, scale, NULL};
  return t;
}

enum { INTERP, JIT, CACHED, N_BACKENDS };
static const char *const backend_name[N_BACKENDS] = {"interp", "jit", "jit from the cache"};

/* Compiles src's pattern on backend b; NULL with a failure on error. */
static spat_kernel *compile_on(spat_ctx *c, const char *src, int b) {
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(c, "t.pat", src, NULL, &p) != SPAT_OK)
    fail_msg("parse: %s\n%s", spat_ctx_error(c), spat_ctx_last_diagnostics(c));
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, 2,
                            b == INTERP ? SPAT_BACKEND_INTERP : SPAT_BACKEND_JIT,
                            b == CACHED, 0};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK) fail_msg("compile on %s: %s", backend_name[b], spat_ctx_error(c));
  if (b == CACHED) { /* the second compile loads the stored object */
    spat_kernel_free(k);
    assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
    assert_int_equal(spat_kernel_signature(k)->from_cache, 1);
  }
  spat_pattern_free(p);
  return k;
}

/* Runs src on every backend with the given arguments; every backend must
 * give the same status and message, and want (NULL: success) must be a
 * suffix of "<message>" after "t.pat:L:C: error: ". */
static void same_everywhere(const char *src, int64_t H, int64_t Lq, int64_t Lk,
                            const spat_value *args, size_t n_args,
                            const char *want) {
  char msg[N_BACKENDS][1024];
  spat_status st[N_BACKENDS];
  for (int b = 0; b < N_BACKENDS; b++) {
    spat_ctx *c = spat_ctx_new();
    spat_kernel *k = compile_on(c, src, b);
    problem p = problem_new(H, Lq, Lk);
    spat_tensors t = tensors(&p, 0);
    st[b] = spat_kernel_call(k, &t, args, n_args);
    snprintf(msg[b], sizeof msg[b], "%s", st[b] == SPAT_OK ? "" : spat_ctx_error(c));
    problem_free(&p);
    spat_kernel_free(k);
    spat_ctx_free(c);
  }
  for (int b = 1; b < N_BACKENDS; b++)
    if (st[b] != st[0] || strcmp(msg[b], msg[0]) != 0)
      fail_msg("%s\n(H=%lld Lq=%lld Lk=%lld)\n  interp: %d '%s'\n  %s: %d '%s'", src,
               (long long)H, (long long)Lq, (long long)Lk, st[0], msg[0],
               backend_name[b], st[b], msg[b]);
  if (!want) {
    if (st[0] != SPAT_OK) fail_msg("%s: expected success, got '%s'", src, msg[0]);
    return;
  }
  if (st[0] == SPAT_OK) fail_msg("%s: expected '%s', got success", src, want);
  const char *e = strstr(msg[0], ": error: ");
  if (strncmp(msg[0], "t.pat:1:", 8) != 0 || !e || strcmp(e + 9, want) != 0)
    fail_msg("%s: expected 't.pat:1:C: error: %s', got '%s'", src, want, msg[0]);
}

static void test_examples(void **state) {
  (void)state;
  spat_value big = spat_scalar(INT64_MAX), m1 = spat_scalar(-1);
  int32_t doc[64] = {0};
  spat_value in = spat_input(doc);
  /* the comparison stays checked: the plan's j > -n must not hide j + n */
  same_everywhere("pattern p(runtime n = 0) = where(j + n > 0);", 1, 8, 8, &big, 1,
                  "integer overflow in '+'");
  same_everywhere("pattern p(runtime n = 0) = causal & where(j + n > 0);", 1, 70, 70,
                  &big, 1, "integer overflow in '+'");
  /* Lq > Lk: i reaches past the input, whatever the other operand says */
  same_everywhere("pattern p(input doc: int[]) = where(doc[i] == 0) | full;", 1, 16, 8,
                  &in, 1, "index 8 of input 'doc' is out of range [0, 8)");
  same_everywhere("pattern p(input doc: int[]) = full | where(doc[i] == 0);", 1, 16, 8,
                  &in, 1, "index 8 of input 'doc' is out of range [0, 8)");
  same_everywhere("pattern p(input doc: int[]) = topk(0, where(doc[i] == 0));", 1, 16,
                  8, &in, 1, "index 8 of input 'doc' is out of range [0, 8)");
  /* an argument error counts where the operand cannot change the mask */
  same_everywhere("pattern p(runtime n = 1) = causal & (window(100, 0) | stride(n));",
                  1, 8, 8, &m1, 1, "the stride of stride is -1, must be >= 1");
  same_everywhere("pattern p(runtime n = 1) = none & window(n);", 1, 8, 8, &m1, 1,
                  "the left size of window is -1, must be >= 0");
}

static void test_domain(void **state) {
  (void)state;
  spat_value zero = spat_scalar(0), m1 = spat_scalar(-1);
  int32_t doc[300];
  for (int x = 0; x < 300; x++) doc[x] = x / 7;
  spat_value in = spat_input(doc);
  /* division by zero at j == i - 5: outside a window the plan skips */
  same_everywhere("pattern p = window(2) & where(10 / (i - j - 5) > 0);", 1, 200, 200,
                  NULL, 0, "division by zero");
  same_everywhere("pattern p = where(10 / (i - j - 5) > 0) & window(2);", 1, 200, 200,
                  NULL, 0, "division by zero");
  /* and inside blocks, and under topk at block granularity */
  same_everywhere("pattern p = blocks(4) { where(j / (i - 3) > 0) };", 1, 32, 32, NULL,
                  0, "division by zero");
  same_everywhere("pattern p(input doc: int[]) = "
                  "blocks(8) { topk(2, where(doc[j * 8 + 8] >= 0)) };",
                  1, 64, 64, &in, 1, "index 64 of input 'doc' is out of range [0, 64)");
  /* per head: c ? P : Q takes only the chosen arm */
  same_everywhere("pattern p = h < 1 ? full : stride(h - 1);", 2, 8, 8, NULL, 0,
                  "the stride of stride is 0, must be >= 1");
  same_everywhere("pattern p = h < 1 ? full : stride(h - 1);", 1, 8, 8, NULL, 0, NULL);
  /* every argument and set item */
  same_everywhere("pattern p(runtime n = 1) = full | cols({0, 1 / n});", 1, 8, 8, &zero,
                  1, "division by zero");
  same_everywhere("pattern p(runtime n = 1) = causal - dilated(2, n);", 1, 8, 8, &zero,
                  1, "the dilation d of dilated is 0, must be >= 1");
  same_everywhere("pattern p(runtime n = 1) = full | random(n, 3);", 1, 8, 8, &m1, 1,
                  "the key count r of random is -1, must be >= 0");
  same_everywhere("pattern p(runtime n = 1) = blocks(n) { causal };", 1, 8, 8, &zero, 1,
                  "the block size of blocks is 0, must be >= 1");
  same_everywhere("pattern p(runtime n = 1) = topk(n, causal);", 1, 8, 8, &m1, 1,
                  "k of topk is -1, must be >= 0");
  /* the first error: rows, keys, then tree order (the stride's argument at
   * (0, 0) comes before the overflow at (0, 1)) */
  spat_value two[2] = {spat_scalar(INT64_MAX), spat_scalar(0)};
  same_everywhere("pattern p(runtime n = 0, runtime m = 1) = where(j + n > 0) | stride(m);",
                  1, 8, 8, two, 2, "the stride of stride is 0, must be >= 1");
  same_everywhere("pattern p(runtime n = 0, runtime m = 1) = stride(m + 1) | where(j + n > 0);",
                  1, 8, 8, two, 2, "integer overflow in '+'");
  /* guards keep their meaning: no error where && || ?: do not evaluate */
  same_everywhere("pattern p(input doc: int[]) = "
                  "causal & where(j > 0 && doc[j - 1] == doc[j]);",
                  1, 300, 300, &in, 1, NULL);
  same_everywhere("pattern p(input doc: int[]) = where(i < Lk ? doc[i] == doc[j] : j == 0);",
                  1, 80, 64, &in, 1, NULL);
  same_everywhere("pattern p = where(i == j || 10 / (i - j) > 0);", 1, 100, 100, NULL, 0,
                  NULL);
}

/* plan_where_may_fail: the common predicates are proven safe (no scan),
 * the failing ones are not. */
static int may_fail(const char *src, int64_t Lq, int64_t Lk, int64_t rt) {
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_string(d, a, "t.pat", src);
  assert_non_null(m);
  ir_program *p = fe_instantiate(d, m, NULL, NULL, 0);
  assert_non_null(p);
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  assert_non_null(plan);
  int64_t runtime[1] = {rt};
  plan_env env = {0, 1, Lq, Lk, runtime, NULL, 0, 0, 0, 0, NULL, NULL};
  int r = plan_where_may_fail(plan, &env);
  free(plan);
  arena_free(a);
  diag_free(d);
  return r;
}

static void test_where_safety(void **state) {
  (void)state;
  const char *docs = "pattern p(input doc: int[]) = causal & where(doc[i] == doc[j]);";
  assert_int_equal(may_fail(docs, 4096, 4096, 0), 0);
  assert_int_equal(may_fail(docs, 100, 4096, 0), 0);
  assert_int_equal(may_fail(docs, 4097, 4096, 0), 1);
  assert_int_equal(may_fail("pattern p = where(abs(i - j) < 128);", 1 << 20, 1 << 20, 0), 0);
  assert_int_equal(may_fail("pattern p = where((i / 64) % 4 == h % 4);", 4096, 4096, 0), 0);
  assert_int_equal(may_fail("pattern p(input doc: int[]) = "
                            "where(j > 0 && doc[j - 1] != doc[j]);", 4096, 4096, 0), 0);
  assert_int_equal(may_fail("pattern p(input doc: int[]) = where(doc[j - 1] != doc[j]);",
                            4096, 4096, 0), 1);
  const char *sh = "pattern p(runtime n = 0) = where(j + n > 0);";
  assert_int_equal(may_fail(sh, 64, 64, 1000), 0);
  assert_int_equal(may_fail(sh, 64, 64, INT64_MAX), 1);
  assert_int_equal(may_fail("pattern p = where(10 / (i - j) > 0);", 64, 64, 0), 1);
  assert_int_equal(may_fail("pattern p = where(i != j && 10 / (i - j) > 0);", 64, 64, 0), 1);
  assert_int_equal(may_fail("pattern p = causal;", 64, 64, 0), 0);
}

/* ---- NaN and Inf: IEEE propagation (docs/language.md, "Numbers") ---- */

enum { FIN, ROWNAN, VNAN, EMPTY };  /* what a row of o / lse is */
static const char *const cls_name[] = {"finite", "NaN (o and lse)",
                                       "non-finite o, finite lse", "empty (0, -inf)"};

static int classify(const float *o, float lse) {
  int nan_o = 0, zero = 1, fin = 1;
  for (int d = 0; d < D; d++) {
    nan_o += isnan(o[d]);
    zero &= o[d] == 0;
    fin &= isfinite(o[d]);
  }
  if (nan_o == D && isnan(lse)) return ROWNAN;
  if (!fin && isfinite(lse)) return VNAN;  /* the non-finite v components */
  if (zero && lse == -INFINITY) return EMPTY;
  if (fin && isfinite(lse)) return FIN;
  return -1;  /* anything else is wrong under the policy */
}

typedef bool (*mask_fn)(int64_t i, int64_t j);
static bool m_causal(int64_t i, int64_t j) { return j <= i; }
static bool m_window(int64_t i, int64_t j) { return j - i <= 1 && i - j <= 1; }
static bool m_full(int64_t i, int64_t j) { (void)i, (void)j; return true; }
static bool m_hole(int64_t i, int64_t j) { return j <= i && i != 9; }

/* The policy, in double: what row r must be. */
static int expect(const problem *p, mask_fn m, int64_t r, double scale) {
  const double lim = (double)3.40282347e38f * 0.69314718055994530942;
  int n = 0, nan = 0, live = 0, vnan = 0;
  for (int64_t j = 0; j < p->Lk; j++) {
    if (!m(r, j)) continue;
    n++;
    double dot = 0;
    for (int d = 0; d < D; d++) dot += (double)p->q[r * D + d] * p->k[j * D + d];
    double sc = scale * dot;
    if (fabs(sc) > lim) sc = copysign(INFINITY, sc);
    if (isnan(sc) || sc == INFINITY) nan = 1;
    if (sc != -INFINITY) live = 1;
    for (int d = 0; d < D; d++) vnan |= !isfinite(p->v[j * D + d]);
  }
  if (nan) return ROWNAN;
  if (n == 0 || !live) return EMPTY;
  return vnan ? VNAN : FIN;
}

typedef void (*poison_fn)(problem *p);
static void p_none(problem *p) { (void)p; }
static void p_nan_q(problem *p) { p->q[5 * D + 3] = NAN; p->q[9 * D] = NAN; }
static void p_nan_k(problem *p) { p->k[3 * D + 1] = NAN; }
static void p_nan_v(problem *p) { p->v[3 * D + 2] = NAN; p->v[66 * D] = INFINITY; }
static void p_inf_q(problem *p) { p->q[7 * D] = INFINITY; p->q[8 * D] = -INFINITY; }
static void p_inf_k(problem *p) { p->k[2 * D] = INFINITY; }
static void p_all_nan_q(problem *p) {
  for (int64_t x = 0; x < p->Lq * D; x++) p->q[x] = NAN;
}

static void test_nan_policy(void **state) {
  (void)state;
  static const struct { const char *src; mask_fn m; } pats[] = {
      {"pattern p = causal;", m_causal},        /* dense masked tiles */
      {"pattern p = window(1);", m_window},     /* sparse rows */
      {"pattern p = full;", m_full},            /* unmasked tiles */
      {"pattern p = causal - rows({9});", m_hole}, /* an empty row */
  };
  static const struct { const char *what; poison_fn f; float scale; } cases[] = {
      {"NaN in q", p_nan_q, 0},   {"NaN in k", p_nan_k, 0},
      {"NaN/inf in v", p_nan_v, 0}, {"inf in q", p_inf_q, 0},
      {"inf in k", p_inf_k, 0},   {"q all NaN", p_all_nan_q, 0},
      {"scale 1e38", p_none, 1e38f}, {"scale -1e38", p_none, -1e38f},
  };
  const int64_t L = 70;  /* two query tiles, a short last key tile */
  for (size_t x = 0; x < sizeof pats / sizeof pats[0]; x++)
    for (int b = 0; b < N_BACKENDS; b++) {
      spat_ctx *c = spat_ctx_new();
      spat_kernel *k = compile_on(c, pats[x].src, b);
      for (size_t y = 0; y < sizeof cases / sizeof cases[0]; y++) {
        problem p = problem_new(1, L, L);
        cases[y].f(&p);
        spat_tensors t = tensors(&p, cases[y].scale);
        if (spat_kernel_call(k, &t, NULL, 0) != SPAT_OK)
          fail_msg("%s, %s on %s: %s", pats[x].src, cases[y].what, backend_name[b],
                   spat_ctx_error(c));
        double sc = cases[y].scale != 0 ? cases[y].scale : 1.0 / sqrt((double)D);
        for (int64_t r = 0; r < L; r++) {
          int got = classify(p.o + r * D, p.lse[r]), want = expect(&p, pats[x].m, r, sc);
          if (got != want)
            fail_msg("%s, %s on %s: row %lld is %s, the policy says %s (lse %g)",
                     pats[x].src, cases[y].what, backend_name[b], (long long)r,
                     got < 0 ? "inconsistent" : cls_name[got], cls_name[want],
                     (double)p.lse[r]);
        }
        problem_free(&p);
      }
      spat_kernel_free(k);
      spat_ctx_free(c);
    }
}

static void test_scale(void **state) {
  (void)state;
  const float bad[3] = {INFINITY, -INFINITY, NAN};
  for (int b = 0; b < N_BACKENDS; b++) {
    spat_ctx *c = spat_ctx_new();
    spat_kernel *k = compile_on(c, "pattern p = causal;", b);
    problem p = problem_new(1, 8, 8);
    for (int x = 0; x < 3; x++) {
      spat_tensors t = tensors(&p, bad[x]);
      assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_EINVAL);
      if (!strstr(spat_ctx_error(c), "it must be a finite float"))
        fail_msg("%s: '%s'", backend_name[b], spat_ctx_error(c));
    }
    spat_tensors t = tensors(&p, -0.25f);  /* negative scales are fine */
    assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_OK);
    problem_free(&p);
    spat_kernel_free(k);
    spat_ctx_free(c);
  }
}

int main(void) {
  char dir[] = "/tmp/spat_test_errors_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  setenv("XDG_CACHE_HOME", dir, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_examples),
      cmocka_unit_test(test_domain),
      cmocka_unit_test(test_where_safety),
      cmocka_unit_test(test_nan_policy),
      cmocka_unit_test(test_scale),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) rc = 1;
  return rc;
}
