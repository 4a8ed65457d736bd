"""spatc: sparse attention patterns compiled by libspat, from Python.

    import spatc
    p = spatc.Pattern.library("longformer", w=256)
    o = spatc.attention(q, k, v, p)             # numpy float32
    import spatc.torch                          # torch ops (needs torch)
    o = spatc.torch.attention(q, k, v, p)       # differentiable, compilable

A thin layer over libspat's public C API (include/spat.h) through ctypes:
no compiled extension, so one install serves every Python and torch
version.  The library is found through $SPATC_LIB, next to this package
(make python copies it in), or in the source tree's build/.  See
docs/python.md.
"""
from ._capi import SpatError, PatternError, library_path
from ._capi import lib as _lib
from ._kernel import cache_info, clear_cache
from .pattern import Pattern, patterns_in, library_dirs
from .attention import attention, attention_backward, has_backward
from .attention import to_bfloat16, from_bfloat16

__all__ = ["Pattern", "PatternError", "SpatError", "attention",
           "attention_backward", "has_backward", "to_bfloat16",
           "from_bfloat16", "patterns_in",
           "library_dirs", "cache_info", "clear_cache", "library_path",
           "version", "__version__"]

__version__ = "0.1.0"


def version():
    """The version of the loaded libspat ("0.1.0")."""
    return _lib.spat_version_string().decode()


def __getattr__(name):
    # spatc.torch and spatc.nn are imported on first use (they need torch).
    if name in ("torch", "nn"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'spatc' has no attribute %r" % name)
