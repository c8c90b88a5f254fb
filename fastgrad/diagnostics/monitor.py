"""The gradient monitor: per-step gradient, parameter and update norms, per parameter and per
layer in forward order, from one fused pass per arena; for recurrent layers, the gradient norm
at every time step, from their backward loops."""
import functools
import math
import numbers

import numpy as np

from .. import autograd
from .. import nn
from ..arena import arena_of, clip_count
from ..backends import K
from ..device import contiguous, to_device_of, to_host, zeros
from . import reports
from .verdicts import Checker, ModelTraits, Thresholds

#: The modules whose gradient through time the monitor records (see ``record_time_grads``).
_RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)

#: Activation modules whose outputs the monitor can describe: bounds for saturation (or None),
#: and whether dead units are counted.
_ACTIVATIONS = {nn.Sigmoid: ((0.0, 1.0), False), nn.Tanh: ((-1.0, 1.0), False),
                nn.ReLU: (None, True), nn.LeakyReLU: (None, False), nn.ELU: (None, False),
                nn.GELU: (None, False), nn.Softplus: (None, False)}


def _activation_kind(module):
    """``(bounds, counts_dead)`` for an activation-like module, or None."""
    kind = _ACTIVATIONS.get(type(module))
    if kind is not None:
        return kind
    if isinstance(module, nn.RNN):  # its outputs are the activated hidden states
        return ((-1.0, 1.0), False) if module.nonlinearity == "tanh" else (None, True)
    return None


def _time_keys(name, module):
    """The history keys of a recurrent module: one per layer and direction (``"rnn.l0"``,
    ``"rnn.l0_reverse"``), each followed by its cell-state key (``"rnn.l0.cell"``) for LSTM."""
    keys = []
    for layer in range(module.num_layers):
        for suffix in ("", "_reverse")[:2 if module.bidirectional else 1]:
            keys.append(f"{name}.l{layer}{suffix}")
            if isinstance(module, nn.LSTM):
                keys.append(f"{name}.l{layer}{suffix}.cell")
    return keys


class _Rows:
    """A growing (steps, *shape) float64 table that hands out its next row (a ``shape``
    array) for writing."""

    def __init__(self, shape, data=None):
        self._data = np.empty((64,) + shape)
        self.count = 0
        if data is not None:
            self._data = np.empty((max(64, len(data)),) + shape)
            self._data[:len(data)] = data
            self.count = len(data)

    def next(self):
        if self.count == len(self._data):
            grown = np.empty((2 * len(self._data),) + self._data.shape[1:])
            grown[:self.count] = self._data
            self._data = grown
        row = self._data[self.count]
        self.count += 1
        return row

    def array(self):
        return self._data[:self.count].copy()


