/* cache.c: the disk kernel cache (aot.h's aot_cache_*) and its entry files,
 * shared with the tile kernels (cache.h, tile_cache.c).
 *
 * A pattern's kernel is compiled once (aot_emit_object: an object without
 * tile code) into DIR/HASH.spk and linked in memory by its own LLJIT, with
 * spat_aot_run, the extern predicates and the forward tile ("spat_tile",
 * the process's shared kernel from tile_cache.c) defined as absolute
 * symbols.  The tile kernels live beside them as DIR/HASH.spt.
 */
#include <dirent.h>
#include <errno.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spat.h"
#include "aot.h"
#include "aot_emit.h"
#include "analyze.h"
#include "cache.h"
#include "codegen.h"
#include "llvm_pipeline.h"
#include "plan_ops.h"
#include "regfile.h"
#include "tile_cache.h"

/* One file per kernel, HASH.spk (HASH.spt for tile kernels), written whole
 * through a rename:
 *   "SPATKC01", u64 key length, u64 object length, u64 FNV-1a of key and
 *   object (little-endian), the key text, the object bytes.
 * A file whose length, checksum or key do not match is never linked. */
#define ENTRY_MAGIC "SPATKC01"
#define ENTRY_HEAD 32
#define ENTRY_EXT KC_KERNEL_EXT

struct aot_loaded {
  LLVMOrcLLJITRef jit;
  const void *desc;
};

static int mkdir_p(char *path) {
  for (char *c = path + 1; *c; c++) {
    if (*c != '/') continue;
    *c = '\0';
    int bad = mkdir(path, 0755) != 0 && errno != EEXIST;
    *c = '/';
    if (bad) return -1;
  }
  return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int aot_cache_dir(char *buf, size_t n, char *err, size_t errlen) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int len;
  if (xdg != NULL && xdg[0] == '/')
    len = snprintf(buf, n, "%s/spatc", xdg);
  else if (home != NULL && home[0] != '\0')
    len = snprintf(buf, n, "%s/.cache/spatc", home);
  else
    return lp_fail(err, errlen,
                  "no cache directory: neither XDG_CACHE_HOME nor HOME is "
                  "set");
  if (len < 0 || (size_t)len >= n)
    return lp_fail(err, errlen, "cache directory name too long");
  if (mkdir_p(buf) != 0)
    return lp_fail(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
  return 0;
}

int kc_key_head(FILE *f) {
  unsigned maj, min, pat;
  LLVMGetVersion(&maj, &min, &pat);
  int n = fprintf(f,
                  "spatc %s aot-abi %d plan %lld llvm %u.%u.%u\ncpu %s\n"
                  "features %s\npasses %s %s\n",
                  spat_version_string(), AOT_ABI, PLAN_VERSION, maj, min, pat,
                  lp_host_cpu(),
                  lp_host_features(), lp_passes(), lp_pass_options());
  return n < 0 ? -1 : 0;
}

/* Everything the object depends on, as text. */
static char *cache_key(const ir_program *p, const aot_opts *o) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return NULL;
  kc_key_head(f);
  fprintf(f, "D %lld layout %d threads %d\n", (long long)o->D, o->layout,
          o->threads);
  ir_print_program(f, p);
  /* the tile plan embedded in the object: a library with another plan
   * format or analysis must not reuse the entry */
  char perr[64];
  int64_t *plan = an_build(p, perr, sizeof perr);
  fprintf(f, "\nplan");
  for (int64_t w = 0; plan && w < plan_words(plan); w++)
    fprintf(f, " %lld", (long long)plan[w]);
  free(plan);
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

static uint64_t fnv1a(uint64_t h, const unsigned char *s, size_t n) {
  for (size_t k = 0; k < n; k++) h = (h ^ s[k]) * 0x100000001b3ull;
  return h;
}
#define FNV_SEED 0xcbf29ce484222325ull

static void put_u64(unsigned char *b, uint64_t v) {
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)(v >> (8 * k));
}

static uint64_t get_u64(const unsigned char *b) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v |= (uint64_t)b[k] << (8 * k);
  return v;
}

/* The whole file (malloc) in *out; -1 with the reason in *why if it cannot
 * be read.  Only a regular file is opened (regfile.h): a FIFO at an entry's
 * path is refused, not waited on. */
