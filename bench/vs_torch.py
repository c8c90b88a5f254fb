"""fastgrad against PyTorch on eight training workloads, each library in its own process.

    python bench/vs_torch.py --json vs_torch.json        # 3 rounds, 2 threads: the table
    python bench/report.py --vs-torch vs_torch.json      # the same table again, from the file
    python bench/vs_torch.py --only mlp tiny --rounds 5  # some workloads
    python bench/vs_torch.py --smoke --libs fastgrad     # CI: tiny sizes, seconds in all

Why separate processes: one process holding both PyTorch's OpenMP pool and OpenBLAS's (or
Numba's) pool makes each stall the other, so a same-process comparison (bench/test_workloads.py)
distorts both libraries. Here every measurement is a fresh worker process
(``--worker LIB WORKLOAD``) that imports only its own library, with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set by the driver before it starts and
``set_num_threads`` called in it. For each workload the driver runs the fastgrad worker, then
the PyTorch worker, flipping that order every round so that drifting load hits both alike,
and reports per library the median over rounds of each process's median step time. Each
worker also measures how many cores other processes kept busy while it timed (Linux's
/proc/stat less its own CPU time); above ``report.BUSY_CORES`` the worker is run again, up to
``--retries`` times, and the least disturbed attempt is kept (the table marks a cell whose
rounds stayed busy with ``*``).

A worker builds its workload from one seeded NumPy generator, the same weights and inputs for
both libraries (copied in with ``load_state_dict`` or as parameters), runs warm-up steps (at
least three and a tenth of the time budget; the first one, which compiles fastgrad's kernels,
is reported apart), then times steps for about ``--seconds`` and prints one JSON line: the
median, 10th and 90th percentile step times, the number of steps, library versions, the
threads in force, fastgrad's backend, and a check value from the first step (a loss, or a norm
where the workload has no loss). The driver compares the two libraries' check values: they
must agree to 1e-3 relative, or the model code is not the same computation and the ratio
means nothing.

The workload code is written once against a library module ``fw`` (``fastgrad`` or
``torch``): fastgrad follows PyTorch's API (``fw.nn.Linear``, ``fw.optim.Adam``,
``fw.nn.utils.clip_grad_norm_``, ``fw.autograd.backward``). ``--device cuda`` runs the same
workloads on a GPU (CUDA tensors, ``fastgrad[cuda]`` against PyTorch CUDA, each in its own
process), at the batch sizes of the rows' ``gpu`` sizes, every timed step followed by
``cuda.synchronize()``: ``fw`` is then a :class:`OnDevice` that makes tensors and modules on
the device. Ratio = PyTorch's time over
fastgrad's: above 1, fastgrad is faster. The Adam rows share fastgrad's run and differ in
PyTorch's: ``fused=True`` and the default (which on CPU is the single-tensor for-loop: PyTorch
2.13 only defaults to ``foreach`` on accelerators).
"""
import argparse
import datetime
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

import machine  # bench/machine.py
import report  # bench/report.py: the table

F32 = np.float32
LIBRARIES = ("fastgrad", "torch")
#: Thread-count variables the driver sets for every worker, before it starts.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Warm-up before timing: at least this many steps, and this share of the time budget.
WARMUP_STEPS, WARMUP_SHARE = 3, 0.1
#: Timed steps: at least MIN_STEPS, at most MAX_STEPS (a bound on a tiny step's sample).
MIN_STEPS, MAX_STEPS = 5, 200_000
#: Largest relative difference of the first step's check values of the two libraries.
CHECK_TOLERANCE = 1e-3
_HERE = os.path.abspath(__file__)
_ROOT = os.path.dirname(os.path.dirname(_HERE))


# ------------------------------------------------------------------------------ workloads
@dataclass
class Step:
    """A built workload.

    Attributes:
        run: one training step (the timed call).
        check: after the first step, a scalar both libraries must agree on.
        check_name: what ``check`` returns ("loss", "total norm", ...).
        reset: called before every step, untimed (restores what a step consumed).
    """

    run: Callable[[], None]
    check: Callable[[], float]
    check_name: str
    reset: Optional[Callable[[], None]] = None


class OnDevice:
    """A library module (``fastgrad`` or ``torch``) whose ``tensor`` and ``nn`` layers make
    their tensors and modules on ``device``; every other name is the library's."""

    def __init__(self, library, device):
        self.library, self.device = library, device
        self.nn = _LayersOn(library.nn, device)

    def __getattr__(self, name):
        return getattr(self.library, name)

    def tensor(self, data, **kwargs):
        return self.library.tensor(data, device=self.device, **kwargs)

    def place(self, module):
        """``module`` moved to the device."""
        return module.to(self.device)

    def synchronize(self):
        """Wait for the device's queued work (nothing to wait for on the CPU)."""
        if self.device != "cpu":
            self.library.cuda.synchronize()


