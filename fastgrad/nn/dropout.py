"""Dropout."""
from . import functional as F
from .module import Module


class Dropout(Module):
    """Inverted dropout in training mode (each element zeroed with probability ``p``, the kept
    ones scaled by ``1 / (1 - p)``); the identity in evaluation mode.

    The mask comes from fastgrad's default generator, seeded by :func:`fastgrad.manual_seed`.

    Args:
        p: probability of zeroing an element, in [0, 1].
        inplace: PyTorch's flag, with the meaning :func:`fastgrad.nn.functional.dropout`
            documents (the input is overwritten only outside autograd's graph).

    References: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = F._check_probability(p)
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
