"""AlexNet as the 2012 paper built it, and as the workshop's slides describe it: Krizhevsky,
Sutskever, Hinton, "ImageNet classification with deep convolutional neural networks",
NeurIPS 2012, section 3.5 and figure 2.
https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks

Input 227x227x3 (the paper writes 224, but only 227 gives its 55x55 first map:
floor((227 - 11) / 4) + 1 = 55). Five convolutions: 96 filters of 11x11 at stride 4, then
256 of 5x5, 384, 384 and 256 of 3x3; three dense layers of 4096, 4096 and 1000 units; ReLU,
local response normalisation after the first two convolutions, overlapping 3x3/2 max pooling,
dropout 0.5 in the first two dense layers. The network was split over two GPUs, and the
second, fourth and fifth convolutions see only the maps on their own GPU: here they are
convolutions with groups=2, which computes exactly that. 60,965,224 parameters ("60 million
parameters", section 1), against the single-tower `alexnet` (models/alexnet.py, 61,100,840).

Small inputs (shorter side under 64 px): as `alexnet`, the stem becomes a 5x5 stride-1
convolution, the pools get padding 1 (28 -> 14 -> 7 -> 4) and the dense layers 1024 units.
"""

from __future__ import annotations

from torch import nn

from neuralab.models.alexnet import AlexNet, dense_head
from neuralab.models.geometry import flat_size, is_small


def _lrn() -> nn.LocalResponseNorm:
    # The paper's k=2, n=5, alpha=1e-4, beta=0.75. PyTorch divides alpha by n inside the sum,
    # the paper does not: PyTorch's alpha is n * 1e-4.
    return nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)


class AlexNet2012(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (3, 227, 227), num_classes: int = 1000,
                 dropout: float = 0.5, hidden: int | None = None, small: bool | None = None):
        super().__init__()
        c = input_shape[0]
        small = is_small(input_shape) if small is None else small
        stem = nn.Conv2d(c, 96, 5, 1, 2) if small else nn.Conv2d(c, 96, 11, 4)  # (B, 96, 55, 55)
        pool = (lambda: nn.MaxPool2d(3, 2, 1)) if small else (lambda: nn.MaxPool2d(3, 2))
        self.features = nn.Sequential(
            stem, nn.ReLU(inplace=True), _lrn(), pool(),                              # (B, 96, 27, 27)
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), _lrn(),  # (B, 256, 27, 27)
            pool(),                                                                   # (B, 256, 13, 13)
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),                 # both GPUs' maps
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True),       # (B, 256, 13, 13)
            pool(),                                                                   # (B, 256, 6, 6)
            nn.Flatten(),                                                             # (B, 9216)
        )
        self.classifier = dense_head(flat_size(self.features, input_shape), hidden or (1024 if small else 4096),
                                     num_classes, dropout)

    forward = AlexNet.forward  # logits (B, num_classes)


def alexnet2012(input_shape=(3, 227, 227), num_classes: int = 1000, **options) -> AlexNet2012:
    """AlexNet as in the 2012 paper and the slides (Krizhevsky, Sutskever, Hinton, 2012)."""
    return AlexNet2012(tuple(input_shape), num_classes, **options)
