"""fastgrad.distributed in one process: the autograd hooks it starts all-reduces from, the
process group API in a world of one, DistributedDataParallel and SyncBatchNorm on a loopback
group, DistributedSampler, and the rank-0-only checkpoint. The real two-process runs are in
test_distributed_mpi.py."""
import subprocess
import sys

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.distributed as dist
from fastgrad import autograd, nn
from fastgrad.distributed import ddp as ddp_module
from fastgrad.distributed.comm import ProcessGroup, ReduceOp, _Done
from fastgrad.train import Checkpointer, ShardedLoaderState, train_digits
from fastgrad.utils.data import DataLoader, DistributedSampler, TensorDataset


class Loopback(ProcessGroup):
    """A world of ``size`` ranks that all hold what this process holds: a sum is ``size``
    times the local value, a gather ``size`` copies. Records the collectives it runs."""

    def __init__(self, size=2, rank=0):
        self._size, self._rank, self.calls, self.aborted = size, rank, [], None

    def rank(self):
        return self._rank

    def size(self):
        return self._size

    def allreduce(self, array, op=ReduceOp.SUM):
        self.calls.append(("allreduce", array.size))
        if op is ReduceOp.SUM:
            array *= self._size

    def iallreduce(self, array, op=ReduceOp.SUM):
        self.calls.append(("iallreduce", array.size))
        if op is ReduceOp.SUM:
            array *= self._size
        return _Done()

    def bcast(self, array, root=0):
        self.calls.append(("bcast", array.size))

    def allgather(self, array):
        self.calls.append(("allgather", np.asarray(array).size))
        return np.stack([array] * self._size)

    def barrier(self):
        self.calls.append(("barrier", 0))

    def abort(self, errorcode=1):
        self.aborted = errorcode


@pytest.fixture
def world():
    """The default group for one test: a world of one process."""
    dist.init_process_group()
    yield
    dist.destroy_process_group()


def _mlp(seed=0, widths=(6, 5, 3)):
    fg.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


# ------------------------------------------------------------------------- autograd hooks
def test_post_accumulate_grad_hook_sees_the_whole_gradient_once_per_backward(rng):
    a = fg.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    seen = []
    a.register_hook(lambda g: g * 2)  # tensor hooks run first
    handle = a.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (a * a + a).sum().backward()  # two uses of a: one call, with their sum
    expected = 2 * (2 * a.numpy() + 1)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6)
    (a * 3).sum().backward()      # accumulates: the hook sees .grad, the running sum
    np.testing.assert_allclose(seen[1], expected + 6, rtol=1e-6)
    autograd.grad((a * a).sum(), a)  # accumulates nothing: no call
    assert len(seen) == 2
    handle.remove()
    (a * 3).sum().backward()
    assert len(seen) == 2 and not autograd._post_hook_ids


def test_post_accumulate_grad_hooks_run_after_each_leaf_is_complete_in_backward_order():
    model = _mlp()
    events = []
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(
            lambda t: events.append((names[id(t)], t.grad is not None)))
    model(fg.randn(4, 6)).sum().backward()
    assert sorted(events) == sorted((n, True) for n in names.values())
    # the last layer's gradients are complete first
    assert {n for n, _ in events[:2]} == {"2.weight", "2.bias"}


def test_post_accumulate_grad_hook_matches_torch(rng):
    torch = pytest.importorskip("torch")
    values = rng.standard_normal((2, 3)).astype(np.float32)
    seen = {}
    for lib in (fg, torch):
        w = lib.tensor(values, requires_grad=True)
        w.register_post_accumulate_grad_hook(lambda t, lib=lib: seen.setdefault(
            lib.__name__, []).append(t.grad.detach().numpy().copy()))
        ((w * w).sum() + (w * 3).sum()).backward()
    assert len(seen["fastgrad"]) == len(seen["torch"]) == 1
    np.testing.assert_allclose(seen["fastgrad"][0], seen["torch"][0], rtol=1e-6)


