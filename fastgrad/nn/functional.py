"""Neural-network functions (``import fastgrad.nn.functional as F``), PyTorch's names.

The fused ones run through the kernel registry: :func:`linear` is one ``linear_fwd`` (GEMM,
bias and activation) and one ``linear_bwd``; :func:`cross_entropy` is log-softmax and NLL in
one ``cross_entropy_fwd`` pass per row; :func:`batch_norm` in training mode is one
``batchnorm_fwd`` and one ``batchnorm_bwd``. The other activations and losses are small
elementwise Functions in NumPy, each in its numerically stable form.
"""
import math
import numbers

import numpy as np

from .. import autograd
from .. import dtypes
from .. import ops
from .. import random as _random
from ..autograd import Function
from ..backends import ACTIVATIONS, K
from ..ops import _ieee
from ..tensor import Tensor

relu = ops.relu
sigmoid = ops.sigmoid
tanh = ops.tanh
softmax = ops.softmax
log_softmax = ops.log_softmax

_REDUCTIONS = ("none", "mean", "sum")


def _check_tensor(value, argument):
    if not isinstance(value, Tensor):
        raise TypeError(f"{argument} must be a Tensor, got {type(value).__name__}")


def _check_floating(value, argument):
    _check_tensor(value, argument)
    if not dtypes.is_floating(value.dtype):
        raise TypeError(f"{argument} must be a floating tensor, got dtype {value.dtype}")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _real(value, argument):
    """``value`` as a float; a TypeError unless it is a real number (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    return float(value)


def _stable_sigmoid(z):
    """1 / (1 + exp(-z)) from exp(-|z|), which never overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


@_ieee
class _Linear(Function):
    def forward(self, x, weight, bias, activation):
        self.x_shape = x.shape
        # the rows counted, not -1: a reshape cannot infer them when a size is 0
        x2 = np.ascontiguousarray(x.reshape(math.prod(x.shape[:-1]), x.shape[-1]))
        weight = np.ascontiguousarray(weight)
        out = np.empty((x2.shape[0], weight.shape[0]), x.dtype)
        K.linear_fwd(x2, weight, bias, activation, out)
        self.x2, self.weight, self.out, self.activation = x2, weight, out, activation
        self.has_bias = bias is not None
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        needs_x, needs_w, needs_b = self.needs_input_grad[:3]
        x2, weight = self.x2, self.weight
        grad_x = np.empty_like(x2) if needs_x else None
        grad_w = np.empty_like(weight) if needs_w else None
        grad_b = np.empty(weight.shape[0], weight.dtype) if needs_b and self.has_bias else None
        grad2 = np.ascontiguousarray(grad.reshape(self.out.shape))
        K.linear_bwd(grad2, x2, weight, self.out, self.activation, grad_x, grad_w, grad_b)
        return (grad_x.reshape(self.x_shape) if needs_x else None), grad_w, grad_b, None


def linear(input, weight, bias=None, activation="none"):
    """``activation(input @ weight.T + bias)``, fused in one kernel.

    ``activation`` (``"none"``, ``"relu"``, ``"sigmoid"``, ``"tanh"``) is fastgrad's addition
    to PyTorch's signature: the activation is applied in the GEMM's epilogue, and its
    derivative in the backward kernel, instead of as separate passes.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,);
        output (*, out_features).
    """
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear: input of shape {input.shape} cannot be multiplied with "
                           f"weight of shape {weight.shape} (expected input shape "
                           f"(*, {weight.shape[1]}))")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"linear: input and weight must have the same dtype, got input "
                           f"{input.dtype} and weight {weight.dtype}")
    if bias is not None:
        _check_tensor(bias, "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {bias.shape}")
        if bias.dtype != weight.dtype:
            raise RuntimeError(f"linear: bias and weight must have the same dtype, got bias "
                               f"{bias.dtype} and weight {weight.dtype}")
    return _Linear.apply(input, weight, bias, ACTIVATIONS[activation])


