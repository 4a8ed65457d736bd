/* codegen_decode.c: the decode tile spat_dtile (kernel kind "decode", see
 * kr_dtile_fn in runtime/kernel_rt.h): one online-softmax step of nr
 * (1..KR_DR) query rows, stored row-major and unpadded, against ncols
 * (1..KR_BK) keys.  Built for decoding, where the rows are the few query
 * rows of every head sharing one KV head: no row is padding.
 *
 *   scores:     per block of 16 keys, per row r: s = c q_r . k_j, 16
 *               accumulators over D (vectorised over D; 4 keys a pass on
 *               targets without AVX-512), folded into one vector of 16
 *               scores by a shuffle tree, masked
 *   per row r:  max, 2^(s - m) (the polynomial exp2 of the forward tile,
 *               on vectors of keys), row sums
 *   then:       acc = acc * alpha + P V, blocks of 4 rows x <= 4 vectors of
 *               D per key
 *
 * Depends only on D.  f32 today (q, k, v read as float).  The vector
 * helpers and exp2v (the forward tile's polynomial, never llvm.exp on
 * vectors) are codegen_impl.h's.
 */
#include "codegen_impl.h"

static LLVMValueRef ci32(cg *g, int v) {
  return LLVMConstInt(g->i32, (unsigned)v, 0);
}
static LLVMValueRef shuffle(cg *g, LLVMValueRef a, LLVMValueRef b,
                            const int *lanes) {
  LLVMValueRef m[16];
  for (int k = 0; k < 16; k++) m[k] = ci32(g, lanes[k]);
  return LLVMBuildShuffleVector(g->B, a, b, LLVMConstVector(m, 16), "");
}

/* Lane 0 of a tree of op(x, x shuffled) over the 16 lanes (max or sum). */
static LLVMValueRef hreduce(cg *g, LLVMValueRef x, int is_max) {
  for (int w = 8; w >= 1; w /= 2) {
    int lanes[16];
    for (int k = 0; k < 16; k++) lanes[k] = (k + w) & 15;
    LLVMValueRef y = shuffle(g, x, LLVMGetPoison(g->vf), lanes);
    x = is_max ? vmax(g, x, y) : LLVMBuildFAdd(g->B, x, y, "");
  }
  return LLVMBuildExtractElement(g->B, x, ci32(g, 0), "");
}

/* v[0..15] -> one vector whose lane t is the sum of v[t]'s lanes: pairs of
 * vectors are halved and added, four levels, each lane labelled with the
 * vector it sums; a last shuffle puts the labels in order. */
static LLVMValueRef fold16(cg *g, LLVMValueRef *v) {
  int lab[16][16], n = 16, gs = 16;
  for (int x = 0; x < 16; x++)
    for (int k = 0; k < 16; k++) lab[x][k] = x;
  while (n > 1) {
    int h = gs / 2, nl[16][16];
    for (int x = 0; x < n / 2; x++) {
      int lo[16], hi[16], o = 0;
      for (int src = 0; src < 2; src++)
        for (int g0 = 0; g0 < 16; g0 += gs)
          for (int t = 0; t < h; t++, o++) {
            lo[o] = src * 16 + g0 + t;
            hi[o] = src * 16 + g0 + h + t;
            nl[x][o] = lab[2 * x + src][g0 + t];
          }
      v[x] = LLVMBuildFAdd(g->B, shuffle(g, v[2 * x], v[2 * x + 1], lo),
                           shuffle(g, v[2 * x], v[2 * x + 1], hi), "");
    }
    n /= 2, gs = h;
    memcpy(lab, nl, sizeof nl);
  }
  int perm[16];
  for (int k = 0; k < 16; k++) perm[lab[0][k]] = k;
  return shuffle(g, v[0], LLVMGetPoison(g->vf), perm);
}

/* Keys per pass of scores16 over D: 16 with AVX-512 (or when the target's
 * features are not known), 4 on narrower targets, where 16 accumulators of
 * 16 lanes would spill at every step. */
static int key_group(const cg *g) {
  const char *f = g->tgt ? g->tgt->features : NULL;
  return f && !strstr(f, "+avx512f") ? 4 : 16;
}

typedef struct dt_io {
  LLVMValueRef q, k, sk, v, sv, ncols, rowm, acc, mp, lp, cv, st, abuf;
} dt_io;

