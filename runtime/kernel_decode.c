/* kernel_decode.c: the decode driver of compiled kernels (kernel_rt.h).
 *
 * In: a kr_kernel with a decode tile, the rt_args of a run whose errors
 * kernel_rt.c has already ruled out, its thread pool.  Out: o and lse.
 *
 * The rows of one (batch b, KV head hk) are the Lq rows of each of its G =
 * H / Hkv query heads, packed head by head into chunks of at most KR_DR
 * rows: nothing is padding, and each key/value row is loaded once per
 * chunk (once per KV head when G Lq <= KR_DR).  A task is (b, hk, chunk,
 * part): the keys a chunk visits (the union of its heads' plan spans, cut
 * into tiles of at most KR_BK keys, gathered into scratch when they cross a
 * page) are split into
 * n_part parts of consecutive tiles.  With one part a task writes o and lse;
 * with more (when (b, hk) chunks are fewer than threads), each part leaves
 * its (acc, m, l) and a second pass merges the parts of a row by
 * log-sum-exp (flash-decoding), so B = 1, Hkv = 1 uses every core.
 *
 * A tile is unmasked when it lies inside a FULL span of every head of the
 * chunk; otherwise its rows' words come from the mask code (rows of a head
 * whose spans miss the tile: 0, inside a FULL span: all ones), and as in the
 * prefill driver a tile allowing few pairs (<= 1/8), or any masked tile
 * when the tile's v rows hold a NaN or an infinity, runs per row over its
 * allowed keys only.
 *
 * Paged KV caches (rt_paged): key j of sequence b is found through the page
 * table; each sequence has its own Lk, so its own bottom-right alignment.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_rt_impl.h"

int64_t kr_decode_max_lq = KR_DECODE_MAX_LQ;

/* Per worker, besides the prefill scratch (top-k heaps, random sets). */
typedef struct kd_ws {
  float *q, *acc, *m, *l, *st;   /* [KR_DR][D], [KR_DR][D], [KR_DR] x 2,
                                    [KR_DR][KR_BK] */
  float *kg, *vg;                /* [KR_BK][D]: a tile's k and v rows
                                    gathered across pages */
  uint64_t rows[KR_DR];
  plan_span *sp;                 /* every head's spans, then the union */
  int64_t sp_cap;
  int64_t off[KR_DR + 1];        /* head x's spans: sp[off[x] .. off[x+1]) */
  int64_t cur[KR_DR];            /* per head: its span at the tile */
  kr_topk *tk;                   /* [KR_DR][n_topk] */
  tk_buf *tb;
} kd_ws;

typedef struct kd {
  run R;
  kd_ws *dw;
  int64_t G, n_rc, n_part;       /* heads per KV head, chunks, parts */
  float *part;                   /* n_part > 1: per task KR_DR (D + 2) */
} kd;

static void *aalloc(size_t n) {
  n = (n + 63) / 64 * 64;
  return aligned_alloc(64, n ? n : 64);
}

static int64_t seq_len(const rt_args *a, int64_t b) {
  return a->paged ? a->paged->seq_lens[b] : a->Lk;
}

static int64_t pos_of(const run *R, int64_t lk, int64_t r) {
  return r + plan_row_offset(R->k->plan, R->a->Lq, lk);
}

/* Row j of (b, hk) in t (k or v), and how many rows follow it contiguously
 * (to the end of its page, or of the sequence). */
static const float *kv_row(const rt_args *a, const rt_tensor *t, int64_t b,
                           int64_t hk, int64_t j, int64_t lk, int64_t *contig) {
  if (!a->paged) {
    *contig = lk - j;
    return t->data + b * t->sb + hk * t->sh + j * t->sl;
  }
  const rt_paged *p = a->paged;
  int64_t page = p->page_table[b * p->max_pages + j / p->page_size];
  int64_t in = j % p->page_size;
  *contig = p->page_size - in < lk - j ? p->page_size - in : lk - j;
  return t->data + page * t->sb + hk * t->sh + in * t->sl;
}

