/* spatc_stats.c: `spatc stats`, counts over a pattern's mask for given
 * sizes, per head and in total:
 *   nnz      allowed (query, key) pairs
 *   density  nnz / (Lq * Lk)
 *   min median max   allowed keys per query row (median: the mean of the
 *            two middle rows when their number is even)
 *   empty    rows with no allowed key
 *   flops    4 * nnz * D (QK^T and PV, a multiply and an add each)
 * Rows come from the reference interpreter, so this is O(H * Lq * Lk),
 * spread over --threads workers. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "spatc.h"
#include "spatc_common.h"

typedef struct counts {
  int64_t nnz, rows, empty, min, max;
  int64_t *hist;   /* hist[c]: rows with c allowed keys, c in [0, Lk] */
} counts;

static double median(const counts *c, int64_t Lk) {
  if (c->rows == 0) return 0;
  int64_t lo = (c->rows - 1) / 2, hi = c->rows / 2;   /* 0-based ranks */
  int64_t seen = 0, vlo = -1, vhi = -1;
  for (int64_t v = 0; v <= Lk && vhi < 0; v++) {
    seen += c->hist[v];
    if (vlo < 0 && seen > lo) vlo = v;
    if (seen > hi) vhi = v;
  }
  return ((double)vlo + (double)vhi) / 2.0;
}

static void add_row(counts *c, int64_t n) {
  c->nnz += n;
  c->empty += n == 0;
  c->min = c->rows == 0 || n < c->min ? n : c->min;
  c->max = c->rows == 0 || n > c->max ? n : c->max;
  c->hist[n]++;
  c->rows++;
}

typedef struct row_counts {
  int32_t *n;      /* allowed keys of each (head, row), heads from h0 */
  int64_t h0, Lq, Lk;
} row_counts;

static void count_rows(void *ctx, int64_t h, int64_t r0, int64_t n,
                       const uint8_t *rows) {
  row_counts *rc = ctx;
  for (int64_t t = 0; t < n; t++) {
    int32_t c = 0;
    for (int64_t j = 0; j < rc->Lk; j++) c += rows[t * rc->Lk + j] != 0;
    rc->n[(h - rc->h0) * rc->Lq + r0 + t] = c;
  }
}

static void print_line(const char *label, const counts *c, int64_t Lq,
                       int64_t Lk, int64_t D) {
  double density = (double)c->nnz / ((double)Lq * (double)Lk);
  double flops = 4.0 * (double)c->nnz * (double)D;
  printf("%-6s %14" PRId64 " %10.6f %8" PRId64 " %8.1f %8" PRId64 " %8" PRId64
         " %16.0f\n",
         label, c->nnz, density, c->min, median(c, Lk), c->max, c->empty,
         flops);
}

static int stats_option(void *ctx, const cli *c, int id) {
  if (id != OPT_THREADS) return -1;
  return cli_int(c, 0, 256, ctx) ? 0 : SPATC_EUSAGE;
}

int spatc_stats_main(int argc, char **argv) {
  static const spatc_opt ok[] = {
      OPT_PATTERN, OPT_DEFINE, OPT_RUNTIME, OPT_INPUT, OPT_PLUGIN, OPT_LQ,
      OPT_LK, OPT_LEN, OPT_HEADS, OPT_KVHEADS, OPT_HEAD, OPT_SEED, OPT_DIM,
      OPT_Q, OPT_K, OPT_LAYOUT, OPT_THREADS, OPT_NONE};
  cli c;
  cli_init(&c, argc, argv, "FILE (--lq N [--lk N] | --len N) [options]",
           "Counts the mask of a pattern per head and in total: allowed "
           "pairs (nnz),\ndensity nnz / (Lq * Lk), allowed keys per query "
           "row (min, median, max),\nempty rows, and the FLOPs of attention "
           "with head dimension D, 4 * nnz * D.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  int64_t threads = 0;
  int rc = spatc_parse(&c, &sel, &sh, stats_option, &threads);
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_rows r;
  rc = spatc_rows_open(&r, &sel, &sh, &c);
  int64_t Lq = r.a.Lq, Lk = r.a.Lk, D = r.a.D, nh = r.h1 - r.h0;
  row_counts rcnt = {NULL, r.h0, Lq, Lk};
  counts head = {0}, total = {0};
  if (rc == SPATC_OK) {
    rcnt.n = calloc((size_t)(nh * Lq), sizeof *rcnt.n);
    head.hist = calloc((size_t)Lk + 1, sizeof(int64_t));
    total.hist = calloc((size_t)Lk + 1, sizeof(int64_t));
    if (!rcnt.n || !head.hist || !total.hist) rc = spatc_error("out of memory");
  }
  if (rc == SPATC_OK) rc = spatc_rows_each(&r, (int)threads, count_rows, &rcnt);
  if (rc == SPATC_OK) {
    printf("pattern %s: H = %" PRId64 ", Lq = %" PRId64 ", Lk = %" PRId64
           ", D = %" PRId64 "\n",
           spatc_pattern_title(&r.pat, &r.bound), r.a.H, Lq, Lk, D);
    printf("%-6s %14s %10s %8s %8s %8s %8s %16s\n", "head", "nnz", "density",
           "min", "median", "max", "empty", "flops");
    for (int64_t h = r.h0; h < r.h1; h++) {
      memset(head.hist, 0, ((size_t)Lk + 1) * sizeof(int64_t));
      head.nnz = head.rows = head.empty = head.min = head.max = 0;
      for (int64_t i = 0; i < Lq; i++) {
        int64_t n = rcnt.n[(h - r.h0) * Lq + i];
        add_row(&head, n);
        add_row(&total, n);
      }
      char label[32];
      snprintf(label, sizeof label, "%" PRId64, h);
      print_line(label, &head, Lq, Lk, D);
    }
    print_line("total", &total, Lq * nh, Lk, D);
  }
  free(rcnt.n);
  fflush(stdout);
  free(head.hist);
  free(total.hist);
  spatc_rows_close(&r);
  sel_free(&sel);
  return rc;
}
