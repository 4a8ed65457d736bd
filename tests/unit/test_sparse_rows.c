/* test_sparse_rows.c: the per-pair path of partial tiles (kernel_rt.c's
 * sparse_rows, through kri_sparse_rows) against an online-softmax step
 * written here in double: random key bitmaps from empty to full (runs of
 * rows longer than one batch of pairs), one key a row, D in {16, 64, 128},
 * 1 to 64 rows, running state from an earlier step or none, large scales
 * (most weights underflow), a NaN in one query row (that row's state only
 * turns NaN), and rows without keys (their state untouched, bit for bit). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel_rt_impl.h"

static uint64_t rng = 0x51a77e5;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static float frand(void) { return (float)((double)(next() >> 11) / 9007199254740992.0 * 2 - 1); }

/* a bitmap of 64 keys: kind 0 empty, 1 one key, 2 full, 3..9 random of
 * density about (kind - 2) / 8 */
static uint64_t bits(int kind) {
  switch (kind) {
  case 0: return 0;
  case 1: return 1ull << (next() % 64);
  case 2: return ~0ull;
  default: {
    uint64_t w = 0;
    for (int t = 0; t < 64; t++)
      if ((int)(next() % 8) < kind - 2) w |= 1ull << t;
    return w;
  }
  }
}

static float *buf(size_t n) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  assert_non_null(p);
  for (size_t x = 0; x < n; x++) p[x] = frand();
  return p;
}

static int close_to(double want, double got, double scale) {
  if (isnan(want)) return isnan(got);
  return fabs(want - got) <= 2e-5 * (scale + fabs(want));
}

/* one case: nr rows, the rows' bitmaps of the given kind (-1: mixed),
 * state from an earlier step when warm, scores scaled by c */
static void one(int64_t D, int64_t nr, int kind, int warm, float c, int nan_row) {
  float *q = buf((size_t)nr * D), *k = buf(64 * (size_t)D), *v = buf(64 * (size_t)D);
  float *acc = buf((size_t)nr * D);
  float m[64], l[64], m0[64], l0[64];
  float *acc0 = malloc((size_t)nr * D * sizeof *acc0);
  uint64_t rows[64];
  for (int64_t r = 0; r < nr; r++) {
    rows[r] = bits(kind >= 0 ? kind : (int)(next() % 10));
    m[r] = warm ? frand() * 4 : -INFINITY;
    l[r] = warm ? 1 + frand() * frand() : 0;
    if (!warm)
      for (int64_t d = 0; d < D; d++) acc[r * D + d] = 0;
  }
  if (nan_row >= 0 && nan_row < nr) {
    q[nan_row * D + 3] = NAN;
    rows[nan_row] |= 1;
  }
  memcpy(m0, m, sizeof m);
  memcpy(l0, l, sizeof l);
  memcpy(acc0, acc, (size_t)nr * D * sizeof *acc0);
  kri_sparse_rows(q, D, k, D, v, D, D, rows, nr, acc, m, l, c);
  for (int64_t r = 0; r < nr; r++) {
    if (!rows[r]) { /* untouched */
      assert_memory_equal(&m[r], &m0[r], sizeof m[r]);
      assert_memory_equal(&l[r], &l0[r], sizeof l[r]);
      assert_memory_equal(acc + r * D, acc0 + r * D, (size_t)D * sizeof *acc);
      continue;
    }
    double t[64], mloc = -INFINITY;
    int any_nan = 0;
    for (int j = 0; j < 64; j++) {
      if (!(rows[r] >> j & 1)) continue;
      double d = 0;
      for (int64_t x = 0; x < D; x++) d += (double)q[r * D + x] * k[j * D + x];
      t[j] = d * c;
      if (isnan(t[j])) any_nan = 1;
      else if (t[j] > mloc) mloc = t[j];
    }
    double mold = m0[r], mnew = mloc > mold ? mloc : mold;
    double muse = mnew == -INFINITY ? 0 : mnew;
    double alpha = exp2(mold - muse), lsum = 0;
    double o[256];
    for (int64_t x = 0; x < D; x++) o[x] = acc0[r * D + x] * alpha;
    for (int j = 0; j < 64; j++) {
      if (!(rows[r] >> j & 1)) continue;
      double p = exp2(t[j] - muse);
      lsum += p;
      for (int64_t x = 0; x < D; x++) o[x] += p * v[j * D + x];
    }
    double lw = l0[r] * alpha + lsum;
    if (any_nan) {
      assert_true(r == nan_row);
      assert_true(isnan(l[r]));
      continue;
    }
    assert_true(close_to(mnew, m[r], 1e-3));
    assert_true(close_to(lw, l[r], lw));
    for (int64_t x = 0; x < D; x++) assert_true(close_to(o[x], acc[r * D + x], lw));
  }
  free(q), free(k), free(v), free(acc), free(acc0);
}

static void test_kinds(void **st) {
  (void)st;
  static const int64_t Ds[] = {16, 64, 128};
  for (int di = 0; di < 3; di++)
    for (int kind = -1; kind < 10; kind++)
      for (int warm = 0; warm < 2; warm++) {
        one(Ds[di], 64, kind, warm, 0.18f, -1);
        one(Ds[di], 1 + (int64_t)(next() % 64), kind, warm, 0.18f, -1);
      }
}

static void test_many_runs(void **st) { /* 64 full rows: 4096 pairs, several batches */
  (void)st;
  for (int warm = 0; warm < 2; warm++) one(64, 64, 2, warm, 0.1f, -1);
  for (int x = 0; x < 20; x++) one(64, 64, 9, (int)(x & 1), 0.1f, -1);
}

static void test_extremes(void **st) {
  (void)st;
  for (int x = 0; x < 10; x++) {
    one(64, 64, -1, x & 1, 40.0f, -1);  /* most weights underflow */
    one(64, 64, 1, x & 1, 1e-6f, -1);   /* all scores near 0 */
    one(64, 33, -1, x & 1, 0.2f, (int)(next() % 33)); /* a NaN row */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_many_runs),
      cmocka_unit_test(test_extremes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
