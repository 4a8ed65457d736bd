/* kernel_rt.h: the driver loop of compiled attention kernels (JIT and AOT)
 * and the ABI between it and the generated code (compiler/codegen.h).
 *
 * The generated code supplies per-tile functions; the driver, plain C, owns
 * the loops over (batch, head, query tile), the tile plan (runtime/plan.h),
 * top-k selection, threads and errors:
 *
 *   for each (b, h, query tile of KR_BQ rows), in parallel (a task is a
 *   (b, kv head, query tile) and a subgroup of the query heads sharing the
 *   kv head (GQA): when their plans give the same spans, each key tile
 *   is loaded once and taken by every head of the subgroup in turn):
 *     Q^T of the tile packed; top-k selections of the tile's rows;
 *     spans = plan_tiles(...);
 *     for each key tile of KR_BK keys of a run of touching spans:
 *       inside one PLAN_FULL span: tile(..., maskt = NULL, ...)
 *       otherwise: mask_0(...) per row (64-bit row words), transposed to
 *                  key words, then tile(..., maskt, ...); skipped when no
 *                  row allows a key, maskt NULL when all rows allow every
 *                  key; a tile allowing few pairs (<= 1/8 of them) is kept
 *                  aside: its pairs join the row's from the tile's other
 *                  such key tiles, and the driver runs them at the end, per
 *                  row over its allowed keys only, with the same
 *                  online-softmax update of acc, m, l
 *     o = acc / l, lse = m ln 2 + ln l   (rows with l == 0: o = 0, -inf)
 *
 * A pattern that reads no head (plan_reads_head) has the same spans and row
 * words in every head of a batch: they are computed once per run, for each
 * query tile, and every head's tasks take them.
 *
 * Run-time errors are the contract's, over the whole domain of the pattern,
 * whatever the plan skips: before any tile, per head, errat at the first
 * point finds argument errors, plan_where_may_fail rules out predicate
 * errors or else an exact scan of errat over every (i, j) in row order finds
 * the first one, the one the interpreter reports.
 */
#ifndef SPAT_KERNEL_RT_H
#define SPAT_KERNEL_RT_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"

#define KR_BQ 64   /* query rows per tile (4 vectors of 16 lanes) */
#define KR_BK 64   /* keys per tile; also the widest mask call */
#define KR_DR 64   /* rows per decode tile call (kr_dtile_fn) */

/* State of one top-k node for the rows of the current query tile. */
typedef struct kr_topk {
  int64_t *sel;    /* [row][k] selected keys, ascending */
  int64_t *cnt;    /* per row: how many; < 0: -(error code) of the row */
  int64_t ibase;   /* first row (at the node's granularity) held */
  int64_t k;       /* row stride of sel */
  int64_t err;     /* nonzero: error code of evaluating k or blocks sizes */
} kr_topk;

typedef struct kr_env kr_env;
typedef struct kr_route kr_route;  /* route(C)'s cluster ids (route.h) */

/* random(r, seed) with r > KR_RANDOM_INLINE: instead of r hashes per mask
 * call, the mask code asks the driver for the word of the row's key set
 * holding key j0 (and the word after it).  The set { hash(seed, h, i, t) mod
 * lk : t < r } is drawn once per row and random node, as the interpreter
 * draws it (t ascending, stopping once all lk keys are in): a row costs
 * min(r, draws to hit every key) hashes whatever r is.  Returns two words
 * (bit x of word w = key 64 (j0 / 64 + w) + x), all zero past lk or when
 * out of memory (the run then fails with RT_ENOMEM).  Memory: KR_BQ rows of
 * lk bits per such node and worker, 8 Lk bytes (8 MB at Lk = 2^20). */
#define KR_RANDOM_INLINE 64
typedef const uint64_t *(*kr_random_fn)(const kr_env *e, int64_t node,
                                        int64_t i, int64_t r, int64_t seed,
                                        int64_t lk, int64_t j0);

