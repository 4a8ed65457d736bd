/* route.c: the cluster ids of route(C), once per run (route.h).
 *
 * In: the kernel's route table (plan_ops.h: C's input index, n), q, k and
 * C.  Out: per (b, h) the id of every query row and key, and on request
 * their groups for the equality join.  Cost: (Lq + Lk) n D multiply-adds per
 * (b, h) in float32 vectors, plus a double dot for each centroid within the
 * error bound of the best (rare: exact ties, near ties, non-finite data).
 */
#include "route.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "plan_ops.h"

struct kr_route {
  int32_t *ids;       /* per (b, h), b-major: Lq query ids, then Lk key ids */
  int64_t H, Lq, Lk, n;
  int alone;
};

/* Float lanes of the float32 dots: the n centroids padded to a multiple. */
#define RV 8
typedef float v8f __attribute__((vector_size(4 * RV)));
typedef int32_t v8i __attribute__((vector_size(4 * RV)));

typedef struct job {
  kr_route *r;
  const rt_args *a;
  const float *C;     /* [H][n][D] */
  _Atomic int oom;
} job;

/* What one (b, h) task works with. */
typedef struct head {
  const float *C;     /* C[h]: [n][D] */
  int64_t n, nv, D;   /* nv: vectors of RV centroids (even) */
  bool finite;        /* every element of C[h] is finite */
  v8f *ct;            /* [D][nv]: C[h] transposed, zero-padded */
  double *cn;         /* [n]: |C[h, t]| */
  double cnmax;       /* the largest cn */
  v8f *pad;           /* [nv]: 0 in the lanes of centroids, -inf past n */
  v8f *acc;           /* [RROWS][nv] */
  float *xf;          /* [RROWS][D]: the rows widened */
} head;

/* The interpreter's dot (compiler/backends/interp/interp.c, dot2): x of
 * dtype dt against float y, products exact in double, summed in 8 lanes
 * (d mod 8) added pairwise at the end; the same value for the same rows. */
static double dot_exact(const void *xp, int dt, const float *y, int64_t D) {
  double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int u = 0; u < 8; u++) l[u] += (double)rt_load(xp, d + u, dt) * (double)y[d + u];
  for (int u = 0; d < D; d++, u++) l[u] += (double)rt_load(xp, d, dt) * (double)y[d];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* The interpreter's rule over the centroids t with cand[t] (all when cand
 * is NULL): a later one wins only with a larger dot, so a NaN first dot
 * keeps 0 and a NaN later one never wins. */
static int32_t pick_exact(const head *H, const void *x, int dt, const bool *cand) {
  int32_t best = -1;
  double bv = -INFINITY;
  for (int64_t t = 0; t < H->n; t++) {
    if (cand && !cand[t]) continue;
    double v = dot_exact(x, dt, H->C + t * H->D, H->D);
    if (best < 0 || v > bv) bv = v, best = (int32_t)t;
  }
  return best;
}

/* acc[v] = sum_d x[d] ct[d][v], two vectors of centroids at a time in
 * registers (nv is even), d mod 4 apart (eight add chains, enough to hide
 * the multiply-add latency); returns
 * |x|^2 summed in RV lanes (all in float32). */