# ------------------------------------------------------------------------------- activations
def _opmath(x):
    """``x`` in the dtype to compute in: float32 for float16 (as PyTorch's CPU kernels do, so
    a tiny slope or scale does not round to 0 before it multiplies), else its own."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


@_ieee
class _LeakyReLU(Function):
    def forward(self, x, negative_slope):
        self.positive, self.negative_slope = x > 0, negative_slope
        return np.where(self.positive, x, _opmath(x) * negative_slope).astype(x.dtype)

    def backward(self, grad):
        return np.where(self.positive, grad,
                        _opmath(grad) * self.negative_slope).astype(grad.dtype), None


def leaky_relu(input, negative_slope=0.01):
    """``x`` where ``x > 0``, else ``negative_slope * x``; the gradient at 0 is the slope, as
    in PyTorch."""
    _check_floating(input, "input")
    return _LeakyReLU.apply(input, _real(negative_slope, "negative_slope"))


@_ieee
class _ELU(Function):
    def forward(self, x, alpha):
        self.x, self.alpha = x, alpha
        negative = alpha * np.expm1(np.minimum(_opmath(x), 0))
        return np.where(x > 0, x, negative).astype(x.dtype)

    def backward(self, grad):
        x = _opmath(self.x)
        return np.where(x > 0, grad, _opmath(grad) * (self.alpha * np.exp(np.minimum(x, 0)))
                        ).astype(grad.dtype), None


def elu(input, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (``expm1``: exact near 0).

    References: Clevert et al., "Fast and Accurate Deep Network Learning by Exponential Linear
    Units (ELUs)", ICLR 2016.
    """
    _check_floating(input, "input")
    return _ELU.apply(input, _real(alpha, "alpha"))


# W. J. Cody's rational Chebyshev approximations of erf and erfc (Math. Comp. 23, 1969,
# pp. 631-638; the coefficients of netlib specfun's CALERF), highest degree first:
# erf(z) = z P(z²) / Q(z²) for |z| <= 0.46875; erfc(y) = exp(-y²) P(y) / Q(y) for
# 0.46875 < y <= 4; erfc(y) = exp(-y²) (1/sqrt(pi) - w P(w) / Q(w)) / y with w = 1/y² beyond.
# NumPy has no erf and SciPy is not a dependency; np.frompyfunc(math.erf) is twice as slow.
_ERF_SMALL = 0.46875
_ERF_P = (0.185777706184603153, 3.1611237438705656, 113.864154151050156, 377.485237685302021,
          3209.37758913846947)
_ERF_Q = (1.0, 23.6012909523441209, 244.024637934444173, 1282.61652607737228,
          2844.23683343917062)
_ERFC_MID_P = (2.15311535474403846e-8, 0.564188496988670089, 8.88314979438837594,
               66.1191906371416295, 298.635138197400131, 881.95222124176909,
               1712.04761263407058, 2051.07837782607147, 1230.33935479799725)
_ERFC_MID_Q = (1.0, 15.7449261107098347, 117.693950891312499, 537.181101862009858,
               1621.38957456669019, 3290.79923573345963, 4362.61909014324716,
               3439.36767414372164, 1230.33935480374942)
_ERFC_TAIL_P = (0.0163153871373020978, 0.305326634961232344, 0.360344899949804439,
                0.125781726111229246, 0.0160837851487422766, 6.58749161529837803e-4)
_ERFC_TAIL_Q = (1.0, 2.56852019228982242, 1.87295284992346047, 0.527905102951428412,
                0.0605183413124413191, 0.00233520497626869185)
_INV_SQRT_PI = 0.56418958354775628695
_INV_SQRT_2PI = 0.3989422804014327
_SQRT_2_OVER_PI = 0.7978845608028654
_GELU_TANH_CUBIC = 0.044715


def _rational(z, numerator, denominator):
    """``numerator(z) / denominator(z)``, coefficients highest degree first (Horner)."""
    top, bottom = np.full_like(z, numerator[0]), np.full_like(z, denominator[0])
    for c in numerator[1:]:
        top *= z
        top += c
    for c in denominator[1:]:
        bottom *= z
        bottom += c
    top /= bottom
    return top


