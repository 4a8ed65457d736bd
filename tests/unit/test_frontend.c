/* test_frontend.c: lexer, parser and sema through the public front end
 * (frontend.h) and the printer (ir_print): literals and comments,
 * precedence, folding and its overflow checks, types, imports and cycles,
 * -D overrides, merging of runtime/input parameters, externs, printing that
 * parses back, and inputs that must not crash (random bytes, truncation,
 * deep nesting, huge literals, exponential inlining). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "frontend.h"

typedef struct fx {
  diag *d;
  arena *a;
  fe_module *m;
  ir_program *p;
} fx;

static void fx_free(fx *f) {
  arena_free(f->a);
  diag_free(f->d);
}

static fx run_defs(const char *src, const char *name, const fe_define *defs, int n) {
  fx f = {diag_new(), arena_new(), NULL, NULL};
  f.m = fe_load_string(f.d, f.a, "t.pat", src);
  if (f.m) f.p = fe_instantiate(f.d, f.m, name, defs, n);
  return f;
}

static fx run(const char *src, const char *name) { return run_defs(src, name, NULL, 0); }

static char *print_node(const ir_program *p, const ir_node *n) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ir_print(f, p, n);
  fclose(f);
  return buf;
}

static char *print_prog(const ir_program *p) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ir_print_program(f, p);
  fclose(f);
  return buf;
}

/* The root of the last pattern of src, printed; fails on any error. */
static void expect_root(const char *src, const char *want) {
  fx f = run(src, NULL);
  if (!f.p) fail_msg("unexpected errors for %s:\n%s", src, diag_text(f.d));
  char *got = print_node(f.p, f.p->root);
  if (strcmp(got, want)) fail_msg("for %s\n  want %s\n  got  %s", src, want, got);
  free(got);
  fx_free(&f);
}

/* Loading or instantiating src fails and the diagnostics contain want. */
static void expect_error(const char *src, const char *want) {
  fx f = run(src, NULL);
  if (f.p) fail_msg("no error for %s", src);
  if (!strstr(diag_text(f.d), want))
    fail_msg("for %s\n  want an error containing: %s\n  got: %s", src, want, diag_text(f.d));
  assert_true(diag_n_errors(f.d) > 0);
  fx_free(&f);
}

static void test_literals_comments(void **state) {
  (void)state;
  expect_root("# a comment\npattern p = window(1_000) # trailing\n;", "window(1000, 1000)");
  expect_root("pattern p = window(9_223_372_036_854_775_807, 0);",
              "window(9223372036854775807, 0)");
  expect_root("let letx = 3; pattern pattern_ = window(letx);", "window(3, 3)");
  expect_root("pattern p = rows(1..3);", "rows(1 .. 3)");
  expect_root("pattern p=cols({0,2..4,-1});", "cols({0, 2 .. 4, -1})");
  expect_root("pattern p = rows({});", "rows({})");
  expect_root("pattern p = rows(5);", "rows({5})");
  expect_root("pattern p = full;\r\n", "full");
  expect_error("pattern p = window(9_223_372_036_854_775_808);", "integer literal out of range");
  expect_error("pattern p = window(1_);", "invalid integer literal '1_'");
  expect_error("pattern p = window(0x10);", "invalid integer literal '0x10'");
  expect_error("pattern p = window(1 . 2);", "unexpected character '.'");
  expect_error("pattern p = causal; `", "unexpected character '`'");
}

static void test_precedence(void **state) {
  (void)state;
  fx f = run("pattern p = full | causal - none & window(3);", NULL);
  assert_non_null(f.p);
  ir_node *r = f.p->root;
  assert_int_equal(r->op, IR_OR);
  assert_int_equal(r->kids[0]->op, IR_FULL);
  assert_int_equal(r->kids[1]->op, IR_AND);
  assert_int_equal(r->kids[1]->kids[0]->op, IR_MINUS);
  assert_int_equal(r->kids[1]->kids[1]->op, IR_WINDOW);
  fx_free(&f);
  expect_root("pattern p = !causal & full;", "!causal & full");
  expect_root("pattern p = !(causal & full);", "!(causal & full)");
  expect_root("pattern p = (full | causal) & none;", "(full | causal) & none");
  expect_root("pattern p = full - (causal - none);", "full - (causal - none)");
  expect_root("pattern p = full - causal - none;", "full - causal - none");
  expect_root("pattern p = where(i + j * 2 < 5 && i > 0 || j == 1);",
              "where(i + j * 2 < 5 && i > 0 || j == 1)");
  expect_root("pattern p = where((i + j) * 2 < 5 && (i > 0 || j == 1));",
              "where((i + j) * 2 < 5 && (i > 0 || j == 1))");
  expect_root("pattern p = where(i - (j - 1) == 0);", "where(i - (j - 1) == 0)");
  expect_root("pattern p = where((i < j) == (j < 4));", "where((i < j) == (j < 4))");
  expect_root("pattern p = where(i == j < 4);", "where(i == (j < 4))");
  expect_root("pattern p = where(i < j == j < 4);", "where((i < j) == (j < 4))");
  expect_root("pattern p = where(-i < -(j + 1));", "where(-i < -(j + 1))");
  expect_root("pattern p = where(!(i < j));", "where(!(i < j))");
  expect_root("pattern p = H > 1 ? causal : full | none;", "H > 1 ? causal : full | none");
  expect_root("pattern p = (H > 1 ? causal : full) | none;", "(H > 1 ? causal : full) | none");
  expect_root("pattern p = h == 0 ? causal : h == 1 ? full : none;",
              "h == 0 ? causal : h == 1 ? full : none");
  expect_root("pattern p = where((i < 2 ? j : i) > 0);", "where((i < 2 ? j : i) > 0)");
  expect_error("pattern p = where(i < j < 4);", "comparisons do not chain");
}

