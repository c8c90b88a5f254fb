"""Numba kernels over flat arenas: fill, norms, clipping, scaling and the optimiser steps.

Every kernel is one fused pass over flat buffers, with the reference's names and signatures
(:mod:`fastgrad.backends.numpy_ref`). A registry kernel here is a plain Python function: it
rounds the hyperparameters to the arrays' dtype (what the reference's NumPy arithmetic does with
Python floats), replaces optional arrays by an empty one plus a flag (so one compiled
specialisation per dtype serves every variant and ``backends.warmup`` compiles it once), and
calls one jitted driver. A driver runs serially below its kernel's measured threshold and, above
it, splits the buffers into chunks of :data:`CHUNK` elements processed in parallel. The loop
over a chunk is a small serial helper that first slices its arrays to the chunk, so its index
runs from 0: LLVM then drops the negative-index checks and vectorises it (the same loop over
``range(lo, hi)``, or inside a ``prange`` body, ran 5-12 times slower).

Reductions are deterministic: a segment (one parameter's gradient) is cut into pieces of
:data:`CHUNK` elements aligned at its start, each piece's float64 partial is computed on its
own, and the partials are combined serially in order. The serial and parallel paths cut and
combine the same pieces, so norms are bit-identical for every thread count, run and threshold.

Dtypes other than float32 and float64 (float16) go to the reference kernel, counted in the
backend's ``FALLBACKS``.
"""
import math

import numpy as np
from numba import prange

from ... import config
from .. import blas
from .. import numpy_ref as _reference
# _EMPTY: the stand-in for an absent optional array, per dtype; _fallback: the reference
# kernel, counted in the backend's FALLBACKS
from ._layers import _EMPTY, _fallback

__all__ = ["fill", "segment_norms", "monitor_norms", "clip_grad_norm", "clip_grad_range",
           "scale", "axpy", "grad_window_mean", "sgd_step", "adam_step", "rmsprop_step",
           "adagrad_step", "adadelta_step", "adamax_step", "nadam_step"]

#: Elements per parallel work unit and per reduction piece. The reduction pieces fix the
#: rounding of every norm, so changing this changes norms in their last bits.
CHUNK = 16384

#: Below these sizes (elements) a kernel runs serially, when GEMMs run on this backend's own
#: threads (:mod:`~fastgrad.backends.blas` found NumPy's BLAS): where 2 threads beat one on the
#: kernel run right after a block GEMM, as in a training step (2-core x86-64, float32, medians
#: of 200 interleaved runs; 2-thread speed-up at 2**15 / 2**16 / 2**17: adam 1.17 / 1.31 / 1.51,
#: sgd 0.89 / 1.02 / 1.39, norms 0.95 / 1.17 / 1.45, axpy 1.03 / 1.13 / 1.39, scale 0.86 / 1.01
#: / 1.21, fill 0.97 / 1.14 / 1.18).
PARALLEL_MIN_ONE_POOL = {
    "fill": 1 << 16,
    "segment_norms": 1 << 16,
    "scale": 1 << 17,
    "clip_grad_range": 1 << 16,
    "axpy": 1 << 16,
    "grad_window_mean": 1 << 16,
    "sgd_step": 1 << 16,
    "adam_step": 1 << 15,
    "rmsprop_step": 1 << 15,
    "adagrad_step": 1 << 16,
    # not measured on their own: each reads four buffers and writes three, as adam does
    "adadelta_step": 1 << 15,
    "adamax_step": 1 << 15,
    "nadam_step": 1 << 15,
}

