# Gemma 2: logit soft-capping of the attention scores.
#
# Gemma Team.  "Gemma 2: Improving Open Language Models at a Practical
# Size."  2024.  arXiv:2408.00118.
#
# Section 2 (Table 1 and "Logit soft-capping"): attention logits are capped
# with cap * tanh(logits / cap), cap = 50.0; layers alternate between a
# local sliding window of 4096 tokens and global (causal) attention.
#
#   gemma2_global  causal, score cap * tanh(s / cap)
#   gemma2_local   the same inside the causal window of w keys (i - j < w)

pattern gemma2_global(cap = 50) =
    causal with score cap * tanh(s / cap);

pattern gemma2_local(cap = 50, w = 4096) =
    causal & window(w - 1, 0) with score cap * tanh(s / cap);
