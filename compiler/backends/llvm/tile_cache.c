/* tile_cache.c: kernel-kind functions compiled once per process (see
 * tile_cache.h).
 *
 * One slot per (kind, index of D in the kind's list, dtype), guarded by one
 * mutex; a slot being built is marked so, and other threads asking for it
 * wait on a condition variable instead of compiling it again.  A slot keeps
 * a copy of its object so that it can also be stored in a disk cache named
 * later (a process that compiled its tile without the cache, then uses it).
 * The entries are disposed of at exit (or when a shared libspat is
 * unloaded), after every kernel is expected to be done.
 */
#include "tile_cache.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "llvm_pipeline.h"

#define MAX_DIMS 16

enum { EMPTY = 0, BUILDING, READY };

typedef struct slot {
  int state;
  void *fn;
  LLVMOrcLLJITRef jit;     /* owns fn's code; never disposed */
  char *obj;               /* a copy of the object, for disk caches */
  size_t obj_len;
  char *stored_in;         /* the last directory known to hold it */
} slot;

static slot slots[CG_N_KINDS][MAX_DIMS][CG_N_DTYPES];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t built = PTHREAD_COND_INITIALIZER;
static atomic_long n_compiled, n_loaded;

/* Slots dropped by tc_forget: their code stays mapped. */
typedef struct retired {
  struct retired *next;
  slot s;
} retired;
static retired *retired_slots;

static void free_slot(slot *s) {
  if (s->jit) LLVMOrcDisposeLLJIT(s->jit);
  free(s->obj);
  free(s->stored_in);
  memset(s, 0, sizeof *s);
}

/* atexit: the LLJITs would otherwise outlive the process's last use of
 * them (and leak checkers would count their insides as lost). */
static void release_all(void) {
  pthread_mutex_lock(&mu);
  for (int k = 0; k < CG_N_KINDS; k++)
    for (int d = 0; d < MAX_DIMS; d++)
      for (int t = 0; t < CG_N_DTYPES; t++)
        if (slots[k][d][t].state == READY) free_slot(&slots[k][d][t]);
  while (retired_slots != NULL) {
    retired *r = retired_slots;
    retired_slots = r->next;
    free_slot(&r->s);
    free(r);
  }
  pthread_mutex_unlock(&mu);
}

static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static void register_exit(void) { atexit(release_all); }

long tc_n_compiled(void) { return atomic_load(&n_compiled); }
long tc_n_loaded(void) { return atomic_load(&n_loaded); }

/* The disk entry's key: everything the object depends on. */
static char *tile_key(const cg_kind *k, int64_t D, cg_dtype t) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return NULL;
  kc_key_head(f);
  fprintf(f, "kernel %s symbol %s D %lld dtype %s\n", k->name, k->symbol,
          (long long)D, cg_dtype_name(t));
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

/* Generator, then the pipeline: the optimised module in ctx (NULL with
 * err). */
static LLVMModuleRef optimized(const cg_kind *k, int64_t D, cg_dtype t,
                               LLVMTargetMachineRef tm, LLVMContextRef ctx,
                               char *err, size_t errlen) {
  lp_target tgt;
  lp_target_of(tm, &tgt);
  LLVMModuleRef M = cg_build_kernel(ctx, k, D, t, &tgt.cg, err, errlen);
  if (M != NULL && lp_optimize(M, tm, err, errlen) != 0) {
    LLVMDisposeModule(M);
    M = NULL;
  }
  lp_target_free(&tgt);
  return M;
}

/* ... and machine code for cpu (NULL: the host): the object in *out. */
static int compile(const cg_kind *k, int64_t D, cg_dtype t, const char *cpu,
                   LLVMMemoryBufferRef *out, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = lp_target_machine(cpu, err, errlen);
  if (tm == NULL) return -1;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef M = optimized(k, D, t, tm, ctx, err, errlen);
  int rc = M != NULL && lp_emit_object(tm, M, out, err, errlen) == RT_OK ? 0 : -1;
  if (M != NULL) LLVMDisposeModule(M);
  LLVMContextDispose(ctx);
  LLVMDisposeTargetMachine(tm);
  if (rc == 0) atomic_fetch_add(&n_compiled, 1);
  return rc;
}

