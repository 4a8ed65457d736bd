/* test_image.c: PNG files decoded here, independently of image.c (chunk
 * walk, CRC-32 bit by bit, zlib's inflate, the plot's place from the tEXt
 * chunk), then their pixels checked against the mask: cells, grid, head
 * separators, diff colours, tile tints, text; SVG checked for well-formed
 * tags, the escaped title, axis labels, one rectangle per run of cells of
 * a class, head lines and tiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "image.h"

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  strcpy(tmpdir, "/tmp/test_image.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)len + 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
  p[len] = 0;
  fclose(f);
  *n = (size_t)len;
  return p;
}

/* ---- an independent PNG reader for what image.c writes ------------------ */

static uint32_t crc32_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t k = 0; k < n; k++) {
    c ^= p[k];
    for (int b = 0; b < 8; b++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct png_img {
  uint32_t w, h;
  unsigned char *raw; /* h scanlines of 1 + 3 w bytes */
  long px, py, pw, ph, cell; /* the plot, from the tEXt chunk */
} png_img;

static png_img decode_png(const char *path) {
  size_t n;
  unsigned char *f = slurp(path, &n);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
  assert_true(n > 8);
  assert_memory_equal(f, sig, 8);
  png_img img;
  memset(&img, 0, sizeof img);
  img.px = -1;
  unsigned char *z = NULL;
  size_t nz = 0, pos = 8;
  int k = 0;
  bool seen_end = false;
  while (pos < n) {
    assert_true(pos + 12 <= n);
    uint32_t len = be32(f + pos);
    assert_true(pos + 12 + len <= n);
    const unsigned char *type = f + pos + 4, *data = f + pos + 8;
    /* CRC over type and data */
    assert_int_equal(be32(data + len), crc32_bitwise(type, len + 4));
    if (k == 0) {
      assert_memory_equal(type, "IHDR", 4);
      assert_int_equal(len, 13);
      img.w = be32(data);
      img.h = be32(data + 4);
      assert_int_equal(data[8], 8);  /* bit depth */
      assert_int_equal(data[9], 2);  /* RGB */
      assert_int_equal(data[10], 0);
      assert_int_equal(data[11], 0);
      assert_int_equal(data[12], 0);
    } else if (!memcmp(type, "IDAT", 4)) {
      z = realloc(z, nz + len + 1);
      assert_non_null(z);
      memcpy(z + nz, data, len);
      nz += len;
    } else if (!memcmp(type, "tEXt", 4)) {
      char t[256];
      assert_true(len < sizeof t);
      memcpy(t, data, len);
      t[len] = 0;
      assert_string_equal(t, "spatc");
      long rows, cols;
      assert_int_equal(sscanf(t + 6, "plot x=%ld y=%ld w=%ld h=%ld rows=%ld cols=%ld cell=%ld",
                              &img.px, &img.py, &img.pw, &img.ph, &rows, &cols, &img.cell), 7);
    } else if (!memcmp(type, "IEND", 4)) {
      assert_int_equal(len, 0);
      assert_int_equal(pos + 12, n);
      seen_end = true;
    } else {
      fail_msg("unexpected chunk %.4s", (const char *)type);
    }
    pos += 12 + len;
    k++;
  }
  assert_true(seen_end);
  assert_true(img.px >= 0);
  assert_true(img.px + img.pw <= (long)img.w && img.py + img.ph <= (long)img.h);
  uLongf want = (uLongf)img.h * (1 + 3 * (uLongf)img.w);
  img.raw = malloc(want + 1);
  assert_non_null(img.raw);
  uLongf got = want;
  assert_int_equal(uncompress(img.raw, &got, z, (uLong)nz), Z_OK);
  assert_int_equal(got, want);
  assert_true(nz < want); /* compressed */
  for (uint32_t y = 0; y < img.h; y++)
    assert_int_equal(img.raw[y * (1 + 3 * (size_t)img.w)], 0); /* filter */
  free(z);
  free(f);
  return img;
}

/* Pixel (x, y) of the plot (x, y from its top-left corner). */
static const unsigned char *pixel(const png_img *im, long x, long y) {
  assert_true(x >= 0 && x < im->pw && y >= 0 && y < im->ph);
  return im->raw + (size_t)(y + im->py) * (1 + 3 * (size_t)im->w) + 1 +
         3 * (size_t)(x + im->px);
}

static bool is_white(const unsigned char *p) {
  return p[0] == 255 && p[1] == 255 && p[2] == 255;
}
static int lum(const unsigned char *p) { return (p[0] + p[1] + p[2]) / 3; }
static bool is_rgb(const unsigned char *p, const uint8_t *c) {
  return p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
}

/* A plain one-head mask picture. */
static image_spec plain(const uint8_t *m, int64_t rows, int64_t cols, int px) {
  image_spec s = {.cells = m, .rows = rows, .cols = cols, .heads = 1,
                  .title = "t", .n_classes = 2, .colour = image_ink,
                  .max_px = px};
  return s;
}

static int png(const char *name, const uint8_t *m, int64_t rows, int64_t cols,
               int px, char *err, size_t n) {
  image_spec s = plain(m, rows, cols, px);
  return image_write_png(tpath(name), &s, err, n);
}

/* ---- PNG tests -------------------------------------------------------- */

static void test_png_small_grid(void **state) {
  (void)state;
  enum { R = 5, C = 7 };
  uint8_t m[R * C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) m[r * C + c] = (uint8_t)((c <= r + 1 && c >= r - 1) || c == 0);
  char err[256] = "";
  assert_int_equal(png("a.png", m, R, C, 1024, err, sizeof err), 0);
  png_img im = decode_png(tpath("a.png"));
  /* cells of 32 px (the cap) with a 1-px grid around them */
  assert_int_equal(im.pw, C * 32 + 1);
  assert_int_equal(im.ph, R * 32 + 1);
  assert_int_equal(im.cell, 32);
  const unsigned char *ink = NULL;
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      for (int dy = 1; dy < 32; dy += 10)
        for (int dx = 1; dx < 32; dx += 10) {
          const unsigned char *p = pixel(&im, (uint32_t)(c * 32 + dx), (uint32_t)(r * 32 + dy));
          if (m[r * C + c]) {
            assert_true(lum(p) < 128);  /* dark */
            if (!ink) ink = p;
            assert_true(is_rgb(p, image_ink[1]));  /* one ink colour */
          } else {
            assert_true(is_white(p));
          }
        }
  /* grid lines: light, not white, on every cell boundary, also over ink */
  for (int c = 0; c <= C; c++)
    for (long y = 0; y < im.ph; y += 7) {
      const unsigned char *p = pixel(&im, c * 32, y);
      assert_false(is_white(p));
      assert_true(lum(p) > 180);
    }
  for (int r = 0; r <= R; r++) {
    const unsigned char *p = pixel(&im, 5, r * 32);
    assert_false(is_white(p));
    assert_true(lum(p) > 180);
  }
  free(im.raw);
}

static void test_png_upscale_no_grid(void **state) {
  (void)state;
  enum { R = 60, C = 100 };
  uint8_t *m = malloc(R * C);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) m[r * C + c] = (uint8_t)((r * 7 + c * 3) % 5 == 0);
  char err[256] = "";
  /* 512 / 100 = 5 px per cell: at least 4, below the grid threshold */
  assert_int_equal(png("b.png", m, R, C, 512, err, sizeof err), 0);
  png_img im = decode_png(tpath("b.png"));
  assert_int_equal(im.pw, C * 5);
  assert_int_equal(im.ph, R * 5);
  for (long y = 0; y < im.ph; y++)
    for (long x = 0; x < im.pw; x++) {
      bool on = m[(y / 5) * C + x / 5];
      assert_int_equal(!is_white(pixel(&im, x, y)), on);
    }
  free(im.raw);
  free(m);

  /* a 3x3 mask at a tiny max: still >= 4 px per cell when it fits */
  uint8_t e[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  assert_int_equal(png("c.png", e, 3, 3, 12, err, sizeof err), 0);
  im = decode_png(tpath("c.png"));
  assert_int_equal(im.pw, 12);
  assert_int_equal(im.ph, 12);
  assert_false(is_white(pixel(&im, 0, 0)));
  assert_true(is_white(pixel(&im, 4, 0)));
  assert_false(is_white(pixel(&im, 11, 11)));
  free(im.raw);
}

static void test_png_downsample(void **state) {
  (void)state;
  enum { R = 3000, C = 2000 };
  uint8_t *m = calloc(R * C, 1);
  /* rows < 1000: first 500 columns all allowed, of columns 1000..1499
   * two of every five; rows >= 2000: one allowed pair per 5x5 block */
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) {
      if (r < 1000 && c < 500) m[r * C + c] = 1;
      if (r < 1000 && c >= 1000 && c < 1500 && c % 5 < 2) m[r * C + c] = 1;
      if (r >= 2000 && r % 5 == 3 && c % 5 == 2) m[r * C + c] = 1;
    }
  char err[256] = "";
  assert_int_equal(png("d.png", m, R, C, 600, err, sizeof err), 0);
  png_img im = decode_png(tpath("d.png"));
  assert_int_equal(im.ph, 600);  /* longer side at max_px, aspect kept */
  assert_int_equal(im.pw, 400);
  assert_int_equal(im.cell, 0);
  /* each pixel covers 5 x 5 cells */
  const unsigned char *full = pixel(&im, 20, 20);
  const unsigned char *half = pixel(&im, 240, 20);
  const unsigned char *sparse = pixel(&im, 20, 500);
  assert_true(lum(full) < lum(half));
  assert_true(lum(half) < lum(sparse));
  assert_false(is_white(sparse));      /* 4 % density stays visible */
  assert_true(is_white(pixel(&im, 360, 300)));
  assert_true(is_white(pixel(&im, 140, 20)));
  for (long y = 0; y < 200; y++)
    for (long x = 0; x < 100; x++) assert_memory_equal(pixel(&im, x, y), full, 3);
  for (long y = 0; y < 200; y++)
    for (long x = 200; x < 300; x++) assert_memory_equal(pixel(&im, x, y), half, 3);
  for (long y = 400; y < 600; y++)
    for (long x = 0; x < 400; x++) assert_memory_equal(pixel(&im, x, y), sparse, 3);
  free(im.raw);
  free(m);
}

static void test_png_errors(void **state) {
  (void)state;
  uint8_t m[4] = {1, 1, 1, 1};
  char err[256] = "";
  assert_int_equal(png("e.png", m, 0, 4, 64, err, sizeof err), -1);
  assert_non_null(strstr(err, "empty mask"));
  assert_int_equal(strncmp(err, tpath("e.png"), strlen(tpath("e.png"))), 0);
  image_spec sp = plain(m, 2, 2, 64);
  assert_int_equal(image_write_png("/nonexistent-dir/e.png", &sp, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent-dir/e.png: "));
  assert_int_equal(png("e.png", m, 2, 2, 1 << 20, err, sizeof err), -1);
  assert_non_null(strstr(err, "max size"));
  assert_int_equal(png("e.png", NULL, 2, 2, 64, err, sizeof err), -1);
  sp = plain(m, 2, -1, 64);
  assert_int_equal(image_write_svg(tpath("e.svg"), &sp, err, sizeof err), -1);
  assert_non_null(strstr(err, "empty mask"));
  sp = plain(m, 3, 1, 64);
  sp.heads = 2; /* 3 rows are not 2 heads */
  assert_int_equal(image_write_png(tpath("e.png"), &sp, err, sizeof err), -1);
  assert_non_null(strstr(err, "heads"));
}

/* ---- SVG ------------------------------------------------------------ */

/* Tags nest and close, attribute quotes pair up, text has no bare '<' or
 * '&' that is not an entity. */
static void check_well_formed(const char *s) {
  const char *stack[64];
  size_t lens[64];
  int depth = 0, roots = 0;
  assert_int_equal(strncmp(s, "<?xml", 5), 0);
  while (*s) {
    if (*s == '&') {
      const char *e = strchr(s, ';');
      assert_non_null(e);
      assert_true(e - s <= 8);
      for (const char *q = s + 1; q < e; q++)
        assert_true((*q >= 'a' && *q <= 'z') || *q == '#' || (*q >= '0' && *q <= '9'));
      s = e + 1;
      continue;
    }
    if (*s != '<') {
      assert_true(*s != '>');
      s++;
      continue;
    }
    if (s[1] == '?') {
      s = strstr(s, "?>");
      assert_non_null(s);
      s += 2;
      continue;
    }
    bool closing = s[1] == '/';
    const char *name = s + (closing ? 2 : 1);
    size_t nl = strcspn(name, " \t\n/>");
    assert_true(nl > 0);
    const char *p = name + nl;
    bool quoted = false;
    while (*p && (quoted || *p != '>')) {
      if (*p == '"') quoted = !quoted;
      assert_true(quoted || *p != '<');
      p++;
    }
    assert_int_equal(*p, '>');
    bool self = p[-1] == '/';
    if (closing) {
      assert_true(depth > 0);
      depth--;
      assert_int_equal(lens[depth], nl);
      assert_memory_equal(stack[depth], name, nl);
    } else if (!self) {
      if (depth == 0) roots++;
      assert_true(depth < 64);
      stack[depth] = name;
      lens[depth++] = nl;
    }
    s = p + 1;
  }
  assert_int_equal(depth, 0);
  assert_int_equal(roots, 1);
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

static void test_svg_small(void **state) {
  (void)state;
  enum { R = 6, C = 9 };
  uint8_t m[R * C];
  int runs = 0;
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) {
      m[r * C + c] = (uint8_t)(c <= r || c == 7);
      if (m[r * C + c] && (c == 0 || !m[r * C + c - 1])) runs++;
    }
  char err[256] = "";
  image_spec sp = plain(m, R, C, 1024);
  sp.title = "causal <&> \"sinks\"";
  assert_int_equal(image_write_svg(tpath("s.svg"), &sp, err, sizeof err), 0);
  size_t n;
  char *s = (char *)slurp(tpath("s.svg"), &n);
  check_well_formed(s);
  assert_non_null(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  assert_non_null(strstr(s, "<title>causal &lt;&amp;&gt; &quot;sinks&quot;</title>"));
  assert_non_null(strstr(s, "query row"));
  assert_non_null(strstr(s, "key position"));
  assert_int_equal(count(s, "height=\"1\"/>"), runs);
  /* row 2: cells 0..2 and 7 */
  assert_non_null(strstr(s, "<rect x=\"0\" y=\"2\" width=\"3\" height=\"1\"/>"));
  assert_non_null(strstr(s, "<rect x=\"7\" y=\"2\" width=\"1\" height=\"1\"/>"));
  assert_int_equal(strcmp(s + n - 7, "</svg>\n"), 0);
  free(s);
}

static void test_svg_large(void **state) {
  (void)state;
  enum { R = 1500, C = 1000 };
  uint8_t *m = calloc(R * C, 1);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) m[r * C + c] = (uint8_t)(c <= r && r - c < 100);
  char err[256] = "";
  image_spec sp = plain(m, R, C, 1024);
  sp.title = NULL;
  assert_int_equal(image_write_svg(tpath("l.svg"), &sp, err, sizeof err), 0);
  size_t n;
  char *s = (char *)slurp(tpath("l.svg"), &n);
  check_well_formed(s);
  assert_non_null(strstr(s, "<title>mask</title>"));
  int rects = count(s, "fill-opacity=");
  assert_true(rects > 0);
  assert_true(rects <= 256 * 256);  /* a raster, not one rect per cell */
  assert_true(n < 4u << 20);
  /* a full 1.0-opacity run exists (band interior) and fainter ones (edges) */
  assert_non_null(strstr(s, "fill-opacity=\"1\""));
  free(s);
  free(m);
}

/* ---- heads, diffs, tiles, text ----------------------------------------- */

static void test_png_heads_and_text(void **state) {
  (void)state;
  enum { L = 20, H = 3 };
  uint8_t m[H * L * L];
  for (int r = 0; r < H * L; r++)
    for (int c = 0; c < L; c++) m[r * L + c] = (uint8_t)(c <= r % L);
  image_spec sp = plain(m, H * L, L, 1024);
  sp.heads = H;
  sp.title = "causal, 3 heads";
  char err[256] = "";
  assert_int_equal(image_write_png(tpath("h.png"), &sp, err, sizeof err), 0);
  png_img im = decode_png(tpath("h.png"));
  long c = im.cell;
  assert_true(c >= 4);
  static const uint8_t red[3] = {210, 30, 30};
  for (int h = 1; h < H; h++) /* a red line across each head boundary */
    for (long x = 0; x < im.pw; x += 3) assert_true(is_rgb(pixel(&im, x, h * L * c), red));
  /* inside a head: no red */
  for (long x = 0; x < im.pw; x++) assert_false(is_rgb(pixel(&im, x, L * c / 2), red));
  /* the title is drawn above the plot: dark text pixels there */
  int dark = 0;
  for (long y = 0; y < im.py / 3; y++)
    for (long x = 0; x < (long)im.w; x++) {
      const unsigned char *p = im.raw + (size_t)y * (1 + 3 * (size_t)im.w) + 1 + 3 * (size_t)x;
      dark += lum(p) < 80;
    }
  assert_true(dark > 20);
  free(im.raw);
}

static void test_png_diff_colours(void **state) {
  (void)state;
  enum { R = 8, C = 8 };
  uint8_t m[R * C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) m[r * C + c] = (uint8_t)((r + c) % 4);
  const char *labels[4] = {NULL, "only a", "only b", "both"};
  image_spec sp = {.cells = m, .rows = R, .cols = C, .heads = 1, .title = "a vs b",
                   .n_classes = 4, .colour = image_diff, .label = labels, .max_px = 1024};
  char err[256] = "";
  assert_int_equal(image_write_png(tpath("x.png"), &sp, err, sizeof err), 0);
  png_img im = decode_png(tpath("x.png"));
  long c = im.cell;
  for (int r = 0; r < R; r++)
    for (int q = 0; q < C; q++) {
      const unsigned char *p = pixel(&im, q * c + c / 2, r * c + c / 2);
      assert_true(is_rgb(p, image_diff[m[r * C + q]]));
    }
  /* the legend below the plot has swatches of the three colours */
  bool seen[4] = {false, false, false, false};
  for (long y = im.py + im.ph + 1; y < (long)im.h; y++)
    for (long x = 0; x < (long)im.w; x++) {
      const unsigned char *p = im.raw + (size_t)y * (1 + 3 * (size_t)im.w) + 1 + 3 * (size_t)x;
      for (int k = 1; k < 4; k++) seen[k] |= is_rgb(p, image_diff[k]);
    }
  assert_true(seen[1] && seen[2] && seen[3]);
  free(im.raw);
}

static void test_png_tiles(void **state) {
  (void)state;
  enum { L = 32, T = 8 };
  uint8_t m[L * L], tiles[(L / T) * (L / T)];
  for (int r = 0; r < L; r++)
    for (int c = 0; c < L; c++) m[r * L + c] = (uint8_t)(c <= r && r - c < 10);
  /* tiles: diagonal full, next to it partial, the rest skipped */
  for (int a = 0; a < L / T; a++)
    for (int b = 0; b < L / T; b++)
      tiles[a * (L / T) + b] = a == b ? IMAGE_TILE_FULL : a == b + 1 ? IMAGE_TILE_PARTIAL
                                                                     : IMAGE_TILE_SKIPPED;
  image_spec sp = plain(m, L, L, 1024);
  sp.tiles = tiles;
  sp.tile_q = sp.tile_k = T;
  char err[256] = "";
  assert_int_equal(image_write_png(tpath("t.png"), &sp, err, sizeof err), 0);
  png_img im = decode_png(tpath("t.png"));
  long c = im.cell;
  static const uint8_t full_ink[3] = {20, 105, 40}, part_ink[3] = {170, 95, 0},
                       part_tint[3] = {255, 232, 170}, full_tint[3] = {196, 236, 196};
  /* (row, col): (5, 2) allowed in a full tile; (10, 6) allowed in a
   * partial one; (9, 12) not allowed, in a full tile; (12, 1) not allowed,
   * in a partial one; (30, 2) in a skipped one */
  assert_true(is_rgb(pixel(&im, 2 * c + c / 2, 5 * c + c / 2), full_ink));
  assert_true(is_rgb(pixel(&im, 6 * c + c / 2, 10 * c + c / 2), part_ink));
  assert_true(is_rgb(pixel(&im, 12 * c + c / 2, 9 * c + c / 2), full_tint));
  assert_true(is_rgb(pixel(&im, 1 * c + c / 2, 12 * c + c / 2), part_tint));
  assert_true(is_white(pixel(&im, 2 * c + c / 2, 30 * c + c / 2)));
  free(im.raw);
}

static void test_svg_diff_heads_tiles(void **state) {
  (void)state;
  enum { L = 6, H = 2, T = 3 };
  uint8_t m[H * L * L], tiles[H * 4];
  for (int r = 0; r < H * L; r++)
    for (int c = 0; c < L; c++) m[r * L + c] = (uint8_t)((r + c) % 4);
  for (int k = 0; k < H * 4; k++) tiles[k] = (uint8_t)(k % 3);
  const char *labels[4] = {NULL, "only <a>", "only b", "both"};
  image_spec sp = {.cells = m, .rows = H * L, .cols = L, .heads = H, .title = "d",
                   .n_classes = 4, .colour = image_diff, .label = labels,
                   .tiles = tiles, .tile_q = T, .tile_k = T, .max_px = 1024};
  char err[256] = "";
  assert_int_equal(image_write_svg(tpath("d.svg"), &sp, err, sizeof err), 0);
  size_t n;
  char *s = (char *)slurp(tpath("d.svg"), &n);
  check_well_formed(s);
  assert_int_equal(count(s, "class=\"head\""), H - 1);
  int full = 0, part = 0;
  for (int k = 0; k < H * 4; k++) full += tiles[k] == 2, part += tiles[k] == 1;
  assert_int_equal(count(s, "class=\"tile-full\""), full);
  assert_int_equal(count(s, "class=\"tile-partial\""), part);
  /* row 0: cells 1 (only a), 2 (only b), 3 (both) as single rects */
  assert_non_null(strstr(s, "<rect x=\"1\" y=\"0\" width=\"1\" height=\"1\"/>"));
  assert_non_null(strstr(s, "<rect x=\"2\" y=\"0\" width=\"1\" height=\"1\" fill=\"rgb(30,110,220)\"/>"));
  assert_non_null(strstr(s, "<rect x=\"3\" y=\"0\" width=\"1\" height=\"1\" fill=\"rgb(40,40,40)\"/>"));
  assert_non_null(strstr(s, ">only &lt;a&gt;</text>"));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png_small_grid),
      cmocka_unit_test(test_png_upscale_no_grid),
      cmocka_unit_test(test_png_downsample),
      cmocka_unit_test(test_png_errors),
      cmocka_unit_test(test_svg_small),
      cmocka_unit_test(test_svg_large),
      cmocka_unit_test(test_png_heads_and_text),
      cmocka_unit_test(test_png_diff_colours),
      cmocka_unit_test(test_png_tiles),
      cmocka_unit_test(test_svg_diff_heads_tiles),
  };
  return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
