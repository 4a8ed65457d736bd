/* spatc_cache.c: `spatc cache dir|clear|list`, the disk kernel cache that
 * `spatc run`, `spatc bench` and spat_compile(.cache = 1) share
 * (spat_cache_*): where it is, emptying it, and what it holds (one line
 * per entry: file, size, pattern, D, CPU; damaged entries flagged). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

typedef struct list_state {
  int n_bad;
  size_t bytes;
} list_state;

static void print_entry(void *user, const spat_cache_entry *e) {
  list_state *s = user;
  s->bytes += e->bytes;
  if (!e->valid) {
    printf("%s  %8zu  damaged: %s\n", e->file, e->bytes, e->problem);
    s->n_bad++;
    return;
  }
  printf("%s  %8zu  D %" PRId64 " layout %d threads %d  cpu %s  %s\n",
         e->file, e->bytes, e->D, e->layout, e->threads, e->cpu, e->pattern);
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
  char dir[4096];
  spat_ctx *ctx = spat_ctx_new();
  if (!ctx) return spatc_error("out of memory");
  spat_status st = spat_cache_dir(ctx, dir, sizeof dir);
  size_t n = 0;
  list_state s = {0, 0};
  if (st == SPAT_OK && strcmp(action, "dir") == 0) {
    printf("%s\n", dir);
  } else if (st == SPAT_OK && strcmp(action, "clear") == 0) {
    st = spat_cache_clear(ctx, &n);
    if (st == SPAT_OK)
      printf("removed %zu entr%s from %s\n", n, n == 1 ? "y" : "ies", dir);
  } else if (st == SPAT_OK) {
    st = spat_cache_list(ctx, print_entry, &s, &n);
    if (st == SPAT_OK)
      printf("%zu entr%s, %zu bytes, in %s%s\n", n, n == 1 ? "y" : "ies",
             s.bytes, dir,
             s.n_bad ? " (damaged entries are rebuilt on use)" : "");
  }
  int rc = st == SPAT_OK ? SPATC_OK : spatc_lib_error(spat_ctx_error(ctx));
  spat_ctx_free(ctx);
  return rc;
}
