"""Dtypes and the promotion rules fastgrad shares with PyTorch.

fastgrad dtypes *are* NumPy dtypes. What differs from NumPy is promotion: Python floats default
to float32, a Python scalar never widens a tensor (a float32 tensor times 2.0 stays float32), and
an integer tensor meeting a float tensor takes the float tensor's dtype.

PyTorch's short names (``fastgrad.float``, ``fastgrad.long``, ``fastgrad.int``,
``fastgrad.bool``...) are defined at the end of this module: they shadow the builtins ``float``,
``int`` and ``bool``, so the code above them spells those ``builtins.float`` and so on.

Also here: :class:`Size`, the type of ``Tensor.shape``, and the memory formats ``to()`` and
``contiguous()`` accept.
"""
import builtins
import math
import operator

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

#: Dtype of tensors built from Python floats (PyTorch's default dtype); read at each call, so
#: :func:`set_default_dtype` changes it everywhere.
default_float = float32


def get_default_dtype():
    """The dtype of tensors made from Python floats and of new layers' weights (float32
    unless :func:`set_default_dtype` changed it)."""
    return default_float


def set_default_dtype(d):
    """Make ``d`` (float32 or float64) the dtype of tensors made from Python floats, of the
    floating creation functions without ``dtype=`` and of new layers' weights, as
    ``torch.set_default_dtype``.

    PyTorch also accepts float16 and bfloat16; fastgrad's layers compute in float32 or
    float64, so it takes those two.

    Raises:
        TypeError: ``d`` is not float32 or float64.
    """
    global default_float
    d = resolve(d, "d")
    if d not in (float32, float64):
        raise TypeError(f"only floating-point types are supported as the default type: "
                        f"float32 or float64, got {d}")
    default_float = d


def is_floating(dtype):
    """True for the floating-point dtypes, the only ones that can carry gradients."""
    return np.dtype(dtype).kind == "f"


def promote(a, b):
    """The result dtype of an elementwise op on two tensors of dtypes ``a`` and ``b``."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    a_float, b_float = a.kind == "f", b.kind == "f"
    if a_float != b_float:
        return a if a_float else b
    return np.promote_types(a, b)


def scalar_dtype(value, tensor_dtype):
    """The result dtype of an op between a tensor of ``tensor_dtype`` and a Python scalar."""
    tensor_dtype = np.dtype(tensor_dtype)
    if isinstance(value, builtins.bool):
        return tensor_dtype
    if isinstance(value, builtins.float) and tensor_dtype.kind in "biu":
        return default_float
    if isinstance(value, builtins.int) and tensor_dtype.kind == "b":
        return int64
    return tensor_dtype


def resolve(dtype, argument="dtype"):
    """``dtype`` as a NumPy dtype; a clear TypeError for anything that is not one."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{argument} must be a NumPy dtype such as fastgrad.float32, "
                        f"got {dtype!r}") from None


#: ``Tensor.type()``'s names, PyTorch's (``x.type() == "torch.FloatTensor"`` is how scripts
#: test a tensor's dtype, so the ``torch.`` prefix is kept; ``Tensor.type`` also accepts
#: ``"fastgrad.FloatTensor"``).
TYPE_NAMES = {float32: "FloatTensor", float64: "DoubleTensor", float16: "HalfTensor",
              int64: "LongTensor", int32: "IntTensor", int16: "ShortTensor", int8: "CharTensor",
              uint8: "ByteTensor", bool_: "BoolTensor", np.dtype(np.uint16): "UInt16Tensor",
              np.dtype(np.uint32): "UInt32Tensor", np.dtype(np.uint64): "UInt64Tensor"}


class Size(tuple):
    """A tensor's shape: a tuple of ints with PyTorch's ``numel()``, whose slices, sums and
    repeats stay Sizes.

    ``repr`` and ``str`` give ``fastgrad.Size([2, 3])``, as PyTorch's ``torch.Size([2, 3])``;
    inside an f-string or ``format()`` a Size prints as a tuple, ``(2, 3)``, the form every
    fastgrad message (and NumPy's) uses for shapes.

    Args:
        sizes: an iterable of ints (or of objects with ``__index__``, such as 0-d integer
            tensors).
    """

    __slots__ = ()

    def __new__(cls, sizes=()):
        values = []
        for position, size in enumerate(sizes):
            try:
                values.append(operator.index(size))
            except TypeError:
                raise TypeError(f"fastgrad.Size() takes an iterable of 'int' (item {position} "
                                f"is '{type(size).__name__}')") from None
        return tuple.__new__(cls, values)

    def numel(self):
        """The number of elements of a tensor of this shape."""
        return math.prod(self)

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return tuple.__new__(Size, item) if isinstance(index, slice) else item

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(other, self))

    def __mul__(self, count):
        product = tuple.__mul__(self, count)
        return product if product is NotImplemented else tuple.__new__(Size, product)

    __rmul__ = __mul__

    def __repr__(self):
        return f"fastgrad.Size({list(self)})"

    __str__ = __repr__

    def __format__(self, format_spec):
        return tuple.__repr__(self) if not format_spec else format(tuple(self), format_spec)

    def __reduce__(self):
        return Size, (tuple(self),)


class memory_format:
    """How a tensor's elements are laid out in memory, for ``to(memory_format=)`` and
    ``contiguous()``. fastgrad tensors are strided NumPy arrays: it has PyTorch's
    ``preserve_format`` (keep the layout) and ``contiguous_format`` (C order), not
    ``channels_last``."""

    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"fastgrad.{self._name}"

    def __reduce__(self):
        return self._name


preserve_format = memory_format("preserve_format")
contiguous_format = memory_format("contiguous_format")

#: The class of every dtype (``isinstance(fastgrad.float32, fastgrad.dtype)``): NumPy's.
dtype = np.dtype

# PyTorch's short dtype names; from here on ``float``, ``int`` and ``bool`` are dtypes.
float = float32
double = float64
half = float16
long = int64
int = int32
short = int16
bool = bool_
