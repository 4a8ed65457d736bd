/* test_diff_score.c: the differential suite for language version 2 scores:
 * the JIT's score tile against the interpreter on random `with score E`.
 *
 * Each program holds N_SUB random score expressions behind a runtime
 * selector (`sel == 0 ? E0 : sel == 1 ? E1 : ...`), so one JIT compile
 * checks N_SUB cases: E uses s, float literals, i, j, h, sizes, a float
 * input slope[h], + - * /, unary -, exp log sqrt tanh abs min max, ?: on
 * integer conditions and -inf, over random patterns (causal, windows,
 * blocks, strides, unions and differences of them), with Lq != Lk, heads,
 * batches, D in {16, 64, 128}, and float inputs indexed by i and j
 * (rel[h, i - j + Lk - 1], / and % by constants, and an index that may be
 * out of range: then the same error and message).  Outputs must agree
 * within 1e-4 relative (float32 against double), lse on exactly the same
 * rows (-inf where every pair scores -inf).  Every third selector also
 * runs backward on both (112 cases): dq, dk, dv and the gradients of
 * slope and rel within 2e-3 of the largest (from the interpreter's o, lse).  Also the forms the JIT does not compile must be
 * refused, never run wrong.  Then 60 random where-predicates with integer
 * bit operations, shifts (some failing at run time: the same message in
 * both), clamp and functions.  A failure prints the program and the
 * selector; SPAT_DIFF_SEED=<seed> (SPAT_DIFF_BITS_SEED) replays one.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "frontend.h"
#include "interp.h"
#include "small.h"

#define N_PROG SMALL(16, 3)
#define N_SUB 20 /* expressions per program: 320 cases */
#define BASE_SEED 0x5c0e0000ull

typedef struct gen {
  uint64_t s;
  char *buf;
  size_t n, cap;
} gen;

