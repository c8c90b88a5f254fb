"""CUDA matrix products: gemm, its packed-operand form, and the linear layer's forward and
backward around it.

The product is one tiled shared-memory kernel (:func:`_gemm_tiles`): each block of TILE x TILE
threads computes a TILE x TILE tile of the output, staging TILE-wide slices of op(a) and op(b)
in shared memory; op(a) and op(b) are read by indexing, never copied transposed. Every output
element sums its products over k in ascending order in float64 and is rounded once, so the
result does not depend on the grid. This kernel is the portable product; :func:`product_kernels`
builds the same kernels around another (cuBLAS, through CuPy, for CuPy's arrays).

:func:`gemm_packed` runs the same kernel on the column panels that :func:`gemm_pack` wrote
(the kernel reads a plain B as one panel): the same sums as :func:`gemm` on the unpacked B.

The linear layer's bias and activation are elementwise epilogues after the product; its
backward computes ``g = grad_out * act'(out)``, the bias gradient as a column sum of ``g``
(one thread per column, rows added in order in float64: deterministic, no atomics), then the
two products.
"""
from numba import cuda, float64

from ._activations import NONE, activate, check_activation, derivative
from ._launch import SIMULATED, check_device, grid, tile_grid

__all__ = ["gemm", "gemm_pack", "gemm_packed", "linear_fwd", "linear_bwd"]

#: The side of an output tile and of a block of threads: small under the simulator, where
#: every thread is a Python thread.
TILE = 4 if SIMULATED else 16

#: An empty device vector per dtype: the bias argument of an epilogue without bias.
_EMPTY = {}


def _no_bias(dtype):
    """The empty placeholder for a missing bias of ``dtype``, allocated once."""
    if dtype not in _EMPTY:
        _EMPTY[dtype] = cuda.device_array(0, dtype)
    return _EMPTY[dtype]


# ------------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _element(matrix, row, col, transposed):
    """``op(matrix)[row, col]`` as float64: ``matrix[col, row]`` when ``transposed``."""
    if transposed:
        return float64(matrix[col, row])
    return float64(matrix[row, col])


# ---------------------------------------------------------------------------------- kernels
@cuda.jit(device=True)
def _b_element(panels, row, col, transposed):
    """``op(b)[row, col]`` as float64, b given as ``panels``: column panels (P, K, width) as
    :func:`gemm_pack` writes them (a plain (K, N) matrix is one panel of width N), or with
    ``transposed`` a (1, N, K) view of b itself."""
    if transposed:
        return float64(panels[0, col, row])
    width = panels.shape[2]
    return float64(panels[col // width, row, col % width])


@cuda.jit(cache=True)
def _gemm_tiles(a, trans_a, panels, trans_b, accumulate, out):
    """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``), tile by tile, b read through
    :func:`_b_element`; entries of a staged slice outside the matrices are 0, so they add
    nothing."""
    a_tile = cuda.shared.array((TILE, TILE), float64)
    b_tile = cuda.shared.array((TILE, TILE), float64)
    ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
    rows, cols = out.shape
    depth = a.shape[0] if trans_a else a.shape[1]
    row_tiles = (rows + TILE - 1) // TILE
    col_tiles = (cols + TILE - 1) // TILE
    depth_tiles = (depth + TILE - 1) // TILE
    # every thread of a block takes the same tiles: the barriers below are reached by all
    for tile_row in range(cuda.blockIdx.y, row_tiles, cuda.gridDim.y):
        row = tile_row * TILE + ty
        for tile_col in range(cuda.blockIdx.x, col_tiles, cuda.gridDim.x):
            col = tile_col * TILE + tx
            total = 0.0
            for t in range(depth_tiles):
                k = t * TILE + tx
                a_tile[ty, tx] = _element(a, row, k, trans_a) if row < rows and k < depth \
                    else 0.0
                k = t * TILE + ty
                b_tile[ty, tx] = _b_element(panels, k, col, trans_b) \
                    if k < depth and col < cols else 0.0
                cuda.syncthreads()
                for s in range(TILE):
                    total += a_tile[ty, s] * b_tile[s, tx]
                cuda.syncthreads()
            if row < rows and col < cols:
                if accumulate:
                    total += out[row, col]
                out[row, col] = total


@cuda.jit(cache=True)
def _pack_panels(b, trans_b, packed):
    """``packed[p, k, j] = op(b)[k, p * width + j]``, 0 past op(b)'s last column: one thread
    per element of ``packed``."""
    panels, depth, width = packed.shape
    cols = b.shape[0] if trans_b else b.shape[1]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, packed.size, stride):
        p, k, j = i // (depth * width), (i // width) % depth, i % width
        col = p * width + j
        packed[p, k, j] = _element(b, k, col, trans_b) if col < cols else 0.0


@cuda.jit(cache=True)
def _bias_activation(out, bias, has_bias, activation):
    """``out = act(out + bias)`` in place over a (rows, cols) ``out``, bias along the
    columns (``has_bias`` False: ``bias`` is a placeholder, unread)."""
    cols = out.shape[1]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, stride):
        row, col = i // cols, i % cols
        v = float64(out[row, col])
        if has_bias:
            v += bias[col]
        out[row, col] = activate(v, activation, 1.0)


