/* codegen_bwd_tile.c: the backward attention tiles spat_bwd_dq and
 * spat_bwd_dkdv (kernel kinds CG_KIND_BWD_DQ and CG_KIND_BWD_DKDV, f32;
 * signature kr_bwd_fn, kernel_rt.h), FlashAttention-2's backward on
 * <16 x float> vectors in the forward tile's transposed layout.
 *
 * Both start with the same pass over the tile's keys, 4 at a time, with
 * vectors of 16 query rows:
 *   s^T[j][r]  = c k_j . q_r               (Q^T packed, as the forward)
 *   P^T[j][r]  = 2^(E(s) - lse_r log2 e)   masked to 0
 *   dS^T[j][r] = P (v_j . do_r - Delta_r + dlse_r) dE/ds
 * into st (P in its first KR_BK x KR_BQ floats, dS in the second), the
 * score passing through one place, score_hook, where a score modification
 * (language v2) generates E and dE/ds.  Then register-blocked products:
 *   dq:   dq[r][:] += sum_j dS^T[j][r] k_j
 *   dkdv: dk[j][:] += sum_r dS^T[j][r] q_r,  dv[j][:] += sum_r P^T[j][r] do_r
 *         and, given gq (the fused pass), dq[r][:] += sum_j dS^T[j][r] k_j
 * Depends only on D, never on the pattern; masks are the forward's key
 * words (bit r of word j: row r allows key j; NULL: all allowed).
 *
 * A pattern with `with score E` gets its own pair in its module,
 * spat_sbwd_dq and spat_sbwd_dkdv (kr_sbwd_fn: env, i0, j0, gin first,
 * the error flag returned): E in place of s for P, dS times dE/ds (both
 * from codegen_score.c), and in dkdv, when gin is not NULL, the adjoints
 * dL/dE = P (dP - Delta + dlse) of every pair pushed through E into the
 * float inputs' gradients (st's regions 2 and 3 keep s and dL/dE).
 */
#include "codegen_score.h"

/* ORDER kr_bwd_fn's parameters */
enum {
  P_QT, P_DOT, P_QR, P_DOR, P_ROWC, P_K, P_SK, P_V, P_SV, P_NCOLS, P_MASKT,
  P_GA, P_GB, P_GQ, P_C, P_ST, P_N
};

#define JB 4 /* keys per step of the score pass */

typedef struct bwd_io {
  LLVMValueRef p[P_N];
  LLVMValueRef mk;   /* maskt, or the all-ones words */
  LLVMValueRef cv;   /* c splatted */
  LLVMValueRef accs[JB * NV];
  cg_sc *sc;         /* the score tiles: E's state; j0, gin their params */
  LLVMValueRef j0, gin;
} bwd_io;

/* The score hook: the one place the tile sees a score.  dot: k_j . q_r for
 * rows rv * 16 .. + 15 at key position jf, lanes live allowed; returns the
 * log2-domain score the softmax uses, E(scale dot) log2 e, in *dE dE/ds
 * (NULL for 1: language v1, E(s) = s) and in *sn s = scale dot. */
static LLVMValueRef score_hook(cg *g, const bwd_io *io, LLVMValueRef dot, int rv,
                               LLVMValueRef jf, LLVMValueRef live,
                               LLVMValueRef *dE, LLVMValueRef *sn) {
  LLVMValueRef s2 = LLVMBuildFMul(g->B, dot, io->cv, "");
  *dE = *sn = NULL;
  if (!io->sc) return s2;
  *sn = LLVMBuildFMul(g->B, s2, vsplat(g, 0.69314718055994530942), "");
  LLVMValueRef E = cg_sc_value(g, io->sc, rv, jf, *sn, live, dE);
  return LLVMBuildFMul(g->B, E, vsplat(g, 1.4426950408889634), "");
}

/* key position j0 + key as a float splat (score tiles) */
static LLVMValueRef key_pos(cg *g, const bwd_io *io, LLVMValueRef key) {
  if (!io->sc) return NULL;
  return splat(g, LLVMBuildSIToFP(g->B, LLVMBuildAdd(g->B, io->j0, key, ""), g->f32, ""));
}

