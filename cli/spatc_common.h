/* spatc_common.h: what the spatc subcommands share.
 *
 * One option table (SPATC_OPTS) gives every option's spelling, argument and
 * help line; a subcommand lists the ids it accepts and gets parsing, usage
 * and --help from it.  Then: loading a pattern (file, --pattern, -D),
 * binding its run-time arguments (--runtime, --input, --plugin), the seeded
 * random tensors, and printing errors.  Only the driver prints; every
 * function here that fails has already written its message to stderr and
 * returns the exit status to use.  Implemented in spatc_common.c (command
 * line, loading, binding) and spatc_tensors.c (tensors, mask rows).
 *
 * Everything about patterns and kernels goes through the public API
 * (include/spat.h), as a user program's would; the driver adds the command
 * line, files (npy, png, svg) and printing.
 */
#ifndef SPAT_SPATC_COMMON_H
#define SPAT_SPATC_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "npy.h"
#include "spat.h"

enum { SPATC_OK = 0, SPATC_EUSER = 1, SPATC_EUSAGE = 2 };

/* X(id, long name, short letter or 0, metavar or NULL (a flag), help).  Two
 * options may share a long name when no command takes both (--target: a
 * CPU for compile, a recall for tune): a command gets the one it takes. */
#define SPATC_OPTS(X)                                                        \
  X(HELP, "help", 'h', NULL, "print this help and exit")                     \
  X(VERBOSE, "verbose", 'v', NULL, "say more")                               \
  X(PATTERN, "pattern", 'p', "NAME",                                         \
    "the pattern (default: the only or last one)")            \
  X(DEFINE, "define", 'D', "NAME=INT",                                       \
    "override a compile-time parameter (repeatable)")                        \
  X(RUNTIME, "runtime", 0, "NAME=INT",                                       \
    "value of a runtime scalar (repeatable)")                                \
  X(INPUT, "input", 0, "NAME=FILE.npy",                                      \
    "an input array: int32, Lk entries (repeatable)")                        \
  X(PLUGIN, "plugin", 0, "LIB.so",                                           \
    "library defining the extern functions")                \
  X(LQ, "lq", 0, "N", "query rows")                                          \
  X(LK, "lk", 0, "N", "keys (default: Lq, or --len)")                        \
  X(LEN, "len", 'L', "N", "sequence length: Lq = Lk = N")                    \
  X(HEADS, "heads", 'H', "N", "query heads (default 1)")                     \
  X(KVHEADS, "kv-heads", 0, "N",                                             \
    "key/value heads, dividing --heads (default: --heads)")                  \
  X(HEAD, "head", 0, "H", "only head H")                                     \
  X(BATCH, "batch", 'B', "N", "batch size (default 1)")                      \
  X(DIM, "dim", 'd', "N", "head dimension (default 64)")                     \
  X(SEED, "seed", 's', "S", "draw q, k, v at random from seed S")  \
  X(Q, "q", 0, "FILE.npy", "queries: <f4, <f2 or <u2 (bf16 bits)")          \
  X(K, "k", 0, "FILE.npy", "keys, as --q")                                   \
  X(V, "v", 0, "FILE.npy", "values, as --q")                                 \
  X(DTYPE, "dtype", 0, "f32|bf16|f16",                                       \
    "element type of q, k, v, o (default f32)")                              \
  X(LAYOUT, "layout", 0, "bhld|blhd",                                        \
    "axis order of q, k, v (default bhld)")                                  \
  X(SCALE, "scale", 0, "F", "score scale (default 1/sqrt(D))")               \
  X(FORMAT, "format", 'f', "FMT", "ascii (default), npy, png or svg")        \
  X(PX, "px", 0, "N",                                                        \
    "png/svg: at most N pixels a side (default 1024)")                       \
  X(FORCE, "force", 0, NULL, "print ascii masks wider than 512 columns")     \
  X(OUTPUT, "output", 'o', "FILE", "write the result to FILE")              \
  X(LSE, "lse", 0, "FILE.npy", "also write log-sum-exp, [B, H, Lq]")         \
  X(BACKEND, "backend", 0, "NAME", "jit or interp")                          \
  X(THREADS, "threads", 'j', "N", "threads (default 0: all cores)")          \
  X(BQ, "bq", 0, "N", "query tile rows")                                     \
  X(BK, "bk", 0, "N", "key tile columns")                                    \
  X(REPEATS, "repeats", 0, "N", "timed runs after a warm-up (default 5)")   \
  X(JSON, "json", 0, NULL, "one JSON object on stdout")                      \
  X(NO_DENSE, "no-dense", 0, NULL, "skip the dense OpenBLAS baseline")       \
  X(EMIT, "emit", 0, "KIND",                                                 \
    "obj (default: object and header), asm, llvm, header or shared")         \
  X(TARGET, "target", 0, "CPU", "native (default), x86-64-v3 or x86-64-v4")  \
  X(CPU, "cpu", 0, "CPU", "target CPU by LLVM name, e.g. skylake")           \
  X(NAME, "name", 0, "NAME", "C name of the entry (default: the pattern's)") \
  X(HEADER, "header", 0, "FILE", "the header (default: OUT with .h)")        \
  X(NO_CACHE, "no-cache", 0, NULL, "compile anew, without the disk cache") \
  X(REFERENCE, "reference", 0, "EXPR",                                       \
    "the dense reference pattern (default full; e.g. causal)")               \
  X(GOAL, "target", 0, "R",                                                  \
    "the recall to keep, in (0, 1] (default 0.95)")                          \
  X(BY, "by", 0, "mean|min", "which recall must reach --target (default mean)") \
  X(PARAM, "param", 0, "NAME=LO:HI",                                         \
    "search NAME over the powers of 2 in [LO, HI] (repeatable)")             \
  X(MAX_EVALS, "max-evals", 0, "N", "settings measured at most (default 48)") \
  X(DIFF, "diff", 0, "FILE", "colour the pairs only FILE's pattern allows, only this one, both") \
  X(DIFF_PATTERN, "diff-pattern", 0, "NAME", "the pattern of --diff's FILE") \
  X(TILES, "tiles", 0, NULL, "overlay the kernel's tile plan (full, partial, skipped)") \
  X(BACKWARD, "backward", 0, NULL, "also time the backward pass")           \
  X(GRAD, "grad", 0, NULL, "also run the backward pass (dq, dk, dv)")       \
  X(DOUT, "do", 0, "FILE.npy",                                               \
    "--grad: dL/do, shaped as o (default: drawn from the seed)")             \
  X(DQ, "dq", 0, "FILE.npy", "--grad: write dq, [B, H, Lq, D]")             \
  X(DK, "dk", 0, "FILE.npy", "--grad: write dk, [B, Hkv, Lk, D]")           \
  X(DV, "dv", 0, "FILE.npy", "--grad: write dv, [B, Hkv, Lk, D]")  \
  X(PAGE_TABLE, "page-table", 0, "FILE.npy",                                 \
    "paged KV cache: page ids [B, max_pages], int32; --k, --v are pools "    \
    "[n_pages, page_size, Hkv, D]")                                          \
  X(SEQ_LENS, "seq-lens", 0, "FILE.npy",                                     \
    "paged KV cache: keys of each sequence [B], int32")

