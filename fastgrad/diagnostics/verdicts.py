"""Verdicts on gradient health: the thresholds, the checks and the remedy catalogue.

A :class:`Checker` looks at each step the monitor records and issues a :class:`Verdict` the
first time a problem appears; while it persists, the verdict's ``last_step`` and ``worst``
follow it. Every threshold is a field of :class:`Thresholds`, with the value used by default
and the reason for it.

Through time (recurrent layers): :func:`through_time` turns the per-step gradient norms
:math:`\\lVert \\partial L / \\partial h_t \\rVert` of one layer and direction into the ratio and
the effective horizon that ``"vanishing-in-time"`` and ``"exploding-in-time"`` judge.
"""
import dataclasses
import math

import numpy as np

from .. import nn
from ..device import to_host

#: Verdict kinds, in the order reports list them.
KINDS = ("non-finite", "exploding", "vanishing", "exploding-in-time", "vanishing-in-time",
         "saturation", "dead-units")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When the monitor calls a gradient unhealthy. Every field can be overridden, e.g.
    ``GradientMonitor(model, thresholds=Thresholds(vanishing_ratio=1e-4))`` or
    ``thresholds={"window": 20}``.

    Attributes:
        vanishing_ratio: vanishing when the gradient norm of the earliest layer (in forward
            order) divided by that of the latest is below this (1e-3: each layer of a deep
            sigmoid network shrinks the gradient about 4x, so 20 layers give ~1e-12, while
            healthy networks stay within a factor of ~10-100).
        exploding_ratio: exploding when that ratio is above this (1e3): the gradient grows
            with depth, or back through time in a recurrent layer.
        floor: vanishing when a layer's gradient norm stays below this (1e-8, float32
            round-off relative to weights of order 1) ...
        patience: ... for this many consecutive recorded steps (3); the same persistence
            applies to saturation and dead units.
        growth: exploding when the global gradient norm, as the median of the last
            ``patience`` recorded steps, exceeds this many times (10) its median over the
            ``window`` recorded steps before them (a median ignores single spikes).
        window: the number of recorded steps the growth is measured against (10).
        saturation_tol: an output of a sigmoid or tanh within this of the activation's bounds
            (0 or 1, -1 or 1) counts as saturated (1e-2, where the derivative is below 1e-2).
        saturated_fraction: saturation when more than this fraction of a layer's outputs is
            saturated (0.5).
        dead_fraction: dead units when more than this fraction of a ReLU layer's units output
            0 for every example of the batch (0.5).
        time_vanishing_ratio: vanishing in time when, in a recurrent layer (each layer and
            direction of nn.RNN, nn.LSTM, nn.GRU), the gradient norm at the first step the
            recurrence runs through divided by that at its last step,
            :math:`\\lVert \\partial L / \\partial h_1 \\rVert / \\lVert \\partial L / \\partial
            h_T \\rVert` (reversed for a reverse direction), stays below this for ``patience``
            recorded steps (1e-3: what reaches step 1 is then lost in float32 round-off next to
            what reaches step T; a plain tanh RNN shrinks the gradient by about its recurrent
            weights' spectral radius per step). The same fraction of the norm at T defines the
            effective horizon, the number of last steps over which the gradient stays above it.
            With a loss on the last output only (sequence classification, regression), the
            ratio is the product of the step Jacobians, the classic measure of Bengio et al.
            (1994) and Pascanu et al. (2013). With a loss on every output, each h_t also has a
            gradient of its own from its output, so the ratio stays near 1 even when nothing
            from step T reaches step 1: the verdict then does not fire, and the ratio only says
            how evenly the loss spreads over time.
        time_exploding_ratio: exploding in time when that ratio stays above this (1e3) for
            ``patience`` recorded steps: the gradient grows as it goes back in time.
    """

    vanishing_ratio: float = 1e-3
    exploding_ratio: float = 1e3
    floor: float = 1e-8
    patience: int = 3
    growth: float = 10.0
    window: int = 10
    saturation_tol: float = 1e-2
    saturated_fraction: float = 0.5
    dead_fraction: float = 0.5
    time_vanishing_ratio: float = 1e-3
    time_exploding_ratio: float = 1e3

    def __post_init__(self):
        for name in ("vanishing_ratio", "exploding_ratio", "floor", "growth", "saturation_tol",
                     "saturated_fraction", "dead_fraction", "time_vanishing_ratio",
                     "time_exploding_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not value > 0 or not math.isfinite(value):
                raise ValueError(f"Thresholds.{name} must be a positive finite number, got "
                                 f"{value!r}")
        for name in ("patience", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Thresholds.{name} must be a positive int, got {value!r}")

    @classmethod
    def of(cls, value):
        """``value`` as Thresholds: None (the defaults), a Thresholds, or a dict of fields."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(f"unknown threshold(s) {sorted(unknown)}; known: "
                                 f"{[f.name for f in dataclasses.fields(cls)]}")
            return cls(**value)
        raise TypeError(f"thresholds must be None, a Thresholds or a dict, got "
                        f"{type(value).__name__}")