/* accs[jj][rv] = x_{j + jj} . t[:, rv] for the JB keys from j (rows of x,
 * stride sx, clamped to the last key) and t [D][KR_BQ]. */
static void dots(cg *g, bwd_io *io, LLVMValueRef x, LLVMValueRef sx,
                 LLVMValueRef t, LLVMValueRef j) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef last = LLVMBuildSub(B, io->p[P_NCOLS], ci64(g, 1), "");
  vzero(g, io->accs, JB * NV, 0.0);
  LLVMValueRef xrow[JB];
  for (int jj = 0; jj < JB; jj++) {
    LLVMValueRef key = LLVMBuildAdd(B, j, ci64(g, jj), "");
    xrow[jj] = gep(g, g->f32, x, LLVMBuildMul(B, smin(g, key, last), sx, ""));
  }
  loop ld;
  LLVMValueRef d = loop_begin(g, &ld, ci64(g, 0), ci64(g, g->D), 1);
  LLVMValueRef trow = gep(g, g->f32, t, LLVMBuildMul(B, d, ci64(g, KR_BQ), ""));
  LLVMValueRef tv[NV];
  for (int rv = 0; rv < NV; rv++) tv[rv] = vload(g, trow, ci64(g, rv * 16));
  for (int jj = 0; jj < JB; jj++) {
    LLVMValueRef xs =
        splat(g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, xrow[jj], d), ""));
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef a = io->accs[jj * NV + rv];
      LLVMBuildStore(B, fma16(g, xs, tv[rv], vld(g, a)), a);
    }
  }
  loop_end(g, &ld);
}

static LLVMValueRef st_idx(cg *g, LLVMValueRef key, int rv, int region) {
  return LLVMBuildAdd(g->B, LLVMBuildMul(g->B, key, ci64(g, KR_BQ), ""),
                      ci64(g, region * KR_BK * KR_BQ + rv * 16), "");
}

/* The score pass for keys [j, j + JB): P^T and dS^T into st. */
static void score_block(cg *g, bwd_io *io, LLVMValueRef j) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef st = io->p[P_ST], rowc = io->p[P_ROWC];
  LLVMValueRef last = LLVMBuildSub(B, io->p[P_NCOLS], ci64(g, 1), "");
  LLVMValueRef key[JB], m16[JB][NV];
  for (int jj = 0; jj < JB; jj++) {
    key[jj] = LLVMBuildAdd(B, j, ci64(g, jj), "");
    LLVMValueRef w = LLVMBuildLoad2(
        B, g->i64, gep(g, g->i64, io->mk, smin(g, key[jj], last)), "");
    w = LLVMBuildSelect(
        B, LLVMBuildICmp(B, LLVMIntSLT, key[jj], io->p[P_NCOLS], ""), w,
        ci64(g, 0), "");
    for (int rv = 0; rv < NV; rv++)
      m16[jj][rv] = LLVMBuildBitCast(
          B,
          LLVMBuildTrunc(B, LLVMBuildLShr(B, w, ci64(g, 16 * rv), ""),
                         LLVMInt16TypeInContext(g->C), ""),
          g->vi1, "");
  }
  LLVMValueRef zero = LLVMConstNull(g->vf);
  int has_de = 0;
  dots(g, io, io->p[P_K], io->p[P_SK], io->p[P_QT], j);
  for (int jj = 0; jj < JB; jj++)
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef dE, sn;
      LLVMValueRef s = score_hook(g, io, vld(g, io->accs[jj * NV + rv]), rv,
                                  key_pos(g, io, key[jj]), m16[jj][rv], &dE, &sn);
      LLVMValueRef lse2 = vload(g, rowc, ci64(g, rv * 16));
      LLVMValueRef p = exp2v(g, LLVMBuildFSub(B, s, lse2, ""));
      vstore(g, LLVMBuildSelect(B, m16[jj][rv], p, zero, ""), st,
             st_idx(g, key[jj], rv, 0));
      if (dE) {  /* kept in the dS slot until dS is known */
        vstore(g, dE, st, st_idx(g, key[jj], rv, 1));
        has_de = 1;
      }
      if (sn) vstore(g, sn, st, st_idx(g, key[jj], rv, 2));
    }
  dots(g, io, io->p[P_V], io->p[P_SV], io->p[P_DOT], j);
  for (int jj = 0; jj < JB; jj++)
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef dl = vload(g, rowc, ci64(g, KR_BQ + rv * 16));
      LLVMValueRef p = vload(g, st, st_idx(g, key[jj], rv, 0));
      LLVMValueRef ds = LLVMBuildFMul(
          B, p, LLVMBuildFSub(B, vld(g, io->accs[jj * NV + rv]), dl, ""), "");
      LLVMValueRef ok = m16[jj][rv];
      if (has_de) { /* a pair with P = 0 (E = -inf) adds nothing, never NaN */
        ok = LLVMBuildAnd(B, ok, LLVMBuildFCmp(B, LLVMRealUNE, p, zero, ""), "");
        vstore(g, LLVMBuildSelect(B, ok, ds, zero, ""), st, st_idx(g, key[jj], rv, 3));
        ds = LLVMBuildFMul(B, ds, vload(g, st, st_idx(g, key[jj], rv, 1)), "");
      }
      vstore(g, LLVMBuildSelect(B, ok, ds, zero, ""), st,
             st_idx(g, key[jj], rv, 1));
    }
}

