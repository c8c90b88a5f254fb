"""Creation and random functions (PyTorch's signatures, dtypes, shapes and errors), the
generator functions, and the dtype aliases and default dtype."""
import math

import numpy as np
import pytest

import fastgrad as fg


# ------------------------------------------------------------------------------- factories
@pytest.mark.parametrize("call", [
    "empty(2, 3)", "empty((2, 3), dtype={i64})", "eye(3)", "eye(2, 3)", "eye(2, m=4)", "eye(0)",
    "eye(3, dtype={i64})", "linspace(0, 1, 5)", "linspace(0, 10, 5, dtype={i64})",
    "linspace(-10, 10, 7, dtype={i64})", "linspace(0, 1, 1)", "linspace(0, 1, 0)",
    "linspace(0, -1, 3)", "linspace(-3.5, 2.25, 17)", "linspace(0, 1, 5, dtype={f64})",
    "logspace(0, 2, 3)", "logspace(0, 2, 3, base=2)", "logspace(0, 2, 3, 2)",
    "logspace(0, 3, 4, dtype={i64})", "logspace(-1, 1, 5, dtype={f64})",
    "full_like(x, 7)", "full_like(x, 7.5, dtype={i64})", "full_like(xi, 2.5)",
    "full_like(x, True)", "empty_like(x)", "empty_like(x, dtype={f64})", "zeros_like(xi)",
    "ones_like(x, dtype={i64})", "as_tensor([1, 2])", "as_tensor([1.5])",
    "as_tensor(x, dtype={f64})", "zeros(2, 3, dtype={f64})", "ones((2,))", "full((2,), 3)",
])
def test_factories_match_torch(call):
    torch = pytest.importorskip("torch")

    def run(module, i64, f64):
        x = module.ones(2, 3)
        xi = module.ones(2, dtype=i64)
        return eval("module." + call.format(i64="i64", f64="f64"),
                    {"module": module, "x": x, "xi": xi, "i64": i64, "f64": f64})
    ours = run(fg, fg.int64, fg.float64)
    theirs = run(torch, torch.int64, torch.float64)
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    if not call.startswith("empty"):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_factories_without_torch():
    np.testing.assert_array_equal(fg.eye(2, 3).numpy(), np.eye(2, 3, dtype=np.float32))
    assert fg.eye(2).dtype == fg.float32 and fg.eye(2, requires_grad=True).requires_grad
    values = fg.linspace(0, 1, 5).numpy()
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, np.float32([0, 0.25, 0.5, 0.75, 1]))
    np.testing.assert_array_equal(fg.linspace(0, 10, 5, dtype=fg.int64).numpy(),
                                  [0, 2, 5, 7, 10])  # truncated, as PyTorch
    np.testing.assert_array_equal(fg.linspace(fg.tensor(0), fg.tensor(1.0), 3).numpy(),
                                  np.float32([0, 0.5, 1]))
    np.testing.assert_allclose(fg.logspace(0, 2, 3).numpy(), [1, 10, 100])
    assert fg.empty(2, 3).shape == (2, 3) and fg.empty((4,)).dtype == fg.float32
    full = fg.full_like(fg.ones(2, dtype=fg.int64), 2.5)
    assert full.dtype == fg.int64 and full.tolist() == [2, 2]
    assert fg.empty_like(fg.ones(2, dtype=fg.int32)).dtype == fg.int32


