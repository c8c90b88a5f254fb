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

import numpy as np

from .. import clipping
from .. import dtypes
from .._checks import check_norm_type, real, tensor_list
from ..backends import K
from ..device import empty, to_host
from ..tensor import Tensor
from .functional import _Penalty


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
    ``arena.clip_norms(norm_type)`` is a float64 array with one norm per parameter of
    ``arena.params`` (gradient monitors read them instead of measuring again).
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
    params = tensor_list(parameters, "parameters")
    max_norm = real(max_norm, "max_norm", tensor=True)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    norm_type = check_norm_type(norm_type)
    dtype = clipping.grad_dtype(params)
    buffers = clipping.gradient_buffers(params)
    if not buffers:
        return Tensor(np.array(0.0, dtype))
    with np.errstate(all="ignore"):  # NaN and inf norms propagate silently, as in PyTorch
        total, norms = clipping.clip_buffers(buffers, max_norm, norm_type,
                                             bool(error_if_nonfinite))
        if error_if_nonfinite and not math.isfinite(total):
            raise clipping.nonfinite_error(norm_type, clipping.first_nonfinite(buffers, norms))
        return clipping.total_tensor(total, dtype, buffers[0].flat)


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
    tensors = tensor_list(tensors, "tensors")
    norm_type = check_norm_type(norm_type)
    if not tensors:
        return Tensor(np.array(0.0, dtypes.default_float))
    buffers = [clipping.loose_buffer(t._data, i) for i, t in enumerate(tensors)]
    norms = [empty(1, np.float64, b.flat) for b in buffers]
    with np.errstate(all="ignore"):  # NaN and inf norms propagate silently, as in PyTorch
        totals = [K.segment_norms(b.flat, b.offsets, norm_type, n)
                  for b, n in zip(buffers, norms)]
        # one tensor's norm stays where the kernel left it (on a device: unread)
        total = totals[0] if len(totals) == 1 else clipping.combine(totals, norm_type)
        if error_if_nonfinite and not math.isfinite(total):
            position = next(i for i, n in enumerate(norms) if not np.isfinite(to_host(n)[0]))
            raise RuntimeError(f"The total norm of order {norm_type} for `tensors` is "
                               f"non-finite (first non-finite: tensors[{position}] of shape "
                               f"{tensors[position].shape})")
        return clipping.total_tensor(total, np.result_type(*[t.dtype for t in tensors]),
                                     buffers[0].flat)


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
    params = tensor_list(parameters, "parameters")
    max_norm = real(max_norm, "max_norm", tensor=True)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    with np.errstate(all="ignore"):
        coef = clipping.clip_coefficient(real(total_norm, "total_norm", tensor=True), max_norm)
    if clipping.needs_scaling(coef):
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
            for buffer in clipping.gradient_buffers(params):
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
    params = tensor_list(parameters, "parameters")
    low, high = real(min_value, "min_value", tensor=True), real(max_value, "max_value", tensor=True)
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"need min_value <= max_value, got min_value={low}, "
                         f"max_value={high}")
    with np.errstate(all="ignore"):
        for buffer in clipping.gradient_buffers(params):
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
    clip_value = real(clip_value, "clip_value", tensor=True)
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be a non-negative number, got {clip_value}")
    clip_grad_range_(parameters, -clip_value, clip_value)


# ---------------------------------------------------------------------------- regularisation
def _penalty(parameters, order):
    params = tensor_list(parameters, "parameters")
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
