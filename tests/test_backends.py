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
