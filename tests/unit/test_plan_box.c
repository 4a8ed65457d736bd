/* test_plan_box.c: where(...) predicates decided over boxes by interval
 * arithmetic (the tile plan's PBOX, runtime/plan_box.c), against the
 * reference interpreter's mask.
 *
 * Soundness and exactness of every tile's spans (a key no span holds is
 * allowed by no row of the tile; a key of a FULL span by every row) for
 * random predicates of i and j built from + - * / % min max abs ?: and
 * comparisons, && || !, with negative operands and divisors, alone and
 * combined with causal and windows, at random sizes and tilings; then the
 * 2D window patterns of the library (bench/grid2d.pat) visit at most 1.5
 * times the key tiles their exact mask needs, at grid sizes that are not
 * multiples of the tile.
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
#include "gen_ir.h"
#include "interp.h"
#include "plan.h"
#include "plan_ops.h"
#include "small.h"

/* ---- random predicates ---- */

static ir_node *rand_int(gen *g, int depth);

static ir_node *rand_leaf(gen *g) {
  switch (rndi(g, 0, 7)) {
  case 0: case 1: return N0(g, IR_VAR_I);
  case 2: case 3: return N0(g, IR_VAR_J);
  case 4: return N0(g, IR_VAR_H);
  case 5: return N0(g, rndi(g, 0, 1) ? IR_SIZE_LK : IR_SIZE_LQ);
  default: return C(g, rndi(g, -40, 40));
  }
}

static ir_node *rand_divisor(gen *g, int depth) {
  if (rndi(g, 0, 2)) {
    int64_t v = rndi(g, -12, 12);
    return C(g, v ? v : 7);
  }
  /* an expression that is never 0: max(x, 1) or -(abs(x) + 1) */
  ir_node *x = rand_int(g, depth - 1);
  if (rndi(g, 0, 1)) return N2(g, IR_MAX, x, C(g, rndi(g, 1, 5)));
  return N1(g, IR_NEG, N2(g, IR_ADD, N1(g, IR_ABS, x), C(g, 1)));
}

static ir_node *rand_int(gen *g, int depth) {
  static const ir_op bin[] = {IR_ADD, IR_SUB, IR_MUL, IR_MIN, IR_MAX};
  if (depth <= 0) return rand_leaf(g);
  switch (rndi(g, 0, 7)) {
  case 0: case 1: return N2(g, rndi(g, 0, 1) ? IR_DIV : IR_MOD,
                            rand_int(g, depth - 1), rand_divisor(g, depth));
  case 2: case 3: return N2(g, bin[rndi(g, 0, 4)], rand_int(g, depth - 1),
                            rand_int(g, depth - 1));
  case 4: return N1(g, rndi(g, 0, 1) ? IR_ABS : IR_NEG, rand_int(g, depth - 1));
  case 5:
    return N3(g, IR_SEL, N2(g, IR_LT, rand_int(g, depth - 1), rand_int(g, depth - 1)),
              rand_int(g, depth - 1), rand_int(g, depth - 1));
  default: return rand_leaf(g);
  }
}

static ir_node *rand_pred(gen *g, int depth) {
  static const ir_op cmp[] = {IR_LT, IR_LE, IR_GT, IR_GE, IR_EQ, IR_NE};
  int pick = (int)rndi(g, 0, depth > 0 ? 5 : 2);
  if (pick <= 2)
    return N2(g, cmp[rndi(g, 0, 5)], rand_int(g, (int)rndi(g, 0, 3)),
              rand_int(g, (int)rndi(g, 0, 3)));
  if (pick == 3) return N1(g, IR_NOT, rand_pred(g, depth - 1));
  return N2(g, pick == 4 ? IR_LAND : IR_LOR, rand_pred(g, depth - 1),
            rand_pred(g, depth - 1));
}

static ir_node *rand_root(gen *g) {
  ir_node *w = N1(g, IR_WHERE, rand_pred(g, (int)rndi(g, 0, 3)));
  switch (rndi(g, 0, 3)) {
  case 0: return N2(g, IR_AND, N0(g, IR_CAUSAL), w);
  case 1: return N2(g, IR_OR, N2(g, IR_WINDOW, C(g, rndi(g, 0, 9)), C(g, 0)), w);
  default: return w;
  }
}

/* ---- checking a plan against the interpreter ---- */

typedef struct mask {
  int64_t H, Lq, Lk;
  uint8_t *m;   /* [H][Lq][Lk]; 2: the row has a run-time error */
} mask;

