/* gen_ir.h: random pattern IR for the tests (test_analyze, test_diff):
 * compositions of every primitive with small random arguments built from
 * constants, h, H, Lq, Lk and runtime scalars, where predicates over i, j
 * and two input arrays "doc", "doc2".  Deterministic for a given seed.
 *
 * With `extreme`, arguments are also int64-edge constants (near INT64_MAX
 * and INT64_MIN, 0, 1, -1, 2^62, 63, 64, 65) as literals and as runtime
 * scalars 2 (a value >= 1: valid for every size) and 3 (any value), seeds
 * and index-set items any of them, and predicates compare i, j, i - j with
 * them (with `loose`, also after + - * / % by them, which may overflow or
 * divide by zero).  With `errors` too, a primitive evaluated for every
 * (i, j) (no short-circuiting operator above it: see `strict`), or with
 * `loose` any primitive, may get an invalid argument (a negative size,
 * stride 0, ...) or read doc[i] with i past Lk, so that both backends must
 * fail alike.
 * (The contract makes an error of any operand an error; test_analyze's own
 * evaluator short-circuits like the tile plan, so it keeps to strict
 * positions.) */
#ifndef SPAT_TESTS_GEN_IR_H
#define SPAT_TESTS_GEN_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "ir.h"

#define GEN_N_RUNTIME 4
#define GEN_N_INPUTS 2

typedef struct gen {
  arena *a;
  uint64_t rng;
  bool valid;   /* only arguments that are valid for every head and size,
                   and no input read outside where (what backends compile) */
  bool extreme; /* int64-edge constants and runtime scalars 2, 3 too */
  bool errors;  /* invalid arguments where every backend evaluates them */
  bool strict;  /* the node being made is evaluated for every (i, j) */
  bool loose;   /* invalid arguments anywhere (short-circuited too) */
} gen;

static inline uint64_t rnd(gen *g) {
  g->rng ^= g->rng << 13;
  g->rng ^= g->rng >> 7;
  g->rng ^= g->rng << 17;
  return g->rng;
}
static inline int64_t rndi(gen *g, int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(rnd(g) % (uint64_t)(hi - lo + 1));
}

static inline ir_node *C(gen *g, int64_t v) { return ir_const(g->a, v, SPAN_NONE); }
static inline ir_node *N0(gen *g, ir_op op) { return ir_new(g->a, op, 0, SPAN_NONE); }
static inline ir_node *N1(gen *g, ir_op op, ir_node *x) {
  return ir_new1(g->a, op, x, SPAN_NONE);
}
static inline ir_node *N2(gen *g, ir_op op, ir_node *x, ir_node *y) {
  return ir_new2(g->a, op, x, y, SPAN_NONE);
}
static inline ir_node *N3(gen *g, ir_op op, ir_node *x, ir_node *y, ir_node *z) {
  return ir_new3(g->a, op, x, y, z, SPAN_NONE);
}
static inline ir_node *RT(gen *g, int k) {
  ir_node *n = N0(g, IR_RUNTIME);
  n->value = k;
  return n;
}
static inline ir_node *IN(gen *g, int k, ir_node *x) {
  ir_node *n = N1(g, IR_INPUT, x);
  n->value = k;
  return n;
}

/* The int64 edges.  Runtime scalar 2 takes a value of gen_edge_pos (every
 * one >= 1), scalar 3 one of gen_edge_any. */
static const int64_t gen_edge_any[] = {
    INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1, (int64_t)1 << 62,
    -((int64_t)1 << 62), 0, 1, -1, 2, 63, 64, 65, 1000000000000};
static const int64_t gen_edge_pos[] = {
    INT64_MAX, INT64_MAX - 1, (int64_t)1 << 62, ((int64_t)1 << 62) + 1, 1, 2, 63,
    64, 65, 1000000000000};
#define GEN_N_ANY ((int64_t)(sizeof gen_edge_any / sizeof gen_edge_any[0]))
#define GEN_N_POS ((int64_t)(sizeof gen_edge_pos / sizeof gen_edge_pos[0]))

static inline int64_t gen_edge(gen *g) { return gen_edge_any[rndi(g, 0, GEN_N_ANY - 1)]; }

/* An edge value >= lo (lo is 0 or 1), or with errors allowed here sometimes
 * one below lo. */
static inline ir_node *gen_edge_size(gen *g, int64_t lo) {
  bool bad = g->errors && (g->strict || g->loose) && rndi(g, 0, 1) == 0;
  switch (rndi(g, 0, 3)) {
  case 0: return RT(g, bad ? 3 : 2);
  default:
    for (;;) {
      int64_t v = gen_edge(g);
      if ((v >= lo) == bad) continue;
      if (v == 0 && lo == 0 && rndi(g, 0, 1)) continue; /* 0 is common enough */
      return C(g, v);
    }
  }
}

