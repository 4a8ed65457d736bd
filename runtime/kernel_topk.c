/* kernel_topk.c: top-k selection for the compiled kernels' drivers
 * (kernel_rt_impl.h: kri_topk_rows): per query tile, the k best keys of
 * each row (or block) of a top-k node, exactly as the interpreter selects
 * them (scores in double, ties to the smaller key), made fast for token
 * top-k by float32 scoring with an error bound.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "kernel_rt_impl.h"
#include "plan_ops.h"

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
                     int64_t cap, int64_t b, int64_t hk, const plan_span *cs,
                     int64_t ncs);

int kri_topk_rows(run *R, scratch *s, int t, const kr_env *env,
                  const void *qb, const void *kb, int64_t i0, int64_t i1,
                  int64_t b, int64_t hk) {
  return kri_topk_rows_in(R, s, t, env, qb, kb, i0, i1, b, hk, NULL, 0);
}

int kri_topk_rows_in(run *R, scratch *s, int t, const kr_env *env,
                     const void *qb, const void *kb, int64_t i0, int64_t i1,
                     int64_t b, int64_t hk, const plan_span *cs, int64_t ncs) {
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
      topk_fast(R, s, t, env, qb, kb, I0, nI, cap, b, hk, cs, ncs))
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
#define TKF_LIST (4 * TKF_MAX_K + 64) /* keys kept per row, at most */
#define TKF_SB 32 /* key tiles scored before their keys are filtered (the
                     scores, 512 KB, in L2) */

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

/* sc[c * KR_BQ + r] = dot(row r of qt [D][KR_BQ], key c), c < nc: the
 * portable version (no FMA contraction: -std=c11). */
static void score_tile_c(const float *qt, const float *kt, int64_t sk,
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

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#include <immintrin.h>
#define TKF_X86 1

/* The register block of score_tile_avx2: 16 rows (two vectors of Q^T's
 * column) against n <= 6 keys, 2 n accumulators; per dimension two loads
 * of q and n broadcasts for 2 n FMAs, so the FMA units, not the loads, set
 * the pace (the layout of a GEMM microkernel; n is a constant once
 * inlined). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
score_16xn(const float *qt, const float *kt, int64_t sk, int n, int64_t D,
           float *sc) {
  __m256 a0[6], a1[6];
#pragma GCC unroll 6
  for (int c = 0; c < n; c++) a0[c] = a1[c] = _mm256_setzero_ps();
  for (int64_t d = 0; d < D; d++) {
    __m256 q0 = _mm256_load_ps(qt + d * KR_BQ), q1 = _mm256_load_ps(qt + d * KR_BQ + 8);
    /* in registers: folded into each FMA they would be loaded n times */
    __asm__("" : "+x"(q0), "+x"(q1));
#pragma GCC unroll 6
    for (int c = 0; c < n; c++) {
      __m256 x = _mm256_broadcast_ss(kt + c * sk + d);
      a0[c] = _mm256_fmadd_ps(q0, x, a0[c]);
      a1[c] = _mm256_fmadd_ps(q1, x, a1[c]);
    }
  }
#pragma GCC unroll 6
  for (int c = 0; c < n; c++) {
    _mm256_storeu_ps(sc + c * KR_BQ, a0[c]);
    _mm256_storeu_ps(sc + c * KR_BQ + 8, a1[c]);
  }
}

/* score_tile_c on the FMA units: keys six at a time (the last ones four,
 * two, one), each group against the tile's rows 16 at a time (rows past
 * nr are zero in qt and skipped). */
__attribute__((target("avx2,fma"))) static void
score_tile_avx2(const float *qt, const float *kt, int64_t sk, int64_t nc,
                int64_t nr, int64_t D, float *sc) {
  for (int64_t c0 = 0; c0 < nc;) {
    int64_t left = nc - c0;
    int n = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
    const float *k0 = kt + c0 * sk;
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
      float *o = sc + c0 * KR_BQ + r0;
      if (n == 6) score_16xn(qt + r0, k0, sk, 6, D, o);
      else if (n == 4) score_16xn(qt + r0, k0, sk, 4, D, o);
      else if (n == 2) score_16xn(qt + r0, k0, sk, 2, D, o);
      else score_16xn(qt + r0, k0, sk, 1, D, o);
    }
    c0 += n;
  }
}

