"""spatc.png: mask pictures as PNG files, with numpy and zlib only.

render() lays the heads side by side with a grey separator, scales small
masks up (square cells) and large ones down (a pixel's shade is the fraction
of allowed pairs it covers); write() encodes an RGB uint8 image.
"""
import struct
import zlib

import numpy as np

WHITE = np.array([255, 255, 255], np.float64)
ON = np.array([24, 52, 110], np.float64)       # allowed
ONLY_A = np.array([214, 39, 40], np.float64)   # diff: only the first pattern
ONLY_B = np.array([31, 119, 220], np.float64)  # diff: only the second
BOTH = np.array([70, 70, 70], np.float64)      # diff: both
SEP = np.array([160, 160, 160], np.uint8)


def _fractions(m, f):
    """The fraction of True in each f x f block of a 2-D mask (padded)."""
    lq, lk = m.shape
    pq, pk = -lq % f, -lk % f
    x = np.pad(m.astype(np.float32), ((0, pq), (0, pk)))
    return x.reshape((lq + pq) // f, f, (lk + pk) // f, f).mean(axis=(1, 3))


def _layer(m, f, cell):
    fr = _fractions(m, f) if f > 1 else m.astype(np.float32)
    if cell > 1:
        fr = np.repeat(np.repeat(fr, cell, axis=0), cell, axis=1)
    return fr[..., None]


def render(a, b=None, max_px=1024):
    """RGB uint8 image of masks a (and b for a diff), [H, Lq, Lk] bool."""
    a = np.asarray(a, bool)
    if b is not None:
        b = np.asarray(b, bool)
        if b.shape != a.shape:
            raise ValueError("diff masks differ in shape: %s and %s"
                             % (a.shape, b.shape))
    H, lq, lk = a.shape
    big = max(lq, lk, 1)
    f = max(1, -(-big // max_px))           # downscale factor
    cell = max(1, min(16, max_px // big)) if f == 1 else 1
    tiles = []
    for h in range(H):
        if b is None:
            x = _layer(a[h], f, cell)
            img = WHITE * (1 - x) + ON * x
        else:
            oa = _layer(a[h] & ~b[h], f, cell)
            ob = _layer(b[h] & ~a[h], f, cell)
            bo = _layer(a[h] & b[h], f, cell)
            img = (WHITE * (1 - oa - ob - bo) + ONLY_A * oa + ONLY_B * ob +
                   BOTH * bo)
        tiles.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    if not tiles:
        return np.full((1, 1, 3), 255, np.uint8)
    sep = np.broadcast_to(SEP, (tiles[0].shape[0], 2, 3))
    parts = []
    for i, t in enumerate(tiles):
        if i:
            parts.append(sep)
        parts.append(t)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def encode(img):
    """The bytes of a PNG file for an RGB uint8 image [h, w, 3]."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("image must be [h, w, 3] uint8")
    h, w, _ = img.shape
    raw = np.zeros((h, 1 + 3 * w), np.uint8)   # filter byte 0 per row
    raw[:, 1:] = img.reshape(h, 3 * w)

    def chunk(tag, data):
        body = tag + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) +
            chunk(b"IEND", b""))


def write(path, img):
    with open(path, "wb") as f:
        f.write(encode(img))


def read(path):
    """Decodes a PNG written by write() (8-bit RGB, filter 0) to an array;
    for tests and round trips, not a general PNG reader."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat = 8, b""
    w = h = 0
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if (depth, ctype) != (8, 2):
                raise ValueError("only 8-bit RGB")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    if raw[:, 0].any():
        raise ValueError("only filter 0")
    return raw[:, 1:].reshape(h, w, 3).copy()
