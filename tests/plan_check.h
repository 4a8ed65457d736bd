/* plan_check.h: the plan memo's contract, shared by test_analyze and
 * test_plan_memo: plan_tiles with a memo (menv) gives the same spans and
 * errors as without one (env) for every query tile of bq rows, in the order
 * given.  Header-only, for the unit tests. */
#ifndef SPAT_TESTS_PLAN_CHECK_H
#define SPAT_TESTS_PLAN_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* Tiles order[0, nt) (order NULL: 0 .. nt - 1); false with the first
 * difference in msg. */
static inline bool plan_memo_agrees(const int64_t *plan, const plan_env *env,
                                    const plan_env *menv, int64_t bq,
                                    const int64_t *order, int64_t nt,
                                    char *msg, size_t msglen) {
  int64_t cap = plan_max_spans(plan);
  plan_span *a = malloc(sizeof *a * (size_t)cap), *b = malloc(sizeof *b * (size_t)cap);
  bool same = a && b;
  for (int64_t t = 0; same && t < nt; t++) {
    int64_t r0 = (order ? order[t] : t) * bq;
    int64_t r1 = r0 + bq < env->Lq ? r0 + bq : env->Lq;
    char e1[256] = "", e2[256] = "";
    int64_t n1 = plan_tiles(plan, env, r0, r1, a, cap, e1, sizeof e1);
    int64_t n2 = plan_tiles(plan, menv, r0, r1, b, cap, e2, sizeof e2);
    same = n1 == n2 && !strcmp(e1, e2) &&
           (n1 <= 0 || !memcmp(a, b, sizeof *a * (size_t)(n1 < cap ? n1 : cap)));
    if (!same)
      snprintf(msg, msglen, "h %lld rows [%lld, %lld): %lld spans (%s) without the "
               "memo, %lld (%s) with it", (long long)env->h, (long long)r0,
               (long long)r1, (long long)n1, e1, (long long)n2, e2);
  }
  if (!a || !b) snprintf(msg, msglen, "out of memory");
  free(a), free(b);
  return same;
}

#endif