typedef enum {
  OPT_NONE = 0,
#define X(id, l, s, m, h) OPT_##id,
  SPATC_OPTS(X)
#undef X
  OPT_N
} spatc_opt;

enum { CLI_END = -1, CLI_POS = -2, CLI_ERR = -3 };

/* A subcommand's command line, walked one option at a time. */
typedef struct cli {
  int argc;
  char **argv;
  int k;               /* next argv index */
  const char *cmd;     /* "mask", for messages */
  const char *synopsis;/* "FILE --lq N [options]" */
  const char *about;   /* one paragraph for --help */
  const spatc_opt *ok; /* accepted options, OPT_NONE-terminated */
  const char *arg;     /* the argument of the last option or positional */
  const char *spelled; /* the option as written ("--lq"), for messages */
  bool no_more_opts;   /* after "--" */
  char spelled_buf[80];
} cli;

void cli_init(cli *c, int argc, char **argv, const char *synopsis,
              const char *about, const spatc_opt *ok);
/* An OPT_* id (its argument in c->arg), CLI_POS (c->arg), CLI_END, or
 * CLI_ERR after a usage message on stderr. */
int cli_next(cli *c);
void cli_help(const cli *c, FILE *f);  /* --help text */
int cli_usage_error(const cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));   /* prints, returns 2 */
/* The current option's argument as an integer in [lo, hi]; else a usage
 * error (returns false). */
bool cli_int(const cli *c, int64_t lo, int64_t hi, int64_t *out);
bool cli_float(const cli *c, double *out);

/* "spatc: error: ..." on stderr; returns 1. */
int spatc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a library message: as-is when it already reads "...: error: ...",
 * else prefixed "spatc: error: ". Returns 1. */
int spatc_lib_error(const char *msg);
/* A failed call of the API on ctx: its message (spatc_lib_error), unless
 * it failed on a pattern's diagnostics, which the context's callback has
 * already printed.  Returns 1. */
int spatc_api_error(const spat_ctx *ctx, spat_status st);

