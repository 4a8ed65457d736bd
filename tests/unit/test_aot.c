/* test_aot.c: ahead-of-time kernels (compiler/aot.c, compiler/aot_run.c),
 * `spatc compile` and the disk kernel cache.
 *
 * Emits objects and headers with aot_emit, then builds and runs small C
 * programs against them and the built library (the test runs from the
 * repository root, like make test; $B names the build directory).  Each
 * program compares its AOT kernel with the reference interpreter through
 * the public API and prints "ok"; the test checks the exit status and that
 * line.  Then: AOT against JIT kernels of library patterns (bit-identical),
 * and cache entries truncated or corrupted on disk (detected, rebuilt). */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spatc_common.c"  /* the CLI's option table */
#include "spatc_compile.c" /* spatc compile, the command */
#include "spat.h"
#include "aot.h"
#include "arena.h"
#include "diag.h"
#include "frontend.h"

typedef struct fixture {
  char dir[64];
  diag *d;
  arena *a;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/spat_test_aot_XXXXXX");
  if (mkdtemp(f->dir) == NULL) return -1;
  f->d = diag_new();
  f->a = arena_new();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) return -1;
  diag_free(f->d);
  arena_free(f->a);
  free(f);
  return 0;
}

static ir_program *load(fixture *f, const char *text, const fe_define *defs,
                        int n) {
  fe_module *m = fe_load_string(f->d, f->a, "aot.pat", text);
  ir_program *p = m ? fe_instantiate(f->d, m, NULL, defs, n) : NULL;
  if (p == NULL) fprintf(stderr, "%s", diag_text(f->d));
  assert_non_null(p);
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
}

/* Builds dir/main.c with dir/kernel.o and the library, runs it; returns its
 * exit status, with its output in dir/out. */
static int build_and_run(const fixture *f) {
  const char *b = getenv("B"), *san = getenv("SAN"); /* make asan / ubsan */
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cc %s -std=c11 -Wall -Wextra -Werror -Iinclude -I'%s' -o '%s/main' "
           "'%s/main.c' '%s/kernel.o' '%s/libspat.a' "
           "-L\"$(%s --libdir)\" -Wl,-rpath,\"$(%s --libdir)\" -lLLVM-19 "
           "-lffi -lpthread -lm >'%s/out' 2>&1 && '%s/main' >'%s/out' 2>&1",
           san ? san : "", f->dir, f->dir, f->dir, f->dir, b ? b : "build",
           "/usr/lib/llvm-19/bin/llvm-config",
           "/usr/lib/llvm-19/bin/llvm-config", f->dir, f->dir, f->dir);
  int rc = system(cmd);
  char path[128], line[512];
  snprintf(path, sizeof path, "%s/out", f->dir);
  FILE *fp = fopen(path, "r");
  if (fp) {
    while (fgets(line, sizeof line, fp)) fprintf(stderr, "  | %s", line);
    fclose(fp);
  }
  return rc;
}

static bool output_has(const fixture *f, const char *s) {
  char path[128], buf[8192];
  snprintf(path, sizeof path, "%s/out", f->dir);
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  return strstr(buf, s) != NULL;
}

