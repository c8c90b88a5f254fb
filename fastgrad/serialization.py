"""Checkpoints: :func:`save` and :func:`load` for state dicts, in the safetensors format.

A checkpoint is a safetensors file written and read with NumPy alone; nothing is ever
unpickled, so loading a file cannot run code. Every array in the saved object becomes a
tensor of the file under its dotted path (``model.0.weight``, ``optimizer.state.0.exp_avg``);
everything else (ints, floats, bools, strings, None, lists, tuples, dicts, the RNG state's
128-bit integers) is kept in the header's ``__metadata__`` as typed JSON, so :func:`load`
rebuilds the same structure:

* Tensors (and Parameters) load as fastgrad Tensors, NumPy arrays as NumPy arrays, NumPy
  scalars as NumPy scalars of the same dtype; ``load(path, as_numpy=True)`` gives NumPy arrays
  for Tensors too.
* ints stay ints (of any size), floats stay floats (bit for bit, inf and NaN included), bools
  stay bools; tuples stay tuples and lists stay lists.
* dict, ``collections.OrderedDict`` and ``collections.Counter`` keep their type, key order and
  key types (str or int: the optimiser's ``state`` is keyed by int); any other mapping loads
  as a dict.
* Supported dtypes: float16/32/64, int8/16/32/64, uint8/16/32/64 and bool (safetensors' F16,
  F32, F64, I8, ..., U64, BOOL). Anything else (complex or object arrays, functions,
  objects) raises a TypeError naming its path.

The files are ordinary safetensors: the ``safetensors`` package reads them
(``safetensors.numpy.load_file``), and a model's ``state_dict()`` saved alone loads into the
matching PyTorch module (``safetensors.torch.load_file``). Files written by other tools load
too: a file without fastgrad's metadata loads as a flat dict of name to Tensor, so
PyTorch-written weights (``safetensors.torch.save_file(model.state_dict(), path)``) go
straight into ``module.load_state_dict(fastgrad.load(path))``.

PyTorch's call forms work: ``save(obj, f)`` and ``load(f, map_location=..., weights_only=True)``
take a path or a binary file object (``io.BytesIO``, ``open(path, "wb")``); ``map_location``
accepts PyTorch's forms for the CPU (tensors live there); loading is always weights-only, so
``weights_only=False`` is refused rather than honoured. Saving a whole module or optimizer
raises a TypeError: save its ``state_dict()`` (PyTorch would pickle the object).

Safety. :func:`save` to a path is atomic: it writes a temporary file in the target's
directory, flushes and fsyncs it, renames it over the target (``os.replace``) and fsyncs the
directory, so a crash at any point leaves either the previous file or the new one, never a
mix (a file object is written in place, as the caller opened it).
fastgrad records the sha256 of the data section in the metadata; :func:`load` refuses a
truncated, corrupted (checksum mismatch) or foreign file (bad header length, a header that is
not JSON, offsets out of range, overlapping or leaving gaps, unknown dtypes) with a
ValueError naming the path and the problem, before any tensor is used.

Exact resume in your own training loop: checkpoint everything that decides the next step
(parameters and buffers, the optimiser's state, the scheduler's, every random stream, the
step count), and restore it into freshly built objects in the same order as they were built::

    model = build_model()
    optimizer = fastgrad.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = fastgrad.optim.lr_scheduler.StepLR(optimizer, step_size=100)
    start = 0
    if os.path.exists("run.safetensors"):
        checkpoint = fastgrad.load("run.safetensors")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])    # before the scheduler's
        scheduler.load_state_dict(checkpoint["scheduler"])
        fastgrad.random.default_generator.set_state(checkpoint["rng"])
        start = checkpoint["step"]
    for step in range(start, total_steps):
        x, y = next_batch(step)            # a function of the step or of a saved stream
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % every == 0:
            fastgrad.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(),
                           "rng": fastgrad.random.default_generator.get_state(),
                           "step": step + 1, "meta": {"run": "baseline"}},
                          "run.safetensors")

The resumed run then ends with parameters bit-identical to an uninterrupted one (same
backend and thread count). Data must be a function of the saved state: draw batches from a
generator whose state is saved (as above), or save a :class:`~fastgrad.data.DataLoader`'s
``state_dict()`` (the epoch in progress, how many of its batches were taken, its own
generator) and restore it with ``load_state_dict``: the restored loader continues the epoch.
:class:`fastgrad.train.Checkpointer` packs this pattern (``fastgrad train --checkpoint``
uses it). A :class:`~fastgrad.optim.GradientAccumulator` can only be saved at a window
boundary.
"""
import collections
import collections.abc
import contextlib
import hashlib
import io
import json
import math
import os
import secrets
import struct

