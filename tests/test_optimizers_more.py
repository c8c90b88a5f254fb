"""optim: Adadelta, Adamax and NAdam against hand-computed updates, independent kernel formulas
and PyTorch; the fused arena step, skipped parameters, every backend, validation, state_dict."""
import inspect
import itertools

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import backends, nn, optim
from fastgrad.backends import KERNELS

P0 = np.array([1.0, -2.0])
GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5]),
         np.array([0.0, -0.75])]
NAMES = ("Adadelta", "Adamax", "NAdam")
KERNEL_OF = {"Adadelta": "adadelta_step", "Adamax": "adamax_step", "NAdam": "nadam_step"}


def _param(values, dtype=np.float64):
    return nn.Parameter(np.array(values, dtype))


def _ids(options):
    return "-".join(f"{k}={v}" for k, v in options.items()) or "defaults"


# ------------------------------------------------------- textbook updates (the hand computation)
def _adadelta_reference(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    """Zeiler's Adadelta written out: the parameter after each step."""
    p = np.array(p, np.float64)
    v, u, history = np.zeros_like(p), np.zeros_like(p), []
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
        history.append(p)
    return history


def _adamax_reference(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      maximize=False):
    p = np.array(p, np.float64)
    m, u, history = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, 1):
        g = (-g if maximize else g) + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        u = np.maximum(betas[1] * u, np.abs(g) + eps)
        p = p - lr / (1 - betas[0] ** t) * m / u
        history.append(p)
    return history


def _mu(t, beta1, momentum_decay):
    return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def _nadam_reference(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                     momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    """Dozat's NAdam as PyTorch writes it; the running product of the momentum coefficients
    is rounded to float32 at each step, as PyTorch keeps it in a float32 tensor."""
    p = np.array(p, np.float64)
    m, v, product, history = np.zeros_like(p), np.zeros_like(p), 1.0, []
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        mu, mu_next = _mu(t, betas[0], momentum_decay), _mu(t + 1, betas[0], momentum_decay)
        product = float(np.float32(product) * np.float32(mu))
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        denom = np.sqrt(v / (1 - betas[1] ** t)) + eps
        p = (p - lr * (1 - mu) / (1 - product) * g / denom
             - lr * mu_next / (1 - product * mu_next) * m / denom)
        history.append(p)
    return history


REFERENCES = {"Adadelta": _adadelta_reference, "Adamax": _adamax_reference,
              "NAdam": _nadam_reference}


def _options(name):
    if name == "Adadelta":
        choices = dict(rho=(0.9, 0.5), weight_decay=(0.0, 0.1), maximize=(False, True))
    elif name == "Adamax":
        choices = dict(betas=((0.9, 0.999), (0.5, 0.9)), weight_decay=(0.0, 0.1),
                       maximize=(False, True))
    else:
        choices = dict(momentum_decay=(4e-3, 0.5), weight_decay=(0.0, 0.1),
                       decoupled_weight_decay=(False, True), maximize=(False, True))
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


CASES = [pytest.param(name, o, id=f"{name}-{_ids(o)}") for name in NAMES for o in _options(name)]


@pytest.mark.parametrize("name, options", CASES)
def test_matches_hand_computed_steps(name, options):
    p = _param(P0)
    opt = getattr(optim, name)([p], lr=0.1, **options)
    expected = REFERENCES[name](P0, GRADS, lr=0.1, **options)
    for step, (g, p_expected) in enumerate(zip(GRADS, expected), 1):
        p.grad = fg.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.numpy(), p_expected, rtol=1e-13, atol=1e-15,
                                   err_msg=f"step {step}")
        assert opt.state[p]["step"] == float(step)


