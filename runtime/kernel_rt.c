/* kernel_rt.c: the driver loop of compiled kernels (see kernel_rt.h).
 *
 * In: a kr_kernel (generated tile and mask functions, the tile plan) and the
 * rt_args of a run.  Out: o and lse, or a status and message.  Parallel over
 * (batch, head, query tile) tasks on the kernel's thread pool; each worker
 * has its own scratch, so tasks share nothing but the read-only inputs and
 * the first-error slot.
 */
#include "kernel_rt.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "dtype.h"
#include "kernel_rt_impl.h"
#include "plan.h"
#include "threads.h"

static void *aalloc(size_t n) {
  n = (n + 63) / 64 * 64;
  return aligned_alloc(64, n ? n : 64);
}

static void fail(run *R, rt_status st, const char *fmt, const char *msg) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&R->failed, &expect, 1)) return;
  R->st = st;
  if (R->err && R->errlen) snprintf(R->err, R->errlen, fmt, msg);
}

static inline int64_t pos_of_row(const kr_kernel *K, const rt_args *a,
                                 int64_t r) {
  return r + plan_row_offset(K->plan, a->Lq, a->Lk);
}

/* The message of error code (1-based) with \1, \2 replaced by det[0],
 * det[1] (NULL: "?"). */
static void format_err(const kr_kernel *k, int32_t code, const int64_t *det,
                       char *buf, size_t n) {
  if (!buf || !n) return;
  if (code < 1 || code > k->n_errors || !k->errors[code - 1]) {
    snprintf(buf, n, "internal error: bad error code %d from the kernel", code);
    return;
  }
  size_t o = 0;
  for (const char *c = k->errors[code - 1]; *c && o + 1 < n; c++) {
    if (*c == 1 || *c == 2) {
      char v[24] = "?";
      if (det) snprintf(v, sizeof v, "%lld", (long long)det[*c - 1]);
      for (const char *x = v; *x && o + 1 < n; x++) buf[o++] = *x;
    } else {
      buf[o++] = *c;
    }
  }
  buf[o] = 0;
}

static void fail_code(run *R, int32_t code) {
  char msg[1024];
  format_err(R->k, code, NULL, msg, sizeof msg);
  fail(R, code >= 1 && code <= R->k->n_errors ? RT_ERANGE : RT_EINTERNAL, "%s",
       msg);
}

/* The contract's run-time errors, found before any tile is skipped
 * (kernel_rt.h): per head, errat at the first point gives every argument
 * error; heads whose predicates plan_where_may_fail cannot clear are
 * scanned exactly, in parallel, SCAN_ROWS rows a task; the error kept is the
 * first in (b, h, r, j) order, as the interpreter's.  Batches are scanned
 * one by one only when the pattern reads b (plan_reads_batch): otherwise
 * every batch has batch 0's errors. */
#define SCAN_ROWS 16

typedef struct scan {
  const kr_kernel *k;
  const rt_args *a;
  const int64_t *heads;      /* (b, h) pairs to scan, as b H + h */
  int64_t n_chunks;          /* tasks per head */
  _Atomic int64_t first;     /* lowest task with an error (n_tasks: none) */
  pthread_mutex_t mu;
  int64_t at;                /* the task of the error kept */
  int32_t code;
  int64_t det[2];
} scan;

static void scan_task(void *ctx, int64_t id, int worker) {
  (void)worker;
  scan *S = ctx;
  if (atomic_load_explicit(&S->first, memory_order_relaxed) < id) return;
  const rt_args *a = S->a;
  int64_t bh = S->heads[id / S->n_chunks], c = id % S->n_chunks;
  kr_env env = kr_env_at(a, bh / a->H, bh % a->H);
  int64_t r1 = (c + 1) * SCAN_ROWS < a->Lq ? (c + 1) * SCAN_ROWS : a->Lq;
  for (int64_t r = c * SCAN_ROWS; r < r1; r++)
    for (int64_t j = 0; j < a->Lk; j++) {
      int64_t det[2] = {0, 0};
      int32_t code = S->k->errat(&env, pos_of_row(S->k, a, r), j, j == 0, det);
      if (!code) continue;
      pthread_mutex_lock(&S->mu);
      if (id < S->at) {
        S->at = id, S->code = code, S->det[0] = det[0], S->det[1] = det[1];
        atomic_store(&S->first, id);
      }
      pthread_mutex_unlock(&S->mu);
      return;
    }
}

/* 0 or the code of the first error, its values in det. */
static int32_t first_error(const kr_kernel *K, const rt_args *a, th_pool *pool,
                           int64_t det[2], int *oom) {
  int64_t nb = plan_reads_batch(K->plan) ? a->B : 1;
  int64_t *heads = malloc(sizeof *heads * (size_t)(nb * a->H)), n = 0;
  if (!heads) return *oom = 1, 0;
  int32_t code = 0;
  for (int64_t bh = 0; bh < nb * a->H; bh++) {
    int64_t h = bh % a->H;
    kr_env env = kr_env_at(a, bh / a->H, h);
    code = K->errat(&env, pos_of_row(K, a, 0), 0, 1, det);  /* arguments */
    if (code) break;  /* at (b, h, 0, 0): only earlier heads can come first */
    plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs,
                   env.b, env.B, a->Hkv, a->D};
    if (plan_where_may_fail(K->plan, &pe)) heads[n++] = bh;
  }
  if (n > 0) {
    scan S = {.k = K, .a = a, .heads = heads,
              .n_chunks = (a->Lq + SCAN_ROWS - 1) / SCAN_ROWS};
    int64_t n_tasks = n * S.n_chunks;
    atomic_init(&S.first, n_tasks);
    S.at = n_tasks;
    pthread_mutex_init(&S.mu, NULL);
    th_for(pool, n_tasks, scan_task, &S);
    pthread_mutex_destroy(&S.mu);
    if (S.code) code = S.code, det[0] = S.det[0], det[1] = S.det[1];
  }
  free(heads);
  return code;
}

static void scratch_free(scratch *s, int n_topk) {
  free(s->qt); free(s->acc); free(s->m); free(s->l); free(s->st);
  free(s->qf); free(s->kf); free(s->vf);
  free(s->spans); free(s->qd); free(s->km); free(s->kg); free(s->vg);
  free(s->kn); free(s->tf); free(s->tj); free(s->sc);
  free(s->hs); free(s->hj);
  for (int64_t n = 0; n < s->rnd.n_nodes; n++) free(s->rnd.nodes[n].bits);
  free(s->rnd.nodes);
  if (s->tb)
    for (int t = 0; t < n_topk; t++) free(s->tb[t].sel), free(s->tb[t].cnt);
  free(s->tb); free(s->tk);
}

static int scratch_init(scratch *s, const kr_kernel *k) {
  size_t D = (size_t)k->D;
  memset(s, 0, sizeof *s);
  s->qt = aalloc(D * KR_BQ * sizeof(float));
  s->acc = aalloc(D * KR_BQ * sizeof(float));
  s->m = aalloc(KR_BQ * sizeof(float));
  s->l = aalloc(KR_BQ * sizeof(float));
  s->st = aalloc((size_t)KR_ST_FLOATS(k->dtype, D) * sizeof(float));
  if (k->dtype != RT_F32) {
    s->qf = aalloc(D * KR_BQ * sizeof(float));
    s->kf = aalloc(D * KR_BK * sizeof(float));
    s->vf = aalloc(D * KR_BK * sizeof(float));
    if (!s->qf || !s->kf || !s->vf) return 0;
  }
  s->span_cap = 64;
  s->spans = malloc((size_t)s->span_cap * sizeof *s->spans);
  s->qd = malloc(D * sizeof(double));
  s->kg = aalloc(D * KR_BK * sizeof(float));
  s->vg = aalloc(D * KR_BK * sizeof(float));
  s->tk = calloc((size_t)k->n_topk + 1, sizeof *s->tk);
  s->tb = calloc((size_t)k->n_topk + 1, sizeof *s->tb);
  return s->qt && s->acc && s->m && s->l && s->st && s->spans && s->qd && s->tk &&
         s->tb && s->kg && s->vg;
}

static int grow(void **p, size_t *cap, size_t need, size_t elt) {
  if (need <= *cap) return 1;
  size_t n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  void *q = realloc(*p, n * elt);
  if (!q) return 0;
  *p = q;
  *cap = n;
  return 1;
}


