"""setup.py: copies libspat.so ($SPATC_LIB, else ../build/libspat.so) and
the pattern library (../patterns) into the package before it is built, and
tags the wheel for this platform (it carries a shared library) but for any
Python (it uses no CPython ABI).  The metadata is in pyproject.toml."""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG = os.path.join(HERE, "spatc")


def bundle():
    lib = os.environ.get("SPATC_LIB") or os.path.join(ROOT, "build",
                                                      "libspat.so")
    dst = os.path.join(PKG, "libspat.so")
    if os.path.isfile(lib):
        if not os.path.isfile(dst) or not os.path.samefile(lib, dst):
            shutil.copy2(lib, dst)
    elif not os.path.isfile(dst):
        raise SystemExit("spatc: %s not found: run `make` in the spatc tree "
                         "first (or set SPATC_LIB)" % lib)
    pats = sorted(glob.glob(os.path.join(ROOT, "patterns", "*.pat")))
    if pats:
        os.makedirs(os.path.join(PKG, "patterns"), exist_ok=True)
        for f in pats:
            shutil.copy2(f, os.path.join(PKG, "patterns"))


class BuildPy(build_py):
    def run(self):
        bundle()
        super().run()


cmds = {"build_py": BuildPy}
try:
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:
        from wheel.bdist_wheel import bdist_wheel

    class Wheel(bdist_wheel):
        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            return ("py3", "none") + tuple(super().get_tag()[2:])

    cmds["bdist_wheel"] = Wheel
except ImportError:
    pass

setup(cmdclass=cmds)
