# Block diffusion (BD3-LM: Arriola et al., "Block Diffusion: Interpolating
# Between Autoregressive and Diffusion Language Models", ICLR 2025,
# arXiv:2503.09573), the FlexAttention mask of its training pass over
# [x_t | x_0], each of n tokens in blocks of block_size:
#   block diagonal      same block, same half;
#   offset block-causal x_t query, x_0 key of an earlier block;
#   block-causal        x_0 query, x_0 key of the same or an earlier block.
import "flex.pat";

pattern block_diffusion(block_size = 4, n = 16) =
    where(((q_idx >= n ? (q_idx - n) / block_size : q_idx / block_size)
           == (kv_idx >= n ? (kv_idx - n) / block_size : kv_idx / block_size)
           && (q_idx >= n) == (kv_idx >= n))
       || ((q_idx >= n ? (q_idx - n) / block_size : q_idx / block_size)
           > (kv_idx >= n ? (kv_idx - n) / block_size : kv_idx / block_size)
           && kv_idx >= n && q_idx < n)
       || ((q_idx >= n ? (q_idx - n) / block_size : q_idx / block_size)
           >= (kv_idx >= n ? (kv_idx - n) / block_size : kv_idx / block_size)
           && kv_idx >= n && q_idx >= n));
