/* codegen_mask.c: pattern IR -> LLVM module (see codegen.h for the entry ABI).
 *
 * In: an ir_program and D.  Out: an LLVM module with
 *  - mask functions: the pattern as "row algebra" on 64-bit words: every
 *    pattern node yields the word of its allowed columns j0 .. j0 + 63 for
 *    one query row, so window/causal/block/cols are interval masks built by
 *    shifts, | & - ! are single word ops, blocks(b){P} evaluates P on the
 *    block row and spreads each block's bit.  Q of P & Q is evaluated
 *    only on the columns where P holds (an activity word): a shortcut, not
 *    the error semantics, which spat_errat below carries (the driver
 *    checks the whole domain with it before any mask runs).  Integer
 *    expressions are checked int64 arithmetic (llvm.s*.with.overflow, floor
 *    division, Python remainder); an error returns the 1-based index of a
 *    message baked at codegen time with the node's location.  where(pred)
 *    runs 8 columns per step in <8 x i64> lanes with a scalar exact path
 *    for rows where a lane fails.
 *  - top-k info functions (k and granularity of each top-k node),
 *  - the module: cg_build puts these, the forward tile (codegen_fwd_tile.c)
 *    and the error table into one module.
 */
#include "codegen_impl.h"
#include "codegen_score.h"

#include <stdio.h>
#include <stdlib.h>

#include "analyze.h"
#include "spat_limits.h"

/* --- errors ------------------------------------------------------------ */

static int err_site(cg *g, const ir_node *n, const char *what) {
  char loc[256] = "", msg[512];
  if (g->p->diag && n && n->span.src >= 0)
    diag_loc(g->p->diag, n->span, loc, sizeof loc);
  if (loc[0])
    snprintf(msg, sizeof msg, "%s: error: %s", loc, what);
  else
    snprintf(msg, sizeof msg, "%s", what);
  if (g->n_errs == g->cap_errs) {
    int cap = g->cap_errs ? 2 * g->cap_errs : 16;
    char **e = realloc(g->errs, (size_t)cap * sizeof *e);
    if (!e) {
      g->oom = 1;
      return 1;
    }
    g->errs = e;
    g->cap_errs = cap;
  }
  g->errs[g->n_errs] = strdup(msg);
  if (!g->errs[g->n_errs]) g->oom = 1;
  return ++g->n_errs;
}

/* if (bad) return code;  In spat_errat, the message's values d0, d1 (its
 * \1 and \2, see kernel_rt.h) are stored first. */
static void check_v(cg *g, LLVMValueRef bad, const ir_node *n, const char *what,
                    LLVMValueRef d0, LLVMValueRef d1) {
  /* a check the builder folded to false (constant arguments) costs nothing */
  if (LLVMIsAConstantInt(bad) && LLVMConstIntGetZExtValue(bad) == 0) return;
  int code = err_site(g, n, what);
  LLVMBasicBlockRef e = newbb(g, "err"), ok = newbb(g, "ok");
  LLVMBuildCondBr(g->B, bad, e, ok);
  LLVMPositionBuilderAtEnd(g->B, e);
  if (g->detail) {
    if (d0) LLVMBuildStore(g->B, d0, g->detail);
    if (d1) LLVMBuildStore(g->B, d1, gep(g, g->i64, g->detail, ci64(g, 1)));
  }
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, (unsigned)code, 0));
  LLVMPositionBuilderAtEnd(g->B, ok);
}

static void check(cg *g, LLVMValueRef bad, const ir_node *n, const char *what) {
  check_v(g, bad, n, what, NULL, NULL);
}

/* if (code != 0) return code;  (code: i64 computed at run time) */
static void check_dyn(cg *g, LLVMValueRef code) {
  LLVMBasicBlockRef e = newbb(g, "err"), ok = newbb(g, "ok");
  LLVMBuildCondBr(g->B,
                  LLVMBuildICmp(g->B, LLVMIntNE, code, ci64(g, 0), ""), e, ok);
  LLVMPositionBuilderAtEnd(g->B, e);
  LLVMBuildRet(g->B, LLVMBuildTrunc(g->B, code, g->i32, ""));
  LLVMPositionBuilderAtEnd(g->B, ok);
}

/* --- kr_env access ------------------------------------------------------- */

static LLVMValueRef env_word(cg *g, LLVMValueRef env, int w, LLVMTypeRef t) {
  return LLVMBuildLoad2(g->B, t, gep(g, g->i64, env, ci64(g, w)), "");
}

/* --- integer expressions ------------------------------------------------- */

static LLVMValueRef ival(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j);

static LLVMValueRef ovf_op(cg *g, const char *intr, LLVMValueRef a,
                           LLVMValueRef b, const ir_node *n) {
  LLVMValueRef args[2] = {a, b};
  LLVMValueRef r = call_intr(g, intr, &g->i64, 1, args, 2);
  LLVMValueRef v = LLVMBuildExtractValue(g->B, r, 0, "");
  LLVMValueRef o = LLVMBuildExtractValue(g->B, r, 1, "");
  char what[64];
  snprintf(what, sizeof what, "integer overflow in '%s'", ir_op_text[n->op]);
  check(g, o, n, what);
  return v;
}

static LLVMValueRef as_bool(cg *g, LLVMValueRef v) {
  return LLVMBuildICmp(g->B, LLVMIntNE, v, ci64(g, 0), "");
}
static LLVMValueRef zx(cg *g, LLVMValueRef b) {
  return LLVMBuildZExt(g->B, b, g->i64, "");
}

static LLVMValueRef divmod(cg *g, const ir_node *n, LLVMValueRef a,
                           LLVMValueRef b) {
  check(g, LLVMBuildICmp(g->B, LLVMIntEQ, b, ci64(g, 0), ""), n,
        "division by zero");
  LLVMValueRef m1 = LLVMBuildICmp(g->B, LLVMIntEQ, b, ci64(g, -1), "");
  if (n->op == IR_DIV)
    check(g,
          LLVMBuildAnd(g->B, m1,
                       LLVMBuildICmp(g->B, LLVMIntEQ, a, ci64(g, INT64_MIN), ""),
                       ""),
          n, "integer overflow in '/'");
  /* b == -1: a / -1 == -a (a != MIN here), a % -1 == 0; avoid sdiv's UB */
  LLVMValueRef bs = LLVMBuildSelect(g->B, m1, ci64(g, 1), b, "");
  LLVMValueRef q = LLVMBuildSDiv(g->B, a, bs, "");
  LLVMValueRef r = LLVMBuildSRem(g->B, a, bs, "");
  q = LLVMBuildSelect(g->B, m1, LLVMBuildNeg(g->B, a, ""), q, "");
  r = LLVMBuildSelect(g->B, m1, ci64(g, 0), r, "");
  LLVMValueRef adj = LLVMBuildAnd(
      g->B, LLVMBuildICmp(g->B, LLVMIntNE, r, ci64(g, 0), ""),
      LLVMBuildICmp(g->B, LLVMIntSLT, LLVMBuildXor(g->B, r, b, ""), ci64(g, 0),
                    ""),
      "");
  if (n->op == IR_DIV) return LLVMBuildSub(g->B, q, zx(g, adj), "");
  return LLVMBuildAdd(g->B, r,
                      LLVMBuildSelect(g->B, adj, b, ci64(g, 0), ""), "");
}

static LLVMValueRef short_circuit(cg *g, const ir_node *n, const lvl *L,
                                  LLVMValueRef j) {
  LLVMValueRef a = as_bool(g, ival(g, n->kids[0], L, j));
  LLVMBasicBlockRef from = LLVMGetInsertBlock(g->B);
  LLVMBasicBlockRef rhs = newbb(g, "rhs"), join = newbb(g, "join");
  if (n->op == IR_LAND)
    LLVMBuildCondBr(g->B, a, rhs, join);
  else
    LLVMBuildCondBr(g->B, a, join, rhs);
  LLVMPositionBuilderAtEnd(g->B, rhs);
  LLVMValueRef b = zx(g, as_bool(g, ival(g, n->kids[1], L, j)));
  LLVMBasicBlockRef rhs_end = LLVMGetInsertBlock(g->B);
  LLVMBuildBr(g->B, join);
  LLVMPositionBuilderAtEnd(g->B, join);
  LLVMValueRef phi = LLVMBuildPhi(g->B, g->i64, "");
  LLVMValueRef vals[2] = {ci64(g, n->op == IR_LOR), b};
  LLVMBasicBlockRef bbs[2] = {from, rhs_end};
  LLVMAddIncoming(phi, vals, bbs, 2);
  return phi;
}

static LLVMValueRef select_expr(cg *g, const ir_node *n, const lvl *L,
                                LLVMValueRef j) {
  LLVMValueRef c = as_bool(g, ival(g, n->kids[0], L, j));
  LLVMBasicBlockRef tb = newbb(g, "then"), eb = newbb(g, "else"),
                    join = newbb(g, "join");
  LLVMBuildCondBr(g->B, c, tb, eb);
  LLVMPositionBuilderAtEnd(g->B, tb);
  LLVMValueRef a = ival(g, n->kids[1], L, j);
  LLVMBasicBlockRef te = LLVMGetInsertBlock(g->B);
  LLVMBuildBr(g->B, join);
  LLVMPositionBuilderAtEnd(g->B, eb);
  LLVMValueRef b = ival(g, n->kids[2], L, j);
  LLVMBasicBlockRef ee = LLVMGetInsertBlock(g->B);
  LLVMBuildBr(g->B, join);
  LLVMPositionBuilderAtEnd(g->B, join);
  LLVMValueRef phi = LLVMBuildPhi(g->B, g->i64, "");
  LLVMValueRef vals[2] = {a, b};
  LLVMBasicBlockRef bbs[2] = {te, ee};
  LLVMAddIncoming(phi, vals, bbs, 2);
  return phi;
}

/* --- version 2: b, the sizes B Hkv D, shaped int inputs --------------------- */

/* A size at token level (input dimensions are evaluated there). */
static LLVMValueRef size_tok(cg *g, ir_op op) {
  switch (op) {
  case IR_SIZE_B: return env_word(g, g->env, KABI_ENV_NBATCH, g->i64);
  case IR_SIZE_H: return g->H;
  case IR_SIZE_HKV: return env_word(g, g->env, KABI_ENV_HKV, g->i64);
  case IR_SIZE_LQ: return env_word(g, g->env, KABI_ENV_LQ, g->i64);
  case IR_SIZE_LK: return g->lk_tok;
  default: return env_word(g, g->env, KABI_ENV_D, g->i64);
  }
}

static LLVMValueRef ovf_flag(cg *g, const char *intr, LLVMValueRef a,
                             LLVMValueRef b, LLVMValueRef *bad) {
  LLVMValueRef args[2] = {a, b};
  LLVMValueRef r = call_intr(g, intr, &g->i64, 1, args, 2);
  *bad = LLVMBuildOr(g->B, *bad, LLVMBuildExtractValue(g->B, r, 1, ""), "");
  return LLVMBuildExtractValue(g->B, r, 0, "");
}

/* A dimension expression (constants and sizes) as ir.c's dim_eval computes
 * it: *bad gets where dim_eval fails (overflow, division by zero, an op it
 * does not evaluate), the value is then anything (never UB). */
static LLVMValueRef dim_val(cg *g, const ir_node *n, LLVMValueRef *bad) {
  LLVMBuilderRef B = g->B;
  switch (n->op) {
  case IR_CONST: return ci64(g, n->value);
  case IR_SIZE_B: case IR_SIZE_H: case IR_SIZE_HKV:
  case IR_SIZE_LQ: case IR_SIZE_LK: case IR_SIZE_D: return size_tok(g, n->op);
  default: break;
  }
  if (n->n_kids < 1) {
    *bad = LLVMConstInt(g->i1, 1, 0);
    return ci64(g, 0);
  }
  LLVMValueRef x = dim_val(g, n->kids[0], bad);
  LLVMValueRef y = n->n_kids > 1 ? dim_val(g, n->kids[1], bad) : ci64(g, 0);
  switch (n->op) {
  case IR_NEG: return ovf_flag(g, "llvm.ssub.with.overflow", ci64(g, 0), x, bad);
  case IR_ABS:
    *bad = LLVMBuildOr(B, *bad, LLVMBuildICmp(B, LLVMIntEQ, x, ci64(g, INT64_MIN), ""), "");
    return smax(g, x, LLVMBuildNeg(B, x, ""));
  case IR_ADD: return ovf_flag(g, "llvm.sadd.with.overflow", x, y, bad);
  case IR_SUB: return ovf_flag(g, "llvm.ssub.with.overflow", x, y, bad);
  case IR_MUL: return ovf_flag(g, "llvm.smul.with.overflow", x, y, bad);
  case IR_DIV:
  case IR_MOD: {
    LLVMValueRef z = LLVMBuildICmp(B, LLVMIntEQ, y, ci64(g, 0), "");
    LLVMValueRef m1 = LLVMBuildICmp(B, LLVMIntEQ, y, ci64(g, -1), "");
    *bad = LLVMBuildOr(B, *bad, z, "");
    if (n->op == IR_DIV)
      *bad = LLVMBuildOr(B, *bad, LLVMBuildAnd(B, m1,
                         LLVMBuildICmp(B, LLVMIntEQ, x, ci64(g, INT64_MIN), ""), ""), "");
    LLVMValueRef ys = LLVMBuildSelect(B, LLVMBuildOr(B, z, m1, ""), ci64(g, 1), y, "");
    LLVMValueRef q = LLVMBuildSDiv(B, x, ys, ""), r = LLVMBuildSRem(B, x, ys, "");
    q = LLVMBuildSelect(B, m1, LLVMBuildNeg(B, x, ""), q, "");
    r = LLVMBuildSelect(B, m1, ci64(g, 0), r, "");
    LLVMValueRef adj = LLVMBuildAnd(
        B, LLVMBuildICmp(B, LLVMIntNE, r, ci64(g, 0), ""),
        LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildXor(B, r, y, ""), ci64(g, 0), ""), "");
    if (n->op == IR_DIV) return LLVMBuildSub(B, q, zx(g, adj), "");
    return LLVMBuildAdd(B, r, LLVMBuildSelect(B, adj, y, ci64(g, 0), ""), "");
  }
  case IR_MIN: return smin(g, x, y);
  case IR_MAX: return smax(g, x, y);
  case IR_SEL: { /* dim_eval evaluates both of the first two kids */
    LLVMValueRef c = as_bool(g, x), b2 = LLVMConstInt(g->i1, 0, 0);
    LLVMValueRef e = dim_val(g, n->kids[2], &b2);
    *bad = LLVMBuildOr(B, *bad, LLVMBuildAnd(B, LLVMBuildNot(B, c, ""), b2, ""), "");
    return LLVMBuildSelect(B, c, y, e, "");
  }
  default:
    *bad = LLVMConstInt(g->i1, 1, 0);
    return ci64(g, 0);
  }
}

