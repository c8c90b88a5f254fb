"""The differentiable tensor operations.

Each op is a small :class:`~fastgrad.autograd.Function` (forward on arrays, backward from the
output gradient) plus the public function that validates arguments, harmonises dtypes the way
PyTorch does and applies it. Elementwise and shape ops are plain NumPy; the fused, hot work
(linear layers, losses, optimiser steps) goes through the kernel registry in
:mod:`fastgrad.backends` and lives with the layers that use it.

Where a Function lives: tensor ops (``fastgrad.*`` and Tensor methods) here, the core, and in
:mod:`~fastgrad.pointwise`, :mod:`~fastgrad.reductions`, :mod:`~fastgrad.shapes` and
:mod:`~fastgrad.linalg`; layer ops in :mod:`fastgrad.nn.functional`. Argument checks shared by
these modules are in :mod:`fastgrad._checks`.

Broadcasting follows NumPy; backward sums a gradient over the axes its input was broadcast
along, so every input receives a gradient of its own shape and dtype.
"""
import builtins
import collections
import functools
import math
import numbers
import operator
import warnings

import numpy as np

from . import dtypes
from . import tensor as _tensor  # the module (tensor.py imports ops: no `from` import here)
from ._checks import (as_operand, check_broadcast, flag, ieee, is_tensor, no_bool,
                      normalize_dim, normalize_dims, shape_argument, tensor_input)
from .autograd import Function
from .backends import ACTIVATIONS, K
from .device import (array_device, array_of, check_same_device, contiguous, empty, full,
                     is_on, zeros)
from .device import to_device as move_array


# ------------------------------------------------------------------------------------ helpers
def unbroadcast(grad, shape, dtype):
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        axes = tuple(range(extra)) + tuple(
            extra + i for i, size in enumerate(shape) if size == 1 and grad.shape[extra + i] != 1)
        grad = grad.sum(axis=axes).reshape(shape)
    return grad if grad.dtype == dtype else grad.astype(dtype)


def _binary_operands(a, b):
    """Both operands with one dtype, promoted as PyTorch does; numbers become NumPy scalars
    of that dtype (immutable: a captured step keeps them as constants)."""
    a, b = as_operand(a, "input"), as_operand(b, "other")
    if is_tensor(a) and is_tensor(b):
        if type(a._data) is not type(b._data):
            a, b = same_device(a, b)
        if a.shape != b.shape:
            check_broadcast(a.shape, b.shape)
        if a.dtype != b.dtype:
            target = dtypes.promote(a.dtype, b.dtype)
            a, b = cast(a, target), cast(b, target)
        return a, b
    if not is_tensor(a) and not is_tensor(b):
        raise TypeError(f"input or other must be a Tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    tensor_, number, swapped = (a, b, False) if is_tensor(a) else (b, a, True)
    target = dtypes.scalar_dtype(number, tensor_.dtype)
    tensor_ = cast(tensor_, target)
    try:
        # through the number's own dtype: -1 with a uint8 tensor wraps, as in PyTorch
        with np.errstate(over="ignore", invalid="ignore"):
            number = np.asarray(number).astype(target)[()]
    except OverflowError:
        raise RuntimeError(f"{'input' if swapped else 'other'} {number!r} overflows the "
                           f"dtype {target}") from None
    return (number, tensor_) if swapped else (tensor_, number)


def same_device(a, b):
    """Tensors ``a`` and ``b`` on one device: a 0-d CPU tensor goes to the other's device (it
    acts as a number, as in PyTorch); otherwise PyTorch's RuntimeError for two devices."""
    for scalar, other in ((a, b), (b, a)):
        if scalar._data.ndim == 0 and type(scalar._data) is np.ndarray:
            moved = to_device(scalar, other.device)
            return (moved, b) if scalar is a else (a, moved)
    check_same_device([a._data, b._data])
    return a, b


def _floating(x):
    """``x``, cast to the default float dtype if it is an integer or bool tensor."""
    x = tensor_input(x)
    return x if dtypes.is_floating(x.dtype) else cast(x, dtypes.default_float)


# -------------------------------------------------------------------------------- elementwise
@ieee
class Cast(Function):
    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.dtype), None


def cast(x, dtype):
    """``x`` as ``dtype``; differentiable between floating dtypes; ``x`` itself if unchanged."""
    dtype = dtypes.resolve(dtype)
    return x if x.dtype == dtype else Cast.apply(x, dtype)


class ToDevice(Function):
    """A copy on another device; the gradient comes back to the input's device."""

    def forward(self, x, where):
        self.home = array_device(x)
        return move_array(x, where)

    def backward(self, grad):
        return move_array(grad, self.home), None


def to_device(x, where):
    """``x`` on the device ``where`` (resolved); ``x`` itself when it is there already."""
    return x if is_on(x._data, where) else ToDevice.apply(x, where)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


def clone(x):
    return Clone.apply(x)


