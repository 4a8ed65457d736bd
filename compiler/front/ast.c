/* ast.c: arena constructors for the syntax tree (ast.h), called only from the
 * grammar's actions and the lexer.  They record spans and depths, and report
 * the few errors that belong to the syntax itself (bad literals, characters,
 * nesting too deep). */
#include "ast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ast_op_text[AST_N_OPS] = {
#define X(name, text) text,
    AST_OPS(X)
#undef X
};

void ast_error(ast_ctx *c, src_span sp, const char *fmt, ...) {
  if (c->fatal) return;
  va_list ap;
  va_start(ap, fmt);
  diag_verror(c->diag, sp, fmt, ap);
  va_end(ap);
  if (++c->n_errors >= AST_MAX_ERRORS) {
    diag_error(c->diag, sp, "too many errors, stopping");
    c->fatal = true;
  }
}

const char *ast_span_text(ast_ctx *c, src_span sp) {
  const char *t = diag_source_text(c->diag, sp.src);
  if (!t || sp.end < sp.begin) return "";
  const char *s = arena_strndup(c->arena, t + sp.begin, (size_t)(sp.end - sp.begin));
  return s ? s : "";
}

static void *alloc(ast_ctx *c, size_t n) {
  void *p = arena_alloc(c->arena, n);
  if (!p && !c->oom) {
    c->oom = true;
    c->fatal = true;
    diag_error(c->diag, SPAN_NONE, "out of memory");
  }
  return p;
}

int64_t ast_int_literal(ast_ctx *c, const char *text, int len, src_span sp) {
  uint64_t v = 0;
  bool ok = true, big = false;
  for (int k = 0; k < len; k++) {
    char ch = text[k];
    if (ch == '_') {
      if (k == 0 || k == len - 1 || text[k - 1] == '_') ok = false;
      continue;
    }
    if (ch < '0' || ch > '9') {
      ok = false;
      break;
    }
    if (v > ((uint64_t)INT64_MAX - (uint64_t)(ch - '0')) / 10)
      big = true;
    else
      v = v * 10 + (uint64_t)(ch - '0');
  }
  if (!ok) {
    ast_error(c, sp, "invalid integer literal '%.*s'", len > 40 ? 40 : len, text);
    return 0;
  }
  if (big) {
    ast_error(c, sp, "integer literal out of range (the largest is %lld)",
              (long long)INT64_MAX);
    return 0;
  }
  return (int64_t)v;
}

const char *ast_ident(ast_ctx *c, const char *text, int len) {
  const char *s = arena_strndup(c->arena, text, (size_t)len);
  return s ? s : "";
}

const char *ast_string(ast_ctx *c, const char *text, int len) {
  return ast_ident(c, text + 1, len >= 2 ? len - 2 : 0);
}

void ast_bad_char(ast_ctx *c, const char *text, int len, src_span sp) {
  c->lex_error = true;
  unsigned char ch = (unsigned char)text[0];
  if (ch >= 0x80 && len > 1)
    ast_error(c, sp, "unexpected character '%.*s'", len, text);
  else if (ch < 0x20 || ch >= 0x7f)
    ast_error(c, sp, "unexpected character '\\x%02x'", ch);
  else
    ast_error(c, sp, "unexpected character '%c'", ch);
}

static int depth_of(const ast_node *n) { return n ? n->depth : 0; }

static ast_node *node(ast_ctx *c, ast_kind k, src_span sp, ast_node *a,
                      ast_node *b, ast_node *e) {
  if (c->fatal) return NULL;
  int d = depth_of(a);
  if (depth_of(b) > d) d = depth_of(b);
  if (depth_of(e) > d) d = depth_of(e);
  if (d + 1 > AST_MAX_DEPTH) {
    ast_error(c, sp, "expression nested too deeply (more than %d levels)",
              AST_MAX_DEPTH);
    c->fatal = true;
    return NULL;
  }
  ast_node *n = alloc(c, sizeof *n);
  if (!n) return NULL;
  n->kind = k;
  n->span = sp;
  n->name_span = sp;
  n->depth = d + 1;
  n->a = a, n->b = b, n->c = e;
  return n;
}

ast_node *ast_int(ast_ctx *c, int64_t v, src_span sp) {
  ast_node *n = node(c, AST_INT, sp, NULL, NULL, NULL);
  if (n) n->ival = v;
  return n;
}

ast_node *ast_name(ast_ctx *c, const char *name, src_span sp) {
  ast_node *n = node(c, AST_NAME, sp, NULL, NULL, NULL);
  if (n) n->name = name;
  return n;
}

ast_node *ast_unary(ast_ctx *c, ast_op op, ast_node *a, src_span sp) {
  if (!a) return NULL;
  ast_node *n = node(c, AST_UNARY, sp, a, NULL, NULL);
  if (n) n->op = op;
  return n;
}

