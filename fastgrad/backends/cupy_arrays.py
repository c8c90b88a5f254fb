"""CUDA tensors: CuPy's arrays, registered as the ``"cuda"`` device's arrays.

:mod:`fastgrad.device` imports this module the first time a program asks about CUDA
(``fastgrad.cuda.is_available()``, ``device="cuda"``, ``.cuda()``), never at ``import
fastgrad``; an ImportError here (CuPy not installed: ``pip install fastgrad[cuda]``; no GPU;
Numba's simulator chosen) is the reason CUDA is unavailable, quoted in the error that asking
for it raises.

:func:`register` gives :func:`fastgrad.device.register_arrays` CuPy's arrays with their
explicit copies (``cupy.asnumpy``, ``cupy.asarray`` on a chosen device) and a kernel table
(:class:`~fastgrad.backends.device_kernels.DeviceKernels`) of the numba-cuda kernels
(:mod:`fastgrad.backends.numba_cuda`), whose matrix products run in cuBLAS through CuPy
(``cupy.matmul``; TensorFloat-32 stays off unless the user sets ``CUPY_TF32=1``): the ops
outside the kernels run as CuPy's own through NumPy's dispatch protocols. A CuPy array
reaches a numba-cuda kernel as a view of its memory without a synchronisation (both libraries
queue on the default stream, so their work stays in order).
"""
import cupy
from numba import cuda

from ..device import register_arrays
from . import numba_cuda
from .device_kernels import DeviceKernels

if numba_cuda.SIMULATED:
    raise ImportError("CuPy's arrays need the CUDA driver, not Numba's simulator "
                      "(NUMBA_ENABLE_CUDASIM=1 is set)")


def _to_kernel(array):
    """A numba device array over ``array``'s memory (kept alive by it), without waiting."""
    return cuda.as_cuda_array(array, sync=False)


def _from_host(array, index):
    """A CuPy copy of the NumPy ``array`` on CUDA device ``index`` (None: the current)."""
    if index is None:
        return cupy.asarray(array)
    with cupy.cuda.Device(index):
        return cupy.asarray(array)


def register():
    """Register CuPy's arrays as the arrays of the ``"cuda"`` device type.

    Raises:
        RuntimeError: no CUDA device is visible (CuPy's CUDARuntimeError, re-raised with the
            reason).
    """
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise RuntimeError(f"CuPy sees no CUDA device: {error}") from None
    if count == 0:
        raise RuntimeError("CuPy sees no CUDA device")
    kernels = DeviceKernels(numba_cuda, cupy.ndarray, to_kernel=_to_kernel,
                            from_kernel=cupy.asarray, upload=cuda.to_device,
                            overrides=numba_cuda.product_kernels(
                                numba_cuda.library_product(cupy.asarray, cupy.matmul)))
    register_arrays(cupy.ndarray, "cuda", to_host=cupy.asnumpy, from_host=_from_host,
                    index_of=lambda array: array.device.id,
                    device_count=cupy.cuda.runtime.getDeviceCount,
                    synchronize=cupy.cuda.runtime.deviceSynchronize, kernels=kernels)
