"""Workload benchmarks: layers, optimiser steps and whole training steps on every available
fastgrad backend and on PyTorch, float32, with the compile-time figures.

    python -m pytest bench --benchmark-only --benchmark-json=results.json   # the full run
    python bench/report.py results.json                 # markdown tables: medians and ratios
    python -m pytest bench --benchmark-only -m "not large and not compile"  # a quick run
    python -m pytest bench -q --benchmark-disable       # CI's smoke run: each case once

Sizes. A timed run uses the sizes of issue 5 (Linear+ReLU (batch, in, out) = (64, 784, 256),
(256, 1024, 1024), (1024, 4096, 1024) and (8, 8, 8); BatchNorm1d (256, 1024) and (4096, 512);
LSTM batch 64, input 256, hidden 512, one cell step and 100 steps of ``nn.LSTM``; clipping and
an Adam step over 10M parameters in 100 tensors; a triad on 40 MiB and 256 MiB arrays; a
training step of a 784-256-256-10 ReLU MLP at batch 64 and 256 and of three Linear(8, 8)
layers at batch 16). With ``--benchmark-disable`` (each case called once, nothing timed) every
case runs at a smoke size of the same shape instead, about a sixteenth of each dimension, so
the smoke run checks every case in seconds (``FASTGRAD_BENCH_SIZES=full`` or ``=smoke``
overrides the choice, see bench/conftest.py); the ids and groups name the sizes actually run.
The ``large`` marker tags the biggest cases.

Rows of a group (the ``backend`` in each case's extra_info): a fastgrad backend name
(``numpy``, ``numba``: that backend forced with :func:`fastgrad.backends.use`), ``torch``,
``torch-fused`` (Adam with ``fused=True``), and reference lines: ``gemm3-numpy`` and
``gemm3-torch`` (the three GEMMs of a Linear's forward and backward, alone, into preallocated
outputs) and, for the triad, ``numba`` meaning a plain parallel Numba loop. fastgrad and
PyTorch run the same model code: fastgrad follows PyTorch's API, and :class:`_Framework`
holds the few calls that differ.

Each case: inputs and weights from one seeded generator, the same for every row; one warm-up
call outside the timing (JIT compilation, first-touch page faults, PyTorch's lazy set-up);
then about ``FASTGRAD_BENCH_TIME`` seconds (default 1) of timed calls. The warm-up call's
results are checked against the ``numpy`` row's (the reference backend; ``gemm3-torch``
against ``gemm3-numpy``) by the norm-wise relative error of each result, recorded in
extra_info. Threads: see bench/conftest.py.

Compile-time figures (group ``compile``, marker ``compile``), each from fresh Python
processes: ``import fastgrad`` (with and without NumPy's own import); the cold compile of every
kernel of the numba backend for float32 and float64 (``fastgrad.backends.warmup()``, or each
kernel's examples where that does not exist) with an empty ``NUMBA_CACHE_DIR``; the first MLP
training step of a fresh process with a cold and then a warm cache. They are stored in
extra_info["figures"]; the smoke run checks the measuring code with ``NUMBA_DISABLE_JIT=1``
(its figures say nothing about compiling). A warm-cache figure is only meaningful while the
kernel sources stay untouched: an edit between the two processes invalidates the cache.
"""
import contextlib
import functools
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest

import fastgrad
from fastgrad import backends, config

pytest.importorskip("pytest_benchmark")

