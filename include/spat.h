/* spat.h: the public C API of spatc, the compiler for sparse attention
 * patterns.  The only header a program using libspat needs.
 *
 *   spat_ctx_new            a context: error messages, diagnostics, extern
 *                           functions
 *   spat_pattern_parse_*    .pat text -> a checked pattern (spat_pattern)
 *   spat_pattern_set_param  compile-time parameters (as `-D w=1024`)
 *   spat_compile            pattern + head dimension + layout -> spat_kernel
 *                           (LLVM JIT or the reference interpreter)
 *   spat_kernel_run / _call attention: o = softmax(scale q k^T | mask) v
 *   spat_kernel_backward    its gradients dq, dk, dv (training)
 *   spat_module_*           every pattern of a text (listing, selecting)
 *   spat_pattern_describe   a pattern's arguments and externs, before compiling
 *   spat_kernel_mask        the mask M(h, i, j) a kernel applies, row by row
 *   spat_kernel_tiles       the tiles its plan visits (full, partial, skipped)
 *   spat_pattern_explain    the IR and the tile plan, as text
 *   spat_emit               ahead-of-time objects and C headers
 *   spat_cache_*            the disk kernel cache: where, what, emptying
 *
 * Every function that can fail returns a spat_status; the message of the
 * last failure is spat_ctx_error(ctx).  The library never prints and never
 * exits.  Pattern errors are rendered as `file:line:col: error: ...` with the
 * source line and a caret (spat_ctx_last_diagnostics, or a callback).
 *
 * Thread safety: every function may be called from any thread at any time,
 * on shared objects too.
 *  - Contexts: registering functions, setting the callback, parsing,
 *    compiling and reading messages may overlap in several threads (a lock
 *    in the context guards them).  Separate contexts share nothing, so
 *    compiling in parallel scales best with a context per thread.
 *  - Modules and patterns: one pattern may be compiled (described,
 *    explained, emitted) from several threads at once, and patterns may be
 *    selected from one module in several threads (instantiating takes
 *    turns per module, the backends run in parallel); a
 *    spat_pattern_set_param racing a compile applies to that compile or to
 *    the next.
 *  - Kernels are immutable: spat_kernel_run / spat_kernel_call / the typed
 *    entry may be called concurrently from any number of threads, on the
 *    same kernel or on different ones.  Each call's status is its own.
 *  - Messages: spat_ctx_error and spat_ctx_last_diagnostics return the
 *    calling thread's own copy, taken under the lock.  "Last" is the
 *    context's most recent failure from any thread, so threads that need
 *    their own messages use their own contexts.
 *  - Lifetimes: objects are freed in any order, from any thread; a kernel
 *    keeps what it needs of its pattern and context.  An object freed while
 *    another thread is in a call on it (a run, a compile) goes when that
 *    call returns.  Freeing an object twice, or passing a pointer that is
 *    not a live object of its type (freed, never made, another type), is
 *    detected without reading it: the spat_*_free functions ignore it and
 *    every other function returns SPAT_EINVAL (NULL, 0 or "" where it
 *    returns a pointer or a count); no call touches freed memory.  (Objects
 *    are known by address: once a freed object's address is reused for a
 *    new object of the same type, the old pointer names the new one.)
 *    What a function returns (a name, the
 *    signature, the typed entry) lives as long as its object.  The typed
 *    entry is a plain C function: it must not be called once its kernel is
 *    freed.
 *  - The diagnostic callback runs in the thread that parsed or compiled,
 *    outside the library's locks (it may call the library), possibly in
 *    several threads at once when they share the context.
 *
 * Tensors are float32, or bf16 / fp16 (spat_compile_options.dtype), the
 * head dimension D contiguous:
 *   q [B, H, Lq, D], k and v [B, Hkv, Lk, D], o [B, H, Lq, D], lse [B, H, Lq]
 * for SPAT_LAYOUT_BHLD, or [B, L, H, D] for SPAT_LAYOUT_BLHD (lse stays
 * [B, H, Lq]).  Grouped-query attention: H a multiple of Hkv.
 */
#ifndef SPAT_H
#define SPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SPAT_API __attribute__((visibility("default")))
#else
#define SPAT_API
#endif

#define SPAT_VERSION_MAJOR 0
#define SPAT_VERSION_MINOR 1
#define SPAT_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, as spat_version() returns it. */
#define SPAT_VERSION \
  (SPAT_VERSION_MAJOR * 10000 + SPAT_VERSION_MINOR * 100 + SPAT_VERSION_PATCH)

