"""Batch and layer normalisation layers."""
import numbers

import numpy as np

from .._checks import check_dtype, check_tensor, real
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter


class _BatchNorm(Module):
    """The body of :class:`BatchNorm1d` and :class:`BatchNorm2d`, which only check the rank.

    Training mode normalises with the batch's statistics (per channel, over every dimension
    but 1) and updates the running ones; evaluation mode normalises with the running ones.
    With ``track_running_stats=False`` there are no running statistics and both modes use the
    batch's. See :func:`fastgrad.nn.functional.batch_norm` for the formulas.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance before the square root.
        momentum: weight of the batch statistics in the running update; None for the
            cumulative average over all batches so far (using ``num_batches_tracked``).
        affine: learn a per-channel scale ``weight`` (ones) and shift ``bias`` (zeros).
        track_running_stats: keep ``running_mean`` (zeros), ``running_var`` (ones) and
            ``num_batches_tracked`` (int64, 0-d) as buffers, under PyTorch's state_dict keys.
        dtype: parameter and buffer dtype (float32 by default).

    References: Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training
    by Reducing Internal Covariate Shift", ICML 2015.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=None):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) \
                or num_features <= 0:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        eps = real(eps, "eps")
        if not eps >= 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        if momentum is not None:
            momentum = real(momentum, "momentum")
            if not 0 <= momentum <= 1:
                raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        dtype = check_dtype(dtype, floating=True)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.empty(self.num_features, dtype))
            self.bias = Parameter(np.empty(self.num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batch seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        """Reset the running statistics, and weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input):
        raise NotImplementedError(f"{type(self).__name__} must implement _check_input_dim()")

    def forward(self, input):
        check_tensor(input, "input")
        self._check_input_dim(input)
        if not (self.affine or self.track_running_stats) and input.shape[1] != self.num_features:
            # no (C,) tensor for batch_norm to check the channels against: check them here
            raise RuntimeError(f"{type(self).__name__}: input of shape {input.shape} has "
                               f"{input.shape[1]} channels (dim 1), expected num_features="
                               f"{self.num_features}")
        # PyTorch's rules: batch statistics in training or when there are no running ones;
        # the running ones are updated only in training with track_running_stats
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        updating = self.training and self.track_running_stats \
            and self.num_batches_tracked is not None
        momentum = 0.0 if self.momentum is None else self.momentum
        if updating:
            seen = int(self.num_batches_tracked) + 1
            if self.momentum is None:
                momentum = 1.0 / seen  # the cumulative average of the batch statistics
        tracked = not self.training or self.track_running_stats
        out = F.batch_norm(input, self.running_mean if tracked else None,
                           self.running_var if tracked else None, self.weight, self.bias,
                           use_batch_stats, momentum, self.eps)
        if updating:  # counted once the batch passed every check
            self.num_batches_tracked.fill_(seen)
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, statistics per channel C over N (and
    L). See :class:`_BatchNorm` for the arguments.

    Shape:
        input (N, C) or (N, C, L); output the same.
    """

    def _check_input_dim(self, input):
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, statistics per channel C over N, H and W.
    See :class:`_BatchNorm` for the arguments.

    Shape:
        input (N, C, H, W); output the same.
    """

    def _check_input_dim(self, input):
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")


class LayerNorm(Module):
    """Layer normalisation: each sample normalised over its trailing ``normalized_shape``
    dimensions, statistics in float64 (see :func:`fastgrad.nn.functional.layer_norm`). The
    same in training and evaluation mode: no running statistics.

    Args:
        normalized_shape: the trailing shape to normalise over (an int for the last dimension).
        eps: added to the variance before the square root.
        elementwise_affine: learn an elementwise scale ``weight`` (ones) and, with ``bias``,
            shift ``bias`` (zeros), both of shape ``normalized_shape``.
        bias: learn the shift (with ``elementwise_affine``).
        dtype: parameter dtype (float32 by default).

    Shape:
        input (*, normalized_shape); output the same.

    References: Ba, Kiros and Hinton, "Layer Normalization", 2016.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=None):
        super().__init__()
        self.normalized_shape = F._normalized_shape(normalized_shape)
        self.eps = real(eps, "eps")
        dtype = check_dtype(dtype, floating=True)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.empty(self.normalized_shape, dtype))
            if bias:
                self.bias = Parameter(np.empty(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Weight 1 and bias 0."""
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.elementwise_affine}, bias={self.bias is not None}")
