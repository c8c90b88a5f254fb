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
