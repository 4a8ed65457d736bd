# attn_gym/masks/flamingo.py with shaped inputs, as the original indexes
# them: intervals[image_boundaries[kv_idx]] is a row of an [n_images, 2]
# array.
pattern vision_cross_attention2(n_images = 3, input image_boundaries: int[Lk],
                                input intervals: int[n_images, 2]) aligned(top_left) =
    where(i >= intervals[image_boundaries[j], 0] && i < intervals[image_boundaries[j], 1]);
