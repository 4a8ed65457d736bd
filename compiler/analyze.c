/* analyze.c: pattern IR -> tile plan (runtime/plan.h), and `spatc explain`.
 *
 * In: a checked ir_program.  Out: the plan, postfix code over two stacks
 * (int64 values, key-interval lists; instruction set in runtime/plan_ops.h)
 * that plan_tiles runs once per query tile.  Each pattern node becomes code
 * that yields, for the tile's query positions [i0, i1), a sorted list of key
 * spans labelled FULL (every row allows every key) or PARTIAL (some may):
 * window/causal give a FULL core between PARTIAL edges, block/rows/cols/
 * global/full are exact, stride/dilated give runs of keys one per period,
 * random its drawn keys on small tiles, topk its candidates as PARTIAL,
 * where(pred) its atoms (input equality x[i] == x[j], linear comparisons of
 * i, j, i - j, predicates of j or i alone evaluated per key or row), and
 * | & - ! combine lists as Kleene connectives (docs/tile-plan.md).
 * Integer arguments (h, H, Lq, Lk, runtime scalars, constants) are evaluated
 * in the plan with checked arithmetic; an argument that needs i, j, inputs or
 * externs makes its pattern PARTIAL over every key.  The plan's size depends
 * on the tree only, never on the sequence lengths.
 */
#include "analyze.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "plan_ops.h"
#include "spat_limits.h"

#define BOUND_MAX (1 << 20)

typedef struct bld {
  int64_t *w;          /* code being built (malloc'd) */
  size_t n, cap;
  int idepth, imax;    /* int stack */
  int ldepth, lmax;    /* list stack */
  int bdepth, bmax;    /* BLOCKS nesting */
  int64_t maxbound;    /* largest static list size */
  arena *a;            /* an_build's own, for rewritten where atoms */
  bool oom;
  bool over;           /* more than SPAT_MAX_PLAN_WORDS: plan discarded */
  bool *row_in;        /* per input: read by SROW (NULL: no inputs) */
  const ir_program *prog;
  bool where_v2;       /* enc_int: b, B, Hkv, D and shaped inputs too (the
                          where table's reader, plan_safe.c, knows them) */
} bld;

static const int plan_op_operands[PLAN_N_OPS] = {
#define X(name, n, text) n,
    PLAN_OPS(X)
#undef X
};

static const char *const plan_op_text[PLAN_N_OPS] = {
#define X(name, n, text) text,
    PLAN_OPS(X)
#undef X
};

static size_t emit(bld *b, int64_t word) {
  if (b->n == b->cap) {
    size_t nc = b->cap ? 2 * b->cap : 256;
    int64_t *nw = realloc(b->w, nc * sizeof *nw);
    if (!nw) {
      b->oom = true;
      return b->n;
    }
    b->w = nw, b->cap = nc;
  }
  b->w[b->n] = word;
  return b->n++;
}

static void ipush(bld *b, int d) {
  b->idepth += d;
  if (b->idepth > b->imax) b->imax = b->idepth;
}

static void lpush(bld *b, int d) {
  b->ldepth += d;
  if (b->ldepth > b->lmax) b->lmax = b->ldepth;
}

static int64_t bound(bld *b, int64_t v) {
  if (v > BOUND_MAX) v = BOUND_MAX;
  if (v > b->maxbound) b->maxbound = v;
  return v;
}

/* Integer arguments the plan can evaluate: no i, j, inputs or externs. */
/* Version 2 bit operations have no plan instruction: what uses them is
 * PARTIAL, decided by the mask code. */
static bool has_bit_ops(const ir_node *n) {
  return ir_has_op(n, IR_IAND) || ir_has_op(n, IR_IOR) || ir_has_op(n, IR_IXOR) ||
         ir_has_op(n, IR_SHL) || ir_has_op(n, IR_SHR) ||
         /* nor do b, B, Hkv, D and shaped inputs (fuzz_front: D read as 0) */
         ir_has_op(n, IR_VAR_B) || ir_has_op(n, IR_SIZE_B) ||
         ir_has_op(n, IR_SIZE_HKV) || ir_has_op(n, IR_SIZE_D) ||
         ir_has_op(n, IR_INPUTN);
}

static bool is_plannable(const ir_node *n) {
  return !ir_has_op(n, IR_VAR_I) && !ir_has_op(n, IR_VAR_J) &&
         !ir_has_op(n, IR_INPUT) && !ir_has_op(n, IR_EXTERN) && !has_bit_ops(n);
}

static void patch(bld *b, size_t at) {
  if (!b->oom) b->w[at] = (int64_t)b->n;
}

static void gen_int(bld *b, const ir_node *n) {
  size_t j1, j2;
  switch (n->op) {
  case IR_CONST:
    emit(b, PLAN_ICONST), emit(b, n->value), ipush(b, 1);
    return;
  case IR_VAR_H: emit(b, PLAN_IHEAD), ipush(b, 1); return;
  case IR_VAR_I: emit(b, PLAN_IVARI), ipush(b, 1); return;
  case IR_VAR_J: emit(b, PLAN_IVARJ), ipush(b, 1); return;
  case IR_INPUT:
    gen_int(b, n->kids[0]);
    emit(b, PLAN_IINPUT), emit(b, n->value);
    return;
  case IR_SIZE_H: emit(b, PLAN_INHEAD), ipush(b, 1); return;
  case IR_SIZE_LQ: emit(b, PLAN_ILQ), ipush(b, 1); return;
  case IR_SIZE_LK: emit(b, PLAN_ILK), ipush(b, 1); return;
  case IR_RUNTIME:
    emit(b, PLAN_IRT), emit(b, n->value), ipush(b, 1);
    return;
  case IR_NEG: case IR_NOT: case IR_ABS:
    gen_int(b, n->kids[0]);
    emit(b, n->op == IR_NEG ? PLAN_INEG : n->op == IR_NOT ? PLAN_INOT : PLAN_IABS);
    return;
  case IR_LAND:
  case IR_LOR:
    gen_int(b, n->kids[0]);
    emit(b, n->op == IR_LAND ? PLAN_JZ0 : PLAN_JNZ1);
    j1 = emit(b, 0);
    ipush(b, -1);
    gen_int(b, n->kids[1]);
    emit(b, PLAN_IBOOL);
    patch(b, j1);
    return;
  case IR_SEL:
    gen_int(b, n->kids[0]);
    emit(b, PLAN_JZ), j1 = emit(b, 0), ipush(b, -1);
    gen_int(b, n->kids[1]);
    emit(b, PLAN_JMP), j2 = emit(b, 0), ipush(b, -1);
    patch(b, j1);
    gen_int(b, n->kids[2]);
    patch(b, j2);
    return;
  default:
    break;
  }
  static const struct { ir_op ir; int plan; } bin[] = {
      {IR_ADD, PLAN_IADD}, {IR_SUB, PLAN_ISUB}, {IR_MUL, PLAN_IMUL},
      {IR_DIV, PLAN_IDIV}, {IR_MOD, PLAN_IMOD}, {IR_MIN, PLAN_IMIN},
      {IR_MAX, PLAN_IMAX}, {IR_LT, PLAN_ILT},   {IR_LE, PLAN_ILE},
      {IR_GT, PLAN_IGT},   {IR_GE, PLAN_IGE},   {IR_EQ, PLAN_IEQ},
      {IR_NE, PLAN_INE}};
  for (size_t k = 0; k < sizeof bin / sizeof bin[0]; k++)
    if (bin[k].ir == n->op) {
      gen_int(b, n->kids[0]);
      gen_int(b, n->kids[1]);
      emit(b, bin[k].plan), ipush(b, -1);
      return;
    }
  /* Not reachable for plannable trees; keep the stack balanced anyway. */
  emit(b, PLAN_ICONST), emit(b, 0), ipush(b, 1);
}

