"""The cffi build of the C kernels (API, out-of-line mode) into ``fastgrad.backends._ckernels``.

``setup.py`` names this file in ``cffi_modules``, so ``pip install`` (editable or not) compiles
the extension; the build is optional (a failed compile leaves fastgrad on its NumPy and Numba
paths). The declarations are the part of ``csrc/fastgrad.h`` between its cffi markers, so the
header stays the one C contract.

Flags: portable by default (``-O3 -std=c11``, and ``-march=x86-64-v2`` on x86-64: SSE4.2,
safe on any x86-64 CPU since about 2009; with GCC on Linux the loops are also compiled for
AVX2 and AVX-512 and chosen at load time, see csrc/fg_internal.h); ``FASTGRAD_NATIVE=1``
builds for the compiling machine's CPU only (``-march=native``), for a build that runs only
there. ``-ffp-contract=off`` keeps every level's arithmetic identical; ``-fno-math-errno`` and
``-fno-trapping-math`` let the compiler vectorise sqrt, rint and branches on floats without
changing any result (fast-math, which would break NaN and inf, is not used). OpenMP with
``-fopenmp``; setup.py retries without it where the compiler lacks it.

Rebuild after editing the C sources with ``pip install -e .`` (an editable install does not
rebuild by itself).
"""
import os
import pathlib
import platform
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
HEADER = HERE / "fastgrad.h"
# paths relative to the project root (setup.py's directory), as setuptools wants them
SOURCES = ["csrc/arena.c", "csrc/layers.c", "csrc/gemm.c", "csrc/conv.c"]
# the build script itself too: a change of flags rebuilds, and the sdist carries it
DEPENDS = ["csrc/fastgrad.h", "csrc/fg_internal.h", "csrc/arena.inc", "csrc/layers.inc",
           "csrc/gemm.inc", "csrc/conv.inc", "csrc/build_ffi.py"]


def declarations(header=HEADER):
    """The prototypes between the ``/* cffi-begin */`` and ``/* cffi-end */`` markers."""
    text = pathlib.Path(header).read_text()
    start = text.index("/* cffi-begin */") + len("/* cffi-begin */")
    return text[start:text.index("/* cffi-end */")]


def compile_args():
    """The compiler flags: portable unless ``FASTGRAD_NATIVE=1``; OpenMP last (setup.py drops
    it, and then the -march flag, when a build fails)."""
    if sys.platform == "win32":
        return ["/O2", "/openmp"]
    args = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    if os.environ.get("FASTGRAD_NATIVE") == "1":
        args += ["-march=native", "-DFG_NATIVE"]
    elif platform.machine().lower() in ("x86_64", "amd64"):
        args.append("-march=x86-64-v2")
    return args + ["-fopenmp"]


def link_args():
    return [] if sys.platform == "win32" else ["-fopenmp"]


ffibuilder = FFI()
ffibuilder.cdef(declarations())
ffibuilder.set_source(
    "fastgrad.backends._ckernels", '#include "fastgrad.h"', sources=SOURCES,
    include_dirs=["csrc"], depends=DEPENDS, extra_compile_args=compile_args(),
    extra_link_args=link_args(), libraries=[] if sys.platform == "win32" else ["m"],
    optional=True)
