/* test_ir_check.c: the one IR checker (compiler/ir/ir_check.c): every kind
 * of malformed tree is refused with a message naming the node, well-formed
 * trees pass, and a DAG whose unfolded tree has 2^60 paths is checked in
 * linear time (it would never finish otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "ir.h"

static arena *A;

static ir_node *K(int64_t v) { return ir_const(A, v, SPAN_NONE); }
static ir_node *L0(ir_op op) { return ir_new(A, op, 0, SPAN_NONE); }
static ir_node *B2(ir_op op, ir_node *x, ir_node *y) {
  return ir_new2(A, op, x, y, SPAN_NONE);
}

static ir_program prog(ir_node *root) {
  return (ir_program){.name = "t", .root = root, .arena = A};
}

static void test_well_formed(void **st) {
  (void)st;
  A = arena_new();
  ir_node *w = ir_new1(A, IR_WHERE, B2(IR_LE, L0(IR_VAR_J), L0(IR_VAR_I)), SPAN_NONE);
  ir_program p = prog(B2(IR_OR, B2(IR_WINDOW, K(2), K(0)), w));
  char err[128] = "";
  assert_true(ir_check(&p, err, sizeof err));
  arena_free(A);
}

static void test_malformed(void **st) {
  (void)st;
  A = arena_new();
  ir_node *rt = L0(IR_RUNTIME);
  rt->value = 3; /* no runtime table */
  ir_node *wrong_arity = B2(IR_WINDOW, K(1), K(1));
  wrong_arity->n_kids = 1;
  ir_node *bad_op = L0(IR_FULL);
  bad_op->op = (ir_op)(IR_N_OPS + 5);
  struct { ir_node *root; const char *at; } cases[] = {
      {B2(IR_WINDOW, L0(IR_CAUSAL), K(1)), "CAUSAL"}, /* pattern for an int */
      {B2(IR_OR, L0(IR_FULL), NULL), "missing"},
      {B2(IR_WINDOW, rt, K(1)), "RUNTIME"},
      {wrong_arity, "WINDOW"},
      {K(1), "CONST"}, /* an integer at the root */
      {bad_op, "?"},
      {NULL, "missing"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ir_program p = prog(cases[k].root);
    char err[128] = "";
    assert_false(ir_check(&p, err, sizeof err));
    assert_non_null(strstr(err, "malformed pattern IR"));
    assert_non_null(strstr(err, cases[k].at));
  }
  assert_false(ir_check(NULL, NULL, 0));
  arena_free(A);
}

static void test_dag_linear(void **st) {
  (void)st;
  A = arena_new();
  ir_node *p = L0(IR_CAUSAL);
  for (int k = 0; k < 60; k++) p = B2(IR_OR, p, B2(IR_AND, p, B2(IR_WINDOW, K(k), K(0))));
  ir_program pr = prog(p);
  char err[128] = "";
  assert_true(ir_check(&pr, err, sizeof err));
  /* and a fault deep under the shared part is still found */
  ir_node *q = B2(IR_WINDOW, L0(IR_FULL), K(0));
  for (int k = 0; k < 60; k++) q = B2(IR_OR, q, q);
  pr = prog(q);
  assert_false(ir_check(&pr, err, sizeof err));
  assert_non_null(strstr(err, "FULL"));
  arena_free(A);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_well_formed),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_dag_linear),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
