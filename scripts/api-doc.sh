#!/usr/bin/env bash
# scripts/api-doc.sh: rewrites the example programs at the end of
# docs/api.md from examples/*.c (tests/examples/run.sh checks that every C
# block of the document is one of them, verbatim).  Run after editing one.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=(
  "jit_string|JIT a pattern string and run it"
  "generic|A generic runner: spat_kernel_call"
  "extern_pred|An extern predicate"
  "aot|An ahead-of-time kernel"
)
tmp=docs/api.md.tmp
sed '/^### .*(examples\/.*\.c)$/,$d' docs/api.md >"$tmp"
# drop the blank line the cut leaves, then one section per example
sed -i '$ { /^$/d }' "$tmp"
for e in "${examples[@]}"; do
  name=${e%%|*} title=${e#*|}
  printf '\n### %s (examples/%s.c)\n\n```c\n' "$title" "$name" >>"$tmp"
  cat "examples/$name.c" >>"$tmp"
  printf '```\n' >>"$tmp"
done
mv "$tmp" docs/api.md