/* --- top-k selection -------------------------------------------------- */

/* Heap of the best candidates so far, worst at the root: worse means a
 * lower score, or an equal score and a larger key. */
static inline int worse(double s1, int64_t j1, double s2, int64_t j2) {
  if (isnan(s1) != isnan(s2)) return isnan(s1);  /* NaN ranks lowest */
  if (isnan(s1)) return j1 > j2;
  return s1 < s2 || (s1 == s2 && j1 > j2);
}

static void heap_push(double *hs, int64_t *hj, int64_t *n, int64_t cap,
                      double s, int64_t j) {
  if (*n < cap) {
    int64_t x = (*n)++;
    while (x > 0) {
      int64_t p = (x - 1) / 2;
      if (!worse(s, j, hs[p], hj[p])) break;
      hs[x] = hs[p], hj[x] = hj[p];
      x = p;
    }
    hs[x] = s, hj[x] = j;
    return;
  }
  if (!worse(hs[0], hj[0], s, j)) return;  /* not better than the worst */
  int64_t x = 0;
  for (;;) {
    int64_t c = 2 * x + 1;
    if (c >= *n) break;
    if (c + 1 < *n && worse(hs[c + 1], hj[c + 1], hs[c], hj[c])) c++;
    if (!worse(hs[c], hj[c], s, j)) break;
    hs[x] = hs[c], hj[x] = hj[c];
    x = c;
  }
  hs[x] = s, hj[x] = j;
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* Mean (or the single vector when g == 1) of rows [p0, p1) of t (elements
 * of type dt) into out. */
static void mean_rows(const void *t, int dt, int64_t sl, int64_t p0,
                      int64_t p1, int64_t D, double *out) {
  for (int64_t d = 0; d < D; d++) out[d] = 0;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t d = 0; d < D; d++) out[d] += (double)rt_load(t, p * sl + d, dt);
  if (p1 - p0 > 1)
    for (int64_t d = 0; d < D; d++) out[d] /= (double)(p1 - p0);
}

static int64_t sat_add(int64_t x, int64_t y) {
  return x > INT64_MAX - y ? INT64_MAX : x + y;
}

/* Selections of top-k node t for the rows of positions [i0, i1]. */
/* The means of every key block of granularity g (n blocks) of head (b, hk),
 * kept while consecutive tasks stay on that head. */
static const double *key_means(scratch *s, const rt_args *a, const void *kb,
                               int64_t b, int64_t hk, int64_t g, int64_t n) {
  if (s->km && s->km_b == b && s->km_h == hk && s->km_g == g && s->km_n == n)
    return s->km;
  size_t need = (size_t)n * (size_t)a->D;
  if (!grow((void **)&s->km, &s->km_cap, need + 1, sizeof(double))) return NULL;
  for (int64_t J = 0; J < n; J++) {
    int64_t k0 = J * g, k1 = sat_add(k0, g);
    if (k1 > a->Lk) k1 = a->Lk;
    mean_rows(kb, a->dtype, a->k.sl, k0, k1, a->D, s->km + J * a->D);
  }
  s->km_b = b, s->km_h = hk, s->km_g = g, s->km_n = n;
  return s->km;
}

static void topk_row_exact(run *R, scratch *s, int t, const kr_env *env,
                           const void *qb, const void *kb, const double *km,
                           int64_t I, int64_t g, int64_t cap);
static int topk_fast(run *R, scratch *s, int t, const kr_env *env,
                     const float *qb, const float *kb, int64_t I0, int64_t nI,
                     int64_t cap, int64_t b, int64_t hk);

static int topk_rows(run *R, scratch *s, int t, const kr_env *env,
                     const void *qb, const void *kb, int64_t i0,
                     int64_t i1, int64_t b, int64_t hk) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  kr_topk *tk = &s->tk[t];
  int64_t info[4];
  memset(tk, 0, sizeof *tk);
  s->tb[t].rows = 0;
  int32_t code = K->tkinfo[t](env, info);
  if (code) {
    tk->err = code;
    return 1;
  }
  int64_t kk = info[0], g = info[1], lqg = info[2], lkg = info[3];
  (void)lqg;
  int64_t I0 = i0 / g, I1 = i1 / g, nI = I1 - I0 + 1;
  int64_t cap = kk < lkg ? kk : lkg;
  if (cap < 0) cap = 0;
  tk_buf *tb = &s->tb[t];
  if (!grow((void **)&tb->sel, &tb->sel_cap, (size_t)(nI * cap + 1),
            sizeof(int64_t)) ||
      !grow((void **)&tb->cnt, &tb->cnt_cap, (size_t)nI, sizeof(int64_t)))
    return 0;
  if ((size_t)cap + 1 > s->heap_cap) {
    size_t n = (size_t)cap + 1;
    double *hs = realloc(s->hs, n * sizeof *hs);
    if (!hs) return 0;
    s->hs = hs;
    int64_t *hj = realloc(s->hj, n * sizeof *hj);
    if (!hj) return 0;
    s->hj = hj;
    s->heap_cap = n;
  }
  tk->sel = tb->sel;
  tk->cnt = tb->cnt;
  tb->rows = nI;
  tk->ibase = I0;
  tk->k = cap;
  s->tk_lqg = lqg, s->tk_lkg = lkg;
  const double *km = g > 1 ? key_means(s, a, kb, b, hk, g, lkg) : NULL;
  if (g > 1 && !km) return 0;
  /* the fast path scores float32 q and k; 16-bit dtypes go exact */
  if (g == 1 && a->dtype == RT_F32 &&
      topk_fast(R, s, t, env, qb, kb, I0, nI, cap, b, hk))
    return 1;
  for (int64_t I = I0; I <= I1; I++)
    topk_row_exact(R, s, t, env, qb, kb, km, I, g, cap);
  return 1;
}

/* The selection of row (block) I of top-k node t in double, as the
 * interpreter makes it: every candidate of P scored, the best cap kept. */
static void topk_row_exact(run *R, scratch *s, int t, const kr_env *env,
                           const void *qb, const void *kb, const double *km,
                           int64_t I, int64_t g, int64_t cap) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  kr_topk *tk = &s->tk[t];
  int64_t D = a->D, off = plan_row_offset(K->plan, a->Lq, a->Lk), ksl = a->k.sl;
  int64_t I0 = tk->ibase, lqg = s->tk_lqg, lkg = s->tk_lkg;
  {
    /* mean query of the existing positions of block I */
    int64_t p0 = I * g, p1 = sat_add(p0, g);
    if (p0 < off) p0 = off;
    if (p1 > off + a->Lq) p1 = off + a->Lq;
    mean_rows(qb, a->dtype, a->q.sl, p0 - off, p1 - off, D, s->qd);
    int64_t n = 0;
    int32_t ecode = 0;
    for (int64_t J0 = 0; J0 < lkg && !ecode; J0 += KR_BK) {
      int64_t nc = lkg - J0 < KR_BK ? lkg - J0 : KR_BK;
      uint64_t cand = 0;
      ecode = K->mask[t + 1](env, I, J0, nc, lqg, lkg, &cand);
      if (ecode) break;
      if (cap == 0) continue;
      int64_t js[KR_BK], nj = 0;
      for (; cand; cand &= cand - 1) js[nj++] = J0 + __builtin_ctzll(cand);
      /* four dot products at a time: independent chains, each summed in
       * the interpreter's order */
      for (int64_t x = 0; x < nj; x += 4) {
        int64_t m = nj - x < 4 ? nj - x : 4;
        const float *kr[4];
        const void *kr16[4];
        const double *kj[4];
        double sc[4] = {0, 0, 0, 0};
        for (int64_t y = 0; y < 4; y++) {
          int64_t J = js[x + (y < m ? y : 0)];
          kr[y] = (const float *)kb + J * ksl;
          kr16[y] = (const uint16_t *)kb + J * ksl;
          kj[y] = km ? km + J * D : NULL;
        }
        if (g == 1 && a->dtype != RT_F32) {
          for (int64_t d = 0; d < D; d++) {
            double qv = s->qd[d];
            for (int y = 0; y < 4; y++)
              sc[y] += qv * (double)rt_load(kr16[y], d, a->dtype);
          }
          for (int64_t y = 0; y < 4; y++) sc[y] *= R->scale;
        } else if (g == 1) {
          for (int64_t d = 0; d < D; d++) {
            double qv = s->qd[d];
            sc[0] += qv * (double)kr[0][d];
            sc[1] += qv * (double)kr[1][d];
            sc[2] += qv * (double)kr[2][d];
            sc[3] += qv * (double)kr[3][d];
          }
          for (int64_t y = 0; y < 4; y++) sc[y] *= R->scale;
        } else {
          for (int64_t d = 0; d < D; d++) {
            double qv = s->qd[d];
            sc[0] += qv * kj[0][d];
            sc[1] += qv * kj[1][d];
            sc[2] += qv * kj[2][d];
            sc[3] += qv * kj[3][d];
          }
        }
        for (int64_t y = 0; y < m; y++)
          heap_push(s->hs, s->hj, &n, cap, sc[y], js[x + y]);
      }
    }
    int64_t *row = tk->sel + (I - I0) * cap;
    if (ecode) {
      tk->cnt[I - I0] = -(int64_t)ecode;
      return;
    }
    memcpy(row, s->hj, (size_t)n * sizeof(int64_t));
    qsort(row, (size_t)n, sizeof(int64_t), cmp_i64);
    tk->cnt[I - I0] = n;
  }
}