def test_post_accumulate_grad_hook_errors():
    leaf = fg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="cannot be registered on non-leaf tensors"):
        (leaf * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        fg.ones(2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="hook must be callable, got int"):
        leaf.register_post_accumulate_grad_hook(3)


def test_queue_callback_runs_when_the_backward_has_finished():
    a, b = fg.ones(2, requires_grad=True), fg.ones(2, requires_grad=True)
    order = []

    def last():
        order.append(("last", a.grad is not None and b.grad is not None))

    def first():
        order.append(("first", a.grad is not None and b.grad is not None))
        autograd.queue_callback(last)  # a callback may queue another

    a.register_post_accumulate_grad_hook(lambda t: autograd.queue_callback(first))
    (a * b).sum().backward()
    assert order == [("first", True), ("last", True)]
    with pytest.raises(RuntimeError, match="only be called during the backward pass"):
        autograd.queue_callback(first)


# ------------------------------------------------------------------------- process group
def test_the_api_needs_an_initialised_group():
    assert not dist.is_initialized() and dist.is_available()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(fg.ones(2)), lambda: DistributedSampler(range(4))):
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            call()


def test_a_world_of_one_without_mpiexec(world):
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    t = fg.tensor([1.5, -2.0])
    dist.all_reduce(t)
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    dist.broadcast(t, src=0)
    dist.barrier()
    work = dist.all_reduce(t, op=dist.ReduceOp.MAX, async_op=True)
    assert work.wait() is True and work.is_completed()
    np.testing.assert_array_equal(t.numpy(), [1.5, -2.0])
    with pytest.raises(RuntimeError, match="initialize the default process group twice"):
        dist.init_process_group()


