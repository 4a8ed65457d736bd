/* codegen_fwd_tile.c: the forward attention tile spat_tile (see codegen.h
 * for its ABI): a FlashAttention-2 step on <16 x float> vectors in a
 * transposed layout: scores S^T[j][row] so the per-row max, exp and sums
 * are vertical ops, a polynomial exp2 in IR, register-blocked Q.K^T (4 keys
 * x 64 rows) and P.V (4 rows x 64 dims), masks applied as k-masks from one
 * 64-bit word per key.  Depends only on D and the dtype, never on the
 * pattern.  Kernel kind CG_KIND_FWD (kinds.c); its signature is kr_tile_fn
 * (kabi.h).  A pattern with `with score E` gets its own variant in its
 * module, spat_stile (kr_stile_fn, float32 only): the same code with E
 * compiled into the score pass (vectorised, fused before the online
 * softmax, no extra pass).
 *
 * Dtypes (kernel_rt.h says how the driver packs Q^T for each):
 *   f32   as above.
 *   bf16 on a target with avx512bf16: Q.K^T and P.V by vdpbf16ps, two
 *         products a lane: Q^T comes in pairs of dimensions, each key's
 *         pair of elements is one broadcast dword; P is rounded to bf16
 *         (as GPU kernels do) and packed in pairs of keys, V's rows of the
 *         tile are interleaved in pairs into scratch.  Softmax, sums and
 *         accumulators stay float32.
 *   bf16 elsewhere, f16: the conversion path: the tile's K and V rows (and
 *         bf16's Q^T pairs) are widened into float scratch (bf16: a shift;
 *         f16: vcvtph2ps, F16C / AVX-512), then the f32 tile runs on them.
 */
#include "codegen_score.h"

/* --- the attention tile ------------------------------------------------------ */

static LLVMTypeRef t_i16(cg *g) { return LLVMInt16TypeInContext(g->C); }
static LLVMTypeRef t_vbf(cg *g) {  /* <32 x bfloat>: a vdpbf16ps operand */
  return LLVMVectorType(LLVMBFloatTypeInContext(g->C), 32);
}
/* the 32-bit word at p (two bf16) in every lane, as <32 x bfloat> */
static LLVMValueRef bcast_pair(cg *g, LLVMValueRef p) {
  LLVMValueRef w = LLVMBuildLoad2(g->B, g->i32, p, "");
  LLVMSetAlignment(w, 2);
  LLVMValueRef v = LLVMBuildInsertElement(g->B, LLVMGetPoison(g->vi32), w,
                                          LLVMConstInt(g->i32, 0, 0), "");
  v = LLVMBuildShuffleVector(g->B, v, LLVMGetPoison(g->vi32),
                             LLVMConstNull(g->vi32), "");
  return LLVMBuildBitCast(g->B, v, t_vbf(g), "");
}
static LLVMValueRef load_vbf(cg *g, LLVMValueRef p) {
  LLVMValueRef l = LLVMBuildLoad2(g->B, t_vbf(g), p, "");
  LLVMSetAlignment(l, 2);
  return l;
}
/* acc + sum over pairs: lane x += a[2x] b[2x] + a[2x + 1] b[2x + 1] */
static LLVMValueRef dpbf16(cg *g, LLVMValueRef acc, LLVMValueRef a,
                           LLVMValueRef b) {
  LLVMValueRef args[3] = {acc, a, b};
  return call_intr(g, "llvm.x86.avx512bf16.dpbf16ps.512", NULL, 0, args, 3);
}
/* 16 elements of a 16-bit dtype at p widened to <16 x float> */
static LLVMValueRef load_widen(cg *g, LLVMValueRef p) {
  LLVMBuilderRef B = g->B;
  if (g->dtype == CG_F16) {
    LLVMValueRef l = LLVMBuildLoad2(
        B, LLVMVectorType(LLVMHalfTypeInContext(g->C), 16), p, "");
    LLVMSetAlignment(l, 2);
    return LLVMBuildFPExt(B, l, g->vf, "");
  }
  LLVMValueRef l = LLVMBuildLoad2(B, LLVMVectorType(t_i16(g), 16), p, "");
  LLVMSetAlignment(l, 2);
  LLVMValueRef sh[16];
  for (int k = 0; k < 16; k++) sh[k] = LLVMConstInt(g->i32, 16, 0);
  LLVMValueRef w = LLVMBuildShl(B, LLVMBuildZExt(B, l, g->vi32, ""),
                                LLVMConstVector(sh, 16), "");
  return LLVMBuildBitCast(B, w, g->vf, "");
}
/* interleave: lanes a0 b0 a1 b1 ... of two 16-lane vectors */
static LLVMValueRef zip16(cg *g, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef m[32];
  for (int k = 0; k < 32; k++)
    m[k] = LLVMConstInt(g->i32, (unsigned)(k / 2 + (k & 1) * 16), 0);
  return LLVMBuildShuffleVector(g->B, a, b, LLVMConstVector(m, 32), "");
}

