/* spatc.h: the spatc driver's subcommands, one file each (compiler/spatc_*.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the exit status: 0 success, 1 user error (bad
 * pattern, bad input), 2 bad usage. */
#ifndef SPAT_SPATC_H
#define SPAT_SPATC_H

int spatc_check_main(int argc, char **argv);
int spatc_mask_main(int argc, char **argv);
int spatc_stats_main(int argc, char **argv);
int spatc_run_main(int argc, char **argv);
int spatc_explain_main(int argc, char **argv);   /* spatc_explain.c */
int spatc_bench_main(int argc, char **argv);     /* spatc_bench.c */
int spatc_compile_main(int argc, char **argv);   /* spatc_compile.c */
int spatc_cache_main(int argc, char **argv);     /* spatc_cache.c */
int spatc_recall_main(int argc, char **argv);    /* spatc_recall.c */
int spatc_compare_main(int argc, char **argv);   /* spatc_compare.c */
int spatc_tune_main(int argc, char **argv);      /* spatc_tune.c */

#endif
