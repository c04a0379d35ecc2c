"""Write the TF-Keras references that tests/test_keras_references.py holds neuralab to.

Where Keras's backends disagree (Keras 3 on PyTorch pads an uneven "same" average pooling by
repeating the edge; TF-Keras 2 averages the Bessel-corrected batch variance into a
BatchNormalization's moving variance on images), TensorFlow's Keras, the workshop's stack, is
the reference. This script runs in a separate environment with TensorFlow and tf_keras (never
neuralab's); it writes small models, the inputs and TensorFlow's outputs:

    /work/tfenv/bin/pip install tensorflow-cpu tf_keras
    /work/tfenv/bin/python tests/data/keras/make_references.py

- ``*_tfk2.h5``: legacy full-model files written by TF-Keras 2 (``model.save("m.h5")``);
- ``*_tfk2.keras``: the .keras format written by TF-Keras 2;
- ``*_k3tf.keras``: .keras files written by Keras 3 on TensorFlow;
- ``weights_only_tfk2.h5``: ``save_weights`` output, which has no architecture;
- ``references.npz``: per model ``NAME__x`` and ``NAME__y`` (inputs and TensorFlow's outputs,
  channels last), and for ``bn_train`` the batches and the statistics after training;
- ``references.json``: the versions that made them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402  Keras 3, on TensorFlow
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402  TF-Keras 2, the Keras that tensorflow.keras was before TF 2.16

HERE = Path(__file__).resolve().parent


def randomize(model, seed: int):
    """Weights far from the initial ones, so that a weight read into the wrong place shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = [rng.uniform(0.5, 1.5, w.shape) if "variance" in v.name else 0.5 * rng.standard_normal(w.shape)
              for v, w in zip(layer.weights, layer.get_weights())]
        layer.set_weights([w.astype("float32") for w in ws])
    return model


def same_cnn(k, size: int):
    """Every padding="same" layer here pads unevenly (the extra row and column go after)."""
    L = k.layers
    return k.Sequential([
        L.InputLayer(input_shape=(size, size, 2)) if k is tf_keras else k.Input((size, size, 2)),
        L.Conv2D(4, 4, padding="same", activation="relu"),          # pads 1 before, 2 after
        L.AveragePooling2D(3, strides=2, padding="same"),           # 8 -> 4 (pads 0, 1); 7 -> 4 (1, 1)
        L.MaxPooling2D(2, strides=1, padding="same"),               # pads 0, 1
        L.AveragePooling2D(2, strides=1, padding="same"),           # pads 0, 1
        L.Conv2D(3, 3, strides=2, padding="same", activation="tanh"),
        L.AveragePooling2D(2, strides=2, padding="same"),
        L.Flatten(),
        L.Dense(5, activation="softmax"),
    ])


def recurrent():
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(6, 2)),
        L.LSTM(4, return_sequences=True),
        L.GRU(3, reset_after=False, return_sequences=True),
        L.GRU(3, return_sequences=True),
        L.SimpleRNN(2),
        L.Dense(1),
    ])


def graph():
    L = tf_keras.layers
    inp = tf_keras.Input((5, 6, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(4, 1)(inp)
    x = L.Concatenate()([L.Add()([a, b]), inp])
    x = L.BatchNormalization()(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inp, L.Dense(2, activation="sigmoid")(x))


def bn_model():
    """BatchNormalization on maps (TF-Keras 2's fused kernel) and on vectors (its plain one)."""
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(6, 6, 2)),
        L.Conv2D(3, 3),
        L.BatchNormalization(momentum=0.8),
        L.GlobalAveragePooling2D(),
        L.Dense(4),
        L.BatchNormalization(momentum=0.8),
        L.Dense(2),
    ])


def strides(size: tuple[int, int]):
    """Strides 1 and 2, valid and same, on odd and even sides at once (H odd, W even), then Flatten -> Dense."""
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(*size, 3)),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),   # 11x10 -> 6x5: pads (1, 1) and (0, 1)
        L.MaxPooling2D(3, strides=2, padding="same"),                   # 6x5 -> 3x3: pads (0, 1) and (1, 1)
        L.Conv2D(3, 2, padding="same", activation="tanh"),              # pads (0, 1)
        L.AveragePooling2D(2, strides=1),
        L.Conv2D(5, 2, strides=2, padding="valid"),                     # 2x2 -> 1x1
        L.Flatten(),
        L.Dense(4, activation="softmax"),
    ])


