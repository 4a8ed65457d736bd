/* fuzz_npy.c: libFuzzer target over the .npy reader (runtime/npy.c).
 *
 * The input is written to a file of the sandbox directory and read with
 * npy_read.  Invariants:
 *  - failure: -1 with a message "path: ..." and nothing allocated;
 *  - success: dtype known, 0 <= ndim <= 8, every dimension >= 0, data
 *    non-NULL, and the file is exactly the header plus count * item bytes
 *    (its data part is the input's last bytes);
 *  - npy_write of what was read, read back, gives the same dtype, shape and
 *    bytes (round trip).
 * ASan/UBSan catch out-of-bounds reads and overflow; libFuzzer's
 * -malloc_limit_mb catches an allocation the file's size does not justify.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "npy.h"

static char in_path[400], out_path[400];
static struct {
  long inputs, accepted, bytes;
} stats;

static void print_stats(void) {
  fprintf(stderr, "fuzz_npy: %ld inputs, %ld accepted (%ld data bytes)\n",
          stats.inputs, stats.accepted, stats.bytes);
}

static void remove_files(void) {
  unlink(in_path);
  unlink(out_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_sandbox_init();
  snprintf(in_path, sizeof in_path, "%s/in.npy", fuzz_sandbox);
  snprintf(out_path, sizeof out_path, "%s/out.npy", fuzz_sandbox);
  atexit(remove_files); /* runs before the sandbox's own removal */
  if (getenv("FUZZ_STATS")) atexit(print_stats);
  return 0;
}

static size_t item_size(npy_dtype dt) {
  return dt == NPY_U8 ? 1 : dt == NPY_F16 || dt == NPY_U16 ? 2 : 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stats.inputs++;
  FILE *f = fopen(in_path, "wb");
  FUZZ_CHECK(f != NULL, "cannot write %s", in_path);
  FUZZ_CHECK(fwrite(data, 1, size, f) == size && fclose(f) == 0, "write %s",
             in_path);
  npy_array a;
  char err[512] = "";
  if (npy_read(in_path, &a, err, sizeof err) != 0) {
    size_t pl = strlen(in_path);
    FUZZ_CHECK(strncmp(err, in_path, pl) == 0 && err[pl] == ':' && err[pl + 2],
               "failure message '%s'", err);
    FUZZ_CHECK(a.data == NULL, "data left allocated after a failure");
    return 0;
  }
  stats.accepted++;
  FUZZ_CHECK(a.dtype == NPY_F32 || a.dtype == NPY_I32 || a.dtype == NPY_U8 ||
                 a.dtype == NPY_F16 || a.dtype == NPY_U16,
             "dtype %d", (int)a.dtype);
  FUZZ_CHECK(a.ndim >= 0 && a.ndim <= 8, "ndim %d", a.ndim);
  int64_t count = 1;
  for (int d = 0; d < a.ndim; d++) {
    FUZZ_CHECK(a.shape[d] >= 0, "dimension %d is %lld", d, (long long)a.shape[d]);
    FUZZ_CHECK(!__builtin_mul_overflow(count, a.shape[d], &count), "count overflows");
  }
  FUZZ_CHECK(count == npy_count(&a), "npy_count %lld, shape gives %lld",
             (long long)npy_count(&a), (long long)count);
  FUZZ_CHECK(a.data != NULL, "accepted without data");
  size_t bytes = (size_t)count * item_size(a.dtype);
  stats.bytes += (long)bytes;
  FUZZ_CHECK(bytes + 10 <= size, "%zu data bytes from a %zu-byte file", bytes, size);
  FUZZ_CHECK(memcmp(a.data, data + size - bytes, bytes) == 0,
             "the data is not the file's last %zu bytes", bytes);

  FUZZ_CHECK(npy_write(out_path, a.dtype, a.ndim, a.shape, a.data, err,
                       sizeof err) == 0, "npy_write: %s", err);
  npy_array b;
  FUZZ_CHECK(npy_read(out_path, &b, err, sizeof err) == 0,
             "reading back what npy_write wrote: %s", err);
  FUZZ_CHECK(b.dtype == a.dtype && b.ndim == a.ndim &&
                 memcmp(b.shape, a.shape, sizeof(int64_t) * (size_t)a.ndim) == 0 &&
                 memcmp(b.data, a.data, bytes) == 0,
             "round trip changed the array");
  npy_free(&b);
  npy_free(&a);
  return 0;
}