static bool file_has(const char *path, const char *s) {
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return false;
  size_t cap = 1 << 22; /* generated assembly and LLVM text are large */
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t n = fread(buf, 1, cap - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  bool found = strstr(buf, s) != NULL;
  free(buf);
  return found;
}

static void test_identifiers(void **state) {
  (void)state;
  assert_true(aot_is_identifier("docs"));
  assert_true(aot_is_identifier("_x1"));
  assert_false(aot_is_identifier("1x"));
  assert_false(aot_is_identifier("a-b"));
  assert_false(aot_is_identifier(""));
  assert_false(aot_is_identifier(NULL));
  assert_false(aot_is_identifier("int"));
  assert_false(aot_is_identifier("spat_aot_run"));
}

static void test_emit_errors(void **state) {
  fixture *f = *state;
  ir_program *p = load(f, "pattern p = causal;", NULL, 0);
  char obj[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/x.o", f->dir);
  aot_opts o = {64, 0, 0, "not-c", NULL, NULL, 0, 0};
  assert_int_equal(aot_emit(p, &o, obj, NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "not-c"));
  o.name = NULL;
  o.D = 7;
  assert_int_equal(aot_emit(p, &o, obj, NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "head dimension 7"));
  o.D = 64;
  o.cpu = "nosuchcpu"; /* LLVM itself would abort */
  assert_int_equal(aot_emit(p, &o, obj, NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "unknown CPU 'nosuchcpu'"));
  o.cpu = "x86-64-v2";
  assert_int_equal(aot_emit(p, &o, obj, NULL, err, sizeof err), 0);
  assert_int_equal(access(obj, F_OK), 0);
  o.cpu = NULL;
  assert_int_equal(
      aot_emit(p, &o, "/nonexistent/dir/x.o", NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/dir/x.o"));
}

static const char *const docs_src =
    "pattern docs(w = 100, runtime n = 2, input doc: int[]) =\n"
    "    (causal & where(doc[i] == doc[j]) & window(w, 0)) |\n"
    "    (causal & cols(0 .. n));\n";

/* The driver: the AOT kernel against the interpreter, plus its errors. */
static const char *const docs_main =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include \"kernel.h\"\n"
    "static const char *src =\n"
    "  \"pattern docs(w = 100, runtime n = 2, input doc: int[]) =\\n\"\n"
    "  \"  (causal & where(doc[i] == doc[j]) & window(w, 0)) |\\n\"\n"
    "  \"  (causal & cols(0 .. n));\\n\";\n"
    "int main(void) {\n"
    "  enum { B = 2, H = 4, Hkv = 2, L = 150, D = 32 };\n"
    "  size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D;\n"
    "  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4);\n"
    "  float *o = calloc(nq, 4), *r = calloc(nq, 4);\n"
    "  float *lse = calloc((size_t)B * H * L, 4), *lr = calloc(B * H * L, "
    "4);\n"
    "  int32_t doc[L];\n"
    "  srand(5);\n"
    "  for (size_t x = 0; x < nq; x++) q[x] = (float)rand() / RAND_MAX - .5f;\n"
    "  for (size_t x = 0; x < nk; x++) k[x] = (float)rand() / RAND_MAX - .5f;\n"
    "  for (size_t x = 0; x < nk; x++) v[x] = (float)rand() / RAND_MAX - .5f;\n"
    "  for (int x = 0; x < L; x++) doc[x] = x / 41;\n"
    "  spat_tensors t = {B, H, Hkv, L, L, q, k, v, o, lse, 0, NULL};\n"
    "  if (docs_D != 32 || docs_LAYOUT != SPAT_LAYOUT_BLHD) return 10;\n"
    "  if (docs_DEFAULT_n != 2) return 11;\n"
    "  int st = docs(&t, 3, doc);\n"
    "  if (st != SPAT_OK) { printf(\"aot status %d\\n\", st); return 1; }\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BLHD, 1, "
    "SPAT_BACKEND_INTERP, 0, SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_string(c, \"d.pat\", src, NULL, &p) ||\n"
    "      spat_pattern_set_param(p, \"w\", 20) ||\n"
    "      spat_compile(p, &opt, &ker)) {\n"
    "    printf(\"api: %s\\n\", spat_ctx_error(c)); return 2; }\n"
    "  t.o = r; t.lse = lr;\n"
    "  if (spat_kernel_run(ker, &t, (int64_t)3, doc)) return 3;\n"
    "  double worst = 0;\n"
    "  for (size_t x = 0; x < nq; x++) worst = fmax(worst, fabs(o[x] - "
    "r[x]));\n"
    "  for (size_t x = 0; x < (size_t)B * H * L; x++)\n"
    "    worst = fmax(worst, fabs(lse[x] - lr[x]));\n"
    "  printf(\"max |aot - interp| = %.2e\\n\", worst);\n"
    "  if (!(worst < 1e-4)) return 4;\n"
    "  char err[256] = \"\";\n"
    "  t.o = o;\n"
    "  st = docs_ex(err, sizeof err, &t, 3, NULL);\n"
    "  if (st != SPAT_EINVAL || !strstr(err, \"'doc'\")) return 5;\n"
    "  printf(\"missing input: %s\\n\", err);\n"
    "  t.Hkv = 3;\n"
    "  if (docs(&t, 3, doc) != SPAT_EINVAL) return 6;\n"
    /* No keys (Lk = 0, NULL k, v, doc): every row empty, o = 0, lse = -inf. */
    "  t.Hkv = Hkv; t.Lk = 0; t.k = t.v = NULL; t.lse = lse;\n"
    "  for (size_t x = 0; x < nq; x++) o[x] = 7;\n"
    "  for (size_t x = 0; x < (size_t)B * H * L; x++) lse[x] = 7;\n"
    "  if ((st = docs(&t, 3, NULL)) != SPAT_OK) { printf(\"Lk = 0: %d\\n\", st); return 7; }\n"
    "  for (size_t x = 0; x < nq; x++) if (o[x] != 0) return 8;\n"
    "  for (size_t x = 0; x < (size_t)B * H * L; x++)\n"
    "    if (!(isinf(lse[x]) && lse[x] < 0)) return 9;\n"
    "  puts(\"Lk = 0: empty rows\");\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  free(q), free(k), free(v), free(o), free(r), free(lse), free(lr);\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

static void test_docs_kernel(void **state) {
  fixture *f = *state;
  fe_define w = {"w", 20};
  ir_program *p = load(f, docs_src, &w, 1);
  char obj[128], hdr[128], mainc[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  aot_opts o = {32, 1, 2, NULL, NULL, "aot.pat", 0, 0};
  int rc = aot_emit(p, &o, obj, hdr, err, sizeof err);
  if (rc != 0) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(file_has(hdr,
                       "int docs(const spat_tensors *t, int64_t n, "
                       "const int32_t *doc);"));
  assert_true(file_has(hdr, " * w = 20"));
  write_file(mainc, docs_main);
  assert_int_equal(build_and_run(f), 0);
  assert_true(output_has(f, "missing input: input array 'doc' is NULL"));
  assert_true(output_has(f, "Lk = 0: empty rows"));
  assert_true(output_has(f, "ok"));
}

static const char *const ext_main =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"kernel.h\"\n"
    "bool near(int64_t i, int64_t j) { return i - j <= 5 && j - i <= 2; }\n"
    "int main(void) {\n"
    "  enum { H = 2, L = 100, D = 64 };\n"
    "  size_t n = (size_t)H * L * D;\n"
    "  float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);\n"
    "  float *o = calloc(n, 4), *r = calloc(n, 4);\n"
    "  for (size_t x = 0; x < n; x++) {\n"
    "    q[x] = (float)((x * 7) % 13) / 13 - .5f;\n"
    "    k[x] = (float)((x * 5) % 11) / 11 - .5f;\n"
    "    v[x] = (float)((x * 3) % 17) / 17 - .5f; }\n"
    "  spat_tensors t = {1, H, H, L, L, q, k, v, o, NULL, 0, NULL};\n"
    "  if (nearby(&t) != SPAT_OK) return 1;\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, "
    "SPAT_BACKEND_INTERP, 0, SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_string(c, \"e.pat\",\n"
    "        \"extern fn near(int, int) -> bool;\\n\"\n"
    "        \"pattern p = where(near(i, j));\\n\", NULL, &p) ||\n"
    "      spat_ctx_register_fn(c, \"near\", SPAT_FN(near), 2) ||\n"
    "      spat_compile(p, &opt, &ker)) {\n"
    "    printf(\"api: %s\\n\", spat_ctx_error(c)); return 2; }\n"
    "  t.o = r;\n"
    "  if (spat_kernel_run(ker, &t)) return 3;\n"
    "  double worst = 0;\n"
    "  for (size_t x = 0; x < n; x++) worst = fmax(worst, fabs(o[x] - r[x]));\n"
    "  printf(\"max |aot - interp| = %.2e\\n\", worst);\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  free(q), free(k), free(v), free(o), free(r);\n"
    "  if (!(worst < 1e-4)) return 4;\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

/* An extern predicate is linked by its C name; --name renames the entry. */
static void test_extern_kernel(void **state) {
  fixture *f = *state;
  ir_program *p = load(f,
                       "extern fn near(int, int) -> bool;\n"
                       "pattern p = where(near(i, j));\n",
                       NULL, 0);
  char obj[128], hdr[128], mainc[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  aot_opts o = {64, 0, 0, "nearby", NULL, NULL, 0, 0};
  int rc = aot_emit(p, &o, obj, hdr, err, sizeof err);
  if (rc != 0) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(file_has(hdr, "bool near(int64_t, int64_t);"));
  assert_true(file_has(hdr, "int nearby(const spat_tensors *t);"));
  write_file(mainc, ext_main);
  assert_int_equal(build_and_run(f), 0);
  assert_true(output_has(f, "ok"));
}

static int compile_cmd(int n, const char **args) {
  char *argv[16];
  argv[0] = "compile";
  for (int k = 0; k < n && k < 15; k++) argv[k + 1] = (char *)args[k];
  return spatc_compile_main(n + 1, argv);
}

/* `spatc compile` end to end: its options, its errors, and an object that
 * links and runs. */
static void test_compile_command(void **state) {
  fixture *f = *state;
  char pat[128], obj[128], hdr[128], mainc[128];
  snprintf(pat, sizeof pat, "%s/near.pat", f->dir);
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  write_file(pat,
             "extern fn near(int, int) -> bool;\n"
             "pattern p(unused = 1) = where(near(i, j));\n");
  assert_int_equal(compile_cmd(0, NULL), 2);
  assert_int_equal(compile_cmd(2, (const char *[]){pat, "--bogus"}), 2);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "--layout", "x"}), 2);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "--name", "a b"}), 2);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "-d", "0"}), 2);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "-D", "oops"}), 2);
  assert_int_equal(compile_cmd(1, (const char *[]){"/nonexistent.pat"}), 1);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "-D", "nosuch=1"}), 1);
  assert_int_equal(compile_cmd(3, (const char *[]){pat, "--dim", "7"}), 1);
  assert_int_equal(access(obj, F_OK), -1); /* nothing written on errors */
  const char *ok[] = {pat,   "-D",     "unused=5", "--dim", "64",
                      "-j1", "--name", "nearby",   "-o",    obj};
  assert_int_equal(compile_cmd(10, ok), 0);
  assert_true(file_has(hdr, "int nearby(const spat_tensors *t);"));
  assert_true(file_has(hdr, " * unused = 5"));
  assert_true(file_has(hdr, "cc prog.c kernel.o"));
  write_file(mainc, ext_main);
  assert_int_equal(build_and_run(f), 0);
  assert_true(output_has(f, "ok"));
}

