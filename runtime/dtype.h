/* dtype.h: the element types of q, k, v and o (rt_dtype) and their
 * conversions to and from float32, shared by the driver, the interpreter
 * and the AOT entry.
 *
 *   RT_F32   IEEE binary32
 *   RT_BF16  bfloat16: the high 16 bits of a binary32 (8 bits of
 *            significand counting the implicit one, unit roundoff 2^-8)
 *   RT_F16   IEEE binary16 (11 bits of significand, unit roundoff 2^-11,
 *            largest finite 65504)
 *
 * Widening is exact; narrowing rounds to nearest even (NaN stays NaN,
 * overflow gives infinity), as vcvtneps2bf16 and vcvtps2ph do.  The values
 * match spat_dtype (include/spat.h).
 */
#ifndef SPAT_DTYPE_H
#define SPAT_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum rt_dtype { RT_F32 = 0, RT_BF16 = 1, RT_F16 = 2, RT_N_DTYPES } rt_dtype;

static inline size_t rt_dtype_size(int t) { return t == RT_F32 ? 4 : 2; }

static inline float rt_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t rt_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint16_t r = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
  /* NaN: quieted, never rounded into an infinity (branch-free: vectorises) */
  return (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40) : r;
}

static inline float rt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u,
           m = h & 0x3ffu, u;
  if (e == 0) { /* zero or subnormal: m 2^-24, exact in float */
    float f = (float)m * 0x1p-24f;
    memcpy(&u, &f, 4);
    u |= sign;
  } else if (e == 31) {
    u = sign | 0x7f800000u | (m << 13);
  } else {
    u = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t rt_f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
  if (u >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 */
  if (u < 0x38800000u) { /* below 2^-14: a multiple of 2^-24, to nearest even */
    float a;
    memcpy(&a, &u, 4);
    a *= 0x1p24f; /* exact */
    uint32_t n = (uint32_t)a;
    float rest = a - (float)n;
    if (rest > 0.5f || (rest == 0.5f && (n & 1))) n++;
    return (uint16_t)(sign | n);
  }
  u -= 112u << 23;
  u += 0xfffu + ((u >> 13) & 1u);
  return (uint16_t)(sign | (u >> 13));
}

/* Element x of a tensor of type t at p, as float. */
static inline float rt_load(const void *p, int64_t x, int t) {
  if (t == RT_BF16) return rt_bf16_to_f32(((const uint16_t *)p)[x]);
  if (t == RT_F16) return rt_f16_to_f32(((const uint16_t *)p)[x]);
  return ((const float *)p)[x];
}

static inline void rt_store(void *p, int64_t x, int t, float f) {
  if (t == RT_BF16)
    ((uint16_t *)p)[x] = rt_f32_to_bf16(f);
  else if (t == RT_F16)
    ((uint16_t *)p)[x] = rt_f32_to_f16(f);
  else
    ((float *)p)[x] = f;
}

/* Is element x non-finite (NaN or infinity)? */
static inline int rt_nonfinite(const void *p, int64_t x, int t) {
  if (t == RT_F32) {
    uint32_t u;
    memcpy(&u, (const char *)p + 4 * x, 4);
    return (u & 0x7f800000u) == 0x7f800000u;
  }
  uint16_t h = ((const uint16_t *)p)[x];
  return t == RT_BF16 ? (h & 0x7f80u) == 0x7f80u : (h & 0x7c00u) == 0x7c00u;
}

#endif
