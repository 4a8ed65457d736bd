/* interp.c: the reference interpreter (interp.h) and backend_interp.
 *
 * In: a checked ir_program (ir.h) and the tensors of one run (rt.h).
 * Out: o and lse for every batch, head and query row, or one mask row.
 *
 * The mask is evaluated per (h, i, j) by walking the IR tree, exactly as the
 * semantics block of ir.h states it, with no interval or tile reasoning, so
 * that it can serve as the oracle the JIT is tested against.  Two per-row
 * caches keep a row at O(Lk * cost of the pattern): topk selections and
 * random key sets, each keyed by everything the result depends on.
 *
 * Run-time errors are the contract's (docs/language.md, "Run-time errors"):
 * an error of any operand anywhere in the domain is an error, whether or not
 * it can change the mask, so pattern operators evaluate both operands and an
 * index set all of its items (as the checker does with constants); only the
 * integer && || ?: and the per-head c ? P : Q skip what is not taken.  When
 * several errors exist the first is reported: rows in (b, h, r) order, keys
 * j ascending, then the tree's order (arguments before sub-patterns, kids
 * left to right).  topk(k, P) evaluates P over the whole row at its
 * granularity, once per row.  Primitive formulas use exact integer arithmetic
 * (window(l, r) is -l <= j - i <= r, dilated's w * d saturates), so huge but
 * legal sizes mean "everything" instead of an overflow.
 *
 * Scores are double: scale * sum_d (double)q[d] * (double)k[d] for tokens
 * (summed in 8 interleaved partial sums, then pairwise);
 * for topk at block granularity g > 1, dot(mean q, mean k) with the means
 * taken in double over the positions of each block that exist.  A NaN score
 * ranks below every number.
 */
#include "interp.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"
#include "ffi_call.h"
#include "threads.h"

typedef struct cand {
  int64_t j;         /* key (or key block) index at the topk's granularity */
  double s;          /* its score */
} cand;

typedef struct row_cache {
  const ir_node *node;  /* the TOPK or RANDOM node this slot belongs to */
  bool valid;
  int64_t b, h, i, g, n, k, seed; /* the key: batch, head, row, granularity,
                                     keys in the row, k or r, seed */
  uint8_t *sel;         /* n entries: selected keys of the cached row */
  cand *cands;          /* TOPK scratch: up to n candidates */
  double *mq, *mk;      /* TOPK scratch: D-vectors (block means) */
} row_cache;

typedef struct ctx {
  const ir_program *p;
  const rt_args *a;
  char *err;
  size_t errlen;
  rt_status st;         /* first error, RT_OK while none */
  int64_t b, h;         /* batch and query head of the row */
  int64_t i, j;         /* positions at the current granularity */
  int64_t Lq, Lk;       /* sizes at the current granularity */
  int64_t g;            /* current granularity (product of blocks sizes) */
  int64_t tLq, tLk;     /* token sizes */
  int64_t off;          /* absolute position of query row 0 */
  double scale;         /* effective scale */
  int n_caches;
  row_cache *caches;
  /* version 2 */
  int64_t (*dims)[IR_MAX_DIMS]; /* per input, at token level */
  int64_t *len;         /* per input: its elements */
  double s;             /* the score being modified (with score E) */
  int64_t *route_k;     /* route: cluster ids of the keys of (route_b, route_h) */
  int64_t route_b, route_h, route_qi, route_q;
  const ir_node *route_node;
} ctx;

/* ---- errors ---- */

/* Records a run-time error of the pattern at node n; returns false. */
static bool fail(ctx *c, rt_status st, const ir_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(ctx *c, rt_status st, const ir_node *n, const char *fmt,
                 ...) {
  if (c->st != RT_OK) return false;
  c->st = st;
  if (!c->err || !c->errlen) return false;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n && n->span.src >= 0 && c->p->diag) {
    char loc[256];
    diag_loc(c->p->diag, n->span, loc, sizeof loc);
    snprintf(c->err, c->errlen, "%s: error: %s", loc, msg);
  } else {
    snprintf(c->err, c->errlen, "%s", msg);
  }
  return false;
}

/* ---- integer expressions ---- */

static bool eval(ctx *c, const ir_node *n, int64_t *out);
static bool pat(ctx *c, const ir_node *n, bool *out);

static bool overflow(ctx *c, const ir_node *n) {
  return fail(c, RT_ERANGE, n, "integer overflow in '%s'", ir_op_text[n->op]);
}

/* Most arguments are constants: no call for them. */
static inline bool ev(ctx *c, const ir_node *n, int64_t *out) {
  if (n->op == IR_CONST) return *out = n->value, true;
  return eval(c, n, out);
}

static bool eval2(ctx *c, const ir_node *n, int64_t *x, int64_t *y) {
  return ev(c, n->kids[0], x) && ev(c, n->kids[1], y);
}

/* random()'s hash, written out here apart from runtime/arith.h's (the
 * oracle keeps its own copy of the semantics). */
