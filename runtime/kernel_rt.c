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
#include "plan_sets.h"
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
                   env.b, env.B, a->Hkv, a->D, NULL, NULL};
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
  plan_memo_free(s->pmemo);
  for (int x = -1; x < KR_GQA_MAX; x++) {
    rnd_cache *c = x < 0 ? &s->rnd : &s->grnd[x];
    for (int64_t n = 0; n < c->n_nodes; n++) free(c->nodes[n].bits);
    free(c->nodes);
  }
  free(s->grp); free(s->spans2); free(s->pd_own); free(s->gpd);
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
  s->span_cap = s->span2_cap = 64;
  s->spans = malloc((size_t)s->span_cap * sizeof *s->spans);
  s->spans2 = malloc((size_t)s->span2_cap * sizeof *s->spans2);
  s->qd = malloc(D * sizeof(double));
  s->kg = aalloc(D * KR_BK * sizeof(float));
  s->vg = aalloc(D * KR_BK * sizeof(float));
  s->tk = calloc((size_t)k->n_topk + 1, sizeof *s->tk);
  s->tb = calloc((size_t)k->n_topk + 1, sizeof *s->tb);
  s->pd = s->pd_own = calloc(1, sizeof *s->pd_own);
  return s->pd_own && s->qt && s->acc && s->m && s->l && s->st && s->spans && s->qd && s->tk &&
         s->tb && s->kg && s->vg && s->spans2;
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


/* out[x] = scale times the sum of a[x]'s lanes, x < 16,
 * in the order of a horizontal sum by halves (lanes x and x + 8, then x and
 * x + 4, ...), so each sum is the one a single row's reduction gives. */
