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

_Static_assert(IR_N_OPS <= 128, "ir_node.ops is a 128-bit set");

void ir_seal(ir_node *n) {
  if (!n || n->ops[0] || n->ops[1]) return;
  uint64_t m[2] = {0, 0};
  m[n->op / 64] |= (uint64_t)1 << (n->op % 64);
  for (int k = 0; k < n->n_kids; k++) {
    ir_seal(n->kids[k]);
    if (n->kids[k]) m[0] |= n->kids[k]->ops[0], m[1] |= n->kids[k]->ops[1];
  }
  n->ops[0] = m[0], n->ops[1] = m[1];
}

/* A constant expression of the sizes (dims are small trees). */
static bool dim_eval(const ir_node *n, const int64_t sz[6], int64_t *out) {
  int64_t x, y;
  switch (n->op) {
  case IR_CONST: *out = n->value; return true;
  case IR_SIZE_B: *out = sz[0]; return true;
  case IR_SIZE_H: *out = sz[1]; return true;
  case IR_SIZE_HKV: *out = sz[2]; return true;
  case IR_SIZE_LQ: *out = sz[3]; return true;
  case IR_SIZE_LK: *out = sz[4]; return true;
  case IR_SIZE_D: *out = sz[5]; return true;
  default: break;
  }
  if (n->n_kids < 1 || !dim_eval(n->kids[0], sz, &x)) return false;
  if (n->n_kids > 1 && !dim_eval(n->kids[1], sz, &y)) return false;
  switch (n->op) {
  case IR_NEG: return ar_neg(x, out) == AR_OK;
  case IR_ABS: return ar_abs(x, out) == AR_OK;
  case IR_ADD: return ar_add(x, y, out) == AR_OK;
  case IR_SUB: return ar_sub(x, y, out) == AR_OK;
  case IR_MUL: return ar_mul(x, y, out) == AR_OK;
  case IR_DIV: return y != 0 && ar_div(x, y, out) == AR_OK;
  case IR_MOD: return y != 0 && ar_mod(x, y, out) == AR_OK;
  case IR_MIN: *out = x < y ? x : y; return true;
  case IR_MAX: *out = x > y ? x : y; return true;
  case IR_SEL:
    if (!dim_eval(n->kids[x ? 1 : 2], sz, out)) return false;
    return true;
  default: return false;
  }
}

int64_t ir_input_dim(const ir_program *p, int k, int d, const int64_t sizes[6]) {
  const ir_input *in = &p->inputs[k];
  int64_t v;
  if (in->n_dims == 0) return d == 0 ? sizes[4] : -1; /* built by hand: int[] */
  if (d < 0 || d >= in->n_dims || !in->dims || !dim_eval(in->dims[d], sizes, &v))
    return -1;
  return v;
}

int64_t ir_input_len(const ir_program *p, int k, const int64_t sizes[6]) {
  int64_t n = 1;
  int nd = p->inputs[k].n_dims ? p->inputs[k].n_dims : 1;
  for (int d = 0; d < nd; d++) {
    int64_t v = ir_input_dim(p, k, d, sizes);
    if (v < 0 || __builtin_mul_overflow(n, v, &n)) return -1;
  }
  return n;
}

unsigned ir_features(const ir_program *p) {
  unsigned f = 0;
  const ir_node *r = p->root;
  if (p->score) f |= IR_FEAT_SCORE;
  for (int k = 0; k < p->n_inputs; k++) {
    const ir_input *in = &p->inputs[k];
    if (in->is_float) f |= IR_FEAT_FLOAT_IN;
    if (in->n_dims > 1 || (in->n_dims == 1 && in->dims[0]->op != IR_SIZE_LK))
      f |= IR_FEAT_SHAPED_IN;
  }
  if (ir_has_op(r, IR_INROW)) f |= IR_FEAT_ROW_SET;
  if (ir_has_op(r, IR_ROUTE)) f |= IR_FEAT_ROUTE;
  if (ir_has_op(r, IR_DIAG)) f |= IR_FEAT_DIAG;
  if (ir_has_op(r, IR_VAR_B) || ir_has_op(r, IR_SIZE_B) || ir_has_op(r, IR_SIZE_HKV) ||
      ir_has_op(r, IR_SIZE_D))
    f |= IR_FEAT_BATCH;
  return f;
}

bool ir_has_op(const ir_node *n, ir_op op) {
  if (!n) return false;
  if (n->ops[0] || n->ops[1]) return (n->ops[op / 64] >> (op % 64)) & 1;
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
