"""fastgrad.nn.init: PyTorch's formulas checked through the moments and bounds of large
samples, orthogonality, seeding and errors; against PyTorch when it is installed (those tests
skip without it)."""
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.nn import init

SHAPE = (384, 256, 3)  # fan_in = 768, fan_out = 1152; 294,912 draws: moments to ~0.3%

GAINS = [("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0),
         ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)),
         ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
         ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", 0, math.sqrt(2)),
         ("selu", None, 0.75)]


@pytest.mark.parametrize("nonlinearity, param, gain", GAINS)
def test_calculate_gain(nonlinearity, param, gain):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-15)


def _sample(fill, shape=SHAPE, dtype=np.float32):
    tensor = fg.zeros(*shape, dtype=dtype)
    assert fill(tensor) is tensor
    return tensor.numpy().astype(np.float64)


def _check_uniform(values, bound):
    assert values.min() >= -bound and values.max() <= bound
    assert values.max() > 0.999 * bound and values.min() < -0.999 * bound
    assert abs(values.mean()) < 4 * bound / math.sqrt(3 * values.size)
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


def _check_normal(values, std, mean=0.0):
    assert abs(values.mean() - mean) < 4 * std / math.sqrt(values.size)
    assert values.std() == pytest.approx(std, rel=0.01)
    # the normal's tails: about 4.55% beyond two standard deviations
    assert np.mean(np.abs(values - mean) > 2 * std) == pytest.approx(0.0455, abs=0.003)


FAN_IN, FAN_OUT = 256 * 3, 384 * 3


def test_uniform_and_normal():
    values = _sample(lambda t: init.uniform_(t, -2.0, 3.0))
    assert values.min() >= -2 and values.max() < 3
    assert values.mean() == pytest.approx(0.5, abs=0.01)
    assert values.std() == pytest.approx(5 / math.sqrt(12), rel=0.01)
    _check_normal(_sample(lambda t: init.normal_(t, 1.5, 0.2)), 0.2, mean=1.5)


def test_constant_zeros_ones():
    np.testing.assert_array_equal(_sample(lambda t: init.constant_(t, 0.25), (3, 4)), 0.25)
    np.testing.assert_array_equal(_sample(init.zeros_, (3, 4)), 0)
    np.testing.assert_array_equal(_sample(init.ones_, (3, 4)), 1)


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier(gain):
    std = gain * math.sqrt(2 / (FAN_IN + FAN_OUT))
    _check_uniform(_sample(lambda t: init.xavier_uniform_(t, gain)), math.sqrt(3) * std)
    _check_normal(_sample(lambda t: init.xavier_normal_(t, gain)), std)


@pytest.mark.parametrize("a, mode, nonlinearity", [
    (0.0, "fan_in", "leaky_relu"), (math.sqrt(5), "fan_in", "leaky_relu"),
    (0.0, "fan_out", "relu"), (0.1, "fan_out", "tanh"), (0.0, "fan_in", "linear")])
