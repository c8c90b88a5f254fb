"""Kernel benchmarks, generated from the registry: kernel x backend x bench size, float32.

    python -m pytest bench --benchmark-only                 # the table, grouped per kernel-size
    python -m pytest bench -q --benchmark-disable           # each case once, as a quick check

Each case builds its inputs with the kernel's example generator, makes one warm-up call (JIT
compilation and first-touch page faults stay out of the timings), times the kernel on a fresh
copy of the inputs per round (copying is not timed, so in-place kernels such as ``sgd_step`` see
the same inputs every round), then asserts that the last timed call agrees with the reference.
"""
import copy
import importlib
import os
import sys
import time

import numpy as np
import pytest

from fastgrad import backends
from fastgrad.backends import KERNELS

pytest.importorskip("pytest_benchmark")

DTYPE = np.float32
#: Rough time spent timing one case (at least MIN_ROUNDS rounds).
TIME_PER_CASE_S = 0.25
MIN_ROUNDS, MAX_ROUNDS = 3, 200
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")

BACKENDS = backends.available()
CASES = [pytest.param(name, backend, size, id=f"{name}-{backend}-{size}")
         for name, spec in KERNELS.items() for backend in BACKENDS for size in spec.bench_sizes]


def _implementation(backend, name):
    module = importlib.import_module(backends.BACKEND_MODULES[backend])
    if not hasattr(module, name):
        pytest.skip(f"backend {backend!r} does not implement kernel {name!r}")
    with backends.use(backend):
        return getattr(backends.K, name)


@pytest.mark.parametrize("name, backend, size", CASES)
def test_kernel_speed(benchmark, name, backend, size):
    spec = KERNELS[name]
    implementation = _implementation(backend, name)
    args = spec.example(np.random.default_rng(size), DTYPE, size)
    benchmark.group = f"{name}-{size}"
    benchmark.extra_info.update(
        backend=backend, size=size, dtype=np.dtype(DTYPE).name, python=sys.version.split()[0],
        numpy=np.__version__, threads={v: os.environ.get(v, "unset") for v in THREAD_VARIABLES})

    warm = copy.deepcopy(args)
    start = time.perf_counter()
    implementation(**warm)  # warm-up: compilation and first touch are not timed
    elapsed = time.perf_counter() - start
    del warm
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, TIME_PER_CASE_S / max(elapsed, 1e-7))))

    last = {}

    def fresh_inputs():
        last["kwargs"] = copy.deepcopy(args)
        return (), last["kwargs"]

    result = benchmark.pedantic(implementation, setup=fresh_inputs, rounds=rounds,
                                iterations=1)

    expected_args = copy.deepcopy(args)
    expected = spec.reference(**expected_args)
    rtol, atol = spec.tolerances[np.dtype(DTYPE)]
    where = f"kernel {name!r} on backend {backend!r} (bench size {size})"
    for key in spec.writes:
        if expected_args[key] is not None:
            np.testing.assert_allclose(last["kwargs"][key], expected_args[key], rtol=rtol,
                                       atol=atol, err_msg=f"{where}: argument {key!r}")
    if expected is None:
        assert result is None, f"{where}: returned {result!r}, the reference returns None"
    else:
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{where}: return value")
