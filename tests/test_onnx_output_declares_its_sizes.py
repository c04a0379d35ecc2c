"""An exported graph declares its output as (batch, sizes the run fixes): a forecaster's
`forecast` as (batch, horizon), as docs/forecasting.md says, not a name the exporter made up
for a size its shape inference lost ("Castforecast_dim_1")."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.onnx import export_onnx
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig

ort = pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.mark.parametrize("transform, horizon", [("diff", 3), ("log-return", 2)])
def test_a_forecasters_graph_gives_batch_by_horizon(series_csv, tmp_path, transform, horizon):
    config = ForecastConfig(data=str(series_csv), target="load",
                            windows=WindowConfig(lookback=10, horizon=horizon, transform=transform),
                            model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu", seed=1), baselines=["persistence"],
                            backtest_folds=1)
    run = run_forecast(config, out=tmp_path / "run", verbose=False).run_dir
    onnx, _ = export_onnx(run)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (windows,), (forecast,) = session.get_inputs(), session.get_outputs()
    rows = 10 + (transform != "none")
    assert (windows.shape, forecast.shape) == (["batch", rows, 1], ["batch", horizon])
    values = np.loadtxt(series_csv, delimiter=",", skiprows=1, usecols=1, dtype=np.float32)
    batch = np.stack([values[s:s + rows] for s in (0, 30, 60, 90, 100)])[:, :, None]
    assert session.run(None, {"windows": batch})[0].shape == (5, horizon)
