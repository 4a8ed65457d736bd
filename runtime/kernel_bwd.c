/* kernel_bwd.c: the backward driver of compiled kernels (kr_run_backward,
 * kernel_rt.h), FlashAttention-2 style, on the generated tiles bwd_dq and
 * bwd_dkdv (kr_bwd_fn) and the pattern's own mask code and tile plan.
 *
 *   0. the contract's run-time errors, as the forward finds them;
 *   1. per head h (in parallel): the pairs (query tile, key tile of KR_BK
 *      keys aligned at multiples of KR_BK) the forward's plan visits, each
 *      FULL (inside one PLAN_FULL span: no mask work) or partial, from
 *      plan_tiles per query tile; then the same pairs by key tile (the
 *      transposed plan) by a counting sort.  Memory: O(pairs), never
 *      Lq x Lk;
 *   2. dQ over (b, h, query tile): per row lse log2 e and Delta - dlse
 *      (Delta = do . o) kept for pass 3; top-k selections made by the
 *      forward's code (kr_masker_rows) and recorded; dq += dS K per pair;
 *   3. dK, dV over (b, kv head, key tile): every query head of the group,
 *      every query tile of the transposed plan; dk += dS^T Q, dv += P^T dO.
 * Fused, when the (b, kv head) pairs alone keep every worker busy (4 per
 * worker, or one worker): pass 2 only prepares (row constants, top-k
 * records) and pass 3 runs one task per (b, kv head) over all its key
 * tiles, owning its heads' dq rows too, so the dkdv tile adds dS K into dq
 * from the same dS (10 D flops a pair instead of 14 D).
 * Each task owns the rows it writes (no atomics).  Partial pairs get the
 * forward's mask words (mask_0 per row, transposed to key words); a pair no
 * row allows is skipped, one every row allows runs unmasked.
 *
 * Top-k: the selection of a query tile is recomputed by the forward's code
 * once, in pass 2, and recorded (O(B H Lq k) words) for pass 3, which would
 * otherwise select again for every key tile it visits.
 *
 * With score E (k->stile): the pattern's score tiles (kr_sbwd_fn) instead,
 * rows past a query tile masked; the float inputs' gradients summed per
 * worker in double by the dkdv tile (every pair once), then over workers.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_rt.h"
#include "plan_sets.h"
#include "plan.h"
#include "route.h"
#include "threads.h"

/* The pairs of one head: by query tile (fwd) and by key tile (inv), CSR;
 * an entry is 2 * tile + full. */
typedef struct hplan {
  int64_t *qoff, *qe; /* n_qt + 1 offsets; entries (key tiles) */
  int64_t *koff, *ke; /* n_kt + 1 offsets; entries (query tiles) */
  int64_t n;
} hplan;

/* dkdv's packed query tiles, kept per worker: the key tiles after this one
 * visit mostly the same query tiles.  Direct-mapped, PC_N slots. */
#define PC_N 32
typedef struct pslot {
  int64_t b, h, qt;  /* qt -1: empty */
  float *buf;        /* Q^T, dO^T, Q, dO: 4 KR_BQ D floats */
} pslot;

typedef struct wscr {
  float *qt, *dot, *qr, *dor; /* [D][KR_BQ] x 2, [KR_BQ][D] x 2 */
  pslot pc[PC_N];
  float *own[4];              /* dq's Q^T, dO^T, Q, dO */
  float *ga, *gb, *gq;        /* [KR_BQ][D] accumulators */
  float *st;                  /* 4 KR_BK KR_BQ */
  double **gin;               /* score: per input, its gradient, or NULL */
  float rowc[2 * KR_BQ];
  uint64_t rows[KR_BQ], cols[KR_BK];
  plan_span *spans;
  int64_t span_cap;
  kr_masker *mk;
} wscr;