static int64_t gen_any(bld *b) {
  emit(b, PLAN_PANY), lpush(b, 1);
  return bound(b, 1);
}

/* An index set: pushes a list of its items (positions; raw: offsets of
 * diagonals, as written).  A row of an input (SROW) adds its intervals from
 * the run's rows table, through two scratch lists. */
static int64_t gen_set(bld *b, const ir_node *set, bool raw) {
  emit(b, PLAN_SBEGIN), lpush(b, 1);
  int64_t items = 0;
  for (int k = 0; k < set->n_kids; k++) {
    const ir_node *it = set->kids[k];
    if (it->op == IR_INROW) {
      for (int t = 0; t < it->n_kids; t++) gen_int(b, it->kids[t]);
      emit(b, PLAN_SROW), emit(b, it->value), emit(b, it->n_kids), emit(b, raw);
      if (b->row_in) b->row_in[it->value] = true;
      ipush(b, -it->n_kids), lpush(b, 2), lpush(b, -2);
      items = BOUND_MAX;
    } else if (it->op == IR_RANGE) {
      gen_int(b, it->kids[0]);
      gen_int(b, it->kids[1]);
      emit(b, raw ? PLAN_SRRANGE : PLAN_SRANGE), ipush(b, -2);
      items++;
    } else {
      gen_int(b, it);
      emit(b, raw ? PLAN_SRITEM : PLAN_SITEM), ipush(b, -1);
      items++;
    }
  }
  return bound(b, items);
}

/* ---- where(pred): predicates as key lists ---- */

/* ci * i + cj * j + e, e a plannable integer tree (NULL: 0). */
typedef struct lin {
  int64_t ci, cj;
  const ir_node *e;
} lin;

static const ir_node *lin_node(bld *b, ir_op op, const ir_node *x,
                               const ir_node *y) {
  const ir_node *r;
  if (!x && !y) return NULL;
  if (!y) return x;
  if (!x) r = op == IR_ADD ? y : ir_new1(b->a, IR_NEG, (ir_node *)y, y->span);
  else r = ir_new2(b->a, op, (ir_node *)x, (ir_node *)y, x->span);
  if (!r) b->oom = true;
  return r ? r : y; /* the plan is discarded on OOM */
}

static bool linear(bld *b, const ir_node *n, lin *out) {
  lin x, y;
  switch (n->op) {
  case IR_VAR_I: *out = (lin){1, 0, NULL}; return true;
  case IR_VAR_J: *out = (lin){0, 1, NULL}; return true;
  case IR_NEG:
    if (!linear(b, n->kids[0], &x)) return false;
    *out = (lin){-x.ci, -x.cj, lin_node(b, IR_SUB, NULL, x.e)};
    return true;
  case IR_ADD:
  case IR_SUB:
    if (!linear(b, n->kids[0], &x) || !linear(b, n->kids[1], &y)) return false;
    if (n->op == IR_ADD) *out = (lin){x.ci + y.ci, x.cj + y.cj, NULL};
    else *out = (lin){x.ci - y.ci, x.cj - y.cj, NULL};
    out->e = lin_node(b, n->op, x.e, y.e);
    return out->ci >= -2 && out->ci <= 2 && out->cj >= -2 && out->cj <= 2;
  default:
    if (!is_plannable(n)) return false;
    *out = (lin){0, 0, n};
    return true;
  }
}

static bool is_input_of(const ir_node *n, ir_op var, int64_t *k) {
  if (n->op != IR_INPUT || n->kids[0]->op != var) return false;
  *k = n->value;
  return true;
}

/* doc[b, var] with doc an int input of shape [B, Lk]: the per-sequence
 * form of doc[var] (version 2). */
static bool is_batch_input_of(const bld *b, const ir_node *n, ir_op var, int64_t *k) {
  if (n->op != IR_INPUTN || n->n_kids != 2 || n->kids[0]->op != IR_VAR_B ||
      n->kids[1]->op != var)
    return false;
  const ir_input *in = &b->prog->inputs[n->value];
  if (in->is_float || in->n_dims != 2 || in->dims[0]->op != IR_SIZE_B ||
      in->dims[1]->op != IR_SIZE_LK)
    return false;
  *k = n->value;
  return true;
}

/* The doceq instruction of x[i] == x[j] or x[b, i] == x[b, j] (either
 * side first), else 0; *k: the input. */
static int doc_eq_op(const bld *b, const ir_node *x, const ir_node *y, int64_t *k) {
  int64_t k1, k2;
  if (((is_input_of(x, IR_VAR_I, &k1) && is_input_of(y, IR_VAR_J, &k2)) ||
       (is_input_of(x, IR_VAR_J, &k1) && is_input_of(y, IR_VAR_I, &k2))) && k1 == k2)
    return *k = k1, PLAN_PDOCEQ;
  if (((is_batch_input_of(b, x, IR_VAR_I, &k1) && is_batch_input_of(b, y, IR_VAR_J, &k2)) ||
       (is_batch_input_of(b, x, IR_VAR_J, &k1) && is_batch_input_of(b, y, IR_VAR_I, &k2))) &&
      k1 == k2)
    return *k = k1, PLAN_PDOCEQB;
  return 0;
}

static ir_op flip(ir_op op) {
  return op == IR_LT ? IR_GT : op == IR_GT ? IR_LT : op == IR_LE ? IR_GE
       : op == IR_GE ? IR_LE : op;
}

