/* codegen.h: pattern IR and kernel kinds -> LLVM modules (cg_).  Used by
 * the JIT (jit.c), the shared tile kernels (tile_cache.c) and the AOT
 * emitter (aot.c); the generators are one file each:
 *
 *   codegen_mask.c      the pattern: spat_mask_* / spat_tkinfo_* (cg_build)
 *   codegen_fwd_tile.c  kernel kind "fwd": spat_tile, the forward attention
 *                       tile (f32); depends only on D
 *   codegen_decode.c    kernel kind "decode": spat_dtile, the decode tile
 *                       (unpadded rows of several heads; kr_dtile_fn)
 *   kinds.c             the table of kernel kinds (cg_kinds) and
 *                       cg_build_kernel, a module holding one kind's function
 *
 * The functions' ABI is runtime/kernel_rt.h's (pinned by kabi.h):
 *
 *   int32_t spat_mask_0(const kr_env *e, int64_t i, int64_t j0, int64_t n,
 *                       int64_t lq, int64_t lk, uint64_t *out);
 *       bit t of *out = M(e->h, i, j0 + t) for t < n (1 <= n <= 64);
 *       returns 0, or a 1-based index into the error table on a run-time
 *       error (overflow, division by zero, input index out of range,
 *       negative primitive argument).
 *   int32_t spat_mask_<t+1>(same)   the same for P of top-k node t (top-k
 *       nodes numbered in post-order) at that node's granularity.
 *   int32_t spat_tkinfo_<t>(const kr_env *e, int64_t out[4])
 *       {k, granularity g, Lq and Lk at g} of top-k node t.
 *   void spat_tile(const float *qt, const float *k, int64_t sk,
 *                  const float *v, int64_t sv, int64_t ncols,
 *                  const uint64_t *maskt, float *acc, float *m, float *l,
 *                  float c, float *st);
 *       one online-softmax step of a 64-row query tile against ncols
 *       (1..64) keys, see kr_tile_fn; maskt NULL: every key allowed.
 *   int32_t spat_errat(const kr_env *e, int64_t i, int64_t j,
 *                      int64_t whole, int64_t detail[2])
 *       the first run-time error of the whole pattern at (e->h, i, j) in
 *       the contract's order (kr_errat_fn), values for the message in detail.
 *   [n x ptr] spat_errors          the messages, "file:line:col: error: what",
 *       bytes \1 and \2 standing for spat_errat's detail values.
 *
 * Top-k selections are made by the driver (double-precision scores) and read
 * by the mask code through kr_env.topk; so are the key sets of random(r, s)
 * with r > KR_RANDOM_INLINE, through kr_env.random_row (smaller r are drawn
 * in the mask code, at most KR_RANDOM_INLINE hashes a call).
 */
#ifndef SPAT_CODEGEN_H
#define SPAT_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

typedef struct LLVMOpaqueContext *LLVMContextRef;
typedef struct LLVMOpaqueModule *LLVMModuleRef;

typedef struct cg_target {
  const char *triple;      /* NULL: module left without one */
  const char *datalayout;  /* NULL: none */
  const char *cpu;         /* "znver4"; NULL: no function attribute */
  const char *features;    /* "+avx512f,..."; NULL: none */
} cg_target;

/* --- kernel kinds (kinds.c) ---------------------------------------------
 * A kernel kind is pattern-independent code the driver calls: today the
 * forward tile.  Its identity (the key of the tile cache and of its disk
 * entries) is (kind, D, dtype, CPU). */
/* the element type of q, k, v, o; the values are rt_dtype's */
typedef enum cg_dtype { CG_F32 = 0, CG_BF16 = 1, CG_F16 = 2, CG_N_DTYPES } cg_dtype;
/* ORDER cg_kinds (kinds.c): one row per id */
typedef enum cg_kind_id {
  CG_KIND_FWD = 0,
  CG_KIND_DECODE, /* codegen_decode.c: spat_dtile (kr_dtile_fn) */
  CG_KIND_BWD_DQ,   /* backward: dq of a query tile (kr_bwd_fn) */
  CG_KIND_BWD_DKDV, /* backward: dk, dv of a key tile (kr_bwd_fn) */
  CG_N_KINDS
} cg_kind_id;

