/* test_topk.c: token top-k's fast selection (float32 scores with an error
 * bound, double only where the bound cannot separate, runtime/kernel_topk.c)
 * selects exactly the interpreter's keys, JIT against the interpreter; so
 * do the tile plans built from block and token selections (nsa_like, blk,
 * mixed: the plan visits only the keys selected, FULL where every row of
 * the tile selected them) and the root top-k's gathered attention.
 *
 * Values are random, or small integers (many exact ties, to the smaller
 * key), or keys equal up to perturbations below float32's resolution
 * (near-ties the bound cannot separate), or zero query rows, or large
 * (scores near 1e31, a scale of 1e-30), or NaN in a key, or NaN in a
 * query, or infinities in keys and a query, or keys in equal pairs (exact
 * ties at every rank); v
 * is random signs, so that one key selected differently moves o by about
 * 1 / k, far above the tolerance.
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

static const char *src =
    "pattern causal32(k = 32) = topk(k, causal);\n"
    "pattern full5 = topk(5, full);\n"
    "pattern win3 = topk(3, window(9, 2)) | cols(0 .. 1);\n"
    "pattern nested = topk(4, topk(9, causal) | window(3, 0));\n"
    "pattern zero = topk(0, causal);\n"
    "pattern local = topk(40, window(100, 3));\n"
    "pattern nsa_like = causal & (window(20, 0) | blocks(8) { topk(3, causal) });\n"
    "pattern blk = blocks(16) { topk(2, full) } | cols(0 .. 1);\n"
    "pattern mixed = topk(5, causal) | window(4, 0);\n";

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float unif(uint64_t *s) { return (float)((double)(mix(s) >> 11) / 9007199254740992.0 * 2 - 1); }

enum { RANDOM, INTEGER, NEAR, ZERO_Q, HUGE_V, NAN_K, NAN_Q, INF, DUP, N_KIND };

static void fill(float *q, float *k, float *v, size_t nq, size_t nk, int64_t D,
                 int kind, uint64_t seed) {
  uint64_t r = seed;
  for (size_t t = 0; t < nq; t++)
    q[t] = kind == INTEGER ? (float)(mix(&r) % 3) - 1 : kind == ZERO_Q && (t / (size_t)D) % 3 == 0 ? 0 : unif(&r);
  for (size_t t = 0; t < nk; t++) {
    v[t] = mix(&r) & 1 ? 1.0f : -1.0f;
    if (kind == INTEGER) k[t] = (float)(mix(&r) % 3) - 1;
    else if (kind == NEAR) k[t] = 0.5f + ldexpf(unif(&r), -30) + (float)((t % (size_t)D) % 2) * 0.25f;
    else if (kind == HUGE_V) k[t] = unif(&r) * 1e15f;
    else k[t] = unif(&r);
  }
  if (kind == HUGE_V)
    for (size_t t = 0; t < nq; t++) q[t] *= 1e15f;
  if (kind == DUP)  /* odd keys repeat the even key before them: exact ties */
    for (size_t t = 0; t < nk; t++)
      if ((t / (size_t)D) % 2) k[t] = k[t - (size_t)D];
  if (kind == NAN_K) k[7 * (size_t)D + 3] = NAN;
  if (kind == NAN_Q) q[5 * (size_t)D + 2] = NAN;
  if (kind == INF) {
    k[9 * (size_t)D + 1] = INFINITY, k[20 * (size_t)D] = -INFINITY;
    q[3 * (size_t)D] = INFINITY;
  }
}

