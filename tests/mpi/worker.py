"""The program that tests/test_distributed_mpi.py launches under ``mpiexec -n 2``.

``worker.py checks OUT``: every check of one launch (an MPI start costs seconds): collectives,
a data-parallel training run, SyncBatchNorm, DistributedSampler; each rank saves what it
computed in ``OUT/rank<r>.npz`` for the test to compare across ranks and with the
single-process references below (which the test runs in its own process).
``worker.py fail``: rank 1 raises while rank 0 waits in a barrier: the job must abort.
"""
import sys

import numpy as np

import fastgrad as fg
import fastgrad.distributed as dist
from fastgrad import nn, optim
from fastgrad.diagnostics import GradientMonitor
from fastgrad.utils.data import DistributedSampler

STEPS, MICRO, ROWS = 4, 2, 8   # accumulated steps, micro-batches each, rows per rank and batch
NAN_STEP = 2                   # rank 1's second micro-batch of this step holds an inf


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def digits_like(world):
    """Inputs and labels for every micro-batch of every step, all ranks' rows together:
    micro-batch ``(s, m)`` is rows ``[k * world * ROWS, (k + 1) * world * ROWS)``, rank ``r``
    reads the ``r``-th block of ``ROWS`` of them."""
    rng = np.random.default_rng(7)
    rows = (STEPS + 2) * MICRO * world * ROWS
    x = rng.standard_normal((rows, 784)).astype(np.float32)
    y = rng.integers(0, 10, rows)
    first = ((NAN_STEP * MICRO + 1) * world + 1) * ROWS  # rank 1's rows of that micro-batch
    x[first + 3, 5] = np.inf
    return x, y


def train_run(group, world=2):
    """Data-parallel training of :func:`mlp` with gradient accumulation (``no_sync`` on all
    but the last micro-batch), clipping, a non-finite skip and a gradient monitor.

    ``group`` None: the single-process reference, reading all ranks' rows of each
    micro-batch at once. Returns the final parameters and what the guards decided.
    """
    rank = 0 if group is None else group.rank()
    fg.manual_seed(100 + rank)  # the replicas start apart: DDP broadcasts rank 0's weights
    model = mlp()
    if group is None:
        fg.manual_seed(100)
        model = mlp()
    replica = model if group is None else dist.DistributedDataParallel(
        model, bucket_cap_mb=0.25)
    guard = optim.SkipNonFinite(optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                warn=False, max_norm=1.0)
    accumulator = optim.GradientAccumulator(guard, steps=MICRO)
    criterion = nn.CrossEntropyLoss()
    x, y = digits_like(world)
    block = world * ROWS

    def rows(k):  # micro-batch k: all of it for the reference, this rank's block otherwise
        if group is None:
            return slice(k * block, (k + 1) * block)
        return slice(k * block + rank * ROWS, k * block + (rank + 1) * ROWS)

    def backward(k):
        loss = criterion(replica(fg.tensor(x[rows(k)])), fg.tensor(y[rows(k)]))
        with np.errstate(all="ignore"):  # the micro-batch with an inf
            loss.backward()

    for step in range(STEPS):  # accumulation, communicating on the last micro-batch only
        for micro in range(MICRO - 1):
            with replica.no_sync() if group is not None else _nothing():
                backward(step * MICRO + micro)
        backward(step * MICRO + MICRO - 1)
        accumulator.step()
    monitor = GradientMonitor(model, guard)
    clip_norms = []
    for step in range(STEPS, STEPS + 2):  # clipping by hand, the monitor watching
        backward(step * MICRO)
        clip_norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), 0.5)))
        guard.step()
        monitor.step()
        guard.zero_grad()
    history = monitor.history()
    return {**{f"param.{name}": p.numpy().copy() for name, p in model.named_parameters()},
            "skipped": np.array(guard.skipped), "clip_norms": np.array(clip_norms),
            "monitor.global_norm": history["global_norm"],
            "monitor.grad_norm": history["parameter_grad_norm"]}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def syncbn_batch(rank):
    """Rank ``rank``'s inputs and loss weights for the SyncBatchNorm check (ranks differ in
    batch size)."""
    rng = np.random.default_rng(20 + rank)
    rows = 3 + 2 * rank
    return (rng.standard_normal((rows, 5)).astype(np.float32) * 3 + 1,
            rng.standard_normal((rows, 3)).astype(np.float32))


def syncbn_model(norm):
    fg.manual_seed(5)
    return nn.Sequential(nn.Linear(5, 4), norm(4), nn.ReLU(), nn.Linear(4, 3))


def syncbn_run(group):
    """One training forward-backward through SyncBatchNorm under DDP: the outputs, the input
    gradient and the averaged parameter gradients, and the running statistics."""
    model = dist.DistributedDataParallel(syncbn_model(nn.SyncBatchNorm))
    x_data, weights = syncbn_batch(group.rank())
    x = fg.tensor(x_data, requires_grad=True)
    out = model(x)
    (out * fg.tensor(weights)).sum().backward()
    norm = model.module[1]
    return {"sbn.out": out.detach().numpy().copy(), "sbn.x_grad": x.grad.numpy().copy(),
            **{f"sbn.grad.{name}": p.grad.numpy().copy()
               for name, p in model.module.named_parameters()},
            "sbn.running_mean": norm.running_mean.numpy().copy(),
            "sbn.running_var": norm.running_var.numpy().copy()}


def collectives(group):
    rank = dist.get_rank()
    out = {}
    t = fg.tensor(np.full(3, rank + 1.0, np.float32))
    dist.all_reduce(t)
    out["sum"] = t.numpy().copy()
    t = fg.tensor(np.array([rank, 10 - rank], np.int64))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    out["max"] = t.numpy().copy()
    t = fg.tensor(np.full(4, 2.0 * rank, np.float64))
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    out["avg"] = t.numpy().copy()
    t = fg.tensor(np.arange(5, dtype=np.float32) * (rank + 1))
    dist.broadcast(t, src=1)
    out["bcast"] = t.numpy().copy()
    dist.barrier()
    sampler = DistributedSampler(range(11), seed=3)
    sampler.set_epoch(2)
    out["sampler"] = np.array(list(sampler))
    return out


def main(argv):
    dist.init_process_group()
    group = dist._world
    if argv[0] == "fail":
        if group.rank() == 1:
            raise ValueError("deliberate failure on rank 1")
        dist.barrier()  # never completes: rank 1 is gone; the abort must end this rank too
        return
    results = {"world": np.array(dist.get_world_size()), **collectives(group),
               **train_run(group), **syncbn_run(group)}
    np.savez(f"{argv[1]}/rank{group.rank()}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1:])