/* --- random key sets ---------------------------------------------------- */

static const uint64_t rnd_none[2] = {0, 0};

/* kr_random_fn: the words of node's key set for row i holding key j0. */
static const uint64_t *random_row(const kr_env *e, int64_t node, int64_t i,
                                  int64_t r, int64_t seed, int64_t lk,
                                  int64_t j0) {
  rnd_cache *c = e->random_cache;
  if (node < 0 || lk < 1 || j0 < 0 || j0 >= lk || r < 0) return rnd_none;
  if (node >= c->n_nodes) {
    rnd_node *nn = realloc(c->nodes, (size_t)(node + 1) * sizeof *nn);
    if (!nn) return c->oom = 1, rnd_none;
    memset(nn + c->n_nodes, 0, (size_t)(node + 1 - c->n_nodes) * sizeof *nn);
    c->nodes = nn;
    c->n_nodes = node + 1;
  }
  rnd_node *n = &c->nodes[node];
  int64_t words = lk / 64 + 2;
  if (words > n->words) {
    free(n->bits);
    n->bits = malloc((size_t)words * KR_BQ * sizeof *n->bits);
    n->words = n->bits ? words : 0;
    memset(n->tag, 0, sizeof n->tag);
    if (!n->bits) return c->oom = 1, rnd_none;
  }
  int64_t slot = i & (KR_BQ - 1);
  rnd_tag *t = &n->tag[slot];
  uint64_t *row = n->bits + slot * n->words;
  if (!t->valid || t->h != e->h || t->i != i || t->r != r || t->seed != seed ||
      t->lk != lk) {
    memset(row, 0, (size_t)words * sizeof *row);
    for (int64_t x = 0, hit = 0; x < r && hit < lk; x++) {
      uint64_t j = ar_hash((uint64_t)seed, (uint64_t)e->h, (uint64_t)i,
                           (uint64_t)x) % (uint64_t)lk;
      uint64_t bit = 1ull << (j & 63);
      hit += !(row[j >> 6] & bit);
      row[j >> 6] |= bit;
    }
    *t = (rnd_tag){e->h, i, r, seed, lk, 1};
  }
  return row + (j0 >> 6);
}

/* In place: bit r of a[c] becomes bit c of a[r] (64 x 64 bits). */
static void transpose64(uint64_t a[64]) {
  static const uint64_t m[6] = {0x00000000FFFFFFFFull, 0x0000FFFF0000FFFFull,
                                0x00FF00FF00FF00FFull, 0x0F0F0F0F0F0F0F0Full,
                                0x3333333333333333ull, 0x5555555555555555ull};
  for (int lv = 0, j = 32; j; lv++, j >>= 1)
    for (int k = 0; k < 64; k++) {
      if (k & j) continue;
      uint64_t t = ((a[k] >> j) ^ a[k | j]) & m[lv];
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
}

/* --- sparse partial tiles ---------------------------------------------- */

/* A partial tile allowing at most this many of its KR_BQ x KR_BK pairs (1/8)
 * runs per row over the allowed keys only.  Measured at D = 64, 1 thread:
 * per row costs about 12 ns a pair, a dense masked tile about 9 us (~750
 * pairs), but 768 made dilated_heads slower than 512 did. */
#define KR_SPARSE_MAX 512

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

/* at[0, 16) = 2^at[t] for values <= 0 (or NaN), relative error about 2e-7: x = n + f
 * with n an integer and |f| <= 1/2, 2^f by its Taylor polynomial of degree
 * 6, 2^n from the exponent bits; 0 below -126, NaN stays NaN. */
static inline __attribute__((always_inline)) void exp2_v16(float *at) {
  v16 x = *(v16 *)at;
  v16i keep = (v16i)(x >= -126.0f), nan = (v16i)(x != x);
  v16 xc = x;
  xc = (v16)(((v16i)xc & keep) | ((v16i)((v16){0} - 126.0f) & ~keep));
  v16i n = __builtin_convertvector(xc - 0.5f, v16i); /* ties toward 0 */
  v16 f = xc - __builtin_convertvector(n, v16);
  v16 p = 1.5403530393381606e-4f + f * 1.5252733804059840e-5f;
  p = 1.3333558146428443e-3f + f * p;
  p = 9.6181291076284772e-3f + f * p;
  p = 5.5504108664821580e-2f + f * p;
  p = 2.4022650695910071e-1f + f * p;
  p = 6.9314718055994531e-1f + f * p;
  p = 1.0f + f * p;
  v16 two_n = (v16)((n + 127) << 23);
  v16 r = p * two_n;
  r = (v16)((v16i)r & keep);
  *(v16 *)at = (v16)(((v16i)r & ~nan) | ((v16i)x & nan));
}

/* One clone per vector width, chosen by an ifunc resolver at load time.
 * ThreadSanitizer instruments resolvers, which run before its run time is
 * up and crash the program: its builds (make tsan) take the default only. */
#if defined(__SANITIZE_THREAD__)
#define KR_CLONES
#else
#define KR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* Rows r < nr of the tile with bit t of rows[r] = key j0 + t allowed: the
 * same online-softmax step as the dense tile (scores c q.k in the log2
 * domain, m the running max, alpha = 2^(m_old - m_new)), one row at a
 * time.  q: the tile's first query row (row stride sq). */
KR_CLONES
static void sparse_rows(const float *q, int64_t sq, const float *kt,
                        int64_t sk, const float *vt, int64_t sv, int64_t D,
                        const uint64_t *rows, int64_t nr, float *accb,
                        float *mb, float *lb, float c) {
  int64_t nd = D / 16;
  float s[KR_BK + 16];
  int js[KR_BK];
  for (int64_t r = 0; r < nr; r++) {
    uint64_t w = rows[r];
    if (!w) continue;
    const float *qr = q + r * sq;
    int n = 0;
    float mloc = -INFINITY;
    for (; w; w &= w - 1) {
      int j = __builtin_ctzll(w);
      const float *kr = kt + j * sk;
      v16 a = *(const v16 *)qr * *(const v16 *)kr;
      for (int64_t d = 1; d < nd; d++)
        a += *(const v16 *)(qr + 16 * d) * *(const v16 *)(kr + 16 * d);
      float h8[8], h4[4];
      for (int x = 0; x < 8; x++) h8[x] = a[x] + a[x + 8];
      for (int x = 0; x < 4; x++) h4[x] = h8[x] + h8[x + 4];
      float t = ((h4[0] + h4[2]) + (h4[1] + h4[3])) * c;
      js[n] = j;
      s[n++] = t;
      if (t > mloc) mloc = t;
    }
    float mold = mb[r], mnew = mloc > mold ? mloc : mold;
    float muse = mnew == -INFINITY ? 0 : mnew;
    float lsum = 0;
    float *acc = accb + r * D;
    mb[r] = mnew;
    /* the scores and, in lane n, the rescaling of the old sums */
    for (int x = 0; x < n; x++) s[x] -= muse;
    s[n] = mold - muse;
    for (int x = n + 1; x < (n + 16) / 16 * 16; x++) s[x] = -INFINITY;
    for (int x = 0; x <= n; x += 16) exp2_v16(s + x);
    float alpha = s[n];
    for (int x = 0; x < n; x++) lsum += s[x];
    for (int64_t d = 0; d < nd; d++) {
      v16 o = *(v16 *)(acc + 16 * d) * alpha;
      for (int x = 0; x < n; x++)
        o += s[x] * *(const v16 *)(vt + js[x] * sv + 16 * d);
      *(v16 *)(acc + 16 * d) = o;
    }
    lb[r] = lb[r] * alpha + lsum;
  }
}

/* A row of o (element offset o0) = src * inv rounded to dt (D a multiple
 * of 16; bf16 16 lanes at a time, as rt_f32_to_bf16). */
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32), aligned(2), may_alias));
KR_CLONES
static void store_row(void *o, int64_t o0, int dt, const float *src,
                      float inv, int64_t D) {
  if (dt == RT_F32) {
    float *of = (float *)o + o0;
    for (int64_t d = 0; d < D; d++) of[d] = src[d] * inv;
  } else if (dt == RT_BF16) {
    uint16_t *oh = (uint16_t *)o + o0;
    for (int64_t d = 0; d + 16 <= D; d += 16) {
      v16 x = *(const v16 *)(src + d) * inv;
      u32x16 u = (u32x16)x;
      u32x16 r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
      u32x16 nan = (u & 0x7fffffffu) > 0x7f800000u; /* all ones: NaN */
      r = (r & ~nan) | (((u >> 16) | 0x40u) & nan);
      *(u16x16 *)(oh + d) = __builtin_convertvector(r, u16x16);
    }
  } else {
    uint16_t *oh = (uint16_t *)o + o0;
    for (int64_t d = 0; d < D; d++) oh[d] = rt_f32_to_f16(src[d] * inv);
  }
}
/* --- fast exact token top-k -------------------------------------------- */

