/* cache.h: the disk cache's entry files (kc_), shared by the kernel cache
 * (cache.c, aot.h's aot_cache_*) and the tile kernels (tile_cache.c);
 * internal to compiler/backends/llvm/.
 *
 * An entry is one file DIR/HASH<ext> named by a hash of its key text, which
 * holds everything the object depends on; a file that is short, damaged or
 * holds another key is never used (and is rewritten by the next store).
 */
#ifndef SPAT_LLVM_CACHE_H
#define SPAT_LLVM_CACHE_H

#include <stdio.h>

typedef struct LLVMOpaqueMemoryBuffer *LLVMMemoryBufferRef;

#define KC_KERNEL_EXT ".spk" /* a pattern's kernel (aot_cache_load) */
#define KC_TILE_EXT ".spt"   /* a kernel kind's function (tile_cache.c) */

/* The first lines of every key: spatc, AOT ABI and LLVM versions, the host
 * CPU and its features, the pass pipeline.  0, or -1 on a write error. */
int kc_key_head(FILE *f);

/* The object of the entry for key, if one is intact: 0 with a copy in
 * *out (the caller disposes of it), else -1. */
int kc_read(const char *dir, const char *key, const char *ext,
            LLVMMemoryBufferRef *out);
/* Stores obj (not taken) under key, whole or not at all; 0 or -1. */
int kc_write(const char *dir, const char *key, const char *ext,
             LLVMMemoryBufferRef obj);

#endif
