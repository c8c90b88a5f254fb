"""DistributedSampler: each process of a data-parallel job reads its own share of the data set
(``torch.utils.data.distributed``)."""
import math

import numpy as np

from .sampler import _IndexSampler


class DistributedSampler(_IndexSampler):
    """The indices of one rank's share of ``dataset``, in a new common order every epoch.

    Every rank orders the whole data set alike (a permutation drawn from ``seed + epoch``
    when shuffling), pads the order by repeating its first indices until it divides evenly
    among the ranks (or, with ``drop_last``, drops its tail instead), then takes every
    ``num_replicas``-th index from position ``rank`` on: the ranks' shares are disjoint and
    together cover the (padded) order. Batch ``k`` of every rank together thus form batch
    ``k`` of the whole order, as a single process with the global batch would see it. Call
    :meth:`set_epoch` at the start of each epoch, or every epoch repeats the same order::

        sampler = DistributedSampler(dataset, seed=0)
        loader = DataLoader(dataset, batch_size=32, sampler=sampler)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for x, y in loader: ...

    PyTorch's class and arithmetic (padding, ``drop_last``, ``num_samples``); the shuffled
    orders come from NumPy's PCG64 seeded with ``seed + epoch`` and so differ from
    PyTorch's ``randperm`` for the same seed.

    Args:
        dataset: the data set (only its length is used).
        num_replicas: the number of ranks sharing it (None: the default group's world size).
        rank: this process's rank (None: its rank in the default group).
        shuffle: a new permutation every epoch; False keeps the data set's order.
        seed: the shuffling seed; the same on every rank.
        drop_last: drop the order's tail so that it divides evenly, instead of padding it.

    Raises:
        ValueError: ``num_replicas``/``rank`` are None and the default process group is not
            initialised, or ``rank`` is outside ``[0, num_replicas - 1]``.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            from ... import distributed
            if num_replicas is None:
                num_replicas = distributed.get_world_size()
            if rank is None:
                rank = distributed.get_rank()
        for name, value in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive int, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, "
                             f"{num_replicas - 1}]")
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0

    @property
    def num_samples(self):
        """The number of indices each rank gets per epoch."""
        size = len(self.dataset)
        if self.drop_last and size % self.num_replicas:
            return math.ceil((size - self.num_replicas) / self.num_replicas)
        return math.ceil(size / self.num_replicas)

    @property
    def total_size(self):
        """The length of the padded (or cut) order that the ranks share."""
        return self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use the order of epoch ``epoch`` from the next iteration on (the same on every
        rank for the same epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__} {epoch!r}")
        self.epoch = int(epoch)

    def _indices(self):
        size, total = len(self.dataset), self.total_size
        if self.shuffle:
            order = np.random.Generator(np.random.PCG64(self.seed + self.epoch)).permutation(size)
        else:
            order = np.arange(size, dtype=np.int64)
        if total > size:  # pad by repeating the order from its start (more than once if short)
            order = np.resize(order, total) if size else order
        return order[:total][self.rank:total:self.num_replicas].astype(np.int64)

    def __len__(self):
        return self.num_samples
