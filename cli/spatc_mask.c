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

/* What is drawn: the mask of r (classes 0, 1), or with d (not NULL) the
 * diff of r's and d's masks (1 only r's, 2 only d's, 3 both); with tiles,
 * r's kernel's tile plan (tile_q x tile_k tiles). */
typedef struct picture {
  spatc_rows *r, *d;
  bool tiles;
  int64_t tile_q, tile_k;
} picture;

static const char ASCII_CELL[4] = {'.', '#', 'B', '#'};
static const char ASCII_DIFF[4] = {'.', 'A', 'B', '#'};
static const char ASCII_TILE[3] = {'.', '+', '#'};

/* Rows [i, i + n) of head h as classes into out[n * Lk] (buf: scratch for
 * the diff's rows); 0 or 1 after printing. */
static int class_rows(const picture *p, int64_t h, int64_t i, int64_t n,
                      uint8_t *out, uint8_t *buf) {
  int rc = spatc_rows_get_n(p->r, h, i, n, out);
  if (rc || !p->d) return rc;
  rc = spatc_rows_get_n(p->d, h, i, n, buf);
  for (int64_t x = 0; x < n * p->r->a.Lk && !rc; x++)
    out[x] = (uint8_t)((out[x] != 0) | (buf[x] != 0) << 1);
  return rc;
}

/* The tile plan of head h into out (ceil(Lq/tq) x ceil(Lk/tk)). */
static int head_tiles(const picture *p, int64_t h, uint8_t *out) {
  spat_tensors t = spatc_tensors(&p->r->a);
  spat_status st = spat_kernel_tiles(p->r->kernel, &t, p->r->bound.args,
                                     p->r->bound.n_args, 0, h, p->tile_q,
                                     p->tile_k, out);
  return st == SPAT_OK ? 0 : spatc_api_error(p->r->pat.ctx, st);
}

static int64_t n_tiles(const picture *p) {
  return ((p->r->a.Lq + p->tile_q - 1) / p->tile_q) *
         ((p->r->a.Lk + p->tile_k - 1) / p->tile_k);
}

static void ascii_tiles(FILE *f, const picture *p, const uint8_t *t) {
  int64_t nkt = (p->r->a.Lk + p->tile_k - 1) / p->tile_k;
  for (int64_t x = 0; x < n_tiles(p); x++) {
    fputc(ASCII_TILE[t[x] <= 2 ? t[x] : 1], f);
    if (x % nkt == nkt - 1) fputc('\n', f);
  }
}

static int write_ascii(const picture *p, const char *out_path) {
  spatc_rows *r = p->r;
  FILE *f = stdout;
  if (out_path && strcmp(out_path, "-") != 0) {
    f = fopen(out_path, "w");
    if (!f) return spatc_error("%s: %s", out_path, strerror(errno));
  }
  int64_t Lk = r->a.Lk, chunk = 64;
  uint8_t *rows = spatc_xmalloc((size_t)(chunk * Lk));
  uint8_t *buf = spatc_xmalloc((size_t)(chunk * Lk));
  char *line = spatc_xmalloc((size_t)Lk + 2);
  uint8_t *tiles = p->tiles ? spatc_xmalloc((size_t)n_tiles(p)) : NULL;
  int rc = rows && buf && line && (!p->tiles || tiles) ? 0 : SPATC_EUSER;
  const char *cell = p->d ? ASCII_DIFF : ASCII_CELL;
  if (!rc && p->d)
    fprintf(f, "# diff: A only %s, B only %s, # both\n",
            spatc_pattern_title(&r->pat, &r->bound),
            spatc_pattern_title(&p->d->pat, &p->d->bound));
  if (!rc && p->tiles)
    fprintf(f, "# tile plan, tiles of %" PRId64 " x %" PRId64
               ": # full, + partial, . skipped\n", p->tile_q, p->tile_k);
  for (int64_t h = r->h0; h < r->h1 && !rc; h++) {
    if (r->h1 - r->h0 > 1) fprintf(f, "%s# head %" PRId64 "\n",
                                   h > r->h0 ? "\n" : "", h);
    if (p->tiles) {
      rc = head_tiles(p, h, tiles);
      if (!rc) ascii_tiles(f, p, tiles);
      continue;
    }
    for (int64_t i = 0; i < r->a.Lq && !rc; i += chunk) {
      int64_t n = r->a.Lq - i < chunk ? r->a.Lq - i : chunk;
      rc = class_rows(p, h, i, n, rows, buf);
      for (int64_t t = 0; t < n && !rc; t++) {
        for (int64_t j = 0; j < Lk; j++) line[j] = cell[rows[t * Lk + j] & 3];
        line[Lk] = '\n';
        fwrite(line, 1, (size_t)Lk + 1, f);
      }
    }
  }
  free(rows);
  free(buf);
  free(line);
  free(tiles);
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
  uint8_t *dst = im->m + ((h - im->h0) * im->Lq + r0) * im->Lk;
  for (int64_t x = 0; x < n * im->Lk; x++) dst[x] = rows[x] != 0;
}

