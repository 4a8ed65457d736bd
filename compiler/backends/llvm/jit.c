/* jit.c: ORC LLJIT for attention kernels (see jit.h).
 *
 * compile: tile plan (an_build) -> module (cg_build, in the context of a
 * fresh ThreadSafeContext) -> O3 with the host target machine -> LLJIT ->
 * look up every generated function into a kr_kernel.  The LLJIT lives as
 * long as the kernel and is disposed with it; LLVMShutdown is never called.
 */
#include "jit.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel_rt.h"
#include "analyze.h"
#include "codegen.h"

struct jit_kernel {
  kr_kernel k;
  LLVMOrcLLJITRef jit;
  cg_info info;
  kr_mask_fn *mask;
  kr_tkinfo_fn *tkinfo;
  double ms;
};

/* LLVM's target registry is process-wide and not safe to fill from two
 * threads at once: registered exactly once. */
static pthread_once_t native_once = PTHREAD_ONCE_INIT;
static void init_native(void) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void llvm_err(LLVMErrorRef e, const char *what, char *err,
                     size_t errlen) {
  char *m = LLVMGetErrorMessage(e);
  snprintf(err, errlen, "%s: %s", what, m);
  LLVMDisposeErrorMessage(m);
}

LLVMTargetMachineRef jit_target_machine(const char *cpu, bool jit, char *err,
                                        size_t errlen) {
  char *triple = LLVMGetDefaultTargetTriple();
  char *host_cpu = cpu ? NULL : LLVMGetHostCPUName();
  char *host_feat = cpu ? NULL : LLVMGetHostCPUFeatures();
  LLVMTargetRef T;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &T, &msg)) {
    snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg ? msg : "");
    LLVMDisposeMessage(msg);
  } else {
    tm = LLVMCreateTargetMachine(
        T, triple, cpu ? cpu : host_cpu, cpu ? "" : host_feat,
        LLVMCodeGenLevelAggressive, jit ? LLVMRelocDefault : LLVMRelocPIC,
        jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
    if (!tm)
      snprintf(err, errlen, "cannot create a target machine for CPU '%s'",
               cpu ? cpu : host_cpu);
  }
  LLVMDisposeMessage(triple);
  if (host_cpu) LLVMDisposeMessage(host_cpu);
  if (host_feat) LLVMDisposeMessage(host_feat);
  return tm;
}

static int lookup(jit_kernel *jk, const char *name, void **out, char *err,
                  size_t errlen) {
  LLVMOrcExecutorAddress addr = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(jk->jit, &addr, name);
  if (e) {
    llvm_err(e, name, err, errlen);
    return 0;
  }
  *out = (void *)(uintptr_t)addr;
  return 1;
}

void jit_free(jit_kernel *k) {
  if (!k) return;
  kr_release(&k->k);
  if (k->jit) LLVMOrcDisposeLLJIT(k->jit);
  cg_info_free(&k->info);
  free(k->mask);
  free(k->tkinfo);
  free(k);
}

