/* parser.y: .pat grammar.  In: tokens from lexer.l.  Out: declarations
 * appended to the ast_ctx (ast.h); actions only call ast_* constructors.
 * One expression grammar for integers and patterns with C's precedence
 * (sema sorts out which is which).  A syntax error inside a declaration
 * resynchronises at the next ';', so independent errors are all reported. */
%define api.pure full
%define api.prefix {spat_yy}
%define parse.error custom
%define api.location.type {src_span}
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {ast_ctx *ctx}

%code requires {
#include <stdbool.h>
#include <stdint.h>
#include "ast.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
#define YYLLOC_DEFAULT(Cur, Rhs, N)                    \
  do {                                                 \
    if (N) {                                           \
      (Cur).src = YYRHSLOC(Rhs, 1).src;                \
      (Cur).begin = YYRHSLOC(Rhs, 1).begin;            \
      (Cur).end = YYRHSLOC(Rhs, N).end;                \
    } else {                                           \
      (Cur).src = YYRHSLOC(Rhs, 0).src;                \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end;  \
    }                                                  \
  } while (0)
}

%code provides {
int spat_yylex(SPAT_YYSTYPE *lval, src_span *lloc, yyscan_t scanner);
int spat_yyparse(yyscan_t scanner, ast_ctx *ctx);
}

%code {
#include <stdio.h>
#include <string.h>
#define YYMAXDEPTH 2000
static void yyerror(src_span *loc, yyscan_t scanner, ast_ctx *ctx, const char *msg);
#define SPAN(a, b) ((src_span){(a).src, (a).begin, (b).end})
}

%union {
  int64_t ival;
  double dval;
  const char *str;
  ast_node *node;
  ast_list *list;
  ast_param *param;
}

%initial-action { @$ = (src_span){ctx->src, 0, 0}; }

%token IMPORT "'import'" LET "'let'" PATTERN "'pattern'" RUNTIME "'runtime'"
%token INPUT "'input'" EXTERN "'extern'" FN "'fn'" BLOCKS "'blocks'"
%token WITH "'with'" IN "'in'"
%token <dval> FLOAT_LIT "float"
%token <ival> INT_LIT "integer"
%token <str> IDENT "name" STRING "string"
%token DOTDOT "'..'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='"
%token ANDAND "'&&'" OROR "'||'" ARROW "'->'" SHL "'<<'" SHR "'>>'"

%type <node> expr primary arg item type
%type <list> args items params param_list types type_list names index_list
%type <param> param

%precedence LETIN
%left WITH
%right '?' ':'
%left OROR
%left ANDAND
%left '|'
%left '^'
%left '&'
%left EQ NE
%left '<' '>' LE GE
%left SHL SHR
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY

%%

file:
  %empty
| file decl                     { ast_decl_done(ctx); }
;

decl:
  IMPORT STRING ';'             { ast_import(ctx, $2, @2, @$); }
| LET IDENT '=' expr ';'        { ast_let(ctx, $2, @2, $4, @$); }
| LET IDENT '(' names ')' '=' expr ';'
                                { ast_func(ctx, $2, @2, $4, $7, @$); }
| PATTERN IDENT params '=' expr ';'
                                { ast_pattern(ctx, $2, @2, $3, $3 != NULL, NULL, @2, $5, @$); }
| PATTERN IDENT params IDENT '(' IDENT ')' '=' expr ';'
                                { if (strcmp($4, "aligned"))
                                    ast_error(ctx, @4, "unexpected name '%s', expected '=' or aligned(top_left)", $4);
                                  else
                                    ast_pattern(ctx, $2, @2, $3, $3 != NULL, $6, @6, $9, @$); }
| EXTERN FN IDENT '(' types ')' ARROW IDENT ';'
                                { ast_extern(ctx, $3, @3, $5, $8, @8, @$); }
| error ';'                     { if (ctx->fatal) YYABORT; yyerrok; ast_decl_done(ctx); }
;

