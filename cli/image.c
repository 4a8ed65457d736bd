/* image.c: a mask (image.h: rows x cols cells of classes) as a PNG or an
 * SVG, with a title, axes and tick labels, separators between heads, a
 * legend and, optionally, the tile plan under the mask.
 *
 * Geometry, shared by both formats (n = max(rows, cols)):
 *  - n > max_px (PNG) or n > SVG_CELLS (SVG): the mask is downsampled to at
 *    most max_px (resp. SVG raster) pixels on its longer side, aspect kept;
 *    a pixel covers a rectangle of cells and is shaded by the fraction of
 *    allowed pairs in it, in the mix of their classes' colours.  A pixel
 *    with any allowed pair is at least MIN_INK dark so a thin band stays
 *    visible after downsampling.
 *  - otherwise every cell is a square of `cell` pixels: cell =
 *    min(max_px, UPSCALE_PX) / n, raised to 4 when max_px allows it,
 *    capped at MAX_CELL; a light 1-px grid is drawn when cells are >=
 *    GRID_MIN px.
 * Allowed pairs are coloured on white; with the tile plan, on the tint of
 * their tile (full tiles green, partial ones amber, skipped ones white)
 * and, for a plain mask, in its dark shade (a pair in a skipped tile, which
 * would be a bug, red).  Query rows go
 * down, key columns go right; heads are stacked, a red line between them.
 * max_px <= 0 means DEFAULT_PX; it bounds the plot, the margins come on
 * top.
 *
 * PNG: 8-bit RGB, no interlace, every scanline with filter 0, deflated by
 * zlib into one IDAT chunk; text in the 5 x 7 font of font.c (scaled by 2
 * on large plots).  SVG: rectangles, one per run of cells of one class in
 * a row (small masks) or per run of equally shaded pixels in a raster row
 * (large ones).
 */
#include "image.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fileio.h"
#include "font.h"

#define DEFAULT_PX 1024
#define MAX_PX 16384
#define MAX_CELL 32
#define UPSCALE_PX 640       /* small masks are drawn about this big */
#define GRID_MIN 8
#define MIN_INK 0.2          /* darkness of a pixel with a single allowed pair */
#define SVG_CELLS 256        /* larger masks become an SVG raster */
#define SVG_PLOT 512         /* nominal plot side in SVG user units */
#define SVG_LEVELS 16        /* shades of the SVG raster */
#define TILE_EDGE_MIN 6      /* tile edges drawn when tiles are this many px */

const uint8_t image_ink[2][3] = {{255, 255, 255}, {24, 40, 96}};
const uint8_t image_diff[4][3] = {
    {255, 255, 255}, {222, 110, 20}, {30, 110, 220}, {40, 40, 40}};

static const uint8_t PAPER[3] = {255, 255, 255};
static const uint8_t GRID[3] = {205, 205, 215};
static const uint8_t TEXT[3] = {30, 30, 30};
static const uint8_t FRAME[3] = {136, 136, 136};
static const uint8_t SEPARATOR[3] = {210, 30, 30};
static const uint8_t TILE_EDGE[3] = {170, 170, 170};
static const uint8_t TILE_TINT[3][3] = {
    {255, 255, 255}, {255, 232, 170}, {196, 236, 196}}; /* IMAGE_TILE_* */
/* a plain mask's allowed pairs over each kind of tile (red: a pair the
 * plan skips would be a bug) */
static const uint8_t TILE_INK[3][3] = {
    {200, 0, 0}, {170, 95, 0}, {20, 105, 40}};
static const char *const TILE_LABEL[3] = {"skipped tile", "partial tile",
                                          "full tile"};

/* ---- geometry ----------------------------------------------------------- */

typedef struct layout {
  int64_t rows, cols;
  int64_t w, h;      /* plot size in pixels */
  int cell;          /* > 0: pixels per cell; 0: downsampled */
  bool grid;
} layout;