typedef struct bjob {
  kr_kernel *k;
  kr_bwd_fn dq, dkdv;
  const rt_args *a;
  const rt_grad *g;
  int64_t n_qt, n_kt, grp;
  int fused;       /* pass 2 only prepares; pass 3 per (b, kv head) */
  float c, scale;
  hplan *hp;       /* per head */
  const struct plan_rows *rows; /* the run's rows table (plan_sets.h) */
  float *rowc;     /* [B H n_qt][2 KR_BQ] */
  kr_topk **rec;   /* [B H n_qt] recorded selections (top-k patterns) */
  wscr *ws;        /* per worker */
  const kr_route *route; /* route(C)'s cluster ids (route.h), or NULL */
  _Atomic int failed;
  _Atomic int score_bad;  /* a score tile flagged a float input index */
  int64_t *in_len;        /* score with dinputs: elements per input, else NULL */
  rt_status st;
  char *err;
  size_t errlen;
} bjob;

static void *aalloc(size_t n) {
  n = (n + 63) / 64 * 64;
  return aligned_alloc(64, n ? n : 64);
}

static void bfail(bjob *J, rt_status st, const char *msg) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&J->failed, &expect, 1)) return;
  J->st = st;
  rt_errf(J->err, J->errlen, st, "%s", msg);
}

static inline int64_t pos_of_row(const kr_kernel *K, const rt_args *a,
                                 int64_t r) {
  return r + plan_row_offset(K->plan, a->Lq, a->Lk);
}

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

/* --- 1. the pairs of a head ---------------------------------------------- */

static int push(int64_t **v, int64_t *n, int64_t *cap, int64_t x) {
  if (*n == *cap) {
    int64_t c = *cap ? 2 * *cap : 256;
    int64_t *p = realloc(*v, (size_t)c * sizeof *p);
    if (!p) return 0;
    *v = p, *cap = c;
  }
  (*v)[(*n)++] = x;
  return 1;
}

/* The spans of rows [r0, r1) of head h into w->spans; -1 on failure. */
static int64_t spans_of(bjob *J, wscr *w, int64_t h, int64_t r0, int64_t r1) {
  const rt_args *a = J->a;
  /* one plan per head for every batch: no b (B = 0), so what the plan
   * would decide per batch is PARTIAL, decided by the mask code */
  plan_env pe = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs, 0, 0, 0, 0,
                 J->rows, NULL};
  char perr[256] = "";
  for (;;) {
    int64_t ns = plan_tiles(J->k->plan, &pe, r0, r1, w->spans, w->span_cap,
                            perr, sizeof perr);
    if (ns < 0) {
      bfail(J, RT_ERANGE, perr[0] ? perr : "run-time error in the plan");
      return -1;
    }
    if (ns <= w->span_cap) return ns;
    plan_span *sp = realloc(w->spans, (size_t)ns * sizeof *sp);
    if (!sp) {
      bfail(J, RT_ENOMEM, "out of memory (plan spans)");
      return -1;
    }
    w->spans = sp;
    w->span_cap = ns;
  }
}