class _LayersOn:
    """A library's ``nn`` whose Module classes make their modules on ``device`` (``Module``
    itself stays the class, to subclass)."""

    def __init__(self, nn, device):
        self._nn, self._device = nn, device

    def __getattr__(self, name):
        value = getattr(self._nn, name)
        if isinstance(value, type) and issubclass(value, self._nn.Module) \
                and value is not self._nn.Module:
            return lambda *args, **kwargs: value(*args, **kwargs).to(self._device)
        return value


def _uniform(rng, shape, fan_in):
    """PyTorch's default Linear and LSTM initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(F32)


def _load(fw, module, state):
    """Copy the NumPy arrays of ``state`` into ``module``; every parameter must be given (only
    buffers such as BatchNorm's running statistics keep their defaults)."""
    result = module.load_state_dict({k: fw.tensor(v) for k, v in state.items()}, strict=False)
    missing = set(result.missing_keys) & {name for name, _ in module.named_parameters()}
    if missing or result.unexpected_keys:
        raise KeyError(f"weights not loaded: missing {sorted(missing)}, unexpected "
                       f"{result.unexpected_keys}")


def _norm(tensors):
    """The 2-norm of all of ``tensors`` together, in float64."""
    total = 0.0
    for tensor in tensors:
        values = tensor.detach().cpu().numpy().astype(np.float64).ravel()
        total += float(values @ values)
    return math.sqrt(total)


def _many_tensors(fw, total, count):
    """A model's worth of parameters: ``count`` float32 tensors of random lengths summing to
    ``total``, each with a gradient set; returns them and the gradients as NumPy arrays."""
    rng = np.random.default_rng(5)
    shares = rng.uniform(0.5, 1.5, count)
    lengths = (shares / shares.sum() * total).astype(np.int64)
    lengths[-1] += total - lengths.sum()   # the rounding remainder: under `count`
    params = [fw.nn.Parameter(fw.tensor(0.1 * rng.standard_normal(n, F32))) for n in lengths]
    grads = [rng.standard_normal(n, F32) for n in lengths]
    for param, grad in zip(params, grads):
        param.grad = fw.tensor(grad)
    return params, grads


def clip_grad_norm(fw, dims, options):
    """``clip_grad_norm_(params, 1.0)`` on gradients whose norm is far above 1, so that every
    call reads all gradients and scales them all; they are restored (untimed) before each."""
    params, grads = _many_tensors(fw, *dims)
    # as in training, an optimiser holds the parameters (fastgrad's packs the gradients into
    # one arena, which its clipping then reads in one pass)
    fw.optim.SGD(params, lr=0.1)
    originals = [fw.tensor(grad) for grad in grads]
    last = {}

    def reset():
        for param, original in zip(params, originals):
            param.grad.copy_(original)

    def run():
        last["total"] = fw.nn.utils.clip_grad_norm_(params, 1.0)

    return Step(run, lambda: float(last["total"]), "total norm", reset)


def adam(fw, dims, options):
    """One ``optim.Adam(params, lr=1e-3)`` step over the parameters of
    :func:`clip_grad_norm` (their gradients fixed); ``options`` are PyTorch's (``fused``)."""
    params, _ = _many_tensors(fw, *dims)
    optimizer = fw.optim.Adam(params, lr=1e-3, **options)
    return Step(optimizer.step, lambda: _norm(params), "parameter norm")


def batchnorm(fw, dims, options):
    """``nn.BatchNorm1d(C)`` in training mode on (N, C), forward and backward from a fixed
    output gradient, the input's gradient included (as inside a network)."""
    batch, channels = dims
    rng = np.random.default_rng(2)
    layer = fw.nn.BatchNorm1d(channels)
    _load(fw, layer, {"weight": rng.uniform(0.5, 1.5, channels).astype(F32),
                      "bias": rng.standard_normal(channels, F32)})
    x = fw.tensor(2 * rng.standard_normal(dims, F32) + 1, requires_grad=True)
    grad_out = fw.tensor(rng.standard_normal(dims, F32))

    def run():
        layer.zero_grad()
        x.grad = None
        fw.autograd.backward([layer(x)], [grad_out])

    return Step(run, lambda: _norm([x.grad]), "input gradient norm")


def _sequential(fw, rng, widths, activation, with_batchnorm=False, last_activation=False):
    """``Linear`` layers of ``widths``, each but the last (or each, with ``last_activation``)
    followed by ``BatchNorm1d`` (with ``with_batchnorm``) and ``activation``; weights drawn from
    ``rng`` as PyTorch initialises them, BatchNorm at its defaults (weight 1, bias 0)."""
    layers, state = [], {}
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        state[f"{len(layers)}.weight"] = _uniform(rng, (n_out, n_in), n_in)
        state[f"{len(layers)}.bias"] = _uniform(rng, n_out, n_in)
        layers.append(fw.nn.Linear(n_in, n_out))
        if i < len(widths) - 2 or last_activation:
            if with_batchnorm:
                state[f"{len(layers)}.weight"] = np.ones(n_out, F32)
                state[f"{len(layers)}.bias"] = np.zeros(n_out, F32)
                layers.append(fw.nn.BatchNorm1d(n_out))
            layers.append(getattr(fw.nn, activation)())
    model = fw.nn.Sequential(*layers)
    _load(fw, model, state)
    return model



def _training_step(fw, forward, params, inputs, target, criterion, optimizer, clip,
                   options=None):
    """The step every training workload times: zero_grad, ``forward``, loss, backward,
    ``clip_grad_norm_(params, clip)`` unless ``clip`` is None, optimiser step; the first
    step's loss is the check. With ``options["captured"]`` (fastgrad's rows only) the forward
    and the loss are one captured callable (:func:`fastgrad.graphs.make_graphed_callables`),
    replayed from the second step on."""

    def loss_of(x, y):
        return criterion(forward(x), y)

    if (options or {}).get("captured"):
        loss_of = fw.graphs.make_graphed_callables(loss_of)
    last = {}

    def run():
        optimizer.zero_grad()
        last["loss"] = loss = loss_of(inputs, target)
        loss.backward()
        if clip is not None:
            fw.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    return Step(run, lambda: float(last["loss"].item()), "loss")


def mlp(fw, dims, options):
    """A ReLU MLP (``dims = (batch, width_0, ..., classes)``), cross-entropy, clipping to 1,
    ``SGD(lr=0.01, momentum=0.9)``."""
    batch, *widths = dims
    rng = np.random.default_rng(7)
    model = _sequential(fw, rng, widths, "ReLU")
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((batch, widths[0]), F32))
    target = fw.tensor(rng.integers(0, widths[-1], batch))
    optimizer = fw.optim.SGD(params, lr=0.01, momentum=0.9)
    return _training_step(fw, model, params, x, target, fw.nn.CrossEntropyLoss(), optimizer,
                          1.0, options)


