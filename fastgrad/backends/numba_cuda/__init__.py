"""The CUDA backend: the registry's kernels in numba-cuda, on device arrays.

Each kernel has the reference's name and signature (:mod:`fastgrad.backends.numpy_ref`) and
takes device arrays: anything with ``__cuda_array_interface__`` (numba's device arrays, CuPy's
arrays), allocated by the caller, as on the host. Python numbers stay Python numbers. What the
reference returns as a Python float (a total norm) comes back as a one-element device array,
so that a training step never waits for the device to answer: the clip decision, for one, is
taken on the device (:func:`clip_grad_norm`).

The kernels made of matrix products (``gemm``, ``linear_fwd``, ``linear_bwd``) run them in a
tiled kernel of their own; :func:`product_kernels` builds them around a vendor library's
product instead (:func:`library_product`: cuBLAS through CuPy, see
:mod:`fastgrad.backends.cupy_arrays`).

Every kernel is a grid-stride loop launched through :mod:`._launch` (the one place for launch
configuration); a reduction writes one partial per block and a second, one-block kernel
combines the partials in block order: no floating-point atomics, so results are the same on
every run. Compiled kernels are cached on disk (``cache=True``).

This module imports only where a CUDA device is usable: a GPU, or Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Numba is first imported, as the tests do). It is not
in the host backends' order (:data:`fastgrad.backends.DEFAULT_ORDER`): host arrays never reach
it; CUDA tensors' arrays do, through their kernel table
(:class:`fastgrad.backends.device_kernels.DeviceKernels`, made by
:mod:`fastgrad.backends.cupy_arrays`).
"""
from numba import cuda

if not cuda.is_available():
    raise ImportError("no usable CUDA device (set NUMBA_ENABLE_CUDASIM=1 before Numba is "
                      "imported to run the kernels in Numba's simulator)")

from ._launch import SIMULATED  # noqa: E402,F401
# each module's __all__: the kernels it implements
from ._arena import *  # noqa: E402,F401,F403
from ._optim import *  # noqa: E402,F401,F403
from ._layers import *  # noqa: E402,F401,F403
from ._pool import *  # noqa: E402,F401,F403
from ._gemm import *  # noqa: E402,F401,F403
from ._conv import *  # noqa: E402,F401,F403
from ._gemm import library_product, product_kernels, tiled_product  # noqa: E402,F401