static int read_all(const char *path, unsigned char **out, size_t *n,
                    const char **why) {
  int fd = regfile_open(path, why);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 0 ||
      st.st_size > ((off_t)1 << 30)) { /* no kernel object is that big */
    *why = "too large";
    close(fd);
    return -1;
  }
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    *why = strerror(errno);
    close(fd);
    return -1;
  }
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len + 1);
  int bad = buf == NULL || fread(buf, 1, len, f) != len;
  fclose(f);
  if (bad) {
    *why = buf == NULL ? "out of memory" : "short read";
    free(buf);
    return -1;
  }
  *out = buf;
  *n = len;
  return 0;
}

/* An entry's parts when its header, length and checksum hold; else -1 with
 * the reason in err. */
static int entry_parse(const unsigned char *b, size_t n, const char **key,
                       size_t *key_len, const unsigned char **obj,
                       size_t *obj_len, char *err, size_t errlen) {
  if (n < ENTRY_HEAD || memcmp(b, ENTRY_MAGIC, 8) != 0)
    return lp_fail(err, errlen, "not a spatc cache entry");
  uint64_t kl = get_u64(b + 8), ol = get_u64(b + 16), sum = get_u64(b + 24);
  if (kl > n || ol > n || ENTRY_HEAD + kl + ol != n)
    return lp_fail(err, errlen,
                  "length %zu, expected %llu (truncated or damaged)", n,
                  (unsigned long long)(ENTRY_HEAD + kl + ol));
  if (fnv1a(FNV_SEED, b + ENTRY_HEAD, n - ENTRY_HEAD) != sum)
    return lp_fail(err, errlen, "checksum mismatch (damaged)");
  *key = (const char *)b + ENTRY_HEAD;
  *key_len = (size_t)kl;
  *obj = b + ENTRY_HEAD + kl;
  *obj_len = (size_t)ol;
  return 0;
}

/* Writes the entry through a temporary file and a rename, so that a reader
 * never sees half a file. */
static int entry_write(const char *path, const char *key, const void *obj,
                       size_t obj_len) {
  size_t kl = strlen(key);
  unsigned char head[ENTRY_HEAD];
  memcpy(head, ENTRY_MAGIC, 8);
  put_u64(head + 8, kl);
  put_u64(head + 16, obj_len);
  uint64_t sum = fnv1a(FNV_SEED, (const unsigned char *)key, kl);
  put_u64(head + 24, fnv1a(sum, obj, obj_len));
  /* a name of its own per writer (mkstemp): threads of one process and
   * other processes may write the same entry at once */
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
  int fd = mkstemp(tmp);
  if (fd < 0) return -1;
  FILE *f = fdopen(fd, "wb");
  if (f == NULL) {
    close(fd);
    remove(tmp);
    return -1;
  }
  int bad = fwrite(head, 1, sizeof head, f) != sizeof head;
  bad |= fwrite(key, 1, kl, f) != kl;
  bad |= fwrite(obj, 1, obj_len, f) != obj_len;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}

void aot_cache_free(aot_loaded *l) {
  if (l == NULL) return;
  if (l->desc != NULL) aot_state_release(l->desc);
  if (l->jit) LLVMOrcDisposeLLJIT(l->jit);
  free(l);
}

const void *aot_loaded_desc(const aot_loaded *l) {
  return l != NULL ? l->desc : NULL;
}

