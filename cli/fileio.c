/* fileio.c: errors "path: message" and checked opening and closing of the
 * files npy.c and image.c read and write (fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "spat.h"

int fio_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
  if (err && errlen) {
    int n = snprintf(err, errlen, "%s: ", path ? path : "(no path)");
    if (n >= 0 && (size_t)n < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

FILE *fio_open(const char *path, const char *mode, char *err, size_t errlen) {
  if (mode[0] == 'r') { /* reads: regular files only, never a blocking open */
    const char *why = "";
    int fd = spat_open_regular(path, &why);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (fd >= 0 && !f) {
      why = strerror(errno);
      close(fd);
    }
    if (!f) fio_fail(err, errlen, path, "%s", why);
    return f;
  }
  FILE *f = fopen(path, mode);
  if (!f) fio_fail(err, errlen, path, "%s", strerror(errno));
  return f;
}

int fio_close(FILE *f, bool ok, const char *path, char *err, size_t errlen) {
  int e = errno; /* the failed write's, if any */
  ok = ok && !ferror(f);
  if (fclose(f) != 0 && ok) {
    ok = false;
    e = errno;
  }
  if (!ok) return fio_fail(err, errlen, path, "write failed: %s", strerror(e));
  return 0;
}
