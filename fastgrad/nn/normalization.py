"""Batch and layer normalisation layers."""
import math
import numbers

import numpy as np

from .._checks import check_dtype, check_tensor, real
from ..autograd import Function
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

    def forward(self, input, activation="none"):
        """Normalise ``input``; ``activation`` (fastgrad's addition, see
        :func:`fastgrad.nn.functional.batch_norm`) is applied to the output in the same pass,
        as :class:`~fastgrad.nn.Sequential` does for a BatchNorm followed by ReLU, Sigmoid or
        Tanh."""
        check_tensor(input, "input")
        self._check_input_dim(input)
        if not (self.affine or self.track_running_stats) and input.shape[1] != self.num_features:
            # no (C,) tensor for batch_norm to check the channels against: check them here
            raise RuntimeError(f"{type(self).__name__}: input of shape {input.shape} has "
                               f"{input.shape[1]} channels (dim 1), expected num_features="
                               f"{self.num_features}")
        # the registries read once (each attribute lookup through Module is a Python call: a
        # layer that runs every step should not pay for nine of them)
        buffers, params = self._buffers, self._parameters
        running_mean, running_var = buffers["running_mean"], buffers["running_var"]
        count = buffers["num_batches_tracked"]
        # PyTorch's rules: batch statistics in training or when there are no running ones;
        # the running ones are updated only in training with track_running_stats
        training = self.training
        use_batch_stats = training or (running_mean is None and running_var is None)
        updating = training and self.track_running_stats and count is not None
        momentum = self.momentum  # None: the cumulative average, counted by the op
        if momentum is None and not updating:
            momentum = 0.0
        tracked = not training or self.track_running_stats
        return F._batch_norm(input, running_mean if tracked else None,
                             running_var if tracked else None, params["weight"], params["bias"],
                             use_batch_stats, momentum, self.eps, count if updating else None,
                             activation)

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


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics cover the whole data-parallel batch: the
    mean and variance over every process's batch (PyTorch's ``torch.nn.SyncBatchNorm``).

    With :class:`~fastgrad.distributed.DistributedDataParallel` each process normalises its
    own batch; a plain :class:`BatchNorm1d`/:class:`BatchNorm2d` then uses per-process
    statistics (PyTorch's default too), which differ from one process's batch to the next
    and are noisy for small per-process batches. This layer all-gathers each process's count,
    mean and sum of squared deviations in training, combines them in rank order (Chan et
    al.'s pairwise update, in float64: the same statistics on every rank), and in the
    backward all-reduces the two per-channel sums the input gradient needs, so that the
    result is the gradient of batch normalisation over the concatenated batch. The running
    statistics get the global mean and unbiased variance. Evaluation mode, and a world of one
    process, are exactly :class:`BatchNorm1d`'s computation.

    Args:
        num_features, eps, momentum, affine, track_running_stats, dtype: as
            :class:`BatchNorm1d`.
        process_group: the :class:`~fastgrad.distributed.ProcessGroup` to synchronise over
            (None: the default group when it is initialised, else none).

    Shape:
        input (N, C, *): any rank from 2; output the same. Ranks may have different N.

    PyTorch's SyncBatchNorm runs on GPUs only; this one runs on the CPU, over MPI.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    def _group(self):
        """The group to synchronise over, or None for a world of one."""
        group = self.process_group
        if group is None:
            from .. import distributed
            group = distributed._world
        return group if group is not None and group.size() > 1 else None

    def forward(self, input):
        group = self._group() if self.training else None
        if group is None:
            return super().forward(input)
        check_tensor(input, "input")
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise RuntimeError(f"SyncBatchNorm: input of shape {input.shape} has "
                               f"{input.shape[1]} channels (dim 1), expected num_features="
                               f"{self.num_features}")
        for name in ("weight", "running_mean"):
            value = getattr(self, name)
            if value is not None and value.dtype != input.dtype:
                raise RuntimeError(f"SyncBatchNorm: {name} and input must have the same dtype, "
                                   f"got {name} {value.dtype} and input {input.dtype}")
        out, mean, var, count = _SyncBatchNormTraining.apply(input, self.weight, self.bias,
                                                             self.eps, group)
        if self.track_running_stats:
            seen = int(self.num_batches_tracked) + 1
            momentum = 1.0 / seen if self.momentum is None else self.momentum
            F._update_running_stats(self.running_mean, self.running_var, mean._data, var._data,
                                    momentum, int(count.item()))
            self.num_batches_tracked.fill_(seen)
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm layer in it replaced by a SyncBatchNorm that takes
        over its parameters, buffers and mode (``module`` itself when it is one).

        Args:
            module: a Module.
            process_group: the group for the new layers (None: the default group).
        """
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            # the new layer's own tensors are replaced by the old layer's just below
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            if module.affine:
                converted.weight, converted.bias = module.weight, module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(converted, name, getattr(module, name))
            converted.train(module.training)
            return converted
        for name, child in list(module.named_children()):
            replacement = cls.convert_sync_batchnorm(child, process_group)
            if replacement is not child:
                # in place in the registry, keeping the children's order (and a Sequential's
                # indices); setattr would move the child to the end
                module._modules[name] = replacement
        return module


class _SyncBatchNormTraining(Function):
    """Training-mode batch normalisation of (N, C, *) with statistics over every rank of
    ``group``. Extra outputs (no gradient flows back through them): the global mean, biased
    variance and value count per channel, for the running statistics."""

    def forward(self, x, weight, bias, eps, group):
        self.shape, channels = x.shape, x.shape[1]
        x3 = x.reshape(x.shape[0], channels, math.prod(x.shape[2:]))
        count = x3.shape[0] * x3.shape[2]
        local = np.zeros(1 + 2 * channels, np.float64)
        local[0] = count
        if count:
            mean = x3.mean(axis=(0, 2), dtype=np.float64)
            local[1:1 + channels] = mean
            # sum of squared deviations from the local mean: no E[x^2] - E[x]^2 cancellation
            local[1 + channels:] = np.square(x3 - mean[:, None]).sum(axis=(0, 2))
        total, mean, m2 = 0.0, np.zeros(channels), np.zeros(channels)
        for row in group.allgather(local):  # in rank order: the same sums on every rank
            rank_count, rank_mean, rank_m2 = row[0], row[1:1 + channels], row[1 + channels:]
            if rank_count == 0:
                continue
            merged = total + rank_count
            delta = rank_mean - mean
            mean = mean + delta * (rank_count / merged)
            m2 = m2 + rank_m2 + delta * delta * (total * rank_count / merged)
            total = merged
        if total <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"{int(total)} over all ranks (input size {x.shape} here)")
        var = m2 / total
        invstd = 1.0 / np.sqrt(var + eps)
        xhat = (x3 - mean[:, None]) * invstd[:, None]
        out = xhat * (1.0 if weight is None else weight[:, None]) \
            + (0.0 if bias is None else bias[:, None])
        self.xhat, self.invstd, self.weight, self.total, self.group = \
            xhat, invstd, weight, total, group
        return (out.astype(x.dtype).reshape(self.shape), mean, var,
                np.array(total, np.float64))

    def backward(self, grad_out, grad_mean, grad_var, grad_count):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        xhat, channels = self.xhat, self.xhat.shape[1]
        dy = grad_out.reshape(xhat.shape)
        sums = np.empty(2 * channels, np.float64)
        sums[:channels] = dy.sum(axis=(0, 2), dtype=np.float64)
        sums[channels:] = (dy * xhat).sum(axis=(0, 2))
        dtype = grad_out.dtype
        grad_weight = sums[channels:].astype(dtype) if needs_weight else None
        grad_bias = sums[:channels].astype(dtype) if needs_bias else None
        # the input gradient needs both sums over the whole batch: every rank reduces them
        self.group.allreduce(sums)
        grad_x = None
        if needs_x:
            scale = self.invstd * (1.0 if self.weight is None else self.weight)
            grad_x = (dy - (sums[:channels] / self.total)[:, None]
                      - xhat * (sums[channels:] / self.total)[:, None]) * scale[:, None]
            grad_x = grad_x.astype(dtype).reshape(self.shape)
        return grad_x, grad_weight, grad_bias, None, None


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
