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
  const char *out = NULL, *lse_path = NULL, *bname = DEFAULT_BACKEND;
  double scale = 0;
  int64_t threads = 0;
  bool verbose = false, explicit_backend = false, use_cache = true;
  int rc = SPATC_OK;
  for (int id; rc == SPATC_OK && (id = cli_next(&c)) != CLI_END;) {
    int took = sel_option(&sel, &c, id);
    if (!took) took = shape_option(&sh, &c, id);
    if (took < 0) {
      rc = SPATC_EUSAGE;
      break;
    }
    if (took) continue;
    switch (id) {
    case CLI_ERR: rc = SPATC_EUSAGE; break;
    case OPT_HELP: cli_help(&c, stdout); sel_free(&sel); return SPATC_OK;
    case OPT_VERBOSE: verbose = true; break;
    case OPT_NO_CACHE: use_cache = false; break;
    case OPT_OUTPUT: out = c.arg; break;
    case OPT_LSE: lse_path = c.arg; break;
    case OPT_BACKEND: bname = c.arg; explicit_backend = true; break;
    case OPT_THREADS:
      if (!cli_int(&c, 0, 4096, &threads)) rc = SPATC_EUSAGE;
      break;
    case OPT_SCALE:
      if (!cli_float(&c, &scale)) rc = SPATC_EUSAGE;
      else if (scale == 0 || (float)scale == 0)
        rc = cli_usage_error(&c, "--scale must not be 0");
      break;
    case CLI_POS:
      if (sel.file)
        rc = cli_usage_error(&c, "one FILE only ('%s', then '%s')", sel.file,
                             c.arg);
      sel.file = c.arg;
      break;
    default: rc = cli_usage_error(&c, "unexpected option '%s'", c.spelled);
    }
  }
  if (rc == SPATC_OK && !sel.file) rc = cli_usage_error(&c, "no input file");
  if (rc == SPATC_OK && sh.head >= 0)
    rc = cli_usage_error(&c, "--head is not an option of run");
  const backend *be = NULL;
  if (rc == SPATC_OK && !(be = backend_find(bname)))
    rc = cli_usage_error(&c, "unknown backend '%s' (expected jit or interp)",
                         bname);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc;
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
    if (lse_path) lse = spatc_xmalloc((size_t)(a.B * a.H * a.Lq) * sizeof(float));
    if (!o || (lse_path && !lse)) rc = SPATC_EUSER;
  }
  char err[1024] = "";
  double t_compile = 0, t_run = 0;
  if (rc == SPATC_OK) {
    a.o.data = o;
    rt_tensor_strides(&a.o, 0, a.H, a.Lq, a.D);
    a.lse = lse;
    a.lse_sh = a.Lq;
    a.lse_sb = a.H * a.Lq;
    a.scale = (float)scale;
    a.runtime = bound.runtime;
    a.inputs = bound.inputs;
    a.externs = bound.externs;
    a.threads = (int)threads;
    backend_opts bo = {a.D, (int)threads};
    double t0 = spatc_now_ms();
    char dir[4096];
    bool have_dir = use_cache && be == &backend_jit &&
                    aot_cache_dir(dir, sizeof dir, err, sizeof err) == 0;
    if (use_cache && be == &backend_jit && !have_dir && verbose)
      fprintf(stderr, "spatc: note: kernel cache not used: %s\n", err);
    if (have_dir) {
      aot_opts ao = {a.D, 0, (int)threads, NULL, NULL, NULL, AOT_EMIT_OBJ};
      const void *desc;
      int hit = 0;
      cached = aot_cache_load(pat.p, &ao, dir, bound.externs, &desc, &hit,
                              err, sizeof err);
      cache_state = cached ? (hit ? "hit" : "miss") : "off";
      if (!cached && verbose)
        fprintf(stderr, "spatc: note: kernel cache not used: %s\n", err);
    }
    if (!cached) kernel = be->compile(pat.p, &bo, err, sizeof err);
    if (!cached && !kernel && !explicit_backend && be != &backend_interp) {
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
            spatc_pattern_title(pat.p), a.B, a.H, a.Hkv, a.Lq, a.Lk, a.D,
            be->name, cache_state, t_compile, t_run);
    if (verbose)
      fprintf(stderr, "spatc: %.0f query rows, %.3f us per row\n", pairs,
              pairs > 0 ? t_run * 1e3 / pairs : 0.0);
    int64_t shape[4] = {a.B, a.H, a.Lq, a.D};
    if (out) rc = write_f32(out, 4, shape, o);
    if (rc == SPATC_OK && lse_path) rc = write_f32(lse_path, 3, shape, lse);
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
