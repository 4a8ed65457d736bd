/* test_interp_bwd.c: the reference backward pass (interp_bwd.c) against
 * central finite differences of a forward written here in double.
 *
 * The loss is L = sum(W * o) + sum(U * lse) over rows that have keys, so
 * dL/do = W and dL/dlse = U; each element of q, k and v is moved by +-eps
 * and the change of L compared with the oracle's dq, dk, dv.  The mask is
 * taken once from the interpreter (interp_mask_row) at the unperturbed
 * inputs and kept fixed, as no gradient flows through topk's selection.
 * Cases: every primitive and some compositions, GQA, Lq != Lk both ways,
 * rows with no keys, topk and blocks { topk } away from ties (random data).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "pipeline.h"

typedef struct prob {
  int64_t B, H, Hkv, Lq, Lk, D;
  float *q, *k, *v, *W, *U;  /* W: dL/do, U: dL/dlse */
  uint8_t *mask;             /* [B][H][Lq][Lk] */
} prob;

static uint64_t rng = 88172645463325252ull;
static double uniform(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static int64_t ix(const prob *P, int64_t b, int64_t h, int64_t r, int64_t nh, int64_t L) {
  (void)P;
  return ((b * nh + h) * L + r);
}

/* The forward in double with the fixed mask; returns L. */
static double loss(const prob *P, const double *q, const double *k,
                   const double *v) {
  double L = 0, sc = 1.0 / sqrt((double)P->D);
  int64_t grp = P->H / P->Hkv, D = P->D;
  double *s = malloc(sizeof *s * (size_t)P->Lk);
  for (int64_t b = 0; b < P->B; b++)
    for (int64_t h = 0; h < P->H; h++)
      for (int64_t r = 0; r < P->Lq; r++) {
        const uint8_t *m = P->mask + ix(P, b, h, r, P->H, P->Lq) * P->Lk;
        const double *qr = q + ix(P, b, h, r, P->H, P->Lq) * D;
        double mx = -INFINITY, sum = 0;
        int n = 0;
        for (int64_t j = 0; j < P->Lk; j++) {
          if (!m[j]) continue;
          const double *kj = k + ix(P, b, h / grp, j, P->Hkv, P->Lk) * D;
          s[j] = 0;
          for (int64_t d = 0; d < D; d++) s[j] += qr[d] * kj[d];
          s[j] *= sc;
          mx = n++ == 0 || s[j] > mx ? s[j] : mx;
        }
        if (n == 0) continue;
        for (int64_t j = 0; j < P->Lk; j++)
          if (m[j]) sum += exp(s[j] - mx);
        const float *w = P->W + ix(P, b, h, r, P->H, P->Lq) * D;
        for (int64_t j = 0; j < P->Lk; j++) {
          if (!m[j]) continue;
          const double *vj = v + ix(P, b, h / grp, j, P->Hkv, P->Lk) * D;
          double p = exp(s[j] - mx) / sum;
          for (int64_t d = 0; d < D; d++) L += w[d] * p * vj[d];
        }
        L += P->U[ix(P, b, h, r, P->H, P->Lq)] * (mx + log(sum));
      }
  free(s);
  return L;
}

static rt_tensor tens(float *data, int64_t H, int64_t L, int64_t D) {
  rt_tensor t = {.data = data};
  rt_tensor_strides(&t, 0, H, L, D);
  return t;
}

static void check_case(const char *src, int64_t B, int64_t H, int64_t Hkv,
                       int64_t Lq, int64_t Lk, int64_t D) {
  arena *A = arena_new();
  diag *dg = diag_new();
  char err[512] = "";
  fe_module *m = pl_load(dg, A, NULL, "t.pat", src);
  assert_non_null(m);
  ir_program *p = pl_lower(dg, m, NULL, NULL, 0, err, sizeof err);
  assert_non_null(p);

  prob P = {.B = B, .H = H, .Hkv = Hkv, .Lq = Lq, .Lk = Lk, .D = D};
  size_t nq = (size_t)(B * H * Lq * D), nk = (size_t)(B * Hkv * Lk * D);
  P.q = malloc(nq * sizeof(float)), P.k = malloc(nk * sizeof(float));
  P.v = malloc(nk * sizeof(float)), P.W = malloc(nq * sizeof(float));
  P.U = malloc((size_t)(B * H * Lq) * sizeof(float));
  P.mask = malloc((size_t)(B * H * Lq * Lk));
  for (size_t x = 0; x < nq; x++) P.q[x] = (float)uniform(), P.W[x] = (float)uniform();
  for (size_t x = 0; x < nk; x++) P.k[x] = (float)uniform(), P.v[x] = (float)uniform();
  for (int64_t x = 0; x < B * H * Lq; x++) P.U[x] = (float)uniform();

  float *o = calloc(nq, sizeof(float)), *lse = calloc((size_t)(B * H * Lq), sizeof(float));
  rt_args a = {.B = B, .H = H, .Hkv = Hkv, .Lq = Lq, .Lk = Lk, .D = D,
               .q = tens(P.q, H, Lq, D), .k = tens(P.k, Hkv, Lk, D),
               .v = tens(P.v, Hkv, Lk, D), .o = tens(o, H, Lq, D),
               .lse = lse, .lse_sh = Lq, .lse_sb = H * Lq, .threads = 2};
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t r = 0; r < Lq; r++)
        assert_int_equal(interp_mask_row(p, &a, b, h, r,
                                         P.mask + ix(&P, b, h, r, H, Lq) * Lk,
                                         err, sizeof err), RT_OK);
  float *dq = calloc(nq, sizeof(float)), *dk = calloc(nk, sizeof(float));
  float *dv = calloc(nk, sizeof(float));
  rt_grad g = {.dout = tens(P.W, H, Lq, D), .dlse = P.U, .dq = tens(dq, H, Lq, D),
               .dk = tens(dk, Hkv, Lk, D), .dv = tens(dv, Hkv, Lk, D)};
  assert_int_equal(interp_attention_backward(p, &a, &g, err, sizeof err), RT_OK);

  double *q = malloc(nq * sizeof(double)), *k = malloc(nk * sizeof(double));
  double *v = malloc(nk * sizeof(double));
  for (size_t x = 0; x < nq; x++) q[x] = P.q[x];
  for (size_t x = 0; x < nk; x++) k[x] = P.k[x], v[x] = P.v[x];
  const double eps = 1e-5;
  struct { double *x; const float *grad; size_t n; const char *name; } sets[] = {
      {q, dq, nq, "dq"}, {k, dk, nk, "dk"}, {v, dv, nk, "dv"}};
  for (int s = 0; s < 3; s++)
    for (size_t x = 0; x < sets[s].n; x++) {
      double keep = sets[s].x[x];
      sets[s].x[x] = keep + eps;
      double up = loss(&P, q, k, v);
      sets[s].x[x] = keep - eps;
      double down = loss(&P, q, k, v);
      sets[s].x[x] = keep;
      double fd = (up - down) / (2 * eps), got = sets[s].grad[x];
      if (fabs(fd - got) > 1e-4 * (1 + fabs(fd))) {
        print_error("%s: %s[%zu] = %.8g, finite difference %.8g (B%lld H%lld/%lld Lq%lld Lk%lld)\n",
                    src, sets[s].name, x, got, fd, (long long)B, (long long)H,
                    (long long)Hkv, (long long)Lq, (long long)Lk);
        fail();
      }
    }
  free(q), free(k), free(v), free(dq), free(dk), free(dv), free(o), free(lse);
  free(P.q), free(P.k), free(P.v), free(P.W), free(P.U), free(P.mask);
  diag_free(dg);
  arena_free(A);
}

