"""CUDA kernels over flat arenas: fill, scale, axpy, norms, clipping, the monitor's norms.

The elementwise kernels are grid-stride loops; their host wrappers round the Python scalars
to the arrays' dtype (the reference's ``array op python_float`` computes in the array's dtype,
NEP 50), so one kernel is compiled per dtype.

Norms are deterministic per-segment reductions: one block owns a whole segment (one
parameter), its threads accumulate a block-stride share of it in float64 and combine their
shares in a fixed shared-memory tree. A one-block kernel then folds the segments' power sums
into the total in segment order and takes the roots. No atomics: the same inputs give the
same bits on every run. :func:`clip_grad_norm` decides whether to clip on the device, from
the total in device memory, so the host never waits for it.
"""
import math

import numpy as np
from numba import cuda, float64

from ._launch import THREADS, check_device, grid, segment_grid

__all__ = ["fill", "scale", "axpy", "clip_grad_range", "grad_window_mean", "segment_norms",
           "monitor_norms", "clip_grad_norm"]

# norm kinds, so that the common norms avoid a general power
_L2, _L1, _LINF, _LP = 0, 1, 2, 3


# ------------------------------------------------------------------------------- elementwise
@cuda.jit(cache=True)
def _fill(buffer, value):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, buffer.size, stride):
        buffer[i] = value


def fill(buffer, value):
    """``buffer[:] = value``: see :func:`fastgrad.backends.numpy_ref.fill`."""
    check_device(buffer=buffer)
    blocks, threads = grid(buffer.size)
    _fill[blocks, threads](buffer, buffer.dtype.type(value))


@cuda.jit(cache=True)
def _scale(values, factor):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, values.size, stride):
        values[i] = values[i] * factor


def scale(values, factor):
    """``values *= factor``, the factor rounded to the values' dtype: see
    :func:`fastgrad.backends.numpy_ref.scale`."""
    check_device(values=values)
    blocks, threads = grid(values.size)
    _scale[blocks, threads](values, values.dtype.type(factor))


@cuda.jit(cache=True)
def _axpy(y, x, alpha):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, y.size, stride):
        y[i] = y[i] + alpha * x[i]


def axpy(y, x, alpha):
    """``y += alpha * x``: see :func:`fastgrad.backends.numpy_ref.axpy`."""
    check_device(y=y, x=x)
    blocks, threads = grid(y.size)
    _axpy[blocks, threads](y, x, y.dtype.type(alpha))


@cuda.jit(cache=True)
def _clip_range(grads, low, high):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, grads.size, stride):
        g = grads[i]
        # comparisons with NaN are false: NaN stays NaN, as with np.clip
        g = low if g < low else g
        grads[i] = high if g > high else g


def clip_grad_range(grads, min_value, max_value):
    """Clamp every gradient into ``[min_value, max_value]``: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_range`."""
    check_device(grads=grads)
    blocks, threads = grid(grads.size)
    kind = grads.dtype.type
    _clip_range[blocks, threads](grads, kind(min_value), kind(max_value))


@cuda.jit(cache=True)
def _window_mean(total, grad, weight, factor, zero):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, grad.size, stride):
        grad[i] = (grad[i] * weight + total[i]) * factor
        total[i] = zero


def grad_window_mean(total, grad, weight, factor):
    """``grad = factor * (total + weight * grad)``, then ``total = 0``, in one pass: see
    :func:`fastgrad.backends.numpy_ref.grad_window_mean`."""
    check_device(total=total, grad=grad)
    blocks, threads = grid(grad.size)
    kind = grad.dtype.type
    _window_mean[blocks, threads](total, grad, kind(weight), kind(factor), kind(0.0))


# --------------------------------------------------------------------------------- reductions
@cuda.jit(device=True)
def _power(v, kind, p):
    """One float64 element's contribution to a norm: its p-th power, or for inf its
    magnitude."""
    if kind == _L2:
        return v * v
    if kind == _LP:
        return abs(v) ** p
    return abs(v)


@cuda.jit(device=True)
def _combined(acc, part, kind):
    """``part`` folded into ``acc``: a sum, or for inf a maximum that keeps NaN."""
    if kind == _LINF:
        return part if (part > acc or part != part) else acc
    return acc + part


@cuda.jit(device=True)
def _root(power_sum, kind, p):
    if kind == _L2:
        return math.sqrt(power_sum)
    if kind == _LP:
        return power_sum ** (1.0 / p)
    return power_sum


@cuda.jit(device=True)
def _block_reduce(shared, value, kind):
    """``value`` combined over the block's threads in a fixed tree (``shared`` holds THREADS
    float64); the result is valid in thread 0. Every thread of the block must call it."""
    tid = cuda.threadIdx.x
    cuda.syncthreads()  # every thread has read the previous reduction's result
    shared[tid] = value
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:
        if tid < half:
            shared[tid] = _combined(shared[tid], shared[tid + half], kind)
        cuda.syncthreads()
        half //= 2
    return shared[0]


@cuda.jit(cache=True)
def _segment_power_sums(values, offsets, kind, p, out):
    """``out[s]``: segment ``s``'s float64 power sum (for inf its largest magnitude)."""
    shared = cuda.shared.array(THREADS, np.float64)
    tid = cuda.threadIdx.x
    for s in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
        acc = 0.0
        for i in range(offsets[s] + tid, offsets[s + 1], THREADS):
            acc = _combined(acc, _power(float64(values[i]), kind, p), kind)
        acc = _block_reduce(shared, acc, kind)
        if tid == 0:
            out[s] = acc