/* Token top-k (granularity 1) scores every candidate in float32 with vector
 * code, keeps per row the candidates that may still be among the k best by
 * an error bound, and scores in double (as the interpreter does) only the
 * few that the bound cannot separate; the selection is the interpreter's.
 *
 * Bound: the float dot product f_j of q and k_j, in any order, is within
 * gamma_D sum |q_d k_d| <= (D u)(1.0001) |q| |k_j| (u = 2^-24) of the exact
 * one, and so is the interpreter's double product (far closer); with
 * e_j = (D + 4) u 1.01 |q| |k_j| (norms clamped above 1e-12, covering
 * underflow), the rounding of f +- e in float and a relative 2^-51 margin
 * (so that scaling in double cannot tie two separated scores) are covered:
 * lo_j = f_j - e_j < s_j / scale < hi_j = f_j + e_j.  A key j with hi_j
 * below the k-th largest lo of the row is out: k keys score strictly
 * higher.  The keys left (the k-th largest lo, then every key with hi at
 * least it) are the k selected when they are k, else they are ranked in
 * double.  A row with a non-finite score, or more keys left than the list
 * holds (ties within the bound), is selected in double from scratch. */
#define TKF_MAX_K 1024

/* The |k_j| of head (b, hk), rounded up, kept while tasks stay on it. */
static const float *key_norms(scratch *s, const rt_args *a, const float *kb,
                              int64_t b, int64_t hk) {
  if (s->kn && s->kn_b == b && s->kn_h == hk && s->kn_n == a->Lk) return s->kn;
  if (!grow((void **)&s->kn, &s->kn_cap, (size_t)a->Lk + 1, sizeof(float)))
    return NULL;
  for (int64_t j = 0; j < a->Lk; j++) {
    double n = 0;
    const float *kr = kb + j * a->k.sl;
    for (int64_t d = 0; d < a->D; d++) n += (double)kr[d] * (double)kr[d];
    n = sqrt(n) * (1 + 0x1p-20);
    s->kn[j] = n < 1e-12 ? 1e-12f : n > 3e38 ? INFINITY : (float)n;
  }
  s->kn_b = b, s->kn_h = hk, s->kn_n = a->Lk;
  return s->kn;
}

/* sc[c * KR_BQ + r] = dot(row r of qt [D][KR_BQ], key c), c < nc. */
KR_CLONES
static void score_tile(const float *qt, const float *kt, int64_t sk,
                       int64_t nc, int64_t D, float *sc) {
  for (int64_t c = 0; c < nc; c++) {
    const float *kr = kt + c * sk;
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t d = 0; d < D; d++) {
      float x = kr[d];
      const float *q = qt + d * KR_BQ;
      a0 += *(const v16 *)q * x;
      a1 += *(const v16 *)(q + 16) * x;
      a2 += *(const v16 *)(q + 32) * x;
      a3 += *(const v16 *)(q + 48) * x;
    }
    float *o = sc + c * KR_BQ;
    *(v16 *)o = a0, *(v16 *)(o + 16) = a1, *(v16 *)(o + 32) = a2;
    *(v16 *)(o + 48) = a3;
  }
}

/* Per key c < nc: hits[c] = the rows r of cols[c] with fl(sc + cq e) >=
 * thr[r] (e = kn[c]); *bad gets the rows with a non-finite score. */
static void tkf_filter(const float *sc, int64_t nc, const float *cq,
                       const float *kn, const float *thr, const uint64_t *cols,
                       uint64_t *hits, uint64_t *bad) {
  for (int64_t c = 0; c < nc; c++) {
    uint64_t h = 0, w = cols[c];
    for (; w; w &= w - 1) {
      int r = __builtin_ctzll(w);
      float f = sc[c * KR_BQ + r];
      if (!isfinite(f)) *bad |= 1ull << r;
      else if (f + cq[r] * kn[c] >= thr[r]) h |= 1ull << r;
    }
    hits[c] = h;
  }
}

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#include <immintrin.h>
__attribute__((target("avx512f")))
static void tkf_filter512(const float *sc, int64_t nc, const float *cq,
                          const float *kn, const float *thr,
                          const uint64_t *cols, uint64_t *hits, uint64_t *bad) {
  __m512 q[4], t[4];
  for (int x = 0; x < 4; x++)
    q[x] = _mm512_loadu_ps(cq + 16 * x), t[x] = _mm512_loadu_ps(thr + 16 * x);
  uint64_t nf = 0;
  for (int64_t c = 0; c < nc; c++) {
    __m512 e = _mm512_set1_ps(kn[c]);
    uint64_t h = 0, fin = 0;
    for (int x = 0; x < 4; x++) {
      __m512 f = _mm512_loadu_ps(sc + c * KR_BQ + 16 * x);
      __m512 hi = _mm512_fmadd_ps(q[x], e, f);
      h |= (uint64_t)_mm512_cmp_ps_mask(hi, t[x], _CMP_GE_OQ) << (16 * x);
      fin |= (uint64_t)_mm512_cmp_ps_mask(_mm512_sub_ps(f, f), _mm512_setzero_ps(),
                                          _CMP_EQ_OQ) << (16 * x);
    }
    nf |= ~fin & cols[c];
    hits[c] = h & fin & cols[c];
  }
  *bad |= nf;
}
#endif

