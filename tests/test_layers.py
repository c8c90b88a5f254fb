"""Dropout, the activations (LeakyReLU, ELU, GELU, Softplus), Identity, Flatten and Residual:
gradchecks, semantics, stability, errors; against PyTorch when it is installed (those tests
skip without it)."""
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck

FLOATS = (np.float32, np.float64)


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _rel(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)


# ----------------------------------------------------------------------------------- dropout
def test_dropout_keeps_the_expectation_and_zeroes_a_fraction_p():
    fg.manual_seed(0)
    p = 0.3
    x = fg.ones(400, 250)
    out = F.dropout(x, p).numpy()
    zeroed = out == 0
    assert abs(zeroed.mean() - p) < 0.01  # 1e5 draws: the standard error is 0.0014
    np.testing.assert_allclose(out[~zeroed], np.float32(1 / (1 - p)))
    assert abs(out.mean() - 1) < 0.01
    # over many draws, every element's mean approaches the input
    values = np.random.default_rng(1).standard_normal(20).astype(np.float32)
    draws = np.stack([F.dropout(_t(values), 0.5).numpy() for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), values, atol=0.1)


def test_dropout_is_repeatable_under_manual_seed():
    x = fg.ones(50, 40)
    fg.manual_seed(7)
    first = F.dropout(x, 0.5).numpy()
    fg.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), first)  # the stream moves on
    fg.manual_seed(8)
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), first)


def test_dropout_gradient_is_the_same_mask_scaled():
    fg.manual_seed(3)
    x = _t(np.random.default_rng(2).standard_normal((30, 20)).astype(np.float32), True)
    out = F.dropout(x, 0.25)
    out.backward(fg.ones(30, 20))
    kept = out.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), kept / np.float32(0.75))
    np.testing.assert_allclose(out.numpy(), x.numpy() * kept / np.float32(0.75), rtol=1e-6)


def test_gradcheck_dropout():
    def fn(x):
        fg.manual_seed(5)  # the same mask for every evaluation
        return F.dropout(x, 0.4)

    x = _t(np.random.default_rng(4).standard_normal((4, 5)), requires_grad=True)
    assert gradcheck(fn, (x,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_identity_in_eval_and_for_p_0_and_zeros_for_p_1(dtype):
    x = _t(np.array([[1.0, -2.0, np.inf], [3.0, 0.5, -1.0]], dtype), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    layer = nn.Dropout(0.5)
    layer.eval()
    assert layer(x) is x
    out = F.dropout(x, 1.0)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), 0)  # no NaN, even for the infinite element
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)
    assert F.dropout(x, 0.5).dtype == dtype


def test_dropout_module_follows_train_and_eval():
    fg.manual_seed(9)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    x = fg.ones(16, 8)
    assert not np.array_equal(model(x).numpy(), model(x).numpy())
    model.eval()
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"


@pytest.mark.parametrize("p, error", [(-0.1, ValueError), (1.5, ValueError),
                                      (float("nan"), ValueError), ("half", TypeError),
                                      (True, TypeError)])
def test_dropout_probability_out_of_range(p, error):
    with pytest.raises(error):
        nn.Dropout(p)
    with pytest.raises(error):
        F.dropout(fg.ones(3), p)


def test_dropout_needs_a_floating_tensor():
    with pytest.raises(TypeError):
        F.dropout(fg.tensor([1, 2, 3]), 0.5)


# ------------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), nn.LeakyReLU(0.2),
                   lambda t, x: t.nn.functional.leaky_relu(x, 0.2)),
    "leaky_relu-default": (F.leaky_relu, nn.LeakyReLU(),
                           lambda t, x: t.nn.functional.leaky_relu(x)),
    "elu": (lambda x: F.elu(x, 1.3), nn.ELU(1.3), lambda t, x: t.nn.functional.elu(x, 1.3)),
    "gelu": (F.gelu, nn.GELU(), lambda t, x: t.nn.functional.gelu(x)),
    "gelu-tanh": (lambda x: F.gelu(x, "tanh"), nn.GELU("tanh"),
                  lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    "softplus": (F.softplus, nn.Softplus(), lambda t, x: t.nn.functional.softplus(x)),
    "softplus-beta": (lambda x: F.softplus(x, 2.0, 3.0), nn.Softplus(2.0, 3.0),
                      lambda t, x: t.nn.functional.softplus(x, 2.0, 3.0)),
}


