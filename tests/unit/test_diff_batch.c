/* test_diff_batch.c: the differential suite for language version 2's batch
 * index, sizes and shaped int inputs in the compiled kernels: the JIT
 * against the interpreter on random patterns that read b, B, Hkv, D, r,
 * aligned(top_left), `doc: int[B, Lk]` as doc[b, j] and `cq: int[B, H, Lq]`
 * as cq[b, h, r], combined with causal, windows, blocks, strides and
 * top-k, at B in 1..3, GQA, Lq below, equal to and above Lk (also the
 * decode path's small Lq), lengths off multiples of 64.  Some indices run
 * out of range (doc[b, j + 1], cq[b, h, i]): both must fail with the same
 * status and message.  Outputs within 1e-4, lse on the same rows; the
 * backward's dq, dk, dv within 1e-3 on one program in three.  Then one
 * pattern through the disk kernel cache (an AOT object linked at run time),
 * compiled, then loaded, both against the interpreter.  A failure prints
 * the program; SPAT_DIFF_BATCH_SEED=<seed> replays one.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze.h"
#include "backend.h"
#include "frontend.h"
#include "plan.h"
#include "small.h"
#include "spat.h"

typedef struct gen {
  uint64_t s;
  char *buf;
  size_t n, cap;
} gen;

static uint64_t rnd(gen *g) {
  uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int pick(gen *g, int n) { return (int)(rnd(g) % (uint64_t)n); }

static void put(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(gen *g, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int w = vsnprintf(g->buf + g->n, g->cap - g->n, fmt, ap);
    va_end(ap);
    if (w >= 0 && g->n + (size_t)w < g->cap) {
      g->n += (size_t)w;
      return;
    }
    g->cap = g->cap ? 2 * g->cap + (size_t)w : 256 + (size_t)w;
    g->buf = realloc(g->buf, g->cap);
    assert_non_null(g->buf);
  }
}

/* A predicate reading the version-2 names; with fail, one whose index can
 * run out of range. */
static void pred(gen *g, bool fail) {
  static const char *const ok[] = {
      "doc[b, j] == doc[b, min(i, Lk - 1)]",
      "doc[b, j] != doc[b, clamp(r, 0, Lk - 1)] || j % (B + 1) == b",
      "cq[b, h, r] % 3 == j % 3",
      "(i + b) % (B + 1) == j % (B + 1)",
      "j < D / 4 + Hkv * 3 + 7 * b",
      "(j + h) % (Hkv + 1) != 0",
      "doc[b, j] <= b + 1 && r >= j - 40",
      "cq[b, h % H, r] + doc[(b + 1) % B, j] != 2",
      "r >= j",
      "i < Lk && doc[b, j] == doc[b, i]",
  };
  static const char *const bad[] = {
      "doc[b, j + 1] == doc[b, j]",
      "cq[b, h, i] == 1",
      "doc[b, i] == doc[b, j]",
      "doc[b + 1, j] > 0",
  };
  if (fail)
    put(g, "where(%s)", bad[pick(g, 4)]);
  else
    put(g, "where(%s)", ok[pick(g, 10)]);
}

static void prim(gen *g) {
  switch (pick(g, 6)) {
  case 0: put(g, "causal"); break;
  case 1: put(g, "window(%d, %d)", pick(g, 40), pick(g, 8)); break;
  case 2: put(g, "block(%d)", 1 + pick(g, 70)); break;
  case 3: put(g, "stride(%d)", 1 + pick(g, 9)); break;
  case 4: put(g, "window(b + 3, Hkv)"); break;
  default: put(g, "cols(0 .. B + b)"); break;
  }
}

