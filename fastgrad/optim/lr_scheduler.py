"""Learning-rate schedulers with PyTorch's exact sequences (``fastgrad.optim.lr_scheduler``).

Two layers, after optax and PyTorch. The schedule math is a set of pure ``step -> lr``
functions (:func:`cosine_annealing_schedule`, :func:`linear_schedule`, ...): each is the
closed form of one scheduler, usable on its own (to plot a schedule, or to drive a training
loop without an optimiser). The scheduler classes are thin wrappers that write
``group["lr"]`` of an optimiser's parameter groups at each :meth:`LRScheduler.step`.

Like PyTorch's, most schedulers are *chainable*: a step multiplies each group's current
learning rate by a factor instead of evaluating the closed form at the step count, so they
compose with other changes to the learning rate (another scheduler, a manual change). Without
such changes the two agree to rounding (a few ulps over thousands of steps); the classes keep
PyTorch's recursive forms so their sequences equal PyTorch's to the last bits, and use the
closed forms where PyTorch does (when :class:`SequentialLR` hands over to a scheduler at a
milestone). :class:`LambdaLR` and :class:`OneCycleLR` are closed forms in PyTorch too.

Call ``scheduler.step()`` after ``optimizer.step()``, once per epoch (or per batch for
:class:`OneCycleLR`); constructing a scheduler sets the learning rates of step 0.
"""
import copy
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter

from .._checks import real
from .optimizer import Optimizer

__all__ = [
    "LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR",
    "PolynomialLR", "CosineAnnealingLR", "SequentialLR", "OneCycleLR", "ReduceLROnPlateau",
    "step_schedule", "multistep_schedule", "exponential_schedule", "linear_schedule",
    "polynomial_schedule", "cosine_annealing_schedule", "one_cycle_schedule",
]


