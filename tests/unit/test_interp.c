/* test_interp.c: the reference interpreter against formulas written here,
 * independently of runtime/interp.c.
 *
 * IR is built by hand with the ir_* constructors.  Each mask test compares
 * interp_mask_row with a per-(h, i, j) reference function over small grids
 * (Lq < Lk, Lq == Lk, Lq > Lk, sizes that are not multiples of block sizes);
 * the attention tests compare interp_attention with a dense masked softmax
 * computed here in double from the same reference mask.  The error tests
 * cover every run-time and API error path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ir.h"
#include "interp.h"

typedef bool (*pred2)(int64_t, int64_t);
typedef bool (*pred3)(int64_t, int64_t, int64_t);

/* ---- IR building ---- */

static arena *A;

static ir_node *K(int64_t v) { return ir_const(A, v, SPAN_NONE); }
static ir_node *L0(ir_op op) { return ir_new(A, op, 0, SPAN_NONE); }
static ir_node *U(ir_op op, ir_node *x) { return ir_new1(A, op, x, SPAN_NONE); }
static ir_node *B2(ir_op op, ir_node *x, ir_node *y) {
  return ir_new2(A, op, x, y, SPAN_NONE);
}
static ir_node *T3(ir_op op, ir_node *x, ir_node *y, ir_node *z) {
  return ir_new3(A, op, x, y, z, SPAN_NONE);
}
static ir_node *VI(void) { return L0(IR_VAR_I); }
static ir_node *VJ(void) { return L0(IR_VAR_J); }
static ir_node *VH(void) { return L0(IR_VAR_H); }
static ir_node *RT(int k) {
  ir_node *n = L0(IR_RUNTIME);
  n->value = k;
  return n;
}
static ir_node *IN(int k, ir_node *pos) {
  ir_node *n = U(IR_INPUT, pos);
  n->value = k;
  return n;
}
static ir_node *SET(int n, ...) {
  ir_node *s = ir_new(A, IR_SET, n, SPAN_NONE);
  va_list ap;
  va_start(ap, n);
  for (int k = 0; k < n; k++) s->kids[k] = va_arg(ap, ir_node *);
  va_end(ap);
  return s;
}
static ir_node *WHERE(ir_node *x) { return U(IR_WHERE, x); }

static ir_program prog(ir_node *root) {
  ir_program p;
  memset(&p, 0, sizeof p);
  p.name = "t";
  p.root = root;
  p.arena = A;
  return p;
}

static int setup(void **state) {
  (void)state;
  A = arena_new();
  return A ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  arena_free(A);
  A = NULL;
  return 0;
}

/* ---- reference side ---- */

typedef struct rs {
  const rt_args *a;  /* sizes and tensors */
  const void *u;     /* the test's own parameters */
} rs;

/* M(h, i, j) with i absolute; b for the data-dependent references. */
typedef bool (*ref_el)(const rs *s, int64_t b, int64_t h, int64_t i,
                       int64_t j);

static int64_t row_pos(int64_t r, int64_t Lq, int64_t Lk) {
  return Lq <= Lk ? r + (Lk - Lq) : r;
}

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return q * b > a ? q - 1 : q;  /* correct for b > 0 */
}
static int64_t pymod(int64_t a, int64_t b) {
  return a - b * (int64_t)floor((double)a / (double)b);
}

static uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static rt_args base_args(int64_t H, int64_t Lq, int64_t Lk) {
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = 1, a.H = H, a.Hkv = H, a.Lq = Lq, a.Lk = Lk, a.D = 4;
  return a;
}

/* Every row of every head and batch against the reference. */
static void check_mask_args(const ir_program *p, const rt_args *a, ref_el ref,
                            const void *u) {
  rs s = {a, u};
  uint8_t row[512];
  char err[256];
  assert_true(a->Lk <= 512);
  for (int64_t b = 0; b < a->B; b++)
    for (int64_t h = 0; h < a->H; h++)
      for (int64_t r = 0; r < a->Lq; r++) {
        rt_status st = interp_mask_row(p, a, b, h, r, row, err, sizeof err);
        if (st != RT_OK) fail_msg("row b=%lld h=%lld r=%lld: status %d: %s",
                                  (long long)b, (long long)h, (long long)r, st, err);
        int64_t i = row_pos(r, a->Lq, a->Lk);
        for (int64_t j = 0; j < a->Lk; j++) {
          bool want = ref(&s, b, h, i, j);
          if (row[j] != want)
            fail_msg("H=%lld Lq=%lld Lk=%lld b=%lld h=%lld r=%lld (i=%lld) j=%lld: "
                     "interp %d, reference %d",
                     (long long)a->H, (long long)a->Lq, (long long)a->Lk,
                     (long long)b, (long long)h, (long long)r, (long long)i,
                     (long long)j, row[j], want);
        }
      }
}

/* The same over a set of shapes: Lq < Lk, ==, >, tiny and odd. */
static void check_mask(const ir_program *p, ref_el ref, const void *u) {
  static const int64_t shapes[][3] = {
      {1, 13, 13}, {2, 7, 19}, {3, 19, 7}, {1, 1, 1}, {2, 1, 9},
      {1, 9, 1},   {2, 17, 17}, {1, 5, 23},
  };
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    rt_args a = base_args(shapes[k][0], shapes[k][1], shapes[k][2]);
    check_mask_args(p, &a, ref, u);
  }
}

/* ---- primitives ---- */

static bool r_full(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b, (void)h, (void)i, (void)j;
  return true;
}
static bool r_none(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b, (void)h, (void)i, (void)j;
  return false;
}
static bool r_causal(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b, (void)h;
  return j <= i;
}

static void test_full_none_causal(void **state) {
  (void)state;
  ir_program p = prog(L0(IR_FULL));
  check_mask(&p, r_full, NULL);
  p = prog(L0(IR_NONE));
  check_mask(&p, r_none, NULL);
  p = prog(L0(IR_CAUSAL));
  check_mask(&p, r_causal, NULL);
}

typedef struct two { int64_t x, y; } two;

static bool r_window(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const two *w = s->u;
  return i - w->x <= j && j <= i + w->y;
}

static void test_window(void **state) {
  (void)state;
  static const two ws[] = {{0, 0}, {2, 0}, {0, 3}, {1, 4}, {5, 5}, {100, 100}};
  for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
    ir_program p = prog(B2(IR_WINDOW, K(ws[k].x), K(ws[k].y)));
    check_mask(&p, r_window, &ws[k]);
  }
  /* Huge but legal sizes mean everything, not an overflow. */
  two big = {INT64_MAX, INT64_MAX};
  ir_program p = prog(B2(IR_WINDOW, K(INT64_MAX), K(INT64_MAX)));
  check_mask(&p, r_full, &big);
}

static bool r_dilated(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const two *w = s->u;
  int64_t d = i - j;
  return llabs(d) <= w->x * w->y && pymod(d, w->y) == 0;
}

static void test_dilated(void **state) {
  (void)state;
  static const two ws[] = {{0, 1}, {2, 1}, {2, 3}, {3, 2}, {1, 5}};
  for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
    ir_program p = prog(B2(IR_DILATED, K(ws[k].x), K(ws[k].y)));
    check_mask(&p, r_dilated, &ws[k]);
  }
}

static bool r_block(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  int64_t n = *(const int64_t *)s->u;
  return i / n == j / n;
}
static bool r_stride(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  int64_t n = *(const int64_t *)s->u;
  return pymod(i - j, n) == 0;
}

static void test_block_stride(void **state) {
  (void)state;
  static const int64_t ns[] = {1, 2, 3, 4, 7, 50};
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    ir_program p = prog(U(IR_BLOCK, K(ns[k])));
    check_mask(&p, r_block, &ns[k]);
    p = prog(U(IR_STRIDE, K(ns[k])));
    check_mask(&p, r_stride, &ns[k]);
  }
}

