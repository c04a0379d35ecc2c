"""RunLogger(test=(x, y)) on a sequence model (Seattle's daily maximum temperatures, windows of
20 days): results.json holds the test loss and compile()'s metrics, as Keras's evaluate gives them."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from neuralab import run_list, runs  # noqa: E402
from neuralab.training import RunLogger  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.parametrize("targets", ["(N,)", "(N, 1)"])
def test_the_test_set_of_a_sequence_model_gives_its_loss_and_metrics(tmp_path, targets):
    from neuralab.data.series import load_series

    series = load_series("seattle-weather", target="temp_max")
    temps = series.frame[series.target].to_numpy(np.float32)[:400]
    temps = (temps - temps.mean()) / temps.std()
    x = np.stack([temps[i:i + 20] for i in range(360)])[..., None]  # (N, 20 days, 1)
    y = temps[20:380]
    y = y[:, None] if targets == "(N, 1)" else y
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20, 1), name="days"), keras.layers.LSTM(8, name="lstm"),
                              keras.layers.Dense(1, name="next_day")], name="weather")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    out = tmp_path / "runs" / "weather"
    model.fit(x[:300], y[:300], epochs=1, batch_size=50, verbose=0,
              callbacks=[RunLogger(out=out, test=(x[300:], y[300:]))])
    results = runs.Run(out).read(runs.RESULTS)
    want = model.evaluate(x[300:], y[300:], verbose=0, return_dict=True)
    assert results["test_loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert results["test_mae"] == pytest.approx(want["mae"], rel=1e-4)
    assert "series, target, scaling and window" in results["missing"]
    # the runs table and the web app show it, as they show a forecast run's test MAE
    row = run_list.describe(runs.Run(out))
    assert row.status == "finished" and row.metric["name"] == "test MAE"
    assert row.metric["value"] == results["test_mae"]


def test_without_a_test_set_the_row_shows_the_figure_of_the_weights_kept(tmp_path):
    """fit keeps the last epoch's weights (or those a callback set): a finished run without a test
    set shows that epoch's validation MAE, and one stopped shows its last epoch's, as the model it
    saved at each epoch's end holds. Before, both showed the best validation MAE of any epoch, an
    epoch whose weights were long replaced."""
    from neuralab.data.series import load_series

    series = load_series("seattle-weather", target="temp_max")
    temps = series.frame[series.target].to_numpy(np.float32)[:400]
    temps = (temps - temps.mean()) / temps.std()
    x, y = np.stack([temps[i:i + 20] for i in range(360)])[..., None], temps[20:380]

    class Stop(keras.callbacks.Callback):  # Ctrl-C as fit ends, before RunLogger finishes the run
        def on_train_end(self, logs=None):
            raise KeyboardInterrupt

    for name, stop in [("finished", []), ("stopped", [Stop()])]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((20, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        # a learning rate high enough that the validation MAE goes down, then up again
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
        out = tmp_path / name
        with pytest.raises(KeyboardInterrupt) if stop else contextlib.nullcontext():
            model.fit(x[:300], y[:300], validation_data=(x[300:], y[300:]), epochs=4, batch_size=50, verbose=0,
                      callbacks=[RunLogger(out=out), *stop])
        run = runs.Run(out)
        val = [r["val_mae"] for r in run.metrics()]
        assert len(val) == 4 and min(val) < val[-1]  # the best epoch is not the one kept
        row = run_list.describe(run)
        if name == "finished":
            assert run.read(runs.RESULTS)["best_epoch"] == 4
            assert row.metric == {"name": "val mae", "value": val[-1], "note": "epoch 4, the weights kept"}
        else:
            assert row.status == "interrupted"
            assert row.metric == {"name": "val mae", "value": val[-1], "note": "last epoch"}
