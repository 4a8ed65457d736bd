# ALiBi: attention with linear biases.
#
# Ofir Press, Noah A. Smith, Mike Lewis.  "Train Short, Test Long: Attention
# with Linear Biases Enables Input Length Extrapolation."  ICLR 2022.
# arXiv:2108.12409.
#
# Section 3: no position embeddings; each head adds to the query-key score a
# penalty proportional to the distance, s(i, j) - m_h * (i - j), causal.  The
# slopes m_h are a geometric sequence: for H heads (a power of two),
# m_h = 2^(-8 (h + 1) / H)  (H = 8: 1/2, 1/4, ..., 1/256).
#
#   alibi             slopes as a runtime input, one float per head
#   alibi_geometric   the paper's slopes, computed in the kernel
#   alibi_bidir       the encoder variant, s - m_h * |i - j| (no causal mask)

pattern alibi(input slope: float[H]) =
    causal with score s - slope[h] * (i - j);

pattern alibi_geometric =
    causal with score s - exp(-0.6931471805599453 * 8.0 * (h + 1) / H) * (i - j);

pattern alibi_bidir(input slope: float[H]) =
    full with score s - slope[h] * abs(i - j);
