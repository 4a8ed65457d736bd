/* frontend.c: files -> checked module -> ir_program (frontend.h).
 *
 * In: a path or a string.  Out: an fe_module (sema.h) holding every file the
 * main one imports, each parsed once (imports are resolved relative to the
 * importing file and identified by real path, so a diamond loads a file once
 * and a cycle is reported with its chain), then checked by sema.  The
 * pipeline: read -> lex/parse (grammar/) -> sema_check_module -> on request
 * sema_instantiate.
 */
#include "frontend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spat_limits.h"
#include "parser.h"
#include "regfile.h"
#define YYSTYPE SPAT_YYSTYPE /* the lexer header names bison's types unprefixed */
#define YYLTYPE SPAT_YYLTYPE
#include "lexer.h"
#include "sema.h"

#define FE_MAX_FILE SPAT_MAX_FILE_BYTES  /* offsets are int */
#define FE_MAX_IMPORT_DEPTH SPAT_MAX_IMPORT_DEPTH

typedef struct loader {
  fe_module *m;
  int stack[FE_MAX_IMPORT_DEPTH];  /* files being loaded, outermost first */
  src_span via[FE_MAX_IMPORT_DEPTH];  /* the import in stack[k] being followed */
  int depth;
} loader;

/* The whole file, or NULL with the reason in *why.  Only a regular file is
 * read (regfile.h): a FIFO or device would block or never end. */
static char *read_file(const char *path, size_t *len, const char **why) {
  FILE *f = regfile_fopen(path, why);
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      if (cap >= (size_t)FE_MAX_FILE) {
        free(buf);
        fclose(f);
        *why = "file too large";
        return NULL;
      }
      cap *= 2;
      char *b = realloc(buf, cap);
      if (!b) break;
      buf = b;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) {
        *why = strerror(errno ? errno : EIO);
        free(buf);
        fclose(f);
        return NULL;
      }
      fclose(f);
      *len = n;
      return buf;
    }
  }
  free(buf);
  fclose(f);
  *why = strerror(ENOMEM);
  return NULL;
}

static int parse_into(fe_module *m, int fi, const char *text, size_t len) {
  fe_file *F = &m->files[fi];
  ast_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.arena = m->arena;
  ctx.diag = m->diag;
  ctx.src = F->src;
  yyscan_t sc;
  if (spat_yylex_init_extra(&ctx, &sc)) {
    diag_error(m->diag, SPAN_NONE, "out of memory");
    return 1;
  }
  YY_BUFFER_STATE buf = spat_yy_scan_bytes(text, (int)len, sc);
  int rc = buf ? spat_yyparse(sc, &ctx) : 2;
  spat_yylex_destroy(sc);
  if (!buf) diag_error(m->diag, SPAN_NONE, "out of memory");
  F = &m->files[fi];
  F->decls = (ast_decl **)ctx.decls.v;
  F->n_decls = ctx.decls.n;
  return ctx.n_errors + (rc != 0 && ctx.n_errors == 0 && ctx.fatal);
}

static int add_file(fe_module *m, const char *path, const char *key) {
  if (m->n_files == m->cap_files) {
    int cap = m->cap_files ? 2 * m->cap_files : 8;
    fe_file *v = arena_alloc(m->arena, sizeof *v * (size_t)cap);
    if (!v) return -1;
    if (m->n_files) memcpy(v, m->files, sizeof *v * (size_t)m->n_files);
    m->files = v;
    m->cap_files = cap;
  }
  fe_file *F = &m->files[m->n_files];
  memset(F, 0, sizeof *F);
  F->path = arena_strdup(m->arena, path);
  F->key = arena_strdup(m->arena, key);
  F->src = -1;
  return m->n_files++;
}

/* "dir/of/importer" + "/" + rel, unless rel is absolute or the importer has
 * no directory part. */
static char *join(arena *a, const char *importer, const char *rel) {
  const char *slash = importer ? strrchr(importer, '/') : NULL;
  if (rel[0] == '/' || !slash) return arena_strdup(a, rel);
  return arena_printf(a, "%.*s/%s", (int)(slash - importer), importer, rel);
}

static int load(loader *L, const char *path, const char *text, size_t len,
                src_span import_sp);

