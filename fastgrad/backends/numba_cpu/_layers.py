"""Numba kernels of the layers: activations, linear epilogues, cross-entropy, batchnorm, LSTM.

Same names, signatures and outputs as the reference (:mod:`fastgrad.backends.numpy_ref`). The
matrix products are NumPy's BLAS, called here on this module's threads (one pool, see
:mod:`fastgrad.backends.blas`), block by block; what surrounds them is fused here: the bias and
the activation into each block of the GEMM's output right after its product, the
activation's derivative and the bias gradient into one pass before the backward GEMMs,
log-softmax and NLL into one pass per row, the LSTM gates and cell update into one pass per
row.

Transcendentals. Numba has no SVML here, so its ``exp`` and ``tanh`` are scalar libm calls,
10 to 40 times slower than NumPy's SIMD ufuncs. The kernels therefore evaluate exp, sigmoid and
tanh with arithmetic only, which LLVM vectorises: Cody-Waite reduction ``v = t ln2 + r``, a
Taylor polynomial in ``r`` and ``2**t`` built from its bits; in float32 for float32 arrays
(within 2.5 ulp of the exact value, as NumPy's) and in float64 for float64 arrays (within
2e-14 relative; fast-math folds the split of ln2, which costs accuracy only for |v| ~ 700).
Results below the smallest normal number flush to zero (sigmoid(-90) is 0 in float32).
The activation passes compile without fast-math (``exact=True``): with it, LLVM contracts the
polynomial into FMAs differently in each caller, and a Linear with its activation fused would
differ in the last bit from the same activation run alone.
Loops index views from 0: a loop over ``range(lo, hi)`` of an array is compiled with gathers
and scatters (Numba's negative-index wraparound), several times slower. Jitted code never
passes an int constant to a jitted helper (``np.int64(0)``, not ``0``): a literal argument
compiles another specialisation of the helper.

Parallelism and determinism. A driver runs serially below its kernel's measured threshold
(:data:`PARALLEL_MIN`) and, above it, processes pieces of about :data:`CHUNK` elements under
``prange``; the loops over a piece are small serial helpers, which LLVM vectorises (a loop
inside a ``prange`` body is not vectorised). Reductions (bias gradient, batchnorm statistics
and gradients) sum each piece into its own float64 partial and combine the partials serially
in piece order; the pieces depend on the shapes only, so results are bit-identical for every
thread count, run and threshold. The GEMMs' blocks likewise depend on the shapes only.
The thresholds are low when the GEMMs run on these same threads (no other pool spins between
a GEMM and a kernel) and high otherwise (:data:`PARALLEL_MIN_BLAS_POOL`).

Arrays of other dtypes (float16) or not C-contiguous go to the reference kernel, counted in
:data:`FALLBACKS` (the backend's, shared with :mod:`._arena`). An activation code the loops
below do not implement (:data:`ACTIVATION_CODES`) is a ValueError.
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ... import config
from ...device import arrays_among
from .. import blas
from .. import numpy_ref as _reference
from ..numpy_ref import ACTIVATIONS
from ..spec import Fallbacks, raise_bad_target

__all__ = ["gemm", "gemm_pack", "gemm_packed", "activation_fwd", "activation_bwd", "linear_fwd",
           "linear_bwd",
           "cross_entropy_fwd", "cross_entropy_bwd", "batchnorm_fwd", "batchnorm_bwd",
           "lstm_cell_fwd", "lstm_cell_bwd"]

#: Elements per parallel work unit and per reduction piece. The reduction pieces fix the
#: rounding of the bias gradient and of the batchnorm sums, so changing this changes them in
#: their last bits.
CHUNK = 16384

#: At most this many partial rows per reduction over rows (bias gradient, batchnorm with a
#: narrow row): bounds the partials' memory whatever the batch size.
MAX_PIECES = 64

#: Below these sizes (elements of the largest array) a kernel runs serially, when the GEMMs run
#: on this module's threads (:mod:`~fastgrad.backends.blas` found NumPy's BLAS): where two
#: threads beat one on the kernel alone, measured on a 2-core x86-64 (AVX-512), float32,
#: interleaved medians, two pieces and up; the threads are already awake from the GEMM before.
PARALLEL_MIN_ONE_POOL = {
    "activation": 1 << 16,
    "activation_exp": 1 << 15,
    "linear_epilogue": 1 << 16,
    "linear_epilogue_exp": 1 << 15,
    "linear_grad": 1 << 15,
    "cross_entropy": 1 << 15,
    "batchnorm": 1 << 15,
    "lstm": 1 << 15,
}

#: The same when GEMMs run on NumPy's own BLAS threads (no usable BLAS found), whose workers
#: keep spinning after each call: a parallel region then waits for a core, and a GEMM followed
#: by the parallel kernel paid a flat 4 ms (minimum) to 8 ms (median) more than with the
#: serial kernel at every size up to 2**20 elements, and still lost at 2**22. So each
#: threshold is where the serial kernel takes about 16 ms (2 threads then save more than the
#: 8 ms): 16 ms / the serial ns per element in the comment.
PARALLEL_MIN_BLAS_POOL = {
    "activation": 1 << 27,           # relu: 0.09 (fwd) to 0.19 (bwd) ns/element
    "activation_exp": 1 << 25,       # sigmoid, tanh: 0.34-0.41 ns/element
    "linear_epilogue": 1 << 27,      # bias + relu/none: 0.11 ns/element
    "linear_epilogue_exp": 1 << 25,  # bias + sigmoid/tanh: 0.38 ns/element
    "linear_grad": 1 << 26,          # derivative + bias gradient: 0.27 ns/element
    "cross_entropy": 1 << 24,        # 1.0 ns/element (float64 exp)
    "batchnorm": 1 << 26,            # 0.12-0.42 ns/element per pass
    "lstm": 1 << 25,                 # 0.38-0.48 ns/element of the gates
}

#: The thresholds in force.
PARALLEL_MIN = PARALLEL_MIN_ONE_POOL if blas.AVAILABLE else PARALLEL_MIN_BLAS_POOL

_NONE, _RELU = ACTIVATIONS["none"], ACTIVATIONS["relu"]
_SIGMOID, _TANH = ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]

#: The activation codes the loops below implement (:func:`_activate`,
#: :func:`_activate_in_place` and :func:`_derivative`, none by :func:`_copy`); the kernels
#: refuse any other (a code new in ACTIVATIONS goes here with its loops).
ACTIVATION_CODES = (_NONE, _RELU, _SIGMOID, _TANH)

#: This backend's calls that ran the reference kernel instead of its own code.
FALLBACKS = Fallbacks()
_JIT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dtype: np.empty(0, dtype) for dtype in _JIT_DTYPES}
#: 1 and 0 of each dtype, the products' alpha and beta (made once: 0.2 us a call otherwise).
_ONE_ZERO = {dtype: (dtype.type(1.0), dtype.type(0.0)) for dtype in _JIT_DTYPES}

# exp(v) = 2**t * exp(r), v = t ln2 + r, |r| <= ln2 / 2; ln2 split so that t * hi is exact
_LOG2E = 1.4426950408889634
_LN2_HI32, _LN2_LO32 = 0.693359375, -2.12194440e-4
_LN2_HI64, _LN2_LO64 = 0.693145751953125, 1.4286068203094173e-06
# beyond these, exp's result is subnormal (flushed to 0) or its 2**t overflows (inf)
_EXP_MIN32, _EXP_MAX32 = -87.3, 88.0
_EXP_MIN64, _EXP_MAX64 = -708.3, 709.0


def _fallback(name, *args, reason=None):
    """Run the reference kernel ``name`` on ``args`` (arguments the jitted code does not
    take), counted in :data:`FALLBACKS`; arrays of another device than the CPU go to that
    device's kernels (:class:`fastgrad.device.DeviceArrays`)."""
    device = arrays_among(args)
    if device is not None:  # arrays of another device: its kernels, not a fallback
        return getattr(device.kernels or _reference, name)(*args)
    FALLBACKS.record(name, args, reason)
    return getattr(_reference, name)(*args)


def _unknown_activation(activation):
    raise ValueError(f"activation code {activation} is not implemented by the numba backend "
                     f"(its codes: {ACTIVATION_CODES})")


def _native(dtype, *arrays):
    """True when the jitted kernels apply: ``dtype`` is float32 or float64 and every array
    (None skipped) is C-contiguous of that dtype."""
    if dtype not in _JIT_DTYPES:
        return False
    for a in arrays:  # a loop, not all(...): this runs on every call, for small arrays too
        if a is not None and (type(a) is not np.ndarray or a.dtype != dtype
                              or not a.flags.c_contiguous):
            return False
    return True


# ------------------------------------------------------------------------ vectorisable math
@config.jit(inline="always")
def _expm1_reduced32(r):
    """expm1(r) for float32 |r| <= ln2/2: Taylor to r**7 (truncation below 2e-8 relative)."""
    p = np.float32(1 / 720) + r * np.float32(1 / 5040)
    p = np.float32(1 / 120) + r * p
    p = np.float32(1 / 24) + r * p
    p = np.float32(1 / 6) + r * p
    p = np.float32(1 / 2) + r * p
    return r * (np.float32(1.0) + r * p)


@config.jit(inline="always")
def _expm1_reduced64(r):
    """expm1(r) for float64 |r| <= ln2/2: Taylor to r**13 (truncation below 2e-17)."""
    p = 1 / 479001600 + r * (1 / 6227020800)
    p = 1 / 39916800 + r * p
    p = 1 / 3628800 + r * p
    p = 1 / 362880 + r * p
    p = 1 / 40320 + r * p
    p = 1 / 5040 + r * p
    p = 1 / 720 + r * p
    p = 1 / 120 + r * p
    p = 1 / 24 + r * p
    p = 1 / 6 + r * p
    p = 1 / 2 + r * p
    return r * (1.0 + r * p)


@config.jit(inline="always")
def _reduce32(c):
    """(2**t, r) with c = t ln2 + r for float32 c in [_EXP_MIN32, _EXP_MAX32]; 2**t from its
    bits, so no libm call stops vectorisation."""
    t = np.rint(c * np.float32(_LOG2E))
    r = (c - t * np.float32(_LN2_HI32)) - t * np.float32(_LN2_LO32)
    return np.int32((np.int32(t) + 127) << 23).view(np.float32), r