/* Pushes [lo, hi) for x with x + e `op` 0 (op not NE). */
static void gen_bounds(bld *b, ir_op op, const ir_node *e) {
  /* x op -e: t = -e */
  ir_node *t = e ? ir_new1(b->a, IR_NEG, (ir_node *)e, e->span)
                 : ir_const(b->a, 0, SPAN_NONE);
  ir_node *t1 = t ? ir_new2(b->a, IR_ADD, t, ir_const(b->a, 1, SPAN_NONE), t->span)
                  : NULL;
  if (!t || !t1 || !t1->kids[1]) {
    b->oom = true;
    emit(b, PLAN_ICONST), emit(b, 0), emit(b, PLAN_ICONST), emit(b, 0);
    ipush(b, 2);
    return;
  }
  ir_node *lo = op == IR_GT ? t1 : op == IR_GE || op == IR_EQ ? t : NULL;
  ir_node *hi = op == IR_LT ? t : op == IR_LE || op == IR_EQ ? t1 : NULL;
  if (lo) gen_int(b, lo);
  else emit(b, PLAN_ICONST), emit(b, INT64_MIN), ipush(b, 1);
  if (hi) gen_int(b, hi);
  else emit(b, PLAN_ICONST), emit(b, INT64_MAX), ipush(b, 1);
}

static bool enc_int(bld *b, const ir_node *n, size_t limit);
static bool enc_inputn(bld *b, const ir_node *n, size_t limit);

/* Is n, a where atom or a && || ! of them, planned exactly by its atoms
 * (input equality, linear comparisons of i, j and i - j, conditions of
 * neither)? */
static bool exact_pred(bld *b, const ir_node *n) {
  int64_t k1;
  lin x, y;
  switch (n->op) {
  case IR_LAND:
  case IR_LOR: return exact_pred(b, n->kids[0]) && exact_pred(b, n->kids[1]);
  case IR_NOT: return exact_pred(b, n->kids[0]);
  case IR_EQ:
  case IR_NE:
    if (doc_eq_op(b, n->kids[0], n->kids[1], &k1)) return true;
    /* fall through */
  case IR_LT:
  case IR_LE:
  case IR_GT:
  case IR_GE:
    if (linear(b, n->kids[0], &x) && linear(b, n->kids[1], &y)) {
      int64_t ci = x.ci - y.ci, cj = x.cj - y.cj;
      return (ci == 0 || ci == 1 || ci == -1) && (cj == 0 || cj == 1 || cj == -1) &&
             !(ci == 1 && cj == 1) && !(ci == -1 && cj == -1);
    }
    return is_plannable(n);
  default:
    return is_plannable(n);
  }
}

static int tree_depth(const ir_node *n, int cap) {
  int d = 0;
  if (cap <= 0) return 1;
  for (int k = 0; k < n->n_kids; k++) {
    int x = tree_depth(n->kids[k], cap - 1);
    if (x > d) d = x;
  }
  return d + 1;
}

/* A predicate of i and j whose atoms are not exact, without inputs or
 * externs: one BOX over its whole tree (plan_box.c), so that && and ||
 * prune with every operand.  False when it does not fit. */
#define BOX_GRAIN 16     /* keys: undecided ranges split down to this */
#define BOX_WORDS 4096   /* words of one boxed tree, at most */
static bool gen_box(bld *b, const ir_node *n) {
  if (!ir_has_op(n, IR_VAR_I) || !ir_has_op(n, IR_VAR_J) ||
      ir_has_op(n, IR_INPUT) || ir_has_op(n, IR_EXTERN) ||
      ir_tree_size(n, BOX_WORDS) >= BOX_WORDS / 2 || exact_pred(b, n) ||
      tree_depth(n, PLAN_BOX_DEPTH + 1) > PLAN_BOX_DEPTH - 1)
    return false;
  size_t at = b->n;
  emit(b, PLAN_PBOX), emit(b, BOX_GRAIN);
  size_t len_at = emit(b, 0), start = b->n;
  if (!enc_int(b, n, start + BOX_WORDS) || b->n >= start + BOX_WORDS) {
    b->n = at;
    return false;
  }
  if (!b->oom) b->w[len_at] = (int64_t)(b->n - start);
  lpush(b, 1);
  bound(b, 128);
  return true;
}

static void gen_pred(bld *b, const ir_node *n) {
  size_t j1;
  int64_t k1, k2;
  lin x, y;
  if (gen_box(b, n)) return;
  switch (n->op) {
  case IR_LAND:
  case IR_LOR:
    gen_pred(b, n->kids[0]);
    emit(b, n->op == IR_LAND ? PLAN_JEMPTY : PLAN_JALL), j1 = emit(b, 0);
    gen_pred(b, n->kids[1]);
    emit(b, n->op == IR_LAND ? PLAN_PAND : PLAN_POR), lpush(b, -1);
    patch(b, j1);
    bound(b, 4 * PLAN_DOC_VALUES);
    return;
  case IR_NOT:
    gen_pred(b, n->kids[0]);
    emit(b, PLAN_PCOMPL);
    return;
  case IR_EQ:
  case IR_NE:
    if ((k2 = doc_eq_op(b, n->kids[0], n->kids[1], &k1)) != 0) {
      emit(b, k2), emit(b, k1), lpush(b, 1);
      if (n->op == IR_NE) emit(b, PLAN_PCOMPL);
      bound(b, 2 * PLAN_DOC_VALUES);
      return;
    }
    /* fall through */
  case IR_LT:
  case IR_LE:
  case IR_GT:
  case IR_GE:
    if (linear(b, n->kids[0], &x) && linear(b, n->kids[1], &y)) {
      ir_op op = n->op == IR_NE ? IR_EQ : n->op;
      int64_t ci = x.ci - y.ci, cj = x.cj - y.cj;
      const ir_node *e = lin_node(b, IR_SUB, x.e, y.e);
      if ((ci == 0 && cj == -1) || (ci == -1 && cj <= 0) || (ci == 1 && cj == 1)) {
        if (!(ci == 1 && cj == 1)) {
          ci = -ci, cj = -cj, op = flip(op);
          e = lin_node(b, IR_SUB, NULL, e);
        }
      }
      int what = ci == 0 && cj == 1    ? PLAN_PJRANGE
                 : ci == 1 && cj == 0  ? PLAN_PIRANGE
                 : ci == 1 && cj == -1 ? PLAN_PDIAG
                 : ci == 0 && cj == 0  ? PLAN_PCOND
                                       : 0;
      if (what == PLAN_PCOND) {
        gen_int(b, n);
        emit(b, PLAN_PCOND), ipush(b, -1), lpush(b, 1);
        bound(b, 1);
        return;
      }
      if (what) {
        gen_bounds(b, op, e);
        emit(b, what), ipush(b, -2), lpush(b, 1);
        if (n->op == IR_NE) emit(b, PLAN_PCOMPL);
        bound(b, 7);
        return;
      }
    }
    break;
  default:
    if (is_plannable(n)) {
      gen_int(b, n);
      emit(b, PLAN_PCOND), ipush(b, -1), lpush(b, 1);
      bound(b, 1);
      return;
    }
    break;
  }
  /* a predicate of j alone is run per key, of i alone per row */
  bool has_i = ir_has_op(n, IR_VAR_I), has_j = ir_has_op(n, IR_VAR_J);
  if (has_i != has_j && !ir_has_op(n, IR_EXTERN) && !has_bit_ops(n)) {
    emit(b, has_j ? PLAN_PJPRED : PLAN_PIPRED);
    j1 = emit(b, 0);
    gen_int(b, n);
    emit(b, PLAN_RET), ipush(b, -1), lpush(b, 1);
    if (!b->oom) b->w[j1] = (int64_t)(b->n - j1 - 1);
    bound(b, has_j ? 128 : 1);
    return;
  }
  emit(b, PLAN_PANY), lpush(b, 1);
  bound(b, 1);
}

