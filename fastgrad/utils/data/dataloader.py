"""The loader that batches a dataset, with PyTorch's names and semantics
(``torch.utils.data.DataLoader``).

Any map-style dataset works: samples are fetched one by one (through the dataset's
``__getitems__`` where it has one) and collated with :func:`default_collate` (or your
``collate_fn``). When the batch is default-collated from a :class:`TensorDataset` (or a
:class:`Subset` of one, as :func:`random_split` gives) the loader skips the per-sample work and
cuts each batch by indexing every tensor once with the batch's indices: a few NumPy calls per
batch rather than a Python call per sample, with the same result.

A loader's position can be checkpointed: :meth:`DataLoader.state_dict` records the epoch in
progress (its sample order and how many batches were taken) and the shuffling generator, so a
run resumed from a checkpoint sees exactly the batches the interrupted run would have seen.

Everything is loaded in the calling process: ``num_workers > 0`` is accepted and loads as
``num_workers=0`` does (the same batches, in the same order; ``worker_init_fn`` is not called
and :func:`get_worker_info` returns None, as in PyTorch's main process). ``pin_memory`` has
nothing to pin on the CPU and is ignored.
"""
import itertools
import numbers

import numpy as np

from ... import random
from ...device import contiguous
from ...tensor import Tensor
from .collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import (BatchSampler, RandomSampler, SequentialSampler, batch_count, check_count,
                      draws_arrays)

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]


def get_worker_info():
    """None: fastgrad loads data in the calling process, which PyTorch's main process is."""
    return None


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")


