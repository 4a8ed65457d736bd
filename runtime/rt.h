/* rt.h: what every backend (interpreter, JIT, AOT) is given to run a pattern.
 *
 * Tensors are float32 with the head dimension D contiguous; the other three
 * axes have element strides, so [B, H, L, D] and [B, L, H, D] are both
 * described:  q[b, h, r, :] = q + b*sb + h*sh + r*sl.
 *   q  [B, H,   Lq, D]     o   [B, H, Lq, D]
 *   k  [B, Hkv, Lk, D]     lse [B, H, Lq] (strides lse_sb, lse_sh; row stride 1)
 *   v  [B, Hkv, Lk, D]
 * GQA: H is a multiple of Hkv; query head h reads key/value head h / (H / Hkv).
 */
#ifndef SPAT_RT_H
#define SPAT_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rt_status {
  RT_OK = 0,
  RT_EINVAL,      /* bad argument: NULL, shape, stride, missing input */
  RT_ERANGE,      /* run-time error of the pattern: overflow, division by
                     zero, input index out of range, negative size */
  RT_ENOMEM,
  RT_EUNSUPPORTED,/* e.g. a head dimension the backend does not handle */
  RT_EINTERNAL,
} rt_status;

typedef struct rt_tensor {
  float *data;
  int64_t sb, sh, sl;      /* element strides of batch, head, row */
} rt_tensor;

/* A paged KV cache (vLLM's block_table convention): k and v are pools of
 * pages [n_pages, page_size, Hkv, D]; sequence b has seq_lens[b] keys, key
 * j of it in page page_table[b * max_pages + j / page_size], row
 * j % page_size.  Then rt_args' k and v strides are: sb between pages, sl
 * between rows of a page, sh between heads; Lk is the longest sequence.
 * Checked by runtime/args.c (ids in [0, n_pages), lengths in [0,
 * max_pages * page_size]). */
typedef struct rt_paged {
  const int32_t *page_table;  /* [B][max_pages] */
  const int32_t *seq_lens;    /* [B] */
  int64_t n_pages, page_size, max_pages;
} rt_paged;

typedef struct rt_args {
  int64_t B, H, Hkv, Lq, Lk, D;
  rt_tensor q, k, v, o;    /* q, k, v read; o written */
  float *lse;              /* may be NULL */
  int64_t lse_sb, lse_sh;
  float scale;             /* 0: 1/sqrt(D) */
  const int64_t *runtime;  /* one per ir_program runtime scalar */
  const int32_t *const *inputs; /* one per input array, Lk int32 each */
  void *const *externs;    /* one C function pointer per extern:
                              bool f(int64_t, ...) with n_args int64 args */
  int threads;             /* 0: all cores */
  const rt_paged *paged;   /* NULL: dense k, v */
} rt_args;

/* What the backward pass is given besides rt_args (whose q, k, v, scale,
 * runtime scalars, inputs and externs it reads as the forward did): the
 * upstream gradient of o and, optionally, of lse, and where to write the
 * gradients of q, k and v (shaped as q, k, v; overwritten).  o and lse of
 * the forward, for backends that use them rather than recompute them. */
typedef struct rt_grad {
  rt_tensor dout;          /* dL/do, shaped as o; read */
  const float *dlse;       /* dL/dlse, strides lse_sb/lse_sh; NULL: zero */
  rt_tensor dq, dk, dv;    /* written */
  float *const *dinputs;   /* NULL, or one per program input: for a float
                              input the score reads, its gradient (written,
                              shaped as the input); NULL entries skipped */
} rt_grad;

/* The library's one way to report a failure: a message formatted into the
 * caller's buffer (err may be NULL or errlen 0: no message) and the status
 * returned, so a failing path reads `return rt_errf(err, errlen, RT_EINVAL,
 * "...", ...);`.  Inside libspat every fallible call returns an rt_status
 * (or NULL for a constructor) with such a message; spat_status exists only
 * at the public API (compiler/api.c, runtime/args.c). */
rt_status rt_errf(char *err, size_t errlen, rt_status st, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

/* Fills strides for contiguous [B,H,L,D] (layout 0) or [B,L,H,D] (layout 1). */
void rt_tensor_strides(rt_tensor *t, int layout, int64_t H, int64_t L,
                       int64_t D);

/* Empty shapes, the same in every backend: B, H or Lq = 0 is a run with no
 * rows (nothing is written); Lk = 0 with rows is a run where every row has
 * no keys, so every row is empty (o = 0, lse = -inf).  rt_has_rows says
 * whether there is a row to write; rt_fill_no_keys writes the Lk = 0
 * result into o and lse (when not NULL). */
bool rt_has_rows(const rt_args *a);
void rt_fill_no_keys(const rt_args *a);

/* The backward's empty shapes, the same in every backend: with no rows or
 * no keys no pair is allowed, so every gradient is zero.  Returns true (and
 * has zeroed dq, dk and dv) in that case, false otherwise. */
bool rt_grad_empty(const rt_args *a, const rt_grad *g);

#endif
