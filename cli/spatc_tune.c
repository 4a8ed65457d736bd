/* spatc_tune.c: `spatc tune FILE --target R`, the cheapest compile-time
 * parameters of a pattern, by measured kernel time, that keep a recall of
 * at least R (mean over query rows, or --by min) on given activations
 * (explore.h).  Prints the chosen -D values and every setting it measured.
 *
 * The parameters searched: those of --param NAME=LO:HI, else every
 * parameter with a value >= 1 that is not named seed and not fixed by -D.
 * Each gets a grid: the powers of 2 in its range, plus the range's ends
 * (and the default's value inside the default range); the default range
 * is [max(1, v / 16), 4 v] around the value v.
 *
 * The search is coordinate descent with bisection, bounded by --max-evals
 * settings measured (each once: a cache).  Starting from the values given
 * (snapped to the grid), for each parameter in turn, the others fixed:
 *  - measure both ends of its grid; the end with the lower density is the
 *    cheap end (equal densities: the parameter does not change the mask
 *    here, it stays);
 *  - assuming recall grows from the cheap end to the other (true of window
 *    sizes, k, numbers of globals and random blocks), bisect for the
 *    setting nearest the cheap end that meets the target: about
 *    log2(grid size) + 2 settings per line;
 *    then up to 3 integer bisection steps between the two grid values
 *    around the boundary;
 *  - move to the fastest measured setting of the line that meets the
 *    target (times within 5% are a tie, won by the lower density), or,
 *    when none does, to the one with the highest recall;
 * until a round changes nothing (at most 4 rounds).  The answer is the
 * fastest setting (same tie rule) that meets the target among all those measured, a point
 * of the printed curve; there is none when even the most expensive
 * settings miss the target (exit status 1).  Non-monotone parameters may
 * lead bisection astray: give them a --param range where they are
 * monotone, or fix them with -D. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"
#include "spatc.h"

#define DEFAULT_REPEATS 5
#define DEFAULT_TARGET 0.95
#define DEFAULT_MAX_EVALS 48
#define MAX_TUNED 16
#define MAX_GRID 70
#define MAX_ROUNDS 4
#define REFINE_STEPS 3   /* integer bisection steps between grid values */
#define TIME_TIE 0.05    /* times this close are equal */

typedef struct tparam {
  const char *name;
  int64_t lo, hi;            /* the range; given: from --param */
  bool given;
  int64_t grid[MAX_GRID];
  int n;
} tparam;

typedef struct point {
  int64_t v[MAX_TUNED];
  bool valid;                /* compiled and ran */
  bool meets;
  double recall;             /* the one compared with the target */
  ex_stat all;
  double ms;
} point;

typedef struct tune_opts {
  ex_opts ex;
  bool json, verbose, by_min;
  double target;
  int64_t max_evals;
  tparam par[MAX_TUNED];
  int n_par;
} tune_opts;

typedef struct tuner {
  tune_opts *o;
  spatc_pat *pat;
  spatc_bound *bound;
  const ex_ref *ref;
  point *pts;
  int n_pts, cap_pts;
} tuner;

/* "NAME=LO:HI" with 0 <= LO <= HI. */
static int param_option(tune_opts *o, const cli *c) {
  const char *eq = strchr(c->arg, '='), *colon = eq ? strchr(eq, ':') : NULL;
  char *end1 = NULL, *end2 = NULL;
  long long lo = 0, hi = -1;
  if (colon) {
    lo = strtoll(eq + 1, &end1, 10);
    hi = strtoll(colon + 1, &end2, 10);
  }
  if (!eq || eq == c->arg || !colon || end1 != colon || end1 == eq + 1 ||
      *end2 || end2 == colon + 1 || lo < 0 || hi < lo ||
      hi > ((long long)1 << 40))
    return cli_usage_error(c, "--param '%s': expected NAME=LO:HI with "
                              "0 <= LO <= HI <= 2^40", c->arg);
  if (o->n_par == MAX_TUNED)
    return cli_usage_error(c, "at most %d --param", MAX_TUNED);
  tparam *p = &o->par[o->n_par++];
  char *name = strndup(c->arg, (size_t)(eq - c->arg));
  if (!name) return spatc_error("out of memory");
  *p = (tparam){.name = name, .lo = lo, .hi = hi, .given = true};
  return 0;
}