/* S = {0 .. 2, 5, -1, -4 .. -2, Lk - 6 .. -5 + 0} written as a predicate. */
static bool in_S(int64_t x, int64_t Lk) {
  if (0 <= x && x < 2) return true;
  if (x == 5) return true;
  if (x == Lk - 1) return true;
  if (Lk - 4 <= x && x < Lk - 2) return true;
  if (Lk - 6 <= x && x < Lk - 5) return true;
  return false;
}
static ir_node *S_node(void) {
  return SET(5, B2(IR_RANGE, K(0), K(2)), K(5), K(-1), B2(IR_RANGE, K(-4), K(-2)),
             B2(IR_RANGE, B2(IR_SUB, L0(IR_SIZE_LK), K(6)), B2(IR_ADD, K(-5), K(0))));
}
static bool r_rows(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h, (void)j;
  return in_S(i, s->a->Lk);
}
static bool r_cols(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h, (void)i;
  return in_S(j, s->a->Lk);
}
static bool r_global(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  return r_rows(s, b, h, i, j) || r_cols(s, b, h, i, j);
}

static void test_rows_cols_global(void **state) {
  (void)state;
  ir_program p = prog(U(IR_ROWS, S_node()));
  check_mask(&p, r_rows, NULL);
  p = prog(U(IR_COLS, S_node()));
  check_mask(&p, r_cols, NULL);
  p = prog(U(IR_GLOBAL, S_node()));
  check_mask(&p, r_global, NULL);
}

static bool r_random(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b;
  const two *w = s->u; /* x = r, y = seed */
  for (int64_t t = 0; t < w->x; t++) {
    uint64_t x = (uint64_t)w->y * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)h * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)i * 0x94D049BB133111EBull ^ (uint64_t)t;
    if (splitmix(x) % (uint64_t)s->a->Lk == (uint64_t)j) return true;
  }
  return false;
}

static void test_random(void **state) {
  (void)state;
  static const two ws[] = {{0, 1}, {1, 7}, {3, 42}, {5, -3}, {40, 123456789}};
  for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
    ir_program p = prog(B2(IR_RANDOM, K(ws[k].x), K(ws[k].y)));
    check_mask(&p, r_random, &ws[k]);
  }
  /* r far beyond Lk: every key (the rows are short, all keys get drawn). */
  two all = {INT64_MAX, 5};
  ir_program p = prog(B2(IR_RANDOM, K(INT64_MAX), K(5)));
  rt_args a = base_args(2, 6, 6);
  check_mask_args(&p, &a, r_full, &all);
  /* A value computed by hand from the spec's formula: seed 1, h 0, i 0,
   * t 0 hashes splitmix64(0x9E3779B97F4A7C15). */
  assert_true(splitmix(0x9E3779B97F4A7C15ull) == ar_hash(1, 0, 0, 0));
  assert_true(splitmix(0) == 0xE220A8397B1DCDAFull);
}

/* ---- integer expressions inside where ---- */

/* (i - 2*j) / 3 == (h - j) % 4 - 1 || (min(i, j) + abs(j - 7) > max(Lq, H) &&
 * !(j % 3 == 1 ? i > 3 : Lk - i <= j)) */
static bool r_arith(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b;
  const rt_args *a = s->a;
  int64_t lhs = floordiv(i - 2 * j, 3);
  int64_t rhs = pymod(h - j, 4) - 1;
  if (lhs == rhs) return true;
  int64_t mn = i < j ? i : j, mx = a->Lq > a->H ? a->Lq : a->H;
  bool sel = pymod(j, 3) == 1 ? i > 3 : a->Lk - i <= j;
  return mn + llabs(j - 7) > mx && !sel;
}

static void test_arith(void **state) {
  (void)state;
  ir_node *lhs = B2(IR_DIV, B2(IR_SUB, VI(), B2(IR_MUL, K(2), VJ())), K(3));
  ir_node *rhs = B2(IR_SUB, B2(IR_MOD, B2(IR_SUB, VH(), VJ()), K(4)), K(1));
  ir_node *left = B2(IR_EQ, lhs, rhs);
  ir_node *sum = B2(IR_ADD, B2(IR_MIN, VI(), VJ()),
                    U(IR_ABS, B2(IR_SUB, VJ(), K(7))));
  ir_node *mx = B2(IR_MAX, L0(IR_SIZE_LQ), L0(IR_SIZE_H));
  ir_node *sel = T3(IR_SEL, B2(IR_EQ, B2(IR_MOD, VJ(), K(3)), K(1)),
                    B2(IR_GT, VI(), K(3)),
                    B2(IR_LE, B2(IR_SUB, L0(IR_SIZE_LK), VI()), VJ()));
  ir_node *right = B2(IR_LAND, B2(IR_GT, sum, mx), U(IR_NOT, sel));
  ir_program p = prog(WHERE(B2(IR_LOR, left, right)));
  check_mask(&p, r_arith, NULL);
}

typedef struct divcase { int64_t x, y, q, m; } divcase;

/* Floor division and Python remainder on all sign combinations, and the
 * operators on values near the int64 limits that do not overflow. */
static void test_div_mod_signs(void **state) {
  (void)state;
  static const divcase cs[] = {
      {7, 2, 3, 1},   {-7, 2, -4, 1},  {7, -2, -4, -1}, {-7, -2, 3, -1},
      {6, 3, 2, 0},   {-6, 3, -2, 0},  {0, -5, 0, 0},   {1, 7, 0, 1},
      {-1, 7, -1, 6}, {INT64_MIN, 1, INT64_MIN, 0},
      {INT64_MIN, -1, 0, 0} /* q not checked: overflow, tested below */,
      {INT64_MAX, -1, -INT64_MAX, 0}, {INT64_MIN, 2, INT64_MIN / 2, 0},
      {INT64_MIN + 2, INT64_MAX, -1, 1}, {INT64_MIN, INT64_MAX, -2, INT64_MAX - 1},
      {INT64_MAX, INT64_MIN, -1, -1},
  };
  rt_args a = base_args(1, 1, 1);
  uint8_t row[1];
  char err[256];
  for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
    ir_node *m = B2(IR_EQ, B2(IR_MOD, K(cs[k].x), K(cs[k].y)), K(cs[k].m));
    ir_program p = prog(WHERE(m));
    assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_OK);
    if (!row[0]) fail_msg("%lld %% %lld != %lld", (long long)cs[k].x,
                          (long long)cs[k].y, (long long)cs[k].m);
    if (cs[k].x == INT64_MIN && cs[k].y == -1) continue;
    ir_node *q = B2(IR_EQ, B2(IR_DIV, K(cs[k].x), K(cs[k].y)), K(cs[k].q));
    p = prog(WHERE(q));
    assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_OK);
    if (!row[0]) fail_msg("%lld / %lld != %lld", (long long)cs[k].x,
                          (long long)cs[k].y, (long long)cs[k].q);
  }
  /* Limits that fit. */
  ir_node *e = B2(IR_LAND,
                  B2(IR_EQ, B2(IR_ADD, K(INT64_MAX - 1), K(1)), K(INT64_MAX)),
                  B2(IR_EQ, B2(IR_SUB, K(INT64_MIN + 1), K(1)), K(INT64_MIN)));
  e = B2(IR_LAND, e, B2(IR_EQ, U(IR_NEG, K(INT64_MAX)), K(INT64_MIN + 1)));
  e = B2(IR_LAND, e, B2(IR_EQ, B2(IR_MUL, K(INT64_MIN / 2), K(2)), K(INT64_MIN)));
  e = B2(IR_LAND, e, B2(IR_EQ, U(IR_ABS, K(INT64_MIN + 1)), K(INT64_MAX)));
  ir_program p = prog(WHERE(e));
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_OK);
  assert_true(row[0]);
}

/* Short-circuits: the right operand is not evaluated (it would divide by
 * zero) where the left one decides. */
static bool r_sc(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b, (void)h;
  return (j != i && 10 / (j - i) > 1) || j == 0;
}

