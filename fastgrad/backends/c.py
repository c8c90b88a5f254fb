"""The C backend: the registry's kernels in portable C (csrc/), compiled with cffi at install.

Same names, signatures and outputs as the reference (:mod:`fastgrad.backends.numpy_ref`); no
JIT, so nothing is compiled at run time, and importing it costs cffi and one shared library,
not Numba. Matrix products (:func:`gemm`, and those inside :func:`linear_fwd` and
:func:`linear_bwd`) run on the C kernels' own OpenMP threads, cut into blocks fixed by the
shapes, each block one single-threaded call of the BLAS NumPy loaded (one pool, see
:mod:`fastgrad.backends.blas`); the linear layer's bias and activation run on each block right
after its product. Convolutions run the same way: each batch item's columns (im2col) and one
single-threaded BLAS product per group, the items in parallel on these threads (direct loops
for depthwise convolutions); pooling is direct loops over the planes. The C kernels
fuse what surrounds the products (bias, activation,
derivative, bias gradient) and everything memory-bound (norms, clipping, optimiser steps,
batchnorm, the LSTM cell, cross-entropy), in one pass each. Reductions sum fixed pieces in
double and combine them in order, and the products' blocks depend on the shapes only: results
do not depend on the thread count.

Arrays are passed as pointers with no copy (``ffi.from_buffer``) when they are C-contiguous
float32 or float64 of one dtype and of the shapes the kernel expects; any other call (float16,
a strided view, shapes the C code does not take) runs the reference kernel, counted in
:data:`FALLBACKS`, so the C code never sees a size it could overrun. The C functions also
check what they can (segment offsets, class targets, activation codes) and report it; the
wrappers raise the reference's exceptions, and a ValueError for an activation code the C
kernels do not implement.

Threads: kernels from their size threshold (:data:`PARALLEL_MIN`) run under OpenMP with the
count set by :func:`set_num_threads` (``omp_set_num_threads``; by default ``OMP_NUM_THREADS``
or the number of CPUs), which ``fastgrad.set_num_threads`` calls through the registry. The
thresholds are csrc/fastgrad.h's ``FG_PAR_*``, read from the compiled module: the kernel-alone
crossovers when the products run on these threads, much higher ones (``FG_PAR_*_SPINNING``)
when no usable BLAS was found and the products are NumPy's, whose BLAS threads keep spinning
after each call and stall a parallel region that follows.

Raises ImportError on import when the compiled module is missing (no C compiler at install,
or a failed build) or was built from another version of ``csrc/fastgrad.h``; the backend
registry shows that reason in :func:`fastgrad.backends.describe`.
"""
import numpy as np

from ..device import arrays_among
from . import blas
from . import numpy_ref as _reference
from .numpy_ref import ACTIVATIONS, add_layer_squares
from .spec import Fallbacks, raise_bad_target

try:
    from ._ckernels import ffi as _ffi, lib as _lib
except ImportError as error:
    raise ImportError(
        f"the compiled C kernels (fastgrad.backends._ckernels) are not installed: the C build "
        f"failed or was skipped when fastgrad was installed (no C compiler?); reinstall with "
        f"a C compiler, e.g. `pip install -e .` ({error})") from error

#: The version of csrc/fastgrad.h these wrappers are written for (its FG_ABI_VERSION).
ABI_VERSION = 7

if _lib.fg_abi_version() != ABI_VERSION:
    raise ImportError(f"the compiled C kernels implement ABI version {_lib.fg_abi_version()}, "
                      f"these wrappers ABI version {ABI_VERSION}: a stale build; rebuild "
                      f"with `pip install -e .`")

__all__ = ["gemm", "gemm_pack", "gemm_packed", "activation_fwd", "activation_bwd", "linear_fwd",
           "linear_bwd",
           "cross_entropy_fwd", "cross_entropy_bwd", "fill", "segment_norms", "monitor_norms",
           "clip_grad_norm", "clip_grad_range", "scale", "axpy", "grad_window_mean", "sgd_step",
           "adam_step", "rmsprop_step", "adagrad_step", "adadelta_step", "adamax_step",
           "nadam_step", "batchnorm_fwd", "batchnorm_bwd", "lstm_cell_fwd", "lstm_cell_bwd",
           "conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight", "max_pool2d_fwd",
           "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd"]

#: True when the kernels were compiled with OpenMP (False: they all run serially).
OPENMP = bool(_lib.fg_openmp())

_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
_CTYPES = {_F32: "float[]", _F64: "double[]", _I64: "int64_t[]"}
_SUFFIX = {_F32: "f32", _F64: "f64"}
_C_NAMES = ("fill", "scale", "clip_grad_range", "axpy", "grad_window_mean", "segment_norms",
            "monitor_norms", "clip_grad_norm", "sgd_step", "adam_step", "rmsprop_step",
            "adagrad_step", "adadelta_step", "adamax_step", "nadam_step", "gemm",
            "gemm_pack", "gemm_packed", "activation_fwd", "activation_bwd", "linear_fwd",
            "linear_epilogue", "linear_grad",
            "cross_entropy_fwd", "cross_entropy_bwd", "batchnorm_fwd", "batchnorm_bwd",
            "lstm_cell_fwd", "lstm_cell_bwd", "conv2d_fwd", "conv2d_bwd_input",
            "conv2d_bwd_weight", "max_pool2d_fwd", "max_pool2d_bwd", "avg_pool2d_fwd",
            "avg_pool2d_bwd")
#: The C function of each kernel, by dtype and name: ``_C[dtype][name]``.
_C = {dtype: {name: getattr(_lib, f"fg_{name}_{suffix}") for name in _C_NAMES}
      for dtype, suffix in _SUFFIX.items()}