@pytest.mark.parametrize("call, error, message", [
    (lambda: dist.all_reduce(np.ones(2)), TypeError, "tensor must be a fastgrad.Tensor"),
    (lambda: dist.all_reduce(fg.ones(3, 2).T), ValueError, "must be contiguous"),
    (lambda: dist.all_reduce(fg.ones(2), op="sum"), TypeError, "op must be"),
    (lambda: dist.all_reduce(fg.ones(2, dtype=fg.int64), op=dist.ReduceOp.AVG), ValueError,
     "AVG needs a floating tensor"),
    (lambda: dist.broadcast(fg.ones(2), src=1), ValueError, r"src must be a rank in \[0, 0\]"),
    (lambda: dist.broadcast(fg.ones(2)), ValueError, "src must be a rank"),
    (lambda: dist.get_rank(group="world"), TypeError, "group must be"),
])
def test_collective_argument_errors(world, call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("options, message", [
    ({"backend": "nccl"}, "backend must be 'mpi' or None"),
    ({"init_method": "tcp://10.0.0.1:23456"}, "init_method must be None"),
    ({"timeout": 30}, "timeout must be None"),
    ({"world_size": 2}, "world_size=2 was asked for, but the launch gave this process "
                        "world_size 1"),
    ({"rank": 1}, "rank=1 was asked for"),
])
def test_init_process_group_argument_errors(options, message):
    with pytest.raises(ValueError, match=message):
        dist.init_process_group(**options)
    assert not dist.is_initialized()


def test_without_mpi4py_one_process_runs_and_a_multi_process_launch_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails as without the extra
    for name in dist._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dist.init_process_group()
    assert isinstance(dist._world, dist.SingleProcessGroup) and dist.get_world_size() == 1
    dist.destroy_process_group()
    monkeypatch.setenv("PMI_SIZE", "2")
    assert dist.launched_world_size() == 2
    with pytest.raises(RuntimeError, match=r"launched as 2 processes.*fastgrad\[mpi\]"):
        dist.init_process_group()


def test_import_fastgrad_imports_nothing_of_mpi():
    code = ("import sys, fastgrad, fastgrad.utils.data, fastgrad.nn; "
            "print('mpi4py' in sys.modules, 'fastgrad.distributed' in sys.modules); "
            "import fastgrad.distributed; print('mpi4py' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["False", "False", "False"], result.stderr


def test_torch_nn_parallel_name_is_the_same_class():
    # torch.nn.parallel.DistributedDataParallel's path, looked up on first use
    from fastgrad.nn.parallel import DistributedDataParallel
    assert DistributedDataParallel is dist.DistributedDataParallel
    assert nn.parallel.DistributedDataParallel is DistributedDataParallel
    with pytest.raises(AttributeError, match="no attribute 'DataParallel'"):
        nn.parallel.DataParallel


def test_an_uncaught_exception_prints_and_aborts_every_rank(monkeypatch, capsys):
    group = Loopback(rank=1)
    monkeypatch.setattr(dist, "_launch_group", lambda: group)
    previous = sys.excepthook
    dist.init_process_group()
    try:
        try:
            raise ValueError("bad batch")
        except ValueError as error:
            sys.excepthook(type(error), error, error.__traceback__)
    finally:
        dist.destroy_process_group()
    assert sys.excepthook is previous and group.aborted == 1
    err = capsys.readouterr().err
    assert "ValueError: bad batch" in err and "rank 1 of 2 failed with ValueError" in err


# ------------------------------------------------------------------ DistributedDataParallel
def _reference_grads(model, x):
    twin = _mlp(widths=[model[0].in_features, model[0].out_features, model[2].out_features])
    twin.load_state_dict(model.state_dict())
    twin(x).sum().backward()
    return [p.grad.numpy() for p in twin.parameters()]


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_ddp_averages_gradients_in_buckets_started_from_backward(with_optimizer):
    group = Loopback()
    model = _mlp(widths=(300, 600, 500))  # 1.9 MiB of float32 parameters
    ddp = dist.DistributedDataParallel(model, process_group=group, bucket_cap_mb=0.5)
    if with_optimizer:  # its arena holds the gradients: buckets are slices of it
        fg.optim.SGD(ddp.parameters(), lr=0.1)
    # reverse order, the first bucket >= 1 MiB (capped at bucket_cap_mb), then >= 0.5 MiB
    assert [[n for n, p in model.named_parameters() if any(p is q for q in b.params)]
            for b in ddp._buckets] == [["2.weight", "2.bias"], ["0.weight", "0.bias"]]
    x = fg.randn(4, 300)
    group.calls.clear()
    ddp(x).sum().backward()
    # each bucket all-reduced once, in bucket order; with the arena, in place
    assert group.calls == [("iallreduce", 600 * 500 + 500), ("iallreduce", 300 * 600 + 600)]
    assert all((b.buffer is None) == with_optimizer for b in ddp._buckets)
    for got, expected in zip(ddp.parameters(), _reference_grads(model, x)):
        np.testing.assert_array_equal(got.grad.numpy(), expected)  # (g / 2) * 2 == g exactly


def test_ddp_bucket_assignment_matches_torch():
    torch = pytest.importorskip("torch")
    sizes = [(10, np.float32), (300000, np.float64), (5, np.float32), (200000, np.float64),
             (70000, np.float32), (3, np.float32), (400000, np.float32)]
    params = [fg.zeros(n, dtype=dtype) for n, dtype in sizes]
    for caps in ([2 ** 20, 25 * 2 ** 20], [2 ** 20, 2 ** 20], [2 ** 19, 3 * 2 ** 20]):
        ours = ddp_module._bucket_assignment(params, *caps)
        theirs, _ = torch.distributed._compute_bucket_assignment_by_size(
            [torch.zeros(n, dtype=getattr(torch, np.dtype(d).name)) for n, d in sizes], caps)
        assert ours == theirs, caps


def test_ddp_no_sync_accumulates_locally_then_reduces_the_sum():
    group = Loopback()
    model = _mlp()
    ddp = dist.DistributedDataParallel(model, process_group=group)
    fg.optim.SGD(ddp.parameters(), lr=0.1)
    x1, x2 = fg.randn(3, 6), fg.randn(3, 6)
    group.calls.clear()
    with ddp.no_sync():
        ddp(x1).sum().backward()
    assert group.calls == [] and ddp.require_backward_grad_sync
    ddp(x2).sum().backward()
    assert [c[0] for c in group.calls] == ["iallreduce"]
    twin = _mlp()
    twin(x1).sum().backward()
    twin(x2).sum().backward()
    for got, expected in zip(ddp.parameters(), twin.parameters()):
        np.testing.assert_allclose(got.grad.numpy(), expected.grad.numpy(), rtol=1e-6)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        return self.used(x)


def test_ddp_unused_parameters_are_an_error_unless_allowed():
    model = _TwoHeads()
    ddp = dist.DistributedDataParallel(model, process_group=Loopback())
    with pytest.raises(RuntimeError, match=r"2 parameter\(s\) received no gradient in this "
                                           r"backward \(unused.weight, unused.bias\)"):
        ddp(fg.randn(2, 3)).sum().backward()
    group = Loopback()
    ddp = dist.DistributedDataParallel(model, process_group=group, find_unused_parameters=True)
    model.zero_grad()
    ddp(fg.randn(2, 3)).sum().backward()
    assert model.used.weight.grad is not None and model.unused.weight.grad is None
    assert ("iallreduce", 2 * 4 + 2 * 4) in group.calls  # their zeros travelled too


def test_ddp_wraps_the_module_as_torch_does():
    group = Loopback()
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ddp = dist.DistributedDataParallel(model, process_group=group)
    # rank 0's parameters and buffers were broadcast at construction
    assert [c for c in group.calls if c[0] == "bcast"] == \
        [("bcast", n) for n in (12, 3, 3, 3, 3, 3, 1)]
    assert ddp.module is model
    assert list(ddp.state_dict()) == ["module." + k for k in model.state_dict()]
    x = fg.randn(5, 4)
    ddp.eval()
    np.testing.assert_array_equal(ddp(x).numpy(), model(x).numpy())
    assert not model.training
    twin = dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)),
                                        process_group=Loopback())
    twin.load_state_dict(ddp.state_dict())
    np.testing.assert_array_equal(twin.module[0].weight.numpy(), model[0].weight.numpy())


