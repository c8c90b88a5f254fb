"""The Numba CPU backend: the registry's kernels, fused and parallel, same names and
signatures as the reference (:mod:`fastgrad.backends.numpy_ref`).

Matrix products stay with NumPy's BLAS; the kernels fuse what surrounds them (bias,
activation, derivatives, reductions) and everything memory-bound. Reductions run over
fixed-size chunks combined in a fixed order, so results do not depend on the thread count.
Kernel families live in small modules (each self-contained: Numba's cache only checks a
kernel's own file).
"""
from ... import config

config.prepare_numba_cache()

from ._layers import *  # noqa: E402,F401,F403  (each module's __all__ lists its kernels)
from ._arena import *  # noqa: E402,F401,F403