/* Dimension d of input k (int[] is int[Lk]); *bad as dim_val. */
static LLVMValueRef input_dim(cg *g, int k, int d, LLVMValueRef *bad) {
  const ir_input *in = &g->p->inputs[k];
  return in->n_dims == 0 ? g->lk_tok : dim_val(g, in->dims[d], bad);
}

/* The dimensions of input k into dims[]; the result: true (i1) when one is
 * negative or invalid or their product overflows (ir_input_len's -1). */
static LLVMValueRef input_dims(cg *g, int k, LLVMValueRef *dims) {
  const ir_input *in = &g->p->inputs[k];
  LLVMValueRef bad = LLVMConstInt(g->i1, 0, 0), len = ci64(g, 1);
  int nd = in->n_dims ? in->n_dims : 1;
  for (int d = 0; d < nd && d < IR_MAX_DIMS; d++) {
    dims[d] = input_dim(g, k, d, &bad);
    bad = LLVMBuildOr(g->B, bad, LLVMBuildICmp(g->B, LLVMIntSLT, dims[d], ci64(g, 0), ""), "");
    len = ovf_flag(g, "llvm.smul.with.overflow", len, dims[d], &bad);
  }
  return bad;
}

static void input_shape_error(cg *g, int k, LLVMValueRef bad) {
  char what[300];  /* the interpreter's check_args message */
  snprintf(what, sizeof what, "input '%s': a dimension is negative or its size "
           "overflows for these sizes", g->p->inputs[k].name);
  check(g, bad, NULL, what);
}

/* spat_errat, first: the interpreter's check of every input's shape for
 * the run's sizes (a dimension negative, or the size overflowing). */
static void check_shapes(cg *g) {
  for (int k = 0; k < g->p->n_inputs; k++) {
    LLVMValueRef dims[IR_MAX_DIMS];
    input_shape_error(g, k, input_dims(g, k, dims));
  }
}

static LLVMValueRef input_array(cg *g, int k) {
  LLVMValueRef ins = env_word(g, g->env, KABI_ENV_INPUTS, g->ptr);
  return LLVMBuildLoad2(g->B, g->ptr, gep(g, g->ptr, ins, ci64(g, k)), "");
}

/* The message of an index outside dimension d (0-based) of input k. */
static void inputn_what(cg *g, int k, int d, char *what, size_t n) {
  snprintf(what, n, "index \001 of dimension %d of input '%s' is out of range "
           "[0, \002)", d + 1, g->p->inputs[k].name);
}

/* INPUTN: element [kids] of int input n->value, C-contiguous, each index
 * checked against its dimension before the next is evaluated (as the
 * interpreter).  A shape error was reported by spat_errat before any mask
 * runs; a negative dimension here rejects every index. */
static LLVMValueRef inputn(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef f = ci64(g, 0), unused = LLVMConstInt(g->i1, 0, 0);
  for (int k = 0; k < n->n_kids; k++) {
    LLVMValueRef x = ival(g, n->kids[k], L, j);
    LLVMValueRef dm = smax(g, input_dim(g, (int)n->value, k, &unused), ci64(g, 0));
    char what[300];
    inputn_what(g, (int)n->value, k, what, sizeof what);
    check_v(g, LLVMBuildICmp(B, LLVMIntUGE, x, dm, ""), n, what, x, dm);
    f = LLVMBuildAdd(B, LLVMBuildMul(B, f, dm, ""), x, ""); /* < the size */
  }
  LLVMValueRef v = LLVMBuildLoad2(B, g->i32, gep(g, g->i32, input_array(g, (int)n->value), f), "");
  return LLVMBuildSExt(B, v, g->i64, "");
}

static LLVMValueRef ival(cg *g, const ir_node *n, const lvl *L,
                         LLVMValueRef j) {
  LLVMBuilderRef B = g->B;
  switch (n->op) {
  case IR_VAR_B: return env_word(g, g->env, KABI_ENV_B, g->i64);
  case IR_SIZE_B: case IR_SIZE_HKV: case IR_SIZE_D: return size_tok(g, n->op);
  case IR_INPUTN: return inputn(g, n, L, j);
  case IR_CONST: return ci64(g, n->value);
  case IR_VAR_I: return L->i;
  case IR_VAR_J: return j ? j : ci64(g, 0);
  case IR_VAR_H: return g->h;
  case IR_SIZE_LQ: return L->lq;
  case IR_SIZE_LK: return L->lk;
  case IR_SIZE_H: return g->H;
  case IR_RUNTIME: {
    LLVMValueRef rt = env_word(g, g->env, KABI_ENV_RUNTIME, g->ptr);
    return LLVMBuildLoad2(B, g->i64, gep(g, g->i64, rt, ci64(g, n->value)), "");
  }
  case IR_INPUT: {
    LLVMValueRef x = ival(g, n->kids[0], L, j);
    char what[300];  /* the interpreter's message, values from spat_errat */
    snprintf(what, sizeof what, "index \001 of input '%s' is out of range [0, \002)",
             g->p->inputs[n->value].name);
    check_v(g, LLVMBuildICmp(B, LLVMIntUGE, x, g->lk_tok, ""), n, what, x,
            g->lk_tok);
    LLVMValueRef ins = env_word(g, g->env, KABI_ENV_INPUTS, g->ptr);
    LLVMValueRef arr =
        LLVMBuildLoad2(B, g->ptr, gep(g, g->ptr, ins, ci64(g, n->value)), "");
    LLVMValueRef v = LLVMBuildLoad2(B, g->i32, gep(g, g->i32, arr, x), "");
    return LLVMBuildSExt(B, v, g->i64, "");
  }
  case IR_EXTERN: {
    LLVMValueRef args[16];
    LLVMTypeRef ats[16];
    int na = n->n_kids > 16 ? 16 : n->n_kids;
    for (int k = 0; k < na; k++) {
      args[k] = ival(g, n->kids[k], L, j);
      ats[k] = g->i64;
    }
    LLVMValueRef ex = env_word(g, g->env, KABI_ENV_EXTERNS, g->ptr);
    LLVMValueRef f =
        LLVMBuildLoad2(B, g->ptr, gep(g, g->ptr, ex, ci64(g, n->value)), "");
    LLVMTypeRef ft = LLVMFunctionType(g->i8, ats, (unsigned)na, 0);
    LLVMValueRef r = LLVMBuildCall2(B, ft, f, args, (unsigned)na, "");
    return zx(g, LLVMBuildICmp(B, LLVMIntNE, r, ci8(g, 0), ""));
  }
  case IR_NEG:
    return ovf_op(g, "llvm.ssub.with.overflow", ci64(g, 0),
                  ival(g, n->kids[0], L, j), n);
  case IR_NOT:
    return zx(g, LLVMBuildICmp(B, LLVMIntEQ, ival(g, n->kids[0], L, j),
                               ci64(g, 0), ""));
  case IR_ABS: {
    LLVMValueRef x = ival(g, n->kids[0], L, j);
    check(g, LLVMBuildICmp(B, LLVMIntEQ, x, ci64(g, INT64_MIN), ""), n,
          "integer overflow in 'abs'");
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, x, ci64(g, 0), ""),
                           LLVMBuildNeg(B, x, ""), x, "");
  }
  case IR_LAND:
  case IR_LOR: return short_circuit(g, n, L, j);
  case IR_SEL: return select_expr(g, n, L, j);
  default: break;
  }
  LLVMValueRef a = ival(g, n->kids[0], L, j);
  LLVMValueRef b = ival(g, n->kids[1], L, j);
  switch (n->op) {
  case IR_ADD: return ovf_op(g, "llvm.sadd.with.overflow", a, b, n);
  case IR_SUB: return ovf_op(g, "llvm.ssub.with.overflow", a, b, n);
  case IR_MUL: return ovf_op(g, "llvm.smul.with.overflow", a, b, n);
  case IR_DIV:
  case IR_MOD: return divmod(g, n, a, b);
  case IR_MIN: return smin(g, a, b);
  case IR_MAX: return smax(g, a, b);
  case IR_LT: return zx(g, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""));
  case IR_LE: return zx(g, LLVMBuildICmp(B, LLVMIntSLE, a, b, ""));
  case IR_GT: return zx(g, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""));
  case IR_GE: return zx(g, LLVMBuildICmp(B, LLVMIntSGE, a, b, ""));
  case IR_EQ: return zx(g, LLVMBuildICmp(B, LLVMIntEQ, a, b, ""));
  case IR_NE: return zx(g, LLVMBuildICmp(B, LLVMIntNE, a, b, ""));
  case IR_IAND: return LLVMBuildAnd(B, a, b, "");
  case IR_IOR: return LLVMBuildOr(B, a, b, "");
  case IR_IXOR: return LLVMBuildXor(B, a, b, "");
  case IR_SHL:
  case IR_SHR: { /* as ar_shl / ar_shr (arith.h) */
    check_v(g, LLVMBuildICmp(B, LLVMIntUGT, b, ci64(g, 63), ""), n,
            "shift count \001 is outside [0, 63]", b, NULL);
    if (n->op == IR_SHR) return LLVMBuildAShr(B, a, b, "");
    LLVMValueRef r = LLVMBuildShl(B, a, b, "");
    check(g, LLVMBuildICmp(B, LLVMIntNE, LLVMBuildAShr(B, r, b, ""), a, ""), n,
          "integer overflow in '<<'");
    return r;
  }
  default: return ci64(g, 0);
  }
}

/* --- row masks as 64-bit words --------------------------------------------
 * A row mask is an i64: bit t is column j0 + t (cnt <= 64 columns).  act,
 * when not NULL, is the word of columns where the node can matter: it is
 * evaluated (extern calls, errors) only there.  Errors of the contract are
 * spat_errat's; one here means the pre-check missed it. */

/* Sizes are clamped here: positions are below PLAN_MAX_LEN = 2^61 (the
 * driver refuses larger Lq, Lk), so every distance is below BIG (exact) and
 * a position plus or minus BIG (plus a little) fits in int64. */
#define BIG ((int64_t)1 << 62)

/* v < 0 means Lk + v */
static LLVMValueRef norm_idx(cg *g, LLVMValueRef v, const lvl *L) {
  return LLVMBuildSelect(g->B,
                         LLVMBuildICmp(g->B, LLVMIntSLT, v, ci64(g, 0), ""),
                         LLVMBuildAdd(g->B, L->lk, v, ""), v, "");
}

/* bits [0, k) for 0 <= k <= 64 */
static LLVMValueRef lowbits(cg *g, LLVMValueRef k) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef sh = LLVMBuildShl(B, ci64(g, 1), smin(g, k, ci64(g, 63)), "");
  return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGE, k, ci64(g, 64), ""),
                         ci64(g, -1), LLVMBuildSub(B, sh, ci64(g, 1), ""), "");
}

typedef struct rowx {
  LLVMValueRef j0, cnt, valid;  /* first column, columns, lowbits(cnt) */
} rowx;

/* columns of [lo, hi) (any int64 bounds) */
static LLVMValueRef range_bits(cg *g, const rowx *R, LLVMValueRef lo,
                               LLVMValueRef hi) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef end = LLVMBuildAdd(B, R->j0, R->cnt, "");
  LLVMValueRef a = LLVMBuildSub(B, smin(g, smax(g, lo, R->j0), end), R->j0, "");
  LLVMValueRef b = LLVMBuildSub(B, smin(g, smax(g, hi, R->j0), end), R->j0, "");
  return LLVMBuildAnd(B, lowbits(g, b),
                      LLVMBuildNot(B, lowbits(g, a), ""), "");
}

/* the bit of column x, 0 when x is outside the row */
static LLVMValueRef col_bit(cg *g, const rowx *R, LLVMValueRef x) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef off = LLVMBuildSub(B, x, R->j0, "");
  LLVMValueRef in = LLVMBuildICmp(B, LLVMIntULT, off, R->cnt, "");
  return LLVMBuildSelect(B, in,
                         LLVMBuildShl(B, ci64(g, 1),
                                      LLVMBuildAnd(B, off, ci64(g, 63), ""), ""),
                         ci64(g, 0), "");
}

/* accumulator word in an alloca */
static LLVMValueRef acc_new(cg *g, LLVMValueRef init) {
  LLVMValueRef a = alloca_t(g, g->i64, "bits");
  LLVMBuildStore(g->B, init, a);
  return a;
}
static void acc_or(cg *g, LLVMValueRef a, LLVMValueRef v) {
  LLVMBuildStore(g->B, LLVMBuildOr(g->B, LLVMBuildLoad2(g->B, g->i64, a, ""), v, ""),
                 a);
}
static LLVMValueRef acc_get(cg *g, LLVMValueRef a) {
  return LLVMBuildLoad2(g->B, g->i64, a, "");
}

/* 8-lane vectors of i64 (row scans here, where() below) */
#define VL 8

static LLVMTypeRef vi64(cg *g) { return LLVMVectorType(g->i64, VL); }
static LLVMValueRef vsplat64(cg *g, LLVMValueRef x) {
  LLVMValueRef v = LLVMBuildInsertElement(g->B, LLVMGetPoison(vi64(g)), x,
                                          LLVMConstInt(g->i32, 0, 0), "");
  return LLVMBuildShuffleVector(g->B, v, LLVMGetPoison(vi64(g)),
                                LLVMConstNull(LLVMVectorType(g->i32, VL)), "");
}
static LLVMValueRef vc64(cg *g, int64_t x) { return vsplat64(g, ci64(g, x)); }

/* --- rows of inputs as index sets, diagonals (language version 2) -------
 * INROW(a, e1..e{n-1}) in a set stands for the items a[e1, .., e{n-1}, t],
 * every t; a's dimensions are integer expressions of constants and the
 * token-level sizes, evaluated inline as ir.c's dim_eval does (an overflow
 * or a division by zero makes a dimension invalid, as a negative one). */

/* The row it = a[e1, .., e{n-1}] (each index checked against its dimension,
 * in order, with the interpreter's message); *w gets its length and *fr
 * (unless NULL) its index among the input's rows. */