static int load_imports(loader *L, int fi) {
  fe_module *m = L->m;
  int errors = 0;
  fe_file *F = &m->files[fi];
  int n_imp = 0;
  for (int k = 0; k < F->n_decls; k++) n_imp += F->decls[k]->kind == AST_D_IMPORT;
  if (!n_imp) return 0;
  int *imports = arena_alloc(m->arena, sizeof(int) * (size_t)n_imp);
  if (!imports) return 1;
  int n = 0;
  for (int k = 0; k < m->files[fi].n_decls; k++) {
    ast_decl *d = m->files[fi].decls[k];
    if (d->kind != AST_D_IMPORT) continue;
    if (!d->name[0]) {
      diag_error(m->diag, d->name_span, "empty import path");
      errors++;
      continue;
    }
    char *p = join(m->arena, m->files[fi].path, d->name);
    if (!p) return errors + 1;
    L->via[L->depth - 1] = d->name_span;
    int got = load(L, p, NULL, 0, d->name_span);
    if (got < 0) {
      errors++;
      continue;
    }
    bool dup = false;
    for (int q = 0; q < n; q++) dup |= imports[q] == got;
    if (!dup) imports[n++] = got;
  }
  m->files[fi].imports = imports;
  m->files[fi].n_imports = n;
  return errors;
}

/* Loads (or finds) one file and, recursively, its imports.  Returns its index,
 * or -1 when it could not be read or had errors (reported). */
static int load(loader *L, const char *path, const char *text, size_t len,
                src_span import_sp) {
  fe_module *m = L->m;
  char *owned = NULL;
  char real[PATH_MAX];
  const char *key = path;
  if (!text && realpath(path, real)) key = real;
  for (int k = 0; k < L->depth; k++) {
    int s = L->stack[k];
    if (strcmp(m->files[s].key, key)) continue;
    size_t cap = 64;
    for (int q = k; q < L->depth; q++) cap += strlen(m->files[L->stack[q]].path) + 4;
    char *chain = arena_alloc(m->arena, cap + strlen(path));
    if (chain) {
      chain[0] = 0;
      for (int q = k; q < L->depth; q++) {
        strcat(chain, m->files[L->stack[q]].path);
        strcat(chain, " -> ");
      }
      strcat(chain, path);
    }
    diag_error(m->diag, import_sp, "import cycle: %s", chain ? chain : path);
    for (int q = k; q < L->depth - 1; q++)
      diag_note(m->diag, L->via[q], "'%s' imports '%s' here", m->files[L->stack[q]].path,
                m->files[L->stack[q + 1]].path);
    return -1;
  }
  for (int k = 0; k < m->n_files; k++)
    if (!strcmp(m->files[k].key, key)) return m->files[k].src >= 0 ? k : -1;
  if (L->depth == FE_MAX_IMPORT_DEPTH) {
    diag_error(m->diag, import_sp, "imports nested too deeply (more than %d files)",
               FE_MAX_IMPORT_DEPTH);
    return -1;
  }
  if (!text) {
    const char *why = "";
    owned = read_file(path, &len, &why);
    if (!owned) {
      diag_error(m->diag, import_sp, "cannot read '%s': %s", path, why);
      return -1;
    }
    if (memchr(owned, 0, len)) {
      /* NULs are reported by the lexer as bad characters; nothing special. */
    }
    text = owned;
  } else if (len > (size_t)FE_MAX_FILE) {
    diag_error(m->diag, import_sp, "'%s' is too large", path);
    return -1;
  }
  int fi = add_file(m, path, key);
  if (fi < 0) {
    free(owned);
    diag_error(m->diag, import_sp, "out of memory");
    return -1;
  }
  m->files[fi].src = diag_add_source(m->diag, path, text, len);
  if (m->files[fi].src < 0) {
    free(owned);
    diag_error(m->diag, import_sp, "out of memory");
    return -1;
  }
  /* Parse from the diag's copy (NUL-terminated, lives as long as d). */
  const char *stored = diag_source_text(m->diag, m->files[fi].src);
  free(owned);
  int errors = parse_into(m, fi, stored, len);
  L->stack[L->depth] = fi;
  L->via[L->depth] = SPAN_NONE;
  L->depth++;
  errors += load_imports(L, fi);
  L->depth--;
  return errors ? -1 : fi;
}

