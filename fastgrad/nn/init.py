"""Weight initialisers with PyTorch's formulas, drawing from fastgrad's seeded generator.

Each works in place on a Tensor's values (the trailing underscore) and returns the tensor.
The random ones take an optional ``generator`` (a :class:`fastgrad.Generator`); without one
they draw from the default generator, so :func:`fastgrad.manual_seed` makes them repeatable.
Values are drawn in float64 and rounded to the tensor's dtype.

Fans follow PyTorch: for a weight of shape (out, in, *kernel), ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.
"""
import math

import numpy as np

from .. import autograd
from .. import random as _random

_LINEAR_GAINS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                 "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (PyTorch's table): 1 for linear layers and
    sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope²)) for leaky_relu (slope
    ``param``, 0.01 by default), 3/4 for selu."""
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope must be a number, got {slope!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer than "
                         f"2 dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    with autograd.no_grad():
        return tensor.copy_(values)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` with values drawn uniformly from [a, b)."""
    return _fill(tensor, _random.numpy_generator(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill ``tensor`` with values drawn from N(mean, std²)."""
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std}")
    return _fill(tensor, _random.numpy_generator(generator).normal(mean, std, tensor.shape))


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``."""
    return _fill(tensor, np.asarray(val))


def zeros_(tensor):
    """Fill ``tensor`` with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill ``tensor`` with 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot initialisation: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), which keeps
    the variance of activations and of gradients roughly constant across layers.

    References: Glorot and Bengio, "Understanding the difficulty of training deep feedforward
    neural networks", AISTATS 2010.
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot initialisation: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out)).

    References: Glorot and Bengio, AISTATS 2010 (see :func:`xavier_uniform_`).
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He initialisation: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain from
    :func:`calculate_gain` (``a`` is leaky_relu's negative slope) and fan per ``mode``.

    References: He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He initialisation: N(0, std²) with std = gain / sqrt(fan) (see
    :func:`kaiming_uniform_` for the arguments).

    References: He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """Fill ``tensor`` with a (semi-)orthogonal matrix times ``gain``: the Q of the QR
    decomposition of a standard normal matrix, its columns' signs fixed by R's diagonal so the
    result is uniformly distributed (Haar). Dimensions after the first are flattened; the rows
    (or, when there are fewer columns than rows, the columns) are orthonormal, so
    :math:`W W^T = gain^2 I` for the smaller dimension.

    References: Saxe et al., "Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks", ICLR 2014.
    """
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_ supports tensors with 2 or more dimensions, got shape "
                         f"{tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _random.numpy_generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))
