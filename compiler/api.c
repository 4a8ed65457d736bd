/* api.c: the public API (include/spat.h) over the front end and the backends.
 *
 * In: .pat text or a file, parameter overrides, compile options, tensors and
 * a kernel's arguments.  Out: kernels (a backend's compiled object plus its
 * signature and typed entry) and attention results; every failure as a
 * spat_status plus a message in the context, never a print or an exit.
 *
 *   parse:   fe_load_* -> fe_module (in the pattern's source: arena + diag),
 *            instantiated once with defaults to learn its parameters
 *   compile: fe_instantiate (with the overrides) -> ir_program,
 *            externs resolved against the context's registry,
 *            backend->compile, a libffi typed entry (runtime/ffi_call.h)
 *   run:     arguments checked, rt_args built (strides from the layout),
 *            backend->run
 *
 * The ir_program a kernel runs lives in its pattern's arena, so the source
 * (arena, diag, module) is reference-counted and shared by the pattern and
 * its kernels; whichever is freed last frees it.
 *
 * Threads: contexts, modules, patterns and kernels are registered in
 * live.c, and every entry point takes a counted reference to its object for
 * the call, so a pointer that is not a live object (freed twice, never
 * made) gets SPAT_EINVAL or is ignored, never dereferenced, and an object
 * freed while another thread uses it goes when that use ends.  A context's
 * mutex guards its messages, diagnostics callback and extern registry; a
 * source's mutex guards its arena, diag and module (instantiation) and its
 * patterns' parameter values, so that one pattern compiled from several
 * threads instantiates one at a time and runs the backends in parallel.
 * spat_ctx_error and spat_ctx_last_diagnostics hand out copies owned by the
 * calling thread; the diagnostics callback runs outside every lock.
 */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spat.h"
#include "ffi_call.h"
#include "rt.h"
#include "arena.h"
#include "backend.h"
#include "diag.h"
#include "frontend.h"
#include "ir.h"
#include "regfile.h"
#include "pipeline.h"
#include "api_internal.h"

#define MAX_FN_ARGS 16  /* ffi_call_pred's limit */
#define MAX_D (1 << 16) /* beyond any head dimension in use */

/* ---- errors -------------------------------------------------------------- */

static spat_status fail(spat_ctx *c, spat_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static spat_status fail(spat_ctx *c, spat_status st, const char *fmt, ...) {
  if (c == NULL) return st;
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&c->lock);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  pthread_mutex_unlock(&c->lock);
  va_end(ap);
  return st;
}


/* Keeps the diagnostics of the last operation (text: the caller's, stable
 * during the call) and hands them to the callback, outside every lock. */
static void set_diags(spat_ctx *c, const char *text) {
  char *keep = strdup(text);
  pthread_mutex_lock(&c->lock);
  free(c->diags);
  c->diags = keep;
  spat_diag_fn fn = c->diag_fn;
  void *user = c->diag_user;
  pthread_mutex_unlock(&c->lock);
  if (text[0] != '\0' && fn != NULL) fn(user, text);
}

/* The first diagnostic line (without the source excerpt) for the error
 * message; text holds errs errors. */
static spat_status fail_diags(spat_ctx *c, const char *text, int errs,
                              const char *what) {
  set_diags(c, text);
  const char *t = text;
  int n = (int)strcspn(t, "\n");
  if (n == 0) return fail(c, SPAT_EPARSE, "%s failed", what);
  if (errs > 1)
    return fail(c, SPAT_EPARSE, "%.*s (and %d more error%s)", n, t, errs - 1,
                errs > 2 ? "s" : "");
  return fail(c, SPAT_EPARSE, "%.*s", n, t);
}

/* ---- version, status ----------------------------------------------------- */

#define STR2(x) #x
#define STR(x) STR2(x)

int spat_version(void) {
  return SPAT_VERSION;
}

const char *spat_version_string(void) {
  return STR(SPAT_VERSION_MAJOR) "." STR(SPAT_VERSION_MINOR) "." STR(
      SPAT_VERSION_PATCH);
}

#define SPAT_STATUSES(X) \
  X(SPAT_OK)             \
  X(SPAT_EINVAL)         \
  X(SPAT_EPARSE)         \
  X(SPAT_ERANGE)         \
  X(SPAT_ENOMEM)         \
  X(SPAT_EUNSUPPORTED)   \
  X(SPAT_EIO)            \
  X(SPAT_EINTERNAL)

const char *spat_status_name(spat_status s) {
  switch (s) {
#define X(name) \
  case name:    \
    return #name;
    SPAT_STATUSES(X)
#undef X
  }
  return "SPAT_E?";
}

