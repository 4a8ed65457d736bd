/* test_lang_v2.c: language version 2 in the interpreter, against formulas
 * written out here: scores (ALiBi, softcap near the cap, -inf from E, also
 * at Lk = 65536), shaped and float inputs, rows of inputs as index sets,
 * diagonals, route, bit operations, functions, local names, top-left
 * alignment, run-time errors with locations, and the score's backward
 * (dE/ds and float-input gradients against finite differences). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend.h"
#include "interp.h"

typedef struct prog {
  diag *d;
  arena *a;
  ir_program *p;
} prog;

static prog load(const char *src, const char *name) {
  prog g = {diag_new(), arena_new(), NULL};
  fe_module *m = fe_load_string(g.d, g.a, "v2.pat", src);
  if (m) g.p = fe_instantiate(g.d, m, name, NULL, 0);
  if (!g.p) fprintf(stderr, "%s", diag_text(g.d));
  assert_non_null(g.p);
  return g;
}

static void unload(prog *g) {
  arena_free(g->a);
  diag_free(g->d);
}

typedef struct run {
  int64_t B, H, Lq, Lk, D;
  float *q, *k, *v, *o, *lse;
  rt_args a;
} run;

static float rnd(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static run mkrun(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float amp) {
  run r = {B, H, Lq, Lk, D, NULL, NULL, NULL, NULL, NULL, {0}};
  unsigned s = 7;
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * H * Lk * D);
  r.q = malloc(nq * sizeof *r.q), r.o = calloc(nq, sizeof *r.o);
  r.k = malloc(nk * sizeof *r.k), r.v = malloc(nk * sizeof *r.v);
  r.lse = calloc((size_t)(B * H * Lq), sizeof *r.lse);
  for (size_t t = 0; t < nq; t++) r.q[t] = amp * rnd(&s);
  for (size_t t = 0; t < nk; t++) r.k[t] = amp * rnd(&s), r.v[t] = rnd(&s);
  rt_args *a = &r.a;
  a->B = B, a->H = H, a->Hkv = H, a->Lq = Lq, a->Lk = Lk, a->D = D;
  a->q.data = r.q, a->k.data = r.k, a->v.data = r.v, a->o.data = r.o;
  rt_tensor_strides(&a->q, 0, H, Lq, D);
  rt_tensor_strides(&a->k, 0, H, Lk, D);
  rt_tensor_strides(&a->v, 0, H, Lk, D);
  rt_tensor_strides(&a->o, 0, H, Lq, D);
  a->lse = r.lse, a->lse_sh = Lq, a->lse_sb = H * Lq;
  a->threads = 1;
  return r;
}

static void unrun(run *r) { free(r->q), free(r->k), free(r->v), free(r->o), free(r->lse); }

static double dotd(const float *x, const float *y, int64_t D) {
  double s = 0;
  for (int64_t d = 0; d < D; d++) s += (double)x[d] * y[d];
  return s;
}

/* The reference: causal (bottom-right) with score f(s, b, h, i, j). */
typedef double (*score_fn)(double s, int64_t h, int64_t i, int64_t j, const void *u);

static void check_causal(run *r, score_fn f, const void *u, int64_t r0, double tol) {
  int64_t off = r->Lk - r->Lq, D = r->D;
  double *e = malloc(sizeof *e * (size_t)r->Lk);
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t h = 0; h < r->H; h++)
      for (int64_t row = r0; row < r->Lq; row++) {
        int64_t i = row + off;
        const float *q = r->q + ((b * r->H + h) * r->Lq + row) * D;
        double m = -INFINITY, sum = 0, o[64] = {0};
        for (int64_t j = 0; j <= i; j++) {
          const float *k = r->k + ((b * r->H + h) * r->Lk + j) * D;
          e[j] = f(dotd(q, k, D) / sqrt((double)D), h, i, j, u);
          if (e[j] > m) m = e[j];
        }
        for (int64_t j = 0; j <= i && m > -INFINITY; j++) {
          double w = exp(e[j] - m);
          sum += w;
          for (int64_t d = 0; d < D; d++) o[d] += w * r->v[((b * r->H + h) * r->Lk + j) * D + d];
        }
        const float *got = r->o + ((b * r->H + h) * r->Lq + row) * D;
        for (int64_t d = 0; d < D; d++)
          assert_true(fabs(got[d] - (sum > 0 ? o[d] / sum : 0)) < tol);
        float l = r->lse[(b * r->H + h) * r->Lq + row];
        if (sum > 0) assert_true(fabs(l - (m + log(sum))) < tol * (1 + fabs(m)));
        else assert_true(isinf(l) && l < 0);
      }
  free(e);
}

