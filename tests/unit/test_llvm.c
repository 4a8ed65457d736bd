/* test_llvm.c: the LLVM backend's shared parts: the one pipeline
 * (llvm_pipeline.h), the kernel-kind table (codegen.h, kinds.c) and the
 * process-wide tile cache (tile_cache.h).
 *
 *   - the shared tile: compiled once for two contexts compiling in two
 *     threads at once (cache off, then on), same results bit for bit;
 *   - every (kind, D, dtype) the table lists compiles, nothing else does;
 *   - JIT, AOT and cached kernels come from one pipeline: every path runs
 *     lp_optimize, the AOT object's tile is the JIT's tile instruction for
 *     instruction, and the cache key records the passes;
 *   - tile kernels in the disk cache: stored, read back instead of
 *     compiled, and a damaged or foreign entry is compiled again and
 *     rewritten.
 * The first test must run first: it needs a D no test compiled before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spat.h"
#include "aot.h"
#include "arena.h"
#include "backend.h"
#include "codegen.h"
#include "diag.h"
#include "frontend.h"
#include "jit.h"
#include "llvm_pipeline.h"
#include "tile_cache.h"

#define TL 200
#define TH 2
#define THREAD_D 96 /* no test before test_threads compiles this D */

static const char *const src =
    "pattern lf(w = 16) = window(w, w) | global({0, 3});\n";

typedef struct fixture {
  char dir[64];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/spat-test-llvm.XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  unsetenv("XDG_CACHE_HOME");
  free(f);
  return rc == 0 ? 0 : -1;
}

/* Files in dir whose names end in ext. */
static int count_files(const char *dir, const char *ext, char *last,
                       size_t n) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int count = 0;
  size_t el = strlen(ext);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    if (len > el && strcmp(e->d_name + len - el, ext) == 0) {
      if (last) snprintf(last, n, "%s/%s", dir, e->d_name);
      count++;
    }
  }
  closedir(d);
  return count;
}

/* --- two contexts in two threads ------------------------------------------ */

typedef struct job {
  int64_t D;
  int cache;
  pthread_barrier_t *go;
  float o[TH * TL * 128];
  int ok, from_cache;
} job;

