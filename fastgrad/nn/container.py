"""Containers of layers and parameters, PyTorch's APIs: :class:`Sequential`,
:class:`ModuleList`, :class:`ModuleDict`, :class:`ParameterList` and :class:`ParameterDict`.

Entries are registered like attributes, so ``parameters()``, ``state_dict()`` and the repr
see them under PyTorch's names: the lists number their entries ``"0"``, ``"1"``, ... (keys
``"0.weight"``), the dicts use their keys. Replacing an entry keeps its place in that order,
and deleting one from a list renumbers the rest, as PyTorch does.
"""
import collections
import collections.abc
import itertools
import operator

from ..tensor import Tensor
from .activation import FUSABLE
from .linear import Linear
from .module import Module, Parameter, _Changes
from .normalization import BatchNorm1d, BatchNorm2d

#: Layers whose forward takes ``activation=`` and applies it in their kernels, by exact type.
FUSING = (Linear, BatchNorm1d, BatchNorm2d)


def fused_pair(first, second):
    """The activation name with which ``first`` can run ``second(first(x))`` as one op
    (``first(x, activation=name)``): ``first`` a :data:`FUSING` layer, ``second`` a ReLU,
    Sigmoid or Tanh, neither with hooks (each hook must see its own module's call); None
    when they cannot fuse."""
    if type(first) in FUSING and type(second) in FUSABLE and not first._has_hooks() \
            and not second._has_hooks():
        return FUSABLE[type(second)]
    return None


def _position(index, size):
    """``index`` (an int, negative counting from the end) as a position in [0, size)."""
    index = operator.index(index)
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of range")
    return index % size


def _put_module(container, name, module):
    """Register ``module`` under ``name``, in the same place when ``name`` is already there."""
    if name not in container._modules:
        container.add_module(name, module)
    elif module is not None and not isinstance(module, Module):
        raise TypeError(f"{type(module).__name__} is not a Module subclass")
    else:
        container._modules[name] = module


def _renumber(modules):
    """Rename the entries of ``modules`` (a dict) "0", "1", ... in their order."""
    values = list(modules.values())
    modules.clear()
    modules.update((str(i), module) for i, module in enumerate(values))


def _iterable(value, what):
    if not isinstance(value, collections.abc.Iterable) or isinstance(value, Tensor):
        raise TypeError(f"{what} should be called with an iterable, but got "
                        f"{type(value).__name__}")


def _pairs(entries, kind):
    """The ``(key, value)`` pairs of a sequence of pairs, checked as PyTorch's ``update``."""
    for j, pair in enumerate(entries):
        if not isinstance(pair, collections.abc.Iterable):
            raise TypeError(f"{kind} update sequence element #{j} should be Iterable; is "
                            f"{type(pair).__name__}")
        if len(pair) != 2:
            raise ValueError(f"{kind} update sequence element #{j} has length {len(pair)}; 2 "
                             "is required")
        yield pair[0], pair[1]


class _ModuleSequence(Module):
    """What :class:`Sequential` and :class:`ModuleList` share: modules registered under "0",
    "1", ... in order, counted, iterated, appended and popped alike."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        """Add ``module`` at the end, named by its position; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def pop(self, key):
        """Remove the module (or slice of modules) at ``key`` and return it."""
        value = self[key]
        del self[key]
        return value


