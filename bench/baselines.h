/* baselines.h: the two reference implementations `spatc bench` measures the
 * JIT kernels against (compiled with -O3 -ffast-math, hot loops cloned per ISA).
 *
 * Both take plain contiguous float32 tensors of one batch (bl_problem:
 * q [H, Lq, D], k and v [Hkv, Lk, D], o [H, Lq, D]; GQA: query head h reads
 * key/value head h / (H / Hkv)) and split (head, row block) work over
 * `threads` threads.  Nothing of spatc's internals: only these pointers.
 *
 *  bl_window: a plain C loop per query row over the keys of a window
 *    [i - wl, i + wr] (i the bottom-right aligned position of the row), with
 *    an online softmax: rows x window keys x D, no tiling, no BLAS.
 *  bl_dense: dense masked attention with OpenBLAS, per block of query rows:
 *    S = Q K^T (cblas_sgemm), masked by a callback, row softmax, O = P V
 *    (cblas_sgemm).  Its cost is that of dense attention whatever the mask.
 */
#ifndef SPAT_BENCH_BASELINES_H
#define SPAT_BENCH_BASELINES_H

#include <stdint.h>

typedef struct bl_problem {
  int64_t H, Hkv, Lq, Lk, D;
  const float *q, *k, *v; /* read */
  float *o;               /* written */
  float scale;            /* 0: 1/sqrt(D) */
} bl_problem;

/* Fills row[j] (j < Lk) with 1 where query row r of head h may see key j. */
typedef void (*bl_mask_fn)(void *ctx, int64_t h, int64_t r, uint8_t *row);

/* 0, or -1 when memory runs out. */
int bl_window(const bl_problem *a, int64_t wl, int64_t wr, int threads);
int bl_dense(const bl_problem *a, bl_mask_fn mask, void *ctx, int threads);

#endif
