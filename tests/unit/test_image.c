/* test_image.c: PNG files decoded here, independently of image.c (chunk
 * walk, CRC-32 bit by bit, the stored deflate blocks, Adler-32), then their
 * pixels checked against the mask; SVG checked for well-formed tags, the
 * escaped title, axis labels and one rectangle per run of allowed cells. */
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
  unsigned char *raw; /* h scanlines of 1 + w bytes */
  int n_blocks;
} png_img;

static png_img decode_png(const char *path) {
  size_t n;
  unsigned char *f = slurp(path, &n);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
  assert_true(n > 8);
  assert_memory_equal(f, sig, 8);
  png_img img = {0, 0, NULL, 0};
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
      assert_int_equal(data[9], 0);  /* grayscale */
      assert_int_equal(data[10], 0);
      assert_int_equal(data[11], 0);
      assert_int_equal(data[12], 0);
    } else if (!memcmp(type, "IDAT", 4)) {
      z = realloc(z, nz + len + 1);
      assert_non_null(z);
      memcpy(z + nz, data, len);
      nz += len;
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
  /* zlib header: deflate, check bits valid, no preset dictionary */
  assert_true(nz >= 2 + 5 + 4);
  assert_int_equal(z[0] & 0x0f, 8);
  assert_int_equal((z[0] * 256 + z[1]) % 31, 0);
  assert_int_equal(z[1] & 0x20, 0);
  size_t want = (size_t)img.h * (1 + (size_t)img.w);
  img.raw = malloc(want + 1);
  assert_non_null(img.raw);
  size_t got = 0, zp = 2;
  for (;;) {
    assert_true(zp + 5 <= nz);
    int final = z[zp] & 1, btype = (z[zp] >> 1) & 3;
    assert_int_equal(btype, 0);            /* stored */
    assert_int_equal(z[zp] >> 3, 0);       /* padding bits zero */
    unsigned len = z[zp + 1] | z[zp + 2] << 8;
    unsigned nlen = z[zp + 3] | z[zp + 4] << 8;
    assert_int_equal(len ^ 0xffff, nlen);
    zp += 5;
    assert_true(zp + len <= nz && got + len <= want);
    memcpy(img.raw + got, z + zp, len);
    got += len;
    zp += len;
    img.n_blocks++;
    if (final) break;
  }
  assert_int_equal(got, want);
  assert_int_equal(zp + 4, nz);
  uint32_t a = 1, b = 0;
  for (size_t q = 0; q < got; q++) {
    a = (a + img.raw[q]) % 65521;
    b = (b + a) % 65521;
  }
  assert_int_equal(be32(z + zp), b << 16 | a);
  for (uint32_t y = 0; y < img.h; y++)
    assert_int_equal(img.raw[y * (1 + (size_t)img.w)], 0); /* filter */
  free(z);
  free(f);
  return img;
}

static const unsigned char *pixel(const png_img *im, uint32_t x, uint32_t y) {
  return im->raw + y * (1 + (size_t)im->w) + 1 + (size_t)x;
}

static bool is_white(const unsigned char *p) { return p[0] == 255; }
static int lum(const unsigned char *p) { return p[0]; }

/* ---- PNG tests -------------------------------------------------------- */

