/* test_plan_sets.c: the tile plan of rows of inputs as index sets and of
 * diagonals(S) (SROW, PDIAGS; the run's rows table, runtime/plan_sets.c).
 *
 * Soundness against the interpreter's mask for random patterns over rows
 * with duplicates, negative and out-of-range values, empty rows, ranges and
 * constants, at random sizes and tilings (a key no span holds is allowed by
 * no row of the tile, a key of a FULL span by every row), with and without
 * the table (without: PARTIAL), and the table's bitmaps for the mask code
 * (kr_setbits: every bit, padding included, against the rows' items); then
 * MInference's vertical-slash
 * (patterns/v2/minference.pat) at L = 4096 visits at most 1.25 times the key
 * tiles its exact mask needs, and its spans hold at most 16 times the
 * allowed pairs (a slash line spans its 64-row tile's band), under half of
 * those without the table (every causal key).
 */
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
#include "interp.h"
#include "plan.h"
#include "plan_sets.h"
#include "small.h"

static uint64_t rng = 0x5e75ull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static int64_t pick(int64_t lo, int64_t hi) {
  return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}

static int64_t span_keys; /* keys in the spans check_tiles saw */

static ir_program *load(diag *d, arena *a, const char *src, const fe_define *defs,
                        int n_defs) {
  fe_module *m = fe_load_string(d, a, "t.pat", src);
  if (!m) fail_msg("%s", diag_text(d));
  ir_program *p = fe_instantiate(d, m, "p", defs, n_defs);
  if (!p) fail_msg("%s", diag_text(d));
  return p;
}

/* Checks the spans of every query tile of head h against mask m [Lq][Lk];
 * returns the key tiles of 64 visited, adds the needed ones to *needed. */
static int64_t check_tiles(const int64_t *plan, const plan_env *env,
                           const uint8_t *m, int64_t bq, int64_t *needed) {
  int64_t Lq = env->Lq, Lk = env->Lk, visited = 0, cap = 4096;
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  uint8_t *kind = malloc((size_t)Lk + 1), *tile = malloc((size_t)(Lk / 64 + 2));
  assert_true(sp && kind && tile);
  char err[256];
  for (int64_t r0 = 0; r0 < Lq; r0 += bq) {
    int64_t r1 = r0 + bq < Lq ? r0 + bq : Lq;
    int64_t n = plan_tiles(plan, env, r0, r1, sp, cap, err, sizeof err);
    if (n < 0) fail_msg("plan_tiles: %s", err);
    assert_true(n <= cap);
    memset(kind, 0, (size_t)Lk + 1);
    memset(tile, 0, (size_t)(Lk / 64 + 2));
    for (int64_t s = 0; s < n; s++) {
      assert_true(0 <= sp[s].k0 && sp[s].k0 < sp[s].k1 && sp[s].k1 <= Lk);
      if (s > 0) assert_true(sp[s - 1].k1 <= sp[s].k0);
      for (int64_t j = sp[s].k0; j < sp[s].k1; j++) kind[j] = (uint8_t)sp[s].kind, tile[j / 64] = 1;
      span_keys += (sp[s].k1 - sp[s].k0) * (r1 - r0);
    }
    for (int64_t q = 0; q <= Lk / 64; q++) visited += tile[q];
    for (int64_t q = 0; q * 64 < Lk; q++) {
      bool any = false;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t j = q * 64; j < Lk && j < q * 64 + 64; j++) any |= m[r * Lk + j];
      *needed += any;
    }
    for (int64_t j = 0; j < Lk; j++)
      for (int64_t r = r0; r < r1; r++) {
        if (m[r * Lk + j] && !kind[j])
          fail_msg("rows [%lld, %lld): key %lld allowed at row %lld, in no span",
                   (long long)r0, (long long)r1, (long long)j, (long long)r);
        if (!m[r * Lk + j] && kind[j] == PLAN_FULL)
          fail_msg("rows [%lld, %lld): key %lld in a FULL span, not allowed at row %lld",
                   (long long)r0, (long long)r1, (long long)j, (long long)r);
      }
  }
  free(sp), free(kind), free(tile);
  return visited;
}

/* Input k's bitmaps (cols, diagonals) against its rows x [rows][w]: bit p
 * of row f is set iff some item v has v < 0 ? v + Lk : v == p (cols) or
 * base - v == p (diagonals), 0 <= p < nbits; the padding words are zero.
 * An input without rows in the table, or with rows of no items, has none. */
