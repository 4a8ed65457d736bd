/* test_dtype.c: bf16 and fp16 tensors (spat_compile_options.dtype): the
 * JIT against the interpreter on the same rounded inputs, over patterns
 * (window, causal window, blocks with globals and random keys, dilated,
 * topk), shapes that are not multiples of the 64-row tile, D in {16, 32,
 * 64, 80, 128, 256}, both layouts, GQA, batches and 1 or 2 threads; the
 * conversion tile (targets without avx512bf16) against the vdpbf16ps tile;
 * a NaN query row (NaN in both);
 * an equality join and single-row top-k; spat_convert's rounding; the
 * backward pass, paged KV caches and JIT score patterns refusing 16-bit
 * dtypes (float32 only).
 *
 * Tolerance, from the formats' precision (u = 2^-8 for bf16's 8 significand
 * bits, 2^-11 for fp16's 11), per element of o:
 *     |o_jit - o_ref| <= c * a + 2 u |o_ref| + 1e-6
 * where a = sum_j p_j |v_j| / sum_j p_j (the interpreter run on |v|, the
 * scale of the terms summed), c = u_bf16 + 2^-14 for bf16 (the vdpbf16ps
 * path rounds each weight p_j to bf16: relative error <= u_bf16; 2^-14
 * covers float32 scores and exp2) and 2^-14 for fp16 (float32 throughout),
 * and 2 u |o| the final rounding of o to the dtype in both backends (an
 * error before rounding moves the result by at most one more step).  lse is
 * float32 from float32 row sums in both paths: within 1e-4 (1 + |lse|).
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

#include "spat.h"
#include "codegen.h"
#include "dtype.h"
#include "kernel_rt.h"
#include "small.h"
#include "tile_cache.h"

static const char *const src =
    "pattern win(w = 37) = window(w, w);\n"
    "pattern cwin(w = 150) = window(w, 0);\n"
    "pattern bb(b = 16, r = 2) = blocks(b) { window(1) | global({0 .. 1}) "
    "| random(r, 7) };\n"
    "pattern dil = dilated(8, 3) | window(5, 5);\n"
    "pattern tk = causal & (window(20, 0) | blocks(16) { topk(3, causal) });\n"
    "pattern dense = full;\n"
    "pattern grid(W = 13) = where(i / W / 4 == j / W / 4 && i % W / 4 == j % W / 4);\n"
    "pattern tk1 = topk(5, causal) | window(2, 0);\n"
    "pattern sc(cap = 30) = window(8, 8) with score cap * tanh(s / cap);\n";
/* grid: an equality join (runtime/plan_join.c: gathered key tiles); tk1:
 * top-k of single rows and keys (the driver's per-key scoring); sc: a
 * score, which the JIT refuses for 16-bit dtypes (test_refusals) */
static const char *const names[] = {"win", "cwin", "bb",  "dil",
                                    "tk",  "dense", "grid", "tk1"};
#define N_PATS (int)(sizeof names / sizeof names[0])

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  spat_layout layout;
  int threads;
} shape;

static uint64_t rng(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float randn(uint64_t *s) {
  double u1 = ((double)(rng(s) >> 11) + 1.0) * 0x1p-53;
  double u2 = (double)(rng(s) >> 11) * 0x1p-53;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* n random values rounded to dt (2-byte elements). */
static uint16_t *rand16(size_t n, spat_dtype dt, uint64_t *s) {
  float *f = malloc(n * sizeof *f + 4);
  uint16_t *h = malloc(n * 2 + 2);
  assert_non_null(f);
  assert_non_null(h);
  for (size_t x = 0; x < n; x++) f[x] = randn(s);
  assert_int_equal(spat_convert(f, SPAT_DTYPE_F32, h, dt, n), SPAT_OK);
  free(f);
  return h;
}

static spat_kernel *compile(spat_ctx *c, const char *name, const shape *sh,
                            spat_dtype dt, spat_backend be) {
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_string(c, "dtype.pat", src, name, &p),
                   SPAT_OK);
  spat_compile_options o = {.D = sh->D, .layout = sh->layout,
                            .threads = sh->threads, .backend = be,
                            .dtype = dt};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK) fail_msg("compile %s: %s", name, spat_ctx_error(c));
  spat_pattern_free(p);
  return k;
}

