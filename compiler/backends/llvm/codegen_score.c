/* codegen_score.c: `with score E` as vector code (codegen_score.h): E,
 * dE/ds (forward mode) and the float inputs' adjoints (reverse mode, as
 * the interpreter's eval_fd and grad_f in compiler/backends/interp/interp.c:
 * an adjoint of 0 stops, so 0 * inf never makes a NaN), and the support
 * test cg_score_supported.
 */
#include "codegen_score.h"

static LLVMTypeRef t_vi64(cg *g) { return LLVMVectorType(g->i64, 16); }
static LLVMTypeRef t_f64(cg *g) { return LLVMDoubleTypeInContext(g->C); }

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
static LLVMValueRef splat_i64(cg *g, LLVMValueRef x) {
  LLVMValueRef v = LLVMBuildInsertElement(g->B, LLVMGetPoison(t_vi64(g)), x,
                                          LLVMConstInt(g->i32, 0, 0), "");
  return LLVMBuildShuffleVector(g->B, v, LLVMGetPoison(t_vi64(g)),
                                LLVMConstNull(g->vi32), "");
}
/* Lane masks as integers (one bit a lane): LLVM 19's x86 instruction
 * selection for AVX-512 (znver4, x86-64-v4) did not finish, minutes in the
 * DAG combiner, on and/not/reduce.or of <16 x i1> masks mixing a tile's mask
 * words with int64-lane compares; the same logic on the integer bits
 * compiles at once and is what the k registers do anyway. */
static LLVMValueRef mask_bits(cg *g, LLVMValueRef m) {
  unsigned n = LLVMGetVectorSize(LLVMTypeOf(m));
  return LLVMBuildBitCast(g->B, m, LLVMIntTypeInContext(LLVMGetTypeContext(LLVMTypeOf(m)), n), "");
}
static LLVMValueRef any_v(cg *g, LLVMValueRef m) {
  LLVMValueRef b = mask_bits(g, m);
  return LLVMBuildICmp(g->B, LLVMIntNE, b, LLVMConstNull(LLVMTypeOf(b)), "");
}
/* Is some lane of live not ok? */
static LLVMValueRef any_bad(cg *g, LLVMValueRef live, LLVMValueRef ok) {
  LLVMValueRef b = LLVMBuildAnd(g->B, mask_bits(g, live),
                                LLVMBuildNot(g->B, mask_bits(g, ok), ""), "");
  return LLVMBuildICmp(g->B, LLVMIntNE, b, LLVMConstNull(LLVMTypeOf(b)), "");
}

/* --- what the score tiles compile ---------------------------------------- */

static bool pos_const(const ir_node *n) { return n->op == IR_CONST && n->value > 0; }

static bool dim_ok(const ir_node *n);

/* Integer parts of E: values in float (exact below 2^24), bit operations,
 * shifts and division by a variable in int64 lanes; int input elements are
 * read by gathers. */
static bool int_ok(const ir_program *p, const ir_node *n) {
  switch (n->op) {
  case IR_INPUT: case IR_INPUTN:
    for (int k = 0; k < p->inputs[n->value].n_dims; k++)
      if (!dim_ok(p->inputs[n->value].dims[k])) return false;
    break;
  case IR_CONST: case IR_VAR_I: case IR_VAR_J: case IR_VAR_H: case IR_SIZE_H:
  case IR_SIZE_LQ: case IR_SIZE_LK: case IR_VAR_B: case IR_SIZE_B:
  case IR_SIZE_HKV: case IR_SIZE_D: case IR_RUNTIME: case IR_NEG: case IR_NOT:
  case IR_ABS: case IR_SEL: case IR_ADD: case IR_SUB: case IR_MUL: case IR_MIN:
  case IR_MAX: case IR_LT: case IR_LE: case IR_GT: case IR_GE: case IR_EQ:
  case IR_NE: case IR_LAND: case IR_LOR: case IR_DIV: case IR_MOD:
  case IR_IAND: case IR_IOR: case IR_IXOR: case IR_SHL: case IR_SHR:
    break;
  default: return false;
  }
  for (int k = 0; k < n->n_kids; k++)
    if (!int_ok(p, n->kids[k])) return false;
  return true;
}

/* A dimension of an input: constants, the sizes and + - * of them. */
static bool dim_ok(const ir_node *n) {
  switch (n->op) {
  case IR_CONST: case IR_SIZE_H: case IR_SIZE_LQ: case IR_SIZE_LK:
  case IR_SIZE_B: case IR_SIZE_HKV: case IR_SIZE_D: return true;
  case IR_ADD: case IR_SUB: case IR_MUL: return dim_ok(n->kids[0]) && dim_ok(n->kids[1]);
  default: return false;
  }
}

