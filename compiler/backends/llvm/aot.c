/* aot.c: the AOT emitter: ir_program -> object file (aot_emit), and the
 * objects of the disk cache (aot_emit_object, aot_emit.h).
 *
 * In: a checked program and the compile options (aot.h).  Out: NAME.o with
 * the kernel's code and its typed entries (the header: aot_header.c).
 *
 *   an_build         the tile plan, emitted as a constant array
 *   cg_build         the mask functions and (AOT) the forward tile, made
 *                    internal and renamed "NAME.<fn>" so that several
 *                    kernels link into one program
 *   descriptor       an aot_desc constant pointing at all of it, plus a
 *                    writable state slot (the run-time kernel)
 *   entries          NAME(t, scalars..., inputs...) and NAME_ex(err, errlen,
 *                    t, ...) store their arguments in arrays and call
 *                    spat_aot_run(&desc, ...) in libspat; NAME_backward(t,
 *                    g, ...) and NAME_backward_ex the same with
 *                    spat_aot_backward (the backward tiles are in the
 *                    object)
 *   lp_optimize      the one pipeline (llvm_pipeline.h), then machine code
 *
 * An object for the disk cache leaves the tile out: its descriptor points
 * at an external "spat_tile" that cache.c resolves to the process's shared
 * tile kernel (tile_cache.c).  A user's object is self-contained.
 */
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "aot_emit.h"
#include "analyze.h"
#include "codegen.h"
#include "kabi.h"
#include "llvm_pipeline.h"

/* build_glue writes the descriptor's fields by position: ORDER aot_desc. */
#define W(f, n) _Static_assert(offsetof(aot_desc, f) == 8 * (n), "aot_desc." #f)
W(abi, 0); W(D, 1); W(layout, 2); W(threads, 3); W(n_runtime, 4);
W(n_inputs, 5); W(n_externs, 6); W(n_topk, 7); W(n_errors, 8); W(plan, 9);
W(mask, 10); W(tkinfo, 11); W(tile, 12); W(errors, 13); W(input_names, 14);
W(externs, 15); W(state, 16); W(name, 17); W(errat, 18); W(bwd_dq, 19);
W(bwd_dkdv, 20); W(dtype, 21); W(stile, 22); W(sbwd_dq_s, 23);
W(sbwd_dkdv_s, 24); W(serrat, 25); W(inlen, 26); W(float_inputs, 27);
_Static_assert(sizeof(aot_desc) == 8 * 28, "aot_desc size");
#undef W

typedef struct emit {
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTypeRef i32, i64, ptr;
  const char *name; /* the entry's C name */
  bool shared_tile; /* the tile is external (disk cache objects) */
} emit;

static LLVMValueRef const_string(emit *e, const char *s, const char *what) {
  LLVMValueRef v =
      LLVMConstStringInContext(e->C, s, (unsigned)strlen(s), 0 /* NUL */);
  char name[256];
  snprintf(name, sizeof name, "%s.%s", e->name, what);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(v), name);
  LLVMSetInitializer(g, v);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddr(g, 1);
  return g;
}

static LLVMValueRef const_global(emit *e, LLVMValueRef init, const char *what) {
  char name[256];
  snprintf(name, sizeof name, "%s.%s", e->name, what);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMInternalLinkage);
  return g;
}

static LLVMValueRef ptr_array(emit *e, LLVMValueRef *v, int n,
                              const char *what) {
  LLVMValueRef init = LLVMConstArray2(e->ptr, v, (uint64_t)n);
  return const_global(e, init, what);
}

/* Every definition of the generated module becomes internal, and every
 * function "NAME.<old name>". */