# ------------------------------------------------------------------------------ validation
def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _non_negative(name, value):
    """``value`` (a real number) checked to be >= 0; returned as given."""
    real(value, name)
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0.0, got {value}")
    return value


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def _per_group(name, optimizer, value):
    """``value`` repeated for each parameter group, or a list of one value per group."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(value)} values, param_groups has {groups}.")
        return list(value)
    return [value] * groups


def _check_linear_factors(start_factor, end_factor, total_iters):
    real(start_factor, "start_factor")
    real(end_factor, "end_factor")
    if start_factor > 1.0 or start_factor <= 0:
        raise ValueError("Starting multiplicative factor expected to be greater than 0 and less "
                         f"or equal to 1 (got start_factor={start_factor}).")
    if end_factor > 1.0 or end_factor < 0:
        raise ValueError("Ending multiplicative factor expected to be between 0 and 1 (got "
                         f"end_factor={end_factor}).")
    _integer("total_iters", total_iters, 1)


# ------------------------------------------------------------------------ pure schedules
def step_schedule(base_lr, step_size, gamma=0.1):
    """Step decay: ``base_lr * gamma ** (step // step_size)`` (:class:`StepLR`'s closed form).

    Returns:
        A function ``step -> lr``.
    """
    _integer("step_size", step_size, 1)
    _non_negative("gamma", gamma)

    def schedule(step):
        return base_lr * gamma ** (step // step_size)
    return schedule


def multistep_schedule(base_lr, milestones, gamma=0.1):
    """Decay by ``gamma`` at each milestone passed: ``base_lr * gamma ** (number of
    milestones <= step)`` (:class:`MultiStepLR`'s closed form; a repeated milestone counts
    each time).

    Returns:
        A function ``step -> lr``.
    """
    milestones = sorted(_integer(f"milestones[{i}]", m, 0) for i, m in enumerate(milestones))
    _non_negative("gamma", gamma)

    def schedule(step):
        return base_lr * gamma ** bisect_right(milestones, step)
    return schedule


def exponential_schedule(base_lr, gamma):
    """Exponential decay: ``base_lr * gamma ** step`` (:class:`ExponentialLR`'s closed form).

    Returns:
        A function ``step -> lr``.
    """
    _non_negative("gamma", gamma)

    def schedule(step):
        return base_lr * gamma ** step
    return schedule


def linear_schedule(base_lr, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
    """Linear ramp of the factor from ``start_factor`` at step 0 to ``end_factor`` at step
    ``total_iters``, constant after (:class:`LinearLR`'s closed form; a warm-up when
    ``start_factor < end_factor``):

    .. math::
        \\alpha_t = \\alpha_0 \\left(s + (e - s) \\frac{\\min(t, T)}{T}\\right)

    Returns:
        A function ``step -> lr``.
    """
    _check_linear_factors(start_factor, end_factor, total_iters)

    def schedule(step):
        return base_lr * (start_factor + (end_factor - start_factor)
                          * min(total_iters, step) / total_iters)
    return schedule


def polynomial_schedule(base_lr, total_iters=5, power=1.0):
    """Polynomial decay to zero at step ``total_iters``, zero after (:class:`PolynomialLR`'s
    closed form; ``power=1`` is the linear decay :math:`\\alpha_t = \\alpha_0 (1 - t / T)`):

    .. math::
        \\alpha_t = \\alpha_0 \\left(1 - \\frac{\\min(t, T)}{T}\\right)^p

    Returns:
        A function ``step -> lr``.
    """
    _integer("total_iters", total_iters, 1)
    real(power, "power")

    def schedule(step):
        return base_lr * (1.0 - min(total_iters, step) / total_iters) ** power
    return schedule


def cosine_annealing_schedule(base_lr, T_max, eta_min=0.0):
    """Cosine annealing from ``base_lr`` at step 0 to ``eta_min`` at step ``T_max``
    (:class:`CosineAnnealingLR`'s closed form, Loshchilov & Hutter's SGDR without restarts):

    .. math::
        \\alpha_t = \\eta_{min} + \\frac{\\alpha_0 - \\eta_{min}}{2}
        \\left(1 + \\cos\\frac{\\pi t}{T_{max}}\\right)

    Past ``T_max`` the cosine goes on: the rate climbs back to ``base_lr`` at ``2 T_max``,
    and so on with period ``2 T_max`` (PyTorch's behaviour, which users often do not expect:
    stop at ``T_max`` or choose ``T_max`` as the whole run for a single decay).

    Returns:
        A function ``step -> lr``.
    """
    _integer("T_max", T_max, 1)
    real(eta_min, "eta_min")

    def schedule(step):
        return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * step / T_max)) / 2
    return schedule


def _one_cycle_phases(total_steps, pct_start, three_phase):
    """PyTorch's phases of the one-cycle policy: where each ends, and which group values it
    anneals between."""
    warm_up = {"end_step": float(pct_start * total_steps) - 1, "start_lr": "initial_lr",
               "end_lr": "max_lr", "start_momentum": "max_momentum",
               "end_momentum": "base_momentum"}
    if three_phase:
        return [warm_up,
                {"end_step": float(2 * pct_start * total_steps) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_step": total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
    return [warm_up,
            {"end_step": total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
             "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]


def _one_cycle_position(phases, step, total_steps):
    """The phase ``step`` falls in and how far through it (0 at its start, 1 at its end)."""
    if step > total_steps:
        raise ValueError(f"Tried to step {step} times. The specified number of total steps is "
                         f"{total_steps}")
    start = 0.0
    for i, phase in enumerate(phases):
        end = phase["end_step"]
        if step <= end or i == len(phases) - 1:
            if end == start:
                raise ValueError(f"one-cycle phase {i} has no length (it starts and ends at "
                                 f"step {end}): change pct_start or total_steps")
            return phase, (step - start) / (end - start)
        start = end


def _anneal(strategy, start, end, pct):
    """From ``start`` (pct 0) to ``end`` (pct 1), on a half cosine or a straight line."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def _check_one_cycle(total_steps, pct_start, anneal_strategy):
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) \
            or total_steps <= 0:
        raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
    if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
        raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError("anneal_strategy must be one of 'cos' or 'linear', instead got "
                         f"{anneal_strategy}")


def one_cycle_schedule(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                       div_factor=25.0, final_div_factor=1e4, three_phase=False):
    """The learning rate of Smith's one-cycle policy (:class:`OneCycleLR`'s).

    From ``max_lr / div_factor`` up to ``max_lr`` over the first ``pct_start`` of the
    ``total_steps`` (the warm-up is inside ``total_steps``), then down to
    ``max_lr / div_factor / final_div_factor`` at step ``total_steps - 1``; with
    ``three_phase``, back down to the initial rate symmetrically first, then to the minimum.

    Returns:
        A function ``step -> lr`` for steps 0 to ``total_steps`` (PyTorch allows one step past
        the cycle, extrapolating the last phase).
    """
    _check_one_cycle(total_steps, pct_start, anneal_strategy)
    values = {"initial_lr": max_lr / div_factor, "max_lr": max_lr}
    values["min_lr"] = values["initial_lr"] / final_div_factor
    phases = _one_cycle_phases(total_steps, pct_start, three_phase)

    def schedule(step):
        phase, pct = _one_cycle_position(phases, step, total_steps)
        return _anneal(anneal_strategy, values[phase["start_lr"]], values[phase["end_lr"]], pct)
    return schedule


# ------------------------------------------------------------------------------ schedulers
class LRScheduler:
    """Base class of the schedulers: writes ``group["lr"]`` of each of an optimiser's
    parameter groups, once at construction (step 0) and once per :meth:`step`.

    Args:
        optimizer: the :class:`~fastgrad.optim.Optimizer` whose learning rates to set.
        last_epoch: the index of the last step taken, to resume a schedule (then each group
            must hold the ``initial_lr`` a previous scheduler stored); -1 starts afresh.

    Attributes:
        base_lrs: each group's ``initial_lr``: its learning rate when the first scheduler was
            attached (stored in the group, as PyTorch does, so chained and resumed schedulers
            share it).
        last_epoch: the number of steps taken (0 after construction).
    """

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        _integer("last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   f"when resuming scheduler with last_epoch >= 0 (got "
                                   f"last_epoch={last_epoch}); load the optimizer's state first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Set the learning rates of step 0 (restart the step count)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The learning rates of step :attr:`last_epoch` (the chainable form, read from the
        groups' current rates). Use :meth:`get_last_lr` to read the current rates."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rate of each parameter group set by the last step."""
        return list(self._last_lr)

    def step(self):
        """Advance the schedule by one step and set the groups' learning rates."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch=None):
        """Step once (``epoch`` None) or jump to step ``epoch``, by the closed form where the
        scheduler has one."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(f"{type(self).__name__} computed {len(values)} learning rates for "
                             f"an optimizer with {len(groups)} param groups (was a group added "
                             "after the scheduler was created?)")
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimiser: a copy of the scheduler's attributes."""
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "optimizer"})

    def load_state_dict(self, state_dict):
        """Restore attributes saved by :meth:`state_dict`."""
        self.__dict__.update(copy.deepcopy(state_dict))