/* ---- object lifetimes (live.h) ------------------------------------------ */

static void ctx_destroy(spat_ctx *c) {
  for (int k = 0; k < c->n_fns; k++) free(c->fns[k].name);
  free(c->fns);
  free(c->diags);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

spat_ctx *api_ctx_get(const spat_ctx *c) {
  return (spat_ctx *)live_acquire(c, LIVE_CTX);
}
void api_ctx_put(spat_ctx *c) {
  if (live_release(&c->live)) ctx_destroy(c);
}

static void pattern_destroy(spat_pattern *p);
spat_pattern *api_pattern_get(const spat_pattern *p) {
  return (spat_pattern *)live_acquire(p, LIVE_PATTERN);
}
void api_pattern_put(spat_pattern *p) {
  if (live_release(&p->live)) pattern_destroy(p);
}

static void kernel_destroy(spat_kernel *k);
spat_kernel *api_kernel_get(const spat_kernel *k) {
  return (spat_kernel *)live_acquire(k, LIVE_KERNEL);
}
void api_kernel_put(spat_kernel *k) {
  if (live_release(&k->live)) kernel_destroy(k);
}

/* ---- context ------------------------------------------------------------- */

spat_ctx *spat_ctx_new(void) {
  spat_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return NULL;
  }
  if (live_add(&c->live, LIVE_CTX) != 0) {
    ctx_destroy(c);
    return NULL;
  }
  return c;
}

void spat_ctx_free(spat_ctx *c) {
  if (live_retire(c, LIVE_CTX)) api_ctx_put(c);
}

/* The calling thread's copy of the last error (of any context). */
static _Thread_local char err_copy[ERR_LEN];

const char *spat_ctx_error(const spat_ctx *cc) {
  if (cc == NULL) return "spat: the context is NULL";
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return "spat: not a live context (freed, or never made)";
  pthread_mutex_lock(&c->lock);
  memcpy(err_copy, c->err, sizeof err_copy);
  pthread_mutex_unlock(&c->lock);
  api_ctx_put(c);
  return err_copy;
}

/* The calling thread's copy of the last diagnostics (malloc, freed at thread
 * exit or by the next copy). */
static pthread_key_t diag_key;
static int diag_key_ok;
static pthread_once_t diag_key_once = PTHREAD_ONCE_INIT;
static void diag_key_init(void) {
  diag_key_ok = pthread_key_create(&diag_key, free) == 0;
}

const char *spat_ctx_last_diagnostics(const spat_ctx *cc) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return "";
  pthread_once(&diag_key_once, diag_key_init);
  char *copy = NULL;
  pthread_mutex_lock(&c->lock);
  if (c->diags != NULL && c->diags[0] != '\0') copy = strdup(c->diags);
  pthread_mutex_unlock(&c->lock);
  api_ctx_put(c);
  if (!diag_key_ok) {
    free(copy);
    return "";
  }
  free(pthread_getspecific(diag_key));
  pthread_setspecific(diag_key, copy);
  return copy != NULL ? copy : "";
}

void spat_ctx_set_diagnostic_fn(spat_ctx *cc, spat_diag_fn fn, void *user) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return;
  pthread_mutex_lock(&c->lock);
  c->diag_fn = fn;
  c->diag_user = user;
  pthread_mutex_unlock(&c->lock);
  api_ctx_put(c);
}

/* Under c->lock. */
static fn_entry *find_fn(spat_ctx *c, const char *name) {
  for (int k = 0; k < c->n_fns; k++)
    if (strcmp(c->fns[k].name, name) == 0) return &c->fns[k];
  return NULL;
}

/* Under c->lock: 0, or -1 when out of memory. */
static int add_fn(spat_ctx *c, const char *name, void *p, int nargs) {
  fn_entry *e = find_fn(c, name);
  if (e != NULL) {
    e->fn = p;
    e->nargs = nargs;
    return 0;
  }
  if (c->n_fns == c->cap_fns) {
    int cap = c->cap_fns ? 2 * c->cap_fns : 8;
    fn_entry *fns = realloc(c->fns, (size_t)cap * sizeof *fns);
    if (fns == NULL) return -1;
    c->fns = fns;
    c->cap_fns = cap;
  }
  char *copy = strdup(name);
  if (copy == NULL) return -1;
  c->fns[c->n_fns++] = (fn_entry){copy, p, nargs};
  return 0;
}

