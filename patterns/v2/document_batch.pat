# Document masking per sequence of a batch.
#
# Mario Michael Krell, Matej Kosec, Sergio P. Perez, Andrew Fitzgibbon.
# "Efficient Sequence Packing without Cross-contamination: Accelerating
# Large Language Models without Impacting Performance."  2021.
# arXiv:2107.02027.  (See ../document.pat for one id array shared by the
# batch.)
#
# Every sequence b of the batch packs its own documents: doc[b, j] is the
# document of position j in sequence b, an input of shape [B, Lk].
#
#     document_batch:        M(b, i, j) = j <= i and doc[b, i] == doc[b, j]
#     document_batch_bidir:  M(b, i, j) = doc[b, i] == doc[b, j]

pattern document_batch(input doc: int[B, Lk]) =
    causal & where(doc[b, i] == doc[b, j]);

pattern document_batch_bidir(input doc: int[B, Lk]) =
    where(doc[b, i] == doc[b, j]);