static inline __attribute__((always_inline)) float dots_body(
    const float *restrict xf, const v8f *restrict ct, int64_t nv, int64_t D,
    v8f *restrict acc) {
  for (int64_t v0 = 0; v0 < nv; v0 += 2) {
    v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, e0 = {0}, e1 = {0};
    int64_t d = 0;
    for (; d + 4 <= D; d += 4) {
      float x = xf[d], y = xf[d + 1], z = xf[d + 2], w = xf[d + 3];
      a0 += x * ct[d * nv + v0], a1 += x * ct[d * nv + v0 + 1];
      b0 += y * ct[(d + 1) * nv + v0], b1 += y * ct[(d + 1) * nv + v0 + 1];
      c0 += z * ct[(d + 2) * nv + v0], c1 += z * ct[(d + 2) * nv + v0 + 1];
      e0 += w * ct[(d + 3) * nv + v0], e1 += w * ct[(d + 3) * nv + v0 + 1];
    }
    for (; d < D; d++) a0 += xf[d] * ct[d * nv + v0], a1 += xf[d] * ct[d * nv + v0 + 1];
    acc[v0] = (a0 + b0) + (c0 + e0), acc[v0 + 1] = (a1 + b1) + (c1 + e1);
  }
  v8f sq = {0};
  int64_t d = 0;
  for (; d + RV <= D; d += RV) {
    v8f x;
    memcpy(&x, xf + d, sizeof x);
    sq += x * x;
  }
  float s = 0;
  for (; d < D; d++) s += xf[d] * xf[d];
  for (int u = 0; u < RV; u++) s += sq[u];
  return s;
}

/* Rows at a time of dots4_body. */
#define RROWS 4

/* dots_body for RROWS rows x[r] at once, each vector of ct loaded once for
 * all of them (acc[r nv + v], sq[r]); the sums in another order, which the
 * error bound of cluster does not depend on. */
