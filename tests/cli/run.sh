#!/usr/bin/env bash
# tests/cli/run.sh: end-to-end tests of the spatc command line.
# Run from the repository root with $SPATC naming the binary (make test does
# this).  Prints "ok NAME" or "FAIL NAME" per test and closes with
# "N passed, N failed"; exits non-zero when a test failed.
# Needs bash and python3 (standard library only: npy files are read and
# written with struct, the reference attention is computed in pure Python),
# groff (the man page) and timeout (what used to block on a FIFO).
set -u
. "$(dirname "$0")/../suite.sh"
suite_begin cli
# expect NAME RC: the last sp exited with RC.
expect_rc() { [ "$rc" -eq "$2" ] || { fail "$1" "exit $rc, expected $2"; return 1; }; }
# spt ARGS...: sp with a time limit, for what used to block (a FIFO); 124 on
# a timeout.
spt() { timeout 60 "$SPATC" "$@" >out 2>err; rc=$?; }

# ---- a small npy / attention toolkit (python3, standard library) ----
cat >npy.py <<'EOF'
import ast, math, struct, sys

def read(path):
    b = open(path, 'rb').read()
    assert b[:6] == b'\x93NUMPY', 'bad magic'
    major = b[6]
    if major == 1:
        hl = struct.unpack('<H', b[8:10])[0]; off = 10
    else:
        hl = struct.unpack('<I', b[8:12])[0]; off = 12
    hdr = ast.literal_eval(b[off:off + hl].decode('latin1'))
    assert (off + hl) % 64 == 0, 'header not padded to 64'
    data = b[off + hl:]
    code = {'<f4': 'f', '<i4': 'i', '|u1': 'B', '<f2': 'e', '<u2': 'H'}[hdr['descr']]
    n = 1
    for s in hdr['shape']: n *= s
    assert len(data) == n * struct.calcsize('<' + code), 'data size'
    vals = list(struct.unpack('<%d%s' % (n, code), data))
    if code == 'H':  # '<u2' files hold bfloat16 bits (spatc --dtype bf16)
        vals = [struct.unpack('<f', struct.pack('<I', x << 16))[0] for x in vals]
    return hdr, vals

def to_bf16(x):  # float32 -> bfloat16 bits, to nearest even
    u = struct.unpack('<I', struct.pack('<f', x))[0]
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff

def write(path, descr, shape, vals, fortran=False, cut=0):
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, fortran, tuple(shape))
    pad = 64 - (10 + len(hdr) + 1) % 64
    hdr = hdr + ' ' * pad + '\n'
    code = {'<f4': 'f', '<i4': 'i', '|u1': 'B', '<f8': 'd', '<f2': 'e', '<u2': 'H'}[descr]
    out = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode()
    out += struct.pack('<%d%s' % (len(vals), code), *vals)
    if cut: out = out[:-cut]
    open(path, 'wb').write(out)

M64 = (1 << 64) - 1
def mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)

def randn(seed, stream, n):
    # the generator documented in spatc(1)
    st = mix((seed + stream) & M64)
    out = []
    for _ in range(n):
        x1 = mix(st); st = (st + 0x9E3779B97F4A7C15) & M64
        x2 = mix(st); st = (st + 0x9E3779B97F4A7C15) & M64
        u1 = ((x1 >> 11) + 1) * 2.0 ** -53
        u2 = (x2 >> 11) * 2.0 ** -53
        out.append(struct.unpack('f', struct.pack('f', math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)))[0])
    return out

def attention(q, k, v, B, H, Hkv, Lq, Lk, D, allowed):
    # q [B,H,Lq,D], k, v [B,Hkv,Lk,D] flat lists; allowed(h, i, j)
    o, lse = [], []
    g = H // Hkv
    scale = 1 / math.sqrt(D)
    for b in range(B):
        for h in range(H):
            hk = h // g
            for r in range(Lq):
                i = r + (Lk - Lq) if Lq <= Lk else r
                qi = q[((b * H + h) * Lq + r) * D:][:D]
                s = []
                for j in range(Lk):
                    if allowed(h, i, j):
                        kj = k[((b * Hkv + hk) * Lk + j) * D:][:D]
                        s.append((j, scale * sum(x * y for x, y in zip(qi, kj))))
                if not s:
                    o.extend([0.0] * D); lse.append(-math.inf); continue
                m = max(x for _, x in s)
                w = [(j, math.exp(x - m)) for j, x in s]
                z = sum(x for _, x in w)
                lse.append(m + math.log(z))
                acc = [0.0] * D
                for j, x in w:
                    vj = v[((b * Hkv + hk) * Lk + j) * D:][:D]
                    for d in range(D): acc[d] += x / z * vj[d]
                o.extend(acc)
    return o, lse

def maxdiff(a, b):
    return max((0.0 if (x == y) else abs(x - y)) for x, y in zip(a, b))

cmd = sys.argv[1]
if cmd == 'shape':                      # shape FILE -> "descr (a, b)"
    h, _ = read(sys.argv[2]); print(h['descr'], tuple(h['shape']))
elif cmd == 'cmp':                      # cmp A B TOL: same shape, max |a-b| <= TOL
    ha, a = read(sys.argv[2]); hb, b = read(sys.argv[3])
    assert ha['shape'] == hb['shape'], (ha['shape'], hb['shape'])
    d = maxdiff(a, b)
    print('maxdiff', d)
    sys.exit(0 if d <= float(sys.argv[4]) else 1)
elif cmd == 'ascii':                    # ascii FILE: a [Lq, Lk] uint8 mask as #/.
    h, a = read(sys.argv[2]); lq, lk = h['shape']
    for r in range(lq): print(''.join('#' if a[r * lk + j] else '.' for j in range(lk)))
elif cmd == 'write':                    # write FILE DESCR SHAPE VALUES [fortran] [cut]
    vals = [float(x) if sys.argv[3] in ('<f4', '<f8') else int(x) for x in sys.argv[5].split(',')] if sys.argv[5] else []
    write(sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4].split(',')], vals,
          len(sys.argv) > 6 and sys.argv[6] == 'F', int(sys.argv[7]) if len(sys.argv) > 7 else 0)
elif cmd == 'writerand':                # writerand FILE SEED STREAM SHAPE: float32 normal
    shape = [int(x) for x in sys.argv[5].split(',')]
    n = 1
    for s in shape: n *= s
    write(sys.argv[2], '<f4', shape, randn(int(sys.argv[3]), int(sys.argv[4]), n))
elif cmd == 'ref':                      # ref O LSE SEED B H HKV LQ LK D PRED
    seed, B, H, Hkv, Lq, Lk, D = (int(x) for x in sys.argv[4:11])
    pred = eval('lambda h, i, j: ' + sys.argv[11])
    q = randn(seed, 0, B * H * Lq * D)
    k = randn(seed, 1, B * Hkv * Lk * D)
    v = randn(seed, 2, B * Hkv * Lk * D)
    o, lse = attention(q, k, v, B, H, Hkv, Lq, Lk, D, pred)
    _, got = read(sys.argv[2]); _, got_lse = read(sys.argv[3])
    d, dl = maxdiff(o, got), maxdiff(lse, got_lse)
    print('maxdiff o', d, 'lse', dl)
    sys.exit(0 if d <= 2e-5 and dl <= 2e-5 else 1)
elif cmd == 'ref-files':                # ref-files O Q K V PRED [TOL]: [B,H,L,D] inputs
    _, got = read(sys.argv[2])
    hq, q = read(sys.argv[3]); hk, k = read(sys.argv[4]); _, v = read(sys.argv[5])
    B, H, Lq, D = hq['shape']; _, Hkv, Lk, _ = hk['shape']
    pred = eval('lambda h, i, j: ' + sys.argv[6])
    o, _ = attention(q, k, v, B, H, Hkv, Lq, Lk, D, pred)
    d = maxdiff(o, got); print('maxdiff', d)
    sys.exit(0 if d <= (float(sys.argv[7]) if len(sys.argv) > 7 else 2e-5) else 1)
