/* api_query.c: the public API's questions about patterns (include/spat.h):
 * modules (every pattern of a text, selecting one with parameter values),
 * a pattern's description before compiling (arguments, externs, topk), the
 * mask a kernel applies, and the explanation of its tile plan.
 *
 * In: modules, patterns and kernels made by api.c (api_internal.h), sizes
 * and arguments; texts and patterns go through the compile path
 * (pipeline.h: pl_load, pl_lower), as for a compile.  Out: descriptions in the pattern's arena, mask rows and
 * counts from the reference interpreter (interp_mask_rows), explanation text
 * (an_explain); every failure as a spat_status and a message in the
 * context, never a print or an exit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "api_internal.h"
#include "analyze.h"
#include "interp.h"
#include "kernel_rt.h"
#include "regfile.h"

#define MAX_ARGS 64 /* a kernel's scalars and inputs (ffi_call.h) */

struct spat_module {
  live_obj live; /* live.h */
  spat_ctx *ctx; /* a reference */
  source *src;   /* one reference */
  /* per pattern of the main text: its compile-time parameters (arena) */
  const spat_param_decl **params;
  size_t *n_params;
};

static void module_destroy(spat_module *m) {
  api_source_release(m->src);
  api_ctx_put(m->ctx);
  free(m);
}

static spat_module *module_get(const spat_module *m) {
  return (spat_module *)live_acquire(m, LIVE_MODULE);
}

static void module_put(spat_module *m) {
  if (live_release(&m->live)) module_destroy(m);
}

/* The parameter lists of spat_module_pattern, made once at load (so that a
 * const module is only read). */
static bool module_params(spat_module *m) {
  fe_module *fm = m->src->module;
  int n = fe_n_patterns(fm);
  m->params = arena_alloc(m->src->arena, sizeof *m->params * (size_t)(n + 1));
  m->n_params = arena_alloc(m->src->arena, sizeof *m->n_params * (size_t)(n + 1));
  if (m->params == NULL || m->n_params == NULL) return false;
  for (int k = 0; k < n; k++) {
    bool dflt;
    size_t np = 0;
    while (fe_pattern_param(fm, k, (int)np, &dflt)) np++;
    spat_param_decl *v = arena_alloc(m->src->arena, sizeof *v * (np + 1));
    if (v == NULL) return false;
    for (size_t q = 0; q < np; q++) {
      v[q].name = fe_pattern_param(fm, k, (int)q, &dflt);
      v[q].has_default = dflt;
    }
    m->params[k] = v;
    m->n_params[k] = np;
  }
  return true;
}


/* ---- modules ------------------------------------------------------------- */

static spat_status module_load(spat_ctx *c, const char *path,
                               const char *source_name, const char *text,
                               spat_module **out) {
  source *s = api_source_new();
  spat_module *m = calloc(1, sizeof *m);
  if (s == NULL || m == NULL) {
    api_source_release(s);
    free(m);
    return api_fail(c, SPAT_ENOMEM, "out of memory");
  }
  s->module = pl_load(s->diag, s->arena, path, source_name, text);
  if (s->module == NULL) {
    spat_status st = api_diag_error(c, s->diag, "parsing");
    api_source_release(s);
    free(m);
    return st;
  }
  api_keep_diags(c, s->diag);
  m->ctx = c;
  m->src = s;
  live_ref(&c->live);
  if (!module_params(m) || live_add(&m->live, LIVE_MODULE) != 0) {
    module_destroy(m);
    return api_fail(c, SPAT_ENOMEM, "out of memory");
  }
  *out = m;
  return SPAT_OK;
}

