"""The gradient monitor's overhead on a training step (issue 7's target: under 5% of the step
with ``every=1``, for the digits MLP that ``fastgrad train`` trains).

    python -m pytest bench/test_monitor_overhead.py --benchmark-only -s   # timings, overhead
    python -m pytest bench/test_monitor_overhead.py -q --benchmark-disable  # a quick check

The step: ``64 -> 128 -> ReLU -> 10``, batch 32, cross-entropy, SGD with momentum 0.9 (one
arena of 9,610 parameters), forward, backward and optimiser step; the monitored step adds
``monitor.step()`` (gradient, parameter and update norms, per parameter and per layer, and
the verdict checks). Rows: each available backend, forced, with and without the monitor.

``test_overhead`` measures the ratio directly, for ``every=1`` and ``every=10``: blocks of
steps of two identical models, one monitored, timed alternately so that load on the machine
hits both alike; the overhead is the median over blocks of (monitored time / plain time) - 1,
stored in ``extra_info["overhead"]`` and printed; its timed rows are ``monitor.step()`` alone,
called in a tight loop (warm caches: less than it costs between training steps). It is a
measurement, not an assertion: a busy machine moves it. Correctness is asserted: the
monitor's gradient norms on the benchmarked model equal NumPy's.
"""
import statistics
import time

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import backends, data, nn, optim
from fastgrad.diagnostics import GradientMonitor
from fastgrad.tensor import Tensor

pytest.importorskip("pytest_benchmark")

BATCH, BATCHES = 32, 40
BACKENDS = backends.available()


class _Job:
    """The digits MLP, its optimiser and a fixed list of batches, optionally monitored."""

    def __init__(self, monitored, every=1):
        (x, y), _ = data.load_digits(seed=0)
        fg.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        self.optimizer = optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.criterion = nn.CrossEntropyLoss()
        self.batches = [(Tensor(x[i:i + BATCH]), Tensor(y[i:i + BATCH]))
                        for i in range(0, BATCH * BATCHES, BATCH)]
        self.monitor = GradientMonitor(self.model, self.optimizer, every=every) \
            if monitored else None
        self.count = 0

    def step(self):
        x, y = self.batches[self.count % BATCHES]
        self.count += 1
        loss = self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.monitor is not None:
            self.monitor.step()

    def steps(self, count):
        for _ in range(count):
            self.step()


def _check(job):
    """The last recorded gradient norms equal NumPy's on the current gradients (after
    stepping on to a recorded step)."""
    while (job.monitor.steps - 1) % job.monitor.every:
        job.step()
    direct = [np.linalg.norm(p.grad.numpy().astype(np.float64))
              for p in job.model.parameters()]
    np.testing.assert_allclose(job.monitor.history()["parameter_grad_norm"][-1], direct,
                               rtol=1e-6)


@pytest.mark.parametrize("monitored", [False, True], ids=["plain", "monitor"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_step(benchmark, backend, monitored):
    with backends.use(backend):
        job = _Job(monitored)
        job.steps(20)  # warm-up: JIT compilation, first forward (order hooks), page faults
        benchmark.group = "digits MLP training step"
        benchmark.extra_info.update(backend=backend, monitored=monitored)
        benchmark(job.step)
        if monitored:
            _check(job)


@pytest.mark.parametrize("every", [1, 10])
@pytest.mark.parametrize("backend", BACKENDS)
def test_overhead(benchmark, backend, every):
    disabled = benchmark.disabled
    blocks, per_block = (3, 10) if disabled else (40, 50)
    with backends.use(backend):
        plain, watched = _Job(False), _Job(True, every)
        plain.steps(20)
        watched.steps(20)
        ratios, plain_times = [], []
        for _ in range(blocks):
            started = time.perf_counter()
            plain.steps(per_block)
            middle = time.perf_counter()
            watched.steps(per_block)
            ended = time.perf_counter()
            ratios.append((ended - middle) / (middle - started))
            plain_times.append((middle - started) / per_block)
        _check(watched)
    overhead = statistics.median(ratios) - 1.0
    step_us = 1e6 * statistics.median(plain_times)
    benchmark.group = "monitor.step() alone"
    benchmark.extra_info.update(backend=backend, every=every, overhead=overhead,
                                step_us=step_us, blocks=blocks, steps_per_block=per_block)
    with backends.use(backend):
        benchmark.pedantic(watched.monitor.step, rounds=1 if disabled else 200, iterations=1)
    print(f"\nmonitor overhead ({backend}, every={every}): {100 * overhead:+.1f}% of a "
          f"{step_us:.0f} us training step (median of {blocks} blocks of {per_block} steps)")
    assert np.isfinite(overhead)
