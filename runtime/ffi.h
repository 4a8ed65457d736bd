/* ffi.h: calls whose signature is known only at run time, through libffi.
 * Only runtime/ffi.c includes <ffi.h>. */
#ifndef SPAT_FFI_H
#define SPAT_FFI_H

#include <stdbool.h>
#include <stdint.h>

/* Calls bool fn(int64_t a0, ..., int64_t a{n-1}) (extern predicates of a
 * pattern: `extern fn name(int, int) -> bool;`).  n <= 16. */
bool ffi_call_pred(void *fn, int n, const int64_t *args);

#endif
