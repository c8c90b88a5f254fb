"""Reverse-mode automatic differentiation.

A :class:`Function` is one differentiable operation: ``forward`` maps input arrays to output
arrays and saves what ``backward`` needs; ``backward`` maps output gradients to input gradients.
``Function.apply`` runs forward on Tensors and, while gradients are recorded, links the outputs
to the Function so :func:`backward` can walk the graph.

The walk is iterative (an unrolled LSTM is thousands of nodes deep, far past Python's recursion
limit), visits each node once in topological order, and sums the gradients of a tensor used
several times before its node runs.

Hooks (:meth:`Tensor.register_hook <fastgrad.Tensor.register_hook>`) see a tensor's gradient
once it is complete, the sum over every use, and may replace it: a non-leaf's hooks run when
its node is reached, a leaf's after the walk, before the gradient is accumulated into
``.grad``. A leaf's post-accumulate-grad hooks run once its ``.grad`` holds the whole
gradient of the backward; callbacks queued during a backward (:func:`queue_callback`) run when
it ends.
"""
import functools
import itertools
import numbers
import threading
import weakref

import numpy as np

from . import dtypes
from .device import array_of, check_same_device, empty, to_device, zeros


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled():
    """True while operations are recorded for backward."""
    return _grad_mode.enabled


#: The capture in progress (:mod:`fastgrad.graphs`), or None. ``Function.apply`` hands it every
#: top-level op; the few places that read or change tensor values outside a Function tell it
#: through :func:`_untraced` (a replay would not repeat them) or :func:`_traced_copy`.
_recorder = None


def _untraced(reason):
    """Tell the capture in progress, if any, that the code being captured did something a
    replay would not repeat (``reason`` says what): the capture is then not used."""
    recorder = _recorder
    if recorder is not None and recorder.outside_ops():
        recorder.refuse(reason)