#: The same when the GEMMs are NumPy's own (no usable BLAS found), whose OpenBLAS workers keep
#: spinning for ~0.1 s after each product, so a parallel region started then waits for a core:
#: the batch-64 784-256-256-10 MLP step took 8.00 ms with 2**17-2**20 thresholds and 0.95 ms
#: with every arena kernel serial. Each threshold is where the serial kernel takes about 16 ms
#: (more than the stall a parallel run risks): 16 ms / its serial time per element (fill
#: 0.13 ns, norms 0.11-0.28 ns, sgd 0.45 ns, adam 0.66 ns), rounded to a power of two.
PARALLEL_MIN_BLAS_POOL = {
    "fill": 1 << 27,
    "segment_norms": 1 << 26,
    "scale": 1 << 26,
    "clip_grad_range": 1 << 26,
    "axpy": 1 << 26,
    "grad_window_mean": 1 << 25,
    "sgd_step": 1 << 25,
    "adam_step": 1 << 24,
    "rmsprop_step": 1 << 24,
    "adagrad_step": 1 << 25,
    "adadelta_step": 1 << 24,  # as adam's (not measured on their own)
    "adamax_step": 1 << 24,
    "nadam_step": 1 << 24,
}

#: The thresholds in force.
PARALLEL_MIN = PARALLEL_MIN_ONE_POOL if blas.AVAILABLE else PARALLEL_MIN_BLAS_POOL

# norm kinds, so that the common norms get their own vectorised loop
_L2, _L1, _LINF, _LP = 0, 1, 2, 3


def _jitted(array):
    """True when the array is a NumPy array of a dtype the kernels are compiled for
    (float32, float64); the arrays of one call share a type and a dtype."""
    return type(array) is np.ndarray and array.dtype.char in "fd"


def _rounded(dtype, *values):
    """``values`` rounded to ``dtype``: the reference's ``array op python_float`` computes in
    the array's dtype (NEP 50), so the kernels get the same rounded hyperparameters (and a
    float64 value beyond float32's range warns of the overflow as the reference does)."""
    return list(np.array(values, dtype))  # one conversion: 0.3 us less than a scalar each


# --------------------------------------------------------------------------------- reductions
@config.jit()
def _sum_squares(x):
    total = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        total += v * v
    return total


@config.jit()
def _sum_abs(x):
    total = 0.0
    for i in range(x.size):
        total += abs(np.float64(x[i]))
    return total


@config.jit()
def _max_abs(bits, float_bits):
    """The largest magnitude of the floats whose bit patterns are ``bits`` (int32 for float32,
    int64 for float64), as a float64; NaN when any is NaN.

    With the sign bit cleared, the bit patterns of non-negative floats order as integers, with
    every NaN's pattern above inf's: an integer maximum (which vectorises, where a
    NaN-propagating float maximum does not without ``nnan``) finds the largest magnitude and
    propagates NaN.
    """
    mantissa_bits = 23 if float_bits == 32 else 52
    largest = 0
    for i in range(bits.size):
        b = bits[i] & ((1 << (float_bits - 1)) - 1)
        largest = b if b > largest else largest
    exponent = int(largest >> mantissa_bits)  # ldexp takes an int
    mantissa = largest & ((1 << mantissa_bits) - 1)
    bias = (1 << (float_bits - mantissa_bits - 2)) - 1
    if exponent == 2 * bias + 1:
        return math.inf if mantissa == 0 else math.nan
    if exponent == 0:  # subnormal
        return math.ldexp(float(mantissa), 1 - bias - mantissa_bits)
    return math.ldexp(float(mantissa | (1 << mantissa_bits)), exponent - bias - mantissa_bits)


@config.jit()
def _sum_powers(x, p):
    total = 0.0
    for i in range(x.size):
        total += abs(np.float64(x[i])) ** p
    return total


@config.jit()
def _piece(x, bits, lo, hi, kind, p):
    """The float64 partial of ``x[lo:hi]``: its p-th power sum, or its largest magnitude
    (``bits`` is ``x`` viewed as integers of its size)."""
    if kind == _L2:
        return _sum_squares(x[lo:hi])
    if kind == _L1:
        return _sum_abs(x[lo:hi])
    if kind == _LINF:
        return _max_abs(bits[lo:hi], x.itemsize * 8)
    return _sum_powers(x[lo:hi], p)


@config.jit()
def _combine(acc, part, kind):
    """Fold ``part`` into ``acc``: a sum, or for inf a maximum that keeps NaN."""
    if kind == _LINF:
        return part if (part > acc or part != part) else acc
    return acc + part


