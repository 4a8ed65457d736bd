/* spatc_compile.c: `spatc compile FILE.pat`: an ahead-of-time kernel
 * (spat_emit) to link into or load from a program using libspat.
 * Loads and instantiates the pattern (with -D overrides), then, by --emit:
 *
 *   obj     NAME.o and NAME.h (the default)
 *   asm     NAME.s, the object's assembly
 *   llvm    NAME.ll, the optimised LLVM module
 *   header  NAME.h only
 *   shared  NAME.so and NAME.h: the object linked by the system compiler
 *           (`$CC -shared`, default cc) against libspat.so, found in
 *           $SPAT_LIBDIR, beside this spatc or in ../lib, so that a host
 *           can dlopen it
 *
 * Exit status 0, 1 (a bad pattern, a missing or unwritable file, a failed
 * link), 2 (bad usage). */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spatc.h"
#include "spatc_common.h"

extern char **environ;

#define EMIT_KINDS(X)                \
  X(obj, SPAT_EMIT_OBJECT, ".o")     \
  X(asm, SPAT_EMIT_ASM, ".s")        \
  X(llvm, SPAT_EMIT_LLVM, ".ll")     \
  X(header, SPAT_EMIT_OBJECT, ".h")  \
  X(shared, SPAT_EMIT_SHARED, ".so")

typedef enum {
#define X(name, kind, ext) EMIT_##name,
  EMIT_KINDS(X)
#undef X
  EMIT_N
} emit_what;

static const struct {
  const char *name;
  spat_emit_kind kind;
  const char *ext;
} emits[EMIT_N] = {
#define X(name, kind, ext) {#name, kind, ext},
    EMIT_KINDS(X)
#undef X
};

/* --target names (aliases of --cpu). */
static const char *const targets[] = {"native", "x86-64-v3", "x86-64-v4"};

/* path with its extension (from the last '.' after the last '/') replaced by
 * ext; malloc'd. */
static char *with_ext(const char *path, const char *ext) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  size_t base = dot && (!slash || dot > slash) ? (size_t)(dot - path)
                                               : strlen(path);
  char *s = spatc_xmalloc(base + strlen(ext) + 1);
  if (s) snprintf(s, base + strlen(ext) + 1, "%.*s%s", (int)base, path, ext);
  return s;
}

/* The directory holding libspat.so: $SPAT_LIBDIR, else beside this
 * program, else ../lib. */
static int find_libdir(char *buf, size_t n) {
  char exe[PATH_MAX];
  const char *env = getenv("SPAT_LIBDIR");
  const char *const rel[] = {"", "/../lib"};
  size_t n_rel = sizeof rel / sizeof rel[0];
  if (env && *env) {
    snprintf(exe, sizeof exe, "%s", env);
    n_rel = 1;
  } else {
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';
  }
  for (size_t k = 0; k < n_rel; k++) {
    char so[PATH_MAX + 32], real[PATH_MAX];
    snprintf(so, sizeof so, "%s%s/libspat.so", exe, rel[k]);
    if (access(so, R_OK) == 0 && realpath(so, real)) {
      *strrchr(real, '/') = '\0';
      snprintf(buf, n, "%s", real);
      return 0;
    }
  }
  return -1;
}

/* path with its directory resolved (symlinks, "..", "./"): false when the
 * directory does not exist. */
static bool canonical(const char *path, char *buf, size_t n) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX], real[PATH_MAX];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (!realpath(dir, real)) return false;
  int w = snprintf(buf, n, "%s/%s", real, slash ? slash + 1 : path);
  return w > 0 && (size_t)w < n;
}

/* Whether two paths name one file, however spelled: the same inode when
 * both exist (links too), else the same resolved directory and name. */
static bool same_file(const char *a, const char *b) {
  if (strcmp(a, b) == 0) return true;
  struct stat sa, sb;
  bool ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (ea != eb) return false;
  char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
  return canonical(a, ca, sizeof ca) && canonical(b, cb, sizeof cb) &&
         strcmp(ca, cb) == 0;
}

