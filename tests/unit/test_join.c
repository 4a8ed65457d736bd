/* test_join.c: equality joins where(f(i) == g(j) && ...) run by grouping
 * queries and keys by value (runtime/plan_join.c, the driver's join path),
 * JIT against the reference interpreter.
 *
 * Unsorted and sorted cluster ids, ids of queries and keys from different
 * arrays, two equalities at once, a head-dependent side, values too spread
 * for the counting sort (the tile plan then runs), rows whose cluster has
 * no key (o = 0, lse = -inf), Lq < Lk, GQA, batches, 1 and 2 threads; and
 * plan_join's groups themselves against a direct evaluation.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze.h"
#include "backend.h"
#include "frontend.h"
#include "interp.h"
#include "plan.h"
#include "small.h"

static const char *src =
    "pattern unsorted(input cq: int[], input ck: int[]) = where(cq[i] == ck[j]);\n"
    "pattern same(input c: int[]) = where(c[j] == c[i]);\n"
    "pattern two(input c: int[]) = where(c[i] == c[j] && i % 3 == j % 3);\n"
    "pattern heads(input c: int[]) = where(c[i] + h == c[j] + 2 * h);\n"
    "pattern grid(W = 13) = where(i / W / 4 == j / W / 4 && i % W / 4 == j % W / 4);\n";

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float randn(uint64_t *s) {
  double u = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
  double v = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int threads, ids; /* ids: 0 unsorted small, 1 sorted runs, 2 spread, 3 all
                       equal, 4 groups of sizes 1, 63, 64, 65, 130 in no
                       order, negative; 5 groups of sizes 1 .. 13 and
                       65 .. 77 in no order (tails of at most 13 rows) */
} shape;

/* The group of position x when positions run through groups of sizes 1,
 * 63, 64, 65, 130 in turn (ids -1, -2, ...). */
static int32_t size_group(int64_t x) {
  static const int64_t sizes[] = {1, 63, 64, 65, 130};
  int32_t g = 0;
  for (;; g++) {
    int64_t n = sizes[g % 5];
    if (x < n) return -1 - g;
    x -= n;
  }
}

/* The group of position x when positions run through groups of sizes
 * 1 .. 13, then 65 .. 77 (one full tile and a tail of 1 .. 13 rows). */
static int32_t tail_group(int64_t x) {
  for (int32_t g = 0;; g++) {
    int64_t n = 1 + g % 13 + (g / 13 % 2) * 64;
    if (x < n) return g;
    x -= n;
  }
}

/* Runs both backends; returns the rows with keys (lse finite). */
static int64_t compare(const ir_program *p, const shape *s, uint64_t seed) {
  backend_opts o = {.D = s->D, .threads = s->threads};
  char err[512] = "", e2[512] = "";
  void *kj = backend_jit.compile(p, &o, err, sizeof err);
  void *ki = backend_interp.compile(p, &o, err, sizeof err);
  if (!kj || !ki) fail_msg("compile: %s", err);
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D), nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  size_t nl = (size_t)(s->B * s->H * s->Lq);
  float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk);
  float *o1 = malloc(4 * nq), *o2 = malloc(4 * nq), *l1 = malloc(4 * nl), *l2 = malloc(4 * nl);
  int32_t *in[2] = {malloc(4 * (size_t)s->Lk), malloc(4 * (size_t)s->Lk)};
  assert_true(q && k && v && o1 && o2 && l1 && l2 && in[0] && in[1]);
  uint64_t r = seed;
  for (size_t t = 0; t < nq; t++) q[t] = randn(&r);
  for (size_t t = 0; t < nk; t++) k[t] = randn(&r), v[t] = randn(&r);
  for (int x = 0; x < 2; x++)
    for (int64_t j = 0; j < s->Lk; j++)
      in[x][j] = s->ids == 0   ? (int32_t)(mix(&r) % 7)
                 : s->ids == 1 ? (int32_t)(j / 23 + x)
                 : s->ids == 2 ? (int32_t)(mix(&r) % 3) * 1000000000 - 1000000000
                 : s->ids == 3 ? 5
                 : s->ids == 4 ? size_group(j * 37 % s->Lk)
                               : tail_group(j * 37 % s->Lk);
  const int32_t *ins[2] = {in[0], in[1]};
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = s->B, a.H = s->H, a.Hkv = s->Hkv, a.Lq = s->Lq, a.Lk = s->Lk, a.D = s->D;
  a.q.data = q, a.k.data = k, a.v.data = v, a.o.data = o1;
  rt_tensor_strides(&a.q, 0, s->H, s->Lq, s->D);
  rt_tensor_strides(&a.k, 0, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a.v, 0, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a.o, 0, s->H, s->Lq, s->D);
  a.lse = l1, a.lse_sb = s->H * s->Lq, a.lse_sh = s->Lq;
  a.inputs = ins;
  a.threads = s->threads;
  assert_int_equal(backend_interp.run(ki, &a, err, sizeof err), RT_OK);
  a.o.data = o2, a.lse = l2;
  rt_status st = backend_jit.run(kj, &a, e2, sizeof e2);
  if (st != RT_OK) fail_msg("jit: %s", e2);
  int64_t with_keys = 0;
  for (size_t x = 0; x < nl; x++) {
    if (isfinite(l1[x]) != isfinite(l2[x]))
      fail_msg("%s: row %zu: lse %g vs %g", p->name, x, l1[x], l2[x]);
    if (isfinite(l1[x])) {
      with_keys++;
      assert_true(fabs(l1[x] - l2[x]) < 1e-4);
    }
    for (int64_t d = 0; d < s->D; d++) {
      double e = fabs((double)o1[x * s->D + d] - (double)o2[x * s->D + d]);
      if (!(e < 2e-5)) fail_msg("%s: row %zu: |o| error %g", p->name, x, e);
    }
  }
  backend_jit.free(kj), backend_interp.free(ki);
  free(q), free(k), free(v), free(o1), free(o2), free(l1), free(l2);
  free(in[0]), free(in[1]);
  return with_keys;
}

