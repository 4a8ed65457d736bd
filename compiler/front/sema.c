/* sema.c: names, types, constant folding and instantiation.
 *
 * In: the parsed files of a module (sema.h).  Out: diagnostics, and for
 * fe_instantiate an ir_program (ir.h) with every name resolved, lets and
 * pattern calls inlined and compile-time parameters folded.
 *
 * One translator, tr(), walks an expression in one of two modes:
 *  - check: every declaration once, parameters unknown.  Resolves names,
 *    infers int / pattern / index-set types, checks arity and where i, j,
 *    inputs and externs may appear.  Lets and calls are not inlined (a let's
 *    type is computed once; a call only checks its arguments).  Nothing is
 *    reported about values.
 *  - instantiate: parameters bound; lets and calls inlined; constants folded
 *    with checked int64 arithmetic; a conditional with a constant condition
 *    translates only the chosen arm (so `w > 0 ? 100 / w : 0` is fine with
 *    w = 0); constant sizes out of range, overflow and division by zero are
 *    errors with the location of the expression.
 * Runtime scalars and input arrays of every pattern instantiated (the chosen
 * one and the ones it calls) are merged by name into the program's tables;
 * externs are added on first use.
 */
#include "sema.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spat_limits.h"

#define SEMA_MAX_DEPTH SPAT_MAX_INLINE_DEPTH
#define SEMA_MAX_NODES SPAT_MAX_IR_NODES
#define SEMA_MAX_EXTERN_ARGS SPAT_MAX_EXTERN_ARGS

typedef enum { T_ERR, T_INT, T_PAT, T_SET, T_FLT } ty;

static const char *ty_name(ty t) {
  switch (t) {
  case T_INT: return "an integer";
  case T_FLT: return "a float";
  case T_PAT: return "a pattern";
  case T_SET: return "an index set";
  default: return "an invalid expression";
  }
}

typedef struct val {
  ir_node *n;
  ty t;
  bool where_only;     /* uses i, j, an input or an extern */
  src_span where_span; /* the first such use */
  ir_node *score;      /* a pattern with `with score`: its E */
} val;

struct env;
typedef struct binding {
  ast_param *p;
  ir_node *value;      /* CT, instantiate mode: the bound expression */
  int index;           /* RUNTIME / INPUT, instantiate mode: table index */
  /* LOCAL (let ... in): the value or function body, its parameter names
   * and the scope it was defined in; ARG: the argument's value */
  ast_node *lbody;
  ast_node **lparams;
  int n_lparams;
  bool is_fn;
  struct env *lenv;
  val v;               /* ARG: the value; LOCAL, check mode: type, where */
} binding;

typedef struct env {
  int file;            /* whose top-level names are visible */
  binding *b;
  int n;               /* bindings visible (a prefix while reading defaults) */
  bool defaults;       /* translating a parameter default */
  ast_decl *pattern;   /* the pattern whose parameters these are */
  struct env *up;      /* the enclosing scope (let ... in), or NULL */
} env;

typedef struct table_entry {
  ast_param *p;        /* RUNTIME / INPUT: its declaration */
  ast_decl *ext;       /* EXTERN: its declaration */
} table_entry;

typedef struct sema {
  fe_module *m;
  diag *d;
  arena *a;
  bool inst;           /* instantiate mode */
  bool failed;         /* an error happened (maybe reported earlier) */
  bool stop;           /* a limit was hit; unwind */
  bool last_dup;       /* the last error was a duplicate: skip its notes */
  int depth;
  long n_nodes;
  struct frame { const char *what, *name; src_span use; } frames[8], pend[8];
  int n_frames;        /* instantiate mode: lets and calls being inlined */
  int n_pend;          /* frames of the last error, shown after its notes */
  bool bad_defines;    /* fe_instantiate was given an unusable -D */
  bool in_score;       /* translating the E of `with score E` */
  bool in_dims;        /* translating an input's dimension */
  bool score_top;      /* the node being translated may be `P with score E` */
  bool top_left;       /* instantiate: the program's alignment */
  int in_blocks;       /* blocks { } being translated */
  bool call_top;       /* the pattern call being translated is at the top */
  strmap seen;         /* rendered keys of errors already reported */
  int n_suggest;       /* did-you-mean searches made */
  unsigned gen;        /* instantiate mode: memo generation (0: no memo) */
  struct recorder *rec; /* the innermost expansion being memoised */
  /* instantiate mode: the program's tables */
  ir_param *params; int n_params;
  ir_runtime *rt; table_entry *rt_e; int n_rt, cap_rt;
  ir_input *in; table_entry *in_e; int n_in, cap_in;
  ir_extern *ex; table_entry *ex_e; int n_ex, cap_ex;
} sema;

/* ---- diagnostics ---------------------------------------------------- */

static void flush_frames(sema *S) {
  for (int k = S->n_pend - 1; k >= 0; k--)
    diag_note(S->d, S->pend[k].use, "in %s'%s', %s here", S->pend[k].what,
              S->pend[k].name, S->pend[k].what[0] ? "used" : "called");
  S->n_pend = 0;
}

static void err(sema *S, src_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(sema *S, src_span sp, const char *fmt, ...) {
  flush_frames(S);
  S->failed = true;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *key = arena_printf(S->a, "%d:%d:%d:%s", sp.src, sp.begin, sp.end, msg);
  if (key) {
    if (strmap_get(&S->seen, key)) {
      S->last_dup = true;
      return;
    }
    strmap_put(&S->seen, key, key);
  }
  S->last_dup = false;
  diag_error(S->d, sp, "%s", msg);
  S->n_pend = S->n_frames < 8 ? S->n_frames : 8;
  memcpy(S->pend, S->frames, sizeof S->pend[0] * (size_t)S->n_pend);
}

static void push_frame(sema *S, const char *what, const char *name, src_span use) {
  if (S->n_frames < 8) S->frames[S->n_frames] = (struct frame){what, name, use};
  S->n_frames++;
}

static void note(sema *S, src_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(sema *S, src_span sp, const char *fmt, ...) {
  if (S->last_dup) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_note(S->d, sp, "%s", msg);
}

static val bad(sema *S) {
  S->failed = true;
  return (val){NULL, T_ERR, false, SPAN_NONE, NULL};
}

/* ---- names ---------------------------------------------------------- */

typedef enum {
  B_NONE, B_VAR, B_PRIM, B_FUNC, B_TYPE
} builtin_kind;

/* Version 2 names are soft: a parameter, let or declaration of the same
 * name hides them, so files written before them keep their meaning. */
#define IR_VAR_R IR_N_OPS        /* r: lowered to i - offset */
#define IR_INF (IR_N_OPS + 1)    /* inf: the float constant */
#define IR_CLAMP (IR_N_OPS + 2)  /* clamp(x, lo, hi) */

/* X(name, kind, op, min args, max args, argument kinds)
 * argument kinds: i integer, w integer predicate (i, j allowed),
 * s index set, p pattern. */
#define BUILTINS(X)                                  \
  X("i", B_VAR, IR_VAR_I, 0, 0, "")                  \
  X("j", B_VAR, IR_VAR_J, 0, 0, "")                  \
  X("h", B_VAR, IR_VAR_H, 0, 0, "")                  \
  X("Lq", B_VAR, IR_SIZE_LQ, 0, 0, "")               \
  X("Lk", B_VAR, IR_SIZE_LK, 0, 0, "")               \
  X("H", B_VAR, IR_SIZE_H, 0, 0, "")                 \
  X("full", B_PRIM, IR_FULL, 0, 0, "")               \
  X("none", B_PRIM, IR_NONE, 0, 0, "")               \
  X("causal", B_PRIM, IR_CAUSAL, 0, 0, "")           \
  X("window", B_PRIM, IR_WINDOW, 1, 2, "ii")         \
  X("dilated", B_PRIM, IR_DILATED, 2, 2, "ii")       \
  X("block", B_PRIM, IR_BLOCK, 1, 1, "i")            \
  X("stride", B_PRIM, IR_STRIDE, 1, 1, "i")          \
  X("rows", B_PRIM, IR_ROWS, 1, 1, "s")              \
  X("cols", B_PRIM, IR_COLS, 1, 1, "s")              \
  X("global", B_PRIM, IR_GLOBAL, 1, 1, "s")          \
  X("random", B_PRIM, IR_RANDOM, 2, 2, "ii")         \
  X("where", B_PRIM, IR_WHERE, 1, 1, "w")            \
  X("topk", B_PRIM, IR_TOPK, 2, 2, "ip")             \
  X("min", B_FUNC, IR_MIN, 2, 2, "ii")               \
  X("max", B_FUNC, IR_MAX, 2, 2, "ii")               \
  X("abs", B_FUNC, IR_ABS, 1, 1, "i")                \
  X("int", B_TYPE, IR_CONST, 0, 0, "")               \
  X("bool", B_TYPE, IR_CONST, 0, 0, "")              \
  X("b", B_VAR, IR_VAR_B, 0, 0, "")                  \
  X("r", B_VAR, IR_VAR_R, 0, 0, "")                  \
  X("s", B_VAR, IR_FSCORE, 0, 0, "")                 \
  X("B", B_VAR, IR_SIZE_B, 0, 0, "")                 \
  X("Hkv", B_VAR, IR_SIZE_HKV, 0, 0, "")             \
  X("D", B_VAR, IR_SIZE_D, 0, 0, "")                 \
  X("inf", B_VAR, IR_INF, 0, 0, "")                  \
  X("clamp", B_FUNC, IR_CLAMP, 3, 3, "iii")          \
  X("exp", B_FUNC, IR_FEXP, 1, 1, "f")               \
  X("log", B_FUNC, IR_FLOG, 1, 1, "f")               \
  X("sqrt", B_FUNC, IR_FSQRT, 1, 1, "f")             \
  X("tanh", B_FUNC, IR_FTANH, 1, 1, "f")             \
  X("diagonals", B_PRIM, IR_DIAG, 1, 1, "s")         \
  X("route", B_PRIM, IR_ROUTE, 1, 1, "c")

typedef struct builtin {
  const char *name;
  builtin_kind kind;
  int op;
  int min, max;
  const char *args;
  bool soft;           /* version 2: hidden by a user name */
} builtin;

static const builtin builtins[] = {
#define X(n, k, op, mn, mx, a) \
  {n, k, op, mn, mx, a, (op >= IR_VAR_B && op <= IR_INPUTN) || op >= IR_DIAG},
    BUILTINS(X)
#undef X
};
#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

static const char *const keywords[] = {"import", "let", "pattern", "runtime",
                                       "input", "extern", "fn", "blocks",
                                       "with", "in"};

static const builtin *find_builtin(const char *name) {
  for (int k = 0; k < N_BUILTINS; k++)
    if (!strcmp(builtins[k].name, name)) return &builtins[k];
  return NULL;
}

bool sema_is_reserved(const char *name, const char **what) {
  for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
    if (!strcmp(keywords[k], name)) {
      if (what) *what = "a keyword";
      return true;
    }
  const builtin *b = find_builtin(name);
  if (!b || b->soft) return false;
  if (what)
    *what = b->kind == B_VAR    ? "a built-in variable"
            : b->kind == B_PRIM ? "a built-in primitive"
            : b->kind == B_FUNC ? "a built-in function"
                                : "a type name";
  return true;
}

/* The names of a file, hashed once (lookups were a scan per name, which
 * made checking quadratic in the number of declarations). */
static void index_file(fe_module *m, fe_file *F) {
  if (F->indexed) return;
  strmap_init(&F->names, m->arena);
  for (int k = 0; k < F->n_decls; k++) {
    ast_decl *d = F->decls[k];
    if (d->kind != AST_D_IMPORT && !strmap_put(&F->names, d->name, d)) return;
  }
  F->indexed = true;
}

static ast_decl *lookup_walk(fe_module *m, int f, const char *name) {
  fe_file *F = &m->files[f];
  if (F->mark == m->gen) return NULL;
  F->mark = m->gen;
  index_file(m, F);
  if (F->indexed) {
    ast_decl *d = strmap_get(&F->names, name);
    if (d) return d;
  } else {
    for (int k = 0; k < F->n_decls; k++) {
      ast_decl *d = F->decls[k];
      if (d->kind != AST_D_IMPORT && !strcmp(d->name, name)) return d;
    }
  }
  for (int k = 0; k < F->n_imports; k++) {
    ast_decl *d = lookup_walk(m, F->imports[k], name);
    if (d) return d;
  }
  return NULL;
}

ast_decl *sema_lookup(fe_module *m, int f, const char *name) {
  m->gen++;
  return lookup_walk(m, f, name);
}

/* The top-level declaration a NAME or CALL refers to, cached on the node
 * (a node always belongs to one file, whose scope does not change). */
static ast_decl *resolve(sema *S, env *E, ast_node *e) {
  if (!e->decl) e->decl = sema_lookup(S->m, E->file, e->name);
  return e->decl;
}

static binding *find_binding(env *E, const char *name) {
  for (; E; E = E->up)
    for (int k = E->n - 1; k >= 0; k--)
      if (!strcmp(E->b[k].p->name, name)) return &E->b[k];
  return NULL;
}

static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 30 || lb > 30) return 99;
  int row[32];
  for (int j = 0; j <= lb; j++) row[j] = j;
  for (int i = 1; i <= la; i++) {
    int prev = row[0];
    row[0] = i;
    for (int j = 1; j <= lb; j++) {
      int cur = row[j];
      int best = prev + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      prev = cur;
    }
  }
  return row[lb];
}

