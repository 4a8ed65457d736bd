/* test_decode.c: the decode driver (runtime/kernel_decode.c) and paged KV
 * caches against the interpreter.
 *
 * Decode: JIT kernels forced through the decode path (kr_decode_max_lq) at
 * Lq in {1, 2, 7, 16, 33} over Lk up to 131072, GQA ratios 1, 2, 3 and 4,
 * batches of 1 and 2, 1 and 2 threads (so the key range is split and merged
 * by log-sum-exp), both layouts, Lq > Lk, rows with no key, per-head
 * patterns, random, top-k, run-time errors, and every library pattern.
 * Outputs within 2e-5, lse within 1e-4 with the same rows finite; errors:
 * the same status and message.  The default threshold is also run (either
 * path must agree).
 *
 * Paged: k and v scattered over a shuffled pool of pages (page sizes 1, 16,
 * 64, 100), sequences of different lengths in one call; the JIT and the
 * interpreter on the pool against the interpreter on each sequence's dense
 * tensors; and the argument checks (page ids, lengths, Lk, unsupported
 * patterns).
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

#include "kernel_rt.h"
#include "small.h"
#include "spat.h"

static uint64_t rng = 0x5eed;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *rand_buf(size_t n) {
  float *p = malloc(n * sizeof *p + 4);
  for (size_t x = 0; x < n; x++) p[x] = frand();
  return p;
}

/* A pattern of a library module, by name, for compile(). */
static spat_module *lib_mod;
static const char *lib_name;

static spat_kernel *compile(spat_ctx *ctx, const char *src, int64_t D,
                            int layout, int threads, spat_backend be) {
  spat_pattern *p = NULL;
  if (src)
    assert_int_equal(spat_pattern_parse_string(ctx, "t.pat", src, NULL, &p),
                     SPAT_OK);
  else
    assert_int_equal(spat_module_select(lib_mod, lib_name, NULL, 0, &p),
                     SPAT_OK);
  spat_compile_options o = {D, (spat_layout)layout, threads, be, 0};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(p, &o, &k);
  if (st != SPAT_OK)
    fail_msg("%s: %s", src ? src : lib_name, spat_ctx_error(ctx));
  spat_pattern_free(p);
  return k;
}

/* The default values of a kernel's runtime scalars. */
static size_t default_args(const spat_kernel *k, spat_value *v) {
  const spat_signature *s = spat_kernel_signature(k);
  for (size_t x = 0; x < s->n_args; x++)
    v[x] = spat_scalar(s->args[x].default_value);
  return s->n_args;
}

typedef struct res {
  float *o, *lse;
  spat_status st;
  char msg[512];
} res;

static void run(spat_ctx *ctx, const spat_kernel *k, spat_tensors t, res *r,
                size_t no) {
  r->o = calloc(no + 1, sizeof *r->o);
  r->lse = calloc((size_t)(t.B * t.H * t.Lq) + 1, sizeof *r->lse);
  t.o = r->o;
  t.lse = r->lse;
  spat_value args[8];
  size_t n = default_args(k, args);
  r->st = spat_kernel_call(k, &t, args, n);
  snprintf(r->msg, sizeof r->msg, "%s",
           r->st == SPAT_OK ? "" : spat_ctx_error(ctx));
}

static void res_free(res *r) { free(r->o), free(r->lse); }

/* o within 2e-5 and lse within 1e-4, the same rows finite. */
static void same(const res *a, const res *b, size_t no, size_t nl,
                 const char *what) {
  if (a->st != b->st || strcmp(a->msg, b->msg) != 0)
    fail_msg("%s: status %d '%s' vs %d '%s'", what, a->st, a->msg, b->st,
             b->msg);
  if (a->st != SPAT_OK) return;
  for (size_t x = 0; x < nl; x++) {
    if (isfinite(a->lse[x]) != isfinite(b->lse[x]) ||
        (isfinite(a->lse[x]) && fabsf(a->lse[x] - b->lse[x]) > 1e-4f))
      fail_msg("%s: lse[%zu] %g vs %g", what, x, a->lse[x], b->lse[x]);
  }
  for (size_t x = 0; x < no; x++)
    if (!(fabsf(a->o[x] - b->o[x]) <= 2e-5f))
      fail_msg("%s: o[%zu] %g vs %g", what, x, a->o[x], b->o[x]);
}

