# Shared-prefix packing (several completions of one prompt trained in one
# sequence, as in FlexAttention's blog and GRPO-style trainers): the
# prompt's prefix_length tokens are causal; completion c (the tokens
# prefix_length + c * completion_length onwards) sees the whole prompt and
# itself causally, never another completion.
import "flex.pat";

pattern shared_prefix(prefix_length = 8, completion_length = 5) =
    where(q_idx >= kv_idx
       && (kv_idx < prefix_length
           || (q_idx - prefix_length) / completion_length
              == (kv_idx - prefix_length) / completion_length));