static bool score_ok(const ir_program *p, const ir_node *n) {
  switch (n->op) {
  case IR_FSCORE: case IR_FCONST: return true;
  case IR_FCVT: return int_ok(p, n->kids[0]);
  case IR_FSEL:
    return int_ok(p, n->kids[0]) && score_ok(p, n->kids[1]) && score_ok(p, n->kids[2]);
  case IR_FINPUT:
    for (int k = 0; k < n->n_kids; k++)
      if (!int_ok(p, n->kids[k]) || !dim_ok(p->inputs[n->value].dims[k])) return false;
    return true;
  default: break;
  }
  if (ir_op_kind[n->op] != IR_FLT) return false;
  for (int k = 0; k < n->n_kids; k++)
    if (!score_ok(p, n->kids[k])) return false;
  return true;
}

bool cg_score_supported(const ir_program *p) {
  if (!p->score || !score_ok(p, p->score)) return false;
  for (int x = 0; x < p->n_inputs; x++) /* spat_inlen sizes every float input */
    for (int k = 0; p->inputs[x].is_float && k < p->inputs[x].n_dims; k++)
      if (!dim_ok(p->inputs[x].dims[k])) return false;
  return true;
}

/* --- integer parts, in float --------------------------------------------- */

typedef struct at {
  int rv;
  LLVMValueRef jf, s, live; /* live NULL: the error flag is not updated */
} at;

static LLVMValueRef iinput_v(cg *g, cg_sc *sc, const ir_node *n, const at *pt);

/* Flags the tile (sc->bad) when a live lane of pt is not ok. */
static void flag_bad(cg *g, cg_sc *sc, const at *pt, LLVMValueRef ok) {
  if (!pt->live) return;
  LLVMBuilderRef B = g->B;
  LLVMValueRef bad = LLVMBuildZExt(B, any_bad(g, pt->live, ok), g->i32, "");
  LLVMBuildStore(B, LLVMBuildOr(B, LLVMBuildLoad2(B, g->i32, sc->bad, ""), bad, ""), sc->bad);
}

/* op on a, b (integer values in float lanes) in int64 lanes, as arith.h:
 * & | ^, << and >> (a count outside [0, 63] or a left shift that
 * overflows fails), floor / and % (by zero fails); failing live lanes flag
 * the tile, their value is anything. */
static LLVMValueRef int_lanes(cg *g, ir_op op, LLVMValueRef a, LLVMValueRef b,
                              const at *pt, cg_sc *sc) {
  LLVMBuilderRef B = g->B;
  LLVMTypeRef t = t_vi64(g);
  LLVMValueRef x = LLVMBuildFPToSI(B, a, t, ""), y = LLVMBuildFPToSI(B, b, t, "");
  LLVMValueRef zero = LLVMConstNull(t), r, ok = NULL;
  switch (op) {
  case IR_IAND: r = LLVMBuildAnd(B, x, y, ""); break;
  case IR_IOR: r = LLVMBuildOr(B, x, y, ""); break;
  case IR_IXOR: r = LLVMBuildXor(B, x, y, ""); break;
  case IR_SHL: case IR_SHR: {
    ok = LLVMBuildICmp(B, LLVMIntULT, y, splat_i64(g, ci64(g, 64)), "");
    LLVMValueRef c = LLVMBuildSelect(B, ok, y, zero, "");
    r = op == IR_SHL ? LLVMBuildShl(B, x, c, "") : LLVMBuildAShr(B, x, c, "");
    if (op == IR_SHL)
      ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildAShr(B, r, c, ""), x, ""), "");
    break;
  }
  default: { /* DIV, MOD: floor, the remainder with the divisor's sign */
    ok = LLVMBuildICmp(B, LLVMIntNE, y, zero, "");
    LLVMValueRef ys = LLVMBuildSelect(B, ok, y, splat_i64(g, ci64(g, 1)), "");
    LLVMValueRef q = LLVMBuildSDiv(B, x, ys, ""), m = LLVMBuildSRem(B, x, ys, "");
    LLVMValueRef adj = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntNE, m, zero, ""),
                                    LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildXor(B, m, ys, ""), zero, ""), "");
    r = op == IR_DIV ? LLVMBuildSub(B, q, LLVMBuildZExt(B, adj, t, ""), "")
                     : LLVMBuildAdd(B, m, LLVMBuildSelect(B, adj, ys, zero, ""), "");
    break;
  }
  }
  if (ok) flag_bad(g, sc, pt, ok);
  return LLVMBuildSIToFP(B, r, g->vf, "");
}

/* pt with its live lanes narrowed to those where c holds (or not): what an
 * arm of ?: or the right of && || reads is checked only where evaluated. */
static at narrowed(cg *g, const at *pt, LLVMValueRef c, bool holds) {
  at x = *pt;
  if (pt->live)
    x.live = LLVMBuildAnd(g->B, pt->live, holds ? c : LLVMBuildNot(g->B, c, ""), "");
  return x;
}

