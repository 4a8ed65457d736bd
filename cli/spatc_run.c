/* spatc_run.c: `spatc run`, attention with a pattern through one backend
 * (spat_compile with SPAT_BACKEND_JIT or _INTERP): q, k, v from npy files
 * or drawn from a seed; o written as float32 [B, H, Lq, D] and, on request,
 * the log-sum-exp as float32 [B, H, Lq].  A one-line summary (sizes,
 * backend, times) goes to stderr.  JIT kernels come from the disk kernel
 * cache (spat_compile's .cache) unless --no-cache; a cache that cannot be
 * used means a plain JIT compile.  With --grad, also the backward pass
 * (spat_kernel_backward) for dL/do from --do (shaped and laid out as q's
 * files, with H and Lq) or drawn from the seed (stream 3), dlse zero;
 * --dq, --dk, --dv write the gradients as float32 [B, H, Lq, D] and
 * [B, Hkv, Lk, D]. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

#define DEFAULT_BACKEND "jit"

/* The backends by name. */
static const struct {
  const char *name;
  spat_backend id;
} backends[] = {{"jit", SPAT_BACKEND_JIT}, {"interp", SPAT_BACKEND_INTERP}};

static const char *backend_name(spat_backend id) {
  for (size_t k = 0; k < sizeof backends / sizeof backends[0]; k++)
    if (backends[k].id == id) return backends[k].name;
  return "?";
}

/* A compile failure's message without the API's "jit backend: " prefix
 * (the summary names the backend). */
static const char *backend_message(const char *msg, spat_backend id) {
  size_t n = strlen(backend_name(id));
  if (strncmp(msg, backend_name(id), n) == 0 &&
      strncmp(msg + n, " backend: ", 10) == 0)
    return msg + n + 10;
  return msg;
}

/* o[B, L, H, D] into [B, H, L, D]. */
static void to_bhld(float *dst, const float *src, int64_t B, int64_t H,
                    int64_t L, int64_t D) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t l = 0; l < L; l++)
        memcpy(dst + ((b * H + h) * L + l) * D, src + ((b * L + l) * H + h) * D,
               sizeof(float) * (size_t)D);
}

static int write_f32(const char *path, int ndim, const int64_t *shape,
                     const float *data) {
  char err[512];
  if (npy_write(path, NPY_F32, ndim, shape, data, err, sizeof err) != 0)
    return spatc_lib_error(err);
  return 0;
}

/* A paged KV cache from files: q, the k and v pools, the tables. */
typedef struct paged {
  npy_array f[5];            /* q, k, v, page table, sequence lengths */
  spat_paged_kv kv;
} paged;

static int read_i32(const char *path, int ndim, npy_array *out) {
  char err[512];
  memset(out, 0, sizeof *out);
  int rc = spatc_check_file(path);
  if (rc) return rc;
  if (npy_read(path, out, err, sizeof err) != 0) return spatc_lib_error(err);
  if (out->dtype != NPY_I32 || out->ndim != ndim)
    return spatc_error("%s: must be int32 ('<i4') with %d dimension%s", path,
                       ndim, ndim == 1 ? "" : "s");
  return 0;
}

/* The sizes come from the files: q [B, H, Lq, D], pools [n_pages,
 * page_size, Hkv, D], page table [B, max_pages], lengths [B]; Lk is the
 * longest sequence (the library checks the tables). */
static int paged_setup(paged *p, spatc_args *a, const spatc_shape *s,
                       const cli *c, const char *pt, const char *sl) {
  if (!s->q || !s->k || !s->v || s->seeded || s->layout != SPAT_LAYOUT_BHLD)
    return cli_usage_error(c, "a paged KV cache needs --q, --k and --v files "
                              "(layout bhld)");
  int rc;
  if ((rc = spatc_read_f32("q", s->q, 4, &p->f[0])) ||
      (rc = spatc_read_f32("k", s->k, 4, &p->f[1])) ||
      (rc = spatc_read_f32("v", s->v, 4, &p->f[2])) ||
      (rc = read_i32(pt, 2, &p->f[3])) || (rc = read_i32(sl, 1, &p->f[4])))
    return rc;
  const int64_t *q = p->f[0].shape, *k = p->f[1].shape;
  for (int d = 0; d < 4; d++)
    if (p->f[2].shape[d] != k[d])
      return spatc_error("%s: the v pool's shape differs from the k pool's",
                         s->v);
  if (k[3] != q[3])
    return spatc_error("%s: D = %" PRId64 " differs from q's %" PRId64, s->k,
                       k[3], q[3]);
  if (p->f[3].shape[0] != q[0] || p->f[4].shape[0] != q[0])
    return spatc_error("%s, %s: %" PRId64 " sequences expected (q's B)", pt,
                       sl, q[0]);
  a->B = q[0], a->H = q[1], a->Lq = q[2], a->D = q[3], a->Hkv = k[2];
  a->Lk = 0;
  const int32_t *lens = p->f[4].data;
  for (int64_t b = 0; b < a->B; b++)
    if (lens[b] > a->Lk) a->Lk = lens[b];
  p->kv = (spat_paged_kv){p->f[3].data, lens, k[0], k[1], p->f[3].shape[1]};
  spatc_tensor *ts[3] = {&a->q, &a->k, &a->v};
  for (int x = 0; x < 3; x++) {
    ts[x]->data = p->f[x].data;
    spatc_strides(ts[x], SPAT_LAYOUT_BHLD, x ? a->Hkv : a->H,
                  x ? k[1] : a->Lq, a->D);
  }
  return 0;
}

