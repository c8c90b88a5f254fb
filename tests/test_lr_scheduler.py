"""optim.lr_scheduler: every scheduler's sequence hand-computed and against PyTorch's (long
runs, edge arguments, chaining), the pure schedules, state_dict, validation."""
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.optim import lr_scheduler

LR = 0.1


def _optimizer(kind="SGD", lrs=(LR,), **options):
    """Our optimiser ``kind`` with one parameter group per learning rate in ``lrs``."""
    groups = [{"params": [nn.Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return getattr(optim, kind)(groups, lr=lrs[0], **options)


def _torch_optimizer(torch, kind="SGD", lrs=(LR,), **options):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return getattr(torch.optim, kind)(groups, lr=lrs[0], **options)


def _momenta(optimizer):
    """Each group's momentum (or Adam's beta1) where it has one."""
    return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0)
            for g in optimizer.param_groups]


def _trace(optimizer, schedulers, steps, actions=None):
    """Learning rates (and momenta) of every group after construction and after each step.

    ``actions`` maps a step index to a function run on the optimiser before that step (a
    manual change of the learning rate, say)."""
    schedulers = schedulers if isinstance(schedulers, tuple) else (schedulers,)
    lrs, momenta = [[g["lr"] for g in optimizer.param_groups]], [_momenta(optimizer)]
    for step in range(1, steps + 1):
        if actions and step in actions:
            actions[step](optimizer)
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        lrs.append([g["lr"] for g in optimizer.param_groups])
        momenta.append(_momenta(optimizer))
        assert schedulers[-1].get_last_lr() == lrs[-1]
    return np.array(lrs), np.array(momenta)


def _halve_lr(optimizer):
    for group in optimizer.param_groups:
        group["lr"] /= 2


# name, factory(module, optimizer), steps, optimiser kind, lrs, options, actions
SCHEDULES = [
    ("lambda-two-groups", lambda m, o: m.LambdaLR(o, [lambda e: 0.95 ** e,
                                                        lambda e: 1 / (1 + e)]),
     60, "SGD", (0.1, 0.02), {}, None),
    ("step", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), 30, "SGD", (LR,), {}, None),
    ("step-every-step", lambda m, o: m.StepLR(o, step_size=1, gamma=0.9), 30, "SGD", (LR,), {},
     None),
    ("step-manual-change", lambda m, o: m.StepLR(o, step_size=4, gamma=0.5), 20, "SGD", (LR,),
     {}, {6: _halve_lr}),
    ("multistep-repeated", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     30, "SGD", (LR, 1.0), {}, None),
    ("exponential", lambda m, o: m.ExponentialLR(o, gamma=0.93), 100, "Adam", (LR,), {}, None),
    ("linear-warm-up", lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=10), 30,
     "SGD", (LR,), {}, None),
    ("linear-decay", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05,
                                             total_iters=7), 21, "SGD", (LR,), {}, None),
    ("linear-defaults", lambda m, o: m.LinearLR(o), 15, "SGD", (LR, 0.3), {}, None),
    ("linear-to-zero", lambda m, o: m.LinearLR(o, 1.0, 0.0, 4), 12, "SGD", (LR,), {}, None),
    ("polynomial-linear", lambda m, o: m.PolynomialLR(o, total_iters=10), 30, "SGD", (LR,), {},
     None),
    ("polynomial-square", lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0), 24, "SGD",
     (LR,), {}, None),
    ("polynomial-sqrt", lambda m, o: m.PolynomialLR(o, total_iters=5, power=0.5), 15, "SGD",
     (LR,), {}, None),
    ("cosine", lambda m, o: m.CosineAnnealingLR(o, T_max=10), 40, "SGD", (LR,), {}, None),
    ("cosine-eta-min", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01), 50, "SGD",
     (LR, 0.05), {}, None),
    ("cosine-T_max-1", lambda m, o: m.CosineAnnealingLR(o, T_max=1, eta_min=0.001), 10, "SGD",
     (LR,), {}, None),
    ("cosine-long", lambda m, o: m.CosineAnnealingLR(o, T_max=50), 500, "SGD", (LR,), {},
     None),
    ("cosine-manual-change", lambda m, o: m.CosineAnnealingLR(o, T_max=12, eta_min=1e-3), 40,
     "SGD", (LR,), {}, {5: _halve_lr}),
    ("chained-step-exponential", lambda m, o: (m.StepLR(o, 5, 0.5), m.ExponentialLR(o, 0.97)),
     30, "SGD", (LR,), {}, None),
    ("sequential-warm-up-cosine",
     lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                     m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
     75, "SGD", (LR,), {}, None),
    ("sequential-three",
     lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.5, total_iters=3), m.StepLR(o, 4, 0.5),
                                     m.ExponentialLR(o, 0.9)], milestones=[3, 11]),
     40, "SGD", (LR, 0.5), {}, None),
    ("sequential-warm-up-polynomial",
     lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.25, total_iters=4),
                                     m.PolynomialLR(o, total_iters=10)], milestones=[4]),
     30, "SGD", (LR,), {}, None),
    ("sequential-multistep",
     lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, 0.5), m.MultiStepLR(o, [3, 6])],
                                 milestones=[2]), 20, "SGD", (LR,), {}, None),
    ("one-cycle-sgd", lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=100), 100, "SGD",
     (LR,), dict(momentum=0.9), None),
    ("one-cycle-linear-three-phase",
     lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=50, pct_start=0.25,
                               anneal_strategy="linear", three_phase=True), 50, "SGD", (LR,),
     dict(momentum=0.9), None),
    ("one-cycle-cos-three-phase",
     lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=37, three_phase=True), 37, "SGD",
     (LR,), dict(momentum=0.9), None),
    ("one-cycle-epochs-groups",
     lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 2.0], epochs=4, steps_per_epoch=7,
                               div_factor=10.0, final_div_factor=100.0,
                               base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.99]),
     28, "SGD", (LR, LR), dict(momentum=0.9), None),
    ("one-cycle-adam-betas", lambda m, o: m.OneCycleLR(o, max_lr=0.01, total_steps=30), 30,
     "Adam", (LR,), {}, None),
    ("one-cycle-adamw-linear", lambda m, o: m.OneCycleLR(o, max_lr=0.01, total_steps=25,
                                                         anneal_strategy="linear"),
     25, "AdamW", (LR,), {}, None),
    ("one-cycle-rmsprop", lambda m, o: m.OneCycleLR(o, max_lr=0.01, total_steps=20), 20,
     "RMSprop", (LR,), {}, None),
    ("one-cycle-no-momentum", lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=20,
                                                        cycle_momentum=False),
     20, "Adagrad", (LR,), {}, None),
    ("one-cycle-short-warm-up", lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=10,
                                                          pct_start=0.05), 10, "SGD", (LR,),
     dict(momentum=0.5), None),
]