static spat_status module_parse_string(spat_ctx *c, const char *source_name,
                                       const char *text, spat_module **out) {
  if (out == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_parse_string: out is NULL");
  *out = NULL;
  if (text == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_parse_string: text is NULL");
  return module_load(c, NULL, source_name ? source_name : "<string>", text,
                     out);
}

spat_status spat_module_parse_string(spat_ctx *cc, const char *source_name,
                                     const char *text, spat_module **out) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = module_parse_string(c, source_name, text, out);
  api_ctx_put(c);
  return st;
}

static spat_status module_parse_file(spat_ctx *c, const char *path,
                                     spat_module **out) {
  if (out == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_parse_file: out is NULL");
  *out = NULL;
  if (path == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_parse_file: path is NULL");
  const char *why = "";
  int fd = regfile_open(path, &why); /* a FIFO or device: refused, no wait */
  if (fd < 0) return api_fail(c, SPAT_EIO, "%s: cannot open: %s", path, why);
  close(fd);
  return module_load(c, path, NULL, NULL, out);
}

spat_status spat_module_parse_file(spat_ctx *cc, const char *path,
                                   spat_module **out) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = module_parse_file(c, path, out);
  api_ctx_put(c);
  return st;
}

void spat_module_free(spat_module *m) {
  if (live_retire(m, LIVE_MODULE)) module_put(m);
}

/* The module's patterns are fixed when it is loaded. */
size_t spat_module_n_patterns(const spat_module *mm) {
  spat_module *m = module_get(mm);
  if (m == NULL) return 0;
  size_t n = (size_t)fe_n_patterns(m->src->module);
  module_put(m);
  return n;
}

static spat_status module_pattern(const spat_module *m, size_t k,
                                  spat_pattern_decl *out) {
  if (out == NULL)
    return api_fail(m->ctx, SPAT_EINVAL, "spat_module_pattern: out is NULL");
  size_t n = spat_module_n_patterns(m);
  if (k >= n)
    return api_fail(m->ctx, SPAT_EINVAL,
                 "spat_module_pattern: index %zu out of range (%zu pattern%s)",
                 k, n, n == 1 ? "" : "s");
  bool needs = false;
  for (size_t q = 0; q < m->n_params[k]; q++) needs |= !m->params[k][q].has_default;
  *out = (spat_pattern_decl){fe_pattern_name(m->src->module, (int)k),
                             fe_pattern_signature(m->src->module, (int)k),
                             needs, m->n_params[k], m->params[k]};
  return SPAT_OK;
}

spat_status spat_module_pattern(const spat_module *mm, size_t k,
                                spat_pattern_decl *out) {
  spat_module *m = module_get(mm);
  if (m == NULL) return SPAT_EINVAL;
  spat_status st = module_pattern(m, k, out);
  module_put(m);
  return st;
}

static spat_status module_select(spat_module *m, const char *name,
                                 const spat_param *params, size_t n_params,
                                 spat_pattern **out) {
  spat_ctx *c = m->ctx;
  if (out == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_select: out is NULL");
  *out = NULL;
  if (n_params > 0 && params == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_module_select: params is NULL");
  if (n_params > 4096)
    return api_fail(c, SPAT_EINVAL, "spat_module_select: %zu parameter values",
                 n_params);
  fe_define *defs = calloc(n_params + 1, sizeof *defs);
  if (defs == NULL) return api_fail(c, SPAT_ENOMEM, "out of memory");
  for (size_t k = 0; k < n_params; k++) {
    if (params[k].name == NULL) {
      free(defs);
      return api_fail(c, SPAT_EINVAL, "spat_module_select: params[%zu].name is "
                   "NULL", k);
    }
    defs[k] = (fe_define){params[k].name, params[k].value};
  }
  atomic_fetch_add(&m->src->refs, 1); /* the pattern's */
  spat_status st =
      api_make_pattern(c, m->src, name, defs, (int)n_params, out);
  free(defs);
  return st;
}

spat_status spat_module_select(spat_module *mm, const char *name,
                               const spat_param *params, size_t n_params,
                               spat_pattern **out) {
  spat_module *m = module_get(mm);
  if (m == NULL) return SPAT_EINVAL;
  spat_status st = module_select(m, name, params, n_params, out);
  module_put(m);
  return st;
}

/* ---- describing a pattern ------------------------------------------------ */

static spat_status describe(spat_pattern *p, spat_pattern_info *out) {
  if (out == NULL)
    return api_fail(p->ctx, SPAT_EINVAL,
                     "spat_pattern_describe: out is NULL");
  const ir_program *prog;
  spat_status st = api_lower(p, &prog);
  if (st != SPAT_OK) return st;
  arena *a = p->src->arena;
  size_t n_args = (size_t)prog->n_runtime + (size_t)prog->n_inputs;
  pthread_mutex_lock(&p->src->lock); /* the arena */
  spat_arg_info *args = arena_alloc(a, (n_args + 1) * sizeof *args);
  spat_extern_info *ext =
      arena_alloc(a, ((size_t)prog->n_externs + 1) * sizeof *ext);
  pthread_mutex_unlock(&p->src->lock);
  if (args == NULL || ext == NULL)
    return api_fail(p->ctx, SPAT_ENOMEM, "out of memory");
  for (int k = 0; k < prog->n_runtime; k++)
    args[k] = (spat_arg_info){prog->runtime[k].name, SPAT_KIND_SCALAR,
                              prog->runtime[k].has_deflt,
                              prog->runtime[k].deflt, 0, NULL};
  for (int k = 0; k < prog->n_inputs; k++) args[prog->n_runtime + k] = api_input_info(prog, k);
  for (int k = 0; k < prog->n_externs; k++)
    ext[k] = (spat_extern_info){prog->externs[k].name,
                                prog->externs[k].n_args};
  *out = (spat_pattern_info){prog->name,
                             n_args,
                             args,
                             (size_t)prog->n_externs,
                             ext,
                             ir_is_data_dependent(prog),
                             prog->top_left};
  return SPAT_OK;
}

spat_status spat_pattern_describe(spat_pattern *pp, spat_pattern_info *out) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = describe(p, out);
  api_pattern_put(p);
  return st;
}

/* ---- masks --------------------------------------------------------------- */

static const char *kind_name(spat_kind kind) { return api_kind_name(kind); }

/* Checks a mask query and makes its rt_args (scalars and inputs into the
 * caller's arrays, which a points to). */
static spat_status mask_args(const spat_kernel *k, const char *fn,
                             const spat_tensors *t, const spat_value *args,
                             size_t n_args, int64_t b, int64_t h, int64_t r0,
                             int64_t n_rows, const void *out,
                             int64_t *scalars, const int32_t **inputs,
                             rt_args *a) {
  spat_ctx *c = k->ctx;
  const spat_signature *sig = &k->sig;
  if (t == NULL) return api_fail(c, SPAT_EINVAL, "%s: tensors are NULL", fn);
  if (n_rows > 0 && out == NULL)
    return api_fail(c, SPAT_EINVAL, "%s: out is NULL", fn);
  if (n_args != sig->n_args)
    return api_fail(c, SPAT_EINVAL,
                 "kernel '%s' takes %zu argument%s (%s), got %zu",
                 sig->pattern, sig->n_args, sig->n_args == 1 ? "" : "s",
                 sig->entry_type, n_args);
  if (n_args > 0 && args == NULL)
    return api_fail(c, SPAT_EINVAL, "%s: args is NULL", fn);
  int ns = 0, ni = 0;
  for (size_t x = 0; x < n_args; x++) {
    if (args[x].kind != sig->args[x].kind)
      return api_fail(c, SPAT_EINVAL,
                   "argument %zu ('%s') of kernel '%s' is %s, got %s", x,
                   sig->args[x].name, sig->pattern,
                   kind_name(sig->args[x].kind), kind_name(args[x].kind));
    if (args[x].kind == SPAT_KIND_SCALAR)
      scalars[ns++] = args[x].scalar;
    else
      inputs[ni++] = api_value_array(&args[x]);
  }
  bool topk = ir_is_data_dependent(k->prog);
  bool route = ir_has_op(k->prog->root, IR_ROUTE);
  if ((topk || route) && (t->q == NULL || t->k == NULL))
    return api_fail(c, SPAT_EINVAL,
                 "%s: pattern '%s' uses %s: its mask needs q and k", fn,
                 sig->pattern, topk ? "topk" : "route");
  /* v and o are not read, nor q and k without topk or route: stand-ins
   * pass the checks of a run */
  if (t->paged)
    return api_fail(c, SPAT_EUNSUPPORTED,
                    "%s: masks of a paged KV cache are not supported (give "
                    "the sequence's sizes, dense)", fn);
  static float none[1];
  spat_tensors u = *t;
  u.v = none;
  u.o = none;
  u.lse = NULL;
  u.scale = 0;
  if (u.q == NULL) u.q = none;
  if (u.k == NULL) u.k = none;
  char err[ERR_LEN] = "";
  bool empty;
  rt_status rs =
      args_make(&k->shape, &u, scalars, inputs, a, &empty, err, sizeof err);
  if (rs != RT_OK) return api_fail(c, args_status(rs), "%s: %s", fn, err);
  if (b < 0 || b >= a->B)
    return api_fail(c, SPAT_EINVAL, "%s: batch %lld out of range [0, %lld)", fn,
                 (long long)b, (long long)a->B);
  if (h < 0 || h >= a->H)
    return api_fail(c, SPAT_EINVAL, "%s: head %lld out of range [0, %lld)", fn,
                 (long long)h, (long long)a->H);
  if (r0 < 0 || n_rows < 0 || r0 > a->Lq || n_rows > a->Lq - r0)
    return api_fail(c, SPAT_EINVAL,
                 "%s: rows [%lld, %lld + %lld) out of range [0, %lld)", fn,
                 (long long)r0, (long long)r0, (long long)n_rows,
                 (long long)a->Lq);
  a->threads = 1;
  return SPAT_OK;
}

/* Rows [r0, r0 + n) into out[n * Lk]. */
static spat_status mask_rows(const spat_kernel *k, const rt_args *a, int64_t b,
                             int64_t h, int64_t r0, int64_t n, uint8_t *out) {
  if (n == 0 || a->Lk == 0) return SPAT_OK;
  char err[ERR_LEN] = "";
  rt_status rs =
      interp_mask_rows(k->prog, a, b, h, r0, n, out, err, sizeof err);
  if (rs == RT_OK) return SPAT_OK;
  return api_fail(k->ctx, args_status(rs), "%s",
                  err[0] ? err : "mask failed");
}

static spat_status kernel_mask(const spat_kernel *k, const spat_tensors *t,
                               const spat_value *args, size_t n_args,
                               int64_t b, int64_t h, int64_t r0,
                               int64_t n_rows, uint8_t *out) {
  int64_t scalars[MAX_ARGS + 1];
  const int32_t *inputs[MAX_ARGS + 1];
  rt_args a;
  spat_status st = mask_args(k, "spat_kernel_mask", t, args, n_args, b, h, r0,
                             n_rows, out, scalars, inputs, &a);
  if (st != SPAT_OK) return st;
  return mask_rows(k, &a, b, h, r0, n_rows, out);
}

spat_status spat_kernel_mask(const spat_kernel *kk, const spat_tensors *t,
                             const spat_value *args, size_t n_args, int64_t b,
                             int64_t h, int64_t r0, int64_t n_rows,
                             uint8_t *out) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st = kernel_mask(k, t, args, n_args, b, h, r0, n_rows, out);
  api_kernel_put(k);
  return st;
}

static spat_status kernel_mask_count(const spat_kernel *k,
                                     const spat_tensors *t,
                                     const spat_value *args, size_t n_args,
                                     int64_t b, int64_t h, int64_t r0,
                                     int64_t n_rows, int64_t *counts) {
  int64_t scalars[MAX_ARGS + 1];
  const int32_t *inputs[MAX_ARGS + 1];
  rt_args a;
  spat_status st = mask_args(k, "spat_kernel_mask_count", t, args, n_args, b,
                             h, r0, n_rows, counts, scalars, inputs, &a);
  if (st != SPAT_OK) return st;
  if (a.Lk == 0) {
    for (int64_t x = 0; x < n_rows; x++) counts[x] = 0;
    return SPAT_OK;
  }
  /* rows in chunks of about 1 MiB (at least one row) */
  int64_t chunk = ((int64_t)1 << 20) / a.Lk;
  chunk = chunk < 1 ? 1 : chunk > 64 ? 64 : chunk;
  uint8_t *buf = malloc((size_t)(chunk * a.Lk));
  if (buf == NULL) return api_fail(k->ctx, SPAT_ENOMEM, "out of memory");
  for (int64_t x = 0; x < n_rows && st == SPAT_OK; x += chunk) {
    int64_t n = n_rows - x < chunk ? n_rows - x : chunk;
    st = mask_rows(k, &a, b, h, r0 + x, n, buf);
    for (int64_t y = 0; y < n && st == SPAT_OK; y++) {
      int64_t c = 0;
      for (int64_t j = 0; j < a.Lk; j++) c += buf[y * a.Lk + j] != 0;
      counts[x + y] = c;
    }
  }
  free(buf);
  return st;
}

spat_status spat_kernel_mask_count(const spat_kernel *kk,
                                   const spat_tensors *t,
                                   const spat_value *args, size_t n_args,
                                   int64_t b, int64_t h, int64_t r0,
                                   int64_t n_rows, int64_t *counts) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st =
      kernel_mask_count(k, t, args, n_args, b, h, r0, n_rows, counts);
  api_kernel_put(k);
  return st;
}

/* ---- the tile plan ------------------------------------------------------- */


static spat_status kernel_tiles(const spat_kernel *k, const spat_tensors *t,
                                const spat_value *args, size_t n_args,
                                int64_t b, int64_t h, int64_t bq, int64_t bk,
                                uint8_t *out) {
  int64_t scalars[MAX_ARGS + 1];
  const int32_t *inputs[MAX_ARGS + 1];
  rt_args a;
  if (bq == 0) bq = KR_BQ; /* the JIT's tiles */
  if (bk == 0) bk = KR_BK;
  if (bq < 0 || bk < 0)
    return api_fail(k->ctx, SPAT_EINVAL,
                    "spat_kernel_tiles: tiles %lld x %lld (>= 1, or 0)",
                    (long long)bq, (long long)bk);
  /* the plan reads no tensor: stand-ins for q and k, also with topk */
  static float none[1];
  spat_tensors u;
  if (t != NULL) {
    u = *t;
    if (u.q == NULL) u.q = none;
    if (u.k == NULL) u.k = none;
  }
  spat_status st = mask_args(k, "spat_kernel_tiles", t ? &u : NULL, args,
                             n_args, b, h, 0, 0, out, scalars, inputs, &a);
  if (st != SPAT_OK) return st;
  if (out == NULL)
    return api_fail(k->ctx, SPAT_EINVAL, "spat_kernel_tiles: out is NULL");
  int64_t nqt = (a.Lq + bq - 1) / bq, nkt = (a.Lk + bk - 1) / bk;
  if (nqt == 0 || nkt == 0) return SPAT_OK;
  char err[ERR_LEN] = "";
  int64_t *plan = an_build(k->prog, err, sizeof err);
  if (plan == NULL) return api_fail(k->ctx, SPAT_ENOMEM, "%s", err);
  int64_t cap = plan_max_spans(plan);
  plan_span *sp = malloc(sizeof *sp * (size_t)(cap + 1));
  int64_t *kt = malloc(sizeof *kt * (size_t)nkt);
  if (sp == NULL || kt == NULL) {
    free(plan), free(sp), free(kt);
    return api_fail(k->ctx, SPAT_ENOMEM, "out of memory");
  }
  plan_env env = {.h = h, .H = a.H, .Lq = a.Lq, .Lk = a.Lk,
                  .runtime = a.runtime, .inputs = a.inputs};
  for (int64_t q = 0; q < nqt && st == SPAT_OK; q++) {
    int64_t r0 = q * bq, r1 = r0 + bq < a.Lq ? r0 + bq : a.Lq;
    if (an_tile_classes(plan, &env, r0, r1, bk, sp, cap, kt, err, sizeof err) < 0)
      st = api_fail(k->ctx, SPAT_ERANGE, "%s", err);
    for (int64_t x = 0; x < nkt && st == SPAT_OK; x++)
      out[q * nkt + x] = kt[x] == 2   ? SPAT_TILE_FULL
                         : kt[x] == 1 ? SPAT_TILE_PARTIAL
                                      : SPAT_TILE_SKIPPED;
  }
  free(plan), free(sp), free(kt);
  return st;
}

spat_status spat_kernel_tiles(const spat_kernel *kk, const spat_tensors *t,
                              const spat_value *args, size_t n_args, int64_t b,
                              int64_t h, int64_t bq, int64_t bk, uint8_t *out) {
  spat_kernel *k = api_kernel_get(kk);
  if (k == NULL) return SPAT_EINVAL;
  spat_status st = kernel_tiles(k, t, args, n_args, b, h, bq, bk, out);
  api_kernel_put(k);
  return st;
}

/* ---- explaining ---------------------------------------------------------- */

static spat_status explain(spat_pattern *p, const spat_explain_options *o,
                           const int64_t *runtime, size_t n_runtime,
                           char **text) {
  spat_ctx *c = p->ctx;
  if (text == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_pattern_explain: text is NULL");
  *text = NULL;
  if (o == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_pattern_explain: options are NULL");
  if (o->H < 1 || o->Lq < 0 || o->Lk < 0)
    return api_fail(c, SPAT_EINVAL,
                 "spat_pattern_explain: sizes H = %lld, Lq = %lld, Lk = %lld "
                 "(H >= 1, Lq and Lk >= 0)",
                 (long long)o->H, (long long)o->Lq, (long long)o->Lk);
  if (o->bq < 1 || o->bk < 1)
    return api_fail(c, SPAT_EINVAL,
                 "spat_pattern_explain: tiles %lld x %lld (both >= 1)",
                 (long long)o->bq, (long long)o->bk);
  if (o->H > ((int64_t)1 << 20) || o->Lq > ((int64_t)1 << 40) ||
      o->Lk > ((int64_t)1 << 40))
    return api_fail(c, SPAT_ERANGE,
                 "spat_pattern_explain: sizes H = %lld, Lq = %lld, Lk = %lld "
                 "are too large",
                 (long long)o->H, (long long)o->Lq, (long long)o->Lk);
  const ir_program *prog;
  spat_status st = api_lower(p, &prog);
  if (st != SPAT_OK) return st;
  if (n_runtime != (size_t)prog->n_runtime)
    return api_fail(c, SPAT_EINVAL,
                 "pattern '%s' has %d runtime scalar%s, got %zu", prog->name,
                 prog->n_runtime, prog->n_runtime == 1 ? "" : "s", n_runtime);
  if (n_runtime > 0 && runtime == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_pattern_explain: runtime is NULL");
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) return api_fail(c, SPAT_ENOMEM, "out of memory");
  char err[ERR_LEN] = "";
  int rc = an_explain(f, prog, o->H, o->Lq, o->Lk, o->bq, o->bk, runtime, err,
                      sizeof err);
  if (fclose(f) != 0 && rc == 0) {
    rc = -1;
    snprintf(err, sizeof err, "out of memory");
  }
  if (rc != 0) {
    free(buf);
    return api_fail(c,
                     strcmp(err, "out of memory") == 0 ? SPAT_ENOMEM
                                                       : SPAT_ERANGE,
                     "%s", err[0] ? err : "explaining failed");
  }
  *text = buf;
  return SPAT_OK;
}

spat_status spat_pattern_explain(spat_pattern *pp,
                                 const spat_explain_options *o,
                                 const int64_t *runtime, size_t n_runtime,
                                 char **text) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = explain(p, o, runtime, n_runtime, text);
  api_pattern_put(p);
  return st;
}