static int64_t gen_pat(bld *b, const ir_node *n) {
  int64_t x, y;
  size_t j1, j2;
  /* The plan expands the IR DAG into a tree: past the budget, stop (the
   * plan is replaced below), so the work stays bounded. */
  if (b->n > SPAT_MAX_PLAN_WORDS) {
    b->over = true;
    return gen_any(b);
  }
  for (int k = 0; k < n->n_kids; k++) {
    const ir_node *kid = n->kids[k];
    if (n->op == IR_WHERE) break;
    if (ir_op_kind[kid->op] == IR_INT && !is_plannable(kid)) return gen_any(b);
    if (kid->op == IR_SET)
      for (int t = 0; t < kid->n_kids; t++)
        if (!is_plannable(kid->kids[t])) return gen_any(b);
  }
  switch (n->op) {
  case IR_FULL: emit(b, PLAN_PFULL), lpush(b, 1); return bound(b, 1);
  case IR_NONE: emit(b, PLAN_PNONE), lpush(b, 1); return 0;
  case IR_CAUSAL: emit(b, PLAN_PCAUSAL), lpush(b, 1); return bound(b, 2);
  case IR_WHERE: {
    if (!b->a) return gen_any(b);
    emit(b, PLAN_WTRY), j1 = emit(b, 0);
    int l0 = b->ldepth, i0 = b->idepth;
    int64_t m0 = b->maxbound;
    b->maxbound = 1;
    gen_pred(b, n->kids[0]);
    x = b->maxbound;
    if (m0 > b->maxbound) b->maxbound = m0;
    b->ldepth = l0 + 1, b->idepth = i0;
    emit(b, PLAN_WEND);
    patch(b, j1);
    return x;
  }
  case IR_WINDOW:
  case IR_DILATED:
  case IR_RANDOM:
    gen_int(b, n->kids[0]);
    gen_int(b, n->kids[1]);
    emit(b, n->op == IR_WINDOW    ? PLAN_PWINDOW
            : n->op == IR_DILATED ? PLAN_PDILATED
                                  : PLAN_PRANDOM);
    ipush(b, -2), lpush(b, 1);
    return bound(b, n->op == IR_RANDOM ? PLAN_RANDOM_MAX
                    : n->op == IR_DILATED ? PLAN_RESIDUE_RUNS : 3);
  case IR_BLOCK:
  case IR_STRIDE:
    gen_int(b, n->kids[0]);
    emit(b, n->op == IR_BLOCK ? PLAN_PBLOCK : PLAN_PSTRIDE);
    ipush(b, -1), lpush(b, 1);
    return bound(b, n->op == IR_BLOCK ? 1 : PLAN_RESIDUE_RUNS);
  case IR_ROWS:
    gen_set(b, n->kids[0], false);
    emit(b, PLAN_PROWS);
    return bound(b, 1);
  case IR_COLS:
    x = gen_set(b, n->kids[0], false);
    emit(b, PLAN_PCOLS);
    return x;
  case IR_GLOBAL:
    gen_set(b, n->kids[0], false);
    emit(b, PLAN_PROWS);
    x = gen_set(b, n->kids[0], false);
    emit(b, PLAN_PCOLS);
    emit(b, PLAN_POR), lpush(b, -1);
    return bound(b, 2 * (1 + x));
  case IR_TOPK:
    gen_int(b, n->kids[0]);
    emit(b, PLAN_FOCUSALL), ipush(b, 2); /* topk needs P's whole row */
    x = gen_pat(b, n->kids[1]);
    emit(b, PLAN_UNFOCUS), ipush(b, -2);
    emit(b, PLAN_PTOPK), ipush(b, -1);
    return x;
  case IR_OR:
  case IR_AND:
  case IR_MINUS:
    /* Q only where it can matter: not when P is empty (& -) or FULL over
     * every key (|).  (Run-time errors of Q still count: the kernel checks
     * them over the whole domain before the plan runs, kernel_rt.h.) */
    x = gen_pat(b, n->kids[0]);
    emit(b, n->op == IR_OR ? PLAN_JALL : PLAN_JEMPTY), j1 = emit(b, 0);
    if (n->op != IR_OR) emit(b, PLAN_FOCUS), ipush(b, 2);
    y = gen_pat(b, n->kids[1]);
    if (n->op != IR_OR) emit(b, PLAN_UNFOCUS), ipush(b, -2);
    emit(b, n->op == IR_OR ? PLAN_POR : n->op == IR_AND ? PLAN_PAND : PLAN_PMINUS);
    lpush(b, -1);
    patch(b, j1);
    return bound(b, n->op == IR_MINUS ? 2 * (x + 2 * y + 1) : 2 * (x + y));
  case IR_COMPL:
    x = gen_pat(b, n->kids[0]);
    emit(b, PLAN_PCOMPL);
    return bound(b, 2 * x + 1);
  case IR_PSEL:
    if (!is_plannable(n->kids[0])) return gen_any(b);
    gen_int(b, n->kids[0]);
    emit(b, PLAN_JZ), j1 = emit(b, 0), ipush(b, -1);
    x = gen_pat(b, n->kids[1]);
    emit(b, PLAN_JMP), j2 = emit(b, 0), lpush(b, -1);
    patch(b, j1);
    y = gen_pat(b, n->kids[2]);
    patch(b, j2);
    return x > y ? x : y;
  case IR_DIAG: /* each offset: a diagonal band of keys, 3 spans */
    x = gen_set(b, n->kids[0], true);
    emit(b, PLAN_PDIAGS), lpush(b, 2), lpush(b, -2);
    return bound(b, x >= BOUND_MAX / 3 ? BOUND_MAX : 3 * x);
  case IR_BLOCKS:
    if (!is_plannable(n->kids[0])) return gen_any(b);
    gen_int(b, n->kids[0]);
    emit(b, PLAN_BBEGIN), ipush(b, -1);
    if (++b->bdepth > b->bmax) b->bmax = b->bdepth;
    x = gen_pat(b, n->kids[1]);
    b->bdepth--;
    emit(b, PLAN_BEND);
    return x;
  default:
    return gen_any(b); /* not a pattern: sema does not produce this */
  }
}

/* ---- the where table (plan_ops.h): predicates as written ---- */

