# attn_gym/masks/sliding_window.py (generate_sliding_window) and
# sink_attn.py (generate_sink_mask): a causal look-back window of
# window_size keys, and the same or the first sink_size keys.
import "flex.pat";

pattern sliding_window(window_size = 3) =
    where(q_idx - kv_idx <= window_size && q_idx >= kv_idx);

pattern sink_window(window_size = 3, sink_size = 4) =
    where((q_idx - kv_idx <= window_size || kv_idx < sink_size) && q_idx >= kv_idx);