static int check_spec(const char *path, const image_spec *s, int *max_px,
                      char *err, size_t errlen) {
  if (!path) return fio_fail(err, errlen, path, "no output path");
  if (!s) return fio_fail(err, errlen, path, "no picture");
  if (s->rows <= 0 || s->cols <= 0)
    return fio_fail(err, errlen, path, "empty mask (%" PRId64 " x %" PRId64 ")",
                    s->rows, s->cols);
  if (!s->cells) return fio_fail(err, errlen, path, "no mask data");
  if (s->rows > INT64_MAX / s->cols)
    return fio_fail(err, errlen, path, "mask size overflows");
  if (s->heads < 1 || s->rows % s->heads)
    return fio_fail(err, errlen, path, "%" PRId64 " rows are not %" PRId64
                    " heads", s->rows, s->heads);
  if (s->n_classes < 2 || s->n_classes > IMAGE_MAX_CLASSES || !s->colour)
    return fio_fail(err, errlen, path, "bad classes");
  if (s->tiles && (s->tile_q < 1 || s->tile_k < 1))
    return fio_fail(err, errlen, path, "bad tile size");
  *max_px = s->max_px <= 0 ? DEFAULT_PX : s->max_px;
  if (*max_px > MAX_PX)
    return fio_fail(err, errlen, path, "max size %d px is above %d", *max_px,
                    MAX_PX);
  return 0;
}

static layout plan_layout(int64_t rows, int64_t cols, int max_px) {
  layout L = {rows, cols, 0, 0, 0, false};
  int64_t n = rows > cols ? rows : cols;
  if (n > max_px) {
    L.w = cols * max_px / n;
    L.h = rows * max_px / n;
    if (L.w < 1) L.w = 1;
    if (L.h < 1) L.h = 1;
    return L;
  }
  int64_t c = (max_px < UPSCALE_PX ? max_px : UPSCALE_PX) / n;
  if (c < 4) c = max_px / n < 4 ? max_px / n : 4;
  if (c > MAX_CELL) c = MAX_CELL;
  if (c >= GRID_MIN && n * c + 1 > max_px) c--;
  L.cell = (int)c;
  L.grid = c >= GRID_MIN;
  L.w = cols * c + (L.grid ? 1 : 0);
  L.h = rows * c + (L.grid ? 1 : 0);
  return L;
}

/* First cell of pixel p along an axis of n cells drawn as m pixels. */
static int64_t cell_at(int64_t p, int64_t n, int64_t m) {
  return p * n / m;  /* p <= m <= MAX_PX: no overflow for any mask in memory */
}

/* The first plot pixel of cell c along an axis of n cells (L's scale). */
static int64_t pixel_of(const layout *L, int64_t c, int64_t n, int64_t m) {
  if (L->cell) return c * L->cell;
  return (c * m + n - 1) / n;
}

/* Darkness in [0, 1] of a pixel covering `tot` cells of which `on` allowed. */
static double ink(int64_t on, int64_t tot) {
  if (on <= 0) return 0.0;
  return MIN_INK + (1.0 - MIN_INK) * (double)on / (double)tot;
}

/* pxcol[c]: the pixel column that holds mask column c (downsampled). */
static int64_t *column_map(int64_t cols, int64_t w) {
  int64_t *m = malloc((size_t)cols * sizeof *m);
  if (!m) return NULL;
  int64_t x = 0;
  for (int64_t c = 0; c < cols; c++) {
    while (x + 1 < w && cell_at(x + 1, cols, w) <= c) x++;
    m[c] = x;
  }
  return m;
}

/* The tile class of cell (r, c), or -1 without tiles. */
static int tile_of(const image_spec *s, int64_t r, int64_t c) {
  if (!s->tiles) return -1;
  int64_t lq = s->rows / s->heads, h = r / lq, rr = r % lq;
  int64_t ntq = (lq + s->tile_q - 1) / s->tile_q;
  int64_t ntk = (s->cols + s->tile_k - 1) / s->tile_k;
  uint8_t t = s->tiles[(h * ntq + rr / s->tile_q) * ntk + c / s->tile_k];
  return t <= IMAGE_TILE_FULL ? t : IMAGE_TILE_PARTIAL;
}

/* One row of plot pixels: for each, the mix of its allowed cells'
 * colours (rgb), its darkness d in [0, 1] and its background (the tile
 * tint, else paper).  Scratch: acc[w * IMAGE_MAX_CLASSES]. */
typedef struct row_px {
  uint8_t (*rgb)[3], (*bg)[3];
  double *d;
  int64_t *acc, *pxcol;
} row_px;

