"""Recurrent layers: the LSTM kernels against independent float64 formulas, gradchecks of every
cell and layer, PyTorch parity (skipped without torch), dropout, errors, 1,000-step BPTT with
linear memory, and an LSTM learning the adding problem."""
import time
import tracemalloc

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck
from fastgrad.backends import KERNELS
from fastgrad.nn.recurrent import LSTM, RNN, LSTMCell, RNNCell

FLOATS = (np.float32, np.float64)


def _tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def _sigmoid64(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # a formula independent of the kernel's


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


# ------------------------------------------------------------------------------ the kernels
def _gates(rng, n, hidden, dtype):
    gates = (3 * rng.standard_normal((n, 4 * hidden))).astype(dtype)
    # saturating pre-activations: exp(-z) overflows for these, the kernel must not
    big = 60 if dtype == np.float32 else 800
    gates[0, :4] = [big, -big, big, -big]
    return gates


def _lstm_fwd64(gates, c_prev):
    z = gates.astype(np.float64)
    i, f, g, o = np.split(z, 4, axis=1)
    i, f, g, o = _sigmoid64(i), _sigmoid64(f), np.tanh(g), _sigmoid64(o)
    c = f * c_prev.astype(np.float64) + i * g
    return np.concatenate([i, f, g, o], axis=1), o * np.tanh(c), c


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 5), (17, 8)])
def test_lstm_cell_fwd_matches_the_formula(n, hidden, dtype):
    rng = np.random.default_rng(n * 10 + hidden)
    gates = _gates(rng, n, hidden, dtype)
    c_prev = rng.standard_normal((n, hidden)).astype(dtype)
    gates_act, h, c = (np.full(s, np.nan, dtype) for s in (gates.shape, c_prev.shape,
                                                            c_prev.shape))
    KERNELS["lstm_cell_fwd"].reference(gates, c_prev, gates_act, h, c)
    expected = _lstm_fwd64(gates, c_prev)
    for got, want, what in zip((gates_act, h, c), expected, ("gates_act", "h", "c")):
        np.testing.assert_allclose(got, want, err_msg=what, **_tolerance(dtype))
    # column 1 is a sigmoid gate (i, or f when hidden == 1) at -big: the kernel keeps its
    # relative precision in the tail, sigmoid(z) = exp(z) / (1 + exp(z)) there
    tail = gates[0, 1].astype(np.float64)
    np.testing.assert_allclose(gates_act[0, 1], np.exp(tail) / (1 + np.exp(tail)), rtol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 5), (17, 8)])
@pytest.mark.parametrize("with_grad_c_prev", [True, False])
def test_lstm_cell_bwd_matches_the_chain_rule(n, hidden, dtype, with_grad_c_prev):
    rng = np.random.default_rng(n * 10 + hidden + 1)
    gates = (2 * rng.standard_normal((n, 4 * hidden))).astype(dtype)
    c_prev = rng.standard_normal((n, hidden)).astype(dtype)
    gates_act, h, c = np.empty_like(gates), np.empty_like(c_prev), np.empty_like(c_prev)
    KERNELS["lstm_cell_fwd"].reference(gates, c_prev, gates_act, h, c)
    grad_h = rng.standard_normal(c.shape).astype(dtype)
    grad_c = rng.standard_normal(c.shape).astype(dtype)
    grad_gates = np.full(gates.shape, np.nan, dtype)
    grad_c_prev = np.full(c.shape, np.nan, dtype) if with_grad_c_prev else None
    KERNELS["lstm_cell_bwd"].reference(grad_h, grad_c, c_prev, c, gates_act, grad_gates,
                                       grad_c_prev)
    # chain rule through the pre-activations, in float64, derivatives from z (not outputs)
    z = gates.astype(np.float64)
    zi, zf, zg, zo = np.split(z, 4, axis=1)
    i, f, g, o = _sigmoid64(zi), _sigmoid64(zf), np.tanh(zg), _sigmoid64(zo)
    c64 = f * c_prev + i * g
    dc = grad_c + grad_h * o / np.cosh(c64) ** 2
    expected = np.concatenate([dc * g * np.exp(-zi) * i * i,
                               dc * c_prev * np.exp(-zf) * f * f,
                               dc * i / np.cosh(zg) ** 2,
                               grad_h * np.tanh(c64) * np.exp(-zo) * o * o], axis=1)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else _tolerance(dtype)
    np.testing.assert_allclose(grad_gates, expected, **tolerance)
    if with_grad_c_prev:
        np.testing.assert_allclose(grad_c_prev, dc * f, **tolerance)


