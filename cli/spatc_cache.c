/* spatc_cache.c: `spatc cache dir|clear|list`, the disk kernel cache that
 * `spatc run`, `spatc bench` and spat_compile(.cache = 1) share
 * (compiler/aot.h): where it is, emptying it, and what it holds (one line
 * per entry: file, size, pattern, D, CPU; damaged entries flagged). */
#include <stdio.h>
#include <string.h>

#include "aot.h"
#include "spatc.h"
#include "spatc_common.h"

/* The value after "word " on a line of the key text, up to the newline. */
static int key_field(const char *key, const char *word, char *out, size_t n) {
  size_t w = strlen(word);
  for (const char *l = key; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strncmp(l, word, w) == 0 && l[w] == ' ') {
      size_t len = strcspn(l + w + 1, "\n");
      snprintf(out, n, "%.*s", (int)len, l + w + 1);
      return 0;
    }
  snprintf(out, n, "?");
  return -1;
}

typedef struct list_state {
  int n_bad;
  size_t bytes;
} list_state;

static void print_entry(void *user, const aot_cache_entry *e) {
  list_state *s = user;
  s->bytes += e->bytes;
  if (!e->valid) {
    printf("%s  %8zu  damaged: %s\n", e->file, e->bytes, e->problem);
    s->n_bad++;
    return;
  }
  char pattern[256], cpu[64], dims[128];
  key_field(e->key, "pattern", pattern, sizeof pattern);
  size_t len = strlen(pattern); /* "name(w = 1) =": without " =" */
  if (len >= 2 && strcmp(pattern + len - 2, " =") == 0) pattern[len - 2] = '\0';
  key_field(e->key, "cpu", cpu, sizeof cpu);
  key_field(e->key, "D", dims, sizeof dims);
  printf("%s  %8zu  D %s  cpu %s  %s\n", e->file, e->bytes, dims, cpu,
         pattern);
}

int spatc_cache_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "dir|clear|list",
           "The disk kernel cache of JIT kernels (used by spatc run, spatc "
           "bench and\nspat_compile with .cache = 1): $XDG_CACHE_HOME/spatc, "
           "else ~/.cache/spatc.\n  dir    print its directory\n  clear  "
           "remove every entry\n  list   one line per entry: file, bytes, "
           "head dimension and layout,\n         CPU, pattern; damaged "
           "entries (rebuilt on next use) are flagged",
           ok);
  const char *action = NULL;
  for (int id; (id = cli_next(&c)) != CLI_END;) {
    if (id == CLI_ERR) return SPATC_EUSAGE;
    if (id == OPT_HELP) {
      cli_help(&c, stdout);
      return SPATC_OK;
    }
    if (id != CLI_POS) return cli_usage_error(&c, "unexpected option '%s'", c.spelled);
    if (action) return cli_usage_error(&c, "one action only ('%s', then '%s')", action, c.arg);
    action = c.arg;
  }
  if (!action) return cli_usage_error(&c, "no action: dir, clear or list");
  if (strcmp(action, "dir") && strcmp(action, "clear") && strcmp(action, "list"))
    return cli_usage_error(&c, "unknown action '%s' (expected dir, clear or list)", action);
  char dir[4096], err[1024];
  if (aot_cache_dir(dir, sizeof dir, err, sizeof err) != 0)
    return spatc_lib_error(err);
  if (strcmp(action, "dir") == 0) {
    printf("%s\n", dir);
    return SPATC_OK;
  }
  if (strcmp(action, "clear") == 0) {
    int n = aot_cache_clear(dir, err, sizeof err);
    if (n < 0) return spatc_lib_error(err);
    printf("removed %d entr%s from %s\n", n, n == 1 ? "y" : "ies", dir);
    return SPATC_OK;
  }
  list_state s = {0, 0};
  int n = aot_cache_list(dir, print_entry, &s, err, sizeof err);
  if (n < 0) return spatc_lib_error(err);
  printf("%d entr%s, %zu bytes, in %s%s\n", n, n == 1 ? "y" : "ies", s.bytes,
         dir, s.n_bad ? " (damaged entries are rebuilt on use)" : "");
  return SPATC_OK;
}