static void test_folding(void **state) {
  (void)state;
  expect_root("pattern p = window(2 + 3 * 4);", "window(14, 14)");
  expect_root("pattern p = window(-7 / 2 + 10);", "window(6, 6)");       /* floor: -4 */
  expect_root("pattern p = window((-7) % 3);", "window(2, 2)");
  expect_root("pattern p = window(7 % -3 + 5);", "window(3, 3)");       /* -2 */
  expect_root("pattern p = window(7 / -2 + 10);", "window(6, 6)");      /* -4 */
  expect_root("pattern p = window(min(3, 9), max(3, 9));", "window(3, 9)");
  expect_root("pattern p = window(abs(-5), abs(5));", "window(5, 5)");
  expect_root("pattern p = window(1 < 2, (2 <= 2) + (3 > 4) + (4 >= 4) + (1 == 1) + (1 != 1));",
              "window(1, 3)");
  expect_root("pattern p = window(!0 + !7, 2 && 3);", "window(1, 1)");
  expect_root("pattern p = window(0 || 0, 0 || -3);", "window(0, 1)");
  expect_root("pattern p = window(1 ? 5 : 6, 0 ? 5 : 6);", "window(5, 6)");
  /* a constant condition selects the arm before the other one is folded */
  expect_root("pattern p(w = 0) = window(w > 0 ? 100 / w : 0);", "window(0, 0)");
  expect_root("pattern p(w = 0) = window(w != 0 && 100 / w > 3);", "window(0, 0)");
  expect_root("pattern p(w = 0) = window(w == 0 || 100 / w > 3);", "window(1, 1)");
  expect_root("pattern p(w = 0) = w > 0 ? window(100 / w) : causal;", "causal");
  expect_root("pattern p = where(1);", "full");
  expect_root("pattern p = where(0);", "none");
  expect_root("pattern p = window(H / 2, h + 1);", "window(H / 2, h + 1)");
  expect_root("pattern p = window(Lq - Lk + 0 * H);", "window(Lq - Lk + 0 * H, Lq - Lk + 0 * H)");
  expect_root("pattern p = rows({-1, -3 .. -1});", "rows({-1, -3 .. -1})");
}

static void test_overflow(void **state) {
  (void)state;
  expect_error("pattern p = window(9223372036854775807 + 1);", "integer overflow");
  expect_error("pattern p = window(-(-9223372036854775807 - 1));", "integer overflow");
  expect_error("pattern p = window((-9223372036854775807 - 1) / -1);", "integer overflow");
  expect_error("pattern p = window(abs(-9223372036854775807 - 1));", "integer overflow");
  expect_error("pattern p = window(3037000500 * 3037000500);", "integer overflow");
  expect_error("pattern p = window(0 - 9223372036854775807 - 2);", "integer overflow");
  expect_error("pattern p = window(1 / 0);", "division by zero");
  expect_error("pattern p = window(1 % 0);", "remainder by zero");
  expect_root("pattern p = window((-9223372036854775807 - 1) % -1 + 1);", "window(1, 1)");
  expect_root("pattern p = window(3037000499 * 3037000499 - 9223372030926249001);",
              "window(0, 0)");
  /* errors with the location of the expression */
  fx f = run("let a = 5;\npattern p = window(a - 2 * a);", NULL);
  assert_null(f.p);
  assert_non_null(strstr(diag_text(f.d), "t.pat:2:20: error: a window size must be "
                                         "non-negative, got -5"));
  fx_free(&f);
}

static void test_sizes(void **state) {
  (void)state;
  expect_error("pattern p = window(1, -1);", "window size must be non-negative, got -1");
  expect_error("pattern p = dilated(-1, 2);", "must be non-negative, got -1");
  expect_error("pattern p = dilated(1, 0);", "dilation must be at least 1, got 0");
  expect_error("pattern p = block(0);", "block size must be at least 1");
  expect_error("pattern p = stride(-2);", "stride must be at least 1, got -2");
  expect_error("pattern p = random(-1, 3);", "random keys must be non-negative");
  expect_error("pattern p = topk(-1, full);", "must be non-negative, got -1");
  expect_error("pattern p = blocks(0) { full };", "must be at least 1, got 0");
  /* run-time values are left to the backends */
  expect_root("pattern p(runtime n = -3) = window(n) | block(h - 1);", "window(n, n) | block(h - 1)");
  expect_root("pattern p = random(0, -5) | topk(0, causal) | dilated(0, 1);",
              "random(0, -5) | topk(0, causal) | dilated(0, 1)");
  expect_root("pattern p = blocks(64) { topk(4, causal) | random(2, 7) };",
              "blocks(64) { topk(4, causal) | random(2, 7) }");
}

