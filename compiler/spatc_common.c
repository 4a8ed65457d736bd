/* spatc_common.c: option parsing, pattern loading and argument binding for
 * the spatc subcommands (spatc_common.h).  Everything here may print to
 * stderr; nothing exits. */
#include "spatc_common.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
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

int spatc_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("spatc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
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
  fputs("spatc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
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

/* ---- loading ---- */

/* A readable regular file, else prints "spatc: error: PATH: reason". */
static int check_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return spatc_error("%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return spatc_error("%s: %s", path, strerror(EISDIR));
  FILE *f = fopen(path, "rb");
  if (!f) return spatc_error("%s: %s", path, strerror(errno));
  fclose(f);
  return 0;
}

int spatc_open(spatc_pat *sp, const char *path) {
  memset(sp, 0, sizeof *sp);
  int rc = check_file(path);
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
    bool found = false;
    for (int k = 0; k < fe_n_patterns(sp->m) && !found; k++)
      found = strcmp(fe_pattern_name(sp->m, k), s->pattern) == 0;
    if (!found) {
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

static const char *dtype_name(npy_dtype t) {
  switch (t) {
  case NPY_F32: return "float32";
  case NPY_I32: return "int32";
  case NPY_U8: return "uint8";
  }
  return "?";
}

int spatc_bind(spatc_bound *b, const ir_program *p, const spatc_sel *s,
               int64_t Lk) {
  memset(b, 0, sizeof *b);
  int bad = 0;
  b->runtime = calloc((size_t)p->n_runtime + 1, sizeof *b->runtime);
  b->inputs = calloc((size_t)p->n_inputs + 1, sizeof *b->inputs);
  b->arrays = calloc((size_t)p->n_inputs + 1, sizeof *b->arrays);
  b->externs = calloc((size_t)p->n_externs + 1, sizeof *b->externs);
  if (!b->runtime || !b->inputs || !b->arrays || !b->externs)
    return spatc_error("out of memory");
  b->n_inputs = p->n_inputs;

  /* runtime scalars: --runtime, else the default, else an error */
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
  const char *missing_sep = "";
  char missing[512] = "";
  for (int r = 0; r < p->n_runtime; r++) {
    const char *val = NULL;
    for (int k = 0; k < s->runtime.n; k++)
      if (strcmp(p->runtime[r].name, s->runtime.name[k]) == 0)
        val = s->runtime.value[k];   /* the last one wins */
    if (val) {
      int64_t v;
      if (!parse_i64(val, &v)) {
        spatc_error("--runtime %s=%s: not an integer", p->runtime[r].name, val);
        bad = 1;
      }
      b->runtime[r] = v;
    } else if (p->runtime[r].has_deflt) {
      b->runtime[r] = p->runtime[r].deflt;
    } else {
      size_t n = strlen(missing);
      snprintf(missing + n, sizeof missing - n, "%s'%s'", missing_sep,
               p->runtime[r].name);
      missing_sep = ", ";
    }
  }
  if (*missing) {
    spatc_error("pattern '%s' needs a value for runtime scalar%s %s: give "
                "--runtime NAME=INT",
                p->name, strchr(missing, ',') ? "s" : "", missing);
    bad = 1;
  }

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
    if (check_file(path)) {
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
                  p->inputs[idx].name, dtype_name(arr->dtype));
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
  missing[0] = '\0';
  missing_sep = "";
  for (int r = 0; r < p->n_inputs; r++) {
    if (b->inputs[r] || b->arrays[r].data) continue;
    size_t n = strlen(missing);
    snprintf(missing + n, sizeof missing - n, "%s'%s'", missing_sep,
             p->inputs[r].name);
    missing_sep = ", ";
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
      b->dl = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
      if (!b->dl) {
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
    if (check_file(s->plugin)) bad = 1;
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

/* ---- tensors ---- */

/* Stream t is splitmix64 (the spec's mix) started at mix(seed + t): draw n
 * is mix(s0 + n * golden), so any part of the stream can be computed
 * directly, and rows are filled by several threads with the same result.
 * Value e (logical order) takes draws 2e, 2e + 1: x1, x2 ->
 * u1 = ((x1 >> 11) + 1) 2^-53 in (0, 1], u2 = (x2 >> 11) 2^-53,
 * value = sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller). */
typedef struct randn_job {
  const rt_tensor *t;
  int64_t H, L, D, n_rows;     /* rows: (b, h, l) */
  uint64_t s0;
  atomic_llong next;           /* next block of rows */
} randn_job;

static void *randn_worker(void *arg) {
  randn_job *j = arg;
  const uint64_t golden = 0x9E3779B97F4A7C15ull;
  const double two_pi = 6.283185307179586476925286766559;
  const int64_t block = 256;
  for (;;) {
    int64_t r0 = (int64_t)atomic_fetch_add(&j->next, block);
    if (r0 >= j->n_rows) break;
    int64_t r1 = r0 + block < j->n_rows ? r0 + block : j->n_rows;
    for (int64_t row = r0; row < r1; row++) {
      int64_t b = row / (j->H * j->L), h = row / j->L % j->H, l = row % j->L;
      float *out = j->t->data + b * j->t->sb + h * j->t->sh + l * j->t->sl;
      uint64_t st = j->s0 + (uint64_t)(2 * row * j->D) * golden;
      for (int64_t d = 0; d < j->D; d++) {
        uint64_t x1 = ir_mix(st);
        st += golden;
        uint64_t x2 = ir_mix(st);
        st += golden;
        double u1 = ((double)(x1 >> 11) + 1.0) * 0x1p-53;
        double u2 = (double)(x2 >> 11) * 0x1p-53;
        out[d] = (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
      }
    }
  }
  return NULL;
}

void spatc_randn(const rt_tensor *t, int64_t B, int64_t H, int64_t L,
                 int64_t D, uint64_t seed, int stream) {
  randn_job j = {.t = t, .H = H, .L = L, .D = D, .n_rows = B * H * L,
                 .s0 = ir_mix(seed + (uint64_t)stream)};
  atomic_init(&j.next, 0);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
  if (j.n_rows * D < (1 << 16)) threads = 1;
  pthread_t tid[64];
  int started = 0;
  for (int k = 1; k < threads; k++)
    if (pthread_create(&tid[started], NULL, randn_worker, &j) == 0) started++;
  randn_worker(&j);
  for (int k = 0; k < started; k++) pthread_join(tid[k], NULL);
}

int spatc_read_f32(const char *what, const char *path, int ndim,
                   npy_array *out) {
  memset(out, 0, sizeof *out);
  int rc = check_file(path);
  if (rc) return rc;
  char err[512];
  if (npy_read(path, out, err, sizeof err) != 0) return spatc_lib_error(err);
  if (out->dtype != NPY_F32) {
    spatc_error("%s: %s must be float32 ('<f4'), not %s", path, what,
                dtype_name(out->dtype));
    npy_free(out);
    return SPATC_EUSER;
  }
  if (out->ndim != ndim) {
    spatc_error("%s: %s must have %d dimensions, not %d", path, what, ndim,
                out->ndim);
    npy_free(out);
    return SPATC_EUSER;
  }
  return 0;
}

/* ---- sizes and tensors ---- */

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

static bool mul_ok(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

/* Elements of [n0, n1, n2, n3] as a byte-size-safe count, or -1. */
static int64_t count4(int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
  int64_t x;
  if (!mul_ok(n0, n1, &x) || !mul_ok(x, n2, &x) || !mul_ok(x, n3, &x) ||
      x > INT64_MAX / 8)
    return -1;
  return x;
}

static void shape_text(const npy_array *a, char *buf, size_t n) {
  size_t u = (size_t)snprintf(buf, n, "(");
  for (int d = 0; d < a->ndim && u < n; d++)
    u += (size_t)snprintf(buf + u, n - u, d ? ", %" PRId64 : "%" PRId64,
                          a->shape[d]);
  if (u < n) snprintf(buf + u, n - u, a->ndim == 1 ? ",)" : ")");
}

/* An option given on the command line must agree with the files. */
static bool agree(const char *path, const npy_array *f, const char *what,
                  int64_t from_file, int64_t given, const char *opt) {
  if (given == 0 || given == from_file) return true;
  char sh[128];
  shape_text(f, sh, sizeof sh);
  spatc_error("%s: shape %s gives %s = %" PRId64 ", but %s %" PRId64, path, sh,
              what, from_file, opt, given);
  return false;
}

static int qkv_from_files(spatc_qkv *t, rt_args *a, const spatc_shape *s,
                          const cli *c, int need) {
  int n = need == QKV_QKV ? 3 : 2;
  const char *path[3] = {s->q, s->k, s->v};
  static const char *const what[3] = {"q", "k", "v"};
  if (!s->q || !s->k || (n == 3 && !s->v))
    return cli_usage_error(c, n == 3 ? "give all of --q, --k and --v"
                                     : "give both --q and --k");
  for (int x = 0; x < n; x++) {
    int rc = spatc_read_f32(what[x], path[x], 4, &t->file[x]);
    if (rc) return rc;
    t->mem[x] = t->file[x].data;
  }
  const int64_t *q = t->file[0].shape, *k = t->file[1].shape;
  int ax_l = s->layout == 0 ? 2 : 1, ax_h = s->layout == 0 ? 1 : 2;
  const char *lay = s->layout == 0 ? "[B, H, L, D]" : "[B, L, H, D]";
  a->B = q[0];
  a->H = q[ax_h];
  a->Lq = q[ax_l];
  a->D = q[3];
  a->Hkv = k[ax_h];
  a->Lk = k[ax_l];
  for (int x = 0; x < n; x++)
    for (int d = 0; d < 4; d++)
      if (t->file[x].shape[d] < 1) {
        char sh[128];
        shape_text(&t->file[x], sh, sizeof sh);
        return spatc_error("%s: %s has an empty axis: shape %s", path[x],
                           what[x], sh);
      }
  if (k[0] != a->B || k[3] != a->D) {
    char sq[128], sk[128];
    shape_text(&t->file[0], sq, sizeof sq);
    shape_text(&t->file[1], sk, sizeof sk);
    return spatc_error("%s: k has shape %s, which does not fit q %s (layout "
                       "%s: batch and head dimension must agree)",
                       s->k, sk, sq, lay);
  }
  if (a->H % a->Hkv != 0)
    return spatc_error("%s: %" PRId64 " key/value heads do not divide the %"
                       PRId64 " query heads of %s (layout %s)",
                       s->k, a->Hkv, a->H, s->q, lay);
  if (n == 3)
    for (int d = 0; d < 4; d++)
      if (t->file[2].shape[d] != k[d]) {
        char sk[128], sv[128];
        shape_text(&t->file[1], sk, sizeof sk);
        shape_text(&t->file[2], sv, sizeof sv);
        return spatc_error("%s: v has shape %s, k has %s: they must agree",
                           s->v, sv, sk);
      }
  const npy_array *fq = &t->file[0], *fk = &t->file[1];
  int64_t lk_given = s->Lk ? s->Lk : s->L;
  int64_t lq_given = s->Lq ? s->Lq : s->L;
  if (!agree(s->q, fq, "B", a->B, s->B, "--batch") ||
      !agree(s->q, fq, "H", a->H, s->H, "--heads") ||
      !agree(s->q, fq, "Lq", a->Lq, lq_given, s->Lq ? "--lq" : "--len") ||
      !agree(s->q, fq, "D", a->D, s->D, "--dim") ||
      !agree(s->k, fk, "Hkv", a->Hkv, s->Hkv, "--kv-heads") ||
      !agree(s->k, fk, "Lk", a->Lk, lk_given, s->Lk ? "--lk" : "--len"))
    return SPATC_EUSER;
  rt_tensor *ts[3] = {&a->q, &a->k, &a->v};
  for (int x = 0; x < n; x++) {
    ts[x]->data = t->mem[x];
    rt_tensor_strides(ts[x], s->layout, x ? a->Hkv : a->H, x ? a->Lk : a->Lq,
                      a->D);
  }
  return 0;
}

int spatc_qkv_setup(spatc_qkv *t, rt_args *a, const spatc_shape *s,
                    const cli *c, int need) {
  memset(t, 0, sizeof *t);
  bool files = s->q || s->k || s->v;
  if (files && s->seeded)
    return cli_usage_error(c, "--seed and --q/--k/--v exclude each other");
  if (files) return qkv_from_files(t, a, s, c, need ? need : QKV_QK);
  a->Lq = s->Lq ? s->Lq : s->L;
  a->Lk = s->Lk ? s->Lk : s->L ? s->L : a->Lq;
  if (!a->Lq) return cli_usage_error(c, "give the size: --lq N or --len N");
  a->B = s->B ? s->B : 1;
  a->H = s->H ? s->H : 1;
  a->Hkv = s->Hkv ? s->Hkv : a->H;
  a->D = s->D ? s->D : 64;
  if (a->H % a->Hkv != 0)
    return cli_usage_error(c, "--kv-heads %" PRId64 " does not divide --heads "
                              "%" PRId64, a->Hkv, a->H);
  if (need == QKV_SIZES) return 0;
  if (!s->seeded)
    return cli_usage_error(c, need == QKV_QKV
                                  ? "give --q, --k and --v, or --seed S"
                                  : "give --q and --k, or --seed S");
  int n = need == QKV_QKV ? 3 : 2;
  rt_tensor *ts[3] = {&a->q, &a->k, &a->v};
  for (int x = 0; x < n; x++) {
    int64_t H = x ? a->Hkv : a->H, L = x ? a->Lk : a->Lq;
    int64_t cnt = count4(a->B, H, L, a->D);
    if (cnt < 0 || (uint64_t)cnt > SIZE_MAX / sizeof(float))
      return spatc_error("tensor of %" PRId64 " x %" PRId64 " x %" PRId64
                         " x %" PRId64 " floats is too large",
                         a->B, H, L, a->D);
    t->mem[x] = spatc_xmalloc((size_t)cnt * sizeof(float));
    if (!t->mem[x]) return SPATC_EUSER;
    ts[x]->data = t->mem[x];
    rt_tensor_strides(ts[x], s->layout, H, L, a->D);
    spatc_randn(ts[x], a->B, H, L, a->D, s->seed, x);
  }
  return 0;
}

void spatc_qkv_free(spatc_qkv *t) {
  for (int x = 0; x < 3; x++) {
    if (t->file[x].data) npy_free(&t->file[x]);
    else free(t->mem[x]);
  }
  memset(t, 0, sizeof *t);
}

const char *spatc_pattern_title(const ir_program *p) {
  if (p->n_params == 0) return p->name;
  size_t cap = strlen(p->name) + 4;
  for (int k = 0; k < p->n_params; k++) cap += strlen(p->params[k].name) + 28;
  char *buf = arena_alloc(p->arena, cap);
  if (!buf) return p->name;
  size_t u = (size_t)snprintf(buf, cap, "%s(", p->name);
  for (int k = 0; k < p->n_params; k++)
    u += (size_t)snprintf(buf + u, cap - u, "%s%s = %" PRId64, k ? ", " : "",
                          p->params[k].name, p->params[k].value);
  snprintf(buf + u, cap - u, ")");
  return buf;
}

/* ---- mask rows ---- */

int spatc_rows_open(spatc_rows *r, const spatc_sel *sel,
                    const spatc_shape *sh, const cli *c) {
  memset(r, 0, sizeof *r);
  int rc = spatc_load(&r->pat, sel);
  if (rc) return rc;
  const ir_program *p = r->pat.p;
  bool topk = ir_is_data_dependent(p);
  if (topk && !sh->seeded && !sh->q && !sh->k)
    return spatc_error("pattern '%s' uses topk, so its mask depends on q and "
                       "k: give --seed S (random q, k) or --q/--k FILE.npy",
                       p->name);
  rc = spatc_qkv_setup(&r->qkv, &r->a, sh, c, topk ? QKV_QK : QKV_SIZES);
  if (rc) return rc;
  if (sh->head >= r->a.H)
    return cli_usage_error(c, "--head %" PRId64 " is out of range: there %s %"
                              PRId64 " head%s",
                           sh->head, r->a.H == 1 ? "is" : "are", r->a.H,
                           r->a.H == 1 ? "" : "s");
  r->h0 = sh->head >= 0 ? sh->head : 0;
  r->h1 = sh->head >= 0 ? sh->head + 1 : r->a.H;
  rc = spatc_bind(&r->bound, p, sel, r->a.Lk);
  if (rc) return rc;
  r->a.runtime = r->bound.runtime;
  r->a.inputs = r->bound.inputs;
  r->a.externs = r->bound.externs;
  r->a.threads = 1;
  return 0;
}

int spatc_rows_get(spatc_rows *r, int64_t h, int64_t row, uint8_t *out) {
  char err[1024] = "";
  rt_status st = interp_mask_row(r->pat.p, &r->a, 0, h, row, out, err,
                                 sizeof err);
  if (st != RT_OK) return spatc_lib_error(err);
  return 0;
}

int spatc_rows_get_n(spatc_rows *r, int64_t h, int64_t r0, int64_t n,
                     uint8_t *out) {
  char err[1024] = "";
  rt_status st = interp_mask_rows(r->pat.p, &r->a, 0, h, r0, n, out, err,
                                  sizeof err);
  if (st != RT_OK) return spatc_lib_error(err);
  return 0;
}

typedef struct rows_job {
  spatc_rows *r;
  spatc_rows_fn fn;
  void *ctx;
  int64_t chunk, per_head, n_chunks;
  atomic_llong next;          /* next chunk to hand out */
  atomic_llong first_err;     /* lowest failing chunk; n_chunks if none */
  pthread_mutex_t lock;
  char err[1024];             /* the message of first_err */
} rows_job;

static void *rows_worker(void *arg) {
  rows_job *j = arg;
  spatc_rows *r = j->r;
  uint8_t *buf = malloc((size_t)(j->chunk * r->a.Lk));
  for (;;) {
    long long c = atomic_fetch_add(&j->next, 1);
    if (c >= j->n_chunks || c > atomic_load(&j->first_err)) break;
    int64_t h = r->h0 + c / j->per_head, r0 = c % j->per_head * j->chunk;
    int64_t n = r->a.Lq - r0 < j->chunk ? r->a.Lq - r0 : j->chunk;
    char err[1024] = "out of memory";
    rt_status st = buf ? interp_mask_rows(r->pat.p, &r->a, 0, h, r0, n, buf,
                                          err, sizeof err)
                       : RT_ENOMEM;
    if (st == RT_OK) {
      j->fn(j->ctx, h, r0, n, buf);
      continue;
    }
    pthread_mutex_lock(&j->lock);
    if (c < atomic_load(&j->first_err)) {
      atomic_store(&j->first_err, c);
      snprintf(j->err, sizeof j->err, "%s", err);
    }
    pthread_mutex_unlock(&j->lock);
    break;
  }
  free(buf);
  return NULL;
}

int spatc_rows_each(spatc_rows *r, int threads, spatc_rows_fn fn, void *ctx) {
  int64_t Lk = r->a.Lk, Lq = r->a.Lq;
  rows_job j = {.r = r, .fn = fn, .ctx = ctx};
  j.chunk = (1 << 20) / Lk;       /* about 1 MiB of rows per hand-out */
  j.chunk = j.chunk < 1 ? 1 : j.chunk > 64 ? 64 : j.chunk;
  j.per_head = (Lq + j.chunk - 1) / j.chunk;
  j.n_chunks = j.per_head * (r->h1 - r->h0);
  atomic_init(&j.next, 0);
  atomic_init(&j.first_err, j.n_chunks);
  pthread_mutex_init(&j.lock, NULL);
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  if (threads > 256) threads = 256;
  if (threads > j.n_chunks) threads = (int)j.n_chunks;
  pthread_t tid[256];
  int started = 0;
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tid[started], NULL, rows_worker, &j) == 0) started++;
  rows_worker(&j);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  pthread_mutex_destroy(&j.lock);
  if (atomic_load(&j.first_err) < j.n_chunks) return spatc_lib_error(j.err);
  return 0;
}

void spatc_rows_close(spatc_rows *r) {
  spatc_bound_free(&r->bound);
  spatc_qkv_free(&r->qkv);
  spatc_pat_free(&r->pat);
}
