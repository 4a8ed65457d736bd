/* test_diff.c: the differential suite, backend_jit against backend_interp.
 *
 * Random compositions of every primitive (tests/gen_ir.h: topk, blocks,
 * where over two input arrays, random, runtime scalars, per-head ?:) are
 * compiled by both backends and run on seeded unit-variance q, k, v with
 * lengths 1..700 (Lq != Lk both ways), D in {16, 32, 64, 80, 96, 128, 256},
 * several heads, GQA, batches of 1 and 2, 1 and 2 threads, both layouts.
 * The masks must be identical (lse finite on exactly the same rows), outputs
 * within 2e-5, lse within 1e-4; a run-time error must be the same in both.
 * Then the same with arguments at the int64 edges (gen_ir.h's extreme mode:
 * near INT64_MAX and INT64_MIN, 0, 1, -1, as literals and as runtime
 * scalars; invalid ones anywhere, where both backends must fail alike;
 * Lq > Lk with inputs read at query positions).  Then route(C) (language
 * version 2) alone and composed with random patterns (& | - and a per-head
 * choice), random centroid counts, centroids with exact ties.  Then every
 * pattern of the
 * library (every .pat file in patterns/), with every runtime scalar, input
 * array and extern function it declares supplied.
 *
 * A failure prints its seed and the pattern; SPAT_DIFF_SEED=<seed> replays
 * that one case (SPAT_DIFF_EDGE=1 for an edge case), SPAT_DIFF_CASES=<n>
 * changes how many run.  A run-time error must be the same in both: the
 * same status and the same message, location included.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "frontend.h"
#include "gen_ir.h"
#include "interp.h"
#include "small.h"

#define N_PROGRAMS 60    /* each run at 5 shapes: 300 cases (a JIT compile */
#define RUNS 5           /* costs ~0.25 s, a run much less) */
#define N_EDGE 60        /* int64-edge programs, each at RUNS_EDGE shapes */
#define RUNS_EDGE 5
#define N_ROUTE 32       /* route programs, each at RUNS_ROUTE shapes */
#define RUNS_ROUTE 2
#define ROUTE_SEED 0x70a7e000ull
#define BASE_SEED 0xd1ff0000ull
#define EDGE_SEED 0xed9e0000ull
#define MAX_WORK SMALL(12000000.0, 1000000.0) /* B H Lq Lk D of a run, at most */
#define MAX_RT 8         /* runtime scalars, input arrays and externs a */
#define MAX_IN 8         /* program may have here (more: the test fails) */
#define MAX_EXT 8
#define MAX_EXT_ARGS 4

static const int64_t dims[] = {16, 32, 64, 80, 96, 128, 256};

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout, threads;
  int64_t rt[MAX_RT];
} shape;

static uint64_t mix(uint64_t *s) { return ar_mix((*s)++ * 0x9E3779B97F4A7C15ull); }