/* A non-negative integer argument, at most about hi. */
static inline ir_node *gen_size(gen *g, int64_t lo, int64_t hi) {
  if (g->extreme && rndi(g, 0, 1) == 0) return gen_edge_size(g, lo);
  switch (rndi(g, 0, 9)) {
  case 0: /* runtime values are small, >= 0 */
    return g->valid ? N2(g, IR_ADD, RT(g, (int)rndi(g, 0, 1)), C(g, lo))
                    : RT(g, (int)rndi(g, 0, 1));
  case 1: return N2(g, IR_ADD, N0(g, IR_VAR_H), C(g, rndi(g, lo, hi)));
  case 2:
    return N2(g, IR_MAX, C(g, lo),
              N2(g, IR_SUB, N2(g, IR_DIV, N0(g, IR_SIZE_LK), C(g, rndi(g, 2, 9))),
                 C(g, rndi(g, 0, 3))));
  case 3:
    return N3(g, IR_SEL, N2(g, IR_EQ, N2(g, IR_MOD, N0(g, IR_VAR_H), C(g, 2)), C(g, 0)),
              C(g, rndi(g, lo, hi)), C(g, rndi(g, lo, hi)));
  case 4:
    return N2(g, IR_MAX, C(g, lo),
              N1(g, IR_ABS, N2(g, IR_SUB, C(g, rndi(g, lo, hi)), N0(g, IR_SIZE_H))));
  case 5:
    return N2(g, IR_ADD, C(g, lo),
              N2(g, IR_MOD, N2(g, IR_MUL, C(g, rndi(g, -9, 9)), N0(g, IR_SIZE_LQ)),
                 C(g, hi - lo + 1)));
  case 6:
    return N2(g, IR_ADD, C(g, lo),
              N2(g, IR_LAND, N0(g, IR_VAR_H), N2(g, IR_LOR, C(g, 0), RT(g, 1))));
  default: return C(g, rndi(g, lo, hi));
  }
}

static inline ir_node *gen_index(gen *g) {
  if (g->extreme && rndi(g, 0, 2) == 0)
    return rndi(g, 0, 3) ? C(g, gen_edge(g)) : RT(g, (int)rndi(g, 2, 3));
  int64_t v = rndi(g, -12, 24);
  return rndi(g, 0, 4) ? C(g, v) : N2(g, IR_SUB, C(g, v), RT(g, 0));
}

static inline ir_node *gen_set(gen *g) {
  int n = (int)rndi(g, 0, 4);
  ir_node *s = ir_new(g->a, IR_SET, n, SPAN_NONE);
  for (int k = 0; k < n; k++)
    s->kids[k] = rndi(g, 0, 1) ? gen_index(g)
                               : N2(g, IR_RANGE, gen_index(g), gen_index(g));
  return s;
}

/* A predicate comparing i, j or i - j with an edge value: no arithmetic on
 * the value, so no overflow for any backend to report. */
static inline ir_node *gen_edge_pred(gen *g) {
  static const ir_op cmp[] = {IR_LT, IR_LE, IR_GT, IR_GE, IR_EQ, IR_NE};
  ir_node *i = N0(g, IR_VAR_I), *j = N0(g, IR_VAR_J), *x;
  switch (rndi(g, 0, 3)) {
  case 0: x = i; break;
  case 1: x = j; break;
  case 2: x = N2(g, IR_SUB, i, j); break;
  default: /* (i - j) % s == 0 for an edge s >= 1 */
    return N2(g, IR_EQ,
              N2(g, IR_MOD, N2(g, IR_SUB, i, j),
                 rndi(g, 0, 2) ? C(g, gen_edge_pos[rndi(g, 0, GEN_N_POS - 1)])
                               : RT(g, 2)),
              C(g, 0));
  }
  ir_node *v = rndi(g, 0, 2) ? C(g, gen_edge(g)) : RT(g, (int)rndi(g, 2, 3));
  ir_op op = cmp[rndi(g, 0, 5)];
  if (g->loose && rndi(g, 0, 1)) { /* arithmetic on it: overflows somewhere */
    static const ir_op ar[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_MOD};
    x = N2(g, ar[rndi(g, 0, 4)], x, v);
    v = rndi(g, 0, 1) ? C(g, rndi(g, -3, 3)) : RT(g, (int)rndi(g, 2, 3));
  }
  return rndi(g, 0, 1) ? N2(g, op, x, v) : N2(g, op, v, x);
}