def test_linspace_ends_are_exact_and_symmetric():
    values = fg.linspace(-3.7, 11.3, 101, dtype=fg.float64).numpy()
    assert values[0] == -3.7 and values[-1] == 11.3
    np.testing.assert_allclose(np.diff(values), 0.15, rtol=1e-9)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: fg.eye(-1), RuntimeError, "n must be greater or equal to 0"),
    (lambda: fg.eye(2, -1), RuntimeError, "m must be greater or equal to 0"),
    (lambda: fg.eye(2.0), TypeError, "n must be an int"),
    (lambda: fg.linspace(0, 1, -1), RuntimeError, "non-negative"),
    (lambda: fg.linspace(0, 1, 3.0), TypeError, "steps must be an int"),
    (lambda: fg.linspace("0", 1, 3), TypeError, "start must be a number"),
    (lambda: fg.linspace(fg.ones(2), 1, 3), RuntimeError, "one-element"),
    (lambda: fg.empty(-1), RuntimeError, "negative"),
    (lambda: fg.full_like([1], 2), TypeError, "Tensor"),
    (lambda: fg.as_tensor(["a"]), TypeError, "data"),
])
def test_factory_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_as_tensor_shares_memory_where_it_can():
    x = fg.ones(3)
    assert fg.as_tensor(x) is x and fg.as_tensor(x, dtype=fg.float32) is x
    cast = fg.as_tensor(x, dtype=fg.float64)
    assert cast.dtype == fg.float64
    array = np.zeros(3)
    shared = fg.as_tensor(array)
    array[0] = 5
    assert shared.dtype == fg.float64 and shared[0].item() == 5
    copied = fg.as_tensor(array, dtype=fg.float32)
    array[1] = 7
    assert copied[1].item() == 0
    listed = fg.as_tensor([1.0, 2.0])
    assert listed.dtype == fg.float32


# ---------------------------------------------------------------------------------- random
def test_random_functions_follow_manual_seed():
    def draw():
        return [fg.rand(3), fg.randn(3), fg.randint(0, 9, (4,)), fg.randperm(6),
                fg.normal(0.0, 1.0, (3,)), fg.multinomial(fg.ones(5), 3),
                fg.bernoulli(fg.full((4,), 0.5)), fg.rand_like(fg.ones(2)),
                fg.randn_like(fg.ones(2)), fg.randint_like(fg.ones(2), 5),
                fg.ones(4).uniform_(), fg.ones(4).normal_(), fg.ones(4).bernoulli_()]
    fg.manual_seed(7)
    first = draw()
    fg.manual_seed(7)
    second = draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    generated = [fg.rand(3, generator=fg.Generator(1)), fg.rand(3, generator=fg.Generator(1))]
    np.testing.assert_array_equal(*[g.numpy() for g in generated])


@pytest.mark.parametrize("make", [
    lambda g: fg.rand(4, generator=g), lambda g: fg.randn(4, generator=g),
    lambda g: fg.randint(10, (4,), generator=g), lambda g: fg.randperm(8, generator=g),
    lambda g: fg.normal(fg.zeros(4), 1.0, generator=g),
    lambda g: fg.multinomial(fg.ones(6), 3, generator=g),
    lambda g: fg.bernoulli(fg.full((8,), 0.5), generator=g),
    lambda g: fg.rand_like(fg.ones(4), generator=g),
    lambda g: fg.randint_like(fg.ones(4), 9, generator=g),
    lambda g: fg.ones(4).uniform_(generator=g), lambda g: fg.ones(4).normal_(generator=g),
    lambda g: fg.ones(8).bernoulli_(generator=g),
])
def test_generator_argument_is_respected(make):
    fg.manual_seed(0)
    a = make(fg.Generator(3)).numpy()
    fg.manual_seed(1)  # the default generator's state must not matter
    b = make(fg.Generator(3)).numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="generator"):
        make(3)


