"""The backward engine: accumulation, graph lifetime, grad modes, autograd.grad, gradcheck."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import Function, GradcheckError, grad, gradcheck


def leaf(values, dtype=fg.float64):
    return fg.tensor(values, dtype=dtype, requires_grad=True)


# --------------------------------------------------------------------------- accumulation
def test_gradients_accumulate_over_two_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4, 6])
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5, 7, 9])


def test_grad_has_the_leaf_shape_and_dtype():
    x = fg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    (x + fg.tensor([[1.0], [2.0]], dtype=fg.float64)).sum().backward()
    assert x.grad.shape == (1, 3) and x.grad.dtype == fg.float32
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 2, 2]])
    assert x.grad.grad_fn is None and not x.grad.requires_grad


def test_a_node_reused_on_several_paths_sums_its_gradients():
    x = leaf([0.5, -1.0])
    a = x * 2          # used by three consumers
    out = (a * a + a.exp() + a).sum()
    out.backward()
    a_ = 2 * x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * a_ + np.exp(a_) + 1))


def test_backward_of_several_roots_at_once():
    x = leaf([1.0, 2.0])
    fg.autograd.backward([(x * 2).sum(), (x * x).sum()])
    np.testing.assert_array_equal(x.grad.numpy(), [4, 6])


def test_backward_with_explicit_gradient_weights_the_output():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(gradient=fg.tensor([1.0, 0.0, -1.0], dtype=fg.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [2, 0, -6])


def test_leaf_that_does_not_require_grad_gets_none():
    x, c = leaf([1.0]), fg.tensor([2.0], dtype=fg.float64)
    (x * c).sum().backward()
    assert c.grad is None and x.grad.item() == 2.0


# --------------------------------------------------------------------------------- errors
def test_backward_on_non_scalar_needs_a_gradient():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"one element.*\(2,\)"):
        y.backward()


@pytest.mark.parametrize("shape", [(3,), (2, 1), ()])
def test_backward_with_gradient_of_wrong_shape_raises(shape):
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"shape"):
        y.backward(gradient=fg.zeros(*shape, dtype=fg.float64))


def test_backward_on_tensor_not_requiring_grad_raises():
    y = fg.tensor([1.0, 2.0]).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_second_backward_through_a_freed_inner_node_raises():
    x = leaf([1.0, 2.0])
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()


def test_retain_graph_allows_a_second_backward_and_grads_double():
    x = leaf([1.0, 2.0])
    y = (x * x * 3).sum()
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [6, 12])
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [12, 24])


# -------------------------------------------------------------------------- in-place checks
def test_inplace_change_of_an_input_saved_for_backward_raises():
    x = leaf([1.0, 2.0])
    w = fg.tensor([3.0, 4.0], dtype=fg.float64)
    y = (x * w).sum()   # Mul saves w
    w.add_(1)
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_inplace_change_of_a_saved_intermediate_raises():
    x = leaf([1.0, 2.0])
    b = x * 2
    y = (b * b).sum()
    with fg.no_grad():
        b.mul_(3)
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_inplace_change_of_a_saved_output_raises():
    # exp saves its output; changing it would silently corrupt the gradient (PyTorch raises)
    x = leaf([1.0, 2.0])
    y = x.exp()
    with fg.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="in-place"):
        y.sum().backward()


def test_inplace_change_after_backward_is_allowed():
    x = leaf([1.0, 2.0])
    w = fg.tensor([3.0, 4.0], dtype=fg.float64)
    (x * w).sum().backward()
    w.add_(1)
    np.testing.assert_array_equal(x.grad.numpy(), [3, 4])


# ------------------------------------------------------------------------------ grad modes
def test_no_grad_context_records_nothing():
    x = leaf([1.0, 2.0])
    assert fg.is_grad_enabled()
    with fg.no_grad():
        assert not fg.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert fg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_decorator_records_nothing_and_keeps_the_function():
    @fg.no_grad()
    def double(t):
        """Docstring kept."""
        assert not fg.is_grad_enabled()
        return t * 2

    x = leaf([1.0])
    y = double(x)
    assert not y.requires_grad and y.grad_fn is None
    assert fg.is_grad_enabled()
    assert double.__name__ == "double" and double.__doc__ == "Docstring kept."


def test_enable_grad_reenables_recording_inside_no_grad():
    x = leaf([1.0, 2.0])
    with fg.no_grad():
        with fg.enable_grad():
            assert fg.is_grad_enabled()
            y = (x * x).sum()
        z = x * 3
        assert not fg.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4])


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with fg.no_grad():
            1 / 0
    assert fg.is_grad_enabled()


# ---------------------------------------------------------------------------- autograd.grad
def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    gx, gw = grad((x * w).sum(), [x, w])
    np.testing.assert_array_equal(gx.numpy(), [3, 4])
    np.testing.assert_array_equal(gw.numpy(), [1, 2])
    assert gx.dtype == fg.float64
    assert x.grad is None and w.grad is None


def test_grad_of_a_single_input_returns_a_one_tuple():
    x = leaf([1.0, 2.0])
    result = grad((x * x).sum(), x)
    assert isinstance(result, tuple) and len(result) == 1
    np.testing.assert_array_equal(result[0].numpy(), [2, 4])


@pytest.mark.parametrize("grad_outputs", [
    lambda: (fg.tensor([1.0, -1.0], dtype=fg.float64),),
    lambda: [np.array([1.0, -1.0])],
    lambda: fg.tensor([1.0, -1.0], dtype=fg.float64),
], ids=["tuple-of-tensor", "list-of-array", "bare-tensor"])
def test_grad_accepts_grad_outputs_as_a_sequence_or_a_tensor(grad_outputs):
    # PyTorch accepts grad_outputs as a sequence even when outputs is a single tensor
    x = leaf([1.0, 2.0])
    (gx,) = grad(x * x, [x], grad_outputs=grad_outputs())
    np.testing.assert_array_equal(gx.numpy(), [2, -4])


def test_grad_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="input 1.*allow_unused"):
        grad(y, [x, unused], retain_graph=True)
    gx, gu = grad(y, [x, unused], allow_unused=True)
    assert gu is None and gx.item() == 2.0


def test_grad_with_respect_to_an_intermediate_and_its_leaf():
    # as PyTorch: d out/d x includes the path through h, even when h is also an input
    x = leaf([1.0, 2.0])
    h = x * 3
    out = (h * h).sum()
    gh, gx = grad(out, [h, x])
    np.testing.assert_array_equal(gh.numpy(), [6, 12])
    np.testing.assert_array_equal(gx.numpy(), [18, 36])


# ------------------------------------------------------------------------------ deep graphs
def test_a_chain_of_5000_ops_backpropagates_without_recursion_error():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-9)


def test_a_deep_graph_can_be_dropped_after_backward():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y + x * 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])
    del y  # freeing a 5,000-deep chain must not overflow the stack either


# ------------------------------------------------------------------------------- gradcheck
class Square(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return 2 * grad * self.x


class BrokenSquare(Square):
    def backward(self, grad):
        return grad * self.x  # missing the factor 2


def test_gradcheck_passes_a_correct_function():
    x = leaf([0.5, -1.5, 2.0])
    assert gradcheck(Square.apply, (x,)) is True


def test_gradcheck_detects_a_wrong_backward():
    x = leaf([0.5, -1.5, 2.0])
    with pytest.raises(GradcheckError, match="mismatch"):
        gradcheck(BrokenSquare.apply, (x,))
    assert gradcheck(BrokenSquare.apply, (x,), raise_exception=False) is False


def test_gradcheck_rejects_float32_inputs():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="float64.*float32"):
        gradcheck(Square.apply, (x,))


def test_gradcheck_needs_an_input_requiring_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(Square.apply, (fg.tensor([1.0], dtype=fg.float64),))


@pytest.mark.parametrize("junk, message", [
    ("a", "gradient must be a Tensor, a numpy.ndarray or None, got str"),
    (True, "gradient must be a Tensor, a numpy.ndarray or None, got bool"),
    (np.array(["a", "b"]), "gradient must hold bool, integer or floating values"),
    (np.array([1 + 2j, 0j]), "gradient must hold bool, integer or floating values"),
])
def test_backward_refuses_a_gradient_that_is_not_real_numbers(junk, message):
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    for call in (lambda: fg.autograd.backward(y, junk, retain_graph=True),
                 lambda: y.backward(junk, retain_graph=True)):
        with pytest.raises(TypeError, match=message):
            call()
    assert x.grad is None


class _Double(Function):
    """2x, its backward allocating its result: a Function that may hand it to a leaf."""
    grads_are_fresh = True

    def forward(self, x):
        return 2 * x

    def backward(self, grad_out):
        return 2 * grad_out


def test_a_fresh_gradient_becomes_the_grad_without_a_copy_and_still_accumulates():
    x = fg.tensor(np.arange(4.0), requires_grad=True)
    seed = np.ones(4)
    fg.autograd.backward([_Double.apply(x)], [seed])
    np.testing.assert_array_equal(x.grad.numpy(), 2 * seed)
    fg.autograd.backward([_Double.apply(x)], [seed])  # into the gradient taken
    np.testing.assert_array_equal(x.grad.numpy(), 4 * seed)
    assert seed.tolist() == [1.0] * 4  # the caller's gradient is never taken
    x.grad = None  # used twice in one graph: the second gradient adds into the first taken
    fg.autograd.backward([_Double.apply(x) + _Double.apply(x)], [seed])
    np.testing.assert_array_equal(x.grad.numpy(), 4 * seed)
    x.grad = None
    y = _Double.apply(x)
    fg.autograd.backward([y], [seed])
    x.grad.numpy()[:] = 0  # the leaf owns its gradient: nothing else changes with it
    np.testing.assert_array_equal(y.detach().numpy(), 2 * np.arange(4.0))


# ---------------------------------------------------- gradients written into parameter buffers
def _tied_model(seed):
    """Linear -> BatchNorm -> Linear, the last Linear's weight used twice (tied), as
    Tensors: ``(parameters, loss of x)``."""
    fg.manual_seed(seed)
    first, norm, last = fg.nn.Linear(5, 6), fg.nn.BatchNorm1d(6), fg.nn.Linear(6, 6)
    params = [*first.parameters(), *norm.parameters(), *last.parameters()]

    def loss(x):
        hidden = last(fg.tanh(norm(first(x))))
        return (fg.nn.functional.linear(hidden, last.weight) ** 2).sum()

    return params, loss


@pytest.mark.parametrize("graphed", [False, True])
def test_ops_write_parameter_gradients_into_the_arena_as_the_copies_would(graphed):
    """Linear and BatchNorm write a parameter's gradient straight into its arena buffer when
    it becomes the whole ``.grad`` (``Function.grad_into``): the same values as a model
    without an arena (where each gradient is allocated, then kept), for a weight used twice
    (its second gradient added), after a backward that accumulates, and through a replay."""
    x = fg.randn(8, 5)
    params, loss = _tied_model(0)
    fg.optim.SGD(params, lr=0.1)  # packs the parameters: their gradients live in an arena
    plain_params, plain_loss = _tied_model(0)
    if graphed:  # both: a replay sums a tied weight's gradients before accumulating them
        loss = fg.graphs.make_graphed_callables(loss)
        plain_loss = fg.graphs.make_graphed_callables(plain_loss)
    for step in range(3):
        for p, q in zip(params, plain_params):
            if step < 2:  # the third step accumulates onto the second's gradients
                p.grad = q.grad = None
        loss(x).backward()
        plain_loss(x).backward()
        for p, q in zip(params, plain_params):
            assert p.grad._data is p._grad_view
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_no_buffer_is_written_for_autograd_grad_or_a_hooked_parameter():
    params, loss = _tied_model(1)
    fg.optim.SGD(params, lr=0.1)
    plain_params, plain_loss = _tied_model(1)
    x = fg.randn(8, 5)
    buffers = [p._grad_view.copy() for p in params]
    grads = grad(loss(x), params)
    expected = grad(plain_loss(x), plain_params)
    for p, before, g, e in zip(params, buffers, grads, expected):
        assert p.grad is None
        np.testing.assert_array_equal(p._grad_view, before)  # untouched
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    seen = []
    params[0].register_hook(lambda g: seen.append(g.numpy().copy()))
    loss(x).backward()
    plain_loss(x).backward()
    np.testing.assert_array_equal(seen[0], plain_params[0].grad.numpy())
    for p, q in zip(params, plain_params):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


class _Recurrent(fg.nn.Module):
    """A recurrent layer's output summed, as a one-output model."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


@pytest.mark.parametrize("build, shape", [
    (lambda: fg.nn.Sequential(fg.nn.Conv2d(2, 3, 3, padding=1), fg.nn.ReLU(),
                              fg.nn.Conv2d(3, 2, 3)), (2, 2, 6, 6)),
    (lambda: _Recurrent(fg.nn.LSTM(3, 4, num_layers=2, bidirectional=True)), (5, 2, 3)),
    (lambda: _Recurrent(fg.nn.GRU(3, 4)), (5, 2, 3)),
    (lambda: _Recurrent(fg.nn.RNN(3, 4)), (5, 2, 3)),
], ids=["conv", "lstm", "gru", "rnn"])
def test_other_layers_write_their_parameter_gradients_into_the_arena(build, shape):
    fg.manual_seed(2)
    packed = build()
    fg.manual_seed(2)
    plain = build()
    fg.optim.SGD(packed.parameters(), lr=0.1)
    x = fg.randn(*shape)
    for _ in range(2):  # the second backward accumulates
        (packed(x) ** 2).sum().backward()
        (plain(x) ** 2).sum().backward()
        for p, q in zip(packed.parameters(), plain.parameters()):
            assert p.grad._data is p._grad_view
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
