/* ir.c: the op tables and constructors of the checked pattern IR (ir.h). */
#include "ir.h"

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

bool ir_has_op(const ir_node *n, ir_op op) {
  if (!n) return false;
  if (n->op == op) return true;
  for (int k = 0; k < n->n_kids; k++)
    if (ir_has_op(n->kids[k], op)) return true;
  return false;
}

bool ir_is_data_dependent(const ir_program *p) {
  return ir_has_op(p->root, IR_TOPK);
}
