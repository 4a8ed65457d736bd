/* codegen_fwd_tile.c: the forward attention tile spat_tile (see codegen.h
 * for its ABI): a FlashAttention-2 step on <16 x float> vectors in a
 * transposed layout: scores S^T[j][row] so the per-row max, exp and sums
 * are vertical ops, a polynomial exp2 in IR, register-blocked Q.K^T (4 keys
 * x 64 rows) and P.V (4 rows x 64 dims), masks applied as k-masks from one
 * 64-bit word per key.  Depends only on D, never on the pattern.  Kernel
 * kind CG_KIND_FWD, f32 (kinds.c); its signature is kr_tile_fn (kabi.h).
 * A pattern with `with score E` gets its own variant in its module,
 * spat_stile (kr_stile_fn): the same code with E compiled into the score
 * pass (vectorised, fused before the online softmax, no extra pass).
 */
#include "codegen_impl.h"

/* --- the attention tile ------------------------------------------------------ */

/* Q.K^T for keys [j, j + jb) of every row, written out already scaled by
 * c and masked (-inf where the key word's row bit is 0, or past ncols):
 * st[j][row] = c * dot(q_row, k_j); the column max goes into mloc.  With a
 * score (the score tile), E is applied to s = scale * dot first. */
typedef struct tile_io {
  LLVMValueRef qt, k, sk, st, mk, ncols, cv, *mloc, *accs;
  const ir_node *score;    /* NULL: the pattern-independent tile */
  const ir_program *p;
  LLVMValueRef env, j0, ipos[NV]; /* score tile: kr_env, first key, row positions */
} tile_io;

/* --- scores (with score E) on 16 rows at once, float32 ------------------
 * The subset cg_score_supported accepts: float ops, s, integer parts over
 * i, j, h, sizes, runtime scalars and constants evaluated in float (exact
 * below 2^24), float inputs indexed by h and constants only (in range by
 * their declaration, so no check at run time). */

static LLVMValueRef fsel_v(cg *g, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->B, c, a, b, "");
}
static LLVMValueRef b2f(cg *g, LLVMValueRef c) {
  return fsel_v(g, c, vsplat(g, 1.0), vsplat(g, 0.0));
}
static LLVMValueRef nz(cg *g, LLVMValueRef x) {
  return LLVMBuildFCmp(g->B, LLVMRealUNE, x, vsplat(g, 0.0), "");
}

static LLVMValueRef env_i64(cg *g, LLVMValueRef env, int w) {
  return LLVMBuildLoad2(g->B, g->i64, gep(g, g->i64, env, ci64(g, w)), "");
}
static LLVMValueRef i2f(cg *g, LLVMValueRef x) {
  return splat(g, LLVMBuildSIToFP(g->B, x, g->f32, ""));
}

/* The value of dimension expression n (sizes H, constants) as i64. */
static LLVMValueRef dim_i64(cg *g, const tile_io *io, const ir_node *n) {
  return n->op == IR_SIZE_H ? env_i64(g, io->env, KABI_ENV_NHEADS) : ci64(g, n->value);
}

static LLVMValueRef score_v(cg *g, const tile_io *io, const ir_node *n, int rv,
                            LLVMValueRef s, LLVMValueRef jf);

