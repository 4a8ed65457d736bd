/* plan.c: evaluates a tile plan (runtime/plan.h, instruction set in
 * plan_ops.h) for one query tile.
 *
 * In: the plan words, the sizes, head and runtime scalars, rows [r0, r1).
 * Out: the sorted, disjoint key spans the tile must visit, FULL where every
 * row of the tile allows every key of the span, PARTIAL where the mask must be
 * evaluated per element.  Each list is a three-valued abstraction of the mask
 * over the tile's rows (no key / every row / maybe), and every operator is
 * the pointwise Kleene connective, so coarsening a list (turning spans and the
 * gaps between them into one PARTIAL span) is always sound: that is how a
 * list is kept within the plan's fixed capacity.
 *
 * Reentrant, no allocation: all state lives in a bounded frame on the stack.
 */
#include "plan.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "plan_box.h"
#include "plan_ops.h"
#include "plan_sets.h"

enum { K_NONE = 0, K_FULL = PLAN_FULL, K_PART = PLAN_PARTIAL };

typedef struct gran {
  int64_t i0, i1;  /* query positions of the tile, [i0, i1) */
  int64_t Lq, Lk;  /* sizes at this granularity */
  int64_t b;       /* block size that led here from the outer level */
  int64_t f0, f1;  /* the focus: keys that matter */
} gran;

typedef struct ev {
  const int64_t *plan;
  const plan_env *env;
  int64_t cap;                    /* spans per list */
  plan_span *slots;               /* list stack: slot k at slots + k * cap */
  int64_t *n;                     /* spans in each slot */
  int64_t depth, lsp;             /* list stack size and pointer */
  plan_span *tmp;                 /* 4 * cap spans */
  int64_t ist[PLAN_ISTACK];
  int isp;
  gran g[PLAN_BNEST + 1];
  int gi;
  bool in_try;                    /* inside a where region (WTRY) */
  int64_t vi, vj;                 /* i and j inside a JPRED/IPRED body */
  bool in_body;                   /* running such a body (no nesting) */
  int64_t try_pc, try_lsp;        /* where to resume, list stack to keep */
  int try_isp;
  const plan_topk *topk;          /* plan_tiles_topk's */
  int64_t n_topk;
  char *err;
  size_t errlen;
} ev;

