"""Tensor conversion, construction, metadata and in-place random methods; Size; grad modes;
and the Module methods of PyTorch's surface (to, type, get_submodule, registration checks)."""
import pickle

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.autograd import gradcheck


# -------------------------------------------------------------------------------------- Size
def test_shape_and_size_are_sizes():
    x = fg.zeros(2, 3)
    assert type(x.shape) is fg.Size and type(x.size()) is fg.Size
    assert x.shape == (2, 3) and x.size(1) == 3 and isinstance(x.shape, tuple)
    assert x.shape.numel() == 6 and fg.Size().numel() == 1
    assert repr(x.shape) == str(x.shape) == "fastgrad.Size([2, 3])"
    assert f"{x.shape}" == "(2, 3)"  # messages print shapes as tuples
    assert type(x.shape[1:]) is fg.Size and x.shape[1:] == (3,) and x.shape[0] == 2
    assert type(x.shape + (4,)) is fg.Size and (4,) + x.shape == (4, 2, 3)
    assert type((4,) + x.shape) is fg.Size and type(x.shape * 2) is fg.Size
    assert type(2 * x.shape) is fg.Size
    assert pickle.loads(pickle.dumps(x.shape)) == x.shape
    assert fg.Size([fg.tensor(3), np.int64(2)]) == (3, 2)
    assert np.zeros(x.shape).shape == (2, 3)
    with pytest.raises(TypeError, match=r"item 1 is 'float'"):
        fg.Size((2, 3.0))
    with pytest.raises(TypeError):
        x.shape + [4]


def test_size_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = fg.zeros(2, 3, 4).shape, torch.zeros(2, 3, 4).shape
    for view in (lambda s: s, lambda s: s[1:], lambda s: s[::-1], lambda s: s + (5,),
                 lambda s: (5,) + s, lambda s: s * 2):
        assert view(ours) == tuple(view(theirs))
        assert type(view(theirs)) is torch.Size and type(view(ours)) is fg.Size
        assert repr(view(ours)) == repr(view(theirs)).replace("torch", "fastgrad")
    assert ours.numel() == theirs.numel()


# ---------------------------------------------------------------------------------- to()
TO_CALLS = [
    "to(F64)", "to(F32)", "to('cpu')", "to('cpu', F64)", "to('cpu', F64, True, True)",
    "to(F64, True, True)", "to(INT)", "to(device='cpu', dtype=F64)", "to(None)",
    "to(dtype=None)", "to(device=None)", "to(F32, non_blocking=True)", "to(CPU, None)",
    "to(memory_format=CONTIGUOUS)", "to(dtype=F64, copy=True)", "to(F32, copy=True)",
    "to(float)", "to(int)", "to(bool)", "to()",
]


@pytest.mark.parametrize("call", TO_CALLS)
def test_to_forms_match_torch(call):
    torch = pytest.importorskip("torch")
    results = []
    for module in (fg, torch):
        x = module.ones(2, 3)
        names = {"F64": module.float64, "F32": module.float32, "CPU": module.device("cpu"),
                 "INT": module.zeros(1, dtype=module.int32),
                 "CONTIGUOUS": module.contiguous_format}
        y = eval("x." + call, names, {"x": x})
        results.append((y, y is x))
    (ours, ours_same), (theirs, theirs_same) = results
    assert ours_same == theirs_same, call
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), call
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


BAD_TO_CALLS = [
    ("to(ZERO, F64)", TypeError), ("to('cpu', 'cpu')", TypeError),
    ("to(F64, dtype=F32)", TypeError), ("to(F64, F32)", TypeError),
    ("to(F32, 'cpu')", TypeError), ("to(F32, copy=1)", TypeError), ("to(foo=1)", TypeError),
    ("to('xyz')", RuntimeError), ("to('float32')", RuntimeError),
    ("to(F32, device='cpu')", TypeError), ("to('cpu', F32, False, False, True)", TypeError),
]


@pytest.mark.parametrize("call, error", BAD_TO_CALLS)
def test_bad_to_calls_raise_like_torch(call, error):
    names = {"F64": fg.float64, "F32": fg.float32, "ZERO": fg.zeros(1)}
    with pytest.raises(error):
        eval("x." + call, names, {"x": fg.ones(2)})
    torch = pytest.importorskip("torch")
    names = {"F64": torch.float64, "F32": torch.float32, "ZERO": torch.zeros(1)}
    with pytest.raises(error):
        eval("x." + call, names, {"x": torch.ones(2)})


