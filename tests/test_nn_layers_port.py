"""The nn surface a PyTorch script reaches for: ``inplace=`` activations and dropout, ReLU6,
Hardtanh, SiLU, Mish, the softmax modules, Unflatten, class/element ``weight=`` on the losses,
SmoothL1Loss, KLDivLoss, cosine similarity, Embedding and LayerNorm.

NumPy references and float64 gradchecks always; values and every gradient against PyTorch
with the same weights where it is installed (those tests skip without it).
"""
import collections
import math
import warnings

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck

REDUCTIONS = ("mean", "sum", "none")
FLOATS = (np.float32, np.float64)


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _tol(dtype):
    if dtype == np.float32:
        return {"rtol": 2e-5, "atol": 1e-6}
    return {"rtol": 1e-11, "atol": 1e-13}


def _log_softmax(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _compare(torch, ours_fn, theirs_fn, arrays, grads, dtype, seed=7):
    """Run ``ours_fn`` on fastgrad tensors and ``theirs_fn`` on torch tensors built from the
    same ``arrays``; compare the outputs and the gradients of the ``grads`` positions for one
    random output gradient."""
    arrays = [np.asarray(a).astype(dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
              for a in arrays]
    ours = [_t(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    out_o, out_t = ours_fn(*ours), theirs_fn(*theirs)
    assert out_o.shape == tuple(out_t.shape) and out_o.dtype == dtype
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), **_tol(dtype))
    if grads:
        seed = np.random.default_rng(seed).standard_normal(out_o.shape).astype(dtype)
        out_o.backward(_t(seed))
        out_t.backward(torch.from_numpy(seed))
        for i in grads:
            np.testing.assert_allclose(ours[i].grad.numpy(), theirs[i].grad.numpy(),
                                       **_tol(dtype), err_msg=f"gradient of input {i}")


# ---------------------------------------------------------------------------------- inplace
INPLACE = {
    "relu": (lambda x, i: F.relu(x, inplace=i), lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x, i: F.leaky_relu(x, 0.2, inplace=i),
                   lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x, i: F.elu(x, 0.5, inplace=i),
            lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    "hardtanh": (lambda x, i: F.hardtanh(x, -0.5, 0.7, inplace=i),
                 lambda x: np.clip(x, -0.5, 0.7)),
    "relu6": (lambda x, i: F.relu6(x, inplace=i), lambda x: np.clip(x, 0, 6)),
    "silu": (lambda x, i: F.silu(x, inplace=i), lambda x: x / (1 + np.exp(-x))),
    "mish": (lambda x, i: F.mish(x, inplace=i),
             lambda x: x * np.tanh(np.log1p(np.exp(x)))),
}


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_outside_a_graph_overwrites_and_returns_the_input(name, rng):
    fn, reference = INPLACE[name]
    values = rng.standard_normal((3, 4)) * 3
    x = _t(values)
    out = fn(x, True)
    assert out is x
    np.testing.assert_allclose(x.numpy(), reference(values), rtol=1e-12)
    leaf = _t(values, requires_grad=True)
    with fg.no_grad():
        assert fn(leaf, True) is leaf  # PyTorch allows it under no_grad too
    np.testing.assert_allclose(leaf.numpy(), reference(values), rtol=1e-12)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_inside_a_graph_gives_the_out_of_place_values_and_gradients(name, rng):
    fn, reference = INPLACE[name]
    values = rng.standard_normal((3, 4)) * 3
    results = []
    for inplace in (False, True):
        w = _t(values, requires_grad=True)
        hidden = w * 1.0
        out = fn(hidden, inplace)
        assert out is not hidden and out.grad_fn is not None
        np.testing.assert_array_equal(hidden.numpy(), values)  # left as it was
        (out * out).sum().backward()
        results.append((out.numpy(), w.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[1][0], reference(values), rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda x: F.relu(x, inplace=True), lambda x: F.relu_(x),
    lambda x: F.leaky_relu(x, inplace=True), lambda x: F.elu_(x),
    lambda x: F.hardtanh_(x), lambda x: F.silu(x, inplace=True),
    lambda x: F.dropout(x, 0.5, training=False, inplace=True),
    lambda x: nn.ReLU(inplace=True)(x), lambda x: nn.Dropout(inplace=True)(x),
])
def test_inplace_on_a_leaf_that_requires_grad_is_pytorchs_error(call):
    x = _t(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        call(x)
    np.testing.assert_array_equal(x.numpy(), np.ones(3))


def test_dropout_inplace():
    values = np.ones((50, 20), np.float32)
    fg.manual_seed(3)
    expected = F.dropout(_t(values), 0.3).numpy()
    fg.manual_seed(3)
    x = _t(values)
    assert F.dropout(x, 0.3, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), expected)
    layer = nn.Dropout(0.3, inplace=True).eval()
    assert layer(x) is x
    w = _t(values, requires_grad=True)
    fg.manual_seed(3)
    out = nn.Dropout(0.3, inplace=True)(w * 1.0)
    out.sum().backward()
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(w.grad.numpy(), expected)  # the mask times the scale


def test_inplace_block_matches_pytorch(rng):
    """A ResNet-style block with ``ReLU(inplace=True)`` (and inplace dropout): outputs and
    every gradient as PyTorch's with the same weights."""
    torch = pytest.importorskip("torch")

    def block(nn_module):
        class Block(nn_module.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn_module.Linear(6, 6), nn_module.Linear(6, 6)
                self.relu = nn_module.ReLU(inplace=True)
                self.act = nn_module.LeakyReLU(0.1, inplace=True)
                self.drop = nn_module.Dropout(0.5, inplace=True)

            def forward(self, x):
                out = self.relu(self.fc1(x))
                out = self.drop(self.act(self.fc2(out)))
                return self.relu(out + x)
        return Block().eval()

    theirs, ours = block(torch.nn), block(nn)
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((4, 6)).astype(np.float32)
    _compare(torch, ours, theirs, [x], [0], np.float32)
    for name, param in ours.named_parameters():
        assert param.grad is not None, name


def test_activation_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    pairs = [(nn.ReLU(), torch.nn.ReLU()), (nn.ReLU(True), torch.nn.ReLU(True)),
             (nn.LeakyReLU(0.1, True), torch.nn.LeakyReLU(0.1, True)),
             (nn.ELU(inplace=True), torch.nn.ELU(inplace=True)),
             (nn.Hardtanh(), torch.nn.Hardtanh()),
             (nn.Hardtanh(-2.0, 3.0, True), torch.nn.Hardtanh(-2.0, 3.0, True)),
             (nn.ReLU6(), torch.nn.ReLU6()), (nn.ReLU6(True), torch.nn.ReLU6(True)),
             (nn.SiLU(), torch.nn.SiLU()), (nn.Mish(True), torch.nn.Mish(True)),
             (nn.Dropout(0.2), torch.nn.Dropout(0.2)),
             (nn.Dropout(inplace=True), torch.nn.Dropout(inplace=True)),
             (nn.Softmax(1), torch.nn.Softmax(1)), (nn.LogSoftmax(), torch.nn.LogSoftmax()),
             (nn.Softmax2d(), torch.nn.Softmax2d()),
             (nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3))),
             (nn.CosineSimilarity(), torch.nn.CosineSimilarity())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


# ------------------------------------------------------------------------------ activations
ACTIVATIONS = {
    "hardtanh": (lambda x: F.hardtanh(x, -0.7, 1.2), lambda tf, x: tf.hardtanh(x, -0.7, 1.2)),
    "relu6": (F.relu6, lambda tf, x: tf.relu6(x)),
    "silu": (F.silu, lambda tf, x: tf.silu(x)),
    "mish": (F.mish, lambda tf, x: tf.mish(x)),
    "ReLU6-module": (nn.ReLU6(), lambda tf, x: tf.relu6(x)),
    "SiLU-module": (nn.SiLU(), lambda tf, x: tf.silu(x)),
    "Mish-module": (nn.Mish(), lambda tf, x: tf.mish(x)),
}


def _activation_inputs(rng):
    # the bounds themselves (PyTorch's gradient is 0 there) and large magnitudes
    return np.concatenate([rng.standard_normal(40) * 4, [-0.7, 1.2, 0.0, 6.0, -1.0, 1.0, 30.0,
                                                         -30.0, 90.0, -90.0]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_match_pytorch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = ACTIVATIONS[name]
    _compare(torch, ours, lambda x: theirs(torch.nn.functional, x), [_activation_inputs(rng)],
             [0], dtype)


@pytest.mark.parametrize("name", ["hardtanh", "relu6", "silu", "mish"])
def test_gradcheck_activations(name, rng):
    fn = ACTIVATIONS[name][0]
    x = rng.standard_normal(12) * 3
    x = x[np.abs(np.abs(x) - 0.7) > 1e-3]  # away from the kinks
    assert gradcheck(fn, (_t(x, requires_grad=True),))


def test_hardtanh_gradient_is_zero_at_the_bounds_and_activations_are_finite():
    x = _t([-1.0, -0.5, 1.0, 2.0], requires_grad=True)
    F.hardtanh(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0, 0])
    big = _t(np.array([-1e4, -100, 100, 1e4], np.float32), requires_grad=True)
    for fn in (F.silu, F.mish):
        big.grad = None
        out = fn(big)
        out.sum().backward()
        assert np.isfinite(out.numpy()).all() and np.isfinite(big.grad.numpy()).all()
        np.testing.assert_allclose(out.numpy(), [0, 0, 100, 1e4], atol=1e-30, rtol=1e-6)


def test_hardtanh_module_checks_its_bounds():
    with pytest.raises(ValueError, match=r"max_val \(1.0\) must be greater than min_val"):
        nn.Hardtanh(1.0, 1.0)
    with pytest.warns(FutureWarning, match="min_value"):
        assert nn.Hardtanh(min_value=-2.0).min_val == -2.0


# ---------------------------------------------------------------------------------- softmax
def test_softmax_dim_none_is_pytorchs_implicit_choice_with_its_warning(rng):
    for shape, dim in (((4,), 0), ((2, 3), 1), ((2, 3, 4), 0), ((2, 3, 4, 5), 1)):
        values = rng.standard_normal(shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            out = F.softmax(_t(values))
        np.testing.assert_allclose(out.numpy(), np.exp(_log_softmax(values, dim)), rtol=1e-12)
        with pytest.warns(UserWarning, match="log_softmax"):
            out = nn.LogSoftmax()(_t(values))
        np.testing.assert_allclose(out.numpy(), _log_softmax(values, dim), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.softmax(_t(values), -1)


def test_softmax_dtype_and_modules(rng):
    values = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    out = F.softmax(_t(values), 1, dtype=fg.float64)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), np.exp(_log_softmax(values.astype(np.float64), 1)),
                               rtol=1e-12)
    assert F.log_softmax(_t(values), -1, dtype=fg.float64).dtype == np.float64
    np.testing.assert_array_equal(nn.Softmax2d()(_t(values)).numpy(),
                                  F.softmax(_t(values), -3).numpy())
    np.testing.assert_array_equal(nn.Softmax(dim=2)(_t(values)).numpy(),
                                  F.softmax(_t(values), 2).numpy())
    with pytest.raises(ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(_t(values[0, 0]))
    with pytest.raises(TypeError, match="floating dtype"):
        F.softmax(_t(values), 1, dtype=fg.int64)


def test_softmax_modules_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4)) * 5
    for ours, theirs in ((nn.Softmax(-1), torch.nn.Softmax(-1)),
                         (nn.LogSoftmax(1), torch.nn.LogSoftmax(1)),
                         (nn.Softmax2d(), torch.nn.Softmax2d())):
        _compare(torch, ours, theirs, [x], [0], np.float64)


# -------------------------------------------------------------------------------- Unflatten
def test_unflatten(rng):
    values = rng.standard_normal((2, 12, 3))
    x = _t(values, requires_grad=True)
    out = nn.Unflatten(1, (3, -1))(x)
    np.testing.assert_array_equal(out.numpy(), values.reshape(2, 3, 4, 3))
    assert nn.Unflatten(-1, [1, 3])(x).shape == (2, 12, 1, 3)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(values))
    with pytest.raises(RuntimeError, match=r"Provided sizes \[5, 2\] don't multiply up to the "
                                           r"size of dim 1 \(12\)"):
        nn.Unflatten(1, (5, 2))(x)
    with pytest.raises(RuntimeError, match="don't multiply up"):
        nn.Unflatten(1, (5, -1))(x)
    with pytest.raises(TypeError, match="must be a tuple of ints, but found type int"):
        nn.Unflatten(1, 3)
    with pytest.raises(TypeError, match="found element of type float at pos 1"):
        nn.Unflatten(1, (3, 4.0))


# ------------------------------------------------------------------------- weighted losses
def test_weighted_nll_by_hand():
    logp = _log_softmax(np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [0.3, 0.2, 0.1],
                                  [2.0, 0.0, 1.0]]))
    target, weight = np.array([1, 2, -100, 1]), np.array([0.5, 2.0, 3.0])
    picked = -logp[[0, 1, 3], [1, 2, 1]] * weight[[1, 2, 1]]
    loss = F.nll_loss(_t(logp), _t(target), _t(weight))
    assert loss.item() == pytest.approx(picked.sum() / weight[[1, 2, 1]].sum(), rel=1e-12)
    none = F.nll_loss(_t(logp), _t(target), weight=_t(weight), reduction="none")
    np.testing.assert_allclose(none.numpy(), [picked[0], picked[1], 0, picked[2]], rtol=1e-12)
    eps, kept = 0.2, [0, 1, 3]
    smooth = -(logp[kept] * weight).sum(1) * eps / 3
    expected = ((1 - eps) * picked.sum() + smooth.sum()) / weight[[1, 2, 1]].sum()
    ce = F.cross_entropy(_t(logp), _t(target), _t(weight), label_smoothing=eps)
    assert ce.item() == pytest.approx(expected, rel=1e-12)  # log_softmax of log-probs: same
    assert math.isnan(F.nll_loss(_t(logp), _t(np.full(4, -100)), _t(weight)).item())


