/* plan_sets.h: rows of int inputs used as index sets (vidx[h] in
 * cols(vidx[h]) or diagonals(sidx[h])), sorted once per run into intervals
 * of consecutive values, for the tile plan's SROW instruction (plan_ops.h).
 *
 * The plan's rows table names the inputs and their dimensions; a driver
 * builds the table of a run before its tiles (plan_rows_new) and gives it
 * to plan_tiles in plan_env.rows, so that a query tile's key list from such
 * a set costs its intervals, not a sort, and the tiles with no allowed pair
 * are skipped.  Without a table (NULL) such a set is PARTIAL over every key
 * (sound; the mask code decides each key).  Read-only once built: shared by
 * the run's threads. */
#ifndef SPAT_PLAN_SETS_H
#define SPAT_PLAN_SETS_H

#include <stdint.h>

#include "kernel_rt.h"
#include "rt.h"

typedef struct plan_rows plan_rows;

/* The table of the run with these sizes and inputs: NULL with RT_OK in *st
 * when the plan reads no rows, NULL with RT_ENOMEM when out of memory.  An
 * input whose shape is invalid for the sizes, or not given, gets no entry
 * (its sets stay PARTIAL).  Costs O(n log w) for an input of n values in
 * rows of w. */
plan_rows *plan_rows_new(const int64_t *plan, const rt_args *a, rt_status *st);
void plan_rows_free(plan_rows *r);

/* The intervals of the row idx[0 .. n) (every index but the last) of input
 * k: *iv points at *n_iv pairs {first, last} (inclusive), ascending and
 * disjoint, consecutive values merged.  1: found; 0: no entry (unknown);
 * -1: an index outside its dimension. */
int plan_rows_get(const plan_rows *r, int64_t k, const int64_t *idx, int64_t n,
                  const int32_t (**iv)[2], int64_t *n_iv);

/* The table's bitmaps for kr_env.setbits (kernel_rt.h): 2 entries per
 * input, those without bitmaps NULL; NULL for no table. */
const kr_setbits *plan_rows_bits(const plan_rows *r);

#endif
