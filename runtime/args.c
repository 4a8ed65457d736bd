/* args.c: a run's tensors and arguments checked against the kernel's shape
 * (sizes, NULLs, int64 and address-space overflow) and made into rt_args;
 * rt_status to spat_status.  See args.h. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "args.h"
#include "dtype.h"

spat_status args_status(rt_status s) {
  switch (s) {
    case RT_OK:
      return SPAT_OK;
    case RT_EINVAL:
      return SPAT_EINVAL;
    case RT_ERANGE:
      return SPAT_ERANGE;
    case RT_ENOMEM:
      return SPAT_ENOMEM;
    case RT_EUNSUPPORTED:
      return SPAT_EUNSUPPORTED;
    case RT_EINTERNAL:
      return SPAT_EINTERNAL;
  }
  return SPAT_EINTERNAL;
}

/* x * y * ... into *out; false on int64 overflow. */
static bool mul_sizes(int64_t *out, int n, const int64_t *v) {
  int64_t r = 1;
  for (int k = 0; k < n; k++)
    if (__builtin_mul_overflow(r, v[k], &r)) return false;
  *out = r;
  return true;
}

static rt_status check_tensor(const char *what, const void *p, int64_t B,
                                int64_t H, int64_t L, int64_t D, int dtype,
                                char *err, size_t errlen) {
  int64_t n;
  if (!mul_sizes(&n, 4, (const int64_t[]){B, H, L, D}) ||
      n > (int64_t)(PTRDIFF_MAX / (int64_t)rt_dtype_size(dtype)))
    return rt_errf(err, errlen, RT_ERANGE,
                "%s: %lld x %lld x %lld x %lld elements overflow the address "
                "space",
                what, (long long)B, (long long)H, (long long)L, (long long)D);
  if (n > 0 && p == NULL)
    return rt_errf(err, errlen, RT_EINVAL, "%s is NULL", what);
  return RT_OK;
}

/* Checks the tensors and arguments of a run and fills a; *empty when there
 * is nothing to compute. */
rt_status args_make(const args_shape *k, const spat_tensors *t,
                          const int64_t *scalars, const int32_t *const *inputs,
                          rt_args *a, bool *empty, char *err, size_t errlen) {
  if (t == NULL) return rt_errf(err, errlen, RT_EINVAL, "tensors are NULL");
  int64_t Hkv = t->Hkv == 0 ? t->H : t->Hkv;
  if (t->B < 0 || t->H < 0 || Hkv < 0 || t->Lq < 0 || t->Lk < 0)
    return rt_errf(err, errlen, RT_EINVAL,
                "negative size: B = %lld, H = %lld, Hkv = %lld, Lq = %lld, "
                "Lk = %lld",
                (long long)t->B, (long long)t->H, (long long)Hkv,
                (long long)t->Lq, (long long)t->Lk);
  if (t->H > 0 && (Hkv == 0 || t->H % Hkv != 0))
    return rt_errf(err, errlen, RT_EINVAL,
                "H = %lld is not a multiple of Hkv = %lld", (long long)t->H,
                (long long)Hkv);
  if (t->H == 0 && Hkv != 0)
    return rt_errf(err, errlen, RT_EINVAL, "H = 0 with Hkv = %lld",
                (long long)Hkv);
  rt_status st;
  int dt = k->dtype;
  if (dt < 0 || dt >= RT_N_DTYPES)
    return rt_errf(err, errlen, RT_EINVAL, "unknown dtype %d", dt);
  if ((st = check_tensor("q", t->q, t->B, t->H, t->Lq, k->D, dt, err, errlen)) ||
      (st = check_tensor("k", t->k, t->B, Hkv, t->Lk, k->D, dt, err, errlen)) ||
      (st = check_tensor("v", t->v, t->B, Hkv, t->Lk, k->D, dt, err, errlen)) ||
      (st = check_tensor("o", t->o, t->B, t->H, t->Lq, k->D, dt, err, errlen)))
    return st;
  if (!isfinite(t->scale))
    return rt_errf(err, errlen, RT_EINVAL, "scale is %s: it must be a finite "
                   "float (0 for 1/sqrt(D))", isnan(t->scale) ? "NaN" : "infinite");
  for (int x = 0; x < k->n_inputs; x++)
    if (inputs[x] == NULL && t->Lk > 0)
      return rt_errf(err, errlen, RT_EINVAL,
                  "input array '%s' is NULL (missing input)",
                  k->input_names[x]);
  if (k->n_inputs > 0 && t->Lk > INT32_MAX)
    return rt_errf(err, errlen, RT_ERANGE,
                "Lk = %lld: too long for int32 input arrays", (long long)t->Lk);

  *empty = t->B == 0 || t->H == 0 || t->Lq == 0; /* no rows to write */
  *a = (rt_args){0};
  a->B = t->B;
  a->H = t->H;
  a->Hkv = Hkv;
  a->Lq = t->Lq;
  a->Lk = t->Lk;
  a->D = k->D;
  a->dtype = dt;
  a->q.data = (float *)t->q; /* backends only read q, k, v (of dtype dt) */
  a->k.data = (float *)t->k;
  a->v.data = (float *)t->v;
  a->o.data = t->o;
  rt_tensor_strides(&a->q, k->layout, t->H, t->Lq, k->D);
  rt_tensor_strides(&a->k, k->layout, Hkv, t->Lk, k->D);
  rt_tensor_strides(&a->v, k->layout, Hkv, t->Lk, k->D);
  rt_tensor_strides(&a->o, k->layout, t->H, t->Lq, k->D);
  a->lse = t->lse;
  a->lse_sh = t->Lq;
  a->lse_sb = t->H * t->Lq;
  a->scale = t->scale;
  a->runtime = scalars;
  a->inputs = inputs;
  a->externs = k->externs;
  a->threads = k->threads;
  return RT_OK;
}


_Static_assert((int)SPAT_DTYPE_F32 == RT_F32 && (int)SPAT_DTYPE_BF16 == RT_BF16 &&
                   (int)SPAT_DTYPE_F16 == RT_F16,
               "spat_dtype and rt_dtype agree");