typedef struct dcase {
  const char *src;
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout, threads;
  int64_t inf_key;  /* > 0: v of this key (every head) is +inf */
} dcase;

/* JIT (decode forced, then the default threshold) against the interp. */
static void check_case(spat_ctx *ctx, const dcase *c) {
  char what[512];
  snprintf(what, sizeof what,
           "%s B %lld H %lld Hkv %lld Lq %lld Lk %lld D %lld layout %d "
           "threads %d",
           c->src ? c->src : lib_name, (long long)c->B, (long long)c->H, (long long)c->Hkv,
           (long long)c->Lq, (long long)c->Lk, (long long)c->D, c->layout,
           c->threads);
  size_t nq = (size_t)(c->B * c->H * c->Lq * c->D);
  size_t nk = (size_t)(c->B * c->Hkv * c->Lk * c->D);
  float *q = rand_buf(nq), *k = rand_buf(nk), *v = rand_buf(nk);
  if (c->inf_key > 0) /* layout 0 only */
    for (int64_t h = 0; h < c->B * c->Hkv; h++)
      v[(h * c->Lk + c->inf_key) * c->D + 1] = INFINITY;
  spat_tensors t = {c->B, c->H, c->Hkv, c->Lq, c->Lk, q, k, v,
                    NULL, NULL, 0, NULL};
  spat_kernel *ki = compile(ctx, c->src, c->D, c->layout, c->threads,
                            SPAT_BACKEND_INTERP);
  spat_kernel *kj = compile(ctx, c->src, c->D, c->layout, c->threads,
                            SPAT_BACKEND_JIT);
  res ri, rd, rp;
  run(ctx, ki, t, &ri, nq);
  kr_decode_max_lq = INT64_MAX;
  run(ctx, kj, t, &rd, nq);
  kr_decode_max_lq = KR_DECODE_MAX_LQ;
  run(ctx, kj, t, &rp, nq);
  size_t nl = (size_t)(c->B * c->H * c->Lq);
  same(&rd, &ri, nq, nl, what);
  same(&rp, &ri, nq, nl, what);
  res_free(&ri), res_free(&rd), res_free(&rp);
  spat_kernel_free(ki);
  spat_kernel_free(kj);
  free(q), free(k), free(v);
}

static const char *const pats[] = {
    "pattern p = causal & (cols(0 .. 4) | window(300, 0));",
    "pattern p = window(64, 64);",
    "pattern p = causal & where(i % 3 != 1);",    /* empty rows */
    "pattern p = h % 2 == 0 ? window(40, 0) : causal;",
    "pattern p = causal & (random(100, 7) | cols(0 .. 2));",
    "pattern p = causal & (window(128, 0) | blocks(64) { topk(4, causal) });",
    "pattern p = dilated(50, 3) | cols(0 .. 1);",
};

static void test_decode_vs_interp(void **state) {
  (void)state;
  spat_ctx *ctx = spat_ctx_new();
  static const int64_t lqs[] = {1, 2, 7, 16, 33};
  static const int64_t gqa[][2] = {{4, 1}, {4, 2}, {3, 3}, {6, 2}};
  int n = 0;
  for (size_t p = 0; p < sizeof pats / sizeof *pats; p++)
    for (size_t x = 0; x < sizeof lqs / sizeof *lqs; x++) {
      const int64_t *g = gqa[(p + x) % 4];
      int64_t Lk = (int64_t[]){1000, 777, 3, 4097, 200}[(p * 3 + x) % 5];
      dcase c = {pats[p], 1 + (int64_t)((p + x) % 2), g[0], g[1], lqs[x], Lk,
                 (p + x) % 3 == 0 ? 32 : 16, (int)(x % 2), 1 + (int)(p % 2), 0};
      check_case(ctx, &c);
      n++;
    }
  /* long caches, one head of each kind, both thread counts */
  int64_t Lk = SMALL(131072, 16384);
  for (int th = 1; th <= 2; th++) {
    dcase c1 = {pats[0], 1, 4, 1, 1, Lk, 16, 0, th, 0};
    dcase c2 = {pats[0], 1, 2, 1, 33, Lk, 16, 1, th, 0};
    dcase c3 = {pats[1], 1, 1, 1, 16, Lk - 5, 16, 0, th, 0};
    check_case(ctx, &c1);
    check_case(ctx, &c2);
    check_case(ctx, &c3);
    n += 3;
  }
  print_message("decode: %d cases agree with the interpreter\n", n);
  spat_ctx_free(ctx);
}