static const char *signature(fe_module *m, ast_decl *d) {
  size_t cap = 64 + strlen(d->name);
  for (int q = 0; q < d->n_params; q++) {
    ast_param *p = d->params[q];
    cap += strlen(p->name) + 32;
    if (p->deflt) cap += (size_t)(p->deflt->span.end - p->deflt->span.begin);
    if (p->kind == AST_PARAM_INPUT && p->is_array)
      cap += (size_t)(p->type_span.end - p->type_span.begin);
  }
  char *s = arena_alloc(m->arena, cap);
  if (!s) return d->name;
  const char *text = diag_source_text(m->diag, d->name_span.src);
  size_t n = (size_t)snprintf(s, cap, "%s(", d->name);
  for (int q = 0; q < d->n_params; q++) {
    ast_param *p = d->params[q];
    const char *sep = q ? ", " : "";
    if (p->kind == AST_PARAM_INPUT) { /* the type as written (one line) */
      n += (size_t)snprintf(s + n, cap - n, "%sinput %s: ", sep, p->name);
      for (int k = p->type_span.begin; text && k < p->type_span.end && n + 2 < cap; k++)
        if (text[k] != '\n' && text[k] != '\r' && text[k] != '\t') s[n++] = text[k];
      s[n] = 0;
      continue;
    }
    n += (size_t)snprintf(s + n, cap - n, "%s%s%s", sep,
                          p->kind == AST_PARAM_RUNTIME ? "runtime " : "", p->name);
    if (p->deflt && text) {
      n += (size_t)snprintf(s + n, cap - n, " = ");
      /* the default as written, on one line, without comments */
      bool space = false;
      for (int k = p->deflt->span.begin; k < p->deflt->span.end && n + 2 < cap; k++) {
        char c = text[k];
        if (c == '#') {
          while (k + 1 < p->deflt->span.end && text[k + 1] != '\n') k++;
          space = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
          space = true;
        } else {
          if (space) s[n++] = ' ';
          space = false;
          s[n++] = c;
        }
      }
      s[n] = 0;
    }
  }
  snprintf(s + n, cap - n, ")");
  return s;
}

static fe_module *load_module(diag *d, arena *a, const char *name,
                              const char *text, size_t len) {
  fe_module *m = arena_alloc(a, sizeof *m);
  if (!m) {
    diag_error(d, SPAN_NONE, "out of memory");
    return NULL;
  }
  m->arena = a;
  m->diag = d;
  loader L = {.m = m};
  int before = diag_n_errors(d);
  int fi = load(&L, name, text, len, SPAN_NONE);
  if (fi < 0 || diag_n_errors(d) > before) return NULL;
  if (sema_check_module(m) > 0) return NULL;
  fe_file *F = &m->files[0];
  for (int k = 0; k < F->n_decls; k++) m->n_patterns += F->decls[k]->kind == AST_D_PATTERN;
  m->patterns = arena_alloc(a, sizeof(ast_decl *) * (size_t)(m->n_patterns + 1));
  m->signatures = arena_alloc(a, sizeof(char *) * (size_t)(m->n_patterns + 1));
  if (!m->patterns || !m->signatures) {
    diag_error(d, SPAN_NONE, "out of memory");
    return NULL;
  }
  int n = 0;
  for (int k = 0; k < F->n_decls; k++)
    if (F->decls[k]->kind == AST_D_PATTERN) {
      m->signatures[n] = signature(m, F->decls[k]);
      F->decls[k]->pattern_index = n;
      m->patterns[n++] = F->decls[k];
    }
  return m;
}

fe_module *fe_load_file(diag *d, arena *a, const char *path) {
  return load_module(d, a, path, NULL, 0);
}

fe_module *fe_load_string(diag *d, arena *a, const char *name, const char *text) {
  if (!text) text = "";
  return load_module(d, a, name ? name : "<string>", text, strlen(text));
}

int fe_n_patterns(const fe_module *m) { return m ? m->n_patterns : 0; }

const char *fe_pattern_name(const fe_module *m, int k) {
  return m && k >= 0 && k < m->n_patterns ? m->patterns[k]->name : NULL;
}

int fe_pattern_find(const fe_module *m, const char *name) {
  if (!m || !name || m->n_files == 0) return -1;
  /* the main file's declarations are hashed by sema (first of each name) */
  ast_decl *d = m->files[0].indexed ? strmap_get(&m->files[0].names, name) : NULL;
  if (d && d->kind == AST_D_PATTERN) {
    int k = d->pattern_index;
    return k >= 0 && k < m->n_patterns && m->patterns[k] == d ? k : -1;
  }
  if (!m->files[0].indexed)
    for (int k = 0; k < m->n_patterns; k++)
      if (!strcmp(m->patterns[k]->name, name)) return k;
  return -1;
}

const char *fe_pattern_signature(const fe_module *m, int k) {
  return m && k >= 0 && k < m->n_patterns ? m->signatures[k] : NULL;
}