static ir_program *load(arena *a, diag *d, const char *name) {
  fe_module *m = fe_load_string(d, a, "join.pat", src);
  if (!m) fail_msg("%s", diag_text(d));
  ir_program *p = fe_instantiate(d, m, name, NULL, 0);
  if (!p) fail_msg("%s", diag_text(d));
  return p;
}

static void test_jit_vs_interp(void **state) {
  (void)state;
  static const char *const names[] = {"unsorted", "same", "two", "heads", "grid"};
  static const shape shapes[] = {
      {1, 4, 2, 300, 300, 64, 2, 0}, {2, 2, 1, 77, 250, 32, 1, 0},
      {1, 3, 3, 400, 400, 16, 2, 1}, {1, 2, 2, 130, 130, 64, 1, 2},
      {1, 1, 1, 1, 5, 64, 1, 0},     {1, 2, 1, 64, 64, 128, 2, 0},
      /* one group of 600: two tasks of tiles, keys in two blocks (512 of
       * D = 128) */
      {1, 2, 1, 600, 600, 128, 2, 3}, {2, 2, 2, 700, 700, 16, 1, 4},
      {1, 2, 1, 900, 900, 64, 1, 5}, {1, 1, 1, 500, 500, 32, 2, 5}};
  diag *d = diag_new();
  arena *a = arena_new();
  int64_t rows = 0;
  for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
    ir_program *p = load(a, d, names[n]);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      shape z = shapes[s];
      z.Lq = SMALL(z.Lq, z.Lq / 2 + 1), z.Lk = SMALL(z.Lk, z.Lk / 2 + 1);
      if (z.Lq > z.Lk) z.Lq = z.Lk;
      rows += compare(p, &z, 0x101 * (n + 1) + s);
    }
  }
  assert_true(rows > 100);
  arena_free(a);
  diag_free(d);
}

/* plan_join's groups: every row sees exactly the keys of equal value. */
static void test_groups(void **state) {
  (void)state;
  diag *d = diag_new();
  arena *a = arena_new();
  ir_program *p = load(a, d, "unsorted");
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  assert_non_null(plan);
  enum { LQ = 150, LK = 200 };
  int32_t cq[LK], ck[LK];
  uint64_t r = 7;
  for (int j = 0; j < LK; j++) cq[j] = (int32_t)(mix(&r) % 9), ck[j] = (int32_t)(mix(&r) % 11);
  const int32_t *ins[2] = {cq, ck};
  plan_env env = {.h = 0, .H = 1, .Lq = LQ, .Lk = LK, .inputs = ins};
  plan_groups g;
  assert_int_equal(plan_join(plan, &env, &g), 1);
  int seen[LQ] = {0};
  for (int64_t t = 0; t < g.n_groups; t++) {
    for (int64_t x = g.qs[t]; x < g.qs[t + 1]; x++) {
      int64_t row = g.qrow[x], i = row + (LK - LQ), n = 0;
      seen[row]++;
      for (int64_t y = g.ks[t]; y < g.ks[t + 1]; y++) {
        assert_int_equal(cq[i], ck[g.key[y]]);
        if (y > g.ks[t]) assert_true(g.key[y] > g.key[y - 1]);
      }
      for (int j = 0; j < LK; j++) n += cq[i] == ck[j];
      assert_int_equal(n, g.ks[t + 1] - g.ks[t]);
    }
  }
  for (int64_t x = g.n_rows; x < LQ; x++) {
    int64_t row = g.qrow[x], i = row + (LK - LQ);
    seen[row]++;
    for (int j = 0; j < LK; j++) assert_true(cq[i] != ck[j]);
  }
  for (int x = 0; x < LQ; x++) assert_int_equal(seen[x], 1);
  plan_groups_free(&g);
  /* values spread over int32: no counting sort, the tile plan runs */
  for (int j = 0; j < LK; j++) cq[j] = (int32_t)(mix(&r) % 2 ? 2000000000 : -2000000000);
  assert_int_equal(plan_join(plan, &env, &g), 0);
  free(plan);
  arena_free(a);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jit_vs_interp),
      cmocka_unit_test(test_groups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
