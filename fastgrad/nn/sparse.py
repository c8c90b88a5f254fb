"""The embedding layer: a lookup table of learned vectors."""
import numbers

import numpy as np

from .. import autograd
from .._checks import check_dtype, check_floating
from . import functional as F
from . import init
from .module import Module, Parameter


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by integer
    indices (see :func:`fastgrad.nn.functional.embedding`); PyTorch's layout, state_dict key
    ``weight`` and initialisation.

    Args:
        num_embeddings: V, the size of the table.
        embedding_dim: D, the size of each vector.
        padding_idx: a row (negative counts from the end) initialised to zeros that receives
            no gradient, so it stays the padding vector.
        max_norm: rescale each looked-up row whose ``norm_type``-norm exceeds it, in place.
        norm_type: the p of that norm.
        scale_grad_by_freq: scale gradients by the inverse frequency of the indices in the
            batch.
        sparse: PyTorch's sparse gradients; not supported (fastgrad's gradients are dense),
            so True raises at forward.
        dtype: weight dtype (float32 by default).

    ``weight`` starts as N(0, 1) draws from fastgrad's seeded generator, the padding row 0.

    Shape:
        input (*) int32 or int64; output (*, embedding_dim).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, dtype=None):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = F._padding_index(padding_idx, self.num_embeddings)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            dtype = check_dtype(dtype, floating=True)
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            check_floating(_weight, "_weight")
            if _weight.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Shape of weight does not match num_embeddings and "
                                 f"embedding_dim: got {_weight.shape}, expected "
                                 f"{(self.num_embeddings, self.embedding_dim)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self):
        """N(0, 1) weights, the padding row zeros."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with autograd.no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            text += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            text += ", sparse=True"
        return text

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (a 2-D tensor, its memory shared), not
        trained when ``freeze`` (the default). The padding row keeps its values.

        Raises:
            ValueError: ``embeddings`` that is not 2-D (PyTorch asserts it).
        """
        check_floating(embeddings, "embeddings")
        if embeddings.ndim != 2:
            raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got shape "
                             f"{embeddings.shape}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings,
                   _freeze=freeze)