static inline __attribute__((always_inline)) void sum16(const v16 *a,
                                                      float scale, float *out) {
  v16 b[8], c[4], d[2];
  for (int x = 0; x < 8; x++)
    b[x] = __builtin_shufflevector(a[2 * x], a[2 * x + 1], 0, 1, 2, 3, 4, 5,
                                   6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(a[2 * x], a[2 * x + 1], 8, 9, 10, 11, 12,
                                   13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int x = 0; x < 4; x++)
    c[x] = __builtin_shufflevector(b[2 * x], b[2 * x + 1], 0, 1, 2, 3, 8, 9,
                                   10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(b[2 * x], b[2 * x + 1], 4, 5, 6, 7, 12, 13,
                                   14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int x = 0; x < 2; x++)
    d[x] = __builtin_shufflevector(c[2 * x], c[2 * x + 1], 0, 1, 4, 5, 8, 9,
                                   12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           __builtin_shufflevector(c[2 * x], c[2 * x + 1], 2, 3, 6, 7, 10, 11,
                                   14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  *(v16 *)out = (__builtin_shufflevector(d[0], d[1], 0, 2, 4, 6, 8, 10, 12,
                                         14, 16, 18, 20, 22, 24, 26, 28, 30) +
                 __builtin_shufflevector(d[0], d[1], 1, 3, 5, 7, 9, 11, 13,
                                         15, 17, 19, 21, 23, 25, 27, 29, 31)) *
                scale;
}

/* Pairs scored together by sparse_rows and sparse_lists: rows are taken
 * while their pairs fit (a row brings at most KR_PEND >= KR_BK). */
#define SR_PAIRS 512
#define SR_CAP (SR_PAIRS + KR_PEND + 16)

/* a[x] = the lanes of q.k for pairs p + x, x < 16 (nd vectors a row). */
static inline __attribute__((always_inline)) void
sparse_dots(const float *q, int64_t sq, const float *kt, int64_t sk,
            const int64_t *pj, const int32_t *pr, int p, int64_t nd, v16 *a) {
  for (int x = 0; x < 16; x++) {
    const float *qr = q + pr[p + x] * sq, *kr = kt + pj[p + x] * sk;
    v16 t = *(const v16 *)qr * *(const v16 *)kr;
    for (int64_t d = 1; d < nd; d++)
      t += *(const v16 *)(qr + 16 * d) * *(const v16 *)(kr + 16 * d);
    a[x] = t;
  }
}

/* One run of rows rr[0, nrun) of sparse_rows / sparse_lists, row rr[x]'s
 * np pairs at [off[x], off[x + 1]) of the lists: pr[p] its row, pj[p] its
 * key's row in kt and vt.  The same online-softmax step as the dense tile
 * (scores c q.k in the log2 domain, m the running max, alpha = 2^(m_old -
 * m_new)).  The pairs are scored 16 at a time (16 dot products, one sum16)
 * and their weights and the rows' rescalings exponentiated together, so a
 * row with one key costs no exp of its own; each row's arithmetic is the
 * one it would have alone.  q: the tile's first query row (stride sq). */
static inline __attribute__((always_inline)) void
sparse_run(const float *q, int64_t sq, const float *kt, int64_t sk,
           const float *vt, int64_t sv, int64_t D, int64_t *pj, int32_t *pr,
           int np, const int32_t *rr, const int32_t *off, int nrun,
           float *accb, float *mb, float *lb, float c) {
  int64_t nd = D / 16;
  /* pairs, then the run's rows' rescalings, then padding to 16 */
  float s[SR_CAP + KR_BQ + 16];
  for (int x = np; x < (np + 15) / 16 * 16; x++)
    pj[x] = pj[np - 1], pr[x] = pr[np - 1];
  for (int p = 0; p < np; p += 16) {
    v16 a[16];
    sparse_dots(q, sq, kt, sk, pj, pr, p, nd, a);
    sum16(a, c, s + p);
  }
  /* the rows' maxima; the scores less them, the rescalings after them */
  for (int x = 0; x < nrun; x++) {
    float mloc = -INFINITY;
    for (int p = off[x]; p < off[x + 1]; p++)
      if (s[p] > mloc) mloc = s[p];
    int64_t rw = rr[x];
    float mold = mb[rw], mnew = mloc > mold ? mloc : mold;
    float muse = mnew == -INFINITY ? 0 : mnew;
    mb[rw] = mnew;
    for (int p = off[x]; p < off[x + 1]; p++) s[p] -= muse;
    s[np + x] = mold - muse;
  }
  int ne = np + nrun;
  for (int x = ne; x < (ne + 15) / 16 * 16; x++) s[x] = -INFINITY;
  for (int x = 0; x < ne; x += 16) exp2_v16(s + x);
  for (int x = 0; x < nrun; x++) {
    int64_t rw = rr[x];
    float alpha = s[np + x], lsum = 0;
    float *acc = accb + rw * D;
    for (int p = off[x]; p < off[x + 1]; p++) lsum += s[p];
    int64_t d = 0;
    for (; d + 4 <= nd; d += 4) { /* four chains of adds, not one */
      v16 o0 = *(v16 *)(acc + 16 * d) * alpha;
      v16 o1 = *(v16 *)(acc + 16 * d + 16) * alpha;
      v16 o2 = *(v16 *)(acc + 16 * d + 32) * alpha;
      v16 o3 = *(v16 *)(acc + 16 * d + 48) * alpha;
      for (int p = off[x]; p < off[x + 1]; p++) {
        const float *vr = vt + pj[p] * sv + 16 * d;
        o0 += s[p] * *(const v16 *)vr;
        o1 += s[p] * *(const v16 *)(vr + 16);
        o2 += s[p] * *(const v16 *)(vr + 32);
        o3 += s[p] * *(const v16 *)(vr + 48);
      }
      *(v16 *)(acc + 16 * d) = o0;
      *(v16 *)(acc + 16 * d + 16) = o1;
      *(v16 *)(acc + 16 * d + 32) = o2;
      *(v16 *)(acc + 16 * d + 48) = o3;
    }
    for (; d < nd; d++) {
      v16 o = *(v16 *)(acc + 16 * d) * alpha;
      for (int p = off[x]; p < off[x + 1]; p++)
        o += s[p] * *(const v16 *)(vt + pj[p] * sv + 16 * d);
      *(v16 *)(acc + 16 * d) = o;
    }
    lb[rw] = lb[rw] * alpha + lsum;
  }
}

/* Rows r < nr of the tile with bit t of rows[r] = key t of kt, vt allowed,
 * through sparse_run. */
KR_CLONES
static void sparse_rows(const float *q, int64_t sq, const float *kt,
                        int64_t sk, const float *vt, int64_t sv, int64_t D,
                        const uint64_t *rows, int64_t nr, float *accb,
                        float *mb, float *lb, float c) {
  int64_t pj[SR_CAP];
  int32_t pr[SR_CAP], off[KR_BQ + 1], rr[KR_BQ];
  for (int64_t r = 0; r < nr;) {
    int np = 0, nrun = 0;
    for (; r < nr && nrun < KR_BQ && np < SR_PAIRS; r++) {
      uint64_t w = rows[r];
      if (!w) continue;
      rr[nrun] = (int32_t)r;
      off[nrun++] = np;
      for (; w; w &= w - 1) {
        pj[np] = __builtin_ctzll(w);
        pr[np++] = (int32_t)r;
      }
    }
    off[nrun] = np;
    if (np)
      sparse_run(q, sq, kt, sk, vt, sv, D, pj, pr, np, rr, off, nrun, accb,
                 mb, lb, c);
  }
}

/* Rows r < nr with the P->n[r] keys P->key[r KR_PEND ..] of kb, vb (the
 * head's rows) allowed, through sparse_run. */
KR_CLONES
static void sparse_lists(const float *q, int64_t sq, const float *kb,
                         int64_t sk, const float *vb, int64_t sv, int64_t D,
                         const pend *P, int64_t nr, float *accb, float *mb,
                         float *lb, float c) {
  int64_t pj[SR_CAP];
  int32_t pr[SR_CAP], off[KR_BQ + 1], rr[KR_BQ];
  for (int64_t r = 0; r < nr;) {
    int np = 0, nrun = 0;
    for (; r < nr && nrun < KR_BQ && np < SR_PAIRS; r++) {
      int n = P->n[r];
      if (!n) continue;
      rr[nrun] = (int32_t)r;
      off[nrun++] = np;
      for (int x = 0; x < n; x++) {
        pj[np] = P->key[r * KR_PEND + x];
        pr[np++] = (int32_t)r;
      }
    }
    off[nrun] = np;
    if (np)
      sparse_run(q, sq, kb, sk, vb, sv, D, pj, pr, np, rr, off, nrun, accb,
                 mb, lb, c);
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

static void write_rows(run *R, const scratch *s, int64_t b, int64_t h,
                       const int64_t *rows, int64_t r0, int64_t nr);

/* kernel_rt_impl.h: 16 float (or 32 16-bit) elements a step when D allows,
 * the exponent bits of every element OR-ed into one vector. */
typedef uint16_t u16x32 __attribute__((vector_size(64), aligned(2), may_alias));
KR_CLONES
static int v_nonfinite(const void *vt, int dt, int64_t sv, int64_t nc,
                       int64_t D) {
  if (dt == RT_F32) {
    const uint32_t *w = vt;
    int64_t d16 = D - D % 16;
    v16i bad = {0};
    uint32_t tail = 0;
    for (int64_t x = 0; x < nc; x++, w += sv) {
      for (int64_t d = 0; d < d16; d += 16)
        bad |= (*(const v16i *)(w + d) & 0x7f800000) == 0x7f800000;
      for (int64_t d = d16; d < D; d++) tail |= (w[d] & 0x7f800000u) == 0x7f800000u;
    }
    for (int x = 0; x < 16; x++) tail |= (uint32_t)bad[x];
    return tail != 0;
  }
  uint16_t e = dt == RT_BF16 ? 0x7f80u : 0x7c00u;
  const uint16_t *w = vt;
  int64_t d32 = D - D % 32;
  u16x32 bad = {0};
  uint32_t tail = 0;
  for (int64_t x = 0; x < nc; x++, w += sv) {
    for (int64_t d = 0; d < d32; d += 32)
      bad |= (u16x32)((*(const u16x32 *)(w + d) & e) == e);
    for (int64_t d = d32; d < D; d++) tail |= (w[d] & e) == e;
  }
  for (int x = 0; x < 32; x++) tail |= bad[x];
  return tail != 0;
}

/* (clones are static: an exported function's ifunc would be a symbol of
 * the library) */
int kri_tile_v_nonfinite(const void *vt, int dt, int64_t sv, int64_t nc,
                         int64_t D) {
  return v_nonfinite(vt, dt, sv, nc, D);
}

/* --- element types ------------------------------------------------------ */

/* One step of a 16 x 16 transpose in 16 vectors: rows i and i + b (bit b
 * of i clear) swap their off-diagonal b x b blocks; steps b = 8, 4, 2, 1
 * transpose. */
#define TL(l, b) (((l) & (b)) ? 16 + (l) - (b) : (l))
#define TH(l, b) (((l) & (b)) ? 16 + (l) : (l) + (b))
#define TIDX(T, b)                                                       \
  T(0, b), T(1, b), T(2, b), T(3, b), T(4, b), T(5, b), T(6, b), T(7, b),  \
      T(8, b), T(9, b), T(10, b), T(11, b), T(12, b), T(13, b), T(14, b),  \
      T(15, b)
#define TSTEP(x, b)                                                      \
  for (int i = 0; i < 16; i++)                                           \
    if (!(i & (b))) {                                                    \
      v16f lo = __builtin_shufflevector(x[i], x[i + (b)], TIDX(TL, b));  \
      v16f hi = __builtin_shufflevector(x[i], x[i + (b)], TIDX(TH, b));  \
      x[i] = lo, x[i + (b)] = hi;                                        \
    }
typedef float v16f __attribute__((vector_size(64)));

/* qt[d * KR_BQ + r] = q[r * sq + d] for rows r < nr (0 past them), D a
 * multiple of 16: 16 x 16 blocks transposed in registers. */
KR_CLONES
static void pack_qt_f32(float *qt, const float *q, int64_t sq, int64_t nr,
                        int64_t D) {
  for (int64_t r0 = 0; r0 < KR_BQ; r0 += 16)
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      v16f x[16];
      for (int i = 0; i < 16; i++)
        x[i] = r0 + i < nr ? (v16f)*(const v16 *)(q + (r0 + i) * sq + d0) : (v16f){0};
      TSTEP(x, 8) TSTEP(x, 4) TSTEP(x, 2) TSTEP(x, 1)
      for (int i = 0; i < 16; i++) *(v16 *)(qt + (d0 + i) * KR_BQ + r0) = x[i];
    }
  /* the next tile's rows (the same head's next query tile, usually this
   * worker's next task) into L2: they miss otherwise, one tile a task */
  if (nr == KR_BQ)
    for (int64_t r = KR_BQ; r < 2 * KR_BQ; r++)
      for (int64_t d = 0; d < D; d += 16)  /* (past the end: no fault) */
        __builtin_prefetch((const void *)((uintptr_t)q + (uintptr_t)(r * sq + d) * 4), 0, 1);
}
#undef TL
#undef TH
#undef TIDX
#undef TSTEP

void kri_pack_qt_f32(float *qt, const float *q, int64_t sq, int64_t nr,
                     int64_t D) {
  pack_qt_f32(qt, q, sq, nr, D);
}

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
  if (dt == RT_F32 && D % 16 == 0) {
    kri_pack_qt_f32(s->qt, q, sq, nr, D);
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

/* The allowed pairs of a tile's rows[0, nr), counting stopped once past
 * stop: a static clone, so that the host's popcnt is used (the
 * baseline build has no popcnt instruction and calls libgcc's). */
KR_CLONES
static int64_t tile_pairs(const uint64_t *rows, int64_t nr, int64_t stop) {
  int64_t pairs = 0;
  for (int64_t r = 0; r < nr && pairs <= stop; r++)
    pairs += __builtin_popcountll(rows[r]);
  return pairs;
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

/* --- one task: a query tile of the query heads sharing a KV head ------- */

/* Q^T of the tile's rows (q: its first row) packed; acc, m, l and the
 * deferred pairs cleared. */
static void tile_start(scratch *s, const rt_args *a, const char *q,
                       int64_t nr) {
  int64_t D = a->D;
  pack_qt(s, a->dtype, q, a->q.sl, nr, D);
  for (int64_t x = 0; x < D * KR_BQ; x++) s->acc[x] = 0;
  for (int r = 0; r < KR_BQ; r++) s->m[r] = -INFINITY, s->l[r] = 0;
  if (s->pd->any) /* left by a tile whose run failed */
    memset(s->pd->n, 0, sizeof s->pd->n), s->pd->any = 0;
}

/* The env mask code of batch b, head h reads in run R: kr_env_at's, with
 * the worker's top-k selections tk and random key sets rc, and the run's
 * route(C) ids and index-row bitmaps. */
static kr_env run_env(const run *R, int64_t b, int64_t h, kr_topk *tk, rnd_cache *rc) {
  kr_env e = kr_env_at(R->a, b, h);
  e.topk = tk, e.random_row = random_row, e.random_cache = rc;
  kr_route_env(R->route, b, h, &e);
  e.setbits = plan_rows_bits(R->rows);
  return e;
}

/* The plan's spans for head h's rows [r0, r1) into *sp (capacity *cap,
 * grown), visiting only the keys of the ntk top-k selections tk (views of
 * the non-root top-k nodes'); their number, or -1 after failing the run. */
static int64_t eval_spans(run *R, scratch *s, int64_t b, int64_t h,
                          int64_t r0, int64_t r1, const plan_topk *tk,
                          int64_t ntk, plan_span **sp, int64_t *cap) {
  const rt_args *a = R->a;
  kr_env e = kr_env_at(a, b, h);
  if (!s->pmemo) s->pmemo = plan_memo_new();  /* NULL: plans without it */
  plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs,
                 e.b, e.B, a->Hkv, a->D, R->rows, s->pmemo};
  char perr[256] = "";
  for (;;) {
    int64_t ns = plan_tiles_topk(R->k->plan, &pe, ntk ? tk : NULL, ntk, r0,
                                 r1, *sp, *cap, perr, sizeof perr);
    if (ns < 0) {
      fail(R, RT_ERANGE, "%s", perr[0] ? perr : "run-time error in the plan");
      return -1;
    }
    if (ns <= *cap) return ns;
    plan_span *p = realloc(*sp, (size_t)ns * sizeof *p);
    if (!p) {
      fail(R, RT_ENOMEM, "%s", "out of memory (plan spans)");
      return -1;
    }
    *sp = p;
    *cap = ns;
  }
}

/* eval_spans' spans, or the query tile's in the run's shared table
 * (share_spans: the same for every head). */
static int64_t head_spans(run *R, scratch *s, int64_t b, int64_t h,
                          int64_t r0, int64_t r1, const plan_topk *tk,
                          int64_t ntk, plan_span **sp, int64_t *cap) {
  const span_tab *T = R->spans;
  if (!T || ntk) return eval_spans(R, s, b, h, r0, r1, tk, ntk, sp, cap);
  int64_t id = (T->nb > 1 ? b : 0) * R->n_qt + r0 / KR_BQ, ns = T->n[id];
  if (ns > *cap) {
    plan_span *p = realloc(*sp, (size_t)ns * sizeof *p);
    if (!p) {
      fail(R, RT_ENOMEM, "%s", "out of memory (plan spans)");
      return -1;
    }
    *sp = p;
    *cap = ns;
  }
  if (ns) memcpy(*sp, T->sp[id], (size_t)ns * sizeof **sp);
  return ns;
}

/* The head's deferred pairs (s->pd) scored: q the tile's first query row,
 * kb and vb the head's k and v rows (float32). */
static void pend_flush(const run *R, scratch *s, const char *q, const char *kb,
                       const char *vb, int64_t nr) {
  pend *P = s->pd;
  if (!P->any) return;
  const rt_args *a = R->a;
  sparse_lists((const float *)(const void *)q, a->q.sl,
               (const float *)(const void *)kb, a->k.sl,
               (const float *)(const void *)vb, a->v.sl, a->D, P, nr, s->acc,
               s->m, s->l, R->c);
  memset(P->n, 0, sizeof P->n);
  P->any = 0;
}

/* The pairs of s->rows (key tile j0 at kt, vt) deferred to pend_flush; a
 * full row flushes them all first. */
static void pend_add(const run *R, scratch *s, const char *q, const char *kt,
                     const char *vt, int64_t j0, int64_t nr) {
  const rt_args *a = R->a;
  const char *kb = kt - j0 * a->k.sl * (int64_t)sizeof(float);
  const char *vb = vt - j0 * a->v.sl * (int64_t)sizeof(float);
  pend *P = s->pd;
  for (int64_t r = 0; r < nr; r++)
    for (uint64_t w = s->rows[r]; w; w &= w - 1) {
      if (P->n[r] == KR_PEND) pend_flush(R, s, q, kb, vb, nr);
      P->key[r * KR_PEND + P->n[r]++] = j0 + __builtin_ctzll(w);
      P->any = 1;
    }
}

/* The key tile [j0, j0 + nc) of k/v rows kt, vt for head env->h's query
 * tile (rows r0 .. r0 + nr, q its first row, packed in s): unmasked when
 * full (inside one FULL span), else through the mask, its row words mk
 * when given (share_spans'); 0 after failing. */
static int key_tile(run *R, scratch *s, const kr_env *env, const char *q,
                    const void *kt, const void *vt, int64_t r0, int64_t nr,
                    int64_t j0, int64_t nc, int full, int *qf_ready,
                    const uint64_t *mk) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  /* the score tile's words for "every row of the tile": its E reads inputs
   * at the rows' positions, so rows past the tile must stay masked */
  uint64_t rows_all[KR_BK];
  for (int x = 0; K->stile && x < KR_BK; x++)
    rows_all[x] = nr >= 64 ? ~0ull : (1ull << nr) - 1;
#define TILE(maskt)                                                          \
  do {                                                                       \
    if (!K->stile)                                                           \
      K->tile(s->qt, kt, a->k.sl, vt, a->v.sl, nc, maskt, s->acc, s->m,      \
              s->l, R->c, s->st);                                            \
    else if (K->stile(env, pos_of_row(K, a, r0), j0, s->qt, kt, a->k.sl, vt,    \
                      a->v.sl, nc, (maskt) ? (maskt) : rows_all, s->acc,     \
                      s->m, s->l, R->c, s->st))                              \
      atomic_store(&R->score_bad, 1);                                        \
  } while (0)
  if (full) {
    TILE(NULL);
    return 1;
  }
  uint64_t any = 0, all = ~0ull;
  uint64_t valid = nc >= 64 ? ~0ull : (1ull << nc) - 1;
  for (int64_t r = 0; r < nr; r++) {
    int32_t code = mk ? 0 : K->mask[0](env, pos_of_row(K, a, r0 + r), j0, nc,
                                       a->Lq, a->Lk, &s->rows[r]);
    if (code) {
      fail_code(R, code);
      return 0;
    }
    if (mk) s->rows[r] = mk[r];
    any |= s->rows[r];
    all &= s->rows[r];
  }
  if (!any) return 1;
  if (all != valid && !K->stile) {
    int64_t pairs = tile_pairs(s->rows, nr, KR_SPARSE_MAX);
    /* a masked key weighs 0, but 0 * NaN is NaN: with a non-finite v a
     * masked tile runs per row over its allowed keys only */
    if (pairs <= KR_SPARSE_MAX ||
        kri_tile_v_nonfinite(vt, a->dtype, a->v.sl, nc, a->D)) {
      if (a->dtype == RT_F32) /* with the tile's other sparse key tiles */
        pend_add(R, s, q, (const char *)kt, (const char *)vt, j0, nr);
      else
        sparse_tile(s, a, q, kt, vt, nc, nr, R->c, qf_ready);
      return 1;
    }
  }
  if (all == valid) { /* every row allows every key: no mask */
    TILE(NULL);
    return 1;
  }
  memcpy(s->cols, s->rows, sizeof s->cols);
  transpose64(s->cols);
  TILE(s->cols);
#undef TILE
  return 1;
}

/* Short FULL spans apart from others (the columns of cols(vidx[h])) are
 * gathered: their k and v rows copied into s->kg, s->vg and run as one
 * unmasked tile of up to KR_BK keys, instead of one tile call per span.
 * float32 without a score tile only (the tile reads the kernel's dtype;
 * a score tile needs each key's position). */
#define GATHER_MAX (KR_BK / 4)

struct group;
static void use_slot(scratch *s, const struct group *g, int64_t x, int64_t D);

typedef struct gather {
  int64_t n;               /* keys in s->kg, s->vg */
  const struct group *grp; /* a GQA subgroup's ng heads take them, or NULL:
                              the head in s */
  int64_t ng;
} gather;

static void gather_flush(const run *R, scratch *s, gather *G) {
  if (!G->n) return;
  const kr_kernel *K = R->k;
  for (int64_t x = 0; x < (G->grp ? G->ng : 1); x++) {
    if (G->grp) use_slot(s, G->grp, x, K->D);
    K->tile(s->qt, s->kg, K->D, s->vg, K->D, G->n, NULL, s->acc, s->m, s->l,
            R->c, s->st);
  }
  G->n = 0;
}

static void gather_span(const run *R, scratch *s, gather *G, const float *kb,
                        const float *vb, int64_t k0, int64_t k1) {
  const rt_args *a = R->a;
  int64_t D = R->k->D;
  if (G->n + (k1 - k0) > KR_BK) gather_flush(R, s, G);
  for (int64_t j = k0; j < k1; j++, G->n++) {
    memcpy(s->kg + G->n * D, kb + j * a->k.sl, sizeof(float) * (size_t)D);
    memcpy(s->vg + G->n * D, vb + j * a->v.sl, sizeof(float) * (size_t)D);
  }
}

/* The tasks' heads: (b, kv head, query tile, subgroup) in that order, a
 * subgroup being gs(R) consecutive query heads of the kv head's group. */
typedef struct tile_task {
  int64_t b, hk, h0, ng, r0, nr;
  const char *kb, *vb;
} tile_task;

static tile_task task_of(const run *R, int64_t id) {
  const rt_args *a = R->a;
  int64_t G = a->H / a->Hkv, ns = R->n_sub, sg = id % ns, rest = id / ns;
  int64_t qtile = rest % R->n_qt, bhk = rest / R->n_qt;
  tile_task t;
  t.hk = bhk % a->Hkv, t.b = bhk / a->Hkv;
  t.h0 = t.hk * G + sg * G / ns;
  t.ng = t.hk * G + (sg + 1) * G / ns - t.h0;
  t.r0 = qtile * KR_BQ;
  t.nr = (t.r0 + KR_BQ < a->Lq ? t.r0 + KR_BQ : a->Lq) - t.r0;
  size_t esz = rt_dtype_size(a->dtype);
  t.kb = (const char *)a->k.data + (t.b * a->k.sb + t.hk * a->k.sh) * esz;
  t.vb = (const char *)a->v.data + (t.b * a->v.sb + t.hk * a->v.sh) * esz;
  return t;
}

static const char *q_rows(const rt_args *a, const tile_task *t, int64_t h) {
  size_t esz = rt_dtype_size(a->dtype);
  return (const char *)a->q.data +
         (t->b * a->q.sb + h * a->q.sh + t->r0 * a->q.sl) * esz;
}

/* Touching spans form one run cut into key tiles from its start, so a FULL
 * span next to PARTIAL ones leaves no short tile behind; a tile is full
 * when it lies inside one FULL span.  Calls each(R, s, t, j0, nc, full,
 * ctx) per tile; 0 when one failed.  With gk, short lone FULL spans are
 * gathered into it instead (the caller flushes it). */
typedef int tile_fn(run *R, scratch *s, const tile_task *t, int64_t j0,
                    int64_t nc, int full, void *ctx);

static int walk_tiles(run *R, scratch *s, const tile_task *t,
                      const plan_span *sp, int64_t ns, tile_fn *each,
                      void *ctx, gather *gk) {
  for (int64_t x = 0, y; x < ns; x = y + 1) {
    for (y = x; y + 1 < ns && sp[y + 1].k0 == sp[y].k1;) y++;
    if (gk && x == y && sp[x].kind == PLAN_FULL && sp[x].k1 - sp[x].k0 <= GATHER_MAX) {
      gather_span(R, s, gk, (const float *)(const void *)t->kb,
                  (const float *)(const void *)t->vb, sp[x].k0, sp[x].k1);
      continue;
    }
    for (int64_t j0 = sp[x].k0, cur = x; j0 < sp[y].k1; j0 += KR_BK) {
      int64_t nc = sp[y].k1 - j0 < KR_BK ? sp[y].k1 - j0 : KR_BK;
      while (sp[cur].k1 <= j0) cur++;
      int full = sp[cur].kind == PLAN_FULL && sp[cur].k1 >= j0 + nc;
      if (!each(R, s, t, j0, nc, full, ctx)) return 0;
    }
  }
  return 1;
}

/* One head's query tile (heads whose plans differ, top-k patterns). */
typedef struct one_head {
  kr_env env;
  const char *q;
  int qf_ready;
  const uint64_t *mk; /* the next masked tile's row words, or NULL */
} one_head;

/* The row words of a masked tile from cursor *mk (advanced), or NULL. */
static const uint64_t *next_words(const uint64_t **mk, int full) {
  const uint64_t *w = full ? NULL : *mk;
  if (w) *mk += KR_BQ;
  return w;
}

static int one_tile(run *R, scratch *s, const tile_task *t, int64_t j0,
                    int64_t nc, int full, void *ctx) {
  one_head *o = ctx;
  const rt_args *a = R->a;
  size_t esz = rt_dtype_size(a->dtype);
  return key_tile(R, s, &o->env, o->q, t->kb + j0 * a->k.sl * esz,
                  t->vb + j0 * a->v.sl * esz, t->r0, t->nr, j0, nc, full,
                  &o->qf_ready, next_words(&o->mk, full));
}

/* The selections of every top-k node for rows [r0, r1), the root's (when
 * it is one, R->topk_root) among candidates cs[0, ncs); 0: out of memory
 * (the run failed). */
static int select_topk(run *R, scratch *s, const kr_env *env, const void *qb,
                       const void *kb, int64_t r0, int64_t r1, int64_t b,
                       int64_t hk, const plan_span *cs, int64_t ncs) {
  const rt_args *a = R->a;
  for (int t = 0; t < R->k->n_topk; t++)
    if (!kri_topk_rows_in(R, s, t, env, qb, kb, pos_of_row(R->k, a, r0),
                          pos_of_row(R->k, a, r1 - 1), b, hk,
                          t == R->topk_root ? cs : NULL, ncs)) {
      fail(R, RT_ENOMEM, "%s", "out of memory (top-k selection)");
      return 0;
    }
  return 1;
}

/* The row words of query tile t's masked tiles in R->spans, or NULL. */
static const uint64_t *shared_words(const run *R, const tile_task *t) {
  const span_tab *T = R->spans;
  if (!T || !T->mk) return NULL;
  return T->mk[(T->nb > 1 ? t->b : 0) * R->n_qt + t->r0 / KR_BQ];
}

static void head_tile(run *R, scratch *s, const tile_task *t, int64_t h) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  size_t esz = rt_dtype_size(a->dtype);
  const char *qb = (const char *)a->q.data + (t->b * a->q.sb + h * a->q.sh) * esz;
  one_head o = {run_env(R, t->b, h, s->tk, &s->rnd), q_rows(a, t, h), 0,
                shared_words(R, t)};
  tile_start(s, a, o.q, t->nr);
  /* top-k selections: a root top-k node's after the plan (its candidates
   * are the plan's spans, P's), the others before it (the plan then visits
   * only the keys they selected) */
  int64_t r0 = t->r0, r1 = t->r0 + t->nr;
  int root = R->topk_root;
  plan_topk ptk[KR_PLAN_TOPK];
  int64_t nptk = 0;
  if (root < 0 && K->n_topk > 0) {
    if (!select_topk(R, s, &o.env, qb, t->kb, r0, r1, t->b, t->hk, NULL, 0))
      return;
    nptk = kri_topk_views(s, K->n_topk, ptk, KR_PLAN_TOPK);
  }
  int64_t ns = head_spans(R, s, t->b, h, r0, r1, ptk, nptk, &s->spans, &s->span_cap);
  if (ns < 0) return;
  /* the root's rows attend to their selections, gathered: no tiles */
  if (root >= 0 &&
      !select_topk(R, s, &o.env, qb, t->kb, r0, r1, t->b, t->hk, s->spans, ns))
    return;
  if (root >= 0 && a->dtype == RT_F32 && !K->stile) {
    int32_t code = kri_topk_attend(R, s, root, (const float *)(const void *)qb + r0 * a->q.sl,
                                   (const float *)(const void *)t->kb,
                                   (const float *)(const void *)t->vb, t->nr);
    if (code) {
      fail_code(R, code);
      return;
    }
    ns = 0;
  }
  for (int64_t r = t->nr; r < KR_BQ; r++) s->rows[r] = 0;
  gather gk = {0};
  bool gathers = a->dtype == RT_F32 && !K->stile;
  if (!walk_tiles(R, s, t, s->spans, ns, one_tile, &o, gathers ? &gk : NULL))
    return;
  gather_flush(R, s, &gk);
  pend_flush(R, s, o.q, t->kb, t->vb, t->nr);
  if (s->rnd.oom) {
    fail(R, RT_ENOMEM, "%s", "out of memory (random key sets)");
    return;
  }
  write_rows(R, s, t->b, h, NULL, t->r0, t->nr);
}

/* GQA: the subgroup's heads against each key tile in turn, while its k and
 * v rows are in cache; each head's Q^T, acc, m, l (and 16-bit q rows) in
 * its slot of s->grp, swapped into s for the tile. */
typedef struct group {
  one_head hd[KR_GQA_MAX];
  const uint64_t *mk;           /* the heads' shared row words, or NULL */
  float *qt, *acc, *m, *l, *qf; /* s's own */
} group;

static void use_slot(scratch *s, const group *g, int64_t x, int64_t D) {
  if (x < 0) {
    s->qt = g->qt, s->acc = g->acc, s->m = g->m, s->l = g->l, s->qf = g->qf;
    s->pd = s->pd_own;
    return;
  }
  s->pd = s->gpd + x;
  float *p = s->grp + x * KR_GQA_SLOT(D);
  s->qt = p, s->acc = p + D * KR_BQ, s->m = p + 2 * D * KR_BQ;
  s->l = s->m + KR_BQ, s->qf = s->l + KR_BQ;
}

static int group_tile(run *R, scratch *s, const tile_task *t, int64_t j0,
                      int64_t nc, int full, void *ctx) {
  group *g = ctx;
  const rt_args *a = R->a;
  size_t esz = rt_dtype_size(a->dtype);
  const void *kt = t->kb + j0 * a->k.sl * esz, *vt = t->vb + j0 * a->v.sl * esz;
  const uint64_t *mk = next_words(&g->mk, full);
  for (int64_t x = 0; x < t->ng; x++) {
    use_slot(s, g, x, a->D);
    if (!key_tile(R, s, &g->hd[x].env, g->hd[x].q, kt, vt, t->r0, t->nr, j0,
                  nc, full, &g->hd[x].qf_ready, mk))
      return 0;
  }
  return 1;
}

/* Whether the subgroup's heads all have head h0's spans (sp[0 .. ns)). */
static int same_spans(run *R, scratch *s, const tile_task *t, int64_t ns) {
  for (int64_t h = t->h0 + 1; h < t->h0 + t->ng; h++) {
    int64_t n = head_spans(R, s, t->b, h, t->r0, t->r0 + t->nr, NULL, 0, &s->spans2,
                           &s->span2_cap);
    if (n != ns) return n < 0 ? -1 : 0;
    for (int64_t x = 0; x < ns; x++)
      if (s->spans2[x].k0 != s->spans[x].k0 ||
          s->spans2[x].k1 != s->spans[x].k1 ||
          s->spans2[x].kind != s->spans[x].kind)
        return 0;
  }
  return 1;
}

static void group_tiles(run *R, scratch *s, const tile_task *t) {
  const rt_args *a = R->a;
  int64_t ns = head_spans(R, s, t->b, t->h0, t->r0, t->r0 + t->nr, NULL, 0, &s->spans,
                          &s->span_cap);
  int same = ns < 0 ? -1 : same_spans(R, s, t, ns);
  if (same < 0) return;
  if (!same) {
    for (int64_t h = t->h0; h < t->h0 + t->ng; h++) head_tile(R, s, t, h);
    return;
  }
  group g = {.qt = s->qt, .acc = s->acc, .m = s->m, .l = s->l, .qf = s->qf,
             .mk = shared_words(R, t)};
  for (int64_t x = 0; x < t->ng; x++) {
    int64_t h = t->h0 + x;
    /* each head its own random key sets: one cache, its rows tagged by
     * head, would draw them again at every key tile */
    g.hd[x] = (one_head){run_env(R, t->b, h, s->tk, &s->grnd[x]), q_rows(a, t, h), 0,
                         NULL};
    use_slot(s, &g, x, a->D);
    tile_start(s, a, g.hd[x].q, t->nr);
  }
  for (int64_t r = t->nr; r < KR_BQ; r++) s->rows[r] = 0;
  /* the same gathers as one head a task (head_tile), once for the group */
  gather gk = {0, &g, t->ng};
  bool gathers = a->dtype == RT_F32 && !R->k->stile;
  int ok = walk_tiles(R, s, t, s->spans, ns, group_tile, &g, gathers ? &gk : NULL);
  if (ok) gather_flush(R, s, &gk);
  for (int64_t x = 0; ok && x < t->ng; x++) {
    use_slot(s, &g, x, a->D);
    pend_flush(R, s, g.hd[x].q, t->kb, t->vb, t->nr);
  }
  for (int64_t x = 0; ok && x < t->ng; x++)
    if (s->grnd[x].oom) {
      fail(R, RT_ENOMEM, "%s", "out of memory (random key sets)");
      ok = 0;
    }
  for (int64_t x = 0; ok && x < t->ng; x++) {
    use_slot(s, &g, x, a->D);
    write_rows(R, s, t->b, t->h0 + x, NULL, t->r0, t->nr);
  }
  use_slot(s, &g, -1, a->D);
}

int kr_gqa_group = 1;
int kr_share_spans = 1;
int64_t kr_share_words = KR_MASK_TAB_MAX;

/* Subgroups per GQA group: G (one head a task) without grouping or with
 * top-k (selections per head), else enough that each holds at most
 * KR_GQA_MAX heads whose Q^T and acc fit KR_GQA_BYTES. */
static int64_t gqa_subgroups(const kr_kernel *k, const rt_args *a) {
  int64_t G = a->H > 0 ? a->H / a->Hkv : 1;
  int64_t fit = KR_GQA_BYTES / (2 * k->D * KR_BQ * (int64_t)sizeof(float));
  if (fit > KR_GQA_MAX) fit = KR_GQA_MAX;
  if (!kr_gqa_group || k->n_topk > 0 || fit < 2) return G;
  return (G + fit - 1) / fit;
}

static void task(void *ctx, int64_t id, int worker) {
  run *R = ctx;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed)) return;
  scratch *s = &R->ws[worker];
  tile_task t = task_of(R, id);
  if (t.ng == 1)
    head_tile(R, s, &t, t.h0);
  else
    group_tiles(R, s, &t);
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

/* --- joins: query tiles of a group (plan_groups) ------------------------ */

/* Floats of one query tile's state in scratch.jw: Q^T, acc, m, l. */
static int64_t join_tile_floats(int64_t D) { return 2 * D * KR_BQ + 2 * KR_BQ; }

/* A join tile of at most KR_JTAIL rows (a group's tail) runs through
 * sparse_rows, per row, instead of a padded full tile; float32 only. */
#define KR_JTAIL 12
/* scattered q, k, v rows prefetched this many ahead of their gather */
#define KR_JPF 8

typedef float v4f __attribute__((vector_size(16), aligned(4), may_alias));

static bool sparse_tail(const rt_args *a, int64_t nr) {
  return a->dtype == RT_F32 && a->D % 16 == 0 && nr <= KR_JTAIL;
}

/* The cache lines of one row of n bytes at p, for reading. */
static inline void prefetch_row(const void *p, size_t n) {
  for (size_t x = 0; x < n; x += 64) __builtin_prefetch((const char *)p + x, 0, 3);
}

/* Task id: (b, h, task) with R->join_tiles tasks per head: its rows are
 * grouped rows [x0, x0 + KR_JQ KR_BQ) of one group cut at the group's end
 * (all the group's keys allowed), or of the rows that allow no key.  Each
 * tile's Q^T is gathered once, the group's keys and values a block of
 * R->join_keys at a time (once for the task's tiles), and every tile runs
 * the block's key tiles in key order, as one tile against the whole group. */
static void join_task(void *ctx, int64_t id, int worker) {
  run *R = ctx;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed)) return;
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  scratch *s = &R->ws[worker];
  int64_t D = K->D, t = id % R->join_tiles, bh = id / R->join_tiles;
  int64_t h = bh % a->H, b = bh / a->H, hk = h / (a->H / a->Hkv);
  int64_t hx = R->groups_per_head == 2 ? bh : R->groups_per_head ? h : 0;
  const plan_groups *G = R->groups + hx;
  const join_tiles *T = R->jtiles + hx;
  if (t >= T->n) return;
  int64_t x0 = T->x0[t], g = T->group[t];
  int64_t end = g >= 0 ? G->qs[g + 1] : a->Lq;
  if (end - x0 > KR_JQ * KR_BQ) end = x0 + KR_JQ * KR_BQ;
  int64_t nt = (end - x0 + KR_BQ - 1) / KR_BQ, tf = join_tile_floats(D);
  size_t esz = rt_dtype_size(a->dtype), row = esz * (size_t)D;
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  const char *vb = (const char *)a->v.data + (b * a->v.sb + hk * a->v.sh) * esz;
  scratch v = *s;  /* s with a tile's state in jw, for pack_qt, write_rows */
  for (int64_t u = 0; u < nt; u++) {
    float *w = s->jw + u * tf, *m = w + 2 * D * KR_BQ;
    int64_t r0 = x0 + u * KR_BQ, nr = end - r0 < KR_BQ ? end - r0 : KR_BQ;
    const int64_t *rows = G->qrow + r0;
    if (u == 0) /* the first scattered q rows, then each KR_JPF ahead */
      for (int64_t r = 0; r < KR_JPF && r0 + r < end; r++)
        prefetch_row(qb + rows[r] * a->q.sl * esz, row);
    for (int64_t r = 0; r < nr; r++)
      if (r0 + r + KR_JPF < end) prefetch_row(qb + rows[r + KR_JPF] * a->q.sl * esz, row);
    if (sparse_tail(a, nr)) { /* q rows as they are, row stride D */
      for (int64_t r = 0; r < nr; r++)
        memcpy(w + r * D, qb + rows[r] * a->q.sl * esz, row);
    } else if (a->dtype == RT_F32) {
      if (nr < KR_BQ) memset(w, 0, sizeof(float) * (size_t)(D * KR_BQ));
      int64_t r = 0;
      for (; r + 4 <= nr; r += 4) { /* 4 rows, one 4-float store per d */
        const float *q0 = (const float *)(const void *)(qb + rows[r] * a->q.sl * esz);
        const float *q1 = (const float *)(const void *)(qb + rows[r + 1] * a->q.sl * esz);
        const float *q2 = (const float *)(const void *)(qb + rows[r + 2] * a->q.sl * esz);
        const float *q3 = (const float *)(const void *)(qb + rows[r + 3] * a->q.sl * esz);
        for (int64_t d = 0; d < D; d++)
          *(v4f *)(w + d * KR_BQ + r) = (v4f){q0[d], q1[d], q2[d], q3[d]};
      }
      for (; r < nr; r++) {
        const float *qr = (const float *)(const void *)(qb + rows[r] * a->q.sl * esz);
        for (int64_t d = 0; d < D; d++) w[d * KR_BQ + r] = qr[d];
      }
    } else { /* the rows gathered (16-bit, row stride D), packed as the tile's */
      for (int64_t r = 0; r < nr; r++)
        memcpy((char *)s->qf + (size_t)r * row, qb + rows[r] * a->q.sl * esz, row);
      v.qt = w;
      pack_qt(&v, a->dtype, s->qf, D, nr, D);
    }
    memset(w + D * KR_BQ, 0, sizeof(float) * (size_t)(D * KR_BQ));
    for (int r = 0; r < KR_BQ; r++) m[r] = -INFINITY, m[KR_BQ + r] = 0;
  }
  char *kg = (char *)(s->jw + KR_JQ * tf), *vg = kg + (size_t)R->join_keys * row;
  int64_t k0 = g >= 0 ? G->ks[g] : 0, k1 = g >= 0 ? G->ks[g + 1] : 0;
  for (int64_t y0 = k0; y0 < k1; y0 += R->join_keys) {
    int64_t n = k1 - y0 < R->join_keys ? k1 - y0 : R->join_keys;
    for (int64_t c = 0; c < n; c++) { /* k, v rows of the dtype, stride D */
      if (c + KR_JPF < n) {
        prefetch_row(kb + G->key[y0 + c + KR_JPF] * a->k.sl * esz, row);
        prefetch_row(vb + G->key[y0 + c + KR_JPF] * a->v.sl * esz, row);
      }
      memcpy(kg + (size_t)c * row, kb + G->key[y0 + c] * a->k.sl * esz, row);
      memcpy(vg + (size_t)c * row, vb + G->key[y0 + c] * a->v.sl * esz, row);
    }
    for (int64_t u = 0; u < nt; u++) {
      float *w = s->jw + u * tf, *m = w + 2 * D * KR_BQ;
      int64_t nr = end - x0 - u * KR_BQ < KR_BQ ? end - x0 - u * KR_BQ : KR_BQ;
      for (int64_t y = 0; y < n; y += KR_BK) {
        int64_t nc = n - y < KR_BK ? n - y : KR_BK;
        if (sparse_tail(a, nr)) { /* every key of the block allowed */
          uint64_t all[KR_JTAIL];
          for (int64_t r = 0; r < nr; r++) all[r] = nc >= 64 ? ~0ull : (1ull << nc) - 1;
          kri_sparse_rows(w, D, (const float *)(const void *)(kg + (size_t)y * row), D,
                          (const float *)(const void *)(vg + (size_t)y * row), D, D,
                          all, nr, w + D * KR_BQ, m, m + KR_BQ, R->c);
          continue;
        }
        K->tile(w, kg + (size_t)y * row, D, vg + (size_t)y * row, D, nc, NULL,
                w + D * KR_BQ, m, m + KR_BQ, R->c, s->st);
      }
    }
  }
  for (int64_t u = 0; u < nt; u++) {
    float *w = s->jw + u * tf;
    int64_t r0 = x0 + u * KR_BQ, nr = end - r0 < KR_BQ ? end - r0 : KR_BQ;
    v.acc = w + D * KR_BQ, v.m = w + 2 * D * KR_BQ, v.l = v.m + KR_BQ;
    for (int64_t r = 0; r < nr; r++) /* the scattered o rows, for writing */
      for (size_t x = 0; x < row; x += 64)
        __builtin_prefetch((char *)a->o.data +
                               (size_t)(b * a->o.sb + h * a->o.sh + G->qrow[r0 + r] * a->o.sl) * esz + x,
                           1, 3);
    write_rows(R, &v, b, h, G->qrow + r0, 0, nr);
  }
}

/* The tasks of groups G: each group's rows cut into runs of KR_JQ tiles,
 * then the rows without keys; false when out of memory. */
static bool tile_groups(const plan_groups *G, int64_t Lq, join_tiles *T) {
  const int64_t span = KR_JQ * KR_BQ;
  int64_t n = (Lq - G->n_rows + span - 1) / span;
  for (int64_t g = 0; g < G->n_groups; g++)
    n += (G->qs[g + 1] - G->qs[g] + span - 1) / span;
  T->x0 = malloc(sizeof *T->x0 * (size_t)(n + 1));
  T->group = malloc(sizeof *T->group * (size_t)(n + 1));
  if (!T->x0 || !T->group) return false;
  T->n = 0;
  for (int64_t g = 0; g < G->n_groups; g++)
    for (int64_t x = G->qs[g]; x < G->qs[g + 1]; x += span)
      T->x0[T->n] = x, T->group[T->n++] = g;
  for (int64_t x = G->n_rows; x < Lq; x += span)
    T->x0[T->n] = x, T->group[T->n++] = -1;
  return true;
}

/* Groups the rows and keys of a join (plan_join; route(C) alone: its
 * cluster ids, per (b, h)) and runs its tiles: 1 when done (or failed, in
 * R), 0 when the pattern is no join here. */
static int join_run(run *R, th_pool *pool) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  /* the join's tiles are the plain ones: a pattern with a score runs its
   * score tile through the tile plan instead */
  if (K->stile) return 0;
  int by_route = kr_route_alone(R->route);
  int per = by_route ? 2 : plan_join_reads_head(K->plan);
  int64_t n = per == 2 ? a->B * a->H : per ? a->H : 1, tiles = 0;
  plan_groups *G = calloc((size_t)n, sizeof *G);
  join_tiles *T = calloc((size_t)n, sizeof *T);
  int rc = G && T ? 1 : -1;
  for (int64_t h = 0; h < n && rc == 1; h++) {
    plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs, 0, 0, 0, 0,
                   NULL, NULL};
    rc = by_route ? kr_route_groups(R->route, h / a->H, h % a->H, &G[h])
                  : plan_join(K->plan, &pe, &G[h]);
    if (rc == 1 && !tile_groups(&G[h], a->Lq, &T[h])) rc = -1;
    if (rc == 1 && T[h].n > tiles) tiles = T[h].n;
  }
  /* a gathered key block: k and v rows of at most 512 KiB, whole key tiles,
   * no more than the keys */
  size_t row = rt_dtype_size(a->dtype) * (size_t)K->D;
  int64_t jk = (int64_t)((256u << 10) / row) / KR_BK * KR_BK;
  int64_t lk = (a->Lk + KR_BK - 1) / KR_BK * KR_BK;
  if (jk < KR_BK) jk = KR_BK;
  if (jk > lk) jk = lk;
  int nw = th_size(pool);
  size_t bytes = sizeof(float) * (size_t)(KR_JQ * join_tile_floats(K->D)) + 2 * row * (size_t)jk;
  for (int w = 0; w < nw && rc == 1 && tiles > 0; w++)
    if (!(R->ws[w].jw = aalloc(bytes))) rc = -1;
  if (rc == 1 && tiles > 0) {
    R->groups = G, R->jtiles = T, R->groups_per_head = per;
    R->join_tiles = tiles, R->join_keys = jk;
    th_for(pool, a->B * a->H * tiles, join_task, R);
  }
  for (int w = 0; w < nw; w++) free(R->ws[w].jw), R->ws[w].jw = NULL;
  if (rc < 0) fail(R, RT_ENOMEM, "%s", "out of memory (join groups)");
  for (int64_t h = 0; G && T && h < n; h++) {
    plan_groups_free(&G[h]);
    free(T[h].x0), free(T[h].group);
  }
  free(G), free(T);
  R->groups = NULL, R->jtiles = NULL;
  return rc != 0;
}