static void pixel_row(const image_spec *s, const layout *L, int64_t y,
                      row_px *o) {
  int nc = s->n_classes;
  if (L->cell) {
    int64_t r = y / L->cell;
    if (r >= s->rows) r = s->rows - 1;
    for (int64_t x = 0; x < L->w; x++) {
      int64_t c = x / L->cell;
      if (c >= s->cols) c = s->cols - 1;
      uint8_t k = s->cells[r * s->cols + c];
      if (k >= nc) k = (uint8_t)(nc - 1);
      int t = tile_of(s, r, c);
      memcpy(o->rgb[x], t >= 0 && nc == 2 ? TILE_INK[t] : s->colour[k], 3);
      o->d[x] = k ? 1.0 : 0.0;
      memcpy(o->bg[x], t < 0 ? PAPER : TILE_TINT[t], 3);
    }
    return;
  }
  int64_t r0 = cell_at(y, s->rows, L->h), r1 = cell_at(y + 1, s->rows, L->h);
  memset(o->acc, 0, sizeof *o->acc * (size_t)(L->w * IMAGE_MAX_CLASSES));
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *row = s->cells + r * s->cols;
    for (int64_t c = 0; c < s->cols; c++) {
      uint8_t k = row[c];
      if (k) o->acc[o->pxcol[c] * IMAGE_MAX_CLASSES + (k < nc ? k : nc - 1)]++;
    }
  }
  for (int64_t x = 0; x < L->w; x++) {
    int64_t c0 = cell_at(x, s->cols, L->w), c1 = cell_at(x + 1, s->cols, L->w);
    const int64_t *a = o->acc + x * IMAGE_MAX_CLASSES;
    int t = tile_of(s, r0, c0);
    int64_t on = 0;
    double mix[3] = {0, 0, 0};
    for (int k = 1; k < nc; k++) {
      const uint8_t *col = t >= 0 && nc == 2 ? TILE_INK[t] : s->colour[k];
      on += a[k];
      for (int ch = 0; ch < 3; ch++) mix[ch] += (double)a[k] * col[ch];
    }
    for (int ch = 0; ch < 3; ch++)
      o->rgb[x][ch] = on ? (uint8_t)(mix[ch] / (double)on + 0.5) : 255;
    o->d[x] = ink(on, (r1 - r0) * (c1 - c0));
    memcpy(o->bg[x], t < 0 ? PAPER : TILE_TINT[t], 3);
  }
}

static bool row_px_init(row_px *o, const image_spec *s, const layout *L) {
  memset(o, 0, sizeof *o);
  o->rgb = malloc(sizeof *o->rgb * (size_t)L->w);
  o->bg = malloc(sizeof *o->bg * (size_t)L->w);
  o->d = malloc(sizeof *o->d * (size_t)L->w);
  o->acc = malloc(sizeof *o->acc * (size_t)(L->w * IMAGE_MAX_CLASSES));
  o->pxcol = L->cell ? NULL : column_map(s->cols, L->w);
  return o->rgb && o->bg && o->d && o->acc && (L->cell || o->pxcol);
}

static void row_px_free(row_px *o) {
  free(o->rgb), free(o->bg), free(o->d), free(o->acc), free(o->pxcol);
}

/* A tick step of 1, 2 or 5 times a power of ten giving at most ~6 ticks. */
static int64_t tick_step(int64_t n) {
  int64_t p = 1;
  for (;;) {
    if (n / p <= 6) return p;
    if (n / (2 * p) <= 6) return 2 * p;
    if (n / (5 * p) <= 6) return 5 * p;
    if (p > INT64_MAX / 10) return p;
    p *= 10;
  }
}

/* ---- the raster (PNG) --------------------------------------------------- */

typedef struct canvas {
  int64_t w, h;
  uint8_t *px;       /* RGB rows */
} canvas;

static void put(canvas *c, int64_t x, int64_t y, const uint8_t *rgb) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  memcpy(c->px + (y * c->w + x) * 3, rgb, 3);
}

static void fill(canvas *c, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                 const uint8_t *rgb) {
  for (int64_t y = y0; y < y1; y++)
    for (int64_t x = x0; x < x1; x++) put(c, x, y, rgb);
}

static int64_t text_w(const char *s, int sc) {
  size_t n = strlen(s);
  return n ? (int64_t)n * (FONT_W + 1) * sc - sc : 0;
}

/* Text with its top-left corner at (x, y), glyph pixels sc x sc. */
static void text(canvas *c, int64_t x, int64_t y, const char *s, int sc,
                 const uint8_t *rgb) {
  for (; *s; s++, x += (FONT_W + 1) * sc)
    for (int gy = 0; gy < FONT_H; gy++)
      for (int gx = 0; gx < FONT_W; gx++)
        if (font_pixel(*s, gx, gy))
          fill(c, x + gx * sc, y + gy * sc, x + (gx + 1) * sc, y + (gy + 1) * sc,
               rgb);
}

