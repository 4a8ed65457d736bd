/* api.h: what compiler/api.c shares with the run-time entry of AOT objects
 * (compiler/aot_run.c): checking a run's tensors and arguments, and status
 * conversion.  Internal; the public API is include/spat.h. */
#ifndef SPAT_API_INTERNAL_H
#define SPAT_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/spat.h"
#include "../runtime/rt.h"

/* What a kernel needs to check a run's arguments and describe them. */
typedef struct api_shape {
  int64_t D;
  int layout; /* spat_layout */
  int n_inputs;
  const char *const *input_names; /* for "input 'doc' is NULL" */
  void *const *externs;           /* resolved extern predicates */
  int threads;
} api_shape;

/* Checks the tensors (sizes, NULLs, overflow) and input arrays of a run and
 * fills a; *empty when there are no rows to compute.  On failure a status
 * and a message in err. */
spat_status api_make_args(const api_shape *k, const spat_tensors *t,
                          const int64_t *scalars, const int32_t *const *inputs,
                          rt_args *a, bool *empty, char *err, size_t errlen);

spat_status api_from_rt(rt_status s);

#endif
