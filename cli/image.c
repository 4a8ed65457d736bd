/* image.c: a mask (rows x cols bytes, nonzero = allowed) as a PNG or an SVG.
 *
 * Geometry, shared by both formats (n = max(rows, cols)):
 *  - n > max_px (PNG) or n > svg_cells (SVG): the mask is downsampled to at
 *    most max_px (resp. SVG raster) pixels on its longer side, aspect kept;
 *    a pixel covers a rectangle of cells and is shaded by the fraction of
 *    allowed pairs in it.  A pixel with any allowed pair is at least
 *    MIN_INK dark so a thin band stays visible after downsampling.
 *  - otherwise every cell is a square of `cell` pixels: cell =
 *    min(max_px, UPSCALE_PX) / n, raised to 4 when max_px allows it (so
 *    cells are >= 4 px whenever n <= max_px / 4; stored PNGs are not
 *    compressed, hence the modest default size), capped at MAX_CELL; a
 *    light 1-px grid is drawn when cells are >= GRID_MIN px.
 * Allowed pairs are dark (INK) on white.  Query rows go down, key columns go
 * right.  max_px <= 0 means DEFAULT_PX.
 *
 * PNG: 8-bit grayscale (a third of RGB's size, which matters with stored
 * blocks), no interlace, every scanline with filter 0, the zlib stream
 * made of stored (uncompressed) deflate blocks with its Adler-32, one IDAT
 * chunk per block, each chunk with its CRC-32.  No zlib needed.
 * SVG: a title, axis labels and ticks, and rectangles: one per run of
 * allowed cells in a row (small masks) or per run of equally shaded pixels
 * in a raster row (large ones).
 */
#include "image.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

#define DEFAULT_PX 1024
#define MAX_PX 16384
#define MAX_CELL 32
#define UPSCALE_PX 640       /* small masks are drawn about this big */
#define GRID_MIN 8
#define MIN_INK 0.2          /* darkness of a pixel with a single allowed pair */
#define SVG_CELLS 256        /* larger masks become an SVG raster */
#define SVG_PLOT 512         /* nominal plot side in SVG user units */
#define SVG_LEVELS 16        /* shades of the SVG raster */

enum { INK_Y = 32, PAPER_Y = 255, GRID_Y = 205 };   /* PNG gray levels */
static const uint8_t INK[3] = {24, 40, 96};          /* SVG colours */
static const uint8_t GRID[3] = {205, 205, 215};

/* ---- geometry ----------------------------------------------------------- */

typedef struct layout {
  int64_t rows, cols;
  int64_t w, h;      /* picture size in pixels */
  int cell;          /* > 0: pixels per cell; 0: downsampled */
  bool grid;
} layout;

static int check_args(const char *path, const uint8_t *mask, int64_t rows,
                      int64_t cols, int *max_px, char *err, size_t errlen) {
  if (!path) return fio_fail(err, errlen, path, "no output path");
  if (rows <= 0 || cols <= 0)
    return fio_fail(err, errlen, path, "empty mask (%" PRId64 " x %" PRId64 ")",
                    rows, cols);
  if (!mask) return fio_fail(err, errlen, path, "no mask data");
  if (rows > INT64_MAX / cols)
    return fio_fail(err, errlen, path, "mask size overflows");
  if (*max_px <= 0) *max_px = DEFAULT_PX;
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

/* Darkness in [0, 1] of a pixel covering `tot` cells of which `on` allowed. */
static double ink(int64_t on, int64_t tot) {
  if (on <= 0) return 0.0;
  return MIN_INK + (1.0 - MIN_INK) * (double)on / (double)tot;
}

/* Fraction of allowed pairs per pixel of one downsampled row: acc[x] over
 * cells [r0, r1) x [colx(x), colx(x+1)). */
static void density_row(const layout *L, const uint8_t *mask, int64_t w,
                        int64_t r0, int64_t r1, const int64_t *pxcol,
                        int64_t *acc) {
  memset(acc, 0, (size_t)w * sizeof *acc);
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *row = mask + r * L->cols;
    for (int64_t c = 0; c < L->cols; c++) acc[pxcol[c]] += row[c] != 0;
  }
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

/* ---- PNG ------------------------------------------------------------ */

typedef struct png_out {
  FILE *f;
  uint32_t crc_table[256];
  bool ok;
} png_out;

static void crc_init(uint32_t *t) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[n] = c;
  }
}

