/* spatc_explain.c: `spatc explain FILE [options]`, what the compiler makes of
 * a pattern: its IR, its tile plan, and for given sizes how the query tiles
 * visit key tiles (full / partial / empty) and how many keys each row sees.
 *
 *   --pattern NAME   -D NAME=INT   --runtime NAME=INT
 *   --lq N (required)   --lk N (default Lq)   --heads H (default 1)
 *   --bq N --bk N (tile sizes, default 64)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "frontend.h"
#include "spatc.h"

#define MAX_DEFS 64

/* "--name VALUE" or "--name=VALUE" (also "-D VALUE", "-DVALUE"). */
static const char *opt_value(int argc, char **argv, int *k, const char *name) {
  const char *a = argv[*k];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] == 0) {
    if (*k + 1 >= argc) return NULL;
    return argv[++*k];
  }
  if (name[1] != '-' && a[n]) return a + n; /* -DNAME=V */
  return NULL;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static void usage(FILE *f) {
  fputs("usage: spatc explain FILE [--pattern NAME] [-D NAME=INT]... "
        "[--runtime NAME=INT]...\n"
        "                     --lq N [--lk N] [--heads H] [--bq N] [--bk N]\n"
        "Prints the pattern's IR, its tile plan, and for the sizes given the "
        "key tiles\neach query tile visits (full, partial, empty) and the "
        "keys per row.\n", f);
}

int spatc_explain_main(int argc, char **argv) {
  const char *file = NULL, *name = NULL;
  const char *rt_args_[MAX_DEFS];
  int n_rt = 0, n_defs = 0;
  fe_define defs[MAX_DEFS];
  int64_t Lq = -1, Lk = -1, H = 1, bq = 64, bk = 64;
  arena *a = arena_new();
  diag *d = diag_new();
  int rc = 2;
  if (!a || !d) {
    fputs("spatc: error: out of memory\n", stderr);
    goto out;
  }
  for (int k = 1; k < argc; k++) {
    const char *v;
    int64_t *num = NULL, lo = 0;
    if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
      usage(stdout);
      rc = 0;
      goto out;
    } else if ((v = opt_value(argc, argv, &k, "--pattern"))) {
      name = v;
    } else if ((v = opt_value(argc, argv, &k, "-D")) ||
               (v = opt_value(argc, argv, &k, "--define"))) {
      if (n_defs == MAX_DEFS || fe_parse_define(v, a, &defs[n_defs]) != 0) {
        fprintf(stderr, "spatc explain: bad define '%s' (NAME=INT)\n", v);
        goto out;
      }
      n_defs++;
    } else if ((v = opt_value(argc, argv, &k, "--runtime"))) {
      if (n_rt == MAX_DEFS) goto out;
      rt_args_[n_rt++] = v;
    } else if ((v = opt_value(argc, argv, &k, "--lq"))) {
      num = &Lq;
    } else if ((v = opt_value(argc, argv, &k, "--lk"))) {
      num = &Lk;
    } else if ((v = opt_value(argc, argv, &k, "--len"))) {
      num = &Lq;
    } else if ((v = opt_value(argc, argv, &k, "--heads"))) {
      num = &H, lo = 1;
    } else if ((v = opt_value(argc, argv, &k, "--bq"))) {
      num = &bq, lo = 1;
    } else if ((v = opt_value(argc, argv, &k, "--bk"))) {
      num = &bk, lo = 1;
    } else if (argv[k][0] == '-' && argv[k][1]) {
      fprintf(stderr, "spatc explain: unknown option or missing value: %s\n",
              argv[k]);
      usage(stderr);
      goto out;
    } else if (!file) {
      file = argv[k];
    } else {
      fprintf(stderr, "spatc explain: more than one file: %s\n", argv[k]);
      goto out;
    }
    if (num && parse_i64(v, lo, (int64_t)1 << 40, num) != 0) {
      fprintf(stderr, "spatc explain: %s: bad number '%s'\n", argv[k - 1], v);
      goto out;
    }
  }
  if (!file || Lq < 0) {
    fputs("spatc explain: a FILE and --lq N are required\n", stderr);
    usage(stderr);
    goto out;
  }
  if (Lk < 0) Lk = Lq;
  rc = 1;
  fe_module *m = fe_load_file(d, a, file);
  ir_program *p = m ? fe_instantiate(d, m, name, defs, n_defs) : NULL;
  if (!p) {
    fputs(diag_text(d), stderr);
    goto out;
  }
  int64_t *rt = arena_alloc(a, sizeof *rt * (size_t)(p->n_runtime + 1));
  for (int r = 0; r < p->n_runtime; r++) {
    bool found = p->runtime[r].has_deflt;
    rt[r] = p->runtime[r].deflt;
    for (int t = 0; t < n_rt; t++) {
      size_t n = strlen(p->runtime[r].name);
      if (!strncmp(rt_args_[t], p->runtime[r].name, n) && rt_args_[t][n] == '=') {
        if (parse_i64(rt_args_[t] + n + 1, INT64_MIN, INT64_MAX, &rt[r]) != 0) {
          fprintf(stderr, "spatc explain: --runtime %s: bad value\n", rt_args_[t]);
          rc = 2;
          goto out;
        }
        found = true;
      }
    }
    if (!found) {
      fprintf(stderr, "spatc: error: runtime scalar '%s' has no default: give "
              "--runtime %s=N\n", p->runtime[r].name, p->runtime[r].name);
      goto out;
    }
  }
  char err[512] = "";
  if (an_explain(stdout, p, H, Lq, Lk, bq, bk, rt, err, sizeof err) != 0) {
    fprintf(stderr, "spatc: error: %s\n", err);
    goto out;
  }
  rc = 0;
out:
  diag_free(d);
  arena_free(a);
  return rc;
}