@ieee
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, grad):
        (sa, sb), dtype = self.shapes, grad.dtype
        return (unbroadcast(grad, sa, dtype) if self.needs_input_grad[0] else None,
                unbroadcast(grad, sb, dtype) if self.needs_input_grad[1] else None)


@ieee
class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, grad):
        (sa, sb), dtype = self.shapes, grad.dtype
        return (unbroadcast(grad, sa, dtype) if self.needs_input_grad[0] else None,
                unbroadcast(-grad, sb, dtype) if self.needs_input_grad[1] else None)


@ieee
class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        a, b = self.a, self.b
        return (unbroadcast(grad * b, a.shape, a.dtype) if self.needs_input_grad[0] else None,
                unbroadcast(grad * a, b.shape, b.dtype) if self.needs_input_grad[1] else None)


@ieee
class Div(Function):
    def forward(self, a, b):
        out = a / b
        self.b, self.out, self.a_shape = b, out, a.shape
        return out

    def backward(self, grad):
        b, out = self.b, self.out
        ga = unbroadcast(grad / b, self.a_shape, out.dtype) if self.needs_input_grad[0] \
            else None
        gb = unbroadcast(-grad * out / b, b.shape, out.dtype) if self.needs_input_grad[1] \
            else None
        return ga, gb


@ieee
class Pow(Function):
    def forward(self, a, b):
        out = (a ** b).astype(a.dtype, copy=False)  # NumPy gives int8 for bool ** bool
        self.a, self.b, self.out = a, b, out
        return out

    def backward(self, grad):
        a, b, out = self.a, self.b, self.out
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(grad * b * a ** (b - 1), a.shape, out.dtype)
        if self.needs_input_grad[1]:
            # d(a**b)/db = a**b * log(a); 0 where a == 0 and b >= 0, as PyTorch defines it
            log_a = np.where((a == 0) & (b >= 0), 0, np.log(np.where(a == 0, 1, a)))
            gb = unbroadcast(grad * out * log_a, b.shape, out.dtype)
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


def add(input, other):
    """``input + other`` with broadcasting."""
    return Add.apply(*_binary_operands(input, other))


def sub(input, other):
    """``input - other`` with broadcasting."""
    a, b = _binary_operands(input, other)
    if a.dtype.kind == "b":
        raise RuntimeError("sub: subtracting bool input and other is not supported (as in "
                           "PyTorch); use logical_xor or convert them with .long()")
    return Sub.apply(a, b)


def mul(input, other):
    """``input * other`` with broadcasting."""
    return Mul.apply(*_binary_operands(input, other))


def div(input, other):
    """``input / other`` with broadcasting (true division: integers give floats)."""
    a, b = _binary_operands(input, other)
    if not dtypes.is_floating(a.dtype):
        a, b = cast_operand(a), cast_operand(b)
    return Div.apply(a, b)


def cast_operand(value, dtype=None):
    """A Tensor or array operand cast to ``dtype`` (the default float dtype, read now: it
    follows :func:`fastgrad.set_default_dtype`, when None)."""
    dtype = dtypes.default_float if dtype is None else dtype
    return cast(value, dtype) if is_tensor(value) else value.astype(dtype)


def pow(input, exponent):
    """``input ** exponent`` with broadcasting; integers to negative integer powers are
    refused, as in PyTorch."""
    a, b = _binary_operands(input, exponent)
    if b.dtype.kind in "iu" and (getattr(b, "_data", b) < 0).any():
        raise RuntimeError("pow: integers to negative integer powers are not allowed, got a "
                           "negative integer exponent")
    return Pow.apply(a, b)


def neg(input):
    return Neg.apply(no_bool(input, "neg"))


@ieee
class Exp(Function):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


@ieee
class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, grad):
        return grad / self.x


@ieee
class Sqrt(Function):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


@ieee
class Abs(Function):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, grad):
        return grad * np.sign(self.x)


@ieee
class _Activation(Function):
    """An activation through the kernels the fused linear layer uses, so a Linear followed by
    its activation gives bit-identical results fused or not."""

    code = None

    def forward(self, x):
        x = contiguous(x)
        self.out = np.empty_like(x)
        K.activation_fwd(x, self.code, self.out)
        return self.out

    def backward(self, grad):
        grad_in = np.empty_like(self.out)
        K.activation_bwd(contiguous(grad), self.out, self.code, grad_in)
        return grad_in


class Tanh(_Activation):
    code = ACTIVATIONS["tanh"]


class Sigmoid(_Activation):
    code = ACTIVATIONS["sigmoid"]  # computed from exp(-|x|): no overflow for large |x|


class ReLU(_Activation):
    code = ACTIVATIONS["relu"]


def exp(input):
    return Exp.apply(_floating(input))


def log(input):
    return Log.apply(_floating(input))


def sqrt(input):
    return Sqrt.apply(_floating(input))


def abs(input):
    return Abs.apply(no_bool(input, "abs"))