static void run(const spat_kernel *k, const shape *sh, const void *q,
                const void *kk, const void *v, void *o, float *lse) {
  spat_tensors t = {.B = sh->B, .H = sh->H, .Hkv = sh->Hkv, .Lq = sh->Lq,
                    .Lk = sh->Lk, .q = q, .k = kk, .v = v, .o = o,
                    .lse = lse};
  spat_status st = spat_kernel_call(k, &t, NULL, 0);
  assert_int_equal(st, SPAT_OK);
}

/* One case: the JIT and the interpreter on the same rounded q, k, v. */
static void one_case(spat_ctx *c, const char *name, const shape *sh,
                     spat_dtype dt, uint64_t seed, int nan_row) {
  size_t nq = (size_t)(sh->B * sh->H * sh->Lq * sh->D),
         nk = (size_t)(sh->B * sh->Hkv * sh->Lk * sh->D),
         nl = (size_t)(sh->B * sh->H * sh->Lq);
  uint16_t *q = rand16(nq, dt, &seed), *k = rand16(nk, dt, &seed),
           *v = rand16(nk, dt, &seed), *va = malloc(nk * 2 + 2);
  for (size_t x = 0; x < nk; x++)  /* |v|: clear the sign bit */
    va[x] = v[x] & 0x7fff;
  if (nan_row)  /* a NaN in the first query row: that row is NaN */
    q[0] = dt == SPAT_DTYPE_BF16 ? 0x7fc0 : 0x7e00;
  uint16_t *oj = malloc(nq * 2 + 2), *orf = malloc(nq * 2 + 2),
           *oa = malloc(nq * 2 + 2);
  float *lj = malloc(nl * 4 + 4), *lr = malloc(nl * 4 + 4);
  spat_kernel *kj = compile(c, name, sh, dt, SPAT_BACKEND_JIT),
              *ki = compile(c, name, sh, dt, SPAT_BACKEND_INTERP);
  assert_int_equal((int)spat_kernel_signature(kj)->dtype, (int)dt);
  run(kj, sh, q, k, v, oj, lj);
  run(ki, sh, q, k, v, orf, lr);
  run(ki, sh, q, k, va, oa, NULL);
  double u = dt == SPAT_DTYPE_BF16 ? 0x1p-8 : 0x1p-11;
  double cw = dt == SPAT_DTYPE_BF16 ? 0x1p-8 + 0x1p-14 : 0x1p-14;
  double worst = 0;
  for (size_t x = 0; x < nq; x++) {
    double a = rt_load(oj, (int64_t)x, (int)dt),
           b = rt_load(orf, (int64_t)x, (int)dt),
           s = rt_load(oa, (int64_t)x, (int)dt);
    double tol = cw * s + 2 * u * fabs(b) + 1e-6;
    if (isnan(a) && isnan(b)) continue;
    if (!(fabs(a - b) <= tol))
      fail_msg("%s %s B=%lld H=%lld/%lld Lq=%lld Lk=%lld D=%lld layout %d "
               "threads %d: o[%zu] jit %.8g interp %.8g (|v| mean %.4g, "
               "tol %.3g)",
               name, dt == SPAT_DTYPE_BF16 ? "bf16" : "f16", (long long)sh->B,
               (long long)sh->H, (long long)sh->Hkv, (long long)sh->Lq,
               (long long)sh->Lk, (long long)sh->D, (int)sh->layout,
               sh->threads, x, a, b, s, tol);
    if (fabs(a - b) / tol > worst) worst = fabs(a - b) / tol;
  }
  if (getenv("SPAT_DTYPE_VERBOSE"))
    fprintf(stderr, "%s %d D=%lld: worst error / tolerance %.3f\n", name,
            (int)dt, (long long)sh->D, worst);
  for (size_t x = 0; x < nl; x++) {
    assert_true(isinf(lj[x]) == isinf(lr[x]));
    assert_true(isnan(lj[x]) == isnan(lr[x]));
    if (!isinf(lr[x]) && !isnan(lr[x]) && !(fabs(lj[x] - lr[x]) <= 1e-4 * (1 + fabs(lr[x]))))
      fail_msg("%s: lse[%zu] jit %.8g interp %.8g", name, x, lj[x], lr[x]);
  }
  spat_kernel_free(kj);
  spat_kernel_free(ki);
  free(q), free(k), free(v), free(va), free(oj), free(orf), free(oa);
  free(lj), free(lr);
}