static LLVMValueRef int_v(cg *g, const tile_io *io, const ir_node *n, int rv,
                          LLVMValueRef s, LLVMValueRef jf) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef a, b;
  switch (n->op) {
  case IR_CONST: return vsplat(g, (double)n->value);
  case IR_VAR_I: return io->ipos[rv];
  case IR_VAR_J: return jf;
  case IR_VAR_H: return i2f(g, env_i64(g, io->env, KABI_ENV_H));
  case IR_SIZE_H: return i2f(g, env_i64(g, io->env, KABI_ENV_NHEADS));
  case IR_SIZE_LQ: return i2f(g, env_i64(g, io->env, KABI_ENV_LQ));
  case IR_SIZE_LK: return i2f(g, env_i64(g, io->env, KABI_ENV_LK));
  case IR_RUNTIME: {
    LLVMValueRef rt = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, io->env, ci64(g, KABI_ENV_RUNTIME)), "");
    return i2f(g, LLVMBuildLoad2(B, g->i64, gep(g, g->i64, rt, ci64(g, n->value)), ""));
  }
  case IR_NEG: return LLVMBuildFNeg(B, int_v(g, io, n->kids[0], rv, s, jf), "");
  case IR_NOT: return b2f(g, LLVMBuildNot(B, nz(g, int_v(g, io, n->kids[0], rv, s, jf)), ""));
  case IR_ABS: {
    LLVMValueRef x = int_v(g, io, n->kids[0], rv, s, jf);
    return call_intr(g, "llvm.fabs", &g->vf, 1, &x, 1);
  }
  case IR_SEL:
    return fsel_v(g, nz(g, int_v(g, io, n->kids[0], rv, s, jf)),
                  int_v(g, io, n->kids[1], rv, s, jf), int_v(g, io, n->kids[2], rv, s, jf));
  default: break;
  }
  a = int_v(g, io, n->kids[0], rv, s, jf);
  b = int_v(g, io, n->kids[1], rv, s, jf);
  switch (n->op) {
  case IR_ADD: return LLVMBuildFAdd(B, a, b, "");
  case IR_SUB: return LLVMBuildFSub(B, a, b, "");
  case IR_MUL: return LLVMBuildFMul(B, a, b, "");
  case IR_MIN: return fsel_v(g, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""), a, b);
  case IR_MAX: return fsel_v(g, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""), a, b);
  case IR_LT: return b2f(g, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""));
  case IR_LE: return b2f(g, LLVMBuildFCmp(B, LLVMRealOLE, a, b, ""));
  case IR_GT: return b2f(g, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""));
  case IR_GE: return b2f(g, LLVMBuildFCmp(B, LLVMRealOGE, a, b, ""));
  case IR_EQ: return b2f(g, LLVMBuildFCmp(B, LLVMRealOEQ, a, b, ""));
  case IR_NE: return b2f(g, LLVMBuildFCmp(B, LLVMRealUNE, a, b, ""));
  case IR_LAND: return b2f(g, LLVMBuildAnd(B, nz(g, a), nz(g, b), ""));
  default: return b2f(g, LLVMBuildOr(B, nz(g, a), nz(g, b), "")); /* LOR */
  }
}

/* tanh(x) = sign(x) (1 - e) / (1 + e), e = 2^(-2 |x| log2 e) <= 1. */
static LLVMValueRef tanh_v(cg *g, LLVMValueRef x) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef ax = call_intr(g, "llvm.fabs", &g->vf, 1, &x, 1);
  LLVMValueRef e = exp2v(g, LLVMBuildFMul(B, ax, vsplat(g, -2.8853900817779268), ""));
  LLVMValueRef t = LLVMBuildFDiv(B, LLVMBuildFSub(B, vsplat(g, 1.0), e, ""),
                                 LLVMBuildFAdd(B, vsplat(g, 1.0), e, ""), "");
  LLVMValueRef args[2] = {t, x};
  return call_intr(g, "llvm.copysign", &g->vf, 1, args, 2);
}