def _traced_copy(destination, source):
    """Tell the capture in progress, if any, that ``source`` (an array, or a Python number)
    was written into the array ``destination`` outside a Function (an in-place op's result
    stored into its tensor), so a replay repeats the write."""
    recorder = _recorder
    if recorder is not None and recorder.outside_ops():
        recorder.copy(destination, source)


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it on exit."""

    mode = True

    def __new__(cls, orig_func=None):
        # ``@no_grad`` without parentheses decorates the function directly, as in PyTorch
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}() takes no arguments, or decorates a function; "
                            f"got {type(orig_func).__name__}")
        return cls()(orig_func)

    def __enter__(self):
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous

    def __call__(self, function):
        mode = self.mode

        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # the context manager's work, without making one
            previous = _grad_mode.enabled
            _grad_mode.enabled = mode
            try:
                return function(*args, **kwargs)
            finally:
                _grad_mode.enabled = previous
        return wrapper


class no_grad(_SetGradMode):
    """Disable graph recording (inference, in-place parameter updates).

    Use as ``with fastgrad.no_grad(): ...`` or as a decorator ``@fastgrad.no_grad()``.
    """

    mode = False


class enable_grad(_SetGradMode):
    """Re-enable graph recording inside a ``no_grad`` block."""

    mode = True


def _check_mode(mode, name):
    if not isinstance(mode, (bool, np.bool_)):
        raise TypeError(f"{name}(): mode must be a bool, got {type(mode).__name__} {mode!r}")
    return bool(mode)


class set_grad_enabled:
    """Turn graph recording on (``mode=True``) or off, as ``torch.set_grad_enabled``.

    Three uses, PyTorch's: called alone, ``fastgrad.set_grad_enabled(False)`` sets the mode
    at once and keeps it; as a context manager, ``with fastgrad.set_grad_enabled(is_train):``
    restores the previous mode on exit; as a decorator, ``@fastgrad.set_grad_enabled(False)``
    runs the function in that mode (decorating changes nothing by itself).

    Args:
        mode: True to record operations for backward, False not to.
    """

    def __init__(self, mode):
        self.mode = _check_mode(mode, "set_grad_enabled")
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __enter__(self):
        _grad_mode.enabled = self.mode

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self.prev

    def __call__(self, function):
        _grad_mode.enabled = self.prev
        mode = self.mode

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return function(*args, **kwargs)
        return wrapper

    def __repr__(self):
        return f"fastgrad.set_grad_enabled(mode={self.mode})"


class inference_mode:
    """PyTorch's ``torch.inference_mode``: here exactly :class:`no_grad`.

    PyTorch's inference mode also marks the tensors made inside as inference tensors (faster,
    and refused by autograd later); fastgrad has no such tensors, so inside the block nothing
    is recorded and that is all. ``inference_mode(False)`` records again inside, as
    :class:`enable_grad` (PyTorch's too). Usable as a context manager and as a decorator, with
    or without parentheses.

    Args:
        mode: True to stop recording inside the block, False to record.
    """

    def __new__(cls, mode=True):
        if not isinstance(mode, (bool, np.bool_)) and callable(mode):  # @inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = _check_mode(mode, "inference_mode")

    def __enter__(self):
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = not self.mode

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous

    def __call__(self, function):
        mode = self.mode

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return function(*args, **kwargs)
        return wrapper


class RemovableHandle:
    """The handle returned by every ``register_*hook`` method: ``handle.remove()`` (or leaving
    a ``with handle:`` block) unregisters the hook; removing twice is harmless.

    PyTorch's ``torch.utils.hooks.RemovableHandle``.

    Args:
        *hooks_dicts: the dicts the hook was stored in under ``handle.id``.
    """

    _ids = itertools.count()

    def __init__(self, *hooks_dicts):
        self.hooks_dicts = hooks_dicts
        self.id = next(RemovableHandle._ids)

    def remove(self):
        for hooks in self.hooks_dicts:
            hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


def _call_tensor_hooks(hooks, gradient):
    """Run ``hooks`` (a dict of ``hook(grad) -> Tensor or None``) in order; each sees what the
    previous returned. Returns the final gradient array."""
    Tensor = _tensor.Tensor
    for hook in tuple(hooks.values()):
        result = hook(Tensor(gradient))
        if result is None:
            continue
        if not isinstance(result, Tensor):
            raise TypeError(f"a tensor hook must return a Tensor or None, got "
                            f"{type(result).__name__} from hook {_hook_name(hook)!r}")
        if result.shape != gradient.shape:
            raise RuntimeError(f"hook {_hook_name(hook)!r} has changed the size of value "
                               f"(was {gradient.shape} got {result.shape})")
        if result.dtype != gradient.dtype:
            raise RuntimeError(f"hook {_hook_name(hook)!r} has changed the type of value "
                               f"(was {gradient.dtype} got {result.dtype})")
        gradient = result._data
    return gradient


def _hook_name(hook):
    return getattr(hook, "__name__", type(hook).__name__)


class Function:
    """Base of every differentiable operation.

    Subclasses implement ``forward(self, *arrays, **options)`` returning an array (or a tuple of
    arrays) and ``backward(self, *grad_outputs)`` returning one gradient array (or None) per
    positional input. ``self.needs_input_grad`` says which inputs need a gradient, so forward
    can skip saving what nobody will use. Anything forward stores on ``self`` is freed after
    backward unless the graph is retained.

    Attributes:
        materialize_grads: when True (the default), an output that received no gradient is
            passed to ``backward`` as zeros; when False, as None (PyTorch's
            ``ctx.set_materialize_grads``).

    An op may also define ``bind_kernels()``: a captured replay (:mod:`fastgrad.graphs`) calls
    it once, after a forward, to bind the op's kernels to that forward's arrays
    (:func:`fastgrad.backends.bind`), which every later replay repeats in dtype, shape and
    layout; the bound kernels are kept between replays (``_Linear.bound_kernels``).
    """

    materialize_grads = True
    #: True when ``backward`` returns only arrays it allocated itself (or views of them), each
    #: once: a leaf without a ``.grad`` then takes such an array as its gradient instead of a
    #: copy of it (PyTorch's AccumulateGrad steals an unshared gradient the same way).
    grads_are_fresh = False
    #: ``{output_nr: hooks dict}`` of the outputs that carry tensor hooks, or None.
    tensor_hooks = None
    #: True when ``backward`` takes the arrays the walk offers in :attr:`grad_into`.
    writes_grads_into = False
    #: Set by the walk before ``backward`` (for an op that :attr:`writes_grads_into`): per
    #: input, None or the array to write that input's gradient into (and return): the
    #: gradient buffer of a parameter whose ``.grad`` it will become (see
    #: :func:`offered_buffers`), which saves allocating the gradient and copying it there.
    grad_into = None

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on Tensors (and plain values) and record it when a gradient is needed."""
        if _recorder is not None and _recorder.outside_ops():
            return _recorder.record(cls, args, kwargs)
        Tensor = _tensor.Tensor
        node = cls()
        raw, needs, inputs, versions, record = [], [], [], [], False
        enabled = _grad_mode.enabled
        for a in args:  # one pass collects what forward and, if recorded, backward need
            if isinstance(a, Tensor):
                raw.append(a._data)
                wanted = enabled and a._requires_grad
                record = record or wanted
                needs.append(wanted)
                inputs.append(a)
                versions.append(a._version)
            else:
                raw.append(a)
                needs.append(False)
                inputs.append(None)
                versions.append(0)
        node.needs_input_grad = needs
        result = node.forward(*raw, **kwargs)
        if type(result) is tuple:
            outputs = tuple(Tensor(a if type(a) is np.ndarray else array_of(a))
                            for a in result)
        else:
            outputs = Tensor(result if type(result) is np.ndarray else array_of(result))
        if record:
            node.inputs, node.versions = tuple(inputs), versions
            if type(outputs) is not tuple:  # one output: no generators (0.5 us of an op)
                data = outputs._data
                node.output_meta = ((data.shape, data.dtype),)
                node.output_refs = (weakref.ref(outputs),)
                if data.dtype.kind == "f":
                    outputs._requires_grad = True
                    outputs.grad_fn = node
                return outputs
            node.output_meta = tuple((o._data.shape, o._data.dtype) for o in outputs)
            node.output_refs = tuple(weakref.ref(o) for o in outputs)
            for index, output in enumerate(outputs):
                if output._data.dtype.kind == "f":
                    output._requires_grad = True
                    output.grad_fn = node
                    output._output_nr = index
        return outputs

    def grad_array(self, position, shape, dtype, like):
        """The array for input ``position``'s gradient, of ``shape`` (a tuple or an int) and
        ``dtype``, on the device of the array ``like``: the buffer the walk offered for it
        (:attr:`grad_into`) when it is one, else a new one (a gradient of another dtype than
        its parameter's is cast when it is delivered, as before)."""
        into = self.grad_into
        buffer = None if into is None else into[position]
        if buffer is None or buffer.dtype != dtype or type(buffer) is not type(like) \
                or buffer.shape != (shape if type(shape) is tuple else (shape,)):
            return empty(shape, dtype, like)
        return buffer

    def _release(self):
        """Free what forward saved; a second backward through this node then fails clearly."""
        meta = self.output_meta
        self.__dict__.clear()
        self.inputs, self.output_meta = None, meta

    def _parents(self):
        if self.inputs is None:
            return []
        return [t.grad_fn for t in self.inputs
                if t is not None and t.grad_fn is not None and t._requires_grad]


def _topological_order(roots, parents_of=Function._parents):
    """The nodes reachable from ``roots``, each before every node it depends on (the walk's
    order; a captured step's replay, :mod:`fastgrad.graphs`, passes its own ``parents_of``
    to sum gradients in the same order)."""
    order, visited = [], set()
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(parents_of(root)))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent not in visited:
                    visited.add(parent)
                    stack.append((parent, iter(parents_of(parent))))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _root_gradient(output, gradient, position):
    if gradient is None:
        if output._data.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for outputs with one "
                               f"element; output {position} has shape {output.shape}: pass "
                               "gradient=")
        return np.ones_like(output._data)
    if isinstance(gradient, _tensor.Tensor):
        gradient = gradient._data
    elif isinstance(gradient, np.ndarray):
        if gradient.dtype.kind not in "biuf":
            raise TypeError(f"gradient must hold bool, integer or floating values, got dtype "
                            f"{gradient.dtype}")
    elif isinstance(gradient, (bool, np.bool_)) or not isinstance(gradient, numbers.Real):
        raise TypeError(f"gradient must be a Tensor, a numpy.ndarray or None, got "
                        f"{type(gradient).__name__}")
    gradient = array_of(gradient)
    if type(gradient) is not type(output._data):  # a number, or an array of another device
        if gradient.ndim == 0 and type(gradient) is np.ndarray:
            gradient = to_device(gradient, output.device)
        check_same_device([output._data, gradient], "output and gradient")
    if gradient.shape != output.shape:
        raise RuntimeError(f"mismatch in shape: gradient {position} has shape {gradient.shape} "
                           f"but output {position} has shape {output.shape}")
    return gradient.astype(output.dtype, copy=False)


