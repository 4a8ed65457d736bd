/* tile_cache.h: kernel-kind functions (the forward tile today) compiled
 * once per process and descriptor (tc_).
 *
 * A kernel kind does not depend on the pattern (codegen.h, kinds.c), so a
 * pattern's JIT compile builds only its mask code and takes the tile from
 * here.  Entries are keyed by (kind, D, dtype) for this host's CPU, made on
 * first use through the one pipeline (llvm_pipeline.h), linked by an LLJIT of
 * their own and kept until the process ends.  With a cache directory they
 * are also read from and written to the disk cache (DIR/HASH.spt, cache.h),
 * so a fresh process with a warm disk cache compiles no tile at all.
 * Thread-safe: several contexts in several threads may ask at once; a
 * descriptor is compiled once, the others wait for it.
 */
#ifndef SPAT_TILE_CACHE_H
#define SPAT_TILE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "codegen.h"
#include "rt.h"

/* The function of kind k for (D, t) in *fn (its C type is the kind's, e.g.
 * kr_tile_fn).  dir: the disk cache directory, or NULL for memory only.
 * RT_OK, or a status with a message in err (RT_EUNSUPPORTED: a D or dtype
 * the kind does not list, and the message says so). */
rt_status tc_get(const cg_kind *k, int64_t D, cg_dtype t, const char *dir,
                 void **fn, char *err, size_t errlen);

/* For the tests: how many functions this process has compiled, and how
 * many it has read from a disk cache. */
long tc_n_compiled(void);
long tc_n_loaded(void);
/* For the tests: the optimised LLVM IR of kind k for (D, t) exactly as
 * tc_get compiles it (malloc'd text; NULL with err). */
char *tc_kernel_ir(const cg_kind *k, int64_t D, cg_dtype t, char *err,
                   size_t errlen);
/* For the tests, with no other thread using the cache: forgets every entry
 * (their code stays mapped, so kernels holding them keep working), so that
 * the next tc_get reads the disk cache or compiles again. */
void tc_forget(void);
/* For the tests: kind k for (D, t) compiled for the named LLVM CPU (e.g.
 * "x86-64-v3": bf16 without avx512bf16) and linked, uncached; the code
 * stays until the process ends.  It must be able to run on this host. */
rt_status tc_compile_for_cpu(const cg_kind *k, int64_t D, cg_dtype t,
                             const char *cpu, void **fn, char *err,
                             size_t errlen);

#endif