def test_randint_forms_and_dtypes():
    fg.manual_seed(0)
    for x in (fg.randint(10, (500,)), fg.randint(3, 10, (500,)), fg.randint(10, size=(500,)),
              fg.randint(high=10, size=(500,)), fg.randint(low=3, high=10, size=[500])):
        assert x.dtype == fg.int64 and x.shape == (500,)
        assert 0 <= x.numpy().min() and x.numpy().max() < 10
    assert fg.randint(3, 10, (2000,)).numpy().min() == 3
    assert fg.randint(10, ()).shape == ()
    assert fg.randint(0, 10, (2,), dtype=fg.float32).dtype == fg.float32
    assert fg.randint(0, 10, fg.Size([2, 2])).shape == (2, 2)
    x = fg.randint_like(fg.ones(2, 3), 2, 10)
    assert x.dtype == fg.float32 and x.shape == (2, 3)
    assert np.all((x.numpy() >= 2) & (x.numpy() < 10))
    assert fg.randint_like(fg.ones(3, dtype=fg.int32), high=4).dtype == fg.int32


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: fg.randint(10, 3), TypeError, "size"),
    (lambda: fg.randint(5, 5, (2,)), RuntimeError, "from=5 >= to=5"),
    (lambda: fg.randint(5, 2, (2,)), RuntimeError, "less than"),
    (lambda: fg.randint(0, 300, (2,), dtype=fg.uint8), RuntimeError, "range of dtype uint8"),
    (lambda: fg.randint(-1, 10, (2,), dtype=fg.uint8), RuntimeError, "range"),
    (lambda: fg.randint(0.5, 10, (2,)), TypeError, "low must be an int"),
    (lambda: fg.randint(10, (-1,)), RuntimeError, "negative"),
    (lambda: fg.randperm(-1), RuntimeError, "non-negative"),
    (lambda: fg.randperm(3.0), TypeError, "n must be an int"),
    (lambda: fg.randperm(300, dtype=fg.int8), RuntimeError, "too large"),
    (lambda: fg.rand(2, dtype=fg.int64), TypeError, "floating"),
    (lambda: fg.randn_like(fg.ones(2, dtype=fg.int64)), TypeError, "floating"),
])
def test_random_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("call", [
    "randint(10, 3)", "randint(5, 5, (2,))", "randint(0, 300, (2,), dtype=torch.uint8)",
    "randint(0.5, 10, (2,))", "randperm(-1)", "randperm(3.0)", "eye(-1)", "linspace(0, 1, -1)",
    "linspace(0, 1, 3.0)", "normal(0, -1.0, (2,))", "normal(0.0, 1.0)",
    "normal(torch.zeros(3), torch.ones(2))", "normal(torch.zeros(3), -torch.ones(3))",
    "multinomial(torch.tensor([0.1, 0.9]), 3)", "multinomial(torch.tensor([-0.1, 0.9]), 1)",
    "multinomial(torch.tensor([0., 0.]), 1)", "multinomial(torch.ones(2, 2, 3), 2)",
    "multinomial(torch.ones(3), 0)", "multinomial(torch.ones(3), 2.0)",
    "multinomial(torch.tensor([1., float('nan')]), 1)", "bernoulli(torch.full((3,), 2.))",
])
def test_random_error_types_match_torch(call):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as theirs:
        eval("torch." + call, {"torch": torch})
    with pytest.raises(Exception) as ours:
        eval("fg." + call.replace("torch.", "fg."), {"fg": fg})
    expected = theirs.type if theirs.type is not NotImplementedError else RuntimeError
    assert issubclass(ours.type, expected), (ours.value, theirs.value)


def test_randperm_is_a_permutation():
    values = fg.randperm(50).numpy()
    assert values.dtype == np.int64 and sorted(values) == list(range(50))
    assert fg.randperm(0).shape == (0,)
    assert fg.randperm(5, dtype=fg.float32).dtype == fg.float32


def test_random_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    pairs = [
        ("randint(10, (3,))", None), ("randint(0, 10, (2,), dtype={f32})", None),
        ("randperm(5)", None), ("randperm(5, dtype={f32})", None), ("rand(2)", None),
        ("randn(2, dtype={f64})", None), ("rand_like(ones(2, dtype={f64}))", None),
        ("randint_like(ones(2), 10)", None), ("normal(0, 1, (2, 3))", None),
        ("normal(zeros(3), ones(3, dtype={f64}))", None), ("normal(0.0, ones(3))", None),
        ("normal(zeros(2, 3), ones(3))", None), ("normal(zeros(3))", None),
        ("multinomial(ones(3, dtype={f64}), 2)", None), ("multinomial(ones(2, 3), 2)", None),
        ("bernoulli(full((3,), 0.5))", None), ("bernoulli(full((3,), 0.5), 0.2)", None),
        ("bernoulli(full((3,), 0.5, dtype={f64}))", None),
    ]
    for call, _ in pairs:
        outputs = []
        for module in (fg, torch):
            names = {n: getattr(module, n) for n in ("ones", "zeros", "full")}
            names.update(f32=module.float32, f64=module.float64)
            outputs.append(eval("module." + call.format(f32="f32", f64="f64"),
                                {"module": module, **names}))
        ours, theirs = outputs
        assert ours.shape == tuple(theirs.shape), call
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), call


