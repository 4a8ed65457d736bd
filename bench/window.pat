# Benchmark patterns (not part of the library): a plain sliding window, so
# that the C row-loop baseline computes exactly the same mask, and causal
# attention, the dense end of the scale; full_only: every tile dense.
pattern window_only(w = 256) = window(w, w);
pattern causal_only = causal;
pattern causal_window(w = 512) = window(w, 0);
pattern full_only = full;