static int cmp_span(const void *x, const void *y) {
  int64_t a = ((const plan_span *)x)->k0, b = ((const plan_span *)y)->k0;
  return (a > b) - (a < b);
}

static int grow_spans(kd_ws *w, int64_t need) {
  if (need <= w->sp_cap) return 1;
  int64_t n = w->sp_cap * 2 > need ? w->sp_cap * 2 : need;
  plan_span *p = realloc(w->sp, (size_t)n * sizeof *p);
  if (!p) return 0;
  w->sp = p;
  w->sp_cap = n;
  return 1;
}

/* The rows of a chunk: heads [h0, h0 + nh) of the KV head, head x's rows
 * [ra[x], rb[x]) of Lq, packed at row base[x]. */
typedef struct chunk {
  int64_t b, hk, h0, nh, nr, lk;
  int64_t ra[KR_DR], rb[KR_DR], base[KR_DR];
} chunk;

static void chunk_of(const kd *K, int64_t b, int64_t hk, int64_t rc,
                     int64_t lk, chunk *c) {
  const rt_args *a = K->R.a;
  int64_t x0 = rc * KR_DR, x1 = x0 + KR_DR < K->G * a->Lq ? x0 + KR_DR
                                                          : K->G * a->Lq;
  c->b = b, c->hk = hk, c->lk = lk, c->nr = x1 - x0;
  c->h0 = x0 / a->Lq;
  c->nh = (x1 - 1) / a->Lq - c->h0 + 1;
  for (int64_t x = 0; x < c->nh; x++) {
    int64_t first = (c->h0 + x) * a->Lq;
    c->ra[x] = x0 > first ? x0 - first : 0;
    c->rb[x] = x1 < first + a->Lq ? x1 - first : a->Lq;
    c->base[x] = first + c->ra[x] - x0;
  }
}

/* Every head's spans into w->sp (per head, then their union after
 * sp[off[nh]]); the number of union runs, or -1 after failing the run. */
static int64_t chunk_spans(run *R, kd_ws *w, const chunk *c) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  int64_t n = 0;
  char perr[256] = "";
  for (int64_t x = 0; x < c->nh; x++) {
    int64_t h = c->hk * (a->H / a->Hkv) + c->h0 + x;
    kr_env e = kr_env_at(a, c->b, h);
    plan_env pe = {h, a->H, a->Lq, c->lk, a->runtime, a->inputs, e.b, e.B, a->Hkv, a->D,
                   NULL, NULL};
    w->off[x] = n;
    for (;;) {
      int64_t ns = plan_tiles(K->plan, &pe, c->ra[x], c->rb[x], w->sp + n,
                              w->sp_cap - n, perr, sizeof perr);
      if (ns < 0) {
        kri_fail(R, RT_ERANGE, perr[0] ? perr : "run-time error in the plan");
        return -1;
      }
      if (ns <= w->sp_cap - n) {
        n += ns;
        break;
      }
      if (!grow_spans(w, n + ns)) goto oom;
    }
  }
  w->off[c->nh] = n;
  if (!grow_spans(w, 2 * n + 1)) goto oom;
  plan_span *u = w->sp + n;
  memcpy(u, w->sp, (size_t)n * sizeof *u);
  qsort(u, (size_t)n, sizeof *u, cmp_span);
  int64_t nu = 0;
  for (int64_t x = 0; x < n; x++) {
    if (nu > 0 && u[x].k0 <= u[nu - 1].k1) {
      if (u[x].k1 > u[nu - 1].k1) u[nu - 1].k1 = u[x].k1;
    } else {
      u[nu++] = u[x];
    }
  }
  return nu;
oom:
  kri_fail(R, RT_ENOMEM, "out of memory (plan spans)");
  return -1;
}

/* Keys of the tile at j0 within a run ending at k1: at most KR_BK (a tile
 * crossing pages is gathered, kv_tile). */
static int64_t tile_len(int64_t j0, int64_t k1) {
  return k1 - j0 < KR_BK ? k1 - j0 : KR_BK;
}

/* The k or v rows [j0, j0 + nc) of (b, hk) as one strided block: in place
 * when contiguous, else (a tile crossing pages) copied into buf, row stride
 * D, so small pages do not cut tiles short; *stride gets the stride. */