def _pair(torch, factory, kind, lrs, options):
    ours_opt = _optimizer(kind, lrs, **options)
    theirs_opt = _torch_optimizer(torch, kind, lrs, **options)
    return (ours_opt, factory(lr_scheduler, ours_opt),
            theirs_opt, factory(torch.optim.lr_scheduler, theirs_opt))


def _relative_error(ours, theirs):
    scale = np.where(theirs == 0, 1.0, np.abs(theirs))
    return float(np.max(np.abs(ours - theirs) / scale))


@pytest.mark.parametrize("name, factory, steps, kind, lrs, options, actions", SCHEDULES,
                         ids=[case[0] for case in SCHEDULES])
def test_sequence_matches_pytorch(name, factory, steps, kind, lrs, options, actions):
    torch = pytest.importorskip("torch")
    ours_opt, ours, theirs_opt, theirs = _pair(torch, factory, kind, lrs, options)
    ours_lrs, ours_momenta = _trace(ours_opt, ours, steps, actions)
    theirs_lrs, theirs_momenta = _trace(theirs_opt, theirs, steps, actions)
    assert _relative_error(ours_lrs, theirs_lrs) < 1e-12
    assert _relative_error(ours_momenta, theirs_momenta) < 1e-12
    last = ours[-1] if isinstance(ours, tuple) else ours
    their_last = theirs[-1] if isinstance(theirs, tuple) else theirs
    assert last.last_epoch == their_last.last_epoch == steps
    assert [g["initial_lr"] for g in ours_opt.param_groups] == \
        [g["initial_lr"] for g in theirs_opt.param_groups]