/* Scores of row r for keys [jb, jb + 16) (keys past ncols repeat the last
 * one, masked below): c q_r . k_j, -inf where bit j of w is clear. */
static LLVMValueRef scores16(cg *g, const dt_io *io, LLVMValueRef r,
                             LLVMValueRef jb, LLVMValueRef w) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef a[16], krow[16];
  LLVMValueRef last = LLVMBuildSub(B, io->ncols, ci64(g, 1), "");
  for (int t = 0; t < 16; t++) {
    a[t] = alloca_t(g, g->vf, "sa");
    LLVMBuildStore(B, LLVMConstNull(g->vf), a[t]);
    LLVMValueRef key = smin(g, LLVMBuildAdd(B, jb, ci64(g, t), ""), last);
    krow[t] = gep(g, g->f32, io->k, LLVMBuildMul(B, key, io->sk, ""));
  }
  LLVMValueRef qrow = gep(g, g->f32, io->q, LLVMBuildMul(B, r, ci64(g, g->D), ""));
  /* kg keys a pass over D: their accumulators and q's vector stay in
   * registers (16 x 512 bits fit AVX-512's 32 registers, not AVX2's 16) */
  int kg = key_group(g);
  for (int t0 = 0; t0 < 16; t0 += kg) {
    loop ld;
    LLVMValueRef d = loop_begin(g, &ld, ci64(g, 0), ci64(g, g->D), 16);
    LLVMValueRef qv = vload(g, qrow, d);
    for (int t = t0; t < t0 + kg; t++)
      LLVMBuildStore(B, fma16(g, qv, vload(g, krow[t], d), vld(g, a[t])), a[t]);
    loop_end(g, &ld);
  }
  LLVMValueRef s[16];
  for (int t = 0; t < 16; t++) s[t] = vld(g, a[t]);
  LLVMValueRef sc = LLVMBuildFMul(B, fold16(g, s), io->cv, "");
  LLVMValueRef m16 = LLVMBuildTrunc(B, LLVMBuildLShr(B, w, jb, ""),
                                    LLVMInt16TypeInContext(g->C), "");
  return LLVMBuildSelect(B, LLVMBuildBitCast(B, m16, g->vi1, ""), sc,
                         vsplat(g, -1.0 / 0.0), "");
}

/* Row r's mask word, keys past ncols cleared. */
static LLVMValueRef row_word(cg *g, const dt_io *io, LLVMValueRef r) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef w = LLVMBuildLoad2(B, g->i64, gep(g, g->i64, io->rowm, r), "");
  LLVMValueRef nc64 = LLVMBuildICmp(B, LLVMIntSGE, io->ncols, ci64(g, 64), "");
  LLVMValueRef valid = LLVMBuildSub(
      B, LLVMBuildShl(B, ci64(g, 1), smin(g, io->ncols, ci64(g, 63)), ""),
      ci64(g, 1), "");
  return LLVMBuildAnd(B, w, LLVMBuildSelect(B, nc64, ci64(g, -1), valid, ""),
                      "");
}

/* Every row's scores into st[r][.]: blocks of 16 keys outside, rows
 * inside, so a block's k rows are read from memory once and stay in L1
 * for the other rows. */
static void scores_all(cg *g, const dt_io *io, LLVMValueRef nr) {
  loop lj, lr;
  LLVMValueRef jb = loop_begin(g, &lj, ci64(g, 0), io->ncols, 16);
  LLVMValueRef r = loop_begin(g, &lr, ci64(g, 0), nr, 1);
  LLVMValueRef srow =
      gep(g, g->f32, io->st, LLVMBuildMul(g->B, r, ci64(g, KR_BK), ""));
  vstore(g, scores16(g, io, r, jb, row_word(g, io, r)), srow, jb);
  loop_end(g, &lr);
  loop_end(g, &lj);
}

/* Row r, its scores in st[r][.]: the new max, alpha into abuf[r], p = 2^(s
 * - m) in place of s, l updated. */