/* Does the target have avx512bf16 (vdpbf16ps)?  Its feature string, or for
 * a named CPU (AOT: no feature string) the CPUs that have it. */
bool cg_has_bf16_dot(const cg_target *t) {
  if (!t) return false;
  if (t->features) return strstr(t->features, "+avx512bf16") != NULL;
  static const char *const cpus[] = {"cooperlake", "sapphirerapids",
                                     "emeraldrapids", "graniterapids",
                                     "znver4", "znver5"};
  for (size_t k = 0; t->cpu && k < sizeof cpus / sizeof cpus[0]; k++)
    if (strcmp(t->cpu, cpus[k]) == 0) return true;
  return false;
}

/* Q.K^T for keys [j, j + jb) of every row, written out already scaled by
 * c and masked (-inf where the key word's row bit is 0, or past ncols):
 * st[j][row] = c * dot(q_row, k_j); the column max goes into mloc.  With a
 * score (the score tile), E is applied to s = scale * dot first. */
typedef struct tile_io {
  LLVMValueRef qt, k, sk, st, mk, ncols, cv, *mloc, *accs;
  int dot;  /* bf16 pairs and vdpbf16ps */
  cg_sc *sc;               /* NULL: the pattern-independent tile */
  LLVMValueRef j0;         /* the score tile's first key */
} tile_io;

/* Dimensions [d0, d1) only: the first part starts from 0, the others from
 * the partial sums left in st, and only the last one scales, masks and
 * takes the max (the sums are the same, in the same order, as in one part:
 * parts keep qt's and k's rows of the part in L1 at large D). */
