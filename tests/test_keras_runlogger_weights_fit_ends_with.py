"""RunLogger holds the weights Keras's fit ends with: an optimizer's moving average of them
(Adam(use_ema=True), which fit sets after the last epoch) counts as the last epoch's, and
results.json says what they are; a callback failing at the end of fit leaves the run finished."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import keras_digits  # noqa: E402
from neuralab import runs  # noqa: E402
from neuralab.keras import build  # noqa: E402
from neuralab.training import RunLogger  # noqa: E402
from neuralab.training.checkpoint import load_weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def linear(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="digit"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name="linear")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def the_runs_predictions(out, x):
    meta = runs.Run(out).read(runs.MODEL)
    net = build(meta["source"]["spec"], logits=meta["source"]["logits"])
    epoch = load_weights(out / runs.WEIGHTS, net)["epoch"]
    with torch.inference_mode():
        return epoch, torch.softmax(net.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())), dim=1).numpy()


def test_the_optimizers_moving_average_counts_as_the_last_epochs(tmp_path):
    x, y = keras_digits()
    model = linear(keras.optimizers.Adam(0.01, use_ema=True))
    out = tmp_path / "runs" / "digits-ema"
    model.fit(x[:1500], y[:1500], epochs=3, verbose=0, callbacks=[RunLogger(out=out, test=(x[1500:], y[1500:]))])
    results = runs.Run(out).read(runs.RESULTS)
    assert results["best_epoch"] == 3
    assert "moving average" in results["weights"] and "use_ema=True" in results["weights"]
    assert "best epoch 3 of 3" in (out / runs.REPORT).read_text()
    # the run's weights are the averaged ones the learner's model holds, and its test figures theirs
    epoch, got = the_runs_predictions(out, x[1500:])
    assert epoch == 3
    assert np.abs(got - model.predict(x[1500:], verbose=0)).max() <= 1e-5
    assert results["test_accuracy"] == pytest.approx(model.evaluate(x[1500:], y[1500:], verbose=0)[1], abs=1e-6)


def test_an_epochs_weights_restored_after_the_average_are_that_epochs(tmp_path):
    x, y = keras_digits()
    model = linear(keras.optimizers.Adam(0.05, use_ema=True))
    out = tmp_path / "runs" / "digits-ema-es"
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    model.fit(x[:1500], y[:1500], epochs=8, validation_split=0.2, verbose=0, callbacks=[RunLogger(out=out), stop])
    results = runs.Run(out).read(runs.RESULTS)
    restored = stop.best_epoch + 1
    assert restored < results["epochs_run"]  # the case at hand: an earlier epoch's weights set over the average
    assert results["best_epoch"] == restored and "weights" not in results
    epoch, got = the_runs_predictions(out, x[1500:])
    assert epoch == restored
    assert np.abs(got - model.predict(x[1500:], verbose=0)).max() <= 1e-5


def test_a_run_without_an_average_says_nothing_of_it(tmp_path):
    x, y = keras_digits()
    out = tmp_path / "runs" / "digits"
    linear("adam").fit(x[:600], y[:600], epochs=2, verbose=0, callbacks=[RunLogger(out=out)])
    results = runs.Run(out).read(runs.RESULTS)
    assert results["best_epoch"] == 2 and "weights" not in results


class Fails(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        raise RuntimeError("the learner's callback failed")


def test_a_callback_failing_at_the_end_of_fit_leaves_the_run_finished(tmp_path):
    x, y = keras_digits()
    model = linear("adam")
    out = tmp_path / "runs" / "digits"
    with pytest.raises(RuntimeError, match="the learner's callback failed"):
        model.fit(x[:600], y[:600], epochs=2, verbose=0, callbacks=[Fails(), RunLogger(out=out)])
    run = runs.Run(out)
    assert run.status() is runs.Status.FINISHED
    assert run.read(runs.RESULTS)["best_epoch"] == 2