static char *program(gen *g) {
  static const char *const ops[] = {"&", "|", "-"};
  put(g, "pattern p(input doc: int[B, Lk], input cq: int[B, H, Lq])%s = ",
      pick(g, 2) ? " aligned(top_left)" : "");
  bool topk = pick(g, 6) == 0, fail = pick(g, 6) == 0;
  if (topk) put(g, "topk(%d, ", 1 + pick(g, 12));
  put(g, "(");
  prim(g);
  put(g, " %s ", ops[pick(g, 3)]);
  pred(g, fail);
  put(g, ")");
  if (pick(g, 2)) {
    put(g, " | (");
    prim(g);
    put(g, " & ");
    pred(g, false);
    put(g, ")");
  }
  if (topk) put(g, ")");
  put(g, ";\n");
  return g->buf;
}

static float nrm(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((int64_t)(*s >> 11) % 2000) / 1000.0f - 1.0f;
}

static float *randf(size_t n, uint64_t *s) {
  float *x = malloc(n * 4 + 4);
  assert_non_null(x);
  for (size_t t = 0; t < n; t++) x[t] = nrm(s);
  return x;
}

static bool close_to(float x, float y, float tol) {
  return (isnan(x) && isnan(y)) || (isinf(x) && isinf(y) && (x < 0) == (y < 0)) ||
         fabsf(x - y) <= tol * (1 + fabsf(y));
}

static void same_floats(const float *x, const float *y, size_t n, float tol,
                        const char *what, uint64_t seed, const char *src) {
  for (size_t t = 0; t < n; t++) {
    if (close_to(x[t], y[t], tol)) continue;
    fprintf(stderr, "seed %llx: %s[%zu] %g vs %g\n%s", (unsigned long long)seed, what, t,
            x[t], y[t], src);
    fail();
  }
}

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
} shape;

static shape rand_shape(gen *g) {
  static const int64_t Ds[] = {16, 64};
  shape z;
  z.B = 1 + pick(g, 3);
  z.Hkv = 1 + pick(g, 2);
  z.H = z.Hkv * (1 + pick(g, 2));
  z.D = Ds[pick(g, 2)];
  z.Lk = 1 + pick(g, 150);
  z.Lq = pick(g, 3) == 0 ? 1 + pick(g, 8) : 1 + pick(g, 150); /* decode too */
  return z;
}

/* doc: per batch, segments of about 50 positions with ids 0..5 (an id
 * recurs: the plan's per-sequence spans have gaps); cq: cluster ids 0..3. */
static int32_t *make_inputs(const shape *z, uint64_t *s, int32_t **cq) {
  int32_t *doc = malloc(sizeof *doc * (size_t)(z->B * z->Lk));
  *cq = malloc(sizeof **cq * (size_t)(z->B * z->H * z->Lq));
  assert_true(doc && *cq);
  for (int64_t b = 0; b < z->B; b++)
    for (int64_t j = 0, id = 0; j < z->Lk; j++) {
      if (j == 0 || nrm(s) > 0.96f) id = (int32_t)((nrm(s) + 1) * 3) % 6;
      doc[b * z->Lk + j] = (int32_t)id;
    }
  for (int64_t x = 0; x < z->B * z->H * z->Lq; x++) (*cq)[x] = (int32_t)((nrm(s) + 1) * 2) % 4;
  return doc;
}

typedef struct tensors {
  float *q, *k, *v, *dout, *o[2], *lse[2], *dq[2], *dk[2], *dv[2];
} tensors;

static void args_of(const shape *z, tensors *t, int x, const int32_t **ins, rt_args *a,
                    rt_grad *gr) {
  memset(a, 0, sizeof *a);
  a->B = z->B, a->H = z->H, a->Hkv = z->Hkv, a->Lq = z->Lq, a->Lk = z->Lk, a->D = z->D;
  a->q.data = t->q, a->k.data = t->k, a->v.data = t->v;
  a->o.data = t->o[x], a->lse = t->lse[x];
  rt_tensor_strides(&a->q, 0, z->H, z->Lq, z->D);
  rt_tensor_strides(&a->o, 0, z->H, z->Lq, z->D);
  rt_tensor_strides(&a->k, 0, z->Hkv, z->Lk, z->D);
  rt_tensor_strides(&a->v, 0, z->Hkv, z->Lk, z->D);
  a->lse_sh = z->Lq, a->lse_sb = z->H * z->Lq;
  a->inputs = ins, a->threads = 2;
  memset(gr, 0, sizeof *gr);
  gr->dout.data = t->dout, gr->dq.data = t->dq[x], gr->dk.data = t->dk[x];
  gr->dv.data = t->dv[x];
  rt_tensor_strides(&gr->dout, 0, z->H, z->Lq, z->D);
  rt_tensor_strides(&gr->dq, 0, z->H, z->Lq, z->D);
  rt_tensor_strides(&gr->dk, 0, z->Hkv, z->Lk, z->D);
  rt_tensor_strides(&gr->dv, 0, z->Hkv, z->Lk, z->D);
}