/* tkf_filter (below) eight rows a vector. */
__attribute__((target("avx2,fma"))) static void
tkf_filter_avx2(const float *sc, int64_t nc, const float *cq, const float *kn,
                const float *thr, const uint64_t *cols, uint64_t *hits,
                uint64_t *bad) {
  __m256 q[8], t[8];
  for (int x = 0; x < 8; x++)
    q[x] = _mm256_loadu_ps(cq + 8 * x), t[x] = _mm256_loadu_ps(thr + 8 * x);
  uint64_t nf = 0;
  for (int64_t c = 0; c < nc; c++) {
    __m256 e = _mm256_broadcast_ss(kn + c);
    uint64_t h = 0, fin = 0;
    for (int x = 0; x < 8; x++) {
      __m256 f = _mm256_loadu_ps(sc + c * KR_BQ + 8 * x);
      __m256 hi = _mm256_fmadd_ps(q[x], e, f);
      h |= (uint64_t)_mm256_movemask_ps(_mm256_cmp_ps(hi, t[x], _CMP_GE_OQ)) << (8 * x);
      fin |= (uint64_t)_mm256_movemask_ps(
                 _mm256_cmp_ps(_mm256_sub_ps(f, f), _mm256_setzero_ps(), _CMP_EQ_OQ))
             << (8 * x);
    }
    nf |= ~fin & cols[c];
    hits[c] = h & fin & cols[c];
  }
  *bad |= nf;
}
#endif

/* Dispatch: the FMA microkernel where the CPU has it. */
static void score_tile(const float *qt, const float *kt, int64_t sk,
                       int64_t nc, int64_t nr, int64_t D, float *sc) {
#ifdef TKF_X86
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    score_tile_avx2(qt, kt, sk, nc, (nr + 15) / 16 * 16, D, sc);
    return;
  }
#endif
  (void)nr; /* the portable kernel scores every row of the tile */
  score_tile_c(qt, kt, sk, nc, D, sc);
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

#ifdef TKF_X86
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

/* Per key c < nc of a score tile: the rows of cols[c] with a non-finite
 * score into *bad; gm[g * KR_BQ + r] (g < 4) = the largest lo = f - e of
 * row r among keys [16 g, 16 g + 16) of cols (e = cq[r] kn[c]; -inf: no
 * such key). */
static void tkf_gmax(const float *sc, int64_t nc, const float *cq,
                     const float *kn, const uint64_t *cols, float *gm,
                     uint64_t *bad) {
  for (int64_t x = 0; x < 4 * KR_BQ; x++) gm[x] = -INFINITY;
  for (int64_t c = 0; c < nc; c++) {
    float *g = gm + (c / 16) * KR_BQ;
    for (uint64_t w = cols[c]; w; w &= w - 1) {
      int r = __builtin_ctzll(w);
      float f = sc[c * KR_BQ + r], e = cq[r] * kn[c];
      if (!isfinite(f)) *bad |= 1ull << r;
      else if (f - e > g[r]) g[r] = f - e;
    }
  }
}

#ifdef TKF_X86
__attribute__((target("avx512f")))
static void tkf_gmax512(const float *sc, int64_t nc, const float *cq,
                        const float *kn, const uint64_t *cols, float *gm,
                        uint64_t *bad) {
  __m512 q[4];
  for (int x = 0; x < 4; x++) q[x] = _mm512_loadu_ps(cq + 16 * x);
  uint64_t nf = 0;
  for (int g = 0; g < 4; g++) {
    __m512 m[4];
    for (int x = 0; x < 4; x++) m[x] = _mm512_set1_ps(-INFINITY);
    for (int64_t c = 16 * g; c < nc && c < 16 * g + 16; c++) {
      __m512 e = _mm512_set1_ps(kn[c]);
      for (int x = 0; x < 4; x++) {
        __mmask16 on = (__mmask16)(cols[c] >> (16 * x));
        __m512 f = _mm512_loadu_ps(sc + c * KR_BQ + 16 * x);
        __mmask16 fin = _mm512_cmp_ps_mask(_mm512_sub_ps(f, f), _mm512_setzero_ps(),
                                           _CMP_EQ_OQ);
        nf |= (uint64_t)(uint16_t)(on & ~fin) << (16 * x);
        /* f - e as tkf_row keeps it: rounded product, then difference */
        __m512 lo = _mm512_sub_ps(f, _mm512_mul_ps(q[x], e));
        m[x] = _mm512_mask_max_ps(m[x], on & fin, m[x], lo);
      }
    }
    for (int x = 0; x < 4; x++) _mm512_storeu_ps(gm + g * KR_BQ + 16 * x, m[x]);
  }
  *bad |= nf;
}
#endif

