# attn_gym/masks/flamingo.py: generate_vision_cross_attention_mask_mod
# (Flamingo, Alayrac et al. 2022, arXiv:2204.14198): text query q_idx sees
# the tokens of image image_boundaries[kv_idx] when q_idx lies in that
# image's interval [start, end).  Inputs, one int32 per key (image token):
# iv_start and iv_end = intervals[image_boundaries[kv_idx]].
import "flex.pat";

pattern vision_cross_attention(input iv_start: int[], input iv_end: int[]) =
    where(q_idx >= iv_start[kv_idx] && q_idx < iv_end[kv_idx]);
