/* kabi.h: the ABI between generated kernel code and the C driver
 * (runtime/kernel_rt.h), as the generators and the loaders (jit.c, aot.c,
 * cache.c, tile_cache.c) see it.  Generated code reads kr_env and kr_topk
 * by 8-byte word index; every index is pinned to the struct layout here by
 * _Static_assert, so a change to kernel_rt.h that the generated code would
 * misread does not compile.  The function types are pinned the same way:
 * the generators build exactly these signatures (ORDER: their parameter
 * lists follow the C types below).
 */
#ifndef SPAT_LLVM_KABI_H
#define SPAT_LLVM_KABI_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_rt.h"

/* kr_env, word by word */
enum {
  KABI_ENV_H = 0,       /* int64 query head */
  KABI_ENV_NHEADS = 1,  /* int64 H */
  KABI_ENV_LQ = 2,      /* int64 Lq (token level) */
  KABI_ENV_LK = 3,      /* int64 Lk (token level) */
  KABI_ENV_RUNTIME = 4, /* const int64_t * */
  KABI_ENV_INPUTS = 5,  /* const int32_t *const * */
  KABI_ENV_EXTERNS = 6, /* void *const * */
  KABI_ENV_TOPK = 7,    /* kr_topk * */
  KABI_ENV_RANDOM_ROW = 8,   /* kr_random_fn */
  KABI_ENV_RANDOM_CACHE = 9, /* void * (the driver's; not read by code) */
  /* route(C): */
  KABI_ENV_ROUTE_Q = 10,     /* const int32_t * ids of the query rows */
  KABI_ENV_ROUTE_K = 11,     /* const int32_t * ids of the keys */
  KABI_ENV_B = 12,      /* int64 batch index b */
  KABI_ENV_NBATCH = 13, /* int64 B */
  KABI_ENV_HKV = 14,    /* int64 Hkv */
  KABI_ENV_D = 15,      /* int64 D */
  KABI_ENV_SETBITS = 16, /* const kr_setbits * (2 per input), or NULL */
  KABI_ENV_WORDS = 17
};
_Static_assert(offsetof(kr_env, h) == 8 * KABI_ENV_H, "kr_env.h");
_Static_assert(offsetof(kr_env, H) == 8 * KABI_ENV_NHEADS, "kr_env.H");
_Static_assert(offsetof(kr_env, Lq) == 8 * KABI_ENV_LQ, "kr_env.Lq");
_Static_assert(offsetof(kr_env, Lk) == 8 * KABI_ENV_LK, "kr_env.Lk");
_Static_assert(offsetof(kr_env, runtime) == 8 * KABI_ENV_RUNTIME,
               "kr_env.runtime");
_Static_assert(offsetof(kr_env, inputs) == 8 * KABI_ENV_INPUTS,
               "kr_env.inputs");
_Static_assert(offsetof(kr_env, externs) == 8 * KABI_ENV_EXTERNS,
               "kr_env.externs");
_Static_assert(offsetof(kr_env, topk) == 8 * KABI_ENV_TOPK, "kr_env.topk");
_Static_assert(offsetof(kr_env, random_row) == 8 * KABI_ENV_RANDOM_ROW,
               "kr_env.random_row");
_Static_assert(offsetof(kr_env, random_cache) == 8 * KABI_ENV_RANDOM_CACHE,
               "kr_env.random_cache");
_Static_assert(offsetof(kr_env, route_q) == 8 * KABI_ENV_ROUTE_Q,
               "kr_env.route_q");
_Static_assert(offsetof(kr_env, route_k) == 8 * KABI_ENV_ROUTE_K,
               "kr_env.route_k");