static LLVMValueRef score_v(cg *g, const tile_io *io, const ir_node *n, int rv,
                            LLVMValueRef s, LLVMValueRef jf) {
  LLVMBuilderRef B = g->B;
  switch (n->op) {
  case IR_FSCORE: return s;
  case IR_FCONST: return vsplat(g, n->fvalue);
  case IR_FCVT: return int_v(g, io, n->kids[0], rv, s, jf);
  case IR_FINPUT: {
    const ir_input *in = &io->p->inputs[n->value];
    LLVMValueRef flat = ci64(g, 0);
    for (int k = 0; k < n->n_kids; k++) {
      const ir_node *x = n->kids[k];
      LLVMValueRef xv = x->op == IR_VAR_H ? env_i64(g, io->env, KABI_ENV_H) : ci64(g, x->value);
      flat = LLVMBuildAdd(B, LLVMBuildMul(B, flat, dim_i64(g, io, in->dims[k]), ""), xv, "");
    }
    LLVMValueRef ins = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, io->env, ci64(g, KABI_ENV_INPUTS)), "");
    LLVMValueRef arr = LLVMBuildLoad2(B, g->ptr, gep(g, g->ptr, ins, ci64(g, n->value)), "");
    return splat(g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, arr, flat), ""));
  }
  case IR_FSEL:
    return fsel_v(g, nz(g, int_v(g, io, n->kids[0], rv, s, jf)),
                  score_v(g, io, n->kids[1], rv, s, jf), score_v(g, io, n->kids[2], rv, s, jf));
  default: break;
  }
  LLVMValueRef a = score_v(g, io, n->kids[0], rv, s, jf);
  const char *intr = n->op == IR_FABS ? "llvm.fabs" : n->op == IR_FSQRT ? "llvm.sqrt"
                     : n->op == IR_FEXP ? "llvm.exp" : n->op == IR_FLOG ? "llvm.log" : NULL;
  if (intr) return call_intr(g, intr, &g->vf, 1, &a, 1);
  if (n->op == IR_FNEG) return LLVMBuildFNeg(B, a, "");
  if (n->op == IR_FTANH) return tanh_v(g, a);
  LLVMValueRef b = score_v(g, io, n->kids[1], rv, s, jf);
  switch (n->op) {
  case IR_FADD: return LLVMBuildFAdd(B, a, b, "");
  case IR_FSUB: return LLVMBuildFSub(B, a, b, "");
  case IR_FMUL: return LLVMBuildFMul(B, a, b, "");
  case IR_FDIV: return LLVMBuildFDiv(B, a, b, "");
  case IR_FMIN: /* x < y || isnan(y) ? x : y, as the interpreter */
    return fsel_v(g, LLVMBuildOr(B, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""),
                                 LLVMBuildFCmp(B, LLVMRealUNO, b, b, ""), ""), a, b);
  default:
    return fsel_v(g, LLVMBuildOr(B, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""),
                                 LLVMBuildFCmp(B, LLVMRealUNO, b, b, ""), ""), a, b);
  }
}

static bool int_ok(const ir_node *n) {
  switch (n->op) {
  case IR_CONST: case IR_VAR_I: case IR_VAR_J: case IR_VAR_H: case IR_SIZE_H:
  case IR_SIZE_LQ: case IR_SIZE_LK: case IR_RUNTIME: case IR_NEG: case IR_NOT:
  case IR_ABS: case IR_SEL: case IR_ADD: case IR_SUB: case IR_MUL: case IR_MIN:
  case IR_MAX: case IR_LT: case IR_LE: case IR_GT: case IR_GE: case IR_EQ:
  case IR_NE: case IR_LAND: case IR_LOR:
    break;
  default: return false;
  }
  for (int k = 0; k < n->n_kids; k++)
    if (!int_ok(n->kids[k])) return false;
  return true;
}

static bool score_ok(const ir_program *p, const ir_node *n) {
  switch (n->op) {
  case IR_FSCORE: case IR_FCONST: return true;
  case IR_FCVT: return int_ok(n->kids[0]);
  case IR_FSEL:
    return int_ok(n->kids[0]) && score_ok(p, n->kids[1]) && score_ok(p, n->kids[2]);
  case IR_FINPUT: {
    const ir_input *in = &p->inputs[n->value];
    for (int k = 0; k < n->n_kids; k++) {
      const ir_node *x = n->kids[k], *d = in->dims[k];
      bool h = x->op == IR_VAR_H && d->op == IR_SIZE_H;
      bool c = x->op == IR_CONST && d->op == IR_CONST && x->value >= 0 && x->value < d->value;
      if (!h && !c) return false;
    }
    return true;
  }
  default: break;
  }
  if (ir_op_kind[n->op] != IR_FLT) return false;
  for (int k = 0; k < n->n_kids; k++)
    if (!score_ok(p, n->kids[k])) return false;
  return true;
}

