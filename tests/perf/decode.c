/* tests/perf/decode.c: the decode benchmark (build/bench-decode, run by
 * bench/run.sh; here, not in bench/, because it links the internal library
 * to force either path through kr_decode_max_lq):
 * issue 12's case, causal window 4096 + 4 sinks over Lk = 32768, H = 32 on
 * Hkv = 8, D = 128, fp32, 1 thread, through the public API (JIT).
 *
 *   bandwidth   a streaming-read baseline in this process: the sum of a
 *               256 MB float buffer (4 vector accumulators), best of 5
 *   bound       (bytes of K and V the pattern reads: the keys of the union
 *               of a KV head's rows, counted from the interpreter's mask,
 *               times Hkv D 4 bytes, times 2) / bandwidth
 *   rows        Lq = 1 and 16 (decode), Lq = 64 (prefill), each the median
 *               of REPEATS runs; before each run the 256 MB buffer is read
 *               again so that K and V (34 MB, about L3) come from memory
 *   threshold   Lq = 1..64 through each path (kr_decode_max_lq forced), the
 *               table the default KR_DECODE_MAX_LQ comes from
 *   threads     causal, B = 1, Hkv = 1, H = 8, Lk = 131072, Lq = 1: 1 and 2
 *               threads (one (batch, KV head) pair: the keys are split)
 *
 * Prints a markdown section on stdout.  Usage: bench-decode [REPEATS].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel_rt.h"
#include "spat.h"

#define MB (1024.0 * 1024.0)

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* process CPU time: on a loaded machine, what the run itself cost */
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

typedef float v16 __attribute__((vector_size(64), aligned(64)));

__attribute__((target_clones("avx512f", "avx2", "default"))) static float
stream_sum(const float *p, size_t n) {
  v16 a = {0}, b = {0}, c = {0}, d = {0};
  const v16 *v = (const v16 *)(const void *)p;
  for (size_t x = 0; x + 4 <= n / 16; x += 4)
    a += v[x], b += v[x + 1], c += v[x + 2], d += v[x + 3];
  a += b + c + d;
  float s = 0;
  for (int k = 0; k < 16; k++) s += a[k];
  return s;
}

static float *big;
static size_t big_n;
static volatile float sink;

/* GB/s, best of 5, by wall time; *cpu_gbs by process CPU time. */
static double bandwidth(double *cpu_gbs) {
  double best = 0;
  *cpu_gbs = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = now(), c0 = cpu_now();
    sink = stream_sum(big, big_n);
    double gbs = (double)big_n * 4 / (now() - t0) / 1e9;
    double cgbs = (double)big_n * 4 / (cpu_now() - c0) / 1e9;
    if (gbs > best) best = gbs;
    if (cgbs > *cpu_gbs) *cpu_gbs = cgbs;
  }
  return best;
}

static float *rnd(size_t n) {
  float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
  uint64_t s = 42 + n;
  for (size_t x = 0; x < n; x++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[x] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
  }
  return p;
}

typedef struct cs {
  int64_t H, Hkv, Lq, Lk, D;
  int threads;
} cs;

static const char *SRC =
    "pattern decode_case = causal & (cols(0 .. 4) | window(4096, 0));";

static spat_kernel *compile_src(spat_ctx *ctx, const char *src, int64_t D,
                                int threads, spat_backend be) {
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(ctx, "decode.pat", src, NULL, &p) != SPAT_OK)
    return NULL;
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, threads, be, 0,
                            SPAT_DTYPE_F32};
  spat_kernel *k = NULL;
  spat_compile(p, &o, &k);
  spat_pattern_free(p);
  return k;
}

static spat_kernel *compile(spat_ctx *ctx, int64_t D, int threads,
                            spat_backend be) {
  return compile_src(ctx, SRC, D, threads, be);
}

/* Allowed pairs of all heads and the keys of the union of a KV head's
 * rows (head 0's: the pattern is the same for every head). */
