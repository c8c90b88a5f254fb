"""Shape and selection ops (fastgrad.shapes): values and dtypes against NumPy references,
float64 gradchecks, views against copies, errors, and PyTorch (values, dtypes, gradients,
exception types) where it is installed."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import shapes
from fastgrad.autograd import gradcheck


def functional(m):
    """Where ``pad`` and ``one_hot`` live: ``torch.nn.functional``, or fastgrad.shapes."""
    return m.nn.functional if m is not fg else shapes


def index(m, values):
    return m.tensor(values)


def chunk_reference(a, sizes, axis):
    starts = np.cumsum([0] + sizes)
    return tuple(np.take(a, np.arange(s, e), axis) for s, e in zip(starts, starts[1:]))


def gather_reference(a, axis, positions):
    key = list(np.indices(positions.shape, sparse=True))
    key[axis] = positions
    return a[tuple(key)]


def scatter_reference(a, axis, positions, src, add=False):
    out = a.copy()
    key = list(np.indices(positions.shape, sparse=True))
    key[axis] = positions
    part = src[tuple(slice(0, s) for s in positions.shape)]
    if add:
        np.add.at(out, tuple(key), part)
    else:
        out[tuple(key)] = part
    return out


def pad_reference(a, pads, mode, value=0.0):
    widths = [(0, 0)] * a.ndim
    for pair in range(len(pads) // 2):
        widths[a.ndim - 1 - pair] = (pads[2 * pair], pads[2 * pair + 1])
    if mode == "constant":
        return np.pad(a, widths, constant_values=value)
    return np.pad(a, widths, mode={"reflect": "reflect", "replicate": "edge",
                                   "circular": "wrap"}[mode])


POSITIONS = np.array([[[0, 0, 3]], [[1, 2, 2]]])

#: (id, op on module m, input shapes, NumPy reference). Every op is differentiable in its
#: float inputs unless its id starts with "int:".
CASES = [
    ("chunk", lambda m, x: m.chunk(x, 2, 2), [(2, 3, 4)],
     lambda a: chunk_reference(a, [2, 2], 2)),
    ("chunk-uneven", lambda m, x: x.chunk(4, 1), [(2, 6)],
     lambda a: chunk_reference(a, [2, 2, 2], 1)),
    ("split", lambda m, x: m.split(x, 3, -1), [(2, 3, 4)],
     lambda a: chunk_reference(a, [3, 1], 2)),
    ("split-sections", lambda m, x: x.split([1, 2], 1), [(2, 3, 4)],
     lambda a: chunk_reference(a, [1, 2], 1)),
    ("tensor_split", lambda m, x: m.tensor_split(x, 3, 1), [(2, 7)],
     lambda a: chunk_reference(a, [3, 2, 2], 1)),
    ("tensor_split-indices", lambda m, x: x.tensor_split([1, -2, 9]), [(7, 2)],
     lambda a: (a[:1], a[1:-2], a[-2:9], a[9:])),
    ("unbind", lambda m, x: m.unbind(x, 1), [(2, 3, 4)], lambda a: tuple(np.moveaxis(a, 1, 0))),
    ("expand", lambda m, x: x.expand(5, -1, 3, 4), [(2, 1, 4)],
     lambda a: np.broadcast_to(a, (5, 2, 3, 4))),
    ("expand_as", lambda m, x, y: x.expand_as(y), [(3, 1), (2, 3, 4)],
     lambda a, b: np.broadcast_to(a, b.shape)),
    ("repeat", lambda m, x: x.repeat(2, 1, 3), [(3, 2)], lambda a: np.tile(a, (2, 1, 3))),
    ("tile", lambda m, x: m.tile(x, (2,)), [(3, 2)], lambda a: np.tile(a, (1, 2))),
    ("tile-method", lambda m, x: x.tile(2, 1, 2), [(3, 2)], lambda a: np.tile(a, (2, 1, 2))),
    ("view_as", lambda m, x, y: x.view_as(y), [(2, 6), (4, 3)], lambda a, b: a.reshape(4, 3)),
    ("reshape_as", lambda m, x, y: x.reshape_as(y), [(2, 6), (3, 4)],
     lambda a, b: a.reshape(3, 4)),
    ("narrow", lambda m, x: m.narrow(x, 1, -3, 2), [(2, 5)], lambda a: a[:, 2:4]),
    ("gather", lambda m, x: m.gather(x, 2, index(m, POSITIONS)), [(2, 3, 4)],
     lambda a: gather_reference(a, 2, POSITIONS)),
    ("gather-dim0", lambda m, x: x.gather(0, index(m, [[1, 0, 1, 1]])), [(2, 4)],
     lambda a: a[[1, 0, 1, 1], [0, 1, 2, 3]][None]),
    ("scatter", lambda m, x, s: m.scatter(x, 1, index(m, [[0, 2], [1, 0]]), s),
     [(2, 3), (2, 2)], lambda a, s: scatter_reference(a, 1, np.array([[0, 2], [1, 0]]), s)),
    ("scatter-value", lambda m, x: x.scatter(1, index(m, [[0], [2]]), 5.0), [(2, 3)],
     lambda a: np.where([[1, 0, 0], [0, 0, 1]], 5.0, a)),
    ("scatter-value-keyword", lambda m, x: m.scatter(x, 0, index(m, [[1, 0]]), value=-1.0),
     [(2, 2)], lambda a: np.where([[0, 1], [1, 0]], -1.0, a)),
    ("scatter_add", lambda m, x, s: m.scatter_add(x, 1, index(m, [[0, 0, 2], [1, 1, 1]]), s),
     [(2, 3), (2, 3)],
     lambda a, s: scatter_reference(a, 1, np.array([[0, 0, 2], [1, 1, 1]]), s, add=True)),
    ("index_select", lambda m, x: m.index_select(x, 1, index(m, [2, 0, 2])), [(2, 3)],
     lambda a: a[:, [2, 0, 2]]),
    ("masked_fill", lambda m, x: m.masked_fill(x, x > 0, -1.5), [(3, 4)],
     lambda a: np.where(a > 0, -1.5, a)),
    ("masked_fill-broadcast", lambda m, x: x.masked_fill(index(m, [[True], [False]]), 2.0),
     [(4,)], lambda a: np.stack([np.full(4, 2.0), a])),
    ("masked_fill-tensor-value", lambda m, x, v: x.masked_fill(x < 0, v.sum()), [(3, 4), (2,)],
     lambda a, v: np.where(a < 0, v.sum(), a)),
    ("masked_select", lambda m, x: m.masked_select(x, x > 0.2), [(3, 4)], lambda a: a[a > 0.2]),
    ("masked_select-broadcast", lambda m, x: x.masked_select(index(m, [[True], [False]])),
     [(3,)], lambda a: a),
    ("take_along_dim", lambda m, x: m.take_along_dim(x, index(m, [0, 5, 11])), [(3, 4)],
     lambda a: a.reshape(-1)[[0, 5, 11]]),
    ("take_along_dim-dim", lambda m, x: m.take_along_dim(x, index(m, [[0, 3]]), 1), [(3, 4)],
     lambda a: a[:, [0, 3]]),
    ("take_along_dim-broadcast", lambda m, x: x.take_along_dim(index(m, [[[2], [0]]]), 2),
     [(3, 1, 4)], lambda a: np.take_along_axis(np.broadcast_to(a, (3, 2, 4)),
                                               np.array([[[2], [0]]] * 3), 2)),
    ("flip", lambda m, x: m.flip(x, (0, 2)), [(2, 3, 4)], lambda a: a[::-1, :, ::-1]),
    ("flip-method", lambda m, x: x.flip(-1, 1), [(2, 3, 4)], lambda a: a[:, ::-1, ::-1]),
    ("fliplr", lambda m, x: m.fliplr(x), [(2, 3)], lambda a: a[:, ::-1]),
    ("flipud", lambda m, x: x.flipud(), [(2, 3)], lambda a: a[::-1]),
    ("roll", lambda m, x: m.roll(x, 5), [(3, 4)], lambda a: np.roll(a, 5)),
    ("roll-dims", lambda m, x: x.roll((1, -2), (0, 1)), [(3, 4)],
     lambda a: np.roll(a, (1, -2), (0, 1))),
    ("tril", lambda m, x: m.tril(x, -1), [(2, 3, 4)], lambda a: np.tril(a, -1)),
    ("triu", lambda m, x: x.triu(1), [(4, 3)], lambda a: np.triu(a, 1)),
    ("diag-vector", lambda m, x: m.diag(x, -1), [(3,)], lambda a: np.diag(a, -1)),
    ("diag-matrix", lambda m, x: x.diag(1), [(3, 4)], lambda a: np.diag(a, 1)),
    ("diag-matrix-below", lambda m, x: m.diag(x, -2), [(4, 3)], lambda a: np.diag(a, -2)),
    ("movedim", lambda m, x: m.movedim(x, (0, 1), (2, 0)), [(2, 3, 4)],
     lambda a: np.moveaxis(a, (0, 1), (2, 0))),
    ("moveaxis", lambda m, x: x.moveaxis(0, -1), [(2, 3, 4)], lambda a: np.moveaxis(a, 0, -1)),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, 2), [(2, 3, 4)], lambda a: a.swapaxes(0, 2)),
    ("swapdims", lambda m, x: x.swapdims(0, 1), [(2, 3)], lambda a: a.T),
    ("unflatten", lambda m, x: x.unflatten(1, (2, -1)), [(2, 6)], lambda a: a.reshape(2, 2, 3)),
    ("unflatten-function", lambda m, x: m.unflatten(x, -1, (3, 2)), [(6,)],
     lambda a: a.reshape(3, 2)),
    ("squeeze-tuple", lambda m, x: x.squeeze((0, 2, 3)), [(1, 2, 1, 3)],
     lambda a: a.reshape(2, 3)),
    ("mm", lambda m, x, y: m.mm(x, y), [(2, 3), (3, 4)], lambda a, b: a @ b),
    ("bmm", lambda m, x, y: x.bmm(y), [(2, 2, 3), (2, 3, 4)], lambda a, b: a @ b),
    ("mv", lambda m, x, y: m.mv(x, y), [(2, 3), (3,)], lambda a, b: a @ b),
    ("dot", lambda m, x, y: x.dot(y), [(3,), (3,)], lambda a, b: a @ b),
    ("outer", lambda m, x, y: m.outer(x, y), [(3,), (2,)], np.outer),
    ("addmm", lambda m, c, x, y: m.addmm(c, x, y, beta=0.5, alpha=2.0), [(4,), (2, 3), (3, 4)],
     lambda c, a, b: 0.5 * c + 2 * a @ b),
    ("einsum-batched", lambda m, x, y: m.einsum("bij,bkj->bik", x, y), [(2, 3, 4), (2, 5, 4)],
     lambda a, b: a @ b.transpose(0, 2, 1)),
    ("einsum-trace", lambda m, x: m.einsum("ii", x), [(3, 3)], np.trace),
    ("einsum-diagonal", lambda m, x: m.einsum("ii->i", x), [(3, 3)], np.diag),
    ("einsum-diagonal-3", lambda m, x: m.einsum("iij->ji", x), [(2, 2, 3)],
     lambda a: np.einsum("iij->ji", a)),
    ("einsum-sum", lambda m, x: m.einsum("ijk->j", x), [(2, 3, 4)], lambda a: a.sum((0, 2))),
    ("einsum-implicit", lambda m, x: m.einsum("kji", x), [(2, 3, 4)],
     lambda a: a.transpose(2, 1, 0)),
    ("einsum-ellipsis", lambda m, x, v: m.einsum("...j,j->...", x, v), [(2, 3, 4), (4,)],
     lambda a, v: a @ v),
    ("einsum-ellipsis-middle", lambda m, x, y: m.einsum("i...j,ij->...", x, y),
     [(2, 3, 4), (2, 4)], lambda a, b: np.einsum("i...j,ij->...", a, b)),
    ("einsum-three", lambda m, x, y, z: m.einsum("ij,jk,kl->il", [x, y, z]),
     [(2, 3), (3, 4), (4, 2)], lambda a, b, c: a @ b @ c),
    ("einsum-broadcast", lambda m, x, y: m.einsum("...ij,...jk->...ik", x, y),
     [(1, 2, 3), (4, 3, 2)], lambda a, b: a @ b),
    ("einsum-outer", lambda m, x, y: m.einsum(" i , j ", x, y), [(3,), (2,)], np.outer),
    ("pad", lambda m, x: functional(m).pad(x, (1, 2, -1, 1)), [(2, 3, 4)],
     lambda a: pad_reference(a[:, 1:], (1, 2, 0, 1), "constant")),
    ("pad-value", lambda m, x: functional(m).pad(x, (1, 2), value=3.5), [(2, 3)],
     lambda a: pad_reference(a, (1, 2), "constant", 3.5)),
    ("pad-three-dims", lambda m, x: functional(m).pad(x, (1, 0, 0, 2, 1, 1)), [(2, 3, 4)],
     lambda a: pad_reference(a, (1, 0, 0, 2, 1, 1), "constant")),
] + [
    # negative pads crop first; the rest pads the cropped tensor, as in PyTorch
    (f"pad-{mode}{suffix}", lambda m, x, mode=mode, pads=pads: functional(m).pad(x, pads, mode),
     [shape], lambda a, mode=mode, pads=pads: pad_reference(
         a[..., max(-pads[0], 0):a.shape[-1] - max(-pads[1], 0)],
         tuple(max(p, 0) for p in pads), mode))
    for mode in ("reflect", "replicate", "circular")
    for suffix, pads, shape in (("", (2, 1), (2, 3, 4)), ("-2d", (2, 1, 1, 2), (2, 3, 4)),
                                ("-crop", (-1, 2), (2, 3, 4)),
                                ("-3d", (1, 1, 1, 1, 1, 0), (1, 2, 3, 4)))
] + [
    ("int:one_hot", lambda m, x: functional(m).one_hot(index(m, [[0, 3], [2, 1]])), [],
     lambda: np.eye(4, dtype=np.int64)[[[0, 3], [2, 1]]]),
    ("int:one_hot-classes", lambda m, x: functional(m).one_hot(index(m, [0, 3]), 5), [],
     lambda: np.eye(5, dtype=np.int64)[[0, 3]]),
    ("int:nonzero", lambda m, x: m.nonzero(x > 0), [(3, 4)], lambda a: np.argwhere(a > 0)),
    ("int:nonzero-tuple", lambda m, x: x.nonzero(as_tuple=True), [(3, 4)], np.nonzero),
    ("int:argwhere", lambda m, x: m.argwhere(x), [(3, 4)], np.argwhere),
    ("int:nonzero-0d", lambda m, x: m.nonzero(m.tensor(3.0)), [],
     lambda: np.zeros((1, 0), np.int64)),
    ("int:nonzero-0d-tuple", lambda m, x: m.nonzero(m.tensor(3.0), as_tuple=True), [],
     lambda: (np.array([0]),)),
]
IDS = [case[0] for case in CASES]


def _inputs(rng, shapes_):
    return [rng.standard_normal(shape) for shape in shapes_]


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _call(case, module, arrays, requires_grad=False):
    _, op, _, _ = case
    tensors = [module.tensor(a, requires_grad=requires_grad) for a in arrays]
    return tensors, op(module, *tensors) if tensors else op(module, None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_numpy_reference(rng, case):
    name, _, shapes_, reference = case
    arrays = _inputs(rng, shapes_)
    _, result = _call(case, fg, arrays)
    expected = _outputs(reference(*arrays))
    result = _outputs(result)
    assert len(result) == len(expected)
    for r, e in zip(result, expected):
        assert r.shape == np.shape(e), name
        assert r.dtype == (np.int64 if name.startswith("int:") else np.float64), name
        np.testing.assert_allclose(r.numpy(), e, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", [c for c in CASES if not c[0].startswith("int:")],
                         ids=[i for i in IDS if not i.startswith("int:")])
def test_gradcheck(rng, case):
    _, op, shapes_, _ = case
    inputs = tuple(fg.tensor(a, requires_grad=True) for a in _inputs(rng, shapes_))
    assert gradcheck(lambda *xs: op(fg, *xs), inputs)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_pytorch(rng, case):
    torch = pytest.importorskip("torch")
    name = case[0]
    arrays = _inputs(rng, case[2])
    inputs, result = _call(case, fg, arrays, requires_grad=True)
    inputs_t, expected = _call(case, torch, arrays, requires_grad=True)
    result, expected = _outputs(result), _outputs(expected)
    assert len(result) == len(expected), name
    for r, e in zip(result, expected):
        assert tuple(r.shape) == tuple(e.shape), name
        assert str(r.dtype) == str(e.dtype).replace("torch.", ""), name
        np.testing.assert_allclose(r.detach().numpy(), e.detach().numpy(), rtol=1e-12,
                                   atol=1e-12, err_msg=name)
    if name.startswith("int:"):
        return
    weights = [rng.standard_normal(tuple(e.shape)) for e in expected]
    sum((r * fg.tensor(w)).sum() for r, w in zip(result, weights)).backward()
    sum((e * torch.tensor(w)).sum() for e, w in zip(expected, weights)).backward()
    for x, xt in zip(inputs, inputs_t):
        assert (x.grad is None) == (xt.grad is None), name  # expand_as's other: no gradient
        if x.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10,
                                       err_msg=name)


def test_scatter_writes_and_its_gradients_by_hand():
    x = fg.zeros(2, 3, dtype=fg.float64, requires_grad=True)
    src = fg.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]], dtype=fg.float64, requires_grad=True)
    out = fg.scatter(x, 1, fg.tensor([[0, 2], [1, 0]]), src)  # src larger than the index
    np.testing.assert_array_equal(out.numpy(), [[1, 0, 2], [4, 3, 0]])
    (out * fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=fg.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 2, 0], [0, 0, 6]])
    np.testing.assert_array_equal(src.grad.numpy(), [[1, 3, 0], [5, 4, 0]])
    added = fg.scatter_add(fg.zeros(2, 3), 1, fg.tensor([[0, 0, 2]]), fg.ones(1, 3))
    np.testing.assert_array_equal(added.numpy(), [[2, 0, 1], [0, 0, 0]])


def test_scatter_one_hot_idiom_and_in_place_forms():
    labels = fg.tensor([2, 0, 1])
    one_hot = fg.zeros(3, 4).scatter_(1, labels[:, None], 1.0)
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(4)[[2, 0, 1]])
    x = fg.zeros(2, 3)
    assert x.scatter_add_(1, fg.tensor([[1, 1]]), fg.ones(1, 2)) is x
    np.testing.assert_array_equal(x.numpy(), [[0, 2, 0], [0, 0, 0]])
    x.masked_fill_(x == 0, -1.0)
    np.testing.assert_array_equal(x.numpy(), [[-1, 2, -1], [-1, -1, -1]])
    y = fg.ones(3, 3)
    y.tril_(-1)
    np.testing.assert_array_equal(y.numpy(), np.tril(np.ones((3, 3)), -1))
    y.fill_(1.0)
    y.triu_()
    np.testing.assert_array_equal(y.numpy(), np.triu(np.ones((3, 3))))


def test_in_place_forms_are_differentiable_on_non_leaves():
    w = fg.tensor([[1.0, -2.0, 3.0]], dtype=fg.float64, requires_grad=True)
    h = w * 2
    h.masked_fill_(h < 0, 0.5)
    h.scatter_(1, fg.tensor([[2]]), 7.0)
    (h * fg.tensor([[1.0, 2.0, 3.0]], dtype=fg.float64)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[2, 0, 0]])
    leaf = fg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.masked_fill_(leaf > 0, 0.0)


def test_views_and_copies(rng):
    x = fg.tensor(rng.standard_normal((4, 6)))
    for piece in (*x.chunk(2), *x.split(3, 1), *x.unbind(0), x.narrow(1, 2, 3),
                  x.movedim(0, 1), x.swapaxes(0, 1), *x.tensor_split(3, 1)):
        assert np.shares_memory(piece.numpy(), x.numpy())
    assert np.shares_memory(x[:, :1].expand(4, 6).numpy(), x.numpy())
    for copy in (x.flip(0), x.roll(1), x.repeat(1, 2), x.tril(), x.diag(),
                 x.index_select(0, fg.tensor([0])), x.gather(1, fg.tensor([[0]])),
                 x.masked_fill(x > 0, 0.0), fg.shapes.pad(x, (1, 1))):
        assert not np.shares_memory(copy.numpy(), x.numpy())
    chunks = x.chunk(2)
    chunks[0].numpy()[0, 0] = 42.0
    assert x[0, 0].item() == 42.0


def test_chunk_and_split_sizes_follow_pytorch():
    def sizes(pieces):
        return [p.shape[0] for p in pieces]

    assert sizes(fg.ones(5).chunk(3)) == [2, 2, 1]
    assert sizes(fg.ones(6).chunk(4)) == [2, 2, 2]  # fewer chunks than asked
    assert sizes(fg.ones(0).chunk(3)) == [0, 0, 0]
    assert sizes(fg.ones(0).split(0)) == [0]
    assert sizes(fg.ones(7).tensor_split(3)) == [3, 2, 2]
    assert [p.tolist() for p in fg.arange(7).tensor_split(fg.tensor(2))] == \
        [[0, 1, 2, 3], [4, 5, 6]]
    assert fg.ones(3, 1).expand(fg.ones(2, 3, 4).shape).shape == (2, 3, 4)
    assert fg.ones(3, 2).repeat(0, 2).shape == (0, 4)


def test_one_hot_and_index_select_dtypes():
    encoded = shapes.one_hot(fg.tensor([0, 2]))
    assert encoded.dtype == fg.int64 and encoded.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert shapes.one_hot(fg.zeros(0, dtype=fg.int64), 3).shape == (0, 3)
    x = fg.arange(6.0).reshape(2, 3)
    assert fg.index_select(x, 1, fg.tensor(1)).tolist() == [[1.0], [4.0]]
    assert fg.index_select(x, 1, fg.tensor([1], dtype=fg.int32)).tolist() == [[1.0], [4.0]]


def test_einsum_accepts_integer_operands():
    a = fg.tensor([[1, 2], [3, 4]])
    assert fg.einsum("ij,jk->ik", a, a).tolist() == [[7, 10], [15, 22]]
    assert fg.einsum("ij,jk->ik", a, a).dtype == fg.int64


def _error_type(call, module):
    """The type of the exception ``call(module)`` raises, or None."""
    try:
        call(module)
    except Exception as error:  # noqa: BLE001 (any type: compared with PyTorch's)
        return type(error)
    return None


ERRORS = [
    ("chunk-0", lambda m: m.chunk(m.ones(3), 0), RuntimeError, "greater than 0"),
    ("chunk-0d", lambda m: m.chunk(m.tensor(1.0), 2), RuntimeError, "1-dimensional"),
    ("split-sum", lambda m: m.split(m.ones(3), [1, 1]), RuntimeError, "sum exactly to 3"),
    ("split-zero", lambda m: m.split(m.ones(3), 0), RuntimeError, "can only be 0"),
    ("tensor_split-0", lambda m: m.tensor_split(m.ones(3), 0), RuntimeError, "larger than 0"),
    ("unbind-0d", lambda m: m.unbind(m.tensor(1.0)), IndexError, "no dimensions"),
    ("expand-leading-1", lambda m: m.ones(3, 1).expand(-1, 3, 4), RuntimeError,
     "leading, non-existing"),
    ("expand-mismatch", lambda m: m.ones(3, 2).expand(3, 4), RuntimeError,
     "non-singleton dimension 1"),
    ("expand-few", lambda m: m.ones(3, 2).expand(2), RuntimeError, "greater or equal"),
    ("repeat-few", lambda m: m.ones(3, 2).repeat(2), RuntimeError, "can not be smaller"),
    ("narrow-past", lambda m: m.narrow(m.ones(5), 0, 4, 2), RuntimeError, "exceeds dimension"),
    ("narrow-start", lambda m: m.narrow(m.ones(5), 0, 6, 0), IndexError, "start out of range"),
    ("narrow-length", lambda m: m.narrow(m.ones(5), 0, 1, -1), RuntimeError, "non-negative"),
    ("gather-dtype", lambda m: m.gather(m.ones(2, 3), 1, m.tensor([[0]], dtype=m.int16)),
     RuntimeError, "int64"),
    ("take_along_dim-dtype", lambda m: m.take_along_dim(m.ones(2, 3), m.tensor([[0]],
                                                                             dtype=m.int32), 1),
     RuntimeError, "int64"),
    ("gather-ndim", lambda m: m.gather(m.ones(2, 3), 1, m.tensor([0])), RuntimeError,
     "same number of dimensions"),
    ("gather-size", lambda m: m.gather(m.ones(2, 3), 1, m.tensor([[0], [0], [0]])),
     RuntimeError, "no larger than"),
    ("gather-negative", lambda m: m.gather(m.ones(2, 3), 1, m.tensor([[-1]])), RuntimeError,
     "out of bounds"),
    ("scatter-dtype", lambda m: m.scatter(m.ones(2, 3), 1, m.tensor([[0]]),
                                          m.ones(1, 1, dtype=m.float64)), RuntimeError, "dtype"),
    ("scatter-small-src", lambda m: m.scatter(m.ones(2, 3), 1, m.tensor([[0, 1]]),
                                              m.ones(2, 1)), RuntimeError, "no larger"),
    ("index_select-2d", lambda m: m.index_select(m.ones(2, 3), 1, m.tensor([[1]])), IndexError,
     "vector"),
    ("index_select-range", lambda m: m.index_select(m.ones(2, 3), 1, m.tensor([3])),
     RuntimeError, "3"),
    ("masked_fill-long-mask", lambda m: m.ones(3).masked_fill(m.tensor([1, 0, 1]), 1.0),
     RuntimeError, "boolean masks"),
    ("masked_fill-1d-value", lambda m: m.ones(3).masked_fill(m.ones(3) > 0, m.ones(1)),
     RuntimeError, "0-dimensional value"),
    ("masked_fill_-broadcast", lambda m: m.zeros(3).masked_fill_(m.ones(2, 3) > 0, 1.0),
     RuntimeError, "shape"),
    ("flip-repeated", lambda m: m.flip(m.ones(2, 3), (0, 0)), RuntimeError, "multiple times"),
    ("flip-int", lambda m: m.flip(m.ones(2, 3), 0), TypeError, "dims"),
    ("fliplr-1d", lambda m: m.fliplr(m.ones(2)), RuntimeError, ">= 2-d"),
    ("roll-align", lambda m: m.roll(m.ones(2, 3), (1, 1), 0), RuntimeError, "must align"),
    ("tril-1d", lambda m: m.tril(m.ones(3)), RuntimeError, "at least 2 dimensions"),
    ("diag-3d", lambda m: m.diag(m.ones(2, 2, 2)), RuntimeError, "1D or 2D"),
    ("movedim-count", lambda m: m.movedim(m.ones(2, 3), (0, 1), (0,)), RuntimeError,
     "same number of dims"),
    ("movedim-repeat", lambda m: m.movedim(m.ones(2, 3), (0, 0), (0, 1)), RuntimeError,
     "repeated dim"),
    ("unflatten-sizes", lambda m: m.ones(2, 6).unflatten(1, (4, -1)), RuntimeError,
     "multiply up"),
    ("mm-1d", lambda m: m.mm(m.ones(2), m.ones(2, 2)), RuntimeError, "matrix"),
    ("mm-shapes", lambda m: m.mm(m.ones(2, 3), m.ones(2, 2)), RuntimeError, "2x3 and 2x2"),
    ("mm-dtype", lambda m: m.mm(m.ones(2, 2), m.ones(2, 2, dtype=m.float64)), RuntimeError,
     "same dtype"),
    ("bmm-2d", lambda m: m.bmm(m.ones(2, 3), m.ones(3, 2)), RuntimeError, "3D tensor"),
    ("bmm-batch", lambda m: m.bmm(m.ones(2, 2, 3), m.ones(3, 3, 2)), RuntimeError,
     "first two dimensions"),
    ("mv-size", lambda m: m.mv(m.ones(2, 3), m.ones(4)), RuntimeError, "size mismatch"),
    ("dot-size", lambda m: m.dot(m.ones(3), m.ones(4)), RuntimeError, "inconsistent"),
    ("dot-2d", lambda m: m.dot(m.ones(3, 1), m.ones(3)), RuntimeError, "1D tensors expected"),
    ("outer-2d", lambda m: m.outer(m.ones(3, 1), m.ones(3)), RuntimeError, "1-D"),
    ("einsum-char", lambda m: m.einsum("i1", m.ones(2, 3)), RuntimeError, "invalid subscript"),
    ("einsum-operands", lambda m: m.einsum("ij", m.ones(2, 3), m.ones(2)), RuntimeError,
     "more operands"),
    ("einsum-fewer", lambda m: m.einsum("ij,jk", m.ones(2, 3)), RuntimeError, "fewer operands"),
    ("einsum-output-twice", lambda m: m.einsum("ij->ii", m.ones(2, 3)), RuntimeError,
     "more than once"),
    ("einsum-output-unknown", lambda m: m.einsum("ij->k", m.ones(2, 3)), RuntimeError,
     "does not appear"),
    ("einsum-ndim", lambda m: m.einsum("ij", m.ones(2, 3, 4)), RuntimeError,
     "number of subscripts"),
    ("einsum-size", lambda m: m.einsum("ij,ij->ij", m.ones(2, 3), m.ones(3, 3)), RuntimeError,
     "does not broadcast"),
    ("einsum-dtype", lambda m: m.einsum("i,i->", m.ones(2), m.ones(2, dtype=m.float64)),
     RuntimeError, "dtype"),
    ("pad-odd", lambda m: functional(m).pad(m.ones(2, 3), (1, 1, 1)), RuntimeError,
     "divisible by 2"),
    ("pad-long", lambda m: functional(m).pad(m.ones(2, 3), (1,) * 6), RuntimeError,
     "two times the input dimension"),
    ("pad-mode", lambda m: functional(m).pad(m.ones(1, 2, 3), (1, 1), "foo"),
     NotImplementedError, "foo"),
    ("pad-reflect-dims", lambda m: functional(m).pad(m.ones(3), (1, 1), "reflect"),
     NotImplementedError, "1"),
    ("pad-reflect-size", lambda m: functional(m).pad(m.ones(1, 1, 3), (3, 3), "reflect"),
     RuntimeError, "less than the corresponding input dimension"),
    ("pad-circular-twice", lambda m: functional(m).pad(m.ones(1, 1, 3), (4, 1), "circular"),
     RuntimeError, "more than once"),
    ("pad-crop", lambda m: functional(m).pad(m.ones(2, 3), (-4, 1)), RuntimeError, "crop"),
    ("one_hot-dtype", lambda m: functional(m).one_hot(m.tensor([0], dtype=m.int32)),
     RuntimeError, "LongTensor"),
    ("one_hot-negative", lambda m: functional(m).one_hot(m.tensor([0, -1])), RuntimeError,
     "non-negative"),
    ("one_hot-large", lambda m: functional(m).one_hot(m.tensor([0, 3]), 3), RuntimeError,
     "smaller than num_classes"),
    ("one_hot-empty", lambda m: functional(m).one_hot(m.zeros(0, dtype=m.int64)), RuntimeError,
     "empty tensor"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(case):
    _, call, error, match = case
    with pytest.raises(error, match=match):
        call(fg)


def test_errors_have_pytorchs_exception_types():
    torch = pytest.importorskip("torch")
    for name, call, error, _ in ERRORS:
        assert _error_type(call, torch) is error, name
