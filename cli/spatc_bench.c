/* spatc_bench.c: `spatc bench FILE [options]`, times a pattern's JIT kernel
 * against two baselines measured in the same run (bench/baselines.h):
 *
 *   compile    spat_compile time for the JIT (no cache), median of 5
 *   cold/warm  the disk kernel cache (spat_compile's .cache) in a private
 *              directory ($XDG_CACHE_HOME pointed there meanwhile): cold =
 *              compile, store and link an entry into an emptied cache
 *              (median of 3), warm = load and link the stored entry in a
 *              fresh JIT, as a new process would (median of 5)
 *   kernel     median of --repeats timed runs (after one warm-up run)
 *   GFLOP/s    4 * nnz * D per head over the kernel time (nnz: the allowed
 *              pairs, counted with the reference interpreter), and its share
 *              of 115 GFLOP/s per core
 *   vs loop    time of a plain C per-row loop over a key window of the same
 *              mean width (the exact mask when every row counted is a
 *              window [i - wl, i + wr] of the same wl, wr), divided by the
 *              kernel time
 *   vs dense   time of dense masked attention with OpenBLAS sgemm, divided
 *              by the kernel time; its output also checks the kernel's
 *
 * Options through spatc_common: --pattern, -D, --runtime, --len (default
 * 4096) or --lq/--lk, --heads (default 1), --kv-heads, --dim, --threads,
 * --repeats, --seed (default 1; q, k, v drawn as `spatc run --seed`),
 * --json (one JSON object on stdout), --no-dense, --backward (the
 * backward pass too: median time, GFLOP/s on 10 * nnz * D per head, and
 * its time over the forward's), --no-cache (the kernel
 * timed is then a fresh JIT compile, not the user's cache entry, and
 * cold/warm are not measured).
 * --dtype bf16|f16: q, k, v are rounded to the dtype; the kernel timed is
 * the dtype's, and the float32 kernel is also timed on the same rounded
 * values in the same run (f32_ms, vs_f32 = f32_ms / kernel_ms); the
 * baselines run in float32 on the rounded values.  The two kernels run in
 * turn; vs_f32_cpu is the ratio of their median process CPU times (the
 * wall time's ratio under a load that comes and goes, the CPU time's with
 * one thread on a shared machine).
 * --batch B: q, k, v (and the generated input arrays) for B sequences; the
 * kernel runs the batch in one call, nnz and the density count every
 * sequence, and the two baselines run on sequence 0 with their time
 * multiplied by B.
 * Input arrays get packed-document ids (documents of random lengths).
 * Progress goes to stderr.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baselines.h"
#include "spatc.h"
#include "spatc_common.h"

#define DEFAULT_LEN 4096
#define DEFAULT_SEED 1
#define PEAK_PER_CORE 115.0           /* GFLOP/s */
#define MASK_BUDGET ((int64_t)2 << 30) /* bytes of cached mask rows */
#ifndef COUNT_MAX
#define COUNT_MAX 1.5e9 /* mask elements counted exactly */
#endif

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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

/* Compiles the pattern for the JIT; NULL after printing. */
static spat_kernel *compile_jit(spatc_pat *pat, int64_t D, int threads,
                                int cache, spat_dtype dt) {
  spat_compile_options o = {.D = D, .layout = SPAT_LAYOUT_BHLD,
                            .threads = threads, .backend = SPAT_BACKEND_JIT,
                            .cache = cache, .dtype = dt};
  spat_kernel *k = NULL;
  spat_status st = spat_compile(pat->p, &o, &k);
  if (st != SPAT_OK) spatc_api_error(pat->ctx, st);
  return k;
}

/* Cold and warm compile times through a private cache directory; -1 when
 * not measured (message on stderr). */