static double alibi(double s, int64_t h, int64_t i, int64_t j, const void *u) {
  return s - ((const float *)u)[h] * (double)(i - j);
}

static void test_alibi(void **st) {
  (void)st;
  prog g = load("pattern alibi(input slope: float[H]) = causal with score s - slope[h] * (i - j);",
                NULL);
  run r = mkrun(2, 3, 5, 9, 8, 1.0f);
  float slope[3] = {0.5f, 0.25f, 0.125f};
  const int32_t *ins[1] = {(const int32_t *)(const void *)slope};
  r.a.inputs = ins;
  char err[512];
  assert_int_equal(interp_attention(g.p, &r.a, err, sizeof err), RT_OK);
  check_causal(&r, alibi, slope, 0, 1e-5);
  unrun(&r);
  unload(&g);
}

static void test_alibi_long(void **st) {
  (void)st;
  prog g = load("pattern alibi(input slope: float[H]) = causal with score s - slope[h] * (i - j);",
                NULL);
  run r = mkrun(1, 1, 2, 65536, 16, 1.0f);
  float slope[1] = {1.0f / 4096};
  const int32_t *ins[1] = {(const int32_t *)(const void *)slope};
  r.a.inputs = ins;
  char err[512];
  assert_int_equal(interp_attention(g.p, &r.a, err, sizeof err), RT_OK);
  check_causal(&r, alibi, slope, 0, 1e-5);
  unrun(&r);
  unload(&g);
}

static double softcap(double s, int64_t h, int64_t i, int64_t j, const void *u) {
  (void)h, (void)i, (void)j, (void)u;
  return 5.0 * tanh(s / 5.0);
}

static void test_softcap_near_cap(void **st) {
  (void)st;
  prog g = load("pattern softcap(cap = 5) = causal with score cap * tanh(s / cap);", NULL);
  run r = mkrun(1, 2, 6, 6, 16, 12.0f); /* scores of tens: E within 1e-3 of the cap */
  char err[512];
  assert_int_equal(interp_attention(g.p, &r.a, err, sizeof err), RT_OK);
  check_causal(&r, softcap, NULL, 0, 1e-5);
  unrun(&r);
  unload(&g);
}

static double minf(double s, int64_t h, int64_t i, int64_t j, const void *u) {
  (void)h, (void)i, (void)u;
  return j % 2 == 0 ? -INFINITY : s;
}

static void test_neg_inf_scores(void **st) {
  (void)st;
  prog g = load("pattern p = causal with score (j % 2 == 0 ? -inf : s);", NULL);
  run r = mkrun(1, 1, 4, 4, 8, 1.0f); /* row 0 only sees j = 0: empty */
  char err[512];
  assert_int_equal(interp_attention(g.p, &r.a, err, sizeof err), RT_OK);
  check_causal(&r, minf, NULL, 0, 1e-5);
  assert_true(isinf(r.lse[0]) && r.lse[0] < 0);
  for (int d = 0; d < 8; d++) assert_true(r.o[d] == 0.0f);
  unrun(&r);
  unload(&g);
}

static void mask_of(const ir_program *p, const rt_args *a, int64_t b, int64_t h, int64_t row,
                    uint8_t *out) {
  char err[512];
  rt_status st = interp_mask_row(p, a, b, h, row, out, err, sizeof err);
  if (st != RT_OK) fprintf(stderr, "%s\n", err);
  assert_int_equal(st, RT_OK);
}

