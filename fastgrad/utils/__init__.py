"""Utilities under PyTorch's paths: :mod:`fastgrad.utils.data` is ``torch.utils.data``."""
from . import data

__all__ = ["data"]
