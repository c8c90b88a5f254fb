"""The reference kernels: readable NumPy, the oracle every other backend is tested against,
and the backend that is always available.

Each function here is a kernel declaration (see :mod:`fastgrad.backends.spec`): its docstring
is the contract (shapes, what it overwrites, the formula), its ``@kernel`` spec says how to
test and benchmark it, including its variants (activation codes, norm types, optimiser
flags), which the generated tests and benchmarks run on every backend. Inputs are assumed
valid: the Python layer has checked them.
"""
import numpy as np

from ..device import full, to_device_of, zeros
from .spec import kernel

#: Activation codes passed to the activation and fused linear kernels (an int, so every backend
#: can take it). A code is declared here, with its formulas below and its case in
#: :func:`_activate` and :func:`_activation_derivative`; every backend's activation loops then
#: implement it (a compiled backend rejects a code it does not know), and the generated tests
#: and benchmarks run it on every backend as a variant of each kernel taking an activation.
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

#: Each activation's definition in float64: ``(f(z), f'(z))``, from the pre-activation ``z``
#: and written as plainly as possible (the kernels compute f overflow-free and f' from the
#: output): the independent formulas the reference is tested against.
ACTIVATION_FORMULAS = {
    "none": (lambda z: z, np.ones_like),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(np.float64)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)),
                lambda z: 1 / (1 + np.exp(-z)) * (1 - 1 / (1 + np.exp(-z)))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
}

_NONE, _RELU = ACTIVATIONS["none"], ACTIVATIONS["relu"]
_SIGMOID, _TANH = ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]

#: Variant axes (see :func:`~fastgrad.backends.spec.kernel`) several kernels share: one
#: variant per activation code; per norm type; the optimisers' ascent and weight decay.
_ACTIVATION_VARIANTS = {name: dict(activation=code) for name, code in ACTIVATIONS.items()}
_NORM_VARIANTS = {"L2": dict(norm_type=2.0), "L1": dict(norm_type=1.0),
                  "Linf": dict(norm_type=np.inf), "L3": dict(norm_type=3.0)}
_MAXIMIZE_VARIANTS = {"descend": {}, "maximize": dict(maximize=True)}
_DECAY_VARIANTS = {"decay": {}, "no-decay": dict(weight_decay=0.0)}

#: float32 parity of kernels around a matrix product: BLAS sums each element's K products in
#: an order that depends on how the product is cut (fastgrad's blocks, NumPy's whole call), so
#: a float32 sum of ~1000 unit-size products differs by ~1e-5 between them.
_PRODUCT_TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5)}


def _sigmoid_into(z, out):
    """``out = sigmoid(z)`` from ``exp(-|z|)``: no overflow, full relative precision in both
    tails, and no data-dependent branch (``np.where`` on random signs is several times slower
    than the arithmetic)."""
    e = np.exp(-np.abs(z))
    # the numerator is 1 where z >= 0 (e <= 1 there) and e where z < 0
    np.maximum(e, z >= 0, out=out)
    e += 1
    out /= e


def _activate(z, activation):
    """Apply the activation with code ``activation`` to ``z`` in place."""
    if activation == _RELU:
        np.maximum(z, 0, out=z)
    elif activation == _SIGMOID:
        _sigmoid_into(z, z)
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


@kernel(writes=("out",), example=_activation_example, variants=_ACTIVATION_VARIANTS)
def activation_fwd(x, activation, out):
    """``out = act(x)`` elementwise, the same epilogue :func:`linear_fwd` applies.

    Shapes: x and out of one shape and dtype, C-contiguous. Overwrites ``out``.
    """
    np.copyto(out, x)
    _activate(out, activation)


def _activation_bwd_example(rng, dtype, size, activation=_SIGMOID):
    args = _activation_example(rng, dtype, size, activation)
    activation_fwd(**args)
    out = args["out"]
    return dict(grad_out=rng.standard_normal(out.shape).astype(dtype), out=out,
                activation=args["activation"], grad_in=np.empty_like(out))