static void check_bits(const plan_rows *rows, int k, const int32_t *x, int64_t nrows,
                       int64_t w, int64_t Lq, int64_t Lk, int64_t off) {
  const kr_setbits *tab = plan_rows_bits(rows);
  assert_non_null(tab);
  for (int kind = 0; kind < 2; kind++) {
    const kr_setbits *e = &tab[2 * k + kind];
    const int32_t (*iv)[2];
    int64_t n_iv, f0 = 0;
    if (w == 0 || plan_rows_get(rows, k, &f0, 1, &iv, &n_iv) != 1) {
      /* no items, or an input the plan does not read as rows */
      assert_null(e->bits);
      continue;
    }
    assert_non_null(e->bits);
    assert_int_equal(e->rows, nrows);
    assert_int_equal(e->width, w);
    assert_int_equal(e->nbits, kind ? Lq + Lk - 1 : Lk);
    assert_int_equal(e->base, kind ? off + Lq - 1 : Lk);
    assert_true(e->wpr >= (e->nbits + 63) / 64 + 3);
    for (int64_t f = 0; f < nrows; f++)
      for (int64_t g = 0; g < 64 * e->wpr; g++) {
        int64_t p = g - 64;
        bool want = false;
        for (int64_t t = 0; p >= 0 && p < e->nbits && t < w; t++) {
          int64_t v = x[f * w + t];
          want |= kind ? e->base - v == p : (v < 0 ? v + Lk : v) == p;
        }
        bool got = (e->bits[f * e->wpr + g / 64] >> (g % 64)) & 1;
        if (got != want)
          fail_msg("input %d kind %d row %lld bit %lld: %d, want %d", k, kind,
                   (long long)f, (long long)p, got, want);
      }
  }
}

static const char *const shapes[] = {
    "causal & (cols(vidx[h]) | diagonals(sidx[h]))",
    "cols({vidx[h], 3 .. 9, -2}) - diagonals({sidx[h % 2], -4 .. 2})",
    "window(5, 2) | rows(vidx[h]) | global({sidx[0]})",
    "blocks(4) { cols(vidx[h]) | diagonals(sidx[h]) }",
    "!diagonals({sidx[h], 7, 100 .. 90}) & causal",
    "causal & (cols(vidx[0]) | diagonals({vidx[h]}) | diagonals({-3 .. 3}))",
};

static void test_random_sets(void **state) {
  (void)state;
  int cases = 0;
  for (int c = 0; c < SMALL(60, 12); c++) {
    int64_t nv = pick(0, 40), ns = pick(0, 30), H = pick(1, 3);
    int64_t Lq = pick(1, 260), Lk = pick(0, 2) ? Lq : pick(1, 260);
    char src[512];
    snprintf(src, sizeof src, "pattern p(input vidx: int[H, %lld], input sidx: "
             "int[H, %lld]) = %s;\n", (long long)nv, (long long)ns,
             shapes[c % (int)(sizeof shapes / sizeof *shapes)]);
    diag *d = diag_new();
    arena *a = arena_new();
    ir_program *p = load(d, a, src, NULL, 0);
    char err[256];
    int64_t *plan = an_build(p, err, sizeof err);
    if (!plan) fail_msg("%s", err);
    int32_t *in[2] = {malloc(sizeof(int32_t) * (size_t)(H * nv + 1)),
                      malloc(sizeof(int32_t) * (size_t)(H * ns + 1))};
    for (int64_t e = 0; e < H * nv; e++) in[0][e] = (int32_t)pick(-Lk - 3, Lk + 3);
    for (int64_t e = 0; e < H * ns; e++)
      in[1][e] = (int32_t)(pick(0, 3) ? pick(-20, 20) : pick(-Lk - 3, Lk + 3));
    const int32_t *ins[2] = {in[0], in[1]};
    rt_args ra = {.B = 1, .H = H, .Hkv = H, .Lq = Lq, .Lk = Lk, .D = 16, .inputs = ins};
    rt_status st;
    plan_rows *rows = plan_rows_new(plan, &ra, &st);
    assert_int_equal(st, RT_OK);
    assert_non_null(rows);
    int64_t off = plan_row_offset(plan, Lq, Lk);
    check_bits(rows, 0, in[0], H, nv, Lq, Lk, off);
    check_bits(rows, 1, in[1], H, ns, Lq, Lk, off);
    uint8_t *m = malloc((size_t)(Lq * Lk + 1));
    for (int64_t h = 0; h < H; h++) {
      for (int64_t r = 0; r < Lq; r++)
        assert_int_equal(interp_mask_row(p, &ra, 0, h, r, m + r * Lk, err, sizeof err), RT_OK);
      int64_t need = 0, bq = pick(1, 80);
      for (int with = 0; with < 2; with++) {
        plan_env env = {h, H, Lq, Lk, NULL, ins, 0, 0, 0, 0, with ? rows : NULL, NULL};
        check_tiles(plan, &env, m, bq, &need);
      }
    }
    cases++;
    free(m), free(in[0]), free(in[1]), free(plan);
    plan_rows_free(rows);
    arena_free(a);
    diag_free(d);
  }
  assert_int_equal(cases, SMALL(60, 12));
}

