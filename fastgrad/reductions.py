"""Reductions beyond ``sum``/``mean``/``max`` of :mod:`fastgrad.ops` (PyTorch's names:
``norm``, ``std``, ``var``, ``min``, ``prod``, ``cumsum``, ``logsumexp``, ``any``, ``all``,
``median``, ``sort``, ``topk``...).

Signatures, result dtypes and gradients follow PyTorch, including its choices where the
derivative is not unique: ties in ``amax``/``amin``/``min()`` share the gradient equally, the
2-norm of a zero vector has gradient 0, ``prod`` differentiates correctly through zeros.
Every reduction is deterministic: sorts are stable, ties resolve to the lowest index.
Native-function keywords ``axis``/``keepdims`` are accepted for ``dim``/``keepdim`` where
PyTorch accepts them (not by ``norm``, a Python function in PyTorch too).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them.
"""
import builtins
import collections
import math
import numbers

import numpy as np

from . import dtypes
from . import tensor as _tensor  # the module: tensor.py imports this one while it loads
from ._checks import flag, ieee, normalize_dim, normalize_dims, real, tensor_input
from .autograd import Function
from .device import array_of, contiguous, full, zeros
from .ops import (
    _arg_extreme,
    _extreme,
    _floating,
    _reduced_axis,
    clone,
    evenly_distribute,
    mean,
    numpy_aliases,
    reshape,
    result_dtype,
    squeeze,
)

MedianResult = collections.namedtuple("MedianResult", ["values", "indices"])
KthvalueResult = collections.namedtuple("KthvalueResult", ["values", "indices"])
SortResult = collections.namedtuple("SortResult", ["values", "indices"])
TopkResult = collections.namedtuple("TopkResult", ["values", "indices"])


def _new(array, dtype=None):
    """A Tensor (no gradient) around a result; NumPy gives scalars for full reductions."""
    array = array_of(array)
    return _tensor.Tensor(array if dtype is None else array.astype(dtype, copy=False))


def _first(indices, axis, start, stop):
    """A C-order copy of ``indices[start:stop]`` along ``axis`` (sorted positions kept), on
    their device."""
    return contiguous(indices[(slice(None),) * axis + (slice(start, stop),)])


def _size(shape, axes):
    """How many elements a reduction over ``axes`` (None: all) combines."""
    return math.prod(shape if axes is None else [shape[a] for a in axes])


def _require_elements(name, input, axes):
    """PyTorch's RuntimeError for a reduction without an identity over no element."""
    if input.numel() == 0 and (axes is None or builtins.any(input.shape[a] == 0
                                                            for a in axes)):
        raise RuntimeError(f"{name}(): cannot reduce over an empty dimension of an input of "
                           f"shape {tuple(input.shape)}: the operation has no identity")


def _require_floating(name, input):
    if input.dtype.kind != "f":
        raise RuntimeError(f"{name}: needs a floating input, got dtype {input.dtype}")
    return input


def _squeezed(kept, axes, keepdim):
    """The shape of a reduction's result, from its shape with ``keepdims=True``."""
    if keepdim:
        return kept
    return tuple(s for i, s in enumerate(kept) if axes is not None and i not in axes)


# ------------------------------------------------------------------------- selections
class TakeAlong(Function):
    """``x``'s elements at ``indices`` along ``axis`` (``np.take_along_axis``); the indices
    of one slice are distinct (a sort, a top-k, one index per slice)."""

    def forward(self, x, indices, axis):
        self.shape, self.indices, self.axis = x.shape, indices, axis
        return np.take_along_axis(x, indices, axis=axis)

    def backward(self, grad):
        out = zeros(self.shape, grad.dtype, grad)
        np.put_along_axis(out, self.indices, grad, axis=self.axis)
        return out, None, None


def _gathered(input, indices, axis, keepdim):
    """(values, int64 indices) of ``input`` at ``indices`` (a size-1 ``axis``) along ``axis``;
    without ``keepdim`` that axis is dropped from both."""
    values = TakeAlong.apply(input, indices, axis)
    if not keepdim:
        values, indices = squeeze(values, axis), np.squeeze(indices, axis)
    return values, _new(indices, np.int64)


def _zero_dim_pair(input):
    """(values, indices) along dim 0 or -1 of a 0-d tensor: itself, at index 0."""
    return clone(input), _new(0, np.int64)


