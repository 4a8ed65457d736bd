/* aot.c: ahead-of-time kernels: ir_program -> object file + C header.
 *
 * In: a checked program and the compile options (aot.h).  Out: NAME.o with
 * the kernel's code and its typed entries, and NAME.h declaring them.
 *
 *   an_build         the tile plan, emitted as a constant array
 *   cg_build         the mask and tile functions (as the JIT's), made
 *                    internal and renamed "NAME.<fn>" so that several
 *                    kernels link into one program
 *   descriptor       an aot_desc constant pointing at all of it, plus a
 *                    writable state slot (the run-time kernel)
 *   entries          NAME(t, scalars..., inputs...) and NAME_ex(err, errlen,
 *                    t, ...) store their arguments in arrays and call
 *                    spat_aot_run(&desc, ...) in libspat
 *   O3, then LLVMTargetMachineEmitToFile (position-independent code)
 */
#include "aot.h"

#include <errno.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spat.h"
#include "analyze.h"
#include "codegen.h"
#include "jit.h"

typedef struct emit {
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTypeRef i32, i64, ptr;
  const char *name; /* the entry's C name */
} emit;

static int errorf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errorf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

int aot_is_identifier(const char *s) {
  static const char *const keywords[] = {
      "auto",     "break",    "case",     "char",   "const",       "continue",
      "default",  "do",       "double",   "else",   "enum",        "extern",
      "float",    "for",      "goto",     "if",     "inline",      "int",
      "long",     "register", "restrict", "return", "short",       "signed",
      "sizeof",   "static",   "struct",   "switch", "typedef",     "union",
      "unsigned", "void",     "volatile", "while",  "_Bool",       "_Complex",
      "bool",     "true",     "false",    "main",   "spat_aot_run"};
  if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '_'))
      return 0;
  for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
    if (strcmp(s, keywords[k]) == 0) return 0;
  return 1;
}

static LLVMValueRef const_string(emit *e, const char *s, const char *what) {
  LLVMValueRef v =
      LLVMConstStringInContext(e->C, s, (unsigned)strlen(s), 0 /* NUL */);
  char name[256];
  snprintf(name, sizeof name, "%s.%s", e->name, what);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(v), name);
  LLVMSetInitializer(g, v);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddr(g, 1);
  return g;
}

static LLVMValueRef const_global(emit *e, LLVMValueRef init, const char *what) {
  char name[256];
  snprintf(name, sizeof name, "%s.%s", e->name, what);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMInternalLinkage);
  return g;
}

static LLVMValueRef ptr_array(emit *e, LLVMValueRef *v, int n,
                              const char *what) {
  LLVMValueRef init = LLVMConstArray2(e->ptr, v, (uint64_t)n);
  return const_global(e, init, what);
}

/* Every definition of the generated module becomes internal, and every
 * function "NAME.<old name>". */
