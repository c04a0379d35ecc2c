"""AlexNet: Krizhevsky, Sutskever, Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012 (ILSVRC 2012 winner).
https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks

Five convolutions and three dense layers; what it introduced: ReLU instead of tanh, dropout
in the dense layers, overlapping max pooling (3x3 windows, stride 2) and training on GPUs.

At 224x224x3 with 1000 classes: 61,100,840 parameters. This is the single-tower form of
Krizhevsky's "One weird trick" paper (arXiv:1404.5997) that torchvision also builds, with
64-192-384-256-256 filters, no local response normalisation, and an adaptive average pool
that turns the last map into 6x6 so the first dense layer always sees 256*6*6 = 9216 values.

Small inputs (shorter side under 64 px, e.g. 28x28x1, 32x32x3): the 11x11 stride-4 stem
becomes a 5x5 stride-1 convolution, the overlapping 3x3/2 pools get padding 1 so that
28 -> 14 -> 7 -> 4 (32 -> 16 -> 8 -> 4), the adaptive 6x6 pool goes (it would only copy a
4x4 map into more weights), and the dense layers shrink from 4096 to 1024 units.
"""

from __future__ import annotations

from torch import nn

from neuralab.models.geometry import flat_size, is_small


class AlexNet(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (3, 224, 224), num_classes: int = 1000,
                 dropout: float = 0.5, hidden: int | None = None, small: bool | None = None):
        super().__init__()
        c = input_shape[0]
        small = is_small(input_shape) if small is None else small
        if small:
            stem = [nn.Conv2d(c, 64, 5, 1, 2), nn.ReLU(inplace=True),   # (B, 64, 28, 28)
                    nn.MaxPool2d(3, 2, 1)]                               # (B, 64, 14, 14)
            pool, tail = nn.MaxPool2d(3, 2, 1), []
        else:
            stem = [nn.Conv2d(c, 64, 11, 4, 2), nn.ReLU(inplace=True),  # (B, 64, 55, 55)
                    nn.MaxPool2d(3, 2)]                                  # (B, 64, 27, 27)
            pool, tail = nn.MaxPool2d(3, 2), [nn.AdaptiveAvgPool2d(6)]
        self.features = nn.Sequential(
            *stem,
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),    # (B, 192, 27, 27)   small: 14x14
            pool,                                                        # (B, 192, 13, 13)   small: 7x7
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),   # (B, 384, 13, 13)
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),   # (B, 256, 13, 13)
            nn.MaxPool2d(3, 2, 1) if small else nn.MaxPool2d(3, 2),      # (B, 256, 6, 6)     small: 4x4
            *tail,
            nn.Flatten(),                                                # (B, 9216)          small: 4096
        )
        self.classifier = dense_head(flat_size(self.features, input_shape), hidden or (1024 if small else 4096),
                                     num_classes, dropout)

    def forward(self, x):
        return self.classifier(self.features(x))  # logits (B, num_classes)


def dense_head(inputs: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """AlexNet's three dense layers, dropout before the first two (both AlexNets)."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(inputs, hidden), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def alexnet(input_shape=(3, 224, 224), num_classes: int = 1000, **options) -> AlexNet:
    """AlexNet (Krizhevsky, Sutskever, Hinton, 2012)."""
    return AlexNet(tuple(input_shape), num_classes, **options)
