"""Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm."""
from ..backends import K
from .optimizer import Optimizer, _check_adam_family


class Adamax(Optimizer):
    """Adamax, PyTorch's semantics, with L2 weight decay.

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}, \\quad
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t, \\quad
        u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon)

        \\theta_t = \\theta_{t-1} - \\frac{\\gamma}{1 - \\beta_1^t} \\frac{m_t}{u_t}

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        betas: :math:`(\\beta_1, \\beta_2)`, the decay rates of the first moment and of the
            infinity norm, each in [0, 1).
        eps: :math:`\\epsilon`, added to :math:`|g_t|` so that :math:`u_t` is never zero.
        weight_decay: L2 penalty :math:`\\lambda`.
        maximize: ascend the objective instead of descending it.

    State per parameter, PyTorch's names: ``step`` (a Python float, the number of steps this
    parameter has taken; PyTorch keeps the same number in a float32 0-d tensor), ``exp_avg``
    and ``exp_inf`` (:math:`u`), created at a parameter's first gradient. Each step is one
    ``adamax_step`` kernel call per arena; when parameters of one arena have taken different
    numbers of steps (some had no gradient), each is stepped alone with its own bias
    correction.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    section 7.
    """

    arena_state = ("exp_avg", "exp_inf")
    scalar_state = ("step",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_adam_family(group)

    def _step_arena(self, group, arena):
        beta1, beta2 = group["betas"]
        exp_avg, exp_inf = arena.state_buffer("exp_avg"), arena.state_buffer("exp_inf")

        def update(section, step):
            K.adamax_step(arena.data[section], arena.grad[section], exp_avg[section],
                          exp_inf[section], step=step, lr=group["lr"], beta1=beta1,
                          beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                          maximize=group["maximize"])

        self._counted_step(arena, dict.fromkeys(self.arena_state, 0.0), step_dependent=True,
                           update=update)
