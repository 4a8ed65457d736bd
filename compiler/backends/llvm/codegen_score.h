/* codegen_score.h: `with score E` as vector code for the score tiles
 * (codegen_fwd_tile.c's spat_stile, codegen_bwd_tile.c's spat_sbwd_dq and
 * spat_sbwd_dkdv): E, dE/ds and the adjoints of the float inputs E reads,
 * on <16 x float> vectors of 16 query rows at one key (codegen_score.c).
 *
 * Integer parts of E are evaluated in float (exact below 2^24; / and % only
 * by a positive constant, floor semantics); a float input is read with its
 * indices checked (a gather when they depend on i or j): a lane that is
 * live (its pair allowed, its ?: arm chosen) and out of range sets the
 * tile's error flag, which the driver turns into the interpreter's message
 * with spat_serrat (runtime/kernel_score.c).
 */
#ifndef SPAT_CODEGEN_SCORE_H
#define SPAT_CODEGEN_SCORE_H

#include "codegen_impl.h"

#define CG_SC_UNIFORM_MAX 16 /* inputs read at one element per tile */

typedef struct cg_sc {
  const ir_program *p;
  LLVMValueRef env;
  LLVMValueRef ipos[NV];  /* the tile's row positions, as floats */
  LLVMValueRef bad;       /* alloca i32: a live lane read out of range */
  /* reads whose index is the same for the whole tile: adjoints summed in
   * a vector here, added to the input's gradient once (cg_sc_flush) */
  const ir_node *unode[CG_SC_UNIFORM_MAX];
  LLVMValueRef uacc[CG_SC_UNIFORM_MAX];
  int n_u;
  /* the same reads' values (splats) and whether their index is in range,
   * loaded once at the function's start (hoisted out of every loop) */
  const ir_node *hnode[CG_SC_UNIFORM_MAX];
  LLVMValueRef hval[CG_SC_UNIFORM_MAX], hok[CG_SC_UNIFORM_MAX];
  int n_h;
} cg_sc;

/* The state of one tile function: env, and i0 the position of its row 0. */
void cg_sc_init(cg *g, cg_sc *sc, LLVMValueRef env, LLVMValueRef i0);
/* E at rows rv * 16 .. + 15, key position jf (float splat), score s
 * (natural domain), lanes live (<16 x i1>) for the error flag; with dE
 * non-NULL also dE/ds there. */
LLVMValueRef cg_sc_value(cg *g, cg_sc *sc, int rv, LLVMValueRef jf,
                         LLVMValueRef s, LLVMValueRef live, LLVMValueRef *dE);
/* Adds adj dE/dx to the gradient of every float input element x that E
 * reads at these lanes (adj 0 on lanes that do not count); gin: the
 * driver's double *[n_inputs] (NULL entries: not asked for). */
void cg_sc_grad(cg *g, cg_sc *sc, int rv, LLVMValueRef jf, LLVMValueRef s,
                LLVMValueRef adj, LLVMValueRef gin);
/* The uniform reads' sums into gin (after the last cg_sc_grad). */
void cg_sc_flush(cg *g, cg_sc *sc, LLVMValueRef gin);
/* The tile's return value: 0, or 1 when a live lane was out of range. */
LLVMValueRef cg_sc_status(cg *g, cg_sc *sc);

/* spat_inlen (kr_inlen_fn): elements of float input x for env's sizes. */
void cg_gen_score_inlen(cg *g);

#endif