def _class_cases(rng):
    """name -> (arguments, kwargs): the class-weighted losses over every input rank."""
    weight = rng.uniform(0.2, 3.0, 4)
    labels2 = rng.integers(0, 4, 6)
    labels2[1] = -100
    labels3 = rng.integers(0, 4, (3, 5))
    labels3[0, 2] = 2
    soft = rng.dirichlet(np.ones(4), 6)
    return {
        "2d": ((rng.standard_normal((6, 4)) * 2, labels2, weight), {}),
        "2d-ignore-2": ((rng.standard_normal((6, 4)) * 2, np.where(labels2 < 0, 2, labels2),
                         weight), {"ignore_index": 2}),
        "3d": ((rng.standard_normal((3, 4, 5)), labels3, weight), {}),
        "unbatched": ((rng.standard_normal(4), np.array(3), weight), {}),
        "2d-smoothing": ((rng.standard_normal((6, 4)) * 2, labels2, weight),
                         {"label_smoothing": 0.15}),
        "3d-smoothing": ((rng.standard_normal((3, 4, 5)), labels3, weight),
                         {"label_smoothing": 0.3}),
        "soft": ((rng.standard_normal((6, 4)), soft, weight), {}),
        "soft-smoothing": ((rng.standard_normal((6, 4)), soft, weight),
                           {"label_smoothing": 0.1}),
    }


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["2d", "2d-ignore-2", "3d", "unbatched", "2d-smoothing",
                                  "3d-smoothing", "soft", "soft-smoothing"])
