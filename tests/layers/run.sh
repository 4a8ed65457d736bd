#!/usr/bin/env bash
# The layer rules, checked on the tree and the built libraries:
#   runtime/ includes nothing from compiler/ or cli/ (an AOT program links it
#   alone); cli/ and bench/ include nothing from compiler/ or runtime/ (they
#   are on spat.h); only compiler/backends/llvm/ includes LLVM; only runtime/ffi.c
#   includes libffi; libspat (static and shared) exports only spat_*; the
#   driver is built without -march=native.
# Prints "ok ..." per check and "N passed, N failed".
set -u
B=${B:-build}
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; printf '  %s\n' "$@"; fail=$((fail + 1)); }

# Header names that live in compiler/ or cli/.
upper=$(find compiler cli -name '*.h' -printf '%f\n' | sort -u)
hits=()
for f in runtime/*.[ch]; do
  while IFS= read -r inc; do
    name=$(basename "$inc")
    if printf '%s\n' "$upper" | grep -qx "$name" || [[ $inc == *compiler/* || $inc == *cli/* ]]; then
      hits+=("$f: #include \"$inc\"")
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done
[ ${#hits[@]} -eq 0 ] && ok "runtime/ includes no compiler/ or cli/ header" ||
  bad "runtime/ includes compiler/ or cli/ headers" "${hits[@]}"

# cli/ and bench/ are on the public API: they include spat.h and their own
# headers, nothing from compiler/ or runtime/.
inner=$(find compiler runtime -name '*.h' -printf '%f\n' | sort -u)
hits=()
for f in cli/*.[ch] bench/*.[ch]; do
  while IFS= read -r inc; do
    name=$(basename "$inc")
    if printf '%s\n' "$inner" | grep -qx "$name" || [[ $inc == *compiler/* || $inc == *runtime/* ]]; then
      hits+=("$f: #include \"$inc\"")
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done
[ ${#hits[@]} -eq 0 ] && ok "cli/ and bench/ include only spat.h of the library" ||
  bad "cli/ or bench/ include compiler/ or runtime/ headers" "${hits[@]}"

mapfile -t llvm < <(grep -rlE '#[[:space:]]*include[[:space:]]*<llvm-c/' compiler runtime cli bench include |
                    grep -v '^compiler/backends/llvm/' || true)
[ ${#llvm[@]} -eq 0 ] && ok "only compiler/backends/llvm/ includes LLVM" ||
  bad "LLVM headers outside compiler/backends/llvm/" "${llvm[@]}"

mapfile -t ffi < <(grep -rlE '#[[:space:]]*include[[:space:]]*<ffi\.h>' compiler runtime cli bench include |
                   grep -vx 'runtime/ffi.c' || true)
[ ${#ffi[@]} -eq 0 ] && ok "only runtime/ffi.c includes libffi" ||
  bad "libffi included outside runtime/ffi.c" "${ffi[@]}"

for lib in "$B/libspat.a" "$B/libspat.so"; do
  if [ ! -f "$lib" ]; then bad "$lib exists" "not built"; continue; fi
  case $lib in
    *.a) syms=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}') ;;
    *) syms=$(nm -D --defined-only "$lib" | awk 'NF == 3 && $2 != "A" {print $3}' |
              grep -vxE '_init|_fini|__bss_start|_edata|_end') ;;
  esac
  other=$(printf '%s\n' "$syms" | grep -v '^spat_' | grep -v '^$' || true)
  [ -z "$other" ] && ok "$(basename "$lib") exports only spat_* ($(printf '%s\n' "$syms" | grep -c .) symbols)" ||
    bad "$(basename "$lib") exports non-spat_ symbols" $other
done

# The driver's objects, as make would build them: no -march=native anywhere.
flags=$(make -s -n -B B="$B" "$B/spatc" 2>/dev/null | grep -E '^(cc|gcc|clang)' || true)
if [ -z "$flags" ]; then bad "make -n shows how spatc is built" "no compile lines"
elif printf '%s\n' "$flags" | grep -q -- '-march=native'; then
  bad "spatc is built without -march=native" "$(printf '%s\n' "$flags" | grep -- '-march=native' | head -3)"
else ok "spatc is built without -march=native"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
