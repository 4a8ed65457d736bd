# attn_gym/masks/natten.py: neighbourhood attention (NATTEN, Hassani et al.
# 2023) on a canvas flattened row-major (generate_natten) or in static tiles
# (generate_tiled_natten), and the notebook's SASA mask (a window around
# the query, unclamped).  As in the original, x = idx / canvas_w is
# clamped with the kernel width and y = idx % canvas_w with the height.
import "flex.pat";

pattern natten(canvas_w = 6, canvas_h = 6, kernel_w = 3, kernel_h = 3) =
    where(abs(min(max(q_idx / canvas_w, kernel_w / 2), canvas_w - 1 - kernel_w / 2)
              - kv_idx / canvas_w) <= kernel_w / 2
       && abs(min(max(q_idx % canvas_w, kernel_h / 2), canvas_h - 1 - kernel_h / 2)
              - kv_idx % canvas_w) <= kernel_h / 2);

# get_x_y_tiled(idx): tile t = idx / (tile_h * tile_w) at tile column
# t % (canvas_w / tile_w), tile row t / (canvas_w / tile_w); inside it,
# offset o = idx % (tile_h * tile_w) at column o % tile_w, row o / tile_w.
pattern tiled_natten(canvas_w = 6, canvas_h = 6, kernel_w = 3, kernel_h = 3,
                     tile_w = 2, tile_h = 2) =
    where(abs(min(max(q_idx / (tile_h * tile_w) % (canvas_w / tile_w) * tile_w
                      + q_idx % (tile_h * tile_w) % tile_w,
                      kernel_w / 2), canvas_w - 1 - kernel_w / 2)
              - (kv_idx / (tile_h * tile_w) % (canvas_w / tile_w) * tile_w
                 + kv_idx % (tile_h * tile_w) % tile_w)) <= kernel_w / 2
       && abs(min(max(q_idx / (tile_h * tile_w) / (canvas_w / tile_w) * tile_h
                      + q_idx % (tile_h * tile_w) / tile_w,
                      kernel_h / 2), canvas_h - 1 - kernel_h / 2)
              - (kv_idx / (tile_h * tile_w) / (canvas_w / tile_w) * tile_h
                 + kv_idx % (tile_h * tile_w) / tile_w)) <= kernel_h / 2);

# examples/flex_attn.ipynb: sasa_mask (stand-alone self-attention window)
pattern sasa(canvas_w = 8, win = 2) =
    where(abs(q_idx / canvas_w - kv_idx / canvas_w) <= win
       && abs(q_idx % canvas_w - kv_idx % canvas_w) <= win);