def test_kaiming(a, mode, nonlinearity):
    fan = FAN_IN if mode == "fan_in" else FAN_OUT
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    _check_uniform(_sample(lambda t: init.kaiming_uniform_(t, a, mode, nonlinearity)),
                   math.sqrt(3) * std)
    _check_normal(_sample(lambda t: init.kaiming_normal_(t, a, mode, nonlinearity)), std)


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (7, 7), (4, 3, 2, 2)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape, gain):
    w = _sample(lambda t: init.orthogonal_(t, gain), shape, np.float64).reshape(shape[0], -1)
    rows, cols = w.shape
    product = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(product, gain ** 2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_is_haar_distributed_thanks_to_the_sign_fix():
    # without multiplying Q's columns by sign(diag(R)), Householder QR makes Q[0, 0] <= 0
    generator = fg.Generator(0)
    corners = [_sample(lambda t: init.orthogonal_(t, generator=generator), (3, 3),
                       np.float64)[0, 0] for _ in range(2000)]
    assert abs(np.mean(corners)) < 0.05  # the standard error is about 0.013
    assert np.mean(np.square(corners)) == pytest.approx(1 / 3, abs=0.03)


FILLS = {
    "uniform_": lambda t, g: init.uniform_(t, generator=g),
    "normal_": lambda t, g: init.normal_(t, generator=g),
    "xavier_uniform_": lambda t, g: init.xavier_uniform_(t, generator=g),
    "xavier_normal_": lambda t, g: init.xavier_normal_(t, generator=g),
    "kaiming_uniform_": lambda t, g: init.kaiming_uniform_(t, generator=g),
    "kaiming_normal_": lambda t, g: init.kaiming_normal_(t, generator=g),
    "orthogonal_": lambda t, g: init.orthogonal_(t, generator=g),
}


@pytest.mark.parametrize("name", FILLS)
def test_generator_and_manual_seed_make_draws_repeatable(name):
    fill = FILLS[name]
    first = _sample(lambda t: fill(t, fg.Generator(3)), (5, 4))
    np.testing.assert_array_equal(_sample(lambda t: fill(t, fg.Generator(3)), (5, 4)), first)
    assert not np.array_equal(_sample(lambda t: fill(t, fg.Generator(4)), (5, 4)), first)
    fg.manual_seed(11)
    default = _sample(lambda t: fill(t, None), (5, 4))
    fg.manual_seed(11)
    np.testing.assert_array_equal(_sample(lambda t: fill(t, None), (5, 4)), default)


def test_initialisers_work_on_parameters_in_place_and_keep_dtype():
    layer = nn.Linear(5, 3, dtype=np.float64)
    weight = layer.weight
    init.orthogonal_(layer.weight)
    init.zeros_(layer.bias)
    assert layer.weight is weight and weight.dtype == np.float64 and weight.requires_grad
    assert weight.grad_fn is None
    np.testing.assert_allclose(weight.numpy() @ weight.numpy().T, np.eye(3), atol=1e-12)


def test_zero_element_tensors_are_left_alone():
    for fill in (init.kaiming_uniform_, init.kaiming_normal_, init.orthogonal_):
        empty = fg.zeros(0, 3)
        assert fill(empty) is empty and empty.shape == (0, 3)


@pytest.mark.parametrize("call, error", [
    (lambda: init.xavier_uniform_(fg.zeros(4)), ValueError),
    (lambda: init.kaiming_normal_(fg.zeros(4)), ValueError),
    (lambda: init.kaiming_normal_(fg.zeros(4, 4), mode="fan_avg"), ValueError),
    (lambda: init.kaiming_uniform_(fg.zeros(4, 4), nonlinearity="swish"), ValueError),
    (lambda: init.calculate_gain("leaky_relu", "0.1"), ValueError),
    (lambda: init.orthogonal_(fg.zeros(4)), ValueError),
    (lambda: init.normal_(fg.zeros(4), std=-1.0), ValueError),
    (lambda: init.uniform_(fg.zeros(4), generator=np.random.default_rng(0)), TypeError),
], ids=["xavier-1d", "kaiming-1d", "mode", "nonlinearity", "slope", "orthogonal-1d",
        "negative-std", "numpy-generator"])
def test_errors(call, error):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("nonlinearity, param, gain", GAINS)
def test_calculate_gain_matches_pytorch(nonlinearity, param, gain):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


MOMENT_CASES = {
    "uniform_": dict(a=-0.5, b=2.0),
    "normal_": dict(mean=0.3, std=2.0),
    "xavier_uniform_": dict(gain=1.5),
    "xavier_normal_": dict(gain=1.5),
    "kaiming_uniform_": dict(a=math.sqrt(5)),
    "kaiming_normal_": dict(mode="fan_out", nonlinearity="relu"),
    "orthogonal_": dict(gain=2.0),
}


@pytest.mark.parametrize("name", MOMENT_CASES)
def test_distribution_moments_match_pytorch(name):
    torch = pytest.importorskip("torch")
    kwargs = MOMENT_CASES[name]
    shape = (512, 128, 3) if name != "orthogonal_" else (300, 500)
    ours = _sample(lambda t: getattr(init, name)(t, **kwargs), shape)
    theirs = torch.empty(shape)
    getattr(torch.nn.init, name)(theirs, **kwargs)
    theirs = theirs.numpy().astype(np.float64)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.01)
    scale = theirs.std() / math.sqrt(theirs.size)
    assert abs(ours.mean() - theirs.mean()) < 6 * scale
    if "uniform" in name:  # the same bounds, reached
        assert ours.min() == pytest.approx(theirs.min(), rel=1e-3)
        assert ours.max() == pytest.approx(theirs.max(), rel=1e-3)
    if name == "orthogonal_":
        np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-4)
