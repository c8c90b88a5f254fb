"""Loss layers: thin Modules over :mod:`fastgrad.nn.functional`'s losses, PyTorch's
signatures.

Each takes ``reduction``: ``"mean"`` (the default), ``"sum"`` or ``"none"`` (the per-element
losses); ``size_average`` and ``reduce`` are PyTorch's deprecated spelling of it (they
override it, with PyTorch's warning). Input and target must have matching shapes: losses
never broadcast silently. A class or element ``weight`` is a buffer, in the state_dict under
PyTorch's key ``weight``.
"""
from .._checks import REDUCTIONS, check_reduction, check_tensor, real
from . import functional as F
from .module import Module


class _Loss(Module):
    #: The reductions the loss takes.
    reductions = REDUCTIONS

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        reduction = F._legacy_reduction(size_average, reduce, reduction)
        self.reduction = check_reduction(reduction, self.reductions)

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if weight is not None:
            check_tensor(weight, "weight")
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error between an input and a target of the same shape."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error between an input and a target of the same shape (see
    :func:`fastgrad.nn.functional.l1_loss`)."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, linear above (see :func:`fastgrad.nn.functional.huber_loss`).
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = real(delta, "delta")
        if not self.delta > 0:
            raise ValueError(f"huber_loss delta must be positive, got {self.delta}")

    def forward(self, input, target):
        return F.huber_loss(input, target, self.reduction, self.delta)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta`` (divided by it), linear with slope 1 above (see
    :func:`fastgrad.nn.functional.smooth_l1_loss`)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = real(beta, "beta")
        if self.beta < 0:
            raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got "
                               f"{self.beta}")

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class KLDivLoss(_Loss):
    """The Kullback-Leibler divergence of the target from the input's log-probabilities (see
    :func:`fastgrad.nn.functional.kl_div`); ``reduction="batchmean"`` is the per-sample
    divergence."""

    reductions = REDUCTIONS + ("batchmean",)

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits against class indices or class probabilities, with optional
    class weights and label smoothing (see :func:`fastgrad.nn.functional.cross_entropy`)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = F._check_ignore_index(ignore_index)
        self.label_smoothing = real(label_smoothing, "label_smoothing")
        if not 0 <= self.label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got "
                             f"{self.label_smoothing}")

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class-index targets under log-probabilities, with optional
    class weights (see :func:`fastgrad.nn.functional.nll_loss`)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = F._check_ignore_index(ignore_index)

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities, with optional element weights (see
    :func:`fastgrad.nn.functional.binary_cross_entropy`); prefer :class:`BCEWithLogitsLoss`."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, the sigmoid folded in stably (see
    :func:`fastgrad.nn.functional.binary_cross_entropy_with_logits`).

    ``weight`` multiplies each element's loss and ``pos_weight`` (e.g. shape (C,), broadcast
    against the input) weighs the positive term; both are buffers, in the state_dict under
    PyTorch's keys ``weight`` and ``pos_weight``.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        for name, value in (("weight", weight), ("pos_weight", pos_weight)):
            if value is not None:
                check_tensor(value, name)
            self.register_buffer(name, value)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
