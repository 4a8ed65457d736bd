/* plan_ops.h: the instruction set of a tile plan (runtime/plan.h), shared by
 * its writer (compiler/analyze.c) and its evaluator (runtime/plan.c).
 *
 * A plan is a header of PLAN_HDR words followed by postfix code.  Two stacks:
 * int64 values (integer arguments, evaluated with checked arithmetic) and
 * key-interval lists (sorted, disjoint spans labelled FULL or PARTIAL, at the
 * current granularity).  Evaluation runs for one query tile, positions
 * [i0, i1); BLOCKS_BEGIN/BLOCKS_END switch to and from block granularity.
 * Jump operands are absolute word offsets into the plan.
 */
#ifndef SPAT_PLAN_OPS_H
#define SPAT_PLAN_OPS_H

/* Header words. */
enum {
  PLAN_W_SIZE = 0,    /* total words */
  PLAN_W_MAGIC = 1,
  PLAN_W_CAP = 2,     /* max spans of one list, and of the output */
  PLAN_W_LDEPTH = 3,  /* list stack depth */
  PLAN_W_IDEPTH = 4,  /* int stack depth */
  PLAN_W_BDEPTH = 5,  /* BLOCKS nesting depth */
  PLAN_W_NRT = 6,     /* runtime scalars read */
  PLAN_W_CODE = 7,    /* offset of the first instruction */
  PLAN_W_NIN = 8,     /* input arrays read */
  PLAN_W_WHERE = 9,   /* offset of the where table (after END), see below */
  PLAN_W_JOIN = 10,   /* offset of the join table (0: none), see below */
  PLAN_W_ROWS = 11,   /* offset of the rows table (0: none), see below */
  PLAN_W_ROUTE = 12,  /* offset of the route table (0: none), see below */
  PLAN_W_FLAGS = 13,  /* PLAN_F_* of the pattern */
  PLAN_HDR = 14
};

/* Header flags: properties of the pattern every driver needs. */
enum {
  PLAN_F_TOP_LEFT = 1, /* aligned(top_left): query row r is position r */
  PLAN_F_BATCH = 2,    /* reads b: masks and errors may differ per batch */
  PLAN_F_HEAD = 4      /* reads the head (h, random, topk, route): the
                          tile plan's spans may differ per head */
};

/* "PLAT" and the format version: bump the version whenever the instruction
 * set or the header changes, so that a plan stored by an older library (an
 * AOT object, a kernel cache entry) is refused instead of misread. */
#define PLAN_VERSION 9ll
#define PLAN_MAGIC (0x54414c50ll | (PLAN_VERSION << 32))

/* Evaluator limits (the builder sizes plans to fit them). */
#define PLAN_SCRATCH 1024   /* spans of list scratch */
#define PLAN_ISTACK 256     /* int stack words */
#define PLAN_BNEST 16       /* BLOCKS nesting */
#define PLAN_RANDOM_MAX 16  /* random: exact keys when rows * r <= this */
#define PLAN_DOC_VALUES 8   /* doceq: distinct x[i] in a tile, at most */
#define PLAN_RESIDUE_RUNS 64 /* stride, dilated: key runs planned for */
#define PLAN_BOX_EVALS 512  /* box: interval evaluations per tile, at most */
#define PLAN_BOX_DEPTH 64   /* box: tree depth, at most */
#define PLAN_INPUT_DIMS 8   /* dimensions of an input (IR_MAX_DIMS) */

