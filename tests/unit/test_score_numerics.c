/* test_score_numerics.c: the numerics of `with score E` in the compiled
 * kernel, against the interpreter (double) through the public API: ALiBi
 * over Lk = 65536 (distances that are large integers converted to float,
 * slopes that let far keys matter and slopes that make them vanish), a
 * softcap whose scores sit at the cap (tanh saturated), and scores of -inf
 * from E, on some pairs and on whole rows (empty rows: o = 0, lse = -inf,
 * exactly, in both).  The backward too: dq, dk, dv and the gradient of a
 * float input E reads (ALiBi's slopes, summed over 65536 distances), finite
 * where E is -inf (no NaN from a pair that weighs nothing).
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

#include "small.h"
#include "spat.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static float gauss(void) {
  double u[2];
  for (int t = 0; t < 2; t++) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    u[t] = ((double)((z ^ (z >> 31)) >> 11) + 1.0) * 0x1p-53;
  }
  return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static float *randn(size_t n, float mul) {
  float *x = malloc(n * sizeof *x);
  assert_non_null(x);
  for (size_t t = 0; t < n; t++) x[t] = mul * gauss();
  return x;
}

typedef struct shape {
  int64_t H, Lq, Lk, D;
  float qmul; /* q's scale: large values push scores to a softcap's cap */
  int64_t B;  /* 0: 1 */
} shape;

static int64_t nb(const shape *s) { return s->B > 0 ? s->B : 1; }

typedef struct result {
  float *o, *lse;
} result;

static result run(const char *src, spat_backend be, const shape *s,
                  const float *q, const float *k, const float *v,
                  const spat_value *args, size_t n_args) {
  spat_ctx *ctx = spat_ctx_new();
  assert_non_null(ctx);
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(ctx, "numerics.pat", src, NULL, &p);
  if (st != SPAT_OK) fail_msg("%s\n%s", src, spat_ctx_last_diagnostics(ctx));
  spat_compile_options o = {.D = s->D, .threads = 1, .backend = be};
  spat_kernel *kern = NULL;
  st = spat_compile(p, &o, &kern);
  if (st != SPAT_OK) fail_msg("%s: %s", src, spat_ctx_error(ctx));
  result r = {malloc(sizeof(float) * (size_t)(nb(s) * s->H * s->Lq * s->D)),
              malloc(sizeof(float) * (size_t)(nb(s) * s->H * s->Lq))};
  assert_true(r.o && r.lse);
  spat_tensors t = {.B = nb(s), .H = s->H, .Hkv = s->H, .Lq = s->Lq, .Lk = s->Lk,
                    .q = q, .k = k, .v = v, .o = r.o, .lse = r.lse};
  st = spat_kernel_call(kern, &t, args, n_args);
  if (st != SPAT_OK) fail_msg("%s: %s", src, spat_ctx_error(ctx));
  spat_kernel_free(kern);
  spat_pattern_free(p);
  spat_ctx_free(ctx);
  return r;
}

/* The JIT's o and lse against the interpreter's: the same rows empty
 * (lse -inf, o 0 exactly), the rest within tol relative; returns the number
 * of empty rows. */
static int64_t compare(const char *src, const shape *s, const spat_value *args,
                       size_t n_args, double tol) {
  size_t nq = (size_t)(nb(s) * s->H * s->Lq * s->D),
         nk = (size_t)(nb(s) * s->H * s->Lk * s->D);
  float *q = randn(nq, s->qmul), *k = randn(nk, 1), *v = randn(nk, 1);
  result ref = run(src, SPAT_BACKEND_INTERP, s, q, k, v, args, n_args);
  result jit = run(src, SPAT_BACKEND_JIT, s, q, k, v, args, n_args);
  int64_t empty = 0;
  for (int64_t r = 0; r < nb(s) * s->H * s->Lq; r++) {
    float a = ref.lse[r], b = jit.lse[r];
    if (a == -INFINITY) {
      empty++;
      if (b != -INFINITY) fail_msg("%s: row %lld: lse interp -inf, jit %g", src,
                                   (long long)r, (double)b);
      for (int64_t d = 0; d < s->D; d++) assert_true(jit.o[r * s->D + d] == 0.0f);
      continue;
    }
    if (!(isfinite(b) && fabs((double)a - b) <= tol * fmax(1.0, fabs((double)a))))
      fail_msg("%s: row %lld: lse interp %.9g, jit %.9g", src, (long long)r,
               (double)a, (double)b);
    for (int64_t d = 0; d < s->D; d++) {
      double x = ref.o[r * s->D + d], y = jit.o[r * s->D + d];
      if (!(fabs(x - y) <= tol * fmax(1.0, fabs(x))))
        fail_msg("%s: row %lld, d %lld: o interp %.9g, jit %.9g", src,
                 (long long)r, (long long)d, x, y);
    }
  }
  free(q), free(k), free(v);
  free(ref.o), free(ref.lse), free(jit.o), free(jit.lse);
  return empty;
}

