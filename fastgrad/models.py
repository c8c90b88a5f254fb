"""Ready-made networks: the small residual CNN of He et al. and its plain twin.

The modules follow torchvision's layout and attribute names, so a state_dict moves between a
fastgrad model and the PyTorch module of the same structure with the keys unchanged
(``conv1.weight``, ``bn1.running_mean``, ``layer2.0.downsample.0.weight``, ``fc.bias``).
"""
import numbers

from . import nn
from . import ops
from .nn.container import fused_pair


def _norm_relu(norm, relu, x):
    """``relu(norm(x))``, one op where the norm layer applies the ReLU in its kernels (see
    :func:`fastgrad.nn.container.fused_pair`)."""
    activation = fused_pair(norm, relu)
    return relu(norm(x)) if activation is None else norm(x, activation=activation)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut around them: torchvision's ``BasicBlock``.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, the shortcut being ``x`` itself
    or, where the block changes the shape, ``downsample(x)`` (a 1x1 strided convolution and a
    norm layer, the "projection shortcut"). With ``residual=False`` the sum is left out: the
    same two convolutions with no shortcut, the "plain" block He et al. compare against.

    Args:
        inplanes: input channels.
        planes: output channels of both convolutions.
        stride: stride of the first convolution (2 halves the height and width).
        downsample: the shortcut's module when the shape changes, None for the identity.
        norm_layer: called as ``norm_layer(planes)`` for the two norm layers;
            None means :class:`~fastgrad.nn.BatchNorm2d`, :class:`~fastgrad.nn.Identity`
            leaves normalisation out.
        residual: add the shortcut (True) or not (False, the plain block; then ``downsample``
            must be None).

    Shape:
        input (N, inplanes, H, W); output (N, planes, H_out, W_out) with
        H_out = (H - 1) // stride + 1 and likewise W_out.

    References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=None,
                 residual=True):
        super().__init__()
        if not isinstance(residual, bool):
            raise TypeError(f"residual must be a bool, got {type(residual).__name__}")
        if downsample is not None and not isinstance(downsample, nn.Module):
            raise TypeError(f"downsample must be a Module or None, got "
                            f"{type(downsample).__name__}")
        if downsample is not None and not residual:
            raise ValueError("downsample must be None when residual=False (a plain block has "
                             "no shortcut)")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x):
        out = _norm_relu(self.bn1, self.relu, self.conv1(x))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def extra_repr(self):
        return "" if self.residual else "residual=False"


class ResNet(nn.Module):
    """The small residual network of He et al. (section 4.2, their CIFAR-10 family), or its
    plain twin: ``depth = 6n + 2`` layers with weights.

    A 3x3 convolution (``conv1``, ``bn1``, ``relu``) to ``widths[0]`` channels, then three
    stages (``layer1``..``layer3``) of n :class:`BasicBlock` each, ``widths[i]`` channels in
    stage i; the first block of stages 2 and 3 halves the height and width (stride 2) and
    changes the channels, its shortcut a 1x1 strided convolution and a norm layer (the
    projection shortcut, ``downsample``). Then global average pooling (``avgpool``), flatten
    and a Linear classifier (``fc``). Built for small images: 8x8 digits become 8x8, 4x4 and
    2x2 feature maps across the stages, 28x28 ones 28x28, 14x14 and 7x7.

    Initialisation is torchvision's: He normal (fan_out, ReLU gain) for every convolution,
    weight 1 and bias 0 for every BatchNorm2d, PyTorch's default for ``fc``.

    Args:
        depth: layers with weights, 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...): 2n
            convolutions per stage, the stem and ``fc``.
        in_channels: input channels (1 for grey images, 3 for colour).
        num_classes: outputs of ``fc``.
        widths: the three stages' channels.
        residual: add the shortcuts (a ResNet); False gives the plain network of the same
            depth, with no shortcuts and so no ``downsample`` modules.
        batch_norm: a BatchNorm2d after every convolution; False puts
            :class:`~fastgrad.nn.Identity` in their places (the ``bn`` names stay, with no
            state).

    Shape:
        input (N, in_channels, H, W); output (N, num_classes).

    The state_dict keys are torchvision's (``conv1.weight``, ``bn1.weight``,
    ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ``fc.bias``...), so it loads
    into the PyTorch module of the same structure and back.

    References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, depth=20, in_channels=1, num_classes=10, widths=(16, 32, 64),
                 residual=True, batch_norm=True):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 8 \
                or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 for an int n >= 1 (8, 14, 20, 32, 44, 56, "
                             f"110, ...), got {depth!r}")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(widths, (tuple, list)) or len(widths) != 3 or any(
                isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1
                for w in widths):
            raise ValueError(f"widths must be a tuple of 3 positive ints, got {widths!r}")
        for name, value in (("residual", residual), ("batch_norm", batch_norm)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        blocks = (depth - 2) // 6
        self.depth, self.residual = int(depth), residual
        self._norm_layer = nn.BatchNorm2d if batch_norm else nn.Identity
        self.inplanes = int(widths[0])
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, padding=1, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(int(widths[0]), blocks, 1)
        self.layer2 = self._make_layer(int(widths[1]), blocks, 2)
        self.layer3 = self._make_layer(int(widths[2]), blocks, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, planes, blocks, stride):
        """One stage: ``blocks`` BasicBlocks to ``planes`` channels, the first with
        ``stride`` and, where the shape changes in a ResNet, a projection shortcut."""
        downsample = None
        if self.residual and (stride != 1 or self.inplanes != planes):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                self._norm_layer(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, self._norm_layer,
                             self.residual)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, norm_layer=self._norm_layer,
                              residual=self.residual) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = _norm_relu(self.bn1, self.relu, self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(ops.flatten(self.avgpool(x), 1))

    def extra_repr(self):
        return f"depth={self.depth}" + ("" if self.residual else ", residual=False")


def resnet(depth=20, in_channels=1, num_classes=10, **kwargs):
    """A :class:`ResNet` of ``depth`` layers (6n + 2), with shortcuts and BatchNorm2d unless
    ``batch_norm=False``; ``kwargs`` go to :class:`ResNet` (``widths``, ``batch_norm``)."""
    return ResNet(depth, in_channels, num_classes, residual=True, **kwargs)


def plain_cnn(depth=20, in_channels=1, num_classes=10, **kwargs):
    """The plain network of He et al.: a :class:`ResNet` of ``depth`` layers without
    shortcuts, the baseline residual connections are measured against; ``kwargs`` go to
    :class:`ResNet` (``widths``, ``batch_norm``)."""
    return ResNet(depth, in_channels, num_classes, residual=False, **kwargs)
