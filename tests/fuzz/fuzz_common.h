/* fuzz_common.h: what the fuzz targets (tests/fuzz/fuzz_*.c) share.
 *
 * An input is .pat text, optionally followed by a NUL byte and control
 * bytes (shapes, runtime scalar values, input array contents, tile sizes).
 * Control bytes that are missing are taken from a hash of the text, so a
 * plain .pat seed still explores several shapes, and every input is
 * deterministic.
 *
 * Imports: the text is loaded as <sandbox>/main.pat, where the sandbox is a
 * fresh directory holding copies of a few library files (cycle_b.pat,
 * cycle_c.pat, lib.pat).  An input with a '/' or '\\' in a string literal is
 * skipped, so an import can only name a file of the sandbox (or a missing
 * one, or the sandbox or its parent directory): the fuzzer cannot make the
 * target read /dev/stdin, a FIFO or a large file.
 *
 * FUZZ_CHECK(cond, ...) prints what failed and aborts: libFuzzer keeps the
 * input as a crash, the replay driver (fuzz_replay.c) reports it.
 */
#ifndef SPAT_FUZZ_COMMON_H
#define SPAT_FUZZ_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend.h"
#include "ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_fail(const char *file, int line, const char *cond,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fuzz_fail(const char *file, int line, const char *cond,
                      const char *fmt, ...) {
  fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n  ", file, line, cond);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}
#define FUZZ_CHECK(cond, ...) \
  do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

/* ---- the input: text and control bytes ---- */

typedef struct fuzz_input {
  char *text;           /* NUL-terminated copy of the text part */
  size_t len;
  const uint8_t *ctl;   /* control bytes after the first NUL */
  size_t n_ctl;
  size_t pos;           /* next control byte */
  uint64_t h;           /* hash of the text: fills in missing bytes */
} fuzz_input;

/* splitmix64 */
static inline uint64_t fuzz_mix(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline bool fuzz_input_init(fuzz_input *in, const uint8_t *data,
                                   size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t len = nul ? (size_t)(nul - data) : size;
  in->text = malloc(len + 1);
  if (!in->text) return false;
  memcpy(in->text, data, len);
  in->text[len] = 0;
  in->len = len;
  in->ctl = nul ? nul + 1 : NULL;
  in->n_ctl = nul ? size - len - 1 : 0;
  in->pos = 0;
  uint64_t h = 0x243f6a8885a308d3ull;
  for (size_t k = 0; k < len; k++) h = fuzz_mix(h ^ data[k]);
  in->h = h;
  return true;
}

static inline void fuzz_input_free(fuzz_input *in) {
  free(in->text);
  in->text = NULL;
}

/* FUZZ_DUMP_CTL=path (debugging, e.g. before reducing a finding): the
 * text, a NUL and every control byte used so far, rewritten at each byte, so
 * that the file replays the same shapes even when the text is cut down. */
static inline void fuzz_dump(const fuzz_input *in, const uint8_t *used,
                             size_t n) {
  const char *path = getenv("FUZZ_DUMP_CTL");
  if (!path) return;
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(in->text, 1, in->len, f);
  fputc(0, f);
  fwrite(used, 1, n, f);
  fclose(f);
}

/* The next control byte (from the hash when the input has no more). */
static inline unsigned fuzz_byte(fuzz_input *in) {
  static uint8_t used[4096];
  unsigned b;
  if (in->pos < in->n_ctl) {
    b = in->ctl[in->pos++];
  } else {
    in->pos++;
    in->h = fuzz_mix(in->h + in->pos);
    b = (unsigned)(in->h >> 56);
  }
  if (in->pos <= sizeof used) {
    used[in->pos - 1] = (uint8_t)b;
    fuzz_dump(in, used, in->pos);
  }
  return b;
}

static inline int64_t fuzz_pick(fuzz_input *in, const int64_t *tab, size_t n) {
  return tab[fuzz_byte(in) % n];
}

/* SPAT_FUZZ_ERRORS: 1: run-time error disagreements between backends (one
 * fails, the other does not) are findings; 0: they are skipped; unset: the
 * target's default (fuzz_jit 1, fuzz_front 0).  Issue 8 class 4. */
static inline bool fuzz_strict_errors(bool deflt) {
  const char *e = getenv("SPAT_FUZZ_ERRORS");
  return e && *e ? *e == '1' : deflt;
}

/* SPAT_FUZZ_NO_EDGES=1: no runtime scalar at the int64 edges, and programs
 * with a constant of magnitude >= 2^31 are skipped (fuzz_edges_ok): to fuzz
 * past the known int64-edge defects (issue 8, class 3) while they are being
 * fixed.  Off by default. */
static inline bool fuzz_no_edges(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("SPAT_FUZZ_NO_EDGES");
    v = e && *e == '1';
  }
  return v == 1;
}

static inline bool fuzz_small_consts(const ir_node *n) {
  if (!n) return true;
  if (n->op == IR_CONST && (n->value >= ((int64_t)1 << 31) ||
                            n->value <= -((int64_t)1 << 31)))
    return false;
  for (int k = 0; k < n->n_kids; k++)
    if (!fuzz_small_consts(n->kids[k])) return false;
  return true;
}

static inline bool fuzz_edges_ok(const ir_program *p) {
  return !fuzz_no_edges() || fuzz_small_consts(p->root);
}

/* A runtime scalar: mostly small, sometimes at the int64 edges. */
static inline int64_t fuzz_scalar(fuzz_input *in) {
  static const int64_t edge[] = {
      INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, INT32_MAX,
      INT32_MIN, (int64_t)1 << 32, (int64_t)1 << 62, -((int64_t)1 << 62),
      INT64_MAX / 2, INT64_MIN / 2, 1000000, -1000000, 63, 64, 65, 127,
      128, 1000};
  unsigned b = fuzz_byte(in);
  if (b < 208 || fuzz_no_edges()) return (int64_t)(b % 26) - 6;
  return edge[(b - 208) % (sizeof edge / sizeof edge[0])];
}

/* An input array element: mostly a small id, sometimes far out. */
static inline int32_t fuzz_elem(fuzz_input *in, int64_t Lk) {
  static const int32_t edge[] = {-1, -2, INT32_MAX, INT32_MIN, 100, -100,
                                 1 << 20};
  unsigned b = fuzz_byte(in);
  if (b < 224) return (int32_t)(b % 6);
  if (b < 232) return (int32_t)Lk;
  return edge[(b - 232) % (sizeof edge / sizeof edge[0])];
}

/* ---- imports: a sandbox directory ---- */

static char fuzz_sandbox[256];
static char fuzz_main_path[300];

static void fuzz_sandbox_remove(void) {
  static const char *const files[] = {"cycle_b.pat", "cycle_c.pat", "lib.pat"};
  char path[400];
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    snprintf(path, sizeof path, "%s/%s", fuzz_sandbox, files[k]);
    unlink(path);
  }
  rmdir(fuzz_sandbox);
}