static LLVMValueRef input_row(cg *g, const ir_node *it, const lvl *L,
                              LLVMValueRef *w, LLVMValueRef *fr) {
  LLVMBuilderRef B = g->B;
  int k = (int)it->value;
  LLVMValueRef dims[IR_MAX_DIMS];
  input_shape_error(g, k, input_dims(g, k, dims));
  LLVMValueRef f = ci64(g, 0);
  for (int d = 0; d < it->n_kids; d++) {
    LLVMValueRef x = ival(g, it->kids[d], L, NULL);
    char what[300];
    snprintf(what, sizeof what, "index \001 of dimension %d of input '%s' is out of "
             "range [0, \002)", d + 1, g->p->inputs[k].name);
    check_v(g, LLVMBuildICmp(B, LLVMIntUGE, x, dims[d], ""), it, what, x, dims[d]);
    f = LLVMBuildAdd(B, LLVMBuildMul(B, f, dims[d], ""), x, "");
  }
  *w = dims[it->n_kids];
  if (fr) *fr = f;
  LLVMValueRef ins = env_word(g, g->env, KABI_ENV_INPUTS, g->ptr);
  LLVMValueRef arr = LLVMBuildLoad2(B, g->ptr, gep(g, g->ptr, ins, ci64(g, k)), "");
  return gep(g, g->i32, arr, LLVMBuildMul(B, f, *w, ""));
}

/* Every value of the row: *v in the loop body (sign-extended); close with
 * loop_end. */
static LLVMValueRef row_loop(cg *g, loop *lp, LLVMValueRef row, LLVMValueRef w) {
  LLVMValueRef t = loop_begin(g, lp, ci64(g, 0), w, 1);
  return LLVMBuildSExt(g->B, LLVMBuildLoad2(g->B, g->i32, gep(g, g->i32, row, t), ""),
                       g->i64, "");
}

/* x in the row's items (v < 0 meaning Lk + v) */
static LLVMValueRef row_has(cg *g, const ir_node *it, const lvl *L, LLVMValueRef x) {
  LLVMValueRef w, row = input_row(g, it, L, &w, NULL), acc = acc_new(g, ci64(g, 0));
  loop lp;
  LLVMValueRef v = norm_idx(g, row_loop(g, &lp, row, w), L);
  acc_or(g, acc, zx(g, LLVMBuildICmp(g->B, LLVMIntEQ, v, x, "")));
  loop_end(g, &lp);
  return LLVMBuildICmp(g->B, LLVMIntNE, acc_get(g, acc), ci64(g, 0), "");
}

/* row_bits from the run's bitmap of the row (kr_setbits, kernel_rt.h) when
 * the driver gave one that holds this word: stores the word into acc and
 * branches to done; else falls through (the builder where the scan goes).
 * Row f of width w; the word's bits are p0 .. p0 + 63 of the set, p0 = j0
 * (cols, when lk is the bitmap's base) or j0 - i + base (diagonals). */
static void set_word(cg *g, const ir_node *it, const lvl *L, const rowx *R,
                     bool offsets, LLVMValueRef w, LLVMValueRef f,
                     LLVMValueRef acc, LLVMBasicBlockRef done) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef tab = env_word(g, g->env, KABI_ENV_SETBITS, g->ptr);
  LLVMBasicBlockRef look = newbb(g, "sbits"), fast = newbb(g, "sbfast"),
                    scan = newbb(g, "sbscan");
  LLVMBuildCondBr(B, LLVMBuildIsNull(B, tab, ""), scan, look);
  LLVMPositionBuilderAtEnd(B, look);
  int64_t at = (2 * it->value + (offsets ? 1 : 0)) * KABI_SB_WORDS;
  LLVMValueRef bits = env_word(g, tab, (int)(at + KABI_SB_BITS), g->ptr);
  LLVMValueRef wpr = env_word(g, tab, (int)(at + KABI_SB_WPR), g->i64);
  LLVMValueRef nbits = env_word(g, tab, (int)(at + KABI_SB_NBITS), g->i64);
  LLVMValueRef base = env_word(g, tab, (int)(at + KABI_SB_BASE), g->i64);
  LLVMValueRef rows = env_word(g, tab, (int)(at + KABI_SB_ROWS), g->i64);
  LLVMValueRef width = env_word(g, tab, (int)(at + KABI_SB_WIDTH), g->i64);
  LLVMValueRef p0, ok = LLVMBuildAnd(
      B, LLVMBuildIsNotNull(B, bits, ""),
      LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULT, f, rows, ""),
                   LLVMBuildICmp(B, LLVMIntEQ, w, width, ""), ""), "");
  if (offsets) {
    p0 = LLVMBuildAdd(B, LLVMBuildSub(B, R->j0, L->i, ""), base, "");
  } else {
    p0 = R->j0;
    ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntEQ, L->lk, base, ""), "");
  }
  /* 0 <= p0 and p0 + 64 <= nbits + 64 (bits past nbits read zero) */
  ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntSGE, p0, ci64(g, 0), ""), "");
  ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntSLE, LLVMBuildAdd(B, p0, R->cnt, ""),
                                         nbits, ""), "");
  LLVMBuildCondBr(B, ok, fast, scan);
  LLVMPositionBuilderAtEnd(B, fast);
  LLVMValueRef g0 = LLVMBuildAdd(B, p0, ci64(g, 64), "");
  LLVMValueRef wd = LLVMBuildAdd(B, LLVMBuildMul(B, f, wpr, ""),
                                 LLVMBuildLShr(B, g0, ci64(g, 6), ""), "");
  LLVMValueRef lo = LLVMBuildLoad2(B, g->i64, gep(g, g->i64, bits, wd), "");
  LLVMValueRef hi = LLVMBuildLoad2(
      B, g->i64, gep(g, g->i64, bits, LLVMBuildAdd(B, wd, ci64(g, 1), "")), "");
  LLVMValueRef args[3] = {hi, lo, LLVMBuildAnd(B, g0, ci64(g, 63), "")};
  LLVMValueRef word = call_intr(g, "llvm.fshr", &g->i64, 1, args, 3);
  LLVMBuildStore(B, LLVMBuildAnd(B, word, R->valid, ""), acc);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, scan);
}

/* the columns j of the row whose items hold f(item) == j: f = from the end
 * (cols) or i - item (diagonals); 8 items per step in <8 x i64> lanes (a
 * masked load for the last ones), as col_bit does each: the mask's hot
 * loop for vertical-slash */
static LLVMValueRef row_bits(cg *g, const ir_node *it, const lvl *L, const rowx *R,
                             bool offsets) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef w, f, row = input_row(g, it, L, &w, &f), acc = acc_new(g, ci64(g, 0));
  LLVMBasicBlockRef done = newbb(g, "rowdone");
  set_word(g, it, L, R, offsets, w, f, acc, done);
  LLVMTypeRef v32 = LLVMVectorType(g->i32, VL), vt = vi64(g);
  LLVMValueRef iota[VL];
  for (int k = 0; k < VL; k++) iota[k] = ci64(g, k);
  loop lp;
  LLVMValueRef t = loop_begin(g, &lp, ci64(g, 0), w, VL);
  LLVMValueRef idx = LLVMBuildAdd(B, vsplat64(g, t), LLVMConstVector(iota, VL), "");
  LLVMValueRef valid = LLVMBuildICmp(B, LLVMIntSLT, idx, vsplat64(g, w), "");
  LLVMTypeRef ovl[2] = {v32, g->ptr};
  LLVMValueRef args[4] = {gep(g, g->i32, row, t), LLVMConstInt(g->i32, 4, 0), valid,
                          LLVMConstNull(v32)};
  LLVMValueRef v = LLVMBuildSExt(B, call_intr(g, "llvm.masked.load", ovl, 2, args, 4),
                                 vt, "");
  LLVMValueRef x;
  if (offsets) {
    x = LLVMBuildSub(B, vsplat64(g, L->i), v, "");
  } else {
    LLVMValueRef neg = LLVMBuildICmp(B, LLVMIntSLT, v, LLVMConstNull(vt), "");
    x = LLVMBuildSelect(B, neg, LLVMBuildAdd(B, v, vsplat64(g, L->lk), ""), v, "");
  }
  LLVMValueRef off = LLVMBuildSub(B, x, vsplat64(g, R->j0), "");
  LLVMValueRef in = LLVMBuildAnd(
      B, valid, LLVMBuildICmp(B, LLVMIntULT, off, vsplat64(g, R->cnt), ""), "");
  LLVMValueRef bit = LLVMBuildShl(B, vc64(g, 1), LLVMBuildAnd(B, off, vc64(g, 63), ""), "");
  LLVMValueRef word = LLVMBuildSelect(B, in, bit, LLVMConstNull(vt), "");
  acc_or(g, acc, call_intr(g, "llvm.vector.reduce.or", &vt, 1, &word, 1));
  loop_end(g, &lp);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  return acc_get(g, acc);
}

/* diagonals(S): i - j in S, items as written.  |i - j| < BIG (positions
 * below 2^61), so items clamped to [-BIG, BIG] mean the same and i - item
 * cannot overflow. */
static LLVMValueRef diag_bits(cg *g, const ir_node *s, const lvl *L, const rowx *R) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef bits = ci64(g, 0);
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    LLVMValueRef w;
    if (it->op == IR_INROW) {
      w = row_bits(g, it, L, R, true);
    } else if (it->op == IR_RANGE) { /* j in [i - b + 1, i - a + 1) */
      LLVMValueRef a = ival(g, it->kids[0], L, NULL), b = ival(g, it->kids[1], L, NULL);
      a = smax(g, smin(g, a, ci64(g, BIG)), ci64(g, -BIG));
      b = smax(g, smin(g, b, ci64(g, BIG)), ci64(g, -BIG));
      w = range_bits(g, R, LLVMBuildAdd(B, LLVMBuildSub(B, L->i, b, ""), ci64(g, 1), ""),
                     LLVMBuildAdd(B, LLVMBuildSub(B, L->i, a, ""), ci64(g, 1), ""));
    } else {
      LLVMValueRef v = ival(g, it, L, NULL);
      v = smax(g, smin(g, v, ci64(g, BIG)), ci64(g, -BIG));
      w = col_bit(g, R, LLVMBuildSub(B, L->i, v, ""));
    }
    bits = LLVMBuildOr(B, bits, w, "");
  }
  return bits;
}

/* x in S, items evaluated left to right until one holds (as the interpreter) */
static LLVMValueRef set_has(cg *g, const ir_node *s, const lvl *L,
                            LLVMValueRef x) {
  LLVMValueRef res = alloca_t(g, g->i1, "in");
  LLVMBuildStore(g->B, LLVMConstInt(g->i1, 0, 0), res);
  LLVMBasicBlockRef done = newbb(g, "setdone");
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    LLVMValueRef in;
    if (it->op == IR_INROW) {
      in = row_has(g, it, L, x);
    } else if (it->op == IR_RANGE) {
      LLVMValueRef a = norm_idx(g, ival(g, it->kids[0], L, NULL), L);
      LLVMValueRef b = norm_idx(g, ival(g, it->kids[1], L, NULL), L);
      in = LLVMBuildAnd(g->B, LLVMBuildICmp(g->B, LLVMIntSLE, a, x, ""),
                        LLVMBuildICmp(g->B, LLVMIntSLT, x, b, ""), "");
    } else {
      in = LLVMBuildICmp(g->B, LLVMIntEQ,
                         norm_idx(g, ival(g, it, L, NULL), L), x, "");
    }
    LLVMBuildStore(g->B, in, res);
    LLVMBasicBlockRef next = newbb(g, "setnext");
    LLVMBuildCondBr(g->B, in, done, next);
    LLVMPositionBuilderAtEnd(g->B, next);
  }
  LLVMBuildBr(g->B, done);
  LLVMPositionBuilderAtEnd(g->B, done);
  return LLVMBuildLoad2(g->B, g->i1, res, "");
}

static LLVMValueRef cols_bits(cg *g, const ir_node *s, const lvl *L,
                              const rowx *R) {
  LLVMValueRef bits = ci64(g, 0);
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    LLVMValueRef w;
    if (it->op == IR_INROW) {
      w = row_bits(g, it, L, R, false);
    } else if (it->op == IR_RANGE) {
      LLVMValueRef a = norm_idx(g, ival(g, it->kids[0], L, NULL), L);
      LLVMValueRef b = norm_idx(g, ival(g, it->kids[1], L, NULL), L);
      w = range_bits(g, R, a, b);
    } else {
      w = col_bit(g, R, norm_idx(g, ival(g, it, L, NULL), L));
    }
    bits = LLVMBuildOr(g->B, bits, w, "");
  }
  return bits;
}

/* An argument of primitive prim (node n) below min: the interpreter's
 * "<what> of <prim> is <v>, must be >= <min>" at the argument. */
static void nonneg(cg *g, LLVMValueRef v, const ir_node *n, int64_t min,
                   const char *what, const ir_node *prim) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s of %s is \001, must be >= %lld", what,
           ir_op_text[prim->op], (long long)min);
  check_v(g, LLVMBuildICmp(g->B, LLVMIntSLT, v, ci64(g, min), ""), n, msg, v,
          NULL);
}

static int topk_index(cg *g, const ir_node *n) {
  for (int t = 0; t < g->n_tk; t++)
    if (g->tk[t] == n) return t;
  return 0;
}

/* python x mod m for m >= 1 */
static LLVMValueRef pmod(cg *g, LLVMValueRef x, LLVMValueRef m) {
  LLVMValueRef r = LLVMBuildSRem(g->B, x, m, "");
  return LLVMBuildSelect(g->B, LLVMBuildICmp(g->B, LLVMIntSLT, r, ci64(g, 0), ""),
                         LLVMBuildAdd(g->B, r, m, ""), r, "");
}

/* columns j in [lo, hi) with j = i (mod s), s >= 1.  |i - j| < BIG, so
 * s > BIG means j == i as s == BIG does: with s clamped there, first =
 * lo + ((i - lo) mod s) cannot overflow. */
