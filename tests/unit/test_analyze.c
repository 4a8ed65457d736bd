/* test_analyze.c: the tile plan (an_build + plan_tiles) against an
 * independent per-element mask evaluator written here from the spec.
 *
 * Soundness: every (i, j) a row of a tile allows lies in a span; exactness:
 * every key of a FULL span is allowed for every row of the tile.  topk is
 * evaluated three-valued (a key of P is "maybe"), so a FULL span is required
 * to be definitely allowed, which is stricter than any concrete q, k.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze.h"
#include "arena.h"
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "plan.h"
#include "plan_ops.h"

#define PLAN_HDR_WORDS PLAN_HDR

#include "gen_ir.h"
#include "plan_check.h"
#include "small.h"

/* ---- the independent evaluator (three-valued: 0 no, 1 yes, 2 maybe) ---- */

typedef struct memo {   /* keys of a topk's P in one row */
  const ir_node *n;
  int64_t i, h, Lk, count;
} memo;

typedef struct ctx {
  int64_t i, j, h, H, Lq, Lk;
  const int64_t *rt;
  const int32_t *doc;    /* Lk entries at token granularity */
  int64_t Lk_tok;
  int err;
  memo *memo;            /* 8 entries, shared by nested contexts */
} ctx;

static int64_t fdiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static int64_t fmod_(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

static int64_t ev_int(ctx *c, const ir_node *n) {
  int64_t a, b, r;
  switch (n->op) {
  case IR_CONST: return n->value;
  case IR_VAR_I: return c->i;
  case IR_VAR_J: return c->j;
  case IR_VAR_H: return c->h;
  case IR_SIZE_LQ: return c->Lq;
  case IR_SIZE_LK: return c->Lk;
  case IR_SIZE_H: return c->H;
  case IR_RUNTIME: return c->rt[n->value];
  case IR_INPUT: /* out of range reads wrap: the plan never reads inputs */
    a = ev_int(c, n->kids[0]);
    return c->doc[fmod_(a, c->Lk_tok)];
  case IR_NEG:
    a = ev_int(c, n->kids[0]);
    if (a == INT64_MIN) return c->err = 1, 0;
    return -a;
  case IR_NOT: return !ev_int(c, n->kids[0]);
  case IR_ABS:
    a = ev_int(c, n->kids[0]);
    if (a == INT64_MIN) return c->err = 1, 0;
    return a < 0 ? -a : a;
  case IR_LAND: return ev_int(c, n->kids[0]) ? ev_int(c, n->kids[1]) != 0 : 0;
  case IR_LOR: return ev_int(c, n->kids[0]) ? 1 : ev_int(c, n->kids[1]) != 0;
  case IR_SEL:
    return ev_int(c, n->kids[0]) ? ev_int(c, n->kids[1]) : ev_int(c, n->kids[2]);
  default: break;
  }
  a = ev_int(c, n->kids[0]);
  b = ev_int(c, n->kids[1]);
  switch (n->op) {
  case IR_ADD: if (__builtin_add_overflow(a, b, &r)) c->err = 1; return r;
  case IR_SUB: if (__builtin_sub_overflow(a, b, &r)) c->err = 1; return r;
  case IR_MUL: if (__builtin_mul_overflow(a, b, &r)) c->err = 1; return r;
  case IR_DIV:
    if (!b || (a == INT64_MIN && b == -1)) return c->err = 1, 0;
    return fdiv(a, b);
  case IR_MOD:
    if (!b) return c->err = 1, 0;
    return b == -1 ? 0 : fmod_(a, b);
  case IR_MIN: return a < b ? a : b;
  case IR_MAX: return a > b ? a : b;
  case IR_LT: return a < b;
  case IR_LE: return a <= b;
  case IR_GT: return a > b;
  case IR_GE: return a >= b;
  case IR_EQ: return a == b;
  case IR_NE: return a != b;
  default: c->err = 1; return 0;
  }
}

static int in_set(ctx *c, const ir_node *s, int64_t x) {
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    if (it->op == IR_RANGE) {
      int64_t a = ev_int(c, it->kids[0]), b = ev_int(c, it->kids[1]);
      if (a < 0) a += c->Lk;
      if (b < 0) b += c->Lk;
      if (a <= x && x < b) return 1;
    } else {
      int64_t v = ev_int(c, it);
      if (v < 0) v += c->Lk;
      if (v == x) return 1;
    }
  }
  return 0;
}

