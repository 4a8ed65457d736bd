/* api_aot.c: the public API's ahead-of-time objects and disk kernel cache
 * (include/spat.h): spat_emit / spat_emit_header over the compile path
 * (pipeline.h: pl_lower, pl_emit, pl_header), and spat_cache_* over the
 * cache of compiler/backends/llvm/aot.h, entries described from their key
 * text.
 *
 * In: a pattern (current parameters) and AOT options; the cache directory
 * from the environment.  Out: files; cache entries; failures as a
 * spat_status and a message in the context, never a print or an exit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define DIR_LEN 4096


/* ---- ahead-of-time objects ----------------------------------------------- */

bool spat_is_entry_name(const char *s) {
  return s != NULL && aot_is_identifier(s);
}

/* Checks the options and instantiates the pattern; fills ao. */
static spat_status aot_prepare(spat_pattern *p, const spat_aot_options *o,
                               const char *fn, const ir_program **prog,
                               aot_opts *ao) {
  spat_ctx *c = p->ctx;
  if (o == NULL) return api_fail(c, SPAT_EINVAL, "%s: options are NULL", fn);
  if (o->D < 1)
    return api_fail(c, SPAT_EINVAL, "head dimension D = %lld: must be >= 1",
                 (long long)o->D);
  if (o->layout != SPAT_LAYOUT_BHLD && o->layout != SPAT_LAYOUT_BLHD)
    return api_fail(c, SPAT_EINVAL, "unknown layout %d", (int)o->layout);
  if (o->threads < 0)
    return api_fail(c, SPAT_EINVAL, "threads = %d: must be >= 0 (0: all cores)",
                 o->threads);
  if (o->emit < SPAT_EMIT_OBJECT || o->emit > SPAT_EMIT_SHARED)
    return api_fail(c, SPAT_EINVAL, "unknown emit kind %d", (int)o->emit);
  if (o->dtype != SPAT_DTYPE_F32 && o->dtype != SPAT_DTYPE_BF16 &&
      o->dtype != SPAT_DTYPE_F16)
    return api_fail(c, SPAT_EINVAL, "unknown dtype %d", (int)o->dtype);
  const ir_program *ir;
  spat_status st = api_lower(p, &ir);
  if (st != SPAT_OK) return st;
  const char *name = o->name != NULL ? o->name : ir->name;
  if (!aot_is_identifier(name))
    return api_fail(c, SPAT_EINVAL,
                 o->name != NULL
                     ? "entry name '%s' is not a C identifier (or is a C "
                       "keyword)"
                     : "pattern name '%s' is not usable as a C function name: "
                       "give the entry a name (spatc compile --name)",
                 name);
  static const int kinds[] = {
      [SPAT_EMIT_OBJECT] = AOT_EMIT_OBJ, [SPAT_EMIT_ASM] = AOT_EMIT_ASM,
      [SPAT_EMIT_LLVM] = AOT_EMIT_LLVM, [SPAT_EMIT_SHARED] = AOT_EMIT_SHARED};
  *ao = (aot_opts){o->D,   (int)o->layout, o->threads,     o->name,
                   o->cpu, o->source,      kinds[o->emit], (int)o->dtype};
  *prog = ir;
  return SPAT_OK;
}

/* A failure of pl_emit / pl_header: SPAT_EIO when it names one of
 * the files, else what the code generator does not handle. */
static spat_status aot_failed(spat_ctx *c, const char *err, const char *path,
                              const char *hdr) {
  spat_status st = SPAT_EUNSUPPORTED;
  for (int k = 0; k < 2; k++) {
    const char *f = k ? hdr : path;
    size_t n = f != NULL ? strlen(f) : 0;
    if (n > 0 && strncmp(err, f, n) == 0 && err[n] == ':') st = SPAT_EIO;
  }
  return api_fail(c, st, "%s", err[0] ? err : "compilation failed");
}

static spat_status emit(spat_pattern *p, const spat_aot_options *o,
                        const char *path, const char *header_path) {
  if (path == NULL)
    return api_fail(p->ctx, SPAT_EINVAL, "spat_emit: path is NULL");
  const ir_program *prog;
  aot_opts ao;
  spat_status st = aot_prepare(p, o, "spat_emit", &prog, &ao);
  if (st != SPAT_OK) return st;
  char err[ERR_LEN] = "";
  if (pl_emit(prog, &ao, path, header_path, err, sizeof err) != 0)
    return aot_failed(p->ctx, err, path, header_path);
  return SPAT_OK;
}

spat_status spat_emit(spat_pattern *pp, const spat_aot_options *o,
                      const char *path, const char *header_path) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = emit(p, o, path, header_path);
  api_pattern_put(p);
  return st;
}