class _Source:
    """Parameters whose gradients are measured together: one arena (a single fused pass), or
    one parameter outside any arena.

    Attributes:
        params: the parameters, in the source's order.
        offsets: segment boundaries, one segment per parameter of ``params``.
        take: indices into ``params`` of the monitored ones; ``dest`` their positions in the
            monitor's parameter list.
        identity: the source holds exactly the monitored parameters, in the monitor's order
            (its norms are the monitor's rows as they are).
        arena: the Arena, or None.
        layer_of: (P,) int64, each parameter's layer (its forward position; -1 for a
            parameter not monitored): the ``monitor_norms`` kernel sums the squared gradient
            norms per layer through it (see :meth:`set_layers`).
        prev: the parameter values the last measurement saw, or a snapshot taken before a
            recorded step (``have_prev`` says whether it holds either yet); each measurement
            moves it on to the current values.
        norms: (3, P) float64 rows of the last measurement: gradient, value and change norms.
    """

    def __init__(self, params, positions, count, layer_position, arena=None):
        self.arena, self.params = arena, params
        self.positions = list(positions)
        self.identity = self.positions == list(range(count))
        self.take = np.array([i for i, p in enumerate(positions) if p >= 0], np.int64)
        self.dest = np.array([p for p in positions if p >= 0], np.int64)
        if arena is not None:
            self.offsets = arena.offsets
        else:
            self.offsets = np.array([0, params[0].numel()], np.int64)
        self.sizes = np.diff(self.offsets)
        # each parameter's segment alone, [0, size]: fixed, so a device keeps its copy
        self.own_offsets = np.stack([np.zeros_like(self.sizes), self.sizes], axis=1)
        self.own_offsets.flags.writeable = False
        self.norms = np.empty((3, len(params)))
        self.prev, self.have_prev = None, False
        self.set_layers(layer_position)

    def set_layers(self, layer_position):
        """Take each monitored parameter's layer from ``layer_position`` (monitor parameter
        index -> forward position of its layer)."""
        self.layer_of = np.array([layer_position[p] if p >= 0 else -1 for p in self.positions],
                                 np.int64)
        self.layer_of.flags.writeable = False  # fixed: a device keeps its copy

    def measure(self, out, layer_sq, read_grads=True):
        """Each parameter's gradient norm (unless not ``read_grads``: row 0 then holds them
        already), value norm and change since ``prev`` into ``out`` (3, P), in one pass over
        the arena, and the squared gradient norms of the parameters with a gradient added to
        their layers' ``layer_sq``.

        Returns:
            The indices of the parameters without a gradient (a list; their gradient norm is
            measured as zero).
        """
        missing = [i for i, p in enumerate(self.params) if p._grad is None]
        arena, layer_of = self.arena, self.layer_of
        if missing:
            layer_of = layer_of.copy()
            layer_of[missing] = -1
        if arena is not None:
            values = arena.data
            if missing and read_grads:
                arena.zero_stale()  # their segments hold stale values: count them as zero
            grads = arena.grad if read_grads else None
        else:
            param = self.params[0]
            values = contiguous(param._data).reshape(-1)
            grads = None if not read_grads \
                else zeros(values.size, values.dtype, values) if missing \
                else contiguous(param._grad._data).reshape(-1)
        prev = self.prev
        if prev is None or prev.size != values.size or prev.dtype != values.dtype:
            prev = self._new_prev(values)
        # on a device: measured into device arrays, the few numbers then copied here
        on_host = type(values) is np.ndarray
        into = out if on_host else to_device_of(out, values)
        squares = layer_sq if on_host else zeros(layer_sq.shape, np.float64, values)
        K.monitor_norms(grads, values, prev, self.offsets, self.have_prev, into, layer_of,
                        squares)
        if not on_host:
            out[...] = to_host(into)
            layer_sq += to_host(squares)
        self.have_prev = True
        return missing

    def snapshot(self):
        """Copy the values into ``prev`` (before a recorded step)."""
        values = self.arena.data if self.arena is not None \
            else contiguous(self.params[0]._data).reshape(-1)
        np.copyto(self._new_prev(values), values)
        self.have_prev = True

    def _new_prev(self, values):
        """A new, empty ``prev`` buffer for ``values``."""
        self.prev, self.have_prev = np.empty_like(values), False
        return self.prev