static const char *const many_src =
    "pattern many(runtime a = 0, runtime b = 0, runtime c = 0,\n"
    "             runtime d = 0, runtime e = 0, runtime f = 0,\n"
    "             runtime g = 0, input x: int[], input y: int[]) =\n"
    "    where(i - j <= a + b + c + d + e + f + g && j - i <= x[i] - y[j]);\n";

static const char *const many_main =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"kernel.h\"\n"
    "int main(void) {\n"
    "  enum { H = 2, L = 90, D = 16 };\n"
    "  size_t n = (size_t)H * L * D;\n"
    "  float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);\n"
    "  float *o = calloc(n, 4), *r = calloc(n, 4);\n"
    "  int32_t x[L], y[L];\n"
    "  for (int j = 0; j < L; j++) x[j] = j % 7, y[j] = j % 3;\n"
    "  for (size_t j = 0; j < n; j++) {\n"
    "    q[j] = (float)((j * 7) % 13) / 13 - .5f;\n"
    "    k[j] = (float)((j * 5) % 11) / 11 - .5f;\n"
    "    v[j] = (float)((j * 3) % 17) / 17 - .5f; }\n"
    "  spat_tensors t = {1, H, H, L, L, q, k, v, o, NULL, 0.3f, NULL};\n"
    "  if (many(&t, 1, 0, 2, 0, 0, 1, 3, x, y) != SPAT_OK) return 1;\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, "
    "SPAT_BACKEND_INTERP, 0, SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_file(c, PAT_FILE, NULL, &p) ||\n"
    "      spat_compile(p, &opt, &ker)) {\n"
    "    printf(\"api: %s\\n\", spat_ctx_error(c)); return 2; }\n"
    "  t.o = r;\n"
    "  spat_value a[9];\n"
    "  int64_t s[7] = {1, 0, 2, 0, 0, 1, 3};\n"
    "  for (int j = 0; j < 7; j++) a[j] = spat_scalar(s[j]);\n"
    "  a[7] = spat_input(x), a[8] = spat_input(y);\n"
    "  if (spat_kernel_call(ker, &t, a, 9)) return 3;\n"
    "  double worst = 0;\n"
    "  for (size_t j = 0; j < n; j++) worst = fmax(worst, fabs(o[j] - r[j]));\n"
    "  printf(\"max |aot - interp| = %.2e\\n\", worst);\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  free(q), free(k), free(v), free(o), free(r);\n"
    "  if (!(worst < 1e-4)) return 4;\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

/* Nine arguments after the tensors: the generated entry takes some from the
 * stack. */