static LLVMValueRef stride_bits(cg *g, const rowx *R, LLVMValueRef i,
                                LLVMValueRef s, LLVMValueRef lo,
                                LLVMValueRef hi) {
  LLVMBuilderRef B = g->B;
  s = smin(g, s, ci64(g, BIG));
  LLVMValueRef end = LLVMBuildAdd(B, R->j0, R->cnt, "");
  lo = smax(g, lo, R->j0);
  hi = smin(g, hi, end);
  LLVMValueRef first = LLVMBuildAdd(B, lo, pmod(g, LLVMBuildSub(B, i, lo, ""), s), "");
  LLVMValueRef acc = acc_new(g, ci64(g, 0));
  loop lp;
  lp.var = alloca_t(g, g->i64, "iv");
  LLVMBuildStore(B, first, lp.var);
  lp.cond = newbb(g, "loop"), lp.body = newbb(g, "body"), lp.exit = newbb(g, "done");
  LLVMBuildBr(B, lp.cond);
  LLVMPositionBuilderAtEnd(B, lp.cond);
  LLVMValueRef j = LLVMBuildLoad2(B, g->i64, lp.var, "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, j, hi, ""), lp.body, lp.exit);
  LLVMPositionBuilderAtEnd(B, lp.body);
  acc_or(g, acc, col_bit(g, R, j));
  LLVMBuildStore(B, LLVMBuildAdd(B, j, smin(g, s, ci64(g, 64)), ""), lp.var);
  LLVMBuildBr(B, lp.cond);
  LLVMPositionBuilderAtEnd(B, lp.exit);
  return acc_get(g, acc);
}

static LLVMValueRef pat(cg *g, const ir_node *n, const lvl *L, const rowx *R,
                        LLVMValueRef act);

/* --- where(pred) on 8 columns at once ---------------------------------------
 * The predicate is evaluated for 8 columns in <8 x i64> lanes without
 * branches: both arms of && || ?: are computed, and instead of returning on
 * an error each lane records whether the interpreter would have failed there
 * (an arm's failures count only where the arm is taken).  Input reads use a
 * clamped index.  When any active lane failed, the row is evaluated again by
 * the exact scalar code, which reports the error. */

static LLVMValueRef vbool(cg *g, LLVMValueRef m) {  /* <VL x i1> -> 0/1 */
  return LLVMBuildZExt(g->B, m, vi64(g), "");
}
static LLVMValueRef vne0(cg *g, LLVMValueRef v) {
  return LLVMBuildICmp(g->B, LLVMIntNE, v, LLVMConstNull(vi64(g)), "");
}

static int vectorisable(const ir_node *n) {
  if (n->op == IR_EXTERN) return 0;
  for (int k = 0; k < n->n_kids; k++)
    if (!vectorisable(n->kids[k])) return 0;
  return 1;
}

static LLVMValueRef vval(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                         LLVMValueRef *bad);

static LLVMValueRef vovf(cg *g, const char *intr, LLVMValueRef a,
                         LLVMValueRef b, LLVMValueRef *bad) {
  LLVMTypeRef t = vi64(g);
  LLVMValueRef args[2] = {a, b};
  LLVMValueRef r = call_intr(g, intr, &t, 1, args, 2);
  *bad = LLVMBuildOr(g->B, *bad, LLVMBuildExtractValue(g->B, r, 1, ""), "");
  return LLVMBuildExtractValue(g->B, r, 0, "");
}

/* failures of an arm count where cond holds */
static LLVMValueRef varm(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                         LLVMValueRef *bad, LLVMValueRef cond) {
  LLVMValueRef b2 = LLVMConstNull(LLVMVectorType(g->i1, VL));
  LLVMValueRef v = vval(g, n, L, j, &b2);
  *bad = LLVMBuildOr(g->B, *bad, LLVMBuildAnd(g->B, b2, cond, ""), "");
  return v;
}

/* The int32 elements of arr at the lanes of x (in range), widened. */
static LLVMValueRef vgather_i32(cg *g, LLVMValueRef arr, LLVMValueRef x) {
  LLVMValueRef ptrs = LLVMBuildGEP2(g->B, g->i32, arr, &x, 1, "");
  LLVMTypeRef ovl[2] = {LLVMVectorType(g->i32, VL), LLVMTypeOf(ptrs)};
  LLVMValueRef ones[VL];
  for (int k = 0; k < VL; k++) ones[k] = LLVMConstInt(g->i1, 1, 0);
  LLVMValueRef args[4] = {ptrs, LLVMConstInt(g->i32, 4, 0),
                          LLVMConstVector(ones, VL),
                          LLVMGetPoison(LLVMVectorType(g->i32, VL))};
  LLVMValueRef v = call_intr(g, "llvm.masked.gather", ovl, 2, args, 4);
  return LLVMBuildSExt(g->B, v, vi64(g), "");
}

/* INPUTN in lanes: a lane with an index out of range fails (and reads
 * element 0). */
static LLVMValueRef vinputn(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                            LLVMValueRef *bad) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef f = LLVMConstNull(vi64(g)), unused = LLVMConstInt(g->i1, 0, 0);
  for (int k = 0; k < n->n_kids; k++) {
    LLVMValueRef x = vval(g, n->kids[k], L, j, bad);
    LLVMValueRef dm = vsplat64(g, smax(g, input_dim(g, (int)n->value, k, &unused),
                                       ci64(g, 0)));
    LLVMValueRef out = LLVMBuildICmp(B, LLVMIntUGE, x, dm, "");
    *bad = LLVMBuildOr(B, *bad, out, "");
    x = LLVMBuildSelect(B, out, LLVMConstNull(vi64(g)), x, "");
    f = LLVMBuildAdd(B, LLVMBuildMul(B, f, dm, ""), x, "");
  }
  return vgather_i32(g, input_array(g, (int)n->value), f);
}

static LLVMValueRef vval(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                         LLVMValueRef *bad) {
  LLVMBuilderRef B = g->B;
  LLVMTypeRef vt = vi64(g);
  switch (n->op) {
  case IR_VAR_B: return vsplat64(g, env_word(g, g->env, KABI_ENV_B, g->i64));
  case IR_SIZE_B: case IR_SIZE_HKV: case IR_SIZE_D:
    return vsplat64(g, size_tok(g, n->op));
  case IR_INPUTN: return vinputn(g, n, L, j, bad);
  case IR_CONST: return vc64(g, n->value);
  case IR_VAR_I: return vsplat64(g, L->i);
  case IR_VAR_J: return j;
  case IR_VAR_H: return vsplat64(g, g->h);
  case IR_SIZE_LQ: return vsplat64(g, L->lq);
  case IR_SIZE_LK: return vsplat64(g, L->lk);
  case IR_SIZE_H: return vsplat64(g, g->H);
  case IR_RUNTIME: {
    LLVMValueRef rt = env_word(g, g->env, KABI_ENV_RUNTIME, g->ptr);
    return vsplat64(g, LLVMBuildLoad2(B, g->i64,
                                      gep(g, g->i64, rt, ci64(g, n->value)), ""));
  }
  case IR_INPUT: {
    LLVMValueRef x = vval(g, n->kids[0], L, j, bad);
    LLVMValueRef out = LLVMBuildICmp(B, LLVMIntUGE, x, vsplat64(g, g->lk_tok), "");
    *bad = LLVMBuildOr(B, *bad, out, "");
    x = LLVMBuildSelect(B, out, LLVMConstNull(vt), x, "");
    return vgather_i32(g, input_array(g, (int)n->value), x);
  }
  case IR_NEG:
    return vovf(g, "llvm.ssub.with.overflow", LLVMConstNull(vt),
                vval(g, n->kids[0], L, j, bad), bad);
  case IR_NOT:
    return vbool(g, LLVMBuildICmp(B, LLVMIntEQ, vval(g, n->kids[0], L, j, bad),
                                  LLVMConstNull(vt), ""));
  case IR_ABS: {
    LLVMValueRef x = vval(g, n->kids[0], L, j, bad);
    *bad = LLVMBuildOr(B, *bad, LLVMBuildICmp(B, LLVMIntEQ, x, vc64(g, INT64_MIN), ""), "");
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, x, LLVMConstNull(vt), ""),
                           LLVMBuildNeg(B, x, ""), x, "");
  }
  case IR_LAND:
  case IR_LOR: {
    LLVMValueRef a = vne0(g, vval(g, n->kids[0], L, j, bad));
    LLVMValueRef take = n->op == IR_LAND ? a : LLVMBuildNot(B, a, "");
    LLVMValueRef b = vne0(g, varm(g, n->kids[1], L, j, bad, take));
    return vbool(g, n->op == IR_LAND ? LLVMBuildAnd(B, a, b, "")
                                     : LLVMBuildOr(B, a, b, ""));
  }
  case IR_SEL: {
    LLVMValueRef c = vne0(g, vval(g, n->kids[0], L, j, bad));
    LLVMValueRef a = varm(g, n->kids[1], L, j, bad, c);
    LLVMValueRef b = varm(g, n->kids[2], L, j, bad, LLVMBuildNot(B, c, ""));
    return LLVMBuildSelect(B, c, a, b, "");
  }
  default: break;
  }
  LLVMValueRef a = vval(g, n->kids[0], L, j, bad);
  LLVMValueRef b = vval(g, n->kids[1], L, j, bad);
  switch (n->op) {
  case IR_ADD: return vovf(g, "llvm.sadd.with.overflow", a, b, bad);
  case IR_SUB: return vovf(g, "llvm.ssub.with.overflow", a, b, bad);
  case IR_MUL: return vovf(g, "llvm.smul.with.overflow", a, b, bad);
  case IR_DIV:
  case IR_MOD: {
    LLVMValueRef z = LLVMBuildICmp(B, LLVMIntEQ, b, LLVMConstNull(vt), "");
    LLVMValueRef m1 = LLVMBuildICmp(B, LLVMIntEQ, b, vc64(g, -1), "");
    *bad = LLVMBuildOr(B, *bad, z, "");
    if (n->op == IR_DIV)
      *bad = LLVMBuildOr(
          B, *bad,
          LLVMBuildAnd(B, m1, LLVMBuildICmp(B, LLVMIntEQ, a, vc64(g, INT64_MIN), ""), ""),
          "");
    LLVMValueRef bs = LLVMBuildSelect(B, LLVMBuildOr(B, z, m1, ""), vc64(g, 1), b, "");
    LLVMValueRef q = LLVMBuildSDiv(B, a, bs, "");
    LLVMValueRef r = LLVMBuildSRem(B, a, bs, "");
    q = LLVMBuildSelect(B, m1, LLVMBuildSub(B, LLVMConstNull(vt), a, ""), q, "");
    r = LLVMBuildSelect(B, m1, LLVMConstNull(vt), r, "");
    LLVMValueRef adj = LLVMBuildAnd(
        B, LLVMBuildICmp(B, LLVMIntNE, r, LLVMConstNull(vt), ""),
        LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildXor(B, r, b, ""), LLVMConstNull(vt), ""),
        "");
    if (n->op == IR_DIV) return LLVMBuildSub(B, q, vbool(g, adj), "");
    return LLVMBuildAdd(B, r, LLVMBuildSelect(B, adj, b, LLVMConstNull(vt), ""), "");
  }
  case IR_MIN:
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
  case IR_MAX:
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
  case IR_LT: return vbool(g, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""));
  case IR_LE: return vbool(g, LLVMBuildICmp(B, LLVMIntSLE, a, b, ""));
  case IR_GT: return vbool(g, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""));
  case IR_GE: return vbool(g, LLVMBuildICmp(B, LLVMIntSGE, a, b, ""));
  case IR_EQ: return vbool(g, LLVMBuildICmp(B, LLVMIntEQ, a, b, ""));
  case IR_NE: return vbool(g, LLVMBuildICmp(B, LLVMIntNE, a, b, ""));
  case IR_IAND: return LLVMBuildAnd(B, a, b, "");
  case IR_IOR: return LLVMBuildOr(B, a, b, "");
  case IR_IXOR: return LLVMBuildXor(B, a, b, "");
  case IR_SHL:
  case IR_SHR: {
    LLVMValueRef out = LLVMBuildICmp(B, LLVMIntUGT, b, vc64(g, 63), "");
    *bad = LLVMBuildOr(B, *bad, out, "");
    LLVMValueRef c = LLVMBuildSelect(B, out, LLVMConstNull(vt), b, "");
    if (n->op == IR_SHR) return LLVMBuildAShr(B, a, c, "");
    LLVMValueRef r = LLVMBuildShl(B, a, c, "");
    *bad = LLVMBuildOr(B, *bad, LLVMBuildICmp(B, LLVMIntNE, LLVMBuildAShr(B, r, c, ""), a, ""), "");
    return r;
  }
  default: return LLVMConstNull(vt);
  }
}

/* The exact scalar evaluation (errors returned as they occur). */
static LLVMValueRef pat_where_exact(cg *g, const ir_node *n, const lvl *L,
                                    const rowx *R, LLVMValueRef act) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef acc = acc_new(g, ci64(g, 0));
  loop lp;
  LLVMValueRef t = loop_begin(g, &lp, ci64(g, 0), R->cnt, 1);
  LLVMValueRef bit = LLVMBuildShl(B, ci64(g, 1), t, "");
  LLVMBasicBlockRef ev = newbb(g, "where"), join = newbb(g, "join");
  LLVMValueRef a = act ? act : R->valid;
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, LLVMBuildAnd(B, a, bit, ""),
                                   ci64(g, 0), ""),
                  ev, join);
  LLVMPositionBuilderAtEnd(B, ev);
  LLVMValueRef v = ival(g, n->kids[0], L, LLVMBuildAdd(B, R->j0, t, ""));
  acc_or(g, acc, LLVMBuildSelect(B, as_bool(g, v), bit, ci64(g, 0), ""));
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  loop_end(g, &lp);
  return acc_get(g, acc);
}

static LLVMValueRef pat_where(cg *g, const ir_node *n, const lvl *L,
                              const rowx *R, LLVMValueRef act) {
  if (!vectorisable(n->kids[0])) return pat_where_exact(g, n, L, R, act);
  LLVMBuilderRef B = g->B;
  LLVMTypeRef v8 = LLVMVectorType(g->i1, VL);
  LLVMValueRef a = act ? act : R->valid;
  LLVMValueRef acc = acc_new(g, ci64(g, 0)), badw = acc_new(g, ci64(g, 0));
  LLVMValueRef iota[VL];
  for (int k = 0; k < VL; k++) iota[k] = ci64(g, k);
  loop lp;
  LLVMValueRef t = loop_begin(g, &lp, ci64(g, 0), R->cnt, VL);
  LLVMValueRef j = LLVMBuildAdd(B, vsplat64(g, LLVMBuildAdd(B, R->j0, t, "")),
                                LLVMConstVector(iota, VL), "");
  LLVMValueRef lanes = LLVMBuildBitCast(
      B, LLVMBuildTrunc(B, LLVMBuildLShr(B, a, t, ""), g->i8, ""), v8, "");
  LLVMValueRef bad = LLVMConstNull(v8);
  LLVMValueRef v = vne0(g, vval(g, n->kids[0], L, j, &bad));
  LLVMValueRef on = LLVMBuildZExt(
      B, LLVMBuildBitCast(B, LLVMBuildAnd(B, v, lanes, ""), g->i8, ""), g->i64, "");
  LLVMValueRef bw = LLVMBuildZExt(
      B, LLVMBuildBitCast(B, LLVMBuildAnd(B, bad, lanes, ""), g->i8, ""), g->i64, "");
  acc_or(g, acc, LLVMBuildShl(B, on, t, ""));
  acc_or(g, badw, bw);
  loop_end(g, &lp);
  LLVMValueRef res = acc_new(g, acc_get(g, acc));
  LLVMBasicBlockRef slow = newbb(g, "exact"), join = newbb(g, "join");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, acc_get(g, badw), ci64(g, 0), ""),
                  slow, join);
  LLVMPositionBuilderAtEnd(B, slow);
  LLVMBuildStore(B, pat_where_exact(g, n, L, R, act), res);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  return acc_get(g, res);
}

