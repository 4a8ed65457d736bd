/* explore.c: a pattern measured on activations against dense attention
 * (explore.h): compiling, the reference run, timing, recall and output
 * error per head, the exact density.  Prints only errors (to stderr). */
#include "explore.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SEED 1

static int cmp_d(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

double ex_median(double *v, int64_t n) {
  if (n <= 0) return NAN;
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int ex_compile(spat_pattern *p, spat_ctx *ctx, const spatc_args *a,
               const ex_opts *o, spat_kernel **out) {
  spat_compile_options co = {.D = a->D,
                             .layout = (spat_layout)a->layout,
                             .threads = o->threads,
                             .backend = o->backend,
                             .cache = o->cache};
  *out = NULL;
  spat_status st = spat_compile(p, &co, out);
  if (st == SPAT_EUNSUPPORTED && !o->explicit_backend &&
      co.backend != SPAT_BACKEND_INTERP) {
    fprintf(stderr, "spatc: note: %s; using interp\n", spat_ctx_error(ctx));
    co.backend = SPAT_BACKEND_INTERP;
    st = spat_compile(p, &co, out);
  }
  return st == SPAT_OK ? 0 : spatc_api_error(ctx, st);
}

/* One run of k writing o (q's layout) and lse, then `repeats` timed ones;
 * *ms: their median (the first run's time when repeats is 0). */
static int run_timed(spat_kernel *k, spat_ctx *ctx, const spatc_args *a,
                     const spat_value *args, size_t n, float scale, float *o,
                     float *lse, int repeats, double *ms) {
  spat_tensors t = spatc_tensors(a);
  t.o = o;
  t.lse = lse;
  t.scale = scale;
  double *tk = malloc(sizeof *tk * (size_t)(repeats + 1));
  if (!tk) return spatc_error("out of memory");
  int rc = 0;
  for (int r = -1; r < repeats && !rc; r++) {
    double t0 = spatc_now_ms();
    spat_status st = spat_kernel_call(k, &t, args, n);
    tk[r < 0 ? repeats : r] = spatc_now_ms() - t0;
    if (st != SPAT_OK) rc = spatc_api_error(ctx, st);
  }
  *ms = repeats > 0 ? ex_median(tk, repeats) : tk[0];
  free(tk);
  return rc;
}

int ex_activations(spatc_qkv *t, spatc_args *a, bool *have_v,
                   const spatc_shape *s, const cli *c) {
  bool files = s->q || s->k || s->v;
  spatc_shape u = *s;
  if (!files && !u.seeded) {
    u.seeded = true;
    u.seed = DEFAULT_SEED;
  }
  *have_v = !files || s->v;
  int rc = spatc_qkv_setup(t, a, &u, c, *have_v ? QKV_QKV : QKV_QK);
  if (rc) return rc;
  if (!*have_v) a->v = a->k; /* read by the kernels, never reported */
  return 0;
}

static void print_diags(void *user, const char *text) {
  (void)user;
  fputs(text, stderr);
}

int ex_ref_make(ex_ref *r, const spatc_args *a, bool have_v,
                const ex_opts *o) {
  memset(r, 0, sizeof *r);
  r->ctx = spat_ctx_new();
  if (!r->ctx) return spatc_error("out of memory");
  spat_ctx_set_diagnostic_fn(r->ctx, print_diags, NULL);
  spat_ctx *ctx = r->ctx;
  r->a = *a;
  r->have_v = have_v;
  const char *expr = o->reference ? o->reference : "full";
  size_t len = strlen(expr) + 64;
  char *text = malloc(len);
  r->title = strdup(expr);
  if (!text || !r->title) {
    free(text);
    return spatc_error("out of memory");
  }
  snprintf(text, len, "pattern reference%s = %s;\n",
           o->top_left ? " aligned(top_left)" : "", expr);
  spat_pattern *p = NULL;
  spat_status st = spat_pattern_parse_string(ctx, "<reference>", text, NULL, &p);
  free(text);
  if (st != SPAT_OK) return spatc_api_error(ctx, st);
  spat_pattern_info info;
  st = spat_pattern_describe(p, &info);
  if (st == SPAT_OK && info.n_args > 0) {
    spat_pattern_free(p);
    return spatc_error("--reference %s: takes run-time arguments; the "
                       "reference needs none", expr);
  }
  if (st != SPAT_OK) {
    spat_pattern_free(p);
    return spatc_api_error(ctx, st);
  }
  spat_kernel *k = NULL;
  int rc = ex_compile(p, ctx, a, o, &k);
  spat_pattern_free(p);
  if (rc) return rc;
  int64_t n_o = a->B * a->H * a->Lq * a->D, n_l = a->B * a->H * a->Lq;
  r->o.data = spatc_xmalloc((size_t)n_o * sizeof(float));
  r->lse = spatc_xmalloc((size_t)n_l * sizeof(float));
  spatc_strides(&r->o, a->layout, a->H, a->Lq, a->D);
  if (!r->o.data || !r->lse) rc = SPATC_EUSER;
  if (!rc)
    rc = run_timed(k, ctx, a, NULL, 0, o->scale, r->o.data, r->lse, o->repeats,
                   &r->ms);
  spat_kernel_free(k);
  return rc;
}

void ex_ref_free(ex_ref *r) {
  free(r->o.data);
  free(r->lse);
  free(r->title);
  spat_ctx_free(r->ctx);
  memset(r, 0, sizeof *r);
}

/* ---- counting the mask ---- */

typedef struct count_job {
  const spat_kernel *k;
  const spatc_args *a;
  const spat_value *args;
  size_t n_args;
  int64_t chunk, per_bh;
  atomic_llong *nnz;         /* per head */
} count_job;

static spat_status count_chunk(const count_job *j, long long c, int64_t *buf,
                               int64_t *sum) {
  const spatc_args *a = j->a;
  int64_t bh = c / j->per_bh, r0 = c % j->per_bh * j->chunk;
  int64_t n = a->Lq - r0 < j->chunk ? a->Lq - r0 : j->chunk;
  spat_tensors t = spatc_tensors(a);
  spat_status st = spat_kernel_mask_count(j->k, &t, j->args, j->n_args,
                                          bh / a->H, bh % a->H, r0, n, buf);
  *sum = 0;
  for (int64_t x = 0; x < n && st == SPAT_OK; x++) *sum += buf[x];
  return st;
}

static bool count_one(void *ctx, long long c, void *buf) {
  count_job *j = ctx;
  int64_t sum;
  if (count_chunk(j, c, buf, &sum) != SPAT_OK) return false;
  atomic_fetch_add(&j->nnz[(c / j->per_bh) % j->a->H], sum);
  return true;
}

/* Allowed pairs per head (summed over the batch) into nnz[H]. */
static int count_mask(const spat_kernel *k, spat_ctx *ctx, const spatc_args *a,
                      const spat_value *args, size_t n, int threads,
                      int64_t *nnz) {
  count_job j = {.k = k, .a = a, .args = args, .n_args = n};
  j.chunk = 64;
  j.per_bh = (a->Lq + j.chunk - 1) / j.chunk;
  long long n_chunks = j.per_bh * a->B * a->H;
  j.nnz = calloc((size_t)a->H, sizeof *j.nnz);
  if (!j.nnz) return spatc_error("out of memory");
  for (int64_t h = 0; h < a->H; h++) atomic_init(&j.nnz[h], 0);
  if (threads > 64) threads = 64;
  long long bad = spatc_chunks(n_chunks, threads,
                               sizeof(int64_t) * (size_t)j.chunk, count_one, &j);
  int rc = 0;
  if (bad < n_chunks) {
    /* again alone, for this chunk's own message */
    int64_t *buf = spatc_xmalloc(sizeof *buf * (size_t)j.chunk), sum;
    spat_status st = buf ? count_chunk(&j, bad, buf, &sum) : SPAT_ENOMEM;
    free(buf);
    rc = st == SPAT_OK ? spatc_error("out of memory") : spatc_api_error(ctx, st);
  }
  for (int64_t h = 0; h < a->H; h++) nnz[h] = atomic_load(&j.nnz[h]);
  free(j.nnz);
  return rc;
}

/* ---- comparing ---- */

static void row_stats(const double *v, int64_t n, double *tmp, ex_stat *s) {
  double sum = 0, mn = INFINITY;
  for (int64_t x = 0; x < n; x++) {
    sum += v[x];
    mn = v[x] < mn ? v[x] : mn;
    tmp[x] = v[x];
  }
  s->min = n ? mn : NAN;
  s->mean = n ? sum / (double)n : NAN;
  s->median = ex_median(tmp, n);
}

static double rel_err(double diff2, double ref2) {
  if (ref2 > 0) return sqrt(diff2 / ref2);
  return diff2 > 0 ? INFINITY : 0.0;
}

/* Recall and output error per head from o, lse against the reference. */
static int compare(const ex_ref *r, const spatc_tensor *o, const float *lse,
                   ex_eval *e) {
  const spatc_args *a = &r->a;
  int64_t rows = a->B * a->Lq;
  double *v = malloc(sizeof *v * (size_t)(rows + 1));
  double *tmp = malloc(sizeof *tmp * (size_t)(rows + 1));
  if (!v || !tmp) {
    free(v), free(tmp);
    return spatc_error("out of memory");
  }
  double d2_all = 0, r2_all = 0;
  for (int64_t h = 0; h < a->H; h++) {
    double d2 = 0, r2 = 0;
    for (int64_t b = 0; b < a->B; b++)
      for (int64_t q = 0; q < a->Lq; q++) {
        int64_t at = (b * a->H + h) * a->Lq + q;
        double lp = lse[at], lr = r->lse[at];
        double x = isinf(lr) && lr < 0 ? 1.0 : exp(lp - lr);
        if (x > 1) x = 1;
        if (!(x >= 0)) x = 0; /* lp = -inf - (-inf) cannot occur here */
        v[b * a->Lq + q] = x;
        e->recall[at] = (float)x;
        if (!r->have_v) continue;
        const float *po = o->data + b * o->sb + h * o->sh + q * o->sl;
        const float *pr = r->o.data + b * r->o.sb + h * r->o.sh + q * r->o.sl;
        for (int64_t d = 0; d < a->D; d++) {
          double dd = (double)po[d] - (double)pr[d];
          d2 += dd * dd;
          r2 += (double)pr[d] * (double)pr[d];
        }
      }
    row_stats(v, rows, tmp, &e->head[h]);
    e->head[h].err = r->have_v ? rel_err(d2, r2) : -1;
    d2_all += d2, r2_all += r2;
  }
  free(v), free(tmp);
  e->all.err = r->have_v ? rel_err(d2_all, r2_all) : -1;
  return 0;
}

/* The summary over every row of every head. */
static int all_rows(const ex_ref *r, ex_eval *e) {
  const spatc_args *a = &r->a;
  int64_t n = a->B * a->H * a->Lq;
  double *v = malloc(sizeof *v * (size_t)(n + 1));
  double *tmp = malloc(sizeof *tmp * (size_t)(n + 1));
  bool ok = v && tmp;
  if (ok) {
    for (int64_t x = 0; x < n; x++) v[x] = e->recall[x];
    double err = e->all.err, dens = e->all.density;
    row_stats(v, n, tmp, &e->all);
    e->all.err = err, e->all.density = dens;
  }
  free(v), free(tmp);
  return ok ? 0 : spatc_error("out of memory");
}

int ex_measure(const ex_ref *r, spat_kernel *k, spat_ctx *ctx,
               const spat_value *args, size_t n, const ex_opts *o,
               ex_eval *e) {
  const spatc_args *a = &r->a;
  memset(e, 0, sizeof *e);
  e->H = a->H;
  int64_t n_o = a->B * a->H * a->Lq * a->D, n_l = a->B * a->H * a->Lq;
  spatc_tensor out = {0};
  out.data = spatc_xmalloc((size_t)n_o * sizeof(float));
  spatc_strides(&out, a->layout, a->H, a->Lq, a->D);
  float *lse = spatc_xmalloc((size_t)n_l * sizeof(float));
  e->recall = spatc_xmalloc((size_t)n_l * sizeof(float));
  e->head = calloc((size_t)a->H, sizeof *e->head);
  int64_t *nnz = calloc((size_t)a->H, sizeof *nnz);
  int rc = out.data && lse && e->recall && e->head && nnz
               ? 0
               : spatc_error("out of memory");
  if (!rc)
    rc = run_timed(k, ctx, a, args, n, o->scale, out.data, lse, o->repeats,
                   &e->ms);
  if (!rc) rc = compare(r, &out, lse, e);
  if (!rc) {
    e->all.density = -1;
    for (int64_t h = 0; h < a->H; h++) e->head[h].density = -1;
  }
  if (!rc && o->count) rc = count_mask(k, ctx, a, args, n, o->threads, nnz);
  if (!rc && o->count) {
    double cells = (double)a->B * (double)a->Lq * (double)a->Lk, tot = 0;
    for (int64_t h = 0; h < a->H; h++) {
      e->head[h].density = cells > 0 ? (double)nnz[h] / cells : 0;
      tot += (double)nnz[h];
    }
    e->all.density = cells > 0 ? tot / (cells * (double)a->H) : 0;
  }
  if (!rc) rc = all_rows(r, e);
  free(out.data);
  free(lse);
  free(nnz);
  return rc;
}

void ex_eval_free(ex_eval *e) {
  free(e->head);
  free(e->recall);
  memset(e, 0, sizeof *e);
}

/* ---- options ---- */

void ex_opts_init(ex_opts *o) {
  memset(o, 0, sizeof *o);
  o->cache = true;
  o->count = true;
  o->backend = SPAT_BACKEND_JIT;
}

int ex_option(ex_opts *o, const cli *c, int id) {
  int64_t v;
  double x;
  switch (id) {
  case OPT_THREADS:
    if (!cli_int(c, 0, 4096, &v)) return SPATC_EUSAGE;
    o->threads = (int)v;
    return 0;
  case OPT_REPEATS:
    if (!cli_int(c, 0, 1 << 16, &v)) return SPATC_EUSAGE;
    o->repeats = (int)v;
    return 0;
  case OPT_NO_CACHE: o->cache = false; return 0;
  case OPT_REFERENCE: o->reference = c->arg; return 0;
  case OPT_BACKEND:
    if (strcmp(c->arg, "jit") == 0) o->backend = SPAT_BACKEND_JIT;
    else if (strcmp(c->arg, "interp") == 0) o->backend = SPAT_BACKEND_INTERP;
    else
      return cli_usage_error(c, "unknown backend '%s' (expected jit or interp)",
                             c->arg);
    o->explicit_backend = true;
    return 0;
  case OPT_SCALE:
    if (!cli_float(c, &x)) return SPATC_EUSAGE;
    if ((float)x == 0 || !isfinite((float)x))
      return cli_usage_error(c, "--scale must be a nonzero float32");
    o->scale = (float)x;
    return 0;
  default: return -1;
  }
}

/* ---- JSON ---- */

void ex_json_num(FILE *f, double v) {
  if (!isfinite(v)) fputs("null", f);
  else fprintf(f, "%.9g", v);
}

void ex_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

void ex_json_stat(FILE *f, const ex_stat *s) {
  fputs("{\"min\": ", f);
  ex_json_num(f, s->min);
  fputs(", \"median\": ", f);
  ex_json_num(f, s->median);
  fputs(", \"mean\": ", f);
  ex_json_num(f, s->mean);
  fputs(", \"error\": ", f);
  ex_json_num(f, s->err < 0 ? NAN : s->err);
  fputs(", \"density\": ", f);
  ex_json_num(f, s->density < 0 ? NAN : s->density);
  fputc('}', f);
}

void ex_json_sizes(FILE *f, const spatc_args *a) {
  fprintf(f, "\"B\": %" PRId64 ", \"H\": %" PRId64 ", \"Hkv\": %" PRId64
          ", \"Lq\": %" PRId64 ", \"Lk\": %" PRId64 ", \"D\": %" PRId64,
          a->B, a->H, a->Hkv, a->Lq, a->Lk, a->D);
}

void ex_json_eval(FILE *f, const ex_eval *e) {
  fputs("\"kernel_ms\": ", f);
  ex_json_num(f, e->ms);
  fputs(", \"recall\": ", f);
  ex_json_stat(f, &e->all);
  fputs(", \"heads\": [", f);
  for (int64_t h = 0; h < e->H; h++) {
    if (h) fputs(", ", f);
    ex_json_stat(f, &e->head[h]);
  }
  fputc(']', f);
}
