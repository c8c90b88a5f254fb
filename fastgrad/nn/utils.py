"""Gradient utilities: clipping by norm, value or range, and regularisation penalties.

Clipping follows :mod:`torch.nn.utils`: the functions work in place on the ``.grad`` of the
given parameters (trailing ``_``), ignore parameters without a gradient, and
:func:`clip_grad_norm_` returns the total norm before clipping. When the parameters cover
whole arenas (every parameter an optimiser packed together, e.g. ``model.parameters()`` of a
model with one optimiser), the work is one fused kernel call over each arena's flat gradient
buffer instead of a loop over tensors.

Regularisation. Weight decay belongs to the optimisers (``weight_decay=``). To add a penalty
to the loss instead, the equivalent of a ``Module.regularize(l1=..., l2=...)`` convenience is::

    loss = criterion(model(x), y) \\
        + l1 * l1_penalty(model.parameters()) + l2 * l2_penalty(model.parameters())

:func:`l2_penalty` is :math:`\\sum w^2` (what PyTorch users write by hand), not
:math:`\\frac12 \\sum w^2`: its gradient is :math:`2w`, so SGD's ``weight_decay=λ`` equals a
penalty of ``(λ / 2) * l2_penalty(...)``. Penalise only the weights, not biases or
normalisation parameters, by passing those parameters alone.
"""
import math
import numbers
import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..backends import K
from ..ops import _ieee
from ..tensor import Tensor


# ----------------------------------------------------------------------------------- helpers
def _tensor_list(tensors, argument):
    """``tensors`` (a Tensor or an iterable of Tensors) as a list, TypeError otherwise."""
    if isinstance(tensors, Tensor):
        return [tensors]
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{argument} must be a Tensor or an iterable of Tensors, got "
                        f"{type(tensors).__name__}") from None
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{argument}[{i}] must be a Tensor, got {type(t).__name__}")
    return tensors


def _real(value, argument):
    """``value`` (a real number or a one-element Tensor) as a float, TypeError otherwise."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    return float(value)


def _norm_type(norm_type):
    """``norm_type`` as a float: a real number, or a string such as ``"inf"`` (PyTorch takes
    both)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (numbers.Real, str)):
        raise TypeError(f"norm_type must be a real number or 'inf', got "
                        f"{type(norm_type).__name__} {norm_type!r}")
    try:
        norm_type = float(norm_type)
    except ValueError:
        raise ValueError(f"norm_type must be a real number or 'inf', got {norm_type!r}") from None
    if not norm_type > 0:
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type}")
    return norm_type


def _combine(totals, norm_type):
    """The norm of several buffers from their norms (NaN and inf propagate)."""
    totals = np.asarray(totals, np.float64)
    if totals.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(totals.max())
    return float((totals ** norm_type).sum() ** (1.0 / norm_type))


def _clip_coefficient(total_norm, max_norm):
    """PyTorch's clip coefficient ``max_norm / (total_norm + 1e-6)``; the gradients are scaled
    only when it is below 1 (or NaN, from a NaN norm). The ``clip_grad_norm`` kernel applies
    the same rule to a single arena."""
    return max_norm / (total_norm + 1e-6)


def _needs_scaling(coef):
    return not coef >= 1.0


class _Buffer:
    """A flat gradient buffer to clip: a whole arena, or one loose gradient.

    Attributes:
        flat: the 1-D, C-contiguous gradient values (a view of the arena or of the gradient,
            or a copy of a non-contiguous gradient, written back by :meth:`write_back`).
        offsets: segment boundaries, one segment per parameter.
        positions: for each segment, the index of its parameter in the caller's list.
        shapes: for each segment, its parameter's shape.
        arena: the arena, or None for a loose gradient.
    """

    def __init__(self, flat, offsets, positions, shapes, arena=None, source=None):
        self.flat, self.offsets, self.positions, self.shapes = flat, offsets, positions, shapes
        self.arena, self._source = arena, source

    def write_back(self):
        if self._source is not None:
            self._source[...] = self.flat.reshape(self._source.shape)


def _loose_buffer(grad, position):
    offsets = np.array([0, grad.size], np.int64)
    if grad.flags.c_contiguous:
        return _Buffer(grad.reshape(-1), offsets, [position], [grad.shape])
    return _Buffer(np.ascontiguousarray(grad).reshape(-1), offsets, [position], [grad.shape],
                   source=grad)