static int random_index(cg *g, const ir_node *n) {
  for (int t = 0; t < g->n_rnd; t++)
    if (g->rnd[t] == n) return t;
  if (g->n_rnd == g->cap_rnd) {
    int cap = g->cap_rnd ? 2 * g->cap_rnd : 4;
    const ir_node **t = realloc(g->rnd, (size_t)cap * sizeof *t);
    if (!t) {
      g->oom = 1;
      return 0;
    }
    g->rnd = t;
    g->cap_rnd = cap;
  }
  g->rnd[g->n_rnd] = n;
  return g->n_rnd++;
}

static LLVMValueRef pat_random(cg *g, const ir_node *n, const lvl *L,
                               const rowx *R) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef r = ival(g, n->kids[0], L, NULL);
  nonneg(g, r, n->kids[0], 0, "the key count r", n);
  LLVMValueRef seed = ival(g, n->kids[1], L, NULL);
  LLVMValueRef acc = acc_new(g, ci64(g, 0));
  LLVMBasicBlockRef go = newbb(g, "random"), join = newbb(g, "join");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, L->lk, ci64(g, 0), ""), go,
                  join);
  LLVMPositionBuilderAtEnd(B, go);
  /* r > KR_RANDOM_INLINE: the driver's per-row key set (kr_random_fn), so
   * that no r costs more than drawing the row once */
  LLVMBasicBlockRef many = newbb(g, "rowset"), few = newbb(g, "draw");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, r, ci64(g, KR_RANDOM_INLINE), ""),
                  many, few);
  LLVMPositionBuilderAtEnd(B, many);
  {
    LLVMTypeRef ps[7] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64, g->i64};
    LLVMTypeRef ft = LLVMFunctionType(g->ptr, ps, 7, 0);
    LLVMValueRef f = env_word(g, g->env, KABI_ENV_RANDOM_ROW, g->ptr);
    LLVMValueRef args[7] = {g->env, ci64(g, random_index(g, n)), L->i, r, seed,
                            L->lk, R->j0};
    LLVMValueRef w = LLVMBuildCall2(B, ft, f, args, 7, "");
    LLVMValueRef sh = LLVMBuildAnd(B, R->j0, ci64(g, 63), "");
    LLVMValueRef w0 = LLVMBuildLoad2(B, g->i64, w, "");
    LLVMValueRef w1 = LLVMBuildLoad2(B, g->i64, gep(g, g->i64, w, ci64(g, 1)), "");
    /* w1 << (64 - sh) as (w1 << 1) << (63 - sh): no shift by 64 */
    LLVMValueRef hi = LLVMBuildShl(B, LLVMBuildShl(B, w1, ci64(g, 1), ""),
                                   LLVMBuildSub(B, ci64(g, 63), sh, ""), "");
    LLVMValueRef bits = LLVMBuildOr(B, LLVMBuildLShr(B, w0, sh, ""), hi, "");
    LLVMBuildStore(B, LLVMBuildAnd(B, bits, R->valid, ""), acc);
    LLVMBuildBr(B, join);
  }
  LLVMPositionBuilderAtEnd(B, few);
  LLVMValueRef base = LLVMBuildXor(
      B,
      LLVMBuildXor(B, LLVMBuildMul(B, seed, ci64(g, (int64_t)0x9E3779B97F4A7C15ull), ""),
                   LLVMBuildMul(B, g->h, ci64(g, (int64_t)0xBF58476D1CE4E5B9ull), ""),
                   ""),
      LLVMBuildMul(B, L->i, ci64(g, (int64_t)0x94D049BB133111EBull), ""), "");
  loop lp;
  LLVMValueRef t = loop_begin(g, &lp, ci64(g, 0), r, 1);
  LLVMValueRef z = LLVMBuildAdd(B, LLVMBuildXor(B, base, t, ""),
                                ci64(g, (int64_t)0x9E3779B97F4A7C15ull), "");
  z = LLVMBuildMul(B, LLVMBuildXor(B, z, LLVMBuildLShr(B, z, ci64(g, 30), ""), ""),
                   ci64(g, (int64_t)0xBF58476D1CE4E5B9ull), "");
  z = LLVMBuildMul(B, LLVMBuildXor(B, z, LLVMBuildLShr(B, z, ci64(g, 27), ""), ""),
                   ci64(g, (int64_t)0x94D049BB133111EBull), "");
  z = LLVMBuildXor(B, z, LLVMBuildLShr(B, z, ci64(g, 31), ""), "");
  acc_or(g, acc, col_bit(g, R, LLVMBuildURem(B, z, L->lk, "")));
  loop_end(g, &lp);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  return acc_get(g, acc);
}

static LLVMValueRef pat_topk(cg *g, const ir_node *n, const lvl *L,
                             const rowx *R) {
  LLVMBuilderRef B = g->B;
  int t = topk_index(g, n);
  LLVMValueRef tks = env_word(g, g->env, KABI_ENV_TOPK, g->ptr);
  LLVMValueRef tk = gep(g, g->i64, tks, ci64(g, KABI_TOPK_WORDS * t));
  check_dyn(g, env_word(g, tk, KABI_TOPK_ERR, g->i64));
  LLVMValueRef sel = env_word(g, tk, KABI_TOPK_SEL, g->ptr);
  LLVMValueRef cntp = env_word(g, tk, KABI_TOPK_CNT, g->ptr);
  LLVMValueRef ibase = env_word(g, tk, KABI_TOPK_IBASE, g->i64);
  LLVMValueRef kst = env_word(g, tk, KABI_TOPK_K, g->i64);
  LLVMValueRef rw = LLVMBuildSub(B, L->i, ibase, "");
  LLVMValueRef c = LLVMBuildLoad2(B, g->i64, gep(g, g->i64, cntp, rw), "");
  check_dyn(g, LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, c, ci64(g, 0), ""),
                               LLVMBuildNeg(B, c, ""), ci64(g, 0), ""));
  LLVMValueRef lst = gep(g, g->i64, sel, LLVMBuildMul(B, rw, kst, ""));
  LLVMValueRef acc = acc_new(g, ci64(g, 0));
  /* the list is ascending: binary search for the first key >= j0, then
   * walk while keys fall inside the row */
  LLVMValueRef lo = acc_new(g, ci64(g, 0)), hi = acc_new(g, c);
  LLVMBasicBlockRef cond = newbb(g, "bs"), body = newbb(g, "bsbody"),
                    done = newbb(g, "bsdone");
  LLVMBuildBr(B, cond);
  LLVMPositionBuilderAtEnd(B, cond);
  LLVMValueRef l = acc_get(g, lo), h = acc_get(g, hi);
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, l, h, ""), body, done);
  LLVMPositionBuilderAtEnd(B, body);
  LLVMValueRef mid = LLVMBuildLShr(B, LLVMBuildAdd(B, l, h, ""), ci64(g, 1), "");
  LLVMValueRef below = LLVMBuildICmp(
      B, LLVMIntSLT, LLVMBuildLoad2(B, g->i64, gep(g, g->i64, lst, mid), ""),
      R->j0, "");
  LLVMBuildStore(B, LLVMBuildSelect(B, below, LLVMBuildAdd(B, mid, ci64(g, 1), ""), l, ""), lo);
  LLVMBuildStore(B, LLVMBuildSelect(B, below, h, mid, ""), hi);
  LLVMBuildBr(B, cond);
  LLVMPositionBuilderAtEnd(B, done);
  LLVMValueRef end = LLVMBuildAdd(B, R->j0, R->cnt, "");
  LLVMValueRef xv = acc_new(g, acc_get(g, lo));
  LLVMBasicBlockRef wc = newbb(g, "walk"), wb = newbb(g, "walkbody"),
                    wd = newbb(g, "walkdone");
  LLVMBuildBr(B, wc);
  LLVMPositionBuilderAtEnd(B, wc);
  LLVMValueRef x = acc_get(g, xv);
  LLVMBasicBlockRef wl = newbb(g, "walkload");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, x, c, ""), wl, wd);
  LLVMPositionBuilderAtEnd(B, wl);
  LLVMValueRef jj = LLVMBuildLoad2(B, g->i64, gep(g, g->i64, lst, x), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, jj, end, ""), wb, wd);
  LLVMPositionBuilderAtEnd(B, wb);
  acc_or(g, acc, col_bit(g, R, jj));
  LLVMBuildStore(B, LLVMBuildAdd(B, x, ci64(g, 1), ""), xv);
  LLVMBuildBr(B, wc);
  LLVMPositionBuilderAtEnd(B, wd);
  return acc_get(g, acc);
}

/* ceil(x / b) for x >= 0, b >= 1, without overflow */
static LLVMValueRef ceil_div(cg *g, LLVMValueRef x, LLVMValueRef b) {
  LLVMValueRef q = LLVMBuildSDiv(g->B, x, b, "");
  LLVMValueRef r = LLVMBuildSRem(g->B, x, b, "");
  return LLVMBuildAdd(g->B, q,
                      zx(g, LLVMBuildICmp(g->B, LLVMIntNE, r, ci64(g, 0), "")),
                      "");
}

static LLVMValueRef blocks_size(cg *g, const ir_node *n, const lvl *L) {
  LLVMValueRef b = ival(g, n->kids[0], L, NULL);
  nonneg(g, b, n->kids[0], 1, "the block size", n);
  return b;
}

/* blocks(b){P}: P on the block row, each block's bit spread over its
 * columns; a block is active when one of its columns is. */
static LLVMValueRef pat_blocks(cg *g, const ir_node *n, const lvl *L,
                               const rowx *R, LLVMValueRef act) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef b = blocks_size(g, n, L);
  LLVMValueRef bc = smin(g, b, ci64(g, BIG));
  lvl in = {LLVMBuildSDiv(B, L->i, b, ""), ceil_div(g, L->lq, b),
            ceil_div(g, L->lk, b)};
  LLVMValueRef J0 = LLVMBuildSDiv(B, R->j0, b, "");
  LLVMValueRef J1 = LLVMBuildSDiv(
      B, LLVMBuildSub(B, LLVMBuildAdd(B, R->j0, R->cnt, ""), ci64(g, 1), ""), b, "");
  LLVMValueRef nb = LLVMBuildAdd(B, LLVMBuildSub(B, J1, J0, ""), ci64(g, 1), "");
  rowx RB = {J0, nb, lowbits(g, nb)};
  LLVMValueRef bact = NULL;
  loop lp;
  if (act) {
    LLVMValueRef acc = acc_new(g, ci64(g, 0));
    LLVMValueRef J = loop_begin(g, &lp, ci64(g, 0), nb, 1);
    LLVMValueRef s = LLVMBuildMul(B, LLVMBuildAdd(B, J0, J, ""), b, "");
    LLVMValueRef w = LLVMBuildAnd(B, range_bits(g, R, s, LLVMBuildAdd(B, s, bc, "")),
                                  act, "");
    acc_or(g, acc, LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntNE, w, ci64(g, 0), ""),
                                   LLVMBuildShl(B, ci64(g, 1), J, ""), ci64(g, 0), ""));
    loop_end(g, &lp);
    bact = acc_get(g, acc);
  }
  LLVMValueRef inner = pat(g, n->kids[1], &in, &RB, bact);
  LLVMValueRef acc = acc_new(g, ci64(g, 0));
  LLVMValueRef J = loop_begin(g, &lp, ci64(g, 0), nb, 1);
  LLVMValueRef s = LLVMBuildMul(B, LLVMBuildAdd(B, J0, J, ""), b, "");
  LLVMValueRef on = LLVMBuildAnd(B, LLVMBuildLShr(B, inner, J, ""), ci64(g, 1), "");
  acc_or(g, acc, LLVMBuildAnd(B, range_bits(g, R, s, LLVMBuildAdd(B, s, bc, "")),
                              LLVMBuildNeg(B, on, ""), ""));
  loop_end(g, &lp);
  return acc_get(g, acc);
}

/* --- route(C) ---------------------------------------------------------------
 * The driver computes the cluster ids once per run (runtime/route.h) and
 * gives the mask code those of the (b, h) at hand in kr_env: bit t is
 * route_k[j0 + t] == route_q[row of i], 64 compares in one vector for a full
 * word.  C without centroids is an error wherever route is evaluated (its
 * count is a constant here, v2_supported), reported by spat_errat first. */

static int64_t route_count(cg *g, const ir_node *n) {
  return g->p->inputs[n->value].dims[1]->value;
}

