/* spatc_run.c: `spatc run`, attention with a pattern through one backend of
 * the backend table (interp or jit): q, k, v from npy files or drawn from a
 * seed; o written as float32 [B, H, Lq, D] and, on request, the log-sum-exp
 * as float32 [B, H, Lq].  A one-line summary (sizes, backend, times) goes
 * to stderr.  JIT kernels come from the disk kernel cache (compiler/aot.h)
 * unless --no-cache; a cache that cannot be used means a plain JIT compile. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "backend.h"
#include "spatc.h"
#include "spatc_common.h"

#define DEFAULT_BACKEND "jit"

static int write_f32(const char *path, int ndim, const int64_t *shape,
                     const float *data) {
  char err[512];
  if (npy_write(path, NPY_F32, ndim, shape, data, err, sizeof err) != 0)
    return spatc_lib_error(err);
  return 0;
}

typedef struct run_opts {
  const char *out, *lse;     /* -o, --lse */
  const char *backend;
  double scale;              /* 0: 1/sqrt(D) */
  int64_t threads;
  bool verbose, explicit_backend, cache;
} run_opts;

static int run_option(void *ctx, const cli *c, int id) {
  run_opts *o = ctx;
  switch (id) {
  case OPT_VERBOSE: o->verbose = true; return 0;
  case OPT_NO_CACHE: o->cache = false; return 0;
  case OPT_OUTPUT: o->out = c->arg; return 0;
  case OPT_LSE: o->lse = c->arg; return 0;
  case OPT_BACKEND:
    o->backend = c->arg;
    o->explicit_backend = true;
    return 0;
  case OPT_THREADS: return cli_int(c, 0, 4096, &o->threads) ? 0 : SPATC_EUSAGE;
  case OPT_SCALE:
    if (!cli_float(c, &o->scale)) return SPATC_EUSAGE;
    if (o->scale == 0 || (float)o->scale == 0)
      return cli_usage_error(c, "--scale must not be 0");
    return 0;
  default: return -1;
  }
}

