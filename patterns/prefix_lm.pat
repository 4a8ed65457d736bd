# Prefix LM: bidirectional attention over a prefix, causal after it.
#
# Colin Raffel, Noam Shazeer, Adam Roberts, Katherine Lee, Sharan Narang,
# Michael Matena, Yanqi Zhou, Wei Li, Peter J. Liu.  "Exploring the Limits
# of Transfer Learning with a Unified Text-to-Text Transformer."  2019.
# arXiv:1910.10683.  (Section 3.2.1, Figure 3 right: "causal with prefix".)
#
# "Fully-visible masking during the prefix": positions before p attend to
# the whole prefix; every later position attends causally (which includes
# the whole prefix):
#
#     M(i, j) = j <= i  or  (i < p and j < p)  ==  j <= i  or  j < p
#
# prefix_lm takes the prefix length at run time (one kernel for every
# batch); prefix_lm_fixed binds it at compile time (-D p=...).  A negative
# p counts from the end, as every index set does (p = -1 is Lk - 1).

pattern prefix_lm_fixed(p = 256) =
    causal | cols(0 .. p);

pattern prefix_lm(runtime prefix = 256) =
    causal | cols(0 .. prefix);
