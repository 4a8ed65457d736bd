/* fileio.h: the file plumbing npy.c and image.c share.
 *
 * In: a path, and for writes a stream the caller filled.  Out: 0, or -1 with
 * "path: message" in the caller's buffer (errno's text where the system
 * said why), never overrunning it.  A write reports its first failure:
 * opening, any write (the caller's `ok` and the stream's error flag) or
 * closing.  Library-internal: no printing, no global state.
 */
#ifndef SPAT_FILEIO_H
#define SPAT_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* "path: message" into err (path NULL: "(no path)"); returns -1. */
int fio_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* fopen(path, mode), or NULL with "path: reason" in err.  To read ("r...")
 * only a regular file is opened (spat_open_regular), always binary: a FIFO or a
 * device is refused instead of blocking. */
FILE *fio_open(const char *path, const char *mode, char *err, size_t errlen);
/* Closes f after the caller's writes (ok: they all succeeded); 0, or -1 with
 * "path: write failed: reason" in err. */
int fio_close(FILE *f, bool ok, const char *path, char *err, size_t errlen);

#endif