static float randn(uint64_t *s) {
  double u1 = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(mix(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* 1..700, mostly small; never a multiple of a tile size by design. */
static int64_t rand_len(gen *g) {
  switch (rndi(g, 0, 9)) {
  case 0: return rndi(g, 1, 8);
  case 1: case 2: case 3: return rndi(g, 9, 100);
  case 4: case 5: case 6: return rndi(g, 101, 300);
  default: return rndi(g, 301, 700);
  }
}

static void rand_shape(gen *g, shape *s, int64_t D, bool edge) {
  static const int64_t Hs[] = {1, 2, 3, 4};
  s->D = D;
  s->H = Hs[rndi(g, 0, 3)];
  s->Hkv = s->H;
  if (s->H == 4) s->Hkv = rndi(g, 0, 2) == 0 ? 1 : rndi(g, 0, 1) ? 2 : 4;
  if (s->H == 2 && rndi(g, 0, 1)) s->Hkv = 1;
  s->B = rndi(g, 0, 4) == 0 ? 2 : 1;
  s->Lq = rand_len(g);
  s->Lk = rndi(g, 0, 3) == 0 ? s->Lq : rand_len(g);
  if (edge && rndi(g, 0, 3) == 0) /* a last query tile of one row */
    s->Lq = 64 * rndi(g, 0, 4) + 1;
  if (edge && s->Lq <= s->Lk && rndi(g, 0, 2) == 0) { /* Lq > Lk: doc[i] past Lk */
    int64_t t = s->Lq;
    s->Lq = s->Lk + 1, s->Lk = t;
    if (s->Lq == s->Lk) s->Lq++;
  }
  while ((double)s->B * (double)s->H * (double)s->Lq * (double)s->Lk *
             (double)D > MAX_WORK) {
    if (s->Lq > s->Lk) s->Lq = s->Lq * 2 / 3 + 1;
    else s->Lk = s->Lk * 2 / 3 + 1;
  }
  s->layout = (int)rndi(g, 0, 1);
  s->threads = (int)rndi(g, 1, 2);
  memset(s->rt, 0, sizeof s->rt);
  s->rt[0] = rndi(g, 0, 6);
  s->rt[1] = rndi(g, 0, 6);
  s->rt[2] = gen_edge_pos[rndi(g, 0, GEN_N_POS - 1)];
  s->rt[3] = gen_edge_any[rndi(g, 0, GEN_N_ANY - 1)];
}

/* Extern predicates for programs that declare them, by arity: defined for
 * every int64 (unsigned arithmetic), true about a third of the time. */
static uint64_t emix(uint64_t x) { return ar_mix(x) % 3; }
static bool ext0(void) { return true; }
static bool ext1(int64_t a) { return emix((uint64_t)a) == 0; }
static bool ext2(int64_t a, int64_t b) {
  return emix((uint64_t)a * 31 ^ (uint64_t)b) == 0;
}
static bool ext3(int64_t a, int64_t b, int64_t c) {
  return emix(((uint64_t)a * 31 ^ (uint64_t)b) * 31 ^ (uint64_t)c) == 0;
}
static bool ext4(int64_t a, int64_t b, int64_t c, int64_t d) {
  return emix((((uint64_t)a * 31 ^ (uint64_t)b) * 31 ^ (uint64_t)c) * 31 ^
              (uint64_t)d) == 0;
}

/* The externs of p as function pointers; 0, or -1 when the test has none of
 * that arity (or too many externs). */
static int extern_table(const ir_program *p, void **out) {
  if (p->n_externs > MAX_EXT) return -1;
  for (int k = 0; k < p->n_externs; k++) {
    switch (p->externs[k].n_args) {
    case 0: { bool (*f)(void) = ext0; memcpy(&out[k], &f, sizeof f); break; }
    case 1: { bool (*f)(int64_t) = ext1; memcpy(&out[k], &f, sizeof f); break; }
    case 2: {
      bool (*f)(int64_t, int64_t) = ext2;
      memcpy(&out[k], &f, sizeof f);
      break;
    }
    case 3: {
      bool (*f)(int64_t, int64_t, int64_t) = ext3;
      memcpy(&out[k], &f, sizeof f);
      break;
    }
    case 4: {
      bool (*f)(int64_t, int64_t, int64_t, int64_t) = ext4;
      memcpy(&out[k], &f, sizeof f);
      break;
    }
    default: return -1;
    }
  }
  return 0;
}

typedef struct bufs {
  float *q, *k, *v, *o1, *o2, *l1, *l2;
  int32_t *doc[MAX_IN];
} bufs;

static void bufs_free(bufs *b) {
  free(b->q), free(b->k), free(b->v), free(b->o1), free(b->o2);
  free(b->l1), free(b->l2);
  for (int x = 0; x < MAX_IN; x++) free(b->doc[x]);
}

/* Input 0 holds documents (runs of one id), the others small values. */
static void fill_args(rt_args *a, const shape *s, bufs *b, const int32_t **ins,
                      void *const *ext, uint64_t seed) {
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D);
  size_t nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  b->q = malloc(sizeof(float) * nq), b->o1 = malloc(sizeof(float) * nq);
  b->o2 = malloc(sizeof(float) * nq);
  b->k = malloc(sizeof(float) * nk), b->v = malloc(sizeof(float) * nk);
  b->l1 = malloc(sizeof(float) * (size_t)(s->B * s->H * s->Lq + 1));
  b->l2 = malloc(sizeof(float) * (size_t)(s->B * s->H * s->Lq + 1));
  assert_true(b->q && b->o1 && b->o2 && b->k && b->v && b->l1 && b->l2);
  uint64_t r = seed;
  for (size_t t = 0; t < nq; t++) b->q[t] = randn(&r);
  for (size_t t = 0; t < nk; t++) b->k[t] = randn(&r), b->v[t] = randn(&r);
  for (int x = 0; x < MAX_IN; x++) {
    int32_t *d = b->doc[x] = malloc(sizeof(int32_t) * (size_t)(s->Lk + 1));
    assert_non_null(d);
    int32_t id = 0;
    for (int64_t j = 0; j < s->Lk;) {
      int64_t len = x == 0 ? 1 + (int64_t)(mix(&r) % 60) : 1;
      for (int64_t e = 0; e < len && j < s->Lk; e++)
        d[j++] = x == 0 ? id : (int32_t)(mix(&r) % 5) - (x > 1);
      id++;
    }
    ins[x] = d;
  }
  memset(a, 0, sizeof *a);
  a->B = s->B, a->H = s->H, a->Hkv = s->Hkv, a->Lq = s->Lq, a->Lk = s->Lk;
  a->D = s->D;
  a->q.data = b->q, a->k.data = b->k, a->v.data = b->v, a->o.data = b->o1;
  rt_tensor_strides(&a->q, s->layout, s->H, s->Lq, s->D);
  rt_tensor_strides(&a->k, s->layout, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a->v, s->layout, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a->o, s->layout, s->H, s->Lq, s->D);
  a->lse = b->l1, a->lse_sb = s->H * s->Lq, a->lse_sh = s->Lq;
  a->runtime = s->rt;
  a->inputs = ins;
  a->externs = ext;
  a->threads = s->threads;
}

/* Float inputs [H, n, D] (route's centroids) replace their int arrays:
 * normal values, every third centroid a copy of the one before (exact
 * ties, which go to the smaller index). */
static void fill_centroids(const ir_program *p, const shape *s, bufs *b,
                           const int32_t **ins, uint64_t seed) {
  for (int x = 0; x < p->n_inputs && x < MAX_IN; x++) {
    const ir_input *in = &p->inputs[x];
    if (!in->is_float || in->n_dims != 3) continue;
    int64_t n = in->dims[1]->value, D = s->D;
    float *c = malloc(sizeof(float) * (size_t)(s->H * n * D + 1));
    assert_non_null(c);
    uint64_t r = seed ^ 0xc3u;
    for (int64_t t = 0; t < s->H * n * D; t++) c[t] = randn(&r);
    for (int64_t t = 1; t < s->H * n; t++)
      if (t % n % 3 == 1) memcpy(c + t * D, c + (t - 1) * D, sizeof(float) * (size_t)D);
    free(b->doc[x]);
    b->doc[x] = (int32_t *)(void *)c;
    ins[x] = b->doc[x];
  }
}

static void describe(const ir_program *p, uint64_t seed, int run, const shape *s) {
  fprintf(stderr, "  seed %#llx run %d: B %lld H %lld Hkv %lld Lq %lld Lk %lld "
          "D %lld layout %d threads %d runtime {%lld, %lld, %lld, %lld}\n  "
          "pattern: ",
          (unsigned long long)seed, run, (long long)s->B, (long long)s->H,
          (long long)s->Hkv, (long long)s->Lq, (long long)s->Lk,
          (long long)s->D, s->layout, s->threads, (long long)s->rt[0],
          (long long)s->rt[1], (long long)s->rt[2], (long long)s->rt[3]);
  ir_print(stderr, p, p->root);
  fputc('\n', stderr);
}

typedef struct tally {
  int runs, errors, empty_rows, rows;
  int msg_differ;      /* both failed, with different message texts */
  double max_err;
} tally;

/* Runs both backends on one shape; 0 when they agree. */
static int compare(const ir_program *p, void *kj, void *ki, const shape *s,
                   uint64_t seed, int run, tally *t) {
  rt_args a;
  bufs b = {0};
  const int32_t *ins[MAX_IN];
  void *ext[MAX_EXT + 1] = {0};
  char e1[512] = "", e2[512] = "";
  if (p->n_runtime > MAX_RT || p->n_inputs > MAX_IN || extern_table(p, ext) != 0) {
    fprintf(stderr, "%d runtime scalars, %d inputs, %d externs: more than this "
            "test supplies\n", p->n_runtime, p->n_inputs, p->n_externs);
    describe(p, seed, run, s);
    return 1;
  }
  fill_args(&a, s, &b, ins, ext, seed * 31 + (uint64_t)run);
  fill_centroids(p, s, &b, ins, seed * 31 + (uint64_t)run);
  rt_status s1 = backend_interp.run(ki, &a, e1, sizeof e1);
  a.o.data = b.o2, a.lse = b.l2;
  rt_status s2 = backend_jit.run(kj, &a, e2, sizeof e2);
  int bad = 0;
  t->runs++;
  if (s1 != s2) {
    fprintf(stderr, "status: interp %d (%s), jit %d (%s)\n", s1, e1, s2, e2);
    bad = 1;
  } else if (s1 != RT_OK) {
    t->errors++;
    if (strcmp(e1, e2) != 0) { /* the same error, the same words */
      fprintf(stderr, "messages differ: interp '%s', jit '%s'\n", e1, e2);
      t->msg_differ++;
      bad = 1;
    }
  } else {
    double worst = 0, worst_l = 0;
    int64_t at = -1;
    for (int64_t bb = 0; bb < s->B && !bad; bb++)
      for (int64_t h = 0; h < s->H && !bad; h++)
        for (int64_t r = 0; r < s->Lq && !bad; r++) {
          int64_t li = bb * a.lse_sb + h * a.lse_sh + r;
          float x = b.l1[li], y = b.l2[li];
          t->rows++;
          if (isfinite(x) != isfinite(y) || isnan(y)) {
            fprintf(stderr, "mask differs: b %lld h %lld row %lld: lse interp %g, jit %g\n",
                    (long long)bb, (long long)h, (long long)r, x, y);
            bad = 1;
            break;
          }
          if (!isfinite(x)) t->empty_rows++;
          else if (fabs((double)x - (double)y) > worst_l)
            worst_l = fabs((double)x - (double)y);
          const float *o1 = b.o1 + bb * a.o.sb + h * a.o.sh + r * a.o.sl;
          const float *o2 = b.o2 + bb * a.o.sb + h * a.o.sh + r * a.o.sl;
          for (int64_t d = 0; d < s->D; d++) {
            double e = fabs((double)o1[d] - (double)o2[d]);
            if (!(e <= worst)) worst = e, at = r; /* NaN counts as worst */
          }
        }
    if (!bad && !(worst <= 2e-5 && worst_l <= 1e-4)) {
      fprintf(stderr, "outputs differ: max |o| error %g (row %lld), max lse error %g\n",
              worst, (long long)at, worst_l);
      bad = 1;
    }
    if (worst > t->max_err) t->max_err = worst;
  }
  if (bad) describe(p, seed, run, s);
  bufs_free(&b);
  return bad;
}

/* A random pattern P with route(C) (a third input, C: float[H, n, D]):
 * route(C) alone, route(C) & P, P | route(C), P - route(C), or route(C) on
 * head 0 and P on the others. */
static ir_program *route_program(gen *g) {
  static const int64_t ns[] = {1, 2, 3, 5, 16};
  ir_node *P = gen_root(g, (int)rndi(g, 0, 3));
  ir_program *p = program(g->a, P);
  ir_input *in = arena_alloc(g->a, (GEN_N_INPUTS + 1) * sizeof *in);
  ir_node **cd = arena_alloc(g->a, 3 * sizeof *cd);
  memcpy(in, p->inputs, GEN_N_INPUTS * sizeof *in);
  cd[0] = N0(g, IR_SIZE_H), cd[1] = C(g, ns[rndi(g, 0, 4)]), cd[2] = N0(g, IR_SIZE_D);
  in[GEN_N_INPUTS] = (ir_input){.name = "C", .is_float = true, .n_dims = 3, .dims = cd};
  p->inputs = in, p->n_inputs = GEN_N_INPUTS + 1;
  ir_node *r = N0(g, IR_ROUTE);
  r->value = GEN_N_INPUTS;
  switch (rndi(g, 0, 4)) {
  case 0: p->root = r; break;
  case 1: p->root = N2(g, IR_AND, r, P); break;
  case 2: p->root = N2(g, IR_OR, P, r); break;
  case 3: p->root = N2(g, IR_MINUS, P, r); break;
  default: p->root = N3(g, IR_PSEL, N2(g, IR_LT, N0(g, IR_VAR_H), C(g, 1)), r, P); break;
  }
  return p;
}

/* One random program at RUNS (RUNS_EDGE, RUNS_ROUTE) shapes; 0 when every
 * run agrees. */
static int diff_case(uint64_t seed, bool edge, bool route, tally *t) {
  gen g = {.a = arena_new(), .rng = ar_mix(seed) | 1, .valid = true,
           .extreme = edge, .errors = edge,
           .loose = edge};
  for (int k = 0; k < 4; k++) rnd(&g);
  ir_program *p = route ? route_program(&g) : program(g.a, gen_root(&g, (int)rndi(&g, 0, 4)));
  int64_t D = dims[rndi(&g, 0, 6)];
  backend_opts o = {.D = D, .threads = 1};
  char err[512] = "";
  int bad = 0;
  void *kj = backend_jit.compile(p, &o, err, sizeof err);
  void *ki = kj ? backend_interp.compile(p, &o, err, sizeof err) : NULL;
  if (!kj || !ki) {
    fprintf(stderr, "compile failed: %s\n", err);
    shape s = {.D = D};
    describe(p, seed, -1, &s);
    bad = 1;
  }
  for (int run = 0; run < (edge ? RUNS_EDGE : route ? RUNS_ROUTE : RUNS) && !bad; run++) {
    shape s;
    rand_shape(&g, &s, D, edge);
    bad = compare(p, kj, ki, &s, seed, run, t);
  }
  if (kj) backend_jit.free(kj);
  if (ki) backend_interp.free(ki);
  arena_free(g.a);
  return bad;
}

static int diff_cases(bool edge, bool route, uint64_t base, int n, tally *t) {
  int failed = 0;
  const char *one = getenv("SPAT_DIFF_SEED"), *cases = getenv("SPAT_DIFF_CASES");
  const char *e = getenv("SPAT_DIFF_EDGE"), *ro = getenv("SPAT_DIFF_ROUTE");
  if (cases) n = atoi(cases);
  if (one) {
    if ((e && atoi(e)) == edge && (ro && atoi(ro)) == route)
      failed = diff_case(strtoull(one, NULL, 0), edge, route, t);
  } else {
    for (int c = 0; c < n; c++) failed += diff_case(base + (uint64_t)c, edge, route, t);
  }
  fprintf(stderr, "diff%s: %d runs (%d with the same run-time error status, "
          "%d of them with other messages), %d rows (%d empty), max |o| error "
          "%.3g, %d failed\n", edge ? " (int64 edges)" : route ? " (route)" : "", t->runs, t->errors,
          t->msg_differ, t->rows, t->empty_rows, t->max_err, failed);
  return failed;
}

static bool default_run(void) {
  return !getenv("SPAT_DIFF_SEED") && !getenv("SPAT_DIFF_CASES") && !test_small();
}

static void test_random_programs(void **state) {
  (void)state;
  tally t = {0};
  assert_int_equal(diff_cases(false, false, BASE_SEED, SMALL(N_PROGRAMS, N_PROGRAMS / 6), &t), 0);
  if (default_run()) {
    assert_true(t.runs >= 300);
    assert_true(t.runs - t.errors >= 250); /* mostly real comparisons */
    assert_true(t.empty_rows > 0 && t.empty_rows < t.rows);
  }
}

/* Arguments at the int64 edges: the masks agree, or both backends fail. */
static void test_edge_programs(void **state) {
  (void)state;
  tally t = {0};
  assert_int_equal(diff_cases(true, false, EDGE_SEED, SMALL(N_EDGE, N_EDGE / 6), &t), 0);
  if (default_run()) {
    assert_true(t.runs >= N_EDGE * RUNS_EDGE * 9 / 10);
    assert_true(t.errors > 10 && t.runs - t.errors >= t.runs / 2);
    assert_true(t.empty_rows > 0 && t.empty_rows < t.rows);
  }
}

/* route(C) with random patterns (SPAT_DIFF_ROUTE=1 with SPAT_DIFF_SEED
 * replays one). */
static void test_route_programs(void **state) {
  (void)state;
  tally t = {0};
  assert_int_equal(diff_cases(false, true, ROUTE_SEED, SMALL(N_ROUTE, N_ROUTE / 4), &t), 0);
  if (default_run()) {
    assert_true(t.runs >= N_ROUTE * RUNS_ROUTE);
    assert_true(t.runs - t.errors >= N_ROUTE); /* mostly real comparisons */
    assert_true(t.empty_rows > 0 && t.empty_rows < t.rows);
  }
}

/* ---- run-time errors: the same status from both ---- */

static void test_errors(void **state) {
  (void)state;
  gen g = {.a = arena_new(), .rng = 7, .valid = true};
  ir_node *i = N0(&g, IR_VAR_I), *j = N0(&g, IR_VAR_J);
  ir_node *di = N1(&g, IR_INPUT, i), *dj = N1(&g, IR_INPUT, j);
  ir_node *roots[] = {
      /* a negative window from a runtime scalar */
      N2(&g, IR_WINDOW, N2(&g, IR_SUB, RT(&g, 0), C(&g, 3)), C(&g, 1)),
      /* doc[i] outside [0, Lk) when Lq > Lk */
      N2(&g, IR_AND, N0(&g, IR_CAUSAL), N1(&g, IR_WHERE, N2(&g, IR_EQ, di, dj))),
      /* division by zero inside a predicate */
      N1(&g, IR_WHERE, N2(&g, IR_EQ, N2(&g, IR_DIV, j, RT(&g, 1)), C(&g, 0))),
      /* a block size of zero inside blocks */
      N2(&g, IR_BLOCKS, C(&g, 4), N1(&g, IR_BLOCK, RT(&g, 1))),
  };
  di->value = dj->value = 0;
  tally t = {0};
  int failed = 0;
  for (size_t k = 0; k < sizeof roots / sizeof roots[0]; k++) {
    ir_program *p = program(g.a, roots[k]);
    backend_opts o = {.D = 32, .threads = 1};
    char err[512];
    void *kj = backend_jit.compile(p, &o, err, sizeof err);
    void *ki = backend_interp.compile(p, &o, err, sizeof err);
    assert_non_null(kj);
    assert_non_null(ki);
    shape s = {.B = 1, .H = 2, .Hkv = 1, .Lq = 150, .Lk = 100, .D = 32,
               .layout = 0, .threads = 2, .rt = {0}};
    failed += compare(p, kj, ki, &s, 0xe77, (int)k, &t);
    backend_jit.free(kj);
    backend_interp.free(ki);
  }
  arena_free(g.a);
  assert_int_equal(failed, 0);
  assert_int_equal(t.errors, 4);
}

/* ---- the library ---- */

static int diff_library_pattern(ir_program *p, const char *what, tally *t) {
  static const shape shapes[] = {
      {.B = 1, .H = 4, .Hkv = 2, .Lq = 700, .Lk = 700, .D = 64, .layout = 0, .threads = 2},
      {.B = 1, .H = 2, .Hkv = 2, .Lq = 177, .Lk = 651, .D = 64, .layout = 1, .threads = 1},
      {.B = 1, .H = 3, .Hkv = 1, .Lq = 333, .Lk = 290, .D = 64, .layout = 0, .threads = 2},
  };
  backend_opts o = {.D = 64, .threads = 2};
  char err[512] = "";
  void *kj = backend_jit.compile(p, &o, err, sizeof err);
  void *ki = kj ? backend_interp.compile(p, &o, err, sizeof err) : NULL;
  int bad = 0;
  if (!kj || !ki) {
    fprintf(stderr, "%s: compile failed: %s\n", what, err);
    bad = 1;
  }
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0] && !bad; k++) {
    shape s = shapes[k];
    s.Lq = SMALL(s.Lq, s.Lq / 4 + 1), s.Lk = SMALL(s.Lk, s.Lk / 4 + 1);
    for (int r = 0; r < p->n_runtime && r < MAX_RT; r++)
      s.rt[r] = p->runtime[r].has_deflt ? p->runtime[r].deflt : 5 + r;
    /* (more runtime scalars, inputs or externs than supplied: fails) */
    if (compare(p, kj, ki, &s, 0x11b, (int)k, t)) {
      fprintf(stderr, "  (%s)\n", what);
      bad = 1;
    }
  }
  if (kj) backend_jit.free(kj);
  if (ki) backend_interp.free(ki);
  return bad;
}