static float *inputs(size_t n, unsigned seed) {
  float *x = malloc(n * sizeof *x);
  for (size_t t = 0; t < n; t++) {
    seed = seed * 1103515245u + 12345u;
    x[t] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  return x;
}

static void *compile_and_run(void *arg) {
  job *j = arg;
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  spat_kernel *k = NULL;
  size_t n = (size_t)(TH * TL * j->D);
  float *q = inputs(n, 1), *kk = inputs(n, 2), *v = inputs(n, 3);
  spat_compile_options o = {j->D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_JIT,
                            j->cache};
  j->ok = spat_pattern_parse_string(c, "lf.pat", src, NULL, &p) == SPAT_OK;
  pthread_barrier_wait(j->go); /* both compile at the same moment */
  j->ok = j->ok && spat_compile(p, &o, &k) == SPAT_OK;
  spat_tensors t = {1, TH, TH, TL, TL, q, kk, v, j->o, NULL, 0, NULL};
  j->ok = j->ok && spat_kernel_call(k, &t, NULL, 0) == SPAT_OK;
  if (j->ok) j->from_cache = spat_kernel_signature(k)->from_cache;
  if (!j->ok) fprintf(stderr, "thread: %s\n", spat_ctx_error(c));
  spat_kernel_free(k);
  spat_pattern_free(p);
  spat_ctx_free(c);
  free(q), free(kk), free(v);
  return NULL;
}

static void run_pair(job *a, job *b) {
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, 2);
  a->go = b->go = &go;
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, compile_and_run, a), 0);
  assert_int_equal(pthread_create(&tb, NULL, compile_and_run, b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  pthread_barrier_destroy(&go);
  assert_true(a->ok);
  assert_true(b->ok);
}

/* Two contexts compiling at once share one tile kernel, compiled once. */
static void test_threads(void **state) {
  fixture *f = *state;
  size_t n = (size_t)(TH * TL * THREAD_D);
  job *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  a->D = b->D = THREAD_D;
  long before = tc_n_compiled();
  run_pair(a, b);
  assert_int_equal(tc_n_compiled() - before, 2); /* the fwd and decode tiles */
  assert_memory_equal(a->o, b->o, n * sizeof(float));

  /* with the disk cache: one kernel entry and one tile entry, the same
   * numbers (the same tile code) */
  char xdg[128], dir[160];
  snprintf(xdg, sizeof xdg, "%s/xdg", f->dir);
  snprintf(dir, sizeof dir, "%s/spatc", xdg);
  assert_int_equal(setenv("XDG_CACHE_HOME", xdg, 1), 0);
  job *c = calloc(1, sizeof *c), *d = calloc(1, sizeof *d);
  c->D = d->D = THREAD_D;
  c->cache = d->cache = 1;
  run_pair(c, d);
  assert_int_equal(tc_n_compiled() - before, 2); /* still the two */
  assert_int_equal(count_files(dir, ".spk", NULL, 0), 1);
  assert_int_equal(count_files(dir, ".spt", NULL, 0), 2);
  assert_memory_equal(c->o, a->o, n * sizeof(float));
  assert_memory_equal(d->o, a->o, n * sizeof(float));
  char err[256];
  assert_int_equal(aot_cache_clear(dir, err, sizeof err), 1); /* kernels */
  assert_int_equal(count_files(dir, ".spt", NULL, 0), 0); /* tiles too */
  free(a), free(b), free(c), free(d);
}

/* --- the kernel-kind table ------------------------------------------------- */

static void test_kinds(void **state) {
  (void)state;
  char err[256];
  for (int id = 0; id < CG_N_KINDS; id++) {
    const cg_kind *k = &cg_kinds[id];
    assert_int_equal(k->id, id);
    assert_non_null(k->name);
    assert_non_null(k->symbol);
    assert_non_null(k->gen);
    assert_true(k->n_dims > 0);
    assert_true(k->dtypes != 0);
    for (int x = 1; x < k->n_dims; x++) assert_true(k->dims[x - 1] < k->dims[x]);
    for (int t = 0; t < CG_N_DTYPES; t++) {
      if (!(k->dtypes & (1u << t))) continue;
      void *seen[64] = {0};
      for (int x = 0; x < k->n_dims; x++) { /* every listed D compiles */
        void *fn = NULL, *again = NULL;
        assert_true(cg_kind_supports(k, k->dims[x], (cg_dtype)t));
        if (tc_get(k, k->dims[x], (cg_dtype)t, NULL, &fn, err, sizeof err))
          fail_msg("%s D=%lld %s: %s", k->name, (long long)k->dims[x],
                   cg_dtype_name((cg_dtype)t), err);
        assert_non_null(fn);
        for (int y = 0; y < x; y++) assert_ptr_not_equal(seen[y], fn);
        seen[x] = fn;
        long n = tc_n_compiled();
        assert_int_equal(tc_get(k, k->dims[x], (cg_dtype)t, NULL, &again,
                                err, sizeof err),
                         0);
        assert_ptr_equal(again, fn);
        assert_int_equal(tc_n_compiled(), n);
      }
    }
    /* and nothing else */
    static const int64_t bad[] = {0, -64, 1, 48, 63, 65, 512, 1 << 20};
    for (size_t x = 0; x < sizeof bad / sizeof bad[0]; x++) {
      void *fn = (void *)1;
      assert_false(cg_kind_supports(k, bad[x], CG_F32));
      assert_int_equal(tc_get(k, bad[x], CG_F32, NULL, &fn, err, sizeof err),
                       RT_EUNSUPPORTED);
      assert_null(fn);
      char want[64];
      snprintf(want, sizeof want, "head dimension %lld is not supported",
               (long long)bad[x]);
      assert_non_null(strstr(err, want));
    }
    void *fn = NULL;
    assert_false(cg_kind_supports(k, 64, CG_N_DTYPES));
    assert_int_equal(tc_get(k, 64, CG_N_DTYPES, NULL, &fn, err, sizeof err),
                     RT_EUNSUPPORTED);
    assert_non_null(strstr(err, "no ? version"));
  }
  /* the JIT backend's D check and its list are the table's */
  for (int64_t D = -1; D <= 300; D++) {
    assert_int_equal(cg_supported_d(D),
                     cg_kind_supports(&cg_kinds[CG_KIND_FWD], D, CG_F32));
    assert_int_equal(backend_jit.supports_d(D), cg_supported_d(D));
  }
  cg_unsupported_d(&cg_kinds[CG_KIND_FWD], 7, "x", err, sizeof err);
  char list[128];
  snprintf(list, sizeof list, "(%s)", backend_jit.d_text);
  assert_non_null(strstr(err, list));
}

/* --- one pipeline ---------------------------------------------------------- */

static ir_program *load(diag **d, arena **a) {
  *d = diag_new();
  *a = arena_new();
  fe_module *m = fe_load_string(*d, *a, "lf.pat", src);
  assert_non_null(m);
  ir_program *p = fe_instantiate(*d, m, NULL, NULL, 0);
  assert_non_null(p);
  return p;
}

static char *slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
  b[n] = '\0';
  fclose(fp);
  return b;
}

