"""SwitchOptimizer: Adam then SGD at a given step and on a loss plateau, the same parameters as
running the two optimisers by hand, shared arenas, schedulers, state_dict and validation."""
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.arena import arena_of
from fastgrad.optim.switch import SwitchOptimizer

IN, OUT = 4, 2


def _model():
    fg.manual_seed(3)
    return nn.Sequential(nn.Linear(IN, 6, dtype=fg.float64), nn.Tanh(),
                         nn.Linear(6, OUT, dtype=fg.float64))


def _batches(count, seed=4):
    rng = np.random.default_rng(seed)
    return [(fg.tensor(rng.standard_normal((8, IN))), fg.tensor(rng.standard_normal((8, OUT))))
            for _ in range(count)]


def _loss(model, batch):
    return nn.MSELoss()(model(batch[0]), batch[1])


def _pair(model):
    params = list(model.parameters())
    return optim.Adam(params, lr=0.01), optim.SGD(params, lr=0.05, momentum=0.9)


def _train(switcher, model, batches, losses=None):
    for i, batch in enumerate(batches):
        switcher.zero_grad()
        loss = _loss(model, batch)
        loss.backward()
        switcher.step(loss=None if losses is None else losses[i])


def _by_hand(batches, switch_at):
    """Adam for the first ``switch_at`` steps, then SGD, run directly."""
    model = _model()
    adam, sgd = _pair(model)
    for i, batch in enumerate(batches):
        opt = adam if i < switch_at else sgd
        opt.zero_grad()
        _loss(model, batch).backward()
        opt.step()
    return model


def _assert_same(a, b):
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_switch_at_a_step_equals_running_both_by_hand():
    batches = _batches(7)
    model = _model()
    adam, sgd = _pair(model)
    switcher = SwitchOptimizer(adam, sgd, switch_at=3)
    assert switcher.optimizer is adam and not switcher.switched
    _train(switcher, model, batches)
    assert switcher.switched and switcher.switched_at == 3 and switcher.step_count == 7
    assert switcher.optimizer is sgd and switcher.param_groups is sgd.param_groups
    assert all(adam.state[p]["step"] == 3 for p in model.parameters())
    assert all("momentum_buffer" in sgd.state[p] for p in model.parameters())
    _assert_same(model, _by_hand(batches, 3))


def test_the_parameters_move_into_the_active_optimizers_arena_once():
    model = _model()
    adam, sgd = _pair(model)
    params = list(model.parameters())
    switcher = SwitchOptimizer(adam, sgd, switch_at=2)
    _train(switcher, model, _batches(2))
    adam_arena = arena_of(params[0])
    assert all(arena_of(p) is adam_arena for p in params) and adam_arena.intact
    values = [p.numpy().copy() for p in params]
    _train(switcher, model, _batches(1, seed=9))
    sgd_arena = arena_of(params[0])
    assert sgd_arena is not adam_arena and not adam_arena.intact and sgd_arena.intact
    assert [a for _, a in sgd.arenas()] == [sgd_arena]
    # the values carried over: SGD's first step moved them by lr * gradient (no momentum yet)
    for p, v in zip(params, values):
        np.testing.assert_allclose(p.numpy(), v - 0.05 * p.grad.numpy(), rtol=1e-14)
    _train(switcher, model, _batches(1, seed=10))
    assert arena_of(params[0]) is sgd_arena  # no more repacking


def test_switch_on_plateau():
    model = _model()
    adam, sgd = _pair(model)
    switcher = SwitchOptimizer(adam, sgd, patience=2)
    losses = [5.0, 4.0, 4.0, 3.9999, 4.1, 3.0, 2.0]
    switched = []
    for i, batch in enumerate(_batches(len(losses))):
        switcher.zero_grad()
        _loss(model, batch).backward()
        switcher.step(loss=fg.tensor(losses[i]))
        switched.append(switcher.switched)
    # best 4.0 at step 1; steps 2, 3 (not better by 1e-4 relative) and 4 are bad: 3 > patience
    assert switched == [False, False, False, False, True, True, True]
    assert switcher.switched_at == 4 and switcher.best == 4.0


