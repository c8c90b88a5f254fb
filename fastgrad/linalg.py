"""``fastgrad.linalg``: the norms of ``torch.linalg`` (``vector_norm``, and ``norm`` for
vectors and for the matrix norms that need no decomposition).

The matrix 2-norm, -2-norm and nuclear norm need singular values, which fastgrad does not
compute: they raise a RuntimeError naming the order.
"""
import math
import numbers

import numpy as np

from ._checks import flag, normalize_dim, tensor_input
from .ops import squeeze, sum
from .reductions import amax, amin, norm_dtype, vector_norm

__all__ = ["norm", "vector_norm"]


def _matrix_norm(A, ord, dims, keepdim):
    """The matrix norm of order ``ord`` over the two dims ``dims`` (rows, columns)."""
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: the input must have at least 2 dimensions, "
                           f"got shape {tuple(A.shape)}")
    rows, cols = (normalize_dim(d, A.ndim) for d in dims)
    if rows == cols:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different, got {dims}")
    if ord == "fro":
        return vector_norm(A, 2, (rows, cols), keepdim)
    if ord in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of magnitudes; inf: the largest row sum (-: smallest)
        summed, over = (rows, cols) if abs(ord) == 1 else (cols, rows)
        pick = amax if ord > 0 else amin
        out = pick(sum(A.abs(), summed, keepdim=True), over, keepdim=True)
        return out if keepdim else squeeze(squeeze(out, max(rows, cols)), min(rows, cols))
    if ord in ("nuc", 2, -2):
        raise RuntimeError(f"linalg.matrix_norm: ord={ord!r} needs singular values, which "
                           "fastgrad does not compute")
    raise RuntimeError(f"linalg.matrix_norm: order {ord!r} is not supported")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """The vector or matrix norm of ``A``, as ``torch.linalg.norm``.

    With ``dim`` an int (or one dim) or with ``ord`` None and ``dim`` None, the vector norm
    (:func:`vector_norm`, default the 2-norm of all elements); with two dims, or ``ord`` given
    and a 2-D ``A``, the matrix norm of that order: ``'fro'``, 1, -1, inf or -inf.
    """
    A = tensor_input(A)
    keepdim = flag(keepdim, "keepdim")
    A = norm_dtype(A, dtype, "linalg.norm")
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim)
        if A.ndim not in (1, 2):
            raise RuntimeError(f"linalg.norm: with ord and no dim the input must be 1-D or "
                               f"2-D, got shape {tuple(A.shape)}")
        dim = tuple(range(A.ndim))
    if len(dim) == 1:
        if isinstance(ord, str):
            raise RuntimeError(f"linalg.norm: ord={ord!r} is a matrix norm and needs 2 dims, "
                               f"got dim={dim}")
        if ord is not None and not isinstance(ord, numbers.Real):
            raise TypeError(f"linalg.norm: ord must be a number or a string, got {ord!r}")
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim)
    if len(dim) != 2:
        raise RuntimeError(f"linalg.norm: dim must be an int or 2 dims, got {dim}")
    return _matrix_norm(A, "fro" if ord is None else ord, dim, keepdim)