typedef struct run_opts {
  const char *out, *lse;     /* -o, --lse */
  const char *dout, *grad[3]; /* --do; --dq, --dk, --dv */
  bool do_grad;              /* --grad */
  const char *backend;
  const char *page_table, *seq_lens; /* a paged KV cache */
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
  case OPT_PAGE_TABLE: o->page_table = c->arg; return 0;
  case OPT_SEQ_LENS: o->seq_lens = c->arg; return 0;
  case OPT_GRAD: o->do_grad = true; return 0;
  case OPT_DOUT: o->dout = c->arg; return 0;
  case OPT_DQ: o->grad[0] = c->arg; return 0;
  case OPT_DK: o->grad[1] = c->arg; return 0;
  case OPT_DV: o->grad[2] = c->arg; return 0;
  case OPT_BACKEND:
    o->backend = c->arg;
    o->explicit_backend = true;
    return 0;
  case OPT_THREADS: return cli_int(c, 0, 4096, &o->threads) ? 0 : SPATC_EUSAGE;
  case OPT_SCALE:
    if (!cli_float(c, &o->scale)) return SPATC_EUSAGE;
    if (o->scale == 0 || (float)o->scale == 0)
      return cli_usage_error(c, "--scale must not be 0");
    if (!isfinite((float)o->scale))
      return cli_usage_error(c, "--scale %s is outside the float32 range "
                             "(|scale| <= 3.4e38)", c->arg);
    return 0;
  default: return -1;
  }
}

/* --grad: dL/do read or drawn, the backward pass, the gradients written;
 * 0 or the exit status after printing. */
static int run_grad(const run_opts *opt, const spatc_args *a,
                    const spatc_shape *sh, const spat_kernel *kernel,
                    const spat_tensors *t, const spatc_bound *bound,
                    spatc_pat *pat) {
  int64_t nq = a->B * a->H * a->Lq * a->D, nk = a->B * a->Hkv * a->Lk * a->D;
  npy_array dfile;
  memset(&dfile, 0, sizeof dfile);
  spatc_tensor dout = {NULL, 0, 0, 0};
  spatc_strides(&dout, a->layout, a->H, a->Lq, a->D);
  float *mem[4] = {NULL, NULL, NULL, NULL}, *bhld = NULL;
  int rc = SPATC_OK;
  if (opt->dout) {
    rc = spatc_read_f32("do", opt->dout, 4, &dfile);
    int64_t want[4] = {a->B, a->layout ? a->Lq : a->H, a->layout ? a->H : a->Lq,
                       a->D};
    for (int x = 0; rc == SPATC_OK && x < 4; x++)
      if (dfile.shape[x] != want[x])
        rc = spatc_error("%s: do must be shaped as o, [%" PRId64 ", %" PRId64
                         ", %" PRId64 ", %" PRId64 "]", opt->dout, want[0],
                         want[1], want[2], want[3]);
    dout.data = dfile.data;
  } else {
    dout.data = mem[3] = spatc_xmalloc((size_t)(nq + 1) * sizeof(float));
    if (!dout.data) rc = SPATC_EUSER;
    else spatc_randn(&dout, a->B, a->H, a->Lq, a->D, sh->seed, 3);
  }
  for (int x = 0; rc == SPATC_OK && x < 3; x++)
    if (!(mem[x] = spatc_xmalloc((size_t)((x ? nk : nq) + 1) * sizeof(float))))
      rc = SPATC_EUSER;
  double t_bwd = 0;
  if (rc == SPATC_OK) {
    spat_grads g = {dout.data, NULL, mem[0], mem[1], mem[2], NULL};
    double t0 = spatc_now_ms();
    spat_status st = spat_kernel_backward(kernel, t, &g, bound->args,
                                          bound->n_args);
    t_bwd = spatc_now_ms() - t0;
    if (st != SPAT_OK) rc = spatc_api_error(pat->ctx, st);
  }
  if (rc == SPATC_OK) {
    fprintf(stderr, "spatc: backward %.2f ms\n", t_bwd);
    bhld = a->layout == SPAT_LAYOUT_BHLD
               ? NULL
               : spatc_xmalloc((size_t)(nq > nk ? nq : nk) * sizeof(float) + 4);
    if (a->layout != SPAT_LAYOUT_BHLD && !bhld) rc = SPATC_EUSER;
  }
  for (int x = 0; rc == SPATC_OK && x < 3; x++) {
    if (!opt->grad[x]) continue;
    int64_t H = x ? a->Hkv : a->H, L = x ? a->Lk : a->Lq;
    int64_t shape[4] = {a->B, H, L, a->D};
    const float *data = mem[x];
    if (bhld) {
      to_bhld(bhld, mem[x], a->B, H, L, a->D);
      data = bhld;
    }
    rc = write_f32(opt->grad[x], 4, shape, data);
  }
  if (dfile.data) npy_free(&dfile);
  for (int x = 0; x < 4; x++) free(mem[x]);
  free(bhld);
  return rc;
}

