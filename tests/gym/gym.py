"""gym.py: attention-gym's mask_mods and score_mods, ported to .pat (this
directory), against a numpy transcription of the originals
(pytorch-labs/attention-gym, attn_gym/masks/*.py, attn_gym/mods/*.py,
examples/flex_attn.ipynb).

Each reference below follows its original function line by line, with
torch ops replaced by numpy ones (torch.clamp -> np.clip with the same
order of min and max, // and % are Python's as in torch for these signs).
FlexAttention calls mask_mod(b, h, q_idx, kv_idx) with q_idx the query row
(top-left), so the references use c.r; sizes include Lq < Lk and Lq > Lk.
Run: SPATC=build/spatc python3 tests/gym/gym.py [NAME-FILTER...]"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Case, main  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
G = 'tests/gym/'

# the usual sizes of a 1-D mask: square, non-multiples of 64, Lq < Lk, Lq > Lk
SIZES = [(1, 2, 37, 37), (1, 1, 100, 130), (2, 2, 70, 45), (1, 1, 129, 129)]


# ---- attn_gym/masks --------------------------------------------------------

def causal_mask(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def noop_mask(b, h, q_idx, kv_idx):
    return np.ones(np.broadcast(b, h, q_idx, kv_idx).shape, dtype=bool)


def generate_sliding_window(window_size):
    def sliding_window(b, h, q_idx, kv_idx):
        return q_idx - kv_idx <= window_size
    return lambda b, h, q, kv: sliding_window(b, h, q, kv) & causal_mask(b, h, q, kv)


def generate_sink_mask(window_size, sink_size=4):
    def sink_mask(b, h, q_idx, kv_idx):
        return kv_idx < sink_size

    def sliding_window(b, h, q_idx, kv_idx):
        return q_idx - kv_idx <= window_size
    return lambda b, h, q, kv: ((sliding_window(b, h, q, kv) | sink_mask(b, h, q, kv))
                                & causal_mask(b, h, q, kv))


def generate_prefix_lm_mask(prefix_length):
    def prefix_mask(b, h, q_idx, kv_idx):
        return kv_idx < prefix_length
    return lambda b, h, q, kv: prefix_mask(b, h, q, kv) | causal_mask(b, h, q, kv)


def generate_dilated_sliding_window(window_size, dilation):
    def dilated_sliding_window(b, h, q_idx, kv_idx):
        diff = np.abs(q_idx - kv_idx)
        in_window = diff <= window_size
        is_dilated = (diff % dilation) == 0
        return in_window & is_dilated
    return dilated_sliding_window


def _offsets_to_doc_ids_tensor(offsets):
    counts = offsets[1:] - offsets[:-1]
    return np.repeat(np.arange(len(counts), dtype=np.int32), counts)


def length_to_offsets(lengths):
    return np.cumsum(np.array([0] + list(lengths), dtype=np.int32))


def generate_doc_mask_mod(mask_mod, offsets):
    document_id = _offsets_to_doc_ids_tensor(offsets)

    def doc_mask_mod(b, h, q_idx, kv_idx):
        same_doc = document_id[q_idx] == document_id[kv_idx]
        q_logical = q_idx - offsets[document_id[q_idx]]
        kv_logical = kv_idx - offsets[document_id[kv_idx]]
        inner_mask = mask_mod(b, h, q_logical, kv_logical)
        return same_doc & inner_mask
    return doc_mask_mod


def generate_random_lengths(rng, total_length, num_documents):
    lengths = [1] * num_documents
    for _ in range(total_length - num_documents):
        lengths[rng.integers(0, num_documents)] += 1
    return lengths


def batchify_mask_mod(mask_mod, batchify_size):
    def batched_mask_mod(b, h, q_idx, kv_idx):
        q_batch = q_idx // batchify_size
        kv_batch = kv_idx // batchify_size
        same_batch = q_batch == kv_batch
        inner_mask = mask_mod(b, h, q_idx % batchify_size, kv_idx % batchify_size)
        return same_batch & inner_mask
    return batched_mask_mod


def generate_vision_cross_attention_mask_mod(intervals, image_token_length):
    num_images = intervals.shape[0]
    image_boundaries = np.repeat(np.arange(num_images), image_token_length)

    def vision_cross_attention_mask_mod(b, h, q_idx, kv_idx):
        image_idx = image_boundaries[kv_idx]
        interval = intervals[image_idx]
        return (q_idx >= interval[..., 0]) & (q_idx < interval[..., 1])
    return vision_cross_attention_mask_mod


def generate_natten(canvas_w, canvas_h, kernel_w, kernel_h):
    def get_x_y(idx):
        return idx // canvas_w, idx % canvas_w

    def natten_mask_mod(b, h, q_idx, kv_idx):
        q_x, q_y = get_x_y(q_idx)
        kv_x, kv_y = get_x_y(kv_idx)
        kernel_center_x = clamp(q_x, kernel_w // 2, (canvas_w - 1) - kernel_w // 2)
        kernel_center_y = clamp(q_y, kernel_h // 2, (canvas_h - 1) - kernel_h // 2)
        hori_mask = np.abs(kernel_center_x - kv_x) <= kernel_w // 2
        vert_mask = np.abs(kernel_center_y - kv_y) <= kernel_h // 2
        return hori_mask & vert_mask
    return natten_mask_mod


def generate_tiled_natten(W, H, K_W, K_H, T_W, T_H):
    def get_x_y_tiled(idx):
        t_id = idx // (T_H * T_W)
        t_y, t_x = t_id // (W // T_W), t_id % (W // T_W)
        t_offset = idx % (T_H * T_W)
        i_y, i_x = t_offset // T_W, t_offset % T_W
        return t_x * T_W + i_x, t_y * T_H + i_y

    def tiled_natten_mask(b, h, q_idx, kv_idx):
        q_x, q_y = get_x_y_tiled(q_idx)
        kv_x, kv_y = get_x_y_tiled(kv_idx)
        kernel_x = clamp(q_x, K_W // 2, (W - 1) - K_W // 2)
        kernel_y = clamp(q_y, K_H // 2, (H - 1) - K_H // 2)
        hori_mask = np.abs(kernel_x - kv_x) <= K_W // 2
        vert_mask = np.abs(kernel_y - kv_y) <= K_H // 2
        return hori_mask & vert_mask
    return tiled_natten_mask


def deinterleave_bits_32(code):
    code = code & 0x55555555
    code = (code | (code >> 1)) & 0x33333333
    code = (code | (code >> 2)) & 0x0F0F0F0F
    code = (code | (code >> 4)) & 0x00FF00FF
    code = (code | (code >> 8)) & 0x0000FFFF
    return code


def morton_decode(code):
    return deinterleave_bits_32(code), deinterleave_bits_32(code >> 1)


def generate_morton_natten(canvas_w, canvas_h, kernel_w, kernel_h):
    def natten_mask_mod(b, h, q_idx, kv_idx):
        q_x, q_y = morton_decode(q_idx)
        kv_x, kv_y = morton_decode(kv_idx)
        kernel_center_x = clamp(q_x, kernel_w // 2, (canvas_w - 1) - kernel_w // 2)
        kernel_center_y = clamp(q_y, kernel_h // 2, (canvas_h - 1) - kernel_h // 2)
        hori_mask = np.abs(kernel_center_x - kv_x) <= kernel_w // 2
        vert_mask = np.abs(kernel_center_y - kv_y) <= kernel_h // 2
        return hori_mask & vert_mask
    return natten_mask_mod


def sasa(W, WINDOW):
    def get_x_y(idx):
        return idx // W, idx % W

    def sasa_mask(b, h, q_idx, kv_idx):
        q_x, q_y = get_x_y(q_idx)
        kv_x, kv_y = get_x_y(kv_idx)
        horizontal_mask = np.abs(q_x - kv_x) <= WINDOW
        vertical_mask = np.abs(q_y - kv_y) <= WINDOW
        return horizontal_mask & vertical_mask
    return sasa_mask


def generate_sta_mask_mod_2d(canvas_hw, kernel_hw, tile_hw, text_seq_len=0):
    canvas_h, canvas_w = canvas_hw
    kernel_h, kernel_w = kernel_hw
    tile_h, tile_w = tile_hw
    tile_numel = tile_h * tile_w
    canvas_tile_h, canvas_tile_w = canvas_h // tile_h, canvas_w // tile_w
    kernel_tile_h, kernel_tile_w = kernel_h // tile_h, kernel_w // tile_w
    vision_seq_len = canvas_h * canvas_w

    def get_h_w_idx_tiled(idx):
        tile_id = idx // tile_numel
        return tile_id // canvas_tile_w, tile_id % canvas_tile_w

    def get_border(kernel_size):
        return kernel_size // 2, kernel_size // 2 + (kernel_size % 2 - 1)

    def sta_mask_mod_2d(b, h, q_idx, kv_idx):
        q_tile_h, q_tile_w = get_h_w_idx_tiled(q_idx)
        kv_tile_h, kv_tile_w = get_h_w_idx_tiled(kv_idx)
        left_border_h, right_border_h = get_border(kernel_tile_h)
        left_border_w, right_border_w = get_border(kernel_tile_w)
        kernel_center_h = clamp(q_tile_h, left_border_h, (canvas_tile_h - 1) - right_border_h)
        kernel_center_w = clamp(q_tile_w, left_border_w, (canvas_tile_w - 1) - right_border_w)
        h_mask = (kv_tile_h >= kernel_center_h - left_border_h) & (
            kv_tile_h <= kernel_center_h + right_border_h)
        w_mask = (kv_tile_w >= kernel_center_w - left_border_w) & (
            kv_tile_w <= kernel_center_w + right_border_w)
        vision_mask = (q_idx < vision_seq_len) & (kv_idx < vision_seq_len)
        vision_to_text_mask = ((q_idx < vision_seq_len) & (kv_idx >= vision_seq_len)
                               & (kv_idx < vision_seq_len + text_seq_len))
        text_to_all_mask = (q_idx >= vision_seq_len) & (kv_idx < vision_seq_len + text_seq_len)
        return (vision_mask & h_mask & w_mask) | vision_to_text_mask | text_to_all_mask
    return sta_mask_mod_2d


def generate_sta_mask_mod_3d(canvas_twh, kernel_twh, tile_twh, text_seq_len=0):
    canvas_t, canvas_h, canvas_w = canvas_twh
    kernel_t, kernel_h, kernel_w = kernel_twh
    tile_t, tile_h, tile_w = tile_twh
    tile_numel = tile_t * tile_h * tile_w
    canvas_tile_t, canvas_tile_h, canvas_tile_w = (
        canvas_t // tile_t, canvas_h // tile_h, canvas_w // tile_w)
    kernel_tile_t, kernel_tile_h, kernel_tile_w = (
        kernel_t // tile_t, kernel_h // tile_h, kernel_w // tile_w)
    vision_seq_len = canvas_t * canvas_h * canvas_w

    def get_t_h_w_idx_tiled(idx):
        tile_id = idx // tile_numel
        tile_t_idx = tile_id // (canvas_tile_h * canvas_tile_w)
        tile_h_idx = (tile_id % (canvas_tile_h * canvas_tile_w)) // canvas_tile_w
        tile_w_idx = tile_id % canvas_tile_w
        return tile_t_idx, tile_h_idx, tile_w_idx

    def get_border(kernel_size):
        return kernel_size // 2, kernel_size // 2 + (kernel_size % 2 - 1)

    def sta_mask_mod_3d(b, h, q_idx, kv_idx):
        q_tile_t, q_tile_h, q_tile_w = get_t_h_w_idx_tiled(q_idx)
        kv_tile_t, kv_tile_h, kv_tile_w = get_t_h_w_idx_tiled(kv_idx)
        left_border_t, right_border_t = get_border(kernel_tile_t)
        left_border_h, right_border_h = get_border(kernel_tile_h)
        left_border_w, right_border_w = get_border(kernel_tile_w)
        kernel_center_t = clamp(q_tile_t, left_border_t, (canvas_tile_t - 1) - right_border_t)
        kernel_center_h = clamp(q_tile_h, left_border_h, (canvas_tile_h - 1) - right_border_h)
        kernel_center_w = clamp(q_tile_w, left_border_w, (canvas_tile_w - 1) - right_border_w)
        t_mask = (kv_tile_t >= kernel_center_t - left_border_t) & (
            kv_tile_t <= kernel_center_t + right_border_t)
        h_mask = (kv_tile_h >= kernel_center_h - left_border_h) & (
            kv_tile_h <= kernel_center_h + right_border_h)
        w_mask = (kv_tile_w >= kernel_center_w - left_border_w) & (
            kv_tile_w <= kernel_center_w + right_border_w)
        vision_mask = (q_idx < vision_seq_len) & (kv_idx < vision_seq_len)
        vision_to_text_mask = ((q_idx < vision_seq_len) & (kv_idx >= vision_seq_len)
                               & (kv_idx < vision_seq_len + text_seq_len))
        text_to_all_mask = (q_idx >= vision_seq_len) & (kv_idx < vision_seq_len + text_seq_len)
        return (vision_mask & t_mask & w_mask & h_mask) | vision_to_text_mask | text_to_all_mask
    return sta_mask_mod_3d


def generate_spatial_head_mask_mod(prompt_length=226, num_frames=13, token_per_frame=1350,
                                   width=2, attn_sink=False, round_width=128):
    def round_to_multiple(idx):
        return int(np.floor(idx / round_width) * round_width)

    def spatial_mask_mod(b, h, q_idx, kv_idx):
        first_row_mask = q_idx < prompt_length
        if attn_sink:
            first_column_mask = kv_idx < (prompt_length + token_per_frame)
        else:
            first_column_mask = kv_idx < prompt_length
        mask_width = round_to_multiple(width * token_per_frame)
        spatial_head_mask = np.abs(q_idx - kv_idx) < mask_width
        return first_column_mask | first_row_mask | spatial_head_mask
    return spatial_mask_mod


def generate_temporal_head_mask_mod(prompt_length=226, num_frames=13, token_per_frame=1350,
                                    width=2):
    def get_token_id_in_frame(idx, prompt_length):
        return (idx - prompt_length) % token_per_frame

    def temporal_mask_mod(b, h, q_idx, kv_idx):
        first_row_mask = q_idx < prompt_length
        first_column_mask = kv_idx < prompt_length
        mask_width = (width * token_per_frame) // num_frames
        q_token_id = get_token_id_in_frame(q_idx, prompt_length)
        kv_token_id = get_token_id_in_frame(kv_idx, prompt_length)
        temporal_head_mask = np.abs(q_token_id - kv_token_id) < mask_width
        return first_column_mask | first_row_mask | temporal_head_mask
    return temporal_mask_mod


def block_diff_mask(block_size, n):
    """BD3-LM's training mask over [x_t | x_0] (Arriola et al. 2025)."""
    def mask(b, h, q_idx, kv_idx):
        x0_flag_q = q_idx >= n
        x0_flag_kv = kv_idx >= n
        block_q = np.where(x0_flag_q, (q_idx - n) // block_size, q_idx // block_size)
        block_kv = np.where(x0_flag_kv, (kv_idx - n) // block_size, kv_idx // block_size)
        block_diagonal = (block_q == block_kv) & (x0_flag_q == x0_flag_kv)
        offset_block_causal = (block_q > block_kv) & x0_flag_kv & ~x0_flag_q
        block_causal = (block_q >= block_kv) & x0_flag_kv & x0_flag_q
        return block_diagonal | offset_block_causal | block_causal
    return mask


def shared_prefix_mask(prefix_length, completion_length):
    def mask(b, h, q_idx, kv_idx):
        in_prefix = kv_idx < prefix_length
        q_c = (q_idx - prefix_length) // completion_length
        kv_c = (kv_idx - prefix_length) // completion_length
        return causal_mask(b, h, q_idx, kv_idx) & (in_prefix | (q_c == kv_c))
    return mask


def clamp(x, lo, hi):
    """torch.clamp(x, lo, hi): min(max(x, lo), hi), hi winning when lo > hi."""
    return np.minimum(np.maximum(x, lo), hi)


# ---- the cases -------------------------------------------------------------

def flex(mod):
    """A FlexAttention mask_mod as a harness mask (top-left q_idx = row)."""
    return lambda c: mod(c.b, c.h, c.r, c.j)


def doc_inputs(c, rng):
    lengths = generate_random_lengths(rng, c.Lk, max(1, c.Lk // 12))
    offsets = length_to_offsets(lengths)
    doc = _offsets_to_doc_ids_tensor(offsets)
    return {'document_id': doc.astype(np.int32),
            'doc_start': offsets[doc].astype(np.int32)}


def doc_case(name, pattern, inner, defines=None, noop=False):
    def mask(c):
        offsets = length_to_offsets(np.bincount(c.inp['document_id']))
        return generate_doc_mask_mod(inner, offsets)(c.b, c.h, c.r, c.j)

    def inputs(c, rng):
        d = doc_inputs(c, rng)
        return {'document_id': d['document_id']} if noop else d
    return Case(name, G + 'document_mask.pat', pattern, mask,
                [(1, 2, 37, 37), (1, 1, 100, 130), (2, 1, 129, 129), (1, 1, 64, 200)],
                inputs=inputs, defines=defines)


def flamingo_case(image_token_length, n_images, Lq):
    Lk = image_token_length * n_images

    def intervals(rng):
        starts = np.sort(rng.integers(0, Lq, n_images))
        ends = np.minimum(Lq, starts + rng.integers(1, Lq, n_images))
        return np.stack([starts, ends], axis=1).astype(np.int32)

    def inputs(c, rng):
        iv = intervals(rng)
        img = np.repeat(np.arange(n_images), image_token_length)
        c.intervals = iv
        return {'iv_start': iv[img, 0].copy(), 'iv_end': iv[img, 1].copy()}

    def mask(c):
        return generate_vision_cross_attention_mask_mod(c.intervals, image_token_length)(
            c.b, c.h, c.r, c.j)
    return Case('flamingo tl=%d n=%d' % (image_token_length, n_images), G + 'flamingo.pat',
                None, mask, [(1, 1, Lq, Lk), (2, 2, Lq + 13, Lk)], inputs=inputs)


def canvas(w, h, extra=0):
    """Sizes for a w x h canvas flattened (plus extra rows / keys)."""
    n = w * h
    return [(1, 1, n, n), (1, 2, n - 5, n), (1, 1, n + extra, n)]


CASES = [
    Case('causal', G + 'causal.pat', None, flex(causal_mask), SIZES, backends=('jit', 'interp')),
    Case('sliding_window w=3', G + 'sliding_window.pat', 'sliding_window',
         flex(generate_sliding_window(3)), SIZES),
    Case('sliding_window w=70', G + 'sliding_window.pat', 'sliding_window',
         flex(generate_sliding_window(70)), SIZES[1:], defines={'window_size': 70}),
    Case('sink w=3 s=4', G + 'sliding_window.pat', 'sink_window',
         flex(generate_sink_mask(3, 4)), SIZES),
    Case('sink w=20 s=1', G + 'sliding_window.pat', 'sink_window',
         flex(generate_sink_mask(20, 1)), SIZES[1:3],
         defines={'window_size': 20, 'sink_size': 1}),
    Case('prefix_lm p=4', G + 'prefix_lm.pat', 'prefix_lm',
         flex(generate_prefix_lm_mask(4)), SIZES),
    Case('prefix_lm p=90', G + 'prefix_lm.pat', 'prefix_lm',
         flex(generate_prefix_lm_mask(90)), SIZES[1:], defines={'prefix_length': 90}),
    Case('prefix_lm runtime p=33', G + 'prefix_lm.pat', 'prefix_lm_runtime',
         flex(generate_prefix_lm_mask(33)), SIZES, runtime={'prefix_length': 33}),
    Case('dilated w=4 d=2', G + 'dilated_sliding_window.pat', None,
         flex(generate_dilated_sliding_window(4, 2)), SIZES),
    Case('dilated w=40 d=3', G + 'dilated_sliding_window.pat', None,
         flex(generate_dilated_sliding_window(40, 3)), SIZES[1:],
         defines={'window_size': 40, 'dilation': 3}),
    doc_case('doc noop', 'doc_noop', noop_mask, noop=True),
    doc_case('doc causal', 'doc_causal', causal_mask),
    doc_case('doc sliding w=3', 'doc_sliding_window', generate_sliding_window(3)),
    Case('batchify noop n=4', G + 'batchify.pat', 'batchify_noop',
         flex(batchify_mask_mod(noop_mask, 4)), SIZES),
    Case('batchify causal n=7', G + 'batchify.pat', 'batchify_causal',
         flex(batchify_mask_mod(causal_mask, 7)), SIZES, defines={'batchify_size': 7}),
    flamingo_case(3, 3, 12),
    flamingo_case(16, 5, 70),
    Case('natten 6x6 k3', G + 'natten.pat', 'natten', flex(generate_natten(6, 6, 3, 3)),
         canvas(6, 6, 9)),
    Case('natten 12x12 k5x3', G + 'natten.pat', 'natten', flex(generate_natten(12, 12, 5, 3)),
         canvas(12, 12, 20), defines={'canvas_w': 12, 'canvas_h': 12, 'kernel_w': 5, 'kernel_h': 3}),
    Case('natten 10x7 k3x5', G + 'natten.pat', 'natten', flex(generate_natten(10, 7, 3, 5)),
         canvas(10, 7), defines={'canvas_w': 10, 'canvas_h': 7, 'kernel_w': 3, 'kernel_h': 5}),
    Case('tiled_natten 6x6 k3 t2', G + 'natten.pat', 'tiled_natten',
         flex(generate_tiled_natten(6, 6, 3, 3, 2, 2)), canvas(6, 6, 7)),
    Case('tiled_natten 16x16 k5 t4x2', G + 'natten.pat', 'tiled_natten',
         flex(generate_tiled_natten(16, 16, 5, 5, 4, 2)), canvas(16, 16),
         defines={'canvas_w': 16, 'canvas_h': 16, 'kernel_w': 5, 'kernel_h': 5,
                  'tile_w': 4, 'tile_h': 2}),
    Case('morton_natten_v1 8x8 k3', G + 'morton_natten_v1.pat', None,
         flex(generate_morton_natten(8, 8, 3, 3)), canvas(8, 8)),
    Case('morton_natten_v1 16x16 k5', G + 'morton_natten_v1.pat', None,
         flex(generate_morton_natten(16, 16, 5, 5)), canvas(16, 16, 11),
         defines={'canvas_w': 16, 'canvas_h': 16, 'kernel_w': 5, 'kernel_h': 5}),
    Case('sasa 8 w2', G + 'natten.pat', 'sasa', flex(sasa(8, 2)), canvas(8, 8, 5)),
    Case('sta_2d 8x8 k4 t2', G + 'sta.pat', 'sta_2d',
         flex(generate_sta_mask_mod_2d((8, 8), (4, 4), (2, 2))), canvas(8, 8)),
    Case('sta_2d 12x8 k6x4 t2 text=10', G + 'sta.pat', 'sta_2d',
         flex(generate_sta_mask_mod_2d((12, 8), (6, 4), (2, 2), 10)),
         [(1, 1, 106, 106), (1, 2, 96, 106), (1, 1, 120, 100)],
         defines={'canvas_h': 12, 'canvas_w': 8, 'kernel_h': 6, 'kernel_w': 4,
                  'text_seq_len': 10}),
    Case('sta_2d 24x24 k12 t4', G + 'sta.pat', 'sta_2d',
         flex(generate_sta_mask_mod_2d((24, 24), (12, 12), (4, 4))), [(1, 1, 576, 576)],
         defines={'canvas_h': 24, 'canvas_w': 24, 'kernel_h': 12, 'kernel_w': 12,
                  'tile_h': 4, 'tile_w': 4}),
    Case('svg_spatial', G + 'svg.pat', 'svg_spatial',
         flex(generate_spatial_head_mask_mod(2, 10, 14, 2, True, 4)),
         [(1, 1, 142, 142), (1, 2, 100, 142), (1, 1, 150, 120)]),
    Case('svg_spatial nosink', G + 'svg.pat', 'svg_spatial',
         flex(generate_spatial_head_mask_mod(5, 10, 14, 1, False, 8)),
         [(1, 1, 145, 145), (1, 1, 77, 145)],
         defines={'prompt_length': 5, 'width': 1, 'attn_sink': 0, 'round_width': 8}),
    Case('svg_temporal', G + 'svg.pat', 'svg_temporal',
         flex(generate_temporal_head_mask_mod(2, 10, 14, 2)),
         [(1, 1, 142, 142), (1, 2, 100, 142), (1, 1, 150, 120)]),
    Case('block_diffusion bs=4 n=16', G + 'block_diffusion.pat', None,
         flex(block_diff_mask(4, 16)), [(1, 1, 32, 32), (1, 2, 20, 32), (1, 1, 32, 24)]),
    Case('block_diffusion bs=8 n=60', G + 'block_diffusion.pat', None,
         flex(block_diff_mask(8, 60)), [(1, 1, 120, 120), (2, 1, 100, 120)],
         defines={'block_size': 8, 'n': 60}),
    Case('shared_prefix p=8 c=5', G + 'shared_prefix.pat', None,
         flex(shared_prefix_mask(8, 5)), SIZES),
    Case('shared_prefix p=30 c=17', G + 'shared_prefix.pat', None,
         flex(shared_prefix_mask(30, 17)), SIZES[1:],
         defines={'prefix_length': 30, 'completion_length': 17}),
]

# ---- attn_gym/mods and the notebook's score_mods (language version 2) --------

def generate_alibi_bias(H):
    def alibi_mod(score, b, h, q_idx, kv_idx):
        scale = np.exp2(-((h + 1) * 8.0 / H))
        bias = (kv_idx - q_idx) * scale
        return score + bias
    return alibi_mod


def generate_tanh_softcap(soft_cap):
    def tanh_softcap(score, b, h, q_idx, kv_idx):
        return soft_cap * np.tanh(score / soft_cap)
    return tanh_softcap


def tanh_soft_cap(score, b, h, q_idx, kv_idx):
    score = score / 2
    score = np.tanh(score)
    return score * 2


def relative_positional(score, b, h, q_idx, kv_idx):
    return score + (q_idx - kv_idx)


def checkerboard(score, b, h, q_idx, kv_idx):
    score = np.where(np.abs(kv_idx - q_idx) % 2 == 1, score * 0.5, score)
    score = np.where(np.abs(kv_idx - q_idx) % 2 == 0, score * 2.0, score)
    return score


def causal_bias(score, b, h, q_idx, kv_idx):
    return np.where(q_idx >= kv_idx, score, -np.inf)


def score_flex(mod_fn):
    """A FlexAttention score_mod as a harness score (top-left q_idx)."""
    return lambda c, s: mod_fn(s, c.b, c.h, c.r, c.j)


def alibi_closure_score(c, s):
    return s + c.inp['alibi_bias'].astype(np.float64).reshape(1, -1, 1, 1) * (c.j - c.r)


def alibi_closure_inputs(c, rng):
    return {'alibi_bias': np.exp2(-((np.arange(c.H) + 1) * 8.0 / c.H)).astype(np.float32)}


def full_mask(c):
    return noop_mask(c.b, c.h, c.r, c.j)


SCORE_SIZES = [(1, 2, 37, 37), (2, 4, 100, 130), (1, 2, 70, 45), (1, 1, 129, 129)]
SM = G + 'score_mods.pat'

# Version-2 cases (aligned(top_left), b, shaped int inputs, scores): the JIT
# and the interpreter, every one (INTERP_ONLY: names left to the interpreter).
V2_BACKENDS = ('jit', 'interp')
INTERP_ONLY = ()

CASES_V2 = [
    Case('alibi_mod', SM, 'alibi_mod', full_mask, SCORE_SIZES,
         score=lambda c, s: generate_alibi_bias(c.H)(s, c.b, c.h, c.r, c.j),
         backends=V2_BACKENDS),
    Case('alibi_causal', SM, 'alibi_causal', flex(causal_mask), SCORE_SIZES,
         score=lambda c, s: generate_alibi_bias(c.H)(s, c.b, c.h, c.r, c.j)),
    Case('alibi_closure', SM, 'alibi_closure', flex(causal_mask), SCORE_SIZES,
         score=alibi_closure_score, inputs=alibi_closure_inputs),
    Case('tanh_softcap 30', SM, 'tanh_softcap', full_mask, SCORE_SIZES,
         score=score_flex(generate_tanh_softcap(30)), backends=V2_BACKENDS),
    Case('tanh_softcap 1', SM, 'tanh_softcap', full_mask, SCORE_SIZES[:2],
         score=score_flex(generate_tanh_softcap(1)), defines={'soft_cap': 1}),
    Case('tanh_soft_cap causal', SM, 'tanh_soft_cap_causal', flex(causal_mask), SCORE_SIZES,
         score=score_flex(tanh_soft_cap)),
    Case('relative_positional', SM, 'relative_positional', full_mask, SCORE_SIZES,
         score=score_flex(relative_positional)),
    Case('checkerboard', SM, 'checkerboard', full_mask, SCORE_SIZES,
         score=score_flex(checkerboard)),
    Case('causal_bias', SM, 'causal_bias', full_mask, SCORE_SIZES,
         score=score_flex(causal_bias), backends=V2_BACKENDS),
    Case('bias_table', SM, 'bias_table', full_mask, SCORE_SIZES,
         score=lambda c, s: s + c.inp['bias'].astype(np.float64)[c.r, c.j],
         inputs=lambda c, rng: {'bias': rng.standard_normal((c.Lq, c.Lk)).astype(np.float32)}),
    Case('graphormer', SM, 'graphormer', full_mask, SCORE_SIZES,
         score=lambda c, s: s + c.inp['spd_bias'].astype(np.float64)[c.h, c.inp['spd'][c.b, c.r, c.j]],
         inputs=lambda c, rng: {'spd': rng.integers(0, 16, (c.B, c.Lq, c.Lk)).astype(np.int32),
                                'spd_bias': rng.standard_normal((c.H, 16)).astype(np.float32)},
         batch_inputs=('spd',)),
    Case('natten2 12x12 k5x3', G + 'natten_v2.pat', 'natten2', flex(generate_natten(12, 12, 5, 3)),
         canvas(12, 12, 20), defines={'canvas_w': 12, 'canvas_h': 12, 'kernel_w': 5, 'kernel_h': 3}),
    Case('tiled_natten2 16x16 k5 t4x2', G + 'natten_v2.pat', 'tiled_natten2',
         flex(generate_tiled_natten(16, 16, 5, 5, 4, 2)), canvas(16, 16),
         defines={'canvas_w': 16, 'canvas_h': 16, 'kernel_w': 5, 'kernel_h': 5,
                  'tile_w': 4, 'tile_h': 2}),
    Case('morton_natten 8x8 k3', G + 'natten_v2.pat', 'morton_natten',
         flex(generate_morton_natten(8, 8, 3, 3)), canvas(8, 8)),
    Case('morton_natten 16x16 k5', G + 'natten_v2.pat', 'morton_natten',
         flex(generate_morton_natten(16, 16, 5, 5)), [(1, 1, 256, 256), (1, 1, 200, 256)],
         defines={'canvas_w': 16, 'canvas_h': 16, 'kernel_w': 5, 'kernel_h': 5}),
    Case('sta_3d 8^3 k4 t2', G + 'sta_3d.pat', 'sta_3d',
         flex(generate_sta_mask_mod_3d((8, 8, 8), (4, 4, 4), (2, 2, 2))),
         [(1, 1, 512, 512), (1, 1, 300, 512)]),
    Case('sta_3d 4x8x12 k4x4x6 t2 text=20', G + 'sta_3d.pat', 'sta_3d',
         flex(generate_sta_mask_mod_3d((4, 8, 12), (4, 4, 6), (2, 2, 2), 20)),
         [(1, 1, 404, 404), (1, 2, 400, 404), (1, 1, 420, 404)],
         defines={'canvas_t': 4, 'canvas_h': 8, 'canvas_w': 12, 'kernel_t': 4, 'kernel_h': 4,
                  'kernel_w': 6, 'text_seq_len': 20}),
    Case('flamingo2', G + 'flamingo_v2.pat', None,
         lambda c: generate_vision_cross_attention_mask_mod(c.inp['intervals'], 16)(c.b, c.h, c.r, c.j),
         [(1, 1, 70, 80), (2, 2, 83, 80)], defines={'n_images': 5},
         inputs=lambda c, rng: {
             'image_boundaries': np.repeat(np.arange(5), 16).astype(np.int32),
             'intervals': np.sort(rng.integers(0, c.Lq, (5, 2)), axis=1).astype(np.int32)}),
    Case('doc_causal2', G + 'document_v2.pat', None,
         lambda c: generate_doc_mask_mod(causal_mask, c.inp['offsets'])(c.b, c.h, c.r, c.j),
         [(1, 2, 37, 37), (1, 1, 100, 130), (2, 1, 129, 129)], defines={'n_docs': 6},
         inputs=lambda c, rng: (lambda off: {
             'document_id': _offsets_to_doc_ids_tensor(off).astype(np.int32),
             'offsets': off.astype(np.int32)})(
                 length_to_offsets(generate_random_lengths(rng, c.Lk, 6)))),
    Case('flamingo2', G + 'flamingo_v2.pat', None,
         lambda c: generate_vision_cross_attention_mask_mod(c.inp['intervals'], 16)(c.b, c.h, c.r, c.j),
         [(1, 1, 70, 80), (2, 2, 83, 80)], defines={'n_images': 5},
         inputs=lambda c, rng: {
             'image_boundaries': np.repeat(np.arange(5), 16).astype(np.int32),
             'intervals': np.sort(rng.integers(0, c.Lq, (5, 2)), axis=1).astype(np.int32)}),
    Case('doc_causal2', G + 'document_v2.pat', None,
         lambda c: generate_doc_mask_mod(causal_mask, c.inp['offsets'])(c.b, c.h, c.r, c.j),
         [(1, 2, 37, 37), (1, 1, 100, 130), (2, 1, 129, 129)], defines={'n_docs': 6},
         inputs=lambda c, rng: (lambda off: {
             'document_id': _offsets_to_doc_ids_tensor(off).astype(np.int32),
             'offsets': off.astype(np.int32)})(
                 length_to_offsets(generate_random_lengths(rng, c.Lk, 6)))),
]
for _c in CASES_V2:
    _c.backends = ('interp',) if _c.name.startswith(INTERP_ONLY) else V2_BACKENDS


if __name__ == '__main__':
    sys.exit(main(CASES + CASES_V2, ROOT))
