/* analyze.h: pattern IR -> tile plan (runtime/plan.h), and its explanation. */
#ifndef SPAT_ANALYZE_H
#define SPAT_ANALYZE_H

#include <stdio.h>

#include "plan.h"
#include "ir.h"

/* The plan as int64 words (malloc: the caller frees it); NULL with err on
 * failure.  p is only read: any number of threads may build plans of one
 * program at once. */
int64_t *an_build(const ir_program *p, char *err, size_t errlen);

/* route(C) in the compiled kernels (plan_ops.h's route table): the
 * pattern's route node when it has exactly one and C's centroid count is a
 * constant (into *n), else NULL; *several is set when it has more than one
 * (or too many paths to count them). */
const ir_node *an_route(const ir_program *p, int64_t *n, bool *several);

/* The key tiles of bk keys that query rows [r0, r1) visit under the plan:
 * kt[q] (q < ceil(Lk / bk)) = 0 none of its keys is in a span, 2 FULL
 * spans cover it all, 1 otherwise (the mask is evaluated there).  sp[cap]
 * (cap >= plan_max_spans) receives the spans; returns their number, or -1
 * with err on a run-time error. */
int64_t an_tile_classes(const int64_t *plan, const plan_env *env, int64_t r0,
                        int64_t r1, int64_t bk, plan_span *sp, int64_t cap,
                        int64_t *kt, char *err, size_t errlen);

/* `spatc explain`: the IR, the plan, and for the given sizes a summary over
 * query tiles of bq rows and key tiles of bk keys: tiles full / partial /
 * empty, keys per row (min, median, max). */
int an_explain(FILE *f, const ir_program *p, int64_t H, int64_t Lq,
               int64_t Lk, int64_t bq, int64_t bk, const int64_t *runtime,
               char *err, size_t errlen);

#endif
