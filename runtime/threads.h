/* threads.h: a persistent pthread pool with a parallel for over task indices.
 *
 * In: a task count and a function.  Out: fn(ctx, task, worker) called once
 * for every task in [0, n), spread over the pool's threads (the caller is
 * worker 0) with dynamic scheduling through an atomic counter, so uneven
 * tasks balance.  No global state: the pool is owned by whoever created it
 * (a kernel).  One th_for at a time per pool.
 */
#ifndef SPAT_THREADS_H
#define SPAT_THREADS_H

#include <stdint.h>

typedef struct th_pool th_pool;

typedef void (*th_fn)(void *ctx, int64_t task, int worker);

/* n_threads 0: every online core.  NULL on failure. */
th_pool *th_new(int n_threads);
int th_size(const th_pool *p);      /* threads including the caller */
int th_cores(void);                 /* online cores (>= 1) */
void th_for(th_pool *p, int64_t n_tasks, th_fn fn, void *ctx);
void th_free(th_pool *p);           /* joins the workers; NULL is fine */

#endif
