/* test_route.c: route(C) in the compiled kernels (runtime/route.c, the
 * driver's join on cluster ids, the mask code reading them), JIT against
 * the reference interpreter, forward and backward.
 *
 * route alone (the join), composed with causal, a window, a difference and
 * a per-head choice (the mask code); B > 1, several heads, GQA, Lq != Lk
 * both ways, lengths that are no multiple of 64, decode-sized Lq (the
 * decode driver), n = 1 and n = 16 centroids, bf16 and fp16 q, k, v; centroids with exact ties
 * (duplicated rows, and small integers everywhere so that dots tie), with
 * NaN and infinities, so large that float32 dots overflow, and rows so
 * small that their squares underflow; then C
 * without centroids (the interpreter's error, word for word) and the
 * routes the JIT refuses.
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
#include "dtype.h"
#include "frontend.h"
#include "interp.h"
#include "small.h"

static const char *src =
    "pattern alone(n = 16, input C: float[H, n, D]) = route(C);\n"
    "pattern one(input C: float[H, 1, D]) = route(C);\n"
    "pattern causal_r(n = 16, input C: float[H, n, D]) = causal & route(C);\n"
    "pattern or_win(n = 16, input C: float[H, n, D]) = route(C) | window(3, 2);\n"
    "pattern minus(n = 4, input C: float[H, n, D]) = route(C) - window(1, 1);\n"
    "pattern local(n = 8, input C: float[H, n, D]) =\n"
    "    causal & (h < 1 ? window(7, 0) : route(C));\n"
    "pattern empty(input C: float[H, 0, D]) = causal & route(C);\n"
    "pattern twice(input C: float[H, 2, D], input E: float[H, 2, D]) = route(C) & route(E);\n"
    "pattern sized(input C: float[H, Lk, D]) = route(C);\n";

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float randn(uint64_t *s) {
  double u = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
  double v = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

enum { C_NORMAL, C_DUP, C_INT, C_NONFINITE, C_HUGE, C_TINY, C_NEAR };

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int threads, cmode;
} shape;

typedef struct bufs {
  float *q, *k, *v, *o[2], *l[2], *dout, *g[2][3], *C;
} bufs;

/* q, k, v and C of the shape; C holds H n D floats as cmode says. */
static void fill(bufs *b, const shape *s, int64_t n, uint64_t seed) {
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D), nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  size_t nl = (size_t)(s->B * s->H * s->Lq), nc = (size_t)(s->H * n * s->D);
  b->q = malloc(4 * nq), b->k = malloc(4 * nk), b->v = malloc(4 * nk), b->dout = malloc(4 * nq);
  b->C = malloc(4 * nc + 4);
  for (int x = 0; x < 2; x++) {
    b->o[x] = malloc(4 * nq), b->l[x] = malloc(4 * nl);
    b->g[x][0] = malloc(4 * nq), b->g[x][1] = malloc(4 * nk), b->g[x][2] = malloc(4 * nk);
    assert_true(b->o[x] && b->l[x] && b->g[x][0] && b->g[x][1] && b->g[x][2]);
  }
  assert_true(b->q && b->k && b->v && b->dout && b->C);
  uint64_t r = seed;
  bool ints = s->cmode == C_INT;
  for (size_t t = 0; t < nq; t++)
    b->q[t] = ints ? (float)((int)(mix(&r) % 3) - 1) : randn(&r), b->dout[t] = randn(&r);
  for (size_t t = 0; t < nk; t++)
    b->k[t] = ints ? (float)((int)(mix(&r) % 3) - 1) : randn(&r), b->v[t] = randn(&r);
  for (size_t t = 0; t < nc; t++) b->C[t] = ints ? (float)((int)(mix(&r) % 3) - 1) : randn(&r);
  for (int64_t h = 0; h < s->H; h++)
    for (int64_t c = 1; c < n; c++) {
      float *row = b->C + (h * n + c) * s->D;
      if (s->cmode == C_DUP && c % 3 == 1) /* exact ties with the centroid before */
        memcpy(row, row - s->D, 4 * (size_t)s->D);
      if (s->cmode == C_NEAR && c % 2 == 1) { /* near ties with the one before */
        memcpy(row, row - s->D, 4 * (size_t)s->D);
        if (c % 6 == 1) /* one element one ulp apart */
          row[c % s->D] = nextafterf(row[c % s->D], INFINITY);
        else /* every element scaled by 1 + 2^-22 or 1 - 2^-20 */
          for (int64_t d = 0; d < s->D; d++) row[d] *= c % 6 == 3 ? 1 + 0x1p-22f : 1 - 0x1p-20f;
      }
      if (s->cmode == C_NONFINITE && c + h < 3) /* NaN (inf * 0) and inf dots */
        row[mix(&r) % (uint64_t)s->D] = mix(&r) % 2 ? INFINITY : NAN;
    }
  if (s->cmode == C_NONFINITE && s->H > 1) b->C[n * s->D] = NAN; /* head 1: NaN first dot */
  if (s->cmode == C_HUGE)
    for (size_t t = 0; t < nc; t++) b->C[t] *= 3e37f;
  if (s->cmode == C_TINY) /* |x|^2 below float's normal range */
    for (size_t t = 0; t < nq + nk; t++) *(t < nq ? &b->q[t] : &b->k[t - nq]) *= 1e-25f;
}