spat_status spat_ctx_register_fn(spat_ctx *cc, const char *name, spat_fn fn,
                                 int nargs) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = SPAT_OK;
  if (name == NULL || fn == NULL) {
    st = fail(c, SPAT_EINVAL, "spat_ctx_register_fn: %s is NULL",
              name == NULL ? "name" : "fn");
  } else if (nargs < 0 || nargs > MAX_FN_ARGS) {
    st = fail(c, SPAT_EINVAL,
              "spat_ctx_register_fn: '%s' has %d arguments; an extern "
              "function takes 0 to %d",
              name, nargs, MAX_FN_ARGS);
  } else {
    void *p;
    memcpy(&p, &fn, sizeof p); /* backends take data-pointer-sized fns */
    pthread_mutex_lock(&c->lock);
    int rc = add_fn(c, name, p, nargs);
    pthread_mutex_unlock(&c->lock);
    if (rc != 0) st = fail(c, SPAT_ENOMEM, "out of memory");
  }
  api_ctx_put(c);
  return st;
}

/* ---- patterns ------------------------------------------------------------ */

static source *source_new(void) {
  source *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  atomic_init(&s->refs, 1);
  s->arena = arena_new();
  s->diag = diag_new();
  if (s->arena == NULL || s->diag == NULL ||
      pthread_mutex_init(&s->lock, NULL) != 0) {
    arena_free(s->arena);
    if (s->diag != NULL) diag_free(s->diag);
    free(s);
    return NULL;
  }
  return s;
}

static void source_release(source *s) {
  if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) return;
  arena_free(s->arena);
  diag_free(s->diag);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* The chosen pattern of a loaded module; its parameters from an
 * instantiation with the given values (none: the defaults). */
static spat_status make_pattern(spat_ctx *c, source *s, const char *want,
                                const fe_define *given, int n_given,
                                spat_pattern **out) {
  fe_module *m = s->module;
  int n = fe_n_patterns(m);
  if (n == 0 && want == NULL) {
    source_release(s);
    return fail(c, SPAT_EINVAL, "the text defines no pattern");
  }
  /* by name: a pattern of the text or of a file it imports (hashed; the
   * lookup marks the module: under the source's lock, as a module's source
   * may be shared with patterns selected before) */
  pthread_mutex_lock(&s->lock);
  const char *name = want == NULL ? fe_pattern_name(m, n - 1)
                                  : fe_find_pattern(m, want);
  pthread_mutex_unlock(&s->lock);
  if (name == NULL) {
    char list[512] = "";
    size_t used = 0;
    for (int k = 0; k < n && used < sizeof list; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                               k ? ", " : "", fe_pattern_name(m, k));
    source_release(s);
    return fail(c, SPAT_EINVAL, "no pattern named '%s' (there are: %s)", want,
                n ? list : "none");
  }
  pthread_mutex_lock(&s->lock);
  diag_clear(s->diag);
  ir_program *p = fe_instantiate(s->diag, m, name, given, n_given);
  char *text = strdup(diag_text(s->diag));
  int errs = diag_n_errors(s->diag);
  pthread_mutex_unlock(&s->lock);
  if (text == NULL) {
    source_release(s);
    return fail(c, SPAT_ENOMEM, "out of memory");
  }
  if (p == NULL) {
    spat_status st = fail_diags(c, text, errs, "instantiating the pattern");
    free(text);
    source_release(s);
    return st;
  }
  set_diags(c, text);
  free(text);
  spat_pattern *pat = calloc(1, sizeof *pat);
  fe_define *defs = calloc((size_t)p->n_params + 1, sizeof *defs);
  if (pat == NULL || defs == NULL) {
    free(pat);
    free(defs);
    source_release(s);
    return fail(c, SPAT_ENOMEM, "out of memory");
  }
  for (int k = 0; k < p->n_params; k++)
    defs[k] = (fe_define){p->params[k].name, p->params[k].value};
  pat->ctx = c;
  pat->src = s;
  pat->name = name;
  pat->n_defs = p->n_params;
  pat->defs = defs;
  live_ref(&c->live);
  if (live_add(&pat->live, LIVE_PATTERN) != 0) {
    pattern_destroy(pat);
    return fail(c, SPAT_ENOMEM, "out of memory");
  }
  *out = pat;
  return SPAT_OK;
}

static spat_status parse_common(spat_ctx *c, const char *path,
                                const char *source_name, const char *text,
                                const char *want, spat_pattern **out) {
  source *s = source_new();
  if (s == NULL) return fail(c, SPAT_ENOMEM, "out of memory");
  s->module = pl_load(s->diag, s->arena, path, source_name, text);
  if (s->module == NULL) {
    spat_status st =
        fail_diags(c, diag_text(s->diag), diag_n_errors(s->diag), "parsing");
    source_release(s);
    return st;
  }
  return make_pattern(c, s, want, NULL, 0, out);
}