def _accumulate_into_grad(leaf, gradient, fresh=False):
    """Add ``gradient`` into ``leaf.grad``, in place when a gradient buffer exists; a
    ``fresh`` gradient (owned by nobody else) of the leaf's dtype becomes the ``.grad``."""
    if leaf._grad is None:
        buffer = leaf._grad_view
        if buffer is None:
            if fresh and gradient.dtype == leaf.dtype and gradient.flags.writeable:
                buffer = gradient
            else:
                buffer = array_of(gradient).astype(leaf.dtype)  # a copy, on its device
        elif gradient is not buffer:  # not written there by its op (see offered_buffers)
            np.copyto(buffer, gradient)
        leaf._grad = _tensor.Tensor(buffer)
    else:
        leaf._grad._data += gradient


class _Callbacks(threading.local):
    """Per backward in progress (stacks: a hook may run a backward of its own): the callbacks
    queued for its end, and the ids of the parameters whose gradient buffer was offered to an
    op (:func:`offered_buffers`; None for :func:`grad`, which fills no ``.grad``)."""

    def __init__(self):
        self.stack = []
        self.offered = []


_callbacks = _Callbacks()


def queue_callback(callback):
    """Run ``callback()`` once the backward in progress has finished: every gradient is in
    ``.grad`` and every hook has run (PyTorch's ``Variable._execution_engine.queue_callback``).

    Hooks use it to finish work they started during the backward; distributed data-parallel
    training waits for its last gradient all-reduce this way. Callbacks run in the order they
    were queued; one may queue another.

    Raises:
        RuntimeError: no backward is in progress on this thread.
    """
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if not _callbacks.stack:
        raise RuntimeError("queue_callback() can only be called during the backward pass")
    _callbacks.stack[-1].append(callback)


