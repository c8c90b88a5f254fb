"""The runners behind ``fastgrad diagnose`` and ``fastgrad demo``.

:func:`run` trains one configurable network (an MLP or a CNN on the shipped digits, or a
recurrent network on the adding problem) for a fixed number of steps under a
:class:`~fastgrad.diagnostics.GradientMonitor`; :func:`demo` runs the vanishing/exploding
story as eleven such runs with fixed seeds and tabulates what they measured.
"""
import dataclasses
import math
import sys
import time

import numpy as np

from . import autograd
from . import data
from . import models
from . import nn
from . import optim
from . import random as _random
from .diagnostics import GradientMonitor
from .diagnostics import reports
from .tensor import Tensor

#: ``--activation`` choices.
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU}
#: ``--init`` choices: PyTorch's default, Xavier (Glorot) uniform, He (Kaiming) normal.
INITS = ("default", "xavier", "he")
#: ``--optimizer`` choices and their default learning rates.
OPTIMIZERS = {"sgd": 0.05, "adam": 1e-3, "rmsprop": 1e-3}
#: Adding-problem sizes: training and test sequences.
ADDING_TRAIN, ADDING_TEST = 2048, 512
#: The adding problem's baseline: always predicting 1 scores this mean squared error.
ADDING_BASELINE = 1.0 / 6.0