static LLVMValueRef int_v(cg *g, cg_sc *sc, const ir_node *n, const at *pt) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef a, b;
  switch (n->op) {
  case IR_INPUT: case IR_INPUTN: return iinput_v(g, sc, n, pt);
  case IR_CONST: return vsplat(g, (double)n->value);
  case IR_VAR_I: return sc->ipos[pt->rv];
  case IR_VAR_J: return pt->jf;
  case IR_VAR_H: return i2f(g, env_i64(g, sc->env, KABI_ENV_H));
  case IR_SIZE_H: return i2f(g, env_i64(g, sc->env, KABI_ENV_NHEADS));
  case IR_SIZE_LQ: return i2f(g, env_i64(g, sc->env, KABI_ENV_LQ));
  case IR_SIZE_LK: return i2f(g, env_i64(g, sc->env, KABI_ENV_LK));
  case IR_VAR_B: return i2f(g, env_i64(g, sc->env, KABI_ENV_B));
  case IR_SIZE_B: return i2f(g, env_i64(g, sc->env, KABI_ENV_NBATCH));
  case IR_SIZE_HKV: return i2f(g, env_i64(g, sc->env, KABI_ENV_HKV));
  case IR_SIZE_D: return i2f(g, env_i64(g, sc->env, KABI_ENV_D));
  case IR_RUNTIME: {
    LLVMValueRef rt = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, sc->env, ci64(g, KABI_ENV_RUNTIME)), "");
    return i2f(g, LLVMBuildLoad2(B, g->i64, gep(g, g->i64, rt, ci64(g, n->value)), ""));
  }
  case IR_NEG: return LLVMBuildFNeg(B, int_v(g, sc, n->kids[0], pt), "");
  case IR_NOT: return b2f(g, LLVMBuildNot(B, nz(g, int_v(g, sc, n->kids[0], pt)), ""));
  case IR_ABS: {
    LLVMValueRef x = int_v(g, sc, n->kids[0], pt);
    return call_intr(g, "llvm.fabs", &g->vf, 1, &x, 1);
  }
  case IR_SEL: {
    LLVMValueRef c = nz(g, int_v(g, sc, n->kids[0], pt));
    at pa = narrowed(g, pt, c, true), pb = narrowed(g, pt, c, false);
    return fsel_v(g, c, int_v(g, sc, n->kids[1], &pa), int_v(g, sc, n->kids[2], &pb));
  }
  case IR_LAND: case IR_LOR: { /* short-circuit, as the interpreter */
    LLVMValueRef c = nz(g, int_v(g, sc, n->kids[0], pt));
    at pr = narrowed(g, pt, c, n->op == IR_LAND);
    LLVMValueRef r = nz(g, int_v(g, sc, n->kids[1], &pr));
    return b2f(g, n->op == IR_LAND ? LLVMBuildAnd(B, c, r, "") : LLVMBuildOr(B, c, r, ""));
  }
  default: break;
  }
  a = int_v(g, sc, n->kids[0], pt);
  b = int_v(g, sc, n->kids[1], pt);
  switch (n->op) {
  case IR_ADD: return LLVMBuildFAdd(B, a, b, "");
  case IR_SUB: return LLVMBuildFSub(B, a, b, "");
  case IR_MUL: return LLVMBuildFMul(B, a, b, "");
  case IR_IAND: case IR_IOR: case IR_IXOR: case IR_SHL: case IR_SHR:
    return int_lanes(g, n->op, a, b, pt, sc);
  case IR_DIV: case IR_MOD: { /* b > 0: floor(a / b) is exact for |a| < 2^24 */
    if (!pos_const(n->kids[1])) return int_lanes(g, n->op, a, b, pt, sc);
    LLVMValueRef q = LLVMBuildFDiv(B, a, b, "");
    q = call_intr(g, "llvm.floor", &g->vf, 1, &q, 1);
    return n->op == IR_DIV ? q : LLVMBuildFSub(B, a, LLVMBuildFMul(B, q, b, ""), "");
  }
  case IR_MIN: return fsel_v(g, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""), a, b);
  case IR_MAX: return fsel_v(g, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""), a, b);
  case IR_LT: return b2f(g, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""));
  case IR_LE: return b2f(g, LLVMBuildFCmp(B, LLVMRealOLE, a, b, ""));
  case IR_GT: return b2f(g, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""));
  case IR_GE: return b2f(g, LLVMBuildFCmp(B, LLVMRealOGE, a, b, ""));
  case IR_EQ: return b2f(g, LLVMBuildFCmp(B, LLVMRealOEQ, a, b, ""));
  default: return b2f(g, LLVMBuildFCmp(B, LLVMRealUNE, a, b, "")); /* NE */
  }
}

/* --- float inputs ---------------------------------------------------------- */

/* A dimension's value for the run (token level), i64. */
static LLVMValueRef dim_v(cg *g, LLVMValueRef env, const ir_node *n) {
  LLVMBuilderRef B = g->B;
  switch (n->op) {
  case IR_SIZE_H: return env_i64(g, env, KABI_ENV_NHEADS);
  case IR_SIZE_LQ: return env_i64(g, env, KABI_ENV_LQ);
  case IR_SIZE_LK: return env_i64(g, env, KABI_ENV_LK);
  case IR_SIZE_B: return env_i64(g, env, KABI_ENV_NBATCH);
  case IR_SIZE_HKV: return env_i64(g, env, KABI_ENV_HKV);
  case IR_SIZE_D: return env_i64(g, env, KABI_ENV_D);
  case IR_ADD: return LLVMBuildAdd(B, dim_v(g, env, n->kids[0]), dim_v(g, env, n->kids[1]), "");
  case IR_SUB: return LLVMBuildSub(B, dim_v(g, env, n->kids[0]), dim_v(g, env, n->kids[1]), "");
  case IR_MUL: return LLVMBuildMul(B, dim_v(g, env, n->kids[0]), dim_v(g, env, n->kids[1]), "");
  default: return ci64(g, n->value);
  }
}