static int ev_pat(ctx *c, const ir_node *n) {
  int64_t i = c->i, j = c->j, a, b;
  int x, y;
  switch (n->op) {
  case IR_FULL: return 1;
  case IR_NONE: return 0;
  case IR_CAUSAL: return j <= i;
  case IR_WINDOW: /* exact for any sizes: -l <= j - i <= r */
    a = ev_int(c, n->kids[0]), b = ev_int(c, n->kids[1]);
    if (a < 0 || b < 0) return c->err = 1, 0;
    return -a <= j - i && j - i <= b;
  case IR_DILATED: { /* w * d saturates */
    a = ev_int(c, n->kids[0]), b = ev_int(c, n->kids[1]);
    if (a < 0 || b < 1) return c->err = 1, 0;
    int64_t wd;
    if (__builtin_mul_overflow(a, b, &wd)) wd = INT64_MAX;
    return (i - j <= wd && j - i <= wd) && fmod_(i - j, b) == 0;
  }
  case IR_BLOCK:
    a = ev_int(c, n->kids[0]);
    if (a < 1) return c->err = 1, 0;
    return i / a == j / a;
  case IR_STRIDE:
    a = ev_int(c, n->kids[0]);
    if (a < 1) return c->err = 1, 0;
    return fmod_(i - j, a) == 0;
  case IR_ROWS: return in_set(c, n->kids[0], i);
  case IR_COLS: return in_set(c, n->kids[0], j);
  case IR_GLOBAL: return in_set(c, n->kids[0], i) || in_set(c, n->kids[0], j);
  case IR_RANDOM: { /* drawn t = 0, 1, ... until r or every key is in */
    static struct {
      const ir_node *n;
      int64_t h, i, Lk, r, seed;
      uint8_t in[512];
    } rmemo[4];
    a = ev_int(c, n->kids[0]), b = ev_int(c, n->kids[1]);
    if (a < 0) return c->err = 1, 0;
    assert_true(c->Lk >= 1 && c->Lk <= 512);
    int m = (int)(((uintptr_t)n >> 4) % 4);
    if (rmemo[m].n != n || rmemo[m].h != c->h || rmemo[m].i != i ||
        rmemo[m].Lk != c->Lk || rmemo[m].r != a || rmemo[m].seed != b) {
      memset(rmemo[m].in, 0, sizeof rmemo[m].in);
      for (int64_t t = 0, hit = 0; t < a && hit < c->Lk; t++) {
        uint64_t key = ar_hash((uint64_t)b, (uint64_t)c->h, (uint64_t)i, (uint64_t)t) %
                     (uint64_t)c->Lk;
        hit += !rmemo[m].in[key];
        rmemo[m].in[key] = 1;
      }
      rmemo[m].n = n, rmemo[m].h = c->h, rmemo[m].i = i, rmemo[m].Lk = c->Lk;
      rmemo[m].r = a, rmemo[m].seed = b;
    }
    return rmemo[m].in[j];
  }
  case IR_WHERE: return ev_int(c, n->kids[0]) != 0;
  case IR_TOPK: { /* all of P when it has at most k keys, else "maybe" */
    a = ev_int(c, n->kids[0]);
    x = ev_pat(c, n->kids[1]);
    if (a < 0) return c->err = 1, 0;
    if (a == 0 || x == 0) return 0;
    memo *m = &c->memo[((uintptr_t)n >> 4) % 8];
    if (m->n != n || m->i != i || m->h != c->h || m->Lk != c->Lk) {
      ctx row = *c;
      int64_t count = 0; /* nested topks may reuse the slot meanwhile */
      for (row.j = 0; row.j < c->Lk; row.j++) count += ev_pat(&row, n->kids[1]) != 0;
      c->err |= row.err;
      *m = (memo){n, i, c->h, c->Lk, count};
    }
    return m->count <= a ? x : 2;
  }
  /* short-circuit as the interpreter: Q only where P may matter */
  case IR_OR:
    if ((x = ev_pat(c, n->kids[0])) == 1) return 1;
    y = ev_pat(c, n->kids[1]);
    return y == 1 ? 1 : (x || y) ? 2 : 0;
  case IR_AND:
    if (!(x = ev_pat(c, n->kids[0]))) return 0;
    y = ev_pat(c, n->kids[1]);
    return !y ? 0 : (x == 1 && y == 1) ? 1 : 2;
  case IR_MINUS:
    if (!(x = ev_pat(c, n->kids[0]))) return 0;
    y = ev_pat(c, n->kids[1]);
    return y == 1 ? 0 : y ? 2 : x;
  case IR_COMPL: x = ev_pat(c, n->kids[0]); return x == 2 ? 2 : !x;
  case IR_PSEL:
    return ev_int(c, n->kids[0]) ? ev_pat(c, n->kids[1]) : ev_pat(c, n->kids[2]);
  case IR_BLOCKS: {
    a = ev_int(c, n->kids[0]);
    if (a < 1) return c->err = 1, 0;
    ctx in = *c;
    in.i = i / a, in.j = j / a;
    in.Lq = c->Lq / a + (c->Lq % a != 0), in.Lk = c->Lk / a + (c->Lk % a != 0);
    x = ev_pat(&in, n->kids[1]);
    c->err |= in.err;
    return x;
  }
  default: c->err = 1; return 0;
  }
}

/* ---- checking a plan against the evaluator ---- */

/* Prefix form of a tree, for failure messages (independent of ir_print). */
static void dump(const ir_node *n) {
  if (n->op == IR_CONST) {
    fprintf(stderr, "%lld", (long long)n->value);
    return;
  }
  fprintf(stderr, "(%s", ir_op_name[n->op]);
  if (n->op == IR_RUNTIME || n->op == IR_INPUT) fprintf(stderr, "#%lld", (long long)n->value);
  for (int k = 0; k < n->n_kids; k++) fputc(' ', stderr), dump(n->kids[k]);
  fputc(')', stderr);
}

typedef struct sizes {
  int64_t H, Lq, Lk;
  int64_t rt[4];
  int32_t *doc;
  bool concrete;       /* also check against the reference interpreter */
} sizes;

/* The interpreter's concrete mask (random q, k for topk) must agree with
 * every definite value of ours; then it replaces the three-valued mask.
 * Returns 1 when the interpreter reports an error (an input index out of
 * range, which our evaluator wraps): the case is skipped. */
static int concrete_mask(const ir_program *p, const sizes *z, int64_t h,
                         uint8_t *mask, const char *what) {
  enum { D = 4 };
  float *qk = malloc(sizeof(float) * (size_t)(z->Lq + z->Lk) * D);
  uint64_t s = 0x1234567ull + (uint64_t)z->Lq * 31 + (uint64_t)z->Lk;
  for (int64_t t = 0; t < (z->Lq + z->Lk) * D; t++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    qk[t] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
  }
  const int32_t *ins[2] = {z->doc, z->doc};
  rt_args a = {.B = 1, .H = z->H, .Hkv = z->H, .Lq = z->Lq, .Lk = z->Lk, .D = D,
               .runtime = z->rt, .inputs = ins};
  a.q.data = qk, a.q.sl = D, a.q.sh = 0;
  a.k.data = qk + z->Lq * D, a.k.sl = D, a.k.sh = 0;
  uint8_t *row = malloc((size_t)z->Lk + 1);
  char err[256];
  int rc = 0;
  for (int64_t r = 0; r < z->Lq && rc == 0; r++) {
    if (interp_mask_row(p, &a, 0, h, r, row, err, sizeof err) != RT_OK) {
      rc = 1;
      break;
    }
    for (int64_t j = 0; j < z->Lk; j++) {
      uint8_t *m = &mask[r * z->Lk + j];
      if (*m != 2 && *m != row[j]) {
        fprintf(stderr, "%s: h %lld Lq %lld Lk %lld row %lld key %lld: "
                "evaluator %d, interpreter %d\n", what, (long long)h,
                (long long)z->Lq, (long long)z->Lk, (long long)r, (long long)j,
                *m, row[j]);
        dump(p->root), fputc('\n', stderr);
        fail();
      }
      *m = row[j];
    }
  }
  free(row);
  free(qk);
  return rc;
}

