/* spatc_compile.c: `spatc compile FILE.pat`: an ahead-of-time kernel, an
 * object file and a C header (compiler/aot.h), to link into a program with
 * libspat.  Loads and instantiates the pattern (with -D overrides), then
 * aot_emit.  Exit status 0, 1 (a bad pattern, an unwritable file), 2 (bad
 * usage). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "arena.h"
#include "diag.h"
#include "frontend.h"
#include "spatc.h"

static const char usage_text[] =
    "usage: spatc compile FILE.pat [options]\n"
    "\n"
    "Compiles a pattern ahead of time into an object file and a C header\n"
    "declaring its typed entry\n"
    "    int NAME(const spat_tensors *t, <runtime scalars>, <input arrays>);\n"
    "Link it with libspat: cc prog.c NAME.o $(pkg-config --cflags --libs "
    "spat)\n"
    "\n"
    "options:\n"
    "  -p, --pattern NAME    the pattern (default: the only or last one)\n"
    "  -D, --define N=INT    override a compile-time parameter (repeatable)\n"
    "  -d, --dim N           head dimension (default 64)\n"
    "      --layout L        bhld (default) or blhd\n"
    "  -j, --threads N       worker threads per run (default 0: all cores)\n"
    "      --name NAME       C name of the entry (default: the pattern's)\n"
    "      --cpu CPU         target CPU, e.g. x86-64-v3 (default: this "
    "machine)\n"
    "  -o, --output FILE     the object file (default NAME.o)\n"
    "      --header FILE     the header (default: the object's name, .h)\n"
    "  -h, --help            this help\n";

static int usage_error(const char *fmt, const char *arg) {
  fputs("spatc compile: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\n(see spatc compile --help)\n", stderr);
  return 2;
}

/* The option's argument: "--opt=value", "--opt value", "-Xvalue", "-X value".
 */
static const char *opt_arg(int argc, char **argv, int *k, const char *s,
                           const char *lng, char shrt) {
  size_t n = strlen(lng);
  if (strncmp(s, lng, n) == 0) {
    if (s[n] == '=') return s + n + 1;
    if (s[n] == '\0') return *k + 1 < argc ? argv[++*k] : NULL;
    return NULL;
  }
  if (shrt && s[0] == '-' && s[1] == shrt) {
    if (s[2] != '\0') return s + 2;
    return *k + 1 < argc ? argv[++*k] : NULL;
  }
  return NULL;
}

static int matches(const char *s, const char *lng, char shrt) {
  size_t n = strlen(lng);
  if (strncmp(s, lng, n) == 0 && (s[n] == '\0' || s[n] == '=')) return 1;
  return shrt && s[0] == '-' && s[1] == shrt && s[1] != '\0';
}

