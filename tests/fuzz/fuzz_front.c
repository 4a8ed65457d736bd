/* fuzz_front.c: libFuzzer target over the front end, the tile plan and the
 * interpreter's mask (no LLVM code generation).
 *
 * For every input (tests/fuzz/fuzz_common.h: .pat text, then control bytes):
 *  1. parse + check + instantiate the chosen pattern.  Failure must come with
 *     an "error: " diagnostic.
 *  2. print/reparse round trip: ir_print_program's text must load and
 *     instantiate again and print to exactly the same text.
 *  3. an_build: a plan, or a message.  an_explain on a small shape must not
 *     crash (its output goes to /dev/null).
 *  4. plan spans against the interpreter's mask, for small Lq, Lk, H,
 *     runtime scalars and input arrays from the control bytes, on query
 *     tiles of a drawn size: spans sorted, disjoint, inside [0, Lk), at most
 *     plan_max_spans and Lk of them; every (row, key) of a FULL span allowed
 *     by the interpreter; every key in no span disallowed for every row of
 *     the tile.  With and without the input arrays (without them a predicate
 *     over an input must come out PARTIAL, never FULL or skipped).
 *     Run-time errors: where the interpreter computes a head's rows without
 *     error and the plan fails (or the other way round), the two backends
 *     would disagree; that is fatal when SPAT_FUZZ_ERRORS=1 (the default is
 *     to check soundness only, since the interpreter may short-circuit past
 *     an error the plan reports).
 */
#include <math.h>

#include "analyze.h"
#include "fuzz_common.h"
#include "interp.h"
#include "plan.h"

#define MAX_INPUTS 8
#define MAX_RUNTIME 16
#define MAX_EXTERNS 8
#define FUZZ_D 4

static FILE *devnull;
static bool strict_errors;

/* FUZZ_STATS=1: counts printed at exit (to see that the checks run). */
static struct {
  long inputs, programs, round_trips, plans, heads, tiles, full, skipped, plan_errors,
      too_large;
} stats;
static void print_stats(void) {
  fprintf(stderr, "fuzz_front: %ld inputs, %ld programs, %ld round trips, %ld plans, "
          "%ld heads compared, %ld tiles, %ld FULL / %ld skipped keys checked, "
          "%ld plan errors, %ld cases with inputs over 2^20 elements\n", stats.inputs,
          stats.programs, stats.round_trips, stats.plans, stats.heads, stats.tiles,
          stats.full, stats.skipped, stats.plan_errors, stats.too_large);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_sandbox_init();
  devnull = fopen("/dev/null", "w");
  strict_errors = fuzz_strict_errors(false);
  if (getenv("FUZZ_STATS")) atexit(print_stats);
  return 0;
}

static char *print_program(const ir_program *p) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  FUZZ_CHECK(f != NULL, "open_memstream");
  ir_print_program(f, p);
  fclose(f);
  return buf;
}

static void round_trip(const ir_program *p) {
  char *t1 = print_program(p);
  diag *d = diag_new();
  arena *a = arena_new();
  FUZZ_CHECK(d && a, "out of memory");
  fe_module *m = fe_load_string(d, a, "<printed>", t1);
  FUZZ_CHECK(m != NULL, "printed program does not load:\n%s\n%s", t1,
             diag_text(d));
  ir_program *q = fe_instantiate(d, m, p->name, NULL, 0);
  FUZZ_CHECK(q != NULL, "printed program does not instantiate:\n%s\n%s", t1,
             diag_text(d));
  char *t2 = print_program(q);
  FUZZ_CHECK(strcmp(t1, t2) == 0, "print/reparse/print differs:\n%s---\n%s", t1,
             t2);
  FUZZ_CHECK(q->n_runtime == p->n_runtime && q->n_inputs == p->n_inputs &&
                 q->n_externs == p->n_externs && q->n_params == p->n_params,
             "reparsed tables differ:\n%s", t1);
  free(t2);
  arena_free(a);
  diag_free(d);
  free(t1);
}

typedef struct shape {
  int64_t H, Lq, Lk;
  int64_t rt[MAX_RUNTIME];
  int32_t *in[MAX_INPUTS];
} shape;