static spat_status parse_string(spat_ctx *c, const char *source_name,
                                const char *text, const char *pattern_name,
                                spat_pattern **out) {
  if (out == NULL)
    return fail(c, SPAT_EINVAL, "spat_pattern_parse_string: out is NULL");
  *out = NULL;
  if (text == NULL)
    return fail(c, SPAT_EINVAL, "spat_pattern_parse_string: text is NULL");
  return parse_common(c, NULL, source_name ? source_name : "<string>", text,
                      pattern_name, out);
}

spat_status spat_pattern_parse_string(spat_ctx *cc, const char *source_name,
                                      const char *text,
                                      const char *pattern_name,
                                      spat_pattern **out) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = parse_string(c, source_name, text, pattern_name, out);
  api_ctx_put(c);
  return st;
}

static spat_status parse_file(spat_ctx *c, const char *path,
                              const char *pattern_name, spat_pattern **out) {
  if (out == NULL)
    return fail(c, SPAT_EINVAL, "spat_pattern_parse_file: out is NULL");
  *out = NULL;
  if (path == NULL)
    return fail(c, SPAT_EINVAL, "spat_pattern_parse_file: path is NULL");
  const char *why = "";
  int fd = regfile_open(path, &why); /* a FIFO or device: refused, no wait */
  if (fd < 0) return fail(c, SPAT_EIO, "%s: cannot open: %s", path, why);
  close(fd);
  return parse_common(c, path, NULL, NULL, pattern_name, out);
}

spat_status spat_pattern_parse_file(spat_ctx *cc, const char *path,
                                    const char *pattern_name,
                                    spat_pattern **out) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = parse_file(c, path, pattern_name, out);
  api_ctx_put(c);
  return st;
}

static void pattern_destroy(spat_pattern *p) {
  source_release(p->src);
  free(p->defs);
  api_ctx_put(p->ctx);
  free(p);
}

void spat_pattern_free(spat_pattern *p) {
  if (live_retire(p, LIVE_PATTERN)) api_pattern_put(p);
}

const char *spat_pattern_name(const spat_pattern *pp) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return NULL;
  const char *name = p->name; /* in the source's arena */
  api_pattern_put(p);
  return name;
}

static spat_status set_param(spat_pattern *p, const char *name,
                             int64_t value) {
  if (name == NULL)
    return fail(p->ctx, SPAT_EINVAL, "spat_pattern_set_param: name is NULL");
  int found = 0;
  pthread_mutex_lock(&p->src->lock);
  for (int k = 0; k < p->n_defs && !found; k++)
    if (strcmp(p->defs[k].name, name) == 0) {
      p->defs[k].value = value;
      found = 1;
    }
  pthread_mutex_unlock(&p->src->lock);
  if (found) return SPAT_OK;
  if (p->n_defs == 0)
    return fail(p->ctx, SPAT_EINVAL,
                "pattern '%s' has no compile-time parameters (asked for '%s')",
                p->name, name);
  return fail(p->ctx, SPAT_EINVAL, "pattern '%s' has no parameter '%s'",
              p->name, name);
}

spat_status spat_pattern_set_param(spat_pattern *pp, const char *name,
                                   int64_t value) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = set_param(p, name, value);
  api_pattern_put(p);
  return st;
}

size_t spat_pattern_n_params(const spat_pattern *pp) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return 0;
  size_t n = (size_t)p->n_defs; /* fixed when the pattern is made */
  api_pattern_put(p);
  return n;
}

spat_status spat_pattern_param(const spat_pattern *pp, size_t k,
                               const char **name, int64_t *value) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = SPAT_OK;
  if (k >= (size_t)p->n_defs) {
    st = fail(p->ctx, SPAT_EINVAL,
              "spat_pattern_param: index %zu out of range (%d parameters)", k,
              p->n_defs);
  } else {
    pthread_mutex_lock(&p->src->lock);
    if (name != NULL) *name = p->defs[k].name;
    if (value != NULL) *value = p->defs[k].value;
    pthread_mutex_unlock(&p->src->lock);
  }
  api_pattern_put(p);
  return st;
}

spat_status api_lower(spat_pattern *p, const ir_program **out) {
  source *s = p->src;
  char err[ERR_LEN] = "";
  pthread_mutex_lock(&s->lock);
  diag_clear(s->diag);
  ir_program *prog = pl_lower(s->diag, s->module, p->name, p->defs,
                              p->n_defs, err, sizeof err);
  char *text = strdup(diag_text(s->diag));
  int errs = diag_n_errors(s->diag);
  pthread_mutex_unlock(&s->lock);
  spat_status st = SPAT_OK;
  if (text == NULL)
    st = fail(p->ctx, SPAT_ENOMEM, "out of memory");
  else if (prog == NULL && err[0] != '\0')
    st = fail(p->ctx, SPAT_EINTERNAL, "internal error: %s", err);
  else if (prog == NULL)
    st = fail_diags(p->ctx, text, errs, "instantiating the pattern");
  else
    set_diags(p->ctx, text);
  free(text);
  if (st == SPAT_OK) *out = prog;
  return st;
}

