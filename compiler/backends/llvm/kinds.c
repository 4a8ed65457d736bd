/* kinds.c: the table of kernel kinds (cg_kinds) and the modules of one
 * kind's function (cg_build_kernel).
 *
 * A kernel kind is code that does not depend on the pattern, only on its
 * descriptor (kind, D, dtype, CPU): the JIT compiles it once per descriptor
 * and process (tile_cache.c, also kept in the disk cache), AOT objects carry
 * their own copy.  Today: the forward attention tile and the two backward
 * tiles (codegen_bwd_tile.c, driven by runtime/kernel_bwd.c).
 *
 * Adding a kind -- a backward pass, a decode kernel, a bf16 tile -- is one
 * new generator file (codegen_<kind>.c, a function void cg_gen_<kind>(cg *)
 * declared in codegen_impl.h that builds kind->symbol into g->M for g->D and
 * g->dtype, reading nothing of the pattern) plus one row below (and its id
 * in cg_kind_id, codegen.h).  The table is the capability list: callers ask
 * cg_kind_supports instead of trying, and test_jit compiles every (kind, D,
 * dtype) it lists.  A kind with a new call signature also needs its type in
 * runtime/kernel_rt.h, pinned in kabi.h, and a driver that calls it; a new
 * dtype of an existing kind (bf16 tile) needs neither.
 */
#include "codegen_impl.h"

#include <stdio.h>

#include "rt.h"

static const int64_t fwd_dims[] = {16, 32, 64, 80, 96, 128, 256};

const cg_kind cg_kinds[CG_N_KINDS] = {
    /* ORDER cg_kind_id */
    [CG_KIND_FWD] = {CG_KIND_FWD, "fwd", "spat_tile", cg_gen_fwd_tile,
                     fwd_dims, (int)(sizeof fwd_dims / sizeof fwd_dims[0]),
                     1u << CG_F32 | 1u << CG_BF16 | 1u << CG_F16},
    [CG_KIND_DECODE] = {CG_KIND_DECODE, "decode", "spat_dtile",
                        cg_gen_decode_tile, fwd_dims,
                        (int)(sizeof fwd_dims / sizeof fwd_dims[0]),
                        1u << CG_F32},
    [CG_KIND_BWD_DQ] = {CG_KIND_BWD_DQ, "bwd_dq", "spat_bwd_dq", cg_gen_bwd_dq,
                        fwd_dims,
                        (int)(sizeof fwd_dims / sizeof fwd_dims[0]),
                        1u << CG_F32},
    [CG_KIND_BWD_DKDV] = {CG_KIND_BWD_DKDV, "bwd_dkdv", "spat_bwd_dkdv",
                          cg_gen_bwd_dkdv, fwd_dims,
                          (int)(sizeof fwd_dims / sizeof fwd_dims[0]),
                          1u << CG_F32},
};

const char *cg_dtype_name(cg_dtype t) {
  static const char *const names[CG_N_DTYPES] = {
      [CG_F32] = "f32", [CG_BF16] = "bf16", [CG_F16] = "f16"};
  return (int)t >= 0 && t < CG_N_DTYPES ? names[t] : "?";
}

bool cg_kind_supports(const cg_kind *k, int64_t D, cg_dtype t) {
  if (!k || (int)t < 0 || t >= CG_N_DTYPES || !(k->dtypes & (1u << t)))
    return false;
  for (int x = 0; x < k->n_dims; x++)
    if (k->dims[x] == D) return true;
  return false;
}

bool cg_supported_d(int64_t D) {
  return cg_kind_supports(&cg_kinds[CG_KIND_FWD], D, CG_F32);
}

void cg_unsupported_d(const cg_kind *k, int64_t D, const char *who, char *err,
                      size_t errlen) {
  char list[256] = "";
  size_t used = 0;
  for (int x = 0; x < k->n_dims && used < sizeof list; x++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%lld",
                             x ? ", " : "", (long long)k->dims[x]);
  rt_errf(err, errlen, RT_EUNSUPPORTED,
          "head dimension %lld is not supported by %s (%s)", (long long)D, who,
          list);
}

