/* test_diag.c: rendering of diagnostics (diag.h): locations, source lines,
 * carets and tildes, tabs, multi-line spans, notes, spans at the end of the
 * text, counts and clearing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "diag.c"

static void test_basic(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "pattern p =\n    window(w) | global(0 .. g);\n";
  int s = diag_add_source(d, "file.pat", t, strlen(t));
  assert_int_equal(s, 0);
  assert_string_equal(diag_source_name(d, s), "file.pat");
  assert_string_equal(diag_source_text(d, s), t);
  int b = (int)(strstr(t, "w)") - t);
  diag_error(d, (src_span){s, b, b + 1}, "unknown name '%s'", "w");
  assert_string_equal(diag_text(d),
                      "file.pat:2:12: error: unknown name 'w'\n"
                      "    2 |     window(w) | global(0 .. g);\n"
                      "      |            ^\n");
  assert_int_equal(diag_n_errors(d), 1);
  diag_free(d);
}

static void test_tildes_and_note(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "let x = 1;\nlet y = window(3) + 1;\n";
  int s = diag_add_source(d, "a.pat", t, strlen(t));
  int b = (int)(strstr(t, "window") - t);
  diag_error(d, (src_span){s, b, b + 9}, "bad");
  diag_note(d, (src_span){s, 4, 5}, "'%s' declared here", "x");
  assert_string_equal(diag_text(d),
                      "a.pat:2:9: error: bad\n"
                      "    2 | let y = window(3) + 1;\n"
                      "      |         ^~~~~~~~~\n"
                      "a.pat:1:5: note: 'x' declared here\n"
                      "    1 | let x = 1;\n"
                      "      |     ^\n");
  assert_int_equal(diag_n_errors(d), 1);  /* notes do not count */
  diag_free(d);
}

static void test_tabs(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "\tlet\tx = @;";
  int s = diag_add_source(d, "t.pat", t, strlen(t));
  diag_error(d, (src_span){s, 9, 10}, "here");
  assert_string_equal(diag_text(d),
                      "t.pat:1:10: error: here\n"
                      "    1 | \tlet\tx = @;\n"
                      "      | \t   \t    ^\n");
  diag_free(d);
}

static void test_multiline_span_and_eof(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "ab\ncd";
  int s = diag_add_source(d, "m.pat", t, strlen(t));
  diag_error(d, (src_span){s, 0, 5}, "long");   /* tildes stop at the line end */
  diag_error(d, (src_span){s, 5, 5}, "at end"); /* caret just past the text */
  assert_string_equal(diag_text(d),
                      "m.pat:1:1: error: long\n"
                      "    1 | ab\n"
                      "      | ^~\n"
                      "m.pat:2:3: error: at end\n"
                      "    2 | cd\n"
                      "      |   ^\n");
  assert_int_equal(diag_n_errors(d), 2);
  diag_clear(d);
  assert_int_equal(diag_n_errors(d), 0);
  assert_string_equal(diag_text(d), "");
  diag_free(d);
}

static void test_no_location_and_bad_bytes(void **state) {
  (void)state;
  diag *d = diag_new();
  assert_string_equal(diag_text(d), "");
  diag_error(d, SPAN_NONE, "no pattern named '%s'", "zz");
  const char t[] = "a\0b\x01 c\r\nd";
  int s = diag_add_source(d, "n.pat", t, sizeof t - 1);
  diag_error(d, (src_span){s, 5, 6}, "x");
  diag_error(d, (src_span){s, 100, 200}, "clamped"); /* out of range: clamped */
  assert_string_equal(diag_text(d),
                      "error: no pattern named 'zz'\n"
                      "n.pat:1:6: error: x\n"
                      "    1 | a?b? c\n"
                      "      |      ^\n"
                      "n.pat:2:2: error: clamped\n"
                      "    2 | d\n"
                      "      |  ^\n");
  diag_free(d);
}

static void test_utf8_columns(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "let \xc3\xa9t\xc3\xa9 = x;";
  int s = diag_add_source(d, "u.pat", t, strlen(t));
  int b = (int)(strchr(t, 'x') - t);
  diag_error(d, (src_span){s, b, b + 1}, "u");
  /* the column counts bytes; the caret lines up under the character */
  assert_string_equal(diag_text(d),
                      "u.pat:1:13: error: u\n"
                      "    1 | let \xc3\xa9t\xc3\xa9 = x;\n"
                      "      |           ^\n");
  diag_free(d);
}

static void test_loc_and_long_message(void **state) {
  (void)state;
  diag *d = diag_new();
  const char *t = "x\ny\n";
  int s = diag_add_source(d, "l.pat", t, strlen(t));
  char buf[64];
  assert_string_equal(diag_loc(d, (src_span){s, 2, 3}, buf, sizeof buf), "l.pat:2:1");
  assert_string_equal(diag_loc(d, SPAN_NONE, buf, sizeof buf), "<unknown>");
  char big[2000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  diag_error(d, SPAN_NONE, "%s", big);
  assert_int_equal(strlen(diag_text(d)), strlen("error: ") + sizeof big - 1 + 1);
  assert_null(diag_source_name(d, 7));
  diag_free(d);
  diag_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_tildes_and_note),
      cmocka_unit_test(test_tabs),
      cmocka_unit_test(test_multiline_span_and_eof),
      cmocka_unit_test(test_no_location_and_bad_bytes),
      cmocka_unit_test(test_utf8_columns),
      cmocka_unit_test(test_loc_and_long_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