@dataclasses.dataclass
class Config:
    """One training run.

    Attributes:
        cell: None for an MLP on the digits; ``"rnn"`` or ``"lstm"`` for a recurrent network
            on the adding problem (sequence length ``length``).
        conv: True for a convolutional network on the digits as 1x8x8 images instead of the
            MLP: a :class:`fastgrad.models.ResNet` (ReLU), plain unless ``residual``.
        depth: Linear layers of the MLP (input and output layers included), layers with
            weights of the CNN (6n + 2), or recurrent layers of the recurrent network.
        width: hidden units per layer; the CNN's channels in its first stage (doubled in each
            of the two others).
        activation, init, batchnorm, residual: the MLP's or the CNN's design (BatchNorm1d or
            BatchNorm2d; shortcuts around each block). ``init`` also applies to recurrent and
            convolution weights; ``"default"`` is PyTorch's for the MLP and the recurrent
            network, torchvision's for the CNN (He normal, fan_out).
        clip: clip the gradients to this global L2 norm before each step (None: no clipping).
        optimizer, lr, momentum: the optimiser (``lr`` None: its default; ``momentum`` for
            SGD only).
        steps, batch_size, seed, every: training length, batch, seed (weights, data order,
            data), and how often the monitor records.
        activations: record activation statistics.
        label: a name for reports.
    """

    cell: str = None
    conv: bool = False
    depth: int = 20
    width: int = 64
    activation: str = "relu"
    init: str = "default"
    batchnorm: bool = False
    residual: bool = False
    length: int = 50
    clip: float = None
    optimizer: str = "sgd"
    lr: float = None
    momentum: float = 0.9
    steps: int = 300
    batch_size: int = 64
    seed: int = 0
    every: int = 1
    activations: bool = False
    label: str = ""

    def __post_init__(self):
        if self.cell not in (None, "rnn", "lstm"):
            raise ValueError(f"cell must be 'rnn', 'lstm' or None, got {self.cell!r}")
        if self.conv and self.cell:
            raise ValueError(f"conv=True is a CNN on the digits: cell must be None, got "
                             f"{self.cell!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                             f"{self.activation!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        minimum = {"depth": 1 if self.cell else 2, "width": 1, "length": 2, "steps": 1,
                   "batch_size": 1, "every": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.conv:
            if self.depth < 8 or (self.depth - 2) % 6:
                raise ValueError(f"the CNN's depth must be 6n + 2 (8, 14, 20, 32, ...), got "
                                 f"{self.depth}")
            if self.activation != "relu":
                raise ValueError(f"the CNN's activation is ReLU: activation must be 'relu' "
                                 f"with conv=True, got {self.activation!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be a positive number, got {self.clip!r}")
        if self.lr is None:
            self.lr = OPTIMIZERS[self.optimizer]
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")

    @property
    def task(self):
        return "adding" if self.cell else "digits"

    def describe(self):
        """A one-line description of the run."""
        if self.cell:
            model = (f"{self.cell.upper()} x{self.depth}, {self.width} units, on the adding "
                     f"problem (T={self.length})")
        elif self.conv:
            kind = "ResNet" if self.residual else "plain CNN"
            norm = ", BatchNorm2d" if self.batchnorm else ""
            model = (f"{kind} of {self.depth} layers, {self.width}-{2 * self.width}-"
                     f"{4 * self.width} channels, {self.init} init{norm}, on the digits as "
                     f"1x8x8 images")
        else:
            extras = [e for e, on in (("BatchNorm", self.batchnorm),
                                      ("residual", self.residual)) if on]
            model = (f"MLP of {self.depth} Linear layers x {self.width}, {self.activation}, "
                     f"{self.init} init{''.join(', ' + e for e in extras)}, on the digits")
        clip = f", clip {self.clip:g}" if self.clip else ""
        return (f"{model}; {self.optimizer} lr {self.lr:g}{clip}; {self.steps} steps of "
                f"{self.batch_size}; seed {self.seed}")


@dataclasses.dataclass
class Result:
    """What one run measured.

    Attributes:
        config: the run's :class:`Config`.
        monitor: its :class:`~fastgrad.diagnostics.GradientMonitor`.
        train_loss: mean training loss over the last 10% of the steps.
        test_loss: loss on the held-out data (cross-entropy, or mean squared error).
        accuracy: test accuracy on the digits (None on the adding problem).
        steps: steps completed (fewer than asked when the loss stopped being finite).
        seconds: wall-clock time of the training loop.
    """

    config: Config
    monitor: GradientMonitor
    train_loss: float
    test_loss: float
    accuracy: float
    steps: int
    seconds: float

    @property
    def diverged(self):
        return self.steps < self.config.steps

    def depth_ratio(self):
        """Median over recorded steps of the earliest layer's gradient norm over the
        latest's."""
        ratios = reports.layer_ratios(self.monitor.history())
        finite = ratios[np.isfinite(ratios)]
        return float(np.median(finite)) if finite.size else math.nan

    def time_ratio(self):
        """``(ratio, horizon)`` of the first recurrent layer: medians over the last 10% of the
        recorded steps of its ||dL/dh_1|| / ||dL/dh_T|| and of its effective horizon (the
        steps back the gradient stays above ``thresholds.time_vanishing_ratio`` of its value
        at T); ``(nan, nan)`` without recurrent layers."""
        profiles = reports.time_profiles(self.monitor.history(),
                                         self.monitor.thresholds.time_vanishing_ratio)
        if not profiles:
            return math.nan, math.nan
        ratio, horizon, _ = next(iter(profiles.values()))
        tail = slice(-max(1, len(ratio) // 10), None)
        return reports.median(ratio[tail]), reports.median(horizon[tail])

    def max_norm(self):
        """The largest global gradient norm recorded (before clipping); inf or NaN if one
        was not finite."""
        norms = self.monitor.history()["global_norm"]
        if not np.isfinite(norms).all():
            return float(norms[~np.isfinite(norms)][0])
        return float(norms.max()) if norms.size else math.nan


# ----------------------------------------------------------------------------------- models
class SequenceRegressor(nn.Module):
    """A recurrent layer (RNN or LSTM) whose last hidden state a Linear maps to one number.

    Shape:
        input (N, T, features); output (N, 1).
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1):
        super().__init__()
        layer = nn.LSTM if cell == "lstm" else nn.RNN
        self.rnn = layer(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, input):
        output, _ = self.rnn(input)
        return self.head(output[:, -1])


def build_model(config, in_features=64, classes=10):
    """The network a :class:`Config` describes, initialised as it says."""
    if config.cell:
        model = SequenceRegressor(config.cell, 2, config.width, config.depth)
    elif config.conv:
        model = models.ResNet(config.depth, 1, classes,
                              widths=(config.width, 2 * config.width, 4 * config.width),
                              residual=config.residual, batch_norm=config.batchnorm)
    else:
        activation = ACTIVATIONS[config.activation]
        layers = [nn.Linear(in_features, config.width)]
        if config.batchnorm:
            layers.append(nn.BatchNorm1d(config.width))
        layers.append(activation())
        for _ in range(config.depth - 2):
            block = [nn.Linear(config.width, config.width)]
            if config.batchnorm:
                block.append(nn.BatchNorm1d(config.width))
            block.append(activation())
            if config.residual:
                layers.append(nn.Residual(nn.Sequential(*block)))
            else:
                layers.extend(block)
        layers.append(nn.Linear(config.width, classes))
        model = nn.Sequential(*layers)
    if config.init != "default":
        _initialise(model, config)
    return model


def _initialise(model, config):
    """Xavier or He initialisation of every weight matrix and convolution kernel, zero
    biases."""
    nonlinearity = "tanh" if config.cell else config.activation
    gain_name = nonlinearity if nonlinearity in ("sigmoid", "tanh", "relu", "leaky_relu") \
        else "relu"
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            if config.init == "xavier":
                nn.init.xavier_uniform_(param, gain=nn.init.calculate_gain(gain_name))
            else:
                nn.init.kaiming_normal_(param, nonlinearity="relu")
        elif "bias" in name.rsplit(".", 1)[-1]:
            nn.init.zeros_(param)


def _build_optimizer(config, params):
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr)
    return optim.RMSprop(params, lr=config.lr)


def _data(config):
    """``(train, test)``: each ``(x, y)`` NumPy arrays; the digits as (N, 1, 8, 8) images for
    the CNN."""
    if config.cell:
        return (data.adding_problem(ADDING_TRAIN, config.length, seed=config.seed),
                data.adding_problem(ADDING_TEST, config.length, seed=config.seed + 1))
    train, test = data.load_digits(seed=config.seed)
    if config.conv:
        return tuple((x.reshape(-1, 1, 8, 8), y) for x, y in (train, test))
    return train, test


def _batches(x, y, config):
    """Endless shuffled batches (a new seeded order each epoch)."""
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=config.batch_size,
                             shuffle=True, drop_last=len(x) > config.batch_size,
                             generator=_random.Generator(config.seed))
    while True:
        yield from loader


# ----------------------------------------------------------------------------------- runs
class ProgressBar:
    """A one-line progress bar redrawn in place on ``stream`` (stderr), at most 10 times a
    second; draws nothing when disabled (by default, when the stream is not a terminal).

    Args:
        total: the count that means done.
        label: text before the bar.
        stream: where to draw (``sys.stderr`` when None).
        enabled: force drawing on or off (None: only on a terminal).
        width: the bar's width in characters.
    """

    def __init__(self, total, label="", stream=None, enabled=None, width=28):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.label, self.enabled, self.width = max(int(total), 1), label, enabled, width
        self._drawn = 0.0
        self._started = time.perf_counter()

    def update(self, done, note="", force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < 0.1 and done < self.total:
            return
        self._drawn = now
        fraction = min(done / self.total, 1.0)
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} "
                          f"{now - self._started:5.1f}s {note}\033[K")
        self.stream.flush()

    def clear(self):
        """Erase the line (before printing something else)."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def run(config, progress=None, on_verdict=None):
    """Train the network ``config`` describes, with a gradient monitor attached.

    Args:
        config: a :class:`Config`.
        progress: a :class:`ProgressBar` to update, or None.
        on_verdict: called with each verdict as it appears.

    Returns:
        A :class:`Result`. Training stops early, without raising, at a step whose loss is not
        finite (the monitor has flagged it).
    """
    (x_train, y_train), (x_test, y_test) = _data(config)
    _random.manual_seed(config.seed)
    model = build_model(config)
    optimizer = _build_optimizer(config, model.parameters())
    criterion = nn.MSELoss() if config.cell else nn.CrossEntropyLoss()
    monitor = GradientMonitor(model, optimizer, every=config.every,
                              activations=config.activations)
    losses = []
    started = time.perf_counter()
    batches = _batches(x_train, y_train, config)
    for step in range(config.steps):
        x, y = next(batches)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if config.clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        value = loss.item()
        if math.isfinite(value):
            optimizer.step()
        for verdict in monitor.step():
            if on_verdict is not None:
                on_verdict(verdict)
        if not math.isfinite(value):
            break
        losses.append(value)
        if progress is not None:
            progress.update(step + 1, f"loss {value:.3f}")
    seconds = time.perf_counter() - started
    monitor.close()
    tail = losses[-max(1, len(losses) // 10):]
    test_loss, accuracy = evaluate(model, criterion, x_test, y_test, classify=not config.cell)
    return Result(config, monitor, float(np.mean(tail)) if tail else math.nan, test_loss,
                  accuracy, len(losses), seconds)


def evaluate(model, criterion, x, y, classify, batch_size=512):
    """``(mean loss, accuracy or None)`` of ``model`` on ``(x, y)`` in evaluation mode."""
    model.eval()
    total, correct = 0.0, 0
    # a diverged model's NaN weights may give inf - inf on the way: its loss is NaN, no warning
    with autograd.no_grad(), np.errstate(all="ignore"):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out = model(Tensor(xb))
            total += criterion(out, Tensor(yb)).item() * len(xb)
            if classify:
                correct += int((out.argmax(dim=1).numpy() == yb).sum())
    model.train()
    return total / len(x), (correct / len(x) if classify else None)


# ------------------------------------------------------------------------------------ demo
def demo_configs(seed=0, scale=1.0):
    """The demo's eleven runs: four 20-layer MLPs on the digits (sigmoid at PyTorch's default
    initialisation, then one remedy each); the 20-layer plain CNN of He et al. on the digits
    as images, then with shortcuts (a ResNet without BatchNorm) and with BatchNorm2d instead;
    and a plain RNN and an LSTM on the adding problem, each with and without clipping.
    ``scale`` (in (0, 1]) shortens them."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    steps = max(2, int(round(600 * scale)))
    mlp = dict(depth=20, width=64, optimizer="sgd", lr=0.01, momentum=0.9, steps=steps,
               batch_size=64, seed=seed)
    # a third of the MLPs' steps: a CNN step costs about ten MLP steps, and 200 are enough
    # for the remedies to pass 90% while the plain network is still at chance
    cnn = dict(mlp, conv=True, width=16, steps=max(2, int(round(200 * scale))))
    rnn = dict(depth=1, width=32, length=max(4, int(round(30 * scale))), optimizer="adam",
               lr=0.03, steps=steps, batch_size=64, seed=seed)
    return [
        Config(activation="sigmoid", label="sigmoid, default init", **mlp),
        Config(activation="relu", init="he", label="ReLU + He init", **mlp),
        Config(activation="sigmoid", batchnorm=True, label="sigmoid + BatchNorm", **mlp),
        Config(activation="sigmoid", residual=True, label="sigmoid + residual", **mlp),
        Config(label="plain CNN", **cnn),
        Config(residual=True, label="CNN + residual", **cnn),
        Config(batchnorm=True, label="CNN + BatchNorm2d", **cnn),
        Config(cell="rnn", label="RNN", **rnn),
        Config(cell="rnn", clip=1.0, label="RNN + clipping", **rnn),
        Config(cell="lstm", label="LSTM", **rnn),
        Config(cell="lstm", clip=1.0, label="LSTM + clipping", **rnn),
    ]


def demo(seed=0, scale=1.0, progress=None):
    """Run :func:`demo_configs` in order.

    Args:
        seed: the seed of every run.
        scale: fraction of the full number of steps (1 for the demo as published).
        progress: True/False to force the progress bar, None for a terminal only.

    Returns:
        The list of :class:`Result`.
    """
    results = []
    configs = demo_configs(seed, scale)
    for i, config in enumerate(configs, 1):
        bar = ProgressBar(config.steps, f"[{i}/{len(configs)}] {config.label:22s}",
                          enabled=progress)
        results.append(run(config, progress=bar))
        bar.update(results[-1].steps, "done", force=True)
        bar.close()
    return results


def results_table(results):
    """The demo's table: per run, its task, final losses, accuracy, depth ratio, largest
    gradient norm and verdicts."""
    rows = []
    for r in results:
        first = {}   # each kind's first verdict: a kind in time shows the steps it lasted
        for verdict in r.monitor.verdicts:
            first.setdefault(verdict.kind, verdict)
        kinds = [f"{kind} (steps {first[kind].step}-{first[kind].last_step})"
                 if kind.endswith("-in-time") else kind
                 for kind in sorted(first, key=reports.KINDS.index)]
        test = reports.fmt(r.test_loss, ".3f") if math.isfinite(r.test_loss) else "diverged"
        ratio, horizon = r.time_ratio()
        rows.append([r.config.label, r.config.task, reports.fmt(r.train_loss, ".3f"), test,
                     reports.fmt(r.accuracy, ".1%") if r.accuracy is not None else "-",
                     reports.fmt(r.depth_ratio(), ".1e"), reports.fmt(r.max_norm(), ".2g"),
                     reports.fmt(ratio, ".1e") if math.isfinite(ratio) else "-",
                     f"{horizon:.0f}/{r.config.length}" if math.isfinite(horizon) else "-",
                     ", ".join(kinds) or "-"])
    return reports.table(["variant", "task", "train loss", "test loss", "test acc",
                          "grad ratio first/last", "max grad norm", "grad ratio h_1/h_T",
                          "horizon", "verdicts"], rows, "<<>>>>>>><")


def _depth_profiles(results, kind):
    """Per run, the median gradient norm of each ``kind`` layer in forward order; projection
    shortcuts are left out, so every variant has the same depth axis."""
    profiles = []
    for r in results:
        grad = r.monitor.history()["grad_norm"]
        layers = [j for j, (name, layer) in enumerate(zip(r.monitor.layer_names,
                                                          r.monitor.layer_types))
                  if layer == kind and "downsample" not in name]
        profiles.append([reports.median(grad[:, j]) for j in layers])
    return profiles


def plot_demo(results, path):
    """The demo's PNG: median gradient norm per layer against depth for the MLPs and for the
    CNNs; for the recurrent runs, the global gradient norm against step and, at the last
    step, ||dL/dh_t|| against time step t (the vanishing gradient through time); log
    scales."""
    figure, (left, middle, right, time) = reports.new_figure(width=22.0, height=4.6, panels=4)
    mlps = [r for r in results if not r.config.cell and not r.config.conv]
    if mlps:
        reports.plot_depth(left, _depth_profiles(mlps, "Linear"),
                           [r.config.label for r in mlps],
                           f"digits, {mlps[0].config.depth} Linear layers: median gradient norm",
                           xlabel="Linear layer (forward order)")
    cnns = [r for r in results if r.config.conv]
    if cnns:
        reports.plot_depth(middle, _depth_profiles(cnns, "Conv2d"),
                           [r.config.label for r in cnns],
                           f"digits as images, {cnns[0].config.depth}-layer CNN: median "
                           f"gradient norm", xlabel="Conv2d layer (forward order)")
    series = []
    for r in results:
        if r.config.cell:
            history = r.monitor.history()
            series.append((history["step"], history["global_norm"], r.config.label))
    if series:
        reports.plot_steps(right, series, "adding problem: global gradient norm")
    curves = []
    for r in results:
        if r.config.cell:
            norms = r.monitor.history()["time_grad_norms"]
            key = next(k for k in norms if not k.endswith(".cell"))
            curves.append((norms[key][-1], r.config.label))
    if curves:
        reports.plot_time(time, curves, "adding problem: ||dL/dh_t|| at the last step")
    figure.tight_layout()
    figure.savefig(path, format="png")