static void internalize(emit *e) {
  char name[512];
  for (LLVMValueRef f = LLVMGetFirstFunction(e->M); f != NULL;
       f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    size_t len;
    const char *old = LLVMGetValueName2(f, &len);
    snprintf(name, sizeof name, "%s.%.*s", e->name, (int)len, old);
    LLVMSetValueName2(f, name, strlen(name));
    LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  for (LLVMValueRef g = LLVMGetFirstGlobal(e->M); g != NULL;
       g = LLVMGetNextGlobal(g)) {
    if (LLVMIsDeclaration(g)) continue;
    if (LLVMGetLinkage(g) != LLVMPrivateLinkage)
      LLVMSetLinkage(g, LLVMInternalLinkage);
  }
}

static LLVMValueRef generated_fn(emit *e, const char *fmt, int k) {
  char base[64], name[512];
  snprintf(base, sizeof base, fmt, k);
  snprintf(name, sizeof name, "%s.%s", e->name, base);
  return LLVMGetNamedFunction(e->M, name);
}

/* An external C function (an extern predicate) by name. */
static LLVMValueRef extern_fn(emit *e, const ir_extern *x) {
  LLVMValueRef f = LLVMGetNamedFunction(e->M, x->name);
  if (f != NULL) return f;
  LLVMTypeRef args[16];
  int n = x->n_args > 16 ? 16 : x->n_args;
  for (int k = 0; k < n; k++) args[k] = e->i64;
  LLVMTypeRef ft =
      LLVMFunctionType(LLVMInt1TypeInContext(e->C), args, (unsigned)n, 0);
  return LLVMAddFunction(e->M, x->name, ft);
}

/* int NAME[_backward][_ex]([char *err, size_t errlen,] const spat_tensors *t,
 *               [const spat_grads *g,] int64_t s..., const int32_t *a...)
 * calling run: spat_aot_run(desc, t, S, A, err, errlen), or (backward)
 * spat_aot_backward(desc, t, g, S, A, err, errlen). */
static void build_entry(emit *e, const ir_program *p, LLVMValueRef desc,
                        LLVMValueRef run, LLVMTypeRef run_t, bool with_err,
                        bool backward) {
  int ns = p->n_runtime, na = p->n_inputs, lead = (with_err ? 3 : 1) + backward;
  int n = lead + ns + na, t_at = with_err ? 2 : 0;
  LLVMTypeRef *params = calloc((size_t)n, sizeof *params);
  if (params == NULL) return;
  if (with_err) {
    params[0] = e->ptr;
    params[1] = e->i64;
  }
  params[t_at] = e->ptr;
  if (backward) params[t_at + 1] = e->ptr;
  for (int k = 0; k < ns; k++) params[lead + k] = e->i64;
  for (int k = 0; k < na; k++) params[lead + ns + k] = e->ptr;
  LLVMTypeRef ft = LLVMFunctionType(e->i32, params, (unsigned)n, 0);
  free(params);
  char name[256];
  snprintf(name, sizeof name, "%s%s%s", e->name, backward ? "_backward" : "",
           with_err ? "_ex" : "");
  LLVMValueRef f = LLVMAddFunction(e->M, name, ft);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(e->C, nounwind, 0));
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(e->C, f, "entry");
  LLVMPositionBuilderAtEnd(e->B, bb);
  LLVMTypeRef st = LLVMArrayType2(e->i64, (uint64_t)(ns > 0 ? ns : 1));
  LLVMTypeRef at = LLVMArrayType2(e->ptr, (uint64_t)(na > 0 ? na : 1));
  LLVMValueRef S = LLVMBuildAlloca(e->B, st, "scalars");
  LLVMValueRef A = LLVMBuildAlloca(e->B, at, "inputs");
  for (int k = 0; k < ns; k++) {
    LLVMValueRef idx = LLVMConstInt(e->i64, (unsigned long long)k, 0);
    LLVMValueRef slot = LLVMBuildGEP2(e->B, e->i64, S, &idx, 1, "");
    LLVMBuildStore(e->B, LLVMGetParam(f, (unsigned)(lead + k)), slot);
  }
  for (int k = 0; k < na; k++) {
    LLVMValueRef idx = LLVMConstInt(e->i64, (unsigned long long)k, 0);
    LLVMValueRef slot = LLVMBuildGEP2(e->B, e->ptr, A, &idx, 1, "");
    LLVMBuildStore(e->B, LLVMGetParam(f, (unsigned)(lead + ns + k)), slot);
  }
  LLVMValueRef args[7], *a = args;
  *a++ = desc;
  *a++ = LLVMGetParam(f, (unsigned)t_at);
  if (backward) *a++ = LLVMGetParam(f, (unsigned)t_at + 1);
  *a++ = S;
  *a++ = A;
  *a++ = with_err ? LLVMGetParam(f, 0) : LLVMConstPointerNull(e->ptr);
  *a++ = with_err ? LLVMGetParam(f, 1) : LLVMConstInt(e->i64, 0, 0);
  LLVMValueRef r =
      LLVMBuildCall2(e->B, run_t, run, args, (unsigned)(a - args), "");
  LLVMBuildRet(e->B, r);
}