static void test_short_circuit(void **state) {
  (void)state;
  ir_node *d = B2(IR_DIV, K(10), B2(IR_SUB, VJ(), VI()));
  ir_node *e = B2(IR_LOR, B2(IR_LAND, B2(IR_NE, VJ(), VI()), B2(IR_GT, d, K(1))),
                  B2(IR_EQ, VJ(), K(0)));
  ir_program p = prog(WHERE(e));
  check_mask(&p, r_sc, NULL);
  /* || does not evaluate its right side when the left is true. */
  e = B2(IR_LOR, B2(IR_EQ, VJ(), VI()), B2(IR_GT, B2(IR_DIV, K(1), B2(IR_SUB, VJ(), VI())), K(-99)));
  p = prog(WHERE(e));
  check_mask(&p, r_full, NULL);
  /* ?: evaluates only the chosen arm. */
  e = T3(IR_SEL, B2(IR_EQ, VJ(), VI()), K(0), B2(IR_DIV, K(1), B2(IR_SUB, VJ(), VI())));
  p = prog(WHERE(B2(IR_EQ, e, e)));
  check_mask(&p, r_full, NULL);
  /* Pattern & | - do not: an error of an operand is an error wherever it
   * is, even where the other operand decides the mask (the contract's
   * run-time errors, as the checker's constant ones): w divides by zero at
   * j == i + 1, outside causal. */
  ir_node *w = WHERE(B2(IR_GE, B2(IR_DIV, K(1), B2(IR_SUB, B2(IR_ADD, VI(), K(1)), VJ())), K(0)));
  rt_args a = base_args(1, 4, 4);
  uint8_t row[4];
  char err[64];
  ir_node *hidden[4] = {B2(IR_AND, L0(IR_CAUSAL), w),
                        B2(IR_OR, U(IR_COMPL, L0(IR_CAUSAL)), w),
                        B2(IR_MINUS, L0(IR_CAUSAL), U(IR_COMPL, w)),
                        B2(IR_AND, L0(IR_NONE), w)};
  for (int x = 0; x < 4; x++) {
    p = prog(hidden[x]);
    assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_ERANGE);
    assert_string_equal(err, "division by zero");
  }
  p = prog(w);
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_ERANGE);
  /* every item of an index set counts, even after one holds */
  p = prog(U(IR_COLS, SET(2, K(0), B2(IR_DIV, K(1), K(0)))));
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, err, sizeof err), RT_ERANGE);
  /* c ? P : Q evaluates only the chosen arm */
  p = prog(T3(IR_PSEL, K(1), L0(IR_CAUSAL), WHERE(B2(IR_DIV, K(1), K(0)))));
  check_mask(&p, r_causal, NULL);
}

/* ---- composition ---- */

/* (window(2, 1) | cols({0})) - stride(3) & !block(4), per head:
 * h % 2 == 0 ? that : causal & !window(1, 0). */
static bool r_comp(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b;
  if (h % 2 == 0) {
    bool w = (i - 2 <= j && j <= i + 1) || j == 0;
    bool st = (i - j) % 3 == 0;
    bool bl = i / 4 == j / 4;
    return w && !(st && !bl);
  }
  return j <= i && !(i - 1 <= j && j <= i);
}

static void test_composition(void **state) {
  (void)state;
  ir_node *w = B2(IR_OR, B2(IR_WINDOW, K(2), K(1)), U(IR_COLS, SET(1, K(0))));
  ir_node *x = B2(IR_AND, U(IR_STRIDE, K(3)), U(IR_COMPL, U(IR_BLOCK, K(4))));
  ir_node *even = B2(IR_MINUS, w, x);
  ir_node *odd = B2(IR_AND, L0(IR_CAUSAL), U(IR_COMPL, B2(IR_WINDOW, K(1), K(0))));
  ir_program p = prog(T3(IR_PSEL, B2(IR_EQ, B2(IR_MOD, VH(), K(2)), K(0)), even, odd));
  check_mask(&p, r_comp, NULL);
}

/* ---- blocks ---- */

static int64_t cdiv(int64_t x, int64_t y) { return (x + y - 1) / y; }

/* blocks(3) { causal | cols({-1}) | rows({Lq - 1}) } */
static bool r_blocks1(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  int64_t I = i / 3, J = j / 3, Lk = cdiv(s->a->Lk, 3), Lq = cdiv(s->a->Lq, 3);
  return J <= I || J == Lk - 1 || I == Lq - 1;
}

/* blocks(2) { blocks(3) { window(1, 0) } | where(j == Lk - 2) } */
static bool r_blocks2(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  int64_t I = i / 2, J = j / 2, Lk2 = cdiv(s->a->Lk, 2);
  int64_t I6 = I / 3, J6 = J / 3;
  return (I6 - 1 <= J6 && J6 <= I6) || J == Lk2 - 2;
}

/* blocks(4) { random(2, 9) } */
static bool r_blocks3(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b;
  uint64_t Lk = (uint64_t)cdiv(s->a->Lk, 4);
  for (uint64_t t = 0; t < 2; t++) {
    uint64_t x = 9ull * 0x9E3779B97F4A7C15ull ^ (uint64_t)h * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)(i / 4) * 0x94D049BB133111EBull ^ t;
    if (splitmix(x) % Lk == (uint64_t)(j / 4)) return true;
  }
  return false;
}

/* blocks(h + 1) { block(2) }: the size depends on the head. */
static bool r_blocks4(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b;
  return i / (h + 1) / 2 == j / (h + 1) / 2;
}

static void test_blocks(void **state) {
  (void)state;
  ir_node *in = B2(IR_OR, B2(IR_OR, L0(IR_CAUSAL), U(IR_COLS, SET(1, K(-1)))),
                   U(IR_ROWS, SET(1, B2(IR_SUB, L0(IR_SIZE_LQ), K(1)))));
  ir_program p = prog(B2(IR_BLOCKS, K(3), in));
  check_mask(&p, r_blocks1, NULL);
  in = B2(IR_OR, B2(IR_BLOCKS, K(3), B2(IR_WINDOW, K(1), K(0))),
          WHERE(B2(IR_EQ, VJ(), B2(IR_SUB, L0(IR_SIZE_LK), K(2)))));
  p = prog(B2(IR_BLOCKS, K(2), in));
  check_mask(&p, r_blocks2, NULL);
  p = prog(B2(IR_BLOCKS, K(4), B2(IR_RANDOM, K(2), K(9))));
  check_mask(&p, r_blocks3, NULL);
  p = prog(B2(IR_BLOCKS, B2(IR_ADD, VH(), K(1)), U(IR_BLOCK, K(2))));
  check_mask(&p, r_blocks4, NULL);
  /* A block larger than the sequence: one block. */
  p = prog(B2(IR_BLOCKS, K(INT64_MAX), B2(IR_BLOCKS, K(INT64_MAX), L0(IR_CAUSAL))));
  check_mask(&p, r_full, NULL);
}

/* ---- inputs, runtime scalars, externs ---- */

static const int32_t doc_ids[23] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 4,
                                    4, 4, 5, 5, 5, 5, 6, 6, 6, 7, 7};

static bool r_doc(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b, (void)h;
  return j <= i && doc_ids[i] == doc_ids[j];
}

static ir_program doc_prog(void) {
  static ir_input ins[1] = {{"doc", false, 0, NULL}};
  ir_node *w = WHERE(B2(IR_EQ, IN(0, VI()), IN(0, VJ())));
  ir_program p = prog(B2(IR_AND, L0(IR_CAUSAL), w));
  p.n_inputs = 1, p.inputs = ins;
  return p;
}

static void test_input(void **state) {
  (void)state;
  ir_program p = doc_prog();
  const int32_t *inputs[1] = {doc_ids};
  static const int64_t shapes[][2] = {{23, 23}, {5, 23}, {1, 23}};
  for (size_t k = 0; k < 3; k++) {
    rt_args a = base_args(2, shapes[k][0], shapes[k][1]);
    a.inputs = inputs;
    check_mask_args(&p, &a, r_doc, NULL);
  }
}

static bool r_sinks(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const two *w = s->u;
  return j <= i && (j < w->x || (i - w->y <= j && j <= i));
}

static bool ext_near(int64_t i, int64_t j) { return i - j == 1 || j - i == 3; }
static bool ext3(int64_t i, int64_t j, int64_t h) { return (i + j + h) % 5 == 0; }

static bool r_ext(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)s, (void)b;
  return ext_near(i, j) || ext3(i, j, h);
}