import numpy as np

from .runtime import CHECKSUM_KEY, SAFETENSORS_DTYPES, read_safetensors
from .device import device, resolve, to_device, to_host
from .tensor import Tensor

__all__ = ["save", "load", "write_safetensors"]

_STRUCTURE_KEY = "fastgrad.structure"
_VERSION_KEY = "fastgrad.version"
_VERSION = "1"
_NAMES = {dtype.newbyteorder("="): name for name, dtype in SAFETENSORS_DTYPES.items()}
_MAPPINGS = {dict: "dict", collections.OrderedDict: "odict", collections.Counter: "counter"}
_MAPPING_TYPES = {tag: kind for kind, tag in _MAPPINGS.items()}
_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_ROOT_KEY = "tensor"  # the file's name for a lone array saved as the whole object


# --------------------------------------------------------------------------------- writing
def _safetensors_dtype(array, where):
    name = _NAMES.get(array.dtype.newbyteorder("="))
    if name is None:
        raise TypeError(f"cannot save {where}: dtype {array.dtype} has no safetensors "
                        f"equivalent (supported: bool, int8-64, uint8-64, float16/32/64)")
    return name


def _write_chunks(handle, chunks):
    """Write ``chunks`` (bytes-like) to ``handle`` in order."""
    for chunk in chunks:
        handle.write(chunk)


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is done
    finally:
        os.close(fd)


def _file_object(f, mode):
    """Whether ``f`` is a file object to ``mode`` ("write" or "read") rather than a path;
    TypeError for a text-mode file object or something that is neither."""
    if hasattr(f, mode):
        if isinstance(f, io.TextIOBase):
            raise TypeError(f"f must be a binary file object (opened with "
                            f"'{mode[0]}b'), got a text-mode {type(f).__name__}")
        return True
    if not isinstance(f, (str, bytes, os.PathLike)):
        raise TypeError(f"f must be a path (str or os.PathLike) or a binary file object, got "
                        f"{type(f).__name__}")
    return False


def _name(f):
    """How messages name the file ``f`` (a path or a file object)."""
    if hasattr(f, "read") or hasattr(f, "write"):
        name = getattr(f, "name", None)
        return name if isinstance(name, str) else f"<{type(f).__name__}>"
    return os.fsdecode(f)


def write_safetensors(path, tensors, metadata=None):
    """Write a flat dict of arrays as a safetensors file, atomically, with a checksum.

    The header is padded with spaces to a multiple of 8 bytes and the tensors are laid out
    largest item size first, so every tensor is aligned in the file; the sha256 of the data
    section goes in the metadata under ``fastgrad.sha256``.

    Args:
        path: the file to write (replaced atomically if it exists; a symbolic link is
            followed), or a binary file object, written at its position (not atomically,
            not closed).
        tensors: a dict of name (a non-empty str other than ``__metadata__``) to a NumPy
            array or Tensor of a supported dtype.
        metadata: a dict of str to str for ``__metadata__``.

    Raises:
        TypeError: for an unsupported value or dtype; ValueError for a bad name; OSError
            when the file cannot be written (the previous file, if any, is then intact).
    """
    stream = _file_object(path, "write")
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
    arrays = []
    for order, (name, value) in enumerate(tensors.items()):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings other than "
                             f"'__metadata__', got {name!r}")
        array = to_host(value._data) if isinstance(value, Tensor) else value
        if not isinstance(array, np.ndarray):
            raise TypeError(f"cannot save {name!r}: expected a Tensor or numpy.ndarray, got "
                            f"{type(value).__name__}")
        dtype_name = _safetensors_dtype(array, repr(name))
        array = np.asarray(array, SAFETENSORS_DTYPES[dtype_name], order="C")
        arrays.append((-array.dtype.itemsize, order, name, dtype_name, array))
    arrays.sort(key=lambda item: item[:2])
    header, chunks, offset = {}, [], 0
    digest = hashlib.sha256()
    for _, _, name, dtype_name, array in arrays:
        chunk = array.reshape(-1).view(np.uint8)
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + chunk.size]}
        offset += chunk.size
        digest.update(chunk)
        chunks.append(chunk)
    metadata[CHECKSUM_KEY] = digest.hexdigest()
    header = {"__metadata__": metadata, **header}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % 8)
    chunks = [struct.pack("<Q", len(encoded)), encoded, *chunks]
    if stream:
        _write_chunks(path, chunks)
        return

    target = os.path.realpath(os.fspath(path))
    directory, base = os.path.split(target)
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_chunks(handle, chunks)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