static void test_many_arguments(void **state) {
  fixture *f = *state;
  ir_program *p = load(f, many_src, NULL, 0);
  char obj[128], hdr[128], mainc[128], pat[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  snprintf(pat, sizeof pat, "%s/many.pat", f->dir);
  aot_opts o = {16, 0, 1, NULL, NULL, NULL, 0, 0};
  int rc = aot_emit(p, &o, obj, hdr, err, sizeof err);
  if (rc != 0) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(file_has(hdr, "int64_t g, const int32_t *x, const int32_t *y);"));
  write_file(pat, many_src);
  FILE *fp = fopen(mainc, "w"); /* the driver, told where the pattern is */
  assert_non_null(fp);
  fprintf(fp, "#define PAT_FILE \"%s\"\n%s", pat, many_main);
  assert_int_equal(fclose(fp), 0);
  rc = build_and_run(f);
  assert_int_equal(rc, 0);
  assert_true(output_has(f, "ok"));
}

/* --emit asm, llvm, header and --target: what each writes. */
/* Score tiles with integer parts in int64 lanes compile for AVX-512 hosts,
 * in 512-bit registers, in bounded time: LLVM 19's x86 instruction selection
 * once spent minutes in its DAG combiner on their lane masks (znver4,
 * x86-64-v4), so the child compiling them gets 120 s, many times what
 * they take, and a hang fails the test instead of stalling the suite. */
static void test_score_avx512(void **state) {
  fixture *f = *state;
  static const char *const src[] = {
      "pattern a(input doc: int[Lk]) = causal with score s + doc[j];\n",
      "pattern b = causal with score s + (i / (j - 7));\n",
      "pattern c(input doc: int[Lk]) = causal with score\n"
      "    doc[i] == doc[j] ? s : s - (i - j) % 5;\n",
      "pattern d(input bias: float[H, Lk]) = causal with score\n"
      "    s + bias[h, j % (i + 1)];\n",
  };
  static const char *const cpu[] = {"znver4", "x86-64-v4"};
  for (size_t k = 0; k < sizeof src / sizeof src[0]; k++)
    for (size_t c = 0; c < 2; c++) {
      char pat[128], out[128];
      snprintf(pat, sizeof pat, "%s/score%zu.pat", f->dir, k);
      snprintf(out, sizeof out, "%s/score%zu.s", f->dir, k);
      write_file(pat, src[k]);
      fflush(NULL);
      pid_t pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        alarm(120);
        const char *args[] = {pat, "--emit", "asm", c ? "--target" : "--cpu", cpu[c],
                              "-o", out};
        _exit(compile_cmd(7, args));
      }
      int status = 0;
      assert_int_equal(waitpid(pid, &status, 0), pid);
      if (!WIFEXITED(status)) fprintf(stderr, "%s for %s: killed\n", src[k], cpu[c]);
      assert_true(WIFEXITED(status));
      assert_int_equal(WEXITSTATUS(status), 0);
      assert_true(file_has(out, "zmm"));
    }
}

static void test_emit_kinds(void **state) {
  fixture *f = *state;
  char pat[128], out[128], hdr[128];
  snprintf(pat, sizeof pat, "%s/docs.pat", f->dir);
  write_file(pat, docs_src);
  snprintf(out, sizeof out, "%s/d.s", f->dir);
  const char *as[] = {pat, "--emit", "asm", "--dim", "32", "-o", out};
  assert_int_equal(compile_cmd(7, as), 0);
  assert_true(file_has(out, ".globl\tdocs\n"));
  assert_true(file_has(out, "docs_ex:"));
  snprintf(hdr, sizeof hdr, "%s/d.h", f->dir);
  assert_int_equal(access(hdr, F_OK), -1); /* asm: no header */
  snprintf(out, sizeof out, "%s/d.ll", f->dir);
  const char *ll[] = {pat, "--emit=llvm", "-o", out};
  assert_int_equal(compile_cmd(4, ll), 0);
  assert_true(file_has(out, "define i32 @docs(ptr"));
  assert_true(file_has(out, "@docs_desc = "));
  snprintf(out, sizeof out, "%s/only.h", f->dir);
  const char *h[] = {pat, "--emit", "header", "-o", out};
  assert_int_equal(compile_cmd(5, h), 0);
  assert_true(file_has(out, "int docs(const spat_tensors *t, int64_t n, "
                            "const int32_t *doc);"));
  snprintf(hdr, sizeof hdr, "%s/only.o", f->dir);
  assert_int_equal(access(hdr, F_OK), -1); /* header: no object */
  /* --target picks the instruction set: 512-bit registers only for v4 */
  snprintf(out, sizeof out, "%s/v4.s", f->dir);
  const char *v4[] = {pat, "--emit", "asm", "--target", "x86-64-v4", "-o", out};
  assert_int_equal(compile_cmd(7, v4), 0);
  assert_true(file_has(out, "zmm"));
  snprintf(out, sizeof out, "%s/v3.s", f->dir);
  const char *v3[] = {pat, "--emit", "asm", "--target", "x86-64-v3", "-o", out};
  assert_int_equal(compile_cmd(7, v3), 0);
  assert_false(file_has(out, "zmm"));
  assert_true(file_has(out, "ymm"));
  const char *bad_t[] = {pat, "--target", "pentium"};
  assert_int_equal(compile_cmd(3, bad_t), 2);
  const char *bad_e[] = {pat, "--emit", "exe"};
  assert_int_equal(compile_cmd(3, bad_e), 2);
  const char *bad_h[] = {pat, "--emit", "asm", "--header", "x.h"};
  assert_int_equal(compile_cmd(5, bad_h), 2);
}

/* The host: dlopens the kernel library, runs its entry, checks it against
 * the interpreter through libspat.so. */
static const char *const host_main =
    "#include <dlfcn.h>\n"
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"spat.h\"\n"
    "typedef int (*docs_fn)(const spat_tensors *, int64_t, const int32_t "
    "*);\n"
    "int main(int argc, char **argv) {\n"
    "  enum { H = 2, L = 120, D = 32 };\n"
    "  (void)argc;\n"
    "  void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
    "  if (!so) { printf(\"dlopen: %s\\n\", dlerror()); return 1; }\n"
    "  docs_fn fn = (docs_fn)dlsym(so, \"docs\");\n"
    "  if (!fn) return 2;\n"
    "  size_t n = (size_t)H * L * D;\n"
    "  float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);\n"
    "  float *o = calloc(n, 4), *r = calloc(n, 4);\n"
    "  int32_t doc[L];\n"
    "  for (int j = 0; j < L; j++) doc[j] = j / 33;\n"
    "  for (size_t x = 0; x < n; x++) {\n"
    "    q[x] = (float)((x * 7) % 13) / 13 - .5f;\n"
    "    k[x] = (float)((x * 5) % 11) / 11 - .5f;\n"
    "    v[x] = (float)((x * 3) % 17) / 17 - .5f; }\n"
    "  spat_tensors t = {1, H, H, L, L, q, k, v, o, NULL, 0, NULL};\n"
    "  if (fn(&t, 3, doc) != SPAT_OK) return 3;\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, "
    "SPAT_BACKEND_INTERP, 0, SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_file(c, argv[2], NULL, &p) ||\n"
    "      spat_compile(p, &opt, &ker)) return 4;\n"
    "  t.o = r;\n"
    "  if (spat_kernel_run(ker, &t, (int64_t)3, doc)) return 5;\n"
    "  double worst = 0;\n"
    "  for (size_t x = 0; x < n; x++) worst = fmax(worst, fabs(o[x] - "
    "r[x]));\n"
    "  printf(\"max |so - interp| = %.2e\\n\", worst);\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  dlclose(so);\n"
    "  free(q), free(k), free(v), free(o), free(r);\n"
    "  if (!(worst < 1e-4)) return 6;\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