def test_first_steps_literal_values():
    # Adadelta from zero state: v = 0.1 g^2, delta = sqrt(eps / (0.1 g^2 + eps)) g
    p = _param(P0)
    opt = optim.Adadelta([p])
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    g = GRADS[0]
    delta = np.sqrt(1e-6 / (0.1 * g * g + 1e-6)) * g
    np.testing.assert_allclose(p.numpy(), P0 - delta, rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["square_avg"].numpy(), [0.025, 0.1], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["acc_delta"].numpy(), 0.1 * delta ** 2, rtol=1e-15)

    # Adamax's first step: m = 0.1 g, u = |g| + eps, corrected by 0.1: lr * sign(g) (eps 0)
    p = _param(P0)
    opt = optim.Adamax([p], lr=0.1, eps=0.0)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9, -1.9], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["exp_inf"].numpy(), [0.5, 1.0])

    # NAdam's first step (eps 0): g / d = sign(g) and m / d = 0.1 sign(g)
    p = _param(P0)
    opt = optim.NAdam([p], lr=0.1, eps=0.0)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    mu1, mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.004), 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    mu1_32 = float(np.float32(mu1))
    shift = 0.1 * (1 - mu1) / (1 - mu1_32) + 0.1 * mu2 / (1 - mu1_32 * mu2) * 0.1
    np.testing.assert_allclose(p.numpy(), [1.0 - shift, -2.0 + shift], rtol=1e-15)
    assert opt.state[p]["mu_product"] == mu1_32


def test_float32_parameters_step_in_float32():
    for name in NAMES:
        p = _param(P0, np.float32)
        opt = getattr(optim, name)([p], lr=0.1, weight_decay=0.1)
        for g in GRADS:
            p.grad = fg.tensor(g.astype(np.float32))
            opt.step()
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for k, v in opt.state[p].items()
                   if k not in opt.scalar_state)
        expected = REFERENCES[name](P0, GRADS, lr=0.1, weight_decay=0.1)[-1]
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-5, err_msg=name)


# ------------------------------------------------------------ independent kernel formulas
def _tolerance(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def _kernel_args(name, dtype, **changes):
    args = KERNELS[name].example(np.random.default_rng(7), dtype, 3)
    args.update(changes)
    return args


@pytest.mark.parametrize("maximize, weight_decay",
                         list(itertools.product((False, True), (0.0, 0.05))))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_adadelta_step_formula(maximize, weight_decay, dtype):
    args = _kernel_args("adadelta_step", dtype, lr=0.7, rho=0.8, eps=1e-4, maximize=maximize,
                        weight_decay=weight_decay)
    p, g, v, u = (args[k].astype(np.float64)
                  for k in ("param", "grad", "square_avg", "acc_delta"))
    g = (-g if maximize else g) + weight_decay * p
    v = 0.8 * v + 0.2 * g * g
    delta = np.sqrt((u + 1e-4) / (v + 1e-4)) * g
    u = 0.8 * u + 0.2 * delta * delta
    KERNELS["adadelta_step"].reference(**args)
    np.testing.assert_allclose(args["param"], p - 0.7 * delta, **_tolerance(dtype))
    np.testing.assert_allclose(args["square_avg"], v, **_tolerance(dtype))
    np.testing.assert_allclose(args["acc_delta"], u, **_tolerance(dtype))


@pytest.mark.parametrize("maximize, weight_decay",
                         list(itertools.product((False, True), (0.0, 0.05))))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_adamax_step_formula(maximize, weight_decay, dtype):
    args = _kernel_args("adamax_step", dtype, step=4, lr=0.05, beta1=0.8, beta2=0.9, eps=1e-3,
                        maximize=maximize, weight_decay=weight_decay)
    p, g, m, u = (args[k].astype(np.float64) for k in ("param", "grad", "exp_avg", "exp_inf"))
    u[0] = 0.0  # the |g| + eps side of the maximum wins here
    args["exp_inf"][0] = 0.0
    g = (-g if maximize else g) + weight_decay * p
    m = 0.8 * m + 0.2 * g
    u = np.maximum(0.9 * u, np.abs(g) + 1e-3)
    KERNELS["adamax_step"].reference(**args)
    np.testing.assert_allclose(args["param"], p - 0.05 / (1 - 0.8 ** 4) * m / u,
                               **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_avg"], m, **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_inf"], u, **_tolerance(dtype))