@kernel(writes=("grad_in",), example=_activation_bwd_example, variants=_ACTIVATION_VARIANTS)
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
    # scaled as layers are initialised: pre-activations of order 1, not sqrt(i)
    weight = (rng.standard_normal((o, i)) / np.sqrt(i)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    out = np.empty((n, o), dtype)
    return dict(x=x, weight=weight, bias=bias, activation=activation, out=out)


@kernel(writes=("out",), example=_linear_example, tolerances=_PRODUCT_TOLERANCES,
        variants=(_ACTIVATION_VARIANTS, {"bias": {}, "no-bias": dict(bias=None)}))
def linear_fwd(x, weight, bias, activation, out):
    """``out = act(x @ weight.T + bias)``, the GEMM with its epilogue fused.

    Shapes: x (N, I), weight (O, I), bias (O,) or None, out (N, O), all one dtype.
    ``activation`` is a code from :data:`ACTIVATIONS`.
    Overwrites ``out``.
    """
    np.matmul(x, weight.T, out=out)
    if bias is not None:
        out += bias
    _activate(out, activation)


def _linear_bwd_example(rng, dtype, size, activation=_TANH):
    args = _linear_example(rng, dtype, size, activation)
    linear_fwd(**args)
    n, o = args["out"].shape
    return dict(grad_out=rng.standard_normal((n, o)).astype(dtype), x=args["x"],
                weight=args["weight"], out=args["out"], activation=args["activation"],
                grad_x=np.empty_like(args["x"]), grad_weight=np.empty_like(args["weight"]),
                grad_bias=np.empty_like(args["bias"]))


@kernel(writes=("grad_x", "grad_weight", "grad_bias"), example=_linear_bwd_example,
        tolerances=_PRODUCT_TOLERANCES,
        variants=(_ACTIVATION_VARIANTS, {
            "all": {}, "no-grad_x": dict(grad_x=None), "no-grad_weight": dict(grad_weight=None),
            "no-grad_bias": dict(grad_bias=None), "bias-only": dict(grad_x=None,
                                                                     grad_weight=None)}))
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


# -------------------------------------------------------------------------------------- gemm
def _gemm_example(rng, dtype, size, trans_a=None, trans_b=None):
    """Random flags unless given (the variants give them all)."""
    m, n, k = size, size + 2, size + 1
    drawn_a, drawn_b, accumulate = (bool(flag) for flag in rng.integers(0, 2, 3))
    trans_a = drawn_a if trans_a is None else trans_a
    trans_b = drawn_b if trans_b is None else trans_b
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = rng.standard_normal((m, n)).astype(dtype)
    return dict(a=a, b=b, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate, out=out)


@kernel(writes=("out",), example=_gemm_example, bench_sizes=(64, 512),
        tolerances=_PRODUCT_TOLERANCES,
        variants=({"a": dict(trans_a=False), "a.T": dict(trans_a=True)},
                  {"b": dict(trans_b=False), "b.T": dict(trans_b=True)},
                  {"=": dict(accumulate=False), "+=": dict(accumulate=True)}))
def gemm(a, b, trans_a, trans_b, accumulate, out):
    """``out = op(a) @ op(b)``, or ``out += op(a) @ op(b)`` when ``accumulate``; ``op(a)`` is
    ``a.T`` when ``trans_a`` (likewise ``b``). Every matrix product of a training step goes
    through this kernel, so the compiled backends can run it on their own threads.

    Shapes: op(a) (M, K), op(b) (K, N), out (M, N), all 2-D, C-contiguous, one dtype.
    Overwrites ``out``.
    """
    a, b = (a.T if trans_a else a), (b.T if trans_b else b)
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


# ------------------------------------------------------------------ products with packed weights
# A recurrent layer multiplies by the same W_hh at every step. Packed once per sequence into
# column panels, that operand is read straight from the panels by every step's product instead
# of being copied into a BLAS's own layout at each call (most of a 64-row product's time).
def packed_width(dtype):
    """The columns of one panel of a packed operand: two 64-byte vectors of ``dtype`` (32 float32,
    16 float64)."""
    return 128 // np.dtype(dtype).itemsize


def packed_shape(depth, cols, dtype):
    """The shape of the packed form of a (depth, cols) operand: ``(panels, depth, width)``, the
    last panel padded with zero columns."""
    width = packed_width(dtype)
    return (-(-cols // width), depth, width)


def _gemm_pack_example(rng, dtype, size, trans_b=None):
    k, n = size + 1, 2 * size + 33  # a partial last panel for both dtypes
    trans_b = bool(rng.integers(0, 2)) if trans_b is None else trans_b
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return dict(b=b, trans_b=trans_b,
                packed=rng.standard_normal(packed_shape(k, n, dtype)).astype(dtype))


@kernel(writes=("packed",), example=_gemm_pack_example, bench_sizes=(64, 512),
        variants={"b": dict(trans_b=False), "b.T": dict(trans_b=True)})
def gemm_pack(b, trans_b, packed):
    """Pack ``op(b)`` (K, N) (``b.T`` when ``trans_b``) for :func:`gemm_packed`:
    ``packed[p, k, j] = op(b)[k, p * width + j]`` with ``width = packed_width(dtype)``, and
    zeros past column N.

    Shapes: b (K, N) or (N, K), packed :func:`packed_shape` (K, N). Overwrites ``packed``.
    """
    b = b.T if trans_b else b
    panels, depth, width = packed.shape
    padded = zeros((depth, panels * width), packed.dtype, packed)
    padded[:, :b.shape[1]] = b
    packed[...] = padded.reshape(depth, panels, width).transpose(1, 0, 2)


def _gemm_packed_example(rng, dtype, size):
    m, k, n = size, size + 1, 2 * size + 33
    b = rng.standard_normal((k, n)).astype(dtype)
    packed = np.empty(packed_shape(k, n, dtype), dtype)
    gemm_pack(b, False, packed)
    return dict(a=rng.standard_normal((m, k)).astype(dtype), packed=packed,
                accumulate=bool(rng.integers(0, 2)),
                out=rng.standard_normal((m, n)).astype(dtype))


@kernel(writes=("out",), example=_gemm_packed_example, bench_sizes=(64, 512),
        tolerances=_PRODUCT_TOLERANCES,
        variants={"=": dict(accumulate=False), "+=": dict(accumulate=True)})
def gemm_packed(a, packed, accumulate, out):
    """``out = a @ B`` (``+=`` when ``accumulate``) for the (K, N) operand B that
    :func:`gemm_pack` packed into ``packed``; N is ``out``'s column count.

    Shapes: a (M, K), packed :func:`packed_shape` (K, N), out (M, N). Overwrites ``out``.
    """
    panels, depth, width = packed.shape
    b = packed.transpose(1, 0, 2).reshape(depth, panels * width)[:, :out.shape[1]]
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


# ----------------------------------------------------------------------------- cross-entropy
def _cross_entropy_example(rng, dtype, size):
    n, c = size, size + 4
    logits = (3 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, n).astype(np.int64)
    target[::3] = -100
    return dict(logits=logits, target=target, ignore_index=-100,
                loss=np.empty(n, dtype), lse=np.empty(n, np.float64))


@kernel(writes=("loss", "lse"), example=_cross_entropy_example)
def cross_entropy_fwd(logits, target, ignore_index, loss, lse):
    """Per-row cross-entropy of class-index targets: log-softmax and NLL in one pass.

    ``lse[n] = logsumexp(logits[n])`` (shifted by the row maximum, so logits of any size are
    safe) and ``loss[n] = lse[n] - logits[n, target[n]]``, or 0 where ``target[n] ==
    ignore_index``. ``lse`` is float64 whatever the logits' dtype: rounded to float32 at a
    logit size of 1e4 it would lose the loss's own digits (log 3 would come out 1.0986328), and
    the backward uses it. Shapes: logits (N, C), target (N,) int64 with values in [0, C) or
    ``ignore_index``; loss (N,) of the logits' dtype, lse (N,) float64. Overwrites ``loss``
    and ``lse``.
    """
    row_max = logits.max(axis=1).astype(np.float64)
    shifted = logits - row_max[:, None]
    lse[:] = row_max + np.log(np.exp(shifted).sum(axis=1))
    kept = target != ignore_index
    picked = np.take_along_axis(logits, np.where(kept, target, 0)[:, None], axis=1)[:, 0]
    np.copyto(loss, np.where(kept, lse - picked, 0), casting="same_kind")


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
    where the target is ignored. Shapes: logits and grad_logits (N, C); target and grad_loss
    (N,); lse (N,) float64 as :func:`cross_entropy_fwd` wrote it. Overwrites ``grad_logits``.
    """
    kept = target != ignore_index
    np.copyto(grad_logits, np.exp(logits - lse[:, None]), casting="same_kind")
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
        tolerances={np.dtype(np.float32): (1e-6, 0.0)}, variants=_NORM_VARIANTS)
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


def _monitor_norms_example(rng, dtype, size):
    args = _segment_norms_example(rng, dtype, size)
    values, offsets = args["values"], args["offsets"]
    change = rng.standard_normal(values.size) * 1e-3
    segments = len(offsets) - 1
    # segments grouped into layers of one to three, one segment left out (position -1)
    layer_of = np.cumsum(rng.integers(0, 2, segments) * (rng.integers(0, 3, segments) > 0))
    layer_of[rng.integers(0, segments)] = -1
    return dict(grads=rng.standard_normal(values.size).astype(dtype), values=values,
                prev=(values + change).astype(dtype), offsets=offsets, have_prev=True,
                out=np.zeros((3, segments), np.float64), layer_of=layer_of.astype(np.int64),
                layer_sq=rng.random(int(layer_of.max()) + 1))


@kernel(writes=("prev", "out", "layer_sq"), example=_monitor_norms_example,
        bench_sizes=(100, 10_000), tolerances={np.dtype(np.float32): (1e-6, 0.0)},
        variants=({"grads": {}, "no-grads": dict(grads=None)},
                  {"prev": {}, "no-prev": dict(have_prev=False)}))
def monitor_norms(grads, values, prev, offsets, have_prev, out, layer_of, layer_sq):
    """Per-segment L2 norms of the gradients, of the values and of the values' change since
    ``prev``, then ``prev = values``, and the gradient norms summed per layer: a gradient
    monitor's whole per-step measurement of an arena in one pass.

    Segment ``p`` is ``[offsets[p]:offsets[p + 1]]`` (one parameter). Shapes: grads, values and
    prev (M,), one dtype; offsets (P + 1,) int64; out (3, P) float64, rows: gradient norms,
    value norms, change norms (NaN without ``have_prev``). ``grads`` may be None (the gradient
    norms are known already, e.g. from the clipping pass): row 0 is then left as it is. Sums,
    and the change, in float64. Then each ``out[0, p] ** 2`` is added to
    ``layer_sq[layer_of[p]]`` (the squared norm of the layer owning parameter ``p``; not for
    a negative ``layer_of[p]``), in segment order: layer_of (P,) int64, layer_sq (L,) float64
    (accumulated into, so that several arenas' parameters can share a layer). Overwrites
    ``out`` and ``prev``.
    """
    for p in range(out.shape[1]):
        lo, hi = offsets[p], offsets[p + 1]
        v = values[lo:hi].astype(np.float64)
        if grads is not None:
            out[0, p] = np.sqrt(np.sum(np.square(grads[lo:hi].astype(np.float64))))
        out[1, p] = np.sqrt(np.sum(np.square(v)))
        out[2, p] = np.sqrt(np.sum(np.square(v - prev[lo:hi]))) if have_prev else np.nan
    np.copyto(prev, values)
    add_layer_squares(out[0], layer_of, layer_sq)


def add_layer_squares(norms, layer_of, layer_sq):
    """``layer_sq[layer_of[p]] += norms[p] ** 2`` for each ``p`` in order, skipping negative
    ``layer_of[p]``: :func:`monitor_norms`'s last step, which the backends whose kernel
    computes only the per-segment norms finish with (a few numbers per parameter)."""
    for norm, layer in zip(norms.tolist(), layer_of.tolist()):
        if layer >= 0:
            layer_sq[layer] += norm * norm


# ------------------------------------------------------------------------------- optimisers
def _sgd_example(rng, dtype, size):
    n = 1000 * size + 3
    return dict(param=rng.standard_normal(n).astype(dtype),
                grad=rng.standard_normal(n).astype(dtype),
                momentum_buffer=rng.standard_normal(n).astype(dtype), lr=0.1, momentum=0.9,
                dampening=0.1, weight_decay=0.01, nesterov=False, maximize=False,
                first_step=False)


@kernel(writes=("param", "momentum_buffer"), example=_sgd_example, bench_sizes=(100, 10_000),
        variants=({"momentum": {}, "first-step": dict(first_step=True),
                   "nesterov": dict(nesterov=True, dampening=0.0),
                   "no-momentum": dict(momentum=0.0, dampening=0.0, momentum_buffer=None)},
                  _MAXIMIZE_VARIANTS, _DECAY_VARIANTS))
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


# ---- adaptive optimisers ----
def _adaptive_example(rng, dtype, size, names, signed=()):
    """``param``, ``grad``, positive second-moment-like buffers ``names`` and buffers ``signed``
    of either sign (first moments), each of 1000 * size + 3 elements (the optimisers' example
    inputs)."""
    n = 1000 * size + 3
    args = dict(param=rng.standard_normal(n).astype(dtype),
                grad=rng.standard_normal(n).astype(dtype))
    for name in names:
        args[name] = rng.uniform(0.01, 2.0, n).astype(dtype)
    for name in signed:
        args[name] = rng.standard_normal(n).astype(dtype)
    return args


def _adam_moments(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay,
                  decoupled_weight_decay, maximize):
    """The start of an Adam or NAdam step, which the two share: the signed gradient with its L2
    term, or the decoupled decay of ``param`` (in place), then both moments updated in place.
    Returns the gradient :math:`g_t`."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    # m + (1 - beta1) (g - m): PyTorch's lerp, one update in place
    exp_avg += (1 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    return g


def _adam_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("exp_avg_sq", "max_exp_avg_sq"), ("exp_avg",))
    return dict(args, step=5, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                decoupled_weight_decay=False, maximize=False)


@kernel(writes=("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), example=_adam_example,
        bench_sizes=(100, 10_000),
        variants=({"amsgrad": {}, "adam": dict(max_exp_avg_sq=None)},
                  {"l2": {}, "decoupled": dict(decoupled_weight_decay=True),
                   "no-decay": dict(weight_decay=0.0)}, _MAXIMIZE_VARIANTS))
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
              weight_decay, decoupled_weight_decay, maximize):
    """One Adam (or AdamW, or AMSGrad) step, PyTorch's formulation, bias-corrected.

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1} \\;(\\text{L2; or, decoupled, }
        \\theta_{t-1} \\leftarrow (1 - \\gamma\\lambda)\\theta_{t-1}); \\quad
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t; \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g_t^2; \\\\
        \\hat v_t = \\max(\\hat v_{t-1}, v_t) \\text{ (AMSGrad) else } v_t; \\quad
        \\theta_t = \\theta_{t-1} - \\frac{\\gamma}{1 - \\beta_1^t}\\,
        \\frac{m_t}{\\sqrt{\\hat v_t} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    Shapes: param, grad, exp_avg, exp_avg_sq and max_exp_avg_sq (M,), one dtype;
    ``max_exp_avg_sq`` is None without AMSGrad. ``step`` is the step count ``t >= 1`` after
    this step (it sets the bias corrections). ``decoupled_weight_decay`` makes
    ``weight_decay`` AdamW's decay of the parameter instead of an L2 term in the gradient;
    ``maximize`` ascends. Overwrites ``param``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq``.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019; Reddi et al.,
    "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    _adam_moments(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay,
                  decoupled_weight_decay, maximize)
    second_moment = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq
    step_size = lr / (1 - beta1 ** step)
    denom = np.sqrt(second_moment) / (1 - beta2 ** step) ** 0.5 + eps
    param -= step_size * (exp_avg / denom)


def _rmsprop_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("square_avg",))
    n = args["param"].size
    # a centred second moment well above grad_avg ** 2 (the running averages keep it above;
    # near equality the float32 variance cancels and backends may differ in the last bits)
    args["grad_avg"] = (rng.uniform(-0.5, 0.5, n) * np.sqrt(args["square_avg"])).astype(dtype)
    args["momentum_buffer"] = rng.standard_normal(n).astype(dtype)
    return dict(args, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.01, momentum=0.9,
                maximize=False)


@kernel(writes=("param", "square_avg", "grad_avg", "momentum_buffer"), example=_rmsprop_example,
        bench_sizes=(100, 10_000),
        variants=({"centred-momentum": {}, "centred": dict(momentum=0.0, momentum_buffer=None),
                   "momentum": dict(grad_avg=None),
                   "plain": dict(grad_avg=None, momentum=0.0, momentum_buffer=None)},
                  _MAXIMIZE_VARIANTS, _DECAY_VARIANTS))
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                 weight_decay, momentum, maximize):
    """One RMSprop step, PyTorch's formulation (optionally centred, with momentum).

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1}; \\quad
        v_t = \\alpha v_{t-1} + (1 - \\alpha) g_t^2; \\quad
        \\bar g_t = \\alpha \\bar g_{t-1} + (1 - \\alpha) g_t \\text{ (centred)}; \\\\
        d_t = \\sqrt{v_t - \\bar g_t^2 \\text{ (centred) or } v_t} + \\epsilon; \\quad
        b_t = \\mu b_{t-1} + g_t / d_t; \\quad
        \\theta_t = \\theta_{t-1} - \\gamma\\, (b_t \\text{ if } \\mu > 0 \\text{ else }
        g_t / d_t)

    Shapes: param, grad, square_avg, grad_avg and momentum_buffer (M,), one dtype;
    ``grad_avg`` is None when not centred, ``momentum_buffer`` None when ``momentum == 0``.
    Overwrites ``param``, ``square_avg``, ``grad_avg`` and ``momentum_buffer``.

    References: Hinton, "Neural Networks for Machine Learning", lecture 6e, 2012; Graves,
    "Generating Sequences With Recurrent Neural Networks", 2013 (the centred form).
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if grad_avg is not None:
        grad_avg += (1 - alpha) * (g - grad_avg)
        # rounding can take the variance a hair below zero when every gradient was equal
        avg = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0))
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum_buffer is not None:
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * (g / avg)


def _adagrad_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("state_sum",))
    return dict(args, step=3, lr=0.01, lr_decay=0.01, weight_decay=0.01, eps=1e-10,
                maximize=False)