/* ---- compiling ----------------------------------------------------------- */

static int entry_body(void *user, const void *t, const int64_t *scalars,
                      const int32_t *const *arrays);

/* "int (*)(const spat_tensors *t, int64_t n, const int32_t *doc)" */
static char *entry_type(const ir_program *p) {
  size_t n = 64;
  for (int k = 0; k < p->n_runtime; k++) n += strlen(p->runtime[k].name) + 12;
  for (int k = 0; k < p->n_inputs; k++) n += strlen(p->inputs[k].name) + 20;
  char *s = malloc(n);
  if (s == NULL) return NULL;
  size_t used = (size_t)snprintf(s, n, "int (*)(const spat_tensors *t");
  for (int k = 0; k < p->n_runtime; k++)
    used += (size_t)snprintf(s + used, n - used, ", int64_t %s",
                             p->runtime[k].name);
  for (int k = 0; k < p->n_inputs; k++)
    used += (size_t)snprintf(s + used, n - used, ", const %s *%s",
                             p->inputs[k].is_float ? "float" : "int32_t",
                             p->inputs[k].name);
  snprintf(s + used, n - used, ")");
  return s;
}

static spat_status resolve_externs(spat_ctx *c, const ir_program *p,
                                   void **out) {
  char msg[ERR_LEN] = "";
  pthread_mutex_lock(&c->lock);
  for (int k = 0; k < p->n_externs && msg[0] == '\0'; k++) {
    const ir_extern *x = &p->externs[k];
    fn_entry *e = find_fn(c, x->name);
    if (e == NULL)
      snprintf(msg, sizeof msg,
               "pattern '%s' calls extern function '%s' (%d argument%s), "
               "which is not registered: call spat_ctx_register_fn(ctx, "
               "\"%s\", fn, %d) before spat_compile",
               p->name, x->name, x->n_args, x->n_args == 1 ? "" : "s",
               x->name, x->n_args);
    else if (e->nargs != x->n_args)
      snprintf(msg, sizeof msg,
               "extern function '%s' is declared with %d argument%s in "
               "pattern '%s' but registered with %d",
               x->name, x->n_args, x->n_args == 1 ? "" : "s", p->name,
               e->nargs);
    else
      out[k] = e->fn;
  }
  pthread_mutex_unlock(&c->lock);
  return msg[0] != '\0' ? fail(c, SPAT_EINVAL, "%s", msg) : SPAT_OK;
}

static void kernel_destroy(spat_kernel *k) {
  if (k->obj != NULL) k->be->free(k->obj);
  ffi_entry_free(k->entry);
  free(k->externs);
  free(k->input_names);
  free(k->args);
  free(k->entry_type);
  free(k->cache_problem);
  source_release(k->src);
  api_ctx_put(k->ctx);
  free(k);
}

