# Benchmark patterns (not part of the library): a plain sliding window, so
# that the C row-loop baseline computes exactly the same mask, and causal
# attention, the dense end of the scale.
pattern window_only(w = 256) = window(w, w);
pattern causal_only = causal;
pattern causal_window(w = 512) = window(w, 0);
# Language v2 score modifications on the same window (bench/run.sh compares
# them with window_only in the same run): ALiBi with per-head slopes (Press
# et al. 2022) and Gemma 2's softcapping.
pattern window_alibi(w = 256, input slope: float[H]) =
    window(w, w) with score s - slope[h] * abs(i - j);
pattern window_softcap(w = 256, cap = 30) =
    window(w, w) with score cap * tanh(s / cap);
