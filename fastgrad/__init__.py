"""fastgrad: a small, fast training core for neural networks, built to make vanishing and
exploding gradients visible and fixable.

PyTorch's habits: ``fastgrad.tensor``, ``fastgrad.nn``, ``fastgrad.optim``,
``fastgrad.nn.functional as F``. Importing fastgrad imports NumPy only; kernel backends load
on first use.
"""
from . import autograd
from . import backends
from . import nn
from . import optim
from . import data
from .autograd import enable_grad, is_grad_enabled, no_grad
from .dtypes import bool_, float16, float32, float64, int32, int64
from .ops import (abs, add, argmax, cat, clamp, div, exp, flatten, log, log_softmax, matmul,
                  max, mean, mul, neg, permute, pow, relu, reshape, sigmoid, softmax, sqrt,
                  squeeze, stack, sub, sum, tanh, transpose, unsqueeze, where)
from .random import Generator, manual_seed
from .tensor import Tensor, from_numpy, tensor
from .threads import get_num_threads, set_num_threads
from .creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from .pointwise import *  # noqa: F401,F403 (each module's __all__)
from .reductions import *  # noqa: F401,F403
from .shapes import *  # noqa: F401,F403
from . import pointwise, reductions, shapes
from . import runtime
from .export import export
from .serialization import load, save

__version__ = "0.1.0"

#: Submodules imported on first access (``fastgrad.diagnostics``), so ``import fastgrad``
#: does not pay for what a run may never use.
_LAZY = ("diagnostics",)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastgrad' has no attribute {name!r}")

__all__ = [
    "autograd", "backends", "data", "diagnostics", "nn", "optim", "runtime",
    "save", "load", "export",
    "Tensor", "tensor", "from_numpy", "no_grad", "enable_grad", "is_grad_enabled",
    "Generator", "manual_seed", "get_num_threads", "set_num_threads",
    "bool_", "float16", "float32", "float64", "int32", "int64",
    "arange", "full", "ones", "ones_like", "rand", "randn", "zeros", "zeros_like",
    "abs", "add", "argmax", "cat", "clamp", "div", "exp", "flatten", "log", "log_softmax",
    "matmul", "max", "mean", "mul", "neg", "permute", "pow", "relu", "reshape", "sigmoid",
    "softmax", "sqrt", "squeeze", "stack", "sub", "sum", "tanh", "transpose", "unsqueeze",
    "where",
] + pointwise.__all__ + reductions.__all__ + shapes.__all__