@kernel(writes=("param", "state_sum"), example=_adagrad_example, bench_sizes=(100, 10_000),
        variants=(_MAXIMIZE_VARIANTS, _DECAY_VARIANTS))
def adagrad_step(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step, PyTorch's formulation (with its learning-rate decay).

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1}; \\quad
        \\tilde\\gamma_t = \\frac{\\gamma}{1 + (t - 1)\\eta}; \\quad
        s_t = s_{t-1} + g_t^2; \\quad
        \\theta_t = \\theta_{t-1} - \\tilde\\gamma_t \\frac{g_t}{\\sqrt{s_t} + \\epsilon}

    Shapes: param, grad and state_sum (M,), one dtype. ``step`` is the step count ``t >= 1``
    after this step; ``lr_decay`` is :math:`\\eta`. Overwrites ``param`` and ``state_sum``.

    References: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    param -= clr * (g / (np.sqrt(state_sum) + eps))


def _adadelta_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("square_avg", "acc_delta"))
    return dict(args, lr=0.5, rho=0.9, eps=1e-6, weight_decay=0.01, maximize=False)


@kernel(writes=("param", "square_avg", "acc_delta"), example=_adadelta_example,
        bench_sizes=(100, 10_000), variants=(_MAXIMIZE_VARIANTS, _DECAY_VARIANTS))
def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step, PyTorch's formulation.

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1}; \\quad
        v_t = \\rho v_{t-1} + (1 - \\rho) g_t^2; \\quad
        \\Delta_t = \\frac{\\sqrt{u_{t-1} + \\epsilon}}{\\sqrt{v_t + \\epsilon}}\\, g_t; \\\\
        u_t = \\rho u_{t-1} + (1 - \\rho) \\Delta_t^2; \\quad
        \\theta_t = \\theta_{t-1} - \\gamma \\Delta_t

    Shapes: param, grad, square_avg (:math:`v`) and acc_delta (:math:`u`) (M,), one dtype.
    The update does not depend on the step count. Overwrites ``param``, ``square_avg`` and
    ``acc_delta``.

    References: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    param -= lr * delta


def _adamax_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("exp_inf",), ("exp_avg",))
    return dict(args, step=5, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                maximize=False)


@kernel(writes=("param", "exp_avg", "exp_inf"), example=_adamax_example,
        bench_sizes=(100, 10_000), variants=(_MAXIMIZE_VARIANTS, _DECAY_VARIANTS))
def adamax_step(param, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay,
                maximize):
    """One Adamax step (Adam with the infinity norm), PyTorch's formulation.

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1}; \\quad
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t; \\quad
        u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon); \\quad
        \\theta_t = \\theta_{t-1} - \\frac{\\gamma}{1 - \\beta_1^t} \\frac{m_t}{u_t}

    Shapes: param, grad, exp_avg and exp_inf (:math:`u`) (M,), one dtype. ``step`` is the
    step count ``t >= 1`` after this step. A NaN on either side of the maximum is kept.
    Overwrites ``param``, ``exp_avg`` and ``exp_inf``.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    section 7.
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    exp_avg += (1 - beta1) * (g - exp_avg)
    exp_inf *= beta2
    np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
    param -= lr / (1 - beta1 ** step) * (exp_avg / exp_inf)


def nadam_momentum(step, beta1, momentum_decay):
    """NAdam's momentum coefficient :math:`\\mu_t = \\beta_1 (1 - 0.96^{t\\psi} / 2)` at step
    ``t`` (Dozat's schedule, with PyTorch's ``momentum_decay`` :math:`\\psi`)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def _nadam_example(rng, dtype, size):
    args = _adaptive_example(rng, dtype, size, ("exp_avg_sq",), ("exp_avg",))
    mu_product = float(np.prod([nadam_momentum(t, 0.9, 4e-3) for t in range(1, 6)]))
    return dict(args, step=5, mu_product=mu_product, lr=2e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.01, momentum_decay=4e-3,
                decoupled_weight_decay=False, maximize=False)