class _Encoder:
    """Turns a nested object into a JSON structure and a flat dict of arrays by dotted key."""

    def __init__(self):
        self.tensors = {}

    def _array(self, tag, array, path):
        key = ".".join(path) if path else _ROOT_KEY
        where = ".".join(path) or "the object"
        _safetensors_dtype(array, where)
        if not key or key == "__metadata__":
            raise ValueError(f"cannot save {where}: an array needs a non-empty key other than "
                             "'__metadata__'")
        if key in self.tensors:
            raise ValueError(f"cannot save: two arrays flatten to the same key {key!r} (a key "
                             "containing '.' collides with a nested one)")
        self.tensors[key] = array
        return {tag: key}

    def encode(self, value, path):
        where = ".".join(path) or "the object"
        if isinstance(value, Tensor):
            return self._array("tensor", to_host(value._data), path)
        if isinstance(value, np.ndarray):
            return self._array("ndarray", value, path)
        if isinstance(value, np.generic) and value.dtype.newbyteorder("=") in _NAMES:
            return self._array("scalar", np.asarray(value), path)
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            value = float(value)
            if math.isfinite(value):
                return value
            return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if isinstance(value, list):
            return [self.encode(v, path + [str(i)]) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.encode(v, path + [str(i)]) for i, v in enumerate(value)]}
        if isinstance(value, collections.abc.Mapping):
            items = []
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"cannot save {where}: dict keys must be str or int, got "
                                    f"{type(key).__name__} {key!r}")
                items.append([key if isinstance(key, str) else int(key),
                              self.encode(item, path + [str(key)])])
            return {_MAPPINGS.get(type(value), "dict"): items}
        if hasattr(value, "state_dict") and callable(value.state_dict):
            raise TypeError(f"cannot save {where}: a {type(value).__name__} object; save its "
                            "state_dict() instead (e.g. fastgrad.save(model.state_dict(), f)): "
                            "checkpoints hold tensors and plain values, never objects, as "
                            "they are never unpickled")
        raise TypeError(f"cannot save {where}: type {type(value).__name__} is not supported "
                        "(Tensors, arrays, NumPy scalars, numbers, strings, None, lists, "
                        "tuples and dicts are)")


def save(obj, f):
    """Save a state dict, a dict of them with any plain values, or any other value
    :func:`load` can rebuild (a Tensor, a list of them, ...), to ``f``.

    Args:
        obj: typically ``model.state_dict()`` or ``{"model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": fastgrad.random.default_generator.get_state(), "step": step}``. A module
            or optimizer itself is refused (save its ``state_dict()``): PyTorch pickles it,
            fastgrad never pickles. A lone Tensor or array is stored under the key
            ``tensor`` of the file.
        f: a path (str or ``os.PathLike``; conventionally ``*.safetensors``), written
            atomically (a crash leaves the previous file intact, see the module docstring),
            or a binary file object (``io.BytesIO``, ``open(path, "wb")``), written at its
            position and left open.

    Raises:
        TypeError: for a value that cannot be saved, naming its dotted path; for an ``f``
            that is neither a path nor a binary file object.
        ValueError: when two arrays flatten to the same dotted key.
    """
    _file_object(f, "write")
    encoder = _Encoder()
    structure = encoder.encode(obj, [])
    write_safetensors(f, encoder.tensors, {
        _VERSION_KEY: _VERSION,
        _STRUCTURE_KEY: json.dumps(structure, separators=(",", ":"), allow_nan=False)})