def tiny(fw, dims, options):
    """Linear+Tanh blocks (``dims = (batch, width_0, ..., width_n)``), MSE to a fixed target,
    ``Adam(lr=1e-3)``, no clipping: nearly all per-op overhead."""
    batch, *widths = dims
    rng = np.random.default_rng(8)
    model = _sequential(fw, rng, widths, "Tanh", last_activation=True)
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((batch, widths[0]), F32))
    target = fw.tensor(rng.uniform(-1, 1, (batch, widths[-1])).astype(F32))
    optimizer = fw.optim.Adam(params, lr=1e-3)
    return _training_step(fw, model, params, x, target, fw.nn.MSELoss(), optimizer, None,
                          options)


def sigmoid_bn(fw, dims, options):
    """A deep sigmoid MLP with BatchNorm1d after every hidden Linear, in the digits data's
    shape (``dims = (batch, inputs, width, Linear layers, classes)``), cross-entropy, clipping
    to 1, ``SGD(lr=0.01)``."""
    batch, n_in, width, depth, classes = dims
    rng = np.random.default_rng(9)
    model = _sequential(fw, rng, [n_in] + [width] * (depth - 1) + [classes], "Sigmoid",
                        with_batchnorm=True)
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((batch, n_in), F32))
    target = fw.tensor(rng.integers(0, classes, batch))
    optimizer = fw.optim.SGD(params, lr=0.01)
    return _training_step(fw, model, params, x, target, fw.nn.CrossEntropyLoss(), optimizer,
                          1.0, options)


