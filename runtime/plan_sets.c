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
};

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
  return true;
}

plan_rows *plan_rows_new(const int64_t *plan, const rt_args *a, rt_status *st) {
  *st = RT_OK;
  int64_t size = plan[PLAN_W_SIZE], at = plan[PLAN_W_ROWS];
  if (at < PLAN_HDR || at >= size || plan[PLAN_W_NIN] < 1) return NULL;
  plan_rows *R = calloc(1, sizeof *R);
  if (R) R->in = calloc((size_t)plan[PLAN_W_NIN], sizeof *R->in);
  if (!R || !R->in) {
    free(R);
    *st = RT_ENOMEM;
    return NULL;
  }
  R->n_inputs = plan[PLAN_W_NIN];
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
  free(r->in);
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