# ------------------------------------------------------------------------ min, amax, amin
@ieee
class _Extreme(Function):
    """amax/amin: ties along the reduced dims share the gradient equally, as in PyTorch."""

    def forward(self, x, axes, keepdim):
        out = self.function(x, axis=axes, keepdims=True)
        self.x, self.out, self.axes = x, out, axes
        return out.reshape(_squeezed(out.shape, axes, keepdim))

    def backward(self, grad):
        hits = self.x == self.out
        count = hits.sum(axis=self.axes, keepdims=True).astype(grad.dtype)
        return (grad.reshape(self.out.shape) / count) * hits, None, None


class Amax(_Extreme):
    function = staticmethod(np.max)


class Amin(_Extreme):
    function = staticmethod(np.min)


@numpy_aliases
def amax(input, dim=(), keepdim=False):
    """The largest values over ``dim`` (an int or a tuple; () or None: all elements); ties
    share the gradient equally."""
    input = tensor_input(input)
    axes = normalize_dims(dim, input.ndim)
    _require_elements("amax", input, axes)
    return Amax.apply(input, axes, flag(keepdim, "keepdim"))


@numpy_aliases
def amin(input, dim=(), keepdim=False):
    """The smallest values over ``dim``; see :func:`amax`."""
    input = tensor_input(input)
    axes = normalize_dims(dim, input.ndim)
    _require_elements("amin", input, axes)
    return Amin.apply(input, axes, flag(keepdim, "keepdim"))


@numpy_aliases
def min(input, dim=None, keepdim=False):
    """PyTorch's three ``min``: the smallest element (ties share the gradient); with ``dim``
    a ``(values, indices)`` pair along it (the first index of a tie); with a tensor in place
    of ``dim``, :func:`fastgrad.minimum`."""
    return _extreme("min", input, dim, keepdim)


@numpy_aliases
def argmin(input, dim=None, keepdim=False):
    """Indices of the smallest elements (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme("argmin", np.argmin, input, dim, keepdim)


# --------------------------------------------------------------------------------- norms
@ieee
class Norm(Function):
    """The vector ``p``-norm over ``axes``, with PyTorch's gradient (``linalg.vector_norm``):
    0 at a zero vector for p = 2 and p > 1, ties of the inf-norm sharing the gradient."""

    def forward(self, x, p, axes, keepdim):
        a = np.abs(x)
        if p == 2:
            out = np.sqrt(np.sum(a * a, axis=axes, keepdims=True))
        elif p == 1:
            out = np.sum(a, axis=axes, keepdims=True)
        elif p == math.inf:
            out = np.max(a, axis=axes, keepdims=True)
        elif p == -math.inf:
            out = np.min(a, axis=axes, keepdims=True)
        elif p == 0:
            out = np.sum(x != 0, axis=axes, keepdims=True, dtype=x.dtype)
        else:
            out = np.sum(a ** p, axis=axes, keepdims=True) ** (1 / p)
        self.x, self.p, self.axes, self.out = x, p, axes, out
        return out.reshape(_squeezed(out.shape, axes, keepdim))

    def backward(self, grad):
        x, p, norm = self.x, self.p, self.out
        grad = grad.reshape(norm.shape)
        zero = x.dtype.type(0)
        if p == 0:
            return np.zeros_like(x), None, None, None
        if p == 1:
            result = np.sign(x) * grad
        elif p == 2:
            result = grad * np.where(norm == 0, zero, x / norm)
        elif math.isinf(p):
            a = np.abs(x)
            hits = (a == norm) | np.isnan(a)
            count = hits.sum(axis=self.axes, keepdims=True).astype(grad.dtype)
            result = np.sign(x) * ((grad / count) * hits)
        elif p < 1:
            scaled = np.sign(x) * np.where(x == 0, zero, np.abs(x) ** (p - 1))
            result = scaled * grad * norm ** (1 - p)
        else:
            scaled = np.sign(x) * np.abs(x) ** (p - 1) if p < 2 else x * np.abs(x) ** (p - 2)
            result = scaled * np.where(norm == 0, zero, grad / norm ** (p - 1))
        return result, None, None, None


def norm_dtype(x, dtype, name):
    """``x`` (floating) cast to a norm's ``dtype=``, which must be floating and at least as
    wide as ``x``'s, as in PyTorch."""
    _require_floating(name, x)
    if dtype is None:
        return x
    dtype = dtypes.resolve(dtype)
    if dtype.kind != "f" or not np.can_cast(x.dtype, dtype, "safe"):
        raise RuntimeError(f"{name}: dtype must be a floating dtype at least as wide as the "
                           f"input's {x.dtype}, got {dtype}")
    return result_dtype(dtype, x, name)