/* The gradients of one backward run of backend be (its own forward first);
 * dslope: NULL or one float per element of the single float input. */
typedef struct grads {
  float *dq, *dk, *dv, *dslope;
} grads;

static grads backward(const char *src, spat_backend be, const shape *s,
                      const float *q, const float *k, const float *v,
                      const float *dout, const spat_value *args, size_t n_args,
                      int64_t n_slope) {
  spat_ctx *ctx = spat_ctx_new();
  assert_non_null(ctx);
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(ctx, "numerics.pat", src, NULL, &p) != SPAT_OK)
    fail_msg("%s\n%s", src, spat_ctx_last_diagnostics(ctx));
  spat_compile_options o = {.D = s->D, .threads = 1, .backend = be};
  spat_kernel *kern = NULL;
  if (spat_compile(p, &o, &kern) != SPAT_OK) fail_msg("%s: %s", src, spat_ctx_error(ctx));
  size_t nq = (size_t)(nb(s) * s->H * s->Lq * s->D),
         nk = (size_t)(nb(s) * s->H * s->Lk * s->D);
  float *out = malloc(nq * sizeof *out),
        *lse = malloc((size_t)(nb(s) * s->H * s->Lq) * sizeof *lse);
  grads g = {calloc(nq, sizeof(float)), calloc(nk, sizeof(float)),
             calloc(nk, sizeof(float)), n_slope ? calloc((size_t)n_slope, sizeof(float)) : NULL};
  assert_true(out && lse && g.dq && g.dk && g.dv && (!n_slope || g.dslope));
  spat_tensors t = {.B = nb(s), .H = s->H, .Hkv = s->H, .Lq = s->Lq, .Lk = s->Lk,
                    .q = q, .k = k, .v = v, .o = out, .lse = lse};
  if (spat_kernel_call(kern, &t, args, n_args) != SPAT_OK)
    fail_msg("%s: %s", src, spat_ctx_error(ctx));
  float *const dins[1] = {g.dslope};
  spat_grads gr = {.dout = dout, .dq = g.dq, .dk = g.dk, .dv = g.dv,
                   .dinputs = n_slope ? dins : NULL};
  if (spat_kernel_backward(kern, &t, &gr, args, n_args) != SPAT_OK)
    fail_msg("%s: backward: %s", src, spat_ctx_error(ctx));
  free(out), free(lse);
  spat_kernel_free(kern);
  spat_pattern_free(p);
  spat_ctx_free(ctx);
  return g;
}

/* x (the JIT's) against ref (the interpreter's), n values: finite, and
 * within tol of ref relative to the largest |ref| (gradients sum many
 * terms of both signs, so a per-element relative bound means nothing). */
static void near_all(const char *src, const char *what, const float *ref,
                     const float *x, size_t n, double tol) {
  double big = 0;
  for (size_t t = 0; t < n; t++) big = fmax(big, fabs((double)ref[t]));
  for (size_t t = 0; t < n; t++)
    if (!(isfinite(x[t]) && fabs((double)x[t] - ref[t]) <= tol * fmax(big, 1e-6)))
      fail_msg("%s: %s[%zu]: interp %.9g, jit %.9g (largest %.3g)", src, what, t,
               (double)ref[t], (double)x[t], big);
}

static void compare_bwd(const char *src, const shape *s, const spat_value *args,
                        size_t n_args, int64_t n_slope, double tol) {
  size_t nq = (size_t)(nb(s) * s->H * s->Lq * s->D),
         nk = (size_t)(nb(s) * s->H * s->Lk * s->D);
  float *q = randn(nq, s->qmul), *k = randn(nk, 1), *v = randn(nk, 1);
  float *dout = randn(nq, 1);
  grads ref = backward(src, SPAT_BACKEND_INTERP, s, q, k, v, dout, args, n_args, n_slope);
  grads jit = backward(src, SPAT_BACKEND_JIT, s, q, k, v, dout, args, n_args, n_slope);
  near_all(src, "dq", ref.dq, jit.dq, nq, tol);
  near_all(src, "dk", ref.dk, jit.dk, nk, tol);
  near_all(src, "dv", ref.dv, jit.dv, nk, tol);
  if (n_slope) near_all(src, "dslope", ref.dslope, jit.dslope, (size_t)n_slope, tol);
  free(q), free(k), free(v), free(dout);
  free(ref.dq), free(ref.dk), free(ref.dv), free(ref.dslope);
  free(jit.dq), free(jit.dk), free(jit.dv), free(jit.dslope);
}

