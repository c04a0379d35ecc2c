"""LeNet-5: LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998. http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf

Exactly the workshop's Keras model: 32x32 input, tanh, average pooling, Conv 6-16-120,
Dense 84, 10 classes: 61,706 parameters, initialised as Keras does (Glorot-uniform weights,
zero biases). Inputs smaller than 32x32 (MNIST's 28x28) are zero-padded to 32x32, as in
the paper. The softmax lives in the loss and in ``predict``. The trainer runs Conv2d, Tanh
and AvgPool2d through faster CPU kernels for the same functions (models/fast.py).
"""

from __future__ import annotations

from torch import nn

from neuralab.models.geometry import flat_size


class LeNet5(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (1, 32, 32), num_classes: int = 10):
        super().__init__()
        c, h, w = input_shape
        pad_h, pad_w = max(0, 32 - h), max(0, 32 - w)
        self.features = nn.Sequential(
            # (B, c, h, w) -> (B, c, >=32, >=32); left/top get the smaller half, as Keras does
            nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)),
            nn.Conv2d(c, 6, 5), nn.Tanh(),        # (B, 6, 28, 28)
            nn.AvgPool2d(2, 2),                   # (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5), nn.Tanh(),       # (B, 16, 10, 10)
            nn.AvgPool2d(2, 2),                   # (B, 16, 5, 5)
            nn.Conv2d(16, 120, 5), nn.Tanh(),     # (B, 120, 1, 1)
            nn.Flatten(),                         # (B, 120)
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_size(self.features, input_shape), 84), nn.Tanh(), nn.Linear(84, num_classes))
        # PyTorch's default init keeps tanh units near zero; with Keras's Glorot init the same
        # 10-epoch MNIST run ends at 99.20% instead of 98.88% (docs/models.md).
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.classifier(self.features(x))  # logits (B, num_classes)


def lenet5(input_shape=(1, 32, 32), num_classes: int = 10) -> LeNet5:
    """LeNet-5 (LeCun et al., 1998)."""
    return LeNet5(tuple(input_shape), num_classes)