/* The version of the library actually linked; compare with SPAT_VERSION
 * (the same major number is required for compatibility). */
SPAT_API int spat_version(void);
SPAT_API const char *spat_version_string(void); /* "0.1.0" */

typedef enum spat_status {
  SPAT_OK = 0,
  SPAT_EINVAL, /* bad argument: NULL, shape, stride, missing input,
                  unknown name, wrong kind or number of arguments */
  SPAT_EPARSE, /* the pattern has errors: see the diagnostics */
  SPAT_ERANGE, /* size overflow, or a run-time error of the pattern
                  (overflow, division by zero, index out of range) */
  SPAT_ENOMEM,
  SPAT_EUNSUPPORTED, /* e.g. a head dimension the backend cannot compile */
  SPAT_EIO,          /* a file cannot be read */
  SPAT_EINTERNAL,    /* a bug in spatc: please report it */
} spat_status;

/* "SPAT_OK", "SPAT_EINVAL", ...; "SPAT_E?" for an unknown value. */
SPAT_API const char *spat_status_name(spat_status s);

typedef struct spat_ctx spat_ctx;
typedef struct spat_pattern spat_pattern;
typedef struct spat_kernel spat_kernel;

/* ---- context ------------------------------------------------------------ */

SPAT_API spat_ctx *spat_ctx_new(void); /* NULL when out of memory */
/* NULL, or a context already freed, is ignored.  Its patterns and kernels
 * keep working; the context goes with the last of them. */
SPAT_API void spat_ctx_free(spat_ctx *ctx);

/* The message of the last failure in this context ("" if none yet), as a
 * copy owned by the calling thread: valid until this thread calls
 * spat_ctx_error again or exits. */
SPAT_API const char *spat_ctx_error(const spat_ctx *ctx);

/* The diagnostics of the last parse or compile, rendered as gcc does
 * (`file:line:col: error: ...`, source line, caret); "" if there were none.
 * A copy owned by the calling thread, valid until this thread calls
 * spat_ctx_last_diagnostics again or exits. */
SPAT_API const char *spat_ctx_last_diagnostics(const spat_ctx *ctx);

/* Called with the rendered diagnostics (one or more, each ending in '\n')
 * whenever a parse or compile in this context produces any.  NULL: none. */
typedef void (*spat_diag_fn)(void *user, const char *text);
SPAT_API void spat_ctx_set_diagnostic_fn(spat_ctx *ctx, spat_diag_fn fn,
                                         void *user);

/* Any function pointer; extern predicates are registered as one. */
typedef void (*spat_fn)(void);
#define SPAT_FN(f) ((spat_fn)(f))

/* Registers the C function behind `extern fn name(int, ..., int) -> bool;`:
 * it must be   bool f(int64_t a0, ..., int64_t a{nargs-1})   (0 <= nargs
 * <= 16), pure and thread-safe: kernels call it from their worker threads.
 * Registering a name again replaces the function for later compiles.
 * Externs are resolved at spat_compile: an unregistered name, or one
 * registered with another number of arguments than the pattern declares, is
 * an error there. */
SPAT_API spat_status spat_ctx_register_fn(spat_ctx *ctx, const char *name,
                                          spat_fn fn, int nargs);

/* ---- patterns ----------------------------------------------------------- */

/* Parses and checks .pat text and selects a pattern by name: one of the
 * text's or of a file it imports (NULL: the text's only or last one).
 * source_name is used in diagnostics (NULL:
 * "<string>"); imports are resolved relative to source_name's directory
 * (the current directory when it names none).  SPAT_EPARSE: the text has
 * errors (see the diagnostics). */
SPAT_API spat_status spat_pattern_parse_string(spat_ctx *ctx,
                                               const char *source_name,
                                               const char *text,
                                               const char *pattern_name,
                                               spat_pattern **out);
/* The same for a file (imports relative to it).  SPAT_EIO: unreadable, or
 * not a regular file (a FIFO, a device, a directory: refused, never waited
 * on). */
SPAT_API spat_status spat_pattern_parse_file(spat_ctx *ctx, const char *path,
                                             const char *pattern_name,
                                             spat_pattern **out);
/* NULL, or a pattern already freed, is ignored. */
SPAT_API void spat_pattern_free(spat_pattern *p);

SPAT_API const char *spat_pattern_name(const spat_pattern *p);

