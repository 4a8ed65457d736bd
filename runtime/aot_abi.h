/* aot_abi.h: the descriptor an AOT object hands libspat (aot_desc), and the
 * run-time side of AOT kernels (runtime/aot_run.c).  An ABI between emitted
 * objects (compiler/backends/llvm/aot.c writes them) and libspat. */
#ifndef SPAT_AOT_ABI_H
#define SPAT_AOT_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_rt.h"
#include "rt.h"

/* The descriptor's layout, and the kr_env that generated code reads
 * (runtime/kernel_rt.h), are an ABI between objects and libspat: every field
 * is 8 bytes, in this order; AOT_ABI changes with either (3: errat; 4:
 * kr_env gained random_row and random_cache; 5: the backward tiles; 6:
 * dtype; 7: the score tiles, E's errors, float inputs; 8: kr_env gained
 * route(C)'s ids and b, B, Hkv, D; 9: kr_env gained setbits). */
#define AOT_ABI 9
typedef struct aot_desc {
  int64_t abi;                /* AOT_ABI */
  int64_t D, layout, threads; /* compile options */
  int64_t n_runtime, n_inputs, n_externs, n_topk, n_errors;
  const int64_t *plan;       /* tile plan words */
  const void *const *mask;   /* n_topk + 1 kr_mask_fn */
  const void *const *tkinfo; /* n_topk kr_tkinfo_fn */
  const void *tile;          /* kr_tile_fn */
  const char *const *errors; /* n_errors run-time error messages */
  const char *const *input_names;
  void *const *externs; /* n_externs bool f(int64_t, ...) */
  void **state;         /* writable slot: the run-time kernel */
  const char *name;
  const void *errat;    /* kr_errat_fn */
  const void *bwd_dq, *bwd_dkdv; /* kr_bwd_fn, or NULL (disk cache objects:
                                    the caller supplies them) */
  int64_t dtype;        /* rt_dtype of q, k, v, o */
  /* with score E (else NULL): kr_stile_fn, kr_sbwd_fn x 2, kr_serrat_fn,
   * kr_inlen_fn (kernel_rt.h), all in the object */
  const void *stile, *sbwd_dq_s, *sbwd_dkdv_s, *serrat, *inlen;
  int64_t float_inputs; /* bit x: input x is float (x < 64) */
} aot_desc;

/* Runs a loaded descriptor on arguments already checked (the CLI's path:
 * rt_args with any strides).  a->externs, when the pattern has externs,
 * must be the functions the object was linked with. */
rt_status aot_run_args(const void *desc, const rt_args *a, char *err,
                       size_t errlen);

/* Gives a loaded descriptor's run-time kernel the decode tile (kr_dtile_fn,
 * kernel_rt.h): the disk cache does, with the process's shared one, before
 * the first run; objects without it run every call through the prefill
 * tiles and refuse paged KV caches. */
void aot_set_dtile(const void *desc, void *dtile);
/* The backward pass of a loaded descriptor on checked arguments, with the
 * tiles dq and dkdv, or (NULL) the descriptor's own. */
rt_status aot_backward_args(const void *desc, const rt_args *a,
                            const rt_grad *g, kr_bwd_fn dq, kr_bwd_fn dkdv,
                            char *err, size_t errlen);

/* Frees the run-time kernel a descriptor's first run made (aot_run.c), for
 * objects unloaded before the process ends (the disk cache's). */
void aot_state_release(const void *desc);

#endif