static void bufs_free(bufs *b) {
  free(b->q), free(b->k), free(b->v), free(b->dout), free(b->C);
  for (int x = 0; x < 2; x++) {
    free(b->o[x]), free(b->l[x]);
    for (int y = 0; y < 3; y++) free(b->g[x][y]);
  }
}

static ir_program *load(arena *a, diag *d, const char *name) {
  fe_module *m = fe_load_string(d, a, "route.pat", src);
  if (!m) fail_msg("%s", diag_text(d));
  ir_program *p = fe_instantiate(d, m, name, NULL, 0);
  if (!p) fail_msg("%s", diag_text(d));
  return p;
}

static int64_t route_n(const ir_program *p) {
  return p->inputs[0].dims[1]->value;
}

static void args_of(rt_args *a, const shape *s, bufs *b, const int32_t **ins, int x) {
  memset(a, 0, sizeof *a);
  a->B = s->B, a->H = s->H, a->Hkv = s->Hkv, a->Lq = s->Lq, a->Lk = s->Lk, a->D = s->D;
  a->q.data = b->q, a->k.data = b->k, a->v.data = b->v, a->o.data = b->o[x];
  rt_tensor_strides(&a->q, 0, s->H, s->Lq, s->D);
  rt_tensor_strides(&a->k, 0, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a->v, 0, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a->o, 0, s->H, s->Lq, s->D);
  a->lse = b->l[x], a->lse_sb = s->H * s->Lq, a->lse_sh = s->Lq;
  ins[0] = (const int32_t *)(const void *)b->C;
  a->inputs = ins;
  a->threads = s->threads;
}

/* Both backends forward (and backward when bwd); returns the rows with
 * keys.  Masks equal (lse finite on the same rows), values within float
 * tolerance; gradients relative to the largest. */
static int64_t compare(const ir_program *p, const shape *s, uint64_t seed, bool bwd) {
  backend_opts o = {.D = s->D, .threads = s->threads};
  char err[512] = "", e2[512] = "";
  void *k[2] = {backend_interp.compile(p, &o, err, sizeof err), NULL};
  if (!k[0]) fail_msg("interp compile: %s", err);
  k[1] = backend_jit.compile(p, &o, err, sizeof err);
  if (!k[1]) fail_msg("jit compile %s: %s", p->name, err);
  const backend *be[2] = {&backend_interp, &backend_jit};
  bufs b;
  fill(&b, s, route_n(p), seed);
  size_t nl = (size_t)(s->B * s->H * s->Lq);
  const int32_t *ins[1];
  rt_args a[2];
  for (int x = 0; x < 2; x++) {
    args_of(&a[x], s, &b, ins, x);
    rt_status st = be[x]->run(k[x], &a[x], x ? e2 : err, sizeof err);
    if (st != RT_OK) fail_msg("%s run %s: %s", be[x]->name, p->name, x ? e2 : err);
  }
  int64_t with_keys = 0;
  for (size_t x = 0; x < nl; x++) {
    float l1 = b.l[0][x], l2 = b.l[1][x];
    if (isfinite(l1) != isfinite(l2))
      fail_msg("%s seed %llu: row %zu: lse %g (interp) vs %g (jit)", p->name,
               (unsigned long long)seed, x, l1, l2);
    if (!isfinite(l1)) continue;
    with_keys++;
    if (!(fabs(l1 - l2) < 1e-4)) fail_msg("%s: row %zu: lse %g vs %g", p->name, x, l1, l2);
    for (int64_t d = 0; d < s->D; d++) {
      double e = fabs((double)b.o[0][x * s->D + d] - (double)b.o[1][x * s->D + d]);
      if (!(e < 2e-5)) fail_msg("%s: row %zu: |o| error %g", p->name, x, e);
    }
  }
  if (bwd) {
    size_t n[3] = {(size_t)(s->B * s->H * s->Lq * s->D), (size_t)(s->B * s->Hkv * s->Lk * s->D),
                   (size_t)(s->B * s->Hkv * s->Lk * s->D)};
    for (int x = 0; x < 2; x++) {
      rt_grad g;
      memset(&g, 0, sizeof g);
      g.dout = a[x].o, g.dout.data = b.dout;
      g.dq = a[x].q, g.dq.data = b.g[x][0];
      g.dk = a[x].k, g.dk.data = b.g[x][1];
      g.dv = a[x].v, g.dv.data = b.g[x][2];
      rt_status st = be[x]->backward(k[x], &a[x], &g, x ? e2 : err, sizeof err);
      if (st != RT_OK) fail_msg("%s backward %s: %s", be[x]->name, p->name, x ? e2 : err);
    }
    for (int y = 0; y < 3; y++) {
      double big = 0, worst = 0;
      for (size_t t = 0; t < n[y]; t++) {
        double e = fabs((double)b.g[0][y][t] - (double)b.g[1][y][t]);
        if (fabs(b.g[0][y][t]) > big) big = fabs(b.g[0][y][t]);
        if (!(e <= worst)) worst = e;
      }
      if (!(worst <= 1e-4 * (big > 1 ? big : 1)))
        fail_msg("%s: gradient %d differs by %g (largest %g)", p->name, y, worst, big);
    }
  }
  backend_interp.free(k[0]), backend_jit.free(k[1]);
  bufs_free(&b);
  return with_keys;
}

