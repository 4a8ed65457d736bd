/* ffi_call.h: calls whose signature is known only at run time, through libffi.
 * Only runtime/ffi.c includes <ffi.h>. */
#ifndef SPAT_FFI_CALL_H
#define SPAT_FFI_CALL_H

#include <stdbool.h>
#include <stdint.h>

/* Calls bool fn(int64_t a0, ..., int64_t a{n-1}) (extern predicates of a
 * pattern: `extern fn name(int, int) -> bool;`).  n <= 16. */
bool ffi_call_pred(void *fn, int n, const int64_t *args);

/* A kernel's typed entry, made at run time as a libffi closure:
 *     int entry(const void *t, int64_t s0, ..., int64_t s{ns-1},
 *               const int32_t *a0, ..., const int32_t *a{na-1})
 * Calling it unpacks the arguments and calls body(user, t, s, a), whose
 * result it returns.  ns + na <= FFI_ENTRY_MAX_ARGS. */
#define FFI_ENTRY_MAX_ARGS 64
typedef struct ffi_entry ffi_entry;
typedef int (*ffi_entry_body)(void *user, const void *t, const int64_t *scalars,
                              const int32_t *const *arrays);
/* NULL when out of memory, too many arguments, or closures unsupported. */
ffi_entry *ffi_entry_new(int ns, int na, ffi_entry_body body, void *user);
void ffi_entry_free(ffi_entry *e);                /* NULL is fine */
void (*ffi_entry_code(const ffi_entry *e))(void); /* the typed entry */
/* Calls fn, a function of the entry's C type (its own code when NULL),
 * through the call interface prepared once in ffi_entry_new. */
int ffi_entry_call(const ffi_entry *e, void (*fn)(void), const void *t,
                   const int64_t *scalars, const int32_t *const *arrays);

#endif