F32 = np.float32
BACKENDS = backends.available()
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMBA = importlib.util.find_spec("numba") is not None
TIME_PER_CASE_S = float(os.environ.get("FASTGRAD_BENCH_TIME", "1.0"))
MIN_ROUNDS, MAX_ROUNDS = 5, 5000
MIB = 2 ** 20
#: Run the smoke sizes (FASTGRAD_BENCH_SIZES, settled by bench/conftest.py).
SMOKE = os.environ.get("FASTGRAD_BENCH_SIZES") == "smoke"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _uniform(rng, shape, fan_in):
    """PyTorch's default weight and bias initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(F32)


# --------------------------------------------------------------------------- the frameworks
class _Framework:
    """What differs between fastgrad and PyTorch in the workloads: making tensors, backward
    through several outputs, reading values back, loading weights. The rest (``nn``,
    ``optim``, ``nn.utils.clip_grad_norm_``) is the same code for both."""

    def __init__(self, name):
        self.name = name
        self.module = fastgrad if name == "fastgrad" else _torch()
        self.nn, self.optim = self.module.nn, self.module.optim

    def tensor(self, array, requires_grad=False):
        """A tensor holding a copy of ``array``."""
        if self.name == "fastgrad":
            return fastgrad.tensor(array, requires_grad=requires_grad)
        return self.module.from_numpy(np.array(array)).requires_grad_(requires_grad)

    def parameter(self, array):
        if self.name == "fastgrad":
            return self.nn.Parameter(np.array(array))
        return self.nn.Parameter(self.module.from_numpy(np.array(array)))

    def backward(self, outputs, gradients):
        """Backward from ``outputs`` with the tensors ``gradients`` (made ahead, untimed)."""
        if self.name == "fastgrad":
            fastgrad.autograd.backward(outputs, gradients)
        else:
            self.module.autograd.backward(outputs, gradients)

    def numpy(self, tensor):
        """The values of ``tensor`` (shared memory where possible)."""
        return tensor.numpy() if self.name == "fastgrad" else tensor.detach().numpy()

    def load(self, module, state, strict=True):
        if self.name == "torch":
            state = {k: self.module.from_numpy(v) for k, v in state.items()}
        module.load_state_dict(state, strict=strict)


def _torch():
    import torch
    return torch


@functools.lru_cache(maxsize=None)
def _framework(name):
    return _Framework(name)


# ------------------------------------------------------------------------------- workloads
@dataclass
class Case:
    """One built benchmark case.

    Attributes:
        run: the timed call.
        results: the named results after a call (arrays, possibly shared memory).
        reset: called before every call, untimed (e.g. restore gradients a call scales).
        bytes: nominal bytes moved per call, for GB/s (None: not memory-bound).
    """

    run: Callable[[], object]
    results: Callable[[], dict]
    reset: Optional[Callable[[], None]] = None
    bytes: Optional[int] = None


class Workload:
    """A family of benchmark cases: sizes, seeded inputs, and one implementation per row.

    ``model_case(framework, dims, options)`` builds the fastgrad rows (under the backend's
    ``use``) and the torch rows from the same code; ``options`` holds a torch row's extra
    keyword arguments (``fused=True``). Subclasses may add reference rows in ``extra_rows``
    built by a method of the same name (``-`` read as ``_``).
    """

    name = ""
    sizes = ()
    large = ()
    #: Largest norm-wise relative error of any result against the reference row.
    tolerance = 1e-4
    torch_rows = {"torch": {}}
    extra_rows = ()

    def label(self, dims):
        return "x".join(str(d) for d in dims)

    def smoke(self, dims):
        return tuple(max(2, d // 16) for d in dims)

    def rows(self):
        rows = list(BACKENDS)
        if HAS_TORCH:
            rows += list(self.torch_rows)
        return rows + [r for r in self.extra_rows if HAS_TORCH or "torch" not in r]

    def reference_row(self, row):
        """The row whose results ``row`` is checked against, or None (the oracle)."""
        if row == "numpy" or row.endswith("-numpy"):
            return None
        if row.startswith("gemm3-"):
            return "gemm3-numpy"
        return "numpy"

    def backend(self, row):
        """The fastgrad backend to force while ``row`` runs, or None."""
        return row if row in BACKENDS else None

    def build(self, row, dims):
        if row in BACKENDS:
            return self.model_case(_framework("fastgrad"), dims, {})
        if row in self.torch_rows:
            return self.model_case(_framework("torch"), dims, self.torch_rows[row])
        return getattr(self, row.replace("-", "_"))(dims)

    def inputs(self, dims):
        """Fresh arrays of the inputs and weights (a new copy on every call)."""
        raise NotImplementedError

    def model_case(self, fw, dims, options):
        raise NotImplementedError


class LinearReLU(Workload):
    """``nn.Sequential(nn.Linear(in, out), nn.ReLU())`` forward and backward, the input's
    gradient included; fastgrad fuses the pair into one kernel each way."""

    name = "linear_relu"
    sizes = ((64, 784, 256), (256, 1024, 1024), (1024, 4096, 1024), (8, 8, 8))
    large = ((1024, 4096, 1024),)
    extra_rows = ("gemm3-numpy", "gemm3-torch")

    def inputs(self, dims):
        batch, n_in, n_out = dims
        rng = np.random.default_rng(1)
        return dict(x=rng.standard_normal((batch, n_in), F32),
                    weight=_uniform(rng, (n_out, n_in), n_in), bias=_uniform(rng, n_out, n_in),
                    grad_out=rng.standard_normal((batch, n_out), F32))

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        model = fw.nn.Sequential(fw.nn.Linear(dims[1], dims[2]), fw.nn.ReLU())
        fw.load(model, {"0.weight": d["weight"], "0.bias": d["bias"]})
        x = fw.tensor(d["x"], requires_grad=True)
        grad_out = fw.tensor(d["grad_out"])
        last = {}

        def run():
            model.zero_grad()
            x.grad = None
            last["y"] = y = model(x)
            fw.backward([y], [grad_out])

        def results():
            return dict(y=fw.numpy(last["y"]), grad_x=fw.numpy(x.grad),
                        grad_weight=fw.numpy(model[0].weight.grad),
                        grad_bias=fw.numpy(model[0].bias.grad))
        return Case(run, results)

    def _gemm3(self, dims, mm, convert):
        d = {k: convert(v) for k, v in self.inputs(dims).items()}
        batch, n_in, n_out = dims
        out = dict(y=convert(np.empty((batch, n_out), F32)),
                   grad_x=convert(np.empty((batch, n_in), F32)),
                   grad_weight=convert(np.empty((n_out, n_in), F32)))

        def run():
            mm(d["x"], d["weight"].T, out=out["y"])
            mm(d["grad_out"], d["weight"], out=out["grad_x"])
            mm(d["grad_out"].T, d["x"], out=out["grad_weight"])
        return Case(run, lambda: {k: np.asarray(v) for k, v in out.items()})

    def gemm3_numpy(self, dims):
        return self._gemm3(dims, np.matmul, lambda a: a)

    def gemm3_torch(self, dims):
        torch = _torch()
        return self._gemm3(dims, torch.mm, torch.from_numpy)


class BatchNorm1d(Workload):
    """``nn.BatchNorm1d(C)`` in training mode on (N, C), forward and backward."""

    name = "batchnorm1d"
    sizes = ((256, 1024), (4096, 512))

    def inputs(self, dims):
        batch, channels = dims
        rng = np.random.default_rng(2)
        return dict(x=(2 * rng.standard_normal(dims, F32) + 1),
                    weight=rng.uniform(0.5, 1.5, channels).astype(F32),
                    bias=rng.standard_normal(channels, F32),
                    grad_out=rng.standard_normal(dims, F32))

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        layer = fw.nn.BatchNorm1d(dims[1])
        fw.load(layer, {"weight": d["weight"], "bias": d["bias"]}, strict=False)
        x = fw.tensor(d["x"], requires_grad=True)
        grad_out = fw.tensor(d["grad_out"])
        last = {}

        def run():
            layer.zero_grad()
            x.grad = None
            last["y"] = y = layer(x)
            fw.backward([y], [grad_out])

        def results():
            return dict(y=fw.numpy(last["y"]), grad_x=fw.numpy(x.grad),
                        grad_weight=fw.numpy(layer.weight.grad),
                        grad_bias=fw.numpy(layer.bias.grad))
        return Case(run, results)


def _lstm_weights(rng, n_in, hidden, suffix=""):
    """PyTorch's LSTM parameters (gate order i, f, g, o), initialised as PyTorch does."""
    shapes = {"weight_ih": (4 * hidden, n_in), "weight_hh": (4 * hidden, hidden),
              "bias_ih": (4 * hidden,), "bias_hh": (4 * hidden,)}
    return {name + suffix: _uniform(rng, shape, hidden) for name, shape in shapes.items()}