/* Text down the page, one character under the other. */
static void vtext(canvas *c, int64_t x, int64_t y, const char *s, int sc,
                  const uint8_t *rgb) {
  char one[2] = {0, 0};
  for (; *s; s++, y += (FONT_H + 2) * sc) {
    one[0] = *s;
    text(c, x, y, one, sc, rgb);
  }
}

/* Margins around the plot. */
typedef struct frame {
  int sc;                       /* text scale */
  int64_t ml, mt, mr, mb;
  int64_t lq;                   /* rows of a head */
} frame;

static int n_legend(const image_spec *s) {
  return (s->label ? s->n_classes - 1 : 0) + (s->tiles ? 3 : 0);
}

static const char *legend_text(const image_spec *s, int k,
                               const uint8_t **rgb) {
  int nl = s->label ? s->n_classes - 1 : 0;
  if (k < nl) {
    *rgb = s->colour[k + 1];
    return s->label[k + 1] ? s->label[k + 1] : "";
  }
  int t = IMAGE_TILE_FULL - (k - nl); /* full, partial, skipped */
  *rgb = s->n_classes == 2 && t != IMAGE_TILE_SKIPPED ? TILE_INK[t] : TILE_TINT[t];
  return TILE_LABEL[t];
}

static int64_t legend_w(const image_spec *s, int sc) {
  int64_t w = 0;
  for (int k = 0; k < n_legend(s); k++) {
    const uint8_t *rgb;
    w += 14 * sc + text_w(legend_text(s, k, &rgb), sc) + 12 * sc;
  }
  return w;
}

static frame plan_frame(const image_spec *s, const layout *L) {
  frame f;
  f.sc = (L->w > 480 || L->h > 480) ? 2 : 1;
  int sc = f.sc;
  f.lq = s->rows / s->heads;
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, f.lq);
  int64_t ch_h = (FONT_H + 3) * sc;
  f.ml = (FONT_W + 1) * sc + 6 * sc + text_w(buf, sc) + 6 * sc;
  f.mt = 6 * sc + ch_h + 4 * sc + ch_h + 2 * sc + ch_h + 2 * sc;
  f.mr = 12 * sc;
  f.mb = n_legend(s) ? 10 * sc + ch_h + 6 * sc : 8 * sc;
  const char *title = s->title ? s->title : "mask";
  int64_t need = text_w(title, sc) + 8 * sc;
  int64_t lw = legend_w(s, sc);
  if (lw > need) need = lw;
  if (L->w + f.mr < need) f.mr = need - L->w;
  return f;
}