@dataclasses.dataclass
class Verdict:
    """One gradient-health problem, as first detected.

    Attributes:
        kind: one of ``"non-finite"``, ``"exploding"``, ``"vanishing"``,
            ``"exploding-in-time"``, ``"vanishing-in-time"``, ``"saturation"``,
            ``"dead-units"`` (:data:`KINDS`).
        step: the recorded step where it appeared.
        layers: the names of the layers concerned (dotted module names; for the verdicts in
            time, a recurrent layer and direction, e.g. ``"rnn.l0"``, ``"rnn.l1_reverse"``).
        figure: the number that crossed its threshold at ``step``.
        finding: what was seen, in one sentence.
        remedy: what to do about it, for this model.
        last_step: the latest recorded step where it was still seen.
        worst: the most extreme figure seen so far.
    """

    kind: str
    step: int
    layers: tuple
    figure: float
    finding: str
    remedy: str
    last_step: int = None
    worst: float = None

    def __post_init__(self):
        self.last_step = self.step if self.last_step is None else self.last_step
        self.worst = self.figure if self.worst is None else self.worst

    def __str__(self):
        until = f" (still at step {self.last_step})" if self.last_step != self.step else ""
        return f"step {self.step}: {self.kind}: {self.finding}{until}. Remedy: {self.remedy}."

    def state(self):
        """The verdict as plain values (for a checkpoint); ``Verdict(*state)`` rebuilds it."""
        return [self.kind, self.step, list(self.layers), self.figure, self.finding, self.remedy,
                self.last_step, self.worst]


# ------------------------------------------------------------------------------ the model
@dataclasses.dataclass
class ModelTraits:
    """What the remedies need to know about a model, read once from its modules.

    ``recurrent`` lists the model's nn.RNN, nn.LSTM and nn.GRU modules as ``(dotted name,
    class name, hidden_size, num_layers, nonlinearity)`` (nonlinearity None but for nn.RNN),
    so remedies can name their parameters.
    """

    activations: set
    batchnorm: bool
    residual: bool
    rnn: bool
    lstm: bool
    depth: int
    init_gain: float
    lr: float = None
    gru: bool = False
    recurrent: tuple = ()
    conv: bool = False

    @classmethod
    def of(cls, model, optimizer=None):
        from .. import models   # the residual blocks of fastgrad's CNNs
        types = [type(m) for m in model.modules()]
        # the layers with weights along the depth: Linear and Conv (fan-in for their gain)
        layers = [(m, m.weight[0].numel()) for m in model.modules()
                  if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        gains = [float(np.std(to_host(m.weight._data)) * math.sqrt(fan_in))
                 for m, fan_in in layers if fan_in > 0 and m.weight.numel() > 1]
        names = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu",
                 nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.GELU: "gelu"}
        lr = None
        if optimizer is not None and optimizer.param_groups:
            lr = optimizer.param_groups[0].get("lr")
        recurrent = tuple((name or type(m).__name__, type(m).__name__, m.hidden_size,
                           m.num_layers, getattr(m, "nonlinearity", None) if isinstance(
                               m, nn.RNN) else None)
                          for name, m in model.named_modules()
                          if isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)))
        return cls(activations={names[t] for t in types if t in names},
                   batchnorm=any(issubclass(t, nn.BatchNorm1d) or issubclass(t, nn.BatchNorm2d)
                                 for t in types),
                   residual=nn.Residual in types or any(
                       isinstance(m, models.BasicBlock) and m.residual for m in model.modules()),
                   rnn=nn.RNN in types or nn.RNNCell in types,
                   lstm=nn.LSTM in types or nn.LSTMCell in types, depth=len(layers),
                   init_gain=float(np.median(gains)) if gains else math.nan, lr=lr,
                   gru=nn.GRU in types or nn.GRUCell in types, recurrent=recurrent,
                   conv=any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m, _ in layers))


