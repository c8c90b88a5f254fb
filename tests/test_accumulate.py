"""Gradient accumulation: the scale, axpy and grad_window_mean kernels against float64
formulas; k micro-batches equal one big batch (SGD with momentum, Adam; equal and unequal
micro-batches); flush; schedulers and optimiser state once per real step; validation."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.backends import KERNELS
from fastgrad.optim.accumulate import GradientAccumulator
from fastgrad.tensor import Tensor

IN, OUT = 5, 3


# --------------------------------------------------------------------- the kernels, by formula
def _cases(name):
    return [pytest.param(size, dtype, id=f"{size}-{np.dtype(dtype).name}")
            for size in KERNELS[name].sizes for dtype in (np.float32, np.float64)]


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("factor", [0.25, 1.0 / 3.0, 0.0, -2.0])
@pytest.mark.parametrize("size, dtype", _cases("scale"))
def test_reference_scale(factor, size, dtype):
    args = KERNELS["scale"].example(np.random.default_rng(size), dtype, size)
    args["factor"] = factor
    expected = args["values"].astype(np.float64) * factor
    KERNELS["scale"].reference(**args)
    assert args["values"].dtype == dtype
    np.testing.assert_allclose(args["values"], expected, **_tol(dtype))


@pytest.mark.parametrize("alpha", [0.75, 3.0, -1.0])
@pytest.mark.parametrize("size, dtype", _cases("axpy"))
def test_reference_axpy(alpha, size, dtype):
    args = KERNELS["axpy"].example(np.random.default_rng(size), dtype, size)
    args["alpha"] = alpha
    x = args["x"].copy()
    expected = args["y"].astype(np.float64) + alpha * x.astype(np.float64)
    KERNELS["axpy"].reference(**args)
    np.testing.assert_allclose(args["y"], expected, **_tol(dtype))
    np.testing.assert_array_equal(args["x"], x)


@pytest.mark.parametrize("weight, factor", [(3.0, 0.125), (0.0, 0.5), (1.0, 1.0)])
@pytest.mark.parametrize("size, dtype", _cases("grad_window_mean"))
def test_reference_grad_window_mean(weight, factor, size, dtype):
    args = KERNELS["grad_window_mean"].example(np.random.default_rng(size), dtype, size)
    args.update(weight=weight, factor=factor)
    total, grad = args["total"].astype(np.float64), args["grad"].astype(np.float64)
    KERNELS["grad_window_mean"].reference(**args)
    np.testing.assert_allclose(args["grad"], factor * (total + weight * grad), **_tol(dtype))
    np.testing.assert_array_equal(args["total"], 0.0)


# ------------------------------------------------------------------------------- equivalence
def _model(dtype):
    fg.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, 8, dtype=dtype), nn.Tanh(), nn.Linear(8, OUT, dtype=dtype))


def _data(n, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, IN)).astype(dtype), rng.standard_normal((n, OUT)).astype(dtype)


def _backward(model, x, y):
    nn.MSELoss()(model(fg.tensor(x)), fg.tensor(y)).backward()


OPTIMIZERS = {
    "sgd_momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda params: optim.Adam(params, lr=0.01, weight_decay=0.01),
}


def _big_batch_run(make_optimizer, dtype, windows):
    """One step per window, each on the concatenated micro-batches ``windows[i]``."""
    model = _model(dtype)
    opt = make_optimizer(model.parameters())
    for batches in windows:
        opt.zero_grad()
        _backward(model, np.concatenate([x for x, _ in batches]),
                  np.concatenate([y for _, y in batches]))
        opt.step()
    return model, opt


def _accumulated_run(make_optimizer, dtype, windows, weighted):
    model = _model(dtype)
    opt = make_optimizer(model.parameters())
    acc = GradientAccumulator(opt, steps=len(windows[0]))
    stepped = []
    for batches in windows:
        for x, y in batches:
            _backward(model, x, y)
            stepped.append(acc.step(n=len(x) if weighted else None))
    return model, opt, acc, stepped


def _windows(sizes, dtype, steps=3):
    x, y = _data(sum(sizes) * steps, dtype)
    windows, start = [], 0
    for _ in range(steps):
        batches = []
        for size in sizes:
            batches.append((x[start:start + size], y[start:start + size]))
            start += size
        windows.append(batches)
    return windows


def _assert_same_parameters(a, b, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), **tol)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_k_micro_batches_equal_one_big_batch(name, dtype, weighted):
    windows = _windows([4, 4, 4, 4], dtype)
    big, big_opt = _big_batch_run(OPTIMIZERS[name], dtype, windows)
    small, small_opt, acc, stepped = _accumulated_run(OPTIMIZERS[name], dtype, windows, weighted)
    assert stepped == [False, False, False, True] * 3
    assert acc.real_steps == 3 and acc.micro_step == 0
    _assert_same_parameters(big, small, dtype)
    if name == "adam":  # the optimiser's state advanced once per real step
        assert all(small_opt.state[p]["step"] == 3 for p in small.parameters())
    # the gradients were zeroed after the real step
    assert all(p.grad is None for p in small.parameters())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_unequal_micro_batches_weighted_by_n_equal_the_big_batch(name):
    dtype = np.float64
    windows = _windows([5, 2, 9], dtype)
    big, _ = _big_batch_run(OPTIMIZERS[name], dtype, windows)
    small, *_ = _accumulated_run(OPTIMIZERS[name], dtype, windows, weighted=True)
    _assert_same_parameters(big, small, dtype)
    # the plain mean of unequal micro-batches is a different gradient
    plain, *_ = _accumulated_run(OPTIMIZERS[name], dtype, windows, weighted=False)
    assert not np.allclose(plain[0].weight.numpy(), big[0].weight.numpy(), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_flush_applies_the_partial_window(weighted):
    dtype = np.float64
    x, y = _data(18, dtype)
    sizes = [4, 4, 4, 4, 2] if weighted else [4, 4, 4, 4, 4]
    cuts = np.cumsum([0] + sizes)
    batches = [(x[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    expected, _ = _big_batch_run(OPTIMIZERS["sgd_momentum"], dtype,
                                 [batches[:2], batches[2:4], batches[4:]])
    model = _model(dtype)
    acc = GradientAccumulator(OPTIMIZERS["sgd_momentum"](model.parameters()), steps=2)
    stepped = []
    for bx, by in batches:
        _backward(model, bx, by)
        stepped.append(acc.step(n=len(bx) if weighted else None))
    assert stepped == [False, True, False, True, False] and acc.micro_step == 1
    assert acc.flush() is True and acc.real_steps == 3 and acc.micro_step == 0
    assert acc.flush() is False and acc.real_steps == 3
    _assert_same_parameters(expected, model, dtype)


def test_a_scheduler_advances_once_per_real_step():
    lr_scheduler = pytest.importorskip("fastgrad.optim.lr_scheduler")
    dtype = np.float64
    windows = _windows([3, 3], dtype, steps=5)
    big = _model(dtype)
    big_opt = optim.SGD(big.parameters(), lr=0.2, momentum=0.5)
    big_schedule = lr_scheduler.StepLR(big_opt, step_size=2, gamma=0.5)
    for batches in windows:
        big_opt.zero_grad()
        _backward(big, np.concatenate([b[0] for b in batches]),
                  np.concatenate([b[1] for b in batches]))
        big_opt.step()
        big_schedule.step()
    small = _model(dtype)
    small_opt = optim.SGD(small.parameters(), lr=0.2, momentum=0.5)
    schedule = lr_scheduler.StepLR(small_opt, step_size=2, gamma=0.5)
    acc = GradientAccumulator(small_opt, steps=2)
    lrs = []
    for batches in windows:
        for bx, by in batches:
            _backward(small, bx, by)
            if acc.step():
                schedule.step()
            lrs.append(small_opt.param_groups[0]["lr"])
    assert lrs == [0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert schedule.last_epoch == big_schedule.last_epoch == 5
    _assert_same_parameters(big, small, dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_parameters_without_gradients_are_not_stepped(weighted):
    used = nn.Parameter(np.array([1.0, 2.0]))
    late = nn.Parameter(np.array([1.0]))
    unused = nn.Parameter(np.array([3.0]))
    opt = optim.SGD([used, late, unused], lr=0.5, weight_decay=0.1)
    acc = GradientAccumulator(opt, steps=3)
    n = [1, 2, 5]
    for i in range(3):
        loss = (used * fg.tensor(np.array([1.0, -1.0]))).sum()
        if i == 1:
            loss = loss + 4.0 * late.sum()
        loss.backward()
        acc.step(n=n[i] if weighted else None)
    # weight decay would have moved `unused` had it been stepped with a zero gradient
    assert unused.numpy()[0] == 3.0 and unused.grad is None
    np.testing.assert_allclose(used.numpy(), [1.0 - 0.5 * (1 + 0.1), 2.0 - 0.5 * (-1 + 0.2)])
    mean_late = 4.0 * (n[1] / sum(n) if weighted else 1 / 3)
    np.testing.assert_allclose(late.numpy(), [1.0 - 0.5 * (mean_late + 0.1)])


def test_zero_grad_discards_the_window():
    model = _model(np.float64)
    acc = GradientAccumulator(optim.SGD(model.parameters(), lr=0.1), steps=2)
    x, y = _data(4, np.float64)
    _backward(model, x, y)
    acc.step(n=4)
    acc.zero_grad()
    assert acc.micro_step == 0
    before = [p.numpy().copy() for p in model.parameters()]
    _backward(model, x, y)
    assert acc.step(n=4) is False  # a fresh window: the discarded micro-batch does not count
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_state_dict_round_trip_resumes_like_an_uninterrupted_run():
    dtype = np.float64
    windows = _windows([2, 3], dtype, steps=4)
    uninterrupted, *_ = _accumulated_run(OPTIMIZERS["adam"], dtype, windows, weighted=True)

    model = _model(dtype)
    acc = GradientAccumulator(OPTIMIZERS["adam"](model.parameters()), steps=2)
    for batches in windows[:2]:
        for bx, by in batches:
            _backward(model, bx, by)
            acc.step(n=len(bx))
        if batches is windows[0]:
            _backward(model, *windows[1][0])
            acc.step(n=2)
            with pytest.raises(RuntimeError, match="middle of an accumulation window"):
                acc.state_dict()
            acc.zero_grad()
    saved_model, saved = model.state_dict(), acc.state_dict()
    assert saved["real_steps"] == 2 and saved["steps"] == 2 and "optimizer" in saved

    resumed = _model(dtype)
    resumed.load_state_dict(saved_model)
    resumed_acc = GradientAccumulator(OPTIMIZERS["adam"](resumed.parameters()), steps=5)
    resumed_acc.load_state_dict(saved)
    assert resumed_acc.steps == 2 and resumed_acc.real_steps == 2
    for batches in windows[2:]:
        for bx, by in batches:
            _backward(resumed, bx, by)
            resumed_acc.step(n=len(bx))
    _assert_same_parameters(uninterrupted, resumed, dtype)


# -------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("steps", [0, -1, 1.5, True, "2"])
def test_bad_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        GradientAccumulator(optim.SGD([nn.Parameter(np.ones(2))], lr=0.1), steps=steps)


def test_bad_optimizer():
    with pytest.raises(TypeError, match="optimizer"):
        GradientAccumulator([nn.Parameter(np.ones(2))], steps=2)


@pytest.mark.parametrize("n", [0, -3, True, "4", float("nan"), float("inf")])
def test_bad_n_raises_before_anything_changes(n):
    p = nn.Parameter(np.ones(2))
    acc = GradientAccumulator(optim.SGD([p], lr=0.1), steps=2)
    p.grad = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="n must be a positive number"):
        acc.step(n=n)
    assert acc.micro_step == 0
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, 2.0])


def test_mixing_weighted_and_plain_micro_batches_raises():
    p = nn.Parameter(np.ones(2))
    acc = GradientAccumulator(optim.SGD([p], lr=0.1), steps=3)
    p.grad = Tensor(np.array([1.0, 2.0]))
    acc.step(n=2)
    p.grad = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="every micro-batch of a window or for none"):
        acc.step()
    assert acc.micro_step == 1


def test_repacking_in_a_weighted_window_raises():
    p = nn.Parameter(np.ones(2))
    acc = GradientAccumulator(optim.SGD([p], lr=0.1), steps=3)
    p.grad = Tensor(np.array([1.0, 2.0]))
    acc.step(n=2)
    optim.SGD([p], lr=0.1)  # another optimiser takes the parameter into its own arena
    p.grad = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="new arenas in the middle"):
        acc.step(n=2)
