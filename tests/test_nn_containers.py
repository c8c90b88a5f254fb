"""Containers: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict.

Registration names (parameters, state_dict keys), the list and dict APIs, reprs and errors,
by hand and side by side with PyTorch's containers when it is installed (those tests skip
without it); a model built from them matches PyTorch's outputs and gradients.
"""
import collections

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn


def _layout(container):
    """``[(name, type name)]`` of a module container's children, in order."""
    return [(name, type(child).__name__) for name, child in container.named_children()]


# -------------------------------------------------------------------------------- ModuleList
def test_module_list_registers_children_under_their_positions():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)])
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [name for name, _ in layers.named_parameters()] == list(layers.state_dict())
    assert len(list(layers.parameters())) == 4

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    model = Model()
    assert list(model.state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                        "blocks.1.bias"]
    assert model(fg.ones(4, 2)).shape == (4, 2)


def test_module_list_list_api():
    a, b, c, d = nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.Identity()
    layers = nn.ModuleList([a, b])
    assert layers.append(c) is layers and len(layers) == 3
    assert layers[0] is a and layers[-1] is c and list(layers) == [a, b, c]
    sliced = layers[1:]
    assert type(sliced) is nn.ModuleList and list(sliced) == [b, c]
    assert list(sliced._modules) == ["0", "1"]
    layers += [d]
    assert list(layers) == [a, b, c, d]
    assert list(layers + nn.ModuleList([a])) == [a, b, c, d, a]
    layers.insert(1, d)
    assert list(layers) == [a, d, b, c, d] and list(layers._modules) == list("01234")
    layers.insert(-1, a)  # before the last, as list.insert
    assert list(layers) == [a, d, b, c, a, d]
    del layers[1]
    assert list(layers) == [a, b, c, a, d] and list(layers._modules) == list("01234")
    del layers[::2]
    assert list(layers) == [b, a] and list(layers._modules) == ["0", "1"]
    assert layers.pop(0) is b and list(layers) == [a]
    layers.extend((b, c))
    assert list(layers) == [a, b, c]


def test_module_list_setitem_keeps_the_order_of_state_dict_keys():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    replacement = nn.Linear(2, 2, bias=False)
    layers[0] = replacement
    assert layers[0] is replacement
    assert list(layers.state_dict()) == ["0.weight", "1.weight", "1.bias"]


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m[2], IndexError, "index 2 is out of range"),
    (lambda m: m[-3], IndexError, "index -3 is out of range"),
    (lambda m: m.__setitem__(5, nn.ReLU()), IndexError, "index 5 is out of range"),
    (lambda m: m.extend(3), TypeError, "should be called with an iterable, but got int"),
    (lambda m: m.append(3), TypeError, "int is not a Module subclass"),
    (lambda m: m.__setitem__(0, 3), TypeError, "int is not a Module subclass"),
    (lambda m: m.insert(0, "relu"), TypeError, "str is not a Module subclass"),
    (lambda m: m["0"], TypeError, "str"),
    (lambda m: m(fg.ones(2)), NotImplementedError, "forward"),
], ids=["index", "negative-index", "setitem-index", "extend-int", "append-int", "setitem-int",
        "insert-str", "str-index", "call"])
def test_module_list_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.ModuleList([nn.ReLU(), nn.Tanh()]))


def test_module_list_repr_compresses_repeats():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU(), nn.ReLU(), nn.ReLU(),
                            nn.Sequential(nn.Linear(2, 1))])
    assert repr(layers) == ("ModuleList(\n"
                            "  (0): Linear(in_features=2, out_features=2, bias=True)\n"
                            "  (1-3): 3 x ReLU()\n"
                            "  (4): Sequential(\n"
                            "    (0): Linear(in_features=2, out_features=1, bias=True)\n"
                            "  )\n"
                            ")")
    assert repr(nn.ModuleList()) == "ModuleList()"


