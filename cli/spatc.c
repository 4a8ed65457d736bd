/* spatc.c: the driver's entry point.  `spatc COMMAND [options]` looks the
 * command up in one table and hands it the rest of the command line; each
 * command lives in its own spatc_<command>.c.  Exit status: 0 success,
 * 1 a bad pattern or input, 2 bad usage. */
#include <stdio.h>
#include <string.h>

#include "spat.h"
#include "spatc.h"
#include "spatc_common.h"

/* X(name, function, one-line summary) */
#define SPATC_COMMANDS(X)                                                  \
  X(check, spatc_check_main, "check .pat files and every pattern in them") \
  X(mask, spatc_mask_main, "draw a pattern's mask (ascii, npy, png, svg)") \
  X(stats, spatc_stats_main, "count a mask: nnz, density, keys per row")   \
  X(run, spatc_run_main, "run attention with a pattern on npy tensors")   \
  X(explain, spatc_explain_main, "show the IR and the tile plan of a pattern") \
  X(compile, spatc_compile_main, "compile a pattern ahead of time: .o and .h") \
  X(cache, spatc_cache_main, "the disk kernel cache: dir, clear, list")      \
  X(bench, spatc_bench_main, "time the JIT kernel against a C loop and OpenBLAS") \
  X(recall, spatc_recall_main, "the share of dense attention a pattern keeps on q, k") \
  X(compare, spatc_compare_main, "patterns side by side: density, recall, error, time") \
  X(tune, spatc_tune_main, "the cheapest parameters that keep a target recall")

typedef struct command {
  const char *name;
  int (*main)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
#define X(name, fn, summary) {#name, fn, summary},
    SPATC_COMMANDS(X)
#undef X
};

static void usage(FILE *f) {
  fputs("usage: spatc COMMAND [options] [FILE...]\n"
        "       spatc --help | --version | help COMMAND\n\n"
        "spatc compiles sparse attention patterns written in the .pat "
        "language.\n\ncommands:\n",
        f);
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
    fprintf(f, "  %-10s %s\n", commands[k].name, commands[k].summary);
  fputs("\nRun 'spatc COMMAND --help' for a command's options; "
        "see spatc(1).\n",
        f);
}

static const command *find(const char *name) {
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(commands[k].name, name) == 0) return &commands[k];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return SPATC_EUSAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return SPATC_OK;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("spatc %s\n", spat_version_string());
    return SPATC_OK;
  }
  if (strcmp(cmd, "help") == 0) {
    if (argc == 2) {
      usage(stdout);
      return SPATC_OK;
    }
    const command *c = find(argv[2]);
    if (!c) {
      fprintf(stderr, "spatc: error: unknown command '%s'\n", argv[2]);
      usage(stderr);
      return SPATC_EUSAGE;
    }
    char *help_argv[] = {argv[2], "--help", NULL};
    return c->main(2, help_argv);
  }
  const command *c = find(cmd);
  if (!c) {
    if (cmd[0] == '-')
      fprintf(stderr, "spatc: error: unknown option '%s'\n", cmd);
    else
      fprintf(stderr, "spatc: error: unknown command '%s'\n", cmd);
    usage(stderr);
    return SPATC_EUSAGE;
  }
  return c->main(argc - 1, argv + 1);
}
