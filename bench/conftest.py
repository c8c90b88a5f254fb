"""Shared set-up of the benchmark suites: markers, thread counts, and the environment written
next to the numbers.

Sizes: ``FASTGRAD_BENCH_SIZES=full`` runs the sizes to publish, ``=smoke`` small ones that
check every case in seconds; unset, a run with ``--benchmark-disable`` (CI's smoke run, each
case once, untimed) gets ``smoke`` and a timed run ``full``.

Markers: ``large`` marks the biggest cases (seconds per call on two cores: 10M-parameter
clipping and Adam, the 100-step LSTM, the 1024x4096x1024 Linear, the 256 MiB triad), so
``-m "not large"`` gives a quick run; ``compile`` marks the compile-time figures, which start
fresh Python processes.

Threads: every case runs with ``FASTGRAD_BENCH_THREADS`` threads (default 2) set through
``fastgrad.set_num_threads`` and ``torch.set_num_threads`` when fastgrad has that function;
otherwise Numba's and PyTorch's defaults stay, and the counts actually in force are recorded.
NumPy's BLAS follows ``fastgrad.set_num_threads`` only when threadpoolctl is installed;
otherwise set ``OPENBLAS_NUM_THREADS`` to the same count before the run. On a machine shared
with other work, two-thread numbers are meaningless: a BLAS, OpenMP or Numba thread waiting for
its partner at a barrier loses whole scheduler slices (a 64x784x256 GEMM measured 48 ms instead
of 0.2 ms here), so the load average is recorded too.

Every run's JSON (``--benchmark-json``) carries ``machine_info["fastgrad"]``: the CPU model,
core count, library versions, thread counts and the commit, which ``bench/report.py`` prints
above the tables.
"""
import importlib.util
import os
import platform
import sys

import numpy as np
import pytest

import fastgrad
import machine  # bench/machine.py

#: Threads per case (fastgrad's kernels, its BLAS and PyTorch's intra-op pool).
THREADS = int(os.environ.get("FASTGRAD_BENCH_THREADS", "2"))
#: Environment variables that also decide thread counts, recorded as they were.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "FASTGRAD_BENCH_THREADS")
_LOAD = {}


def _load_average():
    """The 1-minute load average (other processes compete for the cores), or None."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def pytest_configure(config):
    config.addinivalue_line("markers", "large: the biggest benchmark cases; deselect with "
                                       "-m 'not large' for a quick run")
    config.addinivalue_line("markers", "compile: compile-time and import-time figures, "
                                       "measured in fresh Python processes")
    _resolve_sizes(config)
    _set_threads()
    _LOAD["before"] = _load_average()


def _resolve_sizes(config):
    """Settle ``FASTGRAD_BENCH_SIZES`` before the suites are collected: ``full`` (the sizes
    to publish) or ``smoke`` (small sizes that check every case quickly); unset, ``smoke``
    exactly when ``--benchmark-disable`` runs each case once untimed."""
    choice = os.environ.get("FASTGRAD_BENCH_SIZES", "")
    if choice not in ("", "smoke", "full"):
        raise pytest.UsageError(f"FASTGRAD_BENCH_SIZES must be 'smoke' or 'full', got "
                                f"{choice!r}")
    if not choice:
        disabled = config.getoption("benchmark_disable", default=False)
        os.environ["FASTGRAD_BENCH_SIZES"] = "smoke" if disabled else "full"


def _torch():
    """PyTorch, or None when it is not installed (imported only when it is)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return torch


def _set_threads():
    if hasattr(fastgrad, "set_num_threads"):
        fastgrad.set_num_threads(THREADS)
        torch = _torch()
        if torch is not None:
            torch.set_num_threads(THREADS)


def thread_counts():
    """The thread counts in force: the requested count and how it was set, Numba's and
    PyTorch's counts, the environment."""
    counts = {"count": THREADS,
              "set_via": "fastgrad.set_num_threads" if hasattr(fastgrad, "set_num_threads")
              else "library defaults"}
    for name in ("numba", "torch"):   # only those already loaded
        if sys.modules.get(name) is not None:
            counts[name] = sys.modules[name].get_num_threads()
    if importlib.util.find_spec("threadpoolctl") is not None:
        import threadpoolctl
        counts["blas"] = {f"{pool['internal_api']} ({os.path.basename(pool['filepath'])})":
                          pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    counts["env"] = {name: os.environ.get(name, "unset") for name in THREAD_VARIABLES}
    return counts


def _version(module):
    if importlib.util.find_spec(module) is None:
        return None
    return importlib.import_module(module).__version__


def _blas():
    """The BLAS NumPy was built against, from its build configuration (NumPy >= 1.26)."""
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (TypeError, KeyError, AttributeError):
        return None


def environment():
    """What a reader needs next to the numbers: hardware, versions, threads, commit, and the
    load average before and after the run (a busy machine makes every number suspect)."""
    return {
        "cpu_model": machine.cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "numba": _version("numba"),
        "torch": _version("torch"),
        "fastgrad": fastgrad.__version__,
        "backends": fastgrad.backends.available(),
        "threads": thread_counts(),
        "load_average": {"before": _LOAD.get("before"), "after": _load_average()},
        "commit": machine.git("rev-parse", "--short", "HEAD"),
        "dirty": bool(machine.git("status", "--porcelain", "--untracked-files=no")),
    }


@pytest.fixture(scope="session")
def bench_threads():
    """The thread counts in force for this run (recorded in each case's extra_info)."""
    return thread_counts()


if importlib.util.find_spec("pytest_benchmark") is not None:
    def pytest_benchmark_update_machine_info(config, machine_info):
        machine_info["fastgrad"] = environment()
