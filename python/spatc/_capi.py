"""spatc._capi: libspat's public C API (include/spat.h) through ctypes.

Finds libspat.so (SPATC_LIB, then next to this package, then the source
tree's build/), declares the structs and prototypes the package uses, and
turns failing statuses into exceptions.  ctypes releases the GIL for the
duration of every call into the library, so kernels run while other Python
threads go on.  Nothing else in the package touches ctypes structs directly.
"""
import ctypes
import os

__all__ = ["lib", "SpatError", "PatternError", "library_path", "HAS_BACKWARD"]


class SpatError(RuntimeError):
    """A libspat call failed; .status is the status name (e.g. "SPAT_EINVAL")
    and the message is the API's (spat_ctx_error)."""

    def __init__(self, message, status="SPAT_EINVAL"):
        super().__init__(message)
        self.status = status


class PatternError(SpatError):
    """A pattern has errors: .diagnostics is the gcc-style text
    (`file:line:col: error: ...`, the source line and a caret)."""

    def __init__(self, message, diagnostics, status="SPAT_EPARSE"):
        text = diagnostics.rstrip("\n") if diagnostics else message
        super().__init__(text, status)
        self.summary = message
        self.diagnostics = diagnostics


_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("SPATC_LIB")
    if env:
        return [env]
    return [os.path.join(_HERE, "libspat.so"),
            os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build",
                         "libspat.so")]


def _find():
    for path in _candidates():
        if os.path.isfile(path):
            return path
    raise ImportError(
        "spatc: libspat.so not found (looked at %s). Build it with `make` "
        "in the spatc tree and install the package with `make python`, or "
        "set SPATC_LIB=/path/to/libspat.so." % ", ".join(_candidates()))


library_path = _find()
lib = ctypes.CDLL(library_path)
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]

vp, cp, i64, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_size_t
VPP = ctypes.POINTER(vp)

STATUS = {0: "SPAT_OK", 1: "SPAT_EINVAL", 2: "SPAT_EPARSE", 3: "SPAT_ERANGE",
          4: "SPAT_ENOMEM", 5: "SPAT_EUNSUPPORTED", 6: "SPAT_EIO",
          7: "SPAT_EINTERNAL"}
EPARSE = 2
KIND_SCALAR, KIND_INPUT, KIND_FLOAT_INPUT = 1, 2, 3
MAX_DIMS = 8
BACKENDS = {"jit": 0, "interp": 1}
LAYOUTS = {"bhld": 0, "blhd": 1}
# spat_dtype: the element type of q, k, v and o (lse stays float32)
DTYPES = {"float32": 0, "bfloat16": 1, "float16": 2}


class CompileOptions(ctypes.Structure):  # spat_compile_options
    _fields_ = [("D", i64), ("layout", ctypes.c_int), ("threads", ctypes.c_int),
                ("backend", ctypes.c_int), ("cache", ctypes.c_int),
                ("dtype", ctypes.c_int)]


class PagedKV(ctypes.Structure):  # spat_paged_kv
    _fields_ = [("page_table", vp), ("seq_lens", vp), ("n_pages", i64),
                ("page_size", i64), ("max_pages", i64)]


class Tensors(ctypes.Structure):  # spat_tensors
    _fields_ = [("B", i64), ("H", i64), ("Hkv", i64), ("Lq", i64), ("Lk", i64),
                ("q", vp), ("k", vp), ("v", vp), ("o", vp), ("lse", vp),
                ("scale", ctypes.c_float), ("paged", vp)]


class Value(ctypes.Structure):  # spat_value
    _fields_ = [("kind", ctypes.c_int), ("scalar", i64), ("input", vp),
                ("finput", vp)]


class ArgInfo(ctypes.Structure):  # spat_arg_info
    _fields_ = [("name", cp), ("kind", ctypes.c_int),
                ("has_default", ctypes.c_bool), ("default_value", i64),
                ("n_dims", ctypes.c_int), ("shape", vp)]


class Signature(ctypes.Structure):  # spat_signature
    _fields_ = [("pattern", cp), ("D", i64), ("layout", ctypes.c_int),
                ("backend", ctypes.c_int), ("n_args", sz),
                ("args", ctypes.POINTER(ArgInfo)), ("entry_type", cp),
                ("from_cache", ctypes.c_int), ("cache_problem", cp),
                ("dtype", ctypes.c_int)]


class ExternInfo(ctypes.Structure):  # spat_extern_info
    _fields_ = [("name", cp), ("nargs", ctypes.c_int)]


class PatternInfo(ctypes.Structure):  # spat_pattern_info
    _fields_ = [("name", cp), ("n_args", sz), ("args", ctypes.POINTER(ArgInfo)),
                ("n_externs", sz), ("externs", ctypes.POINTER(ExternInfo)),
                ("data_dependent", ctypes.c_bool), ("top_left", ctypes.c_bool)]


class ParamDecl(ctypes.Structure):  # spat_param_decl
    _fields_ = [("name", cp), ("has_default", ctypes.c_bool)]