def tanh(input):
    return Tanh.apply(_floating(input))


def sigmoid(input):
    """The logistic function, computed without overflow for large |input|."""
    return Sigmoid.apply(_floating(input))


def relu(input):
    input = no_bool(input, "relu")
    if not dtypes.is_floating(input.dtype):
        # integers carry no gradient; asarray: a 0-d maximum is a NumPy scalar
        return _tensor.Tensor(array_of(np.maximum(input._data, 0)))
    return ReLU.apply(input)


@ieee
class Clamp(Function):
    def forward(self, x, low, high):
        low, high = (None if v is None else _bound(v, x.dtype) for v in (low, high))
        self.inside = np.ones_like(x, dtype=bool)
        if low is not None:
            self.inside &= x >= low
        if high is not None:
            self.inside &= x <= high
        return np.clip(x, low, high)

    def backward(self, grad):
        return grad * self.inside, None, None


def _bound(value, dtype):
    """A clamp bound as a NumPy scalar of ``dtype``; for integers, limited to the dtype's
    range (the same clamp, without NumPy's overflow error)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        value = builtins.min(builtins.max(value, info.min), info.max)
    return np.asarray(value).astype(dtype)[()]


def clamp(input, min=None, max=None):
    """``input`` limited to [min, max] (``max`` wins where ``min > max``, a NaN bound gives
    NaN, as in PyTorch); the gradient flows where ``min <= input <= max``. The result dtype
    is promoted as with a Python scalar (an integer tensor and a float bound give float32)."""
    input = tensor_input(input)
    if min is None and max is None:
        raise ValueError("clamp needs at least one of min or max, got neither")
    target = input.dtype
    bounds = []
    for name, bound in (("min", min), ("max", max)):
        if bound is not None:
            if isinstance(bound, (bool, np.bool_)) or not isinstance(bound, numbers.Real):
                raise TypeError(f"{name} must be a number or None, got "
                                f"{type(bound).__name__} {bound!r}")
            bound = bound.item() if isinstance(bound, np.generic) else bound
            target = dtypes.scalar_dtype(bound, target)
        bounds.append(bound)
    return Clamp.apply(cast(input, target), *bounds)


def compare(ufunc, input, other):
    """A boolean tensor from comparing ``input`` and ``other`` elementwise (no gradient)."""
    a, b = _binary_operands(input, other)
    return _tensor.Tensor(array_of(ufunc(getattr(a, "_data", a), getattr(b, "_data", b))))


@ieee
class Where(Function):
    def forward(self, condition, x, y):
        self.condition, self.shapes = condition, (x.shape, y.shape)
        return np.where(condition, x, y)

    def backward(self, grad):
        (sx, sy), zero = self.shapes, grad.dtype.type(0)
        return (None,
                unbroadcast(np.where(self.condition, grad, zero), sx, grad.dtype)
                if self.needs_input_grad[1] else None,
                unbroadcast(np.where(self.condition, zero, grad), sy, grad.dtype)
                if self.needs_input_grad[2] else None)


def where(condition, input=None, other=None):
    """Elements of ``input`` where ``condition`` holds, else of ``other`` (broadcast).

    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``, as in PyTorch."""
    if input is None and other is None:
        condition = tensor_input(condition)
        return tuple(_tensor.Tensor(p.astype(np.int64))
                     for p in np.nonzero(np.atleast_1d(condition._data)))
    condition = condition._data if is_tensor(condition) else array_of(condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"where expects a bool condition, got dtype {condition.dtype}")
    x, y = _binary_operands(input, other)
    check_broadcast(condition.shape, x.shape, y.shape, names=("condition", "input", "other"))
    return Where.apply(condition, x, y)


# ----------------------------------------------------------------------------------- matmul
def _gemm_operands(*arrays):
    """True when the arrays are 2-D of one float dtype: their products go through the ``gemm``
    kernel, which the compiled backends run on their own threads (see
    :mod:`fastgrad.backends.blas`)."""
    return all(x.ndim == 2 and x.dtype == arrays[0].dtype for x in arrays) \
        and arrays[0].dtype.kind == "f"


def _product_2d(a, b, trans_a, trans_b):
    """``op(a) @ op(b)`` by the ``gemm`` kernel, for :func:`_gemm_operands`. A transposed
    view (``w.T``) goes in as its C-contiguous base with the flag flipped, not as a copy."""
    if not a.flags.c_contiguous and a.flags.f_contiguous:
        a, trans_a = a.T, not trans_a
    if not b.flags.c_contiguous and b.flags.f_contiguous:
        b, trans_b = b.T, not trans_b
    rows = a.shape[1] if trans_a else a.shape[0]
    cols = b.shape[0] if trans_b else b.shape[1]
    out = empty((rows, cols), a.dtype, a)
    K.gemm(contiguous(a), contiguous(b), trans_a, trans_b, False, out)
    return out


@ieee
class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return _product_2d(a, b, False, False) if _gemm_operands(a, b) else np.matmul(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        if _gemm_operands(a, b, grad):
            return (_product_2d(grad, b, False, True) if self.needs_input_grad[0] else None,
                    _product_2d(a, grad, True, False) if self.needs_input_grad[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape, a.dtype).reshape(a.shape)
        if self.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:
                # fold the batch into one GEMM instead of materialising a gradient per batch
                rows, k, m = math.prod(a2.shape[:-1]), a2.shape[-1], g.shape[-1]
                gb = a2.reshape(rows, k).T @ g.reshape(rows, m)  # no -1: sizes may be 0
            else:
                gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape, b.dtype)
            gb = gb.reshape(b.shape)
        return ga, gb


def matmul(input, other):
    """The matrix product with PyTorch's (and NumPy's) rules for 1-D and batched operands."""
    a, b = as_operand(input, "input"), as_operand(other, "other")
    if not (is_tensor(a) and is_tensor(b)):
        raise TypeError("matmul operands must be Tensors, got "
                        f"{type(input).__name__} and {type(other).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul needs operands with at least 1 dimension, got input of "
                           f"shape {a.shape} and other of shape {b.shape}")
    if a.dtype != b.dtype:
        raise RuntimeError(f"matmul operands must have the same dtype, got {a.dtype} (input) "
                           f"and {b.dtype} (other)")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise RuntimeError(f"matmul shapes cannot be multiplied: input {a.shape} and other "
                           f"{b.shape} (inner sizes {a.shape[-1]} and {inner_b} differ)")
    if a.ndim > 2 or b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise RuntimeError(f"matmul batch dimensions do not broadcast: input {a.shape} and "
                               f"other {b.shape}") from None
    return MatMul.apply(a, b)


# ------------------------------------------------------------------------------- reductions
def numpy_aliases(function):
    """Let ``function`` take NumPy's keywords ``axis`` and ``keepdims`` for ``dim`` and
    ``keepdim``, as PyTorch's native functions do (``x.sum(axis=1, keepdims=True)``)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if kwargs:
            for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{function.__name__}() got both {name}= and its "
                                        f"alias {alias}=")
                    kwargs[name] = kwargs.pop(alias)
        return function(*args, **kwargs)
    return wrapper


