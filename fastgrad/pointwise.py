"""Elementwise math, comparisons and bitwise operations beyond the core arithmetic in
:mod:`fastgrad.ops` (PyTorch's names: ``sin``, ``maximum``, ``eq``, ``logical_and``...).

Each differentiable op is a small :class:`~fastgrad.autograd.Function` plus its public function;
dtypes, gradients at kinks and ties (zero for step functions, half to each side of a tie in
``maximum``), and errors follow PyTorch. In-place forms (``sin_``, ``floor_``, ``__iand__``...)
compute the out-of-place result and write it into the tensor, refusing, as PyTorch does, a
result dtype the tensor cannot hold (a float result into an integer tensor).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them, so the method table lives beside the functions.
"""
import math
import numbers

import numpy as np

from . import autograd, dtypes, ops
from . import tensor as _tensor  # the module: tensor.py imports this one while it loads
from ._checks import check_broadcast, ieee, integer, is_tensor, no_bool, tensor_input
from .autograd import Function
from .device import array_of
from .ops import _binary_operands, _floating, cast, clone, compare, unbroadcast


def _new(array):
    """A Tensor (no gradient) around an op's result; NumPy gives scalars for 0-d inputs."""
    return _tensor.Tensor(array_of(array))


def _data(value):
    return value._data if is_tensor(value) else value


def _tensor_other(other, name):
    """``other`` as a Tensor; PyTorch's TypeError for a number where it needs a tensor."""
    if isinstance(other, np.ndarray):
        return _tensor.Tensor(other)
    if not is_tensor(other):
        raise TypeError(f"{name}(): argument 'other' must be a Tensor, got "
                        f"{type(other).__name__}")
    return other


# ---------------------------------------------------------------- unary, differentiable
@ieee
class _Unary(Function):
    """``function(x)`` elementwise on a floating array; a subclass gives the NumPy function
    and ``derivative(x, out)``."""

    def forward(self, x):
        out = self.function(x)
        self.x, self.out = x, out
        return out

    def backward(self, grad):
        return grad * self.derivative(self.x, self.out)


class Sin(_Unary):
    function = staticmethod(np.sin)
    derivative = staticmethod(lambda x, out: np.cos(x))


class Cos(_Unary):
    function = staticmethod(np.cos)
    derivative = staticmethod(lambda x, out: -np.sin(x))


class Tan(_Unary):
    function = staticmethod(np.tan)
    derivative = staticmethod(lambda x, out: 1 + out * out)


class Asin(_Unary):
    function = staticmethod(np.arcsin)
    derivative = staticmethod(lambda x, out: 1 / np.sqrt(1 - x * x))


class Acos(_Unary):
    function = staticmethod(np.arccos)
    derivative = staticmethod(lambda x, out: -1 / np.sqrt(1 - x * x))


class Atan(_Unary):
    function = staticmethod(np.arctan)
    derivative = staticmethod(lambda x, out: 1 / (1 + x * x))


class Sinh(_Unary):
    function = staticmethod(np.sinh)
    derivative = staticmethod(lambda x, out: np.cosh(x))


class Cosh(_Unary):
    function = staticmethod(np.cosh)
    derivative = staticmethod(lambda x, out: np.sinh(x))


class Asinh(_Unary):
    function = staticmethod(np.arcsinh)
    derivative = staticmethod(lambda x, out: 1 / np.sqrt(x * x + 1))


class Acosh(_Unary):
    function = staticmethod(np.arccosh)
    derivative = staticmethod(lambda x, out: 1 / np.sqrt(x * x - 1))


class Atanh(_Unary):
    function = staticmethod(np.arctanh)
    derivative = staticmethod(lambda x, out: 1 / (1 - x * x))


class Log1p(_Unary):
    function = staticmethod(np.log1p)
    derivative = staticmethod(lambda x, out: 1 / (1 + x))


class Expm1(_Unary):
    function = staticmethod(np.expm1)
    derivative = staticmethod(lambda x, out: out + 1)


class Log2(_Unary):
    function = staticmethod(np.log2)
    derivative = staticmethod(lambda x, out: 1 / (x * math.log(2)))


class Log10(_Unary):
    function = staticmethod(np.log10)
    derivative = staticmethod(lambda x, out: 1 / (x * math.log(10)))


class Exp2(_Unary):
    function = staticmethod(np.exp2)
    derivative = staticmethod(lambda x, out: out * math.log(2))