elif cmd == 'round':                    # round IN.npy DESCR OUT.npy: to '<f2' or bf16 '<u2'
    h, a = read(sys.argv[2])
    vals = [to_bf16(x) for x in a] if sys.argv[3] == '<u2' else a
    write(sys.argv[4], sys.argv[3], h['shape'], vals)
EOF
py() { python3 npy.py "$@"; }

# ---- patterns ----
cat >pats.pat <<'EOF'
# patterns for the CLI tests
pattern causal4 = causal;
pattern win(w = 1) = window(w);
pattern cw(w = 2) = causal & window(w, 0);
EOF
cat >w2.pat <<'EOF'
pattern w2 = window(2);
EOF
cat >heads.pat <<'EOF'
pattern perhead = h == 0 ? causal : window(0);
EOF
cat >rt.pat <<'EOF'
pattern sinks(runtime n) = causal & (cols(0 .. n) | window(1, 0));
EOF
cat >docs.pat <<'EOF'
pattern docs(input doc: int[]) = causal & where(doc[i] == doc[j]);
EOF
cat >rows.pat <<'EOF'
pattern two = rows({0, 1});
EOF
cat >topk.pat <<'EOF'
pattern tk(k = 2) = topk(k, causal);
EOF
printf 'pattern bad = window(w);\n' >bad.pat
printf 'pattern oob(input doc: int[]) = where(doc[i + 1] == 0);\n' >oob.pat
printf 'pattern neg = window(1 - 3);\n' >neg.pat

# ---- the driver ----
sp --version
expect_rc version 0 && grep -qE '^spatc [0-9]+\.[0-9]+' out && ok version || fail version
sp --help
expect_rc help 0 && for c in check mask stats run; do has out "$c" || false; done && ok help || fail help
has out "bench      time the JIT kernel against a C loop and OpenBLAS" && ! has out "interpreter" && ok help-bench || fail help-bench
sp
expect_rc no-args 2 && has err usage: && ok no-args || fail no-args
sp frobnicate
expect_rc unknown-command 2 && has err "spatc: error: unknown command 'frobnicate'" && ok unknown-command || fail unknown-command
sp help mask
expect_rc help-command 0 && has out "usage: spatc mask" && ok help-command || fail help-command
for c in check mask stats run; do
  sp "$c" --help
  expect_rc "help-$c" 0 && has out "usage: spatc $c" && [ ! -s err ] && ok "help-$c" || fail "help-$c"
done
sp mask pats.pat --bogus 3
expect_rc unknown-option 2 && has err "spatc: error: unknown option '--bogus'" && has err "usage: spatc mask" && ok unknown-option || fail unknown-option
sp stats w2.pat --lq
expect_rc missing-argument 2 && has err "option '--lq' requires an argument" && ok missing-argument || fail missing-argument
sp mask w2.pat --lq x8
expect_rc bad-integer 2 && has err "--lq: expected an integer" && ok bad-integer || fail bad-integer
sp mask w2.pat
expect_rc missing-size 2 && has err "--lq N or --len N" && ok missing-size || fail missing-size
sp mask
expect_rc missing-file-arg 2 && has err "no input file" && ok missing-file-arg || fail missing-file-arg

# ---- the man page: no groff warnings (a text line starting with '.' is a
# request and vanishes), and its mask example is what spatc prints ----
groff -man -Tutf8 -ww -z "$ROOT/docs/spatc.1" >out 2>err
[ "$?" -eq 0 ] && [ ! -s err ] && ok man-warnings || fail man-warnings
printf 'pattern cw(w = 2) = causal & window(w, 0);\n' >cw.pat
sp mask cw.pat --len 8
groff -man -Tascii -P-cbou "$ROOT/docs/spatc.1" 2>/dev/null |
  sed -n '/\$ spatc mask cw.pat --len 8/,/^ *$/p' | sed '1d;/^ *$/d;s/^ *//' >man-mask
[ "$rc" -eq 0 ] && [ "$(wc -l <man-mask)" -eq 8 ] && cmp -s out man-mask && ok man-example || fail man-example "$(cat man-mask)"

# ---- check ----
sp check pats.pat w2.pat
expect_rc check-ok 0 && [ ! -s out ] && [ ! -s err ] && ok check-ok || fail check-ok
sp check -v pats.pat
expect_rc check-verbose 0 && [ "$(wc -l <out)" -eq 3 ] && has out "pats.pat: win(w = 1)" && has out "pats.pat: cw(w = 2)" && has out "pats.pat: causal4" && ok check-verbose || fail check-verbose
sp check nope.pat
expect_rc check-missing 1 && [ "$(cat err)" = "spatc: error: nope.pat: No such file or directory" ] && ok check-missing || fail check-missing
sp check bad.pat
expect_rc check-error 1 && grep -qE '^bad\.pat:1:[0-9]+: error: ' err && grep -qE '^ *\| *\^' err && ok check-error || fail check-error
sp check neg.pat
expect_rc check-negative 1 && grep -qE '^neg\.pat:1:[0-9]+: error: ' err && ok check-negative || fail check-negative
sp check -v bad.pat w2.pat
expect_rc check-continues 1 && has out "w2.pat: w2" && has err "bad.pat:1:" && ok check-continues || fail check-continues
printf 'pattern helper(w) = window(w);\npattern user = helper(1);\n' >helper.pat
sp check -v helper.pat
expect_rc check-required-param 0 && has out "helper.pat: helper(w)" && has out "helper.pat: user" && ok check-required-param || fail check-required-param
printf 'pattern nd(w = -1) = window(w);\n' >negdef.pat
sp check negdef.pat
expect_rc check-bad-default 1 && grep -qE '^negdef\.pat:1:[0-9]+: error: ' err && ok check-bad-default || fail check-bad-default
sp check .
expect_rc check-directory 1 && has err "spatc: error: .: Is a directory" && ok check-directory || fail check-directory
# only regular files are read: a FIFO (no writer) or a device would block
mkfifo fifo fifo.npy
spt check fifo
expect_rc check-fifo 1 && [ "$(cat err)" = "spatc: error: fifo: not a regular file (a FIFO)" ] && ok check-fifo || fail check-fifo
spt check /dev/null
expect_rc check-device 1 && has err "/dev/null: not a regular file (a character device)" && ok check-device || fail check-device
printf 'import "fifo";\npattern a = causal;\n' >impfifo.pat
spt check impfifo.pat
expect_rc import-fifo 1 && has err "impfifo.pat:1:8: error: cannot read 'fifo': not a regular file (a FIFO)" && ok import-fifo || fail import-fifo
spt mask fifo --len 2
expect_rc mask-fifo 1 && has err "fifo: not a regular file (a FIFO)" && ok mask-fifo || fail mask-fifo
spt run w2.pat --q fifo.npy --k fifo.npy --v fifo.npy
expect_rc run-q-fifo 1 && has err "fifo.npy: not a regular file (a FIFO)" && ok run-q-fifo || fail run-q-fifo
spt mask docs.pat --len 4 --input doc=fifo.npy
expect_rc input-fifo 1 && [ "$(cat err)" = "spatc: error: fifo.npy: not a regular file (a FIFO)" ] && ok input-fifo || fail input-fifo
printf 'extern fn near(int, int) -> bool;\npattern e = where(near(i, j));\n' >ext.pat
spt mask ext.pat --len 4 --plugin ./fifo
expect_rc plugin-fifo 1 && has err "./fifo: not a regular file (a FIFO)" && ok plugin-fifo || fail plugin-fifo
# -D applies to the patterns with that parameter (docs/language.md opens with it)
printf 'pattern longformer(w = 512, g = 1) =\n    window(w / 2) | global(0 .. g);\n' >longformer.pat
sp check longformer.pat -D w=1024
expect_rc check-define 0 && [ ! -s out ] && [ ! -s err ] && ok check-define || fail check-define
sp check longformer.pat -D w=-4
expect_rc check-define-bad 1 && grep -qE '^longformer\.pat:2:12: error: ' err && has err "with -D w=-4" && ok check-define-bad || fail check-define-bad
sp check longformer.pat w2.pat -D nosuch=3
expect_rc check-define-unused 1 && has err "-D nosuch: no pattern checked has a compile-time parameter 'nosuch'" && ok check-define-unused || fail check-define-unused
sp check -v helper.pat -D w=-1
expect_rc check-define-required 1 && has err "helper.pat:1:" && ok check-define-required || fail check-define-required
sp check longformer.pat -D w
expect_rc check-define-malformed 2 && has err "expected NAME=INTEGER" && ok check-define-malformed || fail check-define-malformed

