"""optim: Adam, AdamW, RMSprop and Adagrad against hand-computed updates, independent kernel
formulas and PyTorch; the fused arena step, skipped parameters, validation and state_dict."""
import itertools
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import backends, nn, optim
from fastgrad.backends import KERNELS

P0 = np.array([1.0, -2.0])
GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5])]


def _param(values, dtype=np.float64):
    return nn.Parameter(np.array(values, dtype))


def _ids(options):
    return "-".join(f"{k}={v}" for k, v in options.items()) or "defaults"


# ------------------------------------------------------- textbook updates (the hand computation)
def _adam_reference(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                    amsgrad=False, maximize=False, decoupled_weight_decay=False):
    """Kingma & Ba's Adam written out (PyTorch's AMSGrad: the maximum of the raw second
    moment, bias-corrected at the current step): the parameter after each step."""
    p = np.array(p, np.float64)
    m, v, v_max, history = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - betas[0] ** t)
        v_hat = (v_max if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append(p)
    return history


def _rmsprop_reference(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                       centered=False, maximize=False):
    p = np.array(p, np.float64)
    v, mean, buf, history = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        mean = alpha * mean + (1 - alpha) * g
        denom = np.sqrt(v - mean * mean if centered else v) + eps
        if momentum > 0:
            buf = momentum * buf + g / denom
            p = p - lr * buf
        else:
            p = p - lr * g / denom
        history.append(p)
    return history


def _adagrad_reference(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                       initial_accumulator_value=0.0, eps=1e-10, maximize=False):
    p = np.array(p, np.float64)
    s, history = np.full_like(p, initial_accumulator_value), []
    for t, g in enumerate(grads, 1):
        g = (-g if maximize else g) + weight_decay * p
        s = s + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        history.append(p)
    return history


def _adam_options():
    for amsgrad, maximize, weight_decay, decoupled in itertools.product(
            (False, True), (False, True), (0.0, 0.1), (False, True)):
        yield dict(amsgrad=amsgrad, maximize=maximize, weight_decay=weight_decay,
                   decoupled_weight_decay=decoupled)


def _rmsprop_options():
    for centered, momentum, weight_decay, maximize in itertools.product(
            (False, True), (0.0, 0.9), (0.0, 0.1), (False, True)):
        yield dict(centered=centered, momentum=momentum, weight_decay=weight_decay,
                   maximize=maximize)


def _adagrad_options():
    for lr_decay, initial, weight_decay, maximize in itertools.product(
            (0.0, 0.05), (0.0, 0.3), (0.0, 0.1), (False, True)):
        yield dict(lr_decay=lr_decay, initial_accumulator_value=initial,
                   weight_decay=weight_decay, maximize=maximize)


def _make(name, params, lr, options):
    """Our optimiser ``name`` over ``params``: Adam options with decoupled decay make AdamW."""
    options = dict(options)
    if name == "Adam" and options.pop("decoupled_weight_decay", False):
        return optim.AdamW(params, lr=lr, **options)
    return getattr(optim, name)(params, lr=lr, **options)


CASES = ([pytest.param("Adam", o, _adam_reference, id=f"Adam-{_ids(o)}")
          for o in _adam_options()]
         + [pytest.param("RMSprop", o, _rmsprop_reference, id=f"RMSprop-{_ids(o)}")
            for o in _rmsprop_options()]
         + [pytest.param("Adagrad", o, _adagrad_reference, id=f"Adagrad-{_ids(o)}")
            for o in _adagrad_options()])


@pytest.mark.parametrize("name, options, reference", CASES)
def test_matches_hand_computed_steps(name, options, reference):
    p = _param(P0)
    opt = _make(name, [p], 0.1, options)
    expected = reference(P0, GRADS, lr=0.1, **options)
    for step, (g, p_expected) in enumerate(zip(GRADS, expected), 1):
        p.grad = fg.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.numpy(), p_expected, rtol=1e-13, atol=1e-15,
                                   err_msg=f"step {step}")
        assert opt.state[p]["step"] == float(step)