static void qk_block(cg *g, const tile_io *io, LLVMValueRef j, int jb,
                     int64_t d0, int64_t d1) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef last = LLVMBuildSub(B, io->ncols, ci64(g, 1), "");
  LLVMValueRef krow[8], key[8];
  for (int jj = 0; jj < jb; jj++) {  /* keys past the tile repeat the last */
    key[jj] = LLVMBuildAdd(B, j, ci64(g, jj), "");
    krow[jj] = gep(g, io->dot ? t_i16(g) : g->f32, io->k,
                   LLVMBuildMul(B, smin(g, key[jj], last), io->sk, ""));
  }
  if (d0 == 0) {
    vzero(g, io->accs, jb * NV, 0.0);
  } else {
    for (int jj = 0; jj < jb; jj++)
      for (int rv = 0; rv < NV; rv++)
        LLVMBuildStore(B, vload(g, io->st,
                                LLVMBuildAdd(B, LLVMBuildMul(B, key[jj], ci64(g, KR_BQ), ""),
                                             ci64(g, rv * 16), "")),
                       io->accs[jj * NV + rv]);
  }
  loop ld;
  if (io->dot) {  /* pairs of dimensions d = 2 d2, 2 d2 + 1 */
    LLVMValueRef d2 = loop_begin(g, &ld, ci64(g, d0 / 2), ci64(g, d1 / 2), 1);
    LLVMValueRef qrow =
        gep(g, t_i16(g), io->qt, LLVMBuildMul(B, d2, ci64(g, 2 * KR_BQ), ""));
    LLVMValueRef qv[NV];
    for (int rv = 0; rv < NV; rv++)
      qv[rv] = load_vbf(g, gep(g, t_i16(g), qrow, ci64(g, rv * 32)));
    for (int jj = 0; jj < jb; jj++) {
      LLVMValueRef ks = bcast_pair(
          g, gep(g, t_i16(g), krow[jj], LLVMBuildMul(B, d2, ci64(g, 2), "")));
      for (int rv = 0; rv < NV; rv++) {
        LLVMValueRef a = io->accs[jj * NV + rv];
        LLVMBuildStore(B, dpbf16(g, vld(g, a), qv[rv], ks), a);
      }
    }
    loop_end(g, &ld);
  } else {
  LLVMValueRef d = loop_begin(g, &ld, ci64(g, d0), ci64(g, d1), 1);
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
  }
  if (d1 < g->D) {  /* a part before the last: the partial sums to st */
    for (int jj = 0; jj < jb; jj++)
      for (int rv = 0; rv < NV; rv++)
        vstore(g, vld(g, io->accs[jj * NV + rv]), io->st,
               LLVMBuildAdd(B, LLVMBuildMul(B, key[jj], ci64(g, KR_BQ), ""),
                            ci64(g, rv * 16), ""));
    return;
  }
  LLVMValueRef ninf = vsplat(g, -1.0 / 0.0);
  for (int jj = 0; jj < jb; jj++) {
    LLVMValueRef w = LLVMBuildLoad2(
        B, g->i64, gep(g, g->i64, io->mk, smin(g, key[jj], last)), "");
    w = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, key[jj], io->ncols, ""),
                        w, ci64(g, 0), "");
    LLVMValueRef jf = NULL;
    if (io->sc)
      jf = splat(g, LLVMBuildSIToFP(B, LLVMBuildAdd(B, io->j0, key[jj], ""), g->f32, ""));
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef m16 = LLVMBuildTrunc(B, LLVMBuildLShr(B, w, ci64(g, 16 * rv), ""),
                                        LLVMInt16TypeInContext(g->C), "");
      LLVMValueRef sv = LLVMBuildFMul(B, vld(g, io->accs[jj * NV + rv]), io->cv, "");
      LLVMValueRef live = LLVMBuildBitCast(B, m16, g->vi1, "");
      if (io->sc) { /* E(s) with s = sv ln 2, back to the log2 domain */
        LLVMValueRef sn = LLVMBuildFMul(B, sv, vsplat(g, 0.69314718055994530942), "");
        sv = LLVMBuildFMul(B, cg_sc_value(g, io->sc, rv, jf, sn, live, NULL),
                           vsplat(g, 1.4426950408889634), "");
      }
      sv = LLVMBuildSelect(B, live, sv, ninf, "");
      LLVMBuildStore(B, vmax(g, sv, vld(g, io->mloc[rv])), io->mloc[rv]);
      vstore(g, sv, io->st,
             LLVMBuildAdd(B, LLVMBuildMul(B, key[jj], ci64(g, KR_BQ), ""),
                          ci64(g, rv * 16), ""));
    }
  }
}

/* Pass A may run over D in parts (qk_block's d0, d1), so that Q^T's and the
 * key tile's rows of a part stay in L1 at large D; parts of 64 at D = 128
 * measured the same speed as one part (kernel and tile, 2026-12-02), so one
 * part is used. */

/* The tile's parameters (kr_tile_fn), and whether it multiplies by
 * vdpbf16ps (bf16 pairs) or in float. */
typedef struct tile_args {
  LLVMValueRef qt, k, sk, v, sv, ncols, maskt, acc, mp, lp, c, st;
  int dot;
  cg_sc *sc;                 /* the score tile: E's state, and j0 */
  LLVMValueRef j0;
} tile_args;

static LLVMValueRef ones_words(cg *g) {
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
  return ones;
}

/* dot: the tile's V rows interleaved in pairs at vp ([ncols2 / 2][D][2]
 * bf16; the key past an odd ncols is zero). */