/* The group maxima's bisections: gb[r] <= the k-th largest of gm[g KR_BQ +
 * r], g < ng (entries -inf, groups without a key of r, not counted; they
 * are lo of distinct keys, so gb[r] <= the row's k-th largest lo), or -inf
 * when fewer than k; TKF_GPASSES halvings of [min, max]. */
#define TKF_GPASSES 10
static void tkf_gbound(const float *gm, int64_t ng, int64_t k, float *gb) {
  for (int64_t r = 0; r < KR_BQ; r++) {
    float lo = INFINITY, hi = -INFINITY;
    int64_t n = 0;
    for (int64_t g = 0; g < ng; g++) {
      float v = gm[g * KR_BQ + r];
      if (!(v > -INFINITY)) continue;
      n++;
      lo = v < lo ? v : lo, hi = v > hi ? v : hi;
    }
    if (n < k) {
      gb[r] = -INFINITY;
      continue;
    }
    for (int p = 0; p < TKF_GPASSES; p++) {
      float mid = lo * 0.5f + hi * 0.5f;
      int64_t c = 0;
      for (int64_t g = 0; g < ng; g++) c += gm[g * KR_BQ + r] >= mid;
      if (c >= k) lo = mid;
      else hi = mid;
    }
    gb[r] = lo;
  }
}

#ifdef TKF_X86
__attribute__((target("avx512f")))
static void tkf_gbound512(const float *gm, int64_t ng, int64_t k, float *gb) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), half = _mm512_set1_ps(0.5f);
  const __m512i one = _mm512_set1_epi32(1), kv = _mm512_set1_epi32((int)k);
  for (int x = 0; x < 4; x++) {
    __m512 lo = _mm512_set1_ps(INFINITY), hi = ninf;
    __m512i n = _mm512_setzero_si512();
    for (int64_t g = 0; g < ng; g++) {
      __m512 v = _mm512_loadu_ps(gm + g * KR_BQ + 16 * x);
      __mmask16 in = _mm512_cmp_ps_mask(v, ninf, _CMP_GT_OQ);
      n = _mm512_mask_add_epi32(n, in, n, one);
      lo = _mm512_mask_min_ps(lo, in, lo, v), hi = _mm512_mask_max_ps(hi, in, hi, v);
    }
    __mmask16 enough = _mm512_cmp_epi32_mask(n, kv, _MM_CMPINT_NLT);
    for (int p = 0; p < TKF_GPASSES; p++) {
      __m512 mid = _mm512_add_ps(_mm512_mul_ps(lo, half), _mm512_mul_ps(hi, half));
      __m512i c = _mm512_setzero_si512();
      for (int64_t g = 0; g < ng; g++) {
        __m512 v = _mm512_loadu_ps(gm + g * KR_BQ + 16 * x);
        c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(v, mid, _CMP_GE_OQ), c, one);
      }
      __mmask16 up = _mm512_cmp_epi32_mask(c, kv, _MM_CMPINT_NLT);
      lo = _mm512_mask_mov_ps(lo, up, mid), hi = _mm512_mask_mov_ps(hi, ~up, mid);
    }
    _mm512_storeu_ps(gb + 16 * x, _mm512_mask_mov_ps(ninf, enough, lo));
  }
}
#endif

/* Floats as int32 in the same order (no NaN among them): the bits of a
 * negative float flipped but for the sign. */
static inline int32_t ord_key(float x) {
  int32_t u;
  memcpy(&u, &x, sizeof u);
  return u ^ (int32_t)((uint32_t)(u >> 31) >> 1);
}