@numpy_aliases
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The vector ``ord``-norm of ``x`` over ``dim`` (an int, a tuple, or None: all
    elements), as ``torch.linalg.vector_norm``: ``ord`` any real number, ``inf`` (largest
    magnitude), ``-inf`` (smallest) or 0 (the count of nonzero elements).

    Args:
        x: a floating tensor.
        dtype: compute in this floating dtype (at least as wide as ``x``'s) and return it.
    """
    x = norm_dtype(tensor_input(x), dtype, "linalg.vector_norm")
    ord = real(ord, "linalg.vector_norm: ord")
    axes = normalize_dims(dim, x.ndim)
    if ord < 0 or ord == math.inf:
        _require_elements(f"linalg.vector_norm (ord={ord})", x, axes)
    return Norm.apply(x, ord, axes, flag(keepdim, "keepdim"))


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The norm of ``input`` over ``dim``, as ``torch.norm``: a number ``p`` gives the vector
    p-norm (:func:`fastgrad.linalg.vector_norm`); ``'fro'`` the 2-norm over at most two dims
    (or all elements when ``dim`` is None). The nuclear norm (``'nuc'``) is not supported.
    """
    input = tensor_input(input)
    if isinstance(p, str):
        if p == "fro":
            if isinstance(dim, (tuple, list)) and len(dim) > 2:
                raise RuntimeError(f"norm: p='fro' takes at most 2 dims, got dim={dim}")
            return vector_norm(input, 2, dim, keepdim, dtype=dtype)
        if p == "nuc":
            raise RuntimeError("norm: the nuclear norm (p='nuc') is not supported by fastgrad")
        raise RuntimeError(f"norm: order {p!r} is not supported (use a number, 'fro')")
    return vector_norm(input, 2 if p is None else p, dim, keepdim, dtype=dtype)


# ------------------------------------------------------------------------- std and var
@ieee
class Variance(Function):
    """The variance over ``axes`` with ``correction`` subtracted from the count (two passes:
    a one-pass sum of squares cancels catastrophically), or its square root (``root``),
    whose gradient PyTorch sets to 0 where the deviation is 0."""

    def forward(self, x, axes, correction, keepdim, root):
        count = _size(x.shape, axes)
        self.denominator = builtins.max(0, count - correction)
        # sum / count, not x.mean(): over no element that warns; here it is NaN, quietly
        self.deviation = x - np.sum(x, axis=axes, keepdims=True) / count
        out = np.sum(self.deviation ** 2, axis=axes, keepdims=True) / self.denominator
        out = np.sqrt(out) if root else out
        self.out, self.root = out, root
        return out.reshape(_squeezed(out.shape, axes, keepdim))

    def backward(self, grad):
        grad = grad.reshape(self.out.shape)
        if self.root:
            grad = np.where(self.out == 0, self.out.dtype.type(0), grad / (2 * self.out))
        return grad * (2 / self.denominator) * self.deviation, None, None, None, None


def _correction(dim, unbiased, keepdim, correction):
    """``(dim, correction)`` from PyTorch's call forms ``var(input, unbiased)``,
    ``var(input, dim, unbiased, keepdim)`` and ``var(input, dim, *, correction, keepdim)``."""
    if isinstance(dim, (bool, np.bool_)):
        if unbiased is not None or keepdim is not False:
            raise TypeError("var(input, unbiased) takes no other arguments; use "
                            "var(input, dim, unbiased, keepdim)")
        dim, unbiased = None, dim
    if unbiased is not None:
        if correction is not None:
            raise TypeError(f"pass unbiased or correction, not both (got unbiased={unbiased}, "
                            f"correction={correction})")
        return dim, 1 if flag(unbiased, "unbiased") else 0
    if correction is None:
        return dim, 1
    if isinstance(correction, (bool, np.bool_)) or not isinstance(correction, numbers.Real):
        raise TypeError(f"correction must be a number, got {type(correction).__name__} "
                        f"{correction!r}")
    return dim, correction


def _variance(name, input, dim, unbiased, keepdim, correction, root):
    input = _require_floating(name, tensor_input(input))
    dim, correction = _correction(dim, unbiased, keepdim, correction)
    return Variance.apply(input, normalize_dims(dim, input.ndim), correction,
                          flag(keepdim, "keepdim"), root)


@numpy_aliases
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """The variance over ``dim`` (None: all elements), dividing by ``N - correction``
    (default 1, Bessel's correction; ``unbiased=False`` is ``correction=0``). Over fewer
    than ``correction`` elements it is inf or NaN, as in PyTorch."""
    return _variance("var", input, dim, unbiased, keepdim, correction, False)


@numpy_aliases
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """The standard deviation over ``dim``; see :func:`var`. Its gradient is 0 where it is 0."""
    return _variance("std", input, dim, unbiased, keepdim, correction, True)


@numpy_aliases
def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var, mean)`` over ``dim``; see :func:`var`."""
    values = _variance("var_mean", input, dim, unbiased, keepdim, correction, False)
    dim, _ = _correction(dim, unbiased, keepdim, correction)
    return values, mean(input, () if dim is None else dim, keepdim)


@numpy_aliases
def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std, mean)`` over ``dim``; see :func:`var`."""
    values = _variance("std_mean", input, dim, unbiased, keepdim, correction, True)
    dim, _ = _correction(dim, unbiased, keepdim, correction)
    return values, mean(input, () if dim is None else dim, keepdim)