def test_first_steps_literal_values():
    # Adam's first bias-corrected step moves each coordinate by lr against the gradient's sign
    p = _param(P0)
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9, -1.9], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["exp_avg"].numpy(), [0.05, -0.1], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"].numpy(), [0.00025, 0.001],
                               rtol=1e-12)
    # second step: m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, corrected by 0.19 and 0.001999
    p.grad = fg.tensor(GRADS[1])
    opt.step()
    m = np.array([0.05 * 0.9 + 0.025, -0.1 * 0.9 + 0.2])
    v = np.array([0.00025 * 0.999 + 0.001 * 0.0625, 0.001 * 0.999 + 0.004])
    np.testing.assert_allclose(p.numpy(), np.array([0.9, -1.9]) - 0.1 * (m / 0.19)
                               / np.sqrt(v / 0.001999), rtol=1e-14)

    # AdamW: the decay shrinks the parameter by lr * wd before the same Adam step
    p = _param(P0)
    opt = optim.AdamW([p], lr=0.1, eps=0.0, weight_decay=0.5)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.95 - 0.1, -1.9 + 0.1], rtol=1e-15)

    # RMSprop's first step: v = 0.01 g^2, so the step is lr * sign(g) / sqrt(0.01) = 10 lr
    p = _param(P0)
    opt = optim.RMSprop([p], lr=0.01, eps=0.0)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9, -1.9], rtol=1e-14)

    # Adagrad's first step from a zero sum: lr * sign(g); then lr / sqrt(1 + (g2/g1)^2) ...
    p = _param(P0)
    opt = optim.Adagrad([p], lr=0.1, eps=0.0)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9, -1.9], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["sum"].numpy(), [0.25, 1.0])
    p.grad = fg.tensor(GRADS[1])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9 - 0.1 * 0.25 / math.sqrt(0.3125),
                                           -1.9 - 0.1 * 2.0 / math.sqrt(5.0)], rtol=1e-15)


def test_float32_parameters_step_in_float32():
    p = _param(P0, np.float32)
    opt = optim.Adam([p], lr=0.1, amsgrad=True, weight_decay=0.1)
    for g in GRADS:
        p.grad = fg.tensor(g.astype(np.float32))
        opt.step()
    assert p.dtype == np.float32 and opt.state[p]["exp_avg_sq"].dtype == np.float32
    expected = _adam_reference(P0, GRADS, lr=0.1, amsgrad=True, weight_decay=0.1)[-1]
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-5)


# ------------------------------------------------------------ independent kernel formulas
def _adam_flags():
    for amsgrad, decoupled, maximize, weight_decay in itertools.product(
            (False, True), (False, True), (False, True), (0.0, 0.05)):
        yield pytest.param(dict(amsgrad=amsgrad, decoupled_weight_decay=decoupled,
                                maximize=maximize, weight_decay=weight_decay),
                           id=f"ams{amsgrad:d}-dec{decoupled:d}-max{maximize:d}-wd{weight_decay}")