/* A run's rows of int inputs used as index sets, as bitmaps (built by
 * plan_sets.c from the rows table; read by the mask code of cols(x[..]) and
 * diagonals(x[..]) instead of scanning the row's items).  Entry 2 k is
 * input k's rows for cols, 2 k + 1 for diagonals; bits NULL: none (the mask
 * code scans).  Row f is the words bits + f * wpr: word 0 and the last two
 * are zero, bit p of the set is bit 64 + p (0 <= p < nbits).
 *   cols:      p = the column, the row's items v as v < 0 ? v + base : v
 *              (base = Lk at token level: used only where lk == base);
 *   diagonals: p = base - v (so for query i, key j's bit is p = j - i + base).
 * The mask code reads a word only when the row's index f < rows, its item
 * count is width (the dimensions it evaluates may differ from the table's,
 * as a paged sequence's Lk does) and the word's bits lie in [0, nbits);
 * else it scans: the bitmaps need not cover values no pair can reach. */
typedef struct kr_setbits {
  const uint64_t *bits;
  int64_t wpr, nbits, base, rows, width;
} kr_setbits;

/* What mask code reads (all 8-byte words; codegen indexes it by word). */
struct kr_env {
  int64_t h, H, Lq, Lk;            /* query head; sizes at token level */
  const int64_t *runtime;          /* runtime scalars */
  const int32_t *const *inputs;    /* input arrays (Lk int32 each) */
  void *const *externs;            /* bool f(int64_t, ...) */
  kr_topk *topk;                   /* one per top-k node, post-order */
  kr_random_fn random_row;         /* word 8 */
  void *random_cache;              /* the driver's, per worker */
  /* route(C) (runtime/route.h), words 10 and 11: the cluster ids of
   * the query rows (by row index) and of the keys of the (b, h) at hand;
   * NULL when the pattern has no route */
  const int32_t *route_q, *route_k;
  int64_t b, B, Hkv, D;            /* batch index and the other sizes
                                      (language version 2) */
  const kr_setbits *setbits;       /* word 16: 2 n_inputs entries, or NULL */
};

/* The env of batch b, query head h of a run (topk and random state
 * unset).  A paged KV cache's sequences are each a run of B = 1 with their
 * own Lk, as the interpreter runs them. */
static inline kr_env kr_env_at(const rt_args *a, int64_t b, int64_t h) {
  kr_env e = {h, a->H, a->Lq, a->Lk, a->runtime, a->inputs, a->externs, NULL,
              NULL, NULL, NULL, NULL, b, a->B, a->Hkv, a->D, NULL};
  if (a->paged) e.Lk = a->paged->seq_lens[b], e.b = 0, e.B = 1;
  return e;
}

/* Generated functions.  Error codes are 1-based indices into errors[].
 * mask: bit t of *out = M(h, i, j0 + t) for t < n (1 <= n <= KR_BK = 64),
 *   at the granularity of the root (lq, lk: sizes at that granularity).
 * tkinfo: out = {k, g, lq_g, lk_g} of top-k node t (g: its granularity).
 * tile: one query tile (Q^T [D][KR_BQ], rows past the tile zero) against
 *   ncols keys (1 <= ncols <= KR_BK) of k/v (row strides sk, sv); updates
 *   acc [KR_BQ][D], running max m [KR_BQ] (log2 domain, scores times c =
 *   scale * log2 e) and sums l [KR_BQ]; maskt [KR_BK] words, bit r of word
 *   j set = row r allows key j, or NULL: all allowed; st: KR_ST_FLOATS(dt, D)
 *   floats of scratch.  k, v (and sk, sv in elements) are of the kernel's
 *   dtype; Q^T is float [D][KR_BQ] for f32 and f16 (the driver widens q),
 *   and for bf16 pairs of dimensions [D / 2][KR_BQ][2] of bf16, the
 *   operand layout of vdpbf16ps. */
