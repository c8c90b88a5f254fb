"""Devices: where a tensor's values live, named as PyTorch names them (``"cpu"``, ``"cuda:0"``).

:class:`device` parses PyTorch's forms. Which devices this build can hold tensors on is decided
here and only here: :func:`available_types` lists them, and :func:`resolve` turns a
``device=`` argument into one of them or raises a RuntimeError that names the device and says
why. Creation functions, ``Tensor.to``, ``Module.to`` and :mod:`fastgrad.cuda` all ask these.

A tensor's values are a NumPy array on the CPU, and an array of the device's own library
elsewhere (CuPy's on CUDA), registered here with :func:`register_arrays`: its device type and
the two explicit copies to and from host memory. The core computes on either through NumPy's
dispatch protocols, which CuPy implements: a ufunc (``np.exp(x)``) or a NumPy function
(``np.sum(x)``, ``np.zeros_like(x)``) given a device array runs the device library's
(``__array_ufunc__``, NEP 13; ``__array_function__``, NEP 18), so the same op code serves
every device, at no cost on the CPU path. What those protocols cannot dispatch (a new array
from a shape alone, ``np.asarray`` of a result, ``np.ascontiguousarray``) goes through
:func:`zeros`, :func:`empty`, :func:`full`, :func:`array_of` and :func:`contiguous`, which
take the device from an input array. Kernels: the CPU backends hand a call on device arrays
to the device's kernel table (:class:`DeviceArrays`), the reference kernels unless the device
brings its own. Only registered types are device arrays; a device type with registered arrays
is available. The tests register a stand-in device whose arrays refuse every implicit host
copy (tests/_strict_device.py), so a hidden host round trip fails CI without a GPU.

Inside fastgrad, import names from this module (``from .device import resolve``), never the
module itself (``from . import device``): the package attribute ``fastgrad.device`` is the
class, as ``torch.device`` is.
"""
import importlib
import operator

import numpy as np

#: Every device type PyTorch's parser knows. A device of any of them can be named
#: (``fastgrad.device("mps")`` is a valid object, as in PyTorch); only :func:`available_types`
#: can hold tensors.
KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
               "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
               "privateuseone")

#: Registered device arrays: array type -> :class:`DeviceArrays` (see :func:`register_arrays`).
_ARRAYS = {}

#: The module that registers a device type's arrays (its ``register()``), imported the first
#: time a program asks about that type (:func:`_offer`): never by ``import fastgrad``.
_PROVIDERS = {"cuda": "fastgrad.backends.cupy_arrays"}
#: Device type -> why its provider registered nothing ("" when it did), once it was tried.
_OFFERED = {}


class DeviceArrays:
    """How fastgrad holds values on a device: the array type, its device type, and the copies
    between it and host memory.

    Attributes:
        array_type: the device library's array class (``cupy.ndarray``).
        device_type: the device type its arrays live on (``"cuda"``).
        to_host: ``to_host(array)`` -> a new NumPy array with the values.
        from_host: ``from_host(array, index)`` -> a new device array on device ``index``
            (None: the current one) with the NumPy array's values.
        index_of: ``index_of(array)`` -> the index of the device holding ``array``.
        device_count: ``device_count()`` -> how many devices of the type there are.
        synchronize: ``synchronize()`` waits until the work queued on the current device is
            done (``fastgrad.cuda.synchronize``).
        kernels: the device's kernel table (an object with a function per registry kernel,
            as a backend module), or None: the reference kernels
            (:mod:`fastgrad.backends.numpy_ref`), which compute on device arrays through
            NumPy's dispatch protocols. The CPU backends hand a call on device arrays to it.
    """

    __slots__ = ("array_type", "device_type", "to_host", "from_host", "index_of",
                 "device_count", "synchronize", "kernels")

    def __init__(self, array_type, device_type, to_host, from_host, index_of, device_count,
                 synchronize, kernels):
        self.array_type, self.device_type = array_type, device_type
        self.to_host, self.from_host, self.index_of = to_host, from_host, index_of
        self.device_count, self.synchronize, self.kernels = device_count, synchronize, kernels


