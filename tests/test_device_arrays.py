"""Tensors on a device other than the CPU, through the stand-in device of
tests/_strict_device.py (registered as CUDA for each test by the ``strict_cuda`` fixture):
arrays that refuse every hidden host round trip, as CuPy's do. Each op runs on the device and
on the CPU from the same values and must give the same values and gradients, with no implicit
copy between host and device. The same NumPy calls run underneath, except where the CPU runs
a compiled kernel (an activation, a matrix product) and the device the reference one: those
agree to float32 rounding."""
import numpy as np
import pytest

import fastgrad as fg
from _strict_device import HostRoundTrip
from fastgrad.diagnostics import GradientMonitor


def _pair(rng, shape, positive=False):
    """The same values as a CPU leaf and a CUDA leaf."""
    values = rng.standard_normal(shape).astype(np.float32)
    if positive:
        values = np.abs(values) + 0.5
    return (fg.tensor(values, requires_grad=True),
            fg.tensor(values, device="cuda", requires_grad=True))


def test_factories_put_tensors_on_the_device(strict_cuda):
    assert fg.cuda.is_available() and fg.cuda.device_count() == 1
    for t in (fg.zeros(2, 3, device="cuda"), fg.ones(2, device="cuda"),
              fg.full((2,), 1.5, device="cuda"), fg.arange(4, device="cuda"),
              fg.randn(3, device="cuda"), fg.tensor([1.0, 2.0], device="cuda"),
              fg.eye(2, device="cuda"), fg.linspace(0, 1, 5, device="cuda")):
        assert type(t._data) is strict_cuda
        assert t.device == fg.device("cuda:0") and t.is_cuda and not t.is_cpu
    on_device = fg.ones(2, 2, device="cuda")
    for like in (fg.zeros_like(on_device), fg.ones_like(on_device), fg.rand_like(on_device),
                 fg.full_like(on_device, 3.0), fg.empty_like(on_device)):
        assert like.is_cuda
    assert fg.zeros_like(on_device, device="cpu").is_cpu


def test_values_leave_the_device_only_explicitly(strict_cuda):
    t = fg.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    message = "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu()"
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        t.numpy()
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor"):
        np.asarray(t)
    host = t.cpu()
    assert host.is_cpu and type(host._data) is np.ndarray
    np.testing.assert_array_equal(host.numpy(), [[1, 2], [3, 4]])
    assert t[1, 0].item() == 3.0 and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert "device='cuda:0'" in repr(t)
    assert t.cuda() is t and t.to("cuda") is t and host.cpu() is host


def test_to_device_and_back_is_differentiable(strict_cuda):
    x = fg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = (x.to("cuda") * 2).sum()
    assert y.is_cuda
    y.backward()
    assert x.grad.is_cpu
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])
    z = fg.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (z.cpu() ** 2).sum().backward()
    assert z.grad.is_cuda
    np.testing.assert_array_equal(z.grad.cpu().numpy(), [2, 4])


def test_mixing_devices_in_one_op_is_pytorchs_error(strict_cuda):
    a, b = fg.ones(3), fg.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, "
                                           "but found at least two devices"):
        a + b
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        b * a
    # a 0-d CPU tensor acts as a number, as in PyTorch
    assert (b + fg.tensor(2.0)).is_cuda
    with pytest.raises(HostRoundTrip):
        b._data + np.ones(3, np.float32)  # the stand-in refuses host arrays itself


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "matmul": lambda a, b: a @ b.T,
    "maximum": fg.maximum, "minimum": fg.minimum,
    "broadcast": lambda a, b: a[:1] * b + 1.0,
}
UNARY = {
    "neg": lambda a: -a, "exp": fg.exp, "log": fg.log, "sqrt": fg.sqrt, "tanh": fg.tanh,
    "sigmoid": fg.sigmoid, "relu": fg.relu, "abs": fg.abs, "sin": fg.sin,
    "clamp": lambda a: a.clamp(0.6, 1.2), "sum": lambda a: a.sum(1), "mean": lambda a: a.mean(),
    "max": lambda a: a.max(1).values, "amax": lambda a: a.amax(0), "std": lambda a: a.std(1),
    "softmax": lambda a: fg.softmax(a, 1), "log_softmax": lambda a: fg.log_softmax(a, 1),
    "logsumexp": lambda a: fg.logsumexp(a, 1), "cumsum": lambda a: a.cumsum(1),
    "reshape": lambda a: a.reshape(4, 3), "transpose": lambda a: a.t(),
    "permute": lambda a: a.permute(1, 0), "getitem": lambda a: a[1:, ::2],
    "cat": lambda a: fg.cat([a, a * 2], 1), "stack": lambda a: fg.stack([a, a], 0),
    "where": lambda a: fg.where(a > 1, a, a * 3), "flatten": lambda a: a.flatten(),
    "unsqueeze": lambda a: a.unsqueeze(1).squeeze(1), "expand": lambda a: a[:, :1].expand(3, 4),
    "norm": lambda a: a.norm(), "prod": lambda a: a.prod(1), "var": lambda a: a.var(0),
}