#define KR_ST_FLOATS(dtype, D) \
  (KR_BK * KR_BQ + ((dtype) ? 2 * KR_BK * (D) + (D) * KR_BQ : 0))
typedef int32_t (*kr_mask_fn)(const kr_env *e, int64_t i, int64_t j0,
                              int64_t n, int64_t lq, int64_t lk,
                              uint64_t *out);
typedef int32_t (*kr_tkinfo_fn)(const kr_env *e, int64_t *out);
/* errat: the first run-time error (its code; 0: none) of the whole pattern
 * at token position (i, j) of head e->h, in the contract's order (every
 * operand of the pattern operators, primitive arguments first, kids left to
 * right; topk's P over its whole row when whole != 0); detail[0..1] get the
 * values that replace the bytes \1 and \2 of the message. */
typedef int32_t (*kr_errat_fn)(const kr_env *e, int64_t i, int64_t j,
                               int64_t whole, int64_t *detail);
typedef void (*kr_tile_fn)(const void *qt, const void *k, int64_t sk,
                           const void *v, int64_t sv, int64_t ncols,
                           const uint64_t *maskt, float *acc, float *m,
                           float *l, float c, float *st);

/* The decode tile (kernel kind "decode", codegen_decode.c): the same
 * online-softmax step for nr (1..KR_DR) unpadded query rows q [nr][D]
 * (row-major, row stride D) against ncols (1..KR_BK) keys; acc [nr][D],
 * m, l [nr] as for kr_tile_fn; rowm: nr words, bit t of rowm[r] = row r
 * allows key t, or NULL: all allowed; st: KR_DR * KR_BK floats. */
typedef void (*kr_dtile_fn)(const float *q, int64_t nr, const float *k,
                            int64_t sk, const float *v, int64_t sv,
                            int64_t ncols, const uint64_t *rowm, float *acc,
                            float *m, float *l, float c, float *st);
/* The backward tiles (kernel kinds bwd_dq and bwd_dkdv, driven by
 * runtime/kernel_bwd.c), one signature for both.  A query tile (Q^T and
 * dO^T [D][KR_BQ], for dkdv also Q and dO [KR_BQ][D]; rows past the tile
 * zero) against ncols keys of k/v (row strides sk, sv); rowc [2][KR_BQ]:
 * per row lse log2 e (+inf for rows past the tile or without keys), then
 * Delta - dlse; maskt and c as for kr_tile_fn; st: 2 KR_BK KR_BQ floats.
 * With s the row's log2-domain score c q.k, P = 2^(s - lse log2 e) and
 * dS = P (dO.v - Delta + dlse) (the score hook multiplies by dE/ds):
 *   dq:   ga [KR_BQ][D] += dS K          (gb, gq unused)
 *   dkdv: ga [KR_BK][D] += dS^T Q,  gb [KR_BK][D] += P^T dO, and when gq
 *         is not NULL also gq [KR_BQ][D] += dS K (the fused pass)
 * (the driver multiplies dq and dk by scale). */
typedef void (*kr_bwd_fn)(const float *qt, const float *dot, const float *qr,
                          const float *dor, const float *rowc, const float *k,
                          int64_t sk, const float *v, int64_t sv,
                          int64_t ncols, const uint64_t *maskt, float *ga,
                          float *gb, float *gq, float c, float *st);
/* The tile of a pattern with `with score E` (language version 2): the same
 * step with E applied to each score before the online softmax; i0 is the
 * position of the tile's first row, j0 its first key.  Returns 1 when a
 * pair it allows read a float input out of range (its value is then
 * wrong; the driver reports the first such error, kr_score_error), else
 * 0.  Rows past the query tile must be masked (maskt not NULL). */
typedef int32_t (*kr_stile_fn)(const kr_env *e, int64_t i0, int64_t j0,
                               const float *qt, const float *k, int64_t sk,
                               const float *v, int64_t sv, int64_t ncols,
                               const uint64_t *maskt, float *acc, float *m,
                               float *l, float c, float *st);