static ir_program *load(diag *d, arena *ar, const char *src) {
  fe_module *m = fe_load_string(d, ar, "batch.pat", src);
  return m ? fe_instantiate(d, m, NULL, NULL, 0) : NULL;
}

static void one_program(uint64_t seed) {
  gen g = {seed, NULL, 0, 0};
  const char *src = program(&g);
  diag *d = diag_new();
  arena *ar = arena_new();
  ir_program *p = load(d, ar, src);
  if (!p) fprintf(stderr, "seed %llx:\n%s\n%s", (unsigned long long)seed, src, diag_text(d));
  assert_non_null(p);
  shape z = rand_shape(&g);
  backend_opts o = {.D = z.D, .threads = 2};
  char e1[512] = "", e2[512] = "";
  void *k[2] = {backend_jit.compile(p, &o, e1, sizeof e1), NULL};
  if (!k[0]) fprintf(stderr, "seed %llx: JIT refused: %s\n%s", (unsigned long long)seed, e1, src);
  assert_non_null(k[0]);
  k[1] = backend_interp.compile(p, &o, e2, sizeof e2);
  assert_non_null(k[1]);
  const backend *be[2] = {&backend_jit, &backend_interp};
  uint64_t s = seed;
  size_t nq = (size_t)(z.B * z.H * z.Lq * z.D), nk = (size_t)(z.B * z.Hkv * z.Lk * z.D);
  size_t nl = (size_t)(z.B * z.H * z.Lq);
  tensors t = {randf(nq, &s), randf(nk, &s), randf(nk, &s), randf(nq, &s), {NULL}, {NULL},
               {NULL}, {NULL}, {NULL}};
  int32_t *cq, *doc = make_inputs(&z, &s, &cq);
  const int32_t *ins[2] = {doc, cq};
  rt_status st[2];
  char *err[2] = {e1, e2};
  rt_args a[2];
  rt_grad gr[2];
  for (int x = 0; x < 2; x++) {
    t.o[x] = calloc(nq + 1, 4), t.lse[x] = calloc(nl + 1, 4);
    t.dq[x] = calloc(nq + 1, 4), t.dk[x] = calloc(nk + 1, 4), t.dv[x] = calloc(nk + 1, 4);
    args_of(&z, &t, x, ins, &a[x], &gr[x]);
    st[x] = be[x]->run(k[x], &a[x], err[x], sizeof e1);
  }
  if (st[0] != st[1] || (st[0] != RT_OK && strcmp(e1, e2)))
    fprintf(stderr, "seed %llx (B %lld H %lld Hkv %lld Lq %lld Lk %lld D %lld): %d '%s' vs "
            "%d '%s'\n%s", (unsigned long long)seed, (long long)z.B, (long long)z.H,
            (long long)z.Hkv, (long long)z.Lq, (long long)z.Lk, (long long)z.D, st[0], e1,
            st[1], e2, src);
  assert_int_equal(st[0], st[1]);
  if (st[0] != RT_OK) {
    assert_string_equal(e1, e2);
  } else {
    same_floats(t.lse[0], t.lse[1], nl, 1e-4f, "lse", seed, src);
    same_floats(t.o[0], t.o[1], nq, 1e-4f, "o", seed, src);
    if (seed % 3 == 0) { /* the backward, from each backend's own o and lse */
      for (int x = 0; x < 2; x++) {
        st[x] = be[x]->backward(k[x], &a[x], &gr[x], err[x], sizeof e1);
        if (st[x] != RT_OK) fprintf(stderr, "seed %llx: backward: %s\n%s",
                                    (unsigned long long)seed, err[x], src);
        assert_int_equal(st[x], RT_OK);
      }
      same_floats(t.dq[0], t.dq[1], nq, 1e-3f, "dq", seed, src);
      same_floats(t.dk[0], t.dk[1], nk, 1e-3f, "dk", seed, src);
      same_floats(t.dv[0], t.dv[1], nk, 1e-3f, "dv", seed, src);
    }
  }
  for (int x = 0; x < 2; x++) {
    be[x]->free(k[x]);
    free(t.o[x]), free(t.lse[x]), free(t.dq[x]), free(t.dk[x]), free(t.dv[x]);
  }
  free(t.q), free(t.k), free(t.v), free(t.dout), free(doc), free(cq);
  free(g.buf);
  arena_free(ar);
  diag_free(d);
}