static const float *kv_tile(const rt_args *a, const rt_tensor *t,
                            const chunk *c, int64_t j0, int64_t nc,
                            float *buf, int64_t *stride) {
  int64_t n;
  const float *p = kv_row(a, t, c->b, c->hk, j0, c->lk, &n);
  if (n >= nc) {
    *stride = t->sl;
    return p;
  }
  for (int64_t x = 0; x < nc; x += n) {
    p = kv_row(a, t, c->b, c->hk, j0 + x, c->lk, &n);
    if (n > nc - x) n = nc - x;
    for (int64_t r = 0; r < n; r++)
      memcpy(buf + (x + r) * a->D, p + r * t->sl, (size_t)a->D * sizeof *p);
  }
  *stride = a->D;
  return buf;
}

/* Row words of the tile [j0, j0 + nc) into w->rows; 1 when every row
 * allows every key, 0 when some do not, -1 after failing the run. */
static int tile_rows(run *R, kd_ws *w, const chunk *c, kr_env *env,
                     int64_t j0, int64_t nc) {
  const rt_args *a = R->a;
  uint64_t valid = nc >= 64 ? ~0ull : (1ull << nc) - 1;
  int all_full = 1;
  for (int64_t x = 0; x < c->nh; x++) {
    const plan_span *sp = w->sp;
    int64_t e = w->off[x + 1], *cur = &w->cur[x];
    while (*cur < e && sp[*cur].k1 <= j0) ++*cur;
    int full = *cur < e && sp[*cur].kind == PLAN_FULL && sp[*cur].k0 <= j0 &&
               sp[*cur].k1 >= j0 + nc;
    int none = *cur >= e || sp[*cur].k0 >= j0 + nc;
    all_full &= full;
    uint64_t *rw = w->rows + c->base[x];
    int64_t nrx = c->rb[x] - c->ra[x];
    if (full || none) {
      for (int64_t r = 0; r < nrx; r++) rw[r] = full ? valid : 0;
      continue;
    }
    env[x].topk = w->tk + x * R->k->n_topk;
    for (int64_t r = 0; r < nrx; r++) {
      int32_t code = R->k->mask[0](&env[x], pos_of(R, c->lk, c->ra[x] + r),
                                   j0, nc, a->Lq, c->lk, &rw[r]);
      if (code) {
        kri_fail_code(R, code);
        return -1;
      }
    }
  }
  if (all_full) return 1;
  uint64_t all = ~0ull;
  for (int64_t r = 0; r < c->nr; r++) all &= w->rows[r];
  return all == valid;
}

/* One tile through the decode tile, or per row (kernel_rt.c's rule). */
static void run_tile(kd *K, kd_ws *w, const chunk *c, int full,
                     const float *kt, int64_t sk, const float *vt, int64_t sv,
                     int64_t nc) {
  run *R = &K->R;
  const rt_args *a = R->a;
  if (!full) {
    int64_t pairs = 0;
    uint64_t any = 0;
    for (int64_t r = 0; r < c->nr; r++)
      any |= w->rows[r], pairs += __builtin_popcountll(w->rows[r]);
    if (!any) return;
    if (pairs * 8 <= c->nr * KR_BK || kri_tile_v_nonfinite(vt, RT_F32, sv, nc, a->D)) {
      kri_sparse_rows(w->q, a->D, kt, sk, vt, sv, a->D, w->rows,
                      c->nr, w->acc, w->m, w->l, R->c);
      return;
    }
  }
  R->k->dtile(w->q, c->nr, kt, sk, vt, sv, nc,
              full ? NULL : w->rows, w->acc, w->m, w->l, R->c, w->st);
}

