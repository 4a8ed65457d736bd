/* api_internal.h: what the files of the public API share (api.c, the core;
 * api_query.c, modules, pattern descriptions, masks and explanations;
 * api_aot.c, ahead-of-time objects and the disk cache): the objects behind
 * spat.h's opaque types and a few helpers of api.c.  Internal; the public
 * API is include/spat.h. */
#ifndef SPAT_API_INTERNAL_H
#define SPAT_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "spat.h"
#include "args.h"
#include "aot.h"
#include "arena.h"
#include "backend.h"
#include "diag.h"
#include "ffi_call.h"
#include "frontend.h"
#include "ir.h"
#include "live.h"
#include "pipeline.h"

#define ERR_LEN 1024

typedef struct fn_entry {
  char *name;
  void *fn; /* bool f(int64_t, ...) */
  int nargs;
} fn_entry;

/* Every object starts with its live_obj (live.h): entry points take a
 * reference with api_*_get (NULL: not a live object of that type) and drop
 * it with api_*_put.  Patterns, kernels and modules hold a reference on
 * their context. */
struct spat_ctx {
  live_obj live;
  pthread_mutex_t lock; /* guards every field below */
  char err[ERR_LEN];    /* the last failure's message */
  char *diags;          /* the last parse/compile's diagnostics (malloc) */
  spat_diag_fn diag_fn;
  void *diag_user;
  fn_entry *fns; /* registered extern predicates */
  int n_fns, cap_fns;
};

/* One text's module, shared by its spat_module, the patterns selected from
 * it and their kernels.  Instantiating writes the arena, the diag and the
 * module's marks, so it takes the lock. */
typedef struct source {
  atomic_int refs;      /* the module, each pattern, each kernel */
  pthread_mutex_t lock; /* guards the arena, the diag, the module and the
                           defs of every pattern of this source */
  arena *arena;         /* the module and every program instantiated */
  diag *diag;
  fe_module *module;
} source;

struct spat_pattern {
  live_obj live;
  spat_ctx *ctx; /* a reference */
  source *src;
  const char *name; /* the selected pattern (in src's arena) */
  int n_defs;
  fe_define *defs; /* one per parameter, its current value (malloc) */
};

struct spat_kernel {
  live_obj live;
  spat_ctx *ctx; /* a reference */
  source *src;
  const ir_program *prog;
  const backend *be;
  void *obj;          /* the backend's compiled kernel */
  int64_t D;
  spat_layout layout;
  int threads;
  void **externs; /* resolved extern predicates, one per ir extern */
  const char **input_names;
  args_shape shape;
  spat_arg_info *args;
  spat_signature sig;
  char *entry_type; /* sig.entry_type (malloc) */
  char *cache_problem; /* sig.cache_problem (malloc) */
  ffi_entry *entry; /* the typed entry */
};

/* ---- helpers of api.c ---------------------------------------------------- */

/* The message as the context's error (under its lock, as every failure of
 * the API); returns st.  A NULL context: only st. */
spat_status api_fail(spat_ctx *c, spat_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Keeps d's rendered diagnostics as the context's last ones and hands them
 * to its callback.  d is the caller's alone (a source no other object has
 * yet), or see api_lower. */
void api_keep_diags(spat_ctx *c, const diag *d);
/* The same, and SPAT_EPARSE with the first diagnostic line as the message
 * (what: "parsing", for when there is none). */
spat_status api_diag_error(spat_ctx *c, const diag *d, const char *what);

/* The pattern with its current parameters, lowered and checked as for a
 * compile (pl_lower, in its source's arena, under the source's lock); its
 * diagnostics kept as the context's.  SPAT_OK with *out, or a failure. */
spat_status api_lower(spat_pattern *p, const ir_program **out);

/* References for the duration of a call (live.h); NULL when the pointer is
 * not a live object of that type. */
spat_ctx *api_ctx_get(const spat_ctx *c);
void api_ctx_put(spat_ctx *c);
spat_pattern *api_pattern_get(const spat_pattern *p);
void api_pattern_put(spat_pattern *p);
spat_kernel *api_kernel_get(const spat_kernel *k);
void api_kernel_put(spat_kernel *k);

/* A new source (one reference), or NULL when out of memory. */
source *api_source_new(void);
/* Drops a reference; the last frees it.  NULL is fine. */
void api_source_release(source *s);
/* A pattern of s's module, instantiated with defs (n_defs of them) to learn
 * its parameters: want NULL is the only or last one.  Takes over the
 * caller's reference to s, also when it fails.  c: a reference the caller
 * holds (the pattern takes its own). */
spat_status api_make_pattern(spat_ctx *c, source *s, const char *want,
                             const fe_define *defs, int n_defs,
                             spat_pattern **out);

/* Language version 2 arguments: kinds' names for messages, the pointer a
 * value passes in the input table, an input's spat_arg_info. */
const char *api_kind_name(spat_kind kind);
const int32_t *api_value_array(const spat_value *v);
spat_arg_info api_input_info(const ir_program *p, int k);

#endif
