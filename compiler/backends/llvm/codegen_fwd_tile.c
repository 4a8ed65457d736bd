/* codegen_fwd_tile.c: the forward attention tile spat_tile (see codegen.h
 * for its ABI): a FlashAttention-2 step on <16 x float> vectors in a
 * transposed layout: scores S^T[j][row] so the per-row max, exp and sums
 * are vertical ops, a polynomial exp2 in IR, register-blocked Q.K^T (4 keys
 * x 64 rows) and P.V (4 rows x 64 dims), masks applied as k-masks from one
 * 64-bit word per key.  Depends only on D, never on the pattern.  Kernel
 * kind CG_KIND_FWD, f32 (kinds.c); its signature is kr_tile_fn (kabi.h).
 */
#include "codegen_impl.h"

/* --- the attention tile ------------------------------------------------------ */

/* Q.K^T for keys [j, j + jb) of every row, written out already scaled by
 * c and masked (-inf where the key word's row bit is 0, or past ncols):
 * st[j][row] = c * dot(q_row, k_j); the column max goes into mloc. */
typedef struct tile_io {
  LLVMValueRef qt, k, sk, st, mk, ncols, cv, *mloc, *accs;
} tile_io;

static void qk_block(cg *g, const tile_io *io, LLVMValueRef j, int jb) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef last = LLVMBuildSub(B, io->ncols, ci64(g, 1), "");
  vzero(g, io->accs, jb * NV, 0.0);
  LLVMValueRef krow[8], key[8];
  for (int jj = 0; jj < jb; jj++) {  /* keys past the tile repeat the last */
    key[jj] = LLVMBuildAdd(B, j, ci64(g, jj), "");
    krow[jj] = gep(g, g->f32, io->k,
                   LLVMBuildMul(B, smin(g, key[jj], last), io->sk, ""));
  }
  loop ld;
  LLVMValueRef d = loop_begin(g, &ld, ci64(g, 0), ci64(g, g->D), 1);
  LLVMValueRef qv[NV];
  LLVMValueRef qrow = gep(g, g->f32, io->qt, LLVMBuildMul(B, d, ci64(g, KR_BQ), ""));
  for (int rv = 0; rv < NV; rv++) qv[rv] = vload(g, qrow, ci64(g, rv * 16));
  for (int jj = 0; jj < jb; jj++) {
    LLVMValueRef ks = splat(
        g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, krow[jj], d), ""));
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef a = io->accs[jj * NV + rv];
      LLVMBuildStore(B, fma16(g, ks, qv[rv], vld(g, a)), a);
    }
  }
  loop_end(g, &ld);
  LLVMValueRef ninf = vsplat(g, -1.0 / 0.0);
  for (int jj = 0; jj < jb; jj++) {
    LLVMValueRef w = LLVMBuildLoad2(
        B, g->i64, gep(g, g->i64, io->mk, smin(g, key[jj], last)), "");
    w = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, key[jj], io->ncols, ""),
                        w, ci64(g, 0), "");
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef m16 = LLVMBuildTrunc(B, LLVMBuildLShr(B, w, ci64(g, 16 * rv), ""),
                                        LLVMInt16TypeInContext(g->C), "");
      LLVMValueRef sv = LLVMBuildFMul(B, vld(g, io->accs[jj * NV + rv]), io->cv, "");
      sv = LLVMBuildSelect(B, LLVMBuildBitCast(B, m16, g->vi1, ""), sv, ninf, "");
      LLVMBuildStore(B, vmax(g, sv, vld(g, io->mloc[rv])), io->mloc[rv]);
      vstore(g, sv, io->st,
             LLVMBuildAdd(B, LLVMBuildMul(B, key[jj], ci64(g, KR_BQ), ""),
                          ci64(g, rv * 16), ""));
    }
  }
}

