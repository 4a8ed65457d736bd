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

/* rt_args.paged points at the caller's spat_paged_kv itself. */
_Static_assert(offsetof(rt_paged, page_table) ==
                       offsetof(spat_paged_kv, page_table) &&
                   offsetof(rt_paged, seq_lens) ==
                       offsetof(spat_paged_kv, seq_lens) &&
                   offsetof(rt_paged, n_pages) ==
                       offsetof(spat_paged_kv, n_pages) &&
                   offsetof(rt_paged, page_size) ==
                       offsetof(spat_paged_kv, page_size) &&
                   offsetof(rt_paged, max_pages) ==
                       offsetof(spat_paged_kv, max_pages) &&
                   sizeof(rt_paged) == sizeof(spat_paged_kv),
               "rt_paged mirrors spat_paged_kv");

/* A paged cache's tables (see spat.h); *lk gets the longest sequence. */
static rt_status check_paged(const args_shape *k, const spat_tensors *t,
                             int64_t Hkv, int64_t *lk, char *err,
                             size_t errlen) {
  const spat_paged_kv *p = t->paged;
  if (t->Lk != 0)
    return rt_errf(err, errlen, RT_EINVAL,
                   "Lk = %lld with a paged KV cache: it must be 0 (each "
                   "sequence's length is its seq_lens entry)",
                   (long long)t->Lk);
  if (p->page_size < 1 || p->n_pages < 0 || p->max_pages < 0)
    return rt_errf(err, errlen, RT_EINVAL,
                   "paged KV cache: page_size = %lld, n_pages = %lld, "
                   "max_pages = %lld (page_size must be >= 1, the others "
                   ">= 0)",
                   (long long)p->page_size, (long long)p->n_pages,
                   (long long)p->max_pages);
  if (k->n_inputs > 0)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "patterns with input arrays cannot run on a paged KV "
                   "cache");
  if (k->dtype != RT_F32) /* the decode path reads the pools as float */
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "a paged KV cache is float32 only (the kernel's dtype is "
                   "bf16 or fp16)");
  int64_t cap, n;
  if (!mul_sizes(&cap, 2, (const int64_t[]){p->max_pages, p->page_size}) ||
      !mul_sizes(&n, 2, (const int64_t[]){t->B, p->max_pages}))
    return rt_errf(err, errlen, RT_ERANGE,
                   "paged KV cache: max_pages x page_size or B x max_pages "
                   "overflows");
  rt_status st;
  if ((st = check_tensor("k pool", t->k, p->n_pages, p->page_size, Hkv, k->D,
                         RT_F32, err, errlen)) ||
      (st = check_tensor("v pool", t->v, p->n_pages, p->page_size, Hkv, k->D,
                         RT_F32, err, errlen)))
    return st;
  if (t->B > 0 && p->seq_lens == NULL)
    return rt_errf(err, errlen, RT_EINVAL, "seq_lens is NULL");
  if (n > 0 && p->page_table == NULL)
    return rt_errf(err, errlen, RT_EINVAL, "page_table is NULL");
  *lk = 0;
  for (int64_t b = 0; b < t->B; b++) {
    int64_t len = p->seq_lens[b];
    if (len < 0 || len > cap)
      return rt_errf(err, errlen, RT_EINVAL,
                     "seq_lens[%lld] = %lld: it must be in [0, max_pages x "
                     "page_size = %lld]",
                     (long long)b, (long long)len, (long long)cap);
    if (len > *lk) *lk = len;
    for (int64_t x = 0; x < (len + p->page_size - 1) / p->page_size; x++) {
      int64_t id = p->page_table[b * p->max_pages + x];
      if (id < 0 || id >= p->n_pages)
        return rt_errf(err, errlen, RT_EINVAL,
                       "page_table[%lld][%lld] = %lld: a page id must be in "
                       "[0, n_pages = %lld)",
                       (long long)b, (long long)x, (long long)id,
                       (long long)p->n_pages);
    }
  }
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
  int64_t Lk = t->Lk;
  if ((st = check_tensor("q", t->q, t->B, t->H, t->Lq, k->D, dt, err, errlen)) ||
      (t->paged && (st = check_paged(k, t, Hkv, &Lk, err, errlen))) ||
      (!t->paged && (st = check_tensor("k", t->k, t->B, Hkv, t->Lk, k->D, dt,
                                       err, errlen))) ||
      (!t->paged && (st = check_tensor("v", t->v, t->B, Hkv, t->Lk, k->D, dt,
                                       err, errlen))) ||
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
  a->Lk = Lk;
  a->D = k->D;
  a->dtype = dt;
  a->q.data = (float *)t->q; /* backends only read q, k, v (of dtype dt) */
  a->k.data = (float *)t->k;
  a->v.data = (float *)t->v;
  a->o.data = t->o;
  rt_tensor_strides(&a->q, k->layout, t->H, t->Lq, k->D);
  if (t->paged) { /* pools [n_pages, page_size, Hkv, D]: sb between pages */
    a->paged = (const rt_paged *)(const void *)t->paged;
    a->k.sl = Hkv * k->D;
    a->k.sh = k->D;
    a->k.sb = t->paged->page_size * Hkv * k->D;
    a->v.sb = a->k.sb, a->v.sh = a->k.sh, a->v.sl = a->k.sl;
  } else {
    rt_tensor_strides(&a->k, k->layout, Hkv, t->Lk, k->D);
    rt_tensor_strides(&a->v, k->layout, Hkv, t->Lk, k->D);
  }
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


/* A tensor's bytes, for the overlap check: [p, p + n floats). */
typedef struct span {
  const char *what;
  const char *p;
  int64_t n;
} span;

static bool overlap(const span *x, const span *y) {
  if (!x->p || !y->p || x->n == 0 || y->n == 0) return false;
  uintptr_t a0 = (uintptr_t)x->p, b0 = (uintptr_t)y->p;
  return a0 < b0 + (uintptr_t)y->n * sizeof(float) &&
         b0 < a0 + (uintptr_t)x->n * sizeof(float);
}

rt_status args_make_grads(const args_shape *k, const spat_tensors *t,
                          const spat_grads *sg, const rt_args *a, rt_grad *g,
                          char *err, size_t errlen) {
  if (sg == NULL) return rt_errf(err, errlen, RT_EINVAL, "gradients are NULL");
  if (a->dtype != RT_F32)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "the backward pass is float32 only: the kernel's dtype is "
                   "%s", a->dtype == RT_BF16 ? "bf16" : "fp16");
  if (t->paged != NULL)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "the backward needs dense k and v (t->paged is not NULL)");
  int64_t nq = a->B * a->H * a->Lq * a->D, nk = a->B * a->Hkv * a->Lk * a->D;
  if (nq > 0 && t->lse == NULL)
    return rt_errf(err, errlen, RT_EINVAL,
                   "lse is NULL: the backward reads the forward's lse");
  rt_status st;
  if ((st = check_tensor("dout", sg->dout, a->B, a->H, a->Lq, k->D, RT_F32,
                         err, errlen)) ||
      (st = check_tensor("dq", sg->dq, a->B, a->H, a->Lq, k->D, RT_F32, err,
                         errlen)) ||
      (st = check_tensor("dk", sg->dk, a->B, a->Hkv, a->Lk, k->D, RT_F32, err,
                         errlen)) ||
      (st = check_tensor("dv", sg->dv, a->B, a->Hkv, a->Lk, k->D, RT_F32, err,
                         errlen)))
    return st;
  int64_t nl = a->B * a->H * a->Lq;
  const span out[3] = {{"dq", (const char *)sg->dq, nq},
                       {"dk", (const char *)sg->dk, nk},
                       {"dv", (const char *)sg->dv, nk}};
  const span in[7] = {{"q", (const char *)t->q, nq},
                      {"k", (const char *)t->k, nk},
                      {"v", (const char *)t->v, nk},
                      {"o", (const char *)t->o, nq},
                      {"lse", (const char *)t->lse, nl},
                      {"dout", (const char *)sg->dout, nq},
                      {"dlse", (const char *)sg->dlse, sg->dlse ? nl : 0}};
  for (int x = 0; x < 3; x++) {
    for (int y = x + 1; y < 3; y++)
      if (overlap(&out[x], &out[y]))
        return rt_errf(err, errlen, RT_EINVAL, "%s and %s overlap",
                       out[x].what, out[y].what);
    for (int y = 0; y < 7; y++)
      if (overlap(&out[x], &in[y]))
        return rt_errf(err, errlen, RT_EINVAL,
                       "%s overlaps %s (the gradients must not alias an input)",
                       out[x].what, in[y].what);
  }
  *g = (rt_grad){0};
  g->dout.data = (float *)sg->dout; /* read only */
  g->dq.data = sg->dq;
  g->dk.data = sg->dk;
  g->dv.data = sg->dv;
  g->dlse = sg->dlse;
  g->dout.sb = a->o.sb, g->dout.sh = a->o.sh, g->dout.sl = a->o.sl;
  g->dq.sb = a->q.sb, g->dq.sh = a->q.sh, g->dq.sl = a->q.sl;
  g->dk.sb = a->k.sb, g->dk.sh = a->k.sh, g->dk.sl = a->k.sl;
  g->dv.sb = a->v.sb, g->dv.sh = a->v.sh, g->dv.sl = a->v.sl;
  return RT_OK;
}

_Static_assert((int)SPAT_DTYPE_F32 == RT_F32 && (int)SPAT_DTYPE_BF16 == RT_BF16 &&
                   (int)SPAT_DTYPE_F16 == RT_F16,
               "spat_dtype and rt_dtype agree");
