"""DistributedDataParallel: one model replica per process, gradients averaged over them."""
import contextlib
import numbers
import zlib

import numpy as np

from .. import autograd
from ..nn.module import Module
from ..tensor import Tensor
from .comm import ReduceOp

_MIB = 1024 * 1024
#: The first bucket's cap in bytes (PyTorch's ``dist._DEFAULT_FIRST_BUCKET_BYTES``): small,
#: so that the first all-reduce starts early in the backward.
FIRST_BUCKET_BYTES = _MIB
#: The cap of the other buckets, in MiB (PyTorch's default ``bucket_cap_mb``).
DEFAULT_BUCKET_CAP_MB = 25


class _Bucket:
    """Parameters whose gradients are all-reduced together, and the reduction in flight.

    Attributes:
        params: the parameters (one dtype), in the order their gradients are expected.
        indices: their positions in the DDP's parameter list.
        pending: how many of them have not received their gradient in this backward.
        request: the all-reduce in flight, or None.
        flat: the array being all-reduced: a slice of the optimiser's gradient arena when
            the bucket's gradients lie there side by side, else :attr:`buffer`.
        buffer: the bucket's own flat array (allocated on first use), into which the
            gradients are copied when they are not an arena slice.
    """

    def __init__(self, params, indices):
        self.params, self.indices = params, indices
        self.dtype = params[0].dtype
        self.numel = sum(p.numel() for p in params)
        self.pending = len(params)
        self.request = self.flat = self.buffer = None
        self._slot = None  # (arena, start, stop) of the last arena slice found

    def arena_slice(self):
        """The bucket's gradients as one slice of an intact arena's gradient buffer, when
        every gradient is its arena view (or missing) and the parameters are neighbours
        there; else None."""
        arena = self.params[0]._arena
        if arena is None or not arena.intact or any(p._arena is not arena for p in self.params):
            return None
        if any(p._grad is not None and p._grad._data is not p._grad_view for p in self.params):
            return None
        if self._slot is None or self._slot[0] is not arena:
            self._slot = None
            where = {id(q): i for i, q in enumerate(arena.params)}
            positions = sorted(where[id(p)] for p in self.params)
            if positions[-1] - positions[0] + 1 == len(positions):
                self._slot = (arena, int(arena.offsets[positions[0]]),
                              int(arena.offsets[positions[-1] + 1]))
        if self._slot is None:
            return None
        _, start, stop = self._slot
        return arena.grad[start:stop]


def _bucket_assignment(params, first_cap, cap):
    """Split ``params`` (in gradient order) into buckets per dtype: a bucket closes once it
    holds at least its cap in bytes, ``first_cap`` for each dtype's first bucket and ``cap``
    after it (PyTorch's ``_compute_bucket_assignment_by_size``).

    Returns:
        Lists of indices into ``params``, ordered by their first index.
    """
    open_buckets, limits, done = {}, {}, []
    for i, p in enumerate(params):
        key = p.dtype
        bucket = open_buckets.setdefault(key, [[], 0])
        bucket[0].append(i)
        bucket[1] += p.numel() * p.dtype.itemsize
        if bucket[1] >= limits.setdefault(key, first_cap):
            done.append(bucket[0])
            limits[key] = cap
            del open_buckets[key]
    done.extend(bucket for bucket, _ in open_buckets.values())
    return sorted(done, key=lambda indices: indices[0])


