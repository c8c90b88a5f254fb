"""The Numba layer kernels (fastgrad/backends/numba_cpu/_layers.py) beyond the generated parity
(which runs every variant the registry declares on the serial path): every variant on the
parallel path, deterministic reductions whatever the thread count and path, a whole training
step against the reference backend, the vectorised exp/sigmoid/tanh against float64 formulas,
the inputs the generated examples do not reach (empty inputs, batchnorm layouts, ignore_index,
fallbacks), and the jitted bodies run as plain Python."""
import copy

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import fastgrad  # noqa: E402
import fastgrad.nn.functional as F  # noqa: E402
from fastgrad import backends, nn  # noqa: E402
from fastgrad.backends import ACTIVATIONS, KERNELS  # noqa: E402
from fastgrad.backends import numpy_ref as reference  # noqa: E402
from fastgrad.backends.numba_cpu import _layers as layers  # noqa: E402

SERIAL = 1 << 62  # a PARALLEL_MIN no input reaches


def _force(monkeypatch, parallel_min):
    """Every layer kernel on its parallel path (0) or its serial path (SERIAL)."""
    for key in layers.PARALLEL_MIN:
        monkeypatch.setitem(layers.PARALLEL_MIN, key, parallel_min)


@pytest.fixture
def path(request, monkeypatch):
    """Force every layer kernel onto its serial or its parallel path."""
    _force(monkeypatch, SERIAL if request.param == "serial" else 0)
    return request.param


@pytest.fixture
def threads():
    """Restore Numba's thread count after a test that changes it."""
    before = numba.get_num_threads()
    yield [n for n in (1, 2) if n <= numba.config.NUMBA_NUM_THREADS]
    numba.set_num_threads(before)


# ----------------------------------------------------------------- deterministic reductions
def _linear_bwd_args(rng):
    n, i, o = 512, 64, 300
    out = np.maximum(rng.standard_normal((n, o)), 0).astype(np.float32)
    return dict(grad_out=rng.standard_normal((n, o)).astype(np.float32),
                x=rng.standard_normal((n, i)).astype(np.float32),
                weight=rng.standard_normal((o, i)).astype(np.float32), out=out,
                activation=ACTIVATIONS["relu"], grad_x=np.empty((n, i), np.float32),
                grad_weight=np.empty((o, i), np.float32), grad_bias=np.empty(o, np.float32))


def _batchnorm_fwd_args(rng, shape):
    x = (3 * rng.standard_normal(shape) + 5).astype(np.float32)
    channels = shape[1]
    return dict(x=x, weight=rng.uniform(0.5, 1.5, channels).astype(np.float32),
                bias=rng.standard_normal(channels).astype(np.float32), eps=1e-5,
                activation=ACTIVATIONS["none"],
                running_mean=rng.standard_normal(channels).astype(np.float32),
                running_var=rng.uniform(0.5, 2, channels).astype(np.float32), momentum=0.1,
                mean=np.empty(channels), var=np.empty(channels), invstd=np.empty(channels),
                out=np.empty_like(x))


def _batchnorm_bwd_args(rng, shape):
    forward = _batchnorm_fwd_args(rng, shape)
    reference.batchnorm_fwd(**forward)
    x, channels = forward["x"], shape[1]
    return dict(grad_out=rng.standard_normal(shape).astype(np.float32), x=x,
                weight=forward["weight"], mean=forward["mean"], invstd=forward["invstd"],
                out=forward["out"], activation=ACTIVATIONS["none"], grad_x=np.empty_like(x),
                grad_weight=np.empty(channels, np.float32),
                grad_bias=np.empty(channels, np.float32))


def _cross_entropy_fwd_args(rng):
    n, c = 300, 1000
    target = rng.integers(0, c, n)
    target[::7] = -100
    return dict(logits=(4 * rng.standard_normal((n, c))).astype(np.float32), target=target,
                ignore_index=-100, loss=np.empty(n, np.float32), lse=np.empty(n))


def _cross_entropy_bwd_args(rng):
    forward = _cross_entropy_fwd_args(rng)
    reference.cross_entropy_fwd(**forward)
    n = forward["logits"].shape[0]
    return dict(logits=forward["logits"], target=forward["target"], lse=forward["lse"],
                ignore_index=-100, grad_loss=rng.standard_normal(n).astype(np.float32),
                grad_logits=np.empty_like(forward["logits"]))