class _PostAccumulateHooks:
    """Runs the post-accumulate-grad hooks of one backward (see
    :meth:`fastgrad.Tensor.register_post_accumulate_grad_hook`).

    A leaf used by several nodes receives a gradient from each; its hooks run once, after the
    last of those nodes in the walk's order (the same order on every run of the same graph),
    and only when it received a gradient. A leaf with tensor hooks, or a root, accumulates
    after the walk: its post-accumulate hooks run then.
    """

    def __init__(self):
        self.touched = {}   # id(leaf) -> leaf: leaves with such hooks that received a gradient
        self.last_use = {}  # node -> the hooked leaves whose last use it is

    def plan(self, order):
        last = {}
        for node in order:
            for tensor in node.inputs or ():
                if tensor is not None and tensor.grad_fn is None and tensor._post_hooks \
                        and not tensor._hooks:
                    last[id(tensor)] = (node, tensor)
        for node, tensor in last.values():
            self.last_use.setdefault(node, []).append(tensor)

    def delivered(self, tensor):
        if tensor.grad_fn is None and tensor._post_hooks:
            self.touched[id(tensor)] = tensor

    def node_done(self, node):
        for leaf in self.last_use.pop(node, ()):
            if self.touched.pop(id(leaf), None) is not None:
                _call_post_hooks(leaf)

    def finish(self):
        for leaf in self.touched.values():
            _call_post_hooks(leaf)


