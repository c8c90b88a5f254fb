"""CUDA convolution kernels (NCHW, with groups): the forward and the input and weight gradients.

Direct convolutions, every sum taken in float64 in a fixed order and rounded once, with no
atomics: the same inputs give the same bits on every run. The forward runs one thread per
output element over its (channel, p, q) taps; the input gradient one thread per input
element, gathering over the (output channel, p, q) taps that read it (a tap whose output
row or column is not a whole number of strides away, or is outside the output, reads nothing).
The weight gradient runs one thread per weight element, then one per bias element, each
summing its (n, i, j) terms in order: simple, and fast in the simulator (a block per element
with a shared-memory tree, as :mod:`._layers` reduces channels, would spread a large layer's
(N, OH, OW) terms over more threads on a GPU, at the price of a barrier per tree level).

Taps that fall in the zero padding are skipped, not multiplied by zero, as in the CPU Numba
backend's direct kernels: an inf weight (or output gradient) there gives a finite value here
and NaN in the reference's im2col products (PyTorch's CPU kernels differ the same way).

This is the portable first version: on a real GPU, large layers are faster as im2col and
cuBLAS products through CuPy (the reference's formulation), left for later.
"""
from numba import cuda, float64

from ._launch import check_device, grid
from ._layers import _stand_in
from ._pool import _position

__all__ = ["conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"]


# ------------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _window_of(position, tap, stride, pad, dil, count):
    """Along one axis, the window (of ``count``) whose ``tap`` reads ``position`` of the
    image, or -1 where none does."""
    offset = position + pad - tap * dil
    if offset < 0 or offset % stride != 0 or offset // stride >= count:
        return -1
    return offset // stride


# ---------------------------------------------------------------------------------- kernels
@cuda.jit(cache=True)
def _conv(x, weight, bias, has_bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
          out):
    """One thread per output element: the float64 sum over its group's channels and the
    taps inside the image, in (channel, p, q) order, plus the bias; overwrites ``out``."""
    height, width = x.shape[2], x.shape[3]
    group_channels, kernel_h, kernel_w = weight.shape[1], weight.shape[2], weight.shape[3]
    group_outputs = out.shape[1] // groups
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, out.size, stride):
        n, o, i, j = _position(e, out)
        first = o // group_outputs * group_channels
        top, left = i * stride_h - pad_h, j * stride_w - pad_w
        total = 0.0
        for c in range(group_channels):
            for p in range(kernel_h):
                h = top + p * dil_h
                if 0 <= h < height:
                    for q in range(kernel_w):
                        w = left + q * dil_w
                        if 0 <= w < width:
                            total += float64(x[n, first + c, h, w]) * float64(weight[o, c, p, q])
        if has_bias:
            total += float64(bias[o])
        out[n, o, i, j] = total


@cuda.jit(cache=True)
def _conv_input_grad(grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     grad_x):
    """One thread per input element: the float64 sum, in (output channel, p, q) order, of
    the output gradients of the taps that read it times their weights; overwrites
    ``grad_x``."""
    group_channels, kernel_h, kernel_w = weight.shape[1], weight.shape[2], weight.shape[3]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    group_outputs = grad_out.shape[1] // groups
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, grad_x.size, stride):
        n, c, h, w = _position(e, grad_x)
        first, k = c // group_channels * group_outputs, c % group_channels
        total = 0.0
        for o in range(first, first + group_outputs):
            for p in range(kernel_h):
                i = _window_of(h, p, stride_h, pad_h, dil_h, out_h)
                if i >= 0:
                    for q in range(kernel_w):
                        j = _window_of(w, q, stride_w, pad_w, dil_w, out_w)
                        if j >= 0:
                            total += float64(grad_out[n, o, i, j]) * float64(weight[o, k, p, q])
        grad_x[n, c, h, w] = total


@cuda.jit(cache=True)
def _conv_weight_grad(grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                      grad_weight, grad_bias, has_bias):
    """One thread per element of grad_weight, then (``has_bias``) of grad_bias. A weight's
    gradient is the float64 sum, in (n, i, j) order, of each output gradient times the input
    its tap read (none in the padding), a bias's the sum of its channel's output gradients;
    overwrites ``grad_weight`` and ``grad_bias``."""
    height, width = x.shape[2], x.shape[3]
    batch, out_channels = grad_out.shape[0], grad_out.shape[1]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    group_outputs = out_channels // groups
    weights = grad_weight.size
    segments = weights + out_channels if has_bias else weights
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for s in range(start, segments, stride):
        total = 0.0
        if s < weights:
            o, k, p, q = _position(s, grad_weight)
            c = o // group_outputs * grad_weight.shape[1] + k
            for n in range(batch):
                for i in range(out_h):
                    h = i * stride_h - pad_h + p * dil_h
                    if 0 <= h < height:
                        for j in range(out_w):
                            w = j * stride_w - pad_w + q * dil_w
                            if 0 <= w < width:
                                total += float64(grad_out[n, o, i, j]) * float64(x[n, c, h, w])
            grad_weight[o, k, p, q] = total
        else:
            o = s - weights
            for n in range(batch):
                for i in range(out_h):
                    for j in range(out_w):
                        total += float64(grad_out[n, o, i, j])
            grad_bias[o] = total


# ---------------------------------------------------------------------------- the kernels
def conv2d_fwd(x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, out):
    """2-D cross-correlation with zero padding and groups, one thread per output element: see
    :func:`fastgrad.backends.numpy_ref.conv2d_fwd`."""
    check_device(x=x, weight=weight, bias=bias, out=out)
    blocks, threads = grid(out.size)
    _conv[blocks, threads](x, weight, _stand_in(bias, weight), bias is not None, int(stride_h),
                           int(stride_w), int(pad_h), int(pad_w), int(dil_h), int(dil_w),
                           int(groups), out)


def conv2d_bwd_input(grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     grad_x):
    """The gradient of :func:`conv2d_fwd` with respect to x, gathered per input element: see
    :func:`fastgrad.backends.numpy_ref.conv2d_bwd_input`."""
    check_device(grad_out=grad_out, weight=weight, grad_x=grad_x)
    blocks, threads = grid(grad_x.size)
    _conv_input_grad[blocks, threads](grad_out, weight, int(stride_h), int(stride_w),
                                      int(pad_h), int(pad_w), int(dil_h), int(dil_w),
                                      int(groups), grad_x)


def conv2d_bwd_weight(grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                      grad_weight, grad_bias):
    """The gradients of :func:`conv2d_fwd` with respect to the weight and the bias, one thread
    per element: see :func:`fastgrad.backends.numpy_ref.conv2d_bwd_weight`."""
    check_device(grad_out=grad_out, x=x, grad_weight=grad_weight, grad_bias=grad_bias)
    has_bias = grad_bias is not None
    blocks, threads = grid(grad_weight.size + (grad_out.shape[1] if has_bias else 0))
    _conv_weight_grad[blocks, threads](grad_out, x, int(stride_h), int(stride_w), int(pad_h),
                                       int(pad_w), int(dil_h), int(dil_w), int(groups),
                                       grad_weight, _stand_in(grad_bias, grad_weight), has_bias)
