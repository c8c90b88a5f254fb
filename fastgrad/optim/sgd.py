"""Stochastic gradient descent with momentum."""
import math
import numbers

from ..backends import K
from .optimizer import Optimizer, _check_nonnegative


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum; PyTorch's semantics.

    .. math::
        g_t = \\nabla_\\theta f(\\theta_{t-1}) + \\lambda \\theta_{t-1}, \\quad
        b_t = \\mu b_{t-1} + (1 - \\tau) g_t \\;(b_1 = g_1), \\quad
        \\theta_t = \\theta_{t-1} - \\gamma\\,(g_t + \\mu b_t \\text{ if nesterov else } b_t)

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        momentum: momentum factor :math:`\\mu`.
        dampening: dampening :math:`\\tau` of the momentum.
        weight_decay: L2 penalty :math:`\\lambda`.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend the objective instead of descending it.

    Each step is one ``sgd_step`` kernel call over each arena of parameters.

    References: Sutskever et al., "On the importance of initialization and momentum in deep
    learning", ICML 2013.
    """

    arena_state = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_nonnegative(group, "momentum")
        _check_nonnegative(group, "weight_decay")
        dampening = group["dampening"]
        if isinstance(dampening, bool) or not isinstance(dampening, numbers.Real):
            raise TypeError(f"dampening must be a real number, got {dampening!r}")
        if not math.isfinite(dampening):
            raise ValueError(f"Invalid dampening value: {dampening}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _step_arena(self, group, arena):
        momentum = group["momentum"]
        options = dict(lr=group["lr"], momentum=momentum, dampening=group["dampening"],
                       weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                       maximize=group["maximize"])
        params = arena.params
        if momentum == 0:  # no state: one pass over the arena, or over each gradient
            buffer, fresh = None, ()
        else:
            buffer, state = arena.state_buffer("momentum_buffer"), self.state
            fresh = [i for i, p in enumerate(params)
                     if "momentum_buffer" not in state.get(p, ())]
        if arena.all_grads() and len(fresh) in (0, len(params)):
            K.sgd_step(arena.data, arena.grad, buffer, first_step=bool(fresh), **options)
        else:
            # some parameters have no gradient (or no momentum yet): step the others one by one
            for i, p in enumerate(params):
                if p._grad is not None:
                    start, stop = arena.offsets[i], arena.offsets[i + 1]
                    K.sgd_step(arena.data[start:stop], arena.grad[start:stop],
                               None if buffer is None else buffer[start:stop],
                               first_step=i in fresh, **options)
        for i in fresh:
            if params[i]._grad is not None:
                self._init_state(arena, i, "momentum_buffer")
