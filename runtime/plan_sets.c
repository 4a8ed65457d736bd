/* plan_sets.c: the rows table of a run (plan_sets.h).
 *
 * In: the plan's rows table (plan_ops.h), the run's sizes and inputs.  Out:
 * per input it names, every row sorted and deduplicated into intervals of
 * consecutive values [first, last], with the offsets of each row's
 * intervals.  Dimensions are evaluated here from their prefix trees at
 * token level; an invalid one (overflow, division by zero, negative) leaves
 * the input without an entry, as does a missing array.
 */
#include "plan_sets.h"

#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "plan.h"
#include "plan_ops.h"

#define MAX_DIMS 8

typedef struct row_in {
  bool ok;
  int64_t nd, dims[MAX_DIMS];
  int64_t *start;          /* rows + 1 offsets into iv */
  int32_t (*iv)[2];
} row_in;

struct plan_rows {
  int64_t n_inputs;
  row_in *in;
  kr_setbits *bits;        /* 2 n_inputs (kernel_rt.h), storage owned */
  int64_t bit_words;       /* words of bitmaps allocated so far */
  int64_t Lq, Lk, off;     /* token-level sizes, plan_row_offset */
};

/* The bitmaps of a run stay below this many words (32 MB); past it the
 * mask code scans the rows' items. */
#define MAX_BIT_WORDS ((int64_t)1 << 22)

typedef struct dimv {
  const int64_t *P;
  int64_t end;             /* the tree's last word + 1 */
  int64_t sz[3];           /* H, Lq, Lk */
} dimv;