class Rsqrt(_Unary):
    function = staticmethod(lambda x: 1 / np.sqrt(x))
    derivative = staticmethod(lambda x, out: -0.5 * out * out * out)


class Reciprocal(_Unary):
    function = staticmethod(np.reciprocal)
    derivative = staticmethod(lambda x, out: -out * out)


def _erf(x):
    # NumPy has no erf and SciPy is not a dependency: math.erf element by element (exact, slow)
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


class Erf(_Unary):
    function = staticmethod(_erf)
    derivative = staticmethod(lambda x, out: (2 / math.sqrt(math.pi)) * np.exp(-x * x))


def sin(input):
    """The sine, elementwise (integer and bool inputs give float32, as in PyTorch)."""
    return Sin.apply(_floating(input))


def cos(input):
    return Cos.apply(_floating(input))


def tan(input):
    return Tan.apply(_floating(input))


def asin(input):
    """The inverse sine (NaN outside [-1, 1])."""
    return Asin.apply(_floating(input))


def acos(input):
    return Acos.apply(_floating(input))


def atan(input):
    return Atan.apply(_floating(input))


def sinh(input):
    return Sinh.apply(_floating(input))


def cosh(input):
    return Cosh.apply(_floating(input))


def asinh(input):
    return Asinh.apply(_floating(input))


def acosh(input):
    return Acosh.apply(_floating(input))


def atanh(input):
    return Atanh.apply(_floating(input))


def log1p(input):
    """log(1 + input), accurate for small |input|."""
    return Log1p.apply(_floating(input))


def expm1(input):
    """exp(input) - 1, accurate for small |input|."""
    return Expm1.apply(_floating(input))


def log2(input):
    return Log2.apply(_floating(input))


def log10(input):
    return Log10.apply(_floating(input))


def exp2(input):
    """2 ** input."""
    return Exp2.apply(_floating(input))


def rsqrt(input):
    """1 / sqrt(input)."""
    return Rsqrt.apply(_floating(input))


def reciprocal(input):
    """1 / input (integer inputs give float32, as in PyTorch)."""
    return Reciprocal.apply(_floating(input))


def erf(input):
    """The error function."""
    return Erf.apply(_floating(input))


def square(input):
    """input * input; integer and bool inputs give int64, as in PyTorch."""
    input = tensor_input(input)
    if input.dtype.kind == "b":
        input = cast(input, dtypes.int64)
    return ops.pow(input, 2)


def positive(input):
    """``input`` itself (``+input``); refused for bool, as in PyTorch."""
    return no_bool(input, "positive")


# ------------------------------------------------------------------- steps and rounding
@ieee
class _Step(Function):
    """A step function (floor, sign...): flat between its jumps, so the gradient is zero,
    which is also PyTorch's choice at the jumps. A subclass gives ``function(x, *options)``."""

    def forward(self, x, *options):
        self.options = len(options)
        return self.function(x, *options)

    def backward(self, grad):
        return (np.zeros_like(grad),) + (None,) * self.options


class Floor(_Step):
    function = staticmethod(np.floor)


class Ceil(_Step):
    function = staticmethod(np.ceil)


class Trunc(_Step):
    function = staticmethod(np.trunc)


class Sign(_Step):
    # sign(NaN) is 0 in PyTorch (NumPy: NaN)
    function = staticmethod(lambda x: np.where(np.isnan(x), x.dtype.type(0), np.sign(x)))


def _round(x, decimals):
    """PyTorch's rounding: half to even, after scaling by 10**decimals in x's dtype."""
    if decimals == 0:
        return np.rint(x)
    scale = x.dtype.type(10.0 ** abs(decimals))
    return np.rint(x * scale) / scale if decimals > 0 else np.rint(x / scale) * scale


class Round(_Step):
    function = staticmethod(_round)


def _step(function_class, input, name, *options):
    """A step function of a tensor: integers come back as a copy (they are already whole),
    bools are refused, as in PyTorch."""
    input = tensor_input(input)
    if input.dtype.kind == "b":
        raise RuntimeError(f"{name}: input of dtype bool is not supported")
    if input.dtype.kind in "iu":
        return clone(input)
    return function_class.apply(input, *options)


def floor(input):
    """The largest whole number <= input (gradient zero)."""
    return _step(Floor, input, "floor")