static inline __attribute__((always_inline)) void dots4_body(
    const float *const *xs, const v8f *restrict ct, int64_t nv, int64_t D,
    v8f *restrict acc, float *sq) {
  const float *restrict x0 = xs[0], *restrict x1 = xs[1], *restrict x2 = xs[2],
                        *restrict x3 = xs[3];
  for (int64_t v0 = 0; v0 < nv; v0 += 2) {
    v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, e0 = {0}, e1 = {0};
    for (int64_t d = 0; d < D; d++) {
      v8f p = ct[d * nv + v0], q = ct[d * nv + v0 + 1];
      a0 += x0[d] * p, a1 += x0[d] * q;
      b0 += x1[d] * p, b1 += x1[d] * q;
      c0 += x2[d] * p, c1 += x2[d] * q;
      e0 += x3[d] * p, e1 += x3[d] * q;
    }
    acc[v0] = a0, acc[v0 + 1] = a1;
    acc[nv + v0] = b0, acc[nv + v0 + 1] = b1;
    acc[2 * nv + v0] = c0, acc[2 * nv + v0 + 1] = c1;
    acc[3 * nv + v0] = e0, acc[3 * nv + v0 + 1] = e1;
  }
  for (int r = 0; r < RROWS; r++) {
    const float *xf = xs[r];
    v8f q = {0};
    int64_t d = 0;
    for (; d + RV <= D; d += RV) {
      v8f x;
      memcpy(&x, xf + d, sizeof x);
      q += x * x;
    }
    float t = 0;
    for (; d < D; d++) t += xf[d] * xf[d];
    for (int u = 0; u < RV; u++) t += q[u];
    sq[r] = t;
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static float dots_avx2(const float *xf, const v8f *ct, int64_t nv, int64_t D, v8f *acc) {
  return dots_body(xf, ct, nv, D, acc);
}
#endif

static float dots_base(const float *xf, const v8f *ct, int64_t nv, int64_t D, v8f *acc) {
  return dots_body(xf, ct, nv, D, acc);
}

static float dots(const float *xf, const v8f *ct, int64_t nv, int64_t D, v8f *acc) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return dots_avx2(xf, ct, nv, D, acc);
#endif
  return dots_base(xf, ct, nv, D, acc);
}

/* a where the lanes of m are set, else b */
#define SEL(m, a, b) ((v8f)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))

static inline __attribute__((always_inline)) float hmax(const v8f *v) {
  float m = (*v)[0];
  for (int u = 1; u < RV; u++) m = (*v)[u] > m ? (*v)[u] : m;
  return m;
}

/* The best (the first largest) of the dots acc [nv], branch-free in
 * vectors; the runner-up in *s2 (the best's value again on a tie); false
 * when a dot is not finite. */
static inline __attribute__((always_inline)) bool top2(const head *H, const v8f *acc, int64_t *best, float *s2) {
  const v8f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                    -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  const v8i iota = {0, 1, 2, 3, 4, 5, 6, 7};
  v8f vm = ninf;
  v8i bad = {0};
  for (int64_t v = 0; v < H->nv; v++) {
    v8f a = acc[v], p = a + H->pad[v];
    bad |= (a - a) != 0;  /* inf or NaN */
    vm = SEL(p > vm, p, vm);
  }
  for (int u = 0; u < RV; u++)
    if (bad[u]) return false;
  float sb = hmax(&vm);
  v8i bi = iota + (int32_t)(RV * H->nv);
  for (int64_t v = 0; v < H->nv; v++) {
    v8i idx = iota + (int32_t)(RV * v);
    v8i m = (acc[v] + H->pad[v]) == sb;
    m &= idx < bi;
    bi = (idx & m) | (bi & ~m);
  }
  int32_t b = bi[0];
  for (int u = 1; u < RV; u++) b = bi[u] < b ? bi[u] : b;
  v8f vm2 = ninf;
  for (int64_t v = 0; v < H->nv; v++) {
    v8i idx = iota + (int32_t)(RV * v);
    v8f p = SEL(idx == b, ninf, acc[v] + H->pad[v]);
    vm2 = SEL(p > vm2, p, vm2);
  }
  *best = b, *s2 = hmax(&vm2);
  return true;
}

/* cluster's choice from the float32 dots s [n] and |x|^2 sq of row x.  The
 * runner-up s2 bounds every other centroid's dot and cnmax its norm: when
 * s2 plus the largest margin is below the best's lower end, no other
 * centroid is a candidate (the test below would find the best alone; float
 * rounding is monotone), else the candidates are found one by one. */
static inline __attribute__((always_inline)) int32_t decide(
    const head *H, const void *x, int dt, const v8f *acc, float sq, bool *cand) {
  if (!(sq >= 0x1p-100f && sq <= 0x1p126f)) return pick_exact(H, x, dt, NULL);
  double xn = sqrt((double)sq * 1.0001);
  const float *s = (const float *)acc;
  int64_t best;
  float s2;
  if (!top2(H, acc, &best, &s2)) return pick_exact(H, x, dt, NULL);
  double u = 0x1p-24 * (double)H->D, k = 1.25 * u / (1 - u);
  double tiny = (double)H->D * 0x1p-148;
  double lo = (double)s[best] - (k * xn * H->cn[best] + tiny);
  if ((double)s2 + k * xn * H->cnmax + tiny < lo) return (int32_t)best;
  int close = 0;
  for (int64_t t = 0; t < H->n; t++) {
    cand[t] = (double)s[t] + k * xn * H->cn[t] + tiny >= lo;
    close += cand[t];
  }
  return close == 1 ? (int32_t)best : pick_exact(H, x, dt, cand);
}

/* c(x) for a row x of dtype dt.  The float32 dot s_t (any order, fused or
 * not) is within gamma_D |x| |C_t| (Cauchy-Schwarz over sum |x_d C_td|,
 * gamma_D = D u / (1 - D u), u = 2^-24) plus D 2^-149 of subnormal
 * rounding of the exact dot, and the interpreter's double within far less;
 * a centroid whose s_t plus that margin falls below the best's s minus its
 * margin has a smaller double dot.  The others are decided in double.
 * |x|^2 is summed in float: within 1 + D u when it is at least 2^-100
 * (squares that underflow then weigh nothing); smaller, infinite or NaN,
 * every centroid is decided in double. */
static int32_t cluster(const head *H, const void *x, int dt, bool *cand) {
  if (!H->finite) return pick_exact(H, x, dt, NULL);
  const float *xf = x;
  if (dt != RT_F32) {
    for (int64_t d = 0; d < H->D; d++) H->xf[d] = rt_load(x, d, dt);
    xf = H->xf;
  }
  float sq = dots(xf, H->ct, H->nv, H->D, H->acc);
  return decide(H, x, dt, H->acc, sq, cand);
}

/* The ids of n rows of dtype dt from x0 (row stride sl elements): RROWS
 * rows at a time through dots4_body (inlined into cluster_rows' clones), the
 * rest one by one. */
static inline __attribute__((always_inline)) void cluster_rows_body(
    const head *H, const char *x0, int64_t sl, int64_t n, int dt, int32_t *ids,
    bool *cand) {
  size_t esz = rt_dtype_size(dt);
  int64_t x = 0, D = H->D;
  for (; H->finite && x + RROWS <= n; x += RROWS) {
    const void *xr[RROWS];
    const float *xs[RROWS];
    float sq[RROWS];
    for (int r = 0; r < RROWS; r++) {
      xr[r] = x0 + (x + r) * sl * esz;
      xs[r] = xr[r];
      if (dt != RT_F32) {
        for (int64_t d = 0; d < D; d++) H->xf[r * D + d] = rt_load(xr[r], d, dt);
        xs[r] = H->xf + r * D;
      }
    }
    dots4_body(xs, H->ct, H->nv, D, H->acc, sq);
    for (int r = 0; r < RROWS; r++)
      ids[x + r] = decide(H, xr[r], dt, H->acc + r * H->nv, sq[r], cand);
  }
  for (; x < n; x++) ids[x] = cluster(H, x0 + x * sl * esz, dt, cand);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void cluster_rows_avx2(const head *H, const char *x0, int64_t sl, int64_t n,
                              int dt, int32_t *ids, bool *cand) {
  cluster_rows_body(H, x0, sl, n, dt, ids, cand);
}
#endif

static void cluster_rows(const head *H, const char *x0, int64_t sl, int64_t n, int dt,
                         int32_t *ids, bool *cand) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    cluster_rows_avx2(H, x0, sl, n, dt, ids, cand);
    return;
  }
#endif
  cluster_rows_body(H, x0, sl, n, dt, ids, cand);
}