@config.jit(inline="always")
def _reduce64(c):
    """(2**t, r) with c = t ln2 + r for float64 c in [_EXP_MIN64, _EXP_MAX64]."""
    t = np.rint(c * _LOG2E)
    r = (c - t * _LN2_HI64) - t * _LN2_LO64
    return np.int64((np.int64(t) + 1023) << 52).view(np.float64), r


@config.jit(inline="always")
def _exp32(v):
    """exp(v) in float32; 0 below -87.3, inf from 88 on, NaN kept."""
    lo, hi = np.float32(_EXP_MIN32), np.float32(_EXP_MAX32)
    c = v if v > lo else lo
    c = c if c < hi else hi
    scale, r = _reduce32(c)
    e = (np.float32(1.0) + _expm1_reduced32(r)) * scale
    e = e if v > lo else np.float32(0.0)
    e = e if v < hi else np.float32(np.inf)
    return e if v == v else v


@config.jit(inline="always")
def _exp64(v):
    """exp(v) in float64; 0 below -708.3, inf from 709 on, NaN kept."""
    c = v if v > _EXP_MIN64 else _EXP_MIN64
    c = c if c < _EXP_MAX64 else _EXP_MAX64
    scale, r = _reduce64(c)
    e = (1.0 + _expm1_reduced64(r)) * scale
    e = e if v > _EXP_MIN64 else 0.0
    e = e if v < _EXP_MAX64 else np.inf
    return e if v == v else v


@config.jit(inline="always")
def _sigmoid32(v):
    """The reference's stable sigmoid, ``(1 if v >= 0 else e) / (1 + e)`` with
    ``e = exp(-|v|)``, in float32."""
    e = _exp32(-abs(v))
    return (np.float32(1.0) if v >= 0 else e) / (np.float32(1.0) + e)


@config.jit(inline="always")
def _sigmoid64(v):
    """:func:`_sigmoid32` in float64."""
    e = _exp64(-abs(v))
    return (1.0 if v >= 0 else e) / (1.0 + e)


@config.jit(inline="always")
def _tanh32(v):
    """tanh(v) = -m / (2 + m) with m = expm1(-2|v|), odd-extended, in float32: no
    cancellation near 0, no overflow for large |v|."""
    a = np.float32(-2.0) * abs(v)
    lo = np.float32(_EXP_MIN32)
    scale, r = _reduce32(a if a > lo else lo)
    m = scale * _expm1_reduced32(r) + (scale - np.float32(1.0))
    t = -m / (np.float32(2.0) + m)
    t = t if v >= 0 else -t
    return t if v == v else v


@config.jit(inline="always")
def _tanh64(v):
    """:func:`_tanh32` in float64."""
    a = -2.0 * abs(v)
    scale, r = _reduce64(a if a > _EXP_MIN64 else _EXP_MIN64)
    m = scale * _expm1_reduced64(r) + (scale - 1.0)
    t = -m / (2.0 + m)
    t = t if v >= 0 else -t
    return t if v == v else v


@config.jit(inline="always")
def _sigmoid(v, wide):
    """sigmoid(v) in float64 (``wide``, a compile-time constant after inlining) or float32
    precision, returned as float64."""
    if wide:
        return _sigmoid64(np.float64(v))
    return np.float64(_sigmoid32(np.float32(v)))


@config.jit(inline="always")
def _tanh(v, wide):
    """tanh(v) in float64 or float32 precision, as :func:`_sigmoid`."""
    if wide:
        return _tanh64(np.float64(v))
    return np.float64(_tanh32(np.float32(v)))


# ------------------------------------------------------------------------- loop helpers
@config.jit()
def _col(first, k):
    """Column ``first + k`` as an unsigned index. Numba wraps a negative signed index around
    (Python's ``a[-1]``), and that select keeps LLVM from vectorising a loop over columns
    from an offset (gathers instead of vector loads); an unsigned index has no such case."""
    return np.uint64(first + k)