/* Checks the plan of one head against the mask rows of that head. */
static void check_tiles(const int64_t *plan,
                        const shape *s, int64_t h, const uint8_t *mask,
                        const int32_t *const *inputs, int64_t bq) {
  int64_t Lk = s->Lk, cap = Lk + 1;
  plan_span *sp = malloc(sizeof *sp * (size_t)cap);
  uint8_t *cover = malloc((size_t)Lk);
  FUZZ_CHECK(sp && cover, "out of memory");
  plan_env env = {.h = h, .H = s->H, .Lq = s->Lq, .Lk = Lk, .runtime = s->rt,
                  .inputs = inputs};
  for (int64_t r0 = 0; r0 < s->Lq; r0 += bq) {
    int64_t r1 = r0 + bq < s->Lq ? r0 + bq : s->Lq;
    char err[512] = "";
    int64_t n = plan_tiles(plan, &env, r0, r1, sp, cap, err, sizeof err);
    stats.tiles++;
    if (n < 0) {
      stats.plan_errors++;
      FUZZ_CHECK(err[0] != 0, "plan_tiles failed without a message");
      FUZZ_CHECK(!strict_errors,
                 "plan_tiles fails (%s) where the interpreter computes every "
                 "row (h %lld, rows [%lld, %lld), Lq %lld Lk %lld H %lld)",
                 err, (long long)h, (long long)r0, (long long)r1,
                 (long long)s->Lq, (long long)Lk, (long long)s->H);
      break;
    }
    FUZZ_CHECK(n <= Lk && n <= plan_max_spans(plan),
               "%lld spans (Lk %lld, plan_max_spans %lld)", (long long)n,
               (long long)Lk, (long long)plan_max_spans(plan));
    memset(cover, 0, (size_t)Lk);
    int64_t prev = 0;
    for (int64_t t = 0; t < n; t++) {
      plan_span x = sp[t];
      FUZZ_CHECK(x.k0 >= prev && x.k0 < x.k1 && x.k1 <= Lk &&
                     (x.kind == PLAN_FULL || x.kind == PLAN_PARTIAL),
                 "bad span %lld: [%lld, %lld) kind %lld after %lld, Lk %lld",
                 (long long)t, (long long)x.k0, (long long)x.k1,
                 (long long)x.kind, (long long)prev, (long long)Lk);
      prev = x.k1;
      for (int64_t j = x.k0; j < x.k1; j++) cover[j] = (uint8_t)x.kind;
    }
    for (int64_t r = r0; r < r1; r++)
      for (int64_t j = 0; j < Lk; j++) {
        uint8_t m = mask[r * Lk + j];
        stats.full += cover[j] == PLAN_FULL;
        stats.skipped += cover[j] == 0;
        FUZZ_CHECK(!(cover[j] == PLAN_FULL && !m) && !(cover[j] == 0 && m),
                   "plan marks key %lld %s for rows [%lld, %lld), but the "
                   "interpreter says row %lld %s it (h %lld, Lq %lld, Lk %lld, "
                   "H %lld, inputs %s)",
                   (long long)j, cover[j] == PLAN_FULL ? "FULL" : "skipped",
                   (long long)r0, (long long)r1, (long long)r,
                   m ? "allows" : "disallows", (long long)h, (long long)s->Lq,
                   (long long)Lk, (long long)s->H, inputs ? "given" : "NULL");
      }
  }
  free(cover);
  free(sp);
}

