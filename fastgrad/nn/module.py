"""Module and Parameter: the containers of layers and their weights, with PyTorch's semantics.

Assigning a :class:`Parameter` or a :class:`Module` as an attribute registers it, so
``named_parameters()``, ``state_dict()`` and the repr find it; ``register_buffer`` does the same
for non-trained state such as running statistics.

Hooks follow PyTorch: ``register_forward_pre_hook``, ``register_forward_hook``,
``register_full_backward_pre_hook`` and ``register_full_backward_hook`` each return a
:class:`~fastgrad.autograd.RemovableHandle`. A module without hooks pays one check per call.
"""
import collections
import collections.abc

import numpy as np

from .. import autograd
from .. import dtypes
from ..autograd import Function, RemovableHandle
from ..device import cuda_device, device_arrays, is_on
from ..device import to_device as move_array
from .._checks import flag
from ..tensor import Tensor, _dtype_of_type_name, _to_arguments


class Parameter(Tensor):
    """A Tensor that is a module's weight: it requires grad by default and is registered when
    assigned to a Module attribute.

    Args:
        data: a Tensor (whose memory is shared) or a NumPy array; None gives an empty float32
            tensor.
        requires_grad: whether the optimiser should train it.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtypes.default_float)
        elif isinstance(data, Tensor):
            data = data._data
        elif not isinstance(data, np.ndarray) and device_arrays(data) is None:
            raise TypeError(f"Parameter data must be a Tensor or numpy.ndarray, got "
                            f"{type(data).__name__}")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# ------------------------------------------------------------------------------ backward hooks
class _BackwardHookState:
    """What one call of a module with full backward hooks shares between its two identity
    nodes: the output node records ``grad_output``, the input node calls the hooks.

    PyTorch's ``torch.utils.hooks.BackwardHook``.
    """

    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.n_inputs = self.n_outputs = 0
        self.input_positions = self.output_positions = None
        self.grad_outputs = None

    def _wrap(self, values, node_class):
        """Route the Tensors of ``values`` that require grad through one identity node;
        returns the new values and the positions routed (None when none was)."""
        if not autograd.is_grad_enabled():
            return values, None
        chosen = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
        if not chosen:
            return values, None
        routed = node_class.apply(*[values[i] for i in chosen], state=self)
        values = list(values)
        for i, tensor in zip(chosen, routed):
            values[i] = tensor
        return tuple(values), chosen

    def setup_input(self, args):
        self.n_inputs = len(args)
        args, self.input_positions = self._wrap(args, _ModuleInputHook)
        return args

    def setup_output(self, result):
        single = not isinstance(result, tuple)
        values = (result,) if single else result
        self.n_outputs = len(values)
        values, self.output_positions = self._wrap(values, _ModuleOutputHook)
        if single:
            return values[0]
        return values if type(result) is tuple else type(result)(*values)  # namedtuples

    def on_grad_output(self, grads):
        """The module's output gradients arrived: run the pre-hooks, and the hooks when no
        input needs a gradient (the input node will not run). Returns the gradients to pass
        on, in routed order."""
        packed = _pack(self.output_positions, grads, self.n_outputs)
        for hook in self.pre_hooks:
            result = hook(self.module, packed)
            if result is None:
                continue
            result = _as_grad_tuple(result, "backward pre-hook")
            if len(result) != len(packed):
                raise RuntimeError(f"backward pre-hook returned an invalid number of "
                                   f"grad_output, got {len(result)}, but expected "
                                   f"{len(packed)}")
            packed = result
        self.grad_outputs = packed
        if self.input_positions is None:
            nothing = (None,) * self.n_inputs
            for hook in self.hooks:
                result = hook(self.module, nothing, packed)
                if result is not None and not (isinstance(result, tuple)
                                               and all(r is None for r in result)):
                    raise RuntimeError("backward hook for a Module where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients")
            self.grad_outputs = None
        return [_array_or_none(packed[i]) for i in self.output_positions]

    def on_grad_input(self, grads):
        """The gradients with respect to the module's inputs arrived: run the hooks; returns
        the (possibly replaced) gradients in routed order."""
        if self.grad_outputs is None:  # reached the inputs without passing the outputs
            return grads
        packed = _pack(self.input_positions, grads, self.n_inputs)
        for hook in self.hooks:
            result = hook(self.module, packed, self.grad_outputs)
            if result is None:
                continue
            result = _as_grad_tuple(result, "backward hook")
            if len(result) != len(packed):
                raise RuntimeError(f"backward hook returned an invalid number of grad_input, "
                                   f"got {len(result)}, but expected {len(packed)}")
            packed = result
        self.grad_outputs = None
        return [_array_or_none(packed[i]) for i in self.input_positions]


def _pack(positions, grads, size):
    """A tuple of ``size`` entries: the gradients (as Tensors) at ``positions``, else None."""
    packed = [None] * size
    for i, g in zip(positions, grads):
        packed[i] = None if g is None else Tensor(g)
    return tuple(packed)


def _as_grad_tuple(result, what):
    if isinstance(result, Tensor):
        result = (result,)
    if not isinstance(result, (tuple, list)) or not all(
            r is None or isinstance(r, Tensor) for r in result):
        raise TypeError(f"a {what} must return None or a tuple of Tensors (or None), got "
                        f"{type(result).__name__}")
    return tuple(result)


def _array_or_none(value):
    return None if value is None else value._data


class _ModuleHook(Function):
    """Identity over several tensors whose backward hands the gradients to a
    :class:`_BackwardHookState` (outputs without a gradient stay None)."""

    materialize_grads = False

    def forward(self, *arrays, state):
        self.state = state
        self.meta = [(a.shape, a.dtype) for a in arrays]
        return arrays

    def _checked(self, replaced):
        result = []
        for new, (shape, dtype) in zip(replaced, self.meta):
            if new is None:
                result.append(None)
                continue
            if new.shape != shape:
                raise RuntimeError(f"a module hook returned a gradient of shape {new.shape}, "
                                   f"expected {shape}")
            result.append(new.astype(dtype, copy=False))
        return tuple(result)


class _ModuleOutputHook(_ModuleHook):
    def backward(self, *grads):
        return self._checked(self.state.on_grad_output(grads))


class _ModuleInputHook(_ModuleHook):
    def backward(self, *grads):
        return self._checked(self.state.on_grad_input(grads))


def _to_array(value, key):
    """A state_dict value as a NumPy array: Tensors, arrays, ``__dlpack__`` or ``__array__``."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if callable(getattr(value, "detach", None)):
        value = value.detach()  # a PyTorch tensor that requires grad refuses export otherwise
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass  # e.g. a tensor on another device: try __array__ next
    if hasattr(value, "__array__"):
        return np.asarray(value)
    raise TypeError(f"state_dict[{key!r}] must be a Tensor, an array or expose __array__ or "
                    f"__dlpack__, got {type(value).__name__}")