static void check_spans(const plan_span *sp, int64_t n, int64_t Lk) {
  for (int64_t s = 0; s < n; s++) {
    assert_true(sp[s].k0 >= 0 && sp[s].k0 < sp[s].k1 && sp[s].k1 <= Lk);
    assert_true(sp[s].kind == PLAN_FULL || sp[s].kind == PLAN_PARTIAL);
    if (s > 0) {
      assert_true(sp[s - 1].k1 <= sp[s].k0);
      assert_false(sp[s - 1].k1 == sp[s].k0 && sp[s - 1].kind == sp[s].kind);
    }
  }
}

/* Checks every query tile of bq rows against mask, or when mask is NULL
 * (the evaluator met an argument error) counts the tiles that report one
 * (the caller wants some: the tiles whose rows reach the bad argument).
 * Returns the number of tiles that reported an error. */
static int64_t check_tiles(const ir_program *p, const int64_t *plan,
                           const sizes *z, int64_t h, const uint8_t *mask,
                           int64_t bq, const char *what) {
  int64_t n_err = 0;
  int64_t cap = plan_max_spans(plan);
  const int32_t *ins[2] = {z->doc, z->doc};
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  uint8_t *cover = malloc((size_t)z->Lk + 1);
  plan_env env = {.h = h, .H = z->H, .Lq = z->Lq, .Lk = z->Lk, .runtime = z->rt, .inputs = ins};
  char err[256] = "";
  /* the same tiles through a memo, in order, then backwards (lookups of
   * keys evaluated before and fresh starts), must give the same spans and
   * errors as without one */
  plan_memo *pm = plan_memo_new();
  assert_non_null(pm);
  plan_env menv = env;
  menv.memo = pm;
  int64_t nt = (z->Lq + bq - 1) / bq;
  int64_t *back = malloc(sizeof *back * (size_t)(nt > 0 ? nt : 1));
  for (int64_t t = 0; t < nt; t++) back[t] = nt - 1 - t;
  for (int pass = 0; pass < 2; pass++) {
    char msg[700];
    if (!plan_memo_agrees(plan, &env, &menv, bq, pass ? back : NULL, nt, msg, sizeof msg)) {
      fprintf(stderr, "%s: %s\n", what, msg);
      dump(p->root), fputc('\n', stderr);
      fail();
    }
  }
  free(back);
  plan_memo_free(pm);
  for (int64_t r0 = 0; r0 < z->Lq; r0 += bq) {
    int64_t r1 = r0 + bq < z->Lq ? r0 + bq : z->Lq;
    int64_t n = plan_tiles(plan, &env, r0, r1, sp, cap, err, sizeof err);
    if (!mask) { /* tiles that never reach the bad argument have no error */
      if (n < 0 && !err[0]) fail_msg("%s: plan_tiles: -1 without a message", what);
      n_err += n < 0;
      continue;
    }
    if (n < 0 || n > cap) {
      fprintf(stderr, "%s: plan_tiles: %lld (%s)\n", what, (long long)n, err);
      dump(p->root), fputc('\n', stderr);
      fail();
    }
    check_spans(sp, n, z->Lk);
    memset(cover, 0, (size_t)z->Lk + 1);
    for (int64_t s = 0; s < n; s++)
      for (int64_t j = sp[s].k0; j < sp[s].k1; j++) cover[j] = (uint8_t)sp[s].kind;
    for (int64_t r = r0; r < r1; r++)
      for (int64_t j = 0; j < z->Lk; j++) {
        uint8_t m = mask[r * z->Lk + j];
        if ((m && !cover[j]) || (cover[j] == PLAN_FULL && m != 1)) {
          fprintf(stderr,
                  "%s: h %lld Lq %lld Lk %lld H %lld rt %lld %lld tile [%lld, %lld) "
                  "row %lld key %lld: mask %d, plan %d\n",
                  what, (long long)h, (long long)z->Lq, (long long)z->Lk,
                  (long long)z->H, (long long)z->rt[0], (long long)z->rt[1],
                  (long long)r0, (long long)r1, (long long)r, (long long)j, m,
                  cover[j]);
          dump(p->root), fputc('\n', stderr);
          fail();
        }
      }
  }
  free(sp);
  free(cover);
  return n_err;
}

/* Checks a program at the given sizes for every head and several tilings.
 * Returns 0, or 1 when the evaluator hit a run-time error (skipped). */
static int check_program(const ir_program *p, const int64_t *plan,
                         const sizes *z, const char *what) {
  static const int64_t tiles[] = {16, 32, 64, 1, 7, 13, 50};
  uint8_t *mask = malloc((size_t)(z->Lq * z->Lk) + 1);
  int64_t off = z->Lq <= z->Lk ? z->Lk - z->Lq : 0;
  for (int64_t h = 0; h < z->H; h++) {
    memo m[8] = {{0}};
    ctx c = {.h = h, .H = z->H, .Lq = z->Lq, .Lk = z->Lk, .rt = z->rt,
             .doc = z->doc, .Lk_tok = z->Lk, .memo = m};
    for (int64_t r = 0; r < z->Lq; r++)
      for (int64_t j = 0; j < z->Lk; j++) {
        c.i = r + off, c.j = j;
        mask[r * z->Lk + j] = (uint8_t)ev_pat(&c, p->root);
      }
    if (c.err) { /* an argument error: the plan must report it too */
      if (check_tiles(p, plan, z, h, NULL, 16, what) == 0) {
        fprintf(stderr, "%s: h %lld: evaluator error, the plan has none\n",
                what, (long long)h);
        dump(p->root), fputc('\n', stderr);
        fail();
      }
      free(mask);
      return 1;
    }
    if (z->concrete && concrete_mask(p, z, h, mask, what) != 0) {
      free(mask);
      return 1;
    }
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++)
      check_tiles(p, plan, z, h, mask, tiles[t], what);
  }
  free(mask);
  return 0;
}