def test_one_cycle_past_total_steps_is_an_error_like_pytorch():
    torch = pytest.importorskip("torch")
    ours_opt, ours, theirs_opt, theirs = _pair(
        torch, lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10), "SGD", (LR,),
        dict(momentum=0.9))
    _trace(ours_opt, ours, 10)
    _trace(theirs_opt, theirs, 10)
    with pytest.raises(ValueError, match="Tried to step 11 times. The specified number of "
                                         "total steps is 10"):
        ours.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        theirs.step()


# ---------------------------------------------------------------------- ReduceLROnPlateau
LOSSES = [1.0, 0.9, 0.85, 0.86, 0.84, 0.849, 0.85, 0.851, 0.7, 0.7, 0.7, 0.7, 0.69999, 0.7,
          0.8, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.499, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4,
          float("nan"), 0.4, 0.4, 0.4, 0.4, 0.4]

PLATEAU = [
    ("min-rel", dict(patience=2, factor=0.5)),
    ("min-abs", dict(patience=1, threshold=0.01, threshold_mode="abs")),
    ("min-rel-large-threshold", dict(patience=0, threshold=0.1, factor=0.5)),
    ("max-rel", dict(mode="max", patience=2, factor=0.3)),
    ("max-abs", dict(mode="max", patience=1, threshold=0.05, threshold_mode="abs")),
    ("cooldown", dict(patience=1, cooldown=3, factor=0.5)),
    ("min-lr-per-group", dict(patience=0, factor=0.5, min_lr=[0.02, 0.0])),
    ("eps-skips-small-reductions", dict(patience=0, factor=0.5, eps=0.03)),
    ("defaults", {}),
]


def _plateau_trace(scheduler, optimizer, metrics):
    rows = []
    for metric in metrics:
        optimizer.step()
        scheduler.step(metric)
        rows.append([g["lr"] for g in optimizer.param_groups]
                    + [scheduler.num_bad_epochs, scheduler.cooldown_counter, scheduler.best])
        assert scheduler.get_last_lr() == rows[-1][:len(optimizer.param_groups)]
    return np.array(rows)


@pytest.mark.parametrize("name, options", PLATEAU, ids=[p[0] for p in PLATEAU])
def test_reduce_on_plateau_matches_pytorch(name, options):
    torch = pytest.importorskip("torch")
    metrics = [-m for m in LOSSES] if options.get("mode") == "max" else LOSSES
    ours_opt, theirs_opt = _optimizer(lrs=(LR, 0.05)), _torch_optimizer(torch, lrs=(LR, 0.05))
    ours = lr_scheduler.ReduceLROnPlateau(ours_opt, **options)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **options)
    ours_rows = _plateau_trace(ours, ours_opt, metrics)
    theirs_rows = _plateau_trace(theirs, theirs_opt, metrics)
    np.testing.assert_allclose(ours_rows, theirs_rows, rtol=1e-12, atol=0)
    assert ours.last_epoch == theirs.last_epoch == len(metrics)