def _arena_buffer(arena, positions):
    """The arena as one buffer; the slots of parameters without a gradient are zeroed (they
    hold stale values), so they count as zero."""
    for p in arena.params:
        if p._grad is None:
            p._grad_view[...] = 0
    return _Buffer(arena.grad, arena.offsets, positions, arena.shapes, arena=arena)


def _in_place(arena):
    """True when every gradient of the arena lives in its slot of the arena's buffer."""
    return arena.intact and all(p._grad is None or p._grad._data is p._grad_view
                                for p in arena.params)


def _gradient_buffers(params):
    """Partition the gradients of ``params`` into flat buffers: one per arena the list covers
    (contains exactly that arena's parameters), one per other gradient."""
    arena = params[0]._arena if params else None
    if arena is not None and len(params) == len(arena.params) \
            and all(map(operator.is_, params, arena.params)) and _in_place(arena):
        # the common case, a model's parameters as its optimiser packed them: no per-parameter
        # bookkeeping (it cost ~1 us a parameter on every clip)
        return [_arena_buffer(arena, list(range(len(params))))]
    position = {}
    for i, p in enumerate(params):
        position.setdefault(id(p), i)
    covered = {}
    if len(position) == len(params):  # a repeated parameter counts twice: per-tensor path
        for p in params:
            arena = p._arena
            if arena is not None and id(arena) not in covered and _in_place(arena) \
                    and all(id(q) in position for q in arena.params):
                covered[id(arena)] = arena
    buffers = [_arena_buffer(arena, [position[id(q)] for q in arena.params])
               for arena in covered.values()]
    for i, p in enumerate(params):
        if p._grad is not None and (p._arena is None or id(p._arena) not in covered):
            buffers.append(_loose_buffer(p._grad._data, i))
    return buffers


def _grad_dtype(params):
    """The dtype of the total norm: the gradients' (promoted), float32 without gradients."""
    grads = {p._grad._data.dtype for p in params if p._grad is not None}  # usually one
    return np.result_type(*grads) if grads else dtypes.default_float


def _first_nonfinite(buffers, norms):
    """``(position, shape)`` of the first parameter (in the caller's order) whose gradient
    norm is not finite, or None."""
    bad = [(position, buffer.shapes[j]) for buffer, per in zip(buffers, norms)
           for j, position in enumerate(buffer.positions) if not np.isfinite(per[j])]
    return min(bad, key=lambda item: item[0]) if bad else None


def _clip_buffers(buffers, max_norm, norm_type, keep_if_nonfinite):
    """Measure every buffer and scale them all when the total exceeds ``max_norm``.

    One buffer: one ``clip_grad_norm`` kernel call. Several: one ``segment_norms`` pass each,
    then one ``scale`` pass each when clipping is needed. A non-finite total leaves the
    gradients untouched when ``keep_if_nonfinite``. Each arena keeps its per-parameter norms in
    ``arena.last_norms`` (see :func:`clip_grad_norm_`).

    Returns:
        ``(total, norms)``: the total norm before clipping (a float) and, per buffer, a float64
        array with one norm per segment.
    """
    norms = [np.empty(len(b.offsets) - 1, np.float64) for b in buffers]
    if len(buffers) == 1:
        buffer = buffers[0]
        total = K.clip_grad_norm(buffer.flat, buffer.offsets, max_norm, norm_type,
                                 keep_if_nonfinite, norms[0])
        buffer.write_back()
    else:
        total = _combine([K.segment_norms(b.flat, b.offsets, norm_type, n)
                          for b, n in zip(buffers, norms)], norm_type)
        coef = _clip_coefficient(total, max_norm)
        if _needs_scaling(coef) and not (keep_if_nonfinite and not math.isfinite(total)):
            with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
                for buffer in buffers:
                    K.scale(buffer.flat, coef)
                    buffer.write_back()
    for buffer, per in zip(buffers, norms):
        if buffer.arena is not None:
            buffer.arena.last_norms, buffer.arena.last_norm_type = per, norm_type
    return total, norms


def _nonfinite_error(norm_type, culprit):
    """The error for a non-finite total norm; ``culprit`` is ``(position, shape)`` of the first
    non-finite gradient, or None when every gradient is finite and the sum overflowed."""
    if culprit is None:
        where = "every gradient is finite, but the norm overflows"
    else:
        position, shape = culprit
        where = f"first non-finite gradient: parameters[{position}] of shape {tuple(shape)}"
    return RuntimeError(
        f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
        f"so it cannot be clipped ({where}). To disable this error and scale the gradients by "
        "the non-finite norm anyway, set `error_if_nonfinite=False`")