static void plan_task(void *ctx, int64_t h, int worker) {
  bjob *J = ctx;
  if (atomic_load_explicit(&J->failed, memory_order_relaxed)) return;
  const rt_args *a = J->a;
  wscr *w = &J->ws[worker];
  hplan *hp = &J->hp[h];
  int64_t cap = 0;
  hp->qoff = calloc((size_t)J->n_qt + 1, sizeof *hp->qoff);
  hp->koff = calloc((size_t)J->n_kt + 2, sizeof *hp->koff);
  if (!hp->qoff || !hp->koff) goto oom;
  for (int64_t qt = 0; qt < J->n_qt; qt++) {
    int64_t r0 = qt * KR_BQ, r1 = min64(r0 + KR_BQ, a->Lq);
    int64_t ns = spans_of(J, w, h, r0, r1), last = -1;
    if (ns < 0) return;
    for (int64_t x = 0; x < ns; x++) {
      const plan_span *sp = &w->spans[x];
      for (int64_t kt = sp->k0 / KR_BK; kt * KR_BK < sp->k1; kt++) {
        int64_t j0 = kt * KR_BK, j1 = min64(j0 + KR_BK, a->Lk);
        int full = sp->kind == PLAN_FULL && sp->k0 <= j0 && sp->k1 >= j1;
        if (kt == last) {  /* a tile shared by touching spans: partial */
          hp->qe[hp->n - 1] &= ~(int64_t)1;
          continue;
        }
        if (!push(&hp->qe, &hp->n, &cap, 2 * kt + full)) goto oom;
        hp->koff[kt + 2]++;
        last = kt;
      }
    }
    hp->qoff[qt + 1] = hp->n;
  }
  /* counting sort by key tile: koff[kt + 1] becomes the start of kt */
  for (int64_t kt = 0; kt < J->n_kt; kt++) hp->koff[kt + 2] += hp->koff[kt + 1];
  hp->ke = malloc((size_t)(hp->n ? hp->n : 1) * sizeof *hp->ke);
  if (!hp->ke) goto oom;
  for (int64_t qt = 0; qt < J->n_qt; qt++)
    for (int64_t x = hp->qoff[qt]; x < hp->qoff[qt + 1]; x++) {
      int64_t kt = hp->qe[x] >> 1, full = hp->qe[x] & 1;
      hp->ke[hp->koff[kt + 1]++] = 2 * qt + full;
    }
  return;
oom:
  bfail(J, RT_ENOMEM, "out of memory (backward tile plan)");
}

static void hplan_free(hplan *hp) {
  free(hp->qoff), free(hp->qe), free(hp->koff), free(hp->ke);
}

/* --- query tiles ------------------------------------------------------------ */

/* Q, dO of query tile qt of (b, h) into w's qr, dor, and transposed into
 * its qt, dot; rows past the tile zero. */
static void pack(bjob *J, wscr *w, int64_t b, int64_t h, int64_t qt);

/* dkdv: w's tile pointers at the packed query tile qt of (b, h), packed
 * now unless its slot holds it. */
static void pack_cached(bjob *J, wscr *w, int64_t b, int64_t h, int64_t qt) {
  size_t n = (size_t)J->a->D * KR_BQ;
  pslot *p = &w->pc[(qt + 8 * (h % 4)) % PC_N];
  w->qt = p->buf, w->dot = p->buf + n, w->qr = p->buf + 2 * n;
  w->dor = p->buf + 3 * n;
  if (p->qt == qt && p->h == h && p->b == b) return;
  pack(J, w, b, h, qt);
  p->b = b, p->h = h, p->qt = qt;
}

/* dst[d][KR_BQ] = src[r][D] transposed, 16 x 16 blocks (writes of whole
 * lines, reads from 16 rows in L1). */
static void transpose_tile(float *restrict dst, const float *restrict src,
                           int64_t D) {
  for (int64_t r0 = 0; r0 < KR_BQ; r0 += 16)
    for (int64_t d0 = 0; d0 < D; d0 += 16)
      for (int64_t d = d0; d < d0 + 16; d++)
        for (int64_t r = r0; r < r0 + 16; r++)
          dst[d * KR_BQ + r] = src[r * D + d];
}

static void pack(bjob *J, wscr *w, int64_t b, int64_t h, int64_t qt) {
  const rt_args *a = J->a;
  const rt_grad *g = J->g;
  int64_t D = a->D, r0 = qt * KR_BQ, nr = min64(KR_BQ, a->Lq - r0);
  const float *qb = a->q.data + b * a->q.sb + h * a->q.sh + r0 * a->q.sl;
  const float *db =
      g->dout.data + b * g->dout.sb + h * g->dout.sh + r0 * g->dout.sl;
  size_t row = (size_t)D * sizeof(float);
  for (int64_t r = 0; r < KR_BQ; r++) {
    if (r < nr) {
      memcpy(w->qr + r * D, qb + r * a->q.sl, row);
      memcpy(w->dor + r * D, db + r * g->dout.sl, row);
    } else {
      memset(w->qr + r * D, 0, row);
      memset(w->dor + r * D, 0, row);
    }
  }
  transpose_tile(w->qt, w->qr, D);
  transpose_tile(w->dot, w->dor, D);
}