static spat_status compile(spat_pattern *pat, const spat_compile_options *o,
                           spat_kernel **out) {
  spat_ctx *c = pat->ctx;
  if (out == NULL) return fail(c, SPAT_EINVAL, "spat_compile: out is NULL");
  *out = NULL;
  if (o == NULL) return fail(c, SPAT_EINVAL, "spat_compile: options are NULL");
  if (o->D < 1)
    return fail(c, SPAT_EINVAL, "head dimension D = %lld: must be >= 1",
                (long long)o->D);
  if (o->D > MAX_D)
    return fail(c, SPAT_EUNSUPPORTED,
                "head dimension D = %lld: at most %d is supported",
                (long long)o->D, MAX_D);
  if (o->layout != SPAT_LAYOUT_BHLD && o->layout != SPAT_LAYOUT_BLHD)
    return fail(c, SPAT_EINVAL, "unknown layout %d", (int)o->layout);
  if (o->threads < 0)
    return fail(c, SPAT_EINVAL, "threads = %d: must be >= 0 (0: all cores)",
                o->threads);
  const char *be_name = o->backend == SPAT_BACKEND_JIT      ? "jit"
                        : o->backend == SPAT_BACKEND_INTERP ? "interp"
                                                            : NULL;
  if (be_name == NULL)
    return fail(c, SPAT_EINVAL, "unknown backend %d", (int)o->backend);
  const backend *be = backend_find(be_name);
  if (be == NULL)
    return fail(c, SPAT_EUNSUPPORTED, "backend '%s' is not built in", be_name);

  source *s = pat->src;
  const ir_program *p;
  spat_status lst = api_lower(pat, &p);
  if (lst != SPAT_OK) return lst;
  char err[ERR_LEN] = "";
  if (p->n_runtime + p->n_inputs > FFI_ENTRY_MAX_ARGS)
    return fail(c, SPAT_EUNSUPPORTED,
                "pattern '%s' has %d runtime scalars and inputs; a kernel "
                "takes at most %d",
                p->name, p->n_runtime + p->n_inputs, FFI_ENTRY_MAX_ARGS);

  spat_kernel *k = calloc(1, sizeof *k);
  if (k == NULL) return fail(c, SPAT_ENOMEM, "out of memory");
  atomic_fetch_add(&s->refs, 1);
  live_ref(&c->live);
  *k = (spat_kernel){.ctx = c,
                     .src = s,
                     .prog = p,
                     .be = be,
                     .D = o->D,
                     .layout = o->layout,
                     .threads = o->threads};
  int n_args = p->n_runtime + p->n_inputs;
  k->externs = calloc((size_t)p->n_externs + 1, sizeof *k->externs);
  k->args = calloc((size_t)n_args + 1, sizeof *k->args);
  k->input_names = calloc((size_t)p->n_inputs + 1, sizeof *k->input_names);
  k->entry_type = entry_type(p);
  if (k->externs == NULL || k->args == NULL || k->input_names == NULL ||
      k->entry_type == NULL) {
    kernel_destroy(k);
    return fail(c, SPAT_ENOMEM, "out of memory");
  }
  spat_status st = resolve_externs(c, p, k->externs);
  if (st != SPAT_OK) {
    kernel_destroy(k);
    return st;
  }
  for (int a = 0; a < p->n_runtime; a++)
    k->args[a] = (spat_arg_info){p->runtime[a].name, SPAT_KIND_SCALAR,
                                 p->runtime[a].has_deflt, p->runtime[a].deflt, 0, NULL};
  for (int a = 0; a < p->n_inputs; a++) k->args[p->n_runtime + a] = api_input_info(p, a);
  for (int a = 0; a < p->n_inputs; a++) k->input_names[a] = p->inputs[a].name;
  k->shape = (args_shape){o->D,           (int)o->layout, p->n_inputs,
                         k->input_names, k->externs,     o->threads};
  k->sig = (spat_signature){p->name,        o->D,    o->layout,     o->backend,
                            (size_t)n_args, k->args, k->entry_type, 0,
                            NULL};

  k->entry = ffi_entry_new(p->n_runtime, p->n_inputs, entry_body, k);
  if (k->entry == NULL) {
    kernel_destroy(k);
    return fail(c, SPAT_ENOMEM,
                "cannot make the kernel's typed entry (libffi closure)");
  }
  /* an unusable cache (no directory, not writable): compiled as without */
  backend_cache cache = BACKEND_CACHE_OFF;
  char note[ERR_LEN] = "";
  backend_opts bo = {.D = o->D,
                     .threads = o->threads,
                     .cache = o->cache != 0,
                     .layout = (int)o->layout,
                     .externs = k->externs,
                     .cache_out = &cache,
                     .note = note,
                     .notelen = sizeof note};
  k->obj = pl_compile(p, be, &bo, err, sizeof err);
  k->sig.from_cache = cache == BACKEND_CACHE_HIT;
  if (k->obj != NULL && o->cache && (be->caps & BACKEND_CAP_CACHE) &&
      cache == BACKEND_CACHE_OFF) {
    k->cache_problem =
        strdup(note[0] ? note : "the cache cannot be used"); /* the kernel's */
    k->sig.cache_problem =
        k->cache_problem != NULL ? k->cache_problem : "out of memory";
  }
  if (k->obj == NULL) {
    kernel_destroy(k);
    return fail(c, SPAT_EUNSUPPORTED, "%s backend: %s", be->name,
                err[0] ? err : "compilation failed");
  }
  if (live_add(&k->live, LIVE_KERNEL) != 0) {
    kernel_destroy(k);
    return fail(c, SPAT_ENOMEM, "out of memory");
  }
  *out = k;
  return SPAT_OK;
}

spat_status spat_compile(spat_pattern *pp, const spat_compile_options *o,
                         spat_kernel **out) {
  spat_pattern *pat = api_pattern_get(pp);
  if (pat == NULL) return SPAT_EINVAL;
  spat_status st = compile(pat, o, out);
  api_pattern_put(pat);
  return st;
}

void spat_kernel_free(spat_kernel *k) {
  if (live_retire(k, LIVE_KERNEL)) api_kernel_put(k);
}