static void random_sizes(gen *g, sizes *z) {
  int shape = (int)rndi(g, 0, 3);
  z->Lq = rndi(g, 1, 300);
  z->Lk = shape == 0 ? z->Lq : rndi(g, 1, 300);
  if (shape == 3) z->Lq = rndi(g, 1, 40), z->Lk = rndi(g, 1, 300);
  z->H = rndi(g, 1, 3);
  z->rt[0] = rndi(g, 0, 6), z->rt[1] = rndi(g, 0, 6);
  z->rt[2] = gen_edge_pos[rndi(g, 0, GEN_N_POS - 1)];
  z->rt[3] = gen_edge_any[rndi(g, 0, GEN_N_ANY - 1)];
  for (int64_t k = 0; k < z->Lk; k++) z->doc[k] = (int32_t)(k / rndi(g, 5, 40));
}

/* n random programs; returns how many (program, sizes) were checked (no
 * evaluator error); *n_err counts those where both reported one. */
static int random_programs(uint64_t seed, int n_programs, bool extreme,
                           int *n_err) {
  gen g = {.rng = seed, .extreme = extreme, .errors = extreme};
  int32_t doc[301];
  sizes z = {.doc = doc};
  int checked = 0;
  *n_err = 0;
  for (int n = 0; n < n_programs; n++) {
    g.a = arena_new();
    ir_program *p = program(g.a, gen_root(&g, (int)rndi(&g, 0, 4)));
    char err[256] = "", what[64];
    int64_t *plan = an_build(p, err, sizeof err);
    assert_non_null(plan);
    assert_true(plan_words(plan) < 4096);
    for (int s = 0; s < 2; s++) {
      random_sizes(&g, &z);
      z.concrete = (n + s) % 3 == 0;
      snprintf(what, sizeof what, "%sprogram %d", extreme ? "edge " : "", n);
      if (check_program(p, plan, &z, what) == 0) checked++;
      else (*n_err)++;
    }
    free(plan);
    arena_free(g.a);
  }
  return checked;
}

static void test_random_programs(void **state) {
  (void)state;
  int n_err;
  assert_true(random_programs(0x5eed1234abcdull, SMALL(700, 150), false, &n_err) >
              SMALL(1000, 200));
}

/* Arguments at the int64 edges (gen_ir.h's extreme mode): spans exact,
 * soundness kept, and an invalid argument an error of the plan too. */
static void test_edge_programs(void **state) {
  (void)state;
  int n_err;
  int checked = random_programs(0xed6e5ull, SMALL(500, 100), true, &n_err);
  fprintf(stderr, "edge programs: %d checked, %d with an argument error\n",
          checked, n_err);
  assert_true(checked > SMALL(600, 100) && n_err > SMALL(20, 2));
}

/* ---- specific plans ---- */

static int64_t *build(arena *a, ir_node *root, ir_program **pp) {
  char err[256];
  ir_program *p = program(a, root);
  int64_t *plan = an_build(p, err, sizeof err);
  assert_non_null(plan);
  if (pp) *pp = p;
  /* the test's arena owns the copy (an_build's plan is malloc'd) */
  size_t bytes = (size_t)plan_words(plan) * sizeof *plan;
  int64_t *copy = arena_alloc(a, bytes);
  assert_non_null(copy);
  memcpy(copy, plan, bytes);
  free(plan);
  return copy;
}

static int64_t tile(const int64_t *plan, int64_t Lq, int64_t Lk, int64_t r0,
                    int64_t r1, plan_span *sp) {
  int64_t rt[4] = {3, 4};
  plan_env env = {.h = 0, .H = 1, .Lq = Lq, .Lk = Lk, .runtime = rt};
  char err[128];
  int64_t n = plan_tiles(plan, &env, r0, r1, sp, plan_max_spans(plan), err, sizeof err);
  assert_true(n >= 0);
  return n;
}

static void test_window_independent_of_length(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  int64_t *plan = build(g.a, N2(&g, IR_WINDOW, C(&g, 256), C(&g, 256)), NULL);
  assert_true(plan_words(plan) < 64);
  plan_span a[16], b[16];
  int64_t na = tile(plan, 4096, 4096, 2048, 2112, a);
  int64_t nb = tile(plan, 1048576, 1048576, 524288, 524352, b);
  assert_int_equal(na, 3);
  assert_int_equal(nb, na);
  /* PARTIAL edge, FULL core, PARTIAL edge, exactly */
  assert_int_equal(a[0].kind, PLAN_PARTIAL);
  assert_int_equal(a[0].k0, 2048 - 256);
  assert_int_equal(a[1].kind, PLAN_FULL);
  assert_int_equal(a[1].k0, 2111 - 256);
  assert_int_equal(a[1].k1, 2048 + 256 + 1);
  assert_int_equal(a[2].kind, PLAN_PARTIAL);
  assert_int_equal(a[2].k1, 2111 + 256 + 1);
  for (int k = 0; k < 3; k++) {
    assert_int_equal(b[k].kind, a[k].kind);
    assert_int_equal(b[k].k1 - b[k].k0, a[k].k1 - a[k].k0);
  }
  arena_free(g.a);
}

