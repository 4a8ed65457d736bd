/* test_backward.c: spat_kernel_backward of JIT kernels (and of the disk
 * cache's) against the interpreter's backward (the oracle, itself checked by
 * finite differences in test_interp_bwd.c), through the public API.
 *
 * Every pattern of the library (patterns/\*.pat, small parameters so that
 * they are sparse at these lengths), then a randomised differential set:
 * compositions of the primitives with random sizes, shapes with lengths
 * that are not multiples of 64, Lq < Lk and Lq > Lk, several D, both
 * layouts, GQA, 1 and 2 threads, rows with no keys, dlse on and off.
 * Unit-variance data; max |jit - interp| <= 1e-4 times the largest |interp|
 * gradient (floored at 1e-2).  Also argument checks, empty shapes, and the memory
 * bound: a window backward at L = 65536 in a child process stays within
 * its tensors + 64 MiB of peak RSS (no L x L anywhere).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "small.h"
#include "spat.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static int64_t pick(int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}
static float gauss(void) {
  double u = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
  double v = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static float *randn(size_t n) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = gauss();
  return x;
}

static spat_ctx *ctx;

typedef struct shape shape;
static double compare_with(struct spat_pattern *p, const shape *s, int cache);

struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout, threads, dlse;
};

static double max_abs(const float *y, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs((double)y[i]) > m) m = fabs((double)y[i]);
  return m;
}

/* max |x - y| / m (NaN counts as infinite) */
static double max_err(const float *x, const float *y, size_t n, double m) {
  double e = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)x[i] - (double)y[i]);
    if (!(d <= e)) e = d;
  }
  return e / m;
}

/* Args of the kernel: scalar defaults (else small), an ascending document
 * array for inputs. */
static size_t make_args(const spat_kernel *k, int64_t Lk, spat_value *args,
                        int32_t **doc) {
  const spat_signature *sig = spat_kernel_signature(k);
  *doc = NULL;
  for (size_t a = 0; a < sig->n_args; a++) {
    if (sig->args[a].kind == SPAT_KIND_SCALAR) {
      args[a] = spat_scalar(sig->args[a].has_default
                                ? (sig->args[a].default_value > 40 ? 40 : sig->args[a].default_value)
                                : 3);
    } else {
      if (!*doc) {
        *doc = malloc(sizeof **doc * (size_t)(Lk ? Lk : 1));
        for (int64_t j = 0, d = 0; j < Lk; j++) {
          if (next() % 37 == 0) d++;
          (*doc)[j] = (int32_t)d;
        }
      }
      args[a] = spat_input(*doc);
    }
  }
  return sig->n_args;
}

/* Forward with the JIT, backward with both kernels; the worst relative
 * error of dq, dk, dv. */
