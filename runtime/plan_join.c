/* plan_join.c: a pattern where(f1(i) == g1(j) && ... ) grouped by value
 * (plan.h, plan_join).
 *
 * In: the plan's join table (plan_ops.h: each f of i alone, each g of j
 * alone, in prefix form), the head, sizes, runtime scalars and inputs.
 * Out: the query rows and the keys sorted into groups of equal values (a
 * row sees exactly the keys of its group), each group's rows and keys
 * ascending, by a counting sort over the values' combined range: O(Lq + Lk)
 * whatever the order of the values.  When that range is much larger than
 * the sequence (values spread over int64), or an evaluation fails (the
 * kernel reports errors before it asks), there is no grouping and the
 * caller runs the tile plan.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "plan.h"
#include "plan_ops.h"

typedef struct jv {
  const int64_t *P;
  int64_t end;
  const plan_env *env;
  int64_t x;     /* the position: i of f, j of g */
  bool bad;
} jv;

static int64_t jv_operand(jv *c, int64_t *pc) {
  if (*pc >= c->end) {
    c->bad = true;
    return 0;
  }
  return c->P[(*pc)++];
}

static int64_t jv_skip(jv *c, int64_t pc, int depth);

/* The value of the tree at pc (c->bad on an error or damaged code); the
 * operands && || ?: do not take are skipped, as the language evaluates. */
static int64_t jv_eval(jv *c, int64_t *pc, int depth) {
  if (c->bad || depth > PLAN_BOX_DEPTH || *pc >= c->end) {
    c->bad = true;
    return 0;
  }
  int64_t op = c->P[(*pc)++], k, a, b, r = 0;
  switch (op) {
  case PLAN_ICONST: return jv_operand(c, pc);
  case PLAN_IVARI:
  case PLAN_IVARJ: return c->x;
  case PLAN_IHEAD: return c->env->h;
  case PLAN_INHEAD: return c->env->H;
  case PLAN_ILQ: return c->env->Lq;
  case PLAN_ILK: return c->env->Lk;
  case PLAN_IRT:
    k = jv_operand(c, pc);
    if (k < 0 || k >= c->P[PLAN_W_NRT] || !c->env->runtime) return c->bad = true, 0;
    return c->env->runtime[k];
  case PLAN_IINPUT: {
    k = jv_operand(c, pc);
    a = jv_eval(c, pc, depth + 1);
    const int32_t *arr = c->env->inputs && k >= 0 && k < c->P[PLAN_W_NIN]
                             ? c->env->inputs[k] : NULL;
    if (c->bad || !arr || a < 0 || a >= c->env->Lk) return c->bad = true, 0;
    return arr[a];
  }
  case PLAN_INEG:
  case PLAN_IABS:
    a = jv_eval(c, pc, depth + 1);
    if ((op == PLAN_INEG ? ar_neg(a, &r) : ar_abs(a, &r)) != AR_OK) c->bad = true;
    return r;
  case PLAN_INOT: return !jv_eval(c, pc, depth + 1);
  case PLAN_ILAND:
  case PLAN_ILOR:
    a = jv_eval(c, pc, depth + 1) != 0;
    if (a == (op == PLAN_ILOR)) {
      *pc = jv_skip(c, *pc, depth + 1);
      return a;
    }
    return jv_eval(c, pc, depth + 1) != 0;
  case PLAN_ISEL:
    a = jv_eval(c, pc, depth + 1);
    if (!a) *pc = jv_skip(c, *pc, depth + 1);
    r = jv_eval(c, pc, depth + 1);
    if (a) *pc = jv_skip(c, *pc, depth + 1);
    return r;
  default:
    break;
  }
  if (op < PLAN_IADD || op > PLAN_INE) return c->bad = true, 0;
  a = jv_eval(c, pc, depth + 1);
  b = jv_eval(c, pc, depth + 1);
  ar_status st = AR_OK;
  switch (op) {
  case PLAN_IADD: st = ar_add(a, b, &r); break;
  case PLAN_ISUB: st = ar_sub(a, b, &r); break;
  case PLAN_IMUL: st = ar_mul(a, b, &r); break;
  case PLAN_IDIV: st = ar_div(a, b, &r); break;
  case PLAN_IMOD: st = ar_mod(a, b, &r); break;
  case PLAN_IMIN: r = a < b ? a : b; break;
  case PLAN_IMAX: r = a > b ? a : b; break;
  case PLAN_ILT: r = a < b; break;
  case PLAN_ILE: r = a <= b; break;
  case PLAN_IGT: r = a > b; break;
  case PLAN_IGE: r = a >= b; break;
  case PLAN_IEQ: r = a == b; break;
  default: r = a != b; break;
  }
  if (st != AR_OK) c->bad = true;
  return r;
}