def result_dtype(dtype, input, name):
    """``input`` cast to a reduction's ``dtype=`` argument (PyTorch casts before reducing),
    or as it is when ``dtype`` is None."""
    if dtype is None:
        return input
    dtype = dtypes.resolve(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name}: dtype must be a bool, integer or floating dtype, got {dtype}")
    return cast(input, dtype)


def _expand_reduced(grad, shape, axes, keepdim):
    if axes is None:
        return np.broadcast_to(grad, shape)
    if not keepdim:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


@ieee
class Sum(Function):
    def forward(self, x, axes, keepdim, dtype):
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(self, grad):
        return _expand_reduced(grad, self.shape, self.axes, self.keepdim), None, None, None


@ieee
class Mean(Function):
    def forward(self, x, axes, keepdim):
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        self.count = math.prod(x.shape if axes is None else [x.shape[a] for a in axes])
        if not self.count:  # the mean of nothing is NaN (NumPy would also warn)
            return full(np.sum(x, axis=axes, keepdims=keepdim).shape, np.nan, x.dtype, x)
        return x.mean(axis=axes, keepdims=keepdim)

    def backward(self, grad):
        grad = grad / grad.dtype.type(builtins.max(self.count, 1))
        return _expand_reduced(grad, self.shape, self.axes, self.keepdim), None, None


@numpy_aliases
def sum(input, dim=None, keepdim=False, *, dtype=None):
    """The sum over ``dim`` (an int, a tuple of ints, or None or () for all elements).

    ``dtype`` casts the input first and is the result's dtype; without it integer and bool
    tensors sum to int64, as in PyTorch.
    """
    input = tensor_input(input)
    keepdim = flag(keepdim, "keepdim")
    explicit = dtype is not None
    input = result_dtype(dtype, input, "sum")
    # integers and bools sum to int64, as in PyTorch (NumPy: uint64 for unsigned)
    accumulate = np.int64 if input.dtype.kind in "biu" and not explicit else input.dtype
    return Sum.apply(input, normalize_dims(dim, input.ndim), keepdim, accumulate)


