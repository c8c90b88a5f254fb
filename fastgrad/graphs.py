"""Captured steps: a model's forward and backward replayed as a recorded sequence of kernels.

``make_graphed_callables(model)`` (PyTorch's name, from ``torch.cuda``) returns the model with
a forward that runs eagerly the first time it sees a signature of arguments (their shapes,
dtypes and requires_grad), recording every op; later calls with that signature replay the
recorded ops on raw arrays inside one autograd node, whose backward replays the recorded
backward. No Tensor is made for an intermediate value, no graph is built or walked, and none
of the modules' Python runs: on a small model that is most of a training step (per op, the
Python around a kernel costs 5-10 us, the kernel itself 1-5 us). The loss, the optimiser and
clipping stay outside, as in PyTorch: wrap the model, or a function of the model and the loss.

A replay runs the same kernels on the same values in the same order as eager execution, so
outputs, gradients, running statistics and dropout's random draws are bit-identical to it.
One exception: a parameter used several times in the call whose gradients are accumulated
onto an existing ``.grad`` (no ``zero_grad`` between backwards) gets ``g + (a + b)`` from a
replay, which sums its uses first, and ``(g + a) + b`` eagerly (a last-bit difference).
A replay repeats each op's arrays in dtype, shape and layout, so an op that can
(``Function.bind_kernels``: linear, batchnorm) binds its kernels once, after the first
replay's forward, and later replays skip their per-call argument checks (a new kernel table,
``backends.use``, means a new capture).
What a replay cannot repeat is Python outside the ops. The capture notices, and the callable
then runs eagerly for that signature (until a module changes: a hook removed, a layer
replaced), silently and correctly, when the captured call

- read a tensor's values on the host (``item()``, ``bool()``, ``float()``, ``.numpy()``,
  ``.tolist()``): the usual form of data-dependent control flow;
- drew random numbers outside an op, or wrote a tensor in place outside autograd with a value
  not made by an op;
- ran module hooks, registered a tensor hook, or called ``backward()``;
- used a tensor made during the call outside the ops (``fastgrad.zeros`` inside forward): the
  replay would reuse the captured one. This is seen at the next call, when that tensor is gone.

Every call checks the arguments' signature, grad mode, each module the capture ran (training
flag, hooks, its parameters, buffers and children), and that every tensor the replay reads
from outside (parameters, buffers) still exists with its shape, dtype and requires_grad; a
change means a new capture (at most :data:`MAX_SIGNATURES` signatures, then eager). Not
noticed, as with CUDA graphs in PyTorch: Python state other than tensors and module flags
that steers forward, a tensor read from a global that is rebound between calls (pass it as an
argument), and Python side effects of forward (attributes set, prints). Between a replay and
its backward the recorded ops keep what they saved for backward (one step's activations); the
backward frees it, as an eager backward does (unless ``retain_graph=True``).
"""
import collections
import threading
import weakref

import numpy as np

from . import autograd
from . import backends
from ._checks import ieee
from .autograd import Function
from .device import array_of, is_array, zeros
from .nn import module as _module
from .tensor import Tensor

#: Signatures captured per callable; calls with further signatures run eagerly.
MAX_SIGNATURES = 8
#: A signature whose capture went stale this many times (a tensor made during each call was
#: read by the replay) runs eagerly from then on.
MAX_STALE = 2
#: What :meth:`_Trace.resolve` returns when a tensor the replay reads is gone, or when a
#: module or a tensor changed since the capture.
_GONE, _CHANGED = "gone", "changed"