def test_ddp_refuses_replicas_that_differ_and_bad_arguments():
    class Mismatched(Loopback):
        def allgather(self, array):
            other = np.array(array)
            other[0] += 1
            return np.stack([array, other])

    with pytest.raises(ValueError, match="parameters differ across ranks"):
        dist.DistributedDataParallel(_mlp(), process_group=Mismatched())
    for options, error, message in [
            ({"device_ids": [0]}, ValueError, "device_ids and output_device must be None"),
            ({"bucket_cap_mb": 0}, ValueError, "bucket_cap_mb must be a positive number"),
            ({"process_group": "world"}, TypeError, "group must be")]:
        with pytest.raises(error, match=message):
            dist.DistributedDataParallel(_mlp(), **options)
    with pytest.raises(TypeError, match="module must be a fastgrad.nn.Module"):
        dist.DistributedDataParallel(lambda x: x, process_group=Loopback())


def test_ddp_in_a_world_of_one_is_the_plain_model(world):
    model = _mlp()
    ddp = dist.DistributedDataParallel(model)
    x = fg.randn(4, 6)
    ddp(x).sum().backward()
    for got, expected in zip(ddp.parameters(), _reference_grads(model, x)):
        np.testing.assert_array_equal(got.grad.numpy(), expected)


# --------------------------------------------------------------------------- SyncBatchNorm
def _pair(norm_class, group=None, **options):
    fg.manual_seed(3)
    sync = nn.SyncBatchNorm(4, process_group=group, **options)
    plain = norm_class(4, **options)
    if sync.affine:
        for p, q in ((sync.weight, plain.weight), (sync.bias, plain.bias)):
            values = np.random.default_rng(1).standard_normal(4).astype(np.float32)
            p.data, q.data = fg.tensor(values), fg.tensor(values)
    return sync, plain