static void test_library(void **state) {
  (void)state;
  DIR *dir = opendir("patterns");
  assert_non_null(dir);
  tally t = {0};
  int n_pat = 0, failed = 0;
  for (struct dirent *de; (de = readdir(dir));) {
    size_t len = strlen(de->d_name);
    if (len < 5 || strcmp(de->d_name + len - 4, ".pat") != 0) continue;
    char path[512];
    snprintf(path, sizeof path, "patterns/%s", de->d_name);
    diag *d = diag_new();
    arena *a = arena_new();
    fe_module *m = fe_load_file(d, a, path);
    if (!m) fprintf(stderr, "%s", diag_text(d));
    assert_non_null(m);
    for (int k = 0; k < fe_n_patterns(m); k++) {
      const char *name = fe_pattern_name(m, k);
      /* defaults, then every parameter at a quarter (small blocks, windows) */
      for (int variant = 0; variant < 2; variant++) {
        fe_define defs[16];
        int n_defs = 0;
        ir_program *p = fe_instantiate(d, m, name, NULL, 0);
        if (!p) fprintf(stderr, "%s", diag_text(d));
        assert_non_null(p);
        if (variant == 1) {
          for (int q = 0; q < p->n_params && n_defs < 16; q++) {
            int64_t v = p->params[q].value;
            defs[n_defs].name = p->params[q].name;
            defs[n_defs++].value = v > 0 ? (v / 4 > 1 ? v / 4 : 1) : v;
          }
          p = fe_instantiate(d, m, name, defs, n_defs);
          if (!p) fprintf(stderr, "%s", diag_text(d));
          assert_non_null(p);
        }
        char what[600];
        snprintf(what, sizeof what, "%s: %s%s", path, name,
                 variant ? " (parameters / 4)" : "");
        failed += diff_library_pattern(p, what, &t);
        n_pat++;
      }
    }
    arena_free(a);
    diag_free(d);
  }
  closedir(dir);
  fprintf(stderr, "library: %d pattern instances, %d runs, max |o| error %.3g, "
          "%d failed\n", n_pat, t.runs, t.max_err, failed);
  assert_int_equal(failed, 0);
  assert_true(n_pat >= 8);
}

