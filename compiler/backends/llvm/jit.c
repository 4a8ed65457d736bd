/* jit.c: the JIT backend (see jit.h).
 *
 * compile: tile plan (an_build); the shared forward and decode tiles of D
 * (tile_cache.c, compiled once per process); the pattern's module (cg_build: mask and
 * top-k code only) -> the one pipeline (lp_optimize, then machine code) ->
 * an LLJIT of its own -> every generated function looked up into a
 * kr_kernel.  The LLJIT lives as long as the kernel and is disposed with
 * it; LLVMShutdown is never called.
 */
#include "jit.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyze.h"
#include "codegen.h"
#include "kabi.h"
#include "kernel_rt.h"
#include "llvm_pipeline.h"
#include "tile_cache.h"

struct jit_kernel {
  kr_kernel k;
  LLVMOrcLLJITRef jit;
  cg_info info;
  kr_mask_fn *mask;
  kr_tkinfo_fn *tkinfo;
  double ms;
  bool score;           /* the module has the score tiles (kabi.h) */
  /* with score: the backward score tiles, built with the kernel but
   * compiled on the first backward call (then disposed) */
  LLVMContextRef bctx;
  LLVMModuleRef bmod;
  pthread_mutex_t bmu;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int llvm_err(LLVMErrorRef e, const char *what, char *err,
                    size_t errlen) {
  char *m = LLVMGetErrorMessage(e);
  rt_errf(err, errlen, RT_EINTERNAL, "%s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return 0;
}

static int lookup(jit_kernel *jk, const char *name, void **out, char *err,
                  size_t errlen) {
  LLVMOrcExecutorAddress addr = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(jk->jit, &addr, name);
  if (e) return llvm_err(e, name, err, errlen);
  *out = (void *)(uintptr_t)addr;
  return 1;
}

void jit_free(jit_kernel *k) {
  if (!k) return;
  kr_release(&k->k);
  free((void *)k->k.plan); /* an_build's */
  if (k->jit) LLVMOrcDisposeLLJIT(k->jit);
  if (k->bmod) LLVMDisposeModule(k->bmod);
  if (k->bctx) LLVMContextDispose(k->bctx);
  if (k->score) pthread_mutex_destroy(&k->bmu);
  cg_info_free(&k->info);
  free(k->mask);
  free(k->tkinfo);
  free(k);
}

/* The pattern's module through the pipeline: its object in *obj. */
static int compile_module(const ir_program *p, int64_t D, cg_info *info,
                          LLVMMemoryBufferRef *obj, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = lp_target_machine(NULL, err, errlen);
  if (!tm) return 0;
  lp_target tgt;
  lp_target_of(tm, &tgt);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef M = cg_build(ctx, p, D, NULL, CG_F32, &tgt.cg, info, err, errlen);
  int ok = M != NULL && lp_optimize(M, tm, err, errlen) == 0 &&
           lp_emit_object(tm, M, obj, err, errlen) == 0;
  if (M) LLVMDisposeModule(M);
  LLVMContextDispose(ctx);
  lp_target_free(&tgt);
  LLVMDisposeTargetMachine(tm);
  return ok;
}

/* The backward score tiles' module of p, in a context of its own. */
static int build_score_bwd(jit_kernel *jk, const ir_program *p, int64_t D,
                           char *err, size_t errlen) {
  LLVMTargetMachineRef tm = lp_target_machine(NULL, err, errlen);
  if (!tm) return 0;
  lp_target tgt;
  lp_target_of(tm, &tgt);
  jk->bctx = LLVMContextCreate();
  jk->bmod = LLVMModuleCreateWithNameInContext("score_bwd", jk->bctx);
  if (tgt.cg.triple) LLVMSetTarget(jk->bmod, tgt.cg.triple);
  if (tgt.cg.datalayout) LLVMSetDataLayout(jk->bmod, tgt.cg.datalayout);
  int ok = cg_add_score_bwd(jk->bmod, p, D, &tgt.cg) == 0;
  if (!ok) rt_errf(err, errlen, RT_ENOMEM, "out of memory in code generation");
  lp_target_free(&tgt);
  LLVMDisposeTargetMachine(tm);
  return ok;
}

/* The backward score tiles compiled into the kernel's LLJIT, once. */
static rt_status link_score_bwd(jit_kernel *jk, char *err, size_t errlen) {
  pthread_mutex_lock(&jk->bmu);
  rt_status st = RT_OK;
  if (!jk->k.sbwd_dkdv) {
    LLVMTargetMachineRef tm = lp_target_machine(NULL, err, errlen);
    LLVMMemoryBufferRef obj = NULL;
    st = tm ? lp_optimize(jk->bmod, tm, err, errlen) : RT_EINTERNAL;
    if (st == RT_OK) st = lp_emit_object(tm, jk->bmod, &obj, err, errlen);
    if (tm) LLVMDisposeTargetMachine(tm);
    if (st == RT_OK) { /* takes obj */
      LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(
          jk->jit, LLVMOrcLLJITGetMainJITDylib(jk->jit), obj);
      if (e) {
        llvm_err(e, "cannot add the backward tiles", err, errlen);
        st = RT_EINTERNAL;
      }
    }
    void *fq = NULL, *fkv = NULL;
    if (st == RT_OK && (!lookup(jk, KABI_SBWD_DQ, &fq, err, errlen) ||
                        !lookup(jk, KABI_SBWD_DKDV, &fkv, err, errlen)))
      st = RT_EINTERNAL;
    if (st == RT_OK) {
      memcpy(&jk->k.sbwd_dq, &fq, sizeof fq);
      memcpy(&jk->k.sbwd_dkdv, &fkv, sizeof fkv);
      LLVMDisposeModule(jk->bmod);
      LLVMContextDispose(jk->bctx);
      jk->bmod = NULL, jk->bctx = NULL;
    }
  }
  pthread_mutex_unlock(&jk->bmu);
  return st;
}

/* Links obj (taken) and looks up every generated function. */
static int link_kernel(jit_kernel *jk, LLVMMemoryBufferRef obj, char *err,
                       size_t errlen) {
  jk->jit = lp_new_jit(err, errlen);
  if (!jk->jit) {
    LLVMDisposeMemoryBuffer(obj);
    return 0;
  }
  LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(
      jk->jit, LLVMOrcLLJITGetMainJITDylib(jk->jit), obj); /* takes obj */
  if (e) return llvm_err(e, "cannot add the kernel", err, errlen);
  int nt = jk->info.n_topk;
  jk->mask = calloc((size_t)nt + 1, sizeof *jk->mask);
  jk->tkinfo = calloc((size_t)nt + 1, sizeof *jk->tkinfo);
  if (!jk->mask || !jk->tkinfo) {
    rt_errf(err, errlen, RT_ENOMEM, "out of memory");
    return 0;
  }
  char name[32];
  void *f;
  for (int t = 0; t <= nt; t++) {
    snprintf(name, sizeof name, KABI_MASK_FMT, t);
    if (!lookup(jk, name, &f, err, errlen)) return 0;
    memcpy(&jk->mask[t], &f, sizeof f);
  }
  for (int t = 0; t < nt; t++) {
    snprintf(name, sizeof name, KABI_TKINFO_FMT, t);
    if (!lookup(jk, name, &f, err, errlen)) return 0;
    memcpy(&jk->tkinfo[t], &f, sizeof f);
  }
  if (!lookup(jk, KABI_ERRAT, &f, err, errlen)) return 0;
  memcpy(&jk->k.errat, &f, sizeof f);
  if (jk->score) { /* the score tile, E's errors and the inputs' sizes */
    void *fs[3];
    const char *names[3] = {KABI_STILE, KABI_SERRAT, KABI_INLEN};
    for (int x = 0; x < 3; x++)
      if (!lookup(jk, names[x], &fs[x], err, errlen)) return 0;
    memcpy(&jk->k.stile, &fs[0], sizeof fs[0]);
    memcpy(&jk->k.serrat, &fs[1], sizeof fs[1]);
    memcpy(&jk->k.inlen, &fs[2], sizeof fs[2]);
  }
  return 1;
}

jit_kernel *jit_compile(const ir_program *p, const backend_opts *o, char *err,
                        size_t errlen) {
  if (!p || !o) {
    rt_errf(err, errlen, RT_EINVAL, "NULL program or options");
    return NULL;
  }
  if (!ir_check(p, err, errlen)) return NULL;
  const cg_kind *fwd = &cg_kinds[CG_KIND_FWD];
  cg_dtype dt = (cg_dtype)o->dtype;
  if (!cg_kind_supports(fwd, o->D, dt)) {
    cg_unsupported_d(fwd, o->D, "the JIT", err, errlen);
    return NULL;
  }
  if (p->score && dt != CG_F32) { /* the score tile reads q and k as float */
    rt_errf(err, errlen, RT_EUNSUPPORTED,
            "patterns with 'with score' run in float32 only on the JIT (the "
            "kernel's dtype is %s); the interpreter runs them in any dtype",
            cg_dtype_name(dt));
    return NULL;
  }
  double t0 = now_ms();
  jit_kernel *jk = calloc(1, sizeof *jk);
  if (!jk) {
    rt_errf(err, errlen, RT_ENOMEM, "out of memory");
    return NULL;
  }

  void *tile = NULL, *dtile = NULL;
  LLVMMemoryBufferRef obj = NULL;
  jk->score = p->score != NULL;
  if (jk->score) pthread_mutex_init(&jk->bmu, NULL);
  jk->k.plan = an_build(p, err, errlen);
  int ok = jk->k.plan != NULL &&
           tc_get(fwd, o->D, dt, NULL, &tile, err, errlen) == 0 &&
           tc_get(&cg_kinds[CG_KIND_DECODE], o->D, CG_F32, NULL, &dtile, err,
                  errlen) == 0 &&
           compile_module(p, o->D, &jk->info, &obj, err, errlen) &&
           link_kernel(jk, obj, err, errlen) &&
           (!jk->score || build_score_bwd(jk, p, o->D, err, errlen));
  if (!ok) {
    jit_free(jk);
    return NULL;
  }
  memcpy(&jk->k.tile, &tile, sizeof tile);
  memcpy(&jk->k.dtile, &dtile, sizeof dtile);
  jk->k.D = o->D;
  jk->k.dtype = o->dtype;
  jk->k.n_runtime = p->n_runtime;
  jk->k.n_inputs = p->n_inputs;
  jk->k.n_externs = p->n_externs;
  jk->k.n_topk = jk->info.n_topk;
  jk->k.mask = jk->mask;
  jk->k.tkinfo = jk->tkinfo;
  jk->k.errors = (const char *const *)jk->info.errors;
  jk->k.n_errors = jk->info.n_errors;
  jk->k.threads = o->threads;
  jk->ms = now_ms() - t0;
  return jk;
}

rt_status jit_run(jit_kernel *k, const rt_args *a, char *err, size_t errlen) {
  return kr_run(&k->k, a, err, errlen);
}

rt_status jit_bwd_tiles(int64_t D, kr_bwd_fn *dq, kr_bwd_fn *dkdv, char *err,
                        size_t errlen) {
  void *fq = NULL, *fkv = NULL;
  rt_status st =
      tc_get(&cg_kinds[CG_KIND_BWD_DQ], D, CG_F32, NULL, &fq, err, errlen);
  if (st == RT_OK)
    st = tc_get(&cg_kinds[CG_KIND_BWD_DKDV], D, CG_F32, NULL, &fkv, err,
                errlen);
  if (st != RT_OK) return st;
  memcpy(dq, &fq, sizeof fq);
  memcpy(dkdv, &fkv, sizeof fkv);
  return RT_OK;
}

rt_status jit_backward(jit_kernel *k, const rt_args *a, const rt_grad *g,
                       char *err, size_t errlen) {
  kr_bwd_fn dq, dkdv;
  rt_status st = jit_bwd_tiles(k->k.D, &dq, &dkdv, err, errlen);
  if (st == RT_OK && k->score) st = link_score_bwd(k, err, errlen);
  if (st != RT_OK) return st;
  return kr_run_backward(&k->k, dq, dkdv, a, g, err, errlen);
}

double jit_compile_ms(const jit_kernel *k) { return k->ms; }

const kr_kernel *jit_kr_kernel(const jit_kernel *k) { return &k->k; }