static void test_random_batch(void **st) {
  (void)st;
  const char *one = getenv("SPAT_DIFF_BATCH_SEED");
  if (one) {
    one_program(strtoull(one, NULL, 0));
    return;
  }
  for (int k = 0; k < SMALL(60, 6); k++) one_program(0xba7c0000ull + (uint64_t)k);
}

/* Fixed cases the random ones may miss: errors first in (b, h, r, j) order
 * when only a later batch fails; the shape check of the interpreter. */
static void test_error_order(void **st) {
  (void)st;
  static const char *const srcs[] = {
      /* only batch 1 reads past doc's row */
      "pattern p(input doc: int[B, Lk]) = causal & where(doc[b, j + b] >= 0);\n",
      /* a dimension negative for these sizes */
      "pattern p(input t: int[Lk - 100]) = where(t[j] == 0);\n",
      /* top-left rows past Lk: i = r reaches Lk */
      "pattern p(input doc: int[B, Lk]) aligned(top_left) = where(doc[b, i] == doc[b, j]);\n",
  };
  for (size_t c = 0; c < sizeof srcs / sizeof srcs[0]; c++) {
    diag *d = diag_new();
    arena *ar = arena_new();
    ir_program *p = load(d, ar, srcs[c]);
    assert_non_null(p);
    shape z = {2, 2, 1, 70, 65, 16};
    backend_opts o = {.D = z.D, .threads = 2};
    char e[2][512] = {"", ""};
    const backend *be[2] = {&backend_jit, &backend_interp};
    uint64_t s = 7;
    size_t nq = (size_t)(z.B * z.H * z.Lq * z.D), nk = (size_t)(z.B * z.Hkv * z.Lk * z.D);
    tensors t = {randf(nq, &s), randf(nk, &s), randf(nk, &s), randf(nq, &s), {NULL}, {NULL},
                 {NULL}, {NULL}, {NULL}};
    int32_t *cq, *doc = make_inputs(&z, &s, &cq);
    const int32_t *ins[2] = {doc, cq};
    rt_status rs[2];
    for (int x = 0; x < 2; x++) {
      void *k = be[x]->compile(p, &o, e[x], sizeof e[x]);
      assert_non_null(k);
      t.o[x] = calloc(nq, 4), t.lse[x] = calloc((size_t)(z.B * z.H * z.Lq), 4);
      rt_args a;
      rt_grad gr;
      args_of(&z, &t, x, ins, &a, &gr);
      rs[x] = be[x]->run(k, &a, e[x], sizeof e[x]);
      be[x]->free(k);
      free(t.o[x]), free(t.lse[x]);
    }
    if (strcmp(e[0], e[1])) fprintf(stderr, "%s: '%s' vs '%s'\n", srcs[c], e[0], e[1]);
    assert_int_equal(rs[0], RT_ERANGE);
    assert_int_equal(rs[1], RT_ERANGE);
    assert_string_equal(e[0], e[1]);
    free(t.q), free(t.k), free(t.v), free(t.dout), free(doc), free(cq);
    arena_free(ar);
    diag_free(d);
  }
}