/* out[x][:] += sum_{y < ny} w[x wsx + y wsy] m[y sm + :] for x < nx (a
 * multiple of 8), out's rows D floats apart: chunks of cw <= 4 dimension
 * vectors times R rows of accumulators, as the forward's P V. */
static void acc_gemm(cg *g, LLVMValueRef out, LLVMValueRef nx, int64_t wsx,
                     int64_t wsy, LLVMValueRef w, LLVMValueRef m,
                     LLVMValueRef sm, LLVMValueRef ny) {
  LLVMBuilderRef B = g->B;
  int chunks[CG_MAX_CHUNKS], n_ch = cg_dim_chunks(g->D, chunks);
  for (int c0 = 0, vbase = 0; c0 < n_ch;) {
    int cw = chunks[c0], run = 1;
    while (c0 + run < n_ch && chunks[c0 + run] == cw) run++;
    int R = cw >= 3 ? 4 : 8;
    LLVMValueRef a[32];
    for (int x = 0; x < R * cw; x++) a[x] = alloca_t(g, g->vf, "g");
    loop ld;
    LLVMValueRef dv = loop_begin(g, &ld, ci64(g, vbase * 16),
                                 ci64(g, (vbase + run * cw) * 16), cw * 16);
    LLVMValueRef mcol = gep(g, g->f32, m, dv), ocol = gep(g, g->f32, out, dv);
    loop lx;
    LLVMValueRef x = loop_begin(g, &lx, ci64(g, 0), nx, R);
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef xr = LLVMBuildAdd(B, x, ci64(g, rr), "");
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef idx = LLVMBuildAdd(
            B, LLVMBuildMul(B, xr, ci64(g, g->D), ""), ci64(g, cc * 16), "");
        LLVMBuildStore(B, vload(g, ocol, idx), a[rr * cw + cc]);
      }
    }
    loop ly;
    LLVMValueRef y = loop_begin(g, &ly, ci64(g, 0), ny, 1);
    LLVMValueRef mrow = gep(g, g->f32, mcol, LLVMBuildMul(B, y, sm, ""));
    LLVMValueRef mv[4];
    for (int cc = 0; cc < cw; cc++) mv[cc] = vload(g, mrow, ci64(g, cc * 16));
    LLVMValueRef wrow = gep(
        g, g->f32, w,
        LLVMBuildAdd(B, LLVMBuildMul(B, y, ci64(g, wsy), ""),
                     LLVMBuildMul(B, x, ci64(g, wsx), ""), ""));
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef wb = splat(
          g, LLVMBuildLoad2(B, g->f32,
                            gep(g, g->f32, wrow, ci64(g, rr * wsx)), ""));
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef acc = a[rr * cw + cc];
        LLVMBuildStore(B, fma16(g, wb, mv[cc], vld(g, acc)), acc);
      }
    }
    loop_end(g, &ly);
    for (int rr = 0; rr < R; rr++) {
      LLVMValueRef xr = LLVMBuildAdd(B, x, ci64(g, rr), "");
      for (int cc = 0; cc < cw; cc++) {
        LLVMValueRef idx = LLVMBuildAdd(
            B, LLVMBuildMul(B, xr, ci64(g, g->D), ""), ci64(g, cc * 16), "");
        vstore(g, vld(g, a[rr * cw + cc]), ocol, idx);
      }
    }
    loop_end(g, &lx);
    loop_end(g, &ld);
    c0 += run;
    vbase += run * cw;
  }
}