class DataLoader:
    """Iterates over a dataset in batches of Tensors, optionally reshuffled every epoch.

    Args:
        dataset: a map-style dataset (``__getitem__``; ``__len__`` unless a sampler is given)
            or an :class:`IterableDataset`.
        batch_size: samples per batch, a positive int; None turns batching off (each sample
            goes through ``collate_fn``, by default :func:`default_convert`, on its own).
        shuffle: draw a fresh permutation of the samples every epoch (a
            :class:`RandomSampler` over ``generator``); None or False: in order.
        sampler: the order of the indices (an iterable of them), instead of ``shuffle``.
        batch_sampler: an iterable of lists of indices, instead of ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``.
        num_workers: accepted; loading happens in the calling process (see the module
            docstring).
        collate_fn: turns a list of samples into a batch (default :func:`default_collate`).
        pin_memory: accepted and ignored (nothing to pin on the CPU).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        timeout, worker_init_fn, multiprocessing_context, prefetch_factor,
        persistent_workers, pin_memory_device, in_order: validated as PyTorch does, without
            effect (there are no worker processes).
        generator: the :class:`fastgrad.random.Generator` shuffling draws from; None for the
            default one, so ``fastgrad.manual_seed`` makes the order repeatable.

    Yields:
        Collated batches: a list of Tensors for a :class:`TensorDataset` or tuple samples, a
        dict of Tensors for dict samples, a Tensor for array samples (see
        :func:`default_collate`). Tensors are fresh C-contiguous arrays; dtypes are kept.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        iterable = isinstance(dataset, IterableDataset)
        if not iterable and not hasattr(dataset, "__getitem__"):
            raise TypeError("dataset must be a map-style dataset (with __getitem__ and "
                            "__len__) or an IterableDataset, got "
                            f"{type(dataset).__name__}")
        if not iterable and sampler is None and batch_sampler is None \
                and not hasattr(dataset, "__len__"):
            raise TypeError("dataset must have __len__ unless a sampler or batch_sampler is "
                            f"given, got {type(dataset).__name__}")
        if batch_size is not None:
            check_count("batch_size", batch_size)
        if shuffle is not None and not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool or None, got {type(shuffle).__name__} "
                            f"{shuffle!r}")
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        _check_int("num_workers", num_workers)
        if num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative, got {num_workers}; "
                             "use num_workers=0 to disable multiprocessing.")
        if not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if prefetch_factor is not None:
            _check_int("prefetch_factor", prefetch_factor)
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing: let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError(f"prefetch_factor option should be non-negative, got "
                             f"{prefetch_factor}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable or None, got "
                            f"{type(collate_fn).__name__}")
        if generator is not None and not isinstance(generator, random.Generator):
            raise TypeError("generator must be a fastgrad.random.Generator or None, "
                            f"got {type(generator).__name__}")
        if iterable:
            given = {"shuffle": shuffle or None, "sampler": sampler,
                     "batch_sampler": batch_sampler}
            for name, value in given.items():
                if value is not None:
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value!r:.100}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is not None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))

        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        batching = batch_sampler is not None or (iterable and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if batching else default_convert
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.pin_memory_device = pin_memory_device
        self.in_order = in_order
        self._order = None      # the sample order of the epoch in progress, None between epochs
        self._taken = 0         # batches of that epoch handed out so far
        self._restored = False  # the next iteration continues the epoch load_state_dict gave

    # ------------------------------------------------------------------------ epoch plans
    def _slicing(self):
        """``(sampler, batch_size, drop_last)`` when an epoch is one array of indices drawn by
        ``sampler._indices()`` that batches are cut from (batch_size None: one sample per
        step), else None: the (batch) sampler is foreign and is iterated as it is."""
        if isinstance(self.dataset, IterableDataset):
            return None
        if self.batch_sampler is None:
            slicing = self.sampler, None, False
        elif type(self.batch_sampler).__iter__ is BatchSampler.__iter__:
            batches = self.batch_sampler
            slicing = batches.sampler, batches.batch_size, batches.drop_last
        else:
            return None
        return slicing if draws_arrays(slicing[0]) else None

    def _steps(self, samples):
        """How many batches (or unbatched samples) an epoch of ``samples`` indices makes."""
        _, batch_size, drop_last = self._slicing()
        if batch_size is None:
            return samples
        return batch_count(samples, batch_size, drop_last)

    def __len__(self):
        """The number of batches in one epoch."""
        if isinstance(self.dataset, IterableDataset):
            if self.batch_size is None:
                return len(self.dataset)
            return batch_count(len(self.dataset), self.batch_size, self.drop_last)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._stream()
        slicing = self._slicing()
        if slicing is None:
            source = self.batch_sampler if self.batch_sampler is not None else self.sampler
            return self._lazy(iter(source), _tensor_rows(self))
        # the epoch starts here, not at the first batch: a state_dict() taken in between
        # already describes it
        if self._restored:
            self._restored = False
        else:
            self._order, self._taken = slicing[0]._indices(), 0
        return self._batches(self._order, self._taken, _tensor_rows(self))

    def _batches(self, order, first, rows):
        """The batches of the epoch of sample order ``order`` from batch ``first`` on, keeping
        the loader's position while this is its latest iteration."""
        _, batch_size, _ = self._slicing()
        for step in range(first, self._steps(len(order))):
            if batch_size is None:
                batch = self.collate_fn(self.dataset[int(order[step])])
            else:
                indices = order[step * batch_size:(step + 1) * batch_size]
                batch = self._fetch(indices, rows)
            if self._order is order:
                self._taken = step + 1  # counted before the yield: a checkpoint now has it
            yield batch
        if self._order is order:
            self._order, self._taken = None, 0

    def _lazy(self, source, rows):
        """The batches of a foreign sampler (indices) or batch sampler (lists of them)."""
        for indices in source:
            if self.batch_sampler is None:
                yield self.collate_fn(self.dataset[indices])
            elif rows is not None:
                yield self._fetch(np.asarray(indices, dtype=np.int64), rows)
            else:
                yield self.collate_fn(self._samples(list(indices)))

    def _stream(self):
        """The batches of an IterableDataset: consecutive samples of its stream."""
        samples = iter(self.dataset)
        if self.batch_size is None:
            for sample in samples:
                yield self.collate_fn(sample)
            return
        while True:
            batch = list(itertools.islice(samples, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)

    def _samples(self, indices):
        """The samples at ``indices`` (a list), with the dataset's ``__getitems__`` if any."""
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(indices)
        return [self.dataset[i] for i in indices]

    def _fetch(self, indices, rows):
        """The batch of the samples at ``indices`` (an int64 array): cut from the tensors
        when ``rows`` says how (see :func:`_tensor_rows`), else collated sample by sample."""
        if rows is None:
            return self.collate_fn(self._samples(indices.tolist()))
        arrays, mapping = rows
        if mapping is not None:
            indices = mapping[indices]
        return [Tensor(contiguous(array[indices])) for array in arrays]

    # ---------------------------------------------------------------------- checkpoints
    def state_dict(self):
        """Where the loader stands, for a checkpoint: the epoch in progress and the shuffling
        generator (PyTorch's DataLoader has no such method; torchdata's
        ``StatefulDataLoader`` has, with the same meaning).

        Returns:
            ``{"order": ..., "batches_taken": ..., "generator": ...}``: the int64 sample
            order of the epoch in progress (None between epochs), how many of its batches
            were handed out, and the state of the loader's own generator (None when it
            shuffles with the default generator, whose state the checkpoint saves itself, or
            has none). It describes the most recently started iteration. A sampler's own
            generator (``RandomSampler(..., generator=g)`` passed as ``sampler``) is not
            included: save ``g.get_state()`` alongside.

        Raises:
            TypeError: the loader's order cannot be recorded: an IterableDataset, or a
                sampler or batch sampler other than this module's.
        """
        self._check_resumable()
        return {"order": None if self._order is None else self._order.copy(),
                "batches_taken": self._taken,
                "generator": None if self.generator is None else self.generator.get_state()}

    def _check_resumable(self):
        """The sampler whose epochs the loader records; TypeError when there is none."""
        slicing = self._slicing()
        if slicing is None:
            raise TypeError("this DataLoader's position cannot be checkpointed: it needs a "
                            "map-style dataset ordered by fastgrad.utils.data's samplers "
                            f"(dataset: {type(self.dataset).__name__}, sampler: "
                            f"{type(self.sampler).__name__}, batch_sampler: "
                            f"{type(self.batch_sampler).__name__})")
        return slicing[0]

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict`: the next iteration continues the saved epoch after
        its ``batches_taken`` batches (and ends at once when they were all taken), and the
        loader's generator continues the saved stream.

        Raises:
            ValueError: a state that does not fit this loader (another data set size, more
                batches taken than an epoch has, a generator state without a generator).
            TypeError: as :meth:`state_dict`.
        """
        sampler = self._check_resumable()
        if not isinstance(state_dict, dict) or \
                set(state_dict) != {"order", "batches_taken", "generator"}:
            raise ValueError("state_dict must be a dict with keys 'order', 'batches_taken' and "
                             f"'generator', got {state_dict!r:.200}")
        order, taken, generator = (state_dict[k] for k in ("order", "batches_taken",
                                                            "generator"))
        if isinstance(taken, bool) or not isinstance(taken, (int, np.integer)) \
                or not 0 <= taken <= len(self):
            raise ValueError(f"state_dict['batches_taken'] must be an int in [0, {len(self)}] "
                             f"for this loader, got {taken!r}")
        if order is not None:
            order = _check_order(np.asarray(order), sampler, len(self.dataset))
        if (generator is None) != (self.generator is None):
            raise ValueError("state_dict['generator'] must be given exactly when the loader has "
                             f"its own generator; the loader has "
                             f"{'one' if self.generator is not None else 'none'}, the state "
                             f"{'has none' if generator is None else 'has one'}")
        if generator is not None:
            self.generator.set_state(generator)
        self._order = order
        self._taken = int(taken) if order is not None else 0
        self._restored = order is not None


def _check_order(order, sampler, size):
    """``order`` as int64 if it can be an epoch of ``sampler`` over ``size`` samples: a
    permutation for the samplers that permute the dataset, else ``len(sampler)`` indices in
    range."""
    permutes = isinstance(sampler, SequentialSampler) or (
        isinstance(sampler, RandomSampler) and not sampler.replacement
        and sampler.num_samples == size)
    if permutes:
        if order.shape != (size,) or order.dtype.kind not in "iu" or \
                not np.array_equal(np.sort(order), np.arange(size)):
            raise ValueError(f"state_dict['order'] must be a permutation of the {size} "
                             f"sample indices, got an array of shape {order.shape} and "
                             f"dtype {order.dtype}")
    elif order.shape != (len(sampler),) or (order.size and (
            order.dtype.kind not in "iu" or order.min() < 0 or order.max() >= size)):
        raise ValueError(f"state_dict['order'] must hold the {len(sampler)} indices in "
                         f"[0, {size}) of an epoch of the loader's "
                         f"{type(sampler).__name__}, got an array of shape {order.shape} and "
                         f"dtype {order.dtype}")
    return order.astype(np.int64)


def _tensor_rows(loader):
    """``(arrays, mapping)`` when the loader's batches can be cut from the arrays of a
    TensorDataset (on any device: a batch is on its tensors'): its dataset is one (or exact
    Subsets of one), batches are default-collated and no tensor requires grad; ``mapping``
    takes the loader's indices to rows of the arrays (None: the identity). None otherwise."""
    if loader.collate_fn is not default_collate:
        return None
    dataset, mapping = loader.dataset, None
    while type(dataset) is Subset:
        indices = np.asarray(dataset.indices, dtype=np.int64)
        mapping = indices if mapping is None else indices[mapping]
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset) or \
            type(dataset).__getitem__ is not TensorDataset.__getitem__ or \
            any(t.requires_grad for t in dataset.tensors):
        return None
    return [t._data for t in dataset.tensors], mapping  # on the tensors' device