def test_syncbatchnorm_in_a_world_of_one_is_batchnorm(rng):
    sync, plain = _pair(nn.BatchNorm1d)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    inputs = [fg.tensor(x, requires_grad=True) for _ in range(2)]
    outs = [sync(inputs[0]), plain(inputs[1])]
    for out in outs:
        out.pow(2).sum().backward()
    np.testing.assert_array_equal(outs[0].detach().numpy(), outs[1].detach().numpy())
    np.testing.assert_array_equal(inputs[0].grad.numpy(), inputs[1].grad.numpy())
    np.testing.assert_array_equal(sync.running_var.numpy(), plain.running_var.numpy())


@pytest.mark.parametrize("shape, norm_class, momentum", [((5, 4), nn.BatchNorm1d, 0.1),
                                                         ((3, 4, 2, 3), nn.BatchNorm2d, None)])
def test_syncbatchnorm_over_ranks_is_batchnorm_over_their_concatenated_batches(
        rng, shape, norm_class, momentum):
    # with the loopback group the other rank holds the same batch: the statistics and the
    # reduced sums are those of [x; x], and rank 0's input gradient is that of its copy
    group = Loopback()
    sync, plain = _pair(norm_class, group, momentum=momentum)
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 1
    dy = rng.standard_normal(shape).astype(np.float32)
    mine = fg.tensor(x, requires_grad=True)
    (sync(mine) * fg.tensor(dy)).sum().backward()
    copies = [fg.tensor(x, requires_grad=True) for _ in range(2)]
    both = plain(fg.cat(copies))
    (both * fg.tensor(np.concatenate([dy, dy]))).sum().backward()
    assert [c[0] for c in group.calls] == ["allgather", "allreduce"]
    np.testing.assert_allclose(mine.grad.numpy(), copies[0].grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sync.weight.grad.numpy() * 2, plain.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-5)  # this rank's half of the sum
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(sync, name).numpy(), getattr(plain, name).numpy(),
                                   rtol=1e-6, err_msg=name)
    sync.eval(), plain.eval()
    group.calls.clear()
    np.testing.assert_array_equal(sync(fg.tensor(x)).numpy(), plain(fg.tensor(x)).numpy())
    assert group.calls == []  # evaluation uses the running statistics: no communication


def test_syncbatchnorm_errors():
    norm = nn.SyncBatchNorm(3, process_group=Loopback())
    with pytest.raises(ValueError, match=r"expected at least 2D input \(got 1D input\)"):
        norm(fg.ones(3))
    with pytest.raises(RuntimeError, match="has 2 channels"):
        norm(fg.ones(4, 2))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.SyncBatchNorm(3, process_group=Loopback(size=1))(fg.ones(1, 3))


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_state_dict_keys():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4),
                          nn.Sequential(nn.BatchNorm2d(2, affine=False)))
    model[1].eval()
    weight, running = model[1].weight, model[2][0].running_mean
    keys = list(model.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nn.SyncBatchNorm)
    assert isinstance(model[2][0], nn.SyncBatchNorm) and not model[1].training
    assert model[1].weight is weight and model[2][0].running_mean is running
    assert list(model.state_dict()) == keys
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                 torch.nn.Sequential(torch.nn.BatchNorm2d(2, affine=False)))
    theirs = torch.nn.SyncBatchNorm.convert_sync_batchnorm(theirs)
    assert list(theirs.state_dict()) == keys