/* A masked key with v = inf weighs nothing (never 0 * inf): the tile that
 * holds it runs per row. */
static void test_decode_nonfinite_v(void **state) {
  (void)state;
  spat_ctx *ctx = spat_ctx_new();
  static const int64_t lqs[] = {1, 4, 16, 100};
  for (size_t x = 0; x < sizeof lqs / sizeof *lqs; x++) {
    int64_t lq = lqs[x]; /* 100: the default threshold runs the prefill */
    dcase c = {"pattern p = causal & where(j % 3 != 1);", 1, 4, 2, lq, 1000,
               16, 0, 1, 502}; /* 502 % 3 == 1: masked, in a visited tile */
    check_case(ctx, &c);
  }
  spat_ctx_free(ctx);
}

static void test_decode_errors(void **state) {
  (void)state;
  spat_ctx *ctx = spat_ctx_new();
  /* division by zero at position 500, a row only some Lk reach */
  const char *src = "pattern p = causal & where(j / (i - 500) >= 0);";
  for (int64_t Lk = 495; Lk <= 505; Lk += 5) {
    dcase c = {src, 1, 4, 2, 7, Lk, 16, 0, 2, 0};
    check_case(ctx, &c);
  }
  spat_ctx_free(ctx);
}

static void test_library(void **state) {
  (void)state;
  static const char *const files[] = {
      "patterns/bigbird.pat",      "patterns/dilated.pat",
      "patterns/longformer.pat",   "patterns/nsa.pat",
      "patterns/prefix_lm.pat",    "patterns/sparse_transformer.pat",
      "patterns/streaming_llm.pat"};
  spat_ctx *ctx = spat_ctx_new();
  int n = 0;
  for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
    spat_module *m = NULL;
    assert_int_equal(spat_module_parse_file(ctx, files[f], &m), SPAT_OK);
    for (size_t x = 0; x < spat_module_n_patterns(m); x++) {
      spat_pattern_decl d;
      assert_int_equal(spat_module_pattern(m, x, &d), SPAT_OK);
      if (d.needs_params) continue;
      spat_pattern_info info;
      spat_pattern *p = NULL;
      assert_int_equal(spat_module_select(m, d.name, NULL, 0, &p), SPAT_OK);
      assert_int_equal(spat_pattern_describe(p, &info), SPAT_OK);
      int plain = info.n_externs == 0;
      for (size_t a = 0; a < info.n_args; a++)
        plain &= info.args[a].kind == SPAT_KIND_SCALAR;
      spat_pattern_free(p);
      if (!plain) continue;
      lib_mod = m, lib_name = d.name;
      for (int64_t lq = 1; lq <= 16; lq += 15) {
        dcase c = {NULL, 1, 4, 2, lq, 2000, 16, 0, 2, 0};
        check_case(ctx, &c);
        n++;
      }
    }
    spat_module_free(m);
  }
  assert_true(n >= 10);
  print_message("library: %d decode runs agree\n", n);
  spat_ctx_free(ctx);
}

/* --- paged ------------------------------------------------------------- */

typedef struct pool {
  spat_paged_kv pk;
  int32_t *pt, *lens;
  float *k, *v;      /* pools */
} pool;

/* Sequences b of lens[b] keys, dense kd/vd [B, Hkv, Lmax, D], scattered
 * over a shuffled pool. */
