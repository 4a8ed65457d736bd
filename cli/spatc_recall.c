/* spatc_recall.c: `spatc recall FILE`, how much of dense attention a
 * pattern keeps on given activations (explore.h): per query row the share
 * of the dense softmax mass, exp(lse_pattern - lse_dense), from two fused
 * kernel runs; per head its min, median and mean, and with v the relative
 * output error; the density of the mask.  A table, or --json; -o writes
 * the per-row recall as float32 [B, H, Lq]. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"
#include "spatc.h"

typedef struct recall_opts {
  ex_opts ex;
  bool json;
  const char *out;
} recall_opts;

static int recall_option(void *ctx, const cli *c, int id) {
  recall_opts *o = ctx;
  switch (id) {
  case OPT_JSON: o->json = true; return 0;
  case OPT_OUTPUT: o->out = c->arg; return 0;
  default: return ex_option(&o->ex, c, id);
  }
}

static void print_num(double v, const char *fmt) {
  if (v < 0 || !isfinite(v)) printf(" %9s", "-");
  else printf(fmt, v);
}

static void print_row(const char *label, const ex_stat *s) {
  printf("%-6s", label);
  print_num(s->min, " %9.4f");
  print_num(s->median, " %9.4f");
  print_num(s->mean, " %9.4f");
  print_num(s->err, " %9.3e");
  print_num(s->density, " %9.4f");
  putchar('\n');
}

static void print_sizes(const spatc_args *a) {
  printf("B = %" PRId64 ", H = %" PRId64 ", Hkv = %" PRId64 ", Lq = %" PRId64
         ", Lk = %" PRId64 ", D = %" PRId64, a->B, a->H, a->Hkv, a->Lq, a->Lk,
         a->D);
}

static void print_table(const char *title, const ex_ref *r, const ex_eval *e,
                        const char *source) {
  printf("recall of %s against %s: ", title, r->title);
  print_sizes(&r->a);
  printf("; %s\n", source);
  printf("%-6s %9s %9s %9s %9s %9s\n", "head", "min", "median", "mean",
         "out err", "density");
  char label[32];
  for (int64_t h = 0; h < e->H; h++) {
    snprintf(label, sizeof label, "%" PRId64, h);
    print_row(label, &e->head[h]);
  }
  print_row("all", &e->all);
  printf("kernel %.3f ms, %s %.3f ms\n", e->ms, r->title, r->ms);
}

static void print_json(const char *title, const ex_ref *r, const ex_eval *e) {
  const spatc_args *a = &r->a;
  printf("{\"pattern\": ");
  ex_json_str(stdout, title);
  printf(", \"reference\": ");
  ex_json_str(stdout, r->title);
  printf(", ");
  ex_json_sizes(stdout, a);
  printf(", \"reference_ms\": ");
  ex_json_num(stdout, r->ms);
  printf(", ");
  ex_json_eval(stdout, e);
  printf("}\n");
}

int spatc_recall_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME,
                                 OPT_INPUT, OPT_PLUGIN, EX_OPTS, OPT_OUTPUT,
                                 OPT_NONE};
  cli c;
  cli_init(&c, argc, argv,
           "FILE (--q Q.npy --k K.npy [--v V.npy] | [--seed S] --len N) "
           "[options]",
           "How much of dense attention the pattern of FILE keeps: for each "
           "query row,\nexp(lse_pattern - lse_dense), the share of the dense "
           "softmax mass on the\nkeys the pattern allows, from two fused "
           "kernel runs (never an Lq x Lk\nmatrix); per head its min, median "
           "and mean, with --v the relative output\nerror ||o - o_dense|| / "
           "||o_dense||, and the density of the mask.  Without\nfiles, q, k "
           "and v are drawn from a standard normal with --seed S (default\n"
           "1), as `spatc run --seed` draws them.  --reference EXPR replaces "
           "dense\nattention (`full`) by another pattern, e.g. causal.  -o "
           "writes the per-row\nrecall, float32 [B, H, Lq].",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  recall_opts o = {.json = false};
  ex_opts_init(&o.ex);
  int rc = spatc_parse(&c, &sel, &sh, recall_option, &o);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }
  spatc_pat pat;
  spatc_qkv qkv;
  spatc_bound bound;
  spatc_args a;
  ex_ref ref;
  ex_eval ev;
  spat_kernel *k = NULL;
  bool have_v = false;
  memset(&qkv, 0, sizeof qkv);
  memset(&bound, 0, sizeof bound);
  memset(&ref, 0, sizeof ref);
  memset(&ev, 0, sizeof ev);
  rc = spatc_load(&pat, &sel);
  if (!rc) rc = ex_activations(&qkv, &a, &have_v, &sh, &c);
  if (!rc) rc = spatc_bind(&bound, &pat, &sel, &a);
  if (!rc) o.ex.top_left = pat.info.top_left; /* the same alignment */
  if (!rc) rc = ex_ref_make(&ref, &a, have_v, &o.ex);
  if (!rc) rc = ex_compile(pat.p, pat.ctx, &a, &o.ex, &k);
  if (!rc) rc = ex_measure(&ref, k, pat.ctx, bound.args, bound.n_args, &o.ex, &ev);
  if (!rc) {
    const char *title = spatc_pattern_title(&pat, &bound);
    char source[96];
    if (sh.q)
      snprintf(source, sizeof source, "q, k%s from files", have_v ? ", v" : "");
    else
      snprintf(source, sizeof source, "random q, k, v (seed %" PRIu64 ")",
               sh.seeded ? sh.seed : (uint64_t)1);
    if (o.json) print_json(title, &ref, &ev);
    else print_table(title, &ref, &ev, source);
    if (o.out) {
      int64_t shape[3] = {a.B, a.H, a.Lq};
      char err[512];
      if (npy_write(o.out, NPY_F32, 3, shape, ev.recall, err, sizeof err) != 0)
        rc = spatc_lib_error(err);
    }
  }
  ex_eval_free(&ev);
  ex_ref_free(&ref);
  spat_kernel_free(k);
  spatc_bound_free(&bound);
  spatc_qkv_free(&qkv);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