def _join(options):
    options = [o for o in options if o]
    if len(options) <= 1:
        return "".join(options)
    return "; ".join(options[:-1]) + "; or " + options[-1]


def _lr_text(traits, what="lower the learning rate"):
    return f"{what} (now {traits.lr:g})" if traits.lr is not None else what


def remedy_vanishing(traits):
    """Remedies for gradients that vanish towards the early layers (or time steps)."""
    options = []
    saturating = traits.activations & {"sigmoid", "tanh"}
    if traits.rnn:
        options.append("use nn.LSTM instead of nn.RNN: its cell state carries the gradient "
                       "across time steps")
    if traits.lstm:
        options.append("initialise the LSTM forget-gate biases to 1 (bias_ih_l0[H:2H]) so "
                       "the cell keeps its memory from the start")
    layers = "Conv2d and Linear" if traits.conv else "Linear"
    if saturating and traits.depth > 1:
        names = " and ".join(f"nn.{'Sigmoid' if a == 'sigmoid' else 'Tanh'}"
                             for a in sorted(saturating))
        options.append(f"replace {names} by nn.ReLU with He initialisation "
                       "(nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'))")
    elif traits.activations & {"relu", "leaky_relu"} and traits.init_gain < 1.0:
        options.append(f"initialise the {layers} weights with He initialisation "
                       f"(nn.init.kaiming_normal_, gain sqrt(2); now {traits.init_gain:.2f})")
    if not traits.batchnorm and traits.depth > 2:
        options.append("add nn.BatchNorm2d after each Conv2d" if traits.conv
                       else "add nn.BatchNorm1d after each Linear")
    if not traits.residual and traits.depth > 4:
        blocks = ("use residual blocks (fastgrad.models.resnet, or BasicBlock with "
                  "residual=True)" if traits.conv else "wrap blocks in nn.Residual")
        options.append(f"{blocks} so the gradient reaches the early layers through identity "
                       f"paths ({traits.depth} {layers} layers deep now)")
    if not options:
        options.append("use fewer layers, or a larger learning rate for the early ones "
                       "(a parameter group)")
    return _join(options)


def remedy_exploding(traits, clipped):
    """Remedies for gradients that grow with depth, time or training steps."""
    options = []
    if traits.rnn:
        options.append("use nn.LSTM instead of nn.RNN")
    if not clipped:
        options.append("clip by global norm before each step "
                       "(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0))")
    options.append(_lr_text(traits) + " or warm it up (optim.lr_scheduler.LinearLR)")
    if traits.init_gain > 2.0:
        options.append(f"start from smaller weights (nn.init.xavier_uniform_ or "
                       f"kaiming_normal_; gain now {traits.init_gain:.2f})")
    return _join(options)


def _recurrent_of(traits, layers, kind):
    """The ``traits.recurrent`` entries of class ``kind`` that ``layers`` (keys such as
    ``"rnn.l0"``) name, or all of that class when none is named."""
    named = {layer.rsplit(".l", 1)[0] for layer in layers}
    found = [r for r in traits.recurrent if r[1] == kind]
    return [r for r in found if r[0] in named] or found


