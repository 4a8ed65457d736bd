# Document masking for packed sequences.
#
# Mario Michael Krell, Matej Kosec, Sergio P. Perez, Andrew Fitzgibbon.
# "Efficient Sequence Packing without Cross-contamination: Accelerating
# Large Language Models without Impacting Performance."  2021.
# arXiv:2107.02027.  (The same mask is used to pretrain Llama 3: "an
# attention mask that prevents self-attention between different documents
# within the same sequence", arXiv:2407.21783, Section 3.4.1.)
#
# Several documents are packed into one sequence; a token may only attend
# within its own document.  doc is a runtime input: one int32 document id
# per position (Lk of them; query i reads doc[i] at its absolute position).
#
#     document_bidir:  M(i, j) = doc[i] == doc[j]            (encoders)
#     document:        M(i, j) = j <= i and doc[i] == doc[j]  (decoders)
#
# Ids need not be contiguous runs: any two positions with the same id see
# each other, which also expresses interleaved or padded layouts.

pattern document_bidir(input doc: int[]) =
    where(doc[i] == doc[j]);

pattern document(input doc: int[]) =
    causal & where(doc[i] == doc[j]);