static spat_status emit_header(spat_pattern *p, const spat_aot_options *o,
                               const char *object_path,
                               const char *header_path) {
  if (object_path == NULL || header_path == NULL)
    return api_fail(p->ctx, SPAT_EINVAL, "spat_emit_header: %s is NULL",
                 object_path == NULL ? "object_path" : "header_path");
  const ir_program *prog;
  aot_opts ao;
  spat_status st = aot_prepare(p, o, "spat_emit_header", &prog, &ao);
  if (st != SPAT_OK) return st;
  char err[ERR_LEN] = "";
  if (pl_header(prog, &ao, object_path, header_path, err, sizeof err) != 0)
    return aot_failed(p->ctx, err, NULL, header_path);
  return SPAT_OK;
}

spat_status spat_emit_header(spat_pattern *pp, const spat_aot_options *o,
                             const char *object_path,
                             const char *header_path) {
  spat_pattern *p = api_pattern_get(pp);
  if (p == NULL) return SPAT_EINVAL;
  spat_status st = emit_header(p, o, object_path, header_path);
  api_pattern_put(p);
  return st;
}

/* ---- the disk kernel cache ----------------------------------------------- */

static spat_status cache_dir(spat_ctx *c, char *buf, size_t size) {
  char err[ERR_LEN] = "";
  if (aot_cache_dir(buf, size, err, sizeof err) != 0)
    return api_fail(c, SPAT_EIO, "%s", err[0] ? err : "no cache directory");
  return SPAT_OK;
}

spat_status spat_cache_dir(spat_ctx *cc, char *buf, size_t size) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st =
      buf == NULL || size == 0
          ? api_fail(c, SPAT_EINVAL, "spat_cache_dir: buf is NULL or empty")
          : cache_dir(c, buf, size);
  api_ctx_put(c);
  return st;
}

/* The rest of the line after "word " in the key text, into out[n]; "?" when
 * there is no such line. */
static void key_field(const char *key, const char *word, char *out,
                      size_t n) {
  size_t w = strlen(word);
  for (const char *l = key; l != NULL && *l != '\0';) {
    if (strncmp(l, word, w) == 0 && l[w] == ' ') {
      snprintf(out, n, "%.*s", (int)strcspn(l + w + 1, "\n"), l + w + 1);
      return;
    }
    l = strchr(l, '\n');
    if (l != NULL) l++;
  }
  snprintf(out, n, "?");
}

typedef struct list_job {
  spat_cache_fn fn;
  void *user;
} list_job;

static void list_one(void *user, const aot_cache_entry *e) {
  list_job *j = user;
  char pattern[512] = "?", cpu[128] = "?", dims[128] = "";
  spat_cache_entry x = {e->file, e->bytes, e->valid != 0, e->problem,
                        pattern, -1, -1, -1, cpu, e->valid ? e->key : NULL};
  if (e->valid) {
    key_field(e->key, "pattern", pattern, sizeof pattern);
    size_t len = strlen(pattern); /* "name(w = 1) =": without " =" */
    if (len >= 2 && strcmp(pattern + len - 2, " =") == 0)
      pattern[len - 2] = '\0';
    key_field(e->key, "cpu", cpu, sizeof cpu);
    key_field(e->key, "D", dims, sizeof dims);
    long long D;
    int layout, threads;
    if (sscanf(dims, "%lld layout %d threads %d", &D, &layout, &threads) == 3)
      x.D = D, x.layout = layout, x.threads = threads;
  }
  j->fn(j->user, &x);
}

static spat_status cache_list(spat_ctx *c, spat_cache_fn fn, void *user,
                              size_t *n) {
  if (n != NULL) *n = 0;
  if (fn == NULL)
    return api_fail(c, SPAT_EINVAL, "spat_cache_list: fn is NULL");
  char dir[DIR_LEN], err[ERR_LEN] = "";
  spat_status st = cache_dir(c, dir, sizeof dir);
  if (st != SPAT_OK) return st;
  list_job j = {fn, user};
  int count = aot_cache_list(dir, list_one, &j, err, sizeof err);
  if (count < 0) return api_fail(c, SPAT_EIO, "%s", err);
  if (n != NULL) *n = (size_t)count;
  return SPAT_OK;
}

spat_status spat_cache_list(spat_ctx *cc, spat_cache_fn fn, void *user,
                            size_t *n) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = cache_list(c, fn, user, n);
  api_ctx_put(c);
  return st;
}

static spat_status cache_clear(spat_ctx *c, size_t *removed) {
  if (removed != NULL) *removed = 0;
  char dir[DIR_LEN], err[ERR_LEN] = "";
  spat_status st = cache_dir(c, dir, sizeof dir);
  if (st != SPAT_OK) return st;
  int count = aot_cache_clear(dir, err, sizeof err);
  if (count < 0) return api_fail(c, SPAT_EIO, "%s", err);
  if (removed != NULL) *removed = (size_t)count;
  return SPAT_OK;
}

spat_status spat_cache_clear(spat_ctx *cc, size_t *removed) {
  spat_ctx *c = api_ctx_get(cc);
  if (c == NULL) return SPAT_EINVAL;
  spat_status st = cache_clear(c, removed);
  api_ctx_put(c);
  return st;
}
