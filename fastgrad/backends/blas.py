"""The BLAS that NumPy already loaded, reached directly: GEMM run inside fastgrad's own pool.

Why. NumPy's OpenBLAS runs each matrix product on its own worker threads, which keep spinning
for about 100 ms after the call. A parallel fastgrad kernel started right after a NumPy GEMM
then waits for a core (a 0.15 ms kernel took 4-8 ms on 2 cores), and OpenMP's workers spinning
after a kernel slow the next GEMM the same way. fastgrad therefore keeps a single pool: the
compiled backends split each GEMM into fixed blocks and run them on their own parallel loop
(Numba's ``prange``, the C kernels' OpenMP), each block one single-threaded call of this same
BLAS; the kernels before and after run on the same threads, which are then already awake.

How. The CBLAS ``?gemm`` entry points and the thread-count functions of the BLAS are looked up
by name in the library NumPy links (``dlsym`` through NumPy's extension module, so it works
whether NumPy came as a wheel with its own OpenBLAS or from a distribution). Their addresses
are handed to compiled code as plain integers. While fastgrad's blocks run, BLAS is set to one
thread and set back to its previous count right after (about a microsecond each way), so the
rest of the program, NumPy's own products included, keeps the count it had; only a NumPy
product running at that moment on another Python thread would see one thread.

Which GEMM the blocks call. Where the C kernels are built, fastgrad's own product
(csrc/gemm.inc, ``fg_own_gemm_*``, CBLAS's interface) replaces the BLAS's: on the AMD EPYC
(Zen 5) VM of the benchmarks it made the training steps 1.2-1.6x faster (64-row products above
all, where OpenBLAS spends much of a call copying its operands into its own layout; not yet
measured on Intel CPUs), it has no threads of its own to set, and each element is a blocked sum
in a fixed order.
``FASTGRAD_GEMM=blas`` keeps NumPy's BLAS (:data:`PRODUCTS` says which runs). The module also
hands over that library's product with an operand packed once for many calls (a recurrent
layer's W_hh): :data:`PACKED_PANELS` (0 for each type when that library is not built).

When no usable BLAS is found (another BLAS without a known thread-count function, or no
``dlsym``), :data:`AVAILABLE` is False with the reason in :data:`REASON`, and the backends
fall back to NumPy's products and run their kernels serially up to large sizes.
"""
import ctypes

from .. import config

#: Names tried for each entry point, first match wins: the ILP64 OpenBLAS of NumPy's wheels
#: (``scipy_`` prefix, ``64_`` suffix), a plain ILP64 OpenBLAS, then an LP64 one.
_CANDIDATES = (
    ("scipy_", "64_", 64),
    ("", "64_", 64),
    ("", "", 32),
)

#: CBLAS's enum values.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _numpy_library():
    """A handle whose ``dlsym`` searches NumPy's core extension and the libraries it links."""
    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as core
    return ctypes.CDLL(core.__file__)