class LSTMCell(Workload):
    """One ``nn.LSTMCell`` step forward and backward through both outputs, with the
    gradients of the input and of the incoming state (as inside an unrolled sequence)."""

    name = "lstm_cell"
    sizes = ((64, 256, 512),)

    def inputs(self, dims):
        batch, n_in, hidden = dims
        rng = np.random.default_rng(3)
        d = {k: rng.standard_normal((batch, n), F32)
             for k, n in (("x", n_in), ("h0", hidden), ("c0", hidden), ("grad_h", hidden),
                          ("grad_c", hidden))}
        return dict(d, weights=_lstm_weights(rng, n_in, hidden))

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        cell = fw.nn.LSTMCell(dims[1], dims[2])
        fw.load(cell, d["weights"])
        x, h0, c0 = (fw.tensor(d[k], requires_grad=True) for k in ("x", "h0", "c0"))
        grads = [fw.tensor(d["grad_h"]), fw.tensor(d["grad_c"])]
        last = {}

        def run():
            cell.zero_grad()
            x.grad = h0.grad = c0.grad = None
            h, c = cell(x, (h0, c0))
            last["h"], last["c"] = h, c
            fw.backward([h, c], grads)

        def results():
            values = dict(h=fw.numpy(last["h"]), c=fw.numpy(last["c"]), grad_x=fw.numpy(x.grad),
                          grad_h0=fw.numpy(h0.grad), grad_c0=fw.numpy(c0.grad))
            values.update((name, fw.numpy(p.grad)) for name, p in cell.named_parameters())
            return values
        return Case(run, results)