static void test_types(void **state) {
  (void)state;
  expect_error("pattern p = window(causal);", "must be an integer, but this is a pattern");
  expect_error("pattern p = 3;", "must be a pattern, but this is an integer");
  expect_error("pattern p = causal + 1;", "'+' needs integer operands");
  expect_error("pattern p = causal - 1;", "'-' needs two numbers or two patterns");
  expect_error("pattern p = causal | 3;", "'|' needs two patterns or two integers");
  expect_error("pattern p = causal && full;", "use '&' to intersect");
  expect_error("pattern p = -causal;", "unary '-' needs an integer");
  expect_error("pattern p = H ? causal : 1;", "arms of '?:' must have the same type");
  expect_error("pattern p = causal ? full : none;", "condition of '?:' must be an integer");
  expect_error("pattern p = window(0 .. 3);", "index set is only allowed");
  expect_error("pattern p = topk(causal, 3);", "must be an integer");
  expect_error("pattern p = topk(3, 3);", "must be a pattern");
  expect_error("pattern p = blocks(causal) { full };", "must be an integer");
  expect_error("pattern p = window(i);", "'i' can only be used inside where");
  expect_error("pattern p = H > j ? full : none;", "'j' can only be used inside where");
  expect_error("let d = i - j; pattern p = window(d);", "'d' can only be used inside where");
  expect_root("let d = i - j; pattern p = where(d < 3 && d > -3);",
              "where(i - j < 3 && i - j > -3)");
  expect_error("pattern p = window;", "'window' needs arguments");
  expect_error("pattern p = min(1);", "'min' takes 2 arguments, got 1");
  expect_error("pattern p = window(w = 3);", "takes no named arguments");
  expect_error("pattern p = i(3);", "'i' is a variable, not a function");
  expect_error("pattern p = int;", "type name");
  expect_error("let window = 3; pattern p = full;", "'window' is a built-in primitive");
  expect_error("pattern p(H = 2) = full;", "'H' is a built-in variable");
  expect_error("let x = 1; let x = 2; pattern p = full;", "'x' is already defined");
  expect_error("pattern p(w) = w(3);", "'w' is a parameter; it cannot be called");
  expect_error("pattern p(w) = q[3];", "unknown name 'q'");
  expect_error("pattern p(w) = where(w[3] > 0);", "'w' is not an input array");
  expect_error("pattern p(w = x) = full;", "unknown name 'x'");
  expect_error("pattern p(w = g, g = 1) = full;", "only use parameters declared before");
  expect_error("pattern p(runtime n = 2, w = n) = full;", "cannot use runtime scalar 'n'");
  expect_error("let a = b; let b = a; pattern p = window(a);", "defined in terms of itself");
  expect_error("pattern a = b; pattern b = a;", "recursion is not allowed");
  expect_error("pattern p = causal; pattern q = p(1);", "too many arguments to 'p' (it takes 0)");
  expect_error("pattern p = wndow(3);", "did you mean 'window'?");
}

static void test_calls(void **state) {
  (void)state;
  const char *lib = "pattern lf(w = 512, g = 1) = window(w / 2) | global(0 .. g);\n";
  char src[512];
  snprintf(src, sizeof src, "%spattern p = lf(64) & lf(g = 2) & lf(8, g = 3) & lf(w = 4, g = 0) & lf;", lib);
  expect_root(src, "(window(32, 32) | global(0 .. 1)) & (window(256, 256) | global(0 .. 2)) & "
                   "(window(4, 4) | global(0 .. 3)) & (window(2, 2) | global(0 .. 0)) & "
                   "(window(256, 256) | global(0 .. 1))");
  /* arguments may be any integer expression without i and j */
  snprintf(src, sizeof src, "%spattern p(runtime n = 1) = lf(w = h * 2 + n, g = H);", lib);
  expect_root(src, "window((h * 2 + n) / 2, (h * 2 + n) / 2) | global(0 .. H)");
  snprintf(src, sizeof src, "%spattern p = lf(g = 1, g = 2);", lib);
  expect_error(src, "parameter 'g' of 'lf' is given twice");
  snprintf(src, sizeof src, "%spattern p = lf(3, w = 2);", lib);
  expect_error(src, "given twice");
  snprintf(src, sizeof src, "%spattern p = lf(x = 2);", lib);
  expect_error(src, "the compile-time parameters of 'lf' are 'w', 'g'");
  snprintf(src, sizeof src, "%spattern p = lf(0 .. 2);", lib);
  expect_error(src, "a range is only allowed");
  snprintf(src, sizeof src, "%spattern p = lf(causal);", lib);
  expect_error(src, "must be an integer, but this is a pattern");
  expect_error("pattern q(w) = window(w); pattern p = q;", "missing value for parameter 'w' of 'q'");
  /* defaults may use earlier parameters; the callee's scope is its own */
  expect_root("let w = 100; pattern q(a = 2, b = a * 3) = window(a, b); pattern p = q(5) | window(w);",
              "window(5, 15) | window(100, 100)");
  /* a called pattern's parameters shadow top-level lets */
  expect_root("let w = 100; pattern q(w = 1) = window(w); pattern p = q(7);", "window(7, 7)");
}