static uint32_t crc_update(const uint32_t *t, uint32_t crc,
                           const uint8_t *p, size_t n) {
  for (size_t k = 0; k < n; k++) crc = t[(crc ^ p[k]) & 0xff] ^ (crc >> 8);
  return crc;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* One chunk: length, type, the concatenation of two data pieces, CRC. */
static void png_chunk(png_out *o, const char *type, const uint8_t *a,
                      size_t na, const uint8_t *b, size_t nb) {
  uint8_t hdr[8];
  put32(hdr, (uint32_t)(na + nb));
  memcpy(hdr + 4, type, 4);
  uint32_t crc = crc_update(o->crc_table, 0xffffffffu, hdr + 4, 4);
  if (na) crc = crc_update(o->crc_table, crc, a, na);
  if (nb) crc = crc_update(o->crc_table, crc, b, nb);
  uint8_t tail[4];
  put32(tail, crc ^ 0xffffffffu);
  o->ok = o->ok && fwrite(hdr, 1, 8, o->f) == 8 &&
          (!na || fwrite(a, 1, na, o->f) == na) &&
          (!nb || fwrite(b, 1, nb, o->f) == nb) &&
          fwrite(tail, 1, 4, o->f) == 4;
}

static uint8_t shade(double d) {
  return (uint8_t)(PAPER_Y - d * (PAPER_Y - INK_Y) + 0.5);
}

/* The raw image: h scanlines of 1 filter byte + w gray bytes. */
static uint8_t *render_gray(const layout *L, const uint8_t *mask,
                           size_t *size) {
  size_t stride = 1 + (size_t)L->w;
  uint8_t *img = malloc(stride * (size_t)L->h);
  if (!img) return NULL;
  *size = stride * (size_t)L->h;
  if (L->cell) {
    int64_t c = L->cell;
    for (int64_t y = 0; y < L->h; y++) {
      uint8_t *line = img + (size_t)y * stride;
      line[0] = 0;
      int64_t r = y / c;
      bool gy = L->grid && y % c == 0;
      for (int64_t x = 0; x < L->w; x++) {
        int64_t col = x / c;
        if (gy || (L->grid && x % c == 0))
          line[1 + x] = GRID_Y;
        else
          line[1 + x] = mask[r * L->cols + col] ? INK_Y : PAPER_Y;
      }
    }
    return img;
  }
  int64_t *pxcol = column_map(L->cols, L->w);
  int64_t *acc = malloc((size_t)L->w * sizeof *acc);
  if (!pxcol || !acc) {
    free(pxcol);
    free(acc);
    free(img);
    return NULL;
  }
  for (int64_t y = 0; y < L->h; y++) {
    uint8_t *line = img + (size_t)y * stride;
    line[0] = 0;
    int64_t r0 = cell_at(y, L->rows, L->h), r1 = cell_at(y + 1, L->rows, L->h);
    density_row(L, mask, L->w, r0, r1, pxcol, acc);
    for (int64_t x = 0; x < L->w; x++) {
      int64_t c0 = cell_at(x, L->cols, L->w), c1 = cell_at(x + 1, L->cols, L->w);
      line[1 + x] = shade(ink(acc[x], (r1 - r0) * (c1 - c0)));
    }
  }
  free(pxcol);
  free(acc);
  return img;
}

int image_write_png(const char *path, const uint8_t *mask, int64_t rows,
                    int64_t cols, int max_px, char *err, size_t errlen) {
  if (check_args(path, mask, rows, cols, &max_px, err, errlen) < 0) return -1;
  layout L = plan_layout(rows, cols, max_px);
  size_t size = 0;
  uint8_t *raw = render_gray(&L, mask, &size);
  if (!raw) return fio_fail(err, errlen, path, "out of memory");

  png_out o = {fio_open(path, "wb", err, errlen), {0}, true};
  if (!o.f) {
    free(raw);
    return -1;
  }
  crc_init(o.crc_table);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  o.ok = fwrite(sig, 1, 8, o.f) == 8;
  uint8_t ihdr[13];
  put32(ihdr, (uint32_t)L.w);
  put32(ihdr + 4, (uint32_t)L.h);
  ihdr[8] = 8;   /* bit depth */
  ihdr[9] = 0;   /* grayscale */
  ihdr[10] = 0;  /* deflate */
  ihdr[11] = 0;  /* adaptive filtering, every line filter 0 */
  ihdr[12] = 0;  /* no interlace */
  png_chunk(&o, "IHDR", ihdr, 13, NULL, 0);

  /* zlib: CMF 0x78 (deflate, 32K window), FLG 0x01 (check bits, no dict) */
  uint32_t s1 = 1, s2 = 0;
  size_t off = 0;
  bool first = true;
  do {
    size_t n = size - off > 65535 ? 65535 : size - off;
    bool last = off + n == size;
    uint8_t head[2 + 5], *h = head;
    if (first) {
      *h++ = 0x78;
      *h++ = 0x01;
    }
    *h++ = last ? 1 : 0;  /* BFINAL, BTYPE 00, padded to the byte */
    *h++ = (uint8_t)(n & 0xff);
    *h++ = (uint8_t)(n >> 8);
    *h++ = (uint8_t)(~n & 0xff);
    *h++ = (uint8_t)((~n >> 8) & 0xff);
    for (size_t k = 0; k < n; k++) {
      s1 = (s1 + raw[off + k]) % 65521;
      s2 = (s2 + s1) % 65521;
    }
    if (last) {
      /* block data then the Adler-32, in one chunk */
      uint8_t *tail = malloc(n + 4);
      if (!tail) {
        o.ok = false;
        break;
      }
      memcpy(tail, raw + off, n);
      put32(tail + n, s2 << 16 | s1);
      size_t nh = (size_t)(h - head);
      png_chunk(&o, "IDAT", head, nh, tail, n + 4);
      free(tail);
    } else {
      png_chunk(&o, "IDAT", head, (size_t)(h - head), raw + off, n);
    }
    off += n;
    first = false;
  } while (off < size && o.ok);
  png_chunk(&o, "IEND", NULL, 0, NULL, 0);
  free(raw);
  return fio_close(o.f, o.ok, path, err, errlen);
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

int image_write_svg(const char *path, const uint8_t *mask, int64_t rows,
                    int64_t cols, int max_px, const char *title, char *err,
                    size_t errlen) {
  if (check_args(path, mask, rows, cols, &max_px, err, errlen) < 0) return -1;
  int64_t n = rows > cols ? rows : cols;
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
  const double ml = 80, mt = 72, mr = 24, mb = 24;
  FILE *f = fio_open(path, "w", err, errlen);
  if (!f) return -1;

  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
          "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
          "font-family=\"sans-serif\">\n",
          ml + pw + mr, mt + ph + mb, ml + pw + mr, mt + ph + mb);
  fprintf(f, "<title>");
  xml_text(f, title ? title : "mask");
  fprintf(f, "</title>\n");
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"16\" font-weight=\"bold\">",
          ml);
  xml_text(f, title ? title : "mask");
  fprintf(f, "</text>\n");
  fprintf(f,
          "<text x=\"%.0f\" y=\"22\" font-size=\"11\" text-anchor=\"end\" "
          "fill=\"#555\">%" PRId64 " x %" PRId64 "%s</text>\n",
          ml + pw, rows, cols,
          big ? ", shade = fraction allowed" : "");

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
  st = tick_step(rows);
  for (int64_t t = 0; t <= rows; t += st) {
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" "
               "dominant-baseline=\"middle\">%" PRId64 "</text>\n",
            ml - 6, mt + (double)t * cy, t);
    if (t > INT64_MAX - st) break;
  }
  fprintf(f, "</g>\n");

  /* the mask, in cell (or raster pixel) coordinates */
  fprintf(f,
          "<g transform=\"translate(%.0f %.0f) scale(%.6g)\" fill=\"rgb(%d,%d,%d)\" "
          "shape-rendering=\"crispEdges\">\n",
          ml, mt, unit, INK[0], INK[1], INK[2]);
  int rc = 0;
  if (!big) {
    for (int64_t r = 0; r < rows; r++) {
      const uint8_t *row = mask + r * cols;
      for (int64_t c = 0; c < cols;) {
        if (!row[c]) {
          c++;
          continue;
        }
        int64_t e = c;
        while (e < cols && row[e]) e++;
        fprintf(f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                   "\" height=\"1\"/>\n", c, r, e - c);
        c = e;
      }
    }
  } else {
    int64_t *pxcol = column_map(cols, L.w);
    int64_t *acc = malloc((size_t)L.w * sizeof *acc);
    int *lvl = malloc((size_t)L.w * sizeof *lvl);
    if (!pxcol || !acc || !lvl) {
      rc = fio_fail(err, errlen, path, "out of memory");
    } else {
      for (int64_t y = 0; y < L.h; y++) {
        int64_t r0 = cell_at(y, rows, L.h), r1 = cell_at(y + 1, rows, L.h);
        density_row(&L, mask, L.w, r0, r1, pxcol, acc);
        for (int64_t x = 0; x < L.w; x++) {
          int64_t c0 = cell_at(x, cols, L.w), c1 = cell_at(x + 1, cols, L.w);
          double d = ink(acc[x], (r1 - r0) * (c1 - c0));
          int q = (int)(d * SVG_LEVELS + 0.5);
          lvl[x] = acc[x] > 0 && q < 1 ? 1 : q;
        }
        for (int64_t x = 0; x < L.w;) {
          if (!lvl[x]) {
            x++;
            continue;
          }
          int64_t e = x;
          while (e < L.w && lvl[e] == lvl[x]) e++;
          fprintf(f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
                     "\" height=\"1\" fill-opacity=\"%.4g\"/>\n",
                  x, y, e - x, (double)lvl[x] / SVG_LEVELS);
          x = e;
        }
      }
    }
    free(pxcol);
    free(acc);
    free(lvl);
  }
  fprintf(f, "</g>\n");
  if (!big && unit >= GRID_MIN) {
    fprintf(f, "<g stroke=\"rgb(%d,%d,%d)\" stroke-width=\"1\">\n", GRID[0],
            GRID[1], GRID[2]);
    for (int64_t c = 1; c < cols; c++)
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
              ml + (double)c * cx, mt, ml + (double)c * cx, mt + ph);
    for (int64_t r = 1; r < rows; r++)
      fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
              ml, mt + (double)r * cy, ml + pw, mt + (double)r * cy);
    fprintf(f, "</g>\n");
  }
  fprintf(f,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"%.1f\" "
          "fill=\"none\" stroke=\"#888\"/>\n",
          ml, mt, pw, ph);
  fprintf(f, "</svg>\n");
  if (rc < 0) { /* the message is already in err */
    fclose(f);
    return -1;
  }
  return fio_close(f, true, path, err, errlen);
}
