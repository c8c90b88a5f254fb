"""CUDA kernels of the layers: activations, cross-entropy, batch normalisation, the LSTM cell.

Elementwise kernels (activations, the cross-entropy backward, the LSTM cell) are grid-stride
loops, one element (or one (row, unit) of the LSTM's four gates) per iteration. The row and
channel reductions (log-sum-exp, batchnorm statistics and gradient sums) run one block per
row or channel, each thread accumulating a fixed stride of it in float64 and the block
combining them by a shared-memory tree (:func:`_block_sum`): no atomics, so the same inputs
give the same bits on every run.

Sigmoid and tanh are evaluated in the arrays' dtype (``expf``/``tanhf`` for float32), the
sigmoid as the reference's stable ``(1 if v >= 0 else e) / (1 + e)`` with ``e = exp(-|v|)``;
derivatives are taken in float64 from the forward's outputs, as the CPU kernels do.

A kernel takes no None: an absent optional array is a flag, with a stand-in array of the same
type in its place (:func:`_stand_in`), never read nor written.
"""
import math

import numpy as np
from numba import cuda, float64

from ..spec import raise_bad_target
from ._activations import NONE, activate, check_activation, derivative, sigmoid
from ._launch import THREADS, check_device, grid, segment_grid

__all__ = ["activation_fwd", "activation_bwd", "cross_entropy_fwd", "cross_entropy_bwd",
           "batchnorm_fwd", "batchnorm_bwd", "lstm_cell_fwd", "lstm_cell_bwd"]



# ------------------------------------------------------------------------- host helpers
def _stand_in(array, like):
    """``array``, or where it is None a 1-D view of ``like`` (an array of the same dtype) in
    its place: the kernel's flag says the array is absent, and the stand-in is not touched."""
    return like.reshape(like.size) if array is None else array


def _copy_to_host(array):
    """A host copy of a device array: numba's, or any with ``__cuda_array_interface__``."""
    if hasattr(array, "copy_to_host"):
        return array.copy_to_host()
    return cuda.as_cuda_array(array).copy_to_host()


def _bad_target_flag():
    """A one-element device flag, 0, that a cross-entropy kernel sets to 1 on a target out of
    range (every writer writes the same 1: no race on the result)."""
    return cuda.to_device(np.zeros(1, np.int32))


def _raise_if_flagged(flag, target, ignore_index, classes):
    """The reference's IndexError where the kernel set ``flag``; waits for the launch."""
    if flag.copy_to_host()[0]:
        raise_bad_target(1, _copy_to_host(target), ignore_index, classes)


# ----------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _block_sum(partial, value):
    """The sum of every thread's ``value`` over the block, returned to every thread: a tree
    in the shared float64 ``partial`` (blockDim.x a power of two, at most its size)."""
    lane = cuda.threadIdx.x
    partial[lane] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if lane < half:
            partial[lane] += partial[lane + half]
        cuda.syncthreads()
        half //= 2
    total = partial[0]
    cuda.syncthreads()  # every thread has read it before ``partial`` is reused
    return total


@cuda.jit(device=True)
def _block_max(partial, value):
    """The largest of every thread's ``value`` over the block (a NaN may be skipped), as
    :func:`_block_sum`."""
    lane = cuda.threadIdx.x
    partial[lane] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if lane < half and partial[lane + half] > partial[lane]:
            partial[lane] = partial[lane + half]
        cuda.syncthreads()
        half //= 2
    top = partial[0]
    cuda.syncthreads()
    return top


# ------------------------------------------------------------------------------ kernels
@cuda.jit(cache=True)
def _activation_fwd(x, activation, out, one):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, x.size, stride):
        out[k] = activate(x[k], activation, one)


@cuda.jit(cache=True)
def _activation_bwd(grad_out, out, activation, grad_in):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, grad_out.size, stride):
        if activation == NONE:
            grad_in[k] = grad_out[k]
        else:  # a multiplication even by 0: NaN and inf gradients propagate
            grad_in[k] = grad_out[k] * derivative(out[k], activation)


