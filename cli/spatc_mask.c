/* spatc_mask.c: `spatc mask`, a pattern's mask M(h, i, j) for given sizes,
 * computed row by row with the reference interpreter (spat_kernel_mask).
 *   ascii  one line per query row, '#' allowed, '.' not; with several heads
 *          each head's block is preceded by "# head H"; streamed
 *   npy    uint8 [H, Lq, Lk] (or [Lq, Lk] with --head)
 *   png    grey picture (cli/image.h), heads stacked top to bottom
 *   svg    the same as vector graphics
 * The format defaults to the -o file's extension, else ascii. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "spatc.h"
#include "spatc_common.h"

#define FORMATS(X) X(ASCII, "ascii") X(NPY, "npy") X(PNG, "png") X(SVG, "svg")

typedef enum {
#define X(id, name) FMT_##id,
  FORMATS(X)
#undef X
  FMT_N
} mask_format;

static const char *const format_name[FMT_N] = {
#define X(id, name) name,
    FORMATS(X)
#undef X
};

static int find_format(const char *s) {
  for (int f = 0; f < FMT_N; f++)
    if (strcmp(s, format_name[f]) == 0) return f;
  return -1;
}

static int format_of_path(const char *path) {
  const char *dot = strrchr(path, '.');
  if (!dot || strchr(dot, '/')) return -1;
  return find_format(dot + 1);
}

enum { ASCII_MAX_COLS = 512, MAX_MASK_BYTES = 1 << 30 };

static int write_ascii(spatc_rows *r, const char *out_path) {
  FILE *f = stdout;
  if (out_path && strcmp(out_path, "-") != 0) {
    f = fopen(out_path, "w");
    if (!f) return spatc_error("%s: %s", out_path, strerror(errno));
  }
  int64_t Lk = r->a.Lk, chunk = 64;
  uint8_t *rows = spatc_xmalloc((size_t)(chunk * Lk));
  char *line = spatc_xmalloc((size_t)Lk + 2);
  int rc = rows && line ? 0 : SPATC_EUSER;
  for (int64_t h = r->h0; h < r->h1 && !rc; h++) {
    if (r->h1 - r->h0 > 1) fprintf(f, "%s# head %" PRId64 "\n",
                                   h > r->h0 ? "\n" : "", h);
    for (int64_t i = 0; i < r->a.Lq && !rc; i += chunk) {
      int64_t n = r->a.Lq - i < chunk ? r->a.Lq - i : chunk;
      rc = spatc_rows_get_n(r, h, i, n, rows);
      for (int64_t t = 0; t < n && !rc; t++) {
        for (int64_t j = 0; j < Lk; j++) line[j] = rows[t * Lk + j] ? '#' : '.';
        line[Lk] = '\n';
        fwrite(line, 1, (size_t)Lk + 1, f);
      }
    }
  }
  free(rows);
  free(line);
  if (f != stdout) {
    if (fclose(f) != 0 && !rc) rc = spatc_error("%s: %s", out_path, strerror(errno));
    if (rc) remove(out_path);
  } else if (fflush(f) != 0 && !rc) {
    rc = spatc_error("stdout: %s", strerror(errno));
  }
  return rc;
}

typedef struct image_rows {
  uint8_t *m;
  int64_t h0, Lq, Lk;
} image_rows;

static void put_rows(void *ctx, int64_t h, int64_t r0, int64_t n,
                     const uint8_t *rows) {
  image_rows *im = ctx;
  memcpy(im->m + ((h - im->h0) * im->Lq + r0) * im->Lk, rows,
         (size_t)(n * im->Lk));
}

static int write_image(spatc_rows *r, int fmt, const char *path, int px,
                       bool one_head, int threads) {
  int64_t nh = r->h1 - r->h0, Lq = r->a.Lq, Lk = r->a.Lk;
  if ((double)nh * (double)Lq * (double)Lk > (double)MAX_MASK_BYTES)
    return spatc_error("a %" PRId64 " x %" PRId64 " x %" PRId64 " mask is "
                       "too large to hold (limit %d bytes); pick one head "
                       "with --head or smaller sizes",
                       nh, Lq, Lk, MAX_MASK_BYTES);
  size_t bytes = (size_t)(nh * Lq * Lk);
  uint8_t *m = spatc_xmalloc(bytes);
  if (!m) return SPATC_EUSER;
  image_rows im = {m, r->h0, Lq, Lk};
  int rc = spatc_rows_each(r, threads, put_rows, &im);
  char err[512] = "";
  int st = 0;
  if (!rc) {
    if (fmt == FMT_NPY) {
      int64_t shape[3] = {nh, Lq, Lk};
      st = one_head ? npy_write(path, NPY_U8, 2, shape + 1, m, err, sizeof err)
                    : npy_write(path, NPY_U8, 3, shape, m, err, sizeof err);
    } else if (fmt == FMT_PNG) {
      st = image_write_png(path, m, nh * Lq, Lk, px, err, sizeof err);
    } else {
      char title[256];
      if (one_head)
        snprintf(title, sizeof title, "%s, head %" PRId64 ", Lq = %" PRId64
                 ", Lk = %" PRId64, spatc_pattern_title(&r->pat, &r->bound), r->h0, Lq, Lk);
      else
        snprintf(title, sizeof title, "%s, %" PRId64 " head%s, Lq = %" PRId64
                 ", Lk = %" PRId64, spatc_pattern_title(&r->pat, &r->bound), nh,
                 nh == 1 ? "" : "s", Lq, Lk);
      st = image_write_svg(path, m, nh * Lq, Lk, px, title, err, sizeof err);
    }
    if (st != 0) rc = spatc_lib_error(err);
  }
  free(m);
  return rc;
}

typedef struct mask_opts {
  int fmt;                   /* FMT_*, -1: from -o, else ascii */
  const char *out;           /* -o */
  bool force;
  int64_t px, threads;
} mask_opts;

