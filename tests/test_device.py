"""The device idiom: fastgrad.device parsed as torch.device, fastgrad.cuda's answers, and
Tensor/Module/creation functions taking devices (the CPU works; CUDA raises a clear error)."""
import pickle

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.device import KNOWN_TYPES, available_types, resolve

# ------------------------------------------------------------------------------- parsing
# (arguments, (type, index), str)
VALID = [
    (("cpu",), ("cpu", None), "cpu"),
    (("cuda",), ("cuda", None), "cuda"),
    (("cuda:0",), ("cuda", 0), "cuda:0"),
    (("cuda:12",), ("cuda", 12), "cuda:12"),
    (("cuda", 1), ("cuda", 1), "cuda:1"),
    (("cpu:0",), ("cpu", 0), "cpu:0"),
    (("cpu", 1), ("cpu", 1), "cpu:1"),
    (("mps",), ("mps", None), "mps"),
    (("meta",), ("meta", None), "meta"),
    (("cuda", None), ("cuda", None), "cuda"),
]
INVALID = [  # (arguments, exception type, message pattern)
    (("xyz",), RuntimeError, "Expected one of cpu, cuda.*device string: xyz"),
    (("CPU",), RuntimeError, "Expected one of"),
    ((" cpu",), RuntimeError, "Expected one of"),
    (("cuda:-1",), RuntimeError, "Invalid device string: 'cuda:-1'"),
    (("cuda:01",), RuntimeError, "Invalid device string"),
    (("cuda:a",), RuntimeError, "Invalid device string"),
    (("cuda:0:1",), RuntimeError, "Invalid device string"),
    (("cuda:",), RuntimeError, "Invalid device string"),
    (("cuda", -1), RuntimeError, "must not be negative"),
    (("cuda:0", 0), RuntimeError, "must not include an index"),
    ((-1,), RuntimeError, "must not be negative"),
    ((1.5,), TypeError, "float"),
    ((True,), TypeError, "bool"),
    ((None,), TypeError, "NoneType"),
    (("cuda", 1.0), TypeError, "index"),
]


@pytest.mark.parametrize("args, expected, text", VALID)
def test_device_parses_like_pytorch(args, expected, text):
    d = fg.device(*args)
    assert (d.type, d.index) == expected
    assert str(d) == text
    assert fg.device(d) == d and hash(fg.device(d)) == hash(d)
    assert pickle.loads(pickle.dumps(d)) == d


@pytest.mark.parametrize("args, expected, text", VALID)
def test_device_matches_torch(args, expected, text):
    torch = pytest.importorskip("torch")
    theirs = torch.device(*args)
    ours = fg.device(*args)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert str(ours) == str(theirs) and repr(ours) == repr(theirs)


@pytest.mark.parametrize("args, error, pattern", INVALID)
def test_device_rejects_what_pytorch_rejects(args, error, pattern):
    with pytest.raises(error, match=pattern):
        fg.device(*args)


@pytest.mark.parametrize("args, error, pattern", INVALID)
def test_device_errors_match_torch_types(args, error, pattern):
    torch = pytest.importorskip("torch")
    with pytest.raises(error):
        torch.device(*args)


def test_device_int_is_a_cuda_index_and_keywords_work():
    assert fg.device(2) == fg.device("cuda:2") == fg.device(np.int64(2))
    assert fg.device(type="cuda", index=3) == fg.device("cuda", 3)


def test_device_repr_equality_and_hash():
    assert repr(fg.device("cpu")) == "device(type='cpu')"
    assert repr(fg.device("cuda:0")) == "device(type='cuda', index=0)"
    assert fg.device("cuda") != fg.device("cuda:0")
    assert fg.device("cpu") != fg.device("cpu:0")
    assert fg.device("cpu") != "cpu"  # as torch.device: a string is not a device
    assert len({fg.device("cpu"), fg.device("cpu"), fg.device("cuda")}) == 2
    assert isinstance(fg.zeros(1).device, fg.device)


@pytest.mark.filterwarnings("ignore:'mkldnn' is no longer used")
def test_known_types_are_torchs():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        torch.device("xyz")
    with pytest.raises(RuntimeError) as ours:
        fg.device("xyz")
    assert str(ours.value) == str(theirs.value)
    for name in KNOWN_TYPES:
        assert torch.device(name).type == name


# --------------------------------------------------------------------------- availability
def test_cuda_module_answers_for_a_build_without_cuda():
    assert fg.cuda.is_available() is False
    assert fg.cuda.device_count() == 0
    assert fg.cuda.manual_seed(1) is None and fg.cuda.manual_seed_all(1) is None
    assert fg.cuda.empty_cache() is None
    with pytest.raises(TypeError, match="seed"):
        fg.cuda.manual_seed("1")
    for call in (fg.cuda.synchronize, fg.cuda.current_device):
        with pytest.raises(RuntimeError, match="no CUDA backend"):
            call()


def test_the_tutorial_idiom_picks_the_cpu():
    device = fg.device("cuda" if fg.cuda.is_available() else "cpu")
    model = nn.Linear(3, 2).to(device)
    x = fg.randn(4, 3).to(device)
    assert model(x).device == device == fg.device("cpu")


