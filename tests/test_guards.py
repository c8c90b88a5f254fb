"""SkipNonFinite (skipped steps leave parameters and state untouched, are counted and warned
about; optional clip in the same pass) and GradientNoise (seeded, variance η/(1+t)^γ)."""
import math
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.arena import arena_of
from fastgrad.nn import utils
from fastgrad.optim.accumulate import GradientAccumulator
from fastgrad.optim.guards import GradientNoise, SkipNonFinite
from fastgrad.tensor import Tensor


def _params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [nn.Parameter(rng.standard_normal(shape).astype(dtype))
            for shape in ((3, 2), (4,), (2, 2))]


def _set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = Tensor(rng.standard_normal(p.shape).astype(p.dtype))


# ------------------------------------------------------------------------------ SkipNonFinite
def test_finite_steps_are_the_wrapped_optimizers():
    guarded, plain = _params(), _params()
    guard = SkipNonFinite(optim.Adam(guarded, lr=0.1))
    reference = optim.Adam(plain, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(3):
            _set_grads(guarded, seed)
            _set_grads(plain, seed)
            guard.step()
            reference.step()
    assert guard.step_count == 3 and guard.skipped == 0 and not guard.last_skipped
    for p, q in zip(guarded, plain):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nonfinite_step_is_skipped_counted_and_warned(bad):
    params = _params(np.float32)
    adam = optim.Adam(params, lr=0.1)
    guard = SkipNonFinite(adam)
    _set_grads(params, 1)
    guard.step()
    values = [p.numpy().copy() for p in params]
    moments = [adam.state[p]["exp_avg"].numpy().copy() for p in params]
    _set_grads(params, 2)
    params[1].grad.numpy()[2] = bad
    params[2].grad.numpy()[0, 1] = bad
    grads = [p.grad.numpy().copy() for p in params]
    with pytest.warns(RuntimeWarning, match=r"step 2: 2 parameter\(s\) have non-finite "
                                             r"gradients \(first: param_groups\[0\]\['params'\]"
                                             r"\[1\] of shape \(4,\)\)"):
        guard.step()
    with pytest.warns(RuntimeWarning, match=r"step 3: .* \(2 of 3 steps skipped so far\)"):
        guard.step()
    assert guard.skipped == 2 and guard.step_count == 3 and guard.last_skipped
    assert not math.isfinite(guard.last_norm)
    for p, v, m, g in zip(params, values, moments, grads):
        assert p.numpy().tobytes() == v.tobytes()
        assert adam.state[p]["exp_avg"].numpy().tobytes() == m.tobytes()
        assert adam.state[p]["step"] == 1
        assert p.grad.numpy().tobytes() == g.tobytes()  # kept, like GradScaler
    guard.zero_grad()
    _set_grads(params, 3)
    guard.step()
    assert not guard.last_skipped and all(adam.state[p]["step"] == 2 for p in params)


def test_warn_false_is_silent():
    params = _params()
    guard = SkipNonFinite(optim.SGD(params, lr=0.1), warn=False)
    _set_grads(params, 0)
    params[0].grad.numpy()[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guard.step()
    assert guard.skipped == 1


def test_nonfinite_in_a_parameter_without_grad_slot_does_not_count():
    params = _params()
    opt = optim.SGD(params, lr=0.1)
    _set_grads(params, 0)
    opt.zero_grad()                        # grads None; the arena slots keep old values
    arena_of(params[0]).grad[0] = np.nan   # params[0][0, 0]'s stale slot, no gradient
    params[1].grad = Tensor(np.ones(4))
    before = params[0].numpy().copy()
    guard = SkipNonFinite(opt)
    guard.step()
    assert guard.skipped == 0
    np.testing.assert_array_equal(params[0].numpy(), before)
    np.testing.assert_allclose(params[1].grad.numpy(), 1.0)


def test_max_norm_clips_in_the_same_pass():
    guarded, plain = _params(), _params()
    guard = SkipNonFinite(optim.SGD(guarded, lr=0.1), max_norm=0.5, norm_type=1.0)
    reference = optim.SGD(plain, lr=0.1)
    _set_grads(guarded, 4)
    _set_grads(plain, 4)
    guard.step()
    total = utils.clip_grad_norm_(plain, 0.5, norm_type=1.0)
    reference.step()
    assert guard.last_norm == pytest.approx(total.item(), rel=1e-15)
    norms = arena_of(guarded[0]).clip_norms(1.0)
    assert norms is not None and len(norms) == 3
    for p, q in zip(guarded, plain):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-15)
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-15)
    # non-finite: skipped, and the gradients are not scaled
    _set_grads(guarded, 5)
    guarded[2].grad.numpy()[1, 1] = np.inf
    grads = [p.grad.numpy().copy() for p in guarded]
    with pytest.warns(RuntimeWarning, match=r"param_groups\[0\]\['params'\]\[2\]"):
        guard.step()
    for p, g in zip(guarded, grads):
        assert p.grad.numpy().tobytes() == g.tobytes()


def test_several_groups_name_the_group():
    params = _params()
    guard = SkipNonFinite(optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1))
    _set_grads(params, 0)
    params[2].grad.numpy()[1, 0] = np.nan
    with pytest.warns(RuntimeWarning, match=r"param_groups\[1\]\['params'\]\[0\] of shape"):
        guard.step()


