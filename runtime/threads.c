/* threads.c: the pool of threads.h.
 *
 * Workers sleep on a condition variable until the generation counter moves,
 * then claim task indices from an atomic counter until it passes n; the
 * caller claims tasks too and then waits until every worker has left the
 * job, so th_for returns only when all tasks are done.
 */
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct worker {
  th_pool *pool;
  int id;
  pthread_t tid;
} worker;

struct th_pool {
  int n;                     /* threads including the caller */
  worker *w;                 /* n - 1 workers */
  pthread_mutex_t mu;
  pthread_cond_t wake;       /* workers: a new job or shutdown */
  pthread_cond_t idle;       /* caller: the last worker left the job */
  uint64_t gen;              /* job generation, under mu */
  int busy;                  /* workers still in the current job, under mu */
  int stop;
  th_fn fn;                  /* the current job */
  void *ctx;
  int64_t n_tasks;
  _Atomic int64_t next;      /* next unclaimed task */
};

int th_cores(void) {
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : (int)c;
}

static void drain(th_pool *p, int id) {
  for (;;) {
    int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (t >= p->n_tasks) break;
    p->fn(p->ctx, t, id);
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  th_pool *p = w->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->gen == seen) pthread_cond_wait(&p->wake, &p->mu);
    if (p->stop) break;
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    drain(p, w->id);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0) pthread_cond_signal(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

th_pool *th_new(int n_threads) {
  th_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = n_threads > 0 ? n_threads : th_cores();
  if (p->n > 1024) p->n = 1024;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->idle, NULL);
  p->w = calloc((size_t)p->n, sizeof *p->w);
  if (!p->w) {
    th_free(p);
    return NULL;
  }
  int started = 1;
  for (int k = 1; k < p->n; k++) {
    p->w[k].pool = p;
    p->w[k].id = k;
    if (pthread_create(&p->w[k].tid, NULL, worker_main, &p->w[k]) != 0) break;
    started++;
  }
  p->n = started;  /* fewer threads than asked rather than failure */
  return p;
}

int th_size(const th_pool *p) { return p->n; }

void th_for(th_pool *p, int64_t n_tasks, th_fn fn, void *ctx) {
  if (n_tasks <= 0) return;
  if (p->n == 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n_tasks;
  atomic_store(&p->next, 0);
  p->busy = p->n - 1;
  p->gen++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->busy > 0) pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void th_free(th_pool *p) {
  if (!p) return;
  if (p->w) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int k = 1; k < p->n; k++) pthread_join(p->w[k].tid, NULL);
    free(p->w);
  }
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->idle);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
