# attn_gym/masks/document_mask.py: generate_doc_mask_mod(mask_mod, offsets),
# sequence-stacked documents: same document and the inner mask_mod on the
# positions inside the document (q_idx - offsets[document_id[q_idx]]).
# Inputs, one int32 per position: document_id, and doc_start =
# offsets[document_id] (the gather the original does per pair).
import "flex.pat";

# inner mask_mod = noop_mask
pattern doc_noop(input document_id: int[]) =
    where(document_id[q_idx] == document_id[kv_idx]);

# inner mask_mod = causal_mask
pattern doc_causal(input document_id: int[], input doc_start: int[]) =
    where(document_id[q_idx] == document_id[kv_idx]
          && q_idx - doc_start[q_idx] >= kv_idx - doc_start[kv_idx]);

# inner mask_mod = generate_sliding_window(window_size)
pattern doc_sliding_window(window_size = 3, input document_id: int[], input doc_start: int[]) =
    where(document_id[q_idx] == document_id[kv_idx]
          && (q_idx - doc_start[q_idx]) - (kv_idx - doc_start[kv_idx]) <= window_size
          && q_idx - doc_start[q_idx] >= kv_idx - doc_start[kv_idx]);
