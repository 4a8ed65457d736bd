/* spatc_explain.c: `spatc explain FILE [options]`, what the compiler makes of
 * a pattern: its IR, its tile plan, and for given sizes how the query tiles
 * visit key tiles (full / partial / empty) and how many keys each row sees
 * (spat_pattern_explain).  Options through spatc_common: --pattern, -D,
 * --runtime, --lq/--lk/--len, --heads, --bq/--bk (tile sizes, default 64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

#define DEFAULT_TILE 64

typedef struct explain_opts {
  int64_t bq, bk;            /* tile rows, tile columns */
} explain_opts;

static int explain_option(void *ctx, const cli *c, int id) {
  explain_opts *o = ctx;
  switch (id) {
  case OPT_BQ: return cli_int(c, 1, 1 << 30, &o->bq) ? 0 : SPATC_EUSAGE;
  case OPT_BK: return cli_int(c, 1, 1 << 30, &o->bk) ? 0 : SPATC_EUSAGE;
  default: return -1;
  }
}

int spatc_explain_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME,
                                 OPT_LQ,      OPT_LK,     OPT_LEN,
                                 OPT_HEADS,   OPT_BQ,     OPT_BK,
                                 OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "FILE (--lq N [--lk N] | --len N) [options]",
           "Prints the pattern's IR, its tile plan, and for the sizes given "
           "the key tiles\neach query tile visits (full, partial, empty) and "
           "the keys per row.\nTiles are 64 x 64 unless --bq, --bk.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  explain_opts o = {DEFAULT_TILE, DEFAULT_TILE};
  spatc_args a;
  spatc_qkv sizes;
  memset(&a, 0, sizeof a);
  int rc = spatc_parse(&c, &sel, &sh, explain_option, &o);
  if (rc == SPATC_OK) rc = spatc_qkv_setup(&sizes, &a, &sh, &c, QKV_SIZES);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_pat pat;
  int64_t *rt = NULL;
  char *text = NULL;
  rc = spatc_load(&pat, &sel);
  size_t n_rt = rc == SPATC_OK ? spatc_n_runtime(&pat.info) : 0;
  if (rc == SPATC_OK) {
    rt = spatc_xmalloc(sizeof *rt * (n_rt + 1));
    rc = rt ? spatc_bind_runtime(rt, &pat, &sel) : SPATC_EUSER;
  }
  spat_explain_options eo = {a.H, a.Lq, a.Lk, o.bq, o.bk};
  spat_status st = SPAT_OK;
  if (rc == SPATC_OK &&
      (st = spat_pattern_explain(pat.p, &eo, rt, n_rt, &text)) != SPAT_OK)
    rc = spatc_api_error(pat.ctx, st);
  if (rc == SPATC_OK) fputs(text, stdout);
  fflush(stdout);
  free(text);
  free(rt);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