/* Per row of query tile qt of (b, h): lse log2 e (+inf: past the tile or
 * no allowed key, so P = 0), then Delta - dlse, into out[2 KR_BQ]. */
static void row_consts(bjob *J, int64_t b, int64_t h, int64_t qt, float *out) {
  const rt_args *a = J->a;
  const rt_grad *g = J->g;
  int64_t D = a->D, r0 = qt * KR_BQ, nr = min64(KR_BQ, a->Lq - r0);
  for (int64_t r = 0; r < KR_BQ; r++) {
    out[r] = INFINITY, out[KR_BQ + r] = 0;
    if (r >= nr) continue;
    int64_t li = b * a->lse_sb + h * a->lse_sh + r0 + r;
    float lse = a->lse[li];
    if (lse == -INFINITY) continue;
    const float *o = a->o.data + b * a->o.sb + h * a->o.sh + (r0 + r) * a->o.sl;
    const float *d = g->dout.data + b * g->dout.sb + h * g->dout.sh +
                     (r0 + r) * g->dout.sl;
    double delta = 0;
    for (int64_t x = 0; x < D; x++) delta += (double)o[x] * (double)d[x];
    if (g->dlse) delta -= (double)g->dlse[li];
    out[r] = lse * 1.44269504088896340736f;
    out[KR_BQ + r] = (float)delta;
  }
}

/* The key words of the partial pair (query tile qt, key tile kt) into
 * w->cols; returns 0: no row allows a key, 1: masked (maskt = w->cols),
 * 2: every row allows every key; -1: failed. */
static int pair_mask(bjob *J, wscr *w, const kr_env *env, int64_t qt,
                     int64_t kt) {
  const kr_kernel *K = J->k;
  const rt_args *a = J->a;
  int64_t r0 = qt * KR_BQ, nr = min64(KR_BQ, a->Lq - r0);
  int64_t j0 = kt * KR_BK, nc = min64(KR_BK, a->Lk - j0);
  uint64_t any = 0, all = ~0ull, valid = nc >= 64 ? ~0ull : (1ull << nc) - 1;
  for (int64_t r = 0; r < KR_BQ; r++) {
    w->rows[r] = 0;
    if (r >= nr) continue;
    int32_t code = K->mask[0](env, pos_of_row(K, a, r0 + r), j0, nc, a->Lq, a->Lk,
                              &w->rows[r]);
    if (code) {
      char msg[1024];
      kr_error_text(K, code, msg, sizeof msg);
      bfail(J, code <= K->n_errors ? RT_ERANGE : RT_EINTERNAL, msg);
      return -1;
    }
    any |= w->rows[r];
    all &= w->rows[r];
  }
  if (!any) return 0;
  if (all == valid) return 2;
  memcpy(w->cols, w->rows, sizeof w->cols);
  kr_transpose64(w->cols);
  return 1;
}

/* The score tiles' words for "every row of the tile" (rows [0, nr)): E
 * reads inputs at the rows' positions, so rows past the tile stay masked. */
static const uint64_t *rows_all(wscr *w, int64_t nr) {
  for (int x = 0; x < KR_BK; x++) w->cols[x] = nr >= 64 ? ~0ull : (1ull << nr) - 1;
  return w->cols;
}

/* --- 2. dQ ---------------------------------------------------------------- */