class Sequential(_ModuleSequence):
    """Layers applied one after another.

    Takes modules as arguments (named "0", "1", ...) or one ``OrderedDict`` of named modules.
    Indexing gives a layer (a slice, a Sequential of those layers under their names); layers
    can be replaced, deleted (the rest renumbered), appended, inserted, popped, and
    Sequentials concatenated with ``+`` and repeated with ``*``, as in PyTorch.

    A :class:`Linear`, :class:`BatchNorm1d` or :class:`BatchNorm2d` directly followed by a
    ReLU, Sigmoid or Tanh runs as one fused op (:data:`FUSING`); the result is the same as
    running them one by one. A pair with a hook registered on either module runs unfused, so
    every hook sees its own module's call.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
            items = modules[0].items()
        else:
            items = ((str(i), m) for i, m in enumerate(modules))
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential takes Modules, got {type(module).__name__} for "
                                f"{name!r}")
            self.add_module(name, module)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(collections.OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[_position(index, len(self))]

    def __setitem__(self, index, module):
        _put_module(self, list(self._modules)[_position(index, len(self))], module)

    def __delitem__(self, index):
        names = list(self._modules)
        for name in (names[index] if isinstance(index, slice)
                     else [names[_position(index, len(self))]]):
            del self._modules[name]
        _renumber(self._modules)

    @staticmethod
    def _operand(other):
        if not isinstance(other, Sequential):
            raise ValueError(  # noqa: TRY004 (PyTorch's exception type)
                f"add operator supports only objects of Sequential class, but {type(other)} is "
                "given.")
        return other

    def __add__(self, other):
        return Sequential(*self, *self._operand(other))

    def __iadd__(self, other):
        return self.extend(list(self._operand(other)))

    def _repeats(self, times):
        if isinstance(times, bool) or not isinstance(times, int):
            raise TypeError(f"unsupported operand type(s) for *: {type(self)} and "
                            f"{type(times)}")
        if times <= 0:
            raise ValueError(f"Non-positive multiplication factor {times} for {type(self)}")
        return times

    def __mul__(self, times):
        """A Sequential of these layers ``times`` over: the same module objects, so their
        parameters are shared, as in PyTorch."""
        return Sequential(*(list(self) * self._repeats(times)))

    def __rmul__(self, times):
        return self.__mul__(times)

    def __imul__(self, times):
        return self.extend(list(self) * (self._repeats(times) - 1))

    def insert(self, index, module):
        """Insert ``module`` before position ``index`` (``-len <= index <= len``), the layers
        after it renumbered; returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"module should be of type: Module, got {type(module).__name__}")
        size = len(self)
        if not -size <= index <= size:
            raise IndexError(f"Index out of range: {index}")
        index = index + size if index < 0 else index
        for i in range(size, index, -1):
            self._modules[str(i)] = self._modules[str(i - 1)]
        self._modules[str(index)] = module
        return self

    def extend(self, sequential):
        """Append every layer of ``sequential`` (any iterable of modules); returns self."""
        for module in sequential:
            self.append(module)
        return self

    def forward(self, input):
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] != _Changes.count:
            plan = self.__dict__["_plan"] = (_Changes.count, self._fused())
        for module, activation in plan[1]:
            input = module(input) if activation is None else module(input, activation=activation)
        return input

    def _fused(self):
        """``[(module, activation name or None)]``: the layers in order, each fusable pair as
        its first module with the second's activation. Kept with the count of module changes
        (:class:`~fastgrad.nn.module._Changes`: a hook, a replaced layer) it was made at, so a
        forward finds the pairs again only after one (they cost 0.5 us a pair a call)."""
        modules = list(self._modules.values())
        plan, i = [], 0
        while i < len(modules):
            module = modules[i]
            activation = fused_pair(module, modules[i + 1]) if i + 1 < len(modules) else None
            plan.append((module, activation))
            i += 1 if activation is None else 2
        return plan