static void consider(const char *name, const char *cand, const char **best,
                     int *bestd) {
  int d = edit_distance(name, cand);
  int len = (int)strlen(name);
  if (d < *bestd && d <= (len <= 3 ? 1 : 2) && d < len) {
    *bestd = d;
    *best = cand;
  }
}

static void suggest_walk(fe_module *m, int f, const char *name,
                         const char **best, int *bestd) {
  fe_file *F = &m->files[f];
  if (F->mark == m->gen) return;
  F->mark = m->gen;
  for (int k = 0; k < F->n_decls; k++)
    if (F->decls[k]->kind != AST_D_IMPORT)
      consider(name, F->decls[k]->name, best, bestd);
  for (int k = 0; k < F->n_imports; k++)
    suggest_walk(m, F->imports[k], name, best, bestd);
}

/* Suggestions scan every visible name: only for the first few unknown
 * names, so a file full of them stays linear. */
#define SEMA_MAX_SUGGEST 64

static void did_you_mean(sema *S, env *E, const char *name, src_span sp) {
  if (++S->n_suggest > SEMA_MAX_SUGGEST) return;
  const char *best = NULL;
  int bestd = 99;
  for (int k = 0; k < E->n; k++) consider(name, E->b[k].p->name, &best, &bestd);
  for (int k = 0; k < N_BUILTINS; k++)
    if (builtins[k].kind != B_TYPE) consider(name, builtins[k].name, &best, &bestd);
  S->m->gen++;
  suggest_walk(S->m, E->file, name, &best, &bestd);
  if (best) note(S, sp, "did you mean '%s'?", best);
}

/* ---- node construction and folding ---------------------------------- */

static ir_node *count(sema *S, ir_node *n) {
  if (!n) {
    if (!S->stop) err(S, SPAN_NONE, "out of memory");
    S->stop = true;
    return NULL;
  }
  if (++S->n_nodes > SEMA_MAX_NODES && !S->stop) {
    err(S, n->span, "pattern too large after inlining (more than %d nodes)",
        SEMA_MAX_NODES);
    S->stop = true;
  }
  return n;
}

static ir_node *mk(sema *S, ir_op op, int n, src_span sp) {
  return count(S, ir_new(S->a, op, n, sp));
}
static ir_node *mkc(sema *S, int64_t v, src_span sp) {
  return count(S, ir_const(S->a, v, sp));
}
static ir_node *mk1(sema *S, ir_op op, ir_node *a, src_span sp) {
  return count(S, ir_new1(S->a, op, a, sp));
}
static ir_node *mk2(sema *S, ir_op op, ir_node *a, ir_node *b, src_span sp) {
  return count(S, ir_new2(S->a, op, a, b, sp));
}
static ir_node *mk3(sema *S, ir_op op, ir_node *a, ir_node *b, ir_node *c,
                    src_span sp) {
  return count(S, ir_new3(S->a, op, a, b, c, sp));
}

static ir_node *clone(sema *S, const ir_node *n) {
  if (!n) return NULL;
  ir_node *c = mk(S, n->op, n->n_kids, n->span);
  if (!c) return NULL;
  c->value = n->value;
  c->fvalue = n->fvalue;
  for (int k = 0; k < n->n_kids; k++) {
    c->kids[k] = clone(S, n->kids[k]);
    if (!c->kids[k]) return NULL;
  }
  return c;
}

static bool is_const(const ir_node *n) { return n && n->op == IR_CONST; }

/* Folds an integer op over constant kids.  Returns false (and reports in
 * instantiate mode) on overflow or division by zero; *out untouched then. */
static bool fold(sema *S, ir_op op, int64_t a, int64_t b, src_span sp,
                 int64_t *out) {
  int64_t r = 0;
  bool ovf = false;
  switch (op) {
  case IR_NEG: ovf = ar_neg(a, &r) != AR_OK; break;
  case IR_ABS: ovf = ar_abs(a, &r) != AR_OK; break;
  case IR_NOT: r = !a; break;
  case IR_ADD: ovf = ar_add(a, b, &r) != AR_OK; break;
  case IR_SUB: ovf = ar_sub(a, b, &r) != AR_OK; break;
  case IR_MUL: ovf = ar_mul(a, b, &r) != AR_OK; break;
  case IR_DIV:
  case IR_MOD:
    if (b == 0) {
      if (S->inst)
        err(S, sp, "%s by zero in a constant expression",
            op == IR_DIV ? "division" : "remainder");
      return false;
    }
    ovf = (op == IR_DIV ? ar_div(a, b, &r) : ar_mod(a, b, &r)) != AR_OK;
    break;
  case IR_MIN: r = a < b ? a : b; break;
  case IR_MAX: r = a > b ? a : b; break;
  case IR_LT: r = a < b; break;
  case IR_LE: r = a <= b; break;
  case IR_GT: r = a > b; break;
  case IR_GE: r = a >= b; break;
  case IR_EQ: r = a == b; break;
  case IR_NE: r = a != b; break;
  case IR_LAND: r = a && b; break;
  case IR_LOR: r = a || b; break;
  case IR_IAND: r = a & b; break;
  case IR_IOR: r = a | b; break;
  case IR_IXOR: r = a ^ b; break;
  case IR_SHL:
  case IR_SHR: {
    ar_status st = op == IR_SHL ? ar_shl(a, b, &r) : ar_shr(a, b, &r);
    if (st == AR_SHIFT) {
      if (S->inst)
        err(S, sp, "shift count %" PRId64 " is outside [0, 63] in a constant expression", b);
      return false;
    }
    ovf = st != AR_OK;
    break;
  }
  default: return false;
  }
  if (ovf) {
    if (S->inst) err(S, sp, "integer overflow in a constant expression");
    return false;
  }
  *out = r;
  return true;
}

/* An integer op node, folded when its operands are constant. */
static val int_op(sema *S, ir_op op, val a, val b, src_span sp) {
  int nk = op == IR_NEG || op == IR_NOT || op == IR_ABS ? 1 : 2;
  val r = {NULL, T_INT, a.where_only || (nk == 2 && b.where_only), SPAN_NONE, NULL};
  r.where_span = a.where_only ? a.where_span : b.where_span;
  if (is_const(a.n) && (nk == 1 || is_const(b.n))) {
    int64_t v;
    if (fold(S, op, a.n->value, nk == 2 ? b.n->value : 0, sp, &v)) {
      r.n = mkc(S, v, sp);
      return r;
    }
    if (S->inst) return bad(S);
  }
  r.n = nk == 1 ? mk1(S, op, a.n, sp) : mk2(S, op, a.n, b.n, sp);
  if (!r.n) return bad(S);
  return r;
}

/* ---- floats (score expressions) ------------------------------------- */

static bool is_fconst(const ir_node *n) { return n && n->op == IR_FCONST; }

static ir_node *mkf(sema *S, double v, src_span sp) {
  ir_node *n = mk(S, IR_FCONST, 0, sp);
  if (n) n->fvalue = v;
  return n;
}

/* An integer or a float as a float (an integer converted). */
static val to_flt(sema *S, val a, src_span sp) {
  if (a.t == T_FLT || a.t == T_ERR) return a;
  val r = a;
  r.t = T_FLT;
  r.n = S->inst && is_const(a.n) ? mkf(S, (double)a.n->value, sp)
                                 : mk1(S, IR_FCVT, a.n, sp);
  return r.n ? r : bad(S);
}

static double fold_f(ir_op op, double x, double y) {
  switch (op) {
  case IR_FNEG: return -x;
  case IR_FABS: return fabs(x);
  case IR_FEXP: return exp(x);
  case IR_FLOG: return log(x);
  case IR_FSQRT: return sqrt(x);
  case IR_FTANH: return tanh(x);
  case IR_FADD: return x + y;
  case IR_FSUB: return x - y;
  case IR_FMUL: return x * y;
  case IR_FDIV: return x / y;
  case IR_FMIN: return x < y || isnan(y) ? x : y;
  default: return x > y || isnan(y) ? x : y;
  }
}

static bool unary_f(ir_op op) {
  return op == IR_FNEG || op == IR_FABS || op == IR_FEXP || op == IR_FLOG ||
         op == IR_FSQRT || op == IR_FTANH;
}

/* A float op (integer operands converted), folded when constant. */
static val flt_op(sema *S, ir_op op, val a, val b, src_span sp) {
  bool un = unary_f(op);
  a = to_flt(S, a, sp);
  if (!un) b = to_flt(S, b, sp);
  if (a.t == T_ERR || (!un && b.t == T_ERR)) return bad(S);
  val r = {NULL, T_FLT, a.where_only || (!un && b.where_only), SPAN_NONE, NULL};
  r.where_span = a.where_only ? a.where_span : b.where_span;
  if (S->inst && is_fconst(a.n) && (un || is_fconst(b.n)))
    r.n = mkf(S, fold_f(op, a.n->fvalue, un ? 0 : b.n->fvalue), sp);
  else
    r.n = un ? mk1(S, op, a.n, sp) : mk2(S, op, a.n, b.n, sp);
  return r.n ? r : bad(S);
}

/* ---- the translator ------------------------------------------------- */

static val tr(sema *S, env *E, ast_node *e, bool in_where);
static void check_name(sema *S, const char *name, src_span sp);

static val tr_int(sema *S, env *E, ast_node *e, bool in_where, const char *what) {
  val v = tr(S, E, e, in_where);
  if (v.t == T_ERR) return v;
  if (v.t != T_INT) {
    err(S, e->span, "%s must be an integer, but this is %s", what, ty_name(v.t));
    return bad(S);
  }
  return v;
}

static val tr_pat(sema *S, env *E, ast_node *e, const char *what) {
  val v = tr(S, E, e, false);
  if (v.t == T_ERR) return v;
  if (v.t != T_PAT) {
    err(S, e->span, "%s must be a pattern, but this is %s", what, ty_name(v.t));
    return bad(S);
  }
  return v;
}

static val placeholder(sema *S, ty t, src_span sp) {
  val v = {NULL, t, false, SPAN_NONE, NULL};
  if (t == T_INT) {
    v.n = mk(S, IR_RUNTIME, 0, sp);
    if (v.n) v.n->value = -1;
  } else if (t == T_PAT) {
    v.n = mk(S, IR_FULL, 0, sp);
  } else if (t == T_FLT) {
    v.n = mkf(S, 0, sp);
  } else {
    return bad(S);
  }
  if (!v.n) return bad(S);
  return v;
}

static const char *decl_kind_name(const ast_decl *d) {
  switch (d->kind) {
  case AST_D_LET: return "let";
  case AST_D_PATTERN: return "pattern";
  case AST_D_EXTERN: return "extern function";
  case AST_D_FUNC: return "function";
  default: return "import";
  }
}

/* ---- sharing expansions ---------------------------------------------
 * In instantiate mode a let, or a call of a pattern whose arguments are
 * constants, expands to the same IR wherever it is used (its body is
 * translated in its own scope), so the expansion is made once per
 * instantiation and shared: the IR becomes a DAG whose size is linear in
 * the source (lets that double per level no longer double the IR).  Not
 * shared: expansions containing topk (its selections are per node and per
 * granularity).  Besides the value, a memo keeps the table merges the
 * expansion made (runtime scalars, inputs, externs), replayed at each
 * reuse, so conflicts are found exactly as if it were translated again,
 * and the count of nodes it stands for, so SEMA_MAX_NODES still bounds the
 * expanded tree (what the interpreter walks). */