def test_weighted_cross_entropy_and_nll_match_pytorch(case, reduction, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    (logits, target, weight), kwargs = _class_cases(rng)[case]
    soft = target.dtype.kind == "f"
    for dtype in FLOATS:
        grads = [0, 1] if soft else [0]
        _compare(torch, lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction, **kwargs),
                 lambda x, t, w: tf.cross_entropy(x, t, w, reduction=reduction, **kwargs),
                 [logits, target, weight], grads, dtype)
        if not soft and "label_smoothing" not in kwargs:
            logp = _log_softmax(logits, 0 if logits.ndim == 1 else 1)
            _compare(torch, lambda x, t, w: F.nll_loss(x, t, w, reduction=reduction, **kwargs),
                     lambda x, t, w: tf.nll_loss(x, t, w, reduction=reduction, **kwargs),
                     [logp, target, weight], [0], dtype)
            module = nn.NLLLoss(_t(weight.astype(dtype)), reduction=reduction, **kwargs)
            np.testing.assert_array_equal(
                module(_t(logp.astype(dtype)), _t(target)).numpy(),
                F.nll_loss(_t(logp.astype(dtype)), _t(target), _t(weight.astype(dtype)),
                           reduction=reduction, **kwargs).numpy())


def test_gradcheck_weighted_class_losses(rng):
    for name, ((logits, target, weight), kwargs) in _class_cases(rng).items():
        t, w = _t(target), _t(weight)
        for r in REDUCTIONS:
            assert gradcheck(lambda x, t=t, w=w, r=r, k=kwargs: F.cross_entropy(
                x, t, w, reduction=r, **k), (_t(logits, requires_grad=True),)), name
            if target.dtype.kind != "f":
                assert gradcheck(lambda x, t=t, w=w, r=r: F.nll_loss(x, t, w, reduction=r),
                                 (_t(logits, requires_grad=True),)), name