# ----------------------------------------------------------------- products and scans
def _exclusive_cumprod(x, axis):
    """The product of the elements before each one along ``axis`` (1 for the first)."""
    out = np.ones_like(x)
    if x.shape[axis] > 1:
        after, before = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        after[axis], before[axis] = slice(1, None), slice(None, -1)
        out[tuple(after)] = np.cumprod(x[tuple(before)], axis=axis)
    return out


def _reversed_cumsum(x, axis):
    return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)


@ieee
class Prod(Function):
    def forward(self, x, axis, keepdim, dtype):
        out = np.prod(x, axis=axis, keepdims=True, dtype=dtype)
        self.x, self.axis, self.kept = x, axis, out.shape
        return out if keepdim else np.squeeze(out, axis)

    def backward(self, grad):
        # the product of the others, from both sides: exact with zeros, where out / x is not
        x, axis = self.x, self.axis
        others = _exclusive_cumprod(x, axis) * np.flip(
            _exclusive_cumprod(np.flip(x, axis), axis), axis)
        return grad.reshape(self.kept) * others, None, None, None


def _accumulated(input, dtype, name):
    """``(input, accumulator)`` for a product or cumulative sum: ``input`` cast to ``dtype``
    and run in it when given, else as it is, with int64 for integer and bool inputs, as in
    PyTorch."""
    if dtype is not None:
        input = result_dtype(dtype, input, name)
        return input, input.dtype
    return input, np.dtype(np.int64) if input.dtype.kind in "biu" else input.dtype


@numpy_aliases
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """The product of all elements, or along the one dimension ``dim``; the gradient is exact
    with zeros in the input (the product of the other elements)."""
    input = tensor_input(input)
    if dim is not None and isinstance(dim, (tuple, list)):
        raise TypeError(f"prod: dim must be an int, got {dim!r}")
    keepdim = flag(keepdim, "keepdim")
    if dim is None and keepdim:
        raise TypeError("prod(input) over all elements takes no keepdim; pass dim")
    input, accumulate = _accumulated(input, dtype, "prod")
    axis = None if dim is None else normalize_dim(dim, input.ndim)
    if axis is None or input.ndim == 0:  # all elements, as a 0-d result
        return Prod.apply(reshape(input, -1), 0, False, accumulate)
    return Prod.apply(input, axis, keepdim, accumulate)


@ieee
class Cumsum(Function):
    def forward(self, x, axis, dtype):
        self.axis = axis
        return np.cumsum(x, axis=axis, dtype=dtype)

    def backward(self, grad):
        return _reversed_cumsum(grad, self.axis), None, None


