/* sema.h: the checked module shared by frontend.c (loading files) and sema.c
 * (names, types, folding, instantiation).  The fe_module of frontend.h is
 * defined here. */
#ifndef SPAT_SEMA_H
#define SPAT_SEMA_H

#include <stdbool.h>

#include "ast.h"
#include "frontend.h"
#include "strmap.h"

typedef struct fe_file {
  const char *path;        /* as the user (or the importing file) named it */
  const char *key;         /* identity: the real path when there is one */
  int src;                 /* diag source id */
  ast_decl **decls;        /* in source order, imports included */
  int n_decls;
  int *imports;            /* indices of imported files */
  int n_imports;
  int mark;                /* lookup walk generation */
  strmap names;            /* name -> its first non-import declaration */
  bool indexed;            /* names built */
} fe_file;

struct fe_module {
  arena *arena;
  diag *diag;
  fe_file *files;          /* files[0] is the main file */
  int n_files, cap_files;
  int gen;                 /* lookup walk generation counter */
  ast_decl **patterns;     /* patterns of the main file */
  int n_patterns;
  const char **signatures; /* fe_pattern_signature, built at load */
  unsigned memo_gen;       /* sema: instantiation generations (memo keys) */
};

/* Declaration named `name` visible in file f (its own, then what it
 * imports, transitively); NULL if none. */
ast_decl *sema_lookup(fe_module *m, int f, const char *name);

/* True if `name` is a keyword or a built-in (variables, primitives,
 * functions, type names); *what says which. */
bool sema_is_reserved(const char *name, const char **what);

/* Checks every declaration of every file (names, types, arity, where i/j and
 * inputs may appear), then evaluates every let and every pattern whose
 * parameters all have defaults, reporting constant errors.  Returns the
 * number of errors found. */
int sema_check_module(fe_module *m);

/* Instantiates pattern d of the module (see fe_instantiate). */
ir_program *sema_instantiate(fe_module *m, ast_decl *d, const fe_define *defs,
                             int n_defs);

#endif