def ceil(input):
    """The smallest whole number >= input (gradient zero)."""
    return _step(Ceil, input, "ceil")


def trunc(input):
    """``input`` rounded toward zero (gradient zero)."""
    return _step(Trunc, input, "trunc")


def round(input, *, decimals=0):
    """``input`` rounded to ``decimals`` decimal places, halves to even (gradient zero).

    Integer tensors are returned as a copy with ``decimals=0`` and refused otherwise, as in
    PyTorch.
    """
    input = tensor_input(input)
    decimals = integer(decimals, "round: decimals")
    if decimals and input.dtype.kind != "f":
        raise RuntimeError(f"round: decimals={decimals} needs a floating input, got dtype "
                           f"{input.dtype}")
    return _step(Round, input, "round", decimals)


def sign(input):
    """-1, 0 or 1 by the sign of each element (0 for NaN; bools unchanged), gradient zero."""
    input = tensor_input(input)
    if input.dtype.kind == "b":
        return clone(input)
    if input.dtype.kind in "iu":
        return _new(np.sign(input._data))
    return Sign.apply(input)


@ieee
class Frac(Function):
    def forward(self, x):
        return x - np.trunc(x)

    def backward(self, grad):
        return grad


def frac(input):
    """input - trunc(input) (floating inputs only, as in PyTorch)."""
    input = tensor_input(input)
    if input.dtype.kind != "f":
        raise RuntimeError(f"frac: needs a floating input, got dtype {input.dtype}")
    return Frac.apply(input)


@ieee
class NanToNum(Function):
    def forward(self, x, nan, posinf, neginf):
        self.finite = np.isfinite(x)
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def backward(self, grad):
        return grad * self.finite, None, None, None


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """``input`` with NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf``
    (by default 0 and the dtype's largest and lowest finite values); the gradient flows
    through the finite elements only. Integer and bool tensors come back as a copy."""
    input = tensor_input(input)
    for name, value in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if value is not None and (isinstance(value, (bool, np.bool_))
                                  or not isinstance(value, numbers.Real)):
            raise TypeError(f"nan_to_num: {name} must be a number or None, got "
                            f"{type(value).__name__} {value!r}")
    if input.dtype.kind != "f":
        return clone(input)
    return NanToNum.apply(input, 0.0 if nan is None else nan, posinf, neginf)


# ------------------------------------------------------------------ binary, differentiable
@ieee
class _Extremum(Function):
    """maximum/minimum: NaN propagates; a tie sends half the gradient to each side, and a
    NaN position the whole gradient to both, as PyTorch's formula does."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.function(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        shared = np.where(a == b, grad / 2, grad)
        return (unbroadcast(shared * ~self.loses(a, b), a.shape, a.dtype)
                if self.needs_input_grad[0] else None,
                unbroadcast(shared * ~self.loses(b, a), b.shape, b.dtype)
                if self.needs_input_grad[1] else None)


class Maximum(_Extremum):
    function = staticmethod(np.maximum)
    loses = staticmethod(np.less)


class Minimum(_Extremum):
    function = staticmethod(np.minimum)
    loses = staticmethod(np.greater)


@ieee
class _NanExtremum(Function):
    """fmax/fmin: NaN loses to a number; ties and NaN-against-NaN go to ``input``."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.function(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        to_a = self.wins(a, b) | np.isnan(b)
        return (unbroadcast(grad * to_a, a.shape, a.dtype) if self.needs_input_grad[0]
                else None,
                unbroadcast(grad * ~to_a, b.shape, b.dtype) if self.needs_input_grad[1]
                else None)


class Fmax(_NanExtremum):
    function = staticmethod(np.fmax)
    wins = staticmethod(np.greater_equal)


class Fmin(_NanExtremum):
    function = staticmethod(np.fmin)
    wins = staticmethod(np.less_equal)


def _two_tensors(input, other, name):
    """Both operands as tensors of one promoted dtype (PyTorch's TypeError for numbers)."""
    return _binary_operands(tensor_input(input), _tensor_other(other, name))


def maximum(input, other):
    """The larger of ``input`` and ``other`` elementwise (both tensors, broadcast); NaN
    propagates; a tie splits the gradient in half, as in PyTorch."""
    return Maximum.apply(*_two_tensors(input, other, "maximum"))


def minimum(input, other):
    """The smaller of ``input`` and ``other`` elementwise; see :func:`maximum`."""
    return Minimum.apply(*_two_tensors(input, other, "minimum"))


