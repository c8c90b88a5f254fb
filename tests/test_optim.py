"""optim: SGD against hand-computed updates and PyTorch, the parameter arenas, param groups,
validation and state_dict."""
import itertools

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.arena import arena_of

GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5])]
P0 = np.array([1.0, -2.0])

SGD_OPTIONS = {
    "plain": {},
    "momentum": dict(momentum=0.9),
    "dampening": dict(momentum=0.9, dampening=0.5),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "weight_decay": dict(weight_decay=0.1),
    "maximize": dict(maximize=True),
    "momentum_weight_decay_maximize": dict(momentum=0.8, dampening=0.25, weight_decay=0.1,
                                           maximize=True),
    "nesterov_weight_decay": dict(momentum=0.5, nesterov=True, weight_decay=0.2),
}


def _param(values, dtype=np.float64):
    return nn.Parameter(np.array(values, dtype))


def _expected_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                  maximize=False):
    """PyTorch's SGD, written out per step: the parameter and momentum buffer after each."""
    p, buf, history = np.array(p, np.float64), None, []
    for g in grads:
        d = -g if maximize else g
        d = d + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        history.append((p.copy(), None if buf is None else buf.copy()))
    return history


# ------------------------------------------------------------------------- hand-computed SGD
@pytest.mark.parametrize("name", SGD_OPTIONS)
def test_sgd_matches_hand_computed_steps(name):
    options = SGD_OPTIONS[name]
    p = _param(P0)
    opt = optim.SGD([p], lr=0.1, **options)
    expected = _expected_sgd(P0, GRADS, 0.1, **options)
    for step, (g, (p_expected, buf_expected)) in enumerate(zip(GRADS, expected), 1):
        p.grad = fg.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.numpy(), p_expected, rtol=1e-13, err_msg=f"step {step}")
        if options.get("momentum"):
            np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), buf_expected,
                                       rtol=1e-13, err_msg=f"buffer after step {step}")
        else:
            assert "momentum_buffer" not in opt.state.get(p, {})


def test_sgd_literal_values():
    p = _param(P0)
    opt = optim.SGD([p], lr=0.1)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.95, -1.9], rtol=1e-15)

    p = _param(P0)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    # first step: the buffer is the gradient itself, not (1 - dampening) * gradient
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), [0.5, -1.0])
    np.testing.assert_allclose(p.numpy(), [0.95, -1.9], rtol=1e-15)
    p.grad = fg.tensor(GRADS[1])
    opt.step()
    # buffer = 0.9 * [0.5, -1] + 0.5 * [0.25, 2] = [0.575, 0.1]
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), [0.575, 0.1])
    np.testing.assert_allclose(p.numpy(), [0.8925, -1.91], rtol=1e-15)


def test_param_groups_with_different_lr_and_options():
    a, b = _param(P0), _param(P0)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01, "momentum": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.5]
    for g in GRADS:
        a.grad, b.grad = fg.tensor(g), fg.tensor(g)
        opt.step()
    np.testing.assert_allclose(a.numpy(), _expected_sgd(P0, GRADS, 0.1)[-1][0], rtol=1e-13)
    np.testing.assert_allclose(b.numpy(), _expected_sgd(P0, GRADS, 0.01, momentum=0.5)[-1][0],
                               rtol=1e-13)


def test_add_param_group_later():
    a, b = _param(P0), _param(P0)
    opt = optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.2})
    a.grad, b.grad = fg.tensor(GRADS[0]), fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(a.numpy(), P0 - 0.1 * GRADS[0])
    np.testing.assert_allclose(b.numpy(), P0 - 0.2 * GRADS[0])
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})


# ------------------------------------------------------------------------------- validation
def test_duplicate_parameter_is_value_error():
    p = _param(P0)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_empty_parameter_list_is_value_error():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD(iter([]), lr=0.1)


@pytest.mark.parametrize("option, value, match", [
    ("lr", -0.5, r"learning rate: -0\.5"),
    ("momentum", -0.1, r"momentum.*-0\.1"),
    ("weight_decay", -1e-3, r"weight_decay.*-0\.001"),
])
def test_negative_hyperparameter_is_value_error_with_the_value(option, value, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD([_param(P0)], **{"lr": 0.1, option: value})


@pytest.mark.parametrize("options", [dict(nesterov=True), dict(nesterov=True, momentum=0.9,
                                                               dampening=0.1)])
def test_nesterov_needs_momentum_and_no_dampening(options):
    with pytest.raises(ValueError, match=r"(?i)nesterov.*momentum=.*dampening="):
        optim.SGD([_param(P0)], lr=0.1, **options)


def test_non_leaf_tensor_is_value_error():
    p = _param(P0)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_single_tensor_and_non_tensor_params_are_type_errors():
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(_param(P0), lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\].*ndarray"):
        optim.SGD([_param(P0), np.zeros(2)], lr=0.1)


def test_unknown_hyperparameter_in_group_is_value_error():
    with pytest.raises(ValueError, match="betas"):
        optim.SGD([{"params": [_param(P0)], "betas": (0.9, 0.99)}], lr=0.1)


# ------------------------------------------------------------------------------------ arenas
def _model(dtype=np.float32, seed=0):
    fg.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5, dtype=dtype), nn.Tanh(), nn.Linear(5, 2, dtype=dtype))


