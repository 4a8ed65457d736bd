/* spatc_bench.c: `spatc bench FILE [options]`, times a pattern's JIT kernel
 * against two baselines measured in the same run (bench/baselines.h):
 *
 *   compile    backend_jit compile time, median of 5
 *   cold/warm  the disk kernel cache (compiler/aot.h) in a private
 *              directory: cold = compile, store and link an entry into an
 *              emptied cache (median of 3), warm = load and link the stored
 *              entry in a fresh JIT, as a new process would (median of 5)
 *   kernel     median of --repeats timed runs (after one warm-up run)
 *   GFLOP/s    4 * nnz * D per head over the kernel time (nnz: the allowed
 *              pairs, counted with the reference interpreter), and its share
 *              of 115 GFLOP/s per core
 *   vs loop    time of a plain C per-row loop over a key window of the same
 *              mean width (the exact mask when the pattern is a window),
 *              divided by the kernel time
 *   vs dense   time of dense masked attention with OpenBLAS sgemm, divided
 *              by the kernel time; its output also checks the kernel's
 *
 * Options: --pattern NAME, -D NAME=INT, --runtime NAME=INT, --len L (or
 * --lq/--lk), --heads H, --kv-heads N, --dim D, --threads N, --repeats R,
 * --seed S, --json (one JSON object on stdout), --no-dense, --no-cache (the
 * kernel timed is then a fresh JIT compile, not the user's cache entry, and
 * cold/warm are not measured).
 * Input arrays get packed-document ids (documents of random lengths).
 * Progress goes to stderr.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench/baselines.h"
#include "../runtime/interp.h"
#include "aot.h"
#include "backend.h"
#include "frontend.h"
#include "spatc.h"

#define MAX_DEFS 64
#define PEAK_PER_CORE 115.0           /* GFLOP/s */
#define MASK_BUDGET ((int64_t)2 << 30) /* bytes of cached mask rows */
#ifndef COUNT_MAX
#define COUNT_MAX 1.5e9 /* mask elements counted exactly */
#endif

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char *opt_value(int argc, char **argv, int *k, const char *name) {
  const char *a = argv[*k];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] == 0) {
    if (*k + 1 >= argc) return NULL;
    return argv[++*k];
  }
  if (name[1] != '-' && a[n]) return a + n;
  return NULL;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float randn(uint64_t *s) {
  double u1 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Cached exact mask rows of heads [0, n_heads) for the dense baseline. */
typedef struct masks {
  uint8_t *m;
  int64_t Lq, Lk;
} masks;

static void mask_cb(void *ctx, int64_t h, int64_t r, uint8_t *row) {
  const masks *M = ctx;
  memcpy(row, M->m + (h * M->Lq + r) * M->Lk, (size_t)M->Lk);
}

/* Cold and warm compile times through a private cache directory; -1 when
 * not measured (message on stderr). */
static void cache_times(const ir_program *p, int64_t D, int threads,
                        double *cold, double *warm) {
  *cold = *warm = -1;
  char dir[] = "/tmp/spatc-bench-cache.XXXXXX", err[1024] = "";
  if (!mkdtemp(dir)) return;
  aot_opts o = {D, 0, threads, NULL, NULL, NULL, AOT_EMIT_OBJ};
  double tc[3], tw[5];
  const void *desc;
  int hit, ok = 1;
  for (int t = 0; t < 3 && ok; t++) {
    ok = aot_cache_clear(dir, err, sizeof err) >= 0;
    double t0 = now_ms();
    aot_loaded *l = ok ? aot_cache_load(p, &o, dir, NULL, &desc, &hit, err,
                                        sizeof err) : NULL;
    tc[t] = now_ms() - t0;
    ok = l && !hit;
    aot_cache_free(l);
  }
  for (int t = 0; t < 5 && ok; t++) {
    double t0 = now_ms();
    aot_loaded *l = aot_cache_load(p, &o, dir, NULL, &desc, &hit, err,
                                   sizeof err);
    tw[t] = now_ms() - t0;
    ok = l && hit;
    aot_cache_free(l);
  }
  aot_cache_clear(dir, err, sizeof err);
  rmdir(dir);
  if (!ok) {
    fprintf(stderr, "spatc: note: cache times not measured: %s\n", err);
    return;
  }
  *cold = median(tc, 3);
  *warm = median(tw, 5);
}

static void usage(FILE *f) {
  fputs("usage: spatc bench FILE [--pattern NAME] [-D NAME=INT]... "
        "[--runtime NAME=INT]...\n"
        "                   [--len L | --lq N --lk N] [--heads H] [--kv-heads N] "
        "[--dim D]\n"
        "                   [--threads N] [--repeats R] [--seed S] [--json] "
        "[--no-dense] [--no-cache]\n"
        "Times the pattern's JIT kernel (compile, run, GFLOP/s on the allowed "
        "pairs)\nagainst a per-row C loop and dense masked attention with "
        "OpenBLAS,\nand the disk kernel cache's cold and warm compile times. "
        "The kernel timed\ncomes from the cache unless --no-cache.\n", f);
}

int spatc_bench_main(int argc, char **argv) {
  const char *file = NULL, *name = NULL, *rt_arg[MAX_DEFS];
  fe_define defs[MAX_DEFS];
  int n_defs = 0, n_rt = 0, json = 0, dense = 1, use_cache = 1, rc = 2;
  aot_loaded *kcache = NULL;
  int64_t L = 4096, Lq = -1, Lk = -1, H = 4, Hkv = -1, D = 64, threads = 0,
          repeats = 5, seed = 1;
  arena *a = arena_new();
  diag *d = diag_new();
  float *buf = NULL, *o2 = NULL, *lse = NULL;
  uint8_t *mcache = NULL;
  int32_t *docs = NULL;
  void *kernel = NULL;
  const backend *jit = &backend_jit;
  if (!a || !d) goto oom;
  for (int k = 1; k < argc; k++) {
    const char *v;
    int64_t *num = NULL, lo = 1;
    if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
      usage(stdout);
      rc = 0;
      goto out;
    } else if (!strcmp(argv[k], "--json")) {
      json = 1;
      continue;
    } else if (!strcmp(argv[k], "--no-dense")) {
      dense = 0;
      continue;
    } else if (!strcmp(argv[k], "--no-cache")) {
      use_cache = 0;
      continue;
    } else if ((v = opt_value(argc, argv, &k, "--pattern"))) {
      name = v;
      continue;
    } else if ((v = opt_value(argc, argv, &k, "-D")) ||
               (v = opt_value(argc, argv, &k, "--define"))) {
      if (n_defs == MAX_DEFS || fe_parse_define(v, a, &defs[n_defs]) != 0) {
        fprintf(stderr, "spatc bench: bad define '%s' (NAME=INT)\n", v);
        goto out;
      }
      n_defs++;
      continue;
    } else if ((v = opt_value(argc, argv, &k, "--runtime"))) {
      if (n_rt == MAX_DEFS) goto out;
      rt_arg[n_rt++] = v;
      continue;
    } else if ((v = opt_value(argc, argv, &k, "--len"))) num = &L;
    else if ((v = opt_value(argc, argv, &k, "--lq"))) num = &Lq;
    else if ((v = opt_value(argc, argv, &k, "--lk"))) num = &Lk;
    else if ((v = opt_value(argc, argv, &k, "--heads"))) num = &H;
    else if ((v = opt_value(argc, argv, &k, "--kv-heads"))) num = &Hkv;
    else if ((v = opt_value(argc, argv, &k, "--dim"))) num = &D;
    else if ((v = opt_value(argc, argv, &k, "--threads"))) num = &threads, lo = 0;
    else if ((v = opt_value(argc, argv, &k, "--repeats"))) num = &repeats;
    else if ((v = opt_value(argc, argv, &k, "--seed"))) num = &seed, lo = 0;
    else if (argv[k][0] == '-' && argv[k][1]) {
      fprintf(stderr, "spatc bench: unknown option or missing value: %s\n", argv[k]);
      usage(stderr);
      goto out;
    } else if (!file) {
      file = argv[k];
      continue;
    } else {
      fprintf(stderr, "spatc bench: more than one file: %s\n", argv[k]);
      goto out;
    }
    if (parse_i64(v, lo, (int64_t)1 << 30, num) != 0) {
      fprintf(stderr, "spatc bench: %s: bad number '%s'\n", argv[k - 1], v);
      goto out;
    }
  }
  if (!file) {
    fputs("spatc bench: a FILE is required\n", stderr);
    usage(stderr);
    goto out;
  }
  if (Lq < 0) Lq = Lk >= 0 ? Lk : L;
  if (Lk < 0) Lk = Lq;
  if (Hkv < 0) Hkv = H;
  if (H % Hkv != 0) {
    fputs("spatc bench: --kv-heads must divide --heads\n", stderr);
    goto out;
  }
  if (threads == 0) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
  rc = 1;

  fe_module *m = fe_load_file(d, a, file);
  ir_program *p = m ? fe_instantiate(d, m, name, defs, n_defs) : NULL;
  if (!p) {
    fputs(diag_text(d), stderr);
    goto out;
  }
  if (p->n_externs > 0) {
    fputs("spatc bench: patterns with extern functions are not benchmarked\n", stderr);
    goto out;
  }
  int64_t *rt = arena_alloc(a, sizeof *rt * (size_t)(p->n_runtime + 1));
  for (int r = 0; r < p->n_runtime; r++) {
    bool found = p->runtime[r].has_deflt;
    rt[r] = p->runtime[r].deflt;
    for (int t = 0; t < n_rt; t++) {
      size_t n = strlen(p->runtime[r].name);
      if (!strncmp(rt_arg[t], p->runtime[r].name, n) && rt_arg[t][n] == '=' &&
          parse_i64(rt_arg[t] + n + 1, INT64_MIN, INT64_MAX, &rt[r]) == 0)
        found = true;
    }
    if (!found) {
      fprintf(stderr, "spatc: error: runtime scalar '%s' has no default: give "
              "--runtime %s=N\n", p->runtime[r].name, p->runtime[r].name);
      goto out;
    }
  }
  /* input arrays: packed documents of random lengths in [Lk/16, Lk/4] */
  uint64_t rs = (uint64_t)seed * 7919 + 17;
  const int32_t **inputs = arena_alloc(a, sizeof *inputs * (size_t)(p->n_inputs + 1));
  docs = malloc(sizeof *docs * (size_t)(Lk + 1) * (size_t)(p->n_inputs + 1));
  if (!inputs || !docs) goto oom;
  for (int t = 0; t < p->n_inputs; t++) {
    int32_t *x = docs + (size_t)t * (size_t)(Lk + 1), id = 0;
    int64_t span = Lk / 16 > 1 ? Lk / 16 : 1;
    for (int64_t j = 0; j < Lk;) {
      int64_t len = span + (int64_t)(rng_next(&rs) % (uint64_t)(3 * span + 1));
      for (int64_t e = 0; e < len && j < Lk; e++) x[j++] = id;
      id++;
    }
    inputs[t] = x;
  }

  size_t nq = (size_t)(H * Lq * D), nk = (size_t)(Hkv * Lk * D);
  buf = malloc(sizeof(float) * (2 * nq + 2 * nk));
  o2 = malloc(sizeof(float) * nq);
  lse = malloc(sizeof(float) * (size_t)(H * Lq));
  if (!buf || !o2 || !lse) goto oom;
  for (size_t t = 0; t < nq + 2 * nk; t++) buf[t] = randn(&rs);
  rt_args args = {.B = 1, .H = H, .Hkv = Hkv, .Lq = Lq, .Lk = Lk, .D = D,
                  .runtime = rt, .inputs = inputs, .threads = (int)threads};
  args.q.data = buf, args.k.data = buf + nq, args.v.data = buf + nq + nk;
  args.o.data = buf + nq + 2 * nk;
  rt_tensor_strides(&args.q, 0, H, Lq, D);
  rt_tensor_strides(&args.k, 0, Hkv, Lk, D);
  rt_tensor_strides(&args.v, 0, Hkv, Lk, D);
  rt_tensor_strides(&args.o, 0, H, Lq, D);
  args.lse = lse, args.lse_sb = H * Lq, args.lse_sh = Lq;

  /* compile */
  char err[1024] = "";
  backend_opts bo = {.D = D, .threads = (int)threads};
  double tc[5];
  fprintf(stderr, "bench %s: compiling\n", p->name);
  for (int t = 0; t < 5; t++) {
    double t0 = now_ms();
    void *kn = jit->compile(p, &bo, err, sizeof err);
    tc[t] = now_ms() - t0;
    if (!kn) {
      fprintf(stderr, "spatc: error: %s\n", err);
      goto out;
    }
    if (kernel) jit->free(kernel);
    kernel = kn;
  }
  double compile_ms = median(tc, 5);
  double cold_ms = -1, warm_ms = -1;
  if (use_cache) {
    char dir[4096];
    const void *desc;
    int hit;
    cache_times(p, D, (int)threads, &cold_ms, &warm_ms);
    aot_opts ao = {D, 0, (int)threads, NULL, NULL, NULL, AOT_EMIT_OBJ};
    if (aot_cache_dir(dir, sizeof dir, err, sizeof err) == 0)
      kcache = aot_cache_load(p, &ao, dir, NULL, &desc, &hit, err, sizeof err);
    if (!kcache) fprintf(stderr, "spatc: note: kernel cache not used: %s\n", err);
  }

  /* run */
  fprintf(stderr, "bench %s: running the kernel (%lld repeats)\n", p->name,
          (long long)repeats);
  double *tk = arena_alloc(a, sizeof(double) * (size_t)repeats);
  if (!tk) goto oom;
  for (int64_t t = -1; t < repeats; t++) {
    double t0 = now_ms();
    if ((kcache ? aot_run_args(aot_loaded_desc(kcache), &args, err, sizeof err)
                : jit->run(kernel, &args, err, sizeof err)) != RT_OK) {
      fprintf(stderr, "spatc: error: %s\n", err);
      goto out;
    }
    if (t >= 0) tk[t] = now_ms() - t0;
  }
  double kernel_ms = median(tk, (int)repeats);

  /* nnz (and the mask rows for the dense baseline) */
  fprintf(stderr, "bench %s: counting the mask\n", p->name);
  int64_t group = H / Hkv, cached = 0;
  if (dense) {
    int64_t per = Lq * Lk;
    cached = MASK_BUDGET / (per > 0 ? per : 1) >= H ? H : group;
    if (cached * per > MASK_BUDGET) dense = 0, cached = 0;
    else if (!(mcache = malloc((size_t)(cached * per) + 1))) dense = 0, cached = 0;
  }
  /* Past COUNT_MAX mask elements, rows not cached are sampled evenly and
   * nnz is an estimate (flagged). */
  int64_t step = 1;
  double elems = (double)(H - cached) * (double)Lq * (double)Lk;
  if (elems > COUNT_MAX) step = (int64_t)(elems / COUNT_MAX) + 1;
  uint8_t *row = malloc((size_t)Lk + 1);
  int64_t nnz = 0, sampled = 0;
  if (!row) goto oom;
  for (int64_t h = 0; h < H; h++)
    for (int64_t r = 0; r < Lq; r++) {
      if (h >= cached && (h * Lq + r) % step) continue;
      if (h >= cached && step > 1) sampled++;
      uint8_t *out = h < cached ? mcache + (h * Lq + r) * Lk : row;
      if (interp_mask_row(p, &args, 0, h, r, out, err, sizeof err) != RT_OK) {
        fprintf(stderr, "spatc: error: %s\n", err);
        free(row);
        goto out;
      }
      for (int64_t j = 0; j < Lk; j++) nnz += out[j] != 0;
    }
  free(row);
  if (step > 1) { /* scale the sampled rows' count to all of them */
    int64_t exact = 0;
    for (int64_t t = 0; t < cached * Lq * Lk; t++) exact += mcache[t] != 0;
    nnz = exact + (int64_t)((double)(nnz - exact) * (double)((H - cached) * Lq) /
                            (double)(sampled ? sampled : 1));
  }
  double gflops = kernel_ms > 0 ? 4.0 * (double)nnz * (double)D / (kernel_ms * 1e6) : 0;

  /* baseline 1: per-row window loop of the same mean width */
  int64_t wl, wr;
  const ir_node *root = p->root;
  bool exact_window = root->op == IR_WINDOW && root->kids[0]->op == IR_CONST &&
                      root->kids[1]->op == IR_CONST;
  if (exact_window) {
    wl = root->kids[0]->value, wr = root->kids[1]->value;
  } else {
    double mean = H * Lq > 0 ? (double)nnz / (double)(H * Lq) : 0;
    wl = (int64_t)(mean + 0.5) - 1, wr = 0;
    if (wl < 0) wl = 0;
  }
  fprintf(stderr, "bench %s: baseline loop (window %lld, %lld)\n", p->name,
          (long long)wl, (long long)wr);
  rt_args la = args;
  la.o.data = o2;
  double tl[3];
  for (int t = 0; t < 3; t++) {
    double t0 = now_ms();
    if (bl_window(&la, wl, wr, (int)threads) != 0) goto oom;
    tl[t] = now_ms() - t0;
  }
  double loop_ms = median(tl, 3);
  double loop_err = -1;
  if (exact_window) {
    loop_err = 0;
    for (size_t t = 0; t < nq; t++) {
      double e = fabs((double)o2[t] - (double)args.o.data[t]);
      if (e > loop_err) loop_err = e;
    }
  }

  /* baseline 2: dense masked attention with BLAS (heads [0, cached)) */
  double dense_ms = -1, dense_err = -1;
  if (dense && cached > 0) {
    fprintf(stderr, "bench %s: baseline dense BLAS (%lld heads)\n", p->name,
            (long long)cached);
    rt_args da = args;
    da.H = cached, da.Hkv = cached / group;
    da.o.data = o2;
    masks M = {mcache, Lq, Lk};
    double td[3];
    for (int t = 0; t < 3; t++) {
      double t0 = now_ms();
      if (bl_dense(&da, mask_cb, &M, (int)threads) != 0) goto oom;
      td[t] = now_ms() - t0;
    }
    dense_ms = median(td, 3) * (double)H / (double)cached;
    dense_err = 0;
    for (size_t t = 0; t < (size_t)(cached * Lq * D); t++) {
      double e = fabs((double)o2[t] - (double)args.o.data[t]);
      if (e > dense_err) dense_err = e;
    }
  }

  double density = Lq && Lk ? (double)nnz / ((double)H * (double)Lq * (double)Lk) : 0;
  double peak = 100.0 * gflops / (PEAK_PER_CORE * (double)threads);
  if (json) {
    printf("{\"pattern\": \"%s\", \"file\": \"%s\", \"Lq\": %lld, \"Lk\": %lld, "
           "\"H\": %lld, \"Hkv\": %lld, \"D\": %lld, \"threads\": %lld, "
           "\"nnz\": %lld, \"density\": %.6f, \"compile_ms\": %.3f, "
           "\"cold_ms\": %.3f, \"warm_ms\": %.3f, \"cached\": %s, "
           "\"kernel_ms\": %.3f, \"gflops\": %.3f, \"peak_pct\": %.2f, "
           "\"loop_ms\": %.3f, \"loop_window\": [%lld, %lld], "
           "\"loop_exact\": %s, \"dense_ms\": %.3f, \"vs_loop\": %.3f, "
           "\"vs_dense\": %.3f, \"max_err_dense\": %.3g, \"max_err_loop\": %.3g, "
           "\"nnz_sampled\": %s}\n",
           p->name, file, (long long)Lq, (long long)Lk, (long long)H,
           (long long)Hkv, (long long)D, (long long)threads, (long long)nnz,
           density, compile_ms, cold_ms, warm_ms, kcache ? "true" : "false", kernel_ms, gflops, peak, loop_ms, (long long)wl,
           (long long)wr, exact_window ? "true" : "false", dense_ms,
           loop_ms / kernel_ms, dense_ms > 0 ? dense_ms / kernel_ms : -1.0,
           dense_err, loop_err, step > 1 ? "true" : "false");
  } else {
    printf("pattern %s (%s): Lq %lld, Lk %lld, H %lld (kv %lld), D %lld, "
           "threads %lld\n", p->name, file, (long long)Lq, (long long)Lk,
           (long long)H, (long long)Hkv, (long long)D, (long long)threads);
    printf("  allowed pairs   %s%lld (density %.4f)\n", step > 1 ? "about " : "",
           (long long)nnz, density);
    printf("  compile         %.1f ms (median of 5)\n", compile_ms);
    if (cold_ms >= 0)
      printf("  cache           cold %.1f ms (median of 3), warm %.2f ms "
             "(median of 5)\n", cold_ms, warm_ms);
    printf("  kernel          %.3f ms (median of %lld)\n", kernel_ms, (long long)repeats);
    printf("  throughput      %.1f GFLOP/s on allowed pairs, %.1f%% of %.0f "
           "GFLOP/s x %lld cores\n", gflops, peak, PEAK_PER_CORE, (long long)threads);
    printf("  C row loop      %.3f ms, window (%lld, %lld)%s: kernel is %.2fx faster\n",
           loop_ms, (long long)wl, (long long)wr,
           exact_window ? ", the same mask" : ", same mean width", loop_ms / kernel_ms);
    if (dense_ms > 0)
      printf("  dense BLAS      %.3f ms: kernel is %.2fx faster; max |o - o_dense| "
             "%.2g\n", dense_ms, dense_ms / kernel_ms, dense_err);
  }
  rc = 0;
  goto out;
oom:
  fputs("spatc: error: out of memory\n", stderr);
  rc = 1;
out:
  if (kernel) jit->free(kernel);
  aot_cache_free(kcache);
  free(buf), free(o2), free(lse), free(mcache), free(docs);
  diag_free(d);
  arena_free(a);
  return rc;
}
