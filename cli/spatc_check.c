/* spatc_check.c: `spatc check FILE...`.  Loads and checks each file (with
 * its imports), then instantiates every pattern of it with its defaults, so
 * that folding errors (negative sizes, overflow) show too; a pattern with a
 * compile-time parameter without a default is only checked, not
 * instantiated.  -D values apply to the patterns that have those
 * parameters (one no pattern has is an error).  Silent on
 * success; -v lists "file: signature" per pattern.  Every file is checked
 * even after one fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

/* The -D values that apply to pattern d, into out (marking them in used);
 * false when a compile-time parameter of it has no default and no -D: such a
 * pattern is meant to be called with arguments, so it cannot be
 * instantiated alone. */
static bool defs_for(const spat_pattern_decl *d, const spatc_sel *sel,
                     bool *used, spat_param *out, size_t *n_out) {
  bool complete = true;
  *n_out = 0;
  for (size_t q = 0; q < d->n_params; q++) {
    bool given = false;
    for (int k = 0; k < sel->n_defs; k++)
      if (strcmp(sel->defs[k].name, d->params[q].name) == 0) {
        out[(*n_out)++] = sel->defs[k];
        used[k] = given = true;
      }
    if (!given && !d->params[q].has_default) complete = false;
  }
  return complete;
}

static int check_one(const char *path, bool verbose, const spatc_sel *sel,
                     bool *used) {
  spatc_pat sp;
  int rc = spatc_open(&sp, path);
  spat_param *defs = rc ? NULL : spatc_xmalloc(sizeof *defs * (size_t)(sel->n_defs + 1));
  if (rc || !defs) {
    spatc_pat_free(&sp);
    return rc ? rc : SPATC_EUSER;
  }
  size_t n = spat_module_n_patterns(sp.m);
  for (size_t k = 0; k < n; k++) {
    spat_pattern_decl d;
    if (spat_module_pattern(sp.m, k, &d) != SPAT_OK) {
      rc = spatc_lib_error(spat_ctx_error(sp.ctx));
      continue;
    }
    size_t n_defs = 0;
    if (!defs_for(&d, sel, used, defs, &n_defs)) {
      if (verbose) printf("%s: %s\n", path, d.signature);
      continue;
    }
    spat_pattern *p = NULL;
    spat_status st = spat_module_select(sp.m, d.name, defs, n_defs, &p);
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
  free(defs);
  spatc_pat_free(&sp);
  return rc;
}

int spatc_check_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_VERBOSE, OPT_DEFINE, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "[-v] [-D NAME=INT]... FILE...",
           "Checks each .pat file and instantiates every pattern in it with "
           "its default\nparameters, or the -D values for the patterns that "
           "have those parameters.\nPrints nothing on success; with -v, one "
           "line per pattern with its signature.\nExit status 0 when every "
           "file is fine, 1 otherwise.",
           ok);
  bool verbose = false;
  const char *files[256];
  int n_files = 0;
  spatc_sel sel;
  sel_init(&sel);
  int rc = SPATC_OK;
  for (int id; rc == SPATC_OK && (id = cli_next(&c)) != CLI_END;) {
    switch (id) {
    case CLI_ERR: rc = SPATC_EUSAGE; break;
    case OPT_HELP: cli_help(&c, stdout); rc = SPATC_HELP; break;
    case OPT_VERBOSE: verbose = true; break;
    case OPT_DEFINE: if (sel_option(&sel, &c, id) < 0) rc = SPATC_EUSAGE; break;
    case CLI_POS:
      if (n_files == (int)(sizeof files / sizeof files[0]))
        rc = cli_usage_error(&c, "too many files (at most %d)", n_files);
      else
        files[n_files++] = c.arg;
      break;
    default: rc = cli_usage_error(&c, "unexpected option '%s'", c.spelled);
    }
  }
  if (rc == SPATC_OK && n_files == 0) rc = cli_usage_error(&c, "no input files");
  bool *used = rc == SPATC_OK ? calloc((size_t)sel.n_defs + 1, sizeof *used) : NULL;
  if (rc == SPATC_OK && !used) rc = spatc_error("out of memory");
  bool go = rc == SPATC_OK;  /* every file, even after one fails */
  for (int k = 0; go && k < n_files; k++)
    if (check_one(files[k], verbose, &sel, used) != 0) rc = SPATC_EUSER;
  for (int d = 0; rc == SPATC_OK && d < sel.n_defs; d++)
    if (!used[d]) {
      spatc_error("-D %s: no pattern checked has a compile-time parameter '%s'",
                  sel.defs[d].name, sel.defs[d].name);
      rc = SPATC_EUSER;
    }
  free(used);
  sel_free(&sel);
  fflush(stdout);
  return rc == SPATC_HELP ? SPATC_OK : rc;
}