static void test_defines(void **state) {
  (void)state;
  const char *src = "pattern a = full;\npattern lf(w = 512, g = 1, half = w / 2, runtime n = 4) = "
                    "window(half) | global(0 .. g) | cols(0 .. n);\n";
  fe_define defs[] = {{"w", 100}, {"g", 3}};
  fx f = run_defs(src, "lf", defs, 2);
  assert_non_null(f.p);
  char *s = print_prog(f.p);
  assert_string_equal(s, "pattern lf(w = 100, g = 3, half = 50, runtime n = 4) =\n"
                         "    window(50, 50) | global(0 .. 3) | cols(0 .. n);\n");
  free(s);
  assert_int_equal(f.p->n_params, 3);
  assert_string_equal(f.p->params[2].name, "half");
  assert_int_equal(f.p->params[2].value, 50);
  assert_int_equal(f.p->n_runtime, 1);
  assert_true(f.p->runtime[0].has_deflt);
  assert_int_equal(f.p->runtime[0].deflt, 4);
  assert_ptr_equal(f.p->diag, f.d);
  /* the same module instantiates again with other values */
  fe_define d2[] = {{"half", -1}};
  ir_program *p2 = fe_instantiate(f.d, f.m, "lf", d2, 1);
  assert_null(p2);
  assert_non_null(strstr(diag_text(f.d), "window size must be non-negative, got -1"));
  assert_non_null(strstr(diag_text(f.d), "\nnote: while instantiating 'lf' with -D half=-1\n"));
  diag_clear(f.d);
  fe_define d3[] = {{"w", 10}, {"w", 20}};  /* the last one wins */
  p2 = fe_instantiate(f.d, f.m, "lf", d3, 2);
  assert_non_null(p2);
  assert_int_equal(p2->params[0].value, 20);
  assert_int_equal(p2->root->kids[0]->kids[0]->kids[0]->value, 10);
  fe_define bad[] = {{"x", 1}};
  assert_null(fe_instantiate(f.d, f.m, "lf", bad, 1));
  assert_non_null(strstr(diag_text(f.d), "error: pattern 'lf' has no parameter 'x'"));
  assert_non_null(strstr(diag_text(f.d), "note: the compile-time parameters of 'lf' are 'w', 'g', 'half'"));
  assert_null(strstr(diag_text(f.d), "while instantiating"));
  fe_define rt[] = {{"n", 1}};
  assert_null(fe_instantiate(f.d, f.m, "lf", rt, 1));
  assert_non_null(strstr(diag_text(f.d), "'n' is a runtime scalar of 'lf'"));
  assert_null(fe_instantiate(f.d, f.m, "zz", NULL, 0));
  assert_non_null(strstr(diag_text(f.d), "no pattern 'zz' in 't.pat'; it defines: a, lf"));
  /* NULL picks the last pattern */
  ir_program *last = fe_instantiate(f.d, f.m, NULL, NULL, 0);
  assert_non_null(last);
  assert_string_equal(last->name, "lf");
  assert_int_equal(fe_n_patterns(f.m), 2);
  assert_string_equal(fe_pattern_name(f.m, 0), "a");
  assert_string_equal(fe_pattern_signature(f.m, 1),
                      "lf(w = 512, g = 1, half = w / 2, runtime n = 4)");
  assert_null(fe_pattern_name(f.m, 2));
  fx_free(&f);
  f = run("pattern p(w = 2 *   # two\n\t 3, input d: int[], runtime r) = full;", NULL);
  assert_non_null(f.p);
  assert_string_equal(fe_pattern_signature(f.m, 0), "p(w = 2 * 3, input d: int[], runtime r)");
  fx_free(&f);

  /* a parameter without a default needs a -D */
  f = run("pattern p(w) = window(w);", NULL);
  assert_null(f.p);
  assert_non_null(f.m);
  assert_non_null(strstr(diag_text(f.d), "no value for parameter 'w' of 'p'"));
  fe_define w5[] = {{"w", 5}};
  diag_clear(f.d);
  assert_non_null(fe_instantiate(f.d, f.m, NULL, w5, 1));
  fx_free(&f);

  /* only lets: loading works, instantiating says why not */
  f = run("let w = 3;\n", NULL);
  assert_non_null(f.m);
  assert_null(f.p);
  assert_int_equal(fe_n_patterns(f.m), 0);
  assert_string_equal(diag_text(f.d), "error: 't.pat' defines no pattern (only lets, imports or externs)\n");
  fx_free(&f);
}