/* ALiBi at Lk = 65536: the last 64 rows see up to 65536 keys; slope 2^-12
 * keeps far keys in the softmax (exp(-16) at the far end), slope 2^-1
 * makes them vanish (distances to 65535 become scores near -32768). */
static void alibi_long(void **state) {
  (void)state;
  static const char *src =
      "pattern alibi(input slope: float[H]) = causal with score s - slope[h] * (i - j);";
  shape s = {2, 64, SMALL(65536, 8192), 16, 1.0f, 1};
  float slope[2] = {0x1p-12f, 0.5f};
  spat_value args[1] = {spat_input_f32(slope)};
  assert_int_equal(compare(src, &s, args, 1, 2e-4), 0);
  compare_bwd(src, &s, args, 1, 2, 1e-3);
}

/* Softcap with scores far beyond the cap: q * 40 gives |s| up to about
 * 100 against cap 5, so cap * tanh(s / cap) sits at +-5 (tanh saturated)
 * for most pairs, and the softmax is over nearly equal scores. */
static void softcap_at_cap(void **state) {
  (void)state;
  static const char *src =
      "pattern sc(cap = 5) = causal with score cap * tanh(s / cap);";
  shape s = {2, 200, 200, 64, 40.0f, 1};
  assert_int_equal(compare(src, &s, NULL, 0, 1e-4), 0);
  compare_bwd(src, &s, NULL, 0, 0, 1e-3);
  /* a cap of 1 at scores of about 1e3: still saturated, still finite */
  static const char *src1 =
      "pattern sc1(cap = 1) = window(40, 0) with score cap * tanh(s / cap);";
  shape s1 = {1, 130, 130, 32, 200.0f, 1};
  assert_int_equal(compare(src1, &s1, NULL, 0, 1e-4), 0);
}

/* Scores of -inf from E: on every third key (the rest of the row stays),
 * and on whole rows (i < 5, and every row of head 1): those rows are empty
 * in both backends. */
static void minus_inf_scores(void **state) {
  (void)state;
  static const char *some =
      "pattern some = causal with score j % 3 == 0 ? -inf : s;";
  shape s = {2, 150, 150, 32, 1.0f, 1};
  /* row 0 sees only key 0, which scores -inf: empty, in both heads; the
   * other rows lose every third key */
  assert_int_equal(compare(some, &s, NULL, 0, 1e-4), 2);
  compare_bwd(some, &s, NULL, 0, 0, 1e-3);
  static const char *rows =
      "pattern emptied = full with score i < 5 || h == 1 ? -inf : s - 0.5 * (i - j);";
  assert_int_equal(compare(rows, &s, NULL, 0, 1e-4), 5 + 150);
  compare_bwd(rows, &s, NULL, 0, 0, 1e-3);
}

/* A score on a pattern the kernel would run as an equality join (document
 * ids, sorted and shuffled): the join's tiles are plain, so the score must
 * still apply (the kernel takes the tile plan for scored patterns). */
static void join_with_score(void **state) {
  (void)state;
  static const char *src =
      "pattern docs(input doc: int[]) = where(doc[i] == doc[j]) with score s - 0.25 * abs(i - j);";
  shape s = {2, 300, 300, 32, 1.0f, 1};
  int32_t doc[300];
  for (int t = 0; t < 300; t++) doc[t] = t / 37;              /* sorted */
  spat_value args[1] = {spat_input(doc)};
  assert_int_equal(compare(src, &s, args, 1, 1e-4), 0);
  for (int t = 0; t < 300; t++) doc[t] = (t * 7919) % 5;      /* shuffled */
  assert_int_equal(compare(src, &s, args, 1, 1e-4), 0);
  compare_bwd(src, &s, args, 1, 0, 1e-3);
}

/* Scores that read the batch index and the sizes B, Hkv, D, and a float
 * input dimensioned by them (per-sequence, per-head slopes). */
static void batch_in_score(void **state) {
  (void)state;
  static const char *src =
      "pattern p(input w: float[B, H]) = window(50, 10) with score "
      "s - w[b, h] * abs(i - j) + (b == 1 ? 0.5 : 0.0) * (D / 16) - 0.01 * (Hkv + B);";
  shape s = {3, 90, 110, 32, 1.0f, 2};
  float w[6] = {0.5f, 0.25f, 0.125f, 0.0625f, 1.0f, 0.03125f};
  spat_value args[1] = {spat_input_f32(w)};
  assert_int_equal(compare(src, &s, args, 1, 1e-4), 0);
  compare_bwd(src, &s, args, 1, 6, 1e-3);
}