class GraphedCallable:
    """``fn`` with captured replays (see the module docstring); made by
    :func:`make_graphed_callables`.

    Attributes:
        stats: counts of ``"captures"``, ``"replays"`` and ``"eager"`` calls.
        reasons: ``{signature: why it runs eagerly}`` for the signatures that do.
    """

    def __init__(self, fn, module=None):
        if not callable(fn):
            raise TypeError(f"make_graphed_callables takes callables or Modules, got "
                            f"{type(fn).__name__}")
        self._fn = fn
        self._module = module
        # signature -> _Trace, or (why it runs eagerly, the module change count then): a
        # refusal is retried once a module changed (a hook removed, say)
        self._traces = {}
        self._stale = collections.Counter()
        self.stats = collections.Counter()
        self.reasons = {}

    def __call__(self, *args, **kwargs):
        if kwargs:
            return self._eager(args, kwargs)
        if not autograd._grad_mode.enabled or autograd._recorder is not None:
            return self._eager(args, kwargs)   # evaluation, or inside another capture
        key = _signature(args)
        if key is None:
            return self._eager(args, kwargs)
        trace = self._traces.get(key)
        if trace is None:
            if len(self._traces) >= MAX_SIGNATURES:
                return self._eager(args, kwargs)
            return self._capture(key, args)
        if type(trace) is tuple:
            if trace[1] == _module._Changes.count:
                return self._eager(args, kwargs)
            return self._capture(key, args)
        if trace.busy():
            return self._eager(args, kwargs)  # the previous replay's backward has not run
        live = trace.resolve()
        if live is _GONE:  # a tensor the replay reads was a temporary of the captured call
            self._stale[key] += 1
            if self._stale[key] >= MAX_STALE:
                self._refuse(key, "an op read a tensor made during the call outside the ops "
                                  "(by a creation function, or an op without a gradient: a "
                                  "comparison, argmax): the replay would reuse the captured one")
                return self._eager(args, kwargs)
            return self._capture(key, args)
        if live is _CHANGED:  # a module's mode, hooks or members, or a parameter changed
            return self._capture(key, args)
        self.stats["replays"] += 1
        return trace.replay(args, live)

    def _eager(self, args, kwargs):
        self.stats["eager"] += 1
        return self._fn(*args, **kwargs)

    def _capture(self, key, args):
        recorder = _Recorder(args)
        if self._module is not None:
            recorder.module_called(self._module)
        autograd._recorder = recorder
        try:
            result = self._fn(*args)
        finally:
            autograd._recorder = None
        trace = recorder.finish(result)
        if type(trace) is str:
            self._refuse(key, trace)
        else:
            self._traces[key] = trace
            self.reasons.pop(key, None)
        self.stats["captures"] += 1
        return result

    def _refuse(self, key, reason):
        """Run signature ``key`` eagerly, for ``reason``, until a module changes."""
        self._traces[key] = (reason, _module._Changes.count)
        self.reasons[key] = reason

    def __repr__(self):
        return f"GraphedCallable({self._fn!r})"


def make_graphed_callables(callables, sample_args=None, *, num_warmup_iters=3,
                           allow_unused_input=False, pool=None):
    """Captured-replay versions of ``callables`` (PyTorch's ``torch.cuda.make_graphed_callables``
    on the CPU; see the module docstring for what a replay repeats and when a call runs
    eagerly instead).

    Args:
        callables: a Module or a function, or a tuple of them. A Module comes back with its
            ``forward`` replaced (hooks, parameters and ``state_dict`` unchanged); a function
            comes back as a :class:`GraphedCallable`.
        sample_args: PyTorch's example arguments (a tuple of Tensors per callable). Checked,
            not run: fastgrad captures at the first call with each signature, which is an
            ordinary eager call, so nothing runs twice.
        num_warmup_iters, allow_unused_input, pool: PyTorch's CUDA-graph settings, accepted so
            a script runs unchanged; a CPU replay has no warm-up, memory pool or unused-input
            check.

    Returns:
        The graphed callables, in the structure given.
    """
    single = not isinstance(callables, tuple)
    items = (callables,) if single else callables
    if sample_args is not None:
        samples = (sample_args,) if single else tuple(sample_args)
        if len(samples) != len(items):
            raise ValueError(f"sample_args has {len(samples)} entries for {len(items)} "
                             "callables")
        for position, sample in enumerate(samples):
            if not isinstance(sample, tuple) or not all(isinstance(a, Tensor) for a in sample):
                raise TypeError(f"sample_args[{position}] must be a tuple of Tensors, got "
                                f"{type(sample).__name__}")
    graphed = tuple(_graph(item) for item in items)
    return graphed[0] if single else graphed


def _graph(item):
    from .nn.module import Module
    if isinstance(item, Module):
        forward = GraphedCallable(item.forward, module=item)
        object.__setattr__(item, "forward", forward)
        return item
    return GraphedCallable(item)


def _signature(args):
    """What a capture is valid for: each Tensor argument's shape, dtype and requires_grad,
    each other argument's type and value; None when one is not hashable."""
    key = []
    for a in args:
        if isinstance(a, Tensor):
            key.append((a._data.shape, a._data.dtype, a._requires_grad))
        else:
            try:
                hash(a)
            except TypeError:
                return None
            key.append((type(a), a))
    return tuple(key)


