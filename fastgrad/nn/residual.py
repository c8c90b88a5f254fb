"""Residual connections."""
from .module import Module


class Residual(Module):
    """``block(x) + shortcut(x)``: the block learns a correction to its input, and the
    gradient reaches earlier layers through the shortcut's identity path undiminished.

    fastgrad's addition: PyTorch has no such module (ResNet blocks write the sum by hand).

    Args:
        block: the residual branch, any Module.
        shortcut: the skip branch; None (the default) is the identity. When the block changes
            the shape, pass a projection such as ``nn.Linear(in_features, out_features,
            bias=False)``.

    Raises:
        RuntimeError: in forward, when the two branches' outputs differ in shape (no
            broadcasting).

    References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, block, shortcut=None):
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"block must be a Module, got {type(block).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"shortcut must be a Module or None, got {type(shortcut).__name__}")
        self.block = block
        self.shortcut = shortcut

    def forward(self, input):
        out = self.block(input)
        skip = input if self.shortcut is None else self.shortcut(input)
        if out.shape != skip.shape:
            which = "input (identity shortcut)" if self.shortcut is None else "shortcut output"
            hint = ""
            if out.ndim == input.ndim and out.shape[:-1] == input.shape[:-1]:
                hint = (f"; pass a projection shortcut such as "
                        f"shortcut=nn.Linear({input.shape[-1]}, {out.shape[-1]}, bias=False)")
            raise RuntimeError(f"Residual: block output shape {out.shape} differs from {which} "
                               f"shape {skip.shape}{hint}")
        return out + skip
