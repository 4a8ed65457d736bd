/* test_ffi.c: runtime/ffi.c, extern predicate calls through libffi. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <stdint.h>
#include <string.h>

#include "ffi_call.h"

static void *fnptr(void (*f)(void)) {
  void *p;
  memcpy(&p, &f, sizeof p);
  return p;
}
#define FN(f) fnptr((void (*)(void))(f))

static bool always_true(void) {
  return true;
}
static bool always_false(void) {
  return false;
}
static bool is_even(int64_t a) {
  return a % 2 == 0;
}
static bool less(int64_t a, int64_t b) {
  return a < b;
}
static bool same_doc(int64_t i, int64_t j, int64_t h) {
  return i / 8 == j / 8 && h != 3;
}
/* True exactly when the sixteen arguments arrive in order as 1000 + k,
 * with the sign of the odd ones flipped: catches swapped, truncated or
 * stack-passed arguments read from the wrong slot. */
static bool sixteen(int64_t a0, int64_t a1, int64_t a2, int64_t a3, int64_t a4,
                    int64_t a5, int64_t a6, int64_t a7, int64_t a8, int64_t a9,
                    int64_t a10, int64_t a11, int64_t a12, int64_t a13,
                    int64_t a14, int64_t a15) {
  int64_t v[16] = {a0, a1, a2,  a3,  a4,  a5,  a6,  a7,
                   a8, a9, a10, a11, a12, a13, a14, a15};
  for (int k = 0; k < 16; k++)
    if (v[k] != (k % 2 ? -(1000 + k) : 1000 + k)) return false;
  return true;
}
/* A full 64-bit value must cross unchanged. */
static bool is_big(int64_t a) {
  return a == INT64_MIN + 7;
}

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
        assert_int_equal(ffi_call_pred(FN(same_doc), 3, a), same_doc(i, j, h));
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

/* ---- kernel entries ---- */

typedef struct seen {
  const void *t;
  int64_t s[FFI_ENTRY_MAX_ARGS];
  const int32_t *a[FFI_ENTRY_MAX_ARGS];
  int calls;
} seen;

static int record(void *user, const void *t, const int64_t *scalars,
                  const int32_t *const *arrays) {
  seen *w = user;
  w->t = t;
  for (int k = 0; k < 3; k++) w->s[k] = scalars[k];
  w->a[0] = arrays[0];
  w->calls++;
  return (int)(scalars[0] + scalars[1] * 10 + scalars[2] * 100) + arrays[0][1];
}

static void test_entry_typed_call(void **state) {
  (void)state;
  seen w = {0};
  ffi_entry *e = ffi_entry_new(3, 1, record, &w);
  assert_non_null(e);
  int (*f)(const void *, int64_t, int64_t, int64_t, const int32_t *);
  void (*code)(void) = ffi_entry_code(e);
  memcpy(&f, &code, sizeof f);
  const int32_t arr[3] = {5, 7, 9};
  int tensors = 42;
  int r = f(&tensors, 1, 2, -3, arr);
  assert_int_equal(r, 1 + 20 - 300 + 7);
  assert_ptr_equal(w.t, &tensors);
  assert_int_equal(w.s[0], 1);
  assert_int_equal(w.s[1], 2);
  assert_int_equal(w.s[2], -3);
  assert_ptr_equal(w.a[0], arr);
  assert_int_equal(w.calls, 1);
  ffi_entry_free(e);
}

static void test_entry_generic_call(void **state) {
  (void)state;
  seen w = {0};
  ffi_entry *e = ffi_entry_new(3, 1, record, &w);
  assert_non_null(e);
  const int32_t arr[2] = {0, -1000};
  const int32_t *arrays[1] = {arr};
  int64_t scalars[3] = {INT64_MAX / 1000, 0, 0};
  int tensors = 0;
  int r = ffi_entry_call(e, NULL, &tensors, scalars, arrays);
  assert_int_equal(r, (int)(INT64_MAX / 1000) - 1000);
  assert_int_equal(w.s[0], INT64_MAX / 1000);
  assert_ptr_equal(w.t, &tensors);
  assert_int_equal(w.calls, 1);
  ffi_entry_free(e);
}

static int plain(const void *t, int64_t a, int64_t b, int64_t c,
                 const int32_t *x) {
  return (t != NULL) + (int)(a - b - c) + x[0];
}

/* ffi_entry_call calls any function of the entry's type, not only its own
 * closure (a compiled typed entry). */
static void test_entry_calls_other_fn(void **state) {
  (void)state;
  seen w = {0};
  ffi_entry *e = ffi_entry_new(3, 1, record, &w);
  assert_non_null(e);
  const int32_t arr[1] = {100};
  const int32_t *arrays[1] = {arr};
  int64_t scalars[3] = {50, 7, 3};
  void (*fn)(void) = (void (*)(void))plain;
  assert_int_equal(ffi_entry_call(e, fn, &w, scalars, arrays), 1 + 40 + 100);
  assert_int_equal(w.calls, 0);
  ffi_entry_free(e);
}

static int count_args(void *user, const void *t, const int64_t *scalars,
                      const int32_t *const *arrays) {
  (void)t;
  int n = *(int *)user, sum = 0;
  for (int k = 0; k < n; k++) sum += (int)scalars[k] * (k + 1);
  (void)arrays;
  return sum;
}

static void test_entry_limits(void **state) {
  (void)state;
  int n = FFI_ENTRY_MAX_ARGS;
  ffi_entry *e = ffi_entry_new(n, 0, count_args, &n);
  assert_non_null(e);
  int64_t s[FFI_ENTRY_MAX_ARGS];
  int want = 0;
  for (int k = 0; k < n; k++) {
    s[k] = k % 5 - 2;
    want += (int)s[k] * (k + 1);
  }
  assert_int_equal(ffi_entry_call(e, NULL, NULL, s, NULL), want);
  ffi_entry_free(e);
  assert_null(ffi_entry_new(FFI_ENTRY_MAX_ARGS, 1, count_args, &n));
  assert_null(ffi_entry_new(-1, 0, count_args, &n));
  assert_null(ffi_entry_new(0, 0, NULL, &n));
  e = ffi_entry_new(0, 0, count_args, &(int){0});
  assert_non_null(e);
  assert_int_equal(ffi_entry_call(e, NULL, NULL, NULL, NULL), 0);
  ffi_entry_free(e);
  ffi_entry_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_args),
      cmocka_unit_test(test_one_arg),
      cmocka_unit_test(test_two_args_order),
      cmocka_unit_test(test_three_args),
      cmocka_unit_test(test_sixteen_args),
      cmocka_unit_test(test_entry_typed_call),
      cmocka_unit_test(test_entry_generic_call),
      cmocka_unit_test(test_entry_calls_other_fn),
      cmocka_unit_test(test_entry_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
