/* aot.h: ahead-of-time kernels (aot_): a pattern compiled into an object
 * file and a C header, linked into a program with libspat.
 *
 * The object holds the generated code (codegen.h: the mask functions and
 * its own forward tile, internal symbols; aot.c), the tile plan as a
 * constant, a descriptor (aot_desc below) and two typed entries named after
 * the kernel (declared by the header, aot_header.c):
 *
 *   int NAME(const spat_tensors *t, int64_t s0, ..., const int32_t *a0, ...);
 *   int NAME_ex(char *err, size_t errlen, const spat_tensors *t, ...);
 *
 * (runtime scalars, then input arrays, in declaration order) which call
 * spat_aot_run (runtime/aot_run.c, exported by libspat) with the
 * descriptor.  Extern predicates are referenced by their C names: the
 * program defines bool name(int64_t, ...).  The header declares all of it.
 */
#ifndef SPAT_AOT_H
#define SPAT_AOT_H

#include <stddef.h>
#include <stdint.h>

#include "aot_abi.h"
#include "rt.h"
#include "ir.h"

/* What aot_emit writes to obj_path. */
typedef enum aot_emit_kind {
  AOT_EMIT_OBJ = 0, /* an ELF object (position-independent) */
  AOT_EMIT_ASM,     /* its assembly text */
  AOT_EMIT_LLVM,    /* the optimised LLVM module as .ll text */
  AOT_EMIT_SHARED,  /* an object for a shared library: also a destructor
                       (.fini_array) that frees the run-time kernel when the
                       library is unloaded (spat_aot_release) */
} aot_emit_kind;

typedef struct aot_opts {
  int64_t D;
  int layout;         /* spat_layout */
  int threads;        /* default worker threads (0: all cores) */
  const char *name;   /* C identifier of the entry; NULL: pattern name */
  const char *cpu;    /* NULL: this machine's CPU and features */
  const char *source; /* for the header's comment (may be NULL) */
  int emit;           /* aot_emit_kind */
  int dtype;          /* rt_dtype of q, k, v, o */
} aot_opts;

/* Writes the object file (or assembly or LLVM text, as o->emit says)
 * obj_path and the header hdr_path (NULL: none).  0 on success; -1 with a
 * message in err. */
int aot_emit(const ir_program *p, const aot_opts *o, const char *obj_path,
             const char *hdr_path, char *err, size_t errlen);
/* Only the header, for an object named obj_path. */
int aot_write_header(const ir_program *p, const aot_opts *o,
                     const char *obj_path, const char *hdr_path, char *err,
                     size_t errlen);

/* The disk kernel cache (cache.c): JIT kernels compiled once into objects
 * under $XDG_CACHE_HOME/spatc (else ~/.cache/spatc), named by a hash of the
 * canonical program text (ir_print_program: parameters included), the
 * options, the host CPU name and features, the LLVM, spatc and AOT ABI
 * versions and the pass pipeline.  One file per kernel (HASH.spk) holds a
 * header (lengths and a checksum), the full key and the object; a file that
 * is short, damaged or has another key is compiled again and rewritten,
 * never linked.  The objects hold the pattern's code only: the forward tile
 * is the process's shared kernel for D (tile_cache.h), itself kept beside
 * them (HASH.spt).  A loaded object is linked in memory by an LLJIT, with
 * spat_aot_run, the tile and the extern predicates (externs[k] for the
 * program's extern k) defined as absolute symbols. */
typedef struct aot_loaded aot_loaded;

/* The cache directory into buf (created if missing); -1 with err if there
 * is none usable. */
int aot_cache_dir(char *buf, size_t n, char *err, size_t errlen);
/* The kernel's descriptor in *desc (pass it to spat_aot_run); *hit: 1 when
 * the object came from the cache, 0 when it was compiled now (and stored,
 * unless the directory cannot be written: then only linked).
 * NULL with a message in err on failure. */
aot_loaded *aot_cache_load(const ir_program *p, const aot_opts *o,
                           const char *dir, void *const *externs,
                           const void **desc, int *hit, char *err,
                           size_t errlen);
/* Also frees the run-time kernel of its descriptor.  NULL is fine. */
void aot_cache_free(aot_loaded *l);
const void *aot_loaded_desc(const aot_loaded *l);

/* One file of the cache directory, for aot_cache_list. */
typedef struct aot_cache_entry {
  const char *file;  /* its name in the directory */
  size_t bytes;      /* file size */
  int valid;         /* header, length and checksum hold */
  const char *key;   /* valid: the key text (pattern, options, CPU, ...) */
  size_t obj_bytes;  /* valid: the object's size */
  char problem[256]; /* not valid: why */
} aot_cache_entry;
typedef void (*aot_cache_fn)(void *user, const aot_cache_entry *e);

/* Calls fn for every kernel entry file in dir (not the tile kernels); the
 * number of entries, or -1 with err. */
int aot_cache_list(const char *dir, aot_cache_fn fn, void *user, char *err,
                   size_t errlen);
/* Removes every entry, tile kernel and leftover temporary file in dir; how
 * many kernel entries (the ones aot_cache_list lists), or -1 with err. */
int aot_cache_clear(const char *dir, char *err, size_t errlen);

/* A valid C identifier that is not a C keyword. */
int aot_is_identifier(const char *s);

#endif
