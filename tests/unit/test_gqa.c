/* test_gqa.c: GQA prefill (runtime/kernel_rt.c's task): the query heads
 * sharing a KV head take each key tile in turn (subgroups of at most
 * KR_GQA_MAX heads), against the one-head-a-task order (kr_gqa_group = 0)
 * and the interpreter.
 *
 * Each head's tiles are the same calls in the same order either way, so
 * grouped and ungrouped JIT outputs must be bit-identical; against the
 * interpreter, o within 2e-5 and lse within 1e-4, the same rows finite.
 * Cases: head-independent patterns (window with sinks, causal, blocks),
 * head-dependent ones whose spans differ between heads (the subgroup then
 * falls back to one head at a time) and whose masks differ with the same
 * spans, random(r > KR_RANDOM_INLINE) (each head's key sets), top-k (not
 * grouped), a NaN in v (per-row tiles), GQA ratios 2, 4, 8 and 16 (two
 * subgroups at D = 64), D in {32, 64, 128, 256}, both layouts, 1 and 2
 * threads, bf16, and a run-time error (the same message grouped or not).
 * Every case also runs with the spans and row words of a pattern that reads
 * no head evaluated per head (kr_share_spans = 0) and shared for one query
 * tile only (kr_share_words = 64): outputs bit-identical again.
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
#include "spat.h"

static uint64_t rng = 0x96a;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct gcase {
  const char *src;
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout, threads;
  spat_dtype dt;
  int nan_v; /* a NaN in one v row */
} gcase;

static spat_kernel *compile(spat_ctx *ctx, const gcase *c, spat_backend be) {
  spat_pattern *p = NULL;
  assert_int_equal(spat_pattern_parse_string(ctx, "g.pat", c->src, NULL, &p),
                   SPAT_OK);
  spat_compile_options o = {c->D, (spat_layout)c->layout, c->threads, be, 0,
                            c->dt};
  spat_kernel *k = NULL;
  if (spat_compile(p, &o, &k) != SPAT_OK)
    fail_msg("%s: %s", c->src, spat_ctx_error(ctx));
  spat_pattern_free(p);
  return k;
}

typedef struct res {
  void *o;
  float *lse;
  spat_status st;
  char msg[512];
} res;

static void run(spat_ctx *ctx, const spat_kernel *k, spat_tensors t, res *r,
                size_t no_bytes) {
  r->o = calloc(no_bytes + 4, 1);
  r->lse = calloc((size_t)(t.B * t.H * t.Lq) + 1, sizeof *r->lse);
  t.o = r->o, t.lse = r->lse;
  spat_value args[4];
  const spat_signature *s = spat_kernel_signature(k);
  for (size_t x = 0; x < s->n_args; x++)
    args[x] = spat_scalar(s->args[x].default_value);
  r->st = spat_kernel_call(k, &t, args, s->n_args);
  snprintf(r->msg, sizeof r->msg, "%s",
           r->st == SPAT_OK ? "" : spat_ctx_error(ctx));
}