static LLVMValueRef pat_route(cg *g, const ir_node *n, const lvl *L, const rowx *R) {
  LLVMBuilderRef B = g->B;
  if (route_count(g, n) < 1) return ci64(g, 0);
  LLVMValueRef lq = env_word(g, g->env, KABI_ENV_LQ, g->i64), lk = g->lk_tok;
  LLVMValueRef off = g->p->top_left ? ci64(g, 0)
                     : LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLE, lq, lk, ""),
                                       LLVMBuildSub(B, lk, lq, ""), ci64(g, 0), "");
  LLVMValueRef rq = env_word(g, g->env, KABI_ENV_ROUTE_Q, g->ptr);
  LLVMValueRef rk = env_word(g, g->env, KABI_ENV_ROUTE_K, g->ptr);
  LLVMValueRef cq = LLVMBuildLoad2(B, g->i32, gep(g, g->i32, rq, LLVMBuildSub(B, L->i, off, "")), "");
  LLVMValueRef kp = gep(g, g->i32, rk, R->j0);
  LLVMValueRef res = acc_new(g, ci64(g, 0));
  LLVMBasicBlockRef full = newbb(g, "route64"), part = newbb(g, "routen"),
                    join = newbb(g, "routed");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntEQ, R->cnt, ci64(g, 64), ""), full, part);
  LLVMPositionBuilderAtEnd(B, full);
  LLVMTypeRef v64 = LLVMVectorType(g->i32, 64);
  LLVMValueRef ld = LLVMBuildLoad2(B, v64, kp, "");
  LLVMSetAlignment(ld, 4);
  LLVMValueRef one = LLVMBuildInsertElement(B, LLVMGetPoison(v64), cq, LLVMConstInt(g->i32, 0, 0), "");
  LLVMValueRef spl = LLVMBuildShuffleVector(B, one, LLVMGetPoison(v64),
                                            LLVMConstNull(LLVMVectorType(g->i32, 64)), "");
  LLVMBuildStore(B, LLVMBuildBitCast(B, LLVMBuildICmp(B, LLVMIntEQ, ld, spl, ""), g->i64, ""),
                 res);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, part);
  loop lp;
  LLVMValueRef t = loop_begin(g, &lp, ci64(g, 0), R->cnt, 1);
  LLVMValueRef kv = LLVMBuildLoad2(B, g->i32, gep(g, g->i32, kp, t), "");
  acc_or(g, res, LLVMBuildShl(B, zx(g, LLVMBuildICmp(B, LLVMIntEQ, kv, cq, "")), t, ""));
  loop_end(g, &lp);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  return acc_get(g, res);
}

static LLVMValueRef pat_node(cg *g, const ir_node *n, const lvl *L,
                             const rowx *R, LLVMValueRef act) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef i = L->i;
  switch (n->op) {
  case IR_FULL: return R->valid;
  case IR_NONE: return ci64(g, 0);
  case IR_CAUSAL:
    return range_bits(g, R, R->j0, LLVMBuildAdd(B, i, ci64(g, 1), ""));
  case IR_WHERE: return pat_where(g, n, L, R, act);
  case IR_WINDOW: {
    LLVMValueRef l = ival(g, n->kids[0], L, NULL);
    nonneg(g, l, n->kids[0], 0, "the left size", n);
    LLVMValueRef r = ival(g, n->kids[1], L, NULL);
    nonneg(g, r, n->kids[1], 0, "the right size", n);
    l = smin(g, l, ci64(g, BIG));
    r = smin(g, r, ci64(g, BIG));
    return range_bits(g, R, LLVMBuildSub(B, i, l, ""),
                      LLVMBuildAdd(B, LLVMBuildAdd(B, i, r, ""), ci64(g, 1), ""));
  }
  case IR_DILATED: {
    LLVMValueRef w = ival(g, n->kids[0], L, NULL);
    nonneg(g, w, n->kids[0], 0, "the width w", n);
    LLVMValueRef d = ival(g, n->kids[1], L, NULL);
    nonneg(g, d, n->kids[1], 1, "the dilation d", n);
    LLVMValueRef args[2] = {w, d};
    LLVMValueRef m = call_intr(g, "llvm.smul.with.overflow", &g->i64, 1, args, 2);
    LLVMValueRef reach = LLVMBuildSelect(B, LLVMBuildExtractValue(B, m, 1, ""),
                                         ci64(g, BIG),
                                         smin(g, LLVMBuildExtractValue(B, m, 0, ""),
                                              ci64(g, BIG)), "");
    return stride_bits(g, R, i, d, LLVMBuildSub(B, i, reach, ""),
                       LLVMBuildAdd(B, LLVMBuildAdd(B, i, reach, ""), ci64(g, 1), ""));
  }
  case IR_BLOCK: {
    LLVMValueRef b = ival(g, n->kids[0], L, NULL);
    nonneg(g, b, n->kids[0], 1, "the block size", n);
    LLVMValueRef lo = LLVMBuildMul(B, LLVMBuildSDiv(B, i, b, ""), b, "");
    return range_bits(g, R, lo, LLVMBuildAdd(B, lo, smin(g, b, ci64(g, BIG)), ""));
  }
  case IR_STRIDE: {
    LLVMValueRef s = ival(g, n->kids[0], L, NULL);
    nonneg(g, s, n->kids[0], 1, "the stride", n);
    return stride_bits(g, R, i, s, R->j0, LLVMBuildAdd(B, R->j0, R->cnt, ""));
  }
  case IR_ROWS:
    return LLVMBuildSelect(B, set_has(g, n->kids[0], L, i), R->valid, ci64(g, 0), "");
  case IR_COLS: return cols_bits(g, n->kids[0], L, R);
  case IR_GLOBAL: {
    LLVMValueRef res = acc_new(g, R->valid);
    LLVMBasicBlockRef cols = newbb(g, "cols"), join = newbb(g, "join");
    LLVMBuildCondBr(B, set_has(g, n->kids[0], L, i), join, cols);
    LLVMPositionBuilderAtEnd(B, cols);
    LLVMBuildStore(B, cols_bits(g, n->kids[0], L, R), res);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    return acc_get(g, res);
  }
  case IR_RANDOM: return pat_random(g, n, L, R);
  case IR_TOPK: return pat_topk(g, n, L, R);
  case IR_ROUTE: return pat_route(g, n, L, R);
  case IR_OR:
  case IR_AND:
  case IR_MINUS: {
    LLVMValueRef a = pat(g, n->kids[0], L, R, act);
    LLVMValueRef base = act ? act : R->valid;
    LLVMValueRef act2 = LLVMBuildAnd(B, base, n->op == IR_OR ? LLVMBuildNot(B, a, "") : a, "");
    LLVMValueRef b = pat(g, n->kids[1], L, R, act2);
    if (n->op == IR_OR) return LLVMBuildOr(B, a, b, "");
    if (n->op == IR_AND) return LLVMBuildAnd(B, a, b, "");
    return LLVMBuildAnd(B, a, LLVMBuildNot(B, b, ""), "");
  }
  case IR_COMPL:
    return LLVMBuildAnd(B, R->valid,
                        LLVMBuildNot(B, pat(g, n->kids[0], L, R, act), ""), "");
  case IR_PSEL: {
    LLVMValueRef c = as_bool(g, ival(g, n->kids[0], L, NULL));
    LLVMValueRef res = acc_new(g, ci64(g, 0));
    LLVMBasicBlockRef tb = newbb(g, "then"), eb = newbb(g, "else"),
                      join = newbb(g, "join");
    LLVMBuildCondBr(B, c, tb, eb);
    LLVMPositionBuilderAtEnd(B, tb);
    LLVMBuildStore(B, pat(g, n->kids[1], L, R, act), res);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, eb);
    LLVMBuildStore(B, pat(g, n->kids[2], L, R, act), res);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    return acc_get(g, res);
  }
  case IR_BLOCKS: return pat_blocks(g, n, L, R, act);
  case IR_DIAG: return diag_bits(g, n->kids[0], L, R);
  default: return ci64(g, 0);
  }
}

static LLVMValueRef pat_call(cg *g, struct cg_nd *x, const lvl *L,
                             const rowx *R, LLVMValueRef act);
static struct cg_nd *outlined(cg *g, const ir_node *n);

/* The row mask of P; when act is given and empty the node is not evaluated
 * at all (no errors, no extern calls). */
static LLVMValueRef pat(cg *g, const ir_node *n, const lvl *L, const rowx *R,
                        LLVMValueRef act) {
  struct cg_nd *x = outlined(g, n);
  if (x) return pat_call(g, x, L, R, act);
  if (!act || n->op == IR_FULL || n->op == IR_NONE || n->op == IR_CAUSAL)
    return pat_node(g, n, L, R, act);
  LLVMValueRef res = acc_new(g, ci64(g, 0));
  LLVMBasicBlockRef go = newbb(g, "active"), join = newbb(g, "join");
  LLVMBuildCondBr(g->B, LLVMBuildICmp(g->B, LLVMIntNE, act, ci64(g, 0), ""), go,
                  join);
  LLVMPositionBuilderAtEnd(g->B, go);
  LLVMBuildStore(g->B, pat_node(g, n, L, R, act), res);
  LLVMBuildBr(g->B, join);
  LLVMPositionBuilderAtEnd(g->B, join);
  return acc_get(g, res);
}

/* --- functions ------------------------------------------------------------- */

static void load_env(cg *g) {
  g->h = env_word(g, g->env, KABI_ENV_H, g->i64);
  g->H = env_word(g, g->env, KABI_ENV_NHEADS, g->i64);
  g->lk_tok = env_word(g, g->env, KABI_ENV_LK, g->i64);
}

/* Integer-only functions: their loops run at most 64 times, vectorising
 * them would only cost compile time. */
static void scalar_only(cg *g) {
  unsigned k = LLVMGetEnumAttributeKindForName("noimplicitfloat", 15);
  LLVMAddAttributeAtIndex(g->fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(g->C, k, 0));
}

static void build_mask_fn(cg *g, int idx, const ir_node *root) {
  char name[32];
  snprintf(name, sizeof name, KABI_MASK_FMT, idx);
  LLVMTypeRef ps[7] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64, g->ptr};
  begin_fn(g, name, g->i32, ps, 7);
  scalar_only(g);
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  lvl L = {LLVMGetParam(g->fn, 1), LLVMGetParam(g->fn, 4),
           LLVMGetParam(g->fn, 5)};
  rowx R = {LLVMGetParam(g->fn, 2), LLVMGetParam(g->fn, 3), NULL};
  R.valid = lowbits(g, R.cnt);
  g->top_R = &R;
  LLVMValueRef bits = pat(g, root, &L, &R, NULL);
  g->top_R = NULL;
  LLVMBuildStore(g->B, LLVMBuildAnd(g->B, bits, R.valid, ""),
                 LLVMGetParam(g->fn, 6));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
}

/* --- bounded functions ---------------------------------------------------
 * LLVM's optimiser and x86 back end are superlinear in the size of one
 * function (a balanced union of 512 windows took 33 s, nearly all in the
 * X86 domain reassignment pass), and the IR is a DAG (sema shares lets and
 * calls), so emitting it as one tree is exponential.  Hence: a pattern node
 * with several parents, or whose inline code would exceed SPAT_JIT_FN_NODES
 * IR nodes, becomes a function of its own (noinline, internal),
 *     i32 spat_sub_<k>(env, i, j0, cnt, lq, lk, act, *out)
 * with the mask ABI plus the activity word, emitted once and called from
 * each use.  Every function is then at most about SPAT_JIT_FN_NODES nodes
 * (or one integer expression), and the module is linear in the DAG.  Within
 * a function, a sub-pattern used again on the same row reuses its word
 * where it was already evaluated (a node's word is exact on the columns it
 * was active on), so run time stays linear in the DAG for the usual
 * sharing, e.g. p1 = p0 | (p0 & q).  Before emitting anything the emitted
 * size is summed; over SPAT_MAX_JIT_NODES, or an integer expression over
 * SPAT_MAX_JIT_EXPR_NODES, is an error at the node (not a long compile). */

typedef struct cg_nd {
  const ir_node *n;
  int refs;                /* parent edges */
  bool done;               /* sizes computed */
  bool own;                /* has a function of its own */
  int64_t size;            /* inline size (pattern) / tree size (integer) */
  LLVMValueRef fn;         /* own: its function */
  LLVMValueRef memo_fn;    /* the function memo_word/memo_act belong to */
  LLVMValueRef memo_word, memo_act;
  LLVMValueRef efn;        /* own: its spat_errat part */
  LLVMValueRef err_fn;     /* errat: walked in this function, */
  int err_region;          /* in this region (see err_walk) */
} cg_nd;

#define SIZE_CAP ((int64_t)1 << 40)

static size_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x;
}

static cg_nd *nd_get(cg *g, const ir_node *n) {
  if (!g->hcap) return NULL;
  for (size_t k = ptr_hash(n) & (g->hcap - 1);; k = (k + 1) & (g->hcap - 1)) {
    if (!g->hkey[k]) return NULL;
    if (g->hkey[k] == n) return &g->nd[g->hval[k]];
  }
}

static cg_nd *nd_add(cg *g, const ir_node *n) {
  if (2 * ((size_t)g->n_nd + 1) > g->hcap) {
    size_t cap = g->hcap ? 2 * g->hcap : 256;
    const ir_node **hk = calloc(cap, sizeof *hk);
    int *hv = calloc(cap, sizeof *hv);
    if (!hk || !hv) {
      free(hk), free(hv);
      return NULL;
    }
    for (size_t k = 0; k < g->hcap; k++)
      if (g->hkey[k]) {
        size_t q = ptr_hash(g->hkey[k]) & (cap - 1);
        while (hk[q]) q = (q + 1) & (cap - 1);
        hk[q] = g->hkey[k], hv[q] = g->hval[k];
      }
    free(g->hkey), free(g->hval);
    g->hkey = hk, g->hval = hv, g->hcap = cap;
  }
  if (g->n_nd == g->cap_nd) {
    int cap = g->cap_nd ? 2 * g->cap_nd : 256;
    cg_nd *v = realloc(g->nd, sizeof *v * (size_t)cap);
    if (!v) return NULL;
    g->nd = v, g->cap_nd = cap;
  }
  size_t q = ptr_hash(n) & (g->hcap - 1);
  while (g->hkey[q]) q = (q + 1) & (g->hcap - 1);
  g->hkey[q] = n, g->hval[q] = g->n_nd;
  cg_nd *x = &g->nd[g->n_nd++];
  memset(x, 0, sizeof *x);
  x->n = n;
  return x;
}

/* Pass 1: parent edges of every node (each node's kids visited once). */
static int count_refs(cg *g, const ir_node *n) {
  if (!n) return 1;
  cg_nd *x = nd_get(g, n);
  if (x) {
    x->refs++;
    return 1;
  }
  if (!(x = nd_add(g, n))) return 0;
  x->refs = 1;
  for (int k = 0; k < n->n_kids; k++)
    if (!count_refs(g, n->kids[k])) return 0;
  return 1;
}

static bool may_own(const ir_node *n) {
  return ir_op_kind[n->op] == IR_PAT && n->op != IR_FULL && n->op != IR_NONE &&
         n->op != IR_CAUSAL;
}

typedef struct cg_budget {
  int64_t total;           /* nodes emitted over every function */
  const ir_node *expr;     /* an integer expression over the limit */
  int64_t expr_size;
} cg_budget;

static int64_t sat_add(int64_t a, int64_t b) {
  return a + b > SIZE_CAP ? SIZE_CAP : a + b;
}