static void pack_v(cg *g, const tile_args *t, LLVMValueRef nc2,
                   LLVMValueRef vp) {
  LLVMBuilderRef B = g->B;
  LLVMTypeRef vi16 = LLVMVectorType(t_i16(g), 16);
  loop lp;
  LLVMValueRef jp = loop_begin(g, &lp, ci64(g, 0),
                               LLVMBuildLShr(B, nc2, ci64(g, 1), ""), 1);
  LLVMValueRef j0 = LLVMBuildMul(B, jp, ci64(g, 2), "");
  LLVMValueRef j1 = LLVMBuildAdd(B, j0, ci64(g, 1), "");
  LLVMValueRef has1 = LLVMBuildICmp(B, LLVMIntSLT, j1, t->ncols, "");
  LLVMValueRef r1 = smin(g, j1, LLVMBuildSub(B, t->ncols, ci64(g, 1), ""));
  LLVMValueRef v0 = gep(g, t_i16(g), t->v, LLVMBuildMul(B, j0, t->sv, ""));
  LLVMValueRef v1 = gep(g, t_i16(g), t->v, LLVMBuildMul(B, r1, t->sv, ""));
  LLVMValueRef dst = gep(g, t_i16(g), vp, LLVMBuildMul(B, jp, ci64(g, 2 * g->D), ""));
  for (int dv = 0; dv < g->D / 16; dv++) {
    LLVMValueRef a = LLVMBuildLoad2(B, vi16, gep(g, t_i16(g), v0, ci64(g, dv * 16)), "");
    LLVMValueRef b = LLVMBuildLoad2(B, vi16, gep(g, t_i16(g), v1, ci64(g, dv * 16)), "");
    LLVMSetAlignment(a, 2);
    LLVMSetAlignment(b, 2);
    b = LLVMBuildSelect(B, has1, b, LLVMConstNull(vi16), "");
    LLVMValueRef sst = LLVMBuildStore(B, zip16(g, a, b),
                                      gep(g, t_i16(g), dst, ci64(g, dv * 32)));
    LLVMSetAlignment(sst, 4);
  }
  loop_end(g, &lp);
}

