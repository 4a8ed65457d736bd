/* strmap.c: open addressing, linear probing, FNV-1a (strmap.h). */
#include "strmap.h"

#include <stdint.h>
#include <string.h>

static size_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)(h ^ (h >> 29));
}

void strmap_init(strmap *m, arena *a) {
  memset(m, 0, sizeof *m);
  m->a = a;
}

void *strmap_get(const strmap *m, const char *key) {
  if (!m->cap) return NULL;
  for (size_t k = hash(key) & (m->cap - 1);; k = (k + 1) & (m->cap - 1)) {
    if (!m->keys[k]) return NULL;
    if (!strcmp(m->keys[k], key)) return m->vals[k];
  }
}

static void place(const char **keys, void **vals, size_t cap, const char *key,
                  void *val) {
  size_t k = hash(key) & (cap - 1);
  while (keys[k]) k = (k + 1) & (cap - 1);
  keys[k] = key;
  vals[k] = val;
}

bool strmap_put(strmap *m, const char *key, void *val) {
  if (strmap_get(m, key)) return true;
  if (2 * (m->n + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 64;
    const char **keys = arena_alloc(m->a, sizeof *keys * cap);
    void **vals = arena_alloc(m->a, sizeof *vals * cap);
    if (!keys || !vals) return false;
    for (size_t k = 0; k < m->cap; k++)
      if (m->keys[k]) place(keys, vals, cap, m->keys[k], m->vals[k]);
    m->keys = keys, m->vals = vals, m->cap = cap;
  }
  place(m->keys, m->vals, m->cap, key, val);
  m->n++;
  return true;
}
