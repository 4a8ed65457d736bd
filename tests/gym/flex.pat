# flex.pat: FlexAttention's index names for the ports of attention-gym
# (https://github.com/pytorch-labs/attention-gym) in this directory.
#
# A FlexAttention mask_mod(b, h, q_idx, kv_idx) sees the query row q_idx
# (top-left alignment); a pattern's i is the absolute position, which is
# r + (Lk - Lq) for row r when Lq <= Lk (bottom-right).  q_idx recovers the
# row, so a mask_mod ports as where(...) over q_idx and kv_idx, with the
# same meaning at every Lq and Lk.
let q_idx = i - max(Lk - Lq, 0);
let kv_idx = j;
