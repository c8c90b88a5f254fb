"""nn: the Module system, Linear, the fused activations, the losses; against PyTorch when it is
installed (those tests skip without it)."""
import collections
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck

ACTIVATIONS = ("none", "relu", "sigmoid", "tanh")
ACTIVATION_LAYERS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
FLOATS = (np.float32, np.float64)


def _t(array, requires_grad=False):
    """A Tensor holding a copy of ``array`` (dtype and shape kept, 0-d included)."""
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(4, np.float32))
        self.fc = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.register_buffer("running", fg.zeros(4))
        self.register_buffer("scratch", fg.zeros(2), persistent=False)
        self.register_buffer("count", fg.tensor(np.array(0, np.int64)))

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.head(self.block(x))


def _mlp(dtype=np.float32):
    return nn.Sequential(nn.Linear(4, 8, dtype=dtype), nn.ReLU(), nn.Linear(8, 3, dtype=dtype))


# ------------------------------------------------------------------------------ registration
def test_registration_names_parameters_buffers_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]
    assert [p.shape for p in net.parameters()] == [(4,), (4, 3), (4,), (2, 4)]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_buffers()] == ["block.running", "block.scratch",
                                                   "block.count"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert list(net.children()) == [net.block, net.head]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "head"]
    assert list(net.modules())[0] is net
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.block.named_parameters(prefix="b", recurse=False)] == ["b.scale"]


def test_shared_module_and_tied_parameter_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert len(list(model.modules())) == 3

    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    tied = nn.Sequential(a, b)
    assert [n for n, _ in tied.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_state_dict_of_a_shared_module_has_every_key_as_pytorch():
    # PyTorch's state_dict walks the module tree without de-duplication: a module used twice
    # appears under both names (named_parameters de-duplicates, state_dict does not).
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_of_an_ordered_dict_uses_its_names():
    model = nn.Sequential(collections.OrderedDict([("fc", nn.Linear(3, 2)), ("act", nn.Tanh())]))
    assert list(model.state_dict()) == ["fc.weight", "fc.bias"]
    assert repr(model).splitlines()[1] == "  (fc): Linear(in_features=3, out_features=2, bias=True)"
    x = fg.ones(2, 3)
    # Sequential fuses the pair into one kernel; it must round exactly as the two apart.
    np.testing.assert_array_equal(model(x).numpy(), model.act(model.fc(x)).numpy())
    with pytest.raises(TypeError, match="'1'"):
        nn.Sequential(nn.Linear(2, 2), np.tanh)


def test_assigning_none_and_deleting_unregisters():
    layer = nn.Linear(2, 3)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert layer.bias is None
    with pytest.raises(TypeError, match="bias"):
        layer.bias = np.zeros(3, np.float32)
    del layer.weight
    assert list(layer.parameters()) == []


def test_train_and_eval_recurse_and_return_self():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.block.eval()
    assert net.training and not net.block.training and not net.block.fc.training
    assert net.head.training
    with pytest.raises(ValueError, match="mode"):  # PyTorch's ValueError
        net.train("yes")


def _backward_once(model, dtype=np.float32, width=4):
    x = _t(np.random.default_rng(0).standard_normal((5, width)).astype(dtype))
    model(x).sum().backward()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_module_zero_grad(set_to_none):
    model = _mlp()
    _backward_once(model)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    model.zero_grad(set_to_none=set_to_none)
    for p, before in zip(model.parameters(), grads):
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad is before  # zeroed in place, same memory
            np.testing.assert_array_equal(p.grad.numpy(), 0)


def test_zero_grad_defaults_to_set_to_none():
    model = _mlp()
    _backward_once(model)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method, dtype", [("double", np.float64), ("float", np.float32),
                                           ("to", np.float64), ("to", np.float32)])