params:
  %empty                        { $$ = NULL; }
| '(' ')'                       { $$ = ast_list_new(ctx); }
| '(' param_list ')'            { $$ = $2; }
;

param_list:
  param                         { $$ = ast_list_add(ctx, ast_list_new(ctx), $1); }
| param_list ',' param          { $$ = ast_list_add(ctx, $1, $3); }
;

param:
  IDENT                         { $$ = ast_param_new(ctx, AST_PARAM_CT, $1, @1, NULL); }
| IDENT '=' expr                { $$ = ast_param_new(ctx, AST_PARAM_CT, $1, @1, $3); }
| RUNTIME IDENT                 { $$ = ast_param_new(ctx, AST_PARAM_RUNTIME, $2, @2, NULL); }
| RUNTIME IDENT '=' expr        { $$ = ast_param_new(ctx, AST_PARAM_RUNTIME, $2, @2, $4); }
| INPUT IDENT ':' IDENT '[' ']' { $$ = ast_param_input(ctx, $2, @2, $4, SPAN(@4, @6), true, NULL); }
| INPUT IDENT ':' IDENT '[' index_list ']'
                                { $$ = ast_param_input(ctx, $2, @2, $4, SPAN(@4, @7), true, $6); }
| INPUT IDENT ':' IDENT         { $$ = ast_param_input(ctx, $2, @2, $4, @4, false, NULL); }
;

names:
  %empty                        { $$ = ast_list_new(ctx); }
| IDENT                         { $$ = ast_list_add(ctx, ast_list_new(ctx), ast_name(ctx, $1, @1)); }
| names ',' IDENT               { $$ = ast_list_add(ctx, $1, ast_name(ctx, $3, @3)); }
;

index_list:
  expr                          { $$ = ast_list_add(ctx, ast_list_new(ctx), $1); }
| index_list ',' expr           { $$ = ast_list_add(ctx, $1, $3); }
;

types:
  %empty                        { $$ = ast_list_new(ctx); }
| type_list                     { $$ = $1; }
;

type_list:
  type                          { $$ = ast_list_add(ctx, ast_list_new(ctx), $1); }
| type_list ',' type            { $$ = ast_list_add(ctx, $1, $3); }
;

type:
  IDENT                         { $$ = ast_name(ctx, $1, @1); }
;

expr:
  primary                       { $$ = $1; }
| '!' expr %prec UNARY          { $$ = ast_unary(ctx, AST_OP_NOT, $2, @$); }
| '-' expr %prec UNARY          { $$ = ast_unary(ctx, AST_OP_NEG, $2, @$); }
| '~' expr %prec UNARY          { $$ = ast_unary(ctx, AST_OP_BNOT, $2, @$); }
| expr SHL expr                 { $$ = ast_binary(ctx, AST_OP_SHL, $1, $3, @$); }
| expr SHR expr                 { $$ = ast_binary(ctx, AST_OP_SHR, $1, $3, @$); }
| expr '^' expr                 { $$ = ast_binary(ctx, AST_OP_XOR, $1, $3, @$); }
| expr WITH IDENT expr %prec WITH
                                { if (strcmp($3, "score")) {
                                    ast_error(ctx, @3, "expected 'score' after 'with'");
                                    $$ = NULL;
                                  } else {
                                    $$ = ast_score(ctx, $1, $4, @$);
                                  } }
| LET IDENT '=' expr IN expr %prec LETIN
                                { $$ = ast_letin(ctx, $2, @2, NULL, $4, $6, @$); }
| LET IDENT '(' names ')' '=' expr IN expr %prec LETIN
                                { $$ = ast_letin(ctx, $2, @2, $4, $7, $9, @$); }
