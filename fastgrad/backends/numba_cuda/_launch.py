"""Launch configuration for every CUDA kernel, in one place.

Kernels are grid-stride loops, correct for any grid; :func:`grid` picks one from the element
count. A reduction's result depends on how its elements are split into blocks, so the split is
a function of the element count alone (never of the device): the same inputs give the same
bits on any GPU and on every run.
"""
import math

from numba import config as _config

#: True under Numba's CUDA simulator (every simulated thread is a Python thread: small grids).
SIMULATED = bool(_config.ENABLE_CUDASIM)
#: Threads per block: a power of two (block reductions halve it), 256 on a GPU.
THREADS = 8 if SIMULATED else 256
#: The most blocks a grid-stride launch uses.
MAX_BLOCKS = 2 if SIMULATED else 1024


def blocks(n):
    """The number of blocks for ``n`` elements: enough for one element per thread, at most
    :data:`MAX_BLOCKS`, at least 1."""
    return max(1, min(MAX_BLOCKS, math.ceil(n / THREADS)))


def grid(n):
    """``(blocks, threads)`` for a grid-stride kernel over ``n`` elements."""
    return blocks(n), THREADS


if SIMULATED:  # the simulator's device arrays have no __cuda_array_interface__
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _SIMULATED_ARRAY
else:
    _SIMULATED_ARRAY = ()


def check_device(**arrays):
    """A TypeError naming the first of ``arrays`` (None skipped) that is not a device array:
    a host array would be copied to the device and back on every launch, silently."""
    for name, array in arrays.items():
        if array is not None and not (hasattr(array, "__cuda_array_interface__")
                                      or isinstance(array, _SIMULATED_ARRAY)):
            raise TypeError(f"{name} must be a CUDA device array (with "
                            f"__cuda_array_interface__), got {type(array).__name__}")


def segment_grid(segments):
    """``(blocks, threads)`` for kernels that give one block to a segment (an arena
    parameter, a row, a channel) at a time: each block loops over segments, so the result does
    not depend on the number of blocks."""
    return max(1, min(segments, MAX_BLOCKS)), THREADS


def tile_grid(rows, cols, tile):
    """``(blocks, threads)`` of a 2-D launch over a (rows, cols) output in ``tile`` x ``tile``
    tiles: x along the columns, y along the rows, at most :data:`MAX_BLOCKS` blocks per side
    (the kernel loops over the tiles beyond)."""
    def side(n):
        return max(1, min(MAX_BLOCKS, math.ceil(n / tile)))
    return (side(cols), side(rows)), (tile, tile)
