# attn_gym/masks/batchify.py: batchify_mask_mod(mask_mod, batchify_size),
# same group of batchify_size tokens and the inner mask_mod on the
# positions inside the group.
import "flex.pat";

pattern batchify_noop(batchify_size = 4) =
    where(q_idx / batchify_size == kv_idx / batchify_size);

pattern batchify_causal(batchify_size = 4) =
    where(q_idx / batchify_size == kv_idx / batchify_size
          && q_idx % batchify_size >= kv_idx % batchify_size);