def remedy_vanishing_in_time(traits, layers, horizon, length):
    """Remedies for a gradient that vanishes going back in time through a recurrent layer.

    Args:
        traits: the model's :class:`ModelTraits`.
        layers: the layer keys concerned (``"rnn.l0"``, ...).
        horizon: the effective horizon in steps; ``length``: the sequence length T.
    """
    options = []
    plain = _recurrent_of(traits, layers, "RNN")
    if plain:
        options.append("use nn.LSTM or nn.GRU instead of nn.RNN: the LSTM's cell state (and "
                       "the GRU's update gate) carries the gradient across time steps")
        name, _, hidden, _, nonlinearity = plain[0]
        if nonlinearity == "relu":
            options.append(f"initialise {name}.weight_hh_l0 as the {hidden}x{hidden} identity "
                           f"(the IRNN of Le et al. 2015) or orthogonally "
                           f"(nn.init.orthogonal_({name}.weight_hh_l0))")
        else:
            options.append(f"initialise the recurrent weights orthogonally "
                           f"(nn.init.orthogonal_({name}.weight_hh_l0), for every layer), so "
                           "each step keeps the gradient's norm instead of shrinking it")
    for name, _, hidden, _, _ in _recurrent_of(traits, layers, "LSTM")[:1]:
        options.append(f"initialise the forget-gate biases to 1 ({name}.bias_ih_l0"
                       f"[{hidden}:{2 * hidden}] = 1 and bias_hh_l0[{hidden}:{2 * hidden}] = 0, "
                       "for every layer) so the cell keeps its memory from the start")
    for name, _, hidden, _, _ in _recurrent_of(traits, layers, "GRU")[:1]:
        options.append(f"initialise the update-gate biases to 1 ({name}.bias_hh_l0"
                       f"[{hidden}:{2 * hidden}] = 1) so h_t starts by carrying h_(t-1) over")
    if 2 * horizon <= length:
        options.append(f"nothing beyond about {horizon} steps back reaches the weights, so "
                       f"truncated backpropagation through time of about {horizon} steps "
                       f"(instead of {length}) loses nothing measurable at a fraction of the "
                       "cost, while dependencies longer than that need the remedies above")
    return _join(options)


def remedy_exploding_in_time(traits, layers, clipped):
    """Remedies for a gradient that grows going back in time through a recurrent layer."""
    options = []
    plain = _recurrent_of(traits, layers, "RNN")
    if plain:
        options.append("use nn.LSTM or nn.GRU instead of nn.RNN")
        options.append(f"initialise the recurrent weights orthogonally "
                       f"(nn.init.orthogonal_({plain[0][0]}.weight_hh_l0)) or scale them to a "
                       "spectral radius below 1")
    if not clipped:
        options.append("clip by global norm before each step "
                       "(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0))")
    options.append("truncate backpropagation through time to fewer steps (run the sequence in "
                   "chunks and detach the hidden state between them)")
    options.append(_lr_text(traits))
    return _join(options)


def through_time(norms, fraction):
    """The ratio and the effective horizon of one layer's gradient through time.

    Args:
        norms: :math:`\\lVert \\partial L / \\partial h_t \\rVert` in the order the recurrence
            runs (t = 1..T for a forward direction; reversed for a reverse one), so the
            gradient flows from the last entry back to the first.
        fraction: the horizon's threshold (:attr:`Thresholds.time_vanishing_ratio`).

    Returns:
        ``(ratio, horizon)``: the first entry over the last (NaN when the last is 0 or either
        is not finite), and how many of the last steps in a row (T included) keep a norm of
        at least ``fraction`` times the last one (T: the gradient reaches the first step;
        0 when the ratio is NaN).
    """
    norms = np.asarray(norms, np.float64)
    first, last = norms[0], norms[-1]
    if not (np.isfinite(first) and np.isfinite(last) and last > 0):
        return math.nan, 0
    below = np.flatnonzero(~(norms[::-1] >= fraction * last))
    return float(first / last), int(below[0]) if below.size else len(norms)


def remedy_nonfinite(traits, clipped):
    """Remedies for NaN or inf gradients."""
    options = ["check the inputs and the loss for NaN and inf",
               _lr_text(traits)]
    if not clipped:
        options.append("clip by global norm (nn.utils.clip_grad_norm_)")
    options.append("skip such steps (optim.SkipNonFinite)")
    return _join(options)


def remedy_saturation(kind):
    """Remedies for a sigmoid or tanh layer stuck at its bounds."""
    return _join(["start from smaller weights (nn.init.xavier_uniform_)",
                  "add nn.BatchNorm1d before the activation",
                  f"use nn.ReLU instead of nn.{kind}"])