# ---- mask ----
sp mask w2.pat --lq 6
cat >want <<'EOF'
###...
####..
#####.
.#####
..####
...###
EOF
expect_rc mask-ascii 0 && cmp -s out want && ok mask-ascii || fail mask-ascii
sp mask pats.pat --pattern cw --len 5
cat >want <<'EOF'
#....
##...
###..
.###.
..###
EOF
expect_rc mask-pattern 0 && cmp -s out want && ok mask-pattern || fail mask-pattern
sp mask pats.pat -p cw -D w=0 --len 3
printf '#..\n.#.\n..#\n' >want
expect_rc mask-define 0 && cmp -s out want && ok mask-define || fail mask-define
sp mask pats.pat --pattern causal4 --lq 2 --lk 4
printf '###.\n####\n' >want
expect_rc mask-rect 0 && cmp -s out want && ok mask-rect || fail mask-rect
# Lq > Lk: row r is position r
sp mask pats.pat --pattern causal4 --lq 4 --lk 2
printf '#.\n##\n##\n##\n' >want
expect_rc mask-tall 0 && cmp -s out want && ok mask-tall || fail mask-tall
sp mask pats.pat --pattern nosuch --len 4
expect_rc mask-no-pattern 1 && has err "no pattern named 'nosuch'" && ok mask-no-pattern || fail mask-no-pattern
# a pattern of an imported file can be selected by name (docs/language.md)
mkdir -p lib && printf 'pattern a = causal;\n' >lib/lib.pat
printf 'import "lib/lib.pat";\npattern b = a & window(2);\n' >imp.pat
sp mask imp.pat -p a --len 3
printf '#..\n##.\n###\n' >want
expect_rc mask-imported 0 && cmp -s out want && ok mask-imported || fail mask-imported
sp mask imp.pat --len 4
printf '#...\n##..\n###.\n.###\n' >want
expect_rc mask-imported-default 0 && cmp -s out want && ok mask-imported-default || fail mask-imported-default
printf 'import "lib/lib.pat";\n' >only-import.pat
sp stats only-import.pat -p a --len 4
expect_rc stats-imported 0 && has out "10" && ok stats-imported || fail stats-imported
sp mask pats.pat -p win -D nosuch=3 --len 4
expect_rc mask-define-unknown 1 && has err "error:" && ok mask-define-unknown || fail mask-define-unknown
sp mask pats.pat -p win -D w --len 4
expect_rc mask-define-malformed 2 && has err "expected NAME=INTEGER" && ok mask-define-malformed || fail mask-define-malformed
sp mask heads.pat --len 3 --heads 2
printf '# head 0\n#..\n##.\n###\n\n# head 1\n#..\n.#.\n..#\n' >want
expect_rc mask-heads 0 && cmp -s out want && ok mask-heads || fail mask-heads
sp mask heads.pat --len 3 --heads 2 --head 1
printf '#..\n.#.\n..#\n' >want
expect_rc mask-head 0 && cmp -s out want && ok mask-head || fail mask-head
sp mask heads.pat --len 3 --heads 2 --head 2
expect_rc mask-head-range 2 && has err "--head 2 is out of range" && ok mask-head-range || fail mask-head-range
sp mask w2.pat --len 600
expect_rc mask-too-wide 1 && has err "too wide for ascii" && has err png && ok mask-too-wide || fail mask-too-wide
sp mask w2.pat --lq 2 --lk 600 --force
expect_rc mask-force 0 && [ "$(wc -l <out)" -eq 2 ] && [ "$(head -1 out | wc -c)" -eq 601 ] && ok mask-force || fail mask-force
sp mask w2.pat --len 6 -o m.txt
printf '###...\n####..\n#####.\n.#####\n..####\n...###\n' >want
expect_rc mask-output 0 && cmp -s m.txt want && [ ! -s out ] && ok mask-output || fail mask-output

# npy: header bytes, size, contents
sp mask heads.pat --len 5 --heads 2 --format npy -o m.npy
if expect_rc mask-npy 0; then
  magic=$(head -c 8 m.npy | od -An -tx1 | tr -d ' \n')
  # 128 bytes of preamble+header for this shape, then 2*5*5 bytes
  if [ "$magic" = "934e554d50590100" ] && [ "$(py shape m.npy)" = "|u1 (2, 5, 5)" ] &&
     [ $(( $(wc -c <m.npy) % 64 )) -eq $(( 2 * 5 * 5 % 64 )) ]; then ok mask-npy; else fail mask-npy "$magic $(py shape m.npy)"; fi
fi
sp mask heads.pat --len 5 --heads 2 --head 0 -o h0.npy
if expect_rc mask-npy-head 0 && [ "$(py shape h0.npy)" = "|u1 (5, 5)" ]; then
  py ascii h0.npy >got; "$SPATC" mask heads.pat --len 5 --heads 2 --head 0 >want
  cmp -s got want && ok mask-npy-head || fail mask-npy-head "npy and ascii differ"