/* $CC -shared -o out obj -L dir -Wl,-rpath,dir -lspat; 0 or 1 after
 * printing. */
static int link_shared(const char *obj, const char *out) {
  char dir[PATH_MAX];
  if (find_libdir(dir, sizeof dir) != 0)
    return spatc_error("--emit shared: libspat.so not found in $SPAT_LIBDIR, "
                       "beside spatc or in ../lib");
  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "cc";
  char ldir[PATH_MAX + 8], rpath[PATH_MAX + 16];
  snprintf(ldir, sizeof ldir, "-L%s", dir);
  snprintf(rpath, sizeof rpath, "-Wl,-rpath,%s", dir);
  char *argv[] = {(char *)cc,   "-shared", "-o",  (char *)out, (char *)obj,
                  ldir,         rpath,     "-lspat", NULL};
  pid_t pid;
  int rc = posix_spawnp(&pid, cc, NULL, NULL, argv, environ);
  if (rc != 0) return spatc_error("%s: %s", cc, strerror(rc));
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return spatc_error("'%s -shared' failed linking %s", cc, out);
  return 0;
}

typedef struct compile_opts {
  spat_aot_options aot;      /* threads, name, cpu */
  const char *output, *header;
  emit_what what;
} compile_opts;

static int compile_option(void *ctx, const cli *c, int id) {
  compile_opts *o = ctx;
  int64_t v = 0;
  switch (id) {
  case OPT_THREADS:
    if (!cli_int(c, 0, 4096, &v)) return SPATC_EUSAGE;
    o->aot.threads = (int)v;
    return 0;
  case OPT_NAME:
    if (!spat_is_entry_name(c->arg))
      return cli_usage_error(c, "--name '%s' is not a C identifier", c->arg);
    o->aot.name = c->arg;
    return 0;
  case OPT_EMIT: {
    int k = 0;
    while (k < EMIT_N && strcmp(emits[k].name, c->arg) != 0) k++;
    if (k == EMIT_N)
      return cli_usage_error(c, "--emit: expected obj, asm, llvm, header or "
                                "shared, got '%s'", c->arg);
    o->what = (emit_what)k;
    return 0;
  }
  case OPT_TARGET: {
    size_t k = 0, n = sizeof targets / sizeof targets[0];
    while (k < n && strcmp(targets[k], c->arg) != 0) k++;
    if (k == n)
      return cli_usage_error(c, "--target: expected native, x86-64-v3 or "
                                "x86-64-v4, got '%s' (any LLVM CPU name: "
                                "--cpu)", c->arg);
    o->aot.cpu = c->arg;
    return 0;
  }
  case OPT_CPU: o->aot.cpu = c->arg; return 0;
  case OPT_DTYPE: return spatc_dtype_option(c, &o->aot.dtype);
  case OPT_OUTPUT: o->output = c->arg; return 0;
  case OPT_HEADER: o->header = c->arg; return 0;
  default: return -1;
  }
}

