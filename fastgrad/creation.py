"""Tensor factories: zeros, ones, full, arange, rand, randn (PyTorch's names and defaults)."""
import math
import numbers

import numpy as np

from . import dtypes
from . import random as _random
from .ops import _shape_argument
from .tensor import Tensor


def _make(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _size(size):
    """``size`` (ints, or one tuple or list of them) as a shape; PyTorch's RuntimeError for a
    negative size."""
    shape = _shape_argument(size, "size")
    if any(s < 0 for s in shape):
        raise RuntimeError(f"size must not be negative, got {list(shape)}")
    return shape


def _dtype(dtype, default=dtypes.default_float, floating=False):
    """``dtype`` (``default`` when None) checked to be one a Tensor holds: floating only for
    random samples."""
    dtype = default if dtype is None else dtypes.resolve(dtype)
    if dtype.kind not in ("f" if floating else "biuf"):
        kinds = "a floating" if floating else "a bool, integer or floating"
        raise TypeError(f"dtype must be {kinds} dtype, got {dtype}")
    return dtype


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype``)."""
    return _make(np.zeros(_size(size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones of shape ``size`` (float32 unless ``dtype``)."""
    return _make(np.ones(_size(size), _dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor of shape ``size`` filled with ``fill_value`` (its dtype follows the value, as
    in PyTorch: bool, int64 or float32, unless ``dtype``)."""
    if not isinstance(fill_value, (numbers.Real, np.bool_)):
        raise TypeError(f"fill_value must be a number, got {type(fill_value).__name__} "
                        f"{fill_value!r}")
    if dtype is None:
        dtype = dtypes.bool_ if isinstance(fill_value, (bool, np.bool_)) else \
            dtypes.int64 if isinstance(fill_value, numbers.Integral) else dtypes.default_float
    dtype = _dtype(dtype)
    shape = _size((size,))
    if dtype.kind in "iu" and not isinstance(fill_value, (bool, np.bool_)):
        info = np.iinfo(dtype)
        if not (math.isfinite(fill_value) and info.min <= fill_value <= info.max):
            raise RuntimeError(f"fill_value {fill_value!r} cannot be converted to dtype {dtype} "
                               "without overflow")
    with np.errstate(over="ignore"):  # beyond a float dtype's range: inf, as in PyTorch
        return _make(np.full(shape, np.asarray(fill_value).astype(dtype), dtype), requires_grad)


def zeros_like(input, dtype=None, requires_grad=False):
    """Zeros of ``input``'s shape, and dtype unless ``dtype``."""
    return _make(np.zeros(_like(input).shape, _dtype(dtype, _like(input).dtype)), requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    """Ones of ``input``'s shape, and dtype unless ``dtype``."""
    return _make(np.ones(_like(input).shape, _dtype(dtype, _like(input).dtype)), requires_grad)


def _like(input):
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    return input


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments.

    Raises:
        TypeError: a bound or step that is not a real number.
        RuntimeError: a step of 0, a non-finite bound or step, or a step whose sign points
            away from ``end`` (PyTorch's checks).
    """
    if end is None:
        start, end = 0, start
    arguments = (("start", start), ("end", end), ("step", step))
    for name, value in arguments:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    for name, value in arguments:
        if not math.isfinite(value):
            raise RuntimeError(f"{name} must be finite, got {value}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign: start "
                           f"{start}, end {end}, step {step}")
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if integral else dtypes.default_float
    dtype = _dtype(dtype)
    try:
        values = np.arange(start, end, step, dtype=dtype)
    except (ValueError, MemoryError):
        raise RuntimeError(f"arange from start {start} to end {end} by step {step} has too "
                           "many elements to allocate") from None
    return _make(values, requires_grad)


def rand(*size, dtype=None, generator=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator."""
    shape, dtype = _size(size), _dtype(dtype, floating=True)
    values = _random.numpy_generator(generator).random(shape)
    return _make(values.astype(dtype), requires_grad)


def randn(*size, dtype=None, generator=None, requires_grad=False):
    """Standard normal samples from the seeded generator."""
    shape, dtype = _size(size), _dtype(dtype, floating=True)
    values = _random.numpy_generator(generator).standard_normal(shape)
    return _make(values.astype(dtype), requires_grad)
