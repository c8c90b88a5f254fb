"""Samplers: the order in which a loader visits a map-style dataset (``torch.utils.data.sampler``).

A sampler is any iterable of dataset indices; :class:`BatchSampler` groups one into lists.
The samplers here draw a whole epoch's indices as one int64 array (``_indices()``): a
:class:`~fastgrad.utils.data.DataLoader` cuts its batches from that array and can checkpoint
it. Random samplers draw from a :class:`fastgrad.random.Generator` (the default one unless
given, so ``fastgrad.manual_seed`` makes the order repeatable); the streams are NumPy's, so the
orders differ from PyTorch's for the same seed.
"""
import itertools
from types import GenericAlias

import numpy as np

from ... import random


def _check_generator(generator):
    if generator is not None and not isinstance(generator, random.Generator):
        raise TypeError("generator must be a fastgrad.random.Generator or None, "
                        f"got {type(generator).__name__}")


def check_count(name, value):
    """ValueError unless ``value`` is a positive int (PyTorch's type for this error)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")


class Sampler:
    """Base class of samplers: subclasses define ``__iter__`` (and usually ``__len__``)."""

    __class_getitem__ = classmethod(GenericAlias)

    def __iter__(self):
        raise NotImplementedError("Subclasses of Sampler should implement __iter__.")


class _IndexSampler(Sampler):
    """A sampler whose epoch is one int64 array of indices, drawn by ``_indices()``."""

    def _indices(self):
        raise NotImplementedError

    def __iter__(self):
        return iter(self._indices().tolist())


def draws_arrays(sampler):
    """Whether ``sampler`` is one of the samplers here (not overriding their ``__iter__``),
    whose ``_indices()`` draws an epoch as one int64 array."""
    return isinstance(sampler, _IndexSampler) and type(sampler).__iter__ is _IndexSampler.__iter__


class SequentialSampler(_IndexSampler):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _indices(self):
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self):
        return len(self.data_source)


class RandomSampler(_IndexSampler):
    """Indices in random order: a fresh permutation every epoch, or draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw ``num_samples`` indices independently instead of permuting.
        num_samples: indices per epoch (default ``len(data_source)``); without replacement,
            more than the dataset's length concatenates permutations, as PyTorch does.
        generator: the :class:`fastgrad.random.Generator` to draw from (None: the default).

    An empty dataset gives empty epochs (PyTorch refuses it with a ValueError).
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, (bool, np.bool_)):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        if num_samples is not None:
            check_count("num_samples", num_samples)
        _check_generator(generator)
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _indices(self):
        size, count = len(self.data_source), self.num_samples
        if not count:
            return np.empty(0, np.int64)
        if not size:
            raise ValueError(f"RandomSampler cannot draw num_samples={count} indices from an "
                             "empty data_source")
        draw = random.numpy_generator(self.generator)
        if self.replacement:
            return draw.integers(0, size, size=count, dtype=np.int64)
        rounds = -(-count // size)
        return np.concatenate([draw.permutation(size) for _ in range(rounds)])[:count]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(_IndexSampler):
    """The given indices in a fresh random order every epoch (without replacement).

    Args:
        indices: a sequence of dataset indices (ints).
        generator: the :class:`fastgrad.random.Generator` to draw from (None: the default).
    """

    def __init__(self, indices, generator=None):
        _check_generator(generator)
        self.indices = indices
        self.generator = generator

    def _indices(self):
        indices = np.asarray(self.indices)
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise TypeError(f"SubsetRandomSampler indices must be a 1-D sequence of ints, got "
                            f"an array of shape {indices.shape} and dtype {indices.dtype}")
        order = random.numpy_generator(self.generator).permutation(len(indices))
        return indices.astype(np.int64)[order]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(_IndexSampler):
    """``num_samples`` indices of ``[0, len(weights))`` drawn with probabilities proportional
    to ``weights``.

    Args:
        weights: a 1-D sequence of non-negative weights (not necessarily summing to one).
        num_samples: indices per epoch.
        replacement: draw with replacement; without it, an index is drawn at most once.
        generator: the :class:`fastgrad.random.Generator` to draw from (None: the default).
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        check_count("num_samples", num_samples)
        if not isinstance(replacement, (bool, np.bool_)):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement!r}")
        _check_generator(generator)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
            raise RuntimeError("invalid multinomial distribution: weights must be finite, "
                               f"non-negative and not all zero, got {weights!r:.200}")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise RuntimeError(f"cannot draw num_samples={num_samples} indices without "
                               f"replacement from {np.count_nonzero(weights)} non-zero weights")
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self.generator = generator

    def _indices(self):
        draw = random.numpy_generator(self.generator)
        return draw.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum()).astype(np.int64)

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Args:
        sampler: a sampler or any iterable of indices.
        batch_size: indices per batch, a positive int.
        drop_last: drop the last batch when it is shorter than ``batch_size``.
    """

    def __init__(self, sampler, batch_size, drop_last):
        check_count("batch_size", batch_size)
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __iter__(self):
        indices = iter(self.sampler)
        batch = list(itertools.islice(indices, self.batch_size))
        while batch and (len(batch) == self.batch_size or not self.drop_last):
            yield batch
            batch = list(itertools.islice(indices, self.batch_size))

    def __len__(self):
        return batch_count(len(self.sampler), self.batch_size, self.drop_last)


def batch_count(samples, batch_size, drop_last):
    """How many batches of ``batch_size`` ``samples`` indices make."""
    full, rest = divmod(samples, batch_size)
    return full if drop_last or not rest else full + 1