typedef struct memo_item {
  ast_param *p;        /* a runtime scalar or input merged, or */
  ast_decl *ext;       /* an extern merged */
  int64_t deflt;
  bool has_deflt;
  src_span use;
  const ir_input *in;  /* an input: its type and dimensions */
} memo_item;

typedef struct memo {
  struct memo *next;
  unsigned gen;
  int n_keys;          /* call: the constant arguments by parameter slot */
  const int64_t *key;
  const unsigned char *given;
  val v;               /* T_ERR: the expansion failed (reported) */
  long size;           /* IR nodes the expansion counted */
  memo_item *items;
  int n_items;
} memo;

typedef struct recorder {
  struct recorder *up;
  memo_item *items;
  int n, cap;
} recorder;

static void rec_item(sema *S, memo_item it) {
  recorder *R = S->rec;
  if (!R) return;
  if (R->n == R->cap) {
    int cap = R->cap ? 2 * R->cap : 4;
    memo_item *v = arena_alloc(S->a, sizeof *v * (size_t)cap);
    if (!v) {
      S->gen = 0; /* no memory for the record: stop memoising */
      return;
    }
    if (R->n) memcpy(v, R->items, sizeof *v * (size_t)R->n);
    R->items = v, R->cap = cap;
  }
  R->items[R->n++] = it;
}

static void rec_begin(sema *S, recorder *R) {
  memset(R, 0, sizeof *R);
  R->up = S->rec;
  S->rec = R;
}

/* Ends R, passing its merges to the enclosing record. */
static void rec_end(sema *S, recorder *R) {
  S->rec = R->up;
  for (int k = 0; k < R->n; k++) rec_item(S, R->items[k]);
}

static memo *memo_find(sema *S, ast_decl *d, int n_keys, const int64_t *key,
                       const unsigned char *given) {
  if (!S->gen) return NULL;
  /* the list holds one generation (memo_store drops older ones) */
  for (memo *m = d->memo; m && m->gen == S->gen; m = m->next) {
    if (m->n_keys != n_keys) continue;
    bool same = true;
    for (int q = 0; q < n_keys && same; q++)
      same = m->given[q] == given[q] && (!given[q] || m->key[q] == key[q]);
    if (same) return m;
  }
  return NULL;
}

static void memo_store(sema *S, ast_decl *d, int n_keys, const int64_t *key,
                       const unsigned char *given, val v, long size,
                       const recorder *R) {
  if (!S->gen || S->stop) return;
  if (v.t != T_ERR && ir_has_op(v.n, IR_TOPK)) return;
  if (d->memo && ((memo *)d->memo)->gen != S->gen) d->memo = NULL;
  int n_here = 0; /* a few argument tuples per pattern; more are not kept */
  for (memo *m = d->memo; m; m = m->next) n_here++;
  if (n_here >= 8) return;
  memo *m = arena_alloc(S->a, sizeof *m);
  int64_t *k = n_keys ? arena_alloc(S->a, sizeof *k * (size_t)n_keys) : NULL;
  unsigned char *g = n_keys ? arena_alloc(S->a, (size_t)n_keys) : NULL;
  memo_item *it = R->n ? arena_alloc(S->a, sizeof *it * (size_t)R->n) : NULL;
  if (!m || (n_keys && (!k || !g)) || (R->n && !it)) return;
  if (n_keys) memcpy(k, key, sizeof *k * (size_t)n_keys), memcpy(g, given, (size_t)n_keys);
  if (R->n) memcpy(it, R->items, sizeof *it * (size_t)R->n);
  *m = (memo){d->memo, S->gen, n_keys, k, g, v, size, it, R->n};
  d->memo = m;
}

static int merge_param(sema *S, ast_param *p, int64_t deflt, bool has_deflt,
                       const ir_input *in);
static int merge_extern(sema *S, ast_decl *d, src_span use);

/* A reuse: the merges again, the nodes counted again, the same value. */
static val memo_reuse(sema *S, const memo *m, src_span sp) {
  for (int k = 0; k < m->n_items; k++) {
    const memo_item *it = &m->items[k];
    int r = it->p ? merge_param(S, it->p, it->deflt, it->has_deflt, it->in)
                  : merge_extern(S, it->ext, it->use);
    if (r < 0) return bad(S);
  }
  if (m->v.t == T_ERR) return bad(S);
  S->n_nodes += m->size;
  if (S->n_nodes > SEMA_MAX_NODES && !S->stop) {
    err(S, sp, "pattern too large after inlining (more than %d nodes)",
        SEMA_MAX_NODES);
    S->stop = true;
    return bad(S);
  }
  return m->v;
}

static void check_let(sema *S, ast_decl *d);

/* A reference to a top-level let. */
static val let_ref(sema *S, ast_decl *d, src_span sp, bool in_where) {
  if (!S->inst) {
    if (d->state == 1) {
      err(S, sp, "'%s' is defined in terms of itself", d->name);
      note(S, d->name_span, "'%s' declared here", d->name);
      return bad(S);
    }
    if (d->state == 0) check_let(S, d);
    if (d->type == T_ERR) return bad(S);
    if (d->where_only && !in_where) {
      err(S, sp, "'%s' can only be used inside where(...)", d->name);
      note(S, d->where_span, "because of this use");
      return bad(S);
    }
    val v = placeholder(S, (ty)d->type, sp);
    v.where_only = d->where_only;
    v.where_span = sp;
    return v;
  }
  if (d->bad) return bad(S);
  if (d->has_value) {
    ir_node *c = mkc(S, d->value, sp);
    return c ? (val){c, T_INT, false, SPAN_NONE, NULL} : bad(S);
  }
  if (d->active) {
    err(S, sp, "'%s' is defined in terms of itself", d->name);
    return bad(S);
  }
  memo *m = memo_find(S, d, 0, NULL, NULL);
  val v;
  if (m) {
    v = memo_reuse(S, m, sp);
  } else {
    d->active = true;
    env G = {d->file, NULL, 0, false, NULL, NULL};
    push_frame(S, "let ", d->name, sp);
    recorder R;
    rec_begin(S, &R);
    long n0 = S->n_nodes;
    v = tr(S, &G, d->body, true);
    rec_end(S, &R);
    S->n_frames--;
    d->active = false;
    if (v.t == T_ERR || !is_const(v.n))
      memo_store(S, d, 0, NULL, NULL, v, S->n_nodes - n0, &R);
  }
  if (v.t == T_ERR) return v;
  if (is_const(v.n)) {
    v.n->span = sp;
    d->has_value = true;  /* lets are pure: the same value everywhere */
    d->value = v.n->value;
  }
  if (v.where_only && !in_where) {
    err(S, sp, "'%s' can only be used inside where(...)", d->name);
    return bad(S);
  }
  return v;
}

static bool same_ir(const ir_node *a, const ir_node *b) {
  if (a == b) return true;
  if (!a || !b || a->op != b->op || a->value != b->value || a->n_kids != b->n_kids ||
      a->fvalue != b->fvalue)
    return false;
  for (int k = 0; k < a->n_kids; k++)
    if (!same_ir(a->kids[k], b->kids[k])) return false;
  return true;
}

static bool same_shape(const ir_input *x, const ir_input *y) {
  if (x->is_float != y->is_float || x->n_dims != y->n_dims) return false;
  for (int d = 0; d < x->n_dims; d++)
    if (!same_ir(x->dims[d], y->dims[d])) return false;
  return true;
}

/* Merges a runtime scalar or input array (in: its shape) into the
 * program's tables. */
static int merge_param(sema *S, ast_param *p, int64_t deflt, bool has_deflt,
                       const ir_input *in) {
  bool is_rt = p->kind == AST_PARAM_RUNTIME;
  rec_item(S, (memo_item){p, NULL, deflt, has_deflt, SPAN_NONE, in});
  for (int k = 0; k < S->n_params; k++)
    if (!strcmp(S->params[k].name, p->name)) {
      err(S, p->span, "%s '%s' has the name of a compile-time parameter of the pattern",
          is_rt ? "runtime scalar" : "input array", p->name);
      return -1;
    }
  for (int k = 0; k < S->n_rt; k++)
    if (!strcmp(S->rt[k].name, p->name)) {
      if (!is_rt) {
        err(S, p->span, "'%s' is an input array here but a runtime scalar elsewhere",
            p->name);
        note(S, S->rt_e[k].p->span, "'%s' declared as a runtime scalar here", p->name);
        return -1;
      }
      if (has_deflt && !S->rt[k].has_deflt) {
        S->rt[k].deflt = deflt;
        S->rt[k].has_deflt = true;
      }
      return k;
    }
  for (int k = 0; k < S->n_in; k++)
    if (!strcmp(S->in[k].name, p->name)) {
      if (is_rt) {
        err(S, p->span, "'%s' is a runtime scalar here but an input array elsewhere",
            p->name);
        note(S, S->in_e[k].p->span, "'%s' declared as an input array here", p->name);
        return -1;
      }
      if (in && !same_shape(in, &S->in[k])) {
        err(S, p->span, "input '%s' is declared here with another type or shape "
            "than elsewhere in the pattern", p->name);
        note(S, S->in_e[k].p->span, "'%s' declared here", p->name);
        return -1;
      }
      return k;
    }
  for (int k = 0; k < S->n_ex; k++)
    if (!strcmp(S->ex[k].name, p->name)) {
      err(S, p->span, "'%s' is also the name of an extern function used by the pattern",
          p->name);
      return -1;
    }
  if (is_rt) {
    if (S->n_rt == S->cap_rt) {
      int cap = S->cap_rt ? 2 * S->cap_rt : 8;
      ir_runtime *v = arena_alloc(S->a, sizeof *v * (size_t)cap);
      table_entry *e = arena_alloc(S->a, sizeof *e * (size_t)cap);
      if (!v || !e) return -1;
      if (S->n_rt) {
        memcpy(v, S->rt, sizeof *v * (size_t)S->n_rt);
        memcpy(e, S->rt_e, sizeof *e * (size_t)S->n_rt);
      }
      S->rt = v, S->rt_e = e, S->cap_rt = cap;
    }
    S->rt[S->n_rt] = (ir_runtime){p->name, deflt, has_deflt};
    S->rt_e[S->n_rt] = (table_entry){p, NULL};
    return S->n_rt++;
  }
  if (S->n_in == S->cap_in) {
    int cap = S->cap_in ? 2 * S->cap_in : 8;
    ir_input *v = arena_alloc(S->a, sizeof *v * (size_t)cap);
    table_entry *e = arena_alloc(S->a, sizeof *e * (size_t)cap);
    if (!v || !e) return -1;
    if (S->n_in) {
      memcpy(v, S->in, sizeof *v * (size_t)S->n_in);
      memcpy(e, S->in_e, sizeof *e * (size_t)S->n_in);
    }
    S->in = v, S->in_e = e, S->cap_in = cap;
  }
  S->in[S->n_in] = in ? *in : (ir_input){p->name, false, 0, NULL};
  S->in[S->n_in].name = p->name;
  S->in_e[S->n_in] = (table_entry){p, NULL};
  return S->n_in++;
}

static int merge_extern(sema *S, ast_decl *d, src_span use) {
  rec_item(S, (memo_item){NULL, d, 0, false, use, NULL});
  for (int k = 0; k < S->n_ex; k++)
    if (S->ex_e[k].ext == d) return k;
  for (int k = 0; k < S->n_rt; k++)
    if (!strcmp(S->rt[k].name, d->name)) {
      err(S, use, "extern function '%s' has the name of a runtime scalar of the pattern",
          d->name);
      return -1;
    }
  for (int k = 0; k < S->n_in; k++)
    if (!strcmp(S->in[k].name, d->name)) {
      err(S, use, "extern function '%s' has the name of an input array of the pattern",
          d->name);
      return -1;
    }
  if (S->n_ex == S->cap_ex) {
    int cap = S->cap_ex ? 2 * S->cap_ex : 4;
    ir_extern *v = arena_alloc(S->a, sizeof *v * (size_t)cap);
    table_entry *e = arena_alloc(S->a, sizeof *e * (size_t)cap);
    if (!v || !e) return -1;
    if (S->n_ex) {
      memcpy(v, S->ex, sizeof *v * (size_t)S->n_ex);
      memcpy(e, S->ex_e, sizeof *e * (size_t)S->n_ex);
    }
    S->ex = v, S->ex_e = e, S->cap_ex = cap;
  }
  S->ex[S->n_ex] = (ir_extern){d->name, d->n_args};
  S->ex_e[S->n_ex] = (table_entry){NULL, d};
  return S->n_ex++;
}

