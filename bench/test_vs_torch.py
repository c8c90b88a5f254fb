"""CI's check of bench/vs_torch.py: its smoke run (tiny sizes, one round) produces a row per
workload, and, where PyTorch is installed, both libraries' first steps agree.

    python -m pytest bench/test_vs_torch.py -q

Without PyTorch (as in CI) only fastgrad's workers run. It times nothing worth reading, so
a timed run (``--benchmark-only``) skips it.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import vs_torch  # bench/ is on sys.path: pytest puts a test file's folder there

HAS_TORCH = importlib.util.find_spec("torch") is not None
LIBRARIES = ["fastgrad"] + (["torch"] if HAS_TORCH else [])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The results file and printed table of ``vs_torch.py --smoke`` with the installed
    libraries."""
    path = tmp_path_factory.mktemp("vs_torch") / "smoke.json"
    completed = subprocess.run(
        [sys.executable, vs_torch.__file__, "--smoke", "--libs", *LIBRARIES, "--json",
         str(path)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(path, encoding="utf-8") as file:
        return json.load(file), completed.stdout


def test_smoke_run_gives_a_row_per_workload(smoke):
    document, printed = smoke
    assert [row["name"] for row in document["rows"]] == list(vs_torch.WORKLOADS)
    for row in document["rows"]:
        fastgrad = row["fastgrad"]
        assert fastgrad.get("errors") == [] and fastgrad["median_s"] > 0, row
        assert fastgrad["check"]["value"] > 0 and fastgrad["backend"], row
        assert f"| {row['label']} | " in printed
    assert document["settings"]["smoke"] and "**smoke sizes**" in printed


def test_adam_rows_share_fastgrads_run(smoke):
    rows = {row["name"]: row for row in smoke[0]["rows"]}
    assert rows["adam_fused"]["fastgrad"] == rows["adam_default"]["fastgrad"]


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_torch_rows_agree_with_fastgrad(smoke):
    for row in smoke[0]["rows"]:
        assert row["torch"].get("errors") == [] and row["torch"]["median_s"] > 0, row
        assert row["ratio"] > 0 and row["check"]["agree"], row["check"]
    options = {row["name"]: row["torch"]["options"] for row in smoke[0]["rows"]}
    assert options["adam_fused"] == {"fused": True} and options["adam_default"] == {}


def test_a_failing_worker_becomes_an_error_row(tmp_path):
    """A worker that cannot run (here: more threads than Numba's pool holds) reports its
    error in its cell; the run still finishes with its table."""
    path = tmp_path / "out.json"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, vs_torch.__file__, "--smoke", "--libs", "fastgrad", "--only", "tiny",
         "--threads", "2", "--json", str(path)], capture_output=True, text=True, timeout=120,
        env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    row = json.loads(path.read_text())["rows"][0]
    assert "median_s" not in row["fastgrad"] and row["ratio"] is None
    assert "| error: ValueError" in completed.stdout


def test_captured_rows_share_pytorchs_run_not_fastgrads(smoke):
    rows = {row["name"]: row for row in smoke[0]["rows"]}
    for name in vs_torch.CAPTURED:
        eager, captured = rows[name], rows[f"{name}_captured"]
        assert eager["fastgrad"]["options"] == {}
        assert captured["fastgrad"]["options"] == {"captured": True}
        assert captured["torch"] == eager["torch"]


@pytest.fixture
def stand_in_cuda():
    """CUDA tensors on the tests' stand-in device (tests/_strict_device.py: arrays that
    refuse hidden host round trips), registered for one test: yields the array type."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests"))
    try:
        from _strict_device import StrictArray, from_host, to_host
    finally:
        sys.path.pop(0)
    from fastgrad.device import register_arrays, unregister_arrays
    register_arrays(StrictArray, "cuda", to_host, from_host)
    yield StrictArray
    unregister_arrays(StrictArray)


@pytest.mark.parametrize("name", list(vs_torch.WORKLOADS))
def test_every_workload_runs_on_a_cuda_device(stand_in_cuda, name):
    """``--device cuda``'s code path, without a GPU: each workload built on the stand-in CUDA
    device (at smoke sizes) computes on device arrays, with no hidden host round trip, and
    its first step checks the same as on the CPU."""
    import fastgrad
    workload = vs_torch.WORKLOADS[name]
    checks = []
    for device in ("cpu", "cuda"):
        made = stand_in_cuda.made
        fw = vs_torch.OnDevice(fastgrad, device)
        step = workload.build(fw, workload.sizes(device, smoke=True),
                              workload.options("fastgrad"))
        for _ in range(2):
            if step.reset is not None:
                step.reset()
            step.run()
            fw.synchronize()
            if len(checks) < 1 + (device == "cuda"):
                checks.append(step.check())
        assert (stand_in_cuda.made > made) == (device == "cuda")
    assert checks[1] == pytest.approx(checks[0], rel=1e-4)


def test_the_gpu_check_script_names_what_exists():
    """bench/gpu_check.sh runs only on a GPU machine, so CI checks that it parses and that
    the tests, scripts and workloads it names still exist."""
    import re
    import shutil
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    path = os.path.join(here, "gpu_check.sh")
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", path]).returncode == 0
    with open(path, encoding="utf-8") as file:
        script = file.read()
    named = re.findall(r"\b((?:tests|bench)/[\w/]+\.(?:py|sh))", script)
    assert named and all(os.path.exists(os.path.join(root, p)) for p in named), named
    only = re.search(r"--only ((?:[\w]+[\s\\]*)+?)--json", script)
    assert only, "the script's vs_torch.py call lists its workloads with --only"
    assert set(only.group(1).replace("\\", " ").split()) <= set(vs_torch.WORKLOADS)
