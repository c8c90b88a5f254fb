"""Captured steps (fastgrad.graphs): a replay gives bit-identical results to eager execution,
and every change a replay cannot follow makes the call run eagerly (or capture again)."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.graphs import GraphedCallable, make_graphed_callables
from fastgrad.models import plain_cnn, resnet

F32 = np.float32


def _mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.2),
                         nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[-1])


def _batches(shape, classes, count=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(fg.tensor(rng.standard_normal(shape).astype(F32)),
             fg.tensor(rng.integers(0, classes, shape[0 if len(shape) != 3 else 1])))
            for _ in range(count)]


def _train(build, batches, graphed, steps=100, optimizer=None, clip=1.0, loss=None):
    """Train a fresh ``build()`` for ``steps`` steps, eagerly or through a captured step;
    returns the state_dict's arrays (and the default generator's state), the losses and the
    callable."""
    fg.manual_seed(3)
    model = build()
    criterion = loss or nn.CrossEntropyLoss()

    def loss_of(x, y):
        return criterion(model(x), y)

    step = make_graphed_callables(loss_of) if graphed else loss_of
    opt = (optimizer or (lambda p: fg.optim.Adam(p, lr=1e-2)))(model.parameters())
    losses = []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        value = step(x, y)
        value.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(value.item())
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state["rng"] = np.array(fg.random.default_generator.numpy.random())  # its next draw
    return state, losses, step


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("name", ["mlp", "resnet", "plain_cnn", "lstm"])
def test_replay_is_bit_identical_to_eager_over_100_steps(name):
    if name == "mlp":
        build, batches = _mlp, _batches((16, 8), 4)
    elif name == "lstm":
        build = _Recurrent
        batches = [(x, y[:4]) for x, y in _batches((6, 4, 4), 3)]
    else:
        build = (lambda: resnet(8)) if name == "resnet" else (lambda: plain_cnn(8))
        batches = _batches((4, 1, 8, 8), 10)
    steps = 100 if name == "mlp" else 25
    optimizer = None if name != "resnet" else (
        lambda p: fg.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4))
    eager, eager_losses, _ = _train(build, batches, False, steps, optimizer)
    replayed, losses, step = _train(build, batches, True, steps, optimizer)
    assert step.stats["captures"] == 1 and step.stats["replays"] == steps - 1, step.reasons
    _assert_identical(eager, replayed)
    assert losses == eager_losses  # and the generator moved alike (dropout draws in ops)


def test_dropout_draws_fresh_masks_on_each_replay():
    layer = nn.Dropout(0.5)
    step = make_graphed_callables(lambda x: layer(x) * 1.0)
    x = fg.ones(64, requires_grad=True)
    masks = [step(x).detach().numpy().copy() for _ in range(3)]
    assert step.stats["replays"] == 2
    assert not np.array_equal(masks[1], masks[2])


def test_a_module_comes_back_with_its_forward_replayed():
    fg.manual_seed(0)
    model = _mlp()
    keys = list(model.state_dict())
    assert make_graphed_callables(model) is model
    assert isinstance(model.forward, GraphedCallable)
    assert list(model.state_dict()) == keys
    x = fg.randn(16, 8)
    for _ in range(3):
        model(x).sum().backward()
    assert model.forward.stats["replays"] == 2
    first, second = make_graphed_callables((_mlp(), lambda x: x * 2))
    assert isinstance(first, nn.Module) and isinstance(second, GraphedCallable)


def test_sample_args_are_checked():
    with pytest.raises(TypeError, match="sample_args\\[0\\]"):
        make_graphed_callables(_mlp(), [fg.ones(2)])
    with pytest.raises(ValueError, match="2 entries for 1"):
        make_graphed_callables((_mlp(),), ((fg.ones(2),), (fg.ones(2),)))
    with pytest.raises(TypeError, match="callables or Modules"):
        make_graphed_callables(3)


def _graphed_mlp():
    fg.manual_seed(0)
    model = _mlp()
    return model, make_graphed_callables(lambda x: model(x).sum())


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def test_a_new_shape_is_captured_on_its_own_and_the_old_one_still_replays():
    model, step = _graphed_mlp()
    for rows in (16, 16, 5, 16, 5):
        step(fg.randn(rows, 8)).backward()
    assert step.stats == {"captures": 2, "replays": 3}


def test_freezing_a_layer_changes_what_is_differentiated():
    model, step = _graphed_mlp()
    x = fg.randn(16, 8)
    step(x).backward()
    step(x).backward()
    model.zero_grad()
    model[0].weight.requires_grad_(False)
    step(x).backward()
    assert model[0].weight.grad is None and model[4].weight.grad is not None
    assert step.stats["captures"] == 2


def test_eval_mode_hooks_and_replaced_modules_are_followed():
    model, step = _graphed_mlp()
    x = fg.randn(16, 8)
    step(x).backward()
    model.eval()
    with fg.no_grad():
        expected = model(x).sum().item()
    assert step(x).item() == expected  # evaluation mode: running statistics, no dropout
    model.train()
    seen = []
    handle = model[2].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    step(x).backward()
    assert seen == [(16, 16)] and "hooks ran" in next(iter(step.reasons.values()))
    step(x).backward()
    assert seen == [(16, 16)] * 2 and step.stats["replays"] == 0
    handle.remove()
    step(x).backward()   # without the hook (a module change): captured again, then replayed
    step(x).backward()
    assert step.stats["replays"] == 1 and not step.reasons
    model[6] = nn.Linear(16, 4)  # a replaced layer: the replay must use the new one
    step(x).backward()
    step(x).backward()
    assert model[6].weight.grad is not None and step.stats["replays"] == 2


def test_data_dependent_control_flow_runs_eagerly():
    layer = nn.Linear(4, 4)

    def branchy(x):
        y = layer(x)
        return y.sum() if y.sum().item() > 0 else (-y).sum()

    step = make_graphed_callables(branchy)
    for sign in (1, -1, 1):
        x = fg.ones(2, 4) * sign
        out = step(x)
        assert out.item() == pytest.approx(branchy(x).item())
    assert step.stats["replays"] == 0 and "item()" in next(iter(step.reasons.values()))


def test_tensors_made_inside_the_call_are_not_replayed_stale():
    layer = nn.Linear(4, 4)

    def noisy(x):
        return (layer(x) + fg.randn(2, 4)).sum()

    def made(x):
        return (layer(x) * fg.full((2, 4), x.shape[0])).sum()

    step = make_graphed_callables(noisy)
    for _ in range(3):
        step(fg.ones(2, 4))
    assert step.stats["replays"] == 0 and "random" in next(iter(step.reasons.values()))
    step = make_graphed_callables(made)
    values = [step(fg.ones(2, 4)).item() for _ in range(4)]
    assert values == [made(fg.ones(2, 4)).item()] * 4
    assert step.stats["replays"] == 0
    assert "made during the call outside the ops" in next(iter(step.reasons.values()))


def test_two_forwards_before_one_backward_are_correct():
    model, step = _graphed_mlp()
    x1, x2 = fg.randn(16, 8), fg.randn(16, 8)
    step(x1).backward()   # capture
    model.zero_grad()
    fg.manual_seed(1)
    (step(x1) + step(x2)).backward()  # the second call cannot reuse the first's ops
    replayed = _grads(model)
    assert step.stats["eager"] == 1
    model.zero_grad()
    fg.manual_seed(1)
    (model(x1).sum() + model(x2).sum()).backward()
    for a, b in zip(replayed, _grads(model)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_autograd_grad_and_retained_graphs_through_a_replay():
    fg.manual_seed(0)
    layer = nn.Linear(3, 2)
    step = make_graphed_callables(lambda x: (layer(x) ** 2).sum())
    x = fg.randn(4, 3, requires_grad=True)
    step(x)  # capture
    out = step(x)
    gx, gw = fg.autograd.grad(out, [x, layer.weight], retain_graph=True)
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), gx.numpy())
    reference = (layer(x) ** 2).sum()
    rx, rw = fg.autograd.grad(reference, [x, layer.weight])
    np.testing.assert_array_equal(gx.numpy(), rx.numpy())
    np.testing.assert_array_equal(gw.numpy(), rw.numpy())
    assert step.stats["replays"] == 1


def test_the_backward_frees_what_the_replay_saved_as_eager_backward_does():
    """After a replay's backward (without retain_graph) the recorded ops hold nothing of that
    step: its activations are freed, so the next step reuses their memory (a captured LSTM
    step's peak memory was one step's activations above the eager step's); a second backward
    is the usual error, and the next replay is as correct as the first."""
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    step = make_graphed_callables(lambda x: (model(x) ** 2).sum())
    x = fg.randn(4, 3, requires_grad=True)
    step(x).backward()  # the capture
    x.grad = None
    out = step(x)
    trace = next(iter(step._traces.values()))
    assert trace.values is not None
    out.backward()
    assert trace.values is None
    # each op keeps which inputs need a gradient and its bound kernels, no array
    kept = [vars(op[0]) for op in trace.program]
    assert all(set(attributes) <= {"needs_input_grad", "bound_kernels"} for attributes in kept)
    assert "bound_kernels" in kept[0]  # the Linear's, bound at the first replay
    with pytest.raises(RuntimeError, match="second time"):
        out.backward()
    first = x.grad.numpy().copy()
    x.grad = None
    step(x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), first)
    assert step.stats["replays"] == 2


def test_another_kernel_table_means_a_new_capture():
    """The replayed ops' kernels are bound to the backend of the capture: after
    ``backends.use`` the next call captures again, on the kernels now in force."""
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    step = make_graphed_callables(lambda x: (model(x) ** 2).sum())
    x = fg.randn(4, 3)
    for _ in range(3):
        step(x).backward()
    assert step.stats == {"captures": 1, "replays": 2}
    with fg.backends.use("numpy"):
        model.zero_grad()
        step(x).backward()
        replayed = [p.grad.numpy().copy() for p in model.parameters()]
        model.zero_grad()
        (model(x) ** 2).sum().backward()
        for p, grad in zip(model.parameters(), replayed):
            np.testing.assert_array_equal(p.grad.numpy(), grad)
    assert step.stats["captures"] == 2


def test_outputs_keep_their_requires_grad_and_no_grad_runs_eagerly():
    layer = nn.Linear(3, 2)
    step = make_graphed_callables(lambda x: (layer(x), layer(x).detach() * 2))
    x = fg.randn(4, 3)
    for _ in range(2):
        values, doubled = step(x)
    assert values.requires_grad and not doubled.requires_grad
    assert step.stats["replays"] == 1
    with fg.no_grad():
        assert not step(x)[0].requires_grad
    assert step.stats["eager"] == 1


def test_a_bad_target_is_an_error_in_a_replay_too():
    layer = nn.Linear(3, 4)
    step = make_graphed_callables(lambda x, y: nn.functional.cross_entropy(layer(x), y))
    x = fg.randn(2, 3)
    step(x, fg.tensor([0, 1]))
    step(x, fg.tensor([2, 3]))
    with pytest.raises(IndexError, match="out of bounds"):
        step(x, fg.tensor([0, 4]))
    assert step.stats["replays"] == 2


def test_ignored_targets_are_counted_per_batch():
    fg.manual_seed(0)
    layer = nn.Linear(3, 4)
    step = make_graphed_callables(
        lambda x, y: nn.functional.cross_entropy(layer(x), y, ignore_index=-1))
    x = fg.randn(4, 3)
    for target in ([0, 1, 2, 3], [0, -1, -1, 3], [-1, 1, -1, -1]):
        y = fg.tensor(target)
        assert step(x, y).item() == nn.functional.cross_entropy(layer(x), y,
                                                                ignore_index=-1).item()
    assert step.stats["replays"] == 2


def test_in_place_writes_of_op_results_are_replayed():
    layer = nn.Linear(3, 3)

    def clamped(x):
        y = layer(x)
        with fg.no_grad():
            z = layer(x)
            z.clamp_(min=0)   # an op's result written into z: repeated by the replay
        return (y * z).sum()

    step = make_graphed_callables(clamped)
    for seed in range(3):
        fg.manual_seed(seed)
        x = fg.randn(2, 3)
        assert step(x).item() == clamped(x).item()
    assert step.stats["replays"] == 2


def test_backward_inside_the_callable_runs_eagerly():
    layer = nn.Linear(2, 2)

    def whole_step(x):
        loss = layer(x).sum()
        loss.backward()
        return loss

    step = make_graphed_callables(whole_step)
    for _ in range(3):
        step(fg.ones(1, 2))
    assert step.stats["replays"] == 0
    np.testing.assert_allclose(layer.bias.grad.numpy(), [3, 3])
