"""Gradient clipping: the clip_grad_norm and clip_grad_range kernels against float64 formulas,
clip_grad_norm_ against hand computation and PyTorch, the fused arena path against the
per-tensor path, non-finite gradients, clip_grad_value_/clip_grad_range_, and properties."""
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.arena import arena_of
from fastgrad.backends import KERNELS, K
from fastgrad.nn import utils
from fastgrad.tensor import Tensor

NORM_TYPES = [1.0, 2.0, math.inf, 3.0]
SHAPES = [(4, 3), (5,), (2, 3, 2), (1,)]


def _grads(rng, dtype=np.float64, scale=1.0, shapes=SHAPES):
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in shapes]


def _loose(grads):
    """Parameters outside any arena with copies of ``grads``."""
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros(g.shape, g.dtype))
        p.grad = Tensor(g.copy())
        params.append(p)
    return params


def _packed(grads):
    """Parameters packed into one arena (by an optimiser), with copies of ``grads``."""
    params = [nn.Parameter(np.zeros(g.shape, g.dtype)) for g in grads]
    optim.SGD(params, lr=0.1)
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    return params


def _norm64(grads, norm_type):
    flat = np.concatenate([np.asarray(g, np.float64).reshape(-1) for g in grads])
    return float(np.linalg.norm(flat, ord=norm_type))


def _expected_clip(grads, max_norm, norm_type):
    """PyTorch's rule in float64: the total norm and the clipped gradients."""
    total = _norm64(grads, norm_type)
    coef = min(1.0, max_norm / (total + 1e-6))
    return total, [np.asarray(g, np.float64) * coef for g in grads]


def _tol(dtype):
    return dict(rtol=1e-6, atol=0) if np.dtype(dtype) == np.float32 else dict(rtol=1e-13, atol=0)