@pytest.mark.parametrize("decoupled, maximize, weight_decay",
                         list(itertools.product((False, True), (False, True), (0.0, 0.05))))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_nadam_step_formula(decoupled, maximize, weight_decay, dtype):
    product = 0.4
    args = _kernel_args("nadam_step", dtype, step=6, mu_product=product, lr=0.05, beta1=0.8,
                        beta2=0.99, eps=1e-8, momentum_decay=0.1, maximize=maximize,
                        weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    p, g, m, v = (args[k].astype(np.float64) for k in ("param", "grad", "exp_avg", "exp_avg_sq"))
    g = -g if maximize else g
    if decoupled:
        p = p * (1 - 0.05 * weight_decay)
    else:
        g = g + weight_decay * p
    mu, mu_next = _mu(6, 0.8, 0.1), _mu(7, 0.8, 0.1)
    m = 0.8 * m + 0.2 * g
    v = 0.99 * v + 0.01 * g * g
    denom = np.sqrt(v / (1 - 0.99 ** 6)) + 1e-8
    expected = (p - 0.05 * (1 - mu) / (1 - product) * g / denom
                - 0.05 * mu_next / (1 - product * mu_next) * m / denom)
    KERNELS["nadam_step"].reference(**args)
    np.testing.assert_allclose(args["param"], expected, **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_avg"], m, **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_avg_sq"], v, **_tolerance(dtype))


def test_reference_adamax_keeps_nan_from_either_side_of_the_maximum():
    args = _kernel_args("adamax_step", np.float64)
    args["grad"][0], args["exp_inf"][1] = np.nan, np.nan
    KERNELS["adamax_step"].reference(**args)
    assert np.isnan(args["exp_inf"][:2]).all() and np.isnan(args["param"][:2]).all()
    assert np.isfinite(args["param"][2:]).all()


# ------------------------------------------------------------------------ every backend
@pytest.mark.parametrize("backend", backends.available())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_every_backend_steps_like_the_reference(name, backend, dtype):
    """Five steps of each optimiser over a two-parameter arena on ``backend`` against the
    NumPy reference kernels; the second parameter misses a gradient once (the per-parameter
    path)."""
    values = np.random.default_rng(5).standard_normal((6, 37))
    results = {}
    for run in ("numpy", backend):
        params = [_param(values[0], dtype), _param(values[1, :5], dtype)]
        opt = getattr(optim, name)(params, lr=0.05, weight_decay=0.01)
        with backends.use(run):
            for step in range(5):
                params[0].grad = fg.tensor(values[step + 1].astype(dtype))
                params[1].grad = None if step == 2 else fg.tensor(values[step, :5].astype(dtype))
                opt.step()
        results[run] = [p.numpy().copy() for p in params]
    tolerance = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12)
    for ours, reference in zip(results[backend], results["numpy"]):
        np.testing.assert_allclose(ours, reference, **tolerance)


# ---------------------------------------------------------------------------- against PyTorch
SHAPES = [(3, 4), (5,), (1,)]
TORCH_LR = {"Adadelta": 1.0, "Adamax": 0.05, "NAdam": 0.05}


def _problem(seed=0, steps=20):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return values, grads


def _groups(params, lr):
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}]