class LSTMSequence(Workload):
    """``nn.LSTM(input, hidden)`` over a whole time-major sequence, forward and backward
    from a gradient on every step's output."""

    name = "lstm_seq"
    sizes = ((100, 64, 256, 512),)
    large = sizes
    tolerance = 1e-3   # a hundred steps of float32 recurrence, each backend its own GEMMs

    def inputs(self, dims):
        steps, batch, n_in, hidden = dims
        rng = np.random.default_rng(4)
        return dict(x=rng.standard_normal((steps, batch, n_in), F32),
                    grad_out=rng.standard_normal((steps, batch, hidden), F32),
                    weights=_lstm_weights(rng, n_in, hidden, "_l0"))

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        lstm = fw.nn.LSTM(dims[2], dims[3])
        fw.load(lstm, d["weights"])
        x, grad_out = fw.tensor(d["x"]), fw.tensor(d["grad_out"])
        last = {}

        def run():
            lstm.zero_grad()
            out, _ = lstm(x)
            last["out"] = out
            fw.backward([out], [grad_out])

        def results():
            values = dict(out=fw.numpy(last["out"]))
            values.update((name, fw.numpy(p.grad)) for name, p in lstm.named_parameters())
            return values
        return Case(run, results)


class _ManyTensors(Workload):
    """A model's worth of parameters: ``dims = (total elements, tensors)``, tensors of
    random lengths around the mean, as a network's weights and biases."""

    sizes = ((10_000_000, 100),)
    large = sizes

    def label(self, dims):
        total, count = dims
        return f"{total / 1e6:g}Mx{count}" if total >= 1e6 else f"{total}x{count}"

    def smoke(self, dims):
        return dims[0] // 64, dims[1] // 10

    def inputs(self, dims):
        total, count = dims
        rng = np.random.default_rng(5)
        shares = rng.uniform(0.5, 1.5, count)
        lengths = (shares / shares.sum() * total).astype(np.int64)
        lengths[-1] += total - lengths.sum()   # the rounding remainder: under `count`
        return dict(values=[0.1 * rng.standard_normal(n, F32) for n in lengths],
                    grads=[rng.standard_normal(n, F32) for n in lengths])

    def parameters(self, fw, d):
        """The parameters, each with its gradient set."""
        params = [fw.parameter(v) for v in d["values"]]
        for p, g in zip(params, d["grads"]):
            p.grad = fw.tensor(g)
        return params