def test_normal_forms_and_moments():
    fg.manual_seed(0)
    x = fg.normal(2.0, 3.0, (20000,))
    assert x.dtype == fg.float32 and abs(x.mean().item() - 2) < 0.1
    assert abs(x.numpy().std() - 3) < 0.1
    means = fg.tensor([0.0, 100.0])
    y = fg.normal(means, fg.tensor([1.0, 0.0]))
    assert abs(y[0].item()) < 6 and y[1].item() == 100.0
    z = fg.normal(means)  # std 1
    assert z.shape == (2,) and not z.requires_grad
    w = fg.normal(5.0, fg.zeros(2, 2))
    assert w.tolist() == [[5.0, 5.0], [5.0, 5.0]]
    with pytest.raises(TypeError, match="size"):
        fg.normal(means, 1.0, (2,))
    with pytest.raises(TypeError, match="floating"):
        fg.normal(fg.zeros(3, dtype=fg.int64), 1.0)


def test_multinomial_distribution_and_forms():
    fg.manual_seed(0)
    weights = fg.tensor([1.0, 0.0, 3.0])
    draws = fg.multinomial(weights, 4000, replacement=True).numpy()
    assert draws.dtype == np.int64 and 1 not in draws
    assert abs((draws == 2).mean() - 0.75) < 0.03
    rows = fg.multinomial(fg.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), 1)
    assert rows.shape == (2, 1) and rows.tolist() == [[1], [0]]
    assert fg.ones(3).multinomial(2).shape == (2,)
    # without replacement: distinct; categories of weight 0 come last, as in PyTorch
    assert fg.multinomial(fg.tensor([0.0, 0.9, 0.0]), 2).tolist() == [1, 0]
    for _ in range(20):
        picked = fg.multinomial(fg.rand(10) + 0.01, 10).numpy()
        assert sorted(picked) == list(range(10))


def test_multinomial_without_replacement_follows_sequential_sampling():
    # P(first draw = i) = w_i / sum(w); P(second = j | first = i) = w_j / (sum - w_i)
    fg.manual_seed(0)
    weights = np.array([1.0, 2.0, 7.0])
    firsts = fg.multinomial(fg.tensor(np.tile(weights, (20000, 1))), 2).numpy()
    np.testing.assert_allclose(np.bincount(firsts[:, 0], minlength=3) / 20000,
                               weights / weights.sum(), atol=0.015)
    after_2 = firsts[firsts[:, 0] == 2, 1]
    np.testing.assert_allclose(np.bincount(after_2, minlength=3)[:2] / len(after_2),
                               [1 / 3, 2 / 3], atol=0.02)


def test_bernoulli_forms():
    fg.manual_seed(0)
    probabilities = fg.tensor([0.0, 1.0, 0.5])
    draws = fg.bernoulli(probabilities)
    assert draws.dtype == fg.float32 and draws[0].item() == 0 and draws[1].item() == 1
    assert fg.full((3,), 0.5).bernoulli().shape == (3,)
    always = fg.bernoulli(fg.zeros(4, dtype=fg.int64), 1.0)
    assert always.dtype == fg.int64 and always.tolist() == [1, 1, 1, 1]
    rate = fg.bernoulli(fg.full((20000,), 0.3)).numpy().mean()
    assert abs(rate - 0.3) < 0.02
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        fg.bernoulli(fg.tensor([1.5]))
    with pytest.raises(RuntimeError, match=r"p=2"):
        fg.bernoulli(fg.ones(2), 2)
    with pytest.raises(TypeError, match="floating"):
        fg.bernoulli(fg.ones(2, dtype=fg.int64))


# --------------------------------------------------------------------- seeds and rng state
def test_seed_functions():
    fg.manual_seed(11)
    assert fg.initial_seed() == 11
    state = fg.get_rng_state()
    a = fg.rand(4).numpy()
    fg.set_rng_state(state)
    np.testing.assert_array_equal(fg.rand(4).numpy(), a)
    chosen = fg.seed()
    assert isinstance(chosen, int) and 0 <= chosen < 2 ** 64
    assert fg.initial_seed() == chosen
    generator = fg.Generator()
    assert isinstance(generator.initial_seed(), int)
    assert generator.seed() == generator.initial_seed()
    with pytest.raises(TypeError, match="seed"):
        fg.Generator(1.5)
    fg.manual_seed(0)


