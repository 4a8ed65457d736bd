/* arith.h: the language's integer semantics (ar_), one copy for the
 * compiler's constant folding (compiler/front/sema.c) and the run-time plan
 * evaluator (runtime/plan.c).  The reference interpreter keeps its own copy
 * on purpose: it is the oracle these are tested against.  The LLVM mask
 * generator emits the same semantics as IR (compiler/backends/llvm/).
 *
 *  - Integers are int64; + - * and unary -, abs(INT64_MIN) and
 *    INT64_MIN / -1 overflow: AR_OVERFLOW, never wrap.
 *  - / is floor division, % the remainder with the divisor's sign
 *    (a % b == a - b * floor(a / b)); by zero: AR_DIVZERO.
 *  - random(r, seed) draws hash(seed, h, i, t) mod Lk, t < r, with the
 *    splitmix64-based hash below, in unsigned 64-bit arithmetic.
 */
#ifndef SPAT_ARITH_H
#define SPAT_ARITH_H

#include <stdint.h>

typedef enum { AR_OK = 0, AR_OVERFLOW = 1, AR_DIVZERO = 2, AR_SHIFT = 3 } ar_status;

/* Shifts (language version 2): a count outside [0, 63] is AR_SHIFT, a left
 * shift whose result does not shift back to a is AR_OVERFLOW; >> is
 * arithmetic. */
static inline ar_status ar_shl(int64_t a, int64_t n, int64_t *r) {
  if (n < 0 || n > 63) return AR_SHIFT;
  int64_t v = (int64_t)((uint64_t)a << n);
  if ((v >> n) != a) return AR_OVERFLOW;
  *r = v;
  return AR_OK;
}
static inline ar_status ar_shr(int64_t a, int64_t n, int64_t *r) {
  if (n < 0 || n > 63) return AR_SHIFT;
  *r = a >> n;
  return AR_OK;
}

static inline ar_status ar_add(int64_t a, int64_t b, int64_t *r) {
  return __builtin_add_overflow(a, b, r) ? AR_OVERFLOW : AR_OK;
}
static inline ar_status ar_sub(int64_t a, int64_t b, int64_t *r) {
  return __builtin_sub_overflow(a, b, r) ? AR_OVERFLOW : AR_OK;
}
static inline ar_status ar_mul(int64_t a, int64_t b, int64_t *r) {
  return __builtin_mul_overflow(a, b, r) ? AR_OVERFLOW : AR_OK;
}
static inline ar_status ar_neg(int64_t a, int64_t *r) {
  if (a == INT64_MIN) return AR_OVERFLOW;
  *r = -a;
  return AR_OK;
}
static inline ar_status ar_abs(int64_t a, int64_t *r) {
  if (a == INT64_MIN) return AR_OVERFLOW;
  *r = a < 0 ? -a : a;
  return AR_OK;
}
/* Floor division. */
static inline ar_status ar_div(int64_t a, int64_t b, int64_t *r) {
  if (b == 0) return AR_DIVZERO;
  if (b == -1) return ar_neg(a, r);
  int64_t q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0)) q--;
  *r = q;
  return AR_OK;
}
/* The remainder of floor division: the sign of b (0 <= r < b for b > 0). */
static inline ar_status ar_mod(int64_t a, int64_t b, int64_t *r) {
  if (b == 0) return AR_DIVZERO;
  if (b == -1) {
    *r = 0;
    return AR_OK;
  }
  int64_t m = a % b;
  if (m != 0 && (m < 0) != (b < 0)) m += b;
  *r = m;
  return AR_OK;
}

/* splitmix64's finaliser, and the hash of random(r, seed):
 *   hash(seed, h, i, t) = mix(seed * G ^ h * M1 ^ i * M2 ^ t),
 *   mix(x): z = x + G; z = (z ^ z >> 30) * M1; z = (z ^ z >> 27) * M2;
 *           z ^ z >> 31
 * with G = 0x9E3779B97F4A7C15, M1 = 0xBF58476D1CE4E5B9,
 * M2 = 0x94D049BB133111EB, all mod 2^64. */
static inline uint64_t ar_mix(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline uint64_t ar_hash(uint64_t seed, uint64_t h, uint64_t i,
                               uint64_t t) {
  return ar_mix(seed * 0x9E3779B97F4A7C15ull ^ h * 0xBF58476D1CE4E5B9ull ^
                i * 0x94D049BB133111EBull ^ t);
}

#endif
