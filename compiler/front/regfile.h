/* regfile.h: opening a file to read, only when it is a regular file.
 *
 * Every path spatc or libspat reads (a .pat file and its imports, a cache
 * entry, an npy tensor, an input array) goes through here, so that a FIFO,
 * a device, a socket or a directory is refused with a message instead of
 * blocking or misbehaving.  The check cannot race with the open: the path is
 * opened with O_NONBLOCK (opening a FIFO without a writer returns at once),
 * fstat on the descriptor says what was opened, and only a regular file is
 * kept, with O_NONBLOCK cleared for ordinary reads.
 *
 * In: a path.  Out: a descriptor or stream, or -1 / NULL with *why set to a
 * static message: strerror(errno) when the system refused, "Is a directory",
 * or "not a regular file (a FIFO)" and the like.  No printing, no state.
 * spat_open_regular (spat.h) is regfile_open for programs on spat.h (the
 * spatc driver's npy files and plugins).
 */
#ifndef SPAT_REGFILE_H
#define SPAT_REGFILE_H

#include <stdio.h>

int regfile_open(const char *path, const char **why);
FILE *regfile_fopen(const char *path, const char **why); /* "rb" */

#endif
