"""The zoo's models in TF-Keras, layer for layer, timed for one epoch: the TF-Keras column of
bench/bench_zoo.py, which runs this file with the Python of an environment that has
TensorFlow (TensorFlow is no dependency of neuralab and never imported by it).

    TFPYTHON bench/_keras_zoo.py MODEL DATA.npz [--steps N] [--threads N] [--precision mixed_bfloat16]

DATA.npz holds x (N, H, W, C) float32, already normalised as neuralab's trainer normalises
it, and y (N,) int64. Prints one JSON line: the epoch's seconds, the images it trained on,
the trainable parameter count (checked against neuralab's by the caller) and the versions.
The model is the neuralab model's layer list written in Keras, with the same widths, kernels,
strides, activations, pooling, batch normalisation and dropout; "same" padding where
PyTorch pads K // 2. Adam, batch 128, sparse cross-entropy on the logits, as neuralab trains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _keras_clock import EpochClock  # noqa: E402
from tensorflow import keras  # noqa: E402
from tensorflow.keras import layers as L  # noqa: E402

BATCH = 128


def mlp(shape, classes):
    net = [L.Flatten()]
    for width in (256, 128, 100):
        net += [L.Dense(width, activation="relu"), L.Dropout(0.2)]
    return net + [L.Dense(classes)]


def cnn(shape, classes):
    net = []
    for filters in (32, 64):
        net += [L.Conv2D(filters, 3, padding="same", activation="relu"), L.BatchNormalization(epsilon=1e-5),
                L.MaxPool2D(2, 2, padding="same"), L.Dropout(0.1)]
    return net + [L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.3), L.Dense(classes)]


def lenet5(shape, classes):
    pad_h, pad_w = max(0, 32 - shape[0]), max(0, 32 - shape[1])
    return [L.ZeroPadding2D(((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))),
            L.Conv2D(6, 5, activation="tanh"), L.AveragePooling2D(2, 2),
            L.Conv2D(16, 5, activation="tanh"), L.AveragePooling2D(2, 2),
            L.Conv2D(120, 5, activation="tanh"), L.Flatten(),
            L.Dense(84, activation="tanh"), L.Dense(classes)]


def alexnet(shape, classes):  # the small-input variant (neuralab/models/alexnet.py)
    def conv(filters, kernel):
        return L.Conv2D(filters, kernel, padding="same", activation="relu")

    return [conv(64, 5), L.MaxPool2D(3, 2, padding="same"),
            conv(192, 5), L.MaxPool2D(3, 2, padding="same"),
            conv(384, 3), conv(256, 3), conv(256, 3), L.MaxPool2D(3, 2, padding="same"),
            L.Flatten(), L.Dropout(0.5), L.Dense(1024, activation="relu"),
            L.Dropout(0.5), L.Dense(1024, activation="relu"), L.Dense(classes)]


def vgg16(shape, classes):  # configuration D, small-input variant: pools round up
    net = []
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        net.append(L.MaxPool2D(2, 2, padding="same") if v == "M" else L.Conv2D(v, 3, padding="same", activation="relu"))
    return net + [L.Flatten(), L.Dense(512, activation="relu"), L.Dropout(0.5),
                  L.Dense(512, activation="relu"), L.Dropout(0.5), L.Dense(classes)]


def googlenet(shape, classes):  # the small-input variant, functional: Inception modules branch
    def conv_bn(x, filters, kernel):
        x = L.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
        return L.ReLU()(L.BatchNormalization(epsilon=1e-3)(x))

    def inception(x, c1, c3r, c3, c5r, c5, pool):
        b1 = conv_bn(x, c1, 1)
        b2 = conv_bn(conv_bn(x, c3r, 1), c3, 3)
        b3 = conv_bn(conv_bn(x, c5r, 1), c5, 3)
        b4 = conv_bn(L.MaxPool2D(3, 1, padding="same")(x), pool, 1)
        return L.Concatenate()([b1, b2, b3, b4])

    inputs = keras.Input(shape)
    x = conv_bn(inputs, 64, 3)
    x = L.MaxPool2D(3, 2, padding="same")(x)
    x = conv_bn(conv_bn(x, 64, 1), 192, 3)
    x = inception(x, 64, 96, 128, 16, 32, 32)
    x = inception(x, 128, 128, 192, 32, 96, 64)
    x = L.MaxPool2D(3, 2, padding="same")(x)
    for args in ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
                 (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)):
        x = inception(x, *args)
    x = L.MaxPool2D(2, 2, padding="same")(x)
    x = inception(x, 256, 160, 320, 32, 128, 128)
    x = inception(x, 384, 192, 384, 48, 128, 128)
    x = L.Dropout(0.4)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, L.Dense(classes)(x))


MODELS = {f.__name__: f for f in (mlp, cnn, lenet5, alexnet, vgg16, googlenet)}


def build(name: str, shape, classes: int, precision: str = "float32") -> keras.Model:
    keras.mixed_precision.set_global_policy(precision)
    net = MODELS[name](shape, classes)
    model = net if isinstance(net, keras.Model) else keras.Sequential([keras.Input(shape), *net])
    if precision != "float32":  # the logits in float32 for the loss, as Keras's mixed-precision guide does
        model = keras.Model(model.inputs, L.Activation("linear", dtype="float32")(model.outputs[0]))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("data")
    parser.add_argument("--steps", type=int, default=0, help="train on the first N batches only (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow's intra-op threads (0: its choice)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="Keras's dtype policy: mixed_bfloat16 computes in bfloat16 with float32 weights")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    data = np.load(args.data)
    x, y = data["x"], data["y"]
    if args.steps:
        x, y = x[:args.steps * BATCH], y[:args.steps * BATCH]
    model = build(args.model, x.shape[1:], args.classes, args.precision)
    # Warm-up on a full batch and a batch of the epoch's last size, so that the timed epoch
    # traces nothing (Keras traces once per batch shape).
    last = len(x) % BATCH or BATCH
    warm = np.concatenate([np.arange(BATCH), np.arange(last)])
    model.fit(x[warm], y[warm], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    times = []
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0, callbacks=[EpochClock(times)])
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    print(json.dumps({"seconds": times[0], "images": len(x), "params": trainable, "precision": args.precision,
                      "tensorflow": tf.__version__, "keras": keras.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