# ---------------------------------------------------------------------------------- clipping
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Clip the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``; PyTorch's ``torch.nn.utils.clip_grad_norm_``.

    The total norm is the norm of all gradients viewed as one vector. The gradients are
    multiplied by

    .. math::
        c = \\min\\left(1, \\frac{\\text{max\\_norm}}{\\lVert g \\rVert + 10^{-6}}\\right),

    which keeps the direction of the update and bounds its size: the remedy for exploding
    gradients of Pascanu et al. PyTorch always multiplies; fastgrad multiplies only when
    ``c < 1`` (the result is the same, and the no-clip case leaves the gradients bit-identical
    and costs no write).

    When ``parameters`` cover whole arenas (they contain every parameter of an arena, as
    ``model.parameters()`` does for a model trained by one optimiser), each arena is one
    ``clip_grad_norm`` kernel call: a single pass yields the total norm, every parameter's own
    norm and, from those, the non-finite parameters; the scale follows in place only when
    needed. The per-parameter norms before clipping are kept for diagnostics: after the call,
    ``arena.last_norms`` is a float64 array with one norm per parameter of ``arena.params``,
    of type ``arena.last_norm_type`` (gradient monitors read them instead of measuring again).
    Other parameters take a per-tensor path with the same result.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are ignored.
        max_norm: the largest allowed total norm (fastgrad raises ValueError for a negative or
            NaN value, which PyTorch would apply).
        norm_type: the order p of the norm: any p > 0, or ``inf`` (largest absolute value).
        error_if_nonfinite: raise a RuntimeError, before any gradient is modified, when the
            total norm is NaN or inf; the message names the first offending parameter. When
            False, a non-finite norm propagates as in PyTorch (the gradients become NaN, or 0
            where finite for an inf norm).

    Returns:
        The total norm before clipping, a 0-d Tensor of the gradients' dtype (float32 when no
        parameter has a gradient).

    References:
        Pascanu, Mikolov and Bengio, "On the difficulty of training recurrent neural
        networks", ICML 2013.
    """
    params = _tensor_list(parameters, "parameters")
    max_norm = _real(max_norm, "max_norm")
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    norm_type = _norm_type(norm_type)
    dtype = _grad_dtype(params)
    buffers = _gradient_buffers(params)
    if not buffers:
        return Tensor(np.array(0.0, dtype))
    with np.errstate(all="ignore"):  # NaN and inf norms propagate silently, as in PyTorch
        total, norms = _clip_buffers(buffers, max_norm, norm_type, bool(error_if_nonfinite))
        if error_if_nonfinite and not math.isfinite(total):
            raise _nonfinite_error(norm_type, _first_nonfinite(buffers, norms))
        return Tensor(np.array(total).astype(dtype))


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False):
    """The norm of ``tensors`` viewed as one vector (e.g. a list of gradients); PyTorch 2.6's
    ``torch.nn.utils.get_total_norm``.

    Args:
        tensors: a Tensor or an iterable of Tensors.
        norm_type: the order p > 0 of the norm, or ``inf``.
        error_if_nonfinite: raise a RuntimeError when the norm is NaN or inf.

    Returns:
        A 0-d Tensor of the tensors' dtype (float32 for no tensors).
    """
    tensors = _tensor_list(tensors, "tensors")
    norm_type = _norm_type(norm_type)
    if not tensors:
        return Tensor(np.array(0.0, dtypes.default_float))
    buffers = [_loose_buffer(t._data, i) for i, t in enumerate(tensors)]
    norms = [np.empty(1, np.float64) for _ in buffers]
    with np.errstate(all="ignore"):  # NaN and inf norms propagate silently, as in PyTorch
        total = _combine([K.segment_norms(b.flat, b.offsets, norm_type, n)
                          for b, n in zip(buffers, norms)], norm_type)
        if error_if_nonfinite and not math.isfinite(total):
            position = next(i for i, n in enumerate(norms) if not np.isfinite(n[0]))
            raise RuntimeError(f"The total norm of order {norm_type} for `tensors` is "
                               f"non-finite (first non-finite: tensors[{position}] of shape "
                               f"{tensors[position].shape})")
        return Tensor(np.array(total).astype(np.result_type(*[t.dtype for t in tensors])))


def clip_grads_with_norm_(parameters, max_norm, total_norm):
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm +
    1e-6))`` for a total norm measured beforehand; PyTorch 2.6's
    ``torch.nn.utils.clip_grads_with_norm_``. Like :func:`clip_grad_norm_`, it writes only when
    the coefficient is below 1, one pass per covered arena.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are ignored.
        max_norm: the largest allowed total norm.
        total_norm: the total norm of their gradients (a number or a one-element Tensor).
    """
    params = _tensor_list(parameters, "parameters")
    max_norm = _real(max_norm, "max_norm")
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    with np.errstate(all="ignore"):
        coef = _clip_coefficient(_real(total_norm, "total_norm"), max_norm)
    if _needs_scaling(coef):
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
            for buffer in _gradient_buffers(params):
                K.scale(buffer.flat, coef)
                buffer.write_back()


