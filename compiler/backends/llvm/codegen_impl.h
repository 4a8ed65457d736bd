/* codegen_impl.h: what the generators (codegen_mask.c, codegen_fwd_tile.c,
 * kinds.c) share: the builder state (cg) and small LLVM-C builders.
 * Internal to compiler/backends/llvm/; not an interface of the library.
 * A kernel-kind generator (cg_kind.gen) reads only the module fields (C, M,
 * B, the types, tgt) and D, dtype: never p, the pattern.
 */
#ifndef SPAT_CODEGEN_IMPL_H
#define SPAT_CODEGEN_IMPL_H

#include <llvm-c/Core.h>
#include <string.h>

#include "codegen.h"
#include "kabi.h"
#include "kernel_rt.h"

#define NV (KR_BQ / 16) /* row vectors per query tile */

typedef struct cg {
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTypeRef i1, i8, i32, i64, f32, ptr, vf, vi8, vi32, vi1, voidt;
  const ir_program *p;
  const cg_target *tgt;
  int64_t D;
  cg_dtype dtype;
  char **errs;
  int n_errs, cap_errs;
  int oom;
  const ir_node **tk;      /* top-k nodes, post-order */
  int n_tk, cap_tk;
  const ir_node **rnd;     /* random nodes, numbered as first generated */
  int n_rnd, cap_rnd;
  /* the function being built */
  LLVMValueRef fn, env;
  LLVMBasicBlockRef allocas;
  LLVMValueRef h, H, lk_tok;
  const void *top_R;       /* the function's own row (memo context) */
  /* sub-pattern functions (see "Bounded functions" in codegen_mask.c) */
  struct cg_nd *nd;        /* per distinct IR node reached */
  int n_nd, cap_nd;
  const ir_node **hkey;    /* node -> index into nd, open addressing */
  int *hval;
  size_t hcap;
  int *order;              /* nodes with a function, kids before parents */
  int n_order;
  int fn_seq;
  int *eparent;            /* errat regions of the function: parent or -1 */
  int n_eregion, cap_eregion, eregion;
  LLVMValueRef detail;     /* spat_errat's int64_t[2] of message values */
} cg;

typedef struct lvl {
  LLVMValueRef i, lq, lk;  /* query index and sizes at this granularity */
} lvl;

/* --- small builders ---------------------------------------------------- */

static inline LLVMValueRef ci64(cg *g, int64_t v) {
  return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}
static inline LLVMValueRef ci8(cg *g, int v) { return LLVMConstInt(g->i8, (unsigned)v, 0); }
static inline LLVMValueRef cf(cg *g, double v) { return LLVMConstReal(g->f32, v); }

static inline LLVMBasicBlockRef newbb(cg *g, const char *name) {
  return LLVMAppendBasicBlockInContext(g->C, g->fn, name);
}

static inline LLVMValueRef alloca_t(cg *g, LLVMTypeRef t, const char *name) {
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(g->B);
  LLVMPositionBuilderAtEnd(g->B, g->allocas);
  LLVMValueRef a = LLVMBuildAlloca(g->B, t, name);
  LLVMSetAlignment(a, 64);
  LLVMPositionBuilderAtEnd(g->B, cur);
  return a;
}

static inline LLVMValueRef gep(cg *g, LLVMTypeRef elt, LLVMValueRef base,
                       LLVMValueRef idx) {
  return LLVMBuildGEP2(g->B, elt, base, &idx, 1, "");
}

static inline LLVMValueRef call_intr(cg *g, const char *name, LLVMTypeRef *ovl,
                              int n_ovl, LLVMValueRef *args, int n_args) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->M, id, ovl, (size_t)n_ovl);
  LLVMTypeRef ft = LLVMIntrinsicGetType(g->C, id, ovl, (size_t)n_ovl);
  return LLVMBuildCall2(g->B, ft, f, args, (unsigned)n_args, "");
}

