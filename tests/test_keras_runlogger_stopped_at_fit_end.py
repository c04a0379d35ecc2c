"""Ctrl-C (or sys.exit) while a callback's on_train_end runs stops Keras's fit at once: RunLogger
leaves its run interrupted and unlocked, with no test figures, report or sealed weights (a
callback after the interrupted one, EarlyStopping's restore, never ran), and the run goes on
with fit(initial_epoch=...). An optimizer's moving average under mixed precision, where
compile() wraps the optimizer, is said in results.json as without it."""

from __future__ import annotations

import os

import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import keras_digits  # noqa: E402
from neuralab import runs  # noqa: E402
from neuralab.training import RunLogger  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def linear(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="digit"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name="linear")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Stopped(keras.callbacks.Callback):
    """A slow callback's end (an upload, a plot) that the user stops: Ctrl-C, or sys.exit from a signal handler."""

    def __init__(self, stop: type[BaseException]):
        super().__init__()
        self.stop = stop

    def on_train_end(self, logs=None):
        raise self.stop()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_stopped_in_a_callbacks_end_the_run_is_interrupted_and_goes_on(tmp_path, stop):
    x, y = keras_digits()
    model = linear("adam")
    out = tmp_path / "runs" / "digits"
    restore = keras.callbacks.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)
    with pytest.raises(stop):
        model.fit(x[:600], y[:600], epochs=3, verbose=0,
                  callbacks=[RunLogger(out=out, test=(x[1500:], y[1500:])), Stopped(stop), restore])
    run = runs.Run(out)
    # unlocked in this very session (not "running" while it lives), and nothing computed after the stop
    assert run.owner() is None and run.status() is runs.Status.INTERRUPTED
    assert not (out / runs.RESULTS).exists() and not (out / runs.REPORT).exists()
    assert [e["epoch"] for e in run.metrics()] == [1, 2, 3]
    # the run goes on from its last epoch, as after any Ctrl-C, and finishes
    model.fit(x[:600], y[:600], initial_epoch=3, epochs=4, verbose=0,
              callbacks=[RunLogger(out=out, test=(x[1500:], y[1500:]))])
    assert run.status() is runs.Status.FINISHED
    results = run.read(runs.RESULTS)
    assert results["epochs_run"] == 4 and results["best_epoch"] == 4 and 0 < results["test_accuracy"] <= 1


def test_the_moving_average_under_mixed_precision_is_said(tmp_path):
    x, y = keras_digits()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = linear(keras.optimizers.Adam(0.01, use_ema=True))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # the case at hand
        out = tmp_path / "runs" / "digits-ema-mixed"
        model.fit(x[:1500], y[:1500], epochs=3, verbose=0, callbacks=[RunLogger(out=out)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    results = runs.Run(out).read(runs.RESULTS)
    assert results["best_epoch"] == 3
    assert "moving average" in results["weights"] and "use_ema=True" in results["weights"]