/* The k-th largest (k >= 1) of x[0, n), n >= k; x is reordered. */
static float kth_largest(float *x, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1, want = k - 1;
  while (lo < hi) {
    float p = x[lo + (hi - lo) / 2];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (x[i] > p) i++;
      while (x[j] < p) j--;
      if (i <= j) {
        float tmp = x[i];
        x[i] = x[j], x[j] = tmp;
        i++, j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return x[want];
  }
  return x[want];
}

typedef struct tkf_row {
  float *f;        /* scores of the keys kept */
  int64_t *j;      /* and the keys, ascending */
  int64_t n, cap;
  float cq, thr;   /* e_j = cq |k_j|; the k-th largest lo seen (or -inf) */
} tkf_row;

/* The k-th largest lo of the row's keys, into tmp's scratch. */
static float row_kth_lo(const tkf_row *w, const float *kn, int64_t k, float *tmp) {
  for (int64_t x = 0; x < w->n; x++) tmp[x] = w->f[x] - w->cq * kn[w->j[x]];
  return kth_largest(tmp, w->n, k);
}

/* Drops the keys with hi below the row's k-th largest lo. */
static void row_compact(tkf_row *w, const float *kn, int64_t k, float *tmp) {
  float t = row_kth_lo(w, kn, k, tmp);
  if (t > w->thr) w->thr = t;
  int64_t m = 0;
  for (int64_t x = 0; x < w->n; x++)
    if (w->f[x] + w->cq * kn[w->j[x]] >= w->thr)
      w->f[m] = w->f[x], w->j[m++] = w->j[x];
  w->n = m;
}

/* Selection of row I from its kept keys: 1 done, 0 the row needs the
 * exact path. */
static int row_select(run *R, scratch *s, kr_topk *tk, tkf_row *w,
                      const float *qr, const float *kb, const float *kn,
                      int64_t I, int64_t cap, int64_t ncand, float *tmp) {
  int64_t *row = tk->sel + (I - tk->ibase) * cap;
  if (ncand > cap) {
    row_compact(w, kn, cap, tmp);
    if (w->n < cap) return 0;
  }
  if (w->n == cap || ncand <= cap) {
    memcpy(row, w->j, sizeof *row * (size_t)w->n);
    tk->cnt[I - tk->ibase] = w->n;
    return 1;
  }
  /* rank the keys left in double, as the interpreter scores them */
  const rt_args *a = R->a;
  int64_t n = 0, D = a->D;
  for (int64_t x = 0; x < w->n; x++) {
    const float *kr = kb + w->j[x] * a->k.sl;
    double sc = 0;
    for (int64_t d = 0; d < D; d++) sc += (double)qr[d] * (double)kr[d];
    heap_push(s->hs, s->hj, &n, cap, sc * R->scale, w->j[x]);
  }
  memcpy(row, s->hj, (size_t)n * sizeof(int64_t));
  qsort(row, (size_t)n, sizeof(int64_t), cmp_i64);
  tk->cnt[I - tk->ibase] = n;
  return 1;
}

static int topk_fast(run *R, scratch *s, int t, const kr_env *env,
                     const float *qb, const float *kb, int64_t I0, int64_t nI,
                     int64_t cap, int64_t b, int64_t hk) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  kr_topk *tk = &s->tk[t];
  int64_t D = a->D, lkg = s->tk_lkg, lqg = s->tk_lqg, ksl = a->k.sl;
  int64_t off = plan_row_offset(K->plan, a->Lq, a->Lk);
  if (cap < 1 || cap > TKF_MAX_K || nI > KR_BQ || lkg != a->Lk ||
      !(R->scale > 0) || !isfinite(R->scale))
    return 0;
  int64_t lcap = 4 * cap + 64;
  size_t need = (size_t)(KR_BQ + 1) * (size_t)lcap;
  if (!grow((void **)&s->tf, &s->tf_cap, need, sizeof(float)) ||
      !grow((void **)&s->tj, &s->tj_cap, need, sizeof(int64_t)))
    return 0;
  if (!s->sc && !(s->sc = aalloc(sizeof(float) * KR_BK * KR_BQ))) return 0;
  const float *kn = key_norms(s, a, kb, b, hk);
  if (!kn) return 0;
  float *tmp = s->tf + KR_BQ * lcap;
  /* Q^T of the rows (the task packs the same, other callers do not) */
  for (int64_t r = 0; r < KR_BQ; r++) {
    const float *qr = qb + (I0 + (r < nI ? r : 0) - off) * a->q.sl;
    for (int64_t d = 0; d < D; d++) s->qt[d * KR_BQ + r] = r < nI ? qr[d] : 0;
  }
  tkf_row w[KR_BQ];
  float cq[KR_BQ], thr[KR_BQ];
  int64_t ncand[KR_BQ];
  uint64_t live = nI >= 64 ? ~0ull : (1ull << nI) - 1, slow = 0;
  double c = (double)(D + 4) * 0x1p-24 * 1.01;
  for (int64_t r = 0; r < KR_BQ; r++) {
    double qn = 0;
    if (r < nI) {
      const float *qr = qb + (I0 + r - off) * a->q.sl;
      for (int64_t d = 0; d < D; d++) qn += (double)qr[d] * (double)qr[d];
    }
    qn = sqrt(qn) * (1 + 0x1p-20);
    if (qn < 1e-12) qn = 1e-12;
    double e = c * qn * (1 + 0x1p-20);
    w[r] = (tkf_row){s->tf + r * lcap, s->tj + r * lcap, 0, lcap,
                     e > 3e38 ? INFINITY : (float)e, -INFINITY};
    cq[r] = w[r].cq, thr[r] = -INFINITY, ncand[r] = 0;
  }
  for (int64_t J0 = 0; J0 < lkg && (live & ~slow); J0 += KR_BK) {
    int64_t nc = lkg - J0 < KR_BK ? lkg - J0 : KR_BK;
    uint64_t cols[KR_BK], hits[KR_BK], any = 0;
    for (int64_t r = 0; r < KR_BQ; r++) {
      s->rows[r] = 0;
      if (!((live & ~slow) >> r & 1)) continue;
      int32_t ecode = K->mask[t + 1](env, I0 + r, J0, nc, lqg, lkg, &s->rows[r]);
      if (ecode) {
        tk->cnt[r] = -(int64_t)ecode;
        live &= ~(1ull << r);
        s->rows[r] = 0;
      }
      ncand[r] += __builtin_popcountll(s->rows[r]);
      any |= s->rows[r];
    }
    if (!any) continue;
    memcpy(cols, s->rows, sizeof cols);
    transpose64(cols);
    score_tile(s->qt, kb + J0 * ksl, ksl, nc, D, s->sc);
    uint64_t bad = 0;
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    if (__builtin_cpu_supports("avx512f"))
      tkf_filter512(s->sc, nc, cq, kn + J0, thr, cols, hits, &bad);
    else
#endif
      tkf_filter(s->sc, nc, cq, kn + J0, thr, cols, hits, &bad);
    slow |= bad;
    for (int64_t cc = 0; cc < nc; cc++)
      for (uint64_t h = hits[cc] & ~slow; h; h &= h - 1) {
        int r = __builtin_ctzll(h);
        tkf_row *x = &w[r];
        x->f[x->n] = s->sc[cc * KR_BQ + r], x->j[x->n++] = J0 + cc;
        if (x->n == x->cap) {
          row_compact(x, kn, cap, tmp);
          thr[r] = x->thr;
          if (x->n > x->cap - x->cap / 4) slow |= 1ull << r;
        }
      }
  }
  for (int64_t r = 0; r < nI; r++) {
    if (!(live >> r & 1)) continue;
    const float *qr = qb + (I0 + r - off) * a->q.sl;
    if ((slow >> r & 1) ||
        !row_select(R, s, tk, &w[r], qr, kb, kn, I0 + r, cap, ncand[r], tmp))
      topk_row_exact(R, s, t, env, qb, kb, NULL, I0 + r, 1, cap);
  }
  return 1;
}


static void write_rows(run *R, const scratch *s, int64_t b, int64_t h,
                       const int64_t *rows, int64_t r0, int64_t nr);

/* --- element types ------------------------------------------------------ */

/* Q^T of rows [0, nr) of q (row stride sq, elements of type dt) into s->qt
 * as the tile of dt reads it (kr_tile_fn), rows past nr zero. */
static void pack_qt(scratch *s, int dt, const void *q, int64_t sq, int64_t nr,
                    int64_t D) {
  if (dt == RT_BF16) {
    /* pairs of dimensions [D / 2][KR_BQ][2]: a pair is the 32-bit word of
     * elements 2 d2, 2 d2 + 1 (little-endian: the low half first), so this
     * is the float transpose on words */
    uint32_t *qt = (uint32_t *)(void *)s->qt;
    for (int64_t r = 0; r < KR_BQ; r++) {
      const uint16_t *qr = (const uint16_t *)q + r * sq;
      for (int64_t d2 = 0; d2 < D / 2; d2++) {
        uint32_t w = 0;
        if (r < nr) memcpy(&w, qr + 2 * d2, 4);
        qt[d2 * KR_BQ + r] = w;
      }
    }
    return;
  }
  for (int64_t r = 0; r < KR_BQ; r++) {  /* rows read in order */
    if (r >= nr) {
      for (int64_t d = 0; d < D; d++) s->qt[d * KR_BQ + r] = 0;
    } else if (dt == RT_F32) {
      const float *qr = (const float *)q + r * sq;
      for (int64_t d = 0; d < D; d++) s->qt[d * KR_BQ + r] = qr[d];
    } else {
      const void *qr = (const uint16_t *)q + r * sq;
      for (int64_t d = 0; d < D; d++) s->qt[d * KR_BQ + r] = rt_load(qr, d, dt);
    }
  }
}

