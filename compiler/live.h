/* live.h: the registry of the public API's live objects (contexts, modules,
 * patterns, kernels) and their reference counts.
 *
 * In: the objects api.c and api_query.c make (contexts, modules,
 * patterns, kernels), each starting with a live_obj header.  Out:
 * for any pointer a caller hands to spat.h, whether it is a live object of
 * the expected kind, found by its address alone (a freed or foreign pointer
 * is never read), and a counted reference that keeps the object alive while
 * the call runs.
 *
 *   live_add      registers a new object (one reference: its owner's)
 *   live_acquire  a reference to a registered object of that kind, or NULL
 *   live_retire   unregisters it (the owner's free); later acquires fail
 *   live_release  drops a reference; true when it was the last one (the
 *                 caller destroys the object then)
 *
 * So a second spat_*_free of one pointer finds nothing and touches no
 * memory, and an object freed while another thread still uses it is
 * destroyed when that use ends.  Thread-safe (one process-wide rwlock:
 * lookups share it).
 */
#ifndef SPAT_LIVE_H
#define SPAT_LIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum live_kind {
  LIVE_CTX = 0x5c7c7a01,
  LIVE_PATTERN = 0x5c7c7a02,
  LIVE_KERNEL = 0x5c7c7a03,
  LIVE_MODULE = 0x5c7c7a04,
} live_kind;

typedef struct live_obj {
  live_kind kind;
  atomic_int refs;
} live_obj;

/* 0, or -1 when out of memory (o is then not registered). */
int live_add(live_obj *o, live_kind kind);
live_obj *live_acquire(const void *p, live_kind kind);
/* true when p was registered as kind (the caller then drops the owner's
 * reference with live_release); false: not live, nothing done. */
bool live_retire(const void *p, live_kind kind);
bool live_release(live_obj *o);
/* A further reference to an object the caller holds one on. */
void live_ref(live_obj *o);

#endif