class PatternDecl(ctypes.Structure):  # spat_pattern_decl
    _fields_ = [("name", cp), ("signature", cp), ("needs_params", ctypes.c_bool),
                ("n_params", sz), ("params", ctypes.POINTER(ParamDecl))]


class Param(ctypes.Structure):  # spat_param
    _fields_ = [("name", cp), ("value", i64)]


class ExplainOptions(ctypes.Structure):  # spat_explain_options
    _fields_ = [("H", i64), ("Lq", i64), ("Lk", i64), ("bq", i64), ("bk", i64)]


class Grads(ctypes.Structure):  # spat_grads (COMMON.md)
    _fields_ = [("dout", vp), ("dlse", vp), ("dq", vp), ("dk", vp),
                ("dv", vp), ("dinputs", vp)]


def _proto(name, res, *args):
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)


_PROTOS = [
    ("spat_version_string", cp),
    ("spat_status_name", cp, ctypes.c_int),
    ("spat_ctx_new", vp),
    ("spat_ctx_free", None, vp),
    ("spat_ctx_error", cp, vp),
    ("spat_ctx_last_diagnostics", cp, vp),
    ("spat_pattern_free", None, vp),
    ("spat_pattern_name", cp, vp),
    ("spat_pattern_set_param", ctypes.c_int, vp, cp, i64),
    ("spat_pattern_n_params", sz, vp),
    ("spat_pattern_param", ctypes.c_int, vp, sz, ctypes.POINTER(cp),
     ctypes.POINTER(i64)),
    ("spat_pattern_describe", ctypes.c_int, vp, ctypes.POINTER(PatternInfo)),
    ("spat_module_parse_string", ctypes.c_int, vp, cp, cp, VPP),
    ("spat_module_parse_file", ctypes.c_int, vp, cp, VPP),
    ("spat_module_free", None, vp),
    ("spat_module_n_patterns", sz, vp),
    ("spat_module_pattern", ctypes.c_int, vp, sz, ctypes.POINTER(PatternDecl)),
    ("spat_module_select", ctypes.c_int, vp, cp, ctypes.POINTER(Param), sz,
     VPP),
    ("spat_compile", ctypes.c_int, vp, ctypes.POINTER(CompileOptions), VPP),
    ("spat_kernel_free", None, vp),
    ("spat_kernel_signature", ctypes.POINTER(Signature), vp),
    ("spat_kernel_call", ctypes.c_int, vp, vp, vp, sz),  # a Tensors buffer
    ("spat_kernel_mask", ctypes.c_int, vp, ctypes.POINTER(Tensors), vp, sz,
     i64, i64, i64, i64, vp),
    ("spat_kernel_mask_count", ctypes.c_int, vp, ctypes.POINTER(Tensors), vp,
     sz, i64, i64, i64, i64, vp),
    ("spat_pattern_explain", ctypes.c_int, vp, ctypes.POINTER(ExplainOptions),
     vp, sz, ctypes.POINTER(vp)),
    ("spat_cache_dir", ctypes.c_int, vp, ctypes.c_char_p, sz),
    ("spat_arg_shape", ctypes.c_int, ctypes.POINTER(ArgInfo), i64, i64, i64,
     i64, i64, i64, ctypes.POINTER(i64)),
    ("spat_convert", ctypes.c_int, vp, ctypes.c_int, vp, ctypes.c_int, sz),
    ("spat_kernel_tiles", ctypes.c_int, vp, ctypes.POINTER(Tensors), vp, sz,
     i64, i64, i64, i64, vp),
]
for _p in _PROTOS:
    _proto(*_p)

# The backward entry (COMMON.md) is bound only when this libspat has it.
HAS_BACKWARD = hasattr(lib, "spat_kernel_backward")
if HAS_BACKWARD:
    _proto("spat_kernel_backward", ctypes.c_int, vp, ctypes.POINTER(Tensors),
           ctypes.POINTER(Grads), vp, sz)


def text(b):
    return b.decode("utf-8", "replace") if b else ""


def status_name(rc):
    return STATUS.get(rc, "SPAT_E?")


def check(rc, ctx, what):
    """Raises PatternError (SPAT_EPARSE, with the diagnostics) or SpatError
    when rc is not SPAT_OK; ctx is the context that holds the message."""
    if rc == 0:
        return
    msg = text(lib.spat_ctx_error(ctx)) or what
    if rc == EPARSE:
        raise PatternError(msg, text(lib.spat_ctx_last_diagnostics(ctx)))
    raise SpatError("%s: %s" % (what, msg), status_name(rc))


def free_c(ptr):
    _libc.free(ptr)


class Context:
    """Owns one spat_ctx (freed with the object)."""

    def __init__(self):
        self.ptr = lib.spat_ctx_new()
        if not self.ptr:
            raise MemoryError("spat_ctx_new")

    def __del__(self):
        if lib is not None and getattr(self, "ptr", None):
            lib.spat_ctx_free(self.ptr)
            self.ptr = None
