/* test_threads_api.c: the public API from many threads at once, as spat.h
 * allows it; built and run under ThreadSanitizer by `make tsan` (and under
 * ASan, UBSan and valgrind with the other tests).
 *
 *  - 8 threads, each with its own context, compile with the disk cache on
 *    at the same moment: four the same pattern and parameters (one cache
 *    entry, written by four compiles at once), four others each its own;
 *    each runs its kernel and checks the result
 *  - meanwhile every thread runs three kernels made by the main thread (two
 *    JIT, one interpreter); the owner of one frees it while the others may
 *    still be running it
 *  - threads free their kernels while the others still run theirs
 *  - one pattern compiled from four threads at once (analysis of one
 *    program at a time in several threads), and patterns of one module
 *    selected, described, explained and compiled in four threads
 *  - a context's diagnostics and error read while other threads compile,
 *    fail and register functions on it
 *  - freeing anything twice, or using it after free, is detected.
 * Worker threads never call cmocka: they count what went wrong, and the
 * main thread asserts. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spat.h"

enum { NT = 8, L = 96, D = 16, H = 2 };

/* ---- a problem and its reference ------------------------------------------ */

typedef struct problem {
  float q[H * L * D], k[H * L * D], v[H * L * D], o[H * L * D], lse[H * L];
} problem;

static float rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static void problem_init(problem *p, uint64_t seed) {
  for (int x = 0; x < H * L * D; x++) p->q[x] = rnd(&seed);
  for (int x = 0; x < H * L * D; x++) p->k[x] = rnd(&seed);
  for (int x = 0; x < H * L * D; x++) p->v[x] = rnd(&seed);
}

static spat_tensors tensors(problem *p) {
  memset(p->o, 0, sizeof p->o);
  spat_tensors t = {1, H, H, L, L, p->q, p->k, p->v, p->o, p->lse, 0, NULL};
  return t;
}

/* The patterns: causal & (window(w, 0) | stride(3)), w a parameter. */
static const char *const pat_text =
    "pattern local(w = 5) = causal & (window(w, 0) | stride(3));\n";

static bool allowed(int64_t w, int64_t i, int64_t j) {
  return j <= i && (j >= i - w || (i - j) % 3 == 0);
}

/* The number of wrong outputs of p (layout [B, H, L, D], B = 1). */
static int wrong(const problem *p, int64_t w) {
  int bad = 0;
  double s[L];
  for (int h = 0; h < H; h++)
    for (int i = 0; i < L; i++) {
      const float *q = p->q + (h * L + i) * D;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < L; j++) {
        s[j] = -INFINITY;
        if (!allowed(w, i, j)) continue;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)q[d] * p->k[(h * L + j) * D + d];
        s[j] = dot / sqrt((double)D);
        if (s[j] > mx) mx = s[j];
      }
      for (int j = 0; j < L; j++)
        if (s[j] != -INFINITY) sum += exp(s[j] - mx);
      for (int d = 0; d < D; d++) {
        double want = 0;
        for (int j = 0; j < L; j++)
          if (s[j] != -INFINITY)
            want += exp(s[j] - mx) / sum * p->v[(h * L + j) * D + d];
        bad += fabs(p->o[(h * L + i) * D + d] - want) > 1e-4;
      }
      bad += fabs(p->lse[h * L + i] - (mx + log(sum))) > 1e-4;
    }
  return bad;
}

/* Runs k (pattern local with w) on a fresh problem; the number of failures
 * (status or values). */
static int run_check(const spat_kernel *k, int64_t w, uint64_t seed) {
  problem *p = malloc(sizeof *p);
  if (p == NULL) return 1;
  problem_init(p, seed);
  spat_tensors t = tensors(p);
  int bad = spat_kernel_run(k, &t) != SPAT_OK;
  if (!bad) bad = wrong(p, w) != 0;
  free(p);
  return bad;
}

static spat_pattern *parse(spat_ctx *c) {
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(c, "local.pat", pat_text, NULL, &p) != SPAT_OK)
    return NULL;
  return p;
}

