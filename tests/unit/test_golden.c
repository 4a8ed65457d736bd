/* test_golden.c: golden diagnostics.  Every tests/diag/NAME.pat is loaded
 * with fe_load_file (and, when that succeeds, its default pattern is
 * instantiated); the diagnostics must equal tests/diag/NAME.err byte for
 * byte and must contain at least one error.  Run from the repository root
 * (paths in messages are as passed).  SPAT_GOLDEN_UPDATE=1 rewrites the
 * .err files from the current output instead of comparing (review the diff). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend.h"

#define DIAG_DIR "tests/diag"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

static void golden(void **state) {
  const char *name = *state;
  char pat[512], errp[512];
  snprintf(pat, sizeof pat, DIAG_DIR "/%s.pat", name);
  snprintf(errp, sizeof errp, DIAG_DIR "/%s.err", name);
  diag *d = diag_new();
  arena *a = arena_new();
  fe_module *m = fe_load_file(d, a, pat);
  ir_program *p = m ? fe_instantiate(d, m, NULL, NULL, 0) : NULL;
  const char *got = diag_text(d);
  if (getenv("SPAT_GOLDEN_UPDATE")) {
    FILE *f = fopen(errp, "wb");
    assert_non_null(f);
    fputs(got, f);
    fclose(f);
  }
  char *want = slurp(errp);
  if (!want) fail_msg("missing %s", errp);
  if (strcmp(got, want)) {
    print_error("--- %s expected:\n%s--- got:\n%s---\n", errp, want, got);
    fail();
  }
  assert_null(p);
  assert_true(diag_n_errors(d) > 0);
  assert_true(strstr(got, ": error: ") != NULL || strncmp(got, "error: ", 7) == 0);
  free(want);
  arena_free(a);
  diag_free(d);
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

int main(void) {
  DIR *dir = opendir(DIAG_DIR);
  if (!dir) {
    fprintf(stderr, "cannot open %s (run from the repository root)\n", DIAG_DIR);
    return 1;
  }
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".pat")) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      names = realloc(names, sizeof(char *) * (size_t)cap);
    }
    names[n++] = strndup(e->d_name, len - 4);
  }
  closedir(dir);
  qsort(names, (size_t)n, sizeof(char *), cmp_str);
  struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
  for (int k = 0; k < n; k++) {
    tests[k].name = names[k];
    tests[k].test_func = golden;
    tests[k].initial_state = names[k];
  }
  int rc = _cmocka_run_group_tests("golden", tests, (size_t)n, NULL, NULL);
  for (int k = 0; k < n; k++) free(names[k]);
  free(names);
  free(tests);
  return rc;
}
