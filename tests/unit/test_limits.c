/* test_limits.c: compile cost bounded by the pattern, and every resource
 * limit of compiler/spat_limits.h as a located error.
 *
 * No timings: the bounds are asserted as work counted (distinct IR nodes,
 * LLVM instructions per module and per function, plan words), or as
 * inputs that were impossible before (lets that double 16 times: 2^16
 * copies of the base pattern; the JIT needed > 7.6 GB at 13) and now
 * compile, and as sizes for which a quadratic checker would take minutes
 * (50,000 declarations).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze.h"
#include "backend.h"
#include "codegen.h"
#include "frontend.h"
#include "spat_limits.h"
#include "plan_ops.h"

/* --- text building ------------------------------------------------------ */

typedef struct buf {
  char *s;
  size_t n, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (b->s && (size_t)k < b->cap - b->n) {
      b->n += (size_t)k;
      return;
    }
    b->cap = 2 * (b->cap + (size_t)k + 64);
    b->s = realloc(b->s, b->cap);
    assert_non_null(b->s);
  }
}

/* let p0 = BASE; let p<k> = p<k-1> | (p<k-1> & stride(k+1)); pattern top */
static char *doubling(int depth, const char *base) {
  buf b = {0};
  put(&b, "let p0 = %s;\n", base);
  for (int k = 1; k <= depth; k++)
    put(&b, "let p%d = p%d | (p%d & stride(%d));\n", k, k - 1, k - 1, k + 1);
  put(&b, "pattern top = p%d;\n", depth);
  return b.s;
}

static void balanced(buf *b, int lo, int hi) {
  if (hi - lo == 1) {
    put(b, "(window(%d, %d) & stride(%d))", lo, lo % 7, lo % 13 + 1);
    return;
  }
  int mid = lo + (hi - lo) / 2;
  put(b, "(");
  balanced(b, lo, mid);
  put(b, " | ");
  balanced(b, mid, hi);
  put(b, ")");
}

static char *union_of(int leaves) {
  buf b = {0};
  put(&b, "pattern top = ");
  balanced(&b, 0, leaves);
  put(&b, ";\n");
  return b.s;
}

/* --- loading -------------------------------------------------------------- */

typedef struct loaded {
  diag *d;
  arena *a;
  fe_module *m;
  ir_program *p;
} loaded;

static loaded load(const char *text) {
  loaded L = {diag_new(), arena_new(), NULL, NULL};
  L.m = fe_load_string(L.d, L.a, "t.pat", text);
  if (L.m) L.p = fe_instantiate(L.d, L.m, NULL, NULL, 0);
  return L;
}

static void unload(loaded *L) {
  arena_free(L->a);
  diag_free(L->d);
}

static loaded load_ok(const char *text) {
  loaded L = load(text);
  if (!L.p) fail_msg("load: %s", diag_text(L.d));
  return L;
}

/* The diagnostics of a load that must fail, containing every needle. */
static void load_fails(const char *text, const char *const *needles, int n) {
  loaded L = load(text);
  if (L.p) fail_msg("expected an error containing '%s'", needles[0]);
  for (int k = 0; k < n; k++)
    if (!strstr(diag_text(L.d), needles[k]))
      fail_msg("no '%s' in:\n%s", needles[k], diag_text(L.d));
  unload(&L);
}

/* Distinct nodes of the IR DAG (a small pointer set). */
typedef struct pset {
  const void **v;
  size_t cap, n;
} pset;

static int pset_add(pset *s, const void *p) {
  if (2 * (s->n + 1) > s->cap) {
    pset t = {calloc(s->cap ? 2 * s->cap : 1024, sizeof(void *)),
              s->cap ? 2 * s->cap : 1024, 0};
    for (size_t k = 0; k < s->cap; k++)
      if (s->v[k]) pset_add(&t, s->v[k]);
    free(s->v);
    *s = t;
  }
  size_t h = ((uintptr_t)p >> 4) * 11400714819323198485ull % s->cap;
  for (; s->v[h]; h = (h + 1) % s->cap)
    if (s->v[h] == p) return 0;
  s->v[h] = p;
  s->n++;
  return 1;
}

static void walk(pset *s, const ir_node *n) {
  if (!n || !pset_add(s, n)) return;
  for (int k = 0; k < n->n_kids; k++) walk(s, n->kids[k]);
}