def test_reduce_on_plateau_hand_computed():
    opt = _optimizer(lrs=(1.0,))
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1,
                                               cooldown=1)
    losses = [10, 9.5, 9.2, 9.1, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    # 9.5, 9.2 and 9.1 do not beat 10 by 10%: after the third bad step the rate halves and one
    # cooldown step follows; 8.0 improves; then three more bad steps halve it again
    expected = [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    got = []
    for loss in losses:
        scheduler.step(fg.tensor(loss))  # a 0-d Tensor is a metric too
        got.append(opt.param_groups[0]["lr"])
    assert got == expected
    assert scheduler.best == 8.0


def test_reduce_on_plateau_min_lr_and_abs_threshold_by_hand():
    opt = _optimizer(lrs=(1.0,))
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0,
                                               threshold=0.5, threshold_mode="abs",
                                               min_lr=0.05)
    got = []
    for accuracy in [1.0, 1.4, 1.45, 2.2, 2.2]:
        scheduler.step(accuracy)
        got.append(opt.param_groups[0]["lr"])
    # 1.4 and 1.45 are within 0.5 of the best 1.0: two reductions, the second floored at
    # 0.05; 2.2 improves; the last 2.2 is bad again but the floor leaves nothing to reduce
    assert got == pytest.approx([1.0, 0.1, 0.05, 0.05, 0.05], rel=1e-15)


# ---------------------------------------------------------------------------- hand-computed
def _lrs(optimizer, scheduler, steps):
    return _trace(optimizer, scheduler, steps)[0][:, 0].tolist()


@pytest.mark.parametrize("factory, expected", [
    (lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
     [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]),
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[4, 2, 4], gamma=0.1),
     [1, 1, 0.1, 0.1, 0.001, 0.001]),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.5), [1, 0.5, 0.25, 0.125]),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=3),
     [0.25, 0.5, 0.75, 1.0, 1.0]),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.5, total_iters=2),
     [1.0, 0.75, 0.5, 0.5]),
    (lambda o: lr_scheduler.PolynomialLR(o, total_iters=4), [1, 0.75, 0.5, 0.25, 0, 0]),
    (lambda o: lr_scheduler.PolynomialLR(o, total_iters=2, power=2.0), [1, 0.25, 0, 0]),
    # past T_max the cosine climbs back to the initial rate
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=2), [1, 0.5, 0, 0.5, 1, 0.5, 0]),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=0.5),
     [1, 0.875, 0.625, 0.5, 0.625, 0.875, 1.0]),
    (lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 1 / (epoch + 1)), [1, 1 / 2, 1 / 3]),
    # warm-up for two steps, then the decay starts its own count at the milestone
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.LinearLR(o, 0.5, total_iters=2),
                                             lr_scheduler.ExponentialLR(o, 0.5)], [2]),
     [0.5, 0.75, 1.0, 0.5, 0.25]),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.LinearLR(o, 0.5, total_iters=2),
                                             lr_scheduler.CosineAnnealingLR(o, T_max=2)], [3]),
     [0.5, 0.75, 1.0, 1.0, 0.5, 0.0, 0.5]),
])
def test_hand_computed_sequences(factory, expected):
    opt = _optimizer(lrs=(1.0,))
    got = _lrs(opt, factory(opt), len(expected) - 1)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)


def test_one_cycle_hand_computed_with_momentum():
    opt = _optimizer(lrs=(1.0,), momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=9, pct_start=1 / 3,
                                        anneal_strategy="linear", div_factor=10.0,
                                        final_div_factor=100.0)
    lrs, momenta = _trace(opt, scheduler, 9)
    # up from 0.1 to 1 over steps 0..2, down to 0.001 at step 8; the momentum mirrors it
    up = [0.1, 0.55, 1.0]
    down = [1.0 + (0.001 - 1.0) * k / 6 for k in range(1, 7)]
    np.testing.assert_allclose(lrs[:9, 0], up + down, rtol=1e-14)
    np.testing.assert_allclose(momenta[:9, 0], [0.95, 0.9, 0.85] +
                               [0.85 + 0.1 * k / 6 for k in range(1, 7)], rtol=1e-14)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    assert opt.param_groups[0]["min_lr"] == pytest.approx(0.001, rel=1e-15)
    # PyTorch allows one step past the cycle: the last phase, extrapolated
    np.testing.assert_allclose(lrs[9, 0], 1.0 + (0.001 - 1.0) * 7 / 6, rtol=1e-14)


def test_one_cycle_cycles_adams_beta1_and_keeps_beta2():
    opt = _optimizer("Adam", lrs=(1.0,), betas=(0.9, 0.98))
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10, pct_start=0.5,
                                        base_momentum=0.8, max_momentum=0.9)
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    for _ in range(4):
        scheduler.step()
    beta1, beta2 = opt.param_groups[0]["betas"]
    assert beta1 == pytest.approx(0.8) and beta2 == 0.98  # at the peak rate, base momentum
    p = opt.param_groups[0]["params"][0]
    p.grad = fg.tensor(np.array([1.0, -1.0]))
    opt.step()  # the optimiser steps with the cycled beta1 and scheduled rate
    assert opt.state[p]["step"] == 1.0
    np.testing.assert_allclose(p.numpy(), [-0.01, 0.01], rtol=1e-6)