_CLOSE = dict(rtol=1e-5, atol=1e-6)


def _compare(cpu, cuda, leaves):
    assert cuda.is_cuda
    np.testing.assert_allclose(cuda.cpu().detach().numpy(), cpu.detach().numpy(), **_CLOSE)
    seed = np.linspace(-1, 1, cpu.numel(), dtype=np.float32).reshape(cpu.shape)
    cpu.backward(fg.tensor(seed))
    cuda.backward(fg.tensor(seed, device="cuda"))
    for host, device in leaves:
        assert device.grad.is_cuda
        np.testing.assert_allclose(device.grad.cpu().numpy(), host.grad.numpy(), **_CLOSE)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_on_the_device_equal_the_cpu(strict_cuda, rng, name):
    (a, da), (b, db) = _pair(rng, (3, 4), positive=True), _pair(rng, (3, 4), positive=True)
    _compare(BINARY[name](a, b), BINARY[name](da, db), [(a, da), (b, db)])


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_on_the_device_equal_the_cpu(strict_cuda, rng, name):
    a, da = _pair(rng, (3, 4), positive=True)
    _compare(UNARY[name](a), UNARY[name](da), [(a, da)])


def _mlp():
    fg.manual_seed(0)
    return fg.nn.Sequential(fg.nn.Linear(64, 32), fg.nn.ReLU(), fg.nn.Linear(32, 10))


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: fg.optim.Adam(ps, lr=1e-2, weight_decay=1e-3)], ids=["sgd", "adam"])
def test_a_model_trains_on_the_device_as_on_the_cpu(strict_cuda, make_optimizer):
    (x, y), _ = fg.data.load_digits(seed=0)
    x, y = x[:48], y[:48]
    runs = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        assert all(p.device.type == device for p in model.parameters())
        optimizer = make_optimizer(model.parameters())
        inputs, targets = fg.tensor(x, device=device), fg.tensor(y, device=device)
        losses = []
        for _ in range(5):
            loss = fg.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        assert all(p.device.type == device and p.grad.device.type == device
                   for p in model.parameters())
        runs.append((losses, [p.detach().cpu().numpy() for p in model.parameters()]))
    (cpu_losses, cpu_params), (cuda_losses, cuda_params) = runs
    np.testing.assert_allclose(cuda_losses, cpu_losses, rtol=1e-5)
    for a, b in zip(cuda_params, cpu_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_module_moves_back_and_forth(strict_cuda):
    model = _mlp()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.cuda()
    assert all(p.is_cuda for p in model.parameters())
    optimizer = fg.optim.SGD(model.parameters(), lr=0.1)
    weights = [p._data for p in model.parameters()]
    model.cuda()  # already there: nothing moves, the optimiser's arena stays as it is
    assert [p._data for p in model.parameters()] == weights
    assert all(arena.intact for arena in optimizer._arenas[0])
    model.cpu()
    for key, value in model.state_dict().items():
        assert value.is_cpu
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_checkpoints_and_the_monitor_on_the_device(strict_cuda, tmp_path):
    (x, y), _ = fg.data.load_digits(seed=0)
    histories, states = [], []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        optimizer = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        monitor = GradientMonitor(model, optimizer)
        inputs, targets = fg.tensor(x[:32], device=device), fg.tensor(y[:32], device=device)
        for step in range(4):
            loss = fg.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            if step % 2:
                fg.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            monitor.step()
        histories.append(monitor.history())
        fg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                tmp_path / f"{device}.pt")
        states.append(model.state_dict())
    for key in ("grad_norm", "param_norm", "update_ratio", "global_norm", "clipped_norm"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4, atol=1e-7)
    # saved from the device, loaded onto the CPU, the device, or into a model on the device
    on_cpu = fg.load(tmp_path / "cuda.pt")
    on_device = fg.load(tmp_path / "cuda.pt", map_location="cuda")
    assert all(t.is_cpu for t in on_cpu["model"].values())
    assert all(t.is_cuda for t in on_device["model"].values())
    model = _mlp().cuda()
    model.load_state_dict(on_cpu["model"])
    for key, value in model.state_dict().items():
        assert value.is_cuda
        np.testing.assert_array_equal(value.cpu().numpy(), states[1][key].cpu().numpy())
    optimizer = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.load_state_dict(on_device["optimizer"])
    loss = fg.nn.functional.cross_entropy(model(fg.tensor(x[:8], device="cuda")),
                                          fg.tensor(y[:8], device="cuda"))
    loss.backward()
    optimizer.step()
    assert all(p.is_cuda for p in model.parameters())


