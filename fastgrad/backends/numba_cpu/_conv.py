"""Numba kernels of convolution and pooling (NCHW): conv2d forward and both gradients, max and
average pooling forward and backward.

Same names, signatures and outputs as the reference (:mod:`fastgrad.backends.numpy_ref`).

Convolution is im2col around BLAS. A unit of work unfolds its input into the running thread's
column buffer, ``(C/groups * KH * KW, columns)``, and multiplies the group's weight, seen as
``(O/groups, C/groups * KH * KW)``, by it: one single-threaded call of NumPy's BLAS made on this
backend's threads (one pool, see :mod:`fastgrad.backends.blas`), which take the units in
parallel under ``prange``. A unit is one batch item and group; a large image's item is cut into
tiles of output rows whose columns stay in the core's cache (:data:`TILE_BYTES`); small images
go a few items side by side into one wider product (:data:`BATCH_COLUMNS`), staged first when
"same" (see :func:`_stage`). The forward writes the product into the output and adds the bias
while it is in cache. The input gradient is the transposed weight times the output gradient,
into columns folded back onto the input (col2im). The weight gradient is the unfolded input
times the output gradient, transposed (BLAS's faster orientation), summed over the batch. A 1x1
convolution with stride 1 and no padding multiplies its input in place. Where every group has
one input channel and few output channels (depthwise), the products would be matrix-vector
products: direct loops over planes run instead. They skip the taps that read the padding, where
the unfolding multiplies zeros: an inf weight (or output gradient) there gives NaN on the GEMM
path and in the reference, a finite value on the direct one (PyTorch's CPU kernels differ the
same way, by algorithm).

Determinism. Every output element of the forward and of the input gradient comes from one BLAS
call on operands fixed by the shapes, whatever the thread count. The weight gradient sums over
the batch: the batch is cut into :data:`WEIGHT_BLOCKS` blocks that depend on the batch size
only, each block's items accumulated in order into the block's own partial (BLAS with ``beta =
1``), and the partials added in block order; the bias gradient likewise, in float64. So results
are bit-identical for every thread count and run. The depthwise weight gradient runs over output
channels, each one whole sum on one thread.

Pooling is direct loops over (item, channel) planes, pieces of planes in parallel, each output
element computed by one thread: thread-count independent too. Window bounds are tabulated once
per call (their divisions cost more than a small window's comparisons).

Arrays of other dtypes (float16) or not C-contiguous go to the reference kernel, counted in the
backend's ``FALLBACKS``; so do convolutions with an empty inner dimension (no input channel, an
empty batch or output), which BLAS leaves to the caller, and every GEMM convolution when no
usable BLAS was found (:data:`fastgrad.backends.blas.REASON`); the direct ones still run.

The GEMM building blocks come from :mod:`._layers`; Numba's cache checks only this file, so a
change there needs this file touched (or the cache cleared) to recompile these kernels.
"""
import numba
import numpy as np
from numba import prange

from ... import config
from .. import blas
# the one-pool design's BLAS call and thread switch, the fallback to the reference (counted in
# the backend's FALLBACKS) and the dtype/contiguity check
from ._layers import (_NO_TRANS, _TRANS, ADDRESSES, _blas_gemm, _blas_restore,
                      _blas_single_thread, _fallback, _native)

__all__ = ["conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight", "max_pool2d_fwd",
           "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd"]

#: Below this many multiply-adds a convolution runs on the calling thread alone.
CONV_PARALLEL_MIN = 1 << 20

#: Below this many input elements a pooling kernel runs on the calling thread alone.
POOL_PARALLEL_MIN = 1 << 16

#: Elements per parallel piece of planes (pooling, direct convolution): whole planes, at least
#: one.
CHUNK = 16384

#: The weight gradient's batch blocks: ``min(N, WEIGHT_BLOCKS)`` partials. Fixes the rounding
#: of the weight and bias gradients (changing it changes them in their last bits); a multiple of
#: the usual thread counts, so the blocks share out evenly.
WEIGHT_BLOCKS = 8

#: An item's columns are unfolded and multiplied in tiles of whole output rows of at most
#: about this many bytes (one row at least), so that they stay in the core's cache (L2: 2 MiB
#: on the machine measured) between the unfolding and the GEMM.
TILE_BYTES = 1 << 19

#: Small images are multiplied a few batch items at a time, side by side: as many as make at
#: least this many columns per product (BLAS's products of under ~200 columns run well below
#: its speed, and each call has its overhead), at most :data:`TILE_BYTES` of columns. At least,
#: not at most: a 14x14 image (196 columns) goes two at a time, which measured 5-7% faster
#: for the forward and backward of Conv2d(32, 64, 3) at batch 64 than one at a time.
BATCH_COLUMNS = 256

#: A group with one input channel and at most this many output channels is convolved by the
#: direct loops (its GEMMs would have 1 to 4 rows and a depth of KH * KW).
DIRECT_MAX_CHANNELS = 4


#: 0 and 1 as int64 scalars for the jitted calls: a literal argument (``0``, ``True``) compiles
#: another specialisation of the helper it is passed to (the unit drivers three times over).
_START, _UNIT = np.int64(0), np.int64(1)


# --------------------------------------------------------------------------- row helpers
@config.jit()
def _span(count, size, offset, stride):
    """``(lo, hi)``: the outputs ``k`` in ``[0, count)`` whose input ``k * stride + offset``
    lies in ``[0, size)`` are exactly ``[lo, hi)``."""
    lo = 0 if offset >= 0 else (stride - 1 - offset) // stride
    hi = (size - offset + stride - 1) // stride if size > offset else 0
    hi = min(count, hi)
    return min(lo, hi), hi


# The loops below index flat arrays at unsigned offsets: a signed index gets Numba's
# negative-index wraparound, which keeps LLVM from vectorising, and a view per row (``a[lo:hi]``)
# costs a reference count update each way, several times a short row's copy.
@config.jit()
def _zero(d, lo, hi):
    """``d[lo:hi] = 0``."""
    for k in range(hi - lo):
        d[np.uint64(lo + k)] = 0


@config.jit()
def _copy(s, at, stride, d, to, count):
    """``d[to + k] = s[at + k * stride]`` for ``k < count``."""
    if stride == 1:
        for k in range(count):
            d[np.uint64(to + k)] = s[np.uint64(at + k)]
    else:
        for k in range(count):
            d[np.uint64(to + k)] = s[np.uint64(at + k * stride)]


@config.jit()
def _axpy(alpha, s, at, s_stride, d, to, d_stride, count):
    """``d[to + k * d_stride] += alpha * s[at + k * s_stride]`` for ``k < count``."""
    if s_stride == 1 and d_stride == 1:
        for k in range(count):
            d[np.uint64(to + k)] += alpha * s[np.uint64(at + k)]
    else:
        for k in range(count):
            d[np.uint64(to + k * d_stride)] += alpha * s[np.uint64(at + k * s_stride)]


