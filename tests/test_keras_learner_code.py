"""Keras code as a learner writes it after the workshop, fed to neuralab the ways docs/keras.md
gives: an ELU layer (beside the LeakyReLU the docs had), a Normalization layer adapted to the
training images (refused, saying what computes the same, which then imports and predicts as
Keras), and the training-only settings (regularizers, constraints, initializers) that a
conversion does not keep, listed so that a trainer can say so."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from helpers import idx_subset

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.keras import convert, read

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

TOL = 1e-5


@pytest.fixture(scope="module")
def garments(fashion_mnist) -> np.ndarray:
    """The first 64 real Fashion-MNIST training images, (64, 28, 28, 1) uint8, as Keras takes them."""
    return read_idx(file_in(fashion_mnist, "train-images-idx3-ubyte.gz"))[:64, :, :, None]


def keras_predict(model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model.predict(x.astype("float32"), verbose=0))


def neuralab_predict(source, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return convert(source).eval()(torch.from_numpy(x.astype("float32").transpose(0, 3, 1, 2).copy())).numpy()


def test_an_elu_layer_converts_predicts_and_trains_as_keras(tmp_path, garments, fashion_mnist, capsys):
    """keras.layers.ELU(alpha=...) was refused as no layer neuralab converts, while the
    activation="elu" it stands for converted."""
    code = tmp_path / "elu_cnn.py"
    code.write_text("import keras\nfrom keras.layers import *\nfrom keras.models import Sequential\n"
                    "model = Sequential()\n"
                    "model.add(Conv2D(8, (3, 3), input_shape=(28, 28, 1)))\n"
                    "model.add(ELU(alpha=0.5))\n"
                    "model.add(MaxPooling2D((2, 2)))\n"
                    "model.add(Flatten())\n"
                    "model.add(Dense(16))\n"
                    "model.add(LeakyReLU(negative_slope=0.1))\n"
                    "model.add(Dense(10, activation='softmax'))\n"
                    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n")
    model = keras.models.Sequential([keras.Input((28, 28, 1)), L.Conv2D(8, 3), L.ELU(alpha=0.5), L.MaxPooling2D(),
                                     L.Flatten(), L.Dense(16), L.ELU(), L.Dense(10, activation="softmax")])
    x = garments / 255
    want = keras_predict(model, x)
    model.save(tmp_path / "elu.keras")
    model.save(tmp_path / "elu.h5")
    for source in (model, tmp_path / "elu.keras", tmp_path / "elu.h5"):
        assert np.abs(neuralab_predict(source, x) - want).max() <= TOL, source

    data = idx_subset(fashion_mnist, tmp_path / "fashion", 256, 64)
    assert main(["train", "--model", str(code), "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "1",
                 "--threads", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    spec = json.loads((tmp_path / "run" / "model.json").read_text())["source"]["spec"]
    assert [e["class"] for e in spec["layers"]].count("ELU") == 1
    assert main(["evaluate", str(tmp_path / "run")]) == 0, capsys.readouterr().err  # rebuilt from the stored spec


def test_normalization_is_refused_saying_what_computes_the_same(tmp_path, garments, capsys):
    """A Normalization layer adapted to the training images is refused in one line that names
    the Rescaling computing the same; that Rescaling, the other weights kept, imports and
    predicts what the Normalization model predicts."""
    norm = L.Normalization()
    norm.adapt(garments.astype("float32"))

    def model(first):
        return keras.Sequential([keras.Input((28, 28, 1)), first, L.Conv2D(8, 3, activation="relu"),
                                 L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")])

    original = model(norm)
    original.save(tmp_path / "norm.keras")
    code = main(["import", str(tmp_path / "norm.keras"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "'normalization'" in err and "Rescaling(scale=1 / sqrt(variance), offset=-mean / sqrt(variance))" in err
    assert not (tmp_path / "run").exists()

    mean, variance = (keras.ops.convert_to_numpy(v) for v in (norm.mean, norm.variance))
    scale = 1 / np.sqrt(variance.ravel())
    fixed = model(L.Rescaling(scale.tolist(), offset=(-mean.ravel() * scale).tolist()))
    fixed.set_weights(original.get_weights()[3:])  # the Normalization's mean, variance and count left out
    fixed.save(tmp_path / "fixed.keras")
    want = keras_predict(original, garments)
    assert np.abs(neuralab_predict(tmp_path / "fixed.keras", garments) - want).max() <= TOL


def test_training_only_settings_are_listed_by_every_reader(tmp_path):
    """A regularizer, a constraint or an initializer other than Keras's default is no part of
    the spec (it matters only in training); each reader lists them, one per field, so that
    neuralab's trainer can say it trains without them. Keras's defaults list nothing."""
    from keras import constraints, regularizers

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              L.Conv2D(8, 3, activation="relu", kernel_regularizer=regularizers.l2(1e-3),
                                       kernel_initializer="he_normal", name="conv"),
                              L.BatchNormalization(momentum=0.9, name="bn"), L.Flatten(),
                              L.Dense(10, activation="softmax", kernel_constraint=constraints.max_norm(3.0),
                                      name="out")])
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    want = ["layer 'conv': kernel_initializer HeNormal()", "layer 'conv': kernel_regularizer L2(l2=0.001)",
            "layer 'out': kernel_constraint MaxNorm(max_value=3, axis=0)"]
    for source in (model, tmp_path / "m.keras", tmp_path / "m.h5"):
        assert sorted(read(source).training_only) == want, source

    plain = keras.Sequential([keras.Input((8, 1)), L.LSTM(4, return_sequences=True), L.GRU(4),
                              L.Dense(4), L.BatchNormalization(), L.Dense(1)])
    assert read(plain).training_only == []


def test_what_neuralab_does_not_train_with_is_said_and_global_clipnorm_is_kept(tmp_path, fashion_mnist):
    """Keras code that asks for a regularizer, an initializer, Nesterov momentum, label smoothing
    and a global gradient norm, trained by `train --model`: the run records global_clipnorm as
    grad_clip, the one it can keep, and one warning line each says what is not kept."""
    code = tmp_path / "asks_more.py"
    code.write_text("import keras\nfrom keras import layers as L, regularizers\n"
                    "model = keras.Sequential([keras.Input((28, 28, 1)),\n"
                    "    L.Conv2D(8, 3, activation='relu', kernel_regularizer=regularizers.l2(1e-3),\n"
                    "             kernel_initializer='he_normal', name='conv'),\n"
                    "    L.Flatten(), L.Dense(10, activation='softmax')])\n"
                    "model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True,\n"
                    "                                             global_clipnorm=1.5),\n"
                    "              loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))\n")
    data = idx_subset(fashion_mnist, tmp_path / "fashion", 256, 64)
    with pytest.warns(UserWarning) as caught:
        assert main(["train", "--model", str(code), "--data", "fashion-mnist", "--data-dir", str(data),
                     "--epochs", "1", "--threads", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0
    warned = [str(w.message) for w in caught]
    assert any("kernel_regularizer L2(l2=0.001)" in w and "kernel_initializer HeNormal()" in w and "not kept" in w
               for w in warned), warned
    assert any("nesterov=True" in w and "not kept" in w for w in warned), warned
    assert any("label_smoothing=0.1" in w and "not kept" in w for w in warned), warned
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["optimizer"], train["momentum"], train["grad_clip"]) == ("sgd", 0.9, 1.5)

    # Keras's defaults, set or not, say nothing
    plain = tmp_path / "plain.py"
    plain.write_text("import keras\nfrom keras import layers as L\n"
                     "model = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, 'softmax')])\n"
                     "model.compile(optimizer=keras.optimizers.Adam(beta_1=0.9, epsilon=1e-7), "
                     "loss='sparse_categorical_crossentropy')\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--model", str(plain), "--data", "fashion-mnist", "--data-dir", str(data),
                     "--epochs", "1", "--threads", "1", "--quiet", "--out", str(tmp_path / "plain-run")]) == 0
    assert not [w for w in caught if "not kept" in str(w.message)]
