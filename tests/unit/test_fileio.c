/* test_fileio.c: the "path: message" errors and the checked open and close
 * that npy.c and image.c share: messages, a buffer never overrun, a failed
 * open, and a write failure seen only at the end (/dev/full). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"

static void test_fail_message(void **state) {
  (void)state;
  char err[64] = "";
  assert_int_equal(fio_fail(err, sizeof err, "a/b.npy", "bad %s %d", "x", 7),
                   -1);
  assert_string_equal(err, "a/b.npy: bad x 7");
  assert_int_equal(fio_fail(err, sizeof err, NULL, "no data"), -1);
  assert_string_equal(err, "(no path): no data");
  assert_int_equal(fio_fail(NULL, 0, "p", "nothing written"), -1);
}

static void test_fail_small_buffer(void **state) {
  (void)state;
  char tiny[12];
  memset(tiny, 'z', sizeof tiny);
  fio_fail(tiny, 5, "long/path", "message");
  assert_string_equal(tiny, "long");
  assert_int_equal(tiny[5], 'z');
  memset(tiny, 'z', sizeof tiny);
  fio_fail(tiny, 10, "p", "a long message");
  assert_string_equal(tiny, "p: a long");
  assert_int_equal(tiny[10], 'z');
}

static void test_open_missing(void **state) {
  (void)state;
  char err[128] = "";
  assert_null(fio_open("/nonexistent-dir/x.npy", "wb", err, sizeof err));
  assert_string_equal(err, "/nonexistent-dir/x.npy: No such file or directory");
  assert_null(fio_open("/nonexistent-dir/y", "rb", err, sizeof err));
  assert_string_equal(err, "/nonexistent-dir/y: No such file or directory");
}

static void test_write_and_close(void **state) {
  (void)state;
  char path[] = "/tmp/test_fileio.XXXXXX", err[128] = "";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  FILE *f = fio_open(path, "wb", err, sizeof err);
  assert_non_null(f);
  bool ok = fputs("hello\n", f) != EOF;
  assert_int_equal(fio_close(f, ok, path, err, sizeof err), 0);
  char buf[16] = "";
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 6);
  fclose(f);
  assert_string_equal(buf, "hello\n");
  /* the caller's own failure is reported even though the stream is fine */
  f = fio_open(path, "wb", err, sizeof err);
  assert_non_null(f);
  assert_int_equal(fio_close(f, false, path, err, sizeof err), -1);
  assert_non_null(strstr(err, ": write failed: "));
  assert_int_equal(strncmp(err, path, strlen(path)), 0);
  remove(path);
}

static void test_close_full_device(void **state) {
  (void)state;
  if (access("/dev/full", W_OK) != 0) {
    skip();
    return;
  }
  char err[128] = "";
  FILE *f = fio_open("/dev/full", "w", err, sizeof err);
  assert_non_null(f);
  /* buffered: the write itself succeeds, the flush at close fails */
  bool ok = fputs("x", f) != EOF;
  assert_true(ok);
  assert_int_equal(fio_close(f, ok, "/dev/full", err, sizeof err), -1);
  assert_string_equal(err, "/dev/full: write failed: No space left on device");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_message),
      cmocka_unit_test(test_fail_small_buffer),
      cmocka_unit_test(test_open_missing),
      cmocka_unit_test(test_write_and_close),
      cmocka_unit_test(test_close_full_device),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