static void test_shaped_inputs(void **st) {
  (void)st;
  prog g = load("pattern docs(input doc: int[B, Lk], input vidx: int[H, 3]) =\n"
                "  causal & where(doc[b, i] == doc[b, j]) | cols(vidx[h]);", NULL);
  run r = mkrun(2, 2, 6, 6, 4, 1.0f);
  int32_t doc[12] = {0, 0, 1, 1, 1, 2, 0, 1, 1, 1, 2, 2};
  int32_t vidx[6] = {-1, 0, 0, 4, 4, 4};
  const int32_t *ins[2] = {doc, vidx};
  r.a.inputs = ins;
  uint8_t m[6];
  for (int64_t b = 0; b < 2; b++)
    for (int64_t h = 0; h < 2; h++)
      for (int64_t i = 0; i < 6; i++) {
        mask_of(g.p, &r.a, b, h, i, m);
        for (int64_t j = 0; j < 6; j++) {
          bool want = j <= i && doc[b * 6 + i] == doc[b * 6 + j];
          for (int t = 0; t < 3; t++) want |= (vidx[h * 3 + t] + (vidx[h * 3 + t] < 0 ? 6 : 0)) == j;
          assert_int_equal(m[j], want);
        }
      }
  unrun(&r);
  unload(&g);
}

static void test_index_errors(void **st) {
  (void)st;
  prog g = load("pattern p(input x: int[Lq, 4]) = where(x[i, j] == 0);", NULL);
  run r = mkrun(1, 1, 3, 6, 4, 1.0f);
  int32_t x[12] = {0};
  const int32_t *ins[1] = {x};
  r.a.inputs = ins;
  uint8_t m[6];
  char err[512];
  assert_int_equal(interp_mask_row(g.p, &r.a, 0, 0, 0, m, err, sizeof err), RT_ERANGE);
  assert_non_null(strstr(err, "v2.pat:1:"));
  assert_non_null(strstr(err, "dimension 1 of input 'x'")); /* i = 3 >= Lq */
  unrun(&r);
  unload(&g);
  g = load("pattern p = where((1 << (j - 2)) > 0);", NULL);
  r = mkrun(1, 1, 2, 4, 4, 1.0f);
  assert_int_equal(interp_mask_row(g.p, &r.a, 0, 0, 0, m, err, sizeof err), RT_ERANGE);
  assert_non_null(strstr(err, "shift count -2"));
  unrun(&r);
  unload(&g);
}

static void test_ints_funcs_diagonals(void **st) {
  (void)st;
  prog g = load("let f(x, y) = (x ^ y) & 3;\n"
                "pattern p(W = 4) = let c(q) = clamp(q / W, 1, 2) in\n"
                "  where(f(i, j) == 0 && c(i) == c(j) && (~i | 1) != 0) | diagonals({0, 5 .. 7});\n"
                "pattern t aligned(top_left) = causal;", "p");
  run r = mkrun(1, 1, 16, 16, 4, 1.0f);
  uint8_t m[16];
  for (int64_t i = 0; i < 16; i++) {
    mask_of(g.p, &r.a, 0, 0, i, m);
    for (int64_t j = 0; j < 16; j++) {
      int64_t ci = i / 4 < 1 ? 1 : i / 4 > 2 ? 2 : i / 4, cj = j / 4 < 1 ? 1 : j / 4 > 2 ? 2 : j / 4;
      bool want = (((i ^ j) & 3) == 0 && ci == cj) || i - j == 0 || (i - j >= 5 && i - j < 7);
      assert_int_equal(m[j], want);
    }
  }
  unrun(&r);
  unload(&g);
  g = load("pattern t aligned(top_left) = causal & where(r == i);", NULL);
  r = mkrun(1, 1, 3, 8, 4, 1.0f);
  mask_of(g.p, &r.a, 0, 0, 0, m);
  assert_int_equal(m[0], 1);
  assert_int_equal(m[1], 0);
  unrun(&r);
  unload(&g);
}

static void test_route(void **st) {
  (void)st;
  prog g = load("pattern rt(input C: float[H, 3, D]) = route(C);", NULL);
  run r = mkrun(1, 2, 5, 7, 4, 1.0f);
  float C[2 * 3 * 4];
  unsigned s = 99;
  for (int t = 0; t < 24; t++) C[t] = rnd(&s);
  const int32_t *ins[1] = {(const int32_t *)(const void *)C};
  r.a.inputs = ins;
  uint8_t m[7];
  for (int64_t h = 0; h < 2; h++)
    for (int64_t row = 0; row < 5; row++) {
      mask_of(g.p, &r.a, 0, h, row, m);
      int cq = 0, ck;
      double bq = -INFINITY;
      for (int t = 0; t < 3; t++) {
        double v = dotd(r.q + (h * 5 + row) * 4, C + (h * 3 + t) * 4, 4);
        if (v > bq) bq = v, cq = t;
      }
      for (int64_t j = 0; j < 7; j++) {
        double bk = -INFINITY;
        ck = 0;
        for (int t = 0; t < 3; t++) {
          double v = dotd(r.k + (h * 7 + j) * 4, C + (h * 3 + t) * 4, 4);
          if (v > bk) bk = v, ck = t;
        }
        assert_int_equal(m[j], cq == ck);
      }
    }
  unrun(&r);
  unload(&g);
}

