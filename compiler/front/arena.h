/* arena.h: bump allocation for one compilation (AST, IR, strings), freed at once. */
#ifndef SPAT_ARENA_H
#define SPAT_ARENA_H

#include <stddef.h>

typedef struct arena arena;

arena *arena_new(void);
void arena_free(arena *a);                       /* frees every block; NULL is fine */
void *arena_alloc(arena *a, size_t n);           /* zeroed, 16-byte aligned; NULL on OOM */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
