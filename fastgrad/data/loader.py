"""Datasets over arrays and the loader that batches them, with PyTorch's names and semantics.

A :class:`DataLoader` over a :class:`TensorDataset` builds each batch by fancy-indexing every
array once with the batch's indices, so an epoch costs a few NumPy calls per batch rather than a
Python call per sample. Any other map-style dataset is collated field by field with
``numpy.stack``.

A loader's position can be checkpointed: :meth:`DataLoader.state_dict` records the epoch in
progress (its sample order and how many batches were taken) and the shuffling generator, so a
run resumed from a checkpoint sees exactly the batches the interrupted run would have seen.
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
            if array.dtype.kind not in "biuf":
                raise TypeError(f"arrays[{position}] must hold bool, integer or floating "
                                f"values, got dtype {array.dtype}")
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
        self._order = None      # the sample order of the epoch in progress, None between epochs
        self._taken = 0         # batches of that epoch handed out so far
        self._restored = False  # the next iteration continues the epoch load_state_dict gave

    def __len__(self):
        """The number of batches in one epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self):
        # the epoch starts here, not at the first batch: a state_dict() taken in between
        # already describes it
        if self._restored:
            self._restored = False
        else:
            size = len(self.dataset)
            if self.shuffle:
                self._order = random.numpy_generator(self.generator).permutation(size)
            else:
                self._order = np.arange(size)
            self._taken = 0
        return self._batches(self._order, self._taken)

    def _batches(self, order, first):
        """The batches of the epoch of sample order ``order`` from batch ``first`` on, keeping
        the loader's position while this is its latest iteration."""
        size = self.batch_size
        for index in range(first, len(self)):
            batch = self._fetch(order[index * size:(index + 1) * size])
            if self._order is order:
                self._taken = index + 1  # counted before the yield: a checkpoint now has it
            yield batch
        if self._order is order:
            self._order, self._taken = None, 0

    def state_dict(self):
        """Where the loader stands, for a checkpoint: the epoch in progress and the shuffling
        generator (PyTorch's DataLoader has no such method; torchdata's
        ``StatefulDataLoader`` has, with the same meaning).

        Returns:
            ``{"order": ..., "batches_taken": ..., "generator": ...}``: the int64 sample
            order of the epoch in progress (None between epochs), how many of its batches
            were handed out, and the state of the loader's own generator (None when it
            shuffles with the default generator, whose state the checkpoint saves itself, or
            does not shuffle). It describes the most recently started iteration.
        """
        return {"order": None if self._order is None else self._order.copy(),
                "batches_taken": self._taken,
                "generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict`: the next iteration continues the saved epoch after
        its ``batches_taken`` batches (and ends at once when they were all taken), and the
        loader's generator continues the saved stream.

        Raises:
            ValueError: a state that does not fit this loader (another data set size, more
                batches taken than an epoch has, a generator state without a generator).
        """
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
            order = np.asarray(order)
            size = len(self.dataset)
            if order.shape != (size,) or order.dtype.kind not in "iu" or \
                    not np.array_equal(np.sort(order), np.arange(size)):
                raise ValueError(f"state_dict['order'] must be a permutation of the {size} "
                                 f"sample indices, got an array of shape {order.shape} and "
                                 f"dtype {order.dtype}")
            order = order.astype(np.int64)
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

    def _fetch(self, indices):
        """The batch of the samples at ``indices`` (an int64 array)."""
        if isinstance(self.dataset, TensorDataset):
            return tuple(Tensor(np.ascontiguousarray(part)) for part in self.dataset[indices])
        items = [self.dataset[int(index)] for index in indices]
        if isinstance(items[0], (tuple, list)):
            widths = {len(item) if isinstance(item, (tuple, list)) else None for item in items}
            if len(widths) != 1:
                raise ValueError(f"dataset items in one batch must have the same number of "
                                 f"fields, got {sorted(widths, key=str)} (None: not a tuple)")
            return tuple(_collate([item[field] for item in items], field)
                         for field in range(len(items[0])))
        return _collate(items, None)


def _collate(values, field):
    """Stack one field's values along a new first axis into a Tensor."""
    arrays = [np.asarray(value) for value in values]
    shapes = {array.shape for array in arrays}
    where = "dataset items" if field is None else f"field {field} of the dataset items"
    if len(shapes) != 1:
        raise ValueError(f"{where} in one batch must have the same shape, "
                         f"got shapes {sorted(shapes)}")
    batch = np.stack(arrays)
    if batch.dtype.kind not in "biuf":
        raise TypeError(f"{where} must hold bool, integer or floating values, got dtype "
                        f"{batch.dtype}")
    return Tensor(batch)
