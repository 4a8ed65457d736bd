/* spatc_compare.c: `spatc compare SPEC...`, several patterns side by side
 * on the same activations (explore.h): density, recall (min, median,
 * mean), output error against dense attention, and kernel time (median of
 * --repeats runs), with the dense reference as the last line.
 *
 * A SPEC is FILE[:PATTERN][,NAME=INT...]: a .pat file, optionally one of
 * its patterns, optionally compile-time parameters (as -D), so that one
 * pattern can be compared with itself at other settings:
 *     spatc compare longformer.pat,w=256 longformer.pat,w=1024 bigbird.pat
 * --runtime and --input values go to every pattern that has that name. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "explore.h"
#include "spatc.h"

#define DEFAULT_REPEATS 5

typedef struct cmp_opts {
  ex_opts ex;
  bool json;
  int n_specs;
  const char **specs;
} cmp_opts;

/* One pattern compared: its selection, loaded pattern, arguments, result. */
typedef struct entry {
  const char *spec;
  spatc_sel sel;
  spatc_pat pat;
  spatc_bound bound;
  ex_eval ev;
  bool done;
} entry;

/* FILE[:PATTERN][,NAME=INT...] into e->sel (strings kept in e->sel). */
static int parse_spec(entry *e, const char *spec, const cli *c) {
  sel_init(&e->sel);
  e->spec = spec;
  const char *comma = strchr(spec, ',');
  size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
  char *file = strndup(spec, n);
  if (!file) return spatc_error("out of memory");
  /* keep the copy with the selection's strings */
  cli fake = *c;
  struct stat st;
  char *colon = strrchr(file, ':');
  if (colon && stat(file, &st) != 0 && colon[1] && !strchr(colon, '/')) {
    *colon = '\0';
    e->sel.pattern = colon + 1;
  }
  e->sel.file = file;
  if (e->sel.n_strs == e->sel.cap_strs) {
    e->sel.strs = malloc(sizeof *e->sel.strs * 8);
    if (!e->sel.strs) return free(file), spatc_error("out of memory");
    e->sel.cap_strs = 8;
  }
  e->sel.strs[e->sel.n_strs++] = file;
  while (comma) {
    const char *next = strchr(comma + 1, ',');
    size_t m = next ? (size_t)(next - comma - 1) : strlen(comma + 1);
    char *def = strndup(comma + 1, m);
    if (!def) return spatc_error("out of memory");
    fake.arg = def;
    fake.spelled = "-D";
    int took = sel_option(&e->sel, &fake, OPT_DEFINE);
    free(def);
    if (took < 0) return SPATC_EUSAGE;
    comma = next;
  }
  return 0;
}

static bool has_arg(const spat_pattern_info *info, const char *name) {
  for (size_t x = 0; x < info->n_args; x++)
    if (strcmp(info->args[x].name, name) == 0) return true;
  return false;
}

/* The command line's --runtime and --input values this pattern has. */
static int take_args(entry *e, const spatc_sel *all) {
  const kv_list *from[2] = {&all->runtime, &all->inputs};
  kv_list *to[2] = {&e->sel.runtime, &e->sel.inputs};
  for (int w = 0; w < 2; w++) {
    int n = from[w]->n;
    to[w]->name = malloc(sizeof *to[w]->name * (size_t)(n + 1));
    to[w]->value = malloc(sizeof *to[w]->value * (size_t)(n + 1));
    if (!to[w]->name || !to[w]->value) return spatc_error("out of memory");
    to[w]->cap = n + 1;
    for (int x = 0; x < n; x++)
      if (has_arg(&e->pat.info, from[w]->name[x])) {
        to[w]->name[to[w]->n] = from[w]->name[x];
        to[w]->value[to[w]->n++] = from[w]->value[x];
      }
  }
  e->sel.plugin = all->plugin;
  return 0;
}

static int cmp_option(void *ctx, const cli *c, int id) {
  cmp_opts *o = ctx;
  switch (id) {
  case OPT_JSON: o->json = true; return 0;
  default: return ex_option(&o->ex, c, id);
  }
}

