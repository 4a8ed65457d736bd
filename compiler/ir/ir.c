/* ir.c: the op tables and constructors of the checked pattern IR (ir.h). */
#include "ir.h"

#include <stdlib.h>

const char *const ir_op_text[IR_N_OPS] = {
#define X(name, text, kind, n) text,
    IR_OPS(X)
#undef X
};

const char *const ir_op_name[IR_N_OPS] = {
#define X(name, text, kind, n) #name,
    IR_OPS(X)
#undef X
};

const ir_kind ir_op_kind[IR_N_OPS] = {
#define X(name, text, kind, n) kind,
    IR_OPS(X)
#undef X
};

ir_node *ir_new(arena *a, ir_op op, int n_kids, src_span sp) {
  ir_node *n = arena_alloc(a, sizeof *n);
  if (!n) return NULL;
  n->op = op;
  n->span = sp;
  n->n_kids = n_kids;
  if (n_kids > 0) {
    n->kids = arena_alloc(a, sizeof(ir_node *) * (size_t)n_kids);
    if (!n->kids) return NULL;
  }
  return n;
}

ir_node *ir_const(arena *a, int64_t v, src_span sp) {
  ir_node *n = ir_new(a, IR_CONST, 0, sp);
  if (n) n->value = v;
  return n;
}

ir_node *ir_new1(arena *a, ir_op op, ir_node *k0, src_span sp) {
  ir_node *n = ir_new(a, op, 1, sp);
  if (n) n->kids[0] = k0;
  return n;
}

ir_node *ir_new2(arena *a, ir_op op, ir_node *k0, ir_node *k1, src_span sp) {
  ir_node *n = ir_new(a, op, 2, sp);
  if (n) n->kids[0] = k0, n->kids[1] = k1;
  return n;
}

ir_node *ir_new3(arena *a, ir_op op, ir_node *k0, ir_node *k1, ir_node *k2,
                 src_span sp) {
  ir_node *n = ir_new(a, op, 3, sp);
  if (n) n->kids[0] = k0, n->kids[1] = k1, n->kids[2] = k2;
  return n;
}

_Static_assert(IR_N_OPS <= 64, "ir_node.ops is a 64-bit set");

uint64_t ir_seal(ir_node *n) {
  if (!n) return 0;
  if (n->ops) return n->ops;
  uint64_t m = (uint64_t)1 << n->op;
  for (int k = 0; k < n->n_kids; k++) m |= ir_seal(n->kids[k]);
  return n->ops = m;
}

bool ir_has_op(const ir_node *n, ir_op op) {
  if (!n) return false;
  if (n->ops) return (n->ops >> op) & 1;
  if (n->op == op) return true;
  for (int k = 0; k < n->n_kids; k++)
    if (ir_has_op(n->kids[k], op)) return true;
  return false;
}

bool ir_is_data_dependent(const ir_program *p) {
  return ir_has_op(p->root, IR_TOPK);
}

typedef struct size_memo {
  const ir_node **key;
  int64_t *val;
  size_t cap, n;
} size_memo;

static size_t size_slot(const size_memo *m, const ir_node *n) {
  uint64_t x = (uint64_t)(uintptr_t)n;
  x ^= x >> 31, x *= 0x9E3779B97F4A7C15ull, x ^= x >> 29;
  size_t k = (size_t)x & (m->cap - 1);
  while (m->key[k] && m->key[k] != n) k = (k + 1) & (m->cap - 1);
  return k;
}

static int64_t tree_size(size_memo *m, const ir_node *n, int64_t cap) {
  if (!n) return 0;
  if (m->cap) {
    size_t k = size_slot(m, n);
    if (m->key[k]) return m->val[k];
  }
  int64_t s = 1;
  for (int k = 0; k < n->n_kids && s < cap; k++) {
    s += tree_size(m, n->kids[k], cap);
    if (s > cap) s = cap;
  }
  if (2 * (m->n + 1) > m->cap) { /* grow (a failed allocation: no memo) */
    size_memo g = {calloc(m->cap ? 2 * m->cap : 256, sizeof *g.key),
                   calloc(m->cap ? 2 * m->cap : 256, sizeof *g.val),
                   m->cap ? 2 * m->cap : 256, 0};
    if (!g.key || !g.val) {
      free(g.key), free(g.val);
      return s;
    }
    for (size_t k = 0; k < m->cap; k++)
      if (m->key[k]) {
        size_t q = size_slot(&g, m->key[k]);
        g.key[q] = m->key[k], g.val[q] = m->val[k], g.n++;
      }
    free(m->key), free(m->val);
    *m = g;
  }
  size_t k = size_slot(m, n);
  m->key[k] = n, m->val[k] = s, m->n++;
  return s;
}

int64_t ir_tree_size(const ir_node *n, int64_t cap) {
  size_memo m = {NULL, NULL, 0, 0};
  int64_t s = tree_size(&m, n, cap);
  free(m.key), free(m.val);
  return s;
}
