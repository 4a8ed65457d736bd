/* plan_safe.c: can a where(...) predicate fail at run time?  (plan.h,
 * plan_where_may_fail)
 *
 * In: the where table of a tile plan (plan_ops.h: every predicate as
 * written, in prefix form), the head, sizes and runtime scalars.  Out: 0 when
 * no predicate can overflow, divide by zero or index an input out of range at
 * any (i, j) of the pattern's domain, 1 when one may.
 *
 * The contract makes a run-time error of a predicate an error wherever in
 * the domain it occurs, including in tiles the plan skips; the kernel driver
 * calls this once per head and scans the domain exactly only when it says 1.
 * Interval arithmetic over i in the query positions, j in [0, Lk), inputs in
 * the int32 range; && || ?: evaluate an operand only where it is taken, with
 * i and j narrowed by comparisons of i or j against an expression of neither
 * (`j > 0 && doc[j - 1] == ...`, `i < Lk ? doc[i] : 0`).  Sound, not
 * complete: "may fail" only costs the exact scan.  No allocation; recursion
 * bounded.
 */
#include <stdbool.h>
#include <stdint.h>

#include "plan.h"
#include "plan_ops.h"

#define DEPTH_MAX 4096

__extension__ typedef __int128 i128; /* exact sums and products of int64 */

typedef struct rng { int64_t lo, hi; } rng;

typedef struct sc {
  const int64_t *P;
  int64_t end;           /* end of the entry */
  const plan_env *env;
  rng i, j, lq, lk;      /* the variables' ranges where evaluated */
  bool fail;             /* an error is possible where taken */
  bool bad;              /* damaged code */
  int depth;
} sc;

static rng clamp(sc *c, bool taken, i128 lo, i128 hi) {
  if (taken && (lo < INT64_MIN || hi > INT64_MAX)) c->fail = true;
  if (lo < INT64_MIN) lo = INT64_MIN;
  if (lo > INT64_MAX) lo = INT64_MAX;
  if (hi > INT64_MAX) hi = INT64_MAX;
  if (hi < INT64_MIN) hi = INT64_MIN;
  return (rng){(int64_t)lo, (int64_t)hi};
}

static bool empty(rng r) { return r.lo > r.hi; }
static bool has(rng r, int64_t v) { return r.lo <= v && v <= r.hi; }
static rng bit(bool maybe0, bool maybe1) {
  return (rng){maybe0 ? 0 : 1, maybe1 ? 1 : 0};
}

static i128 fdiv(i128 a, i128 b) { /* floor, b != 0 */
  i128 q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) q--;
  return q;
}

static int64_t operand(sc *c, int64_t *pc) {
  if (*pc >= c->end) {
    c->bad = true;
    return 0;
  }
  return c->P[(*pc)++];
}

/* End of the subtree at pc (c->bad on damaged code). */
static int64_t skip(sc *c, int64_t pc) {
  if (++c->depth > DEPTH_MAX || pc >= c->end) {
    c->bad = true;
    c->depth--;
    return c->end;
  }
  int64_t op = c->P[pc++], kids = 0;
  switch (op) {
  case PLAN_ICONST: case PLAN_IRT: pc++; break;
  case PLAN_IVARI: case PLAN_IVARJ: case PLAN_IHEAD: case PLAN_INHEAD:
  case PLAN_ILQ: case PLAN_ILK: case PLAN_IVARB: case PLAN_IBATCH:
  case PLAN_IHKV: case PLAN_IDIM: break;
  case PLAN_IINPUT: pc++, kids = 1; break;
  case PLAN_IINPUTN: kids = pc + 1 < c->end ? 2 * c->P[pc + 1] : -1, pc += 2; break;
  case PLAN_IEXTERN: kids = pc < c->end ? c->P[pc++] : 0; break;
  case PLAN_INEG: case PLAN_INOT: case PLAN_IABS: kids = 1; break;
  case PLAN_ISEL: kids = 3; break;
  default:
    if ((op >= PLAN_IADD && op <= PLAN_INE) || op == PLAN_ILAND || op == PLAN_ILOR)
      kids = 2;
    else
      c->bad = true;
  }
  if (kids < 0 || kids > 64) c->bad = true;
  for (int64_t k = 0; k < kids && !c->bad; k++) pc = skip(c, pc);
  c->depth--;
  return pc > c->end ? (c->bad = true, c->end) : pc;
}