static aot_loaded *fail_load(aot_loaded *l, LLVMErrorRef e, const char *what,
                             char *err, size_t errlen) {
  if (e != NULL) {
    char *m = LLVMGetErrorMessage(e);
    rt_errf(err, errlen, RT_EINTERNAL, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
  } else {
    rt_errf(err, errlen, RT_EINTERNAL, "%s", what);
  }
  aot_cache_free(l);
  return NULL;
}

/* Links the object (buf, taken) in memory; the descriptor in l->desc. */
static aot_loaded *link_object(const ir_program *p, LLVMMemoryBufferRef buf,
                               void *const *externs, void *tile, char *err,
                               size_t errlen) {
  aot_loaded *l = calloc(1, sizeof *l);
  if (l == NULL) {
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(NULL, NULL, "out of memory", err, errlen);
  }
  l->jit = lp_new_jit(err, errlen);
  if (l->jit == NULL) {
    LLVMDisposeMemoryBuffer(buf);
    aot_cache_free(l);
    return NULL;
  }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(l->jit);
  /* spat_aot_run, the tile and the extern predicates, by address */
  size_t n = 2 + (size_t)p->n_externs;
  LLVMOrcCSymbolMapPair *syms = calloc(n, sizeof *syms);
  if (syms == NULL) {
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(l, NULL, "out of memory", err, errlen);
  }
  LLVMJITSymbolFlags flags = {
      LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
  int (*run)(const void *, const spat_tensors *, const int64_t *,
             const int32_t *const *, char *, size_t) = spat_aot_run;
  void *run_addr;
  memcpy(&run_addr, &run, sizeof run_addr);
  syms[0].Name = LLVMOrcLLJITMangleAndIntern(l->jit, "spat_aot_run");
  syms[0].Sym = (LLVMJITEvaluatedSymbol){(uintptr_t)run_addr, flags};
  syms[1].Name =
      LLVMOrcLLJITMangleAndIntern(l->jit, cg_kinds[CG_KIND_FWD].symbol);
  syms[1].Sym = (LLVMJITEvaluatedSymbol){(uintptr_t)tile, flags};
  for (int k = 0; k < p->n_externs; k++) {
    syms[2 + k].Name = LLVMOrcLLJITMangleAndIntern(l->jit, p->externs[k].name);
    syms[2 + k].Sym = (LLVMJITEvaluatedSymbol){(uintptr_t)externs[k], flags};
  }
  LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(syms, n));
  free(syms);
  if (e) {
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(l, e, "cannot define symbols", err, errlen);
  }
  e = LLVMOrcLLJITAddObjectFile(l->jit, jd, buf); /* takes buf */
  if (e) return fail_load(l, e, "cached object", err, errlen);
  LLVMOrcExecutorAddress addr = 0;
  e = LLVMOrcLLJITLookup(l->jit, &addr, "kernel_desc");
  if (e) return fail_load(l, e, "cached object", err, errlen);
  const aot_desc *d = (const aot_desc *)(uintptr_t)addr;
  if (d->abi != AOT_ABI)
    return fail_load(l, NULL, "cached object has another ABI", err, errlen);
  l->desc = d;
  return l;
}

/* The entry's file for this key. */
static void entry_path(char *buf, size_t n, const char *dir, const char *key,
                       const char *ext) {
  uint64_t h = fnv1a(FNV_SEED, (const unsigned char *)key, strlen(key));
  snprintf(buf, n, "%s/%016llx%s", dir, (unsigned long long)h, ext);
}

int kc_read(const char *dir, const char *key, const char *ext,
            LLVMMemoryBufferRef *out) {
  char path[4096];
  entry_path(path, sizeof path, dir, key, ext);
  unsigned char *file = NULL;
  size_t n = 0;
  const char *unread = ""; /* a missing entry, or not a file: compile */
  if (read_all(path, &file, &n, &unread) != 0) return -1;
  const char *k;
  const unsigned char *obj;
  size_t kl, ol;
  char why[256];
  int rc = -1;
  if (entry_parse(file, n, &k, &kl, &obj, &ol, why, sizeof why) == 0 &&
      kl == strlen(key) && memcmp(k, key, kl) == 0) {
    *out = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)obj, ol,
                                                     path);
    rc = 0;
  }
  free(file);
  return rc;
}

int kc_write(const char *dir, const char *key, const char *ext,
             LLVMMemoryBufferRef obj) {
  char path[4096];
  entry_path(path, sizeof path, dir, key, ext);
  return entry_write(path, key, LLVMGetBufferStart(obj),
                     LLVMGetBufferSize(obj));
}