static void list_params(sema *S, ast_decl *d) {
  char buf[400];
  size_t n = 0;
  int shown = 0;
  buf[0] = 0;
  for (int k = 0; k < d->n_params && n < sizeof buf - 64; k++) {
    if (d->params[k]->kind != AST_PARAM_CT) continue;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s'%s'", shown ? ", " : "",
                          d->params[k]->name);
    shown++;
  }
  if (shown)
    note(S, d->name_span, "the compile-time parameters of '%s' are %s", d->name, buf);
  else
    note(S, d->name_span, "'%s' has no compile-time parameters", d->name);
}

static val call_body(sema *S, ast_decl *d, src_span sp, int np, ir_node **vals,
                     bool top);

static bool input_is_float(const ast_param *p) { return !strcmp(p->type, "float"); }

/* An input's element type and dimensions, translated in the scope of the
 * parameters before it (instantiate mode); int[] is int[Lk].  NULL after an
 * error. */
static const ir_input *input_shape(sema *S, env *C, ast_param *p) {
  ir_input *in = arena_alloc(S->a, sizeof *in);
  int nd = p->n_dims ? p->n_dims : 1;
  ir_node **dims = arena_alloc(S->a, sizeof *dims * (size_t)nd);
  if (!in || !dims) return NULL;
  *in = (ir_input){p->name, input_is_float(p), nd, dims};
  if (!p->n_dims) {
    dims[0] = mk(S, IR_SIZE_LK, 0, p->span);
    return dims[0] ? in : NULL;
  }
  bool ok = true;
  S->in_dims = true;
  for (int d = 0; d < nd; d++) {
    val v = tr_int(S, C, p->dims[d], false, "an input dimension");
    if (v.t == T_ERR) ok = false;
    dims[d] = v.n;
  }
  S->in_dims = false;
  return ok ? in : NULL;
}

/* A call of pattern d: checks the arguments against its parameters; in
 * instantiate mode binds them (arguments, then defaults), merges its runtime
 * scalars and input arrays into the tables and translates its body.
 * call: the call expression, NULL for a bare name (every default). */
static val call_pattern(sema *S, env *E, ast_decl *d, ast_node *call, src_span sp) {
  bool top = S->call_top; /* a call at the top may carry the callee's score */
  S->call_top = false;
  int np = d->n_params;
  ast_node **given = np ? arena_alloc(S->a, sizeof(ast_node *) * (size_t)np) : NULL;
  if (np && !given) return bad(S);
  bool ok = true;
  int n_items = call ? call->n_items : 0;
  int pos = 0;
  for (int k = 0; k < n_items; k++) {
    ast_node *it = call->items[k];
    int slot = -1;
    if (it->kind == AST_ARG) {
      for (int q = 0; q < np; q++)
        if (!strcmp(d->params[q]->name, it->name)) slot = q;
      if (slot < 0) {
        err(S, it->name_span, "pattern '%s' has no parameter '%s'", d->name, it->name);
        list_params(S, d);
        ok = false;
        continue;
      }
      if (d->params[slot]->kind != AST_PARAM_CT) {
        err(S, it->name_span, "'%s' is %s of '%s'; only compile-time parameters "
            "can be bound in a call", it->name,
            d->params[slot]->kind == AST_PARAM_RUNTIME ? "a runtime scalar"
                                                       : "an input array",
            d->name);
        note(S, d->params[slot]->span, "'%s' declared here", it->name);
        ok = false;
        continue;
      }
    } else {
      if (it->kind == AST_RANGE) {
        err(S, it->span, "a range is only allowed as an argument of rows, cols or global");
        ok = false;
        continue;
      }
      while (pos < np && d->params[pos]->kind != AST_PARAM_CT) pos++;
      if (pos >= np) {
        int n_ct = 0;
        for (int q = 0; q < np; q++) n_ct += d->params[q]->kind == AST_PARAM_CT;
        err(S, it->span, "too many arguments to '%s' (it takes %d)", d->name, n_ct);
        note(S, d->name_span, "'%s' declared here", d->name);
        ok = false;
        break;
      }
      slot = pos++;
    }
    if (given[slot]) {
      err(S, it->span, "parameter '%s' of '%s' is given twice", d->params[slot]->name,
          d->name);
      ok = false;
      continue;
    }
    given[slot] = it->kind == AST_ARG ? it->a : it;
  }

  /* Translate the given values in the caller's scope. */
  ir_node **vals = np ? arena_alloc(S->a, sizeof(ir_node *) * (size_t)np) : NULL;
  if (np && !vals) return bad(S);
  for (int q = 0; q < np; q++) {
    if (!given[q]) continue;
    val v = tr_int(S, E, given[q], false, "an argument of a pattern");
    if (v.t == T_ERR) ok = false;
    vals[q] = v.n;
  }
  for (int q = 0; q < np; q++)
    if (d->params[q]->kind == AST_PARAM_CT && !given[q] && !d->params[q]->deflt) {
      err(S, call ? call->span : sp, "missing value for parameter '%s' of '%s'",
          d->params[q]->name, d->name);
      note(S, d->params[q]->span, "'%s' declared here without a default",
           d->params[q]->name);
      ok = false;
    }
  if (!ok) return bad(S);
  if (!S->inst) return placeholder(S, T_PAT, sp);

  if (d->bad) return bad(S);
  if (d->active) {
    err(S, sp, "pattern '%s' calls itself; recursion is not allowed", d->name);
    note(S, d->name_span, "'%s' declared here", d->name);
    return bad(S);
  }
  /* Shared when every argument given is a constant. */
  int64_t *key = np ? arena_alloc(S->a, sizeof *key * (size_t)np) : NULL;
  unsigned char *has = np ? arena_alloc(S->a, (size_t)np) : NULL;
  bool share = !np || (key && has);
  for (int q = 0; q < np && share; q++) {
    has[q] = given[q] != NULL;
    if (given[q] && !is_const(vals[q])) share = false;
    else key[q] = given[q] ? vals[q]->value : 0;
  }
  if (top) share = false; /* once per pattern; never shared with a non-top use */
  memo *m = share ? memo_find(S, d, np, key, has) : NULL;
  if (m) return memo_reuse(S, m, sp);
  recorder R;
  rec_begin(S, &R);
  long n0 = S->n_nodes;
  val r = call_body(S, d, sp, np, vals, top);
  rec_end(S, &R);
  if (share) memo_store(S, d, np, key, has, r, S->n_nodes - n0, &R);
  return r;
}

/* The rest of a call in instantiate mode: binds the parameters (vals[q]: the
 * argument given, or NULL for the default) and translates the body. */
static val call_body(sema *S, ast_decl *d, src_span sp, int np, ir_node **vals,
                     bool top) {
  bool ok = true;
  binding *b = np ? arena_alloc(S->a, sizeof(binding) * (size_t)np) : NULL;
  if (np && !b) return bad(S);
  env C = {d->file, b, 0, true, d, NULL};
  push_frame(S, "", d->name, sp);
  for (int q = 0; q < np && ok; q++) {
    ast_param *p = d->params[q];
    b[q].p = p;
    if (p->kind == AST_PARAM_CT) {
      if (vals[q]) {
        b[q].value = vals[q];
      } else {
        val v = tr_int(S, &C, p->deflt, false, "a parameter default");
        if (v.t == T_ERR) ok = false;
        b[q].value = v.n;
      }
    } else if (p->kind == AST_PARAM_RUNTIME) {
      int64_t dv = 0;
      bool has = false;
      if (p->deflt) {
        val v = tr_int(S, &C, p->deflt, false, "a runtime default");
        if (v.t == T_ERR) {
          ok = false;
        } else if (!is_const(v.n)) {
          err(S, p->deflt->span, "the default of runtime scalar '%s' must be a constant",
              p->name);
          ok = false;
        } else {
          dv = v.n->value, has = true;
        }
      }
      if (ok && (b[q].index = merge_param(S, p, dv, has, NULL)) < 0) ok = false;
    } else {
      C.n = q;
      const ir_input *in = input_shape(S, &C, p);
      if (!in || (b[q].index = merge_param(S, p, 0, false, in)) < 0) ok = false;
    }
    C.n = q + 1;
  }
  if (!ok) {
    S->n_frames--;
    return bad(S);
  }
  C.defaults = false;
  d->active = true;
  S->score_top = top;
  val r = tr_pat(S, &C, d->body, "the body of a pattern");
  d->active = false;
  S->n_frames--;
  return r;
}

/* A row of an int input standing as index-set items (NULL, *ok untouched:
 * not one): x[e1, .., e{n-1}], or x itself when x has one dimension. */
static ir_node *input_row(sema *S, env *E, ast_node *it, bool *ok) {
  if (it->kind != AST_INDEX && it->kind != AST_NAME) return NULL;
  binding *b = find_binding(E, it->name);
  if (!b || b->p->kind != AST_PARAM_INPUT || input_is_float(b->p)) return NULL;
  int nd = b->p->n_dims ? b->p->n_dims : 1;
  int ni = it->kind == AST_INDEX ? it->n_items : 0;
  if (ni != nd - 1) return NULL;
  ir_node *n = mk(S, IR_INROW, ni, it->span);
  if (!n) return *ok = false, NULL;
  for (int k = 0; k < ni; k++) {
    val x = tr_int(S, E, it->items[k], false, "an array index");
    if (x.t == T_ERR) return *ok = false, NULL;
    n->kids[k] = x.n;
  }
  n->value = S->inst ? b->index : -1;
  return n;
}

/* An index-set argument: a range, a {...} list or one integer. */
static val tr_set(sema *S, env *E, ast_node *e) {
  ast_node **items = &e;
  int n = 1;
  if (e->kind == AST_SET) items = e->items, n = e->n_items;
  ir_node *set = mk(S, IR_SET, n, e->span);
  if (!set) return bad(S);
  bool ok = true;
  for (int k = 0; k < n; k++) {
    ast_node *it = items[k];
    if (it->kind == AST_RANGE) {
      val a = tr_int(S, E, it->a, false, "a range bound");
      val b = tr_int(S, E, it->b, false, "a range bound");
      if (a.t == T_ERR || b.t == T_ERR) {
        ok = false;
        continue;
      }
      set->kids[k] = mk2(S, IR_RANGE, a.n, b.n, it->span);
    } else if (it->kind == AST_SET) {
      err(S, it->span, "index sets cannot be nested");
      ok = false;
    } else if ((set->kids[k] = input_row(S, E, it, &ok)) || !ok) {
      /* a row of an int input */
    } else {
      val a = tr_int(S, E, it, false, "an index");
      if (a.t == T_ERR) {
        ok = false;
        continue;
      }
      set->kids[k] = a.n;
    }
    if (!set->kids[k]) ok = false;
  }
  if (!ok) return bad(S);
  return (val){set, T_SET, false, SPAN_NONE, NULL};
}

static bool check_min(sema *S, ir_node *n, int64_t min, const char *what) {
  if (!S->inst || !is_const(n) || n->value >= min) return true;
  err(S, n->span, "%s must be %s, got %" PRId64, what,
      min == 0 ? "non-negative" : "at least 1", n->value);
  return false;
}

/* min max abs clamp on integers or floats; exp log sqrt tanh on floats. */
static val tr_func_call(sema *S, env *E, const builtin *bi, ast_node *e,
                        bool in_where) {
  int n = e->n_items;
  val a[3] = {{0}, {0}, {0}};
  bool ok = true, flt = bi->args[0] == 'f';
  for (int k = 0; k < n; k++) {
    ast_node *it = e->items[k];
    if (it->kind == AST_RANGE || it->kind == AST_SET) {
      err(S, it->span, "an index set is only allowed as the argument of rows, cols or global");
      ok = false;
      continue;
    }
    a[k] = tr(S, E, it, in_where);
    if (a[k].t == T_ERR) {
      ok = false;
    } else if (a[k].t == T_FLT) {
      flt = true;
    } else if (a[k].t != T_INT) {
      err(S, it->span, "an argument of '%s' must be %s, but this is %s", bi->name,
          bi->args[0] == 'f' ? "a float or an integer" : "an integer", ty_name(a[k].t));
      ok = false;
    }
  }
  if (!ok) return bad(S);
  if (bi->op == IR_CLAMP) {
    if (flt) return flt_op(S, IR_FMIN, flt_op(S, IR_FMAX, a[0], a[1], e->span), a[2], e->span);
    return int_op(S, IR_MIN, int_op(S, IR_MAX, a[0], a[1], e->span), a[2], e->span);
  }
  if (!flt) return int_op(S, bi->op, a[0], n > 1 ? a[1] : a[0], e->span);
  ir_op op = bi->op == IR_MIN ? IR_FMIN : bi->op == IR_MAX ? IR_FMAX
             : bi->op == IR_ABS ? IR_FABS : (ir_op)bi->op;
  return flt_op(S, op, a[0], n > 1 ? a[1] : a[0], e->span);
}

