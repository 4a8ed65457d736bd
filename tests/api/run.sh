#!/usr/bin/env bash
# tests/api/run.sh: the shape of the public API as shipped (make test runs
# it from the repository root after building).  Checks that libspat.so
# exports spat_* symbols only and every function include/spat.h declares,
# that spat.h compiles on its own (C99, C11, C++), and that a program linked
# against the shared library sees the version it was compiled with.
# Prints "ok NAME" / "FAIL NAME" per check and closes with "N passed, N failed".
set -u
B=${B:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
SO=$B/libspat.so
H=include/spat.h
T=$(mktemp -d "${TMPDIR:-/tmp}/spat-api.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }

# Defined dynamic symbols, minus the linker's own.
nm -D --defined-only "$SO" 2>"$T/nm.err" |
  awk '$3 !~ /^(_init|_fini|_edata|_end|__bss_start)$/ {print $2, $3}' >"$T/syms"
if [ ! -s "$T/syms" ]; then
  fail "nm" "no symbols read from $SO: $(cat "$T/nm.err")"
else
  bad=$(awk '$1 == "T" && $2 !~ /^spat_/ {print $2}' "$T/syms" | head -5)
  if [ -z "$bad" ]; then ok "exported text symbols all start with spat_"
  else fail "exported text symbols" "not spat_*: $bad"; fi
  bad=$(awk '$1 != "T" {print $1 " " $2}' "$T/syms" | head -5)
  if [ -z "$bad" ]; then ok "no exported data symbols"
  else fail "exported data symbols" "$bad"; fi
fi

# Every function spat.h declares with SPAT_API is exported.
grep -oE 'SPAT_API[^(]*\bspat_[a-z_0-9]+ *\(' "$H" |
  grep -oE 'spat_[a-z_0-9]+ *\($' | tr -d ' (' | sort -u >"$T/declared"
missing=$(awk '$1 == "T" {print $2}' "$T/syms" | sort -u | comm -23 "$T/declared" -)
n_decl=$(wc -l <"$T/declared")
if [ "$n_decl" -ge 20 ] && [ -z "$missing" ]; then
  ok "all $n_decl declared functions exported"
else
  fail "declared functions exported" "declared $n_decl; missing: $missing"
fi

# spat.h on its own, strictly, in C99, C11 and C++.
printf '#include "spat.h"\nint main(void) { return spat_version() == SPAT_VERSION ? 0 : 1; }\n' >"$T/h.c"
for std in c99 c11; do
  if cc -std=$std -Wall -Wextra -Wpedantic -Werror -Iinclude -c "$T/h.c" -o "$T/h.o" 2>"$T/err"
  then ok "spat.h compiles alone ($std)"
  else fail "spat.h compiles alone ($std)" "$(head -5 "$T/err")"; fi
done
cp "$T/h.c" "$T/h.cc"
if c++ -std=c++11 -Wall -Wextra -Werror -Iinclude -c "$T/h.cc" -o "$T/hcc.o" 2>"$T/err"
then ok "spat.h compiles as C++"
else fail "spat.h compiles as C++" "$(head -5 "$T/err")"; fi

# A program linked against libspat.so runs and agrees on the version.
cat >"$T/v.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "spat.h"
int main(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", SPAT_VERSION_MAJOR,
           SPAT_VERSION_MINOR, SPAT_VERSION_PATCH);
  if (spat_version() != SPAT_VERSION) return 1;
  if (strcmp(spat_version_string(), want) != 0) return 2;
  spat_ctx *c = spat_ctx_new();
  if (c == NULL) return 3;
  spat_pattern *p = NULL;
  if (spat_pattern_parse_string(c, "x.pat", "pattern p = causal;", NULL,
                                &p) != SPAT_OK) return 4;
  spat_pattern_free(p);
  spat_ctx_free(c);
  puts(want);
  return 0;
}
C
if cc ${SAN:-} -std=c11 -Iinclude "$T/v.c" -o "$T/v" -L"$B" -Wl,-rpath,"$B" -lspat 2>"$T/err" &&
   "$T/v" >"$T/out" 2>&1
then ok "program linked with libspat.so runs (version $(cat "$T/out"))"
else fail "program linked with libspat.so" "$(head -5 "$T/err" "$T/out")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
