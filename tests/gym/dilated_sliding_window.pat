# attn_gym/masks/dilated_sliding_window.py: generate_dilated_sliding_window,
# abs(q_idx - kv_idx) <= window_size and a multiple of dilation.
import "flex.pat";

pattern dilated_sliding_window(window_size = 4, dilation = 2) =
    where(abs(q_idx - kv_idx) <= window_size && abs(q_idx - kv_idx) % dilation == 0);
