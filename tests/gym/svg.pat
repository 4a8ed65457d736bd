# attn_gym/masks/svg.py: Sparse VideoGen's spatial and temporal head masks
# (Xi et al. 2025, arXiv:2502.01776).  Prompt rows and columns are always
# allowed (with attn_sink = 1 the first frame's columns too); the spatial
# head sees |q_idx - kv_idx| below width frames rounded down to a multiple
# of round_width, the temporal head the same token of other frames.
import "flex.pat";

pattern svg_spatial(prompt_length = 2, token_per_frame = 14, width = 2,
                    attn_sink = 1, round_width = 4) =
    where(q_idx < prompt_length
       || kv_idx < (attn_sink ? prompt_length + token_per_frame : prompt_length)
       || abs(q_idx - kv_idx) < width * token_per_frame / round_width * round_width);

pattern svg_temporal(prompt_length = 2, num_frames = 10, token_per_frame = 14, width = 2) =
    where(q_idx < prompt_length || kv_idx < prompt_length
       || abs((q_idx - prompt_length) % token_per_frame - (kv_idx - prompt_length) % token_per_frame)
          < width * token_per_frame / num_frames);
