/* backend.h: the one table every way of running a pattern sits behind, so the
 * interpreter and the JIT are interchangeable wherever a kernel is run
 * (QBE's Target).  A backend compiles an ir_program for fixed options into an
 * opaque kernel, then runs it any number of times. */
#ifndef SPAT_BACKEND_H
#define SPAT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"
#include "ir.h"

/* What a compile reports besides the kernel (all optional to read). */
typedef enum backend_cache {
  BACKEND_CACHE_OFF = 0, /* not asked for, not supported, or not usable */
  BACKEND_CACHE_MISS,    /* compiled now and stored */
  BACKEND_CACHE_HIT,     /* loaded from the disk cache */
} backend_cache;

typedef struct backend_opts {
  int64_t D;      /* head dimension the kernel is specialised for */
  int threads;    /* default thread count for runs (0: all cores) */
  /* The disk kernel cache (backends that have one, see caps): */
  bool cache;               /* look the kernel up / store it */
  int layout;               /* spat_layout, part of the cache key */
  void *const *externs;     /* the program's extern predicates, resolved */
  backend_cache *cache_out; /* NULL, or where to say what the cache did */
  char *note;               /* NULL, or why the cache was not used */
  size_t notelen;
} backend_opts;

/* What a backend can do, declared rather than found out by trying. */
enum {
  BACKEND_CAP_CACHE = 1 << 0,    /* a disk kernel cache */
  BACKEND_CAP_TOPK = 1 << 1,     /* data-dependent patterns */
  BACKEND_CAP_EXTERNS = 1 << 2,  /* extern predicates */
};

typedef struct backend {
  const char *name;  /* "interp", "jit" */
  unsigned caps;     /* BACKEND_CAP_* */
  bool (*supports_d)(int64_t D);
  const char *d_text; /* the supported head dimensions, for messages */
  /* NULL on failure with a message in err.  The program must outlive the
   * kernel; it has passed ir_check. */
  void *(*compile)(const ir_program *p, const backend_opts *o, char *err,
                   size_t errlen);
  rt_status (*run)(void *kernel, const rt_args *a, char *err, size_t errlen);
  /* The backward pass (rt_grad) of the same arguments; a and g checked,
   * with rows and keys (rt_grad_empty handled before). */
  rt_status (*backward)(void *kernel, const rt_args *a, const rt_grad *g,
                        char *err, size_t errlen);
  void (*free)(void *kernel);
} backend;

extern const backend backend_interp;  /* backends/interp/interp.c */
extern const backend backend_jit;     /* backends/llvm/llvm_backend.c */

const backend *backend_find(const char *name);  /* NULL if unknown */

#endif
