"""Elementwise math, comparisons and bitwise operations beyond the core arithmetic in
:mod:`fastgrad.ops` (PyTorch's names: ``sin``, ``maximum``, ``eq``, ``logical_and``...).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them, so the method table lives beside the functions.
"""

__all__ = []

#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {}