static void test_runtime_extern(void **state) {
  (void)state;
  /* causal & (cols(0 .. n) | window(m, 0)) with runtime n, m. */
  static ir_runtime rts[2] = {{"n", 4, true}, {"m", 0, false}};
  ir_node *pat = B2(IR_AND, L0(IR_CAUSAL),
                    B2(IR_OR, U(IR_COLS, SET(1, B2(IR_RANGE, K(0), RT(0)))),
                       B2(IR_WINDOW, RT(1), K(0))));
  ir_program p = prog(pat);
  p.n_runtime = 2, p.runtime = rts;
  static const two vals[] = {{4, 2}, {0, 0}, {2, 100}};
  for (size_t k = 0; k < 3; k++) {
    int64_t rv[2] = {vals[k].x, vals[k].y};
    rt_args a = base_args(1, 13, 17);
    a.runtime = rv;
    check_mask_args(&p, &a, r_sinks, &vals[k]);
  }
  /* where(near(i, j) || f3(i, j, h)) through extern functions. */
  static ir_extern exts[2] = {{"near", 2}, {"f3", 3}};
  ir_node *e1 = B2(IR_EXTERN, VI(), VJ());
  e1->value = 0;
  ir_node *e2 = T3(IR_EXTERN, VI(), VJ(), VH());
  e2->value = 1;
  p = prog(WHERE(B2(IR_LOR, e1, e2)));
  p.n_externs = 2, p.externs = exts;
  pred2 f2 = ext_near;
  pred3 f3 = ext3;
  void *fns[2];
  memcpy(&fns[0], &f2, sizeof f2);
  memcpy(&fns[1], &f3, sizeof f3);
  rt_args a = base_args(3, 11, 14);
  a.externs = fns;
  check_mask_args(&p, &a, r_ext, NULL);
}

/* blocks(3) { rows({-1}) | cols(-3 .. -1) } */
static bool r_blocks5(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  int64_t n = cdiv(s->a->Lk, 3), I = i / 3, J = j / 3;
  return I == n - 1 || (n - 3 <= J && J < n - 1);
}

/* blocks(2) { where(doc[i] == doc[j] + 1 || doc[Lk - 1] == i) }: the input
 * is indexed with block indices as computed. */
static bool r_blocks6(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const int32_t *doc = s->u;
  int64_t I = i / 2, J = j / 2, n = cdiv(s->a->Lk, 2);
  return doc[I] == doc[J] + 1 || doc[n - 1] == I;
}

static void test_blocks_more(void **state) {
  (void)state;
  ir_node *in = B2(IR_OR, U(IR_ROWS, SET(1, K(-1))),
                   U(IR_COLS, SET(1, B2(IR_RANGE, K(-3), K(-1)))));
  ir_program p = prog(B2(IR_BLOCKS, K(3), in));
  check_mask(&p, r_blocks5, NULL);
  static ir_input ins[1] = {{"doc", false, 0, NULL}};
  ir_node *w = B2(IR_LOR, B2(IR_EQ, IN(0, VI()), B2(IR_ADD, IN(0, VJ()), K(1))),
                  B2(IR_EQ, IN(0, B2(IR_SUB, L0(IR_SIZE_LK), K(1))), VI()));
  p = prog(B2(IR_BLOCKS, K(2), WHERE(w)));
  p.n_inputs = 1, p.inputs = ins;
  const int32_t *inputs[1] = {doc_ids};
  static const int64_t shapes[][2] = {{23, 23}, {7, 23}, {13, 11}, {3, 5}};
  for (size_t k = 0; k < 4; k++) {
    rt_args a = base_args(2, shapes[k][0], shapes[k][1]);
    a.inputs = inputs;
    check_mask_args(&p, &a, r_blocks6, doc_ids);
  }
}

/* ---- data: q, k, v filled deterministically ---- */

typedef struct data {
  rt_args a;
  float *q, *k, *v, *o, *lse;
} data;

static float val(uint64_t *st) {
  *st = *st * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*st >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* [B,H,L,D] (layout 0) or [B,L,H,D] (layout 1) tensors with pseudo-random
 * contents; lse contiguous [B,H,Lq]. */
static void data_new(data *x, int64_t B, int64_t H, int64_t Hkv, int64_t Lq,
                     int64_t Lk, int64_t D, int layout, uint64_t seed) {
  memset(x, 0, sizeof *x);
  rt_args *a = &x->a;
  a->B = B, a->H = H, a->Hkv = Hkv, a->Lq = Lq, a->Lk = Lk, a->D = D;
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * Hkv * Lk * D);
  x->q = malloc(nq * sizeof(float));
  x->o = malloc(nq * sizeof(float));
  x->k = malloc(nk * sizeof(float));
  x->v = malloc(nk * sizeof(float));
  x->lse = malloc((size_t)(B * H * Lq) * sizeof(float));
  assert_non_null(x->q), assert_non_null(x->o), assert_non_null(x->k);
  assert_non_null(x->v), assert_non_null(x->lse);
  for (size_t t = 0; t < nq; t++) x->q[t] = val(&seed), x->o[t] = NAN;
  for (size_t t = 0; t < nk; t++) x->k[t] = val(&seed), x->v[t] = val(&seed);
  a->q.data = x->q, a->k.data = x->k, a->v.data = x->v, a->o.data = x->o;
  rt_tensor_strides(&a->q, layout, H, Lq, D);
  rt_tensor_strides(&a->o, layout, H, Lq, D);
  rt_tensor_strides(&a->k, layout, Hkv, Lk, D);
  rt_tensor_strides(&a->v, layout, Hkv, Lk, D);
  a->lse = x->lse;
  a->lse_sb = H * Lq, a->lse_sh = Lq;
}

static void data_free(data *x) {
  free(x->q), free(x->k), free(x->v), free(x->o), free(x->lse);
}

static const float *at(const rt_tensor *t, int64_t b, int64_t h, int64_t r) {
  return t->data + b * t->sb + h * t->sh + r * t->sl;
}

static double tok_score(const rt_args *a, int64_t b, int64_t h, int64_t i,
                        int64_t j) {
  int64_t off = a->Lq <= a->Lk ? a->Lk - a->Lq : 0;
  const float *q = at(&a->q, b, h, i - off);
  const float *k = at(&a->k, b, h / (a->H / a->Hkv), j);
  double s = 0;
  for (int64_t d = 0; d < a->D; d++) s += (double)q[d] * k[d];
  double sc = a->scale != 0 ? a->scale : 1 / sqrt((double)a->D);
  return sc * s;
}

/* Dense masked softmax in double, mask from ref; compares o and lse. */
static void check_attention(const ir_program *p, const rt_args *a, ref_el ref,
                            const void *u) {
  char err[256];
  rt_status st = interp_attention(p, a, err, sizeof err);
  if (st != RT_OK) fail_msg("interp_attention: status %d: %s", st, err);
  rs s = {a, u};
  int64_t Lk = a->Lk, D = a->D;
  uint8_t *mask = malloc((size_t)(a->Lq * Lk));
  double *sc = malloc(sizeof(double) * (size_t)Lk);
  assert_non_null(mask), assert_non_null(sc);
  for (int64_t b = 0; b < a->B; b++)
    for (int64_t h = 0; h < a->H; h++) {
      for (int64_t r = 0; r < a->Lq; r++)
        for (int64_t j = 0; j < Lk; j++)
          mask[r * Lk + j] = ref(&s, b, h, row_pos(r, a->Lq, Lk), j);
      for (int64_t r = 0; r < a->Lq; r++) {
        int64_t i = row_pos(r, a->Lq, Lk), kvh = h / (a->H / a->Hkv);
        double mx = -INFINITY;
        int n = 0;
        for (int64_t j = 0; j < Lk; j++)
          if (mask[r * Lk + j]) {
            sc[j] = tok_score(a, b, h, i, j);
            if (sc[j] > mx) mx = sc[j];
            n++;
          }
        double z = 0;
        for (int64_t j = 0; j < Lk; j++)
          if (mask[r * Lk + j]) z += exp(sc[j] - mx);
        const float *o = at(&a->o, b, h, r);
        float lse = a->lse[b * a->lse_sb + h * a->lse_sh + r];
        if (n == 0) {
          for (int64_t d = 0; d < D; d++)
            if (o[d] != 0.0f) fail_msg("empty row b=%lld h=%lld r=%lld: o=%g",
                                       (long long)b, (long long)h, (long long)r, o[d]);
          if (!(isinf(lse) && lse < 0)) fail_msg("empty row: lse=%g", lse);
          continue;
        }
        for (int64_t d = 0; d < D; d++) {
          double want = 0;
          for (int64_t j = 0; j < Lk; j++)
            if (mask[r * Lk + j]) want += exp(sc[j] - mx) / z * at(&a->v, b, kvh, j)[d];
          if (!(fabs(o[d] - want) <= 1e-5 * fmax(1.0, fabs(want))))
            fail_msg("b=%lld h=%lld r=%lld d=%lld: o=%.9g want %.9g", (long long)b,
                     (long long)h, (long long)r, (long long)d, o[d], want);
        }
        double wl = mx + log(z);
        if (!(fabs(lse - wl) <= 1e-5 * fmax(1.0, fabs(wl))))
          fail_msg("b=%lld h=%lld r=%lld: lse=%.9g want %.9g", (long long)b,
                   (long long)h, (long long)r, lse, wl);
      }
    }
  free(mask), free(sc);
}