/* Pass 2, post-order: sizes, and which nodes get a function. */
static void size_of(cg *g, const ir_node *n, bool is_root, cg_budget *bu) {
  cg_nd *x = n ? nd_get(g, n) : NULL;
  if (!x || x->done) return;
  x->done = true;
  int64_t sz = 1;
  for (int k = 0; k < n->n_kids; k++) {
    const ir_node *kid = n->kids[k];
    if (!kid) continue;
    size_of(g, kid, false, bu);
    cg_nd *y = nd_get(g, kid);
    int64_t ks = y->own ? 1 : y->size;
    /* where: vector and scalar code for the predicate */
    if (n->op == IR_WHERE) ks = sat_add(ks, ks);
    sz = sat_add(sz, ks);
    if (ir_op_kind[n->op] == IR_PAT && ir_op_kind[kid->op] != IR_PAT &&
        y->size > SPAT_MAX_JIT_EXPR_NODES && !bu->expr)
      bu->expr = kid, bu->expr_size = y->size;
  }
  x->size = sz;
  if (!is_root && may_own(n) && (x->refs > 1 || sz > SPAT_JIT_FN_NODES)) {
    x->own = true;
    bu->total = sat_add(bu->total, sz);
    g->order[g->n_order++] = (int)(x - g->nd);
  }
}

static cg_nd *outlined(cg *g, const ir_node *n) {
  cg_nd *x = nd_get(g, n);
  return x && x->own && x->fn ? x : NULL;
}

/* The entry block (no terminator until end_fn) runs first: state set there
 * holds at every use in the function. */
static LLVMValueRef entry_var(cg *g, const char *name) {
  LLVMValueRef a = alloca_t(g, g->i64, name);
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(g->B);
  LLVMPositionBuilderAtEnd(g->B, g->allocas);
  LLVMBuildStore(g->B, ci64(g, 0), a);
  LLVMPositionBuilderAtEnd(g->B, cur);
  return a;
}

static LLVMTypeRef sub_type(cg *g) {
  LLVMTypeRef ps[8] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64, g->i64, g->ptr};
  return LLVMFunctionType(g->i32, ps, 8, 0);
}

static LLVMValueRef pat_call(cg *g, cg_nd *x, const lvl *L, const rowx *R,
                             LLVMValueRef act) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef a = act ? act : R->valid;
  LLVMValueRef out = alloca_t(g, g->i64, "sub");
  bool memo = R == g->top_R;
  if (memo && x->memo_fn != g->fn) {
    x->memo_fn = g->fn;
    x->memo_word = entry_var(g, "memo");
    x->memo_act = entry_var(g, "memoact");
  }
  LLVMValueRef seen = memo ? LLVMBuildLoad2(B, g->i64, x->memo_act, "") : NULL;
  LLVMValueRef need = memo ? LLVMBuildAnd(B, a, LLVMBuildNot(B, seen, ""), "") : a;
  LLVMValueRef res = acc_new(g, memo ? LLVMBuildLoad2(B, g->i64, x->memo_word, "")
                                     : ci64(g, 0));
  LLVMBasicBlockRef go = newbb(g, "call"), join = newbb(g, "join");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, need, ci64(g, 0), ""), go, join);
  LLVMPositionBuilderAtEnd(B, go);
  LLVMValueRef args[8] = {g->env, L->i, R->j0, R->cnt, L->lq, L->lk, need, out};
  LLVMValueRef rc = LLVMBuildCall2(B, sub_type(g), x->fn, args, 8, "");
  check_dyn(g, LLVMBuildZExt(B, rc, g->i64, ""));
  LLVMValueRef w = LLVMBuildLoad2(B, g->i64, out, "");
  if (memo) {
    /* exact on seen | need from now on */
    LLVMValueRef old = LLVMBuildAnd(B, acc_get(g, res), seen, "");
    w = LLVMBuildOr(B, old, LLVMBuildAnd(B, w, need, ""), "");
    LLVMBuildStore(B, w, x->memo_word);
    LLVMBuildStore(B, LLVMBuildOr(B, seen, need, ""), x->memo_act);
  }
  LLVMBuildStore(B, w, res);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  return acc_get(g, res);
}

static void build_sub_fn(cg *g, cg_nd *x) {
  char name[32];
  snprintf(name, sizeof name, "spat_sub_%d", g->fn_seq++);
  g->fn = LLVMAddFunction(g->M, name, sub_type(g));
  LLVMSetLinkage(g->fn, LLVMInternalLinkage);
  fn_attrs(g, g->fn);
  unsigned k = LLVMGetEnumAttributeKindForName("noinline", 8);
  LLVMAddAttributeAtIndex(g->fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(g->C, k, 0));
  scalar_only(g);
  g->allocas = newbb(g, "entry");
  LLVMPositionBuilderAtEnd(g->B, newbb(g, "start"));
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  lvl L = {LLVMGetParam(g->fn, 1), LLVMGetParam(g->fn, 4),
           LLVMGetParam(g->fn, 5)};
  rowx R = {LLVMGetParam(g->fn, 2), LLVMGetParam(g->fn, 3), NULL};
  R.valid = lowbits(g, R.cnt);
  g->top_R = &R;
  LLVMValueRef bits = pat_node(g, x->n, &L, &R, LLVMGetParam(g->fn, 6));
  LLVMBuildStore(g->B, bits, LLVMGetParam(g->fn, 7));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
  g->top_R = NULL;
  x->fn = g->fn; /* set last: inside its own body the node is inlined */
}

/* Sizes every node, checks the budget, emits the sub-pattern functions
 * (kids before parents).  0 with a message in err when over budget. */
static int plan_functions(cg *g, char *err, size_t errlen) {
  if (!count_refs(g, g->p->root) ||
      !(g->order = malloc(sizeof *g->order * (size_t)g->n_nd))) {
    g->oom = 1;
    return 1;
  }
  cg_budget bu = {0, NULL, 0};
  size_of(g, g->p->root, true, &bu);
  bu.total = sat_add(bu.total, nd_get(g, g->p->root)->size);
  const ir_node *bad = bu.expr ? bu.expr : g->p->root;
  if (bu.expr || bu.total > SPAT_MAX_JIT_NODES) {
    char loc[256] = "";
    if (g->p->diag && bad->span.src >= 0) diag_loc(g->p->diag, bad->span, loc, sizeof loc);
    if (bu.expr)
      snprintf(err, errlen, "%s%serror: integer expression too large for the JIT "
               "(%lld nodes after inlining; the limit is %d); run the pattern with "
               "the interpreter (--backend interp)", loc, loc[0] ? ": " : "",
               (long long)bu.expr_size, SPAT_MAX_JIT_EXPR_NODES);
    else
      snprintf(err, errlen, "%s%serror: pattern too large for the JIT (%lld%s IR "
               "nodes to compile; the limit is %d); run it with the interpreter "
               "(--backend interp)", loc, loc[0] ? ": " : "",
               (long long)bu.total, bu.total >= SIZE_CAP ? "+" : "", SPAT_MAX_JIT_NODES);
    return 0;
  }
  for (int k = 0; k < g->n_order; k++) build_sub_fn(g, &g->nd[g->order[k]]);
  return 1;
}

/* Path from n down to target: the enclosing BLOCKS nodes, outermost first. */
static int blocks_path(const ir_node *n, const ir_node *target,
                       const ir_node **path, int depth, int *len) {
  if (n == target) {
    *len = depth;
    return 1;
  }
  if (n->op == IR_BLOCKS) path[depth++] = n;
  if (depth >= 256) return 0;
  for (int k = 0; k < n->n_kids; k++)
    if (n->kids[k] && blocks_path(n->kids[k], target, path, depth, len))
      return 1;
  return 0;
}

static void build_tkinfo_fn(cg *g, int t) {
  char name[32];
  snprintf(name, sizeof name, KABI_TKINFO_FMT, t);
  LLVMTypeRef ps[2] = {g->ptr, g->ptr};
  begin_fn(g, name, g->i32, ps, 2);
  scalar_only(g);
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  LLVMValueRef out = LLVMGetParam(g->fn, 1);
  lvl L = {ci64(g, 0), env_word(g, g->env, KABI_ENV_LQ, g->i64), g->lk_tok};
  LLVMValueRef gran = ci64(g, 1);
  const ir_node *path[256];
  int len = 0;
  blocks_path(g->p->root, g->tk[t], path, 0, &len);
  for (int k = 0; k < len; k++) {
    LLVMValueRef b = blocks_size(g, path[k], &L);
    L.lq = ceil_div(g, L.lq, b);
    L.lk = ceil_div(g, L.lk, b);
    LLVMValueRef args[2] = {gran, b};
    LLVMValueRef r = call_intr(g, "llvm.smul.with.overflow", &g->i64, 1, args, 2);
    gran = LLVMBuildSelect(g->B, LLVMBuildExtractValue(g->B, r, 1, ""),
                           ci64(g, INT64_MAX),
                           LLVMBuildExtractValue(g->B, r, 0, ""), "");
  }
  LLVMValueRef k = ival(g, g->tk[t]->kids[0], &L, NULL);
  nonneg(g, k, g->tk[t]->kids[0], 0, "k", g->tk[t]);
  LLVMValueRef vals[4] = {k, gran, L.lq, L.lk};
  for (int x = 0; x < 4; x++)
    LLVMBuildStore(g->B, vals[x], gep(g, g->i64, out, ci64(g, x)));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
}

/* --- spat_errat: the contract's run-time errors at one point ----------------
 * The first error of evaluating the whole pattern at (h, i, j) in the
 * interpreter's order (runtime/interp.c): every operand of | & - ! (pattern
 * operators do not hide errors of their operands), the chosen arm of ?:,
 * primitive arguments before sub-patterns, kids left to right, and where
 * `whole` is set, P of each topk over its whole row.  No mask bits. */

static void err_set(cg *g, const ir_node *s, const lvl *L) {
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    LLVMValueRef w;
    if (it->op == IR_INROW) {
      input_row(g, it, L, &w, NULL);
    } else if (it->op == IR_RANGE) {
      ival(g, it->kids[0], L, NULL);
      ival(g, it->kids[1], L, NULL);
    } else {
      ival(g, it, L, NULL);
    }
  }
}

/* Regions of one errat function: code of a region runs after that of its
 * ancestors with the same (i, j, granularity), so a shared node walked in an
 * ancestor region need not be walked again (its errors, if any, would have
 * returned already).  A ?: arm is a child region; blocks and topk's row
 * loop change the point, so they open a root region. */
static int eregion_open(cg *g, bool same_point) {
  if (g->n_eregion == g->cap_eregion) {
    int cap = g->cap_eregion ? 2 * g->cap_eregion : 64;
    int *v = realloc(g->eparent, sizeof *v * (size_t)cap);
    if (!v) {
      g->oom = 1;
      return g->eregion;
    }
    g->eparent = v, g->cap_eregion = cap;
  }
  int prev = g->eregion;
  g->eparent[g->n_eregion] = same_point ? g->eregion : -1;
  g->eregion = g->n_eregion++;
  return prev;
}

static bool eregion_sees(cg *g, int r) {
  for (int q = g->eregion; q >= 0; q = g->eparent[q])
    if (q == r) return true;
  return false;
}

static void err_node(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                     LLVMValueRef whole);

static LLVMTypeRef errsub_type(cg *g) {
  LLVMTypeRef ps[7] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64, g->ptr};
  return LLVMFunctionType(g->i32, ps, 7, 0);
}

/* A sub-pattern with a function of its own is walked by a call of its
 * errat part, once per region (above). */
static void err_walk(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                     LLVMValueRef whole) {
  cg_nd *x = nd_get(g, n);
  if (!x || !x->own || !x->efn) {
    err_node(g, n, L, j, whole);
    return;
  }
  if (x->err_fn == g->fn && eregion_sees(g, x->err_region)) return;
  LLVMValueRef args[7] = {g->env, L->i, j ? j : ci64(g, 0), L->lq, L->lk, whole,
                          g->detail};
  LLVMValueRef rc = LLVMBuildCall2(g->B, errsub_type(g), x->efn, args, 7, "");
  check_dyn(g, LLVMBuildZExt(g->B, rc, g->i64, ""));
  x->err_fn = g->fn, x->err_region = g->eregion;
}

static void errat_begin(cg *g) {
  g->n_eregion = 0;
  g->eregion = -1;
  eregion_open(g, false);
}

static void build_errsub_fn(cg *g, cg_nd *x) {
  char name[32];
  snprintf(name, sizeof name, "spat_errsub_%d", g->fn_seq++);
  g->fn = LLVMAddFunction(g->M, name, errsub_type(g));
  LLVMSetLinkage(g->fn, LLVMInternalLinkage);
  fn_attrs(g, g->fn);
  unsigned k = LLVMGetEnumAttributeKindForName("noinline", 8);
  LLVMAddAttributeAtIndex(g->fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(g->C, k, 0));
  scalar_only(g);
  g->allocas = newbb(g, "entry");
  LLVMPositionBuilderAtEnd(g->B, newbb(g, "start"));
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  g->detail = LLVMGetParam(g->fn, 6);
  lvl L = {LLVMGetParam(g->fn, 1), LLVMGetParam(g->fn, 3), LLVMGetParam(g->fn, 4)};
  errat_begin(g);
  err_node(g, x->n, &L, LLVMGetParam(g->fn, 2), LLVMGetParam(g->fn, 5));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
  g->detail = NULL;
  x->efn = g->fn; /* set last: inside its own body the node is walked inline */
}

/* route(C) without centroids: the interpreter's message, H the run's. */
static void err_route(cg *g, const ir_node *n) {
  const ir_input *in = &g->p->inputs[n->value];
  int64_t c = route_count(g, n);
  if (c >= 1) return;
  char what[320];
  snprintf(what, sizeof what, "route: centroids '%s' are [\1, %lld, %lld], need [H = \1, "
           "n >= 1, D = %lld]", in->name, (long long)c, (long long)g->D, (long long)g->D);
  check_v(g, LLVMConstInt(g->i1, 1, 0), n, what, g->H, NULL);
}

