# BigBird (ITC): block sliding window + global blocks + random blocks.
#
# Manzil Zaheer, Guru Guruganesh, Avinava Dubey, Joshua Ainslie, Chris
# Alberti, Santiago Ontanon, Philip Pham, Anirudh Ravula, Qifan Wang, Li
# Yang, Amr Ahmed.  "Big Bird: Transformers for Longer Sequences."  2020.
# arXiv:2007.14062.
#
# Section 2 and Appendix D (blockified attention): the sequence is cut into
# blocks of b tokens; query block i attends to key blocks i-1, i, i+1
# (window of 3 blocks, "w = 3 x b"), to the global blocks, and to r random
# key blocks ("r = 3 x b" for b = 64 in Table 8); global blocks attend to
# everything and are attended by everything (ITC: existing tokens made
# global, "g = 2 x b").  As in the authors' implementation the g = 2 global
# blocks are the first and the last block.  Implemented, with I = i / b,
# J = j / b and n = ceil(Lk / b):
#
#     M(h, i, j) = |I - J| <= 1
#               or I in G or J in G,   G = {0 .. g-1} u {n-g .. n-1}
#               or J in { hash(seed, h, I, t) mod n : 0 <= t < r }
#
# The random blocks use the spec's hash, so they differ per head and per
# query block and are reproducible; unlike the reference code, random
# blocks are not re-drawn when they fall in the window or on a global
# block (a row may then have fewer than r extra blocks).

pattern bigbird(b = 64, g = 1, r = 3, seed = 0) =
    blocks(b) {
        window(1) | global({0 .. g, Lk - g .. Lk}) | random(r, seed)
    };