static void cache_times(spatc_pat *pat, int64_t D, int threads,
                        spat_dtype dt, double *cold, double *warm) {
  *cold = *warm = -1;
  char tmp[] = "/tmp/spatc-bench-cache.XXXXXX", dir[4200];
  if (!mkdtemp(tmp)) return;
  /* the cache's directory is $XDG_CACHE_HOME/spatc: point it at tmp */
  const char *was = getenv("XDG_CACHE_HOME");
  char *saved = was ? strdup(was) : NULL;
  setenv("XDG_CACHE_HOME", tmp, 1);
  spat_compile_options o = {.D = D, .layout = SPAT_LAYOUT_BHLD,
                            .threads = threads, .backend = SPAT_BACKEND_JIT,
                            .cache = 1, .dtype = dt};
  double tc[3], tw[5];
  const char *why = NULL;
  char whybuf[1024]; /* the kernel's cache_problem dies with the kernel */
  int ok = 1;
  for (int t = 0; t < 3 + 5 && ok; t++) {
    bool is_cold = t < 3;
    if (is_cold) ok = spat_cache_clear(pat->ctx, NULL) == SPAT_OK;
    spat_kernel *k = NULL;
    double t0 = spatc_now_ms();
    ok = ok && spat_compile(pat->p, &o, &k) == SPAT_OK;
    double ms = spatc_now_ms() - t0;
    const spat_signature *sig = spat_kernel_signature(k);
    if (ok && sig->cache_problem) {
      snprintf(whybuf, sizeof whybuf, "%s", sig->cache_problem);
      why = whybuf;
    }
    ok = ok && !sig->cache_problem && sig->from_cache == !is_cold;
    if (is_cold) tc[t] = ms;
    else tw[t - 3] = ms;
    spat_kernel_free(k);
  }
  if (!ok && !why) why = spat_ctx_error(pat->ctx);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", why ? why : "");
  spat_cache_clear(pat->ctx, NULL);
  snprintf(dir, sizeof dir, "%s/spatc", tmp);
  rmdir(dir);
  rmdir(tmp);
  if (saved) setenv("XDG_CACHE_HOME", saved, 1);
  else unsetenv("XDG_CACHE_HOME");
  free(saved);
  if (!ok) {
    fprintf(stderr, "spatc: note: cache times not measured: %s\n", msg);
    return;
  }
  *cold = median(tc, 3);
  *warm = median(tw, 5);
}

typedef struct bench_opts {
  int64_t threads, repeats;
  bool json, dense, cache, backward;
  spat_dtype dtype;
} bench_opts;

static int bench_option(void *ctx, const cli *c, int id) {
  bench_opts *o = ctx;
  switch (id) {
  case OPT_THREADS: return cli_int(c, 0, 4096, &o->threads) ? 0 : SPATC_EUSAGE;
  case OPT_REPEATS:
    return cli_int(c, 1, 1 << 20, &o->repeats) ? 0 : SPATC_EUSAGE;
  case OPT_JSON: o->json = true; return 0;
  case OPT_NO_DENSE: o->dense = false; return 0;
  case OPT_NO_CACHE: o->cache = false; return 0;
  case OPT_DTYPE: return spatc_dtype_option(c, &o->dtype);
  case OPT_BACKWARD: o->backward = true; return 0;
  default: return -1;
  }
}

/* Input arrays: packed documents of random lengths in [Lk/16, Lk/4], one
 * array of Lk ids after another. */
static void fill_docs(int32_t *docs, int n, int64_t Lk, uint64_t seed) {
  const uint64_t golden = 0x9E3779B97F4A7C15ull;
  uint64_t st = seed * 7919 + 17;
  int64_t span = Lk / 16 > 1 ? Lk / 16 : 1;
  for (int t = 0; t < n; t++) {
    int32_t *x = docs + (size_t)t * (size_t)Lk, id = 0;
    for (int64_t j = 0; j < Lk;) {
      int64_t len = span + (int64_t)(spatc_mix(st) % (uint64_t)(3 * span + 1));
      st += golden;
      for (int64_t e = 0; e < len && j < Lk; e++) x[j++] = id;
      id++;
    }
  }
}

/* One examined mask row: its first and last allowed key and how many. */
typedef struct row_span {
  int64_t first, last, n;
} row_span;

/* Whether every examined row (n >= 0) is the window [i - wl, i + wr] of its
 * position i, clamped to [0, Lk), for one wl, wr (into *wl, *wr): then the
 * C row loop computes the very mask. */