/* The function's header, parameters and score pass over keys up to ncols
 * rounded up to 8 (keys past ncols masked: st holds zeros there). */
static void begin_bwd(cg *g, bwd_io *io, const char *symbol, cg_sc *sc) {
  LLVMBuilderRef B = g->B;
  int x0 = sc ? 4 : 0; /* the score tiles: env, i0, j0, gin first */
  LLVMTypeRef ps[P_N + 4] = {g->ptr, g->i64, g->i64, g->ptr};
  for (int x = 0; x < P_N; x++) ps[x0 + x] = g->ptr;
  ps[x0 + P_SK] = ps[x0 + P_SV] = ps[x0 + P_NCOLS] = g->i64;
  ps[x0 + P_C] = g->f32;
  begin_fn(g, symbol, sc ? g->i32 : g->voidt, ps, P_N + x0);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  for (int x = 0; x < P_N; x++) {
    io->p[x] = LLVMGetParam(g->fn, (unsigned)(x0 + x));
    if (ps[x0 + x] == g->ptr)
      LLVMAddAttributeAtIndex(g->fn, (unsigned)(x0 + x) + 1,
                              LLVMCreateEnumAttribute(g->C, noalias, 0));
  }
  io->sc = sc;
  if (sc) {
    cg_sc_init(g, sc, LLVMGetParam(g->fn, 0), LLVMGetParam(g->fn, 1));
    io->j0 = LLVMGetParam(g->fn, 2);
    io->gin = LLVMGetParam(g->fn, 3);
  }
  for (int x = 0; x < JB * NV; x++) io->accs[x] = alloca_t(g, g->vf, "s");
  /* the forward tile's (one constant in a module holding both) */
  const char *oname = "spat_ones";
  LLVMTypeRef ones_t = LLVMArrayType(g->i64, KR_BK);
  LLVMValueRef ones = LLVMGetNamedGlobal(g->M, oname);
  if (!ones) {
    LLVMValueRef w[KR_BK];
    for (int x = 0; x < KR_BK; x++) w[x] = ci64(g, -1);
    ones = LLVMAddGlobal(g->M, ones_t, oname);
    LLVMSetInitializer(ones, LLVMConstArray2(g->i64, w, KR_BK));
    LLVMSetGlobalConstant(ones, 1);
    LLVMSetLinkage(ones, LLVMPrivateLinkage);
    LLVMSetAlignment(ones, 64);
  }
  LLVMValueRef maskt = io->p[P_MASKT];
  io->mk = LLVMBuildSelect(B, LLVMBuildIsNull(B, maskt, ""), ones, maskt, "");
  io->cv = splat(g, io->p[P_C]);
  loop la;
  LLVMValueRef j = loop_begin(g, &la, ci64(g, 0), io->p[P_NCOLS], JB);
  score_block(g, io, j);
  loop_end(g, &la);
  /* keys [ncols rounded to 4, rounded to 8) of dkdv's products: zeros */
  LLVMValueRef n4 = LLVMBuildAnd(
      B, LLVMBuildAdd(B, io->p[P_NCOLS], ci64(g, 3), ""), ci64(g, -4), "");
  LLVMValueRef n8 = LLVMBuildAnd(
      B, LLVMBuildAdd(B, io->p[P_NCOLS], ci64(g, 7), ""), ci64(g, -8), "");
  loop lz;
  LLVMValueRef z = loop_begin(g, &lz, n4, n8, 1);
  for (int region = 0; region < 2; region++)
    for (int rv = 0; rv < NV; rv++)
      vstore(g, LLVMConstNull(g->vf), io->p[P_ST], st_idx(g, z, rv, region));
  loop_end(g, &lz);
}