int spatc_run_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, OPT_Q,
      OPT_K, OPT_V, OPT_SEED, OPT_BATCH, OPT_HEADS, OPT_KVHEADS, OPT_LEN,
      OPT_LQ, OPT_LK, OPT_DIM, OPT_LAYOUT, OPT_SCALE, OPT_OUTPUT, OPT_LSE,
      OPT_BACKEND, OPT_THREADS, OPT_VERBOSE, OPT_NO_CACHE, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv,
           "FILE (--q Q.npy --k K.npy --v V.npy | --seed S --len N) "
           "[options]",
           "Runs attention with the pattern of FILE: o = softmax(scale * q "
           "k^T, masked) v,\nper batch and head.  q is [B, H, Lq, D], k and "
           "v [B, Hkv, Lk, D] (or\n[B, L, H, D] with --layout blhd), float32, "
           "C order; H a multiple of Hkv.\nWith --seed, q, k and v are drawn "
           "from a standard normal (see spatc(1)).\nWrites o as float32 "
           "[B, H, Lq, D] with -o and the log-sum-exp [B, H, Lq]\nwith --lse; "
           "a summary line goes to stderr.  JIT kernels are kept in the\n"
           "disk kernel cache (see spatc cache) unless --no-cache.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  run_opts opt = {NULL, NULL, DEFAULT_BACKEND, 0, 0, false, false, true};
  int rc = spatc_parse(&c, &sel, &sh, run_option, &opt);
  if (rc == SPATC_OK && sh.head >= 0)
    rc = cli_usage_error(&c, "--head is not an option of run");
  const backend *be = NULL;
  if (rc == SPATC_OK && !(be = backend_find(opt.backend)))
    rc = cli_usage_error(&c, "unknown backend '%s' (expected jit or interp)",
                         opt.backend);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_pat pat;
  spatc_qkv qkv;
  spatc_bound bound;
  rt_args a;
  memset(&qkv, 0, sizeof qkv);
  memset(&bound, 0, sizeof bound);
  memset(&a, 0, sizeof a);
  float *o = NULL, *lse = NULL;
  void *kernel = NULL;
  aot_loaded *cached = NULL;
  const char *cache_state = "off";
  rc = spatc_load(&pat, &sel);
  if (rc == SPATC_OK) rc = spatc_qkv_setup(&qkv, &a, &sh, &c, QKV_QKV);
  if (rc == SPATC_OK) rc = spatc_bind(&bound, pat.p, &sel, a.Lk);
  if (rc == SPATC_OK) {
    int64_t n_o = a.B * a.H * a.Lq * a.D;   /* bounded: q has as many */
    o = spatc_xmalloc((size_t)n_o * sizeof(float));
    if (opt.lse) lse = spatc_xmalloc((size_t)(a.B * a.H * a.Lq) * sizeof(float));
    if (!o || (opt.lse && !lse)) rc = SPATC_EUSER;
  }
  char err[1024] = "";
  double t_compile = 0, t_run = 0;
  if (rc == SPATC_OK) {
    a.o.data = o;
    rt_tensor_strides(&a.o, 0, a.H, a.Lq, a.D);
    a.lse = lse;
    a.lse_sh = a.Lq;
    a.lse_sb = a.H * a.Lq;
    a.scale = (float)opt.scale;
    a.runtime = bound.runtime;
    a.inputs = bound.inputs;
    a.externs = bound.externs;
    a.threads = (int)opt.threads;
    backend_opts bo = {a.D, (int)opt.threads};
    double t0 = spatc_now_ms();
    char dir[4096];
    bool have_dir = opt.cache && be == &backend_jit &&
                    aot_cache_dir(dir, sizeof dir, err, sizeof err) == 0;
    if (opt.cache && be == &backend_jit && !have_dir && opt.verbose)
      fprintf(stderr, "spatc: note: kernel cache not used: %s\n", err);
    if (have_dir) {
      aot_opts ao = {a.D, 0, (int)opt.threads, NULL, NULL, NULL, AOT_EMIT_OBJ};
      const void *desc;
      int hit = 0;
      cached = aot_cache_load(pat.p, &ao, dir, bound.externs, &desc, &hit,
                              err, sizeof err);
      cache_state = cached ? (hit ? "hit" : "miss") : "off";
      if (!cached && opt.verbose)
        fprintf(stderr, "spatc: note: kernel cache not used: %s\n", err);
    }
    if (!cached) kernel = be->compile(pat.p, &bo, err, sizeof err);
    if (!cached && !kernel && !opt.explicit_backend && be != &backend_interp) {
      /* the default backend may not handle everything (e.g. an unusual D):
       * the interpreter does */
      fprintf(stderr, "spatc: note: %s: %s; using interp\n", be->name, err);
      be = &backend_interp;
      kernel = be->compile(pat.p, &bo, err, sizeof err);
    }
    t_compile = spatc_now_ms() - t0;
    if (!kernel && !cached) rc = spatc_lib_error(err);
  }
  if (rc == SPATC_OK) {
    double t0 = spatc_now_ms();
    rt_status st = cached ? aot_run_args(aot_loaded_desc(cached), &a, err,
                                         sizeof err)
                          : be->run(kernel, &a, err, sizeof err);
    t_run = spatc_now_ms() - t0;
    if (st != RT_OK) rc = spatc_lib_error(err);
  }
  if (rc == SPATC_OK) {
    double pairs = (double)a.B * (double)a.H * (double)a.Lq;
    fprintf(stderr,
            "spatc: run %s: B=%" PRId64 " H=%" PRId64 " Hkv=%" PRId64
            " Lq=%" PRId64 " Lk=%" PRId64 " D=%" PRId64
            " backend=%s cache=%s compile %.2f ms run %.2f ms\n",
            spatc_pattern_title(pat.p, bound.runtime), a.B, a.H, a.Hkv, a.Lq, a.Lk, a.D,
            be->name, cache_state, t_compile, t_run);
    if (opt.verbose)
      fprintf(stderr, "spatc: %.0f query rows, %.3f us per row\n", pairs,
              pairs > 0 ? t_run * 1e3 / pairs : 0.0);
    int64_t shape[4] = {a.B, a.H, a.Lq, a.D};
    if (opt.out) rc = write_f32(opt.out, 4, shape, o);
    if (rc == SPATC_OK && opt.lse) rc = write_f32(opt.lse, 3, shape, lse);
  }
  if (kernel) be->free(kernel);
  aot_cache_free(cached);
  free(o);
  free(lse);
  spatc_bound_free(&bound);
  spatc_qkv_free(&qkv);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