def fmax(input, other):
    """:func:`maximum`, except that a NaN loses to a number."""
    return Fmax.apply(*_two_tensors(input, other, "fmax"))


def fmin(input, other):
    """:func:`minimum`, except that a NaN loses to a number."""
    return Fmin.apply(*_two_tensors(input, other, "fmin"))


@ieee
class ClampBound(Function):
    """``input`` clamped by a tensor bound from below (``lower``) or above; ties keep
    ``input``'s gradient and a NaN comparison gives neither side one, as PyTorch's
    ``clamp_min``/``clamp_max`` do."""

    def forward(self, x, bound, lower):
        self.to_x = x >= bound if lower else x <= bound
        self.to_bound = x < bound if lower else x > bound
        self.shapes = x.shape, bound.shape
        return np.maximum(x, bound) if lower else np.minimum(x, bound)

    def backward(self, grad):
        sx, sb = self.shapes
        return (unbroadcast(grad * self.to_x, sx, grad.dtype),
                unbroadcast(grad * self.to_bound, sb, grad.dtype), None)


def _clamp_bound(input, bound, lower):
    input = tensor_input(input)
    if is_tensor(bound) or isinstance(bound, np.ndarray):
        return ClampBound.apply(*_binary_operands(input, bound), lower)
    return ops.clamp(input, min=bound) if lower else ops.clamp(input, max=bound)


def clamp_min(input, min):
    """``input`` limited from below by ``min`` (a number or a broadcastable tensor)."""
    return _clamp_bound(input, min, True)


def clamp_max(input, max):
    """``input`` limited from above by ``max`` (a number or a broadcastable tensor)."""
    return _clamp_bound(input, max, False)


@ieee
class Lerp(Function):
    def forward(self, start, end, weight):
        self.shapes = start.shape, end.shape
        self.diff, self.weight = end - start, weight
        # PyTorch's formula, exact at both ends: from start below 0.5, from end above
        return np.where(np.abs(weight) < 0.5, start + weight * self.diff,
                        end - self.diff * (1 - weight))

    def backward(self, grad):
        (s_start, s_end), weight = self.shapes, self.weight
        return (unbroadcast(grad * (1 - weight), s_start, grad.dtype)
                if self.needs_input_grad[0] else None,
                unbroadcast(grad * weight, s_end, grad.dtype)
                if self.needs_input_grad[1] else None,
                unbroadcast(grad * self.diff, weight.shape, grad.dtype)
                if self.needs_input_grad[2] else None)


def lerp(input, end, weight):
    """input + weight * (end - input), with ``weight`` a number or a tensor (broadcast).

    ``input``, ``end`` and a tensor ``weight`` must share one floating dtype, as in PyTorch.
    """
    input = tensor_input(input)
    end = _tensor_other(end, "lerp")
    if input.dtype.kind != "f":
        raise RuntimeError(f"lerp: needs a floating input, got dtype {input.dtype}")
    if end.dtype != input.dtype:
        raise RuntimeError(f"lerp: expected dtype {input.dtype} for end but got dtype "
                           f"{end.dtype}")
    if is_tensor(weight):
        if weight.dtype != input.dtype:
            raise RuntimeError(f"lerp: expected dtype {input.dtype} for weight but got dtype "
                               f"{weight.dtype}")
        check_broadcast(input.shape, end.shape, weight.shape,
                         names=("input", "end", "weight"))
    elif isinstance(weight, numbers.Real) and not isinstance(weight, (bool, np.bool_)):
        check_broadcast(input.shape, end.shape, names=("input", "end"))
        weight = input.dtype.type(weight)  # a scalar: it goes with an array on any device
    else:
        raise TypeError(f"lerp: weight must be a number or a Tensor, got "
                        f"{type(weight).__name__}")
    return Lerp.apply(input, end, weight)