# -------------------------------------------------------------------------------- ModuleDict
def test_module_dict_dict_api_and_order():
    relu, tanh, linear = nn.ReLU(), nn.Tanh(), nn.Linear(2, 2)
    layers = nn.ModuleDict({"z": relu, "a": linear})
    assert list(layers) == ["z", "a"] and list(layers.keys()) == ["z", "a"]
    assert list(layers.state_dict()) == ["a.weight", "a.bias"]
    assert layers["z"] is relu and "a" in layers and "q" not in layers and len(layers) == 2
    layers.update([("b", tanh), ("z", tanh)])  # replacing z keeps its place
    assert list(layers.items()) == [("z", tanh), ("a", linear), ("b", tanh)]
    layers.update(nn.ModuleDict({"c": relu}))
    assert list(layers.values()) == [tanh, linear, tanh, relu]
    assert layers.pop("b") is tanh and list(layers) == ["z", "a", "c"]
    del layers["z"]
    assert list(layers) == ["a", "c"]
    layers.clear()
    assert len(layers) == 0 and list(layers.parameters()) == []


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.__setitem__(1, nn.ReLU()), TypeError, "module name should be a string"),
    (lambda m: m.__setitem__("a.b", nn.ReLU()), KeyError, "contain"),
    (lambda m: m.__setitem__("", nn.ReLU()), KeyError, "empty string"),
    (lambda m: m.__setitem__("train", nn.ReLU()), KeyError, "attribute 'train' already exists"),
    (lambda m: m.__setitem__("x", 3), TypeError, "int is not a Module subclass"),
    (lambda m: m.update(3), TypeError, "iterable of key/value pairs, but got int"),
    (lambda m: m.update([3]), TypeError, "element #0 should be Iterable"),
    (lambda m: m.update([("a", nn.ReLU(), 1)]), ValueError, "element #0 has length 3"),
    (lambda m: m["missing"], KeyError, "missing"),
], ids=["int-key", "dotted-key", "empty-key", "attribute-key", "not-module", "update-int",
        "update-element", "update-length", "missing"])
def test_module_dict_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.ModuleDict({"x": nn.ReLU()}))