static spat_kernel *compile(spat_pattern *p, int cache, spat_backend be) {
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, 2, be, cache};
  spat_kernel *k = NULL;
  return spat_compile(p, &o, &k) == SPAT_OK ? k : NULL;
}

static int count_files(const char *dir, const char *what) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += strstr(e->d_name, what) != NULL;
  closedir(d);
  return n;
}

/* A fresh XDG_CACHE_HOME for the test (set before any thread starts). */
typedef struct cache_dir {
  char dir[64], sub[96];
  char *saved;
} cache_dir;

static void cache_dir_enter(cache_dir *cd) {
  snprintf(cd->dir, sizeof cd->dir, "/tmp/spat_threads_XXXXXX");
  assert_non_null(mkdtemp(cd->dir));
  snprintf(cd->sub, sizeof cd->sub, "%s/spatc", cd->dir);
  const char *old = getenv("XDG_CACHE_HOME");
  cd->saved = old ? strdup(old) : NULL;
  assert_int_equal(setenv("XDG_CACHE_HOME", cd->dir, 1), 0);
}

static void cache_dir_leave(cache_dir *cd) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cd->dir);
  assert_int_equal(system(cmd), 0);
  if (cd->saved) {
    setenv("XDG_CACHE_HOME", cd->saved, 1);
    free(cd->saved);
  } else {
    unsetenv("XDG_CACHE_HOME");
  }
}

/* ---- eight threads ------------------------------------------------------- */

typedef struct shared {
  pthread_barrier_t start, compiled;
  const spat_kernel *ks; /* run by everyone, freed by main at the end */
  const spat_kernel *ki; /* the same, the interpreter's */
  spat_kernel *kh;       /* run by everyone, freed by thread 0 meanwhile */
  atomic_int kh_ok, kh_gone;
} shared;

typedef struct worker {
  shared *sh;
  int t;
  int64_t w;
  int bad;       /* failures seen */
  int from_cache;
  const char *where; /* the first failure */
} worker;

#define BAD(wk, what)                   \
  do {                                  \
    if ((wk)->bad++ == 0) (wk)->where = what; \
  } while (0)

static void *worker_main(void *arg) {
  worker *wk = arg;
  shared *sh = wk->sh;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = c ? parse(c) : NULL;
  if (p == NULL) BAD(wk, "parse");
  if (p && wk->w != 5 && spat_pattern_set_param(p, "w", wk->w) != SPAT_OK)
    BAD(wk, "set_param");
  pthread_barrier_wait(&sh->start); /* all compile at once */
  spat_kernel *k = p ? compile(p, 1, SPAT_BACKEND_JIT) : NULL;
  if (k == NULL) BAD(wk, "compile");
  else wk->from_cache = spat_kernel_signature(k)->from_cache;
  pthread_barrier_wait(&sh->compiled);

  for (int rep = 0; rep < 2; rep++) {
    if (k && run_check(k, wk->w, (uint64_t)(wk->t * 10 + rep)) != 0) BAD(wk, "own kernel");
    if (run_check(sh->ks, 4, (uint64_t)(100 + wk->t)) != 0) BAD(wk, "shared kernel");
    if (run_check(sh->ki, 4, (uint64_t)(300 + wk->t)) != 0) BAD(wk, "shared interpreter");
    /* kh: a run either happens (and is right) or finds the kernel freed */
    problem *pr = malloc(sizeof *pr);
    problem_init(pr, (uint64_t)(200 + wk->t));
    spat_tensors t = tensors(pr);
    spat_status st = spat_kernel_run(sh->kh, &t);
    if (st == SPAT_OK) {
      atomic_fetch_add(&sh->kh_ok, 1);
      if (wrong(pr, 7) != 0) BAD(wk, "handed-over kernel");
    } else if (st == SPAT_EINVAL) {
      atomic_fetch_add(&sh->kh_gone, 1);
    } else {
      BAD(wk, "handed-over kernel status");
    }
    free(pr);
    if (wk->t == 0 && rep == 0) spat_kernel_free(sh->kh); /* others may run it */
    /* even threads free their kernel early, odd ones keep running theirs */
    if (wk->t % 2 == 0 && rep == 0) {
      spat_kernel_free(k);
      k = NULL;
    }
  }
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
  return NULL;
}

