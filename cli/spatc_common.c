/* spatc_common.c: option parsing (selection and sizes), pattern loading and
 * argument binding for the spatc subcommands (spatc_common.h), through the
 * public API; tensors and mask rows are in spatc_tensors.c.  Everything
 * here may print to stderr; nothing exits. */
#include "spatc_common.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct opt_info {
  const char *lng;
  char shrt;
  const char *meta;
  const char *help;
} opt_info;

static const opt_info opts[OPT_N] = {
    [OPT_NONE] = {"", 0, NULL, NULL},
#define X(id, l, s, m, h) [OPT_##id] = {l, s, m, h},
    SPATC_OPTS(X)
#undef X
};

/* ---- errors ---- */

static void verror(const char *fmt, va_list ap) {
  fputs("spatc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int spatc_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(fmt, ap);
  va_end(ap);
  return SPATC_EUSER;
}

int spatc_lib_error(const char *msg) {
  if (!msg || !*msg) msg = "unknown error";
  if (strstr(msg, ": error: ")) {
    fputs(msg, stderr);
    if (msg[strlen(msg) - 1] != '\n') fputc('\n', stderr);
  } else {
    spatc_error("%s", msg);
  }
  return SPATC_EUSER;
}

int spatc_api_error(const spat_ctx *ctx, spat_status st) {
  if (st == SPAT_EPARSE && *spat_ctx_last_diagnostics(ctx)) return SPATC_EUSER;
  return spatc_lib_error(spat_ctx_error(ctx));
}

void *spatc_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) spatc_error("out of memory (%zu bytes)", n);
  return p;
}

double spatc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int spatc_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* ---- the command line ---- */

void cli_init(cli *c, int argc, char **argv, const char *synopsis,
              const char *about, const spatc_opt *ok) {
  memset(c, 0, sizeof *c);
  c->argc = argc;
  c->argv = argv;
  c->k = 1;
  c->cmd = argc > 0 ? argv[0] : "?";
  c->synopsis = synopsis;
  c->about = about;
  c->ok = ok;
}

static bool accepts(const cli *c, int id) {
  if (id == OPT_HELP) return true;
  for (const spatc_opt *o = c->ok; *o != OPT_NONE; o++)
    if ((int)*o == id) return true;
  return false;
}

void cli_help(const cli *c, FILE *f) {
  fprintf(f, "usage: spatc %s %s\n\n%s\n\noptions:\n", c->cmd, c->synopsis,
          c->about);
  for (int id = 1; id < OPT_N; id++) {
    if (!accepts(c, id)) continue;
    const opt_info *o = &opts[id];
    char left[64];
    int n = 0;
    if (o->shrt)
      n = snprintf(left, sizeof left, "-%c, --%s", o->shrt, o->lng);
    else
      n = snprintf(left, sizeof left, "    --%s", o->lng);
    if (o->meta && n > 0 && (size_t)n < sizeof left)
      snprintf(left + n, sizeof left - (size_t)n, " %s", o->meta);
    fprintf(f, "  %-28s %s\n", left, o->help);
  }
}

int cli_usage_error(const cli *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(fmt, ap);
  va_end(ap);
  fprintf(stderr, "usage: spatc %s %s\n", c->cmd, c->synopsis);
  fprintf(stderr, "Try 'spatc %s --help' for more information.\n", c->cmd);
  return SPATC_EUSAGE;
}

/* The option of that spelling the command takes, else the first one. */
static int find_long(const cli *c, const char *name, size_t n) {
  int first = -1;
  for (int id = 1; id < OPT_N; id++)
    if (strlen(opts[id].lng) == n && strncmp(opts[id].lng, name, n) == 0) {
      if (accepts(c, id)) return id;
      if (first < 0) first = id;
    }
  return first;
}

static int find_short(char ch) {
  for (int id = 1; id < OPT_N; id++)
    if (opts[id].shrt == ch) return id;
  return -1;
}