static uint64_t rnd(gen *g) {
  uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int pick(gen *g, int n) { return (int)(rnd(g) % (uint64_t)n); }

static void put(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(gen *g, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int w = vsnprintf(g->buf + g->n, g->cap - g->n, fmt, ap);
    va_end(ap);
    if (w >= 0 && g->n + (size_t)w < g->cap) {
      g->n += (size_t)w;
      return;
    }
    g->cap = g->cap * 2 + 256;
    g->buf = realloc(g->buf, g->cap);
    assert_non_null(g->buf);
  }
}

static void int_expr(gen *g, int d) {
  switch (d <= 0 ? pick(g, 4) : pick(g, 9)) {
  case 0: put(g, "%d", pick(g, 9) - 3); break;
  case 1: put(g, "i"); break;
  case 2: put(g, "j"); break;
  case 3: put(g, "h"); break;
  case 4: put(g, "(i - j)"); break;
  case 5: put(g, "min("), int_expr(g, d - 1), put(g, ", "), int_expr(g, d - 1), put(g, ")"); break;
  case 6: put(g, "abs("), int_expr(g, d - 1), put(g, ")"); break;
  case 7: put(g, "(Lk - Lq)"); break;
  default: put(g, "("), int_expr(g, d - 1), put(g, " + "), int_expr(g, d - 1), put(g, ")"); break;
  }
}

static void cond(gen *g) {
  static const char *const cmp[] = {"<", "<=", ">", ">=", "==", "!="};
  put(g, "(");
  int_expr(g, 1);
  put(g, " %s ", cmp[pick(g, 6)]);
  int_expr(g, 1);
  put(g, ")");
}

/* Float expressions of moderate size (so exp stays finite). */
static void flt(gen *g, int d) {
  int k = d <= 0 ? pick(g, 4) : pick(g, 16);
  switch (k) {
  case 0: put(g, "s"); break;
  case 1: put(g, "%d.%d", pick(g, 4), pick(g, 10)); break;
  case 2: put(g, "slope[h]"); break;
  case 3: put(g, "(s * 0.5)"); break;
  case 4: put(g, "(s - slope[h] * abs(i - j))"); break;
  case 5: put(g, "tanh("), flt(g, d - 1), put(g, " / 3.0) * 3.0"); break;
  case 6: put(g, "exp(tanh("), flt(g, d - 1), put(g, "))"); break;
  case 7: put(g, "log(1.0 + abs("), flt(g, d - 1), put(g, "))"); break;
  case 8: put(g, "sqrt(abs("), flt(g, d - 1), put(g, "))"); break;
  case 9: put(g, "min("), flt(g, d - 1), put(g, ", "), flt(g, d - 1), put(g, ")"); break;
  case 10: put(g, "max("), flt(g, d - 1), put(g, ", "), flt(g, d - 1), put(g, ")"); break;
  case 11: put(g, "("), cond(g), put(g, " ? "), flt(g, d - 1), put(g, " : "), flt(g, d - 1), put(g, ")"); break;
  case 12: put(g, "("), cond(g), put(g, " ? -inf : "), flt(g, d - 1), put(g, ")"); break;
  case 13:
    switch (pick(g, 4)) { /* float inputs indexed by i and j */
    case 0: put(g, "rel[h, i - j + Lk - 1]"); break;
    case 1: put(g, "rel[h, (i / 3 + j %% 5) %% 7]"); break;
    case 2: put(g, "rel[h, i - j + %d]", 20 + pick(g, 40)); break; /* may fail */
    default: put(g, "-("), flt(g, d - 1), put(g, ")"); break;
    }
    break;
  case 14: put(g, "("), flt(g, d - 1), put(g, " / (2.0 + abs("), flt(g, d - 1), put(g, ")))"); break;
  default:
    put(g, "("), flt(g, d - 1), put(g, pick(g, 2) ? " + " : " - "), flt(g, d - 1), put(g, ")");
    break;
  }
}

static void pat(gen *g, int d) {
  switch (d <= 0 ? pick(g, 5) : pick(g, 8)) {
  case 0: put(g, "causal"); break;
  case 1: put(g, "window(%d, %d)", pick(g, 80), pick(g, 80)); break;
  case 2: put(g, "block(%d)", 1 + pick(g, 70)); break;
  case 3: put(g, "stride(%d)", 1 + pick(g, 9)); break;
  case 4: put(g, "full"); break;
  case 5: put(g, "("), pat(g, d - 1), put(g, " | "), pat(g, d - 1), put(g, ")"); break;
  case 6: put(g, "("), pat(g, d - 1), put(g, " & "), pat(g, d - 1), put(g, ")"); break;
  default: put(g, "("), pat(g, d - 1), put(g, " - "), pat(g, d - 1), put(g, ")"); break;
  }
}

/* smooth[k]: E_k has no sqrt, whose derivative is unbounded at 0 (there
 * float32 and double gradients need not agree: not compared backward). */
static char *program(uint64_t seed, bool *smooth) {
  gen g = {seed, NULL, 0, 0};
  put(&g, "pattern p(runtime sel = 0, input slope: float[H], input rel: float[H, Lq + Lk]) =\n  ");
  pat(&g, 2);
  put(&g, "\n  with score ");
  for (int k = 0; k < N_SUB; k++) {
    if (k < N_SUB - 1) put(&g, "sel == %d ? ", k);
    size_t at = g.n;
    flt(&g, 3);
    smooth[k] = !strstr(g.buf + at, "sqrt");
    put(&g, k < N_SUB - 1 ? " :\n    " : ";\n");
  }
  return g.buf;
}

typedef struct bufs {
  float *q, *k, *v, *o1, *o2, *l1, *l2;
} bufs;

static float nrm(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((int64_t)(*s >> 11) % 2000) / 1000.0f;
}

/* x and ref agree: NaN where ref is, else within tol (1 + max |ref|). */
static void close_all(const float *x, const float *ref, size_t n, double tol,
                      const char *what, uint64_t seed, int sel, const char *src) {
  double mx = 0;
  for (size_t t = 0; t < n; t++)
    if (fabs(ref[t]) > mx) mx = fabs(ref[t]);
  for (size_t t = 0; t < n; t++) {
    bool same = (isnan(x[t]) && isnan(ref[t])) ||
                fabs((double)x[t] - ref[t]) <= tol * (1 + mx);
    if (!same)
      fprintf(stderr, "seed %llx sel %d: %s %zu: %g vs %g\n%s", (unsigned long long)seed,
              sel, what, t, x[t], ref[t], src);
    assert_true(same);
  }
}

/* The backward of both backends from the interpreter's forward (o, lse in
 * a), with every float input's gradient: the same status, and values. */
static void check_backward(void *kj, void *ki, const rt_args *a, uint64_t seed, int sel,
                           const char *src, int64_t n_rel) {
  size_t nq = (size_t)(a->B * a->H * a->Lq * a->D), nk = (size_t)(a->B * a->H * a->Lk * a->D);
  size_t nin[2] = {(size_t)a->H, (size_t)(a->H * n_rel)};
  float *m = malloc(sizeof(float) * (nq * 3 + nk * 4 + 2 * (nin[0] + nin[1])));
  assert_non_null(m);
  float *dout = m, *g[2][3], *din[2][2];
  float *at = m + nq;
  for (int x = 0; x < 2; x++) {
    g[x][0] = at, at += nq;
    g[x][1] = at, at += nk;
    g[x][2] = at, at += nk;
    din[x][0] = at, at += nin[0];
    din[x][1] = at, at += nin[1];
  }
  uint64_t s = seed ^ 0x77;
  for (size_t t = 0; t < nq; t++) dout[t] = nrm(&s) - 1.0f;
  rt_status st[2];
  char err[2][512] = {"", ""};
  for (int x = 0; x < 2; x++) {
    float *dins[2] = {din[x][0], din[x][1]};
    rt_grad gr = {0};
    gr.dout = a->o, gr.dout.data = dout;
    gr.dq = a->q, gr.dq.data = g[x][0];
    gr.dk = a->k, gr.dk.data = g[x][1];
    gr.dv = a->v, gr.dv.data = g[x][2];
    gr.dinputs = dins;
    st[x] = (x ? backend_interp : backend_jit).backward(x ? ki : kj, a, &gr, err[x], sizeof err[x]);
  }
  if (st[0] != st[1] || strcmp(err[0], err[1]))
    fprintf(stderr, "seed %llx sel %d: backward %d '%s' vs %d '%s'\n%s", (unsigned long long)seed,
            sel, st[0], err[0], st[1], err[1], src);
  assert_int_equal(st[0], st[1]);
  assert_string_equal(err[0], err[1]);
  if (st[0] == RT_OK) {
    static const char *const names[3] = {"dq", "dk", "dv"};
    size_t ns[3] = {nq, nk, nk};
    for (int y = 0; y < 3; y++) close_all(g[0][y], g[1][y], ns[y], 2e-3, names[y], seed, sel, src);
    close_all(din[0][0], din[1][0], nin[0], 2e-3, "dslope", seed, sel, src);
    close_all(din[0][1], din[1][1], nin[1], 2e-3, "drel", seed, sel, src);
  }
  free(m);
}


static int n_backward; /* backward cases compared */

static void one_program(uint64_t seed) {
  bool smooth[N_SUB];
  char *src = program(seed, smooth);
  diag *d = diag_new();
  arena *ar = arena_new();
  fe_module *m = fe_load_string(d, ar, "score.pat", src);
  ir_program *p = m ? fe_instantiate(d, m, NULL, NULL, 0) : NULL;
  if (!p) fprintf(stderr, "seed %llx:\n%s\n%s", (unsigned long long)seed, src, diag_text(d));
  assert_non_null(p);
  gen g = {seed ^ 0xabcdefull, NULL, 0, 0};
  static const int64_t Ds[] = {16, 64, 128};
  int64_t B = 1 + pick(&g, 2), H = 1 + pick(&g, 3), D = Ds[pick(&g, 3)];
  int64_t Lq = 1 + pick(&g, 150), Lk = 1 + pick(&g, 200);
  backend_opts o = {.D = D, .threads = 1};
  char err[512];
  void *kj = backend_jit.compile(p, &o, err, sizeof err);
  if (!kj) fprintf(stderr, "seed %llx: JIT refused: %s\n%s", (unsigned long long)seed, err, src);
  assert_non_null(kj);
  void *ki = backend_interp.compile(p, &o, err, sizeof err);
  assert_non_null(ki);
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * H * Lk * D), nl = (size_t)(B * H * Lq);
  bufs b = {malloc(nq * 4), malloc(nk * 4), malloc(nk * 4), malloc(nq * 4), malloc(nq * 4),
            malloc(nl * 4), malloc(nl * 4)};
  uint64_t s = seed;
  for (size_t t = 0; t < nq; t++) b.q[t] = nrm(&s) - 1.0f;
  for (size_t t = 0; t < nk; t++) b.k[t] = nrm(&s) - 1.0f, b.v[t] = nrm(&s) - 1.0f;
  float slope[3] = {0.5f, 0.125f, 0.03125f};
  int64_t n_rel = Lq + Lk;
  float *rel = malloc(sizeof(float) * (size_t)(H * n_rel));
  for (int64_t t = 0; t < H * n_rel; t++) rel[t] = nrm(&s) - 1.0f;
  const int32_t *ins[2] = {(const int32_t *)(const void *)slope,
                           (const int32_t *)(const void *)rel};
  for (int sel = 0; sel < N_SUB; sel++) {
    int64_t rt[1] = {sel};
    rt_args a = {0};
    a.B = B, a.H = H, a.Hkv = H, a.Lq = Lq, a.Lk = Lk, a.D = D;
    a.q.data = b.q, a.k.data = b.k, a.v.data = b.v;
    rt_tensor_strides(&a.q, 0, H, Lq, D);
    rt_tensor_strides(&a.k, 0, H, Lk, D);
    rt_tensor_strides(&a.v, 0, H, Lk, D);
    a.lse_sh = Lq, a.lse_sb = H * Lq;
    a.runtime = rt, a.inputs = ins, a.threads = 1;
    rt_args aj = a, ai = a;
    aj.o.data = b.o1, aj.lse = b.l1;
    ai.o.data = b.o2, ai.lse = b.l2;
    rt_tensor_strides(&aj.o, 0, H, Lq, D);
    rt_tensor_strides(&ai.o, 0, H, Lq, D);
    char e2[512] = "";
    rt_status s1 = backend_jit.run(kj, &aj, err, sizeof err);
    rt_status s2 = backend_interp.run(ki, &ai, e2, sizeof e2);
    if (s1 != s2 || (s1 != RT_OK && strcmp(err, e2)))
      fprintf(stderr, "seed %llx sel %d: %d '%s' vs %d '%s'\n%s", (unsigned long long)seed,
              sel, s1, err, s2, e2, src);
    assert_int_equal(s1, s2);
    if (s1 != RT_OK) {
      assert_string_equal(err, e2);
      continue;
    }
    for (size_t t = 0; t < nl; t++) {
      bool same = (isinf(b.l1[t]) && isinf(b.l2[t]) && b.l1[t] < 0 && b.l2[t] < 0) ||
                  (isnan(b.l1[t]) && isnan(b.l2[t])) ||
                  fabsf(b.l1[t] - b.l2[t]) <= 1e-4f * (1 + fabsf(b.l2[t]));
      if (!same)
        fprintf(stderr, "seed %llx sel %d: lse %zu: %g vs %g\n%s", (unsigned long long)seed,
                sel, t, b.l1[t], b.l2[t], src);
      assert_true(same);
    }
    for (size_t t = 0; t < nq; t++) {
      bool same = (isnan(b.o1[t]) && isnan(b.o2[t])) ||
                  fabsf(b.o1[t] - b.o2[t]) <= 1e-4f * (1 + fabsf(b.o2[t]));
      if (!same)
        fprintf(stderr, "seed %llx sel %d: o %zu: %g vs %g\n%s", (unsigned long long)seed,
                sel, t, b.o1[t], b.o2[t], src);
      assert_true(same);
    }
    if (sel % 2 == 0 && smooth[sel]) {
      check_backward(kj, ki, &ai, seed, sel, src, n_rel);
      n_backward++;
    }
  }
  free(rel);
  backend_jit.free(kj);
  backend_interp.free(ki);
  free(b.q), free(b.k), free(b.v), free(b.o1), free(b.o2), free(b.l1), free(b.l2);
  free(src);
  free(g.buf);
  arena_free(ar);
  diag_free(d);
}

