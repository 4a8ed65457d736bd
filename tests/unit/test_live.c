/* test_live.c: the registry of live API objects (compiler/live.c): every
 * registered object is found until it is retired and never after, through
 * growth of the table and deletions in any order (the backward shift of
 * linear probing), with kinds kept apart and reference counts exact. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <stdint.h>
#include <stdlib.h>

#include "live.h"

enum { N = 5000 };

static uint64_t next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 17;
}

static void test_register_retire(void **state) {
  (void)state;
  live_obj *o = calloc(N, sizeof *o);
  bool *in = calloc(N, sizeof *in);
  assert_non_null(o);
  assert_non_null(in);
  uint64_t seed = 42;
  /* rounds of adding and retiring at random, checking everything */
  for (int round = 0; round < 6; round++) {
    for (int k = 0; k < N; k++)
      if (!in[k] && next(&seed) % 3 != 0) {
        assert_int_equal(live_add(&o[k], k % 2 ? LIVE_KERNEL : LIVE_PATTERN), 0);
        in[k] = true;
      }
    for (int k = 0; k < N; k++) {
      live_kind kind = k % 2 ? LIVE_KERNEL : LIVE_PATTERN;
      live_obj *got = live_acquire(&o[k], kind);
      assert_ptr_equal(got, in[k] ? &o[k] : NULL);
      if (got) assert_false(live_release(got)); /* the owner's remains */
      /* another kind, or an address inside the object, is not it */
      assert_null(live_acquire(&o[k], kind == LIVE_KERNEL ? LIVE_PATTERN : LIVE_KERNEL));
      assert_null(live_acquire((char *)&o[k] + 1, kind));
    }
    for (int k = 0; k < N; k++)
      if (in[k] && next(&seed) % 2 == 0) {
        live_kind kind = k % 2 ? LIVE_KERNEL : LIVE_PATTERN;
        assert_true(live_retire(&o[k], kind));
        assert_false(live_retire(&o[k], kind)); /* twice: nothing */
        assert_true(live_release(&o[k]));       /* the owner's was the last */
        in[k] = false;
      }
  }
  for (int k = 0; k < N; k++)
    if (in[k]) {
      assert_true(live_retire(&o[k], k % 2 ? LIVE_KERNEL : LIVE_PATTERN));
      assert_true(live_release(&o[k]));
    }
  for (int k = 0; k < N; k++) assert_null(live_acquire(&o[k], LIVE_KERNEL));
  free(o);
  free(in);
}

/* A reference taken by a call outlives the owner's free. */
static void test_references(void **state) {
  (void)state;
  live_obj o;
  assert_int_equal(live_add(&o, LIVE_CTX), 0);
  live_obj *call = live_acquire(&o, LIVE_CTX);
  assert_ptr_equal(call, &o);
  live_ref(&o); /* e.g. a kernel's reference on its context */
  assert_true(live_retire(&o, LIVE_CTX));
  assert_false(live_release(&o)); /* the owner's */
  assert_null(live_acquire(&o, LIVE_CTX));
  assert_false(live_release(call));
  assert_true(live_release(&o)); /* the last */
  assert_null(live_acquire(NULL, LIVE_CTX));
  assert_false(live_retire(NULL, LIVE_CTX));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_retire),
      cmocka_unit_test(test_references),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