@numpy_aliases
def mean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean over ``dim`` (floating tensors, or any with a floating ``dtype`` to cast them
    to first, as in PyTorch); NaN over no element."""
    input = result_dtype(dtype, tensor_input(input), "mean")
    keepdim = flag(keepdim, "keepdim")
    if not dtypes.is_floating(input.dtype):
        raise TypeError(f"mean needs a floating input, got dtype {input.dtype}; "
                        "cast with .float() or pass dtype=")
    return Mean.apply(input, normalize_dims(dim, input.ndim), keepdim)


MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])
MinResult = collections.namedtuple("MinResult", ["values", "indices"])


@ieee
class _ExtremeAll(Function):
    """max() or min() over all elements (``function``, set by the subclass)."""

    def forward(self, x):
        self.x, self.out = x, self.function(x)
        return self.out

    def backward(self, grad):
        return evenly_distribute(grad, self.x, self.out)


class MaxAll(_ExtremeAll):
    function = staticmethod(np.max)


class MinAll(_ExtremeAll):
    function = staticmethod(np.min)


def evenly_distribute(grad, x, value):
    """The gradient of a reduction of ``x`` to one of its values (max(), min(), median() over
    all elements): shared equally by the elements equal to ``value``, or by the NaNs when it
    is NaN, as PyTorch does."""
    hits = np.isnan(x) if np.isnan(value) else x == value
    return hits * (grad / hits.sum().astype(grad.dtype))


class _ExtremeDim(Function):
    """max(x, dim) or min(x, dim): the values and int64 indices that ``arg`` (set by the
    subclass: np.argmax or np.argmin, the first index of a tie) picks along ``axis``."""

    def forward(self, x, axis, keepdim):
        indices = np.expand_dims(self.arg(x, axis=axis), axis)
        values = np.take_along_axis(x, indices, axis=axis)
        self.shape, self.axis, self.indices, self.keepdim = x.shape, axis, indices, keepdim
        if not keepdim:
            values, indices = values.squeeze(axis), indices.squeeze(axis)
        return values, indices.astype(np.int64)

    def backward(self, grad_values, grad_indices):
        grad = grad_values if self.keepdim else np.expand_dims(grad_values, self.axis)
        out = zeros(self.shape, grad.dtype, grad)
        np.put_along_axis(out, self.indices, grad, axis=self.axis)
        return out, None, None


class MaxDim(_ExtremeDim):
    arg = staticmethod(np.argmax)


class MinDim(_ExtremeDim):
    arg = staticmethod(np.argmin)


#: max or min: (over all elements, along a dim, the result pair, the elementwise function of
#: :mod:`fastgrad.pointwise`)
_EXTREMES = {"max": (MaxAll, MaxDim, MaxResult, "maximum"),
             "min": (MinAll, MinDim, MinResult, "minimum")}


def _reduced_axis(name, input, dim):
    """The axis ``dim`` of ``input`` that max/argmax reduce (None: all elements), checked to
    be non-empty: a maximum over no element does not exist."""
    axis = None if dim is None else normalize_dim(dim, input.ndim)
    if input.ndim == 0:
        axis = None
    size = input.numel() if axis is None else input.shape[axis]
    if size == 0:
        where = "an empty input" if axis is None else f"dim {dim} of size 0"
        raise RuntimeError(f"{name}() over {where} (input shape {input.shape}) has no "
                           "identity")
    return axis


def _extreme(name, input, dim, keepdim):
    """PyTorch's three ``max`` (``name`` "max") or ``min`` ("min"): the extreme element (ties
    share the gradient); with ``dim`` a ``(values, indices)`` pair along it (the first index
    of a tie); with a tensor in place of ``dim``, the elementwise maximum or minimum."""
    input = tensor_input(input)
    over_all, along, result, elementwise = _EXTREMES[name]
    if is_tensor(dim):
        if keepdim is not False:
            raise TypeError(f"{name}(input, other) takes no keepdim")
        from . import pointwise  # pointwise imports this module
        return getattr(pointwise, elementwise)(input, dim)
    keepdim = flag(keepdim, "keepdim")
    axis = _reduced_axis(name, input, dim)
    if dim is None:
        return over_all.apply(input)
    if axis is None:  # a 0-d tensor along dim 0 or -1: itself, at index 0
        return result(clone(input), _tensor.Tensor(zeros((), np.int64, input._data)))
    return result(*along.apply(input, axis, keepdim))


def _arg_extreme(name, arg, input, dim, keepdim):
    """argmax or argmin (``name``; ``arg``: np.argmax or np.argmin): int64 indices of the
    extreme elements (of the flattened tensor when ``dim`` is None)."""
    input = tensor_input(input)
    keepdim = flag(keepdim, "keepdim")
    axis = _reduced_axis(name, input, dim)
    if axis is None:
        return _tensor.Tensor(array_of(arg(input._data)).astype(np.int64, copy=False))
    # array_of: 1-d in, NumPy scalar out
    return _tensor.Tensor(array_of(arg(input._data, axis=axis, keepdims=keepdim))
                          .astype(np.int64, copy=False))


@numpy_aliases
def max(input, dim=None, keepdim=False):
    """The largest element, or with ``dim`` a ``(values, indices)`` pair along it, or with a
    tensor in place of ``dim``, PyTorch's ``max(input, other)``: :func:`maximum`."""
    return _extreme("max", input, dim, keepdim)