/* route(C): C a float input [H, n, D] (checked on the declaration). */
static val tr_route(sema *S, env *E, ast_node *e) {
  ast_node *it = e->items[0];
  binding *b = it->kind == AST_NAME ? find_binding(E, it->name) : NULL;
  if (!b || b->p->kind != AST_PARAM_INPUT) {
    err(S, it->span, "the argument of route must be the name of an input float[H, n, D] "
        "of centroids");
    return bad(S);
  }
  ast_param *p = b->p;
  bool shape = input_is_float(p) && p->n_dims == 3 && p->dims[0]->kind == AST_NAME &&
               !strcmp(p->dims[0]->name, "H") && p->dims[2]->kind == AST_NAME &&
               !strcmp(p->dims[2]->name, "D");
  if (!shape) {
    err(S, it->span, "the centroids of route must be an input float[H, n, D] (n centroids "
        "of dimension D per head), but '%s' is not", p->name);
    note(S, p->type_span, "'%s' declared here", p->name);
    return bad(S);
  }
  if (S->in_blocks) {
    err(S, e->span, "route works on tokens and cannot be used inside blocks");
    return bad(S);
  }
  ir_node *n = mk(S, IR_ROUTE, 0, e->span);
  if (!n) return bad(S);
  n->value = S->inst ? b->index : -1;
  return (val){n, T_PAT, false, SPAN_NONE, NULL};
}

static val tr_builtin_call(sema *S, env *E, const builtin *bi, ast_node *e,
                           bool in_where) {
  int n = e->n_items;
  for (int k = 0; k < n; k++)
    if (e->items[k]->kind == AST_ARG) {
      err(S, e->items[k]->name_span, "'%s' takes no named arguments%s", bi->name,
          bi->op == IR_WHERE ? " (use '==' to compare)" : "");
      return bad(S);
    }
  if (n < bi->min || n > bi->max) {
    if (bi->args[0] == 's' && n > 1)
      err(S, e->span, "'%s' takes 1 argument, got %d (write several indices as "
          "a list: %s({a, b .. c}))", bi->name, n, bi->name);
    else if (bi->min == bi->max)
      err(S, e->span, "'%s' takes %d argument%s, got %d", bi->name, bi->min,
          bi->min == 1 ? "" : "s", n);
    else
      err(S, e->span, "'%s' takes %d or %d arguments, got %d", bi->name, bi->min,
          bi->max, n);
    return bad(S);
  }
  if (bi->kind == B_FUNC) return tr_func_call(S, E, bi, e, in_where);
  if (bi->op == IR_ROUTE) return tr_route(S, E, e);
  val a[2] = {{0}, {0}};
  bool ok = true;
  for (int k = 0; k < n; k++) {
    ast_node *it = e->items[k];
    char kind = bi->args[k];
    if (kind != 's' && (it->kind == AST_RANGE || it->kind == AST_SET)) {
      err(S, it->span, "an index set is only allowed as the argument of rows, cols or global");
      ok = false;
      continue;
    }
    if (kind == 'i')
      a[k] = tr_int(S, E, it, false, "a size");
    else if (kind == 'w')
      a[k] = tr_int(S, E, it, true, "the predicate of where");
    else if (kind == 'p')
      a[k] = tr_pat(S, E, it, "the second argument of topk");
    else
      a[k] = tr_set(S, E, it);
    if (a[k].t == T_ERR) ok = false;
  }
  if (!ok) return bad(S);

  val r = {NULL, T_PAT, false, SPAN_NONE, NULL};
  switch (bi->op) {
  case IR_WINDOW:
    if (!check_min(S, a[0].n, 0, "a window size") ||
        (n > 1 && !check_min(S, a[1].n, 0, "a window size")))
      return bad(S);
    r.n = mk2(S, IR_WINDOW, a[0].n, n > 1 ? a[1].n : clone(S, a[0].n), e->span);
    break;
  case IR_DILATED:
    if (!check_min(S, a[0].n, 0, "the dilated window size") ||
        !check_min(S, a[1].n, 1, "the dilation"))
      return bad(S);
    r.n = mk2(S, IR_DILATED, a[0].n, a[1].n, e->span);
    break;
  case IR_BLOCK:
  case IR_STRIDE:
    if (!check_min(S, a[0].n, 1, bi->op == IR_BLOCK ? "a block size" : "a stride"))
      return bad(S);
    r.n = mk1(S, bi->op, a[0].n, e->span);
    break;
  case IR_RANDOM:
    if (!check_min(S, a[0].n, 0, "the number of random keys")) return bad(S);
    r.n = mk2(S, IR_RANDOM, a[0].n, a[1].n, e->span);
    break;
  case IR_TOPK:
    if (!check_min(S, a[0].n, 0, "k of topk")) return bad(S);
    r.n = mk2(S, IR_TOPK, a[0].n, a[1].n, e->span);
    break;
  case IR_WHERE:
    if (S->inst && is_const(a[0].n))
      r.n = mk(S, a[0].n->value ? IR_FULL : IR_NONE, 0, e->span);
    else
      r.n = mk1(S, IR_WHERE, a[0].n, e->span);
    break;
  case IR_ROWS:
  case IR_COLS:
  case IR_GLOBAL:
  case IR_DIAG:
    r.n = mk1(S, bi->op, a[0].n, e->span);
    break;
  default:
    r.n = mk(S, bi->op, 0, e->span);
    break;
  }
  if (!r.n) return bad(S);
  return r;
}

/* A soft (version 2) builtin is hidden by a user name of the same name. */
static const builtin *visible_builtin(sema *S, env *E, ast_node *e) {
  const builtin *bi = find_builtin(e->name);
  if (bi && bi->soft && (find_binding(E, e->name) || resolve(S, E, e))) return NULL;
  return bi;
}

static val tr_var(sema *S, ast_node *e, const builtin *bi, bool in_where) {
  int op = bi->op;
  bool ij = op == IR_VAR_I || op == IR_VAR_J || op == IR_VAR_R;
  if (S->in_dims && (ij || op == IR_VAR_H || op == IR_VAR_B || op == IR_FSCORE)) {
    err(S, e->span, "an input dimension must be an integer expression of constants, "
        "compile-time parameters and the sizes B, H, Hkv, Lq, Lk, D; '%s' varies", e->name);
    return bad(S);
  }
  if (op == IR_FSCORE) {
    if (!S->in_score) {
      err(S, e->span, "'s' is the score and can only be used in a score expression "
          "(after 'with score')");
      return bad(S);
    }
    val v = {mk(S, IR_FSCORE, 0, e->span), T_FLT, true, e->span, NULL};
    return v.n ? v : bad(S);
  }
  if (op == IR_INF) {
    val v = {mkf(S, INFINITY, e->span), T_FLT, false, SPAN_NONE, NULL};
    return v.n ? v : bad(S);
  }
  if (ij && !in_where) {
    err(S, e->span, "'%s' can only be used inside where(...)%s", e->name,
        S->in_score ? "" : " or a score expression");
    return bad(S);
  }
  ir_node *n;
  if (op == IR_VAR_R && S->inst && !S->top_left) { /* r = i - max(Lk - Lq, 0) */
    ir_node *d = mk2(S, IR_SUB, mk(S, IR_SIZE_LK, 0, e->span), mk(S, IR_SIZE_LQ, 0, e->span),
                     e->span);
    n = mk2(S, IR_SUB, mk(S, IR_VAR_I, 0, e->span),
            mk2(S, IR_MAX, d, mkc(S, 0, e->span), e->span), e->span);
  } else {
    n = mk(S, op == IR_VAR_R ? IR_VAR_I : (ir_op)op, 0, e->span);
  }
  val v = {n, T_INT, ij, e->span, NULL};
  return v.n ? v : bad(S);
}

static val tr_call(sema *S, env *E, ast_node *e, bool in_where);

/* A name of let ... in: its value translated in the scope it was defined in
 * (instantiate mode), or its recorded type (check mode). */
static val local_ref(sema *S, binding *b, src_span sp, bool in_where) {
  if (b->is_fn) {
    err(S, sp, "'%s' is a function; call it with %d argument%s", b->p->name, b->n_lparams,
        b->n_lparams == 1 ? "" : "s");
    return bad(S);
  }
  if (!S->inst) {
    if (b->v.t == T_ERR) return bad(S);
    if (b->v.where_only && !in_where) {
      err(S, sp, "'%s' can only be used inside where(...)", b->p->name);
      note(S, b->v.where_span, "because of this use");
      return bad(S);
    }
    val v = placeholder(S, b->v.t, sp);
    v.where_only = b->v.where_only;
    v.where_span = sp;
    return v;
  }
  push_frame(S, "let ", b->p->name, sp);
  val v = tr(S, b->lenv, b->lbody, in_where);
  S->n_frames--;
  return v;
}

static val tr_name(sema *S, env *E, ast_node *e, bool in_where) {
  const builtin *bi = visible_builtin(S, E, e);
  if (bi) {
    switch (bi->kind) {
    case B_VAR: return tr_var(S, e, bi, in_where);
    case B_PRIM:
      if (bi->min == 0) {
        val v = {mk(S, bi->op, 0, e->span), T_PAT, false, SPAN_NONE, NULL};
        if (!v.n) return bad(S);
        return v;
      }
      err(S, e->span, "'%s' needs arguments", e->name);
      return bad(S);
    case B_FUNC:
      err(S, e->span, "'%s' needs arguments", e->name);
      return bad(S);
    default:
      err(S, e->span, "'%s' is a type name, not a value", e->name);
      return bad(S);
    }
  }
  binding *b = find_binding(E, e->name);
  if (b) {
    ast_param *p = b->p;
    if (p->kind == AST_PARAM_LOCAL) return local_ref(S, b, e->span, in_where);
    if (p->kind == AST_PARAM_ARG) {
      if (b->v.where_only && !in_where) {
        err(S, e->span, "'%s' can only be used inside where(...)", p->name);
        note(S, b->v.where_span, "because the argument uses this");
        return bad(S);
      }
      return b->v;
    }
    if (p->kind == AST_PARAM_INPUT) {
      err(S, e->span, "input array '%s' must be indexed, as in %s[i]", p->name, p->name);
      return bad(S);
    }
    if (S->in_dims && p->kind == AST_PARAM_RUNTIME) {
      err(S, e->span, "an input dimension cannot use runtime scalar '%s' (dimensions are "
          "expressions of constants, compile-time parameters and the sizes)", p->name);
      return bad(S);
    }
    if (E->defaults && p->kind == AST_PARAM_RUNTIME) {
      err(S, e->span, "a parameter default cannot use runtime scalar '%s'", p->name);
      return bad(S);
    }
    if (!S->inst) return placeholder(S, T_INT, e->span);
    if (p->kind == AST_PARAM_CT) {
      ir_node *c = clone(S, b->value);
      if (!c) return bad(S);
      if (is_const(c)) c->span = e->span;
      return (val){c, T_INT, false, SPAN_NONE, NULL};
    }
    ir_node *n = mk(S, IR_RUNTIME, 0, e->span);
    if (!n) return bad(S);
    n->value = b->index;
    return (val){n, T_INT, false, SPAN_NONE, NULL};
  }
  if (E->defaults && E->pattern) {
    for (int k = 0; k < E->pattern->n_params; k++)
      if (!strcmp(E->pattern->params[k]->name, e->name)) {
        err(S, e->span, "a parameter default can only use parameters declared before it");
        return bad(S);
      }
  }
  ast_decl *d = resolve(S, E, e);
  if (!d) {
    err(S, e->span, "unknown name '%s'", e->name);
    did_you_mean(S, E, e->name, e->span);
    return bad(S);
  }
  switch (d->kind) {
  case AST_D_LET: return let_ref(S, d, e->span, in_where);
  case AST_D_PATTERN: return call_pattern(S, E, d, NULL, e->span);
  case AST_D_FUNC:
    err(S, e->span, "'%s' is a function; call it with %d argument%s", d->name,
        d->n_params, d->n_params == 1 ? "" : "s");
    return bad(S);
  default:
    err(S, e->span, "extern function '%s' must be called with %d argument%s",
        d->name, d->n_args, d->n_args == 1 ? "" : "s");
    return bad(S);
  }
}

