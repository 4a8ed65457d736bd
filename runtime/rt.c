/* rt.c: small helpers shared by every backend. */
#include "rt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

rt_status rt_errf(char *err, size_t errlen, rt_status st, const char *fmt,
                  ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return st;
}

void rt_tensor_strides(rt_tensor *t, int layout, int64_t H, int64_t L,
                       int64_t D) {
  if (layout == 0) {
    t->sl = D;
    t->sh = L * D;
    t->sb = H * L * D;
  } else {
    t->sh = D;
    t->sl = H * D;
    t->sb = L * H * D;
  }
}

bool rt_has_rows(const rt_args *a) { return a->B > 0 && a->H > 0 && a->Lq > 0; }

void rt_fill_no_keys(const rt_args *a) {
  for (int64_t b = 0; b < a->B; b++)
    for (int64_t h = 0; h < a->H; h++)
      for (int64_t r = 0; r < a->Lq; r++) {
        float *o = a->o.data + b * a->o.sb + h * a->o.sh + r * a->o.sl;
        for (int64_t d = 0; d < a->D; d++) o[d] = 0.0f;
        if (a->lse) a->lse[b * a->lse_sb + h * a->lse_sh + r] = -INFINITY;
      }
}

static void zero_tensor(const rt_tensor *t, int64_t B, int64_t H, int64_t L,
                        int64_t D) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t r = 0; r < L; r++)
        memset(t->data + b * t->sb + h * t->sh + r * t->sl, 0,
               (size_t)D * sizeof(float));
}

bool rt_grad_empty(const rt_args *a, const rt_grad *g) {
  if (rt_has_rows(a) && a->Lk > 0) return false;
  zero_tensor(&g->dq, a->B, a->H, a->Lq, a->D);
  zero_tensor(&g->dk, a->B, a->Hkv, a->Lk, a->D);
  zero_tensor(&g->dv, a->B, a->Hkv, a->Lk, a->D);
  return true;
}