#: Handle ids of the post-accumulate-grad hooks registered and not removed: backward plans
#: for them only while there are some.
_post_hook_ids = {}


def _call_post_hooks(leaf):
    for hook in tuple(leaf._post_hooks.values()):
        hook(leaf)


def _run_backward(roots, gradients, retain_graph, capture=None):
    """Propagate ``gradients`` from ``roots`` through the graph (see :func:`_walk`), then run
    the callbacks queued during it (:func:`queue_callback`)."""
    queued = []
    _callbacks.stack.append(queued)
    _callbacks.offered.append(set() if capture is None else None)
    try:
        _walk(roots, gradients, retain_graph, capture)
        position = 0
        while position < len(queued):  # a callback may queue another
            queued[position]()
            position += 1
    finally:
        _callbacks.stack.pop()
        _callbacks.offered.pop()


def _walk(roots, gradients, retain_graph, capture=None):
    """Propagate ``gradients`` from ``roots`` through the graph.

    Leaves receive their gradient in ``.grad``; or, when ``capture`` is a dict mapping
    ``id(tensor)`` to ``[tensor, None]``, the gradients reaching those tensors are stored in it
    (after their hooks) and no ``.grad`` is touched.
    """
    pending = {}
    hooked_leaves = {}   # id(leaf) -> [leaf, summed gradient]: hooks run on the total
    post = _PostAccumulateHooks() if capture is None and _post_hook_ids else None
    for position, (root, gradient) in enumerate(zip(roots, gradients)):
        if not root._requires_grad:
            raise RuntimeError(f"output {position} does not require grad and has no grad_fn: "
                               "nothing to differentiate")
        _deliver(root, _root_gradient(root, gradient, position), pending, capture,
                 hooked_leaves)
        if post is not None:
            post.delivered(root)
    nodes = [r.grad_fn for r in roots if r.grad_fn is not None]
    order = _topological_order(nodes)
    if post is not None:
        post.plan(order)
    for node in order:
        grad_outputs = pending.pop(node, None)
        if grad_outputs is None:
            if post is not None:
                post.node_done(node)
            continue
        if node.inputs is None:
            raise RuntimeError("trying to backward through the graph a second time; its saved "
                               "arrays were freed by the first backward: pass "
                               "retain_graph=True to the first call")
        _check_versions(node)
        if node.tensor_hooks is not None:
            for index, hooks in node.tensor_hooks.items():
                if hooks and grad_outputs[index] is not None:
                    grad_outputs[index] = _call_tensor_hooks(hooks, grad_outputs[index])
        if capture is not None:
            _capture_outputs(node, grad_outputs, capture)
        if node.materialize_grads and len(grad_outputs) > 1:  # one output: it has its own
            like = next(g for g in grad_outputs if g is not None)
            grad_outputs = [g if g is not None else zeros(shape, dtype, like)
                            for g, (shape, dtype) in zip(grad_outputs, node.output_meta)]
        if node.writes_grads_into:
            node.grad_into = offered_buffers(node.inputs)
        grad_inputs = node.backward(*grad_outputs)
        if type(grad_inputs) is not tuple:
            grad_inputs = (grad_inputs,)
        for tensor, gradient in zip(node.inputs, grad_inputs):
            if gradient is not None and tensor is not None and tensor._requires_grad:
                _deliver(tensor, gradient, pending, capture, hooked_leaves,
                         node.grads_are_fresh)
                if post is not None:
                    post.delivered(tensor)
        if not retain_graph:
            node._release()
        if post is not None:
            post.node_done(node)
    for leaf, gradient in hooked_leaves.values():
        if leaf._hooks:
            gradient = _call_tensor_hooks(leaf._hooks, gradient)
        if capture is None:
            _accumulate_into_grad(leaf, gradient)
        else:
            capture[id(leaf)][1] = gradient
    if post is not None:
        post.finish()


