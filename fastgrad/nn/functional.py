"""Neural-network functions (``import fastgrad.nn.functional as F``), PyTorch's names.

The fused ones run through the kernel registry: :func:`linear` is one ``linear_fwd`` (GEMM,
bias and activation) and one ``linear_bwd``; :func:`cross_entropy` is log-softmax and NLL in
one ``cross_entropy_fwd`` pass per row.
"""
import numpy as np

from .. import dtypes
from .. import ops
from ..autograd import Function
from ..backends import ACTIVATIONS, K
from ..tensor import Tensor

relu = ops.relu
sigmoid = ops.sigmoid
tanh = ops.tanh
softmax = ops.softmax
log_softmax = ops.log_softmax

_REDUCTIONS = ("none", "mean", "sum")


def _check_tensor(value, argument):
    if not isinstance(value, Tensor):
        raise TypeError(f"{argument} must be a Tensor, got {type(value).__name__}")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class _Linear(Function):
    def forward(self, x, weight, bias, activation):
        self.x_shape = x.shape
        x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        weight = np.ascontiguousarray(weight)
        out = np.empty((x2.shape[0], weight.shape[0]), x.dtype)
        K.linear_fwd(x2, weight, bias, activation, out)
        self.x2, self.weight, self.out, self.activation = x2, weight, out, activation
        self.has_bias = bias is not None
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        needs_x, needs_w, needs_b = self.needs_input_grad[:3]
        x2, weight = self.x2, self.weight
        grad_x = np.empty_like(x2) if needs_x else None
        grad_w = np.empty_like(weight) if needs_w else None
        grad_b = np.empty(weight.shape[0], weight.dtype) if needs_b and self.has_bias else None
        grad2 = np.ascontiguousarray(grad.reshape(self.out.shape))
        K.linear_bwd(grad2, x2, weight, self.out, self.activation, grad_x, grad_w, grad_b)
        return (grad_x.reshape(self.x_shape) if needs_x else None), grad_w, grad_b, None


def linear(input, weight, bias=None, activation="none"):
    """``activation(input @ weight.T + bias)``, fused in one kernel.

    ``activation`` (``"none"``, ``"relu"``, ``"sigmoid"``, ``"tanh"``) is fastgrad's addition
    to PyTorch's signature: the activation is applied in the GEMM's epilogue, and its
    derivative in the backward kernel, instead of as separate passes.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,);
        output (*, out_features).
    """
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear: input of shape {input.shape} cannot be multiplied with "
                           f"weight of shape {weight.shape} (expected input shape "
                           f"(*, {weight.shape[1]}))")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"linear: input and weight must have the same dtype, got input "
                           f"{input.dtype} and weight {weight.dtype}")
    if bias is not None:
        _check_tensor(bias, "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {bias.shape}")
        if bias.dtype != weight.dtype:
            raise RuntimeError(f"linear: bias and weight must have the same dtype, got bias "
                               f"{bias.dtype} and weight {weight.dtype}")
    return _Linear.apply(input, weight, bias, ACTIVATIONS[activation])


class _CrossEntropy(Function):
    def forward(self, logits, target, ignore_index):
        logits = np.ascontiguousarray(logits)
        n = logits.shape[0]
        loss, lse = np.empty(n, logits.dtype), np.empty(n, logits.dtype)
        K.cross_entropy_fwd(logits, target, ignore_index, loss, lse)
        self.logits, self.target, self.lse, self.ignore_index = logits, target, lse, ignore_index
        return loss

    def backward(self, grad_loss):
        grad_logits = np.empty_like(self.logits)
        K.cross_entropy_bwd(self.logits, self.target, self.lse, self.ignore_index,
                            np.ascontiguousarray(grad_loss), grad_logits)
        return grad_logits, None, None


def _reduce(loss, reduction, count=None):
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / (loss.numel() if count is None else count)


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """Cross-entropy between logits and targets: log-softmax and negative log-likelihood fused.

    ``target`` holds class indices (int64, shape ``(N,)`` or ``(N, d1, ...)``, or ``()`` for
    an unbatched ``(C,)`` input) or class probabilities (float, the shape of ``input``). With
    indices, ``reduction="mean"`` averages over the targets that are not ``ignore_index``.

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target as above.
    """
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    if not dtypes.is_floating(input.dtype):
        raise TypeError(f"cross_entropy input must hold floating logits, got dtype {input.dtype}")
    if input.ndim == 0:
        raise ValueError("cross_entropy input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    if dtypes.is_floating(target.dtype):
        if target.shape != input.shape:
            raise RuntimeError(
                f"cross_entropy expects int64 class indices of shape "
                f"{input.shape[:class_dim] + input.shape[class_dim + 1:]} or float class "
                f"probabilities of shape {input.shape}; got a {target.dtype} target of shape "
                f"{target.shape}")
        loss = -(target * ops.log_softmax(input, class_dim)).sum(class_dim)
        return _reduce(loss, reduction)
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"cross_entropy target must hold int64 class indices, got dtype "
                           f"{target.dtype}")
    expected = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.shape != expected:
        raise ValueError(f"cross_entropy target must have shape {expected} for input of shape "
                         f"{input.shape}, got {target.shape}")
    classes = input.shape[class_dim]
    labels = target._data.astype(np.int64).reshape(-1)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise IndexError(f"target {labels[np.argmax(bad)]} is out of bounds for {classes} "
                         "classes")
    logits = ops.permute(input, *([d for d in range(input.ndim) if d != class_dim]
                                  + [class_dim])) if input.ndim > 2 else input
    per_row = _CrossEntropy.apply(logits.reshape(-1, classes), labels, int(ignore_index))
    per_row = per_row.reshape(expected)
    kept = int((labels != ignore_index).sum())
    return _reduce(per_row, reduction, count=kept)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error; ``input`` and ``target`` must have the same shape."""
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss input and target must have the same shape, got "
                         f"{input.shape} and {target.shape}")
    difference = input - target
    return _reduce(difference * difference, reduction)
