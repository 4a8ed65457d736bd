/* pipeline.h: THE compile path (pl_), the one sequence of passes behind the
 * public API (compiler/api.c) and through it the CLI:
 *
 *   pl_load     .pat text or file -> checked module     front/: lex, parse,
 *                                                       imports, sema
 *   pl_lower    module, pattern, defines -> pattern IR  front/: lower
 *               -> ir_check                             ir/: the one checker
 *   pl_compile  IR -> a backend's kernel                backends/: the JIT's
 *               compile is analysis (IR -> tile plan), codegen, LLVM, with
 *               the disk kernel cache in front
 *   pl_emit     IR -> object file and C header          backends/llvm/aot
 *
 * Every step reports failure through diag (located errors in the user's
 * text) or a message in err (everything else); none prints.
 */
#ifndef SPAT_PIPELINE_H
#define SPAT_PIPELINE_H

#include <stddef.h>

#include "aot.h"
#include "backend.h"
#include "frontend.h"
#include "ir.h"

/* path != NULL: that file; else text under the name `name`.  NULL when
 * there were errors (in d). */
fe_module *pl_load(diag *d, arena *a, const char *path, const char *name,
                   const char *text);

/* The pattern `pattern` (NULL: the last of the main file) with defines
 * bound, lowered and checked.  NULL with errors in d (user errors) or a
 * message in err (a malformed program: an internal error). */
ir_program *pl_lower(diag *d, fe_module *m, const char *pattern,
                     const fe_define *defs, int n_defs, char *err,
                     size_t errlen);

/* The backend's kernel for p (checked by pl_lower), after checking the
 * backend's capabilities against p and o.  NULL with a message in err. */
void *pl_compile(const ir_program *p, const backend *be,
                 const backend_opts *o, char *err, size_t errlen);

/* An AOT object (o->emit: object, assembly or LLVM text) at obj_path and,
 * header_path != NULL, its C header; 0, or -1 with a message in err. */
int pl_emit(const ir_program *p, const aot_opts *o, const char *obj_path,
            const char *header_path, char *err, size_t errlen);
/* Only the header, for an object named obj_path. */
int pl_header(const ir_program *p, const aot_opts *o, const char *obj_path,
              const char *header_path, char *err, size_t errlen);

#endif