/* The library loop on a pattern that needs everything it supplies: three
 * runtime scalars, two inputs, externs of two arities. */
static void test_library_arguments(void **state) {
  (void)state;
  static const char *src =
      "extern fn near(int, int) -> bool;\n"
      "extern fn odd(int) -> bool;\n"
      "pattern p(runtime a = 3, runtime b = 40, runtime c, input x: int[],\n"
      "          input y: int[]) =\n"
      "    causal & (where(x[j] == y[j] && near(i, j)) | window(b, a) |\n"
      "              cols(0 .. c) | where(odd(j + c) && y[j] > 1));\n";
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_string(d, a, "args.pat", src);
  if (!m) fprintf(stderr, "%s", diag_text(d));
  assert_non_null(m);
  ir_program *p = fe_instantiate(d, m, "p", NULL, 0);
  assert_non_null(p);
  assert_int_equal(p->n_runtime, 3);
  assert_int_equal(p->n_inputs, 2);
  assert_int_equal(p->n_externs, 2);
  tally t = {0};
  assert_int_equal(diff_library_pattern(p, "args.pat: p", &t), 0);
  assert_int_equal(t.runs, 3);
  assert_int_equal(t.errors, 0);
  /* an extern arity the test has no function for is a failure, not a skip */
  static const char *src5 =
      "extern fn f5(int, int, int, int, int) -> bool;\n"
      "pattern q = where(f5(i, j, i, j, i));\n";
  fe_module *m5 = fe_load_string(d, a, "five.pat", src5);
  assert_non_null(m5);
  ir_program *p5 = fe_instantiate(d, m5, "q", NULL, 0);
  assert_non_null(p5);
  assert_int_equal(diff_library_pattern(p5, "five.pat: q", &t), 1);
  arena_free(a);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_programs),
      cmocka_unit_test(test_edge_programs),
      cmocka_unit_test(test_route_programs),
      cmocka_unit_test(test_library_arguments),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_library),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