def _run_pair(torch, name, options, has_grad=lambda step, index: True, steps=20):
    """Our optimiser and PyTorch's over the same two groups for ``steps`` steps; asserts the
    parameters agree after every step."""
    values, grads = _problem(steps=steps)
    ours = [_param(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    lr = TORCH_LR[name]
    opt = getattr(optim, name)(_groups(ours, lr), lr=lr, **options)
    topt = getattr(torch.optim, name)(_groups(theirs, lr), lr=lr, **options)
    for step, gs in enumerate(grads):
        for i, (p, q, g) in enumerate(zip(ours, theirs, gs)):
            given = has_grad(step, i)
            p.grad = fg.tensor(g) if given else None
            q.grad = torch.tensor(g) if given else None
        opt.step()
        topt.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"step {step + 1}")
    return opt, topt, ours, theirs


def _assert_state_matches(opt, topt):
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert list(ours["state"]) == list(theirs["state"])
    assert [g["params"] for g in ours["param_groups"]] == \
        [g["params"] for g in theirs["param_groups"]]
    for group, tgroup in zip(ours["param_groups"], theirs["param_groups"]):
        assert {k: v for k, v in group.items() if k != "params"}.items() <= tgroup.items()
    for index, values in theirs["state"].items():
        assert list(ours["state"][index]) == list(values), index  # PyTorch's names and order
        for key, value in values.items():
            mine = ours["state"][index][key]
            if key in opt.scalar_state:
                assert isinstance(mine, float) and mine == value.item(), (index, key)
            else:
                np.testing.assert_allclose(mine.numpy(), value.numpy(), rtol=1e-10,
                                           atol=1e-12, err_msg=f"{index}: {key}")


@pytest.mark.parametrize("name, options",
                         CASES + [pytest.param("Adadelta", dict(eps=1e-3), id="Adadelta-eps"),
                                  pytest.param("Adamax", dict(eps=1e-2), id="Adamax-eps")])
def test_matches_pytorch_for_20_steps(name, options):
    torch = pytest.importorskip("torch")
    opt, topt, _, _ = _run_pair(torch, name, options)
    _assert_state_matches(opt, topt)


@pytest.mark.parametrize("name, options", [
    ("Adadelta", dict(weight_decay=0.1)),
    ("Adamax", dict(weight_decay=0.1, maximize=True)),
    ("NAdam", dict(weight_decay=0.1)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
])
def test_parameters_without_gradients_are_skipped_like_pytorch(name, options):
    torch = pytest.importorskip("torch")

    def has_grad(step, index):
        # parameter 1 misses every third step and parameter 2 gets its first gradient late,
        # so the step counts (bias corrections, NAdam's products) differ between parameters
        return not (index == 1 and step % 3 == 1) and not (index == 2 and step < 4)

    opt, topt, _, _ = _run_pair(torch, name, options, has_grad)
    _assert_state_matches(opt, topt)


@pytest.mark.parametrize("name, options", [
    ("Adadelta", dict(weight_decay=0.1, rho=0.8)),
    ("Adamax", dict(betas=(0.8, 0.99))),
    ("NAdam", dict(momentum_decay=0.1, decoupled_weight_decay=True, weight_decay=0.1)),
])
def test_loads_a_pytorch_state_dict_and_continues_like_pytorch(name, options):
    torch = pytest.importorskip("torch")
    _, topt, _, theirs = _run_pair(torch, name, options, steps=6)
    ours = [_param(q.detach().numpy().copy()) for q in theirs]
    opt = getattr(optim, name)(_groups(ours, 1.0), lr=1.0)
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["lr"] == TORCH_LR[name]
    assert all(isinstance(s[k], float) for s in opt.state.values() for k in opt.scalar_state)
    _, grads = _problem(seed=1, steps=5)
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad, q.grad = fg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
    _assert_state_matches(opt, topt)


def test_nadam_changed_beta1_with_skipped_steps_matches_pytorch():
    """Two parameters with equal step counts but different momentum products (beta1 changed
    while each missed a step) are stepped one by one, each with its own product."""
    torch = pytest.importorskip("torch")
    values, grads = _problem(steps=5)
    ours = [_param(v) for v in values[:2]]
    theirs = [torch.tensor(v, requires_grad=True) for v in values[:2]]
    opt, topt = optim.NAdam(ours, lr=0.05), torch.optim.NAdam(theirs, lr=0.05)
    schedule = [(True, True), (True, False), (False, True), (True, True), (True, True)]
    for step, (given, gs) in enumerate(zip(schedule, grads)):
        if step == 2:
            for o in (opt, topt):
                o.param_groups[0]["betas"] = (0.5, 0.999)
        for p, q, g, has in zip(ours, theirs, gs, given):
            p.grad, q.grad = (fg.tensor(g), torch.tensor(g)) if has else (None, None)
        opt.step()
        topt.step()
    a, b = (opt.state[p] for p in ours)
    assert a["step"] == b["step"] and a["mu_product"] != b["mu_product"]
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
    _assert_state_matches(opt, topt)


def test_nadam_product_takes_the_default_dtype_like_pytorch():
    """PyTorch keeps ``mu_product`` in the default dtype: float64 after
    ``set_default_dtype(float64)``, so the product is no longer rounded to float32."""
    torch = pytest.importorskip("torch")
    ours_before, theirs_before = fg.get_default_dtype(), torch.get_default_dtype()
    try:
        fg.set_default_dtype(fg.float64)
        torch.set_default_dtype(torch.float64)
        opt, topt, ours, theirs = _run_pair(torch, "NAdam", {}, steps=3)
    finally:
        fg.set_default_dtype(ours_before)
        torch.set_default_dtype(theirs_before)
    product = opt.state[ours[0]]["mu_product"]
    assert product == topt.state[theirs[0]]["mu_product"].item()
    assert product != float(np.float32(product))
    _assert_state_matches(opt, topt)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_signature_as_pytorch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    positional = [k for k, v in ours.items() if v.kind == v.POSITIONAL_OR_KEYWORD]
    assert positional == [k for k, v in theirs.items()
                          if v.kind == v.POSITIONAL_OR_KEYWORD][:len(positional)]
    for key, parameter in ours.items():
        assert key in theirs and parameter.default == theirs[key].default, key


# ------------------------------------------------------------------- fused arena path
@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the calls of each of these optimisers' kernels (and the elements each covered)."""
    calls = {name: [] for name in KERNEL_OF.values()}
    for name in calls:
        implementation = getattr(backends.K, name)

        def counted(*args, _name=name, _implementation=implementation, **kwargs):
            calls[_name].append(args[0].size)
            return _implementation(*args, **kwargs)
        monkeypatch.setitem(backends.K.__dict__, name, counted)
    return calls


FUSED_CASES = [("Adadelta", dict(weight_decay=0.1)), ("Adamax", dict(weight_decay=0.1)),
               ("NAdam", dict(weight_decay=0.1)),
               ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True))]