static bool reads_ij(const ir_node *n) {
  if (n->op == IR_VAR_I || n->op == IR_VAR_J) return true;
  for (int k = 0; k < n->n_kids; k++)
    if (reads_ij(n->kids[k])) return true;
  return false;
}
static bool uniform(const ir_node *n) { /* FINPUT: one element per tile */
  for (int k = 0; k < n->n_kids; k++)
    if (reads_ij(n->kids[k])) return false;
  return true;
}
/* In range by the declaration alone: h of an H dimension, or a constant. */
static bool in_range(const ir_program *p, const ir_node *n) {
  for (int k = 0; k < n->n_kids; k++) {
    const ir_node *x = n->kids[k], *d = p->inputs[n->value].dims[k];
    bool h = x->op == IR_VAR_H && d->op == IR_SIZE_H;
    bool c = x->op == IR_CONST && d->op == IR_CONST && x->value >= 0 && x->value < d->value;
    if (!h && !c) return false;
  }
  return true;
}

/* The flat index of FINPUT n at pt (row-major), *ok its lanes in range. */
static LLVMValueRef flat_v(cg *g, cg_sc *sc, const ir_node *n, const at *pt,
                           LLVMValueRef *ok) {
  LLVMBuilderRef B = g->B;
  const ir_input *in = &sc->p->inputs[n->value];
  LLVMValueRef flat = LLVMConstNull(t_vi64(g));
  *ok = LLVMConstAllOnes(g->vi1);
  for (int k = 0; k < n->n_kids; k++) {
    LLVMValueRef x = LLVMBuildFPToSI(B, int_v(g, sc, n->kids[k], pt), t_vi64(g), "");
    LLVMValueRef d = splat_i64(g, dim_v(g, sc->env, in->dims[k]));
    *ok = LLVMBuildAnd(B, *ok, LLVMBuildICmp(B, LLVMIntULT, x, d, ""), "");
    flat = LLVMBuildAdd(B, LLVMBuildMul(B, flat, d, ""), x, "");
  }
  return flat;
}

static LLVMValueRef input_ptr(cg *g, LLVMValueRef tab, int x) {
  return LLVMBuildLoad2(g->B, g->ptr, gep(g, g->ptr, tab, ci64(g, x)), "");
}

/* A uniform read at the function's start: its value and in-range bit. */
static void hoist_read(cg *g, cg_sc *sc, const ir_node *n) {
  LLVMBuilderRef B = g->B;
  at pt = {0, vsplat(g, 0.0), vsplat(g, 0.0), NULL};
  LLVMValueRef ok, flat = flat_v(g, sc, n, &pt, &ok), z = LLVMConstInt(g->i32, 0, 0);
  LLVMValueRef okl = LLVMBuildExtractElement(B, ok, z, "");
  LLVMValueRef i0 = LLVMBuildSelect(B, okl, LLVMBuildExtractElement(B, flat, z, ""), ci64(g, 0), "");
  LLVMValueRef ins = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, sc->env, ci64(g, KABI_ENV_INPUTS)), "");
  LLVMValueRef arr = input_ptr(g, ins, (int)n->value);
  /* out of range (an empty input too): read a zero of our own instead */
  LLVMValueRef zero = alloca_t(g, g->f32, "zero");
  LLVMBuildStore(B, cf(g, 0.0), zero);
  LLVMValueRef at_ = LLVMBuildSelect(B, okl, gep(g, g->f32, arr, i0), zero, "");
  sc->hnode[sc->n_h] = n;
  sc->hok[sc->n_h] = okl;
  sc->hval[sc->n_h++] = splat(g, LLVMBuildLoad2(B, g->f32, at_, ""));
}

static void hoist_reads(cg *g, cg_sc *sc, const ir_node *n) {
  if (n->op == IR_FINPUT && uniform(n) && sc->n_h < CG_SC_UNIFORM_MAX) {
    for (int k = 0; k < sc->n_h; k++)
      if (sc->hnode[k] == n) return;
    hoist_read(g, sc, n);
    return;
  }
  for (int k = 0; k < n->n_kids; k++)
    if (ir_op_kind[n->kids[k]->op] == IR_FLT) hoist_reads(g, sc, n->kids[k]);
}