/* End of the subtree at pc. */
static int64_t jv_skip(jv *c, int64_t pc, int depth) {
  if (c->bad || depth > PLAN_BOX_DEPTH || pc >= c->end) {
    c->bad = true;
    return c->end;
  }
  int64_t op = c->P[pc++], kids = 0;
  if (op == PLAN_ICONST || op == PLAN_IRT) pc++;
  else if (op == PLAN_IINPUT) pc++, kids = 1;
  else if (op == PLAN_INEG || op == PLAN_IABS || op == PLAN_INOT) kids = 1;
  else if (op == PLAN_ISEL) kids = 3;
  else if ((op >= PLAN_IADD && op <= PLAN_INE) || op == PLAN_ILAND || op == PLAN_ILOR)
    kids = 2;
  else if (!(op == PLAN_IVARI || op == PLAN_IVARJ || op == PLAN_IHEAD ||
             op == PLAN_INHEAD || op == PLAN_ILQ || op == PLAN_ILK))
    c->bad = true;
  for (int64_t t = 0; t < kids && !c->bad; t++) pc = jv_skip(c, pc, depth + 1);
  return pc > c->end ? (c->bad = true, c->end) : pc;
}

/* The table's trees: tree t (f of equality t / 2 for t even, g for odd)
 * at words [at[t], at[t] + len[t]).  Returns the equality count, 0 when
 * there is no table or it is damaged. */
static int join_trees(const int64_t *plan, int64_t at[], int64_t len[]) {
  int64_t size = plan[PLAN_W_SIZE], p = plan[PLAN_W_JOIN];
  if (p < PLAN_HDR || p >= size) return 0;
  int64_t n = plan[p++];
  if (n < 1 || n > PLAN_JOIN_MAX) return 0;
  for (int64_t t = 0; t < 2 * n; t++) {
    if (p >= size || plan[p] < 1 || plan[p] > size - p - 1) return 0;
    len[t] = plan[p], at[t] = p + 1;
    p += 1 + len[t];
  }
  return (int)n;
}

bool plan_join_reads_head(const int64_t *plan) {
  int64_t at[2 * PLAN_JOIN_MAX], len[2 * PLAN_JOIN_MAX];
  int n = join_trees(plan, at, len);
  for (int t = 0; t < 2 * n; t++)
    for (int64_t pc = at[t]; pc < at[t] + len[t]; pc++) /* a superset */
      if (plan[pc] == PLAN_IHEAD) return true;
  return false;
}

void plan_groups_free(plan_groups *g) {
  free(g->qrow), free(g->key), free(g->qs), free(g->ks);
  memset(g, 0, sizeof *g);
}

/* vals[x] = tree t at positions x0 + x, x < n; false on an error. */
static bool eval_all(const int64_t *plan, const plan_env *env, int64_t at,
                     int64_t len, int64_t x0, int64_t n, int64_t *vals) {
  jv c = {.P = plan, .end = at + len, .env = env};
  for (int64_t x = 0; x < n && !c.bad; x++) {
    int64_t pc = at;
    c.x = x0 + x;
    vals[x] = jv_eval(&c, &pc, 0);
    if (pc != c.end) c.bad = true;
  }
  return !c.bad;
}

/* Combined codes in [0, *range) of each row's (then each key's) values,
 * into code[0, Lq + Lk); 0 when they do not fit a small range. */