/* X(name, operand words, text) */
#define PLAN_OPS(X)                                                       \
  X(END, 0, "end")                                                        \
  /* integers */                                                          \
  X(ICONST, 1, "const")     /* push value */                              \
  X(IHEAD, 0, "h")                                                        \
  X(INHEAD, 0, "H")                                                       \
  X(ILQ, 0, "Lq")           /* at the current granularity */              \
  X(ILK, 0, "Lk")                                                         \
  X(IRT, 1, "runtime")      /* push runtime scalar [operand] */           \
  X(INEG, 0, "neg")                                                       \
  X(INOT, 0, "not")                                                       \
  X(IABS, 0, "abs")                                                       \
  X(IBOOL, 0, "bool")                                                     \
  X(IADD, 0, "add")                                                       \
  X(ISUB, 0, "sub")                                                       \
  X(IMUL, 0, "mul")                                                       \
  X(IDIV, 0, "div")                                                       \
  X(IMOD, 0, "mod")                                                       \
  X(IMIN, 0, "min")                                                       \
  X(IMAX, 0, "max")                                                       \
  X(ILT, 0, "lt")                                                         \
  X(ILE, 0, "le")                                                         \
  X(IGT, 0, "gt")                                                         \
  X(IGE, 0, "ge")                                                         \
  X(IEQ, 0, "eq")                                                         \
  X(INE, 0, "ne")                                                         \
  X(JZ, 1, "jz")            /* pop; jump if zero */                       \
  X(JMP, 1, "jmp")                                                        \
  X(JZ0, 1, "jz0")          /* pop; if zero push 0 and jump (&&) */       \
  X(JNZ1, 1, "jnz1")        /* pop; if nonzero push 1 and jump (||) */    \
  X(JEMPTY, 1, "jempty")    /* jump if the top list is empty (P & Q) */   \
  X(JALL, 1, "jall")        /* jump if the top list is FULL [0, Lk) */    \
  /* patterns: push one list */                                           \
  X(PFULL, 0, "full")                                                     \
  X(PNONE, 0, "none")                                                     \
  X(PCAUSAL, 0, "causal")                                                 \
  X(PWINDOW, 0, "window")   /* pops l, r */                               \
  X(PDILATED, 0, "dilated") /* pops w, d */                               \
  X(PBLOCK, 0, "block")     /* pops b */                                  \
  X(PSTRIDE, 0, "stride")   /* pops s */                                  \
  X(PRANDOM, 0, "random")   /* pops r, seed */                            \
  X(PANY, 0, "partial")     /* PARTIAL over [0, Lk): where, unknowns */   \
  X(SBEGIN, 0, "set")       /* push an empty index set */                 \
  X(SITEM, 0, "item")       /* pops v; adds it to the set on top */       \
  X(SRANGE, 0, "range")     /* pops a, b; adds [a, b) */                  \
  X(PROWS, 0, "rows")       /* set on top -> rows(S) */                   \
  X(PCOLS, 0, "cols")       /* set on top -> cols(S) */                   \
  X(PTOPK, 0, "topk")       /* pops k and a list */                       \
  X(POR, 0, "or")                                                         \
  X(PAND, 0, "and")                                                       \
  X(PMINUS, 0, "minus")                                                   \
  X(PCOMPL, 0, "compl")                                                   \
  /* where(pred): the predicate's atoms as lists, in a region where an   \
   * arithmetic error gives PARTIAL over every key instead of an error     \
   * (the per-element code reports it exactly where the mask needs it) */  \
  X(WTRY, 1, "try")         /* operand: where to go on an error */        \
  X(WEND, 0, "endtry")                                                    \
  X(PJRANGE, 0, "jrange")   /* pops lo, hi: keys j in [lo, hi) */         \
  X(PIRANGE, 0, "irange")   /* pops lo, hi: rows with i in [lo, hi) */    \
  X(PDIAG, 0, "diag")       /* pops lo, hi: i - j in [lo, hi) */          \
  X(PCOND, 0, "cond")       /* pops c: every key if c != 0, else none */  \
  X(PDOCEQ, 1, "doceq")     /* x[i] == x[j], operand: input index */      \
  X(PDOCEQB, 1, "doceqb")   /* x[b, i] == x[b, j], x an input [B, Lk] */  \
  X(PJPRED, 1, "jpred")     /* a predicate of j alone, run per key: the   \
                               operand is the length of the integer code  \
                               that follows, ending in RET */             \
  X(PIPRED, 1, "ipred")     /* a predicate of i alone, run per row */     \
  X(PBOX, 2, "box")         /* a predicate of i and j over intervals      \
                               (runtime/plan_box.c): operands G, n; its   \
                               tree follows in n words, prefix form as in \
                               the where table; key ranges split in two   \
                               down to G keys while undecided */          \
  X(IVARI, 0, "i")          /* inside a JPRED/IPRED body */               \
  X(IVARJ, 0, "j")                                                        \
  X(IINPUT, 1, "input")     /* pops a position; operand: input index */   \
  X(RET, 0, "ret")          /* ends a JPRED/IPRED body */                 \
  /* focus: keys outside [f0, f1) do not matter (Q of P & Q, P - Q: P has \
   * none there); scans (where per key, documents, runs) stay inside it */ \
  X(FOCUS, 0, "focus")      /* pushes f0, f1; focus &= hull of top list */ \
  X(FOCUSALL, 0, "focusall")/* pushes f0, f1; focus = every key (topk) */ \
  X(UNFOCUS, 0, "unfocus")  /* pops f0, f1 back */                        \
  X(BBEGIN, 0, "blocks")    /* pops b; enters block granularity */        \
  X(BEND, 0, "endblocks")   /* scales the top list back */           \
  /* only in the where table: integer trees in prefix form */            \
  X(ILAND, 0, "land")       /* kids a, b */                               \
  X(ILOR, 0, "lor")                                                       \
  X(ISEL, 0, "sel")         /* kids c, a, b */                            \
  X(IEXTERN, 1, "extern")   /* operand: argument count; kids: args */ \
  /* version 2: rows of inputs in index sets, diagonals(S) (plan_sets.h) */ \
  X(SROW, 3, "row")         /* operands k, n, raw: pops n indices; adds the \
                               items of that row of input k (raw: as      \
                               written, else from the end) to the set */  \
  X(SRITEM, 0, "rawitem")   /* as SITEM, SRANGE, the value as written    \
                               (an offset of diagonals) */                 \
  X(SRRANGE, 0, "rawrange")                                               \
  X(PDIAGS, 0, "diagonals") /* set of offsets on top -> keys j with      \
                               i - j in it */                              \
  /* version 2, only in the where table */                                \
  X(IVARB, 0, "b")                                                        \
  X(IBATCH, 0, "B")                                                       \
  X(IHKV, 0, "Hkv")                                                       \
  X(IDIM, 0, "D")                                                         \
  X(IINPUTN, 2, "inputn")   /* operands: input, n; kids: its n dimensions \
                               (sizes at token level), then n indices */