def _normal_cdf(x):
    """The standard normal CDF, :math:`\\Phi(x) = erfc(-x / \\sqrt 2) / 2`, of a float64 array.

    Reflecting erfc of :math:`|x| / \\sqrt 2` keeps the relative accuracy in the lower tail,
    where ``1 + erf(x / sqrt(2))`` would cancel: within 2e-15 of ``math.erfc`` at the same
    argument, relative, down to the subnormal range (below x = -37.5); 0 below x = -38.2.
    """
    # C order: the tail is written through reshape(-1), a copy (and the write lost) otherwise
    z = np.ascontiguousarray(x).reshape(x.shape) * math.sqrt(0.5)  # a 0-d x stays 0-d
    y = np.minimum(np.abs(z), 27.0)  # erfc(27) is subnormal: taken as 0; y * y stays finite
    erfc = _rational(np.clip(y, _ERF_SMALL, 4.0), _ERFC_MID_P, _ERFC_MID_Q)
    erfc *= np.exp(-y * y)
    tail = np.flatnonzero(y > 4)
    if tail.size:
        yt = y.reshape(-1)[tail]
        w = 1 / (yt * yt)
        # exp(-y²) as exp(-r²) exp(-(y - r)(y + r)) with r = y rounded down to 1/16: r² is
        # exact, so the rounding of y² is not magnified by exp (Cody's device)
        r = np.trunc(yt * 16) / 16
        value = (_INV_SQRT_PI - w * _rational(w, _ERFC_TAIL_P, _ERFC_TAIL_Q)) / yt
        value *= np.exp(-r * r) * np.exp(-(yt - r) * (yt + r))
        value[yt >= 27.0] = 0.0
        erfc.reshape(-1)[tail] = value
    half = 0.5 * erfc
    cdf = np.where(z > 0, 1 - half, half)
    small = np.clip(z, -_ERF_SMALL, _ERF_SMALL)
    return np.where(np.abs(z) <= _ERF_SMALL,
                    0.5 + 0.5 * small * _rational(small * small, _ERF_P, _ERF_Q), cdf)


@_ieee
class _GELU(Function):
    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        # float64 inside: the tail of the CDF and the cubic would lose float32's accuracy
        x64 = x.astype(np.float64)
        if approximate == "none":
            self.cdf = _normal_cdf(x64)
        else:
            inner = np.clip(x64, -40, 40)  # tanh is ±1 well before; the cube stays finite
            inner = _SQRT_2_OVER_PI * (inner + _GELU_TANH_CUBIC * inner * inner * inner)
            self.cdf = 0.5 + 0.5 * np.tanh(inner)
        return (x64 * self.cdf).astype(x.dtype)

    def backward(self, grad):
        x = np.clip(self.x.astype(np.float64), -40, 40)  # beyond, the density term is 0
        cdf = self.cdf
        if self.approximate == "none":
            derivative = cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        else:
            tanh = 2 * cdf - 1
            derivative = cdf + 0.5 * x * (1 - tanh * tanh) * _SQRT_2_OVER_PI * (
                1 + 3 * _GELU_TANH_CUBIC * x * x)
        return (grad * derivative).astype(grad.dtype), None


def gelu(input, approximate="none"):
    """The Gaussian error linear unit, :math:`x \\Phi(x)` with :math:`\\Phi` the standard
    normal CDF; ``approximate="tanh"`` uses
    :math:`\\Phi(x) \\approx (1 + \\tanh(\\sqrt{2/\\pi}(x + 0.044715 x^3))) / 2`.

    The exact form evaluates erf with W. J. Cody's rational approximations (about 1e-16
    absolute error in float64), in float64 whatever the input dtype.

    References: Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016.
    """
    _check_floating(input, "input")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _GELU.apply(input, approximate)


@_ieee
class _Softplus(Function):
    def forward(self, x, beta, threshold):
        z = _opmath(x) * beta
        self.z, self.threshold = z, threshold
        # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): no overflow for any z
        soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
        return np.where(z > threshold, x, soft).astype(x.dtype)

    def backward(self, grad):
        z = self.z
        return np.where(z > self.threshold, grad, _opmath(grad) * _stable_sigmoid(z)
                        ).astype(grad.dtype), None, None


def softplus(input, beta=1.0, threshold=20.0):
    """:math:`\\frac{1}{\\beta} \\log(1 + e^{\\beta x})`, and ``x`` itself where
    ``beta * x > threshold`` (PyTorch's linear regime)."""
    _check_floating(input, "input")
    beta, threshold = _real(beta, "beta"), _real(threshold, "threshold")
    if beta == 0:
        raise ValueError("softplus beta must be non-zero, got 0")
    return _Softplus.apply(input, beta, threshold)