def _address(library, name):
    try:
        return ctypes.cast(getattr(library, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def _find():
    """``(sgemm, dgemm, get_threads, set_threads, int_bits, reason)``; addresses are ints,
    all None (and ``reason`` a sentence) when no usable BLAS was found."""
    try:
        library = _numpy_library()
    except OSError as error:
        return None, None, None, None, 0, f"NumPy's BLAS cannot be opened: {error}"
    for prefix, suffix, bits in _CANDIDATES:
        sgemm = _address(library, f"{prefix}cblas_sgemm{suffix}")
        dgemm = _address(library, f"{prefix}cblas_dgemm{suffix}")
        if sgemm is None or dgemm is None:
            continue
        get_threads = _address(library, f"{prefix}openblas_get_num_threads{suffix}")
        set_threads = _address(library, f"{prefix}openblas_set_num_threads{suffix}")
        if get_threads is None or set_threads is None:
            return (None, None, None, None, 0,
                    f"NumPy's BLAS ({prefix}cblas_sgemm{suffix}) is not an OpenBLAS: its "
                    f"thread count cannot be set per call")
        return sgemm, dgemm, get_threads, set_threads, bits, None
    return None, None, None, None, 0, "no CBLAS sgemm/dgemm found in NumPy's BLAS"


SGEMM, DGEMM, GET_THREADS, SET_THREADS, INT_BITS, REASON = _find()

#: True when GEMMs can run as single-threaded BLAS calls on fastgrad's own threads.
AVAILABLE = REASON is None


def _own(name):
    """The float32 and float64 addresses of the C kernels' ``fg_<name>_f32/_f64``, or
    ``(0, 0)`` where that library is not built."""
    try:
        from ._ckernels import ffi, lib
    except ImportError:
        return 0, 0
    return tuple(int(ffi.cast("uintptr_t", getattr(lib, f"fg_{name}_{suffix}")))
                 for suffix in ("f32", "f64"))


#: ``(float32, float64)`` addresses of fastgrad's packed-operand product on one thread's
#: panels ``[lo, hi)``: ``void (const T *a, int64 m, int64 k, const T *packed, int64 n,
#: int accumulate, T *out, int64 lo, int64 hi)``; 0 where the C kernels are not built.
PACKED_PANELS = _own("gemm_packed_panels")


def _products():
    """``(sgemm, dgemm, get_threads, set_threads, int_bits, name)``: fastgrad's own GEMM
    (no thread count to set, 64-bit integers) unless ``FASTGRAD_GEMM=blas`` or the C kernels
    are not built, else the BLAS's; all None without a usable BLAS (the backends then take
    NumPy's products: the blocks need a BLAS's thread switch, or none)."""
    if not AVAILABLE:
        return None, None, None, None, 0, None
    own = _own("own_gemm")
    if config.GEMM == "fastgrad" and all(own):
        return own + (0, 0, 64, "fastgrad")
    return SGEMM, DGEMM, GET_THREADS, SET_THREADS, INT_BITS, "blas"


#: What the compiled backends' product blocks call: ``(sgemm, dgemm, get_threads,
#: set_threads, int_bits, name)``, name ``"fastgrad"`` (its own GEMM: thread functions 0, none
#: to set) or ``"blas"`` (NumPy's).
PRODUCTS = _products()


def python_calls():
    """``(gemm, get_threads, set_threads, packed_panels)`` through ctypes, with the signatures
    of the Numba intrinsics that call the same addresses: what their bodies use when they run
    as plain Python (``NUMBA_DISABLE_JIT=1``, the coverage of the jitted code)."""
    def gemm(address, int_bits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
             ldc):
        integer = ctypes.c_int64 if int_bits == 64 else ctypes.c_int32
        real = ctypes.c_float if address in (SGEMM, PRODUCTS[0]) else ctypes.c_double
        pointer = ctypes.c_void_p
        function = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, integer,
                                    integer, integer, real, pointer, integer, pointer, integer,
                                    real, pointer, integer)(int(address))
        function(ROW_MAJOR, int(trans_a), int(trans_b), int(m), int(n), int(k), float(alpha),
                 int(a), int(lda), int(b), int(ldb), float(beta), int(c), int(ldc))

    def get_threads(address):
        return ctypes.CFUNCTYPE(ctypes.c_int)(int(address))()

    def set_threads(address, count):
        ctypes.CFUNCTYPE(None, ctypes.c_int)(int(address))(int(count))

    def packed_panels(address, a, m, k, packed, n, accumulate, out, lo, hi):
        pointer, integer = ctypes.c_void_p, ctypes.c_int64
        function = ctypes.CFUNCTYPE(None, pointer, integer, integer, pointer, integer,
                                    ctypes.c_int, pointer, integer, integer)(int(address))
        function(int(a), int(m), int(k), int(packed), int(n), int(accumulate), int(out),
                 int(lo), int(hi))

    return gemm, get_threads, set_threads, packed_panels