def test_to_is_a_differentiable_cast_and_copy():
    x = fg.ones(2, 3, requires_grad=True)
    y = x.to(fg.float64)
    assert y.grad_fn is not None and x.to(fg.float32) is x
    (y * 2).sum().backward()
    assert x.grad.dtype == fg.float32 and np.all(x.grad.numpy() == 2)
    copy = x.to(fg.float32, copy=True)
    assert copy is not x and not np.shares_memory(copy.numpy(), x.numpy())
    assert copy.grad_fn is not None
    z = fg.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: t.to(fg.float64, copy=True) * t, (z,))
    assert gradcheck(lambda t: t.t().to(memory_format=fg.contiguous_format) ** 2, (z,))
    assert gradcheck(lambda t: t.t().contiguous() * 3, (z,))


def test_to_rejects_a_dtype_a_tensor_cannot_hold():
    with pytest.raises(TypeError, match="complex"):
        fg.ones(2).to(np.complex64)


# -------------------------------------------------------------------------- type(), casts
def test_type_names_and_casts():
    x = fg.ones(2)
    assert x.type() == "torch.FloatTensor"
    assert x.type(fg.float32) is x
    assert x.type(fg.float64).type() == "torch.DoubleTensor"
    assert x.type("torch.LongTensor").dtype == fg.int64
    assert x.type("fastgrad.IntTensor").dtype == fg.int32
    assert x.type(dtype=fg.int16, non_blocking=True).dtype == fg.int16
    for bad in ("float", "torch.Foo", "numpy.FloatTensor"):
        with pytest.raises(ValueError, match="invalid type"):
            x.type(bad)


def test_type_names_match_torch():
    torch = pytest.importorskip("torch")
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "bool"):
        assert fg.zeros(1, dtype=getattr(fg, name)).type() == \
            torch.zeros(1, dtype=getattr(torch, name)).type(), name
        type_name = torch.zeros(1, dtype=getattr(torch, name)).type()
        assert str(fg.zeros(1).type(type_name).dtype) == name


@pytest.mark.parametrize("method, dtype", [
    ("half", "float16"), ("float", "float32"), ("double", "float64"), ("int", "int32"),
    ("long", "int64"), ("short", "int16"), ("char", "int8"), ("byte", "uint8"),
    ("bool", "bool"),
])
def test_cast_methods(method, dtype):
    x = fg.tensor([0.0, 1.5, -2.0])
    y = getattr(x, method)()
    assert str(y.dtype) == dtype
    np.testing.assert_array_equal(y.numpy(), x.numpy().astype(dtype))
    torch = pytest.importorskip("torch")
    assert str(getattr(torch.tensor([0.0, 1.5, -2.0]), method)().dtype) == "torch." + dtype


# ------------------------------------------------------------------------------- new_*
def test_new_methods_default_to_self_dtype():
    x = fg.ones(2, dtype=fg.float64)
    assert x.new_zeros(2, 3).shape == (2, 3) and x.new_zeros((2, 3)).dtype == fg.float64
    assert x.new_ones([4], dtype=fg.int64).dtype == fg.int64
    assert x.new_empty(3).shape == (3,) and x.new_empty(3).dtype == fg.float64
    full = x.new_full((2,), 3)
    assert full.dtype == fg.float64 and full.tolist() == [3.0, 3.0]
    made = x.new_tensor([1, 2])
    assert made.dtype == fg.float64 and made.tolist() == [1.0, 2.0]
    assert x.new_ones(2, requires_grad=True).requires_grad
    source = fg.ones(2)
    copied = source.new_tensor(source)
    assert not np.shares_memory(copied.numpy(), source.numpy())
    with pytest.raises(TypeError, match="size"):
        x.new_full(2, 3)
    with pytest.raises(TypeError, match="size"):
        x.new_zeros()


def test_new_methods_match_torch():
    torch = pytest.importorskip("torch")
    for call in ("new_zeros(2, 3)", "new_zeros((2, 3))", "new_ones([2])", "new_full((2,), 3)",
                 "new_full((2,), True)", "new_tensor([1.5, 2])", "new_tensor([1, 2])",
                 "new_empty(2)"):
        ours = eval("x." + call, {"x": fg.ones(2, dtype=fg.int32)})
        theirs = eval("x." + call, {"x": torch.ones(2, dtype=torch.int32)})
        assert ours.shape == tuple(theirs.shape) and \
            str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), call
        if not call.startswith("new_empty"):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ------------------------------------------------------------------------------- metadata