static void row_softmax(cg *g, const dt_io *io, LLVMValueRef r) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef srow = gep(g, g->f32, io->st, LLVMBuildMul(B, r, ci64(g, KR_BK), ""));
  LLVMValueRef mloc = alloca_t(g, g->vf, "mloc");
  LLVMBuildStore(B, vsplat(g, -1.0 / 0.0), mloc);
  loop lj;
  LLVMValueRef jb = loop_begin(g, &lj, ci64(g, 0), io->ncols, 16);
  LLVMBuildStore(B, vmax(g, vload(g, srow, jb), vld(g, mloc)), mloc);
  loop_end(g, &lj);

  LLVMValueRef mrow = hreduce(g, vld(g, mloc), 1);
  LLVMValueRef mold = LLVMBuildLoad2(B, g->f32, gep(g, g->f32, io->mp, r), "");
  LLVMValueRef mnew = LLVMBuildSelect(
      B, LLVMBuildFCmp(B, LLVMRealOGT, mrow, mold, ""), mrow, mold, "");
  LLVMValueRef muse = LLVMBuildSelect(
      B, LLVMBuildFCmp(B, LLVMRealOEQ, mnew, cf(g, -1.0 / 0.0), ""), cf(g, 0),
      mnew, "");
  LLVMValueRef alpha = LLVMBuildExtractElement(
      B, exp2v(g, splat(g, LLVMBuildFSub(B, mold, muse, ""))), ci32(g, 0), "");
  LLVMBuildStore(B, mnew, gep(g, g->f32, io->mp, r));
  LLVMBuildStore(B, alpha, gep(g, g->f32, io->abuf, r));

  LLVMValueRef lsum = alloca_t(g, g->vf, "lsum"), mu = splat(g, muse);
  LLVMBuildStore(B, LLVMConstNull(g->vf), lsum);
  jb = loop_begin(g, &lj, ci64(g, 0), io->ncols, 16);
  LLVMValueRef p = exp2v(g, LLVMBuildFSub(B, vload(g, srow, jb), mu, ""));
  vstore(g, p, srow, jb);
  LLVMBuildStore(B, LLVMBuildFAdd(B, vld(g, lsum), p, ""), lsum);
  loop_end(g, &lj);
  LLVMValueRef lp = gep(g, g->f32, io->lp, r);
  LLVMValueRef l = LLVMBuildLoad2(B, g->f32, lp, "");
  LLVMBuildStore(B,
                 LLVMBuildFAdd(B, LLVMBuildFMul(B, l, alpha, ""),
                               hreduce(g, vld(g, lsum), 0), ""),
                 lp);
}

/* acc rows [r, r + R), dim vectors [d, d + cw): acc = acc * alpha + P V. */
static void pv_block(cg *g, const dt_io *io, LLVMValueRef r, LLVMValueRef d,
                     int R, int cw) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef a[16];
  LLVMValueRef vcol = gep(g, g->f32, io->v, d), acol = gep(g, g->f32, io->acc, d);
  for (int rr = 0; rr < R; rr++) {
    LLVMValueRef rw = LLVMBuildAdd(B, r, ci64(g, rr), "");
    LLVMValueRef al =
        splat(g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, io->abuf, rw), ""));
    for (int cc = 0; cc < cw; cc++) {
      a[rr * cw + cc] = alloca_t(g, g->vf, "o");
      LLVMValueRef idx = LLVMBuildAdd(
          B, LLVMBuildMul(B, rw, ci64(g, g->D), ""), ci64(g, cc * 16), "");
      LLVMBuildStore(B, LLVMBuildFMul(B, vload(g, acol, idx), al, ""),
                     a[rr * cw + cc]);
    }
  }
  loop lj;
  LLVMValueRef j = loop_begin(g, &lj, ci64(g, 0), io->ncols, 1);
  LLVMValueRef vrow = gep(g, g->f32, vcol, LLVMBuildMul(B, j, io->sv, ""));
  LLVMValueRef vv[4];
  for (int cc = 0; cc < cw; cc++) vv[cc] = vload(g, vrow, ci64(g, cc * 16));
  for (int rr = 0; rr < R; rr++) {
    LLVMValueRef pi = LLVMBuildAdd(
        B, LLVMBuildMul(B, LLVMBuildAdd(B, r, ci64(g, rr), ""),
                        ci64(g, KR_BK), ""),
        j, "");
    LLVMValueRef pb =
        splat(g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, io->st, pi), ""));
    for (int cc = 0; cc < cw; cc++) {
      LLVMValueRef x = a[rr * cw + cc];
      LLVMBuildStore(B, fma16(g, pb, vv[cc], vld(g, x)), x);
    }
  }
  loop_end(g, &lj);
  for (int rr = 0; rr < R; rr++) {
    LLVMValueRef rw = LLVMBuildAdd(B, r, ci64(g, rr), "");
    for (int cc = 0; cc < cw; cc++) {
      LLVMValueRef idx = LLVMBuildAdd(
          B, LLVMBuildMul(B, rw, ci64(g, g->D), ""), ci64(g, cc * 16), "");
      vstore(g, vld(g, a[rr * cw + cc]), acol, idx);
    }
  }
}

