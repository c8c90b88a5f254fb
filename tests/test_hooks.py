"""Tensor and Module hooks: PyTorch's semantics, checked by hand and against PyTorch."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import autograd, nn, optim
from fastgrad.tensor import Tensor


def _array(value):
    """A fastgrad or torch tensor as a NumPy array (a copy)."""
    return value.detach().numpy().copy()


def _leaf(rng, *shape, dtype=np.float64):
    return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


# ------------------------------------------------------------------------------- tensor hooks
def test_leaf_hook_sees_the_summed_gradient_once_and_its_result_accumulates(rng):
    x = _leaf(rng, 3)
    seen = []

    def hook(grad):
        seen.append(grad.numpy().copy())
        return grad * 10

    x.register_hook(hook)
    (x * x + x * 3).sum().backward()
    expected = 2 * x.numpy() + 3
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected)
    np.testing.assert_allclose(x.grad.numpy(), 10 * expected)


def test_non_leaf_hook_replacement_flows_to_earlier_nodes(rng):
    x = _leaf(rng, 4)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    y.register_hook(lambda g: g * 0 + 1)  # chained: sees what the first returned (None: same)
    (y * y).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * y.numpy())
    np.testing.assert_allclose(x.grad.numpy(), np.full(4, 2.0))


def test_hooks_run_in_registration_order_each_seeing_the_previous_result(rng):
    x = _leaf(rng, 2)
    order = []
    x.register_hook(lambda g: order.append(("a", g.numpy().copy())) or g + 1)
    x.register_hook(lambda g: order.append(("b", g.numpy().copy())))
    x.sum().backward()
    assert [name for name, _ in order] == ["a", "b"]
    np.testing.assert_allclose(order[1][1], np.full(2, 2.0))
    np.testing.assert_allclose(x.grad.numpy(), np.full(2, 2.0))


def test_removed_hook_is_not_called_and_handle_works_as_context_manager(rng):
    x = _leaf(rng, 2)
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    handle.remove()
    handle.remove()  # twice is harmless
    with x.register_hook(lambda g: calls.append(2)):
        x.sum().backward()
    x.sum().backward()
    assert calls == [2]


def test_non_leaf_hook_survives_the_python_tensor(rng):
    x = _leaf(rng, 3)
    calls = []
    y = x * 3
    y.register_hook(lambda g: calls.append(g.numpy().copy()))
    z = y.sum()
    del y
    z.backward()
    assert len(calls) == 1


def test_hook_runs_for_each_backward_of_a_retained_graph(rng):
    x = _leaf(rng, 2)
    y = x * 2
    calls = []
    y.register_hook(lambda g: calls.append(1))
    z = y.sum()
    z.backward(retain_graph=True)
    z.backward()
    assert calls == [1, 1]
    np.testing.assert_allclose(x.grad.numpy(), np.full(2, 4.0))


def test_hooks_apply_to_the_inputs_of_autograd_grad(rng):
    x = _leaf(rng, 3)
    y = x * 2
    y.register_hook(lambda g: g * 3)
    x.register_hook(lambda g: g + 1)
    gy, gx = autograd.grad((y * y).sum(), [y, x])
    np.testing.assert_allclose(gy.numpy(), 3 * 2 * y.numpy())
    np.testing.assert_allclose(gx.numpy(), 2 * 3 * 2 * y.numpy() + 1)
    assert x.grad is None


def test_parameter_hook_replaces_the_gradient_in_its_arena_slot(rng):
    layer = nn.Linear(3, 2)
    optimizer = optim.SGD(layer.parameters(), lr=0.1)
    layer.weight.register_hook(lambda g: g * 0)
    layer(Tensor(rng.standard_normal((4, 3)).astype(np.float32))).sum().backward()
    (_, arena), = optimizer.arenas()
    assert layer.weight.grad.numpy().shape == (2, 3) and not layer.weight.grad.numpy().any()
    assert not arena.grad[:6].any() and arena.grad[6:].all()


@pytest.mark.parametrize("result, error, message", [
    (lambda g: g.reshape(1, 3), RuntimeError, "changed the size"),
    (lambda g: g.to(fg.float32), RuntimeError, "changed the type"),
    (lambda g: 1.0, TypeError, "must return a Tensor or None"),
])
def test_bad_hook_results_raise(rng, result, error, message):
    x = _leaf(rng, 3)
    x.register_hook(result)
    with pytest.raises(error, match=message):
        x.sum().backward()


def test_register_hook_refuses_tensors_without_grad_and_non_callables(rng):
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        fg.ones(2).register_hook(lambda g: None)
    with pytest.raises(TypeError, match="callable"):
        _leaf(rng, 2).register_hook(3)


def test_tensor_hooks_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 2))
    results = []
    for lib, make in ((fg, lambda v: Tensor(v.copy(), requires_grad=True)),
                      (torch, lambda v: torch.tensor(v, requires_grad=True))):
        x, weight = make(a), make(w)
        h = (x @ weight).tanh()
        seen = []
        h.register_hook(lambda g, seen=seen: seen.append(_array(g)) or g * 2)
        x.register_hook(lambda g, seen=seen: seen.append(_array(g)))
        ((h * h).sum() + h.sum()).backward()
        results.append((seen, _array(x.grad), _array(weight.grad)))
    (ours_seen, ours_x, ours_w), (ref_seen, ref_x, ref_w) = results
    for ours, ref in zip(ours_seen + [ours_x, ours_w], ref_seen + [ref_x, ref_w]):
        np.testing.assert_allclose(ours, ref, rtol=1e-12)


# ------------------------------------------------------------------------------- module hooks
def test_forward_pre_hook_and_forward_hook_can_replace_input_and_output(rng):
    layer = nn.Linear(3, 2).double()
    x = Tensor(rng.standard_normal((4, 3)))
    expected = layer(x * 2).numpy() + 1
    layer.register_forward_pre_hook(lambda module, args: args[0] * 2)
    seen = []
    layer.register_forward_hook(lambda module, args, out: seen.append(args) or out + 1)
    np.testing.assert_allclose(layer(x).numpy(), expected)
    np.testing.assert_allclose(seen[0][0].numpy(), 2 * x.numpy())


def test_forward_hooks_with_kwargs_and_prepend():
    layer = nn.Identity()
    order = []
    layer.register_forward_hook(lambda m, a, o: order.append("second"))
    layer.register_forward_hook(lambda m, a, o: order.append("first"), prepend=True)
    layer.register_forward_hook(lambda m, a, kw, o: order.append(("kw", kw)), with_kwargs=True)
    layer.register_forward_pre_hook(lambda m, a, kw: (a, {}), with_kwargs=True)
    layer(fg.ones(1))
    assert order == ["first", "second", ("kw", {})]
    with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
        layer.register_forward_pre_hook(lambda m, a, kw: 3, with_kwargs=True)
        layer(fg.ones(1))


def test_removing_module_hooks_restores_plain_calls():
    layer = nn.Identity()
    calls = []
    handles = [layer.register_forward_hook(lambda m, a, o: calls.append(1)),
               layer.register_forward_pre_hook(lambda m, a, kw: calls.append(2),
                                               with_kwargs=True),
               layer.register_full_backward_hook(lambda m, gi, go: calls.append(3))]
    for handle in handles:
        handle.remove()
    layer(fg.ones(1, requires_grad=True)).sum().backward()
    assert calls == [] and not layer._has_hooks() and not layer._forward_hooks_with_kwargs


def _events(lib, model, x):
    """Forward and backward hook events of every module of ``model`` (fastgrad or torch)."""
    events = []
    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, a, o, name=name: events.append(("fwd", name)))
        module.register_full_backward_hook(
            lambda m, gi, go, name=name: events.append(
                ("bwd", name, [None if g is None else _array(g) for g in gi],
                 [None if g is None else _array(g) for g in go])))
    model(x).sum().backward()
    return events


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_full_backward_hooks_match_pytorch_event_order_and_values(rng):
    torch = pytest.importorskip("torch")
    fg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((5, 3))
    mine = _events(fg, ours, Tensor(x.copy()))
    ref = _events(torch, theirs, torch.tensor(x))
    assert [e[:2] for e in mine] == [e[:2] for e in ref]
    for a, b in zip(mine, ref):
        if a[0] == "bwd":
            for ours_grads, ref_grads in zip(a[2:], b[2:]):
                assert [g is None for g in ours_grads] == [g is None for g in ref_grads]
                for g, r in zip(ours_grads, ref_grads):
                    if g is not None:
                        np.testing.assert_allclose(g, r, rtol=1e-12)


def test_full_backward_hook_replacement_reaches_earlier_layers(rng):
    torch = pytest.importorskip("torch")
    fg.manual_seed(1)
    ours = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(),
                                 torch.nn.Linear(4, 1)).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((6, 3))
    for model, inp in ((ours, Tensor(x.copy())), (theirs, torch.tensor(x))):
        model[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 3,))
        model[1].register_full_backward_pre_hook(lambda m, go: (go[0] * 2,))
        model(inp).sum().backward()
    np.testing.assert_allclose(ours[0].weight.grad.numpy(),
                               theirs[0].weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours[2].weight.grad.numpy(),
                               theirs[2].weight.grad.numpy(), rtol=1e-12)


def test_backward_hook_of_a_first_layer_gets_none_inputs_and_must_return_none(rng):
    layer = nn.Linear(3, 2)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    layer(x).sum().backward()
    assert seen == [((None,), (4, 2))]
    layer.register_full_backward_hook(lambda m, gi, go: (fg.ones(4, 3),))
    with pytest.raises(RuntimeError, match="no input requires gradient"):
        layer(x).sum().backward()


def test_backward_hook_of_a_recurrent_layer_sees_top_level_outputs(rng):
    rnn = nn.RNN(2, 3)
    seen = []
    rnn.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    x = Tensor(rng.standard_normal((5, 4, 2)).astype(np.float32), requires_grad=True)
    output, h_n = rnn(x)
    output.sum().backward()
    (grad_input,), grad_output = seen[0][0], seen[0][1]
    assert grad_input.shape == (5, 4, 2)
    np.testing.assert_allclose(grad_input.numpy(), x.grad.numpy())
    assert grad_output[0].shape == (5, 4, 3) and grad_output[1] is None


def test_no_backward_hook_machinery_without_grad(rng):
    layer = nn.Linear(2, 2)
    layer.register_full_backward_hook(lambda m, gi, go: None)
    with fg.no_grad():
        out = layer(fg.ones(1, 2))
    assert out.grad_fn is None


@pytest.mark.parametrize("hooked", [0, 1])
def test_sequential_runs_a_hooked_linear_activation_pair_unfused(rng, monkeypatch, hooked):
    fg.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    fused = model(x).numpy()
    calls = []
    original = nn.ReLU.forward
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, v: calls.append(1) or original(self, v))
    model(x)
    assert calls == []  # fused: the ReLU module is not called
    seen = []
    handle = model[hooked].register_forward_hook(lambda m, a, o: seen.append(o.numpy().copy()))
    np.testing.assert_array_equal(model(x).numpy(), fused)
    assert calls == [1] and len(seen) == 1
    assert (seen[0] >= 0).all() if hooked else (seen[0] < 0).any()
    handle.remove()
    model(x)
    assert calls == [1]
