"""The Numba CPU backend: the registry's kernels, fused and parallel, same names and
signatures as the reference (:mod:`fastgrad.backends.numpy_ref`).

Matrix products stay with NumPy's BLAS; the kernels fuse what surrounds them (bias,
activation, derivatives, reductions) and everything memory-bound. Reductions run over
fixed-size chunks combined in a fixed order, so results do not depend on the thread count.
Kernel families live in small modules (each self-contained: Numba's cache only checks a
kernel's own file).

Threads: the parallel kernels run on Numba's thread pool, with the count of
:func:`set_num_threads` (``fastgrad.set_num_threads`` calls it through the registry), at most
the pool's size (:data:`THREAD_LIMIT`).
"""
from ... import config

config.prepare_numba_cache()

import numba  # noqa: E402

from ._layers import *  # noqa: E402,F401,F403  (each module's __all__ lists its kernels)
from ._arena import *  # noqa: E402,F401,F403
from ._conv import *  # noqa: E402,F401,F403
from ._layers import FALLBACKS  # noqa: E402,F401  (the backend's fallbacks, every module's)

#: The most threads :func:`set_num_threads` takes, and what fixes that number.
THREAD_LIMIT = (numba.config.NUMBA_NUM_THREADS,
                "NUMBA_NUM_THREADS, the size of Numba's thread pool; set it before start for more")


def set_num_threads(n):
    """Run the parallel kernels on ``n`` threads of Numba's pool (for the calling Python
    thread, as ``numba.set_num_threads``); ``n`` is at most :data:`THREAD_LIMIT`."""
    numba.set_num_threads(n)


def get_num_threads():
    """The number of threads the parallel kernels use, for the calling Python thread."""
    return numba.get_num_threads()
