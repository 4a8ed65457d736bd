/* dtype.c: spat_convert, the element conversions of runtime/dtype.h for
 * callers of the public API (the CLI reads and writes bf16 / fp16 files
 * through it). */
#include "dtype.h"

#include "spat.h"

spat_status spat_convert(const void *src, spat_dtype from, void *dst,
                         spat_dtype to, size_t n) {
  if ((int)from < 0 || (int)from >= RT_N_DTYPES || (int)to < 0 ||
      (int)to >= RT_N_DTYPES)
    return SPAT_EINVAL;
  if (n > 0 && (src == NULL || dst == NULL)) return SPAT_EINVAL;
  for (size_t x = 0; x < n; x++)
    rt_store(dst, (int64_t)x, (int)to, rt_load(src, (int64_t)x, (int)from));
  return SPAT_OK;
}