char *tc_kernel_ir(const cg_kind *k, int64_t D, cg_dtype t, char *err,
                   size_t errlen) {
  LLVMTargetMachineRef tm = lp_target_machine(NULL, err, errlen);
  if (tm == NULL) return NULL;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef M = optimized(k, D, t, tm, ctx, err, errlen);
  char *text = NULL;
  if (M != NULL) {
    char *s = LLVMPrintModuleToString(M);
    text = strdup(s);
    LLVMDisposeMessage(s);
    LLVMDisposeModule(M);
  }
  LLVMContextDispose(ctx);
  LLVMDisposeTargetMachine(tm);
  if (M != NULL && text == NULL) rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  return text;
}

/* Links obj (taken) by a new LLJIT into s; 0 or -1 with err. */
static int link_object(slot *s, const cg_kind *k, LLVMMemoryBufferRef obj, char *err,
                size_t errlen) {
  LLVMOrcLLJITRef jit = lp_new_jit(err, errlen);
  if (jit == NULL) {
    LLVMDisposeMemoryBuffer(obj);
    return -1;
  }
  LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(
      jit, LLVMOrcLLJITGetMainJITDylib(jit), obj); /* takes obj */
  LLVMOrcExecutorAddress addr = 0;
  if (!e) e = LLVMOrcLLJITLookup(jit, &addr, k->symbol);
  if (e) {
    char *m = LLVMGetErrorMessage(e);
    rt_errf(err, errlen, RT_EINTERNAL, "%s kernel: %s", k->name, m);
    LLVMDisposeErrorMessage(m);
    LLVMOrcDisposeLLJIT(jit);
    return -1;
  }
  s->jit = jit;
  s->fn = (void *)(uintptr_t)addr;
  return 0;
}

/* Fills the slot (marked BUILDING by the caller, so no lock is needed):
 * from the disk cache when dir holds it, else compiled (and stored). */
static int build(slot *s, const cg_kind *k, int64_t D, cg_dtype t,
                 const char *dir, const char *key, char *err, size_t errlen) {
  LLVMMemoryBufferRef obj = NULL;
  int from_disk = dir != NULL && key != NULL &&
                  kc_read(dir, key, KC_TILE_EXT, &obj) == 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!from_disk) {
      if (compile(k, D, t, NULL, &obj, err, errlen) != 0) return -1;
      if (dir != NULL && key != NULL && kc_write(dir, key, KC_TILE_EXT, obj) == 0)
        s->stored_in = strdup(dir);
    }
    size_t n = LLVMGetBufferSize(obj);
    char *copy = malloc(n ? n : 1);
    if (copy == NULL) {
      LLVMDisposeMemoryBuffer(obj);
      return lp_fail(err, errlen, "out of memory");
    }
    memcpy(copy, LLVMGetBufferStart(obj), n);
    if (link_object(s, k, obj, err, errlen) == 0) {
      s->obj = copy;
      s->obj_len = n;
      if (from_disk) {
        atomic_fetch_add(&n_loaded, 1);
        if (!s->stored_in) s->stored_in = strdup(dir);
      }
      return 0;
    }
    free(copy);
    if (!from_disk) return -1;
    from_disk = 0; /* an entry that does not link is compiled again */
  }
  return -1;
}

/* Writes a ready slot's object to dir unless dir already holds it. */
static void store(const char *obj, size_t n, const char *dir,
                  const char *key) {
  LLVMMemoryBufferRef have = NULL;
  if (kc_read(dir, key, KC_TILE_EXT, &have) == 0) {
    LLVMDisposeMemoryBuffer(have);
    return;
  }
  LLVMMemoryBufferRef b =
      LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, n, "tile");
  (void)kc_write(dir, key, KC_TILE_EXT, b);
  LLVMDisposeMemoryBuffer(b);
}

