"""RMSprop: gradients scaled by a running root mean square."""
from ..backends import K
from .optimizer import Optimizer, _check_nonnegative


class RMSprop(Optimizer):
    """RMSprop, PyTorch's semantics: optional centring, momentum, L2 weight decay.

    .. math::
        g_t = \\pm\\nabla_\\theta f(\\theta_{t-1}) + \\lambda\\theta_{t-1}, \\quad
        v_t = \\alpha v_{t-1} + (1 - \\alpha) g_t^2, \\quad
        \\bar g_t = \\alpha \\bar g_{t-1} + (1 - \\alpha) g_t \\;\\text{(centred)}

        d_t = \\sqrt{v_t - \\bar g_t^2 \\;\\text{(centred) or}\\; v_t} + \\epsilon, \\quad
        b_t = \\mu b_{t-1} + g_t / d_t, \\quad
        \\theta_t = \\theta_{t-1} - \\gamma\\,(b_t \\text{ if } \\mu > 0
        \\text{ else } g_t / d_t)

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\\gamma`.
        alpha: smoothing constant :math:`\\alpha` of the running averages.
        eps: :math:`\\epsilon`, added to the denominator for stability.
        weight_decay: L2 penalty :math:`\\lambda`.
        momentum: momentum factor :math:`\\mu`.
        centered: normalise by an estimate of the gradient's variance instead of its raw
            second moment.
        maximize: ascend the objective instead of descending it.

    State per parameter, PyTorch's names: ``step`` (a Python float; the update does not use
    it), ``square_avg``, ``momentum_buffer`` when ``momentum > 0`` and ``grad_avg`` when
    centred. Each step is one ``rmsprop_step`` kernel call per arena (per parameter only when
    some parameters of the arena have no gradient).

    References: Hinton, "Neural Networks for Machine Learning", lecture 6e, 2012; Graves,
    "Generating Sequences With Recurrent Neural Networks", 2013 (the centred form).
    """

    arena_state = ("square_avg", "momentum_buffer", "grad_avg")
    scalar_state = ("step",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize))

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        _check_nonnegative(group, "eps", "epsilon")
        _check_nonnegative(group, "momentum")
        _check_nonnegative(group, "weight_decay")
        _check_nonnegative(group, "alpha")

    def _step_arena(self, group, arena):
        momentum, centered = group["momentum"], group["centered"]
        names = ["square_avg"] + ["momentum_buffer"] * bool(momentum > 0) \
            + ["grad_avg"] * bool(centered)
        buffers = {name: arena.state_buffer(name) for name in names}
        momentum_buffer = buffers.get("momentum_buffer")
        grad_avg = buffers.get("grad_avg")

        def update(section, step):
            K.rmsprop_step(arena.data[section], arena.grad[section],
                           buffers["square_avg"][section],
                           None if grad_avg is None else grad_avg[section],
                           None if momentum_buffer is None else momentum_buffer[section],
                           lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                           weight_decay=group["weight_decay"], momentum=momentum,
                           maximize=group["maximize"])

        self._counted_step(arena, dict.fromkeys(names, 0.0), step_dependent=False, update=update)
