"""Dtypes and the promotion rules fastgrad shares with PyTorch.

fastgrad dtypes *are* NumPy dtypes. What differs from NumPy is promotion: Python floats default
to float32, a Python scalar never widens a tensor (a float32 tensor times 2.0 stays float32), and
an integer tensor meeting a float tensor takes the float tensor's dtype.
"""
import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

#: Dtype of tensors built from Python floats (PyTorch's default dtype).
default_float = float32


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
    if isinstance(value, bool):
        return tensor_dtype
    if isinstance(value, float) and tensor_dtype.kind in "biu":
        return default_float
    if isinstance(value, int) and tensor_dtype.kind == "b":
        return int64
    return tensor_dtype


def resolve(dtype, argument="dtype"):
    """``dtype`` as a NumPy dtype; a clear TypeError for anything that is not one."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{argument} must be a NumPy dtype such as fastgrad.float32, "
                        f"got {dtype!r}") from None