static inline float ord_float(int32_t u) {
  u ^= (int32_t)((uint32_t)(u >> 31) >> 1);
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

typedef int32_t v8i __attribute__((vector_size(32), aligned(4), may_alias));

/* How many of key[0, n) (n a multiple of 8) are >= t. */
KR_CLONES
static int64_t count_ge(const int32_t *key, int64_t n, int32_t t) {
  v8i c = {0};
  for (int64_t x = 0; x < n; x += 8) c += *(const v8i *)(key + x) >= t;
  int64_t s = 0;
  for (int x = 0; x < 8; x++) s -= c[x];
  return s;
}

/* The k-th largest (1 <= k <= n) of the keys, by bisection on their order
 * (at most 32 counting passes, no data-dependent branch per element: the
 * lists are short and a quickselect's branches mispredict); key is padded
 * to a multiple of 8 with INT32_MIN (k counts real keys only, so the
 * padding never reaches it). */
static int32_t kth_key(int32_t *key, int64_t n, int64_t k, int32_t lo) {
  int64_t n8 = (n + 7) / 8 * 8;
  int32_t hi = INT32_MIN;
  for (int64_t x = 0; x < n; x++) hi = key[x] > hi ? key[x] : hi;
  for (int64_t x = n; x < n8; x++) key[x] = INT32_MIN;
  if (lo > hi) lo = hi;
  /* count(>= lo) >= k > count(> hi) */
  if (count_ge(key, n8, lo) < k) lo = INT32_MIN;
  while (lo < hi) {
    int32_t mid = (int32_t)(lo + ((int64_t)hi - lo + 1) / 2);
    if (count_ge(key, n8, mid) >= k) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

typedef struct tkf_row {
  float *lo, *hi;  /* bounds of the scores of the keys kept (f -+ e), with
                      room for 8 more */
  int64_t *j;      /* and the keys, ascending */
  int64_t n, cap;
  int64_t trig;    /* n at which the list is compacted next */
  float cq, thr;   /* e_j = cq |k_j|; a bound <= the k-th largest lo seen */
} tkf_row;

typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

/* How many of x[0, n) (n a multiple of 8) are >= t. */
KR_CLONES
static int64_t count_ge_f(const float *x, int64_t n, float t) {
  v8i c = {0};
  for (int64_t y = 0; y < n; y += 8) c += *(const v8f *)(x + y) >= t;
  int64_t s = 0;
  for (int y = 0; y < 8; y++) s -= c[y];
  return s;
}

/* A value t <= the k-th largest of lo[0, n) (k <= n), at least thr (itself
 * such a bound), found by TKF_PASSES bisections of [thr, max]: a bound
 * close enough to drop most keys, in a few counting passes. */
#define TKF_PASSES 8
static float kth_bound(float *lo, int64_t n, int64_t k, float thr) {
  int64_t n8 = (n + 7) / 8 * 8;
  float hi = -INFINITY;
  for (int64_t x = 0; x < n; x++) hi = lo[x] > hi ? lo[x] : hi;
  for (int64_t x = n; x < n8; x++) lo[x] = -INFINITY;
  float t = thr;
  if (!(t > -INFINITY)) {  /* no bound yet: the smallest lo is one */
    t = hi;
    for (int64_t x = 0; x < n; x++) t = lo[x] < t ? lo[x] : t;
  }
  for (int p = 0; p < TKF_PASSES && t < hi; p++) {
    float mid = t + (hi - t) * 0.5f;
    if (!(mid > t) || !(mid < hi) || !isfinite(mid)) break;
    if (count_ge_f(lo, n8, mid) >= k) t = mid;
    else hi = mid;
  }
  return t;
}

/* Drops the keys with hi below a lower bound of the row's k-th largest lo
 * (the list holds at least k keys): the exact k-th largest when exact (the
 * row's last), else kth_bound's. */
static void row_compact(tkf_row *w, int64_t k, int exact) {
  float t;
  if (exact) {
    int32_t key[TKF_LIST + 8];
    for (int64_t x = 0; x < w->n; x++) key[x] = ord_key(w->lo[x]);
    /* the k-th largest lo only grows: the last bound is one below it */
    t = ord_float(kth_key(key, w->n, k, ord_key(w->thr)));
  } else {
    t = kth_bound(w->lo, w->n, k, w->thr);
  }
  if (t > w->thr) w->thr = t;
  int64_t m = 0;
  for (int64_t x = 0; x < w->n; x++) {  /* branch-free: most keys go */
    float lo = w->lo[x], hi = w->hi[x];
    int64_t j = w->j[x];
    w->lo[m] = lo, w->hi[m] = hi, w->j[m] = j;
    m += hi >= t;
  }
  w->n = m;
}

/* Selection of row I from its kept keys: 1 done, 0 the row needs the
 * exact path. */
static int row_select(run *R, scratch *s, kr_topk *tk, tkf_row *w,
                      const float *qr, const float *kb,
                      int64_t I, int64_t cap, int64_t ncand) {
  int64_t *row = tk->sel + (I - tk->ibase) * cap;
  if (ncand > cap) {
    row_compact(w, cap, 1);
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
                     int64_t cap, int64_t b, int64_t hk, const plan_span *cs,
                     int64_t ncs) {
  const kr_kernel *K = R->k;
  const rt_args *a = R->a;
  kr_topk *tk = &s->tk[t];
  int64_t D = a->D, lkg = s->tk_lkg, lqg = s->tk_lqg, ksl = a->k.sl;
  int64_t off = plan_row_offset(K->plan, a->Lq, a->Lk);
  if (cap < 1 || cap > TKF_MAX_K || nI > KR_BQ || lkg != a->Lk ||
      !(R->scale > 0) || !isfinite(R->scale))
    return 0;
  /* compacted every `step` hits past the k kept, so that the bound
   * follows the row's best keys closely and few keys pass it */
  int64_t lcap = 4 * cap + 64, step = cap + (cap > 32 ? cap : 32);
  size_t need = (size_t)KR_BQ * (size_t)(lcap + 8);
  if (!grow((void **)&s->tf, &s->tf_cap, 2 * need, sizeof(float)) ||
      !grow((void **)&s->tj, &s->tj_cap, need, sizeof(int64_t)))
    return 0;
  if (!s->sc && !(s->sc = aligned_alloc(64, sizeof(float) * TKF_SB * (KR_BK + 4) * KR_BQ)))
    return 0;
  const float *kn = key_norms(s, a, kb, b, hk);
  if (!kn) return 0;
  /* Q^T of the rows (the task packs the same, other callers do not) */
  if (D % 16 == 0)
    kri_pack_qt_f32(s->qt, qb + (I0 - off) * a->q.sl, a->q.sl, nI, D);
  else
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
    float *lo = s->tf + 2 * r * (lcap + 8);
    w[r] = (tkf_row){lo, lo + lcap + 8, s->tj + r * (lcap + 8), 0, lcap, step,
                     e > 3e38 ? INFINITY : (float)e, -INFINITY};
    cq[r] = w[r].cq, thr[r] = -INFINITY, ncand[r] = 0;
  }
  /* Key tiles are scored a superblock (TKF_SB tiles) at a time into s->sc,
   * with per row the largest lo of every group of 16 keys (gm); then per
   * row the k-th largest of those maxima and of the lo kept from earlier
   * superblocks (all lo of distinct keys, so a bound <= the row's k-th
   * largest lo) sets thr before any key of the superblock is kept: few
   * keys pass it, and they are appended once. */
  float *gm = s->sc + (size_t)TKF_SB * KR_BK * KR_BQ;
  int64_t tj0[TKF_SB], tnc[TKF_SB], nt = 0;
  uint64_t tcols[TKF_SB][KR_BK];
  plan_span every = {0, lkg, PLAN_PARTIAL};
  if (!cs) cs = &every, ncs = 1;
  int64_t lastsx = ncs - 1;  /* the last span with keys */
  while (lastsx > 0 && cs[lastsx].k1 <= cs[lastsx].k0) lastsx--;
  for (int64_t sx = 0; sx < ncs; sx++)
  for (int64_t J0 = cs[sx].k0; J0 < cs[sx].k1 && (live & ~slow); J0 += KR_BK) {
    int64_t nc = cs[sx].k1 - J0 < KR_BK ? cs[sx].k1 - J0 : KR_BK;
    uint64_t *cols = tcols[nt], any = 0, all = ~0ull, on = 0;
    uint64_t valid = nc >= 64 ? ~0ull : (1ull << nc) - 1;
    if (cs[sx].kind == PLAN_FULL) {  /* every row takes every key */
      on = any = live & ~slow;
      for (uint64_t x = on; x; x &= x - 1) ncand[__builtin_ctzll(x)] += nc;
      for (int64_t y = 0; y < nc; y++) cols[y] = on;
    } else {
      for (int64_t r = 0; r < KR_BQ; r++) {
        s->rows[r] = 0;
        if (!((live & ~slow) >> r & 1)) continue;
        int32_t ecode = K->mask[t + 1](env, I0 + r, J0, nc, lqg, lkg, &s->rows[r]);
        if (ecode) {
          tk->cnt[r] = -(int64_t)ecode;
          live &= ~(1ull << r);
          s->rows[r] = 0;
          continue;
        }
        ncand[r] += s->rows[r] == valid ? nc : __builtin_popcountll(s->rows[r]);
        any |= s->rows[r], all &= s->rows[r], on |= 1ull << r;
      }
      if (!any) goto next;
      if (all == valid) {  /* every row scanned takes every key */
        for (int64_t y = 0; y < nc; y++) cols[y] = on;
      } else {
        memcpy(cols, s->rows, sizeof tcols[0]);
        kr_transpose64(cols);
      }
    }
    for (int64_t y = nc; y < KR_BK; y++) cols[y] = 0;
    {
      float *sc = s->sc + (size_t)nt * KR_BK * KR_BQ;
      uint64_t bad = 0;
      score_tile(s->qt, kb + J0 * ksl, ksl, nc, nI, D, sc);
#ifdef TKF_X86
      if (__builtin_cpu_supports("avx512f"))
        tkf_gmax512(sc, nc, cq, kn + J0, cols, gm + nt * 4 * KR_BQ, &bad);
      else
#endif
        tkf_gmax(sc, nc, cq, kn + J0, cols, gm + nt * 4 * KR_BQ, &bad);
      slow |= bad;
      tj0[nt] = J0, tnc[nt] = nc, nt++;
    }
  next:;
    int last = sx >= lastsx && J0 + KR_BK >= cs[sx].k1;
    if (nt == 0 || (nt < TKF_SB && !last && (live & ~slow))) continue;
    /* the superblock's bounds, every row at once */
    {
      float gb[KR_BQ];
#ifdef TKF_X86
      if (__builtin_cpu_supports("avx512f")) tkf_gbound512(gm, 4 * nt, cap, gb);
      else
#endif
        tkf_gbound(gm, 4 * nt, cap, gb);
      for (uint64_t x = live & ~slow; x; x &= x - 1) {
        int r = __builtin_ctzll(x);
        if (gb[r] > thr[r]) thr[r] = w[r].thr = gb[r];
      }
    }
    for (int64_t ti = 0; ti < nt; ti++) {
      const float *sc = s->sc + (size_t)ti * KR_BK * KR_BQ;
      int64_t tJ = tj0[ti], tn = tnc[ti];
      uint64_t hits[KR_BK], bad = 0, act = 0;
#ifdef TKF_X86
      if (__builtin_cpu_supports("avx512f"))
        tkf_filter512(sc, tn, cq, kn + tJ, thr, tcols[ti], hits, &bad);
      else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        tkf_filter_avx2(sc, tn, cq, kn + tJ, thr, tcols[ti], hits, &bad);
      else
#endif
        tkf_filter(sc, tn, cq, kn + tJ, thr, tcols[ti], hits, &bad);
      /* (bad: found by the group maxima already) */
      /* the hits row by row (keys ascending), each row's list in registers */
      for (int64_t y = tn; y < KR_BK; y++) hits[y] = 0;
      for (int64_t y = 0; y < tn; y++) act |= hits[y];
      if (!(act & ~slow)) continue;
      kr_transpose64(hits);
      for (act &= ~slow; act; act &= act - 1) {
        int r = __builtin_ctzll(act);
        tkf_row *x = &w[r];
        int64_t n = x->n, trig = x->trig;
        for (uint64_t h = hits[r]; h; h &= h - 1) {
          int y = __builtin_ctzll(h);
          float f = sc[y * KR_BQ + r], e = cq[r] * kn[tJ + y];
          x->lo[n] = f - e, x->hi[n] = f + e, x->j[n++] = tJ + y;
          if (n < trig) continue;
          x->n = n;
          row_compact(x, cap, 0);
          thr[r] = x->thr;
          n = x->n;
          trig = x->trig = n + step - cap < x->cap ? n + step - cap : x->cap;
          if (n > x->cap - x->cap / 4) {
            slow |= 1ull << r;
            break;
          }
        }
        x->n = n;
      }
    }
    nt = 0;
  }
  for (int64_t r = 0; r < nI; r++) {
    if (!(live >> r & 1)) continue;
    const float *qr = qb + (I0 + r - off) * a->q.sl;
    if ((slow >> r & 1) ||
        !row_select(R, s, tk, &w[r], qr, kb, I0 + r, cap, ncand[r]))
      topk_row_exact(R, s, t, env, qb, kb, NULL, I0 + r, 1, cap);
  }
  return 1;
}

/* --- attending to the selection ----------------------------------------- */

int64_t kri_topk_views(const scratch *s, int n_topk, plan_topk *out,
                       int64_t max) {
  if (n_topk > max) return 0;
  for (int t = 0; t < n_topk; t++) {
    const kr_topk *tk = &s->tk[t];
    int64_t rows = tk->err ? 0 : s->tb[t].rows;
    out[t] = (plan_topk){rows ? tk->sel : NULL, tk->cnt, tk->ibase, rows, tk->k};
  }
  return n_topk;
}

static const int op_operands[PLAN_N_OPS] = {
#define X(name, n, text) n,
    PLAN_OPS(X)
#undef X
};

int kri_topk_root(const kr_kernel *k) {
  const int64_t *P = k->plan;
  if (k->n_topk < 1 || !P) return -1;
  /* the root's instruction is the last before END (a box's tree is data) */
  int64_t last = -1, end = P[PLAN_W_SIZE];
  for (int64_t pc = P[PLAN_W_CODE]; pc < end;) {
    int64_t op = P[pc];
    if (op < 0 || op >= PLAN_N_OPS) return -1;
    if (op == PLAN_END) break;
    last = op;
    pc += 1 + op_operands[op] + (op == PLAN_PBOX ? P[pc + 2] : 0);
  }
  /* topk nodes are numbered in post-order: the root's is the last */
  return last == PLAN_PTOPK ? k->n_topk - 1 : -1;
}

#ifdef TKF_X86
/* 2^x of eight values <= 0 (or NaN), as exp2_v16 in kernel_rt_impl.h
 * computes it: x = n + f, 2^f by its Taylor polynomial of degree 6, 2^n
 * from the exponent bits; 0 below -126, NaN stays NaN. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256
exp2_8(__m256 x) {
  __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_GE_OQ);
  __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  __m256 xc = _mm256_blendv_ps(_mm256_set1_ps(-126.0f), x, keep);
  __m256i n = _mm256_cvttps_epi32(_mm256_sub_ps(xc, _mm256_set1_ps(0.5f)));
  __m256 f = _mm256_sub_ps(xc, _mm256_cvtepi32_ps(n));
  __m256 p = _mm256_fmadd_ps(f, _mm256_set1_ps(1.5252733804059840e-5f),
                             _mm256_set1_ps(1.5403530393381606e-4f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(1.3333558146428443e-3f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(9.6181291076284772e-3f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(5.5504108664821580e-2f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(2.4022650695910071e-1f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(6.9314718055994531e-1f));
  p = _mm256_fmadd_ps(f, p, _mm256_set1_ps(1.0f));
  __m256 two_n = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
  __m256 r = _mm256_and_ps(_mm256_mul_ps(p, two_n), keep);
  return _mm256_blendv_ps(r, x, nan);
}

/* acc[0, D) = acc alpha + sum_x p[x] v_{js[x]}, W vectors of dimensions at
 * a time (independent FMA chains; W a constant once inlined). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
gather_pv(float *acc, float alpha, const float *p, const float *vb,
          int64_t sv, const int64_t *js, int64_t n, int64_t D, int W) {
  __m256 al = _mm256_set1_ps(alpha);
  for (int64_t d0 = 0; d0 < D; d0 += 8 * W) {
    __m256 o[8];
#pragma GCC unroll 8
    for (int w = 0; w < W; w++) o[w] = _mm256_mul_ps(_mm256_loadu_ps(acc + d0 + 8 * w), al);
    for (int64_t x = 0; x < n; x++) {
      __m256 px = _mm256_broadcast_ss(p + x);
      const float *vr = vb + js[x] * sv + d0;
#pragma GCC unroll 8
      for (int w = 0; w < W; w++)
        o[w] = _mm256_fmadd_ps(px, _mm256_loadu_ps(vr + 8 * w), o[w]);
    }
#pragma GCC unroll 8
    for (int w = 0; w < W; w++) _mm256_storeu_ps(acc + d0 + 8 * w, o[w]);
  }
}

/* One row's online-softmax step over keys js[0, n) (n <= KR_BK) of the
 * head, gathered from k and v: the same update as sparse_rows
 * (kernel_rt.c), scores c q.k in the log2 domain. */
__attribute__((target("avx2,fma"))) static void
gather_row_avx2(const float *qr, const float *kb, int64_t sk, const float *vb,
                int64_t sv, int64_t D, const int64_t *js, int64_t n,
                float *acc, float *m, float *l, float c) {
  float sc[KR_BK + 8];
  float mloc = -INFINITY;
  for (int64_t x = 0; x < n; x++) {
    const float *kr = kb + js[x] * sk;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qr + d), _mm256_loadu_ps(kr + d), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qr + d + 8), _mm256_loadu_ps(kr + d + 8), a1);
    }
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float t = _mm_cvtss_f32(h) * c;
    sc[x] = t;
    if (t > mloc) mloc = t;
  }
  float mold = *m, mnew = mloc > mold ? mloc : mold;
  float muse = mnew == -INFINITY ? 0 : mnew;
  *m = mnew;
  /* the scores and, in lane n, the rescaling of the old sums */
  sc[n] = mold - muse;
  for (int64_t x = 0; x < n; x++) sc[x] -= muse;
  for (int64_t x = n + 1; x < (n + 8) / 8 * 8; x++) sc[x] = -INFINITY;
  for (int64_t x = 0; x <= n; x += 8)
    _mm256_storeu_ps(sc + x, exp2_8(_mm256_loadu_ps(sc + x)));
  float alpha = sc[n], lsum = 0;
  for (int64_t x = 0; x < n; x++) lsum += sc[x];
  if (D % 64 == 0) gather_pv(acc, alpha, sc, vb, sv, js, n, D, 8);
  else gather_pv(acc, alpha, sc, vb, sv, js, n, D, 2);
  *l = *l * alpha + lsum;
}
#endif