static void test_random_scores(void **st) {
  (void)st;
  const char *one = getenv("SPAT_DIFF_SEED");
  if (one) {
    one_program(strtoull(one, NULL, 0));
    return;
  }
  for (int k = 0; k < N_PROG; k++) one_program(BASE_SEED + (uint64_t)k);
  if (N_PROG == 16 && n_backward < 100) fail_msg("only %d backward cases", n_backward);
}

/* Integer bit operations, clamp and local functions in where(...):
 * random predicates, masks and run-time errors (shift counts) alike. */
static void bit_expr(gen *g, int d) {
  static const char *const ops[] = {"&", "|", "^", "+", "-"};
  switch (d <= 0 ? pick(g, 4) : pick(g, 9)) {
  case 0: put(g, "%d", pick(g, 64)); break;
  case 1: put(g, "i"); break;
  case 2: put(g, "j"); break;
  case 3: put(g, "h"); break;
  case 4: put(g, "~"), bit_expr(g, d - 1); break;
  case 5: put(g, "(("), bit_expr(g, d - 1), put(g, ") >> %d)", pick(g, 8)); break;
  case 6: put(g, "(("), bit_expr(g, d - 1), put(g, " & 255) << (j & %d))", pick(g, 8)); break;
  case 7: put(g, "clamp("), bit_expr(g, d - 1), put(g, ", %d, %d)", pick(g, 8), 8 + pick(g, 50)); break;
  default:
    put(g, "("), bit_expr(g, d - 1), put(g, " %s ", ops[pick(g, 5)]), bit_expr(g, d - 1), put(g, ")");
    break;
  }
}