/* doc[i] for a query position: clamped into range when the program must be
 * valid, raw (out of range when Lq > Lk) where every backend reads it. */
static inline ir_node *gen_doc_i(gen *g, int k) {
  ir_node *i = N0(g, IR_VAR_I);
  if (!g->valid || (g->errors && (g->strict || g->loose) && rndi(g, 0, 3) == 0))
    return IN(g, k, i);
  if (g->extreme && rndi(g, 0, 1)) /* guarded instead of clamped */
    return N3(g, IR_SEL, N2(g, IR_LT, i, N0(g, IR_SIZE_LK)), IN(g, k, N0(g, IR_VAR_I)),
              C(g, -1));
  return IN(g, k, N2(g, IR_MIN, i, N2(g, IR_SUB, N0(g, IR_SIZE_LK), C(g, 1))));
}

static inline ir_node *gen_pred(gen *g) {
  ir_node *i = N0(g, IR_VAR_I), *j = N0(g, IR_VAR_J);
  if (g->extreme && rndi(g, 0, 3) == 0) return gen_edge_pred(g);
  switch (rndi(g, 0, 16)) {
  case 0:
    return N2(g, IR_EQ, N2(g, IR_MOD, N2(g, IR_SUB, i, j), C(g, rndi(g, 1, 5))),
              C(g, 0));
  case 1: return N2(g, IR_LE, j, N2(g, IR_SUB, i, C(g, rndi(g, -5, 20))));
  case 2: { /* doc[i] == doc[j] */
    int k = (int)rndi(g, 0, GEN_N_INPUTS - 1);
    ir_node *di = gen_doc_i(g, k);
    return N2(g, IR_EQ, di, IN(g, k, j));
  }
  case 3:
    return N2(g, IR_LOR, N2(g, IR_LT, N1(g, IR_ABS, N2(g, IR_SUB, i, j)), C(g, rndi(g, 0, 9))),
              N2(g, IR_LT, j, RT(g, 0)));
  case 4:
    return N2(g, IR_NE, N2(g, IR_MOD, N2(g, IR_ADD, N2(g, IR_ADD, i, j), N0(g, IR_VAR_H)), C(g, 3)),
              C(g, 0));
  case 5: return N2(g, IR_GE, N2(g, IR_MUL, j, C(g, 2)), i);
  case 6: return N2(g, IR_GE, i, N2(g, IR_ADD, RT(g, 0), C(g, rndi(g, 0, 150))));
  case 7: return N2(g, rndi(g, 0, 1) ? IR_EQ : IR_NE, j, N2(g, IR_SUB, N0(g, IR_SIZE_LK), C(g, rndi(g, 1, 9))));
  case 8: return N2(g, IR_NE, N2(g, IR_SUB, i, j), N2(g, IR_MUL, RT(g, 1), C(g, rndi(g, -3, 3))));
  case 9: return N1(g, IR_NOT, N2(g, IR_LT, j, N1(g, IR_NEG, N2(g, IR_SUB, C(g, rndi(g, -30, 30)), i))));
  case 10: { /* the left operand is evaluated wherever the predicate is */
    ir_op op = rndi(g, 0, 1) ? IR_LAND : IR_LOR;
    ir_node *l = gen_pred(g);
    return N2(g, op, l, N2(g, IR_GT, N1(g, IR_NEG, j), N2(g, IR_SUB, C(g, rndi(g, -40, 0)), i)));
  }
  case 11: return N2(g, IR_LT, N2(g, IR_ADD, i, j), C(g, rndi(g, 10, 400)));
  case 12: return N2(g, IR_LE, N0(g, IR_VAR_H), C(g, 1));
  case 13: { /* Sparse Transformer "fixed" summary columns */
    int64_t l = rndi(g, 2, 40);
    return N2(g, IR_GE, N2(g, IR_MOD, j, C(g, l)), C(g, l - rndi(g, 1, l)));
  }
  case 14:
    return N2(g, IR_EQ, N2(g, IR_MOD, IN(g, (int)rndi(g, 0, GEN_N_INPUTS - 1), j), C(g, 2)),
              C(g, 0));
  case 15: return N2(g, IR_EQ, N2(g, IR_MOD, i, C(g, rndi(g, 1, 5))), C(g, rndi(g, 0, 1)));
  default:
    return N2(g, IR_GT, gen_doc_i(g, (int)rndi(g, 0, GEN_N_INPUTS - 1)), C(g, rndi(g, 0, 4)));
  }
}

