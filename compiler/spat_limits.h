/* spat_limits.h: every resource limit of the compiler, in one place.
 *
 * Each limit turns input that would otherwise cost unbounded time or memory
 * into an error with a location (file:line:col where there is one).  They
 * are documented in docs/language.md ("Limits"); the tests in
 * tests/unit/test_limits.c exercise each one.  Work is linear (or n log n)
 * in the sizes below, so a limit is never a substitute for an algorithm.
 */
#ifndef SPAT_SPAT_LIMITS_H
#define SPAT_SPAT_LIMITS_H

/* Source text: one file, in bytes (spans are int offsets). */
#define SPAT_MAX_FILE_BYTES (64 << 20)
/* Nested imports (a chain a -> b -> c ...). */
#define SPAT_MAX_IMPORT_DEPTH 64
/* Brackets ( [ { open at once, counted by the lexer. */
#define SPAT_MAX_NESTING 256
/* Depth of one parsed expression tree. */
#define SPAT_MAX_EXPR_DEPTH 512
/* Syntax errors reported before a parse gives up. */
#define SPAT_MAX_PARSE_ERRORS 50
/* Translator recursion after inlining lets and pattern calls. */
#define SPAT_MAX_INLINE_DEPTH 1500
/* IR nodes of one instantiated pattern, counted as if every let and call
 * were copied at each use (the tree the interpreter walks per mask
 * element).  The IR itself shares a let or call used several times, so
 * the stored program is often far smaller. */
#define SPAT_MAX_IR_NODES 2000000
/* Arguments of an extern function. */
#define SPAT_MAX_EXTERN_ARGS 16

/* The JIT/AOT compile budget, in IR nodes emitted as LLVM code: every
 * node of the shared IR is emitted once (a shared or large sub-pattern
 * becomes a function of its own), integer expressions once per use.  A
 * pattern over the budget is an error at the pattern, never a long
 * compile: run it with the interpreter.  Compile time is about linear in
 * this count (a few ms per 100 nodes). */
#define SPAT_MAX_JIT_NODES 60000
/* IR nodes of one generated function: a sub-pattern larger than this is
 * compiled as a function of its own (LLVM's optimiser is superlinear in a
 * function's size); an integer expression cannot be split, so one larger
 * than SPAT_MAX_JIT_EXPR_NODES is an error at the expression. */
#define SPAT_JIT_FN_NODES 96
#define SPAT_MAX_JIT_EXPR_NODES 4000

/* Tile-plan code words; a larger plan is replaced by "every key PARTIAL"
 * (correct, only slower: every tile runs the mask code). */
#define SPAT_MAX_PLAN_WORDS (1 << 20)

/* `spatc explain`: (query tile, key tile) pairs it enumerates, over the
 * heads shown (an error beyond: use larger tiles), and mask elements it
 * evaluates exactly per head (beyond which it samples rows). */
#define SPAT_MAX_EXPLAIN_TILES ((long long)1 << 28)
#define SPAT_MAX_EXPLAIN_EXACT 40000000
/* ... and for a pattern of more than 25 IR nodes expanded, interpreter node
 * evaluations (elements x expanded size) per head. */
#define SPAT_MAX_EXPLAIN_WORK 100000000

#endif
