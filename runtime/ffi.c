/* ffi.c: calls whose C signature is known only at run time, through libffi.
 *
 * In: a function pointer and int64 arguments.  Out: the callee's result.
 * Extern predicates of a pattern (`extern fn f(int, int) -> bool;`) are
 * registered by the user as plain C functions bool f(int64_t, int64_t); the
 * interpreter and the JIT know their arity only from the pattern, so they
 * call them here.  The call interface is built on the stack for each call
 * (ffi_prep_cif is a few dozen instructions): no state outlives a call.
 */
#include "ffi.h"

#include <assert.h>
#include <ffi.h>
#include <string.h>

bool ffi_call_pred(void *fn, int n, const int64_t *args) {
  assert(fn != NULL && n >= 0 && n <= 16 && (n == 0 || args != NULL));
  ffi_cif cif;
  ffi_type *types[16];
  void *values[16];
  int64_t copy[16];  /* libffi wants pointers to non-const values */
  for (int k = 0; k < n; k++) {
    types[k] = &ffi_type_sint64;
    copy[k] = args[k];
    values[k] = &copy[k];
  }
  ffi_status st = ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)n,
                               &ffi_type_uint8, types);
  assert(st == FFI_OK);
  (void)st;
  void (*f)(void);  /* ISO C has no cast from void * to a function pointer */
  memcpy(&f, &fn, sizeof f);
  ffi_arg ret = 0;  /* integral results are widened to ffi_arg */
  ffi_call(&cif, f, &ret, values);
  return (uint8_t)ret != 0;
}