static void test_causal_and_alignment(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  int64_t *plan = build(g.a, N0(&g, IR_CAUSAL), NULL);
  plan_span s[8];
  /* Lq < Lk: rows sit at the bottom right. */
  int64_t n = tile(plan, 10, 100, 0, 4, s);
  assert_int_equal(n, 2);
  assert_int_equal(s[0].kind, PLAN_FULL);
  assert_int_equal(s[0].k1, 91);
  assert_int_equal(s[1].k1, 94);
  /* Lq > Lk: i = r, keys clipped to Lk. */
  n = tile(plan, 100, 10, 50, 60, s);
  assert_int_equal(n, 1);
  assert_int_equal(s[0].kind, PLAN_FULL);
  assert_int_equal(s[0].k0, 0);
  assert_int_equal(s[0].k1, 10);
  arena_free(g.a);
}

static void test_topk_is_partial(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  int64_t *plan = build(g.a, N2(&g, IR_TOPK, C(&g, 8), N0(&g, IR_FULL)), NULL);
  plan_span s[8];
  assert_int_equal(tile(plan, 64, 64, 0, 64, s), 1);
  assert_int_equal(s[0].kind, PLAN_PARTIAL);
  assert_int_equal(s[0].k1, 64);
  arena_free(g.a);
}

/* PLAN_F_HEAD: set when the spans may differ per head (the kernel then
 * evaluates the plan per head), clear when they cannot (shared). */
static void test_head_flag(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  ir_node *where_i_j = N1(&g, IR_WHERE, N2(&g, IR_LE, N0(&g, IR_VAR_J), N0(&g, IR_VAR_I)));
  ir_node *where_h = N1(&g, IR_WHERE, N2(&g, IR_EQ, N2(&g, IR_MOD, N0(&g, IR_VAR_I),
                                                       C(&g, 4)), N0(&g, IR_VAR_H)));
  ir_node *heads_count = N1(&g, IR_WHERE, N2(&g, IR_LT, N0(&g, IR_VAR_J), N0(&g, IR_SIZE_H)));
  assert_false(plan_reads_head(build(g.a, N2(&g, IR_WINDOW, C(&g, 4), C(&g, 4)), NULL)));
  assert_false(plan_reads_head(build(g.a, where_i_j, NULL)));
  assert_false(plan_reads_head(build(g.a, heads_count, NULL)));
  assert_true(plan_reads_head(build(g.a, where_h, NULL)));
  assert_true(plan_reads_head(build(g.a, N2(&g, IR_OR, N0(&g, IR_CAUSAL), where_h), NULL)));
  assert_true(plan_reads_head(build(g.a, N2(&g, IR_RANDOM, C(&g, 3), C(&g, 42)), NULL)));
  assert_true(plan_reads_head(build(g.a, N2(&g, IR_TOPK, C(&g, 8), N0(&g, IR_FULL)), NULL)));
  arena_free(g.a);
}

static void test_blocks_scale(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  /* BigBird-like: blocks(16) { window(1) | cols(0) } */
  ir_node *s0 = ir_new(g.a, IR_SET, 1, SPAN_NONE);
  s0->kids[0] = C(&g, 0);
  int64_t *plan = build(g.a,
      N2(&g, IR_BLOCKS, C(&g, 16),
         N2(&g, IR_OR, N2(&g, IR_WINDOW, C(&g, 1), C(&g, 1)), N1(&g, IR_COLS, s0))),
      NULL);
  plan_span s[16];
  int64_t n = tile(plan, 200, 200, 64, 80, s);
  assert_int_equal(n, 2);
  assert_int_equal(s[0].kind, PLAN_FULL);
  assert_int_equal(s[0].k0, 0);
  assert_int_equal(s[0].k1, 16);
  assert_int_equal(s[1].kind, PLAN_FULL);
  assert_int_equal(s[1].k0, 48);
  assert_int_equal(s[1].k1, 96);
  n = tile(plan, 200, 200, 192, 200, s); /* the last, short block */
  assert_int_equal(s[n - 1].k1, 200);
  arena_free(g.a);
}

static void test_random_one_row_exact(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  int64_t *plan = build(g.a, N2(&g, IR_RANDOM, C(&g, 3), C(&g, 42)), NULL);
  plan_span s[16];
  int64_t n = tile(plan, 1000, 1000, 500, 501, s), keys = 0;
  for (int64_t k = 0; k < n; k++) {
    assert_int_equal(s[k].kind, PLAN_FULL);
    keys += s[k].k1 - s[k].k0;
  }
  for (uint64_t t = 0; t < 3; t++) {
    int64_t j = (int64_t)(ar_hash(42, 0, 500, t) % 1000), in = 0;
    for (int64_t k = 0; k < n; k++) in |= s[k].k0 <= j && j < s[k].k1;
    assert_true(in);
  }
  assert_true(keys >= 1 && keys <= 3);
  arena_free(g.a);
}

static void test_runtime_errors(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  int64_t *plan = build(g.a, N2(&g, IR_WINDOW, N1(&g, IR_NEG, RT(&g, 0)), C(&g, 1)), NULL);
  int64_t rt[4] = {5, 0};
  plan_env env = {.h = 0, .H = 1, .Lq = 10, .Lk = 10, .runtime = rt};
  plan_span s[8];
  char err[128] = "";
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 8, err, sizeof err), -1);
  assert_non_null(strstr(err, "must be >= 0"));
  plan = build(g.a, N1(&g, IR_BLOCK, N2(&g, IR_DIV, C(&g, 4), RT(&g, 1))), NULL);
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 8, err, sizeof err), -1);
  assert_non_null(strstr(err, "division by zero"));
  plan = build(g.a, N2(&g, IR_WINDOW, N2(&g, IR_MUL, C(&g, INT64_MAX), RT(&g, 0)),
                       C(&g, 1)), NULL);
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 8, err, sizeof err), -1);
  assert_non_null(strstr(err, "overflow"));
  /* an unchosen arm is not evaluated */
  plan = build(g.a, N3(&g, IR_PSEL, C(&g, 1), N0(&g, IR_FULL),
                       N1(&g, IR_BLOCK, C(&g, 0))), NULL);
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 8, err, sizeof err), 1);
  /* bad rows */
  assert_int_equal(plan_tiles(plan, &env, 5, 11, s, 8, err, sizeof err), -1);
  /* a short buffer: the count is still returned */
  plan = build(g.a, N2(&g, IR_WINDOW, C(&g, 2), C(&g, 2)), NULL);
  assert_int_equal(plan_tiles(plan, &env, 4, 6, s, 1, err, sizeof err), 3);
  arena_free(g.a);
}