# --------------------------------------------------------------------------------- capture
class _Recorder:
    """Collects one eager call's ops (``Function.apply`` hands over the top-level ones) into a
    program over a table of values: the call's tensor arguments, the tensors it reads from
    outside (parameters, buffers, other arrays: held weakly, looked up at each replay),
    constants, and each op's outputs."""

    def __init__(self, args):
        self.thread = threading.get_ident()
        self.depth = 0
        self.refused = None
        self.modules = {}
        self.keep = []                  # every object seen: no id() is reused while capturing
        self.size = 0                   # entries of the value table
        self.constants = {}             # value index -> a constant argument
        self.data = {}                  # id(array) -> value index
        self.inputs = []                # the value indices of the Tensor arguments
        self.input_ids = {}             # id(argument Tensor) -> its leaf index
        self.params = []                # (weakref, (shape, dtype), value index)
        self.param_index = {}           # id(parameter) -> (position, value index)
        self.outside = []               # (weakref, kind, checks, value index)
        self.outside_index = {}         # (id(object), kind) -> value index
        self.ops = []                   # [node, arg indices, kwargs, dynamic kwargs, outputs,
        #                                  several outputs?, gradient destinations]
        self.grad_node = {}             # id(Function) -> op number
        for a in args:
            if isinstance(a, Tensor):
                index = self._new_value(a._data)
                self.data.setdefault(id(a._data), index)
                self.input_ids.setdefault(id(a), len(self.inputs))
                self.inputs.append(index)

    # --- called by autograd, tensor and module code during the call
    def outside_ops(self):
        """True for code running in the captured call itself, not inside an op's forward
        (nor in another thread)."""
        return self.depth == 0 and threading.get_ident() == self.thread

    def refuse(self, reason):
        if self.refused is None:
            self.refused = reason

    def module_called(self, module):
        if threading.get_ident() == self.thread:
            self.modules.setdefault(id(module), module)

    def record(self, cls, args, kwargs):
        """Run ``cls.apply(*args, **kwargs)`` and record it."""
        enabled = autograd._grad_mode.enabled
        needs = [isinstance(a, Tensor) and enabled and a._requires_grad for a in args]
        sources = [self._source(a, wanted) for a, wanted in zip(args, needs)]
        self.depth += 1
        try:
            outputs = cls.apply(*args, **kwargs)
        finally:
            self.depth -= 1
        if self.refused is not None:
            return outputs
        static, dynamic = {}, []
        for name, value in kwargs.items():
            if isinstance(value, Tensor):
                dynamic.append((name, self._outside(value, "object")))
            elif is_array(value):
                dynamic.append((name, self._array(value)))
            elif _holds_arrays(value):
                self.refuse("an op took tensors inside a list or tuple")
            else:
                static[name] = value
        produced = outputs if type(outputs) is tuple else (outputs,)
        indices = []
        for output in produced:
            index = self._new_value(output._data)
            self.data[id(output._data)] = index
            indices.append(index)
        node = cls()
        node.needs_input_grad = needs
        number = len(self.ops)
        for output in produced:
            if output.grad_fn is not None:
                self.grad_node[id(output.grad_fn)] = number
                self.keep.append(output.grad_fn)
                break
        self.ops.append([node, [s[0] for s in sources], static, dynamic, indices,
                         type(outputs) is tuple, [s[1] for s in sources]])
        return outputs

    def copy(self, destination, source):
        """``source`` was written into the array ``destination`` outside the ops."""
        if self.refused is not None:
            return
        if is_array(source):
            index = self.data.get(id(source))
            if index is None:
                return self.refuse("a value computed outside the ops was written into a "
                                   "tensor")
        elif isinstance(source, (bool, int, float, np.generic)):
            index = self._new_value(source, constant=True)
        else:
            return self.refuse("an unsupported value was written into a tensor")
        self.ops.append([None, [self._array(destination), index], None, None, None, None, None])

    # --- building the program
    def _new_value(self, value, constant=False):
        """A new entry of the value table for ``value`` (kept as it is when ``constant``)."""
        self.keep.append(value)
        if constant:
            self.constants[self.size] = value
        self.size += 1
        return self.size - 1

    def _source(self, a, wanted):
        """``(value index, gradient destination)`` of an op's positional argument ``a``; the
        destination (for a Tensor whose gradient is ``wanted``) is ``(op, output)`` for an
        op's output, an int (leaf index) for a tensor argument or a parameter."""
        if isinstance(a, Tensor):
            index = self.data.get(id(a._data))
            if index is None:
                index = self._outside(a, "data")
            if not wanted:
                return index, None
            if a.grad_fn is not None:
                number = self.grad_node.get(id(a.grad_fn))
                if number is None:
                    self.refuse("a tensor from outside the call that is not a leaf was used")
                    return index, None
                return index, (number, a._output_nr)
            leaf = self.input_ids.get(id(a))
            if leaf is None:
                leaf = len(self.inputs) + self._param(a)[0]
            return index, leaf
        if is_array(a):
            return self._array(a), None
        if _holds_arrays(a):
            self.refuse("an op took tensors inside a list or tuple")
        return self._new_value(a, constant=True), None

    def _array(self, array):
        index = self.data.get(id(array))
        if index is None:
            index = self._outside(array, "array")
            self.data[id(array)] = index
        return index

    def _outside(self, obj, kind):
        """The value index of a tensor (``kind`` "data": its array; "object": the Tensor) or
        an array (``"array"``) from outside the call, looked up again at each replay."""
        if kind == "data" and obj._requires_grad and obj.grad_fn is None:
            return self._param(obj)[1]
        key = (id(obj), kind)
        index = self.outside_index.get(key)
        if index is None:
            index = self.outside_index[key] = self._new_value(obj)
            checks = None if kind == "array" else (obj._data.shape, obj._data.dtype,
                                                   obj._requires_grad)
            self.outside.append((weakref.ref(obj), kind, checks, index))
        return index

    def _param(self, tensor):
        """``(position, value index)`` of a leaf tensor that requires grad (a parameter)
        among the replay's parameters: its array is an input of the replay, its gradient
        one of the replay's gradients."""
        found = self.param_index.get(id(tensor))
        if found is None:
            index = self._new_value(tensor)
            self.data.setdefault(id(tensor._data), index)
            found = self.param_index[id(tensor)] = (len(self.params), index)
            self.params.append((weakref.ref(tensor), (tensor._data.shape, tensor._data.dtype),
                                index))
        return found

    def finish(self, result):
        """The :class:`_Trace` of the call that returned ``result``, or why there is none."""
        if self.refused is not None:
            return self.refused
        if not self.ops:
            return "the callable ran no ops"
        kind = type(result)
        results = (result,) if kind is Tensor else result
        if kind not in (Tensor, tuple, list) or not all(isinstance(r, Tensor) for r in results):
            return "the callable must return a Tensor or a tuple or list of Tensors"
        outputs, roots, wants = [], [], []
        produced = {i for op in self.ops if op[0] is not None for i in op[4]}
        for r in results:
            index = self.data.get(id(r._data))
            if index not in produced:
                return "the callable returned a tensor that no op of it made"
            outputs.append(index)
            root = None
            if r._requires_grad:
                root = self.grad_node.get(id(r.grad_fn)) if r.grad_fn is not None else None
                if root is None:
                    return "the callable returned a tensor from outside it"
                root = (root, r._output_nr)
            roots.append(root)
            wants.append(r._requires_grad)
        return _Trace(self, outputs, roots, wants, kind)