REDUCING = [
    pytest.param("linear_bwd", _linear_bwd_args, id="linear_bwd"),
    pytest.param("batchnorm_fwd", lambda rng: _batchnorm_fwd_args(rng, (4096, 48, 1)),
                 id="batchnorm_fwd-narrow"),
    pytest.param("batchnorm_fwd", lambda rng: _batchnorm_fwd_args(rng, (8, 6, 20000)),
                 id="batchnorm_fwd-wide"),
    pytest.param("batchnorm_bwd", lambda rng: _batchnorm_bwd_args(rng, (4096, 48, 1)),
                 id="batchnorm_bwd-narrow"),
    pytest.param("batchnorm_bwd", lambda rng: _batchnorm_bwd_args(rng, (8, 6, 20000)),
                 id="batchnorm_bwd-wide"),
    pytest.param("cross_entropy_fwd", _cross_entropy_fwd_args, id="cross_entropy_fwd"),
    pytest.param("cross_entropy_bwd", _cross_entropy_bwd_args, id="cross_entropy_bwd"),
]


def _outputs(name, args):
    """Run the numba kernel on a copy of ``args``; its written arrays."""
    args = copy.deepcopy(args)
    getattr(layers, name)(**args)
    return {key: args[key] for key in KERNELS[name].writes}


@pytest.mark.parametrize("name, build", REDUCING)
def test_reductions_are_bit_identical_for_any_thread_count_path_and_run(
        name, build, threads, monkeypatch):
    args = build(np.random.default_rng(7))
    largest = max(a.size for a in args.values() if isinstance(a, np.ndarray))
    assert largest >= 8 * layers.CHUNK, "inputs too small for several parallel pieces"
    runs = {}
    _force(monkeypatch, 0)  # the parallel path, whatever the measured thresholds
    for n in threads:
        numba.set_num_threads(n)
        runs[f"parallel path, {n} threads"] = _outputs(name, args)
        runs[f"parallel path, {n} threads, again"] = _outputs(name, args)
    _force(monkeypatch, SERIAL)
    runs["serial path"] = _outputs(name, args)
    first_label, first = next(iter(runs.items()))
    for label, outputs in runs.items():
        for key, value in outputs.items():
            np.testing.assert_array_equal(value, first[key],
                                          err_msg=f"{name} {key}: {label} vs {first_label}")
    expected = copy.deepcopy(args)
    KERNELS[name].reference(**expected)
    for key, value in first.items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


# --------------------------------------------------------------------- a whole training step
def _training_step(backend):
    """Linear+ReLU, BatchNorm1d, one LSTM layer, a Linear head and cross-entropy: the loss and
    every gradient after one backward pass on ``backend``."""
    with backends.use(backend):
        fastgrad.manual_seed(3)
        steps, batch, features, width, hidden, classes = 6, 16, 20, 48, 40, 9
        stem, norm = nn.Linear(features, width), nn.BatchNorm1d(width)
        lstm, head = nn.LSTM(width, hidden), nn.Linear(hidden, classes)
        rng = np.random.default_rng(11)
        x = fastgrad.tensor(rng.standard_normal((steps * batch, features)).astype(np.float32),
                            requires_grad=True)
        target = rng.integers(0, classes, steps * batch)
        target[::5] = -100
        h = norm(stem(x, activation="relu"))
        out, _ = lstm(h.reshape(steps, batch, width))
        loss = F.cross_entropy(head(out.reshape(steps * batch, hidden)),
                               fastgrad.tensor(target))
        loss.backward()
        modules = {"stem": stem, "norm": norm, "lstm": lstm, "head": head}
        grads = {f"{m}.{n}": p.grad.numpy().copy() for m, module in modules.items()
                 for n, p in module.named_parameters()}
        grads["x"] = x.grad.numpy().copy()
        running = norm.running_mean.numpy().copy(), norm.running_var.numpy().copy()
        return loss.item(), grads, running