/* Sets a compile-time parameter for the next spat_compile (as `-D name=v`).
 * SPAT_EINVAL: the pattern has no such parameter.  A value the pattern
 * rejects (a negative window, ...) is reported by spat_compile. */
SPAT_API spat_status spat_pattern_set_param(spat_pattern *p, const char *name,
                                            int64_t value);
/* Compile-time parameters, k in [0, n): name and current value. */
SPAT_API size_t spat_pattern_n_params(const spat_pattern *p);
SPAT_API spat_status spat_pattern_param(const spat_pattern *p, size_t k,
                                        const char **name, int64_t *value);

/* ---- modules: every pattern of a text ----------------------------------- */

/* A parsed and checked .pat text (with its imports) from which patterns are
 * selected; spat_pattern_parse_* are a parse and a select in one. */
typedef struct spat_module spat_module;

/* Parses and checks .pat text without selecting a pattern (a text with no
 * pattern is fine).  source_name as for spat_pattern_parse_string.
 * Errors: SPAT_EINVAL (NULL ctx, text or out), SPAT_EPARSE (see the
 * diagnostics), SPAT_ENOMEM. */
SPAT_API spat_status spat_module_parse_string(spat_ctx *ctx,
                                              const char *source_name,
                                              const char *text,
                                              spat_module **out);
/* The same for a file (imports relative to it).  SPAT_EIO: unreadable, or
 * not a regular file (as spat_pattern_parse_file). */
SPAT_API spat_status spat_module_parse_file(spat_ctx *ctx, const char *path,
                                            spat_module **out);
/* A module may be freed before the patterns selected from it.  NULL, or a
 * module already freed, is ignored. */
SPAT_API void spat_module_free(spat_module *m);

/* The patterns of the main text (not of its imports), in definition order. */
SPAT_API size_t spat_module_n_patterns(const spat_module *m);

/* A compile-time parameter as declared. */
typedef struct spat_param_decl {
  const char *name;
  bool has_default;
} spat_param_decl;

typedef struct spat_pattern_decl {
  const char *name;
  /* A one-line signature, e.g. "longformer(w = 512, g = 1)" or
   * "docs(input doc: int[])". */
  const char *signature;
  /* A compile-time parameter without a default: the pattern is selected
   * only with a value for it (spat_module_select's params). */
  bool needs_params;
  /* Its compile-time parameters (not runtime scalars or inputs), in
   * declaration order. */
  size_t n_params;
  const spat_param_decl *params;
} spat_pattern_decl;

/* Pattern k of the module, k in [0, n); the strings live as long as the
 * module.  SPAT_EINVAL: NULL arguments or k out of range. */
SPAT_API spat_status spat_module_pattern(const spat_module *m, size_t k,
                                         spat_pattern_decl *out);

/* A compile-time parameter value, as `-D name=value`. */
typedef struct spat_param {
  const char *name;
  int64_t value;
} spat_param;

/* Selects and checks one pattern of the module by name, one of the main
 * text's or of a file it imports (NULL: the main text's only or last one), with n_params parameter values (the others at their defaults),
 * as spat_pattern_parse_* followed by spat_pattern_set_param would, except
 * that the values are checked now, as a whole, with the diagnostics a
 * compile would give (an unknown name, a value the pattern rejects).  The
 * pattern does not need the module afterwards.
 * Errors: SPAT_EINVAL (NULL m or out, no such pattern: the message lists
 * the module's patterns), SPAT_EPARSE (see the diagnostics), SPAT_ENOMEM. */
SPAT_API spat_status spat_module_select(spat_module *m, const char *name,
                                        const spat_param *params,
                                        size_t n_params, spat_pattern **out);

/* ---- files ----------------------------------------------------------- */

/* Opens path to read, only when it is a regular file, without ever blocking
 * (open with O_NONBLOCK, then fstat on the descriptor: no race between the
 * check and the open; O_NONBLOCK is cleared after).  The library reads every
 * file this way (patterns, imports, cache entries); a program reading its
 * own inputs may too.  A descriptor (the caller closes it), or -1 with *why
 * (when why is not NULL) a static text: the system's reason, "Is a
 * directory", or "not a regular file (a FIFO)" and the like. */
SPAT_API int spat_open_regular(const char *path, const char **why);

/* ---- compiling ---------------------------------------------------------- */

typedef enum spat_backend {
  SPAT_BACKEND_JIT = 0,    /* LLVM: fused, tiled, multi-threaded */
  SPAT_BACKEND_INTERP = 1, /* the reference interpreter (exact, slow) */
} spat_backend;