static bool is_window(const row_span *rs, int64_t H, int64_t Lq, int64_t Lk,
                      int64_t *wl, int64_t *wr) {
  int64_t off = Lq <= Lk ? Lk - Lq : 0, l = INT64_MIN, r = INT64_MIN;
  for (int64_t x = 0; x < H * Lq; x++) {
    int64_t i = x % Lq + off;
    if (rs[x].n <= 0) continue;
    if (i - rs[x].first > l) l = i - rs[x].first;
    if (rs[x].last - i > r) r = rs[x].last - i;
  }
  if (l == INT64_MIN) return false; /* no allowed key seen */
  for (int64_t x = 0; x < H * Lq; x++) {
    if (rs[x].n < 0) continue; /* not examined */
    int64_t i = x % Lq + off;
    int64_t a = i - l > 0 ? i - l : 0, b = i + r < Lk - 1 ? i + r : Lk - 1;
    bool ok = a > b ? rs[x].n == 0
                    : rs[x].n == b - a + 1 && rs[x].first == a && rs[x].last == b;
    if (!ok) return false;
  }
  *wl = l, *wr = r;
  return true;
}

/* What bench() measures: a pattern, its sizes and q, k, v (BHLD),
 * its kernel arguments, and o, lse to write. */
typedef struct bench_in {
  const char *file;
  spatc_pat *pat;
  spatc_args a;
  const spat_value *args;
  size_t n_args;
  float *o, *lse;
} bench_in;

/* --backward: the median of repeats timed backward runs (after one warm-up)
 * with dL/do drawn from a fixed seed; -1 after printing on failure. */
static double time_backward(const bench_in *in, const spat_kernel *k,
                            const spat_tensors *T, int64_t repeats) {
  const spatc_args *A = &in->a;
  size_t nq = (size_t)(A->B * A->H * A->Lq * A->D),
         nk = (size_t)(A->B * A->Hkv * A->Lk * A->D);
  float *dout = malloc(sizeof(float) * (nq + 1));
  float *dq = malloc(sizeof(float) * (nq + 1));
  float *dk = malloc(sizeof(float) * (nk + 1)), *dv = malloc(sizeof(float) * (nk + 1));
  double *tb = malloc(sizeof(double) * (size_t)repeats), ms = -1;
  if (!dout || !dq || !dk || !dv || !tb) {
    spatc_error("out of memory");
    goto out;
  }
  uint64_t st = 12345;
  for (size_t t = 0; t < nq; t++, st += 0x9E3779B97F4A7C15ull)
    dout[t] = (float)((double)(spatc_mix(st) >> 11) / 9007199254740992.0 * 2 - 1);
  spat_grads g = {dout, NULL, dq, dk, dv, NULL};
  for (int64_t t = -1; t < repeats; t++) {
    double t0 = spatc_now_ms();
    spat_status s = spat_kernel_backward(k, T, &g, in->args, in->n_args);
    if (s != SPAT_OK) {
      spatc_api_error(in->pat->ctx, s);
      goto out;
    }
    if (t >= 0) tb[t] = spatc_now_ms() - t0;
  }
  ms = median(tb, (int)repeats);
out:
  free(dout), free(dq), free(dk), free(dv), free(tb);
  return ms;
}

