"""`neuralab import`'s conversion check: Keras's outputs against neuralab's, on images in the
range the model takes, with a difference beyond float32's rounding said out loud: as what
Keras's PyTorch backend computes otherwise than TensorFlow where the model has such a layer,
else as a possible conversion fault. Models fitted briefly by Keras 3 (on PyTorch) on real
Fashion-MNIST images."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras


@pytest.fixture(scope="module")
def pixels(fashion_mnist):
    """1,024 real Fashion-MNIST images (uint8 pixels, 28x28x1) and their labels."""
    x = read_idx(file_in(fashion_mnist, "train-images-idx3-ubyte.gz"))[:1024, ..., None]
    return x, read_idx(file_in(fashion_mnist, "train-labels-idx1-ubyte.gz"))[:1024]


def fitted(path, pixels, *layers):
    """A model taking raw pixels, fitted one epoch by Keras, saved at ``path``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*pixels, epochs=1, batch_size=128, verbose=0)
    model.save(path)
    return path


def imported(tmp_path, path, name="run") -> tuple[dict, list[str]]:
    """`neuralab import PATH`: its conversion check and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["import", str(path), "--out", str(tmp_path / name)]) == 0
    check = json.loads((tmp_path / name / "config.json").read_text())["imported"]["conversion_check"]
    return check, [str(w.message) for w in caught if "Keras and neuralab differ" in str(w.message)]


def flipping_the_first_kernel(monkeypatch):
    """A conversion fault: the first convolution's kernel turned 180 degrees, as a converter
    that forgot Keras's (H, W, in, out) layout might."""
    import neuralab.keras

    right = neuralab.keras.build

    def wrong(*args, **kwargs):
        net = right(*args, **kwargs)
        conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        with torch.no_grad():
            conv.weight.copy_(conv.weight.flip(-1, -2))
        return net

    monkeypatch.setattr(neuralab.keras, "build", wrong)


def test_a_wrong_conversion_behind_rescaling_is_caught_on_the_pixels_the_model_takes(tmp_path, pixels, monkeypatch,
                                                                                     capsys):
    """A model starting with Rescaling(1/255) takes pixels 0-255: checked on images in [0, 1),
    it saw near-black ones, on which a flipped kernel changed its outputs by 7e-6, within
    float32's rounding. On the pixels it takes, the fault is far beyond float32's rounding, and said so."""
    # keras-io's image classification from scratch, smaller
    path = fitted(tmp_path / "rescaled.keras", pixels, L.Rescaling(1 / 255),
                  L.Conv2D(16, 3, strides=2, activation="relu"), L.Conv2D(32, 3, strides=2, activation="relu"),
                  L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax"))
    check, said = imported(tmp_path, path, "right")
    assert check["inputs"] == "8 random images of pixels 0-255 x 1", check
    assert check["tolerance"] == 1e-5  # probabilities: float32's rounding of numbers below 1
    assert check["max_abs_difference"] <= check["tolerance"] and not said, (check, said)
    assert "beyond float32's rounding" not in capsys.readouterr().out

    flipping_the_first_kernel(monkeypatch)
    check, said = imported(tmp_path, path, "wrong")
    assert "(beyond float32's rounding: see the warning above)" in capsys.readouterr().out  # the command's line
    assert check["max_abs_difference"] > 10 * 1e-5, check
    assert len(said) == 1 and "a possible conversion fault" in said[0] and str(path) in said[0], said
    assert check["explained_by"] == [], check


def test_the_backends_average_pooling_disagreement_is_named_where_the_model_has_it(tmp_path, pixels, capsys):
    """Keras on PyTorch averages an uneven "same" window's padding in, TensorFlow (and neuralab)
    does not: the difference that makes is above the tolerance and named, with the layer and
    the docs' section, not taken for a conversion fault; 2-wide windows, on which the backends
    agree, are within the tolerance."""
    def head(pool):
        return (L.Rescaling(1 / 255), L.Conv2D(8, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                L.AveragePooling2D(pool, strides=2, padding="same", name="pool"), L.Flatten(), L.Dense(10, activation="softmax"))

    check, said = imported(tmp_path, fitted(tmp_path / "pool3.keras", pixels, *head(3)), "pool3")
    assert check["max_abs_difference"] > check["tolerance"], check
    assert check["explained_by"] == ["layer 'pool' (AveragePooling2D 3x3 at strides 2x2, "
                                     "padding 'same', on 14x14)"], check
    assert len(said) == 1 and "layer 'pool'" in said[0], said
    assert "conversion fault" not in said[0] and "Where Keras's backends disagree" in said[0], said

    check, said = imported(tmp_path, fitted(tmp_path / "pool2.keras", pixels, *head(2)), "pool2")
    assert check["max_abs_difference"] <= check["tolerance"] and not said, (check, said)
    assert "explained_by" not in check