/* "NAME=VALUE" options, in command-line order. */
typedef struct kv_list {
  int n, cap;
  const char **name;
  const char **value;  /* the text after '=' */
} kv_list;

/* What selects and feeds a pattern: shared by every command with a FILE. */
typedef struct spatc_sel {
  const char *file;
  const char *pattern;       /* --pattern or NULL */
  int n_defs, cap_defs;
  spat_param *defs;          /* -D */
  kv_list runtime;           /* --runtime */
  kv_list inputs;            /* --input */
  const char *plugin;        /* --plugin */
  char **strs;               /* the names above (malloc) */
  int n_strs, cap_strs;
} spatc_sel;

void sel_init(spatc_sel *s);
void sel_free(spatc_sel *s);
/* Handles OPT_PATTERN/DEFINE/RUNTIME/INPUT/PLUGIN.  1: handled; 0: not a
 * selection option; -1: bad argument (usage message printed). */
int sel_option(spatc_sel *s, const cli *c, int id);

/* A loaded pattern: the context (its diagnostics go to stderr), the
 * module of the file and, after spatc_load, the selected pattern with its
 * -D values, its description and its title. */
typedef struct spatc_pat {
  spat_ctx *ctx;
  spat_module *m;
  spat_pattern *p;
  spat_pattern_info info;
  char *title;               /* "name(w = 2, g = 1)" (malloc) */
} spatc_pat;

/* 0, or an exit status after printing (missing file, diagnostics). */
int spatc_open(spatc_pat *sp, const char *path);
int spatc_load(spatc_pat *sp, const spatc_sel *s);
void spatc_pat_free(spatc_pat *sp);

/* The pattern's runtime scalars: the first n of info.args. */
size_t spatc_n_runtime(const spat_pattern_info *info);

/* The run-time arguments of a pattern: its kernels' arguments (runtime
 * scalars, input arrays) and the extern functions, registered in the
 * pattern's context. */
typedef struct spatc_bound {
  spat_value *args;          /* the signature's, in order */
  size_t n_args;
  npy_array *arrays;         /* the input arrays' files, one per argument */
  void *dl;                  /* dlopen handle of --plugin */
  char *title;               /* spatc_pattern_title's, with the values */
} spatc_bound;

/* --runtime values, else the defaults, into out[spatc_n_runtime]; 0 or 1
 * after printing (unknown names, missing values). */
int spatc_bind_runtime(int64_t *out, const spatc_pat *sp, const spatc_sel *s);
/* Also the input arrays and extern functions: 0 or 1 after printing
 * (unknown or missing names, bad arrays). */
struct spatc_args;
int spatc_bind(spatc_bound *b, const spatc_pat *sp, const spatc_sel *s,
               const struct spatc_args *sizes);
void spatc_bound_free(spatc_bound *b);

/* Sizes and tensors: --batch --heads --kv-heads --lq --lk --len --dim
 * --head --seed --q --k --v --layout.  0: not given. */
typedef struct spatc_shape {
  int64_t B, H, Hkv, Lq, Lk, L, D;
  int64_t head;              /* --head; -1: every head */
  bool seeded;
  uint64_t seed;
  const char *q, *k, *v;
  int layout;                /* 0 bhld, 1 blhd */
} spatc_shape;

void shape_init(spatc_shape *s);
/* Like sel_option, for the options above. */
int shape_option(spatc_shape *s, const cli *c, int id);

/* A command's own options: 0 when taken, an exit status after printing, or
 * -1 when id is not one of them. */
typedef int (*cli_opt_fn)(void *ctx, const cli *c, int id);

enum { SPATC_HELP = -1 };   /* spatc_parse: --help was printed */

/* The command line of a command taking one FILE (into sel->file, required):
 * --help, the selection options, the sizes when sh is not NULL, and every
 * other option through fn.  SPATC_OK, SPATC_HELP, or an exit status after
 * printing. */
int spatc_parse(cli *c, spatc_sel *sel, spatc_shape *sh,
                cli_opt_fn fn, void *ctx);

enum { QKV_SIZES = 0, QKV_QK = 1, QKV_QKV = 2 };

/* A float32 tensor, the head dimension D contiguous, with element strides
 * of batch, head and row: x[b, h, r, :] = data + b*sb + h*sh + r*sl. */
typedef struct spatc_tensor {
  float *data;
  int64_t sb, sh, sl;
} spatc_tensor;

/* Strides of contiguous [B, H, L, D] (layout 0) or [B, L, H, D] (1). */
void spatc_strides(spatc_tensor *t, int layout, int64_t H, int64_t L,
                   int64_t D);

/* The sizes and the q, k, v of a run, in the layout given. */
typedef struct spatc_args {
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout;                /* spat_layout */
  spatc_tensor q, k, v;
} spatc_args;

