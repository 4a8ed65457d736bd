/* ir.h: the checked pattern IR, the contract between the front end and every
 * backend.
 *
 * In: nothing (sema builds it).  Out: an ir_program, one pattern with its
 * compile-time parameters bound, every name resolved: named patterns and
 * `let`s are inlined, parameters folded to constants, runtime scalars,
 * input arrays and extern functions turned into indices into the program's
 * tables.  Nothing in it refers to the AST.
 *
 * One tree holds integer and pattern expressions.  Integers are int64;
 * booleans are integers (comparisons give 0 or 1, any nonzero is true).
 * Pattern nodes denote a mask M(h, i, j) as in shared/spec/pat-language.md.
 *
 * Semantics every consumer must implement identically:
 *  - DIV is floor division, MOD the remainder with the divisor's sign (Python:
 *    a % b == a - b * floor(a / b)); for b > 0 it is in [0, b).
 *    Division or remainder by zero, and any int64 overflow (+ - * unary -,
 *    abs(INT64_MIN), INT64_MIN / -1), is a run-time error.
 *  - LAND, LOR short-circuit and give 0/1; NOT gives 0/1; SEL evaluates only
 *    the chosen arm.
 *  - VAR_I is the absolute query position (row r sits at i = r + (Lk - Lq)
 *    when Lq <= Lk, else i = r); VAR_J the key position; VAR_H the query head.
 *    SIZE_LQ/SIZE_LK/SIZE_H are Lq, Lk, H.  Inside BLOCKS(b, P) all of these
 *    count blocks: i -> i / b, j -> j / b, Lq -> ceil(Lq / b),
 *    Lk -> ceil(Lk / b) (b >= 1; nested BLOCKS compose).
 *  - Index sets (SET) hold items: an integer expression (one index) or a
 *    RANGE(a, b) = [a, b).  Each endpoint or index v < 0 means Lk + v
 *    (Lk at the current granularity) before it is used.
 *  - Primitive argument checks at run time (errors, never UB): window sizes
 *    l, r >= 0; dilated w >= 0, d >= 1; block b >= 1; stride s >= 1;
 *    random r >= 0; topk k >= 0; blocks b >= 1.  Sema rejects constant
 *    violations at compile time.
 *  - RANDOM(r, seed): j in { hash(seed, h, i, t) mod Lk : 0 <= t < r },
 *    hash as in the spec (ar_hash, runtime/arith.h), unsigned arithmetic; Lk == 0 -> none.
 *  - INPUT(a, x): the int32 at position x of input array a (Lk entries);
 *    x outside [0, Lk) (at token granularity: the array is indexed with the
 *    value as computed) is a run-time error.  Only for inputs int[] / int[Lk].
 *  Version 2 (shared/spec/pat-language.md, "Version 2 additions"):
 *  - INPUTN(a, e1..en) / FINPUT(a, e1..en): element [e1, ..., en] of input a
 *    (C-contiguous, dims evaluated once per run at token level); any ek
 *    outside [0, dim k) is a run-time error.  INROW(a, e1..e{n-1}) in a SET:
 *    the items a[e1, .., e{n-1}, t] for every t (each v < 0 means Lk + v).
 *  - VAR_B the batch index; SIZE_B/HKV/D the sizes (not changed by BLOCKS).
 *  - IAND IOR IXOR two's complement; SHL/SHR as ar_shl/ar_shr (arith.h):
 *    a count outside [0, 63] or a left shift that overflows is an error.
 *  - DIAG(S): i - j in S, items taken as written (no counting from the end).
 *  - ROUTE (value: input C, float[H, n, D]): c(q_r) == c(k_j), c(x) = the
 *    smallest t maximising dot(x, C[h, t]) in double; token granularity only.
 *  - program->score: E in place of s (float ops, FSCORE = s, FCVT converts
 *    an integer, FSEL's condition is an integer); evaluated on allowed pairs
 *    only; top_left: i = r for every row.
 *  - TOPK(k, P): per row, the k keys of P(h, i, .) with the highest
 *    s(i, j) = scale * dot(q_i, k_j); ties to the smaller j; all of them when
 *    P has fewer than k.  Inside BLOCKS (granularity g > 1), keys and rows are
 *    blocks and the score is dot(mean q of query block, mean k of key block),
 *    the means over the positions of the block that exist.
 *  - i and j appear only inside WHERE predicates (sema enforces it); h,
 *    sizes, RUNTIME and constants may appear in any integer argument.
 */
