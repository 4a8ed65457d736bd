/* kernel_score.c: the run-time errors of `with score E` for the compiled
 * drivers (kr_score_error, kernel_rt.h).
 *
 * The score tiles only flag that an allowed pair read a float input out of
 * range.  The interpreter reports the first failing pair in row order
 * (b, h, row, then key), so after a flag this walks the rows in that order
 * with the forward's masks (kr_masker: the same top-k selections) and runs
 * spat_serrat, E's scalar error check, on every allowed key until one
 * fails.  Only on the error path: O(allowed pairs up to the error).
 * (The mask's own errors are found before any tile runs, kr_check_errors,
 * so they take precedence even when a score error is in an earlier row.)
 */
#include <stdlib.h>

#include "kernel_rt.h"

static inline int64_t pos_of(const rt_args *a, int64_t r) {
  return a->Lq <= a->Lk ? r + (a->Lk - a->Lq) : r;
}

/* The first failing key of row r (code, det), or 0; -1: a mask failed. */
static int32_t row_error(const kr_kernel *K, const rt_args *a, const kr_env *env,
                         int64_t r, int64_t det[2]) {
  int64_t i = pos_of(a, r);
  for (int64_t j0 = 0; j0 < a->Lk; j0 += 64) {
    int64_t nc = a->Lk - j0 < 64 ? a->Lk - j0 : 64;
    uint64_t w = 0;
    if (K->mask[0](env, i, j0, nc, a->Lq, a->Lk, &w)) return -1;
    for (; w; w &= w - 1) {
      int32_t code = K->serrat(env, i, j0 + __builtin_ctzll(w), det);
      if (code) return code;
    }
  }
  return 0;
}

rt_status kr_score_error(kr_kernel *k, const rt_args *a, char *err,
                         size_t errlen) {
  kr_masker *m = kr_masker_new(k, a);
  if (!m) return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  int32_t code = 0;
  int64_t det[2] = {0, 0};
  for (int64_t b = 0; b < a->B && !code; b++)
    for (int64_t h = 0; h < a->H && !code; h++)
      for (int64_t r0 = 0; r0 < a->Lq && !code; r0 += KR_BQ) {
        int64_t r1 = r0 + KR_BQ < a->Lq ? r0 + KR_BQ : a->Lq;
        kr_env env;
        if (!kr_masker_rows(m, b, h, r0, r1, k->n_topk > 0, &env)) code = -2;
        for (int64_t r = r0; r < r1 && !code; r++) code = row_error(k, a, &env, r, det);
      }
  kr_masker_free(m);
  if (code == -2) return rt_errf(err, errlen, RT_ENOMEM, "out of memory (top-k selection)");
  if (code <= 0)
    return rt_errf(err, errlen, RT_EINTERNAL,
                   "internal error: a score tile flagged an input index that no "
                   "allowed pair reads out of range");
  if (err && errlen) kr_error_text_det(k, code, det, err, errlen);
  return code <= k->n_errors ? RT_ERANGE : RT_EINTERNAL;
}
