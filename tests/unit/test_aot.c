/* test_aot.c: ahead-of-time kernels (compiler/aot.c, compiler/aot_run.c).
 *
 * Emits objects and headers with aot_emit, then builds and runs small C
 * programs against them and the built library (the test runs from the
 * repository root, like make test; $B names the build directory).  Each
 * program compares its AOT kernel with the reference interpreter through
 * the public API and prints "ok"; the test checks the exit status and that
 * line. */
/* cmocka.h needs these three before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../compiler/spatc_compile.c" /* spatc compile, the command */
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
  char buf[8192];
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  return strstr(buf, s) != NULL;
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
  aot_opts o = {64, 0, 0, "not-c", NULL, NULL, 0};
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
    "  spat_tensors t = {B, H, Hkv, L, L, q, k, v, o, lse, 0};\n"
    "  if (docs_D != 32 || docs_LAYOUT != SPAT_LAYOUT_BLHD) return 10;\n"
    "  if (docs_DEFAULT_n != 2) return 11;\n"
    "  int st = docs(&t, 3, doc);\n"
    "  if (st != SPAT_OK) { printf(\"aot status %d\\n\", st); return 1; }\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BLHD, 1, "
    "SPAT_BACKEND_INTERP, 0};\n"
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
  aot_opts o = {32, 1, 2, NULL, NULL, "aot.pat", 0};
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
    "  spat_tensors t = {1, H, H, L, L, q, k, v, o, NULL, 0};\n"
    "  if (nearby(&t) != SPAT_OK) return 1;\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, "
    "SPAT_BACKEND_INTERP, 0};\n"
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
  aot_opts o = {64, 0, 0, "nearby", NULL, NULL, 0};
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
    "  spat_tensors t = {1, H, H, L, L, q, k, v, o, NULL, 0.3f};\n"
    "  if (many(&t, 1, 0, 2, 0, 0, 1, 3, x, y) != SPAT_OK) return 1;\n"
    "  spat_ctx *c = spat_ctx_new();\n"
    "  spat_pattern *p = NULL;\n"
    "  spat_kernel *ker = NULL;\n"
    "  spat_compile_options opt = {D, SPAT_LAYOUT_BHLD, 1, "
    "SPAT_BACKEND_INTERP, 0};\n"
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
  aot_opts o = {16, 0, 1, NULL, NULL, NULL, 0};
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identifiers),
      cmocka_unit_test_setup_teardown(test_emit_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_docs_kernel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extern_kernel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compile_command, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