static size_t distinct_nodes(const ir_program *p) {
  pset s = {0};
  walk(&s, p->root);
  free(s.v);
  return s.n;
}

/* --- LLVM work: instructions of the unoptimised module -------------------- */

typedef struct cg_count_t {
  long insts, max_fn, fns;
} cg_count_t;

static cg_count_t count_module(const ir_program *p) {
  char err[512] = "";
  cg_stats st;
  if (cg_count(p, &st, err, sizeof err)) fail_msg("cg_count: %s", err);
  return (cg_count_t){st.insts, st.max_fn_insts, st.fns};
}

/* --- JIT against the interpreter (o and lse) ------------------------------ */

static float *rnd(int64_t n, uint64_t *s) {
  float *x = malloc((size_t)n * sizeof *x);
  for (int64_t k = 0; k < n; k++) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    x[k] = (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
  }
  return x;
}

/* Runs `jit_p` with the JIT and `ref_p` with the interpreter on the same
 * random q, k, v (L x 16, one head); they must agree. */
static void same_attention(const ir_program *jit_p, const ir_program *ref_p,
                           int64_t L) {
  const int64_t D = 16;
  char err[512] = "";
  backend_opts bo = {.D = D, .threads = 1};
  void *jk = backend_jit.compile(jit_p, &bo, err, sizeof err);
  if (!jk) fail_msg("jit compile: %s", err);
  void *ik = backend_interp.compile(ref_p, &bo, err, sizeof err);
  if (!ik) fail_msg("interp compile: %s", err);
  uint64_t seed = 7;
  float *q = rnd(L * D, &seed), *k = rnd(L * D, &seed), *v = rnd(L * D, &seed);
  float *o[2], *lse[2];
  for (int t = 0; t < 2; t++) {
    o[t] = calloc((size_t)(L * D), sizeof(float));
    lse[t] = calloc((size_t)L, sizeof(float));
    rt_args a;
    memset(&a, 0, sizeof a);
    a.B = a.H = a.Hkv = 1, a.Lq = a.Lk = L, a.D = D;
    a.q = (rt_tensor){q, 0, 0, 0};
    a.k = (rt_tensor){k, 0, 0, 0};
    a.v = (rt_tensor){v, 0, 0, 0};
    a.o = (rt_tensor){o[t], 0, 0, 0};
    rt_tensor_strides(&a.q, 0, 1, L, D);
    rt_tensor_strides(&a.k, 0, 1, L, D);
    rt_tensor_strides(&a.v, 0, 1, L, D);
    rt_tensor_strides(&a.o, 0, 1, L, D);
    a.lse = lse[t], a.lse_sh = L, a.lse_sb = L;
    a.threads = 1;
    rt_status st = (t ? backend_interp.run : backend_jit.run)(t ? ik : jk, &a, err,
                                                              sizeof err);
    if (st != RT_OK) fail_msg("%s run: %s", t ? "interp" : "jit", err);
  }
  for (int64_t r = 0; r < L; r++) {
    if (!(fabsf(lse[0][r] - lse[1][r]) <= 2e-5f * (1 + fabsf(lse[1][r])) ||
          lse[0][r] == lse[1][r]))
      fail_msg("row %lld: lse %g vs %g", (long long)r, lse[0][r], lse[1][r]);
    for (int64_t d = 0; d < D; d++)
      if (fabsf(o[0][r * D + d] - o[1][r * D + d]) > 2e-5f)
        fail_msg("row %lld: o %g vs %g", (long long)r, o[0][r * D + d], o[1][r * D + d]);
  }
  for (int t = 0; t < 2; t++) free(o[t]), free(lse[t]);
  free(q), free(k), free(v);
  backend_jit.free(jk);
  backend_interp.free(ik);
}

/* --- class 1: compile cost bounded by the checked pattern ----------------- */

/* p_k = p_(k-1) | (p_(k-1) & s) is p_(k-1): the depth-16 doubling (2^16
 * copies of p0 when expanded) is p0 itself.  The IR is shared (linear in
 * the depth), the JIT compiles it, and it agrees with the interpreter's p0. */