/* The body of function name in LLVM text (from its '{' to the closing "}"
 * line), metadata numbers ("!12") erased: modules number them
 * differently.  malloc'd; NULL if absent. */
static char *fn_body(const char *ll, const char *name) {
  char head[128];
  snprintf(head, sizeof head, "@%s(", name);
  const char *at = strstr(ll, head);
  if (at == NULL) return NULL;
  const char *open = strchr(at, '{'), *close = strstr(open, "\n}\n");
  if (open == NULL || close == NULL) return NULL;
  char *out = malloc((size_t)(close - open) + 1), *w = out;
  for (const char *r = open; r < close; r++) {
    *w++ = *r;
    if (*r == '!' && r[1] >= '0' && r[1] <= '9')
      while (r[1] >= '0' && r[1] <= '9') r++;
  }
  *w = '\0';
  return out;
}

typedef struct key_seen {
  int n;
  char key[8192];
} key_seen;

static void note_key(void *user, const aot_cache_entry *e) {
  key_seen *s = user;
  s->n++;
  if (e->valid) snprintf(s->key, sizeof s->key, "%s", e->key);
}

static void test_one_pipeline(void **state) {
  fixture *f = *state;
  diag *d;
  arena *a;
  ir_program *p = load(&d, &a);
  char err[512] = "", ll[128];
  void *tile;
  assert_int_equal(tc_get(&cg_kinds[CG_KIND_FWD], 64, CG_F32, NULL, &tile, err,
                          sizeof err),
                   0);

  /* every path goes through lp_optimize, once per module */
  long n0 = lp_n_optimized();
  backend_opts bo = {.D = 64, .threads = 1};
  jit_kernel *jk = jit_compile(p, &bo, err, sizeof err);
  assert_non_null(jk);
  assert_int_equal(lp_n_optimized(), n0 + 1); /* the mask; the tile is shared */
  kr_tile_fn jt = jit_kr_kernel(jk)->tile;
  void *jtp;
  memcpy(&jtp, &jt, sizeof jtp);
  assert_ptr_equal(jtp, tile);
  jit_free(jk);
  snprintf(ll, sizeof ll, "%s/lf.ll", f->dir);
  aot_opts o = {64, 0, 1, NULL, NULL, NULL, AOT_EMIT_LLVM};
  assert_int_equal(aot_emit(p, &o, ll, NULL, err, sizeof err), 0);
  assert_int_equal(lp_n_optimized(), n0 + 2);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/cache", f->dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  const void *desc;
  int hit;
  aot_opts co = {64, 0, 1, NULL, NULL, NULL, AOT_EMIT_OBJ};
  aot_loaded *l = aot_cache_load(p, &co, dir, NULL, &desc, &hit, err, sizeof err);
  assert_non_null(l);
  assert_int_equal(hit, 0);
  assert_int_equal(lp_n_optimized(), n0 + 3);
  aot_cache_free(l);
  l = aot_cache_load(p, &co, dir, NULL, &desc, &hit, err, sizeof err);
  assert_non_null(l);
  assert_int_equal(hit, 1);
  assert_int_equal(lp_n_optimized(), n0 + 3); /* a hit compiles nothing */
  aot_cache_free(l);

  /* the AOT object's tile is the JIT's tile, instruction for instruction:
   * same generator, same passes (a pipeline that unrolled loops in one
   * path only, as before, fails here) */
  char *text = slurp(ll);
  char *jit_ir = tc_kernel_ir(&cg_kinds[CG_KIND_FWD], 64, CG_F32, err, sizeof err);
  assert_non_null(jit_ir);
  char *aot_tile = fn_body(text, "lf.spat_tile");
  char *jit_tile = fn_body(jit_ir, cg_kinds[CG_KIND_FWD].symbol);
  assert_non_null(aot_tile);
  assert_non_null(jit_tile);
  assert_true(strlen(jit_tile) > 1000);
  assert_string_equal(aot_tile, jit_tile);
  free(text), free(jit_ir), free(aot_tile), free(jit_tile);

  /* the cache key names the pipeline */
  key_seen ks = {0, ""};
  assert_int_equal(aot_cache_list(dir, note_key, &ks, err, sizeof err), 1);
  char want[256];
  snprintf(want, sizeof want, "\npasses %s %s\n", lp_passes(), lp_pass_options());
  assert_non_null(strstr(ks.key, want));
  assert_non_null(strstr(lp_passes(), "O3"));
  arena_free(a);
  diag_free(d);
}

/* --- tile kernels in the disk cache ---------------------------------------- */

