# attn_gym/masks/sta.py: generate_sta_mask_mod_2d, sliding tile attention
# (STA; FastVideo, Zhang et al. 2025, arXiv:2502.04507).  Tokens come in
# tiles of tile_h x tile_w; a query tile sees the kernel of
# kernel_h / tile_h x kernel_w / tile_w tiles centred on it, the centre
# clamped so the kernel stays on the canvas; text tokens after the
# vision tokens see everything up to the text's end, vision tokens see the
# text too.  Borders: left = k / 2, right = k / 2 + k % 2 - 1 (in tiles).
import "flex.pat";

pattern sta_2d(canvas_h = 8, canvas_w = 8, kernel_h = 4, kernel_w = 4,
               tile_h = 2, tile_w = 2, text_seq_len = 0) =
    where((q_idx < canvas_h * canvas_w && kv_idx < canvas_h * canvas_w
           # h_mask: tile rows
           && kv_idx / (tile_h * tile_w) / (canvas_w / tile_w)
              >= min(max(q_idx / (tile_h * tile_w) / (canvas_w / tile_w),
                         kernel_h / tile_h / 2),
                     canvas_h / tile_h - 1 - (kernel_h / tile_h / 2 + kernel_h / tile_h % 2 - 1))
                 - kernel_h / tile_h / 2
           && kv_idx / (tile_h * tile_w) / (canvas_w / tile_w)
              <= min(max(q_idx / (tile_h * tile_w) / (canvas_w / tile_w),
                         kernel_h / tile_h / 2),
                     canvas_h / tile_h - 1 - (kernel_h / tile_h / 2 + kernel_h / tile_h % 2 - 1))
                 + (kernel_h / tile_h / 2 + kernel_h / tile_h % 2 - 1)
           # w_mask: tile columns
           && kv_idx / (tile_h * tile_w) % (canvas_w / tile_w)
              >= min(max(q_idx / (tile_h * tile_w) % (canvas_w / tile_w),
                         kernel_w / tile_w / 2),
                     canvas_w / tile_w - 1 - (kernel_w / tile_w / 2 + kernel_w / tile_w % 2 - 1))
                 - kernel_w / tile_w / 2
           && kv_idx / (tile_h * tile_w) % (canvas_w / tile_w)
              <= min(max(q_idx / (tile_h * tile_w) % (canvas_w / tile_w),
                         kernel_w / tile_w / 2),
                     canvas_w / tile_w - 1 - (kernel_w / tile_w / 2 + kernel_w / tile_w % 2 - 1))
                 + (kernel_w / tile_w / 2 + kernel_w / tile_w % 2 - 1))
       # vision_to_text_mask
       || (q_idx < canvas_h * canvas_w && kv_idx >= canvas_h * canvas_w
           && kv_idx < canvas_h * canvas_w + text_seq_len)
       # text_to_all_mask
       || (q_idx >= canvas_h * canvas_w && kv_idx < canvas_h * canvas_w + text_seq_len));