static double compare_with(spat_pattern *p, const shape *s, int cache) {
  spat_compile_options oj = {s->D, (spat_layout)s->layout, s->threads,
                             SPAT_BACKEND_JIT, cache, SPAT_DTYPE_F32};
  spat_compile_options oi = oj;
  oi.backend = SPAT_BACKEND_INTERP;
  spat_kernel *kj = NULL, *ki = NULL;
  assert_int_equal(spat_compile(p, &oj, &kj), SPAT_OK);
  assert_int_equal(spat_compile(p, &oi, &ki), SPAT_OK);
  if (cache) assert_int_equal(spat_kernel_signature(kj)->from_cache, 1);
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D),
         nk = (size_t)(s->B * s->Hkv * s->Lk * s->D),
         nl = (size_t)(s->B * s->H * s->Lq);
  float *q = randn(nq), *k = randn(nk), *v = randn(nk), *dout = randn(nq);
  float *dlse = s->dlse ? randn(nl) : NULL;
  float *o = calloc(nq + 1, 4), *lse = calloc(nl + 1, 4);
  float *g[2][3];
  for (int x = 0; x < 2; x++) {
    g[x][0] = calloc(nq + 1, 4);
    g[x][1] = calloc(nk + 1, 4);
    g[x][2] = calloc(nk + 1, 4);
  }
  spat_value args[8];
  int32_t *doc;
  size_t na = make_args(kj, s->Lk, args, &doc);
  spat_tensors t = {s->B, s->H, s->Hkv, s->Lq, s->Lk, q, k, v, o, lse, 0, NULL};
  assert_int_equal(spat_kernel_call(kj, &t, args, na), SPAT_OK);
  spat_kernel *ks[2] = {kj, ki};
  for (int x = 0; x < 2; x++) {
    spat_grads gr = {dout, dlse, g[x][0], g[x][1], g[x][2], NULL};
    spat_status st = spat_kernel_backward(ks[x], &t, &gr, args, na);
    if (st != SPAT_OK)
      fail_msg("backward (%s): %s", x ? "interp" : "jit",
               spat_ctx_error(ctx));
  }
  /* relative to the largest gradient: dS = P (dP - Delta) cancels where a
   * row has one or two keys, leaving float rounding of |do| |v| in dq and
   * dk however small they are */
  double m = 1e-2, sizes[3] = {(double)nq, (double)nk, (double)nk}, e = 0;
  for (int x = 0; x < 3; x++) {
    double mx = max_abs(g[1][x], (size_t)sizes[x]);
    if (mx > m) m = mx;
  }
  for (int x = 0; x < 3; x++) {
    double ex = max_err(g[0][x], g[1][x], (size_t)sizes[x], m);
    if (!(ex <= e)) e = ex;
  }
  free(q), free(k), free(v), free(dout), free(dlse), free(o), free(lse);
  free(doc);
  for (int x = 0; x < 2; x++) free(g[x][0]), free(g[x][1]), free(g[x][2]);
  spat_kernel_free(kj);
  spat_kernel_free(ki);
  return e;
}

static int setup(void **state) {
  (void)state;
  ctx = spat_ctx_new();
  return ctx ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  spat_ctx_free(ctx);
  return 0;
}

static spat_pattern *parse(const char *text) {
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(ctx, "t.pat", text, NULL, &p);
  if (st != SPAT_OK) fail_msg("%s: %s", text, spat_ctx_error(ctx));
  return p;
}

static double compare(spat_pattern *p, const shape *s) {
  return compare_with(p, s, 0);
}

/* --- every library pattern ------------------------------------------------ */

static int64_t small_param(const char *name) {
  static const struct { const char *n; int64_t v; } t[] = {
      {"w", 40}, {"b", 16}, {"g", 1}, {"r", 2}, {"k", 3}, {"l", 24},
      {"c", 4},  {"p", 50}, {"d", 2}, {"n_dil", 2}};
  for (size_t x = 0; x < sizeof t / sizeof t[0]; x++)
    if (!strcmp(t[x].n, name)) return t[x].v;
  return -1;
}

static void test_library(void **state) {
  (void)state;
  static const char *const files[] = {
      "bigbird.pat", "dilated.pat", "document.pat", "longformer.pat",
      "nsa.pat", "prefix_lm.pat", "sparse_transformer.pat",
      "streaming_llm.pat"};
  int n = 0;
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    char path[256];
    snprintf(path, sizeof path, "patterns/%s", files[f]);
    spat_module *m = NULL;
    assert_int_equal(spat_module_parse_file(ctx, path, &m), SPAT_OK);
    for (size_t x = 0; x < spat_module_n_patterns(m); x++) {
      spat_pattern_decl d;
      assert_int_equal(spat_module_pattern(m, x, &d), SPAT_OK);
      spat_param ps[16];
      size_t np = 0;
      for (size_t y = 0; y < d.n_params && np < 16; y++) {
        int64_t v = small_param(d.params[y].name);
        if (v >= 0) ps[np++] = (spat_param){d.params[y].name, v};
      }
      spat_pattern *p = NULL;
      assert_int_equal(spat_module_select(m, d.name, ps, np, &p), SPAT_OK);
      shape s = {1, 4, 2, SMALL(200, 130), SMALL(200, 130), 32, 0, 2, 1};
      if (n % 2) s.layout = 1, s.Lq = SMALL(150, 70), s.D = 64, s.dlse = 0;
      double e = compare(p, &s);
      if (!(e <= 1e-4)) fail_msg("%s: error %g", d.name, e);
      spat_pattern_free(p);
      n++;
    }
    spat_module_free(m);
  }
  assert_true(n >= 10);
}