def test_weighted_losses_modules_keep_weight_as_a_buffer():
    weight = fg.tensor([1.0, 2.0, 3.0])
    loss = nn.CrossEntropyLoss(weight, ignore_index=0, label_smoothing=0.1)
    assert loss.weight is weight and list(loss.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    x, t = fg.randn(4, 3), fg.tensor([0, 1, 2, 2])
    np.testing.assert_array_equal(loss(x, t).numpy(), F.cross_entropy(
        x, t, weight, ignore_index=0, label_smoothing=0.1).numpy())
    assert list(nn.BCEWithLogitsLoss(fg.ones(3), pos_weight=fg.ones(3)).state_dict()) == [
        "weight", "pos_weight"]
    assert list(nn.BCELoss(fg.ones(3)).state_dict()) == ["weight"]
    assert repr(nn.CrossEntropyLoss(weight)) == "CrossEntropyLoss()"


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.cross_entropy(fg.zeros(2, 3), fg.tensor([0, 1]), fg.ones(4)), RuntimeError,
     (r"weight tensor should be defined either for all 3 classes or no classes but got weight "
      r"tensor of shape: \[4\]")),
    (lambda: F.nll_loss(fg.zeros(2, 3), fg.tensor([0, 1]), fg.ones(3, dtype=fg.float64)),
     RuntimeError, "weight must have input's dtype float32, got float64"),
    (lambda: F.cross_entropy(fg.zeros(2, 3), fg.tensor([0, 1]), np.ones(3)), TypeError,
     "weight must be a Tensor"),
    (lambda: F.binary_cross_entropy(fg.zeros(2, 3), fg.zeros(2, 3), fg.ones(2)), RuntimeError,
     r"weight of shape \(2,\) does not broadcast to input shape \(2, 3\)"),
    (lambda: F.binary_cross_entropy_with_logits(fg.zeros(3), fg.zeros(3), fg.ones(2, 3)),
     RuntimeError, "does not broadcast"),
    (lambda: F.mse_loss(fg.zeros(2, 3), fg.zeros(2, 3), weight=fg.ones(3)), ValueError,
     "Weights and input must have the same size"),
    (lambda: nn.NLLLoss(reduction="avg"), ValueError, "reduction must be one of"),
], ids=["class-count", "dtype", "array", "bce-broadcast", "bce-logits-broadcast", "mse-shape",
        "module-reduction"])