/* The message of a run that must fail (status SPAT_ERANGE), from backend be. */
static void failing_run(const char *src, spat_backend be, const shape *s,
                        const spat_value *args, size_t n_args, char *msg, size_t n) {
  size_t nq = (size_t)(nb(s) * s->H * s->Lq * s->D), nk = (size_t)(nb(s) * s->H * s->Lk * s->D);
  float *q = randn(nq, 1), *k = randn(nk, 1), *v = randn(nk, 1);
  float *o = malloc(nq * sizeof *o), *lse = malloc((size_t)(nb(s) * s->H * s->Lq) * sizeof *lse);
  spat_ctx *ctx = spat_ctx_new();
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_string(ctx, "numerics.pat", src, NULL, &p), SPAT_OK);
  spat_compile_options co = {.D = s->D, .threads = 1, .backend = be};
  spat_kernel *kern = NULL;
  if (spat_compile(p, &co, &kern) != SPAT_OK) fail_msg("%s: %s", src, spat_ctx_error(ctx));
  spat_tensors t = {.B = nb(s), .H = s->H, .Hkv = s->H, .Lq = s->Lq, .Lk = s->Lk,
                    .q = q, .k = k, .v = v, .o = o, .lse = lse};
  assert_int_equal(spat_kernel_call(kern, &t, args, n_args), SPAT_ERANGE);
  snprintf(msg, n, "%s", spat_ctx_error(ctx));
  spat_kernel_free(kern);
  spat_pattern_free(p);
  spat_ctx_free(ctx);
  free(q), free(k), free(v), free(o), free(lse);
}

/* Int input elements in E (language v2: integer expressions of E may read
 * int inputs): a per-sequence document mask written as a score, a small
 * int table indexed by j, and a read out of range (the same error). */
static void int_inputs_in_score(void **state) {
  (void)state;
  static const char *src =
      "pattern p(input doc: int[B, Lk], input t: int[H, 4]) = causal with score "
      "doc[b, i] == doc[b, j] ? s + 0.125 * t[h, j % 4] : -inf;";
  shape s = {2, 100, 130, 32, 1.0f, 2};
  int32_t doc[2 * 130], tab[8] = {1, -2, 3, 0, 5, 7, -1, 2};
  for (int t = 0; t < 2 * 130; t++) doc[t] = (t % 130) / (t < 130 ? 23 : 41);
  spat_value args[2] = {spat_input(doc), spat_input(tab)};
  assert_true(compare(src, &s, args, 2, 1e-4) >= 0);
  compare_bwd(src, &s, args, 2, 0, 1e-3);
  static const char *bad =
      "pattern q(input doc: int[Lk]) = causal with score s + doc[j + 3];";
  int32_t d1[130] = {0};
  spat_value a1[1] = {spat_input(d1)};
  char m1[512], m2[512];
  failing_run(bad, SPAT_BACKEND_INTERP, &s, a1, 1, m1, sizeof m1);
  failing_run(bad, SPAT_BACKEND_JIT, &s, a1, 1, m2, sizeof m2);
  assert_string_equal(m1, m2);
}

/* Bit operations, shifts and division by a variable in E's integer parts
 * (int64 lanes), and a shift whose count leaves [0, 63] on an allowed
 * pair: the interpreter's error. */
static void bits_in_score(void **state) {
  (void)state;
  static const char *src =
      "pattern p = window(80, 5) with score s + 0.0625 * ((i ^ j) & 7) - "
      "0.01 * ((i - j) >> 2) + 0.125 * (j / (i + 1)) + 0.03125 * (i % (j + 1)) + "
      "0.25 * ((i | 3) % 5) - ((1 << (j % 9)) > 100 ? 0.5 : 0.0) + 0.01 * (~i & 3);";
  shape s = {2, 150, 170, 32, 1.0f, 1};
  assert_true(compare(src, &s, NULL, 0, 1e-4) >= 0);
  compare_bwd(src, &s, NULL, 0, 0, 1e-3);
  static const char *bad = "pattern q = causal with score s + (1 << (i - j));";
  char m1[512], m2[512];
  failing_run(bad, SPAT_BACKEND_INTERP, &s, NULL, 0, m1, sizeof m1);
  failing_run(bad, SPAT_BACKEND_JIT, &s, NULL, 0, m2, sizeof m2);
  assert_string_equal(m1, m2);
  static const char *zero = "pattern z = causal with score s + (i / (j - 7));";
  failing_run(zero, SPAT_BACKEND_INTERP, &s, NULL, 0, m1, sizeof m1);
  failing_run(zero, SPAT_BACKEND_JIT, &s, NULL, 0, m2, sizeof m2);
  assert_string_equal(m1, m2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(alibi_long),
      cmocka_unit_test(softcap_at_cap),
      cmocka_unit_test(minus_inf_scores),
      cmocka_unit_test(join_with_score),
      cmocka_unit_test(batch_in_score),
      cmocka_unit_test(int_inputs_in_score),
      cmocka_unit_test(bits_in_score),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