@config.jit()
def _root(power_sum, kind, p):
    if kind == _L2:
        return math.sqrt(power_sum)
    if kind == _LP:
        return power_sum ** (1.0 / p)
    return power_sum


@config.jit()
def _piece_layout(offsets):
    """The reduction pieces of the segments ``offsets`` delimit: pieces of CHUNK elements
    aligned at each segment's start. Returns ``(first, starts, stops)``: segment ``s`` owns
    pieces ``first[s]:first[s + 1]``, piece ``k`` is ``[starts[k]:stops[k]]``."""
    segments = offsets.size - 1
    first = np.empty(segments + 1, np.int64)
    pieces = 0
    for s in range(segments):
        first[s] = pieces
        pieces += (offsets[s + 1] - offsets[s] + CHUNK - 1) // CHUNK
    first[segments] = pieces
    starts = np.empty(pieces, np.int64)
    stops = np.empty(pieces, np.int64)
    for s in range(segments):
        for k in range(first[s], first[s + 1]):
            starts[k] = offsets[s] + (k - first[s]) * CHUNK
            stops[k] = min(starts[k] + CHUNK, offsets[s + 1])
    return first, starts, stops


@config.jit(parallel=True)
def _norms(values, bits, offsets, kind, p, out, parallel_min):
    """Per-segment norms into ``out`` and the total norm, from pieces of CHUNK elements.

    Both paths store every piece's partial before combining them in a separate loop, so the
    compiler cannot fold one piece's sum into the next (fast-math reassociation would round the
    serial path differently from the parallel one).
    """
    segments = out.size
    first, starts, stops = _piece_layout(offsets)
    pieces = starts.size
    partial = np.empty(pieces, np.float64)
    if offsets[segments] - offsets[0] < parallel_min:
        for k in range(pieces):
            partial[k] = _piece(values, bits, starts[k], stops[k], kind, p)
    else:
        for k in prange(pieces):
            partial[k] = _piece(values, bits, starts[k], stops[k], kind, p)
    total = 0.0
    for s in range(segments):
        acc = 0.0
        for k in range(first[s], first[s + 1]):
            acc = _combine(acc, partial[k], kind)
        total = _combine(total, acc, kind)
        out[s] = _root(acc, kind, p)
    return _root(total, kind, p)


def _norm_kind(norm_type):
    if norm_type == 2.0:
        return _L2
    if norm_type == 1.0:
        return _L1
    if norm_type == math.inf:
        return _LINF
    return _LP


def segment_norms(values, offsets, norm_type, out):
    """The ``norm_type``-norm of each segment of a flat arena, and of the whole arena: see
    :func:`fastgrad.backends.numpy_ref.segment_norms`. One parallel pass; sums in float64 over
    fixed pieces combined in order, so the result does not depend on the thread count."""
    if not _jitted(values):
        return _fallback("segment_norms", values, offsets, norm_type, out)
    norm_type = float(norm_type)
    bits = values.view(np.int32 if values.itemsize == 4 else np.int64)
    return float(_norms(values, bits, offsets, _norm_kind(norm_type), norm_type, out,
                        PARALLEL_MIN["segment_norms"]))


@config.jit()
def _monitor_piece(grads, has_grads, values, prev, partial):
    """``partial = (sum g**2, sum v**2, sum (v - prev)**2)`` over one piece in float64, and
    ``prev = values`` there, in one loop."""
    gg = vv = dd = 0.0
    for i in range(values.size):
        v = np.float64(values[i])
        d = v - np.float64(prev[i])
        vv += v * v
        dd += d * d
        prev[i] = values[i]
    if has_grads:
        for i in range(grads.size):
            g = np.float64(grads[i])
            gg += g * g
    partial[0], partial[1], partial[2] = gg, vv, dd