static void test_doubling_lets_jit(void **st) {
  (void)st;
  const char *base = "causal & window(5, 0) | cols({3})";
  char *t16 = doubling(16, base), *t8 = doubling(8, base);
  loaded L16 = load_ok(t16), L8 = load_ok(t8);
  char p0src[128];
  snprintf(p0src, sizeof p0src, "pattern top = %s;\n", base);
  loaded L0 = load_ok(p0src);
  size_t n16 = distinct_nodes(L16.p), n8 = distinct_nodes(L8.p);
  assert_true(n16 < 200);                /* expanded: over 600,000 */
  assert_true(n16 <= n8 + 8 * 8);        /* a few nodes per level */
  cg_count_t c16 = count_module(L16.p), c8 = count_module(L8.p);
  assert_true(c16.insts < 3 * c8.insts); /* linear in the depth, not 2^8 x */
  same_attention(L16.p, L0.p, 67);
  unload(&L16), unload(&L8), unload(&L0);
  free(t16), free(t8);
}

/* A balanced union: the module grows linearly with the leaves and no
 * function grows with them (LLVM is superlinear in a function's size). */
static void test_union_bounded_functions(void **st) {
  (void)st;
  char *t1 = union_of(1024), *t4 = union_of(4096);
  loaded L1 = load_ok(t1), L4 = load_ok(t4);
  cg_count_t c1 = count_module(L1.p), c4 = count_module(L4.p);
  assert_true(c4.insts <= 4 * c1.insts + c1.insts / 4);
  assert_true(c4.max_fn <= c1.max_fn + c1.max_fn / 4);
  assert_true(c4.fns > 3 * c1.fns);
  unload(&L1), unload(&L4);
  free(t1), free(t4);
  /* and a union that took 4 s to JIT compiles and agrees with the interpreter */
  char *t = union_of(256);
  loaded L = load_ok(t);
  same_attention(L.p, L.p, 80);
  unload(&L);
  free(t);
}

/* Shared sub-patterns under blocks (another granularity) and with the
 * short-circuit activity of & | - stay exact. */
static void test_shared_contexts(void **st) {
  (void)st;
  const char *src =
      "let a = window(3, 0) | stride(5);\n"
      "let b = a & !block(4) | (a - cols({1, 7 .. 9}));\n"
      "let c = blocks(2) { b | a } | (b & causal);\n"
      "let d = c | (c & where((i + j) % 3 == 0)) | (b - c);\n"
      "let e = d | blocks(3) { d } | (d & rows({0 .. 5}));\n"
      "pattern top = e | (e & dilated(2, 3)) | blocks(2) { e };\n";
  loaded L = load_ok(src);
  same_attention(L.p, L.p, 150);
  unload(&L);
}

/* A shared expansion replays its table merges: the conflict between a
 * runtime scalar and an input array of the same name is found though the
 * let that brings the scalar was expanded (and shared) before. */
static void test_shared_merge_conflict(void **st) {
  (void)st;
  const char *src =
      "pattern q(runtime n = 3) = stride(n);\n"
      "pattern r(input n: int[]) = where(n[i] == n[j]);\n"
      "let x = q;\n"
      "let y = r | x | x;\n"
      "pattern top = full;\n";
  const char *need[] = {"t.pat:1:", "a runtime scalar here but an input array elsewhere"};
  load_fails(src, need, 2);
}

/* --- class 6: the checker is linear in the declarations ------------------- */

static void test_many_declarations(void **st) {
  (void)st;
  const int n = 50000;
  buf b = {0};
  for (int k = 0; k < n; k++) put(&b, "let l%d = window(%d);\n", k, k % 100);
  for (int k = 0; k < n; k++) put(&b, "pattern q%d = l%d | l%d;\n", k, k, (k * 7) % n);
  loaded L = load_ok(b.s);
  assert_int_equal(fe_n_patterns(L.m), n);
  /* every pattern by name, as spatc check does */
  for (int k = 0; k < n; k += 1) {
    char name[32];
    snprintf(name, sizeof name, "q%d", k);
    ir_program *p = fe_instantiate(L.d, L.m, name, NULL, 0);
    if (!p) fail_msg("q%d: %s", k, diag_text(L.d));
  }
  unload(&L);
  /* a duplicate among them is still found, with its first definition */
  put(&b, "let l%d = none;\n", n / 2);
  const char *need[] = {"already defined", "previous definition of 'l25000'"};
  load_fails(b.s, need, 2);
  free(b.s);
}

