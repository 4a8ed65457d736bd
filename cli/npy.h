/* npy.h: reading and writing NumPy .npy files (format 1.0/2.0/3.0).
 * float32 ('<f4'), float16 ('<f2'), uint16 ('<u2'), int32 ('<i4') and uint8
 * ('|u1'), C order only; anything
 * else (another dtype, Fortran order, a bad header, a truncated file, a shape
 * whose byte size overflows) is an error with a message, never a crash. */
#ifndef SPAT_NPY_H
#define SPAT_NPY_H

#include <stddef.h>
#include <stdint.h>

/* NPY_U16 ('<u2') also carries bfloat16 bit patterns (spatc --dtype bf16) */
typedef enum { NPY_F32, NPY_I32, NPY_U8, NPY_F16, NPY_U16 } npy_dtype;

typedef struct npy_array {
  npy_dtype dtype;
  int ndim;              /* 0..8 */
  int64_t shape[8];
  void *data;            /* malloc'd, C order; free with npy_free */
} npy_array;

/* 0 on success; -1 with "path: message" in err. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);
int npy_write(const char *path, npy_dtype dt, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen);
int64_t npy_count(const npy_array *a);   /* product of the shape */
void npy_free(npy_array *a);

#endif