#ifndef SPAT_IR_H
#define SPAT_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "arith.h" /* integer semantics and the random hash, shared */
#include "diag.h"

/* X(name, text, kind, n_kids): n_kids -1 means variable (kids/n_kids). */
#define IR_OPS(X)                                                      \
  /* integer expressions */                                            \
  X(CONST, "const", IR_INT, 0)     /* value */                         \
  X(VAR_I, "i", IR_INT, 0)                                             \
  X(VAR_J, "j", IR_INT, 0)                                             \
  X(VAR_H, "h", IR_INT, 0)                                             \
  X(SIZE_LQ, "Lq", IR_INT, 0)                                          \
  X(SIZE_LK, "Lk", IR_INT, 0)                                          \
  X(SIZE_H, "H", IR_INT, 0)                                            \
  X(RUNTIME, "runtime", IR_INT, 0) /* value: runtime scalar index */   \
  X(INPUT, "input", IR_INT, 1)     /* value: input index; kid: pos */  \
  X(EXTERN, "extern", IR_INT, -1)  /* value: extern index; kids: args */ \
  X(NEG, "-", IR_INT, 1)                                               \
  X(NOT, "!", IR_INT, 1)                                               \
  X(ABS, "abs", IR_INT, 1)                                             \
  X(ADD, "+", IR_INT, 2)                                               \
  X(SUB, "-", IR_INT, 2)                                               \
  X(MUL, "*", IR_INT, 2)                                               \
  X(DIV, "/", IR_INT, 2)                                               \
  X(MOD, "%", IR_INT, 2)                                               \
  X(MIN, "min", IR_INT, 2)                                             \
  X(MAX, "max", IR_INT, 2)                                             \
  X(LT, "<", IR_INT, 2)                                                \
  X(LE, "<=", IR_INT, 2)                                               \
  X(GT, ">", IR_INT, 2)                                                \
  X(GE, ">=", IR_INT, 2)                                               \
  X(EQ, "==", IR_INT, 2)                                               \
  X(NE, "!=", IR_INT, 2)                                               \
  X(LAND, "&&", IR_INT, 2)                                             \
  X(LOR, "||", IR_INT, 2)                                              \
  X(SEL, "?:", IR_INT, 3)          /* c ? a : b */                     \
  /* version 2 integers */                                             \
  X(VAR_B, "b", IR_INT, 0)                                             \
  X(SIZE_B, "B", IR_INT, 0)                                            \
  X(SIZE_HKV, "Hkv", IR_INT, 0)                                        \
  X(SIZE_D, "D", IR_INT, 0)                                            \
  X(IAND, "&", IR_INT, 2)                                              \
  X(IOR, "|", IR_INT, 2)                                               \
  X(IXOR, "^", IR_INT, 2)                                              \
  X(SHL, "<<", IR_INT, 2)                                              \
  X(SHR, ">>", IR_INT, 2)                                              \
  X(INPUTN, "input", IR_INT, -1)   /* value: input; kids: indices */   \
  /* index sets */                                                     \
  X(SET, "set", IR_SETK, -1)       /* kids: integer exprs or RANGEs */ \
  X(RANGE, "..", IR_SETK, 2)       /* [a, b) */                        \
  X(INROW, "row", IR_SETK, -1)     /* value: input; kids: row index */ \
  /* patterns */                                                       \
  X(FULL, "full", IR_PAT, 0)                                           \
  X(NONE, "none", IR_PAT, 0)                                           \
  X(CAUSAL, "causal", IR_PAT, 0)                                       \
  X(WINDOW, "window", IR_PAT, 2)   /* l, r */                          \
  X(DILATED, "dilated", IR_PAT, 2) /* w, d */                          \
  X(BLOCK, "block", IR_PAT, 1)     /* b */                             \
  X(STRIDE, "stride", IR_PAT, 1)   /* s */                             \
  X(ROWS, "rows", IR_PAT, 1)       /* SET */                           \
  X(COLS, "cols", IR_PAT, 1)       /* SET */                           \
  X(GLOBAL, "global", IR_PAT, 1)   /* SET */                           \
  X(RANDOM, "random", IR_PAT, 2)   /* r, seed */                       \
  X(WHERE, "where", IR_PAT, 1)     /* integer predicate over i j h */  \
  X(TOPK, "topk", IR_PAT, 2)       /* k, P */                          \
  X(OR, "|", IR_PAT, 2)                                                \
  X(AND, "&", IR_PAT, 2)                                               \
  X(MINUS, "-", IR_PAT, 2)         /* difference */                    \
  X(COMPL, "!", IR_PAT, 1)                                             \
  X(PSEL, "?:", IR_PAT, 3)         /* integer c, P, Q */               \
  X(BLOCKS, "blocks", IR_PAT, 2)   /* b, P */                          \
  X(DIAG, "diagonals", IR_PAT, 1)  /* SET of offsets i - j */          \
  X(ROUTE, "route", IR_PAT, 0)     /* value: the centroid input */     \
  /* float expressions (scores) */                                     \
  X(FCONST, "fconst", IR_FLT, 0)   /* fvalue */                        \
  X(FSCORE, "s", IR_FLT, 0)                                            \
  X(FCVT, "float", IR_FLT, 1)      /* an integer as a float */         \
  X(FINPUT, "finput", IR_FLT, -1)  /* value: input; kids: indices */   \
  X(FNEG, "-", IR_FLT, 1)                                              \
  X(FABS, "abs", IR_FLT, 1)                                            \
  X(FEXP, "exp", IR_FLT, 1)                                            \
  X(FLOG, "log", IR_FLT, 1)                                            \
  X(FSQRT, "sqrt", IR_FLT, 1)                                          \
  X(FTANH, "tanh", IR_FLT, 1)                                          \
  X(FADD, "+", IR_FLT, 2)                                              \
  X(FSUB, "-", IR_FLT, 2)                                              \
  X(FMUL, "*", IR_FLT, 2)                                              \
  X(FDIV, "/", IR_FLT, 2)                                              \
  X(FMIN, "min", IR_FLT, 2)                                            \
  X(FMAX, "max", IR_FLT, 2)                                            \
  X(FSEL, "?:", IR_FLT, 3)         /* integer c, x, y */