| expr '*' expr                 { $$ = ast_binary(ctx, AST_OP_MUL, $1, $3, @$); }
| expr '/' expr                 { $$ = ast_binary(ctx, AST_OP_DIV, $1, $3, @$); }
| expr '%' expr                 { $$ = ast_binary(ctx, AST_OP_MOD, $1, $3, @$); }
| expr '+' expr                 { $$ = ast_binary(ctx, AST_OP_ADD, $1, $3, @$); }
| expr '-' expr                 { $$ = ast_binary(ctx, AST_OP_SUB, $1, $3, @$); }
| expr '<' expr                 { $$ = ast_binary(ctx, AST_OP_LT, $1, $3, @$); }
| expr LE expr                  { $$ = ast_binary(ctx, AST_OP_LE, $1, $3, @$); }
| expr '>' expr                 { $$ = ast_binary(ctx, AST_OP_GT, $1, $3, @$); }
| expr GE expr                  { $$ = ast_binary(ctx, AST_OP_GE, $1, $3, @$); }
| expr EQ expr                  { $$ = ast_binary(ctx, AST_OP_EQ, $1, $3, @$); }
| expr NE expr                  { $$ = ast_binary(ctx, AST_OP_NE, $1, $3, @$); }
| expr '&' expr                 { $$ = ast_binary(ctx, AST_OP_BAND, $1, $3, @$); }
| expr '|' expr                 { $$ = ast_binary(ctx, AST_OP_BOR, $1, $3, @$); }
| expr ANDAND expr              { $$ = ast_binary(ctx, AST_OP_LAND, $1, $3, @$); }
| expr OROR expr                { $$ = ast_binary(ctx, AST_OP_LOR, $1, $3, @$); }
| expr '?' expr ':' expr        { $$ = ast_cond(ctx, $1, $3, $5, @$); }
;

primary:
  INT_LIT                       { $$ = ast_int(ctx, $1, @1); }
| FLOAT_LIT                     { $$ = ast_float(ctx, $1, @1); }
| IDENT                         { $$ = ast_name(ctx, $1, @1); }
| IDENT '(' ')'                 { $$ = ast_call(ctx, $1, @1, NULL, @$); }
| IDENT '(' args ')'            { $$ = ast_call(ctx, $1, @1, $3, @$); }
| IDENT '[' index_list ']'      { $$ = ast_index(ctx, $1, @1, $3, @$); }
| BLOCKS '(' expr ')' '{' expr '}'
                                { $$ = ast_blocks(ctx, $3, $6, @$); }
| '{' '}'                       { $$ = ast_set(ctx, NULL, @$); }
| '{' items '}'                 { $$ = ast_set(ctx, $2, @$); }
| '(' expr ')'                  { $$ = ast_paren(ctx, $2, @$); }
;

args:
  arg                           { $$ = ast_list_add(ctx, ast_list_new(ctx), $1); }
| args ',' arg                  { $$ = ast_list_add(ctx, $1, $3); }
;

arg:
  item                          { $$ = $1; }
| IDENT '=' expr                { $$ = ast_arg(ctx, $1, @1, $3, @$); }
;

items:
  item                          { $$ = ast_list_add(ctx, ast_list_new(ctx), $1); }
| items ',' item                { $$ = ast_list_add(ctx, $1, $3); }
;

item:
  expr                          { $$ = $1; }
| expr DOTDOT expr              { $$ = ast_range(ctx, $1, $3, @$); }
;

%%

static void yyerror(src_span *loc, yyscan_t scanner, ast_ctx *ctx, const char *msg) {
  (void)scanner;
  if (strstr(msg, "exhausted"))
    ast_error(ctx, *loc, "nesting too deep");
  else
    ast_error(ctx, *loc, "%s", msg);
  ctx->fatal = true;
}

static void tok_name(char *out, size_t n, yysymbol_kind_t k) {
  const char *s = yysymbol_name(k);
  size_t len = strlen(s);
  if (len >= 2 && s[0] == '"' && s[len - 1] == '"') s++, len -= 2;
  snprintf(out, n, "%.*s", (int)len, s);
}