static int mask_option(void *ctx, const cli *c, int id) {
  mask_opts *o = ctx;
  switch (id) {
  case OPT_FORMAT:
    o->fmt = find_format(c->arg);
    if (o->fmt < 0)
      return cli_usage_error(c, "--format: expected ascii, npy, png or svg, "
                                "got '%s'", c->arg);
    return 0;
  case OPT_OUTPUT: o->out = c->arg; return 0;
  case OPT_FORCE: o->force = true; return 0;
  case OPT_PX: return cli_int(c, 16, 16384, &o->px) ? 0 : SPATC_EUSAGE;
  case OPT_THREADS: return cli_int(c, 0, 256, &o->threads) ? 0 : SPATC_EUSAGE;
  default: return -1;
  }
}

int spatc_mask_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, OPT_LQ,
      OPT_LK, OPT_LEN, OPT_HEADS, OPT_KVHEADS, OPT_HEAD, OPT_SEED, OPT_DIM,
      OPT_Q, OPT_K, OPT_LAYOUT, OPT_FORMAT, OPT_OUTPUT, OPT_FORCE, OPT_PX,
      OPT_THREADS, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "FILE (--lq N [--lk N] | --len N) [options]",
           "Computes the mask of a pattern, M(h, i, j) for query rows i and "
           "keys j, with\nthe reference interpreter.  ascii prints one line "
           "per query row ('#' allowed,\n'.' not), npy writes uint8 "
           "[H, Lq, Lk] ([Lq, Lk] with --head), png and svg\ndraw it (heads "
           "stacked).  The format defaults to the -o file's extension.\n"
           "Patterns with topk need q and k: --seed S draws them as "
           "`spatc run --seed S`\ndoes (batch 0).",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  mask_opts o = {-1, NULL, false, 1024, 0};
  int rc = spatc_parse(&c, &sel, &sh, mask_option, &o);
  if (rc == SPATC_OK && o.fmt < 0) {
    o.fmt = o.out ? format_of_path(o.out) : FMT_ASCII;
    if (o.fmt < 0) o.fmt = FMT_ASCII;
  }
  if (rc == SPATC_OK && o.fmt != FMT_ASCII &&
      (!o.out || strcmp(o.out, "-") == 0))
    rc = cli_usage_error(&c, "--format %s needs an output file: -o FILE",
                         format_name[o.fmt]);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_rows r;
  rc = spatc_rows_open(&r, &sel, &sh, &c);
  if (rc == SPATC_OK && o.fmt == FMT_ASCII && r.a.Lk > ASCII_MAX_COLS &&
      !o.force)
    rc = spatc_error("%" PRId64 " columns are too wide for ascii (limit %d): "
                     "use --format png or svg, or --force",
                     r.a.Lk, ASCII_MAX_COLS);
  if (rc == SPATC_OK) {
    if (o.fmt == FMT_ASCII)
      rc = write_ascii(&r, o.out);
    else
      rc = write_image(&r, o.fmt, o.out, (int)o.px, sh.head >= 0,
                       (int)o.threads);
  }
  spatc_rows_close(&r);
  sel_free(&sel);
  return rc;
}