@numpy_aliases
def argmax(input, dim=None, keepdim=False):
    """Indices of the largest elements (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme("argmax", np.argmax, input, dim, keepdim)


@ieee
class Softmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        if x.size == 0:
            self.out = x.copy()
            return self.out
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, grad):
        y = self.out
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True)), None


@ieee
class LogSoftmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        if x.size == 0:
            self.out = x.copy()
            return self.out
        shifted = x - x.max(axis=axis, keepdims=True)
        self.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, grad):
        return grad - np.exp(self.out) * grad.sum(axis=self.axis, keepdims=True), None


def _softmax_axis(input, dim):
    """The axis to normalise along; None (all of it) for a 0-d input."""
    axis = normalize_dim(dim, input.ndim)
    return axis if input.ndim else None


def softmax(input, dim):
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the maximum so nothing overflows."""
    input = _floating(input)
    return Softmax.apply(input, _softmax_axis(input, dim))


def log_softmax(input, dim):
    """x - logsumexp(x) along ``dim``, computed stably."""
    input = _floating(input)
    return LogSoftmax.apply(input, _softmax_axis(input, dim))


# ---------------------------------------------------------------------------------- shapes
class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape), None


def reshape(input, *shape):
    """``input`` with a new shape holding the same elements (one size may be -1)."""
    input = as_operand(input, "input")
    shape = shape_argument(shape)
    known = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
            -1 in shape and (known == 0 or input.numel() % known)) or (
            -1 not in shape and known != input.numel()):
        raise RuntimeError(f"shape {list(shape)} is invalid for input of size {input.numel()}")
    return Reshape.apply(input, shape)


def flatten(input, start_dim=0, end_dim=-1):
    """``input`` with dimensions ``start_dim..end_dim`` merged into one."""
    input = as_operand(input, "input")
    start = normalize_dim(start_dim, input.ndim, "start_dim")
    end = normalize_dim(end_dim, input.ndim, "end_dim")
    if input.ndim == 0:
        return reshape(input, 1)
    if start > end:
        raise RuntimeError(f"flatten needs start_dim <= end_dim, got {start_dim} and "
                           f"{end_dim}")
    shape = input.shape
    return reshape(input, shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:])


def squeeze(input, dim=None):
    """``input`` without its size-1 dimensions (only those among ``dim``, an int or a tuple
    of ints, if given)."""
    input = as_operand(input, "input")
    if dim is None:
        return reshape(input, tuple(s for s in input.shape if s != 1))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = {normalize_dim(d, input.ndim) for d in dims}
    if len(axes) != len(dims):
        raise RuntimeError(f"squeeze: dim {dim} names a dimension more than once")
    kept = tuple(s for a, s in enumerate(input.shape) if s != 1 or a not in axes)
    return input if len(kept) == input.ndim else reshape(input, kept)


def unsqueeze(input, dim):
    """``input`` with a new size-1 dimension inserted at ``dim``."""
    input = as_operand(input, "input")
    axis = normalize_dim(dim, input.ndim + 1)
    return reshape(input, input.shape[:axis] + (1,) + input.shape[axis:])


class Permute(Function):
    def forward(self, x, dims):
        self.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    def backward(self, grad):
        return grad.transpose(self.inverse), None


def permute(input, *dims):
    """``input`` with its dimensions reordered to ``dims``."""
    input = as_operand(input, "input")
    dims = shape_argument(dims, "dims")
    if len(dims) != input.ndim:
        raise ValueError(f"permute needs {input.ndim} dims for a tensor of shape {input.shape}, "
                         f"got {dims}")
    axes = tuple(normalize_dim(d, input.ndim, "dims") for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"permute dims must not repeat, got {dims}")
    return Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    """``input`` with dimensions ``dim0`` and ``dim1`` swapped."""
    input = as_operand(input, "input")
    axes = list(range(input.ndim))
    a, b = normalize_dim(dim0, input.ndim, "dim0"), normalize_dim(dim1, input.ndim, "dim1")
    if input.ndim == 0:
        return input
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(input, tuple(axes))


class Index(Function):
    """``x[basic][advanced]``: a view by ``basic`` (ints, slices and None), then, when
    ``advanced`` is not None, NumPy's advanced indexing by it (slices and integer or boolean
    arrays); see :func:`index_key`."""

    grads_are_fresh = True

    def forward(self, x, basic, advanced):
        self.shape, self.basic, self.advanced = x.shape, basic, advanced
        view = x[basic]
        return view if advanced is None else view[advanced]

    def backward(self, grad):
        out = zeros(self.shape, grad.dtype, grad)
        if self.advanced is None:
            out[self.basic] = grad
        else:
            np.add.at(out[self.basic], self.advanced, grad)  # repeated indices sum
        return out, None, None


#: The dtypes of tensors PyTorch takes as indices: integer positions or (uint8, bool) masks.
_INDEX_DTYPES = frozenset(map(np.dtype, (np.int64, np.int32, np.uint8, np.bool_)))


