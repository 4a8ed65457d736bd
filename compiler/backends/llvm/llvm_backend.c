/* llvm_backend.c: backend_jit, the LLVM backend behind the backend table.
 *
 * In: a checked ir_program and backend_opts.  Out: a kernel that is either
 * an object from the disk kernel cache (aot.h: looked up by the program's
 * canonical text, options and CPU, compiled and stored on a miss) or, when
 * the cache is off or unusable, an in-memory JIT kernel (jit.h).  Both run
 * through the same C driver (runtime/kernel_rt.c).  The disk cache is part
 * of this backend's compile: callers (compiler/api.c, the CLI) never see it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aot.h"
#include "backend.h"
#include "codegen.h"
#include "jit.h"

typedef struct llvm_kernel {
  jit_kernel *jit;     /* or */
  aot_loaded *cached;  /* an object from the disk cache */
} llvm_kernel;

static void note(const backend_opts *o, const char *msg) {
  if (o->note != NULL && o->notelen > 0)
    snprintf(o->note, o->notelen, "%s", msg);
}

/* The disk cache's kernel, or NULL (with a note) when it cannot be used:
 * then the caller compiles without it. */
static aot_loaded *from_cache(const ir_program *p, const backend_opts *o,
                              backend_cache *state) {
  char dir[4096], err[1024] = "";
  if (aot_cache_dir(dir, sizeof dir, err, sizeof err) != 0) {
    note(o, err);
    return NULL;
  }
  aot_opts ao = {o->D,         o->layout, o->threads, NULL, NULL, NULL,
                 AOT_EMIT_OBJ, o->dtype};
  const void *desc = NULL;
  int hit = 0;
  aot_loaded *l =
      aot_cache_load(p, &ao, dir, o->externs, &desc, &hit, err, sizeof err);
  if (l == NULL) {
    note(o, err);
    return NULL;
  }
  *state = hit ? BACKEND_CACHE_HIT : BACKEND_CACHE_MISS;
  return l;
}

static void *llvm_compile(const ir_program *p, const backend_opts *o,
                          char *err, size_t errlen) {
  if (p == NULL || o == NULL) {
    snprintf(err, errlen, "NULL program or options");
    return NULL;
  }
  llvm_kernel *k = calloc(1, sizeof *k);
  if (k == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  backend_cache state = BACKEND_CACHE_OFF;
  if (o->cache && cg_supported_d(o->D)) k->cached = from_cache(p, o, &state);
  if (k->cached == NULL) k->jit = jit_compile(p, o, err, errlen);
  if (o->cache_out != NULL) *o->cache_out = state;
  if (k->cached == NULL && k->jit == NULL) {
    free(k);
    return NULL;
  }
  return k;
}

static rt_status llvm_run(void *kernel, const rt_args *a, char *err,
                          size_t errlen) {
  llvm_kernel *k = kernel;
  if (k == NULL) {
    snprintf(err, errlen, "NULL kernel");
    return RT_EINVAL;
  }
  if (k->cached != NULL)
    return aot_run_args(aot_loaded_desc(k->cached), a, err, errlen);
  return jit_run(k->jit, a, err, errlen);
}

static rt_status llvm_backward(void *kernel, const rt_args *a,
                               const rt_grad *g, char *err, size_t errlen) {
  llvm_kernel *k = kernel;
  if (k == NULL) return rt_errf(err, errlen, RT_EINVAL, "NULL kernel");
  if (k->cached == NULL) return jit_backward(k->jit, a, g, err, errlen);
  kr_bwd_fn dq, dkdv; /* the cache's objects carry no shared backward tiles
                         (a score pattern's own are in its object) */
  rt_status st = jit_bwd_tiles(a->D, &dq, &dkdv, err, errlen);
  if (st != RT_OK) return st;
  return aot_backward_args(aot_loaded_desc(k->cached), a, g, dq, dkdv, err,
                           errlen);
}

static void llvm_free(void *kernel) {
  llvm_kernel *k = kernel;
  if (k == NULL) return;
  if (k->jit != NULL) jit_free(k->jit);
  aot_cache_free(k->cached); /* and the descriptor's run-time kernel */
  free(k);
}

const backend backend_jit = {
    .name = "jit",
    .caps = BACKEND_CAP_CACHE | BACKEND_CAP_TOPK | BACKEND_CAP_EXTERNS,
    .supports_d = cg_supported_d,
    .d_text = "16, 32, 64, 80, 96, 128, 256",
    .compile = llvm_compile,
    .run = llvm_run,
    .backward = llvm_backward,
    .free = llvm_free,
};