/* o and lse of packed row x from acc, m (log2 domain), l. */
static void finish_row(const rt_args *a, const chunk *c, int64_t hx,
                       int64_t r, const float *acc, float m, float l) {
  int64_t h = c->hk * (a->H / a->Hkv) + c->h0 + hx;
  float *o = a->o.data + c->b * a->o.sb + h * a->o.sh + r * a->o.sl;
  float lse;
  if (l > 0 || isnan(l)) {
    float inv = 1.0f / l;
    for (int64_t d = 0; d < a->D; d++) o[d] = acc[d] * inv;
    lse = (float)((double)m * 0.69314718055994530942 + log((double)l));
  } else {
    for (int64_t d = 0; d < a->D; d++) o[d] = 0;
    lse = -INFINITY;
  }
  if (a->lse) a->lse[c->b * a->lse_sb + h * a->lse_sh + r] = lse;
}

static float *part_of(const kd *K, int64_t task) {
  return K->part + task * KR_DR * (K->R.a->D + 2);
}

/* Top-k selections of every head of the chunk (dense caches only). */
static int chunk_topk(run *R, scratch *s, kd_ws *w, const chunk *c,
                      kr_env *env) {
  const rt_args *a = R->a;
  int nt = R->k->n_topk;
  const float *kb = a->k.data + c->b * a->k.sb + c->hk * a->k.sh;
  kr_topk *tk0 = s->tk;
  tk_buf *tb0 = s->tb;
  int ok = 1;
  for (int64_t x = 0; x < c->nh && ok; x++) {
    const float *qb = a->q.data + c->b * a->q.sb + env[x].h * a->q.sh;
    s->tk = w->tk + x * nt, s->tb = w->tb + x * nt;
    env[x].topk = s->tk;
    for (int t = 0; t < nt && ok; t++)
      ok = kri_topk_rows(R, s, t, &env[x], qb, kb,
                         pos_of(R, c->lk, c->ra[x]),
                         pos_of(R, c->lk, c->rb[x] - 1), c->b, c->hk);
  }
  s->tk = tk0, s->tb = tb0;
  if (!ok) kri_fail(R, RT_ENOMEM, "out of memory (top-k selection)");
  return ok;
}

static void kd_task(void *ctx, int64_t id, int worker) {
  kd *K = ctx;
  run *R = &K->R;
  if (atomic_load_explicit(&R->failed, memory_order_relaxed)) return;
  const rt_args *a = R->a;
  kd_ws *w = &K->dw[worker];
  scratch *s = &R->ws[worker];
  int64_t part = id % K->n_part, t = id / K->n_part;
  int64_t rc = t % K->n_rc, hk = t / K->n_rc % a->Hkv,
          b = t / K->n_rc / a->Hkv, D = a->D;
  chunk c;
  chunk_of(K, b, hk, rc, seq_len(a, b), &c);
  kr_env env[KR_DR];
  for (int64_t x = 0; x < c.nh; x++) {
    int64_t h = hk * K->G + c.h0 + x;
    env[x] = kr_env_at(a, b, h);
    env[x].random_row = kri_random_row, env[x].random_cache = &s->rnd;
    kr_route_env(R->route, b, h, &env[x]);
    for (int64_t r = c.ra[x]; r < c.rb[x]; r++) {
      const float *qr = a->q.data + b * a->q.sb + h * a->q.sh + r * a->q.sl;
      memcpy(w->q + (c.base[x] + r - c.ra[x]) * D, qr, (size_t)D * sizeof *qr);
    }
  }
  memset(w->acc, 0, (size_t)(c.nr * D) * sizeof *w->acc);
  for (int64_t r = 0; r < c.nr; r++) w->m[r] = -INFINITY, w->l[r] = 0;
  int64_t nu = 0;
  w->off[c.nh] = 0;
  if (c.lk > 0) {
    if (R->k->n_topk > 0 && !chunk_topk(R, s, w, &c, env)) return;
    nu = chunk_spans(R, w, &c);
    if (nu < 0) return;
  }
  const plan_span *u = w->sp + w->off[c.nh];
  /* tiles [t0, t1) of the chunk's tile sequence are this part's */
  int64_t n_tiles = 0;
  if (K->n_part > 1)
    for (int64_t x = 0; x < nu; x++)
      for (int64_t j0 = u[x].k0; j0 < u[x].k1; j0 += tile_len(j0, u[x].k1))
        n_tiles++;
  int64_t t0 = n_tiles * part / K->n_part, t1 = n_tiles * (part + 1) / K->n_part;
  if (K->n_part == 1) t1 = INT64_MAX;
  for (int64_t x = 0; x < c.nh; x++) w->cur[x] = w->off[x];
  for (int64_t x = 0, ti = 0; x < nu && ti < t1; x++)
    for (int64_t j0 = u[x].k0, nc; j0 < u[x].k1 && ti < t1; j0 += nc, ti++) {
      nc = tile_len(j0, u[x].k1);
      if (ti < t0) continue;
      int full = tile_rows(R, w, &c, env, j0, nc);
      if (full < 0) return;
      int64_t sk, sv;
      const float *kt = kv_tile(a, &a->k, &c, j0, nc, w->kg, &sk);
      const float *vt = kv_tile(a, &a->v, &c, j0, nc, w->vg, &sv);
      run_tile(K, w, &c, full, kt, sk, vt, sv, nc);
    }
  if (s->rnd.oom) {
    kri_fail(R, RT_ENOMEM, "out of memory (random key sets)");
    return;
  }
  if (K->n_part > 1) {
    float *p = part_of(K, id);
    memcpy(p, w->acc, (size_t)(c.nr * D) * sizeof *p);
    memcpy(p + KR_DR * D, w->m, (size_t)c.nr * sizeof *p);
    memcpy(p + KR_DR * (D + 1), w->l, (size_t)c.nr * sizeof *p);
    return;
  }
  for (int64_t x = 0; x < c.nh; x++)
    for (int64_t r = c.ra[x]; r < c.rb[x]; r++) {
      int64_t pr = c.base[x] + r - c.ra[x];
      finish_row(a, &c, x, r, w->acc + pr * D, w->m[pr], w->l[pr]);
    }
}

