"""The Arena's interface (fastgrad/arena.py): finding a parameter's arena, stale gradient
slots, handing the buffer over as gradients, and the norms a clip remembers for the gradient
monitor."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.arena import arena_of, clip_count
from fastgrad.diagnostics import GradientMonitor
from fastgrad.tensor import Tensor

SHAPES = ((3, 2), (4,), (2, 2))


def _packed(rng, dtype=np.float64):
    """Three parameters packed by an SGD optimiser, each with a gradient."""
    params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad = Tensor(rng.standard_normal(p.shape).astype(dtype))
    return params, opt


def _segment(arena, i):
    return arena.grad[arena.offsets[i]:arena.offsets[i + 1]]


def test_arena_of_follows_packing_and_release(rng):
    loose = nn.Parameter(np.zeros(3))
    assert arena_of(loose) is None
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    assert all(arena_of(p) is arena for p in params) and arena.intact
    params[1].data = Tensor(np.zeros(4))  # new data: the parameter leaves its arena
    assert arena_of(params[1]) is None and not arena.intact
    assert arena_of(params[0]) is arena
    optim.SGD(params[:1], lr=0.1)  # a second optimiser takes params[0] into a new arena
    assert arena_of(params[0]) is not arena and arena_of(params[0]).intact


def test_zero_stale_zeroes_exactly_the_slots_without_a_gradient(rng):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    params[1].grad = None
    _segment(arena, 1)[...] = np.nan  # a stale slot
    kept = [p.grad.numpy().copy() for p in (params[0], params[2])]
    assert arena.zero_stale() == [1]
    assert not _segment(arena, 1).any()
    for p, g in zip((params[0], params[2]), kept):
        np.testing.assert_array_equal(p.grad.numpy(), g)
    assert params[1].grad is None  # zeroing a slot gives no gradient
    params[1].grad = Tensor(np.ones(4))
    assert arena.zero_stale() == []


def test_grad_norms_count_a_stale_slot_as_zero(rng):
    params, opt = _packed(rng)
    arena = arena_of(params[0])
    params[2].grad = None
    _segment(arena, 2)[...] = 1e30
    total, per = arena.grad_norms(2.0)
    expected = [np.linalg.norm(params[0].grad.numpy()), np.linalg.norm(params[1].grad.numpy()),
                0.0]
    np.testing.assert_allclose(per, expected, rtol=1e-14)
    assert total == pytest.approx(np.linalg.norm(expected), rel=1e-14)
    assert opt.grad_norm() == pytest.approx(total, rel=1e-14)


def test_holds_grads_only_while_every_gradient_is_in_its_slot(rng):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    assert arena.holds_grads()
    params[0].grad = None
    assert arena.holds_grads()  # no gradient is no gradient elsewhere
    params[2].grad.data = Tensor(np.ones((2, 2)))  # the gradient's array replaced
    assert not arena.holds_grads()
    params[2].grad = Tensor(np.ones((2, 2)))  # the setter copies into the slot again
    assert arena.holds_grads()
    params[1].data = Tensor(np.zeros(4))
    assert not arena.holds_grads()  # not intact


def test_grads_from_buffer_hands_the_slots_over(rng):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    arena.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    arena.grad[...] = np.arange(len(arena), dtype=arena.dtype)
    arena.grads_from_buffer([True, False, True])
    assert params[1].grad is None
    for i in (0, 2):
        assert np.shares_memory(params[i].grad.numpy(), arena.grad)
        np.testing.assert_array_equal(params[i].grad.numpy().reshape(-1), _segment(arena, i))
    assert arena.holds_grads()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_keeps_a_missing_gradient_missing(rng, set_to_none):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    params[1].grad = None
    arena.zero_grad(set_to_none)
    assert params[1].grad is None
    for p in (params[0], params[2]):
        assert (p.grad is None) if set_to_none else not p.grad.numpy().any()


# ------------------------------------------------------------------------- remembered norms
def test_a_clip_is_remembered_with_its_order(rng):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    assert arena.clip_norms(2.0) is None  # nothing clipped yet
    expected = [np.linalg.norm(p.grad.numpy().reshape(-1), 1) for p in params]
    start = clip_count()
    nn.utils.clip_grad_norm_(params, 0.5, norm_type=1.0)
    assert clip_count() == start + 1
    np.testing.assert_allclose(arena.clip_norms(1.0), expected, rtol=1e-14)
    assert arena.clip_norms(1.0, since=start) is not None
    assert arena.clip_norms(2.0) is None  # measured in another order
    assert arena.clip_norms(1.0, since=clip_count()) is None  # not newer than the reading


def test_only_clips_remember_norms(rng):
    params, opt = _packed(rng)
    arena = arena_of(params[0])
    start = clip_count()
    opt.grad_norm()
    nn.utils.get_total_norm([p.grad for p in params])
    nn.utils.clip_grad_value_(params, 0.1)
    nn.utils.clip_grad_norm_(params[:2], 0.1)  # part of the arena: the per-tensor path
    assert clip_count() == start and arena.clip_norms(2.0) is None


def test_a_later_clip_replaces_the_record(rng):
    params, _ = _packed(rng)
    arena = arena_of(params[0])
    nn.utils.clip_grad_norm_(params, 1e9)
    first = arena.clip_norms(2.0).copy()
    reading = clip_count()
    for p in params:
        p.grad = Tensor(2 * p.grad.numpy())
    nn.utils.clip_grad_norm_(params, 1e9)
    np.testing.assert_allclose(arena.clip_norms(2.0, since=reading), 2 * first, rtol=1e-14)


def _monitored_mlp():
    fg.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    return model, optim.SGD(model.parameters(), lr=0.05)


def _backward(model, optimizer, seed):
    x = Tensor(np.random.default_rng(seed).standard_normal((16, 5)).astype(np.float32))
    optimizer.zero_grad()
    (model(x) ** 2).mean().backward()
    return [np.linalg.norm(p.grad.numpy().astype(np.float64)) for p in model.parameters()]


def test_monitor_reuses_a_clip_of_its_own_step_only():
    model, optimizer = _monitored_mlp()
    monitor = GradientMonitor(model, optimizer)
    expected = []
    for step, clip in enumerate([True, False, True, False]):
        expected.append(_backward(model, optimizer, step))
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        optimizer.step()
        monitor.step()
    history = monitor.history()
    # before clipping on clipped steps; a step without a clip measures its own gradients
    np.testing.assert_allclose(history["parameter_grad_norm"], expected, rtol=1e-5)
    coef = history["clip_coef"]
    assert (coef[[0, 2]] < 1).all() and np.isnan(coef[[1, 3]]).all()


def test_two_monitors_see_the_same_clip():
    model, optimizer = _monitored_mlp()
    monitors = [GradientMonitor(model, optimizer), GradientMonitor(model, optimizer)]
    for step in range(2):
        _backward(model, optimizer, step)
        nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        optimizer.step()
        for monitor in monitors:
            monitor.step()
    first, second = (m.history() for m in monitors)
    for key in ("parameter_grad_norm", "global_norm", "clipped_norm", "clip_coef"):
        np.testing.assert_array_equal(first[key], second[key])
    assert (first["clip_coef"] < 1).all()


def test_a_clip_on_an_unrecorded_step_is_not_reused_later():
    model, optimizer = _monitored_mlp()
    monitor = GradientMonitor(model, optimizer, every=2)
    expected = []
    for step in range(3):
        norms = _backward(model, optimizer, step)
        if step == 1:
            nn.utils.clip_grad_norm_(model.parameters(), 1e-3)  # step 1 is not recorded
        else:
            expected.append(norms)
        optimizer.step()
        monitor.step()
    history = monitor.history()
    assert list(history["step"]) == [0, 2]
    np.testing.assert_allclose(history["parameter_grad_norm"], expected, rtol=1e-5)
    assert np.isnan(history["clip_coef"]).all()