static LLVMValueRef finput_v(cg *g, cg_sc *sc, const ir_node *n, const at *pt) {
  LLVMBuilderRef B = g->B;
  bool safe = in_range(sc->p, n);
  for (int k = 0; k < sc->n_h; k++) {
    if (sc->hnode[k] != n) continue;
    if (pt->live && !safe) { /* bad: the index is out of range and a lane live */
      LLVMValueRef bad = LLVMBuildAnd(B, any_v(g, pt->live), LLVMBuildNot(B, sc->hok[k], ""), "");
      LLVMBuildStore(B, LLVMBuildOr(B, LLVMBuildLoad2(B, g->i32, sc->bad, ""),
                                    LLVMBuildZExt(B, bad, g->i32, ""), ""), sc->bad);
    }
    return sc->hval[k];
  }
  LLVMValueRef ok;
  LLVMValueRef flat = flat_v(g, sc, n, pt, &ok);
  if (pt->live && !safe) {
    LLVMValueRef bad = LLVMBuildZExt(B, any_bad(g, pt->live, ok), g->i32, "");
    LLVMBuildStore(B, LLVMBuildOr(B, LLVMBuildLoad2(B, g->i32, sc->bad, ""), bad, ""), sc->bad);
  }
  LLVMValueRef ins = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, sc->env, ci64(g, KABI_ENV_INPUTS)), "");
  LLVMValueRef arr = input_ptr(g, ins, (int)n->value);
  if (uniform(n) && safe) /* one element, in range by the declaration */
    return splat(g, LLVMBuildLoad2(B, g->f32, gep(g, g->f32, arr,
                                                 LLVMBuildExtractElement(B, flat, LLVMConstInt(g->i32, 0, 0), "")), ""));
  LLVMValueRef ptrs = LLVMBuildGEP2(B, g->f32, arr, &flat, 1, "");
  LLVMTypeRef ovl[2] = {g->vf, LLVMVectorType(g->ptr, 16)};
  LLVMValueRef args[4] = {ptrs, LLVMConstInt(g->i32, 4, 0), ok, vsplat(g, 0.0)};
  return call_intr(g, "llvm.masked.gather", ovl, 2, args, 4);
}

/* An int input's element (INPUT: int[] of Lk entries; INPUTN: any shape) at
 * pt, gathered as int32 and converted (exact below 2^24); a live lane out
 * of range flags the tile, as finput_v. */
static LLVMValueRef iinput_v(cg *g, cg_sc *sc, const ir_node *n, const at *pt) {
  LLVMBuilderRef B = g->B;
  const ir_input *in = &sc->p->inputs[n->value];
  LLVMValueRef flat = LLVMConstNull(t_vi64(g)), ok = LLVMConstAllOnes(g->vi1);
  for (int k = 0; k < n->n_kids; k++) {
    LLVMValueRef x = LLVMBuildFPToSI(B, int_v(g, sc, n->kids[k], pt), t_vi64(g), "");
    LLVMValueRef d = splat_i64(g, in->n_dims ? dim_v(g, sc->env, in->dims[k])
                                             : env_i64(g, sc->env, KABI_ENV_LK));
    ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntULT, x, d, ""), "");
    flat = LLVMBuildAdd(B, LLVMBuildMul(B, flat, d, ""), x, "");
  }
  if (pt->live) {
    LLVMValueRef bad = LLVMBuildZExt(B, any_bad(g, pt->live, ok), g->i32, "");
    LLVMBuildStore(B, LLVMBuildOr(B, LLVMBuildLoad2(B, g->i32, sc->bad, ""), bad, ""), sc->bad);
  }
  LLVMValueRef ins = LLVMBuildLoad2(B, g->ptr, gep(g, g->i64, sc->env, ci64(g, KABI_ENV_INPUTS)), "");
  LLVMValueRef arr = input_ptr(g, ins, (int)n->value);
  LLVMValueRef ptrs = LLVMBuildGEP2(B, g->i32, arr, &flat, 1, "");
  LLVMTypeRef ovl[2] = {g->vi32, LLVMVectorType(g->ptr, 16)};
  LLVMValueRef args[4] = {ptrs, LLVMConstInt(g->i32, 4, 0), ok, LLVMConstNull(g->vi32)};
  return LLVMBuildSIToFP(B, call_intr(g, "llvm.masked.gather", ovl, 2, args, 4), g->vf, "");
}

/* --- E and dE/ds ------------------------------------------------------------ */

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

static LLVMValueRef intr1(cg *g, const char *name, LLVMValueRef x) {
  return call_intr(g, name, &g->vf, 1, &x, 1);
}

/* x < y || isnan(y) (FMIN picks x), or x > y || isnan(y) (FMAX) */
static LLVMValueRef pick_first(cg *g, ir_op op, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef B = g->B;
  return LLVMBuildOr(B, LLVMBuildFCmp(B, op == IR_FMIN ? LLVMRealOLT : LLVMRealOGT, x, y, ""),
                     LLVMBuildFCmp(B, LLVMRealUNO, y, y, ""), "");
}