def _key_parts(key):
    """``key`` as a tuple of indices, the way PyTorch reads it: a tuple is one index per
    dimension; so is a list shorter than 32 holding a sequence, slice, tensor, None or
    Ellipsis (NumPy's old heuristic, which PyTorch keeps with a deprecation warning); anything
    else is a single index."""
    if type(key) is tuple:
        return key
    if isinstance(key, (list, range)) and len(key) < 32 and builtins.any(
            p is None or p is Ellipsis or is_tensor(p)
            or isinstance(p, (list, tuple, range, slice, np.ndarray)) for p in key):
        warnings.warn("Using a non-tuple sequence for multidimensional indexing is deprecated "
                      "(as in PyTorch); use x[tuple(seq)] instead of x[seq]", UserWarning,
                      stacklevel=5)
        return tuple(key)
    return (key,)


def _index_part(part):
    """One index as PyTorch reads it: an int (a select), a bool (a new dimension of size 1,
    kept or emptied), a slice, None, Ellipsis, or an array: int64 positions or a bool mask.
    0-d integer tensors select like ints and 0-d bool tensors act as bools; lists and NumPy
    arrays of other numbers become int64 positions, as PyTorch converts them; uint8 arrays
    are masks."""
    if part is None or part is Ellipsis or isinstance(part, (bool, slice)):
        return part
    if isinstance(part, (int, np.integer)):
        return int(part)
    if isinstance(part, (str, bytes)):  # PyTorch: a TypeError from reading it as a sequence
        raise IndexError(f"index {part!r:.40} is not valid: an index cannot be a "
                         f"{type(part).__name__}")
    if is_tensor(part):
        array = part._data
        if array.dtype not in _INDEX_DTYPES:
            raise IndexError(f"tensors used as indices must be long, int, byte or bool "
                             f"tensors, got dtype {array.dtype}")
    elif isinstance(part, (list, tuple, range, np.ndarray)):
        try:
            array = np.asarray(part)
        except ValueError as error:  # ragged
            raise IndexError(f"the index {part!r:.60} is not a rectangular array: "
                             f"{error}") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(f"an index sequence must hold integers or bools, got "
                            f"{part!r:.60} (dtype {array.dtype})")
        if array.dtype.kind in "iuf" and array.dtype != np.uint8:
            array = array.astype(np.int64, copy=False)
    else:
        raise IndexError(f"index {part!r:.40} is not valid: only integers, slices (`:`), "
                         f"ellipsis (`...`), None and long or byte tensors are valid indices "
                         f"(got {type(part).__name__})")
    if array.dtype == np.uint8:
        warnings.warn("indexing with dtype uint8 is deprecated (as in PyTorch), please use a "
                      "dtype bool instead", UserWarning, stacklevel=4)
        array = array.astype(bool)
    if array.ndim == 0:
        return bool(array) if array.dtype.kind == "b" else int(array)
    return array


def _is_mask(part):
    return isinstance(part, np.ndarray) and part.dtype.kind == "b"


