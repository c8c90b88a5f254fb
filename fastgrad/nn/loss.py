"""Loss layers: thin Modules over :mod:`fastgrad.nn.functional`'s losses.

Each takes ``reduction``: ``"mean"`` (the default), ``"sum"`` or ``"none"`` (the per-element
losses). Input and target must have matching shapes: losses never broadcast silently.
"""
from . import functional as F
from .module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        F._check_reduction(reduction)
        self.reduction = reduction

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error between an input and a target of the same shape."""

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error between an input and a target of the same shape (see
    :func:`fastgrad.nn.functional.l1_loss`)."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, linear above (see :func:`fastgrad.nn.functional.huber_loss`).
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = F._real(delta, "delta")
        if not self.delta > 0:
            raise ValueError(f"huber_loss delta must be positive, got {self.delta}")

    def forward(self, input, target):
        return F.huber_loss(input, target, self.reduction, self.delta)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits against class indices or class probabilities, with optional
    label smoothing (see :func:`fastgrad.nn.functional.cross_entropy`). Arguments are
    keyword-only: PyTorch's first positional argument is a class ``weight``, which fastgrad
    does not take."""

    def __init__(self, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.ignore_index = F._check_ignore_index(ignore_index)
        self.label_smoothing = F._real(label_smoothing, "label_smoothing")
        if not 0 <= self.label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got "
                             f"{self.label_smoothing}")

    def forward(self, input, target):
        return F.cross_entropy(input, target, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of class-index targets under log-probabilities (see
    :func:`fastgrad.nn.functional.nll_loss`); keyword-only arguments, as
    :class:`CrossEntropyLoss`."""

    def __init__(self, *, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.ignore_index = F._check_ignore_index(ignore_index)

    def forward(self, input, target):
        return F.nll_loss(input, target, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (see
    :func:`fastgrad.nn.functional.binary_cross_entropy`); prefer :class:`BCEWithLogitsLoss`."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, the sigmoid folded in stably (see
    :func:`fastgrad.nn.functional.binary_cross_entropy_with_logits`).

    ``pos_weight`` (e.g. shape (C,), broadcast against the input) weighs the positive term; it
    is a buffer, in the state_dict under PyTorch's key ``pos_weight``.
    """

    def __init__(self, *, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        if pos_weight is not None:
            F._check_tensor(pos_weight, "pos_weight")
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