def _holds_arrays(value):
    return isinstance(value, (tuple, list)) and any(
        isinstance(v, Tensor) or is_array(v) or _holds_arrays(v) for v in value)


# ---------------------------------------------------------------------------------- replay
class _Trace:
    """One captured call: its forward program, its backward plan, and the checks a later call
    must pass to replay it."""

    def __init__(self, recorder, outputs, roots, wants, kind):
        self.template = [None] * recorder.size
        for index, value in recorder.constants.items():
            self.template[index] = value
        self.params = recorder.params
        # where the replay node's arrays go: the tensor arguments', then the parameters'
        self.slots = recorder.inputs + [index for _, _, index in self.params]
        self.outside = recorder.outside
        self.modules = [(m, m.training, _registries(m)) for m in recorder.modules.values()]
        self.changes = -1  # checked at the first replay
        # each op's forward without its errstate wrapper: the replay runs under one
        self.program = [(op[0], _unwrapped(op[0], "forward"), *op[1:6]) for op in recorder.ops]
        self.outputs, self.roots, self.wants, self.kind = outputs, roots, wants, kind
        self.leaves = len(self.slots)
        self.values = None
        self.owner = None
        # the ops' kernels are bound (Function.bind_kernels) after the first replay's forward,
        # to the kernel table of the capture: a new table (backends.use) means a new capture
        self.bound, self.generation = False, backends.generation()
        # backward: the ops autograd reaches from the outputs, in _walk's order
        ops = recorder.ops
        destinations = {n: op[6] for n, op in enumerate(ops) if op[0] is not None}
        order = autograd._topological_order(
            [r[0] for r in roots if r is not None],
            lambda n: [d[0] for d in destinations[n] if d is not None and type(d) is not int])
        self.plan = [(n, ops[n][0], _unwrapped(ops[n][0], "backward"), ops[n][4],
                      [(i, d) for i, d in enumerate(destinations[n]) if d is not None],
                      _leaves_of(ops[n][0], destinations[n]))
                     for n in order]

    def resolve(self):
        """``(parameters, other outside values)`` for a replay; :data:`_GONE` when one of
        them no longer exists, :data:`_CHANGED` when a module or one of them changed since
        the capture."""
        if backends.generation() != self.generation:
            return _CHANGED
        if _module._Changes.count != self.changes:  # some module changed: are these intact?
            for module, training, registries in self.modules:
                if module.training != training or _registries(module) != registries \
                        or module._forward_pre_hooks or module._forward_hooks \
                        or module._backward_hooks or module._backward_pre_hooks:
                    return _CHANGED
            self.changes = _module._Changes.count
        params = []
        for ref, (shape, dtype), _ in self.params:
            tensor = ref()
            if tensor is None:
                return _GONE
            data = tensor._data
            if not tensor._requires_grad or data.shape != shape or data.dtype != dtype:
                return _CHANGED
            params.append(tensor)
        outside = []
        for ref, kind, checks, _ in self.outside:
            obj = ref()
            if obj is None:
                return _GONE
            if kind != "array":
                data = obj._data
                if data.shape != checks[0] or data.dtype != checks[1] \
                        or obj._requires_grad != checks[2]:
                    return _CHANGED
                if kind == "data":
                    obj = data
            outside.append(obj)
        return params, outside

    def busy(self):
        """True while the last replay's node still awaits its backward (the recorded ops hold
        what it saved)."""
        owner = self.owner() if self.owner is not None else None
        return owner is not None and getattr(owner, "inputs", None) is not None

    def replay(self, args, live):
        params, outside = live
        tensors = [a for a in args if isinstance(a, Tensor)]
        result = _Replay.apply(*tensors, *params, trace=self, outside=outside)
        results = result if type(result) is tuple else (result,)
        for output, wanted in zip(results, self.wants):
            if not wanted and output.grad_fn is not None:  # as eager: outside the graph
                output.grad_fn, output._requires_grad = None, False
        if self.kind is Tensor:
            return results[0]
        return self.kind(results)

    def forward(self, replay, arrays, outside):
        self.owner = weakref.ref(replay)
        values = self.values = list(self.template)
        for index, array in zip(self.slots, arrays):
            values[index] = array
        for (_, _, _, index), value in zip(self.outside, outside):
            values[index] = value
        for node, forward, arguments, static, dynamic, outputs, multiple in self.program:
            if node is None:  # an in-place write outside the ops
                np.copyto(values[arguments[0]], values[arguments[1]], casting="unsafe")
                continue
            if dynamic:
                static = dict(static)
                for name, index in dynamic:
                    static[name] = values[index]
            result = forward(node, *[values[i] for i in arguments], **static)
            if multiple:
                for index, array in zip(outputs, result):
                    values[index] = array if type(array) is np.ndarray else array_of(array)
            else:
                values[outputs[0]] = result if type(result) is np.ndarray \
                    else array_of(result)
        if not self.bound:
            self._bind()
        if len(self.outputs) == 1 and self.kind is Tensor:
            return values[self.outputs[0]]
        return tuple(values[i] for i in self.outputs)

    def _bind(self):
        """Bind the kernels of the ops that can (``Function.bind_kernels``: their per-call checks
        done once), after a forward that ran them on this signature's arrays."""
        for entry in self.program:
            bind = getattr(entry[0], "bind_kernels", None)
            if bind is not None:
                bind()
        self.bound = True

    def release(self):
        """Drop the last replay's values and what its ops saved (each op keeps only which
        inputs need a gradient, set at the capture, and its bound kernels)."""
        self.values = None
        for entry in self.program:
            node = entry[0]
            if node is not None:
                kept = {name: node.__dict__[name] for name in _KEPT if name in node.__dict__}
                node.__dict__.clear()
                node.__dict__.update(kept)

    def backward(self, replay, grads):
        """The gradients of the tensor arguments and parameters, as autograd's walk over the
        captured graph would give them (same order, same sums)."""
        values, program = self.values, self.program
        pending = [None] * len(program)
        leaves, fresh = [None] * self.leaves, True
        for root, gradient in zip(self.roots, grads):
            if root is not None and gradient is not None:
                slots = pending[root[0]]
                if slots is None:
                    slots = pending[root[0]] = [None] * len(program[root[0]][5])
                previous = slots[root[1]]
                slots[root[1]] = gradient if previous is None else previous + gradient
        for number, op, backward, outputs, destinations, leaves_of in self.plan:
            grad_outputs = pending[number]
            if grad_outputs is None:
                continue
            pending[number] = None
            if leaves_of is not None:  # the parameters' gradient buffers it may write into
                op.grad_into = autograd.offered_buffers(
                    [None if leaf is None else replay.inputs[leaf] for leaf in leaves_of])
            # a pending single output has its gradient: only several can miss one
            if op.materialize_grads and len(grad_outputs) > 1 \
                    and any(g is None for g in grad_outputs):
                grad_outputs = [g if g is not None else zeros(values[i].shape, values[i].dtype,
                                                               values[i])
                                for g, i in zip(grad_outputs, outputs)]
            grad_inputs = backward(op, *grad_outputs)
            if type(grad_inputs) is not tuple:
                grad_inputs = (grad_inputs,)
            for position, destination in destinations:
                gradient = grad_inputs[position]
                if gradient is None:
                    continue
                if type(destination) is int:
                    previous = leaves[destination]
                    if previous is None:
                        leaves[destination] = gradient
                        fresh = fresh and op.grads_are_fresh
                    else:
                        leaves[destination] = previous + gradient
                    continue
                target, slot = destination
                slots = pending[target]
                if slots is None:
                    slots = pending[target] = [None] * len(program[target][5])
                previous = slots[slot]
                slots[slot] = gradient if previous is None else previous + gradient
        replay.grads_are_fresh = fresh
        return tuple(leaves)


