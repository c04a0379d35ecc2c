"""`neuralab import MODEL.keras --data FOLDER`: a saved model's input is fixed, so a folder of
pictures of another size (scikit-learn's 8x8 handwritten digits, for a model of 28x28) is read
at the model's size and colours, and `neuralab evaluate` reads it again alike."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import digits_folder  # noqa: E402

from neuralab.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_a_folder_of_smaller_pictures_is_read_at_the_models_size(tmp_path, capsys):
    digits = digits_folder(tmp_path / "digits", 300)  # 8x8 grey PNGs, one folder per digit
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1), name="image"), keras.layers.Rescaling(1 / 255, name="scale"),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.MaxPooling2D(name="pool"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name="digits28")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "digits28.keras")
    out = tmp_path / "runs" / "imported"
    code = main(["import", str(tmp_path / "digits28.keras"), "--out", str(out), "--data", str(digits)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "test accuracy" in captured.out
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["image_size"] == [28, 28] and config["config"]["color"] == "grayscale"
    assert config["data"]["input_shape"] == [1, 28, 28]
    results = json.loads((out / "results.json").read_text())
    assert sum(map(sum, results["confusion_matrix"])) > 0
    # evaluate reads the folder again at the size the run recorded, and finds the same figures
    assert main(["evaluate", str(out)]) == 0, capsys.readouterr().err
    again = json.loads((out / "results.json").read_text())
    assert np.array_equal(again["confusion_matrix"], results["confusion_matrix"])
