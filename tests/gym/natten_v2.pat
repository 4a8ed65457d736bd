# attn_gym/masks/natten.py in language version 2: functions, pattern-local
# names, clamp, bit operations and top-left alignment, so that
# generate_natten, generate_tiled_natten and generate_morton_natten read as
# the originals (compare natten.pat and morton_natten_v1.pat, version 1).

# interleave_bits_32's inverse, deinterleave_bits_32 (hex masks in decimal:
# 0x55555555, 0x33333333, 0x0F0F0F0F, 0x00FF00FF, 0x0000FFFF)
let deint1(c) = c & 1431655765;
let deint2(c) = (c | (c >> 1)) & 858993459;
let deint4(c) = (c | (c >> 2)) & 252645135;
let deint8(c) = (c | (c >> 4)) & 16711935;
let deint16(c) = (c | (c >> 8)) & 65535;
let deinterleave_bits_32(code) = deint16(deint8(deint4(deint2(deint1(code)))));

pattern natten2(canvas_w = 6, canvas_h = 6, kernel_w = 3, kernel_h = 3) aligned(top_left) =
    let cx(q) = clamp(q / canvas_w, kernel_w / 2, (canvas_w - 1) - kernel_w / 2) in
    let cy(q) = clamp(q % canvas_w, kernel_h / 2, (canvas_h - 1) - kernel_h / 2) in
    where(abs(cx(i) - j / canvas_w) <= kernel_w / 2 && abs(cy(i) - j % canvas_w) <= kernel_h / 2);

pattern tiled_natten2(canvas_w = 6, canvas_h = 6, kernel_w = 3, kernel_h = 3,
                      tile_w = 2, tile_h = 2) aligned(top_left) =
    let tx(idx) = idx / (tile_h * tile_w) % (canvas_w / tile_w) * tile_w
                  + idx % (tile_h * tile_w) % tile_w in
    let ty(idx) = idx / (tile_h * tile_w) / (canvas_w / tile_w) * tile_h
                  + idx % (tile_h * tile_w) / tile_w in
    where(abs(clamp(tx(i), kernel_w / 2, (canvas_w - 1) - kernel_w / 2) - tx(j)) <= kernel_w / 2
       && abs(clamp(ty(i), kernel_h / 2, (canvas_h - 1) - kernel_h / 2) - ty(j)) <= kernel_h / 2);

pattern morton_natten(canvas_w = 8, canvas_h = 8, kernel_w = 3, kernel_h = 3) aligned(top_left) =
    let mx(c) = deinterleave_bits_32(c) in
    let my(c) = deinterleave_bits_32(c >> 1) in
    where(abs(clamp(mx(i), kernel_w / 2, (canvas_w - 1) - kernel_w / 2) - mx(j)) <= kernel_w / 2
       && abs(clamp(my(i), kernel_h / 2, (canvas_h - 1) - kernel_h / 2) - my(j)) <= kernel_h / 2);