def test_contiguity_and_strides():
    x = fg.ones(2, 3)
    assert x.contiguous() is x and x.is_contiguous()
    assert x.is_contiguous(memory_format=fg.contiguous_format)
    t = x.t()
    assert not t.is_contiguous() and t.stride() == (1, 3) and x.stride() == (3, 1)
    c = t.contiguous()
    assert c.is_contiguous() and c.stride() == (2, 1) and c.shape == (3, 2)
    assert x.stride(1) == 1 and x.stride(-2) == 3
    with pytest.raises(IndexError):
        x.stride(2)
    with pytest.raises(IndexError):
        fg.tensor(1.0).stride(0)
    assert fg.tensor(1.0).stride() == ()
    with pytest.raises(RuntimeError, match="contiguous_format"):
        x.contiguous(memory_format=fg.preserve_format)


def test_contiguity_matches_torch():
    torch = pytest.importorskip("torch")
    for view in (lambda x: x, lambda x: x.t(), lambda x: x[:, 1:], lambda x: x[::2],
                 lambda x: x.reshape(4, 3)[:, :1], lambda x: x.unsqueeze(0)):
        ours, theirs = view(fg.ones(4, 3)), view(torch.ones(4, 3))
        assert ours.is_contiguous() == theirs.is_contiguous()
        assert ours.stride() == theirs.stride()


def test_metadata_methods():
    x = fg.ones(2, 3)
    assert x.element_size() == 4 and x.itemsize == 4 and x.nbytes == 24
    assert x.double().element_size() == 8 and x.bool().nbytes == 6
    assert x.is_floating_point() and not x.long().is_floating_point()
    assert x.requires_grad_() is x and x.requires_grad
    assert x.requires_grad_(False) is x and not x.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        fg.ones(2, dtype=fg.int64).requires_grad_()
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        x.requires_grad_(1)


def test_format():
    loss = fg.tensor(1.23456)
    assert f"{loss:.4f}" == "1.2346" and "{:.3f}".format(loss) == "1.235"
    assert format(fg.tensor(3), "d") == "3" and format(fg.tensor(3), ".2f") == "3.00"
    assert format(fg.tensor(True), "") == "True"
    assert f"{fg.tensor(2.0, requires_grad=True):.1f}" == "2.0"
    assert f"{fg.tensor([1.5])}" == repr(fg.tensor([1.5]))
    with pytest.raises(TypeError, match="unsupported format string"):
        format(fg.tensor([1.5]), ".3f")


def test_format_matches_torch():
    torch = pytest.importorskip("torch")
    for value, spec in ((1.23456, ".3f"), (2.5, "8.2e"), (7, "d"), (7, "04d"), (True, ""),
                        (0.1, "")):
        assert format(fg.tensor(value), spec) == format(torch.tensor(value), spec)
    with pytest.raises(TypeError):
        format(torch.tensor([1.5]), ".3f")


# ------------------------------------------------------------------ in-place random fills
def test_in_place_random_fills():
    fg.manual_seed(0)
    x = fg.zeros(4000)
    assert x.uniform_(-2, 3) is x
    assert x.numpy().min() >= -2 and x.numpy().max() < 3 and abs(x.mean().item() - 0.5) < 0.1
    x.normal_(1.0, 2.0)
    assert abs(x.mean().item() - 1) < 0.15 and abs(x.numpy().std() - 2) < 0.15
    x.bernoulli_(0.25)
    assert set(np.unique(x.numpy())) <= {0.0, 1.0} and abs(x.mean().item() - 0.25) < 0.03
    assert fg.zeros(3).uniform_(to=2).numpy().max() < 2
    y = fg.zeros(2, 3).bernoulli_(fg.tensor([0.0, 1.0, 0.0]))
    assert y.tolist() == [[0, 1, 0], [0, 1, 0]]
    integers = fg.zeros(5, dtype=fg.int64).bernoulli_(1.0)
    assert integers.dtype == fg.int64 and integers.tolist() == [1] * 5
    with fg.no_grad():
        weight = fg.zeros(3, requires_grad=True)
        weight.uniform_(-1, 1)
    assert weight.requires_grad and weight._version == 1


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: fg.zeros(2).uniform_(1, 0), RuntimeError, "from=1 > to=0"),
    (lambda: fg.zeros(2).normal_(0, -1), RuntimeError, "std >= 0.0"),
    (lambda: fg.zeros(2).bernoulli_(2), RuntimeError, r"\[0, 1\]"),
    (lambda: fg.zeros(2, 3).bernoulli_(fg.full((4,), 0.5)), RuntimeError, "broadcast"),
    (lambda: fg.zeros(2, 3).bernoulli_(fg.full((3,), 1.5)), RuntimeError, r"\[0, 1\]"),
    (lambda: fg.zeros(2, dtype=fg.int64).uniform_(), TypeError, "floating"),
    (lambda: fg.zeros(2, dtype=fg.int64).normal_(), TypeError, "floating"),
    (lambda: fg.zeros(2, requires_grad=True).uniform_(), RuntimeError, "leaf"),
    (lambda: fg.zeros(2).uniform_("a"), TypeError, "from must be a number"),
])
def test_in_place_random_fill_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# ------------------------------------------------------------ methods forward their arguments
def test_methods_forward_keywords_to_ops():
    x = fg.tensor([[1.0, 5.0], [3.0, 2.0]])
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert x.mean(dim=0).tolist() == [2.0, 3.5]
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.softmax(dim=-1).shape == (2, 2) and x.log_softmax(dim=0).shape == (2, 2)
    assert x.reshape(4).shape == (4,) and x.view(-1, 1).shape == (4, 1)
    assert x.flatten(start_dim=0).shape == (4,) and x.transpose(0, 1).shape == (2, 2)
    assert x.unsqueeze(dim=0).shape == (1, 2, 2) and x[None].squeeze(dim=0).shape == (2, 2)
    assert x.clamp(min=2.0).tolist() == [[2.0, 5.0], [3.0, 2.0]]