def _batch(dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return (fg.tensor(rng.standard_normal((4, 3)).astype(dtype)),
            fg.tensor(rng.standard_normal((4, 2)).astype(dtype)))


def _loss(model, dtype=np.float32, seed=1):
    x, y = _batch(dtype, seed)
    return nn.MSELoss()(model(x), y)


def _assert_packed(params):
    arena = arena_of(params[0])
    assert arena is not None
    assert all(arena_of(p) is arena for p in params)
    assert arena.data.ndim == 1 and arena.data.flags.c_contiguous
    assert arena.data.size == sum(p.numel() for p in params)
    for p in params:
        assert np.shares_memory(p.numpy(), arena.data)
    np.testing.assert_array_equal(np.concatenate([p.numpy().ravel() for p in params]),
                                  arena.data)
    return arena


def test_parameters_become_views_of_one_arena_and_stay_views():
    model = _model()
    params = list(model.parameters())
    values = [p.numpy().copy() for p in params]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    arena = _assert_packed(params)
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.numpy(), v)  # packing keeps the values
    for _ in range(3):
        opt.zero_grad()
        _loss(model).backward()
        for p in params:
            assert np.shares_memory(p.grad.numpy(), arena.grad)
        opt.step()
        assert _assert_packed(params) is arena
    assert not any(np.array_equal(p.numpy(), v) for p, v in zip(params, values))


def test_zero_grad_in_place_and_set_to_none():
    model = _model()
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1)
    arena = arena_of(params[0])
    _loss(model).backward()
    single = [p.grad.numpy().copy() for p in params]
    assert np.abs(arena.grad).sum() > 0

    opt.zero_grad(set_to_none=False)
    for p in params:
        assert p.grad is not None and np.shares_memory(p.grad.numpy(), arena.grad)
    np.testing.assert_array_equal(arena.grad, 0)

    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    _loss(model).backward()
    for p, g in zip(params, single):
        assert np.shares_memory(p.grad.numpy(), arena.grad)  # written into the arena again
        np.testing.assert_array_equal(p.grad.numpy(), g)

    _loss(model).backward()  # a second backward accumulates
    for p, g in zip(params, single):
        assert np.shares_memory(p.grad.numpy(), arena.grad)
        np.testing.assert_allclose(p.grad.numpy(), 2 * g, rtol=1e-6)

    model.zero_grad(set_to_none=False)  # the Module's zero_grad keeps the views too
    for p in params:
        assert np.shares_memory(p.grad.numpy(), arena.grad)
    np.testing.assert_array_equal(arena.grad, 0)


def test_default_zero_grad_sets_to_none():
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    _loss(model).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("options", [dict(), dict(momentum=0.9, weight_decay=0.1),
                                     dict(momentum=0.9, nesterov=True, weight_decay=0.1)])
def test_parameter_without_gradient_is_not_updated(options):
    unused = _param([3.0, -4.0], np.float32)
    model = _model()
    reference = _model()
    opt = optim.SGD(list(model.parameters()) + [unused], lr=0.1, **options)
    ref_opt = optim.SGD(reference.parameters(), lr=0.1, **options)
    for _ in range(3):
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            _loss(m).backward()
            o.step()
    assert unused.grad is None
    np.testing.assert_array_equal(unused.numpy(), [3.0, -4.0])  # not even weight decay
    assert "momentum_buffer" not in opt.state.get(unused, {})
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)


def test_parameter_that_gets_its_first_gradient_later_starts_its_momentum_then():
    a, b = _param(P0), _param([0.5, 0.25])
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.1)
    a.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_array_equal(b.numpy(), [0.5, 0.25])
    a.grad, b.grad = fg.tensor(GRADS[1]), fg.tensor(GRADS[1])
    opt.step()
    kw = dict(momentum=0.9, weight_decay=0.1)
    np.testing.assert_allclose(a.numpy(), _expected_sgd(P0, GRADS[:2], 0.1, **kw)[-1][0])
    np.testing.assert_allclose(b.numpy(), _expected_sgd([0.5, 0.25], GRADS[1:2], 0.1, **kw)[-1][0])