static uint64_t interp_hash(uint64_t seed, uint64_t h, uint64_t i,
                            uint64_t t) {
  uint64_t z = (seed * 0x9E3779B97F4A7C15ull ^ h * 0xBF58476D1CE4E5B9ull ^
                i * 0x94D049BB133111EBull ^ t) +
               0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int64_t floor_div(int64_t x, int64_t y) {
  int64_t q = x / y;
  if (x % y != 0 && ((x < 0) != (y < 0))) q--;
  return q;
}

static int64_t floor_mod(int64_t x, int64_t y) {
  if (y == -1) return 0;  /* INT64_MIN % -1 is UB in C, 0 in Python */
  int64_t m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return m;
}

static bool eval_input(ctx *c, const ir_node *n, int64_t *out) {
  int64_t x;
  if (!eval(c, n->kids[0], &x)) return false;
  const char *name = c->p->inputs[n->value].name;
  if (x < 0 || x >= c->tLk)
    return fail(c, RT_ERANGE, n,
                "index %lld of input '%s' is out of range [0, %lld)",
                (long long)x, name, (long long)c->tLk);
  *out = c->a->inputs[n->value][x];
  return true;
}

/* The flat offset of element [kids] of input n->value, every index checked
 * against its dimension. */
static bool flat_index(ctx *c, const ir_node *n, int nk, int64_t *flat) {
  int64_t f = 0;
  const int64_t *dm = c->dims[n->value];
  for (int k = 0; k < nk; k++) {
    int64_t x;
    if (!eval(c, n->kids[k], &x)) return false;
    if (x < 0 || x >= dm[k])
      return fail(c, RT_ERANGE, n,
                  "index %lld of dimension %d of input '%s' is out of range [0, %lld)",
                  (long long)x, k + 1, c->p->inputs[n->value].name, (long long)dm[k]);
    f = f * dm[k] + x; /* < len, which fits */
  }
  *flat = f;
  return true;
}

static bool eval_inputn(ctx *c, const ir_node *n, int64_t *out) {
  int64_t f;
  if (!flat_index(c, n, n->n_kids, &f)) return false;
  *out = c->a->inputs[n->value][f];
  return true;
}

static bool eval_extern(ctx *c, const ir_node *n, int64_t *out) {
  int64_t args[16];  /* at most 16 (checked with the tree) */
  for (int k = 0; k < n->n_kids; k++)
    if (!eval(c, n->kids[k], &args[k])) return false;
  *out = ffi_call_pred(c->a->externs[n->value], n->n_kids, args) ? 1 : 0;
  return true;
}

static bool eval(ctx *c, const ir_node *n, int64_t *out) {
  int64_t x, y;
  switch (n->op) {
  case IR_CONST: *out = n->value; return true;
  case IR_VAR_I: *out = c->i; return true;
  case IR_VAR_J: *out = c->j; return true;
  case IR_VAR_H: *out = c->h; return true;
  case IR_SIZE_LQ: *out = c->Lq; return true;
  case IR_SIZE_LK: *out = c->Lk; return true;
  case IR_SIZE_H: *out = c->a->H; return true;
  case IR_RUNTIME: *out = c->a->runtime[n->value]; return true;
  case IR_INPUT: return eval_input(c, n, out);
  case IR_INPUTN: return eval_inputn(c, n, out);
  case IR_EXTERN: return eval_extern(c, n, out);
  case IR_VAR_B: *out = c->b; return true;
  case IR_SIZE_B: *out = c->a->B; return true;
  case IR_SIZE_HKV: *out = c->a->Hkv; return true;
  case IR_SIZE_D: *out = c->a->D; return true;
  case IR_IAND: if (!eval2(c, n, &x, &y)) return false; *out = x & y; return true;
  case IR_IOR: if (!eval2(c, n, &x, &y)) return false; *out = x | y; return true;
  case IR_IXOR: if (!eval2(c, n, &x, &y)) return false; *out = x ^ y; return true;
  case IR_SHL:
  case IR_SHR: {
    if (!eval2(c, n, &x, &y)) return false;
    ar_status st = n->op == IR_SHL ? ar_shl(x, y, out) : ar_shr(x, y, out);
    if (st == AR_SHIFT)
      return fail(c, RT_ERANGE, n, "shift count %lld is outside [0, 63]", (long long)y);
    if (st != AR_OK) return overflow(c, n);
    return true;
  }
  case IR_NEG:
    if (!eval(c, n->kids[0], &x)) return false;
    if (x == INT64_MIN) return overflow(c, n);
    *out = -x;
    return true;
  case IR_NOT:
    if (!eval(c, n->kids[0], &x)) return false;
    *out = !x;
    return true;
  case IR_ABS:
    if (!eval(c, n->kids[0], &x)) return false;
    if (x == INT64_MIN) return overflow(c, n);
    *out = x < 0 ? -x : x;
    return true;
  case IR_ADD:
    if (!eval2(c, n, &x, &y)) return false;
    if (__builtin_add_overflow(x, y, out)) return overflow(c, n);
    return true;
  case IR_SUB:
    if (!eval2(c, n, &x, &y)) return false;
    if (__builtin_sub_overflow(x, y, out)) return overflow(c, n);
    return true;
  case IR_MUL:
    if (!eval2(c, n, &x, &y)) return false;
    if (__builtin_mul_overflow(x, y, out)) return overflow(c, n);
    return true;
  case IR_DIV:
  case IR_MOD:
    if (!eval2(c, n, &x, &y)) return false;
    if (y == 0) return fail(c, RT_ERANGE, n, "division by zero");
    if (n->op == IR_DIV) {
      if (x == INT64_MIN && y == -1) return overflow(c, n);
      *out = floor_div(x, y);
    } else {
      *out = floor_mod(x, y);
    }
    return true;
  case IR_MIN:
    if (!eval2(c, n, &x, &y)) return false;
    *out = x < y ? x : y;
    return true;
  case IR_MAX:
    if (!eval2(c, n, &x, &y)) return false;
    *out = x > y ? x : y;
    return true;
  case IR_LT: if (!eval2(c, n, &x, &y)) return false; *out = x < y; return true;
  case IR_LE: if (!eval2(c, n, &x, &y)) return false; *out = x <= y; return true;
  case IR_GT: if (!eval2(c, n, &x, &y)) return false; *out = x > y; return true;
  case IR_GE: if (!eval2(c, n, &x, &y)) return false; *out = x >= y; return true;
  case IR_EQ: if (!eval2(c, n, &x, &y)) return false; *out = x == y; return true;
  case IR_NE: if (!eval2(c, n, &x, &y)) return false; *out = x != y; return true;
  case IR_LAND:
    if (!eval(c, n->kids[0], &x)) return false;
    if (!x) { *out = 0; return true; }
    if (!eval(c, n->kids[1], &y)) return false;
    *out = y != 0;
    return true;
  case IR_LOR:
    if (!eval(c, n->kids[0], &x)) return false;
    if (x) { *out = 1; return true; }
    if (!eval(c, n->kids[1], &y)) return false;
    *out = y != 0;
    return true;
  case IR_SEL:
    if (!eval(c, n->kids[0], &x)) return false;
    return eval(c, n->kids[x ? 1 : 2], out);
  default:
    return fail(c, RT_EINTERNAL, n, "internal error: '%s' (%s) is not an integer expression",
                ir_op_text[n->op], ir_op_name[n->op]);
  }
}

/* ---- index sets ---- */

/* v < 0 counts from the end (Lk at the current granularity). */
static int64_t from_end(const ctx *c, int64_t v) { return v < 0 ? c->Lk + v : v; }

/* Every item is evaluated (an error in any item is an error). */
static bool in_set_as(ctx *c, const ir_node *set, int64_t x, bool raw, bool *out) {
  if (set->op != IR_SET)
    return fail(c, RT_EINTERNAL, set, "internal error: '%s' is not an index set",
                ir_op_name[set->op]);
  bool in = false;
  for (int k = 0; k < set->n_kids; k++) {
    const ir_node *it = set->kids[k];
    if (it->op == IR_INROW) {
      int64_t f, w = c->dims[it->value][it->n_kids];
      if (!flat_index(c, it, it->n_kids, &f)) return false;
      const int32_t *row = c->a->inputs[it->value] + f * w;
      for (int64_t t = 0; t < w; t++) in |= (raw ? row[t] : from_end(c, row[t])) == x;
      continue;
    }
    if (it->op == IR_RANGE) {
      int64_t lo, hi;
      if (!eval2(c, it, &lo, &hi)) return false;
      if (!raw) lo = from_end(c, lo), hi = from_end(c, hi);
      in |= lo <= x && x < hi;
    } else {
      int64_t v;
      if (!eval(c, it, &v)) return false;
      in |= (raw ? v : from_end(c, v)) == x;
    }
  }
  *out = in;
  return true;
}

static bool in_set(ctx *c, const ir_node *set, int64_t x, bool *out) {
  return in_set_as(c, set, x, false, out);
}

/* ---- argument checks of primitives ---- */

static bool arg_at_least(ctx *c, const ir_node *n, int kid, int64_t min,
                         const char *what, int64_t *out) {
  if (!ev(c, n->kids[kid], out)) return false;
  if (*out < min)
    return fail(c, RT_ERANGE, n->kids[kid], "%s of %s is %lld, must be >= %lld", what,
                ir_op_text[n->op], (long long)*out, (long long)min);
  return true;
}

/* ---- per-row caches ---- */

static row_cache *cache_of(ctx *c, const ir_node *n) {
  for (int k = 0; k < c->n_caches; k++)
    if (c->caches[k].node == n) return &c->caches[k];
  return NULL;
}

static bool cache_hit(const row_cache *rc, const ctx *c, int64_t k,
                      int64_t seed) {
  return rc->valid && rc->b == c->b && rc->h == c->h && rc->i == c->i &&
         rc->g == c->g && rc->n == c->Lk && rc->k == k && rc->seed == seed;
}

static void cache_key(row_cache *rc, const ctx *c, int64_t k, int64_t seed) {
  rc->valid = true;
  rc->b = c->b, rc->h = c->h, rc->i = c->i, rc->g = c->g, rc->n = c->Lk;
  rc->k = k, rc->seed = seed;
}

/* ---- random ---- */

static bool eval_random(ctx *c, const ir_node *n, bool *out) {
  int64_t r, seed;
  if (!arg_at_least(c, n, 0, 0, "the key count r", &r)) return false;
  if (!eval(c, n->kids[1], &seed)) return false;
  if (c->Lk <= 0) return *out = false, true;
  row_cache *rc = cache_of(c, n);
  if (!cache_hit(rc, c, r, seed)) {
    rc->valid = false;
    memset(rc->sel, 0, (size_t)c->Lk);
    /* Stops once every key is drawn: a huge r costs about Lk log Lk. */
    for (int64_t t = 0, hit = 0; t < r && hit < c->Lk; t++) {
      uint64_t x = interp_hash((uint64_t)seed, (uint64_t)c->h, (uint64_t)c->i,
                           (uint64_t)t) % (uint64_t)c->Lk;
      hit += !rc->sel[x];
      rc->sel[x] = 1;
    }
    cache_key(rc, c, r, seed);
  }
  *out = rc->sel[c->j];
  return true;
}

/* ---- topk ---- */

/* sum_d x[d] * y[d] in double, in 8 lanes (d mod 8) added pairwise at the
 * end: the same value for the same vectors, and it vectorises.  x is a row
 * of elements of type t, y of type ty (runtime/dtype.h), widened exactly. */
static double dot2(const void *xp, int t, const void *yp, int ty, int64_t D) {
  double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  if (t == RT_F32 && ty == RT_F32) {
    const float *x = xp, *y = yp;
    for (; d + 8 <= D; d += 8)
      for (int u = 0; u < 8; u++) l[u] += (double)x[d + u] * (double)y[d + u];
  }
  for (; d + 8 <= D; d += 8)
    for (int u = 0; u < 8; u++)
      l[u] += (double)rt_load(xp, d + u, t) * (double)rt_load(yp, d + u, ty);
  for (int u = 0; d < D; d++, u++)
    l[u] += (double)rt_load(xp, d, t) * (double)rt_load(yp, d, ty);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static double dot(const void *x, const void *y, int64_t D, int t) {
  return dot2(x, t, y, t, D);
}

/* Row r of head h of batch b of t, whose elements are of type dt. */
static const void *row_ptr(const rt_tensor *t, int dt, int64_t b, int64_t h,
                           int64_t r) {
  return (const char *)t->data +
         (b * t->sb + h * t->sh + r * t->sl) * (int64_t)rt_dtype_size(dt);
}

static int64_t kv_head(const ctx *c) { return c->h / (c->a->H / c->a->Hkv); }

/* Mean over rows [lo, hi) of tensor t (batch b, head h) into m[D]. */
static void mean_rows(const rt_tensor *t, int dt, int64_t b, int64_t h,
                      int64_t lo, int64_t hi, int64_t D, double *m) {
  for (int64_t d = 0; d < D; d++) m[d] = 0;
  for (int64_t r = lo; r < hi; r++) {
    const void *x = row_ptr(t, dt, b, h, r);
    for (int64_t d = 0; d < D; d++) m[d] += rt_load(x, d, dt);
  }
  if (hi > lo)
    for (int64_t d = 0; d < D; d++) m[d] /= (double)(hi - lo);
}

/* [x*g, x*g + g) clipped to [lo, hi): the token positions of block x. */
static void block_span(int64_t x, int64_t g, int64_t lo, int64_t hi,
                       int64_t *a, int64_t *b) {
  int64_t s = x * g;  /* x <= position / g, so no overflow */
  int64_t e = s > INT64_MAX - g ? INT64_MAX : s + g;
  *a = s > lo ? s : lo;
  *b = e < hi ? e : hi;
  if (*b < *a) *b = *a;
}

static int by_score(const void *x, const void *y) {
  const cand *p = x, *q = y;
  bool pn = isnan(p->s), qn = isnan(q->s);
  if (pn != qn) return pn ? 1 : -1;
  if (!pn && p->s != q->s) return p->s > q->s ? -1 : 1;
  return (p->j > q->j) - (p->j < q->j);
}

static void score_cands(ctx *c, row_cache *rc, int64_t n_c) {
  const rt_args *a = c->a;
  int64_t D = a->D, kvh = kv_head(c);
  if (c->g == 1) {
    const void *q = row_ptr(&a->q, a->dtype, c->b, c->h, c->i - c->off);
    for (int64_t t = 0; t < n_c; t++) {
      const void *k = row_ptr(&a->k, a->dtype, c->b, kvh, rc->cands[t].j);
      rc->cands[t].s = c->scale * dot(q, k, D, a->dtype);
    }
    return;
  }
  int64_t lo, hi;
  block_span(c->i, c->g, c->off, c->off + c->tLq, &lo, &hi);
  mean_rows(&a->q, a->dtype, c->b, c->h, lo - c->off, hi - c->off, D, rc->mq);
  for (int64_t t = 0; t < n_c; t++) {
    block_span(rc->cands[t].j, c->g, 0, c->tLk, &lo, &hi);
    mean_rows(&a->k, a->dtype, c->b, kvh, lo, hi, D, rc->mk);
    double sum = 0;
    for (int64_t d = 0; d < D; d++) sum += rc->mq[d] * rc->mk[d];
    rc->cands[t].s = sum;
  }
}

static bool eval_topk(ctx *c, const ir_node *n, bool *out) {
  int64_t k;
  if (!arg_at_least(c, n, 0, 0, "k", &k)) return false;
  row_cache *rc = cache_of(c, n);
  if (!cache_hit(rc, c, k, 0)) {
    rc->valid = false;
    int64_t j = c->j, n_c = 0;
    for (c->j = 0; c->j < c->Lk; c->j++) {
      bool in;
      if (!pat(c, n->kids[1], &in)) return false;
      if (in) rc->cands[n_c++].j = c->j;
    }
    c->j = j;
    memset(rc->sel, 0, (size_t)c->Lk);
    if (n_c > k) {
      score_cands(c, rc, n_c);
      qsort(rc->cands, (size_t)n_c, sizeof *rc->cands, by_score);
      n_c = k;
    }
    for (int64_t t = 0; t < n_c; t++) rc->sel[rc->cands[t].j] = 1;
    cache_key(rc, c, k, 0);
  }
  *out = rc->sel[c->j];
  return true;
}

/* ---- route ---- */

/* argmax_t dot(x, C[h, t]) in double, ties to the smaller t. */
static int64_t cluster(const ctx *c, const ir_node *n, const void *x) {
  const int64_t *dm = c->dims[n->value];
  const float *C = (const float *)(const void *)c->a->inputs[n->value] +
                   c->h * dm[1] * dm[2];
  int64_t best = 0;
  double bv = -INFINITY;
  for (int64_t t = 0; t < dm[1]; t++) {
    double v = dot2(x, c->a->dtype, C + t * dm[2], RT_F32, c->a->D);
    if (t == 0 || v > bv) bv = v, best = t;
  }
  return best;
}

/* c(q_r) == c(k_j): key clusters once per (b, h), the query's once per row. */
static bool eval_route(ctx *c, const ir_node *n, bool *out) {
  const int64_t *dm = c->dims[n->value];
  if (dm[0] != c->a->H || dm[2] != c->a->D || dm[1] < 1)
    return fail(c, RT_ERANGE, n, "route: centroids '%s' are [%lld, %lld, %lld], need [H = %lld, "
                "n >= 1, D = %lld]", c->p->inputs[n->value].name, (long long)dm[0],
                (long long)dm[1], (long long)dm[2], (long long)c->a->H, (long long)c->a->D);
  if (c->route_node != n || c->route_b != c->b || c->route_h != c->h) {
    if (c->route_node && c->route_node != n)
      return fail(c, RT_EUNSUPPORTED, n, "one route per pattern");
    for (int64_t j = 0; j < c->tLk; j++)
      c->route_k[j] = cluster(c, n, row_ptr(&c->a->k, c->a->dtype, c->b, kv_head(c), j));
    c->route_node = n, c->route_b = c->b, c->route_h = c->h, c->route_qi = -1;
  }
  if (c->route_qi != c->i) {
    c->route_q = cluster(c, n, row_ptr(&c->a->q, c->a->dtype, c->b, c->h, c->i - c->off));
    c->route_qi = c->i;
  }
  *out = c->route_q == c->route_k[c->j];
  return true;
}

/* ---- scores (with score E), in double ---- */

static bool eval_f(ctx *c, const ir_node *n, double *out) {
  double x, y;
  int64_t v;
  switch (n->op) {
  case IR_FCONST: *out = n->fvalue; return true;
  case IR_FSCORE: *out = c->s; return true;
  case IR_FCVT:
    if (!eval(c, n->kids[0], &v)) return false;
    *out = (double)v;
    return true;
  case IR_FINPUT: {
    int64_t f;
    if (!flat_index(c, n, n->n_kids, &f)) return false;
    *out = ((const float *)(const void *)c->a->inputs[n->value])[f];
    return true;
  }
  case IR_FSEL:
    if (!eval(c, n->kids[0], &v)) return false;
    return eval_f(c, n->kids[v ? 1 : 2], out);
  default: break;
  }
  if (n->n_kids < 1 || !eval_f(c, n->kids[0], &x)) return false;
  if (n->n_kids == 2 && !eval_f(c, n->kids[1], &y)) return false;
  switch (n->op) {
  case IR_FNEG: *out = -x; return true;
  case IR_FABS: *out = fabs(x); return true;
  case IR_FEXP: *out = exp(x); return true;
  case IR_FLOG: *out = log(x); return true;
  case IR_FSQRT: *out = sqrt(x); return true;
  case IR_FTANH: *out = tanh(x); return true;
  case IR_FADD: *out = x + y; return true;
  case IR_FSUB: *out = x - y; return true;
  case IR_FMUL: *out = x * y; return true;
  case IR_FDIV: *out = x / y; return true;
  case IR_FMIN: *out = x < y || isnan(y) ? x : y; return true;
  case IR_FMAX: *out = x > y || isnan(y) ? x : y; return true;
  default:
    return fail(c, RT_EINTERNAL, n, "internal error: '%s' is not a float expression",
                ir_op_name[n->op]);
  }
}

/* d/ds of a float expression (forward mode), with its value. */
static bool eval_fd(ctx *c, const ir_node *n, double *val, double *der) {
  double x, dx, y = 0, dy = 0;
  int64_t v;
  switch (n->op) {
  case IR_FSCORE: *val = c->s, *der = 1; return true;
  case IR_FCONST: case IR_FCVT: case IR_FINPUT:
    *der = 0;
    return eval_f(c, n, val);
  case IR_FSEL:
    if (!eval(c, n->kids[0], &v)) return false;
    return eval_fd(c, n->kids[v ? 1 : 2], val, der);
  default: break;
  }
  if (!eval_fd(c, n->kids[0], &x, &dx)) return false;
  if (n->n_kids == 2 && !eval_fd(c, n->kids[1], &y, &dy)) return false;
  switch (n->op) {
  case IR_FNEG: *val = -x, *der = -dx; return true;
  case IR_FABS: *val = fabs(x), *der = x < 0 ? -dx : dx; return true;
  case IR_FEXP: *val = exp(x), *der = *val * dx; return true;
  case IR_FLOG: *val = log(x), *der = dx / x; return true;
  case IR_FSQRT: *val = sqrt(x), *der = dx / (2 * *val); return true;
  case IR_FTANH: *val = tanh(x), *der = (1 - *val * *val) * dx; return true;
  case IR_FADD: *val = x + y, *der = dx + dy; return true;
  case IR_FSUB: *val = x - y, *der = dx - dy; return true;
  case IR_FMUL: *val = x * y, *der = dx * y + x * dy; return true;
  case IR_FDIV: *val = x / y, *der = (dx * y - x * dy) / (y * y); return true;
  case IR_FMIN: {
    bool a = x < y || isnan(y);
    *val = a ? x : y, *der = a ? dx : dy;
    return true;
  }
  case IR_FMAX: {
    bool a = x > y || isnan(y);
    *val = a ? x : y, *der = a ? dx : dy;
    return true;
  }
  default: return eval_f(c, n, val);
  }
}

/* Adds adj * dE/dx to g[x] for every float input element x E reads
 * (reverse mode: each node's adjoint pushed to its kids). */
static bool grad_f(ctx *c, const ir_node *n, double adj, double *const *g) {
  double x, y = 0;
  int64_t v;
  if (adj == 0) return true;
  switch (n->op) {
  case IR_FSCORE: case IR_FCONST: case IR_FCVT: return true;
  case IR_FINPUT: {
    int64_t f;
    if (!flat_index(c, n, n->n_kids, &f)) return false;
    if (g[n->value]) g[n->value][f] += adj;
    return true;
  }
  case IR_FSEL:
    if (!eval(c, n->kids[0], &v)) return false;
    return grad_f(c, n->kids[v ? 1 : 2], adj, g);
  default: break;
  }
  if (!eval_f(c, n->kids[0], &x)) return false;
  if (n->n_kids == 2 && !eval_f(c, n->kids[1], &y)) return false;
  switch (n->op) {
  case IR_FNEG: return grad_f(c, n->kids[0], -adj, g);
  case IR_FABS: return grad_f(c, n->kids[0], x < 0 ? -adj : adj, g);
  case IR_FEXP: return grad_f(c, n->kids[0], adj * exp(x), g);
  case IR_FLOG: return grad_f(c, n->kids[0], adj / x, g);
  case IR_FSQRT: return grad_f(c, n->kids[0], adj / (2 * sqrt(x)), g);
  case IR_FTANH: return grad_f(c, n->kids[0], adj * (1 - tanh(x) * tanh(x)), g);
  case IR_FADD: return grad_f(c, n->kids[0], adj, g) && grad_f(c, n->kids[1], adj, g);
  case IR_FSUB: return grad_f(c, n->kids[0], adj, g) && grad_f(c, n->kids[1], -adj, g);
  case IR_FMUL: return grad_f(c, n->kids[0], adj * y, g) && grad_f(c, n->kids[1], adj * x, g);
  case IR_FDIV:
    return grad_f(c, n->kids[0], adj / y, g) && grad_f(c, n->kids[1], -adj * x / (y * y), g);
  case IR_FMIN: return grad_f(c, n->kids[x < y || isnan(y) ? 0 : 1], adj, g);
  case IR_FMAX: return grad_f(c, n->kids[x > y || isnan(y) ? 0 : 1], adj, g);
  default: return true;
  }
}

/* ---- patterns ---- */

static int64_t ceil_div(int64_t x, int64_t y) { return x / y + (x % y != 0); }

static bool eval_blocks(ctx *c, const ir_node *n, bool *out) {
  int64_t b;
  if (!arg_at_least(c, n, 0, 1, "the block size", &b)) return false;
  ctx saved = *c;
  c->i /= b, c->j /= b;
  c->Lq = ceil_div(c->Lq, b), c->Lk = ceil_div(c->Lk, b);
  if (__builtin_mul_overflow(c->g, b, &c->g)) c->g = INT64_MAX;
  bool ok = pat(c, n->kids[1], out);
  c->i = saved.i, c->j = saved.j, c->Lq = saved.Lq, c->Lk = saved.Lk;
  c->g = saved.g;
  return ok;
}

static bool pat(ctx *c, const ir_node *n, bool *out) {
  int64_t x, y;
  bool p;
  switch (n->op) {
  case IR_FULL: *out = true; return true;
  case IR_NONE: *out = false; return true;
  case IR_CAUSAL: *out = c->j <= c->i; return true;
  case IR_WINDOW:
    if (!arg_at_least(c, n, 0, 0, "the left size", &x) ||
        !arg_at_least(c, n, 1, 0, "the right size", &y))
      return false;
    *out = -x <= c->j - c->i && c->j - c->i <= y;
    return true;
  case IR_DILATED: {
    if (!arg_at_least(c, n, 0, 0, "the width w", &x) ||
        !arg_at_least(c, n, 1, 1, "the dilation d", &y))
      return false;
    int64_t dist = c->i > c->j ? c->i - c->j : c->j - c->i, reach;
    if (__builtin_mul_overflow(x, y, &reach)) reach = INT64_MAX;
    *out = dist <= reach && dist % y == 0;
    return true;
  }
  case IR_BLOCK:
    if (!arg_at_least(c, n, 0, 1, "the block size", &x)) return false;
    *out = c->i / x == c->j / x;
    return true;
  case IR_STRIDE:
    if (!arg_at_least(c, n, 0, 1, "the stride", &x)) return false;
    *out = (c->i - c->j) % x == 0;
    return true;
  case IR_ROWS: return in_set(c, n->kids[0], c->i, out);
  case IR_COLS: return in_set(c, n->kids[0], c->j, out);
  case IR_GLOBAL:
    if (!in_set(c, n->kids[0], c->i, out)) return false;
    return *out || in_set(c, n->kids[0], c->j, out); /* the same items */
  case IR_RANDOM: return eval_random(c, n, out);
  case IR_WHERE:
    if (!eval(c, n->kids[0], &x)) return false;
    *out = x != 0;
    return true;
  case IR_TOPK: return eval_topk(c, n, out);
  case IR_OR:  /* both operands: their errors count everywhere */
    if (!pat(c, n->kids[0], out) || !pat(c, n->kids[1], &p)) return false;
    *out = *out || p;
    return true;
  case IR_AND:
    if (!pat(c, n->kids[0], out) || !pat(c, n->kids[1], &p)) return false;
    *out = *out && p;
    return true;
  case IR_MINUS:
    if (!pat(c, n->kids[0], out) || !pat(c, n->kids[1], &p)) return false;
    *out = *out && !p;
    return true;
  case IR_COMPL:
    if (!pat(c, n->kids[0], &p)) return false;
    *out = !p;
    return true;
  case IR_PSEL:
    if (!eval(c, n->kids[0], &x)) return false;
    return pat(c, n->kids[x ? 1 : 2], out);
  case IR_BLOCKS: return eval_blocks(c, n, out);
  case IR_DIAG: {
    int64_t d;
    if (__builtin_sub_overflow(c->i, c->j, &d)) return *out = false, true;
    return in_set_as(c, n->kids[0], d, true, out);
  }
  case IR_ROUTE: return eval_route(c, n, out);
  default:
    return fail(c, RT_EINTERNAL, n, "internal error: '%s' (%s) is not a pattern",
                ir_op_text[n->op], ir_op_name[n->op]);
  }
}

/* ---- set-up ---- */

static int count_cached(const ir_node *n) {
  if (!n) return 0;
  int k = n->op == IR_TOPK || n->op == IR_RANDOM;
  for (int t = 0; t < n->n_kids; t++) k += count_cached(n->kids[t]);
  return k;
}

static void list_cached(const ir_node *n, row_cache *rc, int *k) {
  if (!n) return;
  if (n->op == IR_TOPK || n->op == IR_RANDOM) rc[(*k)++].node = n;
  for (int t = 0; t < n->n_kids; t++) list_cached(n->kids[t], rc, k);
}

static void ctx_free(ctx *c) {
  for (int k = 0; k < c->n_caches; k++) {
    free(c->caches[k].sel);
    free(c->caches[k].cands);
    free(c->caches[k].mq);
    free(c->caches[k].mk);
  }
  free(c->caches);
  c->caches = NULL;
  c->n_caches = 0;
  free(c->dims), free(c->len), free(c->route_k);
  c->dims = NULL, c->len = NULL, c->route_k = NULL;
}

static rt_status ctx_init(ctx *c, const ir_program *p, const rt_args *a,
                          char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->p = p, c->a = a, c->err = err, c->errlen = errlen;
  c->tLq = a->Lq, c->tLk = a->Lk;
  c->off = p->top_left ? 0 : a->Lq <= a->Lk ? a->Lk - a->Lq : 0;
  c->scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  const int64_t sz[6] = {a->B, a->H, a->Hkv, a->Lq, a->Lk, a->D};
  if (p->n_inputs > 0) {
    c->dims = calloc((size_t)p->n_inputs, sizeof *c->dims);
    c->len = calloc((size_t)p->n_inputs, sizeof *c->len);
    if (!c->dims || !c->len) goto oom;
    for (int k = 0; k < p->n_inputs; k++) {
      int nd = p->inputs[k].n_dims ? p->inputs[k].n_dims : 1;
      for (int d = 0; d < nd && d < IR_MAX_DIMS; d++) c->dims[k][d] = ir_input_dim(p, k, d, sz);
      c->len[k] = ir_input_len(p, k, sz);
    }
  }
  if (ir_has_op(p->root, IR_ROUTE)) {
    c->route_k = malloc(sizeof *c->route_k * (size_t)(a->Lk > 0 ? a->Lk : 1));
    if (!c->route_k) goto oom;
  }
  int n = count_cached(p->root);
  if (n == 0) return RT_OK;
  c->caches = calloc((size_t)n, sizeof *c->caches);
  if (!c->caches) goto oom;
  c->n_caches = n;
  int k = 0;
  list_cached(p->root, c->caches, &k);
  for (k = 0; k < n; k++) {
    row_cache *rc = &c->caches[k];
    rc->sel = malloc((size_t)(a->Lk > 0 ? a->Lk : 1));
    if (!rc->sel) goto oom;
    if (rc->node->op == IR_TOPK) {
      rc->cands = malloc(sizeof *rc->cands * (size_t)(a->Lk > 0 ? a->Lk : 1));
      rc->mq = malloc(sizeof *rc->mq * (size_t)(a->D > 0 ? a->D : 1));
      rc->mk = malloc(sizeof *rc->mk * (size_t)(a->D > 0 ? a->D : 1));
      if (!rc->cands || !rc->mq || !rc->mk) goto oom;
    }
  }
  return RT_OK;
oom:
  ctx_free(c);
  return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
}

/* Checks what both entry points need; attention adds v, o and D. */
static rt_status check_args(const ir_program *p, const rt_args *a,
                            bool attention, char *err, size_t errlen) {
  if (!p || !p->root) return rt_errf(err, errlen, RT_EINVAL, "no program");
  if (!ir_check(p, err, errlen)) return RT_EINVAL;
  if (!a) return rt_errf(err, errlen, RT_EINVAL, "no arguments");
  bool tensors = attention || ir_has_op(p->root, IR_TOPK) || ir_has_op(p->root, IR_ROUTE);
  /* Empty shapes are fine (rt.h: rt_has_rows, rt_fill_no_keys). */
  if (a->B < 0 || a->H < 0 || a->Lq < 0 || a->Lk < 0 ||
      (tensors && (a->Hkv < 0 || (a->H > 0 && a->Hkv < 1))))
    return rt_errf(err, errlen, RT_EINVAL,
                   "bad shape: B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld (sizes must be >= 0, "
                   "Hkv >= 1 when H >= 1)",
                   (long long)a->B, (long long)a->H, (long long)a->Hkv,
                   (long long)a->Lq, (long long)a->Lk);
  if (tensors && a->H > 0 && a->H % a->Hkv != 0)
    return rt_errf(err, errlen, RT_EINVAL,
                   "H=%lld is not a multiple of Hkv=%lld", (long long)a->H,
                   (long long)a->Hkv);
  if ((uint64_t)a->Lk > SIZE_MAX / sizeof(cand))
    return rt_errf(err, errlen, RT_EINVAL, "Lk=%lld is too large", (long long)a->Lk);
  /* A tensor without elements may be NULL. */
  bool rows = rt_has_rows(a), keys = a->B > 0 && a->Hkv > 0 && a->Lk > 0;
  if (tensors) {
    if (a->D < 1)
      return rt_errf(err, errlen, RT_EINVAL, "bad head dimension D=%lld", (long long)a->D);
    if (!a->q.data && rows) return rt_errf(err, errlen, RT_EINVAL, "q is NULL");
    if (!a->k.data && keys) return rt_errf(err, errlen, RT_EINVAL, "k is NULL");
  }
  if (attention) {
    if (!a->v.data && keys) return rt_errf(err, errlen, RT_EINVAL, "v is NULL");
    if (!a->o.data && rows) return rt_errf(err, errlen, RT_EINVAL, "o is NULL");
  }
  if (p->n_runtime > 0 && !a->runtime)
    return rt_errf(err, errlen, RT_EINVAL, "missing runtime scalars (pattern has %d, first '%s')",
                   p->n_runtime, p->runtime[0].name);
  const int64_t sz[6] = {a->B, a->H, a->Hkv, a->Lq, a->Lk, a->D};
  for (int k = 0; k < p->n_inputs; k++) {
    int64_t len = ir_input_len(p, k, sz);
    if (len < 0)
      return rt_errf(err, errlen, RT_ERANGE, "input '%s': a dimension is negative or its "
                     "size overflows for these sizes", p->inputs[k].name);
    if (len > 0 && (!a->inputs || !a->inputs[k]))
      return rt_errf(err, errlen, RT_EINVAL, "missing input array '%s'",
                     p->inputs[k].name);
  }
  for (int k = 0; k < p->n_externs; k++)
    if (!a->externs || !a->externs[k])
      return rt_errf(err, errlen, RT_EINVAL, "missing extern function '%s'",
                     p->externs[k].name);
  return RT_OK;
}

/* Evaluates the mask of row r (absolute position r + off) into out[Lk]. */
static bool mask_row(ctx *c, int64_t b, int64_t h, int64_t r, uint8_t *out) {
  c->b = b, c->h = h;
  c->g = 1, c->Lq = c->tLq, c->Lk = c->tLk;
  c->i = r + c->off;
  for (c->j = 0; c->j < c->tLk; c->j++) {
    bool in;
    if (!pat(c, c->p->root, &in)) return false;
    out[c->j] = in;
  }
  return true;
}

/* ---- entry points ---- */

rt_status interp_mask_rows(const ir_program *p, const rt_args *a, int64_t b,
                           int64_t h, int64_t r0, int64_t n, uint8_t *out,
                           char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  rt_status st = check_args(p, a, false, err, errlen);
  if (st != RT_OK) return st;
  if (!out) return rt_errf(err, errlen, RT_EINVAL, "out is NULL");
  if (b < 0 || b >= a->B || h < 0 || h >= a->H || r0 < 0 || n < 1 ||
      r0 >= a->Lq || n > a->Lq - r0)
    return rt_errf(err, errlen, RT_EINVAL,
                   "rows (b=%lld, h=%lld, %lld rows from r=%lld) outside B=%lld H=%lld Lq=%lld",
                   (long long)b, (long long)h, (long long)n, (long long)r0,
                   (long long)a->B, (long long)a->H, (long long)a->Lq);
  ctx c;
  st = ctx_init(&c, p, a, err, errlen);
  if (st != RT_OK) return st;
  for (int64_t t = 0; t < n; t++)
    if (!mask_row(&c, b, h, r0 + t, out + t * a->Lk)) break;
  st = c.st;
  ctx_free(&c);
  return st;
}

rt_status interp_mask_row(const ir_program *p, const rt_args *a, int64_t b,
                          int64_t h, int64_t r, uint8_t *out, char *err,
                          size_t errlen) {
  return interp_mask_rows(p, a, b, h, r, 1, out, err, errlen);
}

/* Softmax attention of one row over the keys allowed by mask, IEEE all the
 * way: a NaN score (or a +inf one: exp(s - m) is exp(NaN)) makes the row NaN;
 * -inf scores weigh nothing, and a row of only -inf scores is an empty row
 * (o = 0, lse = -inf), as one with no allowed key.  Scores have the range
 * of the kernels' (float32 s * log2 e): beyond +-SCORE_MAX they are +-inf. */
#define SCORE_MAX ((double)FLT_MAX * 0.69314718055994530942)
/* E of `with score E` at (c->b, c->h, row r, key j) for score *s, in place:
 * at token granularity.  false on a run-time error. */
static bool score_of(ctx *c, int64_t r, int64_t j, double *s) {
  c->g = 1, c->Lq = c->tLq, c->Lk = c->tLk;
  c->i = r + c->off, c->j = j, c->s = *s;
  return eval_f(c, c->p->score, s);
}

static bool attend_row(ctx *c, const uint8_t *mask, double *s,
                       double *acc, int64_t r) {
  const rt_args *a = c->a;
  int64_t D = a->D, kvh = kv_head(c), n = 0;
  int dt = a->dtype;
  const void *q = row_ptr(&a->q, dt, c->b, c->h, r);
  double m = -INFINITY, sum = 0;
  for (int64_t j = 0; j < a->Lk; j++) {
    if (!mask[j]) continue;
    const void *k = row_ptr(&a->k, dt, c->b, kvh, j);
    s[j] = c->scale * dot(q, k, D, dt);
    if (fabs(s[j]) > SCORE_MAX) s[j] = copysign(INFINITY, s[j]);
    if (c->p->score) {
      if (!score_of(c, r, j, &s[j])) return false;
      if (fabs(s[j]) > SCORE_MAX) s[j] = copysign(INFINITY, s[j]);
    }
    m = n++ == 0 || s[j] > m ? s[j] : m;
  }
  if (m == -INFINITY) n = 0;  /* every score -inf: no key, as an empty row */
  for (int64_t d = 0; d < D; d++) acc[d] = 0;
  for (int64_t j = 0; j < a->Lk && n > 0; j++) {
    if (!mask[j]) continue;
    double e = exp(s[j] - m);
    const void *v = row_ptr(&a->v, dt, c->b, kvh, j);
    sum += e;
    if (dt == RT_F32)
      for (int64_t d = 0; d < D; d++) acc[d] += e * ((const float *)v)[d];
    else
      for (int64_t d = 0; d < D; d++) acc[d] += e * rt_load(v, d, dt);
  }
  int64_t o = c->b * a->o.sb + c->h * a->o.sh + r * a->o.sl;
  for (int64_t d = 0; d < D; d++)
    rt_store(a->o.data, o + d, dt, n > 0 ? (float)(acc[d] / sum) : 0.0f);
  if (a->lse)
    a->lse[c->b * a->lse_sb + c->h * a->lse_sh + r] =
        n > 0 ? (float)(m + log(sum)) : -INFINITY;
  return true;
}

/* Rows are numbered (b, h, r) with r fastest and handed out in chunks over
 * a->threads workers (0: all cores) by the runtime's parallel for
 * (runtime/threads.h).  A worker stops at its first error; chunks starting
 * after the lowest failing row are skipped, every earlier one is finished,
 * so the error reported is always the first in row order. */
typedef struct worker {
  bool ready;                /* scratch set up (on its first chunk) */
  ctx c;
  uint8_t *mask;
  double *s, *acc;
  rt_status st;              /* its first error */
  int64_t err_row;           /* the row of that error; -1: set-up failed */
  char err[512];
} worker;

typedef struct job {
  const ir_program *p;
  const rt_args *a;
  int64_t n_rows;            /* B * H * Lq */
  int64_t chunk;             /* rows per task */
  atomic_llong first_err;    /* lowest failing row so far; n_rows if none */
  worker *ws;                /* one per pool thread */
} job;

static void record_err(job *jb, int64_t row) {
  long long cur = atomic_load(&jb->first_err);
  while (row < cur && !atomic_compare_exchange_weak(&jb->first_err, &cur, row)) {
  }
}

static bool worker_setup(job *jb, worker *w) {
  const rt_args *a = jb->a;
  w->ready = true;
  w->st = ctx_init(&w->c, jb->p, a, w->err, sizeof w->err);
  if (w->st == RT_OK) {
    w->mask = malloc((size_t)a->Lk);
    w->s = malloc(sizeof *w->s * (size_t)a->Lk);
    w->acc = malloc(sizeof *w->acc * (size_t)a->D);
    if (!w->mask || !w->s || !w->acc)
      w->st = rt_errf(w->err, sizeof w->err, RT_ENOMEM, "out of memory");
  }
  if (w->st == RT_OK) return true;
  w->err_row = -1;
  record_err(jb, -1);
  return false;
}

static void work(void *arg, int64_t task, int wid) {
  job *jb = arg;
  worker *w = &jb->ws[wid];
  const rt_args *a = jb->a;
  if (!w->ready && !worker_setup(jb, w)) return;
  if (w->st != RT_OK) return;
  int64_t lo = task * jb->chunk;
  if (lo > atomic_load(&jb->first_err)) return;
  int64_t hi = lo + jb->chunk < jb->n_rows ? lo + jb->chunk : jb->n_rows;
  for (int64_t row = lo; row < hi; row++) {
    int64_t r = row % a->Lq, bh = row / a->Lq;
    if (!mask_row(&w->c, bh / a->H, bh % a->H, r, w->mask)) {
      w->st = w->c.st;
      w->err_row = row;
      record_err(jb, row);
      return;
    }
    if (!attend_row(&w->c, w->mask, w->s, w->acc, r)) {
      w->st = w->c.st;
      w->err_row = row;
      record_err(jb, row);
      return;
    }
  }
}

static int n_threads(const rt_args *a, int64_t n_rows) {
  long n = a->threads > 0 ? a->threads : th_cores();
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  if (n > n_rows) n = (int)n_rows;
  return (int)n;
}

static rt_status dense_attention(const ir_program *p, const rt_args *a,
                                 char *err, size_t errlen) {
  rt_status st = check_args(p, a, true, err, errlen);
  if (st != RT_OK) return st;
  if (!rt_has_rows(a)) return RT_OK;
  if (a->Lk == 0) {
    rt_fill_no_keys(a);
    return RT_OK;
  }
  if (a->B > INT64_MAX / a->H || a->B * a->H > INT64_MAX / a->Lq)
    return rt_errf(err, errlen, RT_EINVAL, "B * H * Lq is too large");
  job jb = {.p = p, .a = a, .n_rows = a->B * a->H * a->Lq};
  int nt = n_threads(a, jb.n_rows);
  jb.chunk = jb.n_rows / ((int64_t)nt * 16);
  jb.chunk = jb.chunk < 1 ? 1 : jb.chunk > 64 ? 64 : jb.chunk;
  atomic_init(&jb.first_err, jb.n_rows);
  th_pool *pool = th_new(nt);
  jb.ws = pool ? calloc((size_t)th_size(pool), sizeof *jb.ws) : NULL;
  if (!jb.ws) {
    th_free(pool);
    return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  }
  int nw = th_size(pool);
  th_for(pool, (jb.n_rows + jb.chunk - 1) / jb.chunk, work, &jb);
  th_free(pool);
  const worker *first = NULL;
  for (int t = 0; t < nw; t++)
    if (jb.ws[t].ready && jb.ws[t].st != RT_OK &&
        (!first || jb.ws[t].err_row < first->err_row))
      first = &jb.ws[t];
  st = first ? first->st : RT_OK;
  if (first && err && errlen) snprintf(err, errlen, "%s", first->err);
  for (int t = 0; t < nw; t++) {
    worker *w = &jb.ws[t];
    if (!w->ready) continue;
    free(w->mask), free(w->s), free(w->acc);
    ctx_free(&w->c);
  }
  free(jb.ws);
  return st;
}

/* A paged KV cache (rt.h): each sequence is its own dense attention of
 * B = 1 and Lk = seq_lens[b], on its keys and values gathered from the
 * pages, in batch order (the first error is the first sequence's). */
static rt_status paged_attention(const ir_program *p, const rt_args *a,
                                 char *err, size_t errlen) {
  const rt_paged *pg = a->paged;
  int64_t n;
  if (__builtin_mul_overflow(a->Hkv, a->Lk, &n) ||
      __builtin_mul_overflow(n, a->D * (int64_t)sizeof(float), &n))
    return rt_errf(err, errlen, RT_ERANGE, "paged KV cache: a sequence of "
                   "Lk = %lld is too long", (long long)a->Lk);
  float *k = malloc((size_t)n + 1), *v = malloc((size_t)n + 1);
  rt_status st = k && v ? RT_OK
                        : rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  for (int64_t b = 0; b < a->B && st == RT_OK; b++) {
    rt_args s = *a;
    s.paged = NULL;
    s.B = 1;
    s.Lk = pg->seq_lens[b];
    s.q.data = a->q.data + b * a->q.sb;
    s.o.data = a->o.data + b * a->o.sb;
    s.lse = a->lse ? a->lse + b * a->lse_sb : NULL;
    s.k.data = k, s.v.data = v;
    rt_tensor_strides(&s.k, 0, a->Hkv, s.Lk, a->D);
    rt_tensor_strides(&s.v, 0, a->Hkv, s.Lk, a->D);
    for (int64_t h = 0; h < a->Hkv; h++)
      for (int64_t j = 0; j < s.Lk; j++) {
        int64_t page = pg->page_table[b * pg->max_pages + j / pg->page_size];
        int64_t at = page * a->k.sb + h * a->k.sh + (j % pg->page_size) * a->k.sl;
        memcpy(k + h * s.k.sh + j * s.k.sl, a->k.data + at,
               (size_t)a->D * sizeof *k);
        memcpy(v + h * s.v.sh + j * s.v.sl, a->v.data + at,
               (size_t)a->D * sizeof *v);
      }
    st = dense_attention(p, &s, err, errlen);
  }
  free(k);
  free(v);
  return st;
}

rt_status interp_attention(const ir_program *p, const rt_args *a, char *err,
                           size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (a && a->paged && rt_has_rows(a)) return paged_attention(p, a, err, errlen);
  return dense_attention(p, a, err, errlen);
}

/* ---- scores for the backward pass (interp.h) ---- */

struct interp_scorer {
  ctx c;
  char err[512];
};

interp_scorer *interp_scorer_new(const ir_program *p, const rt_args *a) {
  interp_scorer *sc = calloc(1, sizeof *sc);
  if (!sc) return NULL;
  if (ctx_init(&sc->c, p, a, sc->err, sizeof sc->err) != RT_OK) {
    free(sc);
    return NULL;
  }
  return sc;
}

void interp_scorer_free(interp_scorer *sc) {
  if (!sc) return;
  ctx_free(&sc->c);
  free(sc);
}

const char *interp_scorer_error(const interp_scorer *sc) { return sc->err; }

rt_status interp_score(interp_scorer *sc, int64_t b, int64_t h, int64_t r, int64_t j,
                       double s, double *E, double *dE) {
  ctx *c = &sc->c;
  c->b = b, c->h = h, c->g = 1, c->Lq = c->tLq, c->Lk = c->tLk;
  c->i = r + c->off, c->j = j, c->s = s;
  if (!eval_fd(c, c->p->score, E, dE)) return c->st;
  return RT_OK;
}

rt_status interp_score_grad(interp_scorer *sc, int64_t b, int64_t h, int64_t r,
                            int64_t j, double s, double adj, double *const *g) {
  ctx *c = &sc->c;
  c->b = b, c->h = h, c->g = 1, c->Lq = c->tLq, c->Lk = c->tLk;
  c->i = r + c->off, c->j = j, c->s = s;
  if (!grad_f(c, c->p->score, adj, g)) return c->st;
  return RT_OK;
}

/* ---- backend table ---- */

typedef struct interp_kernel {
  const ir_program *p;
  backend_opts opts;
} interp_kernel;

static void *interp_compile(const ir_program *p, const backend_opts *o,
                            char *err, size_t errlen) {
  if (!p || !p->root) {
    rt_errf(err, errlen, RT_EINVAL, "no program");
    return NULL;
  }
  interp_kernel *k = calloc(1, sizeof *k);
  if (!k) {
    rt_errf(err, errlen, RT_ENOMEM, "out of memory");
    return NULL;
  }
  k->p = p;
  if (o) k->opts = *o;
  return k;
}

static rt_status interp_run(void *kernel, const rt_args *a, char *err,
                            size_t errlen) {
  const interp_kernel *k = kernel;
  if (!k) return rt_errf(err, errlen, RT_EINVAL, "no kernel");
  if (!a) return interp_attention(k->p, a, err, errlen);
  if (k->opts.D > 0 && a->D != k->opts.D)
    return rt_errf(err, errlen, RT_EINVAL,
                   "kernel compiled for D=%lld, run with D=%lld",
                   (long long)k->opts.D, (long long)a->D);
  rt_args with = *a;
  if (with.threads == 0) with.threads = k->opts.threads;
  return interp_attention(k->p, &with, err, errlen);
}

static rt_status interp_backward(void *kernel, const rt_args *a,
                                 const rt_grad *g, char *err, size_t errlen) {
  const interp_kernel *k = kernel;
  if (!k || !a || !g)
    return rt_errf(err, errlen, RT_EINVAL, "no kernel, arguments or gradients");
  if (k->opts.D > 0 && a->D != k->opts.D)
    return rt_errf(err, errlen, RT_EINVAL,
                   "kernel compiled for D=%lld, run with D=%lld",
                   (long long)k->opts.D, (long long)a->D);
  rt_args with = *a;
  if (with.threads == 0) with.threads = k->opts.threads;
  return interp_attention_backward(k->p, &with, g, err, errlen);
}

static void interp_free(void *kernel) { free(kernel); }

static bool interp_supports_d(int64_t D) { return D >= 1; }

const backend backend_interp = {
    .name = "interp",
    .caps = BACKEND_CAP_TOPK | BACKEND_CAP_EXTERNS,
    .supports_d = interp_supports_d,
    .d_text = "any D >= 1",
    .compile = interp_compile,
    .run = interp_run,
    .backward = interp_backward,
    .free = interp_free,
};