/* NAME.fini, run when a shared library holding the object is unloaded:
 * spat_aot_release(&NAME_desc). */
static void build_fini(emit *e, LLVMValueRef desc) {
  LLVMTypeRef void_t = LLVMVoidTypeInContext(e->C);
  LLVMTypeRef rel_t = LLVMFunctionType(void_t, &e->ptr, 1, 0);
  LLVMValueRef rel = LLVMGetNamedFunction(e->M, "spat_aot_release");
  if (rel == NULL) rel = LLVMAddFunction(e->M, "spat_aot_release", rel_t);
  char name[256];
  snprintf(name, sizeof name, "%s.fini", e->name);
  LLVMValueRef f =
      LLVMAddFunction(e->M, name, LLVMFunctionType(void_t, NULL, 0, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(e->B, LLVMAppendBasicBlockInContext(e->C, f, ""));
  LLVMBuildCall2(e->B, rel_t, rel, &desc, 1, "");
  LLVMBuildRetVoid(e->B);
  LLVMTypeRef fields[3] = {e->i32, e->ptr, e->ptr};
  LLVMTypeRef entry_t = LLVMStructTypeInContext(e->C, fields, 3, 0);
  LLVMValueRef vals[3] = {LLVMConstInt(e->i32, 65535, 0), f,
                          LLVMConstPointerNull(e->ptr)};
  LLVMValueRef entry = LLVMConstNamedStruct(entry_t, vals, 3);
  LLVMValueRef arr = LLVMConstArray2(entry_t, &entry, 1);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(arr), "llvm.global_dtors");
  LLVMSetInitializer(g, arr);
  LLVMSetLinkage(g, LLVMAppendingLinkage);
}

/* The forward tile: generated here, or (shared_tile) an external
 * declaration of the kind's symbol. */
static LLVMValueRef tile_fn(emit *e) {
  const char *sym = cg_kinds[CG_KIND_FWD].symbol;
  char name[512];
  snprintf(name, sizeof name, "%s.%s", e->name, sym);
  if (!e->shared_tile) return LLVMGetNamedFunction(e->M, name);
  LLVMValueRef f = LLVMGetNamedFunction(e->M, sym);
  if (f != NULL) return f;
  /* only its address is taken: the type is not used */
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(e->C), NULL, 0, 0);
  return LLVMAddFunction(e->M, sym, ft);
}

/* A backward tile of a self-contained object, or NULL (disk cache
 * objects: the loader supplies the process's). */
static LLVMValueRef bwd_fn(emit *e, cg_kind_id id) {
  if (e->shared_tile) return LLVMConstPointerNull(e->ptr);
  char name[512];
  snprintf(name, sizeof name, "%s.%s", e->name, cg_kinds[id].symbol);
  LLVMValueRef f = LLVMGetNamedFunction(e->M, name);
  return f ? f : LLVMConstPointerNull(e->ptr);
}

/* A score function of the module (kabi.h), or NULL without a score. */
static LLVMValueRef score_fn(emit *e, const ir_program *p, const char *sym) {
  LLVMValueRef f = p->score ? generated_fn(e, sym, 0) : NULL;
  return f ? f : LLVMConstPointerNull(e->ptr);
}

/* bit x: input x is float (at most 64 inputs: build_module checks) */
static unsigned long long float_bits(const ir_program *p) {
  unsigned long long b = 0;
  for (int x = 0; x < p->n_inputs && x < 64; x++)
    if (p->inputs[x].is_float) b |= 1ull << x;
  return b;
}