/* window(1, 0) & !rows({1, 2, -1}): rows at positions 1, 2 and Lk-1 empty. */
static bool r_empty(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  if (i == 1 || i == 2 || i == s->a->Lk - 1) return false;
  return i - 1 <= j && j <= i;
}

static void test_attention_basic(void **state) {
  (void)state;
  ir_program causal = prog(L0(IR_CAUSAL));
  ir_program empty = prog(B2(IR_MINUS, B2(IR_WINDOW, K(1), K(0)),
                             U(IR_ROWS, SET(3, K(1), K(2), K(-1)))));
  static const int64_t shapes[][6] = {
      /* B, H, Hkv, Lq, Lk, D */
      {1, 1, 1, 9, 9, 4}, {2, 4, 2, 5, 12, 8}, {1, 6, 3, 12, 5, 3},
      {2, 2, 1, 1, 7, 16}, {1, 3, 3, 7, 1, 5}, {1, 2, 2, 1, 1, 2},
  };
  for (int layout = 0; layout < 2; layout++)
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
      const int64_t *sh = shapes[k];
      data x;
      data_new(&x, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], layout, 17 + k);
      check_attention(&causal, &x.a, r_causal, NULL);
      x.a.scale = 0.37f;
      check_attention(&causal, &x.a, r_causal, NULL);
      x.a.scale = 0;
      check_attention(&empty, &x.a, r_empty, NULL);
      data_free(&x);
    }
}

static void test_attention_patterns(void **state) {
  (void)state;
  data x;
  data_new(&x, 2, 4, 2, 23, 23, 8, 1, 99);
  ir_program p = doc_prog();
  const int32_t *inputs[1] = {doc_ids};
  x.a.inputs = inputs;
  check_attention(&p, &x.a, r_doc, NULL);
  ir_node *in = B2(IR_OR, B2(IR_OR, L0(IR_CAUSAL), U(IR_COLS, SET(1, K(-1)))),
                   U(IR_ROWS, SET(1, B2(IR_SUB, L0(IR_SIZE_LQ), K(1)))));
  p = prog(B2(IR_BLOCKS, K(3), in));
  check_attention(&p, &x.a, r_blocks1, NULL);
  data_free(&x);
  data_new(&x, 1, 2, 2, 11, 19, 4, 0, 5);
  two w = {3, 42};
  p = prog(B2(IR_RANDOM, K(3), K(42)));
  check_attention(&p, &x.a, r_random, &w);
  data_free(&x);
}

/* ---- topk references ---- */

/* The k best of cand[0..n) by score (ties: smaller index), by repeated
 * selection; marks chosen[t]. */
static void pick_best(const double *score, const bool *cand, int64_t n,
                      int64_t k, bool *chosen) {
  for (int64_t t = 0; t < n; t++) chosen[t] = false;
  for (int64_t round = 0; round < k; round++) {
    int64_t best = -1;
    for (int64_t t = 0; t < n; t++)
      if (cand[t] && !chosen[t] && (best < 0 || score[t] > score[best])) best = t;
    if (best < 0) break;
    chosen[best] = true;
  }
}

typedef struct tk { int64_t k, w; } tk;

/* topk(k, causal) at token level, then & window(w, 0) | ... see users. */
static bool topk_tok(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j,
                     int64_t k) {
  int64_t Lk = s->a->Lk;
  double score[512];
  bool cand[512], chosen[512];
  for (int64_t t = 0; t < Lk; t++) {
    cand[t] = t <= i;
    score[t] = cand[t] ? tok_score(s->a, b, h, i, t) : 0;
  }
  pick_best(score, cand, Lk, k, chosen);
  return chosen[j];
}

static bool r_topk_tok(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  const tk *t = s->u;
  return topk_tok(s, b, h, i, j, t->k);
}

/* Mean over [lo, hi) rows of t into m. */
static void ref_mean(const rt_tensor *t, int64_t b, int64_t h, int64_t lo,
                     int64_t hi, int64_t D, double *m) {
  for (int64_t d = 0; d < D; d++) {
    double acc = 0;
    for (int64_t r = lo; r < hi; r++) acc += at(t, b, h, r)[d];
    m[d] = acc / (double)(hi - lo);
  }
}

/* blocks(g) { topk(k, causal) } with the NSA-style block score. */
static bool topk_blk(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j,
                     int64_t g, int64_t k, bool causal) {
  const rt_args *a = s->a;
  int64_t off = a->Lq <= a->Lk ? a->Lk - a->Lq : 0, nb = cdiv(a->Lk, g);
  int64_t I = i / g, D = a->D;
  int64_t lo = I * g > off ? I * g : off;
  int64_t hi = I * g + g < off + a->Lq ? I * g + g : off + a->Lq;
  double mq[64], mk[64], score[512];
  bool cand[512], chosen[512];
  ref_mean(&a->q, b, h, lo - off, hi - off, D, mq);
  for (int64_t J = 0; J < nb; J++) {
    cand[J] = !causal || J <= I;
    int64_t kl = J * g, kh = J * g + g < a->Lk ? J * g + g : a->Lk;
    ref_mean(&a->k, b, h / (a->H / a->Hkv), kl, kh, D, mk);
    score[J] = 0;
    for (int64_t d = 0; d < D; d++) score[J] += mq[d] * mk[d];
  }
  pick_best(score, cand, nb, k, chosen);
  return chosen[j / g];
}

static bool r_topk_blk(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  const tk *t = s->u;
  return topk_blk(s, b, h, i, j, t->w, t->k, true);
}

/* causal & (window(w, 0) | blocks(4) { topk(k, causal) }) */
static bool r_nsa(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  const tk *t = s->u;
  return j <= i && ((i - t->w <= j) || topk_blk(s, b, h, i, j, 4, t->k, true));
}

/* topk(2, topk(5, causal) - window(0, 0)) */
static bool r_nested(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  int64_t Lk = s->a->Lk;
  double score[512];
  bool cand[512], chosen[512];
  for (int64_t t = 0; t < Lk; t++) {
    cand[t] = topk_tok(s, b, h, i, t, 5) && t != i;
    score[t] = tok_score(s->a, b, h, i, t);
  }
  pick_best(score, cand, Lk, 2, chosen);
  return chosen[j];
}

static ir_node *topk_causal(int64_t k) {
  return B2(IR_TOPK, K(k), L0(IR_CAUSAL));
}