@config.jit()
def _dot(a, at, b, bt, b_stride, count):
    """``sum(a[at + k] * b[bt + k * b_stride] for k < count)`` in float64."""
    total = 0.0
    if b_stride == 1:
        for k in range(count):
            total += float(a[np.uint64(at + k)]) * float(b[np.uint64(bt + k)])
    else:
        for k in range(count):
            total += float(a[np.uint64(at + k)]) * float(b[np.uint64(bt + k * b_stride)])
    return total


@config.jit()
def _sum(a, at, count):
    """``sum(a[at:at + count])`` in float64."""
    total = 0.0
    for k in range(count):
        total += a[np.uint64(at + k)]
    return total


# ------------------------------------------------------------------------ im2col / col2im
# One item's planes flat: ``xf`` (C * H * W). The columns of its output rows ``[i0, i1)``, for
# ``channels`` channels from ``c0``: a (channels * KH * KW, (i1 - i0) * OW) block, rows
# (c, p, q), columns (i - i0, j), at flat offset ``c_at`` of ``cf`` with leading dimension
# ``ld`` (an item's block among a few items' side by side, or a tile's).
@config.jit()
def _rows(i0, i1, height, offset, stride):
    """The output rows of ``[i0, i1)`` whose input row ``i * stride + offset`` is in the
    image, as ``(lo, hi)``, ``i0 <= lo <= hi <= i1``."""
    lo, hi = _span(i1, height, offset, stride)
    lo = max(lo, i0)
    return lo, max(lo, hi)


@config.jit()
def _tap_spans(i0, i1, height, width, ow, geo):
    """For each tap row ``p``, the output rows of ``[i0, i1)`` it reads inside the image
    (:func:`_rows`), then for each tap column ``q`` the output columns (:func:`_span`), as
    rows of a (KH + KW, 2) array: computed once per unfolding, not per channel (their
    divisions cost more than a small image's row copies)."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    spans = np.empty((kh + kw, 2), np.int64)
    for p in range(kh):
        spans[p, 0], spans[p, 1] = _rows(i0, i1, height, p * dh - ph, sh)
    for q in range(kw):
        spans[kh + q, 0], spans[kh + q, 1] = _span(ow, width, q * dw - pw, sw)
    return spans


@config.jit()
def _im2col(xf, c0, channels, cf, c_at, ld, height, width, i0, i1, ow, geo):
    """Unfold: ``cols[(c, p, q), (i - i0) * OW + j] = x[c0 + c, i * sh - ph + p * dh,
    j * sw - pw + q * dw]``, 0 outside the image.

    With stride 1 and as many output columns as input columns (``padding="same"``), a column
    row's valid output rows read consecutive input rows at one shift: one long copy, then the
    few elements that fall outside the image at the row edges zeroed."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    stretch = sh == 1 and sw == 1 and ow == width
    spans = _tap_spans(i0, i1, height, width, ow, geo)
    r = 0
    for c in range(channels):
        plane = (c0 + c) * height * width
        for p in range(kh):
            lo, hi = spans[p, 0], spans[p, 1]
            for q in range(kw):
                offset = q * dw - pw
                j0, j1 = spans[kh + q, 0], spans[kh + q, 1]
                base = c_at + r * ld - i0 * ow
                _zero(cf, base + i0 * ow, base + lo * ow)
                if stretch and hi > lo:
                    first = base + lo * ow + j0
                    _copy(xf, plane + (lo + p * dh - ph) * width + offset + j0, _UNIT, cf, first,
                          base + (hi - 1) * ow + j1 - first)
                    for i in range(lo, hi):
                        at = base + i * ow
                        _zero(cf, at, at + j0)
                        _zero(cf, at + j1, at + ow)
                else:
                    for i in range(lo, hi):
                        at = base + i * ow
                        source = plane + (i * sh + p * dh - ph) * width + offset
                        _zero(cf, at, at + j0)
                        _copy(xf, source + j0 * sw, sw, cf, at + j0, j1 - j0)
                        _zero(cf, at + j1, at + ow)
                _zero(cf, base + hi * ow, base + i1 * ow)
                r += 1


@config.jit()
def _col2im(cf, c_at, ld, gf, c0, channels, height, width, i0, i1, ow, geo, one):
    """Fold columns (laid out as :func:`_im2col`'s) back onto an item's input gradient
    ``gf``, adding: the transpose of :func:`_im2col`. Its long-copy case is one long addition
    here, after zeroing the column elements that fall outside the image (``cf`` is
    overwritten)."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    stretch = sh == 1 and sw == 1 and ow == width
    spans = _tap_spans(i0, i1, height, width, ow, geo)
    r = 0
    for c in range(channels):
        plane = (c0 + c) * height * width
        for p in range(kh):
            lo, hi = spans[p, 0], spans[p, 1]
            for q in range(kw):
                offset = q * dw - pw
                j0, j1 = spans[kh + q, 0], spans[kh + q, 1]
                base = c_at + r * ld - i0 * ow
                if stretch and hi > lo:
                    for i in range(lo, hi):
                        at = base + i * ow
                        _zero(cf, at, at + j0)
                        _zero(cf, at + j1, at + ow)
                    first = base + lo * ow + j0
                    _axpy(one, cf, first, _UNIT, gf,
                          plane + (lo + p * dh - ph) * width + offset + j0, _UNIT,
                          base + (hi - 1) * ow + j1 - first)
                else:
                    for i in range(lo, hi):
                        target = plane + (i * sh + p * dh - ph) * width + offset
                        _axpy(one, cf, base + i * ow + j0, _UNIT, gf, target + j0 * sw, sw,
                              j1 - j0)
                r += 1


# Small "same" images (stride 1, OH = H, OW = W), a few items side by side: their planes are
# first staged channel by channel, the items' planes of a channel one after the other between
# guard bands, so that each tap's column row over all the items is one shifted stretch of the
# staged channel, masked where the tap reads outside an image: one loop per column row instead
# of several per output row and item (each loop over a few elements costs more than its copies).
@config.jit()
def _same_taps(items, height, width, geo):
    """For each tap ``(p, q)``: its shift in a plane, ``(p * dh - ph) * W + q * dw - pw``, and
    the mask of the output positions ``(n, i, j)`` of ``items`` items where it reads inside the
    image; and the guard band the shifts need, as ``(shifts, masks, guard)``."""
    kh, kw, _, _, ph, pw, dh, dw = geo
    plane = height * width
    shifts = np.empty(kh * kw, np.int64)
    masks = np.empty((kh * kw, items * plane), np.bool_)
    guard = 0
    for p in range(kh):
        for q in range(kw):
            t = p * kw + q
            shifts[t] = (p * dh - ph) * width + q * dw - pw
            guard = max(guard, abs(shifts[t]))
            for k in range(plane):
                h, w = k // width + p * dh - ph, k % width + q * dw - pw
                inside = 0 <= h < height and 0 <= w < width
                for n in range(items):
                    masks[t, n * plane + k] = inside
    return shifts, masks, guard


@config.jit()
def _stage(xf, at, item_stride, count, plane, channels, staged, base, guard):
    """Stage ``count`` items' ``channels`` planes, item ``n``'s channel ``c`` at ``xf[at + n *
    item_stride + c * plane]``, at ``staged[base + guard + c * (count * plane + guard) + n *
    plane]``: a channel's planes one after the other, the channels between guard bands."""
    block = count * plane + guard
    for c in range(channels):
        for n in range(count):
            _copy(xf, at + n * item_stride + c * plane, _UNIT, staged,
                  base + guard + c * block + n * plane, plane)


