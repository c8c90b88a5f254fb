"""Kernel benchmarks, generated from the registry: kernel x variant x backend x bench size,
float32, with PyTorch's equivalent of a kernel as one more backend where it has one and is
installed. A kernel's variants (its activation codes, norm types, optimiser flags) are groups
of their own, ``kernel[variant]-size``; a kernel with one variant keeps ``kernel-size``.

    python -m pytest bench --benchmark-only                 # the table, grouped per kernel-size
    python -m pytest bench -q --benchmark-disable           # each case once, as a quick check

The quick check (``--benchmark-disable``, or ``FASTGRAD_BENCH_SIZES=smoke``) runs each kernel
at its smallest bench size only; see bench/conftest.py.

Each case builds its inputs with the kernel's example generator, makes one warm-up call (JIT
compilation and first-touch page faults stay out of the timings), times the kernel on a fresh
copy of the inputs per round (copying is not timed, so in-place kernels such as ``sgd_step`` see
the same inputs every round), then asserts that the last timed call agrees with the reference.

PyTorch rows (``torch``, and ``torch-fused`` for Adam): :data:`TORCH_EQUIVALENTS` maps a
kernel to what PyTorch runs for the same work (``linear_fwd``: ``F.linear`` and the activation;
``batchnorm_bwd``: ``native_batch_norm_backward``; ``adam_step``: ``optim.Adam`` over the flat
parameter...). Each is a ``prepare(torch, **kernel_arguments)`` returning the timed call, which
returns the outputs PyTorch produces by the kernel's argument names (``"return"`` for the
return value); those are checked against the reference by their norm-wise relative error
(at most :data:`TORCH_TOLERANCE`, recorded in extra_info): another BLAS's rounding moves single
elements of a float32 GEMM through a saturating activation by more than the kernels' own
elementwise tolerances, and PyTorch keeps statistics in float32 where the reference accumulates
in float64. Preparing (wrapping the arrays without copies, building an optimiser and its
state, PyTorch's saved forward values for a backward) is not timed.
"""
import copy
import functools
import importlib
import importlib.util
import os
import sys
import time

import numpy as np
import pytest

from fastgrad import backends
from fastgrad.backends import KERNELS
from fastgrad.backends.numpy_ref import conv_output_size

pytest.importorskip("pytest_benchmark")

DTYPE = np.float32
#: Rough time spent timing one case (at least MIN_ROUNDS rounds).
TIME_PER_CASE_S = 0.25
MIN_ROUNDS, MAX_ROUNDS = 3, 200

BACKENDS = backends.available()
#: The smoke run (FASTGRAD_BENCH_SIZES, settled by bench/conftest.py) takes the smallest bench
#: size of each kernel only.
SMOKE = os.environ.get("FASTGRAD_BENCH_SIZES") == "smoke"


def _bench_sizes(spec):
    return spec.bench_sizes[:1] if SMOKE else spec.bench_sizes


def _label(name, variant):
    """The kernel and its variant as the groups and ids name them."""
    return name if len(KERNELS[name].variants) == 1 else f"{name}[{variant}]"


CASES = [pytest.param(name, variant, backend, size, id=f"{_label(name, variant)}-{backend}-{size}")
         for name, spec in KERNELS.items() for variant in spec.variants for backend in BACKENDS
         for size in _bench_sizes(spec)]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _implementation(backend, name):
    module = importlib.import_module(backends.BACKEND_MODULES[backend])
    if not hasattr(module, name):
        pytest.skip(f"backend {backend!r} does not implement kernel {name!r}")
    with backends.use(backend):
        return getattr(backends.K, name)


def _describe(benchmark, backend, variant, size, threads):
    benchmark.extra_info.update(
        backend=backend, variant=variant, size=size, dtype=np.dtype(DTYPE).name,
        python=sys.version.split()[0], numpy=np.__version__, threads=threads)


def _rounds(call):
    """Rounds that fill about TIME_PER_CASE_S, from the time of one more (untimed) call after
    the warm-up; ``call`` prepares fresh inputs first (counted, which can only lower the
    estimate)."""
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, TIME_PER_CASE_S / max(elapsed, 1e-7))))