def test_zero_grad_in_place_leaves_missing_gradients_missing():
    # PyTorch's zero_grad(set_to_none=False) zeroes existing gradients only: a parameter that
    # never got one keeps None, so step() skips it (no weight decay, no momentum).
    used, unused = _param(P0), _param([3.0])
    opt = optim.SGD([used, unused], lr=0.1, momentum=0.9, weight_decay=0.1)
    for g in GRADS:
        opt.zero_grad(set_to_none=False)
        (fg.tensor(g) * used).sum().backward()
        opt.step()
    assert unused.grad is None
    np.testing.assert_array_equal(unused.numpy(), [3.0])
    np.testing.assert_allclose(used.numpy(), _expected_sgd(P0, GRADS, 0.1, momentum=0.9,
                                                           weight_decay=0.1)[-1][0], rtol=1e-13)


def test_mixed_dtypes_get_one_arena_each_and_step_correctly():
    p32 = _param([1.0, 2.0, 3.0], np.float32)
    p64 = _param([[1.0, -1.0], [0.5, 2.0]], np.float64)
    q32 = _param([-1.0], np.float32)
    opt = optim.SGD([p32, p64, q32], lr=0.1, momentum=0.9)
    assert arena_of(p32) is arena_of(q32) and arena_of(p32) is not arena_of(p64)
    assert arena_of(p32).data.dtype == np.float32 and arena_of(p64).data.dtype == np.float64
    _assert_packed([p32, q32])
    _assert_packed([p64])
    grads = {p32: [np.array([1.0, 0.5, -1.0])] * 2, p64: [np.array([[0.5, 1], [-1, 2]])] * 2,
             q32: [np.array([2.0])] * 2}
    initial = {p: p.numpy().astype(np.float64) for p in grads}
    for step in range(2):
        for p, gs in grads.items():
            p.grad = fg.tensor(gs[step].astype(p.dtype))
        opt.step()
    for p, gs in grads.items():
        expected = _expected_sgd(initial[p], gs, 0.1, momentum=0.9)[-1][0]
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-6)
    assert (p32.dtype, p64.dtype, q32.dtype) == (np.float32, np.float64, np.float32)


def test_same_parameter_in_two_optimizers_steps_correctly():
    p = _param([1.0, 2.0, 3.0])
    other = _param([1.0])
    first = optim.SGD([p, other], lr=0.1, momentum=0.9)
    second = optim.SGD([p], lr=0.01)
    g = np.array([1.0, -2.0, 0.5])
    p.grad, other.grad = fg.tensor(g), fg.tensor(np.array([1.0]))
    expected = np.array([1.0, 2.0, 3.0])
    first.step()
    expected -= 0.1 * g
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-14)
    second.step()
    expected -= 0.01 * g
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-14)
    first.step()
    expected -= 0.1 * (0.9 * g + g)  # momentum kept across the repacking
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-14)
    np.testing.assert_allclose(other.numpy(), [1.0 - 0.1 - 0.1 * 1.9], rtol=1e-14)
    np.testing.assert_allclose(p.grad.numpy(), g)  # the gradient survived both moves
    second.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), 0)
    first.step()  # zero gradient: momentum only
    expected -= 0.1 * 0.9 * 1.9 * g
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-14)


def test_model_cast_after_creating_the_optimizer_still_steps_correctly():
    model, reference = _model(), _model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.double()
    reference.double()
    ref_opt = optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            _loss(m, np.float64).backward()
            o.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert p.dtype == np.float64, name
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, err_msg=name)
    assert _loss(model, np.float64).dtype == np.float64


class _Holder(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.w = nn.Parameter(np.array(values, np.float32))


def test_cast_between_steps_keeps_the_momentum():
    holder = _Holder([1.0, 2.0])
    opt = optim.SGD(holder.parameters(), lr=0.1, momentum=0.9)
    holder.w.grad = fg.tensor(np.array([1.0, -1.0], np.float32))
    opt.step()
    after_first = holder.w.numpy().astype(np.float64)
    holder.double()
    assert holder.w.dtype == np.float64
    holder.w.grad = fg.tensor(np.array([0.5, 0.25]))
    opt.step()
    expected = after_first - 0.1 * (0.9 * np.array([1.0, -1.0]) + np.array([0.5, 0.25]))
    assert holder.w.dtype == np.float64
    np.testing.assert_allclose(holder.w.numpy(), expected, rtol=1e-7)
    assert opt.state[holder.w]["momentum_buffer"].dtype == np.float64
    _assert_packed([holder.w])


def test_assigning_param_data_repacks_before_the_next_step():
    p = _param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.5)
    p.data = fg.tensor(np.array([10.0, 20.0]))
    p.grad = fg.tensor(np.array([1.0, 1.0]))
    opt.step()
    np.testing.assert_allclose(p.numpy(), [9.5, 19.5])
    _assert_packed([p])


# ------------------------------------------------------------------------------- state_dict
def _train(model, opt, steps, seed=0):
    for step in range(steps):
        opt.zero_grad()
        _loss(model, seed=seed + step).backward()
        opt.step()