def _scaled_product(name, input, tensor1, tensor2, value, combine):
    """``input + value * combine(tensor1, tensor2)`` with the three tensors promoted together
    and ``value`` cast to their dtype first (PyTorch's addcmul/addcdiv arithmetic)."""
    input = tensor_input(input)
    tensor1, tensor2 = _tensor_other(tensor1, name), _tensor_other(tensor2, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Number) \
            or isinstance(value, complex):
        raise TypeError(f"{name}: value must be a number, got {type(value).__name__}")
    check_broadcast(input.shape, tensor1.shape, tensor2.shape,
                     names=("input", "tensor1", "tensor2"))
    target = dtypes.promote(dtypes.promote(input.dtype, tensor1.dtype), tensor2.dtype)
    if name == "addcdiv" and tensor1.dtype.kind != "f" and tensor2.dtype.kind != "f":
        raise RuntimeError("addcdiv: integer division of tensor1 by tensor2 is not supported "
                           "(as in PyTorch); use addcmul with tensor1 / tensor2 or floats")
    input, tensor1, tensor2 = (cast(t, target) for t in (input, tensor1, tensor2))
    with np.errstate(all="ignore"):
        value = np.asarray(value).astype(target).item()
    return ops.add(input, combine(ops.mul(tensor1, value), tensor2))


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2 (broadcast)."""
    return _scaled_product("addcmul", input, tensor1, tensor2, value, ops.mul)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2 (broadcast; not both tensors integer)."""
    return _scaled_product("addcdiv", input, tensor1, tensor2, value, ops.div)


# -------------------------------------------------------------- division with rounding
def _rounding_operands(name, input, other):
    """The promoted operands of a rounding division; bools refused and integer division by
    zero reported (PyTorch's ZeroDivisionError, a RuntimeError) before any work."""
    a, b = _binary_operands(input, other)
    if a.dtype.kind == "b":
        raise RuntimeError(f"{name}: bool tensors are not supported; convert them with "
                           ".long() first")
    if a.dtype.kind in "iu" and np.any(_data(b) == 0):
        raise RuntimeError(f"{name}: ZeroDivisionError (integer division by zero in other)")
    return a, b


@ieee
class FloorDivide(Function):
    def forward(self, a, b):
        return np.floor_divide(a, b)

    def backward(self, grad):
        raise RuntimeError("the derivative of floor_divide is not implemented (as in "
                           "PyTorch): it is zero almost everywhere; detach its inputs")