/* vertical-slash at L = 4096: the mask is j <= i && (j in V || i - j in S)
 * (MInference's formula, checked against the interpreter at L = 300 first). */
static void vs_mask(uint8_t *m, int64_t L, const int32_t *v, int64_t nv,
                    const int32_t *s, int64_t ns) {
  memset(m, 0, (size_t)(L * L));
  for (int64_t i = 0; i < L; i++) {
    for (int64_t t = 0; t < nv; t++) {
      int64_t j = v[t] < 0 ? L + v[t] : v[t];
      if (0 <= j && j <= i) m[i * L + j] = 1;
    }
    for (int64_t t = 0; t < ns; t++)
      if (s[t] >= 0 && i - s[t] >= 0) m[i * L + i - s[t]] = 1;
  }
}

static void vs_run(int64_t L, bool check_interp) {
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *mod = fe_load_file(d, a, "patterns/v2/minference.pat");
  if (!mod) fail_msg("%s", diag_text(d));
  fe_define defs[] = {{"nv", 32}, {"ns", 48}};
  ir_program *p = fe_instantiate(d, mod, "vertical_slash", defs, 2);
  if (!p) fail_msg("%s", diag_text(d));
  int64_t H = 2;
  int32_t v[2 * 32], s[2 * 48];
  for (int t = 0; t < 2 * 32; t++) v[t] = (int32_t)pick(0, L - 1);
  v[0] = v[1];                                  /* a duplicate */
  v[2] = (int32_t)-pick(1, L);                  /* from the end */
  for (int h = 0; h < 2; h++)                   /* a local band and spread lines */
    for (int t = 0; t < 48; t++) s[h * 48 + t] = t < 24 ? t : (int32_t)pick(24, L - 1);
  const int32_t *ins[2] = {v, s};
  rt_args ra = {.B = 1, .H = H, .Hkv = H, .Lq = L, .Lk = L, .D = 16, .inputs = ins};
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  if (!plan) fail_msg("%s", err);
  rt_status st;
  plan_rows *rows = plan_rows_new(plan, &ra, &st);
  assert_non_null(rows);
  uint8_t *m = malloc((size_t)(L * L)), *row = malloc((size_t)L);
  assert_true(m && row);
  int64_t visited = 0, needed = 0, without = 0, nn = 0, pairs = 0, kw = 0, kwo = 0;
  for (int64_t h = 0; h < H; h++) {
    vs_mask(m, L, v + 32 * h, 32, s + 48 * h, 48);
    for (int64_t r = 0; check_interp && r < L; r++) {
      assert_int_equal(interp_mask_row(p, &ra, 0, h, r, row, err, sizeof err), RT_OK);
      assert_memory_equal(row, m + r * L, (size_t)L);
    }
    for (int64_t x = 0; x < L * L; x++) pairs += m[x];
    plan_env env = {h, H, L, L, NULL, ins, 0, 0, 0, 0, rows, NULL};
    span_keys = 0;
    visited += check_tiles(plan, &env, m, 64, &needed);
    kw += span_keys, span_keys = 0;
    env.rows = NULL;
    without += check_tiles(plan, &env, m, 64, &nn);
    kwo += span_keys;
  }
  fprintf(stderr, "vertical_slash L %lld: density %.4f, %lld key tiles visited, %lld "
          "needed (%.2fx), %lld without the rows table; pairs in spans %lld "
          "(allowed %lld), %lld without\n", (long long)L,
          (double)pairs / (double)(H * L * L), (long long)visited, (long long)needed,
          (double)visited / (double)needed, (long long)without, (long long)kw,
          (long long)pairs, (long long)kwo);
  assert_true(needed > 0 && 4 * visited <= 5 * needed && visited <= without);
  /* the spans hold the lines, not the tiles: pairs to decide follow nnz */
  if (L >= 1024) assert_true(kw <= 16 * pairs && 2 * kw < kwo);
  free(m), free(row), free(plan);
  plan_rows_free(rows);
  arena_free(a);
  diag_free(d);
}

static void test_vertical_slash_tiles(void **state) {
  (void)state;
  vs_run(300, true);
  vs_run(SMALL(4096, 1024), false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_sets),
      cmocka_unit_test(test_vertical_slash_tiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