/* The command line: SPECs, the activations, the options. */
static int parse(cli *c, cmp_opts *o, spatc_sel *all, spatc_shape *sh) {
  for (int id; (id = cli_next(c)) != CLI_END;) {
    if (id == CLI_ERR) return SPATC_EUSAGE;
    int took = sel_option(all, c, id);
    if (!took) took = shape_option(sh, c, id);
    if (took < 0) return SPATC_EUSAGE;
    if (took) continue;
    if (id == OPT_HELP) {
      cli_help(c, stdout);
      return SPATC_HELP;
    }
    if (id == CLI_POS) {
      o->specs[o->n_specs++] = c->arg;
      continue;
    }
    int rc = cmp_option(o, c, id);
    if (rc < 0) return cli_usage_error(c, "unexpected option '%s'", c->spelled);
    if (rc) return rc;
  }
  if (o->n_specs == 0) return cli_usage_error(c, "no pattern to compare");
  if (sh->head >= 0) return cli_usage_error(c, "--head is not an option of compare");
  return SPATC_OK;
}

static void print_cell(double v, const char *fmt) {
  if (v < 0 || !isfinite(v)) printf(" %9s", "-");
  else printf(fmt, v);
}

static void print_line(const char *name, int w, const ex_stat *s, double ms,
                       double ref_ms) {
  printf("%-*s", w, name);
  print_cell(s->density, " %9.4f");
  print_cell(s->min, " %9.4f");
  print_cell(s->median, " %9.4f");
  print_cell(s->mean, " %9.4f");
  print_cell(s->err, " %9.3e");
  print_cell(ms, " %9.3f");
  print_cell(ms > 0 ? ref_ms / ms : -1, " %8.2fx");
  putchar('\n');
}

static void print_table(entry *es, int n, const ex_ref *r, const char *src) {
  const spatc_args *a = &r->a;
  printf("compare on B = %" PRId64 ", H = %" PRId64 ", Hkv = %" PRId64
         ", Lq = %" PRId64 ", Lk = %" PRId64 ", D = %" PRId64 "; %s\n",
         a->B, a->H, a->Hkv, a->Lq, a->Lk, a->D, src);
  int w = 28;
  for (int x = 0; x < n; x++) {
    int l = (int)strlen(spatc_pattern_title(&es[x].pat, &es[x].bound));
    if (l + 1 > w) w = l + 1;
  }
  printf("%-*s %9s %9s %9s %9s %9s %9s %9s\n", w, "pattern", "density",
         "rec min", "median", "mean", "out err", "ms", "speedup");
  for (int x = 0; x < n; x++)
    print_line(spatc_pattern_title(&es[x].pat, &es[x].bound), w, &es[x].ev.all,
               es[x].ev.ms, r->ms);
  ex_stat dense = {1, 1, 1, r->have_v ? 0 : -1, 1};
  char name[256];
  snprintf(name, sizeof name, "%s (reference)", r->title);
  print_line(name, w, &dense, r->ms, r->ms);
}

static void print_json(entry *es, int n, const ex_ref *r) {
  const spatc_args *a = &r->a;
  putchar('{');
  ex_json_sizes(stdout, a);
  printf(", \"reference\": ");
  ex_json_str(stdout, r->title);
  printf(", \"reference_ms\": ");
  ex_json_num(stdout, r->ms);
  printf(", \"patterns\": [");
  for (int x = 0; x < n; x++) {
    printf("%s{\"spec\": ", x ? ", " : "");
    ex_json_str(stdout, es[x].spec);
    printf(", \"pattern\": ");
    ex_json_str(stdout, spatc_pattern_title(&es[x].pat, &es[x].bound));
    printf(", ");
    ex_json_eval(stdout, &es[x].ev);
    printf("}");
  }
  printf("]}\n");
}

/* Loads and binds one entry; 0 or 1 after printing. */
static int prepare(entry *e, const spatc_sel *all, const spatc_args *a) {
  int rc = spatc_load(&e->pat, &e->sel);
  if (!rc) rc = take_args(e, all);
  if (!rc) rc = spatc_bind(&e->bound, &e->pat, &e->sel, a);
  if (rc) fprintf(stderr, "spatc: compare: %s failed\n", e->spec);
  return rc;
}