/* --- spans shared by the heads ----------------------------------------- */

/* walk_tiles' each for span_task: a masked tile's KR_BQ row words (0 past
 * the tile's rows) appended to c->w. */
typedef struct words_ctx {
  kr_env env;
  uint64_t *w;
  int64_t n, cap;
} words_ctx;

static int words_tile(run *R, scratch *s, const tile_task *t, int64_t j0,
                      int64_t nc, int full, void *ctx) {
  (void)s;
  words_ctx *c = ctx;
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  if (full) return 1;
  if (c->n == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 8;
    uint64_t *w = realloc(c->w, (size_t)cap * KR_BQ * sizeof *w);
    if (!w) return 0; /* no words for this query tile: each head its own */
    c->w = w, c->cap = cap;
  }
  uint64_t *w = c->w + c->n++ * KR_BQ;
  for (int64_t r = 0; r < KR_BQ; r++) {
    w[r] = 0;
    int32_t code = r < t->nr ? K->mask[0](&c->env, pos_of_row(K, a, t->r0 + r),
                                          j0, nc, a->Lq, a->Lk, &w[r])
                             : 0;
    if (code) {
      fail_code(R, code);
      return 0;
    }
  }
  return 1;
}

/* Task id: (batch, query tile) of R->spans: head 0's spans stored, and
 * (within KR_MASK_TAB_MAX words) its masked tiles' row words. */
