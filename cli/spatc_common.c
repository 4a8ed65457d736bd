/* spatc_common.c: option parsing (selection and sizes), pattern loading and
 * argument binding for the spatc subcommands (spatc_common.h); tensors and
 * mask rows are in spatc_tensors.c.  Everything here may print to stderr;
 * nothing exits. */
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

#include "regfile.h"

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

static int find_long(const char *name, size_t n) {
  for (int id = 1; id < OPT_N; id++)
    if (strlen(opts[id].lng) == n && strncmp(opts[id].lng, name, n) == 0)
      return id;
  return -1;
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
    id = find_long(a + 2, n);
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
  s->a = arena_new();
}

void sel_free(spatc_sel *s) {
  free(s->defs);
  free(s->runtime.name);
  free(s->runtime.value);
  free(s->inputs.name);
  free(s->inputs.value);
  arena_free(s->a);
  memset(s, 0, sizeof *s);
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
static bool split_kv(arena *a, const char *s, const char **name,
                     const char **rest) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) return false;
  for (const char *p = s; p < eq; p++)
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (p > s && *p >= '0' && *p <= '9')))
      return false;
  *name = arena_strndup(a, s, (size_t)(eq - s));
  *rest = eq + 1;
  return *name != NULL;
}

int sel_option(spatc_sel *s, const cli *c, int id) {
  const char *name, *rest;
  switch (id) {
  case OPT_PATTERN:
    s->pattern = c->arg;
    return 1;
  case OPT_DEFINE: {
    fe_define d;
    if (fe_parse_define(c->arg, s->a, &d) != 0) {
      cli_usage_error(c, "-D '%s': expected NAME=INTEGER", c->arg);
      return -1;
    }
    if (s->n_defs == s->cap_defs) {
      int cap = s->cap_defs ? 2 * s->cap_defs : 8;
      fe_define *nd = realloc(s->defs, sizeof *nd * (size_t)cap);
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
    if (!split_kv(s->a, c->arg, &name, &rest) || !parse_i64(rest, &v)) {
      cli_usage_error(c, "--runtime '%s': expected NAME=INTEGER", c->arg);
      return -1;
    }
    if (!kv_push(&s->runtime, name, rest)) return spatc_error("out of memory"), -1;
    return 1;
  }
  case OPT_INPUT:
    if (!split_kv(s->a, c->arg, &name, &rest) || !*rest) {
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
  int fd = regfile_open(path, &why); /* a FIFO or device: refused, no wait */
  if (fd < 0) return spatc_error("%s: %s", path, why);
  close(fd);
  return 0;
}

int spatc_open(spatc_pat *sp, const char *path) {
  memset(sp, 0, sizeof *sp);
  int rc = spatc_check_file(path);
  if (rc) return rc;
  sp->d = diag_new();
  sp->a = arena_new();
  if (!sp->d || !sp->a) return spatc_error("out of memory");
  sp->m = fe_load_file(sp->d, sp->a, path);
  if (!sp->m || diag_n_errors(sp->d) > 0) {
    fputs(diag_text(sp->d), stderr);
    if (!sp->m && diag_n_errors(sp->d) == 0)
      spatc_error("%s: could not be loaded", path);
    return SPATC_EUSER;
  }
  const char *t = diag_text(sp->d);   /* warnings, notes */
  if (t && *t) fputs(t, stderr);
  diag_clear(sp->d);
  return 0;
}

int spatc_load(spatc_pat *sp, const spatc_sel *s) {
  int rc = spatc_open(sp, s->file);
  if (rc) return rc;
  if (s->pattern) {
    if (!fe_find_pattern(sp->m, s->pattern)) {  /* its own or imported */
      spatc_error("%s: no pattern named '%s'", s->file, s->pattern);
      int n = fe_n_patterns(sp->m);
      if (n > 0) {
        fprintf(stderr, "spatc: note: %s defines:", s->file);
        for (int k = 0; k < n; k++)
          fprintf(stderr, " %s", fe_pattern_name(sp->m, k));
        fputc('\n', stderr);
      }
      return SPATC_EUSER;
    }
  } else if (fe_n_patterns(sp->m) == 0) {
    return spatc_error("%s: defines no pattern", s->file);
  }
  sp->p = fe_instantiate(sp->d, sp->m, s->pattern, s->defs, s->n_defs);
  const char *t = diag_text(sp->d);
  if (t && *t) fputs(t, stderr);
  if (!sp->p || diag_n_errors(sp->d) > 0) {
    if (diag_n_errors(sp->d) == 0)
      spatc_error("%s: could not instantiate the pattern", s->file);
    sp->p = NULL;
    return SPATC_EUSER;
  }
  diag_clear(sp->d);
  return 0;
}

void spatc_pat_free(spatc_pat *sp) {
  arena_free(sp->a);
  if (sp->d) diag_free(sp->d);
  memset(sp, 0, sizeof *sp);
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

int spatc_bind_runtime(int64_t *out, const ir_program *p,
                       const spatc_sel *s) {
  int bad = 0;
  for (int k = 0; k < s->runtime.n; k++) {
    bool known = false;
    for (int r = 0; r < p->n_runtime; r++)
      known |= strcmp(p->runtime[r].name, s->runtime.name[k]) == 0;
    if (!known) {
      spatc_error("pattern '%s' has no runtime scalar '%s'", p->name,
                  s->runtime.name[k]);
      bad = 1;
    }
  }
  char missing[512] = "";
  for (int r = 0; r < p->n_runtime; r++) {
    const char *val = NULL;
    for (int k = 0; k < s->runtime.n; k++)
      if (strcmp(p->runtime[r].name, s->runtime.name[k]) == 0)
        val = s->runtime.value[k];   /* the last one wins */
    if (val) {
      int64_t v = 0;
      if (!parse_i64(val, &v)) {
        spatc_error("--runtime %s=%s: not an integer", p->runtime[r].name, val);
        bad = 1;
      }
      out[r] = v;
    } else if (p->runtime[r].has_deflt) {
      out[r] = p->runtime[r].deflt;
    } else {
      name_list_add(missing, sizeof missing, p->runtime[r].name);
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

int spatc_bind(spatc_bound *b, const ir_program *p, const spatc_sel *s,
               int64_t Lk) {
  memset(b, 0, sizeof *b);
  b->runtime = calloc((size_t)p->n_runtime + 1, sizeof *b->runtime);
  b->inputs = calloc((size_t)p->n_inputs + 1, sizeof *b->inputs);
  b->arrays = calloc((size_t)p->n_inputs + 1, sizeof *b->arrays);
  b->externs = calloc((size_t)p->n_externs + 1, sizeof *b->externs);
  if (!b->runtime || !b->inputs || !b->arrays || !b->externs)
    return spatc_error("out of memory");
  b->n_inputs = p->n_inputs;
  int bad = spatc_bind_runtime(b->runtime, p, s) != 0;

  /* input arrays */
  for (int k = 0; k < s->inputs.n; k++) {
    int idx = -1;
    for (int r = 0; r < p->n_inputs; r++)
      if (strcmp(p->inputs[r].name, s->inputs.name[k]) == 0) idx = r;
    if (idx < 0) {
      spatc_error("pattern '%s' has no input array '%s'", p->name,
                  s->inputs.name[k]);
      bad = 1;
      continue;
    }
    npy_array *arr = &b->arrays[idx];
    if (arr->data) npy_free(arr);    /* the last one wins */
    b->inputs[idx] = NULL;
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
    if (arr->dtype != NPY_I32) {
      spatc_error("%s: input '%s' must be int32 ('<i4'), not %s", path,
                  p->inputs[idx].name, spatc_dtype_name(arr->dtype));
      bad = 1;
    } else if (arr->ndim != 1 || arr->shape[0] != Lk) {
      spatc_error("%s: input '%s' must have shape (%" PRId64 ",) (one entry "
                  "per key), not %s%" PRId64 "%s",
                  path, p->inputs[idx].name, Lk,
                  arr->ndim == 1 ? "(" : "", npy_count(arr),
                  arr->ndim == 1 ? ",)" : " entries");
      bad = 1;
    } else {
      b->inputs[idx] = arr->data;
    }
  }
  char missing[512] = "";
  for (int r = 0; r < p->n_inputs; r++) {
    bool given = false; /* a given but bad array was reported above */
    for (int k = 0; k < s->inputs.n && !given; k++)
      given = strcmp(p->inputs[r].name, s->inputs.name[k]) == 0;
    if (!given) name_list_add(missing, sizeof missing, p->inputs[r].name);
  }
  if (*missing) {
    spatc_error("pattern '%s' needs input array%s %s: give --input "
                "NAME=FILE.npy (int32, %" PRId64 " entries)",
                p->name, strchr(missing, ',') ? "s" : "", missing, Lk);
    bad = 1;
  }

  /* extern functions, from --plugin */
  if (p->n_externs > 0) {
    if (!s->plugin) {
      spatc_error("pattern '%s' calls extern function '%s': give --plugin "
                  "LIB.so defining it",
                  p->name, p->externs[0].name);
      bad = 1;
    } else {
      /* a bare name means the file here, not a search of the library path */
      const char *path = s->plugin;
      if (!strchr(path, '/')) path = arena_printf(s->a, "./%s", s->plugin);
      /* dlopen of a FIFO would block: regular files only */
      if (!path || spatc_check_file(path)) {
        bad = 1;
      } else if (!(b->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        spatc_error("%s", dlerror());
        bad = 1;
      } else {
        for (int r = 0; r < p->n_externs; r++) {
          b->externs[r] = dlsym(b->dl, p->externs[r].name);
          if (!b->externs[r]) {
            spatc_error("%s: no function '%s'", s->plugin, p->externs[r].name);
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
    for (int r = 0; r < b->n_inputs; r++) npy_free(&b->arrays[r]);
  free(b->arrays);
  free(b->runtime);
  free((void *)b->inputs);
  free(b->externs);
  if (b->dl) dlclose(b->dl);
  memset(b, 0, sizeof *b);
}

const char *spatc_pattern_title(const ir_program *p, const int64_t *runtime) {
  int n_rt = runtime ? p->n_runtime : 0;
  if (p->n_params == 0 && n_rt == 0) return p->name;
  size_t cap = strlen(p->name) + 4;
  for (int k = 0; k < p->n_params; k++) cap += strlen(p->params[k].name) + 28;
  for (int k = 0; k < n_rt; k++) cap += strlen(p->runtime[k].name) + 36;
  char *buf = arena_alloc(p->arena, cap);
  if (!buf) return p->name;
  size_t u = (size_t)snprintf(buf, cap, "%s(", p->name);
  for (int k = 0; k < p->n_params; k++)
    u += (size_t)snprintf(buf + u, cap - u, "%s%s = %" PRId64, k ? ", " : "",
                          p->params[k].name, p->params[k].value);
  for (int k = 0; k < n_rt; k++)
    u += (size_t)snprintf(buf + u, cap - u, "%sruntime %s = %" PRId64,
                          k || p->n_params ? ", " : "", p->runtime[k].name,
                          runtime[k]);
  snprintf(buf + u, cap - u, ")");
  return buf;
}