bool cg_score_supported(const ir_program *p) { return p->score && score_ok(p, p->score); }

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
    LLVMValueRef jf = io->score ? i2f(g, LLVMBuildAdd(B, io->j0, key[jj], "")) : NULL;
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef m16 = LLVMBuildTrunc(B, LLVMBuildLShr(B, w, ci64(g, 16 * rv), ""),
                                        LLVMInt16TypeInContext(g->C), "");
      LLVMValueRef sv = LLVMBuildFMul(B, vld(g, io->accs[jj * NV + rv]), io->cv, "");
      if (io->score) { /* E(s) with s = sv ln 2, back to the log2 domain */
        LLVMValueRef sn = LLVMBuildFMul(B, sv, vsplat(g, 0.69314718055994530942), "");
        sv = LLVMBuildFMul(B, score_v(g, io, io->score, rv, sn, jf),
                           vsplat(g, 1.4426950408889634), "");
      }
      sv = LLVMBuildSelect(B, LLVMBuildBitCast(B, m16, g->vi1, ""), sv, ninf, "");
      LLVMBuildStore(B, vmax(g, sv, vld(g, io->mloc[rv])), io->mloc[rv]);
      vstore(g, sv, io->st,
             LLVMBuildAdd(B, LLVMBuildMul(B, key[jj], ci64(g, KR_BQ), ""),
                          ci64(g, rv * 16), ""));
    }
  }
}

/* The tile; with score (the score tile, kr_stile_fn) three leading
 * parameters env, i0, j0 and E applied in qk_block. */
static void gen_tile(cg *g, const char *name, const ir_node *score) {
  LLVMBuilderRef B = g->B;
  int x0 = score ? 3 : 0;
  LLVMTypeRef ps[15] = {g->ptr, g->i64, g->i64};
  LLVMTypeRef base[12] = {g->ptr, g->ptr, g->i64, g->ptr, g->i64, g->i64,
                          g->ptr, g->ptr, g->ptr, g->ptr, g->f32, g->ptr};
  memcpy(ps + x0, base, sizeof base);
  begin_fn(g, name, g->voidt, score ? ps : base, 12 + x0);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  int ptr_args[] = {0, 1, 3, 6, 7, 8, 9, 11};
  for (size_t x = 0; x < sizeof ptr_args / sizeof ptr_args[0]; x++)
    LLVMAddAttributeAtIndex(g->fn, (unsigned)(ptr_args[x] + x0) + 1,
                            LLVMCreateEnumAttribute(g->C, noalias, 0));
  LLVMValueRef qt = LLVMGetParam(g->fn, x0 + 0), k = LLVMGetParam(g->fn, x0 + 1),
               sk = LLVMGetParam(g->fn, x0 + 2), v = LLVMGetParam(g->fn, x0 + 3),
               sv = LLVMGetParam(g->fn, x0 + 4), ncols = LLVMGetParam(g->fn, x0 + 5),
               maskt = LLVMGetParam(g->fn, x0 + 6), acc = LLVMGetParam(g->fn, x0 + 7),
               mp = LLVMGetParam(g->fn, x0 + 8), lp = LLVMGetParam(g->fn, x0 + 9),
               c = LLVMGetParam(g->fn, x0 + 10), st = LLVMGetParam(g->fn, x0 + 11);
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
                ncols, splat(g, c), mloc, accs, score, g->p, NULL, NULL, {NULL}};
  if (score) {
    io.env = LLVMGetParam(g->fn, 0);
    io.j0 = LLVMGetParam(g->fn, 2);
    LLVMValueRef i0 = i2f(g, LLVMGetParam(g->fn, 1));
    for (int rv = 0; rv < NV; rv++) {
      LLVMValueRef lane[16];
      for (int t = 0; t < 16; t++) lane[t] = cf(g, rv * 16 + t);
      io.ipos[rv] = LLVMBuildFAdd(B, i0, LLVMConstVector(lane, 16), "");
    }
  }

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

void cg_gen_fwd_tile(cg *g) { gen_tile(g, cg_kinds[CG_KIND_FWD].symbol, NULL); }

void cg_gen_score_tile(cg *g) { gen_tile(g, KABI_STILE, g->p->score); }
