# Benchmark patterns (not part of the library): token top-k over causal
# keys, as in "Memory-efficient Transformers via Top-k Attention" (Gupta et
# al. 2021): each query attends to its k highest-scoring earlier keys.
pattern topk_causal(k = 32) = topk(k, causal);