def _tolerance(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("flags", list(_adam_flags()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_adam_step_formula(flags, dtype):
    spec = KERNELS["adam_step"]
    args = spec.example(np.random.default_rng(3), dtype, 3)
    flags = dict(flags)
    amsgrad = flags.pop("amsgrad")
    args.update(flags, step=7, lr=0.05, beta1=0.8, beta2=0.99)
    if not amsgrad:
        args["max_exp_avg_sq"] = None
    p, g, m, v = (args[k].astype(np.float64) for k in ("param", "grad", "exp_avg", "exp_avg_sq"))
    g = -g if flags["maximize"] else g
    if flags["decoupled_weight_decay"]:
        p = p * (1 - 0.05 * flags["weight_decay"])
    else:
        g = g + flags["weight_decay"] * p
    m = 0.8 * m + 0.2 * g
    v = 0.99 * v + 0.01 * g ** 2
    v_used = np.maximum(args["max_exp_avg_sq"].astype(np.float64), v) if amsgrad else v
    expected = p - 0.05 * (m / (1 - 0.8 ** 7)) / (np.sqrt(v_used / (1 - 0.99 ** 7)) + 1e-8)
    spec.reference(**args)
    np.testing.assert_allclose(args["param"], expected, **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_avg"], m, **_tolerance(dtype))
    np.testing.assert_allclose(args["exp_avg_sq"], v, **_tolerance(dtype))
    if amsgrad:
        np.testing.assert_allclose(args["max_exp_avg_sq"], v_used, **_tolerance(dtype))


@pytest.mark.parametrize("centered, momentum, maximize, weight_decay",
                         list(itertools.product((False, True), (0.0, 0.9), (False, True),
                                                (0.0, 0.05))))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_rmsprop_step_formula(centered, momentum, maximize, weight_decay, dtype):
    spec = KERNELS["rmsprop_step"]
    args = spec.example(np.random.default_rng(4), dtype, 3)
    args.update(lr=0.02, alpha=0.9, momentum=momentum, maximize=maximize,
                weight_decay=weight_decay)
    if not centered:
        args["grad_avg"] = None
    if momentum == 0:
        args["momentum_buffer"] = None
    p, g, v = (args[k].astype(np.float64) for k in ("param", "grad", "square_avg"))
    g = (-g if maximize else g) + weight_decay * p
    v = 0.9 * v + 0.1 * g * g
    if centered:
        mean = 0.9 * args["grad_avg"].astype(np.float64) + 0.1 * g
        denom = np.sqrt(v - mean ** 2) + 1e-8
    else:
        denom = np.sqrt(v) + 1e-8
    if momentum:
        buf = 0.9 * args["momentum_buffer"].astype(np.float64) + g / denom
        expected = p - 0.02 * buf
    else:
        expected = p - 0.02 * g / denom
    spec.reference(**args)
    np.testing.assert_allclose(args["param"], expected, **_tolerance(dtype))
    np.testing.assert_allclose(args["square_avg"], v, **_tolerance(dtype))
    if centered:
        np.testing.assert_allclose(args["grad_avg"], mean, **_tolerance(dtype))
    if momentum:
        np.testing.assert_allclose(args["momentum_buffer"], buf, **_tolerance(dtype))


@pytest.mark.parametrize("lr_decay, maximize, weight_decay",
                         list(itertools.product((0.0, 0.1), (False, True), (0.0, 0.05))))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_adagrad_step_formula(lr_decay, maximize, weight_decay, dtype):
    spec = KERNELS["adagrad_step"]
    args = spec.example(np.random.default_rng(5), dtype, 3)
    args.update(step=4, lr=0.3, lr_decay=lr_decay, maximize=maximize, weight_decay=weight_decay)
    p, g, s = (args[k].astype(np.float64) for k in ("param", "grad", "state_sum"))
    g = (-g if maximize else g) + weight_decay * p
    s = s + g * g
    expected = p - 0.3 / (1 + 3 * lr_decay) * g / (np.sqrt(s) + 1e-10)
    spec.reference(**args)
    np.testing.assert_allclose(args["param"], expected, **_tolerance(dtype))
    np.testing.assert_allclose(args["state_sum"], s, **_tolerance(dtype))


def test_reference_rmsprop_centred_variance_rounded_below_zero_stays_finite():
    # square_avg a hair below grad_avg ** 2 (what rounding leaves after many equal gradients)
    param, grad = np.array([1.0]), np.array([1.0])
    square_avg, grad_avg = np.array([np.nextafter(1.0, 0.0)]), np.array([1.0])
    KERNELS["rmsprop_step"].reference(param, grad, square_avg, grad_avg, None, lr=1e-9,
                                      alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                                      maximize=False)
    assert square_avg[0] - grad_avg[0] ** 2 < 0
    np.testing.assert_allclose(param, [1.0 - 1e-9 / 1e-8])


# ---------------------------------------------------------------------------- against PyTorch
SHAPES = [(3, 4), (5,), (1,)]
TORCH_LR = {"Adam": 0.05, "RMSprop": 0.01, "Adagrad": 0.1}


def _problem(seed=0, steps=20):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return values, grads


def _torch_optimizer(torch, name, params, lr, options):
    options = dict(options)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}]
    if name == "Adam" and options.pop("decoupled_weight_decay", False):
        return torch.optim.AdamW(groups, lr=lr, **options)
    return getattr(torch.optim, name)(groups, lr=lr, **options)


def _ours_optimizer(name, params, lr, options):
    return _make(name, [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}], lr,
                 options)


def _relative_error(ours, theirs):
    theirs = np.asarray(theirs)
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)))


