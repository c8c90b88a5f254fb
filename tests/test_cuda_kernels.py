"""The CUDA backend's kernels against the NumPy reference: every variant of every kernel that
``fastgrad.backends.numba_cuda`` implements, float32 and float64, on the registry's smallest
example, run on device arrays. Without a GPU they run in Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, set by conftest.py before Numba is imported); on a GPU machine
``NUMBA_ENABLE_CUDASIM=0`` runs them for real (bench/gpu_check.sh)."""
import copy

import numpy as np
import pytest

from fastgrad.backends import ACTIVATIONS, KERNELS

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


def test_one_running_statistic_without_the_other_is_refused_before_the_launch():
    """The kernel would update a stand-in for the missing one (the input itself)."""
    x = cuda.to_device(np.ones((2, 3, 1), np.float32))
    stats = [cuda.device_array(3, np.float64) for _ in range(3)]
    with pytest.raises(ValueError, match="got only running_mean"):
        numba_cuda.batchnorm_fwd(x, None, None, 1e-5, ACTIVATIONS["none"],
                                 cuda.to_device(np.zeros(3, np.float32)), None, 0.1, *stats,
                                 cuda.device_array((2, 3, 1), np.float32))
    np.testing.assert_array_equal(x.copy_to_host(), 1.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", [a for a in ACTIVATIONS if a != "none"], ids=str)
def test_batchnorm_fused_activation_is_the_separate_kernels_bit_for_bit(activation, dtype):
    """batchnorm_fwd with an activation writes what batchnorm_fwd without one followed by
    activation_fwd writes, and batchnorm_bwd with it what activation_bwd followed by
    batchnorm_bwd without it (``out`` None) writes: the same bits, not only close."""
    code, none = ACTIVATIONS[activation], ACTIVATIONS["none"]
    rng = np.random.default_rng(_seed("batchnorm-fused", activation, np.dtype(dtype).name))
    for shape in [(3, 2, 5)]:  # the simulator is slow; one block per channel at any shape
        channels = shape[1]
        x = cuda.to_device((2 * rng.standard_normal(shape) + 1).astype(dtype))
        weight = cuda.to_device(rng.uniform(0.5, 1.5, channels).astype(dtype))
        bias = cuda.to_device(rng.standard_normal(channels).astype(dtype))
        grad_out = cuda.to_device(rng.standard_normal(shape).astype(dtype))

        fused = [cuda.device_array(channels, np.float64) for _ in range(3)]  # mean, var, invstd
        separate = [cuda.device_array(channels, np.float64) for _ in range(3)]
        out, normalised, activated = (cuda.device_array(shape, dtype) for _ in range(3))
        numba_cuda.batchnorm_fwd(x, weight, bias, 1e-5, code, None, None, 0.1, *fused, out)
        numba_cuda.batchnorm_fwd(x, weight, bias, 1e-5, none, None, None, 0.1, *separate,
                                 normalised)
        numba_cuda.activation_fwd(normalised, code, activated)
        for name, ours, theirs in zip(("mean", "var", "invstd", "out"), fused + [out],
                                      separate + [activated]):
            np.testing.assert_array_equal(ours.copy_to_host(), theirs.copy_to_host(),
                                          err_msg=f"{shape}: {name}")

        mean, _, invstd = fused
        grads = [cuda.device_array(shape, dtype), cuda.device_array(channels, dtype),
                 cuda.device_array(channels, dtype)]  # grad_x, grad_weight, grad_bias
        expected = [cuda.device_array(array.shape, dtype) for array in grads]
        dy = cuda.device_array(shape, dtype)
        numba_cuda.batchnorm_bwd(grad_out, x, weight, mean, invstd, out, code, *grads)
        numba_cuda.activation_bwd(grad_out, out, code, dy)
        numba_cuda.batchnorm_bwd(dy, x, weight, mean, invstd, None, none, *expected)
        for name, ours, theirs in zip(("grad_x", "grad_weight", "grad_bias"), grads, expected):
            np.testing.assert_array_equal(ours.copy_to_host(), theirs.copy_to_host(),
                                          err_msg=f"{shape}: {name}")