def test_lstm_cell_kernels_are_declared_with_their_outputs():
    assert KERNELS["lstm_cell_fwd"].writes == ("gates_act", "h", "c")
    assert KERNELS["lstm_cell_bwd"].writes == ("grad_gates", "grad_c_prev")


# ------------------------------------------------------------------------ modules: structure
def test_parameter_names_shapes_and_state_dict_keys_are_pytorchs():
    lstm = LSTM(3, 5, num_layers=2)
    assert [(k, v.shape) for k, v in lstm.state_dict().items()] == [
        ("weight_ih_l0", (20, 3)), ("weight_hh_l0", (20, 5)), ("bias_ih_l0", (20,)),
        ("bias_hh_l0", (20,)), ("weight_ih_l1", (20, 5)), ("weight_hh_l1", (20, 5)),
        ("bias_ih_l1", (20,)), ("bias_hh_l1", (20,))]
    assert list(RNN(3, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert [(k, v.shape) for k, v in LSTMCell(3, 5).state_dict().items()] == [
        ("weight_ih", (20, 3)), ("weight_hh", (20, 5)), ("bias_ih", (20,)), ("bias_hh", (20,))]
    assert [(k, v.shape) for k, v in RNNCell(3, 5, bias=False).state_dict().items()] == [
        ("weight_ih", (5, 3)), ("weight_hh", (5, 5))]


@pytest.mark.parametrize("make", [lambda: LSTM(3, 16, num_layers=2), lambda: RNN(3, 16),
                                  lambda: LSTMCell(3, 16), lambda: RNNCell(3, 16)])
def test_initialisation_is_uniform_within_one_over_sqrt_hidden_and_seeded(make):
    fg.manual_seed(7)
    first = make()
    fg.manual_seed(7)
    second = make()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        values = a.numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= 0.25, name
        assert np.abs(values).max() > 0.2 and values.std() > 0.1, name
        np.testing.assert_array_equal(values, b.numpy(), err_msg=name)


def test_state_dict_keys_and_repr_match_pytorch():
    torch = pytest.importorskip("torch")
    pairs = [(LSTM(3, 5, num_layers=2, batch_first=True, dropout=0.5),
              torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, dropout=0.5)),
             (RNN(3, 5, nonlinearity="relu", bias=False),
              torch.nn.RNN(3, 5, nonlinearity="relu", bias=False)),
             (LSTMCell(3, 5, bias=False), torch.nn.LSTMCell(3, 5, bias=False)),
             (RNNCell(3, 5, nonlinearity="relu"), torch.nn.RNNCell(3, 5, nonlinearity="relu"))]
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [v.shape for v in ours.state_dict().values()] == \
            [tuple(v.shape) for v in theirs.state_dict().values()]
        assert repr(ours) == repr(theirs)


# -------------------------------------------------------------------------------- gradcheck
def _module_inputs(rng, module, steps, batch, batch_first, batched, initial):
    """(x, states) as float64 Tensors requiring grad, in the module's layout."""
    size = module.input_size
    if not batched:
        x = rng.standard_normal((steps, size))
    elif batch_first:
        x = rng.standard_normal((batch, steps, size))
    else:
        x = rng.standard_normal((steps, batch, size))
    shape = (module.num_layers, batch, module.hidden_size) if batched else \
        (module.num_layers, module.hidden_size)
    count = 2 if isinstance(module, LSTM) else 1
    states = tuple(_t(rng.standard_normal(shape), True) for _ in range(count)) \
        if initial else ()
    return _t(x, True), states


def _run_layer(module, x, states):
    """The module's outputs as a flat tuple: (output, h_n) or (output, h_n, c_n)."""
    if isinstance(module, LSTM):
        output, (h_n, c_n) = module(x, states if states else None)
        return output, h_n, c_n
    return module(x, states[0] if states else None)


LAYER_CASES = [
    # kind, num_layers, batch_first, batched, initial, bias
    ("lstm", 1, False, True, False, True),
    ("lstm", 1, False, True, True, True),
    ("lstm", 2, False, True, True, True),
    ("lstm", 2, True, True, False, False),
    ("lstm", 1, False, False, True, True),
    ("lstm", 2, True, False, False, True),
    ("rnn-tanh", 1, False, True, False, True),
    ("rnn-tanh", 2, True, True, True, True),
    ("rnn-tanh", 1, False, False, True, False),
    ("rnn-relu", 1, False, True, True, True),
    ("rnn-relu", 2, False, True, False, True),
    ("rnn-relu", 2, True, False, True, True),
]


def _make_layer(kind, input_size, hidden, num_layers, batch_first, bias, dtype=np.float64):
    if kind == "lstm":
        return LSTM(input_size, hidden, num_layers=num_layers, bias=bias,
                    batch_first=batch_first, dtype=dtype)
    return RNN(input_size, hidden, num_layers=num_layers, nonlinearity=kind[4:], bias=bias,
               batch_first=batch_first, dtype=dtype)


@pytest.mark.parametrize("kind, num_layers, batch_first, batched, initial, bias", LAYER_CASES)
def test_layer_gradcheck(kind, num_layers, batch_first, batched, initial, bias):
    rng = np.random.default_rng(3)
    fg.manual_seed(3)
    module = _make_layer(kind, 2, 3, num_layers, batch_first, bias)
    with fg.no_grad():
        for param in module.parameters():  # larger weights: gates away from saturation
            param.copy_(rng.uniform(-0.8, 0.8, param.shape))
    x, states = _module_inputs(rng, module, 4, 2, batch_first, batched, initial)
    params = tuple(module.parameters())

    def fn(x, *rest):
        return _run_layer(module, x, rest[:len(states)])

    assert gradcheck(fn, (x,) + states + params)


CELL_CASES = [
    # kind, batched, initial, bias
    ("lstm", True, False, True), ("lstm", True, True, True), ("lstm", False, True, False),
    ("lstm", False, False, True), ("rnn-tanh", True, True, True), ("rnn-tanh", False, False, True),
    ("rnn-relu", True, True, False), ("rnn-relu", False, True, True),
]


def _make_cell(kind, input_size, hidden, bias=True, dtype=np.float64):
    if kind == "lstm":
        return LSTMCell(input_size, hidden, bias=bias, dtype=dtype)
    return RNNCell(input_size, hidden, bias=bias, nonlinearity=kind[4:], dtype=dtype)


def _run_cell(cell, x, states):
    if isinstance(cell, LSTMCell):
        return cell(x, states if states else None)
    return cell(x, states[0] if states else None)


@pytest.mark.parametrize("kind, batched, initial, bias", CELL_CASES)
def test_cell_gradcheck(kind, batched, initial, bias):
    rng = np.random.default_rng(5)
    fg.manual_seed(5)
    cell = _make_cell(kind, 3, 4, bias)
    shape = (2, 4) if batched else (4,)
    x = _t(rng.standard_normal((2, 3) if batched else (3,)), True)
    count = 2 if kind == "lstm" else 1
    states = tuple(_t(rng.standard_normal(shape), True) for _ in range(count)) \
        if initial else ()
    params = tuple(cell.parameters())

    def fn(x, *rest):
        return _run_cell(cell, x, rest[:len(states)])

    assert gradcheck(fn, (x,) + states + params)


# ------------------------------------------------------------------------ layout and states
@pytest.mark.parametrize("kind", ["lstm", "rnn-tanh"])
def test_batch_first_and_unbatched_agree_with_time_major(kind):
    rng = np.random.default_rng(9)
    fg.manual_seed(9)
    time_major = _make_layer(kind, 3, 4, 2, False, True)
    batch_first = _make_layer(kind, 3, 4, 2, True, True)
    batch_first.load_state_dict(time_major.state_dict())
    x = rng.standard_normal((5, 2, 3))
    expected = _run_layer(time_major, _t(x), ())
    got = _run_layer(batch_first, _t(x.transpose(1, 0, 2)), ())
    np.testing.assert_allclose(got[0].numpy(), expected[0].numpy().transpose(1, 0, 2),
                               rtol=1e-13)
    for a, b in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)
    unbatched = _run_layer(time_major, _t(x[:, 1]), ())
    assert unbatched[0].shape == (5, 4) and unbatched[1].shape == (2, 4)
    np.testing.assert_allclose(unbatched[0].numpy(), expected[0].numpy()[:, 1], rtol=1e-13)
    for a, b in zip(unbatched[1:], expected[1:]):
        np.testing.assert_allclose(a.numpy(), b.numpy()[:, 1], rtol=1e-13)