def register_arrays(array_type, device_type, to_host, from_host, index_of=lambda array: 0,
                    device_count=lambda: 1, synchronize=lambda: None, kernels=None):
    """Let tensors hold ``array_type`` arrays, as values on ``device_type`` devices (see
    :class:`DeviceArrays` for the arguments); the type becomes available to :func:`resolve`.

    Raises:
        ValueError: ``device_type`` is not a known device type, or is ``"cpu"``.
    """
    if device_type not in KNOWN_TYPES or device_type == "cpu":
        raise ValueError(f"device_type must be a non-CPU device type, got {device_type!r}")
    _ARRAYS[array_type] = DeviceArrays(array_type, device_type, to_host, from_host, index_of,
                                       device_count, synchronize, kernels)


def unregister_arrays(array_type):
    """Undo :func:`register_arrays` for ``array_type`` (tensors holding them stay as they are
    but can no longer be made)."""
    _ARRAYS.pop(array_type, None)


def _offer(device_type):
    """Let ``device_type``'s provider (:data:`_PROVIDERS`) register its arrays, once: the
    first question about that type imports it (CuPy's arrays for ``"cuda"``); why it could
    not is kept for :func:`resolve`'s error."""
    if device_type in _PROVIDERS and device_type not in _OFFERED:
        _OFFERED[device_type] = ""
        try:
            importlib.import_module(_PROVIDERS[device_type]).register()
        except Exception as error:  # a missing library or device is a reason, not a crash
            _OFFERED[device_type] = f"{type(error).__name__}: {error}"


def why_unavailable(device_type):
    """Why tensors cannot live on ``device_type`` devices (its provider's failure, e.g. CuPy
    not installed), or None when they can."""
    if device_count(device_type) > 0:
        return None
    return _OFFERED.get(device_type) or f"no {device_type} arrays are registered"


def device_count(device_type):
    """How many devices of ``device_type`` (not the CPU) tensors can live on."""
    _offer(device_type)
    counts = [a.device_count() for a in _ARRAYS.values() if a.device_type == device_type]
    return max(counts, default=0)


def available_types():
    """The device types this build can hold tensors on: the CPU, and those with registered
    arrays."""
    return ("cpu",) + tuple(dict.fromkeys(a.device_type for a in _ARRAYS.values()))


def device_arrays_of(where):
    """The :class:`DeviceArrays` of the device ``where`` (a resolved :class:`device`, not the
    CPU)."""
    return next(a for a in _ARRAYS.values() if a.device_type == where.type)


def device_arrays(value):
    """The :class:`DeviceArrays` of ``value``'s type, or None (a NumPy array, or no array).
    A CUDA array (one with ``__cuda_array_interface__``) of a type not registered yet lets
    CUDA's provider register first (CuPy's arrays given before any question about CUDA)."""
    arrays = _ARRAYS.get(type(value))
    if arrays is None and "cuda" not in _OFFERED and type(value) is not np.ndarray \
            and hasattr(value, "__cuda_array_interface__"):
        _offer("cuda")
        arrays = _ARRAYS.get(type(value))
    return arrays


def arrays_among(values):
    """The :class:`DeviceArrays` of the first device array among ``values`` (a kernel's
    arguments), or None when there is none."""
    for value in values:
        arrays = _ARRAYS.get(type(value))
        if arrays is not None:
            return arrays
    return None


def array_device(array):
    """The :class:`device` holding ``array`` (a NumPy or registered device array)."""
    arrays = _ARRAYS.get(type(array))
    if arrays is None:
        return CPU
    return device(arrays.device_type, arrays.index_of(array))