_NULL = _ffi.NULL
_ERR_OFFSETS, _ERR_MEMORY, _ERR_BLAS, _ERR_ACTIVATION, _ERR_GEOMETRY = -1, -2, -3, -4, -5
_INT64 = (-(1 << 63), (1 << 63) - 1)

#: The BLAS the products call (its addresses from :mod:`~fastgrad.backends.blas`), or None
#: when none is usable: the products are then NumPy's.
_BLAS = (_ffi.new("fg_blas *", dict(zip(("sgemm", "dgemm", "get_threads", "set_threads",
                                          "int_bits"), blas.PRODUCTS[:5])))
         if blas.AVAILABLE else None)
#: The largest size a product may have on each side for the BLAS's integers.
_BLAS_SIZE_MAX = (1 << (blas.PRODUCTS[4] - 1)) - 1 if blas.AVAILABLE else 0

#: Size (elements of a kernel's largest array) from which each kernel runs in parallel, by
#: kernel group: csrc/fastgrad.h's FG_PAR_<group>, or FG_PAR_<group>_SPINNING when the
#: products are NumPy's (no usable BLAS).
PARALLEL_MIN = {
    group: getattr(_lib, f"FG_PAR_{group.upper()}" + ("" if blas.AVAILABLE else "_SPINNING"))
    for group in ("activation", "activation_exp", "linear_grad", "cross_entropy", "batchnorm",
                  "lstm", "fill", "norms", "scale", "clip", "axpy", "window", "sgd", "adam",
                  "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "pool")}


def set_num_threads(n):
    """Use ``n`` OpenMP threads for the C kernels large enough to run in parallel (for the
    calling Python thread, as ``omp_set_num_threads``)."""
    _lib.fg_set_num_threads(int(n))


def get_num_threads():
    """The number of threads a parallel C kernel uses (1 without OpenMP)."""
    return _lib.fg_get_num_threads()


#: This backend's calls that ran the reference kernel instead of the C code.
FALLBACKS = Fallbacks()


def _fallback(name, *args, reason=None):
    """Run the reference kernel ``name`` on ``args`` (arguments the C code does not take),
    counted in :data:`FALLBACKS`; arrays of another device than the CPU go to that device's
    kernels (:class:`fastgrad.device.DeviceArrays`)."""
    device = arrays_among(args)
    if device is not None:  # arrays of another device: its kernels, not a fallback
        return getattr(device.kernels or _reference, name)(*args)
    FALLBACKS.record(name, args, reason)
    return getattr(_reference, name)(*args)


def _native(dtype, *arrays):
    """The C functions for ``dtype`` when it is float32 or float64 and every array (None
    skipped) is C-contiguous of that dtype; else None."""
    table = _C.get(dtype)
    if table is None:
        return None
    for a in arrays:  # a loop, not all(...): this runs on every call
        if a is not None and (type(a) is not np.ndarray or a.dtype != dtype
                              or not a.flags.c_contiguous):
            return None
    return table


def _contiguous(dtype, *arrays):
    """True when every array is C-contiguous of ``dtype`` (int64 offsets, float64 stats)."""
    for a in arrays:
        if a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return True


def _in(a):
    """A pointer to ``a``'s data for reading (no copy)."""
    return _ffi.from_buffer(_CTYPES[a.dtype], a)


def _out(a):
    """A pointer to ``a``'s data for writing: a read-only array raises ValueError."""
    return _ffi.from_buffer(_CTYPES[a.dtype], a, require_writable=True)


def _opt(a):
    """:func:`_out` of ``a``, or NULL for None."""
    return _NULL if a is None else _out(a)


def _check(status, values, offsets):
    if status == _ERR_OFFSETS:
        raise ValueError(f"offsets must be non-decreasing within [0, {values.size}] (the "
                         f"arena's size), got {offsets.tolist()[:8]}...")
    if status == _ERR_MEMORY:
        raise MemoryError("the C kernel could not allocate its work buffer")


def _check_blas(status):
    if status == _ERR_BLAS:  # the wrappers check sizes first: this is a bug, not bad input
        raise RuntimeError(f"the C product rejected NumPy's BLAS ({blas.INT_BITS}-bit "
                           f"integers, gemm at {blas.SGEMM:#x} and {blas.DGEMM:#x})")


def _check_activation(status, activation):
    """Raise for a C kernel's status: an activation code it does not implement (nothing was
    written), or a work buffer it could not allocate."""
    if status == _ERR_ACTIVATION:
        raise ValueError(f"activation code {activation} is not implemented by the c backend "
                         f"(a code of fastgrad.backends.ACTIVATIONS missing from "
                         f"csrc/layers.inc)")
    if status == _ERR_MEMORY:
        raise MemoryError("the C kernel could not allocate its work buffer")


# ------------------------------------------------------------------------------------ arenas
def fill(buffer, value):
    """Set every element of ``buffer`` to ``value``: see
    :func:`fastgrad.backends.numpy_ref.fill`."""
    c = _native(buffer.dtype, buffer)
    if c is None:
        return _fallback("fill", buffer, value)
    c["fill"](_out(buffer), buffer.size, value, PARALLEL_MIN["fill"])


def _segments_native(values, offsets, out):
    return (_native(values.dtype, values) if offsets.ndim == 1 and offsets.size >= 1
            and out.ndim == 1 and out.size == offsets.size - 1 and _contiguous(_I64, offsets)
            and _contiguous(_F64, out) else None)


def segment_norms(values, offsets, norm_type, out):
    """Per-segment norms of a flat arena and its total norm: see
    :func:`fastgrad.backends.numpy_ref.segment_norms`. One pass (parallel above its
    threshold); sums in double over fixed pieces combined in order."""
    c = _segments_native(values, offsets, out)
    if c is None:
        return _fallback("segment_norms", values, offsets, norm_type, out)
    total = _ffi.new("double *")
    _check(c["segment_norms"](_in(values), values.size, _in(offsets), out.size,
                              float(norm_type), _out(out), total, PARALLEL_MIN["norms"]),
           values, offsets)
    return total[0]


def monitor_norms(grads, values, prev, offsets, have_prev, out, layer_of, layer_sq):
    """Per-segment L2 norms of the gradients, the values and the values' change, then
    ``prev = values``, in one pass, and the squared gradient norms per layer: see
    :func:`fastgrad.backends.numpy_ref.monitor_norms`. Sums in double over fixed pieces
    combined in order; the per-layer sums (a few numbers per parameter) as the reference's."""
    segments = offsets.size - 1
    c = _native(values.dtype, grads, values, prev)
    if (c is None or offsets.ndim != 1 or segments < 0 or out.shape != (3, segments)
            or not _same_size(values.size, grads, prev) or not _contiguous(_I64, offsets)
            or not _contiguous(_F64, out)):
        return _fallback("monitor_norms", grads, values, prev, offsets, have_prev, out,
                         layer_of, layer_sq)
    _check(c["monitor_norms"](_NULL if grads is None else _in(grads), _in(values), _out(prev),
                              values.size, _in(offsets), segments, bool(have_prev), _out(out),
                              PARALLEL_MIN["norms"]), values, offsets)
    add_layer_squares(out[0], layer_of, layer_sq)


def clip_grad_norm(grads, offsets, max_norm, norm_type, error_if_nonfinite, per_param_out):
    """Clip a gradient arena by its total norm: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_norm`. One pass measures every norm, a
    second scales in place only when the clip coefficient is below 1 or NaN. Returns the
    total norm before clipping."""
    c = _segments_native(grads, offsets, per_param_out)
    if c is None:
        return _fallback("clip_grad_norm", grads, offsets, max_norm, norm_type,
                         error_if_nonfinite, per_param_out)
    total = _ffi.new("double *")
    _check(c["clip_grad_norm"](_out(grads), grads.size, _in(offsets), per_param_out.size,
                               max_norm, float(norm_type), bool(error_if_nonfinite),
                               _out(per_param_out), total, PARALLEL_MIN["norms"]), grads,
           offsets)
    return total[0]


def clip_grad_range(grads, min_value, max_value):
    """Clamp every gradient into ``[min_value, max_value]``: see
    :func:`fastgrad.backends.numpy_ref.clip_grad_range`."""
    c = _native(grads.dtype, grads)
    if c is None:
        return _fallback("clip_grad_range", grads, min_value, max_value)
    c["clip_grad_range"](_out(grads), grads.size, min_value, max_value, PARALLEL_MIN["clip"])


def scale(values, factor):
    """``values *= factor``: see :func:`fastgrad.backends.numpy_ref.scale`."""
    c = _native(values.dtype, values)
    if c is None:
        return _fallback("scale", values, factor)
    c["scale"](_out(values), values.size, factor, PARALLEL_MIN["scale"])


def axpy(y, x, alpha):
    """``y += alpha * x``: see :func:`fastgrad.backends.numpy_ref.axpy`."""
    c = _native(y.dtype, y, x)
    if c is None or x.size != y.size:
        return _fallback("axpy", y, x, alpha)
    c["axpy"](_out(y), _in(x), y.size, alpha, PARALLEL_MIN["axpy"])


def grad_window_mean(total, grad, weight, factor):
    """``grad = factor * (total + weight * grad)``, then ``total = 0``: see
    :func:`fastgrad.backends.numpy_ref.grad_window_mean`."""
    c = _native(grad.dtype, total, grad)
    if c is None or total.size != grad.size:
        return _fallback("grad_window_mean", total, grad, weight, factor)
    c["grad_window_mean"](_out(total), _out(grad), grad.size, weight, factor,
                          PARALLEL_MIN["window"])


# -------------------------------------------------------------------------------- optimisers
def _same_size(n, *arrays):
    for a in arrays:
        if a is not None and a.size != n:
            return False
    return True


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
             maximize, first_step):
    """One SGD step with momentum in one pass: see
    :func:`fastgrad.backends.numpy_ref.sgd_step`."""
    buffer = momentum_buffer if momentum != 0 else None
    c = _native(param.dtype, param, grad, buffer)
    if c is None or not _same_size(param.size, grad, buffer):
        return _fallback("sgd_step", param, grad, momentum_buffer, lr, momentum, dampening,
                         weight_decay, nesterov, maximize, first_step)
    c["sgd_step"](_out(param), _in(grad), _opt(buffer), param.size, lr, momentum, dampening,
                  weight_decay, bool(nesterov), bool(maximize), bool(first_step),
                  PARALLEL_MIN["sgd"])


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
              weight_decay, decoupled_weight_decay, maximize):
    """One Adam / AdamW / AMSGrad step in one pass over the five buffers: see
    :func:`fastgrad.backends.numpy_ref.adam_step`."""
    c = _native(param.dtype, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    if c is None or not _same_size(param.size, grad, exp_avg, exp_avg_sq, max_exp_avg_sq):
        return _fallback("adam_step", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
                         beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                         maximize)
    c["adam_step"](_out(param), _in(grad), _out(exp_avg), _out(exp_avg_sq),
                   _opt(max_exp_avg_sq), param.size, step, lr, beta1, beta2, eps, weight_decay,
                   bool(decoupled_weight_decay), bool(maximize), PARALLEL_MIN["adam"])


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                 weight_decay, momentum, maximize):
    """One RMSprop step (optionally centred, with momentum) in one pass: see
    :func:`fastgrad.backends.numpy_ref.rmsprop_step`."""
    c = _native(param.dtype, param, grad, square_avg, grad_avg, momentum_buffer)
    if c is None or not _same_size(param.size, grad, square_avg, grad_avg, momentum_buffer):
        return _fallback("rmsprop_step", param, grad, square_avg, grad_avg, momentum_buffer, lr,
                         alpha, eps, weight_decay, momentum, maximize)
    c["rmsprop_step"](_out(param), _in(grad), _out(square_avg), _opt(grad_avg),
                      _opt(momentum_buffer), param.size, lr, alpha, eps, weight_decay,
                      momentum, bool(maximize), PARALLEL_MIN["rmsprop"])


