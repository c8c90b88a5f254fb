"""Adam and AdamW: one optimiser, two ways to decay the weights."""
from ..backends import K
from .optimizer import Optimizer, _check_adam_family


class Adam(Optimizer):
    """Adam, PyTorch's semantics: bias-corrected moment estimates, optional AMSGrad, weight
    decay as an L2 term in the gradient or, with ``decoupled_weight_decay``, AdamW's decay.

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}
        \\;\\text{(L2)} \\quad\\text{or}\\quad
        \\theta_{t-1} \\leftarrow (1 - \\gamma\\lambda)\\,\\theta_{t-1} \\;\\text{(decoupled)}

        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t, \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g_t^2, \\quad
        \\hat v_t = \\max(\\hat v_{t-1}, v_t) \\;\\text{(AMSGrad) else}\\; v_t

        \\theta_t = \\theta_{t-1} - \\frac{\\gamma}{1 - \\beta_1^t}\\,
        \\frac{m_t}{\\sqrt{\\hat v_t} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        betas: :math:`(\\beta_1, \\beta_2)`, the decay rates of the first and second moment
            estimates, each in [0, 1).
        eps: :math:`\\epsilon`, added to the denominator for stability.
        weight_decay: :math:`\\lambda`.
        amsgrad: normalise by the largest second moment seen so far (AMSGrad).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: decay the parameters directly (AdamW) instead of adding
            :math:`\\lambda\\theta` to the gradient.

    State per parameter, PyTorch's names: ``step`` (a Python float, the number of steps this
    parameter has taken; PyTorch keeps the same number in a float32 0-d tensor), ``exp_avg``,
    ``exp_avg_sq`` and, with AMSGrad, ``max_exp_avg_sq`` (views of the arena's buffers).
    Each step is one ``adam_step`` kernel call per arena; when parameters of one arena have
    taken different numbers of steps (some had no gradient), each is stepped alone with its
    own bias correction.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015; Reddi
    et al., "On the Convergence of Adam and Beyond", ICLR 2018; Loshchilov & Hutter,
    "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    arena_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    scalar_state = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_adam_family(group)

    def _step_arena(self, group, arena):
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        initial = dict.fromkeys(self.arena_state if amsgrad else self.arena_state[:2], 0.0)
        exp_avg, exp_avg_sq = arena.state_buffer("exp_avg"), arena.state_buffer("exp_avg_sq")
        max_exp_avg_sq = arena.state_buffer("max_exp_avg_sq") if amsgrad else None

        def update(section, step):
            K.adam_step(arena.data[section], arena.grad[section], exp_avg[section],
                        exp_avg_sq[section],
                        None if max_exp_avg_sq is None else max_exp_avg_sq[section],
                        step=step, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"],
                        decoupled_weight_decay=group["decoupled_weight_decay"],
                        maximize=group["maximize"])

        self._counted_step(arena, initial, step_dependent=True, update=update)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): :class:`Adam` with
    ``decoupled_weight_decay=True`` and PyTorch's AdamW default ``weight_decay=1e-2``.

    Each step first shrinks the parameters, :math:`\\theta \\leftarrow (1 - \\gamma\\lambda)
    \\theta`, then takes the Adam step on the raw gradient, so the decay is not rescaled by
    the adaptive denominator as an L2 term would be.

    References: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        """Restore a saved state; the decay stays decoupled whatever the saved groups say
        (as in PyTorch, where an Adam state loaded into AdamW stays AdamW)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
