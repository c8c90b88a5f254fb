"""Data-parallel training under a real ``mpiexec -n 2`` launch: collectives, DDP with
accumulation, clipping, skipping and monitoring, SyncBatchNorm, DistributedSampler,
``fastgrad train`` and its checkpoints, and the abort of a failing job.

Each launch starts two Python processes that import fastgrad (seconds), so the checks are
batched into few launches (tests/mpi/worker.py). Skipped without mpi4py or mpiexec; every
launch runs under a timeout.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.distributed as dist
from fastgrad.train import train_digits

ROOT = Path(fg.__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "mpi" / "worker.py"
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or \
    shutil.which("mpiexec")
TIMEOUT = 240  # seconds; a cold Numba cache compiles the kernels in both ranks

pytestmark = pytest.mark.skipif(not (MPIEXEC and dist.is_mpi_available()),
                                reason="needs mpi4py and mpiexec: pip install 'fastgrad[mpi]'")


def _mpiexec(*command, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    return subprocess.run([MPIEXEC, "-n", "2", *command], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, cwd=cwd)


def _worker_module():
    spec = importlib.util.spec_from_file_location("mpi_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The two ranks' results of one ``worker.py checks`` launch."""
    out = tmp_path_factory.mktemp("mpi")
    result = _mpiexec(sys.executable, str(WORKER), "checks", str(out), cwd=out)
    assert result.returncode == 0, result.stderr
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


def test_collectives_give_every_rank_the_result(launched):
    for rank, results in enumerate(launched):
        assert results["world"] == 2
        np.testing.assert_array_equal(results["sum"], [3, 3, 3])          # 1 + 2
        np.testing.assert_array_equal(results["max"], [1, 10])
        np.testing.assert_array_equal(results["avg"], [1, 1, 1, 1])       # (0 + 2) / 2
        np.testing.assert_array_equal(results["bcast"], np.arange(5) * 2)  # rank 1's


def test_ddp_ranks_stay_bit_identical_and_match_one_process_with_the_global_batch(launched):
    first, second = launched
    params = [k for k in first if k.startswith("param.")]
    assert len(params) == 6
    for key in params + ["clip_norms", "monitor.global_norm", "monitor.grad_norm"]:
        assert np.array_equal(first[key], second[key]), key  # bit for bit: same decisions
    # the inf in rank 1's data poisoned the averaged gradient on both ranks: both skipped
    assert first["skipped"] == second["skipped"] == 1
    reference = _worker_module().train_run(None)
    assert reference["skipped"] == 1
    for key in params + ["clip_norms", "monitor.global_norm"]:
        np.testing.assert_allclose(first[key], reference[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    # the run moved the weights far from where rank 1 started (rank 0's seed was broadcast)
    assert np.abs(first["param.0.weight"]).max() > 0


def test_syncbatchnorm_equals_batchnorm_over_the_concatenated_batch(launched):
    worker = _worker_module()
    model = worker.syncbn_model(fg.nn.BatchNorm1d)
    inputs, weights = zip(*(worker.syncbn_batch(rank) for rank in (0, 1)))
    x = fg.tensor(np.concatenate(inputs), requires_grad=True)
    out = model(x)
    (out * fg.tensor(np.concatenate(weights))).sum().backward()
    assert [r["sbn.out"].shape[0] for r in launched] == [3, 5]  # unequal batches
    np.testing.assert_allclose(np.concatenate([r["sbn.out"] for r in launched]),
                               out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([r["sbn.x_grad"] for r in launched]),
                               x.grad.numpy(), rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        # DDP averages each rank's gradient of its own share of the summed loss
        for results in launched:
            np.testing.assert_allclose(results[f"sbn.grad.{name}"], p.grad.numpy() / 2,
                                       rtol=1e-5, atol=1e-6, err_msg=name)
    for results in launched:
        np.testing.assert_allclose(results["sbn.running_mean"], model[1].running_mean.numpy(),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(results["sbn.running_var"], model[1].running_var.numpy(),
                                   rtol=1e-6, atol=1e-7)


def test_distributed_sampler_shares_cover_the_epoch_disjointly(launched):
    shares = [r["sampler"] for r in launched]
    assert [len(s) for s in shares] == [6, 6]
    # interleaved, the shares are the epoch's common order: 11 indices, padded to 12 by
    # repeating the first
    order = np.stack(shares, 1).reshape(-1)
    assert sorted(order[:11].tolist()) == list(range(11)) and order[11] == order[0]
    expected = fg.utils.data.DistributedSampler(range(11), num_replicas=2, rank=1, seed=3)
    expected.set_epoch(2)
    assert shares[1].tolist() == list(expected)


def test_fastgrad_train_on_two_ranks_matches_one_process_and_resumes_from_rank_0(tmp_path):
    options = ["--hidden", "32", "--batch-size", "64", "--seed", "1"]
    command = [sys.executable, "-m", "fastgrad", "train", *options, "--checkpoint",
               str(tmp_path / "run.safetensors")]
    first = _mpiexec(*command, "--epochs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("epoch   1/2") == 1  # rank 0 alone logs
    assert "2 processes" in first.stdout
    resumed = _mpiexec(*command, "--epochs", "3", "--resume", "--save",
                       str(tmp_path / "final.safetensors"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch   1/3" not in resumed.stdout and resumed.stdout.count("epoch   3/3") == 1

    single = tmp_path / "single.safetensors"
    train_digits(epochs=3, hidden=32, batch_size=64, seed=1, log=None, save=single)
    expected, actual = fg.load(single), fg.load(tmp_path / "final.safetensors")
    assert list(actual) == list(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key].numpy(), expected[key].numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=key)


def test_an_exception_on_one_rank_aborts_the_whole_job(tmp_path):
    result = _mpiexec(sys.executable, str(WORKER), "fail", cwd=tmp_path)
    assert result.returncode != 0
    assert "ValueError: deliberate failure on rank 1" in result.stderr
    assert "rank 1 of 2 failed with ValueError; aborting every rank" in result.stderr
