#!/usr/bin/env python3
"""tests/fuzz/reduce.py: cuts a fuzz finding down to a small reproducer.

    reduce.py IN OUT --bin build/tests/fuzz_jit_replay [--timeout S]
              [--expect abort|timeout] [--grep TEXT]

IN is a fuzz input (.pat text, optionally a NUL and control bytes).  Freeze
its control bytes first (FUZZ_DUMP_CTL=frozen ./replay IN), so that cutting
the text does not change the shapes.  Tokens of the text are removed greedily,
in chunks of decreasing size, while the replay binary still fails the same way
(aborts: exit status 134 or a signal, with TEXT in its stderr if given; or
runs past --timeout seconds).  Standard library only.
"""
import argparse
import re
import subprocess
import sys
import tempfile

TOK = re.compile(r'\s+|#[^\n]*|"[^"\n]*"?|\.\.|==|!=|<=|>=|&&|\|\||->|[A-Za-z_][A-Za-z_0-9]*|[0-9][0-9_]*|.', re.S)


def fails(args, text, ctl):
    with tempfile.NamedTemporaryFile(suffix='.pat', delete=False) as f:
        f.write(text.encode('latin-1') + (b'\0' + ctl if ctl is not None else b''))
        path = f.name
    try:
        r = subprocess.run([args.bin, path], capture_output=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return args.expect == 'timeout'
    if args.expect == 'timeout':
        return False
    if r.returncode == 0:
        return False
    return args.grep is None or args.grep in r.stderr.decode('latin-1')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('inp')
    ap.add_argument('out')
    ap.add_argument('--bin', required=True)
    ap.add_argument('--timeout', type=float, default=10)
    ap.add_argument('--expect', choices=['abort', 'timeout'], default='abort')
    ap.add_argument('--grep')
    args = ap.parse_args()
    data = open(args.inp, 'rb').read()
    text, ctl = data, None
    if b'\0' in data:
        k = data.index(b'\0')
        text, ctl = data[:k], data[k + 1:]
    text = text.decode('latin-1')
    if not fails(args, text, ctl):
        sys.exit('reduce: the input does not fail as expected')
    toks = [t for t in TOK.findall(text)]
    chunk = max(1, len(toks) // 2)
    while chunk >= 1:
        k = 0
        progress = False
        while k < len(toks):
            cand = toks[:k] + toks[k + chunk:]
            if fails(args, ''.join(cand), ctl):
                toks = cand
                progress = True
            else:
                k += chunk
        if not progress:
            chunk //= 2
    # collapse whitespace where that still fails
    text = ''.join(toks)
    short = re.sub(r'\s+', ' ', text).strip()
    if fails(args, short, ctl):
        text = short
    # trailing control bytes that are not needed
    if ctl is not None:
        while ctl and fails(args, text, ctl[:-1]):
            ctl = ctl[:-1]
    with open(args.out, 'wb') as f:
        f.write(text.encode('latin-1') + (b'\0' + ctl if ctl is not None else b''))
    print(text)


if __name__ == '__main__':
    main()
