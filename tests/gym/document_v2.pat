# attn_gym/masks/document_mask.py with shaped inputs, as the original:
# offsets is an [n_docs + 1] array indexed by document id.
pattern doc_causal2(n_docs = 4, input document_id: int[Lk], input offsets: int[n_docs + 1])
    aligned(top_left) =
    where(document_id[i] == document_id[j]
          && i - offsets[document_id[i]] >= j - offsets[document_id[j]]);