/* Does the subtree [pc, end) read i or j? */
static bool reads_ij(sc *c, int64_t pc, int64_t end) {
  while (pc < end && !c->bad) {
    int64_t op = c->P[pc];
    if (op == PLAN_IVARI || op == PLAN_IVARJ) return true;
    pc += 1 + (op == PLAN_ICONST || op == PLAN_IRT || op == PLAN_IINPUT ||
               op == PLAN_IEXTERN) + 2 * (op == PLAN_IINPUTN);
  }
  return false;
}

static rng iv(sc *c, int64_t *pc, bool taken);

/* Narrows i or j under the assumption that the subtree at pc is `truth`. */
static void refine(sc *c, int64_t pc, bool truth) {
  if (c->bad || pc >= c->end || ++c->depth > DEPTH_MAX) {
    c->depth--;
    return;
  }
  int64_t op = c->P[pc];
  if (op == PLAN_INOT) {
    refine(c, pc + 1, !truth);
  } else if ((op == PLAN_ILAND && truth) || (op == PLAN_ILOR && !truth)) {
    int64_t b = skip(c, pc + 1);
    refine(c, pc + 1, truth);
    refine(c, b, truth);
  } else if (op >= PLAN_ILT && op <= PLAN_INE) {
    int64_t a = pc + 1, b = skip(c, a), e = skip(c, b);
    int64_t va = c->P[a], vb = b < c->end ? c->P[b] : -1;
    bool left = (va == PLAN_IVARI || va == PLAN_IVARJ) && b == a + 1;
    bool right = (vb == PLAN_IVARI || vb == PLAN_IVARJ) && e == b + 1;
    if (left == right || c->bad) goto out;
    int64_t var = left ? va : vb, opc = left ? b : a;
    if (reads_ij(c, opc, left ? e : b)) goto out;
    sc t = *c;  /* the other side's range; its errors count elsewhere */
    int64_t p2 = opc;
    rng o = iv(&t, &p2, false);
    if (t.bad || empty(o)) goto out;
    /* var OP o, OP with the variable on the left and truth applied */
    int64_t k = op;
    if (!left)
      k = k == PLAN_ILT ? PLAN_IGT : k == PLAN_IGT ? PLAN_ILT
        : k == PLAN_ILE ? PLAN_IGE : k == PLAN_IGE ? PLAN_ILE : k;
    if (!truth)
      k = k == PLAN_ILT ? PLAN_IGE : k == PLAN_IGE ? PLAN_ILT
        : k == PLAN_ILE ? PLAN_IGT : k == PLAN_IGT ? PLAN_ILE
        : k == PLAN_IEQ ? PLAN_INE : PLAN_IEQ;
    rng *v = var == PLAN_IVARI ? &c->i : &c->j;
    i128 lo = v->lo, hi = v->hi;
    if (k == PLAN_ILT && (i128)o.hi - 1 < hi) hi = (i128)o.hi - 1;
    if (k == PLAN_ILE && o.hi < hi) hi = o.hi;
    if (k == PLAN_IGT && (i128)o.lo + 1 > lo) lo = (i128)o.lo + 1;
    if (k == PLAN_IGE && o.lo > lo) lo = o.lo;
    if (k == PLAN_IEQ) {
      if (o.lo > lo) lo = o.lo;
      if (o.hi < hi) hi = o.hi;
    }
    if (lo > hi) {  /* never true here: an empty range */
      v->lo = 1, v->hi = 0;
    } else {
      v->lo = (int64_t)lo, v->hi = (int64_t)hi;
    }
  }
out:
  c->depth--;
}

/* An operand evaluated only where cond (the subtree at cpc) is `truth`. */
static rng arm(sc *c, int64_t *pc, bool taken, int64_t cpc, bool truth) {
  rng si = c->i, sj = c->j;
  if (taken) refine(c, cpc, truth);
  if (empty(c->i) || empty(c->j)) taken = false;
  rng r = iv(c, pc, taken);
  c->i = si, c->j = sj;
  return r;
}

/* An element of a shaped input (version 2): every index in [0, its
 * dimension) where taken.  The dimensions are sizes and constants, exact at
 * token level whatever the granularity. */
static rng inputn(sc *c, int64_t *pc, bool taken) {
  rng any = {INT32_MIN, INT32_MAX}, dims[PLAN_INPUT_DIMS], lq = c->lq, lk = c->lk;
  operand(c, pc);
  int64_t n = operand(c, pc);
  if (n < 1 || n > PLAN_INPUT_DIMS) {
    c->bad = true;
    return any;
  }
  c->lq = (rng){c->env->Lq, c->env->Lq}, c->lk = (rng){c->env->Lk, c->env->Lk};
  for (int64_t d = 0; d < n; d++) dims[d] = iv(c, pc, taken);
  c->lq = lq, c->lk = lk;
  for (int64_t d = 0; d < n; d++) {
    rng x = iv(c, pc, taken);
    if (taken && (dims[d].lo != dims[d].hi || x.lo < 0 || x.hi >= dims[d].lo))
      c->fail = true;
  }
  return any;
}