# --------------------------------------------------------------------- the kernels, by formula
def _dtypes_sizes(name):
    return [pytest.param(size, dtype, id=f"{size}-{np.dtype(dtype).name}")
            for size in KERNELS[name].sizes for dtype in (np.float32, np.float64)]


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("max_norm", [1.0, 1e9])
@pytest.mark.parametrize("size, dtype", _dtypes_sizes("clip_grad_norm"))
def test_reference_clip_grad_norm_formula(norm_type, max_norm, size, dtype):
    spec = KERNELS["clip_grad_norm"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    args.update(norm_type=norm_type, max_norm=max_norm)
    grads, offsets = args["grads"].copy(), args["offsets"]
    total = spec.reference(**args)
    g64 = grads.astype(np.float64)
    segments = [g64[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    per = np.array([np.linalg.norm(s, ord=norm_type) for s in segments])
    expected_total = np.linalg.norm(g64, ord=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected_total, rtol=1e-12)
    np.testing.assert_allclose(args["per_param_out"], per, rtol=1e-12)
    coef = max_norm / (expected_total + 1e-6)
    if coef >= 1:
        assert args["grads"].tobytes() == grads.tobytes(), "no clip must leave grads untouched"
    else:
        np.testing.assert_allclose(args["grads"], g64 * coef, **_tol(dtype))
        assert np.linalg.norm(args["grads"].astype(np.float64), ord=norm_type) \
            <= max_norm * (1 + 1e-6)


@pytest.mark.parametrize("error_if_nonfinite", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_reference_clip_grad_norm_nonfinite(error_if_nonfinite, bad):
    spec = KERNELS["clip_grad_norm"]
    args = spec.example(np.random.default_rng(3), np.float64, 3)
    args["grads"][5] = bad
    args["error_if_nonfinite"] = error_if_nonfinite
    before = args["grads"].copy()
    total = spec.reference(**args)
    assert math.isnan(total) if np.isnan(bad) else total == math.inf
    per = args["per_param_out"]
    assert not np.isfinite(per[0]) and np.isfinite(per[1:]).all()
    if error_if_nonfinite:
        assert args["grads"].tobytes() == before.tobytes()
    elif np.isnan(bad):
        assert np.isnan(args["grads"]).all()
    else:  # scaled by max_norm / inf = 0: inf * 0 is NaN, the rest 0, as in PyTorch
        assert np.isnan(args["grads"][5])
        np.testing.assert_array_equal(np.delete(args["grads"], 5), 0.0)


@pytest.mark.parametrize("bounds", [(-0.5, 0.25), (-np.inf, 0.1), (0.0, np.inf), (0.3, 0.3)])
@pytest.mark.parametrize("size, dtype", _dtypes_sizes("clip_grad_range"))
def test_reference_clip_grad_range_formula(bounds, size, dtype):
    spec = KERNELS["clip_grad_range"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    args["min_value"], args["max_value"] = bounds
    args["grads"][0] = np.nan
    g64 = args["grads"].astype(np.float64)
    spec.reference(**args)
    expected = np.array([v if np.isnan(v) else min(max(v, bounds[0]), bounds[1]) for v in g64])
    np.testing.assert_array_equal(args["grads"], expected.astype(dtype))


# -------------------------------------------------------------------------- hand computation
@pytest.mark.parametrize("norm_type, total", [(2.0, 13.0), (1.0, 19.0), (math.inf, 12.0),
                                              ("inf", 12.0)])
@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_clip_grad_norm_hand_computed(norm_type, total, packed):
    grads = [np.array([3.0, -4.0]), np.array([[12.0]])]
    params = (_packed if packed else _loose)(grads)
    result = utils.clip_grad_norm_(params, max_norm=6.5, norm_type=norm_type)
    assert isinstance(result, Tensor) and result.shape == () and result.dtype == np.float64
    assert result.item() == pytest.approx(total, rel=1e-15)
    coef = 6.5 / (total + 1e-6)
    np.testing.assert_allclose(params[0].grad.numpy(), [3 * coef, -4 * coef], rtol=1e-15)
    np.testing.assert_allclose(params[1].grad.numpy(), [[12 * coef]], rtol=1e-15)


def test_clip_grad_norm_returns_the_grads_dtype():
    rng = np.random.default_rng(0)
    assert utils.clip_grad_norm_(_loose(_grads(rng, np.float32)), 1.0).dtype == np.float32
    mixed = _loose(_grads(rng, np.float32)[:2] + _grads(rng, np.float64)[:1])
    assert utils.clip_grad_norm_(mixed, 1.0).dtype == np.float64
    no_grads = [nn.Parameter(np.ones(3, np.float64))]
    result = utils.clip_grad_norm_(no_grads, 1.0)
    assert result.dtype == np.float32 and result.item() == 0.0
    assert utils.clip_grad_norm_([], 1.0).item() == 0.0


def test_clip_grad_norm_accepts_a_single_tensor_and_a_generator():
    g = np.array([6.0, 8.0])
    (p,) = _loose([g])
    assert utils.clip_grad_norm_(p, 5.0).item() == pytest.approx(10.0)
    np.testing.assert_allclose(p.grad.numpy(), g * 5.0 / (10.0 + 1e-6))
    params = _loose([g])
    assert utils.clip_grad_norm_((q for q in params), 5.0).item() == pytest.approx(10.0)


# ---------------------------------------------------------------------------------- PyTorch
def _torch_params(torch, grads):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    return params


def _rel_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(actual - expected) / scale)) if actual.size else 0.0


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm, dtype, packed):
    torch = pytest.importorskip("torch")
    grads = _grads(np.random.default_rng(7), dtype, scale=2.0)
    params = (_packed if packed else _loose)(grads)
    reference = _torch_params(torch, grads)
    total = utils.clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(reference, max_norm, norm_type)
    assert total.dtype == np.dtype(dtype)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    assert _rel_error(total.numpy(), expected.numpy()) < rtol
    for p, q in zip(params, reference):
        assert _rel_error(p.grad.numpy(), q.grad.numpy()) < rtol


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_get_total_norm_and_clip_grads_with_norm_match_pytorch(norm_type):
    torch = pytest.importorskip("torch")
    grads = _grads(np.random.default_rng(8), np.float64)
    total = utils.get_total_norm([Tensor(g) for g in grads], norm_type)
    expected = torch.nn.utils.get_total_norm([torch.from_numpy(g) for g in grads], norm_type)
    assert _rel_error(total.numpy(), expected.numpy()) < 1e-13
    params, reference = _packed(grads), _torch_params(torch, grads)
    utils.clip_grads_with_norm_(params, 0.5, total)
    torch.nn.utils.clip_grads_with_norm_(reference, 0.5, expected)
    for p, q in zip(params, reference):
        assert _rel_error(p.grad.numpy(), q.grad.numpy()) < 1e-13


def test_nonfinite_gradients_propagate_like_pytorch():
    torch = pytest.importorskip("torch")
    for bad in (np.nan, np.inf):
        grads = _grads(np.random.default_rng(9), np.float64)
        grads[1][2] = bad
        params, reference = _packed(grads), _torch_params(torch, grads)
        total = utils.clip_grad_norm_(params, 1.0)
        expected = torch.nn.utils.clip_grad_norm_(reference, 1.0)
        np.testing.assert_array_equal(total.numpy(), expected.numpy())
        for p, q in zip(params, reference):
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


# ------------------------------------------------------------------------- special gradients
@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_no_clip_leaves_gradients_bit_identical(packed):
    grads = _grads(np.random.default_rng(1), np.float32)
    params = (_packed if packed else _loose)(grads)
    arrays = [p.grad.numpy() for p in params]
    total = utils.clip_grad_norm_(params, max_norm=1e6)
    assert total.item() == pytest.approx(_norm64(grads, 2.0), rel=1e-6)
    for p, array, g in zip(params, arrays, grads):
        assert p.grad.numpy() is array
        assert array.tobytes() == g.tobytes()


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_zero_gradients(packed, max_norm):
    grads = [np.zeros(shape) for shape in SHAPES]
    params = (_packed if packed else _loose)(grads)
    assert utils.clip_grad_norm_(params, max_norm).item() == 0.0
    for p in params:
        np.testing.assert_array_equal(p.grad.numpy(), 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_error_if_nonfinite_raises_naming_the_parameter_and_changes_nothing(bad, packed):
    grads = _grads(np.random.default_rng(2), np.float32, scale=10.0)
    grads[2][1, 0, 1] = bad
    grads[3][0] = bad
    params = (_packed if packed else _loose)(grads)
    with pytest.raises(RuntimeError, match=r"parameters\[2\] of shape \(2, 3, 2\)"):
        utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    for p, g in zip(params, grads):
        assert p.grad.numpy().tobytes() == g.tobytes()


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_nonfinite_without_error_makes_gradients_nan(packed):
    grads = _grads(np.random.default_rng(2), np.float64)
    grads[0][1, 1] = np.nan
    params = (_packed if packed else _loose)(grads)
    assert math.isnan(utils.clip_grad_norm_(params, 1.0).item())
    for p in params:
        assert np.isnan(p.grad.numpy()).all()


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_parameters_without_gradients_are_ignored(packed):
    grads = _grads(np.random.default_rng(4), np.float64, scale=3.0)
    params = (_packed if packed else _loose)(grads)
    params[1].grad = None
    kept = [grads[0], grads[2], grads[3]]
    total, clipped = _expected_clip(kept, 1.0, 2.0)
    assert utils.clip_grad_norm_(params, 1.0).item() == pytest.approx(total, rel=1e-14)
    assert params[1].grad is None
    for p, expected in zip([params[0], params[2], params[3]], clipped):
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-14)
    if packed:
        assert arena_of(params[0]).clip_norms(2.0)[1] == 0.0


def test_noncontiguous_loose_gradient_is_clipped_in_place():
    g = np.arange(1.0, 13.0).reshape(3, 4)
    p = nn.Parameter(np.zeros((4, 3)))
    p.grad = Tensor(g.copy().T)  # a transposed view: not C-contiguous
    array = p.grad.numpy()
    total = utils.clip_grad_norm_([p], 1.0)
    assert total.item() == pytest.approx(np.linalg.norm(g))
    assert p.grad.numpy() is array
    np.testing.assert_allclose(array, g.T / (np.linalg.norm(g) + 1e-6), rtol=1e-14)


# ---------------------------------------------------------------- the fused arena path itself
def _model_with_grads(seed=0, dtype=None):
    fg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16, dtype=dtype), nn.Tanh(), nn.Linear(16, 3, dtype=dtype))
    x = fg.randn(32, 6).to(model[0].weight.dtype)
    nn.MSELoss()(model(x), fg.zeros(32, 3).to(x.dtype) + 3.0).backward()
    return model


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_fused_arena_path_equals_per_tensor_path(monkeypatch, norm_type):
    model = _model_with_grads()
    params = list(model.parameters())
    optim.SGD(params, lr=0.1)
    grads = [p.grad.numpy().copy() for p in params]
    loose = _loose(grads)
    calls = []
    kernel = K.clip_grad_norm
    monkeypatch.setattr(K, "clip_grad_norm", lambda *a: calls.append(a[0].size) or kernel(*a))
    total = utils.clip_grad_norm_(params, 0.05, norm_type)
    arena = arena_of(params[0])
    assert calls == [len(arena)], "the arena path is one kernel call over the whole arena"
    per_tensor = utils.clip_grad_norm_(loose, 0.05, norm_type)
    np.testing.assert_allclose(total.numpy(), per_tensor.numpy(), rtol=1e-6)
    for p, q in zip(params, loose):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-6, atol=1e-12)
    # the per-parameter norms before clipping are kept on the arena for diagnostics
    norms = arena.clip_norms(norm_type)
    assert norms is not None
    np.testing.assert_allclose(norms,
                               [np.linalg.norm(g.reshape(-1).astype(np.float64), ord=norm_type)
                                for g in grads], rtol=1e-12)