/* P V over every row: dim chunks of cw <= 4 vectors, rows by 4 then one by
 * one. */
static void pv_all(cg *g, const dt_io *io, LLVMValueRef nr) {
  LLVMBuilderRef B = g->B;
  int nvd = (int)(g->D / 16);
  for (int d0 = 0; d0 < nvd;) {
    int cw = nvd - d0 >= 4 ? 4 : nvd - d0;
    LLVMValueRef d = ci64(g, d0 * 16);
    LLVMValueRef n4 = LLVMBuildAnd(B, nr, ci64(g, ~(int64_t)3), "");
    loop lr;
    LLVMValueRef r = loop_begin(g, &lr, ci64(g, 0), n4, 4);
    pv_block(g, io, r, d, 4, cw);
    loop_end(g, &lr);
    r = loop_begin(g, &lr, n4, nr, 1);
    pv_block(g, io, r, d, 1, cw);
    loop_end(g, &lr);
    d0 += cw;
  }
}

/* The all-ones row words read when rowm is NULL (KR_DR of them). */
static LLVMValueRef ones_words(cg *g) {
  LLVMValueRef ones = LLVMGetNamedGlobal(g->M, "spat_dones");
  if (ones) return ones;
  LLVMValueRef w[KR_DR];
  for (int x = 0; x < KR_DR; x++) w[x] = ci64(g, -1);
  ones = LLVMAddGlobal(g->M, LLVMArrayType(g->i64, KR_DR), "spat_dones");
  LLVMSetInitializer(ones, LLVMConstArray2(g->i64, w, KR_DR));
  LLVMSetGlobalConstant(ones, 1);
  LLVMSetLinkage(ones, LLVMPrivateLinkage);
  LLVMSetAlignment(ones, 64);
  return ones;
}

void cg_gen_decode_tile(cg *g) {
  LLVMBuilderRef B = g->B;
  /* ORDER kr_dtile_fn */
  LLVMTypeRef ps[13] = {g->ptr, g->i64, g->ptr, g->i64, g->ptr,
                        g->i64, g->i64, g->ptr, g->ptr, g->ptr,
                        g->ptr, g->f32, g->ptr};
  begin_fn(g, cg_kinds[CG_KIND_DECODE].symbol, g->voidt, ps, 13);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  int ptr_args[] = {0, 2, 4, 7, 8, 9, 10, 12};
  for (size_t x = 0; x < sizeof ptr_args / sizeof ptr_args[0]; x++)
    LLVMAddAttributeAtIndex(g->fn, (unsigned)ptr_args[x] + 1,
                            LLVMCreateEnumAttribute(g->C, noalias, 0));
  LLVMValueRef P[13];
  for (int x = 0; x < 13; x++) P[x] = LLVMGetParam(g->fn, (unsigned)x);
  LLVMValueRef nr = P[1], rowm = P[7];
  dt_io io = {P[0], P[2], P[3], P[4], P[5], P[6],
              LLVMBuildSelect(B, LLVMBuildIsNull(B, rowm, ""), ones_words(g),
                              rowm, ""),
              P[8], P[9], P[10], splat(g, P[11]), P[12],
              alloca_t(g, LLVMArrayType(g->f32, KR_DR), "alpha")};
  scores_all(g, &io, nr);
  loop lr;
  LLVMValueRef r = loop_begin(g, &lr, ci64(g, 0), nr, 1);
  row_softmax(g, &io, r);
  loop_end(g, &lr);
  pv_all(g, &io, nr);
  LLVMBuildRetVoid(B);
  end_fn(g);
}
