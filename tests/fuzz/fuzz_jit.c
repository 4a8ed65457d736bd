/* fuzz_jit.c: libFuzzer target, the LLVM JIT against the interpreter on
 * small shapes.
 *
 * For every input (tests/fuzz/fuzz_common.h: .pat text, then control bytes)
 * whose text loads: the chosen pattern is compiled by backend_jit (a failure
 * must carry a message) and by backend_interp, then run on one or two small
 * shapes drawn from the control bytes (B, H, Hkv, Lq, Lk up to 130, D, layout,
 * threads, scale, runtime scalars, input arrays).
 *
 * q and k hold multiples of 1/2 in [-1, 1] (scores are exact, so top-k ties
 * are the same in float and double); v is one-hot: key j has v[j][d] = 1 for
 * d = j - g * D, in run g of ceil(Lk / D) runs, so o[r][d] is exactly the
 * softmax weight of key g * D + d.  Then, in every run:
 *  - both backends fail, or both succeed (same status; SPAT_FUZZ_ERRORS=0:
 *    a disagreement ends the comparison instead, see fuzz_common.h);
 *  - the JIT allows key j for row r (its weight > 0) iff the interpreter's
 *    mask (interp_mask_rows) does: masks exactly equal;
 *  - weights within 5e-5, lse within 1e-4 (relative above 1), the same rows
 *    empty (lse = -inf, o = 0).
 *
 * Budget: a pattern whose inlined tree has more than FUZZ_JIT_MAX_NODES nodes
 * is skipped (compile cost is not yet bounded by the library: issue 8,
 * class 1); libFuzzer's -timeout and -rss_limit_mb catch the rest.  Keep
 * inputs small (-max_len=512).
 */
#include <math.h>

#include "backend.h"
#include "fuzz_common.h"
#include "interp.h"

#define MAX_INPUTS 4
#define MAX_RUNTIME 8
#define MAX_EXTERNS 4
#define FUZZ_JIT_MAX_NODES 300

static struct {
  long inputs, programs, compiled, compile_errors, runs, both_failed, rows,
      empty_rows, keys, disagreed;
} stats;
static bool strict_errors;
static void print_stats(void) {
  fprintf(stderr, "fuzz_jit: %ld inputs, %ld programs, %ld compiled, %ld compile "
          "errors, %ld runs (%ld failed alike), %ld rows (%ld empty), %ld "
          "allowed keys compared, %ld status disagreements skipped\n",
          stats.inputs, stats.programs, stats.compiled, stats.compile_errors,
          stats.runs, stats.both_failed, stats.rows, stats.empty_rows,
          stats.keys, stats.disagreed);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_sandbox_init();
  strict_errors = fuzz_strict_errors(true);
  if (getenv("FUZZ_STATS")) atexit(print_stats);
  return 0;
}

typedef struct shape {
  int64_t B, H, Hkv, Lq, Lk, D;
  int layout, threads;
  float scale;
} shape;

static void draw_shape(fuzz_input *in, shape *s, int64_t D) {
  static const int64_t lens[] = {1, 2, 3, 5, 8, 13, 17, 33, 64, 65, 100, 130};
  static const int64_t heads[][2] = {{1, 1}, {2, 2}, {2, 1}, {3, 3}, {3, 1},
                                     {4, 2}, {4, 1}, {1, 1}};
  static const float scales[] = {0, 0, 0.125f, 0.5f};
  unsigned b = fuzz_byte(in);
  s->B = 1 + (b & 1);
  s->layout = (b >> 1) & 1;
  s->threads = 1 + ((b >> 2) & 1);
  s->scale = scales[(b >> 3) & 3];
  const int64_t *hh = heads[fuzz_byte(in) % 8];
  s->H = hh[0], s->Hkv = hh[1];
  s->Lq = fuzz_pick(in, lens, sizeof lens / sizeof lens[0]);
  s->Lk = fuzz_pick(in, lens, sizeof lens / sizeof lens[0]);
  s->D = D;
}

static void describe(const ir_program *p, const shape *s, const int64_t *rt) {
  fprintf(stderr, "  B %lld H %lld Hkv %lld Lq %lld Lk %lld D %lld layout %d "
          "threads %d scale %g; runtime", (long long)s->B, (long long)s->H,
          (long long)s->Hkv, (long long)s->Lq, (long long)s->Lk,
          (long long)s->D, s->layout, s->threads, (double)s->scale);
  for (int k = 0; k < p->n_runtime; k++)
    fprintf(stderr, " %s=%lld", p->runtime[k].name, (long long)rt[k]);
  fputs("\n  pattern: ", stderr);
  ir_print(stderr, p, p->root);
  fputc('\n', stderr);
}

