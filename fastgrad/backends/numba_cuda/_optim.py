"""CUDA optimiser steps over flat arenas: SGD, Adam, RMSprop, Adagrad, Adadelta, Adamax, NAdam.

Each step is one fused grid-stride kernel: every thread reads an element's gradient and state,
updates the state and the parameter, and writes them back, in one pass. The per-element
arithmetic is the CPU Numba backend's (:mod:`fastgrad.backends.numba_cpu._arena`), which
follows the reference's (:mod:`fastgrad.backends.numpy_ref`).

The host wrappers round the hyperparameters to the arrays' dtype (the reference's ``array op
python_float`` computes in the array's dtype, NEP 50) and pass the flags (maximize, nesterov,
AMSGrad, centred, decoupled decay, first step) as kernel arguments, so one compiled kernel per
dtype serves every variant. An optional state array that a variant leaves out (None) is
replaced by :func:`_placeholder`'s one-element device array of the dtype, with its flag off,
so the kernel's signature stays the same; the kernel never touches it.
"""
import math

from numba import cuda

from .. import numpy_ref as _reference
from ._launch import check_device, grid

__all__ = ["sgd_step", "adam_step", "rmsprop_step", "adagrad_step", "adadelta_step",
           "adamax_step", "nadam_step"]

#: One-element device arrays standing in for absent optional state arrays, per dtype: created
#: on first use (not at import: that would need a device context) and reused afterwards.
_PLACEHOLDERS = {}


def _placeholder(dtype):
    """The cached one-element device array of ``dtype`` passed for an absent state array."""
    if dtype not in _PLACEHOLDERS:
        _PLACEHOLDERS[dtype] = cuda.device_array(1, dtype)
    return _PLACEHOLDERS[dtype]


def _or_placeholder(array, dtype):
    """``array``, or the placeholder of ``dtype`` when it is None."""
    return _placeholder(dtype) if array is None else array


def _rounded(dtype, *values):
    """``values`` rounded to ``dtype``, as the reference's NumPy arithmetic rounds them."""
    kind = dtype.type
    return [kind(v) for v in values]


@cuda.jit(device=True)
def _decayed(g, p, weight_decay, maximize):
    """The gradient an L2-decayed step uses: negated to maximise, plus ``weight_decay * p``."""
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


# ----------------------------------------------------------------------------------------- SGD
@cuda.jit(cache=True)
def _sgd(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize,
         first_step, use_momentum):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        d = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            d = d + weight_decay * p
        if use_momentum:
            b = d if first_step else momentum * buf[i] + one_minus_dampening * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        param[i] = p - lr * d


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
             maximize, first_step):
    """One SGD step with momentum, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.sgd_step`."""
    check_device(param=param, grad=grad, momentum_buffer=momentum_buffer)
    use_momentum = momentum != 0
    buf = momentum_buffer if use_momentum else None
    blocks, threads = grid(param.size)
    _sgd[blocks, threads](param, grad, _or_placeholder(buf, param.dtype),
                          *_rounded(param.dtype, lr, momentum, 1 - dampening, weight_decay),
                          bool(nesterov), bool(maximize), bool(first_step), use_momentum)


# ---------------------------------------------------------------------------------------- Adam
@cuda.jit(device=True, cache=True)
def _adam_moments(grad, param, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                  weight_decay, decay, decoupled, maximize):
    """One element's start of an Adam or NAdam step: the signed gradient with its L2 term, or
    the parameter's decoupled decay, then both moments. Returns ``(g, p, m, v)``."""
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


@cuda.jit(cache=True)
def _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
          one_minus_beta2, eps, weight_decay, decay, step_size, bias_correction2_sqrt, decoupled,
          maximize, amsgrad):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        _, p, m, v = _adam_moments(grad[i], param[i], exp_avg[i], exp_avg_sq[i],
                                   one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                                   decoupled, maximize)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            largest = max_exp_avg_sq[i]
            # np.maximum keeps NaN from either side
            if v > largest or v != v:
                largest = v
            max_exp_avg_sq[i] = largest
            v = largest
        param[i] = p - step_size * (m / (math.sqrt(v) / bias_correction2_sqrt + eps))


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
              weight_decay, decoupled_weight_decay, maximize):
    """One Adam / AdamW / AMSGrad step, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adam_step`."""
    check_device(param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                 max_exp_avg_sq=max_exp_avg_sq)
    scalars = _rounded(param.dtype, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
                       1 - lr * weight_decay, lr / (1 - beta1 ** step),
                       (1 - beta2 ** step) ** 0.5)
    blocks, threads = grid(param.size)
    _adam[blocks, threads](param, grad, exp_avg, exp_avg_sq,
                           _or_placeholder(max_exp_avg_sq, param.dtype), *scalars,
                           bool(decoupled_weight_decay), bool(maximize),
                           max_exp_avg_sq is not None)