ast_node *ast_binary(ast_ctx *c, ast_op op, ast_node *a, ast_node *b, src_span sp) {
  if (!a || !b) return NULL;
  ast_node *n = node(c, AST_BINARY, sp, a, b, NULL);
  if (n) n->op = op;
  return n;
}

ast_node *ast_cond(ast_ctx *c, ast_node *a, ast_node *b, ast_node *e, src_span sp) {
  if (!a || !b || !e) return NULL;
  return node(c, AST_COND, sp, a, b, e);
}

static ast_node *with_items(ast_ctx *c, ast_node *n, ast_list *l) {
  if (!n) return NULL;
  int d = n->depth - 1;
  if (l) {
    n->items = (ast_node **)l->v;
    n->n_items = l->n;
    for (int k = 0; k < l->n; k++) {
      if (!n->items[k]) return NULL;
      if (n->items[k]->depth > d) d = n->items[k]->depth;
    }
  }
  if (d + 1 > AST_MAX_DEPTH) {
    ast_error(c, n->span, "expression nested too deeply (more than %d levels)",
              AST_MAX_DEPTH);
    c->fatal = true;
    return NULL;
  }
  n->depth = d + 1;
  return n;
}

ast_node *ast_call(ast_ctx *c, const char *name, src_span name_sp,
                   ast_list *args, src_span sp) {
  ast_node *n = node(c, AST_CALL, sp, NULL, NULL, NULL);
  if (!n) return NULL;
  n->name = name;
  n->name_span = name_sp;
  return with_items(c, n, args);
}

ast_node *ast_arg(ast_ctx *c, const char *name, src_span name_sp, ast_node *v,
                  src_span sp) {
  if (!v) return NULL;
  ast_node *n = node(c, AST_ARG, sp, v, NULL, NULL);
  if (!n) return NULL;
  n->name = name;
  n->name_span = name_sp;
  return n;
}

ast_node *ast_index(ast_ctx *c, const char *name, src_span name_sp,
                    ast_list *idx, src_span sp) {
  if (!idx || idx->n < 1 || !idx->v[0]) return NULL;
  ast_node *n = node(c, AST_INDEX, sp, idx->v[0], NULL, NULL);
  if (!n) return NULL;
  n->name = name;
  n->name_span = name_sp;
  return with_items(c, n, idx);
}

double ast_float_literal(ast_ctx *c, const char *text, int len, src_span sp) {
  char buf[80];
  int n = 0;
  for (int k = 0; k < len && n < (int)sizeof buf - 1; k++)
    if (text[k] != '_') buf[n++] = text[k];
  buf[n] = 0;
  if (len >= (int)sizeof buf) {
    ast_error(c, sp, "float literal too long");
    return 0;
  }
  return strtod(buf, NULL); /* overflow gives inf, as in C */
}

ast_node *ast_float(ast_ctx *c, double v, src_span sp) {
  ast_node *n = node(c, AST_FLOAT, sp, NULL, NULL, NULL);
  if (n) n->dval = v;
  return n;
}

ast_node *ast_letin(ast_ctx *c, const char *name, src_span name_sp,
                    ast_list *params, ast_node *v, ast_node *body, src_span sp) {
  if (!v || !body) return NULL;
  ast_node *n = node(c, AST_LETIN, sp, v, body, NULL);
  if (!n) return NULL;
  n->name = name;
  n->name_span = name_sp;
  n->has_params = params != NULL;
  return with_items(c, n, params);
}

ast_node *ast_score(ast_ctx *c, ast_node *pat, ast_node *e, src_span sp) {
  if (!pat || !e) return NULL;
  return node(c, AST_SCORE, sp, pat, e, NULL);
}

ast_node *ast_range(ast_ctx *c, ast_node *a, ast_node *b, src_span sp) {
  if (!a || !b) return NULL;
  return node(c, AST_RANGE, sp, a, b, NULL);
}

ast_node *ast_set(ast_ctx *c, ast_list *items, src_span sp) {
  return with_items(c, node(c, AST_SET, sp, NULL, NULL, NULL), items);
}

ast_node *ast_blocks(ast_ctx *c, ast_node *b, ast_node *body, src_span sp) {
  if (!b || !body) return NULL;
  return node(c, AST_BLOCKS, sp, b, body, NULL);
}

ast_node *ast_paren(ast_ctx *c, ast_node *inner, src_span sp) {
  (void)c;
  (void)sp;
  if (inner) inner->parens = true;
  return inner;
}

void ast_decl_done(ast_ctx *c) {
  c->lex_error = false;
  c->nesting = 0;
}