# ----------------------------------------------------------------------------------- dropout
@_ieee
class _Dropout(Function):
    def forward(self, x, keep, scale):
        self.keep, self.scale = keep, scale
        return np.where(keep, x * scale, 0)

    def backward(self, grad):
        return np.where(self.keep, grad * self.scale, 0), None, None


def _check_probability(p):
    p = _real(p, "p")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


def dropout(input, p=0.5, training=True):
    """Inverted dropout: zero each element with probability ``p`` and scale the kept ones by
    ``1 / (1 - p)``, so the expectation is unchanged and evaluation needs no rescaling.

    The mask is drawn from fastgrad's default generator, so :func:`fastgrad.manual_seed` makes
    it repeatable. ``input`` itself when ``training`` is False or ``p == 0``; zeros (never NaN)
    when ``p == 1``.

    References: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014.
    """
    _check_floating(input, "input")
    p = _check_probability(p)
    if not training or p == 0:
        return input
    if p == 1:
        keep, scale = np.zeros(input.shape, bool), np.asarray(1, input.dtype)
    else:
        draw = input.dtype if input.dtype in (dtypes.float32, dtypes.float64) else dtypes.float64
        keep = _random.numpy_generator().random(input.shape, dtype=draw) >= p
        scale = np.asarray(1 / (1 - p), input.dtype)
    return _Dropout.apply(input, keep, scale)


# ------------------------------------------------------------------------------ batch norm
@_ieee
class _BatchNormTraining(Function):
    """Training-mode batch normalisation of (N, C, *) through the batchnorm kernels. The batch
    mean and biased variance are extra outputs, for the running statistics only: no gradient
    flows back through them."""

    grads_are_fresh = True

    def forward(self, x, weight, bias, eps):
        self.shape, channels = x.shape, x.shape[1]
        x3 = np.ascontiguousarray(x.reshape(x.shape[0], channels, math.prod(x.shape[2:])))
        weight = None if weight is None else np.ascontiguousarray(weight)
        bias = None if bias is None else np.ascontiguousarray(bias)
        mean, var, invstd = (np.empty(channels, np.float64) for _ in range(3))
        out = np.empty_like(x3)
        K.batchnorm_fwd(x3, weight, bias, eps, mean, var, invstd, out)
        self.x3, self.weight, self.mean, self.invstd = x3, weight, mean, invstd
        return out.reshape(self.shape), mean, var

    def backward(self, grad_out, grad_mean, grad_var):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        x3, channels = self.x3, self.x3.shape[1]
        grad_x = np.empty_like(x3) if needs_x else None
        grad_weight = np.empty(channels, x3.dtype) if needs_weight else None
        grad_bias = np.empty(channels, x3.dtype) if needs_bias else None
        K.batchnorm_bwd(np.ascontiguousarray(grad_out.reshape(x3.shape)), x3, self.weight,
                        self.mean, self.invstd, grad_x, grad_weight, grad_bias)
        return (grad_x.reshape(self.shape) if needs_x else None), grad_weight, grad_bias, None


def _verify_batch_size(shape):
    """PyTorch's check: batch statistics need more than one value per channel."""
    values = shape[0] * math.prod(shape[2:])
    if values == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {shape}")
    if values == 0:
        raise ValueError(f"batch statistics need a non-empty batch, got input size {shape}")


def _batch_norm_eval(input, running_mean, running_var, weight, bias, eps):
    # the running statistics are constants here: elementwise ops, and autograd, do the rest
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        invstd = 1 / np.sqrt(running_var._data.astype(np.float64) + eps)
    scale = Tensor(invstd.astype(input.dtype))
    if weight is not None:
        scale = weight * scale
    out = (input - running_mean.detach().reshape(shape)) * scale.reshape(shape)
    return out if bias is None else out + bias.reshape(shape)