int cli_next(cli *c) {
  if (c->k >= c->argc) return CLI_END;
  char *a = c->argv[c->k++];
  c->spelled = a;
  c->arg = NULL;
  if (c->no_more_opts || a[0] != '-' || a[1] == '\0') {
    c->arg = a;
    return CLI_POS;
  }
  if (strcmp(a, "--") == 0) {
    c->no_more_opts = true;
    return cli_next(c);
  }
  int id;
  const char *inline_arg = NULL;
  char *spelled = c->spelled_buf;
  if (a[1] == '-') {
    const char *eq = strchr(a + 2, '=');
    size_t n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
    id = find_long(c, a + 2, n);
    if (eq) inline_arg = eq + 1;
    snprintf(spelled, sizeof c->spelled_buf, "--%.*s", (int)(n < 60 ? n : 60), a + 2);
  } else {
    id = find_short(a[1]);
    if (a[2]) inline_arg = a + 2;
    snprintf(spelled, sizeof c->spelled_buf, "-%c", a[1]);
  }
  c->spelled = spelled;
  if (id < 0 || !accepts(c, id)) {
    cli_usage_error(c, "unknown option '%s'", a);
    return CLI_ERR;
  }
  if (!opts[id].meta) {
    if (inline_arg) {
      if (a[1] == '-') {
        cli_usage_error(c, "option '%s' takes no argument", spelled);
        return CLI_ERR;
      }
      cli_usage_error(c, "unknown option '%s'", a);
      return CLI_ERR;
    }
    return id;
  }
  if (inline_arg) {
    c->arg = inline_arg;
  } else if (c->k < c->argc) {
    c->arg = c->argv[c->k++];
  } else {
    cli_usage_error(c, "option '%s' requires an argument (%s)", spelled,
                    opts[id].meta);
    return CLI_ERR;
  }
  return id;
}

static bool parse_i64(const char *s, int64_t *out) {
  char buf[64];
  size_t n = 0;
  for (const char *p = s; *p; p++) {
    if (*p == '_') continue;
    if (n + 1 >= sizeof buf) return false;
    buf[n++] = *p;
  }
  buf[n] = '\0';
  if (n == 0 || s[0] == '_') return false;
  errno = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (errno || *end || end == buf) return false;
  *out = v;
  return true;
}

bool cli_int(const cli *c, int64_t lo, int64_t hi, int64_t *out) {
  int64_t v;
  if (!parse_i64(c->arg, &v) || v < lo || v > hi) {
    cli_usage_error(c, "%s: expected an integer in [%" PRId64 ", %" PRId64
                       "], got '%s'", c->spelled, lo, hi, c->arg);
    return false;
  }
  *out = v;
  return true;
}

bool cli_float(const cli *c, double *out) {
  char *end;
  errno = 0;
  double v = strtod(c->arg, &end);
  if (errno || *end || end == c->arg || !isfinite(v)) {
    cli_usage_error(c, "%s: expected a number, got '%s'", c->spelled, c->arg);
    return false;
  }
  *out = v;
  return true;
}

/* ---- selection ---- */

void sel_init(spatc_sel *s) {
  memset(s, 0, sizeof *s);
}

void sel_free(spatc_sel *s) {
  free(s->defs);
  free(s->runtime.name);
  free(s->runtime.value);
  free(s->inputs.name);
  free(s->inputs.value);
  for (int k = 0; k < s->n_strs; k++) free(s->strs[k]);
  free(s->strs);
  memset(s, 0, sizeof *s);
}

/* The first n bytes of str as a string kept until sel_free; NULL when out
 * of memory. */
static char *sel_strndup(spatc_sel *s, const char *str, size_t n) {
  if (s->n_strs == s->cap_strs) {
    int cap = s->cap_strs ? 2 * s->cap_strs : 8;
    char **ns = realloc(s->strs, sizeof *ns * (size_t)cap);
    if (!ns) return NULL;
    s->strs = ns;
    s->cap_strs = cap;
  }
  char *copy = strndup(str, n);
  if (copy) s->strs[s->n_strs++] = copy;
  return copy;
}