def clip_grad_range_(parameters, min_value, max_value):
    """Clamp every gradient of ``parameters`` into ``[min_value, max_value]`` in place.

    fastgrad's asymmetric form of :func:`clip_grad_value_` (PyTorch has only the symmetric
    one): e.g. ``clip_grad_range_(params, -1.0, 0.5)``. One ``clip_grad_range`` kernel call per
    covered arena, one per other gradient. A value clip changes the gradient's direction;
    prefer :func:`clip_grad_norm_` unless single outliers are the problem. NaN stays NaN.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are ignored.
        min_value: the lower bound (may be ``-inf``).
        max_value: the upper bound, at least ``min_value`` (may be ``inf``).
    """
    params = _tensor_list(parameters, "parameters")
    low, high = _real(min_value, "min_value"), _real(max_value, "max_value")
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"need min_value <= max_value, got min_value={low}, "
                         f"max_value={high}")
    with np.errstate(all="ignore"):
        for buffer in _gradient_buffers(params):
            K.clip_grad_range(buffer.flat, low, high)
            buffer.write_back()


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient of ``parameters`` into ``[-clip_value, clip_value]`` in place;
    PyTorch's ``torch.nn.utils.clip_grad_value_`` (see :func:`clip_grad_range_`).

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are ignored.
        clip_value: the largest allowed absolute value, non-negative (fastgrad raises
            ValueError for a negative one).
    """
    clip_value = _real(clip_value, "clip_value")
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be a non-negative number, got {clip_value}")
    clip_grad_range_(parameters, -clip_value, clip_value)


# ---------------------------------------------------------------------------- regularisation
@_ieee
class _Penalty(Function):
    """:math:`\\sum_k \\sum |w_k|` (order 1) or :math:`\\sum_k \\sum w_k^2` (order 2) of any
    number of tensors as one graph node, summed in float64."""

    def forward(self, *arrays, order, dtype):
        self.arrays, self.order = arrays, order
        if order == 1:
            total = sum(float(np.abs(a).sum(dtype=np.float64)) for a in arrays)
        else:
            total = sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays)
        return np.array(total, dtype)

    def backward(self, grad):
        grads = []
        for a, needed in zip(self.arrays, self.needs_input_grad):
            if not needed:
                grads.append(None)
            elif self.order == 1:
                grads.append((grad * np.sign(a)).astype(a.dtype, copy=False))
            else:
                grads.append((2 * grad * a).astype(a.dtype, copy=False))
        return tuple(grads)


def _penalty(parameters, order):
    params = _tensor_list(parameters, "parameters")
    for i, p in enumerate(params):
        if not dtypes.is_floating(p.dtype):
            raise TypeError(f"parameters[{i}] must be a floating tensor, got dtype {p.dtype}")
    dtype = np.result_type(*[p.dtype for p in params]) if params else dtypes.default_float
    return _Penalty.apply(*params, order=order, dtype=dtype)


def l1_penalty(parameters):
    """The L1 penalty :math:`\\sum_k \\sum_i |w_{k,i}|` of ``parameters``, a differentiable 0-d
    Tensor to add to the loss (``loss + l1 * l1_penalty(model.parameters())``).

    Its gradient is :math:`\\operatorname{sign}(w)` (0 at 0, as PyTorch's ``abs``); the
    penalty drives weights to exactly zero (sparsity). Summed in float64, returned in the
    parameters' dtype (float32 for no parameters).
    """
    return _penalty(parameters, 1)


def l2_penalty(parameters):
    """The L2 penalty :math:`\\sum_k \\sum_i w_{k,i}^2` of ``parameters`` (no factor 1/2), a
    differentiable 0-d Tensor to add to the loss (``loss + l2 * l2_penalty(...)``).

    Its gradient is :math:`2w`: ``(λ / 2) * l2_penalty(params)`` is SGD's ``weight_decay=λ``.
    Summed in float64, returned in the parameters' dtype (float32 for no parameters).
    """
    return _penalty(parameters, 2)
