/* llvm_pipeline.c: the one LLVM pipeline (see llvm_pipeline.h).
 *
 * The passes: "default<O3>" with loop and SLP vectorisation and without
 * loop unrolling, for every module of every path.  Before, the JIT ran
 * without unrolling and AOT and the disk cache with it, so `spatc run` and
 * spat_compile(.cache = 1) ran other code than a JIT compile.  No
 * unrolling won: the generated loops are register-blocked by codegen
 * already (4 keys x 64 rows, 4 rows x 64 dims), and unrolling them again
 * made no difference to the kernels beyond noise (kernel run time, process
 * CPU time, 8 patterns and D 64/128: within 4% either way, no consistent
 * direction) while the tile kernel took about 20% longer to optimise and
 * emit and its code grew by 10%.
 */
#include "llvm_pipeline.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ORDER: lp_pass_options() describes exactly what lp_optimize sets. */
#define LP_PASSES "default<O3>"

static pthread_once_t init_once = PTHREAD_ONCE_INIT, passes_once = PTHREAD_ONCE_INIT;
static void init_native(void) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
}

/* LLVM makes some process-wide objects on first use (the pass timers' lock
 * and list, made by the first LLVMRunPasses) and publishes them with atomics
 * that a ThreadSanitizer build cannot see, so two threads' first compiles at
 * once look like a race: made here, ordered before every optimisation by a
 * pthread_once.  Not part of lp_init: a process that only links cached
 * kernels never pays for it. */
static void init_passes(void) {
  LLVMContextRef C = LLVMContextCreate();
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext("spat_init", C);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(M, LP_PASSES, NULL, po);
  if (e) LLVMConsumeError(e);
  LLVMDisposePassBuilderOptions(po);
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
}

void lp_init(void) { pthread_once(&init_once, init_native); }

/* The host's CPU name and features, asked once: every kernel's target and
 * cache key need them, and each question is a run of CPUID instructions
 * (slow in a virtual machine). */
static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char *host_cpu, *host_features;
static void ask_host(void) {
  host_cpu = LLVMGetHostCPUName();
  host_features = LLVMGetHostCPUFeatures();
}

const char *lp_host_cpu(void) {
  pthread_once(&host_once, ask_host);
  return host_cpu;
}

const char *lp_host_features(void) {
  pthread_once(&host_once, ask_host);
  return host_features;
}

/* LLVM's C API cannot list the CPUs it knows: these x86-64 names (LLVM's
 * and gcc's -march spellings). */
static const char *const x86_cpus[] = {
    "x86-64",         "x86-64-v2",      "x86-64-v3",     "x86-64-v4",
    "nehalem",        "westmere",       "sandybridge",   "ivybridge",
    "haswell",        "broadwell",      "skylake",       "skylake-avx512",
    "cascadelake",    "cooperlake",     "cannonlake",    "icelake-client",
    "icelake-server", "tigerlake",      "alderlake",     "raptorlake",
    "meteorlake",     "sapphirerapids", "emeraldrapids", "graniterapids",
    "btver2",         "bdver4",         "znver1",        "znver2",
    "znver3",         "znver4",
};

bool lp_known_cpu(const char *cpu) {
  for (size_t k = 0; k < sizeof x86_cpus / sizeof x86_cpus[0]; k++)
    if (strcmp(cpu, x86_cpus[k]) == 0) return true;
  return false;
}

static void unknown_cpu(const char *cpu, const char *triple, char *err,
                        size_t errlen) {
  char list[1024] = "";
  size_t used = 0;
  for (size_t k = 0; k < sizeof x86_cpus / sizeof x86_cpus[0]; k++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                             k ? ", " : "", x86_cpus[k]);
  rt_errf(err, errlen, RT_EUNSUPPORTED,
          "unknown CPU '%s' for %s (known: native, %s)", cpu, triple, list);
}

LLVMTargetMachineRef lp_target_machine(const char *cpu, char *err,
                                       size_t errlen) {
  lp_init();
  if (cpu != NULL && strcmp(cpu, "native") == 0) cpu = NULL;
  char *triple = LLVMGetDefaultTargetTriple();
  if (cpu != NULL && (strncmp(triple, "x86_64", 6) != 0 || !lp_known_cpu(cpu))) {
    unknown_cpu(cpu, triple, err, errlen);
    LLVMDisposeMessage(triple);
    return NULL;
  }
  const char *name = cpu ? cpu : lp_host_cpu();
  LLVMTargetRef T;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &T, &msg)) {
    rt_errf(err, errlen, RT_EUNSUPPORTED, "no LLVM target for %s: %s", triple,
            msg ? msg : "");
    LLVMDisposeMessage(msg);
  } else {
    tm = LLVMCreateTargetMachine(T, triple, name, cpu ? "" : lp_host_features(),
                                 LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
    if (!tm)
      rt_errf(err, errlen, RT_EUNSUPPORTED,
              "cannot create a target machine for CPU '%s'", name);
  }
  LLVMDisposeMessage(triple);
  return tm;
}