/* The where table (at plan[PLAN_W_WHERE], after the code's END): the
 * predicate of every where(...) node of the pattern, as written (no
 * rewriting), so that run-time errors can be ruled out before the tile plan
 * decides what to skip (plan_where_may_fail, runtime/plan_safe.c):
 *   n_where, then per predicate: words w, flags (PLAN_WF_*), then w - 1
 *   words of its tree in prefix form: an op, its operand words, its kids
 *   (the integer ops above; IVARI, IVARJ are i and j at the node's
 *   granularity, IINPUT's kid the index).  w == 1: the tree was too large
 *   to store, it may fail anywhere. */
/* The join table (at plan[PLAN_W_JOIN] when nonzero, after the where
 * table): the pattern is where(f1(i) == g1(j) && ... && fn(i) == gn(j)),
 * each f of i alone and g of j alone, so that the kernel can group queries
 * and keys by their values (runtime/plan_join.c):
 *   n (1 .. PLAN_JOIN_MAX), then per equality: words wf, f's tree in prefix
 *   form (as in the where table), words wg, g's tree. */
/* The rows table (at plan[PLAN_W_ROWS] when nonzero, after the join
 * table): the inputs SROW reads, so that a run sorts each of their rows
 * once into intervals (runtime/plan_sets.h):
 *   n, then per input: k, nd, then per dimension: words w, its tree in
 *   prefix form (constants and the token-level sizes H, Lq, Lk; as in the
 *   where table). */
#define PLAN_JOIN_MAX 4
/* The route table (at plan[PLAN_W_ROUTE] when nonzero, after the join
 * table): the pattern's one route(C) node (runtime/route.h), so that the
 * kernel computes the cluster ids of its rows and keys once per run:
 *   the input index of C, n (C's centroids per head, a constant), and
 *   PLAN_ROUTE_ALONE when the root is route(C) itself (an equality join on
 *   the ids), else 0.  The tile plan treats route as PARTIAL. */
enum { PLAN_ROUTE_INPUT = 0, PLAN_ROUTE_N = 1, PLAN_ROUTE_ROOT = 2, PLAN_ROUTE_WORDS = 3 };
#define PLAN_ROUTE_ALONE 1
#define PLAN_WF_BLOCKS 1    /* inside blocks(b) { }: i, j, Lq, Lk count blocks */
#define PLAN_WHERE_MAX (1 << 20) /* words of the where table */

enum plan_op {
#define X(name, n, text) PLAN_##name,
  PLAN_OPS(X)
#undef X
  PLAN_N_OPS
};

#endif
