/* test_diff_sets.c: rows of int inputs as index sets (vidx[h]) and
 * diagonals(S) on the JIT against the interpreter (the oracle), forward and
 * backward.
 *
 * Random patterns compose cols/rows/global/diagonals over sets mixing input
 * rows, constants (negative ones count from the end, except in diagonals)
 * and ranges with causal, window, blocks, | & - and !; the inputs have
 * random widths (0: empty rows), duplicates, negative and out-of-range
 * values, and row indices that may fall outside their dimension (a run-time
 * error, which both backends must report alike: status and message).
 * Shapes: Lq != Lk both ways, lengths not multiples of 64, GQA, 1 and 2
 * threads.  The masks must agree (lse finite on the same rows), o within
 * 2e-5, lse within 1e-4, gradients within 1e-4 of the largest (floored at
 * 0.1: a row with one key has gradients of pure rounding noise).
 * SPAT_SETS_SEED=<seed> replays one case.
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
#include "small.h"

#define N_CASES 72
#define RUNS 3

static uint64_t rng;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static int64_t pick(int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}
static float gauss(void) {
  double u = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
  double v = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct text {
  char s[2048];
  size_t n;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
  va_end(ap);
  if (k > 0) t->n += (size_t)k < sizeof t->s - t->n ? (size_t)k : sizeof t->s - t->n - 1;
}

/* A row index of input x (first dimension H + extra): h, or one that may
 * leave the dimension (an error at the last heads). */
static void row_index(text *t, const char *x) {
  switch (pick(0, 5)) {
  case 0: add(t, "%s[h %% 2]", x); break;
  case 1: add(t, "%s[h + 1]", x); break; /* out of range at h = H - 1 (dim H) */
  case 2: add(t, "%s[0]", x); break;
  default: add(t, "%s[h]", x); break;
  }
}

static void set_items(text *t, bool offsets) {
  int n = (int)pick(1, 3);
  add(t, "{");
  for (int k = 0; k < n; k++) {
    if (k) add(t, ", ");
    switch (pick(0, 5)) {
    case 0: add(t, "%lld", (long long)pick(-70, 300)); break;
    case 1: {
      int64_t a = pick(-40, 200);
      add(t, "%lld .. %lld", (long long)a, (long long)(a + pick(-3, 40)));
      break;
    }
    case 2: row_index(t, offsets ? "vidx" : "sidx"); break;
    default: row_index(t, offsets ? "sidx" : "vidx"); break;
    }
  }
  add(t, "}");
}

static void gen_pat(text *t, int depth) {
  int c = (int)pick(0, depth > 0 ? 11 : 4);
  switch (c) {
  case 0: add(t, "cols("), set_items(t, false), add(t, ")"); break;
  case 1: case 2: add(t, "diagonals("), set_items(t, true), add(t, ")"); break;
  case 3: add(t, "rows("), set_items(t, false), add(t, ")"); break;
  case 4: add(t, "global("), set_items(t, false), add(t, ")"); break;
  case 5: add(t, "causal & ("), gen_pat(t, depth - 1), add(t, ")"); break;
  case 6: add(t, "("), gen_pat(t, depth - 1), add(t, " | "), gen_pat(t, depth - 1), add(t, ")"); break;
  case 7: add(t, "(window(%lld, %lld) | ", (long long)pick(0, 9), (long long)pick(0, 9));
    gen_pat(t, depth - 1), add(t, ")");
    break;
  case 8: add(t, "("), gen_pat(t, depth - 1), add(t, " - "), gen_pat(t, depth - 1), add(t, ")"); break;
  case 9: add(t, "blocks(%lld) { ", (long long)pick(2, 9)), gen_pat(t, depth - 1), add(t, " }"); break;
  case 10: add(t, "!("), gen_pat(t, depth - 1), add(t, ")"); break;
  default: add(t, "(causal & ("), gen_pat(t, depth - 1), add(t, ") | diagonals({0}))"); break;
  }
}

/* The pattern source: vidx int[H, nv], sidx int[dim0, ns] where dim0 is H
 * or an expression of the sizes (negative for small Lq: an error). */
static void gen_source(text *t, int64_t nv, int64_t ns) {
  static const char *dim0[] = {"H", "H", "H + 1", "2 * H", "max(H, Lk / 64)",
                               "Lq - 40"};
  add(t, "pattern p(input vidx: int[H, %lld], input sidx: int[%s, %lld]) =\n    ",
      (long long)nv, dim0[pick(0, 5)], (long long)ns);
  gen_pat(t, (int)pick(1, 3));
  add(t, ";\n");
}

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int threads;
} shape;

static void rand_shape(shape *s) {
  static const int64_t Hs[] = {1, 2, 3, 4};
  s->H = Hs[pick(0, 3)];
  s->Hkv = s->H == 4 && pick(0, 1) ? 2 : s->H;
  s->B = pick(0, 4) == 0 ? 2 : 1;
  s->Lq = pick(0, 3) == 0 ? pick(1, 9) : pick(10, 330);
  s->Lk = pick(0, 3) == 0 ? s->Lq : pick(1, 330);
  s->D = pick(0, 1) ? 32 : 64;
  s->threads = (int)pick(1, 2);
}