/* FUZZ_CHECK, with the shape and pattern printed first. */
#define JCHECK(cond, ...)                                     \
  do {                                                        \
    if (!(cond)) {                                            \
      describe(p, s, rt);                                     \
      fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);      \
    }                                                         \
  } while (0)

/* One shape: every one-hot run of both backends; aborts on a difference. */
static void compare(const ir_program *p, void *kj, void *ki, const shape *s,
                    fuzz_input *in, void *const *externs) {
  int64_t rt[MAX_RUNTIME];
  int32_t *arr[MAX_INPUTS] = {0};
  for (int k = 0; k < p->n_runtime; k++) rt[k] = fuzz_scalar(in);
  for (int k = 0; k < p->n_inputs; k++) {
    arr[k] = malloc(sizeof(int32_t) * (size_t)s->Lk);
    FUZZ_CHECK(arr[k] != NULL, "out of memory");
    for (int64_t j = 0; j < s->Lk; j++) arr[k][j] = fuzz_elem(in, s->Lk);
  }
  size_t nq = (size_t)(s->B * s->H * s->Lq * s->D);
  size_t nk = (size_t)(s->B * s->Hkv * s->Lk * s->D);
  size_t nl = (size_t)(s->B * s->H * s->Lq);
  float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk);
  float *v = malloc(sizeof(float) * nk);
  float *o1 = malloc(sizeof(float) * nq), *o2 = malloc(sizeof(float) * nq);
  float *l1 = malloc(sizeof(float) * nl), *l2 = malloc(sizeof(float) * nl);
  uint8_t *mask = malloc((size_t)(s->Lq * s->Lk));
  FUZZ_CHECK(q && k && v && o1 && o2 && l1 && l2 && mask, "out of memory");
  uint64_t seed = fuzz_byte(in);
  for (size_t t = 0; t < nq; t++)
    q[t] = (float)((int)(fuzz_mix(seed * 7919 + t) % 5) - 2) * 0.5f;
  for (size_t t = 0; t < nk; t++)
    k[t] = (float)((int)(fuzz_mix(~seed * 7919 + t) % 5) - 2) * 0.5f;

  rt_args a = {0};
  a.B = s->B, a.H = s->H, a.Hkv = s->Hkv, a.Lq = s->Lq, a.Lk = s->Lk, a.D = s->D;
  a.q.data = q, a.k.data = k, a.v.data = v;
  rt_tensor_strides(&a.q, s->layout, s->H, s->Lq, s->D);
  rt_tensor_strides(&a.k, s->layout, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a.v, s->layout, s->Hkv, s->Lk, s->D);
  rt_tensor_strides(&a.o, s->layout, s->H, s->Lq, s->D);
  a.lse_sb = s->H * s->Lq, a.lse_sh = s->Lq;
  a.scale = s->scale;
  a.runtime = rt;
  a.inputs = (const int32_t *const *)arr;
  a.externs = externs;
  a.threads = s->threads;

  if (getenv("FUZZ_VERBOSE")) describe(p, s, rt);
  int64_t groups = (s->Lk + s->D - 1) / s->D;
  for (int64_t g = 0; g < groups; g++) {
    for (int64_t b = 0; b < s->B; b++)
      for (int64_t hk = 0; hk < s->Hkv; hk++)
        for (int64_t j = 0; j < s->Lk; j++) {
          float *row = v + b * a.v.sb + hk * a.v.sh + j * a.v.sl;
          for (int64_t d = 0; d < s->D; d++) row[d] = j == g * s->D + d ? 1.0f : 0.0f;
        }
    char e1[512] = "", e2[512] = "";
    for (size_t t = 0; t < nq; t++) o1[t] = o2[t] = -7.0f;  /* must be written */
    a.o.data = o1, a.lse = l1;
    rt_status s1 = backend_interp.run(ki, &a, e1, sizeof e1);
    a.o.data = o2, a.lse = l2;
    rt_status s2 = backend_jit.run(kj, &a, e2, sizeof e2);
    stats.runs++;
    if (s1 != s2 && !strict_errors) {
      stats.disagreed++;
      break;
    }
    JCHECK(s1 == s2, "status: interp %d (%s), jit %d (%s)", s1, e1, s2, e2);
    if (s1 != RT_OK) {
      FUZZ_CHECK(e1[0] && e2[0], "an error without a message: '%s' / '%s'", e1, e2);
      FUZZ_CHECK(s1 != RT_EINTERNAL, "internal error: %s", e1);
      stats.both_failed++;
      break;
    }
    for (int64_t b = 0; b < s->B; b++)
      for (int64_t h = 0; h < s->H; h++) {
        char err[512] = "";
        rt_status st = interp_mask_rows(p, &a, b, h, 0, s->Lq, mask, err, sizeof err);
        FUZZ_CHECK(st == RT_OK, "interp_mask_rows fails (%s) where the run did not", err);
        for (int64_t r = 0; r < s->Lq; r++) {
          const float *r1 = o1 + b * a.o.sb + h * a.o.sh + r * a.o.sl;
          const float *r2 = o2 + b * a.o.sb + h * a.o.sh + r * a.o.sl;
          for (int64_t d = 0; d < s->D; d++) {
            int64_t j = g * s->D + d;
            bool in_mask = j < s->Lk && mask[r * s->Lk + j];
            bool in_jit = r2[d] > 0, in_int = r1[d] > 0;
            stats.keys += in_mask;
            JCHECK(in_mask == in_int,
                   "harness: interp weight %g of key %lld, mask %d "
                   "(b %lld h %lld row %lld)", (double)r1[d], (long long)j,
                   in_mask, (long long)b, (long long)h, (long long)r);
            JCHECK(in_mask == in_jit,
                   "mask differs at b %lld h %lld row %lld key %lld: "
                   "interp %s, jit weight %g", (long long)b, (long long)h,
                   (long long)r, (long long)j, in_mask ? "allows" : "disallows",
                   (double)r2[d]);
            JCHECK(fabs((double)r1[d] - (double)r2[d]) <= 5e-5,
                   "weight of key %lld at b %lld h %lld row %lld: interp "
                   "%.8g, jit %.8g", (long long)j, (long long)b,
                   (long long)h, (long long)r, (double)r1[d], (double)r2[d]);
          }
          int64_t li = b * a.lse_sb + h * a.lse_sh + r;
          float x = l1[li], y = l2[li];
          if (g < groups - 1) continue; /* the masks of every group first */
          stats.rows++, stats.empty_rows += x == -INFINITY;
          JCHECK(isfinite(x) == isfinite(y) && !isnan(y) &&
                     (!isfinite(x) ? x == y
                                   : fabs((double)x - (double)y) <=
                                         1e-4 * fmax(1.0, fabs((double)x))),
                 "lse of b %lld h %lld row %lld: interp %g, jit %g",
                 (long long)b, (long long)h, (long long)r, (double)x, (double)y);
        }
      }
  }
  free(q), free(k), free(v), free(o1), free(o2), free(l1), free(l2), free(mask);
  for (int t = 0; t < p->n_inputs; t++) free(arr[t]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int64_t dims[] = {16, 16, 32, 32, 64, 64, 80, 96, 128, 256};
  fuzz_input in;
  if (!fuzz_input_init(&in, data, size)) return 0;
  stats.inputs++;
  if (!fuzz_imports_ok(&in)) {
    fuzz_input_free(&in);
    return 0;
  }
  diag *d = diag_new();
  arena *a = arena_new();
  FUZZ_CHECK(d && a, "out of memory");
  ir_program *p = fuzz_load(&in, d, a);
  void *externs[MAX_EXTERNS];
  if (p && p->n_runtime <= MAX_RUNTIME && p->n_inputs <= MAX_INPUTS &&
      fuzz_externs(p, externs, MAX_EXTERNS) && fuzz_edges_ok(p) &&
      fuzz_tree_size(p->root, FUZZ_JIT_MAX_NODES) <= FUZZ_JIT_MAX_NODES) {
    stats.programs++;
    unsigned b = fuzz_byte(&in);
    backend_opts o = {.D = dims[b % 10], .threads = 1};
    char err[512] = "";
    void *kj = backend_jit.compile(p, &o, err, sizeof err);
    if (!kj) {
      FUZZ_CHECK(err[0] != 0, "JIT compile failed without a message");
      stats.compile_errors++;
    } else {
      stats.compiled++;
      void *ki = backend_interp.compile(p, &o, err, sizeof err);
      FUZZ_CHECK(ki != NULL, "interp compile: %s", err);
      int runs = 1 + (int)((b >> 4) & 1);
      for (int r = 0; r < runs; r++) {
        shape s;
        draw_shape(&in, &s, o.D);
        compare(p, kj, ki, &s, &in, externs);
      }
      backend_interp.free(ki);
      backend_jit.free(kj);
    }
  }
  arena_free(a);
  diag_free(d);
  fuzz_input_free(&in);
  return 0;
}