static void check_plan(const ir_program *p, const int64_t *plan,
                       fuzz_input *in, void *const *externs) {
  static const int64_t lens[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 31, 33};
  static const int64_t tiles[] = {1, 2, 3, 4, 5, 8, 16, 64};
  shape s = {0};
  s.H = 1 + fuzz_byte(in) % 3;
  s.Lq = fuzz_pick(in, lens, sizeof lens / sizeof lens[0]);
  s.Lk = fuzz_pick(in, lens, sizeof lens / sizeof lens[0]);
  int64_t bq = fuzz_pick(in, tiles, sizeof tiles / sizeof tiles[0]);
  for (int k = 0; k < p->n_runtime; k++) s.rt[k] = fuzz_scalar(in);
  /* each input as long as its declared shape for the run's sizes (shaped
   * inputs, language v2), at least Lk.  An invalid shape (-1: negative or
   * overflowing) gets Lk elements, and the run reports it; a valid shape of
   * more than 2^20 elements cannot be given here (the interpreter reads
   * what the shape says, as the API's contract lets it), so such a case
   * runs no masks */
  const int64_t sz[6] = {1, s.H, s.H, s.Lq, s.Lk, FUZZ_D};
  for (int k = 0; k < p->n_inputs; k++)
    if (ir_input_len(p, k, sz) > (1 << 20)) {
      stats.too_large++;
      return;
    }
  for (int k = 0; k < p->n_inputs; k++) {
    int64_t n = ir_input_len(p, k, sz);
    if (n < s.Lk) n = s.Lk;
    s.in[k] = malloc(sizeof(int32_t) * (size_t)n);
    FUZZ_CHECK(s.in[k] != NULL, "out of memory");
    for (int64_t j = 0; j < n; j++) s.in[k][j] = fuzz_elem(in, s.Lk);
  }
  /* q, k for topk: multiples of 1/2, so that scores are exact */
  size_t nq = (size_t)(s.H * s.Lq * FUZZ_D), nk = (size_t)(s.H * s.Lk * FUZZ_D);
  float *q = malloc(sizeof(float) * nq), *kk = malloc(sizeof(float) * nk);
  uint8_t *mask = malloc((size_t)(s.Lq * s.Lk));
  FUZZ_CHECK(q && kk && mask, "out of memory");
  uint64_t seed = fuzz_byte(in);
  for (size_t t = 0; t < nq; t++) q[t] = (float)((int)(fuzz_mix(seed + t) % 5) - 2) * 0.5f;
  for (size_t t = 0; t < nk; t++)
    kk[t] = (float)((int)(fuzz_mix(~seed + t) % 5) - 2) * 0.5f;

  rt_args a = {0};
  a.B = 1, a.H = s.H, a.Hkv = s.H, a.Lq = s.Lq, a.Lk = s.Lk, a.D = FUZZ_D;
  a.q.data = q, a.k.data = kk;
  rt_tensor_strides(&a.q, 0, s.H, s.Lq, FUZZ_D);
  rt_tensor_strides(&a.k, 0, s.H, s.Lk, FUZZ_D);
  a.runtime = s.rt;
  a.inputs = (const int32_t *const *)s.in;
  a.externs = externs;
  a.threads = 1;
  for (int64_t h = 0; h < s.H; h++) {
    char err[512] = "";
    rt_status st = interp_mask_rows(p, &a, 0, h, 0, s.Lq, mask, err, sizeof err);
    if (st != RT_OK) {
      FUZZ_CHECK(err[0] != 0 && st != RT_EINTERNAL && st != RT_EINVAL,
                 "interp_mask_rows: status %d, message '%s'", st, err);
      continue;  /* the row's mask is unknown: nothing to compare */
    }
    stats.heads++;
    check_tiles(plan, &s, h, mask, (const int32_t *const *)s.in, bq);
    /* Without input arrays: sound too (PARTIAL where they are read). */
    if (p->n_inputs > 0) check_tiles(plan, &s, h, mask, NULL, bq);
  }
  if (devnull && p->n_runtime <= MAX_RUNTIME) {
    char err[512];
    an_explain(devnull, p, s.H, s.Lq, s.Lk, bq, 1 + fuzz_byte(in) % 8, s.rt,
               err, sizeof err);
  }
  free(mask), free(q), free(kk);
  for (int k = 0; k < p->n_inputs; k++) free(s.in[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
      fuzz_externs(p, externs, MAX_EXTERNS)) {
    stats.programs++;
    round_trip(p);
    stats.round_trips++;
    char err[512] = "";
    int64_t *plan = fuzz_edges_ok(p) ? an_build(p, err, sizeof err) : NULL;
    if (plan)
      stats.plans++, check_plan(p, plan, &in, externs), free(plan);
    else if (fuzz_edges_ok(p))
      FUZZ_CHECK(err[0] != 0, "an_build failed without a message");
  }
  arena_free(a);
  diag_free(d);
  fuzz_input_free(&in);
  return 0;
}
