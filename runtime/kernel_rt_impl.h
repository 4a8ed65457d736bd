/* kernel_rt_impl.h: what the two drivers of compiled kernels share, the
 * prefill driver (kernel_rt.c: 64-row query tiles per head) and the decode
 * driver (kernel_decode.c: the unpadded rows of every head of a KV head,
 * keys split across threads): the per-worker scratch, the run, and the
 * helpers both call (errors, top-k selection, random key sets, the sparse
 * per-row fallback).  Internal to runtime/.
 */
#ifndef SPAT_KERNEL_RT_IMPL_H
#define SPAT_KERNEL_RT_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "kernel_rt.h"
#include "plan.h"
#include "route.h"
#include "threads.h"

typedef struct tk_buf {
  int64_t *sel, *cnt;
  size_t sel_cap, cnt_cap;
  int64_t rows;       /* rows of the last selection (0: none or an error) */
} tk_buf;

/* Key sets of random nodes (kr_random_fn): per node, one slot per row of a
 * query tile (rows at any granularity are at most KR_BQ consecutive
 * integers, so slot i % KR_BQ is theirs alone), each tagged with all the set
 * depends on. */
typedef struct rnd_tag {
  int64_t h, i, r, seed, lk;
  int valid;
} rnd_tag;

typedef struct rnd_node {
  uint64_t *bits;     /* KR_BQ slots of `words` words */
  int64_t words;      /* lk / 64 + 2: a zero word past every key */
  rnd_tag tag[KR_BQ];
} rnd_node;

typedef struct rnd_cache {
  rnd_node *nodes;
  int64_t n_nodes;
  int oom;            /* a set could not be stored: the run fails */
} rnd_cache;

/* Pairs of the per-row path deferred to the end of a query tile (or until
 * a row holds KR_PEND): each row's keys, positions in the head's k and v
 * rows, so the row is scored, exponentiated and rescaled once for all the
 * sparse key tiles it meets (float32 without a score tile). */
#define KR_PEND 64
typedef struct pend {
  int64_t key[KR_BQ * KR_PEND];
  int32_t n[KR_BQ];
  int32_t any;
} pend;

typedef struct scratch {
  float *qt;          /* [D][KR_BQ], packed as kr_tile_fn says for the dtype */
  float *qf, *kf, *vf; /* 16-bit dtypes: the tile's q rows [KR_BQ][D] and a
                          key tile's k and v rows [KR_BK][D] as float, for
                          sparse_rows */
  float *acc;         /* [KR_BQ][D] */
  float *m, *l;       /* [KR_BQ] */
  float *st;          /* KR_ST_FLOATS(dtype, D) */
  uint64_t rows[KR_BQ];  /* row words of a partial tile */
  uint64_t cols[KR_BK];  /* the same transposed: key words */
  plan_span *spans;
  int64_t span_cap;
  plan_memo *pmemo;   /* the plan's per-key predicates, this run (or NULL) */
  kr_topk *tk;        /* n_topk */
  tk_buf *tb;         /* n_topk */
  float *kg, *vg;     /* [KR_BK][D]: gathered keys and values (joins) */
  double *qd;         /* [D] */
  double *km;         /* key-block means [lkg][D] of (km_b, km_h, km_g) */
  size_t km_cap;
  int64_t km_b, km_h, km_g, km_n;
  int64_t tk_lqg, tk_lkg; /* sizes of the top-k node being selected */
  float *kn;          /* |k_j| of (kn_b, kn_h), Lk of them */
  size_t kn_cap;
  int64_t kn_b, kn_h, kn_n;
  float *tf;          /* fast top-k: per row, its kept scores and keys */
  int64_t *tj;
  size_t tf_cap, tj_cap;
  float *sc;          /* [KR_BK][KR_BQ] scores of a key tile */
  double *hs;         /* heap of scores */
  int64_t *hj;        /* and their keys */
  size_t heap_cap;
  rnd_cache rnd;
  float *grp;         /* GQA: KR_GQA_MAX slots of KR_GQA_SLOT(D) floats */
  pend *pd;           /* the head's deferred pairs: pd_own or a GQA slot's */
  pend *pd_own, *gpd; /* gpd: KR_GQA_MAX slots, with grp */
  plan_span *spans2;  /* GQA: another head's spans, compared */
  int64_t span2_cap;
  rnd_cache grnd[KR_GQA_MAX]; /* GQA: each slot's random key sets */
  float *jw;          /* joins (join_run): KR_JQ tiles' Q^T, acc, m, l, then
                         a key block's k and v rows of the dtype */
} scratch;

/* Query tiles of a join task: up to KR_JQ tiles of one group, run against
 * its keys gathered once, a block of at most jk keys at a time. */
#define KR_JQ 8

/* The spans of every query tile, and the row words of its masked key tiles
 * in the order the tiles are walked, computed once for all heads of a
 * batch (of every batch, nb = 1) when the pattern reads no head
 * (kernel_rt.c share_spans). */
typedef struct span_tab {
  int64_t nb;
  plan_span **sp;  /* [nb * n_qt] */
  int64_t *n;
  uint64_t **mk;   /* [nb * n_qt]: KR_BQ words a masked tile, or NULL */
  _Atomic int64_t total; /* spans stored; past KR_SPAN_TAB_MAX the table is
                            dropped */
  _Atomic int64_t words; /* mask words stored; past kr_share_words (default
                            KR_MASK_TAB_MAX) a query tile's heads evaluate
                            their own */
} span_tab;
#define KR_SPAN_TAB_MAX (1 << 21)
#define KR_MASK_TAB_MAX (1 << 22)