static void test_parse_define(void **state) {
  (void)state;
  arena *a = arena_new();
  fe_define d;
  assert_int_equal(fe_parse_define("w=1_024", a, &d), 0);
  assert_string_equal(d.name, "w");
  assert_int_equal(d.value, 1024);
  assert_int_equal(fe_parse_define("_x2=-5", a, &d), 0);
  assert_int_equal(d.value, -5);
  assert_int_equal(fe_parse_define("g=+7", a, &d), 0);
  assert_int_equal(d.value, 7);
  assert_int_equal(fe_parse_define("m=-9223372036854775808", a, &d), 0);
  assert_true(d.value == INT64_MIN);
  assert_int_equal(fe_parse_define("m=9223372036854775807", a, &d), 0);
  assert_true(d.value == INT64_MAX);
  const char *bad[] = {"w", "=3", "w=", "w=x", "w=1_", "w=_1", "w=1__0", "2w=3", "w-x=3",
                       "w=9223372036854775808", "w=-9223372036854775809", "w=1 ", "w= 1",
                       "w=--1", "w=99999999999999999999999"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    if (fe_parse_define(bad[k], a, &d) != -1) fail_msg("accepted %s", bad[k]);
  arena_free(a);
}

static void test_merge_and_extern(void **state) {
  (void)state;
  const char *src =
      "extern fn near(int, int) -> bool;\n"
      "extern fn unused(int) -> bool;\n"
      "pattern docs(input doc: int[]) = causal & where(doc[i] == doc[j]);\n"
      "pattern sinks(runtime n = 4) = cols(0 .. n);\n"
      "pattern both(runtime n = 2, input doc: int[], input seg: int[]) =\n"
      "    docs | sinks | where(near(i, j + n) && seg[j] > 0) | docs;\n";
  fx f = run(src, "both");
  if (!f.p) fail_msg("%s", diag_text(f.d));
  assert_int_equal(f.p->n_runtime, 1);
  assert_string_equal(f.p->runtime[0].name, "n");
  assert_int_equal(f.p->runtime[0].deflt, 2);  /* the instantiated pattern's default */
  assert_int_equal(f.p->n_inputs, 2);
  assert_string_equal(f.p->inputs[0].name, "doc");
  assert_string_equal(f.p->inputs[1].name, "seg");
  assert_int_equal(f.p->n_externs, 1);
  assert_string_equal(f.p->externs[0].name, "near");
  assert_int_equal(f.p->externs[0].n_args, 2);
  assert_true(ir_has_op(f.p->root, IR_EXTERN));
  assert_false(ir_is_data_dependent(f.p));
  char *s = print_prog(f.p);
  assert_string_equal(s,
                      "extern fn near(int, int) -> bool;\n"
                      "pattern both(runtime n = 2, input doc: int[], input seg: int[]) =\n"
                      "    causal & where(doc[i] == doc[j]) | cols(0 .. n) | "
                      "where(near(i, j + n) && seg[j] > 0) | causal & where(doc[i] == doc[j]);\n");
  free(s);
  fx_free(&f);
  f = run(src, "sinks");
  assert_non_null(f.p);
  assert_int_equal(f.p->runtime[0].deflt, 4);
  assert_int_equal(f.p->n_externs, 0);
  fx_free(&f);
  expect_error("pattern a(runtime doc) = cols(0 .. doc);\n"
               "pattern p(input doc: int[]) = a | where(doc[i] == 0);",
               "'doc' is a runtime scalar here but an input array elsewhere");
  expect_error("pattern a(w = 1) = window(w);\npattern p(runtime w = 2) = a(w = 3) | window(w);\n"
               "pattern q(w = 1, runtime n) = a | cols(0 .. n);\n"
               "pattern r(n = 1) = q;",
               "runtime scalar 'n' has the name of a compile-time parameter");
  expect_error("extern fn f(int) -> bool; pattern p = window(f(1));", "only be called inside where");
  expect_error("extern fn f(int) -> bool; pattern p = where(f(1, 2));", "takes 1 argument, got 2");
  expect_error("extern fn f(int) -> bool; pattern p = where(f);", "must be called with 1 argument");
  expect_error("extern fn f(int) -> int; pattern p = full;", "must return bool");
  expect_error("extern fn f(float) -> bool; pattern p = full;", "must have type int");
  expect_error("extern fn f(int) -> bool; pattern p = where(f(causal));", "must be an integer");
  expect_root("extern fn f() -> bool; pattern p = where(f());", "where(f())");
  expect_error("pattern p(input d: int[]) = where(d[causal] > 0);", "must be an integer");
  expect_error("pattern p(input d: int[]) = where(d > 0);", "must be indexed");
  expect_error("pattern p(input d: int[]) = window(d[0]);", "only be read inside where");
  expect_error("pattern p(input d: bool[]) = full;", "must have type int[...] or float[...]");
  expect_error("pattern p(a = 1, a = 2) = full;", "declared twice");
  expect_error("pattern s(runtime n) = cols(0 .. n); pattern p = s(n = 3);",
               "only compile-time parameters can be bound in a call");
  expect_error("pattern p(runtime n = h) = full;", "must be a constant");
  expect_error("pattern p(w = H) = window(w);", "not a compile-time constant");
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void rm_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_imports(void **state) {
  (void)state;
  char dir[] = "/tmp/spat_fe_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[600];
  snprintf(sub, sizeof sub, "%s/lib", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  write_file(dir, "lib/base.pat", "let w = 16;\npattern local(n = w) = window(n);\n");
  write_file(dir, "lib/a.pat", "import \"base.pat\";\npattern pa = local(2);\n");
  write_file(dir, "lib/b.pat", "import \"base.pat\";\npattern pb = local;\n");
  write_file(dir, "main.pat", "import \"lib/a.pat\";\nimport \"lib/b.pat\";\n"
                              "pattern m = pa | pb | window(w);\n");
  char path[600];
  snprintf(path, sizeof path, "%s/main.pat", dir);
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_file(d, a, path);
  if (!m) fail_msg("%s", diag_text(d));
  assert_int_equal(fe_n_patterns(m), 1);  /* patterns of the main file only */
  ir_program *p = fe_instantiate(d, m, NULL, NULL, 0);
  assert_non_null(p);
  char *s = print_node(p, p->root);
  assert_string_equal(s, "window(2, 2) | window(16, 16) | window(16, 16)");
  free(s);
  /* an imported pattern can be selected by name */
  p = fe_instantiate(d, m, "local", (fe_define[]){{"n", 3}}, 1);
  assert_non_null(p);
  assert_string_equal(p->name, "local");
  assert_string_equal(diag_text(d), "");
  arena_free(a);
  diag_free(d);

  /* a cycle, reported with its chain */
  write_file(dir, "c1.pat", "import \"c2.pat\";\npattern p = full;\n");
  write_file(dir, "c2.pat", "let x = 1;\nimport \"c1.pat\";\n");
  snprintf(path, sizeof path, "%s/c1.pat", dir);
  d = diag_new();
  a = arena_new();
  assert_null(fe_load_file(d, a, path));
  char want[2048];
  snprintf(want, sizeof want,
           "%s/c2.pat:2:8: error: import cycle: %s/c1.pat -> %s/c2.pat -> %s/c2.pat/../c1.pat",
           dir, dir, dir, dir);
  (void)want;
  assert_non_null(strstr(diag_text(d), "error: import cycle: "));
  snprintf(want, sizeof want, "%s/c2.pat:2:8: error: import cycle: %s/c1.pat -> %s/c2.pat -> %s/c1.pat\n",
           dir, dir, dir, dir);
  assert_non_null(strstr(diag_text(d), want));
  snprintf(want, sizeof want, "%s/c1.pat:1:8: note: '%s/c1.pat' imports '%s/c2.pat' here\n",
           dir, dir, dir);
  assert_non_null(strstr(diag_text(d), want));
  arena_free(a);
  diag_free(d);

  /* self-import, a missing file, errors inside an imported file */
  write_file(dir, "self.pat", "import \"self.pat\";\npattern p = full;\n");
  write_file(dir, "miss.pat", "\n  import \"nope/x.pat\";\npattern p = full;\n");
  write_file(dir, "bad.pat", "let q = ;\n");
  write_file(dir, "usebad.pat", "import \"bad.pat\";\npattern p = full;\n");
  const char *cases[][2] = {
      {"self.pat", "self.pat:1:8: error: import cycle: "},
      {"miss.pat", "miss.pat:2:10: error: cannot read '"},
      {"usebad.pat", "bad.pat:1:9: error: unexpected ';', expected an expression"},
  };
  for (int k = 0; k < 3; k++) {
    snprintf(path, sizeof path, "%s/%s", dir, cases[k][0]);
    d = diag_new();
    a = arena_new();
    assert_null(fe_load_file(d, a, path));
    if (!strstr(diag_text(d), cases[k][1])) fail_msg("%s: %s", cases[k][0], diag_text(d));
    arena_free(a);
    diag_free(d);
  }
  /* a missing main file */
  d = diag_new();
  a = arena_new();
  snprintf(path, sizeof path, "%s/none.pat", dir);
  assert_null(fe_load_file(d, a, path));
  assert_non_null(strstr(diag_text(d), "error: cannot read '"));
  arena_free(a);
  diag_free(d);
  rm_tree(dir);
}

/* Printing a program and loading the text again gives the same text. */
static void roundtrip(const char *src, const char *name) {
  fx f = run(src, name);
  if (!f.p) fail_msg("%s", diag_text(f.d));
  char *s1 = print_prog(f.p);
  fx g = run(s1, NULL);
  if (!g.p) fail_msg("printed text does not load:\n%s\n%s", s1, diag_text(g.d));
  char *s2 = print_prog(g.p);
  if (strcmp(s1, s2)) fail_msg("round trip differs:\n%s\n%s", s1, s2);
  free(s1);
  free(s2);
  fx_free(&f);
  fx_free(&g);
}

static void test_roundtrip(void **state) {
  (void)state;
  roundtrip("pattern p(w = 512, g = 1) = window(w / 2) | global(0 .. g);", NULL);
  roundtrip("extern fn f(int, int, int) -> bool;\n"
            "pattern p(runtime n = 4, input doc: int[], s = -3) = causal & (cols(0 .. n) | "
            "window(1024, 0)) | where(doc[i] == doc[j] && f(i, j, h) || -i < s) - "
            "!rows({0, 2 .. 4, -1, -n}) & (h % 2 == 0 ? dilated(4, h + 1) : stride(3)) | "
            "blocks(16) { topk(2, random(3, 42) - block(4)) } | "
            "where((i < j) == (j < 4) ? abs(i - j) > min(n, 3) : max(i, -j) != 0);",
            NULL);
  roundtrip("pattern p = window(-(H - 2), 5) | rows({(-9223372036854775807 - 1) / 2});", NULL);
  roundtrip("pattern p = where(-(-i) > 0 - -1);", NULL);
  roundtrip("pattern p(w = -9223372036854775807 - 1, runtime n = -9223372036854775807 - 1) = "
            "window(n) | where(i > w);", NULL);
  roundtrip("let a = 1; pattern p(input x: int[], runtime y) = "
            "where(x[i + 1] != x[-j] || y > 0 ? 1 : 0);", NULL);
  /* language v2 scores with float inputs: integers in float context */
  roundtrip("pattern p(input slope: float[H]) = causal with score s - slope[h] * (i - j);", NULL);
  roundtrip("pattern p(input rel: float[H, 2 * Lk - 1], input a: float[3]) = full with score "
            "(i - j) % 2 == 0 ? rel[h, i - j + Lk - 1] * (i >= j) : -inf + a[2] / (1 + abs(i - j)) "
            "- -s + min(s, 2) * exp(-(h + 1) * 8.0 / H);", NULL);
}

/* Every pattern of the library loads, instantiates with its defaults and
 * prints to text that loads back to the same program. */
static void library_dir(const char *dname, int *n_files, int *n_patterns) {
  DIR *dir = opendir(dname);
  if (!dir) fail_msg("%s/ not found (run from the repository root)", dname);
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".pat")) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dname, e->d_name);
    diag *d = diag_new();
    arena *a = arena_new();
    fe_module *m = fe_load_file(d, a, path);
    if (!m) fail_msg("%s", diag_text(d));
    (*n_files)++;
    for (int k = 0; k < fe_n_patterns(m); k++) {
      ir_program *p = fe_instantiate(d, m, fe_pattern_name(m, k), NULL, 0);
      if (!p) continue;  /* a parameter without default */
      (*n_patterns)++;
      char *s1 = print_prog(p);
      fx g = run(s1, NULL);
      if (!g.p) fail_msg("%s: printed text does not load:\n%s\n%s", path, s1, diag_text(g.d));
      char *s2 = print_prog(g.p);
      assert_string_equal(s1, s2);
      free(s1);
      free(s2);
      fx_free(&g);
    }
    arena_free(a);
    diag_free(d);
  }
  closedir(dir);
}