/* sparse_rows on the tile's rows (q: its first row) against the key tile at
 * kt, vt (nc keys); 16-bit dtypes go through float copies of the rows
 * used (s->qf once per query tile, *qf_ready then set). */
static void sparse_tile(scratch *s, const rt_args *a, const void *q,
                        const void *kt, const void *vt, int64_t nc, int64_t nr,
                        float c, int *qf_ready) {
  int64_t D = a->D;
  if (a->dtype == RT_F32) {
    sparse_rows(q, a->q.sl, kt, a->k.sl, vt, a->v.sl, D, s->rows, nr, s->acc,
                s->m, s->l, c);
    return;
  }
  if (!*qf_ready) {
    for (int64_t r = 0; r < nr; r++)
      for (int64_t d = 0; d < D; d++)
        s->qf[r * D + d] = rt_load(q, r * a->q.sl + d, a->dtype);
    *qf_ready = 1;
  }
  uint64_t any = 0;
  for (int64_t r = 0; r < nr; r++) any |= s->rows[r];
  any &= nc >= 64 ? ~0ull : (1ull << nc) - 1;
  for (; any; any &= any - 1) {
    int64_t j = __builtin_ctzll(any);
    for (int64_t d = 0; d < D; d++) {
      s->kf[j * D + d] = rt_load(kt, j * a->k.sl + d, a->dtype);
      s->vf[j * D + d] = rt_load(vt, j * a->v.sl + d, a->dtype);
    }
  }
  sparse_rows(s->qf, D, s->kf, D, s->vf, D, D, s->rows, nr, s->acc, s->m,
              s->l, c);
}

/* --- one task: a query tile of one head -------------------------------- */

static void task(void *ctx, int64_t id, int worker) {
  run *R = ctx;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed)) return;
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  scratch *s = &R->ws[worker];
  int64_t D = K->D;
  /* tasks in (b, kv head, query tile, head of the group) order: the query
   * heads sharing a kv head take the same query tile one after another, so
   * its key/value tiles come from cache for all but the first (GQA) */
  int64_t G = a->H / a->Hkv, g = id % G, rest = id / G;
  int64_t qtile = rest % R->n_qt, bhk = rest / R->n_qt;
  int64_t hk = bhk % a->Hkv, b = bhk / a->Hkv;
  int64_t h = hk * G + g;
  int64_t r0 = qtile * KR_BQ, r1 = r0 + KR_BQ < a->Lq ? r0 + KR_BQ : a->Lq;
  int64_t nr = r1 - r0;
  size_t esz = rt_dtype_size(a->dtype);
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  const char *vb = (const char *)a->v.data + (b * a->v.sb + hk * a->v.sh) * esz;

  pack_qt(s, a->dtype, qb + r0 * a->q.sl * esz, a->q.sl, nr, D);
  for (int64_t x = 0; x < (int64_t)D * KR_BQ; x++) s->acc[x] = 0;
  for (int r = 0; r < KR_BQ; r++) s->m[r] = -INFINITY, s->l[r] = 0;

  kr_env env = kr_env_at(a, b, h);
  env.topk = s->tk, env.random_row = random_row, env.random_cache = &s->rnd;
  for (int t = 0; t < K->n_topk; t++)
    if (!topk_rows(R, s, t, &env, qb, kb, pos_of_row(K, a, r0),
                   pos_of_row(K, a, r1 - 1), b, hk)) {
      fail(R, RT_ENOMEM, "%s", "out of memory (top-k selection)");
      return;
    }

  plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs,
                 env.b, env.B, a->Hkv, a->D};
  char perr[256] = "";
  int64_t ns;
  for (;;) {
    ns = plan_tiles(K->plan, &pe, r0, r1, s->spans, s->span_cap, perr,
                    sizeof perr);
    if (ns < 0) {
      fail(R, RT_ERANGE, "%s", perr[0] ? perr : "run-time error in the plan");
      return;
    }
    if (ns <= s->span_cap) break;
    plan_span *sp = realloc(s->spans, (size_t)ns * sizeof *sp);
    if (!sp) {
      fail(R, RT_ENOMEM, "%s", "out of memory (plan spans)");
      return;
    }
    s->spans = sp;
    s->span_cap = ns;
  }
  for (int64_t r = nr; r < KR_BQ; r++) s->rows[r] = 0;
  int qf_ready = 0; /* s->qf holds the tile's q rows */

  /* Touching spans form one run cut into key tiles from its start, so a
   * FULL span next to PARTIAL ones leaves no short tile behind; a tile is
   * unmasked when it lies inside one FULL span. */
  for (int64_t x = 0, y; x < ns; x = y + 1) {
    const plan_span *sp = s->spans;
    for (y = x; y + 1 < ns && sp[y + 1].k0 == sp[y].k1;) y++;
    for (int64_t j0 = sp[x].k0, cur = x; j0 < sp[y].k1; j0 += KR_BK) {
      int64_t nc = sp[y].k1 - j0 < KR_BK ? sp[y].k1 - j0 : KR_BK;
      const void *kt = kb + j0 * a->k.sl * esz, *vt = vb + j0 * a->v.sl * esz;
      while (sp[cur].k1 <= j0) cur++;
#define TILE(maskt)                                                          \
  (K->stile ? K->stile(&env, pos_of_row(K, a, r0), j0, s->qt, kt, a->k.sl, vt,   \
                       a->v.sl, nc, maskt, s->acc, s->m, s->l, R->c, s->st)  \
            : K->tile(s->qt, kt, a->k.sl, vt, a->v.sl, nc, maskt, s->acc,    \
                      s->m, s->l, R->c, s->st))
      if (sp[cur].kind == PLAN_FULL && sp[cur].k1 >= j0 + nc) {
        TILE(NULL);
        continue;
      }
      uint64_t any = 0, all = ~0ull;
      uint64_t valid = nc >= 64 ? ~0ull : (1ull << nc) - 1;
      for (int64_t r = 0; r < nr; r++) {
        int32_t code = K->mask[0](&env, pos_of_row(K, a, r0 + r), j0, nc, a->Lq,
                                  a->Lk, &s->rows[r]);
        if (code) {
          fail_code(R, code);
          return;
        }
        any |= s->rows[r];
        all &= s->rows[r];
      }
      if (!any) continue;
      if (all != valid && !K->stile) {
        int64_t pairs = 0;
        for (int64_t r = 0; r < nr && pairs <= KR_SPARSE_MAX; r++)
          pairs += __builtin_popcountll(s->rows[r]);
        /* a masked key weighs 0, but 0 * NaN is NaN: with a non-finite v
         * a masked tile runs per row over its allowed keys only */
        if (pairs <= KR_SPARSE_MAX ||
            kri_tile_v_nonfinite(vt, a->dtype, a->v.sl, nc, D)) {
          sparse_tile(s, a, qb + r0 * a->q.sl * esz, kt, vt, nc, nr, R->c,
                      &qf_ready);
          continue;
        }
      }
      if (all == valid) {  /* every row allows every key: no mask */
        TILE(NULL);
        continue;
      }
      memcpy(s->cols, s->rows, sizeof s->cols);
      transpose64(s->cols);
      TILE(s->cols);
#undef TILE
    }
  }

  if (s->rnd.oom) {
    fail(R, RT_ENOMEM, "%s", "out of memory (random key sets)");
    return;
  }
  write_rows(R, s, b, h, NULL, r0, nr);
}

/* o = acc / l and lse of the tile's rows: row r is query row rows[r], or
 * r0 + r when rows is NULL. */
static void write_rows(run *R, const scratch *s, int64_t b, int64_t h,
                       const int64_t *rows, int64_t r0, int64_t nr) {
  const rt_args *a = R->a;
  int64_t D = R->k->D;
  for (int64_t x = 0; x < nr; x++) {
    int64_t r = x, row = rows ? rows[x] : r0 + x;
    int64_t o = b * a->o.sb + h * a->o.sh + row * a->o.sl;
    const float *acc = s->acc + r * D;
    float l = s->l[r], lse;
    if (l > 0 || isnan(l)) {  /* NaN: a NaN score, the row is NaN */
      store_row(a->o.data, o, a->dtype, acc, 1.0f / l, D);
      lse = (float)((double)s->m[r] * 0.69314718055994530942 + log((double)l));
    } else {
      for (int64_t d = 0; d < D; d++) rt_store(a->o.data, o + d, a->dtype, 0);
      lse = -INFINITY;
    }
    if (a->lse) a->lse[b * a->lse_sb + h * a->lse_sh + row] = lse;
  }
}