static void dq_task(void *ctx, int64_t id, int worker) {
  bjob *J = ctx;
  if (atomic_load_explicit(&J->failed, memory_order_relaxed)) return;
  const kr_kernel *K = J->k;
  const rt_args *a = J->a;
  wscr *w = &J->ws[worker];
  int64_t D = a->D, qt = id % J->n_qt, bh = id / J->n_qt;
  int64_t h = bh % a->H, b = bh / a->H, hk = h / J->grp;
  int64_t r0 = qt * KR_BQ, r1 = min64(r0 + KR_BQ, a->Lq);
  float *rc = J->rowc + id * 2 * KR_BQ;
  row_consts(J, b, h, qt, rc);
  kr_env env;
  if (!kr_masker_rows(w->mk, b, h, r0, r1, K->n_topk > 0, &env)) {
    bfail(J, RT_ENOMEM, "out of memory (top-k selection)");
    return;
  }
  if (K->n_topk > 0 && !(J->rec[id] = kr_masker_record(w->mk))) {
    bfail(J, RT_ENOMEM, "out of memory (top-k selection)");
    return;
  }
  if (J->fused) return; /* dq comes from the fused pass */
  w->qt = w->own[0], w->dot = w->own[1];
  w->qr = w->own[2], w->dor = w->own[3];
  pack(J, w, b, h, qt);
  memset(w->ga, 0, (size_t)(KR_BQ * D) * sizeof(float));
  const hplan *hp = &J->hp[h];
  const float *kb = a->k.data + b * a->k.sb + hk * a->k.sh;
  const float *vb = a->v.data + b * a->v.sb + hk * a->v.sh;
  for (int64_t x = hp->qoff[qt]; x < hp->qoff[qt + 1]; x++) {
    int64_t kt = hp->qe[x] >> 1, j0 = kt * KR_BK;
    int64_t nc = min64(KR_BK, a->Lk - j0);
    int m = hp->qe[x] & 1 ? 2 : pair_mask(J, w, &env, qt, kt);
    if (m < 0) return;
    if (m == 0) continue;
    const uint64_t *mt = m == 1 ? w->cols : NULL;
    if (!K->sbwd_dq)
      J->dq(w->qt, w->dot, NULL, NULL, rc, kb + j0 * a->k.sl, a->k.sl,
            vb + j0 * a->v.sl, a->v.sl, nc, mt, w->ga, NULL, NULL, J->c, w->st);
    else if (K->sbwd_dq(&env, pos_of_row(K, a, r0), j0, NULL, w->qt, w->dot, NULL,
                        NULL, rc, kb + j0 * a->k.sl, a->k.sl, vb + j0 * a->v.sl,
                        a->v.sl, nc, mt ? mt : rows_all(w, r1 - r0), w->ga, NULL,
                        NULL, J->c, w->st))
      atomic_store(&J->score_bad, 1);
  }
  if (kr_masker_oom(w->mk)) {
    bfail(J, RT_ENOMEM, "out of memory (random key sets)");
    return;
  }
  const rt_tensor *dq = &J->g->dq;
  for (int64_t r = 0; r < r1 - r0; r++) {
    float *o = dq->data + b * dq->sb + h * dq->sh + (r0 + r) * dq->sl;
    for (int64_t d = 0; d < D; d++) o[d] = J->scale * w->ga[r * D + d];
  }
}

/* --- 3. dK, dV -------------------------------------------------------------- */

/* Key tile kt of (b, kv head hk): dk, dv over every query tile of the
 * group's heads that attends it; fused: dq of those query tiles too, added
 * into dq (whose rows the fused task owns).  0: failed. */