class LambdaLR(LRScheduler):
    """The learning rate of each group is its initial rate times ``lr_lambda(step)``: a
    closed form, so any pure schedule (warm-up, decay) can be plugged in.

    Args:
        optimizer: the optimiser.
        lr_lambda: a function of the step returning a factor, or a list of one per group.
        last_epoch: see :class:`LRScheduler`.

    Only callable objects (not plain functions) have their ``__dict__`` saved by
    :meth:`state_dict`, as in PyTorch.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ValueError(f"Expected {groups} lr_lambdas, but got {len(lr_lambda)}")
            lambdas = list(lr_lambda)
        else:
            lambdas = [lr_lambda] * groups
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"lr_lambda must be callable (or a list of callables), got "
                                f"{fn!r} for param group {i}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas,
                                                                     self.base_lrs)]

    def state_dict(self):
        state = copy.deepcopy({k: v for k, v in self.__dict__.items()
                               if k not in ("optimizer", "lr_lambdas")})
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else copy.deepcopy(fn.__dict__) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas")
        super().load_state_dict(state)
        for fn, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                fn.__dict__.update(copy.deepcopy(saved))


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps:
    ``lr_t = base_lr * gamma ** (t // step_size)`` (:func:`step_schedule`), chainable.

    Args:
        optimizer: the optimiser.
        step_size: the period of the decay, in steps.
        gamma: the factor.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _integer("step_size", step_size, 1)
        _non_negative("gamma", gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [step_schedule(b, self.step_size, self.gamma)(self.last_epoch)
                for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each milestone (by ``gamma ** n`` at a
    milestone listed ``n`` times): :func:`multistep_schedule`, chainable.

    Args:
        optimizer: the optimiser.
        milestones: the steps at which to decay.
        gamma: the factor.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for i, milestone in enumerate(milestones):
            _integer(f"milestones[{i}]", milestone, 0)
        _non_negative("gamma", gamma)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = list(self.milestones.elements())
        return [multistep_schedule(b, milestones, self.gamma)(self.last_epoch)
                for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every step: ``lr_t = base_lr * gamma ** t``
    (:func:`exponential_schedule`), chainable.

    Args:
        optimizer: the optimiser.
        gamma: the factor.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _non_negative("gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [exponential_schedule(b, self.gamma)(self.last_epoch) for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Ramp the factor on the learning rate linearly from ``start_factor`` (step 0) to
    ``end_factor`` (step ``total_iters``), then hold it (:func:`linear_schedule`), chainable.

    The usual linear warm-up (``start_factor < 1 = end_factor``); the warm-up takes
    ``total_iters`` steps, at the start of whatever count this scheduler sees (in a
    :class:`SequentialLR`, before the decay scheduler's steps, not inside them).

    Args:
        optimizer: the optimiser.
        start_factor: the factor at step 0, in (0, 1].
        end_factor: the factor from step ``total_iters`` on, in [0, 1].
        total_iters: the length of the ramp, in steps.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        _check_linear_factors(start_factor, end_factor, total_iters)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        span = self.end_factor - self.start_factor
        factor = 1.0 + span / (self.total_iters * self.start_factor
                               + (self.last_epoch - 1) * span)
        return [group["lr"] * factor for group in groups]

    def _get_closed_form_lr(self):
        return [linear_schedule(b, self.start_factor, self.end_factor,
                                self.total_iters)(self.last_epoch) for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decay the learning rate polynomially to zero at step ``total_iters``
    (:func:`polynomial_schedule`; ``power=1`` is the linear decay
    :math:`\\alpha_t = \\alpha_0 (1 - t/T)`), chainable. No warm-up; the count starts at 0.

    Args:
        optimizer: the optimiser.
        total_iters: the number of steps to reach zero.
        power: the power of the polynomial.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        _integer("total_iters", total_iters, 1)
        real(power, "power")
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        factor = ((1.0 - self.last_epoch / self.total_iters)
                  / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * factor for group in groups]

    def _get_closed_form_lr(self):
        return [polynomial_schedule(b, self.total_iters, self.power)(self.last_epoch)
                for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate to ``eta_min`` over ``T_max`` steps
    (:func:`cosine_annealing_schedule`), in PyTorch's recursive form:

    .. math::
        \\eta_{t} = \\eta_{min} + (\\eta_{t-1} - \\eta_{min})
        \\frac{1 + \\cos(\\pi t / T_{max})}{1 + \\cos(\\pi (t - 1) / T_{max})}

    No warm-up (wrap it in a :class:`SequentialLR` after a :class:`LinearLR`: ``T_max`` then
    counts the steps after the warm-up). Past ``T_max`` the rate does not stay at
    ``eta_min``: it climbs back along the cosine to the initial rate at ``2 T_max`` (period
    ``2 T_max``), exactly as PyTorch's does.

    Args:
        optimizer: the optimiser.
        T_max: the number of steps from the initial rate to ``eta_min``.
        eta_min: the minimum rate.
        last_epoch: see :class:`LRScheduler`.

    References: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _integer("T_max", T_max, 1)
        real(eta_min, "eta_min")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (t - 1 - period) % (2 * period) == 0:
            # the step after a minimum, where the ratio below would divide by zero
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for base_lr, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
                * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self):
        return [cosine_annealing_schedule(b, self.T_max, self.eta_min)(self.last_epoch)
                for b in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run schedulers one after another, switching at the milestones (warm-up then decay).

    Scheduler ``i`` drives steps ``milestones[i-1]`` to ``milestones[i] - 1``; at its first
    step it restarts its own count at 0 (its closed form at step 0, from the groups'
    ``initial_lr``). So with ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=w),
    CosineAnnealingLR(opt, T_max=T)], milestones=[w])`` the warm-up takes the first ``w``
    steps and the cosine its ``T`` steps after them: the warm-up is not inside ``T_max``.

    Args:
        optimizer: the optimiser all the schedulers share.
        schedulers: the schedulers, in order (not :class:`ReduceLROnPlateau`).
        milestones: the steps at which to switch, increasing; one fewer than the schedulers.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_optimizer(optimizer)
        schedulers, milestones = list(schedulers), list(milestones)
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no "
                             "scheduler.")
        for i, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"{type(self).__name__} at index {i} should have `optimizer` "
                                "as its attribute.")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(f"{type(self).__name__} does not support `ReduceLROnPlateau` "
                                 "scheduler as it requires additional kwargs to be specified "
                                 "when calling `step`, but got one at index "
                                 f"{i} in the given schedulers sequence.")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"{type(self).__name__} expects all schedulers to belong to "
                                 f"the same optimizer, but got scheduler "
                                 f"{type(scheduler).__name__} at index {i} has "
                                 f"{scheduler.optimizer}, which is different from "
                                 f"{type(optimizer).__name__}.")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be "
                             "one more than the number of milestone points, but got number of "
                             f"schedulers {len(schedulers)} and the number of milestones to be "
                             f"equal to {len(milestones)}")
        for i, milestone in enumerate(milestones):
            _integer(f"milestones[{i}]", milestone, 0)
        if milestones != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        _integer("last_epoch", last_epoch, -1)
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        # the schedulers stepped once when constructed: undo that, then start the first
        self._recursive_undo(self)
        index = bisect_right(milestones, 0)
        schedulers[index]._initial_step()
        self._last_lr = schedulers[index].get_last_lr()

    def _recursive_undo(self, scheduler):
        if hasattr(scheduler, "_schedulers"):
            for inner in scheduler._schedulers:
                self._recursive_undo(inner)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self):
        """Advance the active scheduler (restarting the next one at a milestone)."""
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        """The scheduler's attributes, with each inner scheduler's own state_dict."""
        state = copy.deepcopy({k: v for k, v in self.__dict__.items()
                               if k not in ("optimizer", "_schedulers")})
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        """Restore this scheduler and the inner ones."""
        state = dict(state_dict)
        inner = state.pop("_schedulers")
        self.__dict__.update(copy.deepcopy(state))
        for scheduler, saved in zip(self._schedulers, inner):
            scheduler.load_state_dict(saved)


class OneCycleLR(LRScheduler):
    """Smith's one-cycle policy (:func:`one_cycle_schedule`), stepped once per batch, with
    the momentum (or Adam's ``beta1``) cycled inversely to the learning rate by default.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (the warm-up is inside ``total_steps``), then falls to
    ``max_lr / div_factor / final_div_factor`` at step ``total_steps - 1``. With
    ``cycle_momentum`` (the default) the momentum falls from ``max_momentum`` to
    ``base_momentum`` while the rate rises, and rises back while it falls: the optimiser's
    ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam, AdamW) is overwritten at every step,
    starting at construction. Stepping more than ``total_steps`` times is an error.

    Args:
        optimizer: the optimiser.
        max_lr: the peak rate, or a list of one per group.
        total_steps: the length of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: with ``steps_per_epoch``, ``total_steps = epochs * steps_per_epoch``.
        steps_per_epoch: see ``epochs``.
        pct_start: the fraction of the cycle spent increasing the rate.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        cycle_momentum: cycle the momentum (or ``beta1``) inversely to the rate.
        base_momentum: the momentum at the peak rate (or a list per group).
        max_momentum: the momentum at the start and end (or a list per group).
        div_factor: the initial rate is ``max_lr / div_factor``.
        final_div_factor: the final rate is the initial rate divided by this.
        three_phase: a third phase: up, symmetrically down to the initial rate, then to the
            minimum (the paper's form) instead of fastai's two phases.
        last_epoch: the index of the last batch, to resume; see :class:`LRScheduler`.

    References: Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks
    Using Large Learning Rates", 2017.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("You must define either total_steps OR (epochs AND "
                                 "steps_per_epoch)")
            for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
                if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                        or value <= 0:
                    raise ValueError(f"Expected positive integer {name}, but got {value}")
            total_steps = epochs * steps_per_epoch
        _check_one_cycle(total_steps, pct_start, anneal_strategy)
        self.total_steps = total_steps
        self._schedule_phases = _one_cycle_phases(total_steps, pct_start, three_phase)
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with "
                                 f"`cycle_momentum` option enabled ({type(optimizer).__name__} "
                                 "has neither); pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for top, bottom, group in zip(max_momentums, base_momentums,
                                              optimizer.param_groups):
                    self._set_momentum(group, top)
                    group["max_momentum"] = top
                    group["base_momentum"] = bottom
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self):
        lrs = []
        phase, pct = _one_cycle_position(self._schedule_phases, self.last_epoch,
                                         self.total_steps)
        for group in self.optimizer.param_groups:
            lrs.append(_anneal(self._anneal_func_type, group[phase["start_lr"]],
                               group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                self._set_momentum(group, _anneal(self._anneal_func_type,
                                                  group[phase["start_momentum"]],
                                                  group[phase["end_momentum"]], pct))
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate when a monitored metric stops improving: the dynamic
    schedule, driven by ``step(metric)`` (a validation loss, say) instead of the step count.

    A metric improves on the best so far when it beats it by more than ``threshold``
    (relative: ``best * (1 - threshold)`` in ``"min"`` mode, ``best * (1 + threshold)`` in
    ``"max"`` mode; absolute: ``best -/+ threshold``). After more than ``patience``
    consecutive steps without improvement, each group's rate becomes
    ``max(lr * factor, min_lr)`` (unless that changes it by less than ``eps``), and the next
    ``cooldown`` steps count no bad steps.

    Args:
        optimizer: the optimiser.
        mode: ``"min"`` (the metric should fall) or ``"max"`` (it should rise).
        factor: the factor applied to the rate, < 1.
        patience: the number of steps without improvement tolerated before a reduction.
        threshold: how much better a metric must be to count as an improvement.
        threshold_mode: ``"rel"`` or ``"abs"``.
        cooldown: the number of steps after a reduction during which bad steps are ignored.
        min_lr: the lower bound on the rate, or a list of one per group.
        eps: reductions smaller than this are skipped.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        real(factor, "factor")
        if factor >= 1.0:
            raise ValueError(f"Factor should be < 1.0 (got factor={factor}).")
        if factor < 0:
            raise ValueError(f"Factor should be >= 0 (got factor={factor}).")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got "
                                 f"{len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        for i, value in enumerate(self.min_lrs):
            _non_negative("min_lr" if self.default_min_lr is not None else f"min_lr[{i}]", value)
        self.patience = _integer("patience", patience, 0)
        self.cooldown = _integer("cooldown", cooldown, 0)
        self.eps = _non_negative("eps", eps)
        _non_negative("threshold", threshold)
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        """Whether the scheduler is ignoring bad steps after a reduction."""
        return self.cooldown_counter > 0

    def step(self, metrics):
        """Record one value of the monitored metric and reduce the rates if it has stopped
        improving.

        Args:
            metrics: the metric (a number or a 0-d Tensor).
        """
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"The number of param groups in the `optimizer` "
                                   f"({len(groups)}) differs from when `ReduceLROnPlateau` was "
                                   f"initialized ({len(self.min_lrs)}), usually due to a new "
                                   "param group being added to the optimizer. Please modify "
                                   "the `min_lrs` field to match the length of the `optimizer` "
                                   "param groups.")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown! (expected 'rel' or "
                             "'abs')")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict):
        """Restore a saved state (and the comparison it implies)."""
        super().load_state_dict(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold,
                             threshold_mode=self.threshold_mode)