/* One online-softmax step (kr_tile_fn) on the tile's arguments t. */
static void tile_body(cg *g, const tile_args *t) {
  LLVMBuilderRef B = g->B;
  const int JB = 4;
  LLVMValueRef accs[4 * NV];
  for (int x = 0; x < JB * NV; x++) accs[x] = alloca_t(g, g->vf, "s");
  LLVMValueRef ones = ones_words(g);
  LLVMValueRef mloc[NV];
  for (int rv = 0; rv < NV; rv++) mloc[rv] = alloca_t(g, g->vf, "mloc");
  vzero(g, mloc, NV, -1.0 / 0.0);
  LLVMValueRef ninf = vsplat(g, -1.0 / 0.0);
  tile_io io = {t->qt, t->k, t->sk, t->st,
                LLVMBuildSelect(B, LLVMBuildIsNull(B, t->maskt, ""), ones, t->maskt, ""),
                t->ncols, splat(g, t->c), mloc, accs, t->dot, t->sc, t->j0};
  LLVMValueRef ncols = t->ncols, st = t->st, v = t->v, acc = t->acc;

  /* pass A: S^T = c K Q^T masked, with the column max; 4 keys at a time
   * (KR_BK is a multiple of 4: keys past ncols land in st's spare rows) */
  loop la;
  LLVMValueRef j = NULL;
  int64_t part = g->D; /* one part: QK_PART measured no faster at D = 128 */
  for (int64_t d0 = 0; d0 < g->D; d0 += part) {
    j = loop_begin(g, &la, ci64(g, 0), ncols, JB);
    qk_block(g, &io, j, JB, d0, d0 + part < g->D ? d0 + part : g->D);
    loop_end(g, &la);
  }

  LLVMValueRef muse[NV], alpha[NV];
  LLVMValueRef abuf = alloca_t(g, LLVMArrayType(g->f32, KR_BQ), "alpha");
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef mold = vload(g, t->mp, ci64(g, rv * 16));
    LLVMValueRef mnew = vmax(g, vld(g, mloc[rv]), mold);
    muse[rv] = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, mnew, ninf, ""),
                               LLVMConstNull(g->vf), mnew, "");
    alpha[rv] = exp2v(g, LLVMBuildFSub(B, mold, muse[rv], ""));
    vstore(g, mnew, t->mp, ci64(g, rv * 16));
    vstore(g, alpha[rv], abuf, ci64(g, rv * 16));
  }

  /* pass C: p = 2^(s - m), row sums; dot: two keys at a time (the one
   * past an odd ncols masked, so p = 0 there), P rounded to bf16 and
   * packed in pairs of keys at pb ([ncols2 / 2][KR_BQ][2]) */
  LLVMValueRef nc2 =
      t->dot ? LLVMBuildAnd(B, LLVMBuildAdd(B, ncols, ci64(g, 1), ""), ci64(g, -2), "")
             : ncols;
  LLVMValueRef pb = NULL, vp = NULL, npairs = NULL;
  if (t->dot) {
    pb = gep(g, g->f32, st, ci64(g, KR_BK * KR_BQ));
    vp = gep(g, t_i16(g), pb, ci64(g, KR_BK * KR_BQ));
    npairs = LLVMBuildLShr(B, nc2, ci64(g, 1), "");
  }
  LLVMValueRef lsum[NV];
  for (int rv = 0; rv < NV; rv++) lsum[rv] = alloca_t(g, g->vf, "lsum");
  vzero(g, lsum, NV, 0.0);
  LLVMTypeRef vbh = LLVMVectorType(LLVMBFloatTypeInContext(g->C), 16);
  j = loop_begin(g, &la, ci64(g, 0), t->dot ? npairs : ncols, 1);
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef p[2];
    for (int x = 0; x <= t->dot; x++) {
      LLVMValueRef key = t->dot ? LLVMBuildAdd(B, LLVMBuildMul(B, j, ci64(g, 2), ""),
                                               ci64(g, x), "")
                                : j;
      LLVMValueRef idx = LLVMBuildAdd(B, LLVMBuildMul(B, key, ci64(g, KR_BQ), ""),
                                      ci64(g, rv * 16), "");
      p[x] = exp2v(g, LLVMBuildFSub(B, vload(g, st, idx), muse[rv], ""));
      if (!t->dot) vstore(g, p[x], st, idx);
      LLVMBuildStore(B, LLVMBuildFAdd(B, vld(g, lsum[rv]), p[x], ""), lsum[rv]);
    }
    if (t->dot) {
      LLVMValueRef z = zip16(g, LLVMBuildFPTrunc(B, p[0], vbh, ""),
                             LLVMBuildFPTrunc(B, p[1], vbh, ""));
      LLVMValueRef at = LLVMBuildMul(
          B, LLVMBuildAdd(B, LLVMBuildMul(B, j, ci64(g, KR_BQ), ""), ci64(g, rv * 16), ""),
          ci64(g, 2), "");
      LLVMValueRef sst = LLVMBuildStore(B, z, gep(g, t_i16(g), pb, at));
      LLVMSetAlignment(sst, 4);
    }
  }
  loop_end(g, &la);
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef l = vload(g, t->lp, ci64(g, rv * 16));
    vstore(g, fma16(g, l, alpha[rv], vld(g, lsum[rv])), t->lp, ci64(g, rv * 16));
  }
  if (t->dot) pack_v(g, t, nc2, vp);

  /* pass D: acc = acc * alpha + P V, 4 (or 8) rows x cw <= 4 dim vectors;
   * chunks of equal width share one loop over d0 */
  int chunks[CG_MAX_CHUNKS], n_ch = cg_dim_chunks(g->D, chunks);
  for (int c0 = 0, vbase = 0; c0 < n_ch;) {
    int cw = chunks[c0], run = 1;
    while (c0 + run < n_ch && chunks[c0 + run] == cw) run++;
    int R = cw >= 3 ? 4 : 8;
    LLVMValueRef a[32];
    for (int x = 0; x < R * cw; x++) a[x] = alloca_t(g, g->vf, "o");
    loop ld;
    LLVMValueRef dv = loop_begin(g, &ld, ci64(g, vbase * 16),
                                 ci64(g, (vbase + run * cw) * 16), cw * 16);
    LLVMValueRef vcol = t->dot ? gep(g, t_i16(g), vp, LLVMBuildMul(B, dv, ci64(g, 2), ""))
                               : gep(g, g->f32, v, dv);
    LLVMValueRef acol = gep(g, g->f32, acc, dv);
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
    if (t->dot) {  /* pairs of keys: j = 2 jj, 2 jj + 1 */
      LLVMValueRef jj = loop_begin(g, &lj, ci64(g, 0), npairs, 1);
      LLVMValueRef vrow = gep(g, t_i16(g), vcol, LLVMBuildMul(B, jj, ci64(g, 2 * g->D), ""));
      LLVMValueRef vv[4];
      for (int cc = 0; cc < cw; cc++)
        vv[cc] = load_vbf(g, gep(g, t_i16(g), vrow, ci64(g, cc * 32)));
      LLVMValueRef prow = gep(g, t_i16(g), pb,
                              LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, jj, ci64(g, KR_BQ), ""),
                                                           r, ""),
                                           ci64(g, 2), ""));
      for (int rr = 0; rr < R; rr++) {
        LLVMValueRef pp = bcast_pair(g, gep(g, t_i16(g), prow, ci64(g, 2 * rr)));
        for (int cc = 0; cc < cw; cc++) {
          LLVMValueRef x = a[rr * cw + cc];
          LLVMBuildStore(B, dpbf16(g, vld(g, x), vv[cc], pp), x);
        }
      }
    } else {
      LLVMValueRef jj = loop_begin(g, &lj, ci64(g, 0), ncols, 1);
      LLVMValueRef vrow = gep(g, g->f32, vcol, LLVMBuildMul(B, jj, t->sv, ""));
      LLVMValueRef vv[4];
      for (int cc = 0; cc < cw; cc++) vv[cc] = vload(g, vrow, ci64(g, cc * 16));
      LLVMValueRef prow = gep(g, g->f32, st,
                              LLVMBuildAdd(B, LLVMBuildMul(B, jj, ci64(g, KR_BQ), ""),
                                           r, ""));
      for (int rr = 0; rr < R; rr++) {
        LLVMValueRef pbv = splat(
            g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, prow, ci64(g, rr)), ""));
        for (int cc = 0; cc < cw; cc++) {
          LLVMValueRef x = a[rr * cw + cc];
          LLVMBuildStore(B, fma16(g, pbv, vv[cc], vld(g, x)), x);
        }
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
}

