"""Every knob fastgrad reads from the environment, read once, in one place, and the one helper
that owns every Numba flag.

``FASTGRAD_BACKEND``
    Forces one kernel backend by name (``numpy``, ``numba``, ...). Unset: the fastest available
    backend in the registry's default order is used per kernel.
``FASTGRAD_GEMM``
    ``blas`` runs the matrix products' blocks with NumPy's BLAS; unset or ``fastgrad``:
    fastgrad's own product where the C kernels are built (:mod:`fastgrad.backends.blas`).
``FASTGRAD_MALLOC``
    ``system`` leaves the C library's ``malloc`` as it is; unset or ``fastgrad``: on glibc,
    freed arrays' memory is kept for reuse (:mod:`fastgrad.memory` says what and why).
``NUMBA_CACHE_DIR``
    Where Numba caches compiled kernels. When unset and the installed package directory is not
    writable (a read-only install), fastgrad points it at a per-user cache directory before
    Numba is imported, so caching keeps working instead of failing at import.
"""
import os
import tempfile

#: The backend forced through the environment, or None for the default order.
BACKEND = os.environ.get("FASTGRAD_BACKEND") or None

#: Which GEMM the products' blocks call: ``fastgrad`` or ``blas`` (see
#: :mod:`fastgrad.backends.blas`).
GEMM = os.environ.get("FASTGRAD_GEMM") or "fastgrad"
if GEMM not in ("fastgrad", "blas"):
    raise ValueError(f"FASTGRAD_GEMM must be fastgrad or blas, got {GEMM!r}")

#: How ``malloc`` is set up at import: ``fastgrad`` or ``system`` (see :mod:`fastgrad.memory`).
MALLOC = os.environ.get("FASTGRAD_MALLOC") or "fastgrad"

#: LLVM fast-math flags for the Numba kernels: reassociation and contraction (vectorised
#: reductions, FMA) but never ``nnan``/``ninf``, so NaN and inf checks keep working.
NUMBA_FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Flags for kernels whose every element must round exactly as the NumPy reference does
#: (elementwise updates: optimiser steps, fills, scales): none, so LLVM may not contract
#: ``a * b + c`` into an FMA that the reference does not perform.
NUMBA_FASTMATH_EXACT = frozenset()


def prepare_numba_cache(package_dir=os.path.dirname(__file__)):
    """Make Numba's on-disk cache usable before Numba is imported; returns the directory used
    (None: Numba's default, next to the sources)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    if os.access(package_dir, os.W_OK):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(os.path.dirname(base) if not os.path.isdir(base) else base, os.W_OK):
        base = tempfile.gettempdir()
    cache = os.path.join(base, "fastgrad", "numba")
    os.makedirs(cache, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = cache
    return cache


def jit(parallel=False, exact=False, **options):
    """``numba.njit`` with fastgrad's flags: cached, NumPy's error model (division by zero
    gives inf/NaN as in NumPy, no exception checks in loops), :data:`NUMBA_FASTMATH`, or
    :data:`NUMBA_FASTMATH_EXACT` with ``exact=True``.

    Every Numba kernel is decorated with this helper and nothing else, so the flags live in
    one place. Hyperparameters must be arguments, never globals: the cache freezes globals.
    """
    import numba
    flags = NUMBA_FASTMATH_EXACT if exact else NUMBA_FASTMATH
    return numba.njit(cache=True, error_model="numpy", fastmath=set(flags),
                      parallel=parallel, **options)