@pytest.mark.parametrize("name, variant, backend, size", CASES)
def test_kernel_speed(benchmark, name, variant, backend, size, bench_threads):
    spec = KERNELS[name]
    implementation = _implementation(backend, name)
    args = spec.arguments(np.random.default_rng(size), DTYPE, size, variant)
    benchmark.group = f"{_label(name, variant)}-{size}"
    _describe(benchmark, backend, variant, size, bench_threads)

    implementation(**copy.deepcopy(args))  # warm-up: compilation and first touch
    rounds = _rounds(lambda: implementation(**copy.deepcopy(args)))

    last = {}

    def fresh_inputs():
        last["kwargs"] = copy.deepcopy(args)
        return (), last["kwargs"]

    result = benchmark.pedantic(implementation, setup=fresh_inputs, rounds=rounds,
                                iterations=1)

    expected_args = copy.deepcopy(args)
    expected = spec.reference(**expected_args)
    rtol, atol = spec.tolerances[np.dtype(DTYPE)]
    where = f"kernel {name!r} ({variant}) on backend {backend!r} (bench size {size})"
    for key in spec.writes:
        if expected_args[key] is not None:
            np.testing.assert_allclose(last["kwargs"][key], expected_args[key], rtol=rtol,
                                       atol=atol, err_msg=f"{where}: argument {key!r}")
    if expected is None:
        assert result is None, f"{where}: returned {result!r}, the reference returns None"
    else:
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{where}: return value")


# ----------------------------------------------------------------------- PyTorch equivalents
_ACTIVATION_NAMES = {code: name for name, code in backends.ACTIVATIONS.items()}


def _activation(torch, code, in_place=False):
    """PyTorch's function for the activation ``code`` (in place: on its argument, where
    PyTorch has an in-place form); a skip for one PyTorch lacks."""
    name = _ACTIVATION_NAMES[code]
    if name == "none":
        return lambda t: t
    function = getattr(torch, name, None) or getattr(torch.nn.functional, name, None)
    if function is None:
        pytest.skip(f"PyTorch has no activation {name!r}")
    return getattr(torch, name + "_", function) if in_place else function


def _activation_backward(torch, code):
    """PyTorch's autograd formula ``grad_in(grad_out, out)`` for the activation ``code``; a
    skip for one whose formula is not listed here."""
    aten = torch.ops.aten
    formulas = {"none": lambda g, out: g,
                "relu": lambda g, out: aten.threshold_backward(g, out, 0),
                "sigmoid": aten.sigmoid_backward, "tanh": aten.tanh_backward}
    name = _ACTIVATION_NAMES[code]
    if name not in formulas:
        pytest.skip(f"no PyTorch backward formula of activation {name!r} from its output")
    return formulas[name]


def _leaf(torch, param, grad):
    """A parameter sharing ``param``'s memory, with ``grad`` as its gradient."""
    p = torch.nn.Parameter(param)
    p.grad = grad
    return p


def _torch_activation_fwd(torch, x, activation, out):
    act = _activation(torch, activation)
    return lambda: {"out": act(x)}


def _torch_activation_bwd(torch, grad_out, out, activation, grad_in):
    backward = _activation_backward(torch, activation)
    return lambda: {"grad_in": backward(grad_out, out)}


def _torch_linear_fwd(torch, x, weight, bias, activation, out):
    act_ = _activation(torch, activation, in_place=True)
    linear = torch.nn.functional.linear
    return lambda: {"out": act_(linear(x, weight, bias))}


def _torch_linear_bwd(torch, grad_out, x, weight, out, activation, grad_x, grad_weight,
                      grad_bias):
    backward = _activation_backward(torch, activation)

    def run():
        g = backward(grad_out, out)
        results = {}
        if grad_x is not None:
            results["grad_x"] = g.mm(weight)
        if grad_weight is not None:
            results["grad_weight"] = g.t().mm(x)
        if grad_bias is not None:
            results["grad_bias"] = g.sum(0)
        return results
    return run


def _torch_cross_entropy_fwd(torch, logits, target, ignore_index, loss, lse):
    cross_entropy = torch.nn.functional.cross_entropy
    return lambda: {"loss": cross_entropy(logits, target, ignore_index=ignore_index,
                                          reduction="none")}