# ------------------------------------------------------------------------- dtypes, default
def test_dtype_aliases():
    assert fg.float is fg.float32 and fg.double is fg.float64 and fg.half is fg.float16
    assert fg.long is fg.int64 and fg.int is fg.int32 and fg.short is fg.int16
    assert fg.bool is fg.bool_
    assert (fg.int8, fg.uint8, fg.int16) == (np.int8, np.uint8, np.int16)
    assert isinstance(fg.float32, fg.dtype)
    assert fg.zeros(2, dtype=fg.long).dtype == np.int64
    assert fg.tensor([1], dtype=fg.uint8).dtype == np.uint8


def test_dtype_aliases_match_torch():
    torch = pytest.importorskip("torch")
    for name in ("float", "double", "half", "long", "int", "short", "bool", "int8", "uint8",
                 "int16", "float16", "float32", "float64", "int32", "int64"):
        assert str(getattr(fg, name)) == str(getattr(torch, name)).replace("torch.", ""), name


def test_builtins_still_work_inside_dtypes():
    # the aliases shadow float/int/bool in fastgrad.dtypes; its functions must not see them
    assert fg.dtypes.scalar_dtype(2.5, fg.int64) == fg.float32
    assert fg.dtypes.scalar_dtype(True, fg.int64) == fg.int64
    assert fg.dtypes.scalar_dtype(2, fg.bool_) == fg.int64
    assert (fg.ones(2, dtype=fg.int64) * 2.5).dtype == fg.float32


@pytest.fixture
def restore_default_dtype():
    yield
    fg.set_default_dtype(fg.float32)


def test_set_default_dtype_is_honoured(restore_default_dtype):
    assert fg.get_default_dtype() == fg.float32
    fg.set_default_dtype(fg.float64)
    assert fg.get_default_dtype() == fg.float64
    assert fg.tensor([1.5]).dtype == fg.float64
    assert fg.zeros(2).dtype == fg.float64 and fg.rand(2).dtype == fg.float64
    assert fg.full((2,), 1.5).dtype == fg.float64 and fg.arange(0.0, 1.0, 0.5).dtype == fg.float64
    assert fg.linspace(0, 1, 3).dtype == fg.float64 and fg.eye(2).dtype == fg.float64
    assert fg.normal(0.0, 1.0, (2,)).dtype == fg.float64
    assert fg.nn.Linear(2, 2).weight.dtype == fg.float64
    assert (fg.ones(2, dtype=fg.int64) * 0.5).dtype == fg.float64
    assert (fg.ones(2, dtype=fg.int64) / fg.ones(2, dtype=fg.int64)).dtype == fg.float64
    fg.set_default_dtype(fg.float32)
    assert fg.tensor([1.5]).dtype == fg.float32 and fg.nn.Linear(2, 2).weight.dtype == fg.float32
    for bad in (fg.int64, fg.float16, "int32"):
        with pytest.raises(TypeError, match="default type"):
            fg.set_default_dtype(bad)


def test_set_default_dtype_matches_torch(restore_default_dtype):
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    try:
        for dtype in ("float64", "float32"):
            torch.set_default_dtype(getattr(torch, dtype))
            fg.set_default_dtype(getattr(fg, dtype))
            for call in ("tensor([1.5])", "zeros(2)", "full((2,), 1.5)", "linspace(0, 1, 3)",
                         "eye(2)", "arange(0.0, 1.0, 0.5)"):
                ours = eval("fg." + call, {"fg": fg})
                theirs = eval("torch." + call, {"torch": torch})
                assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), call
    finally:
        torch.set_default_dtype(previous)


def test_is_tensor_is_floating_point_numel():
    x = fg.ones(2, 3)
    assert fg.is_tensor(x) and fg.is_tensor(fg.nn.Parameter(x)) and not fg.is_tensor([1])
    assert fg.is_floating_point(x) and not fg.is_floating_point(x.long())
    assert fg.numel(x) == 6 == math.prod(x.shape)
    for call in (fg.is_floating_point, fg.numel):
        with pytest.raises(TypeError, match="must be Tensor"):
            call([1.0])