static void err_node(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j,
                     LLVMValueRef whole) {
  LLVMBuilderRef B = g->B;
  LLVMValueRef v;
  int outer;
  switch (n->op) {
  case IR_WHERE: ival(g, n->kids[0], L, j); return;
  case IR_WINDOW:
    v = ival(g, n->kids[0], L, NULL);
    nonneg(g, v, n->kids[0], 0, "the left size", n);
    v = ival(g, n->kids[1], L, NULL);
    nonneg(g, v, n->kids[1], 0, "the right size", n);
    return;
  case IR_DILATED:
    v = ival(g, n->kids[0], L, NULL);
    nonneg(g, v, n->kids[0], 0, "the width w", n);
    v = ival(g, n->kids[1], L, NULL);
    nonneg(g, v, n->kids[1], 1, "the dilation d", n);
    return;
  case IR_BLOCK:
    nonneg(g, ival(g, n->kids[0], L, NULL), n->kids[0], 1, "the block size", n);
    return;
  case IR_STRIDE:
    nonneg(g, ival(g, n->kids[0], L, NULL), n->kids[0], 1, "the stride", n);
    return;
  case IR_ROWS: case IR_COLS: case IR_GLOBAL: case IR_DIAG:
    err_set(g, n->kids[0], L);
    return;
  case IR_RANDOM:
    nonneg(g, ival(g, n->kids[0], L, NULL), n->kids[0], 0, "the key count r", n);
    ival(g, n->kids[1], L, NULL);
    return;
  case IR_TOPK: {
    nonneg(g, ival(g, n->kids[0], L, NULL), n->kids[0], 0, "k", n);
    LLVMBasicBlockRef go = newbb(g, "row"), join = newbb(g, "rowdone");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, whole, ci64(g, 0), ""), go, join);
    LLVMPositionBuilderAtEnd(B, go);
    loop lp;
    LLVMValueRef jj = loop_begin(g, &lp, ci64(g, 0), L->lk, 1);
    outer = eregion_open(g, false);
    /* nested topk rows: once per row, as the interpreter caches them */
    err_walk(g, n->kids[1], L, jj,
             zx(g, LLVMBuildICmp(B, LLVMIntEQ, jj, ci64(g, 0), "")));
    g->eregion = outer;
    loop_end(g, &lp);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    return;
  }
  case IR_OR: case IR_AND: case IR_MINUS:
    err_walk(g, n->kids[0], L, j, whole);
    err_walk(g, n->kids[1], L, j, whole);
    return;
  case IR_COMPL: err_walk(g, n->kids[0], L, j, whole); return;
  case IR_ROUTE: err_route(g, n); return;
  case IR_PSEL: {
    LLVMValueRef c = as_bool(g, ival(g, n->kids[0], L, NULL));
    LLVMBasicBlockRef tb = newbb(g, "then"), eb = newbb(g, "else"),
                      join = newbb(g, "join");
    LLVMBuildCondBr(B, c, tb, eb);
    LLVMPositionBuilderAtEnd(B, tb);
    outer = eregion_open(g, true);
    err_walk(g, n->kids[1], L, j, whole);
    g->eregion = outer;
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, eb);
    outer = eregion_open(g, true);
    err_walk(g, n->kids[2], L, j, whole);
    g->eregion = outer;
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    return;
  }
  case IR_BLOCKS: {
    LLVMValueRef b = blocks_size(g, n, L);
    lvl in = {LLVMBuildSDiv(B, L->i, b, ""), ceil_div(g, L->lq, b),
              ceil_div(g, L->lk, b)};
    outer = eregion_open(g, false);
    err_walk(g, n->kids[1], &in, LLVMBuildSDiv(B, j, b, ""), whole);
    g->eregion = outer;
    return;
  }
  default: return; /* full, none, causal */
  }
}

static void build_errat_fn(cg *g) {
  for (int k = 0; k < g->n_order; k++) build_errsub_fn(g, &g->nd[g->order[k]]);
  LLVMTypeRef ps[5] = {g->ptr, g->i64, g->i64, g->i64, g->ptr};
  begin_fn(g, KABI_ERRAT, g->i32, ps, 5);
  scalar_only(g);
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  g->detail = LLVMGetParam(g->fn, 4);
  lvl L = {LLVMGetParam(g->fn, 1), env_word(g, g->env, KABI_ENV_LQ, g->i64),
           g->lk_tok};
  check_shapes(g);
  errat_begin(g);
  err_walk(g, g->p->root, &L, LLVMGetParam(g->fn, 2), LLVMGetParam(g->fn, 3));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
  g->detail = NULL;
}

/* --- spat_serrat: errors of `with score E` at one allowed pair -------------
 * The first run-time error of evaluating E at (h, i, j) in the
 * interpreter's order (eval_f: kids left to right, the chosen arm of ?:,
 * each index of a float input checked after it is computed).  The score
 * tiles only flag that some pair failed; the driver finds the first one
 * with this (runtime/kernel_score.c). */
static void serr_node(cg *g, const ir_node *n, const lvl *L, LLVMValueRef j) {
  LLVMBuilderRef B = g->B;
  switch (n->op) {
  case IR_FSCORE: case IR_FCONST: return;
  case IR_FCVT: ival(g, n->kids[0], L, j); return;
  case IR_FINPUT: {
    const ir_input *in = &g->p->inputs[n->value];
    for (int k = 0; k < n->n_kids; k++) {
      LLVMValueRef x = ival(g, n->kids[k], L, j), d = ival(g, in->dims[k], L, NULL);
      char what[300];
      snprintf(what, sizeof what,
               "index \001 of dimension %d of input '%s' is out of range [0, \002)", k + 1,
               in->name);
      check_v(g, LLVMBuildICmp(B, LLVMIntUGE, x, d, ""), n, what, x, d);
    }
    return;
  }
  case IR_FSEL: {
    LLVMValueRef c = as_bool(g, ival(g, n->kids[0], L, j));
    LLVMBasicBlockRef tb = newbb(g, "then"), eb = newbb(g, "else"), join = newbb(g, "join");
    LLVMBuildCondBr(B, c, tb, eb);
    LLVMPositionBuilderAtEnd(B, tb);
    serr_node(g, n->kids[1], L, j);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, eb);
    serr_node(g, n->kids[2], L, j);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    return;
  }
  default:
    for (int k = 0; k < n->n_kids; k++) serr_node(g, n->kids[k], L, j);
    return;
  }
}

static void build_serrat_fn(cg *g) {
  LLVMTypeRef ps[4] = {g->ptr, g->i64, g->i64, g->ptr};
  begin_fn(g, KABI_SERRAT, g->i32, ps, 4);
  scalar_only(g);
  g->env = LLVMGetParam(g->fn, 0);
  load_env(g);
  g->detail = LLVMGetParam(g->fn, 3);
  lvl L = {LLVMGetParam(g->fn, 1), env_word(g, g->env, KABI_ENV_LQ, g->i64), g->lk_tok};
  serr_node(g, g->p->score, &L, LLVMGetParam(g->fn, 2));
  LLVMBuildRet(g->B, LLVMConstInt(g->i32, 0, 0));
  end_fn(g);
  g->detail = NULL;
}

/* --- module -------------------------------------------------------------- */

static int collect_topk(cg *g, const ir_node *n) {
  if (!n) return 1;
  for (int k = 0; k < n->n_kids; k++)
    if (!collect_topk(g, n->kids[k])) return 0;
  if (n->op != IR_TOPK) return 1;
  if (g->n_tk == g->cap_tk) {
    int cap = g->cap_tk ? 2 * g->cap_tk : 4;
    const ir_node **t = realloc(g->tk, (size_t)cap * sizeof *t);
    if (!t) return 0;
    g->tk = t;
    g->cap_tk = cap;
  }
  g->tk[g->n_tk++] = n;
  return 1;
}

void cg_info_free(cg_info *info) {
  if (!info) return;
  for (int k = 0; k < info->n_errors; k++) free(info->errors[k]);
  free(info->errors);
  info->errors = NULL;
  info->n_errors = 0;
}

/* route(C): the compiled kernels run one route node whose centroid count
 * is a constant (the route table, analyze.c); its C is then no float or
 * shaped input the mask code reads.  The features f without those (bits
 * are only cleared), or *what naming the route the kernels do not run. */
static unsigned route_features(const ir_program *p, unsigned f, const char **what) {
  int64_t n;
  bool several;
  const ir_node *r = (f & IR_FEAT_ROUTE) ? an_route(p, &n, &several) : NULL;
  if (!(f & IR_FEAT_ROUTE)) return f;
  if (!r) {
    *what = several ? "more than one route(C)"
                    : "route(C) with a centroid count that is not a constant";
    return f;
  }
  bool flt = false, shaped = false;
  for (int k = 0; k < p->n_inputs; k++) {
    const ir_input *in = &p->inputs[k];
    if (k == r->value) continue;
    flt |= in->is_float;
    shaped |= in->is_float && (in->n_dims > 1 ||
                               (in->n_dims == 1 && in->dims[0]->op != IR_SIZE_LK));
  }
  f &= ~(unsigned)IR_FEAT_ROUTE;
  if (!flt) f &= ~(unsigned)IR_FEAT_FLOAT_IN;
  if (!shaped) f &= ~(unsigned)IR_FEAT_SHAPED_IN;
  return f;
}

/* The language-version-2 forms the compiled kernels do not run yet: an
 * error naming the first one (the interpreter runs them all). */
static bool v2_supported(const ir_program *p, char *err, size_t errlen) {
  static const struct { unsigned bit; const char *what; } feats[] = {
      {IR_FEAT_SCORE, "'with score'"}, {IR_FEAT_FLOAT_IN, "float inputs"},
      {IR_FEAT_SHAPED_IN, "shaped inputs"}, {IR_FEAT_ROUTE, "route"},
      {IR_FEAT_BATCH, "b, B, Hkv or D"}};
  const char *what = NULL;
  /* b, B, Hkv, D, aligned(top_left) and int inputs of any shape run */
  unsigned f = ir_features(p) & ~(unsigned)IR_FEAT_BATCH;
  bool float_shaped = false;
  for (int k = 0; k < p->n_inputs; k++) {
    const ir_input *in = &p->inputs[k];
    float_shaped |= in->is_float && (in->n_dims > 1 ||
                                     (in->n_dims == 1 && in->dims[0]->op != IR_SIZE_LK));
  }
  if (!float_shaped) f &= ~(unsigned)IR_FEAT_SHAPED_IN;
  if (p->score && cg_score_supported(p))
    /* float inputs are read only by the score, which the score tile reads */
    f &= ~(unsigned)(IR_FEAT_SCORE | IR_FEAT_FLOAT_IN | IR_FEAT_SHAPED_IN);
  f = route_features(p, f, &what);
  if (f & IR_FEAT_SCORE) what = "this score expression (the compiled backends take float "
      "ops of s with integer parts, and inputs whose dimensions use constants, the "
      "sizes and + - * only)";
  for (size_t k = 0; !what && k < sizeof feats / sizeof feats[0]; k++)
    if (f & feats[k].bit) what = feats[k].what;
  if (!what) return true;
  snprintf(err, errlen, "the compiled backends (JIT, AOT) do not run %s yet (language "
           "version 2); run the pattern with the interpreter (backend interp)", what);
  return false;
}

LLVMModuleRef cg_build(LLVMContextRef ctx, const ir_program *p, int64_t D,
                       const cg_kind *tile, cg_dtype dt, const cg_target *t,
                       cg_info *info, char *err, size_t errlen) {
  memset(info, 0, sizeof *info);
  if (!v2_supported(p, err, errlen)) return NULL;
  if (tile && !cg_kind_supports(tile, D, dt)) {
    cg_unsupported_d(tile, D, "the JIT", err, errlen);
    return NULL;
  }
  if (!ir_check(p, err, errlen)) return NULL;
  cg G, *g = &G;
  cg_begin_module(g, ctx, p->name ? p->name : "pattern", t);
  g->p = p;
  g->D = D;
  g->dtype = dt;
  if (!collect_topk(g, p->root)) g->oom = 1;

  if (!plan_functions(g, err, errlen)) {
    LLVMDisposeBuilder(g->B);
    LLVMDisposeModule(g->M);
    free(g->tk), free(g->nd), free(g->hkey), free(g->hval);
    for (int k = 0; k < g->n_errs; k++) free(g->errs[k]);
    free(g->errs), free(g->order), free(g->eparent);
    return NULL;
  }
  build_mask_fn(g, 0, p->root);
  for (int k = 0; k < g->n_tk; k++) build_mask_fn(g, k + 1, g->tk[k]->kids[1]);
  for (int k = 0; k < g->n_tk; k++) build_tkinfo_fn(g, k);
  build_errat_fn(g);
  if (tile) tile->gen(g);
  if (p->score) { /* the pattern's score tiles (codegen_score.h) */
    cg_gen_score_tile(g);
    cg_gen_score_inlen(g);
    build_serrat_fn(g);
  }

  /* the error table */
  LLVMValueRef *strs = calloc((size_t)g->n_errs + 1, sizeof *strs);
  if (!strs) g->oom = 1;
  for (int k = 0; strs && k < g->n_errs; k++) {
    size_t len = strlen(g->errs[k]);
    LLVMValueRef s = LLVMConstStringInContext(ctx, g->errs[k], (unsigned)len, 0);
    LLVMValueRef gv = LLVMAddGlobal(g->M, LLVMTypeOf(s), "spat_errmsg");
    LLVMSetInitializer(gv, s);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    strs[k] = gv;
  }
  if (strs) {
    LLVMValueRef arr = LLVMConstArray2(g->ptr, strs, (uint64_t)g->n_errs);
    LLVMValueRef tab = LLVMAddGlobal(g->M, LLVMTypeOf(arr), KABI_ERRORS);
    LLVMSetInitializer(tab, arr);
    LLVMSetGlobalConstant(tab, 1);
  }
  free(strs);
  LLVMDisposeBuilder(g->B);
  free(g->tk), free(g->rnd), free(g->nd), free(g->hkey), free(g->hval);
  free(g->order), free(g->eparent);
  info->n_topk = g->n_tk;
  info->n_errors = g->n_errs;
  info->errors = g->errs;
  if (g->oom) {
    cg_info_free(info);
    LLVMDisposeModule(g->M);
    rt_errf(err, errlen, RT_ENOMEM, "out of memory in code generation");
    return NULL;
  }
  return g->M;
}

int cg_count(const ir_program *p, cg_stats *out, char *err, size_t errlen) {
  cg_info info;
  LLVMContextRef C = LLVMContextCreate();
  LLVMModuleRef M = cg_build(C, p, 16, NULL, CG_F32, NULL, &info, err, errlen);
  memset(out, 0, sizeof *out);
  if (!M) {
    LLVMContextDispose(C);
    return -1;
  }
  for (LLVMValueRef f = LLVMGetFirstFunction(M); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue; /* (no tile: cg_build without one) */
    long n = 0;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
      for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
        n++;
    out->insts += n, out->fns++;
    if (n > out->max_fn_insts) out->max_fn_insts = n;
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  cg_info_free(&info);
  return 0;
}
