/* spatc_check.c: `spatc check FILE...`.  Loads and checks each file (with
 * its imports), then instantiates every pattern of it with its defaults, so
 * that folding errors (negative sizes, overflow) show too; a pattern with a
 * compile-time parameter without a default is only checked, not
 * instantiated.  Silent on
 * success; -v lists "file: signature" per pattern.  Every file is checked
 * even after one fails. */
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

/* A compile-time parameter without a default in a signature such as
 * "p(w, g = 1, runtime n, input doc: int[])": such a pattern is meant to be
 * called with arguments, so it cannot be instantiated alone. */
static bool needs_value(const char *sig) {
  const char *s = strchr(sig, '(');
  while (s && *s && *s != ')') {
    s++;
    while (*s == ' ') s++;
    size_t n = strcspn(s, ",)");
    bool has_default = memchr(s, '=', n) != NULL;
    bool ct = strncmp(s, "runtime ", 8) != 0 && strncmp(s, "input ", 6) != 0;
    if (n > 0 && ct && !has_default) return true;
    s += n;
  }
  return false;
}

static int check_one(const char *path, bool verbose) {
  spatc_pat sp;
  int rc = spatc_open(&sp, path);
  if (rc) {
    spatc_pat_free(&sp);
    return rc;
  }
  int n = fe_n_patterns(sp.m);
  for (int k = 0; k < n; k++) {
    const char *name = fe_pattern_name(sp.m, k);
    if (needs_value(fe_pattern_signature(sp.m, k))) {
      if (verbose) printf("%s: %s\n", path, fe_pattern_signature(sp.m, k));
      continue;
    }
    ir_program *p = fe_instantiate(sp.d, sp.m, name, NULL, 0);
    if (!p || diag_n_errors(sp.d) > 0) {
      if (diag_n_errors(sp.d) == 0)
        spatc_error("%s: pattern '%s' could not be instantiated", path, name);
      rc = SPATC_EUSER;
    } else if (verbose) {
      printf("%s: %s\n", path, fe_pattern_signature(sp.m, k));
    }
    const char *t = diag_text(sp.d);
    if (t && *t) fputs(t, stderr);
    diag_clear(sp.d);
  }
  if (verbose && n == 0) printf("%s: no patterns\n", path);
  spatc_pat_free(&sp);
  return rc;
}

int spatc_check_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_VERBOSE, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "[-v] FILE...",
           "Checks each .pat file and instantiates every pattern in it with "
           "its default\nparameters.  Prints nothing on success; with -v, "
           "one line per pattern with\nits signature.  Exit status 0 when "
           "every file is fine, 1 otherwise.",
           ok);
  bool verbose = false;
  const char *files[256];
  int n_files = 0;
  for (int id; (id = cli_next(&c)) != CLI_END;) {
    switch (id) {
    case CLI_ERR: return SPATC_EUSAGE;
    case OPT_HELP: cli_help(&c, stdout); return SPATC_OK;
    case OPT_VERBOSE: verbose = true; break;
    case CLI_POS:
      if (n_files == (int)(sizeof files / sizeof files[0]))
        return cli_usage_error(&c, "too many files (at most %d)", n_files);
      files[n_files++] = c.arg;
      break;
    default: return cli_usage_error(&c, "unexpected option '%s'", c.spelled);
    }
  }
  if (n_files == 0) return cli_usage_error(&c, "no input files");
  int rc = SPATC_OK;
  for (int k = 0; k < n_files; k++)
    if (check_one(files[k], verbose) != 0) rc = SPATC_EUSER;
  fflush(stdout);
  return rc;
}
