"""Adadelta: step sizes from running averages of squared gradients and squared updates."""
import numbers

from ..backends import K
from .optimizer import Optimizer, _check_nonnegative


class Adadelta(Optimizer):
    """Adadelta, PyTorch's semantics, with L2 weight decay.

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}, \\quad
        v_t = \\rho v_{t-1} + (1 - \\rho) g_t^2, \\quad
        \\Delta_t = \\frac{\\sqrt{u_{t-1} + \\epsilon}}{\\sqrt{v_t + \\epsilon}}\\, g_t

        u_t = \\rho u_{t-1} + (1 - \\rho) \\Delta_t^2, \\quad
        \\theta_t = \\theta_{t-1} - \\gamma \\Delta_t

    Args:
        params: parameters or parameter groups.
        lr: :math:`\\gamma`, the factor applied to each update :math:`\\Delta_t` (the method
            needs no learning rate; 1.0 takes its update as it is).
        rho: :math:`\\rho` in [0, 1], the decay of both running averages.
        eps: :math:`\\epsilon`, added inside both square roots; it also sets the size of the
            first updates, while :math:`u` is still near zero.
        weight_decay: L2 penalty :math:`\\lambda`.
        maximize: ascend the objective instead of descending it.

    State per parameter, PyTorch's names: ``step`` (a Python float; the update does not use
    it), ``square_avg`` (:math:`v`) and ``acc_delta`` (:math:`u`), created at a parameter's
    first gradient. Each step is one ``adadelta_step`` kernel call per arena (per parameter
    only when some parameters of the arena have no gradient).

    References: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """

    arena_state = ("square_avg", "acc_delta")
    scalar_state = ("step",)

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        rho = group["rho"]
        if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
            raise TypeError(f"rho must be a real number, got {rho!r}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_nonnegative(group, "eps", "epsilon")
        _check_nonnegative(group, "weight_decay")

    def _step_arena(self, group, arena):
        square_avg = arena.state_buffer("square_avg")
        acc_delta = arena.state_buffer("acc_delta")

        def update(section, step):
            K.adadelta_step(arena.data[section], arena.grad[section], square_avg[section],
                            acc_delta[section], lr=group["lr"], rho=group["rho"],
                            eps=group["eps"], weight_decay=group["weight_decay"],
                            maximize=group["maximize"])

        self._counted_step(arena, dict.fromkeys(self.arena_state, 0.0), step_dependent=False,
                           update=update)