def test_weight_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# each written once for both libraries (the same signatures): f is fastgrad's or PyTorch's
# functional module, p a (3,) pos_weight tensor of that library
ELEMENT_CASES = {
    "bce": (lambda f, x, t, w, r, p: f.binary_cross_entropy(x, t, w, reduction=r), (0, 1)),
    "bce-logits": (lambda f, x, t, w, r, p: f.binary_cross_entropy_with_logits(
        x, t, w, reduction=r), (0, 1)),
    "bce-logits-pos-weight": (lambda f, x, t, w, r, p: f.binary_cross_entropy_with_logits(
        x, t, w, reduction=r, pos_weight=p), (0, 1)),
    "mse": (lambda f, x, t, w, r, p: f.mse_loss(x, t, reduction=r, weight=w), (0, 1, 2)),
    "l1": (lambda f, x, t, w, r, p: f.l1_loss(x, t, reduction=r, weight=w), (0, 1, 2)),
    "huber": (lambda f, x, t, w, r, p: f.huber_loss(x, t, r, 0.5, w), (0, 1, 2)),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ELEMENT_CASES)
def test_element_weights_match_pytorch(name, reduction, rng):
    torch = pytest.importorskip("torch")
    fn, grads = ELEMENT_CASES[name]
    binary = name.startswith("bce")
    x = rng.uniform(0.05, 0.95, (5, 3)) if name == "bce" else rng.standard_normal((5, 3))
    t = rng.uniform(0, 1, (5, 3))
    w = rng.uniform(0.1, 2, 3 if binary else (5, 3))  # broadcast weights for the BCEs
    p = np.array([2.0, 0.5, 1.0])
    for dtype in FLOATS:
        ours_p, theirs_p = _t(p.astype(dtype)), torch.from_numpy(p.astype(dtype))
        _compare(torch, lambda *a, q=ours_p: fn(F, *a, reduction, q),
                 lambda *a, q=theirs_p: fn(torch.nn.functional, *a, reduction, q),
                 [x, t, w], grads, dtype)


def test_bce_weight_by_hand():
    x, t, w = np.array([[0.2, 0.7]]), np.array([[0.0, 1.0]]), np.array([3.0, 0.5])
    loss = F.binary_cross_entropy(_t(x), _t(t), _t(w), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [[-3 * math.log(0.8), -0.5 * math.log(0.7)]],
                               rtol=1e-12)
    mse = F.mse_loss(_t(x), _t(t), weight=_t(np.array([[1.0, 3.0]])))
    assert mse.item() == pytest.approx((0.04 + 3 * 0.09) / 4, rel=1e-12)


def test_legacy_size_average_and_reduce(rng):
    x, y = _t(rng.standard_normal(5)), _t(rng.standard_normal(5))
    for size_average, reduce, reduction in ((None, None, "mean"), (False, None, "sum"),
                                            (True, False, "none"), (None, False, "none"),
                                            (False, True, "sum"), (True, True, "mean")):
        context = warnings.catch_warnings() if size_average is None and reduce is None \
            else pytest.warns(UserWarning, match=f"please use reduction='{reduction}'")
        with context:
            legacy = F.mse_loss(x, y, size_average, reduce, reduction="sum")
            module = nn.L1Loss(size_average, reduce, "sum")
        if size_average is None and reduce is None:
            reduction = "sum"
        np.testing.assert_array_equal(legacy.numpy(), F.mse_loss(x, y, reduction=reduction)
                                      .numpy())
        assert module.reduction == reduction


# -------------------------------------------------------------------- smooth L1 and KL div
@pytest.mark.parametrize("beta", [1.0, 0.4, 0.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_loss(beta, reduction, rng):
    x, y = rng.standard_normal(20) * 2, rng.standard_normal(20)
    d = np.abs(x - y)
    per = np.where(d < beta, 0.5 * d * d / beta if beta else 0, d - 0.5 * beta)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    out = F.smooth_l1_loss(_t(x), _t(y), reduction=reduction, beta=beta)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(nn.SmoothL1Loss(reduction=reduction, beta=beta)(
        _t(x), _t(y)).numpy(), out.numpy())
    assert gradcheck(lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                     (_t(x, requires_grad=True), _t(y, requires_grad=True)))
    torch = pytest.importorskip("torch")
    for dtype in FLOATS:
        _compare(torch, lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                 lambda a, b: torch.nn.functional.smooth_l1_loss(a, b, reduction=reduction,
                                                                 beta=beta),
                 [x, y], [0, 1], dtype)


def test_smooth_l1_negative_beta_is_pytorchs_error():
    with pytest.raises(RuntimeError, match="does not support negative values for beta"):
        F.smooth_l1_loss(fg.zeros(2), fg.zeros(2), beta=-1.0)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        nn.SmoothL1Loss(beta=-0.5)


def _kl_arrays(rng, log_target):
    x = _log_softmax(rng.standard_normal((4, 5)))
    t = rng.dirichlet(np.ones(5), 4)
    return x, (np.log(t) if log_target else t)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS + ("batchmean",))
def test_kl_div(reduction, log_target, rng):
    x, t = _kl_arrays(rng, log_target)
    p = np.exp(t) if log_target else t
    per = p * (np.log(p) - x)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per,
                "batchmean": per.sum() / 4}[reduction]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "mean"'s warning, checked below
        out = F.kl_div(_t(x), _t(t), reduction=reduction, log_target=log_target)
        module = nn.KLDivLoss(reduction=reduction, log_target=log_target)
        np.testing.assert_array_equal(module(_t(x), _t(t)).numpy(), out.numpy())
        assert gradcheck(lambda a, b: F.kl_div(a, b, reduction=reduction,
                                               log_target=log_target),
                         (_t(x, requires_grad=True), _t(t, requires_grad=True)))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    torch = pytest.importorskip("torch")
    for dtype in FLOATS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _compare(torch, lambda a, b: F.kl_div(a, b, reduction=reduction,
                                                  log_target=log_target),
                     lambda a, b: torch.nn.functional.kl_div(a, b, reduction=reduction,
                                                             log_target=log_target),
                     [x, t], [0, 1], dtype)


