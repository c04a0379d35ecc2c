"""A small CNN built only from ``neuralab.mechanics``, trained on sklearn's 8x8 digits.

Forward and backpropagation end to end without a framework: every layer below is a thin
wrapper that keeps the cache of its ``*_forward`` function for its ``*_backward`` one,
named like the workshop's Keras layers.

    Conv2D(16, 3x3, same) -> ReLU -> MaxPool2D(2)     (N, 16, 4, 4)
    Conv2D(32, 3x3, same) -> ReLU -> MaxPool2D(2)     (N, 32, 2, 2)
    Flatten -> Dense(10) -> softmax cross-entropy     (N, 10)

About 98% test accuracy after 6 epochs, in a few seconds on two CPU cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from neuralab.errors import NeuralabError
from neuralab.mechanics import conv, dense, pooling


class Layer:
    """A layer from a (forward, backward) pair of mechanics functions and its weights.

    ``forward(x, *params, **settings)`` returns (out, cache); ``backward(dout, cache)`` returns
    dx, followed by one gradient per weight, which land in ``grads`` under the weights' names.
    """

    def __init__(self, name, forward, backward, params=None, **settings):
        self.name, self._forward, self._backward, self.settings = name, forward, backward, settings
        self.params = params or {}
        self.grads = {}

    def forward(self, x):
        out, self.cache = self._forward(x, *self.params.values(), **self.settings)
        return out

    def backward(self, dout):
        if not self.params:
            return self._backward(dout, self.cache)
        dx, *grads = self._backward(dout, self.cache)
        self.grads = dict(zip(self.params, grads))
        return dx


def Conv2D(in_channels, filters, kernel=3, stride=1, padding="same", rng=None):
    rng = rng or np.random.default_rng(0)
    fan_in = in_channels * kernel * kernel
    # He initialisation: keeps the variance of ReLU activations steady from layer to layer
    w = rng.normal(0, np.sqrt(2 / fan_in), (filters, in_channels, kernel, kernel))
    params = {"w": w, "b": np.zeros(filters)}
    return Layer("Conv2D", conv.conv2d_forward, conv.conv2d_backward, params, stride=stride, padding=padding)


def Dense(in_features, units, rng=None):
    rng = rng or np.random.default_rng(0)
    w = rng.normal(0, np.sqrt(1 / in_features), (units, in_features))
    return Layer("Dense", dense.dense_forward, dense.dense_backward, {"w": w, "b": np.zeros(units)})


def ReLU():
    return Layer("ReLU", dense.relu_forward, dense.relu_backward)


def MaxPool2D(size=2):
    return Layer("MaxPool2D", pooling.max_pool2d_forward, pooling.max_pool2d_backward, size=size)


def Flatten():
    return Layer("Flatten", dense.flatten_forward, dense.flatten_backward)


@dataclass
class Adam:
    """Adam (Kingma & Ba, 2015): per-weight steps from running means of the gradient and its square."""

    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    t: int = 0
    moments: dict = field(default_factory=dict)

    def step(self, layers):
        self.t += 1
        for i, layer in enumerate(layers):
            for name, p in layer.params.items():
                g = layer.grads[name]
                m, v = self.moments.setdefault((i, name), (np.zeros_like(p), np.zeros_like(p)))
                m[...] = self.beta1 * m + (1 - self.beta1) * g
                v[...] = self.beta2 * v + (1 - self.beta2) * g**2
                m_hat, v_hat = m / (1 - self.beta1**self.t), v / (1 - self.beta2**self.t)
                p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class ScratchCNN:
    """A Sequential model of mechanics layers with sklearn's verbs: fit, predict, score."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10, seed=0):
        rng = np.random.default_rng(seed)
        c, h, w = input_shape
        self.layers = [
            Conv2D(c, 16, 3, rng=rng), ReLU(), MaxPool2D(2),    # (N, 16, H/2, W/2)
            Conv2D(16, 32, 3, rng=rng), ReLU(), MaxPool2D(2),   # (N, 32, H/4, W/4)
            Flatten(), Dense(32 * (h // 4) * (w // 4), num_classes, rng=rng),  # logits (N, 10)
        ]
        self.input_shape, self.seed = input_shape, seed

    def summary(self) -> list[str]:
        """One line per layer: name, output shape, parameter count (like Keras' model.summary())."""
        x, lines, total = np.zeros((1, *self.input_shape)), [], 0
        for layer in self.layers:
            x = layer.forward(x)
            n = sum(p.size for p in layer.params.values())
            total += n
            lines.append(f"{layer.name:<10} {str(x.shape[1:]):<14} {n:>6,}")
        return lines + [f"total parameters: {total:,}"]

    def logits(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def fit(self, x, y, epochs=6, batch_size=32, lr=0.01, log=None):
        """Mini-batch training with Adam on softmax cross-entropy; returns the loss per epoch."""
        rng, opt, history = np.random.default_rng(self.seed), Adam(lr), []
        for epoch in range(epochs):
            order, total = rng.permutation(len(x)), 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                loss, cache = dense.cross_entropy_forward(self.logits(x[idx]), y[idx])
                grad = dense.cross_entropy_backward(cache)
                for layer in reversed(self.layers):  # backpropagation: last layer first
                    grad = layer.backward(grad)
                opt.step(self.layers)
                total += loss * len(idx)
            history.append(total / len(x))
            if log:
                log(f"epoch {epoch + 1}/{epochs}  loss {history[-1]:.4f}")
        return history

    def predict(self, x, batch_size=256):
        return np.concatenate([self.logits(x[i : i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)])

    def score(self, x, y) -> float:
        """Accuracy."""
        return float((self.predict(x) == y).mean())


def load_digits_split(test_fraction=0.25, seed=0):
    """sklearn's bundled 8x8 digits (1,797 images, values 0..16) scaled to 0..1, as NCHW,
    split at random into train and test. Returns x_train, y_train, x_test, y_test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NeuralabError("the digits data set comes with scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    x = (digits.images / 16.0)[:, None]  # (1797, 1, 8, 8)
    y = digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_digits(epochs=6, seed=0, lr=0.01, batch_size=32, log=None) -> dict:
    """Train ScratchCNN on the digits; returns model, summary, history, test accuracy and seconds."""
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed)
    model = ScratchCNN(seed=seed)
    summary = model.summary()
    if log:
        for line in summary:
            log(line)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, lr=lr, log=log)
    seconds = time.perf_counter() - start
    return {
        "model": model,
        "summary": summary,
        "history": history,
        "train_accuracy": model.score(x_train, y_train),
        "test_accuracy": model.score(x_test, y_test),
        "seconds": seconds,
        "n_train": len(x_train),
        "n_test": len(x_test),
    }
