"""Datasets with PyTorch's names and semantics (``torch.utils.data.dataset``).

A map-style dataset is anything with ``__getitem__`` and ``__len__``: subclass :class:`Dataset`
(which adds ``+`` for concatenation) or pass any such object to the
:class:`~fastgrad.utils.data.DataLoader`. An :class:`IterableDataset` is a stream instead.
:class:`TensorDataset` holds rows of tensors; a loader cuts its batches by indexing every tensor
once per batch (also through :class:`Subset` s of it, such as :func:`random_split` returns)
rather than collating sample by sample.
"""
import bisect
import itertools
import math
import warnings
from types import GenericAlias

import numpy as np

from ... import random
from ...tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``.

    ``Dataset[T]`` is accepted in annotations and base classes, as in PyTorch.
    """

    __class_getitem__ = classmethod(GenericAlias)

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream of samples: subclasses define ``__iter__``.

    A :class:`~fastgrad.utils.data.DataLoader` takes its samples in the order the stream gives
    them (no sampler, no shuffling) and batches consecutive ones.
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples that are rows of tensors sharing their first dimension (inputs, labels, ...).

    Args:
        *tensors: fastgrad Tensors or NumPy arrays, at least one, all of the same length.
            Arrays are wrapped as Tensors without copying.

    Attributes:
        tensors: the tuple of Tensors.

    ``dataset[i]`` is the tuple ``(tensors[0][i], tensors[1][i], ...)``, as in PyTorch.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor, got none")
        held = []
        for position, value in enumerate(tensors):
            if not isinstance(value, Tensor):
                if not hasattr(value, "__array__"):
                    raise TypeError(f"tensors[{position}] must be a Tensor or a NumPy array, "
                                    f"got {type(value).__name__}")
                array = np.asarray(value)
                if array.dtype.kind not in "biuf":
                    raise TypeError(f"tensors[{position}] must hold bool, integer or floating "
                                    f"values, got dtype {array.dtype}")
                value = Tensor(array)
            if value.ndim == 0:
                raise ValueError(f"tensors[{position}] must have at least one dimension, "
                                 "got a 0-d tensor")
            held.append(value)
        sizes = [len(t) for t in held]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset tensors must all have the same first dimension "
                             f"(size mismatch between tensors), got sizes {sizes}")
        self.tensors = tuple(held)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class ConcatDataset(Dataset):
    """The concatenation of map-style datasets: index ``len(a)`` of ``a + b`` is ``b[0]``.

    Args:
        datasets: an iterable of map-style datasets, at least one.

    Attributes:
        datasets: the list of datasets; cumulative_sizes: their running total lengths.
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for position, dataset in enumerate(self.datasets):
            if isinstance(dataset, IterableDataset):
                raise TypeError(f"ConcatDataset does not support IterableDataset: datasets"
                                f"[{position}] is a {type(dataset).__name__} (use "
                                "ChainDataset)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"absolute value of index should not exceed dataset length: "
                                 f"index {idx} for a ConcatDataset of length {len(self)}")
            idx = len(self) + idx
        if idx >= len(self):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length "
                             f"{len(self)}")
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[dataset_idx - 1] if dataset_idx else 0
        return self.datasets[dataset_idx][idx - start]


class ChainDataset(IterableDataset):
    """The streams of several :class:`IterableDataset` s, one after the other.

    Args:
        datasets: an iterable of IterableDatasets (read when the chain is iterated).
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def _streams(self):
        for position, dataset in enumerate(self.datasets):
            if not isinstance(dataset, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset: datasets"
                                f"[{position}] is a {type(dataset).__name__}")
            yield dataset

    def __iter__(self):
        for dataset in self._streams():
            yield from dataset

    def __len__(self):
        return sum(len(dataset) for dataset in self._streams())


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``: ``subset[i]`` is ``dataset[indices[i]]``.

    Args:
        dataset: a map-style dataset.
        indices: a sequence of its indices.

    A subclass that overrides ``__getitem__`` must override ``__getitems__`` too (the loader
    fetches a batch with ``__getitems__``), as in PyTorch.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        if type(self).__getitem__ is not Subset.__getitem__ \
                and type(self).__getitems__ is Subset.__getitems__:
            raise NotImplementedError(
                f"{type(self).__name__} overrides __getitem__ but not __getitems__; a Subset "
                "subclass must override both, e.g. def __getitems__(self, indices): return "
                "[self.__getitem__(idx) for idx in indices]")

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        """The samples at ``indices`` (a list), through the dataset's own ``__getitems__``
        where it has one."""
        mapped = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(mapped)
        return [self.dataset[i] for i in mapped]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=random.default_generator):
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given lengths.

    Args:
        dataset: a map-style dataset.
        lengths: the lengths of the parts (ints summing to ``len(dataset)``), or fractions in
            [0, 1] summing to 1: each part then gets ``floor(fraction * len(dataset))``
            samples, and the remainder is handed out one sample at a time to the parts in
            order (PyTorch's rule).
        generator: the :class:`fastgrad.random.Generator` drawing the permutation (the
            default one unless given).

    Returns:
        A list of Subsets, one per length.
    """
    lengths = list(lengths)
    size = len(dataset)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        parts = []
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1: {fraction!r}")
            parts.append(math.floor(size * fraction))
        for i in range(size - sum(parts)):
            parts[i % len(parts)] += 1
        for i, length in enumerate(parts):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              "empty dataset.", stacklevel=2)
        lengths = parts
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"lengths[{i}] must be a non-negative int (or all lengths "
                             f"fractions summing to 1), got {length!r}")
    if sum(lengths) != size:
        raise ValueError(f"Sum of input lengths does not equal the length of the input "
                         f"dataset! The lengths {lengths} sum to {sum(lengths)}, the dataset "
                         f"has {size} samples")
    indices = random.numpy_generator(generator).permutation(size).tolist()
    ends = itertools.accumulate(lengths)
    return [Subset(dataset, indices[end - length:end]) for end, length in zip(ends, lengths)]