/* "unexpected X, expected A, B or C"; the token's text is quoted when it is
 * a name or a number, so the user sees what was actually written. */
static int yyreport_syntax_error(const yypcontext_t *yc, yyscan_t scanner,
                                 ast_ctx *ctx) {
  (void)scanner;
  if (ctx->fatal || ctx->lex_error) return 0;
  char msg[400];
  size_t n = 0;
  yysymbol_kind_t tok = yypcontext_token(yc);
  const src_span *loc = yypcontext_location(yc);
  if (tok == YYSYMBOL_YYEOF) {
    n += (size_t)snprintf(msg + n, sizeof msg - n, "unexpected end of file");
  } else if (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_INT_LIT) {
    int len = loc->end - loc->begin;
    const char *t = diag_source_text(ctx->diag, loc->src);
    n += (size_t)snprintf(msg + n, sizeof msg - n, "unexpected %s '%.*s'",
                          tok == YYSYMBOL_IDENT ? "name" : "integer",
                          len > 40 ? 40 : len, t ? t + loc->begin : "");
  } else {
    char name[40];
    tok_name(name, sizeof name, tok);
    n += (size_t)snprintf(msg + n, sizeof msg - n, "unexpected %s", name);
  }
  enum { MAX_EXP = 6 };
  yysymbol_kind_t exp[YYNTOKENS];
  int ne = yypcontext_expected_tokens(yc, exp, YYNTOKENS);
  bool expr_start = false, semi = false, want_name = false;
  for (int k = 0; k < ne; k++) {
    expr_start |= exp[k] == YYSYMBOL_INT_LIT;
    want_name |= exp[k] == YYSYMBOL_IDENT;
    semi |= !strcmp(yysymbol_name(exp[k]), "';'");
  }
  bool keyword = tok == YYSYMBOL_IMPORT || tok == YYSYMBOL_LET || tok == YYSYMBOL_PATTERN ||
                 tok == YYSYMBOL_RUNTIME || tok == YYSYMBOL_INPUT || tok == YYSYMBOL_EXTERN ||
                 tok == YYSYMBOL_FN || tok == YYSYMBOL_BLOCKS ||
                 tok == YYSYMBOL_WITH || tok == YYSYMBOL_IN;
  if (want_name && keyword && !expr_start) {
    char kw[40];
    tok_name(kw, sizeof kw, tok);
    ast_error(ctx, *loc, "%s is a keyword and cannot be used as a name", kw);
    return 0;
  }
  if (semi && (tok == YYSYMBOL_IMPORT || tok == YYSYMBOL_LET || tok == YYSYMBOL_PATTERN ||
               tok == YYSYMBOL_EXTERN)) {
    /* the usual cause: a declaration without its ';' */
    char name[40];
    tok_name(name, sizeof name, tok);
    src_span at = {loc->src, ctx->prev_end, ctx->prev_end};
    ast_error(ctx, at, "expected ';' before %s", name);
    return 0;
  }
  if (expr_start) {
    snprintf(msg + n, sizeof msg - n, ", expected an expression");
  } else if (!want_name && !strcmp(yysymbol_name(tok), "'='")) {
    snprintf(msg + n, sizeof msg - n, " (use '==' to compare)");
  } else if (semi && tok == YYSYMBOL_YYEOF) {
    snprintf(msg + n, sizeof msg - n, ", expected ';'");
  } else if (semi && ne >= MAX_EXP) {
    snprintf(msg + n, sizeof msg - n, ", expected an operator or ';'");
  } else if (ne > 0 && ne < MAX_EXP) {
    for (int k = 0; k < ne && n < sizeof msg; k++) {
      const char *sep = k == 0 ? ", expected " : k == ne - 1 ? " or " : ", ";
      char name[40];
      tok_name(name, sizeof name, exp[k]);
      n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s", sep, name);
    }
  }
  ast_error(ctx, *loc, "%s", msg);
  return 0;
}
