/* test_npy.c: .npy round trips, hand-made headers NumPy may write, and every
 * rejection (each from a hand-made bad file).  When /usr/bin/python3 has
 * numpy, files are also exchanged with NumPy itself; without it that one test
 * is reported as skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  strcpy(tmpdir, "/tmp/test_npy.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)len + 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return p;
}

/* A .npy file with the given version and header text (used verbatim) and
 * ndata bytes of data. */
static void make_npy(const char *path, int major, const char *header,
                     const void *data, size_t ndata) {
  size_t hl = strlen(header);
  size_t pre = major == 1 ? 10 : 12;
  unsigned char *buf = malloc(pre + hl + ndata + 1);
  assert_non_null(buf);
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  buf[7] = 0;
  buf[8] = (unsigned char)(hl & 0xff);
  buf[9] = (unsigned char)((hl >> 8) & 0xff);
  if (major != 1) {
    buf[10] = (unsigned char)((hl >> 16) & 0xff);
    buf[11] = (unsigned char)((hl >> 24) & 0xff);
  }
  memcpy(buf + pre, header, hl);
  if (ndata) memcpy(buf + pre + hl, data, ndata);
  write_bytes(path, buf, pre + hl + ndata);
  free(buf);
}

/* ---- round trips -------------------------------------------------------- */

static void fill(npy_dtype dt, void *p, int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    if (dt == NPY_F32) ((float *)p)[k] = (float)k * 0.37f - 5.25f;
    if (dt == NPY_I32) ((int32_t *)p)[k] = (int32_t)(k * 7919 - 100000);
    if (dt == NPY_U8) ((uint8_t *)p)[k] = (uint8_t)(k * 31 + 3);
  }
}

static void roundtrip(npy_dtype dt, int ndim, const int64_t *shape) {
  static const size_t isz[] = {4, 4, 1};
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  void *src = malloc((size_t)n * isz[dt] + 1);
  assert_non_null(src);
  fill(dt, src, n);
  char err[256] = "";
  const char *p = tpath("rt.npy");
  assert_int_equal(npy_write(p, dt, ndim, shape, src, err, sizeof err), 0);

  /* v1.0 header, whole preamble+header a multiple of 64, ends in '\n' */
  size_t len;
  unsigned char *raw = read_bytes(p, &len);
  assert_memory_equal(raw, "\x93NUMPY\x01\x00", 8);
  size_t hl = raw[8] | (size_t)raw[9] << 8;
  assert_int_equal((10 + hl) % 64, 0);
  assert_int_equal(raw[10 + hl - 1], '\n');
  assert_int_equal(len, 10 + hl + (size_t)n * isz[dt]);
  free(raw);

  npy_array a;
  assert_int_equal(npy_read(p, &a, err, sizeof err), 0);
  assert_int_equal(a.dtype, dt);
  assert_int_equal(a.ndim, ndim);
  for (int d = 0; d < ndim; d++) assert_int_equal(a.shape[d], shape[d]);
  assert_int_equal(npy_count(&a), n);
  if (n) assert_memory_equal(a.data, src, (size_t)n * isz[dt]);
  npy_free(&a);
  assert_null(a.data);
  free(src);
}

static void test_roundtrip_all(void **state) {
  (void)state;
  static const int64_t shapes[][4] = {
      {0, 0, 0, 0}, {7, 0, 0, 0}, {3, 5, 0, 0}, {2, 3, 4, 0}, {2, 1, 3, 5}};
  for (int dt = NPY_F32; dt <= NPY_U8; dt++)
    for (int nd = 0; nd <= 4; nd++) roundtrip((npy_dtype)dt, nd, shapes[nd]);
}

static void test_roundtrip_empty_and_one(void **state) {
  (void)state;
  int64_t s0[] = {0};
  int64_t s1[] = {4, 0, 3};
  int64_t s2[] = {1};
  roundtrip(NPY_F32, 1, s0);
  roundtrip(NPY_I32, 3, s1);
  roundtrip(NPY_U8, 1, s2);
}

static void test_write_header_text(void **state) {
  (void)state;
  int64_t shape[] = {3};
  int32_t v[] = {1, 2, 3};
  char err[256];
  const char *p = tpath("h.npy");
  assert_int_equal(npy_write(p, NPY_I32, 1, shape, v, err, sizeof err), 0);
  size_t len;
  unsigned char *raw = read_bytes(p, &len);
  const char *want = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
  assert_memory_equal(raw + 10, want, strlen(want));
  free(raw);
}

