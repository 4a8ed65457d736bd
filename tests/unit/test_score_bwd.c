/* test_score_bwd.c: `with score E` on the JIT (and the disk cache) against
 * the interpreter, forward and backward, through the public API.
 *
 * The library's score modifications (ALiBi, Gemma 2 soft-capping with
 * scores near the cap, T5 buckets, Swin's relative bias table, a relative
 * bias rel[h, i - j + Lk - 1]), -inf scores (a causal bias) and ?: on
 * integer conditions: o and lse, then dq, dk, dv and the gradients of every
 * float input (spat_grads.dinputs) within 1e-3 of the largest value
 * (float32 against double), rows not multiples of 64, GQA, 1 and 2
 * threads.  Then a float input read out of range at run time: the same
 * status and message on both, forward and backward; and a kernel from the
 * disk cache (a hit on the second compile) agreeing too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spat.h"

static uint64_t rng = 0x5c0eb00dull;
static double uni(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}
static float *rnd(size_t n, double amp) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = (float)(amp * (2 * uni() - 1));
  return x;
}

static spat_ctx *ctx;

static int setup(void **st) {
  (void)st;
  ctx = spat_ctx_new();
  return ctx ? 0 : -1;
}
static int teardown(void **st) {
  (void)st;
  spat_ctx_free(ctx);
  return 0;
}

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int threads;
  double qamp; /* q's amplitude: large ones push scores to the cap */
} shape;

typedef struct kpair {
  spat_kernel *k[2]; /* JIT, interpreter */
} kpair;

static spat_pattern *parse(const char *src) {
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(ctx, "score.pat", src, NULL, &p) != SPAT_OK)
    fail_msg("%s: %s", src, spat_ctx_error(ctx));
  return p;
}

static void compile_both(spat_pattern *p, const shape *s, int cache, kpair *kp) {
  spat_compile_options o = {s->D, SPAT_LAYOUT_BHLD, s->threads, SPAT_BACKEND_JIT, cache,
                            SPAT_DTYPE_F32};
  if (spat_compile(p, &o, &kp->k[0]) != SPAT_OK) fail_msg("JIT: %s", spat_ctx_error(ctx));
  o.backend = SPAT_BACKEND_INTERP, o.cache = 0;
  assert_int_equal(spat_compile(p, &o, &kp->k[1]), SPAT_OK);
}

/* max |x - y| <= tol (1 + max |y|), NaN only where y is NaN */
static void close_to(const float *x, const float *y, size_t n, double tol, const char *what,
                     const char *src) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(y[i]) > m) m = fabs(y[i]);
  for (size_t i = 0; i < n; i++) {
    bool ok = (isnan(x[i]) && isnan(y[i])) || fabs((double)x[i] - y[i]) <= tol * (1 + m);
    if (!ok) fail_msg("%s: %s[%zu] = %g, interpreter %g (max %g)", src, what, i, x[i], y[i], m);
  }
}

/* Float inputs: n_in arrays of the lengths len[], values in [-amp, amp]. */
typedef struct fins {
  int n;
  size_t len[4];
  float *x[4];
} fins;

/* Forward on both, then backward on both from the interpreter's o and lse:
 * everything compared; returns how many input gradient elements are
 * nonzero (so a test can insist that gradients flowed). */