class ClipGradNorm(_ManyTensors):
    """``nn.utils.clip_grad_norm_(params, 1.0)`` on gradients whose norm is far above 1, so
    every call measures all norms and scales every gradient; the gradients are restored
    (untimed) before each call."""

    name = "clip_grad_norm"

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        params = self.parameters(fw, d)
        fw.optim.SGD(params, lr=0.1)   # fastgrad: packs the gradients into one arena
        grads = [fw.numpy(p.grad) for p in params]
        last = {}

        def reset():
            for grad, original in zip(grads, d["grads"]):
                np.copyto(grad, original)

        def run():
            last["total"] = fw.nn.utils.clip_grad_norm_(params, 1.0)

        def results():
            return dict(total=np.asarray(fw.numpy(last["total"])),
                        grads=np.concatenate([fw.numpy(p.grad) for p in params]))
        # the norms read every gradient, the scale reads and writes each once more
        return Case(run, results, reset=reset, bytes=3 * 4 * dims[0])


class Adam(_ManyTensors):
    """One ``optim.Adam(params, lr=1e-3)`` step (PyTorch: its default for-loop and
    ``fused=True``)."""

    name = "adam"
    torch_rows = {"torch": {}, "torch-fused": {"fused": True}}

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        params = self.parameters(fw, d)
        optimizer = fw.optim.Adam(params, lr=1e-3, **options)

        def results():
            return dict(params=np.concatenate([fw.numpy(p) for p in params]))
        # reads parameter, gradient and both moments, writes parameter and moments
        return Case(optimizer.step, results, bytes=7 * 4 * dims[0])


if HAS_NUMBA:
    import numba

    @config.jit(parallel=True)
    def _numba_triad(a, b, c, scalar):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + scalar * c[i]


class Triad(Workload):
    """STREAM's triad ``a = b + s c`` on float32 arrays of ``dims[0]`` MiB each: the memory
    bandwidth reference (GB/s counted as STREAM does, three arrays per call)."""

    name = "triad"
    sizes = ((40,), (256,))
    large = ((256,),)

    def label(self, dims):
        return f"{dims[0]}MiB"

    def smoke(self, dims):
        return (max(1, dims[0] // 40),)

    def rows(self):
        return ["numpy"] + (["numba"] if HAS_NUMBA else []) + (["torch"] if HAS_TORCH else [])

    def backend(self, row):
        return None

    def build(self, row, dims):
        n = dims[0] * MIB // 4
        rng = np.random.default_rng(6)
        a, b, c = np.empty(n, F32), rng.standard_normal(n, F32), rng.standard_normal(n, F32)
        scalar = F32(3.0)
        if row == "numpy":
            def run():
                np.multiply(c, scalar, out=a)
                np.add(a, b, out=a)
        elif row == "numba":
            def run():
                _numba_triad(a, b, c, scalar)
        else:
            torch = _torch()
            ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))

            def run():
                torch.add(tb, tc, alpha=float(scalar), out=ta)
        return Case(run, lambda: {"a": a}, bytes=3 * 4 * n)


