/* regfile.c: open(O_NONBLOCK) + fstat, regular files only (regfile.h). */
#include "regfile.h"

#include "spat.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why a file of this mode is not read. */
static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return strerror(EISDIR);
  if (S_ISFIFO(m)) return "not a regular file (a FIFO)";
  if (S_ISCHR(m)) return "not a regular file (a character device)";
  if (S_ISBLK(m)) return "not a regular file (a block device)";
  if (S_ISSOCK(m)) return "not a regular file (a socket)";
  return "not a regular file";
}

int regfile_open(const char *path, const char **why) {
  static const char *dummy;
  if (!why) why = &dummy;
  if (!path) {
    *why = strerror(EINVAL);
    return -1;
  }
  /* Refuse what is plainly not a file before opening it at all (opening a
   * device may have effects); the fstat below is what makes it safe. */
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    *why = kind_of(st.st_mode);
    return -1;
  }
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    *why = strerror(errno);
    return -1;
  }
  int fl = -1;
  if (fstat(fd, &st) != 0)
    *why = strerror(errno);
  else if (!S_ISREG(st.st_mode))
    *why = kind_of(st.st_mode);
  else if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    *why = strerror(errno), fl = -1;
  if (fl < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

FILE *regfile_fopen(const char *path, const char **why) {
  int fd = regfile_open(path, why);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    if (why) *why = strerror(errno);
    close(fd);
  }
  return f;
}

int spat_open_regular(const char *path, const char **why) {
  return regfile_open(path, why);
}