static float elem(const void *o, size_t x, spat_dtype dt) {
  if (dt == SPAT_DTYPE_F32) return ((const float *)o)[x];
  uint32_t w = (uint32_t)((const uint16_t *)o)[x] << 16; /* bf16 */
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

static void check(spat_ctx *ctx, const gcase *c) {
  char what[400];
  snprintf(what, sizeof what, "%s B %lld H %lld Hkv %lld Lq %lld Lk %lld D "
           "%lld layout %d threads %d dtype %d", c->src, (long long)c->B,
           (long long)c->H, (long long)c->Hkv, (long long)c->Lq,
           (long long)c->Lk, (long long)c->D, c->layout, c->threads, c->dt);
  size_t nq = (size_t)(c->B * c->H * c->Lq * c->D);
  size_t nk = (size_t)(c->B * c->Hkv * c->Lk * c->D);
  size_t esz = c->dt == SPAT_DTYPE_F32 ? 4 : 2;
  float *f[3] = {malloc(nq * 4), malloc(nk * 4), malloc(nk * 4)};
  void *x[3] = {malloc(nq * esz), malloc(nk * esz), malloc(nk * esz)};
  size_t n[3] = {nq, nk, nk};
  for (int t = 0; t < 3; t++) {
    for (size_t y = 0; y < n[t]; y++) f[t][y] = frand();
    if (t == 2 && c->nan_v) f[t][3 * c->D + 1] = NAN;
    assert_int_equal(spat_convert(f[t], SPAT_DTYPE_F32, x[t], c->dt, n[t]),
                     SPAT_OK);
  }
  spat_tensors t = {c->B, c->H, c->Hkv, c->Lq, c->Lk, x[0], x[1], x[2],
                    NULL, NULL, 0, NULL};
  spat_kernel *ki = compile(ctx, c, SPAT_BACKEND_INTERP);
  spat_kernel *kj = compile(ctx, c, SPAT_BACKEND_JIT);
  res ri, rg, r1, rs[2];
  run(ctx, ki, t, &ri, nq * esz);
  kr_gqa_group = 1;
  run(ctx, kj, t, &rg, nq * esz);
  kr_gqa_group = 0;
  run(ctx, kj, t, &r1, nq * esz);
  kr_gqa_group = 1;
  /* spans and row words not shared by the heads, then shared for the first
   * query tile only (the others' heads evaluate their own) */
  kr_share_spans = 0;
  run(ctx, kj, t, &rs[0], nq * esz);
  kr_share_spans = 1, kr_share_words = 64;
  run(ctx, kj, t, &rs[1], nq * esz);
  kr_share_words = (int64_t)1 << 22;
  if (rg.st != ri.st || strcmp(rg.msg, ri.msg) || r1.st != rg.st ||
      strcmp(r1.msg, rg.msg))
    fail_msg("%s: status %d '%s' / %d '%s' (one head a task) vs interp %d "
             "'%s'", what, rg.st, rg.msg, r1.st, r1.msg, ri.st, ri.msg);
  for (int y = 0; y < 2; y++)
    if (rs[y].st != rg.st || strcmp(rs[y].msg, rg.msg))
      fail_msg("%s: status %d '%s' with sharing %d vs %d '%s'", what, rs[y].st,
               rs[y].msg, y, rg.st, rg.msg);
  if (rg.st == SPAT_OK) {
    if (memcmp(rg.o, r1.o, nq * esz) ||
        memcmp(rg.lse, r1.lse, (size_t)(c->B * c->H * c->Lq) * 4))
      fail_msg("%s: grouped and one-head-a-task outputs differ", what);
    for (int y = 0; y < 2; y++)
      if (memcmp(rg.o, rs[y].o, nq * esz) ||
          memcmp(rg.lse, rs[y].lse, (size_t)(c->B * c->H * c->Lq) * 4))
        fail_msg("%s: outputs differ with the heads' spans %s", what,
                 y ? "shared for one query tile" : "not shared");
    /* bf16: the JIT and the interpreter round o alike up to one step */
    float tol = c->dt == SPAT_DTYPE_F32 ? 2e-5f : 1.5e-2f;
    for (size_t y = 0; y < (size_t)(c->B * c->H * c->Lq); y++)
      if (isfinite(rg.lse[y]) != isfinite(ri.lse[y]) ||
          (isfinite(ri.lse[y]) && fabsf(rg.lse[y] - ri.lse[y]) > 1e-4f))
        fail_msg("%s: lse[%zu] %g vs %g", what, y, rg.lse[y], ri.lse[y]);
    for (size_t y = 0; y < nq; y++) {
      float a = elem(rg.o, y, c->dt), b = elem(ri.o, y, c->dt);
      if (!(fabsf(a - b) <= tol) && !(isnan(a) && isnan(b)))
        fail_msg("%s: o[%zu] %g vs %g", what, y, a, b);
    }
  }
  free(ri.o), free(ri.lse), free(rg.o), free(rg.lse), free(r1.o), free(r1.lse);
  for (int y = 0; y < 2; y++) free(rs[y].o), free(rs[y].lse);
  spat_kernel_free(ki);
  spat_kernel_free(kj);
  for (int y = 0; y < 3; y++) free(f[y]), free(x[y]);
}

static const char *const sinks =
    "pattern s(runtime n = 4) = causal & (cols(0 .. n) | window(100, 0));";

static void test_head_independent(void **st) {
  (void)st;
  spat_ctx *ctx = spat_ctx_new();
  const gcase cs[] = {
      {sinks, 1, 8, 2, 300, 300, 64, 0, 1, SPAT_DTYPE_F32, 0},
      {sinks, 2, 4, 1, 200, 260, 128, 1, 2, SPAT_DTYPE_F32, 0},
      {"pattern c = causal;", 1, 16, 1, 150, 150, 64, 0, 2, SPAT_DTYPE_F32, 0},
      {"pattern c = causal;", 1, 4, 2, 130, 130, 256, 0, 1, SPAT_DTYPE_F32, 0},
      {"pattern b = blocks(16) { window(1) | global({0 .. 1}) };", 1, 6, 3,
       170, 170, 32, 1, 1, SPAT_DTYPE_F32, 0},
      {sinks, 1, 4, 1, 140, 140, 64, 0, 1, SPAT_DTYPE_F32, 1},
      {sinks, 1, 8, 2, 200, 200, 64, 0, 2, SPAT_DTYPE_BF16, 0},
      /* per-row key tiles deferred to the query tile's end (stride), and a
       * 2D neighbourhood by where (its plan's interval boxes, one row word
       * set a query tile for all heads) */
      {"pattern st = causal & (window(24, 0) | stride(24));", 1, 4, 2, 400,
       400, 64, 0, 1, SPAT_DTYPE_F32, 0},
      {"pattern st = causal & (window(24, 0) | stride(24));", 2, 4, 4, 330,
       330, 32, 1, 2, SPAT_DTYPE_F32, 1},
      {"pattern n = where(abs(j / 20 - i / 20) <= 2 && abs(j % 20 - i % 20) <= 2);",
       1, 6, 2, 400, 400, 64, 0, 2, SPAT_DTYPE_F32, 0},
      {"pattern n = where(abs(j / 20 - i / 20) <= 2 && abs(j % 20 - i % 20) <= 2);",
       2, 2, 1, 260, 300, 64, 0, 1, SPAT_DTYPE_BF16, 0},
  };
  for (size_t x = 0; x < sizeof cs / sizeof *cs; x++) check(ctx, &cs[x]);
  spat_ctx_free(ctx);
}

static void test_head_dependent(void **st) {
  (void)st;
  spat_ctx *ctx = spat_ctx_new();
  const gcase cs[] = {
      /* spans differ per head: window width by head */
      {"pattern w = causal & window(20 + 40 * h, 0);", 1, 4, 1, 260, 260, 64,
       0, 2, SPAT_DTYPE_F32, 0},
      /* same spans, masks per head */
      {"pattern m = causal & where((j + h) % 3 != 0);", 1, 4, 2, 150, 150,
       32, 1, 1, SPAT_DTYPE_F32, 0},
      /* each head's own random key sets, r > KR_RANDOM_INLINE */
      {"pattern r = window(8, 8) | random(80, 7);", 1, 4, 1, 140, 300, 32, 0,
       1, SPAT_DTYPE_F32, 0},
      /* top-k: one head a task */
      {"pattern t = causal & (window(16, 0) | topk(4, causal));", 1, 4, 2,
       100, 100, 32, 0, 2, SPAT_DTYPE_F32, 0},
      /* a run-time error */
      {"pattern e = where(j / (h - 2) >= 0);", 1, 4, 1, 70, 70, 32, 0, 1,
       SPAT_DTYPE_F32, 0},
  };
  for (size_t x = 0; x < sizeof cs / sizeof *cs; x++) check(ctx, &cs[x]);
  spat_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_independent),
      cmocka_unit_test(test_head_dependent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