/* --emit shared: a library a host dlopens. */
static void test_emit_shared(void **state) {
  fixture *f = *state;
  const char *b = getenv("B"), *san = getenv("SAN");
  char libdir[PATH_MAX];
  assert_non_null(realpath(b ? b : "build", libdir));
  assert_int_equal(setenv("SPAT_LIBDIR", libdir, 1), 0);
  char pat[128], so[128], hdr[128], mainc[128];
  snprintf(pat, sizeof pat, "%s/docs.pat", f->dir);
  snprintf(so, sizeof so, "%s/docs.so", f->dir);
  snprintf(hdr, sizeof hdr, "%s/docs.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  write_file(pat, docs_src);
  const char *args[] = {pat, "--emit", "shared", "--dim", "32", "-o", so};
  assert_int_equal(compile_cmd(7, args), 0);
  assert_true(file_has(hdr, "int docs(const spat_tensors *t"));
  write_file(mainc, host_main);
  char cmd[3 * PATH_MAX];
  snprintf(cmd, sizeof cmd,
           "cc %s -std=c11 -Wall -Wextra -Werror -Iinclude -o '%s/main' "
           "'%s' -L'%s' -Wl,-rpath,'%s' -lspat -ldl -lm >'%s/out' 2>&1 && "
           "'%s/main' '%s' '%s' >'%s/out' 2>&1",
           san ? san : "", f->dir, mainc, libdir, libdir, f->dir, f->dir, so,
           pat, f->dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof cmd, "sed 's/^/  | /' '%s/out' >&2", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "  (no output)\n");
  }
  assert_int_equal(rc, 0);
  assert_true(output_has(f, "ok"));
  unsetenv("SPAT_LIBDIR");
}

/* A missing file: the shared CLI message and status. */
static void test_compile_missing_file(void **state) {
  fixture *f = *state;
  char path[128], cmd[512];
  snprintf(path, sizeof path, "%s/out", f->dir);
  fflush(stderr);
  int saved = dup(2);
  FILE *fp = freopen(path, "w", stderr);
  assert_non_null(fp);
  int rc = compile_cmd(1, (const char *[]){"nope.pat"});
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_int_equal(rc, 1);
  snprintf(cmd, sizeof cmd, "spatc: error: nope.pat: No such file or directory");
  assert_true(output_has(f, cmd));
}

/* ---- AOT against JIT, and the disk cache ---------------------------------- */

enum { CB = 1, CH = 2, CL = 300, CD = 64 };

typedef struct run_out {
  float *o, *lse;
  int from_cache;
} run_out;

/* Compiles patterns/<file> (pattern name, one parameter override) with the
 * JIT, through the disk cache when cache, and runs it on fixed tensors with
 * n for a runtime scalar, doc for an int input and cent for a float input
 * (route's centroids: up to 16 per head). */
static run_out run_library(const char *file, const char *name,
                           const char *param, int64_t value, int cache,
                           spat_backend be) {
  size_t nq = (size_t)CB * CH * CL * CD;
  float *q = malloc(nq * 4), *k = malloc(nq * 4), *v = malloc(nq * 4);
  run_out r = {calloc(nq, 4), calloc((size_t)CB * CH * CL, 4), -1};
  assert_true(q && k && v && r.o && r.lse);
  uint64_t s = 88172645463325252ull;
  for (size_t x = 0; x < 3 * nq; x++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    float val = (float)(s >> 40) / (float)(1 << 24) - 0.5f;
    (x < nq ? q : x < 2 * nq ? k : v)[x % nq] = val;
  }
  int32_t doc[CL];
  for (int j = 0; j < CL; j++) doc[j] = j / 70;
  static float cent[CH * 16 * CD];
  for (size_t x = 0; x < sizeof cent / sizeof *cent; x++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    cent[x] = (float)(s >> 40) / (float)(1 << 24) - 0.5f;
  }
  spat_ctx *c = spat_ctx_new();
  spat_pattern *p = NULL;
  spat_kernel *ker = NULL;
  char path[256];
  snprintf(path, sizeof path, "patterns/%s", file);
  spat_compile_options o = {CD, SPAT_LAYOUT_BHLD, 2, be, cache, 0};
  spat_status st = spat_pattern_parse_file(c, path, name, &p);
  if (st == SPAT_OK && param) st = spat_pattern_set_param(p, param, value);
  if (st == SPAT_OK) st = spat_compile(p, &o, &ker);
  if (st != SPAT_OK) fprintf(stderr, "%s: %s\n", file, spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  r.from_cache = spat_kernel_signature(ker)->from_cache;
  spat_tensors t = {CB, CH, CH, CL, CL, q, k, v, r.o, r.lse, 0, NULL};
  spat_value args[2];
  size_t na = 0;
  const spat_signature *sig = spat_kernel_signature(ker);
  for (size_t a = 0; a < sig->n_args; a++)
    args[na++] = sig->args[a].kind == SPAT_KIND_SCALAR        ? spat_scalar(7)
                 : sig->args[a].kind == SPAT_KIND_FLOAT_INPUT ? spat_input_f32(cent)
                                                              : spat_input(doc);
  st = spat_kernel_call(ker, &t, args, na);
  if (st != SPAT_OK) fprintf(stderr, "%s: %s\n", file, spat_ctx_error(c));
  assert_int_equal(st, SPAT_OK);
  spat_kernel_free(ker);
  spat_pattern_free(p);
  spat_ctx_free(c);
  free(q), free(k), free(v);
  return r;
}

static void run_free(run_out *r) {
  free(r->o);
  free(r->lse);
}

static int cache_at(const fixture *f) {
  char xdg[128];
  snprintf(xdg, sizeof xdg, "%s/xdg", f->dir);
  return setenv("XDG_CACHE_HOME", xdg, 1);
}

/* The AOT object (spatc compile's code path, here linked by the disk cache)
 * and the JIT give bit-identical o and lse: the same IR, code generator,
 * passes and target, and the same driver loop. */
static void test_aot_vs_jit(void **state) {
  fixture *f = *state;
  assert_int_equal(cache_at(f), 0);
  static const struct {
    const char *file, *name, *param;
    int64_t value;
  } cases[] = {
      {"longformer.pat", NULL, "w", 64, },
      {"document.pat", "document", NULL, 0}, /* an input array */
      {"streaming_llm.pat", NULL, "w", 50},  /* a runtime scalar */
      {"bigbird.pat", NULL, "b", 16},
      /* rows of inputs and diagonals: the rows table built per run */
      {"v2/minference.pat", "vertical_slash", "nv", 5},
      {"v2/routing.pat", "routing", "n", 4}, /* route(C) & causal */
      {"v2/routing.pat", "routing_local", NULL, 0},
  };
  size_t nq = (size_t)CB * CH * CL * CD, nl = (size_t)CB * CH * CL;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    run_out jit = run_library(cases[c].file, cases[c].name, cases[c].param,
                              cases[c].value, 0, SPAT_BACKEND_JIT);
    run_out aot = run_library(cases[c].file, cases[c].name, cases[c].param,
                              cases[c].value, 1, SPAT_BACKEND_JIT);
    run_out ref = run_library(cases[c].file, cases[c].name, cases[c].param,
                              cases[c].value, 0, SPAT_BACKEND_INTERP);
    assert_int_equal(jit.from_cache, 0);
    assert_int_equal(aot.from_cache, 0); /* compiled into the cache now */
    if (memcmp(jit.o, aot.o, nq * 4) != 0 ||
        memcmp(jit.lse, aot.lse, nl * 4) != 0)
      fail_msg("%s: AOT and JIT outputs differ", cases[c].file);
    double worst = 0; /* and both are right */
    for (size_t x = 0; x < nq; x++)
      worst = fmax(worst, fabs((double)aot.o[x] - ref.o[x]));
    if (!(worst < 2e-5)) fail_msg("%s: |aot - interp| = %g", cases[c].file, worst);
    run_free(&jit), run_free(&aot), run_free(&ref);
  }
  unsetenv("XDG_CACHE_HOME");
}