void lp_target_of(LLVMTargetMachineRef tm, lp_target *t) {
  t->triple = LLVMGetTargetMachineTriple(tm);
  t->cpu = LLVMGetTargetMachineCPU(tm);
  t->features = LLVMGetTargetMachineFeatureString(tm);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  t->layout = LLVMCopyStringRepOfTargetData(td);
  LLVMDisposeTargetData(td);
  t->cg = (cg_target){t->triple, t->layout, t->cpu,
                      t->features[0] ? t->features : NULL};
}

void lp_target_free(lp_target *t) {
  LLVMDisposeMessage(t->triple);
  LLVMDisposeMessage(t->cpu);
  LLVMDisposeMessage(t->features);
  LLVMDisposeMessage(t->layout);
  memset(t, 0, sizeof *t);
}

const char *lp_passes(void) { return LP_PASSES; }
const char *lp_pass_options(void) {
  return "loop-vectorize slp-vectorize no-loop-unroll";
}

static atomic_long n_optimized;
long lp_n_optimized(void) { return atomic_load(&n_optimized); }

static rt_status llvm_error(LLVMErrorRef e, const char *what, char *err,
                            size_t errlen) {
  char *m = LLVMGetErrorMessage(e);
  rt_status st = rt_errf(err, errlen, RT_EINTERNAL, "%s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return st;
}

rt_status lp_optimize(LLVMModuleRef M, LLVMTargetMachineRef tm, char *err,
                      size_t errlen) {
  char *msg = NULL;
  if (LLVMVerifyModule(M, LLVMReturnStatusAction, &msg)) {
    rt_errf(err, errlen, RT_EINTERNAL, "internal error: invalid module: %.400s",
            msg ? msg : "");
    LLVMDisposeMessage(msg);
    return RT_EINTERNAL;
  }
  LLVMDisposeMessage(msg);
  lp_init();
  pthread_once(&passes_once, init_passes);
  atomic_fetch_add(&n_optimized, 1);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
  LLVMErrorRef e = LLVMRunPasses(M, LP_PASSES, tm, po);
  LLVMDisposePassBuilderOptions(po);
  return e ? llvm_error(e, "optimisation", err, errlen) : RT_OK;
}

rt_status lp_emit_object(LLVMTargetMachineRef tm, LLVMModuleRef M,
                         LLVMMemoryBufferRef *out, char *err, size_t errlen) {
  char *msg = NULL;
  rt_status rc = RT_OK;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &msg, out))
    rc = rt_errf(err, errlen, RT_EINTERNAL, "cannot emit the object: %s",
                 msg ? msg : "");
  LLVMDisposeMessage(msg);
  return rc;
}

LLVMOrcLLJITRef lp_new_jit(char *err, size_t errlen) {
  /* The JIT only links objects made by lp_emit_object, it compiles no IR:
   * its own target machine (LLJIT makes one up front) is for the triple
   * alone.  A generic CPU spares LLVM's host detection (CPUID) and the
   * applying of a few hundred feature bits, twice, per kernel. */
  lp_init();
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef T;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &T, &msg) == 0)
    tm = LLVMCreateTargetMachine(T, triple, "generic", "",
                                 LLVMCodeGenLevelDefault, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
  LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  if (tm == NULL) {
    rt_errf(err, errlen, RT_EUNSUPPORTED, "no LLVM target for this host");
    return NULL;
  }
  LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm)); /* takes tm */
  LLVMOrcLLJITRef jit = NULL;
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&jit, b); /* takes b */
  if (e) {
    llvm_error(e, "cannot create the JIT", err, errlen);
    return NULL;
  }
  LLVMOrcDefinitionGeneratorRef gen = NULL; /* memset, libm, ... */
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
  if (e) {
    llvm_error(e, "cannot resolve process symbols", err, errlen);
    LLVMOrcDisposeLLJIT(jit);
    return NULL;
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), gen);
  return jit;
}
