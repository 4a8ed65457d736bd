/* ffi.c: calls whose C signature is known only at run time, through libffi.
 *
 * Extern predicates: the user registers plain C functions
 * bool f(int64_t, int64_t) for `extern fn f(int, int) -> bool;`; the
 * interpreter and the JIT know their arity only from the pattern, so they
 * call them through ffi_call_pred.  Its call interface is built on the stack
 * for each call (ffi_prep_cif is a few dozen instructions).
 *
 * Kernel entries: a kernel's typed entry takes its pattern's runtime scalars
 * and input arrays as real C arguments, so its C type depends on the
 * pattern.  ffi_entry_new prepares that type once (a cif) and makes a libffi
 * closure of it, a real function pointer that unpacks its arguments into
 * arrays; ffi_entry_call calls any function of that type generically.
 */
#include "ffi_call.h"

#include <assert.h>
#include <ffi.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

bool ffi_call_pred(void *fn, int n, const int64_t *args) {
  assert(fn != NULL && n >= 0 && n <= 16 && (n == 0 || args != NULL));
  ffi_cif cif;
  ffi_type *types[16];
  void *values[16];
  int64_t copy[16]; /* libffi wants pointers to non-const values */
  for (int k = 0; k < n; k++) {
    types[k] = &ffi_type_sint64;
    copy[k] = args[k];
    values[k] = &copy[k];
  }
  ffi_status st =
      ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)n, &ffi_type_uint8, types);
  assert(st == FFI_OK);
  (void)st;
  void (*f)(void); /* ISO C has no cast from void * to a function pointer */
  memcpy(&f, &fn, sizeof f);
  ffi_arg ret = 0; /* integral results are widened to ffi_arg */
  ffi_call(&cif, f, &ret, values);
  return (uint8_t)ret != 0;
}

struct ffi_entry {
  ffi_cif cif;          /* int (const void *, int64_t..., const int32_t *...) */
  ffi_type **types;     /* the cif's argument types */
  int ns, na;           /* scalars, arrays */
  ffi_closure *closure; /* writable half of the closure */
  void (*code)(void);   /* executable half: the typed entry */
  ffi_entry_body body;
  void *user;
};

static void entry_trampoline(ffi_cif *cif, void *ret, void **args, void *user) {
  (void)cif;
  const ffi_entry *e = user;
  int64_t scalars[FFI_ENTRY_MAX_ARGS];
  const int32_t *arrays[FFI_ENTRY_MAX_ARGS];
  const void *t = *(const void *const *)args[0];
  for (int k = 0; k < e->ns; k++) scalars[k] = *(const int64_t *)args[1 + k];
  for (int k = 0; k < e->na; k++)
    arrays[k] = *(const int32_t *const *)args[1 + e->ns + k];
  *(ffi_sarg *)ret = e->body(e->user, t, scalars, arrays);
}

/* libffi's closure allocator (a dlmalloc) initialises itself on first use
 * behind an unsynchronised flag, so two threads' first closures race (a
 * ThreadSanitizer report): its first use is here, once. */
static pthread_once_t closures_once = PTHREAD_ONCE_INIT;
static void closures_init(void) {
  void *code;
  void *c = ffi_closure_alloc(sizeof(ffi_closure), &code);
  if (c != NULL) ffi_closure_free(c);
}

ffi_entry *ffi_entry_new(int ns, int na, ffi_entry_body body, void *user) {
  if (ns < 0 || na < 0 || ns + na > FFI_ENTRY_MAX_ARGS || body == NULL)
    return NULL;
  pthread_once(&closures_once, closures_init);
  ffi_entry *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->ns = ns;
  e->na = na;
  e->body = body;
  e->user = user;
  int n = 1 + ns + na;
  e->types = malloc((size_t)n * sizeof *e->types);
  if (e->types == NULL) goto fail;
  e->types[0] = &ffi_type_pointer;
  for (int k = 0; k < ns; k++) e->types[1 + k] = &ffi_type_sint64;
  for (int k = 0; k < na; k++) e->types[1 + ns + k] = &ffi_type_pointer;
  if (ffi_prep_cif(&e->cif, FFI_DEFAULT_ABI, (unsigned)n, &ffi_type_sint,
                   e->types) != FFI_OK)
    goto fail;
  void *code = NULL;
  e->closure = ffi_closure_alloc(sizeof(ffi_closure), &code);
  if (e->closure == NULL) goto fail;
  if (ffi_prep_closure_loc(e->closure, &e->cif, entry_trampoline, e, code) !=
      FFI_OK)
    goto fail;
  memcpy(&e->code, &code, sizeof e->code);
  return e;
fail:
  ffi_entry_free(e);
  return NULL;
}

void ffi_entry_free(ffi_entry *e) {
  if (e == NULL) return;
  if (e->closure != NULL) ffi_closure_free(e->closure);
  free(e->types);
  free(e);
}

void (*ffi_entry_code(const ffi_entry *e))(void) {
  return e->code;
}

int ffi_entry_call(const ffi_entry *e, void (*fn)(void), const void *t,
                   const int64_t *scalars, const int32_t *const *arrays) {
  void *values[1 + FFI_ENTRY_MAX_ARGS];
  int64_t s[FFI_ENTRY_MAX_ARGS];        /* libffi wants pointers to */
  const int32_t *a[FFI_ENTRY_MAX_ARGS]; /* each argument's value */
  values[0] = &t;
  for (int k = 0; k < e->ns; k++) {
    s[k] = scalars[k];
    values[1 + k] = &s[k];
  }
  for (int k = 0; k < e->na; k++) {
    a[k] = arrays[k];
    values[1 + e->ns + k] = &a[k];
  }
  ffi_sarg ret = 0;
  ffi_call((ffi_cif *)&e->cif, fn != NULL ? fn : e->code, &ret, values);
  return (int)ret;
}