static const shape shapes[] = {
    {1, 2, 2, 300, 300, 64, 2, C_NORMAL},  {2, 2, 1, 77, 250, 32, 1, C_DUP},
    {1, 3, 3, 200, 130, 16, 2, C_INT},     {2, 4, 2, 129, 129, 64, 1, C_NONFINITE},
    {1, 2, 2, 5, 300, 64, 1, C_NORMAL},    {2, 2, 2, 1, 65, 32, 2, C_DUP},
    {1, 2, 1, 70, 70, 64, 1, C_HUGE},      {1, 1, 1, 33, 100, 128, 1, C_INT},
    {1, 2, 2, 90, 90, 64, 2, C_TINY},      {1, 2, 2, 203, 197, 64, 1, C_NEAR},
    {2, 2, 1, 61, 150, 32, 2, C_NEAR}};

static void run_all(const char *const *names, size_t n_names, bool bwd) {
  diag *d = diag_new();
  arena *a = arena_new();
  int64_t rows = 0;
  for (size_t x = 0; x < n_names; x++) {
    ir_program *p = load(a, d, names[x]);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      shape z = shapes[s];
      z.Lq = SMALL(z.Lq, z.Lq / 2 + 1), z.Lk = SMALL(z.Lk, z.Lk / 2 + 1);
      rows += compare(p, &z, 0x7017 * (x + 1) + s, bwd);
    }
  }
  assert_true(rows > 500);
  arena_free(a);
  diag_free(d);
}

static void test_forward(void **state) {
  (void)state;
  static const char *const names[] = {"alone", "one", "causal_r", "or_win", "minus", "local"};
  run_all(names, sizeof names / sizeof *names, false);
}

static void test_backward(void **state) {
  (void)state;
  static const char *const names[] = {"alone", "causal_r", "or_win", "local"};
  run_all(names, sizeof names / sizeof *names, true);
}

/* bf16 and fp16 q, k, v: the ids come from the rows widened exactly, as
 * the interpreter's; masks equal, values within 16-bit tolerance. */