static void test_tile_disk(void **state) {
  fixture *f = *state;
  char dir[128], err[256], entry[512];
  snprintf(dir, sizeof dir, "%s/tiles", f->dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  const cg_kind *k = &cg_kinds[CG_KIND_FWD];
  void *fn;
  long c0 = tc_n_compiled(), l0 = tc_n_loaded();
  /* in memory already (test_kinds): stored without compiling */
  assert_int_equal(tc_get(k, 32, CG_F32, dir, &fn, err, sizeof err), 0);
  assert_int_equal(tc_n_compiled(), c0);
  assert_int_equal(count_files(dir, ".spt", entry, sizeof entry), 1);
  char *good = slurp(entry);
  struct stat st;
  assert_int_equal(stat(entry, &st), 0);
  long size = (long)st.st_size;
  assert_true(size > 1000);

  /* a fresh process (as far as the cache knows): read, not compiled */
  tc_forget();
  assert_int_equal(tc_get(k, 32, CG_F32, dir, &fn, err, sizeof err), 0);
  assert_int_equal(tc_n_compiled(), c0);
  assert_int_equal(tc_n_loaded(), l0 + 1);
  assert_non_null(fn);

  /* damaged (a byte of the object flipped), then truncated: compiled
   * again and the entry rewritten whole */
  for (int damage = 0; damage < 2; damage++) {
    if (damage == 0) {
      FILE *fp = fopen(entry, "r+b");
      assert_non_null(fp);
      assert_int_equal(fseek(fp, size - 100, SEEK_SET), 0);
      fputc(good[size - 100] ^ 0x40, fp);
      assert_int_equal(fclose(fp), 0);
    } else {
      assert_int_equal(truncate(entry, size / 3), 0);
    }
    tc_forget();
    long c1 = tc_n_compiled(), l1 = tc_n_loaded();
    assert_int_equal(tc_get(k, 32, CG_F32, dir, &fn, err, sizeof err), 0);
    assert_int_equal(tc_n_compiled(), c1 + 1);
    assert_int_equal(tc_n_loaded(), l1);
    assert_int_equal(count_files(dir, ".spt", NULL, 0), 1);
    char *now = slurp(entry);
    assert_int_equal(stat(entry, &st), 0);
    assert_int_equal((long)st.st_size, size);
    assert_memory_equal(now, good, (size_t)size); /* deterministic */
    free(now);
  }

  /* another D's entry under this one's name is not used either */
  assert_int_equal(tc_get(k, 16, CG_F32, dir, &fn, err, sizeof err), 0);
  assert_int_equal(count_files(dir, ".spt", NULL, 0), 2);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && for e in *.spt; do cmp -s \"$e\" '%s' || cp \"$e\" x; "
           "done && cp x '%s' && rm x",
           dir, entry, entry);
  assert_int_equal(system(cmd), 0);
  tc_forget();
  long c2 = tc_n_compiled();
  assert_int_equal(tc_get(k, 32, CG_F32, dir, &fn, err, sizeof err), 0);
  assert_int_equal(tc_n_compiled(), c2 + 1);
  char *now = slurp(entry);
  assert_memory_equal(now, good, (size_t)size);
  free(now);
  free(good);

  /* the kernels made with a forgotten tile still run (kept mapped) */
  diag *d;
  arena *a;
  ir_program *p = load(&d, &a);
  backend_opts bo = {.D = 32, .threads = 1};
  jit_kernel *jk = jit_compile(p, &bo, err, sizeof err);
  assert_non_null(jk);
  tc_forget();
  size_t n = (size_t)(1 * 2 * 70 * 32);
  float *q = inputs(n, 5), *kk = inputs(n, 6), *v = inputs(n, 7);
  float *o1 = calloc(n, sizeof *o1), *o2 = calloc(n, sizeof *o2);
  rt_args r = {.B = 1, .H = 2, .Hkv = 2, .Lq = 70, .Lk = 70, .D = 32,
               .threads = 1};
  rt_tensor *ts[4] = {&r.q, &r.k, &r.v, &r.o};
  float *data[4] = {q, kk, v, o1};
  for (int x = 0; x < 4; x++) {
    ts[x]->data = data[x];
    rt_tensor_strides(ts[x], 0, 2, 70, 32);
  }
  assert_int_equal(jit_run(jk, &r, err, sizeof err), RT_OK);
  jit_kernel *jk2 = jit_compile(p, &bo, err, sizeof err); /* a new tile */
  assert_non_null(jk2);
  r.o.data = o2;
  assert_int_equal(jit_run(jk2, &r, err, sizeof err), RT_OK);
  assert_memory_equal(o1, o2, n * sizeof(float));
  jit_free(jk);
  jit_free(jk2);
  free(q), free(kk), free(v), free(o1), free(o2);
  arena_free(a);
  diag_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* ORDER: test_threads first (it needs THREAD_D not yet compiled) */
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test_setup_teardown(test_one_pipeline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tile_disk, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