static inline void fuzz_write_file(const char *dir, const char *name,
                                   const char *text) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static inline void fuzz_sandbox_init(void) {
  if (fuzz_sandbox[0]) return;
  const char *tmp = getenv("TMPDIR");
  snprintf(fuzz_sandbox, sizeof fuzz_sandbox, "%s/spatc-fuzz-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fuzz_sandbox)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  fuzz_write_file(fuzz_sandbox, "lib.pat",
                  "let w = 3;\nlet local = window(w, 1);\n"
                  "pattern a(g = 1) = local | global(0 .. g);\n");
  fuzz_write_file(fuzz_sandbox, "cycle_b.pat",
                  "import \"cycle_c.pat\";\nlet b = 1;\n");
  fuzz_write_file(fuzz_sandbox, "cycle_c.pat",
                  "import \"cycle_b.pat\";\nlet c = 2;\n");
  snprintf(fuzz_main_path, sizeof fuzz_main_path, "%s/main.pat", fuzz_sandbox);
  atexit(fuzz_sandbox_remove);
}

/* false: skip the input: a string literal (only imports take one) holds a
 * '/' or '\\', so an import could leave the sandbox.  Scans as
 * grammar/lexer.l does: '#' comments to the end of the line, strings from
 * '"' to the next '"' or newline. */
static inline bool fuzz_imports_ok(const fuzz_input *in) {
  const char *t = in->text;
  for (size_t k = 0; k < in->len; k++) {
    if (t[k] == '#') {
      while (k < in->len && t[k] != '\n') k++;
    } else if (t[k] == '"') {
      for (k++; k < in->len && t[k] != '"' && t[k] != '\n'; k++)
        if (t[k] == '/' || t[k] == '\\') return false;
    }
  }
  return true;
}

/* ---- externs: one deterministic pure predicate per arity ---- */

