/* plan.h: the tile plan, which key ranges each query tile must visit.
 *
 * Built from an ir_program by an_build (compiler/analyze.c, no LLVM) as a
 * flat array of int64 words with no pointers, so that it is the same in a JIT
 * kernel, an AOT object file (as a constant) and on disk.  Its size depends
 * on the pattern's structure only, never on L: a window pattern's plan is a
 * few dozen words at L = 1,048,576 as at L = 4096.
 *
 * Evaluated at run time by plan_tiles (runtime/plan.c), which needs no
 * compiler: the JIT's and AOT's kernels call it for each query tile.
 */
#ifndef SPAT_PLAN_H
#define SPAT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plan_kind {
  PLAN_FULL = 1,    /* every row of the tile allows every key of the span */
  PLAN_PARTIAL = 2, /* the mask must be evaluated per element (by compiled
                       code), or the keys are top-k candidates */
};

typedef struct plan_span {
  int64_t k0, k1;   /* key positions [k0, k1), 0 <= k0 < k1 <= Lk */
  int64_t kind;     /* enum plan_kind */
} plan_span;

/* The selections of a top-k node for the rows of the tile being planned
 * (made by the kernel driver before the plan runs): rows ibase .. ibase +
 * rows - 1 at the node's granularity, row r's keys (ascending, distinct)
 * sel[r k .. r k + cnt[r]); cnt[r] < 0: the row has an error. */
typedef struct plan_topk {
  const int64_t *sel, *cnt;
  int64_t ibase, rows, k;
} plan_topk;

typedef struct plan_env {
  int64_t h, H, Lq, Lk;     /* query head and sizes (token granularity) */
  const int64_t *runtime;   /* the program's runtime scalars */
  const int32_t *const *inputs; /* its input arrays (Lk int32 each), or NULL:
                               where(x[i] == x[j]) is then PARTIAL everywhere */
  int64_t b, B, Hkv, D;     /* batch index and sizes (version 2); B = 0:
                               unknown, then x[b, i] == x[b, j] is PARTIAL
                               and plan_where_may_fail says a predicate
                               reading b, B, Hkv, D or a shaped input may
                               fail */
  const struct plan_rows *rows; /* the run's sorted rows of inputs used as
                               index sets (plan_sets.h), or NULL: such sets
                               are then PARTIAL everywhere */
  struct plan_memo *memo;   /* the caller's cache of per-key predicates, or
                               NULL (below) */
} plan_env;

/* A cache of the FULL runs of per-key where-predicates (`where(j % l >=
 * l - c)`), which depend on the head, the batch index and the sizes but not
 * on the query tile: plan_tiles evaluates each key of such a predicate once
 * per (head, batch index) instead of once per query tile.  Only keys some
 * call asked for are evaluated, in the order a call without the cache would
 * evaluate them, so the spans and the errors are the same with or without
 * it.  One per thread and per run (its entries are keyed by the head, the
 * batch index, the sizes and the addresses of the runtime scalars and
 * inputs, whose contents must not change while it is in use); NULL from
 * plan_memo_new when out of memory, and a memo that cannot grow is simply
 * not used. */
typedef struct plan_memo plan_memo;
plan_memo *plan_memo_new(void);
void plan_memo_free(plan_memo *m);

/* Lq and Lk at most this (larger sizes are an error, in plan_tiles and in
 * the kernel driver): every bound the plan derives from positions and
 * arguments (any int64) is then exact after its saturating arithmetic,
 * because a saturated value lies beyond [0, Lk]; and the mask code, which
 * clamps sizes at 2^62 (beyond every distance), never overflows. */
#define PLAN_MAX_LEN ((int64_t)1 << 61)

/* The position of query row 0 (the row of position i is i - offset):
 * Lk - Lq when Lq <= Lk, else 0, or 0 for a pattern aligned(top_left).  Every
 * row-to-position map of the drivers and the plan goes through this. */
int64_t plan_row_offset(const int64_t *plan, int64_t Lq, int64_t Lk);
/* Does the pattern read the batch index b?  Then masks, plans' PARTIAL
 * keys and run-time errors may differ per batch, and the drivers check the
 * errors per (b, h); else batch 0 stands for every batch. */
bool plan_reads_batch(const int64_t *plan);
/* Does the pattern read the head (h, or random, topk, route, an extern)?
 * Else every head of a batch has the same spans for a query tile. */
bool plan_reads_head(const int64_t *plan);

/* Query rows [r0, r1) (row indices; positions are r + plan_row_offset):
 * writes the key spans to visit into out, sorted, disjoint, at
 * most cap of them.  A key in no span is allowed for no row of the tile.
 * Returns the number of spans (if > cap, only cap were written: call again
 * with a larger buffer), or -1 with a message in err on a run-time error
 * (negative size, overflow, ...). */
int64_t plan_tiles(const int64_t *plan, const plan_env *env, int64_t r0,
                   int64_t r1, plan_span *out, int64_t cap, char *err,
                   size_t errlen);
/* The same knowing the selections of the pattern's top-k nodes for these
 * rows: topk[0, n_topk), one per node in post-order (the order of their
 * topk instructions).  A node's keys are then the ones selected (FULL where
 * every row selected them) instead of all of P's, PARTIAL. */
int64_t plan_tiles_topk(const int64_t *plan, const plan_env *env,
                        const plan_topk *topk, int64_t n_topk, int64_t r0,
                        int64_t r1, plan_span *out, int64_t cap, char *err,
                        size_t errlen);

/* 0 when no where(...) predicate of the plan's pattern can fail (overflow,
 * division by zero, an input index out of range) at any (i, j) of head
 * env->h, 1 when one may (runtime/plan_safe.c): then the caller finds the
 * first error, if any, by evaluating the mask exactly.  Needs
 * Lq, Lk >= 1. */
int plan_where_may_fail(const int64_t *plan, const plan_env *env);

/* A pattern where(f1(i) == g1(j) && ...) as groups of query rows and keys
 * with equal values (runtime/plan_join.c): row qrow[x] for x in
 * [qs[t], qs[t + 1]) allows exactly the keys key[y], y in [ks[t],
 * ks[t + 1]), both ascending; rows qrow[n_rows .. Lq) allow no key. */
typedef struct plan_groups {
  int64_t n_groups, n_rows;
  int64_t *qrow, *key;    /* Lq rows and the keys of the groups */
  int64_t *qs, *ks;       /* n_groups + 1 each */
} plan_groups;

/* 1: the groups of head env->h in *g (free with plan_groups_free); 0: the
 * plan has no join table, or its values are too spread for a counting sort,
 * or evaluating them fails (run the tile plan instead); -1: out of memory.
 * Needs the inputs of Lk entries. */
int plan_join(const int64_t *plan, const plan_env *env, plan_groups *g);
void plan_groups_free(plan_groups *g);
/* The same grouping of Lq rows and Lk keys by given codes in [0, range)
 * (code[r] for row r, code[Lq + j] for key j; route's cluster ids): 1, or
 * -1 when out of memory. */
int plan_group_codes(int64_t Lq, int64_t Lk, const int64_t *code, int64_t range,
                     plan_groups *g);
/* Do the join table's values depend on the head? */
bool plan_join_reads_head(const int64_t *plan);

/* Number of int64 words of a plan (plan[0] holds it). */
static inline int64_t plan_words(const int64_t *plan) { return plan[0]; }

/* The most spans plan_tiles can return for this plan, for any sizes and tile
 * (plan[2]): an out buffer this large never needs a second call. */
static inline int64_t plan_max_spans(const int64_t *plan) { return plan[2]; }

#endif