LAYERS = {
    "batchnorm1d": lambda: fg.nn.Sequential(fg.nn.Linear(6, 5), fg.nn.BatchNorm1d(5),
                                            fg.nn.Tanh()),
    "layernorm": lambda: fg.nn.Sequential(fg.nn.Linear(6, 5), fg.nn.LayerNorm(5),
                                          fg.nn.GELU()),
    "dropout_eval": lambda: fg.nn.Sequential(fg.nn.Linear(6, 5), fg.nn.Dropout(0.5)).eval(),
    # the mask comes from fastgrad's host generator: the same on both devices
    "dropout_train": lambda: fg.nn.Sequential(fg.nn.Linear(6, 5), fg.nn.Dropout(0.5)),
    "sigmoid_mse": lambda: fg.nn.Sequential(fg.nn.Linear(6, 5), fg.nn.Sigmoid()),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_on_the_device_equal_the_cpu(strict_cuda, rng, name):
    x = rng.standard_normal((7, 6)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(1)
        model = LAYERS[name]().to(device)
        out = model(fg.tensor(x, device=device))
        (out * out).mean().backward()
        results.append([out.detach().cpu().numpy()]
                       + [p.grad.cpu().numpy() for p in model.parameters()]
                       + [b.cpu().numpy() for b in model.buffers()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **_CLOSE)


class _Recurrent(fg.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(6, 5, num_layers=2, bidirectional=True)

    def forward(self, x):
        out, _ = self.rnn(x)
        return out


MODELS = {  # name: (model, input shape)
    "lstm": (lambda: _Recurrent(fg.nn.LSTM), (4, 3, 6)),
    "gru": (lambda: _Recurrent(fg.nn.GRU), (4, 3, 6)),
    "rnn": (lambda: _Recurrent(fg.nn.RNN), (4, 3, 6)),
    "cnn": (lambda: fg.nn.Sequential(
        fg.nn.Conv2d(2, 4, 3, padding=1), fg.nn.BatchNorm2d(4), fg.nn.ReLU(),
        fg.nn.MaxPool2d(2), fg.nn.Conv2d(4, 3, 3, stride=2, groups=1), fg.nn.AvgPool2d(1),
        fg.nn.AdaptiveAvgPool2d(1), fg.nn.Flatten()), (2, 2, 9, 9)),
    "resnet": (lambda: fg.models.resnet(depth=8), (2, 1, 8, 8)),
}


def assert_model_on_cuda_equals_the_cpu(name, rng):
    """Model ``name`` of :data:`MODELS`, the same weights and input on the CPU and on CUDA:
    the same output and parameter gradients."""
    make, shape = MODELS[name]
    x = rng.standard_normal(shape).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(1)
        model = make().to(device)
        out = model(fg.tensor(x, device=device))
        (out * out).mean().backward()
        results.append([out.detach().cpu().numpy()]
                       + [p.grad.cpu().numpy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_on_the_device_equal_the_cpu(strict_cuda, rng, name):
    assert_model_on_cuda_equals_the_cpu(name, rng)


def test_a_captured_step_replays_on_the_device(strict_cuda):
    (x, y), _ = fg.data.load_digits(seed=0)
    inputs, targets = fg.tensor(x[:16], device="cuda"), fg.tensor(y[:16], device="cuda")
    runs = []
    for captured in (False, True):
        model = _mlp().cuda()
        optimizer = fg.optim.Adam(model.parameters(), lr=1e-2)

        def loss_of(a, b):
            return fg.nn.functional.cross_entropy(model(a), b)

        step = fg.make_graphed_callables(loss_of) if captured else loss_of
        losses = []
        for _ in range(4):
            loss = step(inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if captured:
            assert step.reasons == {}
        runs.append((losses, [p.detach().cpu().numpy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_the_monitor_through_time_and_activations_on_the_device(strict_cuda, rng):
    x = rng.standard_normal((6, 4, 6)).astype(np.float32)
    histories = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(2)
        model = fg.nn.Sequential(_Recurrent(fg.nn.LSTM), fg.nn.Tanh()).to(device)
        optimizer = fg.optim.SGD(model.parameters(), lr=0.1)
        monitor = GradientMonitor(model, optimizer, activations=True)
        for _ in range(3):
            loss = (model(fg.tensor(x, device=device)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step()
        histories.append(monitor.history())
    cpu, cuda = histories
    assert sorted(cuda["time_grad_norms"]) == sorted(cpu["time_grad_norms"])
    for key, norms in cpu["time_grad_norms"].items():
        np.testing.assert_allclose(cuda["time_grad_norms"][key], norms, rtol=1e-4)
    for name, rows in cpu["activations"].items():
        np.testing.assert_allclose(cuda["activations"][name]["mean"], rows["mean"], rtol=1e-4,
                                   atol=1e-6)


def test_a_training_step_reads_two_values_on_the_host(strict_cuda):
    """The synchronisations a step on the device costs, counted: cross-entropy's check that
    the targets are class indices in range (PyTorch asserts on the device instead), and the
    reference clip's total norm (a CUDA kernel table keeps that one on the device)."""
    (x, y), _ = fg.data.load_digits(seed=0)
    model = _mlp().cuda()
    optimizer = fg.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = fg.tensor(x[:16], device="cuda"), fg.tensor(y[:16], device="cuda")
    counts = []
    for _ in range(3):
        before = strict_cuda.host_reads
        loss = fg.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        counts.append(strict_cuda.host_reads - before)
    assert counts == [2, 2, 2]


def test_why_a_device_is_unavailable_is_said(strict_cuda):
    from fastgrad.device import unregister_arrays, why_unavailable
    assert why_unavailable("cuda") is None and fg.cuda.is_available()
    fg.cuda.synchronize()  # the stand-in's queue: nothing to wait for
    unregister_arrays(strict_cuda)
    reason = why_unavailable("cuda")  # CuPy's registration failed, or none was tried
    assert isinstance(reason, str) and reason and not fg.cuda.is_available()
    with pytest.raises(RuntimeError, match="'cuda' is not available"):
        fg.cuda.synchronize()


def test_a_device_array_becomes_a_tensor_on_its_device(strict_cuda):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    array = strict_cuda(values.copy())
    t = fg.tensor(array)
    assert t.is_cuda and t._data is not array  # a copy, as torch.tensor makes
    np.testing.assert_array_equal(t.cpu().numpy(), values)
    on_cpu = fg.tensor(array, dtype=fg.float64, device="cpu")
    assert on_cpu.is_cpu and on_cpu.dtype == np.float64
    np.testing.assert_array_equal(on_cpu.numpy(), values)


def test_a_cuda_array_of_an_unregistered_type_asks_for_cuda_first():
    import sys
    module = sys.modules["fastgrad.device"]  # the module (fastgrad.device is the class)

    class Foreign:  # a CUDA array of a library fastgrad does not register
        __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False),
                                    "version": 3}

    offered = dict(module._OFFERED)
    module._OFFERED.pop("cuda", None)
    try:
        assert module.device_arrays(Foreign()) is None
        assert "cuda" in module._OFFERED  # CuPy's registration was tried (here: no CuPy)
    finally:
        module._OFFERED.clear()
        module._OFFERED.update(offered)


def test_a_data_loader_cuts_batches_on_the_tensors_device(strict_cuda):
    (x, y), _ = fg.data.load_digits(seed=0)
    x, y = x[:40], y[:40]

    class Samples(fg.utils.data.Dataset):  # sample by sample: the default collate's path
        def __init__(self, *tensors):
            self.tensors = tensors

        def __len__(self):
            return len(self.tensors[0])

        def __getitem__(self, i):
            return tuple(t[i] for t in self.tensors)

    def batches(device, kind):
        tensors = (fg.tensor(x, device=device), fg.tensor(y, device=device))
        dataset = {"tensors": fg.utils.data.TensorDataset(*tensors),
                   "subset": fg.utils.data.Subset(fg.utils.data.TensorDataset(*tensors),
                                                  list(range(3, 37))),
                   "samples": Samples(*tensors)}[kind]
        fg.manual_seed(5)
        return list(fg.utils.data.DataLoader(dataset, batch_size=16, shuffle=True))

    for kind in ("tensors", "subset", "samples"):
        on_cpu, on_cuda = batches("cpu", kind), batches("cuda", kind)
        assert len(on_cpu) == len(on_cuda) > 1
        for (xc, yc), (xd, yd) in zip(on_cpu, on_cuda):
            assert xd.is_cuda and yd.is_cuda
            np.testing.assert_array_equal(xd.cpu().numpy(), xc.numpy())
            np.testing.assert_array_equal(yd.cpu().numpy(), yc.numpy())


def test_a_model_on_the_device_exports_as_from_the_cpu(strict_cuda, rng, tmp_path):
    from fastgrad import runtime
    from fastgrad.export import export
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    outputs = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(1)
        model = fg.models.resnet(depth=8)
        model(fg.tensor(x))  # training-mode batch statistics: BatchNorm's running ones move
        model.to(device)
        export(model, tmp_path / f"{device}.safetensors", fg.tensor(x, device=device))
        outputs.append(runtime.load(tmp_path / f"{device}.safetensors")(x))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


def test_copy_crosses_devices_and_initialisers_draw_as_on_the_cpu(strict_cuda):
    host = fg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    on_device = fg.zeros(2, 3, device="cuda")
    on_device.copy_(host)
    assert on_device.is_cuda
    np.testing.assert_array_equal(on_device.cpu().numpy(), host.numpy())
    back = fg.zeros(2, 3)
    back.copy_(on_device * 2)
    np.testing.assert_array_equal(back.numpy(), 2 * host.numpy())
    drawn = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(3)
        weight = fg.empty(8, 5, device=device)
        fg.nn.init.kaiming_uniform_(weight, a=5 ** 0.5)
        fg.nn.init.orthogonal_(fg.empty(4, 4, device=device))
        fg.nn.init.normal_(weight, std=0.1)
        assert weight.device.type == device
        drawn.append(weight.cpu().numpy())
    np.testing.assert_array_equal(drawn[1], drawn[0])  # one generator, the same draws


def test_gradient_noise_on_the_device_adds_the_cpus_noise(strict_cuda):
    (x, y), _ = fg.data.load_digits(seed=0)
    params = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        optimizer = fg.optim.GradientNoise(fg.optim.SGD(model.parameters(), lr=0.1), eta=0.1,
                                           generator=fg.Generator().manual_seed(4))
        inputs, targets = fg.tensor(x[:16], device=device), fg.tensor(y[:16], device=device)
        for _ in range(2):
            loss = fg.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        params.append([p.detach().cpu().numpy() for p in model.parameters()])
    for a, b in zip(*params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [dict(label_smoothing=0.1),
                                     dict(label_smoothing=0.1, weight=True)],
                         ids=["smoothing", "weighted-smoothing"])
def test_cross_entropy_options_on_the_device_equal_the_cpu(strict_cuda, rng, options):
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    target = np.array([0, 3, 1, -100, 2])
    weight = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        x = fg.tensor(logits, device=device, requires_grad=True)
        kwargs = dict(options, weight=fg.tensor(weight, device=device)) \
            if options.get("weight") else options
        loss = fg.nn.functional.cross_entropy(x, fg.tensor(target, device=device), **kwargs)
        loss.backward()
        assert loss.device.type == device
        results.append((loss.item(), x.grad.cpu().numpy()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-7)


_IDX = np.array([[0, 2], [1, 5], [3, 3], [4, 0]])


def _index(device, values=_IDX):
    return fg.tensor(values, device=device)


def _set(x, key, value):
    y = x.clone()
    y[key] = value
    return y


#: Ops that index, sort, pad, scatter or build constants: each runs on the device and on the
#: CPU from the same (4, 6) input, values and gradients compared.
INDEXING_OPS = {
    "gather": lambda x, d: fg.gather(x, 1, _index(d)),
    "scatter": lambda x, d: fg.zeros(4, 6, device=d).scatter(1, _index(d), x[:, :2]),
    "scatter_value": lambda x, d: x.scatter(1, _index(d), 0.5),
    "scatter_add": lambda x, d: fg.zeros(4, 6, device=d).scatter_add(1, _index(d), x[:, :2]),
    "take_along_dim": lambda x, d: fg.take_along_dim(x, _index(d), 1),
    "index_select": lambda x, d: fg.index_select(x, 1, _index(d, np.array([0, 3]))),
    "setitem_number": lambda x, d: _set(x, (0, slice(None)), 3.0),
    "setitem_tensor": lambda x, d: _set(x, _index(d, np.array([1, 2])), x[0]),
    "topk": lambda x, d: fg.topk(x, 2, dim=1)[0],
    "sort": lambda x, d: fg.sort(x, dim=1)[0],
    "kthvalue": lambda x, d: fg.kthvalue(x, 2, dim=1)[0],
    "median_dim": lambda x, d: fg.median(x, dim=1)[0],
    "median_all": lambda x, d: fg.median(x) + x.sum(),
    "argmax": lambda x, d: x.argmax(1).float() + x.sum(1),
    "any_all": lambda x, d: x + (x > 0).any(1, keepdim=True).float() + (x > -5).all().float(),
    "pad_constant": lambda x, d: fg.nn.functional.pad(x, (1, 2), value=0.5),
    "pad_reflect": lambda x, d: fg.nn.functional.pad(x[None], (2, 1), mode="reflect")[0],
    "pad_circular": lambda x, d: fg.nn.functional.pad(x[None], (2, 1), mode="circular")[0],
    "tril": lambda x, d: fg.tril(x),
    "triu": lambda x, d: fg.triu(x, 1),
    "diag": lambda x, d: fg.diag(x[:, :4]),
    "einsum_diagonal": lambda x, d: fg.einsum("ii->i", x[:, :4]),
    "one_hot": lambda x, d: x + fg.nn.functional.one_hot(_index(d, np.array([0, 1, 2, 5])),
                                                         6).float(),
    "lerp": lambda x, d: fg.lerp(x, x * 2, 0.3),
    "masked_fill": lambda x, d: x.masked_fill(x > 0.5, 0.0),
}


@pytest.mark.parametrize("name", sorted(INDEXING_OPS))
def test_indexing_ops_on_the_device_equal_the_cpu(strict_cuda, name):
    values = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        x = fg.tensor(values, device=device, requires_grad=True)
        out = INDEXING_OPS[name](x, device)
        assert out.device.type == device
        out.sum().backward()
        results.append((out.detach().cpu().numpy(), x.grad.cpu().numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


#: Sampling: fastgrad's generator draws on the host, so each device gets the CPU's values.
SAMPLERS = {
    "uniform_": lambda d: fg.empty(3, 4, device=d).uniform_(-1, 2),
    "normal_": lambda d: fg.empty(3, 4, device=d).normal_(1, 2),
    "bernoulli_": lambda d: fg.empty(3, 4, device=d).bernoulli_(0.3),
    "bernoulli": lambda d: fg.bernoulli(fg.full((3, 4), 0.4, device=d)),
    "normal_tensors": lambda d: fg.normal(fg.zeros(3, device=d), fg.full((3,), 2.0, device=d)),
    "multinomial": lambda d: fg.multinomial(fg.tensor([[0.2, 0.8, 0.0], [1.0, 1.0, 1.0]],
                                                      device=d), 2),
    "multinomial_replacement": lambda d: fg.multinomial(fg.tensor([0.2, 0.8], device=d), 5,
                                                        replacement=True),
    "randn": lambda d: fg.randn(2, 3, device=d),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampling_on_the_device_draws_what_the_cpu_draws(strict_cuda, name):
    drawn = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(11)
        out = SAMPLERS[name](device)
        assert out.device.type == device
        drawn.append(out.cpu().numpy())
    np.testing.assert_array_equal(drawn[1], drawn[0])


def test_a_captured_step_with_dropout_replays_on_the_device_as_on_the_cpu(strict_cuda):
    """Each replay draws a new dropout mask from the host generator and copies it over: the
    device's run takes the CPU's masks."""
    (x, y), _ = fg.data.load_digits(seed=0)
    runs = []
    for device in ("cpu", "cuda"):
        fg.manual_seed(0)
        model = fg.nn.Sequential(fg.nn.Linear(64, 16), fg.nn.ReLU(), fg.nn.Dropout(0.3),
                                 fg.nn.Linear(16, 10), fg.nn.LayerNorm(10)).to(device)
        optimizer = fg.optim.Adam(model.parameters(), lr=1e-2)
        step = fg.make_graphed_callables(
            lambda a, b: fg.nn.functional.cross_entropy(model(a), b))
        inputs, targets = fg.tensor(x[:16], device=device), fg.tensor(y[:16], device=device)
        losses = []
        for _ in range(4):
            loss = step(inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            fg.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            losses.append(loss.item())
        assert step.reasons == {}
        runs.append((losses, [p.detach().cpu().numpy() for p in model.parameters()]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-6)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
