# attn_gym/masks/causal.py: causal_mask, q_idx >= kv_idx.
import "flex.pat";

pattern causal_mask = where(q_idx >= kv_idx);