/* A dimension's tree from *pc; false when invalid or malformed. */
static bool dim_tree(const dimv *c, int64_t *pc, int depth, int64_t *out) {
  if (*pc >= c->end || depth > 64) return false;
  int64_t op = c->P[(*pc)++], x, y;
  switch (op) {
  case PLAN_ICONST:
    if (*pc >= c->end) return false;
    *out = c->P[(*pc)++];
    return true;
  case PLAN_INHEAD: *out = c->sz[0]; return true;
  case PLAN_ILQ: *out = c->sz[1]; return true;
  case PLAN_ILK: *out = c->sz[2]; return true;
  case PLAN_INEG: case PLAN_IABS:
    if (!dim_tree(c, pc, depth + 1, &x)) return false;
    return (op == PLAN_INEG ? ar_neg(x, out) : ar_abs(x, out)) == AR_OK;
  case PLAN_ISEL: {
    int64_t z;
    if (!dim_tree(c, pc, depth + 1, &x) || !dim_tree(c, pc, depth + 1, &y) ||
        !dim_tree(c, pc, depth + 1, &z))
      return false;
    *out = x ? y : z;
    return true;
  }
  default: break;
  }
  if (op < PLAN_IADD || op > PLAN_IMAX || !dim_tree(c, pc, depth + 1, &x) ||
      !dim_tree(c, pc, depth + 1, &y))
    return false;
  switch (op) {
  case PLAN_IADD: return ar_add(x, y, out) == AR_OK;
  case PLAN_ISUB: return ar_sub(x, y, out) == AR_OK;
  case PLAN_IMUL: return ar_mul(x, y, out) == AR_OK;
  case PLAN_IDIV: return ar_div(x, y, out) == AR_OK;
  case PLAN_IMOD: return ar_mod(x, y, out) == AR_OK;
  case PLAN_IMIN: *out = x < y ? x : y; return true;
  default: *out = x > y ? x : y; return true;
  }
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Sorts every row of x (rows of w) into in->iv; false when out of memory. */
static bool sort_rows(row_in *in, const int32_t *x, int64_t rows, int64_t w) {
  in->start = malloc(sizeof *in->start * (size_t)(rows + 1));
  in->iv = malloc(sizeof *in->iv * (size_t)(rows * w > 0 ? rows * w : 1));
  int32_t *tmp = malloc(sizeof *tmp * (size_t)(w > 0 ? w : 1));
  bool ok = in->start && in->iv && tmp;
  int64_t n = 0;
  for (int64_t r = 0; ok && r < rows; r++) {
    in->start[r] = n;
    memcpy(tmp, x + r * w, sizeof *tmp * (size_t)w);
    qsort(tmp, (size_t)w, sizeof *tmp, cmp_i32);
    for (int64_t t = 0; t < w; t++) {
      if (n > in->start[r] && (int64_t)tmp[t] <= (int64_t)in->iv[n - 1][1] + 1) {
        if (tmp[t] > in->iv[n - 1][1]) in->iv[n - 1][1] = tmp[t];
        continue;
      }
      in->iv[n][0] = in->iv[n][1] = tmp[t];
      n++;
    }
  }
  if (ok) in->start[rows] = n;
  free(tmp);
  return ok;
}

/* Sets bits [lo, hi] of a bitmap row (set bit p at word 1 + p / 64). */
static void set_range(uint64_t *row, int64_t lo, int64_t hi) {
  for (int64_t p = lo; p <= hi;) {
    int64_t b = p & 63, n = hi - p + 1 < 64 - b ? hi - p + 1 : 64 - b;
    row[1 + (p >> 6)] |= (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << b;
    p += n;
  }
}

/* Input k's bitmaps (kernel_rt.h, kr_setbits) from its rows' intervals:
 * entry 2 k for cols (p = v < 0 ? v + Lk : v over [0, Lk)), 2 k + 1 for
 * diagonals (p = base - v with base the largest query position, over the
 * offsets i - j of token-level pairs).  None past MAX_BIT_WORDS; false only
 * when out of memory. */
static bool build_bits(plan_rows *R, int64_t k, int64_t rows, int64_t w) {
  const row_in *in = &R->in[k];
  if (w == 0) return true;  /* no items: the mask code's scan is free */
  int64_t nb[2] = {R->Lk, R->Lq + R->Lk - 1};
  int64_t base[2] = {R->Lk, R->off + R->Lq - 1};
  for (int kind = 0; kind < 2; kind++) {
    kr_setbits *e = &R->bits[2 * k + kind];
    int64_t wpr = (nb[kind] + 63) / 64 + 3, words;
    if (nb[kind] < 1 || ar_mul(wpr, rows, &words) != AR_OK ||
        words > MAX_BIT_WORDS - R->bit_words)
      continue;
    uint64_t *bits = calloc((size_t)(words > 0 ? words : 1), sizeof *bits);
    if (!bits) return false;
    R->bit_words += words;
    for (int64_t f = 0; f < rows; f++) {
      uint64_t *row = bits + f * wpr;
      for (int64_t t = in->start[f]; t < in->start[f + 1]; t++) {
        int64_t a = in->iv[t][0], b = in->iv[t][1], n = nb[kind];
        if (kind == 0) { /* [a, b] with the negative part from the end */
          int64_t lo = a > -n ? a : -n, hi = b < -1 ? b : -1;
          if (lo <= hi) set_range(row, lo + n, hi + n);
          lo = a > 0 ? a : 0, hi = b < n - 1 ? b : n - 1;
          if (lo <= hi) set_range(row, lo, hi);
        } else { /* p = base - v for v in [a, b] */
          int64_t lo = base[1] - b, hi = base[1] - a;
          lo = lo > 0 ? lo : 0, hi = hi < n - 1 ? hi : n - 1;
          if (lo <= hi) set_range(row, lo, hi);
        }
      }
    }
    *e = (kr_setbits){bits, wpr, nb[kind], base[kind], rows, w};
  }
  return true;
}

/* One input's entry from the table at *pc; false only when out of memory
 * (a malformed table leaves the entry out). */
static bool build_input(plan_rows *R, const int64_t *P, int64_t *pc, int64_t size,
                        const rt_args *a) {
  if (*pc + 2 > size) return *pc = size, true;
  int64_t k = P[(*pc)++], nd = P[(*pc)++];
  dimv c = {P, size, {a->H, a->Lq, a->Lk}};
  int64_t dims[MAX_DIMS], len = 1;
  bool ok = k >= 0 && k < R->n_inputs && nd >= 1 && nd <= MAX_DIMS;
  for (int64_t d = 0; ok && d < nd; d++) {
    if (*pc >= size) return *pc = size, true;
    int64_t w = P[(*pc)++], at = *pc;
    if (w < 1 || w > size - at) return *pc = size, true;
    c.end = at + w;
    ok = dim_tree(&c, &at, 0, &dims[d]) && at == c.end && dims[d] >= 0 &&
         ar_mul(len, dims[d], &len) == AR_OK;
    *pc = c.end;
  }
  if (!ok || R->in[k].ok || (len > 0 && (!a->inputs || !a->inputs[k]))) return true;
  row_in *in = &R->in[k];
  in->nd = nd;
  memcpy(in->dims, dims, sizeof dims[0] * (size_t)nd);
  int64_t w = dims[nd - 1], rows = w > 0 ? len / w : 1;
  if (w == 0) /* rows of no items: their count may be any */
    for (int64_t d = 0; d + 1 < nd; d++)
      if (ar_mul(d ? rows : 1, dims[d], &rows) != AR_OK) return true;
  if (!sort_rows(in, a->inputs ? a->inputs[k] : NULL, rows, w)) return false;
  in->ok = true;
  return build_bits(R, k, rows, w);
}

plan_rows *plan_rows_new(const int64_t *plan, const rt_args *a, rt_status *st) {
  *st = RT_OK;
  int64_t size = plan[PLAN_W_SIZE], at = plan[PLAN_W_ROWS];
  if (at < PLAN_HDR || at >= size || plan[PLAN_W_NIN] < 1) return NULL;
  plan_rows *R = calloc(1, sizeof *R);
  if (R) {
    R->in = calloc((size_t)plan[PLAN_W_NIN], sizeof *R->in);
    R->bits = calloc(2 * (size_t)plan[PLAN_W_NIN], sizeof *R->bits);
  }
  if (!R || !R->in || !R->bits) {
    if (R) free(R->in), free(R->bits);
    free(R);
    *st = RT_ENOMEM;
    return NULL;
  }
  R->n_inputs = plan[PLAN_W_NIN];
  R->Lq = a->Lq, R->Lk = a->Lk, R->off = plan_row_offset(plan, a->Lq, a->Lk);
  int64_t n = plan[at++];
  for (int64_t e = 0; e < n && at < size; e++)
    if (!build_input(R, plan, &at, size, a)) {
      plan_rows_free(R);
      *st = RT_ENOMEM;
      return NULL;
    }
  return R;
}

void plan_rows_free(plan_rows *r) {
  if (!r) return;
  for (int64_t k = 0; k < r->n_inputs; k++) free(r->in[k].start), free(r->in[k].iv);
  for (int64_t k = 0; k < 2 * r->n_inputs; k++) free((void *)r->bits[k].bits);
  free(r->in);
  free(r->bits);
  free(r);
}

int plan_rows_get(const plan_rows *r, int64_t k, const int64_t *idx, int64_t n,
                  const int32_t (**iv)[2], int64_t *n_iv) {
  if (!r || k < 0 || k >= r->n_inputs || !r->in[k].ok || n != r->in[k].nd - 1) return 0;
  const row_in *in = &r->in[k];
  int64_t f = 0;
  for (int64_t d = 0; d < n; d++) {
    if (idx[d] < 0 || idx[d] >= in->dims[d]) return -1;
    f = f * in->dims[d] + idx[d];
  }
  *iv = (const int32_t (*)[2])(in->iv + in->start[f]);
  *n_iv = in->start[f + 1] - in->start[f];
  return 1;
}

const kr_setbits *plan_rows_bits(const plan_rows *r) { return r ? r->bits : NULL; }