def test_kl_div_zero_target_and_warnings():
    x = _t(np.log([0.5, 0.25, 0.25]), requires_grad=True)
    t = _t([0.0, 0.5, 0.5], requires_grad=True)
    loss = F.kl_div(x, t, reduction="sum")
    assert loss.item() == pytest.approx(0.5 * math.log(0.5 / 0.25) * 2, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, -0.5, -0.5])
    assert np.isnan(t.grad.numpy()[0])  # PyTorch's xlogy gradient at a zero target
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, t)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.kl_div(x, t, reduction="avg")


# ------------------------------------------------------------------------ cosine similarity
def test_cosine_similarity(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    expected = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    out = F.cosine_similarity(_t(a), _t(b))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(nn.CosineSimilarity(dim=1)(_t(a), _t(b)).numpy(),
                                  out.numpy())
    zero = np.zeros((2, 3))
    np.testing.assert_array_equal(F.cosine_similarity(_t(zero), _t(a[:2])).numpy(), [0, 0])
    assert gradcheck(lambda x, y: F.cosine_similarity(x, y, dim=0),
                     (_t(np.ascontiguousarray(a.T), requires_grad=True),
                      _t(np.ascontiguousarray(b.T), requires_grad=True)))
    with pytest.raises(RuntimeError, match="do not broadcast"):
        F.cosine_similarity(_t(a), _t(a[:, :2]))


def test_cosine_similarity_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    a, b = rng.standard_normal((5, 4, 3)), rng.standard_normal((4, 1))
    a[0, 0] = 0  # a zero vector: its norm's gradient is 0, the eps clamp a constant
    a[1, 0] = 1e-10
    for dtype in FLOATS:
        for dim in (1, -1):
            _compare(torch, lambda x, y, d=dim: F.cosine_similarity(x, y, d, 1e-8),
                     lambda x, y, d=dim: torch.nn.functional.cosine_similarity(x, y, d, 1e-8),
                     [a, b], [0, 1], dtype)


# -------------------------------------------------------------------------------- Embedding
def _scatter_reference(indices, grad, rows, padding_idx=None, scale=False):
    expected = np.zeros((rows, grad.shape[-1]))
    flat = indices.reshape(-1)
    values = grad.reshape(flat.size, -1)
    if scale:
        values = values / np.bincount(flat, minlength=rows)[flat][:, None]
    np.add.at(expected, flat, values)
    if padding_idx is not None:
        expected[padding_idx] = 0
    return expected


@pytest.mark.parametrize("padding_idx, scale", [(None, False), (2, False), (-1, True)])
def test_embedding_lookup_and_scatter_added_gradient(padding_idx, scale, rng):
    table = rng.standard_normal((6, 3))
    indices = np.array([[1, 2, 1, 5], [5, 5, 0, 2]])
    weight = _t(table, requires_grad=True)
    out = F.embedding(_t(indices), weight, padding_idx, scale_grad_by_freq=scale)
    np.testing.assert_array_equal(out.numpy(), table[indices])
    grad = rng.standard_normal(out.shape)
    out.backward(_t(grad))
    row = None if padding_idx is None else padding_idx % 6
    np.testing.assert_allclose(weight.grad.numpy(),
                               _scatter_reference(indices, grad, 6, row, scale), rtol=1e-12)
    if padding_idx is None and not scale:  # the other two change the gradient on purpose
        assert gradcheck(lambda w: F.embedding(_t(indices), w), (_t(table, requires_grad=True),))


def test_embedding_module_init_padding_and_state_dict():
    fg.manual_seed(0)
    layer = nn.Embedding(2000, 8, padding_idx=-2)
    assert layer.padding_idx == 1998 and list(layer.state_dict()) == ["weight"]
    values = layer.weight.numpy()
    assert layer.weight.dtype == np.float32 and values.shape == (2000, 8)
    np.testing.assert_array_equal(values[1998], 0)
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05  # N(0, 1)
    out = layer(fg.tensor([[1998, 3]]))
    assert out.shape == (1, 2, 8)
    out.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad.numpy()[1998], 0)
    np.testing.assert_array_equal(layer.weight.grad.numpy()[3], 1)
    assert nn.Embedding(3, 2, dtype=fg.float64).weight.dtype == np.float64
    assert layer(fg.tensor(5)).shape == (8,)  # a 0-d index
    assert layer(fg.tensor(np.array([1, 2], np.int32))).shape == (2, 8)