static bool kv_push(kv_list *l, const char *name, const char *value) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    const char **nn = realloc(l->name, sizeof *nn * (size_t)cap);
    if (!nn) return false;
    l->name = nn;
    const char **vv = realloc(l->value, sizeof *vv * (size_t)cap);
    if (!vv) return false;
    l->value = vv;
    l->cap = cap;
  }
  l->name[l->n] = name;
  l->value[l->n] = value;
  l->n++;
  return true;
}

/* "NAME=REST" with a non-empty identifier NAME. */
static bool split_kv(spatc_sel *sel, const char *s, const char **name,
                     const char **rest) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) return false;
  for (const char *p = s; p < eq; p++)
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (p > s && *p >= '0' && *p <= '9')))
      return false;
  *name = sel_strndup(sel, s, (size_t)(eq - s));
  *rest = eq + 1;
  return *name != NULL;
}

/* -D's value: an integer literal as in .pat text (digits with single '_'
 * between them, an optional sign), within int64. */
static bool parse_define_value(const char *v, int64_t *out) {
  bool neg = false;
  if (*v == '+' || *v == '-') neg = *v++ == '-';
  if (!*v || *v == '_') return false;
  uint64_t x = 0;
  bool prev_us = false;
  for (; *v; v++) {
    if (*v == '_') {
      if (prev_us) return false;
      prev_us = true;
      continue;
    }
    if (*v < '0' || *v > '9') return false;
    prev_us = false;
    uint64_t dgt = (uint64_t)(*v - '0');
    if (x > (UINT64_MAX - dgt) / 10) return false;
    x = x * 10 + dgt;
    if (x > (uint64_t)INT64_MAX + 1) return false;
  }
  if (prev_us || (!neg && x > (uint64_t)INT64_MAX)) return false;
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return true;
}

int sel_option(spatc_sel *s, const cli *c, int id) {
  const char *name, *rest;
  switch (id) {
  case OPT_PATTERN:
    s->pattern = c->arg;
    return 1;
  case OPT_DEFINE: {
    spat_param d;
    if (!split_kv(s, c->arg, &d.name, &rest) ||
        !parse_define_value(rest, &d.value)) {
      cli_usage_error(c, "-D '%s': expected NAME=INTEGER", c->arg);
      return -1;
    }
    if (s->n_defs == s->cap_defs) {
      int cap = s->cap_defs ? 2 * s->cap_defs : 8;
      spat_param *nd = realloc(s->defs, sizeof *nd * (size_t)cap);
      if (!nd) {
        spatc_error("out of memory");
        return -1;
      }
      s->defs = nd;
      s->cap_defs = cap;
    }
    s->defs[s->n_defs++] = d;
    return 1;
  }
  case OPT_RUNTIME: {
    int64_t v;
    if (!split_kv(s, c->arg, &name, &rest) || !parse_i64(rest, &v)) {
      cli_usage_error(c, "--runtime '%s': expected NAME=INTEGER", c->arg);
      return -1;
    }
    if (!kv_push(&s->runtime, name, rest)) return spatc_error("out of memory"), -1;
    return 1;
  }
  case OPT_INPUT:
    if (!split_kv(s, c->arg, &name, &rest) || !*rest) {
      cli_usage_error(c, "--input '%s': expected NAME=FILE.npy", c->arg);
      return -1;
    }
    if (!kv_push(&s->inputs, name, rest)) return spatc_error("out of memory"), -1;
    return 1;
  case OPT_PLUGIN:
    s->plugin = c->arg;
    return 1;
  default:
    return 0;
  }
}

/* ---- sizes ---- */

void shape_init(spatc_shape *s) {
  memset(s, 0, sizeof *s);
  s->head = -1;
}