def is_on(array, where):
    """True when ``array`` lives on the device ``where`` (a resolved :class:`device`; one
    without an index means any device of its type)."""
    here = array_device(array)
    return here == where or (where.index is None and here.type == where.type)


def is_array(value):
    """True for a NumPy array and for a registered device array."""
    return isinstance(value, np.ndarray) or type(value) in _ARRAYS


def array_of(value):
    """``value`` as an array: a NumPy or device array as it is, anything else (the NumPy
    scalar an op on 0-d arrays gives, where a device library gives a 0-d array) through
    ``np.asarray``."""
    if type(value) is np.ndarray or type(value) in _ARRAYS:
        return value
    return np.asarray(value)


def contiguous(array):
    """``array`` in C order: itself when it is, else a C-order copy on its device
    (``np.ascontiguousarray``, which NumPy does not dispatch, would copy a device array to
    the host)."""
    if array.flags.c_contiguous:
        return array
    if type(array) is np.ndarray:
        return np.ascontiguousarray(array)
    return array.copy(order="C")


def zeros(shape, dtype, like):
    """Zeros of ``shape`` and ``dtype`` on the device of the array ``like``."""
    if type(like) is np.ndarray:
        return np.zeros(shape, dtype)
    return np.zeros_like(like, dtype=dtype, shape=shape)


def empty(shape, dtype, like):
    """An uninitialised array of ``shape`` and ``dtype`` on the device of the array ``like``."""
    if type(like) is np.ndarray:
        return np.empty(shape, dtype)
    return np.empty_like(like, dtype=dtype, shape=shape)


def full(shape, value, dtype, like):
    """``value`` in every element of a ``shape`` array of ``dtype`` on ``like``'s device."""
    if type(like) is np.ndarray:
        return np.full(shape, value, dtype)
    return np.full_like(like, value, dtype=dtype, shape=shape)


def to_host(array):
    """``array``'s values in host memory: the array itself when it is a NumPy array, else a
    NumPy copy (the explicit device-to-host copy)."""
    arrays = _ARRAYS.get(type(array))
    return array if arrays is None else arrays.to_host(array)


def to_device(array, where):
    """``array`` (NumPy or device) on the device ``where`` (a resolved :class:`device`): the
    array itself when it is there already, else a copy there."""
    if is_on(array, where):
        return array
    host = to_host(array)
    if where.type == "cpu":
        return host
    if where.type not in available_types():
        raise RuntimeError(f"device {str(where)!r} holds no arrays in this build")
    return device_arrays_of(where).from_host(host, where.index)


def to_device_of(host_array, like):
    """The NumPy ``host_array`` on the device of the array ``like``: itself when that is the
    CPU, else an explicit copy there (what fastgrad makes on the host, e.g. random draws from
    its one generator, going to a device tensor)."""
    if type(like) is np.ndarray:
        return host_array
    return to_device(host_array, array_device(like))


def check_same_device(arrays, what="tensors"):
    """PyTorch's RuntimeError when ``arrays`` live on more than one device (checked on their
    types: NumPy arrays and one device library's arrays do not mix)."""
    first = type(arrays[0])
    for other in arrays[1:]:
        if type(other) is not first:
            devices = [str(array_device(a)) for a in (arrays[0], other)]
            raise RuntimeError(f"Expected all {what} to be on the same device, but found at "
                               f"least two devices, {devices[0]} and {devices[1]}!")