def _capture_outputs(node, grad_outputs, capture):
    """Store the complete gradients of the captured outputs of ``node``."""
    for ref, gradient in zip(node.output_refs, grad_outputs):
        output = ref()
        if output is not None and gradient is not None and id(output) in capture:
            capture[id(output)][1] = gradient


def offered_buffers(inputs):
    """Per input (a Tensor or None), the gradient buffer an op's backward may write that
    input's gradient into (:attr:`Function.grad_into`), or None; None altogether outside a
    backward that fills ``.grad``.

    Offered for a parameter whose gradient will be exactly that one, so that it becomes its
    ``.grad`` with no copy: one without a ``.grad`` yet (or the op's gradient would be added,
    not stored), with an arena buffer, no tensor hooks (its gradient is summed first, then
    hooked), and offered to no other op in this backward (two ops writing one buffer would
    lose a gradient; a second use sums into a new array, which is then copied there).
    """
    offered = _callbacks.offered[-1] if _callbacks.offered else None
    if offered is None:
        return None
    into = []
    for tensor in inputs:
        if tensor is None or tensor._grad_view is None or tensor._grad is not None \
                or tensor._hooks or id(tensor) in offered or not tensor._requires_grad:
            into.append(None)
        else:
            offered.add(id(tensor))
            into.append(tensor._grad_view)
    return into


def _check_versions(node):
    """Refuse to differentiate through inputs or outputs changed in place since forward."""
    # the usual case first, inputs in one comprehension (a third of the loop below, which
    # runs for every node of every backward)
    if [0 if t is None else t._version for t in node.inputs] == node.versions:
        for ref in node.output_refs:
            output = ref()
            if output is not None and output._version:
                break
        else:
            return
    outputs = [ref() for ref in node.output_refs]
    for tensor, version in zip(node.inputs + tuple(outputs),
                               tuple(node.versions) + (0,) * len(outputs)):
        if tensor is not None and tensor._version != version:
            raise RuntimeError(
                f"a tensor of shape {tensor.shape} needed for gradient computation was "
                f"modified by an in-place operation (version {tensor._version}, expected "
                f"{version})")