/* Values: duplicates, negatives (from the end; diagonals: j > i), values
 * outside [-Lk, Lk) that match no key. */
static int32_t *fill_input(const ir_program *p, int k, const shape *s) {
  const int64_t sz[6] = {s->B, s->H, s->Hkv, s->Lq, s->Lk, s->D};
  int64_t n = ir_input_len(p, k, sz);
  int32_t *x = malloc(sizeof *x * (size_t)(n > 0 ? n : 1));
  assert_non_null(x);
  for (int64_t e = 0; e < n; e++) {
    int64_t r = pick(0, 9);
    x[e] = (int32_t)(r == 0   ? pick(-2 * s->Lk - 3, 2 * s->Lk + 3)
                     : r < 3  ? pick(-s->Lk, -1)
                     : r < 5  ? pick(0, 3)
                              : pick(0, s->Lk > 1 ? s->Lk - 1 : 1));
  }
  return x;
}

typedef struct tally {
  int runs, errors, bwd, empty_rows, rows;
} tally;

typedef struct tensors {
  float *q, *k, *v, *o[2], *l[2], *dout, *g[2][3];
} tensors;

static float *randn(size_t n) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  assert_non_null(x);
  for (size_t t = 0; t < n; t++) x[t] = gauss();
  return x;
}

static void tensors_free(tensors *T) {
  free(T->q), free(T->k), free(T->v), free(T->dout);
  for (int b = 0; b < 2; b++) {
    free(T->o[b]), free(T->l[b]);
    for (int x = 0; x < 3; x++) free(T->g[b][x]);
  }
}

static void args_for(rt_args *a, const shape *s, tensors *T, const int32_t **ins) {
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D), nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  T->q = randn(nq), T->k = randn(nk), T->v = randn(nk), T->dout = randn(nq);
  for (int b = 0; b < 2; b++) {
    T->o[b] = randn(nq), T->l[b] = randn((size_t)(s->B * s->H * s->Lq));
    T->g[b][0] = randn(nq), T->g[b][1] = randn(nk), T->g[b][2] = randn(nk);
  }
  memset(a, 0, sizeof *a);
  a->B = s->B, a->H = s->H, a->Hkv = s->Hkv, a->Lq = s->Lq, a->Lk = s->Lk, a->D = s->D;
  a->q.data = T->q, a->k.data = T->k, a->v.data = T->v;
  rt_tensor_strides(&a->q, 0, s->H, s->Lq, s->D);
  rt_tensor_strides(&a->k, 0, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a->v, 0, s->Hkv, s->Lk, s->D);
  a->o = a->q;
  a->lse_sb = s->H * s->Lq, a->lse_sh = s->Lq;
  a->inputs = ins;
  a->threads = s->threads;
}