class TrainingStep(Workload):
    """One training step of a ReLU MLP: zero_grad, forward, ``nn.CrossEntropyLoss``,
    backward, ``clip_grad_norm_(max_norm=1)``, ``optim.SGD(lr=0.01, momentum=0.9)``.
    ``dims = (batch, width_0, ..., classes)``."""

    name = "mlp_step"
    sizes = ((64, 784, 256, 256, 10), (256, 784, 256, 256, 10))

    def smoke(self, dims):
        return tuple(max(4, d // 16) for d in dims)

    def inputs(self, dims):
        batch, *widths = dims
        rng = np.random.default_rng(7)
        state = {}
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            state[f"{2 * i}.weight"] = _uniform(rng, (n_out, n_in), n_in)
            state[f"{2 * i}.bias"] = _uniform(rng, n_out, n_in)
        return dict(x=rng.standard_normal((batch, widths[0]), F32),
                    target=rng.integers(0, widths[-1], batch), state=state)

    def model_case(self, fw, dims, options):
        d = self.inputs(dims)
        widths = dims[1:]
        layers = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(fw.nn.Linear(n_in, n_out))
            if i < len(widths) - 2:
                layers.append(fw.nn.ReLU())
        model = fw.nn.Sequential(*layers)
        fw.load(model, d["state"])
        optimizer = fw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        criterion = fw.nn.CrossEntropyLoss()
        x, target = fw.tensor(d["x"]), fw.tensor(d["target"])
        last = {}

        def run():
            optimizer.zero_grad()
            last["loss"] = loss = criterion(model(x), target)
            loss.backward()
            fw.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

        def results():
            values = dict(loss=np.asarray(fw.numpy(last["loss"])))
            for name, p in model.named_parameters():
                values[name] = fw.numpy(p)
                values[name + ".grad"] = fw.numpy(p.grad)
            return values
        return Case(run, results)


class TinyStep(TrainingStep):
    """The training step of :class:`TrainingStep` on three Linear(8, 8) layers at batch 16:
    nearly all per-op overhead."""

    name = "tiny_step"
    sizes = ((16, 8, 8, 8, 8),)

    def smoke(self, dims):
        return dims


WORKLOADS = [LinearReLU(), BatchNorm1d(), LSTMCell(), LSTMSequence(), ClipGradNorm(), Adam(),
             Triad(), TrainingStep(), TinyStep()]


# ----------------------------------------------------------------------------------- cases
def _cases():
    for workload in WORKLOADS:
        for full in workload.sizes:
            dims = workload.smoke(full) if SMOKE else full
            marks = [pytest.mark.large] if full in workload.large else []
            for row in workload.rows():
                yield pytest.param(workload, dims, row, marks=marks,
                                   id=f"{workload.name}-{workload.label(dims)}-{row}")


def _forced(backend):
    return backends.use(backend) if backend else contextlib.nullcontext()


def _start(workload, row, dims):
    """Build ``row``'s case and make its first call (the warm-up); returns the case and a
    float64 copy of that call's results."""
    case = workload.build(row, dims)
    if case.reset:
        case.reset()
    case.run()
    return case, {k: np.array(v, dtype=np.float64) for k, v in case.results().items()}


@functools.lru_cache(maxsize=4)
def _reference(workload, row, dims):
    with _forced(workload.backend(row)):
        return _start(workload, row, dims)[1]


def _relative_errors(results, reference):
    errors = {}
    for key, expected in reference.items():
        scale = np.linalg.norm(expected)
        errors[key] = float(np.linalg.norm(results[key] - expected) / (scale if scale else 1.0))
    return errors


def _rounds(case):
    """Rounds that fill about TIME_PER_CASE_S, from the fastest of a few untimed calls (one
    call slowed by another process must not cut the run to the minimum)."""
    calls, spent, fastest = 0, 0.0, math.inf
    while calls < 3 and (calls == 0 or spent < 0.2 * TIME_PER_CASE_S):
        if case.reset:
            case.reset()
        start = time.perf_counter()
        case.run()
        elapsed = time.perf_counter() - start
        calls, spent, fastest = calls + 1, spent + elapsed, min(fastest, elapsed)
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, TIME_PER_CASE_S / max(fastest, 1e-7))))