/* dE/ds and the slope gradient of ALiBi with softcap, by central differences. */
static void test_score_backward(void **st) {
  (void)st;
  prog g = load("pattern p(input slope: float[H]) =\n"
                "  causal with score 3.0 * tanh((s - slope[h] * (i - j)) / 3.0);", NULL);
  run r = mkrun(1, 2, 4, 4, 8, 2.0f);
  float slope[2] = {0.3f, 0.7f};
  const int32_t *ins[1] = {(const int32_t *)(const void *)slope};
  r.a.inputs = ins;
  interp_scorer *sc = interp_scorer_new(g.p, &r.a);
  assert_non_null(sc);
  double E, dE, Ep, Em, dd;
  assert_int_equal(interp_score(sc, 0, 1, 3, 1, 0.8, &E, &dE), RT_OK);
  assert_int_equal(interp_score(sc, 0, 1, 3, 1, 0.8 + 1e-6, &Ep, &dd), RT_OK);
  assert_int_equal(interp_score(sc, 0, 1, 3, 1, 0.8 - 1e-6, &Em, &dd), RT_OK);
  assert_true(fabs(dE - (Ep - Em) / 2e-6) < 1e-6);
  double g0[2] = {0, 0}, *gs[1] = {g0};
  assert_int_equal(interp_score_grad(sc, 0, 1, 3, 1, 0.8, 1.0, gs), RT_OK);
  slope[1] += 1e-3f;
  double hp = slope[1];
  assert_int_equal(interp_score(sc, 0, 1, 3, 1, 0.8, &Ep, &dd), RT_OK);
  slope[1] -= 2e-3f;
  double hm = slope[1];
  assert_int_equal(interp_score(sc, 0, 1, 3, 1, 0.8, &Em, &dd), RT_OK);
  assert_true(fabs(g0[1] - (Ep - Em) / (hp - hm)) < 1e-4);
  assert_true(g0[0] == 0);
  interp_scorer_free(sc);
  /* the whole backward runs and fills the float input's gradient */
  slope[1] = 0.7f;
  size_t n = (size_t)(2 * 4 * 8);
  float *dout = calloc(n, 4), *dq = calloc(n, 4), *dk = calloc(n, 4), *dv = calloc(n, 4);
  for (size_t t = 0; t < n; t++) dout[t] = (float)(t % 7) / 7.0f - 0.4f;
  float dslope[2] = {0, 0};
  float *const dins[1] = {dslope};
  rt_grad gr = {{dout, 0, 0, 0}, NULL, {dq, 0, 0, 0}, {dk, 0, 0, 0}, {dv, 0, 0, 0}, dins};
  rt_tensor_strides(&gr.dout, 0, 2, 4, 8);
  rt_tensor_strides(&gr.dq, 0, 2, 4, 8);
  rt_tensor_strides(&gr.dk, 0, 2, 4, 8);
  rt_tensor_strides(&gr.dv, 0, 2, 4, 8);
  char err[512];
  assert_int_equal(interp_attention_backward(g.p, &r.a, &gr, err, sizeof err), RT_OK);
  assert_true(dslope[0] != 0 && dslope[1] != 0);
  free(dout), free(dq), free(dk), free(dv);
  unrun(&r);
  unload(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alibi),
      cmocka_unit_test(test_alibi_long),
      cmocka_unit_test(test_softcap_near_cap),
      cmocka_unit_test(test_neg_inf_scores),
      cmocka_unit_test(test_shaped_inputs),
      cmocka_unit_test(test_index_errors),
      cmocka_unit_test(test_ints_funcs_diagonals),
      cmocka_unit_test(test_route),
      cmocka_unit_test(test_score_backward),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