def test_skip_state_dict_round_trip():
    params = _params()
    guard = SkipNonFinite(optim.SGD(params, lr=0.1, momentum=0.9), warn=False)
    _set_grads(params, 0)
    guard.step()
    params[0].grad.numpy()[0, 0] = np.nan
    guard.step()
    saved = guard.state_dict()
    assert saved["step_count"] == 2 and saved["skipped"] == 1 and "optimizer" in saved
    other = SkipNonFinite(optim.SGD(_params(), lr=0.1, momentum=0.9))
    other.load_state_dict(saved)
    assert other.step_count == 2 and other.skipped == 1
    with pytest.raises(ValueError, match="state_dict"):
        other.load_state_dict({"optimizer": saved["optimizer"]})


def test_skip_bad_arguments():
    opt = optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match="max_norm"):
        SkipNonFinite(opt, max_norm=-1.0)
    with pytest.raises(ValueError, match="norm_type"):
        SkipNonFinite(opt, max_norm=1.0, norm_type=0)
    with pytest.raises(TypeError, match="optimizer"):
        SkipNonFinite(object())


# ------------------------------------------------------------------------------ GradientNoise
def _noise_run(generator, steps=3, seed_default=None):
    if seed_default is not None:
        fg.manual_seed(seed_default)
    params = _params()
    noisy = GradientNoise(optim.SGD(params, lr=0.1), eta=0.3, generator=generator)
    for seed in range(steps):
        _set_grads(params, seed)
        noisy.step()
    return [p.numpy().copy() for p in params]


def test_noise_is_seeded_and_repeatable():
    first = _noise_run(fg.Generator(5))
    again = _noise_run(fg.Generator(5))
    other = _noise_run(fg.Generator(6))
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    default = _noise_run(None, seed_default=11)
    for a, b in zip(default, _noise_run(None, seed_default=11)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eta", [0.01, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_variance_follows_the_schedule_and_decays(eta, dtype):
    p = nn.Parameter(np.zeros(200_000, dtype))
    noisy = GradientNoise(optim.SGD([p], lr=0.0), eta=eta, gamma=0.55,
                          generator=fg.Generator(0))
    variances = []
    for t in range(12):
        p.grad = Tensor(np.zeros(p.shape, dtype))
        assert noisy.std() == pytest.approx(math.sqrt(eta / (1 + t) ** 0.55))
        noisy.step()
        noise = p.grad.numpy().astype(np.float64)
        expected = eta / (1 + t) ** 0.55
        # the sample variance of 2e5 normal draws is within 2 % (about 6 standard errors)
        assert noise.var() == pytest.approx(expected, rel=0.02)
        assert abs(noise.mean()) < 6 * math.sqrt(expected / noise.size)
        variances.append(noise.var())
    assert noisy.t == 12
    assert variances[-1] < 0.3 * variances[0]  # (1 + 11) ** -0.55 = 0.255


def test_noise_skips_parameters_without_gradients_and_eta_zero_adds_nothing():
    params = _params()
    noisy = GradientNoise(optim.SGD(params, lr=0.1), eta=1.0, generator=fg.Generator(1))
    _set_grads(params, 0)
    params[1].grad = None
    before = params[1].numpy().copy()
    grad0 = params[0].grad.numpy().copy()
    noisy.step()
    assert params[1].grad is None
    np.testing.assert_array_equal(params[1].numpy(), before)
    assert not np.array_equal(params[0].grad.numpy(), grad0)

    silent = GradientNoise(optim.SGD(params, lr=0.1), eta=0.0, generator=fg.Generator(1))
    _set_grads(params, 1)
    grads = [p.grad.numpy().copy() for p in params]
    silent.step()
    for p, g in zip(params, grads):
        assert p.grad.numpy().tobytes() == g.tobytes()


def test_noise_counts_real_steps_inside_an_accumulator():
    params = _params()
    noisy = GradientNoise(optim.SGD(params, lr=0.1), generator=fg.Generator(2))
    acc = GradientAccumulator(noisy, steps=3)
    for seed in range(7):
        _set_grads(params, seed)
        acc.step()
    acc.flush()
    assert noisy.t == 3 and acc.real_steps == 3


def test_noise_state_dict_and_bad_arguments():
    params = _params()
    noisy = GradientNoise(optim.SGD(params, lr=0.1), generator=fg.Generator(3))
    _set_grads(params, 0)
    noisy.step()
    saved = noisy.state_dict()
    assert saved["t"] == 1
    other = GradientNoise(optim.SGD(_params(), lr=0.1))
    other.load_state_dict(saved)
    assert other.t == 1 and other.std() == pytest.approx(math.sqrt(0.01 / 2 ** 0.55))
    opt = optim.SGD(_params(), lr=0.1)
    for kwargs, error in [(dict(eta=-0.1), ValueError), (dict(gamma=math.nan), ValueError),
                          (dict(eta=math.inf), ValueError), (dict(gamma=True), ValueError),
                          (dict(generator=np.random.default_rng(0)), TypeError)]:
        with pytest.raises(error, match=next(iter(kwargs))):
            GradientNoise(opt, **kwargs)
