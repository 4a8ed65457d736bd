/* ast.h: the syntax tree of one .pat file, built by the grammar's actions.
 *
 * In: tokens (grammar/lexer.l, grammar/parser.y).  Out: an ast_file, a list
 * of declarations whose expressions are one untyped tree for integers and
 * patterns (the parser does not know which is which; sema decides).
 * Everything lives in the compilation's arena.  The constructors also
 * enforce the nesting limit so later recursive passes stay shallow.
 */
#ifndef SPAT_AST_H
#define SPAT_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "spat_limits.h"

#define AST_MAX_DEPTH SPAT_MAX_EXPR_DEPTH    /* deepest expression tree accepted */
#define AST_MAX_ERRORS SPAT_MAX_PARSE_ERRORS /* a parse stops after this many errors */

/* X(name, text): unary and binary operators as written. */
#define AST_OPS(X)                                                    \
  X(NEG, "-") X(NOT, "!")                                             \
  X(MUL, "*") X(DIV, "/") X(MOD, "%") X(ADD, "+") X(SUB, "-")         \
  X(LT, "<") X(LE, "<=") X(GT, ">") X(GE, ">=") X(EQ, "==") X(NE, "!=") \
  X(BAND, "&") X(BOR, "|") X(LAND, "&&") X(LOR, "||")                \
  X(XOR, "^") X(SHL, "<<") X(SHR, ">>") X(BNOT, "~")

typedef enum {
#define X(name, text) AST_OP_##name,
  AST_OPS(X)
#undef X
  AST_N_OPS
} ast_op;

extern const char *const ast_op_text[AST_N_OPS];

typedef enum {
  AST_INT,    /* ival */
  AST_NAME,   /* name */
  AST_UNARY,  /* op a */
  AST_BINARY, /* a op b */
  AST_COND,   /* a ? b : c */
  AST_CALL,   /* name(items); items may be AST_ARG (named) or AST_RANGE */
  AST_ARG,    /* name = a, inside a call */
  AST_INDEX,  /* name[a] */
  AST_RANGE,  /* a .. b */
  AST_SET,    /* {items} */
  AST_BLOCKS, /* blocks(a) { b } */
  AST_FLOAT,  /* dval (version 2: score expressions) */
  AST_LETIN,  /* let name(items) = a in b; items: the parameter NAMEs */
  AST_SCORE   /* a with score b */
} ast_kind;

typedef struct ast_node ast_node;
typedef struct ast_decl ast_decl;
struct ast_node {
  ast_kind kind;
  ast_op op;
  src_span span;       /* the whole construct */
  src_span name_span;  /* NAME/CALL/ARG/INDEX: the identifier */
  int depth;           /* 1 + deepest child */
  bool parens;         /* written inside ( ) */
  int64_t ival;
  double dval;         /* FLOAT */
  bool has_params;     /* LETIN: written with a parameter list */
  const char *name;
  ast_node *a, *b, *c;
  ast_node **items;    /* CALL arguments, SET items, INDEX indices
                          (a is the first), LETIN parameters */
  int n_items;
  ast_decl *decl;      /* sema: NAME/CALL resolved to a top-level declaration */
};

typedef struct ast_list {
  void **v;
  int n, cap;
} ast_list;

typedef enum {
  AST_PARAM_CT, AST_PARAM_RUNTIME, AST_PARAM_INPUT,
  AST_PARAM_LOCAL, /* sema: a name of let ... in (never parsed as a parameter) */
  AST_PARAM_ARG    /* sema: a function's parameter bound to an argument */
} ast_param_kind;

typedef struct ast_param {
  ast_param_kind kind;
  const char *name;
  src_span span;        /* the name */
  ast_node *deflt;      /* NULL: no default (always NULL for inputs) */
  const char *type;     /* INPUT: element type name as written */
  src_span type_span;
  bool is_array;        /* INPUT: type written with [...] */
  ast_node **dims;      /* INPUT: the dimensions written; NULL for int[] */
  int n_dims;
} ast_param;

typedef enum {
  AST_D_IMPORT, AST_D_LET, AST_D_PATTERN, AST_D_EXTERN,
  AST_D_FUNC   /* let f(x, y) = body; (params: the names as CT params) */
} ast_decl_kind;

struct ast_decl {
  ast_decl_kind kind;
  const char *name;     /* LET/PATTERN/EXTERN; IMPORT: the path as written */
  src_span name_span;   /* IMPORT: the string literal */
  src_span span;        /* the whole declaration */
  ast_node *body;       /* LET/PATTERN */
  ast_param **params;   /* PATTERN */
  int n_params;
  bool has_parens;      /* PATTERN: declared with a parameter list */
  bool top_left;        /* PATTERN: aligned(top_left) */
  const char **arg_types;  /* EXTERN: type names */
  src_span *arg_spans;
  int n_args;
  const char *ret_type;    /* EXTERN */
  src_span ret_span;
  /* filled by sema */
  int state;            /* 0 unchecked, 1 checking, 2 checked */
  int type;             /* LET: sema's type of the body */
  bool where_only;      /* LET: uses i, j, an input or an extern */
  src_span where_span;  /* the first such use */
  bool bad;             /* failed to evaluate; later uses stay quiet */
  bool active;          /* being instantiated (recursion check) */
  bool has_value;       /* LET: evaluated to the constant `value` */
  int64_t value;
  int file;             /* index of the declaring file in the module */
  void *memo;           /* sema: expansions already made (a list) */
  int pattern_index;    /* PATTERN of the main file: its fe_pattern_name index */
};