def lstm(fw, dims, options):
    """``nn.LSTM(input, hidden)`` over a time-major sequence (``dims = (steps, batch, input,
    hidden)``), MSE of every step's output to a fixed target, clipping to 1,
    ``Adam(lr=1e-3)``."""
    steps, batch, n_in, hidden = dims
    rng = np.random.default_rng(4)
    model = fw.nn.LSTM(n_in, hidden)
    shapes = {"weight_ih_l0": (4 * hidden, n_in), "weight_hh_l0": (4 * hidden, hidden),
              "bias_ih_l0": (4 * hidden,), "bias_hh_l0": (4 * hidden,)}
    _load(fw, model, {name: _uniform(rng, shape, hidden) for name, shape in shapes.items()})
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((steps, batch, n_in), F32))
    target = fw.tensor(0.5 * rng.standard_normal((steps, batch, hidden), F32))
    optimizer = fw.optim.Adam(params, lr=1e-3)
    return _training_step(fw, lambda inputs: model(inputs)[0], params, x, target,
                          fw.nn.MSELoss(), optimizer, 1.0, options)


def _random_state(model, rng):
    """Weights for every layer of ``model``, drawn in module order as PyTorch initialises
    Linear and Conv layers (uniform in +-1/sqrt(fan_in), the bias too), BatchNorm at its
    defaults (weight 1, bias 0): both libraries' models have the same names and shapes, so
    both get the same weights."""
    state = {}
    for prefix, module in model.named_modules():
        prefix += "." if prefix else ""
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if weight is None:
            continue
        if hasattr(module, "running_mean"):
            state[prefix + "weight"] = np.ones(tuple(weight.shape), F32)
            state[prefix + "bias"] = np.zeros(tuple(bias.shape), F32)
            continue
        fan_in = math.prod(weight.shape[1:])
        state[prefix + "weight"] = _uniform(rng, tuple(weight.shape), fan_in)
        if bias is not None:
            state[prefix + "bias"] = _uniform(rng, tuple(bias.shape), fan_in)
    return state


def conv(fw, dims, options):
    """``nn.Conv2d(C, O, k, padding=k // 2)`` alone (``dims = (batch, C, O, size, k)``),
    forward and backward from a fixed output gradient, the input's gradient included (as
    inside a network)."""
    batch, channels, out_channels, size, k = dims
    rng = np.random.default_rng(3)
    layer = fw.nn.Conv2d(channels, out_channels, k, padding=k // 2)
    _load(fw, layer, _random_state(layer, rng))
    x = fw.tensor(rng.standard_normal((batch, channels, size, size), F32), requires_grad=True)
    grad_out = fw.tensor(rng.standard_normal((batch, out_channels, size, size), F32))

    def run():
        layer.zero_grad()
        x.grad = None
        fw.autograd.backward([layer(x)], [grad_out])

    return Step(run, lambda: _norm([x.grad]), "input gradient norm")


def cnn(fw, dims, options):
    """Conv(1->C1, 3x3, pad 1)-BN-ReLU-MaxPool(2)-Conv(C1->C2, 3x3, pad 1)-BN-ReLU-
    AdaptiveAvgPool(1)-Flatten-Linear(C2, classes) on 1xSxS images (``dims = (batch, S, C1,
    C2, classes)``), cross-entropy, ``SGD(lr=0.01, momentum=0.9)``."""
    batch, size, c1, c2, classes = dims
    rng = np.random.default_rng(10)
    nn = fw.nn
    model = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, classes))
    _load(fw, model, _random_state(model, rng))
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((batch, 1, size, size), F32))
    target = fw.tensor(rng.integers(0, classes, batch))
    optimizer = fw.optim.SGD(params, lr=0.01, momentum=0.9)
    return _training_step(fw, model, params, x, target, nn.CrossEntropyLoss(), optimizer, None,
                          options)