/* ... and those of language version 2 (float inputs, scores) too. */
static void test_library(void **state) {
  (void)state;
  int n_files = 0, n_patterns = 0, v1;
  library_dir("patterns", &n_files, &n_patterns);
  v1 = n_patterns;
  library_dir("patterns/v2", &n_files, &n_patterns);
  library_dir("tests/gym", &n_files, &n_patterns);
  assert_true(v1 > 0);
  assert_true(n_patterns > v1);
}

static void test_other_diag(void **state) {
  (void)state;
  fx f = run("pattern p(w) = window(w);", NULL);
  assert_non_null(f.m);
  diag *other = diag_new();
  assert_null(fe_instantiate(other, f.m, "p", NULL, 0));
  assert_int_equal(diag_n_errors(other), 1);
  assert_non_null(strstr(diag_text(other), "no value for parameter 'w' of 'p'"));
  diag_free(other);
  fx_free(&f);
  /* odd but legal inputs */
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_string(d, a, NULL, NULL);
  assert_non_null(m);
  assert_int_equal(fe_n_patterns(m), 0);
  assert_null(fe_pattern_signature(m, 0));
  assert_null(fe_instantiate(d, m, NULL, NULL, 0));
  assert_null(fe_instantiate(d, NULL, NULL, NULL, 0));
  assert_int_equal(fe_n_patterns(NULL), 0);
  arena_free(a);
  diag_free(d);
}

static unsigned rng_next(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 16;
}

/* Whatever the input, loading returns (module or NULL with an error). */
static void must_survive(const char *text, size_t len) {
  char *buf = malloc(len + 1);
  memcpy(buf, text, len);
  buf[len] = 0;
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_string(d, a, "fuzz.pat", buf);
  if (m) {
    for (int k = 0; k < fe_n_patterns(m); k++) fe_instantiate(d, m, fe_pattern_name(m, k), NULL, 0);
  } else {
    assert_true(diag_n_errors(d) > 0);
    assert_true(strlen(diag_text(d)) > 0);
  }
  arena_free(a);
  diag_free(d);
  free(buf);
}


/* Random well-typed programs: each loads, and its printed form loads back
 * to the same text (or it fails only with a constant-value error). */
