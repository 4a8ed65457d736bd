/* rt.c: small helpers shared by every backend. */
#include "rt.h"

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