# --------------------------------------------------------------------------------- grad mode
def test_set_grad_enabled_three_forms():
    x = fg.ones(2, requires_grad=True)
    assert fg.is_grad_enabled()
    fg.set_grad_enabled(False)
    try:
        assert not fg.is_grad_enabled() and (x * 2).grad_fn is None
    finally:
        fg.set_grad_enabled(True)
    with fg.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
    assert fg.is_grad_enabled()
    for training in (True, False):
        with fg.set_grad_enabled(training):
            assert ((x * 2).grad_fn is not None) == training

    @fg.set_grad_enabled(False)
    def infer():
        return fg.is_grad_enabled()
    assert fg.is_grad_enabled() and infer() is False and fg.is_grad_enabled()
    with pytest.raises(TypeError, match="mode must be a bool"):
        fg.set_grad_enabled(1)
    assert repr(fg.set_grad_enabled(True)) == "fastgrad.set_grad_enabled(mode=True)"


def test_inference_mode_and_bare_decorators():
    x = fg.ones(2, requires_grad=True)
    with fg.inference_mode():
        assert (x * 2).grad_fn is None
    with fg.no_grad(), fg.inference_mode(False):
        assert (x * 2).grad_fn is not None

    @fg.inference_mode
    def bare():
        return fg.is_grad_enabled()

    @fg.inference_mode()
    def called():
        return fg.is_grad_enabled()

    @fg.no_grad
    def no_grad_bare():
        return fg.is_grad_enabled()

    assert bare() is False and called() is False and no_grad_bare() is False
    assert bare.__name__ == "bare" and fg.is_grad_enabled()
    with pytest.raises(TypeError, match="takes no arguments"):
        fg.no_grad(3)


def test_grad_modes_match_torch():
    torch = pytest.importorskip("torch")
    for module in (fg, torch):
        @module.set_grad_enabled(False)
        def f(module=module):
            return module.is_grad_enabled()

        @module.no_grad
        def g(module=module):
            return module.is_grad_enabled()
        assert (module.is_grad_enabled(), f(), g(), module.is_grad_enabled()) == \
            (True, False, False, True)
        with module.set_grad_enabled(False), module.inference_mode(False):
            assert module.is_grad_enabled()  # inference_mode(False) records, in PyTorch too


# ------------------------------------------------------------------------------------ Module
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.bn = nn.BatchNorm1d(3)


def _model():
    return nn.Sequential(Block(), nn.Linear(3, 1))


def test_module_to_forms():
    model = _model()
    assert model.to(fg.float64) is model and model[1].weight.dtype == fg.float64
    assert model[0].bn.num_batches_tracked.dtype == fg.int64
    assert model.to(fg.ones(1)) is model and model[0].fc.weight.dtype == fg.float32
    assert model.to(dtype=fg.float64, non_blocking=True)[0].bn.running_var.dtype == fg.float64
    assert model.to("cpu", fg.float32)[1].bias.dtype == fg.float32
    assert model.to() is model and model.to(memory_format=fg.contiguous_format) is model
    with pytest.raises(TypeError, match="int64"):
        model.to(fg.ones(1, dtype=fg.int64))
    with pytest.raises(RuntimeError, match="copy"):
        model.to(fg.float32, copy=True)
    with pytest.raises(RuntimeError, match="Expected one of"):
        model.to("xyz")