def test_final_states_are_each_layers_last_step():
    rng = np.random.default_rng(10)
    lstm = LSTM(3, 4, num_layers=2, dtype=np.float64)
    x = _t(rng.standard_normal((6, 2, 3)))
    output, (h_n, c_n) = lstm(x)
    assert output.shape == (6, 2, 4) and h_n.shape == c_n.shape == (2, 2, 4)
    np.testing.assert_array_equal(h_n.numpy()[1], output.numpy()[-1])
    first = LSTM(3, 4, dtype=np.float64)
    first.load_state_dict({k[:-1] + "0": v for k, v in lstm.state_dict().items()
                           if k.endswith("l0")})
    _, (first_h, first_c) = first(x)
    np.testing.assert_array_equal(h_n.numpy()[0], first_h.numpy()[0])
    np.testing.assert_array_equal(c_n.numpy()[0], first_c.numpy()[0])


def test_no_grad_records_nothing():
    lstm = LSTM(3, 4)
    with fg.no_grad():
        output, (h_n, c_n) = lstm(fg.randn(5, 2, 3))
    assert not output.requires_grad and output.grad_fn is None and h_n.grad_fn is None


# ------------------------------------------------------------------------------------ PyTorch
def _relative_error(ours, theirs):
    theirs = theirs.detach().numpy()
    return float(np.abs(ours.numpy() - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def _torch_layer(torch, kind, num_layers, batch_first, dtype):
    if kind == "lstm":
        module = torch.nn.LSTM(3, 5, num_layers=num_layers, batch_first=batch_first)
    else:
        module = torch.nn.RNN(3, 5, num_layers=num_layers, nonlinearity=kind[4:],
                              batch_first=batch_first)
    return module.to(getattr(torch, np.dtype(dtype).name))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "rnn-tanh", "rnn-relu"])
