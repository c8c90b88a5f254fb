"""fastgrad.models: the BasicBlock and the small ResNet of He et al. (and its plain twin):
shapes, torchvision's state_dict keys, initialisation, gradients, argument errors, and parity
with the same network written in torch.nn."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import models, nn


def _t(array):
    return fg.tensor(array)


# ------------------------------------------------------------------------------ structure
@pytest.mark.parametrize("in_channels, size, maps", [(1, 8, (8, 4, 2)), (1, 28, (28, 14, 7)),
                                                     (3, 9, (9, 5, 3))])
def test_stages_halve_the_image_and_the_output_is_logits(in_channels, size, maps, rng):
    model = models.resnet(8, in_channels=in_channels, num_classes=7)
    seen = []
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(lambda m, a, out: seen.append(out.shape))
    x = _t(rng.standard_normal((2, in_channels, size, size)).astype(np.float32))
    assert model(x).shape == (2, 7)
    assert [tuple(s) for s in seen] == [(2, w, m, m) for w, m in zip((16, 32, 64), maps)]


def test_state_dict_keys_are_torchvisions():
    keys = list(models.resnet(14).state_dict())
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    block = ["conv1.weight"] + [f"bn1.{k}" for k in bn] + ["conv2.weight"] + \
        [f"bn2.{k}" for k in bn]
    expected = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for stage in (1, 2, 3):
        for index in (0, 1):
            prefix = f"layer{stage}.{index}."
            expected += [prefix + k for k in block]
            if stage > 1 and index == 0:
                expected += [prefix + "downsample.0.weight"] + \
                    [f"{prefix}downsample.1.{k}" for k in bn]
    assert keys == expected + ["fc.weight", "fc.bias"]


def test_depth_counts_the_layers_with_weights():
    for depth in (8, 20, 32):
        model = models.resnet(depth)
        convs = [name for name, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and "downsample" not in name]
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(convs) + len(linears) == depth
        assert len(model.layer1) == len(model.layer3) == (depth - 2) // 6


def test_plain_network_has_no_shortcuts_and_no_batchnorm_leaves_no_state():
    plain = models.plain_cnn(14, batch_norm=False)
    keys = list(plain.state_dict())
    assert not any("downsample" in k or "bn" in k for k in keys)
    assert all(not block.residual and block.downsample is None
               for stage in (plain.layer1, plain.layer2, plain.layer3) for block in stage)
    assert isinstance(plain.layer2[0].bn1, nn.Identity)
    assert "residual=False" in repr(plain)
    assert len(keys) == 2 * 6 + 1 + 2  # the convolutions, the stem and fc's two
    # resnet() and ResNet(residual=True) are the same network
    assert list(models.resnet(14).state_dict()) == \
        list(models.ResNet(14, residual=True).state_dict())


def test_initialisation_is_torchvisions(rng):
    fg.manual_seed(0)
    model = models.resnet(32, widths=(32, 64, 128))
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * np.prod(module.kernel_size)
            std = module.weight.numpy().std()
            # He normal, fan_out: std sqrt(2 / fan_out) (within sampling error)
            assert abs(std / np.sqrt(2.0 / fan_out) - 1) < 0.2, (name, std)
        elif isinstance(module, nn.BatchNorm2d):
            assert np.all(module.weight.numpy() == 1) and np.all(module.bias.numpy() == 0)
    bound = 1 / np.sqrt(128)  # fc keeps Linear's default U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(model.fc.weight.numpy()).max() <= bound


# ------------------------------------------------------------------------------ behaviour
def test_basic_block_is_its_formula(rng):
    """Without BatchNorm the block is conv-relu-conv plus the shortcut, then relu: checked
    against the functional form, identity and projection shortcuts."""
    x = _t(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    relu = fg.relu
    same = models.BasicBlock(4, 4, norm_layer=nn.Identity)
    expected = relu(same.conv2(relu(same.conv1(x))) + x)
    np.testing.assert_allclose(same(x).numpy(), expected.numpy(), rtol=1e-6)
    projection = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.Identity())
    down = models.BasicBlock(4, 8, stride=2, downsample=projection, norm_layer=nn.Identity)
    expected = relu(down.conv2(relu(down.conv1(x))) + projection(x))
    assert down(x).shape == (2, 8, 3, 3)
    np.testing.assert_allclose(down(x).numpy(), expected.numpy(), rtol=1e-6)
    plain = models.BasicBlock(4, 4, norm_layer=nn.Identity, residual=False)
    expected = relu(plain.conv2(relu(plain.conv1(x))))
    np.testing.assert_allclose(plain(x).numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("residual", [True, False])
def test_every_parameter_gets_a_gradient(residual, rng):
    model = models.ResNet(8, in_channels=3, residual=residual)
    x = _t(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    nn.functional.cross_entropy(model(x), _t(rng.integers(0, 10, 4))).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and np.isfinite(param.grad.numpy()).all(), name
        assert np.abs(param.grad.numpy()).sum() > 0, name


def test_shortcuts_keep_the_signal_the_plain_network_loses(rng):
    """At initialisation, without BatchNorm, the 20-layer plain network's last stage carries
    a few percent of its first stage's RMS activation (the 3x3 convolutions see mostly zero
    padding on 2x2 maps), while the ResNet's shortcuts keep it: why the demo's plain CNN
    stays at chance."""
    x = _t(rng.random((32, 1, 8, 8)).astype(np.float32))
    for residual in (True, False):
        fg.manual_seed(0)
        model = models.ResNet(20, residual=residual, batch_norm=False)
        outputs = {}
        for name in ("layer1", "layer3"):
            getattr(model, name).register_forward_hook(
                lambda m, a, out, name=name: outputs.update({name: out.numpy()}))
        model(x)
        rms = {k: np.sqrt(np.mean(v.astype(np.float64) ** 2)) for k, v in outputs.items()}
        ratio = rms["layer3"] / rms["layer1"]
        assert ratio > 1 if residual else ratio < 0.1, (residual, ratio)


def test_state_dict_round_trips_between_models(rng):
    source, target = models.resnet(8), models.resnet(8)
    x = _t(rng.standard_normal((3, 1, 8, 8)).astype(np.float32))
    source(x)  # move the running statistics off their initial values
    target.load_state_dict(source.state_dict())
    source.eval()
    target.eval()
    np.testing.assert_array_equal(target(x).numpy(), source(x).numpy())


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(depth=21), ValueError, r"depth must be 6n \+ 2 .* got 21"),
    (dict(depth=2), ValueError, "depth must be 6n"),
    (dict(depth=20.0), ValueError, "depth must be 6n"),
    (dict(in_channels=0), ValueError, "in_channels must be a positive int, got 0"),
    (dict(num_classes=True), ValueError, "num_classes must be a positive int, got True"),
    (dict(widths=(16, 32)), ValueError, r"widths must be a tuple of 3 positive ints, got "
                                        r"\(16, 32\)"),
    (dict(widths=(16, 0, 64)), ValueError, "widths must be a tuple of 3 positive ints"),
    (dict(residual=1), TypeError, "residual must be a bool, got int"),
    (dict(batch_norm=None), TypeError, "batch_norm must be a bool, got NoneType"),
])
def test_bad_arguments_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        models.ResNet(**kwargs)


def test_basic_block_argument_errors():
    with pytest.raises(ValueError, match="downsample must be None when residual=False"):
        models.BasicBlock(4, 8, 2, downsample=nn.Conv2d(4, 8, 1, stride=2), residual=False)
    with pytest.raises(TypeError, match="downsample must be a Module or None, got function"):
        models.BasicBlock(4, 4, downsample=lambda x: x)
    with pytest.raises(TypeError, match="residual must be a bool"):
        models.BasicBlock(4, 4, residual="yes")


def test_wrong_input_channels_fail_in_the_first_convolution(rng):
    model = models.resnet(8, in_channels=3)
    with pytest.raises(RuntimeError, match="channels"):
        model(_t(rng.standard_normal((1, 1, 8, 8)).astype(np.float32)))


# ---------------------------------------------------------------------------- vs PyTorch
def _torch_resnet(torch, depth, in_channels, num_classes, residual, batch_norm):
    """The same network written with torch.nn layers (torchvision's layout)."""
    tnn = torch.nn
    norm = tnn.BatchNorm2d if batch_norm else tnn.Identity

    class Block(tnn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = norm(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = norm(planes)
            self.downsample = None
            if residual and (stride != 1 or inplanes != planes):
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(inplanes, planes, 1, stride, bias=False), norm(planes))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            if residual:
                out = out + (x if self.downsample is None else self.downsample(x))
            return self.relu(out)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = norm(16)
            self.relu = tnn.ReLU(inplace=True)
            self.layer1 = tnn.Sequential(*[Block(16, 16, 1) for _ in range(n)])
            self.layer2 = tnn.Sequential(Block(16, 32, 2), *[Block(32, 32, 1)
                                                             for _ in range(n - 1)])
            self.layer3 = tnn.Sequential(Block(32, 64, 2), *[Block(64, 64, 1)
                                                             for _ in range(n - 1)])
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(64, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


@pytest.mark.parametrize("residual, batch_norm, size", [(True, True, 8), (False, True, 8),
                                                        (True, False, 28)])
def test_matches_the_torch_network_loaded_from_its_state_dict(residual, batch_norm, size,
                                                               rng):
    """Our state_dict loads strictly into the torch.nn network of the same structure; both
    give the same outputs, input gradient, parameter gradients and running statistics in
    training mode, and the same outputs in evaluation mode."""
    torch = pytest.importorskip("torch")
    fg.manual_seed(1)
    ours = models.ResNet(8, in_channels=3, num_classes=5, residual=residual,
                         batch_norm=batch_norm).double()
    theirs = _torch_resnet(torch, 8, 3, 5, residual, batch_norm).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()}, strict=True)
    x = rng.standard_normal((4, 3, size, size))
    grad = rng.standard_normal((4, 5))
    x_o, x_t = _t(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
    out_o, out_t = ours(x_o), theirs(x_t)
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-9, atol=1e-10)
    out_o.backward(_t(grad))
    out_t.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(x_o.grad.numpy(), x_t.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(ours.get_parameter(name).grad.numpy(), param.grad.numpy(),
                                   rtol=1e-8, atol=1e-10, err_msg=name)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(_t(x)).numpy(), expected, rtol=1e-9, atol=1e-10)
