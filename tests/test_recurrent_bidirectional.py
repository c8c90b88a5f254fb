"""``bidirectional=True`` on RNN, LSTM and GRU: PyTorch's parameter names and shapes, each
layer equal to a forward layer plus a forward layer over the time-reversed sequence
(concatenated, final states in PyTorch's order), gradchecks, PyTorch parity of outputs, final
states and every gradient (skipped without torch), dropout between layers, errors, and the
gradient monitor on such layers."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.autograd import gradcheck
from fastgrad.diagnostics import GradientMonitor
from fastgrad.nn.recurrent import GRU, LSTM, RNN

FLOATS = (np.float32, np.float64)
KINDS = ("lstm", "rnn-tanh", "rnn-relu", "gru")


def _t(array, requires_grad=False):
    return fg.tensor(np.ascontiguousarray(array), requires_grad=requires_grad)


def _make(kind, input_size, hidden, **options):
    if kind == "lstm":
        return LSTM(input_size, hidden, **options)
    if kind == "gru":
        return GRU(input_size, hidden, **options)
    return RNN(input_size, hidden, nonlinearity=kind[4:], **options)


def _torch_make(torch, kind, input_size, hidden, **options):
    if kind == "lstm":
        return torch.nn.LSTM(input_size, hidden, **options)
    if kind == "gru":
        return torch.nn.GRU(input_size, hidden, **options)
    return torch.nn.RNN(input_size, hidden, nonlinearity=kind[4:], **options)


def _count(kind):
    return 2 if kind == "lstm" else 1


def _call(module, x, states):
    """The module's outputs as a flat tuple: (output, h_n) or (output, h_n, c_n)."""
    if isinstance(module, LSTM):
        output, (h_n, c_n) = module(x, states if states else None)
        return output, h_n, c_n
    return module(x, states[0] if states else None)


def _set_weights(module, rng, bound=0.8):
    """Weights larger than the default: gates away from their linear region."""
    with fg.no_grad():
        for param in module.parameters():
            param.copy_(rng.uniform(-bound, bound, param.shape).astype(param.dtype))


def _composed(kind, module, x, states):
    """A bidirectional ``module`` on time-major ``x`` rebuilt from one-direction, one-layer
    modules of its kind: each reverse direction is a forward layer over the time-reversed
    input, its output flipped back. Returns NumPy (output, h_n[, c_n])."""
    finals = [[] for _ in states]
    weights = module.state_dict()
    for layer in range(module.num_layers):
        outputs = []
        for direction, suffix in enumerate(("", "_reverse")):
            tail = f"_l{layer}{suffix}"
            single = _make(kind, x.shape[2], module.hidden_size, bias=module.bias,
                           dtype=np.float64)
            single.load_state_dict({k[:-len(tail)] + "_l0": v for k, v in weights.items()
                                    if k.endswith(tail)})
            index = 2 * layer + direction
            result = _call(single, _t(x if direction == 0 else x[::-1]),
                           tuple(_t(s[index:index + 1]) for s in states))
            output = result[0].numpy()
            outputs.append(output if direction == 0 else output[::-1])
            for final, state in zip(finals, result[1:]):
                final.append(state.numpy()[0])
        x = np.concatenate(outputs, axis=2)
    return (x,) + tuple(np.stack(final) for final in finals)


# ------------------------------------------------------------------------------- structure
def test_parameter_names_and_shapes_are_pytorchs():
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True)
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    expected = []
    for layer, width in ((0, 3), (1, 10)):
        for suffix in ("", "_reverse"):
            shapes = [(20, width), (20, 5), (20,), (20,)]
            expected += [(f"{n}_l{layer}{suffix}", s) for n, s in zip(names, shapes)]
    assert [(k, v.shape) for k, v in lstm.state_dict().items()] == expected
    assert list(GRU(3, 5, bias=False, bidirectional=True).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"]
    assert RNN(3, 5, num_layers=2, bidirectional=True).weight_ih_l1_reverse.shape == (5, 10)
    assert repr(RNN(3, 5, bidirectional=True)) == "RNN(3, 5, bidirectional=True)"


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_keys_and_repr_match_pytorch(kind):
    torch = pytest.importorskip("torch")
    options = dict(num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)
    for bias in (True, False):
        ours = _make(kind, 3, 5, bias=bias, **options)
        theirs = _torch_make(torch, kind, 3, 5, bias=bias, **options)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [v.shape for v in ours.state_dict().values()] == \
            [tuple(v.shape) for v in theirs.state_dict().values()]
        assert repr(ours) == repr(theirs)


def test_initialisation_covers_the_reverse_weights_and_is_seeded():
    fg.manual_seed(3)
    first = GRU(3, 16, num_layers=2, bidirectional=True)
    fg.manual_seed(3)
    second = GRU(3, 16, num_layers=2, bidirectional=True)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        values = a.numpy()
        assert 0.2 < np.abs(values).max() <= 0.25, name
        np.testing.assert_array_equal(values, b.numpy(), err_msg=name)


# ------------------------------------------------------------------- forward + reversed
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers, batch_first, batched, initial, bias", [
    (1, False, True, True, True), (2, False, True, False, True), (2, True, True, True, False),
    (2, False, False, True, True)])