const spat_signature *spat_kernel_signature(const spat_kernel *kk) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return NULL;
  const spat_signature *sig = &k->sig; /* fixed at compile */
  api_kernel_put(k);
  return sig;
}

spat_fn spat_kernel_entry(const spat_kernel *kk) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return NULL;
  spat_fn f = ffi_entry_code(k->entry);
  api_kernel_put(k);
  return f;
}

/* ---- running ------------------------------------------------------------- */

/* Checks everything and runs: the one path behind run, call and the typed
 * entry. */
static spat_status run_kernel(const spat_kernel *k, const spat_tensors *t,
                              const int64_t *scalars,
                              const int32_t *const *inputs) {
  char err[ERR_LEN] = "";
  rt_args a;
  bool empty = false;
  rt_status rs =
      args_make(&k->shape, t, scalars, inputs, &a, &empty, err, sizeof err);
  if (rs == RT_OK && !empty) rs = k->be->run(k->obj, &a, err, sizeof err);
  if (rs == RT_OK) return SPAT_OK;
  return fail(k->ctx, args_status(rs), "%s", err[0] ? err : "failed");
}

static int entry_body(void *user, const void *t, const int64_t *scalars,
                      const int32_t *const *arrays) {
  spat_kernel *k = api_kernel_get(user);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st = run_kernel(k, t, scalars, arrays);
  api_kernel_put(k);
  return (int)st;
}

spat_status spat_kernel_run(const spat_kernel *kk, const spat_tensors *t,
                            ...) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  const ir_program *p = k->prog;
  int64_t scalars[FFI_ENTRY_MAX_ARGS + 1];
  const int32_t *inputs[FFI_ENTRY_MAX_ARGS + 1];
  va_list ap;
  va_start(ap, t);
  for (int a = 0; a < p->n_runtime; a++) scalars[a] = va_arg(ap, int64_t);
  for (int a = 0; a < p->n_inputs; a++)
    inputs[a] = p->inputs[a].is_float ? (const int32_t *)(const void *)va_arg(ap, const float *)
                                      : va_arg(ap, const int32_t *);
  va_end(ap);
  spat_status st = run_kernel(k, t, scalars, inputs);
  api_kernel_put(k);
  return st;
}

static const char *kind_name(spat_kind kind) { return api_kind_name(kind); }

/* The n generic arguments of a call (who: the API function) checked
 * against the signature and split into scalars and input arrays. */
static spat_status unpack_args(const spat_kernel *k, const char *who,
                               const spat_value *args, size_t n,
                               int64_t *scalars, const int32_t **inputs) {
  spat_ctx *c = k->ctx;
  const spat_signature *sig = &k->sig;
  if (n != sig->n_args)
    return fail(c, SPAT_EINVAL,
                "kernel '%s' takes %zu argument%s (%s), got %zu", sig->pattern,
                sig->n_args, sig->n_args == 1 ? "" : "s", sig->entry_type, n);
  if (n > 0 && args == NULL)
    return fail(c, SPAT_EINVAL, "%s: args is NULL", who);
  int ns = 0, ni = 0;
  for (size_t a = 0; a < n; a++) {
    if (args[a].kind != sig->args[a].kind)
      return fail(c, SPAT_EINVAL,
                  "argument %zu ('%s') of kernel '%s' is %s, got %s", a,
                  sig->args[a].name, sig->pattern, kind_name(sig->args[a].kind),
                  kind_name(args[a].kind));
    if (args[a].kind == SPAT_KIND_SCALAR)
      scalars[ns++] = args[a].scalar;
    else
      inputs[ni++] = api_value_array(&args[a]);
  }
  return SPAT_OK;
}

static spat_status kernel_call(const spat_kernel *k, const spat_tensors *t,
                               const spat_value *args, size_t n) {
  int64_t scalars[FFI_ENTRY_MAX_ARGS + 1];
  const int32_t *inputs[FFI_ENTRY_MAX_ARGS + 1];
  spat_status st =
      unpack_args(k, "spat_kernel_call", args, n, scalars, inputs);
  if (st != SPAT_OK) return st;
  return (spat_status)ffi_entry_call(k->entry, NULL, t, scalars, inputs);
}

/* The backward: the forward's checks (args_make), the gradients'
 * (args_make_grads), the empty shapes, then the backend. */