@config.jit()
def _rows_per_piece(rows, width):
    """Rows per reduction piece over rows of ``width`` elements: about CHUNK elements, and at
    most MAX_PIECES pieces."""
    per = max(1, CHUNK // max(1, width))
    return max(per, (rows + MAX_PIECES - 1) // MAX_PIECES)


@config.jit()
def _zeros(rows, cols):
    """A float64 (rows, cols) array of zeros. Allocated here, not in a ``parallel=True``
    driver: there Numba turns every NumPy call into a parallel region, even on the serial path."""
    return np.zeros((rows, cols))


@config.jit()
def _sum_rows(partial, out):
    """``out[j] = sum(partial[:, j])``, rows added in order in float64, rounded once."""
    total = np.zeros(partial.shape[1])
    for p in range(partial.shape[0]):
        _accumulate(total, partial[p])
    for j in range(out.size):
        out[j] = total[j]


@config.jit(exact=True)
def _activate(x, out, activation):
    """``out = act(x)`` over 1-D x and out for relu, sigmoid or tanh (none: see
    :func:`_activate_or_copy`). ``out`` may be ``x``, but then LLVM's overlap check sends the
    loop to its scalar version: in place, :func:`_activate_in_place`."""
    wide = x.itemsize == 8
    n = x.size
    if activation == _RELU:
        for k in range(n):
            v = x[k]
            out[k] = 0 if v < 0 else v  # NaN stays NaN, as with np.maximum
    elif activation == _SIGMOID:
        for k in range(n):
            out[k] = _sigmoid(x[k], wide)
    elif activation == _TANH:
        for k in range(n):
            out[k] = _tanh(x[k], wide)


@config.jit(exact=True)
def _activate_in_place(x, n, first, width, activation):
    """``x[n, first:first + width] = act(...)`` in place (none leaves it): one array, so the
    loop is vectorised; indexed (:func:`_col`), not a view per row, which costs more than a
    short row's work."""
    wide = x.itemsize == 8
    if activation == _RELU:
        for k in range(width):
            j = _col(first, k)
            v = x[n, j]
            x[n, j] = 0 if v < 0 else v
    elif activation == _SIGMOID:
        for k in range(width):
            j = _col(first, k)
            x[n, j] = _sigmoid(x[n, j], wide)
    elif activation == _TANH:
        for k in range(width):
            j = _col(first, k)
            x[n, j] = _tanh(x[n, j], wide)


@config.jit(exact=True)
def _derivative(grad_out, out, activation, grad_in):
    """``grad_in = grad_out * act'`` for relu, sigmoid or tanh (none: see
    :func:`_derivative_or_copy`), the derivative from the activation's output ``out``, over
    1-D arrays; a multiplication even by 0, so NaN and inf gradients propagate."""
    n = grad_out.size
    if activation == _RELU:
        for k in range(n):
            grad_in[k] = grad_out[k] * (1.0 if out[k] > 0 else 0.0)
    elif activation == _SIGMOID:
        for k in range(n):
            o = float(out[k])
            grad_in[k] = grad_out[k] * (o * (1.0 - o))
    elif activation == _TANH:
        for k in range(n):
            o = float(out[k])
            grad_in[k] = grad_out[k] * (1.0 - o * o)


@config.jit()
def _copy(source, target):
    """``target[:] = source`` over 1-D arrays."""
    for k in range(source.size):
        target[k] = source[k]


# The copies for none stay out of _activate and _derivative: a larger _derivative is no
# longer inlined into the linear layer's per-row loop (1.4 us more per call on 32 rows).
@config.jit(exact=True)
def _activate_or_copy(x, out, activation):
    """:func:`_activate`, or a copy for none: the activation kernel's loop."""
    if activation == _NONE:
        _copy(x, out)
    else:
        _activate(x, out, activation)


@config.jit(exact=True)
def _derivative_or_copy(grad_out, out, activation, grad_in):
    """:func:`_derivative`, or a copy of ``grad_out`` for none: the activation's backward."""
    if activation == _NONE:
        _copy(grad_out, grad_in)
    else:
        _derivative(grad_out, out, activation, grad_in)


@config.jit()
def _accumulate(acc, x):
    """``acc += x`` elementwise, acc float64."""
    for k in range(acc.size):
        acc[k] += x[k]


@config.jit()
def _row_max(row):
    """The largest element of a non-empty 1-D row. Eight running maxima, so the loop is not
    one chain of compare-selects (a max reduction is not vectorised without ``nnan``). A NaN
    may be skipped: callers sum exp(row - max), where it comes back as NaN."""
    n = row.size
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    j = 0
    while j + 8 <= n:
        v0, v1, v2, v3 = row[j], row[j + 1], row[j + 2], row[j + 3]
        v4, v5, v6, v7 = row[j + 4], row[j + 5], row[j + 6], row[j + 7]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        m4 = v4 if v4 > m4 else m4
        m5 = v5 if v5 > m5 else m5
        m6 = v6 if v6 > m6 else m6
        m7 = v7 if v7 > m7 else m7
        j += 8
    while j < n:
        m0 = row[j] if row[j] > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@config.jit()
def _sum_exp(row, shift):
    """``sum(exp(row - shift))`` for a float64 ``shift``, all in float64 as the reference."""
    total = 0.0
    for j in range(row.size):
        total += _exp64(row[j] - shift)
    return total


@config.jit()
def _softmax_grad(row, lse, weight, grad):
    """``grad = exp(row - lse) * weight`` over 1-D row and grad, in float64."""
    for j in range(row.size):
        grad[j] = _exp64(row[j] - lse) * weight


# ---------------------------------------------------------------- GEMM on this module's pool
# A product ``out = op(a) @ op(b)`` is cut along the longer side of ``out`` into blocks whose
# number and edges depend on the shapes only, so each element comes from the same BLAS call on
# the same operands whatever the thread count. Blocks run under ``prange`` with BLAS set to one
# thread, restored after. BLAS is called through its addresses (ints from
# :mod:`fastgrad.backends.blas`) by the intrinsics below: no process-specific constant is
# compiled in, so the kernels stay cacheable.
#: Blocks are cut at multiples of this many columns or rows (whole SIMD registers).
ALIGN = 16

#: A block gets at least this many multiply-adds (m * n * k); fewer blocks otherwise.
MIN_BLOCK_WORK = 1 << 20

#: At most this many blocks per product.
MAX_BLOCKS = 8

#: Up to this many multiply-adds OpenBLAS runs a product on the calling thread anyway (its
#: SMP threshold, 65536 * GEMM_MULTITHREAD_THRESHOLD 4), so one block needs no thread switch.
BLAS_SERIAL_WORK = 65536 * 4

_TRANS, _NO_TRANS = np.int64(blas.TRANS), np.int64(blas.NO_TRANS)

#: What the compiled code gets of :mod:`~fastgrad.backends.blas`, as one argument (globals
#: would be frozen into Numba's cache): sgemm, dgemm, get/set threads, the BLAS int width.
ADDRESSES = np.array([address or 0 for address in blas.PRODUCTS[:5]], np.int64)


# ------------------------------------------------------------------------------ intrinsics
@intrinsic
def _blas_gemm(typingctx, address, int_bits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
               beta, c, ldc):
    """Call the CBLAS ``?gemm`` at ``address`` (row-major) with pointers ``a``, ``b``, ``c``
    given as ints; ``int_bits`` (32 or 64) is the BLAS integer width."""
    signature = types.void(address, int_bits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc)

    def codegen(context, builder, sig, args):
        (address, int_bits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
         ldc) = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        real = context.get_value_type(sig.args[7])
        pointer = ir.IntType(8).as_pointer()

        def call(width):
            to_int = (lambda v: builder.trunc(v, width)) if width is i32 else (lambda v: v)
            function = ir.FunctionType(ir.VoidType(), [i32, i32, i32, width, width, width,
                                                       real, pointer, width, pointer, width,
                                                       real, pointer, width])
            target = builder.inttoptr(address, function.as_pointer())
            builder.call(target, [
                ir.Constant(i32, blas.ROW_MAJOR), builder.trunc(trans_a, i32),
                builder.trunc(trans_b, i32), to_int(m), to_int(n), to_int(k), alpha,
                builder.inttoptr(a, pointer), to_int(lda), builder.inttoptr(b, pointer),
                to_int(ldb), beta, builder.inttoptr(c, pointer), to_int(ldc)])

        is64 = builder.icmp_signed("==", int_bits, ir.Constant(int_bits.type, 64))
        with builder.if_else(is64) as (wide, narrow):
            with wide:
                call(i64)
            with narrow:
                call(i32)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _blas_get_threads(typingctx, address):
    """``openblas_get_num_threads()`` at ``address``."""
    def codegen(context, builder, sig, args):
        function = ir.FunctionType(ir.IntType(32), [])
        result = builder.call(builder.inttoptr(args[0], function.as_pointer()), [])
        return builder.sext(result, ir.IntType(64))
    return types.int64(address), codegen


@intrinsic
def _blas_set_threads(typingctx, address, count):
    """``openblas_set_num_threads(count)`` at ``address``."""
    def codegen(context, builder, sig, args):
        function = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
        builder.call(builder.inttoptr(args[0], function.as_pointer()),
                     [builder.trunc(args[1], ir.IntType(32))])
        return context.get_dummy_value()
    return types.void(address, count), codegen


@intrinsic
def _packed_panels(typingctx, address, a, m, k, packed, n, accumulate, out, lo, hi):
    """Call fastgrad's packed-operand product at ``address`` (``fg_gemm_packed_panels_*``,
    :data:`fastgrad.backends.blas.PACKED_PANELS`) on panels ``[lo, hi)``; pointers as ints."""
    signature = types.void(address, a, m, k, packed, n, accumulate, out, lo, hi)

    def codegen(context, builder, sig, args):
        address, a, m, k, packed, n, accumulate, out, lo, hi = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        pointer = ir.IntType(8).as_pointer()
        function = ir.FunctionType(ir.VoidType(), [pointer, i64, i64, pointer, i64, i32,
                                                   pointer, i64, i64])
        builder.call(builder.inttoptr(address, function.as_pointer()), [
            builder.inttoptr(a, pointer), m, k, builder.inttoptr(packed, pointer), n,
            builder.trunc(accumulate, i32), builder.inttoptr(out, pointer), lo, hi])
        return context.get_dummy_value()

    return signature, codegen


if numba.config.DISABLE_JIT:  # the jitted bodies run as plain Python: the same calls
    _blas_gemm, _blas_get_threads, _blas_set_threads, _packed_panels = blas.python_calls()


# ---------------------------------------------------------------------------- the blocking
@config.jit()
def _gemm_pieces(rows, cols, depth):
    """``(blocks, along_rows)``: how many blocks a (rows, cols) output of inner size ``depth``
    is cut into, and whether along its rows (else its columns). From the shapes only."""
    along_rows = rows > cols
    side = rows if along_rows else cols
    by_work = (rows * cols * depth) // MIN_BLOCK_WORK
    by_side = (side + ALIGN - 1) // ALIGN
    return max(1, min(MAX_BLOCKS, by_work, by_side)), along_rows


@config.jit()
def _piece_bounds(side, blocks, p):
    """The half-open range ``[lo, hi)`` of block ``p`` of ``blocks`` over ``side``: equal
    shares rounded to multiples of :data:`ALIGN`, the last block taking the rest."""
    units = (side + ALIGN - 1) // ALIGN
    lo = min(side, (units * p // blocks) * ALIGN)
    hi = side if p == blocks - 1 else min(side, (units * (p + 1) // blocks) * ALIGN)
    return lo, hi


@config.jit()
def _gemm_block(addresses, a, b, trans_a, trans_b, alpha, beta, out, along_rows, lo, hi):
    """``out = alpha * op(a) @ op(b) + beta * out`` on the rows (``along_rows``) or the
    columns ``[lo, hi)`` of ``out``: one BLAS call on the calling thread."""
    rows, cols = out.shape
    depth = a.shape[0] if trans_a else a.shape[1]
    if hi <= lo:
        return
    size = out.itemsize
    # as int64: uintp + int64 would be typed float64
    a_at, b_at = np.int64(a.ctypes.data), np.int64(b.ctypes.data)
    out_at = np.int64(out.ctypes.data)
    m, n = rows, cols
    if along_rows:
        m = hi - lo
        a_at += size * (lo if trans_a else lo * a.shape[1])
        out_at += size * lo * cols
    else:
        n = hi - lo
        b_at += size * (lo * b.shape[1] if trans_b else lo)
        out_at += size * lo
    address = addresses[0] if size == 4 else addresses[1]
    _blas_gemm(address, addresses[4], _TRANS if trans_a else _NO_TRANS,
               _TRANS if trans_b else _NO_TRANS, m, n, depth, alpha, a_at, a.shape[1], b_at,
               b.shape[1], beta, out_at, cols)


@config.jit()
def _blas_single_thread(addresses):
    """Set BLAS to one thread; returns the count to restore with :func:`_blas_restore` (1, and
    nothing set, for a GEMM without threads: fastgrad's own)."""
    if addresses[2] == 0:
        return np.int64(1)
    previous = _blas_get_threads(addresses[2])
    if previous != 1:
        _blas_set_threads(addresses[3], np.int64(1))
    return previous


@config.jit()
def _blas_restore(addresses, previous):
    if previous != 1:
        _blas_set_threads(addresses[3], previous)


@config.jit(exact=True)
def _epilogue_block(out, bias, has_bias, activation, along_rows, lo, hi):
    """``out = act(out + bias)`` in place over the rows (``along_rows``) or the columns
    ``[lo, hi)`` of ``out``: a block of :func:`_gemm_block`."""
    rows, cols = out.shape
    r0, r1, c0, c1 = (lo, hi, 0, cols) if along_rows else (0, rows, lo, hi)
    for n in range(r0, r1):
        if has_bias:
            for k in range(c1 - c0):
                j = _col(c0, k)
                out[n, j] += bias[j]
        _activate_in_place(out, n, c0, c1 - c0, activation)


@config.jit(parallel=True, exact=True)
def _gemm_epilogue(addresses, a, b, trans_a, trans_b, alpha, beta, out, bias, has_bias,
                   activation):
    """``out = act(alpha * op(a) @ op(b) + beta * out + bias)``, block by block: each block's
    GEMM and then its epilogue (skipped without bias and activation) on one thread."""
    rows, cols = out.shape
    depth = a.shape[0] if trans_a else a.shape[1]
    blocks, along_rows = _gemm_pieces(rows, cols, depth)
    side = rows if along_rows else cols
    epilogue = has_bias or activation != _NONE
    if blocks == 1:
        serial = rows * cols * depth <= BLAS_SERIAL_WORK
        previous = np.int64(1) if serial else _blas_single_thread(addresses)
        _gemm_block(addresses, a, b, trans_a, trans_b, alpha, beta, out, along_rows,
                    np.int64(0), side)
        if epilogue:
            _epilogue_block(out, bias, has_bias, activation, along_rows, np.int64(0), side)
        _blas_restore(addresses, previous)
        return
    previous = _blas_single_thread(addresses)
    for p in prange(blocks):
        lo, hi = _piece_bounds(side, blocks, p)
        _gemm_block(addresses, a, b, trans_a, trans_b, alpha, beta, out, along_rows, lo, hi)
        if epilogue:
            _epilogue_block(out, bias, has_bias, activation, along_rows, lo, hi)
    _blas_restore(addresses, previous)


# -------------------------------------------------------------------------------- drivers
@config.jit(parallel=True, exact=True)
def _activation_fwd(x, activation, out, parallel_min):
    n = x.size
    if n < parallel_min:
        _activate_or_copy(x, out, activation)
    else:
        for p in prange((n + CHUNK - 1) // CHUNK):
            lo, hi = p * CHUNK, min(n, (p + 1) * CHUNK)
            _activate_or_copy(x[lo:hi], out[lo:hi], activation)


@config.jit(parallel=True, exact=True)
def _activation_bwd(grad_out, out, activation, grad_in, parallel_min):
    n = grad_out.size
    if n < parallel_min:
        _derivative_or_copy(grad_out, out, activation, grad_in)
    else:
        for p in prange((n + CHUNK - 1) // CHUNK):
            lo, hi = p * CHUNK, min(n, (p + 1) * CHUNK)
            _derivative_or_copy(grad_out[lo:hi], out[lo:hi], activation, grad_in[lo:hi])


@config.jit(parallel=True, exact=True)
def _linear_epilogue(out, bias, has_bias, activation, parallel_min):
    """``out[n] = act(out[n] + bias)`` for every row, in place."""
    rows, cols = out.shape
    if rows * cols < parallel_min:
        _epilogue_block(out, bias, has_bias, activation, True, np.int64(0), rows)
    else:
        per = max(1, CHUNK // max(1, cols))
        for p in prange((rows + per - 1) // per):
            _epilogue_block(out, bias, has_bias, activation, True, p * per,
                            min(rows, (p + 1) * per))


@config.jit(exact=True)
def _linear_grad_piece(grad_out, out, activation, g, acc, want_bias, lo, hi):
    """Rows [lo, hi): ``g = grad_out * act'(out)`` (without an activation g is grad_out),
    and with ``want_bias`` ``acc += g`` row by row (indexed: no view per row to add)."""
    source = grad_out if activation == _NONE else g
    for n in range(lo, hi):
        if activation != _NONE:
            _derivative(grad_out[n], out[n], activation, g[n])
        if want_bias:
            for j in range(acc.size):
                acc[j] += source[n, j]


@config.jit(parallel=True, exact=True)
def _linear_grad(grad_out, out, activation, g, grad_bias, want_bias, parallel_min):
    """``g = grad_out * act'(out)`` (when there is an activation) and, when ``want_bias``,
    ``grad_bias = g.sum(0)`` from per-piece float64 partials added in piece order."""
    rows, cols = grad_out.shape
    per = _rows_per_piece(rows, cols)
    pieces = (rows + per - 1) // per
    partial = _zeros(pieces if want_bias else 1, cols)
    if rows * cols < parallel_min:
        for p in range(pieces):
            acc = partial[p] if want_bias else partial[0]
            _linear_grad_piece(grad_out, out, activation, g, acc, want_bias, p * per,
                               min(rows, (p + 1) * per))
    else:
        for p in prange(pieces):
            acc = partial[p] if want_bias else partial[0]
            _linear_grad_piece(grad_out, out, activation, g, acc, want_bias, p * per,
                               min(rows, (p + 1) * per))
    if want_bias:
        _sum_rows(partial, grad_bias)


@config.jit()
def _total(counts):
    """The sum of a (pieces, 1) array of counts, as an int."""
    total = 0
    for p in range(counts.shape[0]):
        total += int(counts[p, 0])
    return total


@config.jit()
def _cross_entropy_rows(logits, target, ignore_index, loss, lse, lo, hi):
    """Rows [lo, hi) of the forward; returns how many targets were out of range."""
    classes = logits.shape[1]
    bad = 0
    for n in range(lo, hi):
        row = logits[n]
        top = float(_row_max(row))
        total = top + math.log(_sum_exp(row, top))
        lse[n] = total
        t = target[n]
        if t == ignore_index:
            loss[n] = 0.0
            continue
        t = t + classes if t < 0 else t  # negative indices count from the end, as in NumPy
        if t < 0 or t >= classes:
            loss[n] = np.nan
            bad += 1
        else:
            loss[n] = total - row[t]
    return bad


@config.jit(parallel=True)
def _cross_entropy_fwd(logits, target, ignore_index, loss, lse, parallel_min):
    rows, classes = logits.shape
    if rows * classes < parallel_min:
        return _cross_entropy_rows(logits, target, ignore_index, loss, lse, np.int64(0), rows)
    per = max(1, CHUNK // classes)
    pieces = (rows + per - 1) // per
    bad = _zeros(pieces, 1)
    for p in prange(pieces):
        bad[p, 0] = _cross_entropy_rows(logits, target, ignore_index, loss, lse, p * per,
                                        min(rows, (p + 1) * per))
    return _total(bad)


@config.jit()
def _cross_entropy_grad_rows(logits, target, lse, ignore_index, grad_loss, grad_logits, lo,
                             hi):
    classes = logits.shape[1]
    bad = 0
    for n in range(lo, hi):
        t = target[n]
        kept = t != ignore_index
        # ignored rows are multiplied by 0, as in the reference: a NaN or inf logit stays NaN
        weight = float(grad_loss[n]) if kept else 0.0
        _softmax_grad(logits[n], lse[n], weight, grad_logits[n])
        if kept:
            t = t + classes if t < 0 else t
            if t < 0 or t >= classes:
                bad += 1
            else:
                grad_logits[n, t] = (_exp64(logits[n, t] - lse[n]) - 1.0) * weight
    return bad


@config.jit(parallel=True)
def _cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits,
                       parallel_min):
    rows, classes = logits.shape
    if rows * classes < parallel_min:
        return _cross_entropy_grad_rows(logits, target, lse, ignore_index, grad_loss,
                                        grad_logits, np.int64(0), rows)
    per = max(1, CHUNK // max(1, classes))
    pieces = (rows + per - 1) // per
    bad = _zeros(pieces, 1)
    for p in prange(pieces):
        bad[p, 0] = _cross_entropy_grad_rows(logits, target, lse, ignore_index, grad_loss,
                                             grad_logits, p * per, min(rows, (p + 1) * per))
    return _total(bad)


# -------------------------------------------------------------------------------- batchnorm
# x (N, C, S) is walked as x2 (N, C * S) in tiles: a piece of rows by a block. Narrow
# layouts (S < BN_COLS) cut a row into blocks of whole channels, about BN_COLS positions: a
# block's per-channel coefficients expand to a short per-position buffer, every row of the
# tile is one vectorised loop over positions, and sums go to per-position float64
# accumulators (in L1) before being added per channel. Wide layouts (S >= BN_COLS) cut a row
# into blocks of whole channels, about BN_WIDE_COLS positions, walked row by row: each
# channel's segment is contiguous, its coefficients scalars, its sums vectorised reductions.
# Partials, one per (piece, channel), are added per channel in piece order (_sum_rows). The
# tiles depend on the shape only, so the sums are bit-identical for every thread count.
# The loops index the 2-D arrays themselves at (row, _col(first column, k)), not a view per
# row: a view costs about 100 ns to make and pass (reference counts, its structure), three
# times the work of a 64-wide row, and 1.2x the time of the indexed loop even at 1024 wide.
#: Positions per block of a narrow layout, and the spatial size from which a layout is wide.
BN_COLS = 512

#: Tiles aimed at in a narrow layout, for balance across threads, by cutting the rows into
#: pieces of >= 32 rows.
BN_TASKS = 16

#: Positions of a row per block of a wide layout (whole channels; one if longer): a tile
#: walks its rows one after the other, so it reads long contiguous runs (a tile of one
#: channel jumped a row's length at every segment: 1.3x slower, measured in the C backend).
BN_WIDE_COLS = 16384


@config.jit()
def _bn_layout(rows, channels, spatial):
    """``(pieces, per, blocks, slots, wide)`` of a batchnorm over (rows, channels, spatial):
    pieces of ``per`` rows by ``blocks`` of ``slots`` channels each (1 when ``wide``)."""
    wide = spatial >= BN_COLS
    if wide:  # blocks of about BN_WIDE_COLS positions, whole channels, balanced
        most = max(1, BN_WIDE_COLS // spatial)
        blocks = (channels + most - 1) // most
        slots = (channels + blocks - 1) // blocks if blocks else 1
        blocks = (channels + slots - 1) // slots
        pieces = (rows * spatial + CHUNK - 1) // CHUNK  # pieces of about CHUNK elements
    else:
        slots = BN_COLS // spatial
        blocks = (channels + slots - 1) // slots
        pieces = min((BN_TASKS + blocks - 1) // max(1, blocks), rows // 32)
    pieces = max(1, min(pieces, MAX_PIECES))
    per = (rows + pieces - 1) // pieces
    return (rows + per - 1) // per, per, blocks, slots, wide


@config.jit()
def _bn_expand(coef, spatial, c0, c1):
    """Per-channel coefficients (R, C) of channels [c0, c1) as per-position rows, and the
    block's first position in them: ``coef`` itself when S is 1 (a position is a channel)."""
    if spatial == 1:
        return coef, c0
    block = np.empty((coef.shape[0], (c1 - c0) * spatial), coef.dtype)
    for r in range(coef.shape[0]):
        row = block[r]
        for c in range(c0, c1):
            row[(c - c0) * spatial:(c - c0 + 1) * spatial] = coef[r, c]
    return block, np.int64(0)


@config.jit()
def _accumulate_shifted(acc, acc_sq, x, n, lo, shift):
    """``acc += sum(d_i)`` and ``acc_sq += sum(d_i**2)``, ``d_i = x[n + i, lo:] - shift``
    over four rows, elementwise in float64 (four rows a pass: a quarter of the
    accumulators' loads and stores, the cost of this loop when the rows are in cache)."""
    for k in range(acc.size):
        j = _col(lo, k)
        s = shift[k]
        d0, d1, d2, d3 = x[n, j] - s, x[n + 1, j] - s, x[n + 2, j] - s, x[n + 3, j] - s
        acc[k] += (d0 + d1) + (d2 + d3)
        acc_sq[k] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@config.jit()
def _accumulate_products(acc_dy, acc_dyx, dy, x, n, lo, mean):
    """``acc_dy += sum(dy_i)`` and ``acc_dyx += sum(dy_i * (x_i - mean))`` over the four
    rows ``n + i`` from column ``lo``, elementwise in float64 (as :func:`_accumulate_shifted`)."""
    for k in range(acc_dy.size):
        j = _col(lo, k)
        m = mean[k]
        e0, e1, e2, e3 = float(dy[n, j]), float(dy[n + 1, j]), float(dy[n + 2, j]), float(
            dy[n + 3, j])
        acc_dy[k] += (e0 + e1) + (e2 + e3)
        acc_dyx[k] += (e0 * (x[n, j] - m) + e1 * (x[n + 1, j] - m)) + (
            e2 * (x[n + 2, j] - m) + e3 * (x[n + 3, j] - m))


@config.jit()
def _last_rows(a, n, stop, lo, fill):
    """Rows ``n .. stop - 1`` (one to three) of ``a`` from column ``lo`` as a block of four
    rows of ``fill.size`` columns, the rows past ``stop`` being ``fill``: the tile's last pass
    of four rows, with fill rows that add nothing (dy = 0, or x = the shift)."""
    block = np.empty((4, fill.size), a.dtype)
    for i in range(4):
        if n + i < stop:
            block[i] = a[n + i, lo:lo + fill.size]
        else:
            block[i] = fill
    return block


@config.jit()
def _segment_sums(first, second, n, lo, length, value, grads):
    """Over row ``n``'s columns ``[lo, lo + length)``, in float64: ``(sum(x - value),
    sum((x - value)**2))`` with ``first`` x, or with ``grads`` ``(sum(dy), sum(dy * (x -
    value)))``, ``first`` dy and ``second`` x. Vectorised reductions (reassociation allowed:
    a fixed order per segment length)."""
    total_a = 0.0
    total_b = 0.0
    if grads:
        for k in range(length):
            j = _col(lo, k)
            d = float(first[n, j])
            total_a += d
            total_b += d * (second[n, j] - value)
    else:
        for k in range(length):
            d = first[n, _col(lo, k)] - value
            total_a += d
            total_b += d * d
    return total_a, total_b


@config.jit()
def _bn_sums_tile(first, second, channels, spatial, coef, grads, part_a, part_b, tile,
                  layout):
    """One tile of the two per-channel sums into ``part_*[piece, channel]``. ``grads``
    False: ``first`` is x, ``coef`` (1, C) the shift; sums of ``x - shift`` and of its square.
    True: ``first`` is dy, ``second`` x, ``coef`` (1, C) the mean; sums of ``dy`` and of
    ``dy * (x - mean)``."""
    pieces, per, blocks, slots, wide = layout
    p, b = tile // blocks, tile % blocks
    start, stop = p * per, min(first.shape[0], (p + 1) * per)
    c0, c1 = b * slots, min(channels, (b + 1) * slots)
    lo, hi = c0 * spatial, c1 * spatial
    if wide:  # rows one after the other, each channel's segment a vectorised reduction
        for c in range(c0, c1):
            part_a[p, c] = 0.0
            part_b[p, c] = 0.0
        for n in range(start, stop):
            for c in range(c0, c1):
                a, e = _segment_sums(first, second, n, c * spatial, spatial, coef[0, c], grads)
                part_a[p, c] += a
                part_b[p, c] += e
        return
    at, k = _bn_expand(coef, spatial, c0, c1)
    values = at[0, k:k + hi - lo]
    acc_a, acc_b = np.zeros(hi - lo), np.zeros(hi - lo)
    last = stop - (stop - start) % 4
    for n in range(start, last, 4):
        if grads:
            _accumulate_products(acc_a, acc_b, first, second, n, lo, values)
        else:
            _accumulate_shifted(acc_a, acc_b, first, n, lo, values)
    if last < stop:  # one to three rows, and fill rows that add nothing
        zero = np.int64(0)
        if grads:
            pad = np.zeros(hi - lo, first.dtype)
            _accumulate_products(acc_a, acc_b, _last_rows(first, last, stop, lo, pad),
                                 _last_rows(second, last, stop, lo, pad), zero, zero, values)
        else:  # the shift is an element of x, so exact in x's dtype: x - shift is 0
            _accumulate_shifted(acc_a, acc_b,
                                _last_rows(first, last, stop, lo, values.astype(first.dtype)),
                                zero, zero, values)
    if spatial == 1:
        part_a[p, c0:c1] = acc_a
        part_b[p, c0:c1] = acc_b
        return
    for c in range(c0, c1):  # per channel: its positions in order
        total_a = 0.0
        total_b = 0.0
        for j in range((c - c0) * spatial, (c - c0 + 1) * spatial):
            total_a += acc_a[j]
            total_b += acc_b[j]
        part_a[p, c] = total_a
        part_b[p, c] = total_b


@config.jit(parallel=True)
def _bn_sums_tiles(first, second, channels, spatial, coef, grads, part_a, part_b, layout,
                   parallel_min):
    """Every tile of :func:`_bn_sums_tile` (only the loop: a parallel driver that also ran the
    serial totals after it did not run its tiles in parallel)."""
    rows, width = first.shape
    if rows * width < parallel_min:
        for tile in range(layout[0] * layout[2]):
            _bn_sums_tile(first, second, channels, spatial, coef, grads, part_a, part_b, tile,
                          layout)
    else:
        for tile in prange(layout[0] * layout[2]):
            _bn_sums_tile(first, second, channels, spatial, coef, grads, part_a, part_b, tile,
                          layout)


@config.jit()
def _bn_sums(first, second, channels, spatial, coef, grads, total_a, total_b, parallel_min):
    """Per-channel float64 sums over (N, S) into ``total_a`` and ``total_b`` (see
    :func:`_bn_sums_tile`), one read of the inputs."""
    layout = _bn_layout(first.shape[0], channels, spatial)
    part_a = np.empty((layout[0], channels))
    part_b = np.empty((layout[0], channels))
    _bn_sums_tiles(first, second, channels, spatial, coef, grads, part_a, part_b, layout,
                   parallel_min)
    _sum_rows(part_a, total_a)
    _sum_rows(part_b, total_b)


@config.jit()
def _split(coef, row, value):
    """``coef[row:row + 2, :]`` = the float64 ``value`` as two parts of coef's dtype whose sum
    is ``value`` to float64 precision (for :func:`_affine`)."""
    for c in range(value.size):
        coef[row, c] = value[c]
        coef[row + 1, c] = value[c] - coef[row, c]


@config.jit()
def _bn_statistics(x2, channels, spatial, eps, mean, var, invstd, weight, bias, has_weight,
                   has_bias, parallel_min):
    """Mean, biased variance and invstd of each channel from one read of x: sums of
    ``x - shift`` and of its square in float64, the shift a sample of the channel (its first
    element), so ``var = E[d**2] - E[d]**2`` loses nothing to cancellation (|E[d]| is of the
    order of the spread). Returns the output's coefficients of :func:`_bn_map_tile`."""
    shift = np.empty((1, channels))
    for c in range(channels):
        shift[0, c] = x2[0, c * spatial]
    _bn_sums(x2, x2, channels, spatial, shift, False, mean, var, parallel_min)
    count = x2.shape[0] * spatial
    coef = np.empty((4, channels), x2.dtype)
    for c in range(channels):
        d = mean[c] / count
        mean[c] = shift[0, c] + d
        v = var[c] / count - d * d
        var[c] = 0.0 if v < 0.0 else v  # rounding only; NaN stays NaN
        invstd[c] = 1.0 / np.sqrt(var[c] + eps)
        coef[2, c] = invstd[c] * weight[c] if has_weight else invstd[c]
        coef[3, c] = bias[c] if has_bias else 0.0
    _split(coef, 0, mean)
    return coef


@config.jit()
def _bn_grad_sums(dy2, x2, channels, spatial, mean, invstd, weight, has_weight, grad_weight,
                  has_grad_weight, grad_bias, has_grad_bias, parallel_min):
    """Both per-channel sums of the backward, from one read of dy and x, into the parameter
    gradients; returns the input gradient's coefficients of :func:`_bn_map_tile`."""
    sum_dy, sum_dy_x_hat = np.empty(channels), np.empty(channels)
    _bn_sums(dy2, x2, channels, spatial, mean.reshape(1, channels), True, sum_dy,
             sum_dy_x_hat, parallel_min)
    count = x2.shape[0] * spatial
    coef = np.empty((5, channels), x2.dtype)
    for c in range(channels):
        sum_dy_x_hat[c] *= invstd[c]
        if has_grad_bias:
            grad_bias[c] = sum_dy[c]
        if has_grad_weight:
            grad_weight[c] = sum_dy_x_hat[c]
        coef[2, c] = sum_dy[c] / count
        coef[3, c] = invstd[c] * sum_dy_x_hat[c] / count
        coef[4, c] = invstd[c] * weight[c] if has_weight else invstd[c]
    _split(coef, 0, mean)
    return coef


@config.jit(exact=True)
def _bn_running(running_mean, running_var, mean, var, momentum, count):
    """``running = running * (1 - momentum) + factor * batch`` in float64, rounded once (the
    variance's factor ``momentum * M / (M - 1)``): the reference's operations in its order."""
    unbiased = momentum * (count / (count - 1))
    for c in range(mean.size):
        running_mean[c] = np.float64(running_mean[c]) * (1.0 - momentum) + momentum * mean[c]
        running_var[c] = np.float64(running_var[c]) * (1.0 - momentum) + unbiased * var[c]


@config.jit()
def _bn_forward(x2, out2, channels, spatial, eps, activation, running_mean, running_var,
                has_running, momentum, mean, var, invstd, weight, bias, has_weight, has_bias,
                parallel_min):
    """:func:`batchnorm_fwd`'s passes in one call (a small layer's is mostly calls): the
    statistics, the running ones, then the output with its activation, applied while each row
    piece is in cache."""
    coef = _bn_statistics(x2, channels, spatial, eps, mean, var, invstd, weight, bias,
                          has_weight, has_bias, parallel_min)
    if has_running:
        _bn_running(running_mean, running_var, mean, var, momentum, x2.shape[0] * spatial)
    _bn_map(x2, x2, out2, channels, spatial, coef, np.bool_(False), activation, parallel_min)


@config.jit()
def _bn_backward(grad_out2, out2, activation, x2, grad_x2, has_grad_x, channels, spatial, mean,
                 invstd, weight, has_weight, grad_weight, has_grad_weight, grad_bias,
                 has_grad_bias, parallel_min, activation_parallel_min):
    """:func:`batchnorm_bwd`'s passes in one call: the activation's derivative (as
    :func:`_activation_bwd` computes it, so a fused layer's gradients are the unfused
    layers'), both sums, then ``grad_x``."""
    dy2 = grad_out2
    if activation != _NONE:
        dy2 = np.empty_like(grad_out2)
        _activation_bwd(grad_out2.reshape(-1), out2.reshape(-1), activation, dy2.reshape(-1),
                        activation_parallel_min)
    coef = _bn_grad_sums(dy2, x2, channels, spatial, mean, invstd, weight, has_weight,
                         grad_weight, has_grad_weight, grad_bias, has_grad_bias, parallel_min)
    if has_grad_x:
        _bn_map(dy2, x2, grad_x2, channels, spatial, coef, np.bool_(True), np.int64(_NONE),
                parallel_min)


@config.jit(exact=True)
def _affine(x, out, r0, r1, lo, mean_hi, mean_lo, scale, shift):
    """``out = ((x - mean_hi) - mean_lo) * scale + shift`` over rows [r0, r1) from column
    ``lo``, in x's dtype, the coefficients per position. The mean comes as two numbers of x's
    dtype whose sum is the float64 mean (``exact``: no reassociation may fold them): ``x -
    mean_hi`` is exact near the mean, so nothing is lost to cancellation when |mean| >> std,
    at float32's speed. Two rows a pass: each coefficient loaded once for both (1.2x faster
    on one thread at (256, 1024); four rows a pass were slower again)."""
    n = r0
    while n + 2 <= r1:
        for k in range(mean_hi.size):
            j = _col(lo, k)
            a, b, c, d = mean_hi[k], mean_lo[k], scale[k], shift[k]
            out[n, j] = ((x[n, j] - a) - b) * c + d
            out[n + 1, j] = ((x[n + 1, j] - a) - b) * c + d
        n += 2
    if n < r1:
        for k in range(mean_hi.size):
            j = _col(lo, k)
            out[n, j] = ((x[n, j] - mean_hi[k]) - mean_lo[k]) * scale[k] + shift[k]


@config.jit(exact=True)
def _affine_segment(x, out, n, lo, length, mean_hi, mean_lo, scale, shift):
    """:func:`_affine` over ``length`` columns with one channel's coefficients."""
    for k in range(length):
        j = _col(lo, k)
        out[n, j] = ((x[n, j] - mean_hi) - mean_lo) * scale + shift


@config.jit(exact=True)
def _bn_input_grad(dy, x, grad_x, r0, r1, lo, mean_hi, mean_lo, a, b, k):
    """``grad_x = ((dy - a) - ((x - mean_hi) - mean_lo) * b) * k`` over rows [r0, r1) from
    column ``lo``, in x's dtype, the mean split as in :func:`_affine`; two rows a pass."""
    n = r0
    while n + 2 <= r1:
        for i in range(mean_hi.size):
            j = _col(lo, i)
            m, e, f, g, h = mean_hi[i], mean_lo[i], a[i], b[i], k[i]
            grad_x[n, j] = ((dy[n, j] - f) - ((x[n, j] - m) - e) * g) * h
            grad_x[n + 1, j] = ((dy[n + 1, j] - f) - ((x[n + 1, j] - m) - e) * g) * h
        n += 2
    if n < r1:
        for i in range(mean_hi.size):
            j = _col(lo, i)
            grad_x[n, j] = ((dy[n, j] - a[i]) - ((x[n, j] - mean_hi[i]) - mean_lo[i]) * b[i]) \
                * k[i]


@config.jit(exact=True)
def _bn_input_grad_segment(dy, x, grad_x, n, lo, length, mean_hi, mean_lo, a, b, k):
    """:func:`_bn_input_grad` over ``length`` columns with one channel's coefficients."""
    for i in range(length):
        j = _col(lo, i)
        grad_x[n, j] = ((dy[n, j] - a) - ((x[n, j] - mean_hi) - mean_lo) * b) * k


@config.jit()
def _bn_map_tile(dy, x, out, channels, spatial, coef, grads, activation, tile, layout):
    """One tile of the elementwise pass, coefficients of x's dtype: ``grads`` False, ``out``
    is :func:`_affine` with ``coef`` rows (mean_hi, mean_lo, scale, shift), then the
    activation row by row (:func:`_activate_in_place`, the activation kernel's formulas);
    True, ``out`` is :func:`_bn_input_grad` with rows (mean_hi, mean_lo, a, b, k)."""
    pieces, per, blocks, slots, wide = layout
    p, b = tile // blocks, tile % blocks
    stop = min(x.shape[0], (p + 1) * per)
    c0, c1 = b * slots, min(channels, (b + 1) * slots)
    lo, hi = c0 * spatial, c1 * spatial
    if wide:
        for n in range(p * per, stop):
            for c in range(c0, c1):
                if grads:
                    _bn_input_grad_segment(dy, x, out, n, c * spatial, spatial, coef[0, c],
                                           coef[1, c], coef[2, c], coef[3, c], coef[4, c])
                else:
                    _affine_segment(x, out, n, c * spatial, spatial, coef[0, c], coef[1, c],
                                    coef[2, c], coef[3, c])
                    _activate_in_place(out, n, c * spatial, spatial, activation)
        return
    at, k = _bn_expand(coef, spatial, c0, c1)
    k0, k1 = k, k + hi - lo
    m_hi, m_lo, e, f = at[0, k0:k1], at[1, k0:k1], at[2, k0:k1], at[3, k0:k1]
    if grads:
        _bn_input_grad(dy, x, out, p * per, stop, lo, m_hi, m_lo, e, f, at[4, k0:k1])
    else:
        _affine(x, out, p * per, stop, lo, m_hi, m_lo, e, f)
        if activation != _NONE:
            for n in range(p * per, stop):
                _activate_in_place(out, n, lo, hi - lo, activation)


@config.jit(parallel=True)
def _bn_map(dy, x, out, channels, spatial, coef, grads, activation, parallel_min):
    """The elementwise pass of :func:`_bn_map_tile` over every tile."""
    rows, width = x.shape
    layout = _bn_layout(rows, channels, spatial)
    tiles = layout[0] * layout[2]
    if rows * width < parallel_min:
        for tile in range(tiles):
            _bn_map_tile(dy, x, out, channels, spatial, coef, grads, activation, tile, layout)
    else:
        for tile in prange(tiles):
            _bn_map_tile(dy, x, out, channels, spatial, coef, grads, activation, tile, layout)


@config.jit()
def _lstm_rows(gates, c_prev, gates_act, h, c, lo, hi):
    # the activations by gate block through _activate, each block one vectorised loop (one
    # compiled copy of sigmoid and tanh); the cell and output from the stored (rounded)
    # activations, as the reference computes them
    hidden = c.shape[1]
    sigmoid, tanh = np.int64(_SIGMOID), np.int64(_TANH)  # not literals: one _activate compiled
    for n in range(lo, hi):
        z, act = gates[n], gates_act[n]
        cp, hn, cn = c_prev[n], h[n], c[n]
        _activate(z[:2 * hidden], act[:2 * hidden], sigmoid)
        _activate(z[2 * hidden:3 * hidden], act[2 * hidden:3 * hidden], tanh)
        _activate(z[3 * hidden:], act[3 * hidden:], sigmoid)
        i, f = act[:hidden], act[hidden:2 * hidden]
        g, o = act[2 * hidden:3 * hidden], act[3 * hidden:]
        for j in range(hidden):
            cn[j] = f[j] * cp[j] + i[j] * g[j]
        _activate(cn, hn, tanh)
        for j in range(hidden):
            hn[j] *= o[j]


@config.jit(parallel=True)
def _lstm_fwd(gates, c_prev, gates_act, h, c, parallel_min):
    rows = gates.shape[0]
    if gates.size < parallel_min:
        _lstm_rows(gates, c_prev, gates_act, h, c, np.int64(0), rows)
    else:
        per = max(1, CHUNK // max(1, gates.shape[1]))
        for p in prange((rows + per - 1) // per):
            _lstm_rows(gates, c_prev, gates_act, h, c, p * per, min(rows, (p + 1) * per))


@config.jit()
def _lstm_grad_rows(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev,
                    want_c_prev, lo, hi):
    hidden = c.shape[1]
    tanh_c = np.empty(hidden, c.dtype)
    for n in range(lo, hi):
        act, gg = gates_act[n], grad_gates[n]
        gh, gc, cp = grad_h[n], grad_c[n], c_prev[n]
        _activate(c[n], tanh_c, np.int64(_TANH))
        i, f = act[:hidden], act[hidden:2 * hidden]
        g, o = act[2 * hidden:3 * hidden], act[3 * hidden:]
        gi, gf = gg[:hidden], gg[hidden:2 * hidden]
        gg_, go = gg[2 * hidden:3 * hidden], gg[3 * hidden:]
        for j in range(hidden):
            tc, dh = float(tanh_c[j]), float(gh[j])
            ij, fj, gj, oj = float(i[j]), float(f[j]), float(g[j]), float(o[j])
            cell = gc[j] + dh * oj * (1.0 - tc * tc)
            gi[j] = cell * gj * (ij * (1.0 - ij))
            gf[j] = cell * cp[j] * (fj * (1.0 - fj))
            gg_[j] = cell * ij * (1.0 - gj * gj)
            go[j] = dh * tc * (oj * (1.0 - oj))
            if want_c_prev:
                grad_c_prev[n, j] = cell * fj


@config.jit(parallel=True)
def _lstm_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev, want_c_prev,
              parallel_min):
    rows = gates_act.shape[0]
    if gates_act.size < parallel_min:
        _lstm_grad_rows(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev,
                        want_c_prev, np.int64(0), rows)
    else:
        per = max(1, CHUNK // max(1, gates_act.shape[1]))
        for p in prange((rows + per - 1) // per):
            _lstm_grad_rows(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev,
                            want_c_prev, p * per, min(rows, (p + 1) * per))


# ----------------------------------------------------------------------------- the kernels
def _threshold(name, activation):
    exp_heavy = activation in (_SIGMOID, _TANH)
    return PARALLEL_MIN[name + "_exp"] if exp_heavy else PARALLEL_MIN[name]


def activation_fwd(x, activation, out):
    """``out = act(x)`` elementwise: see :func:`fastgrad.backends.numpy_ref.activation_fwd`.
    One pass; sigmoid and tanh from the vectorised exp of this module."""
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if not _native(x.dtype, x, out):
        return _fallback("activation_fwd", x, activation, out)
    _activation_fwd(x.reshape(-1), activation, out.reshape(-1),
                    _threshold("activation", activation))


def activation_bwd(grad_out, out, activation, grad_in):
    """``grad_in = grad_out * act'(x)`` from the output: see
    :func:`fastgrad.backends.numpy_ref.activation_bwd`. One pass."""
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if not _native(out.dtype, grad_out, out, grad_in):
        return _fallback("activation_bwd", grad_out, out, activation, grad_in)
    _activation_bwd(grad_out.reshape(-1), out.reshape(-1), activation, grad_in.reshape(-1),
                    PARALLEL_MIN["activation"])


def _product(a, b, trans_a, trans_b, accumulate, out, bias=None, activation=_NONE):
    """``out = act(op(a) @ op(b) (+ out) (+ bias))`` on this module's threads (the arrays
    checked by the caller); False, with nothing written, when the reference must do it (no
    usable BLAS, or an empty inner dimension, which BLAS leaves to the caller)."""
    depth = a.shape[0] if trans_a else a.shape[1]
    if not blas.AVAILABLE or depth == 0:
        return False
    if out.size:
        one, zero = _ONE_ZERO[out.dtype]
        _gemm_epilogue(ADDRESSES, a, b, trans_a, trans_b, one, one if accumulate else zero,
                       out, _EMPTY[out.dtype] if bias is None else bias, bias is not None,
                       activation)
    return True


def gemm(a, b, trans_a, trans_b, accumulate, out):
    """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``): see
    :func:`fastgrad.backends.numpy_ref.gemm`. Fixed blocks on this module's threads, each one
    single-threaded BLAS call: bit-identical for any thread count."""
    if not _native(out.dtype, a, b, out):
        _fallback("gemm", a, b, trans_a, trans_b, accumulate, out)
    elif not _product(a, b, trans_a, trans_b, accumulate, out):
        _fallback("gemm", a, b, trans_a, trans_b, accumulate, out,
                  reason="an empty inner dimension" if blas.AVAILABLE else "no usable BLAS")


# ----------------------------------------------------------- products with a packed operand
#: ``(float32, float64)`` addresses of the C kernels' packed product (0: not built).
PACKED_PANELS = np.array(blas.PACKED_PANELS, np.int64)


#: Elements of op(b) from which packing runs in parallel (csrc's FG_PACK_PARALLEL_MIN).
PACK_PARALLEL_MIN = 1 << 18


@config.jit()
def _pack_panel(b, trans_b, packed, p):
    """Panel ``p`` of op(b) into ``packed[p]``, zeros past op(b)'s last column. A transposed
    b's rows are read along, 64 depths at a time (the panel's lines written meanwhile stay in
    L1); columns are indexed unsigned (:func:`_col`). Single thread, (2048, 512) float32:
    0.31 ms transposed, 0.11 ms not (rows by views and signed offsets: 0.83, 0.47 ms)."""
    depth, width = packed.shape[1], packed.shape[2]
    first = p * width
    used = min(width, (b.shape[0] if trans_b else b.shape[1]) - first)
    if trans_b:
        for d0 in range(0, depth, 64):
            size = min(depth - d0, 64)
            for j in range(used):
                row = first + j
                for d in range(size):
                    packed[p, _col(d0, d), j] = b[row, _col(d0, d)]
    else:
        for d in range(depth):
            for j in range(used):
                packed[p, d, j] = b[d, _col(first, j)]
    for d in range(depth):
        for j in range(used, width):
            packed[p, d, j] = 0


@config.jit(parallel=True)
def _gemm_pack(b, trans_b, packed, parallel_min):
    panels = packed.shape[0]
    if b.size < parallel_min:
        for p in range(panels):
            _pack_panel(b, trans_b, packed, p)
    else:
        for p in prange(panels):
            _pack_panel(b, trans_b, packed, p)


def gemm_pack(b, trans_b, packed):
    """Pack ``op(b)`` into column panels: see :func:`fastgrad.backends.numpy_ref.gemm_pack`."""
    depth, n = b.shape[::-1] if trans_b else b.shape
    if (not _native(packed.dtype, b, packed) or b.ndim != 2
            or packed.shape != _reference.packed_shape(depth, n, packed.dtype)):
        return _fallback("gemm_pack", b, trans_b, packed)
    _gemm_pack(b, trans_b, packed, PACK_PARALLEL_MIN)


@config.jit(parallel=True)
def _gemm_packed(address, a, packed, accumulate, out):
    """The panels cut into blocks (as many as the product has MIN_BLOCK_WORK multiply-adds,
    at most MAX_BLOCKS and one per 16 columns: csrc's fg_packed_blocks), each one call of the
    C product on one thread. Every element is the same sum whatever the blocks: bit-identical
    for any thread count."""
    rows, depth = a.shape
    cols = out.shape[1]
    panels = packed.shape[0]
    blocks = max(1, min(MAX_BLOCKS, (cols + 15) // 16, rows * cols * depth // MIN_BLOCK_WORK))
    a_at, packed_at = np.int64(a.ctypes.data), np.int64(packed.ctypes.data)
    out_at = np.int64(out.ctypes.data)
    flag = np.int64(1 if accumulate else 0)
    if blocks == 1:
        _packed_panels(address, a_at, rows, depth, packed_at, cols, flag, out_at, np.int64(0),
                       np.int64(panels))
    else:
        for q in prange(blocks):
            _packed_panels(address, a_at, rows, depth, packed_at, cols, flag, out_at,
                           np.int64(panels * q // blocks), np.int64(panels * (q + 1) // blocks))


def gemm_packed(a, packed, accumulate, out):
    """``out = a @ B`` (``+=`` with ``accumulate``) from B's panels: see
    :func:`fastgrad.backends.numpy_ref.gemm_packed`. Blocks of panels on this module's
    threads, each one call of fastgrad's C product (csrc/gemm.inc, through its address as
    BLAS is called); where the C kernels are not built, the reference."""
    if (not _native(out.dtype, a, packed, out) or a.ndim != 2 or out.ndim != 2
            or out.shape[0] != a.shape[0]
            or packed.shape != _reference.packed_shape(a.shape[1], out.shape[1], out.dtype)):
        return _fallback("gemm_packed", a, packed, accumulate, out)
    address = PACKED_PANELS[0 if out.dtype == np.float32 else 1]
    if address == 0:
        return _fallback("gemm_packed", a, packed, accumulate, out,
                         reason="the C kernels are not built")
    if out.size:
        _gemm_packed(address, a, packed, accumulate, out)


def linear_fwd(x, weight, bias, activation, out):
    """``out = act(x @ weight.T + bias)``: see :func:`fastgrad.backends.numpy_ref.linear_fwd`.
    Each block of the product gets its bias and activation right after its GEMM, on the same
    thread, while it is in cache."""
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if not _native(x.dtype, x, weight, bias, out):
        return _fallback("linear_fwd", x, weight, bias, activation, out)
    if _product(x, weight, False, True, False, out, bias, activation):
        return
    np.matmul(x, weight.T, out=out)
    if bias is not None or activation != _NONE:
        _linear_epilogue(out, _EMPTY[out.dtype] if bias is None else bias, bias is not None,
                         activation, _threshold("linear_epilogue", activation))


def _bind_linear_fwd(x, weight, bias, activation, out):
    """:func:`linear_fwd` for arguments like these (see :func:`fastgrad.backends.bind`): the
    checks of its compiled path done once; where that path does not apply, ``linear_fwd``."""
    if (activation not in ACTIVATION_CODES or not _native(x.dtype, x, weight, bias, out)
            or not blas.AVAILABLE or x.shape[1] == 0 or out.size == 0):
        return linear_fwd
    (one, zero), empty, has_bias = _ONE_ZERO[out.dtype], _EMPTY[out.dtype], bias is not None

    def bound(x, weight, bias, activation, out):
        _gemm_epilogue(ADDRESSES, x, weight, False, True, one, zero, out,
                       bias if has_bias else empty, has_bias, activation)
    return bound


linear_fwd.bind = _bind_linear_fwd


def _products_apply(grad_out):
    """True when :func:`linear_bwd`'s products run compiled (a usable BLAS, no empty side)."""
    return blas.AVAILABLE and grad_out.shape[0] > 0 and grad_out.shape[1] > 0


@config.jit()
def _linear_backward(addresses, grad_out, x, weight, out, activation, g, grad_x, has_grad_x,
                     grad_weight, has_grad_weight, grad_bias, has_grad_bias, one, zero,
                     parallel_min):
    """:func:`linear_bwd`'s passes in one call (a small layer's backward is mostly the
    calls: three dispatches and their Python took 3-4 us more): the derivative and bias
    pass into ``g`` (``grad_out`` itself without an activation), then the two products,
    each on this module's threads."""
    if activation != _NONE or has_grad_bias:
        _linear_grad(grad_out, out, activation, g, grad_bias, has_grad_bias, parallel_min)
    no, yes, none = np.bool_(False), np.bool_(True), np.int64(_NONE)  # not literals
    if has_grad_x and grad_x.size:
        _gemm_epilogue(addresses, g, weight, no, no, one, zero, grad_x, grad_bias, no, none)
    if has_grad_weight and grad_weight.size:
        _gemm_epilogue(addresses, g, x, yes, no, one, zero, grad_weight, grad_bias, no, none)


def linear_bwd(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
    """Gradients of :func:`linear_fwd`: see :func:`fastgrad.backends.numpy_ref.linear_bwd`.

    One pass computes ``g = grad_out * act'(out)`` and the bias gradient ``g.sum(0)`` (float64
    partials over fixed row pieces, added in order: deterministic); then the two GEMMs, as
    :func:`gemm`; all in one call of the compiled code. Products it cannot run (no usable
    BLAS, or an empty inner dimension) go to :func:`gemm`'s reference after it.
    """
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if not _native(x.dtype, grad_out, x, weight, out, grad_x, grad_weight, grad_bias):
        return _fallback("linear_bwd", grad_out, x, weight, out, activation, grad_x,
                         grad_weight, grad_bias)
    compiled = _products_apply(grad_out)
    g = grad_out if activation == _NONE else np.empty_like(grad_out)
    empty, (one, zero) = _EMPTY[x.dtype], _ONE_ZERO[x.dtype]
    _linear_backward(ADDRESSES, grad_out, x, weight, out, activation, g,
                     empty.reshape(0, 0) if grad_x is None else grad_x,
                     compiled and grad_x is not None,
                     empty.reshape(0, 0) if grad_weight is None else grad_weight,
                     compiled and grad_weight is not None,
                     empty if grad_bias is None else grad_bias, grad_bias is not None, one,
                     zero, PARALLEL_MIN["linear_grad"])
    if not compiled:
        if grad_x is not None:
            gemm(g, weight, False, False, False, grad_x)
        if grad_weight is not None:
            gemm(g, x, True, False, False, grad_weight)


def _bind_linear_bwd(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
    """:func:`linear_bwd` for arguments like these (see :func:`fastgrad.backends.bind`): the
    checks of its compiled path done once; where that path does not apply, ``linear_bwd``."""
    if (activation not in ACTIVATION_CODES
            or not _native(x.dtype, grad_out, x, weight, out, grad_x, grad_weight, grad_bias)
            or not _products_apply(grad_out)):
        return linear_bwd
    empty, (one, zero) = _EMPTY[x.dtype], _ONE_ZERO[x.dtype]
    empty2 = empty.reshape(0, 0)
    has_x, has_weight, has_bias = (grad_x is not None, grad_weight is not None,
                                   grad_bias is not None)

    def bound(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
        _linear_backward(ADDRESSES, grad_out, x, weight, out, activation,
                         grad_out if activation == _NONE else np.empty_like(grad_out),
                         grad_x if has_x else empty2, has_x,
                         grad_weight if has_weight else empty2, has_weight,
                         grad_bias if has_bias else empty, has_bias, one, zero,
                         PARALLEL_MIN["linear_grad"])
    return bound


linear_bwd.bind = _bind_linear_bwd


def cross_entropy_fwd(logits, target, ignore_index, loss, lse):
    """Per-row cross-entropy: see :func:`fastgrad.backends.numpy_ref.cross_entropy_fwd`. One
    pass per row: the row maximum, then the shifted exponentials summed, in float64 as the
    reference (``lse`` is float64)."""
    if (not _native(logits.dtype, logits, loss) or not _native(lse.dtype, lse)
            or lse.dtype != np.float64 or logits.shape[1] == 0
            or not target.flags.c_contiguous):
        return _fallback("cross_entropy_fwd", logits, target, ignore_index, loss, lse)
    bad = _cross_entropy_fwd(logits, target, ignore_index, loss, lse,
                             PARALLEL_MIN["cross_entropy"])
    raise_bad_target(bad, target, ignore_index, logits.shape[1])


def cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits):
    """Gradient of :func:`cross_entropy_fwd`: see
    :func:`fastgrad.backends.numpy_ref.cross_entropy_bwd`. One pass per row."""
    if (not _native(logits.dtype, logits, grad_loss, grad_logits) or not _native(lse.dtype, lse)
            or lse.dtype != np.float64 or not target.flags.c_contiguous):
        return _fallback("cross_entropy_bwd", logits, target, lse, ignore_index, grad_loss,
                         grad_logits)
    bad = _cross_entropy_bwd(logits, target, lse, ignore_index, grad_loss, grad_logits,
                             PARALLEL_MIN["cross_entropy"])
    raise_bad_target(bad, target, ignore_index, logits.shape[1])


def _bn_fwd_compiled(x, weight, bias, running_mean, running_var, mean, var, invstd, out):
    """True when :func:`batchnorm_fwd`'s compiled path takes these arguments (the kernel's check
    and its binder's): else one running statistic without the other, or one value per channel
    (no unbiased variance), go to the reference's behaviour and errors, as the C backend's."""
    return (_native(x.dtype, x, weight, bias, running_mean, running_var, out)
            and mean.dtype == np.float64 and _native(mean.dtype, mean, var, invstd)
            and (running_mean is None) == (running_var is None)
            and (running_mean is None or x.shape[0] * x.shape[2] >= 2))


def _bn_bwd_compiled(grad_out, x, weight, mean, invstd, out, grad_x, grad_weight, grad_bias):
    """True when :func:`batchnorm_bwd`'s compiled path takes these arguments (``out`` None
    without an activation: not read)."""
    return (_native(x.dtype, grad_out, x, weight, out, grad_x, grad_weight, grad_bias)
            and mean.dtype == np.float64 and _native(mean.dtype, mean, invstd))


def batchnorm_fwd(x, weight, bias, eps, activation, running_mean, running_var, momentum, mean,
                  var, invstd, out):
    """Training-mode batch normalisation: see :func:`fastgrad.backends.numpy_ref.batchnorm_fwd`.

    Two parallel passes: the statistics from one read of x (float64 sums about a sample of
    each channel, see :func:`_bn_statistics`), then the affine output in x's dtype (see
    :func:`_affine`) with the activation; the running statistics between them. Fixed tiles,
    so bit-identical for any thread count.
    """
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if not _bn_fwd_compiled(x, weight, bias, running_mean, running_var, mean, var, invstd, out):
        return _fallback("batchnorm_fwd", x, weight, bias, eps, activation, running_mean,
                         running_var, momentum, mean, var, invstd, out)
    n, channels, spatial = x.shape
    x2 = x.reshape(n, channels * spatial)
    empty = _EMPTY[x.dtype]
    _bn_forward(x2, out.reshape(x2.shape), channels, spatial, float(eps), activation,
                empty if running_mean is None else running_mean,
                empty if running_var is None else running_var, running_mean is not None,
                float(momentum), mean, var, invstd, empty if weight is None else weight,
                empty if bias is None else bias, weight is not None, bias is not None,
                PARALLEL_MIN["batchnorm"])


def batchnorm_bwd(grad_out, x, weight, mean, invstd, out, activation, grad_x, grad_weight,
                  grad_bias):
    """Gradients of :func:`batchnorm_fwd`: see :func:`fastgrad.backends.numpy_ref.batchnorm_bwd`.

    With an activation, one pass for its derivative (:func:`_activation_bwd`); then one
    parallel pass for both per-channel sums (float64, fixed tiles), one for ``grad_x`` (in x's
    dtype, see :func:`_bn_input_grad`).
    """
    if activation not in ACTIVATION_CODES:
        _unknown_activation(activation)
    if activation == _NONE:
        out = None  # not read
    if not _bn_bwd_compiled(grad_out, x, weight, mean, invstd, out, grad_x, grad_weight,
                            grad_bias):
        return _fallback("batchnorm_bwd", grad_out, x, weight, mean, invstd, out, activation,
                         grad_x, grad_weight, grad_bias)
    n, channels, spatial = x.shape
    x2, dy2 = x.reshape(n, channels * spatial), grad_out.reshape(n, channels * spatial)
    empty = _EMPTY[x.dtype]
    _bn_backward(dy2, x2 if out is None else out.reshape(x2.shape), activation, x2,
                 x2 if grad_x is None else grad_x.reshape(x2.shape), grad_x is not None,
                 channels, spatial, mean, invstd, empty if weight is None else weight,
                 weight is not None, empty if grad_weight is None else grad_weight,
                 grad_weight is not None, empty if grad_bias is None else grad_bias,
                 grad_bias is not None, PARALLEL_MIN["batchnorm"], PARALLEL_MIN["activation"])



def _bind_batchnorm_fwd(x, weight, bias, eps, activation, running_mean, running_var, momentum,
                        mean, var, invstd, out):
    """:func:`batchnorm_fwd` for arguments like these (see :func:`fastgrad.backends.bind`):
    the checks of its compiled path done once; where that path does not apply, the kernel."""
    if activation not in ACTIVATION_CODES or not _bn_fwd_compiled(
            x, weight, bias, running_mean, running_var, mean, var, invstd, out):
        return batchnorm_fwd
    n, channels, spatial = x.shape
    empty, running = _EMPTY[x.dtype], running_mean is not None
    has_weight, has_bias = weight is not None, bias is not None

    def bound(x, weight, bias, eps, activation, running_mean, running_var, momentum, mean, var,
              invstd, out):
        x2 = x.reshape(n, channels * spatial)
        _bn_forward(x2, out.reshape(x2.shape), channels, spatial, float(eps), activation,
                    running_mean if running else empty, running_var if running else empty,
                    running, float(momentum), mean, var, invstd,
                    weight if has_weight else empty, bias if has_bias else empty, has_weight,
                    has_bias, PARALLEL_MIN["batchnorm"])
    return bound


batchnorm_fwd.bind = _bind_batchnorm_fwd


def _bind_batchnorm_bwd(grad_out, x, weight, mean, invstd, out, activation, grad_x,
                        grad_weight, grad_bias):
    """:func:`batchnorm_bwd` for arguments like these (see :func:`fastgrad.backends.bind`):
    the checks of its compiled path done once; where that path does not apply, the kernel."""
    if activation not in ACTIVATION_CODES or not _bn_bwd_compiled(
            grad_out, x, weight, mean, invstd, None if activation == _NONE else out, grad_x,
            grad_weight, grad_bias):
        return batchnorm_bwd
    n, channels, spatial = x.shape
    empty, has_x = _EMPTY[x.dtype], grad_x is not None
    has_weight, has_grad_weight, has_grad_bias = (weight is not None, grad_weight is not None,
                                                  grad_bias is not None)

    def bound(grad_out, x, weight, mean, invstd, out, activation, grad_x, grad_weight,
              grad_bias):
        x2 = x.reshape(n, channels * spatial)
        _bn_backward(grad_out.reshape(x2.shape), x2 if activation == _NONE
                     else out.reshape(x2.shape), activation, x2,
                     grad_x.reshape(x2.shape) if has_x else x2, has_x, channels, spatial, mean,
                     invstd, weight if has_weight else empty, has_weight,
                     grad_weight if has_grad_weight else empty, has_grad_weight,
                     grad_bias if has_grad_bias else empty, has_grad_bias,
                     PARALLEL_MIN["batchnorm"], PARALLEL_MIN["activation"])
    return bound


batchnorm_bwd.bind = _bind_batchnorm_bwd


def lstm_cell_fwd(gates, c_prev, gates_act, h, c):
    """The pointwise part of one LSTM step: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_fwd`. One pass per row over the four gates,
    the cell and the output."""
    if not _native(gates.dtype, gates, c_prev, gates_act, h, c):
        return _fallback("lstm_cell_fwd", gates, c_prev, gates_act, h, c)
    _lstm_fwd(gates, c_prev, gates_act, h, c, PARALLEL_MIN["lstm"])


def lstm_cell_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
    """Gradients of :func:`lstm_cell_fwd`: see
    :func:`fastgrad.backends.numpy_ref.lstm_cell_bwd`. One pass per row."""
    if not _native(c.dtype, grad_h, grad_c, c_prev, c, gates_act, grad_gates, grad_c_prev):
        return _fallback("lstm_cell_bwd", grad_h, grad_c, c_prev, c, gates_act, grad_gates,
                         grad_c_prev)
    _lstm_bwd(grad_h, grad_c, c_prev, c, gates_act, grad_gates,
              c if grad_c_prev is None else grad_c_prev, grad_c_prev is not None,
              PARALLEL_MIN["lstm"])
