"""Data-parallel scaling: step times on 1 and 2 MPI ranks, and the all-reduce bandwidth.

    python bench/distributed_scaling.py                  # both workloads, 1 and 2 ranks
    python bench/distributed_scaling.py --ranks 1 2 4 --seconds 5 --json scaling.json

For each workload and rank count the driver launches ``mpiexec -n P`` of this file in worker
mode. Every rank trains its replica under ``DistributedDataParallel`` on its own batch of 64
(weak scaling, PyTorch's convention: the per-process batch is fixed, the global batch is
``64 P``), with one thread per rank (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
``NUMBA_NUM_THREADS`` set to 1, so P ranks need P cores). Rank 0 prints one JSON line: the
median step time, the median time the step spent waiting for the gradient all-reduce at the
end of the backward (the communication the backward did not hide), and the gradient bytes.
Scaling efficiency is ``t(1) / t(P)``: 1 when P ranks each do a step in one rank's time.
The last launch times in-place ``MPI_Allreduce`` of float32 buffers from 8 bytes to 40 MB
on 2 ranks; bus bandwidth is ``2 (P - 1) / P`` times bytes over time (what each link carries
in a ring all-reduce).

Then a paper estimate for 8 and 64 ranks on 10 and 100 Gb/s networks (:data:`NETWORKS`) from
the one-rank step time and the gradient bytes, with the ring all-reduce cost model
(:func:`ring_allreduce_seconds`).

Workloads (the sizes of two of bench/vs_torch.py's): ``mlp``, the 784-256-256-10 ReLU MLP
with cross-entropy and SGD with momentum; ``lstm``, ``nn.LSTM(256, 512)`` over T=50 steps, a
Linear(512, 10) head on the last output, cross-entropy, SGD. docs/distributed.md has a run's figures and what they mean.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 64
WORKLOADS = ("mlp", "lstm")
SIZES = (2, 2 ** 18, 1_576_970, 10_000_000)   # float32 elements: 8 B ... 40 MB
#: The networks of the paper estimate: (name, effective bandwidth in bytes/s, latency in s
#: per message): 90% of the line rate; MPI over TCP on 10 GbE, RDMA (InfiniBand/RoCE) at
#: 100 Gb/s.
NETWORKS = (("10 Gb/s", 0.9 * 10e9 / 8, 25e-6), ("100 Gb/s", 0.9 * 100e9 / 8, 3e-6))
ESTIMATE_RANKS = (8, 64)


def ring_allreduce_seconds(nbytes, ranks, bandwidth, latency, messages=1):
    """The ring all-reduce cost model: each of ``messages`` all-reduces (buckets) takes
    ``2 (P - 1)`` steps of one latency, and every rank sends and receives
    ``2 (P - 1) / P`` of the bytes."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + messages * 2 * (ranks - 1) * latency


def estimate(step_s, nbytes, buckets, ranks, bandwidth, latency):
    """``(no overlap, full overlap)`` efficiency of ``ranks`` ranks: the all-reduce after
    the one-rank step, or hidden behind it (the bound when the backward covers it)."""
    comm = ring_allreduce_seconds(nbytes, ranks, bandwidth, latency, buckets)
    return step_s / (step_s + comm), step_s / max(step_s, comm)


def _build(workload, fg):
    """``(model, inputs, targets)`` of a workload, seeded alike on every rank."""
    rng = np.random.default_rng(0)
    fg.manual_seed(0)
    nn = fg.nn
    if workload == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        x = fg.tensor(rng.standard_normal((BATCH, 784)).astype(np.float32))
    else:
        class LSTMClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.head = nn.LSTM(256, 512), nn.Linear(512, 10)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.head(out[-1])

        model = LSTMClassifier()
        x = fg.tensor(rng.standard_normal((50, BATCH, 256)).astype(np.float32))
    return model, x, fg.tensor(rng.integers(0, 10, BATCH))


