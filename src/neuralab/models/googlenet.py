"""GoogLeNet (Inception v1): Szegedy et al., "Going deeper with convolutions", CVPR 2015
(ILSVRC 2014 winner). https://arxiv.org/abs/1409.4842

Nine Inception modules: parallel 1x1, 3x3 and 5x5 convolutions and a pooled branch, each
big branch behind a 1x1 "bottleneck" that cuts the channels first, concatenated along the
channels. Global average pooling replaces the big dense layers, so 22 layers hold only
6.6M parameters (AlexNet: 61M).

At 224x224x3 with 1000 classes and no auxiliary heads: 6,624,904 parameters. Like
torchvision's reference model (whose count this is), every convolution is followed by
batch normalisation instead of the paper's local response normalisation, and the "5x5"
branch uses a 3x3 kernel. ``aux_logits=True`` adds the paper's two auxiliary classifiers
(after inception4a and 4d); in training mode ``forward`` then returns
``GoogLeNetOutputs(logits, aux1, aux2)`` and ``loss`` weights the auxiliary losses by 0.3,
as the paper does; in eval mode it returns the logits alone.

Small inputs (shorter side under 64 px, e.g. 28x28x1, 32x32x3): the stride-2 7x7 stem
convolution becomes a stride-1 3x3 and the stem's second max pool goes, so the network
downsamples 8x instead of 32x: 28x28 -> 14x14 (inception3) -> 7x7 (inception4) -> 4x4
(inception5). The Inception modules and the classifier are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from neuralab.models.geometry import flat_size, is_small


class ConvBN(nn.Sequential):
    """Conv (no bias: the BN shift replaces it) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels, eps=0.001),
            nn.ReLU(inplace=True),
        )


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = ConvBN(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(ConvBN(in_channels, ch3x3red, 1), ConvBN(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvBN(in_channels, ch5x5red, 1), ConvBN(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), ConvBN(in_channels, pool_proj, 1))

    def forward(self, x):
        # (B, in, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W): every branch keeps H, W
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxHead(nn.Sequential):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(4),        # (B, in, 4, 4): the paper's 5x5/3 average pool of a 14x14 map, for any size
            ConvBN(in_channels, 128, 1),    # (B, 128, 4, 4)
            nn.Flatten(),                   # (B, 2048)
            nn.Linear(2048, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
            nn.Linear(1024, num_classes),
        )


class GoogLeNetOutputs(NamedTuple):
    logits: torch.Tensor
    aux1: torch.Tensor
    aux2: torch.Tensor


class GoogLeNet(nn.Module):
    AUX_WEIGHT = 0.3  # the paper's weight of each auxiliary loss
    # The trainer calls `loss` with its criterion only where the class says so: a user's module may
    # keep a `loss` of its own that takes no criterion (training.inputs_check.own_loss)
    loss_takes_criterion = True

    def __init__(self, input_shape: tuple[int, int, int] = (3, 224, 224), num_classes: int = 1000,
                 aux_logits: bool = False, dropout: float = 0.4, small: bool | None = None):
        super().__init__()
        c = input_shape[0]
        small = is_small(input_shape) if small is None else small
        if small:
            stem = [("conv1", ConvBN(c, 64, 3, padding=1)),                   # (B, 64, H, W)
                    ("maxpool1", nn.MaxPool2d(3, 2, ceil_mode=True)),          # (B, 64, H/2, W/2)
                    ("conv2", ConvBN(64, 64, 1)),
                    ("conv3", ConvBN(64, 192, 3, padding=1))]                  # (B, 192, H/2, W/2)
        else:
            stem = [("conv1", ConvBN(c, 64, 7, stride=2, padding=3)),         # (B, 64, 112, 112)
                    ("maxpool1", nn.MaxPool2d(3, 2, ceil_mode=True)),          # (B, 64, 56, 56)
                    ("conv2", ConvBN(64, 64, 1)),
                    ("conv3", ConvBN(64, 192, 3, padding=1)),                  # (B, 192, 56, 56)
                    ("maxpool2", nn.MaxPool2d(3, 2, ceil_mode=True))]          # (B, 192, 28, 28)
        self.features = nn.Sequential(OrderedDict([
            *stem,
            ("inception3a", Inception(192, 64, 96, 128, 16, 32, 32)),          # (B, 256, 28, 28)
            ("inception3b", Inception(256, 128, 128, 192, 32, 96, 64)),        # (B, 480, 28, 28)
            ("maxpool3", nn.MaxPool2d(3, 2, ceil_mode=True)),                  # (B, 480, 14, 14)
            ("inception4a", Inception(480, 192, 96, 208, 16, 48, 64)),         # (B, 512, 14, 14)
            ("inception4b", Inception(512, 160, 112, 224, 24, 64, 64)),
            ("inception4c", Inception(512, 128, 128, 256, 24, 64, 64)),
            ("inception4d", Inception(512, 112, 144, 288, 32, 64, 64)),        # (B, 528, 14, 14)
            ("inception4e", Inception(528, 256, 160, 320, 32, 128, 128)),      # (B, 832, 14, 14)
            ("maxpool4", nn.MaxPool2d(2, 2, ceil_mode=True)),                  # (B, 832, 7, 7)
            ("inception5a", Inception(832, 256, 160, 320, 32, 128, 128)),
            ("inception5b", Inception(832, 384, 192, 384, 48, 128, 128)),      # (B, 1024, 7, 7)
            ("avgpool", nn.AdaptiveAvgPool2d(1)),                              # (B, 1024, 1, 1)
            ("flatten", nn.Flatten()),                                         # (B, 1024)
        ]))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat_size(self.features, input_shape), num_classes))
        self.aux1 = AuxHead(512, num_classes) if aux_logits else None
        self.aux2 = AuxHead(528, num_classes) if aux_logits else None

    def forward(self, x):
        taps = {}
        for name, layer in self.features.named_children():
            x = layer(x)
            if self.aux1 is not None and self.training and name in ("inception4a", "inception4d"):
                taps[name] = x
        logits = self.classifier(x)  # (B, num_classes)
        if taps:
            return GoogLeNetOutputs(logits, self.aux1(taps["inception4a"]), self.aux2(taps["inception4d"]))
        return logits

    def loss(self, outputs, target, criterion=nn.functional.cross_entropy):
        """The training loss: the main loss plus 0.3 times each auxiliary loss when present."""
        if isinstance(outputs, GoogLeNetOutputs):
            return criterion(outputs.logits, target) + self.AUX_WEIGHT * (
                criterion(outputs.aux1, target) + criterion(outputs.aux2, target))
        return criterion(outputs, target)


def googlenet(input_shape=(3, 224, 224), num_classes: int = 1000, **options) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al., 2014)."""
    return GoogLeNet(tuple(input_shape), num_classes, **options)