/* The where table proves the usual per-sequence predicates free of index
 * errors (no exact scan), and only those. */
static void test_plan_safe(void **st) {
  (void)st;
  static const struct {
    const char *src;
    int64_t B, Lq, Lk;
    int may_fail;
  } cases[] = {
      {"pattern p(input doc: int[B, Lk]) = causal & where(doc[b, i] == doc[b, j]);", 2, 100, 100, 0},
      {"pattern p(input doc: int[B, Lk]) = causal & where(doc[b, i] == doc[b, j]);", 2, 100, 50, 1},
      {"pattern p(input doc: int[B, Lk]) = causal & where(doc[b, i] == doc[b, j]);", 0, 100, 100, 1},
      {"pattern p(input doc: int[B, Lk]) aligned(top_left) = where(doc[b, i] == doc[b, j]);",
       3, 90, 100, 0},
      {"pattern p(input doc: int[B, Lk]) aligned(top_left) = where(doc[b, i] == doc[b, j]);",
       3, 101, 100, 1},
      {"pattern p(input doc: int[B, Lk]) = where(doc[b, j + 1] == doc[b, j]);", 1, 10, 10, 1},
      {"pattern p(input cq: int[B, H, Lq]) = where(cq[b, h, r] == j % 4);", 2, 30, 70, 0},
      {"pattern p(input cq: int[B, H, Lq]) = where(cq[b, h, r] == j % 4);", 2, 70, 30, 0},
      {"pattern p(input cq: int[B, H, Lq]) = where(cq[b, h + 1, r] == j);", 2, 30, 70, 1},
      {"pattern p(input t: int[Hkv, D]) = where(t[h % Hkv, j % D] == 0);", 1, 30, 70, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    diag *d = diag_new();
    arena *ar = arena_new();
    ir_program *p = load(d, ar, cases[c].src);
    if (!p) fprintf(stderr, "%s\n", diag_text(d));
    assert_non_null(p);
    char err[256];
    int64_t *plan = an_build(p, err, sizeof err);
    assert_non_null(plan);
    plan_env env = {.h = 1, .H = 2, .Lq = cases[c].Lq, .Lk = cases[c].Lk,
                    .b = cases[c].B - 1, .B = cases[c].B, .Hkv = 2, .D = 16};
    if (plan_where_may_fail(plan, &env) != cases[c].may_fail)
      fail_msg("%s (B %lld Lq %lld Lk %lld): want %d", cases[c].src, (long long)cases[c].B,
               (long long)cases[c].Lq, (long long)cases[c].Lk, cases[c].may_fail);
    free(plan);
    arena_free(ar);
    diag_free(d);
  }
}

/* x[b, i] == x[b, j] is planned per batch from row b of x (exact spans),
 * and PARTIAL when the caller gives no b (B = 0: the backward's per-head
 * plans). */
static void test_plan_docs(void **st) {
  (void)st;
  diag *d = diag_new();
  arena *ar = arena_new();
  ir_program *p = load(d, ar, "pattern p(input doc: int[B, Lk]) = where(doc[b, i] == doc[b, j]);");
  assert_non_null(p);
  char err[256];
  int64_t *plan = an_build(p, err, sizeof err);
  assert_non_null(plan);
  int32_t doc[2 * 128];
  for (int j = 0; j < 128; j++) doc[j] = j / 64, doc[128 + j] = 7;
  const int32_t *ins[1] = {doc};
  plan_span sp[64];
  static const struct { int64_t b, B, n, k1, kind; } want[] = {
      {0, 2, 1, 64, PLAN_FULL}, {1, 2, 1, 128, PLAN_FULL}, {1, 0, 1, 128, PLAN_PARTIAL}};
  for (size_t c = 0; c < sizeof want / sizeof want[0]; c++) {
    plan_env env = {.h = 0, .H = 1, .Lq = 128, .Lk = 128, .inputs = ins,
                    .b = want[c].b, .B = want[c].B, .Hkv = 1, .D = 16};
    int64_t n = plan_tiles(plan, &env, 0, 64, sp, 64, err, sizeof err);
    assert_int_equal(n, want[c].n);
    assert_int_equal(sp[0].k0, 0);
    assert_int_equal(sp[0].k1, want[c].k1);
    assert_int_equal(sp[0].kind, want[c].kind);
  }
  free(plan);
  arena_free(ar);
  diag_free(d);
}

/* Through the public API with the disk cache: the kernel is an AOT object
 * compiled into the cache, then loaded from it; both as the interpreter. */
static const char *const cached_src =
    "pattern p(input doc: int[B, Lk], input cq: int[B, H, Lq]) aligned(top_left) =\n"
    "    (causal & where(doc[b, i] == doc[b, j])) |\n"
    "    (window(2, 0) & where(cq[b, h, r] == j % 4));\n";

static void run_api(spat_backend be, int cache, float *o, float *lse, int *hit) {
  enum { B = 2, H = 4, Hkv = 2, Lq = 90, Lk = 130, D = 32 };
  size_t nq = (size_t)B * H * Lq * D, nk = (size_t)B * Hkv * Lk * D;
  uint64_t s = 99;
  float *q = randf(nq, &s), *k = randf(nk, &s), *v = randf(nk, &s);
  shape z = {B, H, Hkv, Lq, Lk, D};
  int32_t *cq, *doc = make_inputs(&z, &s, &cq);
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  spat_kernel *ker = NULL;
  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 2, be, cache, SPAT_DTYPE_F32};
  spat_status st = spat_pattern_parse_string(c, "c.pat", cached_src, NULL, &p);
  if (st == SPAT_OK) st = spat_compile(p, &opt, &ker);
  if (st != SPAT_OK) fprintf(stderr, "%s\n", spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  *hit = spat_kernel_signature(ker)->from_cache;
  spat_tensors t = {B, H, Hkv, Lq, Lk, q, k, v, o, lse, 0, NULL};
  spat_value args[2] = {spat_input(doc), spat_input(cq)};
  st = spat_kernel_call(ker, &t, args, 2);
  if (st != SPAT_OK) fprintf(stderr, "%s\n", spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  spat_kernel_free(ker);
  spat_pattern_free(p);
  spat_ctx_free(c);
  free(q), free(k), free(v), free(doc), free(cq);
}

static void test_cached_kernel(void **st) {
  (void)st;
  char dir[64] = "/tmp/spat_test_batch_XXXXXX", cmd[128];
  assert_non_null(mkdtemp(dir));
  assert_int_equal(setenv("XDG_CACHE_HOME", dir, 1), 0);
  size_t nq = 2 * 4 * 90 * 32, nl = 2 * 4 * 90;
  float *o[3], *l[3];
  int hit[3];
  for (int x = 0; x < 3; x++) {
    o[x] = calloc(nq, 4), l[x] = calloc(nl, 4);
    run_api(x < 2 ? SPAT_BACKEND_JIT : SPAT_BACKEND_INTERP, x < 2, o[x], l[x], &hit[x]);
  }
  assert_int_equal(hit[0], 0); /* compiled into the cache */
  assert_int_equal(hit[1], 1); /* loaded from it */
  for (int x = 0; x < 2; x++) {
    same_floats(o[x], o[2], nq, 1e-4f, "o (cache)", 0, cached_src);
    same_floats(l[x], l[2], nl, 1e-4f, "lse (cache)", 0, cached_src);
  }
  for (int x = 0; x < 3; x++) free(o[x]), free(l[x]);
  unsetenv("XDG_CACHE_HOME");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_batch),
      cmocka_unit_test(test_error_order),
      cmocka_unit_test(test_plan_safe),
      cmocka_unit_test(test_plan_docs),
      cmocka_unit_test(test_cached_kernel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