static void test_eight_threads(void **state) {
  (void)state;
  cache_dir cd;
  cache_dir_enter(&cd);
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse(c);
  assert_non_null(p);
  assert_int_equal(spat_pattern_set_param(p, "w", 4), SPAT_OK);
  spat_kernel *ks = compile(p, 0, SPAT_BACKEND_JIT);
  assert_non_null(ks);
  spat_kernel *ki = compile(p, 0, SPAT_BACKEND_INTERP);
  assert_non_null(ki);
  assert_int_equal(spat_pattern_set_param(p, "w", 7), SPAT_OK);
  spat_kernel *kh = compile(p, 0, SPAT_BACKEND_JIT);
  assert_non_null(kh);

  shared sh = {.ks = ks, .ki = ki, .kh = kh};
  assert_int_equal(pthread_barrier_init(&sh.start, NULL, NT), 0);
  assert_int_equal(pthread_barrier_init(&sh.compiled, NULL, NT), 0);
  worker wk[NT];
  pthread_t th[NT];
  for (int t = 0; t < NT; t++) {
    /* threads 0-3: w = 5 (one cache entry); 4-7: w = 6 .. 9 */
    wk[t] = (worker){&sh, t, t < 4 ? 5 : t + 2, 0, -1, NULL};
    assert_int_equal(pthread_create(&th[t], NULL, worker_main, &wk[t]), 0);
  }
  for (int t = 0; t < NT; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
  int compiled_same = 0;
  for (int t = 0; t < NT; t++) {
    if (wk[t].bad) fprintf(stderr, "thread %d: %d failures, first: %s\n", t, wk[t].bad, wk[t].where);
    assert_int_equal(wk[t].bad, 0);
    /* a fresh cache: threads 4-7 compiled their own entries; of 0-3 at
     * least the first compiled (the others may have come after its store,
     * as under valgrind, which runs one thread at a time) */
    if (t >= 4) assert_int_equal(wk[t].from_cache, 0);
    else compiled_same += wk[t].from_cache == 0;
  }
  assert_true(compiled_same >= 1);
  /* thread 0 ran kh before freeing it; every other run either ran or was
   * refused */
  assert_true(atomic_load(&sh.kh_ok) >= 1);
  assert_int_equal(atomic_load(&sh.kh_ok) + atomic_load(&sh.kh_gone), 2 * NT);
  /* one entry per distinct (pattern, w): 5, 6, 7, 8, 9; no temporary left */
  assert_int_equal(count_files(cd.sub, ".spk"), 5);
  assert_int_equal(count_files(cd.sub, ".tmp"), 0);
  /* and the entries work */
  assert_int_equal(spat_pattern_set_param(p, "w", 5), SPAT_OK);
  spat_kernel *kc = compile(p, 1, SPAT_BACKEND_JIT);
  assert_non_null(kc);
  assert_int_equal(spat_kernel_signature(kc)->from_cache, 1);
  assert_int_equal(run_check(kc, 5, 7), 0);
  spat_kernel_free(kc);

  pthread_barrier_destroy(&sh.start);
  pthread_barrier_destroy(&sh.compiled);
  spat_kernel_free(ks);
  spat_kernel_free(ki);
  spat_pattern_free(p);
  spat_ctx_free(c);
  cache_dir_leave(&cd);
}

/* ---- one pattern, four compiling threads --------------------------------- */

typedef struct same {
  spat_pattern *p;
  pthread_barrier_t *start;
  spat_backend be;
  int bad;
} same;

static void *same_main(void *arg) {
  same *s = arg;
  pthread_barrier_wait(s->start);
  for (int rep = 0; rep < 2; rep++) {
    spat_kernel *k = compile(s->p, 0, s->be);
    if (k == NULL || run_check(k, 6, (uint64_t)rep) != 0) s->bad++;
    spat_kernel_free(k);
  }
  return NULL;
}

static void test_one_pattern_many_compiles(void **state) {
  (void)state;
  enum { N = 4 };
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse(c);
  assert_non_null(p);
  assert_int_equal(spat_pattern_set_param(p, "w", 6), SPAT_OK);
  pthread_barrier_t start;
  assert_int_equal(pthread_barrier_init(&start, NULL, N), 0);
  same s[N];
  pthread_t th[N];
  for (int n = 0; n < N; n++) {
    s[n] = (same){p, &start, n % 2 ? SPAT_BACKEND_INTERP : SPAT_BACKEND_JIT, 0};
    assert_int_equal(pthread_create(&th[n], NULL, same_main, &s[n]), 0);
  }
  for (int n = 0; n < N; n++) assert_int_equal(pthread_join(th[n], NULL), 0);
  for (int n = 0; n < N; n++) assert_int_equal(s[n].bad, 0);
  pthread_barrier_destroy(&start);
  spat_pattern_free(p);
  spat_ctx_free(c);
}

/* ---- one module, patterns selected and compiled in four threads ---------- */

typedef struct modjob {
  spat_module *m;
  pthread_barrier_t *start;
  int t, bad;
} modjob;

static void *mod_main(void *arg) {
  modjob *j = arg;
  pthread_barrier_wait(j->start);
  for (int rep = 0; rep < 2; rep++) {
    int64_t w = 2 + j->t + rep;
    spat_param par = {"w", w};
    spat_pattern *p = NULL;
    if (spat_module_select(j->m, "local", &par, 1, &p) != SPAT_OK) {
      j->bad++;
      continue;
    }
    spat_pattern_info info;
    if (spat_pattern_describe(p, &info) != SPAT_OK || info.n_args != 0) j->bad++;
    char *text = NULL;
    spat_explain_options eo = {1, 64, 64, 16, 16};
    if (spat_pattern_explain(p, &eo, NULL, 0, &text) != SPAT_OK) j->bad++;
    free(text);
    spat_kernel *k = compile(p, 0, (j->t + rep) % 2 ? SPAT_BACKEND_INTERP : SPAT_BACKEND_JIT);
    if (k == NULL || run_check(k, w, (uint64_t)j->t) != 0) j->bad++;
    spat_pattern_free(p); /* the kernel keeps what it needs */
    if (k && run_check(k, w, 9) != 0) j->bad++;
    spat_kernel_free(k);
  }
  return NULL;
}

/* The patterns of one module share its source (arena, diag): selecting,
 * describing, explaining and compiling them in four threads at once. */
static void test_one_module_many_threads(void **state) {
  (void)state;
  enum { N = 4 };
  spat_ctx *c = spat_ctx_new();
  spat_module *m = NULL;
  assert_int_equal(spat_module_parse_string(c, "local.pat", pat_text, &m), SPAT_OK);
  pthread_barrier_t start;
  assert_int_equal(pthread_barrier_init(&start, NULL, N), 0);
  modjob j[N];
  pthread_t th[N];
  for (int n = 0; n < N; n++) {
    j[n] = (modjob){m, &start, n, 0};
    assert_int_equal(pthread_create(&th[n], NULL, mod_main, &j[n]), 0);
  }
  for (int n = 0; n < N; n++) assert_int_equal(pthread_join(th[n], NULL), 0);
  for (int n = 0; n < N; n++) assert_int_equal(j[n].bad, 0);
  pthread_barrier_destroy(&start);
  spat_module_free(m);
  spat_module_free(m); /* ignored */
  assert_int_equal(spat_module_n_patterns(m), 0);
  spat_pattern *p = NULL;
  assert_int_equal(spat_module_select(m, NULL, NULL, 0, &p), SPAT_EINVAL);
  spat_ctx_free(c);
}

/* ---- diagnostics read while others compile on the context ---------------- */

static bool always(int64_t a, int64_t b) {
  (void)a;
  (void)b;
  return true;
}

typedef struct diagjob {
  spat_ctx *c;
  atomic_int *stop;
  pthread_barrier_t *start;
  int role; /* 0: compiles failing and good patterns, 1: registers, 2: reads */
  int bad, reads;
} diagjob;

static const char *const neg_text = "pattern neg(w = 1) = window(w);\n";
static const char *const ext_text =
    "extern fn ok(int, int) -> bool;\npattern e = where(ok(i, j)) & causal;\n";

static void *diag_main(void *arg) {
  diagjob *j = arg;
  pthread_barrier_wait(j->start);
  if (j->role == 0) {
    spat_pattern *neg = NULL, *good = NULL, *ext = NULL;
    if (spat_pattern_parse_string(j->c, "neg.pat", neg_text, NULL, &neg) != SPAT_OK ||
        spat_pattern_parse_string(j->c, "local.pat", pat_text, NULL, &good) != SPAT_OK ||
        spat_pattern_parse_string(j->c, "ext.pat", ext_text, NULL, &ext) != SPAT_OK)
      j->bad++;
    for (int rep = 0; rep < 40 && !j->bad; rep++) {
      spat_pattern_set_param(neg, "w", -1 - rep);
      if (spat_compile(neg, &(spat_compile_options){D, 0, 1, SPAT_BACKEND_INTERP, 0},
                       &(spat_kernel *){NULL}) != SPAT_EPARSE)
        j->bad++;
      spat_kernel *k = compile(good, 0, SPAT_BACKEND_INTERP);
      if (k == NULL) j->bad++;
      spat_kernel_free(k);
      k = compile(ext, 0, SPAT_BACKEND_INTERP); /* reads the registry */
      if (k == NULL) j->bad++;
      spat_kernel_free(k);
    }
    spat_pattern_free(neg);
    spat_pattern_free(good);
    spat_pattern_free(ext);
    atomic_store(j->stop, 1);
  } else if (j->role == 1) {
    while (!atomic_load(j->stop)) {
      char name[16];
      snprintf(name, sizeof name, "f%d", j->reads++ % 50);
      if (spat_ctx_register_fn(j->c, name, SPAT_FN(always), 2) != SPAT_OK ||
          spat_ctx_register_fn(j->c, "ok", SPAT_FN(always), 2) != SPAT_OK)
        j->bad++;
    }
  } else {
    /* at least 100 reads, and as many as fit while the others work */
    while (!atomic_load(j->stop) || j->reads < 100) {
      /* whole messages only: "" or a located error */
      const char *d = spat_ctx_last_diagnostics(j->c);
      if (d[0] != '\0' && (strncmp(d, "neg.pat:1:", 10) != 0 ||
                           strstr(d, "error:") == NULL || d[strlen(d) - 1] != '\n'))
        j->bad++;
      const char *e = spat_ctx_error(j->c);
      if (e[0] != '\0' && strncmp(e, "neg.pat:1:", 10) != 0) j->bad++;
      j->reads++;
    }
  }
  return NULL;
}

static void test_diagnostics_while_compiling(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  assert_int_equal(spat_ctx_register_fn(c, "ok", SPAT_FN(always), 2), SPAT_OK);
  atomic_int stop = 0;
  pthread_barrier_t start;
  assert_int_equal(pthread_barrier_init(&start, NULL, 4), 0);
  diagjob j[4] = {{c, &stop, &start, 0, 0, 0}, {c, &stop, &start, 1, 0, 0},
                  {c, &stop, &start, 2, 0, 0}, {c, &stop, &start, 2, 0, 0}};
  pthread_t th[4];
  for (int n = 0; n < 4; n++)
    assert_int_equal(pthread_create(&th[n], NULL, diag_main, &j[n]), 0);
  for (int n = 0; n < 4; n++) assert_int_equal(pthread_join(th[n], NULL), 0);
  pthread_barrier_destroy(&start);
  for (int n = 0; n < 4; n++) {
    if (j[n].bad) fprintf(stderr, "role %d: %d bad of %d\n", j[n].role, j[n].bad, j[n].reads);
    assert_int_equal(j[n].bad, 0);
  }
  assert_true(j[2].reads >= 100 && j[3].reads >= 100);
  /* the last compile succeeded: no diagnostics; the last error a compile's */
  assert_string_equal(spat_ctx_last_diagnostics(c), "");
  assert_non_null(strstr(spat_ctx_error(c), "neg.pat:1:"));
  spat_ctx_free(c);
}

/* ---- lifetimes ------------------------------------------------------------ */

/* Freeing twice, using after free, or freeing what was never made: ignored
 * or SPAT_EINVAL, and no memory is touched (ASan and valgrind check that);
 * objects go in any order. */
static void test_double_free(void **state) {
  (void)state;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = parse(c);
  assert_non_null(p);
  spat_kernel *k = compile(p, 0, SPAT_BACKEND_INTERP);
  assert_non_null(k);

  /* the context first: its pattern and kernel keep working */
  spat_ctx_free(c);
  spat_ctx_free(c);
  assert_string_equal(spat_ctx_error(c),
                      "spat: not a live context (freed, or never made)");
  assert_string_equal(spat_ctx_last_diagnostics(c), "");
  spat_pattern *p2 = NULL;
  assert_int_equal(spat_pattern_parse_string(c, NULL, pat_text, NULL, &p2), SPAT_EINVAL);
  assert_null(p2);
  assert_int_equal(spat_ctx_register_fn(c, "f", SPAT_FN(always), 2), SPAT_EINVAL);
  assert_int_equal(run_check(k, 5, 1), 0);
  spat_kernel *k2 = compile(p, 0, SPAT_BACKEND_JIT);
  assert_non_null(k2);

  spat_pattern_free(p);
  spat_pattern_free(p);
  assert_null(spat_pattern_name(p));
  assert_int_equal(spat_pattern_n_params(p), 0);
  assert_int_equal(spat_pattern_set_param(p, "w", 3), SPAT_EINVAL);
  assert_int_equal(spat_pattern_param(p, 0, NULL, NULL), SPAT_EINVAL);
  spat_kernel *k3 = NULL;
  spat_compile_options o = {D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT, 0};
  assert_int_equal(spat_compile(p, &o, &k3), SPAT_EINVAL);
  assert_null(k3);

  assert_int_equal(run_check(k2, 5, 2), 0);
  spat_kernel_free(k);
  spat_kernel_free(k);
  assert_null(spat_kernel_signature(k));
  assert_null(spat_kernel_entry(k));
  problem *pr = malloc(sizeof *pr);
  problem_init(pr, 3);
  spat_tensors t = tensors(pr);
  assert_int_equal(spat_kernel_run(k, &t), SPAT_EINVAL);
  assert_int_equal(spat_kernel_call(k, &t, NULL, 0), SPAT_EINVAL);
  free(pr);
  assert_int_equal(run_check(k2, 5, 4), 0); /* the last user */
  spat_kernel_free(k2);
  spat_kernel_free(k2);

  /* pointers that were never objects, and objects of another kind */
  int junk[16] = {0};
  spat_kernel_free((spat_kernel *)junk);
  spat_pattern_free((spat_pattern *)junk);
  spat_ctx_free((spat_ctx *)junk);
  spat_ctx *c2 = spat_ctx_new();
  spat_kernel_free((spat_kernel *)c2);
  spat_pattern_free((spat_pattern *)c2);
  assert_string_equal(spat_ctx_error(c2), ""); /* still live */
  spat_ctx_free(c2);
  spat_kernel_free(NULL);
  spat_pattern_free(NULL);
  spat_ctx_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* first: the process's first JIT compiles happen in four threads */
      cmocka_unit_test(test_one_pattern_many_compiles),
      cmocka_unit_test(test_eight_threads),
      cmocka_unit_test(test_one_module_many_threads),
      cmocka_unit_test(test_diagnostics_while_compiling),
      cmocka_unit_test(test_double_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