typedef enum { IR_INT, IR_SETK, IR_PAT, IR_FLT } ir_kind;

typedef enum {
#define X(name, text, kind, n) IR_##name,
  IR_OPS(X)
#undef X
  IR_N_OPS
} ir_op;

typedef struct ir_node ir_node;
struct ir_node {
  ir_op op;
  int n_kids;
  ir_node **kids;
  int64_t value;  /* CONST: the value; RUNTIME/INPUT/INPUTN/EXTERN/INROW/
                     FINPUT/ROUTE: table index */
  double fvalue;  /* FCONST */
  src_span span;  /* where the user wrote it, for run-time errors */
  uint64_t ops[2]; /* set by ir_seal: bit k when op k occurs in the subtree
                      (all 0: not computed) */
};

typedef struct ir_runtime {
  const char *name;
  int64_t deflt;    /* default value */
  bool has_deflt;
} ir_runtime;

typedef struct ir_input {
  const char *name;
  bool is_float;    /* float32 elements (else int32) */
  int n_dims;       /* >= 1; int[] is int[Lk] */
  ir_node **dims;   /* integer expressions of constants and the sizes
                       B H Hkv Lq Lk D (token level) */
} ir_input;
#define IR_MAX_DIMS 8

typedef struct ir_extern {
  const char *name;
  int n_args;       /* every argument is int64 (C int64_t); returns bool */
} ir_extern;