static inline ir_node *gen_pat(gen *g, int depth) {
  int pick = (int)rndi(g, 0, depth > 0 ? 21 : 13);
  /* edges: the primitives whose arguments are arithmetic twice as often */
  static const int edge_leaf[] = {2, 4, 5, 6, 8, 10, 21};
  if (g->extreme && rndi(g, 0, 3) == 0) pick = edge_leaf[rndi(g, 0, depth > 0 ? 6 : 5)];
  bool strict = g->strict;
  ir_node *x, *y, *z;
  switch (pick) {
  case 0: return N0(g, rndi(g, 0, 1) ? IR_FULL : IR_NONE);
  case 1: return N0(g, IR_CAUSAL);
  case 2: case 3:
    x = gen_size(g, 0, 40);
    return N2(g, IR_WINDOW, x, gen_size(g, 0, 40));
  case 4:
    x = gen_size(g, 0, 8);
    return N2(g, IR_DILATED, x, gen_size(g, 1, 20));
  case 5: return N1(g, IR_BLOCK, gen_size(g, 1, 70));
  case 6: return N1(g, IR_STRIDE, gen_size(g, 1, 40));
  case 7: return N1(g, IR_ROWS, gen_set(g));
  case 8: return N1(g, IR_COLS, gen_set(g));
  case 9: return N1(g, IR_GLOBAL, gen_set(g));
  case 10:
    x = gen_size(g, 0, 5);
    if (g->extreme && rndi(g, 0, 2) == 0)
      return N2(g, IR_RANDOM, x, rndi(g, 0, 2) ? C(g, gen_edge(g)) : RT(g, 3));
    return N2(g, IR_RANDOM, x, C(g, rndi(g, -3, 1000)));
  case 11: return N1(g, IR_WHERE, gen_pred(g));
  case 12: {
    if (g->valid) return N2(g, IR_WINDOW, C(g, rndi(g, 0, 90)), C(g, rndi(g, 0, 90)));
    ir_node *d = N1(g, IR_INPUT, C(g, rndi(g, 0, 0)));
    d->value = 0; /* an input outside where: not plannable */
    return N2(g, IR_WINDOW, N2(g, IR_MOD, d, C(g, 7)), C(g, 3));
  }
  case 13: /* P of topk is evaluated even for k = 0 by some backends only */
    x = gen_size(g, 0, 6);
    g->strict = false;
    y = gen_pat(g, depth > 0 ? depth - 1 : 0);
    g->strict = strict;
    return N2(g, IR_TOPK, x, y);
  case 14: case 15: case 16: case 17: case 18: {
    /* Q of P | Q, P & Q, P - Q only where P leaves it a say */
    ir_op op = pick < 16 ? IR_OR : pick < 18 ? IR_AND : IR_MINUS;
    x = gen_pat(g, depth - 1);
    g->strict = false;
    y = gen_pat(g, depth - 1);
    g->strict = strict;
    return N2(g, op, x, y);
  }
  case 19: return N1(g, IR_COMPL, gen_pat(g, depth - 1));
  case 20:
    x = N2(g, IR_LT, N0(g, IR_VAR_H), gen_size(g, 0, 3));
    y = gen_pat(g, depth - 1);
    z = gen_pat(g, depth - 1);
    return N3(g, IR_PSEL, x, y, z);
  default:
    x = gen_size(g, 1, 9);
    return N2(g, IR_BLOCKS, x, gen_pat(g, depth - 1));
  }
}

/* A whole pattern: its root is evaluated for every (i, j). */
static inline ir_node *gen_root(gen *g, int depth) {
  g->strict = true;
  ir_node *n = gen_pat(g, depth);
  g->strict = false;
  return n;
}

static inline ir_program *program(arena *a, ir_node *root) {
  ir_program *p = arena_alloc(a, sizeof *p);
  ir_runtime *rt = arena_alloc(a, GEN_N_RUNTIME * sizeof *rt);
  ir_input *in = arena_alloc(a, GEN_N_INPUTS * sizeof *in);
  memset(p, 0, sizeof *p);
  memset(rt, 0, GEN_N_RUNTIME * sizeof *rt);
  memset(in, 0, GEN_N_INPUTS * sizeof *in);
  p->name = "t";
  p->root = root;
  rt[0].name = "n0", rt[1].name = "n1", rt[2].name = "n2", rt[3].name = "n3";
  in[0].name = "doc", in[1].name = "doc2";
  p->n_runtime = GEN_N_RUNTIME, p->runtime = rt;
  p->n_inputs = GEN_N_INPUTS, p->inputs = in;
  p->arena = a;
  return p;
}

#endif