/* Counted loops with the counter in an alloca (mem2reg makes it a phi). */
typedef struct loop {
  LLVMValueRef var, end, step;
  LLVMBasicBlockRef cond, body, exit;
} loop;

static inline LLVMValueRef loop_begin(cg *g, loop *l, LLVMValueRef start,
                               LLVMValueRef end, int64_t step) {
  l->var = alloca_t(g, g->i64, "iv");
  l->end = end;
  l->step = ci64(g, step);
  LLVMBuildStore(g->B, start, l->var);
  l->cond = newbb(g, "loop");
  l->body = newbb(g, "body");
  l->exit = newbb(g, "done");
  LLVMBuildBr(g->B, l->cond);
  LLVMPositionBuilderAtEnd(g->B, l->cond);
  LLVMValueRef iv = LLVMBuildLoad2(g->B, g->i64, l->var, "");
  LLVMBuildCondBr(g->B, LLVMBuildICmp(g->B, LLVMIntSLT, iv, end, ""), l->body,
                  l->exit);
  LLVMPositionBuilderAtEnd(g->B, l->body);
  return LLVMBuildLoad2(g->B, g->i64, l->var, "");
}

static inline void loop_end(cg *g, loop *l) {
  LLVMValueRef iv = LLVMBuildLoad2(g->B, g->i64, l->var, "");
  LLVMBuildStore(g->B, LLVMBuildAdd(g->B, iv, l->step, ""), l->var);
  LLVMBuildBr(g->B, l->cond);
  LLVMPositionBuilderAtEnd(g->B, l->exit);
}

static inline LLVMValueRef smin(cg *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->B, LLVMBuildICmp(g->B, LLVMIntSLT, a, b, ""), a, b,
                         "");
}
static inline LLVMValueRef smax(cg *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->B, LLVMBuildICmp(g->B, LLVMIntSGT, a, b, ""), a, b,
                         "");
}

/* --- functions ------------------------------------------------------------- */

static inline void fn_attrs(cg *g, LLVMValueRef f) {
  if (g->tgt && g->tgt->cpu)
    LLVMAddTargetDependentFunctionAttr(f, "target-cpu", g->tgt->cpu);
  if (g->tgt && g->tgt->features)
    LLVMAddTargetDependentFunctionAttr(f, "target-features", g->tgt->features);
  LLVMAddTargetDependentFunctionAttr(f, "prefer-vector-width", "512");
  LLVMAddTargetDependentFunctionAttr(f, "min-legal-vector-width", "512");
  LLVMAddTargetDependentFunctionAttr(f, "no-trapping-math", "true");
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(g->C, nounwind, 0));
}

static inline void begin_fn(cg *g, const char *name, LLVMTypeRef ret,
                     LLVMTypeRef *params, int n) {
  LLVMTypeRef ft = LLVMFunctionType(ret, params, (unsigned)n, 0);
  g->fn = LLVMAddFunction(g->M, name, ft);
  fn_attrs(g, g->fn);
  g->allocas = newbb(g, "entry");
  LLVMBasicBlockRef body = newbb(g, "start");
  LLVMPositionBuilderAtEnd(g->B, body);
}

static inline void end_fn(cg *g) {
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(g->B);
  LLVMPositionBuilderAtEnd(g->B, g->allocas);
  LLVMBuildBr(g->B, LLVMGetNextBasicBlock(g->allocas));
  LLVMPositionBuilderAtEnd(g->B, cur);
}

/* A new module named name in ctx for target t, with g's types and builder
 * (kinds.c); g zeroed first.  Disposing: LLVMDisposeBuilder(g->B). */
void cg_begin_module(cg *g, LLVMContextRef ctx, const char *name,
                     const cg_target *t);

/* The kernel-kind generators, one file each (rows of cg_kinds). */
void cg_gen_fwd_tile(cg *g); /* codegen_fwd_tile.c */
/* The score tile of g->p (with score E), spat_stile; only when
 * cg_score_supported(g->p). */
void cg_gen_score_tile(cg *g);
bool cg_score_supported(const ir_program *p);

#endif
