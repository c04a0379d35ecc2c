"""RunLogger(test=(x, y)) on a sequence model (Seattle's daily maximum temperatures, windows of
20 days): results.json holds the test loss and compile()'s metrics, as Keras's evaluate gives them."""

from __future__ import annotations

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
