/* plan_box.c: where(pred) over boxes of (query rows, key range), for the
 * tile plan's PBOX instruction (plan_box.h).
 *
 * In: the predicate as an integer tree in prefix form (plan_ops.h, as in
 * the where table), the query tile's positions and the keys that matter.
 * Out: key spans, FULL where the predicate is proved true for every (i, j)
 * of the box, PARTIAL where it is undecided, none where proved false.
 *
 * Abstract interpretation over intervals: i in [i0, i1 - 1], j in the key
 * range, sizes, head and runtime scalars exact; + - * abs min max exact on
 * intervals; floor division by the corners on either side of 0; the
 * remainder exact while the dividend's range does not wrap; comparisons,
 * && || ! and ?: three-valued.  Arithmetic is done in 128 bits and clamped
 * to int64: a point where it overflows (or divides by zero) is a run-time
 * error, found by the kernel before the plan is used (plan.h), so only the
 * error-free points need to be covered.  The key range is split into
 * dyadic halves (aligned to powers of two, as grids of side 2^k are) while
 * undecided, down to `grain` keys or the evaluation budget.
 *
 * No allocation; recursion bounded by PLAN_BOX_DEPTH (tree) and 64 (keys).
 */
#include "plan_box.h"

#include "plan_ops.h"

__extension__ typedef __int128 i128;

typedef struct rng { int64_t lo, hi; } rng;

typedef struct bx {
  const box_q *q;
  int64_t end;
  rng i, j;
  int64_t evals;
  bool bad;
  box_put_fn put;
  void *ctx;
} bx;

static rng clamp(i128 lo, i128 hi) {
  if (lo < INT64_MIN) lo = INT64_MIN;
  if (lo > INT64_MAX) lo = INT64_MAX;
  if (hi > INT64_MAX) hi = INT64_MAX;
  if (hi < INT64_MIN) hi = INT64_MIN;
  return (rng){(int64_t)lo, (int64_t)hi};
}

static const rng TOP = {INT64_MIN, INT64_MAX};

static bool has(rng r, int64_t v) { return r.lo <= v && v <= r.hi; }
static bool is0(rng r) { return r.lo == 0 && r.hi == 0; }
static rng bit(bool maybe0, bool maybe1) {
  if (!maybe0 && !maybe1) maybe0 = maybe1 = true; /* empty: stay sound */
  return (rng){maybe0 ? 0 : 1, maybe1 ? 1 : 0};
}
static rng join(rng a, rng b) {
  return (rng){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
}

static i128 fdiv(i128 a, i128 b) { /* floor, b != 0 */
  i128 q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) q--;
  return q;
}