/* 0 when the forwards agree (and, without an error, the backwards). */
static int compare(const ir_program *p, void *kj, void *ki, const shape *s, tally *t) {
  rt_args a;
  tensors T;
  memset(&T, 0, sizeof T);
  int32_t *in[2] = {fill_input(p, 0, s), fill_input(p, 1, s)};
  const int32_t *ins[2] = {in[0], in[1]};
  args_for(&a, s, &T, ins);
  char e[2][512] = {"", ""};
  rt_status st[2];
  const backend *be[2] = {&backend_interp, &backend_jit};
  void *kk[2] = {ki, kj};
  for (int b = 0; b < 2; b++) {
    a.o.data = T.o[b], a.lse = T.l[b];
    st[b] = be[b]->run(kk[b], &a, e[b], sizeof e[b]);
  }
  int bad = 0;
  t->runs++;
  if (st[0] != st[1] || strcmp(e[0], e[1]) != 0) {
    fprintf(stderr, "interp %d '%s', jit %d '%s'\n", st[0], e[0], st[1], e[1]);
    bad = 1;
  } else if (st[0] != RT_OK) {
    t->errors++;
  } else {
    int64_t nrow = s->B * s->H * s->Lq;
    double wo = 0, wl = 0;
    for (int64_t r = 0; r < nrow && !bad; r++) {
      float x = T.l[0][r], y = T.l[1][r];
      t->rows++;
      if (isfinite(x) != isfinite(y)) {
        fprintf(stderr, "mask differs at row %lld: lse %g vs %g\n", (long long)r, x, y);
        bad = 1;
      }
      if (!isfinite(x)) t->empty_rows++;
      else if (fabs((double)x - y) > wl) wl = fabs((double)x - y);
      for (int64_t d = 0; d < s->D; d++) {
        double df = fabs((double)T.o[0][r * s->D + d] - T.o[1][r * s->D + d]);
        if (!(df <= wo)) wo = df;
      }
    }
    if (!bad && !(wo <= 2e-5 && wl <= 1e-4)) {
      fprintf(stderr, "outputs differ: o %g, lse %g\n", wo, wl);
      bad = 1;
    }
    bool did = false;
    for (int b = 0; b < 2 && !bad; b++) { /* backward, from each one's forward */
      rt_grad g = {.dout = a.q};
      g.dout.data = T.dout;
      g.dq = a.q, g.dk = a.k, g.dv = a.v;
      g.dq.data = T.g[b][0], g.dk.data = T.g[b][1], g.dv.data = T.g[b][2];
      a.o.data = T.o[b], a.lse = T.l[b];
      if (rt_grad_empty(&a, &g)) break;
      did = true;
      st[b] = be[b]->backward(kk[b], &a, &g, e[b], sizeof e[b]);
      if (st[b] != RT_OK) {
        fprintf(stderr, "backward %s: %s\n", be[b]->name, e[b]);
        bad = 1;
      }
    }
    size_t n[3] = {(size_t)(nrow * s->D), (size_t)(s->B * s->Hkv * s->Lk * s->D),
                   (size_t)(s->B * s->Hkv * s->Lk * s->D)};
    for (int x = 0; x < 3 && !bad; x++) {
      double big = 1e-1, worst = 0;
      for (size_t u = 0; u < n[x]; u++) {
        if (fabs(T.g[0][x][u]) > big) big = fabs(T.g[0][x][u]);
        double df = fabs((double)T.g[0][x][u] - T.g[1][x][u]);
        if (!(df <= worst)) worst = df;
      }
      if (!(worst <= 1e-4 * big)) {
        fprintf(stderr, "gradient %d differs: %g (largest %g)\n", x, worst, big);
        bad = 1;
      }
    }
    if (!bad && did) t->bwd++;
  }
  if (bad)
    fprintf(stderr, "  B %lld H %lld Hkv %lld Lq %lld Lk %lld D %lld threads %d\n",
            (long long)s->B, (long long)s->H, (long long)s->Hkv, (long long)s->Lq,
            (long long)s->Lk, (long long)s->D, s->threads);
  free(in[0]), free(in[1]);
  tensors_free(&T);
  return bad;
}

static int one_case(uint64_t seed, tally *t) {
  rng = seed * 0x9E3779B97F4A7C15ull | 1;
  for (int k = 0; k < 4; k++) next();
  text src = {.n = 0};
  src.s[0] = 0;
  gen_source(&src, pick(0, 4) == 0 ? 0 : pick(1, 70), pick(0, 4) == 0 ? 0 : pick(1, 40));
  diag *d = diag_new();
  arena *ar = arena_new();
  fe_module *m = fe_load_string(d, ar, "sets.pat", src.s);
  ir_program *p = m ? fe_instantiate(d, m, "p", NULL, 0) : NULL;
  int bad = 0;
  if (!p) {
    fprintf(stderr, "seed %llu: %s\n%s", (unsigned long long)seed, diag_text(d), src.s);
    bad = 1;
  }
  char err[512] = "";
  backend_opts o = {.D = 64, .threads = 1};
  shape s[RUNS];
  for (int r = 0; r < RUNS; r++) rand_shape(&s[r]), s[r].D = s[0].D;
  o.D = s[0].D;
  void *kj = p ? backend_jit.compile(p, &o, err, sizeof err) : NULL;
  void *ki = p ? backend_interp.compile(p, &o, err, sizeof err) : NULL;
  if (p && (!kj || !ki)) {
    fprintf(stderr, "compile: %s\n", err);
    bad = 1;
  }
  for (int r = 0; r < RUNS && !bad; r++) bad = compare(p, kj, ki, &s[r], t);
  if (kj) backend_jit.free(kj);
  if (ki) backend_interp.free(ki);
  if (bad) fprintf(stderr, "seed %llu:\n%s", (unsigned long long)seed, src.s);
  arena_free(ar);
  diag_free(d);
  return bad;
}

static void test_random_sets(void **state) {
  (void)state;
  tally t = {0};
  int failed = 0;
  const char *one = getenv("SPAT_SETS_SEED");
  if (one) {
    failed = one_case(strtoull(one, NULL, 0), &t);
  } else {
    for (int c = 0; c < SMALL(N_CASES, N_CASES / 6); c++) failed += one_case(0x5e75 + (uint64_t)c, &t);
  }
  fprintf(stderr, "sets: %d runs (%d with the same run-time error, %d backwards), "
          "%d rows (%d empty), %d failed\n", t.runs, t.errors, t.bwd, t.rows,
          t.empty_rows, failed);
  assert_int_equal(failed, 0);
  if (!one && !test_small()) {
    assert_true(t.runs >= 3 * 60);
    assert_true(t.errors >= 5 && t.runs - t.errors >= 120);
    assert_true(t.bwd >= 100);
    assert_true(t.empty_rows > 0 && t.empty_rows < t.rows);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_sets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