/* --- resource limits: each a located error -------------------------------- */

static void test_limit_file_size(void **st) {
  (void)st;
  size_t n = (size_t)SPAT_MAX_FILE_BYTES + 1;
  char *s = malloc(n + 1);
  memset(s, ' ', n);
  s[n] = 0;
  const char *need[] = {"too large"};
  load_fails(s, need, 1);
  free(s);
}

static void test_limit_nesting(void **st) {
  (void)st;
  buf b = {0};
  put(&b, "pattern p = ");
  for (int k = 0; k <= SPAT_MAX_NESTING; k++) put(&b, "(");
  const char *need[] = {"t.pat:1:", "nesting too deep"};
  load_fails(b.s, need, 2);
  free(b.s);
}

static void test_limit_expr_depth(void **st) {
  (void)st;
  buf b = {0};
  put(&b, "pattern p = window(1");
  for (int k = 0; k <= SPAT_MAX_EXPR_DEPTH; k++) put(&b, " + 1");
  put(&b, ");\n");
  const char *need[] = {"t.pat:1:", "expression nested too deeply"};
  load_fails(b.s, need, 2);
  free(b.s);
}

static void test_limit_inline_depth(void **st) {
  (void)st;
  buf b = {0};
  put(&b, "let l0 = window(1);\n");
  for (int k = 1; k <= SPAT_MAX_INLINE_DEPTH; k++)
    put(&b, "let l%d = l%d | window(%d);\n", k, k - 1, k % 9);
  put(&b, "pattern top = l%d;\n", SPAT_MAX_INLINE_DEPTH);
  const char *need[] = {"t.pat:", "nested too deeply after inlining"};
  load_fails(b.s, need, 2);
  free(b.s);
}

static void test_limit_parse_errors(void **st) {
  (void)st;
  buf b = {0};
  for (int k = 0; k < 2 * SPAT_MAX_PARSE_ERRORS; k++) put(&b, "pattern p%d = ;\n", k);
  const char *need[] = {"t.pat:1:", "too many errors, stopping"};
  load_fails(b.s, need, 2);
  free(b.s);
}

static void test_limit_extern_args(void **st) {
  (void)st;
  buf b = {0};
  put(&b, "extern fn f(int");
  for (int k = 0; k < SPAT_MAX_EXTERN_ARGS; k++) put(&b, ", int");
  put(&b, ") -> bool;\npattern p = full;\n");
  const char *need[] = {"t.pat:1:11:", "at most 16 arguments"};
  load_fails(b.s, need, 2);
  free(b.s);
}

/* A chain of imports deeper than SPAT_MAX_IMPORT_DEPTH, on disk. */
static void test_limit_import_depth(void **st) {
  (void)st;
  char dir[] = "/tmp/spat_limits_XXXXXX";
  assert_non_null(mkdtemp(dir));
  int n = SPAT_MAX_IMPORT_DEPTH + 2;
  char path[128];
  for (int k = 0; k < n; k++) {
    snprintf(path, sizeof path, "%s/f%d.pat", dir, k);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (k + 1 < n) fprintf(f, "import \"f%d.pat\";\n", k + 1);
    fprintf(f, "pattern p%d = window(%d);\n", k, k);
    fclose(f);
  }
  snprintf(path, sizeof path, "%s/f0.pat", dir);
  diag *d = diag_new();
  arena *a = arena_new();
  assert_null(fe_load_file(d, a, path));
  if (!strstr(diag_text(d), "imports nested too deeply") || !strstr(diag_text(d), ".pat:1:8:"))
    fail_msg("got: %s", diag_text(d));
  arena_free(a);
  diag_free(d);
  for (int k = 0; k < n; k++) {
    snprintf(path, sizeof path, "%s/f%d.pat", dir, k);
    remove(path);
  }
  rmdir(dir);
}

/* 2^20 expanded copies: over SPAT_MAX_IR_NODES though the DAG is tiny
 * (the interpreter walks the expansion). */
static void test_limit_ir_nodes(void **st) {
  (void)st;
  char *t = doubling(20, "causal");
  const char *need[] = {"t.pat:", "pattern too large after inlining"};
  load_fails(t, need, 2);
  free(t);
}