static void internalize(emit *e) {
  char name[512];
  for (LLVMValueRef f = LLVMGetFirstFunction(e->M); f != NULL;
       f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    size_t len;
    const char *old = LLVMGetValueName2(f, &len);
    snprintf(name, sizeof name, "%s.%.*s", e->name, (int)len, old);
    LLVMSetValueName2(f, name, strlen(name));
    LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  for (LLVMValueRef g = LLVMGetFirstGlobal(e->M); g != NULL;
       g = LLVMGetNextGlobal(g)) {
    if (LLVMIsDeclaration(g)) continue;
    if (LLVMGetLinkage(g) != LLVMPrivateLinkage)
      LLVMSetLinkage(g, LLVMInternalLinkage);
  }
}

static LLVMValueRef generated_fn(emit *e, const char *fmt, int k) {
  char base[64], name[512];
  snprintf(base, sizeof base, fmt, k);
  snprintf(name, sizeof name, "%s.%s", e->name, base);
  return LLVMGetNamedFunction(e->M, name);
}

/* An external C function (an extern predicate) by name. */
static LLVMValueRef extern_fn(emit *e, const ir_extern *x) {
  LLVMValueRef f = LLVMGetNamedFunction(e->M, x->name);
  if (f != NULL) return f;
  LLVMTypeRef args[16];
  int n = x->n_args > 16 ? 16 : x->n_args;
  for (int k = 0; k < n; k++) args[k] = e->i64;
  LLVMTypeRef ft =
      LLVMFunctionType(LLVMInt1TypeInContext(e->C), args, (unsigned)n, 0);
  return LLVMAddFunction(e->M, x->name, ft);
}

/* int NAME[_ex]([char *err, size_t errlen,] const spat_tensors *t,
 *               int64_t s..., const int32_t *a...) */
static void build_entry(emit *e, const ir_program *p, LLVMValueRef desc,
                        LLVMValueRef run, LLVMTypeRef run_t, bool with_err) {
  int ns = p->n_runtime, na = p->n_inputs, lead = with_err ? 3 : 1;
  int n = lead + ns + na;
  LLVMTypeRef *params = calloc((size_t)n, sizeof *params);
  if (params == NULL) return;
  if (with_err) {
    params[0] = e->ptr;
    params[1] = e->i64;
  }
  params[lead - 1] = e->ptr;
  for (int k = 0; k < ns; k++) params[lead + k] = e->i64;
  for (int k = 0; k < na; k++) params[lead + ns + k] = e->ptr;
  LLVMTypeRef ft = LLVMFunctionType(e->i32, params, (unsigned)n, 0);
  free(params);
  char name[256];
  snprintf(name, sizeof name, "%s%s", e->name, with_err ? "_ex" : "");
  LLVMValueRef f = LLVMAddFunction(e->M, name, ft);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(e->C, nounwind, 0));
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(e->C, f, "entry");
  LLVMPositionBuilderAtEnd(e->B, bb);
  LLVMTypeRef st = LLVMArrayType2(e->i64, (uint64_t)(ns > 0 ? ns : 1));
  LLVMTypeRef at = LLVMArrayType2(e->ptr, (uint64_t)(na > 0 ? na : 1));
  LLVMValueRef S = LLVMBuildAlloca(e->B, st, "scalars");
  LLVMValueRef A = LLVMBuildAlloca(e->B, at, "inputs");
  for (int k = 0; k < ns; k++) {
    LLVMValueRef idx = LLVMConstInt(e->i64, (unsigned long long)k, 0);
    LLVMValueRef slot = LLVMBuildGEP2(e->B, e->i64, S, &idx, 1, "");
    LLVMBuildStore(e->B, LLVMGetParam(f, (unsigned)(lead + k)), slot);
  }
  for (int k = 0; k < na; k++) {
    LLVMValueRef idx = LLVMConstInt(e->i64, (unsigned long long)k, 0);
    LLVMValueRef slot = LLVMBuildGEP2(e->B, e->ptr, A, &idx, 1, "");
    LLVMBuildStore(e->B, LLVMGetParam(f, (unsigned)(lead + ns + k)), slot);
  }
  LLVMValueRef args[6] = {
      desc,
      LLVMGetParam(f, (unsigned)(lead - 1)),
      S,
      A,
      with_err ? LLVMGetParam(f, 0) : LLVMConstPointerNull(e->ptr),
      with_err ? LLVMGetParam(f, 1) : LLVMConstInt(e->i64, 0, 0)};
  LLVMValueRef r = LLVMBuildCall2(e->B, run_t, run, args, 6, "");
  LLVMBuildRet(e->B, r);
}

/* NAME.fini, run when a shared library holding the object is unloaded:
 * spat_aot_release(&NAME_desc). */
