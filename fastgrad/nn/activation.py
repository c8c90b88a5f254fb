"""Activation layers."""
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


#: Activation layers a preceding Linear can apply in its fused kernel, by exact type.
FUSABLE = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}
