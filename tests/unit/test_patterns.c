/* test_patterns.c: every library pattern (patterns/\*.pat) against its paper.
 *
 * Each pattern is loaded through the front end (fe_load_file +
 * fe_instantiate, from the repository root), its mask is read row by row
 * from the reference interpreter (interp_mask_row), and every (h, r, j) is
 * compared with the paper's formula written out here in plain C, not via the
 * IR: on several sizes (non-multiples of the block size, Lq < Lk and Lq > Lk,
 * with query row r at absolute position i = r + Lk - Lq when Lq <= Lk),
 * with the defaults and with -D overrides, over several heads.  The random
 * blocks of BigBird use a splitmix64 written here from the spec; the top-k
 * blocks of NSA are selected here from explicit q/k data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "interp.h"

/* ---- loading and comparing ---------------------------------------------- */

typedef struct loaded {
  diag *d;
  arena *a;
  fe_module *m;
  ir_program *p;
} loaded;

static loaded load(const char *file, const char *name, const fe_define *defs,
                   int n_defs) {
  loaded L = {diag_new(), arena_new(), NULL, NULL};
  assert_non_null(L.d);
  assert_non_null(L.a);
  char path[256];
  snprintf(path, sizeof path, "patterns/%s", file);
  L.m = fe_load_file(L.d, L.a, path);
  if (!L.m) fail_msg("loading %s:\n%s", path, diag_text(L.d));
  L.p = fe_instantiate(L.d, L.m, name, defs, n_defs);
  if (!L.p) fail_msg("instantiating %s in %s:\n%s", name ? name : "(default)",
                     path, diag_text(L.d));
  assert_int_equal(diag_n_errors(L.d), 0);
  return L;
}

static void unload(loaded *L) {
  arena_free(L->a);
  diag_free(L->d);
}

/* The paper's mask for head h, absolute query position i, key j. */
typedef bool (*ref_fn)(const void *st, int64_t h, int64_t i, int64_t j,
                       int64_t Lq, int64_t Lk);

typedef struct run {
  int64_t H, Hkv, Lq, Lk, D;
  const int64_t *runtime;
  const int32_t *const *inputs;
  const float *q, *k;  /* [H][Lq][D], [Hkv][Lk][D]; NULL: zeros */
} run;

static int64_t pos_of_row(int64_t r, int64_t Lq, int64_t Lk) {
  return Lq <= Lk ? r + (Lk - Lq) : r;
}

/* Compares every row of every head; returns the number of allowed pairs. */
static int64_t check_mask(const loaded *L, const run *R, ref_fn ref,
                          const void *st, const char *what) {
  int64_t D = R->D ? R->D : 4;
  size_t nq = (size_t)(R->H * R->Lq * D), nk = (size_t)(R->Hkv * R->Lk * D);
  float *q = calloc(nq + 1, sizeof *q), *k = calloc(nk + 1, sizeof *k);
  float *o = calloc(nq + 1, sizeof *o);
  uint8_t *row = malloc((size_t)R->Lk + 1);
  assert_true(q && k && o && row);
  if (R->q) memcpy(q, R->q, nq * sizeof *q);
  if (R->k) memcpy(k, R->k, nk * sizeof *k);
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = 1, a.H = R->H, a.Hkv = R->Hkv ? R->Hkv : R->H;
  a.Lq = R->Lq, a.Lk = R->Lk, a.D = D;
  a.q.data = q, a.k.data = k, a.v.data = k, a.o.data = o;
  rt_tensor_strides(&a.q, 0, a.H, a.Lq, D);
  rt_tensor_strides(&a.k, 0, a.Hkv, a.Lk, D);
  rt_tensor_strides(&a.v, 0, a.Hkv, a.Lk, D);
  rt_tensor_strides(&a.o, 0, a.H, a.Lq, D);
  a.runtime = R->runtime;
  a.inputs = R->inputs;
  a.threads = 1;
  int64_t allowed = 0;
  char err[512];
  for (int64_t h = 0; h < R->H; h++)
    for (int64_t r = 0; r < R->Lq; r++) {
      err[0] = 0;
      rt_status s = interp_mask_row(L->p, &a, 0, h, r, row, err, sizeof err);
      if (s != RT_OK)
        fail_msg("%s Lq=%" PRId64 " Lk=%" PRId64 ": row %" PRId64
                 " head %" PRId64 ": status %d: %s",
                 what, R->Lq, R->Lk, r, h, (int)s, err);
      int64_t i = pos_of_row(r, R->Lq, R->Lk);
      for (int64_t j = 0; j < R->Lk; j++) {
        bool want = ref(st, h, i, j, R->Lq, R->Lk);
        if ((row[j] != 0) != want)
          fail_msg("%s Lq=%" PRId64 " Lk=%" PRId64 " H=%" PRId64
                   ": M(h=%" PRId64 ", r=%" PRId64 " (i=%" PRId64
                   "), j=%" PRId64 ") is %d, the paper says %d",
                   what, R->Lq, R->Lk, R->H, h, r, i, j, row[j] != 0, want);
        allowed += want;
      }
    }
  free(q);
  free(k);
  free(o);
  free(row);
  return allowed;
}