def strides_valid():
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(9, 8, 2)),
        L.Conv2D(3, 3, strides=2, activation="relu"),                   # 9x8 -> 4x3
        L.MaxPooling2D(2, strides=2),                                   # 4x3 -> 2x1
        L.Flatten(),
        L.Dense(3),
    ])


def recurrent_last():
    """Recurrent layers returning sequences into ones returning the last step only."""
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(5, 3)),
        L.SimpleRNN(4, return_sequences=True),
        L.GRU(4, return_sequences=True),
        L.LSTM(3),
        L.Dense(2),
    ])


def bn_sequence_model():
    """BatchNormalization over the features of a sequence (TF-Keras 2's plain, unfused kernel)."""
    L = tf_keras.layers
    return tf_keras.Sequential([
        L.InputLayer(input_shape=(5, 3)),
        L.Dense(4),
        L.BatchNormalization(momentum=0.7),
        L.GlobalAveragePooling1D(),
        L.Dense(2),
    ])


def main() -> None:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}

    def record(name: str, model, x: np.ndarray, path: str) -> None:
        model.save(HERE / path)
        arrays[f"{name}__x"] = x
        arrays[f"{name}__y"] = np.asarray(model(x, training=False))

    for size in (8, 7):
        x = rng.standard_normal((2, size, size, 2)).astype("float32")
        record(f"same_cnn_{size}_tfk2", randomize(same_cnn(tf_keras, size), size), x, f"same_cnn_{size}_tfk2.h5")
        record(f"same_cnn_{size}_k3tf", randomize(same_cnn(keras, size), size), x, f"same_cnn_{size}_k3tf.keras")
    record("recurrent_tfk2", randomize(recurrent(), 1), rng.standard_normal((3, 6, 2)).astype("float32"),
           "recurrent_tfk2.h5")
    g = randomize(graph(), 2)
    record("graph_tfk2", g, rng.standard_normal((2, 5, 6, 3)).astype("float32"), "graph_tfk2.keras")
    g.save_weights(HERE / "weights_only_tfk2.h5")

    # Training: the model before, the batches, and what SGD in training mode leaves behind.
    model = randomize(bn_model(), 3)
    model.save(HERE / "bn_train_tfk2.h5")
    xs = (1 + 2 * rng.standard_normal((3, 8, 6, 6, 2))).astype("float32")
    ys = rng.standard_normal((3, 8, 2)).astype("float32")
    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    for x, y in zip(xs, ys):
        model.train_on_batch(x, y)
    arrays.update({"bn_train__x": xs, "bn_train__y": ys})
    for i, layer in enumerate(model.layers):
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            arrays[f"bn_train__mean{i}"], arrays[f"bn_train__var{i}"] = (np.asarray(layer.moving_mean),
                                                                         np.asarray(layer.moving_variance))

    # Added later, after every earlier draw from rng, so that the earlier references stay as they were.
    record("strides_11x10_tfk2", randomize(strides((11, 10)), 4), rng.standard_normal((2, 11, 10, 3)).astype("float32"),
           "strides_11x10_tfk2.h5")
    record("strides_valid_tfk2", randomize(strides_valid(), 5), rng.standard_normal((2, 9, 8, 2)).astype("float32"),
           "strides_valid_tfk2.h5")
    record("recurrent_last_tfk2", randomize(recurrent_last(), 6), rng.standard_normal((3, 5, 3)).astype("float32"),
           "recurrent_last_tfk2.h5")
    model = randomize(bn_sequence_model(), 7)
    model.save(HERE / "bn_seq_train_tfk2.h5")
    xs = (1 + 2 * rng.standard_normal((3, 8, 5, 3))).astype("float32")
    ys = rng.standard_normal((3, 8, 2)).astype("float32")
    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    for x, y in zip(xs, ys):
        model.train_on_batch(x, y)
    arrays.update({"bn_seq_train__x": xs, "bn_seq_train__y": ys,
                   "bn_seq_train__mean": np.asarray(model.layers[1].moving_mean),
                   "bn_seq_train__var": np.asarray(model.layers[1].moving_variance),
                   "bn_seq_train__after_x": xs[0], "bn_seq_train__after_y": np.asarray(model(xs[0], training=False))})

    np.savez_compressed(HERE / "references.npz", **{k: np.asarray(v, dtype="float32") for k, v in arrays.items()})
    (HERE / "references.json").write_text(json.dumps(
        {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "keras": keras.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