def _torch_cross_entropy_bwd(torch, logits, target, lse, ignore_index, grad_loss, grad_logits):
    aten = torch.ops.aten
    # what PyTorch's forward keeps: log_softmax's output, in the logits' dtype
    log_probs = (logits - lse[:, None]).to(logits.dtype)
    total_weight = torch.ones((), dtype=logits.dtype)

    def run():
        grad_log_probs = aten.nll_loss_backward(grad_loss, log_probs, target, None, 0,
                                                ignore_index, total_weight)
        return {"grad_logits": aten._log_softmax_backward_data(grad_log_probs, log_probs, 1,
                                                               log_probs.dtype)}
    return run


def _torch_fill(torch, buffer, value):
    return lambda: {"buffer": buffer.fill_(value)}


def _segments(offsets, values):
    bounds = offsets.tolist()
    return [values[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def _torch_segment_norms(torch, values, offsets, norm_type, out):
    segments = _segments(offsets, values)

    def run():   # as torch.nn.utils.get_total_norm, keeping the per-segment norms
        norms = torch.stack(torch._foreach_norm(segments, norm_type))
        return {"out": norms, "return": torch.linalg.vector_norm(norms, norm_type).item()}
    return run


def _torch_sgd_step(torch, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
                    nesterov, maximize, first_step):
    p = _leaf(torch, param, grad)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum, dampening=dampening,
                                weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    if momentum != 0 and not first_step:
        optimizer.state[p]["momentum_buffer"] = momentum_buffer

    def run():
        optimizer.step()
        results = {"param": p}
        if momentum != 0:
            results["momentum_buffer"] = optimizer.state[p]["momentum_buffer"]
        return results
    return run


def _torch_adam_step(torch, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1,
                     beta2, eps, weight_decay, decoupled_weight_decay, maximize, fused=None):
    p = _leaf(torch, param, grad)
    amsgrad = max_exp_avg_sq is not None
    adam = torch.optim.AdamW if decoupled_weight_decay else torch.optim.Adam
    optimizer = adam([p], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                     amsgrad=amsgrad, maximize=maximize, fused=fused)
    state = {"step": torch.tensor(float(step - 1)), "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        state["max_exp_avg_sq"] = max_exp_avg_sq
    optimizer.state[p] = state

    def run():
        optimizer.step()
        return dict(optimizer.state[p], param=p, step=None)
    return run


def _torch_rmsprop_step(torch, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                        weight_decay, momentum, maximize):
    p = _leaf(torch, param, grad)
    centered = grad_avg is not None
    optimizer = torch.optim.RMSprop([p], lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                    momentum=momentum, centered=centered, maximize=maximize)
    state = {"step": torch.tensor(0.0), "square_avg": square_avg}
    if momentum > 0:
        state["momentum_buffer"] = momentum_buffer
    if centered:
        state["grad_avg"] = grad_avg
    optimizer.state[p] = state

    def run():
        optimizer.step()
        return dict(optimizer.state[p], param=p, step=None)
    return run


def _torch_adagrad_step(torch, param, grad, state_sum, step, lr, lr_decay, weight_decay, eps,
                        maximize):
    p = _leaf(torch, param, grad)
    optimizer = torch.optim.Adagrad([p], lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                    eps=eps, maximize=maximize)
    optimizer.state[p] = {"step": torch.tensor(float(step - 1)), "sum": state_sum}

    def run():
        optimizer.step()
        return {"param": p, "state_sum": optimizer.state[p]["sum"]}
    return run


def _torch_adadelta_step(torch, param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay,
                         maximize):
    p = _leaf(torch, param, grad)
    optimizer = torch.optim.Adadelta([p], lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                     maximize=maximize)
    optimizer.state[p] = {"step": torch.tensor(0.0), "square_avg": square_avg,
                          "acc_delta": acc_delta}

    def run():
        optimizer.step()
        return dict(optimizer.state[p], param=p, step=None)
    return run


def _torch_adamax_step(torch, param, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps,
                       weight_decay, maximize):
    p = _leaf(torch, param, grad)
    optimizer = torch.optim.Adamax([p], lr=lr, betas=(beta1, beta2), eps=eps,
                                   weight_decay=weight_decay, maximize=maximize)
    optimizer.state[p] = {"step": torch.tensor(float(step - 1)), "exp_avg": exp_avg,
                          "exp_inf": exp_inf}

    def run():
        optimizer.step()
        return dict(optimizer.state[p], param=p, step=None)
    return run


def _torch_nadam_step(torch, param, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1,
                      beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay,
                      maximize):
    p = _leaf(torch, param, grad)
    optimizer = torch.optim.NAdam([p], lr=lr, betas=(beta1, beta2), eps=eps,
                                  weight_decay=weight_decay, momentum_decay=momentum_decay,
                                  decoupled_weight_decay=decoupled_weight_decay,
                                  maximize=maximize)
    mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))  # PyTorch multiplies it in
    optimizer.state[p] = {"step": torch.tensor(float(step - 1)),
                          "mu_product": torch.tensor(mu_product / mu), "exp_avg": exp_avg,
                          "exp_avg_sq": exp_avg_sq}

    def run():
        optimizer.step()
        return dict(optimizer.state[p], param=p, step=None, mu_product=None)
    return run


def _torch_lstm_cell_fwd(torch, gates, c_prev, gates_act, h, c):
    def run():   # the pointwise ops of ATen's CPU LSTMCell, out of place as under autograd
        z_i, z_f, z_g, z_o = gates.chunk(4, 1)
        i, f, g, o = z_i.sigmoid(), z_f.sigmoid(), z_g.tanh(), z_o.sigmoid()
        c_new = torch.addcmul(f * c_prev, i, g)
        return {"c": c_new, "h": o * c_new.tanh()}
    return run


def _torch_lstm_cell_bwd(torch, grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
    aten = torch.ops.aten
    i, f, g, o = gates_act.chunk(4, 1)
    tanh_c = c.tanh()   # kept by the forward's tanh in PyTorch

    def run():   # autograd's formulas for the forward's ops, in its order
        grad_cell = grad_c + aten.tanh_backward(grad_h * o, tanh_c)
        results = {"grad_gates": torch.cat([
            aten.sigmoid_backward(grad_cell * g, i), aten.sigmoid_backward(grad_cell * c_prev, f),
            aten.tanh_backward(grad_cell * i, g), aten.sigmoid_backward(grad_h * tanh_c, o)], 1)}
        if grad_c_prev is not None:
            results["grad_c_prev"] = grad_cell * f
        return results
    return run


def _torch_batchnorm_fwd(torch, x, weight, bias, eps, activation, running_mean, running_var,
                         momentum, mean, var, invstd, out):
    act_ = _activation(torch, activation, in_place=True)

    def run():   # the op F.batch_norm(training=True) runs, which also returns the statistics
        y, save_mean, save_invstd = torch.native_batch_norm(x, weight, bias, running_mean,
                                                            running_var, True, momentum, eps)
        results = {"out": act_(y), "mean": save_mean, "invstd": save_invstd}
        if running_mean is not None:
            results.update(running_mean=running_mean, running_var=running_var)
        return results
    return run


def _torch_batchnorm_bwd(torch, grad_out, x, weight, mean, invstd, out, activation, grad_x,
                         grad_weight, grad_bias):
    save_mean, save_invstd = mean.to(x.dtype), invstd.to(x.dtype)   # PyTorch keeps x's dtype
    names = ("grad_x", "grad_weight", "grad_bias")
    mask = [grad_x is not None, grad_weight is not None, grad_bias is not None]
    backward = _activation_backward(torch, activation)

    def run():
        grads = torch.ops.aten.native_batch_norm_backward(
            backward(grad_out, out), x, weight, None, None, save_mean, save_invstd, True, 1e-5,
            mask)
        return {name: grad for name, grad, wanted in zip(names, grads, mask) if wanted}
    return run


def _torch_clip_grad_norm(torch, grads, offsets, max_norm, norm_type, error_if_nonfinite,
                          per_param_out):
    params = [_leaf(torch, torch.empty(len(g)), g) for g in _segments(offsets, grads)]

    def run():
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
        return {"grads": grads, "return": total.item()}
    return run


def _torch_clip_grad_range(torch, grads, min_value, max_value):
    return lambda: {"grads": grads.clamp_(min_value, max_value)}


def _torch_scale(torch, values, factor):
    return lambda: {"values": values.mul_(factor)}


def _torch_axpy(torch, y, x, alpha):
    return lambda: {"y": y.add_(x, alpha=alpha)}


def _torch_grad_window_mean(torch, total, grad, weight, factor):
    def run():
        grad.mul_(weight).add_(total).mul_(factor)
        return {"grad": grad, "total": total.zero_()}
    return run


def _torch_conv2d_fwd(torch, x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                      groups, out):
    return lambda: {"out": torch.nn.functional.conv2d(
        x, weight, bias, (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w), groups)}


def _torch_conv2d_bwd(torch, grad_out, x, weight, geometry, mask):
    """ATen's ``convolution_backward`` (what autograd runs for a conv2d) with ``mask`` naming
    the gradients wanted (input, weight, bias)."""
    stride, padding, dilation, groups = geometry
    bias_sizes = [weight.shape[0]] if mask[2] else None
    return lambda: torch.ops.aten.convolution_backward(
        grad_out, x, weight, bias_sizes, stride, padding, dilation, False, [0, 0], groups, mask)


def _torch_conv2d_bwd_input(torch, grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h,
                            dil_w, groups, grad_x):
    run = _torch_conv2d_bwd(torch, grad_out, torch.empty_like(grad_x), weight, (
        [stride_h, stride_w], [pad_h, pad_w], [dil_h, dil_w], groups), [True, False, False])
    return lambda: {"grad_x": run()[0]}


def _torch_conv2d_bwd_weight(torch, grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h,
                             dil_w, groups, grad_weight, grad_bias):
    mask = [False, True, grad_bias is not None]
    run = _torch_conv2d_bwd(torch, grad_out, x, torch.empty_like(grad_weight), (
        [stride_h, stride_w], [pad_h, pad_w], [dil_h, dil_w], groups), mask)

    def results():
        _, weight, bias = run()
        return {"grad_weight": weight, "grad_bias": bias} if mask[2] else {"grad_weight": weight}
    return results


def _ceil_mode(plane, out_plane, kernel, stride, padding, dilation=(1, 1)):
    """Whether an output plane of ``out_plane`` positions took ceil_mode (the kernels read
    their output size off their arrays; PyTorch takes the flag)."""
    return any(conv_output_size(*sizes) != count for sizes, count in zip(
        zip(plane, kernel, stride, padding, dilation), out_plane))


def _torch_max_pool2d_fwd(torch, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                          dil_h, dil_w, out, indices):
    geometry = ((kernel_h, kernel_w), (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w))
    ceil = _ceil_mode(x.shape[2:], out.shape[2:], *geometry)

    def run():
        values, positions = torch.ops.aten.max_pool2d_with_indices(x, *geometry, ceil)
        return {"out": values, "indices": positions}
    return run


def _torch_max_pool2d_bwd(torch, grad_out, indices, grad_x):
    planes = grad_x.view(*grad_x.shape[:2], -1)
    flat_indices, flat_grad = indices.flatten(2), grad_out.flatten(2)

    def run():   # the scatter-add ATen's max_pool2d backward does, without the geometry
        planes.zero_().scatter_add_(2, flat_indices, flat_grad)
        return {"grad_x": grad_x}
    return run


def _avg_geometry(plane, out_plane, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    geometry = ([kernel_h, kernel_w], [stride_h, stride_w], [pad_h, pad_w])
    return geometry + (_ceil_mode(plane, out_plane, *geometry),)


def _torch_avg_pool2d_fwd(torch, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                          count_include_pad, divisor_override, out):
    geometry = _avg_geometry(x.shape[2:], out.shape[2:], kernel_h, kernel_w, stride_h,
                             stride_w, pad_h, pad_w)
    return lambda: {"out": torch.ops.aten.avg_pool2d(x, *geometry, count_include_pad,
                                                     divisor_override or None)}


def _torch_avg_pool2d_bwd(torch, grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                          pad_w, count_include_pad, divisor_override, grad_x):
    geometry = _avg_geometry(grad_x.shape[2:], grad_out.shape[2:], kernel_h, kernel_w,
                             stride_h, stride_w, pad_h, pad_w)
    x = torch.empty_like(grad_x)
    return lambda: {"grad_x": torch.ops.aten.avg_pool2d_backward(
        grad_out, x, *geometry, count_include_pad, divisor_override or None)}


#: PyTorch's equivalent of each kernel, by row name.
TORCH_EQUIVALENTS = {
    "activation_fwd": {"torch": _torch_activation_fwd},
    "activation_bwd": {"torch": _torch_activation_bwd},
    "linear_fwd": {"torch": _torch_linear_fwd},
    "linear_bwd": {"torch": _torch_linear_bwd},
    "cross_entropy_fwd": {"torch": _torch_cross_entropy_fwd},
    "cross_entropy_bwd": {"torch": _torch_cross_entropy_bwd},
    "fill": {"torch": _torch_fill},
    "segment_norms": {"torch": _torch_segment_norms},
    "sgd_step": {"torch": _torch_sgd_step},
    "adam_step": {"torch": _torch_adam_step,
                  "torch-fused": functools.partial(_torch_adam_step, fused=True)},
    "rmsprop_step": {"torch": _torch_rmsprop_step},
    "adagrad_step": {"torch": _torch_adagrad_step},
    "adadelta_step": {"torch": _torch_adadelta_step},
    "adamax_step": {"torch": _torch_adamax_step},
    "nadam_step": {"torch": _torch_nadam_step},
    "lstm_cell_fwd": {"torch": _torch_lstm_cell_fwd},
    "lstm_cell_bwd": {"torch": _torch_lstm_cell_bwd},
    "batchnorm_fwd": {"torch": _torch_batchnorm_fwd},
    "batchnorm_bwd": {"torch": _torch_batchnorm_bwd},
    "clip_grad_norm": {"torch": _torch_clip_grad_norm},
    "clip_grad_range": {"torch": _torch_clip_grad_range},
    "scale": {"torch": _torch_scale},
    "axpy": {"torch": _torch_axpy},
    "grad_window_mean": {"torch": _torch_grad_window_mean},
    "conv2d_fwd": {"torch": _torch_conv2d_fwd},
    "conv2d_bwd_input": {"torch": _torch_conv2d_bwd_input},
    "conv2d_bwd_weight": {"torch": _torch_conv2d_bwd_weight},
    "max_pool2d_fwd": {"torch": _torch_max_pool2d_fwd},
    "max_pool2d_bwd": {"torch": _torch_max_pool2d_bwd},
    "avg_pool2d_fwd": {"torch": _torch_avg_pool2d_fwd},
    "avg_pool2d_bwd": {"torch": _torch_avg_pool2d_bwd},
}

TORCH_CASES = [pytest.param(name, variant, row, size,
                            id=f"{_label(name, variant)}-{row}-{size}")
               for name, rows in TORCH_EQUIVALENTS.items() if HAS_TORCH and name in KERNELS
               for variant in KERNELS[name].variants for row in rows
               for size in _bench_sizes(KERNELS[name])]


#: Largest norm-wise relative error of a PyTorch output against the reference.
TORCH_TOLERANCE = 1e-4


def _as_torch(torch, kwargs):
    """The kernel's arguments with every array wrapped (no copy) as a tensor."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
            for k, v in kwargs.items()}


def _call(run):
    return run()


@pytest.mark.parametrize("name, variant, row, size", TORCH_CASES)
def test_torch_equivalent_speed(benchmark, name, variant, row, size, bench_threads):
    torch = pytest.importorskip("torch")
    spec = KERNELS[name]
    prepare = TORCH_EQUIVALENTS[name][row]
    args = spec.arguments(np.random.default_rng(size), DTYPE, size, variant)
    benchmark.group = f"{_label(name, variant)}-{size}"
    _describe(benchmark, row, variant, size, bench_threads)
    benchmark.extra_info["torch"] = torch.__version__

    def prepared():
        return prepare(torch, **_as_torch(torch, copy.deepcopy(args)))

    prepared()()  # warm-up: PyTorch's lazy initialisation and first touch are not timed
    rounds = _rounds(lambda: prepared()())
    result = benchmark.pedantic(_call, setup=lambda: ((prepared(),), {}), rounds=rounds,
                                iterations=1)

    expected_args = copy.deepcopy(args)
    expected = spec.reference(**expected_args)
    rtol, atol = spec.tolerances[np.dtype(DTYPE)]
    where = f"PyTorch's equivalent {row!r} of kernel {name!r} ({variant}, bench size {size})"
    errors = {}
    for key, value in result.items():
        if value is None:
            continue
        want = np.asarray(expected if key == "return" else expected_args[key], np.float64)
        got = np.asarray(value if key == "return" else value.detach().numpy(), np.float64)
        scale = np.linalg.norm(want)
        errors[key] = float(np.linalg.norm(got - want) / (scale if scale else 1.0))
    benchmark.extra_info["check"] = {"reference": "numpy", "errors": errors}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TORCH_TOLERANCE, (
        f"{where}: {worst!r} differs from the reference by a norm-wise relative error of "
        f"{errors[worst]:.3g} > {TORCH_TOLERANCE:g} (all: {errors})")