def test_one_cycle_degenerate_phase_is_a_clear_error():
    # pct_start * total_steps == 1: the warm-up would end where it starts (PyTorch divides by 0)
    with pytest.raises(ValueError, match="phase 0 has no length"):
        lr_scheduler.OneCycleLR(_optimizer(momentum=0.9), max_lr=1.0, total_steps=10,
                                pct_start=0.1)


# ----------------------------------------------------------------------------- pure schedules
@pytest.mark.parametrize("schedule, factory, steps", [
    (lr_scheduler.step_schedule(LR, 3, 0.5), lambda o: lr_scheduler.StepLR(o, 3, 0.5), 20),
    (lr_scheduler.multistep_schedule(LR, [5, 2, 5], 0.3),
     lambda o: lr_scheduler.MultiStepLR(o, [5, 2, 5], 0.3), 20),
    (lr_scheduler.exponential_schedule(LR, 0.9), lambda o: lr_scheduler.ExponentialLR(o, 0.9),
     200),
    (lr_scheduler.linear_schedule(LR, 0.1, 1.0, 10),
     lambda o: lr_scheduler.LinearLR(o, 0.1, 1.0, 10), 30),
    (lr_scheduler.polynomial_schedule(LR, 10, 1.0),
     lambda o: lr_scheduler.PolynomialLR(o, 10, 1.0), 30),
    (lr_scheduler.polynomial_schedule(LR, 10, 3.0),
     lambda o: lr_scheduler.PolynomialLR(o, 10, 3.0), 30),
    (lr_scheduler.cosine_annealing_schedule(LR, 10, 0.01),
     lambda o: lr_scheduler.CosineAnnealingLR(o, 10, 0.01), 200),
    (lr_scheduler.one_cycle_schedule(1.0, 50, three_phase=True),
     lambda o: lr_scheduler.OneCycleLR(o, 1.0, 50, three_phase=True), 50),
    (lr_scheduler.one_cycle_schedule(1.0, 40, 0.4, "linear", 5.0, 10.0),
     lambda o: lr_scheduler.OneCycleLR(o, 1.0, 40, pct_start=0.4, anneal_strategy="linear",
                                       div_factor=5.0, final_div_factor=10.0), 40),
])
def test_pure_schedule_is_the_schedulers_closed_form(schedule, factory, steps):
    opt = _optimizer(momentum=0.9)
    got = _lrs(opt, factory(opt), steps)
    expected = [schedule(t) for t in range(steps + 1)]
    # the recursive forms drift from the closed form only by rounding; zeros match exactly
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-17)


def test_polynomial_power_one_is_linear_decay_by_hand():
    schedule = lr_scheduler.polynomial_schedule(2.0, total_iters=8)
    assert [schedule(t) for t in (0, 2, 4, 8, 12)] == [2.0, 1.5, 1.0, 0.0, 0.0]


def test_cosine_schedule_by_hand():
    schedule = lr_scheduler.cosine_annealing_schedule(1.0, T_max=4, eta_min=0.2)
    np.testing.assert_allclose([schedule(t) for t in range(9)],
                               [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6,
                                0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2,
                                0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.6,
                                0.2 + 0.4 * (1 + math.sqrt(0.5)), 1.0], rtol=1e-15)


# ---------------------------------------------------------------------------- base behaviour
def test_construction_sets_initial_lr_and_base_lrs_like_pytorch():
    opt = _optimizer(lrs=(0.1, 0.3))
    first = lr_scheduler.StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.3] == first.base_lrs
    for _ in range(2):
        first.step()
    # a second scheduler keeps the stored initial rates as its base
    second = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    assert second.base_lrs == [0.1, 0.3]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.03])
    assert first.last_epoch == 2 and second.last_epoch == 0


def test_scheduled_rate_drives_the_optimizer():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=1.0)
    scheduler = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = fg.tensor(np.array([1.0]))
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 1.0 - 0.5 - 0.25])


def test_resume_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in "
                                       r"param_groups\[0\] when resuming"):
        lr_scheduler.StepLR(_optimizer(), step_size=2, last_epoch=3)
    opt = _optimizer()
    opt.param_groups[0]["initial_lr"] = 1.0
    scheduler = lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)
    assert scheduler.last_epoch == 4 and scheduler.base_lrs == [1.0]
    assert opt.param_groups[0]["lr"] == pytest.approx(LR * 0.1)  # step 4 decays