int shape_option(spatc_shape *s, const cli *c, int id) {
  int64_t v;
  switch (id) {
  case OPT_BATCH: if (!cli_int(c, 1, 1 << 16, &v)) return -1; s->B = v; return 1;
  case OPT_HEADS: if (!cli_int(c, 1, 1 << 16, &v)) return -1; s->H = v; return 1;
  case OPT_KVHEADS: if (!cli_int(c, 1, 1 << 16, &v)) return -1; s->Hkv = v; return 1;
  case OPT_LQ: if (!cli_int(c, 1, 1 << 30, &v)) return -1; s->Lq = v; return 1;
  case OPT_LK: if (!cli_int(c, 1, 1 << 30, &v)) return -1; s->Lk = v; return 1;
  case OPT_LEN: if (!cli_int(c, 1, 1 << 30, &v)) return -1; s->L = v; return 1;
  case OPT_DIM: if (!cli_int(c, 1, 1 << 16, &v)) return -1; s->D = v; return 1;
  case OPT_HEAD: if (!cli_int(c, 0, 1 << 16, &v)) return -1; s->head = v; return 1;
  case OPT_SEED:
    if (!cli_int(c, INT64_MIN, INT64_MAX, &v)) return -1;
    s->seeded = true;
    s->seed = (uint64_t)v;
    return 1;
  case OPT_Q: s->q = c->arg; return 1;
  case OPT_K: s->k = c->arg; return 1;
  case OPT_V: s->v = c->arg; return 1;
  case OPT_LAYOUT:
    if (strcmp(c->arg, "bhld") == 0) s->layout = 0;
    else if (strcmp(c->arg, "blhd") == 0) s->layout = 1;
    else {
      cli_usage_error(c, "--layout: expected bhld or blhd, got '%s'", c->arg);
      return -1;
    }
    return 1;
  default: return 0;
  }
}

int spatc_parse(cli *c, spatc_sel *sel, spatc_shape *sh, cli_opt_fn fn,
                void *ctx) {
  for (int id; (id = cli_next(c)) != CLI_END;) {
    int took = sel_option(sel, c, id);
    if (!took && sh) took = shape_option(sh, c, id);
    if (took < 0 || id == CLI_ERR) return SPATC_EUSAGE;
    if (took) continue;
    if (id == OPT_HELP) {
      cli_help(c, stdout);
      return SPATC_HELP;
    }
    if (id == CLI_POS) {
      if (sel->file)
        return cli_usage_error(c, "one FILE only ('%s', then '%s')",
                               sel->file, c->arg);
      sel->file = c->arg;
      continue;
    }
    int rc = fn ? fn(ctx, c, id) : -1;
    if (rc < 0) return cli_usage_error(c, "unexpected option '%s'", c->spelled);
    if (rc) return rc;
  }
  if (!sel->file) return cli_usage_error(c, "no input file");
  return SPATC_OK;
}

/* ---- loading ---- */

/* A readable regular file, else prints "spatc: error: PATH: reason". */
int spatc_check_file(const char *path) {
  const char *why = "";
  int fd = spat_open_regular(path, &why); /* a FIFO, a device: refused */
  if (fd < 0) return spatc_error("%s: %s", path, why);
  close(fd);
  return 0;
}

static void print_diags(void *user, const char *text) {
  (void)user;
  fputs(text, stderr);
}

int spatc_open(spatc_pat *sp, const char *path) {
  memset(sp, 0, sizeof *sp);
  int rc = spatc_check_file(path);
  if (rc) return rc;
  sp->ctx = spat_ctx_new();
  if (!sp->ctx) return spatc_error("out of memory");
  spat_ctx_set_diagnostic_fn(sp->ctx, print_diags, NULL);
  spat_status st = spat_module_parse_file(sp->ctx, path, &sp->m);
  if (st != SPAT_OK) return spatc_api_error(sp->ctx, st);
  return 0;
}

/* "name(w = 2, g = 1)" from the pattern's parameters; NULL when out of
 * memory. */