class _Changes:
    """How many times any module's parameters, buffers, children, hooks or training mode
    changed: a captured replay (:mod:`fastgrad.graphs`) rechecks its modules only after one."""

    count = 0


def _changed():
    _Changes.count += 1


class _Registry(dict):
    """A module's ``_parameters``, ``_buffers``, ``_modules`` or hooks: a dict that counts its
    changes in :class:`_Changes` (reads stay plain dict reads)."""

    def __setitem__(self, key, value):
        _changed()
        super().__setitem__(key, value)

    def __delitem__(self, key):
        _changed()
        super().__delitem__(key)

    def pop(self, *args):
        _changed()
        return super().pop(*args)

    def popitem(self):
        _changed()
        return super().popitem()

    def clear(self):
        _changed()
        super().clear()

    def update(self, *args, **kwargs):
        _changed()
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        _changed()
        return super().setdefault(key, default)


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign their parameters, buffers and
    sub-modules as attributes, and implement ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", _Registry())
        object.__setattr__(self, "_buffers", _Registry())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", _Registry())
        object.__setattr__(self, "_forward_pre_hooks", _Registry())
        object.__setattr__(self, "_forward_hooks", _Registry())
        object.__setattr__(self, "_forward_hooks_with_kwargs", _Registry())
        object.__setattr__(self, "_backward_pre_hooks", _Registry())
        object.__setattr__(self, "_backward_hooks", _Registry())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        if autograd._recorder is not None:
            autograd._recorder.module_called(self)
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks \
                or self._backward_pre_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        """PyTorch's ``Module._call_impl``: forward pre-hooks, forward, forward hooks, with
        the backward hooks wired around the call."""
        autograd._untraced(f"hooks ran on a {type(self).__name__} module")
        for hook_id, hook in tuple(self._forward_pre_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward = None
        if self._backward_hooks or self._backward_pre_hooks:
            backward = _BackwardHookState(self, list(self._backward_hooks.values()),
                                          list(self._backward_pre_hooks.values()))
            args = backward.setup_input(args)
        output = self.forward(*args, **kwargs)
        for hook_id, hook in tuple(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        if backward is not None:
            output = backward.setup_output(output)
        return output

    # -------------------------------------------------------------------------------- hooks
    @staticmethod
    def _add_hook(hooks, hook, prepend, *extra):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(hooks, *extra)
        hooks[handle.id] = hook
        if prepend:
            hooks_list = list(hooks.items())
            hooks.clear()
            hooks[handle.id] = hook
            hooks.update(hooks_list[:-1])
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before every ``forward``; PyTorch's semantics.

        The hook may return a replacement for the positional arguments (a tuple, or a single
        value that is wrapped in one). With ``with_kwargs=True`` it is called as
        ``hook(module, args, kwargs)`` and may return ``(args, kwargs)``.

        Args:
            hook: the callable.
            prepend: run before the hooks already registered (default: after).
            with_kwargs: pass the keyword arguments too.

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`.
        """
        handle = self._add_hook(self._forward_pre_hooks, hook, prepend,
                                self._forward_hooks_with_kwargs)
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after every ``forward``; PyTorch's semantics.

        ``args`` are the positional arguments as forward received them; the hook may return
        a replacement output. With ``with_kwargs=True`` it is called as
        ``hook(module, args, kwargs, output)``. Inside :class:`~fastgrad.nn.Sequential`, a
        Linear and its activation with a hook on either run unfused, so the hook sees the
        Linear's own output.

        Args:
            hook: the callable.
            prepend: run before the hooks already registered (default: after).
            with_kwargs: pass the keyword arguments too.

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`.
        """
        handle = self._add_hook(self._forward_hooks, hook, prepend,
                                self._forward_hooks_with_kwargs)
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        return handle

    def register_full_backward_pre_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_output)`` when the gradients with respect to the module's
        outputs are computed; PyTorch's semantics.

        ``grad_output`` is a tuple with one entry per output (None for an output that is not
        a Tensor requiring grad, or that received no gradient). The hook may return a
        replacement tuple of the same length, used in place of ``grad_output`` from then on.

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`.
        """
        return self._add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_input, grad_output)`` when the gradients with respect to
        the module's inputs are computed; PyTorch's semantics.

        ``grad_input`` has one entry per positional argument of ``forward`` (None for an
        argument that is not a Tensor requiring grad); ``grad_output`` one per output. The
        hook may return a replacement for ``grad_input`` (a tuple of the same length), which
        then flows to earlier layers. When no input requires a gradient (the first layer of a
        network), the hook runs once the output gradients are known, with ``grad_input`` all
        None, and must return None. Only the Tensors at the top level of the arguments and
        of a tuple output take part (an LSTM's ``(h_n, c_n)`` does not).

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`.
        """
        return self._add_hook(self._backward_hooks, hook, prepend)

    def _has_hooks(self):
        """True when any hook is registered on this module (not counting its children)."""
        return bool(self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                    or self._backward_pre_hooks)

    # ------------------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                f"{name!r} (a Module or None is expected)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None is expected)")
            buffers[name] = value
        else:
            if name == "training":
                _changed()
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop ``name`` from every registry but ``keep`` (the one being assigned, where it
        keeps its place, as PyTorch's: replacing a Sequential's layer keeps the order)."""
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        registries = self.__dict__.get("_parameters"), self.__dict__.get("_buffers"), \
            self.__dict__.get("_modules")
        for registry in registries:
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def _check_name(self, name, kind, registry):
        """PyTorch's checks of a name to register a ``kind`` under: a string, not empty,
        without '.', and not an attribute of another sort already."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if not name:
            raise KeyError(f'{kind} name cannot be the empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name cannot contain ".", got: {name}')
        if name not in registry and hasattr(self, name):
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._check_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} "
                            "(a Parameter or None is expected)")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register a non-trained tensor (running statistics...) saved in the state_dict
        unless ``persistent`` is False."""
        self._check_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register {type(tensor).__name__} as buffer {name!r} "
                            "(a Tensor or None is expected)")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register the sub-module ``module`` under ``name``."""
        self._check_name(name, "module", self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        self._modules[name] = module

    def register_module(self, name, module):
        """Alias of :meth:`add_module`, as PyTorch has."""
        self.add_module(name, module)

    def get_submodule(self, target):
        """The sub-module at the dotted path ``target`` (``"encoder.layers.0"``; ``""`` is
        self).

        Raises:
            AttributeError: a step of the path names nothing, or something that is not a
                Module.
        """
        module = self
        if target == "":
            return module
        for name in target.split("."):
            if not hasattr(module, name):
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
            module = getattr(module, name)
            if not isinstance(module, Module):
                raise AttributeError(f"`{name}` is not an nn.Module")
        return module

    def _get_member(self, target, kind, registry):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        if name not in getattr(module, registry):
            raise AttributeError(f"`{name}` is not {kind}")
        return getattr(module, name)

    def get_parameter(self, target):
        """The parameter at the dotted path ``target`` (``"encoder.0.weight"``).

        Raises:
            AttributeError: the path names nothing, or something that is not a parameter.
        """
        return self._get_member(target, "an nn.Parameter", "_parameters")

    def get_buffer(self, target):
        """The buffer at the dotted path ``target`` (``"bn.running_mean"``).

        Raises:
            AttributeError: the path names nothing, or something that is not a buffer.
        """
        return self._get_member(target, "a buffer", "_buffers")

    # ------------------------------------------------------------------------------ queries
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Every module in the tree (self first) with its dotted name: each once, unless
        ``remove_duplicate`` is False (then a module used twice appears under both names)."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, Parameter)`` for every parameter: each once, unless
        ``remove_duplicate`` is False (then a shared parameter appears under each name)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    # ------------------------------------------------------------------------------ modes
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode for the whole tree."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got "
                             f"{type(mode).__name__} {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        _changed()
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget (or zero) the gradient of every parameter."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad._data[...] = 0

    def apply(self, fn):
        """Call ``fn`` on every sub-module (children first) and on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Move and/or cast the parameters and buffers in place; returns self. PyTorch's forms:

        - ``to(device=None, dtype=None, non_blocking=False)``
        - ``to(dtype, non_blocking=False)``
        - ``to(tensor, non_blocking=False)``: ``tensor``'s device and dtype

        ``dtype`` must be floating and casts the floating parameters and buffers only (integer
        buffers such as ``num_batches_tracked`` stay as they are, as in PyTorch). The device
        is resolved (:func:`fastgrad.device.resolve`); every parameter, gradient and buffer
        moves there. Parameters get new memory, so create optimisers after moving or casting
        (an existing optimiser repacks them before its next step). ``non_blocking`` and
        ``memory_format`` have no effect.

        Raises:
            RuntimeError: a device this build cannot hold tensors on (``"cuda"`` without
                CUDA arrays...), or
                ``copy=True``.
            TypeError: a dtype that is not floating, or arguments that fit no form.
        """
        device, dtype, _, copy, _ = _to_arguments(args, kwargs, "Module.to")
        if copy:
            raise RuntimeError("Module.to() does not accept copy=True: it converts the module "
                               "in place")
        if dtype is not None and not dtypes.is_floating(dtype):
            raise TypeError(f"Module.to() takes a floating dtype, got {dtype}")
        if device is not None:
            self._convert(lambda array: move_array(array, device),
                          lambda tensor: not is_on(tensor._data, device))
        if dtype is not None:
            self._cast(dtype, floating_only=True)
        return self

    def _cast(self, dtype, floating_only):
        """Cast the parameters and buffers to ``dtype`` in place (only the floating ones when
        ``floating_only``); returns self."""
        return self._convert(
            lambda array: array.astype(dtype),
            lambda tensor: tensor.dtype != dtype and (dtypes.is_floating(tensor.dtype)
                                                      or not floating_only))

    def _convert(self, convert, selected):
        """Replace the arrays of the parameters (and their gradients) and buffers that are
        ``selected(tensor)`` by ``convert(array)``, in place; returns self."""
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None and selected(param):
                    param.data = convert(param._data)
                    if param._grad is not None:
                        param._grad = Tensor(convert(param._grad._data))
            for name, buffer in module._buffers.items():
                if buffer is not None and selected(buffer):
                    module._buffers[name] = Tensor(convert(buffer._data))
        return self

    def type(self, dst_type):
        """Cast every parameter and buffer, integer buffers included (PyTorch's difference
        from :meth:`to`), to ``dst_type``: a floating dtype or a name such as
        ``"torch.DoubleTensor"``; returns self.

        Raises:
            TypeError: ``dst_type`` is not floating (parameters must stay floating to train).
        """
        if isinstance(dst_type, str):
            dst_type = _dtype_of_type_name(dst_type)
        dst_type = dtypes.resolve(dst_type, "dst_type")
        if not dtypes.is_floating(dst_type):
            raise TypeError(f"Module.type() takes a floating dtype, got {dst_type}")
        return self._cast(dst_type, floating_only=False)

    def cpu(self):
        """Move the parameters and buffers to the CPU; returns self."""
        return self.to("cpu")

    def cuda(self, device=None):
        """Move to a CUDA device (None for the current one, an int or a device).

        Raises:
            RuntimeError: no CUDA device is available (:func:`fastgrad.cuda.is_available`).
        """
        return self.to(cuda_device(device))

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (freeze with False); returns self."""
        requires_grad = flag(requires_grad, "requires_grad")
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    # -------------------------------------------------------------------------- state_dict
    def state_dict(self, prefix="", keep_vars=False):
        """Every parameter and persistent buffer by dotted name (PyTorch's keys; a module used
        twice appears under both names).

        Values share memory with the module (detached unless ``keep_vars``).
        """
        state = collections.OrderedDict()
        self._save_to_state_dict(state, prefix, keep_vars)
        return state

    def _save_to_state_dict(self, state, prefix, keep_vars):
        for name, param in self._parameters.items():
            if param is not None:
                state[prefix + name] = param if keep_vars else param.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                state[prefix + name] = buffer if keep_vars else buffer.detach()
        for name, child in self._modules.items():
            if child is not None:
                child._save_to_state_dict(state, f"{prefix}{name}.", keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` into this module's parameters and buffers, in place.

        Values may be fastgrad Tensors, NumPy arrays, or anything exposing ``__dlpack__`` or
        ``__array__`` (a PyTorch state_dict loads directly). Shapes must match exactly.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            RuntimeError: on a shape mismatch, or on missing/unexpected keys when ``strict``.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("unexpected key(s) in state_dict: " + ", ".join(map(repr, unexpected)))
        if strict and missing:
            errors.append("missing key(s) in state_dict: " + ", ".join(map(repr, missing)))
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = _to_array(state_dict[key], key)
            if value.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a value of shape {value.shape} "
                              f"from the state_dict, the shape in the module is {target.shape}")
            arrays[key] = value
        if errors:
            raise RuntimeError(f"error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for key, value in arrays.items():
            np.copyto(own[key]._data, move_array(value, own[key].device), casting="unsafe")
            own[key]._version += 1
        return _IncompatibleKeys(missing, unexpected)

    # -------------------------------------------------------------------------------- repr
    def extra_repr(self):
        """The layer's own settings for its repr, e.g. ``in_features=64, out_features=10``."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