/* --- joins: one query tile of a group (plan_groups) --------------------- */

/* Task id: (b, h, tile) with R->join_tiles tiles per head: the tile's
 * rows are grouped rows [x0, x0 + 64) of one group (all its keys allowed),
 * or of the rows that allow no key. */
static void join_task(void *ctx, int64_t id, int worker) {
  run *R = ctx;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed)) return;
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  scratch *s = &R->ws[worker];
  int64_t D = K->D, t = id % R->join_tiles, bh = id / R->join_tiles;
  int64_t h = bh % a->H, b = bh / a->H, hk = h / (a->H / a->Hkv);
  int64_t hx = R->groups_per_head ? h : 0;
  const plan_groups *G = R->groups + hx;
  const join_tiles *T = R->jtiles + hx;
  if (t >= T->n) return;
  int64_t x0 = T->x0[t], g = T->group[t];
  int64_t end = g >= 0 ? G->qs[g + 1] : a->Lq;
  int64_t nr = end - x0 < KR_BQ ? end - x0 : KR_BQ;
  const int64_t *rows = G->qrow + x0;
  size_t esz = rt_dtype_size(a->dtype), row = esz * (size_t)D;
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  const char *vb = (const char *)a->v.data + (b * a->v.sb + hk * a->v.sh) * esz;
  if (a->dtype == RT_F32) {
    if (nr < KR_BQ) memset(s->qt, 0, sizeof(float) * (size_t)(D * KR_BQ));
    for (int64_t r = 0; r < nr; r++) {
      const float *qr = (const float *)(const void *)(qb + rows[r] * a->q.sl * esz);
      for (int64_t d = 0; d < D; d++) s->qt[d * KR_BQ + r] = qr[d];
    }
  } else { /* the rows gathered (16-bit, row stride D), packed as the tile's */
    for (int64_t r = 0; r < nr; r++)
      memcpy((char *)s->qf + (size_t)r * row, qb + rows[r] * a->q.sl * esz, row);
    pack_qt(s, a->dtype, s->qf, D, nr, D);
  }
  memset(s->acc, 0, sizeof(float) * (size_t)(D * KR_BQ));
  for (int r = 0; r < KR_BQ; r++) s->m[r] = -INFINITY, s->l[r] = 0;
  for (int64_t y = g >= 0 ? G->ks[g] : 0; g >= 0 && y < G->ks[g + 1]; y += KR_BK) {
    int64_t nc = G->ks[g + 1] - y < KR_BK ? G->ks[g + 1] - y : KR_BK;
    for (int64_t c = 0; c < nc; c++) { /* k, v rows of the dtype, stride D */
      memcpy((char *)s->kg + (size_t)c * row, kb + G->key[y + c] * a->k.sl * esz, row);
      memcpy((char *)s->vg + (size_t)c * row, vb + G->key[y + c] * a->v.sl * esz, row);
    }
    K->tile(s->qt, s->kg, D, s->vg, D, nc, NULL, s->acc, s->m, s->l, R->c, s->st);
  }
  write_rows(R, s, b, h, rows, 0, nr);
}

/* The query tiles of groups G: each group's rows cut into tiles of KR_BQ,
 * then the rows without keys; false when out of memory. */
static bool tile_groups(const plan_groups *G, int64_t Lq, join_tiles *T) {
  int64_t n = (Lq - G->n_rows + KR_BQ - 1) / KR_BQ;
  for (int64_t g = 0; g < G->n_groups; g++)
    n += (G->qs[g + 1] - G->qs[g] + KR_BQ - 1) / KR_BQ;
  T->x0 = malloc(sizeof *T->x0 * (size_t)(n + 1));
  T->group = malloc(sizeof *T->group * (size_t)(n + 1));
  if (!T->x0 || !T->group) return false;
  T->n = 0;
  for (int64_t g = 0; g < G->n_groups; g++)
    for (int64_t x = G->qs[g]; x < G->qs[g + 1]; x += KR_BQ)
      T->x0[T->n] = x, T->group[T->n++] = g;
  for (int64_t x = G->n_rows; x < Lq; x += KR_BQ)
    T->x0[T->n] = x, T->group[T->n++] = -1;
  return true;
}

/* Groups the rows and keys of a join (plan_join) and runs its tiles: 1 when
 * done (or failed, in R), 0 when the pattern is no join here. */
static int join_run(run *R, th_pool *pool) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  int per_head = plan_join_reads_head(K->plan);
  int64_t n = per_head ? a->H : 1, tiles = 0;
  plan_groups *G = calloc((size_t)n, sizeof *G);
  join_tiles *T = calloc((size_t)n, sizeof *T);
  int rc = G && T ? 1 : -1;
  for (int64_t h = 0; h < n && rc == 1; h++) {
    plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs, 0, 0, 0, 0};
    rc = plan_join(K->plan, &pe, &G[h]);
    if (rc == 1 && !tile_groups(&G[h], a->Lq, &T[h])) rc = -1;
    if (rc == 1 && T[h].n > tiles) tiles = T[h].n;
  }
  if (rc == 1 && tiles > 0) {
    R->groups = G, R->jtiles = T, R->groups_per_head = per_head;
    R->join_tiles = tiles;
    th_for(pool, a->B * a->H * tiles, join_task, R);
  }
  if (rc < 0) fail(R, RT_ENOMEM, "%s", "out of memory (join groups)");
  for (int64_t h = 0; G && T && h < n; h++) {
    plan_groups_free(&G[h]);
    free(T[h].x0), free(T[h].group);
  }
  free(G), free(T);
  R->groups = NULL, R->jtiles = NULL;
  return rc != 0;
}

/* --- entry -------------------------------------------------------------- */

static const char *check_args(const kr_kernel *k, const rt_args *a,
                              char *buf, size_t n) {
  /* Empty shapes are fine (rt.h: rt_has_rows, rt_fill_no_keys). */
  if (a->B < 0 || a->H < 0 || a->Hkv < 0 || a->Lq < 0 || a->Lk < 0 ||
      (a->H > 0 && a->Hkv < 1)) {
    snprintf(buf, n,
             "bad shape: B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld (sizes must "
             "be >= 0, Hkv >= 1 when H >= 1)",
             (long long)a->B, (long long)a->H, (long long)a->Hkv,
             (long long)a->Lq, (long long)a->Lk);
    return buf;
  }
  if (a->Lq > PLAN_MAX_LEN || a->Lk > PLAN_MAX_LEN) {
    snprintf(buf, n, "bad shape: Lq=%lld Lk=%lld (each must be <= 2^61)",
             (long long)a->Lq, (long long)a->Lk);
    return buf;
  }
  if (a->D != k->D) return "head dimension differs from the compiled kernel's";
  if (a->dtype != k->dtype) return "dtype differs from the compiled kernel's";
  if (a->paged && a->dtype != RT_F32)
    return "a paged KV cache is float32 only (the decode path's)";
  if (a->H > 0 && a->H % a->Hkv != 0) return "H must be a multiple of Hkv";
  if (a->threads < 0) return "negative thread count";
  bool rows = rt_has_rows(a), keys = a->B > 0 && a->Hkv > 0 && a->Lk > 0;
  if ((rows && (!a->q.data || !a->o.data)) ||
      (keys && (!a->k.data || !a->v.data)))
    return "missing tensor";
  if (k->n_runtime > 0 && !a->runtime) return "missing runtime scalars";
  if (k->n_inputs > 0 && a->Lk > 0) {  /* Lk entries each */
    if (!a->inputs) return "missing input arrays";
    for (int x = 0; x < k->n_inputs; x++)
      if (!a->inputs[x]) return "missing input array";
  }
  if (k->n_externs > 0) {
    if (!a->externs) return "missing extern functions";
    for (int x = 0; x < k->n_externs; x++)
      if (!a->externs[x]) return "missing extern function";
  }
  return NULL;
}