static void test_limit_jit_nodes(void **st) {
  (void)st;
  char *t = union_of(SPAT_MAX_JIT_NODES / 6 + 100);
  loaded L = load_ok(t);
  char err[512] = "";
  backend_opts bo = {.D = 16, .threads = 1};
  void *k = backend_jit.compile(L.p, &bo, err, sizeof err);
  assert_null(k);
  if (!strstr(err, "t.pat:1:") || !strstr(err, "pattern too large for the JIT"))
    fail_msg("got: %s", err);
  unload(&L);
  free(t);
}

static void test_limit_jit_expr(void **st) {
  (void)st;
  buf b = {0};
  put(&b, "let a0 = i - j;\n");
  for (int k = 1; k <= 12; k++) put(&b, "let a%d = a%d %% 7 + a%d;\n", k, k - 1, k - 1);
  put(&b, "pattern top = causal & where(a12 %% 5 == 0);\n");
  loaded L = load_ok(b.s);
  char err[512] = "";
  backend_opts bo = {.D = 16, .threads = 1};
  void *k = backend_jit.compile(L.p, &bo, err, sizeof err);
  assert_null(k);
  if (!strstr(err, "t.pat:14:30:") || !strstr(err, "integer expression too large for the JIT"))
    fail_msg("got: %s", err);
  unload(&L);
  free(b.s);
}

/* A plan over SPAT_MAX_PLAN_WORDS becomes "every key PARTIAL". */
static void test_limit_plan_words(void **st) {
  (void)st;
  char *t = doubling(17, "causal & window(9, 2)");
  loaded L = load_ok(t);
  char err[256];
  int64_t *plan = an_build(L.p, err, sizeof err);
  assert_non_null(plan);
  assert_true(plan[PLAN_W_SIZE] < 64);
  free(plan);
  unload(&L);
  free(t);
}

static void test_limit_explain_tiles(void **st) {
  (void)st;
  loaded L = load_ok("pattern p = causal & window(128, 0);\n");
  FILE *f = fopen("/dev/null", "w");
  char err[512] = "";
  int rc = an_explain(f, L.p, 1, 1000000, 1000000, 1, 1, NULL, err, sizeof err);
  assert_int_equal(rc, -1);
  if (!strstr(err, "tile pairs")) fail_msg("got: %s", err);
  /* a grid under the bound is fine */
  rc = an_explain(f, L.p, 1, 4096, 4096, 16, 16, NULL, err, sizeof err);
  if (rc != 0) fail_msg("explain: %s", err);
  fclose(f);
  unload(&L);
}

/* The exact-mask part of explain walks the expanded tree per element: for
 * lets that double 16 times (650,000 nodes expanded) it samples rows
 * instead of evaluating 65,536 x 650,000 nodes. */
static void test_limit_explain_work(void **st) {
  (void)st;
  char *t = doubling(16, "causal & window(3, 0)");
  loaded L = load_ok(t);
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  char err[512] = "";
  int rc = an_explain(f, L.p, 1, 256, 256, 64, 64, NULL, err, sizeof err);
  fclose(f);
  if (rc != 0) fail_msg("explain: %s", err);
  if (!strstr(out, "keys per row, exact: min 1, median 1, max 1 (sampled rows)"))
    fail_msg("got: %s", strstr(out, "keys per row, exact") ? strstr(out, "keys per row, exact") : "");
  free(out);
  unload(&L);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_doubling_lets_jit),
      cmocka_unit_test(test_union_bounded_functions),
      cmocka_unit_test(test_shared_contexts),
      cmocka_unit_test(test_shared_merge_conflict),
      cmocka_unit_test(test_many_declarations),
      cmocka_unit_test(test_limit_file_size),
      cmocka_unit_test(test_limit_nesting),
      cmocka_unit_test(test_limit_expr_depth),
      cmocka_unit_test(test_limit_inline_depth),
      cmocka_unit_test(test_limit_parse_errors),
      cmocka_unit_test(test_limit_extern_args),
      cmocka_unit_test(test_limit_import_depth),
      cmocka_unit_test(test_limit_ir_nodes),
      cmocka_unit_test(test_limit_jit_nodes),
      cmocka_unit_test(test_limit_jit_expr),
      cmocka_unit_test(test_limit_plan_words),
      cmocka_unit_test(test_limit_explain_tiles),
      cmocka_unit_test(test_limit_explain_work),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