typedef struct ir_param {
  const char *name;
  int64_t value;    /* bound compile-time value (default or -D override) */
} ir_param;

typedef struct ir_program {
  const char *name;          /* the pattern's name */
  ir_node *root;             /* a pattern (IR_PAT) expression */
  int n_params;  ir_param *params;
  int n_runtime; ir_runtime *runtime;
  int n_inputs;  ir_input *inputs;
  int n_externs; ir_extern *externs;
  ir_node *score;            /* NULL, or the float expression E of
                                `with score E` (version 2) */
  bool top_left;             /* aligned(top_left): i = r for every row */
  const diag *diag;          /* owns the sources the spans point into */
  arena *arena;              /* owns every node and string above */
} ir_program;

extern const char *const ir_op_text[IR_N_OPS];  /* "window", "+", ... */
extern const char *const ir_op_name[IR_N_OPS];  /* "WINDOW", "ADD", ... */
extern const ir_kind ir_op_kind[IR_N_OPS];

/* Constructors (arena-allocated; NULL on OOM). */
ir_node *ir_new(arena *a, ir_op op, int n_kids, src_span sp);
ir_node *ir_const(arena *a, int64_t v, src_span sp);
ir_node *ir_new1(arena *a, ir_op op, ir_node *k0, src_span sp);
ir_node *ir_new2(arena *a, ir_op op, ir_node *k0, ir_node *k1, src_span sp);
ir_node *ir_new3(arena *a, ir_op op, ir_node *k0, ir_node *k1, ir_node *k2,
                 src_span sp);

#define IR_MAX_EXTERN_ARGS 16 /* what the libffi predicate call supports */

/* The one checker (ir_check.c): op codes, kinds of kids, arities, table
 * indices, extern arity.  false with "malformed pattern IR at 'OP'" in err.
 * Run between lowering and every backend; linear in the distinct nodes. */
bool ir_check(const ir_program *p, char *err, size_t errlen);

/* The IR is a DAG: sema shares the expansion of a let or a pattern call
 * used several times (never one that contains TOPK), so a node may have
 * several parents.  Walks that recurse into every kid cost the expanded
 * tree's size; passes that must stay linear memoise per node. */
bool ir_has_op(const ir_node *n, ir_op op);   /* anywhere in the tree */
/* Computes n->ops for n and every node below it (each once); n's subtree
 * must not change afterwards. */
void ir_seal(ir_node *n);
/* The elements of input k for these sizes (the product of its dimensions),
 * or -1 when a dimension is negative or the product overflows.  Every
 * consumer computes shapes this way. */
int64_t ir_input_len(const ir_program *p, int k, const int64_t sizes[6]);
/* Dimension d of input k for sizes {B, H, Hkv, Lq, Lk, D}. */
int64_t ir_input_dim(const ir_program *p, int k, int d, const int64_t sizes[6]);
/* The version-2 features a backend may lack, as a mask of these bits. */
enum {
  IR_FEAT_SCORE = 1, IR_FEAT_FLOAT_IN = 2, IR_FEAT_SHAPED_IN = 4,
  IR_FEAT_ROW_SET = 8, IR_FEAT_ROUTE = 16, IR_FEAT_DIAG = 32,
  IR_FEAT_BATCH = 64 /* b, B, Hkv or D */
};
unsigned ir_features(const ir_program *p);
bool ir_is_data_dependent(const ir_program *p); /* has TOPK */
/* Nodes of n's subtree expanded into a tree (a shared node counted at each
 * use), at most cap; linear in the distinct nodes.  What a tree walk, such
 * as the interpreter's per mask element, costs. */
int64_t ir_tree_size(const ir_node *n, int64_t cap);

/* Prints the expression in .pat syntax, fully parenthesised where needed;
 * the output parses back to the same tree (canonical text, used for cache
 * keys and `spatc explain`). */
void ir_print(FILE *f, const ir_program *p, const ir_node *n);
/* The whole program: parameters, runtime scalars, inputs, externs, root. */
void ir_print_program(FILE *f, const ir_program *p);

#endif