@config.jit(parallel=True)
def _monitor(grads, has_grads, values, prev, offsets, have_prev, out, layer_of, layer_sq,
             parallel_min):
    """Per-segment gradient, value and change norms into ``out`` from pieces of CHUNK
    elements, partials combined in order (as :func:`_norms`), then the squared gradient norms
    added to their layers' ``layer_sq``."""
    first, starts, stops = _piece_layout(offsets)
    pieces = starts.size
    partial = np.empty((pieces, 3), np.float64)
    if offsets[offsets.size - 1] - offsets[0] < parallel_min:
        for k in range(pieces):
            lo, hi = starts[k], stops[k]
            _monitor_piece(grads[lo:hi] if has_grads else grads, has_grads, values[lo:hi],
                           prev[lo:hi], partial[k])
    else:
        for k in prange(pieces):
            lo, hi = starts[k], stops[k]
            _monitor_piece(grads[lo:hi] if has_grads else grads, has_grads, values[lo:hi],
                           prev[lo:hi], partial[k])
    for s in range(out.shape[1]):
        gg = vv = dd = 0.0
        for k in range(first[s], first[s + 1]):
            gg += partial[k, 0]
            vv += partial[k, 1]
            dd += partial[k, 2]
        if has_grads:
            out[0, s] = math.sqrt(gg)
        out[1, s] = math.sqrt(vv)
        out[2, s] = math.sqrt(dd) if have_prev else math.nan
        if layer_of[s] >= 0:
            layer_sq[layer_of[s]] += out[0, s] * out[0, s]


def monitor_norms(grads, values, prev, offsets, have_prev, out, layer_of, layer_sq):
    """Gradient, value and change norms per segment, then ``prev = values``, and the squared
    gradient norms per layer: see :func:`fastgrad.backends.numpy_ref.monitor_norms`. One pass
    over the three buffers."""
    if not _jitted(values):
        return _fallback("monitor_norms", grads, values, prev, offsets, have_prev, out,
                         layer_of, layer_sq)
    _monitor(_EMPTY[values.dtype] if grads is None else grads, grads is not None, values, prev,
             offsets, bool(have_prev), out, layer_of, layer_sq, PARALLEL_MIN["segment_norms"])


def clip_grad_norm(grads, offsets, max_norm, norm_type, error_if_nonfinite, per_param_out):
    """Clip a gradient arena by its total norm: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_norm`. One pass measures every norm (the
    non-finite parameters are those with a non-finite ``per_param_out``); a second pass scales
    in place only when the clip coefficient is below 1 or NaN, and never when
    ``error_if_nonfinite`` meets a non-finite total. Returns the total norm before clipping."""
    if not _jitted(grads):
        return _fallback("clip_grad_norm", grads, offsets, max_norm, norm_type,
                         error_if_nonfinite, per_param_out)
    total = segment_norms(grads, offsets, norm_type, per_param_out)
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0 and not (error_if_nonfinite and not math.isfinite(total)):
        scale(grads, coef)
    return total


# ------------------------------------------------------------------------------- elementwise
@config.jit(exact=True)
def _fill_range(buffer, value, lo, hi):
    buffer = buffer[lo:hi]
    for i in range(buffer.size):
        buffer[i] = value