void cg_gen_fwd_tile(cg *g) {
  LLVMBuilderRef B = g->B;
  LLVMTypeRef ps[12] = {g->ptr, g->ptr, g->i64, g->ptr, g->i64, g->i64,
                        g->ptr, g->ptr, g->ptr, g->ptr, g->f32, g->ptr};
  begin_fn(g, cg_kinds[CG_KIND_FWD].symbol, g->voidt, ps, 12);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  int ptr_args[] = {0, 1, 3, 6, 7, 8, 9, 11};
  for (size_t x = 0; x < sizeof ptr_args / sizeof ptr_args[0]; x++)
    LLVMAddAttributeAtIndex(g->fn, (unsigned)ptr_args[x] + 1,
                            LLVMCreateEnumAttribute(g->C, noalias, 0));
  LLVMValueRef qt = LLVMGetParam(g->fn, 0), k = LLVMGetParam(g->fn, 1),
               sk = LLVMGetParam(g->fn, 2), v = LLVMGetParam(g->fn, 3),
               sv = LLVMGetParam(g->fn, 4), ncols = LLVMGetParam(g->fn, 5),
               maskt = LLVMGetParam(g->fn, 6), acc = LLVMGetParam(g->fn, 7),
               mp = LLVMGetParam(g->fn, 8), lp = LLVMGetParam(g->fn, 9),
               c = LLVMGetParam(g->fn, 10), st = LLVMGetParam(g->fn, 11);
  const int JB = 4;
  LLVMValueRef accs[4 * NV];
  for (int x = 0; x < JB * NV; x++) accs[x] = alloca_t(g, g->vf, "s");

  /* maskt NULL: every key allowed, read from a constant of all-ones words */
  LLVMTypeRef ones_t = LLVMArrayType(g->i64, KR_BK);
  LLVMValueRef ones = LLVMGetNamedGlobal(g->M, "spat_ones");
  if (!ones) {
    LLVMValueRef w[KR_BK];
    for (int x = 0; x < KR_BK; x++) w[x] = ci64(g, -1);
    ones = LLVMAddGlobal(g->M, ones_t, "spat_ones");
    LLVMSetInitializer(ones, LLVMConstArray2(g->i64, w, KR_BK));
    LLVMSetGlobalConstant(ones, 1);
    LLVMSetLinkage(ones, LLVMPrivateLinkage);
    LLVMSetAlignment(ones, 64);
  }
  LLVMValueRef mloc[NV];
  for (int rv = 0; rv < NV; rv++) mloc[rv] = alloca_t(g, g->vf, "mloc");
  vzero(g, mloc, NV, -1.0 / 0.0);
  LLVMValueRef ninf = vsplat(g, -1.0 / 0.0);
  tile_io io = {qt, k, sk, st,
                LLVMBuildSelect(B, LLVMBuildIsNull(B, maskt, ""), ones, maskt, ""),
                ncols, splat(g, c), mloc, accs};

  /* pass A: S^T = c K Q^T masked, with the column max; 4 keys at a time
   * (KR_BK is a multiple of 4: keys past ncols land in st's spare rows) */
  loop la;
  LLVMValueRef j = loop_begin(g, &la, ci64(g, 0), ncols, JB);
  qk_block(g, &io, j, JB);
  loop_end(g, &la);

  LLVMValueRef muse[NV], alpha[NV];
  LLVMValueRef abuf = alloca_t(g, LLVMArrayType(g->f32, KR_BQ), "alpha");
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef mold = vload(g, mp, ci64(g, rv * 16));
    LLVMValueRef mnew = vmax(g, vld(g, mloc[rv]), mold);
    muse[rv] = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, mnew, ninf, ""),
                               LLVMConstNull(g->vf), mnew, "");
    alpha[rv] = exp2v(g, LLVMBuildFSub(B, mold, muse[rv], ""));
    vstore(g, mnew, mp, ci64(g, rv * 16));
    vstore(g, alpha[rv], abuf, ci64(g, rv * 16));
  }

  /* pass C: p = 2^(s - m), row sums */
  LLVMValueRef lsum[NV];
  for (int rv = 0; rv < NV; rv++) lsum[rv] = alloca_t(g, g->vf, "lsum");
  vzero(g, lsum, NV, 0.0);
  j = loop_begin(g, &la, ci64(g, 0), ncols, 1);
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef idx = LLVMBuildAdd(B, LLVMBuildMul(B, j, ci64(g, KR_BQ), ""),
                                    ci64(g, rv * 16), "");
    LLVMValueRef p = exp2v(g, LLVMBuildFSub(B, vload(g, st, idx), muse[rv], ""));
    vstore(g, p, st, idx);
    LLVMBuildStore(B, LLVMBuildFAdd(B, vld(g, lsum[rv]), p, ""), lsum[rv]);
  }
  loop_end(g, &la);
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef l = vload(g, lp, ci64(g, rv * 16));
    vstore(g, fma16(g, l, alpha[rv], vld(g, lsum[rv])), lp, ci64(g, rv * 16));
  }

  /* pass D: acc = acc * alpha + P V, 4 (or 8) rows x cw <= 4 dim vectors;
   * chunks of equal width share one loop over d0 */
  int nvd = (int)(g->D / 16), chunks[8], n_ch = 0;
  for (int d0 = 0; d0 < nvd; n_ch++) {
    int cw = nvd - d0 >= 4 ? 4 : nvd - d0;
    if (nvd - d0 == 5 || nvd - d0 == 6) cw = 3;
    chunks[n_ch] = cw;
    d0 += cw;
  }
  for (int c0 = 0, vbase = 0; c0 < n_ch;) {
    int cw = chunks[c0], run = 1;
    while (c0 + run < n_ch && chunks[c0 + run] == cw) run++;
    int R = cw >= 3 ? 4 : 8;
    LLVMValueRef a[32];
    for (int x = 0; x < R * cw; x++) a[x] = alloca_t(g, g->vf, "o");
    loop ld;
    LLVMValueRef dv = loop_begin(g, &ld, ci64(g, vbase * 16),
                                 ci64(g, (vbase + run * cw) * 16), cw * 16);
    LLVMValueRef vcol = gep(g, g->f32, v, dv), acol = gep(g, g->f32, acc, dv);
    loop lr;
    LLVMValueRef r = loop_begin(g, &lr, ci64(g, 0), ci64(g, KR_BQ), R);
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef rw = LLVMBuildAdd(B, r, ci64(g, rr), "");
      LLVMValueRef al = splat(
          g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, abuf, rw), ""));
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef idx = LLVMBuildAdd(B, LLVMBuildMul(B, rw, ci64(g, g->D), ""),
                                        ci64(g, cc * 16), "");
        LLVMBuildStore(B, LLVMBuildFMul(B, vload(g, acol, idx), al, ""),
                       a[rr * cw + cc]);
      }
    }
    loop lj;
    LLVMValueRef jj = loop_begin(g, &lj, ci64(g, 0), ncols, 1);
    LLVMValueRef vrow = gep(g, g->f32, vcol, LLVMBuildMul(B, jj, sv, ""));
    LLVMValueRef vv[4];
    for (int cc = 0; cc < cw; cc++) vv[cc] = vload(g, vrow, ci64(g, cc * 16));
    LLVMValueRef prow = gep(g, g->f32, st,
                            LLVMBuildAdd(B, LLVMBuildMul(B, jj, ci64(g, KR_BQ), ""),
                                         r, ""));
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef pb = splat(
          g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, prow, ci64(g, rr)), ""));
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef x = a[rr * cw + cc];
        LLVMBuildStore(B, fma16(g, pb, vv[cc], vld(g, x)), x);
      }
    }
    loop_end(g, &lj);
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef rw = LLVMBuildAdd(B, r, ci64(g, rr), "");
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef idx = LLVMBuildAdd(B, LLVMBuildMul(B, rw, ci64(g, g->D), ""),
                                        ci64(g, cc * 16), "");
        vstore(g, vld(g, a[rr * cw + cc]), acol, idx);
      }
    }
    loop_end(g, &lr);
    loop_end(g, &ld);
    c0 += run;
    vbase += run * cw;
  }
  LLVMBuildRetVoid(B);
  end_fn(g);
}