/* Axis labels, ticks, frame, head separators, legend. */
static void decorate(canvas *c, const image_spec *s, const layout *L,
                     const frame *f) {
  int sc = f->sc;
  int64_t x0 = f->ml, y0 = f->mt, ch_h = (FONT_H + 3) * sc;
  text(c, x0, 6 * sc, s->title ? s->title : "mask", sc, TEXT);
  char buf[64];
  snprintf(buf, sizeof buf, "%" PRId64 " x %" PRId64 "%s", f->lq, s->cols,
           L->cell ? "" : ", shade = fraction allowed");
  text(c, x0, 6 * sc + ch_h + 4 * sc, "key position j ->", sc, TEXT);
  int64_t rx = x0 + L->w - text_w(buf, sc);
  int64_t after = x0 + text_w("key position j ->", sc) + 12 * sc;
  text(c, rx > after ? rx : after, 6 * sc + ch_h + 4 * sc, buf, sc, FRAME);
  vtext(c, 2 * sc, y0, "query i", sc, TEXT);
  /* key ticks along the top */
  int64_t ty = y0 - ch_h + sc;
  int64_t st = tick_step(s->cols), last_end = -1;
  for (int64_t t = 0; t <= s->cols; t += st) {
    int64_t x = x0 + pixel_of(L, t, s->cols, L->w);
    snprintf(buf, sizeof buf, "%" PRId64, t);
    int64_t lx = x - text_w(buf, sc) / 2;
    if (lx > last_end) {
      text(c, lx, ty, buf, sc, TEXT);
      last_end = lx + text_w(buf, sc) + 2 * sc;
    }
    fill(c, x, y0 - 2 * sc, x + sc, y0, FRAME);
    if (t > INT64_MAX - st) break;
  }
  /* query ticks down the left, per head */
  st = tick_step(f->lq);
  for (int64_t h = 0; h < s->heads; h++) {
    int64_t last = -1;
    for (int64_t t = 0; t < f->lq || (h == s->heads - 1 && t == f->lq); t += st) {
      int64_t y = y0 + pixel_of(L, h * f->lq + t, s->rows, L->h);
      snprintf(buf, sizeof buf, "%" PRId64, t);
      int64_t ly = y - FONT_H * sc / 2;
      if (ly > last && (t == 0 || ly + ch_h < y0 + pixel_of(L, (h + 1) * f->lq, s->rows, L->h))) {
        text(c, x0 - 4 * sc - text_w(buf, sc), ly, buf, sc, TEXT);
        last = ly + FONT_H * sc + sc;
      }
      fill(c, x0 - 2 * sc, y, x0, y + sc, FRAME);
      if (t > INT64_MAX - st) break;
    }
  }
  /* frame and separators between heads */
  fill(c, x0 - 1, y0 - 1, x0 + L->w + 1, y0, FRAME);
  fill(c, x0 - 1, y0 + L->h, x0 + L->w + 1, y0 + L->h + 1, FRAME);
  fill(c, x0 - 1, y0, x0, y0 + L->h, FRAME);
  fill(c, x0 + L->w, y0, x0 + L->w + 1, y0 + L->h, FRAME);
  for (int64_t h = 1; h < s->heads; h++) {
    int64_t y = y0 + pixel_of(L, h * f->lq, s->rows, L->h);
    fill(c, x0, y - (sc > 1), x0 + L->w, y + 1, SEPARATOR);
  }
  /* legend */
  int64_t lx = x0, ly = y0 + L->h + 10 * sc;
  for (int k = 0; k < n_legend(s); k++) {
    const uint8_t *rgb;
    const char *t = legend_text(s, k, &rgb);
    fill(c, lx, ly, lx + 10 * sc, ly + FONT_H * sc, FRAME);
    fill(c, lx + 1, ly + 1, lx + 10 * sc - 1, ly + FONT_H * sc - 1, rgb);
    text(c, lx + 14 * sc, ly, t, sc, TEXT);
    lx += 14 * sc + text_w(t, sc) + 12 * sc;
  }
}

