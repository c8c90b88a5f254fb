"""CUDA pooling kernels (NCHW): max and average pooling, forward and backward.

Forwards run one thread per output element, scanning its window in row-major order.
Backwards write each input element's gradient from one thread, adding its contributions in a
fixed order: no atomics, the same bits on every run. The average's backward gathers over the
windows that contain the element; the max's backward has no geometry in its signature (only
the forward's ``indices``), so one thread owns a whole (H, W) plane and adds every output
gradient at its index in output order, the reference's own order.
"""
import math

from numba import cuda, float64

from ._launch import check_device, grid

__all__ = ["max_pool2d_fwd", "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd"]


# ------------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _position(e, array):
    """``(n, c, i, j)`` of flat position ``e`` in a C-contiguous (N, C, H, W) ``array``."""
    channels, rows, cols = array.shape[1], array.shape[2], array.shape[3]
    j = e % cols
    i = (e // cols) % rows
    plane = e // (cols * rows)
    return plane // channels, plane % channels, i, j


@cuda.jit(device=True)
def _window_length(start, kernel, size, pad, count_include_pad):
    """Along one axis, the length a window starting at ``start`` (maybe in the padding)
    counts toward its divisor: clipped to the padded input with ``count_include_pad``
    (ceil_mode's last window stops at its edge), else to the image."""
    end = min(start + kernel, size + pad)
    if count_include_pad:
        return end - start
    return min(end, size) - max(start, 0)


@cuda.jit(device=True)
def _avg_divisor(top, left, kernel_h, kernel_w, height, width, pad_h, pad_w,
                 count_include_pad, divisor_override):
    """PyTorch's divisor of the window at (``top``, ``left``): the override when non-zero,
    else its clipped area (see :func:`_window_length`)."""
    if divisor_override:
        return divisor_override
    return (_window_length(top, kernel_h, height, pad_h, count_include_pad)
            * _window_length(left, kernel_w, width, pad_w, count_include_pad))


@cuda.jit(device=True)
def _covering_windows(position, kernel, stride, pad, count):
    """Along one axis, the half-open range of windows (of ``count``) whose taps cover
    ``position`` of the image: ``k * stride - pad <= position < k * stride - pad + kernel``."""
    reach = position + pad - kernel + 1  # the first window's start must be >= this
    first = 0 if reach <= 0 else (reach + stride - 1) // stride
    return first, min(count, (position + pad) // stride + 1)


# ---------------------------------------------------------------------------------- kernels
@cuda.jit(cache=True)
def _max_pool(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
              indices):
    """Each window's maximum over its taps inside the image and its flat position: the first
    maximum in row-major order, replaced by a NaN (and that by a later NaN); a window of
    -inf keeps its first tap inside."""
    height, width = x.shape[2], x.shape[3]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, out.size, stride):
        n, c, i, j = _position(e, out)
        top, left = i * stride_h - pad_h, j * stride_w - pad_w
        best = -math.inf
        at = -1
        for p in range(kernel_h):
            h = top + p * dil_h
            if 0 <= h < height:
                for q in range(kernel_w):
                    w = left + q * dil_w
                    if 0 <= w < width:
                        v = x[n, c, h, w]
                        if at < 0 or v > best or v != v:
                            best, at = v, h * width + w
        out[n, c, i, j] = best
        indices[n, c, i, j] = at


@cuda.jit(cache=True)
def _max_unpool(grad_out, indices, grad_x):
    """One thread per (H, W) plane: zeros, then each output gradient added at its index, in
    output order (an index outside the plane is skipped)."""
    channels, height, width = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    planes = grad_x.shape[0] * channels
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for plane in range(start, planes, stride):
        n, c = plane // channels, plane % channels
        for h in range(height):
            for w in range(width):
                grad_x[n, c, h, w] = 0
        for i in range(out_h):
            for j in range(out_w):
                at = indices[n, c, i, j]
                if 0 <= at < height * width:
                    grad_x[n, c, at // width, at % width] += grad_out[n, c, i, j]


@cuda.jit(cache=True)
def _avg_pool(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
              divisor_override, out):
    """Each window's float64 sum over its taps inside the image, over its divisor."""
    height, width = x.shape[2], x.shape[3]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, out.size, stride):
        n, c, i, j = _position(e, out)
        top, left = i * stride_h - pad_h, j * stride_w - pad_w
        total = 0.0
        for h in range(max(top, 0), min(top + kernel_h, height)):
            for w in range(max(left, 0), min(left + kernel_w, width)):
                total += x[n, c, h, w]
        out[n, c, i, j] = total / _avg_divisor(top, left, kernel_h, kernel_w, height, width,
                                               pad_h, pad_w, count_include_pad,
                                               divisor_override)


@cuda.jit(cache=True)
def _avg_unpool(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                count_include_pad, divisor_override, grad_x):
    """One thread per input element: the sum, in float64 and window order, of the output
    gradients of the windows covering it, each over its divisor."""
    height, width = grad_x.shape[2], grad_x.shape[3]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, grad_x.size, stride):
        n, c, h, w = _position(e, grad_x)
        i0, i1 = _covering_windows(h, kernel_h, stride_h, pad_h, out_h)
        j0, j1 = _covering_windows(w, kernel_w, stride_w, pad_w, out_w)
        total = 0.0
        for i in range(i0, i1):
            top = i * stride_h - pad_h
            for j in range(j0, j1):
                left = j * stride_w - pad_w
                total += float64(grad_out[n, c, i, j]) / _avg_divisor(
                    top, left, kernel_h, kernel_w, height, width, pad_h, pad_w,
                    count_include_pad, divisor_override)
        grad_x[n, c, h, w] = total


# ---------------------------------------------------------------------------- the kernels
def max_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
                   indices):
    """Max pooling with the position of each maximum: see
    :func:`fastgrad.backends.numpy_ref.max_pool2d_fwd`."""
    check_device(x=x, out=out, indices=indices)
    blocks, threads = grid(out.size)
    _max_pool[blocks, threads](x, int(kernel_h), int(kernel_w), int(stride_h), int(stride_w),
                               int(pad_h), int(pad_w), int(dil_h), int(dil_w), out, indices)


def max_pool2d_bwd(grad_out, indices, grad_x):
    """The gradient of max pooling, one thread per plane: see
    :func:`fastgrad.backends.numpy_ref.max_pool2d_bwd`."""
    check_device(grad_out=grad_out, indices=indices, grad_x=grad_x)
    blocks, threads = grid(grad_x.shape[0] * grad_x.shape[1])
    _max_unpool[blocks, threads](grad_out, indices, grad_x)


def avg_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                   divisor_override, out):
    """Average pooling: see :func:`fastgrad.backends.numpy_ref.avg_pool2d_fwd`."""
    check_device(x=x, out=out)
    blocks, threads = grid(out.size)
    _avg_pool[blocks, threads](x, int(kernel_h), int(kernel_w), int(stride_h), int(stride_w),
                               int(pad_h), int(pad_w), bool(count_include_pad),
                               int(divisor_override or 0), out)


def avg_pool2d_bwd(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                   count_include_pad, divisor_override, grad_x):
    """The gradient of average pooling, gathered per input element: see
    :func:`fastgrad.backends.numpy_ref.avg_pool2d_bwd`."""
    check_device(grad_out=grad_out, grad_x=grad_x)
    blocks, threads = grid(grad_x.size)
    _avg_unpool[blocks, threads](grad_out, int(kernel_h), int(kernel_w), int(stride_h),
                                 int(stride_w), int(pad_h), int(pad_w), bool(count_include_pad),
                                 int(divisor_override or 0), grad_x)
