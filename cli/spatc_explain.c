/* spatc_explain.c: `spatc explain FILE [options]`, what the compiler makes of
 * a pattern: its IR, its tile plan, and for given sizes how the query tiles
 * visit key tiles (full / partial / empty) and how many keys each row sees
 * (an_explain).  Options through spatc_common: --pattern, -D, --runtime,
 * --lq/--lk/--len, --heads, --bq/--bk (tile sizes, default 64). */
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
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
  rt_args a;
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
  rc = spatc_load(&pat, &sel);
  if (rc == SPATC_OK) {
    rt = spatc_xmalloc(sizeof *rt * ((size_t)pat.p->n_runtime + 1));
    rc = rt ? spatc_bind_runtime(rt, pat.p, &sel) : SPATC_EUSER;
  }
  char err[512] = "";
  if (rc == SPATC_OK && an_explain(stdout, pat.p, a.H, a.Lq, a.Lk, o.bq, o.bk,
                                   rt, err, sizeof err) != 0)
    rc = spatc_lib_error(err);
  fflush(stdout);
  free(rt);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