static bool enc_int(bld *b, const ir_node *n, size_t limit) {
  static const struct { ir_op ir; int plan; } ops[] = {
      {IR_ADD, PLAN_IADD}, {IR_SUB, PLAN_ISUB}, {IR_MUL, PLAN_IMUL},
      {IR_DIV, PLAN_IDIV}, {IR_MOD, PLAN_IMOD}, {IR_MIN, PLAN_IMIN},
      {IR_MAX, PLAN_IMAX}, {IR_LT, PLAN_ILT},   {IR_LE, PLAN_ILE},
      {IR_GT, PLAN_IGT},   {IR_GE, PLAN_IGE},   {IR_EQ, PLAN_IEQ},
      {IR_NE, PLAN_INE},   {IR_NEG, PLAN_INEG}, {IR_NOT, PLAN_INOT},
      {IR_ABS, PLAN_IABS}, {IR_LAND, PLAN_ILAND}, {IR_LOR, PLAN_ILOR},
      {IR_SEL, PLAN_ISEL}, {IR_VAR_I, PLAN_IVARI}, {IR_VAR_J, PLAN_IVARJ},
      {IR_VAR_H, PLAN_IHEAD}, {IR_SIZE_LQ, PLAN_ILQ}, {IR_SIZE_LK, PLAN_ILK},
      {IR_SIZE_H, PLAN_INHEAD}};
  if (b->oom || b->n >= limit) return false;
  switch (n->op) {
  case IR_CONST: emit(b, PLAN_ICONST), emit(b, n->value); return true;
  case IR_RUNTIME: emit(b, PLAN_IRT), emit(b, n->value); return true;
  case IR_INPUT:
    emit(b, PLAN_IINPUT), emit(b, n->value);
    return enc_int(b, n->kids[0], limit);
  case IR_VAR_B: case IR_SIZE_B: case IR_SIZE_HKV: case IR_SIZE_D:
    if (!b->where_v2) return false;
    emit(b, n->op == IR_VAR_B ? PLAN_IVARB : n->op == IR_SIZE_B ? PLAN_IBATCH
            : n->op == IR_SIZE_HKV ? PLAN_IHKV : PLAN_IDIM);
    return true;
  case IR_INPUTN: return b->where_v2 && enc_inputn(b, n, limit);
  case IR_EXTERN:
    emit(b, PLAN_IEXTERN), emit(b, n->n_kids);
    for (int k = 0; k < n->n_kids; k++)
      if (!enc_int(b, n->kids[k], limit)) return false;
    return true;
  default:
    break;
  }
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
    if (ops[k].ir == n->op) {
      emit(b, ops[k].plan);
      for (int t = 0; t < n->n_kids; t++)
        if (!enc_int(b, n->kids[t], limit)) return false;
      return true;
    }
  return false;
}

_Static_assert(PLAN_INPUT_DIMS == IR_MAX_DIMS, "plan_safe.c reads every dimension");

/* INPUTN: its dimensions (int[] is int[Lk]), then its indices. */
static bool enc_inputn(bld *b, const ir_node *n, size_t limit) {
  const ir_input *in = &b->prog->inputs[n->value];
  emit(b, PLAN_IINPUTN), emit(b, n->value), emit(b, n->n_kids);
  for (int d = 0; d < n->n_kids; d++) {
    if (in->n_dims == 0) emit(b, PLAN_ILK);
    else if (!enc_int(b, in->dims[d], limit)) return false;
  }
  for (int d = 0; d < n->n_kids; d++)
    if (!enc_int(b, n->kids[d], limit)) return false;
  return true;
}

/* Every where node under n, in tree order; false when the table is full. */
static bool enc_wheres(bld *b, const ir_node *n, int64_t flags, int64_t *count,
                       size_t limit) {
  if (n->op == IR_WHERE) {
    if (b->n + 2 >= limit) return false;
    size_t len_at = emit(b, 0);
    emit(b, flags);
    size_t start = b->n;
    if (!enc_int(b, n->kids[0], limit)) b->n = start; /* too large: unknown */
    if (!b->oom) b->w[len_at] = (int64_t)(b->n - len_at - 1);
    ++*count;
    return !b->oom;
  }
  if (n->op == IR_BLOCKS) flags |= PLAN_WF_BLOCKS;
  for (int k = 0; k < n->n_kids; k++)
    if (ir_op_kind[n->kids[k]->op] == IR_PAT &&
        !enc_wheres(b, n->kids[k], flags, count, limit))
      return false;
  return true;
}

static void gen_where_table(bld *b, const ir_node *root) {
  size_t at = emit(b, 0);
  int64_t count = 0;
  b->where_v2 = true;
  bool ok = enc_wheres(b, root, 0, &count, at + PLAN_WHERE_MAX);
  b->where_v2 = false;
  if (!ok) {
    b->n = at + 1; /* unknown: any predicate may fail */
    count = -1;
  }
  if (!b->oom) b->w[at] = count;
}

/* ---- the join table (plan_ops.h) ---- */

/* 1: of i alone, 2: of j alone, 0: neither or both (or an extern). */
static int join_side(const ir_node *n) {
  bool i = ir_has_op(n, IR_VAR_I), j = ir_has_op(n, IR_VAR_J);
  if (ir_has_op(n, IR_EXTERN) || i == j) return 0;
  return i ? 1 : 2;
}

/* The equalities f(i) == g(j) of a && tree of them, f first. */
static bool join_atoms(const ir_node *n, const ir_node **f, const ir_node **g,
                       int *k) {
  if (n->op == IR_LAND)
    return join_atoms(n->kids[0], f, g, k) && join_atoms(n->kids[1], f, g, k);
  if (n->op != IR_EQ || *k == PLAN_JOIN_MAX) return false;
  int a = join_side(n->kids[0]), c = join_side(n->kids[1]);
  if (a == 0 || c == 0 || a == c) return false;
  f[*k] = n->kids[a == 1 ? 0 : 1], g[*k] = n->kids[a == 1 ? 1 : 0];
  ++*k;
  return true;
}

/* Returns the table's offset, 0 when the root is no such join. */
static int64_t gen_join_table(bld *b, const ir_node *root) {
  const ir_node *f[PLAN_JOIN_MAX], *g[PLAN_JOIN_MAX];
  int k = 0;
  if (root->op != IR_WHERE || !join_atoms(root->kids[0], f, g, &k) ||
      ir_tree_size(root, BOX_WORDS) >= BOX_WORDS / 2)
    return 0;
  size_t at = b->n;
  emit(b, k);
  for (int t = 0; t < 2 * k; t++) {
    size_t len_at = emit(b, 0), start = b->n;
    if (!enc_int(b, t % 2 ? g[t / 2] : f[t / 2], start + BOX_WORDS)) {
      b->n = at;
      return 0;
    }
    if (!b->oom) b->w[len_at] = (int64_t)(b->n - start);
  }
  return (int64_t)at;
}