static void test_jit_vs_interp(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  static const int64_t dims[] = {16, 32, 64, 80, 128, 256};
  uint64_t s = 0xbf16;
  int n = SMALL(24, 8);
  for (int x = 0; x < n; x++) {
    shape sh;
    sh.D = dims[x % 6];
    sh.Hkv = 1 + (int64_t)(rng(&s) % 2);
    sh.H = sh.Hkv * (1 + (int64_t)(rng(&s) % 3));
    sh.B = 1 + (int64_t)(rng(&s) % 2);
    int64_t lmax = sh.D >= 128 ? 150 : 300;
    sh.Lk = 1 + (int64_t)(rng(&s) % (uint64_t)SMALL(lmax, 70));
    sh.Lq = x % 3 == 0 ? sh.Lk : 1 + (int64_t)(rng(&s) % (uint64_t)sh.Lk);
    if (x % 5 == 1) sh.Lq = sh.Lk + 9;  /* Lq > Lk */
    sh.layout = x % 2 ? SPAT_LAYOUT_BLHD : SPAT_LAYOUT_BHLD;
    sh.threads = 1 + x % 2;
    one_case(c, names[x % N_PATS], &sh,
             x % 4 < 2 ? SPAT_DTYPE_BF16 : SPAT_DTYPE_F16, rng(&s), x % 7 == 3);
  }
  /* whole tiles and a tail: every key tile full, then partial */
  shape big = {1, 2, 1, 200, 200, 64, SPAT_LAYOUT_BHLD, 2};
  for (int p = 0; p < N_PATS; p++) {
    one_case(c, names[p], &big, SPAT_DTYPE_BF16, 11 + (uint64_t)p, p == 1);
    one_case(c, names[p], &big, SPAT_DTYPE_F16, 23 + (uint64_t)p, p == 2);
  }
  spat_ctx_free(c);
}

/* The conversion tile (a target without avx512bf16) against the host's on
 * one tile of random bf16 Q^T pairs, K, V: the same online-softmax state
 * within the bound above (the host tile may round P to bf16). */
typedef struct tile_state {
  float acc[KR_BQ * 128], m[KR_BQ], l[KR_BQ];
} tile_state;

static void run_tile(kr_tile_fn f, const uint16_t *qt, const uint16_t *k,
                     const uint16_t *v, int64_t nc, const uint64_t *mask,
                     tile_state *t, float *st) {
  for (int r = 0; r < KR_BQ; r++) t->m[r] = -INFINITY, t->l[r] = 0;
  memset(t->acc, 0, sizeof t->acc);
  /* two calls: the second one rescales the first's state */
  f(qt, k, 128, v, 128, nc, mask, t->acc, t->m, t->l, 0.125f * 1.4426950f, st);
  f(qt, k + 3 * 128, 128, v + 3 * 128, 128, nc, NULL, t->acc, t->m, t->l,
    0.125f * 1.4426950f, st);
}