@config.jit(parallel=True, exact=True)
def _fill(buffer, value, parallel_min):
    n = buffer.size
    if n < parallel_min:
        _fill_range(buffer, value, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _fill_range(buffer, value, c * CHUNK, min((c + 1) * CHUNK, n))


def fill(buffer, value):
    """Set every element of the 1-D ``buffer`` to ``value``: see
    :func:`fastgrad.backends.numpy_ref.fill`."""
    if not _jitted(buffer):
        return _fallback("fill", buffer, value)
    _fill(buffer, *_rounded(buffer.dtype, value), PARALLEL_MIN["fill"])


@config.jit(exact=True)
def _scale_range(values, factor, lo, hi):
    values = values[lo:hi]
    for i in range(values.size):
        values[i] = values[i] * factor


@config.jit(parallel=True, exact=True)
def _scale(values, factor, parallel_min):
    n = values.size
    if n < parallel_min:
        _scale_range(values, factor, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _scale_range(values, factor, c * CHUNK, min((c + 1) * CHUNK, n))


def scale(values, factor):
    """``values *= factor`` in place, the factor rounded to the values' dtype: see
    :func:`fastgrad.backends.numpy_ref.scale`."""
    if not _jitted(values):
        return _fallback("scale", values, factor)
    _scale(values, *_rounded(values.dtype, factor), PARALLEL_MIN["scale"])


@config.jit(exact=True)
def _clip_range(grads, low, high, lo, hi):
    grads = grads[lo:hi]
    for i in range(grads.size):
        g = grads[i]
        # comparisons with NaN are false: NaN stays NaN, as with np.clip
        g = low if g < low else g
        grads[i] = high if g > high else g


@config.jit(parallel=True, exact=True)
def _clip(grads, low, high, parallel_min):
    n = grads.size
    if n < parallel_min:
        _clip_range(grads, low, high, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _clip_range(grads, low, high, c * CHUNK, min((c + 1) * CHUNK, n))


def clip_grad_range(grads, min_value, max_value):
    """Clamp every gradient into ``[min_value, max_value]`` in place: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_range`."""
    if not _jitted(grads):
        return _fallback("clip_grad_range", grads, min_value, max_value)
    _clip(grads, *_rounded(grads.dtype, min_value, max_value), PARALLEL_MIN["clip_grad_range"])


@config.jit(exact=True)
def _axpy_range(y, x, alpha, lo, hi):
    y, x = y[lo:hi], x[lo:hi]
    for i in range(y.size):
        y[i] = y[i] + alpha * x[i]


@config.jit(parallel=True, exact=True)
def _axpy(y, x, alpha, parallel_min):
    n = y.size
    if n < parallel_min:
        _axpy_range(y, x, alpha, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _axpy_range(y, x, alpha, c * CHUNK, min((c + 1) * CHUNK, n))


def axpy(y, x, alpha):
    """``y += alpha * x`` in place: see :func:`fastgrad.backends.numpy_ref.axpy`."""
    if not _jitted(y):
        return _fallback("axpy", y, x, alpha)
    _axpy(y, x, *_rounded(y.dtype, alpha), PARALLEL_MIN["axpy"])


@config.jit(exact=True)
def _window_mean_range(total, grad, weight, factor, zero, lo, hi):
    total, grad = total[lo:hi], grad[lo:hi]
    for i in range(grad.size):
        grad[i] = (grad[i] * weight + total[i]) * factor
        total[i] = zero


@config.jit(parallel=True, exact=True)
def _window_mean(total, grad, weight, factor, zero, parallel_min):
    n = grad.size
    if n < parallel_min:
        _window_mean_range(total, grad, weight, factor, zero, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _window_mean_range(total, grad, weight, factor, zero, c * CHUNK,
                           min((c + 1) * CHUNK, n))


def grad_window_mean(total, grad, weight, factor):
    """``grad = factor * (total + weight * grad)``, then ``total = 0``, in one pass: see
    :func:`fastgrad.backends.numpy_ref.grad_window_mean`."""
    if not _jitted(total):
        return _fallback("grad_window_mean", total, grad, weight, factor)
    _window_mean(total, grad, *_rounded(grad.dtype, weight, factor, 0.0),
                 PARALLEL_MIN["grad_window_mean"])


# -------------------------------------------------------------------------------- optimisers
@config.jit(exact=True)
def _sgd_range(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov,
               maximize, first_step, use_momentum, lo, hi):
    param, grad, buf = param[lo:hi], grad[lo:hi], buf[lo:hi]
    for i in range(param.size):
        d = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            d = d + weight_decay * p
        if use_momentum:
            b = d if first_step else momentum * buf[i] + one_minus_dampening * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        param[i] = p - lr * d


@config.jit(parallel=True, exact=True)
def _sgd(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov,
         maximize, first_step, use_momentum, parallel_min):
    n = param.size
    if n < parallel_min:
        _sgd_range(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov,
                   maximize, first_step, use_momentum, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _sgd_range(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov,
                   maximize, first_step, use_momentum, c * CHUNK, min((c + 1) * CHUNK, n))


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
             maximize, first_step):
    """One SGD step with momentum, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.sgd_step`."""
    if not _jitted(param):
        return _fallback("sgd_step", param, grad, momentum_buffer, lr, momentum, dampening,
                         weight_decay, nesterov, maximize, first_step)
    use_momentum = momentum != 0
    buf = momentum_buffer if use_momentum else param[:0]
    _sgd(param, grad, buf, *_rounded(param.dtype, lr, momentum, 1 - dampening, weight_decay),
         bool(nesterov), bool(maximize), bool(first_step), use_momentum,
         PARALLEL_MIN["sgd_step"])


@config.jit(exact=True)
def _adam_moments(grad, param, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                  weight_decay, decay, decoupled, maximize):
    """The start of one element's Adam or NAdam step, which the two share: the signed gradient
    with its L2 term, or the parameter's decoupled decay, then both moments updated. Returns
    ``(g, p, m, v)``; the callers' loops inline it (they still vectorise)."""
    g = -grad if maximize else grad
    p = param
    if weight_decay != 0:
        if decoupled:
            p = p * decay
        else:
            g = g + weight_decay * p
    m = exp_avg + one_minus_beta1 * (g - exp_avg)
    v = beta2 * exp_avg_sq + one_minus_beta2 * g * g
    return g, p, m, v


@config.jit(exact=True)
def _adam_range(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                one_minus_beta2, eps, weight_decay, decay, step_size, bias_correction2_sqrt,
                decoupled, maximize, amsgrad, lo, hi):
    param, grad, exp_avg, exp_avg_sq = param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
    max_exp_avg_sq = max_exp_avg_sq[lo:hi]
    for i in range(param.size):
        _, p, m, v = _adam_moments(grad[i], param[i], exp_avg[i], exp_avg_sq[i],
                                   one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                                   decoupled, maximize)
        exp_avg[i], exp_avg_sq[i] = m, v
        if amsgrad:
            largest = max_exp_avg_sq[i]
            # np.maximum keeps NaN from either side
            if v > largest or v != v:
                largest = v
            max_exp_avg_sq[i] = largest
            v = largest
        param[i] = p - step_size * (m / (np.sqrt(v) / bias_correction2_sqrt + eps))


@config.jit(parallel=True, exact=True)
def _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
          one_minus_beta2, eps, weight_decay, decay, step_size, bias_correction2_sqrt,
          decoupled, maximize, amsgrad, parallel_min):
    n = param.size
    if n < parallel_min:
        _adam_range(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                    one_minus_beta2, eps, weight_decay, decay, step_size,
                    bias_correction2_sqrt, decoupled, maximize, amsgrad, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _adam_range(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                    one_minus_beta2, eps, weight_decay, decay, step_size,
                    bias_correction2_sqrt, decoupled, maximize, amsgrad, c * CHUNK,
                    min((c + 1) * CHUNK, n))


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
              weight_decay, decoupled_weight_decay, maximize):
    """One Adam / AdamW / AMSGrad step, fused into one pass over the five buffers: see
    :func:`fastgrad.backends.numpy_ref.adam_step`."""
    if not _jitted(param):
        return _fallback("adam_step", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
                         beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                         maximize)
    amsgrad = max_exp_avg_sq is not None
    scalars = _rounded(param.dtype, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
                       1 - lr * weight_decay, lr / (1 - beta1 ** step),
                       (1 - beta2 ** step) ** 0.5)
    _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else param[:0],
          *scalars, bool(decoupled_weight_decay), bool(maximize), amsgrad,
          PARALLEL_MIN["adam_step"])


@config.jit(exact=True)
def _rmsprop_range(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha,
                   one_minus_alpha, eps, weight_decay, momentum, zero, maximize, centered,
                   use_momentum, lo, hi):
    param, grad, square_avg = param[lo:hi], grad[lo:hi], square_avg[lo:hi]
    grad_avg, momentum_buffer = grad_avg[lo:hi], momentum_buffer[lo:hi]
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            g = g + weight_decay * p
        v = alpha * square_avg[i] + one_minus_alpha * g * g
        square_avg[i] = v
        if centered:
            mean = grad_avg[i]
            mean = mean + one_minus_alpha * (g - mean)
            grad_avg[i] = mean
            v = v - mean * mean
            # rounding can take the variance a hair below zero; NaN stays NaN
            v = zero if v < zero else v
        avg = np.sqrt(v) + eps
        if use_momentum:
            b = momentum * momentum_buffer[i] + g / avg
            momentum_buffer[i] = b
            param[i] = p - lr * b
        else:
            param[i] = p - lr * (g / avg)


@config.jit(parallel=True, exact=True)
def _rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
             eps, weight_decay, momentum, zero, maximize, centered, use_momentum, parallel_min):
    n = param.size
    if n < parallel_min:
        _rmsprop_range(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha,
                       one_minus_alpha, eps, weight_decay, momentum, zero, maximize, centered,
                       use_momentum, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _rmsprop_range(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha,
                       one_minus_alpha, eps, weight_decay, momentum, zero, maximize, centered,
                       use_momentum, c * CHUNK, min((c + 1) * CHUNK, n))


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                 weight_decay, momentum, maximize):
    """One RMSprop step (optionally centred, with momentum), fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.rmsprop_step`."""
    if not _jitted(param):
        return _fallback("rmsprop_step", param, grad, square_avg, grad_avg, momentum_buffer, lr,
                         alpha, eps, weight_decay, momentum, maximize)
    centered, use_momentum = grad_avg is not None, momentum_buffer is not None
    empty = param[:0]
    _rmsprop(param, grad, square_avg, grad_avg if centered else empty,
             momentum_buffer if use_momentum else empty,
             *_rounded(param.dtype, lr, alpha, 1 - alpha, eps, weight_decay, momentum, 0.0),
             bool(maximize), centered, use_momentum, PARALLEL_MIN["rmsprop_step"])


@config.jit(exact=True)
def _adagrad_range(param, grad, state_sum, clr, weight_decay, eps, maximize, lo, hi):
    param, grad, state_sum = param[lo:hi], grad[lo:hi], state_sum[lo:hi]
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            g = g + weight_decay * p
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = p - clr * (g / (np.sqrt(s) + eps))


@config.jit(parallel=True, exact=True)
def _adagrad(param, grad, state_sum, clr, weight_decay, eps, maximize, parallel_min):
    n = param.size
    if n < parallel_min:
        _adagrad_range(param, grad, state_sum, clr, weight_decay, eps, maximize, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _adagrad_range(param, grad, state_sum, clr, weight_decay, eps, maximize, c * CHUNK,
                       min((c + 1) * CHUNK, n))


def adagrad_step(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step (with PyTorch's learning-rate decay), fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adagrad_step`."""
    if not _jitted(param):
        return _fallback("adagrad_step", param, grad, state_sum, step, lr, lr_decay,
                         weight_decay, eps, maximize)
    clr = lr / (1 + (step - 1) * lr_decay)
    _adagrad(param, grad, state_sum, *_rounded(param.dtype, clr, weight_decay, eps),
             bool(maximize), PARALLEL_MIN["adagrad_step"])


@config.jit(exact=True)
def _adadelta_range(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps,
                    weight_decay, maximize, lo, hi):
    param, grad = param[lo:hi], grad[lo:hi]
    square_avg, acc_delta = square_avg[lo:hi], acc_delta[lo:hi]
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            g = g + weight_decay * p
        v = rho * square_avg[i] + one_minus_rho * g * g
        square_avg[i] = v
        u = acc_delta[i]
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        acc_delta[i] = rho * u + one_minus_rho * delta * delta
        param[i] = p - lr * delta


@config.jit(parallel=True, exact=True)
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, weight_decay,
              maximize, parallel_min):
    n = param.size
    if n < parallel_min:
        _adadelta_range(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps,
                        weight_decay, maximize, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _adadelta_range(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps,
                        weight_decay, maximize, c * CHUNK, min((c + 1) * CHUNK, n))


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adadelta_step`."""
    if not _jitted(param):
        return _fallback("adadelta_step", param, grad, square_avg, acc_delta, lr, rho, eps,
                         weight_decay, maximize)
    _adadelta(param, grad, square_avg, acc_delta,
              *_rounded(param.dtype, lr, rho, 1 - rho, eps, weight_decay), bool(maximize),
              PARALLEL_MIN["adadelta_step"])


@config.jit(exact=True)
def _adamax_range(param, grad, exp_avg, exp_inf, one_minus_beta1, beta2, eps, weight_decay,
                  clr, maximize, lo, hi):
    param, grad, exp_avg, exp_inf = param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_inf[lo:hi]
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            g = g + weight_decay * p
        m = exp_avg[i]
        m = m + one_minus_beta1 * (g - m)
        exp_avg[i] = m
        u = exp_inf[i] * beta2
        bound = np.abs(g) + eps
        # np.maximum keeps NaN from either side
        if bound > u or bound != bound:
            u = bound
        exp_inf[i] = u
        param[i] = p - clr * (m / u)


@config.jit(parallel=True, exact=True)
def _adamax(param, grad, exp_avg, exp_inf, one_minus_beta1, beta2, eps, weight_decay, clr,
            maximize, parallel_min):
    n = param.size
    if n < parallel_min:
        _adamax_range(param, grad, exp_avg, exp_inf, one_minus_beta1, beta2, eps, weight_decay,
                      clr, maximize, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _adamax_range(param, grad, exp_avg, exp_inf, one_minus_beta1, beta2, eps, weight_decay,
                      clr, maximize, c * CHUNK, min((c + 1) * CHUNK, n))


def adamax_step(param, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay,
                maximize):
    """One Adamax step, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adamax_step`."""
    if not _jitted(param):
        return _fallback("adamax_step", param, grad, exp_avg, exp_inf, step, lr, beta1, beta2,
                         eps, weight_decay, maximize)
    _adamax(param, grad, exp_avg, exp_inf,
            *_rounded(param.dtype, 1 - beta1, beta2, eps, weight_decay,
                      lr / (1 - beta1 ** step)),
            bool(maximize), PARALLEL_MIN["adamax_step"])


@config.jit(exact=True)
def _nadam_range(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                 eps, weight_decay, decay, bias_correction2, grad_coefficient,
                 avg_coefficient, decoupled, maximize, lo, hi):
    param, grad, exp_avg, exp_avg_sq = param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
    for i in range(param.size):
        g, p, m, v = _adam_moments(grad[i], param[i], exp_avg[i], exp_avg_sq[i],
                                   one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                                   decoupled, maximize)
        exp_avg[i], exp_avg_sq[i] = m, v
        denom = np.sqrt(v / bias_correction2) + eps
        p = p - grad_coefficient * (g / denom)
        param[i] = p - avg_coefficient * (m / denom)


@config.jit(parallel=True, exact=True)
def _nadam(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2, eps,
           weight_decay, decay, bias_correction2, grad_coefficient, avg_coefficient, decoupled,
           maximize, parallel_min):
    n = param.size
    if n < parallel_min:
        _nadam_range(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                     eps, weight_decay, decay, bias_correction2, grad_coefficient,
                     avg_coefficient, decoupled, maximize, 0, n)
        return
    for c in prange((n + CHUNK - 1) // CHUNK):
        _nadam_range(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                     eps, weight_decay, decay, bias_correction2, grad_coefficient,
                     avg_coefficient, decoupled, maximize, c * CHUNK, min((c + 1) * CHUNK, n))


def nadam_step(param, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps,
               weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step, fused into one pass: see :func:`fastgrad.backends.numpy_ref.nadam_step`."""
    if not _jitted(param):
        return _fallback("nadam_step", param, grad, exp_avg, exp_avg_sq, step, mu_product, lr,
                         beta1, beta2, eps, weight_decay, momentum_decay,
                         decoupled_weight_decay, maximize)
    mu = _reference.nadam_momentum(step, beta1, momentum_decay)
    mu_next = _reference.nadam_momentum(step + 1, beta1, momentum_decay)
    scalars = _rounded(param.dtype, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
                       1 - lr * weight_decay, 1 - beta2 ** step,
                       lr * (1 - mu) / (1 - mu_product),
                       lr * mu_next / (1 - mu_product * mu_next))
    _nadam(param, grad, exp_avg, exp_avg_sq, *scalars, bool(decoupled_weight_decay),
           bool(maximize), PARALLEL_MIN["nadam_step"])