def _update_running_stats(running_mean, running_var, mean, var, momentum, count):
    """``running = (1 - m) * running + m * batch`` in float64, rounded once into the running
    tensors (buffers: no autograd), the variance unbiased."""
    for running, batch, factor in ((running_mean, mean, momentum),
                                   (running_var, var, momentum * (count / (count - 1)))):
        data = running._data
        update = data.astype(np.float64)
        update *= 1 - momentum
        update += factor * batch
        data[...] = update
        running._version += 1


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over dimension 1 (the channels) of ``input``.

    In training mode the batch's own statistics normalise it (the mean and the mean of
    squared deviations, in float64 and free of E[x²] - E[x]² cancellation), and
    ``running_mean`` and ``running_var``, when given, are updated in place with the unbiased
    batch variance:

    .. math::
        \\hat\\mu \\leftarrow (1 - m) \\hat\\mu + m \\mu_B, \\quad
        \\hat\\sigma^2 \\leftarrow (1 - m) \\hat\\sigma^2 + m \\frac{M}{M - 1} \\sigma^2_B

    with :math:`M = N \\prod *` values per channel. In evaluation mode (``training=False``) the
    running statistics normalise instead:
    :math:`y = (x - \\hat\\mu) / \\sqrt{\\hat\\sigma^2 + \\epsilon} \\cdot \\gamma + \\beta`.

    Args:
        input: (N, C) or (N, C, *), floating.
        running_mean, running_var: (C,) tensors of input's dtype, or None (training only).
        weight, bias: (C,) scale and shift (gamma, beta), or None.
        training: use, and update, batch statistics.
        momentum: the weight m of the batch statistics in the running update.
        eps: added to the variance before the square root.

    Raises:
        ValueError: training with one value per channel (PyTorch's message), or an empty batch.
        RuntimeError: a (C,) argument of the wrong shape or dtype.
    """
    _check_floating(input, "input")
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, *), got shape {input.shape}")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is None:
            continue
        _check_tensor(value, name)
        if value.shape != (channels,):
            raise RuntimeError(f"batch_norm: {name} should have shape ({channels},) for input "
                               f"of shape {input.shape}, got {value.shape}")
        if value.dtype != input.dtype:
            raise RuntimeError(f"batch_norm: {name} and input must have the same dtype, got "
                               f"{name} {value.dtype} and input {input.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm takes running_mean and running_var together, got only "
                         f"{'running_mean' if running_var is None else 'running_var'}")
    momentum, eps = _real(momentum, "momentum"), _real(eps, "eps")
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    if not training:
        if running_mean is None:
            raise ValueError("batch_norm with training=False normalises with running_mean "
                             "and running_var; got None for both")
        return _batch_norm_eval(input, running_mean, running_var, weight, bias, eps)
    _verify_batch_size(input.shape)
    out, mean, var = _BatchNormTraining.apply(input, weight, bias, eps)
    if running_mean is not None:
        _update_running_stats(running_mean, running_var, mean._data, var._data, momentum,
                              input.numel() // channels)
    return out


# ------------------------------------------------------------------------------------ losses
def _reduce(loss, reduction, count=None):
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / (loss.numel() if count is None else count)


def _pair(input, target, name):
    """``input`` and ``target`` checked to have one shape (no broadcasting), in one floating
    dtype (PyTorch's promotion)."""
    _check_floating(input, "input")
    _check_tensor(target, "target")
    if input.shape != target.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{input.shape}; losses do not broadcast, reshape one of them")
    dtype = dtypes.promote(input.dtype, target.dtype)
    return ops.cast(input, dtype), ops.cast(target, dtype)


def _class_rows(input, target, ignore_index, name):
    """``input`` as (M, C) rows of class scores and ``target`` as (M,) int64 labels, checked.

    Returns:
        ``(rows, labels, target_shape)``.
    """
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"{name} target must hold int64 class indices, got dtype "
                           f"{target.dtype}")
    class_dim = 0 if input.ndim == 1 else 1
    expected = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.shape != expected:
        raise ValueError(f"{name} target must have shape {expected} for input of shape "
                         f"{input.shape}, got {target.shape}")
    classes = input.shape[class_dim]
    labels = target._data.astype(np.int64).reshape(-1)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise IndexError(f"target {labels[np.argmax(bad)]} is out of bounds for {classes} "
                         "classes")
    if input.ndim == 2:
        return input, labels, expected
    rows = ops.permute(input, *([d for d in range(input.ndim) if d != class_dim]
                                + [class_dim])) if input.ndim > 2 else input
    return rows.reshape(labels.size, classes), labels, expected


def _check_ignore_index(ignore_index):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} "
                        f"{ignore_index!r}")
    return int(ignore_index)