def test_state_dict_round_trip_continues_identically():
    options = dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)
    model = _model()
    opt = optim.SGD(model.parameters(), **options)
    _train(model, opt, 3)
    saved = opt.state_dict()

    clone = _model(seed=99)
    clone.load_state_dict(model.state_dict())
    fresh = optim.SGD(clone.parameters(), lr=1.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.05 and fresh.param_groups[0]["momentum"] == 0.9
    _train(model, opt, 3, seed=10)
    _train(clone, fresh, 3, seed=10)
    for p, q in zip(model.parameters(), clone.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # the saved state was a copy: later steps did not change it
    buffers = [fresh.state[p]["momentum_buffer"].numpy() for p in clone.parameters()]
    assert not any(np.array_equal(s["momentum_buffer"].numpy(), b)
                   for s, b in zip(saved["state"].values(), buffers))


def test_state_dict_layout_as_pytorch():
    model = _model()
    params = list(model.parameters())
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.01}], lr=0.1,
                    momentum=0.9)
    _train(model, opt, 2)
    state = opt.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert list(state["state"]) == [0, 1, 2, 3]
    for index, p in enumerate(params):
        assert set(state["state"][index]) == {"momentum_buffer"}
        buffer = state["state"][index]["momentum_buffer"]
        assert buffer.shape == p.shape
        np.testing.assert_array_equal(buffer.numpy(), opt.state[p]["momentum_buffer"].numpy())
        assert not np.shares_memory(buffer.numpy(), opt.state[p]["momentum_buffer"].numpy())
    groups = state["param_groups"]
    assert [g["params"] for g in groups] == [[0, 1], [2, 3]]
    for group, lr in zip(groups, (0.1, 0.01)):
        assert {k: group[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov",
                                      "maximize")} == dict(lr=lr, momentum=0.9, dampening=0.0,
                                                           weight_decay=0.0, nesterov=False,
                                                           maximize=False)


def test_load_state_dict_rejects_a_different_layout():
    opt = optim.SGD([_param(P0), _param(P0)], lr=0.1)
    other = optim.SGD([_param(P0)], lr=0.1)
    with pytest.raises(ValueError, match="1 parameters.*2"):
        opt.load_state_dict(other.state_dict())


def test_step_with_closure():
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    before = [p.numpy().copy() for p in model.parameters()]
    loss = opt.step(closure)
    assert calls == [1]
    assert loss.item() == pytest.approx(_loss(_model()).item())
    for p, b in zip(model.parameters(), before):
        np.testing.assert_allclose(p.numpy(), b - 0.1 * p.grad.numpy(), rtol=1e-6)
    assert opt.step() is None


# --------------------------------------------------------------------------- against PyTorch
def _sgd_combinations():
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
            (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.01), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield dict(momentum=momentum, dampening=dampening, nesterov=nesterov,
                   weight_decay=weight_decay, maximize=maximize)


def _torch_pair(torch, seed=0):
    ours = nn.Sequential(nn.Linear(4, 8, dtype=np.float64), nn.ReLU(),
                         nn.Linear(8, 3, dtype=np.float64))
    fg.manual_seed(seed)
    ours[0].reset_parameters()
    ours[2].reset_parameters()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3)).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("options", list(_sgd_combinations()),
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_matches_pytorch_over_five_steps(options):
    torch = pytest.importorskip("torch")
    ours, theirs = _torch_pair(torch)
    opt = optim.SGD([{"params": list(ours.parameters())[:2]},
                     {"params": list(ours.parameters())[2:], "lr": 0.02}], lr=0.1, **options)
    topt = torch.optim.SGD([{"params": list(theirs.parameters())[:2]},
                            {"params": list(theirs.parameters())[2:], "lr": 0.02}], lr=0.1,
                           **options)
    rng = np.random.default_rng(7)
    for _ in range(5):
        x = rng.standard_normal((6, 4))
        target = rng.integers(0, 3, 6)
        opt.zero_grad()
        nn.CrossEntropyLoss()(ours(fg.tensor(x)), fg.tensor(target)).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)),
                                    torch.from_numpy(target)).backward()
        topt.step()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    ours_state, theirs_state = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in ours_state["param_groups"]] == \
        [g["params"] for g in theirs_state["param_groups"]]
    assert set(ours_state["param_groups"][0]) <= set(theirs_state["param_groups"][0])
    if options["momentum"]:
        assert list(ours_state["state"]) == list(theirs_state["state"])
        for index, values in theirs_state["state"].items():
            np.testing.assert_allclose(ours_state["state"][index]["momentum_buffer"].numpy(),
                                       values["momentum_buffer"].numpy(), rtol=1e-10,
                                       atol=1e-12)