/* Compiles and measures one entry; 0 or 1 after printing. */
static int measure(entry *e, const ex_ref *r, const ex_opts *o) {
  spat_kernel *k = NULL;
  int rc = ex_compile(e->pat.p, e->pat.ctx, &r->a, o, &k);
  if (!rc)
    rc = ex_measure(r, k, e->pat.ctx, e->bound.args, e->bound.n_args, o, &e->ev);
  spat_kernel_free(k);
  e->done = rc == 0;
  if (rc) fprintf(stderr, "spatc: compare: %s failed\n", e->spec);
  return rc;
}

/* One reference for all: with another than `full` (whose alignment does
 * not matter), the patterns must share their alignment. */
static int alignment(const entry *es, int n, ex_opts *o) {
  o->top_left = es[0].pat.info.top_left;
  bool full = !o->reference || strcmp(o->reference, "full") == 0;
  for (int x = 1; x < n && !full; x++)
    if (es[x].pat.info.top_left != o->top_left)
      return spatc_error("%s and %s have different alignments: compare them "
                         "against --reference %s separately", es[0].spec,
                         es[x].spec, o->reference);
  return 0;
}

int spatc_compare_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, EX_OPTS,
                                 OPT_NONE};
  cli c;
  cli_init(&c, argc, argv,
           "SPEC... (--q Q.npy --k K.npy [--v V.npy] | [--seed S] --len N) "
           "[options]",
           "Several patterns side by side on the same activations: density "
           "(allowed pairs\nover B H Lq Lk), recall against dense attention "
           "(min, median and mean over\nquery rows of exp(lse - lse_dense), "
           "as spatc recall), output error, kernel\ntime (median of "
           "--repeats runs, default 5) and speed-up over the dense\n"
           "reference, which is the last line.  A SPEC is "
           "FILE[:PATTERN][,NAME=INT...],\ne.g. longformer.pat,w=256.  "
           "--runtime and --input values go to every\npattern that has the "
           "name.",
           ok);
  cmp_opts o = {.json = false};
  ex_opts_init(&o.ex);
  o.ex.repeats = DEFAULT_REPEATS;
  o.specs = calloc((size_t)argc + 1, sizeof *o.specs);
  spatc_sel all;
  spatc_shape sh;
  sel_init(&all);
  shape_init(&sh);
  int rc = o.specs ? parse(&c, &o, &all, &sh) : spatc_error("out of memory");
  entry *es = rc == SPATC_OK ? calloc((size_t)o.n_specs, sizeof *es) : NULL;
  if (rc == SPATC_OK && !es) rc = spatc_error("out of memory");
  for (int x = 0; rc == SPATC_OK && x < o.n_specs; x++)
    rc = parse_spec(&es[x], o.specs[x], &c);
  spatc_qkv qkv;
  spatc_args a;
  ex_ref ref;
  memset(&qkv, 0, sizeof qkv);
  memset(&ref, 0, sizeof ref);
  bool have_v = false;
  if (rc == SPATC_OK) rc = ex_activations(&qkv, &a, &have_v, &sh, &c);
  for (int x = 0; rc == SPATC_OK && x < o.n_specs; x++)
    rc = prepare(&es[x], &all, &a);
  if (rc == SPATC_OK) rc = alignment(es, o.n_specs, &o.ex);
  if (rc == SPATC_OK) rc = ex_ref_make(&ref, &a, have_v, &o.ex);
  for (int x = 0; rc == SPATC_OK && x < o.n_specs; x++)
    rc = measure(&es[x], &ref, &o.ex);
  if (rc == SPATC_OK) {
    char src[96];
    if (sh.q)
      snprintf(src, sizeof src, "q, k%s from files", have_v ? ", v" : "");
    else
      snprintf(src, sizeof src, "random q, k, v (seed %" PRIu64 ")",
               sh.seeded ? sh.seed : (uint64_t)1);
    if (o.json) print_json(es, o.n_specs, &ref);
    else print_table(es, o.n_specs, &ref, src);
  }
  for (int x = 0; es && x < o.n_specs; x++) {
    ex_eval_free(&es[x].ev);
    spatc_bound_free(&es[x].bound);
    spatc_pat_free(&es[x].pat);
    sel_free(&es[x].sel);
  }
  free(es);
  ex_ref_free(&ref);
  spatc_qkv_free(&qkv);
  sel_free(&all);
  free(o.specs);
  return rc == SPATC_HELP ? SPATC_OK : rc;
}
