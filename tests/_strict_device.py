"""A device that refuses hidden host round trips, standing in for CUDA in the tests.

``StrictArray`` wraps a NumPy array as CuPy's arrays wrap device memory, and behaves as they do
towards NumPy: ufuncs and NumPy functions given one run on it through NumPy's dispatch
protocols (``__array_ufunc__``, NEP 13; ``__array_function__``, NEP 18) and give StrictArrays,
reductions give 0-d arrays rather than scalars, and what CuPy refuses fails here too: an
implicit conversion to a NumPy array (``np.asarray(x)``: CuPy's "Implicit conversion to a NumPy
array is not allowed") and a NumPy array mixed into a device operation. So a fastgrad code path
that would copy a CUDA tensor's values to the host, or read host values into a CUDA
computation, without saying so fails a test on a machine without a GPU.

The :func:`strict_cuda` fixture (tests/conftest.py) registers StrictArray as the arrays of the
``"cuda"`` device type for one test.
"""
import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class HostRoundTrip(TypeError):
    """A device array met host memory without an explicit copy."""


class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array on the stand-in device (see the module docstring)."""

    __slots__ = ("_a", "__weakref__")  # weakly referable, as CuPy's arrays are

    #: How many StrictArrays were made: a test of code meant to run on the device checks
    #: that it did.
    made = 0

    def __init__(self, array):
        if type(array) is not np.ndarray:
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array).__name__}")
        self._a = array
        StrictArray.made += 1

    def __array__(self, dtype=None, copy=None):
        raise HostRoundTrip("implicit conversion of a device array to a NumPy array (a hidden "
                            "device-to-host copy)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if method == "at":  # ufunc.at(a, indices, b): the indices may be the user's host ones
            a, indices, *rest = inputs
            getattr(ufunc, method)(_unwrap(a), _unwrap_index(indices), *_unwrap(rest))
            return None
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        out = kwargs.get("out")
        result = func(*_unwrap(args), **_unwrap(kwargs))
        return out if out is not None else _wrap(result)

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ & co: no silent host view
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):
            return lambda *args, **kwargs: _wrap(value(*_unwrap(args), **_unwrap(kwargs)))
        return _wrap(value)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap_index(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap_index(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    #: How many single values were read on the host (``bool``, ``float``, ``int``, an index):
    #: CuPy allows these, each a synchronisation with the device; tests count them.
    host_reads = 0

    def __bool__(self):
        StrictArray.host_reads += 1
        return bool(self._a)

    def __float__(self):
        StrictArray.host_reads += 1
        return float(self._a)

    def __int__(self):
        StrictArray.host_reads += 1
        return int(self._a)

    def __index__(self):
        StrictArray.host_reads += 1
        return self._a.__index__()

    def __repr__(self):
        return f"StrictArray({self._a!r})"


def _unwrap(value):
    """StrictArrays to their NumPy arrays, inside tuples, lists and dicts; a NumPy array is a
    HostRoundTrip (host values in a device operation)."""
    if type(value) is StrictArray:
        return value._a
    if isinstance(value, np.ndarray):
        raise HostRoundTrip(f"a host array of shape {value.shape} in a device operation")
    if type(value) in (tuple, list):
        return type(value)(_unwrap(v) for v in value)
    if type(value) is dict:
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _unwrap_index(index):
    """An index: device arrays unwrapped; host integer and bool arrays allowed, as CuPy takes
    them (the user's own index, copied to the device)."""
    if isinstance(index, np.ndarray):
        return index
    if type(index) is tuple:
        return tuple(_unwrap_index(i) for i in index)
    return _unwrap(index)


def _wrap(value):
    """NumPy arrays and scalars to StrictArrays (0-d for a scalar, as CuPy's reductions give),
    inside tuples and lists."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if type(value) in (tuple, list):
        return type(value)(_wrap(v) for v in value)
    return value


def to_host(array):
    return array._a.copy()


def from_host(array, index):
    return StrictArray(np.array(array, copy=True))


# ------------------------------------------------- the CUDA kernels, in Numba's simulator
def simulated_kernels():
    """The kernel table of :mod:`fastgrad.backends.numba_cuda` for StrictArrays, run in
    Numba's CUDA simulator (whose device arrays wrap NumPy arrays, as StrictArray does): the
    stand-in device with the CUDA backend's kernels instead of the reference's. Its matrix
    products go through the library product CuPy's arrays take
    (:mod:`fastgrad.backends.cupy_arrays`), with NumPy's on the simulated memory standing in
    for cuBLAS; the tiled product kernel, which the simulator runs a thousand times slower,
    has its own tests (test_cuda_kernels.py)."""
    from numba import cuda
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    from fastgrad.backends import numba_cuda
    from fastgrad.backends.device_kernels import DeviceKernels

    return DeviceKernels(numba_cuda, StrictArray, to_kernel=lambda a: FakeCUDAArray(a._a),
                         from_kernel=lambda a: StrictArray(a._ary), upload=cuda.to_device,
                         overrides=numba_cuda.product_kernels(numba_cuda.library_product(
                             lambda a: a._ary, np.matmul)))
