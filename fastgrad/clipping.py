"""The gradient-clipping core: gradients partitioned into flat buffers (whole arenas, or loose
gradients), measured and scaled by the arena kernels.

:mod:`fastgrad.nn.utils` builds PyTorch's clipping API on it, and
:class:`fastgrad.optim.SkipNonFinite` its non-finite check; one implementation serves both.
"""
import math
import operator

import numpy as np

from . import dtypes
from .arena import arena_of
from .backends import K
from .device import contiguous, empty, full, is_array, to_host


def combine(totals, norm_type):
    """The norm of several buffers from their norms (NaN and inf propagate), a Python float:
    a total on a device (a 0-d array) is read on the host here."""
    totals = np.array([float(total) for total in totals], np.float64)
    if totals.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(totals.max())
    return float((totals ** norm_type).sum() ** (1.0 / norm_type))


def clip_coefficient(total_norm, max_norm):
    """PyTorch's clip coefficient ``max_norm / (total_norm + 1e-6)``; the gradients are scaled
    only when it is below 1 (or NaN, from a NaN norm). The ``clip_grad_norm`` kernel applies
    the same rule to a single arena."""
    return max_norm / (total_norm + 1e-6)


def needs_scaling(coef):
    return not coef >= 1.0


class Buffer:
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


def loose_buffer(grad, position):
    offsets = np.array([0, grad.size], np.int64)
    if grad.flags.c_contiguous:
        return Buffer(grad.reshape(-1), offsets, [position], [grad.shape])
    return Buffer(contiguous(grad).reshape(-1), offsets, [position], [grad.shape],
                   source=grad)


def arena_buffer(arena, positions):
    """The arena as one buffer; the slots of parameters without a gradient are zeroed (they
    hold stale values), so they count as zero."""
    arena.zero_stale()
    return Buffer(arena.grad, arena.offsets, positions, arena.shapes, arena=arena)


def gradient_buffers(params):
    """Partition the gradients of ``params`` into flat buffers: one per arena the list covers
    (contains exactly that arena's parameters), one per other gradient."""
    arena = arena_of(params[0]) if params else None
    if arena is not None and len(params) == len(arena.params) \
            and all(map(operator.is_, params, arena.params)) and arena.holds_grads():
        # the common case, a model's parameters as its optimiser packed them: no per-parameter
        # bookkeeping (it cost ~1 us a parameter on every clip)
        return [arena_buffer(arena, list(range(len(params))))]
    position = {}
    for i, p in enumerate(params):
        position.setdefault(id(p), i)
    covered = {}
    if len(position) == len(params):  # a repeated parameter counts twice: per-tensor path
        for p in params:
            arena = arena_of(p)
            if arena is not None and id(arena) not in covered and arena.holds_grads() \
                    and all(id(q) in position for q in arena.params):
                covered[id(arena)] = arena
    buffers = [arena_buffer(arena, [position[id(q)] for q in arena.params])
               for arena in covered.values()]
    for i, p in enumerate(params):
        if p._grad is not None and id(arena_of(p)) not in covered:
            buffers.append(loose_buffer(p._grad._data, i))
    return buffers


def grad_dtype(params):
    """The dtype of the total norm: the gradients' (promoted), float32 without gradients."""
    grads = {p._grad._data.dtype for p in params if p._grad is not None}  # usually one
    return np.result_type(*grads) if grads else dtypes.default_float


def total_tensor(total, dtype, like):
    """The total norm as PyTorch's clipping returns it: a 0-d tensor of ``dtype`` on the
    device of the array ``like``. ``total`` is a Python float, or a 0-d array on that device
    (a device kernel table's: it stays there, unread)."""
    from .tensor import Tensor  # tensor imports the ops, which import this module
    if is_array(total):
        return Tensor(total.astype(dtype))
    return Tensor(full((), total, dtype, like))


def first_nonfinite(buffers, norms):
    """``(position, shape)`` of the first parameter (in the caller's order) whose gradient
    norm is not finite, or None (``norms``, on any device, are read on the host)."""
    bad = [(position, buffer.shapes[j]) for buffer, per in zip(buffers, map(to_host, norms))
           for j, position in enumerate(buffer.positions) if not np.isfinite(per[j])]
    return min(bad, key=lambda item: item[0]) if bad else None


def clip_buffers(buffers, max_norm, norm_type, keep_if_nonfinite):
    """Measure every buffer and scale them all when the total exceeds ``max_norm``.

    One buffer: one ``clip_grad_norm`` kernel call, which decides whether to scale where the
    gradients are (on a device, without waiting for it). Several: one ``segment_norms`` pass
    each, then one ``scale`` pass each when clipping is needed, decided on the host (a device's
    totals are read there). A non-finite total leaves the gradients untouched when
    ``keep_if_nonfinite``. Each arena remembers its per-parameter norms
    (:meth:`~fastgrad.arena.Arena.remember_clip`; see :func:`clip_grad_norm_`).

    Returns:
        ``(total, norms)``: the total norm before clipping (a Python float, or a 0-d array on
        the gradients' device from a device's kernel table) and, per buffer, a float64 array
        on the gradients' device with one norm per segment.
    """
    norms = [empty(len(b.offsets) - 1, np.float64, b.flat) for b in buffers]
    if len(buffers) == 1:
        buffer = buffers[0]
        total = K.clip_grad_norm(buffer.flat, buffer.offsets, max_norm, norm_type,
                                 keep_if_nonfinite, norms[0])
        buffer.write_back()
    else:
        total = combine([K.segment_norms(b.flat, b.offsets, norm_type, n)
                          for b, n in zip(buffers, norms)], norm_type)
        coef = clip_coefficient(total, max_norm)
        if needs_scaling(coef) and not (keep_if_nonfinite and not math.isfinite(total)):
            with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
                for buffer in buffers:
                    K.scale(buffer.flat, coef)
                    buffer.write_back()
    for buffer, per in zip(buffers, norms):
        if buffer.arena is not None:
            buffer.arena.remember_clip(per, norm_type)
    return total, norms


def nonfinite_error(norm_type, culprit):
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