/* The backward tiles of such a pattern: kr_bwd_fn's after env, i0, j0 (as
 * kr_stile_fn's) and gin, returning kr_stile_fn's flag.  E in place of s
 * for P, dS times dE/ds; st holds 4 KR_BK KR_BQ floats.  The dkdv tile,
 * given gin (double *[n_inputs], NULL entries skipped), adds into gin[x]
 * the gradient of float input x through E of every pair it allows. */
typedef int32_t (*kr_sbwd_fn)(const kr_env *e, int64_t i0, int64_t j0,
                              double *const *gin, const float *qt,
                              const float *dot, const float *qr,
                              const float *dor, const float *rowc,
                              const float *k, int64_t sk, const float *v,
                              int64_t sv, int64_t ncols, const uint64_t *maskt,
                              float *ga, float *gb, float *gq, float c,
                              float *st);
/* The first run-time error of E at the pair (e->h, i, j): 0 or a code as
 * kr_errat_fn's, detail[0..1] its values. */
typedef int32_t (*kr_serrat_fn)(const kr_env *e, int64_t i, int64_t j,
                                int64_t *detail);
/* Elements of float input x for e's sizes (0 for an int input). */
typedef int64_t (*kr_inlen_fn)(const kr_env *e, int64_t x);

typedef struct th_pool th_pool;

/* A compiled kernel as the driver sees it (filled by jit.c or aot code). */
typedef struct kr_kernel {
  int64_t D;
  int dtype;                    /* rt_dtype of q, k, v, o */
  const int64_t *plan;          /* tile plan words (runtime/plan.h) */
  int n_runtime, n_inputs, n_externs;
  int n_topk;
  kr_mask_fn *mask;             /* n_topk + 1: the root, then P of topk t */
  kr_tkinfo_fn *tkinfo;         /* n_topk */
  kr_tile_fn tile;
  kr_dtile_fn dtile;            /* NULL: no decode path (prefill tiles) */
  kr_stile_fn stile;            /* non-NULL: the pattern's score tile, used
                                   instead of tile (no sparse-row path) */
  kr_sbwd_fn sbwd_dq, sbwd_dkdv; /* with stile: its backward tiles */
  kr_serrat_fn serrat;          /* with stile: E's errors at a pair */
  kr_inlen_fn inlen;            /* with stile: float input sizes */
  kr_errat_fn errat;
  const char *const *errors;    /* messages, "file:line:col: error: what",
                                   \1 and \2 standing for errat's values */
  int n_errors;
  int threads;                  /* default thread count (0: all cores) */
  th_pool *pool;                /* created on first run */
  int pool_threads;             /* thread count the pool was made with */
  int busy;                     /* a run holds the pool (atomic) */
} kr_kernel;

/* The decode driver (runtime/kernel_decode.c) runs a call instead of the
 * query tiles above when the kernel has a dtile and Lq <= kr_decode_max_lq
 * (or always with a paged KV cache): per (batch, KV head, key part) task,
 * the rows of every query head of the KV head packed into one unpadded
 * decode tile, each K/V row loaded once per KV head; the keys split into
 * parts across threads when there are fewer (batch, KV head) pairs than
 * threads, parts merged by log-sum-exp (flash-decoding).  The plan, mask,
 * top-k and error code are the same. */
extern int64_t kr_decode_max_lq;  /* default KR_DECODE_MAX_LQ; for benches */
/* 0: the prefill task takes one query head (the order before GQA
 * grouping); for benches and tests.  Default 1. */
extern int kr_gqa_group;
/* Spans and row words of a pattern that reads no head, computed once for
 * all heads (share_spans): at most kr_share_words mask words (default 2^22;
 * a query tile past it has each head evaluate its own), none when
 * kr_share_spans is 0 (default 1); for tests and benches. */