static void or_rows(void *ctx, int64_t h, int64_t r0, int64_t n,
                    const uint8_t *rows) {
  image_rows *im = ctx;
  uint8_t *dst = im->m + ((h - im->h0) * im->Lq + r0) * im->Lk;
  for (int64_t x = 0; x < n * im->Lk; x++) dst[x] |= (uint8_t)((rows[x] != 0) << 1);
}

static void make_title(char *buf, size_t n, const picture *p, bool one_head) {
  spatc_rows *r = p->r;
  int64_t nh = r->h1 - r->h0;
  int u = snprintf(buf, n, "%s", spatc_pattern_title(&r->pat, &r->bound));
  if (p->d && u >= 0 && (size_t)u < n)
    u += snprintf(buf + u, n - (size_t)u, " vs %s",
                  spatc_pattern_title(&p->d->pat, &p->d->bound));
  if (u < 0 || (size_t)u >= n) return;
  if (one_head)
    snprintf(buf + u, n - (size_t)u, ", head %" PRId64 ", Lq = %" PRId64
             ", Lk = %" PRId64, r->h0, r->a.Lq, r->a.Lk);
  else
    snprintf(buf + u, n - (size_t)u, ", %" PRId64 " head%s, Lq = %" PRId64
             ", Lk = %" PRId64, nh, nh == 1 ? "" : "s", r->a.Lq, r->a.Lk);
}

static int write_image(const picture *p, int fmt, const char *path, int px,
                       bool one_head, int threads) {
  spatc_rows *r = p->r;
  int64_t nh = r->h1 - r->h0, Lq = r->a.Lq, Lk = r->a.Lk;
  if ((double)nh * (double)Lq * (double)Lk > (double)MAX_MASK_BYTES)
    return spatc_error("a %" PRId64 " x %" PRId64 " x %" PRId64 " mask is "
                       "too large to hold (limit %d bytes); pick one head "
                       "with --head or smaller sizes",
                       nh, Lq, Lk, MAX_MASK_BYTES);
  size_t bytes = (size_t)(nh * Lq * Lk);
  uint8_t *m = spatc_xmalloc(bytes);
  uint8_t *tiles = p->tiles ? spatc_xmalloc((size_t)(nh * n_tiles(p))) : NULL;
  if (!m || (p->tiles && !tiles)) {
    free(m), free(tiles);
    return SPATC_EUSER;
  }
  image_rows im = {m, r->h0, Lq, Lk};
  int rc = spatc_rows_each(r, threads, put_rows, &im);
  if (!rc && p->d) rc = spatc_rows_each(p->d, threads, or_rows, &im);
  for (int64_t h = r->h0; h < r->h1 && !rc && p->tiles; h++)
    rc = head_tiles(p, h, tiles + (h - r->h0) * n_tiles(p));
  char err[512] = "";
  int st = 0;
  if (!rc) {
    if (fmt == FMT_NPY) {
      int64_t shape[3] = {nh, Lq, Lk};
      st = one_head ? npy_write(path, NPY_U8, 2, shape + 1, m, err, sizeof err)
                    : npy_write(path, NPY_U8, 3, shape, m, err, sizeof err);
    } else {
      char title[512], la[300], lb[300];
      make_title(title, sizeof title, p, one_head);
      const char *labels[4] = {NULL, la, lb, "both"};
      if (p->d) {
        snprintf(la, sizeof la, "only %s", spatc_pattern_title(&r->pat, &r->bound));
        snprintf(lb, sizeof lb, "only %s",
                 spatc_pattern_title(&p->d->pat, &p->d->bound));
      }
      image_spec spec = {
          .cells = m, .rows = nh * Lq, .cols = Lk, .heads = nh, .title = title,
          .n_classes = p->d ? 4 : 2,
          .colour = p->d ? image_diff : image_ink,
          .label = p->d ? labels : NULL,
          .tiles = tiles, .tile_q = p->tile_q, .tile_k = p->tile_k,
          .max_px = px};
      st = fmt == FMT_PNG ? image_write_png(path, &spec, err, sizeof err)
                          : image_write_svg(path, &spec, err, sizeof err);
    }
    if (st != 0) rc = spatc_lib_error(err);
  }
  free(m);
  free(tiles);
  return rc;
}