def test_layer_is_a_forward_and_a_reversed_layer(kind, num_layers, batch_first, batched,
                                                 initial, bias):
    rng = np.random.default_rng(4)
    module = _make(kind, 3, 4, num_layers=num_layers, bias=bias, batch_first=batch_first,
                   bidirectional=True, dtype=np.float64)
    _set_weights(module, rng)
    x = rng.standard_normal((6, 2, 3))
    states = tuple(rng.standard_normal((2 * num_layers, 2, 4)) if initial else
                   np.zeros((2 * num_layers, 2, 4)) for _ in range(_count(kind)))
    expected = _composed(kind, module, x, states)
    if not batched:
        x, states = x[:, 0], tuple(s[:, 0] for s in states)
        expected = tuple(e[:, 0] for e in expected)
    elif batch_first:
        x = x.transpose(1, 0, 2)
        expected = (expected[0].transpose(1, 0, 2),) + expected[1:]
    got = _call(module, _t(x), tuple(_t(s) for s in states) if initial else ())
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_final_states_are_in_pytorchs_order(kind):
    """h_n[2k] is layer k's forward last step, h_n[2k + 1] its reverse direction's state
    after step 0; the last layer's output holds both."""
    module = _make(kind, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    _set_weights(module, np.random.default_rng(5))
    output, h_n = _call(module, _t(np.random.default_rng(6).standard_normal((5, 2, 3))), ())[:2]
    assert output.shape == (5, 2, 8) and h_n.shape == (4, 2, 4)
    np.testing.assert_array_equal(h_n.numpy()[2], output.numpy()[-1, :, :4])
    np.testing.assert_array_equal(h_n.numpy()[3], output.numpy()[0, :, 4:])


# -------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers, batch_first, batched, initial", [
    (1, False, True, True), (2, True, True, False), (2, False, False, True)])
def test_gradcheck(kind, num_layers, batch_first, batched, initial):
    rng = np.random.default_rng(7)
    module = _make(kind, 2, 2, num_layers=num_layers, batch_first=batch_first,
                   bidirectional=True, dtype=np.float64)
    _set_weights(module, rng)
    shape = ((2, 3) if batch_first else (3, 2)) if batched else (3,)
    x = _t(rng.standard_normal(shape + (2,)), True)
    state_shape = (2 * num_layers, 2, 2) if batched else (2 * num_layers, 2)
    states = tuple(_t(rng.standard_normal(state_shape), True) for _ in range(_count(kind))) \
        if initial else ()
    params = tuple(module.parameters())

    def fn(x, *rest):
        return _call(module, x, rest[:len(states)])

    assert gradcheck(fn, (x,) + states + params)