# ----------------------------------------------------------------------------- ParameterList
def test_parameter_list_wraps_tensors_and_registers_them():
    plain = fg.ones(2, 3)
    params = nn.ParameterList([nn.Parameter(fg.zeros(3)), plain])
    assert len(params) == 2 and list(params.state_dict()) == ["0", "1"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    params[1].data.fill_(5)  # the Parameter shares the tensor's memory
    assert plain.numpy()[0, 0] == 5
    assert params.append(fg.ones(1)) is params and len(list(params.parameters())) == 3
    sliced = params[::2]
    assert type(sliced) is nn.ParameterList and [p.shape for p in sliced] == [(3,), (1,)]
    assert params[-1] is list(params)[2]
    replacement = nn.Parameter(fg.ones(4))
    params[0] = replacement
    assert params[0] is replacement and list(params.state_dict()) == ["0", "1", "2"]
    params.extend([3.5])  # not a tensor: kept as is, not registered
    assert params[3] == 3.5 and len(params) == 4 and len(list(params.parameters())) == 3


def test_parameter_list_repr_and_errors():
    params = nn.ParameterList([nn.Parameter(fg.ones(3, 4)), fg.zeros(2), "x"])
    assert repr(params) == ("ParameterList(\n"
                            "    (0): Parameter containing: [float32 of size 3x4]\n"
                            "    (1): Parameter containing: [float32 of size 2]\n"
                            "    (2): Object of type: str\n"
                            ")")
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        params(fg.ones(1))
    with pytest.raises(TypeError, match="iterable, but got Tensor"):
        params.extend(fg.ones(3))
    with pytest.raises(IndexError, match="index 3 is out of range"):
        params[3]
    with pytest.raises(TypeError, match="cannot assign int as parameter '0'"):
        params[0] = 3
    with pytest.raises(RuntimeError, match="floating point"):
        params.append(fg.tensor([1, 2]))


# ----------------------------------------------------------------------------- ParameterDict
def test_parameter_dict_dict_api():
    a, b = nn.Parameter(fg.ones(2)), fg.zeros(3)
    params = nn.ParameterDict({"b": b, "a": a})  # a plain dict: sorted by key, as PyTorch
    assert list(params) == ["a", "b"] and list(params.state_dict()) == ["a", "b"]
    assert params["a"] is a and isinstance(params["b"], nn.Parameter)
    params.update(collections.OrderedDict([("d", fg.ones(1)), ("c", fg.ones(1))]))
    assert list(params.keys()) == ["a", "b", "d", "c"]
    params["a"] = nn.Parameter(fg.ones(5))  # replacing keeps its place
    assert list(params.state_dict()) == ["a", "b", "d", "c"] and params["a"].shape == (5,)
    assert params.get("zz") is None and params.get("zz", 1) == 1
    assert params.setdefault("e", fg.ones(2)).shape == (2,) and "e" in params
    assert params.pop("e").shape == (2,) and "e" not in params
    assert params.popitem()[0] == "c"
    copied = params.copy()
    assert list(copied.items()) == list(params.items())
    merged = params | nn.ParameterDict({"z": fg.ones(1)})
    assert list(merged) == ["a", "b", "d", "z"] and list(params) == ["a", "b", "d"]
    params |= {"y": fg.ones(1)}
    assert list(reversed(params)) == ["y", "d", "b", "a"]
    assert list(params.fromkeys(["p", "q"])) == ["p", "q"]
    del params["a"]
    assert list(params.state_dict()) == ["b", "d", "y"]
    params.clear()
    assert len(params) == 0 and list(params.parameters()) == []


def test_parameter_dict_repr_and_errors():
    params = nn.ParameterDict({"w": fg.ones(2, 2)})
    assert repr(params) == "ParameterDict(  (w): Parameter containing: [float32 of size 2x2])"
    with pytest.raises(TypeError, match="not a string"):
        params[0]
    with pytest.raises(TypeError, match="parameter name should be a string"):
        params[0] = fg.ones(1)
    with pytest.raises(KeyError, match="contain"):
        params["a.b"] = fg.ones(1)
    with pytest.raises(KeyError, match="attribute 'eval' already exists"):
        params["eval"] = fg.ones(1)
    with pytest.raises(RuntimeError, match="ParameterDict should not be called"):
        params(fg.ones(1))
    with pytest.raises(ValueError, match="has length 1; 2 is required"):
        params.update([("x",)])


# -------------------------------------------------------------------------------- Sequential
def test_sequential_list_api():
    a, b, c = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)
    model = nn.Sequential(collections.OrderedDict([("fc", a), ("act", b), ("out", c)]))
    assert len(model) == 3 and model[0] is a and model[-1] is c and list(model) == [a, b, c]
    head = model[1:]
    assert type(head) is nn.Sequential and _layout(head) == [("act", "ReLU"), ("out", "Linear")]
    tanh = nn.Tanh()
    model[1] = tanh
    assert _layout(model) == [("fc", "Linear"), ("act", "Tanh"), ("out", "Linear")]
    assert list(model.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    del model[1]  # renumbered, as PyTorch
    assert _layout(model) == [("0", "Linear"), ("1", "Linear")]
    model.insert(1, b)
    assert list(model) == [a, b, c] and model.append(tanh) is model
    assert model.pop(-1) is tanh and list(model) == [a, b, c]
    model.extend(nn.Sequential(tanh))
    assert list(model) == [a, b, c, tanh]
    both = model + nn.Sequential(b)
    assert list(both) == [a, b, c, tanh, b] and list(both._modules) == list("01234")
    model += nn.Sequential(b)
    assert list(model) == [a, b, c, tanh, b]
    twice = nn.Sequential(a, b) * 2
    assert list(twice) == [a, b, a, b] and list(2 * nn.Sequential(a)) == [a, a]
    assert len(list(twice.parameters())) == 2  # the same modules: shared parameters
    grown = nn.Sequential(a, b)
    grown *= 3
    assert list(grown) == [a, b] * 3
    assert dict(model.named_children())["0"] is a


@pytest.mark.parametrize("call, error, message", [
    (lambda s: s[5], IndexError, "index 5 is out of range"),
    (lambda s: s.insert(4, nn.ReLU()), IndexError, "Index out of range: 4"),
    (lambda s: s.insert(0, 3), TypeError, "Module"),
    (lambda s: s + [nn.ReLU()], ValueError, "only objects of Sequential class"),
    (lambda s: s * 0, ValueError, "Non-positive multiplication factor 0"),
    (lambda s: s * 1.5, TypeError, "unsupported operand"),
    (lambda s: nn.Sequential(nn.ReLU(), 3), TypeError, "Sequential takes Modules"),
], ids=["index", "insert-index", "insert-type", "add-list", "mul-zero", "mul-float",
        "constructor"])
def test_sequential_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Sequential(nn.ReLU(), nn.Tanh()))