static void check_func(sema *S, ast_decl *d);

/* A call of an integer function: a top-level `let f(x) = ...;` (d) or a
 * local `let f(x) = ... in` (lb).  Arguments in the caller's scope; the body
 * inlined with its parameters bound to them. */
static val call_fn(sema *S, env *E, ast_node *e, bool in_where, ast_decl *d,
                   binding *lb) {
  const char *fname = d ? d->name : lb->p->name;
  int np = d ? d->n_params : lb->n_lparams;
  src_span decl_sp = d ? d->name_span : lb->p->span;
  val chk = {NULL, T_INT, false, SPAN_NONE, NULL};
  if (d && !S->inst) {
    if (d->state == 1) {
      err(S, e->name_span, "function '%s' calls itself; recursion is not allowed", fname);
      note(S, decl_sp, "'%s' declared here", fname);
      return bad(S);
    }
    if (d->state == 0) check_func(S, d);
    if (d->type == T_ERR) return bad(S);
    chk.where_only = d->where_only, chk.where_span = d->where_span;
  } else if (lb && !S->inst) {
    if (lb->v.t == T_ERR) return bad(S);
    chk = lb->v;
  }
  if (d && S->inst && d->active) {
    err(S, e->name_span, "function '%s' calls itself; recursion is not allowed", fname);
    note(S, decl_sp, "'%s' declared here", fname);
    return bad(S);
  }
  if (e->n_items != np) {
    err(S, e->span, "function '%s' takes %d argument%s, got %d", fname, np,
        np == 1 ? "" : "s", e->n_items);
    note(S, decl_sp, "'%s' declared here", fname);
    return bad(S);
  }
  binding *pb = np ? arena_alloc(S->a, sizeof *pb * (size_t)np) : NULL;
  ast_param *pp = np ? arena_alloc(S->a, sizeof *pp * (size_t)np) : NULL;
  if (np && (!pb || !pp)) return bad(S);
  bool ok = true;
  val res = chk;
  for (int k = 0; k < np; k++) {
    ast_node *it = e->items[k];
    memset(&pb[k], 0, sizeof pb[k]);
    pp[k] = (ast_param){.kind = AST_PARAM_ARG,
                        .name = d ? d->params[k]->name : lb->lparams[k]->name,
                        .span = d ? d->params[k]->span : lb->lparams[k]->span};
    pb[k].p = &pp[k];
    if (it->kind == AST_ARG || it->kind == AST_RANGE || it->kind == AST_SET) {
      err(S, it->span, "an argument of function '%s' must be an integer", fname);
      ok = false;
      continue;
    }
    val v = tr_int(S, E, it, in_where, "an argument of a function");
    if (v.t == T_ERR) ok = false;
    pb[k].v = v;
    if (v.where_only && !res.where_only) res.where_only = true, res.where_span = v.where_span;
  }
  if (!ok) return bad(S);
  if (!S->inst) {
    if (res.where_only && !in_where) {
      err(S, e->span, "'%s(...)' can only be used inside where(...)", fname);
      note(S, res.where_span, "because of this use");
      return bad(S);
    }
    val r = placeholder(S, T_INT, e->span);
    r.where_only = res.where_only, r.where_span = res.where_span;
    return r;
  }
  env F = {d ? d->file : E->file, pb, np, false, NULL, d ? NULL : lb->lenv};
  push_frame(S, "function ", fname, e->span);
  if (d) d->active = true;
  val r = tr_int(S, &F, d ? d->body : lb->lbody, in_where, "the value of a function");
  if (d) d->active = false;
  S->n_frames--;
  return r;
}

/* Check mode: a function body with its parameters as unknown integers. */
static val check_fn_body(sema *S, env *up, int file, ast_param **params,
                         ast_node **names, int np, ast_node *body) {
  binding *pb = np ? arena_alloc(S->a, sizeof *pb * (size_t)np) : NULL;
  ast_param *pp = np ? arena_alloc(S->a, sizeof *pp * (size_t)np) : NULL;
  if (np && (!pb || !pp)) return bad(S);
  for (int k = 0; k < np; k++) {
    const char *nm = params ? params[k]->name : names[k]->name;
    src_span sp = params ? params[k]->span : names[k]->span;
    check_name(S, nm, sp);
    for (int q = 0; q < k; q++)
      if (!strcmp(pp[q].name, nm)) err(S, sp, "parameter '%s' declared twice", nm);
    memset(&pb[k], 0, sizeof pb[k]);
    pp[k] = (ast_param){.kind = AST_PARAM_ARG, .name = nm, .span = sp};
    pb[k].p = &pp[k];
    pb[k].v = placeholder(S, T_INT, sp);
  }
  env F = {file, pb, np, false, NULL, up};
  val v = tr(S, &F, body, true);
  if (v.t != T_ERR && v.t != T_INT) {
    err(S, body->span, "a function must compute an integer, but this is %s", ty_name(v.t));
    return bad(S);
  }
  return v;
}

static void check_func(sema *S, ast_decl *d) {
  d->state = 1;
  val v = check_fn_body(S, NULL, d->file, d->params, NULL, d->n_params, d->body);
  d->type = v.t;
  d->where_only = v.where_only;
  d->where_span = v.where_span;
  d->state = 2;
}

static val tr_call(sema *S, env *E, ast_node *e, bool in_where) {
  const builtin *bi = visible_builtin(S, E, e);
  if (bi) {
    if (bi->kind == B_PRIM || bi->kind == B_FUNC)
      return tr_builtin_call(S, E, bi, e, in_where);
    err(S, e->name_span, "'%s' is %s, not a function", e->name,
        bi->kind == B_VAR ? "a variable" : "a type name");
    return bad(S);
  }
  binding *lb = find_binding(E, e->name);
  if (lb && lb->p->kind == AST_PARAM_LOCAL && lb->is_fn) return call_fn(S, E, e, in_where, NULL, lb);
  if (lb) {
    err(S, e->name_span, "'%s' is a %s; it cannot be called", e->name,
        lb->p->kind == AST_PARAM_LOCAL ? "local name without parameters" : "parameter");
    return bad(S);
  }
  ast_decl *d = resolve(S, E, e);
  if (!d) {
    err(S, e->name_span, "unknown name '%s'", e->name);
    did_you_mean(S, E, e->name, e->name_span);
    return bad(S);
  }
  if (d->kind == AST_D_PATTERN) return call_pattern(S, E, d, e, e->span);
  if (d->kind == AST_D_FUNC) return call_fn(S, E, e, in_where, d, NULL);
  if (d->kind == AST_D_LET) {
    err(S, e->name_span, "'%s' is a let, not a pattern with parameters; "
        "write it without parentheses", e->name);
    note(S, d->name_span, "'%s' declared here", d->name);
    return bad(S);
  }
  /* extern function */
  if (!in_where) {
    err(S, e->name_span, "extern function '%s' can only be called inside where(...)",
        e->name);
    return bad(S);
  }
  if (e->n_items != d->n_args) {
    err(S, e->span, "extern function '%s' takes %d argument%s, got %d", d->name,
        d->n_args, d->n_args == 1 ? "" : "s", e->n_items);
    note(S, d->name_span, "'%s' declared here", d->name);
    return bad(S);
  }
  ir_node *n = mk(S, IR_EXTERN, e->n_items, e->span);
  if (!n) return bad(S);
  bool ok = true;
  for (int k = 0; k < e->n_items; k++) {
    ast_node *it = e->items[k];
    if (it->kind == AST_ARG || it->kind == AST_RANGE || it->kind == AST_SET) {
      err(S, it->span, "an argument of an extern function must be an integer");
      ok = false;
      continue;
    }
    val v = tr_int(S, E, it, true, "an argument of an extern function");
    if (v.t == T_ERR) ok = false;
    n->kids[k] = v.n;
  }
  if (!ok) return bad(S);
  if (S->inst) {
    int idx = merge_extern(S, d, e->name_span);
    if (idx < 0) return bad(S);
    n->value = idx;
  }
  return (val){n, T_INT, true, e->span, NULL};
}

static ir_op int_binop(ast_op op) {
  switch (op) {
  case AST_OP_MUL: return IR_MUL;
  case AST_OP_DIV: return IR_DIV;
  case AST_OP_MOD: return IR_MOD;
  case AST_OP_ADD: return IR_ADD;
  case AST_OP_SUB: return IR_SUB;
  case AST_OP_LT: return IR_LT;
  case AST_OP_LE: return IR_LE;
  case AST_OP_GT: return IR_GT;
  case AST_OP_GE: return IR_GE;
  case AST_OP_EQ: return IR_EQ;
  case AST_OP_NE: return IR_NE;
  case AST_OP_LAND: return IR_LAND;
  case AST_OP_BAND: return IR_IAND;
  case AST_OP_BOR: return IR_IOR;
  case AST_OP_XOR: return IR_IXOR;
  case AST_OP_SHL: return IR_SHL;
  case AST_OP_SHR: return IR_SHR;
  default: return IR_LOR;
  }
}

/* 1: relational, 2: equality, 0: not a comparison. */
static int cmp_level(ast_op op) {
  switch (op) {
  case AST_OP_LT: case AST_OP_LE: case AST_OP_GT: case AST_OP_GE: return 1;
  case AST_OP_EQ: case AST_OP_NE: return 2;
  default: return 0;
  }
}

static val tr_binary(sema *S, env *E, ast_node *e, bool in_where) {
  const char *op = ast_op_text[e->op];
  if (e->op == AST_OP_LAND || e->op == AST_OP_LOR) {
    bool is_and = e->op == AST_OP_LAND;
    val a = tr(S, E, e->a, in_where);
    if (a.t == T_PAT) {
      err(S, e->a->span, "'%s' needs integer operands, but this is a pattern "
          "(use '%s' to %s patterns)", op, is_and ? "&" : "|",
          is_and ? "intersect" : "unite");
      return bad(S);
    }
    if (S->inst && a.t == T_INT && is_const(a.n) && (!a.n->value) == is_and) {
      ir_node *c = mkc(S, is_and ? 0 : 1, e->span);
      if (!c) return bad(S);
      return (val){c, T_INT, false, SPAN_NONE, NULL};
    }
    val b = tr(S, E, e->b, in_where);
    if (b.t == T_PAT) {
      err(S, e->b->span, "'%s' needs integer operands, but this is a pattern "
          "(use '%s' to %s patterns)", op, is_and ? "&" : "|",
          is_and ? "intersect" : "unite");
      return bad(S);
    }
    if (a.t == T_ERR || b.t == T_ERR) return bad(S);
    if (a.t != T_INT) {
      err(S, e->a->span, "'%s' needs integer operands, but this is %s", op, ty_name(a.t));
      return bad(S);
    }
    if (b.t != T_INT) {
      err(S, e->b->span, "'%s' needs integer operands, but this is %s", op, ty_name(b.t));
      return bad(S);
    }
    return int_op(S, int_binop(e->op), a, b, e->span);
  }
  int lvl = cmp_level(e->op);
  if (lvl && e->a->kind == AST_BINARY && !e->a->parens && cmp_level(e->a->op) == lvl) {
    err(S, e->span, "comparisons do not chain; write 'a %s b && b %s c' or add "
        "parentheses", ast_op_text[e->a->op], op);
    return bad(S);
  }
  val a = tr(S, E, e->a, in_where);
  val b = tr(S, E, e->b, in_where);
  if (a.t == T_ERR || b.t == T_ERR) return bad(S);
  if (a.t == T_SET || b.t == T_SET) {
    err(S, (a.t == T_SET ? e->a : e->b)->span,
        "an index set is only allowed as the argument of rows, cols or global");
    return bad(S);
  }
  bool bit = e->op == AST_OP_BAND || e->op == AST_OP_BOR;
  if (bit && a.t == T_PAT && b.t == T_PAT) {
    ir_node *n = mk2(S, e->op == AST_OP_BAND ? IR_AND : IR_OR, a.n, b.n, e->span);
    if (!n) return bad(S);
    return (val){n, T_PAT, false, SPAN_NONE, NULL};
  }
  if (bit && (a.t == T_PAT) != (b.t == T_PAT)) {
    bool is_and = e->op == AST_OP_BAND;
    err(S, (a.t != T_PAT ? e->a : e->b)->span,
        "'%s' needs two patterns or two integers, but this is %s and the other operand "
        "is a pattern (use '%s' for a logical %s)", op, ty_name(a.t != T_PAT ? a.t : b.t),
        is_and ? "&&" : "||", is_and ? "and" : "or");
    return bad(S);
  }
  if (e->op == AST_OP_SUB && a.t == T_PAT && b.t == T_PAT) {
    ir_node *n = mk2(S, IR_MINUS, a.n, b.n, e->span);
    if (!n) return bad(S);
    return (val){n, T_PAT, false, SPAN_NONE, NULL};
  }
  if (e->op == AST_OP_SUB && (a.t == T_PAT) != (b.t == T_PAT)) {
    err(S, e->b->span, "'-' needs two numbers or two patterns, but this is %s and "
        "the left operand is %s", ty_name(b.t), ty_name(a.t));
    return bad(S);
  }
  if (a.t == T_PAT || b.t == T_PAT) {
    err(S, (a.t == T_PAT ? e->a : e->b)->span,
        "'%s' needs integer operands, but this is a pattern", op);
    return bad(S);
  }
  if (a.t == T_FLT || b.t == T_FLT) {
    static const struct { ast_op a; ir_op f; } fops[] = {
        {AST_OP_ADD, IR_FADD}, {AST_OP_SUB, IR_FSUB}, {AST_OP_MUL, IR_FMUL},
        {AST_OP_DIV, IR_FDIV}};
    for (size_t k = 0; k < sizeof fops / sizeof fops[0]; k++)
      if (fops[k].a == e->op) return flt_op(S, fops[k].f, a, b, e->span);
    err(S, (a.t == T_FLT ? e->a : e->b)->span,
        "'%s' needs integer operands, but this is a float%s", op,
        cmp_level(e->op) ? " (conditions are integer expressions: floats cannot be compared)"
        : e->op == AST_OP_MOD ? "" : " (floats have + - * / only)");
    return bad(S);
  }
  return int_op(S, int_binop(e->op), a, b, e->span);
}