static void test_png_small_grid(void **state) {
  (void)state;
  enum { R = 5, C = 7 };
  uint8_t m[R * C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) m[r * C + c] = (uint8_t)((c <= r + 1 && c >= r - 1) || c == 0);
  char err[256] = "";
  assert_int_equal(image_write_png(tpath("a.png"), m, R, C, 1024, err, sizeof err), 0);
  png_img im = decode_png(tpath("a.png"));
  /* cells of 32 px (the cap) with a 1-px grid around them */
  assert_int_equal(im.w, C * 32 + 1);
  assert_int_equal(im.h, R * 32 + 1);
  const unsigned char *ink = NULL;
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      for (int dy = 1; dy < 32; dy += 10)
        for (int dx = 1; dx < 32; dx += 10) {
          const unsigned char *p = pixel(&im, (uint32_t)(c * 32 + dx), (uint32_t)(r * 32 + dy));
          if (m[r * C + c]) {
            assert_true(lum(p) < 128);  /* dark */
            if (!ink) ink = p;
            assert_int_equal(*p, *ink);  /* one ink shade */
          } else {
            assert_true(is_white(p));
          }
        }
  /* grid lines: light, not white, on every cell boundary, also over ink */
  for (int c = 0; c <= C; c++)
    for (uint32_t y = 0; y < im.h; y += 7) {
      const unsigned char *p = pixel(&im, (uint32_t)(c * 32), y);
      assert_false(is_white(p));
      assert_true(lum(p) > 180);
    }
  for (int r = 0; r <= R; r++) {
    const unsigned char *p = pixel(&im, 5, (uint32_t)(r * 32));
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
  assert_int_equal(image_write_png(tpath("b.png"), m, R, C, 512, err, sizeof err), 0);
  png_img im = decode_png(tpath("b.png"));
  assert_int_equal(im.w, C * 5);
  assert_int_equal(im.h, R * 5);
  for (uint32_t y = 0; y < im.h; y++)
    for (uint32_t x = 0; x < im.w; x++) {
      bool on = m[(y / 5) * C + x / 5];
      assert_int_equal(!is_white(pixel(&im, x, y)), on);
    }
  free(im.raw);
  free(m);

  /* a 3x3 mask at a tiny max: still >= 4 px per cell when it fits */
  uint8_t e[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  assert_int_equal(image_write_png(tpath("c.png"), e, 3, 3, 12, err, sizeof err), 0);
  im = decode_png(tpath("c.png"));
  assert_int_equal(im.w, 12);
  assert_int_equal(im.h, 12);
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
  assert_int_equal(image_write_png(tpath("d.png"), m, R, C, 600, err, sizeof err), 0);
  png_img im = decode_png(tpath("d.png"));
  assert_int_equal(im.h, 600);  /* longer side at max_px, aspect kept */
  assert_int_equal(im.w, 400);
  assert_true(im.n_blocks >= 3); /* 240600 raw bytes: several stored blocks */
  /* each pixel covers 5 x 5 cells */
  const unsigned char *full = pixel(&im, 20, 20);
  const unsigned char *half = pixel(&im, 240, 20);
  const unsigned char *sparse = pixel(&im, 20, 500);
  assert_true(lum(full) < lum(half));
  assert_true(lum(half) < lum(sparse));
  assert_false(is_white(sparse));      /* 4 % density stays visible */
  assert_true(is_white(pixel(&im, 360, 300)));
  assert_true(is_white(pixel(&im, 140, 20)));
  for (uint32_t y = 0; y < 200; y++)
    for (uint32_t x = 0; x < 100; x++) assert_int_equal(*pixel(&im, x, y), *full);
  for (uint32_t y = 0; y < 200; y++)
    for (uint32_t x = 200; x < 300; x++) assert_int_equal(*pixel(&im, x, y), *half);
  for (uint32_t y = 400; y < 600; y++)
    for (uint32_t x = 0; x < 400; x++) assert_int_equal(*pixel(&im, x, y), *sparse);
  free(im.raw);
  free(m);
}

static void test_png_errors(void **state) {
  (void)state;
  uint8_t m[4] = {1, 1, 1, 1};
  char err[256] = "";
  assert_int_equal(image_write_png(tpath("e.png"), m, 0, 4, 64, err, sizeof err), -1);
  assert_non_null(strstr(err, "empty mask"));
  assert_int_equal(strncmp(err, tpath("e.png"), strlen(tpath("e.png"))), 0);
  assert_int_equal(image_write_png("/nonexistent-dir/e.png", m, 2, 2, 64, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent-dir/e.png: "));
  assert_int_equal(image_write_png(tpath("e.png"), m, 2, 2, 1 << 20, err, sizeof err), -1);
  assert_non_null(strstr(err, "max size"));
  assert_int_equal(image_write_png(tpath("e.png"), NULL, 2, 2, 64, err, sizeof err), -1);
  assert_int_equal(image_write_svg(tpath("e.svg"), m, 2, -1, 64, "t", err, sizeof err), -1);
  assert_non_null(strstr(err, "empty mask"));
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
  assert_int_equal(image_write_svg(tpath("s.svg"), m, R, C, 1024, "causal <&> \"sinks\"",
                                   err, sizeof err), 0);
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
  assert_int_equal(image_write_svg(tpath("l.svg"), m, R, C, 1024, NULL, err, sizeof err), 0);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png_small_grid),
      cmocka_unit_test(test_png_upscale_no_grid),
      cmocka_unit_test(test_png_downsample),
      cmocka_unit_test(test_png_errors),
      cmocka_unit_test(test_svg_small),
      cmocka_unit_test(test_svg_large),
  };
  return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
