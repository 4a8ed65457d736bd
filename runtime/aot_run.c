/* aot_run.c: the run-time entry of AOT objects (compiler/aot.h), in libspat.
 *
 * In: an object's descriptor, the tensors and the kernel's arguments, from
 * the object's typed entry.  Out: the attention, or a status and a message.
 * The descriptor's code pointers become a kr_kernel (runtime/kernel_rt.h),
 * made on the first run and kept in the object's writable state slot (a
 * compare-and-swap decides between racing first runs), then run by the same
 * driver loop as JIT kernels.  No LLVM here.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spat.h"
#include "kernel_rt.h"
#include "aot_abi.h"
#include "args.h"

/* The descriptor's kernel, made once. */
static kr_kernel *kernel_of(const aot_desc *d) {
  _Atomic(kr_kernel *) *slot = (_Atomic(kr_kernel *) *)d->state;
  kr_kernel *k = atomic_load(slot);
  if (k != NULL) return k;
  k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  k->D = d->D;
  k->dtype = (int)d->dtype;
  k->plan = d->plan;
  k->n_runtime = (int)d->n_runtime;
  k->n_inputs = (int)d->n_inputs;
  k->n_externs = (int)d->n_externs;
  k->n_topk = (int)d->n_topk;
  /* the descriptor holds code pointers as void *; kr_* want function types */
  k->mask = calloc((size_t)d->n_topk + 1, sizeof *k->mask);
  k->tkinfo = calloc((size_t)d->n_topk + 1, sizeof *k->tkinfo);
  if (k->mask == NULL || k->tkinfo == NULL) {
    free(k->mask);
    free(k->tkinfo);
    free(k);
    return NULL;
  }
  for (int64_t t = 0; t <= d->n_topk; t++)
    memcpy(&k->mask[t], &d->mask[t], sizeof k->mask[t]);
  for (int64_t t = 0; t < d->n_topk; t++)
    memcpy(&k->tkinfo[t], &d->tkinfo[t], sizeof k->tkinfo[t]);
  memcpy(&k->tile, &d->tile, sizeof k->tile);
  memcpy(&k->errat, &d->errat, sizeof k->errat);
  memcpy(&k->stile, &d->stile, sizeof k->stile);
  memcpy(&k->sbwd_dq, &d->sbwd_dq_s, sizeof k->sbwd_dq);
  memcpy(&k->sbwd_dkdv, &d->sbwd_dkdv_s, sizeof k->sbwd_dkdv);
  memcpy(&k->serrat, &d->serrat, sizeof k->serrat);
  memcpy(&k->inlen, &d->inlen, sizeof k->inlen);
  k->errors = d->errors;
  k->n_errors = (int)d->n_errors;
  k->threads = (int)d->threads;
  kr_kernel *expected = NULL;
  if (!atomic_compare_exchange_strong(slot, &expected, k)) {
    free(k->mask);
    free(k->tkinfo);
    free(k);
    return expected; /* another thread's first run won */
  }
  return k;
}

int spat_aot_run(const void *desc, const spat_tensors *t,
                 const int64_t *scalars, const int32_t *const *inputs,
                 char *err, size_t errlen) {
  const aot_desc *d = desc;
  if (d == NULL || d->abi != AOT_ABI)
    return args_status(rt_errf(err, errlen, RT_EUNSUPPORTED,
                               "this kernel object was made by another spatc "
                               "version (AOT ABI mismatch): compile it again"));
  kr_kernel *k = kernel_of(d);
  if (k == NULL)
    return args_status(rt_errf(err, errlen, RT_ENOMEM, "out of memory"));
  args_shape shape = {d->D,           (int)d->layout, (int)d->n_inputs,
                     d->input_names, d->externs,     (int)d->threads,
                     (int)d->dtype};
  rt_args a;
  bool empty = false;
  rt_status rs = args_make(&shape, t, scalars, inputs, &a, &empty, err, errlen);
  if (rs == RT_OK && !empty) rs = kr_run(k, &a, err, errlen);
  return args_status(rs);
}