static i128 fmod_(i128 a, i128 b) { /* the sign of b, b != 0 */
  i128 r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

static rng div_rng(rng a, rng b) {
  i128 lo = 0, hi = 0;
  bool any = false;
  rng parts[2] = {{b.lo, b.hi < -1 ? b.hi : -1}, {b.lo > 1 ? b.lo : 1, b.hi}};
  for (int t = 0; t < 2; t++) {
    if (parts[t].lo > parts[t].hi) continue;
    i128 q[4] = {fdiv(a.lo, parts[t].lo), fdiv(a.lo, parts[t].hi),
                 fdiv(a.hi, parts[t].lo), fdiv(a.hi, parts[t].hi)};
    for (int u = 0; u < 4; u++) {
      if (!any || q[u] < lo) lo = q[u];
      if (!any || q[u] > hi) hi = q[u];
      any = true;
    }
  }
  if (!any) return (rng){0, 0}; /* divisor 0 only: every point an error */
  return clamp(lo, hi);
}

static rng mod_rng(rng a, rng b) {
  if (b.lo == b.hi && b.lo > 0) { /* exact unless the dividend wraps */
    i128 m = b.lo;
    if ((i128)a.hi - a.lo < m) {
      i128 x = fmod_(a.lo, m), y = fmod_(a.hi, m);
      if (x <= y) return clamp(x, y);
    }
    return clamp(0, m - 1);
  }
  if (b.lo > 0 && a.lo >= 0 && a.hi < b.lo) return a;
  i128 lo = b.lo < 0 ? (i128)b.lo + 1 : 0, hi = b.hi > 0 ? (i128)b.hi - 1 : 0;
  if (b.lo > 0 && a.lo >= 0 && a.hi < hi) hi = a.hi;
  return clamp(lo, hi);
}

static rng cmp_rng(int64_t op, rng a, rng b) {
  switch (op) {
  case PLAN_ILT: return bit(a.hi >= b.lo, a.lo < b.hi);
  case PLAN_ILE: return bit(a.hi > b.lo, a.lo <= b.hi);
  case PLAN_IGT: return bit(a.lo <= b.hi, a.hi > b.lo);
  case PLAN_IGE: return bit(a.lo < b.hi, a.hi >= b.lo);
  case PLAN_IEQ:
    return bit(!(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo),
               a.lo <= b.hi && b.lo <= a.hi);
  default: /* INE */
    return bit(a.lo <= b.hi && b.lo <= a.hi,
               !(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo));
  }
}

static rng arith_rng(int64_t op, rng a, rng b) {
  switch (op) {
  case PLAN_IADD: return clamp((i128)a.lo + b.lo, (i128)a.hi + b.hi);
  case PLAN_ISUB: return clamp((i128)a.lo - b.hi, (i128)a.hi - b.lo);
  case PLAN_IMUL: {
    i128 p[4] = {(i128)a.lo * b.lo, (i128)a.lo * b.hi, (i128)a.hi * b.lo,
                 (i128)a.hi * b.hi};
    i128 lo = p[0], hi = p[0];
    for (int t = 1; t < 4; t++) {
      if (p[t] < lo) lo = p[t];
      if (p[t] > hi) hi = p[t];
    }
    return clamp(lo, hi);
  }
  case PLAN_IDIV: return div_rng(a, b);
  case PLAN_IMOD: return mod_rng(a, b);
  case PLAN_IMIN:
    return (rng){a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
  case PLAN_IMAX:
    return (rng){a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
  default:
    return cmp_rng(op, a, b);
  }
}

static int64_t operand(bx *c, int64_t *pc) {
  if (*pc >= c->end) {
    c->bad = true;
    return 0;
  }
  return c->q->P[(*pc)++];
}

/* The range of an input's elements over indices x (the int32 range unless
 * a few in-range elements can be read). */
static rng input_rng(bx *c, int64_t k, rng x) {
  const plan_env *env = c->q->env;
  const int32_t *arr = env->inputs && k >= 0 && k < c->q->P[PLAN_W_NIN]
                           ? env->inputs[k] : NULL;
  if (!arr || x.lo < 0 || x.hi >= env->Lk || x.hi - x.lo >= 64)
    return (rng){INT32_MIN, INT32_MAX};
  rng r = {arr[x.lo], arr[x.lo]};
  for (int64_t t = x.lo + 1; t <= x.hi; t++) {
    if (arr[t] < r.lo) r.lo = arr[t];
    if (arr[t] > r.hi) r.hi = arr[t];
  }
  return r;
}

static rng ev(bx *c, int64_t *pc, int depth) {
  if (c->bad || depth > PLAN_BOX_DEPTH || *pc >= c->end) {
    c->bad = true;
    return TOP;
  }
  int64_t op = c->q->P[(*pc)++], k;
  rng a, b, x;
  switch (op) {
  case PLAN_ICONST: k = operand(c, pc); return (rng){k, k};
  case PLAN_IVARI: return c->i;
  case PLAN_IVARJ: return c->j;
  case PLAN_IHEAD: return (rng){c->q->env->h, c->q->env->h};
  case PLAN_INHEAD: return (rng){c->q->env->H, c->q->env->H};
  case PLAN_ILQ: return (rng){c->q->lq, c->q->lq};
  case PLAN_ILK: return (rng){c->q->lk, c->q->lk};
  case PLAN_IRT:
    k = operand(c, pc);
    if (k < 0 || k >= c->q->P[PLAN_W_NRT] || !c->q->env->runtime) {
      c->bad = true;
      return TOP;
    }
    return (rng){c->q->env->runtime[k], c->q->env->runtime[k]};
  case PLAN_IINPUT:
    k = operand(c, pc);
    x = ev(c, pc, depth + 1);
    return input_rng(c, k, x);
  case PLAN_INEG:
    a = ev(c, pc, depth + 1);
    return clamp(-(i128)a.hi, -(i128)a.lo);
  case PLAN_IABS:
    a = ev(c, pc, depth + 1);
    if (a.lo >= 0) return a;
    if (a.hi <= 0) return clamp(-(i128)a.hi, -(i128)a.lo);
    return clamp(0, -(i128)a.lo > a.hi ? -(i128)a.lo : a.hi);
  case PLAN_INOT:
    a = ev(c, pc, depth + 1);
    return bit(!is0(a), has(a, 0));
  case PLAN_ILAND:
  case PLAN_ILOR:
    a = ev(c, pc, depth + 1);
    b = ev(c, pc, depth + 1);
    if (op == PLAN_ILAND)
      return bit(has(a, 0) || has(b, 0), !is0(a) && !is0(b));
    return bit(has(a, 0) && has(b, 0), !is0(a) || !is0(b));
  case PLAN_ISEL:
    x = ev(c, pc, depth + 1);
    a = ev(c, pc, depth + 1);
    b = ev(c, pc, depth + 1);
    if (!has(x, 0)) return a;
    if (is0(x)) return b;
    return join(a, b);
  default:
    if (op < PLAN_IADD || op > PLAN_INE) { /* externs are not boxed */
      c->bad = true;
      return TOP;
    }
    a = ev(c, pc, depth + 1);
    b = ev(c, pc, depth + 1);
    return arith_rng(op, a, b);
  }
}

/* 0: false on the whole box, 1: true on it, 2: undecided. */
static int decide(bx *c, int64_t k0, int64_t k1) {
  c->j = (rng){k0, k1 - 1};
  c->evals++;
  int64_t pc = c->q->tree;
  rng r = ev(c, &pc, 0);
  if (pc != c->end) c->bad = true;
  if (c->bad) return 2;
  return is0(r) ? 0 : !has(r, 0) ? 1 : 2;
}

/* The dyadic key range [lo, lo + size), clipped to the keys that matter. */
static void split(bx *c, int64_t lo, int64_t size) {
  int64_t k0 = lo > c->q->j0 ? lo : c->q->j0;
  int64_t k1 = size > c->q->j1 - lo ? c->q->j1 : lo + size;
  if (k0 >= k1 || c->bad) return;
  if (c->evals >= PLAN_BOX_EVALS) {
    c->put(c->ctx, k0, k1, PLAN_PARTIAL);
    return;
  }
  int d = decide(c, k0, k1);
  if (d == 1) c->put(c->ctx, k0, k1, PLAN_FULL);
  if (d == 2 && (size <= c->q->grain || k1 - k0 == 1))
    c->put(c->ctx, k0, k1, PLAN_PARTIAL);
  if (d == 2 && !(size <= c->q->grain || k1 - k0 == 1)) {
    split(c, lo, size / 2);
    split(c, lo + size / 2, size / 2);
  }
}

bool plan_box(const box_q *q, box_put_fn put, void *ctx) {
  if (q->len < 1 || q->i0 >= q->i1 || q->grain < 1) return false;
  bx c = {.q = q, .end = q->tree + q->len, .i = {q->i0, q->i1 - 1},
          .put = put, .ctx = ctx};
  if (q->j0 >= q->j1) return true;
  int64_t size = 1;
  while (size < q->j1) size *= 2; /* j1 <= 2^61 */
  split(&c, 0, size);
  return !c.bad;
}
