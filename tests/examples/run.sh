#!/usr/bin/env bash
# tests/examples/run.sh: builds every program in examples/ (they use only
# include/spat.h) against the built library, runs them, and checks what they
# print; each example itself compares its JIT result with the reference
# interpreter.  Last, installs into a temporary prefix and builds an example
# with `pkg-config --cflags --libs spat` alone.
# Run from the repository root (make test does).  Prints "ok NAME" /
# "FAIL NAME" per check and closes with "N passed, N failed".
set -u
B=${B:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
LLVM_CONFIG=${LLVM_CONFIG:-/usr/lib/llvm-19/bin/llvm-config}
LLVMLIB=$("$LLVM_CONFIG" --libdir)
ROOT=$PWD
T=$(mktemp -d "${TMPDIR:-/tmp}/spat-examples.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1${2:+: $2}"
  [ -s "$T/out" ] && sed 's/^/  out: /' "$T/out" | head -20
  failed=$((failed + 1))
}
# run NAME CMD...: output (stdout and stderr) in $T/out, status in rc.
run() { shift; "$@" >"$T/out" 2>&1; rc=$?; }
has() { grep -qF -- "$1" "$T/out"; }

SAN=${SAN:-}  # make asan / ubsan: the library was built with these
CFLAGS="-std=c11 -O1 -Wall -Wextra -Wpedantic -Werror -Iinclude $SAN"
LIBS="$B/libspat.a -L$LLVMLIB -Wl,-rpath,$LLVMLIB -lLLVM-19 -lffi -lpthread -lm $SAN"
for ex in jit_string generic extern_pred; do
  # shellcheck disable=SC2086
  if cc $CFLAGS "examples/$ex.c" -o "$T/$ex" $LIBS 2>"$T/out"; then
    ok "build $ex"
  else
    fail "build $ex"
  fi
done

# The AOT example: spatc compile makes document.o and document.h first.
SPATC=${SPATC:-$B/spatc}
case $SPATC in /*) ;; *) SPATC=$ROOT/$SPATC ;; esac
run spatc_compile "$SPATC" compile patterns/document.pat --pattern document \
  --dim 64 -o "$T/document.o"
if [ "$rc" -eq 0 ] && [ -f "$T/document.o" ] && [ -f "$T/document.h" ]; then
  ok "spatc compile patterns/document.pat"
  # shellcheck disable=SC2086
  if cc $CFLAGS -I"$T" examples/aot.c "$T/document.o" -o "$T/aot" $LIBS \
       >"$T/out" 2>&1; then
    ok "build aot"
    run aot "$T/aot" patterns/document.pat
    if [ "$rc" -eq 0 ] && has "document (AOT): B=2 H=4 L=200 D=64" &&
       has "ok"; then
      ok "aot matches the interpreter"
    else fail "aot" "exit $rc"; fi
  else fail "build aot"; fi
else fail "spatc compile" "exit $rc"; fi

run jit_string "$T/jit_string"
if [ "$rc" -eq 0 ] && has "longformer: B=1 H=4 L=300 D=64" && has "ok"; then
  ok "jit_string matches the interpreter"
else fail "jit_string" "exit $rc"; fi

run extern_pred "$T/extern_pred"
if [ "$rc" -eq 0 ] && has "unregistered:" && has "same_bucket" &&
   has "logsparse: max |jit - interp|" && has "ok"; then
  ok "extern_pred matches the interpreter"
else fail "extern_pred" "exit $rc"; fi

cat >"$T/docs.pat" <<'PAT'
# packed documents with a few sink columns and a window
pattern docs(w = 16, runtime n = 2, input doc: int[]) =
    (causal & where(doc[i] == doc[j]) & window(w, 0)) | (causal & cols(0 .. n));
PAT
run generic "$T/generic" "$T/docs.pat" --len 150 --heads 3 --dim 16
if [ "$rc" -eq 0 ] && has "param w = 16" && has "scalar n = 2 (default)" &&
   has "input  doc: document ids" &&
   has "int (*)(const spat_tensors *t, int64_t n, const int32_t *doc)" &&
   has "ok"; then
  ok "generic: defaults"
else fail "generic: defaults" "exit $rc"; fi

run generic "$T/generic" "$T/docs.pat" -D w=40 n=7 --len 100
if [ "$rc" -eq 0 ] && has "param w = 40" && has "scalar n = 7" &&
   ! has "(default)" && has "ok"; then
  ok "generic: -D and a runtime scalar"
else fail "generic: -D and a runtime scalar" "exit $rc"; fi

run generic "$T/generic" "$T/docs.pat" -D nosuch=1
if [ "$rc" -eq 1 ] && has "no parameter 'nosuch'"; then
  ok "generic: unknown parameter is an error"
else fail "generic: unknown parameter" "exit $rc"; fi

printf 'pattern bad = window(3) | nosuch;\n' >"$T/bad.pat"
run generic "$T/generic" "$T/bad.pat"
if [ "$rc" -eq 1 ] && has "bad.pat:1:" && has "error:"; then
  ok "generic: a pattern error is reported with its location"
else fail "generic: pattern error" "exit $rc"; fi

# Every library pattern, through the generic runner.
n_lib=0 bad_lib=""
for p in patterns/*.pat; do
  [ -f "$p" ] || continue
  n_lib=$((n_lib + 1))
  run generic "$T/generic" "$p" --len 96 --heads 2 --dim 16
  { [ "$rc" -eq 0 ] && has "ok"; } || bad_lib="$bad_lib $(basename "$p")"
done
if [ "$n_lib" -gt 0 ]; then
  if [ -z "$bad_lib" ]; then ok "generic: all $n_lib library patterns match"
  else fail "generic: library patterns" "mismatch or error:$bad_lib"; fi
fi

# docs/api.md: every C block is a complete program that compiles, and is an
# example verbatim (so the documentation cannot drift from tested code).
mkdir -p "$T/doc"
awk -v dir="$T/doc" '/^```c$/ {n++; f = dir "/block" n ".c"; next}
  /^```$/ {f = ""; next} f != "" {print > f}' docs/api.md
n_blocks=0 bad_blocks=""
for blk in "$T"/doc/block*.c; do
  [ -f "$blk" ] || continue
  n_blocks=$((n_blocks + 1))
  same=""
  for ex in examples/*.c; do cmp -s "$blk" "$ex" && same=$ex; done
  # shellcheck disable=SC2086
  if [ -z "$same" ] || ! cc $CFLAGS -I"$T" -c "$blk" -o "$blk.o" 2>/dev/null; then
    bad_blocks="$bad_blocks $(basename "$blk")"
  fi
done
if [ "$n_blocks" -ge 4 ] && [ -z "$bad_blocks" ]; then
  ok "docs/api.md: $n_blocks examples, verbatim and compiling"
else fail "docs/api.md examples" "$n_blocks blocks; bad:$bad_blocks (scripts/api-doc.sh)"; fi

# make install into a temporary prefix, then build against it by pkg-config.
P=$T/prefix
if make -s -C "$ROOT" install PREFIX="$P" B="$B" >"$T/out" 2>&1; then
  ok "make install PREFIX=tmp"
  export PKG_CONFIG_PATH=$P/lib/pkgconfig
  flags=$(pkg-config --cflags --libs spat 2>"$T/out")
  ver=$(pkg-config --modversion spat 2>/dev/null)
  want=$(sed -n 's/^#define SPAT_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/spat.h | paste -sd.)
  if [ "$ver" = "$want" ]; then ok "spat.pc version $ver matches spat.h"
  else fail "spat.pc version" "pc '$ver', spat.h '$want'"; fi
  # shellcheck disable=SC2086
  if (cd "$T" && cc $SAN -std=c11 -Wall -Werror "$ROOT/examples/jit_string.c" \
        -o jit_installed $flags -lm) >"$T/out" 2>&1 &&
     run installed "$T/jit_installed" && [ "$rc" -eq 0 ] && has "ok"; then
    ok "example built with pkg-config --cflags --libs spat runs"
  else fail "example built with pkg-config" "flags: $flags"; fi
  # The same against the static library: Libs must carry its dependencies.
  static_flags=${flags/-lspat/$P/lib/libspat.a}
  # shellcheck disable=SC2086
  if (cd "$T" && cc $SAN -std=c11 -Wall -Werror "$ROOT/examples/extern_pred.c" \
        -o extern_static $static_flags -lm) >"$T/out" 2>&1 &&
     ! nm -D "$T/extern_static" 2>/dev/null | grep -q ' U spat_' &&
     run installed "$T/extern_static" && [ "$rc" -eq 0 ] && has "ok"; then
    ok "example linked statically with libspat.a and the pkg-config Libs runs"
  else fail "static link with pkg-config Libs" "flags: $static_flags"; fi
  missing=""
  for lib in -lspat -lLLVM-19 -lffi -lpthread -lm; do
    case " $flags " in *" $lib "*) ;; *) missing="$missing $lib" ;; esac
  done
  if [ -z "$missing" ]; then ok "pkg-config Libs carry what static linking needs"
  else fail "pkg-config Libs" "missing$missing in: $flags"; fi
else
  fail "make install PREFIX=tmp"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