def test_module_dtype_casts_parameters_buffers_and_grads(method, dtype):
    net = Net()
    if method == "float":
        net.double()
    _backward_once(net, next(p.dtype for p in net.parameters()), width=3)
    values = {n: p.numpy().astype(np.float64) for n, p in net.named_parameters()}
    result = getattr(net, method)(dtype) if method == "to" else getattr(net, method)()
    assert result is net
    for name, p in net.named_parameters():
        assert p.dtype == dtype, name
        assert p.grad is not None and p.grad.dtype == dtype, name
        np.testing.assert_allclose(p.numpy(), values[name], rtol=1e-6, err_msg=name)
    assert net.block.running.dtype == dtype and net.block.scratch.dtype == dtype
    assert net.block.count.dtype == np.int64  # integer buffers are left alone, as PyTorch
    assert "scratch" not in [k.split(".")[-1] for k in net.state_dict()]  # still non-persistent
    out = net(_t(np.ones((2, 3), dtype)))
    assert out.dtype == dtype


def test_module_to_rejects_integer_dtype():
    with pytest.raises(TypeError, match="int64"):
        Net().to(np.int64)


# ------------------------------------------------------------------------------- state_dict
def test_register_buffer_persistence_in_state_dict():
    net = Net()
    assert list(net.state_dict()) == ["block.scale", "block.running", "block.count",
                                      "block.fc.weight", "block.fc.bias", "head.weight"]
    assert "block.scratch" in dict(net.named_buffers())
    # a state_dict without the non-persistent buffer loads strictly
    assert net.load_state_dict(Net().state_dict()) == ([], [])


def test_state_dict_keys_and_values_as_pytorch():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Tanh(),
                          nn.Linear(3, 2, bias=False))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight"]
    assert state["0.weight"].shape == (8, 4) and state["2.bias"].shape == (3,)
    # values share memory with the module and are detached (keep_vars=False)
    assert np.shares_memory(state["0.weight"].numpy(), model[0].weight.numpy())
    assert not state["0.weight"].requires_grad
    assert model.state_dict(keep_vars=True)["0.weight"] is model[0].weight


def test_load_state_dict_copies_in_place():
    fg.manual_seed(1)
    model, other = _mlp(), _mlp()
    arrays = {n: p.numpy() for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    result = model.load_state_dict(other.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, p in model.named_parameters():
        assert p is params[name] and p.numpy() is arrays[name], name
        np.testing.assert_array_equal(p.numpy(), dict(other.named_parameters())[name].numpy())
    # copied, not aliased
    other[0].weight.numpy()[...] = 7
    assert not np.any(model[0].weight.numpy() == 7)


def test_load_state_dict_from_numpy_arrays_casts_to_the_module_dtype():
    model = _mlp()
    rng = np.random.default_rng(2)
    arrays = {k: rng.standard_normal(v.shape) for k, v in model.state_dict().items()}  # float64
    model.load_state_dict(arrays)
    for key, value in model.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value.numpy(), arrays[key].astype(np.float32))


def test_load_state_dict_missing_key_is_an_error_naming_it():
    state = _mlp().state_dict()
    del state["2.bias"]
    with pytest.raises(RuntimeError, match=r"(?s)missing.*'2\.bias'"):
        _mlp().load_state_dict(state)


def test_load_state_dict_unexpected_key_is_an_error_naming_it():
    state = _mlp().state_dict()
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(RuntimeError, match=r"(?s)unexpected.*'extra\.weight'"):
        _mlp().load_state_dict(state)


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_wrong_shape_names_key_and_both_shapes(strict):
    state = _mlp().state_dict()
    state["0.weight"] = np.zeros((3, 4), np.float32)
    with pytest.raises(RuntimeError, match=r"0\.weight.*\(3, 4\).*\(8, 4\)"):
        _mlp().load_state_dict(state, strict=strict)


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    source = _mlp()
    state = source.state_dict()
    del state["0.bias"]
    state["head.weight"] = np.zeros((1, 1), np.float32)
    model = _mlp()
    bias_before = model[0].bias.numpy().copy()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["0.bias"] and unexpected == ["head.weight"]
    np.testing.assert_array_equal(model[0].weight.numpy(), source[0].weight.numpy())
    np.testing.assert_array_equal(model[0].bias.numpy(), bias_before)


def test_repr_matches_pytorch_exactly():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3, bias=False))
    expected = ("Sequential(\n"
                "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
                "  (1): ReLU()\n"
                "  (2): Linear(in_features=8, out_features=3, bias=False)\n"
                ")")
    assert repr(model) == expected