static void test_topk(void **state) {
  (void)state;
  static const int64_t shapes[][6] = {
      {1, 2, 1, 13, 13, 4}, {2, 2, 2, 6, 21, 8}, {1, 3, 1, 21, 6, 5},
  };
  for (int layout = 0; layout < 2; layout++)
    for (size_t s = 0; s < 3; s++) {
      const int64_t *sh = shapes[s];
      data x;
      data_new(&x, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], layout, 1234 + s);
      for (int64_t k = 0; k <= 4; k++) {
        tk t = {k, 0};
        ir_program p = prog(topk_causal(k));
        check_mask_args(&p, &x.a, r_topk_tok, &t);
        check_attention(&p, &x.a, r_topk_tok, &t);
        for (int64_t g = 2; g <= 5; g += 3) {
          tk tb = {k, g};
          p = prog(B2(IR_BLOCKS, K(g), topk_causal(k)));
          check_mask_args(&p, &x.a, r_topk_blk, &tb);
          check_attention(&p, &x.a, r_topk_blk, &tb);
        }
      }
      tk t = {2, 3};
      ir_node *nsa = B2(IR_AND, L0(IR_CAUSAL),
                        B2(IR_OR, B2(IR_WINDOW, K(3), K(0)),
                           B2(IR_BLOCKS, K(4), topk_causal(2))));
      ir_program p = prog(nsa);
      check_mask_args(&p, &x.a, r_nsa, &t);
      check_attention(&p, &x.a, r_nsa, &t);
      p = prog(B2(IR_TOPK, K(2), B2(IR_MINUS, topk_causal(5), B2(IR_WINDOW, K(0), K(0)))));
      check_mask_args(&p, &x.a, r_nested, NULL);
      /* The negative scale reverses the token-level ranking. */
      x.a.scale = -0.5f;
      tk t3 = {3, 0};
      p = prog(topk_causal(3));
      check_mask_args(&p, &x.a, r_topk_tok, &t3);
      check_attention(&p, &x.a, r_topk_tok, &t3);
      data_free(&x);
    }
}

/* h % 2 == 1 ? blocks(3) { topk(2, full) } : topk(1, none) | window(0, 0) */
static bool r_topk_edge(const rs *s, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (h % 2 == 1) return topk_blk(s, b, h, i, j, 3, 2, false);
  return i == j;
}

static void test_topk_edges(void **state) {
  (void)state;
  ir_node *odd = B2(IR_BLOCKS, K(3), B2(IR_TOPK, K(2), L0(IR_FULL)));
  ir_node *even = B2(IR_OR, B2(IR_TOPK, K(1), L0(IR_NONE)), B2(IR_WINDOW, K(0), K(0)));
  ir_program p = prog(T3(IR_PSEL, B2(IR_EQ, B2(IR_MOD, VH(), K(2)), K(1)), odd, even));
  static const int64_t shapes[][5] = {
      /* H, Hkv, Lq, Lk, D */
      {2, 1, 17, 10, 4}, {4, 2, 10, 17, 3}, {2, 2, 1, 8, 5}, {2, 1, 8, 1, 2},
  };
  for (size_t k = 0; k < 4; k++) {
    const int64_t *sh = shapes[k];
    data x;
    data_new(&x, 1, sh[0], sh[1], sh[2], sh[3], sh[4], (int)(k % 2), 31 + k);
    check_mask_args(&p, &x.a, r_topk_edge, NULL);
    check_attention(&p, &x.a, r_topk_edge, NULL);
    data_free(&x);
  }
}

/* Equal scores: the smaller key wins. */
static void test_topk_ties(void **state) {
  (void)state;
  data x;
  data_new(&x, 1, 1, 1, 8, 8, 2, 0, 3);
  for (int64_t r = 0; r < 8; r++) {
    float *q = x.q + r * 2, *k = x.k + r * 2;
    q[0] = 1, q[1] = 0;
    k[0] = (float)(r % 3), k[1] = (float)r; /* scores 0 1 2 0 1 2 0 1 */
  }
  ir_program p = prog(topk_causal(2));
  uint8_t row[8];
  char err[128];
  assert_int_equal(interp_mask_row(&p, &x.a, 0, 0, 7, row, err, sizeof err), RT_OK);
  static const uint8_t want7[8] = {0, 0, 1, 0, 0, 1, 0, 0};
  assert_memory_equal(row, want7, 8);
  p = prog(topk_causal(3));
  assert_int_equal(interp_mask_row(&p, &x.a, 0, 0, 7, row, err, sizeof err), RT_OK);
  static const uint8_t want7b[8] = {0, 1, 1, 0, 0, 1, 0, 0};
  assert_memory_equal(row, want7b, 8);
  assert_int_equal(interp_mask_row(&p, &x.a, 0, 0, 3, row, err, sizeof err), RT_OK);
  static const uint8_t want3[8] = {1, 1, 1, 0, 0, 0, 0, 0};
  assert_memory_equal(row, want3, 8);
  data_free(&x);
}

/* ---- errors ---- */

static diag *DG;

/* A program whose every node spans the text "ERR" of source "t.pat" at
 * column col of line 2. */
static src_span at_col(int col) {
  return (src_span){0, 4 + col - 1, 4 + col};
}

static ir_program located(ir_node *root) {
  ir_program p = prog(root);
  p.diag = DG;
  return p;
}

static int setup_diag(void **state) {
  if (setup(state)) return -1;
  DG = diag_new();
  if (!DG) return -1;
  const char *text = "abc\n0123456789012345678901234567890\n";
  return diag_add_source(DG, "t.pat", text, strlen(text)) == 0 ? 0 : -1;
}
static int teardown_diag(void **state) {
  diag_free(DG);
  DG = NULL;
  return teardown(state);
}

static ir_node *span(ir_node *n, int col) {
  n->span = at_col(col);
  return n;
}

static void expect_row_err(const ir_program *p, const rt_args *a, int64_t r,
                           rt_status want, const char *msg) {
  uint8_t row[64];
  char err[256];
  rt_status st = interp_mask_row(p, a, 0, a->H - 1, r, row, err, sizeof err);
  if (st != want || strcmp(err, msg) != 0)
    fail_msg("status %d (want %d), message '%s' (want '%s')", st, want, err, msg);
}