typedef enum spat_layout {
  SPAT_LAYOUT_BHLD = 0, /* [B, H, L, D] */
  SPAT_LAYOUT_BLHD = 1, /* [B, L, H, D] */
} spat_layout;

/* The element type of q, k, v and o (lse is always float32).  bf16 and
 * fp16 elements are uint16_t bit patterns (bfloat16: the high half of a
 * float32; IEEE binary16); scores, softmax and sums are float32 (the
 * interpreter: double) and o is rounded to nearest even at the end. */
typedef enum spat_dtype {
  SPAT_DTYPE_F32 = 0,
  SPAT_DTYPE_BF16 = 1,
  SPAT_DTYPE_F16 = 2,
} spat_dtype;

/* n elements from src (type from) to dst (type to), through float32:
 * widening is exact, narrowing rounds to nearest even (overflow: infinity;
 * NaN stays NaN).  src and dst may be the same buffer only when the types
 * have the same size.  SPAT_EINVAL for an unknown type or NULL buffers. */
SPAT_API spat_status spat_convert(const void *src, spat_dtype from, void *dst,
                                  spat_dtype to, size_t n);

typedef struct spat_compile_options {
  int64_t D; /* head dimension (>= 1) */
  spat_layout layout;
  int threads; /* worker threads per run; 0: all cores */
  spat_backend backend;
  /* JIT only, nonzero: keep the compiled kernel in the disk cache
   * ($XDG_CACHE_HOME/spatc, else ~/.cache/spatc) and reuse it when the same
   * pattern, parameters and options are compiled again on this CPU.  When
   * the cache cannot be used (e.g. a read-only directory), the kernel is
   * compiled as without it (signature's from_cache 0). */
  int cache;
  spat_dtype dtype; /* of q, k, v, o; part of the cache key */
} spat_compile_options;

/* Instantiates the pattern with its parameters and compiles it.  The kernel
 * does not depend on the pattern afterwards (spat_pattern_free is fine). */
SPAT_API spat_status spat_compile(spat_pattern *p,
                                  const spat_compile_options *opts,
                                  spat_kernel **out);
/* NULL, or a kernel already freed, is ignored.  Runs in other threads
 * finish first (the kernel goes when the last returns). */
SPAT_API void spat_kernel_free(spat_kernel *k);

/* ---- running ------------------------------------------------------------ */

/* A paged KV cache (vLLM's block_table convention).  With it, k and v are
 * pools of pages [n_pages, page_size, Hkv, D] (whatever the layout; q, o
 * and lse keep theirs), sequence b of the batch has seq_lens[b] keys (its
 * Lk), and its key j is row j % page_size of page page_table[b * max_pages
 * + j / page_size].  Each sequence is its own attention: the pattern's
 * positions are positions in the sequence, its query rows bottom-right
 * aligned to its own length (Lq <= seq_lens[b]: row r is position r +
 * seq_lens[b] - Lq).  spat_tensors.Lk must be 0.  Checked per call: page
 * ids in [0, n_pages) for the pages a sequence uses (the rest of its row is
 * not read), 0 <= seq_lens[b] <= max_pages * page_size.  Not supported
 * (SPAT_EUNSUPPORTED): patterns with input arrays or top-k, and kernels
 * without a decode tile (user AOT objects; disk-cache kernels have one). */
typedef struct spat_paged_kv {
  const int32_t *page_table; /* [B, max_pages] page ids */
  const int32_t *seq_lens;   /* [B] keys of each sequence */
  int64_t n_pages;           /* pages in each of the k and v pools */
  int64_t page_size;         /* keys per page, >= 1 */
  int64_t max_pages;         /* the row length of page_table */
} spat_paged_kv;

typedef struct spat_tensors {
  int64_t B, H, Hkv, Lq, Lk; /* Hkv 0: H; each may be 0: Lk = 0 makes
                                every row empty (o = 0, lse = -inf) */
  const void *q, *k, *v;     /* read: float, or uint16_t (bf16, fp16) as
                                the kernel's dtype says */
  void *o;                   /* written, of the kernel's dtype */
  float *lse;                /* NULL, or [B, H, Lq] log-sum-exp, written
                                (-inf for a row with no allowed key) */
  float scale;               /* 0: 1 / sqrt(D) */
  const spat_paged_kv *paged; /* NULL: k, v dense [B, Hkv, Lk, D] */
} spat_tensors;