# --------------------------------------------------------------------------------- reading
class _Decoder:
    """Rebuilds the saved object from its JSON structure and the file's arrays."""

    def __init__(self, name, tensors, wrap):
        self.name, self.tensors, self.wrap = name, tensors, wrap
        self.used = set()

    def _refuse(self, problem):
        return ValueError(f"{self.name}: corrupted checkpoint structure: {problem}")

    def _array(self, key):
        if not isinstance(key, str) or key not in self.tensors or key in self.used:
            raise self._refuse(f"reference to a missing or already used tensor {key!r}")
        self.used.add(key)
        return self.tensors[key]

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or len(node) != 1:
            raise self._refuse(f"unexpected node {node!r:.80}")
        ((tag, body),) = node.items()
        if tag == "tensor":
            return self.wrap(self._array(body))
        if tag == "ndarray":
            return self._array(body)
        if tag == "scalar":
            array = self._array(body)
            if array.ndim:
                raise self._refuse(f"scalar {body!r} has shape {array.shape}")
            return array[()]
        if tag == "float" and body in _FLOATS:
            return _FLOATS[body]
        if tag == "tuple" and isinstance(body, list):
            return tuple(self.decode(v) for v in body)
        if tag in _MAPPING_TYPES and isinstance(body, list):
            mapping = _MAPPING_TYPES[tag]()
            for item in body:
                if not isinstance(item, list) or len(item) != 2 \
                        or isinstance(item[0], bool) or not isinstance(item[0], (str, int)):
                    raise self._refuse(f"bad mapping item {item!r:.80}")
                mapping[item[0]] = self.decode(item[1])
            return mapping
        raise self._refuse(f"unknown node {node!r:.80}")


def _target_device(target, map_location):
    """The resolved device a ``map_location`` target names (a string such as "cuda:0", or a
    device object with a ``.type``, as ``fastgrad.device``), or PyTorch's errors."""
    if isinstance(target, bytes):
        target = target.decode()
    if isinstance(target, (str, device)):
        spec = target
    elif isinstance(getattr(target, "type", None), str):
        index = getattr(target, "index", None)
        spec = target.type if index is None else f"{target.type}:{index}"
    else:
        raise TypeError(f"map_location must be a device (a string such as 'cpu', or a device "
                        f"object), a dict from location to device, or a callable(tensor, "
                        f"location), got {type(map_location).__name__} {map_location!r:.100}")
    try:
        return resolve(spec, "map_location")
    except (RuntimeError, TypeError) as error:
        raise RuntimeError(f"map_location={map_location!r:.100} asks to load the tensors onto "
                           f"device {target!r}: {error}") from None