@cuda.jit(cache=True)
def _cross_entropy_fwd(logits, target, ignore_index, loss, lse, bad):
    """One block per row: the row maximum, then the shifted exponentials summed, in float64."""
    partial = cuda.shared.array(THREADS, float64)
    rows, classes = logits.shape
    lane, width = cuda.threadIdx.x, cuda.blockDim.x
    for n in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        top = -math.inf
        for j in range(lane, classes, width):
            v = float(logits[n, j])
            top = v if v > top else top
        top = _block_max(partial, top)
        total = 0.0
        for j in range(lane, classes, width):
            total += math.exp(logits[n, j] - top)
        total = top + math.log(_block_sum(partial, total))
        if lane == 0:
            lse[n] = total
            t = target[n]
            if t == ignore_index:
                loss[n] = 0.0
            else:
                t = t + classes if t < 0 else t  # negative indices count from the end
                if t < 0 or t >= classes:
                    loss[n] = math.nan
                    bad[0] = 1
                else:
                    loss[n] = total - logits[n, t]


@cuda.jit(cache=True)
def _cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits, bad):
    """Elementwise over (row, class), in float64; ignored rows multiplied by 0 (NaN stays)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    classes = logits.shape[1]
    for k in range(start, logits.size, stride):
        n, j = k // classes, k % classes
        t = target[n]
        kept = t != ignore_index
        weight = float(grad_loss[n]) if kept else 0.0
        p = math.exp(logits[n, j] - lse[n])
        if kept:
            t = t + classes if t < 0 else t
            if t < 0 or t >= classes:
                bad[0] = 1
            elif j == t:
                p -= 1.0
        grad_logits[n, j] = p * weight


@cuda.jit(cache=True)
def _batchnorm_fwd(x, weight, has_weight, bias, has_bias, eps, activation, one, running_mean,
                   running_var, has_running, momentum, unbiased, mean, var, invstd, out):
    """One block per channel: mean, then the variance of the centred values (two passes, in
    float64, as the reference), then the normalised output and its activation; lane 0 stores
    the statistics and updates the running ones (in float64, rounded once, the reference's
    operation order; ``unbiased`` is ``momentum * M / (M - 1)``, computed by the host)."""
    partial = cuda.shared.array(THREADS, float64)
    rows, channels, spatial = x.shape
    count = rows * spatial
    lane, width = cuda.threadIdx.x, cuda.blockDim.x
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        total = 0.0
        for k in range(lane, count, width):
            total += x[k // spatial, c, k % spatial]
        m = _block_sum(partial, total) / count
        total = 0.0
        for k in range(lane, count, width):
            d = x[k // spatial, c, k % spatial] - m
            total += d * d
        v = _block_sum(partial, total) / count
        inv = 1.0 / math.sqrt(v + eps)
        scale = inv * weight[c] if has_weight else inv
        for k in range(lane, count, width):
            n, s = k // spatial, k % spatial
            y = (x[n, c, s] - m) * scale
            if has_bias:
                y += bias[c]
            out[n, c, s] = y
            if activation != NONE:  # on the stored (rounded) value, as _activation_fwd
                out[n, c, s] = activate(out[n, c, s], activation, one)
        if lane == 0:
            mean[c] = m
            var[c] = v
            invstd[c] = inv
            if has_running:
                running_mean[c] = float(running_mean[c]) * (1.0 - momentum) + momentum * m
                running_var[c] = float(running_var[c]) * (1.0 - momentum) + unbiased * v


@cuda.jit(cache=True)
def _batchnorm_bwd(grad_out, x, weight, has_weight, mean, invstd, grad_x, has_grad_x,
                   grad_weight, has_grad_weight, grad_bias, has_grad_bias):
    """One block per channel: the sums of dy and of dy * x_hat in float64, then grad_x
    (``grad_out`` is dy, the activation's derivative already applied)."""
    partial = cuda.shared.array(THREADS, float64)
    rows, channels, spatial = x.shape
    count = rows * spatial
    lane, width = cuda.threadIdx.x, cuda.blockDim.x
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        m, inv = mean[c], invstd[c]
        sum_dy = 0.0
        sum_dy_x_hat = 0.0
        for k in range(lane, count, width):
            n, s = k // spatial, k % spatial
            dy = float(grad_out[n, c, s])
            sum_dy += dy
            sum_dy_x_hat += dy * ((x[n, c, s] - m) * inv)
        sum_dy = _block_sum(partial, sum_dy)
        sum_dy_x_hat = _block_sum(partial, sum_dy_x_hat)
        if lane == 0:
            if has_grad_bias:
                grad_bias[c] = sum_dy
            if has_grad_weight:
                grad_weight[c] = sum_dy_x_hat
        if has_grad_x:
            mean_dy, mean_dy_x_hat = sum_dy / count, sum_dy_x_hat / count
            scale = inv * weight[c] if has_weight else inv
            for k in range(lane, count, width):
                n, s = k // spatial, k % spatial
                x_hat = (x[n, c, s] - m) * inv
                grad_x[n, c, s] = ((grad_out[n, c, s] - mean_dy) - x_hat * mean_dy_x_hat) * scale


@cuda.jit(cache=True)
def _lstm_cell_fwd(gates, c_prev, gates_act, h, c, one):
    """Elementwise over (row, unit): the unit's four gates, then its cell and output from the
    stored (rounded) activations, as the reference computes them."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    hidden = c.shape[1]
    for k in range(start, c.size, stride):
        n, j = k // hidden, k % hidden
        gates_act[n, j] = sigmoid(gates[n, j], one)
        gates_act[n, hidden + j] = sigmoid(gates[n, hidden + j], one)
        gates_act[n, 2 * hidden + j] = math.tanh(gates[n, 2 * hidden + j])
        gates_act[n, 3 * hidden + j] = sigmoid(gates[n, 3 * hidden + j], one)
        i, f = gates_act[n, j], gates_act[n, hidden + j]
        g, o = gates_act[n, 2 * hidden + j], gates_act[n, 3 * hidden + j]
        c[n, j] = f * c_prev[n, j] + i * g
        h[n, j] = math.tanh(c[n, j]) * o


@cuda.jit(cache=True)
def _lstm_cell_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev,
                   has_grad_c_prev):
    """Elementwise over (row, unit), in float64 from the forward's outputs."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    hidden = c.shape[1]
    for k in range(start, c.size, stride):
        n, j = k // hidden, k % hidden
        tanh_c, dh = float(math.tanh(c[n, j])), float(grad_h[n, j])
        i, f = float(gates_act[n, j]), float(gates_act[n, hidden + j])
        g, o = float(gates_act[n, 2 * hidden + j]), float(gates_act[n, 3 * hidden + j])
        cell = grad_c[n, j] + dh * o * (1.0 - tanh_c * tanh_c)
        grad_gates[n, j] = cell * g * (i * (1.0 - i))
        grad_gates[n, hidden + j] = cell * c_prev[n, j] * (f * (1.0 - f))
        grad_gates[n, 2 * hidden + j] = cell * i * (1.0 - g * g)
        grad_gates[n, 3 * hidden + j] = dh * tanh_c * (o * (1.0 - o))
        if has_grad_c_prev:
            grad_c_prev[n, j] = cell * f


# ----------------------------------------------------------------------------- the kernels
def activation_fwd(x, activation, out):
    """``out = act(x)`` elementwise: see :func:`fastgrad.backends.numpy_ref.activation_fwd`."""
    check_device(x=x, out=out)
    check_activation(activation)
    blocks, threads = grid(x.size)
    _activation_fwd[blocks, threads](x.reshape(x.size), activation, out.reshape(out.size),
                                     x.dtype.type(1.0))


def activation_bwd(grad_out, out, activation, grad_in):
    """``grad_in = grad_out * act'`` from the output: see
    :func:`fastgrad.backends.numpy_ref.activation_bwd`."""
    check_device(grad_out=grad_out, out=out, grad_in=grad_in)
    check_activation(activation)
    blocks, threads = grid(grad_out.size)
    _activation_bwd[blocks, threads](grad_out.reshape(grad_out.size), out.reshape(out.size),
                                     activation, grad_in.reshape(grad_in.size))


def cross_entropy_fwd(logits, target, ignore_index, loss, lse):
    """Per-row cross-entropy: see :func:`fastgrad.backends.numpy_ref.cross_entropy_fwd`. A
    target out of range raises the reference's IndexError (after the launch: it waits)."""
    check_device(logits=logits, target=target, loss=loss, lse=lse)
    rows, classes = logits.shape
    flag = _bad_target_flag()
    blocks, threads = segment_grid(rows)
    _cross_entropy_fwd[blocks, threads](logits, target, np.int64(ignore_index), loss, lse, flag)
    _raise_if_flagged(flag, target, ignore_index, classes)


def cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits):
    """Gradient of :func:`cross_entropy_fwd`: see
    :func:`fastgrad.backends.numpy_ref.cross_entropy_bwd`. A target out of range raises the
    reference's IndexError, as the forward."""
    check_device(logits=logits, target=target, lse=lse, grad_loss=grad_loss,
                 grad_logits=grad_logits)
    flag = _bad_target_flag()
    blocks, threads = grid(logits.size)
    _cross_entropy_bwd[blocks, threads](logits, target, lse, np.int64(ignore_index), grad_loss,
                                        grad_logits, flag)
    _raise_if_flagged(flag, target, ignore_index, logits.shape[1])