static void test_conversion_tile(void **state) {
  (void)state;
  const int64_t D = 128;
  char err[512] = "";
  void *host = NULL;
  assert_int_equal(tc_get(&cg_kinds[CG_KIND_FWD], D, CG_BF16, NULL, &host, err,
                          sizeof err),
                   0);
  cg_target v3 = {NULL, NULL, "x86-64-v3", NULL};
  assert_false(cg_has_bf16_dot(&v3));
  void *cp = NULL;
  assert_int_equal(tc_compile_for_cpu(&cg_kinds[CG_KIND_FWD], D, CG_BF16,
                                      "x86-64-v3", &cp, err, sizeof err),
                   0);
  kr_tile_fn conv, dot;
  memcpy(&conv, &cp, sizeof conv);
  memcpy(&dot, &host, sizeof dot);

  uint64_t s = 77;
  uint16_t *qt = rand16((size_t)(D * KR_BQ), SPAT_DTYPE_BF16, &s);
  uint16_t *k = rand16((size_t)(67 * D), SPAT_DTYPE_BF16, &s);
  uint16_t *v = rand16((size_t)(67 * D), SPAT_DTYPE_BF16, &s);
  uint64_t mask[KR_BK];
  for (int j = 0; j < KR_BK; j++) mask[j] = rng(&s);
  float *st = aligned_alloc(64, (size_t)KR_ST_FLOATS(RT_BF16, D) * sizeof(float));
  tile_state *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  for (int64_t nc = 1; nc <= KR_BK; nc += 21) {  /* 1, 22, 43, 64: odd too */
    run_tile(conv, qt, k, v, nc, mask, a, st);
    run_tile(dot, qt, k, v, nc, mask, b, st);
    for (int r = 0; r < KR_BQ; r++) {
      assert_true(fabsf(a->m[r] - b->m[r]) <= 1e-4f * (1 + fabsf(a->m[r])));
      assert_true(fabsf(a->l[r] - b->l[r]) <= 1e-4f * (1 + a->l[r]));
      double vmax = 0;  /* |acc| <= l max|v| */
      for (int64_t x = 0; x < 67 * D; x++)
        vmax = fmax(vmax, fabs(rt_bf16_to_f32(v[x])));
      for (int64_t d = 0; d < D; d++) {
        double e = fabs(a->acc[r * D + d] - b->acc[r * D + d]);
        if (!(e <= (0x1p-8 + 0x1p-14) * a->l[r] * vmax + 1e-5))
          fail_msg("nc %lld row %d d %lld: conversion %g dot %g", (long long)nc,
                   r, (long long)d, a->acc[r * D + d], b->acc[r * D + d]);
      }
    }
  }
  free(a), free(b), free(st), free(qt), free(k), free(v);
}

static void test_convert(void **state) {
  (void)state;
  float f[6] = {1.0f, 1.00390625f, 1.01171875f, 65520.0f, -0.0f, NAN};
  uint16_t h[6];
  float back[6];
  assert_int_equal(spat_convert(f, SPAT_DTYPE_F32, h, SPAT_DTYPE_BF16, 6),
                   SPAT_OK);
  assert_int_equal(h[0], 0x3f80);
  assert_int_equal(h[1], 0x3f80); /* a tie: to even */
  assert_int_equal(h[2], 0x3f82); /* a tie: to even (up) */
  assert_int_equal(h[4], 0x8000);
  assert_true((h[5] & 0x7f80) == 0x7f80 && (h[5] & 0x7f));
  assert_int_equal(spat_convert(f, SPAT_DTYPE_F32, h, SPAT_DTYPE_F16, 6),
                   SPAT_OK);
  assert_int_equal(h[0], 0x3c00);
  assert_int_equal(h[3], 0x7c00); /* 65520 rounds to infinity */
  assert_int_equal(spat_convert(h, SPAT_DTYPE_F16, back, SPAT_DTYPE_F32, 6),
                   SPAT_OK);
  assert_true(back[0] == 1.0f && isinf(back[3]) && isnan(back[5]));
  /* every fp16 value survives a round trip through float32 */
  for (uint32_t x = 0; x < 65536; x++) {
    uint16_t in = (uint16_t)x, out;
    float g;
    spat_convert(&in, SPAT_DTYPE_F16, &g, SPAT_DTYPE_F32, 1);
    spat_convert(&g, SPAT_DTYPE_F32, &out, SPAT_DTYPE_F16, 1);
    if (!isnan(g)) assert_int_equal(out, in);
  }
  assert_int_equal(spat_convert(f, (spat_dtype)7, h, SPAT_DTYPE_F16, 1),
                   SPAT_EINVAL);
  assert_int_equal(spat_convert(NULL, SPAT_DTYPE_F32, h, SPAT_DTYPE_F16, 1),
                   SPAT_EINVAL);
}

