/* args.h: checking a run's tensors and arguments against a kernel's shape
 * and turning them into rt_args, and status conversion (args_): shared by
 * compiler/api.c and the run-time entry of AOT objects (runtime/aot_run.c).
 * Internal; the public API is include/spat.h. */
#ifndef SPAT_ARGS_H
#define SPAT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spat.h"
#include "rt.h"

/* What a kernel needs to check a run's arguments and describe them. */
typedef struct args_shape {
  int64_t D;
  int layout; /* spat_layout */
  int n_inputs;
  const char *const *input_names; /* for "input 'doc' is NULL" */
  void *const *externs;           /* resolved extern predicates */
  int threads;
} args_shape;

/* Checks the tensors (sizes, NULLs, overflow) and input arrays of a run and
 * fills a; *empty when there are no rows to compute.  On failure a status
 * and a message in err. */
rt_status args_make(const args_shape *k, const spat_tensors *t,
                          const int64_t *scalars, const int32_t *const *inputs,
                          rt_args *a, bool *empty, char *err, size_t errlen);

/* The gradients of a backward run with forward arguments a (from
 * args_make with the same t): checks them (NULLs, sizes, lse given,
 * outputs overlapping each other or an input) and fills g. */
rt_status args_make_grads(const args_shape *k, const spat_tensors *t,
                          const spat_grads *sg, const rt_args *a, rt_grad *g,
                          char *err, size_t errlen);

spat_status args_status(rt_status s);

#endif