const char *fe_pattern_param(const fe_module *m, int k, int q,
                             bool *has_default) {
  if (!m || k < 0 || k >= m->n_patterns || q < 0) return NULL;
  const ast_decl *d = m->patterns[k];
  for (int x = 0; x < d->n_params; x++) {
    const ast_param *p = d->params[x];
    if (p->kind != AST_PARAM_CT || q--) continue;
    if (has_default) *has_default = p->deflt != NULL;
    return p->name;
  }
  return NULL;
}

/* The main file's names first, then what it imports (hashed, as every
 * name the file resolves). */
static ast_decl *find_pattern(fe_module *m, const char *name) {
  ast_decl *o = sema_lookup(m, 0, name);
  return o && o->kind == AST_D_PATTERN ? o : NULL;
}

const char *fe_find_pattern(fe_module *m, const char *name) {
  ast_decl *d = m && name ? find_pattern(m, name) : NULL;
  return d ? d->name : NULL;
}

static ir_program *instantiate(fe_module *m, const char *name, const fe_define *defs,
                               int n_defs);

ir_program *fe_instantiate(diag *d, fe_module *m, const char *name,
                           const fe_define *defs, int n_defs) {
  if (!m) return NULL;
  /* Spans index the sources of the diag the module was loaded with, so
   * errors are rendered there; a different d gets a copy of the text. */
  size_t before = strlen(diag_text(m->diag));
  ir_program *p = instantiate(m, name, defs, n_defs);
  if (!p && d && d != m->diag) {
    const char *t = diag_text(m->diag) + before;
    diag_error(d, SPAN_NONE, "%.*s", (int)(strlen(t) && t[strlen(t) - 1] == '\n' ? strlen(t) - 1 : strlen(t)), t);
  }
  return p;
}

static ir_program *instantiate(fe_module *m, const char *name, const fe_define *defs,
                               int n_defs) {
  ast_decl *pat = NULL;
  if (!name) {
    if (m->n_patterns == 0) {
      diag_error(m->diag, SPAN_NONE, "'%s' defines no pattern (only lets, imports or externs)",
                 m->files[0].path);
      return NULL;
    }
    pat = m->patterns[m->n_patterns - 1];
  } else {
    pat = find_pattern(m, name);
    if (!pat) {
      size_t cap = 32;
      for (int k = 0; k < m->n_patterns; k++) cap += strlen(m->patterns[k]->name) + 4;
      char *list = arena_alloc(m->arena, cap);
      if (list) {
        size_t n = 0;
        list[0] = 0;
        for (int k = 0; k < m->n_patterns; k++)
          n += (size_t)snprintf(list + n, cap - n, "%s%s", k ? ", " : "",
                                m->patterns[k]->name);
      }
      if (m->n_patterns)
        diag_error(m->diag, SPAN_NONE, "no pattern '%s' in '%s'; it defines: %s", name,
                   m->files[0].path, list ? list : "");
      else
        diag_error(m->diag, SPAN_NONE, "no pattern '%s': '%s' defines no pattern", name,
                   m->files[0].path);
      return NULL;
    }
  }
  return sema_instantiate(m, pat, defs, n_defs);
}

int fe_parse_define(const char *s, arena *a, fe_define *out) {
  if (!s || !out) return -1;
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) return -1;
  for (const char *p = s; p < eq; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(p > s && c >= '0' && c <= '9')) return -1;
  }
  const char *v = eq + 1;
  bool neg = false;
  if (*v == '+' || *v == '-') neg = *v++ == '-';
  if (!*v || *v == '_') return -1;
  uint64_t x = 0;
  bool prev_us = false;
  for (; *v; v++) {
    if (*v == '_') {
      if (prev_us) return -1;
      prev_us = true;
      continue;
    }
    if (*v < '0' || *v > '9') return -1;
    prev_us = false;
    uint64_t dgt = (uint64_t)(*v - '0');
    if (x > (UINT64_MAX - dgt) / 10) return -1;
    x = x * 10 + dgt;
    if (x > (uint64_t)INT64_MAX + 1) return -1;
  }
  if (prev_us) return -1;
  if (!neg && x > (uint64_t)INT64_MAX) return -1;
  char *name = a ? arena_strndup(a, s, (size_t)(eq - s)) : NULL;
  if (!name) return -1;
  out->name = name;
  out->value = neg ? (int64_t)(0 - x) : (int64_t)x;
  return 0;
}