/* Arguments at the int64 edges, one row (where spans may be FULL): the
 * stride runs used to wrap around and mark other keys FULL. */
static void test_edge_plans(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  plan_span s[16];
  static const int64_t periods[] = {INT64_MAX, INT64_MAX - 1, (int64_t)1 << 62, 1001};
  for (size_t x = 0; x < sizeof periods / sizeof periods[0]; x++) {
    int64_t d = periods[x];
    int64_t *plan = build(g.a, N1(&g, IR_STRIDE, C(&g, d)), NULL);
    int64_t n = tile(plan, 1000, 1000, 500, 501, s);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, PLAN_FULL);
    assert_int_equal(s[0].k0, 500);
    assert_int_equal(s[0].k1, 501);
    n = tile(plan, 1000, 1000, 500, 503, s); /* three rows: their diagonal */
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, PLAN_PARTIAL);
    assert_int_equal(s[0].k0, 500);
    assert_int_equal(s[0].k1, 503);
    plan = build(g.a, N2(&g, IR_DILATED, C(&g, 1), C(&g, d)), NULL);
    n = tile(plan, 1000, 1000, 500, 501, s);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, PLAN_FULL);
    assert_int_equal(s[0].k0, 500);
    assert_int_equal(s[0].k1, 501);
    plan = build(g.a, N2(&g, IR_BLOCKS, C(&g, 2), N1(&g, IR_STRIDE, C(&g, d))), NULL);
    n = tile(plan, 1000, 1000, 501, 502, s);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, PLAN_FULL);
    assert_int_equal(s[0].k0, 500);
    assert_int_equal(s[0].k1, 502);
  }
  int64_t *plan = build(g.a, N2(&g, IR_WINDOW, C(&g, INT64_MAX), C(&g, INT64_MAX)), NULL);
  assert_int_equal(tile(plan, 1000, 700, 0, 64, s), 1);
  assert_true(s[0].kind == PLAN_FULL && s[0].k0 == 0 && s[0].k1 == 700);
  /* sizes beyond PLAN_MAX_LEN are refused */
  int64_t rt[4] = {0};
  plan_env env = {.h = 0, .H = 1, .Lq = 10, .Lk = PLAN_MAX_LEN + 1, .runtime = rt};
  char err[128] = "";
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 16, err, sizeof err), -1);
  assert_non_null(strstr(err, "sizes above"));
  env.Lk = PLAN_MAX_LEN;
  assert_int_equal(plan_tiles(plan, &env, 0, 10, s, 16, err, sizeof err), 1);
  assert_true(s[0].kind == PLAN_FULL && s[0].k1 == PLAN_MAX_LEN);
  arena_free(g.a);
}

/* Lists longer than the plan's capacity are coarsened, never wrong. */
static void test_capacity_squeeze(void **state) {
  (void)state;
  gen g = {.a = arena_new(), .rng = 99};
  int32_t doc[301] = {0};
  sizes z = {.H = 1, .Lq = 300, .Lk = 290, .rt = {1, 2}, .doc = doc};
  ir_node *set = ir_new(g.a, IR_SET, 300, SPAN_NONE);
  for (int k = 0; k < 300; k++) set->kids[k] = C(&g, rndi(&g, -290, 289));
  ir_program *p;
  int64_t *plan = build(g.a, N2(&g, IR_OR, N1(&g, IR_COLS, set), N1(&g, IR_ROWS, set)), &p);
  assert_int_equal(check_program(p, plan, &z, "cols(300 items)"), 0);
  /* a deep right-nested chain */
  ir_node *root = N2(&g, IR_WINDOW, C(&g, 1), C(&g, 1));
  for (int k = 0; k < 120; k++) {
    ir_node *s1 = ir_new(g.a, IR_SET, 1, SPAN_NONE);
    s1->kids[0] = C(&g, 2 * k + 5);
    root = N2(&g, k % 3 ? IR_OR : IR_MINUS, N1(&g, IR_COLS, s1), root);
  }
  plan = build(g.a, root, &p);
  assert_int_equal(check_program(p, plan, &z, "deep chain"), 0);
  arena_free(g.a);
}