def _placement(map_location):
    """The function putting each loaded Tensor where ``map_location`` asks (PyTorch's forms:
    a device, a dict from saved location to device, or a callable ``(tensor, location)``
    returning a tensor or None), or None where every tensor stays as loaded, on the CPU.
    Every tensor is saved from host memory, so its saved location is "cpu"."""
    if map_location is None:
        return None
    if isinstance(map_location, dict) or isinstance(map_location, (str, bytes)) \
            or hasattr(map_location, "type") or not callable(map_location):
        target = map_location.get("cpu", "cpu") if isinstance(map_location, dict) \
            else map_location
        where = _target_device(target, map_location)
        if where.type == "cpu":
            return None
        return lambda tensor: Tensor(to_device(tensor._data, where))

    def place(tensor):
        placed = map_location(tensor, "cpu")  # every saved tensor's location is the CPU
        if placed is None:
            return tensor
        if not isinstance(placed, Tensor):
            raise TypeError(f"map_location (a callable) must return a Tensor or None, got "
                            f"{type(placed).__name__}")
        return placed
    return place


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None,
         as_numpy=False):
    """Load what :func:`save` wrote, or the tensors of any safetensors file.

    Nothing in the file is executed: the header is JSON, the data raw little-endian arrays,
    and the whole file is validated (and its checksum verified, for fastgrad's files) before
    anything is returned. Loading is therefore always what PyTorch calls weights-only.

    Args:
        f: a path (str or ``os.PathLike``), or a binary file object (``io.BytesIO``,
            ``open(path, "rb")``) read from its position to its end.
        map_location: where the tensors go, in PyTorch's forms: a device ("cpu",
            ``fastgrad.device("cpu")``), a dict from saved location ("cpu") to device, or a
            callable ``(tensor, location)`` returning the tensor to use (or None to keep it).
            Tensors are saved from host memory (location "cpu") and load there unless
            ``map_location`` names another available device; an unavailable one raises a
            RuntimeError.
        pickle_module: must be None: fastgrad never unpickles.
        weights_only: True (or None, PyTorch's default); False raises a ValueError, as
            fastgrad never unpickles.
        mmap: accepted (None, False or True) for PyTorch's signature; the tensors are read
            into memory either way.
        as_numpy: return NumPy arrays where Tensors were saved.

    Returns:
        The saved object (see the module docstring for the types), or, for a safetensors file
        written elsewhere, a dict of tensor name to Tensor (NumPy array with ``as_numpy``)
        that ``Module.load_state_dict`` takes.

    Raises:
        ValueError: naming the file and the problem, for a truncated, corrupted or foreign
            file, or one written by a newer fastgrad; ``weights_only=False``.
        RuntimeError: a ``map_location`` naming a device this build cannot use; a
            ``pickle_module``.
        TypeError: an ``f`` that is neither a path nor a binary file object; arguments of
            the wrong type.
        OSError: when the file cannot be read (FileNotFoundError...).
    """
    _file_object(f, "read")
    if weights_only is not None and not isinstance(weights_only, (bool, np.bool_)):
        raise TypeError(f"weights_only must be a bool or None, got "
                        f"{type(weights_only).__name__} {weights_only!r}")
    if weights_only is not None and not weights_only:
        raise ValueError("weights_only=False is not supported: fastgrad checkpoints hold "
                         "tensors and plain values and are never unpickled, so loading is "
                         "always weights-only (and safe); leave weights_only out or pass True")
    if pickle_module is not None:
        raise RuntimeError(f"pickle_module={pickle_module!r:.80} cannot be used: fastgrad "
                           "never unpickles; leave pickle_module out")
    if mmap is not None and not isinstance(mmap, (bool, np.bool_)):
        raise TypeError(f"mmap must be a bool or None, got {type(mmap).__name__} {mmap!r}")
    place = _placement(map_location)
    if as_numpy:
        def wrap(array):
            return array
    elif place is None:
        wrap = Tensor
    else:
        def wrap(array):
            return place(Tensor(array))

    name = _name(f)
    tensors, metadata = read_safetensors(f)
    if _STRUCTURE_KEY not in metadata:
        return {key: wrap(array) for key, array in tensors.items()}
    if metadata.get(_VERSION_KEY) != _VERSION:
        raise ValueError(f"{name}: checkpoint format version "
                         f"{metadata.get(_VERSION_KEY)!r} is not supported (this fastgrad reads "
                         f"version {_VERSION})")
    if CHECKSUM_KEY not in metadata:
        raise ValueError(f"{name}: a fastgrad checkpoint without its checksum "
                         f"({CHECKSUM_KEY!r}): refused, as it cannot be verified")
    decoder = _Decoder(name, tensors, wrap)
    try:
        obj = decoder.decode(json.loads(metadata[_STRUCTURE_KEY]))
    except RecursionError:
        raise decoder._refuse("nested too deeply") from None
    except json.JSONDecodeError as error:
        raise decoder._refuse(f"not JSON ({error})") from None
    unused = set(tensors) - decoder.used
    if unused:
        raise decoder._refuse(f"tensors {sorted(unused)[:5]} are not part of the structure")
    return obj