static void one_bits(uint64_t seed) {
  gen g = {seed, NULL, 0, 0};
  put(&g, "let f(x, y) = (x ^ y) & %d;\n", 1 + pick(&g, 15));
  put(&g, "pattern p = let m(q) = q & %d in ", pick(&g, 64));
  pat(&g, 1);
  put(&g, " | where(");
  bit_expr(&g, 3);
  put(&g, " %s ", pick(&g, 2) ? "==" : ">");
  bit_expr(&g, 2);
  put(&g, pick(&g, 2) ? " || f(i, j) == 0" : " && m(i) != m(j)");
  if (pick(&g, 8) == 0) put(&g, " || (1 << (j - %d)) > 0", pick(&g, 5)); /* may fail */
  put(&g, ");\n");
  char *src = g.buf;
  diag *d = diag_new();
  arena *ar = arena_new();
  fe_module *m = fe_load_string(d, ar, "bits.pat", src);
  ir_program *p = m ? fe_instantiate(d, m, NULL, NULL, 0) : NULL;
  if (!p) fprintf(stderr, "seed %llx:\n%s\n%s", (unsigned long long)seed, src, diag_text(d));
  assert_non_null(p);
  int64_t B = 1, H = 1 + pick(&g, 3), D = 16, Lq = 1 + pick(&g, 130), Lk = 1 + pick(&g, 130);
  backend_opts o = {.D = D, .threads = 1};
  char e1[512] = "", e2[512] = "";
  void *kj = backend_jit.compile(p, &o, e1, sizeof e1);
  if (!kj) fprintf(stderr, "seed %llx: %s\n%s", (unsigned long long)seed, e1, src);
  assert_non_null(kj);
  void *ki = backend_interp.compile(p, &o, e1, sizeof e1);
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * H * Lk * D), nl = (size_t)(B * H * Lq);
  bufs b = {malloc(nq * 4), malloc(nk * 4), malloc(nk * 4), malloc(nq * 4), malloc(nq * 4),
            malloc(nl * 4), malloc(nl * 4)};
  uint64_t s = seed;
  for (size_t t = 0; t < nq; t++) b.q[t] = nrm(&s) - 1.0f;
  for (size_t t = 0; t < nk; t++) b.k[t] = nrm(&s) - 1.0f, b.v[t] = nrm(&s) - 1.0f;
  rt_args a = {0};
  a.B = B, a.H = H, a.Hkv = H, a.Lq = Lq, a.Lk = Lk, a.D = D, a.threads = 1;
  a.q.data = b.q, a.k.data = b.k, a.v.data = b.v;
  rt_tensor_strides(&a.q, 0, H, Lq, D);
  rt_tensor_strides(&a.k, 0, H, Lk, D);
  rt_tensor_strides(&a.v, 0, H, Lk, D);
  a.lse_sh = Lq, a.lse_sb = H * Lq;
  rt_args aj = a, ai = a;
  aj.o.data = b.o1, aj.lse = b.l1, ai.o.data = b.o2, ai.lse = b.l2;
  rt_tensor_strides(&aj.o, 0, H, Lq, D);
  rt_tensor_strides(&ai.o, 0, H, Lq, D);
  rt_status s1 = backend_jit.run(kj, &aj, e1, sizeof e1);
  rt_status s2 = backend_interp.run(ki, &ai, e2, sizeof e2);
  if (s1 != s2 || (s1 != RT_OK && strcmp(e1, e2)))
    fprintf(stderr, "seed %llx: %d '%s' vs %d '%s'\n%s", (unsigned long long)seed, s1, e1, s2,
            e2, src);
  assert_int_equal(s1, s2);
  if (s1 != RT_OK) assert_string_equal(e1, e2);
  for (size_t t = 0; s1 == RT_OK && t < nl; t++) {
    bool same = (isinf(b.l1[t]) && isinf(b.l2[t])) || fabsf(b.l1[t] - b.l2[t]) <= 1e-4f;
    if (!same) fprintf(stderr, "seed %llx: lse %zu %g vs %g\n%s", (unsigned long long)seed, t,
                       b.l1[t], b.l2[t], src);
    assert_true(same);
  }
  for (size_t t = 0; s1 == RT_OK && t < nq; t++) assert_true(fabsf(b.o1[t] - b.o2[t]) <= 2e-5f);
  backend_jit.free(kj);
  backend_interp.free(ki);
  free(b.q), free(b.k), free(b.v), free(b.o1), free(b.o2), free(b.l1), free(b.l2);
  free(src);
  arena_free(ar);
  diag_free(d);
}

