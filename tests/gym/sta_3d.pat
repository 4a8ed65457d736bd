# attn_gym/masks/sta.py: generate_sta_mask_mod_3d, sliding tile attention on
# a video canvas t x h x w in tiles tile_t x tile_h x tile_w (language
# version 2: pattern-local names and clamp; the 2-D one is in sta.pat).
pattern sta_3d(canvas_t = 8, canvas_h = 8, canvas_w = 8, kernel_t = 4, kernel_h = 4, kernel_w = 4,
               tile_t = 2, tile_h = 2, tile_w = 2, text_seq_len = 0) aligned(top_left) =
    let numel = tile_t * tile_h * tile_w in
    let cth = canvas_h / tile_h in
    let ctw = canvas_w / tile_w in
    let vision = canvas_t * canvas_h * canvas_w in
    let tt(idx) = idx / numel / (cth * ctw) in
    let th(idx) = idx / numel % (cth * ctw) / ctw in
    let tw(idx) = idx / numel % ctw in
    let lb(k) = k / 2 in
    let rb(k) = k / 2 + (k % 2 - 1) in
    let inside(qt, kt, k, n) = kt >= clamp(qt, lb(k), n - 1 - rb(k)) - lb(k)
                            && kt <= clamp(qt, lb(k), n - 1 - rb(k)) + rb(k) in
    where((i < vision && j < vision
           && inside(tt(i), tt(j), kernel_t / tile_t, canvas_t / tile_t)
           && inside(th(i), th(j), kernel_h / tile_h, cth)
           && inside(tw(i), tw(j), kernel_w / tile_w, ctw))
       || (i < vision && j >= vision && j < vision + text_seq_len)
       || (i >= vision && j < vision + text_seq_len));