else fail mask-npy-head; fi
sp mask w2.pat --len 64 --format png -o m.png
expect_rc mask-png 0 && [ "$(head -c 8 m.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && ok mask-png || fail mask-png
sp mask w2.pat --len 4096 -o big.png
expect_rc mask-png-4096 0 && [ "$(head -c 8 big.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && ok mask-png-4096 || fail mask-png-4096
sp mask w2.pat --len 32 -o m.svg
if expect_rc mask-svg 0 && has m.svg "<svg" &&
   python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); sys.exit(0 if r.tag.endswith("svg") else 1)' m.svg; then
  ok mask-svg; else fail mask-svg; fi
sp mask w2.pat --len 8 --format png
expect_rc mask-png-needs-o 2 && has err "-o FILE" && ok mask-png-needs-o || fail mask-png-needs-o
sp mask w2.pat --len 8 --format jpeg -o x.jpeg
expect_rc mask-bad-format 2 && has err "expected ascii, npy, png or svg" && ok mask-bad-format || fail mask-bad-format
sp mask w2.pat --len 8 -o /nonexistent-dir/m.npy
expect_rc mask-unwritable 1 && has err "/nonexistent-dir/m.npy" && ok mask-unwritable || fail mask-unwritable

# runtime scalars and input arrays
sp mask rt.pat --len 5
expect_rc runtime-missing 1 && has err "'n'" && has err "--runtime" && ok runtime-missing || fail runtime-missing
sp mask rt.pat --len 5 --runtime n=1
printf '#....\n##...\n###..\n#.##.\n#..##\n' >want
expect_rc runtime-value 0 && cmp -s out want && ok runtime-value || fail runtime-value
# the run summary and stats name the runtime values used
sp run rt.pat --seed 1 --len 5 --dim 16 --runtime n=3
expect_rc run-summary-runtime 0 && has err "spatc: run sinks(runtime n = 3): B=1" && ok run-summary-runtime || fail run-summary-runtime
printf 'pattern sd(w = 1, runtime n = 2, runtime m = 0) = causal & (cols(m .. n) | window(w, 0));\n' >rt2.pat
sp run rt2.pat --seed 1 --len 5 --dim 16 --runtime m=1 --backend interp
expect_rc run-summary-defaults 0 && has err "run sd(w = 1, runtime n = 2, runtime m = 1): " && ok run-summary-defaults || fail run-summary-defaults
sp stats rt.pat --len 5 --runtime n=1
expect_rc stats-runtime 0 && has out "pattern sinks(runtime n = 1): H = 1" && ok stats-runtime || fail stats-runtime
sp mask rt.pat --len 5 --runtime n=1 --runtime m=2
expect_rc runtime-unknown 1 && has err "no runtime scalar 'm'" && ok runtime-unknown || fail runtime-unknown
py write doc.npy '<i4' 5 0,0,1,1,1
sp mask docs.pat --len 5 --input doc=doc.npy
printf '#....\n##...\n..#..\n..##.\n..###\n' >want
expect_rc input-array 0 && cmp -s out want && ok input-array || fail input-array
sp mask docs.pat --len 5
expect_rc input-missing 1 && has err "'doc'" && has err "--input" && ok input-missing || fail input-missing
py write doc4.npy '<i4' 4 0,0,1,1
sp mask docs.pat --len 5 --input doc=doc4.npy
expect_rc input-length 1 && has err "doc4.npy" && has err "(5,)" && ok input-length || fail input-length
py write docf.npy '<f4' 5 0,0,1,1,1
sp mask docs.pat --len 5 --input doc=docf.npy
expect_rc input-dtype 1 && has err "int32" && ok input-dtype || fail input-dtype

# extern functions from --plugin
printf 'extern fn same_parity(int, int) -> bool;\npattern ext = where(same_parity(i, j));\n' >ext.pat
printf '#include <stdbool.h>\n#include <stdint.h>\nbool same_parity(int64_t a, int64_t b) { return (a - b) %% 2 == 0; }\n' >plug.c
printf 'int unrelated(void) { return 1; }\n' >plug2.c
${CC:-cc} -shared -fPIC -o plug.so plug.c && ${CC:-cc} -shared -fPIC -o plug2.so plug2.c
sp mask ext.pat --len 4 --plugin plug.so
printf '#.#.\n.#.#\n#.#.\n.#.#\n' >want
expect_rc plugin 0 && cmp -s out want && ok plugin || fail plugin
sp mask ext.pat --len 4
expect_rc plugin-missing 1 && has err "'same_parity'" && has err "--plugin" && ok plugin-missing || fail plugin-missing
sp mask ext.pat --len 4 --plugin plug2.so
expect_rc plugin-no-function 1 && has err "no function 'same_parity'" && ok plugin-no-function || fail plugin-no-function
sp mask ext.pat --len 4 --plugin nope.so
expect_rc plugin-no-file 1 && has err "nope.so" && ok plugin-no-file || fail plugin-no-file

# topk needs q and k
sp mask topk.pat --len 6
expect_rc topk-needs-qk 1 && has err "--seed" && ok topk-needs-qk || fail topk-needs-qk
sp mask topk.pat --len 6 --seed 7 --dim 8
if expect_rc topk-seed 0; then
  # row r allows min(k, r + 1) keys, all at j <= r
  good=1 r=0
  while read -r line; do
    n=$(printf '%s' "$line" | tr -cd '#' | wc -c)
    want=$(( r + 1 < 2 ? r + 1 : 2 ))
    [ "$n" -eq "$want" ] && [ -z "$(printf '%s' "${line:$((r + 1))}" | tr -d .)" ] || good=0
    r=$((r + 1))
  done <out
  [ "$good" -eq 1 ] && [ "$r" -eq 6 ] && ok topk-seed || fail topk-seed
fi

# the same q and k from files give the same top-k mask as --seed
py writerand tq.npy 7 0 1,1,6,16; py writerand tk.npy 7 1 1,1,6,16
"$SPATC" mask topk.pat --len 6 --seed 7 --dim 16 >want 2>/dev/null
sp mask topk.pat --q tq.npy --k tk.npy
expect_rc topk-files 0 && cmp -s out want && ok topk-files || fail topk-files
sp mask topk.pat --q tq.npy --k tk.npy --len 7
expect_rc topk-files-size 1 && has err "tq.npy" && has err "--len 7" && ok topk-files-size || fail topk-files-size
# inline option arguments
sp mask --pattern=cw -Dw=0 pats.pat --len=3
printf '#..\n.#.\n..#\n' >want
expect_rc inline-args 0 && cmp -s out want && ok inline-args || fail inline-args
sp mask pats.pat -p cw --len 3 -- --odd.pat
expect_rc double-dash 2 && has err "one FILE only" && ok double-dash || fail double-dash

# ---- stats ----
# window(2) at L = 8: rows keep 3 4 5 5 5 5 4 3 keys: nnz 34, density
# 34/64 = 0.53125, median of 3 3 4 4 5 5 5 5 = 4.5, FLOPs 4 * 34 * 64 = 8704.
sp stats w2.pat --len 8
if expect_rc stats-window 0; then
  set -- $(grep '^total' out)
  [ "$2 $3 $4 $5 $6 $7 $8" = "34 0.531250 3 4.5 5 0 8704" ] && grep -q '^0 ' out && ok stats-window || fail stats-window "got: $*"
fi
sp stats w2.pat --len 8 --dim 16 --heads 3
if expect_rc stats-heads 0; then
  set -- $(grep '^total' out)
  [ "$2 $3 $8" = "102 0.531250 6528" ] && [ "$(grep -cE '^[0-9]+ +34 ' out)" -eq 3 ] && ok stats-heads || fail stats-heads "got: $*"
fi
# rows({0, 1}) at L = 4: rows 0 and 1 full, rows 2 and 3 empty; median (0+4)/2
sp stats rows.pat --len 4 --dim 1
if expect_rc stats-empty 0; then
  set -- $(grep '^total' out)
  [ "$2 $3 $4 $5 $6 $7 $8" = "8 0.500000 0 2.0 4 2 32" ] && ok stats-empty || fail stats-empty "got: $*"
fi
"$SPATC" stats "$ROOT"/patterns/bigbird.pat -D b=4 --len 200 --heads 3 --threads 1 >want 2>&1
sp stats "$ROOT"/patterns/bigbird.pat -D b=4 --len 200 --heads 3 --threads 2
expect_rc stats-threads 0 && cmp -s out want && ok stats-threads || fail stats-threads
"$SPATC" mask "$ROOT"/patterns/bigbird.pat -D b=4 --len 200 --heads 3 --threads 1 -o t1m.npy
sp mask "$ROOT"/patterns/bigbird.pat -D b=4 --len 200 --heads 3 --threads 2 -o t2m.npy
expect_rc mask-threads 0 && cmp -s t1m.npy t2m.npy && ok mask-threads || fail mask-threads
sp stats oob.pat --len 4 --input doc=doc4.npy --threads 2
expect_rc stats-runtime-error 1 && grep -qE '^oob\.pat:1:[0-9]+: error: .*out of range' err && ok stats-runtime-error || fail stats-runtime-error
sp stats nope.pat --len 8
expect_rc stats-missing 1 && [ "$(cat err)" = "spatc: error: nope.pat: No such file or directory" ] && ok stats-missing || fail stats-missing

# ---- run ----
sp run pats.pat -p causal4 --seed 5 --batch 2 --heads 2 --len 6 --dim 4 -o o.npy --lse l.npy --backend interp
if expect_rc run-seed 0 && [ "$(py shape o.npy)" = "<f4 (2, 2, 6, 4)" ] && [ "$(py shape l.npy)" = "<f4 (2, 2, 6)" ] &&
   has err "backend=interp" && has err "B=2 H=2 Hkv=2 Lq=6 Lk=6 D=4"; then
  py ref o.npy l.npy 5 2 2 2 6 6 4 'j <= i' >/dev/null && ok run-seed || fail run-seed "differs from the Python reference"
else fail run-seed; fi
sp run pats.pat -p cw --seed 9 --heads 4 --kv-heads 2 --lq 3 --lk 7 --dim 5 -o o.npy --lse l.npy --backend interp
if expect_rc run-gqa 0; then
  py ref o.npy l.npy 9 1 4 2 3 7 5 'j <= i and j >= i - 2' >/dev/null && ok run-gqa || fail run-gqa "differs from the Python reference"
fi
sp run pats.pat -p cw --seed 9 --heads 4 --kv-heads 2 --lq 3 --lk 7 --dim 5 -o o2.npy --layout blhd --backend interp
expect_rc run-layout 0 && py cmp o.npy o2.npy 0 >/dev/null && ok run-layout || fail run-layout
sp run pats.pat -p cw --seed 2 --lq 7 --lk 3 --dim 4 -o o.npy --lse l.npy --backend interp
if expect_rc run-tall 0; then
  py ref o.npy l.npy 2 1 1 1 7 3 4 'j <= i and j >= i - 2' >/dev/null && ok run-tall || fail run-tall "differs from the Python reference"
fi
# an empty row gives o = 0 and lse = -inf
sp run rows.pat --seed 1 --len 4 --dim 2 -o o.npy --lse l.npy --backend interp
if expect_rc run-empty-rows 0; then
  py ref o.npy l.npy 1 1 1 1 4 4 2 'i in (0, 1)' >/dev/null && ok run-empty-rows || fail run-empty-rows
fi
# npy inputs
py writerand q.npy 11 0 1,2,5,3; py writerand k.npy 11 1 1,1,5,3; py writerand v.npy 11 2 1,1,5,3
sp run w2.pat --q q.npy --k k.npy --v v.npy -o o.npy --backend interp
if expect_rc run-files 0 && [ "$(py shape o.npy)" = "<f4 (1, 2, 5, 3)" ]; then
  py ref-files o.npy q.npy k.npy v.npy 'abs(i - j) <= 2' >/dev/null && ok run-files || fail run-files "differs from the Python reference"
else fail run-files; fi
sp run docs.pat --q q.npy --k k.npy --v v.npy --input doc=doc.npy -o o.npy --backend interp
if expect_rc run-input 0; then
  py ref-files o.npy q.npy k.npy v.npy 'j <= i and [0,0,1,1,1][i] == [0,0,1,1,1][j]' >/dev/null && ok run-input || fail run-input
fi
py write f8.npy '<f8' 1,2,5,3 "$(seq -s, 1 30)"
sp run w2.pat --q f8.npy --k k.npy --v v.npy --backend interp
expect_rc npy-dtype 1 && has err "f8.npy" && has err "<f8" && ok npy-dtype || fail npy-dtype
py write fo.npy '<f4' 1,2,5,3 "$(seq -s, 1 30)" F
sp run w2.pat --q fo.npy --k k.npy --v v.npy --backend interp
expect_rc npy-fortran 1 && has err "fo.npy" && has err "Fortran" && ok npy-fortran || fail npy-fortran
py write tr.npy '<f4' 1,2,5,3 "$(seq -s, 1 30)" C 7
sp run w2.pat --q tr.npy --k k.npy --v v.npy --backend interp
expect_rc npy-truncated 1 && has err "tr.npy" && has err "truncated" && ok npy-truncated || fail npy-truncated
printf 'not an npy file' >junk.npy
sp run w2.pat --q junk.npy --k k.npy --v v.npy --backend interp
expect_rc npy-junk 1 && has err "junk.npy" && ok npy-junk || fail npy-junk
py write q3.npy '<f4' 2,5,3 "$(seq -s, 1 30)"
sp run w2.pat --q q3.npy --k k.npy --v v.npy --backend interp
expect_rc npy-ndim 1 && has err "q3.npy" && has err "4 dimensions" && ok npy-ndim || fail npy-ndim
py writerand k2.npy 11 1 1,1,5,4
sp run w2.pat --q q.npy --k k2.npy --v v.npy --backend interp
expect_rc npy-shape 1 && has err "k2.npy" && ok npy-shape || fail npy-shape
# the documented generator, computed in Python, gives the very tensors of
# --seed (big enough for spatc to draw them with several threads)
py writerand bq.npy 21 0 1,2,1024,64; py writerand bk.npy 21 1 1,2,1024,64; py writerand bv.npy 21 2 1,2,1024,64
"$SPATC" run w2.pat --seed 21 --heads 2 --len 1024 --dim 64 -o seeded.npy 2>/dev/null
sp run w2.pat --q bq.npy --k bk.npy --v bv.npy -o fromfiles.npy
expect_rc run-seed-generator 0 && py cmp seeded.npy fromfiles.npy 0 >/dev/null && ok run-seed-generator || fail run-seed-generator
# bf16 and fp16 tensors: '<f2' files, '<u2' files of bfloat16 bits, o in the
# dtype; the result within the formats' precision of the Python reference
# on the rounded inputs (|o| < 4: fp16 steps 2^-9, bf16 2^-6 plus rounding
# P to bf16), JIT and interpreter alike
py writerand q16.npy 5 0 1,2,70,16; py writerand k16.npy 5 1 1,1,70,16; py writerand v16.npy 5 2 1,1,70,16
for t in q k v; do py round ${t}16.npy '<f2' ${t}h.npy; py round ${t}16.npy '<u2' ${t}b.npy; done
for be in jit interp; do
  sp run w2.pat --q qh.npy --k kh.npy --v vh.npy --dtype f16 --backend $be -o oh_$be.npy
  if expect_rc run-f16-$be 0 && [ "$(py shape oh_$be.npy)" = "<f2 (1, 2, 70, 16)" ]; then
    py ref-files oh_$be.npy qh.npy kh.npy vh.npy 'abs(i - j) <= 2' 0.004 >/dev/null && ok run-f16-$be || fail run-f16-$be "differs from the Python reference"
  else fail run-f16-$be; fi
  sp run w2.pat --q qb.npy --k kb.npy --v vb.npy --dtype bf16 --backend $be -o ob_$be.npy
  if expect_rc run-bf16-$be 0 && [ "$(py shape ob_$be.npy)" = "<u2 (1, 2, 70, 16)" ]; then
    py ref-files ob_$be.npy qb.npy kb.npy vb.npy 'abs(i - j) <= 2' 0.05 >/dev/null && ok run-bf16-$be || fail run-bf16-$be "differs from the Python reference"
  else fail run-bf16-$be; fi
done
# float32 files rounded by --dtype: the same as files of the rounded values
sp run w2.pat --q q16.npy --k k16.npy --v v16.npy --dtype bf16 -o ob_f32.npy
expect_rc run-bf16-rounds 0 && py cmp ob_f32.npy ob_jit.npy 0 >/dev/null && ok run-bf16-rounds || fail run-bf16-rounds
sp run w2.pat --q q16.npy --k k16.npy --v v16.npy --dtype f64
expect_rc run-bad-dtype 2 && has err "f64" && ok run-bad-dtype || fail run-bad-dtype
sp run w2.pat --q q.npy --k k.npy --v nope.npy --backend interp
expect_rc npy-missing 1 && [ "$(cat err)" = "spatc: error: nope.npy: No such file or directory" ] && ok npy-missing || fail npy-missing
sp run w2.pat --q q.npy --k k.npy --backend interp
expect_rc run-needs-v 2 && has err "--v" && ok run-needs-v || fail run-needs-v
sp run w2.pat --q q.npy --k k.npy --v v.npy --seed 3 --backend interp
expect_rc run-seed-and-files 2 && ok run-seed-and-files || fail run-seed-and-files
sp run w2.pat --seed 1 --len 4 --backend nosuch
expect_rc run-bad-backend 2 && has err "unknown backend 'nosuch'" && ok run-bad-backend || fail run-bad-backend
sp run rt.pat --seed 1 --len 4 --backend interp
expect_rc run-runtime-missing 1 && has err "'n'" && ok run-runtime-missing || fail run-runtime-missing
sp run w2.pat --seed 1 --len 4 --heads 3 --kv-heads 2 --backend interp
expect_rc run-kv-heads 2 && has err "does not divide" && ok run-kv-heads || fail run-kv-heads

# ---- explain and bench ----
sp explain w2.pat --lq 256
expect_rc explain 0 && has out "window(2, 2)" && has out "keys per row, exact: min 3, median 5, max 5" && ok explain || fail explain
sp explain w2.pat --frobnicate
expect_rc explain-usage 2 && ok explain-usage || fail explain-usage
sp explain nope.pat --lq 8
expect_rc explain-missing 1 && has err "nope.pat" && ok explain-missing || fail explain-missing
# window(2) at L = 256 has 256 * 5 - 6 = 1274 pairs per head
sp bench w2.pat --len 256 --heads 2 --dim 16 --repeats 1 --json
if expect_rc bench 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["nnz"] == 2 * 1274 and r["H"] == 2 and r["D"] == 16 and r["max_err_dense"] <= 2e-5 else 1)'; then
  ok bench; else fail bench; fi
