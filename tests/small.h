/* small.h: SPAT_TEST_SMALL=1 (set by `make valgrind`) runs the heavy suites
 * with fewer random cases and smaller shapes, so that a run under valgrind
 * takes minutes, not hours.  Every test still runs, and every library
 * pattern; only the count of random cases and the sequence lengths shrink.
 * SMALL(full, small) picks the size. */
#ifndef SPAT_TESTS_SMALL_H
#define SPAT_TESTS_SMALL_H

#include <stdlib.h>
#include <string.h>

static inline int test_small(void) {
  const char *s = getenv("SPAT_TEST_SMALL");
  return s != NULL && s[0] != '\0' && strcmp(s, "0") != 0;
}

#define SMALL(full, small) (test_small() ? (small) : (full))

#endif