@kernel(writes=("param", "exp_avg", "exp_avg_sq"), example=_nadam_example,
        bench_sizes=(100, 10_000),
        variants=({"l2": {}, "decoupled": dict(decoupled_weight_decay=True),
                   "no-decay": dict(weight_decay=0.0)}, _MAXIMIZE_VARIANTS))
def nadam_step(param, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps,
               weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step (Adam with Nesterov momentum), PyTorch's formulation.

    .. math::
        g_t = \\pm\\nabla + \\lambda\\theta_{t-1} \\;(\\text{L2; or, decoupled, }
        \\theta_{t-1} \\leftarrow (1 - \\gamma\\lambda)\\theta_{t-1}); \\quad
        \\mu_t = \\beta_1 (1 - \\tfrac12 0.96^{t\\psi}); \\\\
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1) g_t; \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g_t^2; \\quad
        d_t = \\sqrt{v_t / (1 - \\beta_2^t)} + \\epsilon; \\\\
        \\theta_t = \\theta_{t-1}
        - \\frac{\\gamma (1 - \\mu_t)}{1 - \\prod_{i \\le t} \\mu_i} \\frac{g_t}{d_t}
        - \\frac{\\gamma \\mu_{t+1}}{1 - \\prod_{i \\le t+1} \\mu_i} \\frac{m_t}{d_t}

    Shapes: param, grad, exp_avg and exp_avg_sq (M,), one dtype. ``step`` is the step count
    ``t >= 1`` after this step, ``mu_product`` the product :math:`\\prod_{i \\le t} \\mu_i`
    including this step's :math:`\\mu_t` (the optimiser keeps it per parameter, as PyTorch's
    state ``mu_product``); ``momentum_decay`` is :math:`\\psi`. ``decoupled_weight_decay``
    makes ``weight_decay`` a decay of the parameter (NAdamW) instead of an L2 term.
    Overwrites ``param``, ``exp_avg`` and ``exp_avg_sq``.

    References: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """
    mu = nadam_momentum(step, beta1, momentum_decay)
    mu_next = nadam_momentum(step + 1, beta1, momentum_decay)
    g = _adam_moments(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay,
                      decoupled_weight_decay, maximize)
    denom = np.sqrt(exp_avg_sq / (1 - beta2 ** step)) + eps
    param -= lr * (1 - mu) / (1 - mu_product) * (g / denom)
    param -= lr * mu_next / (1 - mu_product * mu_next) * (exp_avg / denom)


# ---- recurrent cells ----
def _lstm_cell_example(rng, dtype, size):
    n, hidden = size, size + 2
    gates = (2 * rng.standard_normal((n, 4 * hidden))).astype(dtype)
    c_prev = rng.standard_normal((n, hidden)).astype(dtype)
    return dict(gates=gates, c_prev=c_prev, gates_act=np.empty_like(gates),
                h=np.empty_like(c_prev), c=np.empty_like(c_prev))


@kernel(writes=("gates_act", "h", "c"), example=_lstm_cell_example, bench_sizes=(128, 1024))
def lstm_cell_fwd(gates, c_prev, gates_act, h, c):
    """The pointwise part of one LSTM step, fused: gate activations, cell update and output.

    ``gates`` holds the pre-activations of the four gates, in PyTorch's order i, f, g, o along
    the last axis: ``x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh``, all four from one matrix
    product per input, computed by the caller.

    .. math::
        i = \\sigma(z_i),\\; f = \\sigma(z_f),\\; g = \\tanh(z_g),\\; o = \\sigma(z_o); \\quad
        c = f \\odot c_{prev} + i \\odot g; \\quad h = o \\odot \\tanh(c)

    The sigmoid is computed from ``exp(-|z|)``, so no pre-activation overflows.

    Shapes: gates and gates_act (N, 4H); c_prev, h and c (N, H); one dtype, C-contiguous.
    Overwrites ``gates_act`` (the activated gates i, f, g, o, which :func:`lstm_cell_bwd`
    reads), ``h`` and ``c``.

    References: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997;
    Gers, Schmidhuber & Cummins, "Learning to forget", Neural Computation 2000.
    """
    hidden = c.shape[1]
    # one sigmoid pass over all four gates, then tanh over g's: fewer calls than per gate
    _sigmoid_into(gates, gates_act)
    np.tanh(gates[:, 2 * hidden:3 * hidden], out=gates_act[:, 2 * hidden:3 * hidden])
    i, f = gates_act[:, :hidden], gates_act[:, hidden:2 * hidden]
    g, o = gates_act[:, 2 * hidden:3 * hidden], gates_act[:, 3 * hidden:]
    np.multiply(f, c_prev, out=c)
    c += i * g
    np.tanh(c, out=h)
    h *= o


def _lstm_cell_bwd_example(rng, dtype, size):
    args = _lstm_cell_example(rng, dtype, size)
    lstm_cell_fwd(**args)
    c = args["c"]
    return dict(grad_h=rng.standard_normal(c.shape).astype(dtype),
                grad_c=rng.standard_normal(c.shape).astype(dtype), c_prev=args["c_prev"], c=c,
                gates_act=args["gates_act"], grad_gates=np.empty_like(args["gates_act"]),
                grad_c_prev=np.empty_like(c))


@kernel(writes=("grad_gates", "grad_c_prev"), example=_lstm_cell_bwd_example,
        bench_sizes=(128, 1024), tolerances={np.dtype(np.float32): (1e-4, 1e-5)},
        variants={"grad_c_prev": {}, "no-grad_c_prev": dict(grad_c_prev=None)})
def lstm_cell_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
    """Gradients of :func:`lstm_cell_fwd` with respect to the pre-activation gates and c_prev.

    ``grad_h`` is d(loss)/dh of this step (from its output and from the next step's gates);
    ``grad_c`` is d(loss)/dc arriving from the next step (zeros at the last step, unless the
    final cell state is used). With :math:`\\bar c = g_c + g_h \\odot o \\odot (1 - \\tanh^2 c)`:

    .. math::
        \\bar z_i = \\bar c \\odot g \\odot i (1 - i),\\;
        \\bar z_f = \\bar c \\odot c_{prev} \\odot f (1 - f),\\;
        \\bar z_g = \\bar c \\odot i \\odot (1 - g^2),\\;
        \\bar z_o = g_h \\odot \\tanh(c) \\odot o (1 - o); \\quad
        \\bar c_{prev} = \\bar c \\odot f

    Every derivative is taken from the forward's outputs (``gates_act`` and ``c``), so no
    pre-activation is kept. Shapes: grad_h, grad_c, c_prev, c and grad_c_prev (N, H);
    gates_act and grad_gates (N, 4H); one dtype, C-contiguous, no argument aliasing another.
    Overwrites ``grad_gates`` (in the order i, f, g, o) and ``grad_c_prev``, which may be None
    to skip it.
    """
    hidden = c.shape[1]
    i, f = gates_act[:, :hidden], gates_act[:, hidden:2 * hidden]
    g, o = gates_act[:, 2 * hidden:3 * hidden], gates_act[:, 3 * hidden:]
    tanh_c = np.tanh(c)
    grad_cell = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
    # each gate's activation derivative, from its output: s (1 - s), and 1 - g^2 for g
    np.multiply(gates_act, 1 - gates_act, out=grad_gates)
    derivative_g = grad_gates[:, 2 * hidden:3 * hidden]
    np.multiply(g, g, out=derivative_g)
    np.subtract(1, derivative_g, out=derivative_g)
    grad_gates[:, :hidden] *= grad_cell * g
    grad_gates[:, hidden:2 * hidden] *= grad_cell * c_prev
    grad_gates[:, 2 * hidden:3 * hidden] *= grad_cell * i
    grad_gates[:, 3 * hidden:] *= grad_h * tanh_c
    if grad_c_prev is not None:
        np.multiply(grad_cell, f, out=grad_c_prev)


# ---- batchnorm ----
def _batchnorm_example(rng, dtype, size, activation=_NONE):
    # x (N, C, S) = (size + 1, 8, 16): about 128 * size elements; a mean far from 0 on purpose
    x = (2 * rng.standard_normal((size + 1, 8, 16)) + 3).astype(dtype)
    channels = x.shape[1]
    return dict(x=x, weight=rng.uniform(0.5, 1.5, channels).astype(dtype),
                bias=rng.standard_normal(channels).astype(dtype), eps=1e-5,
                activation=activation, running_mean=rng.standard_normal(channels).astype(dtype),
                running_var=rng.uniform(0.5, 2, channels).astype(dtype), momentum=0.1,
                mean=np.empty(channels, np.float64), var=np.empty(channels, np.float64),
                invstd=np.empty(channels, np.float64), out=np.empty_like(x))


@kernel(writes=("running_mean", "running_var", "mean", "var", "invstd", "out"),
        example=_batchnorm_example, bench_sizes=(1_000, 50_000),
        variants=(_ACTIVATION_VARIANTS,
                  {"affine": {}, "no-affine": dict(weight=None, bias=None)},
                  {"running": {}, "no-running": dict(running_mean=None, running_var=None)}))
def batchnorm_fwd(x, weight, bias, eps, activation, running_mean, running_var, momentum, mean,
                  var, invstd, out):
    """Batch normalisation in training mode: per-channel batch statistics, the running ones
    updated with them, then normalise, then the activation with code ``activation``
    (:data:`ACTIVATIONS`) as :func:`linear_fwd`'s epilogue applies it (a BatchNorm followed by
    ReLU, Sigmoid or Tanh is one pass over the output instead of two, and one op instead of
    two). PyTorch's ``native_batch_norm`` also updates the running statistics itself: a small
    layer's update as NumPy calls cost it as much as the kernel.

    .. math::
        \\mu_c = \\frac{1}{M} \\sum_{n,s} x_{ncs}, \\quad
        \\sigma^2_c = \\frac{1}{M} \\sum_{n,s} (x_{ncs} - \\mu_c)^2, \\quad
        y_{ncs} = act\\left(\\gamma_c \\frac{x_{ncs} - \\mu_c}
            {\\sqrt{\\sigma^2_c + \\epsilon}} + \\beta_c\\right)

    with :math:`M = N S`. The variance is a second pass over the centred values: the one-pass
    E[x²] - E[x]² cancels catastrophically when |mean| >> std. The statistics are accumulated
    and stored in float64 whatever x's dtype, so the backward recentres x with exactly the mean
    the forward used, and the running variance is updated from ``var`` itself rather than
    recovered from ``invstd`` (which loses it when var << eps).

    With ``running_mean`` and ``running_var`` ((C,) of x's dtype, or both None to leave them),
    each becomes ``(1 - momentum) * running + momentum * batch`` (the variance unbiased,
    :math:`\\sigma^2_c M / (M - 1)`, so M >= 2), computed in float64 as written and rounded
    once: ``running * (1 - momentum) + (momentum [* M / (M - 1)]) * batch``.

    Shapes: x and out (N, C, S) of one floating dtype, C-contiguous, N * S >= 1; weight
    (gamma) and bias (beta) (C,) of x's dtype, or None for 1 and 0; mean, var (biased, divided
    by M) and invstd (:math:`1 / \\sqrt{\\sigma^2 + \\epsilon}`) (C,) float64. Overwrites
    ``mean``, ``var``, ``invstd``, ``out`` and the running statistics.

    References: Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training
    by Reducing Internal Covariate Shift", ICML 2015.
    """
    count = x.shape[0] * x.shape[2]
    centred = x.astype(np.float64)
    np.divide(centred.sum(axis=(0, 2)), count, out=mean)
    centred -= mean[:, None]
    np.divide(np.einsum("ncs,ncs->c", centred, centred), count, out=var)
    np.divide(1.0, np.sqrt(var + eps), out=invstd)
    centred *= (invstd if weight is None else invstd * weight)[:, None]
    if bias is not None:
        centred += bias[:, None]
    np.copyto(out, centred, casting="same_kind")
    _activate(out, activation)
    if running_mean is not None:
        update_running_stats(running_mean, running_var, mean, var, momentum, count)


def update_running_stats(running_mean, running_var, mean, var, momentum, count):
    """``running = (1 - momentum) * running + momentum * batch`` for the mean and the
    unbiased variance (``var * count / (count - 1)``), in float64 and rounded once into the
    running arrays: :func:`batchnorm_fwd`'s update, which the compiled backends repeat
    operation for operation (SyncBatchNorm applies it to its global statistics)."""
    for running, batch, factor in ((running_mean, mean, momentum),
                                   (running_var, var, momentum * (count / (count - 1)))):
        update = running.astype(np.float64)
        update *= 1 - momentum
        update += factor * batch
        running[...] = update


def _batchnorm_bwd_example(rng, dtype, size, activation=_NONE):
    args = _batchnorm_example(rng, dtype, size, activation)
    args.update(running_mean=None, running_var=None)
    batchnorm_fwd(**args)
    x, weight = args["x"], args["weight"]
    return dict(grad_out=rng.standard_normal(x.shape).astype(dtype), x=x, weight=weight,
                mean=args["mean"], invstd=args["invstd"], out=args["out"],
                activation=activation, grad_x=np.empty_like(x),
                grad_weight=np.empty_like(weight), grad_bias=np.empty_like(weight))


@kernel(writes=("grad_x", "grad_weight", "grad_bias"), example=_batchnorm_bwd_example,
        bench_sizes=(1_000, 50_000), tolerances={np.dtype(np.float32): (1e-4, 1e-5)},
        variants=(_ACTIVATION_VARIANTS, {
            "all": {}, "no-affine": dict(weight=None, grad_weight=None),
            "only-grad_x": dict(weight=None, grad_weight=None, grad_bias=None),
            "no-grad_x": dict(grad_x=None)}))
def batchnorm_bwd(grad_out, x, weight, mean, invstd, out, activation, grad_x, grad_weight,
                  grad_bias):
    """Gradients of :func:`batchnorm_fwd`: the activation's derivative, two per-channel
    reductions, then one elementwise pass.

    ``dy = grad_out * act'(out)`` as :func:`activation_bwd` computes it, from the forward's
    output ``out`` (only read when ``activation`` is not ``ACTIVATIONS["none"]``: it may be
    None then). With :math:`\\hat x = (x - \\mu) \\cdot invstd` and, per channel over (n, s),
    the two sums :math:`\\Sigma_1 = \\sum dy` and :math:`\\Sigma_2 = \\sum dy \\, \\hat x`:

    .. math::
        \\nabla\\beta = \\Sigma_1, \\quad \\nabla\\gamma = \\Sigma_2, \\quad
        \\nabla x = \\gamma \\cdot invstd \\left(dy - \\frac{\\Sigma_1}{M}
            - \\hat x \\frac{\\Sigma_2}{M}\\right)

    Shapes: grad_out, x, out and grad_x (N, C, S) of one dtype, C-contiguous; weight,
    grad_weight and grad_bias (C,) of x's dtype; mean and invstd (C,) float64, as
    :func:`batchnorm_fwd` wrote them. weight may be None (gamma = 1); grad_x, grad_weight and
    grad_bias may each be None to skip them. Overwrites ``grad_x``, ``grad_weight`` and
    ``grad_bias``.
    """
    count = x.shape[0] * x.shape[2]
    derivative = _activation_derivative(out, activation)
    if derivative is not None:  # rounded to x's dtype first, as activation_bwd's output is
        grad_out = grad_out * derivative
    dy = grad_out.astype(np.float64)
    x_hat = x.astype(np.float64)
    x_hat -= mean[:, None]
    x_hat *= invstd[:, None]
    sum_dy = dy.sum(axis=(0, 2))
    sum_dy_x_hat = np.einsum("ncs,ncs->c", dy, x_hat)
    if grad_bias is not None:
        np.copyto(grad_bias, sum_dy, casting="same_kind")
    if grad_weight is not None:
        np.copyto(grad_weight, sum_dy_x_hat, casting="same_kind")
    if grad_x is not None:
        x_hat *= (sum_dy_x_hat / count)[:, None]
        dy -= (sum_dy / count)[:, None]
        dy -= x_hat
        dy *= (invstd if weight is None else invstd * weight)[:, None]
        np.copyto(grad_x, dy, casting="same_kind")


# ---- gradient tools ----
def _clip_grad_norm_example(rng, dtype, size):
    measure = _segment_norms_example(rng, dtype, size)
    # the total norm is about sqrt(1000 * size) > max_norm: the example clips
    return dict(grads=measure["values"], offsets=measure["offsets"], max_norm=1.0,
                norm_type=2.0, error_if_nonfinite=False, per_param_out=measure["out"])


@kernel(writes=("grads", "per_param_out"), example=_clip_grad_norm_example,
        bench_sizes=(100, 10_000), tolerances={np.dtype(np.float32): (1e-6, 0.0)},
        variants=(_NORM_VARIANTS, {"clips": {}, "no-clip": dict(max_norm=1e6),
                                   "error-if-nonfinite": dict(error_if_nonfinite=True)}))
def clip_grad_norm(grads, offsets, max_norm, norm_type, error_if_nonfinite, per_param_out):
    """Clip a gradient arena by its total norm: every norm in one pass, then the scale in place
    only when it is needed.

    Measures as :func:`segment_norms` (``per_param_out[p]`` is the norm of segment ``p``, one
    parameter's gradient; the total is the norm of the whole arena), then multiplies ``grads``
    by the clip coefficient

    .. math::
        c = \\frac{\\text{max\\_norm}}{\\text{total} + 10^{-6}}

    (rounded to the gradients' dtype) when ``c < 1`` or ``c`` is NaN: PyTorch's
    ``grads * min(1, c)`` without the multiplication by 1. A non-finite total scales by 0 or NaN
    as in PyTorch, unless ``error_if_nonfinite`` is true: then ``grads`` are left untouched so
    the caller can raise. A segment holds a NaN or inf exactly when its norm is non-finite
    (barring overflow of the float64 power sums), so the caller reads the non-finite count off
    ``per_param_out``.

    Shapes: grads (M,) float; offsets (P + 1,) int64; per_param_out (P,) float64. Overwrites
    ``per_param_out`` and, when it clips, ``grads``. Returns the total norm before clipping (a
    Python float).

    References: Pascanu, Mikolov and Bengio, "On the difficulty of training recurrent neural
    networks", ICML 2013.
    """
    total = segment_norms(grads, offsets, norm_type, per_param_out)
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0 and not (error_if_nonfinite and not np.isfinite(total)):
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
            grads *= coef
    return total


def _clip_grad_range_example(rng, dtype, size):
    return dict(grads=rng.standard_normal(1000 * size + 1).astype(dtype), min_value=-0.5,
                max_value=0.25)


@kernel(writes=("grads",), example=_clip_grad_range_example, bench_sizes=(1000, 10_000))
def clip_grad_range(grads, min_value, max_value):
    """Clamp every gradient of a flat arena into ``[min_value, max_value]`` in place
    (``clip_grad_value_`` is the symmetric range). NaN stays NaN, as with ``torch.clamp``.

    Shapes: grads (M,) float; ``min_value <= max_value``, either may be infinite. Overwrites
    ``grads``.
    """
    np.clip(grads, min_value, max_value, out=grads)


def _scale_example(rng, dtype, size):
    return dict(values=rng.standard_normal(1000 * size + 1).astype(dtype), factor=0.25)


@kernel(writes=("values",), example=_scale_example, bench_sizes=(1000, 10_000))
def scale(values, factor):
    """``values *= factor`` in place, the factor rounded to the values' dtype: the mean of
    accumulated gradients, a clip by a norm measured over several arenas.

    Shapes: values (M,) float. Overwrites ``values``.
    """
    values *= factor


def _axpy_example(rng, dtype, size):
    n = 1000 * size + 1
    return dict(y=rng.standard_normal(n).astype(dtype), x=rng.standard_normal(n).astype(dtype),
                alpha=0.75)


@kernel(writes=("y",), example=_axpy_example, bench_sizes=(1000, 10_000))
def axpy(y, x, alpha):
    """``y += alpha * x`` in place (BLAS's axpy): a micro-batch's weighted gradient into an
    accumulator, scaled noise into the gradients.

    Shapes: y and x (M,), one float dtype. Overwrites ``y``.
    """
    y += alpha * x


def _grad_window_mean_example(rng, dtype, size):
    n = 1000 * size + 1
    return dict(total=rng.standard_normal(n).astype(dtype),
                grad=rng.standard_normal(n).astype(dtype), weight=3.0, factor=0.125)


@kernel(writes=("total", "grad"), example=_grad_window_mean_example, bench_sizes=(1000, 10_000))
def grad_window_mean(total, grad, weight, factor):
    """Close a weighted accumulation window in one pass: ``grad = factor * (total + weight *
    grad)``, then ``total = 0`` for the next window.

    With ``total`` the sum of ``n_i g_i`` over the earlier micro-batches, ``grad`` the last
    one's gradient, ``weight`` its sample count and ``factor = 1 / sum(n_i)``, ``grad``
    becomes the gradient of the mean loss over every sample of the window.

    Shapes: total and grad (M,), one float dtype. Overwrites both.
    """
    grad *= weight
    grad += total
    grad *= factor
    total.fill(0)


# ------------------------------------------------------------------- convolution and pooling
def conv_output_size(size, kernel, stride, padding, dilation, ceil_mode=False):
    """The number of window positions along one axis of a convolution or pooling, PyTorch's
    rule: ``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``; with
    ``ceil_mode`` (pooling) rounded up instead, less the last window when it would start in
    the right padding or past it. The Python layer sizes every output with it; the kernels
    read the sizes off their output arrays."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    return count - 1 if (count - 1) * stride >= size + padding else count


def _padded_extent(size, pad, count, kernel, stride, dilation):
    """The length of an axis padded by ``pad`` before it and enough after it for ``count``
    windows: ``pad`` when they fit, more when ceil_mode's last window runs past the padding."""
    reach = (count - 1) * stride + dilation * (kernel - 1) + 1
    return pad + size + max(pad, reach - size - pad)


def _windows(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out_h,
             out_w, fill=0.0):
    """Every window of ``x`` (N, C, H, W) as a read-only (N, C, OH, OW, KH, KW) view of a
    padded copy: ``[n, c, i, j, p, q]`` is ``x[n, c, i*stride_h - pad_h + p*dil_h,
    j*stride_w - pad_w + q*dil_w]``, and ``fill`` where that is outside the image."""
    n, c, h, w = x.shape
    padded = full((n, c, _padded_extent(h, pad_h, out_h, kernel_h, stride_h, dil_h),
                   _padded_extent(w, pad_w, out_w, kernel_w, stride_w, dil_w)), fill, x.dtype, x)
    padded[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    spans = (dil_h * (kernel_h - 1) + 1, dil_w * (kernel_w - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(padded, spans, axis=(2, 3))
    return view[:, :, :(out_h - 1) * stride_h + 1:stride_h, :(out_w - 1) * stride_w + 1:stride_w,
                ::dil_h, ::dil_w]


def _add_windows(taps, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, grad_x):
    """col2im, the adjoint of :func:`_windows`: ``grad_x`` (N, C, H, W) overwritten with the
    sum, over every window and tap, of ``taps`` (broadcast to (N, C, KH, KW, OH, OW)) added
    at the position the tap reads; positions in the padding are dropped."""
    n, c, h, w = grad_x.shape
    kernel_h, kernel_w, out_h, out_w = taps.shape[2:]
    padded = zeros((n, c, _padded_extent(h, pad_h, out_h, kernel_h, stride_h, dil_h),
                    _padded_extent(w, pad_w, out_w, kernel_w, stride_w, dil_w)), grad_x.dtype,
                   grad_x)
    for p in range(kernel_h):
        rows = slice(p * dil_h, p * dil_h + (out_h - 1) * stride_h + 1, stride_h)
        for q in range(kernel_w):
            cols = slice(q * dil_w, q * dil_w + (out_w - 1) * stride_w + 1, stride_w)
            padded[:, :, rows, cols] += taps[:, :, p, q]
    np.copyto(grad_x, padded[:, :, pad_h:pad_h + h, pad_w:pad_w + w])


def _im2col(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
            out_h, out_w):
    """The windows of ``x`` as (N, groups, C/groups * KH * KW, OH * OW) columns, rows in
    (channel, p, q) order: the layout of a weight reshaped to (groups, O/groups, C/groups *
    KH * KW), so one batched matrix product per group convolves."""
    n, c = x.shape[:2]
    windows = _windows(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                       out_h, out_w)
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(
        n, groups, c // groups * kernel_h * kernel_w, out_h * out_w)


#: The geometries the convolution kernels must get right, by label (1x1 and 3x3 and a
#: non-square kernel, strides 1 and 2, padding 0 and more, dilation 2, groups 2 and depthwise;
#: asymmetric in height and width where that is free): changes to :func:`_conv_example`'s.
_CONV_GEOMETRIES = {
    "3x3": {},
    "1x1": dict(kernel_h=1, kernel_w=1, pad_h=0, pad_w=0),
    "1x1-stride2": dict(kernel_h=1, kernel_w=1, pad_h=0, pad_w=0, stride_h=2, stride_w=2),
    "3x3-stride2": dict(stride_h=2, stride_w=2),
    "2x3-stride2x1-pad0x2": dict(kernel_h=2, kernel_w=3, stride_h=2, pad_h=0, pad_w=2),
    "3x3-dilation2-pad2x1": dict(dil_h=2, dil_w=2, pad_h=2),
    "groups2": dict(groups=2),
    "depthwise": dict(groups=4),
    "depthwise-stride2": dict(groups=4, stride_h=2, stride_w=2),
}
_CONV_VARIANTS = {label: dict(geometry=label) for label in _CONV_GEOMETRIES}


def _conv_example(rng, dtype, size, geometry="3x3"):
    """x (size, 4, size + 5, size + 4), 8 output channels, weights scaled as layers are
    initialised; a 3x3 kernel, stride 1, padding 1, unless ``geometry`` (a label of
    :data:`_CONV_GEOMETRIES`) changes them (4 channels take groups 1, 2 and 4, depthwise)."""
    return _conv_arguments(rng, dtype, size, **_CONV_GEOMETRIES[geometry])


def _conv_arguments(rng, dtype, size, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1, pad_h=1,
                    pad_w=1, dil_h=1, dil_w=1, groups=1):
    n, channels, out_channels = size, 4, 8
    h, w = size + 5, size + 4
    x = rng.standard_normal((n, channels, h, w)).astype(dtype)
    fan_in = channels // groups * kernel_h * kernel_w
    weight = (rng.standard_normal((out_channels, channels // groups, kernel_h, kernel_w))
              / np.sqrt(fan_in)).astype(dtype)
    out = np.empty((n, out_channels, conv_output_size(h, kernel_h, stride_h, pad_h, dil_h),
                    conv_output_size(w, kernel_w, stride_w, pad_w, dil_w)), dtype)
    return dict(x=x, weight=weight, bias=rng.standard_normal(out_channels).astype(dtype),
                stride_h=stride_h, stride_w=stride_w, pad_h=pad_h, pad_w=pad_w, dil_h=dil_h,
                dil_w=dil_w, groups=groups, out=out)


@kernel(writes=("out",), example=_conv_example, sizes=(1, 3), bench_sizes=(16, 64),
        tolerances=_PRODUCT_TOLERANCES,
        variants=(_CONV_VARIANTS, {"bias": {}, "no-bias": dict(bias=None)}))
def conv2d_fwd(x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, out):
    """2-D cross-correlation (a convolution layer's forward), with zero padding and groups:

    .. math::
        out_{n,o,i,j} = b_o + \\sum_{c \\in g(o)} \\sum_{p,q} w_{o,c',p,q} \\,
            x_{n,c,\\,i s_h - p_h + p d_h,\\,j s_w - p_w + q d_w}

    over the C/groups input channels of output channel o's group (c' counts them from 0), x
    taken as 0 outside the image. Here im2col and one batched product per group.

    Shapes: x (N, C, H, W); weight (O, C/groups, KH, KW); bias (O,) or None; out (N, O, OH,
    OW), its size as :func:`conv_output_size` gives it; one dtype, C-contiguous. Overwrites
    ``out``.
    """
    n, out_channels, out_h, out_w = out.shape
    kernel_h, kernel_w = weight.shape[2:]
    cols = _im2col(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                   out_h, out_w)
    np.matmul(weight.reshape(groups, out_channels // groups, cols.shape[2]), cols,
              out=out.reshape(n, groups, out_channels // groups, out_h * out_w))
    if bias is not None:
        out += bias[:, None, None]


def _conv_bwd_input_example(rng, dtype, size, geometry="3x3"):
    args = _conv_example(rng, dtype, size, geometry)
    out, x = args.pop("out"), args.pop("x")
    del args["bias"]
    return dict(args, grad_out=rng.standard_normal(out.shape).astype(dtype),
                grad_x=np.empty_like(x))


@kernel(writes=("grad_x",), example=_conv_bwd_input_example, sizes=(1, 3), bench_sizes=(16, 64),
        tolerances=_PRODUCT_TOLERANCES, variants=_CONV_VARIANTS)
def conv2d_bwd_input(grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     grad_x):
    """The gradient of :func:`conv2d_fwd` with respect to x (also the forward of a transposed
    convolution): every output gradient spread back over the inputs its window read,
    weighted by the weights (a product per group, then col2im). Positions no window reads
    get 0.

    Shapes: grad_out (N, O, OH, OW); weight (O, C/groups, KH, KW); grad_x (N, C, H, W), H and
    W read off it; one dtype, C-contiguous. Overwrites ``grad_x``.
    """
    n, out_channels, out_h, out_w = grad_out.shape
    channels = grad_x.shape[1]
    kernel_h, kernel_w = weight.shape[2:]
    weight = weight.reshape(groups, out_channels // groups, -1)
    cols = np.matmul(weight.transpose(0, 2, 1),
                     grad_out.reshape(n, groups, out_channels // groups, out_h * out_w))
    _add_windows(cols.reshape(n, channels, kernel_h, kernel_w, out_h, out_w), stride_h,
                 stride_w, pad_h, pad_w, dil_h, dil_w, grad_x)


def _conv_bwd_weight_example(rng, dtype, size, geometry="3x3"):
    args = _conv_example(rng, dtype, size, geometry)
    out, weight, bias = args.pop("out"), args.pop("weight"), args.pop("bias")
    return dict(args, grad_out=rng.standard_normal(out.shape).astype(dtype),
                grad_weight=np.empty_like(weight), grad_bias=np.empty_like(bias))


#: A weight gradient sums over every item and position (6,720 terms at bench size 16): in
#: float32 the reference and a compiled product each err by up to ~6e-5 against float64 there
#: (measured), so two float32 results may differ by about twice that.
_LONG_SUM_TOLERANCES = {np.dtype(np.float32): (1e-4, 2e-4)}


@kernel(writes=("grad_weight", "grad_bias"), example=_conv_bwd_weight_example, sizes=(1, 3),
        bench_sizes=(16, 64), tolerances=_LONG_SUM_TOLERANCES,
        variants=(_CONV_VARIANTS, {"bias": {}, "no-bias": dict(grad_bias=None)}))
def conv2d_bwd_weight(grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                      grad_weight, grad_bias):
    """The gradients of :func:`conv2d_fwd` with respect to the weight and the bias: each
    output gradient times the window it came from, summed over the batch and the positions
    (im2col, a product per group and batch item, then the sum over the batch).

    Shapes: grad_out (N, O, OH, OW); x (N, C, H, W); grad_weight (O, C/groups, KH, KW), the
    kernel size read off it; grad_bias (O,) or None; one dtype, C-contiguous. Overwrites
    ``grad_weight`` and ``grad_bias`` (``grad_out`` summed over N, OH and OW).
    """
    n, out_channels, out_h, out_w = grad_out.shape
    kernel_h, kernel_w = grad_weight.shape[2:]
    cols = _im2col(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                   out_h, out_w)
    grad = grad_out.reshape(n, groups, out_channels // groups, out_h * out_w)
    np.copyto(grad_weight, np.matmul(grad, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(
        grad_weight.shape))
    if grad_bias is not None:
        np.sum(grad_out, axis=(0, 2, 3), out=grad_bias)


#: The geometries of the pooling kernels, by label: the common 2x2 window of stride 2,
#: ResNet's 3x3 of stride 2 with padding 1, a non-square window of stride 1 (overlapping,
#: dilated for max pooling) and ceil_mode's last window clipped at the padded edge; changes to
#: :func:`_pool_arguments`'s. Then the average's divisors.
_MAX_POOL_GEOMETRIES = {
    "2x2-stride2": {},
    "2x2-stride2-ceil": dict(ceil_mode=True),   # odd widths: the last window half outside
    "3x3-stride2-pad1": dict(kernel_h=3, kernel_w=3, pad_h=1, pad_w=1),
    "3x2-stride1-pad1-dilation2": dict(kernel_h=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1,
                                       dil_h=2, dil_w=2),
    "3x3-stride2-pad1-ceil": dict(kernel_h=3, kernel_w=3, pad_h=1, pad_w=1, ceil_mode=True),
}
_AVG_POOL_GEOMETRIES = {
    "2x2-stride2": {},
    "3x3-stride2-pad1": dict(kernel_h=3, kernel_w=3, pad_h=1, pad_w=1),
    "3x2-stride1-pad1": dict(kernel_h=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1),
    "3x3-stride2-pad1-ceil": dict(kernel_h=3, kernel_w=3, pad_h=1, pad_w=1, ceil_mode=True),
}
_MAX_POOL_VARIANTS = {label: dict(geometry=label) for label in _MAX_POOL_GEOMETRIES}
_AVG_POOL_VARIANTS = {label: dict(geometry=label) for label in _AVG_POOL_GEOMETRIES}
_AVG_POOL_DIVISORS = {"include-pad": {}, "exclude-pad": dict(count_include_pad=False),
                      "divisor-override": dict(divisor_override=3)}


def _pool_arguments(rng, dtype, size, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2, pad_h=0,
                    pad_w=0, dil_h=1, dil_w=1, ceil_mode=False):
    """x (size, 4, size + 5, size + 4) of small integers (ties in most windows), and the
    geometry with its output size."""
    h, w = size + 5, size + 4
    x = rng.integers(-4, 5, (size, 4, h, w)).astype(dtype)
    out_shape = x.shape[:2] + (
        conv_output_size(h, kernel_h, stride_h, pad_h, dil_h, ceil_mode),
        conv_output_size(w, kernel_w, stride_w, pad_w, dil_w, ceil_mode))
    return dict(x=x, kernel_h=kernel_h, kernel_w=kernel_w, stride_h=stride_h,
                stride_w=stride_w, pad_h=pad_h, pad_w=pad_w, dil_h=dil_h, dil_w=dil_w,
                out=np.empty(out_shape, dtype))


def _max_pool_example(rng, dtype, size, geometry="2x2-stride2"):
    args = _pool_arguments(rng, dtype, size, **_MAX_POOL_GEOMETRIES[geometry])
    return dict(args, indices=np.empty(args["out"].shape, np.int64))


@kernel(writes=("out", "indices"), example=_max_pool_example, sizes=(1, 3),
        bench_sizes=(16, 64), variants=_MAX_POOL_VARIANTS)
def max_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
                   indices):
    """Max pooling over (dilated) windows, with the position of each maximum, PyTorch's:

    ``out[n, c, i, j]`` is the maximum of the window's elements inside the image (padding is
    -inf, never picked unless every element is -inf) and ``indices[n, c, i, j]`` its flat
    position ``h * W + w`` in the (H, W) plane. Ties go to the first in the window's
    row-major scan; a NaN is the maximum, and of several NaNs the last in the scan (PyTorch's
    ``val > max || isnan(val)``); a window of -inf gives -inf at its first element inside.

    Shapes: x (N, C, H, W); out (N, C, OH, OW) of x's dtype, sized by
    :func:`conv_output_size` (ceil_mode's last window clipped at the padded edge); indices
    (N, C, OH, OW) int64. Overwrites ``out`` and ``indices``.
    """
    n, c, out_h, out_w = out.shape
    h, w = x.shape[2:]
    taps = kernel_h * kernel_w
    windows = _windows(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                       out_h, out_w, fill=-np.inf).reshape(n, c, out_h, out_w, taps)
    # each tap's row and column in the image, per output position: (OH, KH) and (OW, KW)
    rows = np.arange(out_h)[:, None] * stride_h - pad_h + np.arange(kernel_h) * dil_h
    cols = np.arange(out_w)[:, None] * stride_w - pad_w + np.arange(kernel_w) * dil_w
    inside = (((rows >= 0) & (rows < h))[:, None, :, None]
              & ((cols >= 0) & (cols < w))[None, :, None, :]).reshape(out_h, out_w, taps)
    flat = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(out_h, out_w, taps)
    # the two (OH, OW, KH * KW) tables above are made on the host: to the windows' device
    inside, flat = (to_device_of(table, out) for table in (inside, flat))
    nan = np.isnan(windows)
    pick = np.where(nan.any(axis=-1), taps - 1 - np.argmax(nan[..., ::-1], axis=-1),
                    np.argmax(windows, axis=-1))
    best = np.take_along_axis(windows, pick[..., None], axis=-1)[..., 0]
    pick = np.where(best == -np.inf, np.argmax(inside, axis=-1), pick)
    np.copyto(out, np.take_along_axis(windows, pick[..., None], axis=-1)[..., 0])
    np.copyto(indices, np.take_along_axis(np.broadcast_to(flat, windows.shape),
                                          pick[..., None], axis=-1)[..., 0])


def _max_pool_bwd_example(rng, dtype, size, geometry="2x2-stride2"):
    args = _max_pool_example(rng, dtype, size, geometry)
    max_pool2d_fwd(**args)
    return dict(grad_out=rng.standard_normal(args["out"].shape).astype(dtype),
                indices=args["indices"], grad_x=np.empty_like(args["x"]))


@kernel(writes=("grad_x",), example=_max_pool_bwd_example, sizes=(1, 3), bench_sizes=(16, 64),
        variants=_MAX_POOL_VARIANTS)
def max_pool2d_bwd(grad_out, indices, grad_x):
    """The gradient of :func:`max_pool2d_fwd`: each output gradient added at its maximum's
    position, zeros elsewhere (overlapping windows that pick one element sum there).

    Shapes: grad_out (N, C, OH, OW); indices (N, C, OH, OW) int64 as :func:`max_pool2d_fwd`
    wrote them; grad_x (N, C, H, W) of grad_out's dtype, C-contiguous. Overwrites ``grad_x``.
    """
    n, c, h, w = grad_x.shape
    planes = grad_x.reshape(n * c, h * w)
    planes.fill(0)
    positions = indices.shape[2] * indices.shape[3]
    np.add.at(planes, (np.arange(n * c)[:, None], indices.reshape(n * c, positions)),
              grad_out.reshape(n * c, positions))


def _avg_pool_divisors(h, w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                       pad_w, count_include_pad, divisor_override):
    """The (OH, OW) divisors of average pooling, PyTorch's rule: ``divisor_override`` when
    non-zero; else the window's size clipped to the padded input (ceil_mode's last windows
    count only up to its edge) with ``count_include_pad``; else its elements in the image."""
    if divisor_override:
        return np.full((out_h, out_w), divisor_override)

    def lengths(size, count, kernel, stride, pad):
        start = np.arange(count) * stride - pad
        end = np.minimum(start + kernel, size + pad)
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)
    return np.outer(lengths(h, out_h, kernel_h, stride_h, pad_h),
                    lengths(w, out_w, kernel_w, stride_w, pad_w))


def _avg_pool_example(rng, dtype, size, geometry="2x2-stride2"):
    args = _pool_arguments(rng, dtype, size, **_AVG_POOL_GEOMETRIES[geometry])
    del args["dil_h"], args["dil_w"]
    # off the integers: sums that round, so a different order of summation shows
    args["x"] += rng.uniform(-0.5, 0.5, args["x"].shape).astype(dtype)
    return dict(args, count_include_pad=True, divisor_override=0)


@kernel(writes=("out",), example=_avg_pool_example, sizes=(1, 3), bench_sizes=(16, 64),
        variants=(_AVG_POOL_VARIANTS, _AVG_POOL_DIVISORS))
def avg_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                   divisor_override, out):
    """Average pooling: each window's sum (zero padding) over its divisor, PyTorch's rule
    (see :func:`_avg_pool_divisors`; ``divisor_override`` 0 means none).

    Shapes: x (N, C, H, W); out (N, C, OH, OW), sized by :func:`conv_output_size` (ceil_mode's
    last window clipped at the padded edge); one dtype, C-contiguous. Overwrites ``out``.
    """
    out_h, out_w = out.shape[2:]
    windows = _windows(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, 1, 1, out_h,
                       out_w)
    divisors = _avg_pool_divisors(*x.shape[2:], out_h, out_w, kernel_h, kernel_w, stride_h,
                                  stride_w, pad_h, pad_w, count_include_pad, divisor_override)
    divisors = to_device_of(divisors, out)  # a (OH, OW) table, made on the host
    np.divide(windows.sum(axis=(4, 5)), divisors, out=out, casting="same_kind")


def _avg_pool_bwd_example(rng, dtype, size, geometry="2x2-stride2"):
    args = _avg_pool_example(rng, dtype, size, geometry)
    out, x = args.pop("out"), args.pop("x")
    return dict(args, grad_out=rng.standard_normal(out.shape).astype(dtype),
                grad_x=np.empty_like(x))


@kernel(writes=("grad_x",), example=_avg_pool_bwd_example, sizes=(1, 3), bench_sizes=(16, 64),
        variants=(_AVG_POOL_VARIANTS, _AVG_POOL_DIVISORS))
def avg_pool2d_bwd(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                   count_include_pad, divisor_override, grad_x):
    """The gradient of :func:`avg_pool2d_fwd`: each output gradient over its window's
    divisor, added at every element of the window inside the image.

    Shapes: grad_out (N, C, OH, OW); grad_x (N, C, H, W); one dtype, C-contiguous; the
    arguments as :func:`avg_pool2d_fwd` took them. Overwrites ``grad_x``.
    """
    out_h, out_w = grad_out.shape[2:]
    divisors = _avg_pool_divisors(*grad_x.shape[2:], out_h, out_w, kernel_h, kernel_w,
                                  stride_h, stride_w, pad_h, pad_w, count_include_pad,
                                  divisor_override)
    divisors = to_device_of(divisors, grad_x)  # a (OH, OW) table, made on the host
    share = (grad_out / divisors).astype(grad_x.dtype, copy=False)
    _add_windows(np.broadcast_to(share[:, :, None, None], share.shape[:2] + (
        kernel_h, kernel_w) + share.shape[2:]), stride_h, stride_w, pad_h, pad_w, 1, 1, grad_x)