def test_arenas_of_several_groups_and_dtypes_clip_together():
    rng = np.random.default_rng(5)
    grads32, grads64 = _grads(rng, np.float32, 2.0)[:2], _grads(rng, np.float64, 2.0)[2:]
    params = [nn.Parameter(np.zeros(g.shape, g.dtype)) for g in grads32 + grads64]
    optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
    arenas = {id(arena_of(p)) for p in params}
    assert len(arenas) == 3  # group 0; group 1 float32; group 1 float64
    for p, g in zip(params, grads32 + grads64):
        p.grad = Tensor(g.copy())
    total = utils.clip_grad_norm_(params, 1.0)
    expected_total, clipped = _expected_clip(grads32 + grads64, 1.0, 2.0)
    assert total.dtype == np.float64
    assert total.item() == pytest.approx(expected_total, rel=1e-7)
    for p, expected in zip(params, clipped):
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-6)
        assert arena_of(p).clip_norms(2.0) is not None


def test_part_of_an_arena_takes_the_per_tensor_path():
    model = _model_with_grads(1)
    params = list(model.parameters())
    optim.SGD(params, lr=0.1)
    arena = arena_of(params[0])
    before = [p.grad.numpy().copy() for p in params]
    utils.clip_grad_norm_(params[:2], 1e-3)
    assert arena.clip_norms(2.0) is None
    _, clipped = _expected_clip(before[:2], 1e-3, 2.0)
    for p, expected in zip(params[:2], clipped):
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-6)
    for p, g in zip(params[2:], before[2:]):
        assert p.grad.numpy().tobytes() == g.tobytes()


