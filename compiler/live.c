/* live.c: the registry of live API objects (see live.h).
 *
 * An open-addressing hash set of object addresses (linear probing,
 * deletion by backward shift, at most half full), under one rwlock.  The
 * table is freed whenever it becomes empty, so a program that frees what it
 * made leaves nothing allocated.
 */
#include "live.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static live_obj **slots; /* cap entries, NULL: free */
static size_t cap, count;

static size_t slot_of(const void *p, size_t n) {
  uint64_t h = (uint64_t)(uintptr_t)p;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return (size_t)h & (n - 1);
}

/* The slot holding p, or cap when p is not registered.  Under the lock. */
static size_t find(const void *p) {
  if (cap == 0) return 0;
  for (size_t s = slot_of(p, cap);; s = (s + 1) & (cap - 1)) {
    if (slots[s] == NULL) return cap;
    if ((const void *)slots[s] == p) return s;
  }
}

static void put(live_obj **t, size_t n, live_obj *o) {
  size_t s = slot_of(o, n);
  while (t[s] != NULL) s = (s + 1) & (n - 1);
  t[s] = o;
}

int live_add(live_obj *o, live_kind kind) {
  o->kind = kind;
  atomic_init(&o->refs, 1);
  pthread_rwlock_wrlock(&lock);
  if (2 * (count + 1) > cap) {
    size_t n = cap ? 2 * cap : 64;
    live_obj **t = calloc(n, sizeof *t);
    if (t == NULL) {
      pthread_rwlock_unlock(&lock);
      return -1;
    }
    for (size_t s = 0; s < cap; s++)
      if (slots[s] != NULL) put(t, n, slots[s]);
    free(slots);
    slots = t;
    cap = n;
  }
  put(slots, cap, o);
  count++;
  pthread_rwlock_unlock(&lock);
  return 0;
}

live_obj *live_acquire(const void *p, live_kind kind) {
  if (p == NULL) return NULL;
  live_obj *o = NULL;
  pthread_rwlock_rdlock(&lock);
  size_t s = find(p);
  if (s < cap && slots[s]->kind == kind) {
    o = slots[s];
    atomic_fetch_add(&o->refs, 1);
  }
  pthread_rwlock_unlock(&lock);
  return o;
}

bool live_retire(const void *p, live_kind kind) {
  if (p == NULL) return false;
  pthread_rwlock_wrlock(&lock);
  size_t s = find(p);
  bool found = s < cap && slots[s]->kind == kind;
  if (found) {
    /* backward shift: move later members of the probe run into the hole */
    slots[s] = NULL;
    for (size_t t = (s + 1) & (cap - 1); slots[t] != NULL;
         t = (t + 1) & (cap - 1)) {
      size_t home = slot_of(slots[t], cap);
      /* slots[t] may move to s when s lies cyclically in [home, t) */
      if (((t - home) & (cap - 1)) >= ((t - s) & (cap - 1))) {
        slots[s] = slots[t];
        slots[t] = NULL;
        s = t;
      }
    }
    if (--count == 0) {
      free(slots);
      slots = NULL;
      cap = 0;
    }
  }
  pthread_rwlock_unlock(&lock);
  return found;
}

bool live_release(live_obj *o) {
  return atomic_fetch_sub(&o->refs, 1) == 1;
}

void live_ref(live_obj *o) {
  atomic_fetch_add(&o->refs, 1);
}
