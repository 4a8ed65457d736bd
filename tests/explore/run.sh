#!/usr/bin/env bash
# tests/explore/run.sh: the exploration commands, end to end: spatc recall,
# compare and tune against an independent numpy computation (dense masked
# softmax written here from the patterns' formulas), and the pictures of
# spatc mask (png decoded with zlib, svg and ascii diffs, tile overlays).
# Run from the repository root with $SPATC naming the binary (make test
# does this).  Prints "ok NAME" or "FAIL NAME" per test and closes with
# "N passed, N failed"; exits non-zero when a test failed.
# Needs python3 with numpy (python3-numpy, scripts/install-deps.sh).
set -u
. "$(dirname "$0")/../suite.sh"
suite_begin explore

# a python3 that has numpy: the first on PATH, else Debian's
PY=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  echo "FAIL numpy: no python3 with numpy (install python3-numpy: bash scripts/install-deps.sh)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ---- the independent side: activations and dense masked softmax ----
cat >ref.py <<'EOF'
import json, sys
import numpy as np

def acts(path, B, H, Hkv, Lq, Lk, D, seed, c=3.0):
    # activations with locality: q_i and k_j share a smooth embedding of
    # their positions (cosines of geometric frequencies from 1 to 1/64), so
    # that scores fall off with |i - j|, plus noise
    rng = np.random.default_rng(seed)
    f = (1 / 64) ** (np.arange(D // 2) / (D // 2 - 1))
    def emb(p):
        a = np.asarray(p)[:, None] * f[None, :]
        return np.concatenate([np.cos(a), np.sin(a)], 1)
    off = Lk - Lq if Lq <= Lk else 0
    k = emb(np.arange(Lk))[None, None] + 0.3 * rng.standard_normal((B, Hkv, Lk, D))
    q = c * emb(np.arange(Lq) + off)[None, None] + 0.3 * rng.standard_normal((B, H, Lq, D))
    v = rng.standard_normal((B, Hkv, Lk, D))
    for n, x in (('q', q), ('k', k), ('v', v)):
        np.save('%s/%s.npy' % (path, n), x.astype(np.float32))

# the masks, from the papers' formulas (patterns/*.pat), i absolute
def mask(name, p, Lq, Lk):
    r = np.arange(Lq)[:, None]
    i = r + (Lk - Lq) if Lq <= Lk else r
    j = np.arange(Lk)[None, :]
    if name == 'longformer':
        return (np.abs(i - j) <= p['w'] // 2) | (i < p['g']) | (j < p['g'])
    if name == 'causal_window':
        return (j <= i) & (j >= i - p['w'])
    if name == 'causal':
        return np.broadcast_to(j <= i, (Lq, Lk))
    if name == 'tl_causal_window':   # aligned(top_left): i = r
        return (j <= r) & (j >= r - p['w'])
    if name == 'tl_causal':
        return np.broadcast_to(j <= r, (Lq, Lk))
    if name == 'full':
        return np.ones((Lq, Lk), bool)
    if name == 'window':
        return np.abs(i - j) <= p['w']
    raise SystemExit('unknown mask ' + name)

BIAS = 0.0   # recall ... --bias X: scores s - X |i - j| (with score)

def lse_o(q, k, v, m):
    B, H, Lq, D = q.shape
    g = H // k.shape[1]
    kk = np.repeat(k, g, axis=1); vv = np.repeat(v, g, axis=1)
    s = np.einsum('bhid,bhjd->bhij', q, kk) / np.sqrt(D)
    Lk = k.shape[2]
    r = np.arange(Lq)[:, None]; i = r + (Lk - Lq) if Lq <= Lk else r
    s = s - BIAS * np.abs(i - np.arange(Lk)[None, :])
    s = np.where(m, s, -np.inf)
    mx = s.max(-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0)
    e = np.exp(s - mx)
    z = e.sum(-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        lse = np.where(z > 0, mx[..., 0] + np.log(z), -np.inf)
        o = np.where(z[..., None] > 0, (e / z[..., None]) @ vv, 0)
    return lse, o

def recall(name, params, ref='full'):
    q, k, v = (np.load(n + '.npy').astype(np.float64) for n in 'qkv')
    Lq, Lk = q.shape[2], k.shape[2]
    lp, op = lse_o(q, k, v, mask(name, params, Lq, Lk))
    lr, orf = lse_o(q, k, v, mask(ref, {}, Lq, Lk))
    rec = np.where(np.isinf(lr), 1.0, np.minimum(1.0, np.exp(lp - lr)))
    err = [float(np.linalg.norm(op[:, h] - orf[:, h]) / np.linalg.norm(orf[:, h]))
           for h in range(q.shape[1])]
    tot = float(np.linalg.norm(op - orf) / np.linalg.norm(orf))
    dens = float(mask(name, params, Lq, Lk).mean())
    return rec, err, tot, dens

cmd = sys.argv[1]
if cmd == 'acts':
    acts('.', *[int(x) for x in sys.argv[2:9]], *[float(x) for x in sys.argv[9:]])
elif cmd == 'recall':
    # recall NAME PARAMS_JSON REF ROWS.npy OUT.json [BIAS]: compare spatc with numpy
    if len(sys.argv) > 7: BIAS = float(sys.argv[7])
    name, params, ref = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    rec, err, tot, dens = recall(name, params, ref)
    got = np.load(sys.argv[5])
    j = json.load(open(sys.argv[6]))
    assert got.shape == rec.shape, (got.shape, rec.shape)
    d = float(np.abs(got - rec).max())
    assert d < 2e-4, 'rows differ by %g' % d
    for h, hd in enumerate(j['heads']):
        x = rec[:, h].ravel()
        assert abs(hd['min'] - x.min()) < 2e-4 and abs(hd['mean'] - x.mean()) < 2e-4, (h, hd)
        assert abs(hd['median'] - np.median(x)) < 2e-4, (h, hd, np.median(x))
        if hd['error'] is not None:
            assert abs(hd['error'] - err[h]) <= 1e-3 * max(1, err[h]), (h, hd['error'], err[h])
        assert abs(hd['density'] - dens) < 1e-9, (hd['density'], dens)
    assert abs(j['recall']['mean'] - rec.mean()) < 2e-4
    if j['recall']['error'] is not None:
        assert abs(j['recall']['error'] - tot) <= 1e-3 * max(1, tot)
    print('ok maxdiff %.3g mean %.4f' % (d, rec.mean()))
elif cmd == 'mean':
    # mean NAME PARAMS_JSON: the numpy mean recall
    print('%.6f' % recall(sys.argv[2], json.loads(sys.argv[3]))[0].mean())
EOF
np() { "$PY" ref.py "$@"; }

cat >cw.pat <<'EOF'
pattern causal_window(w = 16) = causal & window(w, 0);
EOF
cat >full.pat <<'EOF'
pattern dense = full;
EOF
LF=$ROOT/patterns/longformer.pat

# ---- recall against numpy ----
np acts 2 4 2 96 96 16 7
sp recall "$LF" -D w=24 -D g=2 --q q.npy --k k.npy --v v.npy -o rows.npy --json
if [ "$rc" -eq 0 ] && np recall longformer '{"w": 24, "g": 2}' full rows.npy out >res 2>&1; then
  ok recall-numpy-gqa; else cat res >>err; fail recall-numpy-gqa; fi

# bottom-right alignment (Lq < Lk), a causal pattern, no v
np acts 1 2 2 40 104 8 3
sp recall cw.pat -D w=20 --q q.npy --k k.npy -o rows.npy --json
if [ "$rc" -eq 0 ] && python3 -c 'import json,sys; j=json.load(open("out")); sys.exit(0 if j["recall"]["error"] is None else 1)' &&
   np recall causal_window '{"w": 20}' full rows.npy out >res 2>&1; then
  ok recall-aligned-no-v; else cat res >>err; fail recall-aligned-no-v; fi

# --reference causal: the share of causal attention
sp recall cw.pat -D w=20 --q q.npy --k k.npy -o rows.npy --json --reference causal
if [ "$rc" -eq 0 ] && has out '"reference": "causal"' &&
   np recall causal_window '{"w": 20}' causal rows.npy out >res 2>&1; then
  ok recall-reference; else cat res >>err; fail recall-reference; fi

# aligned(top_left): the reference takes the pattern's alignment
cat >tl.pat <<'EOF'
pattern tl(w = 16) aligned(top_left) = causal & window(w, 0);
EOF
sp recall tl.pat -D w=12 --q q.npy --k k.npy -o rows.npy --json --reference causal
if [ "$rc" -eq 0 ] && np recall tl_causal_window '{"w": 12}' tl_causal rows.npy out >res 2>&1; then
  ok recall-top-left; else cat res >>err; fail recall-top-left; fi
sp compare tl.pat cw.pat --q q.npy --k k.npy --reference causal --repeats 0
[ "$rc" -eq 1 ] && has err "different alignments" && ok compare-alignments || fail compare-alignments

# a score modifier, with the same score on the reference
np acts 1 2 2 64 64 16 9
cat >sc.pat <<'EOF'
pattern sc(w = 8) = window(w) with score s - 0.25 * abs(i - j);
EOF
sp recall sc.pat --q q.npy --k k.npy --v v.npy -o rows.npy --json --reference 'full with score s - 0.25 * abs(i - j)'
if [ "$rc" -eq 0 ] && np recall window '{"w": 8}' full rows.npy out 0.25 >res 2>&1; then
  ok recall-score-reference; else cat res >>err; fail recall-score-reference; fi

# random activations: a full pattern keeps everything
sp recall full.pat --len 80 --heads 2 --dim 8 --seed 5 --json
if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
j = json.load(open("out"))
r = j["recall"]
sys.exit(0 if r["min"] > 0.99999 and r["error"] < 1e-5 and r["density"] == 1 else 1)'; then
  ok recall-seeded-full; else fail recall-seeded-full; fi
sp recall "$LF" --len 64 --dim 8
[ "$rc" -eq 0 ] && has out "random q, k, v (seed 1)" && has out "head " && grep -q '^all ' out &&
  ok recall-table || fail recall-table
sp recall "$LF" --q q.npy
[ "$rc" -eq 2 ] && has err "give both --q and --k" && ok recall-usage || fail recall-usage
sp recall "$LF" --len 32 --reference 'window('
[ "$rc" -eq 1 ] && has err "<reference>:1:" && ok recall-bad-reference || fail recall-bad-reference

# ---- compare ----
np acts 1 2 2 128 128 16 11
sp compare "$LF",w=8,g=1 "$LF",w=64,g=1 cw.pat:causal_window,w=32 --q q.npy --k k.npy --v v.npy --repeats 1 --json
if [ "$rc" -eq 0 ] && "$PY" - >res 2>&1 <<'EOF'
import json, subprocess, sys
j = json.load(open('out'))
p = j['patterns']
assert len(p) == 3, p
means = [float(subprocess.check_output([sys.executable, 'ref.py', 'mean', n, a]))
         for n, a in (('longformer', '{"w": 8, "g": 1}'), ('longformer', '{"w": 64, "g": 1}'),
                      ('causal_window', '{"w": 32}'))]
for x, m in zip(p, means):
    assert abs(x['recall']['mean'] - m) < 2e-4, (x['pattern'], x['recall'], m)
    assert x['kernel_ms'] > 0 and 0 < x['recall']['density'] <= 1
assert p[0]['recall']['mean'] < p[1]['recall']['mean']
assert p[0]['recall']['density'] < p[1]['recall']['density']
assert p[2]['pattern'] == 'causal_window(w = 32)', p[2]['pattern']
assert j['reference'] == 'full' and j['reference_ms'] > 0
EOF
then ok compare-json; else cat res >>err; fail compare-json; fi
sp compare "$LF",w=8 "$LF",w=64 --len 128 --dim 16 --repeats 1
[ "$rc" -eq 0 ] && has out "longformer(w = 8, g = 1)" && has out "full (reference)" && has out "speedup" &&
  ok compare-table || fail compare-table
sp compare "$LF",nope=3 --len 64
[ "$rc" -eq 1 ] && has err "nope" && ok compare-bad-param || fail compare-bad-param
sp compare --len 64
[ "$rc" -eq 2 ] && has err "no pattern to compare" && ok compare-usage || fail compare-usage

# ---- tune ----
np acts 1 2 2 256 256 16 5
sp tune "$LF" -D g=1 --param w=2:256 --target 0.8 --q q.npy --k k.npy --repeats 1 --json
if [ "$rc" -eq 0 ] && "$PY" - >res 2>&1 <<'EOF'
import json, subprocess, sys
j = json.load(open('out'))
c = j['chosen']
assert c is not None and list(c) == ['w'], c
pts = [p for p in j['curve'] if p['values'] == c]
assert len(pts) == 1 and pts[0]['meets'], pts
for p in j['curve']:
    if p['valid']:
        assert p['meets'] == (p['recall']['mean'] >= 0.8), p
# the recall of the choice, recomputed independently, meets the target
m = float(subprocess.check_output([sys.executable, 'ref.py', 'mean', 'longformer',
                                   json.dumps({'w': c['w'], 'g': 1})]))
assert m >= 0.8 - 2e-4 and abs(m - pts[0]['recall']['mean']) < 2e-4, (m, pts[0])
# the fastest setting that meets the target (times within 5% tie)
for p in j['curve']:
    if p['meets']:
        assert not p['kernel_ms'] < pts[0]['kernel_ms'] * 0.95, (p, pts[0])
# bisection bracketed the boundary: the narrowest window that meets has a
# measured narrower one, which misses, at most 8 apart (3 integer steps)
wmin = min(p['values']['w'] for p in j['curve'] if p['meets'])
below = [p['values']['w'] for p in j['curve'] if p['values']['w'] < wmin]
assert below and wmin - max(below) <= 8, (wmin, below)
assert 2 in j['params'][0]['grid'] and 256 in j['params'][0]['grid'] and 64 in j['params'][0]['grid']
assert len(j['curve']) <= 48
EOF
then ok tune-json; else cat res >>err; fail tune-json; fi
sp tune "$LF" -D g=1 --param w=2:64 --target 0.6 --by min --q q.npy --k k.npy --repeats 1
[ "$rc" -eq 0 ] && grep -q '^chosen: -D w=' out && has out "min recall >= 0.6" && ok tune-table || fail tune-table
sp tune "$LF" --param w=2:8 -D g=1 --target 0.9999 --q q.npy --k k.npy --repeats 1
[ "$rc" -eq 1 ] && has err "no setting measured keeps mean recall >= 0.9999" && ok tune-unreachable || fail tune-unreachable
sp tune "$LF" --target 1.5 --len 64
[ "$rc" -eq 2 ] && has err "--target must be in (0, 1]" && ok tune-bad-target || fail tune-bad-target
sp tune "$LF" --param w=9 --len 64
[ "$rc" -eq 2 ] && has err "expected NAME=LO:HI" && ok tune-bad-param || fail tune-bad-param
sp tune "$LF" --param zz=1:4 --len 64
[ "$rc" -eq 1 ] && has err "no compile-time parameter 'zz'" && ok tune-unknown-param || fail tune-unknown-param
sp tune full.pat --len 64
[ "$rc" -eq 1 ] && has err "no compile-time parameter to tune" && ok tune-nothing || fail tune-nothing

# ---- pictures: png decoded with zlib, diffs, tiles ----
cat >png.py <<'EOF'
import struct, sys, zlib
import numpy as np

def read(path):
    b = open(path, 'rb').read()
    assert b[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
    pos, idat, meta, ihdr = 8, b'', None, None
    while pos < len(b):
        n, = struct.unpack('>I', b[pos:pos + 4]); t = b[pos + 4:pos + 8]
        d = b[pos + 8:pos + 8 + n]
        crc, = struct.unpack('>I', b[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(t + d) & 0xffffffff == crc, 'crc of %r' % t
        if t == b'IHDR': ihdr = struct.unpack('>IIBBBBB', d)
        elif t == b'IDAT': idat += d
        elif t == b'tEXt':
            k, v = d.split(b'\0'); assert k == b'spatc'
            meta = dict(x.split('=') for x in v.decode().split()[1:])
        pos += 12 + n
    w, h, depth, ctype = ihdr[:4]
    assert depth == 8 and ctype == 2, ihdr
    raw = zlib.decompress(idat)
    assert len(raw) == h * (1 + 3 * w) and len(idat) < len(raw)
    img = np.frombuffer(raw, np.uint8).reshape(h, 1 + 3 * w)
    assert (img[:, 0] == 0).all()
    return img[:, 1:].reshape(h, w, 3), {k: int(v) for k, v in meta.items()}

def cell_rgb(img, m, r, c):
    # the centre pixel of cell (r, c) of an upscaled plot
    s = m['cell']; assert s > 0
    return tuple(int(x) for x in img[m['y'] + r * s + s // 2, m['x'] + c * s + s // 2])

INK = (24, 40, 96); WHITE = (255, 255, 255)
DIFF = [WHITE, (222, 110, 20), (30, 110, 220), (40, 40, 40)]
TILE_INK = [(200, 0, 0), (170, 95, 0), (20, 105, 40)]
TILE_TINT = [WHITE, (255, 232, 170), (196, 236, 196)]

def ascii_mask(path):
    return [l.rstrip('\n') for l in open(path) if not l.startswith('# ')]

cmd = sys.argv[1]
if cmd == 'mask':      # mask PNG ASCII: every cell's colour is the ascii mask's
    img, m = read(sys.argv[2])
    a = ascii_mask(sys.argv[3])
    assert m['rows'] == len(a) and m['cols'] == len(a[0]), (m, len(a))
    for r, line in enumerate(a):
        for c, ch in enumerate(line):
            assert cell_rgb(img, m, r, c) == (INK if ch == '#' else WHITE), (r, c)
    # text above and left of the plot: dark pixels in the margins
    assert (img[:m['y'] - 2, :, :].astype(int).sum(2) < 240).sum() > 50, 'no title or ticks'
    assert (img[m['y']:, :m['x'] - 2, :].astype(int).sum(2) < 240).sum() > 20, 'no row ticks'
elif cmd == 'diff':    # diff PNG ASCII_DIFF: colours of only A, only B, both
    img, m = read(sys.argv[2])
    a = ascii_mask(sys.argv[3])
    k = {'.': 0, 'A': 1, 'B': 2, '#': 3}
    seen = set()
    for r, line in enumerate(a):
        for c, ch in enumerate(line):
            assert cell_rgb(img, m, r, c) == DIFF[k[ch]], (r, c, ch, cell_rgb(img, m, r, c))
            seen.add(ch)
    assert seen == set('.AB#'), seen
    below = img[m['y'] + m['h'] + 1:]
    for col in DIFF[1:]:   # the legend's swatches
        assert (below == np.array(col, np.uint8)).all(2).any(), col
elif cmd == 'tiles':   # tiles PNG ASCII_MASK ASCII_TILES TQ TK
    img, m = read(sys.argv[2])
    a = ascii_mask(sys.argv[3]); t = ascii_mask(sys.argv[4])
    tq, tk = int(sys.argv[5]), int(sys.argv[6])
    cls = {'.': 0, '+': 1, '#': 2}
    kinds = set()
    for r, line in enumerate(a):
        for c, ch in enumerate(line):
            tc = cls[t[r // tq][c // tk]]
            want = TILE_INK[tc] if ch == '#' else TILE_TINT[tc]
            assert cell_rgb(img, m, r, c) == want, (r, c, ch, tc)
            kinds.add((ch, tc))
            assert not (ch == '#' and tc == 0), 'allowed pair in a skipped tile'
    assert len({k[1] for k in kinds}) >= 2, kinds
EOF
cat >cw2.pat <<'EOF'
pattern sink_window(w = 4) = causal & (window(w, 0) | cols(0 .. 2));
EOF
sp mask cw.pat -D w=5 --len 30 -o m.png
"$SPATC" mask cw.pat -D w=5 --len 30 >m.txt 2>>err
if [ "$rc" -eq 0 ] && "$PY" png.py mask m.png m.txt >res 2>&1; then ok png-mask; else cat res >>err; fail png-mask; fi
sp mask "$LF" -D w=8 -D g=1 --len 24 --diff cw2.pat -o d.png
"$SPATC" mask "$LF" -D w=8 -D g=1 --len 24 --diff cw2.pat >d.txt 2>>err
if [ "$rc" -eq 0 ] && has d.txt "# diff: A only longformer(w = 8, g = 1), B only sink_window(w = 4)" &&
   "$PY" png.py diff d.png d.txt >res 2>&1; then ok png-diff; else cat res >>err; fail png-diff; fi
# the ascii diff itself against numpy masks
if "$PY" - >res 2>&1 <<'EOF'
import numpy as np
r = np.arange(24)[:, None]; j = np.arange(24)[None, :]
a = (np.abs(r - j) <= 4) | (r < 1) | (j < 1)
b = (j <= r) & ((j >= r - 4) | (j < 2))
want = np.array(['.', 'A', 'B', '#'])[a.astype(int) + 2 * b.astype(int)]
got = [l.rstrip('\n') for l in open('d.txt') if not l.startswith('# ')]
assert got == [''.join(x) for x in want], got
EOF
then ok ascii-diff; else cat res >>err; fail ascii-diff; fi
sp mask "$LF" -D w=8 --len 24 --diff cw2.pat -o d.svg
if [ "$rc" -eq 0 ] && has d.svg "only sink_window(w = 4)" && has d.svg 'fill="rgb(30,110,220)"' &&
   python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' d.svg; then
  ok svg-diff; else fail svg-diff; fi
"$SPATC" mask cw.pat -D w=70 --len 256 --force >t.txt 2>err
sp mask cw.pat -D w=70 --len 256 --tiles
cp out tt.txt
sp mask cw.pat -D w=70 --len 256 --tiles -o t.png --px 1024
if [ "$rc" -eq 0 ] && has tt.txt "# tile plan, tiles of 64 x 64" &&
   "$PY" png.py tiles t.png t.txt tt.txt 64 64 >res 2>&1; then ok png-tiles; else cat res >>err; fail png-tiles; fi
sp mask cw.pat -D w=70 --len 256 --heads 2 --tiles --bq 32 --bk 128 -o t2.svg
[ "$rc" -eq 0 ] && has t2.svg 'class="head"' && has t2.svg 'class="tile-partial"' && ok svg-tiles || fail svg-tiles
sp mask cw.pat --len 64 --tiles -o t.npy
[ "$rc" -eq 2 ] && has err "--tiles draws on png, svg or ascii" && ok tiles-npy-usage || fail tiles-npy-usage
sp mask cw.pat --len 64 --diff-pattern x
[ "$rc" -eq 2 ] && has err "--diff-pattern needs --diff" && ok diff-usage || fail diff-usage
sp mask cw.pat --len 64 --diff nonexistent.pat
[ "$rc" -eq 1 ] && has err "nonexistent.pat" && ok diff-missing || fail diff-missing

suite_end