def test_module_type_half_requires_grad():
    model = _model()
    assert model.type(fg.float64) is model
    assert model[0].bn.num_batches_tracked.dtype == fg.float64  # type() casts all, as torch
    model.type("torch.FloatTensor")
    assert model[1].weight.dtype == fg.float32
    with pytest.raises(TypeError, match="floating"):
        model.type(fg.int64)
    assert model.half()[1].weight.dtype == fg.float16
    assert model.float().requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.requires_grad for p in model.requires_grad_().parameters())
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        model.requires_grad_(1)


def test_module_casts_match_torch():
    torch = pytest.importorskip("torch")
    for call in ("to(F64)", "type(F64)", "half()", "to(device='cpu', dtype=F64)", "double()",
                 "to(ZERO64)"):
        dtypes = []
        for module in (fg, torch):
            model = module.nn.Sequential(module.nn.Linear(2, 3), module.nn.BatchNorm1d(3))
            names = {"F64": module.float64, "ZERO64": module.zeros(1, dtype=module.float64)}
            eval("model." + call, names, {"model": model})
            dtypes.append([str(t.dtype).replace("torch.", "") for t in model.state_dict().values()])
        assert dtypes[0] == dtypes[1], call


def test_get_submodule_parameter_buffer():
    model = _model()
    assert model.get_submodule("") is model
    assert model.get_submodule("0.fc") is model[0].fc
    assert model.get_parameter("0.fc.weight") is model[0].fc.weight
    assert model.get_parameter("1.bias") is model[1].bias
    assert model.get_buffer("0.bn.running_mean") is model[0].bn.running_mean
    for call, pattern in [
        (lambda: model.get_submodule("0.fc.weight"), "`weight` is not an nn.Module"),
        (lambda: model.get_submodule("5"), "Sequential has no attribute `5`"),
        (lambda: model.get_submodule("0.x"), "Block has no attribute `x`"),
        (lambda: model.get_parameter("0"), "`0` is not an nn.Parameter"),
        (lambda: model.get_parameter("0.fc.foo"), "Linear has no attribute `foo`"),
        (lambda: model.get_parameter("0.bn.running_mean"), "is not an nn.Parameter"),
        (lambda: model.get_buffer("0.fc.weight"), "`weight` is not a buffer"),
    ]:
        with pytest.raises(AttributeError, match=pattern):
            call()


REGISTRATION_ERRORS = [
    (lambda m, nn: m.add_module("a.b", nn.ReLU()), KeyError, "cannot contain"),
    (lambda m, nn: m.add_module("", nn.ReLU()), KeyError, "empty"),
    (lambda m, nn: m.add_module(1, nn.ReLU()), TypeError, "should be a string"),
    (lambda m, nn: m.add_module("train", nn.ReLU()), KeyError, "already exists"),
    (lambda m, nn: m.add_module("x", 3), TypeError, "not a Module subclass"),
    (lambda m, nn: m.register_parameter("a.b", None), KeyError, "cannot contain"),
    (lambda m, nn: m.register_buffer("train", None), KeyError, "already exists"),
    (lambda m, nn: m.register_buffer("q", 3), TypeError, "buffer"),
    (lambda m, nn: m.train("no"), ValueError, "training mode is expected to be boolean"),
]


@pytest.mark.parametrize("call, error, pattern", REGISTRATION_ERRORS)
def test_registration_checks_match_torch(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(_model(), nn)
    torch = pytest.importorskip("torch")
    with pytest.raises(error):
        call(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.nn)


def test_register_module_is_add_module():
    model = _model()
    model.register_module("extra", nn.ReLU())
    assert model.extra is model.get_submodule("extra")


def test_named_members_remove_duplicate():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    assert [n for n, _ in model.named_modules()] == ["", "0"]
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == ["", "0", "1"]
    assert [n for n, _ in model.named_modules(prefix="p")] == ["p", "p.0"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in model.named_parameters(remove_duplicate=False)] == \
        ["0.weight", "0.bias", "1.weight", "1.bias"]
    bn = nn.BatchNorm1d(2)
    twice = nn.Sequential(bn, bn)
    assert len(list(twice.named_buffers(remove_duplicate=False))) == 6
    assert len(list(twice.named_buffers())) == 3
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(2, 2)
    theirs = torch.nn.Sequential(linear, linear)
    assert [n for n, _ in theirs.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in theirs.named_modules(remove_duplicate=False)] == \
        [n for n, _ in model.named_modules(remove_duplicate=False)]
