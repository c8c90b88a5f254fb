"""``fastgrad.cuda``: PyTorch's ``torch.cuda`` queries, answered for this build.

CUDA is available when CUDA arrays are registered (:func:`fastgrad.device.register_arrays`):
CuPy's, registered on the first question about CUDA where CuPy and an NVIDIA GPU are
(:mod:`fastgrad.backends.cupy_arrays`). Without them ``is_available()`` is False and
``device_count()`` is 0, so the idiom ``device = "cuda" if fastgrad.cuda.is_available() else
"cpu"`` picks the CPU. Seeding is harmless, as in PyTorch without a GPU (there is no CUDA
generator to seed); what needs a GPU (``synchronize``, ``current_device``) raises, without
one, the RuntimeError that putting a tensor on a CUDA device raises
(:func:`fastgrad.device.resolve`).
"""
from .device import device_arrays_of as _device_arrays_of
from .device import device_count as _device_count
from .device import cuda_device as _cuda_device
from .device import resolve as _resolve
from .random import check_seed as _check_seed


def is_available():
    """True when tensors can live on a CUDA device (when CUDA arrays are registered:
    :func:`fastgrad.device.register_arrays`)."""
    return _device_count("cuda") > 0


def device_count():
    """The number of CUDA devices this build can use (0 without CUDA arrays)."""
    return _device_count("cuda")


def manual_seed(seed):
    """Seed the current CUDA device's generator: nothing to seed here, so only ``seed`` is
    checked (PyTorch's call is likewise harmless without a GPU)."""
    _check_seed(seed)


def manual_seed_all(seed):
    """Seed every CUDA device's generator: see :func:`manual_seed`."""
    _check_seed(seed)


def empty_cache():
    """Release the CUDA caching allocator's unused memory: there is none, so nothing to do
    (PyTorch's call does nothing without a GPU either)."""


def synchronize(device=None):
    """Wait until the work queued on a CUDA device is done (its kernels run asynchronously).

    Raises:
        RuntimeError: no CUDA device is available.
    """
    _device_arrays_of(_resolve(_cuda_device(device))).synchronize()


def current_device():
    """The index of the current CUDA device (0: fastgrad does not switch devices).

    Raises:
        RuntimeError: no CUDA device is available.
    """
    _resolve(_cuda_device())
    return 0