/* ---- headers NumPy (or a hand) may write -------------------------------- */

static void expect_ok(const char *name, int major, const char *hdr,
                      const void *data, size_t n, npy_dtype dt, int ndim,
                      const int64_t *shape) {
  const char *p = tpath(name);
  make_npy(p, major, hdr, data, n);
  npy_array a;
  char err[256] = "";
  int rc = npy_read(p, &a, err, sizeof err);
  if (rc) fail_msg("%s: unexpected error: %s", hdr, err);
  assert_int_equal(a.dtype, dt);
  assert_int_equal(a.ndim, ndim);
  for (int d = 0; d < ndim; d++) assert_int_equal(a.shape[d], shape[d]);
  if (n) assert_memory_equal(a.data, data, n);
  npy_free(&a);
}

static void test_header_variants(void **state) {
  (void)state;
  float f[6] = {1, 2, 3, 4, 5, 6};
  int64_t s23[] = {2, 3}, s6[] = {6}, s321[] = {3, 2, 1};
  expect_ok("v1.npy", 1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }   \n",
            f, sizeof f, NPY_F32, 2, s23);
  /* key order, double quotes, no trailing comma, odd spacing */
  expect_ok("v2.npy", 1,
            "{ \"shape\" :(6 ,) ,\"fortran_order\":False,\"descr\":\"<i4\"}\n",
            f, sizeof f, NPY_I32, 1, s6);
  /* format 2.0 and 3.0 with a 32-bit length */
  expect_ok("v3.npy", 2,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 1,), }\n",
            f, 6, NPY_U8, 3, s321);
  expect_ok("v4.npy", 3,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\n", f,
            sizeof f, NPY_F32, 1, s6);
  /* scalar: shape () */
  expect_ok("v5.npy", 1,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (), }\n", f, 4,
            NPY_I32, 0, NULL);
  /* tabs and CRLF are whitespace too */
  expect_ok("v6.npy", 1,
            "{'descr':\t'<f4',\r\n'fortran_order': False,'shape':(2,3)}\r\n",
            f, sizeof f, NPY_F32, 2, s23);
}

/* ---- rejections ------------------------------------------------------- */

static void expect_err(const char *name, const char *want) {
  const char *p = tpath(name);
  npy_array a;
  memset(&a, 0x5a, sizeof a);
  char err[512] = "";
  assert_int_equal(npy_read(p, &a, err, sizeof err), -1);
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s: ", p);
  if (strncmp(err, prefix, strlen(prefix)) != 0)
    fail_msg("message lacks the path prefix: '%s'", err);
  if (!strstr(err, want)) fail_msg("'%s' does not mention '%s'", err, want);
  assert_null(a.data);
}

static void bad_header(const char *name, int major, const char *hdr,
                       size_t ndata, const char *want) {
  unsigned char data[64] = {0};
  assert_true(ndata <= sizeof data);
  make_npy(tpath(name), major, hdr, data, ndata);
  expect_err(name, want);
}