@ieee
class _Replay(Function):
    """One replay of a :class:`_Trace`: its inputs are the call's tensor arguments and the
    parameters the captured ops read. NumPy's floating-point warnings are off for the whole
    replay, as for each op (:func:`fastgrad._checks.ieee`)."""

    materialize_grads = False

    def forward(self, *arrays, trace, outside):
        self.trace = trace
        return trace.forward(self, arrays, outside)

    def backward(self, *grads):
        return self.trace.backward(self, grads)

    def _release(self):
        """Free, with the node, what the replayed ops saved for backward (one step's
        activations), as an eager backward frees each op's: the next step's arrays then
        reuse that memory instead of new memory beside it."""
        self.trace.release()
        super()._release()


def _leaves_of(node, destinations):
    """For an op that writes gradients into offered buffers (``Function.writes_grads_into``),
    the replay input (leaf index) behind each of its inputs, None where it is another op's
    output or needs no gradient; None for other ops."""
    if node is None or not node.writes_grads_into:
        return None
    return tuple(d if type(d) is int else None for d in destinations)


#: What a replayed op keeps between replays (see :meth:`_Trace.release`).
_KEPT = ("needs_input_grad", "bound_kernels")


def _unwrapped(node, name):
    """``type(node).<name>`` without the errstate wrapper of :func:`fastgrad._checks.ieee`
    (None for a write entry)."""
    if node is None:
        return None
    method = getattr(type(node), name)
    return getattr(method, "__wrapped__", method)


def _registries(module):
    """Who a module's parameters, buffers and children are, for the replay's checks."""
    return (tuple(map(id, module._parameters.values())),
            tuple(map(id, module._buffers.values())),
            tuple(map(id, module._modules.values())))