aot_loaded *aot_cache_load(const ir_program *p, const aot_opts *opts,
                           const char *dir, void *const *externs,
                           const void **desc, int *hit, char *err,
                           size_t errlen) {
  aot_opts o = *opts;
  o.name = "kernel";
  o.cpu = NULL;
  o.source = NULL;
  o.emit = AOT_EMIT_OBJ;
  *hit = 0;
  /* the shared tile first: it also checks D */
  void *tile = NULL;
  if (tc_get(&cg_kinds[CG_KIND_FWD], o.D, CG_F32, dir, &tile, err, errlen) != 0)
    return NULL;
  char *key = cache_key(p, &o);
  if (key == NULL) return fail_load(NULL, NULL, "out of memory", err, errlen);
  aot_loaded *l = NULL;
  LLVMMemoryBufferRef buf = NULL;
  if (kc_read(dir, key, ENTRY_EXT, &buf) == 0) {
    l = link_object(p, buf, externs, tile, err, errlen);
    *hit = l != NULL; /* an entry that does not link is compiled again */
  }
  if (l == NULL) {
    if (aot_emit_object(p, &o, true, &buf, err, errlen) != 0) {
      free(key);
      return NULL;
    }
    /* an entry that cannot be written (a read-only directory) leaves the
     * object in memory: linked all the same, not stored */
    (void)kc_write(dir, key, ENTRY_EXT, buf);
    l = link_object(p, buf, externs, tile, err, errlen);
  }
  free(key);
  void *dtile = NULL;  /* without it (out of memory): prefill tiles only */
  char derr[256];
  if (l != NULL && tc_get(&cg_kinds[CG_KIND_DECODE], o.D, CG_F32, dir, &dtile,
                          derr, sizeof derr) == 0)
    aot_set_dtile(l->desc, dtile);
  if (l != NULL) *desc = l->desc;
  return l;
}

/* "HASH" + ext, HASH 16 hex digits. */
static int hash_named(const char *s, const char *ext) {
  size_t n = strlen(s);
  if (n != 16 + strlen(ext) || strcmp(s + 16, ext) != 0) return 0;
  for (int k = 0; k < 16; k++)
    if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
      return 0;
  return 1;
}

static int is_entry_name(const char *s) {
  return hash_named(s, ENTRY_EXT);
}

/* HASH.ext.tmp.PID, left by a killed writer */
static int is_temp_name(const char *s, const char *ext) {
  size_t el = strlen(ext);
  return strlen(s) > 16 + el + 5 && strncmp(s + 16, ext, el) == 0 &&
         strncmp(s + 16 + el, ".tmp.", 5) == 0;
}

int aot_cache_list(const char *dir, aot_cache_fn fn, void *user, char *err,
                   size_t errlen) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return lp_fail(err, errlen, "%s: %s", dir, strerror(errno));
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (!is_entry_name(de->d_name)) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    unsigned char *file = NULL;
    size_t len = 0;
    aot_cache_entry e = {de->d_name, 0, 0, NULL, 0, ""};
    const char *why = "";
    if (read_all(path, &file, &len, &why) != 0) {
      snprintf(e.problem, sizeof e.problem, "cannot read: %s", why);
      fn(user, &e);
      n++;
      continue;
    }
    e.bytes = len;
    const char *key;
    const unsigned char *obj;
    size_t kl, ol;
    if (entry_parse(file, len, &key, &kl, &obj, &ol, e.problem,
                    sizeof e.problem) == 0) {
      file[ENTRY_HEAD + kl] = '\0'; /* the object is not needed */
      e.valid = 1;
      e.key = key;
      e.obj_bytes = ol;
    }
    fn(user, &e);
    free(file);
    n++;
  }
  closedir(d);
  return n;
}

int aot_cache_clear(const char *dir, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? 0
                           : lp_fail(err, errlen, "%s: %s", dir,
                                    strerror(errno));
  int n = 0, bad = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    /* entries, tile kernels, objects and keys of the older two-file
     * format, and temporary files left by a killed writer; only kernel
     * entries are counted */
    int entry = is_entry_name(de->d_name);
    if (!entry && !hash_named(de->d_name, KC_TILE_EXT) &&
        !hash_named(de->d_name, ".o") && !hash_named(de->d_name, ".key") &&
        !is_temp_name(de->d_name, ENTRY_EXT) &&
        !is_temp_name(de->d_name, KC_TILE_EXT))
      continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (remove(path) == 0)
      n += entry;
    else if (!bad)
      bad = lp_fail(err, errlen, "%s: %s", path, strerror(errno));
  }
  closedir(d);
  return bad ? -1 : n;
}