static void count(spat_ctx *ctx, const cs *c, double *pairs, double *keys) {
  spat_kernel *ki = compile(ctx, c->D, 1, SPAT_BACKEND_INTERP);
  spat_tensors t = {1, c->H, c->Hkv, c->Lq, c->Lk, NULL, NULL, NULL,
                    NULL, NULL, 0, NULL};
  uint8_t *m = malloc((size_t)(c->Lq * c->Lk)), *u = calloc((size_t)c->Lk, 1);
  spat_kernel_mask(ki, &t, NULL, 0, 0, 0, 0, c->Lq, m);
  double n = 0, nk = 0;
  for (int64_t x = 0; x < c->Lq * c->Lk; x++) n += m[x], u[x % c->Lk] |= m[x];
  for (int64_t j = 0; j < c->Lk; j++) nk += u[j];
  *pairs = n * (double)c->H;
  *keys = nk;
  free(m), free(u);
  spat_kernel_free(ki);
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median process CPU ms of time_case's last runs. */
static double last_cpu_ms;

/* Median ms of reps runs (the big buffer read before each). */
static double time_case(const spat_kernel *k, const cs *c, int reps) {
  size_t nq = (size_t)(c->H * c->Lq * c->D), nk = (size_t)(c->Hkv * c->Lk * c->D);
  static float *q, *kk, *v, *o;
  static size_t cq, ck;
  if (nq > cq) free(q), free(o), q = rnd(nq), o = rnd(nq), cq = nq;
  if (nk > ck) free(kk), free(v), kk = rnd(nk), v = rnd(nk), ck = nk;
  spat_tensors t = {1, c->H, c->Hkv, c->Lq, c->Lk, q, kk, v, o, NULL, 0, NULL};
  spat_kernel_call(k, &t, NULL, 0); /* warm-up */
  double ms[64], cpu[64];
  if (reps > 64) reps = 64;
  for (int r = 0; r < reps; r++) {
    sink = stream_sum(big, big_n);
    double t0 = now(), c0 = cpu_now();
    spat_kernel_call(k, &t, NULL, 0);
    cpu[r] = (cpu_now() - c0) * 1e3;
    ms[r] = (now() - t0) * 1e3;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmpd);
  qsort(cpu, (size_t)reps, sizeof *cpu, cmpd);
  last_cpu_ms = cpu[reps / 2];
  return ms[reps / 2];
}

/* The same case with k and v in a pool of pages of page_size keys,
 * [n_pages, page_size, Hkv, D], the sequence's pages shuffled; median wall
 * ms of reps runs (the big buffer read before each), CPU in last_cpu_ms. */
static double time_paged(const spat_kernel *k, const cs *c, int64_t page_size,
                         int reps) {
  int64_t n_pages = (c->Lk + page_size - 1) / page_size;
  size_t nq = (size_t)(c->H * c->Lq * c->D);
  size_t np = (size_t)(n_pages * page_size * c->Hkv * c->D);
  float *q = rnd(nq), *kp = rnd(np), *vp = rnd(np), *o = rnd(nq);
  int32_t *pt = malloc((size_t)n_pages * sizeof *pt), len = (int32_t)c->Lk;
  for (int64_t x = 0; x < n_pages; x++) pt[x] = (int32_t)x;
  uint64_t sd = 99;
  for (int64_t x = n_pages - 1; x > 0; x--) { /* Fisher-Yates */
    sd = sd * 6364136223846793005ull + 1442695040888963407ull;
    int64_t y = (int64_t)((sd >> 33) % (uint64_t)(x + 1));
    int32_t t = pt[x];
    pt[x] = pt[y], pt[y] = t;
  }
  spat_paged_kv pk = {pt, &len, n_pages, page_size, n_pages};
  spat_tensors t = {1, c->H, c->Hkv, c->Lq, 0, q, kp, vp, o, NULL, 0, &pk};
  spat_kernel_call(k, &t, NULL, 0); /* warm-up */
  double ms[64], cpu[64];
  if (reps > 64) reps = 64;
  for (int r = 0; r < reps; r++) {
    sink = stream_sum(big, big_n);
    double t0 = now(), c0 = cpu_now();
    spat_kernel_call(k, &t, NULL, 0);
    cpu[r] = (cpu_now() - c0) * 1e3;
    ms[r] = (now() - t0) * 1e3;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmpd);
  qsort(cpu, (size_t)reps, sizeof *cpu, cmpd);
  last_cpu_ms = cpu[reps / 2];
  free(q), free(kp), free(vp), free(o), free(pt);
  return ms[reps / 2];
}

/* bench-decode prof LQ N [DECODE_MAX_LQ]: only that case, N runs (for
 * perf), with the bandwidth and the bound. */
static int prof(spat_ctx *ctx, int64_t lq, int n, int64_t max_lq) {
  spat_kernel *k = compile(ctx, 128, 1, SPAT_BACKEND_JIT);
  if (!k) return 1;
  kr_decode_max_lq = max_lq;
  cs c = {32, 8, lq, 32768, 128, 1};
  double cbw, bw = bandwidth(&cbw), pairs, keys;
  count(ctx, &c, &pairs, &keys);
  double bytes = keys * (double)(c.Hkv * c.D) * 4 * 2;
  double ms = time_case(k, &c, n);
  printf("Lq %lld: %.2f ms, %.2f ms CPU (medians of %d); bound %.2f ms at "
         "%.1f GB/s, %.2f ms at %.1f GB/s CPU: %.0f%%, CPU %.0f%%\n",
         (long long)lq, ms, last_cpu_ms, n, bytes / bw / 1e6, bw,
         bytes / cbw / 1e6, cbw, 100 * bytes / bw / 1e6 / ms,
         100 * bytes / cbw / 1e6 / last_cpu_ms);
  spat_kernel_free(k);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "prof") == 0) {
    big_n = (size_t)(256 * MB / 4);
    big = rnd(big_n);
    spat_ctx *ctx = spat_ctx_new();
    int rc = prof(ctx, atoll(argv[2]), atoi(argv[3]),
                  argc > 4 ? atoll(argv[4]) : KR_DECODE_MAX_LQ);
    spat_ctx_free(ctx);
    return rc;
  }
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  if (reps < 1) reps = 1;
  big_n = (size_t)(256 * MB / 4);
  big = rnd(big_n);
  spat_ctx *ctx = spat_ctx_new();
  spat_kernel *k1 = compile(ctx, 128, 1, SPAT_BACKEND_JIT);
  spat_kernel *k2 = compile(ctx, 128, 2, SPAT_BACKEND_JIT);
  if (!k1 || !k2) {
    fprintf(stderr, "bench-decode: %s\n", spat_ctx_error(ctx));
    return 1;
  }
  double cbw, bw = bandwidth(&cbw);
  printf("## Decode (issue 12), fp32, measured in one run of bench-decode\n\n");
  printf("Causal window 4096 + 4 sinks (`causal & (cols(0 .. 4) | "
         "window(4096, 0))`), Lk = 32768, H = 32 on Hkv = 8, D = 128, 1 "
         "thread, median of %d runs, each after a 256 MB streaming read (so "
         "K and V come from memory).  Streaming-read bandwidth measured in "
         "the same process: %.1f GB/s (sum of a 256 MB buffer, best of 5); "
         "by process CPU time %.1f GB/s.  CPU ms: the median process CPU "
         "time of the same runs, against the CPU-time bound (bytes / the "
         "CPU-time bandwidth): on a loaded machine the wall times include "
         "time the process was not running.\n\n",
         reps, bw, cbw);
  printf("| Lq | path | ms | GFLOP/s | K+V bytes read | memory bound ms | "
         "%% of bound | CPU ms | CPU bound ms | %% of CPU bound |\n| ---: | "
         "--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  double t16 = 0, t64 = 0, pct1 = 0, pct16 = 0, cpct1 = 0, cpct16 = 0;
  static const int64_t lqs[] = {1, 16, 64};
  for (int x = 0; x < 3; x++) {
    cs c = {32, 8, lqs[x], 32768, 128, 1};
    double pairs, keys;
    count(ctx, &c, &pairs, &keys);
    double bytes = keys * (double)(c.Hkv * c.D) * 4 * 2;
    double ms = time_case(k1, &c, reps), bound = bytes / bw / 1e6;
    double cms = last_cpu_ms, cbound = bytes / cbw / 1e6;
    printf("| %lld | %s | %.2f | %.1f | %.1f MB | %.2f | %.0f%% | %.2f | "
           "%.2f | %.0f%% |\n",
           (long long)c.Lq, c.Lq <= kr_decode_max_lq ? "decode" : "prefill",
           ms, 4 * pairs * (double)c.D / ms / 1e6, bytes / 1e6, bound,
           100 * bound / ms, cms, cbound, 100 * cbound / cms);
    if (c.Lq == 1) pct1 = 100 * bound / ms, cpct1 = 100 * cbound / cms;
    if (c.Lq == 16)
      t16 = ms, pct16 = 100 * bound / ms, cpct16 = 100 * cbound / cms;
    if (c.Lq == 64) t64 = ms;
  }
  /* the threshold: each path at every Lq */
  printf("\nThe decode threshold (KR_DECODE_MAX_LQ = %d: decode when Lq <= "
         "it): the same case through each path, ms (medians of 3), with GQA "
         "(H = 32 on Hkv = 8) and without (H = Hkv = 8)\n\n| Lq | decode "
         "GQA 4 | prefill GQA 4 | ratio | decode GQA 1 | prefill GQA 1 | "
         "ratio |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
         KR_DECODE_MAX_LQ);
  static const int64_t sweep[] = {1, 4, 8, 16, 24, 32, 40, 48, 64};
  for (int x = 0; x < 9; x++) {
    double d[2], p[2];
    for (int g = 0; g < 2; g++) {
      cs c = {g ? 8 : 32, 8, sweep[x], 32768, 128, 1};
      kr_decode_max_lq = INT64_MAX;
      d[g] = time_case(k1, &c, reps < 3 ? reps : 3);
      kr_decode_max_lq = 0;
      p[g] = time_case(k1, &c, reps < 3 ? reps : 3);
    }
    printf("| %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
           (long long)sweep[x], d[0], p[0], d[0] / p[0], d[1], p[1],
           d[1] / p[1]);
  }
  kr_decode_max_lq = KR_DECODE_MAX_LQ;
  /* paged: the same case, pages of 16 keys, shuffled, Lq = 1 */
  {
    cs c = {32, 8, 1, 32768, 128, 1};
    double dms = time_case(k1, &c, reps), dcpu = last_cpu_ms;
    double pms = time_paged(k1, &c, 16, reps), pcpu = last_cpu_ms;
    printf("\nPaged KV cache: the Lq = 1 case with k and v in pools of pages "
           "of 16 keys ([n_pages, 16, Hkv, D], the sequence's 2048 pages "
           "shuffled), against the dense cache, medians of %d: paged %.2f ms "
           "(%.2f CPU), dense %.2f ms (%.2f CPU): paged / dense %.2fx wall, "
           "%.2fx CPU.\n", reps, pms, pcpu, dms, dcpu, pms / dms, pcpu / dcpu);
  }
  /* two threads on one (batch, KV head): causal over a long cache */
  spat_kernel *c1k = compile_src(ctx, "pattern c = causal;", 128, 1,
                                 SPAT_BACKEND_JIT);
  spat_kernel *c2k = compile_src(ctx, "pattern c = causal;", 128, 2,
                                 SPAT_BACKEND_JIT);
  cs c1 = {8, 1, 1, 131072, 128, 1};
  double a1[3], a2[3];
  for (int r = 0; r < 3; r++) {
    a1[r] = time_case(c1k, &c1, reps);
    a2[r] = time_case(c2k, &c1, reps);
  }
  spat_kernel_free(c1k);
  spat_kernel_free(c2k);
  qsort(a1, 3, sizeof *a1, cmpd);
  qsort(a2, 3, sizeof *a2, cmpd);
  printf("\n| target | bar | measured | |\n| --- | --- | --- | --- |\n");
  printf("| decode Lq = 1, %% of the memory bound | >= 40%% | %.0f%% (CPU "
         "time: %.0f%%) | %s |\n",
         pct1, cpct1, pct1 >= 40 ? "met" : "not met");
  printf("| decode Lq = 16, %% of the memory bound | (>= 40%%) | %.0f%% (CPU "
         "time: %.0f%%) | %s |\n",
         pct16, cpct16, pct16 >= 40 ? "met" : "not met");
  printf("| Lq = 16 (decode) vs Lq = 64 (prefill) | >= 2x faster | %.2fx "
         "(%.2f / %.2f ms) | %s |\n",
         t64 / t16, t64, t16, t64 / t16 >= 2 ? "met" : "not met");
  printf("| 2 threads / 1 thread, causal, B = 1, Hkv = 1, H = 8, Lk = 131072, "
         "Lq = 1 (medians of 3 alternating) | >= 1.8x | %.2fx (%.2f / %.2f ms) "
         "| %s |\n",
         a1[1] / a2[1], a1[1], a2[1], a1[1] / a2[1] >= 1.8 ? "met" : "not met");
  spat_kernel_free(k1);
  spat_kernel_free(k2);
  spat_ctx_free(ctx);
  free(big);
  return 0;
}