class device:
    """A device, as ``torch.device``: ``device("cpu")``, ``device("cuda")`` (the current CUDA
    device), ``device("cuda:1")``, ``device("cuda", 1)``, ``device(1)`` (CUDA device 1) or
    ``device(other_device)``.

    Naming a device does not check that this build can use it (PyTorch's objects behave the
    same); putting a tensor there does (:func:`resolve`).

    Attributes:
        type: the device type, ``"cpu"`` or ``"cuda"``...
        index: the device's index, or None when none was given.

    Raises:
        RuntimeError: an unknown device type or a malformed string (PyTorch's messages), or a
            negative index.
        TypeError: ``type`` is not a str, an int or a device.
    """

    __slots__ = ("_index", "_type")

    def __init__(self, type, index=None):
        self._type, self._index = _parse(type, index)

    @property
    def type(self):
        return self._type

    @property
    def index(self):
        return self._index

    def __eq__(self, other):
        if not isinstance(other, device):
            return NotImplemented
        return self._type == other._type and self._index == other._index

    def __hash__(self):
        return hash((self._type, self._index))

    def __str__(self):
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self):
        if self._index is None:
            return f"device(type={self._type!r})"
        return f"device(type={self._type!r}, index={self._index})"

    def __reduce__(self):
        return device, (self._type, self._index)


def _parse(spec, index):
    """``(type, index)`` from ``device()``'s arguments."""
    if isinstance(spec, device) or _is_int(spec):
        if index is not None:
            raise TypeError(f"device() takes an index only after a type string, got "
                            f"{spec!r} and index {index!r}")
        return (spec.type, spec.index) if isinstance(spec, device) else ("cuda", _index(spec))
    if not isinstance(spec, str):
        raise TypeError(f"device() takes a str, an int or a device, got "
                        f"{type(spec).__name__} {spec!r}")
    name, colon, number = spec.partition(":")
    if name not in KNOWN_TYPES:
        raise RuntimeError(f"Expected one of {', '.join(KNOWN_TYPES)} device type at start of "
                           f"device string: {spec}")
    if not colon:
        return name, None if index is None else _index(index)
    if index is not None:
        raise RuntimeError(f"type (string) must not include an index because index was passed "
                           f"explicitly: {spec}")
    if not (number.isascii() and number.isdigit()) or (len(number) > 1 and number[0] == "0"):
        raise RuntimeError(f"Invalid device string: {spec!r}")
    return name, int(number)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _index(value):
    if not _is_int(value):
        raise TypeError(f"device index must be an int, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if value < 0:
        raise RuntimeError(f"device index must not be negative, got {value}")
    return value


#: The CPU: the device of every tensor in this build.
CPU = device("cpu")


def resolve(value, argument="device"):
    """The device a tensor asked to live on ``value`` lives on.

    Args:
        value: None (the default device, the CPU), a :class:`device`, a device string or an
            int (a CUDA device index).
        argument: how to name ``value`` in errors.

    Returns:
        A :class:`device` whose type is in :func:`available_types` (any index of the CPU is
        the one CPU, as in PyTorch).

    Raises:
        RuntimeError: ``value`` names a device this build cannot hold tensors on, or is a
            malformed device string.
    """
    if value is None:
        return CPU
    if not isinstance(value, device):
        value = device(value)
    if value.type not in available_types():
        _offer(value.type)
    if value.type not in available_types():
        if value.type == "cuda":
            why = (f"this build of fastgrad has no CUDA backend (fastgrad.cuda.is_available() "
                   f"is False) because {why_unavailable('cuda')}: CUDA tensors need an NVIDIA "
                   f"GPU and the cuda extra (pip install fastgrad[cuda])")
        else:
            why = f"fastgrad holds tensors on {', '.join(available_types())} only"
        raise RuntimeError(f"{argument} {str(value)!r} is not available: {why}; use 'cpu'")
    return CPU if value.type == "cpu" else value


def cuda_device(value=None):
    """The CUDA device ``Tensor.cuda(device)`` and ``Module.cuda(device)`` name: the current
    one for None, ``cuda:N`` for an int N (not yet checked to be usable: :func:`resolve`).

    Raises:
        RuntimeError: ``value`` names a device that is not a CUDA device.
    """
    if value is None:
        return device("cuda")
    value = value if isinstance(value, device) else device(value)
    if value.type != "cuda":
        raise RuntimeError(f"Invalid device, must be cuda device, got {value}")
    return value