/* The one entry file of the cache directory (path into buf). */
static int only_entry(const fixture *f, char *buf, size_t n) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/xdg/spatc", f->dir);
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int count = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (strstr(e->d_name, ".spk") && !strstr(e->d_name, ".tmp")) {
      snprintf(buf, n, "%s/%s", dir, e->d_name);
      count++;
    }
  closedir(d);
  return count;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *slurp(const char *path, long n) {
  unsigned char *b = malloc((size_t)n);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return b;
}

typedef struct seen {
  int n, valid;
  char key[16384];
  char problem[256];
} seen;

static void note_entry(void *user, const aot_cache_entry *e) {
  seen *s = user;
  s->n++;
  s->valid += e->valid;
  if (e->valid) snprintf(s->key, sizeof s->key, "%s", e->key);
  else snprintf(s->problem, sizeof s->problem, "%s", e->problem);
}

/* Truncated and corrupted entries are detected, never linked, and
 * rewritten; the kernel stays right.  The key holds everything the object
 * depends on. */
static void test_cache_damage(void **state) {
  fixture *f = *state;
  assert_int_equal(cache_at(f), 0);
  size_t nq = (size_t)CB * CH * CL * CD;
  run_out ref = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                            SPAT_BACKEND_JIT);
  assert_int_equal(ref.from_cache, 0);
  char entry[512], dir[128], err[256];
  snprintf(dir, sizeof dir, "%s/xdg/spatc", f->dir);
  assert_int_equal(only_entry(f, entry, sizeof entry), 1);
  long size = file_size(entry);
  assert_true(size > 1000);
  unsigned char *good = slurp(entry, size);

  seen s = {0};
  assert_int_equal(aot_cache_list(dir, note_entry, &s, err, sizeof err), 1);
  assert_int_equal(s.valid, 1);
  static const char *const parts[] = {
      "spatc 0.1.0 ", "aot-abi ", " llvm 19.", "\ncpu ", "\nfeatures ",
      "D 64 layout 0 threads 2",
      "pattern streaming_llm(w = 40, runtime n_sink = 4) =", "window(40, 0)"};
  for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
    if (strstr(s.key, parts[k]) == NULL)
      fail_msg("key lacks '%s':\n%s", parts[k], s.key);
  /* The host's features as LLVM gives them: "+a,-b,...", or nothing (under
   * valgrind, or on a CPU LLVM does not know); no assumption which. */
  const char *feat = strstr(s.key, "\nfeatures ") + strlen("\nfeatures ");
  for (const char *x = feat; *x != '\n' && *x != '\0'; x++) {
    if (x == feat || x[-1] == ',')
      if (*x != '+' && *x != '-') fail_msg("bad features line:\n%s", s.key);
  }

  run_out hit = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                            SPAT_BACKEND_JIT);
  assert_int_equal(hit.from_cache, 1);
  assert_memory_equal(hit.o, ref.o, nq * 4);
  run_free(&hit);

  for (int damage = 0; damage < 3; damage++) {
    if (damage == 0) { /* truncated */
      assert_int_equal(truncate(entry, size / 2), 0);
    } else { /* one byte flipped: in the object, then in the key */
      long at = damage == 1 ? size * 3 / 4 : 40;
      FILE *fp = fopen(entry, "r+b");
      assert_non_null(fp);
      assert_int_equal(fseek(fp, at, SEEK_SET), 0);
      assert_int_equal(fputc(good[at] ^ 0x10, fp), good[at] ^ 0x10);
      assert_int_equal(fclose(fp), 0);
    }
    seen d = {0};
    assert_int_equal(aot_cache_list(dir, note_entry, &d, err, sizeof err), 1);
    assert_int_equal(d.valid, 0);
    assert_non_null(strstr(d.problem, damage == 0 ? "truncated" : "checksum"));
    run_out r = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                            SPAT_BACKEND_JIT);
    assert_int_equal(r.from_cache, 0); /* rebuilt, not loaded */
    assert_memory_equal(r.o, ref.o, nq * 4);
    assert_memory_equal(r.lse, ref.lse, (size_t)CB * CH * CL * 4);
    run_free(&r);
    assert_int_equal(only_entry(f, entry, sizeof entry), 1);
    assert_int_equal(file_size(entry), size); /* rewritten whole */
    seen w = {0};
    assert_int_equal(aot_cache_list(dir, note_entry, &w, err, sizeof err), 1);
    assert_int_equal(w.valid, 1);
    run_out again = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                                SPAT_BACKEND_JIT);
    assert_int_equal(again.from_cache, 1);
    run_free(&again);
  }
  free(good);

  /* A FIFO at the entry's path and at its temporary file's: refused, never
   * waited on (the alarm turns a hang into a failure); the kernel is
   * compiled and the entry written anew as a regular file. */
  alarm(300);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", entry, (long)getpid());
  assert_int_equal(remove(entry), 0);
  assert_int_equal(mkfifo(entry, 0644), 0);
  assert_int_equal(mkfifo(tmp, 0644), 0);
  seen q = {0};
  assert_int_equal(aot_cache_list(dir, note_entry, &q, err, sizeof err), 1);
  assert_int_equal(q.valid, 0);
  assert_non_null(strstr(q.problem, "not a regular file (a FIFO)"));
  run_out fr = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                           SPAT_BACKEND_JIT);
  assert_int_equal(fr.from_cache, 0);
  assert_memory_equal(fr.o, ref.o, nq * 4);
  run_free(&fr);
  struct stat est;
  assert_int_equal(stat(entry, &est), 0);
  assert_true(S_ISREG(est.st_mode) && est.st_size == size);
  /* temporary files have unique names (mkstemp), so a FIFO where one could
   * be is never opened: left as it was */
  assert_int_equal(stat(tmp, &est), 0);
  assert_true(S_ISFIFO(est.st_mode));
  assert_int_equal(remove(tmp), 0);
  fr = run_library("streaming_llm.pat", NULL, "w", 40, 1, SPAT_BACKEND_JIT);
  assert_int_equal(fr.from_cache, 1);
  run_free(&fr);
  alarm(0);

  /* another parameter value is another entry; clear empties the cache */
  run_out other = run_library("streaming_llm.pat", NULL, "w", 41, 1,
                              SPAT_BACKEND_JIT);
  assert_int_equal(other.from_cache, 0);
  run_free(&other);
  assert_int_equal(only_entry(f, entry, sizeof entry), 2);
  /* an intact entry of another key under this key's name (a hash
   * collision) is not loaded either */
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && set -- $(ls -S *.spk) && cp \"$1\" x && "
           "for e in *.spk; do cp x \"$e\"; done && rm x", dir);
  assert_int_equal(system(cmd), 0);
  run_out w40 = run_library("streaming_llm.pat", NULL, "w", 40, 1,
                            SPAT_BACKEND_JIT);
  run_out w41 = run_library("streaming_llm.pat", NULL, "w", 41, 1,
                            SPAT_BACKEND_JIT);
  assert_int_equal(w40.from_cache + w41.from_cache, 1); /* one was rebuilt */
  assert_memory_equal(w40.o, ref.o, nq * 4);
  run_free(&w40), run_free(&w41);
  assert_int_equal(aot_cache_clear(dir, err, sizeof err), 2);
  assert_int_equal(only_entry(f, entry, sizeof entry), 0);
  run_free(&ref);
  unsetenv("XDG_CACHE_HOME");
}

