# T5 relative position bias with logarithmic buckets.
#
# Colin Raffel, Noam Shazeer, Adam Roberts, Katherine Lee, Sharan Narang,
# Michael Matena, Yanqi Zhou, Wei Li, Peter J. Liu.  "Exploring the Limits
# of Transfer Learning with a Unified Text-to-Text Transformer."  JMLR 2020.
# arXiv:1910.10683.  Section 2.1 ("Position embeddings"): a learned scalar
# per head and bucket is added to the logits; 32 buckets whose sizes
# "increase logarithmically up to an offset of 128 beyond which we assign
# all relative positions to the same embedding".  The buckets are those of
# the reference implementation (mesh-tensorflow's _relative_position_bucket,
# likewise Hugging Face's T5Attention), relative position n = j - i:
#
#   encoder (bidirectional): 16 buckets per direction, +16 when j > i; for
#     d = |n|: d < 8 -> d, else 8 + floor(log(d / 8) / log(128 / 8) * 8),
#     capped at 15
#   decoder (causal): d = max(i - j, 0): d < 16 -> d, else
#     16 + floor(log(d / 16) / log(128 / 16) * 16), capped at 31
#
# Integers only: the logarithmic buckets are the counts of thresholds
# ceil(e * (128 / e)^(t / (B - e))) that d reaches (e = 8, B = 16; e = 16,
# B = 32), constants for the default 32 buckets and distance 128, and the
# same as the float32 formula at every d (tests/library/lib.py checks).
# The table rel[h, bucket] is an input (the learned biases).

let t5_enc_bucket(d) = d < 8 ? d :
    7 + (d >= 8) + (d >= 12) + (d >= 16) + (d >= 23) + (d >= 32) + (d >= 46)
      + (d >= 64) + (d >= 91);

let t5_dec_bucket(d) = d < 16 ? d :
    15 + (d >= 16) + (d >= 19) + (d >= 21) + (d >= 24) + (d >= 27) + (d >= 31)
       + (d >= 35) + (d >= 40) + (d >= 46) + (d >= 52) + (d >= 59) + (d >= 67)
       + (d >= 77) + (d >= 87) + (d >= 99) + (d >= 113);

pattern t5_encoder(input rel: float[H, 32]) =
    full with score s + rel[h, (j > i ? 16 : 0) + t5_enc_bucket(abs(j - i))];

pattern t5_decoder(input rel: float[H, 32]) =
    causal with score s + rel[h, t5_dec_bucket(max(i - j, 0))];