def test_resume_with_last_epoch_matches_pytorch():
    torch = pytest.importorskip("torch")
    rows = []
    for module, opt in ((lr_scheduler, _optimizer()), (torch.optim.lr_scheduler,
                                                        _torch_optimizer(torch))):
        opt.param_groups[0]["initial_lr"] = 1.0
        scheduler = module.CosineAnnealingLR(opt, T_max=10, last_epoch=4)
        rows.append(_trace(opt, scheduler, 15)[0])
    assert _relative_error(*rows) < 1e-12


SAVED_SCHEDULES = [
    ("lambda", lambda o: lr_scheduler.LambdaLR(o, lambda e: 0.9 ** e), {}),
    ("step", lambda o: lr_scheduler.StepLR(o, 3, 0.5), {}),
    ("cosine", lambda o: lr_scheduler.CosineAnnealingLR(o, 8, 0.001), {}),
    ("sequential", lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 0.2, total_iters=4),
            lr_scheduler.CosineAnnealingLR(o, T_max=10)], [4]), {}),
    ("one-cycle", lambda o: lr_scheduler.OneCycleLR(o, 0.5, 30), dict(momentum=0.9)),
]


@pytest.mark.parametrize("name, factory, options", SAVED_SCHEDULES,
                         ids=[s[0] for s in SAVED_SCHEDULES])
def test_state_dict_round_trip_mid_run_continues_identically(name, factory, options):
    opt = _optimizer("SGD", (LR, 0.2), **options)
    scheduler = factory(opt)
    _trace(opt, scheduler, 6)
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()
    assert "optimizer" not in saved
    expected = _trace(opt, scheduler, 12)

    fresh_opt = _optimizer("SGD", (1.0, 1.0), **options)
    fresh = factory(fresh_opt)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    got = _trace(fresh_opt, fresh, 12)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert fresh.last_epoch == scheduler.last_epoch


def test_reduce_on_plateau_state_dict_round_trip():
    opt = _optimizer()
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, patience=1, cooldown=2, factor=0.5)
    _plateau_trace(scheduler, opt, LOSSES[:10])
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()
    expected = _plateau_trace(scheduler, opt, LOSSES[10:])
    fresh_opt = _optimizer(lrs=(1.0,))
    fresh = lr_scheduler.ReduceLROnPlateau(fresh_opt, mode="max")
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(_plateau_trace(fresh, fresh_opt, LOSSES[10:]), expected)