def _torch_resnet(torch, depth, widths, classes):
    """PyTorch's module of the structure of ``fastgrad.models.resnet`` (torchvision's
    ``BasicBlock`` and names, three stages), built here since torchvision is not a dependency:
    its state_dict has fastgrad's keys, so both get the same weights."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(planes), nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None if stride == 1 and inplanes == planes else nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = (depth - 2) // 6
            self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
            stages, inplanes = [], widths[0]
            for stage, planes in enumerate(widths):
                stages.append(nn.Sequential(*[
                    BasicBlock(inplanes if i == 0 else planes, planes,
                               2 if stage and i == 0 else 1) for i in range(blocks)]))
                inplanes = planes
            self.layer1, self.layer2, self.layer3 = stages
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(widths[-1], classes)

        def forward(self, x):
            x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def resnet(fw, dims, options):
    """The digits ResNet: ``fastgrad.models.resnet(depth)`` (widths 16, 32, 64) on 1xSxS
    images (``dims = (batch, S, depth, classes)``), cross-entropy,
    ``SGD(lr=0.01, momentum=0.9)``."""
    batch, size, depth, classes = dims
    rng = np.random.default_rng(11)
    if fw.__name__ == "fastgrad":
        import fastgrad.models
        model = fw.place(fastgrad.models.resnet(depth, 1, classes))
    else:
        model = fw.place(_torch_resnet(fw.library, depth, (16, 32, 64), classes))
    _load(fw, model, _random_state(model, rng))
    params = list(model.parameters())
    x = fw.tensor(rng.standard_normal((batch, 1, size, size), F32))
    target = fw.tensor(rng.integers(0, classes, batch))
    optimizer = fw.optim.SGD(params, lr=0.01, momentum=0.9)
    return _training_step(fw, model, params, x, target, fw.nn.CrossEntropyLoss(), optimizer,
                          None, options)


@dataclass(frozen=True)
class Workload:
    """One row of the table.

    Attributes:
        name: the name on the command line (``--only``, ``--worker``).
        label: the row's text.
        goal: the ratio (PyTorch's time over fastgrad's) the row aims at.
        build: ``build(fw, dims, options) -> Step``; rows with the same ``build`` and
            ``dims`` share fastgrad's run.
        dims: the sizes to publish.
        smoke: small sizes of the same shape (``--smoke``).
        gpu: the sizes on a GPU (``--device cuda``), batches that fill one; None: ``dims``.
        torch_options: PyTorch's extra keyword arguments for this row.
        fastgrad_options: fastgrad's (``captured``: the training step's forward and loss
            replayed as a captured step, see :mod:`fastgrad.graphs`).
    """

    name: str
    label: str
    goal: float
    build: Callable[..., Step]
    dims: tuple
    smoke: tuple
    gpu: Optional[tuple] = None
    torch_options: dict = field(default_factory=dict)
    fastgrad_options: dict = field(default_factory=dict)

    def options(self, library):
        return self.torch_options if library == "torch" else self.fastgrad_options

    def sizes(self, device, smoke):
        """The sizes to run at: ``smoke``'s, else the device's."""
        if smoke:
            return self.smoke
        return self.gpu if device != "cpu" and self.gpu is not None else self.dims


WORKLOADS = {w.name: w for w in (
    Workload("clip", "clip_grad_norm_, 10M float32 params in 100 tensors", 2, clip_grad_norm,
             (10_000_000, 100), (20_000, 10)),
    Workload("adam_fused", "Adam step, same model, vs `fused=True`", 1.2, adam,
             (10_000_000, 100), (20_000, 10), {"fused": True}),
    Workload("adam_default", "Adam step, same model, vs the default (for-loop on CPU)", 3, adam,
             (10_000_000, 100), (20_000, 10)),
    Workload("batchnorm", "BatchNorm1d(1024) forward+backward, batch 256", 1.5, batchnorm,
             (256, 1024), (16, 64), gpu=(4096, 1024)),
    Workload("mlp", "MLP 784-256-256-10 ReLU, CE, backward, clip 1.0, SGD-momentum step, "
             "batch 64", 1.5, mlp, (64, 784, 256, 256, 10), (8, 49, 16, 16, 10),
             gpu=(4096, 784, 256, 256, 10)),
    Workload("tiny", "tiny step: 3 x Linear(8,8)+Tanh, MSE, Adam, batch 16", 5, tiny,
             (16, 8, 8, 8, 8), (16, 8, 8, 8, 8)),
    Workload("sigmoid_bn", "20-layer sigmoid MLP with BatchNorm1d (width 64, digits-sized: 64 "
             "inputs, 10 classes), CE, clip, SGD step, batch 64", 2, sigmoid_bn,
             (64, 64, 64, 20, 10), (8, 64, 8, 20, 10), gpu=(1024, 64, 64, 20, 10)),
    Workload("lstm", "LSTM(256, 512), T=50, batch 64, forward+backward+clip+Adam", 1.2, lstm,
             (50, 64, 256, 512), (5, 4, 16, 32), gpu=(50, 256, 256, 512)),
    Workload("cnn", "CNN step: Conv(1->32)-BN-ReLU-MaxPool-Conv(32->64)-BN-ReLU-AvgPool-Linear, "
             "CE, SGD-momentum, batch 64 on 1x28x28", 1, cnn, (64, 28, 32, 64, 10),
             (4, 8, 4, 8, 10), gpu=(512, 28, 32, 64, 10)),
    Workload("resnet", "digits ResNet-20 step (16-32-64 channels, 1x8x8 images), CE, "
             "SGD-momentum, batch 64", 1, resnet, (64, 8, 20, 10), (4, 8, 8, 10),
             gpu=(512, 8, 20, 10)),
    Workload("conv_small", "Conv2d(32, 64, 3, padding=1) forward+backward, batch 64, 14x14", 1,
             conv, (64, 32, 64, 14, 3), (2, 4, 8, 6, 3)),
    Workload("conv_large", "Conv2d(64, 128, 3, padding=1) forward+backward, batch 32, 32x32", 1,
             conv, (32, 64, 128, 32, 3), (2, 4, 8, 8, 3)),
)}
#: The training steps that also have a row with fastgrad's captured step (the same PyTorch
#: run, eager: PyTorch has no CPU equivalent), each right after its eager row.
CAPTURED = ("mlp", "tiny", "sigmoid_bn", "lstm", "cnn", "resnet")
WORKLOADS = {name: row for workload in WORKLOADS.values() for name, row in (
    [(workload.name, workload)] + ([(f"{workload.name}_captured", replace(
        workload, name=f"{workload.name}_captured", label=f"{workload.label} (captured step)",
        fastgrad_options={"captured": True}))] if workload.name in CAPTURED else []))}


# --------------------------------------------------------------------------------- worker
def _timed(step, synchronize):
    """One step's wall time, its reset excluded, until the device has done its work."""
    if step.reset is not None:
        step.reset()
        synchronize()
    start = time.perf_counter()
    step.run()
    synchronize()
    return time.perf_counter() - start


