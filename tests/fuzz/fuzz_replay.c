/* fuzz_replay.c: main() for a fuzz target built without libFuzzer (gcc, the
 * normal build): runs LLVMFuzzerTestOneInput over every file given, or every
 * file of every directory given, so that `make test` replays the seeds and
 * the regression inputs (tests/fuzz/regress/<target>/) without clang.
 * A failed invariant aborts (the target's FUZZ_CHECK); the driver prints each
 * file's name before running it, so the last name printed is the culprit.
 * Prints "N inputs" at the end.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int verbose;

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
    len += got;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "%s: out of memory\n", path);
    return 1;
  }
  if (verbose) fprintf(stderr, "replay %s\n", path);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  verbose = getenv("FUZZ_REPLAY_VERBOSE") != NULL;
  int n = 0, bad = 0;
  for (int k = 1; k < argc; k++) {
    struct stat st;
    if (stat(argv[k], &st) != 0) {
      fprintf(stderr, "%s: no such file or directory\n", argv[k]);
      bad++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad += run_file(argv[k]);
      n++;
      continue;
    }
    DIR *d = opendir(argv[k]);
    if (!d) {
      fprintf(stderr, "%s: cannot open directory\n", argv[k]);
      bad++;
      continue;
    }
    char **names = NULL;
    size_t nn = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      size_t l = strlen(argv[k]) + strlen(e->d_name) + 2;
      char *path = malloc(l);
      char **nv = realloc(names, sizeof *names * (nn + 1));
      if (!path || !nv) {
        free(path);
        if (nv) names = nv;
        bad++;
        break;
      }
      names = nv;
      snprintf(path, l, "%s/%s", argv[k], e->d_name);
      names[nn++] = path;
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t t = 0; t < nn; t++) {
      struct stat fs;
      if (stat(names[t], &fs) == 0 && S_ISREG(fs.st_mode)) {
        bad += run_file(names[t]);
        n++;
      }
      free(names[t]);
    }
    free(names);
  }
  printf("%d inputs, %d unreadable\n", n, bad);
  return bad ? 1 : 0;
}