extern int kr_share_spans;
extern int64_t kr_share_words;
/* GQA prefill (kernel_rt.c's task): up to KR_GQA_MAX query heads sharing a
 * KV head take each key tile in turn, each with its own slot of
 * KR_GQA_SLOT(D) floats: Q^T, acc [KR_BQ][D], m, l [KR_BQ], 16-bit q rows
 * [KR_BQ][D]; as many heads as keep their Q^T and acc within
 * KR_GQA_BYTES (L2), so the key tile stays in L1. */
#define KR_GQA_MAX 8
#define KR_GQA_SLOT(D) (3 * (D) * KR_BQ + 2 * KR_BQ)
#define KR_GQA_BYTES (256 * 1024)
#define KR_DECODE_MAX_LQ 32

/* Runs attention with the kernel; RT_ERANGE etc. with a message in err. */
rt_status kr_run(kr_kernel *k, const rt_args *a, char *err, size_t errlen);
void kr_release(kr_kernel *k);  /* frees the pool (not the kernel) */

/* The backward pass (runtime/kernel_bwd.c) with the tiles dq and dkdv:
 * dq, dk, dv into g from a's q, k, v, o and lse and g's dout (and dlse);
 * a and g checked by the caller (args_make, args_make_grads). */
rt_status kr_run_backward(kr_kernel *k, kr_bwd_fn dq, kr_bwd_fn dkdv,
                          const rt_args *a, const rt_grad *g, char *err,
                          size_t errlen);

/* --- the forward's pieces, for kernel_bwd.c ----------------------------- */

/* The kernel's pool for a run with threads (0: the kernel's default), or a
 * new one (*own) when another run holds it; given back by kr_pool_give. */
th_pool *kr_pool_take(kr_kernel *k, int threads, th_pool **own);
void kr_pool_give(kr_kernel *k, th_pool *own);
/* The shape checks of kr_run: NULL, or the message (maybe in buf). */
const char *kr_check_args(const kr_kernel *k, const rt_args *a, char *buf,
                          size_t n);
/* The contract's run-time errors of a run, found as kr_run finds them. */
rt_status kr_check_errors(const kr_kernel *k, const rt_args *a, th_pool *pool,
                          char *err, size_t errlen);
/* The message of a mask function's error code (with its values det). */
void kr_error_text(const kr_kernel *k, int32_t code, char *buf, size_t n);
void kr_error_text_det(const kr_kernel *k, int32_t code, const int64_t det[2],
                       char *buf, size_t n);
/* After a score tile flagged a float input index out of range: the first
 * such error in the interpreter's row order (b, h, row, then key), found
 * with the masks and spat_serrat (runtime/kernel_score.c). */
rt_status kr_score_error(kr_kernel *k, const rt_args *a, char *err,
                         size_t errlen);
void kr_transpose64(uint64_t a[64]);  /* bit r of a[c] -> bit c of a[r] */

/* A worker's state for the forward's masks: *env for query rows [r0, r1)
 * of (b, h); with select, its top-k selections made by the forward's code
 * (bit-identical), env->topk pointing at them until the next call.  0: out
 * of memory.  kr_masker_oom: a random key set could not be stored. */
typedef struct kr_masker kr_masker;
kr_masker *kr_masker_new(kr_kernel *k, const rt_args *a);
void kr_masker_free(kr_masker *m);
int kr_masker_rows(kr_masker *m, int64_t b, int64_t h, int64_t r0, int64_t r1,
                   int select, kr_env *env);
int kr_masker_oom(const kr_masker *m);
/* The run's route(C) ids (route.h) and rows table (plan_sets.h) for the
 * masker's env, either NULL. */
struct plan_rows;
void kr_masker_route(kr_masker *m, const kr_route *r, const struct plan_rows *rows);
/* A copy of the last selections (n_topk kr_topk and their arrays in one
 * block: free() it), for env->topk later; NULL when out of memory. */
kr_topk *kr_masker_record(const kr_masker *m);

#endif