def test_a_repeated_parameter_counts_twice_like_pytorch():
    torch = pytest.importorskip("torch")
    g = np.array([3.0, 4.0])
    (p,) = _packed([g])
    (q,) = _torch_params(torch, [g])
    total = utils.clip_grad_norm_([p, p], 1.0)
    expected = torch.nn.utils.clip_grad_norm_([q, q], 1.0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-14)
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-14)


# -------------------------------------------------------------------------------- properties
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipped_norm_is_bounded_and_clipping_twice_equals_once(seed, norm_type, dtype):
    rng = np.random.default_rng(seed)
    grads = _grads(rng, dtype, scale=float(rng.uniform(0.1, 10.0)))
    max_norm = float(rng.uniform(1.0, 5.0))
    params = _packed(grads) if seed % 2 else _loose(grads)
    utils.clip_grad_norm_(params, max_norm, norm_type)
    once = [p.grad.numpy().copy() for p in params]
    assert _norm64(once, norm_type) <= max_norm * (1 + 1e-6)
    utils.clip_grad_norm_(params, max_norm, norm_type)
    # PyTorch's coefficient max_norm / (norm + 1e-6) is 1 - O(1e-6 / max_norm) on clipped
    # gradients, so a second clip may shrink them by that much more, never further
    for p, g in zip(params, once):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=2e-6 / max_norm + 1e-6)