/* A kernel's arguments are its pattern's `runtime` scalars (int64_t), in
 * declaration order, then its `input` arrays, in declaration order: int
 * inputs as const int32_t *, float inputs (language version 2) as
 * const float *.  An input holds the product of its dimensions elements,
 * C-contiguous (last dimension fastest); spat_arg_shape gives them for the
 * sizes of a run (`int[]` is one dimension of Lk). */
typedef enum spat_kind {
  SPAT_KIND_SCALAR = 1,      /* `runtime n`: int64_t */
  SPAT_KIND_INPUT = 2,       /* `input doc: int[...]`: const int32_t * */
  SPAT_KIND_FLOAT_INPUT = 3, /* `input slope: float[...]`: const float * */
} spat_kind;

#define SPAT_MAX_DIMS 8

typedef struct spat_arg_info {
  const char *name;
  spat_kind kind;
  bool has_default; /* scalars: the pattern gives a default */
  int64_t default_value;
  int n_dims;        /* inputs: how many dimensions (1..SPAT_MAX_DIMS) */
  const void *shape; /* inputs: for spat_arg_shape (internal) */
} spat_arg_info;

/* The dimensions of input argument a for a run's sizes into dims[n_dims];
 * returns n_dims, or -1 when a is not an input or a dimension is negative
 * (or its size overflows) for these sizes. */
SPAT_API int spat_arg_shape(const spat_arg_info *a, int64_t B, int64_t H,
                            int64_t Hkv, int64_t Lq, int64_t Lk, int64_t D,
                            int64_t *dims);

typedef struct spat_signature {
  const char *pattern; /* the pattern's name */
  int64_t D;
  spat_layout layout;
  spat_backend backend;
  size_t n_args;
  const spat_arg_info *args; /* n_args of them, in call order */
  /* The C type of the typed entry, e.g.
   * "int (*)(const spat_tensors *t, int64_t n, const int32_t *doc)" */
  const char *entry_type;
  int from_cache; /* 1: loaded from the disk cache; 0: compiled */
  /* .cache asked for (JIT) but the disk cache could not be used (no
   * directory, not writable, an object the cache cannot hold): why; the
   * kernel was then compiled as without .cache.  NULL otherwise. */
  const char *cache_problem;
  spat_dtype dtype; /* of q, k, v, o */
} spat_signature;

/* Owned by the kernel; NULL if k is not a live kernel. */
SPAT_API const spat_signature *spat_kernel_signature(const spat_kernel *k);

/* An extern predicate a pattern calls, for spat_ctx_register_fn. */
typedef struct spat_extern_info {
  const char *name;
  int nargs;
} spat_extern_info;

/* What a pattern needs from its caller, known before compiling. */
typedef struct spat_pattern_info {
  const char *name;
  size_t n_args;
  const spat_arg_info *args; /* as the kernels' signature: runtime scalars,
                                then input arrays, in declaration order */
  size_t n_externs;
  const spat_extern_info *externs; /* to register before spat_compile */
  /* The pattern uses topk: its mask depends on q and k, not only on the
   * positions (spat_kernel_mask then needs them). */
  bool data_dependent;
  /* Declared aligned(top_left): query row r sits at position i = r (else
   * bottom-right, i = r + max(Lk - Lq, 0)). */
  bool top_left;
} spat_pattern_info;

/* Instantiates the pattern with its current parameters and describes it into
 * *out; the strings and arrays live as long as the pattern.
 * Errors: SPAT_EINVAL (NULL p or out), SPAT_EPARSE (a parameter value the
 * pattern rejects: see the diagnostics), SPAT_ENOMEM. */
SPAT_API spat_status spat_pattern_describe(spat_pattern *p,
                                           spat_pattern_info *out);

/* Runs the kernel: the variable arguments are exactly the signature's, with
 * the C types int64_t (cast integer literals: (int64_t)4) and
 * const int32_t *.  Returns SPAT_OK or a status with the message in the
 * kernel's context. */
SPAT_API spat_status spat_kernel_run(const spat_kernel *k,
                                     const spat_tensors *t, ...);

/* A generic argument, for callers that learn the signature at run time. */
typedef struct spat_value {
  spat_kind kind;
  int64_t scalar;       /* SPAT_KIND_SCALAR */
  const int32_t *input; /* SPAT_KIND_INPUT */
  const float *finput;  /* SPAT_KIND_FLOAT_INPUT */
} spat_value;