static char *make_title(const spat_pattern *p) {
  const char *name = spat_pattern_name(p);
  size_t n = spat_pattern_n_params(p);
  if (n == 0) return strdup(name);
  size_t cap = strlen(name) + 4;
  for (size_t k = 0; k < n; k++) {
    const char *pn = "";
    spat_pattern_param(p, k, &pn, NULL);
    cap += strlen(pn) + 28;
  }
  char *buf = malloc(cap);
  if (!buf) return NULL;
  size_t u = (size_t)snprintf(buf, cap, "%s(", name);
  for (size_t k = 0; k < n; k++) {
    const char *pn = "";
    int64_t v = 0;
    spat_pattern_param(p, k, &pn, &v);
    u += (size_t)snprintf(buf + u, cap - u, "%s%s = %" PRId64, k ? ", " : "",
                          pn, v);
  }
  snprintf(buf + u, cap - u, ")");
  return buf;
}

int spatc_load(spatc_pat *sp, const spatc_sel *s) {
  int rc = spatc_open(sp, s->file);
  if (rc) return rc;
  /* --pattern names one of FILE's patterns or of a file it imports (the
   * library's message lists FILE's own when there is none) */
  if (!s->pattern && spat_module_n_patterns(sp->m) == 0)
    return spatc_error("%s: defines no pattern", s->file);
  spat_status st = spat_module_select(sp->m, s->pattern, s->defs,
                                      (size_t)s->n_defs, &sp->p);
  if (st == SPAT_OK) st = spat_pattern_describe(sp->p, &sp->info);
  if (st == SPAT_EINVAL && s->pattern)
    return spatc_error("%s: %s", s->file, spat_ctx_error(sp->ctx));
  if (st != SPAT_OK) return spatc_api_error(sp->ctx, st);
  sp->title = make_title(sp->p);
  if (!sp->title) return spatc_error("out of memory");
  return 0;
}

void spatc_pat_free(spatc_pat *sp) {
  spat_pattern_free(sp->p);
  spat_module_free(sp->m);
  spat_ctx_free(sp->ctx);
  free(sp->title);
  memset(sp, 0, sizeof *sp);
}

size_t spatc_n_runtime(const spat_pattern_info *info) {
  size_t n = 0;
  while (n < info->n_args && info->args[n].kind == SPAT_KIND_SCALAR) n++;
  return n;
}

/* ---- binding run-time arguments ---- */

const char *spatc_dtype_name(npy_dtype t) {
  switch (t) {
  case NPY_F32: return "float32";
  case NPY_I32: return "int32";
  case NPY_U8: return "uint8";
  }
  return "?";
}

/* Appends 'name' to the list in buf, ", " between names. */
static void name_list_add(char *buf, size_t cap, const char *name) {
  size_t n = strlen(buf);
  if (n < cap) snprintf(buf + n, cap - n, "%s'%s'", n ? ", " : "", name);
}

int spatc_bind_runtime(int64_t *out, const spatc_pat *sp,
                       const spatc_sel *s) {
  const spat_pattern_info *p = &sp->info;
  size_t n_runtime = spatc_n_runtime(p);
  int bad = 0;
  for (int k = 0; k < s->runtime.n; k++) {
    bool known = false;
    for (size_t r = 0; r < n_runtime; r++)
      known |= strcmp(p->args[r].name, s->runtime.name[k]) == 0;
    if (!known) {
      spatc_error("pattern '%s' has no runtime scalar '%s'", p->name,
                  s->runtime.name[k]);
      bad = 1;
    }
  }
  char missing[512] = "";
  for (size_t r = 0; r < n_runtime; r++) {
    const char *val = NULL;
    for (int k = 0; k < s->runtime.n; k++)
      if (strcmp(p->args[r].name, s->runtime.name[k]) == 0)
        val = s->runtime.value[k];   /* the last one wins */
    if (val) {
      int64_t v = 0;
      if (!parse_i64(val, &v)) {
        spatc_error("--runtime %s=%s: not an integer", p->args[r].name, val);
        bad = 1;
      }
      out[r] = v;
    } else if (p->args[r].has_default) {
      out[r] = p->args[r].default_value;
    } else {
      name_list_add(missing, sizeof missing, p->args[r].name);
    }
  }
  if (*missing) {
    spatc_error("pattern '%s' needs a value for runtime scalar%s %s: give "
                "--runtime NAME=INT",
                p->name, strchr(missing, ',') ? "s" : "", missing);
    bad = 1;
  }
  return bad ? SPATC_EUSER : 0;
}