static void exact_mask(const ir_program *p, mask *M) {
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = 1, a.H = M->H, a.Hkv = M->H, a.Lq = M->Lq, a.Lk = M->Lk, a.D = 1;
  char err[256];
  for (int64_t h = 0; h < M->H; h++)
    for (int64_t r = 0; r < M->Lq; r++) {
      uint8_t *row = M->m + (h * M->Lq + r) * M->Lk;
      if (interp_mask_row(p, &a, 0, h, r, row, err, sizeof err) != RT_OK)
        memset(row, 2, (size_t)M->Lk); /* the kernel reports it first */
    }
}

/* Checks every tile of bq rows; returns the key tiles of bk keys visited
 * (a span touches them) and adds those the mask needs to *needed. */
static int64_t check_plan(const ir_program *p, const int64_t *plan,
                          const mask *M, int64_t bq, int64_t bk,
                          int64_t *needed) {
  int64_t cap = plan_max_spans(plan), visited = 0, nkt = (M->Lk + bk - 1) / bk;
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  uint8_t *cover = malloc((size_t)M->Lk + 1);
  uint8_t *vis = malloc((size_t)nkt + 1), *need = malloc((size_t)nkt + 1);
  assert_true(sp && cover && vis && need);
  char err[256];
  for (int64_t h = 0; h < M->H; h++)
    for (int64_t r0 = 0; r0 < M->Lq; r0 += bq) {
      int64_t r1 = r0 + bq < M->Lq ? r0 + bq : M->Lq;
      plan_env env = {.h = h, .H = M->H, .Lq = M->Lq, .Lk = M->Lk};
      int64_t n = plan_tiles(plan, &env, r0, r1, sp, cap, err, sizeof err);
      if (n < 0 || n > cap) {
        fprintf(stderr, "plan_tiles: %lld (%s)\n  ", (long long)n, err);
        ir_print(stderr, p, p->root);
        fail();
      }
      memset(cover, 0, (size_t)M->Lk + 1);
      memset(vis, 0, (size_t)nkt + 1);
      memset(need, 0, (size_t)nkt + 1);
      for (int64_t s = 0; s < n; s++)
        for (int64_t j = sp[s].k0; j < sp[s].k1; j++)
          cover[j] = (uint8_t)sp[s].kind, vis[j / bk] = 1;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t j = 0; j < M->Lk; j++) {
          uint8_t m = M->m[(h * M->Lq + r) * M->Lk + j];
          if (m == 2) continue;
          need[j / bk] |= m;
          if ((m && !cover[j]) || (cover[j] == PLAN_FULL && !m)) {
            fprintf(stderr, "h %lld Lq %lld Lk %lld tile [%lld, %lld) row %lld "
                    "key %lld: mask %d, plan %d\n  ", (long long)h,
                    (long long)M->Lq, (long long)M->Lk, (long long)r0,
                    (long long)r1, (long long)r, (long long)j, m, cover[j]);
            ir_print(stderr, p, p->root);
            fputc('\n', stderr);
            fail();
          }
        }
      for (int64_t q = 0; q < nkt; q++) visited += vis[q], *needed += need[q];
    }
  free(sp), free(cover), free(vis), free(need);
  return visited;
}

static void test_random_predicates(void **state) {
  (void)state;
  static const int64_t tiles[] = {64, 16, 7, 1, 50};
  int boxed = 0;
  for (int n = 0; n < SMALL(400, 80); n++) {
    gen g = {.a = arena_new(), .rng = 0xb0c5ull * (uint64_t)(n + 1) | 1};
    for (int k = 0; k < 3; k++) rnd(&g);
    ir_program *p = program(g.a, rand_root(&g));
    char err[256];
    int64_t *plan = an_build(p, err, sizeof err);
    assert_non_null(plan);
    for (int64_t pc = plan[PLAN_W_CODE]; pc < plan[PLAN_W_WHERE]; pc++)
      if (plan[pc] == PLAN_PBOX) { /* (a word equal to it counts too) */
        boxed++;
        break;
      }
    mask M = {.H = rndi(&g, 1, 2), .Lq = rndi(&g, 1, 200)};
    M.Lk = rndi(&g, 0, 2) ? M.Lq : rndi(&g, 1, 200);
    M.m = malloc((size_t)(M.H * M.Lq * M.Lk));
    assert_non_null(M.m);
    exact_mask(p, &M);
    int64_t needed = 0;
    for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++)
      check_plan(p, plan, &M, tiles[t], 64, &needed);
    free(M.m);
    free(plan);
    arena_free(g.a);
  }
  fprintf(stderr, "random predicates: %d of %d with a box\n", boxed, SMALL(400, 80));
  assert_true(boxed > SMALL(150, 30));
}