static inline spat_value spat_scalar(int64_t v) {
  spat_value x = {SPAT_KIND_SCALAR, v, NULL, NULL};
  return x;
}
static inline spat_value spat_input(const int32_t *a) {
  spat_value x = {SPAT_KIND_INPUT, 0, a, NULL};
  return x;
}
static inline spat_value spat_input_f32(const float *a) {
  spat_value x = {SPAT_KIND_FLOAT_INPUT, 0, NULL, a};
  return x;
}

/* Runs the kernel with n arguments given by position (n must equal the
 * signature's n_args and each kind must match).  The call goes through the
 * kernel's typed entry by libffi. */
SPAT_API spat_status spat_kernel_call(const spat_kernel *k,
                                      const spat_tensors *t,
                                      const spat_value *args, size_t n);

/* The kernel's typed entry: a real C function whose parameters are the
 * signature's, e.g. for `pattern docs(runtime n = 4, input doc: int[])`
 *     int entry(const spat_tensors *t, int64_t n, const int32_t *doc);
 * returning a spat_status.  Cast it to that type (signature->entry_type).
 * Valid while the kernel lives. */
SPAT_API spat_fn spat_kernel_entry(const spat_kernel *k);

/* ---- training: the backward pass ------------------------------------------ */

/* The gradients of one backward run, shaped and laid out as the forward's
 * tensors (the kernel's layout): dout and dq as q and o, dk and dv as k and
 * v. */
typedef struct spat_grads {
  const float *dout;     /* dL/do, shaped as o; read */
  const float *dlse;     /* NULL (zero), or dL/dlse [B, H, Lq]; read */
  float *dq, *dk, *dv;   /* written (overwritten), shaped as q, k, v */
  float *const *dinputs; /* NULL, or (language v2) one per float input, in
                            signature order (NULL entries skipped), written
                            shaped as the input; ignored by patterns
                            without float inputs */
} spat_grads;

/* The backward pass of the kernel's attention: with P_ij = exp(s_ij -
 * lse_i) on the pattern's allowed (i, j), s = scale q k^T,
 *   dv_j = sum_i P_ij do_i,   dS_ij = P_ij (do_i . v_j - do_i . o_i + dlse_i)
 *   dq_i = scale sum_j dS_ij k_j,   dk_j = scale sum_i dS_ij q_i
 * (a key/value head sums over the query heads that share it; a row with no
 * allowed key contributes nothing; topk selects the same keys as the
 * forward did and no gradient flows through the selection).  t is the
 * forward's: q, k, v, scale as in the forward run, and its outputs o and
 * lse, both read here (lse required).  args as for spat_kernel_call.  Works
 * for JIT and interpreter kernels and kernels from the disk cache; the same
 * run-time errors as the forward.  Errors: SPAT_EINVAL (NULL or missing
 * tensors, gradients that alias each other or an input, wrong arguments),
 * SPAT_ERANGE, SPAT_EUNSUPPORTED (a kernel without a backward), SPAT_ENOMEM. */
SPAT_API spat_status spat_kernel_backward(const spat_kernel *k,
                                          const spat_tensors *t,
                                          const spat_grads *g,
                                          const spat_value *args,
                                          size_t n_args);

/* ---- masks and explanations --------------------------------------------- */

/* The mask the kernel applies, computed by the reference interpreter
 * (whatever the kernel's backend): out[t * Lk + j] = 1 when query row
 * r0 + t of batch b and head h may see key j, else 0, for t in [0, n_rows)
 * and j in [0, Lk).  t gives the sizes (B, H, Hkv, Lq, Lk); its q and k are
 * read only when the pattern is data-dependent (topk; in the kernel's
 * layout and head dimension) and may be NULL otherwise; v, o and lse are
 * not used.  args are the signature's, as for spat_kernel_call.  May be
 * called concurrently, as a run.
 * Errors: SPAT_EINVAL (NULL k, t or out, bad sizes, b, h or rows out of
 * range, wrong arguments, NULL q or k for a data-dependent pattern),
 * SPAT_ERANGE (a run-time error of the pattern, with its file:line:col),
 * SPAT_ENOMEM; the message is in the kernel's context. */
SPAT_API spat_status spat_kernel_mask(const spat_kernel *k,
                                      const spat_tensors *t,
                                      const spat_value *args, size_t n_args,
                                      int64_t b, int64_t h, int64_t r0,
                                      int64_t n_rows, uint8_t *out);

