/* baselines.c: the benchmark's reference implementations (baselines.h).
 * Built with -O3 -ffast-math (hot loops cloned per ISA) by its own Makefile
 * rule; linked only into the spatc driver (bench), never into the library. */
#include "baselines.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int n);

#define BL_ROWS 64  /* query rows per work item (and per sgemm block) */

typedef struct job {
  const bl_problem *a;
  int64_t wl, wr;
  bl_mask_fn mask;
  void *ctx;
  int64_t n_items;        /* H * row blocks */
  int64_t next;           /* atomic work counter */
  int failed;             /* atomic */
} job;

static int64_t n_blocks(const bl_problem *a) {
  return (a->Lq + BL_ROWS - 1) / BL_ROWS;
}

static float scale_of(const bl_problem *a) {
  return a->scale != 0 ? a->scale : 1.0f / sqrtf((float)a->D);
}

/* The hot loops are cloned per ISA and picked at load time (ifunc), so the
 * baseline runs at this CPU's vector width without -march=native. */
#define BL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

BL_CLONES
static void window_item(const job *J, int64_t item, float *acc) {
  const bl_problem *a = J->a;
  int64_t h = item / n_blocks(a), r0 = item % n_blocks(a) * BL_ROWS;
  int64_t r1 = r0 + BL_ROWS < a->Lq ? r0 + BL_ROWS : a->Lq, D = a->D;
  int64_t hk = h / (a->H / a->Hkv);
  int64_t off = a->Lq <= a->Lk ? a->Lk - a->Lq : 0;
  float sc = scale_of(a);
  for (int64_t r = r0; r < r1; r++) {
    const float *q = a->q + (h * a->Lq + r) * D;
    float *o = a->o + (h * a->Lq + r) * D;
    int64_t i = r + off, j0 = i - J->wl, j1 = i + J->wr + 1;
    if (j0 < 0) j0 = 0;
    if (j1 > a->Lk) j1 = a->Lk;
    float m = -1e30f, l = 0; /* no infinities: built with -ffast-math */
    for (int64_t d = 0; d < D; d++) acc[d] = 0;
    for (int64_t j = j0; j < j1; j++) {
      const float *k = a->k + (hk * a->Lk + j) * D;
      const float *v = a->v + (hk * a->Lk + j) * D;
      float s = 0;
      for (int64_t d = 0; d < D; d++) s += q[d] * k[d];
      s *= sc;
      if (s > m) {
        float c = expf(m - s);
        l *= c;
        for (int64_t d = 0; d < D; d++) acc[d] *= c;
        m = s;
      }
      float p = expf(s - m);
      l += p;
      for (int64_t d = 0; d < D; d++) acc[d] += p * v[d];
    }
    float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t d = 0; d < D; d++) o[d] = acc[d] * inv;
  }
}

/* S = Q K^T for a block of rows, mask, softmax, O = P V. */
BL_CLONES
static void dense_item(const job *J, int64_t item, float *S, uint8_t *mrow) {
  const bl_problem *a = J->a;
  int64_t h = item / n_blocks(a), r0 = item % n_blocks(a) * BL_ROWS;
  int64_t nr = (r0 + BL_ROWS < a->Lq ? r0 + BL_ROWS : a->Lq) - r0;
  int64_t hk = h / (a->H / a->Hkv), Lk = a->Lk, D = a->D;
  const float *q = a->q + (h * a->Lq + r0) * D;
  const float *k = a->k + hk * Lk * D;
  const float *v = a->v + hk * Lk * D;
  float *o = a->o + (h * a->Lq + r0) * D;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)Lk,
              (int)D, scale_of(a), q, (int)D, k, (int)D, 0.0f, S,
              (int)Lk);
  for (int64_t t = 0; t < nr; t++) {
    float *s = S + t * Lk, m = -1e30f, l = 0;
    int64_t any = 0;
    J->mask(J->ctx, h, r0 + t, mrow);
    for (int64_t j = 0; j < Lk; j++) {
      any += mrow[j] != 0;
      m = mrow[j] && s[j] > m ? s[j] : m;
    }
    if (!any) {
      memset(s, 0, sizeof *s * (size_t)Lk);
      continue;
    }
    for (int64_t j = 0; j < Lk; j++) {
      s[j] = mrow[j] ? expf(s[j] - m) : 0.0f;
      l += s[j];
    }
    float inv = 1.0f / l;
    for (int64_t j = 0; j < Lk; j++) s[j] *= inv;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)D,
              (int)Lk, 1.0f, S, (int)Lk, v, (int)D, 0.0f, o,
              (int)D);
}

static void *worker(void *arg) {
  job *J = arg;
  const bl_problem *a = J->a;
  void *buf = J->mask ? malloc(sizeof(float) * (size_t)(BL_ROWS * a->Lk) +
                               (size_t)a->Lk + 64)
                      : malloc(sizeof(float) * (size_t)a->D);
  if (!buf) {
    __atomic_store_n(&J->failed, 1, __ATOMIC_RELAXED);
    return NULL;
  }
  for (;;) {
    int64_t item = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED);
    if (item >= J->n_items) break;
    if (J->mask)
      dense_item(J, item, buf, (uint8_t *)buf + sizeof(float) * (size_t)(BL_ROWS * a->Lk));
    else
      window_item(J, item, buf);
  }
  free(buf);
  return NULL;
}

static int run(job *J, int threads) {
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  pthread_t tid[256];
  int started = 0;
  J->n_items = J->a->H * n_blocks(J->a);
  J->next = 0;
  J->failed = 0;
  openblas_set_num_threads(1);
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, J) == 0) started++;
    else break;
  worker(J);
  for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
  return J->failed ? -1 : 0;
}

int bl_window(const bl_problem *a, int64_t wl, int64_t wr, int threads) {
  job J = {.a = a, .wl = wl, .wr = wr};
  return run(&J, threads);
}

int bl_dense(const bl_problem *a, bl_mask_fn mask, void *ctx, int threads) {
  job J = {.a = a, .mask = mask, .ctx = ctx};
  return run(&J, threads);
}