@ieee
class Cumprod(Function):
    def forward(self, x, axis, dtype):
        self.x, self.axis = x, axis
        self.out = np.cumprod(x, axis=axis, dtype=dtype)
        return self.out

    def backward(self, grad):
        x, axis = self.x, self.axis
        if (x != 0).all():
            return _reversed_cumsum(grad * self.out, axis) / x, None, None
        # with zeros: d out_j / d x_k = (prod of x_i, i < k) * (prod of x_i, k < i <= j),
        # the second factor summed against grad by a backward recurrence along axis
        x_, grad_ = np.moveaxis(x, axis, 0), np.moveaxis(grad, axis, 0)
        before = _exclusive_cumprod(x_, 0)
        result, running = np.empty_like(grad_), np.zeros_like(grad_[0])
        for k in range(x_.shape[0] - 1, -1, -1):
            running = grad_[k] + (x_[k + 1] * running if k + 1 < x_.shape[0] else 0)
            result[k] = before[k] * running
        return np.moveaxis(result, 0, axis), None, None


def _scan(function_class, name, input, dim, dtype):
    input = tensor_input(input)
    input, accumulate = _accumulated(input, dtype, name)
    axis = normalize_dim(dim, input.ndim)
    if input.ndim == 0:
        return reshape(function_class.apply(reshape(input, 1), 0, accumulate), ())
    return function_class.apply(input, axis, accumulate)


@numpy_aliases
def cumsum(input, dim, *, dtype=None):
    """The running sums along ``dim`` (integers and bools accumulate in int64)."""
    return _scan(Cumsum, "cumsum", input, dim, dtype)


@numpy_aliases
def cumprod(input, dim, *, dtype=None):
    """The running products along ``dim``; the gradient is exact with zeros in the input."""
    return _scan(Cumprod, "cumprod", input, dim, dtype)


@ieee
class LogSumExp(Function):
    def forward(self, x, axes, keepdim):
        shift = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
        shift = np.where(np.isinf(shift), x.dtype.type(0), shift)  # all -inf, or an inf
        out = np.log(np.sum(np.exp(x - shift), axis=axes, keepdims=True)) + shift
        self.x, self.out = x, out
        return out.reshape(_squeezed(out.shape, axes, keepdim))

    def backward(self, grad):
        return grad.reshape(self.out.shape) * np.exp(self.x - self.out), None, None


@numpy_aliases
def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(input))) over ``dim``, shifted by the maximum so nothing overflows
    (integer inputs give float32)."""
    input = _floating(input)
    return LogSumExp.apply(input, normalize_dims(dim, input.ndim), flag(keepdim, "keepdim"))


# ----------------------------------------------------------------------------- logical
def _truth(ufunc, input, dim, keepdim):
    input = tensor_input(input)
    # unlike sum's, any/all's empty dim list reduces nothing (each element's truth), as in
    # PyTorch
    empty = isinstance(dim, (tuple, list)) and not dim
    out = array_of(ufunc(input._data, axis=() if empty else normalize_dims(dim, input.ndim),
                         keepdims=flag(keepdim, "keepdim")))
    # uint8 in, uint8 out, as in PyTorch (a legacy of uint8 masks)
    return _new(out, np.uint8 if input.dtype == np.uint8 else None)


@numpy_aliases
def any(input, dim=None, keepdim=False):
    """True where any element over ``dim`` (an int, a tuple or None: all) is nonzero."""
    return _truth(np.any, input, dim, keepdim)


@numpy_aliases
def all(input, dim=None, keepdim=False):
    """True where every element over ``dim`` is nonzero."""
    return _truth(np.all, input, dim, keepdim)


@numpy_aliases
def count_nonzero(input, dim=None):
    """The number of nonzero elements over ``dim`` (int64)."""
    input = tensor_input(input)
    return _new(np.count_nonzero(input._data, axis=normalize_dims(dim, input.ndim)),
                np.int64)


# ---------------------------------------------------------------- order statistics
def _sort_indices(x, axis, descending):
    """Stable sort order along ``axis``: equal elements keep their order, also descending
    (sorting the reversed input and reversing back); NaN sorts above inf, as in PyTorch."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    flipped = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return np.flip(x.shape[axis] - 1 - flipped, axis)