th_pool *kr_pool_take(kr_kernel *k, int threads, th_pool **own) {
  int want = threads ? threads : k->threads;
  if (want <= 0) want = th_cores();
  if (want > 256) want = 256;
  *own = NULL;
  if (__atomic_exchange_n(&k->busy, 1, __ATOMIC_ACQUIRE) == 0) {
    if (k->pool && k->pool_threads != want) {
      th_free(k->pool);
      k->pool = NULL;
    }
    if (!k->pool) {
      k->pool = th_new(want);
      k->pool_threads = want;
    }
    return k->pool;
  }
  return *own = th_new(want);  /* another run holds the kernel's pool */
}

void kr_pool_give(kr_kernel *k, th_pool *own) {
  th_free(own);
  if (!own) __atomic_store_n(&k->busy, 0, __ATOMIC_RELEASE);
}

rt_status kr_check_errors(const kr_kernel *k, const rt_args *a, th_pool *pool,
                          char *err, size_t errlen) {
  /* a paged cache's sequences each have their own Lk, in batch order */
  int64_t det[2] = {0, 0};
  int oom = !pool;
  int32_t code = 0;
  for (int64_t b = 0; k->errat && pool && !code && !oom &&
                      b < (a->paged ? a->B : 1); b++) {
    rt_args ab = *a;
    if (a->paged) /* sequence b alone, a run of B = 1 (as kr_env_at) */
      ab.Lk = a->paged->seq_lens[b], ab.B = 1, ab.paged = NULL;
    if (ab.Lk > 0) code = first_error(k, &ab, pool, det, &oom);
  }
  if (oom) return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  if (!code) return RT_OK;
  format_err(k, code, det, err, errlen);
  return code <= k->n_errors ? RT_ERANGE : RT_EINTERNAL;
}

rt_status kr_run(kr_kernel *k, const rt_args *a, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!k || !a) {
    if (err && errlen) snprintf(err, errlen, "NULL kernel or arguments");
    return RT_EINVAL;
  }
  char buf[160];
  const char *bad = check_args(k, a, buf, sizeof buf);
  if (bad) {
    if (err && errlen) snprintf(err, errlen, "%s", bad);
    return RT_EINVAL;
  }
  if (!rt_has_rows(a)) return RT_OK;
  if (a->Lk == 0 && !a->paged) {
    rt_fill_no_keys(a);
    return RT_OK;
  }

  th_pool *own, *pool = kr_pool_take(k, a->threads, &own);
  /* the contract's errors first, over the whole domain (kernel_rt.h) */
  rt_status st = kr_check_errors(k, a, pool, err, errlen);
  if (st != RT_OK || (pool && kd_wanted(k, a))) {
    if (st == RT_OK) st = kd_run(k, a, pool, err, errlen); /* kernel_decode.c */
    kr_pool_give(k, own);
    return st;
  }
  run R;
  memset(&R, 0, sizeof R);
  R.k = k;
  R.a = a;
  R.n_qt = (a->Lq + KR_BQ - 1) / KR_BQ;
  float scale = a->scale != 0 ? a->scale : 1.0f / sqrtf((float)a->D);
  R.scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  R.c = scale * 1.44269504088896340736f;
  R.err = err;
  R.errlen = errlen;
  int nw = pool ? th_size(pool) : 0;
  R.ws = nw ? calloc((size_t)nw, sizeof *R.ws) : NULL;
  int ok = R.ws != NULL;
  for (int w = 0; ok && w < nw; w++) ok = scratch_init(&R.ws[w], k);
  if (ok) {
    if (!join_run(&R, pool)) th_for(pool, a->B * a->H * R.n_qt, task, &R);
    if (atomic_load(&R.failed)) st = R.st;
  } else {
    st = RT_ENOMEM;
    if (err && errlen) snprintf(err, errlen, "out of memory");
  }
  if (R.ws)
    for (int w = 0; w < nw; w++) scratch_free(&R.ws[w], k->n_topk);
  free(R.ws);
  kr_pool_give(k, own);
  return st;
}

const char *kr_check_args(const kr_kernel *k, const rt_args *a, char *buf,
                          size_t n) {
  return check_args(k, a, buf, n);
}

/* --- the forward's masks for other drivers (kernel_rt.h) ---------------- */

struct kr_masker {
  run R;      /* only k, a and scale are used (by topk_rows) */
  scratch s;
};

kr_masker *kr_masker_new(kr_kernel *k, const rt_args *a) {
  kr_masker *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->R.k = k;
  m->R.a = a;
  m->R.scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  if (!scratch_init(&m->s, k)) {
    kr_masker_free(m);
    return NULL;
  }
  return m;
}

void kr_masker_free(kr_masker *m) {
  if (!m) return;
  scratch_free(&m->s, m->R.k->n_topk);
  free(m);
}

int kr_masker_rows(kr_masker *m, int64_t b, int64_t h, int64_t r0, int64_t r1,
                   int select, kr_env *env) {
  const rt_args *a = m->R.a;
  int64_t hk = h / (a->H / a->Hkv);
  *env = kr_env_at(a, b, h);
  env->topk = m->s.tk, env->random_row = random_row, env->random_cache = &m->s.rnd;
  if (!select) return 1;
  size_t esz = rt_dtype_size(a->dtype);
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  for (int t = 0; t < m->R.k->n_topk; t++)
    if (!topk_rows(&m->R, &m->s, t, env, qb, kb, pos_of_row(m->R.k, a, r0),
                   pos_of_row(m->R.k, a, r1 - 1), b, hk))
      return 0;
  return 1;
}

int kr_masker_oom(const kr_masker *m) { return m->s.rnd.oom; }

kr_topk *kr_masker_record(const kr_masker *m) {
  int nt = m->R.k->n_topk;
  size_t words = 0;
  for (int t = 0; t < nt; t++)
    words += (size_t)(m->s.tb[t].rows * (1 + m->s.tk[t].k));
  kr_topk *r = malloc(sizeof *r * (size_t)(nt ? nt : 1) + words * 8);
  if (!r) return NULL;
  int64_t *p = (int64_t *)(void *)(r + nt);
  for (int t = 0; t < nt; t++) {
    const kr_topk *tk = &m->s.tk[t];
    int64_t rows = m->s.tb[t].rows;
    r[t] = *tk;
    if (rows == 0) continue;
    memcpy(p, tk->cnt, (size_t)rows * sizeof *p);
    r[t].cnt = p;
    p += rows;
    memcpy(p, tk->sel, (size_t)(rows * tk->k) * sizeof *p);
    r[t].sel = p;
    p += rows * tk->k;
  }
  return r;
}

void kr_error_text(const kr_kernel *k, int32_t code, char *buf, size_t n) {
  format_err(k, code, NULL, buf, n);
}

void kr_transpose64(uint64_t a[64]) { transpose64(a); }

void kr_release(kr_kernel *k) {
  if (!k) return;
  th_free(k->pool);
  k->pool = NULL;
}

/* --- for the decode driver (kernel_rt_impl.h) ---------------------------- */

void kri_fail(run *R, rt_status st, const char *msg) {
  fail(R, st, "%s", msg);
}
void kri_fail_code(run *R, int32_t code) { fail_code(R, code); }
int kri_scratch_init(scratch *s, const kr_kernel *k) {
  return scratch_init(s, k);
}
void kri_scratch_free(scratch *s, int n_topk) { scratch_free(s, n_topk); }
int kri_topk_rows(run *R, scratch *s, int t, const kr_env *env,
                  const float *qb, const float *kb, int64_t i0, int64_t i1,
                  int64_t b, int64_t hk) {
  return topk_rows(R, s, t, env, qb, kb, i0, i1, b, hk);
}
const uint64_t *kri_random_row(const kr_env *e, int64_t node, int64_t i,
                               int64_t r, int64_t seed, int64_t lk,
                               int64_t j0) {
  return random_row(e, node, i, r, seed, lk, j0);
}
void kri_sparse_rows(const float *q, int64_t sq, const float *kt, int64_t sk,
                     const float *vt, int64_t sv, int64_t D,
                     const uint64_t *rows, int64_t nr, float *accb, float *mb,
                     float *lb, float c) {
  sparse_rows(q, sq, kt, sk, vt, sv, D, rows, nr, accb, mb, lb, c);
}