class ModuleList(_ModuleSequence):
    """A list of modules, registered under "0", "1", ... so their parameters are the
    container's (``"0.weight"``...). Indexing, slicing (a ModuleList), assignment, deletion
    (the rest renumbered), ``len``, iteration, ``append``, ``extend``, ``insert``, ``pop``,
    ``+`` and ``+=`` work as on PyTorch's. It has no ``forward``: the owner calls its layers.

    Args:
        modules: an iterable of modules to start with.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self += modules

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(list(self._modules.values())[index])
        return self._modules[str(_position(index, len(self)))]

    def __setitem__(self, index, module):
        _put_module(self, str(_position(index, len(self))), module)

    def __delitem__(self, index):
        positions = (range(len(self))[index] if isinstance(index, slice)
                     else [_position(index, len(self))])
        for position in positions:
            del self._modules[str(position)]
        _renumber(self._modules)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        combined = ModuleList()
        for i, module in enumerate(itertools.chain(self, other)):
            combined.add_module(str(i), module)
        return combined

    def __repr__(self):
        """PyTorch's repr: runs of identical layers compressed to ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(module) for module in self]
        if not reprs:
            return "ModuleList()"
        runs = []  # [first, last, repr]
        for i, text in enumerate(reprs):
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [(f"({first}): " if first == last
                  else f"({first}-{last}): {last - first + 1} x ") + text.replace("\n", "\n  ")
                 for first, last, text in runs]
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"

    def insert(self, index, module):
        """Insert ``module`` before ``index``, as ``list.insert`` does (PyTorch's own loop
        fails on a negative index)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        modules = list(self._modules.values())
        modules.insert(operator.index(index), module)
        self._modules.clear()
        self._modules.update((str(i), m) for i, m in enumerate(modules))

    def extend(self, modules):
        """Append every module of the iterable ``modules``; returns self."""
        _iterable(modules, "ModuleList.extend")
        offset = len(self)
        for i, module in enumerate(modules):
            self.add_module(str(offset + i), module)
        return self


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys: ``md[key]``, assignment,
    ``del``, ``in``, ``len``, iteration over keys, ``keys()``, ``items()``, ``values()``,
    ``update()``, ``pop()`` and ``clear()`` as on PyTorch's. It has no ``forward``.

    Args:
        modules: a mapping or an iterable of ``(key, module)`` pairs, in order.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self._check_name(key, "module", self._modules)
        _put_module(self, key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        """Add or replace entries from a mapping (in its order) or an iterable of
        ``(key, module)`` pairs."""
        if not isinstance(modules, collections.abc.Iterable):
            raise TypeError(f"ModuleDict.update should be called with an iterable of key/value "
                            f"pairs, but got {type(modules).__name__}")
        entries = modules.items() if isinstance(modules, (collections.abc.Mapping, ModuleDict)) \
            else _pairs(modules, "ModuleDict")
        for key, module in entries:
            self[key] = module


def _set_entry(container, name, value):
    """Store ``value`` as attribute ``name``, as PyTorch's ParameterList and ParameterDict do:
    a Tensor becomes a Parameter (sharing its memory) and is registered, in the place of a
    parameter of that name if there is one; anything else is a plain attribute."""
    if isinstance(value, Tensor) and not isinstance(value, Parameter):
        value = Parameter(value)
    if isinstance(value, Parameter) and name in container._parameters:
        container._parameters[name] = value
    else:
        setattr(container, name, value)


def _describe(value):
    """One entry of a parameter container's repr, PyTorch's wording (fastgrad's dtype names)."""
    if not isinstance(value, Tensor):
        return f"Object of type: {type(value).__name__}"
    kind = "Parameter" if isinstance(value, Parameter) else "Tensor"
    return f"{kind} containing: [{value.dtype} of size {'x'.join(map(str, value.shape))}]"


class ParameterList(Module):
    """A list of parameters, registered under "0", "1", ...: ``parameters()`` and
    ``state_dict()`` see them. A Tensor put in becomes a Parameter (sharing its memory);
    other objects are kept as plain entries. Indexing, slicing, assignment, ``len``,
    iteration, ``append``, ``extend`` and ``+=`` work as on PyTorch's.

    Args:
        values: an iterable of entries to start with.
    """

    def __init__(self, values=None):
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def __getitem__(self, index):
        if isinstance(index, slice):
            out = type(self)()
            for i in range(*index.indices(len(self))):
                out.append(self[i])
            return out
        return getattr(self, str(_position(index, len(self))))

    def __setitem__(self, index, value):
        _set_entry(self, str(_position(index, len(self))), value)

    def __len__(self):
        return self._size

    def __iter__(self):
        return iter(self[i] for i in range(len(self)))

    def __iadd__(self, values):
        return self.extend(values)

    def append(self, value):
        """Add ``value`` at the end; returns self."""
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values):
        """Append every entry of the iterable ``values`` (not a Tensor); returns self."""
        _iterable(values, "ParameterList.extend")
        for value in values:
            self.append(value)
        return self

    def extra_repr(self):
        return "\n".join(f"  ({i}): {_describe(value)}" for i, value in enumerate(self))

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """An ordered dict of parameters, registered under their keys. A Tensor put in becomes a
    Parameter (sharing its memory); other objects are kept as plain entries. The dict API of
    PyTorch's: indexing, assignment, ``del``, ``in``, ``len``, iteration over keys, ``keys()``,
    ``items()``, ``values()``, ``get``, ``setdefault``, ``pop``, ``popitem``, ``clear``,
    ``copy``, ``fromkeys``, ``update`` and ``|``.

    ``update`` with a plain ``dict`` adds its entries sorted by key, as PyTorch's does; an
    ``OrderedDict``, a ParameterDict or a sequence of pairs keeps its order.

    Args:
        parameters: a mapping or an iterable of ``(key, value)`` pairs.
    """

    def __init__(self, parameters=None):
        super().__init__()
        self._keys = {}
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        if not isinstance(key, str):
            raise TypeError(f"Index given to ParameterDict cannot be used as a key as it is not "
                            f"a string (type is '{type(key).__name__}')")
        return getattr(self, key)

    def __setitem__(self, key, value):
        self._check_name(key, "parameter", self._keys)
        self._keys[key] = None
        _set_entry(self, key, value)

    def __delitem__(self, key):
        del self._keys[key]
        delattr(self, key)

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __reversed__(self):
        return reversed(list(self._keys))

    def __contains__(self, key):
        return key in self._keys

    def copy(self):
        """A new ParameterDict holding the same entries (the same Parameters)."""
        return ParameterDict(collections.OrderedDict(self.items()))

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self):
        for key in list(self._keys):
            del self[key]

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        """Remove and return the last inserted ``(key, value)``."""
        key = next(reversed(self._keys))
        return key, self.pop(key)

    def get(self, key, default=None):
        return self[key] if key in self else default  # noqa: SIM401 (this is get)

    def fromkeys(self, keys, default=None):
        return ParameterDict((key, default) for key in keys)

    def keys(self):
        return self._keys.keys()

    def items(self):
        return ((key, self[key]) for key in self._keys)

    def values(self):
        return (self[key] for key in self._keys)

    def update(self, parameters):
        """Add or replace entries from a mapping or an iterable of ``(key, value)`` pairs (a
        plain dict's sorted by key, as PyTorch's)."""
        if not isinstance(parameters, collections.abc.Iterable):
            raise TypeError(f"ParametersDict.update should be called with an iterable of "
                            f"key/value pairs, but got {type(parameters).__name__}")
        if isinstance(parameters, (collections.OrderedDict, ParameterDict)):
            entries = parameters.items()
        elif isinstance(parameters, collections.abc.Mapping):
            entries = sorted(parameters.items())
        else:
            entries = _pairs(parameters, "ParameterDict")
        for key, value in entries:
            self[key] = value

    def extra_repr(self):
        return "\n".join(f"  ({key}): {_describe(value)}" for key, value in self.items())

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")

    def __or__(self, other):
        copy = self.copy()
        copy.update(other)
        return copy

    def __ror__(self, other):
        copy = other.copy()
        copy.update(self)
        return copy

    def __ior__(self, other):
        self.update(other)
        return self