/* --- the randomised differential set -------------------------------------- */

static void atom(char *buf, size_t n, int64_t L) {
  int64_t w = pick(1, L / 2 + 1);
  switch (pick(0, 15)) {
    case 0: snprintf(buf, n, "full"); break;
    case 1: snprintf(buf, n, "causal"); break;
    case 2: snprintf(buf, n, "window(%lld)", (long long)w); break;
    case 3: snprintf(buf, n, "window(%lld, 0)", (long long)w); break;
    case 4: snprintf(buf, n, "dilated(%lld, %lld)", (long long)pick(1, 20),
                     (long long)pick(1, 4)); break;
    case 5: snprintf(buf, n, "stride(%lld)", (long long)pick(2, 40)); break;
    case 6: snprintf(buf, n, "cols(0 .. %lld)", (long long)pick(1, 8)); break;
    case 7: snprintf(buf, n, "rows(%lld .. %lld)", (long long)pick(0, 20),
                     (long long)pick(21, 90)); break;
    case 8: snprintf(buf, n, "global(%lld)", (long long)pick(0, 5)); break;
    case 9: snprintf(buf, n, "random(%lld, %lld)", (long long)pick(1, 6),
                     (long long)pick(0, 99)); break;
    case 10: snprintf(buf, n, "block(%lld)", (long long)pick(1, 70)); break;
    case 11: snprintf(buf, n, "where((i + 2 * j) %% %lld == 0)",
                      (long long)pick(2, 5)); break;
    case 12: snprintf(buf, n, "topk(%lld, causal)", (long long)pick(1, 12));
      break;
    case 13: snprintf(buf, n, "blocks(%lld) { topk(%lld, full) | window(0) }",
                      (long long)pick(2, 32), (long long)pick(1, 3)); break;
    case 14: snprintf(buf, n, "h == 0 ? causal : window(%lld)", (long long)w);
      break;
    default: snprintf(buf, n, "cols(%lld .. Lk) & causal",
                      (long long)pick(1, 80)); break;
  }
}

static void random_pattern(char *buf, size_t n, int64_t L) {
  char a[160], b[160];
  atom(a, sizeof a, L);
  int op = (int)pick(0, 4);
  if (op >= 3) {
    snprintf(buf, n, "pattern p = %s;", a);
    return;
  }
  atom(b, sizeof b, L);
  snprintf(buf, n, "pattern p = (%s) %c (%s);", a, "|&-"[op], b);
}

static void test_random(void **state) {
  (void)state;
  static const int64_t Ds[] = {16, 32, 64, 80, 128};
  int cases = SMALL(220, 40);
  double worst = 0;
  for (int c = 0; c < cases; c++) {
    shape s;
    s.Hkv = pick(1, 2);
    s.H = s.Hkv * pick(1, 2);
    s.B = pick(1, 2);
    s.Lq = pick(1, 200);
    s.Lk = c % 3 == 0 ? s.Lq : pick(1, 200);
    s.D = Ds[pick(0, 4)];
    s.layout = (int)pick(0, 1);
    s.threads = (int)pick(1, 2);
    s.dlse = (int)pick(0, 1);
    char text[512];
    random_pattern(text, sizeof text, s.Lk);
    spat_pattern *p = parse(text);
    double e = compare(p, &s);
    if (!(e <= 1e-4))
      fail_msg("case %d %s B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld "
               "layout %d threads %d dlse %d: error %g",
               c, text, (long long)s.B, (long long)s.H, (long long)s.Hkv,
               (long long)s.Lq, (long long)s.Lk, (long long)s.D, s.layout,
               s.threads, s.dlse, e);
    if (e > worst) worst = e;
    spat_pattern_free(p);
  }
  print_message("%d random cases, worst relative error %.3g\n", cases, worst);
}

