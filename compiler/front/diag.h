/* diag.h: source files and diagnostics.
 *
 * Locations are byte offsets into a registered source; they become
 * line:column only when a diagnostic is rendered.  Diagnostics are collected
 * as text in the diag object (the library never prints): the spatc driver
 * writes diag_text() to stderr.  Rendering follows gcc/bison:
 *
 *     file.pat:3:17: error: unknown name 'w'
 *         3 |     window(w) | global(0 .. g);
 *           |            ^
 *     file.pat:1:5: note: 'x' declared here
 *
 * A span covering several characters gets a caret followed by tildes.
 */
#ifndef SPAT_DIAG_H
#define SPAT_DIAG_H

#include <stdarg.h>
#include <stddef.h>

typedef struct src_span {
  int src;    /* source id from diag_add_source; -1: no location */
  int begin;  /* byte offset of the first character */
  int end;    /* byte offset one past the last character (end >= begin) */
} src_span;

#define SPAN_NONE ((src_span){-1, 0, 0})

typedef struct diag diag;

diag *diag_new(void);
void diag_free(diag *d);

/* Registers a source (the name as the user wrote it, its whole text; both
 * copied).  Returns its id. */
int diag_add_source(diag *d, const char *name, const char *text, size_t len);
const char *diag_source_name(const diag *d, int src);
const char *diag_source_text(const diag *d, int src);

void diag_error(diag *d, src_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(diag *d, src_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(diag *d, src_span sp, const char *fmt, va_list ap);

int diag_n_errors(const diag *d);
const char *diag_text(const diag *d);  /* everything rendered so far; "" if none */
void diag_clear(diag *d);              /* forget rendered text and the count */

/* "file:line:col" of sp.begin into buf (or "<unknown>"); returns buf. */
char *diag_loc(const diag *d, src_span sp, char *buf, size_t n);

#endif