@_ieee
class _CrossEntropy(Function):
    """The per-row losses of (M, C) logits, or their sum, or their mean over ``count`` kept
    rows (``reduction``): one Function, so a reduced loss costs one node of the graph. The
    reduction rounds as ``loss.sum() / count`` on tensors would."""

    def forward(self, logits, target, ignore_index, reduction, count):
        logits = np.ascontiguousarray(logits)
        n = logits.shape[0]
        loss, lse = np.empty(n, logits.dtype), np.empty(n, np.float64)
        K.cross_entropy_fwd(logits, target, ignore_index, loss, lse)
        self.logits, self.target, self.lse, self.ignore_index = logits, target, lse, ignore_index
        self.reduction, self.count = reduction, count
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "mean":
            with np.errstate(invalid="ignore"):  # no kept target: NaN, as PyTorch
                total = total / count
        return np.asarray(total, logits.dtype)

    def backward(self, grad_loss):
        if self.reduction != "none":
            if self.reduction == "mean":
                with np.errstate(divide="ignore", invalid="ignore"):
                    grad_loss = grad_loss / self.count
            grad_loss = np.full(self.target.shape, grad_loss, self.logits.dtype)
        grad_logits = np.empty_like(self.logits)
        K.cross_entropy_bwd(self.logits, self.target, self.lse, self.ignore_index,
                            np.ascontiguousarray(grad_loss), grad_logits)
        return grad_logits, None, None, None, None