def test_layer_matches_pytorch(kind, num_layers, batch_first, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(11)
    theirs = _torch_layer(torch, kind, num_layers, batch_first, dtype)
    ours = _make_layer(kind, 3, 5, num_layers, batch_first, True, dtype)
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(11)
    x, states = _module_inputs(rng, ours, 7, 4, batch_first, True, True)
    x, states = _t(x.numpy().astype(dtype), True), \
        tuple(_t(s.numpy().astype(dtype), True) for s in states)
    their_x = torch.tensor(x.numpy(), requires_grad=True)
    their_states = tuple(torch.tensor(s.numpy(), requires_grad=True) for s in states)
    our_out = _run_layer(ours, x, states)
    if kind == "lstm":
        output, (h_n, c_n) = theirs(their_x, their_states)
        their_out = (output, h_n, c_n)
    else:
        their_out = theirs(their_x, their_states[0])
    seeds = [rng.standard_normal(o.shape).astype(dtype) for o in our_out]
    fg.autograd.backward(list(our_out), seeds)
    torch.autograd.backward(list(their_out), [torch.from_numpy(s) for s in seeds])
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    pairs = list(zip(our_out, their_out)) + [(x.grad, their_x.grad)] + \
        [(s.grad, t.grad) for s, t in zip(states, their_states)] + \
        [(getattr(ours, name).grad, p.grad) for name, p in theirs.named_parameters()]
    errors = [_relative_error(a, b) for a, b in pairs]
    assert max(errors) < tolerance, errors


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["lstm", "rnn-tanh", "rnn-relu"])
def test_cell_matches_pytorch_over_several_steps(kind, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(12)
    if kind == "lstm":
        theirs = torch.nn.LSTMCell(3, 5)
    else:
        theirs = torch.nn.RNNCell(3, 5, nonlinearity=kind[4:])
    theirs = theirs.to(getattr(torch, np.dtype(dtype).name))
    ours = _make_cell(kind, 3, 5, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(12)
    xs = rng.standard_normal((4, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((2, 5)).astype(dtype)
    our_x, our_h0 = _t(xs, True), _t(h0, True)
    their_x, their_h0 = torch.tensor(xs, requires_grad=True), torch.tensor(h0,
                                                                            requires_grad=True)
    our_state, their_state = our_h0, their_h0
    if kind == "lstm":
        our_state = (our_h0, fg.zeros(2, 5, dtype=dtype))
        their_state = (their_h0, torch.zeros(2, 5, dtype=their_h0.dtype))
    our_loss, their_loss = 0, 0
    for t in range(len(xs)):
        our_state = ours(our_x[t], our_state)
        their_state = theirs(their_x[t], their_state)
        our_h = our_state[0] if kind == "lstm" else our_state
        their_h = their_state[0] if kind == "lstm" else their_state
        our_loss = our_loss + (our_h * float(t + 1)).sum()
        their_loss = their_loss + (their_h * float(t + 1)).sum()
    our_loss.backward()
    their_loss.backward()
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    pairs = [(our_x.grad, their_x.grad), (our_h0.grad, their_h0.grad)] + \
        [(getattr(ours, name).grad, p.grad) for name, p in theirs.named_parameters()]
    errors = [_relative_error(a, b) for a, b in pairs]
    assert max(errors) < tolerance, errors


def test_weights_move_to_pytorch_and_back():
    torch = pytest.importorskip("torch")
    ours = LSTM(3, 4, num_layers=2)
    theirs = torch.nn.LSTM(3, 4, num_layers=2)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    x = np.random.default_rng(13).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(_t(x))[0].numpy(),
                               theirs(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------------------ dropout
def test_dropout_applies_between_layers_in_training_only():
    rng = np.random.default_rng(14)
    x = _t(rng.standard_normal((6, 3, 2)).astype(np.float32))
    lstm = LSTM(2, 8, num_layers=2, dropout=0.5)
    plain = LSTM(2, 8, num_layers=2)
    plain.load_state_dict(lstm.state_dict())
    expected = plain(x)[0].numpy()
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].numpy(), expected)
    lstm.train()
    fg.manual_seed(1)
    first = lstm(x)[0].numpy()
    fg.manual_seed(1)
    np.testing.assert_array_equal(lstm(x)[0].numpy(), first)  # seeded
    assert not np.allclose(first, expected)


def test_dropout_of_one_zeroes_the_second_layers_input_but_not_the_output():
    lstm = LSTM(2, 4, num_layers=2, dropout=1.0, dtype=np.float64)
    second = LSTM(4, 4, dtype=np.float64)
    second.load_state_dict({k[:-1] + "0": v for k, v in lstm.state_dict().items()
                            if k.endswith("l1")})
    x = _t(np.random.default_rng(15).standard_normal((5, 3, 2)), True)
    output, (h_n, _) = lstm(x)
    np.testing.assert_allclose(output.numpy(), second(fg.zeros(5, 3, 4, dtype=np.float64))[0]
                               .numpy(), rtol=1e-14)
    assert np.abs(output.numpy()).min() > 0  # the last layer's output is not dropped
    output.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)  # nothing flows through the mask


def test_dropout_with_one_layer_warns_and_changes_nothing():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        rnn = RNN(2, 4, dropout=0.3)
    x = fg.randn(5, 2, 2)
    np.testing.assert_array_equal(rnn(x)[0].numpy(), rnn.eval()(x)[0].numpy())


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make, error, match", [
    (lambda: LSTM(3, 4, dropout=1.5), ValueError, r"dropout should be a number in range \[0, 1\]"),
    (lambda: RNN(3, 4, dropout=-0.1), ValueError, "dropout should be a number"),
    (lambda: LSTM(3, 0), ValueError, "hidden_size must be greater than zero"),
    (lambda: LSTM(3, 4.0), TypeError, "hidden_size should be of type int, got: float"),
    (lambda: LSTM(3, 4, num_layers=0), ValueError, "num_layers must be greater than zero"),
    (lambda: RNN(-1, 4), ValueError, "input_size must be a non-negative int, got -1"),
    (lambda: RNN(3, 4, nonlinearity="gelu"), ValueError, "Unknown nonlinearity 'gelu'"),
    (lambda: RNNCell(3, 4, nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity"),
    (lambda: LSTMCell(3, True), TypeError, "hidden_size should be of type int"),
    (lambda: LSTM(3, 4, proj_size=2), TypeError, "proj_size"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


F32 = np.float32


@pytest.mark.parametrize("module, call, error, match", [
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3, 1)), ValueError,
     "LSTM: Expected input to be 2D or 3D, got 4D instead"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 4)), RuntimeError,
     r"input.size\(-1\) must be equal to input_size. Expected 3, got 4"),
    (RNN(3, 4), lambda m: m(fg.zeros(5, 2, 3, dtype=np.float64)), ValueError,
     r"RNN input dtype \(float64\) does not match weight dtype \(float32\)"),
    (LSTM(3, 4), lambda m: m(fg.zeros(0, 2, 3)), RuntimeError,
     "Expected sequence length to be larger than 0"),
    (LSTM(3, 4), lambda m: m(np.zeros((5, 2, 3), F32)), TypeError, "input must be a Tensor"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(2, 2, 4), fg.zeros(1, 2, 4))),
     RuntimeError, r"Expected hidden\[0\] size \(1, 2, 4\), got \[2, 2, 4\]"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(1, 2, 4), fg.zeros(1, 3, 4))),
     RuntimeError, r"Expected hidden\[1\] size \(1, 2, 4\), got \[1, 3, 4\]"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(2, 4), fg.zeros(2, 4))),
     RuntimeError, r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 2-D\)"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 3), (fg.zeros(1, 2, 4), fg.zeros(1, 2, 4))),
     RuntimeError, "For unbatched 2-D input, hx and cx should also be 2-D"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(1, 2, 4)), ValueError,
     r"hx must be a tuple \(h_0, c_0\)"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(1, 2, 4), None)), TypeError,
     r"hx\[1\] must be a Tensor, got NoneType"),
    (LSTM(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(1, 2, 4, dtype=np.float64),
                                                  fg.zeros(1, 2, 4))),
     RuntimeError, r"LSTM hx\[0\] dtype \(float64\) does not match weight dtype \(float32\)"),
    (RNN(3, 4), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(2, 4)), RuntimeError,
     "For batched 3-D input, hx should also be 3-D but got 2-D tensor"),
    (RNN(3, 4, num_layers=2), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(1, 2, 4)), RuntimeError,
     r"Expected hidden size \(2, 2, 4\), got \[1, 2, 4\]"),
    (RNN(3, 4), lambda m: m(fg.zeros(5, 3), fg.zeros(1, 5)), RuntimeError,
     r"Expected hidden size \(1, 4\), got \[1, 5\]"),
    (RNNCell(3, 4), lambda m: m(fg.zeros(2, 3, 1)), ValueError,
     "RNNCell: Expected input to be 1D or 2D, got 3D instead"),
    (RNNCell(3, 4), lambda m: m(fg.zeros(2, 4)), RuntimeError,
     "input has inconsistent input_size: got 4 expected 3"),
    (LSTMCell(3, 4), lambda m: m(fg.zeros(2, 3, dtype=np.float64)), RuntimeError,
     r"LSTMCell: input dtype \(float64\) does not match weight dtype \(float32\)"),
    (LSTMCell(3, 4), lambda m: m(fg.zeros(2, 3), (fg.zeros(3, 4), fg.zeros(3, 4))),
     RuntimeError, "Input batch size 2 doesn't match hidden0 batch size 3"),
    (LSTMCell(3, 4), lambda m: m(fg.zeros(2, 3), (fg.zeros(2, 4), fg.zeros(2, 5))),
     RuntimeError, "hidden1 has inconsistent hidden_size: got 5, expected 4"),
    (LSTMCell(3, 4), lambda m: m(fg.zeros(2, 3), (fg.zeros(4), fg.zeros(4))), RuntimeError,
     "for 2-D input, hx\\[0\\] should also be 2-D but got 1-D tensor"),
    (LSTMCell(3, 4), lambda m: m(fg.zeros(2, 3), (fg.zeros(2, 4),)), ValueError,
     r"hx must be a tuple \(h, c\), got 1 elements"),
    (RNNCell(3, 4), lambda m: m(fg.zeros(3), fg.zeros(1, 1, 4)), ValueError,
     "RNNCell: Expected hidden to be 1D or 2D, got 3D instead"),
    (RNNCell(3, 4), lambda m: m(fg.zeros(2, 3), fg.zeros(2, 4, dtype=np.float64)),
     RuntimeError, r"RNNCell hidden dtype \(float64\) does not match weight dtype"),
])
def test_forward_errors(module, call, error, match):
    with pytest.raises(error, match=match):
        call(module)


