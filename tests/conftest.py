"""Shared fixtures: the seeded generator, the C backend's module for its own tests, and a
runner of scripts with Numba's JIT disabled."""
import os
import pathlib
import subprocess
import sys

# Numba's CUDA simulator, for tests/test_cuda_kernels.py: it must be chosen before Numba is
# first imported (a GPU machine runs the kernels for real with NUMBA_ENABLE_CUDASIM=0)
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastgrad import backends  # noqa: E402
from fastgrad.backends import blas  # noqa: E402


@pytest.fixture
def rng():
    """A NumPy generator seeded the same way in every test, so failures reproduce."""
    return np.random.default_rng(20240601)


@pytest.fixture
def strict_cuda():
    """CUDA tensors for one test, on the stand-in device of tests/_strict_device.py (arrays
    that refuse hidden host round trips): yields its StrictArray type."""
    from _strict_device import StrictArray, from_host, to_host
    from fastgrad.device import register_arrays, unregister_arrays
    register_arrays(StrictArray, "cuda", to_host, from_host)
    yield StrictArray
    unregister_arrays(StrictArray)


@pytest.fixture
def simulated_cuda():
    """CUDA tensors for one test, on the stand-in device of :func:`strict_cuda` with the CUDA
    backend's kernels as its kernel table, run in Numba's simulator: yields StrictArray."""
    from numba import config
    if not config.ENABLE_CUDASIM:
        pytest.skip("Numba's CUDA simulator is off (NUMBA_ENABLE_CUDASIM=0: a GPU run)")
    try:
        from _strict_device import simulated_kernels
        kernels = simulated_kernels()
    except ImportError as error:  # no numba.cuda
        pytest.skip(f"the CUDA backend is unavailable: {error}")
    from _strict_device import StrictArray, from_host, to_host
    from fastgrad.device import register_arrays, unregister_arrays
    register_arrays(StrictArray, "cuda", to_host, from_host, kernels=kernels)
    yield StrictArray
    unregister_arrays(StrictArray)


@pytest.fixture
def gpu_cuda():
    """CUDA tensors on a real GPU, as a user gets them (CuPy's arrays with the CUDA backend's
    kernels: fastgrad.backends.cupy_arrays); skipped, with the reason, without one
    (bench/gpu_check.sh runs these tests on a GPU machine): yields the array type."""
    import fastgrad
    from fastgrad.device import device_arrays_of, why_unavailable
    if not fastgrad.cuda.is_available():
        pytest.skip(f"no CUDA tensors: {why_unavailable('cuda')}")
    return device_arrays_of(fastgrad.device("cuda")).array_type


@pytest.fixture
def c():
    """The C backend's module, or a skip that says why it is unavailable."""
    module = backends._load("c") if "c" in backends.BACKEND_MODULES else None
    if module is None:
        pytest.skip(f"the c backend is unavailable: {backends.describe().get('c', 'unknown')}")
    return module


@pytest.fixture
def c_products(c):
    """The C backend where its products run in C: skipped without a usable BLAS."""
    if not blas.AVAILABLE:
        pytest.skip(f"no usable BLAS: {blas.REASON}")
    return c


@pytest.fixture
def threads(c):
    """Set the C kernels' OpenMP thread count within a test; restored afterwards."""
    previous = c.get_num_threads()
    yield c.set_num_threads
    c.set_num_threads(previous)


@pytest.fixture
def run_without_jit():
    """``run(script, timeout)``: run a Python script in a fresh process from the repository
    root with ``NUMBA_DISABLE_JIT=1`` (the jitted bodies run as plain Python, so their logic
    is checked line by line) and the default backend; returns its stdout once it exited 0."""
    root = pathlib.Path(__file__).resolve().parents[1]

    def run(script, timeout=120):
        environ = {k: v for k, v in os.environ.items() if k != "FASTGRAD_BACKEND"}
        environ.update(NUMBA_DISABLE_JIT="1",
                       PYTHONPATH=os.pathsep.join([str(root), environ.get("PYTHONPATH", "")]))
        result = subprocess.run([sys.executable, "-c", script], env=environ, cwd=root,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr
        return result.stdout
    return run