static int key_tile(bjob *J, wscr *w, int64_t b, int64_t hk, int64_t kt) {
  const kr_kernel *K = J->k;
  const rt_args *a = J->a;
  const rt_tensor *dq = &J->g->dq;
  int64_t D = a->D, j0 = kt * KR_BK, nc = min64(KR_BK, a->Lk - j0);
  const float *kt_ = a->k.data + b * a->k.sb + hk * a->k.sh + j0 * a->k.sl;
  const float *vt = a->v.data + b * a->v.sb + hk * a->v.sh + j0 * a->v.sl;
  memset(w->ga, 0, (size_t)(KR_BK * D) * sizeof(float));
  memset(w->gb, 0, (size_t)(KR_BK * D) * sizeof(float));
  for (int64_t h = hk * J->grp; h < (hk + 1) * J->grp; h++) {
    const hplan *hp = &J->hp[h];
    for (int64_t x = hp->koff[kt]; x < hp->koff[kt + 1]; x++) {
      int64_t qt = hp->ke[x] >> 1, qid = (b * a->H + h) * J->n_qt + qt;
      int64_t r0 = qt * KR_BQ, nr = min64(KR_BQ, a->Lq - r0);
      int m = 2;
      kr_env env;
      if (!(hp->ke[x] & 1) || K->sbwd_dkdv) {
        kr_masker_rows(w->mk, b, h, r0, r0 + nr, 0, &env);
        if (K->n_topk > 0) env.topk = J->rec[qid];
      }
      if (!(hp->ke[x] & 1)) m = pair_mask(J, w, &env, qt, kt);
      if (m < 0) return 0;
      if (m == 0) continue;
      pack_cached(J, w, b, h, qt);
      /* fused: dS K summed unscaled into dq's rows, in place when they are
       * KR_BQ rows D floats apart, else through w->gq */
      float *dqr = dq->data + b * dq->sb + h * dq->sh + r0 * dq->sl;
      int direct = J->fused && dq->sl == D && nr == KR_BQ;
      float *gq = !J->fused ? NULL : direct ? dqr : w->gq;
      if (J->fused && !direct)
        memset(w->gq, 0, (size_t)(KR_BQ * D) * sizeof(float));
      const float *rc = J->rowc + qid * 2 * KR_BQ;
      const uint64_t *mt = m == 1 ? w->cols : NULL;
      if (!K->sbwd_dkdv)
        J->dkdv(w->qt, w->dot, w->qr, w->dor, rc, kt_, a->k.sl, vt, a->v.sl,
                nc, mt, w->ga, w->gb, gq, J->c, w->st);
      else if (K->sbwd_dkdv(&env, pos_of_row(K, a, r0), j0, w->gin, w->qt, w->dot,
                            w->qr, w->dor, rc, kt_, a->k.sl, vt, a->v.sl, nc,
                            mt ? mt : rows_all(w, nr), w->ga, w->gb, gq, J->c,
                            w->st))
        atomic_store(&J->score_bad, 1);
      for (int64_t r = 0; J->fused && !direct && r < nr; r++)
        for (int64_t d = 0; d < D; d++) dqr[r * dq->sl + d] += w->gq[r * D + d];
    }
  }
  if (kr_masker_oom(w->mk)) {
    bfail(J, RT_ENOMEM, "out of memory (random key sets)");
    return 0;
  }
  const rt_tensor *dk = &J->g->dk, *dv = &J->g->dv;
  for (int64_t j = 0; j < nc; j++) {
    float *ko = dk->data + b * dk->sb + hk * dk->sh + (j0 + j) * dk->sl;
    float *vo = dv->data + b * dv->sb + hk * dv->sh + (j0 + j) * dv->sl;
    for (int64_t d = 0; d < D; d++)
      ko[d] = J->scale * w->ga[j * D + d], vo[d] = w->gb[j * D + d];
  }
  return 1;
}

static void dkdv_task(void *ctx, int64_t id, int worker) {
  bjob *J = ctx;
  if (atomic_load_explicit(&J->failed, memory_order_relaxed)) return;
  int64_t kt = id % J->n_kt, bk = id / J->n_kt;
  key_tile(J, &J->ws[worker], bk / J->a->Hkv, bk % J->a->Hkv, kt);
}

/* The fused pass: one task per (b, kv head) owns its dk, dv and the dq rows
 * of its group's heads, so dq comes from the dkdv tile's dS (10 D flops a
 * pair instead of 14 D) without atomics. */
static void fused_task(void *ctx, int64_t bk, int worker) {
  bjob *J = ctx;
  const rt_args *a = J->a;
  const rt_tensor *dq = &J->g->dq;
  int64_t b = bk / a->Hkv, hk = bk % a->Hkv;
  for (int64_t h = hk * J->grp; h < (hk + 1) * J->grp; h++)
    for (int64_t r = 0; r < a->Lq; r++)
      memset(dq->data + b * dq->sb + h * dq->sh + r * dq->sl, 0,
             (size_t)a->D * sizeof(float));
  for (int64_t kt = 0; kt < J->n_kt; kt++) {
    if (atomic_load_explicit(&J->failed, memory_order_relaxed)) return;
    if (!key_tile(J, &J->ws[worker], b, hk, kt)) return;
  }
  for (int64_t h = hk * J->grp; h < (hk + 1) * J->grp; h++)
    for (int64_t r = 0; r < a->Lq; r++) {
      float *o = dq->data + b * dq->sb + h * dq->sh + r * dq->sl;
      for (int64_t d = 0; d < a->D; d++) o[d] *= J->scale;
    }
}

