"""The CUDA backend's kernels against the NumPy reference: every variant of every kernel that
``fastgrad.backends.numba_cuda`` implements, float32 and float64, on the registry's smallest
example, run on device arrays. Without a GPU they run in Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, set by conftest.py before Numba is imported); on a GPU machine
``NUMBA_ENABLE_CUDASIM=0`` runs them for real (bench/gpu_check.sh)."""
import copy

import numpy as np
import pytest

from fastgrad.backends import KERNELS

try:
    from fastgrad.backends import numba_cuda
except ImportError as error:  # no numba.cuda, or no device and no simulator
    pytest.skip(f"the CUDA backend is unavailable: {error}", allow_module_level=True)
from numba import cuda

DTYPES = (np.float32, np.float64)
IMPLEMENTED = [name for name in KERNELS if hasattr(numba_cuda, name)]


def _seed(*parts):
    return sum((i + 1) * ord(c) for i, c in enumerate("-".join(map(str, parts))))


def _device(value):
    return cuda.to_device(value) if isinstance(value, np.ndarray) else value


def _host(value):
    return value.copy_to_host() if hasattr(value, "copy_to_host") else value


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,variant", [(name, variant) for name in IMPLEMENTED
                                          for variant in KERNELS[name].variants])
def test_kernel_matches_the_reference(name, variant, dtype):
    spec = KERNELS[name]
    args = spec.arguments(np.random.default_rng(_seed(name, variant)), dtype, min(spec.sizes),
                          variant)
    expected = copy.deepcopy(args)
    with np.errstate(all="ignore"):
        returned = spec.reference(**expected)
    on_device = {key: _device(value) for key, value in args.items()}
    result = getattr(numba_cuda, name)(**on_device)
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    for key in spec.writes:
        if expected[key] is None:
            continue
        np.testing.assert_allclose(_host(on_device[key]), expected[key], rtol=rtol, atol=atol,
                                   err_msg=f"{name} [{variant}] wrote {key}")
    if returned is not None:
        np.testing.assert_allclose(np.asarray(_host(result)).reshape(()), returned, rtol=rtol,
                                   atol=atol, err_msg=f"{name} [{variant}] returned")


def test_host_arrays_are_refused_by_name():
    with pytest.raises(TypeError, match="buffer must be a CUDA device array"):
        numba_cuda.fill(np.zeros(3, np.float32), 1.0)


def test_the_backend_implements_kernels():
    assert IMPLEMENTED, "the CUDA backend implements no kernel"
