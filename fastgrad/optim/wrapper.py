"""The base of the optimiser wrappers: objects that change what ``step`` does and otherwise
behave as the optimiser they wrap.

A wrapper shares the wrapped optimiser's ``param_groups``, ``state`` and arenas, forwards
``zero_grad``, and nests its own ``state_dict`` around the wrapped one. Wrappers stack, e.g.
``GradientAccumulator(SkipNonFinite(GradientNoise(Adam(params))), steps=4)``: accumulate
four micro-batches, skip the step if their mean gradient is not finite, otherwise add noise
to it and let Adam step.
Learning-rate schedulers attach to the innermost optimiser; they change its ``param_groups``,
which every wrapper around it shares.
"""

_OPTIMIZER_API = ("step", "zero_grad", "param_groups", "arenas", "state_dict",
                  "load_state_dict")


def check_optimizer(optimizer, argument="optimizer"):
    """Raise TypeError unless ``optimizer`` is a fastgrad optimiser or wrapper."""
    missing = [name for name in _OPTIMIZER_API if not hasattr(optimizer, name)]
    if missing:
        raise TypeError(f"{argument} must be a fastgrad optimizer (or optimizer wrapper), got "
                        f"{type(optimizer).__name__}, which lacks {missing}")


class OptimizerWrapper:
    """Base class of the optimiser wrappers.

    Subclasses implement ``step`` and, when they keep state of their own, list its keys in
    ``_state_keys`` and implement ``_own_state`` and ``_load_own_state``.

    Args:
        optimizer: the wrapped optimiser (or wrapper).
    """

    #: Keys of the wrapper's own entries in its state_dict.
    _state_keys = ()

    def __init__(self, optimizer):
        check_optimizer(optimizer)
        self.optimizer = optimizer

    def __repr__(self):
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}({self.extra_repr()}\n{inner}\n)"

    def extra_repr(self):
        """The wrapper's own settings, for the repr."""
        return ""

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self):
        return self.optimizer.defaults

    def arenas(self):
        """The wrapped optimiser's ``(group, arena)`` pairs."""
        return self.optimizer.arenas()

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)

    def add_param_group(self, group):
        self.optimizer.add_param_group(group)

    def step(self, closure=None):
        raise NotImplementedError

    def _own_state(self):
        """The wrapper's own state, as a dict of plain values."""
        return {}

    def _load_own_state(self, state):
        """Restore what :meth:`_own_state` returned."""

    def state_dict(self):
        """``{"optimizer": <the wrapped state_dict>, **<the wrapper's own state>}``."""
        return {"optimizer": self.optimizer.state_dict(), **self._own_state()}

    def load_state_dict(self, state_dict):
        """Restore a state saved by :meth:`state_dict` (the wrapped optimiser's too)."""
        expected = {"optimizer", *self._state_keys}
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"{type(self).__name__} state_dict must be a dict with keys "
                             f"{sorted(expected)}, got {got}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self._load_own_state({k: v for k, v in state_dict.items() if k != "optimizer"})