static size_t check(const char *src, const shape *s, const fins *in, int cache) {
  spat_pattern *p = parse(src);
  kpair kp;
  compile_both(p, s, cache, &kp);
  if (cache == 2) assert_int_equal(spat_kernel_signature(kp.k[0])->from_cache, 1);
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D), nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  size_t nl = (size_t)(s->B * s->H * s->Lq);
  float *q = rnd(nq, s->qamp), *k = rnd(nk, 1.7), *v = rnd(nk, 1), *dout = rnd(nq, 1);
  float *o[2], *lse[2], *g[2][3], *din[2][4];
  spat_value args[4];
  for (int a = 0; a < in->n; a++) args[a] = spat_input_f32(in->x[a]);
  for (int x = 0; x < 2; x++) {
    o[x] = calloc(nq, 4), lse[x] = calloc(nl, 4);
    g[x][0] = calloc(nq, 4), g[x][1] = calloc(nk, 4), g[x][2] = calloc(nk, 4);
    for (int a = 0; a < in->n; a++) din[x][a] = calloc(in->len[a], 4);
    spat_tensors t = {s->B, s->H, s->Hkv, s->Lq, s->Lk, q, k, v, o[x], lse[x], 0, NULL};
    if (spat_kernel_call(kp.k[x], &t, args, (size_t)in->n) != SPAT_OK)
      fail_msg("%s: forward %d: %s", src, x, spat_ctx_error(ctx));
  }
  close_to(o[0], o[1], nq, 1e-4, "o", src);
  for (size_t i = 0; i < nl; i++)
    if (!(isinf(lse[0][i]) && lse[0][i] == lse[1][i]))
      close_to(lse[0] + i, lse[1] + i, 1, 1e-4, "lse", src);
  for (int x = 0; x < 2; x++) {
    spat_tensors t = {s->B, s->H, s->Hkv, s->Lq, s->Lk, q, k, v, o[1], lse[1], 0, NULL};
    spat_grads gr = {dout, NULL, g[x][0], g[x][1], g[x][2], din[x]};
    if (spat_kernel_backward(kp.k[x], &t, &gr, args, (size_t)in->n) != SPAT_OK)
      fail_msg("%s: backward %d: %s", src, x, spat_ctx_error(ctx));
  }
  close_to(g[0][0], g[1][0], nq, 1e-3, "dq", src);
  close_to(g[0][1], g[1][1], nk, 1e-3, "dk", src);
  close_to(g[0][2], g[1][2], nk, 1e-3, "dv", src);
  size_t nonzero = 0;
  for (int a = 0; a < in->n; a++) {
    close_to(din[0][a], din[1][a], in->len[a], 1e-3, "dinput", src);
    for (size_t e = 0; e < in->len[a]; e++) nonzero += din[1][a][e] != 0;
  }
  for (int x = 0; x < 2; x++) {
    free(o[x]), free(lse[x]), free(g[x][0]), free(g[x][1]), free(g[x][2]);
    for (int a = 0; a < in->n; a++) free(din[x][a]);
    spat_kernel_free(kp.k[x]);
  }
  free(q), free(k), free(v), free(dout);
  spat_pattern_free(p);
  return nonzero;
}

static fins one_input(size_t len, double amp) {
  fins f = {1, {len}, {rnd(len, amp)}};
  return f;
}

static void test_alibi(void **st) {
  (void)st;
  const char *src = "pattern alibi(input slope: float[H]) = causal with score s - slope[h] * (i - j);";
  shape s = {2, 4, 2, 100, 130, 64, 2, 1.5};
  fins f = one_input(4, 0.2);
  assert_int_equal(check(src, &s, &f, 0), 4); /* every slope has a gradient */
  free(f.x[0]);
  src = "pattern alibi_bidir(input slope: float[H]) = window(40, 70) with score s - slope[h] * abs(i - j);";
  shape s2 = {1, 2, 2, 70, 70, 32, 1, 1.5};
  f = one_input(2, 0.1);
  assert_int_equal(check(src, &s2, &f, 0), 2);
  free(f.x[0]);
}

static void test_softcap(void **st) {
  (void)st;
  /* scale = 1/8, |q.k| up to 64 * 6 * 1.7: s beyond 5, tanh near 1 */
  const char *src = "pattern gemma(cap = 5) = causal & window(90, 0) with score cap * tanh(s / cap);";
  shape s = {1, 2, 1, 150, 150, 64, 2, 6.0};
  fins none = {0, {0}, {NULL}};
  check(src, &s, &none, 0);
}

static void test_relative_tables(void **st) {
  (void)st;
  shape s = {1, 2, 2, 90, 120, 32, 2, 1.5};
  fins f = one_input((size_t)(2 * (2 * 120 - 1)), 1.0);
  size_t nz = check("pattern rel(input rel: float[H, 2 * Lk - 1]) = full "
                    "with score s + rel[h, i - j + Lk - 1];",
                    &s, &f, 0);
  assert_true(nz > 100);
  free(f.x[0]);
  /* T5's decoder buckets (patterns/v2/t5.pat) */
  f = one_input(2 * 32, 1.0);
  nz = check("let b(d) = d < 16 ? d : 15 + (d >= 16) + (d >= 19) + (d >= 24) + (d >= 46) + (d >= 99);\n"
             "pattern t5(input rel: float[H, 32]) = causal with score s + rel[h, b(max(i - j, 0))];",
             &s, &f, 0);
  assert_true(nz > 20);
  free(f.x[0]);
  /* Swin's table (patterns/v2/swin_rel.pat), 8 x 8 images of 4 x 4 windows */
  shape sw = {1, 2, 2, 64 * 2, 64 * 2, 16, 1, 1.5};
  f = one_input(2 * 49, 1.0);
  nz = check("pattern swin_rel(Wimg = 8, ws = 4, input rpb: float[H, (2 * ws - 1) * (2 * ws - 1)]) =\n"
             "  blocks(ws) { block(Wimg) & stride(Wimg / ws) }\n"
             "  with score s + rpb[h, (i / Wimg - j / Wimg + ws - 1) * (2 * ws - 1) + i % Wimg - j % Wimg + ws - 1];",
             &sw, &f, 0);
  assert_true(nz > 10);
  free(f.x[0]);
}