@pytest.mark.parametrize("path", ["serial", "parallel"], indirect=True)
def test_training_step_matches_the_reference_backend(path):
    loss, grads, running = _training_step("numba")
    expected_loss, expected_grads, expected_running = _training_step("numpy")
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    assert grads.keys() == expected_grads.keys()
    for key, value in grads.items():
        scale = np.abs(expected_grads[key]).max()
        np.testing.assert_allclose(value, expected_grads[key], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=key)
    for value, expected in zip(running, expected_running):
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ the vectorised transcendentals
def _grid(dtype):
    tiny = np.finfo(dtype).tiny
    magnitudes = np.concatenate([np.geomspace(tiny, 1e-3, 400), np.linspace(1e-3, 30, 3000),
                                 np.geomspace(30, float(np.finfo(dtype).max) / 4, 300)])
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes]).astype(dtype)


def _sigmoid64(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


# float32: 2.5 ulp, as NumPy's; float64: limited by the Cody-Waite reduction at |x| ~ 700
ACCURACY = {np.float32: 3e-7, np.float64: 2e-14}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_match_float64_formulas(activation, dtype):
    x = _grid(dtype)
    out = np.full_like(x, np.nan)
    layers.activation_fwd(x, ACTIVATIONS[activation], out)
    z = x.astype(np.float64)
    with np.errstate(over="ignore"):
        exact = _sigmoid64(z) if activation == "sigmoid" else np.tanh(z)
    # results below the smallest normal number flush to zero
    normal = np.abs(exact) >= np.finfo(dtype).tiny
    assert (out[~normal] == 0).all()
    error = np.abs(out[normal] - exact[normal]) / np.abs(exact[normal])
    assert error.max() <= ACCURACY[dtype], f"max relative error {error.max():.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_special_values(activation, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], dtype)
    out = np.empty_like(x)
    expected = np.empty_like(x)
    layers.activation_fwd(x, ACTIVATIONS[activation], out)
    with np.errstate(all="ignore"):  # the values are checked, not the reference's warnings
        reference.activation_fwd(x, ACTIVATIONS[activation], expected)
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------- inputs the generated examples do not reach
def _agree(name, args, rtol=1e-5, atol=1e-6):
    expected, actual = copy.deepcopy(args), copy.deepcopy(args)
    with np.errstate(all="ignore"):
        KERNELS[name].reference(**expected)
        getattr(layers, name)(**actual)
    for key in KERNELS[name].writes:
        if expected[key] is None:
            assert actual[key] is None
        else:
            np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=atol,
                                       err_msg=f"{name} {key}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, variant", [(name, variant) for name in layers.__all__
                                           for variant in KERNELS[name].variants])
def test_every_variant_on_the_parallel_path(name, variant, dtype, monkeypatch):
    """The generated parity runs every variant on the serial path (its sizes are below the
    thresholds); here each one on the parallel path, over several rows."""
    _force(monkeypatch, 0)
    spec = KERNELS[name]
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    _agree(name, spec.arguments(np.random.default_rng(2), dtype, 33, variant), rtol, atol)


@pytest.mark.parametrize("name", ["linear_fwd", "linear_bwd", "cross_entropy_fwd",
                                  "cross_entropy_bwd", "lstm_cell_fwd", "lstm_cell_bwd",
                                  "activation_fwd", "activation_bwd"])
def test_empty_batch(name):
    args = KERNELS[name].example(np.random.default_rng(3), np.float32, 4)
    for key, value in args.items():
        parameter = key in ("weight", "bias", "grad_weight", "grad_bias")
        if isinstance(value, np.ndarray) and value.ndim >= 1 and not parameter:
            args[key] = value[:0]
    if name == "linear_bwd":
        args["grad_weight"][...] = np.nan
    _agree(name, args)