/* where(): documents, key ranges, diagonals; errors inside fall back. */
static void test_where_atoms(void **state) {
  (void)state;
  gen g = {.a = arena_new()};
  ir_node *i = N0(&g, IR_VAR_I), *j = N0(&g, IR_VAR_J);
  ir_node *di = N1(&g, IR_INPUT, i), *dj = N1(&g, IR_INPUT, j);
  di->value = dj->value = 0;
  int32_t doc[200];
  for (int k = 0; k < 200; k++) doc[k] = k < 70 ? 0 : k < 150 ? 1 : 2;
  const int32_t *ins[2] = {doc, doc};
  int64_t rt[4] = {5, 0};
  plan_env env = {.h = 0, .H = 1, .Lq = 200, .Lk = 200, .runtime = rt, .inputs = ins};
  plan_span s[16];
  char err[128];
  int64_t *plan = build(g.a, N2(&g, IR_AND, N0(&g, IR_CAUSAL),
                                N1(&g, IR_WHERE, N2(&g, IR_EQ, dj, di))), NULL);
  /* rows 80..95 all in document 1: its keys up to the diagonal */
  int64_t n = plan_tiles(plan, &env, 80, 96, s, 16, err, sizeof err);
  assert_int_equal(n, 2);
  assert_int_equal(s[0].k0, 70), assert_int_equal(s[0].k1, 81);
  assert_int_equal(s[0].kind, PLAN_FULL);
  assert_int_equal(s[1].k1, 96), assert_int_equal(s[1].kind, PLAN_PARTIAL);
  /* rows 60..79 straddle two documents: PARTIAL over both */
  n = plan_tiles(plan, &env, 60, 80, s, 16, err, sizeof err);
  assert_true(n >= 1 && s[0].k0 == 0 && s[n - 1].k1 == 80);
  for (int64_t k = 0; k < n; k++) assert_int_equal(s[k].kind, PLAN_PARTIAL);
  /* without the array: PARTIAL everywhere, never an error */
  env.inputs = NULL;
  n = plan_tiles(plan, &env, 80, 96, s, 16, err, sizeof err);
  assert_int_equal(n, 1);
  assert_int_equal(s[0].kind, PLAN_PARTIAL);
  assert_int_equal(s[0].k1, 96);
  env.inputs = ins;
  /* j < 100 - n0: FULL [0, 95) */
  plan = build(g.a, N1(&g, IR_WHERE, N2(&g, IR_LT, j, N2(&g, IR_SUB, C(&g, 100), RT(&g, 0)))), NULL);
  n = plan_tiles(plan, &env, 0, 64, s, 16, err, sizeof err);
  assert_int_equal(n, 1);
  assert_int_equal(s[0].k0, 0), assert_int_equal(s[0].k1, 95);
  assert_int_equal(s[0].kind, PLAN_FULL);
  /* 3 <= i - j < 10 for rows 100..103: keys 91..100, FULL 94..97 */
  plan = build(g.a, N1(&g, IR_WHERE,
      N2(&g, IR_LAND, N2(&g, IR_GE, N2(&g, IR_SUB, i, j), C(&g, 3)),
         N2(&g, IR_LT, N2(&g, IR_SUB, i, j), C(&g, 10)))), NULL);
  n = plan_tiles(plan, &env, 100, 104, s, 16, err, sizeof err);
  assert_int_equal(n, 3);
  assert_int_equal(s[0].k0, 91), assert_int_equal(s[2].k1, 101);
  assert_int_equal(s[1].k0, 94), assert_int_equal(s[1].k1, 98);
  assert_int_equal(s[1].kind, PLAN_FULL);
  /* an overflow inside where: PARTIAL over every key, not an error */
  plan = build(g.a, N1(&g, IR_WHERE, N2(&g, IR_LT, j, N2(&g, IR_MUL, RT(&g, 0),
                                                         C(&g, INT64_MAX)))), NULL);
  n = plan_tiles(plan, &env, 0, 64, s, 16, err, sizeof err);
  assert_int_equal(n, 1);
  assert_int_equal(s[0].kind, PLAN_PARTIAL);
  assert_int_equal(s[0].k1, 200);
  arena_free(g.a);
}

/* Damaged plans (random words changed) give -1 or some spans, never a
 * crash, a hang or an out-of-bounds access (run under make asan). */
static void test_damaged_plans(void **state) {
  (void)state;
  gen g = {.rng = 0xbadc0de};
  int32_t doc[64] = {0};
  const int32_t *ins[2] = {doc, doc};
  int64_t rt[4] = {2, 3};
  plan_env env = {.h = 1, .H = 2, .Lq = 64, .Lk = 64, .runtime = rt, .inputs = ins};
  int n_err = 0, n_ok = 0;
  for (int n = 0; n < SMALL(400, 100); n++) {
    g.a = arena_new();
    ir_program *p = program(g.a, gen_root(&g, (int)rndi(&g, 1, 4)));
    char err[256];
    int64_t *plan = an_build(p, err, sizeof err);
    assert_non_null(plan);
    int64_t words = plan_words(plan);
    int64_t *bad = malloc(sizeof *bad * (size_t)words);
    for (int k = 0; k < 20; k++) {
      memcpy(bad, plan, sizeof *bad * (size_t)words);
      int64_t at = rndi(&g, PLAN_HDR_WORDS, words - 1); /* the header is trusted */
      bad[at] = rndi(&g, 0, 3) ? rndi(&g, -3, 80) : (int64_t)rnd(&g);
      plan_span sp[64];
      int64_t r = plan_tiles(bad, &env, 0, rndi(&g, 1, 64), sp, 64, err, sizeof err);
      assert_true(r >= -1);
      if (r < 0) n_err++;
      else n_ok++;
    }
    free(bad);
    free(plan);
    arena_free(g.a);
  }
  assert_true(n_err > 0 && n_ok > 0);
}

/* i and j exist only inside a JPRED/IPRED body: outside one they are bad
 * code, not a read of an unset variable (valgrind found that in damaged
 * plans). */
