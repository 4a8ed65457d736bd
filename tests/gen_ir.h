/* gen_ir.h: random pattern IR for the tests (test_analyze, test_diff):
 * compositions of every primitive with small random arguments built from
 * constants, h, H, Lq, Lk and two runtime scalars, where predicates over i, j
 * and one input array "doc".  Deterministic for a given seed. */
#ifndef SPAT_TESTS_GEN_IR_H
#define SPAT_TESTS_GEN_IR_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "ir.h"

typedef struct gen {
  arena *a;
  uint64_t rng;
  bool valid;   /* only arguments that are valid for every head and size,
                   and no input read outside where (what backends compile) */
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

/* A non-negative integer argument, at most about hi. */
static inline ir_node *gen_size(gen *g, int64_t lo, int64_t hi) {
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

static inline ir_node *gen_pred(gen *g) {
  ir_node *i = N0(g, IR_VAR_I), *j = N0(g, IR_VAR_J);
  switch (rndi(g, 0, 16)) {
  case 0:
    return N2(g, IR_EQ, N2(g, IR_MOD, N2(g, IR_SUB, i, j), C(g, rndi(g, 1, 5))),
              C(g, 0));
  case 1: return N2(g, IR_LE, j, N2(g, IR_SUB, i, C(g, rndi(g, -5, 20))));
  case 2: { /* doc[min(i, Lk - 1)] == doc[j]: in range when Lq > Lk too */
    ir_node *ii = g->valid ? N2(g, IR_MIN, i, N2(g, IR_SUB, N0(g, IR_SIZE_LK), C(g, 1))) : i;
    ir_node *di = N1(g, IR_INPUT, ii), *dj = N1(g, IR_INPUT, j);
    di->value = dj->value = 0;
    return N2(g, IR_EQ, di, dj);
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
  case 10:
    return N2(g, rndi(g, 0, 1) ? IR_LAND : IR_LOR, gen_pred(g),
              N2(g, IR_GT, N1(g, IR_NEG, j), N2(g, IR_SUB, C(g, rndi(g, -40, 0)), i)));
  case 11: return N2(g, IR_LT, N2(g, IR_ADD, i, j), C(g, rndi(g, 10, 400)));
  case 12: return N2(g, IR_LE, N0(g, IR_VAR_H), C(g, 1));
  case 13: { /* Sparse Transformer "fixed" summary columns */
    int64_t l = rndi(g, 2, 40);
    return N2(g, IR_GE, N2(g, IR_MOD, j, C(g, l)), C(g, l - rndi(g, 1, l)));
  }
  case 14: {
    ir_node *dj = N1(g, IR_INPUT, j);
    dj->value = 0;
    return N2(g, IR_EQ, N2(g, IR_MOD, dj, C(g, 2)), C(g, 0));
  }
  case 15: return N2(g, IR_EQ, N2(g, IR_MOD, i, C(g, rndi(g, 1, 5))), C(g, rndi(g, 0, 1)));
  default: {
    ir_node *ii = g->valid ? N2(g, IR_MIN, i, N2(g, IR_SUB, N0(g, IR_SIZE_LK), C(g, 1))) : i;
    ir_node *di = N1(g, IR_INPUT, ii);
    di->value = 0;
    return N2(g, IR_GT, di, C(g, rndi(g, 0, 4)));
  }
  }
}

static inline ir_node *gen_pat(gen *g, int depth) {
  int pick = (int)rndi(g, 0, depth > 0 ? 21 : 13);
  switch (pick) {
  case 0: return N0(g, rndi(g, 0, 1) ? IR_FULL : IR_NONE);
  case 1: return N0(g, IR_CAUSAL);
  case 2: case 3:
    return N2(g, IR_WINDOW, gen_size(g, 0, 40), gen_size(g, 0, 40));
  case 4: return N2(g, IR_DILATED, gen_size(g, 0, 8), gen_size(g, 1, 20));
  case 5: return N1(g, IR_BLOCK, gen_size(g, 1, 70));
  case 6: return N1(g, IR_STRIDE, gen_size(g, 1, 40));
  case 7: return N1(g, IR_ROWS, gen_set(g));
  case 8: return N1(g, IR_COLS, gen_set(g));
  case 9: return N1(g, IR_GLOBAL, gen_set(g));
  case 10: return N2(g, IR_RANDOM, gen_size(g, 0, 5), C(g, rndi(g, -3, 1000)));
  case 11: return N1(g, IR_WHERE, gen_pred(g));
  case 12: {
    if (g->valid) return N2(g, IR_WINDOW, C(g, rndi(g, 0, 90)), C(g, rndi(g, 0, 90)));
    ir_node *d = N1(g, IR_INPUT, C(g, rndi(g, 0, 0)));
    d->value = 0; /* an input outside where: not plannable */
    return N2(g, IR_WINDOW, N2(g, IR_MOD, d, C(g, 7)), C(g, 3));
  }
  case 13:
    return N2(g, IR_TOPK, gen_size(g, 0, 6), gen_pat(g, depth > 0 ? depth - 1 : 0));
  case 14: case 15:
    return N2(g, IR_OR, gen_pat(g, depth - 1), gen_pat(g, depth - 1));
  case 16: case 17:
    return N2(g, IR_AND, gen_pat(g, depth - 1), gen_pat(g, depth - 1));
  case 18: return N2(g, IR_MINUS, gen_pat(g, depth - 1), gen_pat(g, depth - 1));
  case 19: return N1(g, IR_COMPL, gen_pat(g, depth - 1));
  case 20:
    return N3(g, IR_PSEL, N2(g, IR_LT, N0(g, IR_VAR_H), gen_size(g, 0, 3)),
              gen_pat(g, depth - 1), gen_pat(g, depth - 1));
  default: return N2(g, IR_BLOCKS, gen_size(g, 1, 9), gen_pat(g, depth - 1));
  }
}

static inline ir_program *program(arena *a, ir_node *root) {
  ir_program *p = arena_alloc(a, sizeof *p);
  p->name = "t";
  p->root = root;
  ir_runtime *rt = arena_alloc(a, 2 * sizeof *rt);
  ir_input *in = arena_alloc(a, sizeof *in);
  rt[0].name = "n0", rt[1].name = "n1", in->name = "doc";
  p->n_runtime = 2, p->runtime = rt;
  p->n_inputs = 1, p->inputs = in;
  p->arena = a;
  return p;
}

#endif
