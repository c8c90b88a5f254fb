"""The backend registry: available/describe/current/use, K, FASTGRAD_BACKEND, the kernel specs,
and the promise that ``import fastgrad`` stays light."""
import inspect
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import fastgrad
from fastgrad import backends
from fastgrad.backends import KERNELS, K, numpy_ref

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python(code, **env):
    """Run ``code`` in a fresh interpreter with ``env`` added to the environment."""
    environ = {k: v for k, v in os.environ.items() if k != "FASTGRAD_BACKEND"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environ, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def registry(monkeypatch):
    """The registry with private caches for the test, restored afterwards."""
    monkeypatch.setattr(backends, "BACKEND_MODULES", dict(backends.BACKEND_MODULES))
    monkeypatch.setattr(backends, "_modules", dict(backends._modules))
    monkeypatch.setattr(backends, "_reasons", dict(backends._reasons))
    forced, table = backends._forced[0], dict(K.__dict__)
    yield backends
    backends._forced[0] = forced
    K.__dict__.clear()
    K.__dict__.update(table)


@pytest.fixture
def fake(registry, monkeypatch):
    """A fake backend first in the default order implementing only ``fill``, and a broken
    one whose module cannot be imported."""
    module = types.ModuleType("fastgrad_test_fake_backend")
    module.calls = []

    def fill(buffer, value):
        module.calls.append(value)
        buffer.fill(value)

    module.fill = fill
    monkeypatch.setitem(sys.modules, module.__name__, module)
    registry.BACKEND_MODULES["fake"] = module.__name__
    registry.BACKEND_MODULES["broken"] = "fastgrad_test_no_such_backend_module"
    monkeypatch.setattr(registry, "DEFAULT_ORDER", ("fake", "broken", "numpy"))
    monkeypatch.setattr(registry.config, "BACKEND", None)  # as if FASTGRAD_BACKEND were unset
    K.__dict__.clear()  # the next kernel call binds the default order again
    registry._forced[0] = None
    return module


# ------------------------------------------------------------------------ registry queries
def test_available_includes_numpy():
    names = backends.available()
    assert "numpy" in names
    assert names == [n for n in backends.DEFAULT_ORDER if n in names]


def test_describe_has_an_entry_per_backend():
    status = backends.describe()
    assert list(status) == list(backends.DEFAULT_ORDER)
    assert set(status) == set(backends.BACKEND_MODULES)
    assert status["numpy"] == f"available ({len(KERNELS)} of {len(KERNELS)} kernels)"


def test_current_is_an_available_backend():
    assert backends.current() in backends.available()
    with backends.use("numpy"):
        assert backends.current() == "numpy"


def test_use_as_a_function(registry):
    backends.use("numpy")
    assert backends.current() == "numpy"
    for name, spec in KERNELS.items():
        assert getattr(K, name) is spec.reference, name


def test_unknown_backend_is_value_error_listing_available_ones(registry):
    with backends.use("numpy"):
        with pytest.raises(ValueError, match=r"unknown backend 'bogus'.*available backends.*"
                                             r"'numpy'"):
            backends.use("bogus")
        assert backends.current() == "numpy"  # the failed switch changed nothing
        assert K.fill is numpy_ref.fill


def test_default_order_resolves_per_kernel_and_describes_why(fake):
    assert backends.available() == ["fake", "numpy"]
    status = backends.describe()
    assert status["fake"] == f"available (1 of {len(KERNELS)} kernels)"
    assert status["broken"].startswith("unavailable (ModuleNotFoundError")
    assert "fastgrad_test_no_such_backend_module" in status["broken"]
    assert backends.current() == "fake"
    assert K.fill is fake.fill
    assert K.linear_fwd is numpy_ref.linear_fwd  # the fake lacks it: the next in order


def test_use_as_a_context_manager_restores_the_previous_choice(fake):
    buffer = np.ones(4)
    K.fill(buffer, 2.0)
    assert fake.calls == [2.0]
    with backends.use("numpy") as chosen:
        assert isinstance(chosen, backends.use)
        assert backends.current() == "numpy"
        K.fill(buffer, 3.0)
        assert fake.calls == [2.0]
    assert backends.current() == "fake" and K.fill is fake.fill  # the default order again

    with backends.use("fake"):
        with backends.use("numpy"):
            assert K.fill is numpy_ref.fill
        assert backends.current() == "fake"  # the inner exit restores the outer choice
        with pytest.raises(RuntimeError, match=r"'linear_fwd'.*forced backend 'fake'"):
            K.linear_fwd(None, None, None, 0, None)  # forced: no silent fallback
    assert K.linear_fwd is numpy_ref.linear_fwd

    backends.use("numpy")
    backends.use(None)  # back to the default order
    assert backends.current() == "fake" and K.fill is fake.fill


def test_unavailable_backend_is_value_error_with_the_reason(fake):
    with pytest.raises(ValueError, match=r"'broken' is unavailable \(ModuleNotFoundError.*"
                                         r"available backends: \['fake', 'numpy'\]"):
        backends.use("broken")


@pytest.mark.parametrize("activated", [True, False])
def test_unknown_kernel_is_attribute_error(registry, activated):
    if not activated:
        K.__dict__.clear()
    else:
        K.fill  # noqa: B018 (binds the table)
    with pytest.raises(AttributeError, match=r"no kernel named 'no_such_kernel'.*'fill'"):
        K.no_such_kernel  # noqa: B018


# ------------------------------------------------------------- which backend runs a kernel
def test_describe_kernels_says_which_backend_runs_each_and_why(fake):
    lines = backends.describe(kernels=True)
    assert list(lines) == list(KERNELS)
    assert lines["fill"] == "fake"
    assert lines["linear_fwd"] == "numpy (not implemented by fake)"
    with backends.use("fake"):
        lines = backends.describe(kernels=True)
    assert lines["fill"] == "fake (forced)"
    assert lines["linear_fwd"] == ("not implemented by the forced backend 'fake': calls raise "
                                   "RuntimeError")


@pytest.fixture
def fallbacks():
    """``fallbacks(backend)``: the backend's FALLBACKS, emptied for the test and restored."""
    saved = {}

    def get(backend):
        counter = backends._load(backend).FALLBACKS
        saved.setdefault(backend, (counter, dict(counter)))
        counter.clear()
        return counter
    yield get
    for counter, before in saved.values():
        counter.clear()
        counter.update(before)


@pytest.mark.parametrize("backend", [name for name in backends.available() if name != "numpy"])
def test_a_compiled_backends_fallbacks_are_counted_and_described(backend, fallbacks,
                                                                 registry):
    counter = fallbacks(backend)
    relu = backends.ACTIVATIONS["relu"]
    with backends.use(backend):
        half = np.linspace(-1, 1, 9).astype(np.float16)
        K.activation_fwd(half, relu, np.empty_like(half))
        K.activation_fwd(half, relu, np.empty_like(half))
        strided = np.zeros(18, np.float32)[::2]
        K.activation_fwd(half.astype(np.float32), relu, strided)
        K.activation_fwd(half.astype(np.float32), relu, np.empty(9, np.float32))  # its own
        np.testing.assert_array_equal(strided, np.maximum(half, 0))
        assert counter.of("activation_fwd") == {"float16": 2, "a strided array": 1}
        assert backends.describe(kernels=True)["activation_fwd"] == (
            f"{backend} (forced); float16 -> numpy reference (2 calls); a strided array -> "
            f"numpy reference (1 call)")


# ----------------------------------------------------------------------------------- threads
@pytest.fixture
def threaded(fake):
    """The fake backend with a thread setting (at most 3 threads), and a second one that the
    test loads later."""
    def thread_setting(module, limit=None):
        module.counts = []
        module.set_num_threads = module.counts.append
        module.get_num_threads = lambda: module.counts[-1] if module.counts else 1
        if limit is not None:
            module.THREAD_LIMIT = (limit, "FAKE_THREADS, the fake's pool")
        return module

    thread_setting(fake, limit=3)
    late = thread_setting(types.ModuleType("fastgrad_test_late_backend"))
    sys.modules[late.__name__] = late
    backends.BACKEND_MODULES["late"] = late.__name__
    previous = backends._threads[0]
    backends._threads[0] = None  # no count requested yet (earlier tests may have set one)
    yield fake, late
    del sys.modules[late.__name__]
    backends._threads[0] = previous


def test_set_num_threads_goes_through_the_registry(threaded, monkeypatch):
    fake, late = threaded
    monkeypatch.setattr(fastgrad.threads, "_threadpoolctl", lambda: None)
    assert backends.thread_limit() == (3, "FAKE_THREADS, the fake's pool")
    fastgrad.set_num_threads(2)
    assert fake.counts == [2]
    assert fastgrad.get_num_threads() == 2  # the first backend in the default order's count
    with pytest.raises(ValueError, match=r"n must be between 1 and 3 \(FAKE_THREADS, the "
                                         r"fake's pool\), got 4"):
        fastgrad.set_num_threads(4)
    assert fake.counts == [2]
    assert backends._load("late") is late and late.counts == [2]  # loaded later: set on load


def test_nothing_outside_the_backends_imports_numba_or_cffi():
    """Numba and cffi stay inside fastgrad/backends/, except config's one Numba flags helper."""
    offenders = []
    for path in sorted((ROOT / "fastgrad").rglob("*.py")):
        relative = path.relative_to(ROOT / "fastgrad").as_posix()
        if relative.startswith("backends/"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0].strip()
            if code.startswith(("import numba", "from numba", "import cffi", "from cffi")):
                offenders.append(f"fastgrad/{relative}: {code}")
    assert offenders == ["fastgrad/config.py: import numba"], offenders


# ------------------------------------------------------------------------------ the kernels
def test_every_declared_kernel_is_implemented_by_numpy():
    assert {"linear_fwd", "linear_bwd", "cross_entropy_fwd", "cross_entropy_bwd", "fill",
            "segment_norms", "sgd_step"} <= set(KERNELS)
    for name, spec in KERNELS.items():
        assert spec.name == name
        assert getattr(numpy_ref, name) is spec.reference, name


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_spec_is_complete(name):
    spec = KERNELS[name]
    arguments = inspect.signature(spec.reference).parameters
    assert spec.writes and set(spec.writes) <= set(arguments), spec.writes
    assert 1 in spec.sizes and any(s % 2 == 1 and s > 1 for s in spec.sizes)
    assert spec.bench_sizes
    assert {np.dtype(np.float32), np.dtype(np.float64)} <= set(spec.tolerances)
    example = spec.example(np.random.default_rng(0), np.float32, spec.sizes[0])
    assert set(example) == set(arguments)  # an example is a complete call
    assert spec.variants
    for variant in spec.variants:  # and so is each variant's
        args = spec.arguments(np.random.default_rng(0), np.float32, spec.sizes[0], variant)
        assert set(args) == set(arguments), variant


def test_a_variant_naming_an_unknown_argument_is_refused():
    with pytest.raises(TypeError, match=r"variant of kernel 'twice' sets \['scale'\]"):
        @backends.kernel(writes=("out",), example=lambda rng, dtype, size: {},
                         variants={"scaled": {"scale": 2.0}})
        def twice(x, out):
            """Not registered: the declaration fails."""
    assert "twice" not in KERNELS


# ----------------------------------------------------------------------- FASTGRAD_BACKEND
_USE_A_KERNEL = """
import numpy as np
import fastgrad
from fastgrad import nn
print("imported", flush=True)
out = nn.Linear(3, 2)(fastgrad.ones(4, 3))
print("current", fastgrad.backends.current(), tuple(out.shape))
"""


@pytest.mark.parametrize("value", ["numpy", ""])
def test_fastgrad_backend_environment_variable_selects_a_backend(value):
    result = _python(_USE_A_KERNEL, FASTGRAD_BACKEND=value)
    assert result.returncode == 0, result.stderr
    expected = value or backends.available()[0]  # unset: the first of the default order
    assert f"current {expected} (4, 2)" in result.stdout


def test_bogus_fastgrad_backend_fails_at_first_kernel_use():
    result = _python(_USE_A_KERNEL, FASTGRAD_BACKEND="bogus")
    assert result.returncode != 0
    assert "imported" in result.stdout  # import stays lazy
    assert "current" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: unknown backend 'bogus'"), result.stderr
    assert f"available backends: {backends.available()}" in last


def test_import_fastgrad_does_not_import_jit_or_ffi_modules():
    code = ("import sys, fastgrad, fastgrad.nn, fastgrad.optim\n"
            "print(sorted(m for m in ('numba', 'llvmlite', 'cffi', '_cffi_backend') "
            "if m in sys.modules))")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_diagnostics_load_on_first_access():
    code = ("import sys, fastgrad\n"
            "print('fastgrad.diagnostics' in sys.modules)\n"
            "print(fastgrad.diagnostics.GradientMonitor.__name__)")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "GradientMonitor"]