/* The conversion path: rows [0, ncols) of the 16-bit src (row stride s)
 * widened into the float rows of dst (row stride D). */
static void widen_rows(cg *g, LLVMValueRef src, LLVMValueRef s,
                       LLVMValueRef ncols, LLVMValueRef dst) {
  LLVMBuilderRef B = g->B;
  loop l;
  LLVMValueRef j = loop_begin(g, &l, ci64(g, 0), ncols, 1);
  LLVMValueRef from = gep(g, t_i16(g), src, LLVMBuildMul(B, j, s, ""));
  LLVMValueRef to = gep(g, g->f32, dst, LLVMBuildMul(B, j, ci64(g, g->D), ""));
  for (int dv = 0; dv < g->D / 16; dv++)
    vstore(g, load_widen(g, gep(g, t_i16(g), from, ci64(g, dv * 16))), to,
           ci64(g, dv * 16));
  loop_end(g, &l);
}

/* bf16 Q^T pairs ([D / 2][KR_BQ][2]) widened into float Q^T [D][KR_BQ]:
 * of each 32-bit word, the low half is dimension 2 d2, the high 2 d2 + 1. */
static void widen_qt_pairs(cg *g, LLVMValueRef qt, LLVMValueRef qf) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef sh[16], hi[16];
  for (int k = 0; k < 16; k++) {
    sh[k] = LLVMConstInt(g->i32, 16, 0);
    hi[k] = LLVMConstInt(g->i32, 0xffff0000u, 0);
  }
  loop l;
  LLVMValueRef d2 = loop_begin(g, &l, ci64(g, 0), ci64(g, g->D / 2), 1);
  LLVMValueRef src = gep(g, t_i16(g), qt, LLVMBuildMul(B, d2, ci64(g, 2 * KR_BQ), ""));
  LLVMValueRef dst = gep(g, g->f32, qf, LLVMBuildMul(B, d2, ci64(g, 2 * KR_BQ), ""));
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef w = LLVMBuildLoad2(B, g->vi32, gep(g, t_i16(g), src, ci64(g, rv * 32)), "");
    LLVMSetAlignment(w, 4);
    LLVMValueRef even = LLVMBuildShl(B, w, LLVMConstVector(sh, 16), "");
    LLVMValueRef odd = LLVMBuildAnd(B, w, LLVMConstVector(hi, 16), "");
    vstore(g, LLVMBuildBitCast(B, even, g->vf, ""), dst, ci64(g, rv * 16));
    vstore(g, LLVMBuildBitCast(B, odd, g->vf, ""), dst, ci64(g, KR_BQ + rv * 16));
  }
  loop_end(g, &l);
}