/* E's node n at pt; with der, its derivative by s into *der. */
static LLVMValueRef fval(cg *g, cg_sc *sc, const ir_node *n, const at *pt, LLVMValueRef *der) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef zero = vsplat(g, 0.0);
  switch (n->op) {
  case IR_FSCORE: if (der) *der = vsplat(g, 1.0); return pt->s;
  case IR_FCONST: if (der) *der = zero; return vsplat(g, n->fvalue);
  case IR_FCVT: if (der) *der = zero; return int_v(g, sc, n->kids[0], pt);
  case IR_FINPUT: if (der) *der = zero; return finput_v(g, sc, n, pt);
  case IR_FSEL: {
    LLVMValueRef c = nz(g, int_v(g, sc, n->kids[0], pt)), da = NULL, db = NULL;
    at pa = *pt, pb = *pt;
    if (pt->live) {
      pa.live = LLVMBuildAnd(B, pt->live, c, "");
      pb.live = LLVMBuildAnd(B, pt->live, LLVMBuildNot(B, c, ""), "");
    }
    LLVMValueRef a = fval(g, sc, n->kids[1], &pa, der ? &da : NULL);
    LLVMValueRef b = fval(g, sc, n->kids[2], &pb, der ? &db : NULL);
    if (der) *der = fsel_v(g, c, da, db);
    return fsel_v(g, c, a, b);
  }
  default: break;
  }
  LLVMValueRef dx = NULL, dy = NULL, y = NULL, v;
  LLVMValueRef x = fval(g, sc, n->kids[0], pt, der ? &dx : NULL);
  if (n->n_kids == 2) y = fval(g, sc, n->kids[1], pt, der ? &dy : NULL);
  switch (n->op) {
  case IR_FNEG:
    v = LLVMBuildFNeg(B, x, "");
    if (der) *der = LLVMBuildFNeg(B, dx, "");
    return v;
  case IR_FABS:
    if (der) *der = fsel_v(g, LLVMBuildFCmp(B, LLVMRealOLT, x, zero, ""), LLVMBuildFNeg(B, dx, ""), dx);
    return intr1(g, "llvm.fabs", x);
  case IR_FEXP:
    v = intr1(g, "llvm.exp", x);
    if (der) *der = LLVMBuildFMul(B, v, dx, "");
    return v;
  case IR_FLOG:
    if (der) *der = LLVMBuildFDiv(B, dx, x, "");
    return intr1(g, "llvm.log", x);
  case IR_FSQRT:
    v = intr1(g, "llvm.sqrt", x);
    if (der) *der = LLVMBuildFDiv(B, dx, LLVMBuildFMul(B, vsplat(g, 2.0), v, ""), "");
    return v;
  case IR_FTANH:
    v = tanh_v(g, x);
    if (der) *der = LLVMBuildFMul(B, LLVMBuildFSub(B, vsplat(g, 1.0), LLVMBuildFMul(B, v, v, ""), ""), dx, "");
    return v;
  case IR_FADD:
    if (der) *der = LLVMBuildFAdd(B, dx, dy, "");
    return LLVMBuildFAdd(B, x, y, "");
  case IR_FSUB:
    if (der) *der = LLVMBuildFSub(B, dx, dy, "");
    return LLVMBuildFSub(B, x, y, "");
  case IR_FMUL:
    if (der) *der = LLVMBuildFAdd(B, LLVMBuildFMul(B, dx, y, ""), LLVMBuildFMul(B, x, dy, ""), "");
    return LLVMBuildFMul(B, x, y, "");
  case IR_FDIV:
    if (der)
      *der = LLVMBuildFDiv(B, LLVMBuildFSub(B, LLVMBuildFMul(B, dx, y, ""), LLVMBuildFMul(B, x, dy, ""), ""),
                           LLVMBuildFMul(B, y, y, ""), "");
    return LLVMBuildFDiv(B, x, y, "");
  default: { /* FMIN, FMAX */
    LLVMValueRef c = pick_first(g, n->op, x, y);
    if (der) *der = fsel_v(g, c, dx, dy);
    return fsel_v(g, c, x, y);
  }
  }
}

void cg_sc_init(cg *g, cg_sc *sc, LLVMValueRef env, LLVMValueRef i0) {
  memset(sc, 0, sizeof *sc);
  sc->p = g->p;
  sc->env = env;
  LLVMValueRef i0f = i2f(g, i0);
  for (int rv = 0; rv < NV; rv++) {
    LLVMValueRef lane[16];
    for (int x = 0; x < 16; x++) lane[x] = cf(g, rv * 16 + x);
    sc->ipos[rv] = LLVMBuildFAdd(g->B, i0f, LLVMConstVector(lane, 16), "");
  }
  sc->bad = alloca_t(g, g->i32, "bad");
  LLVMBuildStore(g->B, LLVMConstInt(g->i32, 0, 0), sc->bad);
  hoist_reads(g, sc, sc->p->score);
}

LLVMValueRef cg_sc_value(cg *g, cg_sc *sc, int rv, LLVMValueRef jf,
                         LLVMValueRef s, LLVMValueRef live, LLVMValueRef *dE) {
  at pt = {rv, jf, s, live};
  return fval(g, sc, sc->p->score, &pt, dE);
}

