"""`neuralab import MODEL.keras --data FOLDER --image-size HxW`: a model whose input takes any
size (None, None, C), a fully convolutional net, reads a folder of pictures of several sizes at
the size given, and `neuralab evaluate` reads it again alike; a model of one size refuses
another, naming the option."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from neuralab.cli import main  # noqa: E402
from neuralab.errors import ParameterError  # noqa: E402
from neuralab.training.keras_import import import_keras  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

SIZES = [(16, 16), (24, 20), (12, 18)]  # (height, width), in turn


def digits_of_several_sizes(root, n=240):
    """scikit-learn's real 8x8 handwritten digits, enlarged to the SIZES in turn, as a folder of
    grey PNGs, one sub-folder per digit: pictures gathered from several sources."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (image, label) in enumerate(zip(d.images[:n], d.target[:n])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        h, w = SIZES[i % len(SIZES)]
        picture = Image.fromarray((image * 16).clip(0, 255).astype(np.uint8))
        picture.resize((w, h), Image.Resampling.BILINEAR).save(root / str(label) / f"{i}.png")
    return root


def saved(tmp_path, sides, name):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((*sides, 1), name="image"), keras.layers.Rescaling(1 / 255, name="scale"),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="pool"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / f"{name}.keras")
    return tmp_path / f"{name}.keras"


def test_a_model_of_any_size_reads_the_folder_at_the_size_given(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits")
    model = saved(tmp_path, (None, None), "anysize")
    out = tmp_path / "runs" / "imported"
    # without a size: the pictures differ, and the refusal names the option import has
    assert main(["import", str(model), "--out", str(out), "--data", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "images differ in size" in err and "--image-size" in err and len(err.strip().splitlines()) == 1
    code = main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", "16x16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["image_size"] == [16, 16] and config["data"]["input_shape"] == [1, 16, 16]
    results = json.loads((out / "results.json").read_text())
    assert sum(map(sum, results["confusion_matrix"])) > 0
    # evaluate reads the folder again at the size the run recorded, and finds the same figures
    assert main(["evaluate", str(out)]) == 0, capsys.readouterr().err
    again = json.loads((out / "results.json").read_text())
    assert np.array_equal(again["confusion_matrix"], results["confusion_matrix"])


def test_a_model_of_one_size_refuses_another_and_takes_its_own(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits", 120)
    model = saved(tmp_path, (28, 28), "fixed28")
    out = tmp_path / "runs" / "imported"
    assert main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", "16x16"]) != 0
    err = capsys.readouterr().err
    assert "--image-size" in err and "28x28" in err and not out.exists()
    with pytest.raises(ParameterError, match="takes 28x28 pictures") as refused:
        import_keras(model, out, data=str(folder), image_size=(16, 16))
    assert refused.value.parameter == "image_size"
    # its own size, given, is what it reads the folder at anyway
    written = import_keras(model, out, data=str(folder), image_size=(28, 28))
    assert json.loads((written["run_dir"] / "config.json").read_text())["config"]["image_size"] == [28, 28]


def test_a_size_without_a_folder_is_refused(tmp_path):
    model = saved(tmp_path, (None, None), "anysize")
    with pytest.raises(ParameterError, match="give the folder as") as refused:
        import_keras(model, tmp_path / "runs" / "x", image_size=(16, 16))
    assert refused.value.parameter == "image_size"