static val tr_cond(sema *S, env *E, ast_node *e, bool in_where) {
  val c = tr_int(S, E, e->a, in_where, "the condition of '?:'");
  if (c.t == T_ERR) return c;
  if (S->inst && is_const(c.n)) {
    ast_node *arm = c.n->value ? e->b : e->c;
    val v = tr(S, E, arm, in_where);
    if (v.t == T_SET) {
      err(S, arm->span, "an index set is only allowed as the argument of rows, cols or global");
      return bad(S);
    }
    return v;
  }
  val a = tr(S, E, e->b, in_where);
  val b = tr(S, E, e->c, in_where);
  if (a.t == T_ERR || b.t == T_ERR) return bad(S);
  if (a.t == T_SET || b.t == T_SET) {
    err(S, (a.t == T_SET ? e->b : e->c)->span,
        "an index set is only allowed as the argument of rows, cols or global");
    return bad(S);
  }
  if ((a.t == T_FLT && b.t == T_INT) || (a.t == T_INT && b.t == T_FLT)) {
    a = to_flt(S, a, e->b->span);
    b = to_flt(S, b, e->c->span);
    if (a.t == T_ERR || b.t == T_ERR) return bad(S);
  }
  if (a.t != b.t) {
    err(S, e->c->span, "the arms of '?:' must have the same type, but this is %s and "
        "the other arm is %s", ty_name(b.t), ty_name(a.t));
    return bad(S);
  }
  ir_node *n = mk3(S, a.t == T_INT ? IR_SEL : a.t == T_FLT ? IR_FSEL : IR_PSEL, c.n, a.n,
                   b.n, e->span);
  if (!n) return bad(S);
  val r = {n, a.t, c.where_only || a.where_only || b.where_only, SPAN_NONE, NULL};
  r.where_span = c.where_only ? c.where_span : a.where_only ? a.where_span : b.where_span;
  return r;
}

/* input[e1, ..., en]: one index per dimension. */
static val tr_index(sema *S, env *E, ast_node *e, bool in_where) {
  binding *b = find_binding(E, e->name);
  if (!b || b->p->kind != AST_PARAM_INPUT) {
    if (!b && !sema_lookup(S->m, E->file, e->name) && !find_builtin(e->name)) {
      err(S, e->name_span, "unknown name '%s'", e->name);
      did_you_mean(S, E, e->name, e->name_span);
    } else {
      err(S, e->name_span, "'%s' is not an input array; only input arrays can be indexed",
          e->name);
    }
    return bad(S);
  }
  ast_param *p = b->p;
  bool flt = input_is_float(p);
  int nd = p->n_dims ? p->n_dims : 1;
  if (S->in_dims) {
    err(S, e->span, "an input dimension cannot read input '%s' (dimensions are expressions "
        "of constants, compile-time parameters and the sizes)", e->name);
    return bad(S);
  }
  if (flt && !S->in_score) {
    err(S, e->span, "float input '%s' can only be read in a score expression (after "
        "'with score')", e->name);
    return bad(S);
  }
  if (!flt && !in_where) {
    err(S, e->span, "input array '%s' can only be read inside where(...)%s", e->name,
        nd > 1 ? " (a row, with the last index left out, is an index set)" : "");
    return bad(S);
  }
  if (e->n_items != nd) {
    err(S, e->span, "input '%s' has %d dimension%s, but %d ind%s given", e->name, nd,
        nd == 1 ? "" : "s", e->n_items, e->n_items == 1 ? "ex is" : "ices are");
    note(S, p->type_span, "'%s' declared here", e->name);
    if (!flt && e->n_items == nd - 1)
      note(S, e->span, "a row of an input (the last index left out) is an index set: it "
           "stands only as the argument of rows, cols, global or diagonals");
    return bad(S);
  }
  bool legacy = !flt && !p->n_dims;
  if (!legacy && S->inst && b->index >= 0 && b->index < S->n_in) {
    const ir_input *in = &S->in[b->index];
    legacy = !in->is_float && in->n_dims == 1 && in->dims[0]->op == IR_SIZE_LK;
  }
  ir_node *n = mk(S, flt ? IR_FINPUT : legacy ? IR_INPUT : IR_INPUTN, nd, e->span);
  if (!n) return bad(S);
  bool ok = true;
  for (int k = 0; k < nd; k++) {
    val x = tr_int(S, E, e->items[k], in_where, "an array index");
    if (x.t == T_ERR) ok = false;
    n->kids[k] = x.n;
  }
  if (!ok) return bad(S);
  n->value = S->inst ? b->index : -1;
  return (val){n, flt ? T_FLT : T_INT, true, e->span, NULL};
}

/* let name = v in body / let name(p, ...) = v in body. */
static val tr_letin(sema *S, env *E, ast_node *e, bool in_where, bool top) {
  binding *nb = arena_alloc(S->a, sizeof *nb);
  ast_param *pp = arena_alloc(S->a, sizeof *pp);
  if (!nb || !pp) return bad(S);
  check_name(S, e->name, e->name_span);
  *pp = (ast_param){.kind = AST_PARAM_LOCAL, .name = e->name, .span = e->name_span};
  memset(nb, 0, sizeof *nb);
  nb->p = pp;
  nb->lbody = e->a;
  nb->lparams = e->items;
  nb->n_lparams = e->n_items;
  nb->is_fn = e->has_params;
  nb->lenv = E;
  if (!S->inst) {
    if (nb->is_fn) {
      nb->v = check_fn_body(S, E, E->file, NULL, e->items, e->n_items, e->a);
    } else {
      nb->v = tr(S, E, e->a, true);
      if (nb->v.t == T_SET) {
        err(S, e->a->span, "an index set is only allowed as the argument of rows, cols or "
            "global");
        nb->v = bad(S);
      }
    }
  }
  env L = {E->file, nb, 1, E->defaults, E->pattern, E};
  S->score_top = top;
  return tr(S, &L, e->b, in_where);
}

/* P with score E: only at the top of a pattern's definition. */
static val tr_score(sema *S, env *E, ast_node *e, bool top) {
  if (!top) {
    err(S, e->span, "'with score' applies to a whole pattern: it stands only at the top "
        "of a pattern definition, not inside | & - !, ?:, blocks, topk or a let");
    return bad(S);
  }
  val p = tr_pat(S, E, e->a, "the pattern before 'with score'");
  bool was = S->in_score;
  S->in_score = true;
  val v = tr(S, E, e->b, true);
  S->in_score = was;
  if (p.t == T_ERR || v.t == T_ERR) return bad(S);
  if (v.t == T_INT) v = to_flt(S, v, e->b->span);
  if (v.t != T_FLT) {
    err(S, e->b->span, "a score must be a float expression, but this is %s", ty_name(v.t));
    return bad(S);
  }
  p.score = v.n;
  return p;
}

static val tr(sema *S, env *E, ast_node *e, bool in_where) {
  if (S->stop || !e) return bad(S);
  if (++S->depth > SEMA_MAX_DEPTH) {
    err(S, e->span, "expression nested too deeply after inlining lets and patterns");
    S->stop = true;
    S->depth--;
    return bad(S);
  }
  val r;
  bool top = S->score_top; /* only this node may be `P with score E` */
  S->score_top = false;
  if (e->kind == AST_NAME || e->kind == AST_CALL) S->call_top = top;
  switch (e->kind) {
  case AST_INT: {
    ir_node *n = mkc(S, e->ival, e->span);
    r = n ? (val){n, T_INT, false, SPAN_NONE, NULL} : bad(S);
    break;
  }
  case AST_NAME: r = tr_name(S, E, e, in_where); break;
  case AST_CALL: r = tr_call(S, E, e, in_where); break;
  case AST_INDEX: r = tr_index(S, E, e, in_where); break;
  case AST_FLOAT: {
    ir_node *n = mkf(S, e->dval, e->span);
    r = n ? (val){n, T_FLT, false, SPAN_NONE, NULL} : bad(S);
    break;
  }
  case AST_LETIN: r = tr_letin(S, E, e, in_where, top); break;
  case AST_SCORE: r = tr_score(S, E, e, top); break;
  case AST_UNARY: {
    val a = tr(S, E, e->a, in_where);
    if (a.t == T_ERR) {
      r = a;
    } else if (e->op == AST_OP_NOT && a.t == T_PAT) {
      ir_node *n = mk1(S, IR_COMPL, a.n, e->span);
      r = n ? (val){n, T_PAT, false, SPAN_NONE, NULL} : bad(S);
    } else if (e->op == AST_OP_NEG && a.t == T_FLT) {
      r = flt_op(S, IR_FNEG, a, a, e->span);
    } else if (e->op == AST_OP_BNOT && a.t == T_INT) {
      ir_node *m1 = mkc(S, -1, e->span);
      r = m1 ? int_op(S, IR_IXOR, a, (val){m1, T_INT, false, SPAN_NONE, NULL}, e->span)
             : bad(S);
    } else if (a.t != T_INT) {
      err(S, e->a->span, "unary '%s' needs an integer%s, but this is %s",
          ast_op_text[e->op], e->op == AST_OP_NOT ? " or a pattern" : "", ty_name(a.t));
      r = bad(S);
    } else {
      r = int_op(S, e->op == AST_OP_NOT ? IR_NOT : IR_NEG, a, a, e->span);
    }
    break;
  }
  case AST_BINARY: r = tr_binary(S, E, e, in_where); break;
  case AST_COND: r = tr_cond(S, E, e, in_where); break;
  case AST_BLOCKS: {
    val b = tr_int(S, E, e->a, false, "the block size of blocks");
    S->in_blocks++;
    val p = tr_pat(S, E, e->b, "the body of blocks");
    S->in_blocks--;
    if (b.t == T_ERR || p.t == T_ERR || !check_min(S, b.n, 1, "the block size of blocks")) {
      r = bad(S);
      break;
    }
    ir_node *n = mk2(S, IR_BLOCKS, b.n, p.n, e->span);
    r = n ? (val){n, T_PAT, false, SPAN_NONE, NULL} : bad(S);
    break;
  }
  case AST_SET:
  case AST_RANGE:
    err(S, e->span, "an index set is only allowed as the argument of rows, cols or global");
    r = bad(S);
    break;
  default:
    err(S, e->span, "a named argument is only allowed in a pattern call");
    r = bad(S);
    break;
  }
  S->depth--;
  return r;
}

