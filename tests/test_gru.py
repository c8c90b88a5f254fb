"""GRU and GRUCell: PyTorch's parameter names, shapes, gate order (r, z, n) and initialisation;
values against an independent float64 NumPy formula; gradchecks of every cell and layer;
PyTorch parity of outputs, final states and every gradient (skipped without torch); dropout and
errors."""
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.autograd import gradcheck
from fastgrad.nn.recurrent import GRU, GRUCell

FLOATS = (np.float32, np.float64)


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _sigmoid64(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # a formula independent of the kernel's


def _gru_step64(x, h, w_ih, w_hh, b_ih, b_hh):
    """One GRU step in float64, PyTorch's equations: b_hn stays inside r * (...)."""
    gi, gh = x @ w_ih.T, h @ w_hh.T
    if b_ih is not None:
        gi, gh = gi + b_ih, gh + b_hh
    i_r, i_z, i_n = np.split(gi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    r, z = _sigmoid64(i_r + h_r), _sigmoid64(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _gru_reference(module, x, h0):
    """A unidirectional GRU in float64 over time-major x (T, N, I) from h0 (L, N, H)."""
    finals = []
    for layer in range(module.num_layers):
        weights = [None if w is None else w.numpy().astype(np.float64)
                   for w in module._layer_weights(layer)]
        h, outputs = h0[layer], []
        for t in range(len(x)):
            h = _gru_step64(x[t], h, *weights)
            outputs.append(h)
        x = np.stack(outputs)
        finals.append(h)
    return x, np.stack(finals)


def _set_weights(module, rng, bound=0.8):
    """Weights larger than the default: gates away from their linear region."""
    with fg.no_grad():
        for param in module.parameters():
            param.copy_(rng.uniform(-bound, bound, param.shape).astype(param.dtype))


# ------------------------------------------------------------------------------- structure
def test_parameter_names_shapes_and_state_dict_keys_are_pytorchs():
    gru = GRU(3, 5, num_layers=2)
    assert [(k, v.shape) for k, v in gru.state_dict().items()] == [
        ("weight_ih_l0", (15, 3)), ("weight_hh_l0", (15, 5)), ("bias_ih_l0", (15,)),
        ("bias_hh_l0", (15,)), ("weight_ih_l1", (15, 5)), ("weight_hh_l1", (15, 5)),
        ("bias_ih_l1", (15,)), ("bias_hh_l1", (15,))]
    assert list(GRU(3, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert [(k, v.shape) for k, v in GRUCell(3, 5).state_dict().items()] == [
        ("weight_ih", (15, 3)), ("weight_hh", (15, 5)), ("bias_ih", (15,)), ("bias_hh", (15,))]
    gru = GRU(3, 5, 2, True, True, 0.5, True)  # PyTorch's positional order
    assert (gru.num_layers, gru.bias, gru.batch_first, gru.dropout, gru.bidirectional) == \
        (2, True, True, 0.5, True)
    assert repr(gru) == "GRU(3, 5, num_layers=2, batch_first=True, dropout=0.5, " \
        "bidirectional=True)"
    assert repr(GRUCell(3, 5, bias=False)) == "GRUCell(3, 5, bias=False)"


def test_exported_from_nn():
    assert nn.GRU is GRU and nn.GRUCell is GRUCell
    assert "GRU" in nn.__all__ and "GRUCell" in nn.__all__


@pytest.mark.parametrize("make", [lambda: GRU(3, 16, num_layers=2), lambda: GRUCell(3, 16),
                                  lambda: GRU(3, 16, bidirectional=True)])
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
    pairs = [(GRU(3, 5, num_layers=2, batch_first=True, dropout=0.5),
              torch.nn.GRU(3, 5, num_layers=2, batch_first=True, dropout=0.5)),
             (GRU(3, 5, bias=False), torch.nn.GRU(3, 5, bias=False)),
             (GRUCell(3, 5), torch.nn.GRUCell(3, 5)),
             (GRUCell(3, 5, bias=False), torch.nn.GRUCell(3, 5, bias=False))]
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [v.shape for v in ours.state_dict().values()] == \
            [tuple(v.shape) for v in theirs.state_dict().values()]
        assert repr(ours) == repr(theirs)


# --------------------------------------------------------------------------- the formula
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("num_layers, bias, batch_first, batched, initial", [
    (1, True, False, True, False), (1, False, False, True, True), (2, True, True, True, True),
    (2, True, False, False, True), (1, True, True, False, False)])
def test_gru_matches_the_formula(num_layers, bias, batch_first, batched, initial, dtype):
    rng = np.random.default_rng(1)
    gru = GRU(3, 4, num_layers=num_layers, bias=bias, batch_first=batch_first, dtype=dtype)
    _set_weights(gru, rng)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((num_layers, 2, 4)).astype(dtype)
    expected, expected_h = _gru_reference(gru, x.astype(np.float64),
                                          h0.astype(np.float64) if initial else
                                          np.zeros_like(h0, np.float64))
    if not batched:
        x, h0, expected, expected_h = x[:, 0], h0[:, 0], expected[:, 0], expected_h[:, 0]
    elif batch_first:
        x, expected = x.transpose(1, 0, 2), expected.transpose(1, 0, 2)
    output, h_n = gru(_t(x), _t(h0) if initial else None)
    assert output.dtype == dtype and h_n.dtype == dtype
    assert output.shape == expected.shape and h_n.shape == expected_h.shape
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(output.numpy(), expected, **tolerance)
    np.testing.assert_allclose(h_n.numpy(), expected_h, **tolerance)


@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_the_formula(rng, bias):
    cell = GRUCell(3, 4, bias=bias, dtype=np.float64)
    _set_weights(cell, rng)
    x, h = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    weights = [None if w is None else w.numpy() for w in cell._weights()]
    np.testing.assert_allclose(cell(_t(x), _t(h)).numpy(), _gru_step64(x, h, *weights),
                               rtol=1e-12)
    np.testing.assert_allclose(cell(_t(x)).numpy(), _gru_step64(x, 0 * h, *weights),
                               rtol=1e-12)
    np.testing.assert_allclose(cell(_t(x[1]), _t(h[1])).numpy(),
                               _gru_step64(x[1:2], h[1:2], *weights)[0], rtol=1e-12)


def test_gate_order_is_r_z_n():
    """z = 1 (a huge z bias) keeps h; r = 0 (a huge negative r bias) drops W_hn h + b_hn."""
    cell = GRUCell(2, 3, dtype=np.float64)
    x, h = _t(np.ones((1, 2))), _t(np.full((1, 3), 0.5))
    with fg.no_grad():
        cell.bias_ih.numpy()[3:6] = 100.0
    np.testing.assert_allclose(cell(x, h).numpy(), h.numpy(), rtol=1e-12)
    with fg.no_grad():
        cell.bias_ih.numpy()[:6] = -100.0  # r = 0 and z = 0: h' = n, without b_hn
        cell.bias_hh.numpy()[6:] = 50.0
    w_in, b_in = cell.weight_ih.numpy()[6:], cell.bias_ih.numpy()[6:]
    np.testing.assert_allclose(cell(x, h).numpy(), np.tanh(x.numpy() @ w_in.T + b_in),
                               rtol=1e-12)


# -------------------------------------------------------------------------------- gradcheck
LAYER_CASES = [
    # num_layers, batch_first, batched, initial, bias
    (1, False, True, False, True),
    (1, False, True, True, True),
    (2, False, True, True, True),
    (2, True, True, False, False),
    (1, False, False, True, True),
    (2, True, False, True, True),
]


@pytest.mark.parametrize("num_layers, batch_first, batched, initial, bias", LAYER_CASES)
def test_layer_gradcheck(num_layers, batch_first, batched, initial, bias):
    rng = np.random.default_rng(3)
    gru = GRU(2, 3, num_layers=num_layers, bias=bias, batch_first=batch_first,
              dtype=np.float64)
    _set_weights(gru, rng)
    shape = ((2, 4) if batch_first else (4, 2)) if batched else (4,)
    x = _t(rng.standard_normal(shape + (2,)), True)
    h0_shape = (num_layers, 2, 3) if batched else (num_layers, 3)
    states = (_t(rng.standard_normal(h0_shape), True),) if initial else ()
    params = tuple(gru.parameters())

    def fn(x, *rest):
        return gru(x, rest[0] if states else None)

    assert gradcheck(fn, (x,) + states + params)


@pytest.mark.parametrize("batched, initial, bias", [
    (True, False, True), (True, True, True), (False, True, False), (False, False, True)])
def test_cell_gradcheck(batched, initial, bias):
    rng = np.random.default_rng(5)
    cell = GRUCell(3, 4, bias=bias, dtype=np.float64)
    _set_weights(cell, rng)
    x = _t(rng.standard_normal((2, 3) if batched else (3,)), True)
    states = (_t(rng.standard_normal((2, 4) if batched else (4,)), True),) if initial else ()
    params = tuple(cell.parameters())

    def fn(x, *rest):
        return cell(x, rest[0] if states else None)

    assert gradcheck(fn, (x,) + states + params)


def test_layer_equals_the_unrolled_cell(rng):
    layer, cell = GRU(3, 4, dtype=np.float64), GRUCell(3, 4, dtype=np.float64)
    _set_weights(layer, rng)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    xs, h0 = rng.standard_normal((30, 2, 3)), rng.standard_normal((2, 4))
    seeds = rng.standard_normal((30, 2, 4))
    layer_x, cell_x = _t(xs, True), _t(xs, True)
    layer_h0, cell_h0 = _t(h0[None], True), _t(h0, True)
    output, _ = layer(layer_x, layer_h0)
    state, hs = cell_h0, []
    for t in range(len(xs)):
        state = cell(cell_x[t], state)
        hs.append(state)
    unrolled = fg.stack(hs)
    np.testing.assert_allclose(output.numpy(), unrolled.numpy(), rtol=1e-12, atol=1e-14)
    output.backward(seeds)
    unrolled.backward(seeds)
    for a, b in [(layer_x, cell_x), (layer_h0, cell_h0)]:
        np.testing.assert_allclose(a.grad.numpy().reshape(b.shape), b.grad.numpy(), rtol=1e-10,
                                   atol=1e-13)
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), getattr(cell, name[:-3]).grad.numpy(),
                                   rtol=1e-10, atol=1e-13, err_msg=name)


def test_saturated_gates_stay_finite_and_quiet():
    """Pre-activations of +-1000 in float32: the sigmoid must not overflow or warn."""
    rng = np.random.default_rng(6)
    gru = GRU(3, 4)
    _set_weights(gru, rng, bound=100.0)
    x = _t((100 * rng.standard_normal((8, 2, 3))).astype(np.float32), True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output, h_n = gru(x)
        (output.sum() + h_n.sum()).backward()
    assert np.isfinite(output.numpy()).all() and np.abs(output.numpy()).max() <= 1
    assert all(np.isfinite(g.numpy()).all() for g in [x.grad] + [p.grad for p in
                                                                 gru.parameters()])


def test_backpropagates_through_500_steps_with_no_grad_recording_nothing():
    rng = np.random.default_rng(16)
    gru = GRU(3, 4, dtype=np.float64)
    x = _t(rng.standard_normal((500, 2, 3)), True)
    output, h_n = gru(x)
    (output[-1].sum() + h_n.sum()).backward()
    gradients = [x.grad] + [p.grad for p in gru.parameters()]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    assert np.abs(x.grad.numpy()[-1]).max() > 0
    with fg.no_grad():
        output, h_n = gru(fg.randn(5, 2, 3, dtype=np.float64))
    assert not output.requires_grad and output.grad_fn is None and h_n.grad_fn is None


# ------------------------------------------------------------------------------------ PyTorch
def _relative_error(ours, theirs):
    theirs = theirs.detach().numpy()
    return float(np.abs(ours.numpy() - theirs).max() / max(np.abs(theirs).max(), 1e-30))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("num_layers, batch_first, bias, batched", [
    (1, False, True, True), (2, False, True, True), (2, True, True, True),
    (1, True, False, True), (2, False, True, False)])
def test_gru_matches_pytorch(num_layers, batch_first, bias, batched, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(11)
    theirs = torch.nn.GRU(3, 5, num_layers=num_layers, bias=bias, batch_first=batch_first)
    theirs = theirs.to(getattr(torch, np.dtype(dtype).name))
    ours = GRU(3, 5, num_layers=num_layers, bias=bias, batch_first=batch_first, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(11)
    shape = ((4, 7) if batch_first else (7, 4)) if batched else (7,)
    x = rng.standard_normal(shape + (3,)).astype(dtype)
    h0 = rng.standard_normal((num_layers, 4, 5) if batched else (num_layers, 5)).astype(dtype)
    our_x, our_h0 = _t(x, True), _t(h0, True)
    their_x, their_h0 = torch.tensor(x, requires_grad=True), torch.tensor(h0,
                                                                           requires_grad=True)
    our_out, their_out = ours(our_x, our_h0), theirs(their_x, their_h0)
    seeds = [rng.standard_normal(o.shape).astype(dtype) for o in our_out]
    fg.autograd.backward(list(our_out), seeds)
    torch.autograd.backward(list(their_out), [torch.from_numpy(s) for s in seeds])
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    pairs = list(zip(our_out, their_out)) + [(our_x.grad, their_x.grad),
                                             (our_h0.grad, their_h0.grad)] + \
        [(getattr(ours, name).grad, p.grad) for name, p in theirs.named_parameters()]
    errors = [_relative_error(a, b) for a, b in pairs]
    assert max(errors) < tolerance, errors


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_pytorch_over_several_steps(bias, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(12)
    theirs = torch.nn.GRUCell(3, 5, bias=bias).to(getattr(torch, np.dtype(dtype).name))
    ours = GRUCell(3, 5, bias=bias, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(12)
    xs = rng.standard_normal((4, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((2, 5)).astype(dtype)
    our_x, our_h0 = _t(xs, True), _t(h0, True)
    their_x, their_h0 = torch.tensor(xs, requires_grad=True), torch.tensor(h0,
                                                                            requires_grad=True)
    our_h, their_h = our_h0, their_h0
    our_loss, their_loss = 0, 0
    for t in range(len(xs)):
        our_h, their_h = ours(our_x[t], our_h), theirs(their_x[t], their_h)
        our_loss = our_loss + (our_h * float(t + 1)).sum()
        their_loss = their_loss + (their_h * float(t + 1)).sum()
    our_loss.backward()
    their_loss.backward()
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    pairs = [(our_h, their_h), (our_x.grad, their_x.grad), (our_h0.grad, their_h0.grad)] + \
        [(getattr(ours, name).grad, p.grad) for name, p in theirs.named_parameters()]
    errors = [_relative_error(a, b) for a, b in pairs]
    assert max(errors) < tolerance, errors


def test_weights_move_to_pytorch_and_back():
    torch = pytest.importorskip("torch")
    ours = GRU(3, 4, num_layers=2)
    theirs = torch.nn.GRU(3, 4, num_layers=2)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    x = np.random.default_rng(13).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(_t(x))[0].numpy(),
                               theirs(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------------------ dropout
def test_dropout_applies_between_layers_in_training_only():
    x = _t(np.random.default_rng(14).standard_normal((6, 3, 2)).astype(np.float32))
    gru = GRU(2, 8, num_layers=2, dropout=0.5)
    plain = GRU(2, 8, num_layers=2)
    plain.load_state_dict(gru.state_dict())
    expected = plain(x)[0].numpy()
    gru.eval()
    np.testing.assert_array_equal(gru(x)[0].numpy(), expected)
    gru.train()
    fg.manual_seed(1)
    first = gru(x)[0].numpy()
    fg.manual_seed(1)
    np.testing.assert_array_equal(gru(x)[0].numpy(), first)  # seeded
    assert not np.allclose(first, expected)


def test_dropout_of_one_zeroes_the_second_layers_input():
    gru = GRU(2, 4, num_layers=2, dropout=1.0, dtype=np.float64)
    second = GRU(4, 4, dtype=np.float64)
    second.load_state_dict({k[:-1] + "0": v for k, v in gru.state_dict().items()
                            if k.endswith("l1")})
    x = _t(np.random.default_rng(15).standard_normal((5, 3, 2)), True)
    output, _ = gru(x)
    np.testing.assert_allclose(output.numpy(), second(fg.zeros(5, 3, 4, dtype=np.float64))[0]
                               .numpy(), rtol=1e-14)
    output.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        GRU(2, 4, dropout=0.3)


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make, error, match", [
    (lambda: GRU(3, 4, dropout=1.5), ValueError, r"dropout should be a number in range \[0, 1\]"),
    (lambda: GRU(3, 0), ValueError, "hidden_size must be greater than zero"),
    (lambda: GRU(3, 4.0), TypeError, "hidden_size should be of type int, got: float"),
    (lambda: GRU(3, 4, num_layers=0), ValueError, "num_layers must be greater than zero"),
    (lambda: GRU(-1, 4), ValueError, "input_size must be a non-negative int, got -1"),
    (lambda: GRU(3, 4, nonlinearity="relu"), TypeError, "nonlinearity"),
    (lambda: GRU(3, 4, dtype=np.int64), TypeError, "dtype must be a floating dtype"),
    (lambda: GRUCell(3, True), TypeError, "hidden_size should be of type int"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("module, call, error, match", [
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3, 1)), ValueError,
     "GRU: Expected input to be 2D or 3D, got 4D instead"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 4)), RuntimeError,
     r"input.size\(-1\) must be equal to input_size. Expected 3, got 4"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3, dtype=np.float64)), ValueError,
     r"GRU input dtype \(float64\) does not match weight dtype \(float32\)"),
    (GRU(3, 4), lambda m: m(fg.zeros(0, 2, 3)), RuntimeError,
     "Expected sequence length to be larger than 0"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(2, 2, 4)), RuntimeError,
     r"Expected hidden size \(1, 2, 4\), got \[2, 2, 4\]"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(2, 4)), RuntimeError,
     "For batched 3-D input, hx should also be 3-D but got 2-D tensor"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 3), fg.zeros(1, 5)), RuntimeError,
     r"Expected hidden size \(1, 4\), got \[1, 5\]"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3), fg.zeros(1, 2, 4, dtype=np.float64)),
     RuntimeError, r"GRU hx dtype \(float64\) does not match weight dtype \(float32\)"),
    (GRU(3, 4), lambda m: m(fg.zeros(5, 2, 3), (fg.zeros(1, 2, 4),)), TypeError,
     "hx must be a Tensor, got tuple"),
    (GRUCell(3, 4), lambda m: m(fg.zeros(2, 3, 1)), ValueError,
     "GRUCell: Expected input to be 1D or 2D, got 3D instead"),
    (GRUCell(3, 4), lambda m: m(fg.zeros(2, 4)), RuntimeError,
     "input has inconsistent input_size: got 4 expected 3"),
    (GRUCell(3, 4), lambda m: m(fg.zeros(2, 3), fg.zeros(3, 4)), RuntimeError,
     "Input batch size 2 doesn't match hidden0 batch size 3"),
    (GRUCell(3, 4), lambda m: m(fg.zeros(2, 3), fg.zeros(2, 5)), RuntimeError,
     "hidden0 has inconsistent hidden_size: got 5, expected 4"),
    (GRUCell(3, 4), lambda m: m(fg.zeros(2, 3, dtype=np.float64)), RuntimeError,
     r"GRUCell: input dtype \(float64\) does not match weight dtype \(float32\)"),
])
def test_forward_errors(module, call, error, match):
    with pytest.raises(error, match=match):
        call(module)