/* "(2, 4096)" */
static void shape_text(char *out, size_t n, int nd, const int64_t *d) {
  size_t u = (size_t)snprintf(out, n, "(");
  for (int k = 0; k < nd && u < n; k++)
    u += (size_t)snprintf(out + u, n - u, "%s%" PRId64, k ? ", " : "", d[k]);
  if (u < n) snprintf(out + u, n - u, nd == 1 ? ",)" : ")");
}

int spatc_bind(spatc_bound *b, const spatc_pat *sp, const spatc_sel *s,
               const struct spatc_args *sz) {
  int64_t Lk = sz->Lk;
  const spat_pattern_info *p = &sp->info;
  memset(b, 0, sizeof *b);
  size_t n_runtime = spatc_n_runtime(p), n_args = p->n_args;
  int64_t *runtime = calloc(n_runtime + 1, sizeof *runtime);
  b->args = calloc(n_args + 1, sizeof *b->args);
  b->arrays = calloc(n_args + 1, sizeof *b->arrays);
  if (!runtime || !b->args || !b->arrays) {
    free(runtime);
    return spatc_error("out of memory");
  }
  b->n_args = n_args;
  int bad = spatc_bind_runtime(runtime, sp, s) != 0;
  for (size_t r = 0; r < n_runtime; r++) b->args[r] = spat_scalar(runtime[r]);
  free(runtime);
  for (size_t r = n_runtime; r < n_args; r++)
    b->args[r] = p->args[r].kind == SPAT_KIND_FLOAT_INPUT ? spat_input_f32(NULL)
                                                          : spat_input(NULL);

  /* input arrays */
  for (int k = 0; k < s->inputs.n; k++) {
    size_t idx = n_args;
    for (size_t r = n_runtime; r < n_args; r++)
      if (strcmp(p->args[r].name, s->inputs.name[k]) == 0) idx = r;
    if (idx == n_args) {
      spatc_error("pattern '%s' has no input array '%s'", p->name,
                  s->inputs.name[k]);
      bad = 1;
      continue;
    }
    npy_array *arr = &b->arrays[idx];
    if (arr->data) npy_free(arr);    /* the last one wins */
    b->args[idx].input = NULL;
    b->args[idx].finput = NULL;
    char err[512];
    const char *path = s->inputs.value[k];
    if (spatc_check_file(path)) {
      bad = 1;
      continue;
    }
    if (npy_read(path, arr, err, sizeof err) != 0) {
      spatc_lib_error(err);
      bad = 1;
      continue;
    }
    bool flt = p->args[idx].kind == SPAT_KIND_FLOAT_INPUT;
    int64_t want[SPAT_MAX_DIMS];
    int nd = spat_arg_shape(&p->args[idx], sz->B, sz->H, sz->Hkv, sz->Lq, sz->Lk, sz->D,
                            want);
    bool same = nd == (int)arr->ndim;
    for (int d = 0; same && d < nd; d++) same = arr->shape[d] == want[d];
    /* a one-dimensional array of the right count fits any shape */
    int64_t cnt = 1;
    for (int d = 0; d < nd; d++) cnt *= want[d];
    if (!same && arr->ndim == 1 && nd > 0 && npy_count(arr) == cnt) same = true;
    char wtxt[160], gtxt[160];
    if (nd > 0) shape_text(wtxt, sizeof wtxt, nd, want);
    int64_t gd[8];
    for (int d = 0; d < (int)arr->ndim && d < 8; d++) gd[d] = arr->shape[d];
    shape_text(gtxt, sizeof gtxt, arr->ndim < 8 ? (int)arr->ndim : 8, gd);
    if (arr->dtype != (flt ? NPY_F32 : NPY_I32)) {
      spatc_error("%s: input '%s' must be %s, not %s", path, p->args[idx].name,
                  flt ? "float32 ('<f4')" : "int32 ('<i4')", spatc_dtype_name(arr->dtype));
      bad = 1;
    } else if (nd < 0) {
      spatc_error("input '%s': its declared shape is invalid for these sizes",
                  p->args[idx].name);
      bad = 1;
    } else if (!same) {
      spatc_error("%s: input '%s' must have shape %s (as declared, for these sizes), not %s",
                  path, p->args[idx].name, wtxt, gtxt);
      bad = 1;
    } else if (flt) {
      b->args[idx] = spat_input_f32((const float *)arr->data);
    } else {
      b->args[idx].input = arr->data;
    }
  }
  char missing[512] = "";
  for (size_t r = n_runtime; r < n_args; r++) {
    bool given = false; /* a given but bad array was reported above */
    for (int k = 0; k < s->inputs.n && !given; k++)
      given = strcmp(p->args[r].name, s->inputs.name[k]) == 0;
    if (!given) name_list_add(missing, sizeof missing, p->args[r].name);
  }
  if (*missing) {
    spatc_error("pattern '%s' needs input array%s %s: give --input "
                "NAME=FILE.npy (int32, %" PRId64 " entries)",
                p->name, strchr(missing, ',') ? "s" : "", missing, Lk);
    bad = 1;
  }

  /* extern functions, from --plugin, registered in the pattern's context */
  if (p->n_externs > 0) {
    if (!s->plugin) {
      spatc_error("pattern '%s' calls extern function '%s': give --plugin "
                  "LIB.so defining it",
                  p->name, p->externs[0].name);
      bad = 1;
    } else {
      /* a bare name means the file here, not a search of the library path */
      char path[4096];
      snprintf(path, sizeof path, "%s%s", strchr(s->plugin, '/') ? "" : "./",
               s->plugin);
      /* dlopen of a FIFO would block: regular files only */
      if (spatc_check_file(path)) {
        bad = 1;
      } else if (!(b->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        spatc_error("%s", dlerror());
        bad = 1;
      } else {
        for (size_t r = 0; r < p->n_externs; r++) {
          void *fn = dlsym(b->dl, p->externs[r].name);
          spat_fn f;
          memcpy(&f, &fn, sizeof f);
          if (!fn) {
            spatc_error("%s: no function '%s'", s->plugin, p->externs[r].name);
            bad = 1;
          } else if (spat_ctx_register_fn(sp->ctx, p->externs[r].name, f,
                                          p->externs[r].nargs) != SPAT_OK) {
            spatc_lib_error(spat_ctx_error(sp->ctx));
            bad = 1;
          }
        }
      }
    }
  } else if (s->plugin) {
    if (spatc_check_file(s->plugin)) bad = 1;
  }
  return bad ? SPATC_EUSER : 0;
}

void spatc_bound_free(spatc_bound *b) {
  if (b->arrays)
    for (size_t r = 0; r < b->n_args; r++) npy_free(&b->arrays[r]);
  free(b->arrays);
  free(b->args);
  free(b->title);
  if (b->dl) dlclose(b->dl);
  memset(b, 0, sizeof *b);
}

const char *spatc_pattern_title(const spatc_pat *sp, spatc_bound *b) {
  const char *base = sp->title ? sp->title : sp->info.name;
  size_t n_rt = b && b->args ? spatc_n_runtime(&sp->info) : 0;
  if (n_rt == 0) return base;
  if (b->title) return b->title;
  size_t len = strlen(base), cap = len + 4;
  for (size_t r = 0; r < n_rt; r++) cap += strlen(sp->info.args[r].name) + 40;
  b->title = malloc(cap);
  if (!b->title) return base;
  bool open = len > 0 && base[len - 1] == ')'; /* "name(w = 2)" */
  size_t u = (size_t)snprintf(b->title, cap, "%.*s%s", (int)(open ? len - 1 : len),
                              base, open ? ", " : "(");
  for (size_t r = 0; r < n_rt; r++)
    u += (size_t)snprintf(b->title + u, cap - u, "%sruntime %s = %" PRId64,
                          r ? ", " : "", sp->info.args[r].name,
                          b->args[r].scalar);
  snprintf(b->title + u, cap - u, ")");
  return b->title;
}
