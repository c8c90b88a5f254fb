"""The optimiser base: parameter groups, arenas, state, ``zero_grad``, ``state_dict``.

Subclasses validate their hyperparameters and implement ``_step_arena``, which updates one
arena (the parameters of one group and one dtype) with one fused kernel call. State that has
one value per parameter element (momentum, moments) lives in flat arena buffers; ``state[p]``
holds per-parameter views of them, so the state_dict has PyTorch's layout.
"""
import collections
import numbers

import numpy as np

from .. import autograd
from .. import dtypes
from ..arena import Arena
from ..backends import K
from ..device import array_of
from ..device import to_device as move_array
from .._checks import check_norm_type
from ..tensor import Tensor


def _check_nonnegative(group, key, label=None):
    """Raise unless ``group[key]`` is a real number >= 0 (PyTorch's message for the range)."""
    value = group[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{key} must be a real number, got {value!r}")
    if not 0.0 <= value:
        raise ValueError(f"Invalid {label or key} value: {value}")


def _check_betas(group):
    """Raise unless ``group["betas"]`` is a pair of real numbers in [0, 1) (PyTorch's message
    for the range); store it as a tuple."""
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"betas[{i}] must be a real number, got {beta!r}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    group["betas"] = tuple(betas)


def _check_adam_family(group):
    """The checks Adam, Adamax and NAdam share, in PyTorch's order: ``eps`` >= 0, ``betas``
    (see :func:`_check_betas`), ``weight_decay`` >= 0."""
    _check_nonnegative(group, "eps", "epsilon")
    _check_betas(group)
    _check_nonnegative(group, "weight_decay")


class Optimizer:
    """Base class of the optimisers.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) with a ``"params"`` key
            and per-group hyperparameters.
        defaults: the hyperparameters of groups that do not set them.
    """

    #: Names of per-element state kept in arena buffers (set by subclasses).
    arena_state = ()
    #: Names of per-parameter scalar state, kept as Python floats (PyTorch's ``step`` is a
    #: float32 0-d tensor holding the same number); :meth:`load_state_dict` converts them.
    scalar_state = ()

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or dicts, got a single "
                            "Tensor; wrap it in a list")
        self.defaults = dict(defaults)
        self.state = collections.defaultdict(dict)
        self.param_groups = []
        self._arenas = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines + [")"])

    def _check_hyperparameters(self, group):
        """Raise ValueError for an invalid hyperparameter of ``group`` (subclasses extend)."""
        lr = group["lr"]
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr >= 0:
            raise ValueError(f"Invalid learning rate: {lr}")

    def add_param_group(self, group):
        """Add a group of parameters with its own hyperparameters, packed into arenas."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] is a "
                                f"{type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"can't optimize a non-leaf Tensor (params[{i}], shape "
                                 f"{p.shape})")
            if not dtypes.is_floating(p.dtype):
                raise TypeError(f"optimizer can only optimize floating tensors, params[{i}] has "
                                f"dtype {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("some parameters appear more than once in the optimizer's "
                             "parameter groups")
        group = {**self.defaults, **group, "params": params}
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for "
                             f"{type(self).__name__}; known: {sorted(self.defaults)}")
        self._check_hyperparameters(group)
        self.param_groups.append(group)
        self._arenas.append(self._pack(params))

    def _pack(self, params):
        """One arena per dtype and device for ``params`` (a group's parameters)."""
        by_kind = collections.defaultdict(list)
        for p in params:
            by_kind[p.dtype, p.device].append(p)
        return [Arena(ps, self.state, self.arena_state) for ps in by_kind.values()]

    def _repack(self):
        """Pack anew each group whose arenas a parameter has left."""
        for i, group in enumerate(self.param_groups):
            if not all(arena.intact for arena in self._arenas[i]):
                self._arenas[i] = self._pack(group["params"])

    def arenas(self):
        """``(group, arena)`` for each arena of each parameter group, every arena intact (a
        list).

        This is the handle for whole-model gradient work (clipping, accumulation,
        diagnostics): ``arena.grad`` is every gradient of the group and dtype in one array.
        """
        if [arena for arenas in self._arenas for arena in arenas if not arena.intact]:
            self._repack()
        return [(group, arena) for group, arenas in zip(self.param_groups, self._arenas)
                for arena in arenas]

    def zero_grad(self, set_to_none=True):
        """Forget the gradients (default), or zero them with one fill per arena."""
        for _, arena in self.arenas():
            arena.zero_grad(set_to_none)

    @autograd.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient, one fused kernel call per arena.

        Args:
            closure: a function that recomputes the loss (with gradients) and returns it.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        with np.errstate(all="ignore"):  # NaN and inf gradients propagate silently
            for group, arena in self.arenas():
                self._step_arena(group, arena)
                for p in arena.params:
                    p._version += 1
        return loss

    def _step_arena(self, group, arena):
        raise NotImplementedError

    def grad_norm(self, norm_type=2.0):
        """The norm of all this optimiser's gradients taken together (missing ones count as
        zero), from one fused pass per arena.

        Returns:
            A Python float; ``inf`` or ``nan`` when a gradient is not finite.
        """
        norm_type = check_norm_type(norm_type)
        with np.errstate(all="ignore"):  # NaN and inf gradients give a NaN or inf norm
            totals = [float(arena.grad_norms(norm_type)[0]) for _, arena in self.arenas()]
            if norm_type == np.inf:
                return max(totals)
            return float(np.sum(np.power(totals, norm_type)) ** (1.0 / norm_type))

    def _init_state(self, arena, index, name):
        """Register parameter ``index``'s view of the arena's state buffer ``name``."""
        self.state[arena.params[index]][name] = arena.state_view(name, index)

    def _fill_state(self, arena, indices, name, value=0.0):
        """Start state buffer ``name`` at ``value`` for the parameters ``indices`` of ``arena``
        that lack it (one fill for the whole buffer when none has it)."""
        missing = [i for i in indices if name not in self.state.get(arena.params[i], ())]
        if not missing:
            return
        buffer = arena.state_buffer(name)
        if len(missing) == len(arena.params):
            K.fill(buffer, value)
        else:
            for i in missing:
                K.fill(buffer[arena.offsets[i]:arena.offsets[i + 1]], value)
        for i in missing:
            self._init_state(arena, i, name)

    def _counted_step(self, arena, initial, step_dependent, update):
        """The step of an optimiser that counts steps per parameter, as PyTorch's do.

        Parameters without a gradient are skipped (their state and step count too). The
        others get any state they lack (``step`` 0, buffer ``name`` filled with
        ``initial[name]``); then ``update(section, step)`` runs once over the whole arena
        (``section`` is ``slice(None)``) when every parameter has a gradient and, for an
        update that depends on the step count, all counts agree; otherwise once per
        parameter with its own slice of the arena and count. ``step`` is the count after
        this step.
        """
        params = arena.params
        if arena.all_grads():
            # the usual step: every parameter has a gradient, its state and the same count
            # (one pass over the states instead of the general path's five: 3 of a small
            # model's 9 us of Python per Adam step)
            states = [self.state[p] for p in params]
            counts = [s.get("step") for s in states]
            first = counts[0]
            if first is not None and counts.count(first) == len(counts) \
                    and all(initial.keys() <= s.keys() for s in states):
                update(slice(None), first + 1.0)
                for s in states:
                    s["step"] = first + 1.0
                return
        indices = [i for i, p in enumerate(params) if p._grad is not None]
        if not indices:
            return
        for i in indices:
            self.state[arena.params[i]].setdefault("step", 0.0)
        for name, value in initial.items():
            self._fill_state(arena, indices, name, value)
        steps = [self.state[arena.params[i]]["step"] + 1.0 for i in indices]
        if len(indices) == len(arena.params) and (not step_dependent or len(set(steps)) == 1):
            update(slice(None), steps[0])
        else:
            for i, step in zip(indices, steps):
                update(slice(arena.offsets[i], arena.offsets[i + 1]), step)
        for i, step in zip(indices, steps):
            self.state[arena.params[i]]["step"] = step

    # --------------------------------------------------------------------------- state_dict
    def state_dict(self):
        """``{"state": {index: {name: value}}, "param_groups": [...]}``, PyTorch's layout,
        with parameters replaced by their index and state copied."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = {
                        k: Tensor(v._data.copy()) if isinstance(v, Tensor) else v
                        for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by :meth:`state_dict`."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"loaded parameter group {i} has {len(saved['params'])} "
                                 f"parameters, the optimizer's has {len(group['params'])}")
        slots = {}
        for group, saved in zip(self.param_groups, saved_groups):
            for saved_id, p in zip(saved["params"], group["params"]):
                slots[saved_id] = p
        where = {id(p): (arena, i) for _, arena in self.arenas()
                 for i, p in enumerate(arena.params)}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state.clear()
        for saved_id, values in state_dict["state"].items():
            p = slots[saved_id]
            arena, position = where[id(p)]
            for name, value in values.items():
                if name in self.arena_state:
                    view = arena.state_view(name, position)
                    array = value._data if isinstance(value, Tensor) else array_of(value)
                    if array.shape != p.shape:
                        raise ValueError(f"state {name!r} of parameter {saved_id} has shape "
                                         f"{array.shape}, expected {p.shape}")
                    view._data[...] = move_array(array, p.device)
                    self.state[p][name] = view
                elif name in self.scalar_state:
                    self.state[p][name] = float(value)
                else:
                    self.state[p][name] = value
