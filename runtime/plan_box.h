/* plan_box.h: a where(...) predicate of i and j decided over boxes of
 * (query rows, key range) by interval arithmetic (runtime/plan_box.c), for
 * the tile plan's PBOX instruction (plan_ops.h).  Internal to runtime/. */
#ifndef SPAT_PLAN_BOX_H
#define SPAT_PLAN_BOX_H

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"

/* Receives the spans in ascending order: [k0, k1) FULL or PARTIAL. */
typedef void (*box_put_fn)(void *ctx, int64_t k0, int64_t k1, int64_t kind);

typedef struct box_q {
  const int64_t *P;          /* the plan */
  int64_t tree, len;         /* the predicate's words [tree, tree + len) */
  const plan_env *env;
  int64_t i0, i1;            /* query positions [i0, i1), i0 < i1 */
  int64_t lq, lk;            /* sizes at the current granularity */
  int64_t j0, j1;            /* keys that matter, within [0, lk) */
  int64_t grain;             /* undecided ranges split down to this (>= 1) */
} box_q;

/* Calls put for the keys of [j0, j1) the predicate may hold at for some row
 * of [i0, i1): FULL where it holds at every row (proved), PARTIAL where
 * undecided.  Sound on every (i, j) where the predicate evaluates without a
 * run-time error (errors are the kernel's to find, plan.h).  At most
 * PLAN_BOX_EVALS evaluations of the tree.  Returns false on damaged code. */
bool plan_box(const box_q *q, box_put_fn put, void *ctx);

#endif
