"""VGG16: Simonyan, Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015 (ILSVRC 2014 runner-up). https://arxiv.org/abs/1409.1556

Configuration D: 13 convolutions, all 3x3 with padding 1, in five blocks each closed by a
2x2/2 max pool, then three dense layers. What it showed: depth from small kernels (two
stacked 3x3 convolutions see 5x5 with fewer weights) beats a few large kernels.

At 224x224x3 with 1000 classes: 138,357,544 parameters, 124M of them in the three dense
layers and 103M in the first (512*7*7 -> 4096). An adaptive average pool makes that layer see 7x7 for any input
of at least 32x32, as torchvision does.

Small inputs (shorter side under 64 px, e.g. 28x28x1, 32x32x3): the five pools round up
(``ceil_mode``, what Keras calls padding="same"), so 28 -> 14 -> 7 -> 4 -> 2 -> 1 instead of
vanishing at the fifth pool; the adaptive 7x7 pool goes (it would copy the 1x1 map 49 times
into 102M weights) and the dense layers shrink from 4096 to 512 units. ``batch_norm=True``
adds BatchNorm after every convolution (torchvision's vgg16_bn), which deep plain VGGs need
to train well from scratch.
"""

from __future__ import annotations

from torch import nn

from neuralab.models.geometry import flat_size, is_small

# Configuration D of the paper: numbers are 3x3 conv widths, "M" a 2x2/2 max pool.
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (3, 224, 224), num_classes: int = 1000,
                 config=VGG16, batch_norm: bool = False, dropout: float = 0.5,
                 hidden: int | None = None, small: bool | None = None):
        super().__init__()
        small = is_small(input_shape) if small is None else small
        layers: list[nn.Module] = []
        c = input_shape[0]
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=small))  # (B, c, H/2, W/2)
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1),            # (B, v, H, W)
                           *([nn.BatchNorm2d(v)] if batch_norm else []), nn.ReLU(inplace=True)]
                c = v
        if not small:
            layers.append(nn.AdaptiveAvgPool2d(7))                   # (B, 512, 7, 7)
        self.features = nn.Sequential(*layers, nn.Flatten())         # (B, 25088); small: (B, 512) at 28x28
        hidden = hidden or (512 if small else 4096)
        self.classifier = nn.Sequential(
            nn.Linear(flat_size(self.features, input_shape), hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))  # logits (B, num_classes)


def vgg16(input_shape=(3, 224, 224), num_classes: int = 1000, **options) -> VGG:
    """VGG16, configuration D (Simonyan and Zisserman, 2014)."""
    return VGG(tuple(input_shape), num_classes, VGG16, **options)