static void test_random_bits(void **st) {
  (void)st;
  const char *one = getenv("SPAT_DIFF_BITS_SEED");
  if (one) {
    one_bits(strtoull(one, NULL, 0));
    return;
  }
  for (int k = 0; k < SMALL(60, 6); k++) one_bits(0xb1750000ull + (uint64_t)k);
}

/* What the score tile does not compile is refused with a message. */
static void test_refused(void **st) {
  (void)st;
  static const char *const srcs[] = {
      "pattern p(input w: float[Lk / 2 + 1]) = causal with score s + w[j / 2];",
      "pattern p(input c: float[H, 4, D], input e: float[H, 2, D]) = route(c) | route(e);",
  };
  for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
    diag *d = diag_new();
    arena *ar = arena_new();
    fe_module *m = fe_load_string(d, ar, "r.pat", srcs[k]);
    ir_program *p = m ? fe_instantiate(d, m, NULL, NULL, 0) : NULL;
    assert_non_null(p);
    backend_opts o = {.D = 64, .threads = 1};
    char err[512] = "";
    void *kj = backend_jit.compile(p, &o, err, sizeof err);
    assert_null(kj);
    assert_non_null(strstr(err, "interpreter"));
    arena_free(ar);
    diag_free(d);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_scores),
      cmocka_unit_test(test_random_bits),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
