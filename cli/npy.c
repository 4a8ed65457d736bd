/* npy.c: NumPy .npy files in and out.
 *
 * In: a path (read) or a dtype, shape and C-order buffer (write).  Out: an
 * npy_array whose data is malloc'd, or a file in format 1.0 whose header is
 * padded with spaces and a newline to a multiple of 64 bytes, as NumPy
 * writes it.  Reading accepts format 1.0 (16-bit header length), 2.0 and 3.0
 * (32-bit length; 3.0 only allows UTF-8 in the header, which changes nothing
 * for the keys we accept).  The header is a Python dict literal; we parse it
 * as one (any key order, either quote, spaces and trailing commas) and accept
 * exactly the keys 'descr', 'fortran_order' and 'shape'.  Everything else is
 * an error "path: message", never a crash or a silent misread.
 */
#include "npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

#define NPY_MAX_NDIM 8
#define NPY_MAX_HEADER (1u << 20)   /* NumPy itself refuses headers > 10000 */

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ORDER npy_dtype */
static const char *const dtype_descr[] = {"<f4", "<i4", "|u1", "<f2", "<u2"};
static const size_t dtype_size[] = {4, 4, 1, 2, 2};

static bool host_is_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* Reverses the bytes of each of n items of size bytes. */
static void swap_items(void *data, int64_t n, size_t size) {
  unsigned char *p = data;
  for (int64_t k = 0; k < n; k++, p += size)
    for (size_t x = 0; x < size / 2; x++) {
      unsigned char t = p[x];
      p[x] = p[size - 1 - x];
      p[size - 1 - x] = t;
    }
}

int64_t npy_count(const npy_array *a) {
  int64_t n = 1;
  for (int d = 0; d < a->ndim; d++) n *= a->shape[d];
  return n;
}

void npy_free(npy_array *a) {
  if (!a) return;
  free(a->data);
  a->data = NULL;
}

/* Element count and byte size of a shape; false on overflow. */
static bool shape_bytes(int ndim, const int64_t *shape, size_t item,
                        int64_t *count, size_t *bytes) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return false;
    if (shape[d] != 0 && n > INT64_MAX / shape[d]) return false;
    n *= shape[d];
  }
  if ((uint64_t)n > SIZE_MAX / item || n > INT64_MAX / (int64_t)item)
    return false;
  *count = n;
  *bytes = (size_t)n * item;
  return true;
}

/* ---- the header dict ---------------------------------------------------- */

typedef struct hparse {
  const char *s, *end;
  const char *path;
  char *err;
  size_t errlen;
} hparse;

static void skip_ws(hparse *p) {
  while (p->s < p->end &&
         (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
    p->s++;
}

static bool at(hparse *p, char c) {
  skip_ws(p);
  return p->s < p->end && *p->s == c;
}

static bool eat(hparse *p, char c) {
  if (!at(p, c)) return false;
  p->s++;
  return true;
}

/* A quoted string (no escapes: none of the values we accept need them).
 * Copies at most n - 1 characters; a longer one is an error. */
static int parse_str(hparse *p, char *buf, size_t n, const char *what) {
  skip_ws(p);
  if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: expected a quoted %s", what);
  char q = *p->s++;
  const char *b = p->s;
  while (p->s < p->end && *p->s != q && *p->s != '\\') p->s++;
  if (p->s >= p->end || *p->s != q)
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: unterminated or escaped %s string",
                    what);
  size_t len = (size_t)(p->s - b);
  p->s++;
  for (size_t k = 0; k < len; k++) /* '<f4\0' is not '<f4' */
    if ((unsigned char)b[k] < 0x20 || b[k] == 0x7f)
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: control character 0x%02x in the %s "
                      "string", (unsigned char)b[k], what);
  if (len >= n) {
    memcpy(buf, b, n - 1);
    buf[n - 1] = 0;
    return 1;  /* too long: certainly not a key or dtype we accept */
  }
  memcpy(buf, b, len);
  buf[len] = 0;
  return 0;
}