LLVMValueRef cg_sc_status(cg *g, cg_sc *sc) {
  return LLVMBuildLoad2(g->B, g->i32, sc->bad, "");
}

/* --- adjoints ----------------------------------------------------------------- */

/* adj * d, 0 where adj is 0 (the interpreter stops at a zero adjoint) */
static LLVMValueRef prop(cg *g, LLVMValueRef adj, LLVMValueRef d) {
  LLVMValueRef z = vsplat(g, 0.0);
  return fsel_v(g, LLVMBuildFCmp(g->B, LLVMRealOEQ, adj, z, ""), z,
                LLVMBuildFMul(g->B, adj, d, ""));
}

/* The vector accumulator of uniform read n (zeroed at the function's
 * entry), or NULL when the table is full (then n scatters). */
static LLVMValueRef uacc_of(cg *g, cg_sc *sc, const ir_node *n) {
  for (int k = 0; k < sc->n_u; k++)
    if (sc->unode[k] == n) return sc->uacc[k];
  if (sc->n_u == CG_SC_UNIFORM_MAX) return NULL;
  LLVMValueRef a = alloca_t(g, g->vf, "uacc");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(g->B);
  LLVMPositionBuilderAtEnd(g->B, g->allocas);
  LLVMBuildStore(g->B, vsplat(g, 0.0), a);
  LLVMPositionBuilderAtEnd(g->B, cur);
  sc->unode[sc->n_u] = n;
  sc->uacc[sc->n_u++] = a;
  return a;
}

/* if (gin[x] != NULL) { body }: returns gin[x]; *done the join block */
static LLVMValueRef if_asked(cg *g, LLVMValueRef gin, int x, LLVMBasicBlockRef *done) {
  LLVMValueRef arr = input_ptr(g, gin, x);
  LLVMBasicBlockRef yes = newbb(g, "gin");
  *done = newbb(g, "gin_done");
  LLVMBuildCondBr(g->B, LLVMBuildIsNull(g->B, arr, ""), *done, yes);
  LLVMPositionBuilderAtEnd(g->B, yes);
  return arr;
}

static void add_f64(cg *g, LLVMValueRef arr, LLVMValueRef idx, LLVMValueRef v) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef p = gep(g, t_f64(g), arr, idx);
  LLVMValueRef old = LLVMBuildLoad2(B, t_f64(g), p, "");
  LLVMBuildStore(B, LLVMBuildFAdd(B, old, v, ""), p);
}

static void grad_input(cg *g, cg_sc *sc, const ir_node *n, const at *pt,
                       LLVMValueRef adj, LLVMValueRef gin) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef acc = uniform(n) ? uacc_of(g, sc, n) : NULL;
  if (acc) {
    LLVMBuildStore(B, LLVMBuildFAdd(B, vld(g, acc), adj, ""), acc);
    return;
  }
  LLVMBasicBlockRef done;
  LLVMValueRef arr = if_asked(g, gin, (int)n->value, &done);
  LLVMValueRef ok, flat = flat_v(g, sc, n, pt, &ok);
  for (int x = 0; x < 16; x++) { /* lanes out of range add 0 to element 0 */
    LLVMValueRef l = LLVMConstInt(g->i32, (unsigned)x, 0);
    LLVMValueRef okl = LLVMBuildExtractElement(B, ok, l, "");
    LLVMValueRef idx = LLVMBuildSelect(B, okl, LLVMBuildExtractElement(B, flat, l, ""), ci64(g, 0), "");
    LLVMValueRef v = LLVMBuildFPExt(B, LLVMBuildExtractElement(B, adj, l, ""), t_f64(g), "");
    add_f64(g, arr, idx, LLVMBuildSelect(B, okl, v, LLVMConstReal(t_f64(g), 0.0), ""));
  }
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
}

