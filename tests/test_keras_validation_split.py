"""A learner's Keras script's fit(validation_split=...) is the run's val_fraction where none is
given: not on the command line (`--val-fraction`, a recipe's included), not in Python
(`ClassifierConfig(val_fraction=...)`), at the default's value too. Only the share is taken:
neuralab draws its split with the seed, for a folder and a named dataset alike. Real data:
scikit-learn's handwritten digits as a folder, the first Fashion-MNIST images."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace

import pytest
from helpers import digits_folder, idx_subset

from neuralab.cli import main
from neuralab.data import VAL_FRACTION, load_image_data
from neuralab.training.config import ClassifierConfig, TrainConfig, given_fields

os.environ.setdefault("KERAS_BACKEND", "torch")

# the learner's script: its own arrays, fit() holding out the last quarter of them
SCRIPT = """
import numpy as np
import keras

model = keras.Sequential([keras.Input(({side}, {side}, 1)), keras.layers.Flatten(name="flat"),
                          keras.layers.Dense(10, activation="softmax", name="scores")], name="tiny")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.zeros((16, {side}, {side}, 1), "float32")
y = np.arange(16) % 10
model.fit(x, y, epochs=1, {validation})
"""
SHARE = 0.25
SAID = "its share, drawn with the seed, not Keras's last samples"


def _script(folder, side: int = 8, validation: str = f"validation_split={SHARE}"):
    pytest.importorskip("keras")  # the test extra installs Keras 3 (on PyTorch)
    path = folder / "tiny.py"
    path.write_text(SCRIPT.format(side=side, validation=validation))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("split") / "digits", 200)


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    return _script(tmp_path_factory.mktemp("code"))


def _record(run) -> dict:
    return json.loads((run / "config.json").read_text())


def _train(script, data, run, *options) -> dict:
    argv = ["train", "--model", script, "--data", data, "--threads", "1", "--out", run, *options]
    assert main([str(a) for a in argv]) == 0
    return _record(run)


def _sizes(record: dict) -> tuple[int, int, int]:
    return record["data"]["train"], record["data"]["val"], record["data"]["test"]


def _split(data, val_fraction: float, **options) -> tuple[int, int, int]:
    loaded = load_image_data(str(data), val_fraction=val_fraction, **options)
    return len(loaded.train), len(loaded.val), len(loaded.test)


def test_fits_validation_split_is_the_runs_val_fraction(script, digits, tmp_path, capsys):
    record = _train(script, digits, tmp_path / "run")
    assert record["config"]["val_fraction"] == SHARE
    assert _sizes(record) == _split(digits, SHARE) != _split(digits, VAL_FRACTION)
    assert f"; val_fraction {SHARE:g} (fit()'s validation_split: {SAID})\n" in capsys.readouterr().out


def test_an_option_typed_wins_at_the_defaults_value_too(script, digits, tmp_path, capsys):
    record = _train(script, digits, tmp_path / "typed", "--val-fraction", str(VAL_FRACTION))
    assert record["config"]["val_fraction"] == VAL_FRACTION == 0.1
    assert _sizes(record) == _split(digits, VAL_FRACTION)
    assert "validation_split" not in capsys.readouterr().out  # the console takes nothing from it


def test_a_recipes_val_fraction_is_given(script, digits, tmp_path):
    record = _train(script, digits, tmp_path / "fast", "--recipe", "fast", "--epochs", "1")
    assert record["config"]["val_fraction"] == 0.0 and record["data"]["val"] == 0


def test_train_classifier_takes_it_where_its_config_names_none(script, digits, tmp_path):
    from neuralab import train_classifier

    def trained(config, name) -> float:
        train_classifier(config, out=tmp_path / name, verbose=False)
        return _record(tmp_path / name)["config"]["val_fraction"]

    made = dict(model=str(script), data=str(digits), train=TrainConfig(threads=1))
    assert trained(ClassifierConfig(**made), "left") == SHARE
    assert trained(ClassifierConfig(**made, val_fraction=VAL_FRACTION), "named") == VAL_FRACTION
    later = ClassifierConfig(**made)
    later.val_fraction = VAL_FRACTION  # set after it was made: given too
    assert trained(later, "later") == VAL_FRACTION


def test_a_named_dataset_takes_the_same_share(fashion_mnist, tmp_path):
    data = idx_subset(fashion_mnist, tmp_path / "fashion-mnist", 200, 40)
    record = _train(_script(tmp_path, side=28), "fashion-mnist", tmp_path / "run", "--data-dir", data)
    assert record["config"]["val_fraction"] == SHARE
    assert _sizes(record) == _split("fashion-mnist", SHARE, data_dir=data) == (150, 50, 40)


@pytest.mark.parametrize("validation, kept", [
    ("validation_split=0.0", None),  # Keras's default: says nothing
    ("validation_split=1.5", "validation_split=1.5 (the run holds out `val_fraction` of `data`)"),
    # beside validation_data Keras ignores validation_split
    ("validation_split=0.2, validation_data=(x, y)", "validation_split=0.2 (the run holds out `val_fraction` of "
                                                     "`data`), validation_data (the run holds out `val_fraction`"),
])
def test_no_share_is_taken_where_keras_would_hold_out_none(tmp_path, validation, kept):
    from neuralab.training.source import resolve

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = resolve(str(_script(tmp_path, validation=validation)))
    (said,) = [str(w.message) for w in caught if "model.fit()" in str(w.message)]
    assert "val_fraction" not in source.compile and "as an image classifier's" not in said
    assert kept is None or f"not taken: {kept}" in said


def test_a_classifierconfig_says_whether_its_val_fraction_was_given():
    assert "val_fraction" in given_fields(ClassifierConfig(val_fraction=VAL_FRACTION))
    assert "val_fraction" not in given_fields(ClassifierConfig(data="mnist"))
    # made with every field, it cannot say: one at its default is taken as left out
    assert "val_fraction" not in given_fields(replace(ClassifierConfig(val_fraction=VAL_FRACTION), data="mnist"))
    assert "val_fraction" in given_fields(replace(ClassifierConfig(), val_fraction=0.2))


@pytest.mark.parametrize("typed", [[], ["--val-fraction", str(VAL_FRACTION)]], ids=["left-out", "typed-default"])
def test_compare_keeps_a_typed_val_fraction_for_every_run(script, digits, tmp_path, typed):
    argv = ["compare", "--models", script, "--seeds", "1", "--data", digits, "--threads", "1", "--epochs", "1",
            "--out", tmp_path / "cmp", *typed]
    assert main([str(a) for a in argv]) == 0
    (run,) = [folder for folder in (tmp_path / "cmp").iterdir() if folder.is_dir()]
    assert _record(run)["config"]["val_fraction"] == (VAL_FRACTION if typed else SHARE)