def test_embedding_from_pretrained_shares_and_freezes():
    table = fg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and frozen.num_embeddings == 3
    np.testing.assert_array_equal(frozen(fg.tensor([2, 0])).numpy(), [[5, 6], [1, 2]])
    table.data.fill_(7)  # the memory is shared
    assert frozen.weight.numpy()[0, 0] == 7
    trained = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=0)
    assert trained.weight.requires_grad and trained.weight.numpy()[0, 0] == 7
    with pytest.raises(ValueError, match="expected to be 2-dimensional"):
        nn.Embedding.from_pretrained(fg.ones(3))


def test_embedding_max_norm_renormalises_the_looked_up_rows():
    table = np.array([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]])
    weight = _t(table)
    out = F.embedding(_t([0, 1, 0]), weight, max_norm=1.0)
    scaled = table[0] / (5 + 1e-7)
    np.testing.assert_allclose(weight.numpy(), [scaled, table[1], table[2]], rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), [scaled, table[1], scaled], rtol=1e-12)


@pytest.mark.parametrize("call, error, message", [
    (lambda w: F.embedding(fg.tensor([6]), w), IndexError, "index out of range in self"),
    (lambda w: F.embedding(fg.tensor([-1]), w), IndexError, "index out of range"),
    (lambda w: F.embedding(fg.tensor([1.0]), w), RuntimeError,
     "'indices' to have one of the following scalar types: Long, Int"),
    (lambda w: F.embedding(fg.tensor([1]), fg.ones(6)), RuntimeError, "'weight' must be 2-D"),
    (lambda w: F.embedding(fg.tensor([1]), w, padding_idx=6), ValueError,
     "Padding_idx must be within num_embeddings"),
    (lambda w: F.embedding(fg.tensor([1]), w, sparse=True), NotImplementedError, "sparse"),
    (lambda w: nn.Embedding(4, 2, padding_idx=-5), ValueError, "Padding_idx"),
    (lambda w: nn.Embedding(4, 2, _weight=fg.ones(3, 2)), ValueError, "Shape of weight"),
    (lambda w: nn.Embedding(4.0, 2), ValueError, "num_embeddings must be"),
], ids=["index-high", "index-negative", "float-indices", "weight-1d", "padding-range",
        "sparse", "module-padding", "module-weight-shape", "module-rows"])
def test_embedding_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(fg.ones(6, 2))


def test_embedding_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    indices = rng.integers(0, 7, (4, 5))
    indices[0, :3] = 4
    for kwargs in ({}, {"padding_idx": 4}, {"padding_idx": -3, "scale_grad_by_freq": True}):
        theirs = torch.nn.Embedding(7, 3, **kwargs)
        ours = nn.Embedding(7, 3, **kwargs)
        assert repr(ours) == repr(theirs)
        ours.load_state_dict(theirs.state_dict())
        out_t, out_o = theirs(torch.from_numpy(indices)), ours(fg.tensor(indices))
        np.testing.assert_array_equal(out_o.numpy(), out_t.detach().numpy())
        grad = rng.standard_normal(out_o.shape).astype(np.float32)
        out_t.backward(torch.from_numpy(grad))
        out_o.backward(fg.tensor(grad))
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   rtol=1e-6, atol=1e-6)
    theirs = torch.nn.Embedding(7, 3, max_norm=1.5, norm_type=1.0)
    ours = nn.Embedding(7, 3, max_norm=1.5, norm_type=1.0)
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_allclose(ours(fg.tensor(indices)).numpy(),
                               theirs(torch.from_numpy(indices)).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-6)


# -------------------------------------------------------------------------------- LayerNorm
def _layer_norm_reference(x, dims, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - dims, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    out = out if weight is None else out * weight
    return out if bias is None else out + bias


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 5), (3, 5)),
                                               ((2, 3, 5), [5]), ((7,), (7,))])
def test_layer_norm_values_and_gradcheck(shape, normalized, rng):
    x = rng.standard_normal(shape) * 3 + 1
    dims = 1 if isinstance(normalized, int) else len(normalized)
    weight = rng.standard_normal(shape[len(shape) - dims:])
    bias = rng.standard_normal(weight.shape)
    out = F.layer_norm(_t(x), normalized, _t(weight), _t(bias))
    np.testing.assert_allclose(out.numpy(), _layer_norm_reference(x, dims, weight, bias),
                               rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda a, w, b: F.layer_norm(a, normalized, w, b),
                     (_t(x, requires_grad=True), _t(weight, requires_grad=True),
                      _t(bias, requires_grad=True)))
    assert gradcheck(lambda a: F.layer_norm(a, normalized, eps=1e-3),
                     (_t(x, requires_grad=True),))


