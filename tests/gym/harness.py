"""harness.py: checks .pat patterns against formulas written in numpy.

Used by tests/gym (attention-gym's mask_mods and score_mods, ported) and
tests/library (the pattern library against its papers).  A case names a
pattern file and pattern, its -D defines, runtime scalars and input arrays,
the reference mask M(b, h, r, j) and optionally the reference score
E(s, b, h, r, j), and a list of sizes.  For each size the case is checked

  - cell by cell: `spatc mask -o m.npy` (the reference interpreter; batch
    0, which is all there is when the mask does not depend on b) against
    the reference mask, when the case allows it (mask=True);
  - value by value: `spatc run --q --k --v -o o.npy --lse lse.npy` (the
    JIT backend, and the interpreter where asked) against attention
    computed here in float64 from the reference mask and score: o within
    `tol`, lse within `tol` with -inf exactly where a row is empty.

The reference functions get a `Ctx` whose arrays broadcast over
[B, H, Lq, Lk]: b, h, r (the query row, FlexAttention's q_idx), i (the
absolute query position of the default bottom-right alignment,
r + max(Lk - Lq, 0)), j (the key), sizes B H Lq Lk D, and the input arrays
in `inp`, and q, k, v (float32 [B, H or Hkv, L, D], drawn first).  Each prints "ok NAME" or "FAIL NAME: why"; `main` ends with
"N passed, M failed" and the exit status."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SPATC = os.environ.get('SPATC', 'build/spatc')
if not os.path.isabs(SPATC):
    SPATC = os.path.abspath(SPATC)


class Ctx:
    def __init__(self, B, H, Lq, Lk, D, inp):
        self.B, self.H, self.Lq, self.Lk, self.D = B, H, Lq, Lk, D
        self.b = np.arange(B).reshape(B, 1, 1, 1)
        self.h = np.arange(H).reshape(1, H, 1, 1)
        self.r = np.arange(Lq).reshape(1, 1, Lq, 1)
        self.i = self.r + max(Lk - Lq, 0)
        self.j = np.arange(Lk).reshape(1, 1, 1, Lk)
        self.inp = inp


class Case:
    """name; pat (path from the repository root); pattern (name or None);
    mask(c) -> bool array broadcasting to [B, H, Lq, Lk]; score(c, s) ->
    float array (s is the scaled dot product, [B, H, Lq, Lk]) or None;
    sizes: list of (B, H, Lq, Lk); inputs(c, rng) -> {name: array} (int32
    or float32) or None; defines, runtime: dicts; D; check_mask: also
    compare `spatc mask`; mask_qk: the mask reads q and k (ctx.q, ctx.k;
    given to spatc mask too); backends: which `spatc run --backend` to use;
    tol: for o and lse; seed; hkv: key/value heads (default H);
    batch_inputs: names of inputs whose first dimension is B."""

    def __init__(self, name, pat, pattern, mask, sizes, score=None, inputs=None,
                 defines=None, runtime=None, D=16, check_mask=True,
                 backends=('jit',), tol=2e-4, seed=1, hkv=None, mask_qk=False,
                 batch_inputs=()):
        self.name, self.pat, self.pattern = name, pat, pattern
        self.mask, self.score, self.sizes, self.inputs = mask, score, sizes, inputs
        self.defines, self.runtime = defines or {}, runtime or {}
        self.D, self.check_mask, self.backends = D, check_mask, backends
        self.tol, self.seed, self.hkv, self.mask_qk = tol, seed, hkv, mask_qk
        self.batch_inputs = batch_inputs


class Runner:
    def __init__(self, root):
        self.root = root
        self.passed = self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix='spatc-gym.')
        atexit.register(shutil.rmtree, self.tmp, True)
        os.environ['XDG_CACHE_HOME'] = os.path.join(self.tmp, 'xdg')

    def ok(self, name):
        print('ok', name)
        self.passed += 1

    def fail(self, name, why):
        print('FAIL %s: %s' % (name, why))
        self.failed += 1

    def spatc(self, args):
        p = subprocess.run([SPATC] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        return p.returncode, p.stdout + p.stderr

    def common_args(self, case, H, Lq, Lk, inputs, batch0=False):
        """With batch0 (spatc mask, which computes batch 0 only), inputs
        named in case.batch_inputs (first dimension B) keep batch 0."""
        a = [os.path.join(self.root, case.pat)]
        if case.pattern:
            a += ['--pattern', case.pattern]
        for k, v in case.defines.items():
            a += ['-D', '%s=%d' % (k, v)]
        for k, v in case.runtime.items():
            a += ['--runtime', '%s=%d' % (k, v)]
        for k, arr in inputs.items():
            if batch0 and k in case.batch_inputs:
                arr = arr[:1]
            path = os.path.join(self.tmp, 'in_%s%s.npy' % (k, '_b0' if batch0 else ''))
            np.save(path, arr)
            a += ['--input', '%s=%s' % (k, path)]
        return a + ['--lq', str(Lq), '--lk', str(Lk), '-H', str(H)]

    def run_case(self, case):
        for (B, H, Lq, Lk) in case.sizes:
            label = '%s B=%d H=%d Lq=%d Lk=%d' % (case.name, B, H, Lq, Lk)
            try:
                self.run_size(case, label, B, H, Lq, Lk)
            except Exception as e:  # a harness bug is a failure too
                self.fail(label, 'exception %r' % (e,))

    def run_size(self, case, label, B, H, Lq, Lk):
        rng = np.random.default_rng(case.seed * 1000003 + Lq * 31 + Lk)
        ctx = Ctx(B, H, Lq, Lk, case.D, {})
        Hkv = case.hkv or H
        ctx.q = rng.standard_normal((B, H, Lq, case.D)).astype(np.float32)
        ctx.k = rng.standard_normal((B, Hkv, Lk, case.D)).astype(np.float32)
        ctx.v = rng.standard_normal((B, Hkv, Lk, case.D)).astype(np.float32)
        inputs = case.inputs(ctx, rng) if case.inputs else {}
        ctx.inp = inputs
        want = np.broadcast_to(np.asarray(case.mask(ctx), dtype=bool),
                               (B, H, Lq, Lk))
        args = self.common_args(case, H, Lq, Lk, inputs)
        self.files = {}
        for n in ('q', 'k', 'v'):
            self.files[n] = os.path.join(self.tmp, n + '.npy')
            np.save(self.files[n], getattr(ctx, n))
        if case.check_mask:
            margs = self.common_args(case, H, Lq, Lk, inputs, batch0=True)
            self.check_mask(label, margs, want[0], case.mask_qk)
        self.check_values(case, label, args, ctx, want)

    def check_mask(self, label, args, want, qk):
        """spatc mask is batch 0; with qk the mask reads q and k (batch 0 of
        the files, as spatc mask does)."""
        m = os.path.join(self.tmp, 'm.npy')
        D = np.load(self.files['q']).shape[3]
        extra = ['--q', self.files['q'], '--k', self.files['k'], '-d', str(D)] if qk else []
        rc, out = self.spatc(['mask'] + args + extra + ['-o', m])
        if rc != 0:
            return self.fail(label + ' mask', 'spatc exit %d: %s' % (rc, out.strip()[:400]))
        got = np.load(m).astype(bool)
        if got.shape != want.shape:
            return self.fail(label + ' mask', 'shape %s, want %s' % (got.shape, want.shape))
        bad = np.argwhere(got != want)
        if len(bad):
            h, r, j = bad[0]
            return self.fail(label + ' mask', '%d cells differ, first (h=%d, r=%d, j=%d): '
                             'spatc %d, reference %d' % (len(bad), h, r, j, got[h, r, j], want[h, r, j]))
        self.ok(label + ' mask')

    def check_values(self, case, label, args, ctx, want):
        H, D = ctx.H, ctx.D
        Hkv = case.hkv or H
        o_ref, lse_ref = attention(ctx.q, ctx.k, ctx.v, want, ctx, case.score)
        files = self.files
        o_p, l_p = os.path.join(self.tmp, 'o.npy'), os.path.join(self.tmp, 'lse.npy')
        for be in case.backends:
            name = '%s run %s' % (label, be)
            extra = ['--kv-heads', str(Hkv)] if Hkv != H else []
            rc, out = self.spatc(['run'] + args + extra + [
                '--q', files['q'], '--k', files['k'], '--v', files['v'],
                '-d', str(D), '-o', o_p, '--lse', l_p, '--backend', be])
            if rc != 0:
                self.fail(name, 'spatc exit %d: %s' % (rc, out.strip()[:400]))
                continue
            why = compare(np.load(o_p), np.load(l_p), o_ref, lse_ref, case.tol)
            if why:
                self.fail(name, why)
            else:
                self.ok(name)

    def summary(self):
        print('%d passed, %d failed' % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1


def attention(q, k, v, mask, ctx, score):
    """o [B, H, Lq, D] and lse [B, H, Lq] in float64; empty rows give o = 0
    and lse = -inf, as do rows whose every score is -inf."""
    H, Hkv, D = q.shape[1], k.shape[1], q.shape[3]
    g = H // Hkv
    kk = np.repeat(k.astype(np.float64), g, axis=1)
    vv = np.repeat(v.astype(np.float64), g, axis=1)
    s = np.einsum('bhqd,bhkd->bhqk', q.astype(np.float64), kk) / np.sqrt(D)
    if score is not None:
        with np.errstate(all='ignore'):
            s = np.broadcast_to(score(ctx, s), s.shape).astype(np.float64)
    s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    empty = ~np.isfinite(m)
    m = np.where(empty, 0.0, m)
    p = np.exp(s - m)
    z = p.sum(axis=-1, keepdims=True)
    with np.errstate(all='ignore'):
        o = np.where(empty, 0.0, np.einsum('bhqk,bhkd->bhqd', p, vv) / np.where(empty, 1, z))
        lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, z)))[..., 0]
    return o, lse


def compare(o, lse, o_ref, lse_ref, tol):
    if o.shape != o_ref.shape:
        return 'o shape %s, want %s' % (o.shape, o_ref.shape)
    if lse.shape != lse_ref.shape:
        return 'lse shape %s, want %s' % (lse.shape, lse_ref.shape)
    inf_got, inf_want = np.isneginf(lse), np.isneginf(lse_ref)
    if (inf_got != inf_want).any():
        idx = tuple(np.argwhere(inf_got != inf_want)[0])
        return 'lse at %s: %r, reference %r' % (idx, lse[idx], lse_ref[idx])
    if not np.isfinite(o).all():
        return 'o has %d non-finite values' % (~np.isfinite(o)).sum()
    fin = ~inf_want
    dl = np.abs(lse[fin] - lse_ref[fin]) / np.maximum(1, np.abs(lse_ref[fin])) if fin.any() else np.zeros(1)
    do = np.abs(o - o_ref)
    if do.max() > tol or dl.max() > tol:
        idx = tuple(np.unravel_index(np.argmax(do), do.shape))
        return 'max |o - ref| %.3g (at %s), max rel |lse - ref| %.3g, tol %.3g' % (
            do.max(), idx, dl.max(), tol)
    return None


def main(cases, root):
    run = Runner(root)
    only = sys.argv[1:]
    for c in cases:
        if not only or any(w in c.name for w in only):
            run.run_case(c)
    return run.summary()