# --batch 2: the kernel runs both sequences, nnz counts both, the dense
# baseline checks sequence 0
sp bench w2.pat --len 256 --heads 2 --dim 16 --repeats 1 --batch 2 --no-cache --json
if expect_rc bench-batch 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["B"] == 2 and r["nnz"] == 2 * 2 * 1274 and abs(r["density"] - 1274 / 256 ** 2) < 1e-6
         and r["max_err_dense"] <= 2e-5 else 1)'; then
  ok bench-batch; else fail bench-batch; fi
sp bench w2.pat --frobnicate
expect_rc bench-usage 2 && ok bench-usage || fail bench-usage

# explain and bench: usage errors, exit codes and messages as the other
# commands give them (bench runs only with --repeats 1, tiny sizes, --no-dense)
sp check bad.pat; cp err bad.expected
for c in explain bench; do
  sp "$c" --help
  expect_rc "help-$c" 0 && has out "usage: spatc $c FILE" && [ ! -s err ] && ok "help-$c" || fail "help-$c"
  sp "$c" w2.pat --frobnicate --len 8
  expect_rc "$c-unknown-option" 2 && has err "spatc: error: unknown option '--frobnicate'" &&
    has err "Try 'spatc $c --help'" && ok "$c-unknown-option" || fail "$c-unknown-option"
  sp "$c" --len 8
  expect_rc "$c-no-file" 2 && has err "spatc: error: no input file" && has err "usage: spatc $c" &&
    ok "$c-no-file" || fail "$c-no-file"
  sp "$c" w2.pat w2.pat --len 8
  expect_rc "$c-two-files" 2 && has err "spatc: error: one FILE only" && ok "$c-two-files" || fail "$c-two-files"
  sp "$c" nope.pat --len 8 --repeats 1 --no-dense
  [ "$c" = explain ] && sp "$c" nope.pat --len 8
  expect_rc "$c-missing" 1 && [ "$(cat err)" = "spatc: error: nope.pat: No such file or directory" ] &&
    ok "$c-missing" || fail "$c-missing"
  sp "$c" bad.pat --len 8
  expect_rc "$c-bad-pattern" 1 && cmp -s err bad.expected && ok "$c-bad-pattern" || fail "$c-bad-pattern"
  sp "$c" w2.pat --len 8 -D w
  expect_rc "$c-bad-define" 2 && has err "spatc: error: -D 'w': expected NAME=INTEGER" &&
    ok "$c-bad-define" || fail "$c-bad-define"
  sp "$c" w2.pat --len 8 --runtime n=x
  expect_rc "$c-bad-runtime" 2 && has err "spatc: error: --runtime 'n=x'" && ok "$c-bad-runtime" || fail "$c-bad-runtime"
  sp "$c" rt.pat --len 8
  expect_rc "$c-runtime-missing" 1 &&
    has err "spatc: error: pattern 'sinks' needs a value for runtime scalar 'n'" &&
    ok "$c-runtime-missing" || fail "$c-runtime-missing"
  sp "$c" w2.pat --len 0
  expect_rc "$c-bad-len" 2 && has err "spatc: error: --len: expected an integer in [1, " &&
    ok "$c-bad-len" || fail "$c-bad-len"
  sp "$c" w2.pat --heads 3 --kv-heads 2 --len 8
  [ "$c" = explain ] && sp "$c" w2.pat --len 8 --dim 16   # explain takes no --dim
  expect_rc "$c-option-of-other" 2 && has err "spatc: error: " && ok "$c-option-of-other" || fail "$c-option-of-other"