static int parse_bool(hparse *p, bool *out) {
  skip_ws(p);
  size_t left = (size_t)(p->end - p->s);
  if (left >= 4 && !memcmp(p->s, "True", 4)) {
    p->s += 4;
    *out = true;
  } else if (left >= 5 && !memcmp(p->s, "False", 5)) {
    p->s += 5;
    *out = false;
  } else {
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: 'fortran_order' must be True or False");
  }
  return 0;
}

static int parse_shape(hparse *p, int *ndim, int64_t *shape) {
  if (!eat(p, '('))
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: 'shape' must be a tuple");
  int n = 0;
  bool need_comma = false; /* "(3)" is an int, not a tuple */
  while (!eat(p, ')')) {
    skip_ws(p);
    if (p->s >= p->end || *p->s < '0' || *p->s > '9')
      return fio_fail(
          p->err, p->errlen, p->path,
          "malformed header: 'shape' must hold non-negative integers");
    int64_t v = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
      int dg = *p->s++ - '0';
      if (v > (INT64_MAX - dg) / 10)
        return fio_fail(p->err, p->errlen, p->path,
                        "shape dimension too large");
      v = v * 10 + dg;
    }
    if (p->s < p->end && (*p->s == 'L' || *p->s == 'l')) p->s++; /* Py2 */
    if (n >= NPY_MAX_NDIM)
      return fio_fail(p->err, p->errlen, p->path,
                      "too many dimensions (at most %d)", NPY_MAX_NDIM);
    shape[n++] = v;
    if (eat(p, ',')) {
      need_comma = false;
      continue;
    }
    if (!at(p, ')'))
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: expected ',' or ')' in 'shape'");
    need_comma = n == 1;
  }
  if (need_comma)
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: 'shape' (n) is not a tuple; write (n,)");
  *ndim = n;
  return 0;
}

static int parse_header(hparse *p, npy_dtype *dt, int *ndim, int64_t *shape) {
  bool seen_descr = false, seen_fortran = false, seen_shape = false;
  bool fortran = false;
  char descr[16];
  if (!eat(p, '{'))
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: expected a dict '{...}'");
  while (!eat(p, '}')) {
    char key[32];
    int r = parse_str(p, key, sizeof key, "key");
    if (r < 0) return -1;
    if (!eat(p, ':'))
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: expected ':' after '%s'", key);
    if (r == 0 && !strcmp(key, "descr") && !seen_descr) {
      r = parse_str(p, descr, sizeof descr, "'descr'");
      if (r < 0) return -1;
      if (r > 0) descr[0] = '?';
      seen_descr = true;
    } else if (r == 0 && !strcmp(key, "fortran_order") && !seen_fortran) {
      if (parse_bool(p, &fortran) < 0) return -1;
      seen_fortran = true;
    } else if (r == 0 && !strcmp(key, "shape") && !seen_shape) {
      if (parse_shape(p, ndim, shape) < 0) return -1;
      seen_shape = true;
    } else {
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: unexpected or repeated key '%s'", key);
    }
    if (eat(p, ',')) continue;
    if (!at(p, '}'))
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: expected ',' or '}'");
  }
  skip_ws(p);
  if (p->s != p->end) {
    /* NumPy pads with spaces and ends in '\n'; NULs appear in old files. */
    while (p->s < p->end && *p->s == 0) p->s++;
    if (p->s != p->end)
      return fio_fail(p->err, p->errlen, p->path,
                      "malformed header: text after the dict");
  }
  if (!seen_descr || !seen_fortran || !seen_shape)
    return fio_fail(p->err, p->errlen, p->path,
                    "malformed header: missing key '%s'",
                    !seen_descr     ? "descr"
                    : !seen_fortran ? "fortran_order"
                                    : "shape");
  if (fortran)
    return fio_fail(p->err, p->errlen, p->path,
                    "Fortran-order arrays are not supported (save in C order)");
  if (!strcmp(descr, "<f4"))
    *dt = NPY_F32;
  else if (!strcmp(descr, "<i4"))
    *dt = NPY_I32;
  else if (!strcmp(descr, "<f2"))
    *dt = NPY_F16;
  else if (!strcmp(descr, "<u2"))
    *dt = NPY_U16;
  else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") ||
           !strcmp(descr, "=u1"))
    *dt = NPY_U8;
  else if (descr[0] == '>' && (!strcmp(descr + 1, "f4") ||
                               !strcmp(descr + 1, "i4") ||
                               !strcmp(descr + 1, "f2") ||
                               !strcmp(descr + 1, "u2")))
    return fio_fail(p->err, p->errlen, p->path,
                    "big-endian dtype '%s' is not supported (use '<%s')", descr,
                    descr + 1);
  else
    return fio_fail(p->err, p->errlen, p->path,
                    "unsupported dtype '%s' (want '<f4', '<f2', '<u2', '<i4' "
                    "or '|u1')",
                    descr);
  return 0;
}

