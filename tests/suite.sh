# tests/suite.sh: the frame of the shell suites that drive the spatc binary
# (sourced by tests/cli/run.sh and tests/explore/run.sh).  suite_begin NAME
# makes $SPATC absolute, sets ROOT (the repository root), makes a private
# temporary directory $T (removed on exit) with its own kernel cache, and
# enters it.  ok NAME / fail NAME [WHY] count and print "ok NAME" /
# "FAIL NAME: WHY" (with the head of ./out and ./err); sp ARGS... runs spatc
# with stdout in ./out, stderr in ./err and its status in rc; has FILE TEXT
# greps a fixed string; suite_end prints "N passed, N failed" and fails when
# a test failed.
suite_begin() {
  SPATC=${SPATC:-build/spatc}
  case $SPATC in /*) ;; *) SPATC=$PWD/$SPATC ;; esac
  ROOT=$PWD
  T=$(mktemp -d "${TMPDIR:-/tmp}/spatc-$1.XXXXXX")
  trap 'rm -rf "$T"' EXIT
  export XDG_CACHE_HOME=$T/xdg # the disk kernel cache of run and bench
  cd "$T" || exit 1
  passed=0 failed=0
}
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1${2:+: $2}"
  [ -s out ] && sed 's/^/  stdout: /' out | head -20
  [ -s err ] && sed 's/^/  stderr: /' err | head -20
  failed=$((failed + 1))
}
sp() { "$SPATC" "$@" >out 2>err; rc=$?; }
has() { grep -qF -- "$2" "$1"; }
suite_end() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
