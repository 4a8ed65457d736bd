/* chunks.c: a parallel loop over numbered chunks that stops at the first
 * failure, for the driver's scans of a kernel's mask (explore.c counts
 * pairs, spatc_tensors.c hands out rows). */
#include "spatc_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct chunks_job {
  long long n;
  size_t scratch;
  spatc_chunk_fn fn;
  void *ctx;
  atomic_llong next;      /* next chunk to hand out */
  atomic_llong first_err; /* lowest failing chunk; n if none */
} chunks_job;

static void *chunks_worker(void *arg) {
  chunks_job *j = arg;
  void *buf = malloc(j->scratch ? j->scratch : 1);
  for (;;) {
    long long c = atomic_fetch_add(&j->next, 1);
    if (c >= j->n || c > atomic_load(&j->first_err)) break;
    if (buf && j->fn(j->ctx, c, buf)) continue;
    /* chunks after the lowest failure are not needed: its message is the one
     * reported, and the caller computes it again alone */
    long long seen = atomic_load(&j->first_err);
    while (c < seen && !atomic_compare_exchange_weak(&j->first_err, &seen, c)) {
    }
    break;
  }
  free(buf);
  return NULL;
}

long long spatc_chunks(long long n, int threads, size_t scratch,
                       spatc_chunk_fn fn, void *ctx) {
  chunks_job j = {.n = n, .scratch = scratch, .fn = fn, .ctx = ctx};
  atomic_init(&j.next, 0);
  atomic_init(&j.first_err, n);
  enum { MAX_THREADS = 256 };
  if (threads <= 0) threads = spatc_cores();
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if (threads > n) threads = (int)(n > 0 ? n : 1);
  pthread_t tid[MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tid[started], NULL, chunks_worker, &j) == 0) started++;
  chunks_worker(&j);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  return atomic_load(&j.first_err);
}