static void compare(const ir_program *p, int64_t H, int64_t Lq, int64_t Lk,
                    int64_t D, int kind, int threads) {
  backend_opts o = {.D = D, .threads = threads};
  char err[512] = "";
  void *kj = backend_jit.compile(p, &o, err, sizeof err);
  void *ki = backend_interp.compile(p, &o, err, sizeof err);
  if (!kj || !ki) fail_msg("compile: %s", err);
  size_t nq = (size_t)(H * Lq * D), nk = (size_t)(H * Lk * D), nl = (size_t)(H * Lq);
  float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk);
  float *o1 = malloc(4 * nq), *o2 = malloc(4 * nq), *l1 = malloc(4 * nl), *l2 = malloc(4 * nl);
  assert_true(q && k && v && o1 && o2 && l1 && l2);
  fill(q, k, v, nq, nk, D, kind, 0x70b + (uint64_t)kind * 131 + (uint64_t)Lq);
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = 1, a.H = H, a.Hkv = H, a.Lq = Lq, a.Lk = Lk, a.D = D;
  a.q.data = q, a.k.data = k, a.v.data = v, a.o.data = o1;
  rt_tensor_strides(&a.q, 0, H, Lq, D);
  rt_tensor_strides(&a.k, 0, H, Lk, D);
  rt_tensor_strides(&a.v, 0, H, Lk, D);
  rt_tensor_strides(&a.o, 0, H, Lq, D);
  a.lse = l1, a.lse_sb = H * Lq, a.lse_sh = Lq;
  a.threads = threads;
  if (kind == HUGE_V) a.scale = 1e-30f;
  assert_int_equal(backend_interp.run(ki, &a, err, sizeof err), RT_OK);
  a.o.data = o2, a.lse = l2;
  if (backend_jit.run(kj, &a, err, sizeof err) != RT_OK) fail_msg("jit: %s", err);
  for (size_t x = 0; x < nl; x++) {
    if (isfinite(l1[x]) != isfinite(l2[x]) || isnan(l1[x]) != isnan(l2[x]))
      fail_msg("%s kind %d: row %zu: lse %g vs %g", p->name, kind, x, l1[x], l2[x]);
    for (int64_t d = 0; d < D; d++) {
      float x1 = o1[x * (size_t)D + (size_t)d], x2 = o2[x * (size_t)D + (size_t)d];
      if (isnan(x1) && isnan(x2)) continue;
      if (!(fabsf(x1 - x2) < 2e-5f))
        fail_msg("%s kind %d Lq %lld: row %zu d %lld: o %g vs %g", p->name, kind,
                 (long long)Lq, x, (long long)d, x1, x2);
    }
  }
  backend_jit.free(kj), backend_interp.free(ki);
  free(q), free(k), free(v), free(o1), free(o2), free(l1), free(l2);
}

static void test_selection(void **state) {
  (void)state;
  static const char *const names[] = {"causal32", "full5", "win3", "nested",
                                      "zero", "local", "nsa_like", "blk",
                                      "mixed"};
  diag *d = diag_new();
  arena *ar = arena_new();
  fe_module *m = fe_load_string(d, ar, "topk.pat", src);
  if (!m) fail_msg("%s", diag_text(d));
  for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
    ir_program *p = fe_instantiate(d, m, names[n], NULL, 0);
    if (!p) fail_msg("%s", diag_text(d));
    for (int kind = 0; kind < N_KIND; kind++) {
      compare(p, 2, SMALL(300, 100), SMALL(300, 100), 64, kind, 2);
      compare(p, 1, 70, SMALL(400, 130), 32, kind, 1);
      if (kind == INTEGER || kind == INF)  /* Lq > Lk */
        compare(p, 1, SMALL(300, 130), 90, 16, kind, 1);
    }
  }
  /* k beyond the fast path's list (1024), and k = Lk - 1 */
  fe_define big[] = {{"k", 1500}};
  ir_program *pb = fe_instantiate(d, m, "causal32", big, 1);
  assert_non_null(pb);
  compare(pb, 1, SMALL(1600, 200), SMALL(1600, 200), 16, RANDOM, 2);
  /* rows of more keys than a superblock of the fast path (2048: bounds
   * from the group maxima, then from the keys kept), every kind */
  ir_program *pc = fe_instantiate(d, m, "causal32", NULL, 0);
  assert_non_null(pc);
  for (int kind = 0; kind < N_KIND; kind++)
    compare(pc, 1, 70, SMALL(2600, 300), 16, kind, 1);
  /* k = 1, and k at the fast path's largest (1024) */
  fe_define one[] = {{"k", 1}};
  ir_program *p1 = fe_instantiate(d, m, "causal32", one, 1);
  assert_non_null(p1);
  compare(p1, 2, 70, SMALL(2300, 300), 16, RANDOM, 1);
  compare(p1, 1, 130, 130, 16, DUP, 1);
  fe_define kmax[] = {{"k", 1024}};
  ir_program *pk = fe_instantiate(d, m, "causal32", kmax, 1);
  assert_non_null(pk);
  compare(pk, 1, 70, SMALL(3000, 1100), 16, RANDOM, 1);
  compare(pk, 1, 70, SMALL(3000, 1100), 16, NEAR, 1);
  fe_define most[] = {{"k", 199}};
  ir_program *pm = fe_instantiate(d, m, "causal32", most, 1);
  assert_non_null(pm);
  compare(pm, 1, 200, 200, 16, INTEGER, 1);
  arena_free(ar);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_selection)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