class GradientMonitor:
    """Watch a model's gradients while it trains, and say when they vanish or explode.

    Call :meth:`step` once per training step, after ``optimizer.step()``. Every ``every``
    steps the monitor records, per parameter and per layer (a module owning parameters, in
    the order the forward pass reaches it): the gradient's L2 norm, the parameter's norm, the
    update-to-parameter ratio :math:`\\lVert\\theta_t - \\theta_{t-1}\\rVert /
    \\lVert\\theta_t\\rVert`, and the global gradient norm before and after clipping. It then
    applies the :class:`~fastgrad.diagnostics.Thresholds` and returns any new
    :class:`~fastgrad.diagnostics.Verdict` (vanishing, exploding, non-finite, saturation,
    dead units), each naming layers, step, figure and a remedy for this model.

    Through time: when the model has nn.RNN, nn.LSTM or nn.GRU modules, the monitor also
    records, for each layer and direction, the gradient norm at every time step,
    :math:`\\lVert \\partial L / \\partial h_t \\rVert` for t = 1..T (over batch and units;
    for LSTM also :math:`\\lVert \\partial L / \\partial c_t \\rVert`), taken by the layer's
    own backward loop (:meth:`fastgrad.nn.RNN.record_time_grads`) on recorded steps only, and
    issues ``"vanishing-in-time"`` or ``"exploding-in-time"`` when the first step's norm over
    the last step's crosses :attr:`Thresholds.time_vanishing_ratio` or
    :attr:`Thresholds.time_exploding_ratio` (see there for what the ratio measures). Several
    backward passes before one :meth:`step` (gradient accumulation) are combined as one
    batch: the square root of the sum of their squared norms.

    The cost is one fused pass per parameter arena (the ``monitor_norms`` kernel): gradient,
    parameter and update norms together, the update measured against a copy of the
    parameters the pass itself refreshes (the monitor's only buffer, the parameters' size).
    When :func:`fastgrad.nn.utils.clip_grad_norm_` (L2) ran over whole arenas since the last
    step, the gradient norms are the ones that pass measured before clipping (the gradients
    are not read again; the post-clip norm follows from the clip coefficient, read off the
    smallest parameter).
    Forward order is learnt from forward hooks during the first forward pass, which are then
    removed (so fused Linear+activation pairs run fused again). Measured on the digits MLP of
    ``fastgrad train``: see bench/test_monitor_overhead.py. Recording a recurrent layer's
    norms through time measures each step's gradient with respect to h_t inside its backward
    loop, a few steps at a time while they are in cache (0.6-4 % of that backward).

    The monitor's state (its history and what decides its next verdicts) goes into a
    checkpoint through :meth:`state_dict` and :meth:`load_state_dict`, e.g.
    ``fastgrad.train.Checkpointer(path, every, model=model, optimizer=optimizer,
    monitor=monitor)``: a resumed run then reports what an uninterrupted one would.

    Args:
        model: the Module to watch.
        optimizer: its optimiser (optional): its arenas are the ones measured, and its
            learning rate appears in remedies. Without one, the monitor uses the arenas the
            parameters live in, or measures them one by one.
        every: record every ``every``-th step (1: every step).
        activations: also record activation statistics (mean, std, fraction saturated for
            sigmoid/tanh, fraction of dead ReLU units) through forward hooks on activation
            layers; those layers then run unfused on recorded steps.
        thresholds: a :class:`~fastgrad.diagnostics.Thresholds`, a dict of its fields, or
            None for the defaults.

    Attributes:
        verdicts: every verdict issued so far, in order.
        steps: the number of :meth:`step` calls so far.
    """

    def __init__(self, model, optimizer=None, every=1, activations=False, thresholds=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a fastgrad.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not callable(getattr(optimizer, "arenas", None)):
            raise TypeError(f"optimizer must be a fastgrad optimiser (with arenas()), got "
                            f"{type(optimizer).__name__}")
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.model, self.optimizer, self.every = model, optimizer, int(every)
        self.thresholds = Thresholds.of(thresholds)
        named = list(model.named_parameters())
        if not named:
            raise ValueError("model has no parameters to monitor")
        self.parameter_names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._count = len(self._params)
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._init_layers()
        self.traits = ModelTraits.of(model, optimizer)
        self._checker = Checker(self.thresholds, self.layer_names, self.traits)
        self.steps = 0
        self._recorded_steps = []
        # per recorded step: grad, param and update norms (a (3, P) row), and the global norm
        # before and after clipping and the clip coefficient (a tuple)
        self._table = _Rows((3, self._count))
        self._globals = []
        self._activation_records = {}
        self._pending_activations = {}
        self._activation_handles = []
        self._activation_modules = []
        if activations:
            self._activation_modules = [(name or type(m).__name__, m)
                                        for name, m in model.named_modules()
                                        if _activation_kind(m) is not None]
            self._arm_activations(True)
        self._recurrent = [(name or type(m).__name__, m) for name, m in model.named_modules()
                           if isinstance(m, _RECURRENT)]
        #: the keys of ``history()["time_grad_norms"]``, in module, layer and direction order
        self.time_keys = [key for name, m in self._recurrent for key in _time_keys(name, m)]
        self._time_records = {}   # key -> ([recorded-step index], [norms])
        self._pending_time = {}   # key -> [norms of each backward since the last step]
        self._arm_time(True)
        self._tensorboard = {}    # log directory -> recorded steps and verdicts written there
        self._layout_key = None
        self._sources = []
        # the clip count (fastgrad.arena.clip_count) at the end of the previous step: a step
        # reuses the norms of the clips that came after it (the first step, of any clip)
        self._clips_seen = 0
        self._snapshot()

    # ---------------------------------------------------------------------------- layers
    def _init_layers(self):
        """Layers are the modules that own parameters, each parameter counted once."""
        owners, modules = {}, {}
        for name, module in self.model.named_modules():
            for p in module._parameters.values():
                if p is not None and id(p) in self._index and id(p) not in owners:
                    owners[id(p)] = name
                    modules.setdefault(name, module)
        self._layer_modules = list(modules.items())       # module order
        position = {name: i for i, (name, _) in enumerate(self._layer_modules)}
        self._param_layer = np.array([position[owners[id(p)]] for p in self._params], np.int64)
        self._layer_count = len(self._layer_modules)
        self._order = np.arange(self._layer_count)  # forward position -> layer
        self._order_list = self._order.tolist()
        self._position = self._param_layer.tolist()  # parameter -> its layer's position
        self._seen = []
        self._order_handles = [
            module.register_forward_hook(lambda m, args, out, i=i: self._seen.append(i))
            for i, (_, module) in enumerate(self._layer_modules)]

    def _finish_order(self):
        """Fix the forward order from the calls seen so far; drop the order hooks."""
        for handle in self._order_handles:
            handle.remove()
        self._order_handles = []
        order = list(dict.fromkeys(self._seen))
        order += [i for i in range(len(self._layer_modules)) if i not in order]
        self._order = np.array(order, np.int64)
        self._order_list = order
        forward = {layer: position for position, layer in enumerate(order)}
        self._position = [forward[layer] for layer in self._param_layer.tolist()]
        for source in self._sources:
            source.set_layers(self._position)
        self._checker.set_layers(self.layer_names)

    @property
    def layer_names(self):
        """The layers' dotted module names, in forward order (known after the first forward;
        until then in module order)."""
        return [self._layer_modules[i][0] or type(self._layer_modules[i][1]).__name__
                for i in self._order]

    @property
    def layer_types(self):
        """The layers' class names, in forward order."""
        return [type(self._layer_modules[i][1]).__name__ for i in self._order]

    @property
    def layer_shapes(self):
        """The shape of each layer's first parameter (its weight), in forward order."""
        first = {}
        for p, layer in zip(self._params, self._param_layer):
            first.setdefault(int(layer), tuple(p.shape))
        return [first[int(i)] for i in self._order]

    # ----------------------------------------------------------------------- activations
    def _arm_activations(self, on):
        if on and not self._activation_handles:
            self._activation_handles = [
                module.register_forward_hook(self._activation_hook(name))
                for name, module in self._activation_modules]
        elif not on and self._activation_handles:
            for handle in self._activation_handles:
                handle.remove()
            self._activation_handles = []

    def _activation_hook(self, name):
        tol = self.thresholds.saturation_tol

        def hook(module, args, output):
            if not module.training or not autograd.is_grad_enabled():
                return
            bounds, counts_dead = _activation_kind(module)
            # on a device: an explicit copy of the activations, on recorded steps only
            values = to_host((output[0] if isinstance(output, tuple) else output)._data)
            if not values.size:
                return
            saturated = dead = None
            if bounds is not None:
                low, high = bounds
                saturated = np.count_nonzero((values < low + tol) | (values > high - tol)) \
                    / values.size
            if counts_dead and values.ndim >= 1:
                # a unit is a feature (the last axis), or an image's channel (axis 1 of
                # N, C, H, W: a convolution's unit is its filter, at every position)
                axis = 1 if values.ndim == 4 else -1
                units = np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis])
                dead = np.count_nonzero(~(units > 0).any(axis=0)) / units.shape[1]
            with np.errstate(invalid="ignore", over="ignore"):  # inf and NaN give NaN stats
                mean = float(values.mean(dtype=np.float64))
                std = float(values.std(dtype=np.float64))
            self._pending_activations[name] = (type(module).__name__, mean, std, saturated,
                                               dead)
        return hook

    # -------------------------------------------------------------------------- through time
    def _arm_time(self, on):
        for name, module in self._recurrent:
            module.record_time_grads(functools.partial(self._on_time_grads, name) if on
                                     else None)

    def _on_time_grads(self, name, layer, direction, hidden, cell):
        """The recorder a recurrent module's backward calls (see ``record_time_grads``)."""
        key = f"{name}.l{layer}{'_reverse' if direction else ''}"
        self._pending_time.setdefault(key, []).append(to_host(hidden))  # T numbers
        if cell is not None:
            self._pending_time.setdefault(key + ".cell", []).append(to_host(cell))

    def _take_time(self, index):
        """Move the pending norms into the records of recorded step ``index``; return the
        profiles the checker judges: ``{layer key: norms in the recurrence's order}``."""
        pending, self._pending_time = self._pending_time, {}
        profiles = {}
        for key, parts in pending.items():
            # a sequence length that changed between backward passes: the last one counts
            parts = [p for p in parts if p.shape == parts[-1].shape]
            norms = parts[0] if len(parts) == 1 else np.sqrt(sum(p * p for p in parts))
            indices, rows = self._time_records.setdefault(key, ([], []))
            indices.append(index)
            rows.append(norms)
            if not key.endswith(".cell"):
                profiles[key] = norms[::-1] if key.endswith("_reverse") else norms
        return profiles

    # ---------------------------------------------------------------------------- arenas
    def _arenas(self):
        if self.optimizer is not None:
            return [arena for _, arena in self.optimizer.arenas()]
        arenas = {}
        for p in self._params:
            arena = arena_of(p)
            if arena is not None and arena.intact:
                arenas.setdefault(id(arena), arena)
        return list(arenas.values())

    def _layout(self):
        """The measurement sources, rebuilt when the arenas change."""
        for source in self._sources:
            if not (arena_of(source.params[0]) is None if source.arena is None
                    else source.arena.intact):
                break
        else:
            if self._sources:
                return self._sources
        arenas = self._arenas()
        key = tuple(id(a) for a in arenas)
        if key != self._layout_key or not self._sources:
            sources, covered = [], set()
            for arena in arenas:
                positions = [self._index.get(id(p), -1) for p in arena.params]
                if any(pos >= 0 for pos in positions):
                    sources.append(_Source(arena.params, positions, len(self._params),
                                           self._position, arena))
                    covered.update(pos for pos in positions if pos >= 0)
            sources += [_Source([p], [i], len(self._params), self._position)
                        for i, p in enumerate(self._params) if i not in covered]
            self._sources, self._layout_key = sources, key
        return self._sources

    def _snapshot(self):
        """Copy the parameters, so the next recorded step can measure its update."""
        for source in self._layout():
            source.snapshot()

    # ------------------------------------------------------------------------------ step
    def step(self):
        """Record this training step (call it after ``optimizer.step()``).

        Returns:
            The verdicts that appeared at this step (a list, usually empty).
        """
        step = self.steps
        self.steps += 1
        if self._order_handles:
            self._finish_order()
        new = self._record(step) if step % self.every == 0 else []
        self._clips_seen = clip_count()  # later steps take only the clips that follow
        upcoming = (step + 1) % self.every == 0
        if self.every > 1:
            if upcoming:
                self._snapshot()
            if self._activation_modules:
                self._arm_activations(upcoming)
            if self._recurrent:
                self._arm_time(upcoming)
        return new

    def _record(self, step):
        row = self._table.next()
        layer_sq = np.zeros(self._layer_count)
        clipped, coef, present = False, 1.0, None
        since = self._clips_seen
        clips = clip_count() != since  # any clip since the last step, whose norms to reuse
        for source in self._layout():
            before = source.arena.clip_norms(2.0, since=since) \
                if clips and source.arena is not None else None
            if before is not None:
                before = to_host(before)  # a device's: its few numbers, read once here
            out = row if source.identity else source.norms
            if before is not None:
                clipped = True
                coef = _clip_coefficient(source, before)
                out[0] = before
            missing = source.measure(out, layer_sq, read_grads=before is None)
            if not source.identity:
                row[:, source.dest] = out[:, source.take]
            if missing:
                if present is None:
                    present = np.ones(self._count, bool)
                present[source.dest[np.isin(source.take, missing)]] = False
        squares = layer_sq.tolist()
        layer_grad = [math.sqrt(square) for square in squares]
        total = math.sqrt(sum(squares))
        self._globals.append((total, total * coef, coef) if clipped else
                             (total, total, math.nan))
        self._recorded_steps.append(step)
        if self.optimizer is not None:  # remedies quote the learning rate in force
            self.traits.lr = self.optimizer.param_groups[0]["lr"]
        activations = self._take_activations(step) if self._pending_activations else {}
        new = self._checker.check(step, layer_grad, None if present is None
                                  else self._layers_present(present), total, clipped,
                                  activations)
        if self._recurrent:
            profiles = self._take_time(len(self._recorded_steps) - 1)
            new += self._checker.check_time(step, profiles, clipped)
        return new

    def _layers_present(self, present):
        """Which layers (forward order) have a gradient (a list of bools), from which
        parameters have one (a bool array)."""
        have = [False] * self._layer_count
        for i, here in enumerate(present.tolist()):
            if here:
                have[self._position[i]] = True
        return have

    def _take_activations(self, step):
        pending, self._pending_activations = self._pending_activations, {}
        found = {}
        for name, (kind, mean, std, saturated, dead) in pending.items():
            rows = self._activation_records.setdefault(
                name, {"kind": kind, "step": [], "mean": [], "std": [], "saturated": [],
                       "dead": []})
            for key, value in (("step", step), ("mean", mean), ("std", std),
                               ("saturated", saturated), ("dead", dead)):
                rows[key].append(math.nan if value is None else value)
            found[name] = (kind, saturated, dead)
        return found

    # ---------------------------------------------------------------------------- results
    @property
    def verdicts(self):
        return list(self._checker.verdicts)

    def history(self):
        """Everything recorded, as NumPy arrays (S recorded steps, L layers in forward order,
        P parameters in ``model.named_parameters()`` order).

        Returns:
            A dict with ``step`` (S,), ``layers`` and ``parameters`` (name lists),
            ``grad_norm``, ``param_norm``, ``update_ratio`` (S, L) per layer,
            ``parameter_grad_norm``, ``parameter_norm``, ``parameter_update_ratio`` (S, P),
            ``global_norm`` (S,) before clipping, ``clipped_norm`` (S,) after it,
            ``clip_coef`` (S,) (NaN where clipping did not run), ``activations``:
            ``{layer: {"kind", "step", "mean", "std", "saturated", "dead"}}`` (NaN where not
            applicable), and ``time_grad_norms``: ``{key: (S, T)}`` for each recurrent layer
            and direction recorded at least once, keyed by its dotted module name, layer
            index and direction (``"rnn.l0"``, ``"rnn.l1_reverse"``): row s holds
            :math:`\\lVert \\partial L / \\partial h_t \\rVert` for t = 1..T (the input's time
            order, also for a reverse direction) at recorded step s; for LSTM, the key plus
            ``".cell"`` (``"rnn.l0.cell"``) holds :math:`\\lVert \\partial L / \\partial c_t
            \\rVert` along the cell path: the gradient c_t receives from step t + 1 (from
            c_n at t = T, so 0 there when c_n is unused). Rows are NaN where a layer had no
            backward at that step, and past a row's own T when sequence lengths vary.
        """
        table, totals = self._table.array(), self._totals()
        grad, param, update = table[:, 0], table[:, 1], table[:, 2]
        layer_grad = self._by_layer(grad)
        layer_param = self._by_layer(param)
        layer_update = self._by_layer(update)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = update / param
            layer_ratio = layer_update / layer_param
        return {"step": np.array(self._recorded_steps, np.int64),
                "layers": self.layer_names, "parameters": list(self.parameter_names),
                "grad_norm": layer_grad, "param_norm": layer_param, "update_ratio": layer_ratio,
                "parameter_grad_norm": grad, "parameter_norm": param,
                "parameter_update_ratio": ratio,
                "global_norm": totals[:, 0], "clipped_norm": totals[:, 1],
                "clip_coef": totals[:, 2],
                "activations": {name: {k: (v if k == "kind" else np.array(v, np.float64))
                                       for k, v in rows.items()}
                                for name, rows in self._activation_records.items()},
                "time_grad_norms": self._time_table()}

    def _totals(self):
        """(S, 3): the global norm before and after clipping, and the clip coefficient."""
        return np.array(self._globals, np.float64).reshape(-1, 3)

    def _time_table(self):
        count, table = len(self._recorded_steps), {}
        for key in self.time_keys:
            if key not in self._time_records:
                continue
            indices, rows = self._time_records[key]
            norms = np.full((count, max(len(r) for r in rows)), np.nan)
            for index, row in zip(indices, rows):
                norms[index, :len(row)] = row
            table[key] = norms
        return table

    def _by_layer(self, per_param):
        """(S, P) per-parameter norms -> (S, L) per-layer norms in forward order."""
        layers = np.zeros((per_param.shape[0], len(self._layer_modules)))
        np.add.at(layers.T, self._param_layer, (per_param ** 2).T)
        return np.sqrt(layers)[:, self._order]

    def summary(self):
        """A text table: per layer in forward order, its shape, gradient norm at the first
        and last recorded steps and its median, the median ratio of its gradient norm to the
        output (latest) layer's, the median update-to-parameter ratio and its verdicts; for
        recurrent layers, the gradient through time (first step over last step, effective
        horizon); then the global norm and every verdict with its remedy."""
        return reports.summary(self)

    def to_csv(self, path):
        """Write the history to ``path`` as CSV, one row per recorded step and layer (and per
        activation layer when recorded, and per recurrent layer key and time step, with the
        columns ``time_step`` (from 1) and ``time_grad_norm``)."""
        reports.to_csv(self, path)

    def plot(self, path):
        """Write a PNG to ``path``: gradient norm per layer against depth at a few steps, and
        the global norm against step, both on a log scale; with recurrent layers, also the
        gradient norm against time step at a few recorded steps (of the layer whose gradient
        vanishes most through time). Needs matplotlib (``pip install fastgrad[plot]``)."""
        reports.plot(self, path)

    def to_tensorboard(self, logdir):
        """Write the history to TensorBoard event files in ``logdir`` (through tensorboardX:
        ``pip install fastgrad[tensorboard]``); each call adds the recorded steps and verdicts
        not yet written to that directory, so it can run every few steps or once at the end.

        Written, at each recorded step: scalars ``grad_norm/<layer>`` and
        ``update_ratio/<layer>`` (forward order), ``global_norm`` and ``clipped_norm``; per
        recurrent layer key, scalars ``time/<key>/first_over_last`` and ``time/<key>/horizon``
        and a histogram ``time/<key>`` whose bucket t (t = 1..T) holds
        :math:`\\lVert \\partial L / \\partial h_t \\rVert`, so TensorBoard's histogram tab
        draws the norm against time step at every recorded step. Each verdict is a text
        ``verdicts`` (tag ``verdicts/text_summary``) at its step and a scalar
        ``verdicts/<kind>`` (1 at the step it appeared).

        Args:
            logdir: the log directory (str or ``os.PathLike``), created when missing.

        Returns:
            The number of recorded steps written by this call.
        """
        from . import tensorboard
        return tensorboard.write(self, logdir)

    def state_dict(self):
        """The monitor's state for a checkpoint, in the types :func:`fastgrad.save` stores:
        its history, the forward order of the layers, and what decides its next verdicts
        (which were issued, patience counters, the recent global norms). The parameters'
        snapshot for the next update ratio is not saved: :meth:`load_state_dict` takes it
        from the model, so restore the model first (name it before the monitor in a
        :class:`~fastgrad.train.Checkpointer`).
        """
        return {"parameters": list(self.parameter_names), "every": self.every,
                "steps": self.steps,
                "recorded_steps": np.array(self._recorded_steps, np.int64),
                "table": np.concatenate([self._table.array().reshape(-1, 3 * self._count),
                                         self._totals()], axis=1),
                "order": list(self._order_list) if self.steps else None,
                "activations": [[name, rows["kind"], np.array(rows["step"], np.int64)]
                                + [np.array(rows[k], np.float64)
                                   for k in ("mean", "std", "saturated", "dead")]
                                for name, rows in self._activation_records.items()],
                "time_grad_norms": [
                    [key, np.array(indices, np.int64), np.array([len(r) for r in rows], np.int64),
                     np.concatenate(rows)]
                    for key, (indices, rows) in self._time_records.items()],
                "checker": self._checker.state_dict()}

    def load_state_dict(self, state_dict):
        """Restore :meth:`state_dict`, from a monitor of the same model and ``every``.

        Raises:
            ValueError: the state comes from a model with other parameters or layers, or a
                monitor with another ``every``.
        """
        if list(state_dict["parameters"]) != self.parameter_names:
            raise ValueError("the monitor state was saved for a model with other parameters "
                             f"({len(state_dict['parameters'])}, this model has "
                             f"{len(self.parameter_names)})")
        if state_dict["every"] != self.every:
            raise ValueError(f"the monitor state was saved with every={state_dict['every']}, this "
                             f"monitor has every={self.every}")
        unknown = [key for key, *_ in state_dict["time_grad_norms"] if key not in self.time_keys]
        if unknown:
            raise ValueError(f"the monitor state has recurrent layers {unknown} this model "
                             f"lacks (it has {self.time_keys})")
        if state_dict["order"] is not None:
            self._seen = list(state_dict["order"])
            self._finish_order()
        self._checker.load_state_dict(state_dict["checker"])
        self.steps = int(state_dict["steps"])
        self._recorded_steps = [int(s) for s in state_dict["recorded_steps"]]
        table = np.asarray(state_dict["table"], np.float64)
        self._table = _Rows((3, self._count), table[:, :-3].reshape(-1, 3, self._count))
        self._globals = [tuple(row) for row in table[:, -3:].tolist()]
        self._activation_records = {
            name: {"kind": kind, "step": [int(s) for s in steps],
                   **{k: list(map(float, v)) for k, v in zip(
                       ("mean", "std", "saturated", "dead"), values)}}
            for name, kind, steps, *values in state_dict["activations"]}
        self._time_records = {}
        for key, indices, lengths, norms in state_dict["time_grad_norms"]:
            rows = np.split(np.asarray(norms, np.float64), np.cumsum(lengths)[:-1])
            self._time_records[key] = ([int(i) for i in indices], rows)
        self._pending_activations, self._pending_time = {}, {}
        self._clips_seen = clip_count()
        upcoming = self.steps % self.every == 0
        if self._activation_modules:
            self._arm_activations(upcoming)
        if self._recurrent:
            self._arm_time(upcoming)
        self._snapshot()

    def close(self):
        """Remove every hook and recorder the monitor registered on the model."""
        for handle in self._order_handles:
            handle.remove()
        self._order_handles = []
        self._arm_activations(False)
        self._activation_modules = []
        self._arm_time(False)
        self._recurrent = []


def _clip_coefficient(source, before):
    """The factor clipping applied to the arena: the smallest parameter with a finite,
    non-zero norm before clipping, measured again now (a pass over its elements only)."""
    candidates = [i for i in range(len(before))
                  if source.params[i]._grad is not None and math.isfinite(before[i])
                  and before[i] > 0]
    if not candidates:
        return 1.0 if all(math.isfinite(b) for b in before) else math.nan
    i = min(candidates, key=lambda j: source.sizes[j])
    start, stop = source.offsets[i], source.offsets[i + 1]
    grads = source.arena.grad[start:stop]
    now = zeros(1, np.float64, grads)
    K.segment_norms(grads, source.own_offsets[i], 2.0, now)
    return float(to_host(now)[0] / before[i])