static const char *const pats[] = {
    "pattern p = full;",
    "pattern p = causal;",
    "pattern p = window(1);",
    "pattern p = window(2, 0) | cols(0);",
    "pattern p = dilated(1, 2) - block(2);",
    "pattern p = stride(3) & causal;",
    "pattern p = rows(1 .. 3) | global(-1);",
    "pattern p = random(2, 5);",
    "pattern p = where((i + 2 * j) % 3 == 0);",
    "pattern p = h == 0 ? causal : window(1);",
    "pattern p = cols(5 .. Lk) & causal;", /* early rows have no keys */
    "pattern p = none;",
    "pattern p = topk(2, causal);",
    "pattern p = blocks(2) { topk(1, full) | window(0) };",
};

static void test_finite_differences(void **st) {
  (void)st;
  static const int64_t shapes[][2] = {{6, 6}, {4, 9}, {9, 4}};
  for (size_t x = 0; x < sizeof pats / sizeof pats[0]; x++)
    for (size_t s = 0; s < 3; s++) {
      check_case(pats[x], 2, 2, 2, shapes[s][0], shapes[s][1], 3);
      check_case(pats[x], 1, 4, 2, shapes[s][0], shapes[s][1], 4); /* GQA */
      check_case(pats[x], 1, 2, 1, shapes[s][0], shapes[s][1], 2); /* MQA */
    }
}

/* Errors: bad shapes, NULL tensors, a run-time error of the pattern. */
static void test_errors(void **st) {
  (void)st;
  arena *A = arena_new();
  diag *dg = diag_new();
  char err[512] = "";
  fe_module *m = pl_load(dg, A, NULL, "e.pat", "pattern p(runtime n = 0) = window(n);");
  assert_non_null(m);
  ir_program *p = pl_lower(dg, m, NULL, NULL, 0, err, sizeof err);
  assert_non_null(p);
  float buf[64] = {0};
  int64_t n = -1;
  rt_args a = {.B = 1, .H = 1, .Hkv = 1, .Lq = 2, .Lk = 2, .D = 4,
               .q = tens(buf, 1, 2, 4), .k = tens(buf, 1, 2, 4),
               .v = tens(buf, 1, 2, 4), .o = tens(buf, 1, 2, 4), .runtime = &n};
  float out[3][8];
  rt_grad g = {.dout = tens(buf, 1, 2, 4), .dq = tens(out[0], 1, 2, 4),
               .dk = tens(out[1], 1, 2, 4), .dv = tens(out[2], 1, 2, 4)};
  assert_int_equal(interp_attention_backward(p, &a, &g, err, sizeof err), RT_ERANGE);
  assert_non_null(strstr(err, "e.pat:1:"));
  assert_int_equal(interp_attention_backward(p, &a, NULL, err, sizeof err), RT_EINVAL);
  a.H = 3, a.Hkv = 2;
  assert_int_equal(interp_attention_backward(p, &a, &g, err, sizeof err), RT_EINVAL);
  assert_non_null(strstr(err, "bad shape"));
  a.H = 1, a.Hkv = 1;
  g.dk.data = NULL;
  assert_int_equal(interp_attention_backward(p, &a, &g, err, sizeof err), RT_EINVAL);
  diag_free(dg);
  arena_free(A);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_finite_differences),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
