/* ir_check.c: the one IR checker (ir_check in ir.h), run by the compile
 * pipeline between lowering and every backend, and by each backend's entry
 * points as their guard against programs built by hand.
 *
 * In: an ir_program.  Out: true, or false with "malformed pattern IR at
 * 'OP'" in err.  Checks what every consumer relies on: op codes, the kind
 * of every kid (integer, index set, pattern), arities, the table indices of
 * RUNTIME, INPUT and EXTERN, and extern call arity (at most
 * IR_MAX_EXTERN_ARGS).  Work is linear in the number of distinct nodes: a
 * node shared by several parents (a DAG) is checked once per kind it is
 * used at.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ir.h"

static const int op_arity[IR_N_OPS] = {
#define X(name, text, kind, n) n,
    IR_OPS(X)
#undef X
};

/* Nodes already checked (as pointer | wanted kind), an open-addressing set. */
typedef struct seen {
  uintptr_t *slot;
  size_t cap, n;
  bool oom;
} seen;

static size_t hash_ptr(uintptr_t x) {
  x ^= x >> 17;
  x *= 0xED5AD4BBu;
  x ^= x >> 11;
  return (size_t)x;
}

/* true when (n, want) was seen before; else records it. */
static bool seen_add(seen *s, const ir_node *n, ir_kind want) {
  uintptr_t key = (uintptr_t)n | (uintptr_t)want; /* nodes are 8-aligned */
  if (2 * (s->n + 1) > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    uintptr_t *slot = calloc(cap, sizeof *slot);
    if (slot == NULL) {
      s->oom = true;
      return false; /* check it again: correct, only slower */
    }
    for (size_t k = 0; k < s->cap; k++)
      if (s->slot[k]) {
        size_t h = hash_ptr(s->slot[k]) & (cap - 1);
        while (slot[h]) h = (h + 1) & (cap - 1);
        slot[h] = s->slot[k];
      }
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
  }
  size_t h = hash_ptr(key) & (s->cap - 1);
  while (s->slot[h]) {
    if (s->slot[h] == key) return true;
    h = (h + 1) & (s->cap - 1);
  }
  s->slot[h] = key;
  s->n++;
  return false;
}

/* Stands for a missing kid in what bad_node returns. */
static const ir_node missing = {.op = IR_N_OPS};

/* The first malformed node under n (used where a `want` belongs), or NULL. */
static const ir_node *bad_node(const ir_program *p, const ir_node *n,
                               ir_kind want, seen *s) {
  if (n == NULL) return &missing;
  if ((unsigned)n->op >= IR_N_OPS) return n;
  ir_kind kind = ir_op_kind[n->op];
  if (want == IR_SETK ? n->op != IR_SET && n->op != IR_INROW : kind != want)
    return n;
  if (op_arity[n->op] >= 0 && n->n_kids != op_arity[n->op]) return n;
  if (n->n_kids < 0 || (n->n_kids > 0 && n->kids == NULL)) return n;
  if (seen_add(s, n, want)) return NULL;
  bool in = n->op == IR_INPUT || n->op == IR_FINPUT || n->op == IR_INROW ||
            n->op == IR_ROUTE || n->op == IR_INPUTN;
  int64_t tab = n->op == IR_RUNTIME  ? p->n_runtime
                : in                 ? p->n_inputs
                : n->op == IR_EXTERN ? p->n_externs
                                     : -1;
  if (tab >= 0 && (n->value < 0 || n->value >= tab)) return n;
  if (in && (p->inputs[n->value].is_float !=
             (n->op == IR_FINPUT || n->op == IR_ROUTE)))
    return n;
  if (n->op == IR_ROUTE && p->inputs[n->value].n_dims != 3) return n;
  if ((n->op == IR_INPUTN || n->op == IR_FINPUT) &&
      n->n_kids != p->inputs[n->value].n_dims)
    return n;
  if (n->op == IR_INROW && n->n_kids != p->inputs[n->value].n_dims - 1) return n;
  if (n->op == IR_EXTERN && (n->n_kids != p->externs[n->value].n_args ||
                             n->n_kids > IR_MAX_EXTERN_ARGS))
    return n;
  for (int k = 0; k < n->n_kids; k++) {
    ir_kind w = IR_INT;
    const ir_node *kid = n->kids[k];
    if (n->op == IR_SET && kid != NULL && kid->op == IR_INROW) {
      const ir_node *b = bad_node(p, kid, IR_SETK, s);
      if (b != NULL) return b;
      continue;
    }
    if (n->op == IR_SET && kid != NULL && kid->op == IR_RANGE) {
      if (kid->n_kids != 2 || kid->kids == NULL) return kid;
      const ir_node *b = bad_node(p, kid->kids[0], IR_INT, s);
      if (b == NULL) b = bad_node(p, kid->kids[1], IR_INT, s);
      if (b != NULL) return b;
      continue;
    }
    switch (n->op) {
    case IR_ROWS: case IR_COLS: case IR_GLOBAL: case IR_DIAG: w = IR_SETK; break;
    case IR_FNEG: case IR_FABS: case IR_FEXP: case IR_FLOG: case IR_FSQRT:
    case IR_FTANH: case IR_FADD: case IR_FSUB: case IR_FMUL: case IR_FDIV:
    case IR_FMIN: case IR_FMAX: w = IR_FLT; break;
    case IR_FSEL: w = k > 0 ? IR_FLT : IR_INT; break;
    case IR_OR: case IR_AND: case IR_MINUS: case IR_COMPL: w = IR_PAT; break;
    case IR_TOPK: case IR_BLOCKS: w = k == 1 ? IR_PAT : IR_INT; break;
    case IR_PSEL: w = k > 0 ? IR_PAT : IR_INT; break;
    default: break;
    }
    const ir_node *b = bad_node(p, kid, w, s);
    if (b != NULL) return b;
  }
  return NULL;
}

bool ir_check(const ir_program *p, char *err, size_t errlen) {
  if (p == NULL) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "malformed pattern IR: no program");
    return false;
  }
  seen s = {0};
  const ir_node *bad = bad_node(p, p->root, IR_PAT, &s);
  if (bad == NULL && p->score) bad = bad_node(p, p->score, IR_FLT, &s);
  for (int k = 0; k < p->n_inputs && bad == NULL; k++) {
    const ir_input *in = &p->inputs[k];
    if (in->n_dims < 0 || in->n_dims > IR_MAX_DIMS || (in->n_dims && !in->dims))
      bad = &missing;
    for (int d = 0; d < in->n_dims && bad == NULL; d++)
      bad = bad_node(p, in->dims[d], IR_INT, &s);
  }
  free(s.slot);
  if (bad == NULL) return true;
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "malformed pattern IR at '%s'",
             bad == &missing               ? "(missing operand)"
             : (unsigned)bad->op < IR_N_OPS ? ir_op_name[bad->op]
                                            : "?");
  return false;
}