static bool head_init(head *H, const float *C, int64_t n, int64_t D) {
  memset(H, 0, sizeof *H);
  H->C = C, H->n = n, H->D = D, H->nv = (n + 2 * RV - 1) / (2 * RV) * 2;
  H->ct = aligned_alloc(32, sizeof *H->ct * (size_t)(D * H->nv));
  H->acc = aligned_alloc(32, sizeof *H->acc * (size_t)(RROWS * H->nv));
  H->cn = malloc(sizeof *H->cn * (size_t)n);
  H->pad = aligned_alloc(32, sizeof *H->pad * (size_t)H->nv);
  H->xf = malloc(sizeof *H->xf * (size_t)(RROWS * D));
  if (!H->ct || !H->acc || !H->cn || !H->pad || !H->xf) return false;
  for (int64_t t = 0; t < RV * H->nv; t++) ((float *)H->pad)[t] = t < n ? 0 : -INFINITY;
  float *ct = (float *)H->ct;
  memset(ct, 0, sizeof *H->ct * (size_t)(D * H->nv));
  H->finite = true;
  for (int64_t t = 0; t < n; t++) {
    double sq = 0;
    for (int64_t d = 0; d < D; d++) {
      float c = C[t * D + d];
      ct[d * H->nv * RV + t] = c;
      sq += (double)c * (double)c;
      H->finite &= isfinite(c) != 0;
    }
    H->cn[t] = sqrt(sq);
    if (H->cn[t] > H->cnmax) H->cnmax = H->cn[t];
  }
  return true;
}

static void head_free(head *H) {
  free(H->ct), free(H->acc), free(H->cn), free(H->pad), free(H->xf);
}

