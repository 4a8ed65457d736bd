/* pipeline.c: the compile path, read top to bottom (pipeline.h). */
#include "pipeline.h"

#include <stdio.h>

fe_module *pl_load(diag *d, arena *a, const char *path, const char *name,
                   const char *text) {
  if (path != NULL) return fe_load_file(d, a, path);
  return fe_load_string(d, a, name, text);
}

ir_program *pl_lower(diag *d, fe_module *m, const char *pattern,
                     const fe_define *defs, int n_defs, char *err,
                     size_t errlen) {
  ir_program *p = fe_instantiate(d, m, pattern, defs, n_defs);
  if (p == NULL) return NULL;
  if (!ir_check(p, err, errlen)) return NULL; /* the front end's bug */
  return p;
}

void *pl_compile(const ir_program *p, const backend *be,
                 const backend_opts *o, char *err, size_t errlen) {
  if (be->supports_d != NULL && !be->supports_d(o->D)) {
    snprintf(err, errlen,
             "head dimension %lld is not supported by the %s backend (%s)",
             (long long)o->D, be->name, be->d_text);
    return NULL;
  }
  if (p->n_externs > 0 && !(be->caps & BACKEND_CAP_EXTERNS)) {
    snprintf(err, errlen, "the %s backend does not call extern functions",
             be->name);
    return NULL;
  }
  if (ir_is_data_dependent(p) && !(be->caps & BACKEND_CAP_TOPK)) {
    snprintf(err, errlen, "the %s backend does not run topk patterns",
             be->name);
    return NULL;
  }
  backend_opts bo = *o;
  if (!(be->caps & BACKEND_CAP_CACHE)) bo.cache = false;
  return be->compile(p, &bo, err, errlen);
}

int pl_emit(const ir_program *p, const aot_opts *o, const char *obj_path,
            const char *header_path, char *err, size_t errlen) {
  if (!ir_check(p, err, errlen)) return -1;
  return aot_emit(p, o, obj_path, header_path, err, errlen);
}

int pl_header(const ir_program *p, const aot_opts *o, const char *obj_path,
              const char *header_path, char *err, size_t errlen) {
  if (!ir_check(p, err, errlen)) return -1;
  return aot_write_header(p, o, obj_path, header_path, err, errlen);
}