/* --- entry -------------------------------------------------------------- */

static int wscr_init(wscr *w, kr_kernel *k, const rt_args *a,
                     const int64_t *in_len) {
  size_t n = (size_t)a->D * KR_BQ * sizeof(float);
  memset(w, 0, sizeof *w);
  int ok = 1;
  if (in_len) { /* the score's input gradients */
    ok = (w->gin = calloc((size_t)k->n_inputs, sizeof *w->gin)) != NULL;
    for (int x = 0; ok && x < k->n_inputs; x++)
      if (in_len[x] >= 0)
        ok = (w->gin[x] = calloc((size_t)(in_len[x] ? in_len[x] : 1), sizeof(double))) != NULL;
  }
  for (int x = 0; x < 4; x++) ok = ok && (w->own[x] = aalloc(n));
  for (int x = 0; x < PC_N; x++) {
    w->pc[x].qt = -1;
    ok = ok && (w->pc[x].buf = aalloc(4 * n));
  }
  w->ga = aalloc(n), w->gb = aalloc(n), w->gq = aalloc(n);
  w->st = aalloc(4 * KR_BK * KR_BQ * sizeof(float));
  w->span_cap = 64;
  w->spans = malloc((size_t)w->span_cap * sizeof *w->spans);
  w->mk = kr_masker_new(k, a);
  return ok && w->ga && w->gb && w->gq && w->st && w->spans && w->mk;
}

static void wscr_free(wscr *w, int n_inputs) {
  for (int x = 0; w->gin && x < n_inputs; x++) free(w->gin[x]);
  free(w->gin);
  for (int x = 0; x < 4; x++) free(w->own[x]);
  free(w->ga), free(w->gq);
  for (int x = 0; x < PC_N; x++) free(w->pc[x].buf);
  free(w->gb), free(w->st), free(w->spans);
  kr_masker_free(w->mk);
}

/* The workers' sums of the float inputs' gradients into g->dinputs. */
static void sum_dinputs(bjob *J, int nw) {
  for (int x = 0; x < J->k->n_inputs; x++)
    for (int64_t e = 0; J->in_len[x] >= 0 && e < J->in_len[x]; e++) {
      double t = 0;
      for (int w = 0; w < nw; w++) t += J->ws[w].gin[x][e];
      J->g->dinputs[x][e] = (float)t;
    }
}

/* Score with dinputs: the elements of each asked-for float input into
 * J->in_len (-1: not asked), or a status. */
static rt_status input_lengths(bjob *J) {
  const kr_kernel *K = J->k;
  const rt_args *a = J->a;
  if (!K->sbwd_dkdv || !J->g->dinputs || K->n_inputs == 0) return RT_OK;
  J->in_len = malloc((size_t)K->n_inputs * sizeof *J->in_len);
  if (!J->in_len) return RT_ENOMEM;
  kr_env env = kr_env_at(a, 0, 0);
  for (int x = 0; x < K->n_inputs; x++) {
    int64_t n = K->inlen(&env, x);
    J->in_len[x] = J->g->dinputs[x] && n > 0 ? n : -1;
  }
  return RT_OK;
}