static int tune_option(void *ctx, const cli *c, int id) {
  tune_opts *o = ctx;
  switch (id) {
  case OPT_JSON: o->json = true; return 0;
  case OPT_VERBOSE: o->verbose = true; return 0;
  case OPT_GOAL:
    if (!cli_float(c, &o->target)) return SPATC_EUSAGE;
    if (!(o->target > 0 && o->target <= 1))
      return cli_usage_error(c, "--target must be in (0, 1], got %s", c->arg);
    return 0;
  case OPT_BY:
    if (strcmp(c->arg, "mean") == 0) o->by_min = false;
    else if (strcmp(c->arg, "min") == 0) o->by_min = true;
    else return cli_usage_error(c, "--by: expected mean or min, got '%s'", c->arg);
    return 0;
  case OPT_PARAM: return param_option(o, c);
  case OPT_MAX_EVALS:
    return cli_int(c, 1, 100000, &o->max_evals) ? 0 : SPATC_EUSAGE;
  default: return ex_option(&o->ex, c, id);
  }
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* The grid of p: powers of 2 in [lo, hi], lo, hi and `also` when inside. */
static void make_grid(tparam *p, int64_t also) {
  p->n = 0;
  p->grid[p->n++] = p->lo;
  p->grid[p->n++] = p->hi;
  if (also >= p->lo && also <= p->hi) p->grid[p->n++] = also;
  for (int64_t x = 1; x <= p->hi && p->n < MAX_GRID; x *= 2)
    if (x >= p->lo) p->grid[p->n++] = x;
  qsort(p->grid, (size_t)p->n, sizeof *p->grid, cmp_i64);
  int u = 0;
  for (int x = 0; x < p->n; x++)
    if (u == 0 || p->grid[u - 1] != p->grid[x]) p->grid[u++] = p->grid[x];
  p->n = u;
}

static bool defined(const spatc_sel *sel, const char *name) {
  for (int k = 0; k < sel->n_defs; k++)
    if (strcmp(sel->defs[k].name, name) == 0) return true;
  return false;
}

/* The parameters to search and their grids; 0 or an exit status. */
static int choose_params(tune_opts *o, const spatc_pat *sp,
                         const spatc_sel *sel, int64_t *start) {
  size_t n = spat_pattern_n_params(sp->p);
  for (int x = 0; x < o->n_par; x++) {
    bool found = false;
    for (size_t k = 0; k < n && !found; k++) {
      const char *name;
      int64_t v;
      spat_pattern_param(sp->p, k, &name, &v);
      if (strcmp(name, o->par[x].name) == 0) found = true, start[x] = v;
    }
    if (!found)
      return spatc_error("pattern '%s' has no compile-time parameter '%s'",
                         sp->info.name, o->par[x].name);
    make_grid(&o->par[x], -1);
  }
  if (o->n_par > 0) return 0;
  for (size_t k = 0; k < n; k++) {
    const char *name;
    int64_t v;
    spat_pattern_param(sp->p, k, &name, &v);
    if (v < 1 || strcmp(name, "seed") == 0 || defined(sel, name)) continue;
    if (o->n_par == MAX_TUNED) break;
    tparam *p = &o->par[o->n_par];
    *p = (tparam){.name = name, .lo = v / 16 > 1 ? v / 16 : 1,
                  .hi = v > ((int64_t)1 << 40) ? v : 4 * v};
    make_grid(p, v);
    start[o->n_par++] = v;
  }
  if (o->n_par == 0)
    return spatc_error("pattern '%s' has no compile-time parameter to tune "
                       "(give one with --param NAME=LO:HI)", sp->info.name);
  return 0;
}

/* The grid index nearest v. */
static int snap(const tparam *p, int64_t v) {
  int best = 0;
  for (int x = 1; x < p->n; x++) {
    double d = fabs((double)p->grid[x] - (double)v);
    if (d < fabs((double)p->grid[best] - (double)v)) best = x;
  }
  return best;
}

static bool same(const tuner *t, const int64_t *a, const int64_t *b) {
  for (int x = 0; x < t->o->n_par; x++)
    if (a[x] != b[x]) return false;
  return true;
}

static void point_label(const tuner *t, const int64_t *v, char *buf, size_t n) {
  size_t u = 0;
  buf[0] = '\0';
  for (int x = 0; x < t->o->n_par && u < n; x++)
    u += (size_t)snprintf(buf + u, n - u, "%s%s=%" PRId64, x ? " " : "",
                          t->o->par[x].name, v[x]);
}

/* The measured setting v (measuring it when new); NULL once the budget is
 * spent or on an error that is not the setting's (then *rc is set). */
static point *eval(tuner *t, const int64_t *v, int *rc) {
  for (int x = 0; x < t->n_pts; x++)
    if (same(t, t->pts[x].v, v)) return &t->pts[x];
  if (t->n_pts >= t->o->max_evals) return NULL;
  if (t->n_pts == t->cap_pts) {
    int cap = t->cap_pts ? 2 * t->cap_pts : 32;
    point *np = realloc(t->pts, sizeof *np * (size_t)cap);
    if (!np) {
      *rc = spatc_error("out of memory");
      return NULL;
    }
    t->pts = np;
    t->cap_pts = cap;
  }
  point *p = &t->pts[t->n_pts++];
  memset(p, 0, sizeof *p);
  memcpy(p->v, v, sizeof p->v);
  char label[512];
  point_label(t, v, label, sizeof label);
  spat_ctx *ctx = t->pat->ctx;
  spat_status st = SPAT_OK;
  for (int x = 0; x < t->o->n_par && st == SPAT_OK; x++)
    st = spat_pattern_set_param(t->pat->p, t->o->par[x].name, v[x]);
  spat_kernel *k = NULL;
  spat_compile_options co = {.D = t->ref->a.D,
                             .layout = (spat_layout)t->ref->a.layout,
                             .threads = t->o->ex.threads,
                             .backend = t->o->ex.backend,
                             .cache = t->o->ex.cache};
  if (st == SPAT_OK) st = spat_compile(t->pat->p, &co, &k);
  if (st != SPAT_OK) {
    /* a value the pattern rejects: a point of the curve, not an error */
    const char *msg = spat_ctx_error(ctx);
    fprintf(stderr, "spatc: note: tune: %s: %.*s\n", label,
            (int)strcspn(msg, "\n"), msg);
    return p;
  }
  ex_eval ev;
  int r = ex_measure(t->ref, k, ctx, t->bound->args, t->bound->n_args,
                     &t->o->ex, &ev);
  spat_kernel_free(k);
  if (r) {
    *rc = r;
    ex_eval_free(&ev);
    return NULL;
  }
  p->valid = true;
  p->all = ev.all;
  p->ms = ev.ms;
  p->recall = t->o->by_min ? ev.all.min : ev.all.mean;
  p->meets = p->recall >= t->o->target;
  ex_eval_free(&ev);
  if (t->o->verbose)
    fprintf(stderr, "spatc: tune: %s: density %.4f recall %.4f %.3f ms%s\n",
            label, p->all.density, p->recall, p->ms, p->meets ? " (meets)" : "");
  return p;
}

/* The answer among the valid points on the line of parameter x through cur
 * (x < 0: every point): of those that meet the target, the lowest density
 * among those within TIME_TIE of the fastest (the machine's noise should
 * not pick a larger window; the window is anchored at the fastest, so ties
 * cannot chain to a slower point); with none meeting, the best recall;
 * NULL with no valid point. */
static point *best_of(const tuner *t, const int64_t *cur, int x) {
  double fast = INFINITY;
  point *best = NULL;
  for (int pass = 0; pass < 2; pass++)
    for (int k = 0; k < t->n_pts; k++) {
      point *q = &t->pts[k];
      bool use = q->valid;
      for (int y = 0; x >= 0 && y < t->o->n_par && use; y++)
        if (y != x && q->v[y] != cur[y]) use = false;
      if (!use) continue;
      if (pass == 0) {
        if (q->meets && q->ms < fast) fast = q->ms;
      } else if (fast < INFINITY) {
        if (q->meets && q->ms * (1 - TIME_TIE) <= fast &&
            (!best || q->all.density < best->all.density))
          best = q;
      } else if (!best || q->recall > best->recall) {
        best = q;
      }
    }
  return best;
}

/* One line search over parameter x from cur (updated); *moved when it
 * changed.  0, or an exit status. */
static int line(tuner *t, int x, int64_t *cur, bool *moved) {
  const tparam *p = &t->o->par[x];
  int64_t v[MAX_TUNED];
  memcpy(v, cur, sizeof v);
  int rc = 0;
  v[x] = p->grid[0];
  point *a = eval(t, v, &rc);
  v[x] = p->grid[p->n - 1];
  point *b = rc || !a ? NULL : eval(t, v, &rc);
  if (rc || !a || !b) return rc;
  if (!a->valid || !b->valid || a->all.density == b->all.density) return 0;
  bool up = a->all.density < b->all.density; /* the cheap end is grid[0] */
  point *pc = up ? a : b, *pd = up ? b : a;
  if (pd->meets && !pc->meets) {
    /* bisect: lo misses, hi meets, indices counted from the cheap end */
    int lo = 0, hi = p->n - 1;
    while (hi - lo > 1) {
      int mid = (lo + hi) / 2;
      v[x] = p->grid[up ? mid : p->n - 1 - mid];
      point *m = eval(t, v, &rc);
      if (rc || !m) return rc;
      if (m->valid && m->meets) hi = mid;
      else lo = mid;
    }
    /* then between the two grid values, a few integer steps */
    int64_t vm = p->grid[up ? lo : p->n - 1 - lo];
    int64_t vh = p->grid[up ? hi : p->n - 1 - hi];
    for (int step = 0; step < REFINE_STEPS && llabs(vh - vm) > 1; step++) {
      v[x] = vm + (vh - vm) / 2;
      point *m = eval(t, v, &rc);
      if (rc || !m) return rc;
      if (m->valid && m->meets) vh = v[x];
      else vm = v[x];
    }
  }
  /* the fastest measured setting of this line that meets the target, else
   * the best recall */
  point *best = best_of(t, cur, x);
  if (best && best->v[x] != cur[x]) {
    cur[x] = best->v[x];
    *moved = true;
  }
  return 0;
}

static void print_curve(const tuner *t, const point *chosen) {
  const tune_opts *o = t->o;
  for (int x = 0; x < o->n_par; x++) printf("%10s", o->par[x].name);
  printf(" %9s %9s %9s %9s %10s\n", "density", "rec mean", "rec min", "ms",
         "");
  for (int k = 0; k < t->n_pts; k++) {
    const point *p = &t->pts[k];
    for (int x = 0; x < o->n_par; x++) printf("%10" PRId64, p->v[x]);
    if (!p->valid) {
      printf(" %9s (rejected by the pattern)\n", "-");
      continue;
    }
    printf(" %9.4f %9.4f %9.4f %9.3f %10s\n", p->all.density, p->all.mean,
           p->all.min, p->ms,
           p == chosen ? "<- chosen" : p->meets ? "meets" : "");
  }
}

static void print_json(const tuner *t, const point *chosen) {
  const tune_opts *o = t->o;
  printf("{\"pattern\": ");
  ex_json_str(stdout, t->pat->info.name);
  printf(", \"target\": ");
  ex_json_num(stdout, o->target);
  printf(", \"by\": \"%s\", \"params\": [", o->by_min ? "min" : "mean");
  for (int x = 0; x < o->n_par; x++) {
    printf("%s{\"name\": ", x ? ", " : "");
    ex_json_str(stdout, o->par[x].name);
    printf(", \"grid\": [");
    for (int g = 0; g < o->par[x].n; g++)
      printf("%s%" PRId64, g ? ", " : "", o->par[x].grid[g]);
    printf("]}");
  }
  printf("], \"chosen\": ");
  if (!chosen) printf("null");
  else {
    printf("{");
    for (int x = 0; x < o->n_par; x++) {
      printf("%s", x ? ", " : "");
      ex_json_str(stdout, o->par[x].name);
      printf(": %" PRId64, chosen->v[x]);
    }
    printf("}");
  }
  printf(", \"reference_ms\": ");
  ex_json_num(stdout, t->ref->ms);
  printf(", \"curve\": [");
  for (int k = 0; k < t->n_pts; k++) {
    const point *p = &t->pts[k];
    printf("%s{\"values\": {", k ? ", " : "");
    for (int x = 0; x < o->n_par; x++) {
      printf("%s", x ? ", " : "");
      ex_json_str(stdout, o->par[x].name);
      printf(": %" PRId64, p->v[x]);
    }
    printf("}, \"valid\": %s, \"meets\": %s, \"kernel_ms\": ",
           p->valid ? "true" : "false", p->meets ? "true" : "false");
    ex_json_num(stdout, p->valid ? p->ms : NAN);
    printf(", \"recall\": ");
    ex_json_stat(stdout, &p->all);
    printf("}");
  }
  printf("]}\n");
}

static int search(tuner *t, int64_t *start) {
  int64_t cur[MAX_TUNED] = {0};
  for (int x = 0; x < t->o->n_par; x++)
    cur[x] = t->o->par[x].grid[snap(&t->o->par[x], start[x])];
  int rc = 0;
  point *first = eval(t, cur, &rc);
  if (rc || !first) return rc;
  for (int round = 0; round < MAX_ROUNDS; round++) {
    bool moved = false;
    for (int x = 0; x < t->o->n_par && !rc; x++) rc = line(t, x, cur, &moved);
    if (rc || !moved || t->n_pts >= t->o->max_evals) break;
  }
  return rc;
}

int spatc_tune_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME,
                                 OPT_INPUT, OPT_PLUGIN, EX_OPTS, OPT_GOAL,
                                 OPT_BY, OPT_PARAM, OPT_MAX_EVALS, OPT_VERBOSE,
                                 OPT_NONE};
  cli c;
  cli_init(&c, argc, argv,
           "FILE (--q Q.npy --k K.npy [--v V.npy] | [--seed S] --len N) "
           "[--target R] [--param NAME=LO:HI]... [options]",
           "Searches the compile-time parameters of the pattern of FILE for "
           "the setting\nwith the lowest measured kernel time whose recall "
           "against dense attention\n(mean over query rows, or --by min; see "
           "spatc recall) is at least --target\n(default 0.95).  --param "
           "NAME=LO:HI searches NAME over the powers of 2 in\n[LO, HI] and "
           "the ends; without --param, every parameter >= 1 not named seed\n"
           "nor fixed with -D, over [v/16, 4v] around its value v.  "
           "Coordinate descent\nwith bisection (see spatc(1)), at most "
           "--max-evals settings, each measured\nonce (kernel time: median of "
           "--repeats runs, default 5).  Prints the chosen\n-D values and "
           "every setting measured.  Exit status 1 when none meets the\n"
           "target.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  tune_opts o = {.target = DEFAULT_TARGET, .max_evals = DEFAULT_MAX_EVALS};
  ex_opts_init(&o.ex);
  o.ex.repeats = DEFAULT_REPEATS;
  int given = 0;
  int rc = spatc_parse(&c, &sel, &sh, tune_option, &o);
  given = o.n_par;
  if (rc == SPATC_OK && sh.head >= 0)
    rc = cli_usage_error(&c, "--head is not an option of tune");
  spatc_pat pat;
  spatc_qkv qkv;
  spatc_bound bound;
  spatc_args a;
  ex_ref ref;
  memset(&pat, 0, sizeof pat);
  memset(&qkv, 0, sizeof qkv);
  memset(&bound, 0, sizeof bound);
  memset(&ref, 0, sizeof ref);
  bool have_v = false;
  int64_t start[MAX_TUNED] = {0};
  tuner t = {.o = &o, .pat = &pat, .bound = &bound, .ref = &ref};
  if (rc == SPATC_OK) rc = spatc_load(&pat, &sel);
  if (rc == SPATC_OK) rc = choose_params(&o, &pat, &sel, start);
  if (rc == SPATC_OK) rc = ex_activations(&qkv, &a, &have_v, &sh, &c);
  if (rc == SPATC_OK) rc = spatc_bind(&bound, &pat, &sel, &a);
  if (rc == SPATC_OK) o.ex.top_left = pat.info.top_left; /* the same alignment */
  if (rc == SPATC_OK) rc = ex_ref_make(&ref, &a, have_v, &o.ex);
  if (rc == SPATC_OK) {
    /* a rejected value is a point of the curve: its note says why */
    spat_ctx_set_diagnostic_fn(pat.ctx, NULL, NULL);
    rc = search(&t, start);
  }
  if (rc == SPATC_OK) {
    const point *chosen = best_of(&t, NULL, -1);
    if (chosen && !chosen->meets) chosen = NULL;
    if (o.json) {
      print_json(&t, chosen);
    } else {
      printf("tune %s: %s recall >= %g against %s, %d settings measured; "
             "%s kernel %.3f ms\n",
             pat.info.name, o.by_min ? "min" : "mean", o.target, ref.title,
             t.n_pts, ref.title, ref.ms);
      print_curve(&t, chosen);
      if (chosen) {
        printf("chosen:");
        for (int x = 0; x < o.n_par; x++)
          printf(" -D %s=%" PRId64, o.par[x].name, chosen->v[x]);
        printf("  (%.3f ms, %.2fx faster than %s; recall mean %.4f, min "
               "%.4f)\n",
               chosen->ms, chosen->ms > 0 ? ref.ms / chosen->ms : 0,
               ref.title, chosen->all.mean, chosen->all.min);
      }
    }
    if (!chosen)
      rc = spatc_error("no setting measured keeps %s recall >= %g (the most "
                       "expensive settings of the grid included)",
                       o.by_min ? "min" : "mean", o.target);
  }
  free(t.pts);
  for (int x = 0; x < given; x++) free((char *)o.par[x].name);
  ex_ref_free(&ref);
  spatc_bound_free(&bound);
  spatc_qkv_free(&qkv);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc == SPATC_HELP ? SPATC_OK : rc;
}