def index_key(shape, key):
    """PyTorch's reading of ``key`` on a tensor of ``shape``, as two NumPy keys.

    PyTorch applies integers, slices and None one by one as views (an integer selects and
    removes its dimension at once), and only then indexes the result with the tensors and
    lists of the key: NumPy's advanced indexing, whose broadcast dimensions replace the
    indexed ones when those are adjacent and go first otherwise. NumPy alone counts integers
    as advanced indices too, so ``x[0, :, [0, 2]]`` on a (2, 3, 4) tensor is (2, 3) in NumPy
    and (3, 2) in PyTorch. A bool (``True``, a 0-d bool tensor) adds a dimension indexed by
    ``[0]`` (kept) or ``[]`` (emptied); each Ellipsis stands for the dimensions the key leaves
    unnamed. One extension: a negative slice step reverses, as in NumPy (``x[::-1]``), where
    PyTorch raises a ValueError.

    Returns:
        ``(basic, advanced)``: ``basic`` a tuple of ints, slices and None ending in Ellipsis
        (so that a result of one element is still a view), and ``advanced`` a tuple of slices
        and int64 or bool arrays to apply to ``x[basic]``, or None when the key has no array.

    Raises:
        IndexError: too many indices, an integer out of range, a mask whose shape differs
            from the dimensions it indexes, an index of a type that is not one, or a float
            tensor. (Positions out of range in index arrays, and index arrays that do not
            broadcast together, raise NumPy's IndexError when the keys are applied, before
            anything is written.)
        ValueError: a slice step of zero.
        TypeError: a sequence of things that are not numbers.
    """
    ndim = len(shape)
    if type(key) is int and ndim and -shape[0] <= key < shape[0]:
        return (key, Ellipsis), None  # the common cases first: x[i], x[a:b]
    if type(key) is slice and ndim and (key.step is None or operator.index(key.step)):
        return (key, Ellipsis), None
    parts = [_index_part(p) for p in _key_parts(key)]
    specified = builtins.sum(
        p.ndim if _is_mask(p) else 0 if p is None or p is Ellipsis or isinstance(p, bool)
        else 1 for p in parts)
    if specified > ndim:
        hint = " (use tensor.item() to read a 0-d tensor's value)" if not ndim else ""
        raise IndexError(f"too many indices for tensor of dimension {ndim}: the index names "
                         f"{specified} dimensions{hint}")
    basic, advanced = [], []
    sizes = list(shape)  # the shape of the result so far
    dim = 0              # where the next index applies in it (PyTorch's dim pointer)
    covered = 0          # the dimensions of x[basic] that ``advanced`` spans so far

    def record(array, width):
        nonlocal covered
        advanced.extend([slice(None)] * (dim - covered))
        advanced.append(array)
        covered = dim + width

    for position, part in enumerate(parts):
        if part is Ellipsis:
            unnamed = ndim - specified
            basic.extend([slice(None)] * unnamed)
            dim += unnamed
            continue
        if part is None or isinstance(part, bool):
            basic.append(None)
            sizes.insert(dim, 1)
            if isinstance(part, bool):
                record(np.zeros(int(part), np.int64), 1)
            dim += 1
            continue
        width = part.ndim if _is_mask(part) else 1
        if dim + width > len(sizes):
            raise IndexError(f"index {position} of the key applies to dimension {dim}, but the "
                             f"result so far has {len(sizes)} dimensions")
        size = sizes[dim]
        if isinstance(part, int):
            if not -size <= part < size:
                raise IndexError(f"index {part} is out of bounds for dimension {position} with "
                                 f"size {size}")
            basic.append(part)
            del sizes[dim]
        elif isinstance(part, slice):
            if part.step is not None and operator.index(part.step) == 0:
                raise ValueError("slice step cannot be zero")
            basic.append(part)
            sizes[dim] = len(range(*part.indices(size)))
            dim += 1
        elif _is_mask(part):
            if part.shape != tuple(sizes[dim:dim + width]):
                j = next(j for j, (a, b) in enumerate(zip(part.shape, sizes[dim:])) if a != b)
                raise IndexError(f"The shape of the mask {list(part.shape)} at index {j} does "
                                 f"not match the shape of the indexed tensor {sizes} at index "
                                 f"{dim + j}")
            basic.extend([slice(None)] * width)
            record(part, width)
            dim += width
        else:  # NumPy's advanced indexing checks the positions, with PyTorch's IndexError
            basic.append(slice(None))
            record(part, 1)
            dim += 1
    while len(basic) > ndim and basic[-1] == slice(None):
        basic.pop()  # what a second Ellipsis added past the last dimension
    basic.append(Ellipsis)
    return tuple(basic), (tuple(advanced) if advanced else None)


def index(input, key):
    """``input[key]`` by PyTorch's rules (:func:`index_key`): integers (also 0-d integer
    tensors), slices, None, Ellipsis and bools select views; integer and bool tensors, lists
    and NumPy arrays index by NumPy's advanced indexing, whose backward sums the gradients
    of repeated indices."""
    basic, advanced = index_key(input.shape, key)
    return Index.apply(input, basic, advanced)


class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1].tolist()
        return np.concatenate(arrays, axis=axis)

    def backward(self, grad):
        return tuple(np.split(grad, self.splits, axis=self.axis))


class Stack(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, grad):
        return tuple(np.moveaxis(grad, self.axis, 0))


def _same_dtype(tensors, name):
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise ValueError(f"{name} expects a non-empty list of tensors, got {tensors!r}")
    tensors = [as_operand(t, f"tensors[{i}]") for i, t in enumerate(tensors)]
    for i, t in enumerate(tensors):
        if not is_tensor(t):
            raise TypeError(f"{name} expects tensors, got {type(t).__name__} at position {i}")
    target = tensors[0].dtype
    for t in tensors[1:]:
        target = dtypes.promote(target, t.dtype)
    return [cast(t, target) for t in tensors]


def cat(tensors, dim=0):
    """Join ``tensors`` along an existing dimension ``dim``."""
    tensors = _same_dtype(tensors, "cat")
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"cat: tensors[{i}] is zero-dimensional and cannot be "
                               "concatenated; use stack")
    axis = normalize_dim(dim, first.ndim)
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != first.ndim or builtins.any(
                a != b for d, (a, b) in enumerate(zip(t.shape, first.shape)) if d != axis):
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {axis}: "
                               f"tensor 0 has shape {first.shape}, tensor {i} has shape "
                               f"{t.shape}")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, dim=0):
    """Join same-shaped ``tensors`` along a new dimension ``dim``."""
    tensors = _same_dtype(tensors, "stack")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != first.shape:
            raise RuntimeError(f"stack expects tensors of equal shape: tensor 0 has shape "
                               f"{first.shape}, tensor {i} has shape {t.shape}")
    return Stack.apply(*tensors, axis=normalize_dim(dim, first.ndim + 1))