/* --- arguments, empty shapes, the disk cache ----------------------------- */

static void test_arguments(void **state) {
  (void)state;
  spat_pattern *p = parse("pattern p = window(3);");
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 0, SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  enum { L = 20, D = 16, N = L * D };
  float *q = randn(N), *kk = randn(N), *v = randn(N), *dout = randn(N);
  float o_[N], lse[L], dq[N], dk[N], dv[N];
  spat_tensors t = {1, 1, 1, L, L, q, kk, v, o_, lse, 0, NULL};
  assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_OK);
  spat_grads g = {dout, NULL, dq, dk, dv, NULL};
  assert_int_equal(spat_kernel_backward(k, &t, &g, NULL, 0), SPAT_OK);
  assert_int_equal(spat_kernel_backward(NULL, &t, &g, NULL, 0), SPAT_EINVAL);
  assert_int_equal(spat_kernel_backward(k, NULL, &g, NULL, 0), SPAT_EINVAL);
  assert_int_equal(spat_kernel_backward(k, &t, NULL, NULL, 0), SPAT_EINVAL);
  spat_value one = spat_scalar(1);
  assert_int_equal(spat_kernel_backward(k, &t, &g, &one, 1), SPAT_EINVAL);
  spat_grads bad = g;
  bad.dq = NULL;
  assert_int_equal(spat_kernel_backward(k, &t, &bad, NULL, 0), SPAT_EINVAL);
  assert_non_null(strstr(spat_ctx_error(ctx), "dq is NULL"));
  bad = g, bad.dk = dq; /* overlapping outputs */
  assert_int_equal(spat_kernel_backward(k, &t, &bad, NULL, 0), SPAT_EINVAL);
  bad = g, bad.dv = (float *)v; /* an output over an input */
  assert_int_equal(spat_kernel_backward(k, &t, &bad, NULL, 0), SPAT_EINVAL);
  assert_non_null(strstr(spat_ctx_error(ctx), "must not alias"));
  spat_tensors nolse = t;
  nolse.lse = NULL;
  assert_int_equal(spat_kernel_backward(k, &nolse, &g, NULL, 0), SPAT_EINVAL);
  /* empty shapes: Lq = 0 zeroes dk and dv, Lk = 0 zeroes dq */
  spat_tensors e = t;
  e.Lq = 0;
  dk[0] = dv[N - 1] = 7;
  assert_int_equal(spat_kernel_backward(k, &e, &g, NULL, 0), SPAT_OK);
  assert_true(dk[0] == 0 && dv[N - 1] == 0);
  e = t, e.Lk = 0;
  dq[5] = 7;
  assert_int_equal(spat_kernel_backward(k, &e, &g, NULL, 0), SPAT_OK);
  assert_true(dq[5] == 0);
  free(q), free(kk), free(v), free(dout);
  spat_kernel_free(k);
  spat_pattern_free(p);
}

/* A run-time error of the pattern is the forward's, in the backward too. */
static void test_runtime_error(void **state) {
  (void)state;
  spat_pattern *p = parse("pattern p(runtime n = 1) = causal & stride(n);");
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 0, SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &o, &k), SPAT_OK);
  enum { L = 8, N = L * 16 };
  float *x = randn(N), o_[N], lse[L], dq[N], dk[N], dv[N];
  spat_tensors t = {1, 1, 1, L, L, x, x, x, o_, lse, 0, NULL};
  spat_value n = spat_scalar(1);
  assert_int_equal(spat_kernel_call(k, &t, &n, 1), SPAT_OK);
  spat_grads g = {x, NULL, dq, dk, dv, NULL};
  n = spat_scalar(-1);
  assert_int_equal(spat_kernel_backward(k, &t, &g, &n, 1), SPAT_ERANGE);
  assert_non_null(strstr(spat_ctx_error(ctx), "stride"));
  free(x);
  spat_kernel_free(k);
  spat_pattern_free(p);
}