struct cg;
typedef struct cg_kind {
  cg_kind_id id;
  const char *name;            /* "fwd" */
  const char *symbol;          /* its function in a module: "spat_tile" */
  void (*gen)(struct cg *g);   /* builds it into g->M for g->D, g->dtype */
  const int64_t *dims;         /* supported head dimensions, ascending */
  int n_dims;
  unsigned dtypes;             /* bit 1u << t for each supported cg_dtype */
} cg_kind;

extern const cg_kind cg_kinds[CG_N_KINDS];
const char *cg_dtype_name(cg_dtype t);  /* "f32" */
bool cg_kind_supports(const cg_kind *k, int64_t D, cg_dtype t);
/* "head dimension D is not supported by the JIT (16, 32, ...)" into err. */
void cg_unsupported_d(const cg_kind *k, int64_t D, const char *who, char *err,
                      size_t errlen);
/* The forward tile's D (what every kernel of a pattern needs today). */
bool cg_supported_d(int64_t D);
/* Whether the forward tile of bf16 for target t multiplies by vdpbf16ps
 * (avx512bf16); else it widens to float (codegen_fwd_tile.c). */
bool cg_has_bf16_dot(const cg_target *t);

/* A module holding kind k's function for (D, t) and nothing else; NULL with
 * a message in err. */
LLVMModuleRef cg_build_kernel(LLVMContextRef ctx, const cg_kind *k, int64_t D,
                              cg_dtype t, const cg_target *tgt, char *err,
                              size_t errlen);

/* The same function added to an existing module M (an AOT object's, which
 * then holds several kinds); 0, or -1 with a message in err. */
int cg_add_kernel(LLVMModuleRef M, const cg_kind *k, int64_t D, cg_dtype t,
                  const cg_target *tgt, char *err, size_t errlen);

/* The backward score tiles of p (with score E, checked by cg_build:
 * spat_sbwd_dq, spat_sbwd_dkdv, float32) added to M: AOT objects hold them,
 * the JIT builds them apart and compiles them on the first backward call
 * (a forward-only kernel does not pay for them).  0, or -1 (out of memory). */
int cg_add_score_bwd(LLVMModuleRef M, const ir_program *p, int64_t D,
                     const cg_target *tgt);

/* --- the pattern (codegen_mask.c) ------------------------------------------ */
typedef struct cg_info {
  int n_topk;              /* top-k nodes (spat_mask_1.. / spat_tkinfo_) */
  int n_errors;
  char **errors;           /* malloc'd copies of spat_errors */
} cg_info;

/* The pattern's mask and top-k functions and its error table; with tile
 * non-NULL also that kind's function for (D, f32) (a self-contained AOT
 * object; dt: its dtype), else no tile code (the JIT links the shared one).  NULL with a
 * message in err on failure (unsupported D: the message says so). */
LLVMModuleRef cg_build(LLVMContextRef ctx, const ir_program *p, int64_t D,
                       const cg_kind *tile, cg_dtype dt, const cg_target *t,
                       cg_info *info, char *err, size_t errlen);
void cg_info_free(cg_info *info);

/* The work of compiling p, counted (tests assert it stays linear): LLVM
 * instructions of the unoptimised mask code (cg_build without a tile),
 * the largest function's, and the number of those functions.  0, or -1
 * with a message in err (e.g. over the compile budget). */
typedef struct cg_stats {
  long insts, max_fn_insts, fns;
} cg_stats;
int cg_count(const ir_program *p, cg_stats *out, char *err, size_t errlen);

#endif