def remedy_dead(traits):
    """Remedies for ReLU units that never activate."""
    options = [_lr_text(traits), "use He initialisation with zero biases",
               "use nn.LeakyReLU, whose gradient is never exactly 0"]
    return _join(options)


# ----------------------------------------------------------------------------- the checker
class Checker:
    """Applies the thresholds to each recorded step and keeps the verdicts.

    A problem is issued once, as a :class:`Verdict`, when it first appears; when it is seen
    again, that verdict's ``last_step`` and ``worst`` are updated instead.

    Args:
        thresholds: a :class:`Thresholds`.
        layer_names: the layers, in forward order.
        traits: the model's :class:`ModelTraits`.
    """

    def __init__(self, thresholds, layer_names, traits):
        self.t = thresholds
        self.traits = traits
        self.verdicts = []
        self._issued = {}        # key -> Verdict
        self._streaks = {}       # (kind, name) -> consecutive recorded steps over threshold
        self._norms = []         # the latest recorded global norms (pre-clip)
        self.set_layers(layer_names)

    def state_dict(self):
        """Everything that decides the next verdicts, as plain values (for a checkpoint)."""
        index = {id(v): i for i, v in enumerate(self.verdicts)}
        return {"verdicts": [v.state() for v in self.verdicts],
                "issued": [[key, index[id(v)]] for key, v in self._issued.items()],
                "streaks": [[list(key), count] for key, count in self._streaks.items()],
                "norms": [float(n) for n in self._norms], "below": list(self._below)}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` (after :meth:`set_layers`, whose counters it sets)."""
        if len(state["below"]) != len(self.layer_names):
            raise ValueError(f"the saved checker has {len(state['below'])} layer counters, "
                             f"this model {len(self.layer_names)} layers")
        self.verdicts = [Verdict(kind, step, tuple(layers), *rest)
                         for kind, step, layers, *rest in state["verdicts"]]
        self._issued = {key: self.verdicts[i] for key, i in state["issued"]}
        self._streaks = {tuple(key): count for key, count in state["streaks"]}
        self._norms = list(state["norms"])
        self._below = list(state["below"])
        self._counting = any(self._below)

    def set_layers(self, layer_names):
        """Use these layer names (in forward order) from now on; resets per-layer counters."""
        self.layer_names = list(layer_names)
        self._below = [0] * len(self.layer_names)
        self._counting = False  # any(self._below)
        self._all = list(range(len(self.layer_names)))

    def _issue(self, key, step, kind, layers, figure, texts, new):
        """Issue the verdict ``key`` at ``step``, or update it when issued before.
        ``texts()`` gives ``(finding, remedy)``; it runs only for a new verdict, so a problem
        that persists costs no string formatting."""
        verdict = self._issued.get(key)
        if verdict is None:
            finding, remedy = texts()
            verdict = Verdict(kind, step, tuple(layers), float(figure), finding, remedy)
            self._issued[key] = verdict
            self.verdicts.append(verdict)
            new.append(verdict)
            return
        verdict.last_step = step
        smaller = kind.startswith("vanishing")
        if (figure < verdict.worst) if smaller else (figure > verdict.worst):
            verdict.worst = float(figure)

    def check(self, step, layer_grad, present, total, clipped, activations):
        """The verdicts that appear at ``step``.

        Args:
            step: the step index.
            layer_grad: each layer's gradient norm in forward order (a list of floats).
            present: which layers have gradients at this step (a list of bools), or None
                when all have.
            total: the global gradient norm before clipping.
            clipped: whether clipping ran at this step.
            activations: ``{name: (kind, saturated fraction, dead fraction or None)}`` for
                the activation layers recorded at this step.

        Returns:
            The list of new verdicts (empty almost always).
        """
        t, names, traits, new = self.t, self.layer_names, self.traits, []
        if (present is None and not activations and not self._counting
                and math.isfinite(total) and min(layer_grad, default=t.floor) >= t.floor
                and (len(layer_grad) < 2 or not layer_grad[-1] > 0
                     or t.vanishing_ratio <= layer_grad[0] / layer_grad[-1]
                     <= t.exploding_ratio)):
            # the usual step, told apart cheaply: finite, no layer below the floor (and none
            # counting towards it), the depth ratio within bounds; only growth to check
            self._check_growth(step, total, clipped, new)
            return new
        live = self._all if present is None else [i for i, here in enumerate(present) if here]
        if not math.isfinite(total):
            bad = [names[i] for i in live if not math.isfinite(layer_grad[i])]
            where = f", first in layer {bad[0]}" if bad else ""
            self._issue("non-finite", step, "non-finite", bad[:1], total,
                        lambda: (f"the global gradient norm is {total}{where}",
                                 remedy_nonfinite(traits, clipped)), new)
        if len(live) >= 2:
            first, last = layer_grad[live[0]], layer_grad[live[-1]]
            if math.isfinite(first) and math.isfinite(last) and last > 0:
                ratio = first / last
                if ratio < t.vanishing_ratio or ratio > t.exploding_ratio:
                    self._ratio_verdict(step, ratio, layer_grad, live, clipped, new)
        below, floor = self._below, t.floor
        stuck = []
        for i, norm in enumerate(layer_grad):
            if norm < floor and (present is None or present[i]):
                below[i] += 1
                if below[i] >= t.patience:
                    stuck.append(i)
            else:
                below[i] = 0
        self._counting = any(below)
        if stuck:
            worst = max(layer_grad[i] for i in stuck)
            layers = [names[i] for i in stuck]
            self._issue("vanishing-floor", step, "vanishing", layers, worst, lambda: (
                f"the gradient norm of {len(layers)} layer(s) ({_list(layers)}) has stayed "
                f"below {t.floor:g} for {t.patience} recorded steps (largest {worst:.1e})",
                remedy_vanishing(traits)), new)
        self._check_growth(step, total, clipped, new)
        if activations:
            self._check_activations(step, activations, new)
        return new

    def _ratio_verdict(self, step, ratio, layer_grad, live, clipped, new):
        """Vanishing or exploding by depth: the earliest layer's norm over the latest's."""
        t, names, traits = self.t, self.layer_names, self.traits
        last = layer_grad[live[-1]]

        def shape(threshold, layers, side):
            return (f"the gradient norm of the earliest layer {names[live[0]]} is {ratio:.1e} "
                    f"times that of the latest layer {names[live[-1]]} (threshold "
                    f"{threshold:g}; {len(layers)} layer(s) {side} it: {_list(layers)})")

        if ratio < t.vanishing_ratio:
            layers = [names[i] for i in live if layer_grad[i] / last < t.vanishing_ratio]
            self._issue("vanishing-ratio", step, "vanishing", layers, ratio, lambda: (
                shape(t.vanishing_ratio, layers, "below"), remedy_vanishing(traits)), new)
        else:
            layers = [names[i] for i in live if layer_grad[i] / last > t.exploding_ratio]
            self._issue("exploding-ratio", step, "exploding", layers, ratio, lambda: (
                shape(t.exploding_ratio, layers, "above"), remedy_exploding(traits, clipped)),
                new)

    def _check_growth(self, step, total, clipped, new):
        t, norms = self.t, self._norms
        norms.append(total)
        if len(norms) > t.window + t.patience:
            del norms[0]
        if len(norms) < t.window + t.patience or not math.isfinite(total):
            return
        floor = t.growth * min(norms[:t.window])  # the window's median is at least its minimum
        if not max(norms[t.window:]) > floor:
            return  # cheap rejection: the recent steps' median is at most their maximum
        recent = _median(norms[t.window:])
        if not recent > floor:
            return
        before = _median(norms[:t.window])
        if before > 0 and recent > t.growth * before:
            self._issue("exploding-growth", step, "exploding", (), recent / before, lambda: (
                f"the global gradient norm grew {recent / before:.0f}x, from a median of "
                f"{before:.2g} over {t.window} recorded steps to {recent:.2g} over the last "
                f"{t.patience}", remedy_exploding(self.traits, clipped)), new)

    def check_time(self, step, profiles, clipped):
        """The verdicts in time that appear at ``step``.

        Args:
            step: the step index.
            profiles: ``{layer key: norms}``: each recurrent layer's and direction's gradient
                norms at every time step, in the order the recurrence runs (see
                :func:`through_time`), for those recorded at this step.
            clipped: whether clipping ran at this step.

        Returns:
            The list of new verdicts. One verdict per kind names every layer over its
            threshold for ``patience`` recorded steps in a row; a layer not recorded at a step
            starts its count again.
        """
        t, new = self.t, []
        flagged = {"vanishing-in-time": [], "exploding-in-time": []}
        seen = set()
        for key, norms in profiles.items():
            ratio, horizon = through_time(norms, t.time_vanishing_ratio)
            kind = "vanishing-in-time" if ratio < t.time_vanishing_ratio else \
                "exploding-in-time" if ratio > t.time_exploding_ratio else None
            if kind is None:
                continue
            seen.add((kind, key))
            streak = self._streaks[kind, key] = self._streaks.get((kind, key), 0) + 1
            if streak >= t.patience:
                flagged[kind].append((ratio, key, horizon, len(norms)))
        for key in [k for k in self._streaks if k[0] in flagged and k not in seen]:
            del self._streaks[key]
        for kind, found in flagged.items():
            if found:
                worst = (min if kind == "vanishing-in-time" else max)(found)
                self._issue(kind, step, kind, [key for _, key, _, _ in found], worst[0],
                            lambda kind=kind, found=found, worst=worst: self._time_texts(
                                kind, found, worst, clipped), new)
        return new

    def _time_texts(self, kind, found, worst, clipped):
        ratio, key, horizon, length = worst
        layers = [k for _, k, _, _ in found]
        others = f" (and {_list(layers[1:])})" if len(layers) > 1 else ""
        if kind == "vanishing-in-time":
            threshold = self.t.time_vanishing_ratio
            finding = (f"in {key}{others} the gradient reaching the first time step is "
                       f"{ratio:.1e} times the one at the last (threshold {threshold:g}, for "
                       f"{self.t.patience} recorded steps): it stays above {threshold:g} of its "
                       f"value at the last step for {horizon} of {length} steps (effective "
                       f"horizon {horizon})")
            return finding, remedy_vanishing_in_time(self.traits, layers, horizon, length)
        finding = (f"in {key}{others} the gradient reaching the first time step is {ratio:.1e} "
                   f"times the one at the last (threshold {self.t.time_exploding_ratio:g}, for "
                   f"{self.t.patience} recorded steps): it grows going back in time")
        return finding, remedy_exploding_in_time(self.traits, layers, clipped)

    def _check_activations(self, step, activations, new):
        """Saturation and dead units: one verdict per kind, naming every activation layer
        over its threshold for ``patience`` recorded steps in a row."""
        t = self.t
        for label, column, limit in (("saturation", 1, t.saturated_fraction),
                                     ("dead-units", 2, t.dead_fraction)):
            flagged = []
            for name, stats in activations.items():
                key, value = (label, name), stats[column]
                if value is None or not value > limit:
                    self._streaks.pop(key, None)
                    continue
                self._streaks[key] = self._streaks.get(key, 0) + 1
                if self._streaks[key] >= t.patience:
                    flagged.append((value, name, stats[0]))
            if flagged:
                worst = max(flagged)
                self._issue(label, step, label, [name for _, name, _ in flagged], worst[0],
                            lambda label=label, flagged=flagged: self._activation_texts(
                                label, flagged), new)

    def _activation_texts(self, label, flagged):
        value, name, kind = max(flagged)
        layers = _list(f"{n} ({k})" for _, n, k in flagged)
        if label == "saturation":
            return (f"more than {self.t.saturated_fraction:.0%} of the outputs of "
                    f"{len(flagged)} layer(s) ({layers}) are within {self.t.saturation_tol:g} "
                    f"of their bounds, where the derivative is near 0 (worst {name}: "
                    f"{value:.0%})", remedy_saturation(kind))
        return (f"more than {self.t.dead_fraction:.0%} of the units of {len(flagged)} "
                f"layer(s) ({layers}) output 0 for the whole batch, so they pass no gradient "
                f"(worst {name}: {value:.0%})", remedy_dead(self.traits))


def _median(values):
    """The median of a non-empty list of floats (``statistics.median``'s value, at a
    third of its cost: the growth check runs at every recorded step)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _list(names, limit=4):
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... {len(names) - limit} more"