int spatc_run_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, OPT_Q,
      OPT_K, OPT_V, OPT_SEED, OPT_BATCH, OPT_HEADS, OPT_KVHEADS, OPT_LEN,
      OPT_LQ, OPT_LK, OPT_DIM, OPT_LAYOUT, OPT_SCALE, OPT_OUTPUT, OPT_LSE,
      OPT_BACKEND, OPT_THREADS, OPT_VERBOSE, OPT_NO_CACHE, OPT_GRAD,
      OPT_DOUT, OPT_DQ, OPT_DK, OPT_DV, OPT_PAGE_TABLE, OPT_SEQ_LENS,
      OPT_NONE};
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
           "disk kernel cache (see spatc cache) unless --no-cache.  --grad runs the "
           "backward\npass too (dL/do from --do, else from the seed) and "
           "writes --dq, --dk, --dv.\nA paged KV cache: --page-table PT.npy "
           "--seq-lens SL.npy, with --k and --v\nthe page pools [n_pages, "
           "page_size, Hkv, D] and --q [B, H, Lq, D] (bhld).",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  run_opts opt = {NULL, NULL, NULL, {NULL, NULL, NULL}, false,
                  DEFAULT_BACKEND, NULL, NULL, 0, 0, false, false, true};
  int rc = spatc_parse(&c, &sel, &sh, run_option, &opt);
  if (rc == SPATC_OK && !opt.do_grad &&
      (opt.dout || opt.grad[0] || opt.grad[1] || opt.grad[2]))
    rc = cli_usage_error(&c, "--do, --dq, --dk and --dv need --grad");
  if (rc == SPATC_OK && opt.do_grad && !opt.dout && !sh.seeded)
    rc = cli_usage_error(&c, "--grad needs --do FILE.npy or --seed S");
  if (rc == SPATC_OK && sh.head >= 0)
    rc = cli_usage_error(&c, "--head is not an option of run");
  int be = -1;
  for (size_t k = 0; k < sizeof backends / sizeof backends[0]; k++)
    if (strcmp(backends[k].name, opt.backend) == 0) be = (int)k;
  if (rc == SPATC_OK && be < 0)
    rc = cli_usage_error(&c, "unknown backend '%s' (expected jit or interp)",
                         opt.backend);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }
  spat_backend backend = backends[be].id;

  spatc_pat pat;
  spatc_qkv qkv;
  spatc_bound bound;
  spatc_args a;
  memset(&qkv, 0, sizeof qkv);
  memset(&bound, 0, sizeof bound);
  memset(&a, 0, sizeof a);
  float *o = NULL, *o_kernel = NULL, *lse = NULL;
  spat_kernel *kernel = NULL;
  const char *cache_state = "off";
  paged pg;
  memset(&pg, 0, sizeof pg);
  memset(&pat, 0, sizeof pat);
  if (!opt.page_table != !opt.seq_lens)
    rc = cli_usage_error(&c, "give both --page-table and --seq-lens");
  else
    rc = spatc_load(&pat, &sel);
  if (rc == SPATC_OK && opt.page_table)
    rc = paged_setup(&pg, &a, &sh, &c, opt.page_table, opt.seq_lens);
  else if (rc == SPATC_OK)
    rc = spatc_qkv_setup(&qkv, &a, &sh, &c, QKV_QKV);
  if (rc == SPATC_OK) rc = spatc_bind(&bound, &pat, &sel, &a);
  if (rc == SPATC_OK) {
    int64_t n_o = a.B * a.H * a.Lq * a.D;   /* bounded: q has as many */
    o = spatc_xmalloc((size_t)n_o * sizeof(float));
    /* the kernel writes o in the layout of q; -o is [B, H, Lq, D] */
    o_kernel = a.layout == SPAT_LAYOUT_BHLD
                   ? o
                   : spatc_xmalloc((size_t)n_o * sizeof(float));
    bool want_lse = opt.lse || opt.do_grad;
    if (want_lse)
      lse = spatc_xmalloc((size_t)(a.B * a.H * a.Lq + 1) * sizeof(float));
    if (!o || !o_kernel || (want_lse && !lse)) rc = SPATC_EUSER;
  }
  double t_compile = 0, t_run = 0;
  spat_status st = SPAT_OK;
  if (rc == SPATC_OK) {
    spat_compile_options co = {.D = a.D,
                               .layout = (spat_layout)a.layout,
                               .threads = (int)opt.threads,
                               .backend = backend,
                               .cache = opt.cache};
    double t0 = spatc_now_ms();
    st = spat_compile(pat.p, &co, &kernel);
    if (st == SPAT_EUNSUPPORTED && !opt.explicit_backend &&
        backend != SPAT_BACKEND_INTERP) {
      /* the default backend may not handle everything (e.g. an unusual D):
       * the interpreter does */
      fprintf(stderr, "spatc: note: %s: %s; using interp\n",
              backend_name(backend),
              backend_message(spat_ctx_error(pat.ctx), backend));
      co.backend = backend = SPAT_BACKEND_INTERP;
      st = spat_compile(pat.p, &co, &kernel);
    }
    t_compile = spatc_now_ms() - t0;
    if (st != SPAT_OK) {
      if (st == SPAT_EUNSUPPORTED)
        rc = spatc_lib_error(backend_message(spat_ctx_error(pat.ctx), backend));
      else
        rc = spatc_api_error(pat.ctx, st);
    }
  }
  if (rc == SPATC_OK && backend == SPAT_BACKEND_JIT && opt.cache) {
    const spat_signature *sig = spat_kernel_signature(kernel);
    cache_state = sig->from_cache ? "hit" : sig->cache_problem ? "off" : "miss";
    if (sig->cache_problem && opt.verbose)
      fprintf(stderr, "spatc: note: kernel cache not used: %s\n",
              sig->cache_problem);
  }
  if (rc == SPATC_OK) {
    spat_tensors t = spatc_tensors(&a);
    t.o = o_kernel;
    t.lse = lse;
    t.scale = (float)opt.scale;
    if (opt.page_table) t.Lk = 0, t.paged = &pg.kv;
    double t0 = spatc_now_ms();
    st = spat_kernel_call(kernel, &t, bound.args, bound.n_args);
    t_run = spatc_now_ms() - t0;
    if (st != SPAT_OK) rc = spatc_api_error(pat.ctx, st);
    if (st == SPAT_OK && o_kernel != o) to_bhld(o, o_kernel, a.B, a.H, a.Lq, a.D);
  }
  if (rc == SPATC_OK) {
    double pairs = (double)a.B * (double)a.H * (double)a.Lq;
    fprintf(stderr,
            "spatc: run %s: B=%" PRId64 " H=%" PRId64 " Hkv=%" PRId64
            " Lq=%" PRId64 " Lk=%" PRId64 " D=%" PRId64
            " backend=%s cache=%s compile %.2f ms run %.2f ms\n",
            spatc_pattern_title(&pat, &bound), a.B, a.H, a.Hkv, a.Lq, a.Lk, a.D,
            backend_name(backend), cache_state, t_compile, t_run);
    if (opt.verbose)
      fprintf(stderr, "spatc: %.0f query rows, %.3f us per row\n", pairs,
              pairs > 0 ? t_run * 1e3 / pairs : 0.0);
    int64_t shape[4] = {a.B, a.H, a.Lq, a.D};
    if (opt.out) rc = write_f32(opt.out, 4, shape, o);
    if (rc == SPATC_OK && opt.lse) rc = write_f32(opt.lse, 3, shape, lse);
  }
  if (rc == SPATC_OK && opt.do_grad) {
    spat_tensors t = spatc_tensors(&a);
    t.o = o_kernel;
    t.lse = lse;
    t.scale = (float)opt.scale;
    rc = run_grad(&opt, &a, &sh, kernel, &t, &bound, &pat);
  }
  spat_kernel_free(kernel);
  if (o_kernel != o) free(o_kernel);
  free(o);
  free(lse);
  spatc_bound_free(&bound);
  spatc_qkv_free(&qkv);
  for (int x = 0; x < 5; x++)
    if (pg.f[x].data) npy_free(&pg.f[x]);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
