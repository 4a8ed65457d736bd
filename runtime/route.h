/* route.h: route(C) in the compiled kernels (language version 2).
 *
 * route(C) allows (i, j) when c(q_i) == c(k_j), c(x) the smallest t
 * maximising dot(x, C[h, t]) in double (compiler/ir/ir.h).  The kernel
 * drivers (kernel_rt.c, kernel_bwd.c, kernel_decode.c) compute every query
 * row's and key's cluster once per run, per (batch, head), before any tile
 * (kr_route_new), and hand the mask code the ids of the (b, h) at hand
 * through kr_env (kr_route_env): a mask word is then one compare per key.
 * When the root is route(C) alone the forward runs it as an equality join
 * on the ids (kr_route_groups, plan.h's plan_groups): its cost follows the
 * allowed pairs whatever the order of the clusters.
 *
 * The ids equal the interpreter's exactly: dots in float32 with a bound on
 * their error, and the double dot (the interpreter's, summed in the same
 * order) for the centroids too close to call, or for every centroid of a
 * row or head with a NaN or infinity (the interpreter's rule: a NaN first
 * dot makes the id 0, later NaN dots never win).
 */
#ifndef SPAT_ROUTE_H
#define SPAT_ROUTE_H

#include <stdint.h>

#include "kernel_rt.h"
#include "plan.h"
#include "threads.h"

typedef struct kr_route kr_route;

/* The ids of the run (a checked by kr_check_args, errors already reported
 * by kr_check_errors), computed on pool; NULL with *st = RT_OK when the
 * kernel's pattern has no route (or C has no centroids: route is then an
 * error wherever evaluated), NULL with RT_ENOMEM when out of memory. */
kr_route *kr_route_new(const kr_kernel *k, const rt_args *a, th_pool *pool,
                       rt_status *st);
void kr_route_free(kr_route *r);
/* env->route_q and env->route_k for (b, h); nothing when r is NULL. */
void kr_route_env(const kr_route *r, int64_t b, int64_t h, kr_env *env);
/* Nonzero when the root is route(C) alone (run it as a join). */
int kr_route_alone(const kr_route *r);
/* The rows and keys of (b, h) grouped by cluster (as plan_join groups
 * them): 1, or -1 when out of memory. */
int kr_route_groups(const kr_route *r, int64_t b, int64_t h, plan_groups *g);

#endif
