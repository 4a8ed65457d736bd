/* spatc_tensors.c: sizes, q/k/v (from npy files or a seed) and mask rows
 * (spat_kernel_mask on the reference interpreter) for the spatc subcommands
 * (spatc_common.h).  May print to stderr; never exits.
 */
#include "spatc_common.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- tensors ---- */

/* Stream t is splitmix64 (the spec's mix) started at mix(seed + t): draw n
 * is mix(s0 + n * golden), so any part of the stream can be computed
 * directly, and rows are filled by several threads with the same result.
 * Value e (logical order) takes draws 2e, 2e + 1: x1, x2 ->
 * u1 = ((x1 >> 11) + 1) 2^-53 in (0, 1], u2 = (x2 >> 11) 2^-53,
 * value = sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller). */
typedef struct randn_job {
  const spatc_tensor *t;
  int64_t H, L, D, n_rows;     /* rows: (b, h, l) */
  uint64_t s0;
  atomic_llong next;           /* next block of rows */
} randn_job;

static void *randn_worker(void *arg) {
  randn_job *j = arg;
  const uint64_t golden = 0x9E3779B97F4A7C15ull;
  const double two_pi = 6.283185307179586476925286766559;
  const int64_t block = 256;
  for (;;) {
    int64_t r0 = (int64_t)atomic_fetch_add(&j->next, block);
    if (r0 >= j->n_rows) break;
    int64_t r1 = r0 + block < j->n_rows ? r0 + block : j->n_rows;
    for (int64_t row = r0; row < r1; row++) {
      int64_t b = row / (j->H * j->L), h = row / j->L % j->H, l = row % j->L;
      float *out = j->t->data + b * j->t->sb + h * j->t->sh + l * j->t->sl;
      uint64_t st = j->s0 + (uint64_t)(2 * row * j->D) * golden;
      for (int64_t d = 0; d < j->D; d++) {
        uint64_t x1 = spatc_mix(st);
        st += golden;
        uint64_t x2 = spatc_mix(st);
        st += golden;
        double u1 = ((double)(x1 >> 11) + 1.0) * 0x1p-53;
        double u2 = (double)(x2 >> 11) * 0x1p-53;
        out[d] = (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
      }
    }
  }
  return NULL;
}

void spatc_randn(const spatc_tensor *t, int64_t B, int64_t H, int64_t L,
                 int64_t D, uint64_t seed, int stream) {
  randn_job j = {.t = t, .H = H, .L = L, .D = D, .n_rows = B * H * L,
                 .s0 = spatc_mix(seed + (uint64_t)stream)};
  atomic_init(&j.next, 0);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
  if (j.n_rows * D < (1 << 16)) threads = 1;
  pthread_t tid[64];
  int started = 0;
  for (int k = 1; k < threads; k++)
    if (pthread_create(&tid[started], NULL, randn_worker, &j) == 0) started++;
  randn_worker(&j);
  for (int k = 0; k < started; k++) pthread_join(tid[k], NULL);
}

int spatc_read_f32(const char *what, const char *path, int ndim,
                   npy_array *out) {
  memset(out, 0, sizeof *out);
  int rc = spatc_check_file(path);
  if (rc) return rc;
  char err[512];
  if (npy_read(path, out, err, sizeof err) != 0) return spatc_lib_error(err);
  if (out->dtype == NPY_F16 || out->dtype == NPY_U16) {
    /* fp16 ('<f2') and bfloat16 bits ('<u2'): widened exactly */
    int64_t n = npy_count(out);
    float *f = spatc_xmalloc((size_t)n * sizeof(float) + 1);
    if (!f) {
      npy_free(out);
      return SPATC_EUSER;
    }
    spat_convert(out->data, out->dtype == NPY_F16 ? SPAT_DTYPE_F16
                                                  : SPAT_DTYPE_BF16,
                 f, SPAT_DTYPE_F32, (size_t)n);
    free(out->data);
    out->data = f;
    out->dtype = NPY_F32;
  }
  if (out->dtype != NPY_F32) {
    spatc_error("%s: %s must be float32 ('<f4'), float16 ('<f2') or "
                "bfloat16 bits ('<u2'), not %s", path, what,
                spatc_dtype_name(out->dtype));
    npy_free(out);
    return SPATC_EUSER;
  }
  if (out->ndim != ndim) {
    spatc_error("%s: %s must have %d dimensions, not %d", path, what, ndim,
                out->ndim);
    npy_free(out);
    return SPATC_EUSER;
  }
  return 0;
}

/* ---- sizes and tensors ---- */

void spatc_strides(spatc_tensor *t, int layout, int64_t H, int64_t L,
                   int64_t D) {
  if (layout == SPAT_LAYOUT_BLHD) {
    t->sl = H * D;
    t->sh = D;
  } else {
    t->sh = L * D;
    t->sl = D;
  }
  t->sb = H * L * D;
}

spat_tensors spatc_tensors(const spatc_args *a) {
  spat_tensors t = {.B = a->B, .H = a->H, .Hkv = a->Hkv, .Lq = a->Lq,
                    .Lk = a->Lk, .q = a->q.data, .k = a->k.data,
                    .v = a->v.data};
  return t;
}

static bool mul_ok(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

/* Elements of [n0, n1, n2, n3] as a byte-size-safe count, or -1. */
static int64_t count4(int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
  int64_t x;
  if (!mul_ok(n0, n1, &x) || !mul_ok(x, n2, &x) || !mul_ok(x, n3, &x) ||
      x > INT64_MAX / 8)
    return -1;
  return x;
}

static void shape_text(const npy_array *a, char *buf, size_t n) {
  size_t u = (size_t)snprintf(buf, n, "(");
  for (int d = 0; d < a->ndim && u < n; d++)
    u += (size_t)snprintf(buf + u, n - u, d ? ", %" PRId64 : "%" PRId64,
                          a->shape[d]);
  if (u < n) snprintf(buf + u, n - u, a->ndim == 1 ? ",)" : ")");
}

/* An option given on the command line must agree with the files. */
static bool agree(const char *path, const npy_array *f, const char *what,
                  int64_t from_file, int64_t given, const char *opt) {
  if (given == 0 || given == from_file) return true;
  char sh[128];
  shape_text(f, sh, sizeof sh);
  spatc_error("%s: shape %s gives %s = %" PRId64 ", but %s %" PRId64, path, sh,
              what, from_file, opt, given);
  return false;
}

static int qkv_from_files(spatc_qkv *t, spatc_args *a, const spatc_shape *s,
                          const cli *c, int need) {
  int n = need == QKV_QKV ? 3 : 2;
  const char *path[3] = {s->q, s->k, s->v};
  static const char *const what[3] = {"q", "k", "v"};
  if (!s->q || !s->k || (n == 3 && !s->v))
    return cli_usage_error(c, n == 3 ? "give all of --q, --k and --v"
                                     : "give both --q and --k");
  for (int x = 0; x < n; x++) {
    int rc = spatc_read_f32(what[x], path[x], 4, &t->file[x]);
    if (rc) return rc;
    t->mem[x] = t->file[x].data;
  }
  const int64_t *q = t->file[0].shape, *k = t->file[1].shape;
  int ax_l = s->layout == 0 ? 2 : 1, ax_h = s->layout == 0 ? 1 : 2;
  const char *lay = s->layout == 0 ? "[B, H, L, D]" : "[B, L, H, D]";
  a->B = q[0];
  a->H = q[ax_h];
  a->Lq = q[ax_l];
  a->D = q[3];
  a->Hkv = k[ax_h];
  a->Lk = k[ax_l];
  for (int x = 0; x < n; x++)
    for (int d = 0; d < 4; d++)
      if (t->file[x].shape[d] < 1) {
        char sh[128];
        shape_text(&t->file[x], sh, sizeof sh);
        return spatc_error("%s: %s has an empty axis: shape %s", path[x],
                           what[x], sh);
      }
  if (k[0] != a->B || k[3] != a->D) {
    char sq[128], sk[128];
    shape_text(&t->file[0], sq, sizeof sq);
    shape_text(&t->file[1], sk, sizeof sk);
    return spatc_error("%s: k has shape %s, which does not fit q %s (layout "
                       "%s: batch and head dimension must agree)",
                       s->k, sk, sq, lay);
  }
  if (a->H % a->Hkv != 0)
    return spatc_error("%s: %" PRId64 " key/value heads do not divide the %"
                       PRId64 " query heads of %s (layout %s)",
                       s->k, a->Hkv, a->H, s->q, lay);
  if (n == 3)
    for (int d = 0; d < 4; d++)
      if (t->file[2].shape[d] != k[d]) {
        char sk[128], sv[128];
        shape_text(&t->file[1], sk, sizeof sk);
        shape_text(&t->file[2], sv, sizeof sv);
        return spatc_error("%s: v has shape %s, k has %s: they must agree",
                           s->v, sv, sk);
      }
  const npy_array *fq = &t->file[0], *fk = &t->file[1];
  int64_t lk_given = s->Lk ? s->Lk : s->L;
  int64_t lq_given = s->Lq ? s->Lq : s->L;
  if (!agree(s->q, fq, "B", a->B, s->B, "--batch") ||
      !agree(s->q, fq, "H", a->H, s->H, "--heads") ||
      !agree(s->q, fq, "Lq", a->Lq, lq_given, s->Lq ? "--lq" : "--len") ||
      !agree(s->q, fq, "D", a->D, s->D, "--dim") ||
      !agree(s->k, fk, "Hkv", a->Hkv, s->Hkv, "--kv-heads") ||
      !agree(s->k, fk, "Lk", a->Lk, lk_given, s->Lk ? "--lk" : "--len"))
    return SPATC_EUSER;
  spatc_tensor *ts[3] = {&a->q, &a->k, &a->v};
  for (int x = 0; x < n; x++) {
    ts[x]->data = t->mem[x];
    spatc_strides(ts[x], s->layout, x ? a->Hkv : a->H, x ? a->Lk : a->Lq,
                  a->D);
  }
  return 0;
}

int spatc_qkv_setup(spatc_qkv *t, spatc_args *a, const spatc_shape *s,
                    const cli *c, int need) {
  memset(t, 0, sizeof *t);
  a->layout = s->layout;
  bool files = s->q || s->k || s->v;
  if (files && s->seeded)
    return cli_usage_error(c, "--seed and --q/--k/--v exclude each other");
  if (files) return qkv_from_files(t, a, s, c, need ? need : QKV_QK);
  a->Lq = s->Lq ? s->Lq : s->L;
  a->Lk = s->Lk ? s->Lk : s->L ? s->L : a->Lq;
  if (!a->Lq) return cli_usage_error(c, "give the size: --lq N or --len N");
  a->B = s->B ? s->B : 1;
  a->H = s->H ? s->H : 1;
  a->Hkv = s->Hkv ? s->Hkv : a->H;
  a->D = s->D ? s->D : 64;
  if (a->H % a->Hkv != 0)
    return cli_usage_error(c, "--kv-heads %" PRId64 " does not divide --heads "
                              "%" PRId64, a->Hkv, a->H);
  if (need == QKV_SIZES) return 0;
  if (!s->seeded)
    return cli_usage_error(c, need == QKV_QKV
                                  ? "give --q, --k and --v, or --seed S"
                                  : "give --q and --k, or --seed S");
  int n = need == QKV_QKV ? 3 : 2;
  spatc_tensor *ts[3] = {&a->q, &a->k, &a->v};
  for (int x = 0; x < n; x++) {
    int64_t H = x ? a->Hkv : a->H, L = x ? a->Lk : a->Lq;
    int64_t cnt = count4(a->B, H, L, a->D);
    if (cnt < 0 || (uint64_t)cnt > SIZE_MAX / sizeof(float))
      return spatc_error("tensor of %" PRId64 " x %" PRId64 " x %" PRId64
                         " x %" PRId64 " floats is too large",
                         a->B, H, L, a->D);
    t->mem[x] = spatc_xmalloc((size_t)cnt * sizeof(float));
    if (!t->mem[x]) return SPATC_EUSER;
    ts[x]->data = t->mem[x];
    spatc_strides(ts[x], s->layout, H, L, a->D);
    spatc_randn(ts[x], a->B, H, L, a->D, s->seed, x);
  }
  return 0;
}

void spatc_qkv_free(spatc_qkv *t) {
  for (int x = 0; x < 3; x++) {
    if (t->file[x].data) npy_free(&t->file[x]);
    else free(t->mem[x]);
  }
  memset(t, 0, sizeof *t);
}

/* ---- mask rows ---- */

int spatc_rows_open(spatc_rows *r, const spatc_sel *sel,
                    const spatc_shape *sh, const cli *c) {
  memset(r, 0, sizeof *r);
  int rc = spatc_load(&r->pat, sel);
  if (rc) return rc;
  const spat_pattern_info *p = &r->pat.info;
  bool topk = p->data_dependent;
  if (topk && !sh->seeded && !sh->q && !sh->k)
    return spatc_error("pattern '%s' uses topk, so its mask depends on q and "
                       "k: give --seed S (random q, k) or --q/--k FILE.npy",
                       p->name);
  rc = spatc_qkv_setup(&r->qkv, &r->a, sh, c, topk ? QKV_QK : QKV_SIZES);
  if (rc) return rc;
  if (sh->head >= r->a.H)
    return cli_usage_error(c, "--head %" PRId64 " is out of range: there %s %"
                              PRId64 " head%s",
                           sh->head, r->a.H == 1 ? "is" : "are", r->a.H,
                           r->a.H == 1 ? "" : "s");
  r->h0 = sh->head >= 0 ? sh->head : 0;
  r->h1 = sh->head >= 0 ? sh->head + 1 : r->a.H;
  rc = spatc_bind(&r->bound, &r->pat, sel, &r->a);
  if (rc) return rc;
  spat_compile_options o = {.D = r->a.D, .layout = (spat_layout)r->a.layout,
                            .threads = 1, .backend = SPAT_BACKEND_INTERP};
  spat_status st = spat_compile(r->pat.p, &o, &r->kernel);
  if (st != SPAT_OK) return spatc_api_error(r->pat.ctx, st);
  return 0;
}

/* Rows [r0, r0 + n) of head h; the status, the message in the context. */
static spat_status get_rows(const spatc_rows *r, int64_t h, int64_t r0,
                            int64_t n, uint8_t *out) {
  spat_tensors t = spatc_tensors(&r->a);
  return spat_kernel_mask(r->kernel, &t, r->bound.args, r->bound.n_args, 0, h,
                          r0, n, out);
}

int spatc_rows_get_n(spatc_rows *r, int64_t h, int64_t r0, int64_t n,
                     uint8_t *out) {
  spat_status st = get_rows(r, h, r0, n, out);
  return st == SPAT_OK ? 0 : spatc_api_error(r->pat.ctx, st);
}

typedef struct rows_job {
  spatc_rows *r;
  spatc_rows_fn fn;
  void *ctx;
  int64_t chunk, per_head;
} rows_job;

/* Chunk c: its head, first row and number of rows. */
static void chunk_rows(const rows_job *j, long long c, int64_t *h, int64_t *r0,
                       int64_t *n) {
  *h = j->r->h0 + c / j->per_head;
  *r0 = c % j->per_head * j->chunk;
  *n = j->r->a.Lq - *r0 < j->chunk ? j->r->a.Lq - *r0 : j->chunk;
}

static bool rows_one(void *ctx, long long c, void *buf) {
  rows_job *j = ctx;
  int64_t h, r0, n;
  chunk_rows(j, c, &h, &r0, &n);
  if (get_rows(j->r, h, r0, n, buf) != SPAT_OK) return false;
  j->fn(j->ctx, h, r0, n, buf);
  return true;
}

int spatc_rows_each(spatc_rows *r, int threads, spatc_rows_fn fn, void *ctx) {
  int64_t Lk = r->a.Lk, Lq = r->a.Lq;
  rows_job j = {.r = r, .fn = fn, .ctx = ctx};
  j.chunk = (1 << 20) / (Lk > 0 ? Lk : 1); /* about 1 MiB of rows per hand-out */
  j.chunk = j.chunk < 1 ? 1 : j.chunk > 64 ? 64 : j.chunk;
  j.per_head = (Lq + j.chunk - 1) / j.chunk;
  long long n_chunks = j.per_head * (r->h1 - r->h0);
  long long bad = spatc_chunks(n_chunks, threads, (size_t)(j.chunk * Lk) + 1,
                               rows_one, &j);
  if (bad < n_chunks) {
    /* the context's message is the latest failure of any thread: compute
     * the first failing chunk again, alone, for its own message */
    int64_t h, r0, n;
    chunk_rows(&j, bad, &h, &r0, &n);
    uint8_t *buf = spatc_xmalloc((size_t)(j.chunk * Lk) + 1);
    if (!buf) return SPATC_EUSER;
    int rc = spatc_rows_get_n(r, h, r0, n, buf);
    free(buf);
    return rc ? rc : spatc_error("out of memory");
  }
  return 0;
}

void spatc_rows_close(spatc_rows *r) {
  spat_kernel_free(r->kernel);
  spatc_bound_free(&r->bound);
  spatc_qkv_free(&r->qkv);
  spatc_pat_free(&r->pat);
}