typedef struct mask_opts {
  int fmt;                   /* FMT_*, -1: from -o, else ascii */
  const char *out;           /* -o */
  bool force, tiles;
  int64_t px, threads, bq, bk;
  const char *diff, *diff_pattern;
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
  case OPT_TILES: o->tiles = true; return 0;
  case OPT_DIFF: o->diff = c->arg; return 0;
  case OPT_DIFF_PATTERN: o->diff_pattern = c->arg; return 0;
  case OPT_BQ: return cli_int(c, 1, 1 << 20, &o->bq) ? 0 : SPATC_EUSAGE;
  case OPT_BK: return cli_int(c, 1, 1 << 20, &o->bk) ? 0 : SPATC_EUSAGE;
  case OPT_PX: return cli_int(c, 16, 16384, &o->px) ? 0 : SPATC_EUSAGE;
  case OPT_THREADS: return cli_int(c, 0, 256, &o->threads) ? 0 : SPATC_EUSAGE;
  default: return -1;
  }
}

/* The selection of --diff's pattern: its file and name, the same run-time
 * values (not -D: those are the first pattern's). */
static void diff_sel(spatc_sel *d, const spatc_sel *s, const mask_opts *o) {
  *d = *s;
  d->file = o->diff;
  d->pattern = o->diff_pattern;
  d->n_defs = 0;
}

int spatc_mask_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, OPT_LQ,
      OPT_LK, OPT_LEN, OPT_HEADS, OPT_KVHEADS, OPT_HEAD, OPT_SEED, OPT_DIM,
      OPT_Q, OPT_K, OPT_LAYOUT, OPT_FORMAT, OPT_OUTPUT, OPT_FORCE, OPT_PX,
      OPT_THREADS, OPT_DIFF, OPT_DIFF_PATTERN, OPT_TILES, OPT_BQ, OPT_BK,
      OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "FILE (--lq N [--lk N] | --len N) [options]",
           "Computes the mask of a pattern, M(h, i, j) for query rows i and "
           "keys j, with\nthe reference interpreter.  ascii prints one line "
           "per query row ('#' allowed,\n'.' not), npy writes uint8 "
           "[H, Lq, Lk] ([Lq, Lk] with --head), png and svg\ndraw it (heads "
           "stacked, with axes, a title and a legend).  The format\ndefaults "
           "to the -o file's extension.  --diff FILE2 compares with FILE2's "
           "pattern\n(--diff-pattern NAME): pairs only FILE's allows ('A', "
           "1), only FILE2's ('B',\n2), both ('#', 3).  --tiles shows the "
           "tile plan of the pattern's kernels\n(tiles of --bq x --bk, "
           "default 64 x 64: full, partial, skipped) under the\nmask (ascii: "
           "one character per tile).  Patterns with topk need q and k:\n"
           "--seed S draws them as `spatc run --seed S` does (batch 0).",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  mask_opts o = {-1, NULL, false, false, 1024, 0, 0, 0, NULL, NULL};
  int rc = spatc_parse(&c, &sel, &sh, mask_option, &o);
  if (rc == SPATC_OK && o.fmt < 0) {
    o.fmt = o.out ? format_of_path(o.out) : FMT_ASCII;
    if (o.fmt < 0) o.fmt = FMT_ASCII;
  }
  if (rc == SPATC_OK && o.fmt != FMT_ASCII &&
      (!o.out || strcmp(o.out, "-") == 0))
    rc = cli_usage_error(&c, "--format %s needs an output file: -o FILE",
                         format_name[o.fmt]);
  if (rc == SPATC_OK && o.diff_pattern && !o.diff)
    rc = cli_usage_error(&c, "--diff-pattern needs --diff FILE");
  if (rc == SPATC_OK && (o.bq || o.bk) && !o.tiles)
    rc = cli_usage_error(&c, "--bq and --bk size the tiles of --tiles");
  if (rc == SPATC_OK && o.fmt == FMT_NPY && (o.tiles))
    rc = cli_usage_error(&c, "--tiles draws on png, svg or ascii, not npy");
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_rows r, d;
  memset(&d, 0, sizeof d);
  picture pic = {&r, NULL, o.tiles, o.bq ? o.bq : 64, o.bk ? o.bk : 64};
  rc = spatc_rows_open(&r, &sel, &sh, &c);
  if (rc == SPATC_OK && o.diff) {
    spatc_sel ds;
    diff_sel(&ds, &sel, &o);
    rc = spatc_rows_open(&d, &ds, &sh, &c);
    pic.d = &d;
  }
  if (rc == SPATC_OK && o.fmt == FMT_ASCII && r.a.Lk > ASCII_MAX_COLS &&
      !o.force && !o.tiles)
    rc = spatc_error("%" PRId64 " columns are too wide for ascii (limit %d): "
                     "use --format png or svg, or --force",
                     r.a.Lk, ASCII_MAX_COLS);
  if (rc == SPATC_OK) {
    if (o.fmt == FMT_ASCII)
      rc = write_ascii(&pic, o.out);
    else
      rc = write_image(&pic, o.fmt, o.out, (int)o.px, sh.head >= 0,
                       (int)o.threads);
  }
  if (o.diff) spatc_rows_close(&d);
  spatc_rows_close(&r);
  sel_free(&sel);
  return rc;
}
