"""Neural-network functions (``import fastgrad.nn.functional as F``), PyTorch's names.

The fused ones run through the kernel registry: :func:`linear` is one ``linear_fwd`` (GEMM,
bias and activation) and one ``linear_bwd``; :func:`cross_entropy` is log-softmax and NLL in
one ``cross_entropy_fwd`` pass per row; :func:`batch_norm` in training mode is one
``batchnorm_fwd`` and one ``batchnorm_bwd``; the convolutions (:func:`conv2d`,
:func:`conv1d`, :func:`conv_transpose2d`) are the three ``conv2d_*`` kernels, and
:func:`max_pool2d` and :func:`avg_pool2d` their pooling kernels. The other activations and
losses are small elementwise Functions in NumPy, each in its numerically stable form.

This module is the home of every layer op's Function, also of those behind Modules that have
no function here in PyTorch: the recurrent layers (one Function per layer and direction runs
the whole sequence; :mod:`fastgrad.nn.recurrent`) and the regularisation penalties
(:func:`fastgrad.nn.utils.l1_penalty`). Tensor ops' Functions are in :mod:`fastgrad.ops` and
its siblings.

``inplace=True`` (on the activations and :func:`dropout`): autograd here cannot rewrite the
history of a tensor already in a graph, so fastgrad keeps PyTorch's results by writing in place
only where nothing is recorded. An input outside any graph (no gradient required, or under
:class:`~fastgrad.no_grad`) is overwritten and returned, as in PyTorch; an input that is part
of a graph is left as it was and the result is a new tensor with the same values and gradients
PyTorch gives; a leaf that requires grad is refused with PyTorch's error. So every program
PyTorch accepts gets PyTorch's values and gradients from the returned tensor; only code that
reads a graph tensor again after the call (instead of the result) sees its old values.
"""
import math
import numbers
import warnings

import numpy as np

from .. import autograd
from .. import backends
from .. import dtypes
from .. import ops
from .. import random as _random
from .._checks import (REDUCTIONS, check_broadcast, check_dtype, check_floating,
                       check_reduction, check_tensor, flag, ieee, integer, normalize_dim, real)
from ..autograd import Function
from ..backends import ACTIVATIONS, K
from ..backends.numpy_ref import conv_output_size, packed_shape, update_running_stats
from ..device import array_of, contiguous, empty, full, to_device_of, zeros
from ..shapes import one_hot, pad  # noqa: F401 (torch.nn.functional's names)
from ..tensor import Tensor

sigmoid = ops.sigmoid
tanh = ops.tanh
#: The ops of the activations a layer can fuse (``activation=``), where it does not.
_ACTIVATION_OPS = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh}
_NONE = ACTIVATIONS["none"]

def _stable_sigmoid(z):
    """1 / (1 + exp(-z)) from exp(-|z|), which never overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


@ieee
class _Linear(Function):
    # A small layer's op is mostly this Python: the usual 2-D contiguous arrays pass through
    # without a reshape or copy call (0.7 us of a 3 us Linear(8, 8) forward).

    #: ``(linear_fwd, linear_bwd)`` bound by :meth:`bind_kernels` (a captured replay's node),
    #: or None: the registry's kernels, which check their arguments at every call.
    bound_kernels = None
    writes_grads_into = True

    def forward(self, x, weight, bias, activation):
        self.x_shape = shape = x.shape
        if len(shape) != 2 or not x.flags.c_contiguous:
            # the rows counted, not -1: a reshape cannot infer them when a size is 0
            x = contiguous(x.reshape(math.prod(shape[:-1]), shape[-1]))
        if not weight.flags.c_contiguous:
            weight = contiguous(weight)
        out = empty((x.shape[0], weight.shape[0]), x.dtype, x)
        (K.linear_fwd if self.bound_kernels is None else self.bound_kernels[0])(x, weight, bias,
                                                                    activation, out)
        self.x2, self.weight, self.out, self.activation = x, weight, out, activation
        self.has_bias = bias is not None
        return out if len(shape) == 2 else out.reshape(shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        needs_x, needs_w, needs_b = self.needs_input_grad[:3]
        x2, weight, out = self.x2, self.weight, self.out
        grad_x = np.empty_like(x2) if needs_x else None
        grad_w = self.grad_array(1, weight.shape, weight.dtype, weight) if needs_w else None
        grad_b = self.grad_array(2, weight.shape[0], weight.dtype, weight) \
            if needs_b and self.has_bias else None
        if grad.shape != out.shape or not grad.flags.c_contiguous:
            grad = contiguous(grad.reshape(out.shape))
        (K.linear_bwd if self.bound_kernels is None else self.bound_kernels[1])(
            grad, x2, weight, out, self.activation, grad_x, grad_w, grad_b)
        if needs_x and len(self.x_shape) != 2:
            grad_x = grad_x.reshape(self.x_shape)
        return grad_x, grad_w, grad_b, None

    def bind_kernels(self):
        """Bind the kernels to the arrays of the last forward (:func:`fastgrad.backends.bind`):
        a captured replay repeats their dtypes, shapes and layouts, and this op makes the
        arrays it hands the kernels contiguous and 2-D."""
        x2, weight, out = self.x2, self.weight, self.out
        bias = empty(weight.shape[0], weight.dtype, weight) if self.has_bias else None
        needs_x, needs_w, needs_b = self.needs_input_grad[:3]
        self.bound_kernels = (
            backends.bind("linear_fwd", x2, weight, bias, self.activation, out),
            backends.bind("linear_bwd", out, x2, weight, out, self.activation,
                          x2 if needs_x else None, weight if needs_w else None,
                          bias if needs_b else None))


def linear(input, weight, bias=None, activation="none"):
    """``activation(input @ weight.T + bias)``, fused in one kernel.

    ``activation`` (``"none"``, ``"relu"``, ``"sigmoid"``, ``"tanh"``) is fastgrad's addition
    to PyTorch's signature: the activation is applied in the GEMM's epilogue, and its
    derivative in the backward kernel, instead of as separate passes.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,);
        output (*, out_features).
    """
    check_tensor(input, "input")
    check_tensor(weight, "weight")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    x, w = input._data, weight._data  # the arrays' shapes: no Size made on the way
    if w.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise RuntimeError(f"linear: input of shape {input.shape} cannot be multiplied with "
                           f"weight of shape {weight.shape} (expected input shape "
                           f"(*, {w.shape[1]}))")
    if x.dtype != w.dtype:
        raise RuntimeError(f"linear: input and weight must have the same dtype, got input "
                           f"{input.dtype} and weight {weight.dtype}")
    if bias is not None:
        check_tensor(bias, "bias")
        if bias._data.shape != (w.shape[0],):
            raise ValueError(f"bias must have shape ({w.shape[0]},), got {bias.shape}")
        if bias._data.dtype != w.dtype:
            raise RuntimeError(f"linear: bias and weight must have the same dtype, got bias "
                               f"{bias.dtype} and weight {weight.dtype}")
    return _Linear.apply(input, weight, bias, ACTIVATIONS[activation])


# ------------------------------------------------------------------------------- activations
def _opmath(x):
    """``x`` in the dtype to compute in: float32 for float16 (as PyTorch's CPU kernels do, so
    a tiny slope or scale does not round to 0 before it multiplies), else its own."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _in_place_allowed(input, inplace):
    """For ``inplace=True``: True when ``input`` is outside any graph, so the result may be
    written into it; False when it is part of one (the result is then a new tensor, see the
    module docstring). A leaf that requires grad is PyTorch's RuntimeError, before any work."""
    if not inplace:
        return False
    if not (autograd.is_grad_enabled() and input.requires_grad):
        return True
    if input.is_leaf:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    return False


def _result(input, output, write):
    """``output``, or ``input`` overwritten with its values (and returned) when ``write``."""
    return input._write(output._data) if write else output


def relu(input, inplace=False):
    """``max(0, x)`` elementwise (integer tensors too); the gradient at 0 is 0, as PyTorch's.
    ``inplace``: see the module docstring."""
    check_tensor(input, "input")
    write = _in_place_allowed(input, inplace)
    return _result(input, ops.relu(input), write)


def relu_(input):
    """:func:`relu` with ``inplace=True``."""
    return relu(input, inplace=True)


