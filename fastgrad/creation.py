"""Tensor factories: zeros, ones, full, arange, rand, randn (PyTorch's names and defaults)."""
import numpy as np

from . import dtypes
from . import random as _random
from .ops import _shape_argument
from .tensor import Tensor


def _make(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _float_dtype(dtype):
    return dtypes.default_float if dtype is None else dtypes.resolve(dtype)


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype``)."""
    return _make(np.zeros(_shape_argument(size), _float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones of shape ``size`` (float32 unless ``dtype``)."""
    return _make(np.ones(_shape_argument(size), _float_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor of shape ``size`` filled with ``fill_value``."""
    if dtype is None:
        dtype = dtypes.bool_ if isinstance(fill_value, bool) else \
            dtypes.int64 if isinstance(fill_value, int) else dtypes.default_float
    return _make(np.full(_shape_argument((size,)), fill_value, dtypes.resolve(dtype)),
                 requires_grad)


def zeros_like(input, dtype=None, requires_grad=False):
    return _make(np.zeros(input.shape, dtype or input.dtype), requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    return _make(np.ones(input.shape, dtype or input.dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = dtypes.int64 if integral else dtypes.default_float
    return _make(np.arange(start, end, step, dtype=dtypes.resolve(dtype)), requires_grad)


def rand(*size, dtype=None, generator=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator."""
    values = _random.numpy_generator(generator).random(_shape_argument(size))
    return _make(values.astype(_float_dtype(dtype)), requires_grad)


def randn(*size, dtype=None, generator=None, requires_grad=False):
    """Standard normal samples from the seeded generator."""
    values = _random.numpy_generator(generator).standard_normal(_shape_argument(size))
    return _make(values.astype(_float_dtype(dtype)), requires_grad)
