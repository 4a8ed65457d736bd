/* spatc_check.c: `spatc check FILE...`.  Loads and checks each file (with
 * its imports), then instantiates every pattern of it with its defaults, so
 * that folding errors (negative sizes, overflow) show too; a pattern with a
 * compile-time parameter without a default is only checked, not
 * instantiated.  Silent on
 * success; -v lists "file: signature" per pattern.  Every file is checked
 * even after one fails. */
#include <stdio.h>

#include "spatc.h"
#include "spatc_common.h"

static int check_one(const char *path, bool verbose) {
  spatc_pat sp;
  int rc = spatc_open(&sp, path);
  if (rc) {
    spatc_pat_free(&sp);
    return rc;
  }
  size_t n = spat_module_n_patterns(sp.m);
  for (size_t k = 0; k < n; k++) {
    spat_pattern_decl d;
    if (spat_module_pattern(sp.m, k, &d) != SPAT_OK) {
      rc = spatc_lib_error(spat_ctx_error(sp.ctx));
      continue;
    }
    /* a pattern with a compile-time parameter without a default is meant
     * to be called with arguments, so it cannot be instantiated alone */
    if (d.needs_params) {
      if (verbose) printf("%s: %s\n", path, d.signature);
      continue;
    }
    spat_pattern *p = NULL;
    spat_status st = spat_module_select(sp.m, d.name, NULL, 0, &p);
    if (st != SPAT_OK) {
      if (st != SPAT_EPARSE || !*spat_ctx_last_diagnostics(sp.ctx))
        spatc_error("%s: pattern '%s' could not be instantiated: %s", path,
                    d.name, spat_ctx_error(sp.ctx));
      rc = SPATC_EUSER;
    } else if (verbose) {
      printf("%s: %s\n", path, d.signature);
    }
    spat_pattern_free(p);
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