def test_lambda_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = _optimizer(lrs=(LR, LR))
    scheduler = lr_scheduler.LambdaLR(opt, [Decay(0.5), lambda e: 1.0])
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    other = lr_scheduler.LambdaLR(_optimizer(lrs=(LR, LR)), [Decay(0.9), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.5


# --------------------------------------------------------------------------------- validation
VALIDATION = [
    # (factory(module, optimizer), optimiser kind, error, match, PyTorch raises the same)
    (lambda m, o: m.LinearLR(o, start_factor=0), "SGD", ValueError,
     "Starting multiplicative factor expected to be greater than 0 and less or equal to 1",
     True),
    (lambda m, o: m.LinearLR(o, end_factor=1.5), "SGD", ValueError,
     "Ending multiplicative factor expected to be between 0 and 1", True),
    (lambda m, o: m.LambdaLR(o, [lambda e: 1.0] * 2), "SGD", ValueError,
     "Expected 1 lr_lambdas, but got 2", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0), "SGD", ValueError,
     r"You must define either total_steps OR \(epochs AND steps_per_epoch\)", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=0), "SGD", ValueError,
     "Expected positive integer total_steps, but got 0", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=0, steps_per_epoch=5), "SGD", ValueError,
     "Expected positive integer epochs, but got 0", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=-1), "SGD",
     ValueError, "Expected positive integer steps_per_epoch, but got -1", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), "SGD",
     ValueError, "Expected float between 0 and 1 pct_start, but got 1.5", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), "SGD",
     ValueError, "anneal_strategy must be one of 'cos' or 'linear', instead got exp", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=10), "SGD", ValueError,
     "max_lr must have the same length as optimizer.param_groups", True),
    (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10), "Adagrad", ValueError,
     "optimizer must support momentum or beta1 with `cycle_momentum` option enabled", True),
    (lambda m, o: m.ReduceLROnPlateau(o, factor=1.0), "SGD", ValueError,
     r"Factor should be < 1\.0", True),
    (lambda m, o: m.ReduceLROnPlateau(o, mode="avg"), "SGD", ValueError,
     "mode avg is unknown!", True),
    (lambda m, o: m.ReduceLROnPlateau(o, threshold_mode="pct"), "SGD", ValueError,
     "threshold mode pct is unknown!", True),
    (lambda m, o: m.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), "SGD", ValueError,
     "expected 1 min_lrs, got 2", True),
    (lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2), m.StepLR(o, 3)], milestones=[]), "SGD",
     ValueError, "Sequential Schedulers expects number of schedulers provided to be one more "
                 "than the number of milestone points", True),
    (lambda m, o: m.SequentialLR(o, [], milestones=[]), "SGD", ValueError,
     "SequentialLR expects at least one scheduler", True),
    (lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2), m.ReduceLROnPlateau(o)], milestones=[3]),
     "SGD", ValueError, "SequentialLR does not support `ReduceLROnPlateau`", True),
    (lambda m, o: m.StepLR([1, 2], step_size=2), "SGD", TypeError, "list is not an Optimizer",
     True),
    # beyond PyTorch, which fails later (or never) with a ZeroDivisionError
    (lambda m, o: m.StepLR(o, step_size=0), "SGD", ValueError,
     "step_size must be an integer >= 1, got 0", False),
    (lambda m, o: m.CosineAnnealingLR(o, T_max=0), "SGD", ValueError,
     "T_max must be an integer >= 1, got 0", False),
    (lambda m, o: m.CosineAnnealingLR(o, T_max=2.5), "SGD", TypeError,
     "T_max must be an integer, got 2.5", False),
    (lambda m, o: m.PolynomialLR(o, total_iters=0), "SGD", ValueError,
     "total_iters must be an integer >= 1, got 0", False),
    (lambda m, o: m.MultiStepLR(o, milestones=[2, "3"]), "SGD", TypeError,
     r"milestones\[1\] must be an integer, got '3'", False),
    (lambda m, o: m.ExponentialLR(o, gamma=-0.5), "SGD", ValueError,
     r"gamma must be >= 0.0, got -0\.5", False),
    (lambda m, o: m.ReduceLROnPlateau(o, patience=-1), "SGD", ValueError,
     "patience must be an integer >= 0, got -1", False),
    (lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2)] * 3, milestones=[5, 2]), "SGD",
     ValueError, r"milestones must be increasing, got \[5, 2\]", False),
]


@pytest.mark.parametrize("factory, kind, error, match, same_in_torch", VALIDATION)
def test_invalid_arguments_raise(factory, kind, error, match, same_in_torch):
    with pytest.raises(error, match=match):
        factory(lr_scheduler, _optimizer(kind))


@pytest.mark.parametrize("factory, kind, error, match, same_in_torch",
                         [v for v in VALIDATION if v[-1]])
def test_pytorch_raises_the_same_error(factory, kind, error, match, same_in_torch):
    torch = pytest.importorskip("torch")
    with pytest.raises(error, match=match):
        factory(torch.optim.lr_scheduler, _torch_optimizer(torch, kind))


def test_sequential_schedulers_must_share_the_optimizer():
    opt, other = _optimizer(), _optimizer()
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same "
                                         "optimizer.*index 1"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2),
                                        lr_scheduler.StepLR(other, 2)], milestones=[3])


def test_scheduler_built_before_a_new_param_group_refuses_to_step():
    opt = _optimizer()
    scheduler = lr_scheduler.LambdaLR(opt, lambda e: 0.5)
    opt.add_param_group({"params": [nn.Parameter(np.zeros(1))]})
    with pytest.raises(ValueError, match="computed 1 learning rates for an optimizer with 2 "
                                         "param groups"):
        scheduler.step()
