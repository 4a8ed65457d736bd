/* explore.h: a pattern measured on activations, for spatc recall, compare
 * and tune (spatc_recall.c, spatc_compare.c, spatc_tune.c).
 *
 * The reference is dense attention (the pattern `full`, or --reference
 * EXPR) run once by the fused kernel; a pattern's kernel is then run on the
 * same q, k, v and compared row by row through the log-sum-exp:
 *
 *   recall(h, b, r) = exp(lse_pattern - lse_reference)
 *
 * the share of the reference's softmax mass (sum of exp(s)) that the
 * pattern's allowed keys carry, in [0, 1] (clamped: float rounding may put
 * a full row a hair above 1; 1 when the reference row is empty).  With v,
 * also the relative output error ||o_p - o_ref|| / ||o_ref|| (Frobenius,
 * per head over batch, rows and D, and over everything).  Never an Lq x Lk
 * matrix: two fused kernel runs and O(B H Lq) numbers.  Density is the
 * exact count of allowed pairs (spat_kernel_mask_count, the reference
 * interpreter, spread over threads) over B H Lq Lk.  Kernel time: the
 * median of `repeats` timed runs after a warm-up run.
 */
#ifndef SPAT_EXPLORE_H
#define SPAT_EXPLORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "spatc_common.h"

typedef struct ex_opts {
  int threads;               /* kernel threads, 0: all cores */
  int repeats;               /* timed runs after the warm-up (>= 0) */
  bool cache;                /* the disk kernel cache */
  bool count;                /* count the mask for the density */
  spat_backend backend;
  bool explicit_backend;     /* no fallback to the interpreter */
  float scale;               /* 0: 1/sqrt(D) */
  const char *reference;     /* a pattern expression, default "full" */
  bool top_left;             /* the reference aligned(top_left), as the
                                patterns it is compared with */
} ex_opts;

/* The activations and the reference's output on them. */
typedef struct ex_ref {
  spatc_args a;              /* sizes, layout, q, k and v (v = k when the
                                user gave none: o then unused) */
  bool have_v;
  spatc_tensor o;            /* the reference output, q's layout */
  float *lse;                /* [B, H, Lq] */
  double ms;                 /* its kernel time */
  char *title;               /* "full" */
  spat_ctx *ctx;             /* the reference pattern's */
} ex_ref;

typedef struct ex_stat {
  double min, median, mean;  /* of recall over rows */
  double err;                /* output error; -1 without v */
  double density;            /* -1 when not counted */
} ex_stat;

typedef struct ex_eval {
  int64_t H;
  ex_stat *head;             /* [H] */
  ex_stat all;
  double ms;                 /* kernel time (median) */
  float *recall;             /* [B, H, Lq], per row */
} ex_eval;

void ex_opts_init(ex_opts *o);  /* JIT, cache, count; repeats 0 */
/* --threads --repeats --no-cache --reference --backend --scale into o: 0,
 * an exit status after printing, or -1 for another option. */
int ex_option(ex_opts *o, const cli *c, int id);

/* The options every explore command takes (OPT_NONE-terminated). */
#define EX_OPTS                                                             \
  OPT_Q, OPT_K, OPT_V, OPT_SEED, OPT_BATCH, OPT_HEADS, OPT_KVHEADS,          \
      OPT_LEN, OPT_LQ, OPT_LK, OPT_DIM, OPT_LAYOUT, OPT_SCALE, OPT_THREADS,  \
      OPT_REPEATS, OPT_NO_CACHE, OPT_BACKEND, OPT_REFERENCE, OPT_JSON

/* Compiles p for a's D and layout (JIT falling back to the interpreter on
 * SPAT_EUNSUPPORTED unless the backend was asked for); 0 or 1 after
 * printing. */
int ex_compile(spat_pattern *p, spat_ctx *ctx, const spatc_args *a,
               const ex_opts *o, spat_kernel **out);

/* Takes over the activations in a (the caller keeps their memory) and runs
 * the reference on them; 0 or 1 after printing. */
int ex_ref_make(ex_ref *r, const spatc_args *a, bool have_v,
                const ex_opts *o);
void ex_ref_free(ex_ref *r);

/* Runs k (arguments args[n]) on r's activations and compares; 0 or 1 after
 * printing. */
int ex_measure(const ex_ref *r, spat_kernel *k, spat_ctx *ctx,
               const spat_value *args, size_t n, const ex_opts *o,
               ex_eval *e);
void ex_eval_free(ex_eval *e);

/* The activations of a command: files (--q --k [--v]) or drawn from
 * --seed (default 1: q, k and v) when a size is given.  0 or the exit
 * status after printing. */
int ex_activations(spatc_qkv *t, spatc_args *a, bool *have_v,
                   const spatc_shape *s, const cli *c);

/* JSON helpers: a number (null when not finite or negative-for-missing),
 * and a string. */
void ex_json_num(FILE *f, double v);
void ex_json_str(FILE *f, const char *s);
/* {"min": .., "median": .., "mean": .., "error": .., "density": ..} */
void ex_json_stat(FILE *f, const ex_stat *s);
/* "B": .., "H": .., "Hkv": .., "Lq": .., "Lk": .., "D": .. (no braces) */
void ex_json_sizes(FILE *f, const spatc_args *a);
/* "kernel_ms": .., "recall": {..}, "heads": [{..}, ..] (no braces) */
void ex_json_eval(FILE *f, const ex_eval *e);

double ex_median(double *v, int64_t n);   /* sorts v */

#endif