/* The measurements and the report; 0 or 1 after printing. */
static int bench(const bench_in *in, bench_opts *opt) {
  const spatc_args *A = &in->a;
  const char *file = in->file, *name = in->pat->info.name;
  int64_t Lq = A->Lq, Lk = A->Lk, H = A->H, Hkv = A->Hkv, D = A->D, B = A->B,
          threads = opt->threads, repeats = opt->repeats;
  int json = opt->json, dense = opt->dense, use_cache = opt->cache, rc = 1;
  size_t nq = (size_t)(B * H * Lq * D), nq0 = (size_t)(H * Lq * D); /* nq0: sequence 0 */
  spat_kernel *kernel = NULL, *kcache = NULL, *k32 = NULL;
  spat_dtype dt = opt->dtype;
  spat_tensors T = spatc_tensors(A), T32 = T;
  T.o = in->o;
  T.lse = in->lse;
  float *o2 = malloc(sizeof(float) * nq);
  double *tk = malloc(sizeof(double) * (size_t)repeats);
  uint8_t *mcache = NULL;
  row_span *spans = NULL;
  void *h16[4] = {NULL, NULL, NULL, NULL}; /* q, k, v, o of the dtype */
  if (!o2 || !tk) goto oom;
  if (dt != SPAT_DTYPE_F32) { /* rounded, and A's q, k, v hold the values */
    size_t nk = (size_t)(B * Hkv * Lk * D), n[4] = {nq, nk, nk, nq};
    float *src[3] = {A->q.data, A->k.data, A->v.data};
    for (int x = 0; x < 4; x++)
      if (!(h16[x] = malloc(n[x] * 2 + 2))) goto oom;
    for (int x = 0; x < 3; x++) {
      spat_convert(src[x], SPAT_DTYPE_F32, h16[x], dt, n[x]);
      spat_convert(h16[x], dt, src[x], SPAT_DTYPE_F32, n[x]);
    }
    T.q = h16[0], T.k = h16[1], T.v = h16[2], T.o = h16[3];
    T32.o = o2;
  }

  /* compile */
  double tc[5];
  fprintf(stderr, "bench %s: compiling\n", name);
  for (int t = 0; t < 5; t++) {
    double t0 = spatc_now_ms();
    spat_kernel *kn = compile_jit(in->pat, D, (int)threads, 0, dt);
    tc[t] = spatc_now_ms() - t0;
    if (!kn) goto out;
    spat_kernel_free(kernel);
    kernel = kn;
  }
  double compile_ms = median(tc, 5);
  double cold_ms = -1, warm_ms = -1;
  if (use_cache) {
    cache_times(in->pat, D, (int)threads, dt, &cold_ms, &warm_ms);
    kcache = compile_jit(in->pat, D, (int)threads, 1, dt);
    if (!kcache) goto out;
    const char *why = spat_kernel_signature(kcache)->cache_problem;
    if (why) {
      fprintf(stderr, "spatc: note: kernel cache not used: %s\n", why);
      spat_kernel_free(kcache);
      kcache = NULL;
    }
  }

  /* run; with --dtype the float32 kernel on the same rounded values
   * right after each run (a passing load hits both), wall and CPU time */
  if (dt != SPAT_DTYPE_F32 &&
      !(k32 = compile_jit(in->pat, D, (int)threads, 0, SPAT_DTYPE_F32)))
    goto out;
  fprintf(stderr, "bench %s: running the kernel (%lld repeats)\n", name,
          (long long)repeats);
  double *t32 = malloc(sizeof(double) * 3 * (size_t)repeats);
  if (!t32) goto oom;
  double *c16 = t32 + repeats, *c32 = c16 + repeats;
  for (int64_t t = -1; t < repeats; t++) {
    for (int w = 0; w < (k32 ? 2 : 1); w++) {
      double t0 = spatc_now_ms(), c0 = spatc_cpu_ms();
      spat_status st = w ? spat_kernel_call(k32, &T32, in->args, in->n_args)
                         : spat_kernel_call(kcache ? kcache : kernel, &T,
                                            in->args, in->n_args);
      if (st != SPAT_OK) {
        spatc_api_error(in->pat->ctx, st);
        free(t32);
        goto out;
      }
      if (t < 0) continue;
      (w ? t32 : tk)[t] = spatc_now_ms() - t0;
      (w ? c32 : c16)[t] = spatc_cpu_ms() - c0;
    }
  }
  double kernel_ms = median(tk, (int)repeats);
  double f32_ms = -1, cpu_ratio = -1;
  if (k32) {
    f32_ms = median(t32, (int)repeats);
    double a = median(c32, (int)repeats), b = median(c16, (int)repeats);
    cpu_ratio = b > 0 ? a / b : -1;
    spat_convert(h16[3], dt, in->o, SPAT_DTYPE_F32, nq);
  }
  free(t32);
  double bwd_ms = -1;
  if (opt->backward) {
    fprintf(stderr, "bench %s: running the backward (%lld repeats)\n", name,
            (long long)repeats);
    bwd_ms = time_backward(in, kcache ? kcache : kernel, &T, repeats);
    if (bwd_ms < 0) goto out;
  }

  /* nnz (and the mask rows for the dense baseline) */
  fprintf(stderr, "bench %s: counting the mask\n", name);
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
  double elems = (double)(B * H - cached) * (double)Lq * (double)Lk;
  if (elems > COUNT_MAX) step = (int64_t)(elems / COUNT_MAX) + 1;
  /* rows not cached come MASK_ROWS at a time when all are counted: one mask
   * call per block (the interpreter computes per call what a row needs of
   * the whole head, e.g. route's key clusters) */
  enum { MASK_ROWS = 64 };
  uint8_t *row = malloc((size_t)Lk * MASK_ROWS + 1);
  spans = malloc(sizeof *spans * (size_t)(H * Lq) + 1);
  int64_t nnz = 0, sampled = 0;
  if (!row || !spans) {
    free(row);
    goto oom;
  }
  /* sequence b > 0: rows as heads past the cached ones, not in spans */
  row_span other;
  for (int64_t b = 0; b < B; b++)
  for (int64_t h = 0; h < H; h++)
    for (int64_t r = 0; r < Lq; r++) {
      row_span *rs = b == 0 ? &spans[h * Lq + r] : &other;
      bool in_cache = b == 0 && h < cached;
      *rs = (row_span){-1, -1, -1};
      if (!in_cache && ((b * H + h) * Lq + r) % step) continue;
      if (!in_cache && step > 1) sampled++;
      int64_t nb = !in_cache && step == 1 ? MASK_ROWS - r % MASK_ROWS : 1;
      if (nb > Lq - r) nb = Lq - r;
      uint8_t *out = in_cache ? mcache + (h * Lq + r) * Lk
                     : step == 1 ? row + r % MASK_ROWS * Lk : row;
      spat_status st = !in_cache && step == 1 && r % MASK_ROWS != 0 ? SPAT_OK
                       : spat_kernel_mask(kernel, &T, in->args, in->n_args, b, h, r,
                                          nb, out);
      if (st != SPAT_OK) {
        spatc_api_error(in->pat->ctx, st);
        free(row);
        goto out;
      }
      rs->n = 0;
      for (int64_t j = 0; j < Lk; j++)
        if (out[j]) {
          if (rs->n++ == 0) rs->first = j;
          rs->last = j;
        }
      nnz += rs->n;
    }
  free(row);
  if (step > 1) { /* scale the sampled rows' count to all of them */
    int64_t exact = 0;
    for (int64_t t = 0; t < cached * Lq * Lk; t++) exact += mcache[t] != 0;
    nnz = exact + (int64_t)((double)(nnz - exact) * (double)((B * H - cached) * Lq) /
                            (double)(sampled ? sampled : 1));
  }
  double gflops = kernel_ms > 0 ? 4.0 * (double)nnz * (double)D / (kernel_ms * 1e6) : 0;
  double bwd_gflops =
      bwd_ms > 0 ? 10.0 * (double)nnz * (double)D / (bwd_ms * 1e6) : 0;

  /* baseline 1: per-row window loop of the same mean width */
  int64_t wl = 0, wr = 0;
  /* (spans hold sequence 0: with B > 1 the others may differ) */
  bool exact_window = B == 1 && is_window(spans, H, Lq, Lk, &wl, &wr);
  if (!exact_window) {
    double mean = B * H * Lq > 0 ? (double)nnz / (double)(B * H * Lq) : 0;
    wl = (int64_t)(mean + 0.5) - 1, wr = 0;
    if (wl < 0) wl = 0;
  }
  fprintf(stderr, "bench %s: baseline loop (window %lld, %lld)\n", name,
          (long long)wl, (long long)wr);
  bl_problem la = {H, Hkv, Lq, Lk, D, A->q.data, A->k.data, A->v.data, o2, 0};
  double tl[3];
  for (int t = 0; t < 3; t++) {
    double t0 = spatc_now_ms();
    if (bl_window(&la, wl, wr, (int)threads) != 0) goto oom;
    tl[t] = spatc_now_ms() - t0;
  }
  double loop_ms = median(tl, 3) * (double)B; /* sequence 0 of B */
  double loop_err = -1;
  if (exact_window) {
    loop_err = 0;
    for (size_t t = 0; t < nq0; t++) {
      double e = fabs((double)o2[t] - (double)in->o[t]);
      if (e > loop_err) loop_err = e;
    }
  }

  /* baseline 2: dense masked attention with BLAS (heads [0, cached)) */
  double dense_ms = -1, dense_err = -1;
  if (dense && cached > 0) {
    fprintf(stderr, "bench %s: baseline dense BLAS (%lld heads)\n", name,
            (long long)cached);
    bl_problem da = la;
    da.H = cached, da.Hkv = cached / group;
    masks M = {mcache, Lq, Lk};
    double td[3];
    for (int t = 0; t < 3; t++) {
      double t0 = spatc_now_ms();
      if (bl_dense(&da, mask_cb, &M, (int)threads) != 0) goto oom;
      td[t] = spatc_now_ms() - t0;
    }
    dense_ms = median(td, 3) * (double)(B * H) / (double)cached;
    dense_err = 0;
    for (size_t t = 0; t < (size_t)(cached * Lq * D); t++) {
      double e = fabs((double)o2[t] - (double)in->o[t]);
      if (e > dense_err) dense_err = e;
    }
  }

  double density =
      Lq && Lk ? (double)nnz / ((double)(B * H) * (double)Lq * (double)Lk) : 0;
  double peak = 100.0 * gflops / (PEAK_PER_CORE * (double)threads);
  if (json) {
    printf("{\"pattern\": \"%s\", \"file\": \"%s\", \"B\": %lld, \"Lq\": %lld, \"Lk\": %lld, "
           "\"H\": %lld, \"Hkv\": %lld, \"D\": %lld, \"threads\": %lld, "
           "\"nnz\": %lld, \"density\": %.6f, \"compile_ms\": %.3f, "
           "\"cold_ms\": %.3f, \"warm_ms\": %.3f, \"cached\": %s, "
           "\"kernel_ms\": %.3f, \"gflops\": %.3f, \"peak_pct\": %.2f, "
           "\"loop_ms\": %.3f, \"loop_window\": [%lld, %lld], "
           "\"loop_exact\": %s, \"dense_ms\": %.3f, \"vs_loop\": %.3f, "
           "\"vs_dense\": %.3f, \"max_err_dense\": %.3g, \"max_err_loop\": %.3g, "
           "\"nnz_sampled\": %s, \"dtype\": \"%s\", \"f32_ms\": %.3f, "
           "\"vs_f32\": %.3f, \"vs_f32_cpu\": %.3f, \"backward_ms\": %.3f, "
           "\"backward_gflops\": %.3f, \"backward_ratio\": %.3f}\n",
           name, file, (long long)B, (long long)Lq, (long long)Lk, (long long)H,
           (long long)Hkv, (long long)D, (long long)threads, (long long)nnz,
           density, compile_ms, cold_ms, warm_ms, kcache ? "true" : "false", kernel_ms, gflops, peak, loop_ms, (long long)wl,
           (long long)wr, exact_window ? "true" : "false", dense_ms,
           loop_ms / kernel_ms, dense_ms > 0 ? dense_ms / kernel_ms : -1.0,
           dense_err, loop_err, step > 1 ? "true" : "false",
           dt == SPAT_DTYPE_BF16 ? "bf16" : dt == SPAT_DTYPE_F16 ? "f16" : "f32",
           f32_ms, f32_ms > 0 ? f32_ms / kernel_ms : -1.0, cpu_ratio, bwd_ms,
           bwd_gflops, bwd_ms > 0 ? bwd_ms / kernel_ms : -1.0);
  } else {
    printf("pattern %s (%s): B %lld, Lq %lld, Lk %lld, H %lld (kv %lld), D %lld, "
           "threads %lld\n", name, file, (long long)B, (long long)Lq, (long long)Lk,
           (long long)H, (long long)Hkv, (long long)D, (long long)threads);
    printf("  allowed pairs   %s%lld (density %.4f)\n", step > 1 ? "about " : "",
           (long long)nnz, density);
    printf("  compile         %.1f ms (median of 5)\n", compile_ms);
    if (cold_ms >= 0)
      printf("  cache           cold %.1f ms (median of 3), warm %.2f ms "
             "(median of 5)\n", cold_ms, warm_ms);
    printf("  kernel          %.3f ms (median of %lld)\n", kernel_ms, (long long)repeats);
    if (f32_ms > 0)
      printf("  float32 kernel  %.3f ms on the same rounded inputs: %.2fx "
             "(CPU time %.2fx)\n", f32_ms, f32_ms / kernel_ms, cpu_ratio);
    printf("  throughput      %.1f GFLOP/s on allowed pairs, %.1f%% of %.0f "
           "GFLOP/s x %lld cores\n", gflops, peak, PEAK_PER_CORE, (long long)threads);
    if (bwd_ms > 0)
      printf("  backward        %.3f ms (median of %lld): %.1f GFLOP/s on "
             "10 D nnz, %.2fx the forward\n", bwd_ms, (long long)repeats,
             bwd_gflops, bwd_ms / kernel_ms);
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
  rc = spatc_error("out of memory");
out:
  spat_kernel_free(kernel);
  spat_kernel_free(kcache);
  spat_kernel_free(k32);
  for (int x = 0; x < 4; x++) free(h16[x]);
  free(o2), free(tk), free(mcache), free(spans);
  return rc;
}

int spatc_bench_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_LEN,     OPT_LQ,
      OPT_LK,      OPT_HEADS,  OPT_KVHEADS, OPT_DIM,     OPT_THREADS,
      OPT_REPEATS, OPT_SEED,   OPT_JSON,    OPT_NO_DENSE, OPT_NO_CACHE,
      OPT_DTYPE,   OPT_BACKWARD, OPT_INPUT, OPT_BATCH, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "FILE [--len L | --lq N --lk N] [options]",
           "Times the pattern's JIT kernel (compile, run, GFLOP/s on the "
           "allowed pairs)\nagainst a per-row C loop and dense masked "
           "attention with OpenBLAS,\nand the disk kernel cache's cold and "
           "warm compile times.  The kernel timed\ncomes from the cache "
           "unless --no-cache.  With --backward, also the backward pass\n"
           "(spat_kernel_backward: GFLOP/s on 10 D nnz, time over the "
           "forward's).  Input arrays: generated (document ids) unless all are\n"
           "given with --input NAME=FILE.npy.\nDefaults: --len 4096, --seed 1.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  bench_opts opt = {0, 5, false, true, true, false, SPAT_DTYPE_F32};
  spatc_args args;
  spatc_qkv qkv;
  memset(&args, 0, sizeof args);
  memset(&qkv, 0, sizeof qkv);
  int rc = spatc_parse(&c, &sel, &sh, bench_option, &opt);
  if (!sh.Lq && !sh.Lk && !sh.L) sh.L = DEFAULT_LEN;
  if (!sh.seeded) sh.seed = DEFAULT_SEED;
  sh.seeded = true;
  if (rc == SPATC_OK) rc = spatc_qkv_setup(&qkv, &args, &sh, &c, QKV_SIZES);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }
  if (opt.threads == 0) opt.threads = spatc_cores();

  spatc_pat pat;
  int64_t *rt = NULL;
  int32_t *docs = NULL;
  spat_value *vals = NULL;
  float *o = NULL, *lse = NULL;
  rc = spatc_load(&pat, &sel);
  const spat_pattern_info *p = &pat.info;
  size_t n_rt = rc == SPATC_OK ? spatc_n_runtime(p) : 0;
  size_t n_in = rc == SPATC_OK ? p->n_args - n_rt : 0;
  if (rc == SPATC_OK && p->n_externs > 0)
    rc = spatc_error("pattern '%s' calls extern functions: it is not "
                     "benchmarked", p->name);
  if (rc == SPATC_OK) {
    rt = spatc_xmalloc(sizeof *rt * (n_rt + 1));
    rc = rt ? spatc_bind_runtime(rt, &pat, &sel) : SPATC_EUSER;
  }
  if (rc == SPATC_OK) {
    vals = spatc_xmalloc(sizeof *vals * (p->n_args + 1));
    docs = spatc_xmalloc(sizeof *docs * (size_t)(args.B * args.Lk) * (n_in + 1));
    if (!vals || !docs) rc = SPATC_EUSER;
  }
  if (rc == SPATC_OK) {
    /* B arrays of Lk per input: int[Lk] reads the first, int[B, Lk] all */
    fill_docs(docs, (int)(n_in * (size_t)args.B), args.Lk, sh.seed);
    for (size_t t = 0; t < n_rt; t++) vals[t] = spat_scalar(rt[t]);
    for (size_t t = 0; t < n_in; t++)
      vals[n_rt + t] = spat_input(docs + t * (size_t)(args.B * args.Lk));
    rc = spatc_qkv_setup(&qkv, &args, &sh, &c, QKV_QKV);
  }
  /* --input NAME=FILE.npy: every input array from a file instead */
  spatc_bound bound;
  memset(&bound, 0, sizeof bound);
  if (rc == SPATC_OK && sel.inputs.n > 0) {
    rc = spatc_bind(&bound, &pat, &sel, &args) ? SPATC_EUSER : SPATC_OK;
    for (size_t t = 0; rc == SPATC_OK && t < n_in; t++) vals[n_rt + t] = bound.args[n_rt + t];
  }
  /* float inputs (language v2): ALiBi-like values 2^-(1 + e mod 8); those
   * of three dimensions (route's centroids [H, n, D]) random unit vectors
   * from the seed, as the paper's normalised k-means centroids, so that
   * the clusters differ and are about even */
  float *fbuf[SPAT_MAX_DIMS * 4] = {NULL};
  for (size_t t = 0; rc == SPATC_OK && t < n_in && t < sizeof fbuf / sizeof fbuf[0]; t++) {
    const spat_arg_info *ai = &p->args[n_rt + t];
    /* (with --input every input came from its file) */
    if (ai->kind != SPAT_KIND_FLOAT_INPUT || sel.inputs.n > 0) continue;
    int64_t dims[SPAT_MAX_DIMS], n = 1;
    int nd = spat_arg_shape(ai, args.B, args.H, args.Hkv, args.Lq, args.Lk, args.D, dims);
    for (int d = 0; d < nd; d++) n *= dims[d];
    fbuf[t] = nd < 0 ? NULL : spatc_xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!fbuf[t]) {
      rc = spatc_error("input '%s': cannot make its values", ai->name);
      break;
    }
    uint64_t r = (uint64_t)sh.seed * 0x9E3779B97F4A7C15ull + t;
    for (int64_t e = 0; e < n; e++) {
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;
      fbuf[t][e] = nd == 3 ? (float)(r >> 40) / (float)(1 << 23) - 1.0f
                           : 1.0f / (float)(2 << (e % 8));
    }
    for (int64_t e = 0; nd == 3 && dims[2] > 0 && e < n; e += dims[2]) {
      double sq = 0;
      for (int64_t d = 0; d < dims[2]; d++) sq += (double)fbuf[t][e + d] * fbuf[t][e + d];
      for (int64_t d = 0; d < dims[2] && sq > 0; d++) fbuf[t][e + d] /= (float)sqrt(sq);
    }
    vals[n_rt + t] = spat_input_f32(fbuf[t]);
  }
  if (rc == SPATC_OK) {
    o = spatc_xmalloc(sizeof(float) * (size_t)(args.B * args.H * args.Lq * args.D));
    lse = spatc_xmalloc(sizeof(float) * (size_t)(args.B * args.H * args.Lq));
    if (!o || !lse) rc = SPATC_EUSER;
  }
  if (rc == SPATC_OK) {
    bench_in in = {sel.file, &pat, args, vals, p->n_args, o, lse};
    rc = bench(&in, &opt);
  }
  free(o), free(lse), free(docs), free(vals), free(rt);
  spatc_bound_free(&bound);
  for (size_t t = 0; t < sizeof fbuf / sizeof fbuf[0]; t++) free(fbuf[t]);
  spatc_qkv_free(&qkv);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