/* a as the library's tensors; o, lse and scale unset. */
spat_tensors spatc_tensors(const spatc_args *a);

/* q, k, v of a run: read from --q/--k/--v (validated, sizes taken from them)
 * or drawn from --seed; their memory. */
typedef struct spatc_qkv {
  float *mem[3];             /* owned: malloc'd buffers or npy data */
  npy_array file[3];
} spatc_qkv;

/* Fills a->B, H, Hkv, Lq, Lk, D, layout and, as need asks (QKV_QK: q and
 * k; QKV_QKV: all three), the tensors of a.  Returns 0 or the exit status
 * after printing. */
int spatc_qkv_setup(spatc_qkv *t, spatc_args *a, const spatc_shape *s,
                    const cli *c, int need);
void spatc_qkv_free(spatc_qkv *t);

/* Everything needed to compute mask rows (mask, stats): the pattern, q and k
 * when it has topk, its bound arguments, its reference interpreter kernel
 * (spat_kernel_mask), and the heads asked for. */
typedef struct spatc_rows {
  spatc_pat pat;
  spatc_qkv qkv;
  spatc_bound bound;
  spatc_args a;
  spat_kernel *kernel;
  int64_t h0, h1;            /* heads [h0, h1) */
} spatc_rows;

/* 0 or the exit status after printing. */
int spatc_rows_open(spatc_rows *r, const spatc_sel *sel,
                    const spatc_shape *sh, const cli *c);
/* Rows [r0, r0 + n) of head h into out[n * Lk]: out[t * Lk + j] =
 * M(h, i(r0 + t), j); 0, or 1 after printing. */
int spatc_rows_get_n(spatc_rows *r, int64_t h, int64_t r0, int64_t n,
                     uint8_t *out);
/* Calls fn(ctx, h, r0, n, rows) for every head of r and every query row, in
 * chunks of consecutive rows (rows[t * Lk + j] = M(h, i(r0 + t), j)), from
 * `threads` workers at once (0: every core).  fn must touch only what
 * belongs to its rows.  0, or 1 after printing the first error in row
 * order. */
typedef void (*spatc_rows_fn)(void *ctx, int64_t h, int64_t r0, int64_t n,
                              const uint8_t *rows);
int spatc_rows_each(spatc_rows *r, int threads, spatc_rows_fn fn, void *ctx);
void spatc_rows_close(spatc_rows *r);

/* "name(w = 2, g = 1)": the pattern with its bound parameters; with b (not
 * NULL) also the values of its runtime scalars, "name(w = 2, runtime n =
 * 3)" (kept in b). */
const char *spatc_pattern_title(const spatc_pat *sp, spatc_bound *b);

/* The spec's splitmix64 mix (the generator of --seed, spatc(1)). */
static inline uint64_t spatc_mix(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Seeded random tensor: standard normal values in logical [B, H, L, D]
 * order whatever the strides (see the man page, ENVIRONMENT). */
void spatc_randn(const spatc_tensor *t, int64_t B, int64_t H, int64_t L,
                 int64_t D, uint64_t seed, int stream);

/* Reads a float32 npy of ndim dims (float16 '<f2' and bfloat16 bits '<u2'
 * are widened to float32); 0 or 1 after printing. */
int spatc_read_f32(const char *what, const char *path, int ndim,
                   npy_array *out);

/* 0 for a readable regular file, else 1 after "spatc: error: PATH: why". */
int spatc_check_file(const char *path);
const char *spatc_dtype_name(npy_dtype t);   /* "float32", ... */

/* --dtype's argument: 0 and *out, or an exit status after printing. */
int spatc_dtype_option(const cli *c, spat_dtype *out);
/* The npy type of o for a kernel dtype: <f4, <u2 (bf16 bits), <f2. */
npy_dtype spatc_npy_of(spat_dtype t);

double spatc_now_ms(void);
double spatc_cpu_ms(void);       /* CPU time of the process, all threads */
int spatc_cores(void);           /* online CPUs, >= 1 */
void *spatc_xmalloc(size_t n);   /* NULL after printing "out of memory" */

/* fn(ctx, c, scratch) for the chunks c in [0, n), handed out in order on up
 * to `threads` threads (0: one per core), each with its own `scratch` bytes;
 * false (or no scratch memory) fails the chunk and stops the hand-out after
 * it.  Returns the lowest failing chunk, or n when none failed. */
typedef bool (*spatc_chunk_fn)(void *ctx, long long c, void *scratch);
long long spatc_chunks(long long n, int threads, size_t scratch,
                       spatc_chunk_fn fn, void *ctx);

#endif
