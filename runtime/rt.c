/* rt.c: small helpers shared by every backend. */
#include "rt.h"

#include <stdarg.h>
#include <stdio.h>

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