/* ---- the rows table (plan_ops.h): inputs read as rows of index sets ---- */

/* An input's entry; left out (rewound) when a dimension has no tree the
 * table can hold (B, Hkv, D): its sets then stay PARTIAL. */
static void gen_rows_entry(bld *b, const ir_program *p, int k, int64_t *count) {
  const ir_input *in = &p->inputs[k];
  size_t start = b->n;
  emit(b, k), emit(b, in->n_dims ? in->n_dims : 1);
  for (int d = 0; d < (in->n_dims ? in->n_dims : 1); d++) {
    size_t len_at = emit(b, 0), at = b->n;
    bool ok = in->n_dims ? enc_int(b, in->dims[d], (size_t)PLAN_WHERE_MAX * 2)
                         : (emit(b, PLAN_ILK), true);
    if (!ok || b->oom) {
      b->n = start;
      return;
    }
    b->w[len_at] = (int64_t)(b->n - at);
  }
  ++*count;
}

/* The inputs the code's SROW instructions read (b->row_in). */
static int64_t gen_rows_table(bld *b, const ir_program *p) {
  bool any = false;
  for (int k = 0; b->row_in && k < p->n_inputs; k++) any |= b->row_in[k];
  if (!any) return 0;
  size_t at = emit(b, 0);
  int64_t count = 0;
  for (int k = 0; k < p->n_inputs; k++)
    if (b->row_in[k]) gen_rows_entry(b, p, k, &count);
  if (!b->oom) b->w[at] = count;
  return (int64_t)at;
}

/* ---- the route table (plan_ops.h) ---- */

/* The route nodes under n into *found / *several, within *budget visits
 * (a shared sub-pattern is walked once per path; past the budget the
 * answer is "several", which the compiled backends refuse). */
static void find_routes(const ir_node *n, const ir_node **found, bool *several,
                        int64_t *budget) {
  if (*several || !ir_has_op(n, IR_ROUTE)) return;
  if (--*budget < 0) {
    *several = true;
    return;
  }
  if (n->op == IR_ROUTE) {
    if (*found && *found != n) *several = true;
    *found = n;
    return;
  }
  for (int k = 0; k < n->n_kids; k++) find_routes(n->kids[k], found, several, budget);
}

const ir_node *an_route(const ir_program *p, int64_t *n, bool *several) {
  const ir_node *r = NULL;
  int64_t budget = 1 << 16;
  *several = false;
  find_routes(p->root, &r, several, &budget);
  if (!r || *several || r->value < 0 || r->value >= p->n_inputs) return NULL;
  const ir_input *in = &p->inputs[r->value];
  if (in->n_dims != 3 || in->dims[1]->op != IR_CONST) return NULL;
  *n = in->dims[1]->value;
  return r;
}

/* Returns the table's offset, 0 when the pattern has no (single) route. */
static int64_t gen_route_table(bld *b, const ir_program *p) {
  int64_t n;
  bool several;
  const ir_node *r = an_route(p, &n, &several);
  if (!r) return 0;
  size_t at = b->n;
  emit(b, r->value), emit(b, n), emit(b, p->root == r ? PLAN_ROUTE_ALONE : 0);
  return (int64_t)at;
}

int64_t *an_build(const ir_program *p, char *err, size_t errlen) {
  if (!p || !p->root) {
    rt_errf(err, errlen, RT_EINVAL, "an_build: no program");
    return NULL;
  }
  /* The rewritten where atoms live only while the plan is generated: in an
   * arena of this call, never the program's (the program is shared, e.g. by
   * threads compiling the same pattern, and must not grow per compile). */
  bool *row_in = p->n_inputs > 0 ? calloc((size_t)p->n_inputs, sizeof *row_in) : NULL;
  bld b = {.a = arena_new(), .row_in = row_in, .prog = p};
  if (!b.a || (p->n_inputs > 0 && !row_in)) {
    arena_free(b.a), free(row_in);
    rt_errf(err, errlen, RT_EINVAL, "out of memory");
    return NULL;
  }
  for (int k = 0; k < PLAN_HDR; k++) emit(&b, 0);
  gen_pat(&b, p->root);
  if (b.over) {
    /* Too large to plan: every key of every tile PARTIAL (sound; the mask
     * code decides each key). */
    arena *a = b.a;
    free(b.w);
    b = (bld){.a = a, .row_in = row_in, .prog = p};
    if (row_in) memset(row_in, 0, sizeof *row_in * (size_t)p->n_inputs);
    for (int k = 0; k < PLAN_HDR; k++) emit(&b, 0);
    gen_any(&b);
  }
  emit(&b, PLAN_END);
  size_t where_at = b.n;
  gen_where_table(&b, p->root);
  int64_t join_at = gen_join_table(&b, p->root);
  int64_t rows_at = gen_rows_table(&b, p);
  int64_t route_at = gen_route_table(&b, p);
  int64_t *plan = NULL;
  if (b.oom) {
    rt_errf(err, errlen, RT_EINVAL, "out of memory");
  } else if (b.imax > PLAN_ISTACK) {
    rt_errf(err, errlen, RT_EINVAL, "pattern too deeply nested for the tile plan "
        "(integer stack %d > %d)", b.imax, PLAN_ISTACK);
  } else if (b.bmax > PLAN_BNEST) {
    rt_errf(err, errlen, RT_EINVAL, "blocks nested too deeply for the tile plan (%d > %d)",
        b.bmax, PLAN_BNEST);
  } else if (PLAN_SCRATCH / (b.lmax + 4) < 4) {
    rt_errf(err, errlen, RT_EINVAL, "pattern too deeply nested for the tile plan "
        "(list stack %d)", b.lmax);
  } else if (!(plan = malloc(b.n * sizeof *plan))) {
    rt_errf(err, errlen, RT_EINVAL, "out of memory");
  } else {
    int64_t cap = PLAN_SCRATCH / (b.lmax + 4);
    if (b.maxbound < cap) cap = b.maxbound < 4 ? 4 : b.maxbound;
    b.w[PLAN_W_SIZE] = (int64_t)b.n;
    b.w[PLAN_W_MAGIC] = PLAN_MAGIC;
    b.w[PLAN_W_CAP] = cap;
    b.w[PLAN_W_LDEPTH] = b.lmax;
    b.w[PLAN_W_IDEPTH] = b.imax;
    b.w[PLAN_W_BDEPTH] = b.bmax;
    b.w[PLAN_W_NRT] = p->n_runtime;
    b.w[PLAN_W_CODE] = PLAN_HDR;
    b.w[PLAN_W_NIN] = p->n_inputs;
    b.w[PLAN_W_WHERE] = (int64_t)where_at;
    b.w[PLAN_W_JOIN] = join_at;
    b.w[PLAN_W_ROWS] = rows_at;
    b.w[PLAN_W_ROUTE] = route_at;
    b.w[PLAN_W_FLAGS] = (p->top_left ? PLAN_F_TOP_LEFT : 0) |
                        (ir_has_op(p->root, IR_VAR_B) || ir_has_op(p->score, IR_VAR_B)
                             ? PLAN_F_BATCH : 0) |
                        (ir_has_op(p->root, IR_VAR_H) || ir_has_op(p->root, IR_RANDOM) ||
                                 ir_has_op(p->root, IR_TOPK) || ir_has_op(p->root, IR_ROUTE) ||
                                 ir_has_op(p->root, IR_EXTERN)
                             ? PLAN_F_HEAD : 0);
    memcpy(plan, b.w, b.n * sizeof *plan);
  }
  free(b.w), free(row_in);
  arena_free(b.a);
  return plan;
}