typedef struct join_tiles {
  int64_t *x0, *group;  /* per task: first grouped row, group (-1: rows
                           without keys); its rows are [x0, x0 + KR_JQ KR_BQ)
                           cut at the group's end */
  int64_t n;
} join_tiles;

typedef struct run {
  kr_kernel *k;
  const rt_args *a;
  int64_t n_qt;       /* query tiles per head */
  int64_t n_sub;      /* tasks per (b, kv head, query tile): subgroups of
                         the query heads sharing the kv head */
  float c;            /* scale * log2 e */
  double scale;
  scratch *ws;        /* per worker */
  const plan_groups *groups; /* joins: per head (or one for all), else NULL */
  const join_tiles *jtiles;   /* their query tiles */
  int groups_per_head;        /* 0: one for all, 1: per head, 2: per (b, h) */
  int64_t join_tiles;         /* join tasks per head, the most of any head */
  int64_t join_keys;          /* keys per gathered block of a join task */
  int topk_root;              /* kri_topk_root */
  const struct plan_rows *rows; /* the run's rows table (plan_sets.h), or NULL */
  const kr_route *route;     /* route(C)'s cluster ids (route.h), or NULL */
  span_tab *spans;           /* shared spans, or NULL: per head */
  _Atomic int failed;
  _Atomic int score_bad;      /* a score tile flagged a float input index */
  rt_status st;
  char *err;
  size_t errlen;
} run;

/* One clone per vector width, chosen by an ifunc resolver at load time.
 * ThreadSanitizer instruments resolvers, which run before its run time is
 * up and crash the program: its builds (make tsan) take the default only. */
#if defined(__SANITIZE_THREAD__)
#define KR_CLONES
#else
#define KR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

/* kernel_rt.c's helpers, for kernel_decode.c and kernel_topk.c. */
void kri_fail(run *R, rt_status st, const char *msg);
void kri_fail_code(run *R, int32_t code);
int kri_scratch_init(scratch *s, const kr_kernel *k);
void kri_scratch_free(scratch *s, int n_topk);
/* Selections of top-k node t for positions [i0, i1] of env->h into
 * s->tk[t] (buffers s->tb[t]); 0 when out of memory. */
int kri_topk_rows(run *R, scratch *s, int t, const kr_env *env,
                  const void *qb, const void *kb, int64_t i0, int64_t i1,
                  int64_t b, int64_t hk);
/* The same knowing that P's keys for these rows lie in spans cs[0, ncs)
 * (sorted, disjoint; NULL: anywhere): only those key tiles are scored. */
int kri_topk_rows_in(run *R, scratch *s, int t, const kr_env *env,
                     const void *qb, const void *kb, int64_t i0, int64_t i1,
                     int64_t b, int64_t hk, const plan_span *cs, int64_t ncs);
/* The selections just made (s->tk, s->tb) as the plan reads them, into
 * out[0, n_topk) when n_topk <= max; returns how many (0: none). */
#define KR_PLAN_TOPK 16
int64_t kri_topk_views(const scratch *s, int n_topk, plan_topk *out,
                       int64_t max);
/* The top-k node that is the pattern's root, at token granularity, so that
 * a row's selection is exactly the keys it attends to; -1: none. */
int kri_topk_root(const kr_kernel *k);
/* Attention of the rows [0, nr) of the current query tile (f32; q: the
 * first row) to the keys selected for them by the root top-k node t
 * (s->tk[t]), gathered, into s->acc, s->m, s->l: no mask is evaluated.
 * Returns 0, or the error code of the selection. */
int32_t kri_topk_attend(const run *R, scratch *s, int t, const float *q,
                        const float *kb, const float *vb, int64_t nr);
const uint64_t *kri_random_row(const kr_env *e, int64_t node, int64_t i,
                               int64_t r, int64_t seed, int64_t lk,
                               int64_t j0);
/* Rows r < nr of a tile, bit t of rows[r] = key t allowed, one row at a
 * time over its allowed keys only (masked keys never touch v). */
void kri_sparse_rows(const float *q, int64_t sq, const float *kt, int64_t sk,
                     const float *vt, int64_t sv, int64_t D,
                     const uint64_t *rows, int64_t nr, float *accb, float *mb,
                     float *lb, float c);

/* Q^T of rows [0, nr) of a float32 tile (row stride sq), D a multiple of
 * 16, into qt [D][KR_BQ], rows past nr zero; a full tile's next KR_BQ
 * rows are prefetched into L2. */
void kri_pack_qt_f32(float *qt, const float *q, int64_t sq, int64_t nr,
                     int64_t D);
/* Does a tile's v (nc rows of D elements of rt_dtype dt, row stride sv)
 * hold a NaN or an infinity (all-ones exponent bits)?  A masked key weighs
 * 0, but 0 * inf is NaN: masked tiles that do go per row.  Asked of masked
 * tiles only, on the rows they read next anyway. */
int kri_tile_v_nonfinite(const void *vt, int dt, int64_t sv, int64_t nc,
                         int64_t D);

/* The decode driver (kernel_decode.c): nonzero when it runs a (checked,
 * error-free) run rather than the prefill tiles; then kd_run does. */
int kd_wanted(const kr_kernel *k, const rt_args *a);
rt_status kd_run(kr_kernel *k, const rt_args *a, th_pool *pool, char *err,
                 size_t errlen);

#endif