jit_kernel *jit_compile(const ir_program *p, const backend_opts *o, char *err,
                        size_t errlen) {
  if (!p || !o) {
    snprintf(err, errlen, "NULL program or options");
    return NULL;
  }
  if (!ir_check(p, err, errlen)) return NULL;
  if (!cg_supported_d(o->D)) {
    snprintf(err, errlen,
             "head dimension %lld is not supported by the JIT "
             "(16, 32, 64, 80, 96, 128, 256)",
             (long long)o->D);
    return NULL;
  }
  double t0 = now_ms();
  jit_kernel *jk = calloc(1, sizeof *jk);
  if (!jk) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  jk->k.plan = an_build(p, err, errlen);
  if (!jk->k.plan) {
    free(jk);
    return NULL;
  }
  pthread_once(&native_once, init_native);
  LLVMTargetMachineRef tm = jit_target_machine(NULL, true, err, errlen);
  LLVMTargetMachineRef tm2 = tm ? jit_target_machine(NULL, true, err, errlen) : NULL;
  if (!tm || !tm2) {
    if (tm) LLVMDisposeTargetMachine(tm);
    free(jk);
    return NULL;
  }
  char *triple = LLVMGetTargetMachineTriple(tm);
  char *cpu = LLVMGetTargetMachineCPU(tm);
  char *feat = LLVMGetTargetMachineFeatureString(tm);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *layout = LLVMCopyStringRepOfTargetData(td);
  cg_target tgt = {triple, layout, cpu, feat};

  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMModuleRef M = cg_build(LLVMOrcThreadSafeContextGetContext(tsc), p, o->D,
                             &tgt, &jk->info, err, errlen);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  LLVMDisposeMessage(layout);
  LLVMDisposeTargetData(td);
  int ok = M != NULL;
  if (ok) {
    char *msg = NULL;
    if (LLVMVerifyModule(M, LLVMReturnStatusAction, &msg)) {
      snprintf(err, errlen, "internal error: invalid module: %.400s",
               msg ? msg : "");
      ok = 0;
    }
    LLVMDisposeMessage(msg);
  }
  if (ok) {
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
    LLVMErrorRef e = LLVMRunPasses(M, "default<O3>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
      llvm_err(e, "optimisation", err, errlen);
      ok = 0;
    }
  }
  LLVMDisposeTargetMachine(tm);
  if (ok) {
    LLVMOrcJITTargetMachineBuilderRef jtmb =
        LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm2);
    tm2 = NULL;
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&jk->jit, jb);
    if (e) {
      llvm_err(e, "cannot create the JIT", err, errlen);
      jk->jit = NULL;
      ok = 0;
    }
  }
  if (tm2) LLVMDisposeTargetMachine(tm2);
  if (ok) {
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    LLVMErrorRef e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(jk->jit), NULL, NULL);
    if (e) {
      llvm_err(e, "cannot resolve process symbols", err, errlen);
      ok = 0;
    } else {
      LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jk->jit), gen);
    }
  }
  if (ok) {
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(M, tsc);
    M = NULL;
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(
        jk->jit, LLVMOrcLLJITGetMainJITDylib(jk->jit), tsm);
    if (e) {
      LLVMOrcDisposeThreadSafeModule(tsm);
      llvm_err(e, "cannot add the module", err, errlen);
      ok = 0;
    }
  }
  if (M) LLVMDisposeModule(M);
  LLVMOrcDisposeThreadSafeContext(tsc);

  int nt = jk->info.n_topk;
  if (ok) {
    jk->mask = calloc((size_t)nt + 1, sizeof *jk->mask);
    jk->tkinfo = calloc((size_t)nt + 1, sizeof *jk->tkinfo);
    ok = jk->mask && jk->tkinfo;
    if (!ok) snprintf(err, errlen, "out of memory");
  }
  char name[32];
  for (int t = 0; ok && t <= nt; t++) {
    snprintf(name, sizeof name, "spat_mask_%d", t);
    void *f;
    ok = lookup(jk, name, &f, err, errlen);
    if (ok) memcpy(&jk->mask[t], &f, sizeof f);
  }
  for (int t = 0; ok && t < nt; t++) {
    snprintf(name, sizeof name, "spat_tkinfo_%d", t);
    void *f;
    ok = lookup(jk, name, &f, err, errlen);
    if (ok) memcpy(&jk->tkinfo[t], &f, sizeof f);
  }
  void *tf = NULL, *ef = NULL;
  if (ok) ok = lookup(jk, "spat_tile", &tf, err, errlen);
  if (ok) ok = lookup(jk, "spat_errat", &ef, err, errlen);
  if (!ok) {
    jit_free(jk);
    return NULL;
  }
  memcpy(&jk->k.tile, &tf, sizeof tf);
  memcpy(&jk->k.errat, &ef, sizeof ef);
  jk->k.D = o->D;
  jk->k.n_runtime = p->n_runtime;
  jk->k.n_inputs = p->n_inputs;
  jk->k.n_externs = p->n_externs;
  jk->k.n_topk = nt;
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

double jit_compile_ms(const jit_kernel *k) { return k->ms; }