@pytest.mark.parametrize("name, options", FUSED_CASES)
def test_fused_arena_step_equals_per_parameter_steps(name, options, kernel_calls):
    values, grads = _problem(steps=5)
    together = [_param(v) for v in values]
    alone = [_param(v) for v in values]
    opt = getattr(optim, name)(together, lr=0.05, **options)
    singles = [getattr(optim, name)([p], lr=0.05, **options) for p in alone]
    calls = kernel_calls[KERNEL_OF[name]]
    for gs in grads:
        for p, q, g in zip(together, alone, gs):
            p.grad, q.grad = fg.tensor(g), fg.tensor(g)
        del calls[:]
        opt.step()
        assert calls == [sum(p.numel() for p in together)]  # one call over the whole arena
        for single in singles:
            single.step()
        for p, q in zip(together, alone):
            np.testing.assert_array_equal(p.numpy(), q.numpy())
    for p, q, single in zip(together, alone, singles):
        for key, value in opt.state[p].items():
            other = single.state[q][key]
            if key in opt.scalar_state:
                assert value == other
            else:
                np.testing.assert_array_equal(value.numpy(), other.numpy())
                assert np.shares_memory(value.numpy(), p._arena.state_buffers[key])


@pytest.mark.parametrize("name, fused_after_gap", [
    ("Adadelta", True),   # the update does not use the step count
    ("Adamax", False),    # bias corrections differ: per parameter
    ("NAdam", False),
])
def test_per_parameter_path_only_when_needed(name, fused_after_gap, kernel_calls):
    params = [_param(v) for v in _problem()[0]]
    opt = getattr(optim, name)(params, lr=0.05)
    calls = kernel_calls[KERNEL_OF[name]]
    sizes = [p.numel() for p in params]
    params[0].grad, params[2].grad = fg.tensor(np.ones(SHAPES[0])), fg.tensor(np.ones(1))
    opt.step()
    assert calls == [sizes[0], sizes[2]]  # the parameter without a gradient is skipped
    assert params[1] not in opt.state  # its state starts at its first gradient, as PyTorch's
    params[1].grad = fg.tensor(np.ones(SHAPES[1]))
    del calls[:]
    opt.step()
    assert calls == ([sum(sizes)] if fused_after_gap else sizes)
    assert [opt.state[p]["step"] for p in params] == [2.0, 1.0, 2.0]