def _deliver(tensor, gradient, pending, capture, hooked_leaves, fresh=False):
    """Hand ``gradient`` to ``tensor``: a leaf accumulates it (or, with hooks or when captured,
    sums it for later), a non-leaf adds it to its node's pending output gradients. ``fresh``:
    see :attr:`Function.grads_are_fresh`."""
    if tensor.grad_fn is None:
        if capture is None and not tensor._hooks:
            _accumulate_into_grad(tensor, gradient, fresh)
        elif capture is None or id(tensor) in capture:
            entry = hooked_leaves.get(id(tensor))
            if entry is None:
                hooked_leaves[id(tensor)] = [tensor, gradient]
            else:
                entry[1] = entry[1] + gradient
        return
    node = tensor.grad_fn
    slots = pending.get(node)
    if slots is None:
        slots = pending[node] = [None] * len(node.output_meta)
    previous = slots[tensor._output_nr]
    slots[tensor._output_nr] = gradient if previous is None else previous + gradient


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of every leaf they depend on.

    Args:
        tensors: a Tensor or a sequence of Tensors to differentiate.
        grad_tensors: d(loss)/d(tensor) for each, or None for single-element tensors.
        retain_graph: keep saved arrays so the graph can be walked again.
    """
    _untraced("backward() ran inside the captured callable")
    roots, gradients = _as_roots(tensors, grad_tensors)
    _run_backward(roots, gradients, retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=False, allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned, not accumulated.

    Returns:
        A tuple with one Tensor per input (None for an unused input when ``allow_unused``).
    """
    _untraced("autograd.grad() ran inside the captured callable")
    roots, gradients = _as_roots(outputs, grad_outputs)
    single = isinstance(inputs, _tensor.Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    capture = {id(t): [t, None] for t in inputs}
    _run_backward(roots, gradients, retain_graph, capture)
    results = []
    for position, tensor in enumerate(inputs):
        gradient = capture[id(tensor)][1]
        if gradient is None and not allow_unused:
            raise RuntimeError(f"input {position} (shape {tensor.shape}) was not used to compute "
                               "the outputs; pass allow_unused=True to get None for it")
        results.append(None if gradient is None else _tensor.Tensor(
            array_of(gradient).astype(tensor.dtype)))
    return tuple(results)


def _as_roots(tensors, gradients):
    if isinstance(tensors, _tensor.Tensor):
        tensors = (tensors,)
    tensors = tuple(tensors)
    if gradients is None:
        gradients = (None,) * len(tensors)
    elif not isinstance(gradients, (tuple, list)):
        gradients = (gradients,)
    gradients = tuple(gradients)
    if len(gradients) != len(tensors):
        raise ValueError(f"got {len(gradients)} gradients for {len(tensors)} outputs")
    return tensors, gradients


class GradcheckError(RuntimeError):
    """The analytical gradient of a function disagrees with its finite differences."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare the gradients backward gives with central finite differences, in float64.

    Every floating input that requires grad must be float64. Each output element's
    vector-Jacobian product is checked against
    :math:`(f(x + \\epsilon e_k) - f(x - \\epsilon e_k)) / 2\\epsilon`, element by element,
    with :math:`|a - n| \\le atol + rtol |n|`.

    Args:
        fn: a function of the inputs returning a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple of Tensors (and other arguments passed through).

    Returns:
        True when every gradient matches; otherwise raises :class:`GradcheckError` (or
        returns False when ``raise_exception`` is False).
    """
    Tensor = _tensor.Tensor
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck needs at least one input with requires_grad=True")
    for i in wrt:
        if inputs[i].dtype != dtypes.float64:
            raise ValueError(f"gradcheck needs float64 inputs; input {i} is {inputs[i].dtype}")

    def outputs_of(result):
        result = result if isinstance(result, tuple) else (result,)
        return [r for r in result if isinstance(r, Tensor) and dtypes.is_floating(r.dtype)]

    numerical = {}
    with no_grad():
        for i in wrt:
            flat = inputs[i]._data.reshape(-1)
            if not np.shares_memory(flat, inputs[i]._data):
                raise ValueError(f"gradcheck needs contiguous inputs; input {i} is not")
            columns = []
            for k in range(flat.size):
                original = flat[k]
                flat[k] = original + eps
                plus = [o._data.copy() for o in outputs_of(fn(*inputs))]
                flat[k] = original - eps
                minus = [o._data.copy() for o in outputs_of(fn(*inputs))]
                flat[k] = original
                columns.append([(p - m).reshape(-1) / (2 * eps) for p, m in zip(plus, minus)])
            numerical[i] = columns

    outputs = outputs_of(fn(*inputs))
    for out_index, output in enumerate(outputs):
        for j in range(output._data.size):
            seed = np.zeros(output.shape, dtype=output.dtype)
            seed.reshape(-1)[j] = 1.0
            if not output.requires_grad:
                analytic = [np.zeros(inputs[i].shape) for i in wrt]
            else:
                analytic = grad(output, [inputs[i] for i in wrt], grad_outputs=(seed,),
                                retain_graph=True, allow_unused=True)
                analytic = [np.zeros(inputs[i].shape) if a is None else a._data
                            for i, a in zip(wrt, analytic)]
            for i, a in zip(wrt, analytic):
                n = np.array([numerical[i][k][out_index][j] for k in range(inputs[i].numel())])
                a = a.reshape(-1)
                bad = np.abs(a - n) > atol + rtol * np.abs(n)
                if bad.any():
                    if not raise_exception:
                        return False
                    k = int(np.argmax(bad))
                    raise GradcheckError(
                        f"gradient mismatch for output {out_index} element {j} with respect to "
                        f"input {i} element {k}: numerical {n[k]!r}, analytical {a[k]!r} "
                        f"({int(bad.sum())} of {bad.size} elements differ)")
    return True


# Tensor's methods call into this module, and ops subclass Function: import tensor last so
# either module can be imported first.
from . import tensor as _tensor  # noqa: E402