# ---------------------------------------------------------------------------------- PyTorch
def _same_ops(nn_module):
    """The same container edits on fastgrad's or PyTorch's ``nn``; returns the containers."""
    layers = nn_module.ModuleList([nn_module.Linear(3, 4), nn_module.ReLU()])
    layers.append(nn_module.Linear(4, 4))
    layers.extend([nn_module.Tanh(), nn_module.Linear(4, 2)])
    layers.insert(1, nn_module.Identity())
    del layers[2]
    layers[0] = nn_module.Linear(3, 4, bias=False)
    heads = nn_module.ModuleDict({"b": nn_module.Linear(2, 2), "a": nn_module.Sigmoid()})
    heads.update([("c", nn_module.Linear(2, 1))])
    sequence = nn_module.Sequential(nn_module.Linear(2, 2), nn_module.ReLU(),
                                    nn_module.Linear(2, 2))
    del sequence[1]
    sequence.insert(1, nn_module.Tanh())
    sequence = sequence + nn_module.Sequential(nn_module.ReLU())
    return layers, heads, sequence


def test_container_edits_match_pytorch():
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_same_ops(nn), _same_ops(torch.nn)):
        assert _layout(ours) == _layout(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [(n, p.shape) for n, p in ours.named_parameters()] == [
            (n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        assert repr(ours) == repr(theirs)


def test_parameter_containers_match_pytorch():
    torch = pytest.importorskip("torch")
    values = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    ours = nn.ParameterDict({k: fg.tensor(v) for k, v in values.items()})
    theirs = torch.nn.ParameterDict({k: torch.tensor(v) for k, v in values.items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours_list = nn.ParameterList([fg.tensor(v) for v in values.values()])
    theirs_list = torch.nn.ParameterList([torch.tensor(v) for v in values.values()])
    assert list(ours_list.state_dict()) == list(theirs_list.state_dict())
    assert repr(ours_list) == repr(theirs_list).replace("torch.", "")


class _Model:
    """A model of containers, written once for both libraries."""

    @staticmethod
    def build(nn_module, parameter):
        class Model(nn_module.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn_module.ModuleList(
                    [nn_module.Sequential(nn_module.Linear(4, 4), nn_module.Tanh())
                     for _ in range(2)])
                self.heads = nn_module.ModuleDict({"out": nn_module.Linear(4, 3)})
                self.scales = nn_module.ParameterList([parameter(np.full(4, 0.5, np.float32))])
                self.shifts = nn_module.ParameterDict({"s": parameter(np.zeros(3, np.float32))})

            def forward(self, x):
                for block, scale in zip(self.blocks, [self.scales[0]] * 2):
                    x = block(x) * scale + x
                return self.heads["out"](x) + self.shifts["s"]
        return Model()


def test_container_model_matches_pytorch_outputs_and_gradients(rng):
    torch = pytest.importorskip("torch")
    theirs = _Model.build(torch.nn, lambda a: torch.nn.Parameter(torch.from_numpy(a)))
    ours = _Model.build(nn, lambda a: nn.Parameter(fg.tensor(a)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out_o, out_t = ours(fg.tensor(x)), theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    out_o.sum().backward()
    out_t.sum().backward()
    grads_t = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), grads_t[name].grad.numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_reassigning_a_child_module_keeps_its_place():
    # PyTorch's rule: replacing a registered child keeps its position in the module order
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    model.__setattr__("0", nn.Tanh())
    assert [type(m).__name__ for m in model] == ["Tanh", "ReLU", "Linear"]
    model.first = nn.Linear(1, 1)
    model.first = nn.Parameter(fg.zeros(1))
    model.first = nn.ReLU()
    assert list(model._modules) == ["0", "1", "2", "first"] and "first" not in model._parameters


def test_sequential_finds_its_fused_pairs_again_after_a_layer_changes():
    """Sequential keeps its plan of fused pairs between calls; replacing, deleting or
    appending a layer makes a new one."""
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = fg.randn(5, 3)
    model(x)
    model[1] = nn.Tanh()
    np.testing.assert_array_equal(model(x).numpy(),
                                  model[2](fg.tanh(model[0](x))).numpy())
    del model[1]
    np.testing.assert_array_equal(model(x).numpy(), model[1](model[0](x)).numpy())
    model.append(nn.Sigmoid())
    np.testing.assert_array_equal(model(x).numpy(),
                                  fg.sigmoid(model[1](model[0](x))).numpy())