/* The parts of chunk t merged: m = max m_p, l = sum l_p 2^(m_p - m), acc
 * likewise. */
static void kd_merge(void *ctx, int64_t t, int worker) {
  kd *K = ctx;
  const rt_args *a = K->R.a;
  if (atomic_load_explicit(&K->R.failed, memory_order_relaxed)) return;
  int64_t rc = t % K->n_rc, hk = t / K->n_rc % a->Hkv,
          b = t / K->n_rc / a->Hkv, D = a->D;
  chunk c;
  chunk_of(K, b, hk, rc, seq_len(a, b), &c);
  float *acc = K->dw[worker].acc;
  for (int64_t x = 0; x < c.nh; x++)
    for (int64_t r = c.ra[x]; r < c.rb[x]; r++) {
      int64_t pr = c.base[x] + r - c.ra[x];
      float m = -INFINITY, l = 0;
      for (int64_t p = 0; p < K->n_part; p++) {
        float mp = part_of(K, t * K->n_part + p)[KR_DR * D + pr];
        if (mp > m) m = mp;
      }
      float muse = m == -INFINITY ? 0 : m;
      memset(acc, 0, (size_t)D * sizeof *acc);
      for (int64_t p = 0; p < K->n_part; p++) {
        const float *P = part_of(K, t * K->n_part + p);
        float lp = P[KR_DR * (D + 1) + pr];
        if (lp == 0) continue;  /* an empty part (its m may be -inf) */
        float f = exp2f(P[KR_DR * D + pr] - muse);
        l += lp * f;
        for (int64_t d = 0; d < D; d++) acc[d] += P[pr * D + d] * f;
      }
      finish_row(a, &c, x, r, acc, m, l);
    }
}

/* The decode tile reads q, k, v as float: 16-bit dtypes take the prefill
 * tiles (kr_run refuses a paged cache with them). */
int kd_wanted(const kr_kernel *k, const rt_args *a) {
  return a->paged != NULL ||
         (k->dtile != NULL && !k->stile && k->dtype == RT_F32 &&
          a->Lq <= kr_decode_max_lq);
}