def test_nadam_equal_steps_with_different_products_step_one_by_one(kernel_calls):
    """The same history as the PyTorch test above, without PyTorch: each parameter matches
    a NAdam of its own that saw the same gradients and betas."""
    values, grads = _problem(steps=5)
    together = [_param(v) for v in values[:2]]
    alone = [_param(v) for v in values[:2]]
    opt = optim.NAdam(together, lr=0.05)
    singles = [optim.NAdam([p], lr=0.05) for p in alone]
    schedule = [(True, True), (True, False), (False, True), (True, True)]
    calls = kernel_calls["nadam_step"]
    for step, (given, gs) in enumerate(zip(schedule, grads)):
        if step == 2:
            for o in [opt] + singles:
                o.param_groups[0]["betas"] = (0.5, 0.999)
        for p, q, g, has, single in zip(together, alone, gs, given, singles):
            p.grad = q.grad = fg.tensor(g) if has else None
            if has:
                single.step()
        del calls[:]
        opt.step()
    assert calls == [p.numel() for p in together]  # equal steps, different products
    for p, q, single in zip(together, alone, singles):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        assert opt.state[p]["mu_product"] == single.state[q]["mu_product"]


def test_unused_parameter_is_untouched_even_by_weight_decay():
    used, unused = _param(P0), _param([3.0, -4.0])
    for name, options in FUSED_CASES:
        opt = getattr(optim, name)([used, unused], lr=0.1, **options)
        for g in GRADS:
            opt.zero_grad()
            (fg.tensor(g) * used).sum().backward()
            opt.step()
        assert unused.grad is None and unused not in opt.state
        np.testing.assert_array_equal(unused.numpy(), [3.0, -4.0])


@pytest.mark.parametrize("name", NAMES)
def test_training_reduces_the_loss(name):
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8, dtype=np.float64), nn.Tanh(),
                          nn.Linear(8, 1, dtype=np.float64))
    rng = np.random.default_rng(0)
    x, y = fg.tensor(rng.standard_normal((32, 3))), fg.tensor(rng.standard_normal((32, 1)))
    opt = getattr(optim, name)(model.parameters(), lr=1.0 if name == "Adadelta" else 0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


# --------------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("name, options", FUSED_CASES)
def test_state_dict_round_trip_continues_identically(name, options):
    values, grads = _problem(steps=6)
    params = [_param(v) for v in values]
    opt = getattr(optim, name)(_groups(params, 0.05), lr=0.05, **options)
    for gs in grads[:3]:
        for p, g in zip(params, gs):
            p.grad = fg.tensor(g)
        opt.step()
    saved = opt.state_dict()
    clones = [_param(p.numpy().copy()) for p in params]
    fresh = getattr(optim, name)(_groups(clones, 1.0), lr=1.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[1]["lr"] == 0.025
    for gs in grads[3:]:
        for p, q, g in zip(params, clones, gs):
            p.grad, q.grad = fg.tensor(g), fg.tensor(g)
        opt.step()
        fresh.step()
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert [s["step"] for s in saved["state"].values()] == [3.0, 3.0, 3.0]  # a copy, not a view
    for index, p in enumerate(params):
        for key, value in saved["state"][index].items():
            if key not in opt.scalar_state:
                assert value.shape == p.shape
                assert not np.array_equal(value.numpy(), opt.state[p][key].numpy())


@pytest.mark.parametrize("name, state_names, group", [
    ("Adadelta", ["step", "square_avg", "acc_delta"],
     dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)),
    ("Adamax", ["step", "exp_avg", "exp_inf"],
     dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False)),
    ("NAdam", ["step", "mu_product", "exp_avg", "exp_avg_sq"],
     dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
          decoupled_weight_decay=False, maximize=False)),
])
def test_state_dict_layout_as_pytorch(name, state_names, group):
    params = [_param(v) for v in _problem()[0]]
    opt = getattr(optim, name)(params)
    for p in params:
        p.grad = fg.tensor(np.ones(p.shape))
    opt.step()
    state = opt.state_dict()
    assert list(state["state"]) == [0, 1, 2]
    assert list(state["state"][0]) == state_names
    assert state["param_groups"] == [dict(group, params=[0, 1, 2])]