/* The parser's context: where nodes go and where errors are reported. */
typedef struct ast_ctx {
  arena *arena;
  diag *diag;
  int src;              /* source id of the file being parsed */
  ast_list decls;       /* ast_decl* in source order */
  int n_errors;         /* errors reported while parsing this file */
  bool fatal;           /* stop parsing (nesting too deep, too many errors) */
  bool oom;
  int nesting;          /* open ( [ { while lexing */
  int offset;           /* lexer: byte offset of the next token */
  int last_end;         /* lexer: end of the last token (where EOF is shown) */
  int prev_end;         /* lexer: end of the token before that */
  bool lex_error;       /* a lexical error in this declaration: the syntax
                           errors it causes are not reported */
} ast_ctx;

void ast_error(ast_ctx *c, src_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Text of the source between the span's ends (arena copy). */
const char *ast_span_text(ast_ctx *c, src_span sp);

/* A declaration was parsed (or skipped after an error). */
void ast_decl_done(ast_ctx *c);

/* Lexer helpers. */
int64_t ast_int_literal(ast_ctx *c, const char *text, int len, src_span sp);
const char *ast_ident(ast_ctx *c, const char *text, int len);
const char *ast_string(ast_ctx *c, const char *text, int len);  /* without quotes */
void ast_bad_char(ast_ctx *c, const char *text, int len, src_span sp);

/* Expression constructors: NULL only after an error (OOM or too deep). */
ast_node *ast_int(ast_ctx *c, int64_t v, src_span sp);
ast_node *ast_name(ast_ctx *c, const char *name, src_span sp);
ast_node *ast_unary(ast_ctx *c, ast_op op, ast_node *a, src_span sp);
ast_node *ast_binary(ast_ctx *c, ast_op op, ast_node *a, ast_node *b, src_span sp);
ast_node *ast_cond(ast_ctx *c, ast_node *a, ast_node *b, ast_node *e, src_span sp);
ast_node *ast_call(ast_ctx *c, const char *name, src_span name_sp,
                   ast_list *args, src_span sp);
ast_node *ast_arg(ast_ctx *c, const char *name, src_span name_sp, ast_node *v,
                  src_span sp);
ast_node *ast_index(ast_ctx *c, const char *name, src_span name_sp,
                    ast_list *idx, src_span sp);
double ast_float_literal(ast_ctx *c, const char *text, int len, src_span sp);
ast_node *ast_float(ast_ctx *c, double v, src_span sp);
/* let name(params) = v in body (params NULL: a plain name). */
ast_node *ast_letin(ast_ctx *c, const char *name, src_span name_sp,
                    ast_list *params, ast_node *v, ast_node *body, src_span sp);
ast_node *ast_score(ast_ctx *c, ast_node *pat, ast_node *e, src_span sp);
ast_node *ast_range(ast_ctx *c, ast_node *a, ast_node *b, src_span sp);
ast_node *ast_set(ast_ctx *c, ast_list *items, src_span sp);
ast_node *ast_blocks(ast_ctx *c, ast_node *b, ast_node *body, src_span sp);
ast_node *ast_paren(ast_ctx *c, ast_node *inner, src_span sp);

/* Lists (arena-grown). */
ast_list *ast_list_new(ast_ctx *c);
ast_list *ast_list_add(ast_ctx *c, ast_list *l, void *item);

/* Declarations: appended to c->decls. */
ast_param *ast_param_new(ast_ctx *c, ast_param_kind k, const char *name,
                         src_span sp, ast_node *deflt);
/* dims: NULL for int[] or a type without brackets, else the dimensions. */
ast_param *ast_param_input(ast_ctx *c, const char *name, src_span sp,
                           const char *type, src_span type_sp, bool is_array,
                           ast_list *dims);
void ast_import(ast_ctx *c, const char *path, src_span path_sp, src_span sp);
void ast_let(ast_ctx *c, const char *name, src_span name_sp, ast_node *body,
             src_span sp);
/* align: NULL, or the name inside aligned(...) (only top_left is valid). */
void ast_pattern(ast_ctx *c, const char *name, src_span name_sp,
                 ast_list *params, bool has_parens, const char *align,
                 src_span align_sp, ast_node *body, src_span sp);
/* let name(params) = body;  params: NAME nodes. */
void ast_func(ast_ctx *c, const char *name, src_span name_sp, ast_list *params,
              ast_node *body, src_span sp);
/* types: a list of ast_node NAMEs (the argument type names). */
void ast_extern(ast_ctx *c, const char *name, src_span name_sp, ast_list *types,
                const char *ret, src_span ret_sp, src_span sp);

#endif
