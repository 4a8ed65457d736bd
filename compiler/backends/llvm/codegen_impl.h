/* codegen_impl.h: what the generators (codegen_mask.c, codegen_fwd_tile.c,
 * codegen_bwd_tile.c, kinds.c) share: the builder state (cg) and small LLVM-C builders.
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

/* --- <16 x float> builders of the tiles ------------------------------------ */

static inline LLVMValueRef splat(cg *g, LLVMValueRef s) {
  LLVMValueRef v = LLVMBuildInsertElement(g->B, LLVMGetPoison(g->vf), s,
                                          LLVMConstInt(g->i32, 0, 0), "");
  return LLVMBuildShuffleVector(g->B, v, LLVMGetPoison(g->vf),
                                LLVMConstNull(g->vi32), "");
}
static inline LLVMValueRef vsplat(cg *g, double x) {
  LLVMValueRef e[16];
  for (int k = 0; k < 16; k++) e[k] = cf(g, x);
  return LLVMConstVector(e, 16);
}
static inline LLVMValueRef vload(cg *g, LLVMValueRef base, LLVMValueRef idx) {
  LLVMValueRef l = LLVMBuildLoad2(g->B, g->vf, gep(g, g->f32, base, idx), "");
  LLVMSetAlignment(l, 4);
  return l;
}
static inline void vstore(cg *g, LLVMValueRef v, LLVMValueRef base, LLVMValueRef idx) {
  LLVMValueRef s = LLVMBuildStore(g->B, v, gep(g, g->f32, base, idx));
  LLVMSetAlignment(s, 4);
}
static inline LLVMValueRef fma16(cg *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMValueRef args[3] = {a, b, c};
  return call_intr(g, "llvm.fma", &g->vf, 1, args, 3);
}
static inline LLVMValueRef vmax(cg *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->B, LLVMBuildFCmp(g->B, LLVMRealOGT, a, b, ""), a, b,
                         "");
}
static inline LLVMValueRef vld(cg *g, LLVMValueRef p) {
  return LLVMBuildLoad2(g->B, g->vf, p, "");
}

/* 2^x for x <= 0 (x may be -inf): Cody-Waite split x = n + f, |f| <= 1/2,
 * degree-6 polynomial for 2^f, 2^n added to the exponent bits; x < -125
 * gives 0, x NaN gives NaN (a NaN score, or s - m with s = m = +inf, makes
 * its row NaN: IEEE propagation, docs/language.md). */
static inline LLVMValueRef exp2v(cg *g, LLVMValueRef x) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef xc = vmax(g, x, vsplat(g, -127.0));
  LLVMValueRef n = call_intr(g, "llvm.rint", &g->vf, 1, &xc, 1);
  LLVMValueRef f = LLVMBuildFSub(B, xc, n, "");
  static const double c[7] = {1.0,
                              0.6931471805599453,
                              0.2402265069591007,
                              0.05550410866482158,
                              0.009618129107628477,
                              0.0013333558146428443,
                              0.00015403530393381606};
  LLVMValueRef p = vsplat(g, c[6]);
  for (int k = 5; k >= 0; k--) p = fma16(g, p, f, vsplat(g, c[k]));
  LLVMValueRef ni = LLVMBuildFPToSI(B, n, g->vi32, "");
  LLVMValueRef sh[16];
  for (int k = 0; k < 16; k++) sh[k] = LLVMConstInt(g->i32, 23, 0);
  LLVMValueRef bits = LLVMBuildAdd(B, LLVMBuildBitCast(B, p, g->vi32, ""),
                                   LLVMBuildShl(B, ni, LLVMConstVector(sh, 16), ""),
                                   "");
  LLVMValueRef r = LLVMBuildBitCast(B, bits, g->vf, "");
  /* + (x - x): 0 for finite x, NaN for NaN (the clamp above dropped it) */
  r = LLVMBuildFAdd(B, r, LLVMBuildFSub(B, x, x, ""), "");
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, vsplat(g, -125.0), ""),
                         LLVMConstNull(g->vf), r, "");
}

/* acc[x] = 0 allocas of <16 x float> */
static inline void vzero(cg *g, LLVMValueRef *a, int n, double v) {
  for (int x = 0; x < n; x++) LLVMBuildStore(g->B, vsplat(g, v), a[x]);
}

/* A new module named name in ctx for target t, with g's types and builder
 * (kinds.c); g zeroed first.  Disposing: LLVMDisposeBuilder(g->B). */
void cg_begin_module(cg *g, LLVMContextRef ctx, const char *name,
                     const cg_target *t);

/* How the D / 16 dimension vectors of a row split into chunks of at most 4
 * vectors for the P.V-style accumulations (chunk widths into w, at most
 * CG_MAX_CHUNKS of them; returns how many): 4s, with a 5 or 6 left over
 * taken as 3s, so every chunk keeps 4 (or 8) rows of accumulators in
 * registers.  The forward tile and the backward tiles share it (kinds.c). */
#define CG_MAX_CHUNKS 16
int cg_dim_chunks(int64_t D, int *w);

/* The kernel-kind generators, one file each (rows of cg_kinds). */
void cg_gen_fwd_tile(cg *g); /* codegen_fwd_tile.c */
void cg_gen_decode_tile(cg *g); /* codegen_decode.c */
void cg_gen_bwd_dq(cg *g);   /* codegen_bwd_tile.c */
void cg_gen_bwd_dkdv(cg *g); /* codegen_bwd_tile.c */
/* The score tile of g->p (with score E), spat_stile; only when
 * cg_score_supported(g->p). */
void cg_gen_score_tile(cg *g);
void cg_gen_score_bwd(cg *g); /* spat_sbwd_dq, spat_sbwd_dkdv */
bool cg_score_supported(const ir_program *p); /* codegen_score.c */

#endif