def batchnorm_fwd(x, weight, bias, eps, activation, running_mean, running_var, momentum, mean,
                  var, invstd, out):
    """Training-mode batch normalisation and its activation, the running statistics updated:
    see :func:`fastgrad.backends.numpy_ref.batchnorm_fwd`. One block per channel; the activation
    is applied where ``out`` is written, as :func:`activation_fwd` would after it (same bits),
    and the lane that stores the channel's mean and variance updates its running ones, in the
    same launch."""
    check_device(x=x, weight=weight, bias=bias, running_mean=running_mean,
                 running_var=running_var, mean=mean, var=var, invstd=invstd, out=out)
    check_activation(activation)
    if (running_mean is None) != (running_var is None):  # a stand-in would be written
        raise ValueError("batchnorm_fwd takes running_mean and running_var together, got only "
                         f"{'running_mean' if running_var is None else 'running_var'}")
    has_running, momentum = running_mean is not None, float(momentum)
    count = x.shape[0] * x.shape[2]
    # the variance's factor as the reference computes it (M = 1 raises its ZeroDivisionError)
    unbiased = momentum * (count / (count - 1)) if has_running else 0.0
    blocks, threads = segment_grid(x.shape[1])
    _batchnorm_fwd[blocks, threads](x, _stand_in(weight, x), weight is not None,
                                    _stand_in(bias, x), bias is not None, float(eps),
                                    activation, x.dtype.type(1.0), _stand_in(running_mean, x),
                                    _stand_in(running_var, x), has_running, momentum, unbiased,
                                    mean, var, invstd, out)