@cuda.jit(cache=True)
def _activation_grad(grad_out, out, activation, g):
    """``g = grad_out * act'(out)`` elementwise over (rows, cols) arrays."""
    cols = g.shape[1]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, g.size, stride):
        row, col = i // cols, i % cols
        g[row, col] = grad_out[row, col] * derivative(float64(out[row, col]), activation)


@cuda.jit(cache=True)
def _column_sums(matrix, sums):
    """``sums[j] = matrix[:, j].sum()``: one thread per column, rows added in order in
    float64, rounded once."""
    rows, cols = matrix.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, cols, stride):
        total = 0.0
        for n in range(rows):
            total += matrix[n, j]
        sums[j] = total


# ---------------------------------------------------------------------------- the kernels
def tiled_product(a, b, trans_a, trans_b, accumulate, out):
    """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``) by the tiled kernel: the portable
    product of :func:`product_kernels`, and this module's."""
    blocks, threads = tile_grid(*out.shape, TILE)
    _gemm_tiles[blocks, threads](a, bool(trans_a), b.reshape(1, *b.shape), bool(trans_b),
                                 bool(accumulate), out)


def library_product(asarray, matmul):
    """A product for :func:`product_kernels` from an array library's matrix product:
    ``asarray`` views a numba device array as the library's array (no copy), ``matmul(a, b,
    out=None)`` multiplies (cuBLAS for CuPy); a transposed operand is passed as a transposed
    view, which the library reads as such."""
    def product(a, b, trans_a, trans_b, accumulate, out):
        a, b, out = asarray(a), asarray(b), asarray(out)
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if accumulate:
            out += matmul(a, b)
        else:
            matmul(a, b, out=out)
    return product


def product_kernels(product):
    """The kernels made of matrix products and epilogues (``gemm``, ``linear_fwd``,
    ``linear_bwd``), with their products run by ``product(a, b, trans_a, trans_b, accumulate,
    out)``: ``out = op(a) @ op(b)`` (``+=`` with ``accumulate``) on device arrays. The
    products are where a vendor library is fastest (cuBLAS, through CuPy:
    :mod:`fastgrad.backends.cupy_arrays`); the epilogues stay this module's kernels.

    Returns:
        ``{name: kernel}``, each with the reference's signature.
    """
    def gemm(a, b, trans_a, trans_b, accumulate, out):
        """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``): see
        :func:`fastgrad.backends.numpy_ref.gemm`."""
        check_device(a=a, b=b, out=out)
        product(a, b, trans_a, trans_b, accumulate, out)

    def linear_fwd(x, weight, bias, activation, out):
        """``out = act(x @ weight.T + bias)``: see
        :func:`fastgrad.backends.numpy_ref.linear_fwd`. The product, then one elementwise
        epilogue (skipped without bias and activation)."""
        check_device(x=x, weight=weight, bias=bias, out=out)
        check_activation(activation)
        product(x, weight, False, True, False, out)
        if bias is not None or activation != NONE:
            blocks, threads = grid(out.size)
            _bias_activation[blocks, threads](out, _no_bias(out.dtype) if bias is None
                                              else bias, bias is not None, int(activation))

    def linear_bwd(grad_out, x, weight, out, activation, grad_x, grad_weight, grad_bias):
        """Gradients of ``linear_fwd``: see :func:`fastgrad.backends.numpy_ref.linear_bwd`.
        ``g = grad_out * act'(out)`` (a temporary, without activation ``grad_out`` itself),
        its column sums as the bias gradient, then ``grad_x = g @ weight`` and
        ``grad_weight = g.T @ x``."""
        check_device(grad_out=grad_out, x=x, weight=weight, out=out, grad_x=grad_x,
                     grad_weight=grad_weight, grad_bias=grad_bias)
        check_activation(activation)
        g = grad_out
        if activation != NONE:
            g = cuda.device_array(grad_out.shape, grad_out.dtype)
            blocks, threads = grid(g.size)
            _activation_grad[blocks, threads](grad_out, out, int(activation), g)
        if grad_bias is not None:
            blocks, threads = grid(g.shape[1])
            _column_sums[blocks, threads](g, grad_bias)
        if grad_x is not None:
            product(g, weight, False, False, False, grad_x)
        if grad_weight is not None:
            product(g, x, True, False, False, grad_weight)

    return {"gemm": gemm, "linear_fwd": linear_fwd, "linear_bwd": linear_bwd}


def gemm_pack(b, trans_b, packed):
    """Pack ``op(b)`` into column panels: see :func:`fastgrad.backends.numpy_ref.gemm_pack`."""
    check_device(b=b, packed=packed)
    blocks, threads = grid(packed.size)
    _pack_panels[blocks, threads](b, bool(trans_b), packed)


def gemm_packed(a, packed, accumulate, out):
    """``out = a @ B`` (``+=`` with ``accumulate``) from B's panels: see
    :func:`fastgrad.backends.numpy_ref.gemm_packed`."""
    check_device(a=a, packed=packed, out=out)
    blocks, threads = tile_grid(*out.shape, TILE)
    _gemm_tiles[blocks, threads](a, False, packed, False, bool(accumulate), out)


_TILED = product_kernels(tiled_product)
gemm, linear_fwd, linear_bwd = _TILED["gemm"], _TILED["linear_fwd"], _TILED["linear_bwd"]