static int parse_int(const char *s, long long lo, long long hi,
                     long long *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (s[0] == '\0' || *end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int spatc_compile_main(int argc, char **argv) {
  const char *file = NULL, *pattern = NULL, *output = NULL, *header = NULL;
  const char *defs_text[64];
  int n_defs = 0;
  aot_opts o = {64, 0, 0, NULL, NULL, NULL};
  for (int k = 1; k < argc; k++) {
    const char *s = argv[k], *v;
    long long x;
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (s[0] != '-' || s[1] == '\0') {
      if (file != NULL) return usage_error("more than one file ('%s')", s);
      file = s;
    } else if (matches(s, "--pattern", 'p')) {
      if ((pattern = opt_arg(argc, argv, &k, s, "--pattern", 'p')) == NULL)
        return usage_error("%s needs a NAME", s);
    } else if (matches(s, "--define", 'D')) {
      if ((v = opt_arg(argc, argv, &k, s, "--define", 'D')) == NULL)
        return usage_error("%s needs NAME=INT", s);
      if (n_defs == 64) return usage_error("too many -D (at most %s)", "64");
      defs_text[n_defs++] = v;
    } else if (matches(s, "--dim", 'd')) {
      if ((v = opt_arg(argc, argv, &k, s, "--dim", 'd')) == NULL ||
          parse_int(v, 1, 1 << 16, &x))
        return usage_error("%s needs a head dimension", s);
      o.D = x;
    } else if (matches(s, "--layout", 0)) {
      v = opt_arg(argc, argv, &k, s, "--layout", 0);
      if (v != NULL && strcmp(v, "bhld") == 0)
        o.layout = 0;
      else if (v != NULL && strcmp(v, "blhd") == 0)
        o.layout = 1;
      else
        return usage_error("--layout is bhld or blhd, not '%s'", v ? v : "");
    } else if (matches(s, "--threads", 'j')) {
      if ((v = opt_arg(argc, argv, &k, s, "--threads", 'j')) == NULL ||
          parse_int(v, 0, 4096, &x))
        return usage_error("%s needs a thread count", s);
      o.threads = (int)x;
    } else if (matches(s, "--name", 0)) {
      if ((o.name = opt_arg(argc, argv, &k, s, "--name", 0)) == NULL)
        return usage_error("%s needs a C name", s);
      if (!aot_is_identifier(o.name))
        return usage_error("--name '%s' is not a C identifier", o.name);
    } else if (matches(s, "--cpu", 0)) {
      if ((o.cpu = opt_arg(argc, argv, &k, s, "--cpu", 0)) == NULL)
        return usage_error("%s needs a CPU name", s);
    } else if (matches(s, "--output", 'o')) {
      if ((output = opt_arg(argc, argv, &k, s, "--output", 'o')) == NULL)
        return usage_error("%s needs a FILE", s);
    } else if (matches(s, "--header", 0)) {
      if ((header = opt_arg(argc, argv, &k, s, "--header", 0)) == NULL)
        return usage_error("%s needs a FILE", s);
    } else {
      return usage_error("unknown option '%s'", s);
    }
  }
  if (file == NULL) return usage_error("%s", "no .pat file given");

  diag *d = diag_new();
  arena *a = arena_new();
  if (d == NULL || a == NULL) {
    fputs("spatc compile: error: out of memory\n", stderr);
    diag_free(d);
    arena_free(a);
    return 1;
  }
  int rc = 0;
  fe_define defs[64];
  for (int k = 0; k < n_defs && rc == 0; k++)
    if (fe_parse_define(defs_text[k], a, &defs[k]) != 0)
      rc = usage_error("-D '%s' is not NAME=INT", defs_text[k]);
  fe_module *m = rc == 0 ? fe_load_file(d, a, file) : NULL;
  ir_program *p =
      m != NULL ? fe_instantiate(d, m, pattern, defs, n_defs) : NULL;
  if (rc == 0 && p == NULL) rc = 1;
  fputs(diag_text(d), stderr);

  char *obj = NULL, *hdr = NULL;
  if (rc == 0) {
    o.source = file;
    const char *name = o.name ? o.name : p->name;
    size_t n = strlen(output ? output : name) + 8;
    obj = malloc(n);
    hdr = malloc(n + (header ? strlen(header) : 0));
    if (obj == NULL || hdr == NULL) {
      fputs("spatc compile: error: out of memory\n", stderr);
      rc = 1;
    }
    if (rc == 0) {
      if (output)
        snprintf(obj, n, "%s", output);
      else
        snprintf(obj, n, "%s.o", name);
      if (header) {
        snprintf(hdr, n + strlen(header), "%s", header);
      } else {
        snprintf(hdr, n, "%s", obj);
        size_t len = strlen(hdr);
        if (len > 2 && strcmp(hdr + len - 2, ".o") == 0) hdr[len - 2] = '\0';
        strcat(hdr, ".h");
      }
      char err[1024];
      if (aot_emit(p, &o, obj, hdr, err, sizeof err) != 0) {
        fprintf(stderr, "spatc compile: error: %s\n", err);
        rc = 1;
      }
    }
  }
  free(obj);
  free(hdr);
  arena_free(a);
  diag_free(d);
  return rc;
}