def test_plateau_modes_and_steps_without_loss():
    model = _model()
    adam, sgd = _pair(model)
    switcher = SwitchOptimizer(adam, sgd, patience=1, mode="max", threshold=0.5,
                               threshold_mode="abs")
    batches = _batches(6)
    for i, (batch, accuracy) in enumerate(zip(batches, [0.1, None, 0.5, None, 0.6, 0.61])):
        switcher.zero_grad()
        _loss(model, batch).backward()
        switcher.step(loss=accuracy)  # None: not an observation
    # 0.1 best; 0.5 and 0.6 do not beat 0.1 + 0.5: the second bad observation switches
    assert switcher.switched_at == 4


def test_whichever_rule_fires_first_switches():
    model = _model()
    switcher = SwitchOptimizer(*_pair(model), switch_at=5, patience=0)
    _train(switcher, model, _batches(3), losses=[1.0, 2.0, 0.5])
    assert switcher.switched_at == 1


def test_a_scheduler_attached_to_the_second_keeps_working():
    lr_scheduler = pytest.importorskip("fastgrad.optim.lr_scheduler")
    batches = _batches(6)
    model = _model()
    adam, sgd = _pair(model)
    schedule = lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    switcher = SwitchOptimizer(adam, sgd, switch_at=2)
    rates = []
    for batch in batches:
        switcher.zero_grad()
        _loss(model, batch).backward()
        switcher.step()
        if switcher.switched:
            schedule.step()
        rates.append(sgd.param_groups[0]["lr"])
    assert rates == [0.05, 0.05, 0.025, 0.0125, 0.00625, 0.003125]
    # by hand, with the same rates
    expected = _model()
    adam2, sgd2 = _pair(expected)
    for i, batch in enumerate(batches):
        opt = adam2 if i < 2 else sgd2
        if i >= 2:
            sgd2.param_groups[0]["lr"] = 0.05 * 0.5 ** (i - 2)
        opt.zero_grad()
        _loss(expected, batch).backward()
        opt.step()
    _assert_same(model, expected)


@pytest.mark.parametrize("save_at", [2, 5])
def test_state_dict_round_trip_resumes_like_an_uninterrupted_run(save_at):
    batches = _batches(8)
    losses = [3.0, 2.0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5]
    uninterrupted = _model()
    reference = SwitchOptimizer(*_pair(uninterrupted), patience=1)
    _train(reference, uninterrupted, batches, losses)
    assert reference.switched_at == 3

    model = _model()
    switcher = SwitchOptimizer(*_pair(model), patience=1)
    _train(switcher, model, batches[:save_at], losses[:save_at])
    saved_model, saved = model.state_dict(), switcher.state_dict()
    assert set(saved) == {"first", "second", "step_count", "switched_at", "best",
                          "num_bad_observations"}

    resumed = _model()
    resumed.load_state_dict(saved_model)
    resumed_switcher = SwitchOptimizer(*_pair(resumed), patience=1)
    resumed_switcher.load_state_dict(saved)
    assert resumed_switcher.switched == (save_at > 3)
    _train(resumed_switcher, resumed, batches[save_at:], losses[save_at:])
    assert resumed_switcher.switched_at == 3 and resumed_switcher.step_count == 8
    _assert_same(uninterrupted, resumed)


# -------------------------------------------------------------------------------- validation
def test_bad_arguments():
    model = _model()
    adam, sgd = _pair(model)
    other = optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="same parameters"):
        SwitchOptimizer(adam, other, switch_at=1)
    with pytest.raises(ValueError, match="two different optimizers"):
        SwitchOptimizer(adam, adam, switch_at=1)
    with pytest.raises(ValueError, match="switch_at, patience or both"):
        SwitchOptimizer(adam, sgd)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="switch_at"):
            SwitchOptimizer(adam, sgd, switch_at=bad)
        with pytest.raises(ValueError, match="patience"):
            SwitchOptimizer(adam, sgd, patience=bad)
    with pytest.raises(ValueError, match="mode"):
        SwitchOptimizer(adam, sgd, patience=1, mode="lowest")
    with pytest.raises(ValueError, match="threshold_mode"):
        SwitchOptimizer(adam, sgd, patience=1, threshold_mode="relative")
    with pytest.raises(ValueError, match="threshold"):
        SwitchOptimizer(adam, sgd, patience=1, threshold=math.nan)
    with pytest.raises(TypeError, match="second"):
        SwitchOptimizer(adam, list(model.parameters()), switch_at=1)
    switcher = SwitchOptimizer(adam, sgd, switch_at=1)
    with pytest.raises(ValueError, match="state_dict"):
        switcher.load_state_dict({"first": {}})