def _activation_inputs(dtype, wide=False):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((6, 7)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep gradchecks off the kinks at 0
    x[np.abs(2 * x - 3) < 1e-3] = 0.5  # and off softplus-beta's switch at beta * x = 3
    if wide:
        x[0, :6] = [-1e3, -50.0, -30.0, 30.0, 50.0, 1e3]
    return x.astype(dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_gradcheck_activation(name):
    fn, _, _ = ACTIVATIONS[name]
    assert gradcheck(fn, (_t(_activation_inputs(np.float64), requires_grad=True),))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_module_equals_function(name):
    fn, module, _ = ACTIVATIONS[name]
    x = _t(_activation_inputs(np.float32))
    np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    assert fn(x).dtype == np.float32


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_pytorch(name, dtype):
    torch = pytest.importorskip("torch")
    fn, module, torch_fn = ACTIVATIONS[name]
    x = _activation_inputs(dtype, wide=True)
    grad = np.random.default_rng(11).standard_normal(x.shape).astype(dtype)
    ours = _t(x, requires_grad=True)
    out = fn(ours)
    out.backward(_t(grad))
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch_fn(torch, theirs)
    expected.backward(torch.from_numpy(grad))
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    assert _rel(out.numpy(), expected.detach().numpy()) < tolerance
    assert _rel(ours.grad.numpy(), theirs.grad.numpy()) < tolerance
    assert np.isfinite(out.numpy()).all() and np.isfinite(ours.grad.numpy()).all()


def test_activation_reprs_match_pytorch():
    expected = {nn.LeakyReLU(): "LeakyReLU(negative_slope=0.01)", nn.ELU(): "ELU(alpha=1.0)",
                nn.GELU(): "GELU(approximate='none')",
                nn.GELU("tanh"): "GELU(approximate='tanh')",
                nn.Softplus(): "Softplus(beta=1.0, threshold=20.0)",
                nn.Identity(): "Identity()", nn.Flatten(): "Flatten(start_dim=1, end_dim=-1)"}
    for module, text in expected.items():
        assert repr(module) == text


def test_normal_cdf_is_accurate_against_math_erfc():
    x = np.concatenate([np.linspace(-37.5, 38, 20001), [0.0, -0.0, 0.6629, -0.6629, 5.657,
                                                        -5.657, 1e-300]])
    # the same argument x / sqrt(2) as the implementation: erfc's own conditioning
    # (2 z² relative per relative change of z) is not what this test measures
    expected = np.array([0.5 * math.erfc(-(v * math.sqrt(0.5))) for v in x])
    np.testing.assert_allclose(F._normal_cdf(x), expected, rtol=3e-15, atol=0)
    special = F._normal_cdf(np.array([np.inf, -np.inf, -40.0, np.nan]))
    assert special[0] == 1 and special[1] == 0 and special[2] == 0 and np.isnan(special[3])


def test_exact_gelu_against_math_erfc():
    x = np.linspace(-12, 12, 2001)
    expected = np.array([v * 0.5 * math.erfc(-(v * math.sqrt(0.5))) for v in x])
    np.testing.assert_allclose(F.gelu(_t(x)).numpy(), expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_stay_finite_at_extreme_inputs(dtype):
    big = np.finfo(dtype).max / 4
    x = _t(np.array([-big, -1e4, -100.0, 0.0, 100.0, 1e4, big], dtype), requires_grad=True)
    for name, (fn, _, _) in ACTIVATIONS.items():
        x.grad = None
        out = fn(x)
        out.sum().backward()
        assert np.isfinite(out.numpy()).all(), name
        assert np.isfinite(x.grad.numpy()).all(), name
    np.testing.assert_allclose(F.elu(x).numpy()[:2], -1)
    np.testing.assert_array_equal(F.softplus(x).numpy()[-1], big)  # the linear regime
    np.testing.assert_allclose(F.gelu(x).numpy()[[0, -1]], [0, big])


def test_softplus_linear_regime_above_threshold():
    x = _t(np.array([9.9, 10.1]), requires_grad=True)
    out = F.softplus(x, beta=2.0, threshold=20.0)
    np.testing.assert_allclose(out.numpy()[0], math.log1p(math.exp(19.8)) / 2, rtol=1e-15)
    assert out.numpy()[1] == 10.1
    out.sum().backward()
    assert x.grad.numpy()[1] == 1.0


@pytest.mark.parametrize("call, error", [
    (lambda: F.gelu(fg.zeros(2), approximate="erf"), ValueError),
    (lambda: nn.GELU("fast"), ValueError),
    (lambda: F.softplus(fg.zeros(2), beta=0), ValueError),
    (lambda: nn.Softplus(beta=0), ValueError),
    (lambda: F.leaky_relu(fg.tensor([1, 2]), 0.1), TypeError),
    (lambda: nn.LeakyReLU("0.1"), TypeError),
    (lambda: F.elu(np.zeros(3)), TypeError),
], ids=["gelu-approximate", "GELU-approximate", "softplus-beta", "Softplus-beta",
        "leaky-int-input", "LeakyReLU-slope", "elu-array"])
def test_activation_errors(call, error):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------- Identity, Flatten
def test_identity_returns_its_input_and_ignores_arguments():
    x = fg.ones(2, 3)
    assert nn.Identity(54, unused_argument=0.1)(x) is x


@pytest.mark.parametrize("start, end, shape", [(1, -1, (2, 60)), (0, -1, (120,)),
                                               (1, 2, (2, 12, 5)), (2, 3, (2, 3, 20))])
def test_flatten_shapes_and_gradient(start, end, shape):
    x = _t(np.arange(120, dtype=np.float64).reshape(2, 3, 4, 5), requires_grad=True)
    out = nn.Flatten(start, end)(x)
    assert out.shape == shape
    np.testing.assert_array_equal(out.numpy().reshape(-1), np.arange(120))
    assert gradcheck(lambda x: nn.Flatten(start, end)(x) * 2.0, (x,))


def test_flatten_matches_pytorch_shapes():
    torch = pytest.importorskip("torch")
    x = np.zeros((2, 3, 4, 5), np.float32)
    for args in [(), (0,), (2,), (1, 2), (-3, -2)]:
        assert nn.Flatten(*args)(_t(x)).shape == tuple(torch.nn.Flatten(*args)(
            torch.from_numpy(x)).shape)


# ---------------------------------------------------------------------------------- Residual
def test_residual_identity_shortcut_adds_the_input():
    block = nn.Linear(4, 4, dtype=np.float64)
    layer = nn.Residual(block)
    x = _t(np.random.default_rng(12).standard_normal((3, 4)), requires_grad=True)
    np.testing.assert_allclose(layer(x).numpy(), block(x).numpy() + x.numpy(), rtol=1e-15)
    # the gradient reaches x through both paths: W^T g + g
    layer(x).backward(fg.ones(3, 4, dtype=fg.float64))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 4)) @ block.weight.numpy() + 1,
                               rtol=1e-14)
    assert gradcheck(lambda x, *params: layer(x), (x, block.weight, block.bias))