/* The plot's pixels at (ox, oy). */
static bool draw_plot(canvas *c, const image_spec *s, const layout *L,
                      int64_t ox, int64_t oy) {
  row_px o;
  if (!row_px_init(&o, s, L)) {
    row_px_free(&o);
    return false;
  }
  for (int64_t y = 0; y < L->h; y++) {
    pixel_row(s, L, y, &o);
    for (int64_t x = 0; x < L->w; x++) {
      uint8_t rgb[3];
      for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (uint8_t)(o.bg[x][ch] * (1 - o.d[x]) + o.rgb[x][ch] * o.d[x] + 0.5);
      put(c, ox + x, oy + y, rgb);
    }
  }
  row_px_free(&o);
  if (L->grid) {
    for (int64_t x = 0; x <= s->cols; x++)
      fill(c, ox + x * L->cell, oy, ox + x * L->cell + 1, oy + L->h, GRID);
    for (int64_t y = 0; y <= s->rows; y++)
      fill(c, ox, oy + y * L->cell, ox + L->w, oy + y * L->cell + 1, GRID);
  }
  if (s->tiles) {
    int64_t lq = s->rows / s->heads;
    double tq = (double)s->tile_q * (double)L->h / (double)s->rows;
    double tk = (double)s->tile_k * (double)L->w / (double)s->cols;
    if (tq >= TILE_EDGE_MIN && tk >= TILE_EDGE_MIN) {
      for (int64_t cx = s->tile_k; cx < s->cols; cx += s->tile_k) {
        int64_t x = ox + pixel_of(L, cx, s->cols, L->w);
        fill(c, x, oy, x + 1, oy + L->h, TILE_EDGE);
      }
      for (int64_t h = 0; h < s->heads; h++)
        for (int64_t r = s->tile_q; r < lq; r += s->tile_q) {
          int64_t y = oy + pixel_of(L, h * lq + r, s->rows, L->h);
          fill(c, ox, y, ox + L->w, y + 1, TILE_EDGE);
        }
    }
  }
  return true;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* One chunk: length, type, data, CRC-32 (zlib's). */
static bool png_chunk(FILE *f, const char *type, const uint8_t *data,
                      size_t n) {
  uint8_t hdr[8], tail[4];
  put32(hdr, (uint32_t)n);
  memcpy(hdr + 4, type, 4);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, hdr + 4, 4);
  if (n) crc = crc32(crc, data, (uInt)n);
  put32(tail, (uint32_t)crc);
  return fwrite(hdr, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) &&
         fwrite(tail, 1, 4, f) == 4;
}

int image_write_png(const char *path, const image_spec *s, char *err,
                    size_t errlen) {
  int max_px;
  if (check_spec(path, s, &max_px, err, errlen) < 0) return -1;
  layout L = plan_layout(s->rows, s->cols, max_px);
  frame fr = plan_frame(s, &L);
  canvas c = {fr.ml + L.w + fr.mr, fr.mt + L.h + fr.mb, NULL};
  c.px = malloc((size_t)(c.w * c.h * 3));
  if (!c.px) return fio_fail(err, errlen, path, "out of memory");
  memset(c.px, 255, (size_t)(c.w * c.h * 3));
  bool ok = draw_plot(&c, s, &L, fr.ml, fr.mt);
  if (ok) decorate(&c, s, &L, &fr);
  /* scanlines: a filter byte (0) then the row */
  size_t stride = 1 + 3 * (size_t)c.w, size = stride * (size_t)c.h;
  uint8_t *raw = ok ? malloc(size) : NULL;
  uLongf zn = compressBound((uLong)size);
  uint8_t *z = raw ? malloc(zn) : NULL;
  if (!z) {
    free(c.px), free(raw);
    return fio_fail(err, errlen, path, "out of memory");
  }
  for (int64_t y = 0; y < c.h; y++) {
    raw[(size_t)y * stride] = 0;
    memcpy(raw + (size_t)y * stride + 1, c.px + y * c.w * 3, (size_t)c.w * 3);
  }
  free(c.px);
  int zr = compress2(z, &zn, raw, (uLong)size, 6);
  free(raw);
  if (zr != Z_OK) {
    free(z);
    return fio_fail(err, errlen, path, "zlib: compress failed (%d)", zr);
  }
  FILE *f = fio_open(path, "wb", err, errlen);
  if (!f) {
    free(z);
    return -1;
  }
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  ok = fwrite(sig, 1, 8, f) == 8;
  uint8_t ihdr[13];
  put32(ihdr, (uint32_t)c.w);
  put32(ihdr + 4, (uint32_t)c.h);
  ihdr[8] = 8;   /* bit depth */
  ihdr[9] = 2;   /* RGB */
  ihdr[10] = 0;  /* deflate */
  ihdr[11] = 0;  /* adaptive filtering, every line filter 0 */
  ihdr[12] = 0;  /* no interlace */
  ok = ok && png_chunk(f, "IHDR", ihdr, 13);
  char note[200];
  int nn = snprintf(note, sizeof note,
                    "spatc%cplot x=%" PRId64 " y=%" PRId64 " w=%" PRId64
                    " h=%" PRId64 " rows=%" PRId64 " cols=%" PRId64
                    " cell=%d heads=%" PRId64,
                    0, fr.ml, fr.mt, L.w, L.h, s->rows, s->cols, L.cell,
                    s->heads);
  ok = ok && png_chunk(f, "tEXt", (const uint8_t *)note, (size_t)nn);
  ok = ok && png_chunk(f, "IDAT", z, zn);
  ok = ok && png_chunk(f, "IEND", NULL, 0);
  free(z);
  return fio_close(f, ok, path, err, errlen);
}

/* ---- SVG ------------------------------------------------------------ */

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&apos;", f); break;
    default:
      if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
    }
  }
}

static void rgb_attr(FILE *f, const uint8_t *c) {
  fprintf(f, "rgb(%d,%d,%d)", c[0], c[1], c[2]);
}