def _busy_seconds():
    """CPU seconds every process together has used since boot (Linux's /proc/stat; time
    stolen by a hypervisor included), or None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _, _, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(step, seconds, synchronize=lambda: None):
    """Warm up, then time steps for about ``seconds``: the first step's time (compilation
    included), the warm-up steps, the check value, the step times' quantiles, and how many
    cores other processes kept busy meanwhile (None where that cannot be read): on a shared
    machine a thread waiting at a barrier for a descheduled partner loses whole scheduler
    slices, so that figure says whether the times can be trusted."""
    first = _timed(step, synchronize)
    check = dict(name=step.check_name, value=step.check())
    warmup, started = 1, time.perf_counter()
    while warmup < WARMUP_STEPS or time.perf_counter() - started < WARMUP_SHARE * seconds:
        _timed(step, synchronize)
        warmup += 1
    busy, own = _busy_seconds(), time.process_time()
    times, started = [], time.perf_counter()
    while len(times) < MIN_STEPS or (time.perf_counter() - started < seconds
                                     and len(times) < MAX_STEPS):
        times.append(_timed(step, synchronize))
    wall = time.perf_counter() - started
    other = None if busy is None else max(
        0.0, (_busy_seconds() - busy - (time.process_time() - own)) / wall)
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return dict(median_s=float(median), p10_s=float(p10), p90_s=float(p90), steps=len(times),
                warmup_steps=warmup, first_step_s=first, check=check, other_cpu_cores=other)


def _threads_in_force(fw, requested):
    """The thread counts a worker runs with: requested, the library's, BLAS pools (when
    threadpoolctl is installed) and the environment."""
    threads = {"requested": requested, fw.__name__: fw.get_num_threads(),
               "env": {name: os.environ.get(name, "unset") for name in THREAD_VARIABLES}}
    if importlib.util.find_spec("threadpoolctl") is not None:
        import threadpoolctl
        threads["pools"] = {f"{pool['internal_api']} ({os.path.basename(pool['filepath'])})":
                            pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    return threads


def worker(library, name, threads, seconds, smoke, device="cpu"):
    """Time workload ``name`` with ``library`` alone in this process, on ``device``; returns
    the JSON record."""
    workload = WORKLOADS[name]
    fw = OnDevice(importlib.import_module(library), device)
    fw.set_num_threads(threads)
    dims = workload.sizes(device, smoke)
    options = workload.options(library)
    record = dict(library=library, workload=name, dims=list(dims), options=options,
                  device=device)
    record.update(measure(workload.build(fw, dims, options), seconds, fw.synchronize))
    other = [lib for lib in LIBRARIES if lib != library and lib in sys.modules]
    if other:
        raise RuntimeError(f"the {library} worker loaded {other[0]}")
    record.update(
        versions={module: sys.modules[module].__version__
                  for module in ("numpy", "numba", library) if module in sys.modules},
        python=platform.python_version(),
        backend=fw.backends.current() if library == "fastgrad" else None,
        threads=_threads_in_force(fw, threads))
    return record


def _worker_main(library, name, threads, seconds, smoke, device):
    """Print the worker's JSON line; a failure is printed as ``{"error": ...}`` (exit 1), so
    that the driver puts it in the table instead of stopping."""
    try:
        record = worker(library, name, threads, seconds, smoke, device)
    except Exception as error:   # any failure of the library under test is a result
        traceback.print_exc()
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(record))
    return 0


# --------------------------------------------------------------------------------- driver
def run_worker(library, workload, arguments):
    """Start one worker process and return its record (``{"error": ...}`` if it failed)."""
    env = dict(os.environ, **{name: str(arguments.threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, _HERE, "--worker", library, workload.name,
               "--threads", str(arguments.threads), "--seconds", str(arguments.seconds),
               "--device", arguments.device]
    if arguments.smoke:
        command.append("--smoke")
    try:
        completed = subprocess.run(command, cwd=_ROOT, env=env, capture_output=True,
                                   text=True, timeout=arguments.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {arguments.timeout:g} s"}
    lines = completed.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        errors = completed.stderr.strip().splitlines()
        return {"error": f"exit {completed.returncode}: "
                         f"{errors[-1] if errors else 'no output'}"}


def summarise(records):
    """One library's figures for a row from its per-round worker records: the median of the
    rounds' medians, each round's median, p10 and p90, step counts, and the first successful
    round's check, backend, versions and threads; failed rounds are listed under
    ``errors`` (only errors: the row's cell shows the first)."""
    good = [r for r in records if "error" not in r]
    summary = {"errors": [r["error"] for r in records if "error" in r]}
    if good:
        summary.update(
            median_s=statistics.median(r["median_s"] for r in good),
            rounds=[{k: r[k] for k in ("median_s", "p10_s", "p90_s", "steps", "warmup_steps",
                                       "first_step_s", "other_cpu_cores",
                                       "busy_retries")} for r in good],
            **{k: good[0][k] for k in ("check", "backend", "versions", "threads", "dims",
                                       "options")})
    return summary


def compare(fastgrad, torch):
    """The row's ratio (PyTorch's median over fastgrad's, None unless both ran) and the
    comparison of the first step's check values (None unless both ran)."""
    if "median_s" not in fastgrad or "median_s" not in torch:
        return None, None
    a, b = fastgrad["check"]["value"], torch["check"]["value"]
    difference = abs(a - b) / max(abs(b), 1e-30)
    check = dict(name=fastgrad["check"]["name"], fastgrad=a, torch=b,
                 relative_difference=difference, tolerance=CHECK_TOLERANCE,
                 agree=bool(difference <= CHECK_TOLERANCE))
    return torch["median_s"] / fastgrad["median_s"], check


def _busy(record):
    return (record.get("other_cpu_cores") or 0) > report.BUSY_CORES


def _quiet_record(library, workload, arguments, where, log):
    """A worker's record, the worker run again (up to ``arguments.retries`` times) while other
    processes kept more than ``report.BUSY_CORES`` cores busy during its timing; the least
    disturbed attempt is kept, with the number of retries."""
    attempts = []
    while True:
        record = run_worker(library, workload, arguments)
        attempts.append(record)
        figure = (report.format_time(record["median_s"]) if "error" not in record
                  else record["error"])
        busy = _busy(record)
        print(f"{where} {workload.name} {library}: {figure}" + (
            f" (other processes busy: {record['other_cpu_cores']:.2f} cores)" if busy
            else ""), file=log, flush=True)
        if not busy or len(attempts) > arguments.retries:
            break
    best = min(attempts, key=lambda r: r.get("other_cpu_cores") or 0)
    if "error" not in best:
        best["busy_retries"] = len(attempts) - 1
    return best


def _run_key(library, workload):
    """Rows with the same key share ``library``'s run: the same build at the same sizes with
    the same options of that library (``adam_fused`` and ``adam_default`` share fastgrad's,
    ``tiny`` and ``tiny_captured`` PyTorch's)."""
    return library, workload.build, workload.dims, tuple(sorted(workload.options(library).items()))


def drive(workloads, libraries, arguments, log=sys.stderr):
    """Run every round and return the rows of the results file. Per round and group of rows
    (the same build at the same sizes), each distinct run of the group in row order, fastgrad
    before PyTorch, in reverse order every other round."""
    records = {}
    groups = {}
    for workload in workloads:
        group = groups.setdefault((workload.build, workload.dims), {})
        for library in LIBRARIES:
            if library in libraries:
                group.setdefault(_run_key(library, workload), workload)
    for round_ in range(arguments.rounds):
        for group in groups.values():
            jobs = list(group.items())
            for key, workload in jobs[::-1] if round_ % 2 else jobs:
                record = _quiet_record(key[0], workload, arguments,
                                       f"round {round_ + 1}/{arguments.rounds}", log)
                records.setdefault(key, []).append(record)
    rows = []
    for workload in workloads:
        fastgrad = summarise(records.get(_run_key("fastgrad", workload), []))
        torch = summarise(records.get(_run_key("torch", workload), []))
        ratio, check = compare(fastgrad, torch)
        if check is not None and not check["agree"]:
            print(f"warning: {workload.name}: the first step's {check['name']} differs, "
                  f"fastgrad {check['fastgrad']:.6g} vs PyTorch {check['torch']:.6g}",
                  file=log, flush=True)
        rows.append(dict(name=workload.name, label=workload.label, goal=workload.goal,
                         fastgrad=fastgrad if "fastgrad" in libraries else None,
                         torch=torch if "torch" in libraries else None,
                         ratio=ratio, check=check))
    return rows


def _gpu_name():
    """The first GPU's name from nvidia-smi, or None."""
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return names.strip().splitlines()[0] if names.strip() else None


def _load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "WORKLOAD"),
                        help="time one workload with one library in this process (internal)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads per process (default 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of alternated processes (default 3; 1 with --smoke)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds of timed steps per process (default 1.5; 0.05 with "
                             "--smoke)")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), metavar="NAME",
                        help=f"these workloads only: {', '.join(WORKLOADS)}")
    parser.add_argument("--libs", nargs="+", choices=LIBRARIES, metavar="LIB",
                        help="libraries to time (default: fastgrad, and torch when installed)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one round, short timing: checks the code, not speed")
    parser.add_argument("--retries", type=int, default=None,
                        help="times a worker is run again when other processes kept more "
                             f"than {report.BUSY_CORES} cores busy while it timed (default 2; "
                             "0 with --smoke)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before a worker is stopped (default 600)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both libraries train (default cpu; cuda: a GPU, at the "
                             "rows' GPU sizes)")
    parser.add_argument("--json", metavar="PATH", help="write the results to PATH")
    arguments = parser.parse_args(argv)
    if arguments.rounds is None:
        arguments.rounds = 1 if arguments.smoke else 3
    if arguments.seconds is None:
        arguments.seconds = 0.05 if arguments.smoke else 1.5
    if arguments.retries is None:
        arguments.retries = 0 if arguments.smoke else 2
    if arguments.worker:
        library, name = arguments.worker
        if library not in LIBRARIES or name not in WORKLOADS:
            parser.error(f"--worker takes one of {LIBRARIES} and one of {list(WORKLOADS)}")
        return _worker_main(library, name, arguments.threads, arguments.seconds,
                            arguments.smoke, arguments.device)
    if arguments.threads < 1 or arguments.rounds < 1 or arguments.seconds <= 0 \
            or arguments.retries < 0:
        parser.error("--threads and --rounds must be at least 1, --seconds positive and "
                     "--retries not negative")

    libraries = arguments.libs or ["fastgrad"] + (
        ["torch"] if importlib.util.find_spec("torch") is not None else [])
    workloads = [WORKLOADS[name] for name in arguments.only or WORKLOADS]
    load_before = _load_average()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows = drive(workloads, libraries, arguments)
    document = {
        "kind": report.VS_TORCH_KIND,
        "datetime": started,
        "settings": dict(threads=arguments.threads, rounds=arguments.rounds,
                         seconds=arguments.seconds, smoke=arguments.smoke,
                         device=arguments.device,
                         retries=arguments.retries,
                         libraries=libraries, thread_variables=list(THREAD_VARIABLES)),
        "environment": dict(cpu_model=machine.cpu_model(), cores=os.cpu_count(),
                            gpu=_gpu_name() if arguments.device == "cuda" else None,
                            python=platform.python_version(),
                            commit=machine.git("rev-parse", "--short", "HEAD"),
                            dirty=bool(machine.git("status", "--porcelain",
                                                   "--untracked-files=no")),
                            load_average={"before": load_before, "after": _load_average()}),
        "rows": rows,
    }
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
    sys.stdout.write(report.render_vs_torch(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