/* The tile; with score (the score tile, kr_stile_fn, float32) three
 * leading parameters env, i0, j0, E applied in qk_block, and the error
 * flag returned (codegen_score.h). */
static void gen_tile(cg *g, const char *name, const ir_node *score) {
  int x0 = score ? 3 : 0;
  LLVMTypeRef ps[15] = {g->ptr, g->i64, g->i64};
  LLVMTypeRef base[12] = {g->ptr, g->ptr, g->i64, g->ptr, g->i64, g->i64,
                          g->ptr, g->ptr, g->ptr, g->ptr, g->f32, g->ptr};
  memcpy(ps + x0, base, sizeof base);
  begin_fn(g, name, score ? g->i32 : g->voidt, score ? ps : base, 12 + x0);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  int ptr_args[] = {0, 1, 3, 6, 7, 8, 9, 11};
  for (size_t x = 0; x < sizeof ptr_args / sizeof ptr_args[0]; x++)
    LLVMAddAttributeAtIndex(g->fn, (unsigned)(ptr_args[x] + x0) + 1,
                            LLVMCreateEnumAttribute(g->C, noalias, 0));
  tile_args t = {0};
  LLVMValueRef *f[12] = {&t.qt, &t.k,     &t.sk,  &t.v,  &t.sv, &t.ncols,
                         &t.maskt, &t.acc, &t.mp, &t.lp, &t.c, &t.st};
  for (int x = 0; x < 12; x++) *f[x] = LLVMGetParam(g->fn, (unsigned)(x + x0));
  cg_sc sc;
  if (score) {
    cg_sc_init(g, &sc, LLVMGetParam(g->fn, 0), LLVMGetParam(g->fn, 1));
    t.sc = &sc;
    t.j0 = LLVMGetParam(g->fn, 2);
  }
  t.dot = g->dtype == CG_BF16 && cg_has_bf16_dot(g->tgt);
  if (g->dtype != CG_F32 && !t.dot) {
    /* widened K, V (and bf16's Q^T) in the scratch after the scores */
    LLVMValueRef kf = gep(g, g->f32, t.st, ci64(g, KR_BK * KR_BQ));
    LLVMValueRef vf = gep(g, g->f32, kf, ci64(g, KR_BK * g->D));
    widen_rows(g, t.k, t.sk, t.ncols, kf);
    widen_rows(g, t.v, t.sv, t.ncols, vf);
    if (g->dtype == CG_BF16) {
      LLVMValueRef qf = gep(g, g->f32, vf, ci64(g, KR_BK * g->D));
      widen_qt_pairs(g, t.qt, qf);
      t.qt = qf;
    }
    t.k = kf, t.v = vf, t.sk = t.sv = ci64(g, g->D);
  }
  tile_body(g, &t);
  if (score)
    LLVMBuildRet(g->B, cg_sc_status(g, &sc));
  else
    LLVMBuildRetVoid(g->B);
  end_fn(g);
}

void cg_gen_fwd_tile(cg *g) { gen_tile(g, cg_kinds[CG_KIND_FWD].symbol, NULL); }

/* The module's dtype is float32 (jit.c refuses a score with 16-bit ones). */
void cg_gen_score_tile(cg *g) { gen_tile(g, KABI_STILE, g->p->score); }
