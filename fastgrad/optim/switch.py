"""Second-stage optimisation: train with one optimiser, then switch to another."""
import math
import numbers

import numpy as np

from .wrapper import OptimizerWrapper, check_optimizer


def _parameter_ids(optimizer):
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


class SwitchOptimizer(OptimizerWrapper):
    """Step with ``first`` until a given step or until a monitored loss stops improving, then
    with ``second``: e.g. Adam's fast start, then SGD with momentum for the final stretch,
    which often generalises better (Keskar and Socher 2017).

    Both optimisers are built by the user over the same parameters, each with its own
    hyperparameters and learning rate (Adam's and SGD's differ by orders of magnitude, so no
    rate is copied across), and each may have its own learning-rate scheduler, which keeps
    working across the switch: the switch only changes which optimiser :meth:`step` calls.
    The parameters carry over as they are: the two optimisers share them, and the one that
    steps packs them into its arenas first (one copy of values and gradients, at the first
    step and at the switch; see :mod:`fastgrad.arena`). ``first``'s state is kept, so a
    ``load_state_dict`` from before the switch resumes exactly.

    Switching rules (either or both; the first to fire switches):

    * ``switch_at=N``: the first ``N`` steps use ``first``, later ones ``second``.
    * ``patience=P``: ``ReduceLROnPlateau``'s test on the losses passed as ``step(loss=...)``
      (each call that passes a loss is one observation; pass the training loss every step, or
      a validation loss once per epoch): once ``P`` consecutive observations fail to improve
      on the best by ``threshold``, the switch happens before the next step.

    Args:
        first: the optimiser (or wrapper) to start with.
        second: the optimiser (or wrapper) to finish with, over the same parameters.
        switch_at: the number of steps made by ``first``, or None.
        patience: observations without improvement tolerated before switching, or None.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        threshold: the smallest improvement that counts.
        threshold_mode: ``"rel"`` (improve on ``best * (1 -/+ threshold)``) or ``"abs"``
            (on ``best -/+ threshold``).

    Attributes:
        optimizer: the active optimiser.
        step_count: the steps taken so far.
        switched_at: the step at which ``second`` took over, or None.

    References: Keskar and Socher, "Improving Generalization Performance by Switching from
    Adam to SGD", arXiv:1712.07628, 2017.
    """

    _state_keys = ("first", "second", "step_count", "switched_at", "best",
                   "num_bad_observations")

    def __init__(self, first, second, switch_at=None, patience=None, mode="min",
                 threshold=1e-4, threshold_mode="rel"):
        check_optimizer(first, "first")
        check_optimizer(second, "second")
        if first is second:
            raise ValueError("first and second must be two different optimizers")
        only_first = len(_parameter_ids(first) - _parameter_ids(second))
        only_second = len(_parameter_ids(second) - _parameter_ids(first))
        if only_first or only_second:
            raise ValueError(f"first and second must optimize the same parameters; "
                             f"{only_first} are only in first, {only_second} only in second")
        for name, value in (("switch_at", switch_at), ("patience", patience)):
            valid = value is None or (isinstance(value, (int, np.integer))
                                      and not isinstance(value, bool) and value >= 0)
            if not valid:
                raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
        if switch_at is None and patience is None:
            raise ValueError("give switch_at, patience or both: otherwise second never runs")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
                or not threshold >= 0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
        super().__init__(first)
        self.first, self.second = first, second
        self.switch_at, self.patience = switch_at, patience
        self.mode, self.threshold, self.threshold_mode = mode, float(threshold), threshold_mode
        self.step_count = 0
        self.switched_at = None
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_observations = 0

    def extra_repr(self):
        return (f"switch_at={self.switch_at}, patience={self.patience}, "
                f"step_count={self.step_count}, switched_at={self.switched_at}")

    def __repr__(self):
        first = "\n".join("    " + line for line in repr(self.first).splitlines())
        second = "\n".join("    " + line for line in repr(self.second).splitlines())
        return f"SwitchOptimizer({self.extra_repr()}\n{first}\n{second}\n)"

    @property
    def switched(self):
        """Whether ``second`` has taken over."""
        return self.switched_at is not None

    def _improves(self, value):
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return value < bar
        bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return value > bar

    def _observe(self, loss):
        value = float(loss)
        if self._improves(value):
            self.best, self.num_bad_observations = value, 0
        else:
            self.num_bad_observations += 1

    def switch(self):
        """Hand over to ``second`` now (no effect once switched)."""
        if not self.switched:
            self.switched_at = self.step_count
            self.optimizer = self.second

    def step(self, closure=None, loss=None):
        """One step of the active optimiser, after deciding whether to switch.

        Args:
            closure: passed to the active optimiser's ``step``.
            loss: the monitored value for the plateau rule (a number or a one-element Tensor);
                None: no observation this step.

        Returns:
            What the active optimiser's ``step`` returns.
        """
        if loss is not None and not self.switched:
            self._observe(loss)
        if not self.switched and (
                (self.switch_at is not None and self.step_count >= self.switch_at)
                or (self.patience is not None and self.num_bad_observations > self.patience)):
            self.switch()
        result = self.optimizer.step(closure)
        self.step_count += 1
        return result

    def state_dict(self):
        """Both optimisers' state_dicts and the switch's state."""
        return {"first": self.first.state_dict(), "second": self.second.state_dict(),
                **self._own_state()}

    def _own_state(self):
        return {"step_count": self.step_count, "switched_at": self.switched_at, "best": self.best,
                "num_bad_observations": self.num_bad_observations}

    def load_state_dict(self, state_dict):
        """Restore both optimisers and the switch from :meth:`state_dict`."""
        expected = set(self._state_keys)
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"SwitchOptimizer state_dict must be a dict with keys "
                             f"{sorted(expected)}, got {got}")
        self.first.load_state_dict(state_dict["first"])
        self.second.load_state_dict(state_dict["second"])
        self.step_count = int(state_dict["step_count"])
        switched_at = state_dict["switched_at"]
        self.switched_at = None if switched_at is None else int(switched_at)
        self.optimizer = self.second if self.switched else self.first
        self.best = float(state_dict["best"])
        self.num_bad_observations = int(state_dict["num_bad_observations"])