@config.jit()
def _unstage(staged, base, guard, xf, at, item_stride, count, plane, channels):
    """The inverse of :func:`_stage`: the staged planes copied back into ``xf``."""
    block = count * plane + guard
    for c in range(channels):
        for n in range(count):
            _copy(staged, base + guard + c * block + n * plane, _UNIT, xf,
                  at + n * item_stride + c * plane, plane)


@config.jit()
def _unfold_same(staged, base, guard, count, plane, channels, shifts, masks, cf, ld):
    """The columns of the staged items (see :func:`_stage`): row ``(c, p, q)`` is the staged
    channel ``c`` shifted by the tap's shift, masked, at ``cf[(c * taps + t) * ld]``."""
    taps = shifts.size
    block = count * plane + guard
    for c in range(channels):
        for t in range(taps):
            source = base + guard + c * block + shifts[t]
            at = (c * taps + t) * ld
            mask = masks[t]
            for k in range(count * plane):
                v = staged[np.uint64(source + k)]
                cf[np.uint64(at + k)] = v if mask[np.uint64(k)] else 0


@config.jit()
def _fold_same(cf, ld, staged, base, guard, count, plane, channels, shifts, masks):
    """The transpose of :func:`_unfold_same`: the staged planes zeroed, then each column row
    added, masked, at its tap's shift."""
    taps = shifts.size
    block = count * plane + guard
    _zero(staged, base, base + guard + channels * block)
    for c in range(channels):
        for t in range(taps):
            target = base + guard + c * block + shifts[t]
            at = (c * taps + t) * ld
            mask = masks[t]
            for k in range(count * plane):
                v = cf[np.uint64(at + k)]
                staged[np.uint64(target + k)] += v if mask[np.uint64(k)] else 0


# ------------------------------------------------------------------------ GEMM convolution
# Shapes in the drivers: x and grad_x (N, C * H * W); out and grad_out (N, O * OH * OW); weight
# (O, depth), depth = C/groups * KH * KW. ``plan`` is (groups, items, tiles, H, W, OH, OW,
# columns, same): a unit of work takes ``items`` batch items side by side in one product (small
# images; staged first when ``same``), or one item's output rows cut into ``tiles`` (large
# images), or one whole item; ``columns``, the most a unit has. ``scratch`` (workers, (depth +
# O/groups) * columns + staging): each worker's columns, then its product or gathered output
# gradient, then its staged planes. ``identity``: an item's columns are its input (1x1, stride
# 1, no padding), multiplied in place. ``one`` and ``zero`` are in the arrays' dtype (BLAS's
# alpha and beta).
@config.jit()
def _gemm(addresses, trans_a, trans_b, m, n, k, alpha, a, a_at, lda, b, b_at, ldb, beta, c,
          c_at, ldc):
    """``c = alpha * op(a) @ op(b) + beta * c`` on the row-major (m, n) matrix of ``c`` at flat
    offset ``c_at`` with leading dimension ``ldc`` (and likewise ``a``, ``b``; ``trans_a``,
    ``trans_b`` CBLAS's codes): one BLAS call on the calling thread."""
    size = c.itemsize
    _blas_gemm(addresses[0] if size == 4 else addresses[1], addresses[4], trans_a, trans_b, m,
               n, k, alpha, np.int64(a.ctypes.data) + size * a_at, lda,
               np.int64(b.ctypes.data) + size * b_at, ldb, beta,
               np.int64(c.ctypes.data) + size * c_at, ldc)


@config.jit()
def _tile_rows(oh, tiles, t):
    """The output rows ``[i0, i1)`` of tile ``t`` of ``tiles``: equal shares."""
    return oh * t // tiles, oh * (t + 1) // tiles


@config.jit()
def _add_bias(out, at, ld, rows, count, bias, b0):
    """``out[at + r * ld + k] += bias[b0 + r]`` for ``r < rows``, ``k < count``."""
    for r in range(rows):
        value = bias[b0 + r]
        row = at + r * ld
        for k in range(count):
            out[np.uint64(row + k)] += value


@config.jit()
def _copy_rows(src, s_at, s_ld, dst, d_at, d_ld, rows, count):
    """``dst[d_at + r * d_ld + k] = src[s_at + r * s_ld + k]`` for ``r < rows``,
    ``k < count``."""
    for r in range(rows):
        _copy(src, s_at + r * s_ld, _UNIT, dst, d_at + r * d_ld, count)