/* A kernel from the disk cache (an object without backward tiles) runs
 * backward through the process's tiles, as the JIT kernel does. */
static void test_cached_kernel(void **state) {
  (void)state;
  char dir[] = "/tmp/spat_test_bwd_XXXXXX";
  assert_non_null(mkdtemp(dir));
  setenv("XDG_CACHE_HOME", dir, 1);
  spat_pattern *p = parse("pattern p = window(5) | topk(3, causal);");
  shape s = {1, 2, 1, 90, 70, 32, 1, 2, 1};
  spat_compile_options oc = {s.D, SPAT_LAYOUT_BLHD, 2, SPAT_BACKEND_JIT, 1, SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  assert_int_equal(spat_compile(p, &oc, &k), SPAT_OK);
  assert_null(spat_kernel_signature(k)->cache_problem);
  spat_kernel_free(k);
  double e = compare_with(p, &s, 1); /* now a cache hit */
  if (!(e <= 1e-4)) fail_msg("cached kernel: error %g", e);
  spat_pattern_free(p);
  spat_cache_clear(ctx, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  unsetenv("XDG_CACHE_HOME");
}

/* --- the memory bound ---------------------------------------------------- */

static long peak_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* In a child: a window backward at L = 65536 grows the peak RSS by at most
 * its tensors + 64 MiB.  Exit 0: within, 1: over, 2: failed. */
static int bound_child(void) {
  spat_pattern *p = parse("pattern p = window(64) | cols(0 .. 4);");
  spat_compile_options o = {16, SPAT_LAYOUT_BHLD, 2, SPAT_BACKEND_JIT, 0, SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  if (spat_compile(p, &o, &k) != SPAT_OK) return 2;
  enum { W = 100, WD = W * 16 }; /* warm-up: the tiles compiled */
  float *w = randn(WD), wo[WD], wl[W], g1[WD], g2[WD], g3[WD];
  spat_tensors wt = {1, 1, 1, W, W, w, w, w, wo, wl, 0, NULL};
  spat_grads wg = {w, NULL, g1, g2, g3, NULL};
  if (spat_kernel_call(k, &wt, NULL, 0) || spat_kernel_backward(k, &wt, &wg, NULL, 0))
    return 2;
  long before = peak_kib();
  int64_t L = 65536, n = L * 16;
  float *t[8];
  for (int x = 0; x < 8; x++) {
    t[x] = x < 4 ? randn((size_t)n) : calloc((size_t)n, 4); /* touched */
    if (!t[x]) return 2;
    if (x >= 4) memset(t[x], 1, (size_t)n * 4);
  }
  float *lse = calloc((size_t)L, 4);
  spat_tensors T = {1, 1, 1, L, L, t[0], t[1], t[2], t[4], lse, 0, NULL};
  spat_grads G = {t[3], NULL, t[5], t[6], t[7], NULL};
  if (spat_kernel_call(k, &T, NULL, 0) || spat_kernel_backward(k, &T, &G, NULL, 0))
    return 2;
  long grew = peak_kib() - before, tensors = (long)(8 * n * 4 + L * 4) / 1024;
  fprintf(stderr, "peak RSS grew %ld KiB; tensors %ld KiB\n", grew, tensors);
  return grew <= tensors + 64 * 1024 ? 0 : 1;
}

static void test_memory_bound(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(bound_child());
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_library),
      cmocka_unit_test(test_random),
      cmocka_unit_test(test_arguments),
      cmocka_unit_test(test_runtime_error),
      cmocka_unit_test(test_cached_kernel),
      cmocka_unit_test(test_memory_bound),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