typedef struct gen {
  unsigned s;
  char buf[1 << 14];
  int pos;
} gen;

static unsigned gen_r(gen *g, unsigned n) { return rng_next(&g->s) % n; }

static void gen_out(gen *g, const char *s) {
  int n = (int)strlen(s);
  if (g->pos + n < (int)sizeof g->buf - 1) {
    memcpy(g->buf + g->pos, s, (size_t)n);
    g->pos += n;
    g->buf[g->pos] = 0;
  }
}

static void gen_int(gen *g, int d, bool w) {
  static const char *atoms[] = {"0", "1", "7", "-3", "h", "H", "Lq", "Lk", "n", "c", "base"};
  static const char *watoms[] = {"i", "j", "doc[i]", "doc[j]", "f(i, j)", "same"};
  static const char *ops[] = {"+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||"};
  if (d <= 0 || gen_r(g, 3) == 0) {
    gen_out(g, w && gen_r(g, 2) ? watoms[gen_r(g, 6)] : atoms[gen_r(g, 11)]);
    return;
  }
  switch (gen_r(g, 6)) {
  case 0: gen_out(g, "-("); gen_int(g, d - 1, w); gen_out(g, ")"); break;
  case 1: gen_out(g, "!"); gen_int(g, d - 1, w); break;
  case 2:
    gen_out(g, "(");
    gen_int(g, d - 1, w);
    gen_out(g, " ");
    gen_out(g, ops[gen_r(g, 13)]);
    gen_out(g, " ");
    gen_int(g, d - 1, w);
    gen_out(g, ")");
    break;
  case 3:
    gen_out(g, gen_r(g, 2) ? "min(" : "max(");
    gen_int(g, d - 1, w);
    gen_out(g, ", ");
    gen_int(g, d - 1, w);
    gen_out(g, ")");
    break;
  case 4:
    gen_out(g, "(");
    gen_int(g, d - 1, w);
    gen_out(g, " ? ");
    gen_int(g, d - 1, w);
    gen_out(g, " : ");
    gen_int(g, d - 1, w);
    gen_out(g, ")");
    break;
  default: gen_out(g, "abs("); gen_int(g, d - 1, w); gen_out(g, ")");
  }
}

static void gen_pat(gen *g, int d) {
  static const char *atoms[] = {"full", "none", "causal", "window(4)", "window(c, 2)",
                                "dilated(3, 2)", "block(8)", "stride(3)",
                                "rows({0, 2 .. 4, -1})", "cols(0 .. n)", "global(1)",
                                "random(2, 9)", "lib(c + 1)", "lib", "local"};
  if (d <= 0 || gen_r(g, 4) == 0) {
    if (gen_r(g, 8) == 0) {
      gen_out(g, "where(");
      gen_int(g, 3, true);
      gen_out(g, ")");
    } else {
      gen_out(g, atoms[gen_r(g, 15)]);
    }
    return;
  }
  static const char *ops[] = {" | ", " & ", " - "};
  switch (gen_r(g, 6)) {
  case 0: gen_out(g, "!"); gen_pat(g, d - 1); break;
  case 1:
  case 2:
    gen_out(g, "(");
    gen_pat(g, d - 1);
    gen_out(g, ops[gen_r(g, 3)]);
    gen_pat(g, d - 1);
    gen_out(g, ")");
    break;
  case 3:
    gen_out(g, "(");
    gen_int(g, 2, false);
    gen_out(g, " ? ");
    gen_pat(g, d - 1);
    gen_out(g, " : ");
    gen_pat(g, d - 1);
    gen_out(g, ")");
    break;
  case 4: gen_out(g, "blocks(4) { "); gen_pat(g, d - 1); gen_out(g, " }"); break;
  default: gen_out(g, "topk(3, "); gen_pat(g, d - 1); gen_out(g, ")");
  }
}

static void test_random_programs(void **state) {
  (void)state;
  gen g = {.s = 777};
  int loaded = 0;
  for (int it = 0; it < 800; it++) {
    g.pos = 0;
    g.buf[0] = 0;
    gen_out(&g, "extern fn f(int, int) -> bool;\nlet base = 5;\nlet same = i / 4 == j / 4;\n"
                "let local = window(base) & causal;\n"
                "pattern lib(w = 2, runtime n = 3) = window(w) | cols(0 .. n);\n"
                "pattern p(c = 3, runtime n = 1, input doc: int[]) = ");
    gen_pat(&g, 4);
    gen_out(&g, ";\n");
    fx f = run(g.buf, "p");
    if (!f.p) {
      const char *t = diag_text(f.d);
      if (!strstr(t, "constant expression") && !strstr(t, "must be"))
        fail_msg("unexpected error for\n%s\n%s", g.buf, t);
      fx_free(&f);
      continue;
    }
    loaded++;
    char *s1 = print_prog(f.p);
    fx r = run(s1, NULL);
    if (!r.p) fail_msg("printed text does not load:\n%s\n%s", s1, diag_text(r.d));
    char *s2 = print_prog(r.p);
    if (strcmp(s1, s2)) fail_msg("round trip differs:\n%s\n%s", s1, s2);
    free(s1);
    free(s2);
    fx_free(&r);
    fx_free(&f);
  }
  assert_true(loaded > 600);
}