# ---------------------------------------------------------------- long sequences and memory
def test_lstm_backpropagates_through_1000_steps():
    rng = np.random.default_rng(16)
    lstm = LSTM(3, 4, dtype=np.float64)
    x = _t(rng.standard_normal((1000, 2, 3)), True)
    output, (h_n, c_n) = lstm(x)
    (output[-1].sum() + c_n.sum()).backward()
    gradients = [x.grad] + [p.grad for p in lstm.parameters()]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    assert np.abs(x.grad.numpy()[-1]).max() > 0


@pytest.mark.parametrize("kind", ["lstm", "rnn-tanh", "rnn-relu"])
def test_layer_equals_the_unrolled_cell(kind):
    rng = np.random.default_rng(17)
    layer = _make_layer(kind, 3, 4, 1, False, True)
    cell = _make_cell(kind, 3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    xs = rng.standard_normal((40, 2, 3))
    h0, c0 = rng.standard_normal((2, 2, 4))
    seeds = rng.standard_normal((40, 2, 4))
    layer_x, cell_x = _t(xs, True), _t(xs, True)
    layer_h0, cell_h0 = _t(h0[None], True), _t(h0, True)
    layer_c0, cell_c0 = _t(c0[None], True), _t(c0, True)
    if kind == "lstm":
        output, _ = layer(layer_x, (layer_h0, layer_c0))
        state, hs = (cell_h0, cell_c0), []
        for t in range(len(xs)):
            state = cell(cell_x[t], state)
            hs.append(state[0])
    else:
        output, _ = layer(layer_x, layer_h0)
        state, hs = cell_h0, []
        for t in range(len(xs)):
            state = cell(cell_x[t], state)
            hs.append(state)
    unrolled = fg.stack(hs)
    np.testing.assert_allclose(output.numpy(), unrolled.numpy(), rtol=1e-12, atol=1e-14)
    output.backward(seeds)
    unrolled.backward(seeds)
    pairs = [(layer_x, cell_x), (layer_h0, cell_h0)]
    if kind == "lstm":
        pairs.append((layer_c0, cell_c0))
    for a, b in pairs:
        np.testing.assert_allclose(a.grad.numpy().reshape(b.shape), b.grad.numpy(), rtol=1e-10,
                                   atol=1e-13)
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), getattr(cell, name[:-3]).grad.numpy(),
                                   rtol=1e-10, atol=1e-13, err_msg=name)


