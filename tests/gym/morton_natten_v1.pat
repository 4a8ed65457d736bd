# attn_gym/masks/natten.py: generate_morton_natten, NATTEN on a canvas laid
# out in Morton (Z-curve) order: morton_decode(idx) = (deinterleave(idx),
# deinterleave(idx >> 1)), deinterleave gathering the even bits.  Written
# without bit operations (language version 1): bit k of v is v / 2^k % 2,
# eight bits each, which is the original exactly for idx < 65536.
# (Generated: the eight terms of each decode are spelled out.)
import "flex.pat";

pattern morton_natten_v1(canvas_w = 8, canvas_h = 8, kernel_w = 3, kernel_h = 3) =
    where(abs(min(max((q_idx % 2 + q_idx / 4 % 2 * 2 + q_idx / 16 % 2 * 4 + q_idx / 64 % 2 * 8 + q_idx / 256 % 2 * 16 + q_idx / 1024 % 2 * 32 + q_idx / 4096 % 2 * 64 + q_idx / 16384 % 2 * 128),
                      kernel_w / 2), canvas_w - 1 - kernel_w / 2)
              - (kv_idx % 2 + kv_idx / 4 % 2 * 2 + kv_idx / 16 % 2 * 4 + kv_idx / 64 % 2 * 8 + kv_idx / 256 % 2 * 16 + kv_idx / 1024 % 2 * 32 + kv_idx / 4096 % 2 * 64 + kv_idx / 16384 % 2 * 128)) <= kernel_w / 2
       && abs(min(max(((q_idx / 2) % 2 + (q_idx / 2) / 4 % 2 * 2 + (q_idx / 2) / 16 % 2 * 4 + (q_idx / 2) / 64 % 2 * 8 + (q_idx / 2) / 256 % 2 * 16 + (q_idx / 2) / 1024 % 2 * 32 + (q_idx / 2) / 4096 % 2 * 64 + (q_idx / 2) / 16384 % 2 * 128),
                      kernel_h / 2), canvas_h - 1 - kernel_h / 2)
              - ((kv_idx / 2) % 2 + (kv_idx / 2) / 4 % 2 * 2 + (kv_idx / 2) / 16 % 2 * 4 + (kv_idx / 2) / 64 % 2 * 8 + (kv_idx / 2) / 256 % 2 * 16 + (kv_idx / 2) / 1024 % 2 * 32 + (kv_idx / 2) / 4096 % 2 * 64 + (kv_idx / 2) / 16384 % 2 * 128)) <= kernel_h / 2);
