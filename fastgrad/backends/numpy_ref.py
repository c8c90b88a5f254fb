"""The reference kernels: readable NumPy, the oracle every other backend is tested against,
and the backend that is always available.

Each function here is a kernel declaration (see :mod:`fastgrad.backends.spec`): its docstring
is the contract (shapes, what it overwrites, the formula), its ``@kernel`` spec says how to
test and benchmark it. Inputs are assumed valid: the Python layer has checked them.
"""
import numpy as np

from .spec import ACTIVATIONS, kernel

_RELU, _SIGMOID, _TANH = ACTIVATIONS["relu"], ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]


def _activate(z, activation):
    """Apply the activation with code ``activation`` to ``z`` in place."""
    if activation == _RELU:
        np.maximum(z, 0, out=z)
    elif activation == _SIGMOID:
        # stable: exp(-|z|) never overflows
        e = np.exp(-np.abs(z))
        np.divide(np.where(z >= 0, 1, e), 1 + e, out=z)
    elif activation == _TANH:
        np.tanh(z, out=z)


def _activation_derivative(out, activation):
    """d act(z) / dz expressed through the activation's output ``out`` (None: identity)."""
    if activation == _RELU:
        return out > 0
    if activation == _SIGMOID:
        return out * (1 - out)
    if activation == _TANH:
        return 1 - out * out
    return None


# ------------------------------------------------------------------------------- activations
def _activation_example(rng, dtype, size, activation=_SIGMOID):
    x = (3 * rng.standard_normal((size, size + 3))).astype(dtype)
    return dict(x=x, activation=activation, out=np.empty_like(x))


@kernel(writes=("out",), example=_activation_example)
def activation_fwd(x, activation, out):
    """``out = act(x)`` elementwise, the same epilogue :func:`linear_fwd` applies.

    Shapes: x and out of one shape and dtype, C-contiguous. Overwrites ``out``.
    """
    np.copyto(out, x)
    _activate(out, activation)


def _activation_bwd_example(rng, dtype, size):
    args = _activation_example(rng, dtype, size)
    activation_fwd(**args)
    out = args["out"]
    return dict(grad_out=rng.standard_normal(out.shape).astype(dtype), out=out,
                activation=args["activation"], grad_in=np.empty_like(out))


@kernel(writes=("grad_in",), example=_activation_bwd_example)
def activation_bwd(grad_out, out, activation, grad_in):
    """``grad_in = grad_out * act'(x)``, the derivative taken from the output ``out``, as in
    :func:`linear_bwd`. Shapes: all one shape and dtype, C-contiguous. Overwrites ``grad_in``.
    """
    derivative = _activation_derivative(out, activation)
    if derivative is None:
        np.copyto(grad_in, grad_out)
    else:
        np.multiply(grad_out, derivative, out=grad_in)