def worker(workload, seconds):
    import fastgrad as fg
    import fastgrad.distributed as dist
    dist.init_process_group()
    model, x, y = _build(workload, fg)
    ddp = dist.DistributedDataParallel(model)
    optimizer = fg.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    criterion = fg.nn.CrossEntropyLoss()
    waits = []
    finish = ddp._finish

    def timed_finish():  # the wait at the end of the backward: communication left exposed
        started = time.perf_counter()
        finish()
        waits.append(time.perf_counter() - started)

    ddp._finish = timed_finish

    def step():
        optimizer.zero_grad()
        criterion(ddp(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    dist.barrier()
    times, waits[:] = [], []
    deadline = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
        # every rank must run the same number of steps: rank 0's clock decides
        go_on = fg.tensor(np.array([time.perf_counter() < deadline or len(times) < 5], np.int32))
        dist.broadcast(go_on, src=0)
        if not go_on.item():
            break
    if dist.get_rank() == 0:
        grads = sum(p.numel() * p.element_size() for p in model.parameters())
        print(json.dumps({"workload": workload, "ranks": dist.get_world_size(),
                          "step_s": statistics.median(times),
                          "wait_s": statistics.median(waits) if waits else 0.0,
                          "steps": len(times), "grad_bytes": grads,
                          "buckets": len(ddp._buckets)}), flush=True)


def bandwidth(repeats):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rows = []
    for size in SIZES:
        buffer = np.ones(size, np.float32)
        comm.Allreduce(MPI.IN_PLACE, buffer)
        times = []
        for _ in range(repeats if size > 2 ** 20 else 20 * repeats):
            comm.Barrier()
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer)
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        p = comm.Get_size()
        rows.append({"bytes": buffer.nbytes, "seconds": seconds,
                     "busbw_GBs": 2 * (p - 1) / p * buffer.nbytes / seconds / 1e9})
    if comm.Get_rank() == 0:
        print(json.dumps({"allreduce": rows, "ranks": comm.Get_size(),
                          "library": MPI.Get_library_version().splitlines()[0]}), flush=True)


def _launch(ranks, *arguments, timeout=600):
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, *arguments],
                            capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode:
        raise RuntimeError(f"mpiexec -n {ranks} {' '.join(arguments)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per launch")
    parser.add_argument("--repeats", type=int, default=5, help="timed large all-reduces")
    parser.add_argument("--json", metavar="PATH", help="write the results there too")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.seconds)
    if args.bandwidth:
        return bandwidth(args.repeats)
    results = {"steps": [], "allreduce": None}
    for workload in args.only:
        base = None
        for ranks in args.ranks:
            row = _launch(ranks, "--worker", workload, "--seconds", str(args.seconds))
            base = base or row["step_s"]
            row["efficiency"] = base / row["step_s"]
            results["steps"].append(row)
            print(f"{workload:5s} {ranks} rank(s): step {row['step_s'] * 1e3:8.2f} ms, "
                  f"exposed all-reduce wait {row['wait_s'] * 1e3:7.2f} ms, efficiency "
                  f"{row['efficiency']:.2f} ({row['steps']} steps, "
                  f"{row['grad_bytes'] / 1e6:.2f} MB of gradients in {row['buckets']} "
                  "buckets)")
    for row in (r for r in results["steps"] if r["ranks"] == 1):
        for network, speed, latency in NETWORKS:
            for ranks in ESTIMATE_RANKS:
                serial, hidden = estimate(row["step_s"], row["grad_bytes"], row["buckets"],
                                          ranks, speed, latency)
                print(f"estimate {row['workload']:5s} {ranks:2d} ranks on {network:8s}: "
                      f"efficiency {serial:.2f} without overlap, {hidden:.2f} fully hidden")
    results["allreduce"] = _launch(2, "--bandwidth", "--repeats", str(args.repeats))
    for row in results["allreduce"]["allreduce"]:
        print(f"allreduce 2 ranks {row['bytes']:>10d} B: {row['seconds'] * 1e6:10.1f} us, "
              f"bus bandwidth {row['busbw_GBs']:.2f} GB/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