class DistributedDataParallel(Module):
    """Data-parallel training: ``module`` replicated in every process, each replica fed its
    own part of every batch, gradients averaged over the processes during the backward.

    PyTorch's ``torch.nn.parallel.DistributedDataParallel``. At construction rank 0's
    parameters and buffers are broadcast, so every replica starts alike. In training, each
    process runs forward and ``loss.backward()`` on its own batch; as the backward completes
    the gradients of a bucket of parameters, that bucket's all-reduce starts (a non-blocking
    ``MPI_Iallreduce``, buckets started in the same order on every rank), and the backward goes
    on computing while it travels. When the backward ends, a callback waits for every bucket
    and leaves in each ``.grad`` the mean of the processes' gradients: everything after
    ``backward()`` returns (``clip_grad_norm_``, :class:`~fastgrad.optim.SkipNonFinite`,
    :class:`~fastgrad.optim.GradientAccumulator`, the
    :class:`~fastgrad.diagnostics.GradientMonitor`, the optimiser) sees the same averaged
    gradient on every rank, takes the same decisions, and the parameters stay bit-identical.

    Buckets follow the parameters in reverse order of ``module.parameters()`` (the order a
    sequential model's backward produces them): the first holds at least 1 MiB, the next
    ones at least ``bucket_cap_mb``. When an optimiser has packed the parameters into its
    gradient arena (it does when built over ``model.parameters()``), a bucket is a slice of
    that arena, all-reduced in place without a copy; otherwise gradients are copied into a
    bucket buffer and back. Like PyTorch's default communication hook, each process divides
    its gradients by the world size, then they are summed.

    Args:
        module: the model to replicate.
        device_ids, output_device: must be None (fastgrad runs on the CPU).
        dim: the batch dimension (kept for PyTorch's signature: every process feeds its own
            inputs, nothing is scattered).
        broadcast_buffers: broadcast rank 0's buffers (BatchNorm running statistics) at the
            start of every forward, as PyTorch does.
        init_sync: broadcast rank 0's parameters and buffers at construction.
        process_group: the :class:`~fastgrad.distributed.ProcessGroup` (None: the default
            group, from :func:`~fastgrad.distributed.init_process_group`).
        bucket_cap_mb: the bucket size in MiB after the first bucket (None: 25).
        find_unused_parameters: allow parameters that get no gradient in a backward: they
            count as zero in the average, and a parameter that no rank gave a gradient keeps
            ``grad`` as it was. Without it, such a parameter is an error at the end of the
            backward (PyTorch reports it at the next forward).

    Differences from PyTorch: buckets are fixed from the parameter order at construction
    (PyTorch uses one bucket in the first iteration and rebuilds them from the order it
    observed); no ``static_graph``, ``gradient_as_bucket_view`` (arena slices already are
    views), communication hooks or mixed precision.

    Attributes:
        module: the wrapped model (``state_dict`` keys are prefixed ``"module."``, as
            PyTorch's).
        require_backward_grad_sync: False inside :meth:`no_sync`.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, init_sync=True, process_group=None, bucket_cap_mb=None,
                 find_unused_parameters=False):
        from . import _group
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"module must be a fastgrad.nn.Module, got {type(module).__name__}")
        if device_ids is not None or output_device is not None:
            raise ValueError(f"device_ids and output_device must be None for a CPU module, got "
                             f"device_ids={device_ids!r}, output_device={output_device!r}")
        if bucket_cap_mb is None:
            bucket_cap_mb = DEFAULT_BUCKET_CAP_MB
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, numbers.Real) \
                or not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        self.module = module
        self.dim = dim
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = bucket_cap_mb
        self.process_group = _group(process_group)
        self.require_backward_grad_sync = True
        params = [p for p in module.parameters() if p.requires_grad]
        self._params = params
        _check_same_parameters(self.process_group, params)
        if init_sync:
            self._broadcast([*module.parameters(), *self._buffers_to_sync()])
        # gradients arrive roughly in reverse definition order: bucket that order
        order = list(reversed(range(len(params))))
        cap = int(bucket_cap_mb * _MIB)
        assignment = _bucket_assignment([params[i] for i in order], min(FIRST_BUCKET_BYTES, cap),
                                        cap)
        self._buckets = [_Bucket([params[order[j]] for j in bucket],
                                 [order[j] for j in bucket]) for bucket in assignment]
        self._bucket_of = {}
        for b, bucket in enumerate(self._buckets):
            for i in bucket.indices:
                self._bucket_of[i] = b
        self._reducing = False   # a synchronised backward is expected (set by forward)
        self._started = 0        # buckets whose all-reduce has started, in order
        self._finish_queued = False
        self._ready = [False] * len(params)
        self._handles = [p.register_post_accumulate_grad_hook(self._hook(i))
                         for i, p in enumerate(params)]

    def _buffers_to_sync(self):
        return [b for b in self.module.buffers() if b is not None]

    def _broadcast(self, tensors):
        if self.process_group.size() == 1:
            return
        for t in tensors:
            array = t.numpy()
            if not array.flags.c_contiguous:
                raise ValueError(f"DistributedDataParallel needs contiguous parameters and "
                                 f"buffers, got one of shape {tuple(t.shape)}")
            self.process_group.bcast(array, 0)

    # ------------------------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        """Run the module; when gradients are recorded outside :meth:`no_sync`, the backward
        of this output averages the gradients."""
        if autograd.is_grad_enabled() and self.require_backward_grad_sync:
            self._prepare()
        if self.broadcast_buffers:
            self._broadcast(self._buffers_to_sync())
        return self.module(*inputs, **kwargs)

    def _prepare(self):
        for bucket in self._buckets:
            bucket.pending, bucket.request = len(bucket.params), None
        self._ready = [False] * len(self._params)
        self._started, self._finish_queued, self._reducing = 0, False, True

    @contextlib.contextmanager
    def no_sync(self):
        """A context in which forward-backward passes only accumulate the gradients locally;
        the first synchronised backward after it averages the accumulated sum::

            with ddp.no_sync():
                for x, y in micro_batches[:-1]:
                    loss_fn(ddp(x), y).backward()     # no communication
            loss_fn(ddp(x_last), y_last).backward()   # all-reduce of the sum
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ----------------------------------------------------------------------------- backward
    def _hook(self, index):
        def on_gradient(param):
            if self._reducing:
                self._mark_ready(index)
        return on_gradient

    def _mark_ready(self, index):
        if not self._finish_queued:
            autograd.queue_callback(self._finish)
            self._finish_queued = True
        if self._ready[index]:
            return
        self._ready[index] = True
        bucket = self._buckets[self._bucket_of[index]]
        bucket.pending -= 1
        if bucket.pending == 0:
            self._start_ready_buckets()
        else:
            self.process_group.progress(self._in_flight())

    def _in_flight(self):
        return [b.request for b in self._buckets[:self._started]]

    def _start_ready_buckets(self):
        """Start the all-reduce of each complete bucket whose predecessors have started: the
        same order on every rank, whatever order the gradients arrived in."""
        while self._started < len(self._buckets) and self._buckets[self._started].pending == 0:
            self._start(self._buckets[self._started])
            self._started += 1

    def _start(self, bucket):
        size = self.process_group.size()
        flat = bucket.arena_slice()
        if flat is not None:
            for p in bucket.params:
                if p._grad is None:  # no gradient in this backward (find_unused_parameters)
                    p._grad_view[...] = 0
        else:
            if bucket.buffer is None:
                bucket.buffer = np.empty(bucket.numel, bucket.dtype)
            flat, start = bucket.buffer, 0
            for p in bucket.params:
                stop = start + p.numel()
                if p._grad is None:
                    flat[start:stop] = 0
                else:
                    flat[start:stop] = p._grad._data.reshape(-1)
                start = stop
        bucket.flat = flat
        np.divide(flat, size, out=flat)
        bucket.request = self.process_group.iallreduce(flat, ReduceOp.SUM)

    def _finish(self):
        """At the end of the backward: start what is left, wait for every bucket, and leave
        the averaged gradients in ``.grad``."""
        self._reducing = False
        missing = [i for i, ready in enumerate(self._ready) if not ready]
        if missing and not self.find_unused_parameters:
            self.process_group.waitall(self._in_flight())
            names = {id(p): name for name, p in self.module.named_parameters()}
            listed = ", ".join(names.get(id(self._params[i]), f"parameter {i}")
                               for i in missing[:10])
            raise RuntimeError(
                f"DistributedDataParallel: {len(missing)} parameter(s) received no gradient in "
                f"this backward ({listed}), so their buckets cannot be all-reduced. Make every "
                "parameter take part in the loss, or pass find_unused_parameters=True")
        used = None
        if missing:
            # every rank must learn which parameters any rank used
            used = np.array(self._ready, np.int8)
            used_request = self.process_group.iallreduce(used, ReduceOp.MAX)
            for bucket in self._buckets:
                bucket.pending = 0
            self._start_ready_buckets()
            self.process_group.waitall([used_request])
        self.process_group.waitall(self._in_flight())
        for bucket in self._buckets:
            self._finish_bucket(bucket, used)

    def _finish_bucket(self, bucket, used):
        copied = bucket.flat is bucket.buffer
        start = 0
        for p, i in zip(bucket.params, bucket.indices):
            stop = start + p.numel()
            if used is not None and not used[i]:
                pass  # no rank had a gradient for it: it keeps the one it had
            elif copied:
                values = bucket.flat[start:stop].reshape(p.shape)
                if p._grad is None:
                    p.grad = Tensor(values.copy())
                else:
                    p._grad._data[...] = values
            elif p._grad is None:
                p._grad = Tensor(p._grad_view)
            start = stop
        bucket.request = bucket.flat = None

    def extra_repr(self):
        return (f"world_size={self.process_group.size()}, buckets={len(self._buckets)}, "
                f"bucket_cap_mb={self.bucket_cap_mb}")


def _check_same_parameters(group, params):
    """Refuse to start when the replicas' parameters differ in number, shapes or dtypes (the
    buckets would not match, and the all-reduces would mix up or hang)."""
    if group.size() == 1:
        return
    signature = np.zeros(3, np.int64)
    signature[0] = len(params)
    signature[1] = sum(p.numel() for p in params)
    signature[2] = zlib.crc32(repr([(tuple(p.shape), p.dtype.str) for p in params]).encode())
    every = group.allgather(signature)
    if not (every == signature).all():
        raise ValueError(
            "DistributedDataParallel: the model's parameters differ across ranks (rank, "
            "count, elements, layout hash): "
            + ", ".join(f"({r}, {c}, {n}, {h})" for r, (c, n, h) in enumerate(every.tolist())))