def test_layer_norm_float32_statistics_are_exact_for_a_large_mean(rng):
    x = (1e4 + rng.standard_normal((3, 64)) * 1e-2).astype(np.float32)
    out = F.layer_norm(_t(x), 64)
    expected = _layer_norm_reference(x.astype(np.float64), 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    constant = _t(np.full((2, 5), 3.0, np.float32), requires_grad=True)
    result = F.layer_norm(constant, 5)
    result.sum().backward()
    np.testing.assert_array_equal(result.numpy(), 0)
    assert np.isfinite(constant.grad.numpy()).all()


def test_layer_norm_module():
    layer = nn.LayerNorm([2, 3])
    assert list(layer.state_dict()) == ["weight", "bias"] and layer.weight.shape == (2, 3)
    np.testing.assert_array_equal(layer.weight.numpy(), 1)
    np.testing.assert_array_equal(layer.bias.numpy(), 0)
    assert repr(layer) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=True)"
    assert nn.LayerNorm(4, bias=False).bias is None
    assert list(nn.LayerNorm(4, elementwise_affine=False).parameters()) == []
    assert nn.LayerNorm(4, dtype=fg.float64).weight.dtype == np.float64
    assert nn.LayerNorm(3)(fg.zeros(0, 3)).shape == (0, 3)


@pytest.mark.parametrize("call, message", [
    (lambda: F.layer_norm(fg.zeros(2, 3), (4,)),
     (r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input "
      r"of size\[2, 3\]")),
    (lambda: F.layer_norm(fg.zeros(3), (2, 3)), "expected input with shape"),
    (lambda: F.layer_norm(fg.zeros(2, 4), 4, fg.ones(3)),
     r"Expected weight to be of same shape as normalized_shape, but got weight of shape \[3\]"),
    (lambda: F.layer_norm(fg.zeros(2, 4), 4, bias=fg.ones(4, dtype=fg.float64)),
     "bias and input must have the same dtype"),
    (lambda: F.layer_norm(fg.zeros(2, 4), ()), "at least 1-dimensional"),
])
def test_layer_norm_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


@pytest.mark.parametrize("shape, normalized, kwargs", [
    ((8, 16), 16, {}), ((2, 5, 6), (5, 6), {}), ((3, 4, 7), 7, {"bias": False}),
    ((3, 4, 7), 7, {"elementwise_affine": False}), ((4, 9), 9, {"eps": 1e-3})])
def test_layer_norm_matches_pytorch(shape, normalized, kwargs, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape) * 2 + 3
    for dtype in FLOATS:
        theirs = torch.nn.LayerNorm(normalized, dtype=torch.float64 if dtype == np.float64
                                    else torch.float32, **kwargs)
        with torch.no_grad():
            for param in theirs.parameters():
                param.copy_(torch.from_numpy(rng.standard_normal(param.shape)))
        ours = nn.LayerNorm(normalized, dtype=dtype, **kwargs)
        assert repr(ours) == repr(theirs)
        ours.load_state_dict(theirs.state_dict())
        _compare(torch, ours, theirs, [x], [0], dtype)
        for name, param in ours.named_parameters():
            np.testing.assert_allclose(param.grad.numpy(),
                                       dict(theirs.named_parameters())[name].grad.numpy(),
                                       **_tol(dtype), err_msg=name)


# ------------------------------------------------------------------ a tutorial-style model
def test_text_classifier_of_the_new_layers_matches_pytorch(rng):
    """Embedding, LayerNorm, ModuleList, SiLU, Dropout and a class-weighted, smoothed
    cross-entropy, as a tutorial writes them: the loss and every gradient as PyTorch's."""
    torch = pytest.importorskip("torch")

    def build(nn_module):
        class Classifier(nn_module.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn_module.Embedding(20, 8, padding_idx=0)
                self.norm = nn_module.LayerNorm(8)
                self.layers = nn_module.ModuleList([nn_module.Linear(8, 8) for _ in range(2)])
                self.act = nn_module.SiLU(inplace=True)
                self.drop = nn_module.Dropout(0.1, inplace=True)
                self.head = nn_module.Linear(8, 3)

            def forward(self, tokens):
                x = self.norm(self.embed(tokens))
                for layer in self.layers:
                    x = self.drop(self.act(layer(x))) + x
                return self.head(x.mean(1))
        return Classifier().eval()

    theirs, ours = build(torch.nn), build(nn)
    ours.load_state_dict(theirs.state_dict())
    tokens = rng.integers(0, 20, (6, 5))
    labels = rng.integers(0, 3, 6)
    weight = np.array([0.5, 1.0, 2.0], np.float32)
    loss_t = torch.nn.CrossEntropyLoss(torch.from_numpy(weight), label_smoothing=0.1)(
        theirs(torch.from_numpy(tokens)), torch.from_numpy(labels))
    loss_o = nn.CrossEntropyLoss(fg.tensor(weight), label_smoothing=0.1)(
        ours(fg.tensor(tokens)), fg.tensor(labels))
    assert loss_o.item() == pytest.approx(loss_t.item(), rel=1e-5)
    loss_t.backward()
    loss_o.backward()
    grads_t = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), grads_t[name].grad.numpy(), rtol=2e-4,
                                   atol=1e-6, err_msg=name)
    assert collections.Counter(type(m).__name__ for m in ours.modules())["Linear"] == 3