static void test_plan_vars_outside_body(void **state) {
  (void)state;
  plan_env env = {.h = 0, .H = 1, .Lq = 8, .Lk = 8};
  for (int v = 0; v < 2; v++) {
    int64_t op = v ? PLAN_IVARJ : PLAN_IVARI;
    int64_t plan[PLAN_HDR + 4] = {
        [PLAN_W_SIZE] = PLAN_HDR + 4, [PLAN_W_MAGIC] = PLAN_MAGIC,
        [PLAN_W_CAP] = 8, [PLAN_W_LDEPTH] = 4, [PLAN_W_IDEPTH] = 8,
        [PLAN_W_CODE] = PLAN_HDR,
        [PLAN_HDR] = op, op, PLAN_PWINDOW, PLAN_END};
    plan_span sp[8];
    char err[128] = "";
    assert_int_equal(plan_tiles(plan, &env, 0, 8, sp, 8, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad code"));
  }
}

/* For every library pattern the mask of which needs no data, the plan
 * visits exactly the key tiles the mask touches and, with tiles aligned to
 * the patterns' blocks (strict), runs without a mask exactly the tiles the
 * mask fills.  (Misaligned, two PARTIAL spans can fill a tile by chance,
 * e.g. a random key block that completes a window edge.)  The 2-D image
 * patterns in loose_patterns are bounded by a window but their where() atoms
 * (i / Wimg, clamps) are beyond the analysis: for them the plan is only
 * checked to be sound (every touched tile visited, FULL only when full). */
static const char *const loose_patterns[] = {"na2d", "swin_shifted"};

static bool is_loose(const char *name) {
  for (size_t t = 0; t < sizeof loose_patterns / sizeof *loose_patterns; t++)
    if (strcmp(name, loose_patterns[t]) == 0) return true;
  return false;
}

static void tiles_of(const ir_program *p, const int64_t *plan, int64_t H,
                     int64_t Lq, int64_t Lk, const int64_t *rt, bool strict,
                     bool loose, const char *what) {
  enum { BQ = 64, BK = 64 };
  int64_t nkt = (Lk + BK - 1) / BK, cap = plan_max_spans(plan);
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  int64_t *cnt = malloc(sizeof *cnt * (size_t)nkt);
  uint8_t *row = malloc((size_t)Lk);
  rt_args a = {.B = 1, .H = H, .Hkv = H, .Lq = Lq, .Lk = Lk, .D = 1, .runtime = rt};
  char err[256];
  for (int64_t h = 0; h < H; h++) {
    plan_env env = {.h = h, .H = H, .Lq = Lq, .Lk = Lk, .runtime = rt};
    for (int64_t r0 = 0; r0 < Lq; r0 += BQ) {
      int64_t r1 = r0 + BQ < Lq ? r0 + BQ : Lq;
      int64_t n = plan_tiles(plan, &env, r0, r1, sp, cap, err, sizeof err);
      assert_true(n >= 0 && n <= cap);
      memset(cnt, 0, sizeof *cnt * (size_t)nkt);
      for (int64_t r = r0; r < r1; r++) {
        assert_int_equal(interp_mask_row(p, &a, 0, h, r, row, err, sizeof err), RT_OK);
        for (int64_t j = 0; j < Lk; j++) cnt[j / BK] += row[j];
      }
      for (int64_t q = 0; q < nkt; q++) {
        int64_t k0 = q * BK, k1 = k0 + BK < Lk ? k0 + BK : Lk, full = 0;
        bool touched = false;
        for (int64_t t = 0; t < n; t++) {
          int64_t x = sp[t].k0 > k0 ? sp[t].k0 : k0, y = sp[t].k1 < k1 ? sp[t].k1 : k1;
          if (y > x) touched = true, full += sp[t].kind == PLAN_FULL ? y - x : 0;
        }
        bool exact_full = cnt[q] == (k1 - k0) * (r1 - r0);
        bool wrong_visit = loose ? (!touched && cnt[q] > 0) : touched != (cnt[q] > 0);
        if (wrong_visit || (full == k1 - k0 && !exact_full) ||
            (strict && exact_full && full != k1 - k0)) {
          fprintf(stderr, "%s: h %lld Lq %lld Lk %lld: query tile %lld key tile %lld: "
                  "plan %s%s, mask has %lld of %lld\n", what, (long long)h,
                  (long long)Lq, (long long)Lk, (long long)(r0 / BQ), (long long)q,
                  touched ? "visits" : "skips", full == k1 - k0 ? " (full)" : "",
                  (long long)cnt[q], (long long)((k1 - k0) * (r1 - r0)));
          fail();
        }
      }
    }
  }
  free(sp), free(cnt), free(row);
}

static void test_library_precision(void **state) {
  (void)state;
  DIR *dir = opendir("patterns");
  assert_non_null(dir);
  int checked = 0;
  for (struct dirent *de; (de = readdir(dir));) {
    size_t len = strlen(de->d_name);
    if (len < 5 || strcmp(de->d_name + len - 4, ".pat") != 0) continue;
    char path[512];
    snprintf(path, sizeof path, "patterns/%s", de->d_name);
    diag *d = diag_new();
    arena *a = arena_new();
    fe_module *m = fe_load_file(d, a, path);
    assert_non_null(m);
    for (int k = 0; k < fe_n_patterns(m); k++) {
      ir_program *p = fe_instantiate(d, m, fe_pattern_name(m, k), NULL, 0);
      assert_non_null(p);
      if (ir_is_data_dependent(p) || p->n_inputs || p->n_externs) continue;
      int64_t rt[8] = {0};
      for (int r = 0; r < p->n_runtime && r < 8; r++)
        rt[r] = p->runtime[r].has_deflt ? p->runtime[r].deflt : 7;
      char err[256], what[600];
      int64_t *plan = an_build(p, err, sizeof err);
      assert_non_null(plan);
      snprintf(what, sizeof what, "%s: %s", path, fe_pattern_name(m, k));
      bool loose = is_loose(fe_pattern_name(m, k));
      tiles_of(p, plan, 4, SMALL(1000, 400), SMALL(1000, 400), rt, !loose, loose, what);
      tiles_of(p, plan, 2, SMALL(300, 120), SMALL(1000, 400), rt, false, loose, what);
      free(plan);
      checked++;
    }
    arena_free(a);
    diag_free(d);
  }
  closedir(dir);
  assert_true(checked >= 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_independent_of_length),
      cmocka_unit_test(test_causal_and_alignment),
      cmocka_unit_test(test_topk_is_partial),
      cmocka_unit_test(test_head_flag),
      cmocka_unit_test(test_blocks_scale),
      cmocka_unit_test(test_random_one_row_exact),
      cmocka_unit_test(test_runtime_errors),
      cmocka_unit_test(test_capacity_squeeze),
      cmocka_unit_test(test_where_atoms),
      cmocka_unit_test(test_damaged_plans),
      cmocka_unit_test(test_plan_vars_outside_body),
      cmocka_unit_test(test_library_precision),
      cmocka_unit_test(test_random_programs),
      cmocka_unit_test(test_edge_programs),
      cmocka_unit_test(test_edge_plans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
