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

/* `spatc explain`: the IR, the plan, and for the given sizes a summary over
 * query tiles of bq rows and key tiles of bk keys: tiles full / partial /
 * empty, keys per row (min, median, max). */
int an_explain(FILE *f, const ir_program *p, int64_t H, int64_t Lq,
               int64_t Lk, int64_t bq, int64_t bk, const int64_t *runtime,
               char *err, size_t errlen);

#endif