static void test_reject_files(void **state) {
  (void)state;
  expect_err("missing.npy", "No such file");
  write_bytes(tpath("empty.npy"), "", 0);
  expect_err("empty.npy", "bad magic");
  write_bytes(tpath("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00", 10);
  expect_err("magic.npy", "bad magic");
  write_bytes(tpath("pre.npy"), "\x93NUMP", 5);
  expect_err("pre.npy", "truncated");
  write_bytes(tpath("pre2.npy"), "\x93NUMPY\x01\x00\x40", 9);
  expect_err("pre2.npy", "truncated");
  write_bytes(tpath("ver.npy"), "\x93NUMPY\x04\x00\x10\x00{}", 12);
  expect_err("ver.npy", "version 4.0");
  /* header announces 0x100 bytes, file has 10 */
  write_bytes(tpath("hdr.npy"), "\x93NUMPY\x01\x00\x00\x01{'descr': ", 20);
  expect_err("hdr.npy", "truncated header");
  write_bytes(tpath("huge.npy"), "\x93NUMPY\x02\x00\xff\xff\xff\x7f{", 13);
  expect_err("huge.npy", "implausibly large");
  /* only regular files: a FIFO (no writer) would block the open */
  assert_int_equal(mkfifo(tpath("fifo.npy"), 0644), 0);
  expect_err("fifo.npy", "not a regular file (a FIFO)");
  expect_err(".", "Is a directory");
}

static void test_reject_headers(void **state) {
  (void)state;
  bad_header("h1.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n",
             16, "unsupported dtype '<f8'");
  bad_header("h2.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
             8, "big-endian");
  bad_header("h3.npy", 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n",
             8, "big-endian");
  bad_header("h4.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n",
             16, "unsupported dtype");
  bad_header("h5.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n",
             16, "Fortran");
  bad_header("h6.npy", 1, "{'descr': '<f4', 'shape': (2,), }\n", 8,
             "missing key 'fortran_order'");
  bad_header("h7.npy", 1, "{'descr': '<f4', 'fortran_order': False, }\n", 4,
             "missing key 'shape'");
  bad_header("h8.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",
             8, "unexpected or repeated key 'x'");
  bad_header("h9.npy", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n",
             8, "repeated key 'descr'");
  bad_header("h10.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }\n",
             8, "not a tuple");
  bad_header("h11.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n",
             8, "non-negative integers");
  bad_header("h12.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3\n",
             24, "expected ',' or ')'");
  bad_header("h13.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }\n",
             8, "must be a tuple");
  bad_header("h14.npy", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }\n",
             8, "True or False");
  bad_header("h15.npy", 1, "{'descr' '<f4'}\n", 0,
             "expected ':'");
  bad_header("h16.npy", 1, "{'descr': '<f4\n", 0, "unterminated");
  bad_header("h17.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x\n",
             8, "text after the dict");
  bad_header("h18.npy", 1, "'descr': '<f4'\n", 0, "expected a dict");
  bad_header("h19.npy", 1, "{'descr': '<f4' 'shape': (2,)}\n", 8,
             "expected ',' or '}'");
  bad_header("h20.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n",
             4, "too many dimensions");
  bad_header("h21.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n",
             4, "too large");
  bad_header("h22.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n",
             4, "overflows");
  bad_header("h23.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3037000500, 3037000500), }\n",
             4, "overflows");
  bad_header("h24.npy", 1, "{'descr': 'float32_but_much_too_long_for_us', 'fortran_order': False, 'shape': (1,)}\n",
             4, "unsupported dtype");
  bad_header("h25.npy", 1, "", 0, "expected a dict");
  bad_header("h26.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }\n",
             0, "non-negative integers");
}

/* A NUL or another control character inside a string of the header: the
 * dtype '<f4\0' is not '<f4', nor a key 'shape\0' 'shape'. */
static void test_reject_control_chars(void **state) {
  (void)state;
  static const char pre[] = "\x93NUMPY\x01\x00";
  static const char *const hdrs[] = {
      "{'descr': '<f4\0', 'fortran_order': False, 'shape': (2,), }\n",
      "{'descr': '\0<f4', 'fortran_order': False, 'shape': (2,), }\n",
      "{'descr': '<f4', 'fortran_order': False, 'shape\0': (2,), }\n",
      "{'descr': '<f\x01" "4', 'fortran_order': False, 'shape': (2,), }\n",
  };
  static const size_t lens[] = {59, 59, 59, 59};
  for (int k = 0; k < 4; k++) {
    unsigned char buf[256] = {0};
    size_t hl = lens[k];
    memcpy(buf, pre, 8);
    buf[8] = (unsigned char)hl;
    memcpy(buf + 10, hdrs[k], hl);
    assert_true(memchr(buf + 10, '\n', hl) == buf + 10 + hl - 1);
    write_bytes(tpath("nul.npy"), buf, 10 + hl + 8); /* 2 floats of 0 */
    expect_err("nul.npy", "control character");
  }
}

static void test_reject_data_size(void **state) {
  (void)state;
  /* the shape needs 2*3*4 = 24 bytes */
  bad_header("d1.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
             20, "data truncated: the shape needs 24 bytes, the file has 20");
  bad_header("d2.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
             0, "data truncated");
  bad_header("d3.npy", 2, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }\n",
             6, "longer than");
  /* A shape far larger than the file is rejected before allocating (not
   * "out of memory", not a 4 TiB or 64 GiB allocation: found by fuzz_npy). */
  bad_header("d4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n",
             8, "the shape needs 4398046511104 bytes, the file has 8");
  bad_header("d5.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4096, 4096, 1024), }\n",
             0, "the shape needs 68719476736 bytes, the file has 0");
}

