"""Turning a list of samples into a batch (``torch.utils.data.default_collate``) and one sample
into tensors (``default_convert``), with PyTorch's type rules.

=====================  ===================================================================
sample element         batch (``default_collate``)
=====================  ===================================================================
Tensor                 the Tensors stacked along a new first dimension (``fastgrad.stack``)
NumPy array            likewise, as Tensors (object and string arrays are refused)
NumPy scalar           a 1-D Tensor of the scalars' dtype
float                  a float64 Tensor
int, bool              ``fastgrad.tensor(batch)``: int64 (bool for bools)
str, bytes             the list, unchanged
mapping                the same kind of mapping, each key's values collated
namedtuple             the same namedtuple, each field collated
tuple, other sequence  a list (a copy of a mutable sequence) of each position collated
=====================  ===================================================================

Dispatch is on the batch's first element, as in PyTorch (``[1, 2.5]`` collates as ints, to a
float32 tensor; ``[2.5, 1]`` as floats, to float64).
"""
import collections.abc
import copy

import numpy as np

from ...ops import stack
from ...tensor import Tensor, tensor

_REFUSED_KINDS = "SaUOV"  # strings, bytes, objects, records: no Tensor holds them


def _refuse(found):
    return TypeError("default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                     f"or lists; found {found}")


def default_collate(batch):
    """Collate ``batch``, a list of samples, into one batch (see the module docstring).

    Raises:
        RuntimeError: sequences of different lengths, or tensors/arrays of different shapes.
        TypeError: an element of a type that cannot be batched (named).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in _REFUSED_KINDS:
            raise _refuse(elem.dtype)
        return stack([Tensor(np.asarray(b)) for b in batch])
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.array(batch))
    if isinstance(elem, float):
        return tensor(batch, dtype=np.float64)
    if isinstance(elem, int):
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([sample[key] for sample in batch]) for key in elem}
        return _rebuild_mapping(elem, collated)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        try:
            sizes = {len(sample) for sample in batch}
        except TypeError:
            raise TypeError(f"default_collate: every element of the batch must be a sequence, "
                            f"as the first ({type(elem).__name__}) is; got "
                            f"{sorted({type(sample).__name__ for sample in batch})}") from None
        if len(sizes) > 1:
            raise RuntimeError("each element in list of batch should be of equal size, got "
                               f"lengths {sorted(sizes)}")
        return _rebuild_sequence(elem, [default_collate(list(field)) for field in zip(*batch)])
    raise _refuse(type(elem))


def default_convert(data):
    """Turn the NumPy arrays and scalars in one sample into Tensors, through mappings and
    sequences; everything else is returned as it is (the ``collate_fn`` of a loader with
    ``batch_size=None``). Arrays are wrapped without copying, as ``torch.as_tensor``."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in _REFUSED_KINDS else Tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _rebuild_mapping(like, values):
    """A mapping of ``like``'s type holding ``values`` (a dict when that type cannot be
    built so), as PyTorch does."""
    try:
        if isinstance(like, collections.abc.MutableMapping):
            clone = copy.copy(like)
            clone.update(values)
            return clone
        return type(like)(values)
    except TypeError:
        return values


def _rebuild_sequence(like, values):
    """A sequence holding ``values``: a list for a tuple, a copy of ``like`` for a mutable
    sequence, ``like``'s type otherwise (a list when that type cannot be built so)."""
    if isinstance(like, tuple):
        return values
    try:
        if isinstance(like, collections.abc.MutableSequence):
            clone = copy.copy(like)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(like)(values)
    except TypeError:
        return values