def cross_entropy(input, target, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets: log-softmax and negative log-likelihood fused.

    ``target`` holds class indices (int64, shape ``(N,)`` or ``(N, d1, ...)``, or ``()`` for
    an unbatched ``(C,)`` input) or class probabilities (float, the shape of ``input``). With
    indices, ``reduction="mean"`` averages over the targets that are not ``ignore_index``.

    ``label_smoothing`` :math:`\\varepsilon` mixes the target with the uniform distribution
    over the C classes, as PyTorch does: with indices a kept target's loss is
    :math:`(1 - \\varepsilon) \\, nll + \\frac{\\varepsilon}{C} \\sum_c -\\log p_c` (ignored
    targets count 0); with probabilities the target becomes
    :math:`(1 - \\varepsilon) \\, t + \\varepsilon / C`.

    Arguments after ``target`` are keyword-only: PyTorch's third positional argument is a
    class ``weight``, which fastgrad does not take.

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target as above.

    References: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
    CVPR 2016 (label smoothing).
    """
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    smoothing = _real(label_smoothing, "label_smoothing")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {smoothing}")
    if not dtypes.is_floating(input.dtype):
        raise TypeError(f"cross_entropy input must hold floating logits, got dtype {input.dtype}")
    if input.ndim == 0:
        raise ValueError("cross_entropy input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    classes = input.shape[class_dim]
    if dtypes.is_floating(target.dtype):
        if target.shape != input.shape:
            raise RuntimeError(
                f"cross_entropy expects int64 class indices of shape "
                f"{input.shape[:class_dim] + input.shape[class_dim + 1:]} or float class "
                f"probabilities of shape {input.shape}; got a {target.dtype} target of shape "
                f"{target.shape}")
        if smoothing:
            target = target * (1 - smoothing) + smoothing / classes
        loss = -(target * ops.log_softmax(input, class_dim)).sum(class_dim)
        return _reduce(loss, reduction)
    rows, labels, expected = _class_rows(input, target, ignore_index, "cross_entropy")
    kept = labels != ignore_index
    count = int(np.count_nonzero(kept))
    if not smoothing:
        loss = _CrossEntropy.apply(rows, labels, ignore_index, reduction, count)
        return loss.reshape(expected) if reduction == "none" and loss.shape != expected \
            else loss
    per_row = _CrossEntropy.apply(rows, labels, ignore_index, "none", count)
    uniform = ops.log_softmax(rows, 1).sum(1) * (-smoothing / classes)
    per_row = per_row * (1 - smoothing) + ops.where(kept, uniform, 0.0)
    return _reduce(per_row.reshape(expected), reduction, count=count)


@_ieee
class _NLLLoss(Function):
    def forward(self, log_probs, labels, ignore_index):
        kept = labels != ignore_index
        picked = np.where(kept, labels, 0)[:, None]
        self.shape, self.kept, self.picked = log_probs.shape, kept, picked
        return np.where(kept, -np.take_along_axis(log_probs, picked, axis=1)[:, 0], 0)

    def backward(self, grad):
        grad_in = np.zeros(self.shape, grad.dtype)
        np.put_along_axis(grad_in, self.picked, np.where(self.kept, -grad, 0)[:, None], axis=1)
        return grad_in, None, None


def nll_loss(input, target, *, ignore_index=-100, reduction="mean"):
    """The negative log-likelihood of class-index targets under log-probabilities ``input``:
    ``-input[n, target[n]]``, 0 where the target is ``ignore_index``; ``reduction="mean"``
    averages over the kept targets (NaN when none is kept, as PyTorch).

    Arguments after ``target`` are keyword-only (PyTorch's third positional argument is a class
    ``weight``, which fastgrad does not take).

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target (N,) or (N, d1, ...) or () int64.
    """
    _check_floating(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    if input.ndim == 0:
        raise ValueError("nll_loss input must have a class dimension, got a 0-d tensor")
    rows, labels, expected = _class_rows(input, target, ignore_index, "nll_loss")
    per_row = _NLLLoss.apply(rows, labels, ignore_index).reshape(expected)
    return _reduce(per_row, reduction, count=int((labels != ignore_index).sum()))


def mse_loss(input, target, reduction="mean"):
    """Mean squared error; ``input`` (floating) and ``target`` must have the same shape."""
    _check_floating(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss input and target must have the same shape, got "
                         f"{input.shape} and {target.shape}")
    difference = input - target
    return _reduce(difference * difference, reduction)


def l1_loss(input, target, *, reduction="mean"):
    """Mean absolute error ``|input - target|``; the gradient at 0 is 0, as PyTorch's."""
    _check_reduction(reduction)
    input, target = _pair(input, target, "l1_loss")
    return _reduce(ops.abs(input - target), reduction)


@_ieee
class _HuberLoss(Function):
    def forward(self, x, y, delta):
        self.difference, self.delta = x - y, delta
        size = np.abs(self.difference)
        return np.where(size < delta, 0.5 * self.difference * self.difference,
                        delta * (size - 0.5 * delta))

    def backward(self, grad):
        g = grad * np.clip(self.difference, -self.delta, self.delta)
        return (g if self.needs_input_grad[0] else None,
                -g if self.needs_input_grad[1] else None, None)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """Quadratic for small errors, linear for large ones:
    :math:`\\frac12 d^2` where :math:`|d| < \\delta`, else :math:`\\delta (|d| - \\delta / 2)`,
    with :math:`d = input - target`.

    References: Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 1964.
    """
    _check_reduction(reduction)
    delta = _real(delta, "delta")
    if not delta > 0:
        raise ValueError(f"huber_loss delta must be positive, got {delta}")
    input, target = _pair(input, target, "huber_loss")
    return _reduce(_HuberLoss.apply(input, target, delta), reduction)


def _binary_pair(input, target, name):
    _check_floating(input, "input")
    _check_tensor(target, "target")
    if input.shape != target.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{input.shape}; losses do not broadcast, reshape one of them")
    if target.dtype != input.dtype:
        raise RuntimeError(f"{name}: target must have input's dtype {input.dtype}, got "
                           f"{target.dtype}")


_BCE_EPSILON = float(np.float32(1e-12))


@_ieee
class _BinaryCrossEntropy(Function):
    def forward(self, x, y):
        # log clamped at -100, as PyTorch: log(0) would make 0 * log(0) NaN
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        self.x, self.y, self.log_x, self.log_1mx = x, y, log_x, log_1mx
        return -(y * log_x + (1 - y) * log_1mx)

    def backward(self, grad):
        x, y = self.x, self.y
        grad_x = grad_y = None
        if self.needs_input_grad[0]:
            # PyTorch's gradient, its denominator kept from 0 by 1e-12 rounded to float32
            grad_x = grad * (x - y) / np.maximum((1 - x) * x, _BCE_EPSILON)
        if self.needs_input_grad[1]:
            grad_y = grad * (self.log_1mx - self.log_x)
        return grad_x, grad_y


def binary_cross_entropy(input, target, *, reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` against targets in [0, 1]:
    :math:`-(t \\log x + (1 - t) \\log(1 - x))`, each log clamped at -100 as PyTorch does.
    Prefer :func:`binary_cross_entropy_with_logits` on logits: it is stable everywhere. The
    target's gradient is the derivative of this clamped loss, finite where the input is 0 or 1
    (PyTorch's is infinite there).

    Raises:
        RuntimeError: an input value outside [0, 1] (PyTorch's check) or a target dtype other
            than input's.
    """
    _check_reduction(reduction)
    _binary_pair(input, target, "binary_cross_entropy")
    values = input._data
    if not ((values >= 0) & (values <= 1)).all():
        raise RuntimeError(f"binary_cross_entropy: all elements of input should be between 0 "
                           f"and 1, got values in [{values.min()}, {values.max()}]")
    return _reduce(_BinaryCrossEntropy.apply(input, target), reduction)


@_ieee
class _BinaryCrossEntropyWithLogits(Function):
    def forward(self, x, y, pos_weight):
        self.x, self.y, self.pos_weight = x, y, pos_weight
        log_term = np.log1p(np.exp(-np.abs(x)))
        if pos_weight is None:
            # softplus(x) - x y, written without cancellation or overflow for any finite x
            return np.maximum(x, 0) - x * y + log_term
        # p y softplus(-x) + (1 - y) softplus(x): both terms non-negative
        return (pos_weight * y * (np.maximum(-x, 0) + log_term)
                + (1 - y) * (np.maximum(x, 0) + log_term))

    def backward(self, grad):
        x, y, pos_weight = self.x, self.y, self.pos_weight
        needs_x, needs_y, needs_weight = self.needs_input_grad
        grad_x = grad_y = grad_weight = None
        if pos_weight is None:
            if needs_x:
                grad_x = grad * (_stable_sigmoid(x) - y)
            if needs_y:
                grad_y = grad * -x
            return grad_x, grad_y, None
        log_term = np.log1p(np.exp(-np.abs(x)))
        softplus_neg = np.maximum(-x, 0) + log_term
        if needs_x:
            grad_x = grad * ((1 - y) * _stable_sigmoid(x) - pos_weight * y * _stable_sigmoid(-x))
        if needs_y:
            grad_y = grad * (pos_weight * softplus_neg - (np.maximum(x, 0) + log_term))
        if needs_weight:
            grad_weight = ops._unbroadcast(grad * y * softplus_neg, pos_weight.shape,
                                           pos_weight.dtype)
        return grad_x, grad_y, grad_weight


def binary_cross_entropy_with_logits(input, target, *, reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits, the sigmoid folded in and computed stably:

    .. math::
        \\ell = p \\, t \\, \\mathrm{softplus}(-x) + (1 - t) \\, \\mathrm{softplus}(x), \\quad
        \\mathrm{softplus}(x) = \\max(x, 0) + \\log(1 + e^{-|x|})

    finite, with a finite gradient, for any finite logit (±100 included). ``pos_weight`` p
    weighs the positive term (per class: it broadcasts against ``input``, e.g. shape (C,));
    without it, p = 1 and :math:`\\ell = \\max(x, 0) - x t + \\log(1 + e^{-|x|})`. Unlike
    PyTorch, ``pos_weight`` may require grad: it receives :math:`t \\, \\mathrm{softplus}(-x)`.
    """
    _check_reduction(reduction)
    _binary_pair(input, target, "binary_cross_entropy_with_logits")
    if pos_weight is not None:
        _check_tensor(pos_weight, "pos_weight")
        if pos_weight.dtype != input.dtype:
            raise RuntimeError(f"binary_cross_entropy_with_logits: pos_weight must have "
                               f"input's dtype {input.dtype}, got {pos_weight.dtype}")
        try:
            broadcast = np.broadcast_shapes(pos_weight.shape, input.shape)
        except ValueError:
            broadcast = None
        if broadcast != input.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: pos_weight of shape "
                             f"{pos_weight.shape} does not broadcast to input shape "
                             f"{input.shape}")
    return _reduce(_BinaryCrossEntropyWithLogits.apply(input, target, pos_weight), reduction)
