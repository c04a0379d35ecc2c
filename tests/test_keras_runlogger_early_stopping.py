"""RunLogger beside EarlyStopping(restore_best_weights=True): the run keeps the weights the
learner's model ends fit with, in any order of the callbacks (a History of the learner's own
first among them included), and names their epoch."""

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


@pytest.mark.parametrize("order", ["stop logger", "logger stop", "history stop logger"],
                         ids=["early-stopping-first", "runlogger-first", "own-history-first"])
def test_the_run_keeps_the_restored_weights_and_names_their_epoch(tmp_path, order):
    x, y = keras_digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="digit"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name="mlp")
    # a learning rate this high overshoots after one epoch: val_loss rises, and Keras goes back to epoch 1
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = tmp_path / "runs" / "digits-es"
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    logger = RunLogger(out=out, test=(x[1500:], y[1500:]))
    # a History listed by the learner (to plot it) is fit's own: Keras appends none after the others then
    given = {"stop": stop, "logger": logger, "history": keras.callbacks.History()}
    model.fit(x[:1500], y[:1500], epochs=8, validation_split=0.2, verbose=0,
              callbacks=[given[name] for name in order.split()])
    restored = stop.best_epoch + 1
    run = runs.Run(out)
    results = run.read(runs.RESULTS)
    assert stop.stopped_epoch > 0 and restored < results["epochs_run"]  # the case at hand: earlier weights restored
    assert results["best_epoch"] == restored
    assert f"best epoch {restored} of {results['epochs_run']}" in (out / runs.REPORT).read_text()
    # the run's weights are the learner's model's, and its test figures are Keras's evaluate's
    meta = run.read(runs.MODEL)
    net = build(meta["source"]["spec"], logits=meta["source"]["logits"])
    assert load_weights(out / runs.WEIGHTS, net)["epoch"] == restored
    with torch.inference_mode():
        got = torch.softmax(net.eval()(torch.from_numpy(x[1500:].transpose(0, 3, 1, 2).copy())), dim=1).numpy()
    assert np.abs(got - model.predict(x[1500:], verbose=0)).max() <= 1e-5
    loss, accuracy = model.evaluate(x[1500:], y[1500:], verbose=0)
    assert results["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert results["test_loss"] == pytest.approx(loss, rel=1e-4)


def test_a_fit_without_restoring_keeps_its_last_epoch(tmp_path):
    x, y = keras_digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="digit"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name="linear")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = tmp_path / "runs" / "digits"
    model.fit(x[:600], y[:600], epochs=3, verbose=0, callbacks=[RunLogger(out=out)])
    assert runs.Run(out).read(runs.RESULTS)["best_epoch"] == 3
    assert load_weights(out / runs.WEIGHTS, build(runs.Run(out).read(runs.MODEL)["source"]["spec"]))["epoch"] == 3