static void test_runtime_errors(void **state) {
  (void)state;
  rt_args a = base_args(2, 6, 8);
  /* Overflow of every checked operator. */
  ir_program p = located(WHERE(span(B2(IR_MUL, VI(), K(INT64_MAX / 2 + 1)), 3)));
  expect_row_err(&p, &a, 5, RT_ERANGE, "t.pat:2:3: error: integer overflow in '*'");
  p = located(WHERE(span(B2(IR_ADD, K(INT64_MAX), VJ()), 5)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:5: error: integer overflow in '+'");
  p = located(WHERE(span(B2(IR_SUB, K(INT64_MIN + 1), B2(IR_ADD, VJ(), K(2))), 1)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:1: error: integer overflow in '-'");
  p = located(WHERE(span(U(IR_NEG, B2(IR_SUB, K(INT64_MIN + 1), VH())), 7)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:7: error: integer overflow in '-'");
  p = located(WHERE(span(U(IR_ABS, B2(IR_SUB, K(INT64_MIN + 1), VH())), 7)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:7: error: integer overflow in 'abs'");
  p = located(WHERE(span(B2(IR_DIV, B2(IR_SUB, K(INT64_MIN + 1), VH()), K(-1)), 2)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:2: error: integer overflow in '/'");
  /* Division and remainder by zero, found only on some (i, j). */
  p = located(WHERE(span(B2(IR_DIV, K(1), B2(IR_SUB, VJ(), K(3))), 9)));
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:9: error: division by zero");
  p = located(WHERE(span(B2(IR_MOD, VJ(), B2(IR_SUB, VI(), K(4))), 10)));
  expect_row_err(&p, &a, 2, RT_ERANGE, "t.pat:2:10: error: division by zero");
  uint8_t row[8];
  char err[256];
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 3, row, err, sizeof err), RT_OK);
  /* Input index out of range, both ends. */
  static ir_input ins[1] = {{"doc", false, 0, NULL}};
  int32_t docv[8] = {0};
  const int32_t *inputs[1] = {docv};
  a.inputs = inputs;
  p = located(WHERE(B2(IR_EQ, span(IN(0, B2(IR_ADD, VI(), K(1))), 4), K(0))));
  p.n_inputs = 1, p.inputs = ins;
  assert_int_equal(interp_mask_row(&p, &a, 0, 1, 4, row, err, sizeof err), RT_OK);
  expect_row_err(&p, &a, 5, RT_ERANGE,
                 "t.pat:2:4: error: index 8 of input 'doc' is out of range [0, 8)");
  p = located(WHERE(B2(IR_EQ, span(IN(0, B2(IR_SUB, VJ(), K(1))), 4), K(0))));
  p.n_inputs = 1, p.inputs = ins;
  expect_row_err(&p, &a, 5, RT_ERANGE,
                 "t.pat:2:4: error: index -1 of input 'doc' is out of range [0, 8)");
  /* Negative primitive sizes through runtime scalars. */
  static ir_runtime rts[1] = {{"n", 0, false}};
  int64_t rv[1] = {-1};
  a.runtime = rv;
  p = located(B2(IR_WINDOW, span(RT(0), 8), K(0)));
  p.n_runtime = 1, p.runtime = rts;
  expect_row_err(&p, &a, 0, RT_ERANGE,
                 "t.pat:2:8: error: the left size of window is -1, must be >= 0");
  p = located(B2(IR_WINDOW, K(0), span(RT(0), 11)));
  p.n_runtime = 1, p.runtime = rts;
  expect_row_err(&p, &a, 0, RT_ERANGE,
                 "t.pat:2:11: error: the right size of window is -1, must be >= 0");
  rv[0] = 0;
  struct { ir_op op; int kid; const char *msg; } prims[] = {
      {IR_DILATED, 1, "t.pat:2:6: error: the dilation d of dilated is 0, must be >= 1"},
      {IR_BLOCK, 0, "t.pat:2:6: error: the block size of block is 0, must be >= 1"},
      {IR_STRIDE, 0, "t.pat:2:6: error: the stride of stride is 0, must be >= 1"},
      {IR_BLOCKS, 0, "t.pat:2:6: error: the block size of blocks is 0, must be >= 1"},
  };
  for (size_t k = 0; k < sizeof prims / sizeof prims[0]; k++) {
    int n_kids = prims[k].op == IR_BLOCK || prims[k].op == IR_STRIDE ? 1 : 2;
    ir_node *n = ir_new(A, prims[k].op, n_kids, SPAN_NONE);
    for (int t = 0; t < n->n_kids; t++) n->kids[t] = K(1);
    if (prims[k].op == IR_BLOCKS) n->kids[1] = L0(IR_FULL);
    n->kids[prims[k].kid] = span(RT(0), 6);
    p = located(n);
    p.n_runtime = 1, p.runtime = rts;
    expect_row_err(&p, &a, 0, RT_ERANGE, prims[k].msg);
  }
  rv[0] = -3;
  p = located(B2(IR_DILATED, span(RT(0), 6), K(1)));
  p.n_runtime = 1, p.runtime = rts;
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:6: error: the width w of dilated is -3, must be >= 0");
  p = located(B2(IR_RANDOM, span(RT(0), 6), K(1)));
  p.n_runtime = 1, p.runtime = rts;
  expect_row_err(&p, &a, 0, RT_ERANGE, "t.pat:2:6: error: the key count r of random is -3, must be >= 0");
  p = located(B2(IR_TOPK, span(RT(0), 6), L0(IR_CAUSAL)));
  p.n_runtime = 1, p.runtime = rts;
  data x;
  data_new(&x, 1, 2, 2, 6, 8, 4, 0, 1);
  x.a.runtime = rv;
  expect_row_err(&p, &x.a, 0, RT_ERANGE, "t.pat:2:6: error: k of topk is -3, must be >= 0");
  /* The same errors come out of interp_attention and the backend. */
  rv[0] = -1;
  p = located(B2(IR_WINDOW, span(RT(0), 8), K(0)));
  p.n_runtime = 1, p.runtime = rts;
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_ERANGE);
  assert_string_equal(err, "t.pat:2:8: error: the left size of window is -1, must be >= 0");
  backend_opts bo = {.D = 4, .threads = 1};
  void *kern = backend_interp.compile(&p, &bo, err, sizeof err);
  assert_non_null(kern);
  assert_int_equal(backend_interp.run(kern, &x.a, err, sizeof err), RT_ERANGE);
  assert_string_equal(err, "t.pat:2:8: error: the left size of window is -1, must be >= 0");
  backend_interp.free(kern);
  data_free(&x);
  /* Without a location: the bare message. */
  p = prog(WHERE(B2(IR_DIV, K(1), B2(IR_SUB, VJ(), VJ()))));
  expect_row_err(&p, &a, 0, RT_ERANGE, "division by zero");
  /* A too small error buffer is not overrun. */
  char small[8];
  memset(small, 'x', sizeof small);
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, row, small, 5), RT_ERANGE);
  assert_int_equal(small[4], 0);
  assert_int_equal(small[5], 'x');
}

static void test_api_errors(void **state) {
  (void)state;
  char err[256];
  data x;
  data_new(&x, 1, 4, 2, 5, 7, 4, 0, 1);
  ir_program p = prog(L0(IR_CAUSAL));
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
  struct { int64_t *field; int64_t bad; } shapes[] = {
      {&x.a.B, -1}, {&x.a.Hkv, 0}, {&x.a.Hkv, 3}, {&x.a.Lk, -1},
      {&x.a.Lq, -2}, {&x.a.D, 0}, {&x.a.H, -4},
  };
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    int64_t keep = *shapes[k].field;
    *shapes[k].field = shapes[k].bad;
    err[0] = 0;
    assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_EINVAL);
    assert_true(strlen(err) > 0);
    *shapes[k].field = keep;
  }
  /* Empty shapes (rt.h): no rows, nothing written; no keys, empty rows. */
  struct { int64_t *field; int64_t *field2; } none[] = {
      {&x.a.B, NULL}, {&x.a.H, &x.a.Hkv}, {&x.a.Lq, NULL},
  };
  x.o[0] = 7;
  for (size_t k = 0; k < sizeof none / sizeof none[0]; k++) {
    int64_t keep = *none[k].field, keep2 = none[k].field2 ? *none[k].field2 : 0;
    *none[k].field = 0;
    if (none[k].field2) *none[k].field2 = 0;
    assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
    assert_true(x.o[0] == 7);
    *none[k].field = keep;
    if (none[k].field2) *none[k].field2 = keep2;
  }
  x.a.Lk = 0;
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
  assert_true(x.o[0] == 0 && isinf(x.lse[0]) && x.lse[0] < 0);
  x.a.Lk = 7;
  float **ptrs[] = {&x.a.q.data, &x.a.k.data, &x.a.v.data, &x.a.o.data};
  for (size_t k = 0; k < 4; k++) {
    float *keep = *ptrs[k];
    *ptrs[k] = NULL;
    assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_EINVAL);
    assert_non_null(strstr(err, "NULL"));
    *ptrs[k] = keep;
  }
  assert_int_equal(interp_attention(NULL, &x.a, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_attention(&p, NULL, err, sizeof err), RT_EINVAL);
  /* lse may be NULL. */
  x.a.lse = NULL;
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
  x.a.lse = x.lse;
  /* Missing runtime scalars, inputs, externs. */
  static ir_runtime rts[1] = {{"n", 3, true}};
  ir_program pr = prog(B2(IR_WINDOW, RT(0), K(0)));
  pr.n_runtime = 1, pr.runtime = rts;
  assert_int_equal(interp_attention(&pr, &x.a, err, sizeof err), RT_EINVAL);
  assert_non_null(strstr(err, "'n'"));
  ir_program pi = doc_prog();
  assert_int_equal(interp_attention(&pi, &x.a, err, sizeof err), RT_EINVAL);
  assert_non_null(strstr(err, "'doc'"));
  const int32_t *no_inputs[1] = {NULL};
  x.a.inputs = no_inputs;
  assert_int_equal(interp_attention(&pi, &x.a, err, sizeof err), RT_EINVAL);
  x.a.inputs = NULL;
  static ir_extern exts[1] = {{"near", 2}};
  ir_node *e = B2(IR_EXTERN, VI(), VJ());
  ir_program pe = prog(WHERE(e));
  pe.n_externs = 1, pe.externs = exts;
  assert_int_equal(interp_attention(&pe, &x.a, err, sizeof err), RT_EINVAL);
  assert_non_null(strstr(err, "'near'"));
  /* Mask rows: q/k only needed with topk; bad row indices; NULL out. */
  uint8_t row[8];
  rt_args a = base_args(2, 5, 7);
  assert_int_equal(interp_mask_row(&p, &a, 0, 1, 4, row, err, sizeof err), RT_OK);
  ir_program pt = prog(topk_causal(2));
  assert_int_equal(interp_mask_row(&pt, &a, 0, 1, 4, row, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_row(&pt, &x.a, 0, 1, 4, row, err, sizeof err), RT_OK);
  assert_int_equal(interp_mask_row(&p, &a, 0, 2, 0, row, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 5, row, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_row(&p, &a, 1, 0, 0, row, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, -1, row, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, NULL, err, sizeof err), RT_EINVAL);
  /* Errors with no message buffer do not crash. */
  assert_int_equal(interp_mask_row(&p, &a, 0, 0, 0, NULL, NULL, 0), RT_EINVAL);
  /* Malformed IR is refused, not run. */
  ir_node *w1 = ir_new(A, IR_WINDOW, 1, SPAN_NONE);
  w1->kids[0] = K(1);
  ir_node *bad_rt = RT(3);
  ir_node *bad_ext = B2(IR_EXTERN, VI(), VJ());
  bad_ext->value = 0;
  ir_node *bads[] = {
      w1, WHERE(L0(IR_FULL)), B2(IR_AND, L0(IR_CAUSAL), K(1)), K(1),
      B2(IR_WINDOW, bad_rt, K(0)), U(IR_ROWS, K(1)), U(IR_COLS, SET(1, L0(IR_FULL))),
      WHERE(bad_ext), U(IR_COLS, SET(1, B2(IR_RANGE, K(0), L0(IR_NONE)))),
      T3(IR_PSEL, L0(IR_FULL), L0(IR_FULL), L0(IR_FULL)),
  };
  static ir_extern ext3s[1] = {{"f3", 3}};
  for (size_t k = 0; k < sizeof bads / sizeof bads[0]; k++) {
    ir_program pb = prog(bads[k]);
    pb.n_externs = 1, pb.externs = ext3s;
    err[0] = 0;
    assert_int_equal(interp_mask_row(&pb, &a, 0, 0, 0, row, err, sizeof err), RT_EINVAL);
    assert_non_null(strstr(err, "malformed"));
  }
  /* The backend table: D must match what the kernel was compiled for. */
  backend_opts bo = {.D = 8, .threads = 0};
  assert_null(backend_interp.compile(NULL, &bo, err, sizeof err));
  void *kern = backend_interp.compile(&p, &bo, err, sizeof err);
  assert_non_null(kern);
  assert_int_equal(backend_interp.run(kern, &x.a, err, sizeof err), RT_EINVAL);
  assert_non_null(strstr(err, "D=8"));
  backend_interp.free(kern);
  bo.D = 4;
  kern = backend_interp.compile(&p, &bo, err, sizeof err);
  assert_int_equal(backend_interp.run(kern, &x.a, err, sizeof err), RT_OK);
  backend_interp.free(kern);
  assert_string_equal(backend_interp.name, "interp");
  data_free(&x);
}

/* The backend gives exactly what interp_attention gives. */
static void test_backend_run(void **state) {
  (void)state;
  data x, y;
  data_new(&x, 1, 2, 1, 9, 12, 8, 1, 77);
  data_new(&y, 1, 2, 1, 9, 12, 8, 1, 77);
  ir_program p = prog(B2(IR_AND, L0(IR_CAUSAL), B2(IR_WINDOW, K(3), K(0))));
  char err[128];
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
  void *kern = backend_interp.compile(&p, NULL, err, sizeof err);
  assert_non_null(kern);
  assert_int_equal(backend_interp.run(kern, &y.a, err, sizeof err), RT_OK);
  backend_interp.free(kern);
  assert_memory_equal(x.o, y.o, sizeof(float) * 2 * 9 * 8);
  assert_memory_equal(x.lse, y.lse, sizeof(float) * 2 * 9);
  data_free(&x), data_free(&y);
}

/* Any thread count gives the same bits, and the first error in (b, h, r)
 * order whichever thread meets it. */
static void test_threads(void **state) {
  (void)state;
  data x, y;
  data_new(&x, 2, 3, 1, 37, 41, 8, 1, 555);
  data_new(&y, 2, 3, 1, 37, 41, 8, 1, 555);
  ir_node *nsa = B2(IR_AND, L0(IR_CAUSAL),
                    B2(IR_OR, B2(IR_WINDOW, K(3), K(0)),
                       B2(IR_BLOCKS, K(4), topk_causal(2))));
  ir_program p = prog(nsa);
  char err[256];
  size_t no = sizeof(float) * 2 * 3 * 37 * 8, nl = sizeof(float) * 2 * 3 * 37;
  x.a.threads = 1;
  assert_int_equal(interp_attention(&p, &x.a, err, sizeof err), RT_OK);
  tk t = {2, 3};
  check_attention(&p, &x.a, r_nsa, &t);
  static const int counts[] = {2, 3, 7, 0};
  for (size_t k = 0; k < 4; k++) {
    y.a.threads = counts[k];
    memset(y.o, 0xff, no);
    assert_int_equal(interp_attention(&p, &y.a, err, sizeof err), RT_OK);
    assert_memory_equal(x.o, y.o, no);
    assert_memory_equal(x.lse, y.lse, nl);
  }
  ir_program pd = doc_prog();
  pd.root = WHERE(B2(IR_EQ, IN(0, B2(IR_ADD, VI(), B2(IR_MUL, K(30), VH()))), K(0)));
  int32_t zeros[41] = {0};
  const int32_t *inputs[1] = {zeros};
  y.a.inputs = inputs;
  for (size_t k = 0; k < 4; k++) {
    y.a.threads = counts[k];
    assert_int_equal(interp_attention(&pd, &y.a, err, sizeof err), RT_ERANGE);
    assert_string_equal(err, "index 41 of input 'doc' is out of range [0, 41)");
  }
  data_free(&x), data_free(&y);
}

/* Several rows at once give what the rows give one by one. */
static void test_mask_rows(void **state) {
  (void)state;
  data x;
  data_new(&x, 2, 2, 1, 29, 33, 4, 0, 8);
  ir_node *nsa = B2(IR_AND, L0(IR_CAUSAL),
                    B2(IR_OR, B2(IR_WINDOW, K(3), K(0)),
                       B2(IR_BLOCKS, K(4), topk_causal(2))));
  ir_program p = prog(B2(IR_OR, nsa, B2(IR_RANDOM, K(2), K(3))));
  uint8_t all[29 * 33], one[33];
  char err[256];
  for (int64_t b = 0; b < 2; b++)
    for (int64_t h = 0; h < 2; h++) {
      assert_int_equal(interp_mask_rows(&p, &x.a, b, h, 0, 29, all, err, sizeof err), RT_OK);
      for (int64_t r = 0; r < 29; r++) {
        assert_int_equal(interp_mask_row(&p, &x.a, b, h, r, one, err, sizeof err), RT_OK);
        assert_memory_equal(all + r * 33, one, 33);
      }
      assert_int_equal(interp_mask_rows(&p, &x.a, b, h, 20, 9, all, err, sizeof err), RT_OK);
      for (int64_t r = 20; r < 29; r++) {
        assert_int_equal(interp_mask_row(&p, &x.a, b, h, r, one, err, sizeof err), RT_OK);
        assert_memory_equal(all + (r - 20) * 33, one, 33);
      }
    }
  assert_int_equal(interp_mask_rows(&p, &x.a, 0, 0, 20, 10, all, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_rows(&p, &x.a, 0, 0, 0, 0, all, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_rows(&p, &x.a, 0, 0, 3, -1, all, err, sizeof err), RT_EINVAL);
  assert_int_equal(interp_mask_rows(&p, &x.a, 0, 0, 28, INT64_MAX, all, err, sizeof err), RT_EINVAL);
  data_free(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_full_none_causal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_window, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dilated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_block_stride, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rows_cols_global, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random, setup, teardown),
      cmocka_unit_test_setup_teardown(test_arith, setup, teardown),
      cmocka_unit_test_setup_teardown(test_div_mod_signs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_circuit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_composition, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blocks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blocks_more, setup, teardown),
      cmocka_unit_test_setup_teardown(test_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runtime_extern, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attention_basic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attention_patterns, setup, teardown),
      cmocka_unit_test_setup_teardown(test_topk, setup, teardown),
      cmocka_unit_test_setup_teardown(test_topk_ties, setup, teardown),
      cmocka_unit_test_setup_teardown(test_topk_edges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runtime_errors, setup_diag, teardown_diag),
      cmocka_unit_test_setup_teardown(test_api_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mask_rows, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
