# attention-gym's score_mods (attn_gym/mods/*.py) and those of its notebook
# (examples/flex_attn.ipynb) and FlexAttention's announcement, as `with
# score`; aligned(top_left) gives FlexAttention's q_idx (i = the query row).

# attn_gym/mods/alibi.py: generate_alibi_bias(H), the slope computed per
# head, score + (kv_idx - q_idx) * exp2(-(h + 1) * 8 / H); with and without
# the notebook's causal mask_mod.
pattern alibi_mod aligned(top_left) =
    full with score s + (j - i) * exp(-0.6931471805599453 * ((h + 1) * 8.0 / H));

pattern alibi_causal aligned(top_left) =
    causal with score s + (j - i) * exp(-0.6931471805599453 * ((h + 1) * 8.0 / H));

# the notebook's alibi_and_causal_closure: the slopes in a tensor
pattern alibi_closure(input alibi_bias: float[H]) aligned(top_left) =
    causal with score s + alibi_bias[h] * (j - i);

# attn_gym/mods/softcapping.py: generate_tanh_softcap(soft_cap)
pattern tanh_softcap(soft_cap = 30) aligned(top_left) =
    full with score soft_cap * tanh(s / soft_cap);

# the notebook's tanh_soft_cap (cap 2) with causal_mask
pattern tanh_soft_cap_causal aligned(top_left) =
    causal with score tanh(s / 2) * 2;

# FlexAttention blog: relative_positional, score + (q_idx - kv_idx)
pattern relative_positional aligned(top_left) =
    full with score s + (i - j);

# the notebook's checkerboard: score * 0.5 on odd distances, * 2 on even
pattern checkerboard aligned(top_left) =
    full with score abs(j - i) % 2 == 1 ? s * 0.5 : s * 2.0;

# the notebook's causal_bias: score where q_idx >= kv_idx, else -inf
pattern causal_bias aligned(top_left) =
    full with score i >= j ? s : log(0.0);

# a learned bias table over (q_idx, kv_idx) (FlexAttention blog, "bias"),
# and Graphormer's spatial encoding (Ying et al. 2021, arXiv:2106.05234):
# a per-head scalar for the shortest-path distance between two nodes.
pattern bias_table(input bias: float[Lq, Lk]) aligned(top_left) =
    full with score s + bias[r, j];

pattern graphormer(n_spd = 16, input spd: int[B, Lq, Lk], input spd_bias: float[H, n_spd])
    aligned(top_left) =
    full with score s + spd_bias[h, spd[b, r, j]];
