"""Argument checks shared by the op modules and :mod:`fastgrad.nn`, each defined once.

fastgrad refuses bad input before any work, with PyTorch's exception type and a message that
names the argument and shows the value received. A check more than one module needs lives
here: a tensor, a flag, a real number, an int, a dim, a dtype, a shape, a reduction, a norm
type. A check that belongs to one op (the ``ignore_index`` of the NLL losses, the index of
``gather``, dropout's probability) stays beside that op. Each check returns the value in the
form its caller computes with (a bool, a float, a non-negative axis...), so a call site is one
line and one Python call.

:func:`ieee`, the decorator on every differentiable Function of the op modules, is here too:
it is shared by the same modules, and this one imports no op.
"""
import itertools
import numbers

import numpy as np

from . import dtypes
from . import tensor as _tensor  # the module: tensor.py imports ops, which imports this one

#: The reductions of the losses (``reduction=``); :func:`~fastgrad.nn.functional.kl_div`
#: adds ``"batchmean"``.
REDUCTIONS = ("none", "mean", "sum")


def ieee(function_class):
    """Run a Function's forward and backward with NumPy's floating-point warnings off: NaN
    and inf propagate silently by IEEE rules, as in PyTorch, instead of warning.
    (``np.errstate`` as a decorator: 0.5 us a call, against 1.8 us for a ``with`` block,
    which builds a context manager each time; it runs twice per op of every step.)"""
    for name in ("forward", "backward"):
        setattr(function_class, name, np.errstate(all="ignore")(getattr(function_class, name)))
    return function_class


# ------------------------------------------------------------------------------------ tensors
def is_tensor(value):
    return isinstance(value, _tensor.Tensor)


def check_tensor(value, argument):
    """``value``; a TypeError unless it is a Tensor (the layer functions and Modules of
    :mod:`fastgrad.nn`, which take no arrays or numbers for tensors)."""
    if not isinstance(value, _tensor.Tensor):
        raise TypeError(f"{argument} must be a Tensor, got {type(value).__name__}")
    return value


def check_floating(value, argument):
    """``value``; a TypeError unless it is a Tensor of a floating dtype."""
    check_tensor(value, argument)
    if not dtypes.is_floating(value.dtype):
        raise TypeError(f"{argument} must be a floating tensor, got dtype {value.dtype}")
    return value


def as_operand(value, argument):
    """A Tensor (a NumPy array becomes one), or a Python/NumPy number as is; anything else
    is a TypeError. The operands of the tensor ops (:mod:`fastgrad.ops` and its siblings)."""
    if isinstance(value, _tensor.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return _tensor.Tensor(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return value
    raise TypeError(f"{argument} must be a Tensor or a number, got {type(value).__name__}")


def tensor_input(input):
    """The ``input`` of a tensor op as a Tensor (a NumPy array becomes one); a TypeError for a
    number or anything else."""
    input = as_operand(input, "input")
    if not isinstance(input, _tensor.Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    return input


def no_bool(input, name):
    """``input`` as a Tensor, refused (as PyTorch does) when it is a bool tensor."""
    input = tensor_input(input)
    if input.dtype.kind == "b":
        raise RuntimeError(f"{name}: input of dtype bool is not supported; convert it with "
                           ".long() or .float(), or use logical operations")
    return input


def tensor_list(tensors, argument):
    """``tensors`` (a Tensor or an iterable of Tensors) as a list, TypeError otherwise."""
    if isinstance(tensors, _tensor.Tensor):
        return [tensors]
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{argument} must be a Tensor or an iterable of Tensors, got "
                        f"{type(tensors).__name__}") from None
    if not all(map(isinstance, tensors, itertools.repeat(_tensor.Tensor))):  # one C loop
        for i, t in enumerate(tensors):
            if not isinstance(t, _tensor.Tensor):
                raise TypeError(f"{argument}[{i}] must be a Tensor, got {type(t).__name__}")
    return tensors


# ------------------------------------------------------------------------------------ numbers
def flag(value, argument):
    """``value`` as a bool; a TypeError unless it is one (``keepdim="no"`` is an error)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def real(value, argument, *, tensor=False):
    """``value`` as a float; a TypeError unless it is a real number (bools excluded) or, with
    ``tensor``, a one-element Tensor (the norms and bounds of gradient clipping, which PyTorch
    takes as tensors too)."""
    if tensor and isinstance(value, _tensor.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    return float(value)


def integer(value, argument):
    """``value`` (an int or a NumPy integer, not a bool) as an int, TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{argument} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def check_norm_type(norm_type):
    """``norm_type`` as a float: a real number, or a string such as ``"inf"`` (PyTorch takes
    both)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (numbers.Real, str)):
        raise TypeError(f"norm_type must be a real number or 'inf', got "
                        f"{type(norm_type).__name__} {norm_type!r}")
    try:
        norm_type = float(norm_type)
    except ValueError:
        raise ValueError(f"norm_type must be a real number or 'inf', got {norm_type!r}") from None
    if not norm_type > 0:
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type}")
    return norm_type


def check_reduction(reduction, allowed=REDUCTIONS):
    """``reduction``; a ValueError unless it is one of ``allowed``."""
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


# ------------------------------------------------------------------------ dims, shapes, dtypes
def normalize_dim(dim, ndim, argument="dim"):
    """``dim`` as a non-negative axis of an ``ndim``-dimensional tensor (IndexError if out);
    ``argument`` names it in errors."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{argument} must be an int, got {type(dim).__name__} {dim!r}")
    low, high = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not low <= dim <= high:
        raise IndexError(f"{argument} out of range (expected to be in range of [{low}, "
                         f"{high}], but got {dim})")
    return int(dim) % ndim if ndim else 0


def normalize_dims(dim, ndim):
    """``dim`` (None, an int or a sequence of ints) as a sorted tuple of axes, or None (all
    of them: also for an empty sequence, as PyTorch's ``sum(x, ())``)."""
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(sorted(normalize_dim(d, ndim) for d in dims))
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {dim} names a dimension more than once")
    return axes if ndim else None  # a 0-d tensor reduces over dim 0 or -1 as over all


def shape_argument(shape, argument="shape"):
    """A shape given as ints or as one tuple or list of them (``reshape(x, 2, 3)`` and
    ``reshape(x, (2, 3))``) as a tuple of ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(f"{argument} must be ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def check_broadcast(*shapes, names=("input", "other")):
    """The broadcast shape of ``shapes``; PyTorch's RuntimeError, naming the arguments, when
    they do not broadcast."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        described = ", ".join(f"{name} of shape {tuple(shape)}"
                              for name, shape in zip(names, shapes))
        raise RuntimeError(f"the shapes do not broadcast: {described}") from None


def check_dtype(dtype, default=None, floating=False):
    """``dtype`` (``default``, or the default float dtype, when None) checked to be one a
    Tensor holds: floating only where asked (the weights of a layer, samples of continuous
    distributions)."""
    if dtype is None:
        dtype = dtypes.default_float if default is None else default
    else:
        dtype = dtypes.resolve(dtype)
    if dtype.kind not in ("f" if floating else "biuf"):
        kinds = "a floating" if floating else "a bool, integer or floating"
        raise TypeError(f"dtype must be {kinds} dtype, got {dtype}")
    return dtype