/* The object's backward entry against the interpreter's backward (through
 * the public API), a top-k pattern with GQA and BLHD. */
static const char *const bwd_src =
    "pattern bw(runtime n = 3) = window(n, 0) | topk(4, causal);\n";
static const char *const bwd_main =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"kernel.h\"\n"
    "static float rnd(unsigned *s) { *s = *s * 1103515245u + 12345u;\n"
    "  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }\n"
    "int main(void) {\n"
    "  enum { H = 4, HK = 2, LQ = 75, LK = 90, D = 32 };\n"
    "  size_t nq = (size_t)H * LQ * D, nk = (size_t)HK * LK * D;\n"
    "  unsigned seed = 7;\n"
    "  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4);\n"
    "  float *dout = malloc(nq * 4), *o = calloc(nq, 4), *lse = calloc(H * LQ, 4);\n"
    "  float *g[2][3];\n"
    "  for (int x = 0; x < 2; x++) { g[x][0] = calloc(nq, 4);\n"
    "    g[x][1] = calloc(nk, 4); g[x][2] = calloc(nk, 4); }\n"
    "  for (size_t x = 0; x < nq; x++) q[x] = rnd(&seed), dout[x] = rnd(&seed);\n"
    "  for (size_t x = 0; x < nk; x++) k[x] = rnd(&seed), v[x] = rnd(&seed);\n"
    "  spat_tensors t = {1, H, HK, LQ, LK, q, k, v, o, lse, 0, NULL};\n"
    "  if (bw(&t, 3) != SPAT_OK) return 1;\n"
    "  spat_grads ga = {dout, NULL, g[0][0], g[0][1], g[0][2], NULL};\n"
    "  char err[256];\n"
    "  if (bw_backward_ex(err, sizeof err, &t, &ga, 3) != SPAT_OK) {\n"
    "    printf(\"aot: %s\\n\", err); return 2; }\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BLHD, 1, SPAT_BACKEND_INTERP, 0,\n"
    "                              SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_string(c, \"b.pat\", \"pattern bw(runtime n = 3) = "
    "window(n, 0) | topk(4, causal);\", NULL, &p) || spat_compile(p, &opt, &ker)) {\n"
    "    printf(\"api: %s\\n\", spat_ctx_error(c)); return 3; }\n"
    "  spat_grads gi = {dout, NULL, g[1][0], g[1][1], g[1][2], NULL};\n"
    "  spat_value n = spat_scalar(3);\n"
    "  if (spat_kernel_backward(ker, &t, &gi, &n, 1)) return 4;\n"
    "  double worst = 0;\n"
    "  for (int x = 0; x < 3; x++)\n"
    "    for (size_t y = 0; y < (x ? nk : nq); y++)\n"
    "      worst = fmax(worst, fabs(g[0][x][y] - g[1][x][y]));\n"
    "  printf(\"max |aot - interp| = %.2e\\n\", worst);\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  free(q), free(k), free(v), free(dout), free(o), free(lse);\n"
    "  for (int x = 0; x < 2; x++) free(g[x][0]), free(g[x][1]), free(g[x][2]);\n"
    "  if (!(worst < 1e-4)) return 5;\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