int32_t kri_topk_attend(const run *R, scratch *s, int t, const float *q,
                        const float *kb, const float *vb, int64_t nr) {
  const rt_args *a = R->a;
  const kr_topk *tk = &s->tk[t];
  int64_t D = a->D;
  if (tk->err) return (int32_t)tk->err;
  for (int64_t r = 0; r < nr; r++)
    if (tk->cnt[r] < 0) return (int32_t)-tk->cnt[r];
#ifdef TKF_X86
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    for (int64_t r = 0; r < nr; r++) {
      /* the next row's keys and values on their way (rows scattered
       * over the head's K and V, beyond L2 at long L) */
      for (int64_t y = 0; r + 1 < nr && y < tk->cnt[r + 1]; y++) {
        const int64_t j = tk->sel[(r + 1) * tk->k + y];
        for (int64_t d = 0; d < D; d += 16) {
          _mm_prefetch((const char *)(kb + j * a->k.sl + d), _MM_HINT_T0);
          _mm_prefetch((const char *)(vb + j * a->v.sl + d), _MM_HINT_T0);
        }
      }
      for (int64_t x = 0; x < tk->cnt[r]; x += KR_BK) {
        int64_t n = tk->cnt[r] - x < KR_BK ? tk->cnt[r] - x : KR_BK;
        gather_row_avx2(q + r * a->q.sl, kb, a->k.sl, vb, a->v.sl, D,
                        tk->sel + r * tk->k + x, n, s->acc + r * D, s->m + r,
                        s->l + r, R->c);
      }
    }
    return 0;
  }