static rt_status run_passes(bjob *J, th_pool *pool) {
  const rt_args *a = J->a;
  int nw = th_size(pool);
  int64_t n_q = a->B * a->H * J->n_qt;
  J->ws = calloc((size_t)nw, sizeof *J->ws);
  J->hp = calloc((size_t)a->H, sizeof *J->hp);
  J->rowc = malloc((size_t)n_q * 2 * KR_BQ * sizeof(float));
  J->rec = J->k->n_topk > 0 ? calloc((size_t)n_q, sizeof *J->rec) : NULL;
  int ok = J->ws && J->hp && J->rowc && (J->k->n_topk == 0 || J->rec);
  for (int w = 0; ok && w < nw; w++) {
    ok = wscr_init(&J->ws[w], J->k, a, J->in_len);
    if (ok) kr_masker_route(J->ws[w].mk, J->route, J->rows);
  }
  if (!ok) bfail(J, RT_ENOMEM, "out of memory");
  if (ok) th_for(pool, a->H, plan_task, J);
  if (!atomic_load(&J->failed)) th_for(pool, n_q, dq_task, J);
  if (!atomic_load(&J->failed) && J->fused)
    th_for(pool, a->B * a->Hkv, fused_task, J);
  else if (!atomic_load(&J->failed))
    th_for(pool, a->B * a->Hkv * J->n_kt, dkdv_task, J);
  if (!atomic_load(&J->failed) && J->in_len) sum_dinputs(J, nw);
  for (int w = 0; J->ws && w < nw; w++) wscr_free(&J->ws[w], J->k->n_inputs);
  for (int64_t h = 0; J->hp && h < a->H; h++) hplan_free(&J->hp[h]);
  for (int64_t x = 0; J->rec && x < n_q; x++) free(J->rec[x]);
  free(J->ws), free(J->hp), free(J->rowc), free(J->rec);
  return atomic_load(&J->failed) ? J->st : RT_OK;
}

rt_status kr_run_backward(kr_kernel *k, kr_bwd_fn dq, kr_bwd_fn dkdv,
                          const rt_args *a, const rt_grad *g, char *err,
                          size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!k || !a || !g || !dq || !dkdv)
    return rt_errf(err, errlen, RT_EINVAL,
                   "NULL kernel, tiles, arguments or gradients");
  if (k->stile && !k->sbwd_dkdv) /* the generic tiles would drop E */
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "this kernel has no backward tiles for its `with score` "
                   "(the interpreter backend computes it)");
  char buf[160];
  const char *bad = kr_check_args(k, a, buf, sizeof buf);
  if (bad) return rt_errf(err, errlen, RT_EINVAL, "%s", bad);
  if (rt_grad_empty(a, g)) return RT_OK;
  if (!a->lse || !g->dout.data || !g->dq.data || !g->dk.data || !g->dv.data)
    return rt_errf(err, errlen, RT_EINVAL, "missing lse or gradient tensor");
  th_pool *own, *pool = kr_pool_take(k, a->threads, &own);
  rt_status st = kr_check_errors(k, a, pool, err, errlen);
  if (st == RT_OK) {
    bjob J;
    memset(&J, 0, sizeof J);
    J.k = k, J.dq = dq, J.dkdv = dkdv, J.a = a, J.g = g;
    J.n_qt = (a->Lq + KR_BQ - 1) / KR_BQ;
    J.n_kt = (a->Lk + KR_BK - 1) / KR_BK;
    J.grp = a->H / a->Hkv;
    /* fused when the (b, kv head) tasks keep every worker busy */
    J.fused = a->B * a->Hkv >= 4 * (int64_t)th_size(pool) ||
              th_size(pool) == 1;
    J.scale = a->scale != 0 ? a->scale : 1.0f / sqrtf((float)a->D);
    J.c = J.scale * 1.44269504088896340736f;
    J.err = err, J.errlen = errlen;
    atomic_init(&J.failed, 0);
    atomic_init(&J.score_bad, 0);
    plan_rows *rows = plan_rows_new(k->plan, a, &st);
    J.rows = rows;
    kr_route *route = st == RT_OK ? kr_route_new(k, a, pool, &st) : NULL;
    J.route = route;
    if (st == RT_OK) st = input_lengths(&J);
    if (st != RT_OK) st = rt_errf(err, errlen, st, "out of memory");
    else st = run_passes(&J, pool);
    if (st == RT_OK && atomic_load(&J.score_bad)) st = kr_score_error(k, a, err, errlen);
    free(J.in_len);
    kr_route_free(route);
    plan_rows_free(rows);
  }
  kr_pool_give(k, own);
  return st;
}
