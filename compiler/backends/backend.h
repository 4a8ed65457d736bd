/* backend.h: the one table every way of running a pattern sits behind, so the
 * interpreter and the JIT are interchangeable wherever a kernel is run
 * (QBE's Target).  A backend compiles an ir_program for fixed options into an
 * opaque kernel, then runs it any number of times. */
#ifndef SPAT_BACKEND_H
#define SPAT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"
#include "ir.h"

typedef struct backend_opts {
  int64_t D;      /* head dimension the kernel is specialised for */
  int threads;    /* default thread count for runs (0: all cores) */
} backend_opts;

typedef struct backend {
  const char *name;  /* "interp", "jit" */
  /* NULL on failure with a message in err.  The program must outlive the
   * kernel. */
  void *(*compile)(const ir_program *p, const backend_opts *o, char *err,
                   size_t errlen);
  rt_status (*run)(void *kernel, const rt_args *a, char *err, size_t errlen);
  void (*free)(void *kernel);
} backend;

extern const backend backend_interp;  /* runtime/interp.c */
extern const backend backend_jit;     /* compiler/jit.c */

const backend *backend_find(const char *name);  /* NULL if unknown */

#endif