# ---------------------------------------------------------------------- DistributedSampler
@pytest.mark.parametrize("size", [0, 1, 2, 5, 11])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_shares_as_torch(size, replicas, drop_last):
    torch = pytest.importorskip("torch")
    for rank in range(replicas):
        ours = DistributedSampler(range(size), replicas, rank, shuffle=False,
                                  drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(range(size), replicas, rank,
                                                     shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_one_common_order_per_epoch():
    def shares(epoch, seed=0, drop_last=False):
        samplers = [DistributedSampler(range(10), 3, r, seed=seed, drop_last=drop_last)
                    for r in range(3)]
        for s in samplers:
            s.set_epoch(epoch)
        return [list(s) for s in samplers]

    first = shares(0)
    assert [len(s) for s in first] == [4, 4, 4]
    order = [i for row in zip(*first) for i in row]  # the padded common order
    assert sorted(order[:10]) == list(range(10)) and order[10:] == order[:2]
    assert shares(0) == first and shares(1) != first and shares(0, seed=1) != first
    cut = [i for row in zip(*shares(0, drop_last=True)) for i in row]
    assert len(cut) == 9 and len(set(cut)) == 9
    assert fg.utils.data.distributed.DistributedSampler is DistributedSampler


def test_distributed_sampler_errors():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval "
                                         r"\[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(TypeError, match="shuffle must be a bool"):
        DistributedSampler(range(4), 2, 0, shuffle=1)
    with pytest.raises(TypeError, match="epoch must be an int"):
        DistributedSampler(range(4), 2, 0).set_epoch(1.0)


def test_a_loader_over_a_distributed_sampler_checkpoints_its_share():
    dataset = TensorDataset(fg.arange(10))
    sampler = DistributedSampler(dataset, 2, 1, seed=4)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler)
    epoch = iter(loader)
    next(epoch)
    state = loader.state_dict()
    rest = [b[0].tolist() for b in epoch]
    fresh = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, 2, 1, seed=4))
    fresh.load_state_dict(state)
    assert [b[0].tolist() for b in fresh] == rest and len(rest) == 2


# ------------------------------------------------------------------------------ training
def test_rank_0s_loader_position_restores_every_rank():
    dataset = TensorDataset(fg.arange(20))

    def rank_loader(rank):
        sampler = DistributedSampler(dataset, 2, rank, seed=1)
        return DataLoader(dataset, batch_size=3, sampler=sampler), sampler

    loaders = [rank_loader(rank) for rank in (0, 1)]
    epochs = []
    for loader, sampler in loaders:
        sampler.set_epoch(5)
        epochs.append(iter(loader))
        next(epochs[-1])
    state = ShardedLoaderState(*loaders[0]).state_dict()  # what rank 0 checkpoints
    assert state == {"epoch": 5, "batches_taken": 1}
    rest = [b[0].tolist() for b in epochs[1]]
    fresh, sampler = rank_loader(1)
    ShardedLoaderState(fresh, sampler).load_state_dict(state)
    sampler.set_epoch(5)  # the training loop's call at the epoch's start
    assert [b[0].tolist() for b in fresh] == rest and len(rest) == 3
    with pytest.raises(ValueError, match="keys 'epoch' and 'batches_taken'"):
        ShardedLoaderState(fresh, sampler).load_state_dict(loaders[0][0].state_dict())


def test_checkpoints_are_written_by_rank_0_only(monkeypatch, tmp_path):
    model = nn.Linear(2, 2)
    monkeypatch.setattr(dist, "_world", Loopback(rank=1))
    Checkpointer(tmp_path / "ck.safetensors", model=model).save(step=1)
    assert not (tmp_path / "ck.safetensors").exists()
    monkeypatch.setattr(dist, "_world", Loopback(rank=0))
    Checkpointer(tmp_path / "ck.safetensors", model=model).save(step=1)
    assert (tmp_path / "ck.safetensors").exists()


def test_train_digits_splits_the_global_batch_over_the_ranks(monkeypatch):
    monkeypatch.setattr(dist, "_world", Loopback(size=3))
    with pytest.raises(ValueError, match=r"batch_size must be a multiple of the number of "
                                         r"processes \(3\), got 32"):
        train_digits(epochs=1, batch_size=32, log=None)