def test_residual_projection_shortcut():
    block = nn.Sequential(nn.Linear(4, 6, dtype=np.float64), nn.Tanh())
    shortcut = nn.Linear(4, 6, bias=False, dtype=np.float64)
    layer = nn.Residual(block, shortcut)
    x = _t(np.random.default_rng(13).standard_normal((3, 4)), requires_grad=True)
    np.testing.assert_allclose(layer(x).numpy(), block(x).numpy() + shortcut(x).numpy())
    assert gradcheck(lambda x, *params: layer(x), (x, shortcut.weight, block[0].weight))


def test_residual_inside_sequential_registers_its_modules():
    model = nn.Sequential(nn.Linear(3, 5), nn.Residual(nn.Sequential(nn.Linear(5, 5), nn.ReLU())),
                          nn.Residual(nn.Linear(5, 2), nn.Linear(5, 2, bias=False)))
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "1.block.0.weight", "1.block.0.bias", "2.block.weight",
        "2.block.bias", "2.shortcut.weight"]
    out = model(fg.ones(4, 3))
    assert out.shape == (4, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_residual_repr():
    assert repr(nn.Residual(nn.Linear(4, 4))) == (
        "Residual(\n  (block): Linear(in_features=4, out_features=4, bias=True)\n)")
    assert repr(nn.Residual(nn.Linear(4, 2), nn.Linear(4, 2, bias=False))) == (
        "Residual(\n  (block): Linear(in_features=4, out_features=2, bias=True)\n"
        "  (shortcut): Linear(in_features=4, out_features=2, bias=False)\n)")


def test_residual_shape_mismatch_names_both_shapes_and_suggests_a_projection():
    with pytest.raises(RuntimeError, match=r"block output shape \(3, 6\) differs from input "
                                           r"\(identity shortcut\) shape \(3, 4\).*"
                                           r"nn\.Linear\(4, 6, bias=False\)"):
        nn.Residual(nn.Linear(4, 6))(fg.ones(3, 4))
    with pytest.raises(RuntimeError, match=r"\(3, 6\).*shortcut output shape \(3, 5\)"):
        nn.Residual(nn.Linear(4, 6), nn.Linear(4, 5))(fg.ones(3, 4))
    with pytest.raises(RuntimeError, match=r"\(3, 1, 4\).*\(3, 4\)"):  # never broadcast
        nn.Residual(_Unsqueeze())(fg.ones(3, 4))


class _Unsqueeze(nn.Module):
    def forward(self, input):
        return input.unsqueeze(1)


def test_residual_argument_types():
    with pytest.raises(TypeError):
        nn.Residual(lambda x: x)
    with pytest.raises(TypeError):
        nn.Residual(nn.Identity(), shortcut="identity")