int spatc_compile_main(int argc, char **argv) {
  static const spatc_opt ok[] = {OPT_PATTERN, OPT_DEFINE, OPT_DIM,
                                 OPT_LAYOUT,  OPT_THREADS, OPT_NAME,
                                 OPT_EMIT,    OPT_TARGET,  OPT_CPU,
                                 OPT_OUTPUT,  OPT_HEADER,  OPT_DTYPE,
                                 OPT_NONE};
  cli c;
  cli_init(&c, argc, argv,
           "FILE [--pattern NAME] [-D NAME=INT] [--dim D] [-o OUT] "
           "[--emit obj|asm|llvm|header|shared] "
           "[--target native|x86-64-v3|x86-64-v4]",
           "Compiles a pattern ahead of time.  By default writes an object "
           "file and a C\nheader declaring its typed entry\n"
           "    int NAME(const spat_tensors *t, <runtime scalars>, <input "
           "arrays>);\n"
           "to link with libspat: cc prog.c NAME.o $(pkg-config --cflags "
           "--libs spat).\n--emit asm, llvm: the assembly or the optimised "
           "LLVM module as text;\n--emit header: the header only; --emit "
           "shared: NAME.so (linked by $CC -shared,\ndefault cc, against "
           "libspat.so) and NAME.h, for a host to dlopen.\nThe head "
           "dimension D defaults to 64.",
           ok);
  spatc_sel sel;
  spatc_shape sh;
  sel_init(&sel);
  shape_init(&sh);
  compile_opts opt = {{64, SPAT_LAYOUT_BHLD, 0, NULL, NULL, NULL,
                       SPAT_EMIT_OBJECT, SPAT_DTYPE_F32},
                      NULL, NULL, EMIT_obj};
  int rc = spatc_parse(&c, &sel, &sh, compile_option, &opt);
  spat_aot_options o = opt.aot;
  const char *output = opt.output, *header = opt.header;
  emit_what what = opt.what;
  if (sh.D) o.D = sh.D;
  o.layout = (spat_layout)sh.layout;
  if (rc == SPATC_OK && header && what != EMIT_obj && what != EMIT_shared)
    rc = cli_usage_error(&c, "--header goes with --emit obj or shared (with "
                             "--emit header, -o names the header)");
  if (rc != SPATC_OK) {
    sel_free(&sel);
    return rc == SPATC_HELP ? SPATC_OK : rc;
  }

  spatc_pat pat;
  char *out = NULL, *hdr = NULL, *tmp = NULL;
  spat_status st = SPAT_OK;
  rc = spatc_load(&pat, &sel);
  if (rc == SPATC_OK) {
    o.source = sel.file;
    o.emit = emits[what].kind;
    const char *name = o.name ? o.name : spat_pattern_name(pat.p);
    out = output ? strdup(output) : with_ext(name, emits[what].ext);
    if (what == EMIT_obj || what == EMIT_shared)
      hdr = header ? strdup(header) : with_ext(out, ".h");
    if (!out || ((what == EMIT_obj || what == EMIT_shared) && !hdr))
      rc = spatc_error("out of memory");
  }
  /* one output must not overwrite the other, nor the pattern's file */
  if (rc == SPATC_OK && hdr && same_file(out, hdr))
    rc = cli_usage_error(&c, "the output '%s' and the header '%s' are the "
                             "same file (the header would overwrite it)",
                         out, hdr);
  if (rc == SPATC_OK && same_file(out, sel.file))
    rc = cli_usage_error(&c, "the output '%s' is the pattern file '%s'", out,
                         sel.file);
  if (rc == SPATC_OK && hdr && same_file(hdr, sel.file))
    rc = cli_usage_error(&c, "the header '%s' is the pattern file '%s'", hdr,
                         sel.file);
  if (rc == SPATC_OK && what == EMIT_header) {
    char *obj = with_ext(o.name ? o.name : spat_pattern_name(pat.p), ".o");
    if (!obj) rc = SPATC_EUSER;
    else if ((st = spat_emit_header(pat.p, &o, obj, out)) != SPAT_OK)
      rc = spatc_api_error(pat.ctx, st);
    free(obj);
  } else if (rc == SPATC_OK && what == EMIT_shared) {
    size_t n = strlen(out) + 32;
    tmp = spatc_xmalloc(n);
    if (!tmp) rc = SPATC_EUSER;
    else snprintf(tmp, n, "%s.%ld.tmp.o", out, (long)getpid());
    if (rc == SPATC_OK && (st = spat_emit(pat.p, &o, tmp, NULL)) != SPAT_OK)
      rc = spatc_api_error(pat.ctx, st);
    if (rc == SPATC_OK) rc = link_shared(tmp, out);
    if (tmp) remove(tmp);
    if (rc == SPATC_OK && (st = spat_emit_header(pat.p, &o, out, hdr)) != SPAT_OK)
      rc = spatc_api_error(pat.ctx, st);
  } else if (rc == SPATC_OK) {
    if ((st = spat_emit(pat.p, &o, out, hdr)) != SPAT_OK)
      rc = spatc_api_error(pat.ctx, st);
  }
  free(out);
  free(hdr);
  free(tmp);
  spatc_pat_free(&pat);
  sel_free(&sel);
  return rc;
}