static void build_fini(emit *e, LLVMValueRef desc) {
  LLVMTypeRef void_t = LLVMVoidTypeInContext(e->C);
  LLVMTypeRef rel_t = LLVMFunctionType(void_t, &e->ptr, 1, 0);
  LLVMValueRef rel = LLVMGetNamedFunction(e->M, "spat_aot_release");
  if (rel == NULL) rel = LLVMAddFunction(e->M, "spat_aot_release", rel_t);
  char name[256];
  snprintf(name, sizeof name, "%s.fini", e->name);
  LLVMValueRef f =
      LLVMAddFunction(e->M, name, LLVMFunctionType(void_t, NULL, 0, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(e->B, LLVMAppendBasicBlockInContext(e->C, f, ""));
  LLVMBuildCall2(e->B, rel_t, rel, &desc, 1, "");
  LLVMBuildRetVoid(e->B);
  LLVMTypeRef fields[3] = {e->i32, e->ptr, e->ptr};
  LLVMTypeRef entry_t = LLVMStructTypeInContext(e->C, fields, 3, 0);
  LLVMValueRef vals[3] = {LLVMConstInt(e->i32, 65535, 0), f,
                          LLVMConstPointerNull(e->ptr)};
  LLVMValueRef entry = LLVMConstNamedStruct(entry_t, vals, 3);
  LLVMValueRef arr = LLVMConstArray2(entry_t, &entry, 1);
  LLVMValueRef g = LLVMAddGlobal(e->M, LLVMTypeOf(arr), "llvm.global_dtors");
  LLVMSetInitializer(g, arr);
  LLVMSetLinkage(g, LLVMAppendingLinkage);
}

/* The generated functions the descriptor points at, all present. */
static int has_generated(emit *e, int nt, char *err, size_t errlen) {
  for (int t = 0; t <= nt; t++)
    if (generated_fn(e, "spat_mask_%d", t) == NULL)
      return errorf(err, errlen, "internal error: no spat_mask_%d", t);
  for (int t = 0; t < nt; t++)
    if (generated_fn(e, "spat_tkinfo_%d", t) == NULL)
      return errorf(err, errlen, "internal error: no spat_tkinfo_%d", t);
  if (generated_fn(e, "spat_tile", 0) == NULL)
    return errorf(err, errlen, "internal error: no spat_tile");
  if (generated_fn(e, "spat_errat", 0) == NULL)
    return errorf(err, errlen, "internal error: no spat_errat");
  return 0;
}

/* The descriptor (aot_desc) and both entries. */
static int build_glue(emit *e, const ir_program *p, const aot_opts *o,
                      const int64_t *plan, const cg_info *info, char *err,
                      size_t errlen) {
  if (has_generated(e, info->n_topk, err, errlen) != 0) return -1;
  /* plan words */
  int64_t nw = plan_words(plan);
  LLVMValueRef *words = calloc((size_t)nw + 1, sizeof *words);
  if (words == NULL) return errorf(err, errlen, "out of memory");
  for (int64_t w = 0; w < nw; w++)
    words[w] = LLVMConstInt(e->i64, (unsigned long long)plan[w], 1);
  LLVMValueRef plan_g =
      const_global(e, LLVMConstArray2(e->i64, words, (uint64_t)nw), "plan");
  free(words);

  int nt = info->n_topk,
      n_ptrs = nt + 1 + p->n_inputs + p->n_externs + info->n_errors + 1;
  LLVMValueRef *v = calloc((size_t)n_ptrs, sizeof *v);
  if (v == NULL) return errorf(err, errlen, "out of memory");
  for (int t = 0; t <= nt; t++) v[t] = generated_fn(e, "spat_mask_%d", t);
  LLVMValueRef mask_g = ptr_array(e, v, nt + 1, "mask");
  for (int t = 0; t < nt; t++) v[t] = generated_fn(e, "spat_tkinfo_%d", t);
  LLVMValueRef tk_g = ptr_array(e, v, nt, "tkinfo");
  for (int k = 0; k < info->n_errors; k++)
    v[k] = const_string(e, info->errors[k], "errmsg");
  LLVMValueRef err_g = ptr_array(e, v, info->n_errors, "errors");
  for (int k = 0; k < p->n_inputs; k++)
    v[k] = const_string(e, p->inputs[k].name, "input");
  LLVMValueRef in_g = ptr_array(e, v, p->n_inputs, "inputs");
  for (int k = 0; k < p->n_externs; k++) v[k] = extern_fn(e, &p->externs[k]);
  LLVMValueRef ext_g = ptr_array(e, v, p->n_externs, "externs");
  free(v);

  char state_name[256];
  snprintf(state_name, sizeof state_name, "%s.state", e->name);
  LLVMValueRef state = LLVMAddGlobal(e->M, e->ptr, state_name);
  LLVMSetInitializer(state, LLVMConstPointerNull(e->ptr));
  LLVMSetLinkage(state, LLVMInternalLinkage);

  LLVMValueRef fields[] = {
      LLVMConstInt(e->i64, AOT_ABI, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->D, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->layout, 0),
      LLVMConstInt(e->i64, (unsigned long long)o->threads, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_runtime, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_inputs, 0),
      LLVMConstInt(e->i64, (unsigned long long)p->n_externs, 0),
      LLVMConstInt(e->i64, (unsigned long long)nt, 0),
      LLVMConstInt(e->i64, (unsigned long long)info->n_errors, 0),
      plan_g,
      mask_g,
      tk_g,
      generated_fn(e, "spat_tile", 0),
      err_g,
      in_g,
      ext_g,
      state,
      const_string(e, e->name, "name"),
      generated_fn(e, "spat_errat", 0),
  };
  LLVMValueRef desc = LLVMConstStructInContext(
      e->C, fields, sizeof fields / sizeof fields[0], 0);
  LLVMValueRef desc_g = const_global(e, desc, "desc");
  char desc_name[256]; /* NAME_desc, public: the disk cache looks it up */
  snprintf(desc_name, sizeof desc_name, "%s_desc", e->name);
  LLVMSetValueName2(desc_g, desc_name, strlen(desc_name));
  LLVMSetLinkage(desc_g, LLVMExternalLinkage);

  LLVMTypeRef run_params[6] = {e->ptr, e->ptr, e->ptr, e->ptr, e->ptr, e->i64};
  LLVMTypeRef run_t = LLVMFunctionType(e->i32, run_params, 6, 0);
  LLVMValueRef run = LLVMGetNamedFunction(e->M, "spat_aot_run");
  if (run == NULL) run = LLVMAddFunction(e->M, "spat_aot_run", run_t);
  build_entry(e, p, desc_g, run, run_t, false);
  build_entry(e, p, desc_g, run, run_t, true);
  if (o->emit == AOT_EMIT_SHARED) build_fini(e, desc_g);
  return 0;
}

/* LLVM aborts on a CPU it does not know (and prints about it), and its C
 * API cannot list them: --cpu takes one of these x86-64 names (LLVM's and
 * gcc's -march spellings), or "native". */
static const char *const x86_cpus[] = {
    "x86-64",         "x86-64-v2",      "x86-64-v3",     "x86-64-v4",
    "nehalem",        "westmere",       "sandybridge",   "ivybridge",
    "haswell",        "broadwell",      "skylake",       "skylake-avx512",
    "cascadelake",    "cooperlake",     "cannonlake",    "icelake-client",
    "icelake-server", "tigerlake",      "alderlake",     "raptorlake",
    "meteorlake",     "sapphirerapids", "emeraldrapids", "graniterapids",
    "btver2",         "bdver4",         "znver1",        "znver2",
    "znver3",         "znver4",
};

static int known_cpu(const char *triple, const char *cpu) {
  if (strncmp(triple, "x86_64", 6) != 0) return 0;
  for (size_t k = 0; k < sizeof x86_cpus / sizeof x86_cpus[0]; k++)
    if (strcmp(cpu, x86_cpus[k]) == 0) return 1;
  return 0;
}

static LLVMTargetMachineRef target_machine(const char *cpu_opt, char *err,
                                           size_t errlen) {
  if (cpu_opt != NULL && strcmp(cpu_opt, "native") == 0) cpu_opt = NULL;
  char *triple = LLVMGetDefaultTargetTriple();
  if (cpu_opt != NULL && !known_cpu(triple, cpu_opt)) {
    char list[1024] = "";
    size_t used = 0;
    for (size_t k = 0; k < sizeof x86_cpus / sizeof x86_cpus[0]; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                               k ? ", " : "", x86_cpus[k]);
    errorf(err, errlen, "unknown CPU '%s' for %s (known: native, %s)", cpu_opt,
           triple, list);
    LLVMDisposeMessage(triple);
    return NULL;
  }
  LLVMDisposeMessage(triple);
  return jit_target_machine(cpu_opt, false, err, errlen);
}

static int write_header(const ir_program *p, const aot_opts *o,
                        const char *name, const char *obj_path,
                        const char *path, char *err, size_t errlen) {
  const char *obj =
      strrchr(obj_path, '/') ? strrchr(obj_path, '/') + 1 : obj_path;
  FILE *f = fopen(path, "w");
  if (f == NULL) return errorf(err, errlen, "%s: cannot write", path);
  fprintf(f, "/* %s.h: generated by `spatc compile`; do not edit.\n", name);
  fprintf(f, " * Pattern '%s'%s%s, D = %lld, layout %s.\n", p->name,
          o->source ? " from " : "", o->source ? o->source : "",
          (long long)o->D, o->layout == 1 ? "[B, L, H, D]" : "[B, H, L, D]");
  for (int k = 0; k < p->n_params; k++)
    fprintf(f, " * %s = %lld\n", p->params[k].name,
            (long long)p->params[k].value);
  fprintf(f,
          " * Link %s with libspat: cc prog.c %s $(pkg-config --cflags "
          "--libs spat)\n */\n",
          obj, obj);
  fprintf(f, "#ifndef SPAT_AOT_%s_H\n#define SPAT_AOT_%s_H\n\n", name, name);
  fprintf(f,
          "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n"
          "#include \"spat.h\"\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
          "\n");
  fprintf(f, "#define %s_D %lld\n#define %s_LAYOUT %s\n\n", name,
          (long long)o->D, name,
          o->layout == 1 ? "SPAT_LAYOUT_BLHD" : "SPAT_LAYOUT_BHLD");
  if (p->n_externs > 0) {
    fprintf(f,
            "/* The pattern's extern predicates: the program defines them "
            "(pure, thread-safe). */\n");
    for (int k = 0; k < p->n_externs; k++) {
      fprintf(f, "bool %s(", p->externs[k].name);
      for (int a = 0; a < p->externs[k].n_args; a++)
        fprintf(f, "%sint64_t", a ? ", " : "");
      fprintf(f, "%s);\n", p->externs[k].n_args ? "" : "void");
    }
    fprintf(f, "\n");
  }
  for (int with_err = 0; with_err < 2; with_err++) {
    if (with_err)
      fprintf(f,
              "/* The same, with the message of a failure in err (errlen "
              "bytes). */\n");
    else
      fprintf(f,
              "/* Attention with the pattern; returns a spat_status "
              "(SPAT_OK: 0). */\n");
    fprintf(f, "int %s%s(%sconst spat_tensors *t", name, with_err ? "_ex" : "",
            with_err ? "char *err, size_t errlen, " : "");
    for (int k = 0; k < p->n_runtime; k++)
      fprintf(f, ", int64_t %s", p->runtime[k].name);
    for (int k = 0; k < p->n_inputs; k++)
      fprintf(f, ", const int32_t *%s", p->inputs[k].name);
    fprintf(f, ");\n");
  }
  for (int k = 0; k < p->n_runtime; k++)
    if (p->runtime[k].has_deflt)
      fprintf(f, "#define %s_DEFAULT_%s %lldLL\n", name, p->runtime[k].name,
              (long long)p->runtime[k].deflt);
  fprintf(f, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
  if (fclose(f) != 0) return errorf(err, errlen, "%s: write error", path);
  return 0;
}

/* Checks, then builds the optimised module of the kernel; its target machine
 * in *tm_out. */
static int build_module(const ir_program *p, const aot_opts *o, emit *e,
                        LLVMTargetMachineRef *tm_out, char *err,
                        size_t errlen) {
  const char *name = e->name;
  if (!aot_is_identifier(name))
    return errorf(err, errlen,
                  "'%s' is not usable as a C function name (give --name)",
                  name);
  for (int k = 0; k < p->n_externs; k++)
    if (!aot_is_identifier(p->externs[k].name))
      return errorf(err, errlen, "extern '%s' is not a C identifier",
                    p->externs[k].name);
  if (p->n_runtime + p->n_inputs > 64)
    return errorf(err, errlen, "more than 64 runtime scalars and inputs");
  if (!cg_supported_d(o->D))
    return errorf(err, errlen,
                  "head dimension %lld is not supported by the code "
                  "generator",
                  (long long)o->D);
  const int64_t *plan = an_build(p, err, errlen);
  if (plan == NULL) return -1;

  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  LLVMTargetMachineRef tm = target_machine(o->cpu, err, errlen);
  if (tm == NULL) return -1;
  char *triple = LLVMGetTargetMachineTriple(tm);
  char *cpu = LLVMGetTargetMachineCPU(tm);
  char *feat = LLVMGetTargetMachineFeatureString(tm);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *layout = LLVMCopyStringRepOfTargetData(td);
  cg_target tgt = {triple, layout, cpu, feat[0] ? feat : NULL};

  cg_info info;
  e->M = cg_build(e->C, p, o->D, &tgt, &info, err, errlen);
  int rc = e->M != NULL ? 0 : -1;
  if (rc == 0) {
    e->B = LLVMCreateBuilderInContext(e->C);
    e->i32 = LLVMInt32TypeInContext(e->C);
    e->i64 = LLVMInt64TypeInContext(e->C);
    e->ptr = LLVMPointerTypeInContext(e->C, 0);
    internalize(e);
    rc = build_glue(e, p, o, plan, &info, err, errlen);
    LLVMDisposeBuilder(e->B);
    char *msg = NULL;
    if (rc == 0 && LLVMVerifyModule(e->M, LLVMReturnStatusAction, &msg))
      rc = errorf(err, errlen, "internal error: invalid module: %.400s",
                  msg ? msg : "");
    LLVMDisposeMessage(msg);
    cg_info_free(&info);
  }
  if (rc == 0) {
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMErrorRef le = LLVMRunPasses(e->M, "default<O3>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (le) {
      char *m = LLVMGetErrorMessage(le);
      rc = errorf(err, errlen, "optimisation: %s", m);
      LLVMDisposeErrorMessage(m);
    }
  }
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  LLVMDisposeMessage(layout);
  LLVMDisposeTargetData(td);
  if (rc == 0)
    *tm_out = tm;
  else
    LLVMDisposeTargetMachine(tm);
  return rc;
}

/* The kernel as o->emit asks, into the file path, or (an object only) into
 * *mem when path is NULL. */
static int emit_kernel(const ir_program *p, const aot_opts *o,
                       const char *path, LLVMMemoryBufferRef *mem, char *err,
                       size_t errlen) {
  emit E = {0}, *e = &E;
  e->C = LLVMContextCreate();
  e->name = o->name ? o->name : p->name;
  LLVMTargetMachineRef tm = NULL;
  int rc = build_module(p, o, e, &tm, err, errlen);
  if (rc == 0) {
    char *msg = NULL;
    if (path == NULL) {
      if (LLVMTargetMachineEmitToMemoryBuffer(tm, e->M, LLVMObjectFile, &msg,
                                              mem))
        rc = errorf(err, errlen, "cannot emit the object: %s",
                    msg ? msg : "");
    } else if (o->emit == AOT_EMIT_LLVM) {
      if (LLVMPrintModuleToFile(e->M, path, &msg))
        rc = errorf(err, errlen, "%s: %s", path, msg ? msg : "cannot write");
    } else {
      LLVMCodeGenFileType ft =
          o->emit == AOT_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
      if (LLVMTargetMachineEmitToFile(tm, e->M, path, ft, &msg))
        rc = errorf(err, errlen, "%s: %s", path, msg ? msg : "cannot emit");
    }
    LLVMDisposeMessage(msg);
  }
  if (tm != NULL) LLVMDisposeTargetMachine(tm);
  if (e->M != NULL) LLVMDisposeModule(e->M);
  LLVMContextDispose(e->C);
  return rc;
}

int aot_emit(const ir_program *p, const aot_opts *o, const char *obj_path,
             const char *hdr_path, char *err, size_t errlen) {
  int rc = emit_kernel(p, o, obj_path, NULL, err, errlen);
  if (rc == 0 && hdr_path != NULL)
    rc = aot_write_header(p, o, obj_path, hdr_path, err, errlen);
  return rc;
}

int aot_write_header(const ir_program *p, const aot_opts *o,
                     const char *obj_path, const char *hdr_path, char *err,
                     size_t errlen) {
  const char *name = o->name ? o->name : p->name;
  if (!aot_is_identifier(name))
    return errorf(err, errlen,
                  "'%s' is not usable as a C function name (give --name)",
                  name);
  return write_header(p, o, name, obj_path, hdr_path, err, errlen);
}

/* ---- the disk kernel cache ----------------------------------------------- */

/* One file per kernel, HASH.spk, written whole through a rename:
 *   "SPATKC01", u64 key length, u64 object length, u64 FNV-1a of key and
 *   object (little-endian), the key text, the object bytes.
 * A file whose length, checksum or key do not match is never linked. */
#define ENTRY_MAGIC "SPATKC01"
#define ENTRY_HEAD 32
#define ENTRY_EXT ".spk"

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
    return errorf(err, errlen,
                  "no cache directory: neither XDG_CACHE_HOME nor HOME is "
                  "set");
  if (len < 0 || (size_t)len >= n)
    return errorf(err, errlen, "cache directory name too long");
  if (mkdir_p(buf) != 0)
    return errorf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
  return 0;
}

/* Everything the object depends on, as text. */
static char *cache_key(const ir_program *p, const aot_opts *o) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return NULL;
  unsigned maj, min, pat;
  LLVMGetVersion(&maj, &min, &pat);
  char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
  fprintf(f,
          "spatc %s aot-abi %d llvm %u.%u.%u\ncpu %s\nfeatures %s\n"
          "D %lld layout %d threads %d\n",
          spat_version_string(), AOT_ABI, maj, min, pat, cpu, feat,
          (long long)o->D, o->layout, o->threads);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  ir_print_program(f, p);
  /* the tile plan embedded in the object: a library with another plan
   * format or analysis must not reuse the entry */
  char perr[64];
  const int64_t *plan = an_build(p, perr, sizeof perr);
  fprintf(f, "\nplan");
  for (int64_t w = 0; plan && w < plan_words(plan); w++)
    fprintf(f, " %lld", (long long)plan[w]);
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

/* The whole file (malloc) in *out; -1 if it cannot be read. */
static int read_all(const char *path, unsigned char **out, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
      st.st_size > ((off_t)1 << 30)) { /* no kernel object is that big */
    fclose(f);
    return -1;
  }
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len + 1);
  int bad = buf == NULL || fread(buf, 1, len, f) != len;
  fclose(f);
  if (bad) {
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
    return errorf(err, errlen, "not a spatc cache entry");
  uint64_t kl = get_u64(b + 8), ol = get_u64(b + 16), sum = get_u64(b + 24);
  if (kl > n || ol > n || ENTRY_HEAD + kl + ol != n)
    return errorf(err, errlen,
                  "length %zu, expected %llu (truncated or damaged)", n,
                  (unsigned long long)(ENTRY_HEAD + kl + ol));
  if (fnv1a(FNV_SEED, b + ENTRY_HEAD, n - ENTRY_HEAD) != sum)
    return errorf(err, errlen, "checksum mismatch (damaged)");
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
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (f == NULL) return -1;
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
    errorf(err, errlen, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
  } else {
    errorf(err, errlen, "%s", what);
  }
  aot_cache_free(l);
  return NULL;
}

/* Links the object (buf, taken) in memory; the descriptor in l->desc. */
static aot_loaded *link_object(const ir_program *p, LLVMMemoryBufferRef buf,
                               void *const *externs, char *err,
                               size_t errlen) {
  aot_loaded *l = calloc(1, sizeof *l);
  if (l == NULL) {
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(NULL, NULL, "out of memory", err, errlen);
  }
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&l->jit, NULL);
  if (e) {
    l->jit = NULL;
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(l, e, "cannot create the JIT", err, errlen);
  }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(l->jit);
  LLVMOrcDefinitionGeneratorRef gen = NULL; /* memset, libm, ... */
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(l->jit), NULL, NULL);
  if (e) {
    LLVMDisposeMemoryBuffer(buf);
    return fail_load(l, e, "cannot resolve process symbols", err, errlen);
  }
  LLVMOrcJITDylibAddGenerator(jd, gen);
  /* spat_aot_run and the extern predicates, by address */
  size_t n = 1 + (size_t)p->n_externs;
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
  for (int k = 0; k < p->n_externs; k++) {
    syms[1 + k].Name = LLVMOrcLLJITMangleAndIntern(l->jit, p->externs[k].name);
    syms[1 + k].Sym = (LLVMJITEvaluatedSymbol){(uintptr_t)externs[k], flags};
  }
  e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(syms, n));
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
static void entry_path(char *buf, size_t n, const char *dir, const char *key) {
  uint64_t h = fnv1a(FNV_SEED, (const unsigned char *)key, strlen(key));
  snprintf(buf, n, "%s/%016llx%s", dir, (unsigned long long)h, ENTRY_EXT);
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
  char *key = cache_key(p, &o);
  if (key == NULL) return fail_load(NULL, NULL, "out of memory", err, errlen);
  char path[4096];
  entry_path(path, sizeof path, dir, key);
  aot_loaded *l = NULL;
  *hit = 0;
  unsigned char *file = NULL;
  size_t n = 0;
  if (read_all(path, &file, &n) == 0) {
    const char *k;
    const unsigned char *obj;
    size_t kl, ol;
    char why[256];
    if (entry_parse(file, n, &k, &kl, &obj, &ol, why, sizeof why) == 0 &&
        kl == strlen(key) && memcmp(k, key, kl) == 0) {
      LLVMMemoryBufferRef buf =
          LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)obj, ol,
                                                    path);
      l = link_object(p, buf, externs, err, errlen);
      *hit = l != NULL; /* an entry that does not link is compiled again */
    }
    free(file);
  }
  if (l == NULL) {
    LLVMMemoryBufferRef buf = NULL;
    if (emit_kernel(p, &o, NULL, &buf, err, errlen) != 0) {
      free(key);
      return NULL;
    }
    /* an entry that cannot be written (a read-only directory) leaves the
     * object in memory: linked all the same, not stored */
    (void)entry_write(path, key, LLVMGetBufferStart(buf),
                      LLVMGetBufferSize(buf));
    l = link_object(p, buf, externs, err, errlen);
  }
  free(key);
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

int aot_cache_list(const char *dir, aot_cache_fn fn, void *user, char *err,
                   size_t errlen) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return errorf(err, errlen, "%s: %s", dir, strerror(errno));
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (!is_entry_name(de->d_name)) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    unsigned char *file = NULL;
    size_t len = 0;
    if (read_all(path, &file, &len) != 0) continue;
    aot_cache_entry e = {de->d_name, len, 0, NULL, 0, ""};
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
                           : errorf(err, errlen, "%s: %s", dir,
                                    strerror(errno));
  int n = 0, bad = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    /* entries, objects and keys of the older two-file format, and
     * temporary files left by a killed writer */
    if (!is_entry_name(de->d_name) && !hash_named(de->d_name, ".o") &&
        !hash_named(de->d_name, ".key") &&
        !(strlen(de->d_name) > 16 + strlen(ENTRY_EXT) &&
          strncmp(de->d_name + 16, ENTRY_EXT ".tmp.", 9) == 0))
      continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (remove(path) == 0)
      n++;
    else if (!bad)
      bad = errorf(err, errlen, "%s: %s", path, strerror(errno));
  }
  closedir(d);
  return bad ? -1 : n;
}