@pytest.mark.parametrize("path", ["serial", "parallel"], indirect=True)
@pytest.mark.parametrize("shape", [(5, 3, 1), (4, 2, 7), (3, 2, 20000), (1, 4, 17000)],
                         ids=["N-C", "narrow", "wide", "wide-one-sample"])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_layouts_and_optional_arguments(shape, affine, path):
    rng = np.random.default_rng(4)
    forward = _batchnorm_fwd_args(rng, shape)
    backward = _batchnorm_bwd_args(rng, shape)
    if not affine:  # and no running statistics
        forward.update(weight=None, bias=None, running_mean=None, running_var=None)
        backward.update(weight=None, grad_weight=None)
    _agree("batchnorm_fwd", forward, rtol=1e-5, atol=1e-5)
    _agree("batchnorm_bwd", backward, rtol=1e-4, atol=1e-4)
    backward.update(grad_x=None, grad_bias=None)
    _agree("batchnorm_bwd", backward, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", ["serial", "parallel"], indirect=True)
@pytest.mark.parametrize("shape", [(5, 3, 1), (4, 2, 7), (3, 2, 20000), (256, 64, 1)],
                         ids=["N-C", "narrow", "wide", "N-C-two-rows"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_batchnorm_fused_activation_is_the_unfused_pair(shape, activation, path):
    """batchnorm_fwd with an activation gives exactly batchnorm_fwd then activation_fwd, and
    batchnorm_bwd with it exactly activation_bwd then batchnorm_bwd: what a fused layer
    (Sequential's BatchNorm + ReLU, say) computes is what the two layers compute."""
    rng = np.random.default_rng(5)
    code = ACTIVATIONS[activation]
    fused = _batchnorm_fwd_args(rng, shape)
    plain = copy.deepcopy(fused)
    fused["activation"] = code
    layers.batchnorm_fwd(**fused)
    layers.batchnorm_fwd(**plain)
    expected = np.empty_like(plain["out"])
    layers.activation_fwd(plain["out"], code, expected)
    np.testing.assert_array_equal(fused["out"], expected)
    backward = _batchnorm_bwd_args(rng, shape)
    backward.update(x=fused["x"], mean=fused["mean"], invstd=fused["invstd"], out=fused["out"])
    unfused = copy.deepcopy(backward)
    backward["activation"] = code
    layers.batchnorm_bwd(**backward)
    layers.activation_bwd(unfused["grad_out"], fused["out"], code, unfused["grad_out"])
    layers.batchnorm_bwd(**unfused)
    for key in ("grad_x", "grad_weight", "grad_bias"):
        np.testing.assert_array_equal(backward[key], unfused[key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, 1.0, 0.0])
def test_batchnorm_running_statistics_are_the_reference_bit_for_bit(dtype, momentum):
    """The running update inside the forward kernel is the reference's float64 formula in its
    order, rounded once: from the batch statistics the kernel wrote (their last bits follow
    its own order of summation), the same bits."""
    args = KERNELS["batchnorm_fwd"].arguments(np.random.default_rng(7), dtype, 5)
    args["momentum"] = momentum
    actual = copy.deepcopy(args)
    layers.batchnorm_fwd(**actual)
    expected_mean, expected_var = args["running_mean"].copy(), args["running_var"].copy()
    reference.update_running_stats(expected_mean, expected_var, actual["mean"], actual["var"],
                                   momentum, args["x"].shape[0] * args["x"].shape[2])
    np.testing.assert_array_equal(actual["running_mean"], expected_mean)
    np.testing.assert_array_equal(actual["running_var"], expected_var)


@pytest.mark.parametrize("change, shape", [
    (dict(running_var=None), (7, 6, 1)), (dict(running_mean=None), (3, 2, 20000)),
    ({}, (1, 3, 1))], ids=["mean-only", "var-only", "one-value-per-channel"])
def test_batchnorm_running_statistics_the_kernel_does_not_take_go_to_the_reference(change,
                                                                                   shape):
    """One running statistic without the other, or one value per channel (no unbiased
    variance): the reference runs, with its behaviour and error, never an update of a
    stand-in array or a NaN from the kernel (as in the C backend)."""
    args = _batchnorm_fwd_args(np.random.default_rng(8), shape)
    args.update(change)
    expected = copy.deepcopy(args)
    try:
        reference.batchnorm_fwd(**expected)
        error = None
    except (AttributeError, ZeroDivisionError) as caught:
        error = type(caught)
    before = layers.FALLBACKS.of("batchnorm_fwd").get("other arguments", 0)
    if error is None:
        layers.batchnorm_fwd(**args)
        for key in ("running_mean", "running_var", "out"):
            np.testing.assert_array_equal(args[key], expected[key], err_msg=key)
    else:
        with pytest.raises(error):
            layers.batchnorm_fwd(**args)
    assert layers.FALLBACKS.of("batchnorm_fwd")["other arguments"] == before + 1


@pytest.mark.parametrize("path", ["serial", "parallel"], indirect=True)
@pytest.mark.parametrize("shape", [(1000, 6, 1), (37, 5, 9), (7, 3, 600)],
                         ids=["N-C", "narrow", "wide"])
def test_batchnorm_keeps_precision_when_the_mean_dwarfs_the_spread(shape, path):
    """mean 1e4, std 1e-2 in float32: one-pass E[x**2] - E[x]**2 would lose every digit of
    the variance; the kernel's shifted float64 sums and split mean keep the reference's."""
    rng = np.random.default_rng(6)
    forward = _batchnorm_fwd_args(rng, shape)
    forward["x"] = (1e4 + 1e-2 * rng.standard_normal(shape)).astype(np.float32)
    expected, actual = copy.deepcopy(forward), copy.deepcopy(forward)
    reference.batchnorm_fwd(**expected)
    layers.batchnorm_fwd(**actual)
    np.testing.assert_allclose(actual["mean"], expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(actual["var"], expected["var"], rtol=1e-7)
    np.testing.assert_allclose(actual["out"], expected["out"], rtol=1e-4, atol=1e-4)
    backward = _batchnorm_bwd_args(rng, shape)
    backward.update(x=forward["x"], mean=expected["mean"], invstd=expected["invstd"])
    _agree("batchnorm_bwd", backward, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ignore_index", [-100, 2, -1])
def test_cross_entropy_ignore_index_and_negative_targets(ignore_index):
    rng = np.random.default_rng(6)
    args = KERNELS["cross_entropy_fwd"].example(rng, np.float64, 12)
    # -1 is the last class in NumPy's indexing, unless it is the ignore_index
    args["target"] = np.tile(np.array([ignore_index, 2, -1, 5], np.int64), 3)
    args["ignore_index"] = ignore_index
    _agree("cross_entropy_fwd", args, rtol=1e-12, atol=1e-14)
    backward = dict(logits=args["logits"], target=args["target"], lse=args["lse"],
                    ignore_index=ignore_index, grad_loss=rng.standard_normal(12),
                    grad_logits=np.empty_like(args["logits"]))
    reference.cross_entropy_fwd(**args)
    backward["lse"] = args["lse"]
    _agree("cross_entropy_bwd", backward, rtol=1e-12, atol=1e-14)


def test_cross_entropy_large_logits_are_stable():
    logits = np.array([[1e4, -1e4, 0.0], [-3e4, -3e4 + 1, -3e4 - 1]], np.float32)
    target = np.array([1, 0])
    loss, lse = np.empty(2, np.float32), np.empty(2)
    layers.cross_entropy_fwd(logits, target, -100, loss, lse)
    assert np.isfinite(loss).all() and np.isfinite(lse).all()
    np.testing.assert_allclose(loss, [2e4, 1 + np.log1p(np.exp(-1) + np.exp(-2))], rtol=1e-5)


@pytest.mark.parametrize("name", ["cross_entropy_fwd", "cross_entropy_bwd"])
def test_cross_entropy_target_out_of_range_raises(name):
    args = KERNELS[name].example(np.random.default_rng(8), np.float32, 5)
    classes = args["logits"].shape[1]
    args["target"][1] = classes
    with pytest.raises(IndexError, match=f"target {classes} is out of bounds"):
        getattr(layers, name)(**args)


def test_other_dtypes_and_non_contiguous_outputs_use_the_reference():
    x = np.linspace(-3, 3, 12, dtype=np.float16).reshape(3, 4)
    out, expected = np.empty_like(x), np.empty_like(x)
    layers.activation_fwd(x, ACTIVATIONS["tanh"], out)
    reference.activation_fwd(x, ACTIVATIONS["tanh"], expected)
    np.testing.assert_array_equal(out, expected)
    x32 = x.astype(np.float32)
    strided = np.empty((3, 8), np.float32)[:, ::2]
    layers.activation_fwd(x32, ACTIVATIONS["sigmoid"], strided)
    np.testing.assert_allclose(strided, 1 / (1 + np.exp(-x32)), rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 5)])
def test_activation_shapes(shape):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    for activation in ACTIVATIONS.values():
        _agree("activation_fwd", dict(x=x, activation=activation, out=np.empty_like(x)))
        _agree("activation_bwd", dict(grad_out=x, out=np.abs(x) / 4, activation=activation,
                                      grad_in=np.empty_like(x)))


# ---------------------------------------------------------------------------- bound kernels
@pytest.mark.parametrize("name", ["linear_fwd", "linear_bwd", "batchnorm_fwd", "batchnorm_bwd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_kernels_write_what_the_kernels_write(name, dtype):
    """``backends.bind`` on the numba backend: a callable that skips the kernel's checks, for
    arguments like the ones bound (a captured replay's), writing the same bits as the kernel
    on those arguments and on new values of the same shapes."""
    spec = KERNELS[name]
    kernel = getattr(layers, name)
    for variant in spec.variants:
        for seed in (0, 1):
            rng = np.random.default_rng(seed)
            example = spec.arguments(rng, dtype, max(spec.sizes), variant)
            with backends.use("numba"):
                bound = backends.bind(name, **example)
            assert bound is not kernel, variant  # the compiled path applies
            for seed_values in (2, 3):
                args = spec.arguments(np.random.default_rng(seed_values), dtype,
                                      max(spec.sizes), variant)
                theirs = {k: v.copy() if isinstance(v, np.ndarray) else v
                          for k, v in args.items()}
                bound(**args)
                kernel(**theirs)
                for written in spec.writes:
                    if args[written] is not None:
                        np.testing.assert_array_equal(args[written], theirs[written],
                                                      err_msg=f"{variant}: {written}")


def test_bind_returns_the_checked_kernel_where_the_compiled_path_does_not_apply():
    rng = np.random.default_rng(0)
    spec = KERNELS["linear_fwd"]
    with backends.use("numba"):
        half = spec.arguments(rng, np.float16, 4)
        assert backends.bind("linear_fwd", **half) is layers.linear_fwd  # not compiled for it
        args = spec.arguments(rng, np.float32, 4)
        args["x"] = np.asfortranarray(args["x"])
        assert backends.bind("linear_fwd", **args) is layers.linear_fwd  # not contiguous
    with backends.use("numpy"):  # a backend without binders: its kernel
        assert backends.bind("linear_fwd", **spec.arguments(rng, np.float32, 4)) \
            is reference.linear_fwd


# ------------------------------------------------------------ the jitted bodies as Python
_PLAIN_PYTHON = r"""
import copy
import numpy as np
from fastgrad.backends import KERNELS
from fastgrad.backends.numba_cpu import _layers as layers

assert not hasattr(layers._activate, "py_func"), "NUMBA_DISABLE_JIT did not apply"
layers.CHUNK = 64  # several pieces, and the wide batchnorm path, on small inputs
checked = 0
for parallel in (False, True):
    for key in layers.PARALLEL_MIN:
        layers.PARALLEL_MIN[key] = 0 if parallel else 1 << 62
    for name in layers.__all__:
        spec = KERNELS[name]
        for dtype in (np.float32, np.float64):
            args = spec.example(np.random.default_rng(checked), dtype, 2)
            variants = [args]
            if name.startswith("batchnorm"):  # (3, 8, 16) is the wide path; (48, 8, 1) narrow
                narrow = copy.deepcopy(args)
                for key in ("x", "out", "grad_out", "grad_x"):
                    if key in narrow:
                        narrow[key] = np.ascontiguousarray(
                            narrow[key].transpose(0, 2, 1).reshape(-1, 8, 1))
                variants.append(narrow)
            for variant in variants:
                expected, actual = copy.deepcopy(variant), copy.deepcopy(variant)
                spec.reference(**expected)
                getattr(layers, name)(**actual)
                rtol, atol = spec.tolerances[np.dtype(dtype)]
                for key in spec.writes:
                    np.testing.assert_allclose(actual[key], expected[key], rtol=rtol,
                                               atol=atol, err_msg=f"{name} {dtype}")
            checked += 1
x = np.array([np.nan, np.inf, -np.inf, 0.0, 1e-30, -700.0, 40.0], np.float32)
for code in (2, 3):
    out, expected = np.empty_like(x), np.empty_like(x)
    with np.errstate(all="ignore"):
        layers.activation_fwd(x, code, out)
        KERNELS["activation_fwd"].reference(x, code, expected)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-30)
print("checked", checked)
"""


def test_jitted_bodies_run_as_plain_python(run_without_jit):
    assert f"checked {2 * 2 * len(layers.__all__)}" in run_without_jit(_PLAIN_PYTHON)
