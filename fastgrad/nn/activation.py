"""Activation and softmax layers, the shape-only Identity, Flatten and Unflatten, and
CosineSimilarity.

``inplace=True`` is PyTorch's flag with the meaning :mod:`fastgrad.nn.functional` documents:
the same values and gradients as PyTorch from the returned tensor; the input itself is
overwritten only when it is outside autograd's graph.
"""
import math
import numbers
import warnings

from .. import ops
from .._checks import check_tensor, normalize_dim, real
from . import functional as F
from .module import Module


def _inplace_repr(inplace, prefix=", "):
    return f"{prefix}inplace=True" if inplace else ""


class ReLU(Module):
    """max(0, x) elementwise."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, "")


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise, without overflow."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, input):
        return F.tanh(input)


class LeakyReLU(Module):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (see
    :func:`fastgrad.nn.functional.leaky_relu`)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = real(negative_slope, "negative_slope")
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}{_inplace_repr(self.inplace)}"


class ELU(Module):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (see
    :func:`fastgrad.nn.functional.elu`)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = real(alpha, "alpha")
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}{_inplace_repr(self.inplace)}"


class Hardtanh(Module):
    """``input`` clamped to [min_val, max_val] (see :func:`fastgrad.nn.functional.hardtanh`).
    ``min_value``/``max_value`` are PyTorch's deprecated names (with its FutureWarning).

    Raises:
        ValueError: ``max_val <= min_val`` (PyTorch asserts it).
    """

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None,
                 max_value=None):
        super().__init__()
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`",
                          FutureWarning, stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`",
                          FutureWarning, stacklevel=2)
            max_val = max_value
        self.min_val, self.max_val = real(min_val, "min_val"), real(max_val, "max_val")
        self.inplace = inplace
        if self.max_val <= self.min_val:
            raise ValueError(f"max_val ({self.max_val}) must be greater than min_val "
                             f"({self.min_val})")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_repr(self.inplace)}"


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)``: :class:`Hardtanh` on [0, 6]."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, "")


class SiLU(Module):
    """``x * sigmoid(x)`` (swish; see :func:`fastgrad.nn.functional.silu`)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, "")


class Mish(Module):
    """``x * tanh(softplus(x))`` (see :func:`fastgrad.nn.functional.mish`)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.mish(input, inplace=self.inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, "")


class GELU(Module):
    """``x * Phi(x)``, Phi the standard normal CDF, or its tanh approximation with
    ``approximate="tanh"`` (see :func:`fastgrad.nn.functional.gelu`)."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold`` (see
    :func:`fastgrad.nn.functional.softplus`)."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = real(beta, "beta")
        self.threshold = real(threshold, "threshold")
        if self.beta == 0:
            raise ValueError("softplus beta must be non-zero, got 0")

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along ``dim`` (see :func:`fastgrad.nn.functional.softmax`; ``dim=None`` is
    PyTorch's deprecated implicit choice)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """Log-softmax along ``dim`` (see :func:`fastgrad.nn.functional.log_softmax`)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over the channels of each location: dimension -3 of a (N, C, H, W) or (C, H, W)
    input."""

    def forward(self, input):
        check_tensor(input, "input")
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.ndim}D "
                             "instead")
        return F.softmax(input, -3)


class Identity(Module):
    """Returns its input unchanged; its arguments are accepted and ignored (as PyTorch's), so
    it can stand in for any layer."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Merges dimensions ``start_dim`` to ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by
    default, the batch dimension kept."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return ops.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dimension ``dim`` into ``unflattened_size`` (one entry may be -1, inferred):
    the inverse of :class:`Flatten`.

    Raises:
        TypeError: ``unflattened_size`` that is not a tuple or list of ints.
        RuntimeError: sizes whose product is not the size of ``dim`` (at forward).
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be a tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        for position, size in enumerate(unflattened_size):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element of "
                                f"type {type(size).__name__} at pos {position}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        check_tensor(input, "input")
        dim = normalize_dim(self.dim, input.ndim)
        sizes, length = tuple(self.unflattened_size), input.shape[dim]
        known = math.prod(s for s in sizes if s != -1)
        inferred = sizes.count(-1)
        if inferred > 1 or any(s < -1 for s in sizes) or (
                known != length if not inferred else known == 0 or length % known):
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to "
                               f"the size of dim {self.dim} ({length}) in the input tensor")
        return input.reshape(input.shape[:dim] + sizes + input.shape[dim + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class CosineSimilarity(Module):
    """The cosine similarity of two inputs along ``dim`` (see
    :func:`fastgrad.nn.functional.cosine_similarity`)."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


#: Activation layers a preceding Linear can apply in its fused kernel, by exact type.
FUSABLE = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}