_Static_assert(offsetof(kr_env, b) == 8 * KABI_ENV_B, "kr_env.b");
_Static_assert(offsetof(kr_env, B) == 8 * KABI_ENV_NBATCH, "kr_env.B");
_Static_assert(offsetof(kr_env, Hkv) == 8 * KABI_ENV_HKV, "kr_env.Hkv");
_Static_assert(offsetof(kr_env, D) == 8 * KABI_ENV_D, "kr_env.D");
_Static_assert(offsetof(kr_env, setbits) == 8 * KABI_ENV_SETBITS, "kr_env.setbits");
/* kr_setbits, word by word; env->setbits is an array of them */
enum {
  KABI_SB_BITS = 0, KABI_SB_WPR = 1, KABI_SB_NBITS = 2, KABI_SB_BASE = 3,
  KABI_SB_ROWS = 4, KABI_SB_WIDTH = 5, KABI_SB_WORDS = 6
};
_Static_assert(offsetof(kr_setbits, bits) == 8 * KABI_SB_BITS &&
               offsetof(kr_setbits, wpr) == 8 * KABI_SB_WPR &&
               offsetof(kr_setbits, nbits) == 8 * KABI_SB_NBITS &&
               offsetof(kr_setbits, base) == 8 * KABI_SB_BASE &&
               offsetof(kr_setbits, rows) == 8 * KABI_SB_ROWS &&
               offsetof(kr_setbits, width) == 8 * KABI_SB_WIDTH &&
               sizeof(kr_setbits) == 8 * KABI_SB_WORDS, "kr_setbits");
_Static_assert(sizeof(kr_env) == 8 * KABI_ENV_WORDS, "kr_env size");
_Static_assert(sizeof(void *) == 8 && sizeof(int64_t) == 8,
               "words are 8 bytes");

/* kr_topk, word by word; env->topk is an array of them */
enum {
  KABI_TOPK_SEL = 0,   /* int64_t * [row][k] */
  KABI_TOPK_CNT = 1,   /* int64_t * per row */
  KABI_TOPK_IBASE = 2, /* int64 */
  KABI_TOPK_K = 3,     /* int64 row stride of sel */
  KABI_TOPK_ERR = 4,   /* int64 */
  KABI_TOPK_WORDS = 5
};
_Static_assert(offsetof(kr_topk, sel) == 8 * KABI_TOPK_SEL, "kr_topk.sel");
_Static_assert(offsetof(kr_topk, cnt) == 8 * KABI_TOPK_CNT, "kr_topk.cnt");
_Static_assert(offsetof(kr_topk, ibase) == 8 * KABI_TOPK_IBASE,
               "kr_topk.ibase");
_Static_assert(offsetof(kr_topk, k) == 8 * KABI_TOPK_K, "kr_topk.k");
_Static_assert(offsetof(kr_topk, err) == 8 * KABI_TOPK_ERR, "kr_topk.err");
_Static_assert(sizeof(kr_topk) == 8 * KABI_TOPK_WORDS, "kr_topk size");

/* The driver's function the generated code calls (codegen_mask.c's
 * pat_random builds the call as (ptr, i64 x 6) -> ptr). */
_Static_assert(_Generic((kr_random_fn)0,
                        const uint64_t *(*)(const kr_env *, int64_t, int64_t,
                                            int64_t, int64_t, int64_t, int64_t): 1,
                        default: 0),
               "kr_random_fn: codegen_mask.c calls (ptr, i64 x 6) -> ptr");

/* The generated functions' types (the generators build these). */
_Static_assert(_Generic((kr_mask_fn)0,
                        int32_t(*)(const kr_env *, int64_t, int64_t, int64_t,
                                   int64_t, int64_t, uint64_t *): 1,
                        default: 0),
               "kr_mask_fn: codegen_mask.c builds (ptr, i64 x 5, ptr) -> i32");
_Static_assert(_Generic((kr_tkinfo_fn)0,
                        int32_t(*)(const kr_env *, int64_t *): 1,
                        default: 0),
               "kr_tkinfo_fn: codegen_mask.c builds (ptr, ptr) -> i32");