# ------------------------------------------------------------------------------------ PyTorch
def _relative_error(ours, theirs):
    theirs = theirs.detach().numpy()
    return float(np.abs(ours.numpy() - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def _torch_outputs(module, x, states):
    if len(states) == 2:
        output, (h_n, c_n) = module(x, states)
        return output, h_n, c_n
    return module(x, states[0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("num_layers, batch_first, batched", [
    (1, False, True), (2, False, True), (2, True, True), (2, False, False)])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_pytorch(kind, num_layers, batch_first, batched, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(11)
    options = dict(num_layers=num_layers, batch_first=batch_first, bidirectional=True,
                   dropout=0.3 if num_layers > 1 else 0.0)
    theirs = _torch_make(torch, kind, 3, 5, **options).to(getattr(torch, np.dtype(dtype).name))
    ours = _make(kind, 3, 5, dtype=dtype, **options)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()  # dropout is random: compare in evaluation mode
    theirs.eval()
    rng = np.random.default_rng(11)
    shape = ((4, 7) if batch_first else (7, 4)) if batched else (7,)
    x = rng.standard_normal(shape + (3,)).astype(dtype)
    state_shape = (2 * num_layers, 4, 5) if batched else (2 * num_layers, 5)
    states = [rng.standard_normal(state_shape).astype(dtype) for _ in range(_count(kind))]
    our_x, our_states = _t(x, True), tuple(_t(s, True) for s in states)
    their_x = torch.tensor(x, requires_grad=True)
    their_states = tuple(torch.tensor(s, requires_grad=True) for s in states)
    our_out = _call(ours, our_x, our_states)
    their_out = _torch_outputs(theirs, their_x, their_states)
    seeds = [rng.standard_normal(o.shape).astype(dtype) for o in our_out]
    fg.autograd.backward(list(our_out), seeds)
    torch.autograd.backward(list(their_out), [torch.from_numpy(s) for s in seeds])
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    pairs = list(zip(our_out, their_out)) + [(our_x.grad, their_x.grad)] + \
        [(s.grad, t.grad) for s, t in zip(our_states, their_states)] + \
        [(getattr(ours, name).grad, p.grad) for name, p in theirs.named_parameters()]
    assert len(pairs) == len(our_out) + 1 + len(states) + len(list(theirs.parameters()))
    errors = [_relative_error(a, b) for a, b in pairs]
    assert max(errors) < tolerance, errors


# ------------------------------------------------------------------------------------ dropout
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_applies_between_layers_in_training_only(kind):
    x = _t(np.random.default_rng(14).standard_normal((6, 3, 2)).astype(np.float32))
    module = _make(kind, 2, 8, num_layers=2, dropout=0.5, bidirectional=True)
    plain = _make(kind, 2, 8, num_layers=2, bidirectional=True)
    plain.load_state_dict(module.state_dict())
    expected = plain(x)[0].numpy()
    module.eval()
    np.testing.assert_array_equal(module(x)[0].numpy(), expected)
    module.train()
    fg.manual_seed(1)
    first = module(x)[0].numpy()
    fg.manual_seed(1)
    np.testing.assert_array_equal(module(x)[0].numpy(), first)  # seeded
    assert not np.allclose(first, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_of_one_zeroes_both_directions_of_the_second_layers_input(kind):
    module = _make(kind, 2, 4, num_layers=2, dropout=1.0, bidirectional=True,
                   dtype=np.float64)
    second = _make(kind, 8, 4, bidirectional=True, dtype=np.float64)
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in module.state_dict().items()
                            if "_l1" in k})
    x = _t(np.random.default_rng(15).standard_normal((5, 3, 2)), True)
    output = module(x)[0]
    np.testing.assert_allclose(output.numpy(), second(fg.zeros(5, 3, 8, dtype=np.float64))[0]
                               .numpy(), rtol=1e-14)
    output.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("module, call, match", [
    (GRU(3, 4, bidirectional=True), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(1, 2, 4)),
     r"Expected hidden size \(2, 2, 4\), got \[1, 2, 4\]"),
    (RNN(3, 4, num_layers=2, bidirectional=True),
     lambda m: m(fg.zeros(5, 2, 3), fg.zeros(2, 2, 4)),
     r"Expected hidden size \(4, 2, 4\), got \[2, 2, 4\]"),
    (GRU(3, 4, bidirectional=True), lambda m: m(fg.zeros(5, 3), fg.zeros(1, 4)),
     r"Expected hidden size \(2, 4\), got \[1, 4\]"),
    (LSTM(3, 4, bidirectional=True),
     lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(2, 2, 4), fg.zeros(1, 2, 4))),
     r"Expected hidden\[1\] size \(2, 2, 4\), got \[1, 2, 4\]"),
    (LSTM(3, 4, num_layers=2, bidirectional=True), lambda m: m(fg.zeros(5, 2, 5)),
     r"input.size\(-1\) must be equal to input_size. Expected 3, got 5"),
])
def test_state_shape_errors(module, call, match):
    with pytest.raises(RuntimeError, match=match):
        call(module)


# ------------------------------------------------------------------- hooks and the monitor
def test_gradient_monitor_measures_both_directions():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(3, 4, batch_first=True, bidirectional=True)
            self.gru = GRU(8, 4, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            return self.head(self.gru(self.lstm(x)[0])[0].mean(1))

    fg.manual_seed(0)
    model = Net()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    calls = []
    model.gru.register_forward_hook(lambda m, args, out: calls.append(out[0].shape))
    x = fg.randn(5, 6, 3)
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    grads = {name: float(np.linalg.norm(p.grad.numpy())) for name, p in model.named_parameters()}
    optimizer.step()
    monitor.step()
    history = monitor.history()
    assert calls == [(5, 6, 8)]
    assert history["layers"] == ["lstm", "gru", "head"]
    assert "lstm.weight_hh_l0_reverse" in history["parameters"]
    assert "gru.bias_ih_l1_reverse" in history["parameters"]
    expected = [grads[name] for name in history["parameters"]]
    assert min(expected) > 0
    np.testing.assert_allclose(history["parameter_grad_norm"][0], expected, rtol=1e-5)