/* The same, counted: counts[t] = the keys query row r0 + t may see (its
 * row's nnz).  Sum them for the allowed pairs of a head (attention costs
 * 4 * nnz * D FLOPs). */
SPAT_API spat_status spat_kernel_mask_count(const spat_kernel *k,
                                            const spat_tensors *t,
                                            const spat_value *args,
                                            size_t n_args, int64_t b,
                                            int64_t h, int64_t r0,
                                            int64_t n_rows, int64_t *counts);

/* How a kernel's tile plan treats a tile of query rows x keys. */
typedef enum spat_tile {
  SPAT_TILE_SKIPPED = 0, /* never visited: the plan proves no pair allowed */
  SPAT_TILE_PARTIAL = 1, /* visited, the mask evaluated per element (or
                            its keys are top-k candidates) */
  SPAT_TILE_FULL = 2,    /* visited, every pair allowed: no mask code */
} spat_tile;

/* The tile plan the kernel follows for batch b and head h: out[qt * nkt +
 * kt] is the spat_tile of query tile qt (rows [qt bq, qt bq + bq)) and key
 * tile kt (keys [kt bk, kt bk + bk)), for qt < ceil(Lq / bq) and kt < nkt
 * = ceil(Lk / bk); bq, bk 0: the JIT's tiles, 64 x 64.  Plan-level: a
 * PARTIAL tile may still allow no pair (the kernel then skips it after
 * evaluating its mask).  t gives the sizes (no tensor is read); args are
 * the signature's, as for spat_kernel_call (input arrays tighten the plan,
 * e.g. one document per tile).
 * Errors: SPAT_EINVAL (NULL k, t or out, bad sizes, tiles, b or h, wrong
 * arguments), SPAT_ERANGE (a run-time error of the pattern's sizes),
 * SPAT_ENOMEM; the message is in the kernel's context. */
SPAT_API spat_status spat_kernel_tiles(const spat_kernel *k,
                                       const spat_tensors *t,
                                       const spat_value *args, size_t n_args,
                                       int64_t b, int64_t h, int64_t bq,
                                       int64_t bk, uint8_t *out);

typedef struct spat_explain_options {
  int64_t H, Lq, Lk; /* the sizes summarised (H >= 1, Lq, Lk >= 0) */
  int64_t bq, bk;    /* query tile rows, key tile columns (>= 1) */
} spat_explain_options;

/* What the compiler makes of the pattern, with its current parameters, as
 * text (`spatc explain`): its IR, its tile plan, and for the sizes given,
 * per head, the key tiles each query tile visits (full, partial, empty), the
 * spans per tile and the keys per row (sure / visited / exact when the mask
 * needs no data).  runtime[n_runtime] are its runtime scalars (all of them,
 * in declaration order); input arrays, q and k are not used (predicates
 * reading them count as partial).  *text is malloc'd: free() it.
 * Errors: SPAT_EINVAL (NULL arguments, bad sizes or tiles, n_runtime not the
 * pattern's count), SPAT_EPARSE (a parameter value the pattern rejects),
 * SPAT_ERANGE (a run-time error of the pattern for these scalars),
 * SPAT_ENOMEM. */
SPAT_API spat_status spat_pattern_explain(spat_pattern *p,
                                          const spat_explain_options *o,
                                          const int64_t *runtime,
                                          size_t n_runtime, char **text);

/* ---- ahead-of-time kernels ---------------------------------------------- */

/* What spat_emit writes (`spatc compile --emit`). */
typedef enum spat_emit_kind {
  SPAT_EMIT_OBJECT = 0, /* an ELF object, position-independent */
  SPAT_EMIT_ASM = 1,    /* its assembly text */
  SPAT_EMIT_LLVM = 2,   /* the optimised LLVM module as .ll text */
  SPAT_EMIT_SHARED = 3, /* an object for a shared library: also a
                           destructor that frees the kernel's run-time state
                           when the library is unloaded (spat_aot_release) */
} spat_emit_kind;

typedef struct spat_aot_options {
  int64_t D; /* head dimension (>= 1) */
  spat_layout layout;
  int threads;        /* default worker threads per run; 0: all cores */
  const char *name;   /* the C name of the entries; NULL: the pattern's */
  const char *cpu;    /* an LLVM CPU name ("x86-64-v3", "skylake"); NULL:
                         this machine's CPU and features */
  const char *source; /* named in the header's comment; NULL: none */
  spat_emit_kind emit;
  spat_dtype dtype;   /* of q, k, v, o (avx512_bf16 is used when cpu has
                         it) */
} spat_aot_options;