@config.jit()
def _fwd_units(addresses, x, weight, bias, has_bias, out, scratch, w, workers, plan, geo,
               identity, zero, one):
    """The (items, group, tile) units ``w, w + workers, ...`` of the forward, on one thread:
    the items' columns, one product, the bias."""
    groups, items, tiles, height, width, oh, ow, columns, same = plan
    n_items, plane, depth = x.shape[0], height * width, weight.shape[1]
    cg, og, positions = depth // (geo[0] * geo[1]), weight.shape[0] // groups, oh * ow
    buffer, xf = scratch[w], x.reshape(x.size)
    product, staged = depth * columns, (depth + og) * columns
    shifts, masks, guard = _same_taps(items if same else 0, height, width, geo)
    for unit in range(w, -(-n_items // items) * groups * tiles, workers):
        n0, g, t = unit // (groups * tiles) * items, unit // tiles % groups, unit % tiles
        count = min(items, n_items - n0)
        i0, i1 = _tile_rows(oh, tiles, t)
        lo, hi = i0 * ow, i1 * ow
        at, w_at = g * og * positions, g * og * depth
        if count == 1:
            if identity:
                _gemm(addresses, _NO_TRANS, _NO_TRANS, og, positions, depth, one, weight, w_at,
                      depth, x[n0], g * cg * plane, plane, zero, out[n0], at, positions)
            else:
                _im2col(x[n0], g * cg, cg, buffer, _START, hi - lo, height, width, i0, i1, ow,
                        geo)
                _gemm(addresses, _NO_TRANS, _NO_TRANS, og, hi - lo, depth, one, weight, w_at,
                      depth, buffer, _START, hi - lo, zero, out[n0], at + lo, positions)
            if has_bias:
                _add_bias(out[n0], at + lo, positions, og, hi - lo, bias, g * og)
            continue
        ld = count * positions
        if same:
            _stage(xf, n0 * x.shape[1] + g * cg * plane, x.shape[1], count, plane, cg, buffer,
                   staged, guard)
            _unfold_same(buffer, staged, guard, count, plane, cg, shifts, masks, buffer, ld)
        else:
            for k in range(count):
                _im2col(x[n0 + k], g * cg, cg, buffer, k * positions, ld, height, width, _START,
                        oh, ow, geo)
        _gemm(addresses, _NO_TRANS, _NO_TRANS, og, ld, depth, one, weight, w_at, depth, buffer,
              _START, ld, zero, buffer, product, ld)
        for k in range(count):
            _copy_rows(buffer, product + k * positions, ld, out[n0 + k], at, positions, og,
                       positions)
            if has_bias:
                _add_bias(out[n0 + k], at, positions, og, positions, bias, g * og)


@config.jit(parallel=True)
def _conv_fwd(addresses, x, weight, bias, has_bias, out, scratch, workers, plan, geo, identity,
              zero, one):
    previous = _blas_single_thread(addresses)
    if workers == 1:
        _fwd_units(addresses, x, weight, bias, has_bias, out, scratch, _START, _UNIT, plan, geo,
                   identity, zero, one)
    else:
        for w in prange(workers):
            # w as int64, as the serial call's: prange's uint64 compiles another
            # specialisation of the unit function
            _fwd_units(addresses, x, weight, bias, has_bias, out, scratch, np.int64(w), workers,
                       plan, geo, identity, zero, one)
    _blas_restore(addresses, previous)


@config.jit()
def _bwd_input_units(addresses, grad_out, weight, grad_x, scratch, w, workers, plan, geo,
                     identity, zero, one):
    """The (items, group) units ``w, w + workers, ...`` of the input gradient, on one thread:
    the transposed weight times the output gradient into columns, folded onto the input; an
    item's tiles in order (their windows overlap on the input)."""
    groups, items, tiles, height, width, oh, ow, columns, same = plan
    n_items, plane, depth = grad_x.shape[0], height * width, weight.shape[1]
    cg, og, positions = depth // (geo[0] * geo[1]), weight.shape[0] // groups, oh * ow
    buffer, gf = scratch[w], grad_x.reshape(grad_x.size)
    gathered, staged = depth * columns, (depth + og) * columns
    shifts, masks, guard = _same_taps(items if same else 0, height, width, geo)
    for unit in range(w, -(-n_items // items) * groups, workers):
        n0, g = unit // groups * items, unit % groups
        count = min(items, n_items - n0)
        at, w_at, x_at = g * og * positions, g * og * depth, g * cg * plane
        if count == 1 and identity:
            _gemm(addresses, _TRANS, _NO_TRANS, cg, positions, og, one, weight, w_at, depth,
                  grad_out[n0], at, positions, zero, grad_x[n0], x_at, plane)
        elif count == 1:
            _zero(grad_x[n0], x_at, x_at + cg * plane)
            for t in range(tiles):
                i0, i1 = _tile_rows(oh, tiles, t)
                lo, hi = i0 * ow, i1 * ow
                _gemm(addresses, _TRANS, _NO_TRANS, depth, hi - lo, og, one, weight, w_at, depth,
                      grad_out[n0], at + lo, positions, zero, buffer, _START, hi - lo)
                _col2im(buffer, _START, hi - lo, grad_x[n0], g * cg, cg, height, width, i0, i1,
                        ow, geo, one)
        else:
            ld = count * positions
            for k in range(count):
                _copy_rows(grad_out[n0 + k], at, positions, buffer, gathered + k * positions,
                           ld, og, positions)
            _gemm(addresses, _TRANS, _NO_TRANS, depth, ld, og, one, weight, w_at, depth, buffer,
                  gathered, ld, zero, buffer, _START, ld)
            if same:
                _fold_same(buffer, ld, buffer, staged, guard, count, plane, cg, shifts, masks)
                _unstage(buffer, staged, guard, gf, n0 * grad_x.shape[1] + x_at,
                         grad_x.shape[1], count, plane, cg)
            else:
                for k in range(count):
                    _zero(grad_x[n0 + k], x_at, x_at + cg * plane)
                    _col2im(buffer, k * positions, ld, grad_x[n0 + k], g * cg, cg, height,
                            width, _START, oh, ow, geo, one)


@config.jit(parallel=True)
def _conv_bwd_input(addresses, grad_out, weight, grad_x, scratch, workers, plan, geo, identity,
                    zero, one):
    previous = _blas_single_thread(addresses)
    if workers == 1:
        _bwd_input_units(addresses, grad_out, weight, grad_x, scratch, _START, _UNIT, plan, geo,
                         identity, zero, one)
    else:
        for w in prange(workers):
            _bwd_input_units(addresses, grad_out, weight, grad_x, scratch, np.int64(w),
                             workers, plan, geo, identity, zero, one)
    _blas_restore(addresses, previous)


@config.jit()
def _bwd_weight_blocks(addresses, grad_out, x, partial, bias_partial, want_bias, scratch, w,
                       workers, plan, geo, identity, zero, one):
    """The batch blocks ``w, w + workers, ...`` of the weight gradient, on one thread: block
    ``b``'s items, ``items`` at a time side by side (or one item tile by tile), summed in
    order into ``partial[b]`` (``beta = 1`` after the first product); the bias gradient into
    ``bias_partial[b]`` in float64.

    ``partial`` is (blocks, groups * depth * O/groups): each group's gradient transposed, the
    product ``columns @ grad_out.T`` (BLAS runs it 20 % faster than ``grad_out @ columns.T``
    at these shapes)."""
    groups, items, tiles, height, width, oh, ow, columns, same = plan
    n_items, plane = x.shape[0], height * width
    og, positions = bias_partial.shape[1] // groups, oh * ow
    depth = partial.shape[1] // (groups * og)
    cg = depth // (geo[0] * geo[1])
    buffer, xf = scratch[w], x.reshape(x.size)
    gathered, staged = depth * columns, (depth + og) * columns
    shifts, masks, guard = _same_taps(items if same else 0, height, width, geo)
    blocks = partial.shape[0]
    for block in range(w, blocks, workers):
        # equal shares of the batch, none empty (blocks <= items)
        first, last = n_items * block // blocks, n_items * (block + 1) // blocks
        target = partial[block]
        for n0 in range(first, last, items):
            count = min(items, last - n0)
            for g in range(groups):
                at, g_at = g * og * positions, g * depth * og
                if count == 1 and identity:
                    _gemm(addresses, _NO_TRANS, _TRANS, depth, og, positions, one, x[n0],
                          g * cg * plane, plane, grad_out[n0], at, positions,
                          zero if n0 == first else one, target, g_at, og)
                elif count == 1:
                    for t in range(tiles):
                        i0, i1 = _tile_rows(oh, tiles, t)
                        lo, hi = i0 * ow, i1 * ow
                        _im2col(x[n0], g * cg, cg, buffer, _START, hi - lo, height, width, i0,
                                i1, ow, geo)
                        _gemm(addresses, _NO_TRANS, _TRANS, depth, og, hi - lo, one, buffer,
                              _START, hi - lo, grad_out[n0], at + lo, positions,
                              zero if n0 == first and t == 0 else one, target, g_at, og)
                else:
                    ld = count * positions
                    if same:
                        _stage(xf, n0 * x.shape[1] + g * cg * plane, x.shape[1], count, plane,
                               cg, buffer, staged, guard)
                        _unfold_same(buffer, staged, guard, count, plane, cg, shifts, masks,
                                     buffer, ld)
                    for k in range(count):
                        if not same:
                            _im2col(x[n0 + k], g * cg, cg, buffer, k * positions, ld, height,
                                    width, _START, oh, ow, geo)
                        _copy_rows(grad_out[n0 + k], at, positions, buffer,
                                   gathered + k * positions, ld, og, positions)
                    _gemm(addresses, _NO_TRANS, _TRANS, depth, og, ld, one, buffer, _START, ld,
                          buffer, gathered, ld, zero if n0 == first else one, target, g_at, og)
            if want_bias:
                acc = bias_partial[block]
                for n in range(n0, n0 + count):
                    for o in range(acc.size):
                        acc[o] += _sum(grad_out[n], o * positions, positions)


@config.jit()
def _sum_blocks(partial, groups, out):
    """``out`` (O, depth) = the sum of the blocks of ``partial`` (see
    :func:`_bwd_weight_blocks`) in block order, transposed back; ``partial[0]`` is
    overwritten."""
    acc = partial[0]
    for b in range(1, partial.shape[0]):
        row = partial[b]
        for k in range(acc.size):
            acc[k] += row[k]
    depth = out.shape[1]
    og = out.shape[0] // groups
    for g in range(groups):
        for k in range(depth):
            at = (g * depth + k) * og
            for o in range(og):
                out[g * og + o, k] = acc[at + o]


@config.jit(parallel=True)
def _conv_bwd_weight(addresses, grad_out, x, partial, bias_partial, want_bias, scratch, workers,
                     plan, geo, identity, zero, one):
    previous = _blas_single_thread(addresses)
    if workers == 1:
        _bwd_weight_blocks(addresses, grad_out, x, partial, bias_partial, want_bias, scratch,
                           _START, _UNIT, plan, geo, identity, zero, one)
    else:
        for w in prange(workers):
            _bwd_weight_blocks(addresses, grad_out, x, partial, bias_partial, want_bias,
                               scratch, np.int64(w), workers, plan, geo, identity, zero, one)
    _blas_restore(addresses, previous)


# ---------------------------------------------------------------------- direct convolution
# Groups of one input channel (depthwise): x and grad_x (N, C * H * W), out and grad_out
# (N, O * OH * OW), weight and grad_weight (O, KH * KW); output channel o reads input channel
# o // per_group. Rows are accumulated tap by tap, each a vectorised loop over a row.
@config.jit()
def _direct_fwd_planes(x, weight, bias, has_bias, out, per_group, height, width, oh, ow, geo,
                       lo, hi):
    """Output planes ``[lo, hi)`` of (N * O): the bias, then each tap times its shifted
    input rows."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    channels_out, positions = weight.shape[0], oh * ow
    for u in range(lo, hi):
        n, o = u // channels_out, u % channels_out
        xf, of, wk = x[n], out[n], weight[o]
        source, at = o // per_group * height * width, o * positions
        start = bias[o] if has_bias else 0.0
        for k in range(positions):
            of[np.uint64(at + k)] = start
        for p in range(kh):
            i0, i1 = _span(oh, height, p * dh - ph, sh)
            for i in range(i0, i1):
                row = source + (i * sh + p * dh - ph) * width
                for q in range(kw):
                    offset = q * dw - pw
                    j0, j1 = _span(ow, width, offset, sw)
                    _axpy(wk[p * kw + q], xf, row + offset + j0 * sw, sw, of, at + i * ow + j0,
                          _UNIT, j1 - j0)


@config.jit(parallel=True)
def _direct_fwd(x, weight, bias, has_bias, out, per_group, height, width, oh, ow, geo, per,
                parallel):
    planes = x.shape[0] * weight.shape[0]
    if not parallel:
        _direct_fwd_planes(x, weight, bias, has_bias, out, per_group, height, width, oh, ow, geo,
                           _START, planes)
    else:
        for piece in prange((planes + per - 1) // per):
            _direct_fwd_planes(x, weight, bias, has_bias, out, per_group, height, width, oh, ow,
                               geo, piece * per, min(planes, (piece + 1) * per))


@config.jit()
def _direct_bwd_input_planes(grad_out, weight, grad_x, per_group, height, width, oh, ow, geo,
                             lo, hi):
    """Input-gradient planes ``[lo, hi)`` of (N * C): zeros, then each tap of the group's
    output channels times their output-gradient rows, added at the shifted input rows."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    plane, positions = height * width, oh * ow
    channels = grad_x.shape[1] // plane
    for u in range(lo, hi):
        n, c = u // channels, u % channels
        gf, gof = grad_x[n], grad_out[n]
        _zero(gf, c * plane, (c + 1) * plane)
        for o in range(c * per_group, (c + 1) * per_group):
            wk = weight[o]
            for p in range(kh):
                i0, i1 = _span(oh, height, p * dh - ph, sh)
                for i in range(i0, i1):
                    row = c * plane + (i * sh + p * dh - ph) * width
                    for q in range(kw):
                        offset = q * dw - pw
                        j0, j1 = _span(ow, width, offset, sw)
                        _axpy(wk[p * kw + q], gof, o * positions + i * ow + j0, _UNIT, gf,
                              row + offset + j0 * sw, sw, j1 - j0)


@config.jit(parallel=True)
def _direct_bwd_input(grad_out, weight, grad_x, per_group, height, width, oh, ow, geo, per,
                      parallel):
    planes = grad_x.shape[0] * (grad_x.shape[1] // (height * width))
    if not parallel:
        _direct_bwd_input_planes(grad_out, weight, grad_x, per_group, height, width, oh, ow,
                                 geo, _START, planes)
    else:
        for piece in prange((planes + per - 1) // per):
            _direct_bwd_input_planes(grad_out, weight, grad_x, per_group, height, width, oh, ow,
                                     geo, piece * per, min(planes, (piece + 1) * per))


@config.jit()
def _direct_bwd_weight_channel(grad_out, x, o, per_group, height, width, oh, ow, geo,
                               grad_weight, grad_bias, want_bias):
    """Output channel ``o``'s weight (and bias) gradient: float64 sums over the batch, in item
    order."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    positions = oh * ow
    source = o // per_group * height * width
    acc = np.zeros(kh * kw)
    bias_acc = 0.0
    for n in range(x.shape[0]):
        gof, xf = grad_out[n], x[n]
        for p in range(kh):
            i0, i1 = _span(oh, height, p * dh - ph, sh)
            for i in range(i0, i1):
                row = source + (i * sh + p * dh - ph) * width
                for q in range(kw):
                    offset = q * dw - pw
                    j0, j1 = _span(ow, width, offset, sw)
                    acc[p * kw + q] += _dot(gof, o * positions + i * ow + j0, xf,
                                            row + offset + j0 * sw, sw, j1 - j0)
        if want_bias:
            bias_acc += _sum(gof, o * positions, positions)
    for k in range(acc.size):
        grad_weight[o, k] = acc[k]
    if want_bias:
        grad_bias[o] = bias_acc


@config.jit(parallel=True)
def _direct_bwd_weight(grad_out, x, per_group, height, width, oh, ow, geo, grad_weight,
                       grad_bias, want_bias, parallel):
    channels_out = grad_weight.shape[0]
    if not parallel:
        for o in range(channels_out):
            _direct_bwd_weight_channel(grad_out, x, o, per_group, height, width, oh, ow, geo,
                                       grad_weight, grad_bias, want_bias)
    else:
        for o in prange(channels_out):
            _direct_bwd_weight_channel(grad_out, x, o, per_group, height, width, oh, ow, geo,
                                       grad_weight, grad_bias, want_bias)


# -------------------------------------------------------------------------------- pooling
# Planes flattened: x and grad_x (N * C, H * W), out, grad_out and indices (N * C, OH * OW).
@config.jit()
def _window_taps(count, size, stride, pad, kernel, dilation):
    """Along one axis, for each of ``count`` windows: its first and end tap inside the image
    and its start (which may be in the padding), as rows of a (count, 3) array; computed once
    per call, so no division runs per window."""
    table = np.empty((count, 3), np.int64)
    for k in range(count):
        start = k * stride - pad
        first, end = _span(kernel, size, start, dilation)
        table[k, 0], table[k, 1], table[k, 2] = first, end, start
    return table


@config.jit()
def _max_pool_2x2_planes(x, out, indices, width, oh, ow, lo, hi):
    """:func:`_max_pool_planes` for MaxPool2d(2), the common case, unrolled: every window
    inside the image (no padding, and no ceil_mode window past the edge: the caller checks),
    its four taps in scan order."""
    for u in range(lo, hi):
        plane, top, where = x[u], out[u], indices[u]
        for i in range(oh):
            upper = 2 * i * width
            lower = upper + width
            for j in range(ow):   # selects, not branches: the loop vectorises
                at = upper + 2 * j
                best = plane[at]
                v = plane[at + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                at = at + 1 if take else at
                v = plane[lower + 2 * j]
                take = (v > best) | (v != v)
                best = v if take else best
                at = lower + 2 * j if take else at
                v = plane[lower + 2 * j + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                at = lower + 2 * j + 1 if take else at
                top[i * ow + j] = best
                where[i * ow + j] = at


@config.jit()
def _max_pool_planes(x, out, indices, width, oh, ow, geo, lo, hi):
    """Planes ``[lo, hi)``: each window's maximum and its flat position in the plane; the
    first maximum in scan order, a NaN replacing it (and a later NaN that one), as PyTorch."""
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    height = x.shape[1] // width
    if kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 and dh == 1 \
            and dw == 1 and 2 * oh <= height and 2 * ow <= width:  # no ceil_mode window
        _max_pool_2x2_planes(x, out, indices, width, oh, ow, lo, hi)
        return
    rows = _window_taps(oh, height, sh, ph, kh, dh)
    cols = _window_taps(ow, width, sw, pw, kw, dw)
    for u in range(lo, hi):
        plane, top, where = x[u], out[u], indices[u]
        for i in range(oh):
            p0, p1, r0 = rows[i, 0], rows[i, 1], rows[i, 2]
            for j in range(ow):
                q0, q1, c0 = cols[j, 0], cols[j, 1], cols[j, 2]
                at = (r0 + p0 * dh) * width + c0 + q0 * dw
                best = plane[np.uint64(at)] if p1 > p0 and q1 > q0 else -np.inf
                for p in range(p0, p1):
                    row = (r0 + p * dh) * width + c0
                    for q in range(q0, q1):
                        v = plane[np.uint64(row + q * dw)]
                        if v > best or v != v:
                            best, at = v, row + q * dw
                top[i * ow + j] = best
                where[i * ow + j] = at


@config.jit(parallel=True)
def _max_pool_fwd(x, out, indices, width, oh, ow, geo, per, parallel):
    planes = x.shape[0]
    if not parallel:
        _max_pool_planes(x, out, indices, width, oh, ow, geo, _START, planes)
    else:
        for piece in prange((planes + per - 1) // per):
            _max_pool_planes(x, out, indices, width, oh, ow, geo, piece * per,
                             min(planes, (piece + 1) * per))


@config.jit()
def _max_unpool_planes(grad_out, indices, grad_x, lo, hi):
    """Planes ``[lo, hi)``: zeros, then each gradient added at its index; returns how many
    indices lay outside the plane (skipped)."""
    size = grad_x.shape[1]
    bad = 0
    for u in range(lo, hi):
        target, g, where = grad_x[u], grad_out[u], indices[u]
        _zero(target, _START, target.size)
        for k in range(g.size):
            t = where[k]
            if 0 <= t < size:
                target[t] += g[k]
            else:
                bad += 1
    return bad


@config.jit(parallel=True)
def _max_pool_bwd(grad_out, indices, grad_x, per, parallel):
    planes = grad_x.shape[0]
    if not parallel:
        return _max_unpool_planes(grad_out, indices, grad_x, _START, planes)
    pieces = (planes + per - 1) // per
    bad = np.zeros(pieces, np.int64)
    for piece in prange(pieces):
        bad[piece] = _max_unpool_planes(grad_out, indices, grad_x, piece * per,
                                        min(planes, (piece + 1) * per))
    return bad.sum()


@config.jit()
def _avg_axis(count, size, stride, pad, kernel):
    """Along one axis, for each of ``count`` windows: its part inside the image ``[lo, hi)``
    and its length clipped to the padded input (ceil_mode's last windows stop at its edge),
    as rows of a (count, 3) array."""
    table = np.empty((count, 3), np.int64)
    for k in range(count):
        start = k * stride - pad
        end = min(start + kernel, size + pad)
        table[k, 0], table[k, 1], table[k, 2] = max(start, 0), min(end, size), end - start
    return table


@config.jit()
def _avg_divisor(rows, cols, i, j, count_include_pad, divisor_override):
    """PyTorch's divisor of window ``(i, j)``: the override; else, with
    ``count_include_pad``, the window clipped to the padded input; else its real elements."""
    if divisor_override:
        return divisor_override
    if count_include_pad:
        return rows[i, 2] * cols[j, 2]
    return (rows[i, 1] - rows[i, 0]) * (cols[j, 1] - cols[j, 0])


@config.jit()
def _avg_pool_planes(x, out, width, oh, ow, geo, count_include_pad, divisor_override, lo, hi):
    """Planes ``[lo, hi)``: each window's float64 sum divided by its divisor."""
    kh, kw, sh, sw, ph, pw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    height = x.shape[1] // width
    rows = _avg_axis(oh, height, sh, ph, kh)
    cols = _avg_axis(ow, width, sw, pw, kw)
    for u in range(lo, hi):
        plane, target = x[u], out[u]
        for i in range(oh):
            for j in range(ow):
                total = 0.0
                for h in range(rows[i, 0], rows[i, 1]):
                    for w in range(cols[j, 0], cols[j, 1]):
                        total += plane[np.uint64(h * width + w)]
                target[i * ow + j] = total / _avg_divisor(rows, cols, i, j, count_include_pad,
                                                          divisor_override)


@config.jit(parallel=True)
def _avg_pool_fwd(x, out, width, oh, ow, geo, count_include_pad, divisor_override, per,
                  parallel):
    planes = x.shape[0]
    if not parallel:
        _avg_pool_planes(x, out, width, oh, ow, geo, count_include_pad, divisor_override,
                         _START, planes)
    else:
        for piece in prange((planes + per - 1) // per):
            _avg_pool_planes(x, out, width, oh, ow, geo, count_include_pad, divisor_override,
                             piece * per, min(planes, (piece + 1) * per))


@config.jit()
def _avg_unpool_planes(grad_out, grad_x, width, oh, ow, geo, count_include_pad,
                       divisor_override, lo, hi):
    """Planes ``[lo, hi)``: zeros, then each output gradient over its divisor (rounded to
    the dtype, as the reference) added to its window's real elements."""
    kh, kw, sh, sw, ph, pw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    height = grad_x.shape[1] // width
    rows = _avg_axis(oh, height, sh, ph, kh)
    cols = _avg_axis(ow, width, sw, pw, kw)
    share = np.empty(1, grad_x.dtype)
    for u in range(lo, hi):
        target, g = grad_x[u], grad_out[u]
        _zero(target, _START, target.size)
        for i in range(oh):
            for j in range(ow):
                share[0] = g[i * ow + j] / _avg_divisor(rows, cols, i, j, count_include_pad,
                                                       divisor_override)
                for h in range(rows[i, 0], rows[i, 1]):
                    for w in range(cols[j, 0], cols[j, 1]):
                        target[np.uint64(h * width + w)] += share[0]


@config.jit(parallel=True)
def _avg_pool_bwd(grad_out, grad_x, width, oh, ow, geo, count_include_pad, divisor_override,
                  per, parallel):
    planes = grad_x.shape[0]
    if not parallel:
        _avg_unpool_planes(grad_out, grad_x, width, oh, ow, geo, count_include_pad,
                           divisor_override, _START, planes)
    else:
        for piece in prange((planes + per - 1) // per):
            _avg_unpool_planes(grad_out, grad_x, width, oh, ow, geo, count_include_pad,
                               divisor_override, piece * per, min(planes, (piece + 1) * per))


# ----------------------------------------------------------------------------- the kernels
_EMPTY_INNER = "an empty inner dimension"


def _geometry(kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w):
    """The geometry tuple the jitted code takes (Python ints: one compiled specialisation)."""
    return tuple(int(v) for v in (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w))


def _direct(cg, per_group):
    """True when the direct loops convolve: one input channel and few outputs per group."""
    return cg == 1 and per_group <= DIRECT_MAX_CHANNELS


def _workers(units, work):
    """Threads for a GEMM convolution of ``units`` (item, group) units and ``work``
    multiply-adds: 1 below :data:`CONV_PARALLEL_MIN`, else the pool's count up to ``units``."""
    if work < CONV_PARALLEL_MIN:
        return 1
    return max(1, min(numba.get_num_threads(), units))


def _planes_per_piece(plane_size):
    return max(1, CHUNK // max(1, plane_size))


def _identity(kh, kw, stride_h, stride_w, pad_h, pad_w):
    """True when the columns of a convolution are its input: 1x1, stride 1, no padding."""
    return kh == kw == stride_h == stride_w == 1 and pad_h == pad_w == 0


def _gemm_refusal(depth):
    """Why the GEMM convolution cannot run (a fallback reason), or None."""
    if not blas.AVAILABLE:
        return "no usable BLAS"
    return _EMPTY_INNER if depth == 0 else None


def _gemm_plan(n, h, w, oh, ow, groups, depth, og, dtype, geo, identity, units, work):
    """``(plan, workers, scratch)`` of a GEMM convolution (see the drivers): items per unit
    and tiles per item (:data:`TILE_BYTES`, :data:`BATCH_COLUMNS`), the threads for ``units``
    (a function of the plan's ``(items, tiles)``) and ``work`` multiply-adds, and the
    workers' buffers."""
    positions = oh * ow
    item_bytes = depth * dtype.itemsize * positions
    items, tiles = 1, 1
    if item_bytes > TILE_BYTES and not identity:
        tiles = -(-oh // max(1, TILE_BYTES // (depth * dtype.itemsize * ow)))
    else:  # a quarter of the batch at most: units left to share out
        items = max(1, min(TILE_BYTES // max(1, item_bytes), -(-BATCH_COLUMNS // positions),
                           n // 4))
    columns = items * positions if items > 1 else 0 if identity else -(-oh // tiles) * ow
    workers = _workers(units(items, tiles), work)
    # the staging of small "same" images (see _stage): their planes between guard bands
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    same = items > 1 and sh == sw == 1 and (oh, ow) == (h, w)
    guard = max(abs((p * dh - ph) * w + q * dw - pw) for p in (0, kh - 1) for q in (0, kw - 1))
    staged = guard + (depth // (kh * kw)) * (items * h * w + guard) if same else 0
    plan = tuple(int(v) for v in (groups, items, tiles, h, w, oh, ow, columns, same))
    return plan, workers, np.empty((workers, (depth + og) * columns + staged), dtype)


def conv2d_fwd(x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, out):
    """2-D convolution forward: see :func:`fastgrad.backends.numpy_ref.conv2d_fwd`. Per unit
    (an item's group, a tile of its output rows, or a few small items side by side), the input
    unfolded into the thread's column buffer and one GEMM into the output, then the bias;
    depthwise groups by the direct loops."""
    args = (x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, out)
    if not _native(x.dtype, x, weight, bias, out):
        return _fallback("conv2d_fwd", *args)
    if out.size == 0:
        return
    n, _, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = out.shape[2], out.shape[3]
    geo = _geometry(kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    x2, out2 = x.reshape(n, -1), out.reshape(n, -1)
    b = bias if bias is not None else weight.reshape(-1)[:0]
    if _direct(cg, o // groups):
        _direct_fwd(x2, weight.reshape(o, kh * kw), b, bias is not None, out2, o // groups, h,
                    w, oh, ow, geo, _planes_per_piece(oh * ow),
                    out.size * kh * kw >= CONV_PARALLEL_MIN)
        return
    depth = cg * kh * kw
    reason = _gemm_refusal(depth)
    if reason:
        return _fallback("conv2d_fwd", *args, reason=reason)
    identity = _identity(kh, kw, stride_h, stride_w, pad_h, pad_w)
    plan, workers, scratch = _gemm_plan(
        n, h, w, oh, ow, groups, depth, o // groups, x.dtype, geo, identity,
        lambda items, tiles: -(-n // items) * groups * tiles, out.size * depth)
    one = x.dtype.type(1)
    _conv_fwd(ADDRESSES, x2, weight.reshape(o, depth), b, bias is not None, out2, scratch,
              workers, plan, geo, identity, one * 0, one)


def conv2d_bwd_input(grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     grad_x):
    """Input gradient of :func:`conv2d_fwd` (conv_transpose2d's forward): see
    :func:`fastgrad.backends.numpy_ref.conv2d_bwd_input`. Per (item, group), tile by tile (or
    a few small items side by side), one GEMM of the transposed weight into the thread's column
    buffer, folded onto the input (col2im); depthwise groups by the direct loops."""
    args = (grad_out, weight, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, grad_x)
    if not _native(grad_out.dtype, grad_out, weight, grad_x):
        return _fallback("conv2d_bwd_input", *args)
    if grad_x.size == 0:
        return
    n, _, h, w = grad_x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = grad_out.shape[2], grad_out.shape[3]
    geo = _geometry(kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    go2, gx2 = grad_out.reshape(n, -1), grad_x.reshape(n, -1)
    if o and oh * ow and _direct(cg, o // groups):
        _direct_bwd_input(go2, weight.reshape(o, kh * kw), gx2, o // groups, h, w, oh, ow, geo,
                          _planes_per_piece(h * w), grad_out.size * kh * kw >= CONV_PARALLEL_MIN)
        return
    depth = cg * kh * kw
    reason = _gemm_refusal(o * oh * ow)
    if reason:
        return _fallback("conv2d_bwd_input", *args, reason=reason)
    identity = _identity(kh, kw, stride_h, stride_w, pad_h, pad_w)
    plan, workers, scratch = _gemm_plan(
        n, h, w, oh, ow, groups, depth, o // groups, grad_x.dtype, geo, identity,
        lambda items, tiles: -(-n // items) * groups, grad_out.size * depth)
    one = grad_x.dtype.type(1)
    _conv_bwd_input(ADDRESSES, go2, weight.reshape(o, depth), gx2, scratch, workers, plan, geo,
                    identity, one * 0, one)


def conv2d_bwd_weight(grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                      grad_weight, grad_bias):
    """Weight (and bias) gradient of :func:`conv2d_fwd`: see
    :func:`fastgrad.backends.numpy_ref.conv2d_bwd_weight`. The batch in
    ``min(N, WEIGHT_BLOCKS)`` fixed blocks, each summed in item order into its own partial by
    GEMMs of the output gradient with the unfolded input; the partials added in block order
    (bit-identical for every thread count). Depthwise: one output channel per thread."""
    args = (grad_out, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, grad_weight,
            grad_bias)
    if not _native(x.dtype, grad_out, x, grad_weight, grad_bias):
        return _fallback("conv2d_bwd_weight", *args)
    n, _, h, w = x.shape
    o, cg, kh, kw = grad_weight.shape
    oh, ow = grad_out.shape[2], grad_out.shape[3]
    depth = cg * kh * kw
    direct = _direct(cg, o // groups)
    reason = _gemm_refusal(n * oh * ow * depth)
    if reason == _EMPTY_INNER or (reason and not direct):
        return _fallback("conv2d_bwd_weight", *args, reason=reason)
    geo = _geometry(kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    go2, x2 = grad_out.reshape(n, -1), x.reshape(n, -1)
    gw2 = grad_weight.reshape(o, depth)
    want_bias = grad_bias is not None
    if direct:
        _direct_bwd_weight(go2, x2, o // groups, h, w, oh, ow, geo, gw2,
                           grad_bias if want_bias else gw2.reshape(-1)[:0], want_bias,
                           grad_out.size * kh * kw >= CONV_PARALLEL_MIN)
        return
    blocks = min(n, WEIGHT_BLOCKS)
    partial = np.empty((blocks, o * depth), x.dtype)
    bias_partial = np.zeros((blocks, o))
    identity = _identity(kh, kw, stride_h, stride_w, pad_h, pad_w)
    plan, workers, scratch = _gemm_plan(n, h, w, oh, ow, groups, depth, o // groups, x.dtype,
                                        geo, identity, lambda items, tiles: blocks,
                                        grad_out.size * depth)
    one = x.dtype.type(1)
    _conv_bwd_weight(ADDRESSES, go2, x2, partial, bias_partial, want_bias, scratch, workers,
                     plan, geo, identity, one * 0, one)
    _sum_blocks(partial, int(groups), gw2)
    if want_bias:
        grad_bias[...] = bias_partial.sum(axis=0)


def max_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out,
                   indices):
    """Max pooling with the argmax positions: see
    :func:`fastgrad.backends.numpy_ref.max_pool2d_fwd`. Direct loops, pieces of planes in
    parallel."""
    if not (_native(x.dtype, x, out) and indices.dtype == np.int64
            and indices.flags.c_contiguous):
        return _fallback("max_pool2d_fwd", x, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                         pad_w, dil_h, dil_w, out, indices)
    if out.size == 0:
        return
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    geo = _geometry(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    _max_pool_fwd(x.reshape(n * c, h * w), out.reshape(n * c, oh * ow),
                  indices.reshape(n * c, oh * ow), w, oh, ow, geo, _planes_per_piece(h * w),
                  x.size >= POOL_PARALLEL_MIN)


def max_pool2d_bwd(grad_out, indices, grad_x):
    """Gradient of :func:`max_pool2d_fwd`: see :func:`fastgrad.backends.numpy_ref.max_pool2d_bwd`.
    Each plane zeroed and its gradients added at their indices, planes in parallel."""
    if not (_native(grad_x.dtype, grad_out, grad_x) and indices.dtype == np.int64
            and indices.flags.c_contiguous):
        return _fallback("max_pool2d_bwd", grad_out, indices, grad_x)
    if grad_x.size == 0:
        return
    n, c, h, w = grad_x.shape
    planes = n * c
    bad = _max_pool_bwd(grad_out.reshape(planes, -1), indices.reshape(planes, -1),
                        grad_x.reshape(planes, h * w), _planes_per_piece(h * w),
                        grad_x.size >= POOL_PARALLEL_MIN)
    if bad:
        flat = indices.reshape(-1)
        wrong = flat[(flat < 0) | (flat >= h * w)][0]
        raise IndexError(f"index {wrong} is out of bounds for a pooling plane of {h * w} "
                         f"elements")


def avg_pool2d_fwd(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                   divisor_override, out):
    """Average pooling: see :func:`fastgrad.backends.numpy_ref.avg_pool2d_fwd`. Direct loops,
    float64 window sums, pieces of planes in parallel."""
    if not _native(x.dtype, x, out):
        return _fallback("avg_pool2d_fwd", x, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                         pad_w, count_include_pad, divisor_override, out)
    if out.size == 0:
        return
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    geo = _geometry(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, 1, 1)
    _avg_pool_fwd(x.reshape(n * c, h * w), out.reshape(n * c, oh * ow), w, oh, ow, geo,
                  bool(count_include_pad), int(divisor_override or 0), _planes_per_piece(h * w),
                  x.size >= POOL_PARALLEL_MIN)


def avg_pool2d_bwd(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                   count_include_pad, divisor_override, grad_x):
    """Gradient of :func:`avg_pool2d_fwd`: see :func:`fastgrad.backends.numpy_ref.avg_pool2d_bwd`.
    Each plane zeroed and each output gradient's share added over its window."""
    if not _native(grad_x.dtype, grad_out, grad_x):
        return _fallback("avg_pool2d_bwd", grad_out, kernel_h, kernel_w, stride_h, stride_w,
                         pad_h, pad_w, count_include_pad, divisor_override, grad_x)
    if grad_x.size == 0:
        return
    n, c, h, w = grad_x.shape
    oh, ow = grad_out.shape[2], grad_out.shape[3]
    geo = _geometry(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, 1, 1)
    _avg_pool_bwd(grad_out.reshape(n * c, oh * ow), grad_x.reshape(n * c, h * w), w, oh, ow,
                  geo, bool(count_include_pad), int(divisor_override or 0),
                  _planes_per_piece(h * w), grad_x.size >= POOL_PARALLEL_MIN)
