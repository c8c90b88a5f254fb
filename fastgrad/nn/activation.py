"""Activation layers, and the shape-only Identity and Flatten."""
from .. import ops
from . import functional as F
from .module import Module


class ReLU(Module):
    """max(0, x) elementwise."""

    def forward(self, input):
        return F.relu(input)


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

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = F._real(negative_slope, "negative_slope")

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (see
    :func:`fastgrad.nn.functional.elu`)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = F._real(alpha, "alpha")

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


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
        self.beta = F._real(beta, "beta")
        self.threshold = F._real(threshold, "threshold")
        if self.beta == 0:
            raise ValueError("softplus beta must be non-zero, got 0")

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


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


#: Activation layers a preceding Linear can apply in its fused kernel, by exact type.
FUSABLE = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}
