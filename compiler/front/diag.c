/* diag.c: source registry and gcc-style diagnostic rendering (diag.h).
 *
 * In: sources (name + text) and diagnostics (span + message).  Out: one text
 * buffer with every rendered diagnostic.  A span is turned into line:column
 * (1-based, columns count bytes) only here.  The source line is shown with
 * tabs kept and other control bytes shown as '?', and the caret line puts a
 * tab wherever the source line has one, so carets line up in any terminal.
 */
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct source {
  char *name;
  char *text;  /* NUL-terminated copy; may contain NULs before len */
  size_t len;
  size_t *lines; /* offset of the start of each line (lines[0] == 0) */
  size_t n_lines;
} source;

struct diag {
  source *srcs;
  int n_srcs, cap_srcs;
  int n_errors;
  char *buf;   /* rendered text, NUL-terminated */
  size_t len, cap;
  int oom;     /* set when an allocation failed; text may be incomplete */
};

diag *diag_new(void) { return calloc(1, sizeof(diag)); }

void diag_free(diag *d) {
  if (!d) return;
  for (int k = 0; k < d->n_srcs; k++) {
    free(d->srcs[k].name);
    free(d->srcs[k].text);
    free(d->srcs[k].lines);
  }
  free(d->srcs);
  free(d->buf);
  free(d);
}

int diag_add_source(diag *d, const char *name, const char *text, size_t len) {
  if (d->n_srcs == d->cap_srcs) {
    int cap = d->cap_srcs ? 2 * d->cap_srcs : 8;
    source *s = realloc(d->srcs, sizeof(source) * (size_t)cap);
    if (!s) return -1;
    d->srcs = s;
    d->cap_srcs = cap;
  }
  source *s = &d->srcs[d->n_srcs];
  if (!name) name = "<input>";
  size_t nl = strlen(name);
  s->name = malloc(nl + 1);
  if (s->name) memcpy(s->name, name, nl + 1);
  s->text = malloc(len + 1);
  size_t nl_count = 1;
  for (size_t k = 0; k < len; k++) nl_count += text[k] == '\n';
  s->lines = malloc(sizeof *s->lines * nl_count);
  if (!s->name || !s->text || !s->lines) {
    free(s->name);
    free(s->text);
    free(s->lines);
    return -1;
  }
  if (len) memcpy(s->text, text, len);
  s->text[len] = 0;
  s->len = len;
  /* Line starts, so a location costs a binary search, not a scan of the
   * file (a big pattern has thousands of error sites). */
  s->n_lines = 0;
  s->lines[s->n_lines++] = 0;
  for (size_t k = 0; k < len; k++)
    if (text[k] == '\n') s->lines[s->n_lines++] = k + 1;
  return d->n_srcs++;
}

static const source *get_source(const diag *d, int src) {
  return d && src >= 0 && src < d->n_srcs ? &d->srcs[src] : NULL;
}

const char *diag_source_name(const diag *d, int src) {
  const source *s = get_source(d, src);
  return s ? s->name : NULL;
}

const char *diag_source_text(const diag *d, int src) {
  const source *s = get_source(d, src);
  return s ? s->text : NULL;
}

static void put(diag *d, const char *s, size_t n) {
  if (d->oom) return;
  if (d->len + n + 1 > d->cap) {
    size_t cap = d->cap ? d->cap : 256;
    while (d->len + n + 1 > cap) cap *= 2;
    char *b = realloc(d->buf, cap);
    if (!b) {
      d->oom = 1;
      return;
    }
    d->buf = b;
    d->cap = cap;
  }
  memcpy(d->buf + d->len, s, n);
  d->len += n;
  d->buf[d->len] = 0;
}

static void puts_(diag *d, const char *s) { put(d, s, strlen(s)); }

static void putf(diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(diag *d, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    put(d, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    d->oom = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  put(d, big, (size_t)n);
  free(big);
}

/* Line (1-based), column (1-based, bytes) and the line's [start, end). */
static void locate(const source *s, size_t off, int *line, int *col,
                   size_t *lstart, size_t *lend) {
  if (off > s->len) off = s->len;
  size_t lo = 0, hi = s->n_lines; /* the last line start <= off */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->lines[mid] <= off) lo = mid;
    else hi = mid;
  }
  int ln = (int)lo + 1;
  size_t st = s->lines[lo];
  size_t e = lo + 1 < s->n_lines ? s->lines[lo + 1] - 1 : s->len; /* its '\n' */
  if (e > st && s->text[e - 1] == '\r') e--;
  *line = ln;
  *col = (int)(off - st) + 1;
  *lstart = st;
  *lend = e;
}

static int is_cont(unsigned char c) { return c >= 0x80 && c < 0xC0; }

static void render(diag *d, src_span sp, const char *kind, const char *fmt,
                   va_list ap) {
  char small[512];
  char *msg = small;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) n = 0, small[0] = 0;
  if ((size_t)n >= sizeof small) {
    msg = malloc((size_t)n + 1);
    if (msg)
      vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    else
      msg = small;
  }
  va_end(ap2);

  const source *s = get_source(d, sp.src);
  if (!s) {
    putf(d, "%s: %s\n", kind, msg);
  } else {
    size_t b = sp.begin < 0 ? 0 : (size_t)sp.begin;
    size_t e = sp.end < sp.begin ? b : (size_t)sp.end;
    if (b > s->len) b = s->len;
    if (e > s->len) e = s->len;
    int line, col;
    size_t ls, le;
    locate(s, b, &line, &col, &ls, &le);
    putf(d, "%s:%d:%d: %s: %s\n", s->name, line, col, kind, msg);
    putf(d, "%5d | ", line);
    for (size_t k = ls; k < le; k++) {
      unsigned char c = (unsigned char)s->text[k];
      char o = (char)c;
      if ((c < 0x20 && c != '\t') || c == 0x7f) o = '?';
      put(d, &o, 1);
    }
    puts_(d, "\n      | ");
    for (size_t k = ls; k < b && k < le; k++) {
      unsigned char c = (unsigned char)s->text[k];
      if (c == '\t')
        put(d, "\t", 1);
      else if (!is_cont(c))
        put(d, " ", 1);
    }
    put(d, "^", 1);
    for (size_t k = b + 1; k < e && k < le; k++)
      if (!is_cont((unsigned char)s->text[k])) put(d, "~", 1);
    put(d, "\n", 1);
  }
  if (msg != small) free(msg);
}

void diag_verror(diag *d, src_span sp, const char *fmt, va_list ap) {
  d->n_errors++;
  render(d, sp, "error", fmt, ap);
}

void diag_error(diag *d, src_span sp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(d, sp, fmt, ap);
  va_end(ap);
}

void diag_note(diag *d, src_span sp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  render(d, sp, "note", fmt, ap);
  va_end(ap);
}

int diag_n_errors(const diag *d) { return d->n_errors; }

const char *diag_text(const diag *d) { return d->buf ? d->buf : ""; }

void diag_clear(diag *d) {
  d->n_errors = 0;
  d->len = 0;
  if (d->buf) d->buf[0] = 0;
}

char *diag_loc(const diag *d, src_span sp, char *buf, size_t n) {
  if (!buf || !n) return buf;
  const source *s = get_source(d, sp.src);
  if (!s) {
    snprintf(buf, n, "<unknown>");
    return buf;
  }
  int line, col;
  size_t ls, le;
  locate(s, sp.begin < 0 ? 0 : (size_t)sp.begin, &line, &col, &ls, &le);
  snprintf(buf, n, "%s:%d:%d", s->name, line, col);
  return buf;
}
