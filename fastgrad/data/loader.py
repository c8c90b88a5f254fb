"""Datasets over arrays and the loader that batches them, with PyTorch's names and semantics.

A :class:`DataLoader` over a :class:`TensorDataset` builds each batch by fancy-indexing every
array once with the batch's indices, so an epoch costs a few NumPy calls per batch rather than a
Python call per sample. Any other map-style dataset is collated field by field with
``numpy.stack``.
"""
import numpy as np

from .. import random
from ..tensor import Tensor


class TensorDataset:
    """Samples that are rows of arrays sharing their first dimension (inputs, labels, ...).

    Args:
        *arrays: NumPy arrays or fastgrad Tensors (anything with ``__array__``), at least one,
            all of the same length. They are held as NumPy arrays, without copying.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array, got none")
        held = []
        for position, array in enumerate(arrays):
            if not hasattr(array, "__array__"):
                raise TypeError(f"arrays[{position}] must be a NumPy array or a Tensor, "
                                f"got {type(array).__name__}")
            array = np.asarray(array)
            if array.ndim == 0:
                raise ValueError(f"arrays[{position}] must have at least one dimension, "
                                 "got a 0-d array")
            held.append(array)
        sizes = [len(array) for array in held]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset arrays must all have the same first dimension, "
                             f"got sizes {sizes}")
        self.arrays = tuple(held)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        """One sample per array for an int ``index``; a batch for an integer-array ``index``."""
        return tuple(array[index] for array in self.arrays)


class DataLoader:
    """Iterates over a dataset in batches of Tensors, optionally reshuffled every epoch.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``). Its items are tuples
            (or lists) of arrays/numbers, or single arrays/numbers.
        batch_size: samples per batch, a positive int.
        shuffle: draw a fresh permutation of the samples at the start of every epoch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: the :class:`fastgrad.random.Generator` shuffling draws from; None for the
            default one, so ``fastgrad.random.manual_seed`` makes the order repeatable.

    Yields:
        A tuple of Tensors (one per field) when items are tuples, else a single Tensor. Each
        batch is a fresh C-contiguous array along the first dimension; dtypes are kept.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError("dataset must be a map-style dataset with __len__ and __getitem__, "
                            f"got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be a positive int, got "
                            f"{type(batch_size).__name__} {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__} {flag!r}")
        if generator is not None and not isinstance(generator, random.Generator):
            raise TypeError("generator must be a fastgrad.random.Generator or None, "
                            f"got {type(generator).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator

    def __len__(self):
        """The number of batches in one epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self):
        size = len(self.dataset)
        if self.shuffle:
            order = random.numpy_generator(self.generator).permutation(size)
        else:
            order = np.arange(size)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])

    def _fetch(self, indices):
        """The batch of the samples at ``indices`` (an int64 array)."""
        if isinstance(self.dataset, TensorDataset):
            return tuple(Tensor(np.ascontiguousarray(part)) for part in self.dataset[indices])
        items = [self.dataset[int(index)] for index in indices]
        if isinstance(items[0], (tuple, list)):
            widths = {len(item) for item in items}
            if len(widths) != 1:
                raise ValueError(f"dataset items in one batch must have the same number of "
                                 f"fields, got {sorted(widths)}")
            return tuple(_collate([item[field] for item in items], field)
                         for field in range(len(items[0])))
        return _collate(items, None)


def _collate(values, field):
    """Stack one field's values along a new first axis into a Tensor."""
    arrays = [np.asarray(value) for value in values]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1:
        where = "dataset items" if field is None else f"field {field} of the dataset items"
        raise ValueError(f"{where} in one batch must have the same shape, "
                         f"got shapes {sorted(shapes)}")
    return Tensor(np.stack(arrays))
