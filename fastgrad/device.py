"""Devices: where a tensor's values live, named as PyTorch names them (``"cpu"``, ``"cuda:0"``).

:class:`device` parses PyTorch's forms. Which devices this build can hold tensors on is decided
here and only here: :data:`AVAILABLE_TYPES` lists them (the CPU today), and :func:`resolve`
turns a ``device=`` argument into one of them or raises a RuntimeError that names the device
and says why. Creation functions, ``Tensor.to``, ``Module.to`` and :mod:`fastgrad.cuda` all ask
these, so a CUDA backend adds its type here without changing any signature.

Inside fastgrad, import names from this module (``from .device import resolve``), never the
module itself (``from . import device``): the package attribute ``fastgrad.device`` is the
class, as ``torch.device`` is.
"""
import operator

import numpy as np

#: Every device type PyTorch's parser knows. A device of any of them can be named
#: (``fastgrad.device("mps")`` is a valid object, as in PyTorch); only :data:`AVAILABLE_TYPES`
#: can hold tensors.
KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
               "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
               "privateuseone")

#: The device types this build can hold tensors on.
AVAILABLE_TYPES = ("cpu",)


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
        A :class:`device` whose type is in :data:`AVAILABLE_TYPES` (any index of the CPU is
        the one CPU, as in PyTorch).

    Raises:
        RuntimeError: ``value`` names a device this build cannot hold tensors on, or is a
            malformed device string.
    """
    if value is None:
        return CPU
    if not isinstance(value, device):
        value = device(value)
    if value.type not in AVAILABLE_TYPES:
        if value.type == "cuda":
            why = ("this build of fastgrad has no CUDA backend "
                   "(fastgrad.cuda.is_available() is False)")
        else:
            why = f"fastgrad holds tensors on {', '.join(AVAILABLE_TYPES)} only"
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