/* The backward tiles added to a self-contained object's module. */
static int add_bwd_tiles(emit *e, int64_t D, const cg_target *t, char *err,
                         size_t errlen) {
  const cg_kind_id ids[2] = {CG_KIND_BWD_DQ, CG_KIND_BWD_DKDV};
  for (int x = 0; x < 2; x++)
    if (cg_add_kernel(e->M, &cg_kinds[ids[x]], D, CG_F32, t, err, errlen))
      return -1;
  return 0;
}

/* The generated functions the descriptor points at, all present. */
static int has_generated(emit *e, int nt, char *err, size_t errlen) {
  for (int t = 0; t <= nt; t++)
    if (generated_fn(e, KABI_MASK_FMT, t) == NULL)
      return lp_fail(err, errlen, "internal error: no spat_mask_%d", t);
  for (int t = 0; t < nt; t++)
    if (generated_fn(e, KABI_TKINFO_FMT, t) == NULL)
      return lp_fail(err, errlen, "internal error: no spat_tkinfo_%d", t);
  if (tile_fn(e) == NULL)
    return lp_fail(err, errlen, "internal error: no spat_tile");
  if (generated_fn(e, KABI_ERRAT, 0) == NULL)
    return lp_fail(err, errlen, "internal error: no spat_errat");
  return 0;
}

