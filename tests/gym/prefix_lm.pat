# attn_gym/masks/prefix_lm.py: generate_prefix_lm_mask, or_masks(kv_idx <
# prefix_length, causal_mask); the second with the prefix as a runtime scalar.
import "flex.pat";

pattern prefix_lm(prefix_length = 4) =
    where(kv_idx < prefix_length || q_idx >= kv_idx);

pattern prefix_lm_runtime(runtime prefix_length = 4) =
    where(kv_idx < prefix_length || q_idx >= kv_idx);