def batchnorm_bwd(grad_out, x, weight, mean, invstd, out, activation, grad_x, grad_weight,
                  grad_bias):
    """Gradients of :func:`batchnorm_fwd`: see :func:`fastgrad.backends.numpy_ref.batchnorm_bwd`.
    With an activation, ``dy = grad_out * act'(out)`` first, by :func:`activation_bwd`'s
    kernel into a temporary (dy rounded to the dtype as that kernel's output is, which a
    product taken where grad_out is read would not be); then one block per channel."""
    check_device(grad_out=grad_out, x=x, weight=weight, mean=mean, invstd=invstd, out=out,
                 grad_x=grad_x, grad_weight=grad_weight, grad_bias=grad_bias)
    check_activation(activation)
    dy = grad_out
    if activation != NONE:
        dy = cuda.device_array(grad_out.shape, grad_out.dtype)
        blocks, threads = grid(dy.size)
        _activation_bwd[blocks, threads](grad_out.reshape(grad_out.size), out.reshape(out.size),
                                         activation, dy.reshape(dy.size))
    blocks, threads = segment_grid(x.shape[1])
    _batchnorm_bwd[blocks, threads](
        dy, x, _stand_in(weight, x), weight is not None, mean, invstd,
        x if grad_x is None else grad_x, grad_x is not None,
        _stand_in(grad_weight, x), grad_weight is not None,
        _stand_in(grad_bias, x), grad_bias is not None)


def lstm_cell_fwd(gates, c_prev, gates_act, h, c):
    """The pointwise part of one LSTM step: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_fwd`."""
    check_device(gates=gates, c_prev=c_prev, gates_act=gates_act, h=h, c=c)
    blocks, threads = grid(c.size)
    _lstm_cell_fwd[blocks, threads](gates, c_prev, gates_act, h, c, gates.dtype.type(1.0))


def lstm_cell_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
    """Gradients of :func:`lstm_cell_fwd`: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_bwd`."""
    check_device(grad_h=grad_h, grad_c=grad_c, c_prev=c_prev, c=c, gates_act=gates_act,
                 grad_gates=grad_gates, grad_c_prev=grad_c_prev)
    blocks, threads = grid(c.size)
    _lstm_cell_bwd[blocks, threads](grad_h, grad_c, c_prev, c, gates_act, grad_gates,
                                    c if grad_c_prev is None else grad_c_prev,
                                    grad_c_prev is not None)
