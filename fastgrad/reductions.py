"""Reductions beyond ``sum``/``mean``/``max`` of :mod:`fastgrad.ops` (PyTorch's names:
``norm``, ``std``, ``var``, ``min``, ``prod``, ``cumsum``, ``logsumexp``, ``any``, ``all``...).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them.
"""

__all__ = []

#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {}