done
sp explain w2.pat
expect_rc explain-no-size 2 && has err "spatc: error: give the size: --lq N or --len N" &&
  ok explain-no-size || fail explain-no-size
sp explain w2.pat --lq 8 --bq 0
expect_rc explain-bad-tile 2 && has err "spatc: error: --bq: expected an integer in [1, " &&
  ok explain-bad-tile || fail explain-bad-tile
sp explain rt.pat --len 64 --runtime n=2 --runtime m=1
expect_rc explain-unknown-runtime 1 && has err "spatc: error: pattern 'sinks' has no runtime scalar 'm'" &&
  ok explain-unknown-runtime || fail explain-unknown-runtime
sp explain rt.pat --len 64 --runtime n=2 --bq 16 --bk 16
expect_rc explain-runtime 0 && has out "keys per row, exact:" && ok explain-runtime || fail explain-runtime
sp explain docs.pat --len 64
expect_rc explain-input 0 && has out "keys per row" && ok explain-input || fail explain-input
sp bench w2.pat --len 8 --repeats 0
expect_rc bench-bad-repeats 2 && has err "spatc: error: --repeats: expected an integer in [1, " &&
  ok bench-bad-repeats || fail bench-bad-repeats
sp bench w2.pat --len 8 --heads 3 --kv-heads 2
expect_rc bench-kv-heads 2 && has err "spatc: error: --kv-heads 2 does not divide --heads 3" &&
  ok bench-kv-heads || fail bench-kv-heads
sp bench w2.pat --lk 8
expect_rc bench-lk-alone 2 && has err "spatc: error: give the size: --lq N or --len N" &&
  ok bench-lk-alone || fail bench-lk-alone
# bench's mask count agrees with stats (runtime scalar bound the same way)
sp stats rt.pat --len 64 --runtime n=3
want=$(awk '$1 == "total" {print $2}' out)
sp bench rt.pat --len 64 --heads 1 --dim 16 --runtime n=3 --repeats 1 --no-dense --no-cache --json
if expect_rc bench-runtime 0 && [ -n "$want" ] && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["nnz"] == int(sys.argv[1]) and r["H"] == 1 and r["Lq"] == 64 else 1)' "$want"; then
  ok bench-runtime; else fail bench-runtime; fi
# the defaults every command shares: one head, D = 64
sp bench w2.pat --len 64 --repeats 1 --no-dense --no-cache --json
if expect_rc bench-defaults 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["H"] == 1 and r["Hkv"] == 1 and r["D"] == 64 and r["nnz"] == 64 * 5 - 6 else 1)'; then
  ok bench-defaults; else fail bench-defaults; fi
sp bench docs.pat --len 64 --heads 1 --dim 16 --repeats 1 --no-dense --no-cache --json
if expect_rc bench-input 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if 0 < r["nnz"] <= 64 * 65 // 2 and r["max_err_loop"] < 0 else 1)'; then
  ok bench-input; else fail bench-input; fi

# ---- compile (ahead of time) ----
sp compile w2.pat -o w2k.o
if expect_rc compile 0 && [ "$(head -c 4 w2k.o | od -An -c | tr -d ' ')" = "177ELF" ] &&
   has w2k.h "int w2(const spat_tensors *t);" && nm w2k.o | grep -qE ' T w2$'; then
  ok compile; else fail compile; fi
sp compile
expect_rc compile-usage 2 && has err "spatc: error: no input file" && has err "usage: spatc compile" && ok compile-usage || fail compile-usage
sp compile nope.pat
expect_rc compile-missing 1 && [ "$(cat err)" = "spatc: error: nope.pat: No such file or directory" ] && ok compile-missing || fail compile-missing
# the object and the header must be two files, however spelled
for spell in k.o ./k.o "$T/k.o" sub/../k.o; do
  mkdir -p sub && rm -f k.o && printf 'keep' >k.o
  sp compile w2.pat -o k.o --header "$spell"
  expect_rc "compile-same-file $spell" 2 && has err "are the same file" && [ "$(cat k.o)" = keep ] &&
    ok "compile-same-file $spell" || fail "compile-same-file $spell"