/* ---- the 2D windows: tiles visited against tiles needed ---- */

/* The papers' masks: Swin's window of position x (shifted: windows start
 * `shift` pixels up and left), NATTEN's clamped neighbourhood. */
static int64_t swin_win(int64_t x, int64_t W, int64_t ws, int64_t shift) {
  int64_t row = x / W + shift, col = x % W + shift;
  return (row / ws) * (W + 1) + col / ws;
}

static bool near_clamped(int64_t x, int64_t y, int64_t k, int64_t n) {
  int64_t c = x < k ? k : x;
  if (c > n - 1 - k) c = n - 1 - k;
  return (y > c ? y - c : c - y) <= k;
}

static void check_paper(const char *name, const mask *M, int64_t W, int64_t win) {
  for (int64_t i = 0; i < M->Lq; i++)
    for (int64_t j = 0; j < M->Lk; j++) {
      bool want;
      if (!strcmp(name, "na2d"))
        want = near_clamped(i / W, j / W, win, (M->Lk + W - 1) / W) &&
               near_clamped(i % W, j % W, win, W);
      else {
        int64_t sh = !strcmp(name, "swin") ? 0 : win - win / 2;
        want = swin_win(i, W, win, sh) == swin_win(j, W, win, sh);
      }
      if (M->m[i * M->Lk + j] != want)
        fail_msg("%s W %lld: M(%lld, %lld) = %d, the paper says %d", name,
                 (long long)W, (long long)i, (long long)j, M->m[i * M->Lk + j], want);
    }
}

/* Checks p's plan at Lq = Lk = L (and its mask against the paper when W >
 * 0): visited key tiles at most 1.5 times the needed ones. */
static void ratio(const ir_program *p, int64_t L, int64_t W, int64_t win) {
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  assert_non_null(plan);
  mask M = {.H = 1, .Lq = L, .Lk = L};
  M.m = malloc((size_t)(L * L));
  assert_non_null(M.m);
  exact_mask(p, &M);
  if (W > 0) check_paper(p->name, &M, W, win);
  int64_t needed = 0, visited = check_plan(p, plan, &M, 64, 64, &needed);
  fprintf(stderr, "%s W %lld window %lld L %lld: %lld key tiles visited, %lld "
          "needed (%.2fx)\n", p->name, (long long)W, (long long)win, (long long)L,
          (long long)visited, (long long)needed, (double)visited / (double)needed);
  assert_true(needed > 0 && 2 * visited <= 3 * needed);
  free(M.m);
  free(plan);
}

static void grid_ratio(const char *name, int64_t W, int64_t win, int64_t L) {
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_file(d, a, "bench/grid2d.pat");
  if (!m) fail_msg("%s", diag_text(d));
  fe_define defs[] = {{"W", W}, {strcmp(name, "na2d") ? "ws" : "k", win},
                      {"shift", win / 2}};
  ir_program *p = fe_instantiate(d, m, name, defs, strcmp(name, "swin_shifted") ? 2 : 3);
  if (!p) fail_msg("%s", diag_text(d));
  ratio(p, L, W, win);
  arena_free(a);
  diag_free(d);
}

/* The library's versions (a window superset & where), at their defaults. */
static void lib_ratio(const char *file, const char *name, int64_t L) {
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_file(d, a, file);
  if (!m) fail_msg("%s", diag_text(d));
  ir_program *p = fe_instantiate(d, m, name, NULL, 0);
  if (!p) fail_msg("%s", diag_text(d));
  ratio(p, L, 0, 0);
  arena_free(a);
  diag_free(d);
}

static void test_grid_tiles(void **state) {
  (void)state;
  static const char *const names[] = {"swin", "swin_shifted", "na2d"};
  for (int k = 0; k < 3; k++) {
    int64_t win = k == 2 ? 3 : 8;
    grid_ratio(names[k], 64, win, SMALL(4096, 1024));
    grid_ratio(names[k], 48, win, 48 * 48);
    grid_ratio(names[k], 40, k == 2 ? 2 : 5, 1700);  /* a partial last row */
    grid_ratio(names[k], 32, k == 2 ? 3 : 4, 1000);
  }
  lib_ratio("patterns/swin.pat", "swin_shifted", 56 * 56);
  lib_ratio("patterns/neighborhood.pat", "na2d", 56 * 56);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_predicates),
      cmocka_unit_test(test_grid_tiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