def test_repr_against_pytorch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3), nn.Tanh()),
                         nn.Sigmoid())
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Sequential(
        torch.nn.Linear(8, 3), torch.nn.Tanh()), torch.nn.Sigmoid())
    assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------------- Linear
def test_linear_shapes_and_default_init_bounds():
    fg.manual_seed(0)
    layer = nn.Linear(400, 50)
    bound = 1 / math.sqrt(400)
    assert layer.weight.shape == (50, 400) and layer.bias.shape == (50,)
    assert layer.weight.dtype == np.float32
    for p in (layer.weight, layer.bias):
        assert np.abs(p.numpy()).max() <= bound
    weight = layer.weight.numpy()  # 20000 draws: the whole range is used
    assert weight.max() > 0.99 * bound and weight.min() < -0.99 * bound
    assert abs(layer.weight.numpy().mean()) < 0.05 * bound
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_init_is_repeatable_with_manual_seed():
    fg.manual_seed(5)
    first = nn.Linear(6, 3).weight.numpy().copy()
    fg.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(6, 3).weight.numpy(), first)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 4, 5), (2, 1, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_accepts_any_leading_dimensions(shape, bias):
    layer = nn.Linear(5, 3, bias=bias, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal(shape)
    xt = _t(x.copy(), requires_grad=True)
    out = layer(xt)
    expected = x @ layer.weight.numpy().T + (layer.bias.numpy() if bias else 0)
    assert out.shape == shape[:-1] + (3,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    grad_out = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(grad_out)
    g2, x2 = grad_out.reshape(-1, 3), x.reshape(-1, 5)
    np.testing.assert_allclose(xt.grad.numpy(), grad_out @ layer.weight.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), g2.T @ x2, rtol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.bias.grad.numpy(), g2.sum(0), rtol=1e-12)


def test_linear_non_contiguous_input():
    layer = nn.Linear(4, 3, dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((4, 6))
    xt = _t(x, requires_grad=True)
    out = layer(xt.T)  # (6, 4), a transposed view
    np.testing.assert_allclose(out.numpy(), x.T @ layer.weight.numpy().T + layer.bias.numpy(),
                               rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), np.tile(layer.weight.numpy().sum(0), (6, 1)).T,
                               rtol=1e-12)


def test_linear_rejects_wrong_input_width_naming_shapes():
    with pytest.raises(RuntimeError, match=r"\(2, 4\).*\(3, 5\)"):
        nn.Linear(5, 3)(fg.zeros(2, 4))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(activation, bias):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((2, 4))
    b = rng.standard_normal(2)
    assert np.abs(x @ w.T + b).min() > 1e-3 and np.abs(x @ w.T).min() > 1e-3  # off the ReLU kink
    inputs = (_t(x, True), _t(w, True), _t(b, True) if bias else None)
    assert gradcheck(lambda x, w, b: F.linear(x, w, b, activation=activation), inputs)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_linear_3d_input(activation):
    rng = np.random.default_rng(11)
    inputs = (_t(rng.standard_normal((2, 3, 4)), True), _t(rng.standard_normal((3, 4)), True),
              _t(rng.standard_normal(3), True))
    assert gradcheck(lambda x, w, b: F.linear(x, w, b, activation=activation), inputs)


def test_linear_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation.*'gelu'"):
        F.linear(fg.zeros(2, 3), fg.zeros(4, 3), activation="gelu")


@pytest.mark.parametrize("activation", sorted(ACTIVATION_LAYERS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_sequential_fusion_equals_linear_then_activation(activation, dtype):
    fg.manual_seed(3)
    layer = nn.Linear(6, 5, dtype=dtype)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((7, 6)).astype(dtype)
    grad_out = rng.standard_normal((7, 5)).astype(dtype)

    def run(forward):
        layer.zero_grad()
        xt = _t(x, requires_grad=True)
        out = forward(xt)
        nodes = len(_graph_nodes(out))
        out.backward(grad_out)
        return nodes, [out.numpy(), xt.grad.numpy(), layer.weight.grad.numpy().copy(),
                       layer.bias.grad.numpy().copy()]

    fused_nodes, fused = run(nn.Sequential(layer, ACTIVATION_LAYERS[activation]()))
    separate_nodes, separate = run(lambda xt: ACTIVATION_LAYERS[activation]()(layer(xt)))
    for name, a, b in zip(("output", "grad x", "grad weight", "grad bias"), fused, separate):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (fused_nodes, separate_nodes) == (1, 2)  # fused: one node, not Linear + activation


def _graph_nodes(output):
    nodes, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            stack.extend(t.grad_fn for t in node.inputs if t is not None)
    return nodes


# ---------------------------------------------------------------------------- cross-entropy
def _log_softmax(z, axis):
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _reference_ce(logits, target, ignore_index=-100):
    """Per-element loss (class dim 1 or 0 for unbatched) and the kept mask, in float64."""
    class_dim = 0 if logits.ndim == 1 else 1
    logp = _log_softmax(logits, class_dim)
    if np.issubdtype(target.dtype, np.floating):
        return -(target * logp).sum(class_dim), None
    kept = target != ignore_index
    safe = np.where(kept, target, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, class_dim), class_dim)
    return np.where(kept, -np.squeeze(picked, class_dim), 0.0), kept


def _reduce(per, kept, reduction):
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (per.size if kept is None else kept.sum())


def _ce_case(form, dtype=np.float64, seed=20):
    rng = np.random.default_rng(seed)
    if form == "index":
        logits = rng.standard_normal((6, 5)) * 3
        target = rng.integers(0, 5, 6)
    elif form == "spatial":
        logits = rng.standard_normal((2, 4, 3, 2)) * 3
        target = rng.integers(0, 4, (2, 3, 2))
        target[1, 2, 0] = -100
    elif form == "unbatched":
        logits = rng.standard_normal(5)
        target = np.array(3)
    elif form == "ignored":
        logits = rng.standard_normal((6, 5)) * 3
        target = rng.integers(0, 5, 6)
        target[[1, 4]] = -100
    else:  # probabilities
        logits = rng.standard_normal((6, 5)) * 3
        target = rng.random((6, 5))
        target /= target.sum(1, keepdims=True)
        return logits.astype(dtype), target.astype(dtype)
    return logits.astype(dtype), target.astype(np.int64)


CE_FORMS = ("index", "spatial", "unbatched", "ignored", "probabilities")


@pytest.mark.parametrize("form", CE_FORMS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_values(form, reduction, dtype):
    logits, target = _ce_case(form, dtype)
    per, kept = _reference_ce(logits, target)
    expected = _reduce(per, kept, reduction)
    loss = nn.CrossEntropyLoss(reduction=reduction)(_t(logits), _t(target))
    assert loss.dtype == dtype and loss.shape == np.shape(expected)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss.numpy(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_mean_averages_over_kept_targets_only(ignore_index):
    logits, _ = _ce_case("index")
    target = np.array([2, 0, 2, 1, 4, -100 if ignore_index == -100 else 2])
    target[0] = ignore_index
    per, kept = _reference_ce(logits, target, ignore_index)
    loss = F.cross_entropy(_t(logits), _t(target), ignore_index=ignore_index)
    np.testing.assert_allclose(loss.item(), per.sum() / kept.sum(), rtol=1e-12)
    assert kept.sum() < len(target)
    # ignored rows get no gradient
    x = _t(logits.copy(), True)
    F.cross_entropy(x, _t(target), ignore_index=ignore_index).backward()
    np.testing.assert_array_equal(x.grad.numpy()[~kept], 0)
    assert np.all(np.abs(x.grad.numpy()[kept]).sum(1) > 0)


def test_cross_entropy_all_ignored_is_nan_for_mean_and_zero_for_sum():
    logits, _ = _ce_case("index")
    target = _t(np.full(6, -100, np.int64))
    assert math.isnan(F.cross_entropy(_t(logits), target).item())  # 0 / 0, as PyTorch
    assert F.cross_entropy(_t(logits), target, reduction="sum").item() == 0


@pytest.mark.parametrize("form", CE_FORMS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradcheck_cross_entropy(form, reduction):
    logits, target = _ce_case(form, seed=21)
    soft = form == "probabilities"
    inputs = (_t(logits, True), _t(target, soft))  # probability targets are differentiable too
    assert gradcheck(lambda x, t: F.cross_entropy(x, t, reduction=reduction), inputs)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_is_finite_for_huge_logits(dtype, soft):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype)
    if soft:
        target, expected = np.array([[0.5, 0.5, 0], [0, 0, 1]], dtype), [1e4, 1e4]
    else:
        target, expected = np.array([0, 0]), [0.0, 2e4]
    x = _t(logits.copy(), True)
    loss = F.cross_entropy(x, _t(target), reduction="none")
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    softmax = np.exp(_log_softmax(logits, 1))
    onehot = target if soft else np.eye(3)[target]
    np.testing.assert_allclose(x.grad.numpy(), softmax - onehot, atol=1e-6)


def test_cross_entropy_float_target_of_wrong_shape_is_runtime_error():
    with pytest.raises(RuntimeError, match=r"\(4, 3\)"):
        F.cross_entropy(fg.zeros(4, 3), fg.zeros(4, 2))


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_cross_entropy_target_out_of_range_is_index_error(bad):
    target = np.array([0, bad, 1, 2])
    with pytest.raises(IndexError, match=rf"{bad}.*3 classes"):
        F.cross_entropy(fg.zeros(4, 3), _t(target))


@pytest.mark.parametrize("target_shape", [(3,), (4, 1), (4, 3)])
def test_cross_entropy_wrong_index_target_shape_is_value_error(target_shape):
    target = np.zeros(target_shape, np.int64)
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 3\)"):
        F.cross_entropy(fg.zeros(4, 3), _t(target))


@pytest.mark.parametrize("make", [
    lambda: nn.CrossEntropyLoss(reduction="avg"),
    lambda: nn.MSELoss(reduction="avg"),
    lambda: F.cross_entropy(fg.zeros(2, 3), _t(np.zeros(2, np.int64)), reduction="avg"),
    lambda: F.mse_loss(fg.zeros(2), fg.zeros(2), reduction="avg"),
], ids=["CrossEntropyLoss", "MSELoss", "cross_entropy", "mse_loss"])
def test_loss_bad_reduction_is_value_error(make):
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        make()


# ------------------------------------------------------------------------------------- MSE
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_mse_loss_values_and_gradient(reduction):
    rng = np.random.default_rng(30)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    x = _t(a.copy(), True)
    loss = nn.MSELoss(reduction=reduction)(x, _t(b))
    squared = (a - b) ** 2
    expected = {"none": squared, "mean": squared.mean(), "sum": squared.sum()}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    loss.backward(np.ones_like(squared) if reduction == "none" else None)
    scale = 1 / a.size if reduction == "mean" else 1
    np.testing.assert_allclose(x.grad.numpy(), 2 * (a - b) * scale, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_mse_loss_is_one_op_with_the_values_of_its_composition(reduction, dtype):
    """mse_loss is one node whose output and gradients (input and target) are those of
    ``(x - y) * (x - y)`` reduced by the elementwise ops, bit for bit."""
    rng = np.random.default_rng(32)
    a, b = (rng.standard_normal((16, 8)).astype(dtype) for _ in range(2))
    grad = rng.standard_normal(a.shape).astype(dtype) if reduction == "none" else None

    def run(loss_of):
        x, y = _t(a, True), _t(b, True)
        loss = loss_of(x, y)
        node = type(loss.grad_fn).__name__
        loss.backward(None if grad is None else _t(grad))
        return node, [loss.numpy(), x.grad.numpy(), y.grad.numpy()]

    node, ours = run(lambda x, y: F.mse_loss(x, y, reduction=reduction))
    _, composed = run(lambda x, y: F._reduce((x - y) * (x - y), reduction))
    for name, got, expected in zip(("loss", "grad input", "grad target"), ours, composed):
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert got.dtype == dtype, name
    assert node == "_MSELoss"


def test_gradcheck_mse_loss():
    rng = np.random.default_rng(31)
    inputs = (_t(rng.standard_normal((3, 2)), True), _t(rng.standard_normal((3, 2)), True))
    assert gradcheck(F.mse_loss, inputs)


def test_mse_loss_shape_mismatch_is_value_error_naming_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 1\)"):
        nn.MSELoss()(fg.zeros(4, 3), fg.zeros(4, 1))


# --------------------------------------------------------------------------- against PyTorch
def _pair(torch, dtype):
    ours = nn.Sequential(nn.Linear(6, 16, dtype=dtype), nn.ReLU(), nn.Linear(16, 12, dtype=dtype),
                         nn.Tanh(), nn.Linear(12, 8, dtype=dtype), nn.Sigmoid(),
                         nn.Linear(8, 4, dtype=dtype))
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12),
                                 torch.nn.Tanh(), torch.nn.Linear(12, 8), torch.nn.Sigmoid(),
                                 torch.nn.Linear(8, 4))
    return ours, theirs.to(getattr(torch, np.dtype(dtype).name))


@pytest.mark.parametrize("direction", ["fastgrad_to_torch", "torch_to_fastgrad"])
@pytest.mark.parametrize("loss_name", ["cross_entropy", "cross_entropy_probabilities", "mse"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_mlp_matches_pytorch(direction, loss_name, dtype):
    torch = pytest.importorskip("torch")
    fg.manual_seed(40)
    torch.manual_seed(40)
    ours, theirs = _pair(torch, dtype)
    if direction == "fastgrad_to_torch":
        theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                for k, v in ours.state_dict().items()})
    else:
        assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    rng = np.random.default_rng(41)
    x = rng.standard_normal((10, 6)).astype(dtype)
    if loss_name == "cross_entropy":
        target = rng.integers(0, 4, 10)
        target[3] = -100
        ours_loss, theirs_loss = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    elif loss_name == "cross_entropy_probabilities":
        target = rng.dirichlet(np.ones(4), 10).astype(dtype)
        ours_loss, theirs_loss = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    else:
        target = rng.standard_normal((10, 4)).astype(dtype)
        ours_loss, theirs_loss = nn.MSELoss(), torch.nn.MSELoss()

    xo = _t(x.copy(), True)
    out_o = ours(xo)
    loss_o = ours_loss(out_o, _t(target))
    loss_o.backward()
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t = theirs(xt)
    loss_t = theirs_loss(out_t, torch.from_numpy(target))
    loss_t.backward()

    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(loss_o.item(), loss_t.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad.numpy(), p.grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=name)
    assert set(ours_params) == {n for n, _ in theirs.named_parameters()}


def test_load_pytorch_state_dict_with_keep_vars():
    # a PyTorch state_dict(keep_vars=True) holds Parameters that require grad; PyTorch's own
    # load_state_dict accepts it
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    ours = _mlp()
    assert ours.load_state_dict(theirs.state_dict(keep_vars=True)) == ([], [])
    for name, p in theirs.named_parameters():
        np.testing.assert_array_equal(dict(ours.named_parameters())[name].numpy(),
                                      p.detach().numpy(), err_msg=name)


def test_load_non_contiguous_pytorch_tensors():
    torch = pytest.importorskip("torch")
    ours = nn.Linear(3, 2)
    weight = torch.arange(6.0).reshape(3, 2).t()  # a transposed view
    ours.load_state_dict({"weight": weight, "bias": torch.tensor([1.0, 2.0])})
    np.testing.assert_array_equal(ours.weight.numpy(), [[0, 2, 4], [1, 3, 5]])
    np.testing.assert_array_equal(ours.bias.numpy(), [1, 2])


def test_state_dict_keys_match_pytorch_for_shared_modules():
    torch = pytest.importorskip("torch")
    shared = torch.nn.Linear(3, 3)
    theirs = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    ours_shared = nn.Linear(3, 3)
    ours = nn.Sequential(ours_shared, nn.ReLU(), ours_shared)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