@ieee
class MedianAll(Function):
    def forward(self, x):
        flat = x.reshape(-1)
        if flat.size == 0 or np.isnan(flat).any():
            self.out = full((), np.nan, x.dtype, x)
        else:
            self.out = np.partition(flat, (flat.size - 1) // 2)[(flat.size - 1) // 2]
        self.x = x
        return self.out

    def backward(self, grad):
        return evenly_distribute(grad, self.x, self.out)


def _median_index(x, axis):
    """The index of the lower median along ``axis`` (kept as a size-1 axis), or of the first
    NaN where a slice holds one."""
    k = (x.shape[axis] - 1) // 2
    index = _first(_sort_indices(x, axis, False), axis, k, k + 1)
    if x.dtype.kind == "f":
        nans = np.isnan(x)
        first_nan = np.argmax(nans, axis=axis, keepdims=True)
        index = np.where(nans.any(axis=axis, keepdims=True), first_nan, index)
    return index


@numpy_aliases
def median(input, dim=None, keepdim=False):
    """The lower median of all elements (NaN if any is NaN; ties share the gradient), or
    with ``dim`` a ``(values, indices)`` pair along it."""
    input = tensor_input(input)
    keepdim = flag(keepdim, "keepdim")
    if dim is None:
        if input.dtype.kind != "f" and input.numel() == 0:
            raise RuntimeError("median() of an empty integer tensor has no value")
        return MedianAll.apply(input)
    axis = _reduced_axis("median", input, dim)
    if axis is None:
        return MedianResult(*_zero_dim_pair(input))
    return MedianResult(*_gathered(input, _median_index(input._data, axis), axis, keepdim))


@numpy_aliases
def kthvalue(input, k, dim=-1, keepdim=False):
    """The ``k``-th smallest element (1-based) along ``dim`` and its index."""
    input = tensor_input(input)
    keepdim = flag(keepdim, "keepdim")
    axis = normalize_dim(dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k={k!r} out of range for dimension "
                           f"{dim} of size {size}")
    if input.ndim == 0:
        return KthvalueResult(*_zero_dim_pair(input))
    index = _first(_sort_indices(input._data, axis, False), axis, k - 1, k)
    return KthvalueResult(*_gathered(input, index, axis, keepdim))


def _sorted(input, dim, descending, count=None):
    """(values, indices) of ``input`` sorted along ``dim``, the first ``count`` only."""
    axis = normalize_dim(dim, input.ndim)
    if input.ndim == 0:
        return _zero_dim_pair(input)
    indices = _sort_indices(input._data, axis, flag(descending, "descending"))
    if count is not None:
        indices = _first(indices, axis, 0, count)
    return TakeAlong.apply(input, indices, axis), _new(indices, np.int64)


@numpy_aliases
def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)`` of ``input`` sorted along ``dim``. Always stable (``stable`` is
    accepted for PyTorch's signature): equal elements keep their order."""
    flag(stable, "stable")
    return SortResult(*_sorted(tensor_input(input), dim, descending))


@numpy_aliases
def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim`` (stably; see :func:`sort`)."""
    flag(stable, "stable")
    return _sorted(tensor_input(input), dim, descending)[1]


@numpy_aliases
def topk(input, k, dim=-1, largest=True, sorted=True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements along
    ``dim``, always in sorted order; of equal elements the lower index comes first (PyTorch
    leaves the order of ties unspecified)."""
    input = tensor_input(input)
    flag(sorted, "sorted")
    axis = normalize_dim(dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= size:
        raise RuntimeError(f"topk: selected index k={k!r} out of range for dimension {dim} "
                           f"of size {size}")
    if input.ndim == 0 and k == 0:
        raise RuntimeError("topk: k=0 of a 0-d tensor gives no element")
    return TopkResult(*_sorted(input, dim, largest, int(k)))


_FUNCTIONS = [min, argmin, amax, amin, norm, std, var, std_mean, var_mean, prod, cumsum,
              cumprod, logsumexp, any, all, count_nonzero, median, kthvalue, sort, argsort,
              topk]

__all__ = [f.__name__ for f in _FUNCTIONS]

#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {f.__name__: f for f in _FUNCTIONS if f not in (std_mean, var_mean)}