def _run_pair(torch, name, options, has_grad=lambda step, index: True, steps=20):
    values, grads = _problem(steps=steps)
    ours = [_param(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    lr = TORCH_LR[name]
    opt = _ours_optimizer(name, ours, lr, options)
    topt = _torch_optimizer(torch, name, theirs, lr, options)
    worst = 0.0
    for step, gs in enumerate(grads):
        for i, (p, q, g) in enumerate(zip(ours, theirs, gs)):
            given = has_grad(step, i)
            p.grad = fg.tensor(g) if given else None
            q.grad = torch.tensor(g) if given else None
        opt.step()
        topt.step()
        for p, q in zip(ours, theirs):
            worst = max(worst, _relative_error(p.numpy(), q.detach().numpy()))
    return opt, topt, ours, theirs, worst


PARITY = ([pytest.param("Adam", o, id=f"Adam-{_ids(o)}") for o in _adam_options()]
          + [pytest.param("Adam", dict(betas=(0.5, 0.9), eps=1e-3, amsgrad=True),
                          id="Adam-betas-eps")]
          + [pytest.param("RMSprop", o, id=f"RMSprop-{_ids(o)}") for o in _rmsprop_options()]
          + [pytest.param("RMSprop", dict(alpha=0.5, eps=1e-3, centered=True, momentum=0.5),
                          id="RMSprop-alpha-eps")]
          + [pytest.param("Adagrad", o, id=f"Adagrad-{_ids(o)}") for o in _adagrad_options()]
          + [pytest.param("Adagrad", dict(eps=1e-3, lr_decay=0.5), id="Adagrad-eps")])


def _assert_state_matches(opt, topt, rtol=1e-5):
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert list(ours["state"]) == list(theirs["state"])
    assert [g["params"] for g in ours["param_groups"]] == \
        [g["params"] for g in theirs["param_groups"]]
    for group, tgroup in zip(ours["param_groups"], theirs["param_groups"]):
        assert {k: v for k, v in group.items() if k != "params"}.items() <= tgroup.items()
    for index, values in theirs["state"].items():
        assert set(ours["state"][index]) == set(values), index
        for key, value in values.items():
            if key == "step":
                assert isinstance(ours["state"][index][key], float)
                assert ours["state"][index][key] == float(value)
            else:
                np.testing.assert_allclose(ours["state"][index][key].numpy(), value.numpy(),
                                           rtol=rtol, atol=1e-12, err_msg=f"{index}: {key}")


@pytest.mark.parametrize("name, options", PARITY)
def test_matches_pytorch_for_20_steps(name, options):
    torch = pytest.importorskip("torch")
    opt, topt, _, _, worst = _run_pair(torch, name, options)
    assert worst < 1e-5
    _assert_state_matches(opt, topt)


@pytest.mark.parametrize("name, options", [
    ("Adam", dict(amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("RMSprop", dict(centered=True, momentum=0.9, weight_decay=0.1)),
    ("Adagrad", dict(lr_decay=0.05, initial_accumulator_value=0.3, weight_decay=0.1)),
    ("Adagrad", dict(weight_decay=0.1)),
])
def test_parameters_without_gradients_are_skipped_like_pytorch(name, options):
    torch = pytest.importorskip("torch")

    def has_grad(step, index):
        # parameter 1 misses every third step and parameter 2 gets its first gradient late,
        # so the step counts (and Adam's bias corrections) differ between parameters
        return not (index == 1 and step % 3 == 1) and not (index == 2 and step < 4)

    opt, topt, _, _, worst = _run_pair(torch, name, options, has_grad)
    assert worst < 1e-5
    _assert_state_matches(opt, topt)


@pytest.mark.parametrize("name, options", [
    ("Adam", dict(amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(decoupled_weight_decay=True, maximize=True)),
    ("RMSprop", dict(centered=True, momentum=0.9)),
    ("Adagrad", dict(lr_decay=0.05, initial_accumulator_value=0.3)),
])
def test_loads_a_pytorch_state_dict_and_continues_like_pytorch(name, options):
    torch = pytest.importorskip("torch")
    _, topt, _, theirs, _ = _run_pair(torch, name, options, steps=6)
    ours = [_param(q.detach().numpy().copy()) for q in theirs]
    opt = _ours_optimizer(name, ours, 1.0, {})
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["lr"] == TORCH_LR[name]
    assert all(isinstance(s["step"], float) for s in opt.state.values())
    _, grads = _problem(seed=1, steps=5)
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad, q.grad = fg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, q in zip(ours, theirs):
        assert _relative_error(p.numpy(), q.detach().numpy()) < 1e-5


def test_adagrad_state_exists_from_construction_like_pytorch():
    torch = pytest.importorskip("torch")
    values, _ = _problem()
    opt = optim.Adagrad([_param(v) for v in values], initial_accumulator_value=0.25)
    topt = torch.optim.Adagrad([torch.tensor(v, requires_grad=True) for v in values],
                               initial_accumulator_value=0.25)
    _assert_state_matches(opt, topt, rtol=0)


# ------------------------------------------------------------------- fused arena path
OPTIMIZER_KERNELS = {"Adam": "adam_step", "RMSprop": "rmsprop_step", "Adagrad": "adagrad_step"}


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the calls of each optimiser kernel (and the elements each call covered)."""
    calls = {name: [] for name in OPTIMIZER_KERNELS.values()}
    for name in calls:
        implementation = getattr(backends.K, name)

        def counted(*args, _name=name, _implementation=implementation, **kwargs):
            calls[_name].append(args[0].size)
            return _implementation(*args, **kwargs)
        monkeypatch.setitem(backends.K.__dict__, name, counted)
    return calls


FUSED_CASES = [("Adam", dict(amsgrad=True, weight_decay=0.1)),
               ("Adam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
               ("RMSprop", dict(centered=True, momentum=0.9, weight_decay=0.1)),
               ("Adagrad", dict(lr_decay=0.05, initial_accumulator_value=0.3))]


@pytest.mark.parametrize("name, options", FUSED_CASES)
def test_fused_arena_step_equals_per_parameter_steps(name, options, kernel_calls):
    values, grads = _problem(steps=5)
    together = [_param(v) for v in values]
    alone = [_param(v) for v in values]
    opt = _make(name, together, 0.05, options)
    singles = [_make(name, [p], 0.05, options) for p in alone]
    calls = kernel_calls[OPTIMIZER_KERNELS[name]]
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
            if key == "step":
                assert value == other == 5.0
            else:
                np.testing.assert_array_equal(value.numpy(), other.numpy())
                assert np.shares_memory(value.numpy(), p._arena.state_buffers[key])


@pytest.mark.parametrize("name, options, fused_after_gap", [
    ("Adam", {}, False),                   # bias corrections differ: per parameter
    ("RMSprop", dict(momentum=0.9), True),  # the update does not use the step count
    ("Adagrad", {}, True),                  # nor does Adagrad's without lr_decay
    ("Adagrad", dict(lr_decay=0.1), False),
])
def test_per_parameter_path_only_when_needed(name, options, fused_after_gap, kernel_calls):
    params = [_param(v) for v in _problem()[0]]
    opt = _make(name, params, 0.05, options)
    calls = kernel_calls[OPTIMIZER_KERNELS[name]]
    sizes = [p.numel() for p in params]
    params[0].grad, params[2].grad = fg.tensor(np.ones(SHAPES[0])), fg.tensor(np.ones(1))
    opt.step()
    assert calls == [sizes[0], sizes[2]]  # the parameter without a gradient is skipped
    assert "step" not in opt.state.get(params[1], {}) or name == "Adagrad"
    params[1].grad = fg.tensor(np.ones(SHAPES[1]))
    del calls[:]
    opt.step()
    assert calls == ([sum(sizes)] if fused_after_gap else sizes)
    assert [opt.state[p]["step"] for p in params] == [2.0, 1.0, 2.0]
    del calls[:]
    params[1].grad = None
    params[1].grad = fg.tensor(np.ones(SHAPES[1]))
    opt.step()
    assert len(calls) == (1 if fused_after_gap else 3)


def test_unused_parameter_is_untouched_even_by_weight_decay():
    used, unused = _param(P0), _param([3.0, -4.0])
    for name, options in FUSED_CASES:
        opt = _make(name, [used, unused], 0.1, dict(options, weight_decay=0.1))
        for g in GRADS:
            opt.zero_grad()
            (fg.tensor(g) * used).sum().backward()
            opt.step()
        assert unused.grad is None
        np.testing.assert_array_equal(unused.numpy(), [3.0, -4.0])
        if name != "Adagrad":  # Adagrad's state exists from construction, as in PyTorch
            assert unused not in opt.state


def test_zero_grad_and_model_training_reduce_the_loss():
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8, dtype=np.float64), nn.Tanh(),
                          nn.Linear(8, 1, dtype=np.float64))
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((32, 3)))
    y = fg.tensor(rng.standard_normal((32, 1)))
    initial = [p.numpy().copy() for p in model.parameters()]
    for cls in (optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad):
        for p, value in zip(model.parameters(), initial):
            p.data = fg.tensor(value.copy())
        opt = cls(model.parameters(), lr=0.01)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.9 * losses[0], cls.__name__
        opt.zero_grad()
        assert all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("name, options", FUSED_CASES + [("RMSprop", {}), ("Adam", {})])
def test_state_dict_round_trip_continues_identically(name, options):
    values, grads = _problem(steps=6)
    params = [_param(v) for v in values]
    opt = _ours_optimizer(name, params, 0.05, options)
    for gs in grads[:3]:
        for p, g in zip(params, gs):
            p.grad = fg.tensor(g)
        opt.step()
    saved = opt.state_dict()
    clones = [_param(p.numpy().copy()) for p in params]
    fresh = _ours_optimizer(name, clones, 1.0, {})
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
            if key != "step":
                assert value.shape == p.shape
                assert not np.array_equal(value.numpy(), opt.state[p][key].numpy())


def test_state_dict_layout_as_pytorch():
    params = [_param(v) for v in _problem()[0]]
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "amsgrad": True}])
    for p in params:
        p.grad = fg.tensor(np.ones(p.shape))
    opt.step()
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert list(state["state"][0]) == ["step", "exp_avg", "exp_avg_sq"]
    assert list(state["state"][2]) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert state["param_groups"][0] == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                            weight_decay=0.0, amsgrad=False, maximize=False,
                                            decoupled_weight_decay=False, params=[0, 1])


def test_adamw_stays_decoupled_when_loading_an_adam_state():
    p, q = _param(P0), _param(P0)
    adam = optim.Adam([p], lr=0.1, weight_decay=0.5)
    adamw = optim.AdamW([q], lr=0.1, weight_decay=0.5)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True
    q.grad = fg.tensor(GRADS[0])
    adamw.step()
    np.testing.assert_allclose(q.numpy(), _adam_reference(P0, GRADS[:1], lr=0.1,
                                                          weight_decay=0.5,
                                                          decoupled_weight_decay=True)[0])


def test_adagrad_group_added_later_starts_at_its_own_accumulator_value():
    a, b = _param(P0), _param(P0)
    opt = optim.Adagrad([a], lr=0.1, initial_accumulator_value=0.5)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 2.0})
    np.testing.assert_array_equal(opt.state[a]["sum"].numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(opt.state[b]["sum"].numpy(), [2.0, 2.0])
    a.grad, b.grad = fg.tensor(GRADS[0]), fg.tensor(GRADS[0])
    opt.step()
    for p, initial in ((a, 0.5), (b, 2.0)):
        expected = _adagrad_reference(P0, GRADS[:1], lr=0.1, initial_accumulator_value=initial)
        np.testing.assert_allclose(p.numpy(), expected[0], rtol=1e-15)


def test_toggling_amsgrad_mid_training_starts_its_buffer_at_zero():
    p = _param(P0)
    opt = optim.Adam([p], lr=0.1)
    p.grad = fg.tensor(GRADS[0])
    opt.step()
    opt.param_groups[0]["amsgrad"] = True
    p.grad = fg.tensor(GRADS[1])
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["max_exp_avg_sq"].numpy(),
                                  opt.state[p]["exp_avg_sq"].numpy())


# --------------------------------------------------------------------------------- validation
VALIDATION = [
    ("Adam", dict(lr=-1), ValueError, "Invalid learning rate: -1"),
    ("Adam", dict(lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    ("Adam", dict(betas=(1.5, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.5"),
    ("Adam", dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("Adam", dict(betas=(-0.1, 0.9)), ValueError, r"Invalid beta parameter at index 0: -0\.1"),
    ("Adam", dict(eps=-1e-8), ValueError, "Invalid epsilon value: -1e-08"),
    ("Adam", dict(weight_decay=-0.1), ValueError, r"Invalid weight_decay value: -0\.1"),
    ("AdamW", dict(weight_decay=-1.0), ValueError, r"Invalid weight_decay value: -1\.0"),
    ("RMSprop", dict(lr=-0.5), ValueError, r"Invalid learning rate: -0\.5"),
    ("RMSprop", dict(alpha=-0.5), ValueError, r"Invalid alpha value: -0\.5"),
    ("RMSprop", dict(momentum=-0.1), ValueError, r"Invalid momentum value: -0\.1"),
    ("RMSprop", dict(eps=-1.0), ValueError, r"Invalid epsilon value: -1\.0"),
    ("RMSprop", dict(weight_decay=-2), ValueError, "Invalid weight_decay value: -2"),
    ("Adagrad", dict(lr_decay=-1), ValueError, "Invalid lr_decay value: -1"),
    ("Adagrad", dict(initial_accumulator_value=-1), ValueError,
     "Invalid initial_accumulator_value value: -1"),
    ("Adagrad", dict(eps=-1e-10), ValueError, "Invalid epsilon value: -1e-10"),
    ("Adagrad", dict(weight_decay=-0.5), ValueError, r"Invalid weight_decay value: -0\.5"),
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
    ("Adam", dict(betas=(0.9,)), ValueError, r"betas must be a pair.*\(0\.9,\)"),
    ("Adam", dict(betas=("a", 0.9)), TypeError, r"betas\[0\] must be a real number.*'a'"),
    ("Adam", dict(eps="1e-8"), TypeError, "eps must be a real number"),
    ("RMSprop", dict(momentum=None), TypeError, "momentum must be a real number.*None"),
    ("Adagrad", dict(lr="0.1"), ValueError, "Invalid learning rate: 0.1"),
])
def test_hyperparameters_of_the_wrong_type(name, options, error, match):
    with pytest.raises(error, match=match):
        getattr(optim, name)([_param(P0)], **options)


def test_group_hyperparameters_are_validated_too():
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 2"):
        optim.Adam([{"params": [_param(P0)], "betas": (0.9, 2)}])
    with pytest.raises(ValueError, match=r"Invalid alpha value: -1"):
        optim.RMSprop([{"params": [_param(P0)]}, {"params": [_param(P0)], "alpha": -1}])
    with pytest.raises(ValueError, match="unknown hyperparameter.*'momentum'"):
        optim.Adam([{"params": [_param(P0)], "momentum": 0.9}])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.AdamW([])


def test_step_with_closure_returns_the_loss():
    p = _param(P0)
    opt = optim.Adam([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.numpy(), [0.9, -1.9], rtol=1e-7)
