/* frontend.h: .pat text -> checked module -> ir_program.
 *
 * fe_load_* lexes, parses and checks a whole file (and its imports) with
 * every parameter at its default; errors go to the diag object (several per
 * run where recovery is sound).  fe_instantiate picks one pattern, binds
 * compile-time parameters (defaults, then -D overrides), folds constants and
 * inlines everything into an ir_program (ir.h) allocated in the module's arena.
 */
#ifndef SPAT_FRONTEND_H
#define SPAT_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "ir.h"

typedef struct fe_module fe_module;

typedef struct fe_define {
  const char *name;   /* a compile-time parameter of the chosen pattern */
  int64_t value;
} fe_define;

/* NULL when there were errors (see diag_n_errors / diag_text).
 * The module and everything instantiated from it live in arena a. */
fe_module *fe_load_file(diag *d, arena *a, const char *path);
fe_module *fe_load_string(diag *d, arena *a, const char *name,
                          const char *text);

int fe_n_patterns(const fe_module *m);            /* patterns of the main file */
const char *fe_pattern_name(const fe_module *m, int k);
/* The index k of the main file's pattern `name`, or -1 (hashed). */
int fe_pattern_find(const fe_module *m, const char *name);
/* A one-line signature, e.g. "longformer(w = 512, g = 1)"; for listings. */
const char *fe_pattern_signature(const fe_module *m, int k);

/* The q-th compile-time parameter (not runtime, not input) of pattern k of
 * the main file, and whether it has a default; NULL past the last. */
const char *fe_pattern_param(const fe_module *m, int k, int q,
                             bool *has_default);

/* The pattern called name that the main file sees: one of its own, else one
 * of an imported file (transitively); its name as stored in the module, or
 * NULL when there is none. */
const char *fe_find_pattern(fe_module *m, const char *name);

/* name NULL: the only or the last pattern of the main file.  Unknown name,
 * unknown define or a bad value: an error in d (with a location when there is
 * one) and NULL.  Also checks the folded program (negative sizes, overflow,
 * division by zero in constants). */
ir_program *fe_instantiate(diag *d, fe_module *m, const char *name,
                           const fe_define *defs, int n_defs);

/* Parses "name=value" (value: an integer literal, '_' allowed, optional
 * sign).  0 on success; -1 on a malformed string. */
int fe_parse_define(const char *s, arena *a, fe_define *out);

#endif