/* Compiles the pattern (current parameters) ahead of time into path, as
 * o->emit says, and, when header_path is not NULL, writes the C header
 * declaring its typed entries
 *     int NAME(const spat_tensors *t, <runtime scalars>, <input arrays>);
 *     int NAME_ex(char *err, size_t errlen, const spat_tensors *t, ...);
 * (and NAME_D, NAME_LAYOUT, one prototype per extern predicate).  Link the
 * object with libspat.  Externs are referenced by their C names: nothing
 * needs registering.
 * Errors: SPAT_EINVAL (NULL arguments, a name that is not a C identifier:
 * spat_is_entry_name), SPAT_EPARSE (a parameter value the pattern rejects),
 * SPAT_EUNSUPPORTED (a head dimension or CPU the code generator does not
 * handle), SPAT_EIO (a file cannot be written), SPAT_ENOMEM. */
SPAT_API spat_status spat_emit(spat_pattern *p, const spat_aot_options *o,
                               const char *path, const char *header_path);
/* Only the header, for an object at object_path (named in its comment). */
SPAT_API spat_status spat_emit_header(spat_pattern *p,
                                      const spat_aot_options *o,
                                      const char *object_path,
                                      const char *header_path);
/* Whether s can name an ahead-of-time entry: a C identifier that is not a C
 * keyword. */
SPAT_API bool spat_is_entry_name(const char *s);

/* ---- the disk kernel cache ----------------------------------------------- */

/* The cache of JIT kernels that spat_compile uses with .cache:
 * $XDG_CACHE_HOME/spatc, else ~/.cache/spatc, created when missing.  Writes
 * its path into buf[size].
 * Errors: SPAT_EINVAL (NULL ctx or buf), SPAT_EIO (no usable directory:
 * no home, cannot be created, the path does not fit), with the message in
 * ctx. */
SPAT_API spat_status spat_cache_dir(spat_ctx *ctx, char *buf, size_t size);

/* One file of the cache, for spat_cache_list. */
typedef struct spat_cache_entry {
  const char *file; /* its name in the directory, "HASH.spk" */
  size_t bytes;     /* file size */
  bool valid;       /* header, lengths and checksum hold */
  const char *problem; /* not valid: why (it is rebuilt on next use) */
  /* valid: what the kernel was compiled for, from its key; "?" or -1 when
   * the key does not say */
  const char *pattern; /* "longformer(w = 16, g = 1)" */
  int64_t D;
  int layout; /* spat_layout */
  int threads;
  const char *cpu; /* "znver4" */
  const char *key; /* the whole key text (NULL when not valid) */
} spat_cache_entry;
typedef void (*spat_cache_fn)(void *user, const spat_cache_entry *e);

/* Calls fn for every entry of the cache directory (any order; the entry is
 * valid during the call) and writes how many into *n (n may be NULL).
 * Errors: SPAT_EINVAL (NULL ctx or fn), SPAT_EIO (as spat_cache_dir, or the
 * directory cannot be read). */
SPAT_API spat_status spat_cache_list(spat_ctx *ctx, spat_cache_fn fn,
                                     void *user, size_t *n);
/* Removes every entry (and temporary files left by a killed writer);
 * *removed (may be NULL): how many.  Errors: as spat_cache_list, and
 * SPAT_EIO when a file cannot be removed. */
SPAT_API spat_status spat_cache_clear(spat_ctx *ctx, size_t *removed);

/* Called by the typed entries of objects made by `spatc compile` (their
 * generated header declares the entries); not for direct use.  Returns a
 * spat_status, with the message in err when err is not NULL. */
SPAT_API int spat_aot_run(const void *desc, const spat_tensors *t,
                          const int64_t *scalars, const int32_t *const *inputs,
                          char *err, size_t errlen);
/* The same for their backward entries (NAME_backward). */
SPAT_API int spat_aot_backward(const void *desc, const spat_tensors *t,
                               const spat_grads *g, const int64_t *scalars,
                               const int32_t *const *inputs, char *err,
                               size_t errlen);
/* Called by the destructor of a shared library made by `spatc compile
 * --emit shared` when it is unloaded; frees what the kernel's first run
 * made.  Not for direct use. */
SPAT_API void spat_aot_release(const void *desc);

#ifdef __cplusplus
}
#endif

#endif