static inline bool fuzz_ext_val(int n, const int64_t *a) {
  uint64_t x = 0x9e37u + (uint64_t)n;
  for (int k = 0; k < n; k++) x = x * 31u + (uint64_t)a[k];
  return x % 3u == 0u;
}
#define FUZZ_A(k) int64_t a##k
static bool fuzz_e0(void) { return fuzz_ext_val(0, NULL); }
static bool fuzz_e1(FUZZ_A(0)) { int64_t v[] = {a0}; return fuzz_ext_val(1, v); }
static bool fuzz_e2(FUZZ_A(0), FUZZ_A(1)) {
  int64_t v[] = {a0, a1}; return fuzz_ext_val(2, v);
}
static bool fuzz_e3(FUZZ_A(0), FUZZ_A(1), FUZZ_A(2)) {
  int64_t v[] = {a0, a1, a2}; return fuzz_ext_val(3, v);
}
static bool fuzz_e4(FUZZ_A(0), FUZZ_A(1), FUZZ_A(2), FUZZ_A(3)) {
  int64_t v[] = {a0, a1, a2, a3}; return fuzz_ext_val(4, v);
}
static bool fuzz_e5(FUZZ_A(0), FUZZ_A(1), FUZZ_A(2), FUZZ_A(3), FUZZ_A(4)) {
  int64_t v[] = {a0, a1, a2, a3, a4}; return fuzz_ext_val(5, v);
}
static bool fuzz_e6(FUZZ_A(0), FUZZ_A(1), FUZZ_A(2), FUZZ_A(3), FUZZ_A(4),
                    FUZZ_A(5)) {
  int64_t v[] = {a0, a1, a2, a3, a4, a5}; return fuzz_ext_val(6, v);
}
#undef FUZZ_A
#define FUZZ_MAX_EXT_ARGS 6

/* Fills fns[k] for every extern of p; false if one has too many arguments
 * for the harness (the input is then skipped). */
static inline bool fuzz_externs(const ir_program *p, void **fns, int cap) {
  typedef void (*fn)(void);
  static const fn by_arity[FUZZ_MAX_EXT_ARGS + 1] = {
      (fn)fuzz_e0, (fn)fuzz_e1, (fn)fuzz_e2, (fn)fuzz_e3,
      (fn)fuzz_e4, (fn)fuzz_e5, (fn)fuzz_e6};
  if (p->n_externs > cap) return false;
  for (int k = 0; k < p->n_externs; k++) {
    int n = p->externs[k].n_args;
    if (n < 0 || n > FUZZ_MAX_EXT_ARGS) return false;
    memcpy(&fns[k], &by_arity[n], sizeof fns[k]); /* as the API does */
  }
  return true;
}

/* Number of nodes of the (inlined) tree; stops counting past cap. */
static inline int64_t fuzz_tree_size(const ir_node *n, int64_t cap) {
  if (!n) return 0;
  int64_t s = 1;
  for (int k = 0; k < n->n_kids && s <= cap; k++)
    s += fuzz_tree_size(n->kids[k], cap - s);
  return s;
}

/* The checked program of the input's text: the pattern chosen by a control
 * byte, at its defaults.  NULL when the text has errors (then the
 * diagnostics must say so: that is checked here) or cannot be used. */
static inline ir_program *fuzz_load(fuzz_input *in, diag *d, arena *a) {
  fuzz_sandbox_init();
  fe_module *m = fe_load_string(d, a, fuzz_main_path, in->text);
  if (!m) {
    FUZZ_CHECK(diag_n_errors(d) > 0, "load failed without an error");
    FUZZ_CHECK(strstr(diag_text(d), "error: ") != NULL,
               "load failed, diagnostics without 'error: ': %s", diag_text(d));
    return NULL;
  }
  int n = fe_n_patterns(m);
  if (n == 0) { /* only lets, imports or externs: an error at instantiation */
    FUZZ_CHECK(fe_instantiate(d, m, NULL, NULL, 0) == NULL && diag_n_errors(d) > 0,
               "a module without patterns instantiates");
    return NULL;
  }
  FUZZ_CHECK(n > 0, "a loaded module with %d patterns", n);
  int k = (int)(fuzz_byte(in) % (unsigned)n);
  const char *name = fe_pattern_name(m, k);
  FUZZ_CHECK(name != NULL, "pattern %d has no name", k);
  const char *sig = fe_pattern_signature(m, k);
  FUZZ_CHECK(sig && strncmp(sig, name, strlen(name)) == 0,
             "signature '%s' of pattern '%s'", sig ? sig : "(null)", name);
  ir_program *p = fe_instantiate(d, m, name, NULL, 0);
  if (!p) {
    FUZZ_CHECK(diag_n_errors(d) > 0, "instantiate failed without an error");
    return NULL;
  }
  FUZZ_CHECK(p->root && ir_op_kind[p->root->op] == IR_PAT,
             "instantiated root is not a pattern");
  return p;
}

#endif
