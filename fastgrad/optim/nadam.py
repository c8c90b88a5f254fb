"""NAdam: Adam with Nesterov momentum."""
from .. import dtypes
from ..backends import K
from ..backends.numpy_ref import nadam_momentum
from .optimizer import Optimizer, _check_adam_family, _check_nonnegative


def _times(mu_product, mu):
    """``mu_product * mu`` as PyTorch's ``mu_product *= mu`` computes it: in a 0-d tensor of
    the default dtype (float32), rounded at every step. The same rounding keeps the state, and
    the steps that use it, equal to PyTorch's, also after loading its state_dict."""
    kind = dtypes.default_float.type
    return float(kind(mu_product) * kind(mu))


class NAdam(Optimizer):
    """NAdam, PyTorch's semantics: Adam whose first moment takes a Nesterov look-ahead, with a
    momentum coefficient :math:`\\mu_t` that warms up over the first steps; weight decay as an
    L2 term in the gradient or, with ``decoupled_weight_decay``, decoupled (NAdamW).

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}
        \\;\\text{(L2)} \\quad\\text{or}\\quad
        \\theta_{t-1} \\leftarrow (1 - \\gamma\\lambda)\\,\\theta_{t-1} \\;\\text{(decoupled)}

        \\mu_t = \\beta_1 (1 - \\tfrac12 0.96^{t\\psi}), \\quad
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t, \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g_t^2, \\quad
        d_t = \\sqrt{v_t / (1 - \\beta_2^t)} + \\epsilon

        \\theta_t = \\theta_{t-1}
        - \\frac{\\gamma (1 - \\mu_t)}{1 - \\prod_{i \\le t} \\mu_i} \\frac{g_t}{d_t}
        - \\frac{\\gamma \\mu_{t+1}}{1 - \\prod_{i \\le t+1} \\mu_i} \\frac{m_t}{d_t}

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        betas: :math:`(\\beta_1, \\beta_2)`, the decay rates of the first and second moment
            estimates, each in [0, 1).
        eps: :math:`\\epsilon`, added to the denominator for stability.
        weight_decay: :math:`\\lambda`.
        momentum_decay: :math:`\\psi`, how fast :math:`\\mu_t` rises towards :math:`\\beta_1`.
        decoupled_weight_decay: decay the parameters directly (as AdamW does) instead of
            adding :math:`\\lambda\\theta` to the gradient.
        maximize: ascend the objective instead of descending it.

    State per parameter, PyTorch's names, created at a parameter's first gradient: ``step``
    (a Python float; PyTorch keeps the same number in a float32 0-d tensor), ``mu_product``
    (:math:`\\prod_{i \\le t} \\mu_i`, a Python float rounded to float32 at every step as
    PyTorch's float32 0-d tensor is), ``exp_avg`` and ``exp_avg_sq``. Each step is one
    ``nadam_step`` kernel call per arena; parameters of one arena whose step counts or
    products differ (some had no gradient) are stepped one by one.

    References: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    arena_state = ("exp_avg", "exp_avg_sq")
    scalar_state = ("step", "mu_product")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_adam_family(group)
        _check_nonnegative(group, "momentum_decay")

    def _step_arena(self, group, arena):
        """The step of every parameter with a gradient: one kernel call over the arena when
        all have one and agree on ``step`` and ``mu_product``, else one per parameter
        (parameters without a gradient keep their state, as in PyTorch)."""
        indices = [i for i, p in enumerate(arena.params) if p._grad is not None]
        if not indices:
            return
        states = [self.state[arena.params[i]] for i in indices]
        for state in states:
            state.setdefault("step", 0.0)
            state.setdefault("mu_product", 1.0)
        for name in self.arena_state:
            self._fill_state(arena, indices, name)
        beta1, beta2 = group["betas"]
        steps = [state["step"] + 1.0 for state in states]
        products = [_times(state["mu_product"],
                           nadam_momentum(step, beta1, group["momentum_decay"]))
                    for state, step in zip(states, steps)]
        exp_avg, exp_avg_sq = arena.state_buffer("exp_avg"), arena.state_buffer("exp_avg_sq")

        def update(section, step, mu_product):
            K.nadam_step(arena.data[section], arena.grad[section], exp_avg[section],
                         exp_avg_sq[section], step=step, mu_product=mu_product, lr=group["lr"],
                         beta1=beta1, beta2=beta2, eps=group["eps"],
                         weight_decay=group["weight_decay"],
                         momentum_decay=group["momentum_decay"],
                         decoupled_weight_decay=group["decoupled_weight_decay"],
                         maximize=group["maximize"])

        if len(indices) == len(arena.params) and len(set(zip(steps, products))) == 1:
            update(slice(None), steps[0], products[0])
        else:
            for i, step, product in zip(indices, steps, products):
                update(slice(arena.offsets[i], arena.offsets[i + 1]), step, product)
        for state, step, product in zip(states, steps, products):
            state["step"], state["mu_product"] = step, product