/* g's builder and types in ctx for target t, g zeroed first (no module). */
static void cg_begin(cg *g, LLVMContextRef ctx, const cg_target *t) {
  memset(g, 0, sizeof *g);
  g->C = ctx;
  g->tgt = t;
  g->B = LLVMCreateBuilderInContext(ctx);
  g->i1 = LLVMInt1TypeInContext(ctx);
  g->i8 = LLVMInt8TypeInContext(ctx);
  g->i32 = LLVMInt32TypeInContext(ctx);
  g->i64 = LLVMInt64TypeInContext(ctx);
  g->f32 = LLVMFloatTypeInContext(ctx);
  g->ptr = LLVMPointerTypeInContext(ctx, 0);
  g->voidt = LLVMVoidTypeInContext(ctx);
  g->vf = LLVMVectorType(g->f32, 16);
  g->vi8 = LLVMVectorType(g->i8, 16);
  g->vi32 = LLVMVectorType(g->i32, 16);
  g->vi1 = LLVMVectorType(g->i1, 16);
}

void cg_begin_module(cg *g, LLVMContextRef ctx, const char *name,
                     const cg_target *t) {
  cg_begin(g, ctx, t);
  g->M = LLVMModuleCreateWithNameInContext(name, ctx);
  if (t && t->triple) LLVMSetTarget(g->M, t->triple);
  if (t && t->datalayout) LLVMSetDataLayout(g->M, t->datalayout);
}

/* Whether kind k has (D, t), with the message when not. */
static bool check_kind(const cg_kind *k, int64_t D, cg_dtype t, char *err,
                       size_t errlen) {
  if (!k) {
    rt_errf(err, errlen, RT_EINTERNAL, "internal error: no kernel kind");
    return false;
  }
  if (cg_kind_supports(k, D, t)) return true;
  if ((int)t >= 0 && t < CG_N_DTYPES && (k->dtypes & (1u << t)))
    cg_unsupported_d(k, D, "the JIT", err, errlen);
  else
    rt_errf(err, errlen, RT_EUNSUPPORTED, "kernel kind %s has no %s version",
            k->name, cg_dtype_name(t));
  return false;
}

int cg_add_kernel(LLVMModuleRef M, const cg_kind *k, int64_t D, cg_dtype t,
                  const cg_target *tgt, char *err, size_t errlen) {
  if (!check_kind(k, D, t, err, errlen)) return -1;
  cg G, *g = &G;
  cg_begin(g, LLVMGetModuleContext(M), tgt);
  g->M = M;
  g->D = D;
  g->dtype = t;
  k->gen(g);
  LLVMDisposeBuilder(g->B);
  return 0;
}

int cg_add_score_bwd(LLVMModuleRef M, const ir_program *p, int64_t D,
                     const cg_target *tgt) {
  cg G, *g = &G;
  cg_begin(g, LLVMGetModuleContext(M), tgt);
  g->M = M;
  g->p = p;
  g->D = D;
  g->dtype = CG_F32;
  cg_gen_score_bwd(g);
  LLVMDisposeBuilder(g->B);
  return g->oom ? -1 : 0;
}

LLVMModuleRef cg_build_kernel(LLVMContextRef ctx, const cg_kind *k, int64_t D,
                              cg_dtype t, const cg_target *tgt, char *err,
                              size_t errlen) {
  if (!check_kind(k, D, t, err, errlen)) return NULL;
  char name[64];
  snprintf(name, sizeof name, "%s.d%lld.%s", k->name, (long long)D,
           cg_dtype_name(t));
  cg G, *g = &G;
  cg_begin_module(g, ctx, name, tgt);
  g->D = D;
  g->dtype = t;
  k->gen(g);
  LLVMDisposeBuilder(g->B);
  return g->M;
}

int cg_dim_chunks(int64_t D, int *w) {
  int nvd = (int)(D / 16), n = 0;
  for (int d0 = 0; d0 < nvd && n < CG_MAX_CHUNKS; n++) {
    int cw = nvd - d0 >= 4 ? 4 : nvd - d0;
    if (nvd - d0 == 5 || nvd - d0 == 6) cw = 3;
    w[n] = cw;
    d0 += cw;
  }
  return n;
}
