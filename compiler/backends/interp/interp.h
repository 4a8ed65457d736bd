/* interp.h: the reference interpreter, the correctness baseline.
 *
 * Evaluates the ir_program per (h, i, j) straight from the IR tree, with none
 * of the tile/interval analysis the JIT uses, so the two catch each other's
 * bugs.  Attention is exact per the spec (double accumulation), O(Lk) memory
 * per row: no Lq x Lk matrix is ever built.
 */
#ifndef SPAT_INTERP_H
#define SPAT_INTERP_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "rt.h"

/* o (and lse if non-NULL) for every batch, head and row.  On error returns a
 * status and writes a message (with "file:line:col: " when the error has a
 * location) into err. */
rt_status interp_attention(const ir_program *p, const rt_args *a, char *err,
                           size_t errlen);

/* One mask row: out[j] = M(h, i(r), j) for j in [0, Lk), for batch b.
 * a->q/a->k are needed only when the program has topk (otherwise they may be
 * NULL data); a->o is not used. */
rt_status interp_mask_row(const ir_program *p, const rt_args *a, int64_t b,
                          int64_t h, int64_t r, uint8_t *out, char *err,
                          size_t errlen);

/* Rows r0 .. r0 + n - 1 of the same (b, h) into out[n * Lk] (row t at
 * out + t * Lk), sharing the per-row caches: with blocks { topk } the rows of
 * a query block cost one selection instead of one each. */
rt_status interp_mask_rows(const ir_program *p, const rt_args *a, int64_t b,
                           int64_t h, int64_t r0, int64_t n, uint8_t *out,
                           char *err, size_t errlen);

/* The backward pass (interp_bwd.c): dq, dk, dv for dL/do (and dL/dlse if
 * g->dlse) in double, with the forward's mask; o and lse recomputed.  The
 * oracle for backward kernels. */
rt_status interp_attention_backward(const ir_program *p, const rt_args *a,
                                    const rt_grad *g, char *err,
                                    size_t errlen);

/* `with score E` for the backward pass (version 2): one per task. */
typedef struct interp_scorer interp_scorer;
interp_scorer *interp_scorer_new(const ir_program *p, const rt_args *a); /* NULL: OOM */
void interp_scorer_free(interp_scorer *sc);
const char *interp_scorer_error(const interp_scorer *sc);
/* E and dE/ds at (b, h, query row r, key j) for the score s. */
rt_status interp_score(interp_scorer *sc, int64_t b, int64_t h, int64_t r, int64_t j,
                       double s, double *E, double *dE);
/* g[x][f] += adj * dE/d(element f of float input x), for the inputs with
 * g[x] != NULL. */
rt_status interp_score_grad(interp_scorer *sc, int64_t b, int64_t h, int64_t r,
                            int64_t j, double s, double adj, double *const *g);

#endif