static void fgrad(cg *g, cg_sc *sc, const ir_node *n, const at *pt,
                  LLVMValueRef adj, LLVMValueRef gin) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef zero = vsplat(g, 0.0);
  switch (n->op) {
  case IR_FSCORE: case IR_FCONST: case IR_FCVT: return;
  case IR_FINPUT: grad_input(g, sc, n, pt, adj, gin); return;
  case IR_FSEL: {
    LLVMValueRef c = nz(g, int_v(g, sc, n->kids[0], pt));
    fgrad(g, sc, n->kids[1], pt, fsel_v(g, c, adj, zero), gin);
    fgrad(g, sc, n->kids[2], pt, fsel_v(g, c, zero, adj), gin);
    return;
  }
  default: break;
  }
  const ir_node *a = n->kids[0], *b = n->n_kids == 2 ? n->kids[1] : NULL;
  LLVMValueRef x = fval(g, sc, a, pt, NULL);
  LLVMValueRef y = b ? fval(g, sc, b, pt, NULL) : NULL;
  switch (n->op) {
  case IR_FNEG: fgrad(g, sc, a, pt, LLVMBuildFNeg(B, adj, ""), gin); return;
  case IR_FABS:
    fgrad(g, sc, a, pt, fsel_v(g, LLVMBuildFCmp(B, LLVMRealOLT, x, zero, ""),
                               LLVMBuildFNeg(B, adj, ""), adj), gin);
    return;
  case IR_FEXP: fgrad(g, sc, a, pt, prop(g, adj, intr1(g, "llvm.exp", x)), gin); return;
  case IR_FLOG: fgrad(g, sc, a, pt, prop(g, adj, LLVMBuildFDiv(B, vsplat(g, 1.0), x, "")), gin); return;
  case IR_FSQRT:
    fgrad(g, sc, a, pt, prop(g, adj, LLVMBuildFDiv(B, vsplat(g, 0.5), intr1(g, "llvm.sqrt", x), "")), gin);
    return;
  case IR_FTANH: {
    LLVMValueRef t = tanh_v(g, x);
    fgrad(g, sc, a, pt, prop(g, adj, LLVMBuildFSub(B, vsplat(g, 1.0), LLVMBuildFMul(B, t, t, ""), "")), gin);
    return;
  }
  case IR_FADD: fgrad(g, sc, a, pt, adj, gin); fgrad(g, sc, b, pt, adj, gin); return;
  case IR_FSUB:
    fgrad(g, sc, a, pt, adj, gin);
    fgrad(g, sc, b, pt, LLVMBuildFNeg(B, adj, ""), gin);
    return;
  case IR_FMUL: fgrad(g, sc, a, pt, prop(g, adj, y), gin); fgrad(g, sc, b, pt, prop(g, adj, x), gin); return;
  case IR_FDIV:
    fgrad(g, sc, a, pt, prop(g, adj, LLVMBuildFDiv(B, vsplat(g, 1.0), y, "")), gin);
    fgrad(g, sc, b, pt, prop(g, LLVMBuildFNeg(B, adj, ""),
                             LLVMBuildFDiv(B, x, LLVMBuildFMul(B, y, y, ""), "")), gin);
    return;
  default: { /* FMIN, FMAX: to the operand chosen */
    LLVMValueRef c = pick_first(g, n->op, x, y);
    fgrad(g, sc, a, pt, fsel_v(g, c, adj, zero), gin);
    fgrad(g, sc, b, pt, fsel_v(g, c, zero, adj), gin);
    return;
  }
  }
}

void cg_sc_grad(cg *g, cg_sc *sc, int rv, LLVMValueRef jf, LLVMValueRef s,
                LLVMValueRef adj, LLVMValueRef gin) {
  at pt = {rv, jf, s, NULL};
  fgrad(g, sc, sc->p->score, &pt, adj, gin);
}

void cg_sc_flush(cg *g, cg_sc *sc, LLVMValueRef gin) {
  LLVMBuilderRef B = g->B;
  for (int k = 0; k < sc->n_u; k++) {
    const ir_node *n = sc->unode[k];
    LLVMBasicBlockRef done;
    LLVMValueRef arr = if_asked(g, gin, (int)n->value, &done);
    at pt = {0, vsplat(g, 0.0), vsplat(g, 0.0), NULL};
    LLVMValueRef ok, flat = flat_v(g, sc, n, &pt, &ok), z = LLVMConstInt(g->i32, 0, 0);
    LLVMValueRef acc = vld(g, sc->uacc[k]), sum = LLVMConstReal(t_f64(g), 0.0);
    for (int x = 0; x < 16; x++)
      sum = LLVMBuildFAdd(B, sum, LLVMBuildFPExt(B, LLVMBuildExtractElement(
                                      B, acc, LLVMConstInt(g->i32, (unsigned)x, 0), ""),
                                  t_f64(g), ""), "");
    LLVMValueRef okl = LLVMBuildExtractElement(B, ok, z, "");
    add_f64(g, arr, LLVMBuildSelect(B, okl, LLVMBuildExtractElement(B, flat, z, ""), ci64(g, 0), ""),
            LLVMBuildSelect(B, okl, sum, LLVMConstReal(t_f64(g), 0.0), ""));
    LLVMBuildBr(B, done);
    LLVMPositionBuilderAtEnd(B, done);
  }
}

/* --- spat_inlen ------------------------------------------------------------- */

void cg_gen_score_inlen(cg *g) {
  LLVMTypeRef ps[2] = {g->ptr, g->i64};
  begin_fn(g, KABI_INLEN, g->i64, ps, 2);
  LLVMValueRef env = LLVMGetParam(g->fn, 0), x = LLVMGetParam(g->fn, 1);
  LLVMValueRef r = ci64(g, 0);
  for (int k = 0; k < g->p->n_inputs; k++) {
    const ir_input *in = &g->p->inputs[k];
    if (!in->is_float) continue;
    LLVMValueRef len = ci64(g, 1);
    for (int d = 0; d < in->n_dims; d++) len = LLVMBuildMul(g->B, len, dim_v(g, env, in->dims[d]), "");
    r = LLVMBuildSelect(g->B, LLVMBuildICmp(g->B, LLVMIntEQ, x, ci64(g, k), ""), len, r, "");
  }
  LLVMBuildRet(g->B, r);
  end_fn(g);
}
