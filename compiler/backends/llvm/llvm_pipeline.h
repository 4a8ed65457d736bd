/* llvm_pipeline.h: the one LLVM pipeline (lp_) every kernel goes through: the
 * JIT (jit.c), AOT objects (aot.c), the disk cache (cache.c) and the shared
 * tile kernels (tile_cache.c).
 *
 *   lp_init             LLVM's native target, registered once per process
 *                       (pthread_once: the registry is not thread-safe)
 *   lp_target_machine   the target machine: this host's CPU and features,
 *                       or a named x86-64 CPU (validated here: LLVM aborts
 *                       on a CPU it does not know)
 *   lp_target_of        its triple, data layout, CPU and features for
 *                       codegen (cg_target)
 *   lp_optimize         module verification, then the passes of
 *                       lp_passes() with lp_pass_options(): the same for
 *                       every caller, so a kernel's code does not depend on
 *                       the path that compiled it
 *   lp_emit_object      machine code as an object file in memory
 *   lp_new_jit          an LLJIT for the host that resolves libc/libm
 *
 * Everything here is safe to call from several threads at once.
 */
#ifndef SPAT_LLVM_PIPELINE_H
#define SPAT_LLVM_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "codegen.h"
#include "rt.h"

typedef struct LLVMOpaqueTargetMachine *LLVMTargetMachineRef;
typedef struct LLVMOpaqueMemoryBuffer *LLVMMemoryBufferRef;
typedef struct LLVMOrcOpaqueLLJIT *LLVMOrcLLJITRef;

/* rt_errf (runtime/rt.h, the library's one error formatter) for the
 * functions of this folder whose contract is "0, or -1 with a message":
 * formats into err and yields -1. */
#define lp_fail(err, errlen, ...) \
  (rt_errf((err), (errlen), RT_EINVAL, __VA_ARGS__), -1)

/* Registers the native target and its assembly printer; cheap after the
 * first call.  Every function below calls it. */
void lp_init(void);

/* A target machine at CodeGenOptLevel Aggressive for the default triple.
 * cpu NULL or "native": this host's CPU name and features; otherwise one of
 * the x86-64 CPU names lp_known_cpu accepts, with no extra features.
 * Position-independent code, the default code model: every kernel becomes
 * an object file (the JIT links it in memory).  NULL with a message in err
 * on failure. */
LLVMTargetMachineRef lp_target_machine(const char *cpu, char *err,
                                       size_t errlen);
bool lp_known_cpu(const char *cpu);
/* This host's CPU name and feature string (LLVM's), asked once per
 * process. */
const char *lp_host_cpu(void);
const char *lp_host_features(void);

/* The codegen target of tm; its strings are owned by t (lp_target_free). */
typedef struct lp_target {
  cg_target cg;
  char *triple, *layout, *cpu, *features;
} lp_target;
void lp_target_of(LLVMTargetMachineRef tm, lp_target *t);
void lp_target_free(lp_target *t);

/* The optimisation: its pass pipeline (LLVMRunPasses syntax) and the
 * PassBuilder options, as text ("loop-vectorize slp-vectorize
 * no-loop-unroll"); fixed for the process. */
const char *lp_passes(void);
const char *lp_pass_options(void);

/* Verifies M, then runs the pipeline with tm; RT_OK or a status with the
 * message in err.  Each call counts in lp_n_optimized (for the tests: every
 * path counts). */
rt_status lp_optimize(LLVMModuleRef M, LLVMTargetMachineRef tm, char *err,
                      size_t errlen);
long lp_n_optimized(void);

/* M as an object file in *out (caller disposes); RT_OK or a status with
 * the message in err. */
rt_status lp_emit_object(LLVMTargetMachineRef tm, LLVMModuleRef M,
                         LLVMMemoryBufferRef *out, char *err, size_t errlen);

/* An LLJIT for this host whose main dylib also resolves the process's
 * symbols (libc, libm); NULL with a message in err. */
LLVMOrcLLJITRef lp_new_jit(char *err, size_t errlen);

#endif