#endif
  /* consecutive rows' keys packed into key tiles of KR_BK rows (a row's
   * keys may straddle two), each tile one sparse_rows call */
  uint64_t rows[KR_BQ];
  for (int64_t r = 0, x = 0; r < nr;) {
    int64_t r0 = r, fill = 0;
    memset(rows, 0, sizeof rows);
    while (r < nr && fill < KR_BK) {
      int64_t n = tk->cnt[r] - x, take = n < KR_BK - fill ? n : KR_BK - fill;
      const int64_t *js = tk->sel + r * tk->k + x;
      for (int64_t y = 0; y < take; y++) {
        memcpy(s->kg + (fill + y) * D, kb + js[y] * a->k.sl, sizeof(float) * (size_t)D);
        memcpy(s->vg + (fill + y) * D, vb + js[y] * a->v.sl, sizeof(float) * (size_t)D);
      }
      if (take > 0) rows[r - r0] = (take >= 64 ? ~0ull : (1ull << take) - 1) << fill;
      fill += take, x += take;
      if (x < tk->cnt[r]) break;  /* the tile is full mid-row */
      r++, x = 0;
    }
    int64_t n_rows = r - r0 + (r < nr && x > 0);
    kri_sparse_rows(q + r0 * a->q.sl, a->q.sl, s->kg, D, s->vg, D, D, rows,
                    n_rows, s->acc + r0 * D, s->m + r0, s->l + r0, R->c);
  }
  return 0;
}