/* A kernel of one dtype refuses nothing of shape, but an unknown dtype is
 * an error at compile time. */
static void test_bad_dtype(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_string(c, "dtype.pat", src, "win", &p),
                   SPAT_OK);
  spat_compile_options o = {.D = 64, .dtype = (spat_dtype)9};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EINVAL);
  assert_null(k);
  assert_non_null(strstr(spat_ctx_error(c), "dtype"));
  /* the backward pass is float32 only: a bf16 kernel refuses it */
  for (int be = 0; be < 2; be++) {
    spat_compile_options ob = {.D = 16, .backend = (spat_backend)be,
                               .dtype = SPAT_DTYPE_BF16};
    assert_int_equal(spat_compile(p, &ob, &k), SPAT_OK);
    uint16_t x[4 * 16] = {0};
    float lse[4], g[4 * 16] = {0}, dq[4 * 16], dk[4 * 16], dv[4 * 16];
    spat_tensors t = {.B = 1, .H = 1, .Lq = 4, .Lk = 4, .q = x, .k = x,
                      .v = x, .o = x, .lse = lse};
    spat_grads gr = {.dout = g, .dq = dq, .dk = dk, .dv = dv};
    assert_int_equal(spat_kernel_backward(k, &t, &gr, NULL, 0),
                     SPAT_EUNSUPPORTED);
    assert_non_null(strstr(spat_ctx_error(c), "float32 only"));
    spat_kernel_free(k);
  }
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* What is float32 only refuses bf16 and fp16 with SPAT_EUNSUPPORTED and a
 * message: a paged KV cache (the decode path), the JIT's score tile. */
static void test_refusals(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_string(c, "dtype.pat", src, "win", &p),
                   SPAT_OK);
  for (int be = 0; be < 2; be++) {
    spat_compile_options o = {.D = 16, .backend = (spat_backend)be,
                              .dtype = SPAT_DTYPE_F16};
    spat_kernel *k = NULL;
    assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
    uint16_t x[8 * 16] = {0}, o16[2 * 16];
    int32_t table[2] = {0, 1}, lens[1] = {5};
    spat_paged_kv kv = {.page_table = table, .seq_lens = lens, .n_pages = 2,
                        .page_size = 4, .max_pages = 2};
    spat_tensors t = {.B = 1, .H = 1, .Lq = 2, .Lk = 0, .q = x, .k = x,
                      .v = x, .o = o16, .paged = &kv};
    assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_EUNSUPPORTED);
    assert_non_null(strstr(spat_ctx_error(c), "float32 only"));
    spat_kernel_free(k);
  }
  spat_pattern_free(p);
  assert_int_equal(spat_pattern_parse_string(c, "dtype.pat", src, "sc", &p),
                   SPAT_OK);
  spat_compile_options o = {.D = 16, .backend = SPAT_BACKEND_JIT,
                            .dtype = SPAT_DTYPE_BF16};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_EUNSUPPORTED);
  assert_null(k);
  assert_non_null(strstr(spat_ctx_error(c), "float32 only"));
  o.dtype = SPAT_DTYPE_F32; /* and float32 compiles */
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_convert),
      cmocka_unit_test(test_bad_dtype),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_conversion_tile),
      cmocka_unit_test(test_jit_vs_interp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