static void span_task(void *ctx, int64_t id, int worker) {
  run *R = ctx;
  span_tab *T = R->spans;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed) ||
      atomic_load_explicit(&T->total, memory_order_relaxed) > KR_SPAN_TAB_MAX)
    return;
  scratch *s = &R->ws[worker];
  int64_t b = id / R->n_qt, r0 = id % R->n_qt * KR_BQ;
  int64_t r1 = r0 + KR_BQ < R->a->Lq ? r0 + KR_BQ : R->a->Lq;
  int64_t ns = eval_spans(R, s, b, 0, r0, r1, NULL, 0, &s->spans, &s->span_cap);
  if (ns <= 0) return;
  if (atomic_fetch_add(&T->total, ns) + ns > KR_SPAN_TAB_MAX) return;
  if (!(T->sp[id] = malloc((size_t)ns * sizeof **T->sp))) {
    atomic_store(&T->total, KR_SPAN_TAB_MAX + 1); /* dropped */
    return;
  }
  memcpy(T->sp[id], s->spans, (size_t)ns * sizeof **T->sp);
  T->n[id] = ns;
  if (!T->mk) return;
  tile_task tt = {.b = b, .r0 = r0, .nr = r1 - r0};
  words_ctx wc = {run_env(R, b, 0, s->tk, &s->rnd), NULL, 0, 0};
  if (walk_tiles(R, s, &tt, T->sp[id], ns, words_tile, &wc, NULL) && wc.n &&
      atomic_fetch_add(&T->words, wc.n * KR_BQ) + wc.n * KR_BQ <= kr_share_words) {
    T->mk[id] = wc.w;
    wc.w = NULL;
  }
  free(wc.w);
}