typedef struct size2 {
  int64_t Lq, Lk;
} size2;

/* Small and odd sizes, both alignments, single rows and columns. */
static const size2 small_sizes[] = {
    {1, 1},   {5, 5},   {37, 37}, {64, 64},  {100, 100}, {130, 130},
    {200, 77}, {77, 200}, {1, 150}, {150, 1}, {129, 257}, {257, 129}};
#define N_SMALL (sizeof small_sizes / sizeof *small_sizes)

/* For the defaults (windows of 256..1020, blocks of 64). */
static const size2 big_sizes[] = {{700, 700}, {333, 1200}, {1200, 333},
                                  {1100, 1100}};
#define N_BIG (sizeof big_sizes / sizeof *big_sizes)

static void check_sizes(const loaded *L, run R, ref_fn ref, const void *st,
                        const char *what, bool big) {
  int64_t total = 0;
  for (size_t s = 0; s < N_SMALL; s++) {
    R.Lq = small_sizes[s].Lq, R.Lk = small_sizes[s].Lk;
    total += check_mask(L, &R, ref, st, what);
  }
  for (size_t s = 0; big && s < N_BIG; s++) {
    R.Lq = big_sizes[s].Lq, R.Lk = big_sizes[s].Lk;
    total += check_mask(L, &R, ref, st, what);
  }
  assert_true(total > 0);  /* the comparison saw allowed pairs */
}

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
static int64_t pymod(int64_t a, int64_t b) { return a - b * floordiv(a, b); }
static int64_t iabs(int64_t a) { return a < 0 ? -a : a; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
/* An index-set endpoint: negative counts from the end (n entries). */
static int64_t from_end(int64_t v, int64_t n) { return v < 0 ? n + v : v; }

/* ---- Longformer ------------------------------------------------------- */

typedef struct { int64_t w, g; } longformer_p;

static bool ref_longformer(const void *st, int64_t h, int64_t i, int64_t j,
                           int64_t Lq, int64_t Lk) {
  const longformer_p *p = st;
  (void)h, (void)Lq, (void)Lk;
  return iabs(i - j) <= p->w / 2 || i < p->g || j < p->g;
}

static void test_longformer(void **state) {
  (void)state;
  loaded L = load("longformer.pat", NULL, NULL, 0);
  assert_string_equal(L.p->name, "longformer");
  longformer_p dflt = {512, 1};
  check_sizes(&L, (run){.H = 2}, ref_longformer, &dflt, "longformer", true);
  unload(&L);

  static const longformer_p cfg[] = {{16, 2}, {7, 0}, {0, 3}, {1, 1}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    fe_define defs[] = {{"w", cfg[c].w}, {"g", cfg[c].g}};
    L = load("longformer.pat", "longformer", defs, 2);
    check_sizes(&L, (run){.H = 3}, ref_longformer, &cfg[c], "longformer -D", false);
    unload(&L);
  }
}

/* ---- BigBird ---------------------------------------------------------- */

static uint64_t splitmix(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t spec_hash(uint64_t seed, uint64_t h, uint64_t i, uint64_t t) {
  return splitmix(seed * 0x9E3779B97F4A7C15ull ^ h * 0xBF58476D1CE4E5B9ull ^
                  i * 0x94D049BB133111EBull ^ t);
}

typedef struct { int64_t b, g, r, seed; } bigbird_p;

static bool ref_bigbird(const void *st, int64_t h, int64_t i, int64_t j,
                        int64_t Lq, int64_t Lk) {
  const bigbird_p *p = st;
  (void)Lq;
  int64_t I = i / p->b, J = j / p->b, n = cdiv(Lk, p->b);
  if (iabs(I - J) <= 1) return true;                  /* 3-block window */
  int64_t lo = from_end(n - p->g, n);                  /* last g blocks */
  if (I < p->g || (I >= lo && I < n)) return true;    /* global rows */
  if (J < p->g || (J >= lo && J < n)) return true;    /* global columns */
  for (int64_t t = 0; t < p->r; t++)                   /* random blocks */
    if ((int64_t)(spec_hash((uint64_t)p->seed, (uint64_t)h, (uint64_t)I,
                            (uint64_t)t) % (uint64_t)n) == J)
      return true;
  return false;
}

static void test_bigbird(void **state) {
  (void)state;
  loaded L = load("bigbird.pat", NULL, NULL, 0);
  bigbird_p dflt = {64, 1, 3, 0};
  check_sizes(&L, (run){.H = 3}, ref_bigbird, &dflt, "bigbird", true);
  unload(&L);

  static const bigbird_p cfg[] = {
      {8, 1, 2, 42}, {5, 2, 3, 7}, {1, 1, 4, 3}, {7, 0, 0, 1}, {16, 1, 5, 99}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    fe_define defs[] = {{"b", cfg[c].b}, {"g", cfg[c].g}, {"r", cfg[c].r},
                        {"seed", cfg[c].seed}};
    L = load("bigbird.pat", "bigbird", defs, 4);
    check_sizes(&L, (run){.H = 3}, ref_bigbird, &cfg[c], "bigbird -D", false);
    unload(&L);
  }
}

/* The random blocks really are there and differ per head: with b = 4 on
 * 400 tokens (100 blocks) the window and globals cover a few blocks per
 * row, so the count of allowed blocks per row shows the random ones. */
static void test_bigbird_random_blocks_present(void **state) {
  (void)state;
  fe_define defs[] = {{"b", 4}, {"r", 3}};
  loaded L = load("bigbird.pat", "bigbird", defs, 2);
  bigbird_p p = {4, 1, 3, 0};
  run R = {.H = 2, .Lq = 400, .Lk = 400};
  int64_t with = check_mask(&L, &R, ref_bigbird, &p, "bigbird r=3");
  unload(&L);
  fe_define defs0[] = {{"b", 4}, {"r", 0}};
  L = load("bigbird.pat", "bigbird", defs0, 2);
  bigbird_p p0 = {4, 1, 0, 0};
  int64_t without = check_mask(&L, &R, ref_bigbird, &p0, "bigbird r=0");
  unload(&L);
  assert_true(with > without + 2 * 400 * 4);  /* > 1 extra block per row */
}

/* ---- Sparse Transformer ----------------------------------------------- */

typedef struct { int64_t l, c, split; } st_p;

static bool ref_strided(const void *st, int64_t h, int64_t i, int64_t j,
                        int64_t Lq, int64_t Lk) {
  const st_p *p = st;
  (void)Lq, (void)Lk;
  if (j > i) return false;
  bool a1 = j >= (i - p->l > 0 ? i - p->l : 0);  /* {max(0, i-l), ..., i} */
  bool a2 = (i - j) % p->l == 0;
  if (p->split) return h % 2 == 0 ? a1 : a2;
  return a1 || a2;
}

static bool ref_fixed(const void *st, int64_t h, int64_t i, int64_t j,
                      int64_t Lq, int64_t Lk) {
  const st_p *p = st;
  (void)Lq, (void)Lk;
  if (j > i) return false;
  bool a1 = j / p->l == i / p->l;
  bool a2 = j % p->l >= p->l - p->c;  /* j mod l in {l - c, ..., l} */
  if (p->split) return h % 2 == 0 ? a1 : a2;
  return a1 || a2;
}

static void test_sparse_transformer(void **state) {
  (void)state;
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_file(d, a, "patterns/sparse_transformer.pat");
  if (!m) fail_msg("%s", diag_text(d));
  assert_int_equal(fe_n_patterns(m), 2);
  assert_string_equal(fe_pattern_name(m, 0), "strided");
  assert_string_equal(fe_pattern_name(m, 1), "fixed");
  arena_free(a);
  diag_free(d);

  loaded L = load("sparse_transformer.pat", "strided", NULL, 0);
  st_p s_dflt = {128, 0, 0};
  check_sizes(&L, (run){.H = 3}, ref_strided, &s_dflt, "strided", true);
  unload(&L);
  L = load("sparse_transformer.pat", NULL, NULL, 0);  /* the last: fixed */
  assert_string_equal(L.p->name, "fixed");
  st_p f_dflt = {128, 8, 0};
  check_sizes(&L, (run){.H = 3}, ref_fixed, &f_dflt, "fixed", true);
  unload(&L);

  static const st_p cfg[] = {{7, 2, 0}, {7, 3, 1}, {1, 1, 0}, {10, 10, 1},
                             {16, 1, 1}, {9, 0, 0}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    fe_define sd[] = {{"l", cfg[c].l}, {"split", cfg[c].split}};
    L = load("sparse_transformer.pat", "strided", sd, 2);
    check_sizes(&L, (run){.H = 4}, ref_strided, &cfg[c], "strided -D", false);
    unload(&L);
    fe_define fd[] = {{"l", cfg[c].l}, {"c", cfg[c].c}, {"split", cfg[c].split}};
    L = load("sparse_transformer.pat", "fixed", fd, 3);
    check_sizes(&L, (run){.H = 4}, ref_fixed, &cfg[c], "fixed -D", false);
    unload(&L);
  }
}

/* ---- StreamingLLM ----------------------------------------------------- */

typedef struct { int64_t n_sink, w; } stream_p;

static bool ref_streaming(const void *st, int64_t h, int64_t i, int64_t j,
                          int64_t Lq, int64_t Lk) {
  const stream_p *p = st;
  (void)h, (void)Lq;
  if (j > i) return false;
  return j < from_end(p->n_sink, Lk) || j >= i - p->w;
}

static void test_streaming_llm(void **state) {
  (void)state;
  loaded L = load("streaming_llm.pat", NULL, NULL, 0);
  assert_int_equal(L.p->n_runtime, 1);
  assert_string_equal(L.p->runtime[0].name, "n_sink");
  assert_true(L.p->runtime[0].has_deflt);
  assert_int_equal(L.p->runtime[0].deflt, 4);
  int64_t rt4[] = {4};
  stream_p dflt = {4, 1020};
  check_sizes(&L, (run){.H = 2, .runtime = rt4}, ref_streaming, &dflt,
              "streaming_llm", true);
  unload(&L);

  static const int64_t sinks[] = {0, 1, 3, 7, -2};
  static const int64_t windows[] = {9, 0, 40};
  for (size_t w = 0; w < 3; w++) {
    fe_define defs[] = {{"w", windows[w]}};
    L = load("streaming_llm.pat", "streaming_llm", defs, 1);
    for (size_t s = 0; s < sizeof sinks / sizeof *sinks; s++) {
      stream_p p = {sinks[s], windows[w]};
      check_sizes(&L, (run){.H = 2, .runtime = &sinks[s]}, ref_streaming, &p,
                  "streaming_llm -D", false);
    }
    unload(&L);
  }
}

/* ---- document masking ------------------------------------------------- */

typedef struct { const int32_t *doc; bool causal; } doc_p;

static bool ref_document(const void *st, int64_t h, int64_t i, int64_t j,
                         int64_t Lq, int64_t Lk) {
  const doc_p *p = st;
  (void)h, (void)Lq, (void)Lk;
  if (p->causal && j > i) return false;
  return p->doc[i] == p->doc[j];
}

/* Packed runs of pseudo-random lengths (1..23) or interleaved ids. */
static int32_t *make_docs(int64_t n, int kind) {
  int32_t *doc = malloc((size_t)(n + 1) * sizeof *doc);
  uint64_t s = 12345;
  int32_t id = 0;
  int64_t left = 0;
  for (int64_t t = 0; t < n; t++) {
    if (kind == 0) {
      if (left == 0) {
        s = splitmix(s);
        left = 1 + (int64_t)(s % 23);
        id += 1 + (int32_t)(s % 3);
      }
      left--;
      doc[t] = id;
    } else {
      doc[t] = (int32_t)((t * 7 / 5) % 4) - 2;  /* ids -2..1, interleaved */
    }
  }
  return doc;
}

static void test_document(void **state) {
  (void)state;
  static const char *const names[] = {"document_bidir", "document"};
  for (int causal = 0; causal < 2; causal++) {
    loaded L = load("document.pat", causal ? NULL : names[0], NULL, 0);
    assert_string_equal(L.p->name, names[causal]);
    assert_int_equal(L.p->n_inputs, 1);
    assert_string_equal(L.p->inputs[0].name, "doc");
    for (int kind = 0; kind < 2; kind++)
      for (size_t s = 0; s < N_SMALL; s++) {
        if (small_sizes[s].Lq > small_sizes[s].Lk) continue; /* below */
        int32_t *doc = make_docs(small_sizes[s].Lk, kind);
        const int32_t *const inputs[] = {doc};
        doc_p p = {doc, causal != 0};
        run R = {.H = 2, .Lq = small_sizes[s].Lq, .Lk = small_sizes[s].Lk,
                 .inputs = inputs};
        check_mask(&L, &R, ref_document, &p, names[causal]);
        free(doc);
      }
    unload(&L);
  }
}

/* Lq > Lk: rows at i >= Lk would read doc[i] past the Lk entries, which
 * the spec makes a run-time error; the rows before are still right. */
static void test_document_rows_past_inputs(void **state) {
  (void)state;
  loaded L = load("document.pat", "document", NULL, 0);
  enum { LQ = 12, LK = 8 };
  int32_t doc[LK] = {0, 0, 0, 1, 1, 2, 2, 2};
  const int32_t *const inputs[] = {doc};
  float q[LQ * 4] = {0}, k[LK * 4] = {0}, o[LQ * 4];
  rt_args a;
  memset(&a, 0, sizeof a);
  a.B = 1, a.H = 1, a.Hkv = 1, a.Lq = LQ, a.Lk = LK, a.D = 4;
  a.q.data = q, a.k.data = k, a.v.data = k, a.o.data = o;
  rt_tensor_strides(&a.q, 0, 1, LQ, 4);
  rt_tensor_strides(&a.k, 0, 1, LK, 4);
  rt_tensor_strides(&a.v, 0, 1, LK, 4);
  rt_tensor_strides(&a.o, 0, 1, LQ, 4);
  a.inputs = inputs;
  a.threads = 1;
  uint8_t row[LK];
  char err[256];
  doc_p p = {doc, true};
  for (int64_t r = 0; r < LQ; r++) {
    err[0] = 0;
    rt_status s = interp_mask_row(L.p, &a, 0, 0, r, row, err, sizeof err);
    if (r < LK) {
      assert_int_equal(s, RT_OK);
      for (int64_t j = 0; j < LK; j++)
        assert_int_equal(row[j] != 0, ref_document(&p, 0, r, j, LQ, LK));
    } else {
      assert_int_equal(s, RT_ERANGE);
      assert_true(strlen(err) > 0);
    }
  }
  unload(&L);
}

/* ---- prefix LM -------------------------------------------------------- */

typedef struct { int64_t p; } prefix_p;

static bool ref_prefix(const void *st, int64_t h, int64_t i, int64_t j,
                       int64_t Lq, int64_t Lk) {
  const prefix_p *p = st;
  (void)h, (void)Lq;
  int64_t n = from_end(p->p, Lk);
  return j <= i || (i < n && j < n);  /* T5's "causal with prefix" */
}

static void test_prefix_lm(void **state) {
  (void)state;
  loaded L = load("prefix_lm.pat", "prefix_lm_fixed", NULL, 0);
  prefix_p dflt = {256};
  check_sizes(&L, (run){.H = 2}, ref_prefix, &dflt, "prefix_lm_fixed", true);
  unload(&L);
  static const int64_t ps[] = {0, 1, 10, 64, 500, -3};
  for (size_t c = 0; c < sizeof ps / sizeof *ps; c++) {
    fe_define defs[] = {{"p", ps[c]}};
    L = load("prefix_lm.pat", "prefix_lm_fixed", defs, 1);
    prefix_p p = {ps[c]};
    check_sizes(&L, (run){.H = 2}, ref_prefix, &p, "prefix_lm_fixed -D", false);
    unload(&L);
  }

  L = load("prefix_lm.pat", NULL, NULL, 0);
  assert_string_equal(L.p->name, "prefix_lm");
  assert_int_equal(L.p->n_runtime, 1);
  assert_int_equal(L.p->runtime[0].deflt, 256);
  for (size_t c = 0; c < sizeof ps / sizeof *ps; c++) {
    prefix_p p = {ps[c]};
    check_sizes(&L, (run){.H = 2, .runtime = &ps[c]}, ref_prefix, &p,
                "prefix_lm", false);
  }
  int64_t rt[] = {256};
  check_sizes(&L, (run){.H = 1, .runtime = rt}, ref_prefix, &dflt,
              "prefix_lm", true);
  unload(&L);
}

/* ---- dilated (Longformer per-head dilation) ---------------------------- */

typedef struct { int64_t w, d, n_dil, lm; } dil_p;

static bool ref_dilated(const void *st, int64_t h, int64_t i, int64_t j,
                        int64_t Lq, int64_t Lk) {
  const dil_p *p = st;
  (void)Lq, (void)Lk;
  if (p->lm && j > i) return false;
  int64_t d = h < p->n_dil ? p->d : 1;
  return iabs(i - j) <= (p->w / 2) * d && pymod(i - j, d) == 0;
}

static void test_dilated(void **state) {
  (void)state;
  loaded L = load("dilated.pat", NULL, NULL, 0);
  dil_p dflt = {256, 4, 2, 0};
  check_sizes(&L, (run){.H = 4}, ref_dilated, &dflt, "dilated", true);
  unload(&L);
  static const dil_p cfg[] = {
      {6, 3, 1, 1}, {10, 2, 3, 0}, {8, 5, 0, 0}, {20, 7, 4, 1}, {0, 3, 2, 0}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    fe_define defs[] = {{"w", cfg[c].w}, {"d", cfg[c].d},
                        {"n_dil", cfg[c].n_dil}, {"lm", cfg[c].lm}};
    L = load("dilated.pat", "dilated_heads", defs, 4);
    check_sizes(&L, (run){.H = 4}, ref_dilated, &cfg[c], "dilated -D", false);
    unload(&L);
  }
}

/* ---- NSA-style block top-k -------------------------------------------- */

typedef struct nsa_p {
  int64_t w, b, k;
  int64_t H, nbq, nbk;
  uint8_t *sel;  /* [H][nbq][nbk]: key block J selected for query block I */
} nsa_p;

static bool ref_nsa(const void *st, int64_t h, int64_t i, int64_t j,
                    int64_t Lq, int64_t Lk) {
  const nsa_p *p = st;
  (void)Lq, (void)Lk;
  if (j > i) return false;
  if (j >= i - p->w) return true;
  return p->sel[(h * p->nbq + i / p->b) * p->nbk + j / p->b] != 0;
}

/* The paper-side selection: for each head and query block I, score every
 * key block J <= I by dot(mean q over the rows of block I that exist, mean
 * k over the keys of block J), keep the k best, ties to the smaller J.
 * Asserts that the k-th and (k+1)-th scores are either equal (a tie the
 * rule decides) or clearly apart, so rounding cannot decide the test. */
static void nsa_select(nsa_p *p, const run *R) {
  int64_t b = p->b, D = R->D, off = R->Lq <= R->Lk ? R->Lk - R->Lq : 0;
  int64_t nq_pos = off + R->Lq;  /* absolute query positions [off, nq_pos) */
  p->H = R->H;
  p->nbq = cdiv(nq_pos, b);
  p->nbk = cdiv(R->Lk, b);
  p->sel = calloc((size_t)(p->H * p->nbq * p->nbk) + 1, 1);
  double *mq = calloc((size_t)D, sizeof *mq), *mk = calloc((size_t)D, sizeof *mk);
  double *score = calloc((size_t)p->nbk + 1, sizeof *score);
  int64_t *order = calloc((size_t)p->nbk + 1, sizeof *order);
  int64_t group = R->H / (R->Hkv ? R->Hkv : R->H);
  for (int64_t h = 0; h < R->H; h++)
    for (int64_t I = off / b; I < p->nbq; I++) {
      int64_t lo = I * b > off ? I * b : off, hi = I * b + b < nq_pos ? I * b + b : nq_pos;
      for (int64_t d = 0; d < D; d++) mq[d] = 0;
      for (int64_t x = lo; x < hi; x++)
        for (int64_t d = 0; d < D; d++)
          mq[d] += R->q[(h * R->Lq + (x - off)) * D + d];
      for (int64_t d = 0; d < D; d++) mq[d] /= (double)(hi - lo);
      int64_t n = I + 1 < p->nbk ? I + 1 : p->nbk;  /* causal: J <= I */
      for (int64_t J = 0; J < n; J++) {
        int64_t klo = J * b, khi = J * b + b < R->Lk ? J * b + b : R->Lk;
        for (int64_t d = 0; d < D; d++) mk[d] = 0;
        for (int64_t x = klo; x < khi; x++)
          for (int64_t d = 0; d < D; d++)
            mk[d] += R->k[((h / group) * R->Lk + x) * D + d];
        for (int64_t d = 0; d < D; d++) mk[d] /= (double)(khi - klo);
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += mq[d] * mk[d];
        score[J] = s;
        order[J] = J;
      }
      /* insertion sort: score descending, then J ascending */
      for (int64_t u = 1; u < n; u++) {
        int64_t v = order[u], t = u;
        while (t > 0 && (score[order[t - 1]] < score[v] ||
                         (score[order[t - 1]] == score[v] && order[t - 1] > v))) {
          order[t] = order[t - 1];
          t--;
        }
        order[t] = v;
      }
      int64_t take = p->k < n ? p->k : n;
      if (take > 0 && take < n) {
        double gap = score[order[take - 1]] - score[order[take]];
        if (gap != 0 && gap < 1e-6)
          fail_msg("test data too close to a tie (gap %g): change the seed", gap);
      }
      for (int64_t t = 0; t < take; t++)
        p->sel[(h * p->nbq + I) * p->nbk + order[t]] = 1;
    }
  free(mq);
  free(mk);
  free(score);
  free(order);
}

static float *rand_data(int64_t n, uint64_t seed) {
  float *x = malloc((size_t)n * sizeof *x + 1);
  for (int64_t t = 0; t < n; t++) {
    seed = splitmix(seed);
    x[t] = (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return x;
}

/* Key rows equal within each block of b, drawn from only 3 distinct
 * vectors: many block scores tie exactly, and the rule "ties go to the
 * smaller block" decides. */
static float *tied_keys(int64_t Hkv, int64_t Lk, int64_t D, int64_t b) {
  float *x = malloc((size_t)(Hkv * Lk * D) * sizeof *x + 1);
  for (int64_t h = 0; h < Hkv; h++)
    for (int64_t t = 0; t < Lk; t++)
      for (int64_t d = 0; d < D; d++) {
        int64_t kind = (t / b * 7 + h) % 3;
        x[(h * Lk + t) * D + d] = (float)(kind == 0 ? 0.5 : kind == 1 ? -0.25 : 1.0) *
                                  (float)(d % 2 ? 1 : -1);
      }
  return x;
}

static void nsa_case(const loaded *L, nsa_p cfg, int64_t H, int64_t Hkv,
                     int64_t Lq, int64_t Lk, bool tied, uint64_t seed,
                     const char *what) {
  run R = {.H = H, .Hkv = Hkv, .Lq = Lq, .Lk = Lk, .D = 8};
  float *q = rand_data(H * Lq * 8, seed);
  float *k = tied ? tied_keys(Hkv, Lk, 8, cfg.b) : rand_data(Hkv * Lk * 8, seed + 1);
  R.q = q, R.k = k;
  nsa_select(&cfg, &R);
  check_mask(L, &R, ref_nsa, &cfg, what);
  free(cfg.sel);
  free(q);
  free(k);
}

static void test_nsa(void **state) {
  (void)state;
  loaded L = load("nsa.pat", NULL, NULL, 0);
  nsa_p dflt = {512, 64, 16, 0, 0, 0, NULL};
  nsa_case(&L, dflt, 2, 2, 1100, 1100, false, 1, "nsa");
  nsa_case(&L, dflt, 2, 1, 1300, 1300, false, 2, "nsa GQA");
  nsa_case(&L, dflt, 2, 2, 300, 1250, false, 3, "nsa Lq<Lk");
  nsa_case(&L, dflt, 1, 1, 1250, 700, false, 4, "nsa Lq>Lk");
  nsa_case(&L, dflt, 2, 2, 1100, 1100, true, 5, "nsa ties");
  unload(&L);

  static const nsa_p cfg[] = {{5, 4, 2, 0, 0, 0, NULL},  {0, 3, 1, 0, 0, 0, NULL},
                              {8, 8, 0, 0, 0, 0, NULL},  {3, 1, 4, 0, 0, 0, NULL},
                              {2, 7, 3, 0, 0, 0, NULL},  {16, 5, 100, 0, 0, 0, NULL}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    fe_define defs[] = {{"w", cfg[c].w}, {"b", cfg[c].b}, {"k", cfg[c].k}};
    L = load("nsa.pat", "nsa", defs, 3);
    for (size_t s = 0; s < N_SMALL; s++) {
      int64_t Lq = small_sizes[s].Lq, Lk = small_sizes[s].Lk;
      nsa_case(&L, cfg[c], 3, 3, Lq, Lk, false, 100 + s, "nsa -D");
      nsa_case(&L, cfg[c], 2, 1, Lq, Lk, true, 200 + s, "nsa -D ties");
    }
    unload(&L);
  }
}

/* Changing the data changes the selection: the mask really depends on q/k
 * (guards against a reference and a pattern that both ignore the data). */
static void test_nsa_depends_on_data(void **state) {
  (void)state;
  fe_define defs[] = {{"w", 2}, {"b", 4}, {"k", 2}};
  loaded L = load("nsa.pat", "nsa", defs, 3);
  nsa_p c1 = {2, 4, 2, 0, 0, 0, NULL}, c2 = c1;
  run R = {.H = 1, .Hkv = 1, .Lq = 64, .Lk = 64, .D = 8};
  float *q = rand_data(64 * 8, 7), *k1 = rand_data(64 * 8, 8), *k2 = rand_data(64 * 8, 9);
  R.q = q, R.k = k1;
  nsa_select(&c1, &R);
  check_mask(&L, &R, ref_nsa, &c1, "nsa data 1");
  R.k = k2;
  nsa_select(&c2, &R);
  check_mask(&L, &R, ref_nsa, &c2, "nsa data 2");
  assert_memory_not_equal(c1.sel, c2.sel, (size_t)(c1.nbq * c1.nbk));
  free(c1.sel);
  free(c2.sel);
  free(q);
  free(k1);
  free(k2);
  unload(&L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_longformer),
      cmocka_unit_test(test_bigbird),
      cmocka_unit_test(test_bigbird_random_blocks_present),
      cmocka_unit_test(test_sparse_transformer),
      cmocka_unit_test(test_streaming_llm),
      cmocka_unit_test(test_document),
      cmocka_unit_test(test_document_rows_past_inputs),
      cmocka_unit_test(test_prefix_lm),
      cmocka_unit_test(test_dilated),
      cmocka_unit_test(test_nsa),
      cmocka_unit_test(test_nsa_depends_on_data),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