static int ws_init(kd_ws *w, const kr_kernel *k) {
  size_t D = (size_t)k->D, nt = (size_t)k->n_topk;
  memset(w, 0, sizeof *w);
  w->q = aalloc(KR_DR * D * sizeof(float));
  w->acc = aalloc(KR_DR * D * sizeof(float));
  w->m = aalloc(KR_DR * sizeof(float));
  w->l = aalloc(KR_DR * sizeof(float));
  w->st = aalloc(KR_DR * KR_BK * sizeof(float));
  w->kg = aalloc(KR_BK * D * sizeof(float));
  w->vg = aalloc(KR_BK * D * sizeof(float));
  w->sp_cap = 4 * KR_DR;
  w->sp = malloc((size_t)w->sp_cap * sizeof *w->sp);
  w->tk = calloc(KR_DR * nt + 1, sizeof *w->tk);
  w->tb = calloc(KR_DR * nt + 1, sizeof *w->tb);
  return w->q && w->acc && w->m && w->l && w->st && w->sp && w->tk && w->tb &&
         w->kg && w->vg;
}

static void ws_free(kd_ws *w, int n_topk) {
  if (w->tb)
    for (int64_t x = 0; x < KR_DR * n_topk; x++)
      free(w->tb[x].sel), free(w->tb[x].cnt);
  free(w->tb); free(w->tk);
  free(w->q); free(w->acc); free(w->m); free(w->l); free(w->st);
  free(w->kg); free(w->vg);
  free(w->sp);
}

/* Parts per chunk: one, or enough for two tasks per thread when (batch,
 * KV head) chunks are fewer; top-k patterns are not split (each part would
 * select over the whole row again). */
static int64_t parts(const kr_kernel *k, int64_t chunks, int threads) {
  if (threads <= 1 || k->n_topk > 0 || chunks >= threads) return 1;
  return (2 * threads + chunks - 1) / chunks;
}

rt_status kd_run(kr_kernel *k, const rt_args *a, th_pool *pool, char *err,
                 size_t errlen) {
  if (!k->dtile)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "paged KV caches need a JIT kernel (this kernel has no "
                   "decode tile)");
  if (k->stile)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "patterns with a score (with score E) cannot run on a "
                   "paged KV cache");
  if (a->paged && k->n_topk > 0)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "top-k patterns with a paged KV cache are not supported");
  kd K;
  memset(&K, 0, sizeof K);
  run *R = &K.R;
  R->k = k;
  R->a = a;
  float scale = a->scale != 0 ? a->scale : 1.0f / sqrtf((float)a->D);
  R->scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  R->c = scale * 1.44269504088896340736f;
  R->err = err;
  R->errlen = errlen;
  K.G = a->H / a->Hkv;
  K.n_rc = (K.G * a->Lq + KR_DR - 1) / KR_DR;
  int nw = th_size(pool);
  int64_t chunks = a->B * a->Hkv * K.n_rc;
  K.n_part = parts(k, chunks, nw);
  R->ws = calloc((size_t)nw, sizeof *R->ws);
  K.dw = calloc((size_t)nw, sizeof *K.dw);
  if (K.n_part > 1)
    K.part = malloc((size_t)(chunks * K.n_part * KR_DR * (a->D + 2)) *
                    sizeof(float));
  int ok = R->ws && K.dw && (K.n_part == 1 || K.part);
  int inited = 0;
  for (; ok && inited < nw; inited++)
    ok = kri_scratch_init(&R->ws[inited], k) && ws_init(&K.dw[inited], k);
  rt_status st = RT_OK;
  kr_route *route = ok ? kr_route_new(k, a, pool, &st) : NULL;
  R->route = route;
  if (ok && st != RT_OK) {
    rt_errf(err, errlen, st, "out of memory (route cluster ids)");
  } else if (ok) {
    th_for(pool, chunks * K.n_part, kd_task, &K);
    if (K.n_part > 1 && !atomic_load(&R->failed))
      th_for(pool, chunks, kd_merge, &K);
    if (atomic_load(&R->failed)) st = R->st;
  } else {
    st = rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  }
  for (int w = 0; w < inited; w++) {
    kri_scratch_free(&R->ws[w], k->n_topk);
    ws_free(&K.dw[w], k->n_topk);
  }
  free(R->ws);
  free(K.dw);
  free(K.part);
  kr_route_free(route);
  return st;
}