static void test_backward_entry(void **state) {
  fixture *f = *state;
  ir_program *p = load(f, bwd_src, NULL, 0);
  char obj[128], hdr[128], mainc[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  aot_opts o = {32, 1, 2, NULL, NULL, "b.pat", 0, 0};
  int rc = aot_emit(p, &o, obj, hdr, err, sizeof err);
  if (rc != 0) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(file_has(hdr, "int bw_backward(const spat_tensors *t, "
                            "const spat_grads *grads_, int64_t n);"));
  write_file(mainc, bwd_main);
  assert_int_equal(build_and_run(f), 0);
  assert_true(output_has(f, "ok"));
}

/* A score pattern's object (ALiBi, a float input): forward, and backward
 * with the slopes' gradient, against the interpreter's through the API. */
static const char *const score_src =
    "pattern al(input slope: float[H]) = causal with score s - slope[h] * (i - j);\n";
static const char *const score_main =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"kernel.h\"\n"
    "static float rnd(unsigned *s) { *s = *s * 1103515245u + 12345u;\n"
    "  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }\n"
    "int main(void) {\n"
    "  enum { H = 2, LQ = 75, LK = 90, D = 32 };\n"
    "  size_t nq = (size_t)H * LQ * D, nk = (size_t)H * LK * D;\n"
    "  unsigned seed = 9;\n"
    "  float slope[H] = {0.25f, 0.0625f}, ds[2][H];\n"
    "  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4);\n"
    "  float *dout = malloc(nq * 4), *o[2] = {calloc(nq, 4), calloc(nq, 4)};\n"
    "  float *lse = calloc(H * LQ, 4), *g[2][3];\n"
    "  for (int x = 0; x < 2; x++) { g[x][0] = calloc(nq, 4);\n"
    "    g[x][1] = calloc(nk, 4); g[x][2] = calloc(nk, 4); }\n"
    "  for (size_t x = 0; x < nq; x++) q[x] = rnd(&seed), dout[x] = rnd(&seed);\n"
    "  for (size_t x = 0; x < nk; x++) k[x] = rnd(&seed), v[x] = rnd(&seed);\n"
    "  spat_tensors t = {1, H, H, LQ, LK, q, k, v, o[0], lse, 0, NULL};\n"
    "  char err[256];\n"
    "  if (al_ex(err, sizeof err, &t, slope) != SPAT_OK) { printf(\"aot: %s\\n\", err); return 1; }\n"
    "  float *din0[1] = {ds[0]}, *din1[1] = {ds[1]};\n"
    "  spat_grads ga = {dout, NULL, g[0][0], g[0][1], g[0][2], din0};\n"
    "  if (al_backward_ex(err, sizeof err, &t, &ga, slope) != SPAT_OK) {\n"
    "    printf(\"aot: %s\\n\", err); return 2; }\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, SPAT_BACKEND_INTERP, 0,\n"
    "                              SPAT_DTYPE_F32};\n"
    "  if (spat_pattern_parse_string(c, \"s.pat\", \"pattern al(input slope: float[H]) = "
    "causal with score s - slope[h] * (i - j);\", NULL, &p) || spat_compile(p, &opt, &ker)) {\n"
    "    printf(\"api: %s\\n\", spat_ctx_error(c)); return 3; }\n"
    "  spat_value a = spat_input_f32(slope);\n"
    "  spat_tensors ti = t;\n"
    "  ti.o = o[1];\n"
    "  float *lse1 = calloc(H * LQ, 4);\n"
    "  ti.lse = lse1;\n"
    "  if (spat_kernel_call(ker, &ti, &a, 1)) return 4;\n"
    "  spat_grads gi = {dout, NULL, g[1][0], g[1][1], g[1][2], din1};\n"
    "  if (spat_kernel_backward(ker, &t, &gi, &a, 1)) return 5;\n"
    "  double worst = 0;\n"
    "  for (size_t y = 0; y < nq; y++) worst = fmax(worst, fabs(o[0][y] - o[1][y]));\n"
    "  for (int x = 0; x < 3; x++)\n"
    "    for (size_t y = 0; y < (x ? nk : nq); y++)\n"
    "      worst = fmax(worst, fabs(g[0][x][y] - g[1][x][y]));\n"
    "  for (int h = 0; h < H; h++)\n"
    "    worst = fmax(worst, fabs(ds[0][h] - ds[1][h]) / (1 + fabs(ds[1][h])));\n"
    "  printf(\"max |aot - interp| = %.2e, dslope %g %g\\n\", worst, ds[0][0], ds[0][1]);\n"
    "  spat_kernel_free(ker); spat_pattern_free(p); spat_ctx_free(c);\n"
    "  free(q), free(k), free(v), free(dout), free(o[0]), free(o[1]), free(lse), free(lse1);\n"
    "  for (int x = 0; x < 2; x++) free(g[x][0]), free(g[x][1]), free(g[x][2]);\n"
    "  if (!(worst < 1e-3) || ds[1][0] == 0) return 6;\n"
    "  puts(\"ok\");\n"
    "  return 0;\n"
    "}\n";

static void test_score_kernel(void **state) {
  fixture *f = *state;
  ir_program *p = load(f, score_src, NULL, 0);
  char obj[128], hdr[128], mainc[128], err[512] = "";
  snprintf(obj, sizeof obj, "%s/kernel.o", f->dir);
  snprintf(hdr, sizeof hdr, "%s/kernel.h", f->dir);
  snprintf(mainc, sizeof mainc, "%s/main.c", f->dir);
  aot_opts o = {32, 0, 1, NULL, NULL, "s.pat", 0, 0};
  int rc = aot_emit(p, &o, obj, hdr, err, sizeof err);
  if (rc != 0) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(file_has(hdr, "int al_backward(const spat_tensors *t, "
                            "const spat_grads *grads_, const float *slope);"));
  write_file(mainc, score_main);
  assert_int_equal(build_and_run(f), 0);
  assert_true(output_has(f, "ok"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identifiers),
      cmocka_unit_test_setup_teardown(test_emit_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_docs_kernel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extern_kernel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compile_command, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_arguments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_emit_kinds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_score_avx512, setup, teardown),
      cmocka_unit_test_setup_teardown(test_emit_shared, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compile_missing_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_aot_vs_jit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_damage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backward_entry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_score_kernel, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