/* The float inputs' gradients from st's regions 2 (s) and 3 (dL/dE) of
 * every key, when gin is not NULL (the score dkdv tile). */
static void input_grads(cg *g, bwd_io *io) {
  LLVMBuilderRef B = g->B;
  LLVMBasicBlockRef yes = newbb(g, "grads"), done = newbb(g, "grads_done");
  LLVMBuildCondBr(B, LLVMBuildIsNull(B, io->gin, ""), done, yes);
  LLVMPositionBuilderAtEnd(B, yes);
  loop l;
  LLVMValueRef j = loop_begin(g, &l, ci64(g, 0), io->p[P_NCOLS], 1);
  LLVMValueRef jf = key_pos(g, io, j);
  for (int rv = 0; rv < NV; rv++)
    cg_sc_grad(g, io->sc, rv, jf, vload(g, io->p[P_ST], st_idx(g, j, rv, 2)),
               vload(g, io->p[P_ST], st_idx(g, j, rv, 3)), io->gin);
  loop_end(g, &l);
  cg_sc_flush(g, io->sc, io->gin);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
}

static void end_bwd(cg *g, bwd_io *io) {
  if (io->sc)
    LLVMBuildRet(g->B, cg_sc_status(g, io->sc));
  else
    LLVMBuildRetVoid(g->B);
  end_fn(g);
}

static void gen_dq(cg *g, const char *symbol, cg_sc *sc) {
  bwd_io io;
  begin_bwd(g, &io, symbol, sc);
  acc_gemm(g, io.p[P_GA], ci64(g, KR_BQ), 1, KR_BQ,
           gep(g, g->f32, io.p[P_ST], ci64(g, KR_BK * KR_BQ)), io.p[P_K],
           io.p[P_SK], io.p[P_NCOLS]);
  end_bwd(g, &io);
}

static void gen_dkdv(cg *g, const char *symbol, cg_sc *sc) {
  bwd_io io;
  begin_bwd(g, &io, symbol, sc);
  if (sc) input_grads(g, &io);
  LLVMValueRef n8 = LLVMBuildAnd(
      g->B, LLVMBuildAdd(g->B, io.p[P_NCOLS], ci64(g, 7), ""), ci64(g, -8), "");
  acc_gemm(g, io.p[P_GA], n8, KR_BQ, 1,
           gep(g, g->f32, io.p[P_ST], ci64(g, KR_BK * KR_BQ)), io.p[P_QR],
           ci64(g, g->D), ci64(g, KR_BQ));
  acc_gemm(g, io.p[P_GB], n8, KR_BQ, 1, io.p[P_ST], io.p[P_DOR],
           ci64(g, g->D), ci64(g, KR_BQ));
  /* the fused pass: dq of the query tile too, from the same dS */
  LLVMBasicBlockRef yes = newbb(g, "dq"), done = newbb(g, "ret");
  LLVMBuildCondBr(g->B, LLVMBuildIsNull(g->B, io.p[P_GQ], ""), done, yes);
  LLVMPositionBuilderAtEnd(g->B, yes);
  acc_gemm(g, io.p[P_GQ], ci64(g, KR_BQ), 1, KR_BQ,
           gep(g, g->f32, io.p[P_ST], ci64(g, KR_BK * KR_BQ)), io.p[P_K],
           io.p[P_SK], io.p[P_NCOLS]);
  LLVMBuildBr(g->B, done);
  LLVMPositionBuilderAtEnd(g->B, done);
  end_bwd(g, &io);
}

void cg_gen_bwd_dq(cg *g) { gen_dq(g, cg_kinds[CG_KIND_BWD_DQ].symbol, NULL); }

void cg_gen_bwd_dkdv(cg *g) { gen_dkdv(g, cg_kinds[CG_KIND_BWD_DKDV].symbol, NULL); }

/* The score tiles of g->p (float32; only when cg_score_supported). */
void cg_gen_score_bwd(cg *g) {
  cg_sc sc;
  gen_dq(g, KABI_SBWD_DQ, &sc);
  gen_dkdv(g, KABI_SBWD_DKDV, &sc);
}