def adagrad_step(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step (with PyTorch's learning-rate decay) in one pass: see
    :func:`fastgrad.backends.numpy_ref.adagrad_step`."""
    c = _native(param.dtype, param, grad, state_sum)
    if c is None or not _same_size(param.size, grad, state_sum):
        return _fallback("adagrad_step", param, grad, state_sum, step, lr, lr_decay,
                         weight_decay, eps, maximize)
    c["adagrad_step"](_out(param), _in(grad), _out(state_sum), param.size, step, lr, lr_decay,
                      weight_decay, eps, bool(maximize), PARALLEL_MIN["adagrad"])


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step in one pass: see :func:`fastgrad.backends.numpy_ref.adadelta_step`."""
    c = _native(param.dtype, param, grad, square_avg, acc_delta)
    if c is None or not _same_size(param.size, grad, square_avg, acc_delta):
        return _fallback("adadelta_step", param, grad, square_avg, acc_delta, lr, rho, eps,
                         weight_decay, maximize)
    c["adadelta_step"](_out(param), _in(grad), _out(square_avg), _out(acc_delta), param.size,
                       lr, rho, eps, weight_decay, bool(maximize), PARALLEL_MIN["adadelta"])


def adamax_step(param, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay,
                maximize):
    """One Adamax step in one pass: see :func:`fastgrad.backends.numpy_ref.adamax_step`."""
    c = _native(param.dtype, param, grad, exp_avg, exp_inf)
    if c is None or not _same_size(param.size, grad, exp_avg, exp_inf):
        return _fallback("adamax_step", param, grad, exp_avg, exp_inf, step, lr, beta1, beta2,
                         eps, weight_decay, maximize)
    c["adamax_step"](_out(param), _in(grad), _out(exp_avg), _out(exp_inf), param.size, step,
                     lr, beta1, beta2, eps, weight_decay, bool(maximize),
                     PARALLEL_MIN["adamax"])


def nadam_step(param, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps,
               weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step in one pass: see :func:`fastgrad.backends.numpy_ref.nadam_step`."""
    c = _native(param.dtype, param, grad, exp_avg, exp_avg_sq)
    if c is None or not _same_size(param.size, grad, exp_avg, exp_avg_sq):
        return _fallback("nadam_step", param, grad, exp_avg, exp_avg_sq, step, mu_product, lr,
                         beta1, beta2, eps, weight_decay, momentum_decay,
                         decoupled_weight_decay, maximize)
    c["nadam_step"](_out(param), _in(grad), _out(exp_avg), _out(exp_avg_sq), param.size, step,
                    mu_product, lr, beta1, beta2, eps, weight_decay, momentum_decay,
                    bool(decoupled_weight_decay), bool(maximize), PARALLEL_MIN["nadam"])


# -------------------------------------------------------------------------------------- gemm
def _fits_blas(*sizes):
    """True when the products run in C: a usable BLAS whose integers hold every size."""
    if _BLAS is None:
        return False
    for size in sizes:
        if size > _BLAS_SIZE_MAX:
            return False
    return True


def gemm(a, b, trans_a, trans_b, accumulate, out):
    """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``): see
    :func:`fastgrad.backends.numpy_ref.gemm`. Fixed blocks on the OpenMP threads, each one
    single-threaded BLAS call: bit-identical for any thread count, and to the Numba backend's
    product (the same blocks). Without a usable BLAS, the reference (NumPy's product)."""
    c = _native(out.dtype, a, b, out)
    if c is None or a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        return _fallback("gemm", a, b, trans_a, trans_b, accumulate, out)
    m, k = a.shape[::-1] if trans_a else a.shape
    depth, n = b.shape[::-1] if trans_b else b.shape
    if out.shape != (m, n) or depth != k:
        return _fallback("gemm", a, b, trans_a, trans_b, accumulate, out)
    if not _fits_blas(m, n, k):
        return _fallback("gemm", a, b, trans_a, trans_b, accumulate, out,
                         reason="sizes beyond the BLAS's integers" if blas.AVAILABLE
                         else "no usable BLAS")
    _check_blas(c["gemm"](_in(a), _in(b), m, n, k, bool(trans_a), bool(trans_b),
                          bool(accumulate), _out(out), _BLAS))


def gemm_pack(b, trans_b, packed):
    """Pack ``op(b)`` into column panels: see :func:`fastgrad.backends.numpy_ref.gemm_pack`."""
    c = _native(packed.dtype, b, packed)
    depth, n = b.shape[::-1] if trans_b else b.shape
    if c is None or b.ndim != 2 or packed.shape != _reference.packed_shape(depth, n,
                                                                             packed.dtype):
        return _fallback("gemm_pack", b, trans_b, packed)
    c["gemm_pack"](_in(b), depth, n, bool(trans_b), _out(packed))


def gemm_packed(a, packed, accumulate, out):
    """``out = a @ B`` (``+=`` with ``accumulate``) from B's panels: see
    :func:`fastgrad.backends.numpy_ref.gemm_packed`. fastgrad's own product (csrc/gemm.inc),
    no BLAS: the panels are read as they are, on the OpenMP threads."""
    c = _native(out.dtype, a, packed, out)
    if (c is None or a.ndim != 2 or out.ndim != 2 or out.shape[0] != a.shape[0]
            or packed.shape != _reference.packed_shape(a.shape[1], out.shape[1], out.dtype)):
        return _fallback("gemm_packed", a, packed, accumulate, out)
    c["gemm_packed"](_in(a), a.shape[0], a.shape[1], _in(packed), out.shape[1],
                     bool(accumulate), _out(out))


# ------------------------------------------------------------------------- activations, linear
_EXP_CODES = frozenset((ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]))


def _activation_min(activation):
    """The parallel threshold of a pass applying ``activation`` (exp-based ones cost more)."""
    return PARALLEL_MIN["activation_exp" if activation in _EXP_CODES else "activation"]


def activation_fwd(x, activation, out):
    """``out = act(x)`` elementwise in one pass: see
    :func:`fastgrad.backends.numpy_ref.activation_fwd`."""
    c = _native(x.dtype, x, out)
    if c is None or x.shape != out.shape:
        return _fallback("activation_fwd", x, activation, out)
    _check_activation(c["activation_fwd"](_in(x), _out(out), x.size, activation,
                                          _activation_min(activation)), activation)


def activation_bwd(grad_out, out, activation, grad_in):
    """``grad_in = grad_out * act'(x)`` from the output, in one pass: see
    :func:`fastgrad.backends.numpy_ref.activation_bwd`."""
    c = _native(out.dtype, grad_out, out, grad_in)
    if c is None or not grad_out.shape == out.shape == grad_in.shape:
        return _fallback("activation_bwd", grad_out, out, activation, grad_in)
    _check_activation(c["activation_bwd"](_in(grad_out), _in(out), _out(grad_in), out.size,
                                          activation, PARALLEL_MIN["activation"]), activation)


def _linear_shapes(x, weight, out):
    """True when x (N, I), weight (O, I) and out (N, O) fit together."""
    return (x.ndim == 2 and weight.ndim == 2 and out.ndim == 2 and x.shape[1] == weight.shape[1]
            and out.shape == (x.shape[0], weight.shape[0]))


def linear_fwd(x, weight, bias, activation, out):
    """``out = act(x @ weight.T + bias)``: see :func:`fastgrad.backends.numpy_ref.linear_fwd`.
    The product in the blocks of :func:`gemm`, each followed on its thread by its bias and
    activation while it is in cache. Without a usable BLAS, NumPy's product and then one C
    pass for the bias and the activation."""
    c = _native(x.dtype, x, weight, bias, out)
    if (c is None or not _linear_shapes(x, weight, out)
            or (bias is not None and bias.shape != (out.shape[1],))):
        return _fallback("linear_fwd", x, weight, bias, activation, out)
    rows, cols = out.shape
    if _fits_blas(rows, cols, x.shape[1]):
        status = c["linear_fwd"](_in(x), _in(weight), _NULL if bias is None else _in(bias),
                                 rows, x.shape[1], cols, activation, _out(out), _BLAS,
                                 _activation_min(activation))
        _check_activation(status, activation)
        _check_blas(status)
        return
    bias_in = _NULL if bias is None else _in(bias)
    # the code is checked before NumPy's product writes out
    _check_activation(c["linear_epilogue"](_out(out), 0, cols, bias_in, activation, 0),
                      activation)
    np.matmul(x, weight.T, out=out)
    _check_activation(c["linear_epilogue"](_out(out), rows, cols, bias_in, activation,
                                           _activation_min(activation)), activation)


def linear_bwd(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
    """Gradients of :func:`linear_fwd`: see :func:`fastgrad.backends.numpy_ref.linear_bwd`.

    One C pass computes ``g = grad_out * act'(out)`` and the bias gradient ``g.sum(0)``
    (double partials over fixed row pieces, added in order); then the two products, as
    :func:`gemm`.
    """
    c = _native(x.dtype, grad_out, x, weight, out, grad_x, grad_weight, grad_bias)
    if (c is None or not _linear_shapes(x, weight, out) or grad_out.shape != out.shape
            or (grad_x is not None and grad_x.shape != x.shape)
            or (grad_weight is not None and grad_weight.shape != weight.shape)
            or (grad_bias is not None and grad_bias.shape != (out.shape[1],))):
        return _fallback("linear_bwd", grad_out, x, weight, out, activation, grad_x, grad_weight,
                         grad_bias)
    g = grad_out
    derive = activation != ACTIVATIONS["none"]
    if derive or grad_bias is not None:  # otherwise nothing to do (and none is a known code)
        if derive:
            g = np.empty_like(grad_out)
        _check_activation(c["linear_grad"](_in(grad_out), _in(out), out.shape[0], out.shape[1],
                                           activation, _out(g) if derive else _NULL,
                                           _opt(grad_bias), PARALLEL_MIN["linear_grad"]),
                          activation)
    if grad_x is not None:
        gemm(g, weight, False, False, False, grad_x)
    if grad_weight is not None:
        gemm(g, x, True, False, False, grad_weight)


# ----------------------------------------------------------------------------- cross-entropy
def _rows_native(logits, target, lse, *row_arrays):
    """The C functions when logits (N, C >= 1), target (N,) int64, lse (N,) float64 and the
    per-row arrays (N,) fit together; else None."""
    if logits.ndim != 2 or logits.shape[1] == 0:
        return None
    rows = logits.shape[0]
    for a in (target, lse) + row_arrays:
        if a.shape != (rows,):
            return None
    if not (_contiguous(_I64, target) and _contiguous(_F64, lse)):
        return None
    return _native(logits.dtype, logits, *row_arrays)


def cross_entropy_fwd(logits, target, ignore_index, loss, lse):
    """Per-row cross-entropy: see :func:`fastgrad.backends.numpy_ref.cross_entropy_fwd`. One
    pass per row: the row maximum, the shifted exponentials summed in double."""
    c = _rows_native(logits, target, lse, loss)
    if c is None or not _INT64[0] <= ignore_index <= _INT64[1]:
        return _fallback("cross_entropy_fwd", logits, target, ignore_index, loss, lse)
    rows, classes = logits.shape
    bad = c["cross_entropy_fwd"](_in(logits), rows, classes, _in(target), ignore_index,
                                 _out(loss), _out(lse), PARALLEL_MIN["cross_entropy"])
    raise_bad_target(bad, target, ignore_index, classes)


def cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits):
    """Gradient of :func:`cross_entropy_fwd`: see
    :func:`fastgrad.backends.numpy_ref.cross_entropy_bwd`. One pass per row."""
    c = _rows_native(logits, target, lse, grad_loss)
    if (c is None or grad_logits.shape != logits.shape or not _native(logits.dtype, grad_logits)
            or not _INT64[0] <= ignore_index <= _INT64[1]):
        return _fallback("cross_entropy_bwd", logits, target, lse, ignore_index, grad_loss,
                         grad_logits)
    rows, classes = logits.shape
    bad = c["cross_entropy_bwd"](_in(logits), rows, classes, _in(target), _in(lse),
                                 ignore_index, _in(grad_loss), _out(grad_logits),
                                 PARALLEL_MIN["cross_entropy"])
    raise_bad_target(bad, target, ignore_index, classes)


# --------------------------------------------------------------------------------- batchnorm
def _channels_native(x, per_channel, statistics):
    """The C functions when x is (N, C, S) with N * S >= 1, each per-channel array of x's
    dtype (None skipped) and each statistic (float64) is (C,); else None."""
    if x.ndim != 3 or x.shape[0] * x.shape[2] == 0:
        return None
    channels = (x.shape[1],)
    for a in per_channel:
        if a is not None and a.shape != channels:
            return None
    for a in statistics:
        if a.shape != channels or not _contiguous(_F64, a):
            return None
    return _native(x.dtype, x, *per_channel)


def batchnorm_fwd(x, weight, bias, eps, activation, running_mean, running_var, momentum, mean,
                  var, invstd, out):
    """Training-mode batch normalisation: see :func:`fastgrad.backends.numpy_ref.batchnorm_fwd`.

    Two C passes: the statistics from one read of x (double sums of x - shift and its
    square, the shift each channel's first element, so E[d²] - E[d]² does not cancel; fixed
    tiles added in order), then the affine output in x's dtype (the double mean split into
    two numbers of that dtype, so x - mean loses nothing when |mean| >> std), each piece
    activated as it is written: bit-identical to :func:`activation_fwd` on the output. The
    running statistics are updated between the two, from the double ``mean`` and ``var`` the
    first wrote, with the reference's operations in its order (bit-identical given those).
    """
    c = _channels_native(x, (weight, bias, running_mean, running_var), (mean, var, invstd))
    if (c is None or out.shape != x.shape or not _native(x.dtype, out)
            # one of the two, or a single value per channel (no unbiased variance): the
            # reference's behaviour and errors
            or (running_mean is None) != (running_var is None)
            or (running_mean is not None and x.shape[0] * x.shape[2] < 2)):
        return _fallback("batchnorm_fwd", x, weight, bias, eps, activation, running_mean,
                         running_var, momentum, mean, var, invstd, out)
    n, channels, spatial = x.shape
    _check_activation(c["batchnorm_fwd"](_in(x), n, channels, spatial,
                                         _NULL if weight is None else _in(weight),
                                         _NULL if bias is None else _in(bias), eps, activation,
                                         _opt(running_mean), _opt(running_var),
                                         0.0 if running_mean is None else momentum,
                                         _out(mean), _out(var), _out(invstd), _out(out),
                                         PARALLEL_MIN["batchnorm"]), activation)


def batchnorm_bwd(grad_out, x, weight, mean, invstd, out, activation, grad_x, grad_weight,
                  grad_bias):
    """Gradients of :func:`batchnorm_fwd`: see :func:`fastgrad.backends.numpy_ref.batchnorm_bwd`.

    Without an activation, one C pass for both per-channel sums (double, fixed tiles in order)
    and one for ``grad_x`` (in x's dtype, the mean split as in :func:`batchnorm_fwd`); with
    one, a first pass computes ``dy = grad_out * act'(out)`` into a C work buffer, as
    :func:`activation_bwd` does, and the two read it in grad_out's place.
    """
    c = _channels_native(x, (weight, grad_weight, grad_bias), (mean, invstd))
    if (c is None or grad_out.shape != x.shape or not _native(x.dtype, grad_out, grad_x, out)
            or (grad_x is not None and grad_x.shape != x.shape)
            or (out is not None and out.shape != x.shape)
            # the C code reads out for any activation but none
            or (out is None and activation != ACTIVATIONS["none"])):
        return _fallback("batchnorm_bwd", grad_out, x, weight, mean, invstd, out, activation,
                         grad_x, grad_weight, grad_bias)
    n, channels, spatial = x.shape
    _check_activation(c["batchnorm_bwd"](_in(grad_out), _in(x), n, channels, spatial,
                                         _NULL if weight is None else _in(weight), _in(mean),
                                         _in(invstd), _NULL if out is None else _in(out),
                                         activation, _opt(grad_x), _opt(grad_weight),
                                         _opt(grad_bias), PARALLEL_MIN["batchnorm"]),
                      activation)


# -------------------------------------------------------------------------------------- LSTM
def _lstm_native(gates_like, *cell_like):
    """The C functions when gates_like is (N, 4H) and every cell-like array (None skipped) is
    (N, H), all of one dtype and C-contiguous; else None."""
    if gates_like.ndim != 2 or gates_like.shape[1] % 4:
        return None
    shape = (gates_like.shape[0], gates_like.shape[1] // 4)
    for a in cell_like:
        if a is not None and a.shape != shape:
            return None
    return _native(gates_like.dtype, gates_like, *cell_like)


def lstm_cell_fwd(gates, c_prev, gates_act, h, c):
    """The pointwise part of one LSTM step: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_fwd`. One C pass per row over the four
    gates, the cell and the output."""
    kernels = _lstm_native(gates, c_prev, h, c)
    if kernels is None or gates_act.shape != gates.shape or not _native(gates.dtype, gates_act):
        return _fallback("lstm_cell_fwd", gates, c_prev, gates_act, h, c)
    rows, hidden = c.shape
    kernels["lstm_cell_fwd"](_in(gates), _in(c_prev), rows, hidden, _out(gates_act), _out(h),
                             _out(c), PARALLEL_MIN["lstm"])


def lstm_cell_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
    """Gradients of :func:`lstm_cell_fwd`: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_bwd`. One C pass per row."""
    kernels = _lstm_native(gates_act, grad_h, grad_c, c_prev, c, grad_c_prev)
    if (kernels is None or grad_gates.shape != gates_act.shape
            or not _native(gates_act.dtype, grad_gates)):
        return _fallback("lstm_cell_bwd", grad_h, grad_c, c_prev, c, gates_act, grad_gates,
                         grad_c_prev)
    rows, hidden = c.shape
    kernels["lstm_cell_bwd"](_in(grad_h), _in(grad_c), _in(c_prev), _in(c), _in(gates_act),
                             rows, hidden, _out(grad_gates), _opt(grad_c_prev),
                             PARALLEL_MIN["lstm"])


# ------------------------------------------------------------------- convolution and pooling
def _geometry_fits(values, least):
    """True when each value is an int (Python's or NumPy's) in [its least, int64's max]."""
    for value, low in zip(values, least):
        if not isinstance(value, (int, np.integer)) or not low <= value <= _INT64[1]:
            return False
    return True


def _window(x, out, kernel, stride, padding, dilation):
    """The ``fg_window2d`` of a window over x (N, C, H, W) with out's (.., OH, OW) positions,
    or None when a geometry value is outside what the C code takes (kernel, stride and
    dilation ints >= 1, padding ints >= 0)."""
    geometry = kernel + stride + padding + dilation
    if not _geometry_fits(geometry, (1, 1, 1, 1, 0, 0, 1, 1)):
        return None
    names = ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w")
    fields = dict(zip(names, map(int, geometry)))
    fields.update(zip(("batch", "channels", "height", "width"), x.shape))
    fields.update(out_height=out.shape[2], out_width=out.shape[3])
    return _ffi.new("fg_window2d *", fields)


def _check_window(status):
    """Raise for a convolution or pooling kernel's status (FG_OK: nothing)."""
    if status == _ERR_MEMORY:
        raise MemoryError("the C kernel could not allocate its work buffer")
    _check_blas(status)
    if status == _ERR_GEOMETRY:  # the wrappers check the geometry first: a bug, not bad input
        raise RuntimeError("the C kernel rejected a window geometry its wrapper accepted")


def _conv_call(x, weight, out, bias, geometry, groups):
    """``(C functions, window, BLAS or NULL)`` for a convolution between x (N, C, H, W),
    weight (O, C / groups, KH, KW) and out (N, O, OH, OW), bias (O,) or None, all of one dtype
    and C-contiguous, ``geometry`` (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
    ``(None, reason)`` when the C code does not take them (reason None: the default)."""
    c = _native(x.dtype, x, weight, out, bias)
    if (c is None or x.ndim != 4 or weight.ndim != 4 or out.ndim != 4
            or not _geometry_fits((groups,), (1,))):
        return None, None
    batch, channels = x.shape[:2]
    out_channels, group_channels = weight.shape[:2]
    if (out.shape[:2] != (batch, out_channels) or group_channels * groups != channels
            or out_channels % groups or (bias is not None and bias.shape != (out_channels,))):
        return None, None
    window = _window(x, out, weight.shape[2:], geometry[0:2], geometry[2:4], geometry[4:6])
    if window is None:
        return None, None
    if group_channels == 1 and out_channels == groups:  # depthwise: direct loops, no product
        return (c, window, _NULL), None
    depth = group_channels * weight.shape[2] * weight.shape[3]
    if not _fits_blas(out_channels // groups, out.shape[2] * out.shape[3], depth):
        return None, ("sizes beyond the BLAS's integers" if blas.AVAILABLE
                      else "no usable BLAS")
    return (c, window, _BLAS), None


def conv2d_fwd(x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, out):
    """2-D convolution (cross-correlation) into ``out``: see
    :func:`fastgrad.backends.numpy_ref.conv2d_fwd`. Per batch item, its columns (im2col) in a
    thread's own buffer and one single-threaded BLAS product per group, the items in parallel
    (a single item: the product in :func:`gemm`'s blocks); direct loops over the planes for a
    depthwise convolution. Bit-identical for any thread count."""
    geometry = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    call, reason = _conv_call(x, weight, out, bias, geometry, groups)
    if call is None:
        return _fallback("conv2d_fwd", x, weight, bias, *geometry, groups, out, reason=reason)
    c, window, products = call
    _check_window(c["conv2d_fwd"](_in(x), _in(weight), _NULL if bias is None else _in(bias),
                                  window, weight.shape[0], groups, _out(out), products))


def conv2d_bwd_input(grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     grad_x):
    """Input gradient of :func:`conv2d_fwd` (conv_transpose2d's forward): see
    :func:`fastgrad.backends.numpy_ref.conv2d_bwd_input`. Per batch item, the products to
    columns, then the columns added back into the image (col2im); direct loops for a
    depthwise convolution."""
    geometry = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    call, reason = _conv_call(grad_x, weight, grad_out, None, geometry, groups)
    if call is None:
        return _fallback("conv2d_bwd_input", grad_out, weight, *geometry, groups, grad_x,
                         reason=reason)
    c, window, products = call
    _check_window(c["conv2d_bwd_input"](_in(grad_out), _in(weight), window, weight.shape[0],
                                        groups, _out(grad_x), products))


def conv2d_bwd_weight(grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                      grad_weight, grad_bias):
    """Weight and bias gradients of :func:`conv2d_fwd`: see
    :func:`fastgrad.backends.numpy_ref.conv2d_bwd_weight`. The batch summed in fixed pieces
    (csrc/fastgrad.h's FG_CONV_PIECES) of items, each piece one thread's products in order,
    the pieces added in order: bit-identical for any thread count."""
    geometry = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    call, reason = _conv_call(x, grad_weight, grad_out, grad_bias, geometry, groups)
    if call is None:
        return _fallback("conv2d_bwd_weight", grad_out, x, *geometry, groups, grad_weight,
                         grad_bias, reason=reason)
    c, window, products = call
    _check_window(c["conv2d_bwd_weight"](_in(grad_out), _in(x), window, grad_weight.shape[0],
                                         groups, _out(grad_weight), _opt(grad_bias), products))


def _planes_native(x, out, *more):
    """The C functions when x (N, C, H, W) and out (N, C, OH, OW) fit together, of one dtype
    with every other float array (None skipped), all C-contiguous; else None."""
    if x.ndim != 4 or out.ndim != 4 or out.shape[:2] != x.shape[:2]:
        return None
    return _native(x.dtype, x, out, *more)


def max_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
                   indices):
    """Max pooling with the maxima's flat indices: see
    :func:`fastgrad.backends.numpy_ref.max_pool2d_fwd`. Direct loops, planes in parallel."""
    args = (x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
            indices)
    c = _planes_native(x, out)
    window = None
    if c is not None and indices.shape == out.shape and _contiguous(_I64, indices):
        window = _window(x, out, (kernel_h, kernel_w), (stride_h, stride_w), (pad_h, pad_w),
                         (dil_h, dil_w))
    if window is None:
        return _fallback("max_pool2d_fwd", *args)
    _check_window(c["max_pool2d_fwd"](_in(x), window, _out(out), _out(indices),
                                      PARALLEL_MIN["pool"]))


def max_pool2d_bwd(grad_out, indices, grad_x):
    """Gradient of :func:`max_pool2d_fwd`: see
    :func:`fastgrad.backends.numpy_ref.max_pool2d_bwd`. Direct loops, planes in parallel; an
    index outside its plane (which the forward never gives) runs the reference, which says
    what it does with it."""
    c = _planes_native(grad_x, grad_out)
    if c is None or indices.shape != grad_out.shape or not _contiguous(_I64, indices):
        return _fallback("max_pool2d_bwd", grad_out, indices, grad_x)
    batch, channels, height, width = grad_x.shape
    bad = c["max_pool2d_bwd"](_in(grad_out), _in(indices), batch * channels, height * width,
                              grad_out.shape[2] * grad_out.shape[3], _out(grad_x),
                              PARALLEL_MIN["pool"])
    if bad:
        return _fallback("max_pool2d_bwd", grad_out, indices, grad_x,
                         reason="indices outside their plane")


def _avg_window(x, out, kernel, stride, padding, divisor_override):
    """The window of an average pooling (no dilation), or None when the C code does not take
    it."""
    if not _geometry_fits((divisor_override,), (_INT64[0],)):
        return None
    return _window(x, out, kernel, stride, padding, (1, 1))


def avg_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                   divisor_override, out):
    """Average pooling with PyTorch's divisor rule: see
    :func:`fastgrad.backends.numpy_ref.avg_pool2d_fwd`. Direct loops, planes in parallel."""
    c = _planes_native(x, out)
    window = None if c is None else _avg_window(x, out, (kernel_h, kernel_w),
                                                (stride_h, stride_w), (pad_h, pad_w),
                                                divisor_override)
    if window is None:
        return _fallback("avg_pool2d_fwd", x, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                         pad_w, count_include_pad, divisor_override, out)
    _check_window(c["avg_pool2d_fwd"](_in(x), window, bool(count_include_pad),
                                      int(divisor_override), _out(out), PARALLEL_MIN["pool"]))


def avg_pool2d_bwd(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                   count_include_pad, divisor_override, grad_x):
    """Gradient of :func:`avg_pool2d_fwd`: see
    :func:`fastgrad.backends.numpy_ref.avg_pool2d_bwd`. Direct loops, planes in parallel."""
    c = _planes_native(grad_x, grad_out)
    window = None if c is None else _avg_window(grad_x, grad_out, (kernel_h, kernel_w),
                                                (stride_h, stride_w), (pad_h, pad_w),
                                                divisor_override)
    if window is None:
        return _fallback("avg_pool2d_bwd", grad_out, kernel_h, kernel_w, stride_h, stride_w,
                         pad_h, pad_w, count_include_pad, divisor_override, grad_x)
    _check_window(c["avg_pool2d_bwd"](_in(grad_out), window, bool(count_include_pad),
                                      int(divisor_override), _out(grad_x),
                                      PARALLEL_MIN["pool"]))