static int codes(const int64_t *plan, const plan_env *env, int64_t *code,
                 int64_t *vals, int64_t *range) {
  int64_t at[2 * PLAN_JOIN_MAX], len[2 * PLAN_JOIN_MAX];
  int n = join_trees(plan, at, len);
  int64_t Lq = env->Lq, Lk = env->Lk, off = plan_row_offset(plan, Lq, Lk), N = Lq + Lk;
  int64_t limit = 4 * N + 256, stride = 1;
  if (n == 0) return 0;
  memset(code, 0, sizeof *code * (size_t)N);
  for (int e = 0; e < n; e++) {
    if (!eval_all(plan, env, at[2 * e], len[2 * e], off, Lq, vals) ||
        !eval_all(plan, env, at[2 * e + 1], len[2 * e + 1], 0, Lk, vals + Lq))
      return 0;
    int64_t lo = vals[0], hi = vals[0];
    for (int64_t x = 1; x < N; x++) {
      if (vals[x] < lo) lo = vals[x];
      if (vals[x] > hi) hi = vals[x];
    }
    int64_t w, s2;
    if (__builtin_sub_overflow(hi, lo, &w) || w >= limit ||
        __builtin_mul_overflow(stride, w + 1, &s2) || s2 > limit)
      return 0;
    for (int64_t x = 0; x < N; x++) code[x] += (vals[x] - lo) * stride;
    stride = s2;
  }
  *range = stride;
  return 1;
}

/* Groups from the codes by a stable counting sort. */
static int group(const plan_env *env, const int64_t *code, int64_t range,
                 plan_groups *g) {
  int64_t Lq = env->Lq, Lk = env->Lk;
  int64_t *cq = calloc((size_t)range + 1, sizeof *cq);
  int64_t *ck = calloc((size_t)range + 1, sizeof *ck);
  int64_t *slot = malloc(sizeof *slot * ((size_t)range + 1));
  g->qrow = malloc(sizeof *g->qrow * (size_t)(Lq + 1));
  g->key = malloc(sizeof *g->key * (size_t)(Lk + 1));
  g->qs = malloc(sizeof *g->qs * (size_t)(range + 2));
  g->ks = malloc(sizeof *g->ks * (size_t)(range + 2));
  int ok = cq && ck && slot && g->qrow && g->key && g->qs && g->ks;
  if (ok) {
    for (int64_t r = 0; r < Lq; r++) cq[code[r]]++;
    for (int64_t j = 0; j < Lk; j++) ck[code[Lq + j]]++;
    /* groups with rows and keys first, in code order; slot[v]: the group
     * of code v, or -1 - (where its keyless rows go) */
    int64_t ng = 0, nq = 0, nk = 0, tail = 0;
    for (int64_t v = 0; v < range; v++)
      if (cq[v] && ck[v]) {
        g->qs[ng] = nq, g->ks[ng] = nk, slot[v] = ng++;
        nq += cq[v], nk += ck[v];
      }
    g->qs[ng] = nq, g->ks[ng] = nk, g->n_groups = ng, g->n_rows = nq;
    tail = nq;
    int64_t *fill_q = cq, *fill_k = ck; /* reused as fill pointers */
    for (int64_t v = 0; v < range; v++) {
      if (cq[v] && ck[v]) {
        fill_q[v] = g->qs[slot[v]], fill_k[v] = g->ks[slot[v]];
      } else {
        int64_t rows = cq[v];
        fill_q[v] = tail, tail += rows, fill_k[v] = -1;
      }
    }
    for (int64_t r = 0; r < Lq; r++) g->qrow[fill_q[code[r]]++] = r;
    for (int64_t j = 0; j < Lk; j++)
      if (fill_k[code[Lq + j]] >= 0) g->key[fill_k[code[Lq + j]]++] = j;
  }
  free(cq), free(ck), free(slot);
  return ok ? 1 : -1;
}

int plan_group_codes(int64_t Lq, int64_t Lk, const int64_t *code, int64_t range,
                     plan_groups *g) {
  plan_env env = {.Lq = Lq, .Lk = Lk};
  memset(g, 0, sizeof *g);
  int rc = group(&env, code, range, g);
  if (rc != 1) plan_groups_free(g);
  return rc;
}

int plan_join(const int64_t *plan, const plan_env *env, plan_groups *g) {
  memset(g, 0, sizeof *g);
  if (!plan || !env || plan[PLAN_W_SIZE] <= PLAN_W_JOIN || plan[PLAN_W_JOIN] == 0 ||
      env->Lq < 1 || env->Lk < 1 || env->Lq > PLAN_MAX_LEN || env->Lk > PLAN_MAX_LEN)
    return 0;
  size_t N = (size_t)(env->Lq + env->Lk);
  int64_t *code = malloc(sizeof *code * N), *vals = malloc(sizeof *vals * N);
  int64_t range = 0;
  int rc = code && vals ? codes(plan, env, code, vals, &range) : -1;
  free(vals);
  if (rc == 1) rc = group(env, code, range, g);
  free(code);
  if (rc != 1) plan_groups_free(g);
  return rc;
}