@cuda.jit(cache=True)
def _finish_norms(out, kind, p, total):
    """One block: the power sums in ``out`` folded in segment order into ``total[0]``'s norm,
    then every ``out[s]`` replaced by its root."""
    tid = cuda.threadIdx.x
    if tid == 0:
        acc = 0.0
        for s in range(out.size):
            acc = _combined(acc, out[s], kind)
        total[0] = _root(acc, kind, p)
    cuda.syncthreads()
    for s in range(tid, out.size, THREADS):
        out[s] = _root(out[s], kind, p)


def _norm_kind(norm_type):
    if norm_type == 2.0:
        return _L2
    if norm_type == 1.0:
        return _L1
    if norm_type == math.inf:
        return _LINF
    return _LP


def _measure(values, offsets, norm_type, out):
    """Per-segment norms into ``out``; the total norm as a one-element float64 device
    array."""
    norm_type = float(norm_type)
    kind = _norm_kind(norm_type)
    blocks, threads = segment_grid(out.size)
    _segment_power_sums[blocks, threads](values, offsets, kind, norm_type, out)
    total = cuda.device_array(1, np.float64)
    _finish_norms[1, THREADS](out, kind, norm_type, total)
    return total


def segment_norms(values, offsets, norm_type, out):
    """The ``norm_type``-norm of each segment of a flat arena into ``out``, and of the whole
    arena returned as a one-element device array: see
    :func:`fastgrad.backends.numpy_ref.segment_norms`."""
    check_device(values=values, offsets=offsets, out=out)
    return _measure(values, offsets, norm_type, out)


@cuda.jit(cache=True)
def _monitor(grads, has_grads, values, prev, offsets, have_prev, out):
    """Per segment: the gradient, value and change L2 norms into ``out``'s rows (the change
    NaN without ``have_prev``), and ``prev = values``."""
    shared = cuda.shared.array(THREADS, np.float64)
    tid = cuda.threadIdx.x
    for s in range(cuda.blockIdx.x, out.shape[1], cuda.gridDim.x):
        gg = vv = dd = 0.0
        for i in range(offsets[s] + tid, offsets[s + 1], THREADS):
            v = float64(values[i])
            d = v - float64(prev[i])
            vv += v * v
            dd += d * d
            prev[i] = values[i]
            if has_grads:
                g = float64(grads[i])
                gg += g * g
        vv = _block_reduce(shared, vv, _L2)
        dd = _block_reduce(shared, dd, _L2)
        if has_grads:
            gg = _block_reduce(shared, gg, _L2)
        if tid == 0:
            if has_grads:
                out[0, s] = math.sqrt(gg)
            out[1, s] = math.sqrt(vv)
            out[2, s] = math.sqrt(dd) if have_prev else math.nan


@cuda.jit(cache=True)
def _add_layer_squares(out, layer_of, layer_sq):
    """``layer_sq[layer_of[p]] += out[0, p] ** 2`` in segment order, on one thread (a few
    numbers per parameter; no atomics, so the sums are deterministic)."""
    if cuda.grid(1) == 0:
        for p in range(out.shape[1]):
            if layer_of[p] >= 0:
                layer_sq[layer_of[p]] += out[0, p] * out[0, p]


def monitor_norms(grads, values, prev, offsets, have_prev, out, layer_of, layer_sq):
    """Gradient, value and change norms per segment, then ``prev = values``, and the squared
    gradient norms per layer: see :func:`fastgrad.backends.numpy_ref.monitor_norms`. One pass
    over the three buffers."""
    check_device(grads=grads, values=values, prev=prev, offsets=offsets, out=out,
                 layer_of=layer_of, layer_sq=layer_sq)
    has_grads = grads is not None
    blocks, threads = segment_grid(out.shape[1])
    # without gradients, ``values`` stands in for them (unread), so one kernel serves both
    _monitor[blocks, threads](grads if has_grads else values, has_grads, values, prev, offsets,
                              bool(have_prev), out)
    _add_layer_squares[1, 1](out, layer_of, layer_sq)


@cuda.jit(device=True)
def _rounded_like(array, value):
    """``value`` rounded to ``array``'s dtype."""
    slot = cuda.local.array(1, array.dtype)
    slot[0] = value
    return slot[0]


@cuda.jit(cache=True)
def _clip_by_total(grads, total, max_norm, error_if_nonfinite):
    """``grads *= max_norm / (total[0] + 1e-6)`` (rounded to their dtype) when that is below 1
    or NaN, unless ``error_if_nonfinite`` meets a non-finite total."""
    norm = total[0]
    coefficient = max_norm / (norm + 1e-6)
    if coefficient >= 1.0 or (error_if_nonfinite and not math.isfinite(norm)):
        return
    factor = _rounded_like(grads, coefficient)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, grads.size, stride):
        grads[i] = grads[i] * factor


def clip_grad_norm(grads, offsets, max_norm, norm_type, error_if_nonfinite, per_param_out):
    """Clip a gradient arena by its total norm: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_norm`. Per-segment norms into
    ``per_param_out``; the total before clipping comes back as a one-element device array,
    and the clip decision is taken on the device from it."""
    check_device(grads=grads, offsets=offsets, per_param_out=per_param_out)
    total = _measure(grads, offsets, norm_type, per_param_out)
    blocks, threads = grid(grads.size)
    _clip_by_total[blocks, threads](grads, total, float(max_norm), bool(error_if_nonfinite))
    return total