@pytest.mark.parametrize("workload, dims, row", list(_cases()))
def test_workload(benchmark, workload, dims, row, bench_threads):
    group = f"{workload.name}-{workload.label(dims)}"
    benchmark.group = group
    benchmark.extra_info.update(
        backend=row, workload=workload.name, dims=list(dims),
        sizes="smoke" if SMOKE else "full", dtype="float32",
        threads=bench_threads)
    with _forced(workload.backend(row)):
        try:
            case, results = _start(workload, row, dims)
        except RuntimeError as error:
            if "is not implemented by the forced backend" in str(error):
                pytest.skip(f"{row}: {error}")
            raise
        rounds = _rounds(case) if benchmark.enabled else 1
        benchmark.pedantic(case.run, setup=case.reset, rounds=rounds, iterations=1)
    if case.bytes:
        benchmark.extra_info["bytes"] = case.bytes

    reference_row = workload.reference_row(row)
    if reference_row is not None and reference_row in workload.rows():
        errors = _relative_errors(results, _reference(workload, reference_row, dims))
        worst = max(errors, key=errors.get)
        benchmark.extra_info["check"] = dict(reference=reference_row,
                                             max_rel_error=errors[worst], worst=worst)
        assert errors[worst] <= workload.tolerance, (
            f"{group} on {row!r}: result {worst!r} differs from {reference_row!r}'s by a "
            f"norm-wise relative error of {errors[worst]:.3g} > {workload.tolerance:g} "
            f"(all: {errors})")


# ------------------------------------------------------------------------- compile figures
#: Run in a fresh process: ``python -c PROBE MODE OPTIONS`` (OPTIONS: JSON with ``threads``;
#: ``numpy_first`` to import NumPy before timing ``import fastgrad``; ``dims`` for "step";
#: ``warmup`` and ``bench_sizes`` for "compile"); prints one JSON line.
_PROBE = r"""
import json, sys, time
mode, options = sys.argv[1], json.loads(sys.argv[2])
if options.get("numpy_first"):
    import numpy
started = time.perf_counter()
import fastgrad
imported = time.perf_counter()
figures = {"import_s": imported - started, "imports_numba": "numba" in sys.modules}
if hasattr(fastgrad, "set_num_threads"):
    fastgrad.set_num_threads(options["threads"])
if mode == "compile":
    import importlib
    import numpy as np
    from fastgrad import backends
    start = time.perf_counter()
    module = importlib.import_module(backends.BACKEND_MODULES["numba"])
    loaded = time.perf_counter()
    if options["warmup"] and hasattr(backends, "warmup"):
        backends.warmup()
        via = "fastgrad.backends.warmup()"
    else:
        rng = np.random.default_rng(0)
        for name, spec in backends.KERNELS.items():
            if hasattr(module, name):
                for dtype in (np.float32, np.float64):
                    for size in spec.sizes[:1] + spec.bench_sizes[:options["bench_sizes"]]:
                        getattr(module, name)(**spec.example(rng, dtype, size))
        via = "a call of every kernel on its examples, float32 and float64"
    figures.update(numba_import_s=loaded - start, compile_s=time.perf_counter() - loaded,
                   via=via, kernels=sum(hasattr(module, k) for k in backends.KERNELS))
elif mode == "step":
    import numpy as np
    from fastgrad import nn, optim
    batch, widths = options["dims"][0], options["dims"][1:]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = fastgrad.tensor(rng.standard_normal((batch, widths[0]), dtype=np.float32))
    target = fastgrad.tensor(rng.integers(0, widths[-1], batch))
    times = []
    for _ in range(6):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(x), target)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
        if len(times) == 1:
            through_first_step = time.perf_counter() - started
    figures.update(first_step_s=times[0], next_step_s=sorted(times[1:])[2],
                   through_first_step_s=through_first_step,
                   backend=fastgrad.backends.current())
print(json.dumps(figures))
"""