@ieee
class Remainder(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return self.function(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        return (unbroadcast(grad, a.shape, grad.dtype) if self.needs_input_grad[0] else None,
                unbroadcast(-grad * self.quotient(a, b), b.shape, grad.dtype)
                if self.needs_input_grad[1] else None)


class Mod(Remainder):
    """The remainder with the divisor's sign (Python's ``%``)."""

    function = staticmethod(np.remainder)
    quotient = staticmethod(np.floor_divide)


class Fmod(Remainder):
    """The remainder with the dividend's sign (C's ``fmod``)."""

    function = staticmethod(np.fmod)
    quotient = staticmethod(lambda a, b: np.trunc(a / b))


def floor_divide(input, other):
    """input / other rounded down (Python's ``//``); integer division by zero is an error.
    Not differentiable: a backward through it raises, as in PyTorch."""
    return FloorDivide.apply(*_rounding_operands("floor_divide", input, other))


def remainder(input, other):
    """Python's ``%``: the result has the sign of ``other``. ``input`` may be a number."""
    return Mod.apply(*_rounding_operands("remainder", input, other))


def fmod(input, other):
    """C's ``fmod``: the result has the sign of ``input``."""
    return Fmod.apply(*_rounding_operands("fmod", tensor_input(input), other))


# --------------------------------------------------------------------------- comparisons
def eq(input, other):
    """``input == other`` elementwise as a bool tensor (``other`` a tensor or a number)."""
    return compare(np.equal, tensor_input(input), other)


def ne(input, other):
    return compare(np.not_equal, tensor_input(input), other)


def lt(input, other):
    return compare(np.less, tensor_input(input), other)


def le(input, other):
    return compare(np.less_equal, tensor_input(input), other)


def gt(input, other):
    return compare(np.greater, tensor_input(input), other)


def ge(input, other):
    return compare(np.greater_equal, tensor_input(input), other)


def isfinite(input):
    """True where an element is neither infinite nor NaN (always, for integers)."""
    return _new(np.isfinite(tensor_input(input)._data))


def isnan(input):
    return _new(np.isnan(tensor_input(input)._data))


def isinf(input):
    return _new(np.isinf(tensor_input(input)._data))


def isposinf(input):
    x = tensor_input(input)._data
    return _new(np.isinf(x) & (x > 0))


def isneginf(input):
    x = tensor_input(input)._data
    return _new(np.isinf(x) & (x < 0))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True where ``|input - other| <= atol + rtol * |other|`` (or the two are equal,
    infinities included; NaNs only with ``equal_nan``). Both tensors, of one dtype."""
    input, other = tensor_input(input), _tensor_other(other, "isclose")
    if input.dtype != other.dtype:
        raise RuntimeError(f"isclose: input of dtype {input.dtype} did not match other of "
                           f"dtype {other.dtype}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"isclose: {name} must be a number, got {type(value).__name__}")
        if value < 0:
            raise RuntimeError(f"isclose: {name} must be greater than or equal to zero, but "
                               f"got {value}")
    check_broadcast(input.shape, other.shape)
    a, b = input._data, other._data
    close = a == b
    if equal_nan and a.dtype.kind == "f":
        close |= np.isnan(a) & np.isnan(b)
    if rtol or atol:
        with np.errstate(all="ignore"):
            if a.dtype.kind == "f":
                actual, allowed = np.abs(a - b), atol + np.abs(rtol * b)
            else:  # as PyTorch: integer and bool errors in the default float dtype
                actual = np.abs(a.astype(np.int64) - b.astype(np.int64))
                actual = actual.astype(dtypes.default_float)
                allowed = atol + np.abs(rtol * b.astype(dtypes.default_float))
            close = close | (np.isfinite(actual) & (actual <= allowed))
    return _new(close)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True (a Python bool) when every element of ``input`` is close to ``other``; see
    :func:`isclose`."""
    autograd._untraced("allclose() read tensor values on the host")
    return bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


def equal(input, other):
    """True (a Python bool) when ``input`` and ``other`` have the same shape and elements
    (NaN equals nothing); dtypes may differ."""
    input, other = tensor_input(input), _tensor_other(other, "equal")
    return input.shape == other.shape and bool(np.array_equal(input._data, other._data))


# --------------------------------------------------------------------- logical, bitwise
def _logical(ufunc, name, input, other):
    input, other = tensor_input(input), _tensor_other(other, name)
    check_broadcast(input.shape, other.shape)
    return _new(ufunc(input._data, other._data))


def logical_and(input, other):
    """True where both elements are nonzero (any dtypes)."""
    return _logical(np.logical_and, "logical_and", input, other)


def logical_or(input, other):
    return _logical(np.logical_or, "logical_or", input, other)


def logical_xor(input, other):
    return _logical(np.logical_xor, "logical_xor", input, other)


def logical_not(input):
    return _new(np.logical_not(tensor_input(input)._data))


def _bitwise(ufunc, name, input, other):
    a, b = _binary_operands(input, other)  # numbers become 0-d arrays of the same dtype
    dtype = a.dtype
    if dtype.kind not in "biu":
        raise RuntimeError(f"{name}: only integer and bool tensors are supported, got dtype "
                           f"{dtype}")
    return _new(ufunc(_data(a), _data(b)))


def bitwise_and(input, other):
    """Bitwise AND of integer or bool tensors (or one of them a number), promoted."""
    return _bitwise(np.bitwise_and, "bitwise_and", input, other)


def bitwise_or(input, other):
    return _bitwise(np.bitwise_or, "bitwise_or", input, other)


def bitwise_xor(input, other):
    return _bitwise(np.bitwise_xor, "bitwise_xor", input, other)


def bitwise_not(input):
    """Bitwise NOT of an integer tensor; logical NOT of a bool tensor."""
    input = tensor_input(input)
    if input.dtype.kind not in "biu":
        raise RuntimeError(f"bitwise_not: only integer and bool tensors are supported, got "
                           f"dtype {input.dtype}")
    return _new(np.invert(input._data))


def _invert(self):
    if self.dtype.kind not in "biu":
        raise TypeError("~ (operator.invert) is only implemented on integer and bool tensors, "
                        f"got dtype {self.dtype}")
    return bitwise_not(self)


# ----------------------------------------------------------------------------- in place
def _can_cast(source, target):
    """PyTorch's rule for writing a result into an existing tensor: never a floating result
    into an integer or bool tensor, never an integer one into a bool tensor."""
    if source.kind == "f":
        return target.kind == "f"
    return source.kind == "b" or target.kind != "b"


def _in_place(function, name=None):
    """The in-place method ``name`` (default ``function``'s name and ``_``): ``self``
    overwritten with ``function(self, ...)``. Refused on tensors that need a gradient (as
    the in-place methods of :class:`~fastgrad.Tensor` are) and with operands that need one."""
    name = name or function.__name__ + "_"

    def method(self, *args, **kwargs):
        self._check_inplace()
        if autograd.is_grad_enabled():
            for value in list(args) + list(kwargs.values()):
                if is_tensor(value) and value.requires_grad:
                    raise RuntimeError(f"{name}: an in-place operation with an operand that "
                                       f"requires grad is not supported; use "
                                       f"{function.__name__}() out of place")
        result = function(self.detach(), *args, **kwargs)
        if not _can_cast(result.dtype, self.dtype):
            raise RuntimeError(f"{name}: result type {result.dtype} can't be cast to the "
                               f"desired output type {self.dtype}")
        return self._write(result._data, "other")

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = (f"In place: ``self`` overwritten with ``{function.__name__}(self, "
                      "...)``.")
    return method


def _reflected(function, name):
    """The reflected operator ``name`` (``3 & t`` calls ``t.__rand__(3)``)."""
    def method(self, other):
        return function(other, self)
    method.__name__ = name
    return method


def _round_method(self, ndigits=None):
    """Python's ``round(tensor)`` and ``round(tensor, ndigits)``."""
    return round(self, decimals=0 if ndigits is None else ndigits)


_UNARY = [sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh, log1p, expm1, log2,
          log10, exp2, rsqrt, reciprocal, erf, square, floor, ceil, trunc, round, sign, frac,
          nan_to_num, isfinite, isnan, isinf, isposinf, isneginf, logical_not,
          bitwise_not, positive]
_BINARY = [maximum, minimum, fmax, fmin, clamp_min, clamp_max, lerp, addcmul, addcdiv,
           floor_divide, remainder, fmod, eq, ne, lt, le, gt, ge, isclose, allclose, equal,
           logical_and, logical_or, logical_xor, bitwise_and, bitwise_or, bitwise_xor]
_ALIASES = {"fix": trunc, "not_equal": ne, "less": lt, "less_equal": le, "greater": gt,
            "greater_equal": ge}
#: functions with a PyTorch in-place method ``name_``
_WITH_IN_PLACE = [sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh, log1p,
                  expm1, log2, log10, exp2, rsqrt, reciprocal, erf, square, floor, ceil, trunc,
                  round, sign, frac, nan_to_num, logical_not, bitwise_not, clamp_min,
                  clamp_max, lerp, addcmul, addcdiv, floor_divide, remainder, fmod, eq, ne, lt,
                  le, gt, ge, logical_and, logical_or, logical_xor, bitwise_and, bitwise_or,
                  bitwise_xor, ops.exp, ops.log, ops.sqrt, ops.abs, ops.neg, ops.pow, ops.relu,
                  ops.sigmoid, ops.tanh]

__all__ = [f.__name__ for f in _UNARY + _BINARY] + list(_ALIASES)
fix, not_equal, less, less_equal, greater, greater_equal = trunc, ne, lt, le, gt, ge

#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {f.__name__: f for f in _UNARY + _BINARY}
TENSOR_METHODS.update(_ALIASES)
TENSOR_METHODS.update({f.__name__ + "_": _in_place(f) for f in _WITH_IN_PLACE})
TENSOR_METHODS.update({name + "_": _in_place(f, name + "_") for name, f in _ALIASES.items()})
TENSOR_METHODS.update({
    "__floordiv__": floor_divide, "__rfloordiv__": _reflected(floor_divide, "__rfloordiv__"),
    "__mod__": remainder, "__rmod__": _reflected(remainder, "__rmod__"),
    "__and__": bitwise_and, "__rand__": _reflected(bitwise_and, "__rand__"),
    "__or__": bitwise_or, "__ror__": _reflected(bitwise_or, "__ror__"),
    "__xor__": bitwise_xor, "__rxor__": _reflected(bitwise_xor, "__rxor__"),
    "__invert__": _invert, "__pos__": positive, "__round__": _round_method,
    "__ifloordiv__": _in_place(floor_divide, "__ifloordiv__"),
    "__imod__": _in_place(remainder, "__imod__"),
    "__iand__": _in_place(bitwise_and, "__iand__"),
    "__ior__": _in_place(bitwise_or, "__ior__"),
    "__ixor__": _in_place(bitwise_xor, "__ixor__"),
})