static void make_pool(pool *P, int64_t B, int64_t Hkv, int64_t D,
                      int64_t ps, const int32_t *lens, int64_t Lmax,
                      const float *kd, const float *vd) {
  int64_t maxp = (Lmax + ps - 1) / ps + 1, np = B * maxp + 3;
  P->pt = calloc((size_t)(B * maxp) + 1, sizeof *P->pt);
  P->lens = malloc((size_t)B * sizeof *P->lens + 1);
  P->k = rand_buf((size_t)(np * ps * Hkv * D));
  P->v = rand_buf((size_t)(np * ps * Hkv * D));
  int64_t *perm = malloc((size_t)np * sizeof *perm);
  for (int64_t x = 0; x < np; x++) perm[x] = x;
  for (int64_t x = np - 1; x > 0; x--) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    int64_t y = (int64_t)((rng >> 33) % (uint64_t)(x + 1)), t = perm[x];
    perm[x] = perm[y], perm[y] = t;
  }
  int64_t next = 0;
  for (int64_t b = 0; b < B; b++) {
    P->lens[b] = lens[b];
    for (int64_t x = 0; x < maxp; x++) P->pt[b * maxp + x] = -7; /* unused */
    for (int64_t x = 0; x * ps < lens[b]; x++) P->pt[b * maxp + x] = (int32_t)perm[next++];
    for (int64_t h = 0; h < Hkv; h++)
      for (int64_t j = 0; j < lens[b]; j++) {
        int64_t at = ((P->pt[b * maxp + j / ps] * ps + j % ps) * Hkv + h) * D;
        int64_t from = ((b * Hkv + h) * Lmax + j) * D;
        memcpy(P->k + at, kd + from, (size_t)D * sizeof(float));
        memcpy(P->v + at, vd + from, (size_t)D * sizeof(float));
      }
  }
  free(perm);
  P->pk = (spat_paged_kv){P->pt, P->lens, np, ps, maxp};
}

static void pool_free(pool *P) { free(P->pt), free(P->lens), free(P->k), free(P->v); }

static void check_paged(spat_ctx *ctx, const char *src, int64_t B, int64_t H,
                        int64_t Hkv, int64_t Lq, int64_t D, int64_t ps,
                        const int32_t *lens, int threads) {
  int64_t Lmax = 1;
  for (int64_t b = 0; b < B; b++) Lmax = lens[b] > Lmax ? lens[b] : Lmax;
  size_t nq = (size_t)(B * H * Lq * D);
  float *q = rand_buf(nq);
  float *kd = rand_buf((size_t)(B * Hkv * Lmax * D));
  float *vd = rand_buf((size_t)(B * Hkv * Lmax * D));
  pool P;
  make_pool(&P, B, Hkv, D, ps, lens, Lmax, kd, vd);
  spat_kernel *ki = compile(ctx, src, D, 0, threads, SPAT_BACKEND_INTERP);
  spat_kernel *kj = compile(ctx, src, D, 0, threads, SPAT_BACKEND_JIT);
  spat_tensors t = {B, H, Hkv, Lq, 0, q, P.k, P.v, NULL, NULL, 0, &P.pk};
  res rj, ri;
  run(ctx, kj, t, &rj, nq);
  run(ctx, ki, t, &ri, nq);
  char what[256];
  snprintf(what, sizeof what, "paged %s B %lld H %lld Hkv %lld Lq %lld ps %lld",
           src, (long long)B, (long long)H, (long long)Hkv, (long long)Lq,
           (long long)ps);
  same(&rj, &ri, nq, (size_t)(B * H * Lq), what);
  /* each sequence dense, by the interpreter: B = 1, Lk = lens[b] */
  for (int64_t b = 0; b < B; b++) {
    int64_t L = lens[b];
    float *kb = malloc((size_t)(Hkv * L * D) * sizeof *kb + 4);
    float *vb = malloc((size_t)(Hkv * L * D) * sizeof *vb + 4);
    for (int64_t h = 0; h < Hkv; h++)
      for (int64_t j = 0; j < L; j++) {
        memcpy(kb + (h * L + j) * D, kd + ((b * Hkv + h) * Lmax + j) * D,
               (size_t)D * sizeof *kb);
        memcpy(vb + (h * L + j) * D, vd + ((b * Hkv + h) * Lmax + j) * D,
               (size_t)D * sizeof *vb);
      }
    spat_tensors tb = {1, H, Hkv, Lq, L, q + b * H * Lq * D, kb, vb,
                       NULL, NULL, 0, NULL};
    res rb;
    run(ctx, ki, tb, &rb, (size_t)(H * Lq * D));
    res sub = rj;
    sub.o = rj.o + b * H * Lq * D;
    sub.lse = rj.lse + b * H * Lq;
    same(&sub, &rb, (size_t)(H * Lq * D), (size_t)(H * Lq), what);
    res_free(&rb);
    free(kb), free(vb);
  }
  res_free(&rj), res_free(&ri);
  spat_kernel_free(ki), spat_kernel_free(kj);
  pool_free(&P);
  free(q), free(kd), free(vd);
}