rt_status aot_run_args(const void *desc, const rt_args *a, char *err,
                       size_t errlen) {
  const aot_desc *d = desc;
  if (d == NULL || d->abi != AOT_ABI)
    return rt_errf(err, errlen, RT_EUNSUPPORTED, "AOT ABI mismatch");
  if (a->D != d->D)
    return rt_errf(err, errlen, RT_EINVAL,
                   "the kernel was compiled for D = %lld, not %lld",
                   (long long)d->D, (long long)a->D);
  kr_kernel *k = kernel_of(d);
  if (k == NULL) return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  rt_args b = *a;
  if (d->n_externs > 0 && b.externs == NULL) b.externs = d->externs;
  return kr_run(k, &b, err, errlen);
}

rt_status aot_backward_args(const void *desc, const rt_args *a,
                            const rt_grad *g, kr_bwd_fn dq, kr_bwd_fn dkdv,
                            char *err, size_t errlen) {
  const aot_desc *d = desc;
  if (d == NULL || d->abi != AOT_ABI)
    return rt_errf(err, errlen, RT_EUNSUPPORTED, "AOT ABI mismatch");
  if (a->D != d->D)
    return rt_errf(err, errlen, RT_EINVAL,
                   "the kernel was compiled for D = %lld, not %lld",
                   (long long)d->D, (long long)a->D);
  if (dq == NULL) memcpy(&dq, &d->bwd_dq, sizeof dq);
  if (dkdv == NULL) memcpy(&dkdv, &d->bwd_dkdv, sizeof dkdv);
  if (dq == NULL || dkdv == NULL)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "this kernel object has no backward pass");
  kr_kernel *k = kernel_of(d);
  if (k == NULL) return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  rt_args b = *a;
  if (d->n_externs > 0 && b.externs == NULL) b.externs = d->externs;
  return kr_run_backward(k, dq, dkdv, &b, g, err, errlen);
}

int spat_aot_backward(const void *desc, const spat_tensors *t,
                      const spat_grads *sg, const int64_t *scalars,
                      const int32_t *const *inputs, char *err, size_t errlen) {
  const aot_desc *d = desc;
  if (d == NULL || d->abi != AOT_ABI)
    return args_status(rt_errf(err, errlen, RT_EUNSUPPORTED,
                               "this kernel object was made by another spatc "
                               "version (AOT ABI mismatch): compile it again"));
  args_shape shape = {d->D,           (int)d->layout, (int)d->n_inputs,
                      d->input_names, d->externs,     (int)d->threads,
                      (int)d->dtype};
  rt_args a;
  rt_grad g;
  bool empty = false;
  rt_status rs = args_make(&shape, t, scalars, inputs, &a, &empty, err, errlen);
  if (rs == RT_OK) rs = args_make_grads(&shape, t, sg, &a, &g, err, errlen);
  /* spat_grads.dinputs: one per float input in signature order; rt_grad's:
   * one per input (NULL for the int ones) */
  float *din[64] = {NULL};
  if (rs == RT_OK && sg != NULL && sg->dinputs != NULL && d->stile != NULL) {
    for (int64_t x = 0, fi = 0; x < d->n_inputs && x < 64; x++)
      if (d->float_inputs >> x & 1) din[x] = sg->dinputs[fi++];
    g.dinputs = din;
  }
  if (rs == RT_OK && !rt_grad_empty(&a, &g))
    rs = aot_backward_args(d, &a, &g, NULL, NULL, err, errlen);
  return args_status(rs);
}

void spat_aot_release(const void *desc) {
  aot_state_release(desc);
}

void aot_state_release(const void *desc) {
  const aot_desc *d = desc;
  if (d == NULL) return;
  _Atomic(kr_kernel *) *slot = (_Atomic(kr_kernel *) *)d->state;
  kr_kernel *k = atomic_exchange(slot, NULL);
  if (k == NULL) return;
  kr_release(k);
  free(k->mask);
  free(k->tkinfo);
  free(k);
}

void aot_set_dtile(const void *desc, void *dtile) {
  kr_kernel *k = kernel_of(desc);
  if (k != NULL) memcpy(&k->dtile, &dtile, sizeof k->dtile);
}