@ieee
class _LeakyReLU(Function):
    def forward(self, x, negative_slope):
        self.positive, self.negative_slope = x > 0, negative_slope
        return np.where(self.positive, x, _opmath(x) * negative_slope).astype(x.dtype)

    def backward(self, grad):
        return np.where(self.positive, grad,
                        _opmath(grad) * self.negative_slope).astype(grad.dtype), None


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` where ``x > 0``, else ``negative_slope * x``; the gradient at 0 is the slope, as
    in PyTorch. ``inplace``: see the module docstring."""
    check_floating(input, "input")
    negative_slope = real(negative_slope, "negative_slope")
    write = _in_place_allowed(input, inplace)
    return _result(input, _LeakyReLU.apply(input, negative_slope), write)


def leaky_relu_(input, negative_slope=0.01):
    """:func:`leaky_relu` with ``inplace=True``."""
    return leaky_relu(input, negative_slope, inplace=True)


@ieee
class _ELU(Function):
    def forward(self, x, alpha):
        self.x, self.alpha = x, alpha
        negative = alpha * np.expm1(np.minimum(_opmath(x), 0))
        return np.where(x > 0, x, negative).astype(x.dtype)

    def backward(self, grad):
        x = _opmath(self.x)
        return np.where(x > 0, grad, _opmath(grad) * (self.alpha * np.exp(np.minimum(x, 0)))
                        ).astype(grad.dtype), None


def elu(input, alpha=1.0, inplace=False):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (``expm1``: exact near 0).
    ``inplace``: see the module docstring.

    References: Clevert et al., "Fast and Accurate Deep Network Learning by Exponential Linear
    Units (ELUs)", ICLR 2016.
    """
    check_floating(input, "input")
    alpha = real(alpha, "alpha")
    write = _in_place_allowed(input, inplace)
    return _result(input, _ELU.apply(input, alpha), write)


def elu_(input, alpha=1.0):
    """:func:`elu` with ``inplace=True``."""
    return elu(input, alpha, inplace=True)


@ieee
class _Hardtanh(Function):
    def forward(self, x, low, high):
        # PyTorch's gradient: zero at and beyond the bounds, passed through a NaN input
        self.outside = (x <= low) | (x >= high)
        return np.clip(x, low, high)

    def backward(self, grad):
        return np.where(self.outside, grad.dtype.type(0), grad), None, None


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``input`` clamped to [min_val, max_val]; the gradient is 1 strictly inside, else 0 (at
    the bounds too, as PyTorch's). ``inplace``: see the module docstring."""
    check_floating(input, "input")
    low, high = real(min_val, "min_val"), real(max_val, "max_val")
    write = _in_place_allowed(input, inplace)
    return _result(input, _Hardtanh.apply(input, low, high), write)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    """:func:`hardtanh` with ``inplace=True``."""
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    """``min(max(0, x), 6)``: :func:`hardtanh` on [0, 6], so the gradient is 0 at 0 and 6."""
    return hardtanh(input, 0.0, 6.0, inplace)


@ieee
class _SiLU(Function):
    def forward(self, x):
        self.x = x
        self.sigmoid = _stable_sigmoid(_opmath(x))
        return (x * self.sigmoid).astype(x.dtype)

    def backward(self, grad):
        s = self.sigmoid
        return (_opmath(grad) * (s * (1 + _opmath(self.x) * (1 - s)))).astype(grad.dtype)


def silu(input, inplace=False):
    """The sigmoid linear unit (swish), :math:`x \\sigma(x)`, with the sigmoid computed
    without overflow. ``inplace``: see the module docstring.

    References: Elfwing et al., "Sigmoid-Weighted Linear Units for Neural Network Function
    Approximation in Reinforcement Learning", 2017.
    """
    check_floating(input, "input")
    write = _in_place_allowed(input, inplace)
    return _result(input, _SiLU.apply(input), write)


@ieee
class _Mish(Function):
    def forward(self, x):
        z = _opmath(x)
        self.x = z
        # softplus as max(z, 0) + log1p(exp(-|z|)): no overflow for any z
        self.tanh = np.tanh(np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))))
        return (z * self.tanh).astype(x.dtype)

    def backward(self, grad):
        t, x = self.tanh, self.x
        return (_opmath(grad) * (t + x * _stable_sigmoid(x) * (1 - t * t))).astype(grad.dtype)


def mish(input, inplace=False):
    """:math:`x \\tanh(\\mathrm{softplus}(x))`. ``inplace``: see the module docstring.

    References: Misra, "Mish: A Self Regularized Non-Monotonic Activation Function", 2019.
    """
    check_floating(input, "input")
    write = _in_place_allowed(input, inplace)
    return _result(input, _Mish.apply(input), write)


def _softmax_dim(name, input, dim, stacklevel):
    """``dim``, or PyTorch's deprecated implicit choice (with its warning) when it is None."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if input.ndim in (0, 1, 3) else 1


def _softmax_input(input, dtype):
    check_tensor(input, "input")
    if dtype is None:
        return input
    return ops.cast(input, check_dtype(dtype, floating=True))


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the maximum so nothing overflows;
    ``dtype`` casts the input first. ``dim=None`` is PyTorch's deprecated implicit choice (0
    for 0-, 1- and 3-d inputs, else 1), with its warning."""
    input = _softmax_input(input, dtype)
    return ops.softmax(input, _softmax_dim("softmax", input, dim, _stacklevel))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``x - logsumexp(x)`` along ``dim``, computed stably; ``dtype`` and ``dim=None`` as in
    :func:`softmax`."""
    input = _softmax_input(input, dtype)
    return ops.log_softmax(input, _softmax_dim("log_softmax", input, dim, _stacklevel))


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
    z = contiguous(x).reshape(x.shape) * math.sqrt(0.5)  # a 0-d x stays 0-d
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


@ieee
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
    check_floating(input, "input")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _GELU.apply(input, approximate)


@ieee
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
    check_floating(input, "input")
    beta, threshold = real(beta, "beta"), real(threshold, "threshold")
    if beta == 0:
        raise ValueError("softplus beta must be non-zero, got 0")
    return _Softplus.apply(input, beta, threshold)


# ----------------------------------------------------------------------------------- dropout
@ieee
class _Dropout(Function):
    """Inverted dropout with probability ``p``; the mask is drawn in forward, from the default
    generator, so a captured step (:mod:`fastgrad.graphs`) draws a new one each replay."""

    def forward(self, x, p):
        if p == 1:
            keep, scale = np.zeros_like(x, dtype=bool), x.dtype.type(1)
        else:
            draw = x.dtype if x.dtype in (dtypes.float32, dtypes.float64) else dtypes.float64
            # drawn on the host (a device gets the CPU's mask, copied over)
            keep = to_device_of(_random.numpy_generator().random(x.shape, dtype=draw) >= p, x)
            scale = x.dtype.type(1 / (1 - p))
        self.keep, self.scale = keep, scale
        return np.where(keep, x * scale, 0)

    def backward(self, grad):
        return np.where(self.keep, grad * self.scale, 0), None


def _check_probability(p):
    p = real(p, "p")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero each element with probability ``p`` and scale the kept ones by
    ``1 / (1 - p)``, so the expectation is unchanged and evaluation needs no rescaling.

    The mask is drawn from fastgrad's default generator, so :func:`fastgrad.manual_seed` makes
    it repeatable. ``input`` itself when ``training`` is False or ``p == 0``; zeros (never NaN)
    when ``p == 1``. ``inplace``: see the module docstring.

    References: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014.
    """
    check_floating(input, "input")
    p = _check_probability(p)
    write = _in_place_allowed(input, inplace)
    if not training or p == 0:
        return input
    return _result(input, _Dropout.apply(input, p), write)


# ------------------------------------------------------------------------------ batch norm
@ieee
class _BatchNormTraining(Function):
    """Training-mode batch normalisation of (N, C, *) through the batchnorm kernels. The batch
    mean and biased variance stay inside the op (as outputs they cost two Tensors a call, and
    two arrays of zeros a backward for the gradients they never get).

    With ``running_mean`` and ``running_var`` (Tensors) forward also updates them, and counts
    the batch in ``num_batches_tracked`` when given (``momentum=None``: the cumulative average,
    by that count): the update is part of the op, so a captured step (:mod:`fastgrad.graphs`)
    repeats it. ``activation`` (a code of :data:`ACTIVATIONS`) is applied by the kernels, in
    the pass that writes the output, its derivative in the backward's first."""

    grads_are_fresh = True
    #: ``(batchnorm_fwd, batchnorm_bwd)`` bound by :meth:`bind_kernels`, or None (see
    #: :attr:`_Linear.bound_kernels`).
    bound_kernels = None
    writes_grads_into = True

    def forward(self, x, weight, bias, eps, activation, running_mean=None, running_var=None,
                momentum=0.1, num_batches_tracked=None):
        self.shape, channels = x.shape, x.shape[1]
        x3 = contiguous(x.reshape(x.shape[0], channels, math.prod(x.shape[2:])))
        weight = None if weight is None else contiguous(weight)
        bias = None if bias is None else contiguous(bias)
        mean, var, invstd = (empty(channels, np.float64, x3) for _ in range(3))
        out = np.empty_like(x3)
        if running_mean is not None and num_batches_tracked is not None:
            seen = int(num_batches_tracked._data) + 1
            if momentum is None:
                momentum = 1.0 / seen
        self.arguments = (x3, weight, bias, eps, activation,
                          None if running_mean is None else running_mean._data,
                          None if running_var is None else running_var._data,
                          0.0 if momentum is None else momentum, mean, var, invstd, out)
        (K.batchnorm_fwd if self.bound_kernels is None else self.bound_kernels[0])(*self.arguments)
        self.x3, self.weight, self.mean, self.invstd = x3, weight, mean, invstd
        self.activation, self.out = activation, (out if activation != _NONE else None)
        if running_mean is not None:  # updated in place by the kernel: buffers, no autograd
            running_mean._version += 1
            running_var._version += 1
            if num_batches_tracked is not None:  # counted once the batch is in the statistics
                num_batches_tracked._data[...] = seen
                num_batches_tracked._version += 1
        return out.reshape(self.shape)

    def backward(self, grad_out):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        x3, channels = self.x3, self.x3.shape[1]
        grad_x = np.empty_like(x3) if needs_x else None
        grad_weight = self.grad_array(1, channels, x3.dtype, x3) if needs_weight else None
        grad_bias = self.grad_array(2, channels, x3.dtype, x3) if needs_bias else None
        (K.batchnorm_bwd if self.bound_kernels is None else self.bound_kernels[1])(
            contiguous(grad_out.reshape(x3.shape)), x3, self.weight, self.mean,
            self.invstd, self.out, self.activation, grad_x, grad_weight, grad_bias)
        grad_x = grad_x.reshape(self.shape) if needs_x else None
        return grad_x, grad_weight, grad_bias, None, None

    def bind_kernels(self):
        """Bind the kernels to the arrays of the last forward (see
        :meth:`_Linear.bind_kernels`)."""
        x3, channels = self.x3, self.x3.shape[1]
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        grad_channels = empty(channels, x3.dtype, x3)
        self.bound_kernels = (
            backends.bind("batchnorm_fwd", *self.arguments),
            backends.bind("batchnorm_bwd", x3, x3, self.weight, self.mean, self.invstd,
                          self.out, self.activation, x3 if needs_x else None,
                          grad_channels if needs_weight else None,
                          grad_channels if needs_bias else None))


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
    autograd._untraced("running statistics were updated outside an op")
    update_running_stats(running_mean._data, running_var._data, mean, var, momentum, count)
    running_mean._version += 1
    running_var._version += 1


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, activation="none"):
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
        activation: ``"none"``, ``"relu"``, ``"sigmoid"`` or ``"tanh"``, applied to the output
            (fastgrad's addition to PyTorch's signature, as :func:`linear`'s): in training
            mode by the batchnorm kernels in the pass that writes the output, and its
            derivative in the backward's, instead of as a layer of its own (the same values).

    Raises:
        ValueError: training with one value per channel (PyTorch's message), or an empty batch.
        RuntimeError: a (C,) argument of the wrong shape or dtype.
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                       activation=activation)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                num_batches_tracked=None, activation="none"):
    """:func:`batch_norm`, and BatchNorm's modules: ``num_batches_tracked`` (a 0-d int64
    buffer, training only) counts the batch and, with ``momentum=None``, makes the running
    statistics the cumulative average."""
    check_floating(input, "input")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    shape, dtype = input._data.shape, input._data.dtype  # no Size made per read
    if len(shape) < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, *), got shape {input.shape}")
    channels = shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is None:
            continue
        check_tensor(value, name)
        if value._data.shape != (channels,):
            raise RuntimeError(f"batch_norm: {name} should have shape ({channels},) for input "
                               f"of shape {input.shape}, got {value.shape}")
        if value._data.dtype != dtype:
            raise RuntimeError(f"batch_norm: {name} and input must have the same dtype, got "
                               f"{name} {value.dtype} and input {input.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm takes running_mean and running_var together, got only "
                         f"{'running_mean' if running_var is None else 'running_var'}")
    if momentum is not None or num_batches_tracked is None:
        momentum = real(momentum, "momentum")
    eps = real(eps, "eps")
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    if not training:
        if running_mean is None:
            raise ValueError("batch_norm with training=False normalises with running_mean "
                             "and running_var; got None for both")
        out = _batch_norm_eval(input, running_mean, running_var, weight, bias, eps)
        return out if activation == "none" else _ACTIVATION_OPS[activation](out)
    _verify_batch_size(shape)
    code = ACTIVATIONS[activation]
    if running_mean is None:
        return _BatchNormTraining.apply(input, weight, bias, eps, code)
    return _BatchNormTraining.apply(input, weight, bias, eps, code, running_mean=running_mean,
                                    running_var=running_var, momentum=momentum,
                                    num_batches_tracked=num_batches_tracked)


# ------------------------------------------------------------------------------ layer norm
def _normalized_shape(normalized_shape):
    """``normalized_shape`` (an int or a sequence of ints) as a tuple."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    try:
        shape = tuple(normalized_shape)
    except TypeError:
        shape = None
    if shape is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                for s in shape):
        raise TypeError(f"normalized_shape must be an int or a sequence of ints, got "
                        f"{normalized_shape!r}")
    return tuple(int(s) for s in shape)


@ieee
class _LayerNorm(Function):
    """Layer normalisation of the last ``dims`` dimensions, seen as (M, N) rows. The row
    statistics are float64 whatever the input dtype: the mean, then the mean of squared
    deviations from it (two passes: E[x²] - E[x]² cancels catastrophically)."""

    def forward(self, x, weight, bias, eps, dims):
        self.shape, self.normalized = x.shape, x.shape[x.ndim - dims:]
        x2 = x.reshape(math.prod(x.shape[:x.ndim - dims]), math.prod(self.normalized))
        self.x2, self.weight = x2, weight
        out = x2.astype(np.float64)  # a copy, normalised in place
        if x2.size == 0:  # no statistics to take (NumPy would warn about the empty mean)
            self.mean = self.rstd = zeros((x2.shape[0], 1), np.float64, x2)
            return out.astype(x.dtype).reshape(x.shape)
        self.mean = out.mean(axis=1, keepdims=True)
        out -= self.mean
        self.rstd = 1 / np.sqrt(np.mean(out * out, axis=1, keepdims=True) + eps)
        out *= self.rstd
        if weight is not None:
            out *= weight.reshape(-1)
        if bias is not None:
            out += bias.reshape(-1)
        return out.astype(x.dtype).reshape(x.shape)

    def backward(self, grad):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        x2, dtype = self.x2, self.x2.dtype
        g = grad.reshape(x2.shape).astype(np.float64)
        normalised = (x2 - self.mean) * self.rstd
        grad_x = grad_weight = grad_bias = None
        if needs_weight:
            grad_weight = (g * normalised).sum(axis=0).astype(dtype).reshape(self.normalized)
        if needs_bias:
            grad_bias = g.sum(axis=0).astype(dtype).reshape(self.normalized)
        if needs_x and x2.size == 0:
            grad_x = zeros(self.shape, dtype, grad)
        elif needs_x:
            if self.weight is not None:
                g *= self.weight.reshape(-1)
            # rstd (g - mean(g) - x̂ mean(g x̂)) per row: through the row's mean and variance
            g -= g.mean(axis=1, keepdims=True) + normalised * (g * normalised).mean(
                axis=1, keepdims=True)
            grad_x = (g * self.rstd).astype(dtype).reshape(self.shape)
        return grad_x, grad_weight, grad_bias, None, None


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the last ``len(normalized_shape)`` dimensions:

    .. math::
        y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta

    with the mean and the biased variance of each sample over those dimensions, computed in
    float64 whatever the input dtype (so a float32 input with a large mean normalises
    exactly), and an analytic backward.

    Args:
        input: (*, normalized_shape), floating.
        normalized_shape: the trailing shape to normalise over (an int for one dimension).
        weight, bias: the elementwise scale and shift (gamma, beta) of shape
            ``normalized_shape``, or None.
        eps: added to the variance before the square root.

    Raises:
        RuntimeError: an input whose trailing shape is not ``normalized_shape``, or a weight
            or bias of another shape or dtype (PyTorch's errors).

    References: Ba, Kiros and Hinton, "Layer Normalization", 2016.
    """
    check_floating(input, "input")
    shape = _normalized_shape(normalized_shape)
    if not shape:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., "
                           "containing at least one element, but got normalized_shape = []")
    if input.shape[max(input.ndim - len(shape), 0):] != shape or input.ndim < len(shape):
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(input.shape)}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        check_tensor(value, name)
        if value.shape != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {list(value.shape)} and normalized_shape "
                               f"= {list(shape)}")
        if value.dtype != input.dtype:
            raise RuntimeError(f"layer_norm: {name} and input must have the same dtype, got "
                               f"{name} {value.dtype} and input {input.dtype}")
    return _LayerNorm.apply(input, weight, bias, real(eps, "eps"), len(shape))


# ------------------------------------------------------------------------------- embedding
@ieee
class _Embedding(Function):
    """Rows of a (V, D) table picked by integer indices. Backward sums the gradients of each
    row's picks (a repeated index adds up), sorted by row, not through the slow
    ``np.add.at``; the padding row gets none."""

    grads_are_fresh = True

    def forward(self, weight, indices, padding_idx, scale_grad_by_freq):
        self.rows, self.indices = weight.shape[0], indices
        self.padding_idx, self.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return np.take(weight, indices, axis=0)

    def backward(self, grad):
        picks = self.indices.reshape(-1)
        grad = grad.reshape(picks.size, grad.shape[-1])
        if self.padding_idx is not None:
            kept = picks != self.padding_idx
            picks, grad = picks[kept], grad[kept]
        grad_weight = zeros((self.rows, grad.shape[1]), grad.dtype, grad)
        if picks.size:
            order = np.argsort(picks, kind="stable")
            picks = picks[order]
            starts = np.flatnonzero(np.concatenate(([True], picks[1:] != picks[:-1])))
            sums = np.add.reduceat(grad[order], starts, axis=0)
            if self.scale_grad_by_freq:
                sums /= np.diff(np.append(starts, picks.size))[:, None]
            grad_weight[picks[starts]] = sums
        return grad_weight, None, None, None


def _padding_index(padding_idx, rows):
    """``padding_idx`` as a row in [0, rows), negative ones counted from the end; None stays."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__} "
                        f"{padding_idx!r}")
    if not -rows <= padding_idx < rows:
        raise ValueError(f"Padding_idx must be within num_embeddings: got padding_idx="
                         f"{padding_idx} for {rows} embeddings")
    return int(padding_idx) % rows


def _embedding_renorm(weight, indices, max_norm, norm_type):
    """PyTorch's ``embedding_renorm_``: each row ``indices`` picks whose ``norm_type``-norm
    exceeds ``max_norm`` is scaled, in place, to ``max_norm / (norm + 1e-7)`` times itself."""
    autograd._untraced("embedding rows were renormalised in place (max_norm)")
    rows = np.unique(indices)
    values = weight._data[rows]
    norms = np.linalg.norm(values.astype(np.float64), ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(weight.dtype)
        weight._data[rows[over]] = values[over] * scale[:, None]
        weight._version += 1


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """The rows of ``weight`` that the integer ``input`` picks: a lookup table.

    The gradient of ``weight`` sums over the picks of each row (a repeated index adds up);
    the ``padding_idx`` row gets none (its values are used as they are: only the
    :class:`~fastgrad.nn.Embedding` layer initialises it to zeros). ``scale_grad_by_freq``
    divides each row's gradient by how often the input picks it. ``max_norm`` first rescales,
    in place and outside autograd, every picked row whose ``norm_type``-norm exceeds it to
    that norm (PyTorch's ``embedding_renorm_``).

    Args:
        input: integer indices (int32 or int64) of any shape, each in [0, V).
        weight: the (V, D) table, floating.
        padding_idx: a row (negative counts from the end) that receives no gradient.
        max_norm, norm_type: the renormalisation above; None for none.
        scale_grad_by_freq: scale gradients by the inverse frequency of the picks.
        sparse: PyTorch's sparse gradient; fastgrad's gradients are dense, so True is an
            error rather than a silently different gradient layout.

    Shape:
        input (*); weight (V, D); output (*, D).

    Raises:
        RuntimeError: non-integer indices or a weight that is not 2-D (PyTorch's messages).
        IndexError: an index outside [0, V).
        NotImplementedError: ``sparse=True``.
    """
    check_tensor(input, "input")
    check_floating(weight, "weight")
    if input.dtype not in (dtypes.int32, dtypes.int64):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.dtype} instead "
                           "(while checking arguments for embedding)")
    if weight.ndim != 2:
        raise RuntimeError(f"'weight' must be 2-D, got shape {weight.shape}")
    rows = weight.shape[0]
    padding_idx = _padding_index(padding_idx, rows)
    if sparse:
        raise NotImplementedError("embedding: sparse=True (sparse gradients) is not supported; "
                                  "fastgrad's gradients are dense, use sparse=False")
    indices = input._data
    if indices.size:
        bad = (indices < 0) | (indices >= rows)
        if bad.any():
            raise IndexError(f"index out of range in self: index {indices[bad].flat[0]} for "
                             f"an embedding of {rows} rows")
    if max_norm is not None:
        _embedding_renorm(weight, indices, real(max_norm, "max_norm"),
                          real(norm_type, "norm_type"))
    return _Embedding.apply(weight, indices, padding_idx, bool(scale_grad_by_freq))


# --------------------------------------------------------------- convolution and pooling
# Convolutions run through the conv2d kernels: conv1d as a conv2d of height 1, a transposed
# convolution's forward as a convolution's input gradient (and its backward as a convolution
# and its weight gradient). Max and average pooling run through their kernels; the adaptive
# poolings, whose windows vary in size, are NumPy loops over the output positions.
def _spatial(value, argument, dims, function):
    """A geometry argument (an int, or a tuple or list of one or ``dims`` ints) as a tuple
    of ``dims`` ints."""
    values = tuple(integer(v, argument) for v in (
        value if isinstance(value, (tuple, list)) else (value,)))
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise RuntimeError(f"{function}: {argument} must be a single int or a tuple of {dims} "
                           f"ints, got {argument}={list(values)}")
    return values


def _sizes(values, separator=" x "):
    """Sizes as PyTorch's messages print them: ``2 x 2``."""
    return separator.join(map(str, values))


def _unbatched(input, dims):
    """``input`` with a batch of one in front when it has none (``dims`` spatial dimensions),
    and whether it had one."""
    if input.ndim == dims + 2:
        return input, True
    return input.reshape((1,) + input.shape), False


def _conv_padding(padding, kernel, stride, dilation, function):
    """``padding`` as two tuples, per spatial dimension: before (and after), and the extra
    after. Ints as given; ``"valid"``, none; ``"same"``, ``dilation * (kernel - 1)`` in all,
    the odd one after (bottom, right), as in PyTorch."""
    dims = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * dims, (0,) * dims
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: {padding!r} (expected 'same', 'valid' "
                               f"or ints)")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(t // 2 for t in totals), tuple(t % 2 for t in totals)
    pads = _spatial(padding, "padding", dims, function)
    if min(pads) < 0:
        raise RuntimeError("negative padding is not supported")
    return pads, (0,) * dims


def _conv_geometry(function, input, weight, stride, dilation, groups, transposed=False):
    """The checks every convolution shares, PyTorch's messages: input and weight ranks and
    dtypes, stride, dilation, groups, and the channel count. Returns stride, dilation and
    groups as ints (tuples for the first two) and the input shape with its batch."""
    check_floating(input, "input")
    check_floating(weight, "weight")
    dims = weight.ndim - 2
    if input.ndim not in (dims + 1, dims + 2):
        raise RuntimeError(f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to "
                           f"{function}, but got input of size: {list(input.shape)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"{function}: input and weight must have the same dtype, got input "
                           f"{input.dtype} and weight {weight.dtype}")
    stride = _spatial(stride, "stride", dims, function)
    dilation = _spatial(dilation, "dilation", dims, function)
    groups = integer(groups, "groups")
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if min(weight.shape[2:]) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size "
                           f"{list(weight.shape)}")
    if weight.shape[0] == 0 or weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} "
                           f"instead")
    shape = input.shape if input.ndim == dims + 2 else (1,) + input.shape
    channels = weight.shape[0] if transposed else weight.shape[1] * groups
    if shape[1] != channels:
        given = "transposed=1, " if transposed else f"groups={groups}, "
        raise RuntimeError(f"Given {given}weight of size {list(weight.shape)}, expected "
                           f"input{list(shape)} to have {channels} channels, but got "
                           f"{shape[1]} channels instead")
    return stride, dilation, groups, shape


def _check_conv_bias(bias, input, weight, out_channels, transposed=False):
    if bias is None:
        return
    check_tensor(bias, "bias")
    if bias.shape != (out_channels,):
        given = "transposed=1, " if transposed else ""
        raise RuntimeError(f"Given {given}weight of size {list(weight.shape)}, expected bias to "
                           f"be 1-dimensional with {out_channels} elements, but got bias of "
                           f"size {list(bias.shape)} instead")
    if bias.dtype != input.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and bias type ({bias.dtype}) should be "
                           f"the same")


@ieee
class _Conv2d(Function):
    """2-D convolution of (N, C, H, W) through the conv2d kernels; ``geometry`` is the
    kernels' (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)."""

    grads_are_fresh = True
    writes_grads_into = True

    def forward(self, x, weight, bias, geometry):
        x, weight = contiguous(x), contiguous(weight)
        bias = None if bias is None else contiguous(bias)
        stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, _ = geometry
        out_channels, _, kernel_h, kernel_w = weight.shape
        out = empty((x.shape[0], out_channels,
                     conv_output_size(x.shape[2], kernel_h, stride_h, pad_h, dil_h),
                     conv_output_size(x.shape[3], kernel_w, stride_w, pad_w, dil_w)), x.dtype, x)
        K.conv2d_fwd(x, weight, bias, *geometry, out)
        self.x, self.weight, self.geometry = x, weight, geometry
        return out

    def backward(self, grad):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        grad = contiguous(grad)
        grad_x = grad_weight = grad_bias = None
        if needs_x:
            grad_x = np.empty_like(self.x)
            K.conv2d_bwd_input(grad, self.weight, *self.geometry, grad_x)
        if needs_bias:
            grad_bias = self.grad_array(2, grad.shape[1], grad.dtype, grad)
        if needs_weight:
            grad_weight = self.grad_array(1, self.weight.shape, self.weight.dtype,
                                              self.weight)
            K.conv2d_bwd_weight(grad, self.x, *self.geometry, grad_weight, grad_bias)
        elif needs_bias:  # a frozen weight: the bias gradient alone, without the kernel's GEMM
            np.sum(grad, axis=(0, 2, 3), out=grad_bias)
        return grad_x, grad_weight, grad_bias, None


def _convolution(function, input, weight, bias, stride, padding, dilation, groups):
    """conv1d and conv2d: the checks, ``"same"``'s odd padding as an explicit pad of the
    input (PyTorch's way), the unbatched form and conv1d's height of 1 around :class:`_Conv2d`."""
    stride, dilation, groups, shape = _conv_geometry(function, input, weight, stride, dilation,
                                                     groups)
    kernel = weight.shape[2:]
    pads, extra = _conv_padding(padding, kernel, stride, dilation, function)
    _check_conv_bias(bias, input, weight, weight.shape[0])
    padded = [size + 2 * p + e for size, p, e in zip(shape[2:], pads, extra)]
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(size < span for size, span in zip(padded, spans)):
        raise RuntimeError(f"Calculated padded input size per channel: ({_sizes(padded)}). "
                           f"Kernel size: ({_sizes(spans)}). Kernel size can't be greater than "
                           f"actual input size")
    x, batched = _unbatched(input, len(kernel))
    if any(extra):
        x = pad(x, tuple(size for e in reversed(extra) for size in (0, e)))
    if len(kernel) == 1:  # conv1d: a conv2d of height 1
        x = x.reshape(x.shape[:2] + (1,) + x.shape[2:])
        weight = weight.reshape(weight.shape[:2] + (1,) + weight.shape[2:])
        stride, pads, dilation = (1,) + stride, (0,) + pads, (1,) + dilation
    out = _Conv2d.apply(x, weight, bias, (stride[0], stride[1], pads[0], pads[1], dilation[0],
                                          dilation[1], groups))
    if len(kernel) == 1:
        out = out.reshape(out.shape[:2] + out.shape[3:])
    return out if batched else out.reshape(out.shape[1:])


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every deep-learning library) over an
    (N, C, H, W) or unbatched (C, H, W) input, zero padded:

    .. math::
        out_{n,o} = b_o + \\sum_{c \\in \\text{group}(o)} w_{o,c} \\star x_{n,c}

    Args:
        input: (N, C, H, W) or (C, H, W), floating.
        weight: (O, C / groups, kH, kW), input's dtype.
        bias: (O,), or None.
        stride, dilation: an int or a (height, width) pair, each at least 1.
        padding: an int or a pair, added on both sides; ``"valid"`` (none) or ``"same"``
            (output size = input size, stride 1 only; an odd total pads one more at the
            bottom and right, as PyTorch does).
        groups: split the channels into ``groups`` independent convolutions (C and O must be
            multiples; ``groups == C`` is a depthwise convolution).

    Shape:
        output (N, O, H_out, W_out) with
        ``H_out = floor((H + 2 padding - dilation (kH - 1) - 1) / stride) + 1`` (likewise W).

    Raises:
        RuntimeError: PyTorch's errors for a bad rank, channel count, bias, geometry or a
            kernel larger than the padded input.
    """
    check_tensor(weight, "weight")
    if weight.ndim != 4:
        raise RuntimeError(f"conv2d: expected a 4-D weight (out_channels, in_channels / groups, "
                           f"kH, kW), but got weight of size {list(weight.shape)}")
    return _convolution("conv2d", input, weight, bias, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over an (N, C, L) or unbatched (C, L) input: :func:`conv2d` on a height
    of 1, with ``weight`` (O, C / groups, k) and ints (or 1-tuples) for the geometry;
    ``padding`` also ``"valid"`` or ``"same"``. Output (N, O, L_out), L_out as conv2d's."""
    check_tensor(weight, "weight")
    if weight.ndim != 3:
        raise RuntimeError(f"conv1d: expected a 3-D weight (out_channels, in_channels / groups, "
                           f"k), but got weight of size {list(weight.shape)}")
    return _convolution("conv1d", input, weight, bias, stride, padding, dilation, groups)


@ieee
class _ConvTranspose2d(Function):
    """The transposed 2-D convolution: a convolution's input gradient as the forward, so its
    backward is a convolution (input) and a convolution's weight gradient with the roles of
    input and output gradient exchanged (weight). ``geometry`` as :class:`_Conv2d`'s."""

    grads_are_fresh = True

    def forward(self, x, weight, bias, geometry, out_size):
        x, weight = contiguous(x), contiguous(weight)
        groups = geometry[-1]
        out = empty((x.shape[0], weight.shape[1] * groups) + out_size, x.dtype, x)
        K.conv2d_bwd_input(x, weight, *geometry, out)
        if bias is not None:
            out += bias[:, None, None]
        self.x, self.weight, self.geometry = x, weight, geometry
        return out

    def backward(self, grad):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        grad = contiguous(grad)
        grad_x = grad_weight = grad_bias = None
        if needs_x:
            grad_x = np.empty_like(self.x)
            K.conv2d_fwd(grad, self.weight, None, *self.geometry, grad_x)
        if needs_weight:
            grad_weight = np.empty_like(self.weight)
            K.conv2d_bwd_weight(self.x, grad, *self.geometry, grad_weight, None)
        if needs_bias:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """The transposed 2-D convolution (sometimes called deconvolution): the gradient of
    :func:`conv2d` with respect to its input, as a layer. It maps a conv2d's output size back
    to its input size, up-sampling by ``stride``.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W), floating.
        weight: (C_in, C_out / groups, kH, kW), input's dtype (conv2d's layout, read the other
            way round).
        bias: (C_out,), or None.
        stride, padding, dilation: those of the conv2d this one transposes (ints or pairs;
            ``padding`` crops ``dilation (k - 1) - padding`` from each side of the output).
        output_padding: added to one side of the output, to pick among the input sizes a
            strided conv2d maps to the same output size; smaller than stride or dilation.
        groups: as in conv2d.

    Shape:
        output (N, C_out, H_out, W_out) with
        ``H_out = (H - 1) stride - 2 padding + dilation (kH - 1) + output_padding + 1``.

    Raises:
        RuntimeError: PyTorch's errors for bad ranks, channels, bias, geometry or an output
            size below 1.
    """
    check_tensor(weight, "weight")
    if weight.ndim != 4:
        raise RuntimeError(f"conv_transpose2d: expected a 4-D weight (in_channels, "
                           f"out_channels / groups, kH, kW), but got weight of size "
                           f"{list(weight.shape)}")
    if isinstance(padding, str):
        raise TypeError(f"conv_transpose2d(): argument 'padding' must be tuple of ints, not str "
                        f"({padding!r})")
    stride, dilation, groups, shape = _conv_geometry("conv_transpose2d", input, weight, stride,
                                                     dilation, groups, transposed=True)
    pads = _spatial(padding, "padding", 2, "conv_transpose2d")
    extra = _spatial(output_padding, "output_padding", 2, "conv_transpose2d")
    if min(pads) < 0:
        raise RuntimeError("negative padding is not supported")
    if min(extra) < 0:
        raise RuntimeError("negative output_padding is not supported")
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but "
                           f"got output_padding_height: {extra[0]} output_padding_width: "
                           f"{extra[1]} stride_height: {stride[0]} stride_width: {stride[1]} "
                           f"dilation_height: {dilation[0]} dilation_width: {dilation[1]}")
    _check_conv_bias(bias, input, weight, weight.shape[1] * groups, transposed=True)
    out_size = tuple((size - 1) * s - 2 * p + d * (k - 1) + e + 1 for size, s, p, d, k, e in zip(
        shape[2:], stride, pads, dilation, weight.shape[2:], extra))
    if min(out_size) < 1:
        raise RuntimeError(f"Given input size per channel: ({_sizes(shape[2:])}). Calculated "
                           f"output size per channel: ({_sizes(out_size)}). Output size is too "
                           f"small")
    x, batched = _unbatched(input, 2)
    out = _ConvTranspose2d.apply(x, weight, bias, (stride[0], stride[1], pads[0], pads[1],
                                                   dilation[0], dilation[1], groups), out_size)
    return out if batched else out.reshape(out.shape[1:])


def _pool_input(input, function):
    """PyTorch's check of a pooling input: floating, (N, C, H, W) or (C, H, W) with C, H and W
    non-zero (an empty batch is allowed)."""
    check_floating(input, "input")
    if input.ndim not in (3, 4) or 0 in input.shape[-3:]:
        raise RuntimeError(f"{function}: expected a 3D or 4D (batch mode) input with non-zero "
                           f"channels, height and width (an empty batch is allowed), but got "
                           f"input of size {list(input.shape)}")


def _pool_geometry(function, input, kernel_size, stride, padding, dilation, ceil_mode):
    """The checks of max and average pooling (PyTorch's messages) and the output size.
    Returns (kernel, stride, padding, dilation), each a (height, width) pair, and (OH, OW)."""
    _pool_input(input, function)
    kernel = _spatial(kernel_size, "kernel_size", 2, function)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _spatial(stride, "stride", 2, function)
    pads = _spatial(padding, "padding", 2, function)
    dilation = _spatial(dilation, "dilation", 2, function)
    ceil_mode = flag(ceil_mode, "ceil_mode")
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} "
                           f"kW: {kernel[1]}")
    if min(stride) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {stride[0]} dW: "
                           f"{stride[1]}")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: "
                           f"{dilation[0]} dilationW: {dilation[1]}")
    if min(pads) < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(pads)}")
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                           f"padW = {pads[1]}, padH = {pads[0]}, kW = {kernel[1]}, kH = "
                           f"{kernel[0]}")
    size = tuple(conv_output_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(
        input.shape[-2:], kernel, stride, pads, dilation))
    if min(size) < 1:
        channels = input.shape[-3]
        raise RuntimeError(f"Given input size: ({_sizes((channels,) + input.shape[-2:], 'x')}). "
                           f"Calculated output size: ({_sizes((channels,) + size, 'x')}). "
                           f"Output size is too small")
    return kernel, stride, pads, dilation, size


@ieee
class _MaxPool2d(Function):
    """Max pooling of (N, C, H, W) through the max_pool2d kernels; returns the output and the
    int64 positions of the maxima, which the backward scatters the gradient to."""

    grads_are_fresh = True

    def forward(self, x, geometry, out_size):
        shape = x.shape[:2] + out_size
        out, indices = empty(shape, x.dtype, x), empty(shape, np.int64, x)
        K.max_pool2d_fwd(contiguous(x), *geometry, out, indices)
        self.x_shape, self.indices = x.shape, indices
        return out, indices

    def backward(self, grad, grad_indices):
        grad_x = empty(self.x_shape, grad.dtype, grad)
        K.max_pool2d_bwd(contiguous(grad), self.indices, grad_x)
        return grad_x, None, None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling: the maximum of each (dilated) window, padding never picked.

    Args:
        input: (N, C, H, W) or (C, H, W), floating.
        kernel_size: the window, an int or a (height, width) pair.
        stride: the step between windows (default: ``kernel_size``).
        padding: implicit -inf padding on both sides, at most half the window.
        dilation: the step between a window's elements.
        ceil_mode: round the output size up, keeping a last window that runs past the
            padded edge (clipped to it) if it starts inside the input or its left padding.
        return_indices: also return the position of each maximum, its flat index ``h * W +
            w`` in its (H, W) plane (int64), as ``max_unpool2d`` takes them.

    Ties go to the first maximum in the window (row-major); a NaN is the maximum, as in
    PyTorch. The gradient goes to the maximum's position only.

    Shape:
        output (N, C, H_out, W_out) with
        ``H_out = floor((H + 2 padding - dilation (kH - 1) - 1) / stride) + 1``
        (ceil with ``ceil_mode``).
    """
    kernel, stride, pads, dilation, size = _pool_geometry(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = flag(return_indices, "return_indices")
    x, batched = _unbatched(input, 2)
    out, indices = _MaxPool2d.apply(x, kernel + stride + pads + dilation, size)
    if not batched:
        out, indices = out.reshape(out.shape[1:]), indices.reshape(indices.shape[1:])
    return (out, indices) if return_indices else out


@ieee
class _AvgPool2d(Function):
    """Average pooling of (N, C, H, W) through the avg_pool2d kernels; ``geometry`` is their
    (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
    divisor_override)."""

    grads_are_fresh = True

    def forward(self, x, geometry, out_size):
        out = empty(x.shape[:2] + out_size, x.dtype, x)
        K.avg_pool2d_fwd(contiguous(x), *geometry, out)
        self.x_shape, self.geometry = x.shape, geometry
        return out

    def backward(self, grad):
        grad_x = empty(self.x_shape, grad.dtype, grad)
        K.avg_pool2d_bwd(contiguous(grad), *self.geometry, grad_x)
        return grad_x, None, None


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling: each window's mean, zero padded.

    Args:
        input: (N, C, H, W) or (C, H, W), floating.
        kernel_size, stride, padding, ceil_mode: as in :func:`max_pool2d` (no dilation).
        count_include_pad: divide by the window's size including the zero padding (clipped
            at the padded edge under ``ceil_mode``); False: by its elements in the input.
        divisor_override: a non-zero int to divide every sum by instead.

    Shape:
        output (N, C, H_out, W_out), H_out as :func:`max_pool2d`'s.
    """
    kernel, stride, pads, _, size = _pool_geometry("avg_pool2d", input, kernel_size, stride,
                                                   padding, 1, ceil_mode)
    count_include_pad = flag(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        divisor_override = integer(divisor_override, "divisor_override")
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
    x, batched = _unbatched(input, 2)
    out = _AvgPool2d.apply(x, kernel + stride + pads + (count_include_pad,
                                                         divisor_override or 0), size)
    return out if batched else out.reshape(out.shape[1:])


def _adaptive_windows(size, count):
    """PyTorch's adaptive windows along an axis of ``size``: window i spans
    ``[floor(i size / count), ceil((i + 1) size / count))``, as (start, end) pairs."""
    return [((i * size) // count, -(-(i + 1) * size // count)) for i in range(count)]


def _adaptive_geometry(function, input, output_size):
    """The checks of adaptive pooling (PyTorch's messages); returns the windows along the
    height and along the width."""
    check_floating(input, "input")
    if input.ndim not in (3, 4):
        raise RuntimeError(f"{function}(): Expected 3D or 4D tensor, but got "
                           f"{list(input.shape)}")
    for dim in range(input.ndim - 3, input.ndim):
        if input.shape[dim] == 0:
            raise RuntimeError(f"{function}(): Expected input to have non-zero size for "
                               f"non-batch dimensions, but input has sizes "
                               f"{list(input.shape)} with dimension {dim} being empty")
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(sizes) != 2:
        raise RuntimeError(f"{function}: output_size must be 2, got {output_size!r}")
    sizes = tuple(input.shape[-2 + i] if s is None else integer(s, "output_size")
                  for i, s in enumerate(sizes))
    if min(sizes) < 0:
        raise RuntimeError(f"{function}: elements of output_size must be greater than or equal "
                           f"to 0 but received {list(sizes)}")
    return (_adaptive_windows(input.shape[-2], sizes[0]),
            _adaptive_windows(input.shape[-1], sizes[1]))


@ieee
class _AdaptiveAvgPool2d(Function):
    grads_are_fresh = True

    def forward(self, x, rows, cols):
        self.x_shape, self.rows, self.cols = x.shape, rows, cols
        out = empty(x.shape[:-2] + (len(rows), len(cols)), x.dtype, x)
        for i, (top, bottom) in enumerate(rows):
            for j, (left, right) in enumerate(cols):
                out[..., i, j] = x[..., top:bottom, left:right].mean(axis=(-2, -1))
        return out

    def backward(self, grad):
        grad_x = zeros(self.x_shape, grad.dtype, grad)
        for i, (top, bottom) in enumerate(self.rows):
            for j, (left, right) in enumerate(self.cols):
                share = grad[..., i, j] / ((bottom - top) * (right - left))
                grad_x[..., top:bottom, left:right] += share[..., None, None]
        return grad_x, None, None


def adaptive_avg_pool2d(input, output_size):
    """2-D average pooling to a given output size: output position (i, j) averages the input
    rows ``floor(i H / H_out)`` to ``ceil((i + 1) H / H_out)`` (exclusive) and likewise the
    columns, PyTorch's windows (they overlap when H_out does not divide H).

    Args:
        input: (N, C, H, W) or (C, H, W), floating, C, H and W non-zero.
        output_size: an int or an (H_out, W_out) pair; None in the pair keeps that input size.
    """
    rows, cols = _adaptive_geometry("adaptive_avg_pool2d", input, output_size)
    (height, width), size = input.shape[-2:], (len(rows), len(cols))
    if min(size) > 0 and height % size[0] == 0 and width % size[1] == 0:
        # equal windows that tile the input (global average pooling among them): the
        # avg_pool2d kernels, which the window-by-window loop below is several times slower than
        kernel = (height // size[0], width // size[1])
        x, batched = _unbatched(input, 2)
        out = _AvgPool2d.apply(x, kernel + kernel + (0, 0, True, 0), size)
        return out if batched else out.reshape(out.shape[1:])
    return _AdaptiveAvgPool2d.apply(input, rows, cols)


def _window_argmax(values):
    """The position of each maximum along the last axis, PyTorch's choice: the first maximum,
    or the last NaN where there is one (its ``val > max || isnan(val)`` scan)."""
    nan = np.isnan(values)
    last_nan = values.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    return np.where(nan.any(axis=-1), last_nan, np.argmax(values, axis=-1))


@ieee
class _AdaptiveMaxPool2d(Function):
    """Adaptive max pooling of (N, C, H, W): the maxima and their int64 flat positions
    ``h * W + w``; the backward scatters the gradient there with the max_pool2d_bwd kernel."""

    grads_are_fresh = True

    def forward(self, x, rows, cols):
        width = x.shape[3]
        shape = x.shape[:2] + (len(rows), len(cols))
        out, indices = empty(shape, x.dtype, x), empty(shape, np.int64, x)
        for i, (top, bottom) in enumerate(rows):
            for j, (left, right) in enumerate(cols):
                window = x[:, :, top:bottom, left:right].reshape(x.shape[:2] + (-1,))
                pick = _window_argmax(window)
                out[:, :, i, j] = np.take_along_axis(window, pick[..., None], axis=-1)[..., 0]
                indices[:, :, i, j] = (top + pick // (right - left)) * width + left \
                    + pick % (right - left)
        self.x_shape, self.indices = x.shape, indices
        return out, indices

    def backward(self, grad, grad_indices):
        grad_x = empty(self.x_shape, grad.dtype, grad)
        K.max_pool2d_bwd(contiguous(grad), self.indices, grad_x)
        return grad_x, None, None


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """2-D max pooling to a given output size, over :func:`adaptive_avg_pool2d`'s windows.
    Ties and NaN as :func:`max_pool2d`; ``return_indices`` also returns the int64 flat
    position ``h * W + w`` of each maximum."""
    rows, cols = _adaptive_geometry("adaptive_max_pool2d", input, output_size)
    return_indices = flag(return_indices, "return_indices")
    x, batched = _unbatched(input, 2)
    out, indices = _AdaptiveMaxPool2d.apply(x, rows, cols)
    if not batched:
        out, indices = out.reshape(out.shape[1:]), indices.reshape(indices.shape[1:])
    return (out, indices) if return_indices else out


# ------------------------------------------------------------------------ recurrent layers
# One Function per layer and direction runs the whole time loop; the Modules of
# fastgrad/nn/recurrent.py (RNN, LSTM, GRU and their cells) apply them and describe the design.
_SIGMOID, _TANH = ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]


def _time_order(array, reverse):
    """``array`` (steps first) as it is, or time-reversed (a contiguous copy) when ``reverse``:
    the reverse direction of a layer runs the forward loop over the reversed sequence, and its
    outputs and input gradient are turned back to the caller's time order."""
    if array is None or not reverse:
        return array
    return contiguous(array[::-1])


def _project(x, w_ih, bias, width):
    """``x @ W_ih.T + bias`` for every step at once: one GEMM with the bias (None: none) fused.

    Returns the flat input (T*N, I), kept for ``dW_ih``, and the projection (T, N, width).
    """
    steps, batch = x.shape[:2]
    x2 = contiguous(x).reshape(steps * batch, x.shape[2])
    projected = empty((steps, batch, width), w_ih.dtype, w_ih)
    K.linear_fwd(x2, w_ih, bias, ACTIVATIONS["none"], projected.reshape(steps * batch, width))
    return x2, projected


def _packed(w_hh, trans):
    """``W_hh.T`` (``trans``: what the forward steps multiply by) or ``W_hh`` (the backward
    steps') packed into panels once per sequence: every step's product then reads it as it is
    (:func:`fastgrad.backends.numpy_ref.gemm_packed`) instead of a BLAS copying it each step."""
    depth, cols = w_hh.shape[::-1] if trans else w_hh.shape
    packed = empty(packed_shape(depth, cols, w_hh.dtype), w_hh.dtype, w_hh)
    K.gemm_pack(w_hh, trans, packed)
    return packed


def _zeros_or(state, batch, hidden, dtype, like):
    """A recurrent layer's initial state: zeros on ``like``'s device when not given."""
    return zeros((batch, hidden), dtype, like) if state is None else contiguous(state)


# Per-step gradient norms (fastgrad's addition, for fastgrad.diagnostics): a layer Function
# given ``record`` (a callable) measures the total gradient with respect to every step's
# hidden state, d(loss)/dh_t (the sum the backward loop forms anyway), and after the loop
# calls ``record(hidden, cell)`` with their L2 norms over batch and units: float64 arrays of
# length T in the caller's time order. ``cell`` is the LSTM's d(loss)/dc_t along the cell
# path: what c_t receives from step t + 1 (from c_n at t = T), the gradient the forget gates
# carry back; h_t's own use of c_t is inside step t (its total would need tanh(c_t) again).
# None for the others. Without ``record`` the loop is unchanged.

#: The bytes of step gradients a recording loop keeps for measuring (at least two steps'):
#: a ring of buffers reused step after step, so it stays in cache, measured a window at a
#: time. Keeping all T steps in a (T, N, H) array instead cost +14-17 % of a 256->512
#: layer's backward (cache misses, a cold pass); the ring, 0.6-4 %; 128 KiB measured better
#: than 32 KiB or 1 MiB.
RING_BYTES = 1 << 17


class _StepGrads:
    """Where a backward loop writes a per-step gradient: entries ``0..n-1``, each written
    once, from the last to the first, and read until the entry ``span`` places before it is
    written (``span`` >= 2: a step may read the entry after its own).

    Without ``record``: two buffers taken in turn. With it: a ring of ``span`` buffers
    (:data:`RING_BYTES`), and :meth:`written` measures each window of ``span`` entries once
    its first entry is written, before any of them is overwritten: one ``segment_norms``
    call per window, which sums the squares in float64 (where those of float32 values are
    exact: a vanished gradient of 1e-30 keeps its norm) in fixed chunks, so the norms depend
    on nothing but the values.
    """

    def __init__(self, like, entries, record):
        span = 2
        if record is not None:
            span = max(2, min(entries, RING_BYTES // max(1, like.nbytes)))
        ring = empty((span,) + like.shape, like.dtype, like)
        self.slots, self.span, self.size = list(ring), span, like.size
        self.flat = ring.reshape(-1)
        self.norms = None if record is None else empty(entries, np.float64, like)
        self.offsets = like.size * np.arange(span + 1, dtype=np.int64)  # size 0: all 0
        self.offsets.flags.writeable = False  # fixed: a device keeps its copy

    def __getitem__(self, entry):
        return self.slots[entry % self.span]

    def written(self, entry):
        """Entry ``entry`` holds its final values: measure the window it starts, if any."""
        if self.norms is None or entry % self.span:
            return
        count = min(self.span, len(self.norms) - entry)
        K.segment_norms(self.flat[:count * self.size], self.offsets[:count + 1], 2.0,
                        self.norms[entry:entry + count])

    def time_order(self, reverse, first=0):
        """The norms of entries ``first..n-1`` in the caller's time order."""
        norms = self.norms[first:]
        return contiguous(norms[::-1]) if reverse else norms


def _parameter_grads(node, first, grad_pre, h0, out, x2, w_ih, grad_hidden=None):
    """The gradients of input, W_ih, W_hh and both biases from the pre-activation gradients.

    ``grad_pre`` (T, N, G) holds d(loss)/d(x_t W_ih^T + b_ih) of every step, ``grad_hidden``
    d(loss)/d(h_{t-1} W_hh^T + b_hh) (the same array unless given: only the GRU's differ); the
    hidden state entering step t is ``h0`` for t = 0 and ``out[t - 1]`` after, so ``dW_hh`` is
    two GEMMs over the whole sequence instead of one per step. ``node`` is the layer's
    Function, its inputs the sequence at 0 and the four weights from ``first`` on: which of the
    five gradients are wanted (the others are None), and where the weights' go
    (``Function.grad_array``).
    """
    steps, batch, width = grad_pre.shape
    dtype = grad_pre.dtype
    flat = grad_pre.reshape(steps * batch, width)
    shared = grad_hidden is None
    hidden_flat = flat if shared else grad_hidden.reshape(steps * batch, width)
    needs = node.needs_input_grad
    needs_x, (needs_w_ih, needs_w_hh, needs_b_ih, needs_b_hh) = needs[0], needs[first:first + 4]
    grad_x = empty((steps, batch, w_ih.shape[1]), dtype, w_ih) if needs_x else None
    grad_w_ih = node.grad_array(first, w_ih.shape, dtype, w_ih) if needs_w_ih else None
    grad_b_ih = node.grad_array(first + 2, width, dtype, w_ih) if needs_b_ih \
        else empty(width, dtype, w_ih) if needs_b_hh and shared else None
    # the input projection's backward: its two GEMMs, and the bias gradient from one parallel
    # pass (NumPy's sum over the T*N rows took 0.6 ms of an LSTM(256, 512) step at T=50, N=64)
    _linear_bwd(flat, x2, w_ih, grad_x, grad_w_ih, grad_b_ih)
    grad_w_hh = None
    if needs_w_hh:
        grad_w_hh = node.grad_array(first + 1, (width, h0.shape[1]), dtype, w_ih)
        K.gemm(hidden_flat[:batch], h0, True, False, False, grad_w_hh)
        if steps > 1:
            K.gemm(hidden_flat[batch:], out[:-1].reshape((steps - 1) * batch, out.shape[2]),
                   True, False, True, grad_w_hh)
    grad_b_hh = None
    if needs_b_hh:
        grad_b_hh = node.grad_array(first + 3, width, dtype, w_ih)
        if shared:
            np.copyto(grad_b_hh, grad_b_ih)
        else:
            _linear_bwd(hidden_flat, x2, w_ih, None, None, grad_b_hh)
    return grad_x, grad_w_ih, grad_w_hh, grad_b_ih if needs_b_ih else None, grad_b_hh


def _linear_bwd(grad, x2, weight, grad_x, grad_weight, grad_bias):
    """The gradients of ``x2 @ weight.T + bias`` from ``grad`` (T*N, G) without an
    activation: those of ``grad_x`` (T, N, I), ``grad_weight`` and ``grad_bias`` not None."""
    K.linear_bwd(grad, x2, weight, grad, ACTIVATIONS["none"],
                 None if grad_x is None else grad_x.reshape(grad.shape[0], weight.shape[1]),
                 grad_weight, grad_bias)


@ieee
class _LSTMLayer(Function):
    """One LSTM layer over a time-major sequence; returns ``(output, h_n, c_n)``. ``reverse``
    runs it over the time-reversed sequence (a bidirectional layer's reverse direction)."""

    writes_grads_into = True

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=False, record=None):
        x = _time_order(x, reverse)
        steps, batch = x.shape[:2]
        hidden = w_hh.shape[1]
        dtype = w_ih.dtype
        w_ih, w_hh = contiguous(w_ih), contiguous(w_hh)
        h0 = _zeros_or(h0, batch, hidden, dtype, w_ih)
        c0 = _zeros_or(c0, batch, hidden, dtype, w_ih)
        x2, pre = _project(x, w_ih, None if b_ih is None else b_ih + b_hh, 4 * hidden)
        gates_act = np.empty_like(pre)
        out = empty((steps, batch, hidden), dtype, w_ih)
        cells = np.empty_like(out)
        h_prev, c_prev = h0, c0
        w_packed = _packed(w_hh, True)
        for t in range(steps):
            K.gemm_packed(h_prev, w_packed, True, pre[t])  # the gates, in place
            K.lstm_cell_fwd(pre[t], c_prev, gates_act[t], out[t], cells[t])
            h_prev, c_prev = out[t], cells[t]
        self.saved = (x2, h0, c0, w_ih, w_hh, gates_act, cells, out, reverse, record)
        return _time_order(out, reverse), out[-1].copy(), cells[-1].copy()

    def backward(self, grad_out, grad_h_n, grad_c_n):
        x2, h0, c0, w_ih, w_hh, gates_act, cells, out, reverse, record = self.saved
        grad_out = _time_order(grad_out, reverse)
        steps = out.shape[0]
        grad_gates = np.empty_like(gates_act)
        grad_h = grad_h_n.astype(out.dtype, order="C")  # a copy
        grad_steps = _StepGrads(grad_h, steps, record)
        # entry t: d(loss)/dc_t as step t + 1 passes it back; entry T, c_n's gradient
        grad_cells = _StepGrads(grad_h, steps + 1, record)
        grad_cells[steps][...] = grad_c_n
        grad_cells.written(steps)
        w_packed = _packed(w_hh, False)
        for t in range(steps - 1, -1, -1):
            grad_h_step = grad_steps[t]
            np.add(grad_out[t], grad_h, out=grad_h_step)
            K.lstm_cell_bwd(grad_h_step, grad_cells[t + 1], cells[t - 1] if t else c0,
                            cells[t], gates_act[t], grad_gates[t], grad_cells[t])
            grad_steps.written(t)
            grad_cells.written(t)
            K.gemm_packed(grad_gates[t], w_packed, False, grad_h)
        grad_c = grad_cells[0].copy()
        if record is not None:
            record(grad_steps.time_order(reverse), grad_cells.time_order(reverse, first=1))
        needs = self.needs_input_grad
        grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh = _parameter_grads(
            self, 3, grad_gates, h0, out, x2, w_ih)
        return (_time_order(grad_x, reverse), grad_h if needs[1] else None,
                grad_c if needs[2] else None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh)


@ieee
class _RNNLayer(Function):
    """One Elman RNN layer over a time-major sequence; returns ``(output, h_n)``. ``reverse``
    runs it over the time-reversed sequence (a bidirectional layer's reverse direction)."""

    writes_grads_into = True

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh, activation, reverse=False, record=None):
        x = _time_order(x, reverse)
        steps, batch = x.shape[:2]
        hidden = w_hh.shape[1]
        dtype = w_ih.dtype
        w_ih, w_hh = contiguous(w_ih), contiguous(w_hh)
        h0 = _zeros_or(h0, batch, hidden, dtype, w_ih)
        x2, pre = _project(x, w_ih, None if b_ih is None else b_ih + b_hh, hidden)
        out = empty((steps, batch, hidden), dtype, w_ih)
        h_prev = h0
        w_packed = _packed(w_hh, True)
        for t in range(steps):
            K.gemm_packed(h_prev, w_packed, True, pre[t])  # the pre-activation, in place
            K.activation_fwd(pre[t], activation, out[t])
            h_prev = out[t]
        self.saved = (x2, h0, w_ih, w_hh, out, activation, reverse, record)
        return _time_order(out, reverse), out[-1].copy()

    def backward(self, grad_out, grad_h_n):
        x2, h0, w_ih, w_hh, out, activation, reverse, record = self.saved
        grad_out = _time_order(grad_out, reverse)
        grad_pre = np.empty_like(out)
        grad_h = grad_h_n.astype(out.dtype, order="C")  # a copy
        grad_steps = _StepGrads(grad_h, out.shape[0], record)
        w_packed = _packed(w_hh, False)
        for t in range(out.shape[0] - 1, -1, -1):
            grad_h_step = grad_steps[t]
            np.add(grad_out[t], grad_h, out=grad_h_step)
            K.activation_bwd(grad_h_step, out[t], activation, grad_pre[t])
            grad_steps.written(t)
            K.gemm_packed(grad_pre[t], w_packed, False, grad_h)
        if record is not None:
            record(grad_steps.time_order(reverse), None)
        needs = self.needs_input_grad
        grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh = _parameter_grads(
            self, 2, grad_pre, h0, out, x2, w_ih)
        return (_time_order(grad_x, reverse), grad_h if needs[1] else None, grad_w_ih,
                grad_w_hh, grad_b_ih, grad_b_hh, None)


@ieee
class _GRULayer(Function):
    """One GRU layer over a time-major sequence; returns ``(output, h_n)``. ``reverse`` runs it
    over the time-reversed sequence (a bidirectional layer's reverse direction).

    Per step, ``hh = h_{t-1} W_hh^T`` is one GEMM. The input projection carries ``b_ih`` and
    the r and z thirds of ``b_hh``; the n third, ``b_hn``, stays inside ``r * (hh_n + b_hn)``,
    where PyTorch's formula puts it. Kept per step for backward: the activated r, z and n,
    ``hh_n + b_hn`` and the output.
    """

    writes_grads_into = True

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh, reverse=False, record=None):
        x = _time_order(x, reverse)
        steps, batch = x.shape[:2]
        hidden = w_hh.shape[1]
        dtype = w_ih.dtype
        w_ih, w_hh = contiguous(w_ih), contiguous(w_hh)
        h0 = _zeros_or(h0, batch, hidden, dtype, w_ih)
        bias = b_hn = None
        if b_ih is not None:
            bias = b_ih.copy()
            bias[:2 * hidden] += b_hh[:2 * hidden]
            b_hn = b_hh[2 * hidden:]
        x2, pre = _project(x, w_ih, bias, 3 * hidden)
        rz = empty((steps, batch, 2 * hidden), dtype, w_ih)
        n = empty((steps, batch, hidden), dtype, w_ih)
        hn = np.empty_like(n)
        out = np.empty_like(n)
        hh = empty((batch, 3 * hidden), dtype, w_ih)
        rz_pre = empty((batch, 2 * hidden), dtype, w_ih)
        n_pre = empty((batch, hidden), dtype, w_ih)
        h_prev = h0
        w_packed = _packed(w_hh, True)
        for t in range(steps):
            K.gemm_packed(h_prev, w_packed, False, hh)
            np.add(pre[t, :, :2 * hidden], hh[:, :2 * hidden], out=rz_pre)
            K.activation_fwd(rz_pre, _SIGMOID, rz[t])
            if b_hn is None:
                hn[t] = hh[:, 2 * hidden:]
            else:
                np.add(hh[:, 2 * hidden:], b_hn, out=hn[t])
            np.multiply(rz[t, :, :hidden], hn[t], out=n_pre)
            n_pre += pre[t, :, 2 * hidden:]
            K.activation_fwd(n_pre, _TANH, n[t])
            np.subtract(h_prev, n[t], out=out[t])  # h_t = (1 - z) n + z h_{t-1}
            out[t] *= rz[t, :, hidden:]
            out[t] += n[t]
            h_prev = out[t]
        self.saved = (x2, h0, w_ih, w_hh, rz, n, hn, out, reverse, record)
        return _time_order(out, reverse), out[-1].copy()

    def backward(self, grad_out, grad_h_n):
        x2, h0, w_ih, w_hh, rz, n, hn, out, reverse, record = self.saved
        grad_out = _time_order(grad_out, reverse)
        steps, batch, hidden = out.shape
        # d(loss)/d(h_{t-1} W_hh^T + b_hh); the input projection's differs only in the n third
        grad_hidden = empty((steps, batch, 3 * hidden), out.dtype, out)
        grad_n_pre = np.empty_like(out)
        grad_h = grad_h_n.astype(out.dtype, order="C")  # a copy
        grad_steps = _StepGrads(grad_h, steps, record)
        w_packed = _packed(w_hh, False)
        for t in range(steps - 1, -1, -1):
            r, z = rz[t, :, :hidden], rz[t, :, hidden:]
            h_prev = out[t - 1] if t else h0
            grad_h_step = grad_steps[t]
            np.add(grad_out[t], grad_h, out=grad_h_step)
            np.multiply(grad_h_step, 1 - z, out=grad_n_pre[t])
            grad_n_pre[t] *= 1 - n[t] * n[t]
            grad = grad_hidden[t]
            np.multiply(grad_n_pre[t], r, out=grad[:, 2 * hidden:])
            np.multiply(grad_n_pre[t] * hn[t], r * (1 - r), out=grad[:, :hidden])
            np.multiply(grad_h_step * (h_prev - n[t]), z * (1 - z),
                        out=grad[:, hidden:2 * hidden])
            np.multiply(grad_h_step, z, out=grad_h)
            grad_steps.written(t)
            K.gemm_packed(grad, w_packed, True, grad_h)
        if record is not None:
            record(grad_steps.time_order(reverse), None)
        grad_pre = grad_hidden.copy()
        grad_pre[:, :, 2 * hidden:] = grad_n_pre
        needs = self.needs_input_grad
        grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh = _parameter_grads(
            self, 2, grad_pre, h0, out, x2, w_ih, grad_hidden)
        return (_time_order(grad_x, reverse), grad_h if needs[1] else None, grad_w_ih,
                grad_w_hh, grad_b_ih, grad_b_hh)


# ------------------------------------------------------------------------------------ losses
def _legacy_reduction(size_average, reduce, reduction):
    """``reduction``, or the one PyTorch's deprecated ``size_average`` and ``reduce`` name when
    either is given (they override it, with PyTorch's warning): ``"mean"`` when both are true
    (None counts as true), ``"sum"`` when only ``reduce`` is, else ``"none"``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{legacy}' instead.", stacklevel=3)
    return legacy


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
    check_floating(input, "input")
    check_tensor(target, "target")
    if input._data.shape != target._data.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{input.shape}; losses do not broadcast, reshape one of them")
    dtype = dtypes.promote(input.dtype, target.dtype)
    return ops.cast(input, dtype), ops.cast(target, dtype)


def _class_rows(input, target, name):
    """``input`` as (M, C) rows of class scores, ``target`` checked to hold integer class
    indices of the matching shape (their values: :func:`_labels`).

    Returns:
        ``(rows, target_shape)``.
    """
    if target._data.dtype.kind not in "iu":
        raise RuntimeError(f"{name} target must hold int64 class indices, got dtype "
                           f"{target.dtype}")
    shape = input._data.shape  # the array's: no Size made per read
    class_dim = 0 if len(shape) == 1 else 1
    expected = shape[:class_dim] + shape[class_dim + 1:]
    if target._data.shape != expected:
        raise ValueError(f"{name} target must have shape {expected} for input of shape "
                         f"{input.shape}, got {target.shape}")
    classes = shape[class_dim]
    if len(shape) == 2:
        return input, expected
    rows = ops.permute(input, *([d for d in range(input.ndim) if d != class_dim]
                                + [class_dim])) if input.ndim > 2 else input
    return rows.reshape(math.prod(expected), classes), expected


def _labels(target, ignore_index, classes):
    """The integer array ``target`` as (M,) int64 labels, checked to be classes or
    ``ignore_index`` (IndexError: the kernels index with them)."""
    labels = target.astype(np.int64).reshape(-1)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise IndexError(f"target {labels[np.argmax(bad)]} is out of bounds for {classes} "
                         "classes")
    return labels


def _check_class_weight(weight, input, classes):
    """``weight``, checked to be a (C,) tensor of input's dtype: one weight per class."""
    if weight is not None:
        check_tensor(weight, "weight")
        if weight.shape != (classes,):
            raise RuntimeError(f"weight tensor should be defined either for all {classes} "
                               f"classes or no classes but got weight tensor of shape: "
                               f"{list(weight.shape)}")
        if weight.dtype != input.dtype:
            raise RuntimeError(f"weight must have input's dtype {input.dtype}, got "
                               f"{weight.dtype}")
    return weight


def _weighted_nll(log_probs, labels, weight, ignore_index, smoothing, shape, reduction):
    """PyTorch's class-weighted negative log-likelihood of (M, C) ``log_probs``: each kept
    row's loss times its target's weight, ``reduction="mean"`` divided by the sum of the kept
    targets' weights (NaN when that is 0, as PyTorch). With label smoothing
    :math:`\\varepsilon`, PyTorch adds :math:`\\frac{\\varepsilon}{C} \\sum_c -w_c \\log p_c`
    per kept row to :math:`(1 - \\varepsilon)` times that, under the same divisor. ``weight``
    is a constant: no gradient flows to it (PyTorch refuses one)."""
    kept = labels != ignore_index
    classes = log_probs.shape[1]
    row_weight = np.where(kept, weight._data[np.where(kept, labels, 0)], 0)
    per_row = _NLLLoss.apply(log_probs, labels, ignore_index, row_weight)
    if smoothing:
        smooth = (log_probs * weight.detach()).sum(1) * (-smoothing / classes)
        per_row = per_row * (1 - smoothing) + ops.where(kept, smooth, 0.0)
    total = float(row_weight.sum(dtype=np.float64))
    return _reduce(per_row.reshape(shape), reduction, count=total)


def _check_ignore_index(ignore_index):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} "
                        f"{ignore_index!r}")
    return int(ignore_index)


@ieee
class _CrossEntropy(Function):
    """The per-row losses of (M, C) logits, or their sum, or their mean over ``count`` kept
    rows (``reduction``): one Function, so a reduced loss costs one node of the graph. The
    reduction rounds as ``loss.sum() / count`` on tensors would."""

    def forward(self, logits, target, ignore_index, reduction):
        # the labels are checked and counted here, inside the op, so a captured step's
        # replay (fastgrad.graphs) checks and counts each batch's own
        logits = contiguous(logits)
        target = _labels(target, ignore_index, logits.shape[1])
        count = None
        if reduction == "mean":
            count = np.count_nonzero(target != ignore_index)
            # on the host an int; on a device it stays there, in the loss's dtype (no
            # synchronisation), which divides as the int does
            count = int(count) if type(target) is np.ndarray else count.astype(logits.dtype)
        n = logits.shape[0]
        loss, lse = empty(n, logits.dtype, logits), empty(n, np.float64, logits)
        K.cross_entropy_fwd(logits, target, ignore_index, loss, lse)
        self.logits, self.target, self.lse, self.ignore_index = logits, target, lse, ignore_index
        self.reduction, self.count = reduction, count
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "mean":
            with np.errstate(invalid="ignore"):  # no kept target: NaN, as PyTorch
                total = total / count
        return array_of(total).astype(logits.dtype, copy=False)

    def backward(self, grad_loss):
        if self.reduction != "none":
            if self.reduction == "mean":
                with np.errstate(divide="ignore", invalid="ignore"):
                    grad_loss = grad_loss / self.count
            grad_loss = full(self.target.shape, grad_loss, self.logits.dtype, self.logits)
        grad_logits = np.empty_like(self.logits)
        K.cross_entropy_bwd(self.logits, self.target, self.lse, self.ignore_index,
                            contiguous(grad_loss), grad_logits)
        return grad_logits, None, None, None, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets: log-softmax and negative log-likelihood fused.

    ``target`` holds class indices (int64, shape ``(N,)`` or ``(N, d1, ...)``, or ``()`` for
    an unbatched ``(C,)`` input) or class probabilities (float, the shape of ``input``). With
    indices, ``reduction="mean"`` averages over the targets that are not ``ignore_index``.

    ``label_smoothing`` :math:`\\varepsilon` mixes the target with the uniform distribution
    over the C classes, as PyTorch does: with indices a kept target's loss is
    :math:`(1 - \\varepsilon) \\, nll + \\frac{\\varepsilon}{C} \\sum_c -\\log p_c` (ignored
    targets count 0); with probabilities the target becomes
    :math:`(1 - \\varepsilon) \\, t + \\varepsilon / C`.

    ``weight`` (C,) weighs each class as PyTorch does: with indices, each target's loss by
    its class's weight, and ``"mean"`` divides by the sum of the kept targets' weights (see
    :func:`nll_loss`; no gradient flows to it); with probabilities, the term of each class,
    and ``"mean"`` divides by the number of samples. ``size_average`` and ``reduce`` are
    PyTorch's deprecated spelling of ``reduction`` (they override it, with its warning).

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target as above.

    References: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
    CVPR 2016 (label smoothing).
    """
    check_tensor(input, "input")
    check_tensor(target, "target")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    smoothing = real(label_smoothing, "label_smoothing")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {smoothing}")
    if not dtypes.is_floating(input._data.dtype):
        raise TypeError(f"cross_entropy input must hold floating logits, got dtype {input.dtype}")
    if input._data.ndim == 0:
        raise ValueError("cross_entropy input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input._data.ndim == 1 else 1
    classes = input._data.shape[class_dim]
    weight = _check_class_weight(weight, input, classes)
    if dtypes.is_floating(target._data.dtype):
        if target.shape != input.shape:
            raise RuntimeError(
                f"cross_entropy expects int64 class indices of shape "
                f"{input.shape[:class_dim] + input.shape[class_dim + 1:]} or float class "
                f"probabilities of shape {input.shape}; got a {target.dtype} target of shape "
                f"{target.shape}")
        if smoothing:
            target = target * (1 - smoothing) + smoothing / classes
        terms = target * ops.log_softmax(input, class_dim)
        if weight is not None:
            terms = terms * weight.reshape((classes,) + (1,) * (input.ndim - class_dim - 1))
        return _reduce(-terms.sum(class_dim), reduction)
    rows, expected = _class_rows(input, target, "cross_entropy")
    if weight is None and not smoothing:
        loss = _CrossEntropy.apply(rows, target, ignore_index, reduction)
        return loss.reshape(expected) if reduction == "none" and loss.shape != expected \
            else loss
    labels = _labels(target._data, ignore_index, classes)
    if weight is not None:
        return _weighted_nll(ops.log_softmax(rows, 1), labels, weight, ignore_index, smoothing,
                             expected, reduction)
    kept = labels != ignore_index
    count = int(np.count_nonzero(kept))
    per_row = _CrossEntropy.apply(rows, target, ignore_index, "none")
    uniform = ops.log_softmax(rows, 1).sum(1) * (-smoothing / classes)
    per_row = per_row * (1 - smoothing) + ops.where(kept, uniform, 0.0)
    return _reduce(per_row.reshape(expected), reduction, count=count)


@ieee
class _NLLLoss(Function):
    """``-log_probs[n, labels[n]]`` per row, times ``row_weight[n]`` when given; 0 where the
    label is ``ignore_index``."""

    def forward(self, log_probs, labels, ignore_index, row_weight):
        kept = labels != ignore_index
        picked = np.where(kept, labels, 0)[:, None]
        self.shape, self.kept, self.picked = log_probs.shape, kept, picked
        self.row_weight = row_weight
        loss = -np.take_along_axis(log_probs, picked, axis=1)[:, 0]
        if row_weight is not None:
            loss *= row_weight
        return np.where(kept, loss, 0)

    def backward(self, grad):
        grad = -grad if self.row_weight is None else -grad * self.row_weight
        grad_in = zeros(self.shape, grad.dtype, grad)
        np.put_along_axis(grad_in, self.picked, np.where(self.kept, grad, 0)[:, None], axis=1)
        return grad_in, None, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """The negative log-likelihood of class-index targets under log-probabilities ``input``:
    ``-input[n, target[n]]``, 0 where the target is ``ignore_index``; ``reduction="mean"``
    averages over the kept targets (NaN when none is kept, as PyTorch).

    ``weight`` (C,) weighs each target's loss by its class's weight, and ``"mean"`` then
    divides by the sum of the kept targets' weights, PyTorch's weighted mean; it is a
    constant (PyTorch refuses a gradient for it). ``size_average`` and ``reduce`` are
    PyTorch's deprecated spelling of ``reduction`` (they override it, with its warning).

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target (N,) or (N, d1, ...) or () int64.
    """
    check_floating(input, "input")
    check_tensor(target, "target")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    if input.ndim == 0:
        raise ValueError("nll_loss input must have a class dimension, got a 0-d tensor")
    weight = _check_class_weight(weight, input, input.shape[0 if input.ndim == 1 else 1])
    rows, expected = _class_rows(input, target, "nll_loss")
    labels = _labels(target._data, ignore_index, rows.shape[1])
    if weight is not None:
        return _weighted_nll(rows, labels, weight, ignore_index, 0.0, expected, reduction)
    per_row = _NLLLoss.apply(rows, labels, ignore_index, None).reshape(expected)
    return _reduce(per_row, reduction, count=int((labels != ignore_index).sum()))


def _reduce_weighted(loss, weight, reduction, input, mean_by_weight):
    """``loss * weight`` reduced, ``weight`` of input's shape (PyTorch's element weights of
    the regression losses): ``"mean"`` is ``sum / weight.sum()`` when ``mean_by_weight`` (mse,
    l1) or the plain mean (huber), as in PyTorch. Gradients flow to ``weight`` too."""
    if weight is None:
        return _reduce(loss, reduction)
    check_tensor(weight, "weight")
    if weight.shape != input.shape:
        raise ValueError(f"Weights and input must have the same size, got weight of shape "
                         f"{weight.shape} and input of shape {input.shape}")
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error; ``input`` (floating) and ``target`` must have the same shape.
    ``weight`` (input's shape) weighs each element; the mean is then divided by its sum, as
    in PyTorch. ``size_average``/``reduce``: PyTorch's deprecated spelling of ``reduction``."""
    check_floating(input, "input")
    check_tensor(target, "target")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if input._data.shape != target._data.shape:
        raise ValueError(f"mse_loss input and target must have the same shape, got "
                         f"{input.shape} and {target.shape}")
    if weight is None and target._data.dtype == input._data.dtype:
        return _MSELoss.apply(input, target, reduction)
    difference = input - target
    return _reduce_weighted(difference * difference, weight, reduction, input, True)


@ieee
class _MSELoss(Function):
    """``(input - target) ** 2`` reduced, one op instead of four (subtract, square, sum,
    divide: a small model's loss was four ops' Python each way). The same values as those ops:
    the square's gradient ``2 * (grad * d)`` is what their two products summed give."""

    grads_are_fresh = True

    def forward(self, x, y, reduction):
        self.difference = d = x - y
        self.reduction, self.count = reduction, d.size
        square = d * d
        if reduction == "none":
            return square
        total = square.sum()
        return total if reduction == "sum" else total / self.count

    def backward(self, grad):
        if self.reduction == "mean":
            grad = grad / grad.dtype.type(self.count)
        grad_x = grad * self.difference
        grad_x += grad_x
        wants_x, wants_y = self.needs_input_grad[:2]
        return (grad_x if wants_x else None), (-grad_x if wants_y else None), None


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``; the gradient at 0 is 0, as PyTorch's.
    ``weight`` as in :func:`mse_loss`."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    input, target = _pair(input, target, "l1_loss")
    return _reduce_weighted(ops.abs(input - target), weight, reduction, input, True)


@ieee
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


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Quadratic for small errors, linear for large ones:
    :math:`\\frac12 d^2` where :math:`|d| < \\delta`, else :math:`\\delta (|d| - \\delta / 2)`,
    with :math:`d = input - target`. ``weight`` (input's shape) weighs each element; unlike
    :func:`mse_loss`'s, PyTorch's weighted mean here is the plain mean of the weighted losses.

    References: Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 1964.
    """
    check_reduction(reduction)
    delta = real(delta, "delta")
    if not delta > 0:
        raise ValueError(f"huber_loss delta must be positive, got {delta}")
    input, target = _pair(input, target, "huber_loss")
    return _reduce_weighted(_HuberLoss.apply(input, target, delta), weight, reduction, input,
                            False)


@ieee
class _SmoothL1Loss(Function):
    def forward(self, x, y, beta):
        self.difference, self.beta = x - y, beta
        size = np.abs(self.difference)
        return np.where(size < beta, 0.5 * self.difference * self.difference / beta,
                        size - 0.5 * beta)

    def backward(self, grad):
        g = grad * np.clip(self.difference / self.beta, -1, 1)
        return (g if self.needs_input_grad[0] else None,
                -g if self.needs_input_grad[1] else None, None)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """:math:`\\frac12 d^2 / \\beta` where :math:`|d| < \\beta`, else :math:`|d| - \\beta / 2`,
    with :math:`d = input - target`: :func:`huber_loss` divided by ``beta``, so the linear part
    has slope 1; :func:`l1_loss` when ``beta`` is 0, as in PyTorch.

    Raises:
        RuntimeError: a negative ``beta`` (PyTorch's error).

    References: Girshick, "Fast R-CNN", ICCV 2015.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    beta = real(beta, "beta")
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got "
                           f"{beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    input, target = _pair(input, target, "smooth_l1_loss")
    return _reduce(_SmoothL1Loss.apply(input, target, beta), reduction)


@ieee
class _KLDiv(Function):
    def forward(self, x, t, log_target):
        self.x, self.t, self.log_target = x, t, log_target
        if log_target:
            self.exp_t = np.exp(t)
            return self.exp_t * (t - x)
        # PyTorch's xlogy(t, t) - t x: 0 log 0 counts 0
        return np.where(t == 0, 0, t * np.log(t)) - t * x

    def backward(self, grad):
        x, t = self.x, self.t
        needs_x, needs_t = self.needs_input_grad[:2]
        grad_x = grad_t = None
        if self.log_target:
            if needs_x:
                grad_x = -grad * self.exp_t
            if needs_t:
                grad_t = grad * self.exp_t * (t - x + 1)
        else:
            if needs_x:
                grad_x = -grad * t
            if needs_t:
                # PyTorch's xlogy rule: log t where t != 0, plus t / t (NaN where t == 0)
                grad_t = grad * (np.where(t == 0, 0, np.log(t)) + t / t - x)
        return grad_x, grad_t, None


_KL_MEAN_WARNING = ("reduction: 'mean' divides the total loss by both the batch size and the "
                    "support size.'batchmean' divides only by the batch size, and aligns with "
                    "the KL div math definition.'mean' will be changed to behave the same as "
                    "'batchmean' in the next major release.")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """The Kullback-Leibler divergence of ``target`` from the distribution whose
    log-probabilities are ``input``, pointwise:
    :math:`t (\\log t - x)` (0 where :math:`t = 0`), or :math:`e^{t} (t - x)` when
    ``log_target`` (the target given as log-probabilities too).

    ``reduction="batchmean"`` divides the sum by the batch size ``input.shape[0]``: the true
    KL divergence per sample; ``"mean"`` divides by the number of elements (PyTorch warns
    about that, and so does fastgrad). The target's gradient follows PyTorch's (NaN where a
    probability target is 0).
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn(_KL_MEAN_WARNING, stacklevel=2)
    check_reduction(reduction, REDUCTIONS + ("batchmean",))
    input, target = _pair(input, target, "kl_div")
    loss = _KLDiv.apply(input, target, bool(log_target))
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def _binary_pair(input, target, name):
    check_floating(input, "input")
    check_tensor(target, "target")
    if input._data.shape != target._data.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{input.shape}; losses do not broadcast, reshape one of them")
    if target.dtype != input.dtype:
        raise RuntimeError(f"{name}: target must have input's dtype {input.dtype}, got "
                           f"{target.dtype}")


_BCE_EPSILON = float(np.float32(1e-12))


@ieee
class _BinaryCrossEntropy(Function):
    def forward(self, x, y):
        # checked here, inside the op, so a captured step's replay checks each batch
        if not ((x >= 0) & (x <= 1)).all():
            raise RuntimeError(f"binary_cross_entropy: all elements of input should be between "
                               f"0 and 1, got values in [{x.min()}, {x.max()}]")
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


def _element_weight(weight, input, name):
    """``weight`` detached, checked to broadcast to input's shape in input's dtype: the
    element weights of the binary cross-entropies, constants (PyTorch refuses a gradient)."""
    if weight is None:
        return None
    check_tensor(weight, "weight")
    if weight.dtype != input.dtype:
        raise RuntimeError(f"{name}: weight must have input's dtype {input.dtype}, got "
                           f"{weight.dtype}")
    try:
        broadcast = np.broadcast_shapes(weight.shape, input.shape)
    except ValueError:
        broadcast = None
    if broadcast != input.shape:
        raise RuntimeError(f"{name}: weight of shape {weight.shape} does not broadcast to "
                           f"input shape {input.shape}")
    return weight.detach()


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` against targets in [0, 1]:
    :math:`-w (t \\log x + (1 - t) \\log(1 - x))`, each log clamped at -100 as PyTorch does.
    Prefer :func:`binary_cross_entropy_with_logits` on logits: it is stable everywhere. The
    target's gradient is the derivative of this clamped loss, finite where the input is 0 or 1
    (PyTorch's is infinite there). ``weight`` w (broadcast to input's shape, no gradient)
    weighs each element; the mean stays over the elements. ``size_average``/``reduce``:
    PyTorch's deprecated spelling of ``reduction``.

    Raises:
        RuntimeError: an input value outside [0, 1] (PyTorch's check) or a target dtype other
            than input's.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    _binary_pair(input, target, "binary_cross_entropy")
    weight = _element_weight(weight, input, "binary_cross_entropy")
    loss = _BinaryCrossEntropy.apply(input, target)
    return _reduce(loss if weight is None else loss * weight, reduction)


@ieee
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
            grad_weight = ops.unbroadcast(grad * y * softplus_neg, pos_weight.shape,
                                           pos_weight.dtype)
        return grad_x, grad_y, grad_weight


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits, the sigmoid folded in and computed stably:

    .. math::
        \\ell = p \\, t \\, \\mathrm{softplus}(-x) + (1 - t) \\, \\mathrm{softplus}(x), \\quad
        \\mathrm{softplus}(x) = \\max(x, 0) + \\log(1 + e^{-|x|})

    finite, with a finite gradient, for any finite logit (±100 included). ``pos_weight`` p
    weighs the positive term (per class: it broadcasts against ``input``, e.g. shape (C,));
    without it, p = 1 and :math:`\\ell = \\max(x, 0) - x t + \\log(1 + e^{-|x|})`. Unlike
    PyTorch, ``pos_weight`` may require grad: it receives :math:`t \\, \\mathrm{softplus}(-x)`.
    ``weight`` (broadcast to input's shape, no gradient) multiplies each element's loss; the
    mean stays over the elements. ``size_average``/``reduce``: PyTorch's deprecated spelling of
    ``reduction``.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    _binary_pair(input, target, "binary_cross_entropy_with_logits")
    weight = _element_weight(weight, input, "binary_cross_entropy_with_logits")
    if pos_weight is not None:
        check_tensor(pos_weight, "pos_weight")
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
    loss = _BinaryCrossEntropyWithLogits.apply(input, target, pos_weight)
    return _reduce(loss if weight is None else loss * weight, reduction)


@ieee
class _CosineSimilarity(Function):
    """PyTorch's formula: each vector divided by its norm clamped below at ``eps``, then the
    dot product; the clamp passes no gradient (the norm's own does: 0 at a zero vector)."""

    def forward(self, a, b, axis, eps):
        self.shapes, self.axis = (a.shape, b.shape), axis
        a, b = np.broadcast_arrays(a, b)
        self.sides = []
        for v in (a, b):
            norm = np.sqrt((v * v).sum(axis=axis, keepdims=True))
            clamped = np.maximum(norm, eps)
            self.sides.append((np.where(norm > 0, v / norm, 0), clamped, v / clamped))
        self.out = (self.sides[0][2] * self.sides[1][2]).sum(axis=axis)
        return self.out

    def backward(self, grad):
        grad, out = np.expand_dims(grad, self.axis), np.expand_dims(self.out, self.axis)
        grads = []
        for i, (mine, other) in enumerate(((0, 1), (1, 0))):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            direction, clamped, _ = self.sides[mine]
            g = grad * (self.sides[other][2] - out * direction) / clamped
            grads.append(ops.unbroadcast(g, self.shapes[i], grad.dtype))
        return grads[0], grads[1], None, None


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """The cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast):

    .. math::
        \\sum \\frac{x_1}{\\max(\\lVert x_1 \\rVert_2, \\epsilon)}
        \\frac{x_2}{\\max(\\lVert x_2 \\rVert_2, \\epsilon)}

    PyTorch's form (each normalised first, so the result stays in [-1, 1]), with its
    gradient: the clamp at ``eps`` is a constant, a zero vector's norm has gradient 0.
    """
    check_tensor(x1, "x1")
    check_tensor(x2, "x2")
    dtype = dtypes.promote(x1.dtype, x2.dtype)
    dtype = dtype if dtypes.is_floating(dtype) else dtypes.default_float
    shape = check_broadcast(x1.shape, x2.shape, names=("x1", "x2"))
    axis = normalize_dim(dim, len(shape))
    return _CosineSimilarity.apply(ops.cast(x1, dtype), ops.cast(x2, dtype), axis,
                                   real(eps, "eps"))


# ------------------------------------------------------------------ regularisation penalties
# The graph node of fastgrad.nn.utils.l1_penalty and l2_penalty (which check the arguments).
@ieee
class _Penalty(Function):
    """:math:`\\sum_k \\sum |w_k|` (order 1) or :math:`\\sum_k \\sum w_k^2` (order 2) of any
    number of tensors as one graph node, summed in float64."""

    def forward(self, *arrays, order, dtype):
        self.arrays, self.order = arrays, order
        if order == 1:
            total = sum(float(np.abs(a).sum(dtype=np.float64)) for a in arrays)
        else:
            total = sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays)
        return full((), total, dtype, arrays[0]) if arrays else np.array(total, dtype)

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
