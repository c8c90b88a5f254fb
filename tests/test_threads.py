"""Threads and compilation ahead of use: ``fastgrad.set_num_threads``/``get_num_threads``,
``fastgrad.backends.warmup``, and where the Numba cache goes for a read-only install."""
import os
import time

import numpy as np
import pytest

import fastgrad
from fastgrad import backends, config


@pytest.fixture
def restore_threads():
    """The thread count is restored after the test."""
    before = fastgrad.get_num_threads()
    yield
    fastgrad.set_num_threads(before)


# ------------------------------------------------------------------------------ threads
def test_set_num_threads_sets_numba_threads(restore_threads):
    numba = pytest.importorskip("numba")
    for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
        fastgrad.set_num_threads(n)
        assert fastgrad.get_num_threads() == n
        assert numba.get_num_threads() == n
    fastgrad.set_num_threads(np.int64(1))  # NumPy integers are ints
    assert fastgrad.get_num_threads() == 1


def test_set_num_threads_reaches_the_c_kernels(restore_threads):
    if "c" not in backends.available():
        pytest.skip(f"the c backend is unavailable: {backends.describe()['c']}")
    from fastgrad.backends import c
    if not c.OPENMP:
        pytest.skip("the C kernels were built without OpenMP: always one thread")
    for n in (1, 2):
        fastgrad.set_num_threads(n)
        assert c.get_num_threads() == n


def test_a_parallel_kernel_runs_with_one_thread(restore_threads):
    pytest.importorskip("numba")
    from fastgrad.backends.numba_cpu import _arena
    fastgrad.set_num_threads(1)
    values = np.arange(2 * _arena.PARALLEL_MIN["segment_norms"] + 3, dtype=np.float32)
    out = np.empty(1)
    with backends.use("numba"):
        total = backends.K.segment_norms(values, np.array([0, values.size]), 1.0, out)
    assert total == out[0] == float(values.astype(np.float64).sum())


@pytest.mark.parametrize("n", [2.0, "2", None, True])
def test_set_num_threads_rejects_non_integers(n):
    with pytest.raises(TypeError, match=r"n must be an int, got "):
        fastgrad.set_num_threads(n)


def test_set_num_threads_rejects_counts_out_of_range():
    numba = pytest.importorskip("numba")
    largest = numba.config.NUMBA_NUM_THREADS
    before = fastgrad.get_num_threads()
    for n in (0, -1, largest + 1):
        with pytest.raises(ValueError, match=rf"n must be between 1 and {largest} "
                                             rf"\(NUMBA_NUM_THREADS.*got {n}$"):
            fastgrad.set_num_threads(n)
        assert fastgrad.get_num_threads() == before


def test_thread_functions_are_exported():
    assert "set_num_threads" in fastgrad.__all__ and "get_num_threads" in fastgrad.__all__
    assert "spawn" in fastgrad.set_num_threads.__doc__  # the fork caveat is documented


# ------------------------------------------------------------------------------- warmup
def _arena_registry(monkeypatch):
    """The registry restricted to the arena kernels, so the test pays for their compilation
    alone (the layer kernels are warmed by the same loop)."""
    from fastgrad.backends.numba_cpu import _arena
    monkeypatch.setattr(backends, "KERNELS",
                        {name: backends.KERNELS[name] for name in _arena.__all__})
    return _arena


def _dispatchers(module):
    return {name: value for name, value in vars(module).items() if hasattr(value, "signatures")}


def test_warmup_compiles_every_kernel_ahead_of_use(monkeypatch):
    pytest.importorskip("numba")
    arena = _arena_registry(monkeypatch)
    timings = backends.warmup()
    assert list(timings) == ["numba"]
    assert isinstance(timings["numba"], float) and timings["numba"] > 0
    dispatchers = _dispatchers(arena)
    compiled = {name: list(d.signatures) for name, d in dispatchers.items()}
    drivers = [name for name, d in dispatchers.items() if d.targetoptions.get("parallel")]
    assert len(drivers) >= 10
    for name in drivers:
        assert len(compiled[name]) >= 2, f"{name}: one specialisation per dtype"
    # every variant of every kernel now runs without compiling anything
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for dtype in (np.float32, np.float64):
        for name in arena.__all__:
            args = backends.KERNELS[name].example(rng, dtype, 2)
            if name == "adam_step":
                args["max_exp_avg_sq"] = None
            if name == "rmsprop_step":
                args["grad_avg"] = args["momentum_buffer"] = None
            if name == "sgd_step":
                args.update(momentum_buffer=None, momentum=0.0)
            getattr(arena, name)(**args)
    assert time.perf_counter() - started < 0.5  # one compilation takes about a second
    assert {name: list(d.signatures) for name, d in dispatchers.items()} == compiled


def test_warmup_without_jit_backend_returns_no_timing(monkeypatch):
    monkeypatch.setattr(backends, "available", lambda: ["numpy"])
    assert backends.warmup() == {}


# ------------------------------------------------------------------ read-only installs
@pytest.fixture
def no_cache_dir(monkeypatch):
    """NUMBA_CACHE_DIR unset for the test (and restored afterwards)."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR")


def test_cache_goes_to_a_user_directory_when_the_package_is_read_only(monkeypatch, tmp_path,
                                                                      no_cache_dir):
    package = tmp_path / "site-packages" / "fastgrad"
    package.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.fspath(path) == str(
        package) else real_access(path, mode))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    chosen = config.prepare_numba_cache(package_dir=str(package))
    assert chosen == str(tmp_path / "cache" / "fastgrad" / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == chosen
    assert os.path.isdir(chosen)


def test_cache_stays_next_to_a_writable_package(tmp_path, no_cache_dir):
    assert config.prepare_numba_cache(package_dir=str(tmp_path)) is None
    assert "NUMBA_CACHE_DIR" not in os.environ


def test_an_explicit_numba_cache_dir_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert config.prepare_numba_cache(package_dir=str(tmp_path)) == str(tmp_path / "mine")
