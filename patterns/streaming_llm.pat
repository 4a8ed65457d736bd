# StreamingLLM: attention sinks plus a causal sliding window.
#
# Guangxuan Xiao, Yuandong Tian, Beidi Chen, Song Han, Mike Lewis.
# "Efficient Streaming Language Models with Attention Sinks."  2023.
# arXiv:2309.17453.
#
# Section 3.2: the KV cache keeps the "attention sinks (four initial
# tokens)" plus a rolling cache of the most recent tokens.  As a mask over
# absolute positions (bottom-right aligned, so it also describes decoding
# against a cache):
#
#     M(i, j) = j <= i  and  (j < n_sink  or  i - w <= j)
#
# i.e. the current token, the w tokens before it and the first n_sink
# tokens.  n_sink is a runtime scalar (default 4, as in the paper) so one
# compiled kernel serves any number of sinks; w = 1020 gives a cache of
# 4 + 1020 earlier tokens plus the current one.

pattern streaming_llm(runtime n_sink = 4, w = 1020) =
    causal & (cols(0 .. n_sink) | window(w, 0));