/* ---- read ------------------------------------------------------------- */

static int read_exact(FILE *f, void *buf, size_t n, size_t *got) {
  *got = fread(buf, 1, n, f);
  return *got == n ? 0 : -1;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen) {
  if (!path || !out) return fio_fail(err, errlen, path, "invalid argument");
  memset(out, 0, sizeof *out);
  FILE *f = fio_open(path, "rb", err, errlen);
  if (!f) return -1;
  char *hdr = NULL;
  void *data = NULL;
  int rc = -1;
  unsigned char pre[12];
  size_t got;
  read_exact(f, pre, 8, &got);
  if (memcmp(pre, npy_magic, got < 6 ? got : 6) || got == 0) {
    fio_fail(err, errlen, path, "not a .npy file (bad magic)");
    goto done;
  }
  if (got < 8) {
    fio_fail(err, errlen, path, "truncated .npy preamble (%zu bytes)", got);
    goto done;
  }
  int major = pre[6], minor = pre[7];
  uint32_t hlen;
  if (major == 1 && minor == 0) {
    if (read_exact(f, pre + 8, 2, &got) < 0) {
      fio_fail(err, errlen, path, "truncated .npy preamble");
      goto done;
    }
    hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (read_exact(f, pre + 8, 4, &got) < 0) {
      fio_fail(err, errlen, path, "truncated .npy preamble");
      goto done;
    }
    hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 |
           (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  } else {
    fio_fail(err, errlen, path, "unsupported .npy format version %d.%d", major,
             minor);
    goto done;
  }
  if (hlen > NPY_MAX_HEADER) {
    fio_fail(err, errlen, path,
             "header length %" PRIu32 " is implausibly large", hlen);
    goto done;
  }
  hdr = malloc(hlen + 1);
  if (!hdr) {
    fio_fail(err, errlen, path, "out of memory");
    goto done;
  }
  if (read_exact(f, hdr, hlen, &got) < 0) {
    fio_fail(err, errlen, path,
             "truncated header: %" PRIu32 " bytes announced, %zu present", hlen,
             got);
    goto done;
  }
  hdr[hlen] = 0;
  hparse hp = {hdr, hdr + hlen, path, err, errlen};
  npy_dtype dt = NPY_F32;
  int ndim = 0;
  int64_t shape[NPY_MAX_NDIM] = {0};
  if (parse_header(&hp, &dt, &ndim, shape) < 0) goto done;
  int64_t count;
  size_t bytes;
  if (!shape_bytes(ndim, shape, dtype_size[dt], &count, &bytes)) {
    fio_fail(err, errlen, path, "shape's byte size overflows");
    goto done;
  }
  /* Allocate only what the file can hold: a 100-byte file whose header
   * claims a huge shape is truncated, not a huge allocation (fio_open reads
   * regular files only, so their size is known). */
  struct stat st;
  long pos = ftell(f);
  if (pos >= 0 && fstat(fileno(f), &st) == 0 && st.st_size >= pos &&
      (uint64_t)(st.st_size - pos) < (uint64_t)bytes) {
    fio_fail(err, errlen, path,
             "data truncated: the shape needs %zu bytes, the file has %zu",
             bytes, (size_t)(st.st_size - pos));
    goto done;
  }
  data = malloc(bytes ? bytes : 1);
  if (!data) {
    fio_fail(err, errlen, path, "out of memory for %zu bytes of data", bytes);
    goto done;
  }
  if (read_exact(f, data, bytes, &got) < 0) {
    if (ferror(f))
      fio_fail(err, errlen, path, "read error: %s", strerror(errno));
    else
      fio_fail(err, errlen, path,
               "data truncated: the shape needs %zu bytes, the file has %zu",
               bytes, got);
    goto done;
  }
  unsigned char extra;
  if (fread(&extra, 1, 1, f) == 1) {
    fio_fail(err, errlen, path,
             "file is longer than its header's shape says (%zu bytes of data "
             "expected)",
             bytes);
    goto done;
  }
  if (dtype_size[dt] > 1 && !host_is_little())
    swap_items(data, count, dtype_size[dt]);
  out->dtype = dt;
  out->ndim = ndim;
  memcpy(out->shape, shape, sizeof shape);
  out->data = data;
  data = NULL;
  rc = 0;
done:
  free(hdr);
  free(data);
  fclose(f);
  return rc;
}

/* ---- write ------------------------------------------------------------ */

int npy_write(const char *path, npy_dtype dt, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen) {
  if (!path) return fio_fail(err, errlen, path, "invalid argument");
  if ((int)dt < 0 || dt > NPY_U16)
    return fio_fail(err, errlen, path, "unknown dtype %d", (int)dt);
  if (ndim < 0 || ndim > NPY_MAX_NDIM || (ndim > 0 && !shape))
    return fio_fail(err, errlen, path, "bad ndim %d (0..%d)", ndim,
                    NPY_MAX_NDIM);
  int64_t count;
  size_t bytes;
  if (!shape_bytes(ndim, shape, dtype_size[dt], &count, &bytes))
    return fio_fail(
        err, errlen, path,
        "shape has a negative dimension or its byte size overflows");
  if (bytes && !data) return fio_fail(err, errlen, path, "no data");

  char dict[512];
  int n = snprintf(dict, sizeof dict,
                   "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   dtype_descr[dt]);
  for (int d = 0; d < ndim; d++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64,
                  d ? ", " : "", shape[d]);
  n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }",
                ndim == 1 ? "," : "");
  /* preamble 10 bytes + dict + padding spaces + '\n' = multiple of 64 */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  unsigned char pre[10];
  memcpy(pre, npy_magic, 6);
  pre[6] = 1;
  pre[7] = 0;
  pre[8] = (unsigned char)(hlen & 0xff);
  pre[9] = (unsigned char)(hlen >> 8);

  FILE *f = fio_open(path, "wb", err, errlen);
  if (!f) return -1;
  bool ok = fwrite(pre, 1, 10, f) == 10 &&
            fwrite(dict, 1, (size_t)n, f) == (size_t)n;
  for (size_t k = 0; ok && k < pad; k++) ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF;
  if (ok && bytes) {
    if (dtype_size[dt] > 1 && !host_is_little()) {
      /* byte-swap through a small buffer, never touching the caller's data */
      unsigned char buf[4096];
      const unsigned char *src = data;
      for (size_t off = 0; ok && off < bytes; off += sizeof buf) {
        size_t m = bytes - off < sizeof buf ? bytes - off : sizeof buf;
        memcpy(buf, src + off, m);
        swap_items(buf, (int64_t)(m / dtype_size[dt]), dtype_size[dt]);
        ok = fwrite(buf, 1, m, f) == m;
      }
    } else {
      ok = fwrite(data, 1, bytes, f) == bytes;
    }
  }
  return fio_close(f, ok, path, err, errlen);
}
