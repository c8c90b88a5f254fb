"""fastgrad.memory: on glibc, importing fastgrad makes malloc keep freed arrays' memory, so a
step's arrays stop page-faulting in every step; FASTGRAD_MALLOC=system leaves malloc alone."""
import json
import os
import subprocess
import sys

import pytest

import fastgrad
from fastgrad import memory

GLIBC = sys.platform.startswith("linux") and bool(
    getattr(os, "confstr", lambda name: None)("CS_GNU_LIBC_VERSION"))

#: Four 6 MB arrays made, written and freed 20 times after ``import fastgrad``: with glibc's
#: own settings their pages are unmapped or trimmed at each free and fault in again (about
#: 4 x 1,465 minor faults per round); kept, they fault in once.
SCRIPT = """
import json, resource, sys
import numpy as np
import fastgrad
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    arrays = [np.ones(1_500_000, np.float32) for _ in range(4)]
    del arrays
start = faults()
for _ in range(20):
    arrays = [np.ones(1_500_000, np.float32) for _ in range(4)]
    del arrays
print(json.dumps({"faults": (faults() - start) / 20, "applied": fastgrad.memory.applied}))
"""


def _run(choice):
    env = dict(os.environ)
    env.pop("FASTGRAD_MALLOC", None)
    if choice is not None:
        env["FASTGRAD_MALLOC"] = choice
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not GLIBC, reason="malloc is tuned on glibc only")
def test_import_keeps_freed_arrays_memory_and_system_choice_leaves_malloc_alone():
    tuned, system = _run(None), _run("system")
    assert tuned["applied"] == {name: value for name, (_, value) in memory.SETTINGS.items()}
    assert system["applied"] == {}
    assert tuned["faults"] < 50, tuned
    assert system["faults"] > 1000, system


@pytest.mark.skipif(GLIBC, reason="on glibc malloc is tuned")
def test_nothing_changes_outside_glibc():
    assert memory.applied == {}


def test_this_process_was_tuned_as_the_environment_says():
    expected = ({name: value for name, (_, value) in memory.SETTINGS.items()}
                if GLIBC and fastgrad.config.MALLOC == "fastgrad" else {})
    assert memory.applied == expected


def test_system_choice_changes_nothing():
    before = dict(memory.applied)
    assert memory.tune_malloc("system") == before


@pytest.mark.parametrize("choice", ["", "glibc", "System"])
def test_unknown_choice_is_a_value_error_naming_the_variable(choice):
    with pytest.raises(ValueError, match=r"FASTGRAD_MALLOC must be one of fastgrad, system, "
                                         rf"got {choice!r}"):
        memory.tune_malloc(choice)


def test_unknown_choice_in_the_environment_stops_the_import_with_that_error():
    env = dict(os.environ, FASTGRAD_MALLOC="jemalloc")
    result = subprocess.run([sys.executable, "-c", "import fastgrad"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert ("ValueError: FASTGRAD_MALLOC must be one of fastgrad, system, got 'jemalloc'"
            in result.stderr)