static spat_status kernel_backward(const spat_kernel *k, const spat_tensors *t,
                                   const spat_grads *g, const spat_value *args,
                                   size_t n) {
  int64_t scalars[FFI_ENTRY_MAX_ARGS + 1];
  const int32_t *inputs[FFI_ENTRY_MAX_ARGS + 1];
  spat_status sst =
      unpack_args(k, "spat_kernel_backward", args, n, scalars, inputs);
  if (sst != SPAT_OK) return sst;
  char err[ERR_LEN] = "";
  rt_args a;
  rt_grad rg;
  bool empty = false;
  rt_status rs =
      args_make(&k->shape, t, scalars, inputs, &a, &empty, err, sizeof err);
  if (rs == RT_OK && a.paged)
    rs = rt_errf(err, sizeof err, RT_EUNSUPPORTED,
                 "the backward pass does not take a paged KV cache");
  if (rs == RT_OK)
    rs = args_make_grads(&k->shape, t, g, &a, &rg, err, sizeof err);
  /* spat_grads.dinputs: one per float input in signature order; rt_grad's:
   * one per program input (NULL for the int ones) */
  float *din[FFI_ENTRY_MAX_ARGS + 1] = {NULL};
  if (rs == RT_OK && g != NULL && g->dinputs != NULL && k->prog->score) {
    for (int x = 0, fi = 0; x < k->prog->n_inputs && x < FFI_ENTRY_MAX_ARGS; x++)
      if (k->prog->inputs[x].is_float) din[x] = g->dinputs[fi++];
    rg.dinputs = din;
  }
  if (rs == RT_OK && !rt_grad_empty(&a, &rg))
    rs = k->be->backward
             ? k->be->backward(k->obj, &a, &rg, err, sizeof err)
             : rt_errf(err, sizeof err, RT_EUNSUPPORTED,
                       "the %s backend has no backward pass", k->be->name);
  if (rs == RT_OK) return SPAT_OK;
  return fail(k->ctx, args_status(rs), "%s", err[0] ? err : "failed");
}

spat_status spat_kernel_backward(const spat_kernel *kk, const spat_tensors *t,
                                 const spat_grads *g, const spat_value *args,
                                 size_t n) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st = kernel_backward(k, t, g, args, n);
  api_kernel_put(k);
  return st;
}

spat_status spat_kernel_call(const spat_kernel *kk, const spat_tensors *t,
                             const spat_value *args, size_t n) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st = kernel_call(k, t, args, n);
  api_kernel_put(k);
  return st;
}

/* ---- for the other api_*.c files (api_internal.h) ------------------------ */

const char *api_kind_name(spat_kind kind) {
  return kind == SPAT_KIND_SCALAR        ? "a runtime scalar"
         : kind == SPAT_KIND_INPUT       ? "an input array"
         : kind == SPAT_KIND_FLOAT_INPUT ? "a float input array"
                                         : "an unknown kind";
}

const int32_t *api_value_array(const spat_value *v) {
  return v->kind == SPAT_KIND_FLOAT_INPUT ? (const int32_t *)(const void *)v->finput
                                          : v->input;
}

spat_arg_info api_input_info(const ir_program *p, int k) {
  const ir_input *in = &p->inputs[k];
  return (spat_arg_info){in->name, in->is_float ? SPAT_KIND_FLOAT_INPUT : SPAT_KIND_INPUT,
                         false, 0, in->n_dims ? in->n_dims : 1, in};
}

int spat_arg_shape(const spat_arg_info *a, int64_t B, int64_t H, int64_t Hkv,
                   int64_t Lq, int64_t Lk, int64_t D, int64_t *dims) {
  if (a == NULL || a->shape == NULL || dims == NULL) return -1;
  ir_program one = {0};
  one.n_inputs = 1;
  one.inputs = (ir_input *)a->shape;
  const int64_t sz[6] = {B, H, Hkv == 0 ? H : Hkv, Lq, Lk, D};
  if (ir_input_len(&one, 0, sz) < 0) return -1;
  int nd = one.inputs->n_dims ? one.inputs->n_dims : 1;
  for (int d = 0; d < nd; d++) dims[d] = ir_input_dim(&one, 0, d, sz);
  return nd;
}

spat_status api_fail(spat_ctx *c, spat_status st, const char *fmt, ...) {
  char msg[ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fail(c, st, "%s", msg);
}

void api_keep_diags(spat_ctx *c, const diag *d) {
  set_diags(c, diag_text(d));
}

spat_status api_diag_error(spat_ctx *c, const diag *d, const char *what) {
  return fail_diags(c, diag_text(d), diag_n_errors(d), what);
}

source *api_source_new(void) {
  return source_new();
}

void api_source_release(source *s) {
  source_release(s);
}

spat_status api_make_pattern(spat_ctx *c, source *s, const char *want,
                             const fe_define *defs, int n_defs,
                             spat_pattern **out) {
  return make_pattern(c, s, want, defs, n_defs, out);
}