static void test_write_errors(void **state) {
  (void)state;
  char err[256] = "";
  int64_t neg[] = {2, -1};
  float x = 0;
  assert_int_equal(npy_write(tpath("w.npy"), NPY_F32, 2, neg, &x, err, sizeof err), -1);
  assert_non_null(strstr(err, "negative"));
  int64_t big[] = {INT64_MAX / 2, 3};
  assert_int_equal(npy_write(tpath("w.npy"), NPY_F32, 2, big, &x, err, sizeof err), -1);
  assert_non_null(strstr(err, "overflows"));
  int64_t s[] = {1};
  assert_int_equal(npy_write(tpath("w.npy"), NPY_F32, 9, s, &x, err, sizeof err), -1);
  assert_non_null(strstr(err, "ndim"));
  assert_int_equal(npy_write("/nonexistent-dir/x.npy", NPY_F32, 1, s, &x, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent-dir/x.npy: "));
  /* a tiny error buffer is never overrun */
  char tiny[8];
  memset(tiny, 'z', sizeof tiny);
  assert_int_equal(npy_read(tpath("missing2.npy"), &(npy_array){0}, tiny, 5), -1);
  assert_int_equal(strlen(tiny), 4);
  assert_int_equal(tiny[5], 'z');
}

/* ---- NumPy itself ------------------------------------------------------- */

static void test_numpy_cross_check(void **state) {
  (void)state;
  if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    skip();
    return;
  }
  char cmd[2048];
  /* NumPy writes, we read */
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"import numpy as np; d='%s';"
           "np.save(d+'/np_f.npy', (np.arange(24, dtype=np.float32)*0.5-3).reshape(2,3,4));"
           "np.save(d+'/np_i.npy', np.arange(-5, 5, dtype=np.int32));"
           "np.save(d+'/np_u.npy', np.arange(6, dtype=np.uint8).reshape(3,2));"
           "np.save(d+'/np_s.npy', np.float32(2.5));"
           "np.save(d+'/np_t.npy', np.asfortranarray(np.ones((2,3), np.float32)));"
           "np.save(d+'/np_d.npy', np.ones(3));"
           "np.save(d+'/np_b.npy', np.ones(3, '>f4'))\"",
           tmpdir);
  assert_int_equal(system(cmd), 0);
  npy_array a;
  char err[256];
  assert_int_equal(npy_read(tpath("np_f.npy"), &a, err, sizeof err), 0);
  assert_int_equal(a.dtype, NPY_F32);
  assert_int_equal(a.ndim, 3);
  assert_int_equal(a.shape[0], 2);
  assert_int_equal(a.shape[2], 4);
  for (int k = 0; k < 24; k++)
    assert_true(((float *)a.data)[k] == (float)k * 0.5f - 3.0f);
  npy_free(&a);
  assert_int_equal(npy_read(tpath("np_i.npy"), &a, err, sizeof err), 0);
  assert_int_equal(a.dtype, NPY_I32);
  for (int k = 0; k < 10; k++) assert_int_equal(((int32_t *)a.data)[k], k - 5);
  npy_free(&a);
  assert_int_equal(npy_read(tpath("np_u.npy"), &a, err, sizeof err), 0);
  assert_int_equal(a.dtype, NPY_U8);
  assert_int_equal(a.shape[0], 3);
  assert_int_equal(((uint8_t *)a.data)[5], 5);
  npy_free(&a);
  assert_int_equal(npy_read(tpath("np_s.npy"), &a, err, sizeof err), 0);
  assert_int_equal(a.ndim, 0);
  assert_true(((float *)a.data)[0] == 2.5f);
  npy_free(&a);
  expect_err("np_t.npy", "Fortran");
  expect_err("np_d.npy", "'<f8'");
  expect_err("np_b.npy", "big-endian");

  /* we write, NumPy reads */
  int64_t shape[] = {3, 4};
  int32_t v[12];
  for (int k = 0; k < 12; k++) v[k] = k * k - 7;
  assert_int_equal(npy_write(tpath("ours.npy"), NPY_I32, 2, shape, v, err, sizeof err), 0);
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"import numpy as np, sys; a=np.load('%s/ours.npy');"
           "sys.exit(0 if a.dtype==np.int32 and a.shape==(3,4) and "
           "(a.ravel()==np.arange(12)**2-7).all() else 1)\"",
           tmpdir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_all),
      cmocka_unit_test(test_roundtrip_empty_and_one),
      cmocka_unit_test(test_write_header_text),
      cmocka_unit_test(test_header_variants),
      cmocka_unit_test(test_reject_files),
      cmocka_unit_test(test_reject_headers),
      cmocka_unit_test(test_reject_control_chars),
      cmocka_unit_test(test_reject_data_size),
      cmocka_unit_test(test_write_errors),
      cmocka_unit_test(test_numpy_cross_check),
  };
  return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
