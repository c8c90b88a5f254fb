"""Containers of layers."""
import collections

from .activation import FUSABLE
from .linear import Linear
from .module import Module


class Sequential(Module):
    """Layers applied one after another.

    Takes modules as arguments (named "0", "1", ...) or one ``OrderedDict`` of named modules.
    A :class:`Linear` directly followed by a ReLU, Sigmoid or Tanh runs as one fused kernel;
    the result is the same as running them one by one. A pair with a hook registered on
    either module runs unfused, so every hook sees its own module's call.
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

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(collections.OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            module = modules[i]
            following = modules[i + 1] if i + 1 < len(modules) else None
            if type(module) is Linear and type(following) in FUSABLE \
                    and not module._has_hooks() and not following._has_hooks():
                input = module(input, activation=FUSABLE[type(following)])
                i += 2
            else:
                input = module(input)
                i += 1
        return input