/* The descriptor (aot_desc) and both entries. */
static int build_glue(emit *e, const ir_program *p, const aot_opts *o,
                      const int64_t *plan, const cg_info *info, char *err,
                      size_t errlen) {
  if (has_generated(e, info->n_topk, err, errlen) != 0) return -1;
  /* plan words */
  int64_t nw = plan_words(plan);
  LLVMValueRef *words = calloc((size_t)nw + 1, sizeof *words);
  if (words == NULL) return lp_fail(err, errlen, "out of memory");
  for (int64_t w = 0; w < nw; w++)
    words[w] = LLVMConstInt(e->i64, (unsigned long long)plan[w], 1);
  LLVMValueRef plan_g =
      const_global(e, LLVMConstArray2(e->i64, words, (uint64_t)nw), "plan");
  free(words);

  int nt = info->n_topk,
      n_ptrs = nt + 1 + p->n_inputs + p->n_externs + info->n_errors + 1;
  LLVMValueRef *v = calloc((size_t)n_ptrs, sizeof *v);
  if (v == NULL) return lp_fail(err, errlen, "out of memory");
  for (int t = 0; t <= nt; t++) v[t] = generated_fn(e, KABI_MASK_FMT, t);
  LLVMValueRef mask_g = ptr_array(e, v, nt + 1, "mask");
  for (int t = 0; t < nt; t++) v[t] = generated_fn(e, KABI_TKINFO_FMT, t);
  LLVMValueRef tk_g = ptr_array(e, v, nt, "tkinfo");
  for (int k = 0; k < info->n_errors; k++)
    v[k] = const_string(e, info->errors[k], "errmsg");
  LLVMValueRef err_g = ptr_array(e, v, info->n_errors, "errors");
  for (int k = 0; k < p->n_inputs; k++)
    v[k] = const_string(e, p->inputs[k].name, "input");
  LLVMValueRef in_g = ptr_array(e, v, p->n_inputs, "inputs");
  for (int k = 0; k < p->n_externs; k++) v[k] = extern_fn(e, &p->externs[k]);
  LLVMValueRef ext_g = ptr_array(e, v, p->n_externs, "externs");
  free(v);

  char state_name[256];
  snprintf(state_name, sizeof state_name, "%s.state", e->name);
  LLVMValueRef state = LLVMAddGlobal(e->M, e->ptr, state_name);
  LLVMSetInitializer(state, LLVMConstPointerNull(e->ptr));
  LLVMSetLinkage(state, LLVMInternalLinkage);

  LLVMValueRef fields[] = {
      LLVMConstInt(e->i64, AOT_ABI, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->D, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->layout, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->threads, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_runtime, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_inputs, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_externs, 0),
      LLVMConstInt(e->i64, (unsigned long long)nt, 0),
      LLVMConstInt(e->i64, (unsigned long long)info->n_errors, 0),
      plan_g,
      mask_g,
      tk_g,
      tile_fn(e),
      err_g,
      in_g,
      ext_g,
      state,
      const_string(e, e->name, "name"),
      generated_fn(e, KABI_ERRAT, 0),
      bwd_fn(e, CG_KIND_BWD_DQ),
      bwd_fn(e, CG_KIND_BWD_DKDV),
      LLVMConstInt(e->i64, (unsigned long long)o->dtype, 0),
      score_fn(e, p, KABI_STILE),
      score_fn(e, p, KABI_SBWD_DQ),
      score_fn(e, p, KABI_SBWD_DKDV),
      score_fn(e, p, KABI_SERRAT),
      score_fn(e, p, KABI_INLEN),
      LLVMConstInt(e->i64, float_bits(p), 0),
  };
  LLVMValueRef desc = LLVMConstStructInContext(
      e->C, fields, sizeof fields / sizeof fields[0], 0);
  LLVMValueRef desc_g = const_global(e, desc, "desc");
  char desc_name[256]; /* NAME_desc, public: the disk cache looks it up */
  snprintf(desc_name, sizeof desc_name, "%s_desc", e->name);
  LLVMSetValueName2(desc_g, desc_name, strlen(desc_name));
  LLVMSetLinkage(desc_g, LLVMExternalLinkage);

  LLVMTypeRef run_params[6] = {e->ptr, e->ptr, e->ptr, e->ptr, e->ptr, e->i64};
  LLVMTypeRef run_t = LLVMFunctionType(e->i32, run_params, 6, 0);
  LLVMValueRef run = LLVMGetNamedFunction(e->M, "spat_aot_run");
  if (run == NULL) run = LLVMAddFunction(e->M, "spat_aot_run", run_t);
  build_entry(e, p, desc_g, run, run_t, false, false);
  build_entry(e, p, desc_g, run, run_t, true, false);
  if (!e->shared_tile) { /* the disk cache's objects run backward in C */
    LLVMTypeRef bp[7] = {e->ptr, e->ptr, e->ptr, e->ptr, e->ptr, e->ptr, e->i64};
    LLVMTypeRef bwd_t = LLVMFunctionType(e->i32, bp, 7, 0);
    LLVMValueRef bwd = LLVMGetNamedFunction(e->M, "spat_aot_backward");
    if (bwd == NULL) bwd = LLVMAddFunction(e->M, "spat_aot_backward", bwd_t);
    build_entry(e, p, desc_g, bwd, bwd_t, false, true);
    build_entry(e, p, desc_g, bwd, bwd_t, true, true);
  }
  if (o->emit == AOT_EMIT_SHARED) build_fini(e, desc_g);
  return 0;
}

/* Checks, then builds the optimised module of the kernel; its target machine
 * in *tm_out. */
