#!/usr/bin/env bash
# bench/run.sh (make bench): runs `spatc bench` over a set of configurations
# and writes the README's performance table to docs/bench.md.
# Environment: B (build dir), SPATC (the binary), REPEATS (default 5).
set -euo pipefail
B=${B:-build}
SPATC=${SPATC:-$B/spatc}
REPEATS=${REPEATS:-5}
out=docs/bench.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

run() {
  echo "== spatc bench $*" >&2
  "$SPATC" bench "$@" --repeats "$REPEATS" --json >>"$tmp"
}

run bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 64
run bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 64 --threads 1
run bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 128
run bench/window.pat --pattern window_only --len 16384 --heads 2 --dim 64
run bench/window.pat --pattern causal_only --len 4096 --heads 4 --dim 64
run patterns/longformer.pat --len 4096 --heads 8 --dim 64
run patterns/bigbird.pat --len 4096 --heads 8 --dim 64
run patterns/streaming_llm.pat --len 4096 --heads 8 --dim 64
run patterns/streaming_llm.pat --lq 256 --lk 16384 --heads 8 --dim 64
run patterns/sparse_transformer.pat --pattern strided --len 4096 --heads 8 --dim 64
run patterns/sparse_transformer.pat --pattern fixed --len 4096 --heads 8 --dim 64
run patterns/prefix_lm.pat --pattern prefix_lm --len 4096 --heads 8 --dim 64
run patterns/document.pat --pattern document --len 4096 --heads 8 --dim 64
run patterns/dilated.pat --len 4096 --heads 8 --dim 64
run patterns/nsa.pat --len 4096 --heads 8 --kv-heads 2 --dim 64

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
  echo "# Performance"
  echo
  echo "Measured by \`make bench\` (bench/run.sh) on $(nproc) cores of a $cpu,"
  echo "$(date -u '+%Y-%m-%d'), float32, batch 1,"
  echo "median of $REPEATS runs after a warm-up run."
  echo
  echo "| pattern | L | H (kv) | D | threads | density | compile ms | kernel ms | GFLOP/s | % peak | vs C loop | vs dense BLAS |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  awk '
    function f(k,   m) {
      if (match($0, "\"" k "\": (\"[^\"]*\"|[^,}]*)")) {
        m = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4)
        gsub(/"/, "", m)
        return m
      }
      return ""
    }
    {
      L = f("Lq") == f("Lk") ? f("Lq") : f("Lq") "/" f("Lk")
      dense = f("vs_dense") + 0 > 0 ? sprintf("%.1fx", f("vs_dense")) : "n/a"
      loop = sprintf("%.1fx%s", f("vs_loop"), f("loop_exact") == "true" ? "" : "*")
      printf "| %s | %s | %s (%s) | %s | %s | %.3f | %.0f | %.2f | %.1f | %.1f | %s | %s |\n",
        f("pattern"), L, f("H"), f("Hkv"), f("D"), f("threads"), f("density"), f("compile_ms"),
        f("kernel_ms"), f("gflops"), f("peak_pct"), loop, dense
    }' "$tmp"
  echo
  echo "- GFLOP/s count only the allowed (query, key) pairs: 4 * nnz * D per head"
  echo "  (the QK^T and PV multiply-adds); % peak is against 115 GFLOP/s per core"
  echo "  times the threads.  The baselines run with the same number of threads."
  echo "- The machine is shared: timings vary by tens of percent between runs."
  echo "- vs C loop: time of a plain C loop per query row over a contiguous key"
  echo "  window with an online softmax (bench/baselines.c, -O3 -march=native"
  echo "  -ffast-math) divided by the kernel's time.  For window_only it computes"
  echo "  the same mask; elsewhere (*) a causal window of the pattern's mean keys"
  echo "  per row, i.e. the same FLOPs."
  echo "- vs dense BLAS: dense masked attention with OpenBLAS sgemm (S = QK^T,"
  echo "  mask, softmax, O = PV, 64 rows at a time) divided by the kernel's time;"
  echo "  its output also checks the kernel's (max |difference| in the JSON)."
  echo "- compile: median of 5 JIT compiles (codegen, LLVM O3, machine code)."
} >"$out"
echo "wrote $out" >&2
cat "$out"
