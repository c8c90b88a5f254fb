"""Adagrad: per-element step sizes from the sum of squared gradients."""
from ..backends import K
from .optimizer import Optimizer, _check_nonnegative


class Adagrad(Optimizer):
    """Adagrad, PyTorch's semantics, with its learning-rate decay and L2 weight decay.

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}, \\quad
        \\tilde\\gamma_t = \\frac{\\gamma}{1 + (t - 1)\\eta}, \\quad
        s_t = s_{t-1} + g_t^2, \\quad
        \\theta_t = \\theta_{t-1} - \\tilde\\gamma_t \\frac{g_t}{\\sqrt{s_t} + \\epsilon},
        \\quad s_0 = \\text{initial\\_accumulator\\_value}

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        lr_decay: :math:`\\eta`, the decay of the learning rate with the step count.
        weight_decay: L2 penalty :math:`\\lambda`.
        initial_accumulator_value: the starting value :math:`s_0` of every sum.
        eps: :math:`\\epsilon`, added to the denominator for stability.
        maximize: ascend the objective instead of descending it.

    State per parameter, PyTorch's names: ``step`` (a Python float; PyTorch keeps the same
    number in a float32 0-d tensor) and ``sum``. As in PyTorch the state exists from
    construction (``step`` 0, ``sum`` at ``initial_accumulator_value``) for every parameter,
    including those of groups added later; each group starts its sums at its own
    ``initial_accumulator_value`` (PyTorch uses the constructor's value for every group).
    Each step is one ``adagrad_step`` kernel call per arena (per parameter only when some
    parameters have no gradient or, with ``lr_decay``, different step counts).

    References: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.
    """

    arena_state = ("sum",)
    scalar_state = ("step",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_nonnegative(group, "lr_decay")
        _check_nonnegative(group, "weight_decay")
        _check_nonnegative(group, "initial_accumulator_value")
        _check_nonnegative(group, "eps", "epsilon")

    def add_param_group(self, group):
        """Add a group of parameters, their state started as PyTorch's constructor does."""
        super().add_param_group(group)
        group = self.param_groups[-1]
        for arena in self._arenas[-1]:
            indices = range(len(arena.params))
            for i in indices:
                self.state[arena.params[i]]["step"] = 0.0
            self._fill_state(arena, indices, "sum", group["initial_accumulator_value"])

    def _step_arena(self, group, arena):
        state_sum = arena.state_buffer("sum")

        def update(section, step):
            K.adagrad_step(arena.data[section], arena.grad[section], state_sum[section],
                           step=step, lr=group["lr"], lr_decay=group["lr_decay"],
                           weight_decay=group["weight_decay"], eps=group["eps"],
                           maximize=group["maximize"])

        self._counted_step(arena, {"sum": group["initial_accumulator_value"]},
                           step_dependent=group["lr_decay"] != 0, update=update)