static void test_inf_and_select(void **st) {
  (void)st;
  shape s = {1, 2, 1, 80, 80, 16, 1, 1.5};
  fins none = {0, {0}, {NULL}};
  check("pattern cb = full with score i >= j ? s : log(0.0);", &s, &none, 0);
  /* a row where every score is -inf: an empty row */
  check("pattern allinf = causal with score i < 40 ? log(0.0) : s;", &s, &none, 0);
  fins f = {2, {2, 2 * 160}, {rnd(2, 0.5), rnd(2 * 160, 1.0)}};
  check("pattern sel(input a: float[H], input rel: float[H, Lq + Lk]) = window(30, 30) with score "
        "(i - j) % 2 == 0 ? s + a[h] * tanh(s) : min(s * 0.5, rel[h, i - j + Lk - 1]) / (1.0 + abs(a[h]));",
        &s, &f, 0);
  free(f.x[0]), free(f.x[1]);
}

/* rel[h, i - j] with 8 columns: out of range where i - j >= 8 (and < 0
 * never: causal); the same error, forward and backward. */
static void test_out_of_range(void **st) {
  (void)st;
  const char *src = "pattern oob(input rel: float[H, 8]) = causal with score s + rel[h, i - j];";
  spat_pattern *p = parse(src);
  shape s = {1, 2, 2, 70, 70, 16, 1, 1.0};
  kpair kp;
  compile_both(p, &s, 0, &kp);
  size_t nq = (size_t)(s.H * s.Lq * s.D);
  float *q = rnd(nq, 1), *o = calloc(nq, 4), *lse = calloc((size_t)(s.H * s.Lq), 4);
  float *rel = rnd(16, 1), *g[3] = {calloc(nq, 4), calloc(nq, 4), calloc(nq, 4)};
  spat_value arg = spat_input_f32(rel);
  char msg[2][2][512];
  for (int x = 0; x < 2; x++) {
    spat_tensors t = {1, s.H, s.Hkv, s.Lq, s.Lk, q, q, q, o, lse, 0, NULL};
    assert_int_equal(spat_kernel_call(kp.k[x], &t, &arg, 1), SPAT_ERANGE);
    snprintf(msg[x][0], sizeof msg[x][0], "%s", spat_ctx_error(ctx));
    spat_grads gr = {q, NULL, g[0], g[1], g[2], NULL};
    assert_int_equal(spat_kernel_backward(kp.k[x], &t, &gr, &arg, 1), SPAT_ERANGE);
    snprintf(msg[x][1], sizeof msg[x][1], "%s", spat_ctx_error(ctx));
  }
  assert_string_equal(msg[0][0], msg[1][0]);
  assert_string_equal(msg[0][1], msg[1][1]);
  assert_non_null(strstr(msg[0][0], "index 8 of dimension 2 of input 'rel' is out of range [0, 8)"));
  free(q), free(o), free(lse), free(rel), free(g[0]), free(g[1]), free(g[2]);
  spat_kernel_free(kp.k[0]);
  spat_kernel_free(kp.k[1]);
  spat_pattern_free(p);
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    n += l > 4 && strcmp(e->d_name + l - 4, ".spk") == 0;
  }
  if (d) closedir(d);
  return n;
}

/* The disk cache holds score kernels: compiled and stored, then a hit that
 * agrees with the interpreter forward and backward. */
static void test_cache(void **st) {
  (void)st;
  char dir[] = "/tmp/spat_test_score_XXXXXX";
  assert_non_null(mkdtemp(dir));
  setenv("XDG_CACHE_HOME", dir, 1);
  const char *src = "pattern alibi(input slope: float[H]) = causal with score s - slope[h] * (i - j);";
  shape s = {1, 2, 1, 70, 90, 32, 1, 1.5};
  fins f = one_input(2, 0.3);
  spat_pattern *p = parse(src);
  spat_compile_options o = {s.D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 1, SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  assert_null(spat_kernel_signature(k)->cache_problem);
  spat_kernel_free(k);
  char sub[96];
  snprintf(sub, sizeof sub, "%s/spatc", dir);
  assert_int_equal(count_entries(sub), 1); /* stored */
  spat_pattern_free(p);
  assert_int_equal(check(src, &s, &f, 2), 2); /* 2: must be a hit */
  free(f.x[0]);
  spat_cache_clear(ctx, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  unsetenv("XDG_CACHE_HOME");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alibi),          cmocka_unit_test(test_softcap),
      cmocka_unit_test(test_relative_tables), cmocka_unit_test(test_inf_and_select),
      cmocka_unit_test(test_out_of_range),   cmocka_unit_test(test_cache),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