_Static_assert(_Generic((kr_errat_fn)0,
                        int32_t(*)(const kr_env *, int64_t, int64_t, int64_t,
                                   int64_t *): 1,
                        default: 0),
               "kr_errat_fn: codegen_mask.c builds (ptr, i64, i64, i64, ptr) "
               "-> i32");
_Static_assert(_Generic((kr_tile_fn)0,
                        void (*)(const void *, const void *, int64_t,
                                 const void *, int64_t, int64_t,
                                 const uint64_t *, float *, float *, float *,
                                 float, float *): 1,
                        default: 0),
               "kr_tile_fn: codegen_fwd_tile.c builds (ptr, ptr, i64, ptr, "
               "i64, i64, ptr, ptr, ptr, ptr, float, ptr) -> void");

_Static_assert(_Generic((kr_dtile_fn)0,
                        void (*)(const float *, int64_t, const float *,
                                 int64_t, const float *, int64_t, int64_t,
                                 const uint64_t *, float *, float *, float *,
                                 float, float *): 1,
                        default: 0),
               "kr_dtile_fn: codegen_decode.c builds (ptr, i64, ptr, i64, "
               "ptr, i64, i64, ptr, ptr, ptr, ptr, float, ptr) -> void");
_Static_assert(_Generic((kr_bwd_fn)0,
                        void (*)(const float *, const float *, const float *,
                                 const float *, const float *, const float *,
                                 int64_t, const float *, int64_t, int64_t,
                                 const uint64_t *, float *, float *, float *,
                                 float, float *): 1,
                        default: 0),
               "kr_bwd_fn: codegen_bwd_tile.c builds (ptr x 6, i64, ptr, "
               "i64, i64, ptr, ptr, ptr, ptr, float, ptr) -> void");
_Static_assert(_Generic((kr_stile_fn)0,
                        int32_t (*)(const kr_env *, int64_t, int64_t, const float *,
                                    const float *, int64_t, const float *, int64_t,
                                    int64_t, const uint64_t *, float *, float *,
                                    float *, float, float *): 1,
                        default: 0),
               "kr_stile_fn: codegen_fwd_tile.c builds (ptr, i64, i64, then "
               "kr_tile_fn's) -> i32");
_Static_assert(_Generic((kr_sbwd_fn)0,
                        int32_t (*)(const kr_env *, int64_t, int64_t, double *const *,
                                    const float *, const float *, const float *,
                                    const float *, const float *, const float *,
                                    int64_t, const float *, int64_t, int64_t,
                                    const uint64_t *, float *, float *, float *,
                                    float, float *): 1,
                        default: 0),
               "kr_sbwd_fn: codegen_bwd_tile.c builds (ptr, i64, i64, ptr, then "
               "kr_bwd_fn's) -> i32");
_Static_assert(_Generic((kr_serrat_fn)0,
                        int32_t (*)(const kr_env *, int64_t, int64_t, int64_t *): 1,
                        default: 0),
               "kr_serrat_fn: codegen_mask.c builds (ptr, i64, i64, ptr) -> i32");
_Static_assert(_Generic((kr_inlen_fn)0, int64_t (*)(const kr_env *, int64_t): 1,
                        default: 0),
               "kr_inlen_fn: codegen_score.c builds (ptr, i64) -> i64");

/* Symbol names in generated modules. */
#define KABI_STILE "spat_stile"          /* the score tile (with score E) */
#define KABI_SBWD_DQ "spat_sbwd_dq"      /* its backward tiles */
#define KABI_SBWD_DKDV "spat_sbwd_dkdv"
#define KABI_SERRAT "spat_serrat"        /* E's errors at a pair */
#define KABI_INLEN "spat_inlen"          /* float input sizes */
#define KABI_MASK_FMT "spat_mask_%d"     /* 0: the root; t + 1: top-k t */
#define KABI_TKINFO_FMT "spat_tkinfo_%d" /* top-k t */
#define KABI_ERRAT "spat_errat"          /* the pattern's error check */
#define KABI_ERRORS "spat_errors"        /* [n x ptr] messages */

#endif
