/* baselines.h: the two reference implementations `spatc bench` measures the
 * JIT kernels against (compiled with -O3 -ffast-math, hot loops cloned per ISA).
 *
 * Both take tensors as in runtime/rt.h (float32, D contiguous, element
 * strides for batch 0, head and row; GQA: query head h reads key/value head
 * h / (H / Hkv)) and split (head, row block) work over `threads` threads.
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

#include "rt.h"

/* Fills row[j] (j < Lk) with 1 where query row r of head h may see key j. */
typedef void (*bl_mask_fn)(void *ctx, int64_t h, int64_t r, uint8_t *row);

/* 0, or -1 when memory runs out.  a->B must be 1; a->lse is ignored. */
int bl_window(const rt_args *a, int64_t wl, int64_t wr, int threads);
int bl_dense(const rt_args *a, bl_mask_fn mask, void *ctx, int threads);

#endif