static void test_paged(void **state) {
  (void)state;
  spat_ctx *ctx = spat_ctx_new();
  static const int32_t lens3[] = {1000, 17, 0};
  static const int32_t lens2[] = {130, 4096};
  static const int32_t lens1[] = {5};
  static const int64_t pss[] = {1, 16, 64, 100};
  for (size_t p = 0; p < 5; p++)
    for (size_t x = 0; x < 4; x++) {
      int64_t lq = (int64_t[]){1, 7, 16, 33}[x];
      check_paged(ctx, pats[p], 3, 4, 2, lq, 16, pss[(p + x) % 4], lens3,
                  1 + (int)(x % 2));
      check_paged(ctx, pats[p], 2, 3, 1, lq, 32, pss[(p + x + 1) % 4], lens2,
                  2);
      check_paged(ctx, pats[p], 1, 2, 2, lq, 16, pss[x], lens1, 1);
    }
  /* errors: the same in both backends */
  check_paged(ctx, "pattern p = causal & where(j / (i - 20) >= 0);", 3, 2, 1,
              1, 16, 16, lens3, 2);
  spat_ctx_free(ctx);
}

static void expect(spat_ctx *ctx, const spat_kernel *k, const spat_tensors *t,
                   spat_status want, const char *needle) {
  spat_status st = spat_kernel_call(k, t, NULL, 0);
  if (st != want || !strstr(spat_ctx_error(ctx), needle))
    fail_msg("status %d '%s', wanted %d '%s'", st, spat_ctx_error(ctx), want,
             needle);
}

static void test_paged_checks(void **state) {
  (void)state;
  spat_ctx *ctx = spat_ctx_new();
  float buf[4 * 4 * 16] = {0}, o[2 * 2 * 16];
  int32_t pt[4] = {0, 1, 2, 3}, lens[2] = {5, 8};
  spat_paged_kv pk = {pt, lens, 4, 4, 2};
  for (int be = 0; be < 2; be++) {
    spat_kernel *k = compile(ctx, "pattern p = causal;", 16, 0, 1,
                             (spat_backend)be);
    spat_tensors t = {2, 2, 1, 1, 0, buf, buf, buf, o, NULL, 0, &pk};
    assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_OK);
    t.Lk = 8;
    expect(ctx, k, &t, SPAT_EINVAL, "must be 0");
    t.Lk = 0;
    lens[1] = 9;
    expect(ctx, k, &t, SPAT_EINVAL, "seq_lens[1] = 9");
    lens[1] = -1;
    expect(ctx, k, &t, SPAT_EINVAL, "seq_lens[1] = -1");
    lens[1] = 8;
    pt[3] = 4;
    expect(ctx, k, &t, SPAT_EINVAL, "page_table[1][1] = 4");
    pt[3] = -1;
    expect(ctx, k, &t, SPAT_EINVAL, "page_table[1][1] = -1");
    pt[3] = 3;
    lens[1] = 4;  /* the second page of sequence 1 is not read */
    pt[3] = 99;
    assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_OK);
    lens[1] = 8, pt[3] = 3;
    pk.page_size = 0;
    expect(ctx, k, &t, SPAT_EINVAL, "page_size");
    pk.page_size = 4;
    pk.seq_lens = NULL;
    expect(ctx, k, &t, SPAT_EINVAL, "seq_lens is NULL");
    pk.seq_lens = lens;
    t.k = NULL;
    expect(ctx, k, &t, SPAT_EINVAL, "k pool is NULL");
    t.k = buf;
    spat_kernel_free(k);
    k = compile(ctx, "pattern p(input doc: int[]) = where(doc[i] == doc[j]);",
                16, 0, 1, (spat_backend)be);
    spat_value a = spat_input(pt);
    assert_int_equal(spat_kernel_call(k, &t, &a, 1), SPAT_EUNSUPPORTED);
    spat_kernel_free(k);
  }
  spat_kernel *k = compile(ctx, "pattern p = topk(2, causal);", 16, 0, 1,
                           SPAT_BACKEND_JIT);
  spat_tensors t = {2, 2, 1, 1, 0, buf, buf, buf, o, NULL, 0, &pk};
  expect(ctx, k, &t, SPAT_EUNSUPPORTED, "top-k");
  spat_kernel_free(k);
  spat_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_vs_interp),
      cmocka_unit_test(test_decode_nonfinite_v),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_library),
      cmocka_unit_test(test_paged),
      cmocka_unit_test(test_paged_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