ast_list *ast_list_new(ast_ctx *c) { return alloc(c, sizeof(ast_list)); }

ast_list *ast_list_add(ast_ctx *c, ast_list *l, void *item) {
  if (!l) return NULL;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 4;
    void **v = alloc(c, sizeof(void *) * (size_t)cap);
    if (!v) return NULL;
    if (l->n) memcpy(v, l->v, sizeof(void *) * (size_t)l->n);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = item;
  return l;
}

ast_param *ast_param_new(ast_ctx *c, ast_param_kind k, const char *name,
                         src_span sp, ast_node *deflt) {
  ast_param *p = alloc(c, sizeof *p);
  if (!p) return NULL;
  p->kind = k;
  p->name = name;
  p->span = sp;
  p->deflt = deflt;
  return p;
}

ast_param *ast_param_input(ast_ctx *c, const char *name, src_span sp,
                           const char *type, src_span type_sp, bool is_array,
                           ast_list *dims) {
  ast_param *p = ast_param_new(c, AST_PARAM_INPUT, name, sp, NULL);
  if (!p) return NULL;
  p->type = type;
  p->type_span = type_sp;
  p->is_array = is_array;
  if (dims) {
    for (int k = 0; k < dims->n; k++)
      if (!dims->v[k]) return NULL;
    p->dims = (ast_node **)dims->v;
    p->n_dims = dims->n;
  }
  return p;
}

static ast_decl *decl(ast_ctx *c, ast_decl_kind k, const char *name,
                      src_span name_sp, src_span sp) {
  if (c->fatal) return NULL;
  ast_decl *d = alloc(c, sizeof *d);
  if (!d) return NULL;
  d->kind = k;
  d->name = name;
  d->name_span = name_sp;
  d->span = sp;
  ast_list_add(c, &c->decls, d);
  return d;
}

void ast_import(ast_ctx *c, const char *path, src_span path_sp, src_span sp) {
  decl(c, AST_D_IMPORT, path, path_sp, sp);
}

void ast_let(ast_ctx *c, const char *name, src_span name_sp, ast_node *body,
             src_span sp) {
  if (!body) return;
  ast_decl *d = decl(c, AST_D_LET, name, name_sp, sp);
  if (d) d->body = body;
}

void ast_func(ast_ctx *c, const char *name, src_span name_sp, ast_list *params,
              ast_node *body, src_span sp) {
  if (!body || !params) return;
  ast_param **ps = params->n ? alloc(c, sizeof *ps * (size_t)params->n) : NULL;
  if (params->n && !ps) return;
  for (int k = 0; k < params->n; k++) {
    ast_node *nm = params->v[k];
    if (!nm || !(ps[k] = ast_param_new(c, AST_PARAM_CT, nm->name, nm->span, NULL)))
      return;
  }
  ast_decl *d = decl(c, AST_D_FUNC, name, name_sp, sp);
  if (!d) return;
  d->body = body;
  d->params = ps;
  d->n_params = params->n;
  d->has_parens = true;
}

void ast_pattern(ast_ctx *c, const char *name, src_span name_sp,
                 ast_list *params, bool has_parens, const char *align,
                 src_span align_sp, ast_node *body, src_span sp) {
  if (!body) return;
  if (align && strcmp(align, "top_left")) {
    ast_error(c, align_sp, "unknown alignment '%s' (the one alignment to declare "
              "is top_left; bottom-right is the default)", align);
    return;
  }
  if (params)
    for (int k = 0; k < params->n; k++)
      if (!params->v[k]) return;
  ast_decl *d = decl(c, AST_D_PATTERN, name, name_sp, sp);
  if (!d) return;
  d->body = body;
  d->has_parens = has_parens;
  d->top_left = align != NULL;
  if (params) {
    d->params = (ast_param **)params->v;
    d->n_params = params->n;
  }
}

void ast_extern(ast_ctx *c, const char *name, src_span name_sp, ast_list *types,
                const char *ret, src_span ret_sp, src_span sp) {
  ast_decl *d = decl(c, AST_D_EXTERN, name, name_sp, sp);
  if (!d) return;
  d->ret_type = ret;
  d->ret_span = ret_sp;
  if (types && types->n) {
    d->n_args = types->n;
    d->arg_types = alloc(c, sizeof(char *) * (size_t)types->n);
    d->arg_spans = alloc(c, sizeof(src_span) * (size_t)types->n);
    if (!d->arg_types || !d->arg_spans) {
      d->n_args = 0;
      return;
    }
    for (int k = 0; k < types->n; k++) {
      ast_node *t = types->v[k];
      d->arg_types[k] = t ? t->name : "";
      d->arg_spans[k] = t ? t->span : sp;
    }
  }
}