/* Tiles under the mask: one rect per non-skipped tile, in cell units. */
static void svg_tiles(FILE *f, const image_spec *s) {
  int64_t lq = s->rows / s->heads;
  int64_t ntq = (lq + s->tile_q - 1) / s->tile_q;
  int64_t ntk = (s->cols + s->tile_k - 1) / s->tile_k;
  for (int64_t h = 0; h < s->heads; h++)
    for (int64_t a = 0; a < ntq; a++)
      for (int64_t b = 0; b < ntk; b++) {
        uint8_t t = s->tiles[(h * ntq + a) * ntk + b];
        if (t == IMAGE_TILE_SKIPPED) continue;
        int64_t r0 = h * lq + a * s->tile_q, c0 = b * s->tile_k;
        int64_t r1 = r0 + s->tile_q < (h + 1) * lq ? r0 + s->tile_q : (h + 1) * lq;
        int64_t c1 = c0 + s->tile_k < s->cols ? c0 + s->tile_k : s->cols;
        fprintf(f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                   "\" height=\"%" PRId64 "\" fill=\"",
                c0, r0, c1 - c0, r1 - r0);
        rgb_attr(f, TILE_TINT[t <= IMAGE_TILE_FULL ? t : IMAGE_TILE_PARTIAL]);
        fprintf(f, "\" class=\"tile-%s\"/>\n",
                t == IMAGE_TILE_FULL ? "full" : "partial");
      }
}

static int svg_raster(FILE *f, const image_spec *s, const layout *L) {
  row_px o;
  if (!row_px_init(&o, s, L)) {
    row_px_free(&o);
    return -1;
  }
  int *lvl = malloc(sizeof *lvl * (size_t)L->w);
  if (!lvl) {
    row_px_free(&o);
    return -1;
  }
  for (int64_t y = 0; y < L->h; y++) {
    pixel_row(s, L, y, &o);
    for (int64_t x = 0; x < L->w; x++) {
      int q = (int)(o.d[x] * SVG_LEVELS + 0.5);
      lvl[x] = o.d[x] > 0 && q < 1 ? 1 : q;
    }
    for (int64_t x = 0; x < L->w;) {
      if (!lvl[x]) {
        x++;
        continue;
      }
      int64_t e = x;
      while (e < L->w && lvl[e] == lvl[x] && !memcmp(o.rgb[e], o.rgb[x], 3)) e++;
      fprintf(f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                 "\" height=\"1\" fill-opacity=\"%.4g\"",
              x, y, e - x, (double)lvl[x] / SVG_LEVELS);
      if (memcmp(o.rgb[x], s->colour[1], 3)) {
        fputs(" fill=\"", f);
        rgb_attr(f, o.rgb[x]);
        fputc('"', f);
      }
      fputs("/>\n", f);
      x = e;
    }
  }
  free(lvl);
  row_px_free(&o);
  return 0;
}

