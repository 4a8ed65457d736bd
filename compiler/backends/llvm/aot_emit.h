/* aot_emit.h: the emitter's object-in-memory entry, for the disk cache
 * (cache.c); internal to compiler/backends/llvm/. */
#ifndef SPAT_AOT_EMIT_H
#define SPAT_AOT_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "aot.h"

typedef struct LLVMOpaqueMemoryBuffer *LLVMMemoryBufferRef;

/* The kernel's object file in *out (the caller disposes of it), built as
 * aot_emit builds it.  shared_tile: without tile code, the descriptor
 * pointing at an external symbol cg_kinds[CG_KIND_FWD].symbol ("spat_tile")
 * that the linker of the object must define.  0, or -1 with a message. */
int aot_emit_object(const ir_program *p, const aot_opts *o, bool shared_tile,
                    LLVMMemoryBufferRef *out, char *err, size_t errlen);

#endif