# --------------------------------------------------------------------------------- validation
VALIDATION = [
    ("Adadelta", dict(lr=-1), ValueError, "Invalid learning rate: -1"),
    ("Adadelta", dict(rho=1.5), ValueError, r"Invalid rho value: 1\.5"),
    ("Adadelta", dict(rho=-0.1), ValueError, r"Invalid rho value: -0\.1"),
    ("Adadelta", dict(eps=-1e-6), ValueError, "Invalid epsilon value: -1e-06"),
    ("Adadelta", dict(weight_decay=-0.1), ValueError, r"Invalid weight_decay value: -0\.1"),
    ("Adamax", dict(lr=-0.5), ValueError, r"Invalid learning rate: -0\.5"),
    ("Adamax", dict(eps=-1.0), ValueError, r"Invalid epsilon value: -1\.0"),
    ("Adamax", dict(betas=(1.0, 0.999)), ValueError, r"Invalid beta parameter at index 0: 1\.0"),
    ("Adamax", dict(betas=(0.9, -0.5)), ValueError,
     r"Invalid beta parameter at index 1: -0\.5"),
    ("Adamax", dict(weight_decay=-2), ValueError, "Invalid weight_decay value: -2"),
    ("NAdam", dict(lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    ("NAdam", dict(eps=-1e-8), ValueError, "Invalid epsilon value: -1e-08"),
    ("NAdam", dict(betas=(0.9, 1.5)), ValueError, r"Invalid beta parameter at index 1: 1\.5"),
    ("NAdam", dict(weight_decay=-0.5), ValueError, r"Invalid weight_decay value: -0\.5"),
    ("NAdam", dict(momentum_decay=-1e-3), ValueError, "Invalid momentum_decay value: -0.001"),
]


@pytest.mark.parametrize("name, options, error, match", VALIDATION)
def test_invalid_hyperparameter_raises_pytorchs_error(name, options, error, match):
    with pytest.raises(error, match=match):
        getattr(optim, name)([_param(P0)], **options)


@pytest.mark.parametrize("name, options, error, match", VALIDATION)
def test_pytorch_raises_the_same_error(name, options, error, match):
    torch = pytest.importorskip("torch")
    with pytest.raises(error, match=match):
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **options)


@pytest.mark.parametrize("name, options, error, match", [
    ("Adadelta", dict(rho="0.9"), TypeError, "rho must be a real number.*'0.9'"),
    ("Adadelta", dict(eps=None), TypeError, "eps must be a real number.*None"),
    ("Adamax", dict(betas=(0.9,)), ValueError, r"betas must be a pair.*\(0\.9,\)"),
    ("NAdam", dict(betas=(0.9, "a")), TypeError, r"betas\[1\] must be a real number.*'a'"),
    ("NAdam", dict(momentum_decay=True), TypeError, "momentum_decay must be a real number"),
])
def test_hyperparameters_of_the_wrong_type(name, options, error, match):
    with pytest.raises(error, match=match):
        getattr(optim, name)([_param(P0)], **options)


def test_range_ends_pytorch_accepts_are_accepted():
    optim.Adadelta([_param(P0)], rho=1.0)
    optim.Adadelta([_param(P0)], rho=0.0, lr=0.0, eps=0.0)
    optim.NAdam([_param(P0)], betas=(0.0, 0.0), momentum_decay=0.0)


def test_group_hyperparameters_are_validated_too():
    with pytest.raises(ValueError, match="Invalid rho value: 2"):
        optim.Adadelta([{"params": [_param(P0)]}, {"params": [_param(P0)], "rho": 2}])
    with pytest.raises(ValueError, match="Invalid momentum_decay value: -1"):
        optim.NAdam([{"params": [_param(P0)], "momentum_decay": -1}])
    with pytest.raises(ValueError, match="unknown hyperparameter.*'amsgrad'"):
        optim.Adamax([{"params": [_param(P0)], "amsgrad": True}])