static void test_fuzz(void **state) {
  (void)state;
  const char *seed =
      "import \"nothing_here.pat\";\nlet w = 256;\nlet local = window(w);\n"
      "extern fn f(int) -> bool;\n"
      "pattern longformer(w = 512, g = 1) = window(w / 2) | global(0 .. g);\n"
      "pattern docs(input doc: int[]) = causal & where(doc[i] == doc[j] && f(i));\n"
      "pattern sinks(runtime n = 4) = causal & (cols({0 .. n, -1}) | window(1024, 0));\n"
      "pattern all = blocks(4) { topk(2, local) } | (h > 1 ? docs : sinks) | longformer(g = 2);\n";
  size_t n = strlen(seed);
  unsigned s = 12345;
  /* every truncation */
  for (size_t k = 0; k <= n; k++) must_survive(seed, k);
  /* random mutations */
  char *buf = malloc(n + 1);
  const char alphabet[] = "()[]{},;=+-*/%<>!&|?:.#\" \n\tabijhwn019_\x80\xc3\xff";
  for (int round = 0; round < 2000; round++) {
    memcpy(buf, seed, n);
    int edits = 1 + (int)(rng_next(&s) % 4);
    for (int e = 0; e < edits; e++) {
      size_t at = rng_next(&s) % n;
      buf[at] = alphabet[rng_next(&s) % (sizeof alphabet - 1)];
    }
    must_survive(buf, n);
  }
  /* random bytes */
  for (int round = 0; round < 300; round++) {
    size_t len = rng_next(&s) % 200;
    for (size_t k = 0; k < len; k++) buf[k] = (char)(1 + rng_next(&s) % 255);
    must_survive(buf, len < n ? len : n);
  }
  free(buf);
}

static void test_limits(void **state) {
  (void)state;
  size_t n = 100000;
  char *buf = malloc(3 * n + 100);
  /* deep parentheses */
  char *p = buf + sprintf(buf, "pattern p = ");
  for (size_t k = 0; k < n; k++) *p++ = '(';
  strcpy(p, "full");
  p += 4;
  for (size_t k = 0; k < n; k++) *p++ = ')';
  strcpy(p, ";");
  expect_error(buf, "nesting too deep");
  /* deep prefix operators */
  p = buf + sprintf(buf, "pattern p = ");
  for (size_t k = 0; k < n; k++) *p++ = '!';
  strcpy(p, "full;");
  expect_error(buf, "nesting too deep");
  /* a long left-associative chain */
  p = buf + sprintf(buf, "pattern p = full");
  for (size_t k = 0; k < n / 4; k++) p += sprintf(p, "|full");
  strcpy(p, ";");
  expect_error(buf, "nested too deeply");
  /* a long but acceptable expression */
  p = buf + sprintf(buf, "pattern p = full");
  for (size_t k = 0; k < 300; k++) p += sprintf(p, "|full");
  strcpy(p, ";");
  fx f = run(buf, NULL);
  assert_non_null(f.p);
  fx_free(&f);
  /* exponential inlining is stopped */
  p = buf + sprintf(buf, "let a0 = window(1);\n");
  for (int k = 1; k < 40; k++) p += sprintf(p, "let a%d = a%d | a%d;\n", k, k - 1, k - 1);
  sprintf(p, "pattern p = a39;\n");
  expect_error(buf, "pattern too large after inlining");
  /* a long chain of lets: constant lets are evaluated once */
  p = buf + sprintf(buf, "let a0 = 1;\n");
  for (int k = 1; k < 5000; k++) p += sprintf(p, "let a%d = a%d + 1;\n", k, k - 1);
  sprintf(p, "pattern p = window(a4999);\n");
  expect_root(buf, "window(5000, 5000)");
  /* the same chain declared backwards nests too deeply */
  p = buf + sprintf(buf, "pattern p = window(a4999);\n");
  for (int k = 4999; k >= 1; k--) p += sprintf(p, "let a%d = a%d + 1;\n", k, k - 1);
  sprintf(p, "let a0 = 1;\n");
  expect_error(buf, "nested too deeply");
  /* a chain of pattern lets */
  p = buf + sprintf(buf, "let a0 = window(1);\n");
  for (int k = 1; k < 600; k++) p += sprintf(p, "let a%d = a%d | causal;\n", k, k - 1);
  sprintf(p, "pattern p = a599;\n");
  fx c = run(buf, NULL);
  assert_non_null(c.p);
  fx_free(&c);
  /* many errors stop at a limit */
  p = buf;
  for (int k = 0; k < 1000; k++) p += sprintf(p, "let = ;\n");
  fx g = run(buf, NULL);
  assert_null(g.m);
  assert_true(diag_n_errors(g.d) <= 60);
  assert_non_null(strstr(diag_text(g.d), "too many errors"));
  fx_free(&g);
  free(buf);
}

static void test_recovery(void **state) {
  (void)state;
  fx f = run("let a = 1 +;\nlet b = 2;\npattern p = window(;\npattern q = full;\nlet c = ) ;\n", NULL);
  assert_null(f.m);
  assert_int_equal(diag_n_errors(f.d), 3);
  const char *t = diag_text(f.d);
  assert_non_null(strstr(t, "t.pat:1:12: error: unexpected ';', expected an expression\n"));
  assert_non_null(strstr(t, "t.pat:3:20: error: unexpected ';', expected an expression\n"));
  assert_non_null(strstr(t, "t.pat:5:9: error: unexpected ')', expected an expression\n"));
  fx_free(&f);
  f = run("pattern a = causal\npattern b = full;\nlet c = 1 let d = 2;\n", NULL);
  assert_int_equal(diag_n_errors(f.d), 2);
  assert_non_null(strstr(diag_text(f.d), "t.pat:1:19: error: expected ';' before 'pattern'\n"));
  assert_non_null(strstr(diag_text(f.d), "t.pat:3:10: error: expected ';' before 'let'\n"));
  fx_free(&f);
  /* several independent semantic errors in one run */
  f = run("pattern a = window(causal);\npattern b = foo;\npattern c = window(i);\n", NULL);
  assert_int_equal(diag_n_errors(f.d), 3);
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literals_comments),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_folding),
      cmocka_unit_test(test_overflow),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_types),
      cmocka_unit_test(test_calls),
      cmocka_unit_test(test_defines),
      cmocka_unit_test(test_parse_define),
      cmocka_unit_test(test_merge_and_extern),
      cmocka_unit_test(test_imports),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_library),
      cmocka_unit_test(test_other_diag),
      cmocka_unit_test(test_fuzz),
      cmocka_unit_test(test_random_programs),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_recovery),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
