"""An option given at its default's value wins over a Keras model's compile() and fit()
settings as any other given option does: typed on the command line (`--epochs 10` over
fit(epochs=3)), named in a TrainConfig, or brought by a recipe. Only the options left out take
the model's. Real data: scikit-learn's handwritten digits as a folder, the Seattle weather."""

from __future__ import annotations

import copy
import json
import os
import pickle
from dataclasses import replace

import pytest
from helpers import digits_folder

from neuralab.cli import main
from neuralab.training.config import TrainConfig, given_fields, replaced, with_compile

os.environ.setdefault("KERAS_BACKEND", "torch")

# A learner's script: compile() with SGD and fit() with its own epochs and batch size, on
# arrays of its own (neuralab reads the model and the settings; fit() trains nothing)
CLASSIFIER = """
import numpy as np
import keras

model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(name="flat"),
                          keras.layers.Dense(10, activation="softmax", name="scores")], name="tiny")
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
              loss="sparse_categorical_crossentropy")
x = np.zeros((16, 8, 8, 1), "float32")
y = np.arange(16) % 10
model.fit(x, y, epochs=3, batch_size=16)
"""

FORECASTER = """
import numpy as np
import keras

model = keras.Sequential([keras.Input((6, 1)), keras.layers.LSTM(4, name="lstm"),
                          keras.layers.Dense(1, name="next")], name="tiny_lstm")
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
model.fit(np.zeros((8, 6, 1), "float32"), np.zeros((8, 1), "float32"), epochs=1, batch_size=16)
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("typed") / "digits", 200)


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    pytest.importorskip("keras")  # the test extra installs Keras 3 (on PyTorch)
    path = tmp_path_factory.mktemp("code") / "tiny.py"
    path.write_text(CLASSIFIER)
    return path


def _trained(run) -> dict:
    return json.loads((run / "config.json").read_text())["config"]["train"]


def _train(script, digits, run, *options) -> dict:
    argv = ["train", "--model", script, "--data", digits, "--threads", "1", "--out", run, "--quiet", *options]
    assert main([str(a) for a in argv]) == 0
    return _trained(run)


def test_options_typed_at_their_defaults_win_over_compile_and_fit(script, digits, tmp_path):
    d = TrainConfig()
    typed = _train(script, digits, tmp_path / "typed", "--epochs", d.epochs, "--batch-size", d.batch_size,
                   "--optimizer", d.optimizer, "--lr", d.lr)
    assert (typed["epochs"], typed["batch_size"], typed["optimizer"], typed["lr"]) == (10, 128, "adam", 0.003)
    assert typed["momentum"] == 0.0  # compile()'s momentum is its SGD's, which the run does not train with
    history = (tmp_path / "typed" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["epoch"] == 10


def test_options_left_out_take_compile_and_fit(script, digits, tmp_path):
    left = _train(script, digits, tmp_path / "left")
    assert (left["epochs"], left["batch_size"], left["optimizer"], left["lr"], left["momentum"]) == \
        (3, 16, "sgd", 0.05, 0.9)


def test_a_recipes_settings_are_given(script, digits, tmp_path):
    """--recipe fast's batch size, 128 as the library's default, wins over fit()'s 16."""
    fast = _train(script, digits, tmp_path / "fast", "--recipe", "fast", "--epochs", "1")
    assert (fast["batch_size"], fast["epochs"], fast["lr"]) == (128, 1, 0.007)
    assert fast["optimizer"] == "sgd"  # no recipe or option names it: compile()'s


def test_train_classifier_keeps_what_its_trainconfig_names(script, digits, tmp_path):
    from neuralab import ClassifierConfig, train_classifier

    named = ClassifierConfig(model=str(script), data=str(digits), train=TrainConfig(epochs=10, threads=1))
    train_classifier(named, out=tmp_path / "named", verbose=False)
    assert (_trained(tmp_path / "named")["epochs"], _trained(tmp_path / "named")["batch_size"]) == (10, 16)
    later = ClassifierConfig(model=str(script), data=str(digits), train=TrainConfig(threads=1))
    later.train.batch_size = 128  # set after it was made: given too
    later.train.epochs = 1
    train_classifier(later, out=tmp_path / "later", verbose=False)
    assert (_trained(tmp_path / "later")["epochs"], _trained(tmp_path / "later")["batch_size"]) == (1, 128)


def test_compare_keeps_the_options_given_for_every_seed(script, digits, tmp_path):
    assert main([str(a) for a in ("compare", "--models", script, "--seeds", "1", "--data", digits, "--threads", "1",
                                   "--epochs", "1", "--batch-size", "128", "--out", tmp_path / "cmp")]) == 0
    (run,) = [folder for folder in (tmp_path / "cmp").iterdir() if folder.is_dir()]
    assert (_trained(run)["epochs"], _trained(run)["batch_size"]) == (1, 128)


FORECAST = ("--data", "seattle-weather", "--target", "temp_max", "--lookback", "6", "--horizon", "1",
            "--baselines", "persistence", "--backtest-folds", "1", "--threads", "1", "--quiet")


def test_forecast_options_typed_at_the_series_defaults_win(tmp_path):
    pytest.importorskip("keras")
    from neuralab.forecasting.config import series_train_config

    (tmp_path / "lstm.py").write_text(FORECASTER)
    t = series_train_config()
    base = ["forecast", "--model", tmp_path / "lstm.py", *FORECAST]
    assert main([str(a) for a in (*base, "--batch-size", t.batch_size, "--lr", t.lr, "--out", tmp_path / "typed")]) == 0
    typed = _trained(tmp_path / "typed")
    assert (typed["batch_size"], typed["lr"], typed["epochs"]) == (64, 0.003, 1)
    assert main([str(a) for a in (*base, "--out", tmp_path / "left")]) == 0
    left = _trained(tmp_path / "left")
    assert (left["batch_size"], left["lr"], left["epochs"]) == (16, 0.01, 1)


def test_run_forecast_keeps_what_its_trainconfig_names(tmp_path):
    pytest.importorskip("keras")
    from neuralab.forecasting import ForecastConfig, WindowConfig, run_forecast
    from neuralab.forecasting.config import series_train_config

    (tmp_path / "lstm.py").write_text(FORECASTER)
    config = ForecastConfig(data="seattle-weather", target="temp_max", windows=WindowConfig(6, 1, transform="auto"),
                            baselines=["persistence"], backtest_folds=1,
                            train=series_train_config(batch_size=64, threads=1))
    run_forecast(config, out=tmp_path / "run", verbose=False, model=str(tmp_path / "lstm.py"))
    trained = _trained(tmp_path / "run")
    assert (trained["batch_size"], trained["lr"]) == (64, 0.01)  # named: the series default; left out: compile()'s


def test_what_a_trainconfig_gives_survives_copies_and_says_what_it_cannot_tell():
    settings = {"epochs": 3, "batch_size": 16, "lr": 0.05}
    named = TrainConfig(epochs=10)
    assert given_fields(named) == {"epochs"}
    assert given_fields(copy.deepcopy(named)) == given_fields(pickle.loads(pickle.dumps(named))) == {"epochs"}
    assert given_fields(replaced(named, seed=2)) == {"epochs", "seed"}
    assert with_compile(named, settings) == TrainConfig(epochs=10, batch_size=16, lr=0.05)
    # made with every field, it cannot say which its maker chose: a field at its default is left out
    every = replace(named, seed=2)
    assert given_fields(every) == {"seed"} and with_compile(every, settings).epochs == 3
    assert with_compile(TrainConfig(), settings, given={"lr"}) == TrainConfig(epochs=3, batch_size=16)
