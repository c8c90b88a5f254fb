"""fastgrad: a small, fast training core for neural networks, built to make vanishing and
exploding gradients visible and fixable.

PyTorch's habits: ``fastgrad.tensor``, ``fastgrad.nn``, ``fastgrad.optim``,
``fastgrad.nn.functional as F``. Importing fastgrad imports NumPy only; kernel backends load
on first use. On glibc it also tells ``malloc`` to keep freed memory for reuse
(:mod:`fastgrad.memory`; ``FASTGRAD_MALLOC=system`` leaves it as it is).
"""
from . import autograd
from . import backends
from . import nn
from . import optim
from . import data
from . import utils
from . import cuda
from .autograd import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                       set_grad_enabled)
from .device import device  # the class: fastgrad.device("cuda"), as torch.device
from .dtypes import (Size, bool_, contiguous_format, dtype, float16, float32, float64,
                     get_default_dtype, int8, int16, int32, int64, preserve_format,
                     set_default_dtype, uint8)
from .dtypes import bool, double, float, half, int, long, short  # PyTorch's short names
from .ops import (abs, add, argmax, cat, clamp, div, exp, flatten, log, log_softmax, matmul,
                  max, mean, mul, neg, permute, pow, relu, reshape, sigmoid, softmax, sqrt,
                  squeeze, stack, sub, sum, tanh, transpose, unsqueeze, where)
from .random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .tensor import Tensor, from_numpy, is_floating_point, is_tensor, numel, tensor
from .threads import get_num_threads, set_num_threads
from .creation import *  # noqa: F401,F403 (creation.__all__)
from .pointwise import *  # noqa: F401,F403 (each module's __all__)
from .reductions import *  # noqa: F401,F403
from .shapes import *  # noqa: F401,F403
from . import creation, linalg, pointwise, reductions, shapes
from . import graphs, runtime
from .export import export
from .graphs import make_graphed_callables
from .serialization import load, save
from . import memory

memory.tune_malloc()  # freed arrays' memory is kept for the next step's: see memory.py

__version__ = "0.1.0"

#: Submodules imported on first access (``fastgrad.diagnostics``), so ``import fastgrad``
#: does not pay for what a run may never use.
_LAZY = ("diagnostics", "distributed", "models")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastgrad' has no attribute {name!r}")

__all__ = [
    "autograd", "backends", "cuda", "data", "diagnostics", "distributed", "graphs", "linalg",
    "memory", "models", "nn", "optim", "runtime", "make_graphed_callables",
    "utils",
    "save", "load", "export",
    "Tensor", "tensor", "from_numpy", "is_tensor", "is_floating_point", "numel",
    "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "inference_mode",
    "device", "Generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
    "set_rng_state", "get_num_threads", "set_num_threads",
    "bool_", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "bool", "double", "float", "half", "int", "long", "short", "dtype", "Size",
    "get_default_dtype", "set_default_dtype", "preserve_format", "contiguous_format",
    "abs", "add", "argmax", "cat", "clamp", "div", "exp", "flatten", "log", "log_softmax",
    "matmul", "max", "mean", "mul", "neg", "permute", "pow", "relu", "reshape", "sigmoid",
    "softmax", "sqrt", "squeeze", "stack", "sub", "sum", "tanh", "transpose", "unsqueeze",
    "where",
] + creation.__all__ + pointwise.__all__ + reductions.__all__ + shapes.__all__