/* ---- checking declarations ------------------------------------------ */

static void check_let(sema *S, ast_decl *d) {
  d->state = 1;
  env G = {d->file, NULL, 0, false, NULL, NULL};
  val v = tr(S, &G, d->body, true);
  d->type = v.t;
  d->where_only = v.where_only;
  d->where_span = v.where_span;
  if (v.t == T_SET) {
    err(S, d->body->span, "an index set is only allowed as the argument of rows, cols or global");
    d->type = T_ERR;
  }
  d->state = 2;
}

static void check_name(sema *S, const char *name, src_span sp) {
  const char *what;
  if (sema_is_reserved(name, &what))
    err(S, sp, "'%s' is %s and cannot be redefined", name, what);
}

static void check_input_decl(sema *S, env *C, ast_param *p) {
  bool flt = !strcmp(p->type, "float");
  if ((strcmp(p->type, "int") && !flt) || !p->is_array) {
    err(S, p->type_span, "an input array must have type int[...] or float[...]");
    return;
  }
  if (flt && !p->n_dims) {
    err(S, p->type_span, "a float input needs its dimensions, as in float[H]");
    return;
  }
  if (p->n_dims > IR_MAX_DIMS) {
    err(S, p->type_span, "an input has at most %d dimensions", IR_MAX_DIMS);
    return;
  }
  S->in_dims = true;
  for (int k = 0; k < p->n_dims; k++)
    tr_int(S, C, p->dims[k], false, "an input dimension");
  S->in_dims = false;
}

static void check_pattern(sema *S, ast_decl *d) {
  int np = d->n_params;
  binding *b = np ? arena_alloc(S->a, sizeof(binding) * (size_t)np) : NULL;
  if (np && !b) return;
  env C = {d->file, b, 0, true, d, NULL};
  for (int q = 0; q < np; q++) {
    ast_param *p = d->params[q];
    check_name(S, p->name, p->span);
    for (int k = 0; k < q; k++)
      if (!strcmp(d->params[k]->name, p->name)) {
        err(S, p->span, "parameter '%s' declared twice", p->name);
        note(S, d->params[k]->span, "first declared here");
      }
    if (p->kind == AST_PARAM_INPUT) check_input_decl(S, &C, p);
    if (p->deflt) tr_int(S, &C, p->deflt, false, "a parameter default");
    b[q].p = p;
    C.n = q + 1;
  }
  C.defaults = false;
  S->score_top = true;
  tr_pat(S, &C, d->body, "the body of a pattern");
  S->score_top = false;
}

static void check_extern(sema *S, ast_decl *d) {
  for (int k = 0; k < d->n_args; k++)
    if (strcmp(d->arg_types[k], "int"))
      err(S, d->arg_spans[k], "extern function arguments must have type int");
  if (strcmp(d->ret_type, "bool"))
    err(S, d->ret_span, "an extern function must return bool");
  if (d->n_args > SEMA_MAX_EXTERN_ARGS)
    err(S, d->name_span, "an extern function takes at most %d arguments",
        SEMA_MAX_EXTERN_ARGS);
}

static void sema_init(sema *S, fe_module *m, bool inst) {
  memset(S, 0, sizeof *S);
  S->m = m;
  S->d = m->diag;
  S->a = m->arena;
  S->inst = inst;
  strmap_init(&S->seen, m->arena);
  if (inst) S->gen = ++m->memo_gen ? m->memo_gen : ++m->memo_gen;
}

static void reset_tables(sema *S) {
  S->params = NULL, S->n_params = 0;
  S->rt = NULL, S->rt_e = NULL, S->n_rt = S->cap_rt = 0;
  S->in = NULL, S->in_e = NULL, S->n_in = S->cap_in = 0;
  S->ex = NULL, S->ex_e = NULL, S->n_ex = S->cap_ex = 0;
  S->failed = false;
  S->stop = false;
  S->n_nodes = 0;
  S->depth = 0;
  S->n_frames = 0;
}

static ir_program *instantiate(sema *S, ast_decl *d, const fe_define *defs,
                               int n_defs);

int sema_check_module(fe_module *m) {
  int before = diag_n_errors(m->diag);
  sema S;
  sema_init(&S, m, false);
  /* Every top-level name once across the module (first definitions, in
   * file order, hashed). */
  strmap first;
  strmap_init(&first, m->arena);
  for (int f = 0; f < m->n_files; f++)
    for (int k = 0; k < m->files[f].n_decls; k++) {
      ast_decl *d = m->files[f].decls[k];
      d->file = f;
      if (d->kind == AST_D_IMPORT) continue;
      check_name(&S, d->name, d->name_span);
      ast_decl *prev = strmap_get(&first, d->name);
      if (!prev && !strmap_put(&first, d->name, d)) {
        err(&S, SPAN_NONE, "out of memory");
        return diag_n_errors(m->diag) - before;
      }
      if (prev) {
        err(&S, d->name_span, "'%s' is already defined", d->name);
        note(&S, prev->name_span, "previous definition of '%s' (a %s)", prev->name,
             decl_kind_name(prev));
      }
    }
  flush_frames(&S);
  if (diag_n_errors(m->diag) > before) return diag_n_errors(m->diag) - before;
  for (int f = 0; f < m->n_files; f++)
    for (int k = 0; k < m->files[f].n_decls; k++) {
      ast_decl *d = m->files[f].decls[k];
      S.stop = false;
      S.depth = 0;
      if (d->kind == AST_D_LET && d->state == 0)
        check_let(&S, d);
      else if (d->kind == AST_D_FUNC && d->state == 0)
        check_func(&S, d);
      else if (d->kind == AST_D_PATTERN)
        check_pattern(&S, d);
      else if (d->kind == AST_D_EXTERN)
        check_extern(&S, d);
    }
  flush_frames(&S);
  if (diag_n_errors(m->diag) > before) return diag_n_errors(m->diag) - before;

  /* Evaluate with defaults: constant errors in lets and patterns. */
  sema I;
  sema_init(&I, m, true);
  for (int f = 0; f < m->n_files; f++)
    for (int k = 0; k < m->files[f].n_decls; k++) {
      ast_decl *d = m->files[f].decls[k];
      if (d->kind == AST_D_LET) {
        reset_tables(&I);
        env G = {d->file, NULL, 0, false, NULL, NULL};
        val v = tr(&I, &G, d->body, true);
        if (v.t == T_ERR || I.failed) d->bad = true;
        flush_frames(&I);
      }
    }
  for (int f = 0; f < m->n_files; f++)
    for (int k = 0; k < m->files[f].n_decls; k++) {
      ast_decl *d = m->files[f].decls[k];
      if (d->kind != AST_D_PATTERN) continue;
      bool all = true;
      for (int q = 0; q < d->n_params; q++)
        if (d->params[q]->kind == AST_PARAM_CT && !d->params[q]->deflt) all = false;
      if (!all) continue;
      reset_tables(&I);
      if (!instantiate(&I, d, NULL, 0)) d->bad = true;
      flush_frames(&I);
    }
  /* seen keys are per module check; the arena keeps them, that is fine */
  return diag_n_errors(m->diag) - before;
}

/* ---- instantiation -------------------------------------------------- */

static ir_program *instantiate(sema *S, ast_decl *d, const fe_define *defs,
                               int n_defs) {
  int np = d->n_params;
  S->top_left = d->top_left;
  binding *b = np ? arena_alloc(S->a, sizeof(binding) * (size_t)np) : NULL;
  ir_param *params = np ? arena_alloc(S->a, sizeof(ir_param) * (size_t)np) : NULL;
  if (np && (!b || !params)) {
    err(S, SPAN_NONE, "out of memory");
    return NULL;
  }
  bool ok = true;
  for (int k = 0; k < n_defs; k++) {
    int q = 0;
    while (q < np && strcmp(d->params[q]->name, defs[k].name)) q++;
    if (q == np) {
      err(S, SPAN_NONE, "pattern '%s' has no parameter '%s' (in -D %s=%" PRId64 ")",
          d->name, defs[k].name, defs[k].name, defs[k].value);
      list_params(S, d);
      ok = false;
    } else if (d->params[q]->kind != AST_PARAM_CT) {
      err(S, SPAN_NONE, "'%s' is %s of '%s'; it is set at run time, not with -D",
          defs[k].name, d->params[q]->kind == AST_PARAM_RUNTIME ? "a runtime scalar"
                                                                 : "an input array",
          d->name);
      note(S, d->params[q]->span, "'%s' declared here", defs[k].name);
      ok = false;
    }
  }
  if (!ok) {
    S->bad_defines = true;
    return NULL;
  }

  env C = {d->file, b, 0, true, d, NULL};
  S->params = params;
  for (int q = 0; q < np && !S->stop; q++) {
    ast_param *p = d->params[q];
    b[q].p = p;
    if (p->kind == AST_PARAM_CT) {
      const fe_define *def = NULL;
      for (int k = 0; k < n_defs; k++)
        if (!strcmp(defs[k].name, p->name)) def = &defs[k];
      ir_node *v = NULL;
      if (def) {
        v = mkc(S, def->value, p->span);
      } else if (p->deflt) {
        val dv = tr_int(S, &C, p->deflt, false, "a parameter default");
        if (dv.t != T_ERR && !is_const(dv.n)) {
          err(S, p->deflt->span, "the default of '%s' is not a compile-time constant",
              p->name);
          dv = bad(S);
        }
        v = dv.n;
      } else {
        err(S, p->span, "no value for parameter '%s' of '%s' (it has no default; "
            "use -D %s=VALUE)", p->name, d->name, p->name);
      }
      if (!v || !is_const(v)) {
        ok = false;
        v = NULL;
      }
      b[q].value = v;
      if (v) params[S->n_params++] = (ir_param){p->name, v->value};
    }
    C.n = q + 1;
  }
  for (int q = 0; q < np && ok && !S->stop; q++) {
    ast_param *p = d->params[q];
    if (p->kind == AST_PARAM_CT) continue;
    int64_t dv = 0;
    bool has = false;
    if (p->kind == AST_PARAM_RUNTIME && p->deflt) {
      C.n = q;
      val v = tr_int(S, &C, p->deflt, false, "a runtime default");
      if (v.t == T_ERR) {
        ok = false;
        continue;
      }
      if (!is_const(v.n)) {
        err(S, p->deflt->span, "the default of runtime scalar '%s' must be a constant",
            p->name);
        ok = false;
        continue;
      }
      dv = v.n->value, has = true;
    }
    C.n = q;
    const ir_input *in = p->kind == AST_PARAM_INPUT ? input_shape(S, &C, p) : NULL;
    if (p->kind == AST_PARAM_INPUT && !in) {
      ok = false;
      continue;
    }
    if ((b[q].index = merge_param(S, p, dv, has, in)) < 0) ok = false;
  }
  if (!ok || S->stop) return NULL;
  C.n = np;
  C.defaults = false;
  d->active = true;
  S->score_top = true;
  val r = tr_pat(S, &C, d->body, "the body of a pattern");
  S->score_top = false;
  d->active = false;
  if (r.t == T_ERR || S->failed) return NULL;
  ir_seal(r.n);
  if (r.score) ir_seal(r.score);

  ir_program *P = arena_alloc(S->a, sizeof *P);
  if (!P) return NULL;
  P->name = d->name;
  P->root = r.n;
  P->score = r.score;
  P->top_left = d->top_left;
  P->n_params = S->n_params, P->params = S->params;
  P->n_runtime = S->n_rt, P->runtime = S->rt;
  P->n_inputs = S->n_in, P->inputs = S->in;
  P->n_externs = S->n_ex, P->externs = S->ex;
  P->diag = S->m->diag;
  P->arena = S->m->arena;
  return P;
}

ir_program *sema_instantiate(fe_module *m, ast_decl *d, const fe_define *defs,
                             int n_defs) {
  sema S;
  sema_init(&S, m, true);
  /* (every d->active is false here: each translation that sets it clears
   * it on the way out, on every path) */
  ir_program *p = instantiate(&S, d, defs, n_defs);
  flush_frames(&S);
  if (!p && n_defs > 0 && !S.bad_defines && diag_n_errors(m->diag) > 0) {
    char buf[300];
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < n_defs && n < sizeof buf - 40; k++)
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s-D %s=%" PRId64, k ? " " : "",
                            defs[k].name, defs[k].value);
    diag_note(m->diag, SPAN_NONE, "while instantiating '%s' with %s", d->name, buf);
  }
  return p;
}