rt_status tc_get(const cg_kind *k, int64_t D, cg_dtype t, const char *dir,
                 void **fn, char *err, size_t errlen) {
  *fn = NULL;
  if (k == NULL || (int)k->id < 0 || k->id >= CG_N_KINDS ||
      k != &cg_kinds[k->id])
    return rt_errf(err, errlen, RT_EINTERNAL,
                   "internal error: unknown kernel kind");
  if (!cg_kind_supports(k, D, t)) {
    if ((int)t >= 0 && t < CG_N_DTYPES && (k->dtypes & (1u << t))) {
      cg_unsupported_d(k, D, "the JIT", err, errlen);
      return RT_EUNSUPPORTED;
    }
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "kernel kind %s has no %s version", k->name,
                   cg_dtype_name(t));
  }
  int di = 0;
  while (k->dims[di] != D) di++;
  if (di >= MAX_DIMS)
    return rt_errf(err, errlen, RT_EINTERNAL,
                   "internal error: too many head dimensions");
  slot *s = &slots[k->id][di][t];

  pthread_mutex_lock(&mu);
  while (s->state == BUILDING) pthread_cond_wait(&built, &mu);
  if (s->state == READY) {
    *fn = s->fn;
    int need = dir != NULL && (s->stored_in == NULL || strcmp(s->stored_in, dir));
    pthread_mutex_unlock(&mu);
    if (need) { /* s->obj is immutable once READY */
      char *key = tile_key(k, D, t);
      if (key != NULL) store(s->obj, s->obj_len, dir, key);
      free(key);
      char *d = strdup(dir);
      pthread_mutex_lock(&mu);
      free(s->stored_in);
      s->stored_in = d;
      pthread_mutex_unlock(&mu);
    }
    return RT_OK;
  }
  s->state = BUILDING;
  pthread_mutex_unlock(&mu);
  pthread_once(&exit_once, register_exit);

  char *key = dir != NULL ? tile_key(k, D, t) : NULL;
  int rc = build(s, k, D, t, dir, key, err, errlen);
  free(key);

  pthread_mutex_lock(&mu);
  s->state = rc == 0 ? READY : EMPTY;
  if (rc == 0) *fn = s->fn;
  pthread_cond_broadcast(&built);
  pthread_mutex_unlock(&mu);
  return rc == 0 ? RT_OK : RT_EINTERNAL;
}

void tc_forget(void) {
  pthread_mutex_lock(&mu);
  for (int k = 0; k < CG_N_KINDS; k++)
    for (int d = 0; d < MAX_DIMS; d++)
      for (int t = 0; t < CG_N_DTYPES; t++) {
        slot *s = &slots[k][d][t];
        if (s->state != READY) continue;
        retired *r = malloc(sizeof *r);
        if (r == NULL) continue; /* kept: still correct */
        r->s = *s;
        r->next = retired_slots;
        retired_slots = r;
        memset(s, 0, sizeof *s);
      }
  pthread_mutex_unlock(&mu);
}

rt_status tc_compile_for_cpu(const cg_kind *k, int64_t D, cg_dtype t,
                             const char *cpu, void **fn, char *err,
                             size_t errlen) {
  *fn = NULL;
  if (k == NULL || !cg_kind_supports(k, D, t))
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "no such kernel (kind, D, dtype)");
  LLVMMemoryBufferRef obj = NULL;
  if (compile(k, D, t, cpu, &obj, err, errlen) != 0) return RT_EINTERNAL;
  retired *r = calloc(1, sizeof *r);
  if (r == NULL) {
    LLVMDisposeMemoryBuffer(obj);
    return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  }
  if (link_object(&r->s, k, obj, err, errlen) != 0) {
    free(r);
    return RT_EINTERNAL;
  }
  pthread_once(&exit_once, register_exit);
  pthread_mutex_lock(&mu);
  r->next = retired_slots; /* freed at exit with the forgotten slots */
  retired_slots = r;
  pthread_mutex_unlock(&mu);
  *fn = r->s.fn;
  return RT_OK;
}