/* ---- explain ---- */

static void print_plan(FILE *f, const int64_t *plan) {
  fprintf(f, "plan: %lld words, at most %lld spans per tile, stacks %lld "
          "lists / %lld ints, blocks depth %lld\n",
          (long long)plan[PLAN_W_SIZE], (long long)plan[PLAN_W_CAP],
          (long long)plan[PLAN_W_LDEPTH], (long long)plan[PLAN_W_IDEPTH],
          (long long)plan[PLAN_W_BDEPTH]);
  int64_t end = plan[PLAN_W_WHERE] > 0 ? plan[PLAN_W_WHERE] : plan[PLAN_W_SIZE];
  for (int64_t pc = plan[PLAN_W_CODE]; pc < end;) {
    int64_t op = plan[pc];
    if (op < 0 || op >= PLAN_N_OPS) {
      fprintf(f, "  %4lld  ?%lld\n", (long long)pc, (long long)op);
      break;
    }
    fprintf(f, "  %4lld  %s", (long long)pc, plan_op_text[op]);
    for (int k = 1; k <= plan_op_operands[op]; k++)
      fprintf(f, " %lld", (long long)plan[pc + k]);
    fputc('\n', f);
    pc += 1 + plan_op_operands[op];
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

#define EXPLAIN_EXACT_MAX SPAT_MAX_EXPLAIN_EXACT /* mask elements evaluated per head */

/* Tiles and keys per row from the exact mask (the reference interpreter),
 * over every row, or over evenly spaced rows when there are too many. */
static int explain_exact(FILE *f, const ir_program *p, const plan_env *env,
                         int64_t bq, int64_t bk, int64_t visited, char *err,
                         size_t errlen) {
  int64_t Lq = env->Lq, Lk = env->Lk;
  int64_t nkt = (Lk + bk - 1) / bk, step = 1;
  if (Lq == 0) return 0;
  /* the interpreter walks the expanded tree per element: bound the
   * elements by the work, not only their number */
  int64_t tree = ir_tree_size(p->root, EXPLAIN_EXACT_MAX);
  if (tree <= 25) {
    if (Lk > 0 && Lq > EXPLAIN_EXACT_MAX / Lk) step = Lq * Lk / EXPLAIN_EXACT_MAX + 1;
  } else {
    int64_t rows = SPAT_MAX_EXPLAIN_WORK / tree / (Lk > 0 ? Lk : 1);
    if (rows < 1) rows = 1;
    if (Lq > rows) step = Lq / rows + 1;
  }
  rt_args a = {.B = 1, .H = env->H, .Hkv = env->H, .Lq = Lq, .Lk = Lk, .D = 1,
               .runtime = env->runtime};
  uint8_t *row = malloc((size_t)Lk + 1);
  int64_t *cnt = calloc((size_t)nkt + 1, sizeof *cnt);
  int64_t *per = malloc(sizeof *per * (size_t)(Lq / step + 1));
  int64_t n_rows = 0, tiles[3] = {0, 0, 0}; /* empty, partial, full */
  int rc = 0;
  if (!row || !cnt || !per) {
    rt_errf(err, errlen, RT_EINVAL, "out of memory");
    rc = -1;
  }
  for (int64_t r0 = 0; r0 < Lq && rc == 0; r0 += bq) {
    int64_t r1 = r0 + bq < Lq ? r0 + bq : Lq, seen = 0;
    memset(cnt, 0, sizeof *cnt * (size_t)nkt);
    for (int64_t r = r0; r < r1; r++) {
      if (r % step) continue;
      if (interp_mask_row(p, &a, 0, env->h, r, row, err, errlen) != RT_OK) {
        rc = -1;
        break;
      }
      int64_t c = 0;
      for (int64_t j = 0; j < Lk; j++)
        if (row[j]) c++, cnt[j / bk]++;
      per[n_rows++] = c;
      seen++;
    }
    if (step == 1)
      for (int64_t q = 0; q < nkt; q++) {
        int64_t w = (q + 1) * bk < Lk ? bk : Lk - q * bk;
        tiles[cnt[q] == 0 ? 0 : cnt[q] == w * seen ? 2 : 1]++;
      }
  }
  if (rc == 0 && n_rows > 0) {
    qsort(per, (size_t)n_rows, sizeof *per, cmp_i64);
    if (step == 1)
      fprintf(f, "  exact mask: key tiles full %lld, partial %lld, empty %lld; "
              "tiles visited / needed %lld / %lld = %.2fx\n",
              (long long)tiles[2], (long long)tiles[1], (long long)tiles[0],
              (long long)visited, (long long)(tiles[1] + tiles[2]),
              tiles[1] + tiles[2] ? (double)visited / (double)(tiles[1] + tiles[2]) : 0.0);
    fprintf(f, "  keys per row, exact: min %lld, median %lld, max %lld%s\n",
            (long long)per[0], (long long)per[n_rows / 2],
            (long long)per[n_rows - 1], step > 1 ? " (sampled rows)" : "");
  }
  free(row), free(cnt), free(per);
  return rc;
}

int64_t an_tile_classes(const int64_t *plan, const plan_env *env, int64_t r0,
                        int64_t r1, int64_t bk, plan_span *sp, int64_t cap,
                        int64_t *kt, char *err, size_t errlen) {
  int64_t Lk = env->Lk, nkt = (Lk + bk - 1) / bk;
  int64_t n = plan_tiles(plan, env, r0, r1, sp, cap, err, errlen);
  if (n < 0) return -1;
  memset(kt, 0, sizeof *kt * (size_t)(nkt ? nkt : 1));
  for (int64_t s = 0; s < n; s++) {
    /* kt: 1 touched by a PARTIAL span or partly covered, 2 all FULL */
    for (int64_t q = sp[s].k0 / bk; q <= (sp[s].k1 - 1) / bk; q++) {
      int64_t q0 = q * bk, q1 = q0 + bk < Lk ? q0 + bk : Lk;
      bool whole = sp[s].kind == PLAN_FULL && sp[s].k0 <= q0 && sp[s].k1 >= q1;
      if (whole && kt[q] == 0) kt[q] = 2;
      else if (!whole && kt[q] == 2) {
        /* two FULL spans can still cover a tile together */
        int64_t c = 0;
        for (int64_t u = 0; u < n; u++)
          if (sp[u].kind == PLAN_FULL) {
            int64_t a = sp[u].k0 > q0 ? sp[u].k0 : q0;
            int64_t z = sp[u].k1 < q1 ? sp[u].k1 : q1;
            if (z > a) c += z - a;
          }
        kt[q] = c == q1 - q0 ? 2 : 1;
      } else if (!whole) {
        kt[q] = 1;
      }
    }
  }
  return n;
}

int an_explain(FILE *f, const ir_program *p, int64_t H, int64_t Lq,
               int64_t Lk, int64_t bq, int64_t bk, const int64_t *runtime,
               char *err, size_t errlen) {
  if (!f || !p || H < 1 || Lq < 0 || Lk < 0 || bq < 1 || bk < 1) {
    rt_errf(err, errlen, RT_EINVAL, "an_explain: bad arguments");
    return -1;
  }
  /* Tiles are enumerated one by one: bound the grid (heads that all have
   * the same pattern are shown once). */
  bool same_heads = !ir_has_op(p->root, IR_VAR_H) && !ir_has_op(p->root, IR_PSEL) &&
                    !ir_has_op(p->root, IR_RANDOM) && !ir_has_op(p->root, IR_WHERE);
  int64_t nqt0 = (Lq + bq - 1) / bq, nkt0 = (Lk + bk - 1) / bk;
  int64_t heads = same_heads ? 1 : H, cells;
  if (__builtin_mul_overflow(nqt0 > 0 ? nqt0 : 1, nkt0 > 0 ? nkt0 : 1, &cells) ||
      __builtin_mul_overflow(cells, heads, &cells) || cells > SPAT_MAX_EXPLAIN_TILES) {
    rt_errf(err, errlen, RT_EINVAL, "explain: %lld query tiles x %lld key tiles%s is more than the "
        "%lld tile pairs explain enumerates; use larger --bq/--bk (now %lld x %lld) "
        "or shorter sequences", (long long)nqt0, (long long)nkt0,
        heads > 1 ? " x heads" : "", (long long)SPAT_MAX_EXPLAIN_TILES,
        (long long)bq, (long long)bk);
    return -1;
  }
  int64_t *plan = an_build(p, err, errlen);
  if (!plan) return -1;
  fprintf(f, "pattern %s\n", p->name ? p->name : "(unnamed)");
  ir_print_program(f, p);
  print_plan(f, plan);

  int64_t cap = plan_max_spans(plan);
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  int64_t nqt = (Lq + bq - 1) / bq, nkt = (Lk + bk - 1) / bk;
  /* keys per row: lower bound (FULL spans), upper bound (every span). */
  int64_t *lo = malloc(sizeof *lo * (size_t)(Lq ? Lq : 1));
  int64_t *hi = malloc(sizeof *hi * (size_t)(Lq ? Lq : 1));
  int64_t *kt = malloc(sizeof *kt * (size_t)(nkt ? nkt : 1));
  if (!sp || !lo || !hi || !kt) {
    free(sp), free(lo), free(hi), free(kt), free(plan);
    rt_errf(err, errlen, RT_EINVAL, "out of memory");
    return -1;
  }
  int rc = 0;
  /* The exact mask needs no data: no topk, inputs or externs. */
  bool exact = !ir_is_data_dependent(p) && p->n_inputs == 0 && p->n_externs == 0;
  fprintf(f, "\nsizes: H %lld, Lq %lld, Lk %lld; tiles of %lld x %lld\n",
          (long long)H, (long long)Lq, (long long)Lk, (long long)bq,
          (long long)bk);
  if (p->n_inputs > 0)
    fprintf(f, "(no input arrays here: predicates that read them count as "
            "PARTIAL everywhere;\n with real arrays the kernel's plan is "
            "tighter, e.g. one document per tile)\n");
  if (ir_is_data_dependent(p))
    fprintf(f, "(topk keys depend on q and k: its candidates count as PARTIAL)\n");
  for (int64_t h = 0; h < H && rc == 0; h++) {
    plan_env env = {.h = h, .H = H, .Lq = Lq, .Lk = Lk, .runtime = runtime};
    int64_t nfull = 0, npart = 0, nspans = 0, maxspans = 0;
    for (int64_t t = 0; t < nqt; t++) {
      int64_t r0 = t * bq, r1 = r0 + bq < Lq ? r0 + bq : Lq;
      int64_t n = an_tile_classes(plan, &env, r0, r1, bk, sp, cap, kt, err,
                                  errlen);
      if (n < 0) {
        rc = -1;
        break;
      }
      nspans += n;
      if (n > maxspans) maxspans = n;
      int64_t nf = 0, na = 0;
      for (int64_t s = 0; s < n; s++) {
        int64_t len = sp[s].k1 - sp[s].k0;
        na += len;
        if (sp[s].kind == PLAN_FULL) nf += len;
      }
      for (int64_t q = 0; q < nkt; q++) nfull += kt[q] == 2, npart += kt[q] == 1;
      for (int64_t r = r0; r < r1; r++) lo[r] = nf, hi[r] = na;
    }
    if (rc) break;
    int64_t tot = nqt * nkt;
    fprintf(f, "head %lld: key tiles full %lld, partial %lld, empty %lld of "
            "%lld (%.1f%% visited); spans per query tile %.1f (max %lld)\n",
            (long long)h, (long long)nfull, (long long)npart,
            (long long)(tot - nfull - npart), (long long)tot,
            tot ? 100.0 * (double)(nfull + npart) / (double)tot : 0.0,
            nqt ? (double)nspans / (double)nqt : 0.0, (long long)maxspans);
    if (Lq > 0) {
      qsort(lo, (size_t)Lq, sizeof *lo, cmp_i64);
      qsort(hi, (size_t)Lq, sizeof *hi, cmp_i64);
      fprintf(f, "  keys per row, sure (in FULL spans of its tile): min %lld, "
              "median %lld, max %lld\n",
              (long long)lo[0], (long long)lo[Lq / 2], (long long)lo[Lq - 1]);
      fprintf(f, "  keys per row, visited (in any span):           min %lld, "
              "median %lld, max %lld\n",
              (long long)hi[0], (long long)hi[Lq / 2], (long long)hi[Lq - 1]);
    }
    if (exact && rc == 0)
      rc = explain_exact(f, p, &env, bq, bk, nfull + npart, err, errlen);
    if (H > 1 && same_heads) {
      fprintf(f, "(every head has the same pattern)\n");
      break;
    }
  }
  free(sp), free(lo), free(hi), free(kt), free(plan);
  return rc;
}
