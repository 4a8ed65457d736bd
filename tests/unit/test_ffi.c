/* test_ffi.c: runtime/ffi.c, extern predicate calls through libffi. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ffi.h"

static void *fnptr(void (*f)(void)) {
  void *p;
  memcpy(&p, &f, sizeof p);
  return p;
}
#define FN(f) fnptr((void (*)(void))(f))

static bool always_true(void) { return true; }
static bool always_false(void) { return false; }
static bool is_even(int64_t a) { return a % 2 == 0; }
static bool less(int64_t a, int64_t b) { return a < b; }
static bool same_doc(int64_t i, int64_t j, int64_t h) {
  return i / 8 == j / 8 && h != 3;
}
/* True exactly when the sixteen arguments arrive in order as 1000 + k,
 * with the sign of the odd ones flipped: catches swapped, truncated or
 * stack-passed arguments read from the wrong slot. */
static bool sixteen(int64_t a0, int64_t a1, int64_t a2, int64_t a3,
                    int64_t a4, int64_t a5, int64_t a6, int64_t a7,
                    int64_t a8, int64_t a9, int64_t a10, int64_t a11,
                    int64_t a12, int64_t a13, int64_t a14, int64_t a15) {
  int64_t v[16] = {a0, a1, a2,  a3,  a4,  a5,  a6,  a7,
                   a8, a9, a10, a11, a12, a13, a14, a15};
  for (int k = 0; k < 16; k++)
    if (v[k] != (k % 2 ? -(1000 + k) : 1000 + k)) return false;
  return true;
}
/* A full 64-bit value must cross unchanged. */
static bool is_big(int64_t a) { return a == INT64_MIN + 7; }

static void test_no_args(void **state) {
  (void)state;
  assert_true(ffi_call_pred(FN(always_true), 0, NULL));
  assert_false(ffi_call_pred(FN(always_false), 0, NULL));
}

static void test_one_arg(void **state) {
  (void)state;
  for (int64_t a = -5; a <= 5; a++)
    assert_int_equal(ffi_call_pred(FN(is_even), 1, &a), a % 2 == 0);
  int64_t big = INT64_MIN + 7, other = INT64_MIN + 6;
  assert_true(ffi_call_pred(FN(is_big), 1, &big));
  assert_false(ffi_call_pred(FN(is_big), 1, &other));
}

static void test_two_args_order(void **state) {
  (void)state;
  int64_t ab[2] = {3, 9}, ba[2] = {9, 3}, eq[2] = {4, 4};
  assert_true(ffi_call_pred(FN(less), 2, ab));
  assert_false(ffi_call_pred(FN(less), 2, ba));
  assert_false(ffi_call_pred(FN(less), 2, eq));
}

static void test_three_args(void **state) {
  (void)state;
  for (int64_t i = 0; i < 20; i++)
    for (int64_t j = 0; j < 20; j++)
      for (int64_t h = 0; h < 5; h++) {
        int64_t a[3] = {i, j, h};
        assert_int_equal(ffi_call_pred(FN(same_doc), 3, a),
                         same_doc(i, j, h));
      }
}

static void test_sixteen_args(void **state) {
  (void)state;
  int64_t a[16];
  for (int k = 0; k < 16; k++) a[k] = k % 2 ? -(1000 + k) : 1000 + k;
  assert_true(ffi_call_pred(FN(sixteen), 16, a));
  a[15] = 0;
  assert_false(ffi_call_pred(FN(sixteen), 16, a));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_args),
      cmocka_unit_test(test_one_arg),
      cmocka_unit_test(test_two_args_order),
      cmocka_unit_test(test_three_args),
      cmocka_unit_test(test_sixteen_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