def _peak_memory(steps):
    lstm = LSTM(8, 32)
    x = fg.randn(steps, 4, 8, requires_grad=True)
    tracemalloc.start()
    try:
        output, _ = lstm(x)
        output.sum().backward()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bptt_memory_grows_linearly_with_the_sequence():
    short, long = _peak_memory(250), _peak_memory(1000)
    assert 3 < long / short < 5, (short, long)


# ------------------------------------------------------------------------ the adding problem
def test_lstm_learns_the_adding_problem():
    """T=50: always predicting 1 scores an MSE of about 0.167; the LSTM must get below 0.05.

    Adam (lr 0.01), batches of 32, gradients clipped to norm 1; test MSE checked every 100
    steps, at most 2,000 steps (700 needed with this seed: a few seconds).
    """
    fg.manual_seed(0)
    lstm, head = LSTM(2, 32, batch_first=True), nn.Linear(32, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    optimizer = fg.optim.Adam(params, lr=0.01)
    batch, max_steps = 32, 2000
    x_train, y_train = fg.data.adding_problem(batch * max_steps, 50, seed=1)
    x_test, y_test = fg.data.adding_problem(1000, 50, seed=2)

    def predict(x):
        output, _ = lstm(_t(x))
        return head(output[:, -1])

    with fg.no_grad():
        baseline = F.mse_loss(fg.ones(1000, 1), _t(y_test)).item()
    assert 0.15 < baseline < 0.18
    start, history = time.perf_counter(), []
    for step in range(max_steps):
        rows = slice(step * batch, (step + 1) * batch)
        loss = F.mse_loss(predict(x_train[rows]), _t(y_train[rows]))
        optimizer.zero_grad()
        loss.backward()
        norm = np.sqrt(sum(float(np.sum(p.grad.numpy().astype(np.float64) ** 2))
                           for p in params))
        if norm > 1.0:
            for p in params:
                p.grad.numpy()[...] *= 1.0 / norm
        optimizer.step()
        if (step + 1) % 100 == 0:
            with fg.no_grad():
                history.append(F.mse_loss(predict(x_test), _t(y_test)).item())
            if history[-1] < 0.05:
                break
    seconds = time.perf_counter() - start
    assert history[-1] < 0.05, f"test MSE by 100 steps: {history} ({seconds:.1f} s)"