COMPILE_FIGURES = ("import", "cold_compile", "first_step")


def _probe(mode, env, **options):
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, json.dumps(options)],
        cwd=_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, (
        f"the {mode!r} probe failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.compile
@pytest.mark.parametrize("figure", COMPILE_FIGURES)
def test_compile_time(benchmark, figure, tmp_path, bench_threads):
    """Compile- and import-time figures from fresh processes (see the module docstring)."""
    if figure != "import" and "numba" not in BACKENDS:
        pytest.skip("the numba backend is unavailable: nothing to compile")
    # bytecode caches as in an installed package, kept out of the source tree
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"),
               PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if SMOKE:
        env["NUMBA_DISABLE_JIT"] = "1"
    step_dims = (8, 64, 16, 10) if SMOKE else (64, 784, 256, 256, 10)
    threads = bench_threads["count"]
    benchmark.group = "compile"
    benchmark.extra_info.update(backend=figure, threads=bench_threads,
                                sizes="smoke" if SMOKE else "full")
    figures, notes = {}, []

    def measure():
        if figure == "import":
            _probe("import", env, threads=threads)   # writes the bytecode caches
            runs = [_probe("import", env, threads=threads) for _ in range(5)]
            after = [_probe("import", env, threads=threads, numpy_first=True) for _ in range(5)]
            figures["import fastgrad, NumPy's import included (median of 5 fresh processes)"] \
                = statistics.median(r["import_s"] for r in runs)
            figures["import fastgrad after NumPy (median of 5 fresh processes)"] = \
                statistics.median(r["import_s"] for r in after)
            notes.append("import fastgrad loads Numba: "
                         + ("yes" if any(r["imports_numba"] for r in runs) else "no"))
            notes.append("import times with bytecode caches written (as installed), after one "
                         "unmeasured process")
        elif figure == "cold_compile":
            # the smoke run calls the kernels as Python: on their smallest examples only
            result = _probe("compile", env, threads=threads, warmup=not SMOKE,
                            bench_sizes=0 if SMOKE else 1)
            figures["import of the numba backend"] = result["numba_import_s"]
            figures[f"cold compile of the numba backend's {result['kernels']} kernels, "
                    "float32 and float64"] = result["compile_s"]
            notes.append(f"cold compile measured through {result['via']}, empty "
                         "NUMBA_CACHE_DIR")
        else:
            cold = _probe("step", env, threads=threads, dims=step_dims)
            warm = _probe("step", env, threads=threads, dims=step_dims)
            label = "-".join(map(str, step_dims[1:])) + f" MLP at batch {step_dims[0]}"
            figures[f"first training step, fresh process, cold cache ({label})"] = \
                cold["first_step_s"]
            figures[f"first training step, fresh process, warm cache ({label})"] = \
                warm["first_step_s"]
            figures["from `import fastgrad` to the end of that first step (threads set, "
                    "model built)"] = warm["through_first_step_s"]
            figures[f"a later training step of that process ({label})"] = warm["next_step_s"]
            notes.append(f"training steps ran on the {warm['backend']!r} default backend "
                         "selection")
    benchmark.pedantic(measure, rounds=1, iterations=1)
    if SMOKE:
        notes.append("smoke run: NUMBA_DISABLE_JIT=1, the figures say nothing about compiling")
    benchmark.extra_info.update(figures=figures, notes=notes)
    assert figures and all(value >= 0 for value in figures.values())