def test_resolve_is_the_one_place_that_says_what_works():
    assert available_types() == ("cpu",)
    assert resolve(None) == resolve("cpu") == resolve("cpu:1") == fg.device("cpu")
    with pytest.raises(RuntimeError, match=r"device 'cuda:1' is not available: this build of "
                                           r"fastgrad has no CUDA backend \(fastgrad\.cuda\."
                                           r"is_available\(\) is False\) because .*: CUDA "
                                           r"tensors need an NVIDIA GPU and the cuda extra"):
        resolve("cuda:1")
    with pytest.raises(RuntimeError, match="'mps' is not available: fastgrad holds tensors on "
                                           "cpu only"):
        resolve(fg.device("mps"))
    with pytest.raises(RuntimeError, match="Expected one of"):
        resolve("gpu")


# ---------------------------------------------------------------------------------- Tensor
def test_tensor_device_properties():
    x = fg.ones(2)
    assert x.device == fg.device("cpu") and x.is_cpu and not x.is_cuda


@pytest.mark.parametrize("device", ["cpu", "cpu:0", fg.device("cpu"), None])
def test_tensor_to_cpu_returns_self(device):
    x = fg.ones(2, 3)
    assert x.to(device) is x
    assert x.cpu() is x
    assert x.to(device, fg.float64).dtype == fg.float64


@pytest.mark.parametrize("call", [
    lambda x: x.to("cuda"), lambda x: x.to("cuda:0", fg.float64), lambda x: x.cuda(),
    lambda x: x.cuda(0), lambda x: x.to(device="cuda"), lambda x: x.to(0),
    lambda x: x.type("torch.cuda.FloatTensor"),
])
def test_tensor_to_cuda_raises_naming_the_device(call):
    with pytest.raises(RuntimeError, match="'cuda.*' is not available.*no CUDA backend"):
        call(fg.ones(2))


def test_tensor_cuda_rejects_a_non_cuda_device():
    with pytest.raises(RuntimeError, match="must be cuda device"):
        fg.ones(2).cuda("cpu")


@pytest.mark.parametrize("call", [lambda x: x.to("xyz"), lambda x: x.to("float32")])
def test_tensor_to_a_bad_device_string_is_a_runtime_error(call):
    with pytest.raises(RuntimeError, match="Expected one of"):
        call(fg.ones(2))


# ---------------------------------------------------------------------------------- Module
def test_module_to_device_forms():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert model.to("cpu") is model and model.cpu() is model
    assert model.to(fg.device("cpu"), fg.float64) is model
    assert model[0].weight.dtype == fg.float64 and model[1].running_mean.dtype == fg.float64
    assert model[1].num_batches_tracked.dtype == fg.int64
    model.to(device="cpu", dtype=fg.float32, non_blocking=True)
    assert model[0].weight.dtype == fg.float32
    model.to(fg.zeros(1, dtype=fg.float64))
    assert model[0].bias.dtype == fg.float64


@pytest.mark.parametrize("call", [lambda m: m.to("cuda"), lambda m: m.cuda(),
                                  lambda m: m.cuda(1), lambda m: m.to("cuda", fg.float64)])
def test_module_to_cuda_raises_and_changes_nothing(call):
    model = nn.Linear(2, 2)
    weight = model.weight
    with pytest.raises(RuntimeError, match="not available.*no CUDA backend"):
        call(model)
    assert model.weight is weight and weight.dtype == fg.float32


# ------------------------------------------------------------------------ creation devices
CREATORS = [
    lambda d: fg.zeros(2, device=d), lambda d: fg.ones(2, device=d),
    lambda d: fg.empty(2, device=d), lambda d: fg.full((2,), 1.0, device=d),
    lambda d: fg.arange(3, device=d), lambda d: fg.rand(2, device=d),
    lambda d: fg.randn(2, device=d), lambda d: fg.tensor([1.0], device=d),
    lambda d: fg.eye(2, device=d), lambda d: fg.linspace(0, 1, 3, device=d),
    lambda d: fg.logspace(0, 1, 3, device=d), lambda d: fg.randint(3, (2,), device=d),
    lambda d: fg.randperm(3, device=d), lambda d: fg.zeros_like(fg.ones(2), device=d),
    lambda d: fg.ones_like(fg.ones(2), device=d), lambda d: fg.empty_like(fg.ones(2), device=d),
    lambda d: fg.full_like(fg.ones(2), 3, device=d), lambda d: fg.rand_like(fg.ones(2), device=d),
    lambda d: fg.randn_like(fg.ones(2), device=d),
    lambda d: fg.randint_like(fg.ones(2), 5, device=d),
    lambda d: fg.as_tensor([1, 2], device=d), lambda d: fg.normal(0.0, 1.0, (2,), device=d),
    lambda d: fg.ones(2).new_zeros(2, device=d), lambda d: fg.ones(2).new_tensor([1], device=d),
    lambda d: fg.Generator(0, device=d),
]


@pytest.mark.parametrize("create", CREATORS)
def test_creation_takes_device(create):
    made = create("cpu")
    assert getattr(made, "device", fg.device("cpu")) == fg.device("cpu")
    create(fg.device("cpu:0"))
    with pytest.raises(RuntimeError, match="'cuda' is not available"):
        create("cuda")