int image_write_svg(const char *path, const image_spec *s, char *err,
                    size_t errlen) {
  int max_px;
  if (check_spec(path, s, &max_px, err, errlen) < 0) return -1;
  int64_t rows = s->rows, cols = s->cols, n = rows > cols ? rows : cols;
  int64_t lq = rows / s->heads;
  int raster_px = max_px < SVG_CELLS ? max_px : SVG_CELLS;
  bool big = n > raster_px;
  layout L;
  double unit;       /* user units per cell (small) or per raster pixel */
  if (big) {
    L = plan_layout(rows, cols, raster_px);
    unit = (double)SVG_PLOT / (double)(L.w > L.h ? L.w : L.h);
  } else {
    L = (layout){rows, cols, cols, rows, 1, false};  /* one unit per cell */
    unit = (double)SVG_PLOT / (double)n;
    if (unit > 24) unit = 24;
  }
  double pw = (double)L.w * unit, ph = (double)L.h * unit;
  int nleg = n_legend(s);
  const double ml = 80, mt = 72, mr = 24, mb = nleg ? 48 : 24;
  double W = ml + pw + mr;
  if (W < 420) W = 420;
  FILE *f = fio_open(path, "w", err, errlen);
  if (!f) return -1;
  const char *title = s->title ? s->title : "mask";

  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
          "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
          "font-family=\"sans-serif\">\n",
          W, mt + ph + mb, W, mt + ph + mb);
  fprintf(f, "<title>");
  xml_text(f, title);
  fprintf(f, "</title>\n");
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"16\" font-weight=\"bold\">",
          ml);
  xml_text(f, title);
  fprintf(f, "</text>\n");
  fprintf(f,
          "<text x=\"%.0f\" y=\"42\" font-size=\"11\" text-anchor=\"end\" "
          "fill=\"#555\">%" PRId64 " x %" PRId64 "%s</text>\n",
          ml + pw, lq, cols, big ? ", shade = fraction allowed" : "");

  /* axes: key columns to the right along the top, query rows down the left */
  fprintf(f,
          "<text x=\"%.1f\" y=\"42\" font-size=\"12\" text-anchor=\"middle\">"
          "key position j &#8594;</text>\n",
          ml + pw / 2);
  fprintf(f,
          "<text transform=\"translate(24 %.1f) rotate(-90)\" font-size=\"12\" "
          "text-anchor=\"middle\">query row &#8595;</text>\n",
          mt + ph / 2);
  double cx = pw / (double)cols, cy = ph / (double)rows; /* units per cell */
  fprintf(f, "<g font-size=\"10\" fill=\"#333\" stroke=\"none\">\n");
  int64_t st = tick_step(cols);
  for (int64_t t = 0; t <= cols; t += st) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%" PRId64
               "</text>\n", ml + (double)t * cx, mt - 8, t);
    if (t > INT64_MAX - st) break;
  }
  st = tick_step(lq);
  for (int64_t h = 0; h < s->heads; h++)
    for (int64_t t = 0; t <= lq; t += st) {
      if (t == lq && h < s->heads - 1) break;
      fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" "
                 "dominant-baseline=\"middle\">%" PRId64 "</text>\n",
              ml - 6, mt + (double)(h * lq + t) * cy, t);
      if (t > INT64_MAX - st) break;
    }
  fprintf(f, "</g>\n");

  /* the tiles and the mask, in cell (or raster pixel) coordinates */
  int rc = 0;
  if (s->tiles) {
    fprintf(f, "<g transform=\"translate(%.0f %.0f) scale(%.6g %.6g)\" "
               "shape-rendering=\"crispEdges\">\n",
            ml, mt, cx, cy);
    svg_tiles(f, s);
    fprintf(f, "</g>\n");
  }
  fprintf(f,
          "<g transform=\"translate(%.0f %.0f) scale(%.6g)\" fill=\"",
          ml, mt, unit);
  rgb_attr(f, s->colour[1]);
  fprintf(f, "\" shape-rendering=\"crispEdges\">\n");
  if (!big) {
    for (int64_t r = 0; r < rows; r++) {
      const uint8_t *row = s->cells + r * cols;
      for (int64_t c = 0; c < cols;) {
        uint8_t k = row[c];
        if (!k) {
          c++;
          continue;
        }
        int64_t e = c;
        while (e < cols && row[e] == k) e++;
        fprintf(f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                   "\" height=\"1\"", c, r, e - c);
        if (k > 1 && k < s->n_classes) {
          fputs(" fill=\"", f);
          rgb_attr(f, s->colour[k]);
          fputc('"', f);
        }
        fputs("/>\n", f);
        c = e;
      }
    }
  } else if (svg_raster(f, s, &L) < 0) {
    rc = fio_fail(err, errlen, path, "out of memory");
  }
  fprintf(f, "</g>\n");
  if (!big && unit >= GRID_MIN) {
    fprintf(f, "<g stroke=\"");
    rgb_attr(f, GRID);
    fprintf(f, "\" stroke-width=\"1\">\n");
    for (int64_t c = 1; c < cols; c++)
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
              ml + (double)c * cx, mt, ml + (double)c * cx, mt + ph);
    for (int64_t r = 1; r < rows; r++)
      fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
              ml, mt + (double)r * cy, ml + pw, mt + (double)r * cy);
    fprintf(f, "</g>\n");
  }
  for (int64_t h = 1; h < s->heads; h++) {
    fprintf(f, "<line class=\"head\" x1=\"%.0f\" y1=\"%.2f\" x2=\"%.1f\" "
               "y2=\"%.2f\" stroke=\"",
            ml, mt + (double)(h * lq) * cy, ml + pw, mt + (double)(h * lq) * cy);
    rgb_attr(f, SEPARATOR);
    fprintf(f, "\" stroke-width=\"1.5\"/>\n");
  }
  fprintf(f,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"%.1f\" "
          "fill=\"none\" stroke=\"#888\"/>\n",
          ml, mt, pw, ph);
  double lx = ml, ly = mt + ph + 20;
  for (int k = 0; k < nleg; k++) {
    const uint8_t *rgb;
    const char *t = legend_text(s, k, &rgb);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" "
               "stroke=\"#888\" fill=\"", lx, ly);
    rgb_attr(f, rgb);
    fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">", lx + 16,
            ly + 10);
    xml_text(f, t);
    fprintf(f, "</text>\n");
    lx += 16 + 6.5 * (double)strlen(t) + 16;
  }
  fprintf(f, "</svg>\n");
  if (rc < 0) { /* the message is already in err */
    fclose(f);
    return -1;
  }
  return fio_close(f, true, path, err, errlen);
}