# ------------------------------------------------------------------------ clip by value/range
@pytest.mark.parametrize("packed", [False, True], ids=["loose", "arena"])
def test_clip_grad_value_and_range_hand_computed(packed):
    grads = [np.array([-3.0, -0.2, 0.0, 0.4, 2.0]), np.array([[np.nan, 0.7]])]
    params = (_packed if packed else _loose)(grads)
    assert utils.clip_grad_value_(params, 0.5) is None
    np.testing.assert_array_equal(params[0].grad.numpy(), [-0.5, -0.2, 0.0, 0.4, 0.5])
    np.testing.assert_array_equal(params[1].grad.numpy(), [[np.nan, 0.5]])
    utils.clip_grad_range_(params, -0.1, 0.45)
    np.testing.assert_array_equal(params[0].grad.numpy(), [-0.1, -0.1, 0.0, 0.4, 0.45])
    utils.clip_grad_range_(params, 0.0, math.inf)
    np.testing.assert_array_equal(params[0].grad.numpy(), [0.0, 0.0, 0.0, 0.4, 0.45])


def test_clip_grad_range_runs_once_per_covered_arena(monkeypatch):
    params = _packed(_grads(np.random.default_rng(6), np.float32))
    params.append(_loose([np.ones(3, np.float32)])[0])
    params.append(nn.Parameter(np.ones(2, np.float32)))  # no gradient: ignored
    sizes = []
    kernel = K.clip_grad_range
    monkeypatch.setattr(K, "clip_grad_range", lambda g, lo, hi: sizes.append(g.size)
                        or kernel(g, lo, hi))
    utils.clip_grad_range_(params, -0.3, 0.3)
    assert sorted(sizes) == [3, len(arena_of(params[0]))]
    for p in params[:-1]:
        assert np.abs(p.grad.numpy()).max() <= np.float32(0.3)
    assert params[-1].grad is None


def test_clip_grad_value_matches_pytorch():
    torch = pytest.importorskip("torch")
    grads = _grads(np.random.default_rng(10), np.float32, scale=2.0)
    params, reference = _packed(grads), _torch_params(torch, grads)
    utils.clip_grad_value_(params, 0.75)
    torch.nn.utils.clip_grad_value_(reference, 0.75)
    for p, q in zip(params, reference):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


# -------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call, error, match", [
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, norm_type=0), ValueError, "norm_type"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, norm_type=-2), ValueError, "norm_type"),
    (lambda ps: utils.clip_grad_norm_(ps, -1.0), ValueError, "max_norm"),
    (lambda ps: utils.clip_grad_norm_(ps, math.nan), ValueError, "max_norm"),
    (lambda ps: utils.clip_grad_norm_(ps, "1"), TypeError, "max_norm"),
    (lambda ps: utils.clip_grad_norm_(3, 1.0), TypeError, "parameters"),
    (lambda ps: utils.clip_grad_norm_(ps + [np.ones(2)], 1.0), TypeError, r"parameters\[4\]"),
    (lambda ps: utils.clip_grad_value_(ps, -0.1), ValueError, "clip_value"),
    (lambda ps: utils.clip_grad_range_(ps, 1.0, -1.0), ValueError, "min_value"),
    (lambda ps: utils.clip_grad_range_(ps, math.nan, 1.0), ValueError, "min_value"),
    (lambda ps: utils.get_total_norm([Tensor(np.ones(2))], norm_type=0.0), ValueError,
     "norm_type"),
])
def test_bad_arguments_raise_before_anything_changes(call, error, match):
    grads = _grads(np.random.default_rng(11), np.float64, scale=5.0)
    params = _packed(grads)
    with pytest.raises(error, match=match):
        call(params)
    for p, g in zip(params, grads):
        assert p.grad.numpy().tobytes() == g.tobytes()


def test_get_total_norm_error_if_nonfinite_names_the_tensor():
    tensors = [Tensor(np.ones(2)), Tensor(np.array([1.0, np.inf]))]
    assert utils.get_total_norm(tensors).item() == math.inf
    with pytest.raises(RuntimeError, match=r"tensors\[1\] of shape \(2,\)"):
        utils.get_total_norm(tensors, error_if_nonfinite=True)