# ------------------------------------------------------------------------------------ linear
def _linear_example(rng, dtype, size, activation=_TANH):
    n, i, o = size, size + 2, size + 1
    x = rng.standard_normal((n, i)).astype(dtype)
    weight = rng.standard_normal((o, i)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    out = np.empty((n, o), dtype)
    return dict(x=x, weight=weight, bias=bias, activation=activation, out=out)


@kernel(writes=("out",), example=_linear_example)
def linear_fwd(x, weight, bias, activation, out):
    """``out = act(x @ weight.T + bias)``, the GEMM with its epilogue fused.

    Shapes: x (N, I), weight (O, I), bias (O,) or None, out (N, O), all one dtype.
    ``activation`` is a code from :data:`~fastgrad.backends.spec.ACTIVATIONS`.
    Overwrites ``out``.
    """
    np.matmul(x, weight.T, out=out)
    if bias is not None:
        out += bias
    _activate(out, activation)


def _linear_bwd_example(rng, dtype, size):
    args = _linear_example(rng, dtype, size)
    linear_fwd(**args)
    n, o = args["out"].shape
    return dict(grad_out=rng.standard_normal((n, o)).astype(dtype), x=args["x"],
                weight=args["weight"], out=args["out"], activation=args["activation"],
                grad_x=np.empty_like(args["x"]), grad_weight=np.empty_like(args["weight"]),
                grad_bias=np.empty_like(args["bias"]))


@kernel(writes=("grad_x", "grad_weight", "grad_bias"), example=_linear_bwd_example,
        tolerances={np.dtype(np.float32): (1e-4, 1e-5)})
def linear_bwd(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
    """Gradients of :func:`linear_fwd`, with the activation derivative and the bias reduction fused.

    ``g = grad_out * act'(out)``; ``grad_x = g @ weight``; ``grad_weight = g.T @ x``;
    ``grad_bias = g.sum(0)``. The derivative is taken from the forward output ``out``, so no
    pre-activation is kept. Shapes as in :func:`linear_fwd`; grad_out (N, O). Overwrites
    ``grad_x``, ``grad_weight`` and ``grad_bias``; each may be None to skip it.
    """
    derivative = _activation_derivative(out, activation)
    g = grad_out if derivative is None else grad_out * derivative
    if grad_x is not None:
        np.matmul(g, weight, out=grad_x)
    if grad_weight is not None:
        np.matmul(g.T, x, out=grad_weight)
    if grad_bias is not None:
        np.sum(g, axis=0, out=grad_bias)


# ----------------------------------------------------------------------------- cross-entropy
def _cross_entropy_example(rng, dtype, size):
    n, c = size, size + 4
    logits = (3 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, n).astype(np.int64)
    target[::3] = -100
    return dict(logits=logits, target=target, ignore_index=-100,
                loss=np.empty(n, dtype), lse=np.empty(n, dtype))


@kernel(writes=("loss", "lse"), example=_cross_entropy_example)
def cross_entropy_fwd(logits, target, ignore_index, loss, lse):
    """Per-row cross-entropy of class-index targets: log-softmax and NLL in one pass.

    ``lse[n] = logsumexp(logits[n])`` (shifted by the row maximum, so logits of any size are
    safe) and ``loss[n] = lse[n] - logits[n, target[n]]``, or 0 where ``target[n] ==
    ignore_index``. Shapes: logits (N, C), target (N,) int64 with values in [0, C) or
    ``ignore_index``; loss and lse (N,). Overwrites ``loss`` and ``lse``.
    """
    row_max = logits.max(axis=1)
    shifted = logits - row_max[:, None]
    lse[:] = row_max + np.log(np.exp(shifted).sum(axis=1))
    kept = target != ignore_index
    picked = np.take_along_axis(logits, np.where(kept, target, 0)[:, None], axis=1)[:, 0]
    loss[:] = np.where(kept, lse - picked, 0)


def _cross_entropy_bwd_example(rng, dtype, size):
    args = _cross_entropy_example(rng, dtype, size)
    cross_entropy_fwd(**args)
    n = args["logits"].shape[0]
    return dict(logits=args["logits"], target=args["target"], lse=args["lse"],
                ignore_index=args["ignore_index"],
                grad_loss=rng.standard_normal(n).astype(dtype),
                grad_logits=np.empty_like(args["logits"]))


@kernel(writes=("grad_logits",), example=_cross_entropy_bwd_example)
def cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits):
    """Gradient of :func:`cross_entropy_fwd`'s per-row loss with respect to the logits.

    ``grad_logits[n] = grad_loss[n] * (softmax(logits[n]) - onehot(target[n]))``, zero rows
    where the target is ignored. Shapes: logits and grad_logits (N, C); target, lse and
    grad_loss (N,). Overwrites ``grad_logits``.
    """
    kept = target != ignore_index
    np.exp(logits - lse[:, None], out=grad_logits)
    rows = np.flatnonzero(kept)
    grad_logits[rows, target[rows]] -= 1
    grad_logits *= np.where(kept, grad_loss, 0)[:, None]


# ------------------------------------------------------------------------------------ arenas
def _fill_example(rng, dtype, size):
    return dict(buffer=rng.standard_normal(size * 1000 + 1).astype(dtype), value=0.0)


@kernel(writes=("buffer",), example=_fill_example, bench_sizes=(1000, 10_000))
def fill(buffer, value):
    """Set every element of the 1-D ``buffer`` to ``value`` (zeroing a gradient arena).
    Overwrites ``buffer``."""
    buffer.fill(value)


def _segment_norms_example(rng, dtype, size, norm_type=2.0):
    # about 1,000 * size elements in 3 to 102 segments of random lengths
    segments = 2 + min(size, 100)
    lengths = rng.integers(1, 2000 * size // segments + 2, segments)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.standard_normal(int(offsets[-1])).astype(dtype)
    return dict(values=values, offsets=offsets, norm_type=norm_type,
                out=np.empty(len(lengths), np.float64))


@kernel(writes=("out",), example=_segment_norms_example, bench_sizes=(100, 10_000),
        tolerances={np.dtype(np.float32): (1e-6, 0.0)})
def segment_norms(values, offsets, norm_type, out):
    """The ``norm_type``-norm of each segment of a flat arena, and of the whole arena.

    Segment ``p`` is ``values[offsets[p]:offsets[p + 1]]`` (one parameter's gradient). Norm
    types: any p > 0 and ``inf``; sums are accumulated in float64. Shapes: values (M,),
    offsets (P + 1,) int64, out (P,) float64. Overwrites ``out``; returns the total norm
    (a Python float), which is the norm of the per-segment norms.
    """
    for p in range(len(out)):
        segment = values[offsets[p]:offsets[p + 1]].astype(np.float64)
        if norm_type == np.inf:
            out[p] = np.abs(segment).max() if segment.size else 0.0
        else:
            out[p] = (np.abs(segment) ** norm_type).sum() ** (1.0 / norm_type)
    if norm_type == np.inf:
        return float(out.max()) if out.size else 0.0
    return float((out ** norm_type).sum() ** (1.0 / norm_type))


# ------------------------------------------------------------------------------- optimisers
def _sgd_example(rng, dtype, size):
    n = 1000 * size + 3
    return dict(param=rng.standard_normal(n).astype(dtype),
                grad=rng.standard_normal(n).astype(dtype),
                momentum_buffer=rng.standard_normal(n).astype(dtype), lr=0.1, momentum=0.9,
                dampening=0.1, weight_decay=0.01, nesterov=False, maximize=False,
                first_step=False)


@kernel(writes=("param", "momentum_buffer"), example=_sgd_example, bench_sizes=(100, 10_000))
def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
             maximize, first_step):
    """One step of stochastic gradient descent with momentum, PyTorch's formulation.

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1}; \\quad
        b_t = \\mu b_{t-1} + (1 - \\tau) g_t \\;(b_1 = g_1); \\quad
        \\theta_t = \\theta_{t-1} - \\gamma (g_t + \\mu b_t \\text{ if nesterov else } b_t)

    Shapes: param, grad and momentum_buffer (M,), one dtype; momentum_buffer may be None when
    ``momentum == 0``. ``first_step`` initialises the buffer with the gradient, as PyTorch
    does. Overwrites ``param`` and ``momentum_buffer``.

    References: Sutskever et al., "On the importance of initialization and momentum in deep
    learning", ICML 2013.
    """
    d_p = -grad if maximize else grad
    if weight_decay != 0:
        d_p = d_p + weight_decay * param
    if momentum != 0:
        if first_step:
            momentum_buffer[:] = d_p
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * d_p
        d_p = d_p + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * d_p