static int64_t fail(ev *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int64_t fail(ev *e, const char *fmt, ...) {
  if (e->err && e->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int64_t bad_arg(ev *e, const char *what, const char *prim, int64_t v,
                       int64_t min) {
  return fail(e, "%s of %s is %lld, must be >= %lld", what, prim, (long long)v,
              (long long)min);
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static int64_t sat_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static int64_t sat_mul(int64_t a, int64_t b) { /* a, b >= 0 */
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return INT64_MAX;
  return r;
}

/* Merges the adjacent pair with the smallest gap into one PARTIAL span. */
static void squeeze(plan_span *l, int64_t *n) {
  int64_t best = 0, gap = INT64_MAX;
  for (int64_t t = 0; t + 1 < *n; t++) {
    int64_t d = l[t + 1].k0 - l[t].k1;
    if (d < gap) gap = d, best = t;
  }
  l[best].k1 = l[best + 1].k1;
  l[best].kind = K_PART;
  memmove(l + best + 1, l + best + 2,
          sizeof *l * (size_t)(*n - best - 2));
  (*n)--;
  if (best > 0 && l[best - 1].k1 == l[best].k0 &&
      l[best - 1].kind == K_PART) {
    l[best - 1].k1 = l[best].k1;
    memmove(l + best, l + best + 1, sizeof *l * (size_t)(*n - best - 1));
    (*n)--;
  }
  if (best + 1 < *n && l[best].k1 == l[best + 1].k0 &&
      l[best + 1].kind == K_PART) {
    l[best].k1 = l[best + 1].k1;
    memmove(l + best + 1, l + best + 2,
            sizeof *l * (size_t)(*n - best - 2));
    (*n)--;
  }
}

/* Appends [k0, k1) of kind (spans arrive in order); merges with the last
 * span when adjacent and alike; squeezes when the list is full. */
static void put(plan_span *l, int64_t *n, int64_t cap, int64_t k0, int64_t k1,
                int64_t kind) {
  if (k0 >= k1 || kind == K_NONE) return;
  if (*n > 0 && l[*n - 1].k1 == k0 && l[*n - 1].kind == kind) {
    l[*n - 1].k1 = k1;
    return;
  }
  if (*n == cap) squeeze(l, n);
  if (*n > 0 && l[*n - 1].k1 == k0 && l[*n - 1].kind == kind) {
    l[*n - 1].k1 = k1;
    return;
  }
  l[*n].k0 = k0, l[*n].k1 = k1, l[*n].kind = kind;
  (*n)++;
}

static void put_clip(ev *e, plan_span *l, int64_t *n, int64_t k0, int64_t k1,
                     int64_t kind) {
  int64_t lk = e->g[e->gi].Lk;
  if (k0 < 0) k0 = 0;
  if (k1 > lk) k1 = lk;
  put(l, n, e->cap, k0, k1, kind);
}

static plan_span *slot(ev *e, int64_t k) { return e->slots + k * e->cap; }

static int64_t push_list(ev *e) {
  if (e->lsp >= e->depth) return fail(e, "tile plan: list stack overflow");
  e->n[e->lsp] = 0;
  return e->lsp++;
}

static bool ipop(ev *e, int64_t *v) {
  if (e->isp <= 0) return false;
  *v = e->ist[--e->isp];
  return true;
}

static int kleene(int op, int64_t a, int64_t b) {
  switch (op) {
  case PLAN_POR:
    if (a == K_FULL || b == K_FULL) return K_FULL;
    return (a || b) ? K_PART : K_NONE;
  case PLAN_PAND:
    if (!a || !b) return K_NONE;
    return (a == K_FULL && b == K_FULL) ? K_FULL : K_PART;
  default: /* PMINUS: a & !b */
    if (!a || b == K_FULL) return K_NONE;
    return b ? K_PART : (int)a;
  }
}

/* tmp <- A op B; returns the span count (<= 2 (na + nb)). */
static int64_t sweep(ev *e, int op, const plan_span *A, int64_t na,
                     const plan_span *B, int64_t nb) {
  int64_t nt = 0, ia = 0, ib = 0, x;
  if (!na && !nb) return 0;
  if (!na) x = B[0].k0;
  else if (!nb) x = A[0].k0;
  else x = A[0].k0 < B[0].k0 ? A[0].k0 : B[0].k0;
  while (ia < na || ib < nb) {
    int64_t ka = 0, kb = 0, ya = INT64_MAX, yb = INT64_MAX;
    if (ia < na) {
      if (A[ia].k0 <= x) ka = A[ia].kind, ya = A[ia].k1;
      else ya = A[ia].k0;
    }
    if (ib < nb) {
      if (B[ib].k0 <= x) kb = B[ib].kind, yb = B[ib].k1;
      else yb = B[ib].k0;
    }
    int64_t y = ya < yb ? ya : yb;
    put(e->tmp, &nt, 4 * e->cap, x, y, kleene(op, ka, kb));
    x = y;
    if (ia < na && A[ia].k1 <= x) ia++;
    if (ib < nb && B[ib].k1 <= x) ib++;
  }
  return nt;
}

/* Copies tmp[0, nt) into slot s, squeezed to the list capacity. */
static void fit(ev *e, int64_t s, int64_t nt) {
  while (nt > e->cap) squeeze(e->tmp, &nt);
  memcpy(slot(e, s), e->tmp, sizeof(plan_span) * (size_t)nt);
  e->n[s] = nt;
}

/* Keys [lo, hi) for some row, [clo, chi) for every row (clo >= lo and
 * chi <= hi by construction). */
static void diag(ev *e, int64_t s, int64_t lo, int64_t hi, int64_t clo,
                 int64_t chi) {
  plan_span *L = slot(e, s);
  if (clo < chi) {
    put_clip(e, L, &e->n[s], lo, clo, K_PART);
    put_clip(e, L, &e->n[s], clo, chi, K_FULL);
    put_clip(e, L, &e->n[s], chi, hi, K_PART);
  } else {
    put_clip(e, L, &e->n[s], lo, hi, K_PART);
  }
}

/* Keys j in [lo, hi) with (i - j) % d == 0 for some row i of the tile: when
 * the tile has fewer rows than d, the residues i mod d form one run, so the
 * keys are runs of `rows` keys every d (FULL for a single row, whose whole
 * key set it is); otherwise, or when there would be more runs than the list
 * holds, PARTIAL over [lo, hi). */
static void residues(ev *e, int64_t s, int64_t d, int64_t lo, int64_t hi) {
  const gran *g = &e->g[e->gi];
  int64_t rows = g->i1 - g->i0;
  if (lo < 0) lo = 0;
  if (hi > g->Lk) hi = g->Lk;
  if (d > 1 && lo < g->f0) lo = g->f0;
  if (d > 1 && hi > g->f1) hi = g->f1;
  if (lo >= hi) return;
  if (d == 1 || rows >= d || (hi - lo) / d + 2 > e->cap) {
    put(slot(e, s), &e->n[s], e->cap, lo, hi, d == 1 ? K_FULL : K_PART);
    return;
  }
  int64_t r0 = g->i0 % d, kind = rows == 1 ? K_FULL : K_PART;
  /* runs [a, a + rows) at a = m d + r0, from the one that may reach lo
   * (a < lo < hi here).  With 0 <= lo < hi <= Lk, rows < d and sizes at
   * most PLAN_MAX_LEN, only the step a + d can overflow (d up to
   * INT64_MAX), and then the next run starts past hi. */
  for (int64_t a = (lo / d - 1) * d + r0;;) {
    int64_t b = a + rows;
    put(slot(e, s), &e->n[s], e->cap, a < lo ? lo : a, b > hi ? hi : b, kind);
    if (__builtin_add_overflow(a, d, &a) || a >= hi) break;
  }
}

/* window(l, r) over the tile, also causal (l = inf, r = 0). */
static void window(ev *e, int64_t s, int64_t l, int64_t r) {
  const gran *g = &e->g[e->gi];
  diag(e, s, sat_add(g->i0, -l), sat_add(sat_add(g->i1 - 1, r), 1),
       sat_add(g->i1 - 1, -l), sat_add(sat_add(g->i0, r), 1));
}

/* where(x[i] == x[j]): keys whose value some row of the tile has; FULL when
 * every row has the same value.  PARTIAL everywhere when the array is not
 * given, a row's index is outside it (the element code reports that), or
 * the tile has too many distinct values.  batch: x[b, i] == x[b, j] of an
 * input [B, Lk], row b of it (PARTIAL when the caller gave no b). */
static void doc_eq(ev *e, int64_t s, int64_t k, bool batch) {
  const gran *g = &e->g[e->gi];
  plan_span *L = slot(e, s);
  const plan_env *env = e->env;
  const int32_t *x = env->inputs && k >= 0 && k < e->plan[PLAN_W_NIN]
                         ? env->inputs[k] : NULL;
  int32_t v[PLAN_DOC_VALUES];
  int nv = 0;
  int64_t row = 0;
  if (batch && (env->B < 1 || env->b < 0 || env->b >= env->B ||
                __builtin_mul_overflow(env->b, env->Lk, &row)))
    goto all;
  if (x) x += row;
  if (!x || g->i0 < 0 || g->i1 > e->env->Lk) goto all;
  for (int64_t i = g->i0; i < g->i1; i++) {
    int t = 0;
    while (t < nv && v[t] != x[i]) t++;
    if (t == nv) {
      if (nv == PLAN_DOC_VALUES) goto all;
      v[nv++] = x[i];
    }
  }
  int64_t kind = nv == 1 ? K_FULL : K_PART, run0 = -1, lk = g->Lk;
  if (lk > e->env->Lk) lk = e->env->Lk;
  if (lk > g->f1) lk = g->f1;
  for (int64_t j = g->f0 > 0 ? g->f0 : 0; j < lk; j++) {
    int32_t y = x[j];
    int t = 0;
    while (t < nv && v[t] != y) t++;
    if (t < nv) {
      if (run0 < 0) run0 = j;
    } else if (run0 >= 0) {
      put(L, &e->n[s], e->cap, run0, j, kind);
      run0 = -1;
    }
  }
  if (run0 >= 0) put(L, &e->n[s], e->cap, run0, lk, kind);
  return;
all:
  put_clip(e, L, &e->n[s], 0, g->Lk, K_PART);
}

static void random_keys(ev *e, int64_t s, int64_t r, int64_t seed) {
  const gran *g = &e->g[e->gi];
  int64_t rows = g->i1 - g->i0, lk = g->Lk;
  if (r == 0 || lk == 0) return;
  if (r > PLAN_RANDOM_MAX || rows > PLAN_RANDOM_MAX / r) {
    put_clip(e, slot(e, s), &e->n[s], 0, lk, K_PART);
    return;
  }
  int64_t keys[PLAN_RANDOM_MAX], nk = 0;
  uint64_t h = (uint64_t)e->env->h;
  for (int64_t i = g->i0; i < g->i1; i++)
    for (int64_t t = 0; t < r; t++) {
      uint64_t z = ar_hash((uint64_t)seed, h, (uint64_t)i, (uint64_t)t);
      int64_t j = (int64_t)(z % (uint64_t)lk), p = nk++;
      while (p > 0 && keys[p - 1] > j) keys[p] = keys[p - 1], p--;
      keys[p] = j;
    }
  for (int64_t t = 0; t < nk; t++)
    if (t == 0 || keys[t] != keys[t - 1])
      put(slot(e, s), &e->n[s], e->cap, keys[t], keys[t] + 1,
          rows == 1 ? K_FULL : K_PART);
}

/* Adds [a, b) to the index set in slot s (kept sorted and disjoint). */
static void set_add(ev *e, int64_t s, int64_t a, int64_t b) {
  if (a < 0) a = 0;
  if (a >= b) return;
  plan_span one = {a, b, K_FULL};
  fit(e, s, sweep(e, PLAN_POR, slot(e, s), e->n[s], &one, 1));
}

static int64_t from_end(ev *e, int64_t v) {
  return v < 0 ? v + e->g[e->gi].Lk : v;
}

/* a op b for the binary integer ops: 0, 1 on overflow, 2 on a division by
 * zero. */
static int binop(int64_t op, int64_t a, int64_t b, int64_t *r) {
  switch (op) {
  case PLAN_IADD: return (int)ar_add(a, b, r);
  case PLAN_ISUB: return (int)ar_sub(a, b, r);
  case PLAN_IMUL: return (int)ar_mul(a, b, r);
  case PLAN_IDIV: return (int)ar_div(a, b, r);
  case PLAN_IMOD: return (int)ar_mod(a, b, r);
  case PLAN_IMIN: *r = a < b ? a : b; return 0;
  case PLAN_IMAX: *r = a > b ? a : b; return 0;
  case PLAN_ILT: *r = a < b; return 0;
  case PLAN_ILE: *r = a <= b; return 0;
  case PLAN_IGT: *r = a > b; return 0;
  case PLAN_IGE: *r = a >= b; return 0;
  case PLAN_IEQ: *r = a == b; return 0;
  default: *r = a != b; return 0;
  }
}

static int64_t binop_fail(ev *e, int64_t op, int why) {
  static const char *const text[] = {"+", "-", "*", "/", "%"};
  if (why == 2) return fail(e, "division by zero");
  return fail(e, "integer overflow in '%s'", text[op - PLAN_IADD]);
}

static int64_t arith(ev *e, int op) {
  int64_t a, b, r = 0;
  if (!ipop(e, &b) || !ipop(e, &a)) return fail(e, "tile plan: bad code");
  int why = binop(op, a, b, &r);
  if (why) return binop_fail(e, op, why);
  e->ist[e->isp++] = r;
  return 0;
}

static int64_t body_value(ev *e, int64_t body);
typedef void (*span_fn)(void *ctx, int64_t k0, int64_t k1, int64_t kind);
static int64_t jpred_cached(ev *e, int64_t s, int64_t body, int64_t len,
                            int64_t j0, int64_t j1);

static const int operands[PLAN_N_OPS] = {
#define X(name, n, text) n,
    PLAN_OPS(X)
#undef X
};

/* Runs from pc until END (0), RET (2, ending a JPRED/IPRED body) or an
 * error (-1). */
/* The op_* handlers below run one group of exec's instructions: EXEC_NEXT
 * to go on (*pcp advanced), else what exec returns (-1 with a message on an
 * error). */
#define EXEC_NEXT 1

/* exec's integer instructions: constants, variables, sizes, runtime scalars, input arrays, arithmetic. */
static int64_t op_int(ev *e, int64_t op, int64_t *pcp, gran *g) {
  const int64_t *P = e->plan;
  int64_t pc = *pcp, a;
  switch (op) {
  case PLAN_ICONST:
  case PLAN_IHEAD:
  case PLAN_INHEAD:
  case PLAN_ILQ:
  case PLAN_ILK:
  case PLAN_IRT:
  case PLAN_IVARI:
  case PLAN_IVARJ:
    if (e->isp >= PLAN_ISTACK) return fail(e, "tile plan: int stack overflow");
    if ((op == PLAN_IVARI || op == PLAN_IVARJ) && !e->in_body)
      return fail(e, "tile plan: bad code"); /* i, j only in a body */
    if (op == PLAN_ICONST) a = P[pc++];
    else if (op == PLAN_IVARI) a = e->vi;
    else if (op == PLAN_IVARJ) a = e->vj;
    else if (op == PLAN_IHEAD) a = e->env->h;
    else if (op == PLAN_INHEAD) a = e->env->H;
    else if (op == PLAN_ILQ) a = g->Lq;
    else if (op == PLAN_ILK) a = g->Lk;
    else {
      int64_t k = P[pc++];
      if (k < 0 || k >= P[PLAN_W_NRT] || !e->env->runtime)
        return fail(e, "runtime scalar %lld not given", (long long)k);
      a = e->env->runtime[k];
    }
    e->ist[e->isp++] = a;
    break;
  case PLAN_INEG:
  case PLAN_INOT:
  case PLAN_IABS:
  case PLAN_IBOOL:
    if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
    if ((op == PLAN_INEG || op == PLAN_IABS) && a == INT64_MIN)
      return fail(e, "integer overflow in '%s'", op == PLAN_INEG ? "-" : "abs");
    if (op == PLAN_INEG) a = -a;
    else if (op == PLAN_INOT) a = !a;
    else if (op == PLAN_IABS) a = a < 0 ? -a : a;
    else a = a != 0;
    e->ist[e->isp++] = a;
    break;
  case PLAN_IADD: case PLAN_ISUB: case PLAN_IMUL: case PLAN_IDIV:
  case PLAN_IMOD: case PLAN_IMIN: case PLAN_IMAX: case PLAN_ILT:
  case PLAN_ILE: case PLAN_IGT: case PLAN_IGE: case PLAN_IEQ:
  case PLAN_INE:
    if (arith(e, (int)op) < 0) return -1;
    break;
  case PLAN_IINPUT: {
    int64_t k = P[pc++];
    const int32_t *x = e->env->inputs && k >= 0 && k < P[PLAN_W_NIN]
                           ? e->env->inputs[k] : NULL;
    if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
    if (!x) return fail(e, "input array %lld not given", (long long)k);
    if (a < 0 || a >= e->env->Lk)
      return fail(e, "index %lld of an input array is out of range [0, %lld)",
                  (long long)a, (long long)e->env->Lk);
    e->ist[e->isp++] = x[a];
    break;
  }
  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

/* exec's primitives: each pushes the key spans of one pattern primitive for the query tile. */
static int64_t op_prim(ev *e, int64_t op, int64_t *pcp, gran *g) {
  const int64_t *P = e->plan;
  int64_t pc = *pcp, a, b, s;
  switch (op) {
  case PLAN_PFULL:
  case PLAN_PANY:
  case PLAN_PNONE:
  case PLAN_PCAUSAL:
  case PLAN_SBEGIN:
    if ((s = push_list(e)) < 0) return -1;
    if (op == PLAN_PFULL || op == PLAN_PANY)
      put_clip(e, slot(e, s), &e->n[s], 0, g->Lk,
               op == PLAN_PFULL ? K_FULL : K_PART);
    else if (op == PLAN_PCAUSAL)
      window(e, s, INT64_MAX, 0);
    break;
  case PLAN_PWINDOW:
  case PLAN_PDILATED:
  case PLAN_PRANDOM:
    if (!ipop(e, &b) || !ipop(e, &a)) return fail(e, "tile plan: bad code");
    if ((s = push_list(e)) < 0) return -1;
    if (op == PLAN_PWINDOW) {
      if (a < 0) return bad_arg(e, "the left size", "window", a, 0);
      if (b < 0) return bad_arg(e, "the right size", "window", b, 0);
      window(e, s, a, b);
    } else if (op == PLAN_PRANDOM) {
      if (a < 0) return bad_arg(e, "the key count r", "random", a, 0);
      random_keys(e, s, a, b);
    } else {
      if (a < 0) return bad_arg(e, "the width w", "dilated", a, 0);
      if (b < 1) return bad_arg(e, "the dilation d", "dilated", b, 1);
      int64_t wd = sat_mul(a, b);
      if (b == 1 || a == 0) window(e, s, a, a);
      else
        residues(e, s, b, sat_add(g->i0, -wd), sat_add(sat_add(g->i1 - 1, wd), 1));
    }
    break;
  case PLAN_PBLOCK:
  case PLAN_PSTRIDE:
    if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
    if ((s = push_list(e)) < 0) return -1;
    if (op == PLAN_PSTRIDE) {
      if (a < 1) return bad_arg(e, "the stride", "stride", a, 1);
      residues(e, s, a, 0, g->Lk);
    } else {
      if (a < 1) return bad_arg(e, "the block size", "block", a, 1);
      int64_t q0 = g->i0 / a, q1 = (g->i1 - 1) / a;
      put_clip(e, slot(e, s), &e->n[s], sat_mul(q0, a),
               sat_mul(q1 + 1, a), q0 == q1 ? K_FULL : K_PART);
    }
    break;
  case PLAN_PJRANGE:
  case PLAN_PIRANGE:
  case PLAN_PDIAG:
    if (!ipop(e, &b) || !ipop(e, &a)) return fail(e, "tile plan: bad code");
    if ((s = push_list(e)) < 0) return -1;
    if (op == PLAN_PJRANGE) {
      put_clip(e, slot(e, s), &e->n[s], a, b, K_FULL);
    } else if (op == PLAN_PIRANGE) {
      int64_t kind = a <= g->i0 && g->i1 <= b               ? K_FULL
                     : a < g->i1 && g->i0 < b && a < b ? K_PART
                                                            : K_NONE;
      put_clip(e, slot(e, s), &e->n[s], 0, g->Lk, kind);
    } else if (a < b) {
      /* j in [i - b + 1, i - a] for i in [i0, i1) */
      diag(e, s, sat_add(sat_sub(g->i0, b), 1), sat_sub(g->i1, a),
           sat_sub(g->i1, b), sat_add(sat_sub(g->i0, a), 1));
    }
    break;
  case PLAN_PCOND:
    if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
    if ((s = push_list(e)) < 0) return -1;
    if (a) put_clip(e, slot(e, s), &e->n[s], 0, g->Lk, K_FULL);
    break;
  case PLAN_PDOCEQ:
  case PLAN_PDOCEQB:
    if ((s = push_list(e)) < 0) return -1;
    doc_eq(e, s, P[pc++], op == PLAN_PDOCEQB);
    break;
  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

/* The post-order number of the topk instruction at pc (its count before
 * pc), or -1 when the code's topk instructions do not number env->n_topk
 * (then the driver's selections cannot be matched to them). */
static int64_t topk_number(const ev *e, int64_t at) {
  const int64_t *P = e->plan;
  int64_t n = 0, mine = -1, end = P[PLAN_W_SIZE];
  for (int64_t pc = P[PLAN_W_CODE]; pc < end && P[pc] != PLAN_END;) {
    int64_t op = P[pc];
    if (op < 0 || op >= PLAN_N_OPS) return -1;
    if (pc == at) mine = n;
    n += op == PLAN_PTOPK;
    /* a box's tree is data, not code */
    pc += 1 + operands[op] + (op == PLAN_PBOX && pc + 2 < end ? P[pc + 2] : 0);
  }
  return n == e->n_topk ? mine : -1;
}

static int cmp_key(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* Rows of a tile times k at most, for topk_selected. */
#define TOPK_PLAN_KEYS 4096

/* The keys of the topk instruction at pc for the tile's rows [g->i0,
 * g->i1) from the driver's selections, into slot s (replacing P's list):
 * a key FULL when every row selected it, else PARTIAL.  0 when they are
 * not known for these rows (the caller keeps P's keys, PARTIAL). */
static bool topk_selected(ev *e, int64_t pc, const gran *g, int64_t s) {
  int64_t t = e->topk ? topk_number(e, pc) : -1;
  if (t < 0) return false;
  const plan_topk *tk = &e->topk[t];
  int64_t nr = g->i1 - g->i0, n = 0;
  if (!tk->sel || g->i0 < tk->ibase || g->i1 > tk->ibase + tk->rows || nr < 1 ||
      nr * tk->k > TOPK_PLAN_KEYS)
    return false;
  int64_t keys[TOPK_PLAN_KEYS];
  for (int64_t r = g->i0 - tk->ibase; r < g->i1 - tk->ibase; r++) {
    int64_t c = tk->cnt[r];
    if (c < 0 || c > tk->k) return false;  /* an error: the mask reports it */
    memcpy(keys + n, tk->sel + r * tk->k, sizeof *keys * (size_t)c);
    n += c;
  }
  qsort(keys, (size_t)n, sizeof *keys, cmp_key);
  plan_span *L = slot(e, s);
  e->n[s] = 0;
  for (int64_t x = 0, y; x < n; x = y) {
    for (y = x; y < n && keys[y] == keys[x];) y++;
    put_clip(e, L, &e->n[s], keys[x], keys[x] + 1, y - x == nr ? K_FULL : K_PART);
  }
  return true;
}

/* exec's index sets and the operators on span lists (union, intersection, difference, complement, rows, cols, topk). */
static int64_t op_list(ev *e, int64_t op, int64_t *pcp, gran *g) {
  int64_t pc = *pcp, a, b, s;
  switch (op) {
  case PLAN_SITEM:
  case PLAN_SRANGE:
    if (!ipop(e, &b)) return fail(e, "tile plan: bad code");
    if (op == PLAN_SRANGE) {
      if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
      a = from_end(e, a), b = from_end(e, b);
    } else {
      a = from_end(e, b), b = a == INT64_MAX ? a : a + 1;
    }
    if (e->lsp < 1) return fail(e, "tile plan: bad code");
    set_add(e, e->lsp - 1, a, b);
    break;
  case PLAN_PROWS: {
    if (e->lsp < 1) return fail(e, "tile plan: bad code");
    s = e->lsp - 1;
    plan_span *L = slot(e, s);
    int64_t x = g->i0, kind = K_NONE;
    for (int64_t t = 0; t < e->n[s]; t++) {
      if (L[t].k1 > g->i0 && L[t].k0 < g->i1) kind = K_PART;
      if (L[t].kind == K_FULL && L[t].k0 <= x && L[t].k1 > x) x = L[t].k1;
    }
    if (x >= g->i1) kind = K_FULL;
    e->n[s] = 0;
    put_clip(e, L, &e->n[s], 0, g->Lk, kind);
    break;
  }
  case PLAN_PCOLS: {
    if (e->lsp < 1) return fail(e, "tile plan: bad code");
    s = e->lsp - 1;
    plan_span *L = slot(e, s);
    int64_t n = e->n[s];
    e->n[s] = 0;
    for (int64_t t = 0; t < n; t++)
      put_clip(e, L, &e->n[s], L[t].k0, L[t].k1, L[t].kind);
    break;
  }
  case PLAN_PTOPK: {
    if (!ipop(e, &a) || e->lsp < 1) return fail(e, "tile plan: bad code");
    if (a < 0) return bad_arg(e, "k", "topk", a, 0);
    s = e->lsp - 1;
    plan_span *L = slot(e, s);
    int64_t n = e->n[s], total = 0;
    for (int64_t t = 0; t < n; t++) total += L[t].k1 - L[t].k0;
    if (a >= total) break; /* no row has more than k keys: all of P */
    if (a > 0 && topk_selected(e, pc - 1, g, s)) break;
    e->n[s] = 0;
    if (a > 0)
      for (int64_t t = 0; t < n; t++)
        put(L, &e->n[s], e->cap, L[t].k0, L[t].k1, K_PART);
    break;
  }
  case PLAN_POR:
  case PLAN_PAND:
  case PLAN_PMINUS:
    if (e->lsp < 2) return fail(e, "tile plan: bad code");
    s = e->lsp - 2;
    fit(e, s, sweep(e, (int)op, slot(e, s), e->n[s], slot(e, s + 1),
                    e->n[s + 1]));
    e->lsp--;
    break;
  case PLAN_PCOMPL: {
    if (e->lsp < 1) return fail(e, "tile plan: bad code");
    s = e->lsp - 1;
    const plan_span *L = slot(e, s);
    int64_t nt = 0, x = 0;
    for (int64_t t = 0; t < e->n[s]; t++) {
      put(e->tmp, &nt, 4 * e->cap, x, L[t].k0, K_FULL);
      if (L[t].kind == K_PART) put(e->tmp, &nt, 4 * e->cap, L[t].k0, L[t].k1, K_PART);
      x = L[t].k1;
    }
    put(e->tmp, &nt, 4 * e->cap, x, g->Lk, K_FULL);
    fit(e, s, nt);
    break;
  }
  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

/* ---- rows of inputs in index sets, diagonals(S) (plan_sets.h) ----
 * Offsets of diagonals are kept as written, clamped to [-OFF_MAX, OFF_MAX]:
 * |i - j| <= PLAN_MAX_LEN, so larger ones match nothing either way. */
#define OFF_MAX ((int64_t)1 << 62)

static int64_t clamp_off(int64_t v) {
  return v < -OFF_MAX ? -OFF_MAX : v > OFF_MAX ? OFF_MAX : v;
}

/* slot s |= the list in slot u */
static void or_into(ev *e, int64_t s, int64_t u) {
  fit(e, s, sweep(e, PLAN_POR, slot(e, s), e->n[s], slot(e, u), e->n[u]));
}

/* The items of a row (intervals iv[0 .. n)) into the set in slot s, through
 * the two free slots above the stack: raw as written, else v < 0 counting
 * from the end (those come first in sorted order, so two ascending lists). */
static void row_items(ev *e, int64_t s, const int32_t (*iv)[2], int64_t n, bool raw) {
  int64_t a = e->lsp, b = e->lsp + 1, lk = e->g[e->gi].Lk;
  e->n[a] = e->n[b] = 0;
  for (int64_t t = 0; t < n; t++) {
    int64_t x0 = iv[t][0], x1 = (int64_t)iv[t][1] + 1;
    if (raw) {
      put(slot(e, a), &e->n[a], e->cap, x0, x1, K_FULL);
      continue;
    }
    if (x0 < 0) put(slot(e, a), &e->n[a], e->cap, lk + x0 > 0 ? lk + x0 : 0,
                    lk + (x1 < 0 ? x1 : 0), K_FULL);
    if (x1 > 0) put(slot(e, b), &e->n[b], e->cap, x0 > 0 ? x0 : 0, x1, K_FULL);
  }
  or_into(e, s, a);
  or_into(e, s, b);
}

/* SROW k, n, raw: pops n row indices of input k. */
static int64_t set_row(ev *e, int64_t k, int64_t ni, int64_t raw) {
  int64_t idx[8];
  if (ni < 0 || ni > 7 || e->isp < ni || e->lsp < 1 || e->lsp + 2 > e->depth)
    return fail(e, "tile plan: bad code");
  for (int64_t d = ni - 1; d >= 0; d--) idx[d] = e->ist[--e->isp];
  const int32_t (*iv)[2] = NULL;
  int64_t n = 0, s = e->lsp - 1;
  int found = plan_rows_get(e->env->rows, k, idx, ni, &iv, &n);
  if (found < 0) return fail(e, "a row index of input %lld is out of range", (long long)k);
  if (found == 0) { /* no table: any item, decided per element */
    plan_span any = raw ? (plan_span){-OFF_MAX, OFF_MAX, K_PART}
                        : (plan_span){0, e->g[e->gi].Lk, K_PART};
    if (any.k0 < any.k1) fit(e, s, sweep(e, PLAN_POR, slot(e, s), e->n[s], &any, 1));
    return 0;
  }
  row_items(e, s, iv, n, raw != 0);
  return 0;
}

/* PDIAGS: the offsets [a, b) in the top list become the keys j with i - j
 * in them for some row of the tile, FULL where every row has it. */
static int64_t diagonals(ev *e) {
  if (e->lsp < 1 || e->lsp + 2 > e->depth) return fail(e, "tile plan: bad code");
  const gran *g = &e->g[e->gi];
  int64_t s = e->lsp - 1, acc = e->lsp, one = e->lsp + 1;
  e->n[acc] = 0;
  for (int64_t t = e->n[s] - 1; t >= 0; t--) { /* ascending keys */
    const plan_span *o = &slot(e, s)[t];
    e->n[one] = 0;
    int64_t lo = g->i0 - o->k1 + 1, hi = g->i1 - o->k0;
    int64_t clo = g->i1 - o->k1, chi = g->i0 - o->k0 + 1;
    if (o->kind == K_FULL) {
      diag(e, one, lo, hi, clo, chi);
    } else {
      put_clip(e, slot(e, one), &e->n[one], lo, hi, K_PART);
    }
    or_into(e, acc, one);
  }
  memcpy(slot(e, s), slot(e, acc), sizeof(plan_span) * (size_t)e->n[acc]);
  e->n[s] = e->n[acc];
  return 0;
}

static int64_t op_sets(ev *e, int64_t op, int64_t *pcp) {
  const int64_t *P = e->plan;
  int64_t pc = *pcp, a, b;
  switch (op) {
  case PLAN_SROW:
    if (set_row(e, P[pc], P[pc + 1], P[pc + 2]) < 0) return -1;
    pc += 3;
    break;
  case PLAN_SRITEM:
  case PLAN_SRRANGE: {
    if (!ipop(e, &b)) return fail(e, "tile plan: bad code");
    if (op == PLAN_SRRANGE) {
      if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
      a = clamp_off(a), b = clamp_off(b);
    } else {
      a = clamp_off(b), b = a + 1;
    }
    if (e->lsp < 1) return fail(e, "tile plan: bad code");
    if (a < b) {
      plan_span one = {a, b, K_FULL};
      int64_t s = e->lsp - 1;
      fit(e, s, sweep(e, PLAN_POR, slot(e, s), e->n[s], &one, 1));
    }
    break;
  }
  case PLAN_PDIAGS:
    if (diagonals(e) < 0) return -1;
    break;
  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

typedef struct box_ctx { ev *e; int64_t s; } box_ctx;

static void box_put(void *ctx, int64_t k0, int64_t k1, int64_t kind) {
  box_ctx *b = ctx;
  put(slot(b->e, b->s), &b->e->n[b->s], b->e->cap, k0, k1, kind);
}

/* exec's where-predicates: a body evaluated per key (JPRED) or per query
 * row (IPRED), or a tree over intervals (BOX, runtime/plan_box.c). */
static int64_t op_pred(ev *e, int64_t op, int64_t *pcp, gran *g) {
  const int64_t *P = e->plan;
  int64_t size = P[PLAN_W_SIZE], pc = *pcp, a, s;
  switch (op) {
  case PLAN_PBOX: {
    int64_t grain = P[pc], len = P[pc + 1], tree = pc + 2;
    if (grain < 1 || len < 1 || len > size - tree) return fail(e, "tile plan: bad code");
    pc = tree + len;
    if ((s = push_list(e)) < 0) return -1;
    box_ctx bc = {e, s};
    box_q q = {.P = P, .tree = tree, .len = len, .env = e->env, .i0 = g->i0,
               .i1 = g->i1, .lq = g->Lq, .lk = g->Lk,
               .j0 = g->f0 > 0 ? g->f0 : 0, .j1 = g->f1 < g->Lk ? g->f1 : g->Lk,
               .grain = grain};
    if (!plan_box(&q, box_put, &bc)) return fail(e, "tile plan: bad code");
    break;
  }
  case PLAN_PJPRED:
  case PLAN_PIPRED: {
    int64_t body = pc + 1, len = P[pc];
    if (e->in_body || len < 1 || len >= size - body)
      return fail(e, "tile plan: bad code");
    pc = body + len;
    if ((s = push_list(e)) < 0) return -1;
    e->in_body = true;
    if (op == PLAN_PJPRED) {
      int64_t j0 = g->f0 > 0 ? g->f0 : 0, j1 = g->f1 < g->Lk ? g->f1 : g->Lk;
      if (j0 < j1 && jpred_cached(e, s, body, len, j0, j1) < 0) return -1;
    } else {
      int64_t yes = 0;
      for (int64_t i = g->i0; i < g->i1; i++) {
        e->vi = i;
        if ((a = body_value(e, body)) == -1) return -1;
        yes += a != 0;
      }
      put_clip(e, slot(e, s), &e->n[s], 0, g->Lk,
               yes == 0 ? K_NONE : yes == g->i1 - g->i0 ? K_FULL : K_PART);
    }
    e->in_body = false;
    break;
  }
  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

/* exec's granularity: blocks(b) { ... } and the focus window of the keys that matter. */
static int64_t op_gran(ev *e, int64_t op, int64_t *pcp, gran *g) {
  int64_t pc = *pcp, a, b, s;
  switch (op) {
  case PLAN_BBEGIN:
    if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
    if (a < 1) return bad_arg(e, "the block size", "blocks", a, 1);
    if (e->gi >= PLAN_BNEST) return fail(e, "tile plan: blocks nested too deeply");
    e->g[e->gi + 1] = (gran){.i0 = g->i0 / a,
                             .i1 = (g->i1 - 1) / a + 1,
                             .Lq = g->Lq / a + (g->Lq % a != 0),
                             .Lk = g->Lk / a + (g->Lk % a != 0),
                             .b = a,
                             .f0 = g->f0 / a,
                             .f1 = g->f1 > g->f0 ? (g->f1 - 1) / a + 1 : g->f0 / a};
    e->gi++;
    break;
  case PLAN_FOCUS:
  case PLAN_FOCUSALL:
    if (e->isp + 2 > PLAN_ISTACK || (op == PLAN_FOCUS && e->lsp < 1))
      return fail(e, "tile plan: bad code");
    e->ist[e->isp++] = g->f0, e->ist[e->isp++] = g->f1;
    if (op == PLAN_FOCUSALL) {
      g->f0 = 0, g->f1 = g->Lk;
    } else {
      s = e->lsp - 1;
      if (e->n[s] == 0) {
        g->f1 = g->f0;
      } else {
        const plan_span *L = slot(e, s);
        if (L[0].k0 > g->f0) g->f0 = L[0].k0;
        if (L[e->n[s] - 1].k1 < g->f1) g->f1 = L[e->n[s] - 1].k1;
      }
    }
    break;
  case PLAN_UNFOCUS:
    if (!ipop(e, &b) || !ipop(e, &a)) return fail(e, "tile plan: bad code");
    g->f0 = a, g->f1 = b;
    break;
  case PLAN_BEND: {
    if (e->gi < 1 || e->lsp < 1) return fail(e, "tile plan: bad code");
    int64_t bs = g->b;
    e->gi--;
    s = e->lsp - 1;
    plan_span *L = slot(e, s);
    int64_t n = e->n[s];
    e->n[s] = 0;
    for (int64_t t = 0; t < n; t++)
      put_clip(e, L, &e->n[s], sat_mul(L[t].k0, bs), sat_mul(L[t].k1, bs),
               L[t].kind);
    break;
  }

  default:
    return fail(e, "tile plan: bad instruction %lld", (long long)op);
  }
  *pcp = pc;
  return EXEC_NEXT;
}

static int64_t exec(ev *e, int64_t pc) {
  const int64_t *P = e->plan;
  int64_t size = P[PLAN_W_SIZE];
  for (;;) {
    if (pc < PLAN_HDR || pc >= size) return fail(e, "tile plan: bad jump %lld", (long long)pc);
    int64_t op = P[pc++], a, b, s, r;
    if (op < 0 || op >= PLAN_N_OPS || pc + operands[op] > size)
      return fail(e, "tile plan: bad instruction at %lld", (long long)(pc - 1));
    /* jumps go forward only, so every plan terminates */
    if ((op == PLAN_JMP || op == PLAN_JZ || op == PLAN_JZ0 || op == PLAN_JNZ1 ||
         op == PLAN_JEMPTY || op == PLAN_JALL || op == PLAN_WTRY) &&
        (pc >= size || P[pc] <= pc))
      return fail(e, "tile plan: bad jump at %lld", (long long)pc);
    gran *g = &e->g[e->gi];
    switch (op) {
    case PLAN_END:
      return e->lsp == 1 ? 0 : fail(e, "tile plan: bad code");
    case PLAN_JMP:
      pc = P[pc];
      break;
    case PLAN_JZ:
    case PLAN_JZ0:
    case PLAN_JNZ1:
      if (!ipop(e, &a)) return fail(e, "tile plan: bad code");
      b = P[pc++];
      if (op == PLAN_JZ && !a) pc = b;
      else if (op == PLAN_JZ0 && !a) e->ist[e->isp++] = 0, pc = b;
      else if (op == PLAN_JNZ1 && a) e->ist[e->isp++] = 1, pc = b;
      break;
    case PLAN_JEMPTY:
    case PLAN_JALL:
      if (e->lsp < 1) return fail(e, "tile plan: bad code");
      s = e->lsp - 1;
      b = P[pc++];
      if (op == PLAN_JEMPTY ? e->n[s] == 0
                            : (e->n[s] == 1 && slot(e, s)->kind == K_FULL &&
                               slot(e, s)->k0 == 0 && slot(e, s)->k1 == g->Lk))
        pc = b;
      break;
    case PLAN_RET:
      return 2;
    case PLAN_WTRY:
      if (e->in_try) return fail(e, "tile plan: bad code");
      e->in_try = true;
      e->try_pc = P[pc++], e->try_isp = e->isp, e->try_lsp = e->lsp;
      break;
    case PLAN_WEND:
      e->in_try = false;
      break;
    case PLAN_ICONST:
    case PLAN_IHEAD:
    case PLAN_INHEAD:
    case PLAN_ILQ:
    case PLAN_ILK:
    case PLAN_IRT:
    case PLAN_IVARI:
    case PLAN_IVARJ:
    case PLAN_INEG:
    case PLAN_INOT:
    case PLAN_IABS:
    case PLAN_IBOOL:
    case PLAN_IADD: case PLAN_ISUB: case PLAN_IMUL: case PLAN_IDIV:
    case PLAN_IMOD: case PLAN_IMIN: case PLAN_IMAX: case PLAN_ILT:
    case PLAN_ILE: case PLAN_IGT: case PLAN_IGE: case PLAN_IEQ:
    case PLAN_INE:
    case PLAN_IINPUT:
      if ((r = op_int(e, op, &pc, g)) != EXEC_NEXT) return r;
      break;
    case PLAN_PFULL:
    case PLAN_PANY:
    case PLAN_PNONE:
    case PLAN_PCAUSAL:
    case PLAN_SBEGIN:
    case PLAN_PWINDOW:
    case PLAN_PDILATED:
    case PLAN_PRANDOM:
    case PLAN_PBLOCK:
    case PLAN_PSTRIDE:
    case PLAN_PJRANGE:
    case PLAN_PIRANGE:
    case PLAN_PDIAG:
    case PLAN_PCOND:
    case PLAN_PDOCEQ:
    case PLAN_PDOCEQB:
      if ((r = op_prim(e, op, &pc, g)) != EXEC_NEXT) return r;
      break;
    case PLAN_SITEM:
    case PLAN_SRANGE:
    case PLAN_PROWS:
    case PLAN_PCOLS:
    case PLAN_PTOPK:
    case PLAN_POR:
    case PLAN_PAND:
    case PLAN_PMINUS:
    case PLAN_PCOMPL:
      if ((r = op_list(e, op, &pc, g)) != EXEC_NEXT) return r;
      break;
    case PLAN_PJPRED:
    case PLAN_PIPRED:
    case PLAN_PBOX:
      if ((r = op_pred(e, op, &pc, g)) != EXEC_NEXT) return r;
      break;
    case PLAN_BBEGIN:
    case PLAN_FOCUS:
    case PLAN_FOCUSALL:
    case PLAN_UNFOCUS:
    case PLAN_BEND:
      if ((r = op_gran(e, op, &pc, g)) != EXEC_NEXT) return r;
      break;
    case PLAN_SROW:
    case PLAN_SRITEM:
    case PLAN_SRRANGE:
    case PLAN_PDIAGS:
      if ((r = op_sets(e, op, &pc)) != EXEC_NEXT) return r;
      break;
    default:
      return fail(e, "tile plan: bad instruction %lld", (long long)op);
    }
  }
}

/* A JPRED body over keys [j0, j1) a chunk of keys at a time (no jumps, a
 * shallow stack): FULL runs where it holds.  Returns 1 when done, 0 when the
 * body does not fit (the caller runs it key by key), -1 on an error. */
#define VEC_W 128
#define VEC_DEPTH 6
static int64_t vec_jpred(ev *e, int64_t body, int64_t len, int64_t j0,
                         int64_t j1, span_fn emit, void *ctx) {
  const int64_t *P = e->plan;
  const gran *g = &e->g[e->gi];
  int depth = 0;
  bool ret = false;
  for (int64_t pc = body; pc < body + len && !ret;) { /* fits? */
    int64_t op = P[pc];
    if (op < 0 || op >= PLAN_N_OPS) return 0;
    if (op == PLAN_RET) ret = depth == 1;
    else if (op == PLAN_ICONST || op == PLAN_IHEAD || op == PLAN_INHEAD ||
             op == PLAN_ILQ || op == PLAN_ILK || op == PLAN_IRT || op == PLAN_IVARJ)
      depth++;
    else if (op >= PLAN_IADD && op <= PLAN_INE && depth >= 2)
      depth--;
    else if (!((op == PLAN_INEG || op == PLAN_INOT || op == PLAN_IABS ||
                op == PLAN_IBOOL || op == PLAN_IINPUT) && depth >= 1))
      return 0;
    if (depth > VEC_DEPTH || (op == PLAN_RET && !ret)) return 0;
    pc += 1 + operands[op];
  }
  if (!ret) return 0;
  int64_t v[VEC_DEPTH][VEC_W], run0 = -1;
  for (int64_t c0 = j0; c0 < j1; c0 += VEC_W) {
    int64_t w = j1 - c0 < VEC_W ? j1 - c0 : VEC_W;
    int sp = 0;
    for (int64_t pc = body;;) {
      int64_t op = P[pc++], x;
      if (op == PLAN_RET) break;
      switch (op) {
      case PLAN_IVARJ:
        for (int64_t t = 0; t < w; t++) v[sp][t] = c0 + t;
        sp++;
        continue;
      case PLAN_IINPUT: {
        int64_t k = P[pc++];
        const int32_t *arr = e->env->inputs && k >= 0 && k < P[PLAN_W_NIN]
                                 ? e->env->inputs[k] : NULL;
        if (!arr) return fail(e, "input array %lld not given", (long long)k);
        for (int64_t t = 0; t < w; t++) {
          x = v[sp - 1][t];
          if (x < 0 || x >= e->env->Lk)
            return fail(e, "index %lld of an input array is out of range "
                        "[0, %lld)", (long long)x, (long long)e->env->Lk);
          v[sp - 1][t] = arr[x];
        }
        continue;
      }
      case PLAN_INEG:
      case PLAN_IABS:
        for (int64_t t = 0; t < w; t++) {
          x = v[sp - 1][t];
          if (x == INT64_MIN && (op == PLAN_INEG || x < 0))
            return fail(e, "integer overflow in '%s'", op == PLAN_INEG ? "-" : "abs");
          v[sp - 1][t] = op == PLAN_INEG ? -x : x < 0 ? -x : x;
        }
        continue;
      case PLAN_INOT:
      case PLAN_IBOOL:
        for (int64_t t = 0; t < w; t++)
          v[sp - 1][t] = op == PLAN_INOT ? !v[sp - 1][t] : v[sp - 1][t] != 0;
        continue;
      default:
        break;
      }
      if (op >= PLAN_IADD && op <= PLAN_INE) {
        sp--;
        for (int64_t t = 0; t < w; t++) {
          int why = binop(op, v[sp - 1][t], v[sp][t], &x);
          if (why) return binop_fail(e, op, why);
          v[sp - 1][t] = x;
        }
        continue;
      }
      /* a constant of the tile: h, H, Lq, Lk, runtime, literal */
      if (op == PLAN_ICONST) x = P[pc++];
      else if (op == PLAN_IHEAD) x = e->env->h;
      else if (op == PLAN_INHEAD) x = e->env->H;
      else if (op == PLAN_ILQ) x = g->Lq;
      else if (op == PLAN_ILK) x = g->Lk;
      else {
        int64_t k = P[pc++];
        if (k < 0 || k >= P[PLAN_W_NRT] || !e->env->runtime)
          return fail(e, "runtime scalar %lld not given", (long long)k);
        x = e->env->runtime[k];
      }
      for (int64_t t = 0; t < w; t++) v[sp][t] = x;
      sp++;
    }
    if (sp != 1) return fail(e, "tile plan: bad code");
    for (int64_t t = 0; t < w; t++) {
      bool in = v[0][t] != 0;
      if (in && run0 < 0) run0 = c0 + t;
      if (!in && run0 >= 0) emit(ctx, run0, c0 + t, K_FULL), run0 = -1;
    }
  }
  if (run0 >= 0) emit(ctx, run0, j1, K_FULL);
  return 1;
}

/* The FULL runs of a JPRED body over keys [j0, j1), ascending, to emit:
 * vectorised where the body fits, else key by key; 0, or -1 on an error
 * (at the first key that fails). */
static int64_t jpred_runs(ev *e, int64_t body, int64_t len, int64_t j0,
                          int64_t j1, span_fn emit, void *ctx) {
  int64_t done = j0 < j1 ? vec_jpred(e, body, len, j0, j1, emit, ctx) : 1;
  if (done < 0) return -1;
  int64_t run0 = -1, a;
  for (int64_t j = j0; !done && j <= j1; j++) {
    bool in = false;
    if (j < j1) {
      e->vj = j;
      if ((a = body_value(e, body)) == -1) return -1;
      in = a != 0;
    }
    if (in && run0 < 0) run0 = j;
    if (!in && run0 >= 0) emit(ctx, run0, j, K_FULL), run0 = -1;
  }
  return 0;
}

/* --- the per-key predicate cache (plan_memo) ---------------------------- */

/* An entry: the FULL runs of one JPRED body for one (head, batch index,
 * granularity), over the keys [c0, c1) evaluated so far.  A call for keys
 * [j0, j1) with c0 <= j0 <= c1 evaluates only [c1, j1) (the focus of
 * causal or sliding patterns grows tile by tile, so each key is evaluated
 * once); any other call starts the entry again at j0. */
#define MEMO_WAYS 4
typedef struct memo_ent {
  const int64_t *plan, *runtime;
  const int32_t *const *inputs;
  int64_t pc, h, b, gi, lq, lk, gb;
  int64_t c0, c1;
  plan_span *run;
  int64_t n, cap;
  uint64_t used;
} memo_ent;

struct plan_memo {
  memo_ent w[MEMO_WAYS];
  uint64_t clock;
};

plan_memo *plan_memo_new(void) { return calloc(1, sizeof(plan_memo)); }

void plan_memo_free(plan_memo *m) {
  if (!m) return;
  for (int x = 0; x < MEMO_WAYS; x++) free(m->w[x].run);
  free(m);
}

typedef struct memo_put_ctx {
  memo_ent *m;
  bool oom;
} memo_put_ctx;

/* span_fn appending to an entry, joining a run that meets the last one. */
static void memo_put(void *ctx, int64_t k0, int64_t k1, int64_t kind) {
  memo_put_ctx *c = ctx;
  memo_ent *m = c->m;
  (void)kind;  /* FULL */
  if (c->oom || k0 >= k1) return;
  if (m->n > 0 && m->run[m->n - 1].k1 == k0) {
    m->run[m->n - 1].k1 = k1;
    return;
  }
  if (m->n == m->cap) {
    int64_t cap = m->cap ? 2 * m->cap : 64;
    plan_span *p = realloc(m->run, sizeof *p * (size_t)cap);
    if (!p) {
      c->oom = true;
      return;
    }
    m->run = p, m->cap = cap;
  }
  m->run[m->n++] = (plan_span){k0, k1, K_FULL};
}

/* The JPRED body's FULL runs over keys [j0, j1) into list s, through the
 * environment's memo when it has one: the same spans, and the same first
 * error, as jpred_runs over [j0, j1) (the keys before c1 evaluated without
 * an error before). */
static int64_t jpred_cached(ev *e, int64_t s, int64_t body, int64_t len,
                            int64_t j0, int64_t j1) {
  box_ctx bc = {e, s};
  plan_memo *M = e->env->memo;
  const plan_env *v = e->env;
  const gran *g = &e->g[e->gi];
  if (!M) return jpred_runs(e, body, len, j0, j1, box_put, &bc);
  memo_ent *m = NULL, *old = &M->w[0];
  for (int x = 0; x < MEMO_WAYS && !m; x++) {
    memo_ent *w = &M->w[x];
    if (w->plan == e->plan && w->pc == body && w->h == v->h && w->b == v->b &&
        w->gi == e->gi && w->lq == g->Lq && w->lk == g->Lk && w->gb == g->b &&
        w->runtime == v->runtime && w->inputs == v->inputs)
      m = w;
    else if (w->used < old->used)
      old = w;
  }
  if (!m) {
    m = old;
    m->plan = e->plan, m->runtime = v->runtime, m->inputs = v->inputs;
    m->pc = body, m->h = v->h, m->b = v->b, m->gi = e->gi;
    m->lq = g->Lq, m->lk = g->Lk, m->gb = g->b;
    m->c0 = m->c1 = j0, m->n = 0;
  } else if (j0 < m->c0 || j0 > m->c1) {
    m->c0 = m->c1 = j0, m->n = 0;
  }
  m->used = ++M->clock;
  if (j1 > m->c1) {
    int64_t n0 = m->n;
    plan_span last = n0 ? m->run[n0 - 1] : (plan_span){0, 0, 0};
    memo_put_ctx c = {m, false};
    if (jpred_runs(e, body, len, m->c1, j1, memo_put, &c) < 0) {
      m->n = n0;  /* as it was: the keys from c1 on are evaluated again */
      if (n0) m->run[n0 - 1] = last;
      return -1;
    }
    if (c.oom) {  /* the entry is dropped, the call runs without it */
      m->plan = NULL, m->n = 0;
      return jpred_runs(e, body, len, j0, j1, box_put, &bc);
    }
    m->c1 = j1;
  }
  int64_t lo = 0, hi = m->n;  /* the first run ending after j0 */
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (m->run[mid].k1 <= j0) lo = mid + 1;
    else hi = mid;
  }
  for (int64_t x = lo; x < m->n && m->run[x].k0 < j1; x++)
    box_put(&bc, m->run[x].k0 > j0 ? m->run[x].k0 : j0,
            m->run[x].k1 < j1 ? m->run[x].k1 : j1, K_FULL);
  return 0;
}

/* Runs a JPRED/IPRED body: 0 or 1, or -1 on an error. */
static int64_t body_value(ev *e, int64_t body) {
  int64_t rc = exec(e, body), v;
  if (rc == -1) return -1;
  if (rc != 2 || !ipop(e, &v)) return fail(e, "tile plan: bad code");
  return v != 0;
}

/* exec, resuming after an error inside a where region with PARTIAL over
 * every key for the whole predicate. */
static int64_t run(ev *e) {
  int64_t pc = e->plan[PLAN_W_CODE];
  for (;;) {
    if (exec(e, pc) == 0) return 0;
    if (!e->in_try) return -1;
    e->in_try = false, e->in_body = false;
    e->isp = e->try_isp, e->lsp = e->try_lsp;
    int64_t s = push_list(e);
    if (s < 0) return -1;
    put_clip(e, slot(e, s), &e->n[s], 0, e->g[e->gi].Lk, K_PART);
    pc = e->try_pc;
  }
}

int64_t plan_row_offset(const int64_t *plan, int64_t Lq, int64_t Lk) {
  if ((plan[PLAN_W_FLAGS] & PLAN_F_TOP_LEFT) || Lq > Lk) return 0;
  return Lk - Lq;
}

bool plan_reads_batch(const int64_t *plan) {
  return (plan[PLAN_W_FLAGS] & PLAN_F_BATCH) != 0;
}

bool plan_reads_head(const int64_t *plan) {
  return (plan[PLAN_W_FLAGS] & PLAN_F_HEAD) != 0;
}

int64_t plan_tiles(const int64_t *plan, const plan_env *env, int64_t r0,
                   int64_t r1, plan_span *out, int64_t cap, char *err,
                   size_t errlen) {
  return plan_tiles_topk(plan, env, NULL, 0, r0, r1, out, cap, err, errlen);
}

int64_t plan_tiles_topk(const int64_t *plan, const plan_env *env,
                        const plan_topk *topk, int64_t n_topk, int64_t r0,
                        int64_t r1, plan_span *out, int64_t cap, char *err,
                        size_t errlen) {
  ev e;
  e.err = err, e.errlen = errlen;
  e.topk = topk, e.n_topk = n_topk;
  if (!plan || !env || (cap > 0 && !out))
    return fail(&e, "plan_tiles: NULL argument");
  if ((plan[PLAN_W_MAGIC] & 0xffffffff) == (PLAN_MAGIC & 0xffffffff) &&
      plan[PLAN_W_MAGIC] != PLAN_MAGIC)
    return fail(&e, "plan_tiles: a tile plan of format %lld, this library reads "
                "format %lld: recompile the kernel (spatc cache clear)",
                (long long)(plan[PLAN_W_MAGIC] >> 32), PLAN_VERSION);
  if (plan[PLAN_W_MAGIC] != PLAN_MAGIC || plan[PLAN_W_SIZE] <= PLAN_HDR)
    return fail(&e, "plan_tiles: not a tile plan");
  if (env->Lq < 0 || env->Lk < 0 || env->H < 1 || env->h < 0 || env->h >= env->H)
    return fail(&e, "plan_tiles: bad sizes (Lq %lld)", (long long)env->Lq);
  if (env->Lq > PLAN_MAX_LEN || env->Lk > PLAN_MAX_LEN)
    return fail(&e, "plan_tiles: sizes above %lld (Lq %lld, Lk %lld)",
                (long long)PLAN_MAX_LEN, (long long)env->Lq, (long long)env->Lk);
  if (r0 < 0 || r1 > env->Lq || r0 > r1)
    return fail(&e, "plan_tiles: bad rows (r0 %lld)", (long long)r0);
  if (r0 == r1) return 0;
  int64_t cap_l = plan[PLAN_W_CAP], depth = plan[PLAN_W_LDEPTH];
  if (cap_l < 4 || depth < 1 || (depth + 4) * cap_l > PLAN_SCRATCH)
    return fail(&e, "plan_tiles: not a tile plan");
  plan_span scratch[PLAN_SCRATCH];
  int64_t counts[PLAN_SCRATCH / 4];
  int64_t off = plan_row_offset(plan, env->Lq, env->Lk);
  e.plan = plan, e.env = env, e.cap = cap_l, e.depth = depth;
  e.slots = scratch, e.tmp = scratch + depth * cap_l, e.n = counts;
  e.lsp = 0, e.isp = 0, e.gi = 0, e.in_try = false, e.in_body = false;
  e.vi = e.vj = 0, e.try_pc = e.try_lsp = 0, e.try_isp = 0; /* damaged plans */
  e.g[0] = (gran){.i0 = r0 + off, .i1 = r1 + off, .Lq = env->Lq,
                  .Lk = env->Lk, .b = 1, .f0 = 0, .f1 = env->Lk};
  if (run(&e) < 0) return -1;
  if (err && errlen) err[0] = 0;
  int64_t n = e.n[0];
  if (cap > 0) memcpy(out, scratch, sizeof *out * (size_t)(n < cap ? n : cap));
  return n;
}