/* Task (b, h): the ids of its query rows and keys. */
static void ids_task(void *ctx, int64_t id, int worker) {
  (void)worker;
  job *J = ctx;
  const rt_args *a = J->a;
  kr_route *r = J->r;
  int64_t h = id % a->H, b = id / a->H, hk = h / (a->H / a->Hkv), D = a->D;
  head H;
  bool *cand = malloc(sizeof *cand * (size_t)r->n);
  if (!cand || !head_init(&H, J->C + h * r->n * D, r->n, D)) {
    atomic_store(&J->oom, 1);
    free(cand);
    if (cand) head_free(&H);
    return;
  }
  size_t esz = rt_dtype_size(a->dtype);
  int32_t *ids = r->ids + id * (r->Lq + r->Lk);
  const char *qb = (const char *)a->q.data + (b * a->q.sb + h * a->q.sh) * esz;
  const char *kb = (const char *)a->k.data + (b * a->k.sb + hk * a->k.sh) * esz;
  cluster_rows(&H, qb, a->q.sl, r->Lq, a->dtype, ids, cand);
  cluster_rows(&H, kb, a->k.sl, r->Lk, a->dtype, ids + r->Lq, cand);
  head_free(&H);
  free(cand);
}

kr_route *kr_route_new(const kr_kernel *k, const rt_args *a, th_pool *pool,
                       rt_status *st) {
  *st = RT_OK;
  const int64_t *P = k->plan;
  int64_t at = P ? P[PLAN_W_ROUTE] : 0;
  if (at < PLAN_HDR || at > P[PLAN_W_SIZE] - PLAN_ROUTE_WORDS) return NULL;
  int64_t in = P[at + PLAN_ROUTE_INPUT], n = P[at + PLAN_ROUTE_N];
  if (n < 1 || n > INT32_MAX || in < 0 || in >= k->n_inputs || !rt_has_rows(a) ||
      a->Lk < 1)
    return NULL;
  kr_route *r = calloc(1, sizeof *r);
  size_t bytes;  /* 4 (Lq + Lk) B H, which need not fit */
  bool fits = !__builtin_mul_overflow((size_t)(a->Lq + a->Lk), (size_t)(a->B * a->H), &bytes) &&
              !__builtin_mul_overflow(bytes, sizeof *r->ids, &bytes);
  if (r && fits) r->ids = malloc(bytes);
  if (!r || !r->ids) {
    kr_route_free(r);
    *st = RT_ENOMEM;
    return NULL;
  }
  r->H = a->H, r->Lq = a->Lq, r->Lk = a->Lk, r->n = n;
  r->alone = P[at + PLAN_ROUTE_ROOT] == PLAN_ROUTE_ALONE;
  job J = {.r = r, .a = a, .C = (const float *)(const void *)a->inputs[in]};
  atomic_init(&J.oom, 0);
  th_for(pool, a->B * a->H, ids_task, &J);
  if (atomic_load(&J.oom)) {
    kr_route_free(r);
    *st = RT_ENOMEM;
    return NULL;
  }
  return r;
}

void kr_route_free(kr_route *r) {
  if (!r) return;
  free(r->ids);
  free(r);
}

void kr_route_env(const kr_route *r, int64_t b, int64_t h, kr_env *env) {
  if (!r) return;
  const int32_t *ids = r->ids + (b * r->H + h) * (r->Lq + r->Lk);
  env->route_q = ids, env->route_k = ids + r->Lq;
}

int kr_route_alone(const kr_route *r) { return r && r->alone; }

int kr_route_groups(const kr_route *r, int64_t b, int64_t h, plan_groups *g) {
  int64_t N = r->Lq + r->Lk;
  const int32_t *ids = r->ids + (b * r->H + h) * N;
  int64_t *code = malloc(sizeof *code * (size_t)N);
  if (!code) return -1;
  for (int64_t x = 0; x < N; x++) code[x] = ids[x];
  int rc = plan_group_codes(r->Lq, r->Lk, code, r->n, g);
  free(code);
  return rc;
}