static void span_tab_free(span_tab *T, int64_t n) {
  for (int64_t x = 0; T && T->sp && x < n; x++) free(T->sp[x]);
  for (int64_t x = 0; T && T->mk && x < n; x++) free(T->mk[x]);
  if (T) free(T->sp), free(T->n), free(T->mk);
  free(T);
}

/* R->spans for a plan that reads no head and selects no top-k, when more
 * than one head would evaluate it: at most KR_SPAN_TAB_MAX spans, else
 * (or out of memory) none and each head evaluates its own. */
static void share_spans(run *R, th_pool *pool) {
  const rt_args *a = R->a;
  const int64_t *P = R->k->plan;
  int64_t nb = plan_reads_batch(P) ? a->B : 1;
  if (!kr_share_spans || plan_reads_head(P) || R->k->n_topk > 0 ||
      a->H * a->B / nb < 2)
    return;
  span_tab *T = calloc(1, sizeof *T);
  int64_t n = nb * R->n_qt;
  if (!T || !(T->sp = calloc((size_t)n, sizeof *T->sp)) ||
      !(T->n = calloc((size_t)n, sizeof *T->n))) {
    span_tab_free(T, 0);
    return;
  }
  T->nb = nb;
  T->mk = calloc((size_t)n, sizeof *T->mk); /* NULL: no shared words */
  R->spans = T;
  th_for(pool, n, span_task, R);
  if (atomic_load(&T->total) > KR_SPAN_TAB_MAX) { /* too many: per head */
    R->spans = NULL;
    span_tab_free(T, n);
  }
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
  R.topk_root = kri_topk_root(k);
  float scale = a->scale != 0 ? a->scale : 1.0f / sqrtf((float)a->D);
  R.scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  R.c = scale * 1.44269504088896340736f;
  R.err = err;
  R.errlen = errlen;
  R.n_sub = gqa_subgroups(k, a);
  int nw = pool ? th_size(pool) : 0;
  R.ws = nw ? calloc((size_t)nw, sizeof *R.ws) : NULL;
  rt_status rst;
  plan_rows *rows = plan_rows_new(k->plan, a, &rst);
  R.rows = rows;
  int ok = R.ws != NULL && rst == RT_OK;
  for (int w = 0; ok && w < nw; w++) {
    ok = scratch_init(&R.ws[w], k);
    if (ok && R.n_sub < a->H / a->Hkv)
      ok = (R.ws[w].grp = aalloc(KR_GQA_MAX * (size_t)KR_GQA_SLOT(k->D) *
                                 sizeof(float))) != NULL &&
           (R.ws[w].gpd = calloc(KR_GQA_MAX, sizeof(pend))) != NULL;
  }
  kr_route *route = ok ? kr_route_new(k, a, pool, &st) : NULL;
  R.route = route;
  if (ok && st != RT_OK) {
    if (err && errlen) snprintf(err, errlen, "out of memory (route cluster ids)");
  } else if (ok) {
    if (!join_run(&R, pool)) {
      share_spans(&R, pool);
      if (!atomic_load(&R.failed))
        th_for(pool, a->B * a->Hkv * R.n_qt * R.n_sub, task, &R);
      span_tab_free(R.spans, R.spans ? R.spans->nb * R.n_qt : 0);
      R.spans = NULL;
    }
    if (atomic_load(&R.failed)) st = R.st;
    else if (atomic_load(&R.score_bad)) st = kr_score_error(k, a, err, errlen);
  } else {
    st = RT_ENOMEM;
    if (err && errlen) snprintf(err, errlen, "out of memory");
  }
  if (R.ws)
    for (int w = 0; w < nw; w++) scratch_free(&R.ws[w], k->n_topk);
  free(R.ws);
  plan_rows_free(rows);
  kr_route_free(route);
  kr_pool_give(k, own);
  return st;
}

const char *kr_check_args(const kr_kernel *k, const rt_args *a, char *buf,
                          size_t n) {
  return check_args(k, a, buf, n);
}

/* --- the forward's masks for other drivers (kernel_rt.h) ---------------- */

struct kr_masker {
  run R;      /* only k, a and scale are used (by kri_topk_rows) */
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
  *env = run_env(&m->R, b, h, m->s.tk, &m->s.rnd);
  if (!select) return 1;
  size_t esz = rt_dtype_size(a->dtype);
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  for (int t = 0; t < m->R.k->n_topk; t++)
    if (!kri_topk_rows(&m->R, &m->s, t, env, qb, kb, pos_of_row(m->R.k, a, r0),
                   pos_of_row(m->R.k, a, r1 - 1), b, hk))
      return 0;
  return 1;
}

int kr_masker_oom(const kr_masker *m) { return m->s.rnd.oom; }

void kr_masker_route(kr_masker *m, const kr_route *r, const plan_rows *rows) {
  m->R.route = r;
  m->R.rows = rows;
}

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

void kr_error_text_det(const kr_kernel *k, int32_t code, const int64_t det[2],
                       char *buf, size_t n) {
  format_err(k, code, det, buf, n);
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