done
ln -sf k.o klink.h
sp compile w2.pat -o k.o --header klink.h
expect_rc compile-same-file-link 2 && has err "are the same file" && [ "$(cat k.o)" = keep ] && ok compile-same-file-link || fail compile-same-file-link
rm -f k.o
sp compile w2.pat -o k.o --header ./k.o
expect_rc compile-same-new-file 2 && has err "are the same file" && [ ! -e k.o ] && ok compile-same-new-file || fail compile-same-new-file
cp w2.pat w2copy.pat
sp compile w2copy.pat --emit header -o ./w2copy.pat
expect_rc compile-over-source 2 && has err "is the pattern file" && cmp -s w2.pat w2copy.pat && ok compile-over-source || fail compile-over-source
sp compile w2.pat -o k2.o --header k2.h
expect_rc compile-two-files 0 && [ -s k2.o ] && has k2.h "int w2(" && ok compile-two-files || fail compile-two-files
sp compile w2.pat --emit nosuch
expect_rc compile-emit-usage 2 && has err "spatc: error: --emit" && ok compile-emit-usage || fail compile-emit-usage
sp compile w2.pat --emit asm -o w2.s
expect_rc compile-asm 0 && has w2.s ".globl	w2" && [ ! -e w2.h ] && ok compile-asm || fail compile-asm
sp compile w2.pat --emit llvm
expect_rc compile-llvm 0 && has w2.ll "define i32 @w2(ptr" && ok compile-llvm || fail compile-llvm
sp compile w2.pat --emit header -o only.h
expect_rc compile-header 0 && has only.h "int w2(const spat_tensors *t);" && [ ! -e only.o ] && ok compile-header || fail compile-header
sp compile w2.pat --emit shared --target x86-64-v3 -o w2.so
if expect_rc compile-shared 0 && nm -D --defined-only w2.so | grep -qE ' T w2$' &&
   nm -D w2.so | grep -qE ' U spat_aot_run' && nm w2.so | grep -qE ' t w2\.fini$' &&
   has w2.h "int w2(const spat_tensors *t);"; then
  ok compile-shared; else fail compile-shared; fi
sp compile w2.pat --target pentium4
expect_rc compile-target-usage 2 && has err "--target" && ok compile-target-usage || fail compile-target-usage

