"""The number of threads fastgrad's kernels use: PyTorch's ``set_num_threads`` and
``get_num_threads``.

Each kernel backend owns its thread setting; these functions reach them through the backend
registry (:func:`fastgrad.backends.set_num_threads`), which loads the backends only when one
of them is called, so ``import fastgrad`` still costs NumPy alone.
"""
import operator
import os

from . import backends

_requested = [None]  # the last count set, for get_num_threads without a threaded backend


def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def set_num_threads(n):
    """Use ``n`` threads for fastgrad's parallel kernels and, where possible, for BLAS.

    Sets each kernel backend's own count through the registry: Numba's
    (``numba.set_num_threads``: it applies to the calling Python thread, and ``n`` can be at
    most ``NUMBA_NUM_THREADS``, the size of Numba's thread pool, fixed when the pool starts; by
    default the number of CPUs) and the C kernels' OpenMP thread count (also when the ``c``
    backend loads later). BLAS (the matrix products) is
    set too when ``threadpoolctl`` is installed; otherwise BLAS keeps the count it started with,
    which only the environment can set before the process starts: ``OPENBLAS_NUM_THREADS``
    (NumPy's OpenBLAS), ``MKL_NUM_THREADS`` or ``OMP_NUM_THREADS``.

    Worker processes and fork: Numba's default threading layer here is OpenMP (``omp``), and
    a process forked after a parallel kernel has run is killed when it runs one itself
    (``Terminating: fork() called from a process already using GNU OpenMP``). Start worker
    processes (a data loader's, ``multiprocessing``) with the ``spawn`` start method, e.g.
    ``multiprocessing.get_context("spawn")``, or set ``NUMBA_THREADING_LAYER=workqueue``
    before start (fork-safe, but not safe for parallel kernels called from several Python
    threads at once).

    Args:
        n: the number of threads, a positive int.

    Raises:
        TypeError: ``n`` is not an int.
        ValueError: ``n`` is below 1 or above Numba's ``NUMBA_NUM_THREADS``.
    """
    if isinstance(n, bool):
        raise TypeError(f"n must be an int, got bool {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an int, got {type(n).__name__} {n!r}") from None
    limit = backends.thread_limit()
    if n < 1 or (limit is not None and n > limit[0]):
        bounds = f"between 1 and {limit[0]} ({limit[1]})" if limit else "at least 1"
        raise ValueError(f"n must be {bounds}, got {n}")
    backends.set_num_threads(n)
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    _requested[0] = n


def get_num_threads():
    """The number of threads fastgrad's parallel kernels use: the count of the first backend
    in the registry's default order that has a thread setting (Numba's, for the calling
    Python thread, when Numba is installed), otherwise the count last given to
    :func:`set_num_threads` (by default the number of CPUs this process may run on)."""
    count = backends.get_num_threads()
    if count is not None:
        return count
    if _requested[0] is not None:
        return _requested[0]
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
