"""Shape and selection operations beyond ``reshape``/``permute``/``cat`` of
:mod:`fastgrad.ops` (PyTorch's names: ``chunk``, ``split``, ``expand``, ``repeat``,
``gather``, ``masked_fill``, ``flip``, ``tril``, ``einsum``, ``pad``...).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them.
"""

__all__ = []

#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {}