# ---- the disk kernel cache (run, bench, cache) ----
"$SPATC" cache clear >/dev/null 2>&1   # earlier runs filled it
sp run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c1.npy
expect_rc cache-miss 0 && has err "cache=miss" && ok cache-miss || fail cache-miss
sp run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c2.npy
expect_rc cache-hit 0 && has err "cache=hit" && py cmp c1.npy c2.npy 0 >/dev/null && ok cache-hit || fail cache-hit
sp run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c3.npy --no-cache
expect_rc cache-off 0 && has err "cache=off" && py cmp c1.npy c3.npy 0 >/dev/null && ok cache-off || fail cache-off
sp run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c4.npy --backend interp
expect_rc cache-interp 0 && has err "cache=off" && py cmp c1.npy c4.npy 2e-5 >/dev/null && ok cache-interp || fail cache-interp
sp cache dir
expect_rc cache-dir 0 && [ "$(cat out)" = "$T/xdg/spatc" ] && ok cache-dir || fail cache-dir
sp cache list
expect_rc cache-list 0 && grep -qE '^[0-9a-f]{16}\.spk .* D 16 .*w2\(' out && has out "1 entry" && ok cache-list || fail cache-list
# a damaged entry (one byte flipped mid-object) is listed as such, then rebuilt
f=$(ls "$T"/xdg/spatc/*.spk)
python3 -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
b[len(b) * 3 // 4] ^= 0x40; open(p, 'wb').write(b)" "$f"
sp cache list
expect_rc cache-list-damaged 0 && has out "damaged: checksum" && ok cache-list-damaged || fail cache-list-damaged
sp run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c5.npy
expect_rc cache-rebuilt 0 && has err "cache=miss" && py cmp c1.npy c5.npy 0 >/dev/null && ok cache-rebuilt || fail cache-rebuilt
sp cache list
expect_rc cache-rewritten 0 && ! has out "damaged" && has out "1 entry" && ok cache-rewritten || fail cache-rewritten
# a FIFO at the entry's path: listed as damaged and replaced, never waited on
rm -f "$f" && mkfifo "$f"
spt cache list
expect_rc cache-fifo-list 0 && has out "not a regular file (a FIFO)" && ok cache-fifo-list || fail cache-fifo-list
spt run w2.pat --seed 3 --heads 2 --len 100 --dim 16 -o c6.npy
expect_rc cache-fifo-run 0 && has err "cache=miss" && [ -f "$f" ] && [ ! -p "$f" ] && py cmp c1.npy c6.npy 0 >/dev/null && ok cache-fifo-run || fail cache-fifo-run
sp cache clear
expect_rc cache-clear 0 && has out "removed 1 entry" && [ -z "$(ls "$T"/xdg/spatc)" ] && ok cache-clear || fail cache-clear
sp cache frob
expect_rc cache-usage 2 && has err "unknown action 'frob'" && ok cache-usage || fail cache-usage
sp bench w2.pat --len 128 --heads 1 --dim 16 --repeats 1 --json --no-dense
if expect_rc bench-cache 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["cold_ms"] > 0 and r["warm_ms"] > 0 and r["cached"] else 1)'; then
  ok bench-cache; else fail bench-cache; fi
sp bench w2.pat --len 128 --heads 1 --dim 16 --repeats 1 --json --no-dense --no-cache
if expect_rc bench-no-cache 0 && python3 -c '
import json, sys
r = json.load(open("out"))
sys.exit(0 if r["cold_ms"] < 0 and not r["cached"] else 1)'; then
  ok bench-no-cache; else fail bench-no-cache; fi
sp compile bad.pat -o bad.o
expect_rc compile-bad-pattern 1 && grep -qE '^bad\.pat:1:[0-9]+: error: ' err && [ ! -e bad.o ] && ok compile-bad-pattern || fail compile-bad-pattern

# ---- the man page covers every command and option ----
man_ok=1 missing= ; : >out; : >err
cmds=$("$SPATC" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')
[ -n "$cmds" ] || man_ok=0
for c in $cmds; do
  grep -q "^\.B $c " "$ROOT/docs/spatc.1" || { man_ok=0; missing="$missing $c"; }
  for o in $("$SPATC" "$c" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
    grep -qF -- "$(printf '%s' "$o" | sed 's/-/\\-/g')" "$ROOT/docs/spatc.1" || { man_ok=0; missing="$missing $c:$o"; }
  done
done
[ "$man_ok" -eq 1 ] && ok man-page || fail man-page "not in docs/spatc.1:$missing"

# ---- the pattern library ----
sp check -v "$ROOT"/patterns/*.pat
expect_rc check-library 0 && [ "$(wc -l <out)" -ge 8 ] && [ ! -s err ] && ok check-library || fail check-library

# ---- the JIT against the interpreter ----
# jit_vs_interp NAME ARGS...: o and lse of both backends within 2e-5.
jit_vs_interp() {
  local name=$1; shift
  sp run "$@" --backend interp -o i.npy --lse il.npy
  expect_rc "$name" 0 || return
  sp run "$@" -o j.npy --lse jl.npy
  expect_rc "$name" 0 || return
  has err "backend=jit" || { fail "$name" "the default backend is not jit"; return; }
  if py cmp i.npy j.npy 2e-5 >cmp.txt && py cmp il.npy jl.npy 2e-5 >>cmp.txt; then
    ok "$name"; else fail "$name" "$(tr '\n' ' ' <cmp.txt)"; fi
}
py write doc64.npy '<i4' 64 "$(python3 -c 'print(",".join(str(x * x // 300) for x in range(64)))')"
jit_vs_interp jit-tall pats.pat -p cw --seed 16 --heads 2 --lq 70 --lk 30 --dim 16
jit_vs_interp jit-plugin ext.pat --plugin plug.so --seed 17 --len 40 --dim 16
jit_vs_interp jit-window w2.pat --seed 3 --batch 2 --heads 2 --len 100 --dim 16
jit_vs_interp jit-gqa-rect pats.pat -p cw -D w=7 --seed 4 --heads 4 --kv-heads 2 --lq 37 --lk 90 --dim 32
jit_vs_interp jit-input docs.pat --seed 5 --len 64 --dim 16 --input doc=doc64.npy
jit_vs_interp jit-runtime rt.pat --runtime n=3 --seed 6 --len 70 --dim 64
jit_vs_interp jit-empty-rows rows.pat --seed 7 --len 50 --dim 16
jit_vs_interp jit-topk topk.pat -D k=5 --seed 8 --len 40 --dim 16
jit_vs_interp jit-heads heads.pat --seed 9 --heads 3 --len 33 --dim 80
jit_vs_interp jit-scale w2.pat --seed 10 --len 20 --dim 16 --scale 0.5
# a paged KV cache: pools [6 pages, 4 rows, 1 head, 16], two sequences
py writerand pq.npy 11 0 2,2,3,16
py writerand pk.npy 11 1 6,4,1,16
py writerand pv.npy 11 2 6,4,1,16
py write pt.npy '<i4' 2,3 5,0,3,1,4,2
py write sl.npy '<i4' 2 9,5
jit_vs_interp jit-paged w2.pat --q pq.npy --k pk.npy --v pv.npy --page-table pt.npy --seq-lens sl.npy
py write ptbad.npy '<i4' 2,3 5,0,3,1,6,2
sp run w2.pat --q pq.npy --k pk.npy --v pv.npy --page-table ptbad.npy --seq-lens sl.npy -o f.npy
expect_rc paged-bad-page 1 && has err "page_table[1][1] = 6" && ok paged-bad-page || fail paged-bad-page "$(cat err)"
# a scale outside float32 is an error, not +inf
sp run w2.pat --seed 10 --len 20 --dim 16 --scale 1e39 -o f.npy
expect_rc scale-range 2 && has err "--scale 1e39 is outside the float32 range" && ok scale-range || fail scale-range
# the same run-time error, with its location, from both backends
printf 'pattern p(runtime n = 1) = causal & (window(100, 0) | stride(n));\n' > rterr.pat
sp run rterr.pat --runtime n=-1 --seed 1 --len 8 --dim 16 --backend interp --no-cache -o f.npy
expect_rc rterr-interp 1 && cp err rterr.interp && has err "rterr.pat:1:62: error: the stride of stride is -1, must be >= 1" && ok rterr-interp || fail rterr-interp
sp run rterr.pat --runtime n=-1 --seed 1 --len 8 --dim 16 --backend jit --no-cache -o f.npy
expect_rc rterr-jit 1 && cmp -s err rterr.interp && ok rterr-jit || fail rterr-jit "$(cat err)"
# a head dimension the JIT does not handle: the default falls back to interp
sp run w2.pat --seed 10 --len 20 --dim 8 -o f.npy
expect_rc jit-fallback 0 && has err "spatc: note: jit:" && has err "backend=interp" && ok jit-fallback || fail jit-fallback
sp run w2.pat --seed 10 --len 20 --dim 8 -o f.npy --backend jit
expect_rc jit-unsupported 1 && has err "spatc: error: " && ok jit-unsupported || fail jit-unsupported
# grad_vs_interp NAME ARGS...: run --grad's dq, dk, dv of both backends
# within 1e-4 (a --do file the second time: the same dL/do as drawn)
grad_vs_interp() {
  local name=$1; shift
  sp run "$@" --backend interp --grad --dq gqi.npy --dk gki.npy --dv gvi.npy -o go.npy
  expect_rc "$name" 0 || return
  has err "spatc: backward " || { fail "$name" "no backward line"; return; }
  sp run "$@" --no-cache --grad --dq gqj.npy --dk gkj.npy --dv gvj.npy
  expect_rc "$name" 0 || return
  if py cmp gqi.npy gqj.npy 1e-4 >cmp.txt && py cmp gki.npy gkj.npy 1e-4 >>cmp.txt &&
     py cmp gvi.npy gvj.npy 1e-4 >>cmp.txt; then
    ok "$name"; else fail "$name" "$(tr '\n' ' ' <cmp.txt)"; fi
}
grad_vs_interp grad-window w2.pat --seed 3 --heads 2 --len 100 --dim 16
grad_vs_interp grad-gqa-blhd pats.pat -p cw -D w=7 --seed 4 --heads 4 --kv-heads 2 --lq 37 --lk 90 --dim 32 --layout blhd
grad_vs_interp grad-topk topk.pat -D k=5 --seed 8 --len 40 --dim 16
sp run w2.pat --seed 3 --len 20 --dim 16 --dq x.npy
expect_rc grad-needs-grad 2 && has err "need --grad" && ok grad-needs-grad || fail grad-needs-grad
sp run w2.pat --seed 3 --len 20 --dim 16 --grad --do go.npy
expect_rc grad-do-shape 1 && has err "do must be shaped as o" && ok grad-do-shape || fail grad-do-shape
jit_vs_interp jit-longformer "$ROOT"/patterns/longformer.pat -D w=16 --seed 11 --len 200 --dim 32
jit_vs_interp jit-bigbird "$ROOT"/patterns/bigbird.pat -D b=8 --seed 12 --len 128 --dim 16
jit_vs_interp jit-nsa "$ROOT"/patterns/nsa.pat -D w=32 -D b=8 -D k=2 --seed 13 --len 128 --dim 16
jit_vs_interp jit-streaming "$ROOT"/patterns/streaming_llm.pat -D w=20 --seed 14 --len 100 --dim 16
jit_vs_interp jit-dilated "$ROOT"/patterns/dilated.pat -D w=8 --seed 15 --heads 4 --len 90 --dim 16
sp run w2.pat --seed 3 --heads 2 --len 50 --dim 16 --layout blhd -o jb.npy
sp run w2.pat --seed 3 --heads 2 --len 50 --dim 16 --backend interp -o ib.npy
expect_rc jit-layout 0 && py cmp ib.npy jb.npy 2e-5 >/dev/null && ok jit-layout || fail jit-layout
sp run w2.pat --seed 3 --heads 4 --len 300 --dim 32 --threads 1 -o t1.npy
sp run w2.pat --seed 3 --heads 4 --len 300 --dim 32 --threads 2 -o t2.npy
expect_rc jit-threads 0 && py cmp t1.npy t2.npy 0 >/dev/null && ok jit-threads || fail jit-threads
sp run oob.pat --seed 1 --len 4 --input doc=doc4.npy
expect_rc jit-runtime-error 1 && grep -qE '^oob\.pat:1:[0-9]+: error: ' err && ok jit-runtime-error || fail jit-runtime-error
sp run oob.pat --seed 1 --len 4 --input doc=doc4.npy --backend interp
expect_rc interp-runtime-error 1 && grep -qE '^oob\.pat:1:[0-9]+: error: .*out of range' err && ok interp-runtime-error || fail interp-runtime-error
sp mask oob.pat --len 4 --input doc=doc4.npy
expect_rc mask-runtime-error 1 && grep -qE '^oob\.pat:1:[0-9]+: error: .*out of range' err && ok mask-runtime-error || fail mask-runtime-error

# spatc check is linear in the declarations: 200,000 patterns (a quadratic
# name lookup takes minutes; the guard turns that into a failure)
python3 -c "
import sys
with open('many.pat', 'w') as f:
    for k in range(200000): f.write('pattern q%d = window(%d);\\n' % (k, k % 100))
"
timeout 120 "$SPATC" check many.pat >out 2>err; rc=$?
expect_rc check-many-decls 0 && ok check-many-decls

suite_end