static void test_dtypes(void **state) {
  (void)state;
  diag *d = diag_new();
  arena *a = arena_new();
  static const char *const names[] = {"alone", "causal_r"};
  shape s = {2, 2, 1, 150, 170, 64, 2, C_DUP};
  size_t nq = (size_t)(s.B * s.H * s.Lq * s.D), nk = (size_t)(s.B * s.Hkv * s.Lk * s.D);
  size_t nl = (size_t)(s.B * s.H * s.Lq);
  int64_t rows = 0;
  for (int dt = RT_BF16; dt <= RT_F16; dt++)
    for (size_t x = 0; x < 2; x++) {
      ir_program *p = load(a, d, names[x]);
      backend_opts o = {.D = s.D, .dtype = dt, .threads = s.threads};
      char err[512] = "";
      void *k[2] = {backend_interp.compile(p, &o, err, sizeof err),
                    backend_jit.compile(p, &o, err, sizeof err)};
      if (!k[0] || !k[1]) fail_msg("compile: %s", err);
      bufs b;
      fill(&b, &s, route_n(p), 0xd7 + (uint64_t)dt);
      uint16_t *h[3] = {malloc(2 * nq), malloc(2 * nk), malloc(2 * nk)}, *ho[2] = {malloc(2 * nq),
                                                                                   malloc(2 * nq)};
      assert_true(h[0] && h[1] && h[2] && ho[0] && ho[1]);
      for (size_t t = 0; t < nq; t++) rt_store(h[0], (int64_t)t, dt, b.q[t]);
      for (size_t t = 0; t < nk; t++) rt_store(h[1], (int64_t)t, dt, b.k[t]), rt_store(h[2], (int64_t)t, dt, b.v[t]);
      const int32_t *ins[1];
      const backend *be[2] = {&backend_interp, &backend_jit};
      for (int y = 0; y < 2; y++) {
        rt_args ar;
        args_of(&ar, &s, &b, ins, y);
        ar.dtype = dt;
        ar.q.data = (float *)(void *)h[0], ar.k.data = (float *)(void *)h[1];
        ar.v.data = (float *)(void *)h[2], ar.o.data = (float *)(void *)ho[y];
        if (be[y]->run(k[y], &ar, err, sizeof err) != RT_OK) fail_msg("%s: %s", be[y]->name, err);
      }
      for (size_t r = 0; r < nl; r++) {
        float l1 = b.l[0][r], l2 = b.l[1][r];
        if (isfinite(l1) != isfinite(l2) || (isfinite(l1) && !(fabs(l1 - l2) < 2e-2)))
          fail_msg("%s dtype %d: row %zu: lse %g vs %g", p->name, dt, r, l1, l2);
        rows += isfinite(l1);
        for (int64_t e = 0; e < s.D; e++) {
          double x1 = rt_load(ho[0], (int64_t)r * s.D + e, dt), x2 = rt_load(ho[1], (int64_t)r * s.D + e, dt);
          if (!(fabs(x1 - x2) < 3e-2)) fail_msg("%s dtype %d: o differs: %g vs %g", p->name, dt, x1, x2);
        }
      }
      for (int y = 0; y < 3; y++) free(h[y]);
      free(ho[0]), free(ho[1]);
      bufs_free(&b);
      backend_interp.free(k[0]), backend_jit.free(k[1]);
    }
  assert_true(rows > 1000);
  arena_free(a);
  diag_free(d);
}

/* No centroids: a run-time error wherever route is evaluated, the same
 * status and words from both; routes the JIT does not run: refused. */
static void test_errors(void **state) {
  (void)state;
  diag *d = diag_new();
  arena *a = arena_new();
  ir_program *p = load(a, d, "empty");
  backend_opts o = {.D = 32, .threads = 1};
  char e[2][512] = {"", ""};
  void *k[2] = {backend_interp.compile(p, &o, e[0], sizeof e[0]),
                backend_jit.compile(p, &o, e[1], sizeof e[1])};
  assert_non_null(k[0]);
  if (!k[1]) fail_msg("jit: %s", e[1]);
  shape s = {1, 3, 1, 40, 50, 32, 1, C_NORMAL};
  bufs b;
  fill(&b, &s, 1, 5);
  const int32_t *ins[1];
  const backend *be[2] = {&backend_interp, &backend_jit};
  rt_status st[2];
  for (int x = 0; x < 2; x++) {
    rt_args ar;
    args_of(&ar, &s, &b, ins, x);
    st[x] = be[x]->run(k[x], &ar, e[x], sizeof e[x]);
  }
  assert_int_equal(st[0], RT_ERANGE);
  assert_int_equal(st[1], RT_ERANGE);
  assert_string_equal(e[0], e[1]);
  assert_non_null(strstr(e[1], "route: centroids 'C' are [3, 0, 32]"));
  bufs_free(&b);
  backend_interp.free(k[0]), backend_jit.free(k[1]);
  static const char *const refused[] = {"twice", "sized"};
  for (size_t x = 0; x < 2; x++) {
    char err[512] = "";
    ir_program *q = load(a, d, refused[x]);
    assert_null(backend_jit.compile(q, &o, err, sizeof err));
    assert_non_null(strstr(err, "route"));
    assert_non_null(strstr(err, "interp"));
  }
  arena_free(a);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward),
      cmocka_unit_test(test_backward),
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
