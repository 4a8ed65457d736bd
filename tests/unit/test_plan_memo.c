/* test_plan_memo.c: plan_tiles with a plan_memo (the cache of per-key
 * where-predicates that the forward driver passes) against plan_tiles
 * without one: the same spans and the same errors for every query tile,
 * whatever order the tiles are planned in (in order, backwards, shuffled,
 * as the workers of a run ask for them), over patterns whose predicates read
 * j, h, the sizes, runtime scalars and inputs, under causal, window and
 * block focuses, with predicates that fail on some keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze.h"
#include "frontend.h"
#include "plan.h"
#include "plan_check.h"
#include "small.h"

static uint64_t rng = 0x3e30ull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static int64_t pick(int64_t lo, int64_t hi) {
  return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}

static ir_program *load(diag *d, arena *a, const char *src) {
  fe_module *m = fe_load_string(d, a, "t.pat", src);
  if (!m) fail_msg("%s", diag_text(d));
  ir_program *p = fe_instantiate(d, m, "p", NULL, 0);
  if (!p) fail_msg("%s", diag_text(d));
  return p;
}

/* Bodies with x a runtime scalar and f an int[Lk] input. */
static const char *const shapes[] = {
    "causal & (block(32) | where(j % 32 >= 28))",
    "causal & (window(40, 0) | where(j % 17 == 3))",
    "window(50, 5) & where(j % 3 != 1)",
    "where(j % 7 == 0 || j < 5)",
    "causal & where((j + h) % 5 == 0 || j >= Lk - 3)",
    "causal & (window(9, 0) | where(f[j] != 0))",
    "causal & where(f[j] > x)",
    /* fails at j = x + 11 (inside the focus for later tiles only) */
    "window(70, 0) & where(100 / (j - x - 11) != 7)",
    "causal & (window(20, 0) | where(j % (x + 1) == 0))",
    "blocks(4) { causal & where(j % 3 == 0) } & where(j % 2 == 0)",
    "(causal & where(j % 4 == 1)) | (where(j % 9 == 2) & window(30, 30))",
};

/* The pattern p of src, planned; fails the test when it does not load. */
static int64_t *plan_of(diag *d, arena *a, const char *src) {
  ir_program *p = load(d, a, src);
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  if (!plan) fail_msg("%s", err);
  return plan;
}

static void test_memo_same_spans(void **state) {
  (void)state;
  int cases = 0, errors = 0;
  for (int c = 0; c < SMALL(300, 60); c++) {
    const char *body = shapes[c % (int)(sizeof shapes / sizeof *shapes)];
    int64_t H = pick(1, 3), Lq = pick(1, 300), Lk = pick(0, 2) ? Lq : pick(1, 300);
    char src[512];
    snprintf(src, sizeof src,
             "pattern p(x = 0, input f: int[Lk]) = %s;\n", body);
    diag *d = diag_new();
    arena *a = arena_new();
    int64_t *plan = plan_of(d, a, src);
    int32_t *f = malloc(sizeof *f * (size_t)Lk);
    for (int64_t j = 0; j < Lk; j++) f[j] = (int32_t)pick(-3, 3);
    const int32_t *ins[1] = {f};
    int64_t rt[1] = {pick(-2, 40)};
    int64_t cap = plan_max_spans(plan);
    plan_span *sa = malloc(sizeof *sa * (size_t)cap), *sb = malloc(sizeof *sb * (size_t)cap);
    int64_t bq = pick(0, 1) ? 64 : pick(1, 70), nt = (Lq + bq - 1) / bq;
    int64_t *order = malloc(sizeof *order * (size_t)nt);
    for (int64_t h = 0; h < H; h++) {
      plan_memo *pm = plan_memo_new();
      assert_non_null(pm);
      plan_env env = {.h = h, .H = H, .Lq = Lq, .Lk = Lk, .runtime = rt, .inputs = ins};
      plan_env menv = env;
      menv.memo = pm;
      for (int how = 0; how < 3; how++) {
        for (int64_t t = 0; t < nt; t++) order[t] = how == 1 ? nt - 1 - t : t;
        for (int64_t t = nt - 1; how == 2 && t > 0; t--) {
          int64_t u = pick(0, t), v = order[t];
          order[t] = order[u], order[u] = v;
        }
        char msg[700];
        if (!plan_memo_agrees(plan, &env, &menv, bq, order, nt, msg, sizeof msg))
          fail_msg("%s: %s", body, msg);
      }
      for (int64_t t = 0; t < nt; t++) {
        char e[256];
        errors += plan_tiles(plan, &env, t * bq, t * bq + bq < Lq ? t * bq + bq : Lq,
                             sa, cap, e, sizeof e) < 0;
      }
      plan_memo_free(pm);
    }
    free(order), free(sa), free(sb), free(f), free(plan);
    arena_free(a);
    diag_free(d);
    cases++;
  }
  assert_int_equal(cases, SMALL(300, 60));
  fprintf(stderr, "memo: %d programs, %d tiles with a plan error\n", cases, errors);
}

/* The memo's entries are per head: heads planned in turn, each head's
 * tiles interleaved with another's (two workers), and more heads than the
 * memo has ways. */
static void test_memo_heads_interleaved(void **state) {
  (void)state;
  const char *src = "pattern p() = causal & where((j + 3 * h) % 11 == 0 || j % 64 >= 60);\n";
  diag *d = diag_new();
  arena *a = arena_new();
  int64_t *plan = plan_of(d, a, src);
  int64_t H = 7, L = 1000, bq = 64, nt = (L + bq - 1) / bq, cap = plan_max_spans(plan);
  plan_span *sa = malloc(sizeof *sa * (size_t)cap), *sb = malloc(sizeof *sb * (size_t)cap);
  plan_memo *pm = plan_memo_new();
  assert_non_null(pm);
  for (int64_t x = 0; x < H * nt; x++) {
    int64_t h = (x * 5) % H, t = (x / H + h) % nt, r0 = t * bq;
    int64_t r1 = r0 + bq < L ? r0 + bq : L;
    plan_env env = {.h = h, .H = H, .Lq = L, .Lk = L};
    plan_env menv = env;
    menv.memo = pm;
    char e1[256] = "", e2[256] = "";
    int64_t n1 = plan_tiles(plan, &env, r0, r1, sa, cap, e1, sizeof e1);
    int64_t n2 = plan_tiles(plan, &menv, r0, r1, sb, cap, e2, sizeof e2);
    assert_true(n1 > 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(sa, sb, sizeof *sa * (size_t)(n1 < cap ? n1 : cap));
  }
  plan_memo_free(pm);
  free(sa), free(sb), free(plan);
  arena_free(a);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_memo_same_spans),
      cmocka_unit_test(test_memo_heads_interleaved),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