/* b and the sizes B, Hkv, D (version 2): exact when the caller gave them. */
static rng size_v2(sc *c, int64_t op) {
  const plan_env *e = c->env;
  int64_t v = op == PLAN_IVARB ? e->b : op == PLAN_IBATCH ? e->B
              : op == PLAN_IHKV ? e->Hkv : e->D;
  if (e->B < 1) c->bad = true;
  return (rng){v, v};
}

static rng iv(sc *c, int64_t *pc, bool taken) {
  rng r = {0, 0};
  if (c->bad || *pc >= c->end || ++c->depth > DEPTH_MAX) {
    c->bad = true;
    c->depth--;
    return r;
  }
  int64_t start = *pc, op = c->P[(*pc)++], k;
  rng a, b, x;
  switch (op) {
  case PLAN_ICONST: k = operand(c, pc); r = (rng){k, k}; break;
  case PLAN_IVARI: r = c->i; break;
  case PLAN_IVARJ: r = c->j; break;
  case PLAN_IHEAD: r = (rng){c->env->h, c->env->h}; break;
  case PLAN_INHEAD: r = (rng){c->env->H, c->env->H}; break;
  case PLAN_ILQ: r = c->lq; break;
  case PLAN_ILK: r = c->lk; break;
  case PLAN_IRT:
    k = operand(c, pc);
    if (k < 0 || k >= c->P[PLAN_W_NRT] || !c->env->runtime) c->bad = true;
    else r = (rng){c->env->runtime[k], c->env->runtime[k]};
    break;
  case PLAN_IINPUT:
    operand(c, pc);
    x = iv(c, pc, taken);
    if (taken && (x.lo < 0 || x.hi >= c->env->Lk)) c->fail = true;
    r = (rng){INT32_MIN, INT32_MAX};
    break;
  case PLAN_IVARB: case PLAN_IBATCH: case PLAN_IHKV: case PLAN_IDIM:
    r = size_v2(c, op);
    break;
  case PLAN_IINPUTN: r = inputn(c, pc, taken); break;
  case PLAN_IEXTERN:
    k = operand(c, pc);
    if (k < 0 || k > 64) c->bad = true;
    for (int64_t t = 0; t < k && !c->bad; t++) iv(c, pc, taken);
    r = (rng){0, 1};
    break;
  case PLAN_INEG:
    a = iv(c, pc, taken);
    r = clamp(c, taken, -(i128)a.hi, -(i128)a.lo);
    break;
  case PLAN_IABS:
    a = iv(c, pc, taken);
    if (a.lo >= 0) r = a;
    else if (a.hi <= 0) r = clamp(c, taken, -(i128)a.hi, -(i128)a.lo);
    else r = clamp(c, taken, 0, -(i128)a.lo > a.hi ? -(i128)a.lo : a.hi);
    break;
  case PLAN_INOT:
    a = iv(c, pc, taken);
    r = bit(!has(a, 0), has(a, 0));
    break;
  case PLAN_ILAND:
  case PLAN_ILOR: {
    int64_t cpc = *pc;
    a = iv(c, pc, taken);
    bool t = op == PLAN_ILAND;  /* b is evaluated where a is t */
    bool a0 = has(a, 0), a1 = !(a.lo == 0 && a.hi == 0);
    b = arm(c, pc, taken && (t ? a1 : a0), cpc, t);
    bool b0 = has(b, 0), b1 = !(b.lo == 0 && b.hi == 0);
    if (t) r = bit(a0 || b0, a1 && b1);
    else r = bit(a0 && b0, a1 || b1);
    break;
  }
  case PLAN_ISEL: {
    int64_t cpc = *pc;
    x = iv(c, pc, taken);
    bool c0 = has(x, 0), c1 = !(x.lo == 0 && x.hi == 0);
    a = arm(c, pc, taken && c1, cpc, true);
    b = arm(c, pc, taken && c0, cpc, false);
    if (!c0) r = a;
    else if (!c1) r = b;
    else r = (rng){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
    break;
  }
  default:
    if (op < PLAN_IADD || op > PLAN_INE) {
      c->bad = true;
      break;
    }
    a = iv(c, pc, taken);
    b = iv(c, pc, taken);
    switch (op) {
    case PLAN_IADD: r = clamp(c, taken, (i128)a.lo + b.lo, (i128)a.hi + b.hi); break;
    case PLAN_ISUB: r = clamp(c, taken, (i128)a.lo - b.hi, (i128)a.hi - b.lo); break;
    case PLAN_IMUL: {
      i128 p[4] = {(i128)a.lo * b.lo, (i128)a.lo * b.hi,
                       (i128)a.hi * b.lo, (i128)a.hi * b.hi};
      i128 lo = p[0], hi = p[0];
      for (int t = 1; t < 4; t++) {
        if (p[t] < lo) lo = p[t];
        if (p[t] > hi) hi = p[t];
      }
      r = clamp(c, taken, lo, hi);
      break;
    }
    case PLAN_IDIV:
    case PLAN_IMOD: {
      if (taken && has(b, 0)) c->fail = true;
      if (taken && op == PLAN_IDIV && has(a, INT64_MIN) && has(b, -1)) c->fail = true;
      if (op == PLAN_IMOD) {
        i128 lo = b.lo < 0 ? (i128)b.lo + 1 : 0;
        i128 hi = b.hi > 0 ? (i128)b.hi - 1 : 0;
        if (b.lo > 0 && a.lo >= 0 && a.hi < b.lo) lo = a.lo, hi = a.hi;
        r = clamp(c, false, lo, hi);
        break;
      }
      /* floor division is monotone in each argument on either side of 0 */
      i128 lo = 0, hi = 0;
      bool any = false;
      rng parts[2] = {{b.lo, b.hi < -1 ? b.hi : -1}, {b.lo > 1 ? b.lo : 1, b.hi}};
      for (int t = 0; t < 2; t++) {
        if (empty(parts[t])) continue;
        i128 q[4] = {fdiv(a.lo, parts[t].lo), fdiv(a.lo, parts[t].hi),
                         fdiv(a.hi, parts[t].lo), fdiv(a.hi, parts[t].hi)};
        for (int u = 0; u < 4; u++) {
          if (!any || q[u] < lo) lo = q[u];
          if (!any || q[u] > hi) hi = q[u];
          any = true;
        }
      }
      r = clamp(c, false, lo, hi);  /* MIN / -1 is counted above */
      break;
    }
    case PLAN_IMIN: r = (rng){a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi}; break;
    case PLAN_IMAX: r = (rng){a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi}; break;
    case PLAN_ILT: r = bit(a.hi >= b.lo, a.lo < b.hi); break;
    case PLAN_ILE: r = bit(a.hi > b.lo, a.lo <= b.hi); break;
    case PLAN_IGT: r = bit(a.lo <= b.hi, a.hi > b.lo); break;
    case PLAN_IGE: r = bit(a.lo < b.hi, a.hi >= b.lo); break;
    case PLAN_IEQ:
      r = bit(!(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo),
              a.lo <= b.hi && b.lo <= a.hi);
      break;
    default: /* INE */
      r = bit(a.lo <= b.hi && b.lo <= a.hi,
              !(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo));
      break;
    }
  }
  (void)start;
  c->depth--;
  return r;
}

int plan_where_may_fail(const int64_t *plan, const plan_env *env) {
  if (!plan || !env || env->Lq < 1 || env->Lk < 1) return 1;
  int64_t size = plan[PLAN_W_SIZE], at = plan[PLAN_W_WHERE];
  if (at < PLAN_HDR || at >= size) return 1;
  int64_t n = plan[at++];
  if (n < 0) return 1;
  int64_t off = plan_row_offset(plan, env->Lq, env->Lk);
  for (int64_t w = 0; w < n; w++) {
    if (at + 2 > size) return 1;
    int64_t len = plan[at], flags = plan[at + 1];
    if (len < 1 || len > size - at - 1) return 1;
    if (len == 1) return 1;  /* not stored */
    bool blk = flags & PLAN_WF_BLOCKS;
    sc c = {.P = plan, .end = at + 1 + len, .env = env,
            .i = {blk ? 0 : off, off + env->Lq - 1},
            .j = {0, env->Lk - 1},
            .lq = {blk ? 1 : env->Lq, env->Lq},
            .lk = {blk ? 1 : env->Lk, env->Lk}};
    int64_t pc = at + 2;
    iv(&c, &pc, true);
    if (c.fail || c.bad || pc != c.end) return 1;
    at = c.end;
  }
  return 0;
}