# ------------------------------------------------------------------------------------- RMSprop
@cuda.jit(cache=True)
def _rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
             eps, weight_decay, momentum, zero, maximize, centered, use_momentum):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        p = param[i]
        g = _decayed(grad[i], p, weight_decay, maximize)
        v = alpha * square_avg[i] + one_minus_alpha * g * g
        square_avg[i] = v
        if centered:
            mean = grad_avg[i]
            mean = mean + one_minus_alpha * (g - mean)
            grad_avg[i] = mean
            v = v - mean * mean
            # rounding can take the variance a hair below zero; NaN stays NaN
            v = zero if v < zero else v
        avg = math.sqrt(v) + eps
        if use_momentum:
            b = momentum * momentum_buffer[i] + g / avg
            momentum_buffer[i] = b
            param[i] = p - lr * b
        else:
            param[i] = p - lr * (g / avg)


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                 weight_decay, momentum, maximize):
    """One RMSprop step (optionally centred, with momentum), fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.rmsprop_step`."""
    check_device(param=param, grad=grad, square_avg=square_avg, grad_avg=grad_avg,
                 momentum_buffer=momentum_buffer)
    blocks, threads = grid(param.size)
    _rmsprop[blocks, threads](
        param, grad, square_avg, _or_placeholder(grad_avg, param.dtype),
        _or_placeholder(momentum_buffer, param.dtype),
        *_rounded(param.dtype, lr, alpha, 1 - alpha, eps, weight_decay, momentum, 0.0),
        bool(maximize), grad_avg is not None, momentum_buffer is not None)


# ------------------------------------------------------------------------------------- Adagrad
@cuda.jit(cache=True)
def _adagrad(param, grad, state_sum, clr, weight_decay, eps, maximize):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        p = param[i]
        g = _decayed(grad[i], p, weight_decay, maximize)
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = p - clr * (g / (math.sqrt(s) + eps))


def adagrad_step(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step (with PyTorch's learning-rate decay), fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adagrad_step`."""
    check_device(param=param, grad=grad, state_sum=state_sum)
    clr = lr / (1 + (step - 1) * lr_decay)
    blocks, threads = grid(param.size)
    _adagrad[blocks, threads](param, grad, state_sum,
                              *_rounded(param.dtype, clr, weight_decay, eps), bool(maximize))


# ------------------------------------------------------------------------------------ Adadelta
@cuda.jit(cache=True)
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, weight_decay,
              maximize):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        p = param[i]
        g = _decayed(grad[i], p, weight_decay, maximize)
        v = rho * square_avg[i] + one_minus_rho * g * g
        square_avg[i] = v
        u = acc_delta[i]
        delta = math.sqrt(u + eps) / math.sqrt(v + eps) * g
        acc_delta[i] = rho * u + one_minus_rho * delta * delta
        param[i] = p - lr * delta


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adadelta_step`."""
    check_device(param=param, grad=grad, square_avg=square_avg, acc_delta=acc_delta)
    blocks, threads = grid(param.size)
    _adadelta[blocks, threads](param, grad, square_avg, acc_delta,
                               *_rounded(param.dtype, lr, rho, 1 - rho, eps, weight_decay),
                               bool(maximize))


# -------------------------------------------------------------------------------------- Adamax
@cuda.jit(cache=True)
def _adamax(param, grad, exp_avg, exp_inf, one_minus_beta1, beta2, eps, weight_decay, clr,
            maximize):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        p = param[i]
        g = _decayed(grad[i], p, weight_decay, maximize)
        m = exp_avg[i]
        m = m + one_minus_beta1 * (g - m)
        exp_avg[i] = m
        u = exp_inf[i] * beta2
        bound = abs(g) + eps
        # np.maximum keeps NaN from either side
        if bound > u or bound != bound:
            u = bound
        exp_inf[i] = u
        param[i] = p - clr * (m / u)


def adamax_step(param, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay,
                maximize):
    """One Adamax step, fused into one pass: see
    :func:`fastgrad.backends.numpy_ref.adamax_step`."""
    check_device(param=param, grad=grad, exp_avg=exp_avg, exp_inf=exp_inf)
    blocks, threads = grid(param.size)
    _adamax[blocks, threads](param, grad, exp_avg, exp_inf,
                             *_rounded(param.dtype, 1 - beta1, beta2, eps, weight_decay,
                                       lr / (1 - beta1 ** step)),
                             bool(maximize))


# --------------------------------------------------------------------------------------- NAdam
@cuda.jit(cache=True)
def _nadam(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2, eps,
           weight_decay, decay, bias_correction2, grad_coefficient, avg_coefficient, decoupled,
           maximize):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, param.size, stride):
        g, p, m, v = _adam_moments(grad[i], param[i], exp_avg[i], exp_avg_sq[i],
                                   one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                                   decoupled, maximize)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        denom = math.sqrt(v / bias_correction2) + eps
        p = p - grad_coefficient * (g / denom)
        param[i] = p - avg_coefficient * (m / denom)


def nadam_step(param, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps,
               weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step, fused into one pass: see :func:`fastgrad.backends.numpy_ref.nadam_step`."""
    check_device(param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    mu = _reference.nadam_momentum(step, beta1, momentum_decay)
    mu_next = _reference.nadam_momentum(step + 1, beta1, momentum_decay)
    scalars = _rounded(param.dtype, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
                       1 - lr * weight_decay, 1 - beta2 ** step,
                       lr * (1 - mu) / (1 - mu_product),
                       lr * mu_next / (1 - mu_product * mu_next))
    blocks, threads = grid(param.size)
    _nadam[blocks, threads](param, grad, exp_avg, exp_avg_sq, *scalars,
                            bool(decoupled_weight_decay), bool(maximize))