static int build_module(const ir_program *p, const aot_opts *o, emit *e,
                        LLVMTargetMachineRef *tm_out, char *err,
                        size_t errlen) {
  const char *name = e->name;
  if (!aot_is_identifier(name))
    return lp_fail(err, errlen,
                  "'%s' is not usable as a C function name (give --name)",
                  name);
  for (int k = 0; k < p->n_externs; k++)
    if (!aot_is_identifier(p->externs[k].name))
      return lp_fail(err, errlen, "extern '%s' is not a C identifier",
                    p->externs[k].name);
  if (p->n_runtime + p->n_inputs > 64)
    return lp_fail(err, errlen, "more than 64 runtime scalars and inputs");
  const cg_kind *fwd = &cg_kinds[CG_KIND_FWD];
  if (!cg_kind_supports(fwd, o->D, (cg_dtype)o->dtype)) {
    cg_unsupported_d(fwd, o->D, "the code generator", err, errlen);
    return -1;
  }
  if (p->score && o->dtype != CG_F32) { /* the score tiles read float32 */
    snprintf(err, errlen, "patterns with 'with score' compile in float32 only (the "
             "kernel's dtype is %s); the interpreter runs them in any dtype",
             cg_dtype_name((cg_dtype)o->dtype));
    return -1;
  }
  int64_t *plan = an_build(p, err, errlen);
  if (plan == NULL) return -1;
  LLVMTargetMachineRef tm = lp_target_machine(o->cpu, err, errlen);
  if (tm == NULL) {
    free(plan);
    return -1;
  }
  lp_target tgt;
  lp_target_of(tm, &tgt);
  cg_info info;
  e->M = cg_build(e->C, p, o->D, e->shared_tile ? NULL : fwd,
                  (cg_dtype)o->dtype, &tgt.cg, &info, err, errlen);
  int rc = e->M != NULL ? 0 : -1;
  if (rc == 0) {
    e->B = LLVMCreateBuilderInContext(e->C);
    e->i32 = LLVMInt32TypeInContext(e->C);
    e->i64 = LLVMInt64TypeInContext(e->C);
    e->ptr = LLVMPointerTypeInContext(e->C, 0);
    if (!e->shared_tile) rc = add_bwd_tiles(e, o->D, &tgt.cg, err, errlen);
    if (rc == 0 && p->score && cg_add_score_bwd(e->M, p, o->D, &tgt.cg) != 0)
      rc = lp_fail(err, errlen, "out of memory in code generation");
    if (rc == 0) internalize(e);
    if (rc == 0) rc = build_glue(e, p, o, plan, &info, err, errlen);
    LLVMDisposeBuilder(e->B);
    cg_info_free(&info);
  }
  free(plan); /* build_glue copied it into the module */
  if (rc == 0) rc = lp_optimize(e->M, tm, err, errlen);
  lp_target_free(&tgt);
  if (rc == 0)
    *tm_out = tm;
  else
    LLVMDisposeTargetMachine(tm);
  return rc;
}

/* The kernel as o->emit asks, into the file path, or (an object only) into
 * *mem when path is NULL. */
static int emit_kernel(const ir_program *p, const aot_opts *o,
                       bool shared_tile, const char *path,
                       LLVMMemoryBufferRef *mem, char *err, size_t errlen) {
  emit E = {0}, *e = &E;
  e->C = LLVMContextCreate();
  e->name = o->name ? o->name : p->name;
  e->shared_tile = shared_tile;
  LLVMTargetMachineRef tm = NULL;
  int rc = build_module(p, o, e, &tm, err, errlen);
  if (rc == 0) {
    char *msg = NULL;
    if (path == NULL) {
      rc = lp_emit_object(tm, e->M, mem, err, errlen);
    } else if (o->emit == AOT_EMIT_LLVM) {
      if (LLVMPrintModuleToFile(e->M, path, &msg))
        rc = lp_fail(err, errlen, "%s: %s", path, msg ? msg : "cannot write");
    } else {
      LLVMCodeGenFileType ft =
          o->emit == AOT_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
      if (LLVMTargetMachineEmitToFile(tm, e->M, path, ft, &msg))
        rc = lp_fail(err, errlen, "%s: %s", path, msg ? msg : "cannot emit");
    }
    LLVMDisposeMessage(msg);
  }
  if (tm != NULL) LLVMDisposeTargetMachine(tm);
  if (e->M != NULL) LLVMDisposeModule(e->M);
  LLVMContextDispose(e->C);
  return rc;
}

int aot_emit(const ir_program *p, const aot_opts *o, const char *obj_path,
             const char *hdr_path, char *err, size_t errlen) {
  int rc = emit_kernel(p, o, false, obj_path, NULL, err, errlen);
  if (rc == 0 && hdr_path != NULL)
    rc = aot_write_header(p, o, obj_path, hdr_path, err, errlen);
  return rc;
}

int aot_emit_object(const ir_program *p, const aot_opts *o, bool shared_tile,
                    LLVMMemoryBufferRef *out, char *err, size_t errlen) {
  return emit_kernel(p, o, shared_tile, NULL, out, err, errlen);
}

