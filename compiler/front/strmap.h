/* strmap.h: a string -> pointer hash map in an arena (names of a module).
 * Keys are not copied (they live in the same arena); a NULL value means
 * absent.  Insertion keeps the first value put for a key. */
#ifndef SPAT_STRMAP_H
#define SPAT_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

typedef struct strmap {
  arena *a;
  const char **keys;
  void **vals;
  size_t n, cap;   /* cap: 0 or a power of two */
} strmap;

void strmap_init(strmap *m, arena *a);
void *strmap_get(const strmap *m, const char *key);
/* Puts key -> val unless key is present; false on OOM. */
bool strmap_put(strmap *m, const char *key, void *val);

#endif
